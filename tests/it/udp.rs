//! UDP ingest and UDP outputs (README: UDP): replication to real `influxd` UDP listeners,
//! MTU packing, bad lines, and loss accounting under a burst.
//!
//! The relay's counters are read from its periodic `udp stats` log lines, made frequent
//! through `INFLUX_RELAY_STATS_INTERVAL_MS`. Each relay also gets an HTTP listener, used
//! only to know when it is ready.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use influx_relay::udp::STATS_INTERVAL_ENV;

use crate::util::{self, Relay};

/// How long data may take to show up in a backend or in the relay's counters.
const SETTLE: Duration = Duration::from_secs(15);

/// Summaries every 100 ms in every relay this binary starts (they inherit the
/// environment); only relays with UDP listeners log them.
fn frequent_stats() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var(STATS_INTERVAL_ENV, "100"));
}

struct UdpOut<'a> {
    name: &'a str,
    location: SocketAddr,
    mtu: usize,
}

/// A relay with one `[[udp]]` listener named `udp-in` and the given outputs, plus an
/// HTTP listener whose output nobody serves (readiness only). Returns the relay and
/// the UDP address to send to.
fn start_relay(listener_opts: &str, outputs: &[UdpOut]) -> (Relay, SocketAddr) {
    frequent_stats();
    let udp_addr = SocketAddr::from(([127, 0, 0, 1], util::free_udp_port()));
    let mut config = format!(
        "[[http]]\nname = \"ready\"\nbind-addr = \"127.0.0.1:{}\"\n\
         [[http.output]]\nname = \"unused\"\nlocation = \"http://127.0.0.1:{}/write\"\n\n\
         [[udp]]\nname = \"udp-in\"\nbind-addr = \"{udp_addr}\"\n{listener_opts}\n",
        util::free_port(),
        util::free_port(),
    );
    for o in outputs {
        config.push_str(&format!(
            "[[udp.output]]\nname = \"{}\"\nlocation = \"{}\"\nmtu = {}\n",
            o.name, o.location, o.mtu
        ));
    }
    (Relay::start(&config), udp_addr)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// `key=value` fields of the last log line with `msg="MSG"` and every `filters` pair.
fn last_stats(
    relay: &Relay,
    msg: &str,
    filters: &[(&str, &str)],
) -> Option<HashMap<String, String>> {
    // The log quotes a message only when it has to (a space, a quote, an `=`).
    let quoted = format!("msg=\"{msg}\"");
    let plain = format!("msg={msg} ");
    relay.stderr_lines().iter().rev().find_map(|line| {
        if !line.contains(&quoted) && !line.contains(&plain) {
            return None;
        }
        let fields: HashMap<String, String> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        filters
            .iter()
            .all(|(k, v)| fields.get(*k).map(String::as_str) == Some(*v))
            .then_some(fields)
    })
}

fn field(fields: &HashMap<String, String>, key: &str) -> u64 {
    fields
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key} in {fields:?}"))
}

/// Listener counters once they satisfy `done`, or panic with the relay's log.
fn listener_stats(
    relay: &Relay,
    done: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let mut last = None;
    let ok = util::wait_until(SETTLE, || {
        last = last_stats(relay, "udp stats", &[("listener", "udp-in")]);
        last.as_ref().is_some_and(&done)
    });
    assert!(
        ok,
        "udp stats never as expected; last: {last:?}\n{}",
        relay.stderr_text()
    );
    last.unwrap_or_default()
}

fn output_stats(relay: &Relay, output: &str) -> Option<HashMap<String, String>> {
    last_stats(
        relay,
        "udp output stats",
        &[("listener", "udp-in"), ("output", output)],
    )
}

