//! Self-tests of the harness in `util`: real influxd lifecycles, the HTTP client and
//! response parser, the JSON parser, query helpers and the relay config builder. The
//! relay itself is not spawned here; its own test modules do that.

use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::util::*;

const POINTS: &str = "cpu,host=a v=1i 1000000000\n\
                      cpu,host=a v=2i 2000000000\n\
                      cpu,host=b v=3i 1700000000123456789\n";

fn expected_rows() -> Vec<Vec<String>> {
    let row = |t: &str, host: &str, v: &str| vec![t.to_string(), format!("\"{host}\""), v.into()];
    vec![
        row("1000000000", "a", "1"),
        row("2000000000", "a", "2"),
        row("1700000000123456789", "b", "3"),
    ]
}

fn write_points(influxd: &Influxd, db: &str) {
    let path = format!("/write?db={}", url_encode(db));
    let resp = http_request(influxd.http_addr(), "POST", &path, &[], POINTS.as_bytes());
    assert_eq!(resp.status, 204, "{}", resp.body_str());
    assert!(resp.header("x-influxdb-version").is_some());
}

fn assert_points(influxd: &Influxd, db: &str) {
    assert_eq!(count(influxd.http_addr(), db, "cpu"), 3);
    assert_eq!(
        rows(influxd.http_addr(), db, "SELECT * FROM cpu"),
        expected_rows()
    );
}

#[test]
fn shared_backends_store_and_return_points() {
    let db = shared_db("harness");
    for influxd in shared_backends() {
        assert!(influxd.is_running());
        write_points(influxd, &db);
        assert_points(influxd, &db);
    }
    let [a, b] = shared_backends();
    assert_ne!(a.http_addr(), b.http_addr());
    assert_ne!(a.udp_addr(), b.udp_addr());
    assert_eq!(a.write_url(), format!("http://{}/write", a.http_addr()));
}

#[test]
fn shared_backends_are_started_once() {
    assert!(std::ptr::eq(shared_backends(), shared_backends()));
}

#[test]
fn write_to_a_missing_database_is_404() {
    let influxd = &shared_backends()[0];
    let resp = influxd.write(&unique_db("missing"), "m v=1 1");
    assert_eq!(resp.status, 404, "{}", resp.body_str());
    assert!(resp.body_str().contains("database not found"));
}

#[test]
fn count_is_zero_without_database_or_measurement() {
    let influxd = &shared_backends()[0];
    assert_eq!(count(influxd.http_addr(), &unique_db("nodb"), "m"), 0);
    let db = unique_db("empty");
    create_db(influxd, &db);
    assert_eq!(count(influxd.http_addr(), &db, "m"), 0);
    assert!(rows(influxd.http_addr(), &db, "SELECT * FROM m").is_empty());
}

#[test]
fn count_counts_points_not_fields() {
    let influxd = &shared_backends()[1];
    let db = unique_db("fields");
    create_db(influxd, &db);
    assert_eq!(
        influxd
            .write(&db, "m a=1,b=2 1\nm a=3,b=4 2\nm a=5 3\n")
            .status,
        204
    );
    assert_eq!(count(influxd.http_addr(), &db, "m"), 3);
}

#[test]
fn query_reports_statement_errors() {
    let influxd = &shared_backends()[0];
    let err = try_query(influxd.http_addr(), "x", "SELEC nonsense").unwrap_err();
    assert!(err.contains("error parsing query"), "{err}");
}

#[test]
fn udp_listener_writes_into_the_udp_database() {
    let influxd = &shared_backends()[1];
    let measurement = unique_db("udp_m");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let line = format!("{measurement} v=7i 1500000000000000000\n");
    sock.send_to(line.as_bytes(), influxd.udp_addr()).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || count(
            influxd.http_addr(),
            "udp",
            &measurement
        ) == 1),
        "the UDP point never arrived"
    );
    let q = format!("SELECT v FROM {}", quote_ident(&measurement));
    let want = vec![vec!["1500000000000000000".to_string(), "7".to_string()]];
    assert_eq!(rows(influxd.http_addr(), "udp", &q), want);
}

