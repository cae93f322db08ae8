//! The sink: a fast stand-in for InfluxDB's `/write` and `/ping` (and for InfluxDB
//! 2.x's `/api/v2/write` and 3.x's `/api/v3/write_lp`, see [`apis`]), with counters and
//! the sequence analysis of [`crate::seq`], switchable at run time into failing, slow or
//! down modes.
//!
//! One accept thread and one blocking thread per connection: a delayed answer then
//! stalls only its own connection, and 2 000 connections cost 2 000 small stacks, which
//! is cheap next to the relay under test. UDP has a thread of its own.

pub mod apis;
mod http;
mod udp;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::args::SinkConfig;
use crate::json::Obj;
use crate::seq::{RunStats, SeqTracker};

/// Stack per connection thread: request buffers live on the heap, so a small stack
/// keeps 2 000 connections far below any memory limit.
const CONN_STACK: usize = 256 * 1024;
/// Pending connections the kernel queues for us; bursts of 2 000 connects must fit.
const LISTEN_BACKLOG: i32 = 4096;
/// How often the accept loop looks at stop and down requests.
const ACCEPT_TICK: Duration = Duration::from_millis(20);

/// How writes are answered; set by flags at start and by `POST /control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Behaviour {
    /// Answer every write with this status instead of 204.
    pub fail: Option<u16>,
    /// Sleep this long before answering a write.
    pub delay: Duration,
}

impl Behaviour {
    fn describe(&self, down: bool) -> String {
        if down {
            return "down".into();
        }
        match (self.fail, self.delay.is_zero()) {
            (None, true) => "ok".into(),
            (Some(s), true) => format!("fail:{s}"),
            (None, false) => format!("delay:{}ms", self.delay.as_millis()),
            (Some(s), false) => format!("fail:{s},delay:{}ms", self.delay.as_millis()),
        }
    }
}

/// Sink-wide counters; connection threads add to them once per request.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub writes: AtomicU64,
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    pub wire_bytes: AtomicU64,
    pub rejected_writes: AtomicU64,
    pub rejected_lines: AtomicU64,
    pub bad_requests: AtomicU64,
    pub untagged_lines: AtomicU64,
    pub pings: AtomicU64,
    pub connections: AtomicU64,
    pub active_connections: AtomicU64,
    pub udp_datagrams: AtomicU64,
    pub udp_lines: AtomicU64,
    pub udp_bytes: AtomicU64,
    pub udp_truncated: AtomicU64,
    /// Writes refused for a missing or wrong token.
    pub unauthorized: AtomicU64,
}

/// A copy of the counters and the per-run analysis at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkStats {
    pub requests: u64,
    /// `POST /write` requests answered 2xx.
    pub writes: u64,
    /// Lines accepted over HTTP (answered 204).
    pub lines: u64,
    /// Decoded body bytes accepted over HTTP.
    pub bytes: u64,
    /// Body bytes as received (compressed when gzip), accepted or not.
    pub wire_bytes: u64,
    pub rejected_writes: u64,
    pub rejected_lines: u64,
    pub bad_requests: u64,
    pub untagged_lines: u64,
    pub pings: u64,
    pub connections: u64,
    pub active_connections: u64,
    pub udp_datagrams: u64,
    pub udp_lines: u64,
    pub udp_bytes: u64,
    pub udp_truncated: u64,
    pub unauthorized: u64,
    /// Lines accepted per write target (API, database, precision; see `apis`), sorted.
    pub targets: Vec<(String, u64)>,
    pub mode: String,
    pub runs: Vec<(String, RunStats)>,
}

impl SinkStats {
    /// The analysis of run `id`, if any of its lines arrived.
    pub fn run(&self, id: &str) -> Option<RunStats> {
        self.runs.iter().find(|(k, _)| k == id).map(|(_, s)| *s)
    }

