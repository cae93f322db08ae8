#!/usr/bin/env bash
# The relay's main job, end to end on this machine: two real InfluxDB 1.x, the relay
# in front of them with a disk spool, the bundled load generator, one backend killed
# and brought back, then the relay itself killed with -9 under load and restarted, and
# proof that every acknowledged point reached both backends; last, one backend replaced
# by an empty server and rebuilt from the other under load, checked with `verify`.
# Everything listens on 127.0.0.1 on ports the OS hands out; everything is stopped on
# exit, or, with --keep, left running until Ctrl-C so the status page can be looked at.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KEEP=0
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=1 ;;
        -h | --help)
            echo "usage: scripts/demo.sh [--keep]   (--keep: leave everything running at the end)"
            exit 0
            ;;
        *)
            echo "error: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

# Bold headings on a terminal; plain text in a log or a pipe.
if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }
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
say "building the relay and the load generator (release; the first build takes a few minutes)"
# Cargo's own progress shows, so a first build is not a silent minute.
cargo build --release --workspace
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
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# --- two InfluxDB -----------------------------------------------------------------
# shellcheck source=scripts/influxd-lib.sh
source scripts/influxd-lib.sh
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
start_relay() {
    $RELAY -config "$WORK/relay.toml" 2>>"$WORK/relay.log" &
    RELAY_PID=$!
    PIDS+=("$RELAY_PID")
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$RELAY_PORT/ping" && return
        sleep 0.1
    done
    echo "error: the relay did not start; its log:" >&2
    tail -20 "$WORK/relay.log" >&2
    exit 1
}
start_relay
echo "relay on 127.0.0.1:$RELAY_PORT (pid $RELAY_PID)"
echo "status page: http://127.0.0.1:$RELAY_PORT/  (open it now to watch what follows)"

# Wait until every backend is up with an empty queue (/health passes), saying every
# 2 s what is still queued, so a long replay is never a silent wait.
wait_caught_up() { # seconds
    local start=$SECONDS said=$SECONDS
    while ! curl -sf -o /dev/null "http://127.0.0.1:$RELAY_PORT/health"; do
        if [ $((SECONDS - start)) -ge "$1" ]; then
            echo "error: backends not caught up after $1 s" >&2
            return 1
        fi
        if [ $((SECONDS - said)) -ge 2 ]; then
            said=$SECONDS
            curl -s "http://127.0.0.1:$RELAY_PORT/health" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["listeners"]:
    for b in l["backends"]:
        print("  %s: %s, %d writes (%.1f MiB) queued" % (b["name"], b["state"], b["queued_requests"], b["queued_bytes"] / 2**20))' || true
        fi
        sleep 0.5
    done
}

say "a write with curl: one line, no timestamp (the relay stamps it once for both)"
curl -si -XPOST "http://127.0.0.1:$RELAY_PORT/write?db=demo" --data-binary 'demo,host=curl value=1' | head -1 | tr -d '\r'
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
wait_caught_up 120
echo "b has caught up: both backends up with empty queues (/health passes)"

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

# --- the headline: the relay itself killed ----------------------------------------
say "the relay itself killed with -9 under load, then restarted"
for n in a b; do q "$n" 'CREATE DATABASE crash' >/dev/null; done
# The load generator brings the load; a witness writes numbered points beside it and
# keeps the numbers of those the relay acknowledged, to look each one up afterwards.
$LOADTEST run --target "http://127.0.0.1:$RELAY_PORT" --db crash --duration 10s \
    --connections 16 --lines 100 --series 200 --json --progress off >"$WORK/crash-load.json" &
LOAD_PID=$!
python3 - "$RELAY_PORT" 10 "$WORK/witness.json" <<'PY' &
import http.client, json, sys, time
port, secs, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
acked, n, conn, end = [], 0, None, time.time() + secs
while time.time() < end:
    body = "\n".join("witness n=%di %d" % (i, 1700000000000000000 + i) for i in range(n, n + 10))
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/write?db=crash", body)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 204:
            acked.extend(range(n, n + 10))
    except (OSError, http.client.HTTPException):
        conn = None  # the relay is down: try again shortly, with new numbers
        time.sleep(0.05)
    n += 10