#[test]
fn chunked_query_answers_are_decoded() {
    let influxd = &shared_backends()[0];
    let db = shared_db("chunked");
    write_points(influxd, &db);
    let q = url_encode("SELECT * FROM cpu");
    let path = format!("/query?db={db}&q={q}&epoch=ns&chunked=true&chunk_size=1");
    let resp = http_request(influxd.http_addr(), "GET", &path, &[], b"");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    // One JSON object per line, one row each.
    let objects: Vec<Json> = resp
        .body_str()
        .lines()
        .map(|l| Json::parse(l).expect("a JSON line"))
        .collect();
    assert_eq!(objects.len(), 3, "{}", resp.body_str());
    let times: Vec<String> = objects
        .iter()
        .map(|o| o["results"][0]["series"][0]["values"][0][0].to_string())
        .collect();
    assert_eq!(times, ["1000000000", "2000000000", "1700000000123456789"]);
}

#[test]
fn raw_exchange_reads_pipelined_answers() {
    let influxd = &shared_backends()[0];
    let host = influxd.http_addr();
    let requests = format!(
        "GET /ping HTTP/1.1\r\nHost: {host}\r\n\r\n\
         POST /write?db=nope_{pid} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 7\r\n\r\nm v=1 1\
         GET /ping HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        pid = std::process::id()
    );
    let bytes = raw_exchange(host, requests.as_bytes(), Duration::from_secs(10));
    let answers = parse_responses(&bytes);
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [204, 404, 204]);
    assert!(answers[1].body_str().contains("database not found"));
}

#[test]
fn raw_exchange_returns_after_read_until() {
    let influxd = &shared_backends()[1];
    let started = Instant::now();
    // An incomplete request: influxd waits for the rest and never closes.
    let bytes = raw_exchange(
        influxd.http_addr(),
        b"GET /ping HTTP/1.1\r\n",
        Duration::from_millis(300),
    );
    assert!(bytes.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn restart_keeps_data_and_addresses() {
    let mut influxd = Influxd::start();
    let db = unique_db("restart");
    create_db(&influxd, &db);
    write_points(&influxd, &db);
    let (addr, udp, old_pid) = (influxd.http_addr(), influxd.udp_addr(), influxd.pid());

    influxd.stop();
    assert!(!influxd.is_running());
    assert!(!old_pid.is_some_and(process_exists));

    influxd.restart();
    assert!(influxd.is_running());
    assert_ne!(influxd.pid(), old_pid);
    assert_eq!((influxd.http_addr(), influxd.udp_addr()), (addr, udp));
    assert_points(&influxd, &db);
}

#[test]
fn kill9_stops_it_and_restart_replays_the_wal() {
    let mut influxd = Influxd::start();
    let db = unique_db("kill");
    create_db(&influxd, &db);
    write_points(&influxd, &db);
    let pid = influxd.pid().expect("running");

    influxd.kill9();
    assert!(!influxd.is_running());
    assert!(!process_exists(pid));
    assert!(try_http_request(
        influxd.http_addr(),
        "GET",
        "/ping",
        &[],
        b"",
        Duration::from_secs(1)
    )
    .is_err());

    influxd.restart();
    assert_points(&influxd, &db);
}

#[test]
fn pause_holds_answers_until_resume() {
    let mut influxd = Influxd::start();
    influxd.pause();
    let short = Duration::from_millis(300);
    let err = try_http_request(influxd.http_addr(), "GET", "/ping", &[], b"", short).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(influxd.is_running(), "a stopped process still exists");

    influxd.resume();
    let resp = http_request(influxd.http_addr(), "GET", "/ping", &[], b"");
    assert_eq!(resp.status, 204);
}

#[test]
fn drop_leaves_no_process_and_no_dir() {
    let influxd = Influxd::start();
    let pid = influxd.pid().expect("running");
    let dir = influxd
        .log_path()
        .parent()
        .expect("log is in the dir")
        .to_path_buf();
    assert!(process_exists(pid) && dir.is_dir());
    drop(influxd);
    assert!(!process_exists(pid), "influxd {pid} survived its drop");
    assert!(!dir.exists(), "{} survived the drop", dir.display());
}

#[test]
fn dropping_a_paused_influxd_still_kills_it() {
    let mut influxd = Influxd::start();
    let pid = influxd.pid().expect("running");
    influxd.pause();
    drop(influxd);
    assert!(!process_exists(pid));
}

#[test]
fn influxd_log_is_kept_in_its_dir() {
    let influxd = &shared_backends()[0];
    assert!(influxd.log_path().is_file());
    // Quiet logging: no per-request lines even after requests were made.
    http_request(influxd.http_addr(), "GET", "/ping", &[], b"");
    assert!(
        !influxd.log_text().contains("/ping"),
        "{}",
        influxd.log_text()
    );
}

// ----- pure helpers -------------------------------------------------------------------

#[test]
fn free_ports_are_distinct_and_bindable() {
    let tcp: Vec<u16> = (0..20).map(|_| free_port()).collect();
    let udp: Vec<u16> = (0..20).map(|_| free_udp_port()).collect();
    let mut all: Vec<u16> = tcp.iter().chain(&udp).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 40);
    TcpListener::bind(("127.0.0.1", tcp[0])).expect("a free TCP port binds");
    UdpSocket::bind(("127.0.0.1", udp[0])).expect("a free UDP port binds");
}

#[test]
fn udp_port_bound_sees_bound_sockets() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    assert!(udp_port_bound(port));
    drop(sock);
    assert!(!udp_port_bound(port));
    assert!(udp_port_bound(shared_backends()[0].udp_addr().port()));
}