    pub fn to_json(&self) -> String {
        let mut runs = Obj::new();
        for (id, r) in &self.runs {
            let one = Obj::new()
                .u64("lines", r.lines)
                .u64("unique", r.unique)
                .u64("duplicates", r.duplicates)
                .u64("reordered", r.reordered)
                .u64("max_seq", r.max_seq)
                .u64("streams", r.streams)
                .u64("gaps", r.gaps)
                .u64("out_of_range", r.out_of_range)
                .finish();
            runs = runs.raw(id, &one);
        }
        Obj::new()
            .str("mode", &self.mode)
            .u64("requests", self.requests)
            .u64("writes", self.writes)
            .u64("lines", self.lines)
            .u64("bytes", self.bytes)
            .u64("wire_bytes", self.wire_bytes)
            .u64("rejected_writes", self.rejected_writes)
            .u64("rejected_lines", self.rejected_lines)
            .u64("bad_requests", self.bad_requests)
            .u64("untagged_lines", self.untagged_lines)
            .u64("pings", self.pings)
            .u64("connections", self.connections)
            .u64("active_connections", self.active_connections)
            .u64("udp_datagrams", self.udp_datagrams)
            .u64("udp_lines", self.udp_lines)
            .u64("udp_bytes", self.udp_bytes)
            .u64("udp_truncated", self.udp_truncated)
            .u64("unauthorized", self.unauthorized)
            .raw("targets", &{
                let mut t = Obj::new();
                for (k, n) in &self.targets {
                    t = t.u64(k, *n);
                }
                t.finish()
            })
            .raw("runs", &runs.finish())
            .finish()
    }
}

/// State shared by the accept loop, connection threads and the UDP thread.
#[derive(Debug, Default)]
struct Shared {
    counters: Counters,
    tracker: Mutex<SeqTracker>,
    behaviour: Mutex<Behaviour>,
    /// Set by `mode=down`; the accept loop takes it, closes the listener and every
    /// connection, and comes back after the duration.
    down_request: Mutex<Option<Duration>>,
    /// True while down: connection threads close instead of answering.
    down: AtomicBool,
    stop: AtomicBool,
    next_conn_id: AtomicU64,
    /// Clones of the live sockets, so going down can cut every connection at once.
    live: Mutex<HashMap<u64, TcpStream>>,
    /// Writes must carry `Authorization: Token <this>` (or `Bearer`) when set.
    token: Option<String>,
    /// Lines accepted per write target.
    targets: Mutex<HashMap<String, u64>>,
}

/// Locks a mutex, recovering the data if a connection thread panicked while holding it:
/// counters and bitmaps stay usable, and a test tool should keep answering.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn behaviour(&self) -> Behaviour {
        *lock(&self.behaviour)
    }

    fn stats(&self) -> SinkStats {
        let c = &self.counters;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SinkStats {
            requests: ld(&c.requests),
            writes: ld(&c.writes),
            lines: ld(&c.lines),
            bytes: ld(&c.bytes),
            wire_bytes: ld(&c.wire_bytes),
            rejected_writes: ld(&c.rejected_writes),
            rejected_lines: ld(&c.rejected_lines),
            bad_requests: ld(&c.bad_requests),
            untagged_lines: ld(&c.untagged_lines),
            pings: ld(&c.pings),
            connections: ld(&c.connections),
            active_connections: ld(&c.active_connections),
            udp_datagrams: ld(&c.udp_datagrams),
            udp_lines: ld(&c.udp_lines),
            udp_bytes: ld(&c.udp_bytes),
            udp_truncated: ld(&c.udp_truncated),
            unauthorized: ld(&c.unauthorized),
            targets: {
                let mut t: Vec<(String, u64)> = lock(&self.targets)
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                t.sort();
                t
            },
            mode: self.behaviour().describe(self.down.load(Ordering::Relaxed)),
            runs: lock(&self.tracker).snapshot(),
        }
    }

    /// Zeroes every counter and forgets every run, except the live-connection gauge.
    fn reset(&self) {
        let c = &self.counters;
        for a in [
            &c.requests,
            &c.writes,
            &c.lines,
            &c.bytes,
            &c.wire_bytes,
            &c.rejected_writes,
            &c.rejected_lines,
            &c.bad_requests,
            &c.untagged_lines,
            &c.pings,
            &c.connections,
            &c.udp_datagrams,
            &c.udp_lines,
            &c.udp_bytes,
            &c.udp_truncated,
            &c.unauthorized,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        lock(&self.targets).clear();
        lock(&self.tracker).clear();
    }
}

