//! Rebuilding a replica (`/admin/rebuild`, `influx-relay rebuild`) against real
//! `influxd`: each test fills a source with the fixture, gives the relay a target that
//! is empty or differs from it, rebuilds the target and then compares the two by reading
//! both (retention policies, field types, every point) and with `influx-relay verify`.
//!
//! Every test starts its own backends: a rebuild writes to its target and reads all of
//! its source, which no test sharing a backend should see.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// 2024-05-01T00:00:00Z, where the fixture's ten days begin.
const DAY0: i64 = 1_714_521_600_000_000_000;
const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;
/// Days of data in the fixture: ten shard groups where the shard duration is 1d, four
/// where it is 3d.
const DAYS: i64 = 10;
/// Half-hour slots in the fixture's ten days (480).
const SLOTS: i64 = DAYS * 48;
/// The fixture's databases: `telemetry` has two retention policies, `fleet-2` a name
/// that InfluxQL must quote.
const FIXTURE_DBS: [&str; 3] = ["telemetry", "fleet-2", "audit"];
/// Points the fixture writes (see [`load_fixture`]).
const FIXTURE_POINTS: u64 = 1440 + 480 + 480 + 120 + 120;
/// How long a rebuild of the fixture, or a CLI run, may take before the test gives up.
const REBUILD_LIMIT: Duration = Duration::from_secs(60);
/// Stretches a rebuild of `telemetry` (two measurements, ten days) over several seconds
/// so that a test can act while it runs: 12 h windows, at most 8 queries a second to
/// each backend, answers in chunks of 20 rows.
const SLOW: &str = "output=b&db=telemetry&window=12h&rate=8&chunk-size=20";

// ---------------------------------------------------------------------------------
// The fixture

/// The series key of the fixture's `cpu load,x` point for `host` in line protocol: the
/// measurement and a tag need escaping.
fn cpu_series(host: i64) -> String {
    format!("cpu\\ load\\,x,host=h{host},zone\\ name=a\\=b\\,c\\ d")
}

/// A float field as line protocol writes it, cycling through values whose JSON text
/// hides their type (`1.0` is answered as `1`) or is not plain (`1e21`).
fn float(k: i64) -> String {
    match k % 4 {
        0 => "1.0".into(),
        1 => "2.5".into(),
        2 => "1e21".into(),
        _ => format!("-{k}.125"),
    }
}

/// Run one InfluxQL statement on `influxd` itself, panicking on any error.
fn statement(influxd: &Influxd, db: &str, q: &str) {
    let mut path = format!("/query?q={}", url_encode(q));
    if !db.is_empty() {
        path.push_str(&format!("&db={}", url_encode(db)));
    }
    let resp = http_request(influxd.http_addr(), "POST", &path, &[], b"");
    assert!(
        resp.status == 200 && !resp.body_str().contains("\"error\""),
        "{q} on {}: {} {}",
        influxd.http_addr(),
        resp.status,
        resp.body_str()
    );
}

/// `POST /write?db=DB&rp=RP` to `influxd` itself; returns the number of lines.
fn write_rp(influxd: &Influxd, db: &str, rp: &str, body: &str) -> u64 {
    let path = format!("/write?db={}&rp={}", url_encode(db), url_encode(rp));
    let resp = http_request(influxd.http_addr(), "POST", &path, &[], body.as_bytes());
    assert_eq!(resp.status, 204, "write to {db}.{rp}: {}", resp.body_str());
    body.lines().count() as u64
}

/// Load the fixture into `influxd` and return how many points it wrote
/// ([`FIXTURE_POINTS`]):
///
/// - `telemetry`: `autogen` altered to 1-day shards, holding `cpu load,x` (3 series every
///   30 min: floats, an integer, a boolean and a field key that needs escaping), and
///   `long` (not the default: 1000 weeks, 1-day shards, replication 1) holding `disk`;
/// - `fleet-2`: `autogen` altered to 2000 weeks and 3-day shards, holding `mem` (integers
///   above 2^53, floats) and `events` (strings with quotes, backslashes, commas, equals
///   signs and spaces);
/// - `audit`: an untouched `autogen` (7-day shards) holding `login`.
fn load_fixture(influxd: &Influxd) -> u64 {
    for (db, q) in [
        ("", "CREATE DATABASE telemetry"),
        (
            "",
            "ALTER RETENTION POLICY autogen ON telemetry SHARD DURATION 1d",
        ),
        (
            "",
            "CREATE RETENTION POLICY long ON telemetry DURATION 1000w REPLICATION 1 SHARD DURATION 1d",
        ),
        ("", "CREATE DATABASE \"fleet-2\""),
        (
            "",
            "ALTER RETENTION POLICY autogen ON \"fleet-2\" DURATION 2000w SHARD DURATION 3d",
        ),
        ("", "CREATE DATABASE audit"),
    ] {
        statement(influxd, db, q);
    }

    let mut cpu = String::new();
    for slot in 0..SLOTS {
        let t = DAY0 + slot * HOUR / 2;
        for h in 0..3 {
            let k = slot * 3 + h;
            let up = if k % 2 == 0 { "true" } else { "f" };
            cpu.push_str(&format!(
                "{} usage={},n={k}i,up={up},va\\ lue\\=x={slot}.5 {t}\n",
                cpu_series(h),
                float(k)
            ));
        }
    }
    let mut disk = String::new();
    let mut mem = String::new();
    let mut events = String::new();
    let mut login = String::new();
    for hour in 0..DAYS * 24 {
        let t = DAY0 + hour * HOUR;
        for (i, path) in ["/", "/var\\ lib"].iter().enumerate() {
            disk.push_str(&format!(
                "disk,path={path} used={hour}.75,inodes={}i {t}\n",
                hour * 1000 + i as i64
            ));
            mem.push_str(&format!(
                "mem,host=h{i} free={}i,ratio={} {t}\n",
                (1i64 << 53) + 1 + hour * 2 + i as i64,
                float(hour + i as i64)
            ));
        }
        if hour % 2 == 0 {
            let ok = if hour % 4 == 0 { "TRUE" } else { "false" };
            events.push_str(&format!(
                "events,kind=deploy msg=\"say \\\"hi\\\" \\\\ back, a=b {hour}\",ok={ok} {t}\n"
            ));
        }
        if hour % 4 == 0 {
            for user in ["o'brien", "a\\ b"] {
                login.push_str(&format!(
                    "login,user={user} ok=t,note=\"k=v, x {hour}\" {t}\n"
                ));
            }
        }
    }
    let points = write_rp(influxd, "telemetry", "autogen", &cpu)
        + write_rp(influxd, "telemetry", "long", &disk)
        + write_rp(influxd, "fleet-2", "autogen", &mem)
        + write_rp(influxd, "fleet-2", "autogen", &events)
        + write_rp(influxd, "audit", "autogen", &login);
    assert_eq!(points, FIXTURE_POINTS);
    points
}