#[test]
fn unique_db_names_differ() {
    let (a, b) = (unique_db("x"), unique_db("x"));
    assert_ne!(a, b);
    assert!(a.starts_with(&format!("x_{}_", std::process::id())));
}

#[test]
fn process_exists_sees_this_process_only() {
    assert!(process_exists(std::process::id()));
    assert!(!process_exists(u32::MAX));
}

#[test]
fn wait_until_polls_until_true_or_timeout() {
    let mut calls = 0;
    assert!(wait_until(Duration::from_secs(5), || {
        calls += 1;
        calls == 3
    }));
    assert_eq!(calls, 3);
    let started = Instant::now();
    assert!(!wait_until(Duration::from_millis(100), || false));
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn url_encode_keeps_only_unreserved() {
    assert_eq!(
        url_encode("SELECT * FROM \"m\""),
        "SELECT%20%2A%20FROM%20%22m%22"
    );
    assert_eq!(url_encode("a-b_c.d~e"), "a-b_c.d~e");
    assert_eq!(url_encode("µ&="), "%C2%B5%26%3D");
}

#[test]
fn quote_ident_escapes_quotes_and_backslashes() {
    assert_eq!(quote_ident(r#"a"b\c"#), r#""a\"b\\c""#);
}

#[test]
fn parse_response_content_length() {
    let bytes = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"error\":\"bad\"}rest";
    let (resp, used) = parse_response(bytes, false, false).unwrap().unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.body_str(), "{\"error\":\"bad\"}");
    assert_eq!(&bytes[used..], b"rest");
}

#[test]
fn parse_response_chunked_with_extensions_and_trailers() {
    let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";
    let (resp, used) = parse_response(bytes, false, false).unwrap().unwrap();
    assert_eq!(resp.body_str(), "hello world");
    assert_eq!(used, bytes.len());
    for cut in 0..bytes.len() {
        assert_eq!(
            parse_response(&bytes[..cut], false, false),
            Ok(None),
            "cut at {cut}"
        );
        assert!(parse_response(&bytes[..cut], true, false).is_err() || cut == 0);
    }
}

#[test]
fn parse_response_bodiless_answers() {
    let bytes = b"HTTP/1.1 204 No Content\r\nX-Influxdb-Version: relay\r\n\r\n\
                  HTTP/1.1 100 Continue\r\n\r\n\
                  HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
    let answers = parse_responses(bytes);
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [204, 100, 304]);
    assert!(answers.iter().all(|r| r.body.is_empty()));
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    let (resp, used) = parse_response(head, false, true).unwrap().unwrap();
    assert_eq!((resp.status, resp.body.len(), used), (200, 0, head.len()));
}

#[test]
fn parse_response_body_until_close() {
    let bytes = b"HTTP/1.0 200 OK\r\n\r\nall of it";
    assert_eq!(parse_response(bytes, false, false), Ok(None));
    let (resp, _) = parse_response(bytes, true, false).unwrap().unwrap();
    assert_eq!(resp.body_str(), "all of it");
}

#[test]
fn parse_response_rejects_garbage() {
    assert!(parse_response(b"NOT HTTP\r\n\r\n", false, false).is_err());
    assert!(parse_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        false,
        false
    )
    .is_err());
    let bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n";
    assert!(parse_response(bad_chunk, false, false).is_err());
}

