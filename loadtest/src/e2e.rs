//! In-process end-to-end checks: a sink on port 0 and short runs against it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::args::{RunConfig, SinkConfig};
use crate::run::run;
use crate::sink::{start, SinkHandle};

fn sink(udp: bool) -> SinkHandle {
    start(&SinkConfig {
        http: "127.0.0.1:0".parse().unwrap(),
        udp: udp.then(|| "127.0.0.1:0".parse().unwrap()),
        fail_status: None,
        delay: Duration::ZERO,
        token: None,
    })
    .expect("sink starts on port 0")
}

fn requests(target: SocketAddr, n: u64) -> RunConfig {
    let mut cfg = RunConfig::new(target);
    cfg.requests = Some(n);
    cfg.duration = None;
    cfg.connections = 8;
    cfg.threads = 2;
    cfg.lines = 50;
    cfg.timeout = Duration::from_secs(5);
    cfg
}

/// Sends one raw request and returns the whole answer (the sink closes on
/// `Connection: close`).
fn raw(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn every_acked_line_reaches_the_sink_exactly_once() {
    let sink = sink(false);
    let report = run(&requests(sink.http_addr(), 200), None).unwrap();
    let t = &report.tally;
    assert_eq!(t.requests, 200);
    assert_eq!(t.error_total(), 0, "{:?}", t.errors());
    assert_eq!(t.lines_acked, 200 * 50);
    assert_eq!(t.lines_sent, t.lines_acked);
    let stats = sink.stats();
    let r = stats.run(&report.run_id).expect("sink saw the run");
    assert_eq!(r.unique, t.lines_acked);
    assert_eq!((r.duplicates, r.reordered, r.gaps), (0, 0, 0));
    assert_eq!(r.streams, 8);
    assert_eq!(stats.lines, t.lines_acked);
    assert_eq!(stats.untagged_lines, 0);
    assert!(report.latency.len() == 200);
    sink.shutdown();
}

#[test]
fn gzip_run_is_decoded_by_the_sink() {
    let sink = sink(false);
    let mut cfg = requests(sink.http_addr(), 40);
    cfg.gzip = true;
    cfg.timestamps = false;
    let report = run(&cfg, None).unwrap();
    let r = sink.stats().run(&report.run_id).unwrap();
    assert_eq!(report.tally.lines_acked, 40 * 50);
    assert_eq!(r.unique, report.tally.lines_acked);
    assert!(
        sink.stats().wire_bytes < sink.stats().bytes,
        "bodies were compressed"
    );
    sink.shutdown();
}

#[test]
fn udp_only_lines_are_analysed() {
    let sink = sink(true);
    let udp = sink.udp_addr().unwrap();
    let mut cfg = requests(sink.http_addr(), 50);
    cfg.target = None;
    cfg.udp = Some(udp);
    cfg.udp_only = true;
    cfg.rate = Some(5000.0);
    let report = run(&cfg, None).unwrap();
    assert_eq!(report.tally.udp_datagrams, 50);
    // Datagrams are not acknowledged; wait for the sink to drain its socket.
    let mut unique = 0;
    for _ in 0..100 {
        unique = sink.stats().run(&report.run_id).map_or(0, |r| r.unique);
        if unique == report.tally.udp_lines {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(unique, report.tally.udp_lines);
    sink.shutdown();
}

#[test]
fn failing_sink_counts_errors_by_status_and_recovers() {
    let sink = sink(false);
    let addr = sink.http_addr();
    let ans = raw(
        addr,
        b"POST /control?mode=fail&status=500 HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(ans.starts_with("HTTP/1.1 204"), "{ans}");
    let report = run(&requests(addr, 20), None).unwrap();
    assert_eq!(report.tally.statuses.get(&500), Some(&20));
    assert_eq!(report.tally.lines_acked, 0);
    assert_eq!(sink.stats().rejected_writes, 20);
    assert!(sink.stats().run(&report.run_id).is_none());

    raw(
        addr,
        b"POST /control?mode=ok HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    let report = run(&requests(addr, 20), None).unwrap();
    assert_eq!(report.tally.lines_acked, 20 * 50);
    sink.shutdown();
}

#[test]
fn sink_speaks_enough_http() {
    let sink = sink(false);
    let addr = sink.http_addr();
    let ping = raw(addr, b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(ping.starts_with("HTTP/1.1 204"), "{ping}");
    assert!(ping.contains("X-Influxdb-Version: sink"), "{ping}");

    // Chunked body, two pipelined requests on one connection.
    let body = "m,gen=rx v=1i,stream=0i,seq=0i\nm,gen=rx stream=0i,seq=1i,v=2i\n";
    let req = format!(
        "POST /write?db=x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n\
         POST /write?db=x HTTP/1.1\r\nContent-Length: 13\r\nConnection: close\r\n\r\nplain v=1 123",
        body.len()
    );
    let ans = raw(addr, req.as_bytes());
    assert_eq!(ans.matches("HTTP/1.1 204").count(), 2, "{ans}");
    let missing_db = raw(
        addr,
        b"POST /write HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(missing_db.starts_with("HTTP/1.1 400"), "{missing_db}");
    let bad_gzip = raw(
        addr,
        b"POST /write?db=x HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert!(
        bad_gzip.contains("unable to decode gzip body"),
        "{bad_gzip}"
    );

    let stats = raw(addr, b"GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n");
    let json = &stats[stats.find("\r\n\r\n").unwrap() + 4..];
    assert!(json.starts_with("{\"mode\":\"ok\""), "{json}");
    assert!(json.contains("\"lines\":3,"), "{json}");
    assert!(json.contains("\"untagged_lines\":1,"), "{json}");
    assert!(
        json.contains(
            "\"rx\":{\"lines\":2,\"unique\":2,\"duplicates\":0,\"reordered\":0,\"max_seq\":1"
        ),
        "{json}"
    );
    sink.shutdown();
}

#[test]
fn down_mode_refuses_connections_then_comes_back() {
    let sink = sink(false);
    let addr = sink.http_addr();
    let ans = raw(
        addr,
        b"POST /control?mode=down&ms=600 HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(ans.starts_with("HTTP/1.1 204"), "{ans}");
    std::thread::sleep(Duration::from_millis(150));
    assert!(
        TcpStream::connect(addr).is_err(),
        "listener is closed while down"
    );
    let mut back = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        if TcpStream::connect(addr).is_ok() {
            back = true;
            break;
        }
    }
    assert!(back, "sink listens again after the outage");
    assert_eq!(sink.stats().mode, "ok");
    sink.shutdown();
}

#[test]
fn two_thousand_connections_on_two_threads() {
    let sink = sink(false);
    let mut cfg = requests(sink.http_addr(), 4000);
    cfg.connections = 2000;
    cfg.threads = 2;
    cfg.lines = 5;
    let report = run(&cfg, None).unwrap();
    let t = &report.tally;
    assert_eq!(t.error_total(), 0, "{:?}", t.errors());
    assert_eq!(t.requests, 4000);
    let r = sink.stats().run(&report.run_id).unwrap();
    assert_eq!(r.unique, t.lines_acked);
    assert_eq!(r.duplicates + r.reordered + r.gaps, 0);
    sink.shutdown();
}

#[test]
fn requests_alone_end_against_a_dead_target() {
    // Bind then drop a listener to get a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = requests(addr, 16);
    cfg.connections = 4;
    let report = run(&cfg, None).unwrap();
    assert_eq!(report.tally.lines_acked, 0);
    assert!(report.tally.failures[crate::report::Failure::Connect as usize] >= 13);
}
