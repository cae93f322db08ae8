//! Read-your-writes through the relay: a read that arrives after the relay answered
//! 2xx to a change (write or statement) is served by a backend that has applied it,
//! while another backend is slow, paused or dead.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// `/metrics` says `backend` of listener `in` is down.
fn backend_down(relay: &Relay, backend: &str) -> bool {
    let r = http_request(relay.addr(), "GET", "/metrics", &[], b"");
    r.body_str().contains(&format!(
        "influx_relay_backend_up{{listener=\"in\",backend=\"{backend}\"}} 0"
    ))
}

/// One keep-alive connection, one request at a time, as client libraries use them.
struct KeepAlive {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect(addr).expect("connect to the relay");
        stream.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        KeepAlive {
            stream,
            buf: Vec::new(),
        }
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Response {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: relay\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).unwrap();
        self.stream.write_all(body).unwrap();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((resp, used)) = parse_response(&self.buf, false, false).unwrap() {
                self.buf.drain(..used);
                return resp;
            }
            let n = self.stream.read(&mut chunk).expect("read an answer");
            assert!(n > 0, "the relay closed a keep-alive connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn write(&mut self, db: &str, body: &str) -> Response {
        self.request("POST", &format!("/write?db={db}"), body.as_bytes())
    }

    fn query(&mut self, db: &str, q: &str) -> Response {
        self.request("GET", &format!("/query?db={db}&q={}", url_encode(q)), b"")
    }
}

/// Several clients each write, change and read back on their own connection while
/// backend 1 is paused and resumed over and over; every read must show what that
/// client was just told succeeded. Returns how many reads were checked.
fn no_stale_reads(ack: &str, spool: bool) -> usize {
    let mut backends = Influxd::start_n(2);
    let db = unique_db("ryw");
    for b in &backends {
        create_db(b, &db);
    }
    let mut cfg = RelayConfig::new().http_listener("in", ack);
    for (i, b) in backends.iter().enumerate() {
        cfg = cfg.output(&format!("b{i}"), &b.write_url(), "10s");
        if spool {
            cfg = cfg
                .output_opt("spool-size-mb", 64)
                .output_opt("max-delay-interval", "1s");
        }
    }
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();

    let done = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (db, done, checked) = (db.clone(), done.clone(), checked.clone());
            thread::spawn(move || {
                let mut conn = KeepAlive::connect(addr);
                let user = format!("ryw_{db}_{c}");
                let r = conn.query("", &format!("CREATE USER {user} WITH PASSWORD 'pw'"));
                assert_eq!(r.status, 200, "{}", r.body_str());
                let mut stale = Vec::new();
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) {
                    i += 1;
                    // A write, then the value it set.
                    let r = conn.write(&db, &format!("m,c={c} v={i}i 1000000000\n"));
                    assert_eq!(r.status, 204, "write: {}", r.body_str());
                    let r = conn.query(&db, &format!("SELECT last(v) FROM m WHERE c='{c}'"));
                    assert_eq!(r.status, 200, "{}", r.body_str());
                    if !r.body_str().contains(&format!(",{i}]")) {
                        stale.push(format!("write {i}: {}", r.body_str()));
                    }
                    // A measurement written, then dropped: gone from SHOW MEASUREMENTS.
                    let tmp = format!("tmp{c}");
                    assert_eq!(conn.write(&db, &format!("{tmp} v=1 1\n")).status, 204);
                    let r = conn.query(&db, &format!("DROP MEASUREMENT {tmp}"));
                    assert_eq!(r.status, 200, "{}", r.body_str());
                    let r = conn.query(&db, "SHOW MEASUREMENTS");
                    if r.body_str().contains(&format!("[\"{tmp}\"]")) {
                        stale.push(format!("drop {i}: {}", r.body_str()));
                    }
                    // A privilege granted, then seen.
                    let admin = i.is_multiple_of(2);
                    let (grant, to) = if admin {
                        ("GRANT", "TO")
                    } else {
                        ("REVOKE", "FROM")
                    };
                    let r = conn.query("", &format!("{grant} ALL PRIVILEGES {to} {user}"));
                    assert_eq!(r.status, 200, "{}", r.body_str());
                    let r = conn.query("", "SHOW USERS");
                    let want = format!("[\"{user}\",{admin}]");
                    if !r.body_str().contains(&want) {
                        stale.push(format!("{grant} {i}: {}", r.body_str()));
                    }
                    checked.fetch_add(3, Ordering::Relaxed);
                }
                stale
            })
        })
        .collect();

    // Backend 1 stops answering for a moment, again and again: changes it has not
    // applied pile up while backend 0 acknowledges them.
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        backends[1].pause();
        thread::sleep(Duration::from_millis(150));
        backends[1].resume();
        thread::sleep(Duration::from_millis(250));
    }
    done.store(true, Ordering::Relaxed);
    let stale: Vec<String> = clients
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        .collect();
    assert!(
        stale.is_empty(),
        "{} stale reads out of {}, first ones: {:#?}",
        stale.len(),
        checked.load(Ordering::Relaxed),
        &stale[..stale.len().min(5)]
    );
    checked.load(Ordering::Relaxed)
}