#[test]
fn json_parses_an_influx_answer_exactly() {
    let text = r#"{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","v"],
        "values":[[1700000000123456789,1.5],[1700000000123456790,-2e3]]}]}]}"#;
    let json = Json::parse(text).unwrap();
    let values = &json["results"][0]["series"][0]["values"];
    assert_eq!(values[0][0].as_i64(), Some(1_700_000_000_123_456_789));
    assert_eq!(values[1][0].as_u64(), Some(1_700_000_000_123_456_790));
    assert_eq!(values[0][1].as_f64(), Some(1.5));
    assert_eq!(values[1][1].as_f64(), Some(-2000.0));
    assert_eq!(values[1][1].as_i64(), None, "not written as an integer");
    assert_eq!(
        json["results"][0]["series"][0]["name"].as_str(),
        Some("cpu")
    );
    assert!(json["missing"][3]["deeper"].is_null());
    assert_eq!(json.to_string(), text.replace(['\n', ' '], ""));
}

#[test]
fn json_strings_and_literals() {
    let json =
        Json::parse(r#" [ "a\"b\\c\/\n\t\u00e9\ud83d\ude00", true, false, null, {} , [] ] "#)
            .unwrap();
    assert_eq!(json[0].as_str(), Some("a\"b\\c/\n\té😀"));
    assert_eq!(json[1].as_bool(), Some(true));
    assert_eq!(json[2].as_bool(), Some(false));
    assert!(json[3].is_null());
    assert_eq!(json[4].as_obj().map(<[_]>::len), Some(0));
    assert_eq!(json[5].as_arr().map(<[_]>::len), Some(0));
}

#[test]
fn json_rejects_malformed_input() {
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\" 1}",
        "01",
        "1.",
        "1e",
        "-",
        "\"abc",
        "\"\\x\"",
        "\"\\ud800\"",
        "tru",
        "[1] 2",
        "{1:2}",
        "\"a\u{1}\"",
    ] {
        assert!(Json::parse(bad).is_err(), "accepted {bad:?}");
    }
    assert!(
        Json::parse(&"[".repeat(1000)).is_err(),
        "deep nesting must be refused"
    );
}

