//! Hostile input (issue 8; README: HTTP API, Security): a table of malformed, oversized, slow and
//! smuggling-shaped requests, each with the answer it must get. After every row the
//! relay must still answer `/ping` and a valid write from another client, and at the
//! end its memory must be where a relay that buffers nothing unbounded would be.
//!
//! Also here: `max-connections` and `idle-timeout`, which need their own relays.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::util::*;

/// `read-timeout` of the relay under test: short, so the slow rows are quick.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// `max-body-size-mb` of the relay under test.
const MAX_BODY_MB: usize = 4;
/// How long a row may take before the relay counts as not having closed the connection.
/// Above `READ_TIMEOUT` plus the loop's 50 ms deadline tick, with room for a busy box.
const CLOSE_WITHIN: Duration = Duration::from_secs(4);
/// RSS ceiling at the end. The relay holds at most a few bodies of `MAX_BODY_MB` (the
/// raw body, its decoded or stamped copy, the batch the backends share) and its thread
/// stacks; ~20 MB is typical after the table. 200 MB leaves room for allocator slack
/// while a leak of even one row's worth per row (the 1 GB gzip bomb inflated, the
/// 20 MB announced bodies buffered, 100 000 lines kept) would break it.
const RSS_LIMIT_KB: u64 = 200 * 1024;

enum Send {
    /// All at once, then read until the relay closes.
    Bytes(Vec<u8>),
    /// `head` at once, then `drip` `step` bytes every `every` until the relay answers.
    Trickle {
        head: Vec<u8>,
        drip: Vec<u8>,
        step: usize,
        every: Duration,
    },
}

