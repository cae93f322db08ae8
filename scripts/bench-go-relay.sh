#!/usr/bin/env bash
# Lets scripts/bench.sh measure the original Go influxdb-relay with the same load, the
# same sinks and the same checks as influx-relay:
#
#   GO_RELAY_BIN=/path/to/influxdb-relay scripts/bench.sh --relay-cmd scripts/bench-go-relay.sh \
#       --label go-relay
#
# bench.sh exports the workload's addresses as BENCH_* variables (see its --help); this
# writes them as the Go relay's TOML (which has no ack, concurrency or spool settings)
# beside bench.sh's own config and then becomes the relay, so the pid bench.sh watches
# for CPU and memory is the relay's. Building the Go relay is up to you.
set -euo pipefail

bin=${GO_RELAY_BIN:?set GO_RELAY_BIN to the Go influxdb-relay binary}
: "${BENCH_CONFIG:?run me from scripts/bench.sh --relay-cmd}"
conf=${BENCH_CONFIG%.toml}.go-relay.toml

output() { # name url
    printf '  { name = "%s", location = "%s", timeout = "10s", buffer-size-mb = %s },\n' \
        "$1" "$2" "${BENCH_BUFFER_MB:-0}"
}
{
    printf '[[http]]\nname = "bench"\nbind-addr = "%s"\noutput = [\n' "$BENCH_HTTP_ADDR"
    output s1 "$BENCH_SINK1_URL"
    [ "${BENCH_OUTPUTS:-2}" = 1 ] || output s2 "$BENCH_SINK2_URL"
    printf ']\n'
    if [ -n "${BENCH_UDP_ADDR:-}" ]; then
        # The same buffer bench.sh gives influx-relay; the Go relay cannot force it past
        # net.core.rmem_max, so the kernel caps it there.
        printf '\n[[udp]]\nname = "bench-udp"\nbind-addr = "%s"\nread-buffer = 33554432\n' "$BENCH_UDP_ADDR"
        printf 'output = [\n  { name = "s1", location = "%s", mtu = 1400 },\n' "$BENCH_SINK1_UDP"
        printf '  { name = "s2", location = "%s", mtu = 1400 },\n]\n' "$BENCH_SINK2_UDP"
    fi
} >"$conf"
exec "$bin" -config "$conf"
