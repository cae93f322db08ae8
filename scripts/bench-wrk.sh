#!/usr/bin/env bash
# Large bodies under `wrk`: one fixed body of 1000 timestamped lines (the bundled load
# generator's lines, captured once) POSTed by wrk over 32 connections, with nginx as
# the sinks (config/nginx-bench-sink.conf: reads every body, answers 204). Measured
# side by side in each round, in an order that rotates from round to round:
#
#   haproxy      wrk → HAProxy → 1 sink                (the yardstick, as in bench.sh)
#   relay        wrk → influx-relay → 2 sinks          (bench.sh's http-1000x32 config)
#   nginx-tee    wrk → nginx, mirror → 2 sinks         (a mature C two-backend forwarder)
#   nginx-proxy  wrk → nginx → 1 sink                  (the same nginx, one backend)
#   relay-1out   wrk → influx-relay → 1 sink           (the relay's cost of the 2nd backend)
#   direct       wrk → 1 sink                          (generator and sink alone)
#   relay-alt    wrk → --alt-relay-cmd → 2 sinks       (only with that option: A/B)
#
#   scripts/bench-wrk.sh [--rounds 3] [--duration 5s] [--connections 32] [--lines 1000]
#                        [--only haproxy,relay,...] [--bundled] [--perf] [--no-build]
#                        [--relay-cmd CMD] [--alt-relay-cmd CMD] [--out FILE]
#
# --relay-cmd (default `target/release/influx-relay -config {config}`) starts the
# relay; --alt-relay-cmd adds relay-alt, a second build or environment measured in
# the same rounds, e.g. --alt-relay-cmd 'env GLIBC_TUNABLES=... target/release/influx-relay -config {config}'.
#
# --perf records each server's processes with `perf record -e cpu-clock` during its
# run (it slows them: take ratios from runs without it) and leaves perf.txt, self time
# by thread and symbol, and perf-groups.md (scripts/perf-groups.py: that time summed
# into kinds of work, in ns of CPU per line) next to the run's other files.
# --bundled also runs `scripts/bench.sh --only http-1000x32` (the bundled generator
# and sinks, HAProxy then the relay) once per round, for the side-by-side.
# Per server and round: lines/s (requests/s × lines), p50/p99/p99.9 from wrk's
# latency histogram, CPU seconds per million lines of the server (all its processes)
# and of the whole pipeline (wrk + server + sinks, from /proc/PID/stat), and each
# ratio against HAProxy's figure of the same round; also how many cores the kernel's
# softirq threads and the rest of the box (other work on a shared machine) used
# during the run. The last column, HAProxy's pipeline CPU per line ÷ this pipeline's,
# is the lines/s ratio the two would show on a box they had to themselves and
# saturated: it does not move with the other work. A run FAILs when wrk saw an error
# or a sink's access log shows a non-204 answer, or a sink received fewer bodies than
# wrk got answers (or more than answers + connections: those in flight at the end).
# Everything listens on 127.0.0.1 on ports the OS hands out; every process started
# here is stopped on exit. Raw results stay in target/bench/wrk-<timestamp>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }

ROUNDS=3
DURATION=5s
CONNS=32
LINES=1000
ONLY=haproxy,relay,nginx-tee,nginx-proxy,relay-1out,direct
BUNDLED=0
PERF=0
BUILD=1
RELAY_CMD='target/release/influx-relay -config {config}'
ALT_RELAY_CMD=""
OUT=""
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --connections) CONNS=$2; shift ;;
        --lines) LINES=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --bundled) BUNDLED=1 ;;
        --perf) PERF=1 ;;
        --relay-cmd) RELAY_CMD=$2; shift ;;
        --alt-relay-cmd) ALT_RELAY_CMD=$2; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
# An A/B run measures relay-alt too, once, whether or not --only named it.
[ -z "${ALT_RELAY_CMD:-}" ] || [[ ",$ONLY," == *,relay-alt,* ]] || ONLY+=,relay-alt
[[ $DURATION =~ ^[0-9]+s$ ]] || { echo "error: --duration takes whole seconds (5s)" >&2; exit 2; }
IFS=, read -r -a SERVERS <<<"$ONLY"

say() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing+=(libnginx-mod-http-echo)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ "$PERF" = 0 ] || command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
if [ "$BUILD" = 1 ]; then
    say "building the relay and the load generator (release)"
    cargo build --release --workspace --quiet
fi
LOADTEST=target/release/loadtest
TICKS=$(getconf CLK_TCK)
CORES=$(nproc)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=target/bench/wrk-$(date +%Y%m%d-%H%M%S)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)  # nginx wants absolute paths
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

stop() { # pid: TERM, a short grace, then KILL
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
calc() { awk "BEGIN{printf \"$1\", $2}"; }
# utime + stime of a process and of its children that are still running (nginx's
# workers); /proc/PID/stat fields 14 and 15, counted after the command name's ")".
ticks_of() {
    local pid total=0 t
    for pid in "$@"; do
        t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
# Busy ticks of the whole box (every core): /proc/stat's first line less idle and iowait.
box_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
# The kernel's softirq threads: loopback delivery that did not run in the sender's
# own context (it does under heavy load) is charged to them, not to any process here.
softirq_pids() { grep -l '^ksoftirqd/' /proc/[0-9]*/comm 2>/dev/null | cut -d/ -f3; }
family() { # pid → it and its children
    echo "$1"
    pgrep -P "$1" || true
}
wait_ping() { # addr pid what
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || break
        curl -sf -o /dev/null "http://$1/ping" && return 0
        sleep 0.05
    done
    echo "error: $3 did not answer /ping on $1" >&2
    exit 1
}

# --- the body: the bundled generator's lines, captured once -----------------------------
BODY=$WORK/body.lp
say "capturing one body of $LINES lines from the load generator"
CAPTURE_PORT=$(free_port)
python3 - "$CAPTURE_PORT" "$BODY" <<'PY' &
import socket, sys
port, out = int(sys.argv[1]), sys.argv[2]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1)
srv.settimeout(30)
conn, _ = srv.accept()
conn.settimeout(30)
buf = b""
while b"\r\n\r\n" not in buf:
    buf += conn.recv(65536)
head, body = buf.split(b"\r\n\r\n", 1)
length = next(int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
while len(body) < length:
    body += conn.recv(65536)
open(out, "wb").write(body[:length])
conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
conn.close()
PY
CAPTURE_PID=$!
PIDS+=("$CAPTURE_PID")
sleep 0.3
"$LOADTEST" run --target "http://127.0.0.1:$CAPTURE_PORT" --requests 1 --connections 1 \
    --lines "$LINES" --db bench --json >"$WORK/capture.json" 2>"$WORK/capture.err" || true
wait "$CAPTURE_PID"
BODY_BYTES=$(stat -c %s "$BODY")
[ "$(wc -l <"$BODY")" -eq "$LINES" ] || { echo "error: captured body has $(wc -l <"$BODY") lines, not $LINES" >&2; exit 1; }
say "body: $LINES lines, $BODY_BYTES bytes ($(calc '%.0f' "$BODY_BYTES / $LINES") per line)"

# --- sinks and servers ----------------------------------------------------------------
# nginx from a template: start_nginx NAME TEMPLATE KEY=VALUE... ; sets NGX_ADDR, NGX_PID.
start_nginx() {
    local name=$1 template=$2 dir port sedargs=() kv
    shift 2
    dir=$RUN/$name
    mkdir -p "$dir/body"
    port=$(free_port)
    NGX_ADDR=127.0.0.1:$port
    sedargs+=(-e "s|@LISTEN@|$NGX_ADDR|" -e "s|@PREFIX@|$dir|g" -e "s|@WORKERS@|$CORES|")
    for kv in "$@"; do sedargs+=(-e "s|@${kv%%=*}@|${kv#*=}|"); done
    sed "${sedargs[@]}" "$template" >"$dir/nginx.conf"
    nginx -c "$dir/nginx.conf" -p "$dir/" 2>"$dir/stderr" &
    NGX_PID=$!
    PIDS+=("$NGX_PID")
    wait_ping "$NGX_ADDR" "$NGX_PID" "nginx $name"
}
declare -A SINK_ADDR SINK_PID
start_sinks() { # n
    local i
    for i in $(seq "$1"); do
        start_nginx "sink$i" config/nginx-bench-sink.conf
        SINK_ADDR[$i]=$NGX_ADDR
        SINK_PID[$i]=$NGX_PID
    done
}

start_server() { # kind → SERVER_ADDR SERVER_PID, sinks started
    local kind=$1 outs="" i n=2
    case $kind in
        haproxy | nginx-proxy | relay-1out | direct) n=1 ;;
    esac
    start_sinks "$n"
    case $kind in
        direct)
            SERVER_ADDR=${SINK_ADDR[1]}
            SERVER_PID=""
            ;;
        haproxy)
            SERVER_ADDR=127.0.0.1:$(free_port)
            # bench.sh's HAProxy: a pure one-backend HTTP proxy.
            cat >"$RUN/haproxy.cfg" <<CONF