// ---------------------------------------------------------------------------------
// Comparing two backends

/// The answer to `q` as sorted lines, one per row: the series' name and tags, then each
/// column that has a value (`name=json`). A statement error becomes the only line, so a
/// missing database reads as a difference rather than a panic.
fn table(addr: SocketAddr, db: &str, q: &str) -> Vec<String> {
    let json = match try_query(addr, db, q) {
        Ok(json) => json,
        // The message starts with the address, which differs between any two backends.
        Err(e) => return vec![format!("error: {}", e.replacen(&addr.to_string(), "", 1))],
    };
    let result = &json["results"][0];
    assert!(
        result["partial"].as_bool() != Some(true),
        "{q} on {addr}: answer cut short; raise the fixture's limits"
    );
    let mut lines = Vec::new();
    for series in result["series"].as_arr().unwrap_or_default() {
        let head = format!("{} {}", series["name"], series["tags"]);
        let columns = series["columns"].as_arr().unwrap_or_default();
        for row in series["values"].as_arr().unwrap_or_default() {
            let mut line = head.clone();
            for (column, value) in columns.iter().zip(row.as_arr().unwrap_or_default()) {
                if !value.is_null() {
                    line.push_str(&format!(" {}={value}", column.as_str().unwrap_or("?")));
                }
            }
            lines.push(line);
        }
    }
    lines.sort();
    lines
}

/// The first column of every row of `q`'s answer: the names a `SHOW` lists.
fn names(addr: SocketAddr, db: &str, q: &str) -> Vec<String> {
    let json = query(addr, db, q);
    let mut out = Vec::new();
    for series in json["results"][0]["series"].as_arr().unwrap_or_default() {
        for row in series["values"].as_arr().unwrap_or_default() {
            out.extend(row[0].as_str().map(str::to_string));
        }
    }
    out
}

/// Where `other` differs from `reference` in what a replica must hold, one message per
/// difference: per database its retention policies (with their settings) and
/// measurements; per retention policy and measurement its field keys with their types
/// and every point, read with `SELECT * … GROUP BY *` in nanoseconds. Reading the points
/// themselves (not counts) is what tells a changed value or a float written as `1`.
fn differences(reference: SocketAddr, other: SocketAddr, dbs: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut compare = |db: &str, q: String| {
        let want = table(reference, db, &q);
        let got = table(other, db, &q);
        if want != got {
            let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).take(3).collect();
            let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).take(3).collect();
            found.push(format!(
                "{q}: {} rows, reference {}; first only on the reference: {missing:?}; \
                 first only here: {extra:?}",
                got.len(),
                want.len()
            ));
        }
    };
    for db in dbs {
        let on = quote_ident(db);
        compare(db, format!("SHOW RETENTION POLICIES ON {on}"));
        compare(db, format!("SHOW MEASUREMENTS ON {on}"));
        let rps = names(reference, db, &format!("SHOW RETENTION POLICIES ON {on}"));
        let measurements = names(reference, db, &format!("SHOW MEASUREMENTS ON {on}"));
        for rp in &rps {
            for m in &measurements {
                let from = format!("{on}.{}.{}", quote_ident(rp), quote_ident(m));
                compare(
                    db,
                    format!(
                        "SHOW FIELD KEYS ON {on} FROM {}.{}",
                        quote_ident(rp),
                        quote_ident(m)
                    ),
                );
                compare(db, format!("SELECT * FROM {from} GROUP BY *"));
            }
        }
    }
    found
}

/// Panics unless `target` holds exactly what `source` holds in `dbs`.
fn assert_same(source: &Influxd, target: &Influxd, dbs: &[&str]) {
    let found = differences(source.http_addr(), target.http_addr(), dbs);
    assert!(
        found.is_empty(),
        "{} differs from {}:\n{}",
        target.http_addr(),
        source.http_addr(),
        found.join("\n")
    );
}

