//! The InfluxDB 2.x and 3.x write APIs on a relay listener (issue 13): `/api/v2/write`
//! and `/api/v3/write_lp` in front of real `influxd` 1.x backends, every rejection in
//! the shape those APIs' clients read, and the real 2.x and 3.x client libraries
//! (installed by `scripts/test.sh` into `target/clients/`) writing through the relay.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use crate::util::*;

fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    http_request(addr, "POST", path, headers, body)
}

fn relay_to_shared() -> Relay {
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .outputs_to(shared_backends(), "5s");
    Relay::start(&cfg.to_toml())
}

/// Both shared backends hold `n` points of `m` in `db`.
fn assert_both(db: &str, m: &str, n: u64) {
    for b in shared_backends() {
        assert_eq!(
            count(b.http_addr(), db, m),
            n,
            "{m} in {db} on {}",
            b.http_addr()
        );
    }
}

fn json(resp: &Response) -> Json {
    Json::parse(&resp.body_str()).unwrap_or_else(|e| panic!("{e}: {}", resp.body_str()))
}

/// A 2.x error: the status, `code` and a `message` containing `fragment`.
fn assert_v2_error(resp: &Response, status: u16, code: &str, fragment: &str) {
    assert_eq!(resp.status, status, "{}", resp.body_str());
    let j = json(resp);
    assert_eq!(j["code"].as_str(), Some(code), "{}", resp.body_str());
    let message = j["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(fragment),
        "{fragment:?} not in {message:?}"
    );
    assert!(
        resp.header("Content-Type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        resp.header("Content-Type")
    );
}

/// A 3.x error: the status and an `error` containing `fragment`.
fn assert_v3_error(resp: &Response, status: u16, fragment: &str) -> Json {
    assert_eq!(resp.status, status, "{}", resp.body_str());
    let j = json(resp);
    let error = j["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains(fragment), "{fragment:?} not in {error:?}");
    j
}

#[test]
fn v2_writes_reach_every_backend_with_bucket_rp_precision_and_gzip() {
    let db = shared_db("v2_in");
    let relay = relay_to_shared();
    let addr = relay.addr();
    let r = post(
        addr,
        &format!("/api/v2/write?org=-&bucket={db}&precision=s"),
        &[("Authorization", "Token any:thing")],
        b"m,k=a v=1 1600000000\nm,k=b v=2 1600000001\n",
    );
    assert_eq!(r.status, 204, "{}", r.body_str());
    // db/rp, as 1.8's compatibility API reads a bucket.
    let r = post(
        addr,
        &format!("/api/v2/write?orgID=1&bucket={db}%2Fautogen&precision=ms"),
        &[],
        b"m,k=c v=3 1600000002000\n",
    );
    assert_eq!(r.status, 204, "{}", r.body_str());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"m,k=d v=4 1600000003000000000\nm,k=e v=5\n")
        .unwrap();
    let r = post(
        addr,
        &format!("/api/v2/write?org=o&bucket={db}"),
        &[("Content-Encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(r.status, 204, "{}", r.body_str());
    assert_both(&db, "m", 5);
    // Every timestamp landed where its precision says.
    let t = rows(
        shared_backends()[0].http_addr(),
        &db,
        "SELECT v FROM m WHERE k = 'c' OR k = 'd'",
    );
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[0][0], "1600000002000000000");
    assert_eq!(t[1][0], "1600000003000000000");
}

#[test]
fn v2_rejections_have_the_v2_shape_and_status() {
    let db = shared_db("v2_rej");
    let relay = relay_to_shared();
    let addr = relay.addr();
    let line = b"m v=1 1\n";
    for (query, fragment) in [
        (format!("bucket={db}"), "missing parameter: org"),
        ("org=-".to_string(), "missing parameter: bucket"),
        ("org=-&bucket=".to_string(), "missing parameter: bucket"),
        ("org=-&bucket=%2Frp".to_string(), "invalid bucket"),
        (format!("org=-&bucket={db}/a/b"), "invalid bucket"),
        (
            format!("org=-&bucket={db}&precision=m"),
            "invalid precision",
        ),
    ] {
        let r = post(addr, &format!("/api/v2/write?{query}"), &[], line);
        assert_v2_error(&r, 400, "invalid", fragment);
    }
    // Bad line protocol names the line.
    let r = post(
        addr,
        &format!("/api/v2/write?org=-&bucket={db}"),
        &[],
        b"m v=1 1\nm v=2 2\nbroken\n",
    );
    assert_v2_error(&r, 400, "invalid", "line 3");
    // A database the backends do not have: their 404, in the 2.x shape.
    let r = post(
        addr,
        &format!("/api/v2/write?org=-&bucket={}", unique_db("v2_missing")),
        &[],
        line,
    );
    assert_v2_error(&r, 404, "not found", "database not found");
    let r = http_request(
        addr,
        "GET",
        &format!("/api/v2/write?org=-&bucket={db}"),
        &[],
        b"",
    );
    assert_v2_error(&r, 405, "method not allowed", "invalid write method");
    assert_eq!(r.header("Allow"), Some("POST"));
    assert_both(&db, "m", 0);
}

#[test]
fn v2_too_large_and_relay_auth() {
    let db = shared_db("v2_auth");
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .listener_opt("users", crate::auth::users())
        .listener_opt("max-body-size-mb", 1)
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let path = format!("/api/v2/write?org=-&bucket={db}&precision=s");
    for auth in [None, Some("Token tok-2"), Some("Token telegraf:nope")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = post(addr, &path, &headers, b"m v=1 1\n");
        assert_v2_error(&r, 401, "unauthorized", "authorization failed");
    }
    for (i, auth) in ["Token tok-1", "Token telegraf:s3cret"].iter().enumerate() {
        let r = post(
            addr,
            &path,
            &[("Authorization", auth)],
            format!("m v=1 {}\n", i + 1).as_bytes(),
        );
        assert_eq!(r.status, 204, "{auth}: {}", r.body_str());
    }
    let big = vec![b'#'; 2 << 20];
    let r = post(addr, &path, &[("Authorization", "Token tok-1")], &big);
    assert_v2_error(&r, 413, "request too large", "");
    // The 3.x endpoint is guarded alike.
    let r = post(
        addr,
        &format!("/api/v3/write_lp?db={db}"),
        &[],
        b"m v=1 1\n",
    );
    assert_v3_error(&r, 401, "authorization failed");
    assert_both(&db, "m", 2);
}

#[test]
fn v3_writes_reach_every_backend_with_auto_precision_and_partial_writes() {
    let db = shared_db("v3_in");
    let relay = relay_to_shared();
    let addr = relay.addr();
    let s = 1_600_000_000i64;
    // precision=auto (the default): each line's unit guessed from its size.
    let body = format!(
        "m,k=a v=1 {s}\nm,k=b v=2 {}\nm,k=c v=3 {}\nm,k=d v=4 {}\n",
        (s + 1) * 1_000,
        (s + 2) * 1_000_000,
        (s + 3) * 1_000_000_000
    );
    let r = post(
        addr,
        &format!("/api/v3/write_lp?db={db}&no_sync=true"),
        &[("Authorization", "Bearer ignored")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body_str());
    assert_both(&db, "m", 4);
    let times: Vec<String> = rows(shared_backends()[1].http_addr(), &db, "SELECT v FROM m")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let want: Vec<String> = (0..4)
        .map(|i| ((s + i) * 1_000_000_000).to_string())
        .collect();
    assert_eq!(times, want);
    // db/rp and a named precision.
    let r = post(
        addr,
        &format!("/api/v3/write_lp?db={db}/autogen&precision=second"),
        &[],
        b"n v=1 1600000000\n",
    );
    assert_eq!(r.status, 204, "{}", r.body_str());
    assert_both(&db, "n", 1);

    // accept_partial (the default): the valid lines are written, the rest listed.
    let r = post(
        addr,
        &format!("/api/v3/write_lp?db={db}&precision=second"),
        &[],
        b"p v=1 1600000000\np v=\np v=3 1600000002\n",
    );
    let j = assert_v3_error(&r, 400, "partial write of line protocol occurred");
    assert_eq!(
        j["data"][0]["line_number"].as_u64(),
        Some(2),
        "{}",
        r.body_str()
    );
    assert_eq!(j["data"][0]["original_line"].as_str(), Some("p v="));
    assert_both(&db, "p", 2);
    // accept_partial=false: nothing is written.
    let r = post(
        addr,
        &format!("/api/v3/write_lp?db={db}&precision=second&accept_partial=false"),
        &[],
        b"q v=1 1600000000\nq v=\n",
    );
    let j = assert_v3_error(&r, 400, "parsing failed");
    assert_eq!(j["data"][0]["line_number"].as_u64(), Some(2));
    assert_both(&db, "q", 0);
}

#[test]
fn v3_rejections_have_the_v3_shape() {
    let db = shared_db("v3_rej");
    let relay = relay_to_shared();
    let addr = relay.addr();
    for (query, fragment) in [
        (String::new(), "missing parameter: db"),
        ("db=".to_string(), "missing parameter: db"),
        ("db=%2Fx".to_string(), "invalid bucket"),
        (format!("db={db}&precision=h"), "invalid precision"),
        (
            format!("db={db}&accept_partial=maybe"),
            "invalid accept_partial",
        ),
        (format!("db={db}&no_sync=1"), "invalid no_sync"),
    ] {
        let r = post(
            addr,
            &format!("/api/v3/write_lp?{query}"),
            &[],
            b"m v=1 1\n",
        );
        assert_v3_error(&r, 400, fragment);
    }
    let r = post(
        addr,
        &format!("/api/v3/write_lp?db={}", unique_db("v3_missing")),
        &[],
        b"m v=1 1\n",
    );
    assert_v3_error(&r, 404, "database not found");
    assert_both(&db, "m", 0);
}

#[test]
fn health_and_ping_answer_as_2x_clients_expect() {
    let relay = relay_to_shared();
    let r = http_request(relay.addr(), "GET", "/health", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let j = json(&r);
    assert_eq!(j["status"].as_str(), Some("pass"));
    assert_eq!(j["name"].as_str(), Some("influxdb"));
    assert_eq!(j["message"].as_str(), Some("ready for queries and writes"));
    assert!(j["version"]
        .as_str()
        .is_some_and(|v| v.contains("influx-relay")));
    let r = http_request(relay.addr(), "GET", "/ping", &[], b"");
    assert_eq!(r.status, 204);
    assert_identity(&r);
}

// ---------------------------------------------------------------------------------------
// Real client libraries
// ---------------------------------------------------------------------------------------

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clients")
}

/// Run `tests/clients/<script>` with `HOST PORT DB` and then `extra`, with `env`
/// pointing at its installed library.
fn run_client(
    program: &str,
    script: &str,
    env: (&str, PathBuf),
    addr: SocketAddr,
    db: &str,
    extra: &[&str],
) -> String {
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
        .args([
            addr.ip().to_string(),
            addr.port().to_string(),
            db.to_string(),
        ])
        .args(extra)
        .env(env.0, &env.1)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

#[test]
fn python_influxdb_client_2x_writes_through_the_relay() {
    let db = shared_db("py_v2");
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .listener_opt("users", crate::auth::users())
        .listener_opt("forward-credentials", false)
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let out = run_client(
        "python3",
        "python_v2_client.py",
        ("PYTHONPATH", clients_dir().join("python-v2")),
        relay.addr(),
        &db,
        &["tok-1"],
    );
    assert!(out.contains("influxdb-client: ok"), "{out}");
    assert_both(&db, "py2", 4);
}

#[test]
fn python_influxdb3_client_writes_through_the_relay() {
    let db = shared_db("py_v3");
    let relay = relay_to_shared();
    let out = run_client(
        "python3",
        "python_v3_client.py",
        ("PYTHONPATH", clients_dir().join("python-v2")),
        relay.addr(),
        &db,
        &[],
    );
    assert!(out.contains("influxdb3-python: ok"), "{out}");
    assert_both(&db, "py3", 3);
}

#[test]
fn node_influxdb_client_2x_writes_through_the_relay() {
    let db = shared_db("node_v2");
    let relay = relay_to_shared();
    let out = run_client(
        "node",
        "node_v2_client.js",
        ("NODE_PATH", clients_dir().join("node-v2/node_modules")),
        relay.addr(),
        &db,
        &[],
    );
    assert!(out.contains("@influxdata/influxdb-client: ok"), "{out}");
    assert_both(&db, "node2", 3);
}