global
    nbthread $CORES
    maxconn 4000
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind $SERVER_ADDR
    default_backend sink
backend sink
    server s1 ${SINK_ADDR[1]}
CONF
            haproxy -f "$RUN/haproxy.cfg" -db >"$RUN/haproxy.log" 2>&1 &
            SERVER_PID=$!
            PIDS+=("$SERVER_PID")
            wait_ping "$SERVER_ADDR" "$SERVER_PID" haproxy
            ;;
        relay | relay-1out | relay-alt)
            SERVER_ADDR=127.0.0.1:$(free_port)
            for i in $(seq "$n"); do
                outs+="  { name = \"s$i\", location = \"http://${SINK_ADDR[$i]}/write\", timeout = \"10s\", concurrency = 1, buffer-size-mb = 0 },"$'\n'
            done
            # bench.sh's relay configuration for http-1000x32.
            cat >"$RUN/relay.toml" <<CONF
threads = $CORES
log-level = "info"

[[http]]
name = "bench"
bind-addr = "$SERVER_ADDR"
ack = "any"
max-connections = 20000
output = [
$outs]
CONF
            local cmd=$RELAY_CMD
            [ "$kind" != relay-alt ] || cmd=$ALT_RELAY_CMD
            # exec: the PID measured is the relay's, not a shell's.
            bash -c "exec ${cmd//\{config\}/$RUN/relay.toml}" 2>"$RUN/relay.log" &
            SERVER_PID=$!
            PIDS+=("$SERVER_PID")
            wait_ping "$SERVER_ADDR" "$SERVER_PID" influx-relay
            ;;
        nginx-tee | nginx-proxy)
            local mirror="mirror /mirror;"
            [ "$kind" = nginx-tee ] || mirror="mirror off;"
            start_nginx front config/nginx-bench-tee.conf "SINK1=${SINK_ADDR[1]}" \
                "SINK2=${SINK_ADDR[2]:-${SINK_ADDR[1]}}" "MIRROR=$mirror"
            SERVER_ADDR=$NGX_ADDR
            SERVER_PID=$NGX_PID
            ;;
        *) echo "error: unknown server $kind" >&2; exit 2 ;;
    esac
    NSINKS=$n
}

# --- one measurement ------------------------------------------------------------------
TABLE=$WORK/table.md
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
row() { printf '%s\n' "$1" | tee -a "$TABLE"; }
FAILED=0
declare -A HA_LPS HA_P99 HA_CPU HA_TOTAL

