//! `influx-relay verify` against real `influxd` backends: each test gives itself a
//! database on the shared pair, makes the two agree or differ by writing to one of them
//! directly, and checks the exit code and what is printed.

use std::fs;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// 2024-05-01T10:00:00Z, in the middle of a shard group; every point is written with a
/// timestamp so that the two backends can hold the very same points.
const T0: i64 = 1_714_557_600_000_000_000;
const HOUR: i64 = 3_600_000_000_000;
/// The range the tests compare: two days around [`T0`].
const RANGE: [&str; 6] = [
    "--since",
    "48h",
    "--until",
    "2024-05-02T12:00:00Z",
    "--rate",
    "0",
];
/// A verify run on a few windows takes well under a second; this only stops a hang.
const VERIFY_LIMIT: Duration = Duration::from_secs(60);

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run `influx-relay verify --config <config> ARGS` and wait for it.
fn verify(config: &str, args: &[&str]) -> Outcome {
    let dir = harness_tempdir("verify").unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let path = dir.path().join("relay.toml");
    fs::write(&path, config).unwrap_or_else(|e| panic!("cannot write the config: {e}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_influx-relay"));
    cmd.arg("verify")
        .arg("--config")
        .arg(&path)
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot run verify: {e}"));
    // Answers are small here, so the pipes cannot fill up before the exit.
    let status = wait_timeout(&mut child, VERIFY_LIMIT);
    if status.is_none() {
        kill_and_reap(&mut child);
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Outcome {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

fn shared_config() -> String {
    RelayConfig::new()
        .http_listener("in", "all")
        .outputs_to(shared_backends(), "5s")
        .to_toml()
}

fn write_to(influxd: &Influxd, db: &str, body: &str) {
    let resp = influxd.write(db, body);
    assert_eq!(resp.status, 204, "{}", resp.body_str());
}

fn run_query(influxd: &Influxd, q: &str) {
    let resp = http_request(
        influxd.http_addr(),
        "POST",
        &format!("/query?q={}", url_encode(q)),
        &[],
        b"",
    );
    assert!(
        resp.status == 200 && !resp.body_str().contains("\"error\""),
        "{q}: {}",
        resp.body_str()
    );
}

/// The same data on both shared backends: two retention policies, tags that need
/// escaping, every field type, points in several windows and two shard groups.
fn same_data(prefix: &str) -> String {
    let db = shared_db(prefix);
    let mut lines = String::new();
    for i in 0..40i64 {
        let t = T0 + i * HOUR / 4;
        lines.push_str(&format!(
            "cpu,host=h{},dc=a\\ b\\,c usage={}.5,n={i}i,up=true,note=\"x \\\"{i}\\\"\" {t}\n",
            i % 3,
            i
        ));
    }
    // The next day, past a shard group boundary (Thursday 00:00 UTC for 7-day groups).
    lines.push_str(&format!("mem,host=h0 free=1i {}\n", T0 + 24 * HOUR - 1));
    for b in shared_backends() {
        write_to(b, &db, &lines);
        run_query(
            b,
            &format!(
                "CREATE RETENTION POLICY \"two\" ON {} DURATION 0s REPLICATION 1",
                quote_ident(&db)
            ),
        );
        let resp = http_request(
            b.http_addr(),
            "POST",
            &format!("/write?db={}&rp=two", url_encode(&db)),
            &[],
            format!("disk,path=/ used=0.25 {T0}\n").as_bytes(),
        );
        assert_eq!(resp.status, 204, "{}", resp.body_str());
    }
    db
}

#[test]
fn identical_backends_exit_0() {
    let db = same_data("verify_same");
    let mut args = vec!["--db", db.as_str()];
    args.extend(RANGE);
    let out = verify(&shared_config(), &args);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.ends_with("identical\n"), "{}", out.stdout);
    // 40 cpu + 1 mem + 1 disk points on each.
    assert!(out.stdout.contains("b0 42, b1 42"), "{}", out.stdout);

    let all = verify(&shared_config(), &["--db", db.as_str(), "--since", "all"]);
    assert_eq!(all.code, Some(0), "{}\n{}", all.stdout, all.stderr);
    assert!(all.stdout.contains("b0 42, b1 42"), "{}", all.stdout);
}

#[test]
fn a_backend_missing_points_is_named() {
    let db = same_data("verify_missing");
    // Five points more on b0 in the 12:00 window: b1 lacks them.
    let [b0, _] = shared_backends();
    let extra: String = (0..5)
        .map(|i| format!("cpu,host=late usage=1 {}\n", T0 + 2 * HOUR + i))
        .collect();
    write_to(b0, &db, &extra);
    let mut args = vec!["--db", db.as_str()];
    args.extend(RANGE);
    let out = verify(&shared_config(), &args);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("lacks"))
        .unwrap_or_else(|| panic!("no lacks line:\n{}", out.stdout));
    assert!(
        line.contains("2024-05-01T12:00:00Z .. 2024-05-01T13:00:00Z")
            && line.contains(" b1 ")
            && line.contains("lacks 5 points: has 4, b0 has 9")
            && line.contains(&db)
            && line.contains("cpu"),
        "{line}"
    );
    assert!(out.stdout.ends_with("1 difference\n"), "{}", out.stdout);
}

#[test]
fn equal_counts_with_one_other_value_differ() {
    let db = same_data("verify_value");
    // Overwrite one value on b1: same series and time, so the count stays.
    let [_, b1] = shared_backends();
    write_to(
        b1,
        &db,
        &format!("cpu,host=h1,dc=a\\ b\\,c usage=99.5 {}\n", T0 + HOUR / 4),
    );
    let mut args = vec!["--db", db.as_str(), "--json"];
    args.extend(RANGE);
    let out = verify(&shared_config(), &args);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    let json = Json::parse(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(json["identical"].as_bool(), Some(false));
    let diffs = json["differences"].as_arr().unwrap_or_default();
    assert_eq!(diffs.len(), 1, "{}", out.stdout);
    let d = &diffs[0];
    assert_eq!(d["kind"].as_str(), Some("points-differ"), "{}", out.stdout);
    assert_eq!(d["backend"].as_str(), Some("b1"));
    assert_eq!(d["reference"].as_str(), Some("b0"));
    assert_eq!(d["database"].as_str(), Some(db.as_str()));
    assert_eq!(d["retention_policy"].as_str(), Some("autogen"));
    assert_eq!(d["measurement"].as_str(), Some("cpu"));
    assert_eq!(d["points"].as_u64(), Some(4));
    assert_eq!(d["window"]["start"].as_str(), Some("2024-05-01T10:00:00Z"));
    assert_eq!(d["window"]["end_ns"].as_i64(), Some(T0 + HOUR));
    let backends = json["listeners"][0]["backends"]
        .as_arr()
        .unwrap_or_default();
    assert_eq!(backends.len(), 2);
    assert_eq!(backends[0]["points"].as_u64(), Some(42));
}

#[test]
fn integer_on_one_float_on_the_other_differs() {
    // The JSON of both answers reads `1`: only the field type tells them apart.
    let db = shared_db("verify_type");
    let [b0, b1] = shared_backends();
    write_to(b0, &db, &format!("m v=1i {T0}\n"));
    write_to(b1, &db, &format!("m v=1 {T0}\n"));
    let mut args = vec!["--db", db.as_str()];
    args.extend(RANGE);
    let out = verify(&shared_config(), &args);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("field \"v\" is float, on b0 integer"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("1 points, as many as b0, but other points or values"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_missing_database_is_reported() {
    let db = unique_db("verify_nodb");
    let [b0, _] = shared_backends();
    create_db(b0, &db);
    write_to(b0, &db, &format!("m v=1 {T0}\n"));
    let mut args = vec!["--db", db.as_str()];
    args.extend(RANGE);
    let out = verify(&shared_config(), &args);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("no such database (b0 has it)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("lacks 1 points: has 0, b0 has 1"),
        "{}",
        out.stdout
    );
}

#[test]
fn answers_larger_than_a_chunk_are_streamed() {
    // 30 000 points in one window, read 1000 rows at a time; one value differs.
    let db = shared_db("verify_chunks");
    let body: String = (0..30_000i64)
        .map(|i| format!("big,s={} v={i}i {}\n", i % 7, T0 + i))
        .collect();
    let [b0, b1] = shared_backends();
    write_to(b0, &db, &body);
    write_to(b1, &db, &body);
    write_to(
        b1,
        &db,
        &format!("big,s=3 v=-1i {}\n", T0 + 29_998 - (29_998 % 7) + 3),
    );
    let mut args = vec!["--db", db.as_str(), "--chunk-size", "1000", "--rate", "0"];
    args.extend(RANGE);
    let out = verify(&shared_config(), &args);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("30000 points, as many as b0"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("b0 30000, b1 30000"), "{}", out.stdout);
}

#[test]
fn an_unreachable_backend_exits_2_naming_it() {
    let db = shared_db("verify_down");
    let [b0, _] = shared_backends();
    // A port nothing listens on.
    let dead = format!("http://127.0.0.1:{}/write", free_port());
    let config = RelayConfig::new()
        .http_listener("in", "all")
        .output("up", &b0.write_url(), "5s")
        .output("down", &dead, "2s")
        .to_toml();
    for json in [false, true] {
        let mut args = vec!["--db", db.as_str()];
        if json {
            args.push("--json");
        }
        let out = verify(&config, &args);
        assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("backend \"down\"")
                && out.stderr.contains("cannot connect")
                && out.stderr.contains("check that it is up"),
            "{}",
            out.stderr
        );
        if json {
            let doc =
                Json::parse(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
            assert!(doc["error"]
                .as_str()
                .unwrap_or("")
                .contains("cannot connect"));
        }
    }
}

#[test]
fn the_rate_limit_spaces_the_queries_to_each_backend() {
    let db = same_data("verify_rate");
    let args = [
        "--db",
        db.as_str(),
        "--since",
        "48h",
        "--until",
        "2024-05-02T12:00:00Z",
        "--window",
        "12h",
        "--rate",
        "20",
        "--json",
    ];
    let started = std::time::Instant::now();
    let out = verify(&shared_config(), &args);
    let took = started.elapsed();
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let json = Json::parse(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    let queries = json["listeners"][0]["backends"][0]["queries"]
        .as_u64()
        .unwrap_or(0);
    assert!(queries > 10, "{}", out.stdout);
    let least = Duration::from_secs_f64((queries - 1) as f64 / 20.0);
    assert!(took >= least, "{queries} queries in {took:?}");
}

#[test]
fn bad_command_lines_exit_2() {
    let out = verify(&shared_config(), &["--since", "soon"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--since"), "{}", out.stderr);
    let out = verify(&shared_config(), &["--listener", "nope"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("no HTTP listener named \"nope\""),
        "{}",
        out.stderr
    );
}