/// What a run of the relay binary as a command left.
struct Cli {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run `influx-relay ARGS` and wait for it (at most [`REBUILD_LIMIT`]). Both pipes are
/// drained while it runs, so a long report cannot block it.
fn cli(args: &[&str]) -> Cli {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_influx-relay"));
    cmd.args(args)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_timeout(&mut child, REBUILD_LIMIT);
    if status.is_none() {
        kill_and_reap(&mut child);
    }
    Cli {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// `influx-relay verify` on the relay's own config over all time, one-day windows and no
/// rate limit (ten days at the defaults would take minutes); panics unless it exits 0.
fn assert_verify_identical(relay: &Relay, dbs: &[&str]) {
    let config = relay.config_path().display().to_string();
    let mut args = vec![
        "verify", "--config", &config, "--since", "all", "--window", "24h", "--rate", "0",
    ];
    for db in dbs {
        args.extend(["--db", db]);
    }
    let out = cli(&args);
    assert_eq!(out.code, Some(0), "verify:\n{}\n{}", out.stdout, out.stderr);
}

// ---------------------------------------------------------------------------------
// The relay and its rebuild API

/// Two fresh backends: the source and the target.
fn pair() -> (Influxd, Influxd) {
    let mut two = Influxd::start_n(2).into_iter();
    match (two.next(), two.next()) {
        (Some(source), Some(target)) => (source, target),
        _ => unreachable!("start_n(2) returns two"),
    }
}

/// Listener `in` (ack all) with output `a` to the source and `b` to the target, each
/// with a spool.
fn config(source: &Influxd, target: &Influxd) -> RelayConfig {
    RelayConfig::new()
        .http_listener("in", "all")
        .output("a", &source.write_url(), "5s")
        .output_opt("spool-size-mb", 16)
        .output("b", &target.write_url(), "5s")
        .output_opt("spool-size-mb", 16)
}

/// `METHOD /admin/rebuild?QUERY`: the status code and the JSON answer.
fn admin(relay: &Relay, method: &str, query: &str) -> (u16, Json) {
    admin_as(relay.addr(), method, query, &[])
}

fn admin_as(addr: SocketAddr, method: &str, query: &str, headers: &[(&str, &str)]) -> (u16, Json) {
    let path = format!("/admin/rebuild{query}");
    let resp = http_request(addr, method, &path, headers, b"");
    let text = resp.body_str();
    let json = Json::parse(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: {} is not JSON ({e}): {text}", resp.status));
    (resp.status, json)
}

/// Start a rebuild (`POST /admin/rebuild?PARAMS`), which must be accepted.
fn start(relay: &Relay, params: &str) -> Json {
    let (code, status) = admin(relay, "POST", &format!("?{params}"));
    assert_eq!(code, 202, "POST /admin/rebuild?{params}: {status}");
    status
}

/// The status of `output`'s rebuild, `None` when it has never been rebuilt (404).
fn status(relay: &Relay, output: &str) -> Option<Json> {
    let (code, status) = admin(relay, "GET", &format!("?output={output}"));
    match code {
        200 => Some(status),
        404 => None,
        _ => panic!("GET /admin/rebuild?output={output}: {code} {status}"),
    }
}

fn state(status: &Json) -> &str {
    status["state"].as_str().unwrap_or("")
}

/// A counter of the status; panics if it is missing or not a non-negative integer.
fn num(status: &Json, key: &str) -> u64 {
    status[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key} in {status}"))
}

/// Poll `output`'s status until `cond` holds (at most [`REBUILD_LIMIT`]) and return it.
fn wait_for(relay: &Relay, output: &str, what: &str, cond: impl Fn(&Json) -> bool) -> Json {
    let mut last = None;
    let held = wait_until(REBUILD_LIMIT, || {
        last = status(relay, output);
        last.as_ref().is_some_and(&cond)
    });
    let last = last.unwrap_or(Json::Null);
    assert!(
        held,
        "rebuild of {output}: not {what} within {REBUILD_LIMIT:?}; last status: {last}\n\
         relay stderr:\n{}",
        relay.stderr_text()
    );
    last
}

/// Wait until `output`'s rebuild is no longer running and return its final status.
fn wait_done(relay: &Relay, output: &str) -> Json {
    wait_for(relay, output, "finished", |s| state(s) != "running")
}

/// Panics unless `status` is a rebuild that finished cleanly.
fn assert_done(status: &Json) {
    assert_eq!(state(status), "done", "{status}");
    assert_eq!(status["phase"].as_str(), Some("finished"), "{status}");
    assert!(status["error"].is_null(), "{status}");
    assert_eq!(
        num(status, "windows_done"),
        num(status, "windows_total"),
        "{status}"
    );
    assert!(status["finished_ms"].as_u64().is_some(), "{status}");
}

/// The object `/status` shows for backend `name` of the first listener.
fn backend_status(relay: &Relay, name: &str) -> Json {
    let text = http_request(relay.addr(), "GET", "/status", &[], b"").body_str();
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("/status: {e}: {text}"));
    let backends = json["http"][0]["backends"].as_arr().unwrap_or_default();
    let found = backends.iter().find(|b| b["name"].as_str() == Some(name));
    found
        .cloned()
        .unwrap_or_else(|| panic!("no backend {name} in /status: {text}"))
}

/// The value of `metric{listener="in",backend=BACKEND}` in `/metrics`, if shown.
fn metric(relay: &Relay, metric: &str, backend: &str) -> Option<f64> {
    let text = http_request(relay.addr(), "GET", "/metrics", &[], b"").body_str();
    let prefix = format!("{metric}{{");
    let labels = [
        "listener=\"in\"".to_string(),
        format!("backend=\"{backend}\""),
    ];
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix) && labels.iter().all(|label| l.contains(label)))?;
    line.rsplit(' ').next()?.parse().ok()
}

/// `SHOW DATABASES` through the relay: which output answered, and the answer.
fn read_through(relay: &Relay) -> (String, String) {
    let resp = http_request(relay.addr(), "GET", "/query?q=SHOW+DATABASES", &[], b"");
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    let backend = resp.header("X-Relay-Backend").unwrap_or("").to_string();
    (backend, resp.body_str())
}

// ---------------------------------------------------------------------------------
// The tests

#[test]
fn the_replica_comparison_sees_a_missing_window_a_changed_value_and_a_field_type() {
    // The tests below trust `differences`; here it must find what they would miss.
    let (a, b) = pair();
    load_fixture(&a);
    load_fixture(&b);
    assert_same(&a, &b, &FIXTURE_DBS);

    statement(
        &b,
        "telemetry",
        "DELETE FROM \"cpu load,x\" WHERE time >= '2024-05-03T00:00:00Z' AND time < '2024-05-03T01:00:00Z'",
    );
    let found = differences(a.http_addr(), b.http_addr(), &FIXTURE_DBS);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("1434 rows, reference 1440"), "{found:?}");