enum Expect {
    /// One answer with this status, then the connection closes.
    Status(u16),
    /// Either (the row's comment says why both are right), then the connection closes.
    OneOf(&'static [u16]),
    /// One answer per pipelined request, then the connection closes.
    Statuses(Vec<u16>),
}

struct Case {
    name: &'static str,
    send: Send,
    expect: Expect,
    /// Upper bound for the whole exchange, when speed is the point of the row.
    within: Option<Duration>,
}

fn case(name: &'static str, bytes: Vec<u8>, status: u16) -> Case {
    Case {
        name,
        send: Send::Bytes(bytes),
        expect: Expect::Status(status),
        within: None,
    }
}

/// A request from its text, `\r\n` line ends written out.
fn raw(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// `POST /write?QUERY` with `extra` header lines, a Content-Length and `body`.
fn post(query: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST /write?{query} HTTP/1.1\r\nHost: relay\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// `POST /write?QUERY` with a chunked body given as raw framing.
fn post_chunked(query: &str, framing: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST /write?{query} HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(framing);
    out
}

/// Deterministic pseudo-random bytes (xorshift), so a failing row can be replayed.
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// A gzip stream that inflates to `gib` GiB of zeros, built without compressing that
/// much: one MiB of zeros deflated and fully flushed is a self-contained sequence of
/// blocks, so copies of it can be chained. The trailer's CRC is not computed (it would
/// mean hashing the whole GiB); the relay must refuse long before reaching it.
fn gzip_bomb(gib: usize) -> Vec<u8> {
    let mut deflate = flate2::Compress::new(flate2::Compression::best(), false);
    let zeros = vec![0u8; 1 << 20];
    let mut block = Vec::with_capacity(4096);
    deflate
        .compress_vec(&zeros, &mut block, flate2::FlushCompress::Full)
        .expect("deflate into memory");
    assert_eq!(
        deflate.total_in(),
        zeros.len() as u64,
        "one call takes it all"
    );
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..gib * 1024 {
        out.extend_from_slice(&block);
    }
    // A final empty stored block, then CRC-32 and size (mod 2^32): both left wrong.
    out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    out.extend_from_slice(&[0; 8]);
    out
}

fn cases(db: &str) -> Vec<Case> {
    let q = format!("db={db}");
    let max = MAX_BODY_MB << 20;
    let mut cases = Vec::new();

    // Garbage and non-HTTP.
    let mut junk = random_bytes(4096, 0x9e37_79b9_7f4a_7c15);
    junk.extend_from_slice(b"\r\n\r\n");
    cases.push(case("random bytes, then a blank line", junk, 400));
    let mut endless: Vec<u8> = random_bytes(4096, 7)
        .into_iter()
        .map(|b| if b == b'\n' { b'x' } else { b })
        .collect();
    endless.truncate(4096);
    // No line end, but its first bytes already cannot start a request line: refused
    // at once rather than after read-timeout.
    cases.push(Case {
        name: "random bytes that never end a head",
        send: Send::Bytes(endless),
        expect: Expect::Status(400),
        within: Some(READ_TIMEOUT / 2),
    });
    cases.push(case("HTTP/0.9 request line", raw("GET /\r\n\r\n"), 400));
    cases.push(case(
        "HTTP/2 preface",
        raw("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "unknown HTTP version",
        raw("GET /ping HTTP/1.2\r\n\r\n"),
        400,
    ));
    cases.push(case("only blank lines", raw("\r\n\r\n"), 400));
    cases.push(case("only spaces", raw("   \r\n\r\n"), 400));
    cases.push(case(
        "absurd method on /write",
        raw("BREW /write HTTP/1.1\r\nConnection: close\r\n\r\n"),
        405,
    ));
    // Longer than any method: no request, refused as soon as its first bytes are in.
    cases.push(case(
        "10 KB method",
        format!(
            "{} /write HTTP/1.1\r\nConnection: close\r\n\r\n",
            "A".repeat(10_000)
        )
        .into_bytes(),
        400,
    ));
    cases.push(case(
        "separator in the method",
        raw("G(T /ping HTTP/1.1\r\n\r\n"),
        400,
    ));

    // NUL and control bytes in the head.
    cases.push(case(
        "NUL in the request line",
        raw("GET /pi\0ng HTTP/1.1\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "control byte in the URL",
        raw("GET /pi\x01ng HTTP/1.1\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "NUL in a header name",
        raw("GET /ping HTTP/1.1\r\nX-A\0b: 1\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "NUL in a header value",
        raw("GET /ping HTTP/1.1\r\nX-A: a\0b\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "header line without a colon",
        raw("GET /ping HTTP/1.1\r\nNoColonHere\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "obsolete line folding",
        raw("GET /ping HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "bare LF line ends are fine",
        raw("GET /ping HTTP/1.1\nConnection: close\n\n"),
        204,
    ));

    // Header floods and long URLs (the head limit is 64 KiB, README: HTTP API).
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    cases.push(case(
        "100 headers",
        format!("GET /ping HTTP/1.1\r\n{many}\r\n").into_bytes(),
        431,
    ));
    cases.push(case(
        "one 70 KB header",
        format!(
            "GET /ping HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(70_000)
        )
        .into_bytes(),
        431,
    ));
    cases.push(case(
        "a 60 KB header is still within the limit",
        format!(
            "GET /ping HTTP/1.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(60_000)
        )
        .into_bytes(),
        204,
    ));
    cases.push(case(
        "60 KB URL",
        format!(
            "GET /ping?{} HTTP/1.1\r\nConnection: close\r\n\r\n",
            "x".repeat(60_000)
        )
        .into_bytes(),
        204,
    ));
    cases.push(case(
        "70 KB URL",
        format!("GET /ping?{} HTTP/1.1\r\n\r\n", "x".repeat(70_000)).into_bytes(),
        431,
    ));

    // Content-Length games.
    cases.push(case(
        "huge Content-Length",
        raw("POST /write?db=x HTTP/1.1\r\nContent-Length: 1000000000000000\r\n\r\n"),
        413,
    ));
    cases.push(case(
        "Content-Length past u64",
        raw("POST /write?db=x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "negative Content-Length",
        raw("POST /write?db=x HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "Content-Length with a sign",
        raw("POST /write?db=x HTTP/1.1\r\nContent-Length: +5\r\n\r\nm v=1"),
        400,
    ));
    cases.push(case(
        "Content-Length as a list",
        raw("POST /write?db=x HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nm v=1"),
        400,
    ));
    cases.push(case(
        "two different Content-Lengths",
        raw("POST /write?db=x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nm v=1 "),
        400,
    ));
    let mut big = post(&q, "", &vec![b'#'; max + 1]);
    big.truncate(big.len() - 1024);
    cases.push(Case {
        name: "body over the limit, sent anyway",
        send: Send::Bytes(big),
        expect: Expect::Status(413),
        within: Some(Duration::from_secs(2)),
    });
    cases.push(case(
        "Expect: 100-continue with a body over the limit",
        raw(
            "POST /write?db=x HTTP/1.1\r\nContent-Length: 20000000\r\nExpect: 100-continue\r\n\r\n",
        ),
        413,
    ));
    cases.push(case(
        "unknown expectation",
        raw("POST /write?db=x HTTP/1.1\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\nx"),
        417,
    ));

    // Smuggling shapes: anything that two parsers could frame differently is refused.
    cases.push(case(
        "Content-Length and Transfer-Encoding",
        raw("POST /write?db=x HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "space before the colon",
        raw("POST /write?db=x HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "chunked not last",
        raw("POST /write?db=x HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
        501,
    ));
    cases.push(case(
        "xchunked",
        raw("POST /write?db=x HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n"),
        501,
    ));

    // Chunked framing.
    cases.push(case(
        "chunk size not hex",
        post_chunked(&q, b"zz\r\nm v=1 1\r\n0\r\n\r\n"),
        400,
    ));
    cases.push(case(
        "chunk size past the limit",
        post_chunked(&q, b"ffffffffffffffffffffffff\r\n"),
        413,
    ));
    cases.push(case(
        "chunk data without its CRLF",
        post_chunked(&q, b"3\r\nm vXX=1 1\r\n0\r\n\r\n"),
        400,
    ));
    let mut over = Vec::new();
    for _ in 0..MAX_BODY_MB + 1 {
        over.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
        over.extend(std::iter::repeat_n(b'#', 1 << 20));
        over.extend_from_slice(b"\r\n");
    }
    cases.push(case(
        "chunks adding up past the limit",
        post_chunked(&q, &over),
        413,
    ));

    // Compressed bodies.
    let good = gzip(b"m v=1 1\n");
    cases.push(case(
        "truncated gzip",
        post(&q, "Content-Encoding: gzip\r\n", &good[..good.len() / 2]),
        400,
    ));
    cases.push(case(
        "not gzip at all",
        post(&q, "Content-Encoding: gzip\r\n", b"m v=1 1\n"),
        400,
    ));
    cases.push(Case {
        name: "gzip bomb: 1 GiB of zeros",
        send: Send::Bytes(post(&q, "Content-Encoding: gzip\r\n", &gzip_bomb(1))),
        expect: Expect::Status(413),
        within: Some(Duration::from_secs(3)),
    });

    // Bodies: bytes the scanner must take apart without trouble.
    cases.push(case(
        "NUL in a field value",
        post(&q, "", b"m v=1\0 1\n"),
        400,
    ));
    // The relay forwards names byte for byte (README: HTTP API) and InfluxDB does not check
    // UTF-8 either, so this is stored; a relay that refused it would also be right.
    cases.push(Case {
        name: "invalid UTF-8 in a tag value",
        send: Send::Bytes(post(&q, "", b"hostile,t=\xff\xfe v=1 1\n")),
        expect: Expect::OneOf(&[204, 400]),
        within: None,
    });
    let mut comment = b"# ".to_vec();
    comment.resize(1 << 20, b'c');
    comment.push(b'\n');
    cases.push(case("1 MB comment line", post(&q, "", &comment), 204));
    let mut long_bad = b"hostile v=1 1 ".to_vec();
    long_bad.resize(1 << 20, b'x');
    cases.push(case("1 MB invalid line", post(&q, "", &long_bad), 400));
    let tiny: Vec<u8> = (0..100_000)
        .flat_map(|i| format!("tiny v={i}i {i}\n").into_bytes())
        .collect();
    cases.push(case("100 000 tiny lines", post(&q, "", &tiny), 204));

    // Slow clients (read-timeout → 408 and close).
    cases.push(Case {
        name: "slowloris head: 2 bytes every 150 ms",
        send: Send::Trickle {
            head: Vec::new(),
            drip: format!(
                "POST /write?{q} HTTP/1.1\r\nHost: relay\r\nX-Slow: {}\r\n\r\n",
                "s".repeat(200)
            )
            .into_bytes(),
            step: 2,
            every: Duration::from_millis(150),
        },
        expect: Expect::Status(408),
        within: Some(READ_TIMEOUT * 2),
    });
    cases.push(Case {
        name: "slow body: 5 bytes every 150 ms",
        send: Send::Trickle {
            head: format!("POST /write?{q} HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
                .into_bytes(),
            drip: vec![b'#'; 100_000],
            step: 5,
            every: Duration::from_millis(150),
        },
        expect: Expect::Status(408),
        within: Some(READ_TIMEOUT * 2),
    });
    cases.push(Case {
        name: "stalled body",
        send: Send::Bytes(
            format!("POST /write?{q} HTTP/1.1\r\nContent-Length: 100\r\n\r\nm v=1").into_bytes(),
        ),
        expect: Expect::Status(408),
        within: Some(READ_TIMEOUT * 2),
    });

    // Pipelining 500 requests at once: answered in order, nothing dropped.
    let mut pipeline = raw("GET /ping HTTP/1.1\r\n\r\n").repeat(499);
    pipeline.extend_from_slice(b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n");
    cases.push(Case {
        name: "500 pipelined requests",
        send: Send::Bytes(pipeline),
        expect: Expect::Statuses(vec![204; 500]),
        within: None,
    });
    cases
}

/// Send `head`, then `drip` a few bytes at a time, reading between drips; returns what
/// the relay sent once it closes (or `limit` passes).
fn trickle(addr: SocketAddr, head: &[u8], drip: &[u8], step: usize, every: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(every)).expect("read timeout");
    let _ = stream.write_all(head);
    let deadline = Instant::now() + CLOSE_WITHIN;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut drips = drip.chunks(step);
    while Instant::now() < deadline {
        if let Some(bytes) = drips.next() {
            // The relay may have answered and closed: what it said is in the socket.
            let _ = stream.write_all(bytes);
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    out
}

/// Every complete answer in `bytes`, then whether anything was left over.
fn statuses(mut bytes: &[u8]) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match parse_response(bytes, true, false) {
            Ok(Some((resp, used))) => {
                out.push(resp.status);
                bytes = &bytes[used..];
            }
            Ok(None) => return Err(format!("incomplete answer after {out:?}")),
            Err(e) => return Err(format!("{e} after {out:?}")),
        }
    }
    Ok(out)
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn hostile_inputs_get_their_answer_and_the_relay_serves_on() {
    let db = shared_db("hostile");
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .listener_opt("read-timeout", "1s")
        .listener_opt("max-body-size-mb", MAX_BODY_MB as i64)
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let pid = relay.pid().expect("relay pid");
    let cases = cases(&db);
    assert!(cases.len() >= 30, "{} rows", cases.len());

    let mut failures = Vec::new();
    for (row, case) in cases.iter().enumerate() {
        let started = Instant::now();
        let out = match &case.send {
            Send::Bytes(bytes) => raw_exchange(addr, bytes, CLOSE_WITHIN),
            Send::Trickle {
                head,
                drip,
                step,
                every,
            } => trickle(addr, head, drip, *step, *every),
        };
        let elapsed = started.elapsed();
        let got = statuses(&out);
        let ok = match (&case.expect, &got) {
            (Expect::Status(want), Ok(got)) => got == &[*want],
            (Expect::OneOf(any), Ok(got)) => got.len() == 1 && any.contains(&got[0]),
            (Expect::Statuses(want), Ok(got)) => got == want,
            (_, Err(_)) => false,
        };
        if !ok {
            failures.push(format!("{row} {}: got {got:?}", case.name));
        }
        if elapsed >= CLOSE_WITHIN {
            failures.push(format!("{row} {}: not closed after {elapsed:?}", case.name));
        } else if case.within.is_some_and(|w| elapsed > w) {
            failures.push(format!("{row} {}: took {elapsed:?}", case.name));
        }

        // Everyone else is still served.
        let ping = try_http_request(addr, "GET", "/ping", &[], b"", Duration::from_secs(5));
        if ping.as_ref().map(|r| r.status).ok() != Some(204) {
            failures.push(format!("{row} {}: /ping after it: {ping:?}", case.name));
        }
        let write = relay.write(&db, &format!("after v={row}i {}\n", row + 1));
        if write.status != 204 {
            failures.push(format!(
                "{row} {}: write after it: {}",
                case.name, write.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(relay.is_running());
    let rss = rss_kb(pid);
    assert!(rss > 0 && rss < RSS_LIMIT_KB, "VmRSS {rss} kB");
}

#[test]
fn idle_keep_alive_connections_are_closed_after_idle_timeout() {
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .listener_opt("idle-timeout", "1s")
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());

    let mut used = TcpStream::connect(relay.addr()).expect("connect");
    used.write_all(b"GET /ping HTTP/1.1\r\nHost: r\r\n\r\n")
        .expect("send");
    let mut silent = TcpStream::connect(relay.addr()).expect("connect");
    let started = Instant::now();
    for (name, stream) in [("after a request", &mut used), ("never used", &mut silent)] {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        let answers = statuses(&out).expect("answers");
        let want: &[u16] = if name == "never used" { &[] } else { &[204] };
        assert_eq!(answers, want, "{name}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
            "{name}: closed after {waited:?}"
        );
    }
}

/// `max-connections` is enforced across loops: connections past it are closed at once
/// and counted, while those already open are served as before.
#[test]
fn connections_past_max_connections_are_closed_and_counted() {
    let port = free_port();
    let text = format!(
        "threads = 2\n[[http]]\nbind-addr = \"127.0.0.1:{port}\"\nmax-connections = 4\n\
         [[http.output]]\nlocation = \"http://127.0.0.1:{}/write\"\ntimeout = \"1s\"\n",
        free_port()
    );
    let config = influx_relay::config::parse(&text).expect("config");
    let relay = influx_relay::relay::Relay::start(&config).expect("start in process");
    let shared = relay.shared().clone();
    let listener = &shared.http[0];
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");

    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    assert!(wait_until(Duration::from_secs(5), || {
        listener.open_connections.load(Ordering::Relaxed) == 4
    }));

    let started = Instant::now();
    for i in 0..6 {
        let mut extra = TcpStream::connect(addr).expect("the kernel still accepts");
        extra
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let _ = extra.write_all(b"GET /ping HTTP/1.1\r\n\r\n");
        let mut out = Vec::new();
        let _ = extra.read_to_end(&mut out);
        assert!(out.is_empty(), "extra connection {i} was answered");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "closed early");
    let rejected: u64 = listener
        .stats
        .iter()
        .map(|s| s.connections_rejected.get())
        .sum();
    assert_eq!(rejected, 6);

    // The four held connections are still served.
    for stream in &mut held {
        stream
            .write_all(b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n")
            .expect("send");
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        assert_eq!(statuses(&out), Ok(vec![204]));
    }
    // Once they are gone, there is room again.
    drop(held);
    assert!(wait_until(Duration::from_secs(5), || {
        listener.open_connections.load(Ordering::Relaxed) == 0
    }));
    let resp = http_request(addr, "GET", "/ping", &[], b"");
    assert_eq!(resp.status, 204);
    relay.shutdown();
}

/// How one exchange went for a client that sends its whole request before reading.
struct Exchange {
    /// Whether the whole request could be sent.
    sent: std::io::Result<()>,
    answer: Vec<u8>,
    /// How the answer ended: `Ok` for the relay's FIN, else what the read failed with.
    end: Result<(), std::io::ErrorKind>,
    took: Duration,
}

fn send_all_then_read(addr: SocketAddr, bytes: &[u8]) -> Exchange {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_write_timeout(Some(CLOSE_WITHIN))
        .expect("write timeout");
    stream
        .set_read_timeout(Some(CLOSE_WITHIN))
        .expect("read timeout");
    let started = Instant::now();
    let sent = stream.write_all(bytes);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e.kind()),
        }
    };
    Exchange {
        sent,
        answer,
        end,
        took: started.elapsed(),
    }
}

/// A refusal used to be written and the socket closed with the client's input unread:
/// the kernel then resets the connection, and a client still sending (a 200 KB header
/// block, a body over the limit) gets ECONNRESET instead of the answer. And bytes that
/// can never become a request line waited for `read-timeout` before their 400.
#[test]
fn refusals_reach_a_client_that_is_still_sending_instead_of_a_reset() {
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .listener_opt("max-body-size-mb", 1)
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();

    let header_block = format!(
        "POST /write?db=x HTTP/1.1\r\nHost: r\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    )
    .into_bytes();
    let body_too_big = post("db=x", "", &vec![b'#'; 3 << 20]);
    let mut random = random_bytes(2000, 0x2545_f491_4f6c_dd1d);
    random.retain(|&b| b != b'\n');
    let long_method = "A".repeat(2000).into_bytes();
    let bad_method_byte = b"PO\x01ST /write?db=x HTTP/1.1\r\n".to_vec();
    let rows: [(&str, Vec<u8>, u16); 5] = [
        ("a 200 KB header block", header_block, 431),
        ("a 3 MiB body over a 1 MiB limit", body_too_big, 413),
        ("2 000 random bytes without a line end", random, 400),
        ("a 2 000-byte method", long_method, 400),
        ("a control byte in the method", bad_method_byte, 400),
    ];
    let mut failures = Vec::new();
    for (name, bytes, want) in rows {
        let x = send_all_then_read(addr, &bytes);
        let got = statuses(&x.answer);
        if got != Ok(vec![want]) {
            failures.push(format!("{name}: got {got:?}"));
        }
        if let Err(e) = &x.sent {
            failures.push(format!("{name}: sending failed: {e}"));
        }
        if let Err(kind) = x.end {
            failures.push(format!("{name}: the answer ended with {kind:?}, not a FIN"));
        }
        // Far below the default 10 s read-timeout: nothing waited for it.
        if x.took > Duration::from_secs(3) {
            failures.push(format!("{name}: took {:?}", x.took));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let resp = http_request(addr, "GET", "/ping", &[], b"");
    assert_eq!(resp.status, 204);
}
