#!/usr/bin/env bash
# Sweep the outputs' `concurrency` (parallel keep-alive connections per backend) over
# the HTTP workloads that depend on it, to choose the value scripts/bench.sh uses.
#
#   scripts/bench-concurrency.sh [VALUES...]     (default: 1 2 4 8 16)
#
# BENCH_ARGS adds flags to each bench.sh run (default: --duration 3s). Prints one
# table of relay rows per value; HAProxy is not run (its figures do not depend on it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

values=("$@")
[ ${#values[@]} -gt 0 ] || values=(1 2 4 8 16)
workloads=${BENCH_WORKLOADS:-http-100x32,http-1000x32,http-100x128,http-10x2000}
read -r -a extra <<<"${BENCH_ARGS:---duration 3s}"

cargo build --release --workspace --quiet
out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf '| concurrency | workload | lines/s | p50 ms | p99 ms | CPU s/M lines | peak RSS MiB | result |\n'
printf '|---:|---|---:|---:|---:|---:|---:|---|\n'
for c in "${values[@]}"; do
    scripts/bench.sh --no-build --no-haproxy --only "$workloads" --concurrency "$c" "${extra[@]}" \
        --out "$out" >/dev/null 2>&1 || true
    # Columns of bench.sh's table: workload, server, lines/s, MB/s, p50, p99, p99.9,
    # CPU, RSS, counts, result.
    awk -F' \\| ' -v c="$c" '$2 == "relay" {
        sub(/^\| /, "", $1)
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c, $1, $3, $5, $6, $8, $9, $11
    }' "$out"
done