    let (c, d) = pair();
    statement(&c, "", "CREATE DATABASE types");
    statement(&d, "", "CREATE DATABASE types");
    write_rp(
        &c,
        "types",
        "autogen",
        &format!("m v=1i {DAY0}\nm w=2.5 {DAY0}\n"),
    );
    write_rp(
        &d,
        "types",
        "autogen",
        &format!("m v=1 {DAY0}\nm w=3.5 {DAY0}\n"),
    );
    let found = differences(c.http_addr(), d.http_addr(), &["types"]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("SHOW FIELD KEYS"), "{found:?}");
    assert!(found[1].starts_with("SELECT"), "{found:?}");
}

#[test]
fn rebuild_of_an_empty_target_copies_every_database_policy_and_point_with_its_type() {
    let mut three = Influxd::start_n(3).into_iter();
    let (Some(source), Some(target), Some(second)) = (three.next(), three.next(), three.next())
    else {
        unreachable!("start_n(3) returns three")
    };
    load_fixture(&source);
    let cfg = config(&source, &target)
        .output("c", &second.write_url(), "5s")
        .output_opt("spool-size-mb", 16);
    let relay = Relay::start(&cfg.to_toml());

    // Over HTTP, into `b`: every database but `_internal`, since the first point.
    let started = start(&relay, "output=b&source=a");
    assert_eq!(started["output"].as_str(), Some("b"), "{started}");
    let done = wait_done(&relay, "b");
    assert_done(&done);
    assert_eq!(done["listener"].as_str(), Some("in"), "{done}");
    assert_eq!(done["source"].as_str(), Some("a"), "{done}");
    assert_eq!(
        done["databases"].as_arr().map(<[Json]>::len),
        Some(0),
        "{done}"
    );
    assert!(done["since_ns"].is_null(), "since=all: {done}");
    assert_eq!(done["window_ns"].as_i64(), Some(DAY), "{done}");
    assert_eq!(num(&done, "points_copied"), FIXTURE_POINTS, "{done}");
    assert!(num(&done, "windows_copied") > 0, "{done}");
    assert!(num(&done, "bytes_copied") > 0, "{done}");
    assert!(num(&done, "queries") > 0, "{done}");
    assert_eq!(num(&done, "retries"), 0, "{done}");
    assert_eq!(done["resumed"].as_bool(), Some(false), "{done}");
    assert_eq!(
        done["errors"].as_arr().map(<[Json]>::len),
        Some(0),
        "{done}"
    );
    assert_same(&source, &target, &FIXTURE_DBS);

    // With the command, into `c`.
    let url = format!("http://{}", relay.addr());
    let out = cli(&["rebuild", "--url", &url, "--output", "c", "--source", "a"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.trim().is_empty(), "no summary: {}", out.stderr);
    let shown = cli(&[
        "rebuild", "--url", &url, "--output", "c", "--status", "--json",
    ]);
    assert_eq!(shown.code, Some(0), "{}\n{}", shown.stdout, shown.stderr);
    let done = Json::parse(shown.stdout.trim())
        .unwrap_or_else(|e| panic!("--status --json: {e}: {}", shown.stdout));
    assert_eq!(done["output"].as_str(), Some("c"), "{done}");
    assert_done(&done);
    assert_eq!(num(&done, "points_copied"), FIXTURE_POINTS, "{done}");
    assert_same(&source, &second, &FIXTURE_DBS);

    // Both rebuilds are listed, and verify finds the three outputs identical.
    let (code, all) = admin(&relay, "GET", "");
    assert_eq!(code, 200, "{all}");
    let mut outputs: Vec<_> = all["rebuilds"]
        .as_arr()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r["output"].as_str())
        .collect();
    outputs.sort_unstable();
    assert_eq!(outputs, ["b", "c"], "{all}");
    assert_verify_identical(&relay, &FIXTURE_DBS);
}

