//! The core write path against two real InfluxDB: replication, checks, framing,
//! failures and shutdown (README: Running it, HTTP API).

use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::util::*;

fn relay_to_shared(ack: &str) -> (Relay, RelayConfig) {
    let cfg = RelayConfig::new()
        .http_listener("in", ack)
        .outputs_to(shared_backends(), "5s");
    (Relay::start(&cfg.to_toml()), cfg)
}

fn both_rows(db: &str, q: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let [a, b] = shared_backends();
    (rows(a.http_addr(), db, q), rows(b.http_addr(), db, q))
}

#[test]
fn writes_reach_both_backends_with_identical_rows() {
    let db = shared_db("core_both");
    let (relay, _) = relay_to_shared("any");
    let resp = relay.write(
        &db,
        "cpu,host=a v=1 1000000000\ncpu,host=b v=2 2000000000\nmem free=3.5 3000000000\n",
    );
    assert_eq!(resp.status, 204, "{}", resp.body_str());
    assert_identity(&resp);
    let [a, b] = shared_backends();
    assert!(wait_until(Duration::from_secs(5), || count(
        a.http_addr(),
        &db,
        "cpu"
    ) == 2
        && count(b.http_addr(), &db, "cpu") == 2));
    let (ra, rb) = both_rows(&db, "SELECT * FROM cpu");
    assert_eq!(ra, rb);
    assert_eq!(ra.len(), 2);
    assert_eq!(ra[0][0], "1000000000");
}

#[test]
fn points_without_timestamp_get_the_same_time_on_every_backend() {
    let db = shared_db("core_stamp");
    let (relay, _) = relay_to_shared("all");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let resp = http_request(
        relay.addr(),
        "POST",
        &format!("/write?db={db}&precision=s"),
        &[],
        b"m v=1\nm,t=x v=2\n",
    );
    assert_eq!(resp.status, 204, "{}", resp.body_str());
    let (ra, rb) = both_rows(&db, "SELECT * FROM m");
    assert_eq!(ra, rb, "replicas differ");
    assert_eq!(ra.len(), 2);
    // Stamped at second precision: a whole number of seconds, close to now.
    let ts: i64 = ra[0][0].parse().unwrap();
    assert_eq!(ts % 1_000_000_000, 0, "not truncated to seconds: {ts}");
    assert!((ts / 1_000_000_000 - before).abs() <= 5, "{ts} vs {before}");
    assert_eq!(
        ra[0][0], ra[1][0],
        "both lines of one request share the instant"
    );
}

#[test]
fn escapes_quoted_newlines_comments_blank_lines_and_crlf() {
    let db = shared_db("core_lp");
    let (relay, _) = relay_to_shared("all");
    let body = "# a comment\r\n\r\nm\\ x,t=a\\,b s=\"multi\nline \\\"q\\\"\" 1\r\n\n  \nm\\ x,t=c s=\"x\" 2\n";
    let resp = relay.write(&db, body);
    assert_eq!(resp.status, 204, "{}", resp.body_str());
    let (ra, rb) = both_rows(&db, "SELECT * FROM \"m x\"");
    assert_eq!(ra, rb);
    assert_eq!(ra.len(), 2, "{ra:?}");
    assert_eq!(ra[0][1], "\"multi\\nline \\\"q\\\"\"");
    assert_eq!(ra[0][2], "\"a,b\"");
}

