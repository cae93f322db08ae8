#!/usr/bin/env bash
# The relay's main job, end to end on this machine: two real InfluxDB 1.x, the relay
# in front of them with a disk spool, the bundled load generator, one backend killed
# and brought back, and proof that both backends end up identical.
# Everything listens on 127.0.0.1 on ports the OS hands out; everything is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- what the demo needs ----------------------------------------------------------
if ! command -v influxd >/dev/null 2>&1; then
    say "installing InfluxDB 1.x (Debian package influxdb)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y influxdb influxdb-client
fi
for tool in curl python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$tool"
    fi
done
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust (https://rustup.rs) and run again" >&2
    exit 1
fi
say "building the relay and the load generator (release)"
cargo build --release --workspace --quiet
RELAY=target/release/influx-relay
LOADTEST=target/release/loadtest

WORK=$(mktemp -d /tmp/influx-relay-demo.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# --- two InfluxDB -----------------------------------------------------------------
declare -A HTTP_PORT PID
start_influxd() { # name
    local name=$1 dir="$WORK/$1"
    mkdir -p "$dir"
    if [ -z "${HTTP_PORT[$name]:-}" ]; then
        HTTP_PORT[$name]=$(free_port)
        cat >"$dir/influxd.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$(free_port)"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:${HTTP_PORT[$name]}"
  log-enabled = false
CONF
    fi
    influxd run -config "$dir/influxd.conf" >>"$dir/log" 2>&1 &
    PID[$name]=$!
    PIDS+=("$!")
    for _ in $(seq 100); do
        # Ours only if it answers as InfluxDB and our process is still alive.
        if curl -sf -o /dev/null -D - "http://127.0.0.1:${HTTP_PORT[$name]}/ping" 2>/dev/null | grep -qi '^x-influxdb-version' \
            && kill -0 "${PID[$name]}" 2>/dev/null; then
            echo "influxd $name on 127.0.0.1:${HTTP_PORT[$name]} (pid ${PID[$name]})"
            return
        fi
        sleep 0.2
    done
    echo "error: influxd $name did not start; its log:" >&2
    tail -20 "$dir/log" >&2
    exit 1
}
q() { # name query
    curl -sf "http://127.0.0.1:${HTTP_PORT[$1]}/query" --data-urlencode "db=demo" --data-urlencode "q=$2"
}

say "starting two InfluxDB servers"
start_influxd a
start_influxd b
for n in a b; do q "$n" 'CREATE DATABASE demo' >/dev/null; done

# --- the relay --------------------------------------------------------------------
RELAY_PORT=$(free_port)
cat >"$WORK/relay.toml" <<CONF
spool-dir = "$WORK/spool"

[[http]]
name = "demo"
bind-addr = "127.0.0.1:$RELAY_PORT"
ack = "all"   # 204 only once every backend has the write, delivered or spooled to disk
output = [
  { name = "a", location = "http://127.0.0.1:${HTTP_PORT[a]}/write", timeout = "2s", spool-size-mb = 512, max-delay-interval = "1s" },
  { name = "b", location = "http://127.0.0.1:${HTTP_PORT[b]}/write", timeout = "2s", spool-size-mb = 512, max-delay-interval = "1s" },
]
CONF
say "the relay's configuration"
$RELAY --check-config -config "$WORK/relay.toml"
$RELAY -config "$WORK/relay.toml" 2>"$WORK/relay.log" &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$RELAY_PORT/ping" && break
    sleep 0.1
done
echo "relay on 127.0.0.1:$RELAY_PORT (pid $RELAY_PID)"

say "a write with curl: one line, no timestamp (the relay stamps it once for both)"
curl -si -XPOST "http://127.0.0.1:$RELAY_PORT/write?db=demo" --data-binary 'demo,host=curl value=1' | head -1
say "a bad line is refused before any backend sees it"
curl -s -XPOST "http://127.0.0.1:$RELAY_PORT/write?db=demo" --data-binary $'demo v=1\ndemo v=' ; echo

ACKED=0
load() { # seconds
    local out
    out=$($LOADTEST run --target "http://127.0.0.1:$RELAY_PORT" --db demo --duration "$1" \
        --connections 16 --lines 100 --series 200 --json)
    echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %(lines_per_sec).0f lines/s, p50 %(p50_us)d us, p99 %(p99_us)d us, %(lines_acked)d lines acknowledged, errors: %(errors)s" % r)'
    ACKED=$((ACKED + $(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["lines_acked"])')))
}

say "5 s of load through the relay, both backends up"
load 5s

say "killing InfluxDB b (kill -9) and writing on: the relay spools b's share to disk"
kill -9 "${PID[b]}"; wait "${PID[b]}" 2>/dev/null || true
load 5s
echo "relay log so far:"; tail -5 "$WORK/relay.log"
echo "spool on disk: $(du -sh "$WORK/spool" | cut -f1)"

say "restarting InfluxDB b: the relay replays its spool in order"
start_influxd b
for _ in $(seq 120); do
    if grep -q 'caught up' "$WORK/relay.log"; then break; fi
    sleep 0.5
done
tail -3 "$WORK/relay.log"

say "both backends, side by side"
# The generator writes four measurements; count the points of all of them.
count() { q "$1" 'SELECT count(seq) FROM /.*/' | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(sum(s["values"][0][1] for s in r.get("series", [])))'; }
digest() { q "$1" 'SELECT * FROM /.*/ GROUP BY *' | sha256sum | cut -c1-16; }
echo "lines acknowledged by the relay: $((ACKED))"
printf '%-10s %12s  %s\n' backend points digest
for n in a b; do printf '%-10s %12s  %s\n' "$n" "$(count "$n")" "$(digest "$n")"; done
if [ "$(count a)" = "$(count b)" ] && [ "$(digest a)" = "$(digest b)" ]; then
    say "identical: every acknowledged write reached both backends"
else
    say "MISMATCH between the backends"
    exit 1
fi

say "graceful stop (SIGTERM)"
kill -TERM "$RELAY_PID"; wait "$RELAY_PID" && echo "relay exited 0"
