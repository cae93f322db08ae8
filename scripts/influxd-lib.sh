# shellcheck shell=bash
# Start a real InfluxDB 1.x for a script on this machine: sourced by scripts/demo.sh and
# scripts/bench-rebuild.sh. Needs $WORK (a directory the caller removes) and the array
# PIDS (the caller's exit trap stops them).
#
#   start_influxd NAME   data under $WORK/NAME, HTTP on 127.0.0.1:${HTTP_PORT[NAME]},
#                        pid ${PID[NAME]}; started again on the same port when the
#                        port is already set (a restart)

declare -A HTTP_PORT PID

influxd_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_influxd() { # name
    local name=$1 dir="$WORK/$1"
    mkdir -p "$dir"
    if [ -z "${HTTP_PORT[$name]:-}" ]; then
        HTTP_PORT[$name]=$(influxd_free_port)
        cat >"$dir/influxd.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$(influxd_free_port)"
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