/// A plain socket standing in for a UDP backend: every datagram it gets, in order.
struct Sink {
    addr: SocketAddr,
    datagrams: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    fn start() -> Sink {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        // As large as the host allows, so the sink itself rarely drops.
        let _ = socket.set_recv_buffer_size(8 << 20);
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let socket: UdpSocket = socket.into();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let sink = Sink {
            addr: socket.local_addr().unwrap(),
            datagrams: Arc::default(),
            stop: Arc::default(),
        };
        let (datagrams, stop) = (sink.datagrams.clone(), sink.stop.clone());
        thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            while !stop.load(Ordering::Relaxed) {
                match socket.recv(&mut buf) {
                    Ok(n) => datagrams.lock().unwrap().push(buf[..n].to_vec()),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => panic!("sink: {e}"),
                }
            }
        });
        sink
    }

    fn datagrams(&self) -> Vec<Vec<u8>> {
        self.datagrams.lock().unwrap().clone()
    }

    fn lines(&self) -> Vec<String> {
        self.datagrams()
            .iter()
            .flat_map(|d| {
                String::from_utf8_lossy(d)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Datagrams the kernel dropped on the sink's socket (`/proc/net/udp`, last column).
    fn kernel_drops(&self) -> u64 {
        let port = format!(":{:04X}", self.addr.port());
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        table
            .lines()
            .skip(1)
            .find(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(&port))
            })
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("sink port {port} not in /proc/net/udp"))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn unique_measurement(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[test]
fn udp_lines_reach_both_backends_with_identical_timestamps() {
    let backends = util::shared_backends();
    let (relay, addr) = start_relay(
        "",
        &[
            UdpOut {
                name: "a",
                location: backends[0].udp_addr(),
                mtu: 1024,
            },
            UdpOut {
                name: "b",
                location: backends[1].udp_addr(),
                mtu: 1024,
            },
        ],
    );
    let m = unique_measurement("udp_same_ts");
    let before = now_ns();
    let sender = client();
    let mut first = String::new();
    for i in 0..20 {
        first.push_str(&format!("{m},k=n{i} v={i}i\n"));
    }
    first.push_str(&format!("{m},k=fixed v=1i 1500000000000000000\n"));
    sender.send_to(first.as_bytes(), addr).unwrap();
    sender
        .send_to(
            format!("{m},k=later v=2i\r\n{m},k=last v=3i").as_bytes(),
            addr,
        )
        .unwrap();
    for b in backends {
        assert!(
            util::wait_until(SETTLE, || util::count(b.http_addr(), "udp", &m) == 23),
            "{} has {} of 23 points",
            b.udp_addr(),
            util::count(b.http_addr(), "udp", &m)
        );
    }
    let after = now_ns();
    let q = format!("SELECT * FROM \"{m}\" ORDER BY time");
    let rows_a = util::rows(backends[0].http_addr(), "udp", &q);
    let rows_b = util::rows(backends[1].http_addr(), "udp", &q);
    assert_eq!(rows_a, rows_b, "the replicas differ");
    assert_eq!(rows_a.len(), 23);
    assert_eq!(rows_a[0][0], "1500000000000000000");
    for row in &rows_a[1..] {
        let t: i64 = row[0].parse().unwrap();
        assert!(
            (before..=after).contains(&t),
            "{t} is not the relay's receive time"
        );
    }
    let stats = listener_stats(&relay, |s| field(s, "lines") == 23);
    assert_eq!(field(&stats, "datagrams"), 2);
    assert_eq!(field(&stats, "bad_lines"), 0);
}

#[test]
fn a_bad_line_does_not_lose_its_neighbours() {
    let backends = util::shared_backends();
    let (relay, addr) = start_relay(
        "",
        &[UdpOut {
            name: "a",
            location: backends[0].udp_addr(),
            mtu: 1024,
        }],
    );
    let m = unique_measurement("udp_bad");
    let datagram = format!(
        "{m},k=1 v=1 1000\nthis is not line protocol\n{m},k=2 v=2 2000\n\
         {m},k=3 v= 3000\n# a comment\n\n{m},k=4 v=4 4000\n"
    );
    client().send_to(datagram.as_bytes(), addr).unwrap();
    let http = backends[0].http_addr();
    assert!(util::wait_until(SETTLE, || util::count(http, "udp", &m) == 3));
    let q = format!("SELECT k, v FROM \"{m}\" ORDER BY time");
    let keys: Vec<String> = util::rows(http, "udp", &q)
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(keys, ["\"1\"", "\"2\"", "\"4\""]);
    let stats = listener_stats(&relay, |s| field(s, "lines") == 3);
    assert_eq!(field(&stats, "bad_lines"), 2);
}

#[test]
fn outputs_get_whole_lines_packed_up_to_the_mtu() {
    let sink = Sink::start();
    let (mut relay, addr) = start_relay(
        "",
        &[UdpOut {
            name: "sink",
            location: sink.addr,
            mtu: 128,
        }],
    );
    // Lines of 20 to 127 bytes with their newline, and one of 200 that cannot fit.
    let mut expected = Vec::new();
    let mut datagram = String::new();
    for i in 0..60usize {
        let pad = "x".repeat((i * 37) % 100);
        let line = format!("mtu,i={i:02} s=\"{pad}\" {}", 1_000 + i);
        if i == 30 {
            datagram.push_str(&format!("mtu,i=long s=\"{}\" 1\n", "y".repeat(180)));
        }
        datagram.push_str(&line);
        datagram.push('\n');
        expected.push(line);
    }
    client().send_to(datagram.as_bytes(), addr).unwrap();
    assert!(
        util::wait_until(SETTLE, || sink.lines().len() >= expected.len()),
        "sink got {} of {} lines",
        sink.lines().len(),
        expected.len()
    );
    for d in sink.datagrams() {
        assert!(d.len() <= 128, "a datagram of {} bytes", d.len());
        assert_eq!(d.last(), Some(&b'\n'), "a datagram not ending a line");
    }
    assert_eq!(sink.lines(), expected);
    assert!(util::wait_until(SETTLE, || {
        output_stats(&relay, "sink")
            .is_some_and(|s| field(&s, "too_long") == 1 && field(&s, "lines") == 60)
    }));
    assert!(relay.stop().success());
}

#[test]
fn lines_without_timestamp_are_stamped_at_the_listener_precision() {
    let sink = Sink::start();
    let (_relay, addr) = start_relay(
        "precision = \"s\"",
        &[UdpOut {
            name: "sink",
            location: sink.addr,
            mtu: 1024,
        }],
    );
    let before = now_ns() / 1_000_000_000;
    client().send_to(b"p v=1\np v=2 42\n", addr).unwrap();
    assert!(util::wait_until(SETTLE, || sink.lines().len() == 2));
    let after = now_ns() / 1_000_000_000;
    let lines = sink.lines();
    let stamp: i64 = lines[0].strip_prefix("p v=1 ").unwrap().parse().unwrap();
    assert!(
        (before..=after).contains(&stamp),
        "{stamp} is not now in seconds"
    );
    assert_eq!(lines[1], "p v=2 42");
}

/// What one burst came to.
struct Burst {
    relay_kernel_drops: u64,
    sink_received: u64,
}

/// 100 000 datagrams as fast as one socket can send them: each line is delivered to the
/// sink or counted as dropped somewhere (relay socket, output queue, sink socket).
fn burst(read_buffer: usize) -> Burst {
    const BURST: u64 = 100_000;
    let sink = Sink::start();
    let (mut relay, addr) = start_relay(
        &format!("read-buffer = {read_buffer}"),
        &[UdpOut {
            name: "sink",
            location: sink.addr,
            mtu: 1024,
        }],
    );
    let sender = client();
    sender.connect(addr).unwrap();
    for i in 0..BURST {
        let line = format!("burst,i={} v={i}i {i}", i % 100);
        // ENOBUFS/EAGAIN-style refusals never happen on loopback, but do not loop on one.
        sender.send(line.as_bytes()).unwrap();
    }
    // The kernel reports its drops with the next datagram it delivers on that socket;
    // the same source address always reaches the same relay socket, so follow up until
    // every datagram sent is accounted for (a follow-up may itself be dropped).
    let mut sent = BURST;
    let mut settled = None;
    for _ in 0..20 {
        sender.send(b"burst_end v=1i 1").unwrap();
        sent += 1;
        let accounted = util::wait_until(Duration::from_secs(1), || {
            last_stats(&relay, "udp stats", &[("listener", "udp-in")])
                .is_some_and(|s| field(&s, "datagrams") + field(&s, "kernel_drops") == sent)
        });
        if accounted {
            settled = last_stats(&relay, "udp stats", &[("listener", "udp-in")]);
            break;
        }
    }
    let listener =
        settled.unwrap_or_else(|| panic!("datagrams never added up\n{}", relay.stderr_text()));
    assert_eq!(field(&listener, "bad_lines"), 0);
    assert_eq!(field(&listener, "truncated"), 0);
    let lines_in = field(&listener, "lines");
    assert_eq!(lines_in, field(&listener, "datagrams"));

    // Stopping flushes the output queue; the final summary then has the last word.
    assert!(relay.stop().success());
    let dropped = |s: &HashMap<String, String>| {
        field(s, "too_long") + field(s, "queue_full") + field(s, "send_failed")
    };
    let mut out = None;
    let added_up = util::wait_until(SETTLE, || {
        out = output_stats(&relay, "sink");
        out.as_ref()
            .is_some_and(|s| field(s, "lines") + dropped(s) == lines_in)
    });
    assert!(
        added_up,
        "output counters {out:?} do not add up to {lines_in} lines in"
    );
    let out = out.unwrap_or_default();
    let lines_out = field(&out, "lines");
    let dropped_out = dropped(&out);

    thread::sleep(Duration::from_millis(200));
    let received = sink.lines().len() as u64;
    let sink_drops = sink.kernel_drops();
    // A sink datagram carries many lines, so its drops are in datagrams: bound, not sum.
    assert!(received <= lines_out);
    if sink_drops == 0 {
        assert_eq!(received, lines_out);
    }
    assert!(received > 0, "nothing got through");
    eprintln!(
        "burst (read-buffer {read_buffer}): sent {sent}, relay kernel drops {}, lines in \
         {lines_in}, out {lines_out}, dropped at outputs {dropped_out}, sink got {received} \
         (sink drops {sink_drops} datagrams)",
        field(&listener, "kernel_drops")
    );
    Burst {
        relay_kernel_drops: field(&listener, "kernel_drops"),
        sink_received: received,
    }
}

#[test]
fn a_burst_of_100000_datagrams_is_delivered_or_counted() {
    let b = burst(4 << 20);
    assert!(b.sink_received > 0);
}

/// The smallest receive buffer overflows at once: the kernel's drops must show in the
/// relay's counters and still add up with what got through.
#[test]
fn kernel_drops_in_a_burst_are_counted() {
    let b = burst(1);
    assert!(b.relay_kernel_drops > 0, "a 2 KiB buffer did not overflow");
}

/// A `read-buffer` above `net.core.rmem_max` without `CAP_NET_ADMIN`: the kernel caps it
/// silently, so the relay must still start, log the buffer it got, and warn once per
/// listener (not once per loop) with what to do about it.
#[test]
fn a_read_buffer_the_kernel_caps_is_logged_with_the_fix() {
    const CAP_NET_ADMIN: libc::c_int = 12;
    let rmem_max: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let asked = 2 * rmem_max;
    let udp_addr = SocketAddr::from(([127, 0, 0, 1], util::free_udp_port()));
    let config = format!(
        "threads = 2\n\
         [[http]]\nname = \"ready\"\nbind-addr = \"127.0.0.1:{}\"\n\
         [[http.output]]\nname = \"unused\"\nlocation = \"http://127.0.0.1:{}/write\"\n\n\
         [[udp]]\nname = \"udp-in\"\nbind-addr = \"{udp_addr}\"\nread-buffer = {asked}\n\
         [[udp.output]]\nname = \"nowhere\"\nlocation = \"127.0.0.1:{}\"\n",
        util::free_port(),
        util::free_port(),
        util::free_udp_port(),
    );
    let relay = Relay::start_without_capability(&config, CAP_NET_ADMIN);
    assert!(
        !relay.has_capability(CAP_NET_ADMIN),
        "the relay kept CAP_NET_ADMIN; this test needs it gone"
    );
    assert!(
        relay.wait_for_log("read-buffer capped", SETTLE),
        "no warning\n{}",
        relay.stderr_text()
    );
    let listening = last_stats(&relay, "listening", &[("listener", "udp-in")])
        .unwrap_or_else(|| panic!("no listening line\n{}", relay.stderr_text()));
    assert_eq!(field(&listening, "read_buffer"), rmem_max);
    let warning =
        last_stats(&relay, "udp read-buffer capped by the kernel", &[]).unwrap_or_default();
    assert_eq!(field(&warning, "asked"), asked);
    assert_eq!(field(&warning, "got"), rmem_max);
    // Once per listener, though each of the two loops binds its own socket.
    let warnings: Vec<String> = relay
        .stderr_lines()
        .into_iter()
        .filter(|l| l.contains("read-buffer capped"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", relay.stderr_text());
    assert!(
        warnings[0].contains("fix=\"raise net.core.rmem_max, or run with CAP_NET_ADMIN\""),
        "{}",
        warnings[0]
    );
}