#[test]
fn relay_config_builds_the_expected_toml() {
    let backend_urls = ["http://127.0.0.1:1/write", "http://127.0.0.1:2/write"];
    let cfg = RelayConfig::new()
        .global("threads", 2)
        .global("spool-dir", "spool")
        .http_listener("in", "quorum")
        .listener_opt("max-body-size-mb", 1)
        .output("b0", backend_urls[0], "2s")
        .output_opt("spool-size-mb", 16)
        .output("b1", backend_urls[1], "500ms")
        .udp_listener("udp-in")
        .udp_output("u0", "127.0.0.1:9".parse().unwrap());
    let text = cfg.to_toml();
    let table: toml::Table = text.parse().expect("valid TOML");
    assert_eq!(table["threads"].as_integer(), Some(2));
    assert_eq!(table["spool-dir"].as_str(), Some("spool"));
    let http = &table["http"][0];
    assert_eq!(http["name"].as_str(), Some("in"));
    assert_eq!(http["ack"].as_str(), Some("quorum"));
    assert_eq!(http["max-body-size-mb"].as_integer(), Some(1));
    assert_eq!(
        http["bind-addr"].as_str(),
        Some(cfg.addr().to_string().as_str())
    );
    let outputs = http["output"].as_array().unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0]["location"].as_str(), Some(backend_urls[0]));
    assert_eq!(outputs[0]["spool-size-mb"].as_integer(), Some(16));
    assert_eq!(outputs[1]["timeout"].as_str(), Some("500ms"));
    assert!(outputs[1].get("spool-size-mb").is_none());
    let udp = &table["udp"][0];
    assert_eq!(
        udp["bind-addr"].as_str(),
        Some(cfg.listener_addr("udp-in").to_string().as_str())
    );
    assert_eq!(udp["output"][0]["location"].as_str(), Some("127.0.0.1:9"));
    assert_ne!(cfg.addr(), cfg.listener_addr("udp-in"));

    let endpoints = RelayEndpoints::from_config(&text).unwrap();
    assert_eq!(endpoints.http, Some(cfg.addr()));
    assert_eq!(endpoints.udp_addrs, [cfg.listener_addr("udp-in")]);
}

#[test]
fn relay_config_outputs_to_backends() {
    let [a, b] = shared_backends();
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to(shared_backends(), "1s")
        .udp_listener("u")
        .outputs_to([a, b], "unused");
    let table: toml::Table = cfg.to_toml().parse().unwrap();
    assert_eq!(
        table["http"][0]["output"][1]["location"].as_str(),
        Some(b.write_url().as_str())
    );
    assert_eq!(table["http"][0]["output"][1]["name"].as_str(), Some("b1"));
    let udp_location = a.udp_addr().to_string();
    assert_eq!(
        table["udp"][0]["output"][0]["location"].as_str(),
        Some(udp_location.as_str())
    );
}

#[test]
fn relay_endpoints_from_handwritten_configs() {
    let original_style = r#"
[[http]]
name = "example-http"
bind-addr = ":9096"
output = [
    { name="local1", location = "http://127.0.0.1:8086/write" },
]
[[http]]
name = "second"
bind-addr = "127.0.0.1:9097"
"#;
    let e = RelayEndpoints::from_config(original_style).unwrap();
    assert_eq!(e.http, Some("127.0.0.1:9096".parse().unwrap()));
    let any = "[[http]]\nbind-addr = \"0.0.0.0:9\"\n";
    assert_eq!(
        RelayEndpoints::from_config(any).unwrap().http,
        Some("127.0.0.1:9".parse().unwrap())
    );
    let udp_only = "[[udp]]\nname = \"u\"\nbind-addr = \"127.0.0.1:9\"\n";
    let e = RelayEndpoints::from_config(udp_only).unwrap();
    assert_eq!(
        (e.http, e.udp_addrs),
        (None, vec!["127.0.0.1:9".parse().unwrap()])
    );
    assert!(RelayEndpoints::from_config("[[http]]\nname = \"x\"\n").is_err());
    assert!(RelayEndpoints::from_config("not toml [").is_err());
}

proptest! {
    #[test]
    fn json_string_round_trips(s in any::<String>()) {
        let text = Json::Str(s.clone()).to_string();
        prop_assert_eq!(Json::parse(&text), Ok(Json::Str(s)));
    }

    #[test]
    fn chunked_bodies_decode_for_any_split(
        body in proptest::collection::vec(any::<u8>(), 0..2000),
        sizes in proptest::collection::vec(1usize..300, 1..20),
    ) {
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut rest = &body[..];
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*size).min(rest.len()));
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
            rest = tail;
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let (resp, used) = parse_response(&wire, false, false).unwrap().unwrap();
        prop_assert_eq!(resp.body, body);
        prop_assert_eq!(used, wire.len());
    }
}
