//! What a backend lacks: writes given up for one output are recorded as dropped
//! ranges, shown in `/status`, kept across a restart, and `verify --dropped` compares
//! exactly them.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// 2024-05-01T10:00:00Z in seconds: the dropped points are written with `precision=s`.
const T0_S: i64 = 1_714_557_600;
const NS: i64 = 1_000_000_000;

fn status(addr: SocketAddr) -> Json {
    let resp = http_request(addr, "GET", "/status", &[], b"");
    Json::parse(&resp.body_str()).unwrap_or_else(|e| panic!("/status: {e}"))
}

/// The `dropped_ranges` of output `name` of the first listener.
fn dropped_ranges(addr: SocketAddr, name: &str) -> Vec<Json> {
    let status = status(addr);
    let backends = status
        .get("http")
        .and_then(|h| h.at(0))
        .and_then(|l| l.get("backends"));
    let backend = backends
        .and_then(Json::as_arr)
        .unwrap_or_default()
        .iter()
        .find(|b| b.get("name").and_then(Json::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no backend {name} in /status"));
    backend
        .get("dropped_ranges")
        .and_then(Json::as_arr)
        .expect("dropped_ranges")
        .to_vec()
}

/// `influx-relay verify ARGS` run where the relay runs (its spool-dir is relative).
fn verify(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_influx-relay"));
    cmd.arg("verify")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot run verify: {e}"));
    let status = wait_timeout(&mut child, Duration::from_secs(60));
    if status.is_none() {
        kill_and_reap(&mut child);
    }
    let mut out = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut out);
    }
    (status.and_then(|s| s.code()), out)
}

/// An output without buffer or spool whose backend is down drops the writes for it;
/// `/status` names the database and the exact span, the list survives a restart, and
/// `verify --dropped` finds the missing points there and nowhere else.
#[test]
fn writes_dropped_for_a_backend_are_recorded_shown_kept_and_verified() {
    let a = &shared_backends()[0];
    let mut b = Influxd::start();
    let db = unique_db("dropped");
    create_db(a, &db);
    create_db(&b, &db);
    let config = RelayConfig::new()
        .http_listener("in", "any")
        .output("a", &a.write_url(), "5s")
        .output("b", &b.write_url(), "2s")
        .to_toml();
    let mut relay = Relay::start(&config);
    let addr = relay.addr();
    let write = |body: String| {
        let path = format!("/write?db={}&precision=s", url_encode(&db));
        let resp = http_request(addr, "POST", &path, &[], body.as_bytes());
        assert_eq!(resp.status, 204, "{}", resp.body_str());
    };
    // Both have this one.
    write(format!("cpu v=1 {}\n", T0_S));
    assert!(wait_until(Duration::from_secs(10), || count(
        b.http_addr(),
        &db,
        "cpu"
    ) == 1));
    assert!(dropped_ranges(addr, "b").is_empty());

    b.stop();
    write(format!(
        "cpu v=2 {}\ncpu v=3 {}\ncpu v=4 {}\n",
        T0_S + 12,
        T0_S + 10,
        T0_S + 11
    ));
    // Only `a` has this one, outside the dropped span: verify --dropped must not look.
    assert_eq!(
        a.write(&db, &format!("cpu v=9 {}\n", (T0_S - 5 * 3600) * NS))
            .status,
        204
    );

    let (from, until) = ((T0_S + 10) * NS, (T0_S + 12) * NS + 1);
    let check = |ranges: &[Json]| {
        assert_eq!(ranges.len(), 1, "{ranges:?}");
        let r = &ranges[0];
        assert_eq!(r.get("database").and_then(Json::as_str), Some(db.as_str()));
        assert_eq!(r.get("retention_policy").and_then(Json::as_str), Some(""));
        assert_eq!(r.get("from_ns").and_then(Json::as_i64), Some(from));
        assert_eq!(r.get("until_ns").and_then(Json::as_i64), Some(until));
        assert_eq!(r.get("points").and_then(Json::as_u64), Some(3));
        assert_eq!(
            r.get("from").and_then(Json::as_str),
            Some("2024-05-01T10:00:10.000000000Z")
        );
    };
    let mut ranges = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        ranges = dropped_ranges(addr, "b");
        !ranges.is_empty()
    }));
    check(&ranges);
    assert!(dropped_ranges(addr, "a").is_empty());
    let file = relay.dir().join("spool/in/b/dropped-ranges");
    assert!(
        wait_until(Duration::from_secs(5), || file.exists()),
        "{}",
        file.display()
    );

    relay.restart();
    check(&dropped_ranges(relay.addr(), "b"));

    b.restart();
    let config_path = relay.config_path();
    let config_arg = config_path.to_str().unwrap();
    let (code, out) = verify(
        relay.dir(),
        &["--config", config_arg, "--dropped", "--json", "--rate", "0"],
    );
    assert_eq!(code, Some(1), "{out}");
    let report = Json::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let differences = report.get("differences").and_then(Json::as_arr).unwrap();
    assert_eq!(differences.len(), 1, "{out}");
    let d = &differences[0];
    assert_eq!(d.get("database").and_then(Json::as_str), Some(db.as_str()));
    assert_eq!(d.get("backend").and_then(Json::as_str), Some("b"), "{out}");
    let window = d.get("window").unwrap();
    assert_eq!(window.get("start_ns").and_then(Json::as_i64), Some(from));
    assert_eq!(window.get("end_ns").and_then(Json::as_i64), Some(until));

    // Where nothing was recorded there is nothing to compare.
    let empty = harness_tempdir("dropped").unwrap();
    let (code, out) = verify(empty.path(), &["--config", config_arg, "--dropped"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("no dropped ranges recorded"), "{out}");
}
