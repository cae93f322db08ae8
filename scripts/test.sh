#!/usr/bin/env bash
# Install what the tests need (a real influxd 1.x, VictoriaMetrics, haproxy, chromium,
# client libraries), then check formatting and lints and run every test of the
# workspace. Idempotent: installs only what is missing.
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

# The status page is tested in a real browser (tests/it/status_page.rs). Without one
# that test would skip; INFLUX_RELAY_REQUIRE_BROWSER makes it fail instead, so a run of
# this script always covers it.
if ! command -v chromium >/dev/null 2>&1; then
    say "installing chromium (apt)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
export INFLUX_RELAY_REQUIRE_BROWSER=1

# Real client libraries for the /query tests (tests/it/clients.rs), kept under target/.
for tool in python3 node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        say "installing python3, nodejs and npm (apt)"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-pip nodejs npm
        break
    fi
done
if [ ! -d target/clients/python/influxdb ]; then
    say "installing the Python influxdb client (pip, into target/clients/python)"
    python3 -m pip install --quiet --target target/clients/python 'influxdb==5.3.2'
fi
if [ ! -d target/clients/node/node_modules/influx ]; then
    say "installing the node influx client (npm, into target/clients/node)"
    mkdir -p target/clients/node
    npm install --silent --no-audit --no-fund --prefix target/clients/node influx@5.12
fi

# A real backend that speaks the InfluxDB 2.x write API (tests/it/outputs.rs). Debian's
# package enables a service but does not start it here; the tests start their own.
if ! command -v victoria-metrics >/dev/null 2>&1; then
    say "installing victoria-metrics (apt)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y victoria-metrics
fi

# The InfluxDB 2.x and 3.x client libraries (tests/it/write_apis.rs), each set in its
# own directory so that their dependencies never mix with the 1.x clients'.
if [ ! -d target/clients/python-v2/influxdb_client_3 ]; then
    say "installing the Python influxdb-client and influxdb3-python (pip, into target/clients/python-v2)"
    python3 -m pip install --quiet --target target/clients/python-v2 \
        'influxdb-client==1.50.0' 'influxdb3-python==0.21.0'
fi
if [ ! -d target/clients/node-v2/node_modules/@influxdata/influxdb-client ]; then
    say "installing the node @influxdata/influxdb-client (npm, into target/clients/node-v2)"
    mkdir -p target/clients/node-v2
    npm install --silent --no-audit --no-fund --prefix target/clients/node-v2 \
        @influxdata/influxdb-client@1.35.0
fi

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

# Every fuzz target built and run for a few seconds, so none of them rots; give
# scripts/fuzz.sh minutes per target to search for real.
say "scripts/fuzz.sh --seconds 4"
scripts/fuzz.sh --seconds 4

say "all checks passed"