#[test]
fn reads_see_acknowledged_changes_while_a_backend_is_slow() {
    assert!(no_stale_reads("any", false) > 30);
}

#[test]
fn reads_see_acknowledged_changes_while_a_backend_is_slow_with_spools() {
    assert!(no_stale_reads("any", true) > 30);
}

/// Backend 1 is paused with a write on its way, backend 0 acknowledges it and dies,
/// and the relay has seen it die (the idle probe). Backend 1 resumes after `resume_in`.
/// Returns the backends, the relay and the database, and the thread that resumes.
fn acked_by_one_that_dies(
    read_wait: &str,
    resume_in: Duration,
) -> (Vec<Influxd>, Relay, String, thread::JoinHandle<()>) {
    let mut backends = Influxd::start_n(2);
    let db = unique_db("ryw_wait");
    for b in &backends {
        create_db(b, &db);
    }
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .listener_opt("read-wait", read_wait)
        .outputs_to(backends.iter(), "30s");
    let relay = Relay::start(&cfg.to_toml());
    backends[1].pause();
    assert_eq!(relay.write(&db, "w v=7 1\n").status, 204);
    backends[0].kill9();
    // The idle probe marks backend 0 down within about two seconds.
    assert!(wait_until(Duration::from_secs(5), || backend_down(
        &relay, "b0"
    )));
    let pid = backends[1].pid().expect("backend 1 runs") as i32;
    let resumer = thread::spawn(move || {
        thread::sleep(resume_in);
        // SAFETY: plain kill(2) on a child this test started and still owns.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    });
    (backends, relay, db, resumer)
}

/// The only backend that has the write dies; the other one is paused with the write
/// still on its way. The read waits for the paused one rather than answering stale,
/// and gets the write once it is resumed.
#[test]
fn a_read_waits_for_a_backend_that_has_the_write() {
    let (mut backends, relay, db, resumer) =
        acked_by_one_that_dies("20s", Duration::from_millis(1500));
    let started = Instant::now();
    let r = http_request(
        relay.addr(),
        "GET",
        &format!("/query?db={db}&q={}", url_encode("SELECT v FROM w")),
        &[],
        b"",
    );
    resumer.join().unwrap();
    backends[1].resume();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(r.header("X-Relay-Backend"), Some("b1"));
    assert_eq!(r.header("X-Relay-Behind"), None);
    assert!(r.body_str().contains(",7]"), "{}", r.body_str());
}

/// When no backend has caught up within `read-wait`, the least-behind one answers and
/// says so, after the wait and not before.
#[test]
fn past_read_wait_the_least_behind_backend_answers_and_says_so() {
    let (mut backends, relay, db, resumer) =
        acked_by_one_that_dies("1s", Duration::from_millis(2500));
    let started = Instant::now();
    let r = http_request(
        relay.addr(),
        "GET",
        &format!("/query?db={db}&q={}", url_encode("SHOW MEASUREMENTS")),
        &[],
        b"",
    );
    resumer.join().unwrap();
    backends[1].resume();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("X-Relay-Behind"), Some("true"));
    assert_eq!(r.header("X-Relay-Backend"), Some("b1"));
}
