#!/usr/bin/env bash
# Build every fuzz target in fuzz/ with libFuzzer and AddressSanitizer and run each for a
# while, on the stable toolchain: the flags cargo-fuzz passes are unstable, and
# RUSTC_BOOTSTRAP=1 lets stable accept them. Exits non-zero when a target finds a crash
# (the input lands in fuzz/artifacts/<target>/) or does not build.
#
#   scripts/fuzz.sh [--seconds 20] [--no-asan] [TARGET...]
#
# scripts/test.sh runs it with a few seconds per target so the targets cannot rot;
# give it minutes per target to actually search. -max_len is set per target so that
# the line scanner's 4 KiB windows and the 64 KiB head limit are reachable (libFuzzer's
# default cap is 4 KiB); the seeds in fuzz/corpus/<target>/seed-* include inputs that
# long.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_PER_TARGET=20
ASAN=1
TARGETS=()
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) SECONDS_PER_TARGET=$2; shift ;;
        --no-asan) ASAN=0 ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown argument $1" >&2; exit 2 ;;
        *) TARGETS+=("$1") ;;
    esac
    shift
done
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^influx-relay-fuzz$')
fi

# Longest input per target, in bytes: past the structures each one has to cross.
max_len() {
    case $1 in
        http_head) echo 70000 ;;       # the 64 KiB head limit
        lineproto | udp_datagram) echo 20000 ;; # several 4 KiB scanner windows
        *) echo 8192 ;;
    esac
}

# Long seeds, made here rather than committed: a head just under and one just over the
# limit, a body spanning several scanner windows with a string field across a boundary.
seed_long_inputs() {
    local dir=fuzz/corpus
    mkdir -p "$dir/http_head" "$dir/lineproto" "$dir/udp_datagram"
    python3 - "$dir" <<'PY'
import sys
d = sys.argv[1]
head = b"POST /write?db=x HTTP/1.1\r\nX-Pad: " + b"a" * 65400 + b"\r\n\r\n"
open(f"{d}/http_head/long-near-limit", "wb").write(head)
open(f"{d}/http_head/long-over-limit", "wb").write(head[:-4] + b"b" * 400 + b"\r\n\r\n")
body = b"".join(b"cpu,host=h%d usage=%d.5,s=\"x\ny\" %d\n" % (i, i, 1600000000000000000 + i) for i in range(400))
open(f"{d}/lineproto/long-windows", "wb").write(body)
open(f"{d}/udp_datagram/long-windows", "wb").write(body[:9000])
PY
}

FLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
FLAGS+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
FLAGS+=" -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares"
FLAGS+=" --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
[ "$ASAN" = 0 ] || FLAGS+=" -Zsanitizer=address"
HOST=$(rustc -vV | sed -n 's/^host: //p')

echo "==> building ${#TARGETS[@]} fuzz targets (libFuzzer$([ "$ASAN" = 1 ] && echo ', AddressSanitizer'))"
(
    cd fuzz
    RUSTC_BOOTSTRAP=1 RUSTFLAGS="$FLAGS" cargo build --release --target "$HOST" \
        --target-dir target/fuzz --quiet $(printf -- '--bin %s ' "${TARGETS[@]}")
)
seed_long_inputs

failed=()
for t in "${TARGETS[@]}"; do
    work=$(mktemp -d)
    cp fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
    mkdir -p fuzz/artifacts/"$t"
    echo "==> $t: ${SECONDS_PER_TARGET}s, -max_len=$(max_len "$t")"
    if ! fuzz/target/fuzz/"$HOST"/release/"$t" "$work" fuzz/corpus/"$t" \
        -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" \
        -artifact_prefix=fuzz/artifacts/"$t"/ -print_final_stats=1 \
        >"$work.log" 2>&1; then
        failed+=("$t")
        tail -40 "$work.log"
    else
        grep -E '^stat::number_of_executed_units|^Done' "$work.log" | tr '\n' ' '
        echo
    fi
    rm -rf "$work" "$work.log"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found a problem in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "==> every fuzz target ran clean"