measure() { # round kind
    local round=$1 kind=$2 server_pids=() sink_pids=() i
    RUN=$WORK/r$round-$kind
    mkdir -p "$RUN"
    start_server "$kind"
    [ -z "$SERVER_PID" ] || mapfile -t server_pids < <(family "$SERVER_PID")
    for i in $(seq "$NSINKS"); do mapfile -t -O "${#sink_pids[@]}" sink_pids < <(family "${SINK_PID[$i]}"); done
    local s0 k0 s1 k1 b0 b1 q0 q1 softirq
    mapfile -t softirq < <(softirq_pids)
    s0=$(ticks_of "${server_pids[@]}")
    k0=$(ticks_of "${sink_pids[@]}")
    b0=$(box_ticks)
    q0=$(ticks_of "${softirq[@]}")
    local perf_pid=""
    if [ "$PERF" = 1 ] && [ -n "$SERVER_PID" ]; then
        perf record -e cpu-clock -F 999 -o "$RUN/perf.data" \
            -p "$(IFS=,; echo "${server_pids[*]}")" -- sleep "${DURATION%s}" \
            >"$RUN/perf-record.log" 2>&1 &
        perf_pid=$!
        PIDS+=("$perf_pid")
    fi
    # wrk: one thread per core, like every other process here. Its CPU time comes from
    # getrusage(RUSAGE_CHILDREN) of a small python parent, exact even for threads that
    # have exited.
    WRK_BODY=$BODY timeout $((${DURATION%s} + 30)) python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[2:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.3f\n" % (r.ru_utime + r.ru_stime))
' "$RUN/wrk.cpu" wrk -t "$CORES" -c "$CONNS" -d "$DURATION" --timeout 10s --latency \
        -s scripts/wrk-post-body.lua "http://$SERVER_ADDR" >"$RUN/wrk.out" 2>&1 || true
    local wt
    wt=$(calc '%.0f' "$(cat "$RUN/wrk.cpu" 2>/dev/null || echo 0) * $TICKS")
    s1=$(ticks_of "${server_pids[@]}")
    k1=$(ticks_of "${sink_pids[@]}")
    b1=$(box_ticks)
    q1=$(ticks_of "${softirq[@]}")
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        perf report -i "$RUN/perf.data" --no-children --sort comm,dso,symbol --stdio \
            >"$RUN/perf.txt" 2>/dev/null || true
    fi
    [ -n "$SERVER_PID" ] && stop "$SERVER_PID"
    for i in $(seq "$NSINKS"); do stop "${SINK_PID[$i]}"; done

    local j
    j=$(sed -n 's/^wrk-json //p' "$RUN/wrk.out")
    [ -n "$j" ] || { echo "error: no wrk-json line in $RUN/wrk.out" >&2; cat "$RUN/wrk.out" >&2; exit 1; }
    local reqs secs lps p50 p99 p999 errs lines why="" counts=""
    reqs=$(jq .requests <<<"$j")
    secs=$(jq '.duration_us / 1e6' <<<"$j")
    lines=$((reqs * LINES))
    lps=$(calc '%.0f' "$lines / $secs")
    p50=$(jq .p50_us <<<"$j")
    p99=$(jq .p99_us <<<"$j")
    p999=$(jq .p999_us <<<"$j")
    errs=$(jq -c '.errors | with_entries(select(.value > 0))' <<<"$j")
    [ "$errs" = "{}" ] || why+="wrk errors $errs; "
    [ "$reqs" -gt 0 ] || why+="no answers; "
    # Every sink must hold every answered body (and at most the ones in flight more),
    # each read whole (request_length ≥ content_length), each answered 204.
    for i in $(seq "$NSINKS"); do
        local log=$RUN/sink$i/access.log bad got
        bad=$(awk '$1 != 204 || $3 < $2' "$log" | wc -l)
        got=$(awk -v b="$BODY_BYTES" '$1 == 204 {n += $2} END {printf (n % b ? "%.3f" : "%d"), n / b}' "$log")
        counts+="${counts:+ / }$got"
        [ "$bad" -eq 0 ] || why+="sink$i: $bad requests not answered 204 or not read whole; "
        awk "BEGIN{exit !($got >= $reqs && $got <= $reqs + $CONNS)}" ||
            why+="sink$i holds $got bodies for $reqs answers; "
    done
    local cpu total
    cpu=$(calc '%.3f' "($s1 - $s0) / $TICKS / ($lines / 1e6)")
    total=$(calc '%.3f' "(($s1 - $s0) + ($k1 - $k0) + $wt) / $TICKS / ($lines / 1e6)")
    local sinkcpu wrkcpu
    sinkcpu=$(calc '%.3f' "($k1 - $k0) / $TICKS / ($lines / 1e6)")
    wrkcpu=$(calc '%.3f' "$wt / $TICKS / ($lines / 1e6)")
    [ -n "$SERVER_PID" ] || cpu=0
    # What the rest of the box (other work on this shared machine) used meanwhile, in
    # cores: busy ticks of the box less this pipeline's and the softirq threads'.
    local others softirq_cores
    others=$(calc '%.2f' "(($b1 - $b0) - ($s1 - $s0) - ($k1 - $k0) - $wt - ($q1 - $q0)) / $TICKS / $secs")
    softirq_cores=$(calc '%.2f' "($q1 - $q0) / $TICKS / $secs")
    if [ -s "$RUN/perf.txt" ]; then
        python3 scripts/perf-groups.py --cpu-per-m "$cpu" <"$RUN/perf.txt" >"$RUN/perf-groups.md" || true
    fi
    local result=PASS
    if [ -n "$why" ]; then result="FAIL: ${why%; }"; FAILED=1; fi
    if [ "$kind" = haproxy ]; then
        HA_LPS[$round]=$lps HA_P99[$round]=$p99 HA_CPU[$round]=$cpu HA_TOTAL[$round]=$total
    fi
    local rl="" rp="" rc="" rt=""
    if [ -n "${HA_LPS[$round]:-}" ] && [ "$kind" != haproxy ]; then
        rl=$(calc '%.2f×' "$lps / ${HA_LPS[$round]}")
        rp=$(calc '%.2f×' "$p99 / ${HA_P99[$round]}")
        [ "$kind" = direct ] || rc=$(calc '%.2f×' "$cpu / ${HA_CPU[$round]}")
        rt=$(calc '%.2f×' "${HA_TOTAL[$round]} / $total")
    fi
    row "| $round | $kind | $(calc '%.3f' "$lps / 1e6") M | $(calc '%.0f' "$lps * $BODY_BYTES / $LINES / 1e6") | $(calc '%.2f' "$p50 / 1000") | $(calc '%.2f' "$p99 / 1000") | $(calc '%.2f' "$p999 / 1000") | $cpu | $sinkcpu | $wrkcpu | $total | $counts | $softirq_cores | $others | $result | $rl | $rp | $rc | $rt |"
    printf '{"softirq_cores":%s,"others_cores":%s,"round":%s,"server":"%s","lines_per_sec":%s,"p50_us":%s,"p99_us":%s,"p999_us":%s,"cpu_s_per_m":%s,"sinks_cpu_s_per_m":%s,"wrk_cpu_s_per_m":%s,"total_cpu_s_per_m":%s,"sink_bodies":"%s","requests":%s,"result":"%s"}\n' \
        "$softirq_cores" "$others" "$round" "$kind" "$lps" "$p50" "$p99" "$p999" "$cpu" "$sinkcpu" "$wrkcpu" "$total" "$counts" "$reqs" "$result" >>"$RESULTS"
}

row "| round | server | lines/s | MB/s | p50 ms | p99 ms | p99.9 ms | server CPU s/M lines | sinks CPU s/M | wrk CPU s/M | pipeline CPU s/M | bodies per sink ÷ answers | ksoftirqd, cores | other work, cores | result | lines/s ×HAProxy | p99 ×HAProxy | CPU ×HAProxy | HAProxy's pipeline CPU ÷ this one's |"
row "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    # HAProxy first (the ratios need it), the others in an order rotated each round.
    order=()
    for s in "${SERVERS[@]}"; do [ "$s" = haproxy ] || order+=("$s"); done
    n=${#order[@]}
    rot=()
    for k in $(seq 0 $((n - 1))); do rot+=("${order[$(((k + round - 1) % n))]}"); done
    [[ ",$ONLY," == *,haproxy,* ]] && rot=(haproxy "${rot[@]}")
    for s in "${rot[@]}"; do
        say "round $round: $s"
        measure "$round" "$s"
    done
    if [ "$BUNDLED" = 1 ]; then
        say "round $round: scripts/bench.sh --only http-1000x32 (bundled generator and sinks)"
        scripts/bench.sh --no-build --duration "$DURATION" --only http-1000x32 \
            --out "$WORK/bundled-r$round.md" >"$WORK/bundled-r$round.log" 2>&1 || FAILED=1
        grep '^| http-1000x32' "$WORK/bundled-r$round.md" | sed "s/^/bundled r$round /" | tee -a "$WORK/bundled.md"
    fi
done
{
    echo
    echo "body: $LINES lines, $BODY_BYTES bytes; wrk -t $CORES -c $CONNS -d $DURATION; $CORES cores; raw results in $WORK"
} | tee -a "$TABLE"
[ -z "$OUT" ] || cp "$TABLE" "$OUT"
exit $FAILED
