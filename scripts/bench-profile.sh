#!/usr/bin/env bash
# Where the relay spends its CPU under one benchmark load: two sinks, the relay, the
# load generator, and `perf record` on the relay process for the length of the run.
#
#   scripts/bench-profile.sh [--workload http-100x32|http-1000x32|udp] [--duration 10s]
#                            [--callgraph] [--top 25]
#
# Prints the functions with the most samples (self time) and leaves perf.data and the
# full report in target/bench/profile-<workload>/. --callgraph records DWARF call
# stacks too (bigger, slower) and adds a report of inclusive ("children") time.
# perf samples on the cpu-clock software event, so it also works where hardware
# counters are not exposed (virtual machines).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORKLOAD=http-100x32
DURATION=10s
CALLGRAPH=0
TOP=25
CONCURRENCY=${BENCH_CONCURRENCY:-1}  # the relay's default
while [ $# -gt 0 ]; do
    case $1 in
        --workload) WORKLOAD=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --callgraph) CALLGRAPH=1 ;;
        --top) TOP=$2; shift ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
case $WORKLOAD in
    http-100x32) LOAD=(--lines 100 --connections 32) ;;
    http-1000x32) LOAD=(--lines 1000 --connections 32) ;;
    udp) LOAD=() ;;
    *) echo "error: unknown workload $WORKLOAD" >&2; exit 2 ;;
esac
SECS=${DURATION%s}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v perf >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y linux-perf python3
fi
# The release profile keeps line tables (debug = 1), so symbols resolve.
cargo build --release --workspace --quiet
LOADTEST=target/release/loadtest

OUT=target/bench/profile-$WORKLOAD
rm -rf "$OUT"
mkdir -p "$OUT"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh  # the cd above made the repo root the cwd

declare -A HTTP UDP
for s in s1 s2; do
    "$LOADTEST" sink --http 127.0.0.1:0 --udp 127.0.0.1:0 >"$OUT/sink-$s.out" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 50); do grep -q '^listening' "$OUT/sink-$s.out" && break; sleep 0.1; done
    HTTP[$s]=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$OUT/sink-$s.out")
    UDP[$s]=$(sed -n 's/.*udp=\([^ ]*\).*/\1/p' "$OUT/sink-$s.out")
done
HTTP_ADDR=127.0.0.1:$(free_port)
UDP_ADDR=127.0.0.1:$(free_port udp)
cat >"$OUT/relay.toml" <<CONF
threads = $(nproc)
log-level = "warn"
[[http]]
name = "bench"
bind-addr = "$HTTP_ADDR"
ack = "any"
output = [
  { name = "s1", location = "http://${HTTP[s1]}/write", concurrency = $CONCURRENCY },
  { name = "s2", location = "http://${HTTP[s2]}/write", concurrency = $CONCURRENCY },
]
[[udp]]
name = "bench-udp"
bind-addr = "$UDP_ADDR"
read-buffer = 33554432
output = [
  { name = "s1", location = "${UDP[s1]}", mtu = 1400 },
  { name = "s2", location = "${UDP[s2]}", mtu = 1400 },
]
CONF
target/release/influx-relay -config "$OUT/relay.toml" 2>"$OUT/relay.log" &
RELAY=$!
PIDS+=("$RELAY")
for _ in $(seq 100); do curl -sf -o /dev/null "http://$HTTP_ADDR/ping" && break; sleep 0.1; done

record=(perf record -e cpu-clock -F 1999 -o "$OUT/perf.data" -p "$RELAY")
[ "$CALLGRAPH" = 0 ] || record+=(--call-graph dwarf,16384)
"${record[@]}" -- sleep "$SECS" 2>"$OUT/perf-record.log" &
PERF=$!
PIDS+=("$PERF")
if [ "$WORKLOAD" = udp ]; then
    "$LOADTEST" run --udp-only --udp "$UDP_ADDR" --duration "$DURATION" --json >"$OUT/load.json"
else
    "$LOADTEST" run --target "http://$HTTP_ADDR" --duration "$DURATION" --json "${LOAD[@]}" >"$OUT/load.json"
fi
wait "$PERF" || true
# Context switches per relay thread over the whole run (voluntary = it blocked).
for t in /proc/"$RELAY"/task/*; do
    printf '%-16s voluntary %8s  involuntary %8s\n' "$(cat "$t/comm")" \
        "$(sed -n 's/^voluntary_ctxt_switches:\s*//p' "$t/status")" \
        "$(sed -n 's/^nonvoluntary_ctxt_switches:\s*//p' "$t/status")"
done >"$OUT/switches.txt"

perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null >"$OUT/report.txt"
if [ "$CALLGRAPH" = 1 ]; then
    perf report -i "$OUT/perf.data" --children --sort symbol --stdio -g none 2>/dev/null >"$OUT/report-children.txt"
fi
echo "load: $(jq -c '{lines_per_sec, p99_us, error_total, udp_datagrams}' "$OUT/load.json" 2>/dev/null || cat "$OUT/load.json")"
echo "top $TOP functions by self time (cpu-clock samples in the relay process):"
grep -v '^#' "$OUT/report.txt" | grep -v '^$' | head -n "$TOP"
echo "context switches by relay thread:"
cat "$OUT/switches.txt"
echo "full report: $OUT/report.txt"
