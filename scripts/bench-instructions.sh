#!/usr/bin/env bash
# Instructions per line of two relay builds under the same fixed load, side by side:
# each relay runs under `valgrind --tool=callgrind` (which counts instructions, so the
# figure does not move with what else the machine is doing) in front of two sinks,
# takes exactly REQUESTS writes of LINES lines from the load generator, and is
# stopped; the total instruction count of the process is divided by the lines.
#
#   scripts/bench-instructions.sh OLD_RELAY NEW_RELAY [--requests 2000] [--lines 100]
#
# Both arguments are relay binaries (build the old one from another checkout). The
# load generator and sinks come from target/release (`cargo build --release
# --workspace`). Everything listens on 127.0.0.1 on ports the OS hands out; every
# process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ $# -ge 2 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
OLD=$1 NEW=$2
shift 2
REQUESTS=2000
LINES=100
while [ $# -gt 0 ]; do
    case $1 in
        --requests) REQUESTS=$2; shift ;;
        --lines) LINES=$2; shift ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
command -v valgrind >/dev/null || { echo "error: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
LOADTEST=target/release/loadtest
WORK=target/bench/instructions-$(date +%Y%m%d-%H%M%S)
mkdir -p "$WORK"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

# Started here, not in a $(...) subshell, so that cleanup knows their pids.
start_sink() { # name
    "$LOADTEST" sink --http 127.0.0.1:0 >"$WORK/sink-$1.out" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 50); do
        grep -q '^listening' "$WORK/sink-$1.out" && break
        sleep 0.1
    done
}
sink_addr() { sed -n 's/.*http=\([^ ]*\).*/\1/p' "$WORK/sink-$1.out"; }
start_sink s1
start_sink s2
S1=$(sink_addr s1)
S2=$(sink_addr s2)

measure() { # name binary
    local name=$1 bin=$2 port
    port=$(free_port)
    cat >"$WORK/$name.toml" <<EOF
threads = 1
[[http]]
name = "in"
bind-addr = "127.0.0.1:$port"
[[http.output]]
name = "s1"
location = "http://$S1/write"
[[http.output]]
name = "s2"
location = "http://$S2/write"
EOF
    valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.callgrind" \
        "$bin" -config "$WORK/$name.toml" 2>"$WORK/$name.valgrind" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 300); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/ping" && break
        sleep 0.1
    done
    "$LOADTEST" run --target "http://127.0.0.1:$port" --requests "$REQUESTS" \
        --lines "$LINES" --connections 4 --json >"$WORK/$name.json"
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    sed -n 's/^summary: //p' "$WORK/$name.callgrind" >"$WORK/$name.ir"
}

lines=$((REQUESTS * LINES))
# Not in $(...): the relay each starts must stay known to cleanup.
measure old "$OLD"
measure new "$NEW"
old_ir=$(cat "$WORK/old.ir")
new_ir=$(cat "$WORK/new.ir")
printf '| build | instructions | per line | per request |\n|---|---:|---:|---:|\n'
for row in "old $old_ir" "new $new_ir"; do
    set -- $row
    printf '| %s | %s | %.0f | %.0f |\n' "$1" "$2" "$(echo "$2 / $lines" | bc -l)" \
        "$(echo "$2 / $REQUESTS" | bc -l)"
done
printf 'new ÷ old: %.4f\n' "$(echo "$new_ir / $old_ir" | bc -l)"
echo "callgrind files: $WORK"