#[test]
fn rebuild_copies_only_the_windows_that_differ_and_skips_the_others() {
    let (source, target) = pair();
    load_fixture(&source);
    load_fixture(&target);
    // One day of `cpu load,x` lost, one `mem` value changed (same count).
    statement(
        &target,
        "telemetry",
        "DELETE FROM \"cpu load,x\" WHERE time >= '2024-05-03T00:00:00Z' AND time < '2024-05-04T00:00:00Z'",
    );
    write_rp(
        &target,
        "fleet-2",
        "autogen",
        &format!("mem,host=h1 free=5i {}\n", DAY0 + 6 * DAY + 5 * HOUR),
    );
    assert!(!differences(source.http_addr(), target.http_addr(), &FIXTURE_DBS).is_empty());
    let relay = Relay::start(&config(&source, &target).to_toml());

    start(&relay, "output=b");
    let done = wait_done(&relay, "b");
    assert_done(&done);
    assert_same(&source, &target, &FIXTURE_DBS);
    assert_verify_identical(&relay, &FIXTURE_DBS);
    assert!(
        num(&done, "windows_copied") >= 2,
        "two windows differ: {done}"
    );
    assert!(num(&done, "windows_equal") > 0, "{done}");
    assert!(
        num(&done, "windows_copied") < num(&done, "windows_total"),
        "{done}"
    );
    // A day of cpu (144 points) and a day of mem (48), give or take window alignment;
    // nowhere near the whole fixture.
    assert!(
        num(&done, "points_copied") < FIXTURE_POINTS / 2,
        "untouched windows were copied: {done}"
    );
}

/// The writer of [`live_writes_during_a_rebuild_are_not_undone`]: overwrites fixture
/// points of `cpu load,x` (and adds points beside them) through the relay until `stop`,
/// walking over the ten days so that some writes land in the windows being copied.
/// Returns the last value written for each (host, time), and how many writes were made
/// while the rebuild was running before and after them.
fn overwrite_until(addr: SocketAddr, stop: &AtomicBool) -> (BTreeMap<(i64, i64), i64>, u32) {
    let running = || {
        let (code, status) = admin_as(addr, "GET", "?output=b", &[]);
        code == 200 && state(&status) == "running"
    };
    let mut latest = BTreeMap::new();
    let mut overlapped = 0;
    let deadline = Instant::now() + REBUILD_LIMIT;
    let mut k = 0i64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let value = 1_000_000 + k;
        // 37 and 480 are coprime: every half-hour slot comes up, in a scattered order.
        let t = DAY0 + (k * 37 % SLOTS) * HOUR / 2;
        let mut body = String::new();
        for h in 0..3 {
            for at in [t, t + 1] {
                body.push_str(&format!("{} n={value}i,usage=7.5 {at}\n", cpu_series(h)));
                latest.insert((h, at), value);
            }
        }
        let before = running();
        write_ok(addr, "telemetry", body.as_bytes());
        if before && running() {
            overlapped += 1;
        }
        k += 1;
        thread::sleep(Duration::from_millis(30));
    }
    (latest, overlapped)
}