#[test]
fn missing_db_bad_precision_and_bad_lines_are_refused_and_nothing_is_written() {
    let db = shared_db("core_reject");
    let (relay, _) = relay_to_shared("any");
    let r = http_request(relay.addr(), "POST", "/write", &[], b"m v=1\n");
    assert_eq!(r.status, 400);
    assert_eq!(r.body_str(), r#"{"error":"missing parameter: db"}"#);
    assert_eq!(r.header("Content-Type"), Some("application/json"));

    let r = http_request(
        relay.addr(),
        "POST",
        &format!("/write?db={db}&precision=days"),
        &[],
        b"m v=1\n",
    );
    assert_eq!(r.status, 400);
    assert!(r.body_str().contains("\\\"days\\\""), "{}", r.body_str());

    let r = relay.write(&db, "m v=1 1\nm v=2 2\nm v= 3\nm v=4 4\n");
    assert_eq!(r.status, 400);
    assert!(
        r.body_str()
            .starts_with(r#"{"error":"unable to parse points: line 3: "#),
        "{}",
        r.body_str()
    );
    // All or nothing: the good lines were not forwarded either.
    std::thread::sleep(Duration::from_millis(300));
    let [a, b] = shared_backends();
    assert_eq!(count(a.http_addr(), &db, "m"), 0);
    assert_eq!(count(b.http_addr(), &db, "m"), 0);
}

#[test]
fn gzip_and_chunked_bodies() {
    let db = shared_db("core_gzip");
    let (relay, _) = relay_to_shared("all");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(b"g v=1 1\ng v=2 2\n").unwrap();
    let gz = enc.finish().unwrap();
    let r = http_request(
        relay.addr(),
        "POST",
        &format!("/write?db={db}"),
        &[("Content-Encoding", "gzip")],
        &gz,
    );
    assert_eq!(r.status, 204, "{}", r.body_str());

    let r = http_request(
        relay.addr(),
        "POST",
        &format!("/write?db={db}"),
        &[("Content-Encoding", "gzip")],
        b"nope",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.body_str(), r#"{"error":"unable to decode gzip body"}"#);

    let chunked = b"6\r\nc v=1 \r\n4\r\n1\nc \r\n6\r\nv=2 2\n\r\n0\r\n\r\n";
    let r = http_request(
        relay.addr(),
        "POST",
        &format!("/write?db={db}"),
        &[("Transfer-Encoding", "chunked")],
        chunked,
    );
    assert_eq!(r.status, 204, "{}", r.body_str());
    let [a, b] = shared_backends();
    assert_eq!(count(a.http_addr(), &db, "g"), 2);
    assert_eq!(count(b.http_addr(), &db, "c"), 2);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let db = shared_db("core_pipe");
    let (relay, _) = relay_to_shared("all");
    let mut wire = Vec::new();
    for i in 0..5 {
        let body = format!("p v={i} {i}\n");
        wire.extend_from_slice(
            format!(
                "POST /write?db={db} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        wire.extend_from_slice(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    wire.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = raw_exchange(relay.addr(), &wire, Duration::from_secs(10));
    let answers = parse_responses(&out);
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [204, 204, 204, 204, 204, 204, 204, 204, 204, 204, 404]
    );
    let [a, _] = shared_backends();
    assert_eq!(count(a.http_addr(), &db, "p"), 5);
}

#[test]
fn expect_100_continue_gets_an_interim_answer() {
    let db = shared_db("core_expect");
    let (relay, _) = relay_to_shared("any");
    let mut s = std::net::TcpStream::connect(relay.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = "e v=1 1\n";
    write!(s, "POST /write?db={db} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut s, &mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(body.as_bytes()).unwrap();
    let n = std::io::Read::read(&mut s, &mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 204"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn backend_404_is_passed_through() {
    let (relay, _) = relay_to_shared("any");
    let r = relay.write(&unique_db("core_nodb"), "m v=1 1\n");
    assert_eq!(r.status, 404, "{}", r.body_str());
    assert!(
        r.body_str().contains("database not found"),
        "{}",
        r.body_str()
    );
}

#[test]
fn routes_ping_options_405_404() {
    let (relay, _) = relay_to_shared("any");
    let r = http_request(relay.addr(), "GET", "/ping", &[], b"");
    assert_eq!(r.status, 204);
    assert_identity(&r);
    let r = http_request(relay.addr(), "HEAD", "/ping", &[], b"");
    assert_eq!(r.status, 204);
    let r = http_request(relay.addr(), "OPTIONS", "/write", &[], b"");
    assert_eq!((r.status, r.header("Allow")), (204, Some("POST")));
    let r = http_request(relay.addr(), "GET", "/write?db=x", &[], b"");
    assert_eq!((r.status, r.header("Allow")), (405, Some("POST")));
    assert_eq!(r.body_str(), r#"{"error":"invalid write method"}"#);
    // The 2.x write API is served (tests/it/write_apis.rs); its Flux queries are not.
    let r = http_request(relay.addr(), "POST", "/api/v2/query", &[], b"m v=1");
    assert_eq!(r.status, 404);
    assert_eq!(r.body_str(), r#"{"error":"invalid write endpoint"}"#);
}

#[test]
fn fifty_concurrent_clients_exact_counts() {
    let db = shared_db("core_conc");
    let (relay, _) = relay_to_shared("all");
    let addr = relay.addr();
    let threads: Vec<_> = (0..50)
        .map(|c| {
            let db = db.clone();
            std::thread::spawn(move || {
                for r in 0..10 {
                    let mut body = String::new();
                    for l in 0..20 {
                        body.push_str(&format!(
                            "conc,client={c} v={l} {}\n",
                            (r * 20 + l + 1) as u64 * 1000
                        ));
                    }
                    let resp = http_request(
                        addr,
                        "POST",
                        &format!("/write?db={db}"),
                        &[],
                        body.as_bytes(),
                    );
                    assert_eq!(resp.status, 204, "{}", resp.body_str());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let [a, b] = shared_backends();
    assert_eq!(count(a.http_addr(), &db, "conc"), 50 * 10 * 20);
    assert_eq!(count(b.http_addr(), &db, "conc"), 50 * 10 * 20);
}

#[test]
fn one_backend_killed_still_204_all_killed_5xx_within_timeout() {
    let mut pair = Influxd::start_n(2);
    let db = unique_db("core_kill");
    for b in &pair {
        create_db(b, &db);
    }
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to(pair.iter(), "2s");
    let relay = Relay::start(&cfg.to_toml());
    pair[0].kill9();
    let r = relay.write(&db, "k v=1 1\n");
    assert_eq!(r.status, 204, "{}", r.body_str());
    assert_eq!(count(pair[1].http_addr(), &db, "k"), 1);

    // Paused (accepts, never answers) rather than killed: the worst case for a timeout.
    pair[1].pause();
    let start = Instant::now();
    let r = relay.write(&db, "k v=2 2\n");
    let took = start.elapsed();
    assert!(r.status >= 500, "{} {}", r.status, r.body_str());
    assert!(took < Duration::from_secs(4), "answered after {took:?}");
    pair[1].resume();
}

#[test]
fn sigterm_exits_zero() {
    let (mut relay, _) = relay_to_shared("any");
    let status = relay.stop();
    assert!(status.success(), "{status:?}\n{}", relay.stderr_text());
}

#[test]
fn check_config_and_bad_files() {
    let bin = env!("CARGO_BIN_EXE_influx-relay");
    let dir = tempfile::tempdir().unwrap();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/config/relay.toml");
    let out = std::process::Command::new(bin)
        .args(["--check-config", "-config", sample])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("http"));
    // The README runs the relay on this file and promises that acknowledged writes
    // survive a backend outage: only true with a spool on every HTTP output.
    let http_outputs: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("  -> ") && l.contains("http://"))
        .collect();
    assert!(!http_outputs.is_empty(), "{summary}");
    for line in http_outputs {
        assert!(!line.contains(" spool=0MB"), "no spool: {line}");
        // The policy decided at start is named.
        assert!(line.contains(" full-queue=hold-spool"), "{line}");
    }

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[http]]\nbind-addr = \"127.0.0.1:1\"\nbogus = 1\noutput = [{ location = \"http://127.0.0.1:2/write\" }]\n").unwrap();
    let out = std::process::Command::new(bin)
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("error: {}: http[0]", bad.display())),
        "{err}"
    );
    assert!(err.contains("bogus"), "{err}");

    let out = std::process::Command::new(bin)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-config") && err.contains("config/relay.toml"),
        "{err}"
    );

    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("influx-relay "));
}

/// Writes queued for a backend are sent together; when the backend refuses such a
/// merged request, each write must still get its own answer.
#[test]
fn coalesced_writes_get_their_own_answers_when_one_is_refused() {
    let db = unique_db("core_coalesce");
    let mut backend = Influxd::start();
    create_db(&backend, &db);
    // The backend knows `v` as a float: a string for it is refused.
    assert_eq!(backend.write(&db, "g v=1 1").status, 204);
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to([&backend], "5s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    backend.pause();
    let send = |body: &'static str, delay_ms: u64| {
        let db = db.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(delay_ms));
            http_request(
                addr,
                "POST",
                &format!("/write?db={db}"),
                &[],
                body.as_bytes(),
            )
            .status
        })
    };
    // The first holds the worker (the backend is paused); the next three wait behind
    // it and go out as one request.
    let first = send("g v=10 10\n", 0);
    let good1 = send("g v=20 20\n", 200);
    let bad = send("g v=\"text\" 30\n", 300);
    let good2 = send("g v=40 40\n", 400);
    std::thread::sleep(Duration::from_millis(900));
    backend.resume();
    assert_eq!(first.join().unwrap(), 204);
    assert_eq!(good1.join().unwrap(), 204);
    assert_eq!(bad.join().unwrap(), 400);
    assert_eq!(good2.join().unwrap(), 204);
    assert_eq!(count(backend.http_addr(), &db, "g"), 4);
}

/// InfluxDB 1.x reads `precision=us` (or `ns`, `µ`) as nanoseconds; the relay accepts
/// every spelling and forwards the one the backend understands.
#[test]
fn microsecond_precision_spelled_us_keeps_its_meaning() {
    let db = shared_db("core_us");
    let (relay, _) = relay_to_shared("all");
    let r = http_request(
        relay.addr(),
        "POST",
        &format!("/write?db={db}&precision=us"),
        &[],
        b"u v=1 1700000000000001\n",
    );
    assert_eq!(r.status, 204, "{}", r.body_str());
    let (ra, rb) = both_rows(&db, "SELECT * FROM u");
    assert_eq!(
        ra,
        vec![vec!["1700000000000001000".to_string(), "1".to_string()]]
    );
    assert_eq!(ra, rb);
}

/// A client library that reads `X-Influxdb-Build` without checking for it failed on
/// the relay, which sent only `X-Influxdb-Version: relay`; InfluxDB sends both on every
/// answer, and so must the relay, on its own answers and its errors alike.
#[test]
fn every_answer_carries_influxdb_build_and_version() {
    let db = shared_db("core_identity");
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .listener_opt("max-body-size-mb", 1)
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let write = format!("/write?db={db}");
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        ("GET", "/ping".into(), Vec::new(), 204),
        ("HEAD", "/ping".into(), Vec::new(), 204),
        ("POST", write.clone(), b"m v=1 1\n".to_vec(), 204),
        ("POST", write.clone(), b"m v=\n".to_vec(), 400),
        ("POST", "/write".into(), b"m v=1 1\n".to_vec(), 400),
        ("POST", write.clone(), vec![b'#'; 2 << 20], 413),
        ("GET", write, Vec::new(), 405),
        ("OPTIONS", "/write".into(), Vec::new(), 204),
        ("GET", "/nowhere".into(), Vec::new(), 404),
        ("GET", "/health".into(), Vec::new(), 200),
        ("GET", "/metrics".into(), Vec::new(), 200),
        (
            "POST",
            format!("/query?q={}", url_encode(&format!("CREATE DATABASE {db}"))),
            Vec::new(),
            200,
        ),
        ("GET", "/query".into(), Vec::new(), 400),
    ];
    for (method, path, body, status) in cases {
        let r = http_request(addr, method, &path, &[], &body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body_str());
        assert_identity(&r);
    }
    // Errors decided before a request is parsed at all carry them too.
    let out = raw_exchange(
        addr,
        b"\x16\x03\x01 garbage\r\n\r\n",
        Duration::from_secs(5),
    );
    let answers = parse_responses(&out);
    assert_eq!(answers.len(), 1, "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(answers[0].status, 400);
    assert_identity(&answers[0]);
}

/// `SO_REUSEPORT` let a second relay bind the addresses of a running one without an
/// error, and the kernel then split the clients between the two. A relay must refuse to
/// start, naming the address, while another process listens on one of its HTTP or UDP
/// addresses; the running one is not disturbed.
#[test]
fn a_second_process_on_the_same_address_stops_the_start() {
    let db = shared_db("core_twice");
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to(shared_backends(), "5s")
        .udp_listener("udp")
        .outputs_to(shared_backends(), "");
    let text = cfg.to_toml();
    let first = Relay::start(&text);
    let http = cfg.addr();
    let udp = cfg.listener_addr("udp");

    let expect_refusal = |config: &str, names: &str| {
        let (status, stderr) = run_relay_until_exit(config, Duration::from_secs(10));
        let status = status.unwrap_or_else(|| panic!("still running; stderr:\n{stderr}"));
        assert!(!status.success(), "{status:?}\n{stderr}");
        assert!(stderr.contains(names), "{names} not in:\n{stderr}");
    };
    // The very same config: its HTTP address, the first one bound, is named.
    expect_refusal(&text, &format!("cannot listen on {http}"));
    // Only the UDP address taken.
    let other_http = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    expect_refusal(
        &text.replace(&http.to_string(), &other_http.to_string()),
        &format!("cannot listen on udp {udp}"),
    );
    // Any other program, even with SO_REUSEPORT (which a relay's own loops use).
    for udp_socket in [false, true] {
        let (ty, protocol) = if udp_socket {
            (socket2::Type::DGRAM, socket2::Protocol::UDP)
        } else {
            (socket2::Type::STREAM, socket2::Protocol::TCP)
        };
        let foreign = socket2::Socket::new(socket2::Domain::IPV4, ty, Some(protocol)).unwrap();
        foreign.set_reuse_address(true).unwrap();
        foreign.set_reuse_port(true).unwrap();
        foreign
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        if !udp_socket {
            foreign.listen(16).unwrap();
        }
        let taken = foreign.local_addr().unwrap().as_socket().unwrap();
        let (old, name) = if udp_socket {
            (udp, format!("cannot listen on udp {taken}"))
        } else {
            (http, format!("cannot listen on {taken}"))
        };
        let mut config = text.replace(&old.to_string(), &taken.to_string());
        if udp_socket {
            config = config.replace(&http.to_string(), &other_http.to_string());
        }
        expect_refusal(&config, &name);
    }

    // The first relay serves on, over HTTP and UDP.
    assert!(first.is_running());
    let resp = first.write(&db, "twice v=1 1\n");
    assert_eq!(resp.status, 204, "{}", resp.body_str());
    let ping = http_request(http, "GET", "/ping", &[], b"");
    assert_eq!(ping.status, 204);
    let udp_client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let line = format!("twice_udp_{db} v=1 1\n");
    udp_client.send_to(line.as_bytes(), udp).unwrap();
    let [a, _] = shared_backends();
    assert!(wait_until(Duration::from_secs(5), || count(
        a.http_addr(),
        "udp",
        &format!("twice_udp_{db}")
    ) == 1));
}
