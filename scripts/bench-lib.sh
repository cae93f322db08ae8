# Sourced by the benchmark scripts: the processes they start, stopped on exit, and
# free loopback ports from the OS.

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port the OS just handed out on 127.0.0.1 (TCP, or UDP with `free_port udp`).
free_port() {
    local kind=SOCK_STREAM
    [ "${1:-}" = udp ] && kind=SOCK_DGRAM
    python3 -c "import socket; s=socket.socket(type=socket.$kind); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}
