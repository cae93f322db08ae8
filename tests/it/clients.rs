//! Real client libraries against the relay and two real influxd: the Python
//! `influxdb` client and the node `influx` client, installed by `scripts/test.sh`
//! into `target/clients/` (they create a database, write, and read back).

use std::path::PathBuf;
use std::process::Command;

use crate::util::*;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clients")
}

fn run_client(program: &str, script: &str, env: (&str, PathBuf)) {
    let db = unique_db(&format!("client_{}", program.replace('3', "")));
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    assert!(
        env.1.exists(),
        "{} is missing: run scripts/test.sh, which installs the client libraries",
        env.1.display()
    );
    let out = Command::new(program)
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/clients")
                .join(script),
        )
        .args([addr.ip().to_string(), addr.port().to_string(), db.clone()])
        .env(env.0, &env.1)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}\nrelay:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        relay.stderr_text()
    );
    // Both backends got the database and the points, not just the one that answered.
    let [a, b] = shared_backends();
    let m = if program == "node" { "node" } else { "py" };
    let want = count(a.http_addr(), &db, m);
    assert!(want >= 3);
    assert_eq!(count(b.http_addr(), &db, m), want);
}

#[test]
fn python_influxdb_client_creates_writes_and_reads() {
    run_client(
        "python3",
        "python_client.py",
        ("PYTHONPATH", clients_dir().join("python")),
    );
}

#[test]
fn node_influx_client_creates_writes_and_reads() {
    run_client(
        "node",
        "node_client.js",
        ("NODE_PATH", clients_dir().join("node/node_modules")),
    );
}

/// The node `influx` client's create / write / show / drop flow, 40 times through the
/// relay with the default `ack = "any"`: every step reads what the step before changed,
/// so this fails whenever a read reaches a backend still applying an acknowledged
/// change.
#[test]
fn node_influx_flow_reads_its_own_changes_every_time() {
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let modules = clients_dir().join("node/node_modules");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/test.sh, which installs the client libraries",
        modules.display()
    );
    let out = Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node_flow.js"))
        .args([
            addr.ip().to_string(),
            addr.port().to_string(),
            unique_db("node_flow"),
            "40".to_string(),
        ])
        .env("NODE_PATH", modules)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    assert!(
        out.status.success(),
        "node_flow.js failed:\n{}\n{}\nrelay:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        relay.stderr_text()
    );
}