#[test]
fn live_writes_during_a_rebuild_are_not_undone() {
    let (source, target) = pair();
    load_fixture(&source);
    let relay = Relay::start(&config(&source, &target).to_toml());

    start(&relay, SLOW);
    // Until the schema is there, a write for `telemetry` has no database on the target.
    wait_for(&relay, "b", "copying", |s| {
        s["phase"].as_str() == Some("copying") || state(s) != "running"
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let addr = relay.addr();
        thread::spawn(move || overwrite_until(addr, &stop))
    };
    let done = wait_done(&relay, "b");
    stop.store(true, Ordering::Relaxed);
    let (latest, overlapped) = writer
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert_done(&done);
    assert!(
        overlapped >= 5,
        "only {overlapped} writes while the rebuild ran; slow it down: {done}"
    );
    // Without a window copied again, the race this test is about never happened.
    assert!(
        num(&done, "windows_redone") > 0,
        "no live write touched a window while it was copied: {done}"
    );

    assert_same(&source, &target, &["telemetry"]);
    assert_verify_identical(&relay, &["telemetry"]);
    // The target holds the new values, not the old ones a copy read before them.
    let q = "SELECT n FROM \"telemetry\".\"autogen\".\"cpu load,x\" GROUP BY host";
    let json = query(target.http_addr(), "telemetry", q);
    let mut held = BTreeMap::new();
    for series in json["results"][0]["series"].as_arr().unwrap_or_default() {
        let host = series["tags"]["host"].as_str().unwrap_or("");
        let h: i64 = host.trim_start_matches('h').parse().unwrap_or(-1);
        for row in series["values"].as_arr().unwrap_or_default() {
            if let (Some(t), Some(n)) = (row[0].as_i64(), row[1].as_i64()) {
                held.insert((h, t), n);
            }
        }
    }
    let stale: Vec<_> = latest
        .iter()
        .filter(|(key, value)| held.get(key) != Some(value))
        .map(|((h, t), value)| {
            format!(
                "h{h} at {t}: wrote {value}, holds {:?}",
                held.get(&(*h, *t))
            )
        })
        .collect();
    assert!(
        stale.is_empty(),
        "{} of {} overwritten points lost their new value: {:?}; {done}",
        stale.len(),
        latest.len(),
        &stale[..stale.len().min(5)]
    );
}

#[test]
fn reads_through_the_relay_never_reach_a_rebuilding_target() {
    let (source, target) = pair();
    load_fixture(&source);
    // Only the target has this database: a read it answers shows it.
    statement(&target, "", "CREATE DATABASE only_on_target");
    let relay = Relay::start(&config(&source, &target).to_toml());
    let running = || status(&relay, "b").is_some_and(|s| state(&s) == "running");

    start(&relay, SLOW);
    let mut reads = 0;
    let mut copying_seen = false;
    let mut windows_planned = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(reads >= 40 && copying_seen) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        let before = running();
        let (backend, body) = read_through(&relay);
        if !(before && running()) {
            break;
        }
        assert_eq!(
            backend, "a",
            "read {reads} went to {backend:?} while b rebuilds: {body}"
        );
        assert!(!body.contains("only_on_target"), "{body}");
        reads += 1;
        // Once windows are being copied, what /status, /health and /metrics say.
        let b = backend_status(&relay, "b");
        let progress = &b["rebuild"];
        if copying_seen || progress["phase"].as_str() != Some("copying") {
            continue;
        }
        copying_seen = true;
        assert_eq!(b["state"].as_str(), Some("rebuilding"), "{b}");
        assert_eq!(state(progress), "running", "{b}");
        assert!(num(progress, "windows_total") > 0, "{b}");
        for key in ["windows_done", "points_copied", "queries"] {
            num(progress, key);
        }
        let a = backend_status(&relay, "a");
        assert_ne!(a["state"].as_str(), Some("rebuilding"), "{a}");
        assert!(a["rebuild"].is_null(), "{a}");
        let health = http_request(relay.addr(), "GET", "/health", &[], b"").body_str();
        assert!(
            health.contains(r#"{"name":"b","state":"rebuilding""#),
            "{health}"
        );
        assert_eq!(
            metric(&relay, "influx_relay_backend_rebuilding", "b"),
            Some(1.0)
        );
        assert_eq!(
            metric(&relay, "influx_relay_backend_rebuilding", "a"),
            Some(0.0)
        );
        assert!(metric(&relay, "influx_relay_rebuild_points_copied_total", "b").is_some());
        // Checked last, so that a missing gauge does not hide how reads behave.
        windows_planned = metric(&relay, "influx_relay_rebuild_windows_planned", "b");
    }
    assert!(copying_seen, "never saw the rebuild copying");
    assert!(
        reads >= 20,
        "the rebuild ran for only {reads} reads; slow it down"
    );

    assert_done(&wait_done(&relay, "b"));
    assert_ne!(
        backend_status(&relay, "b")["state"].as_str(),
        Some("rebuilding")
    );
    assert_eq!(
        metric(&relay, "influx_relay_backend_rebuilding", "b"),
        Some(0.0)
    );
    // Done: the target serves reads again (round-robin with the source).
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (backend, body) = read_through(&relay);
            backend == "b" && body.contains("only_on_target")
        }),
        "no read reached b after its rebuild"
    );
    assert!(
        windows_planned.is_some_and(|n| n > 0.0),
        "influx_relay_rebuild_windows_planned while copying: {windows_planned:?}"
    );
}

#[test]
fn a_rebuild_interrupted_by_kill_9_resumes_where_it_stopped() {
    let (source, target) = pair();
    load_fixture(&source);
    let mut relay = Relay::start(&config(&source, &target).to_toml());

    start(&relay, SLOW);
    let before = wait_for(&relay, "b", "5 windows in", |s| {
        num(s, "windows_done") >= 5 || state(s) != "running"
    });
    assert_eq!(
        state(&before),
        "running",
        "finished before the kill; slow it down"
    );
    relay.kill9();
    relay.restart();

    let resumed = wait_for(&relay, "b", "known again", |_| true);
    assert_eq!(resumed["resumed"].as_bool(), Some(true), "{resumed}");
    assert!(
        num(&resumed, "windows_done") > 0,
        "started over: before the kill {before}, after {resumed}"
    );
    assert_eq!(
        num(&resumed, "windows_total"),
        num(&before, "windows_total"),
        "{resumed}"
    );
    let done = wait_done(&relay, "b");
    assert_done(&done);
    assert_eq!(done["resumed"].as_bool(), Some(true), "{done}");
    assert_same(&source, &target, &["telemetry"]);
    assert_verify_identical(&relay, &["telemetry"]);
}

