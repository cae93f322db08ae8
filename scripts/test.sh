#!/usr/bin/env bash
# Install what the tests need (a real influxd 1.x), then check formatting and lints and
# run every test of the workspace. Idempotent: installs only what is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust (https://rustup.rs) and run again" >&2
    exit 1
fi

# The integration tests start real influxd processes (the CLI helps when debugging
# them), and the high-availability test puts HAProxy in front of two relays.
if ! command -v influxd >/dev/null 2>&1 || ! command -v influx >/dev/null 2>&1 \
    || [ ! -x /usr/sbin/haproxy ]; then
    say "installing influxdb, influxdb-client and haproxy (apt)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y influxdb influxdb-client haproxy
fi
say "using $(influxd version 2>/dev/null || echo 'influxd (version unknown)')"

if ! cargo fmt --version >/dev/null 2>&1; then
    say "installing rustfmt (rustup)"
    rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1; then
    say "installing clippy (rustup)"
    rustup component add clippy
fi

say "cargo fmt --all --check"
cargo fmt --all --check

say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

say "cargo test --workspace"
cargo test --workspace

say "all checks passed"