/// A running sink.
#[derive(Debug)]
pub struct SinkHandle {
    http_addr: SocketAddr,
    udp_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    udp: Option<JoinHandle<()>>,
}

impl SinkHandle {
    /// The bound HTTP address (the real port when 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    pub fn stats(&self) -> SinkStats {
        self.shared.stats()
    }

    /// Blocks for as long as the sink runs (until [`SinkHandle::shutdown`] elsewhere or
    /// the process ends).
    pub fn wait(mut self) {
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }

    /// Stops accepting and receiving. Connections already open end when their peers
    /// close them; tests do not wait for that.
    pub fn shutdown(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in [self.accept.take(), self.udp.take()].into_iter().flatten() {
            let _ = t.join();
        }
    }
}

/// Binds the listeners and starts the sink's threads.
pub fn start(cfg: &SinkConfig) -> io::Result<SinkHandle> {
    let listener = bind_listener(cfg.http)?;
    let http_addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        token: cfg.token.clone(),
        ..Shared::default()
    });
    *lock(&shared.behaviour) = Behaviour {
        fail: cfg.fail_status,
        delay: cfg.delay,
    };
    let (udp_addr, udp) = match cfg.udp {
        Some(addr) => {
            let sock = udp::bind(addr)?;
            let local = sock.local_addr()?;
            let sh = Arc::clone(&shared);
            let t = thread::Builder::new()
                .name("sink-udp".into())
                .spawn(move || udp::serve(&sh, &sock))?;
            (Some(local), Some(t))
        }
        None => (None, None),
    };
    let sh = Arc::clone(&shared);
    let accept = thread::Builder::new()
        .name("sink-accept".into())
        .spawn(move || accept_loop(&sh, listener, http_addr))?;
    Ok(SinkHandle {
        http_addr,
        udp_addr,
        shared,
        accept: Some(accept),
        udp,
    })
}

/// A nonblocking listener with `SO_REUSEADDR`, so coming back from `down` can rebind
/// the same port while old connections sit in TIME_WAIT.
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(LISTEN_BACKLOG)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener, addr: SocketAddr) {
    let mut listener = Some(listener);
    let mut up_at: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(secs) = lock(&shared.down_request).take() {
            // Closing the listener first means no new connection can slip in between
            // cutting the live ones and the start of the outage.
            listener = None;
            shared.down.store(true, Ordering::Relaxed);
            for (_, s) in lock(&shared.live).drain() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            up_at = Some(Instant::now() + secs);
        }
        let Some(l) = listener.as_ref() else {
            match up_at {
                Some(t) if Instant::now() < t => thread::sleep(ACCEPT_TICK),
                _ => match bind_listener(addr) {
                    Ok(l) => {
                        listener = Some(l);
                        up_at = None;
                        shared.down.store(false, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("level=warn msg=\"sink: rebind failed, retrying\" addr={addr} error=\"{e}\"");
                        thread::sleep(Duration::from_millis(200));
                    }
                },
            }
            continue;
        };
        if !wait_readable(l, ACCEPT_TICK) {
            continue;
        }
        loop {
            match l.accept() {
                Ok((s, _)) => spawn_conn(shared, s),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    eprintln!("level=warn msg=\"sink: accept failed\" error=\"{e}\"");
                    thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
    }
}

/// Waits up to `timeout` for a pending connection.
fn wait_readable(l: &TcpListener, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call and nfds is 1.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
    n > 0
}

fn spawn_conn(shared: &Arc<Shared>, sock: TcpStream) {
    let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    if sock.set_nonblocking(false).is_err() {
        return;
    }
    let _ = sock.set_nodelay(true);
    if let Ok(clone) = sock.try_clone() {
        lock(&shared.live).insert(id, clone);
    }
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .active_connections
        .fetch_add(1, Ordering::Relaxed);
    let sh = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("sink-conn".into())
        .stack_size(CONN_STACK)
        .spawn(move || {
            http::serve(&sh, sock);
            lock(&sh.live).remove(&id);
            sh.counters
                .active_connections
                .fetch_sub(1, Ordering::Relaxed);
        });
    if let Err(e) = spawned {
        eprintln!("level=warn msg=\"sink: cannot start connection thread\" error=\"{e}\"");
        lock(&shared.live).remove(&id);
        shared
            .counters
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}