#[test]
fn rebuild_on_start_rebuilds_once_and_not_again_after_a_restart() {
    let (source, target) = pair();
    load_fixture(&source);
    let cfg = config(&source, &target).output_opt("rebuild-on-start", true);
    let mut relay = Relay::start(&cfg.to_toml());

    let done = wait_done(&relay, "b");
    assert_done(&done);
    assert_eq!(done["source"].as_str(), Some("a"), "{done}");
    assert_same(&source, &target, &FIXTURE_DBS);
    assert_verify_identical(&relay, &FIXTURE_DBS);

    relay.restart();
    // For a while after the start: no new rebuild, and b serves reads.
    let quiet_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet_until {
        if let Some(now) = status(&relay, "b") {
            assert_eq!(state(&now), "done", "a new rebuild started: {now}");
            assert_eq!(now["started_ms"], done["started_ms"], "{now}");
        }
        let b = backend_status(&relay, "b");
        assert_ne!(b["state"].as_str(), Some("rebuilding"), "{b}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_rebuild_requests_are_refused_and_start_nothing() {
    let (source, target) = pair();
    let dead = format!("http://127.0.0.1:{}/write", free_port());
    let cfg = config(&source, &target)
        // The source's server again, under another name.
        .output("a-again", &source.write_url(), "5s")
        .output("write-only", &dead, "1s")
        .output_opt("reads", false);
    let relay = Relay::start(&cfg.to_toml());

    assert_eq!(status(&relay, "b").map(|s| s.to_string()), None);
    let (code, all) = admin(&relay, "GET", "");
    assert_eq!(code, 200, "{all}");
    assert_eq!(
        all["rebuilds"].as_arr().map(<[Json]>::len),
        Some(0),
        "{all}"
    );
    let (code, body) = admin(&relay, "DELETE", "?output=b");
    assert_eq!(code, 404, "nothing runs: {body}");

    let (code, body) = admin(&relay, "POST", "?output=nope");
    assert_eq!(code, 404, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("write-only"),
        "should list the outputs: {body}"
    );

    for params in [
        "",
        "output=b&source=b",
        "output=a-again&source=a",
        "output=b&source=write-only",
        "output=b&window=soon",
        "output=b&rate=-1",
        "output=b&since=yesterday",
        "output=b&until=noon",
        "output=b&give-up-after=later",
        "output=b&chunk-size=many",
    ] {
        let (code, body) = admin(&relay, "POST", &format!("?{params}"));
        assert_eq!(code, 400, "POST ?{params}: {body}");
        assert!(body["error"].as_str().is_some(), "POST ?{params}: {body}");
    }
    assert_eq!(status(&relay, "b").map(|s| s.to_string()), None);

    let url = format!("http://{}", relay.addr());
    let out = cli(&["rebuild", "--url", &url, "--output", "nope"]);
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    let out = cli(&["rebuild", "--url", &url]);
    assert_eq!(
        out.code,
        Some(2),
        "no --output: {}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn a_second_rebuild_is_409_and_delete_cancels_giving_reads_back() {
    let (source, target) = pair();
    load_fixture(&source);
    statement(&target, "", "CREATE DATABASE only_on_target");
    let relay = Relay::start(&config(&source, &target).to_toml());

    start(&relay, SLOW);
    let (code, body) = admin(&relay, "POST", "?output=b");
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().is_some(), "{body}");
    assert_eq!(state(&body["rebuild"]), "running", "{body}");

    let (code, cancelled) = admin(&relay, "DELETE", "?output=b");
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!(state(&cancelled), "cancelled", "{cancelled}");
    let after = status(&relay, "b").expect("the cancelled rebuild is still known");
    assert_eq!(state(&after), "cancelled", "{after}");
    let (code, body) = admin(&relay, "DELETE", "?output=b");
    assert_eq!(code, 404, "nothing runs any more: {body}");
    assert_ne!(
        backend_status(&relay, "b")["state"].as_str(),
        Some("rebuilding")
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (backend, body) = read_through(&relay);
            backend == "b" && body.contains("only_on_target")
        }),
        "no read reached b after the cancel"
    );
}

#[test]
fn a_source_that_hangs_mid_way_is_retried_and_the_rebuild_finishes() {
    let (mut source, target) = pair();
    load_fixture(&source);
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .output("a", &source.write_url(), "1s")
        .output("b", &target.write_url(), "5s");
    let relay = Relay::start(&cfg.to_toml());

    start(&relay, SLOW);
    let before = wait_for(&relay, "b", "2 windows in", |s| {
        num(s, "windows_done") >= 2 || state(s) != "running"
    });
    assert_eq!(
        state(&before),
        "running",
        "finished before the pause; slow it down"
    );
    source.pause();
    let retried = wait_for(&relay, "b", "retrying", |s| {
        num(s, "retries") > 0 || state(s) != "running"
    });
    source.resume();
    assert_eq!(state(&retried), "running", "{retried}");

    let done = wait_done(&relay, "b");
    assert_done(&done);
    assert!(num(&done, "retries") > 0, "{done}");
    assert!(
        !done["errors"].as_arr().unwrap_or_default().is_empty(),
        "the failures should be listed: {done}"
    );
    assert_same(&source, &target, &["telemetry"]);
}

#[test]
fn a_source_that_stays_down_fails_the_rebuild_after_give_up_after() {
    let (mut source, target) = pair();
    load_fixture(&source);
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .output("a", &source.write_url(), "1s")
        .output("b", &target.write_url(), "5s");
    let relay = Relay::start(&cfg.to_toml());

    start(&relay, &format!("{SLOW}&give-up-after=3s"));
    let before = wait_for(&relay, "b", "1 window in", |s| {
        num(s, "windows_done") >= 1 || state(s) != "running"
    });
    assert_eq!(
        state(&before),
        "running",
        "finished before the kill; slow it down"
    );
    source.kill9();
    let killed = Instant::now();

    let failed = wait_done(&relay, "b");
    assert_eq!(state(&failed), "failed", "{failed}");
    assert!(
        killed.elapsed() >= Duration::from_secs(3),
        "gave up after {:?}: {failed}",
        killed.elapsed()
    );
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{failed}");
    assert!(
        !failed["errors"].as_arr().unwrap_or_default().is_empty(),
        "{failed}"
    );
    // Failed: still kept from reads until resumed or cancelled.
    let b = backend_status(&relay, "b");
    assert_eq!(b["state"].as_str(), Some("rebuilding"), "{b}");
    let (code, cancelled) = admin(&relay, "DELETE", "?output=b");
    assert_eq!(code, 200, "DELETE of a failed rebuild: {cancelled}");
    assert_eq!(state(&cancelled), "cancelled", "{cancelled}");
    let b = backend_status(&relay, "b");
    assert_ne!(b["state"].as_str(), Some("rebuilding"), "{b}");
}