json.dump({"sent": n, "acked": acked}, open(out, "w"))
PY
WITNESS_PID=$!
PIDS+=("$LOAD_PID" "$WITNESS_PID")
sleep 3
kill -9 "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true
echo "relay killed (kill -9) 3 s into the load: clients see refused connections"
sleep 2
T0=$(date +%s%N)
start_relay
echo "relay restarted in $((($(date +%s%N) - T0) / 1000000)) ms (pid $RELAY_PID): it reopens its spool and replays what it holds"
echo "load goes on for another 5 s..."
wait "$LOAD_PID" "$WITNESS_PID"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  load: %(lines_acked)d lines acknowledged, errors while the relay was down: %(errors)s" % r)' "$WORK/crash-load.json"
wait_caught_up 120

say "every acknowledged point, looked up on both backends"
LOAD_ACKED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lines_acked"])' "$WORK/crash-load.json")
crash_ok=1
for n in a b; do
    curl -sf "http://127.0.0.1:${HTTP_PORT[$n]}/query" --data-urlencode "db=crash" \
        --data-urlencode "q=SELECT n FROM witness" >"$WORK/witness-$n.json"
    points=$(curl -sf "http://127.0.0.1:${HTTP_PORT[$n]}/query" --data-urlencode "db=crash" \
        --data-urlencode 'q=SELECT count(seq) FROM /.*/' | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(sum(s["values"][0][1] for s in r.get("series", [])))')
    if python3 - "$WORK/witness.json" "$WORK/witness-$n.json" "$n" "$points" "$LOAD_ACKED" <<'PY'
import json, sys
witness = json.load(open(sys.argv[1]))
result = json.load(open(sys.argv[2]))["results"][0]
have = {v[1] for s in result.get("series", []) for v in s["values"]}
missing = [i for i in witness["acked"] if i not in have]
name, points, load_acked = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
print("  %s: %d of the witness's %d acknowledged points present (%d sent, some refused while"
      " the relay was down); %d load points for %d lines acknowledged"
      % (name, len(witness["acked"]) - len(missing), len(witness["acked"]), witness["sent"], points, load_acked))
if missing:
    print("  %s is missing acknowledged points: %s" % (name, missing[:20]))
sys.exit(1 if missing else 0)
PY
    then :; else crash_ok=0; fi
done
# Writes in flight at the kill were never acknowledged: a backend may hold some of
# them, which is allowed; an acknowledged one missing anywhere is not.
if [ "$crash_ok" = 1 ]; then
    say "nothing acknowledged was lost: every acknowledged point is on both backends"
else
    say "LOST acknowledged points"
    exit 1
fi

# --- a replacement server: b loses its disk ---------------------------------------
say "InfluxDB b loses its disk: an empty server takes its place, and the relay rebuilds it from a"
kill -9 "${PID[b]}"; wait "${PID[b]}" 2>/dev/null || true
rm -rf "$WORK/b/meta" "$WORK/b/data" "$WORK/b/wal"
start_influxd b
echo "b is empty: $(q b 'SHOW DATABASES' | python3 -c 'import json,sys; print([v[0] for s in json.load(sys.stdin)["results"][0].get("series", []) for v in s.get("values", [])])')"
# Writes go on while it is rebuilt: they queue for b (its database does not exist yet)
# and reach it in order once the rebuild has created it.
load 8s >"$WORK/rebuild-load.txt" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
$RELAY rebuild --url "http://127.0.0.1:$RELAY_PORT" --output b
# While it ran, reads went to a only; /status showed b as "rebuilding".
wait "$LOAD_PID"
echo "load during the rebuild:"; cat "$WORK/rebuild-load.txt"
wait_caught_up 120

say "influx-relay verify: every database, retention policy, measurement and point, a against b"
if $RELAY verify --config "$WORK/relay.toml" --since all --rate 0; then
    say "the replacement holds exactly what a holds"
else
    say "MISMATCH after the rebuild"
    exit 1
fi

if [ "$KEEP" = 1 ]; then
    say "everything is still running; Ctrl-C stops it and cleans up"
    echo "status page:  http://127.0.0.1:$RELAY_PORT/"
    echo "relay:        http://127.0.0.1:$RELAY_PORT/write?db=demo (log: $WORK/relay.log)"
    for n in a b; do echo "InfluxDB $n:   http://127.0.0.1:${HTTP_PORT[$n]} (database demo, crash)"; done
    while kill -0 "$RELAY_PID" 2>/dev/null; do sleep 1; done
    exit 0
fi

say "graceful stop (SIGTERM)"
kill -TERM "$RELAY_PID"; wait "$RELAY_PID" && echo "relay exited 0"
echo "(scripts/demo.sh --keep leaves everything running at the end, to look at the status page)"