#[test]
fn rebuild_requests_need_credentials_when_the_listener_has_users() {
    let (source, target) = pair();
    let cfg = config(&source, &target).listener_opt("users", crate::auth::users());
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    for method in ["POST", "GET", "DELETE"] {
        let (code, body) = admin_as(addr, method, "?output=b", &[]);
        assert_eq!(code, 401, "{method} without credentials: {body}");
    }
    let basic = format!("Basic {}", crate::auth::base64(b"telegraf:s3cret"));
    let (code, body) = admin_as(addr, "POST", "?output=nope", &[("Authorization", &basic)]);
    assert_eq!(code, 404, "with credentials, past the check: {body}");
    let (code, body) = admin_as(addr, "GET", "", &[("Authorization", &basic)]);
    assert_eq!(code, 200, "{body}");
}

#[test]
fn a_default_policy_other_than_autogen_is_recreated_as_the_only_one() {
    let (source, target) = pair();
    statement(
        &source,
        "",
        "CREATE DATABASE logs WITH DURATION INF SHARD DURATION 2d NAME main",
    );
    let lines: String = (0..200i64)
        .map(|i| format!("line,app=web n={i}i {}\n", DAY0 + i * HOUR))
        .collect();
    write_rp(&source, "logs", "main", &lines);
    let relay = Relay::start(&config(&source, &target).to_toml());

    start(&relay, "output=b&db=logs");
    let done = wait_done(&relay, "b");
    assert_done(&done);
    assert_eq!(done["databases"][0].as_str(), Some("logs"), "{done}");
    assert_same(&source, &target, &["logs"]);
    assert_verify_identical(&relay, &["logs"]);
}

#[test]
fn dropped_only_copies_the_ranges_given_up_for_the_target_and_clears_them() {
    let (source, mut target) = pair();
    for b in [&source, &target] {
        statement(b, "", "CREATE DATABASE metrics");
    }
    // `b` has neither buffer nor spool: writes that fail for it are dropped, and recorded.
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .output("a", &source.write_url(), "5s")
        .output("b", &target.write_url(), "2s");
    let relay = Relay::start(&cfg.to_toml());
    let dropped = || -> Vec<Json> {
        let b = backend_status(&relay, "b");
        b["dropped_ranges"].as_arr().unwrap_or_default().to_vec()
    };
    // Both get this one, a day before what b will lose.
    let both = format!("m v=0i {}\n", DAY0 - DAY);
    write_ok(relay.addr(), "metrics", both.as_bytes());
    assert!(wait_until(Duration::from_secs(10), || count(
        target.http_addr(),
        "metrics",
        "m"
    ) == 1));

    target.stop();
    let lost: String = (1..=3)
        .map(|i| format!("m v={i}i {}\n", DAY0 + i * HOUR))
        .collect();
    write_ok(relay.addr(), "metrics", lost.as_bytes());
    // Only on the source, a day away from what was dropped: not for this rebuild to copy.
    write_rp(
        &source,
        "metrics",
        "autogen",
        &format!("m v=9i {}\n", DAY0 + DAY),
    );
    assert!(
        wait_until(Duration::from_secs(10), || !dropped().is_empty()),
        "no dropped range recorded for b"
    );
    target.restart();

    start(&relay, "output=b&dropped=true");
    let done = wait_done(&relay, "b");
    assert_done(&done);
    assert_eq!(num(&done, "points_copied"), 3, "{done}");
    let q = "SELECT v FROM m";
    let mut want = vec![vec![(DAY0 - DAY).to_string(), "0".to_string()]];
    want.extend((1..=3).map(|i| vec![(DAY0 + i * HOUR).to_string(), i.to_string()]));
    assert_eq!(rows(target.http_addr(), "metrics", q), want);
    assert!(dropped().is_empty(), "not cleared: {:?}", dropped());
}

/// A live write for a database the target does not have yet (the rebuild has not
/// created it) is kept in the target's queue, not refused to the client: with
/// `ack = all` the client gets 204, and the point reaches the target once the database
/// exists.
#[test]
fn a_write_for_a_database_the_rebuild_has_not_created_yet_waits_for_it() {
    let (source, target) = pair();
    statement(&source, "", "CREATE DATABASE late");
    assert_eq!(source.write("late", "m v=1 1000000000\n").status, 204);
    let relay = Relay::start(&config(&source, &target).to_toml());
    // Two queries a second: the target's database comes a few queries in.
    start(&relay, "output=b&rate=2");
    let r = http_request(
        relay.addr(),
        "POST",
        "/write?db=late",
        &[],
        b"m v=2 2000000000\n",
    );
    assert_eq!(r.status, 204, "{}", r.body_str());
    let b = backend_status(&relay, "b");
    assert!(
        b["spooled_points"].as_u64() > Some(0),
        "the write should have waited in b's queue: {b}"
    );
    assert_done(&wait_done(&relay, "b"));
    let arrived = wait_until(Duration::from_secs(20), || {
        count(target.http_addr(), "late", "m") == 2
    });
    assert!(
        arrived,
        "b holds {} of 2 points",
        count(target.http_addr(), "late", "m")
    );
}
