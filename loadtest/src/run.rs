//! The generator: keep-alive HTTP connections spread over a few `mio` event-loop
//! threads, plus an optional UDP sender, all feeding one report.
//!
//! Each connection sends one request at a time and sends the next as soon as the answer
//! arrives (or when the rate limiter allows). Every connection is its own sequence
//! stream, so the sink can tell lost, duplicated and reordered lines apart. With
//! `--rate`, latency is measured from when a request was *due*, not when it went out,
//! so a stalled server shows up as latency instead of as politely missing samples.

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::args::{ProgressMode, RunConfig};
use crate::client::{frame_response, Framing, RequestTemplate};
use crate::gen::{FieldPool, GenConfig, LineGen};
use crate::mmsg::{self, Datagrams};
use crate::report::{new_histogram, Failure, Report, Tally, Timeline};

/// Datagram payload limit: whole lines up to this many bytes, under a 1500-byte MTU.
pub const UDP_PAYLOAD: usize = 1400;
/// Longest a loop sleeps in `poll`, so stop requests and timers are seen promptly.
const TICK: Duration = Duration::from_millis(10);
/// First reconnect delay after a failure; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Largest response the generator buffers; InfluxDB's answers are a few hundred bytes.
const MAX_RESPONSE: usize = 1 << 20;
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// With [`Progress::Lines`], one line per this many seconds: a log gets the shape of
/// the run without a line per second.
const PLAIN_EVERY_SECS: u64 = 5;
/// How long after a second's end the progress line for it is printed.
const PROGRESS_SLACK: Duration = Duration::from_millis(100);
const EVENTS_CAPACITY: usize = 1024;
/// A paced request may leave this much before it is due: `poll` sleeps in whole
/// milliseconds, and waking late would add timer lag to every measured latency.
const PACING_EARLY: Duration = Duration::from_millis(1);
/// Paced UDP wakes up this often at most and sends what is due in one go.
const UDP_PACING_STEP: Duration = Duration::from_millis(1);

/// State all generator threads share; everything else is per thread.
#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// Requests (datagrams with `--udp-only`) handed out so far.
    claimed: AtomicU64,
    /// `--requests`, when given.
    limit: Option<u64>,
    /// Start of the run: window 0 of every thread's timeline begins here.
    start: Instant,
    /// With `--ts-step`: the stamp of request 0's first line, so that the last line of
    /// the `--requests` budget is stamped just before the run started.
    ts_origin: u64,
}

impl Shared {
    /// Takes one request from the `--requests` budget; its number (0, 1, …), or `None`
    /// once the budget is spent.
    fn claim(&self) -> Option<u64> {
        let n = self.claimed.fetch_add(1, Ordering::Relaxed);
        match self.limit {
            Some(l) if n >= l => None,
            _ => Some(n),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What a generator thread hands back: its counters, latencies and, with `--window`,
/// its timeline.
type WorkerResult = (Tally, Histogram<u64>, Option<Timeline>);

/// A once-a-second snapshot from a thread to the progress printer.
struct Tick {
    thread: usize,
    lines: u64,
    requests: u64,
    errors: u64,
    interval: Histogram<u64>,
}

/// How progress is shown on stderr while a run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// One status line rewritten in place each second (carriage return and
    /// erase-to-end-of-line): for a person at a terminal.
    Live,
    /// A plain line every [`PLAIN_EVERY_SECS`]: for logs and pipes.
    Lines,
}

/// What `--progress` asks for on this stderr: `auto` is `live` on a terminal only, so
/// no escape codes end up in a log.
pub fn progress_for(mode: ProgressMode) -> Option<Progress> {
    match mode {
        ProgressMode::Auto if io::stderr().is_terminal() => Some(Progress::Live),
        ProgressMode::Auto | ProgressMode::Lines => Some(Progress::Lines),
        ProgressMode::Live => Some(Progress::Live),
        ProgressMode::Off => None,
    }
}

/// Runs the load described by `cfg`, showing progress on stderr as `progress` says.
pub fn run(cfg: &RunConfig, progress: Option<Progress>) -> io::Result<Report> {
    let start = Instant::now();
    let start_unix_ms = unix_nanos() / 1_000_000;
    let ts_step = cfg.ts_step.map_or(0, |d| d.as_nanos() as u64);
    // Every line of the budget one step apart, the last one a step before the start.
    let budget_lines = cfg.requests.unwrap_or(0) * cfg.lines as u64;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        claimed: AtomicU64::new(0),
        limit: cfg.requests,
        start,
        ts_origin: (start_unix_ms * 1_000_000).saturating_sub(budget_lines * ts_step),
    });
    let gen_cfg = Arc::new(GenConfig {
        run_id: cfg.run_id.clone(),
        series: cfg.series,
        timestamps: cfg.timestamps,
        unit_nanos: cfg.unit_nanos(),
        ts_step,
    });
    let pool = FieldPool::new(0x5eed);
    let (tx, rx) = crossbeam_channel::bounded::<Tick>(256);
    let tx = progress.is_some().then_some(tx);

    let mut http = Vec::new();
    if let Some(target) = cfg.target {
        let threads = cfg.threads.max(1);
        for t in 0..threads {
            // Streams are numbered 0..connections across threads.
            let first = cfg.connections * t / threads;
            let last = cfg.connections * (t + 1) / threads;
            let mut w = Worker::new(
                cfg,
                Arc::clone(&shared),
                target,
                (first..last).map(|s| LineGen::new(Arc::clone(&gen_cfg), pool.clone(), s as u64)),
                t,
                threads,
                tx.clone(),
            )?;
            http.push(
                thread::Builder::new()
                    .name(format!("gen-{t}"))
                    .spawn(move || w.run())?,
            );
        }
    }
    let udp = match cfg.udp {
        Some(addr) => {
            let stream = if cfg.target.is_some() {
                cfg.connections as u64
            } else {
                0
            };
            let gen = LineGen::new(Arc::clone(&gen_cfg), pool.clone(), stream);
            let rate = if cfg.udp_only { cfg.rate } else { cfg.udp_rate };
            let sh = Arc::clone(&shared);
            let (only, thread_id, tx) = (cfg.udp_only, http.len(), tx.clone());
            Some(
                thread::Builder::new()
                    .name("gen-udp".into())
                    .spawn(move || udp_sender(&sh, addr, gen, rate, only, thread_id, tx))?,
            )
        }
        None => None,
    };
    drop(tx);

    supervise(cfg, &shared, start, &http, udp.as_ref(), &rx, progress);

    let mut tally = Tally::default();
    let mut latency = new_histogram();
    let mut timeline = cfg.window.map(Timeline::new);
    for h in http {
        match h.join() {
            Ok((t, hist, tl)) => {
                tally.merge(&t);
                let _ = latency.add(&hist);
                if let (Some(all), Some(one)) = (timeline.as_mut(), tl.as_ref()) {
                    all.merge(one);
                }
            }
            Err(_) => return Err(io::Error::other("a generator thread panicked")),
        }
    }
    if let Some(h) = udp {
        match h.join() {
            Ok(t) => tally.merge(&t),
            Err(_) => return Err(io::Error::other("the UDP sender panicked")),
        }
    }
    Ok(Report {
        run_id: cfg.run_id.clone(),
        duration_secs: start.elapsed().as_secs_f64(),
        connections: if cfg.target.is_some() {
            cfg.connections
        } else {
            0
        },
        lines_per_request: cfg.lines,
        tally,
        latency,
        start_unix_ms,
        timeline,
        phases: cfg.phases.clone(),
    })
}

/// Waits for the threads, ends the run at its deadline and prints progress.
fn supervise(
    cfg: &RunConfig,
    shared: &Shared,
    start: Instant,
    http: &[thread::JoinHandle<WorkerResult>],
    udp: Option<&thread::JoinHandle<Tally>>,
    rx: &Receiver<Tick>,
    progress: Option<Progress>,
) {
    let deadline = cfg.duration.map(|d| start + d);
    let threads = http.len() + usize::from(udp.is_some());
    let mut last = vec![(0u64, 0u64, 0u64); threads];
    let mut shown = (0u64, 0u64, 0u64);
    let mut so_far = new_histogram();
    // Offset of the last line shown: rates are averaged since then.
    let mut shown_at = Duration::ZERO;
    let mut live_shown = false;
    // Threads send their tick just after each second; printing a little later lets
    // every thread's tick of that second arrive first.
    let mut next_print = start + PROGRESS_EVERY + PROGRESS_SLACK;
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        let http_done = http.iter().all(|h| h.is_finished());
        if http_done && !http.is_empty() {
            // UDP beside HTTP runs exactly as long as the HTTP load does.
            shared.stop.store(true, Ordering::Relaxed);
        }
        if http_done && udp.is_none_or(|u| u.is_finished()) {
            break;
        }
        match rx.recv_timeout(TICK) {
            Ok(t) => {
                if let Some(slot) = last.get_mut(t.thread) {
                    *slot = (t.lines, t.requests, t.errors);
                }
                let _ = so_far.add(&t.interval);
            }
            Err(RecvTimeoutError::Timeout) => {}
            // Without progress no thread holds a sender, so the channel is closed from
            // the start and would return at once: this wait must not become a spin that
            // takes a core from the process under test.
            Err(RecvTimeoutError::Disconnected) => thread::sleep(TICK),
        }
        let Some(style) = progress.filter(|_| Instant::now() >= next_print) else {
            continue;
        };
        let total = last
            .iter()
            .fold((0, 0, 0), |a, x| (a.0 + x.0, a.1 + x.1, a.2 + x.2));
        let elapsed = (next_print - PROGRESS_SLACK).duration_since(start);
        next_print += PROGRESS_EVERY;
        let due = match style {
            Progress::Live => true,
            Progress::Lines => elapsed.as_secs().is_multiple_of(PLAIN_EVERY_SECS),
        };
        if !due {
            continue;
        }
        let secs = (elapsed - shown_at).as_secs_f64().max(1e-3);
        let status = Status {
            elapsed,
            lines_per_sec: (total.0 - shown.0) as f64 / secs,
            requests_per_sec: (total.1 - shown.1) as f64 / secs,
            errors: total.2,
            p99_us: (!so_far.is_empty()).then(|| so_far.value_at_quantile(0.99)),
            left: match (cfg.duration, cfg.requests) {
                (Some(d), _) => Left::Time(d.saturating_sub(elapsed)),
                (None, Some(of)) => Left::Requests { done: total.1, of },
                (None, None) => Left::Unknown,
            },
        };
        (shown, shown_at) = (total, elapsed);
        match style {
            // Erase to the end of the line: the previous line may have been longer.
            Progress::Live => {
                eprint!("\r{}\x1b[K", status.line());
                live_shown = true;
            }
            Progress::Lines => eprintln!("{}", status.line()),
        }
    }
    if live_shown {
        // The report starts on a line of its own; the last status stays visible.
        eprintln!();
    }
}

/// What is left of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Left {
    Time(Duration),
    Requests { done: u64, of: u64 },
    Unknown,
}

/// One progress report: rates since the previous one, the rest since the start.
#[derive(Debug, Clone, PartialEq)]
struct Status {
    elapsed: Duration,
    lines_per_sec: f64,
    requests_per_sec: f64,
    errors: u64,
    /// `None` until the first answer.
    p99_us: Option<u64>,
    left: Left,
}

impl Status {
    fn line(&self) -> String {
        let p99 = self.p99_us.map_or("-".to_string(), |us| {
            format!("{:.2} ms", us as f64 / 1000.0)
        });
        let left = match self.left {
            Left::Time(d) => format!("{}s left", d.as_secs_f64().ceil()),
            Left::Requests { done, of } => format!("{done} of {of} requests"),
            Left::Unknown => String::new(),
        };
        format!(
            "[{:>4}s] {} lines/s  {} req/s  errors {}  p99 so far {p99}  {left}",
            self.elapsed.as_secs(),
            si(self.lines_per_sec),
            si(self.requests_per_sec),
            self.errors,
        )
        .trim_end()
        .to_string()
    }
}

/// A rate as people read it: `2.41 M`, `24.1 k`, `512`.
fn si(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Wall-clock nanoseconds since the Unix epoch, for timestamps.
fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Spaces requests evenly: the n-th request of a thread is due at `start + n·interval`.
#[derive(Debug)]
struct Pacer {
    start: Instant,
    interval_nanos: f64,
    sent: u64,
}

impl Pacer {
    fn new(per_sec: f64, start: Instant) -> Pacer {
        Pacer {
            start,
            interval_nanos: 1e9 / per_sec,
            sent: 0,
        }
    }

    fn next_due(&self) -> Instant {
        self.start + Duration::from_nanos((self.sent as f64 * self.interval_nanos) as u64)
    }

    fn take(&mut self) -> Instant {
        let due = self.next_due();
        self.sent += 1;
        due
    }

    /// How many requests not yet taken are due by `t`.
    fn due_by(&self, t: Instant) -> u64 {
        let elapsed = t.saturating_duration_since(self.start).as_nanos() as f64;
        let due = (elapsed / self.interval_nanos).floor() as u64 + 1;
        due.saturating_sub(self.sent)
    }

    /// Take `n` requests at once.
    fn skip(&mut self, n: u64) {
        self.sent += n;
    }
}

/// Gzip with one reusable deflate state per thread (a new encoder per request would
/// allocate and initialise its tables every time).
struct Gzipper {
    deflate: flate2::Compress,
    crc: flate2::Crc,
}

/// Gzip member header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl Gzipper {
    fn new() -> Gzipper {
        Gzipper {
            deflate: flate2::Compress::new(flate2::Compression::fast(), false),
            crc: flate2::Crc::new(),
        }
    }

    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(&GZIP_HEADER);
        self.deflate.reset();
        loop {
            let consumed = self.deflate.total_in() as usize;
            out.reserve((input.len() - consumed) / 2 + 128);
            let status = self
                .deflate
                .compress_vec(&input[consumed..], out, flate2::FlushCompress::Finish)
                .map_err(io::Error::other)?;
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        self.crc.reset();
        self.crc.update(input);
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No socket; reconnect at `retry_at` unless the run is ending.
    Down,
    Connecting,
    /// Connected, waiting in the ready queue for its next request.
    Idle,
    Writing,
    Reading,
}

/// One keep-alive connection and its sequence stream.
struct Conn {
    sock: Option<TcpStream>,
    phase: Phase,
    gen: LineGen,
    /// The request being written; `out[out_pos..]` is still to go.
    out: Vec<u8>,
    out_pos: usize,
    /// The answer read so far is `inb[..in_len]`.
    inb: Vec<u8>,
    in_len: usize,
    /// Status of an answer whose body ends at EOF (no length given).
    until_eof: Option<u16>,
    req_lines: u64,
    req_body_bytes: u64,
    /// When the request was due (with `--rate`) or started: latency is measured from here.
    origin: Instant,
    /// Connect or request deadline.
    deadline: Instant,
    backoff: Duration,
    retry_at: Instant,
}

/// Result of trying to progress a connection.
enum Step {
    /// Nothing more to do until the next readiness event.
    Blocked,
    Failed(Failure),
}

/// One generator thread: a `mio::Poll` and its share of the connections.
struct Worker {
    cfg: RunConfig,
    shared: Arc<Shared>,
    target: SocketAddr,
    thread: usize,
    poll: Poll,
    conns: Vec<Conn>,
    template: RequestTemplate,
    /// Uncompressed body of the request being built.
    scratch: Vec<u8>,
    gz_buf: Vec<u8>,
    gzip: Option<Gzipper>,
    ready: VecDeque<usize>,
    pacer: Option<Pacer>,
    in_flight: usize,
    exhausted: bool,
    tally: Tally,
    hist: Histogram<u64>,
    interval: Histogram<u64>,
    timeline: Option<Timeline>,
    progress: Option<Sender<Tick>>,
}

impl Worker {
    fn new(
        cfg: &RunConfig,
        shared: Arc<Shared>,
        target: SocketAddr,
        gens: impl Iterator<Item = LineGen>,
        thread: usize,
        threads: usize,
        progress: Option<Sender<Tick>>,
    ) -> io::Result<Worker> {
        let now = Instant::now();
        let conns = gens
            .map(|gen| Conn {
                sock: None,
                phase: Phase::Down,
                gen,
                out: Vec::new(),
                out_pos: 0,
                inb: vec![0; 4096],
                in_len: 0,
                until_eof: None,
                req_lines: 0,
                req_body_bytes: 0,
                origin: now,
                deadline: now,
                backoff: MIN_BACKOFF,
                retry_at: now,
            })
            .collect();
        let query = cfg.write_target();
        Ok(Worker {
            template: RequestTemplate::new(&query, &cfg.host_header, cfg.gzip),
            cfg: cfg.clone(),
            shared,
            target,
            thread,
            poll: Poll::new()?,
            conns,
            scratch: Vec::new(),
            gz_buf: Vec::new(),
            gzip: cfg.gzip.then(Gzipper::new),
            ready: VecDeque::new(),
            pacer: cfg.rate.map(|r| Pacer::new(r / threads as f64, now)),
            in_flight: 0,
            exhausted: false,
            tally: Tally::default(),
            hist: new_histogram(),
            interval: new_histogram(),
            timeline: cfg.window.map(Timeline::new),
            progress,
        })
    }

    fn run(&mut self) -> WorkerResult {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut next_tick = Instant::now() + PROGRESS_EVERY;
        let mut drain_deadline: Option<Instant> = None;
        let mut next_scan = Instant::now();
        loop {
            let now = Instant::now();
            let ending = self.exhausted || self.shared.stopping();
            if ending {
                if self.in_flight == 0 {
                    break;
                }
                // In-flight requests get their full timeout to answer, then count as
                // timeouts: an answer never seen is not an acknowledgement.
                let d = *drain_deadline.get_or_insert(now + self.cfg.timeout);
                if now >= d {
                    self.expire_all(now);
                    break;
                }
            }
            // The scan is O(connections): with 2 000 of them it must not run on every
            // one of the tens of thousands of passes a second.
            if now >= next_scan {
                self.timers(now, ending);
                next_scan = now + TICK;
            }
            if !ending {
                self.start_ready(now);
            }
            if self.progress.is_some() && now >= next_tick {
                self.send_tick();
                next_tick += PROGRESS_EVERY;
            }
            let mut timeout = TICK;
            if let (Some(p), false) = (&self.pacer, self.ready.is_empty()) {
                timeout = timeout.min(p.next_due().saturating_duration_since(now + PACING_EARLY));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("level=error msg=\"generator poll failed\" error=\"{e}\"");
                break;
            }
            let now = Instant::now();
            for ev in events.iter() {
                let i = ev.token().0;
                if i < self.conns.len() {
                    self.on_event(i, now);
                }
            }
        }
        if self.progress.is_some() {
            self.send_tick();
        }
        (
            std::mem::take(&mut self.tally),
            self.hist.clone(),
            self.timeline.take(),
        )
    }

    fn send_tick(&mut self) {
        if let Some(tx) = &self.progress {
            let _ = tx.try_send(Tick {
                thread: self.thread,
                lines: self.tally.lines_acked,
                requests: self.tally.requests,
                errors: self.tally.error_total(),
                interval: self.interval.clone(),
            });
        }
        self.interval.reset();
    }

    /// Reconnects and times out connections.
    fn timers(&mut self, now: Instant, ending: bool) {
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            match c.phase {
                Phase::Down if !ending && now >= c.retry_at => self.connect(i, now),
                Phase::Connecting if now >= c.deadline => self.fail(i, Failure::Connect, now),
                Phase::Writing | Phase::Reading if now >= c.deadline => {
                    self.fail(i, Failure::Timeout, now)
                }
                _ => {}
            }
        }
    }

    fn expire_all(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            if matches!(self.conns[i].phase, Phase::Writing | Phase::Reading) {
                self.fail(i, Failure::Timeout, now);
            }
        }
    }

    fn connect(&mut self, i: usize, now: Instant) {
        let sock = TcpStream::connect(self.target).and_then(|mut s| {
            self.poll.registry().register(
                &mut s,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(s)
        });
        let c = &mut self.conns[i];
        match sock {
            Ok(s) => {
                c.sock = Some(s);
                c.phase = Phase::Connecting;
                c.deadline = now + self.cfg.timeout;
            }
            Err(_) => self.fail(i, Failure::Connect, now),
        }
    }

    /// Hands out requests to idle connections as the budget and the pacer allow.
    fn start_ready(&mut self, now: Instant) {
        while let Some(&i) = self.ready.front() {
            if self.conns[i].phase != Phase::Idle {
                self.ready.pop_front();
                continue;
            }
            if self
                .pacer
                .as_ref()
                .is_some_and(|p| p.next_due() > now + PACING_EARLY)
            {
                return;
            }
            let Some(number) = self.shared.claim() else {
                self.exhausted = true;
                return;
            };
            self.ready.pop_front();
            let due = self.pacer.as_mut().map(Pacer::take);
            self.begin(i, number, due, now);
        }
    }

    /// Builds and starts sending a request; `due` is its paced start time, if paced.
    fn begin(&mut self, i: usize, number: u64, due: Option<Instant>, now: Instant) {
        let lines = self.cfg.lines;
        let c = &mut self.conns[i];
        self.scratch.clear();
        // With --ts-step the request's number places its lines in the backfilled
        // stretch: unique stamps, rising with the order requests were started in.
        let stamp = match self.cfg.ts_step {
            Some(step) => self.shared.ts_origin + number * lines as u64 * step.as_nanos() as u64,
            None => unix_nanos(),
        };
        c.gen.fill(&mut self.scratch, lines, stamp);
        c.out.clear();
        let body: &[u8] = match &mut self.gzip {
            Some(gz) => {
                self.gz_buf.clear();
                if gz.compress(&self.scratch, &mut self.gz_buf).is_err() {
                    // Only an internal deflate error gets here; skip this request.
                    c.phase = Phase::Idle;
                    self.ready.push_back(i);
                    return;
                }
                &self.gz_buf
            }
            None => &self.scratch,
        };
        self.template.write_head(&mut c.out, body.len());
        c.out.extend_from_slice(body);
        c.out_pos = 0;
        c.in_len = 0;
        c.until_eof = None;
        c.req_lines = lines as u64;
        c.req_body_bytes = self.scratch.len() as u64;
        // Latency starts when the request was due or, if it goes out before that (see
        // `PACING_EARLY`) or unpaced, once the body is built: generation and gzip are
        // the generator's cost, not the server's.
        let built = Instant::now();
        c.origin = due.map_or(built, |d| d.min(built));
        c.deadline = now + self.cfg.timeout;
        c.phase = Phase::Writing;
        self.in_flight += 1;
        self.drive(i, now);
    }

    fn on_event(&mut self, i: usize, now: Instant) {
        match self.conns[i].phase {
            Phase::Connecting => self.check_connected(i, now),
            Phase::Writing | Phase::Reading => self.drive(i, now),
            Phase::Idle => self.check_idle(i, now),
            // A stale event for a socket already dropped.
            Phase::Down => {}
        }
    }

    fn check_connected(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        let Some(s) = c.sock.as_ref() else { return };
        match s.take_error() {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => return self.fail(i, Failure::Connect, now),
        }
        match s.peer_addr() {
            Ok(_) => {
                let _ = s.set_nodelay(true);
                c.phase = Phase::Idle;
                self.ready.push_back(i);
            }
            // Spurious wake-up: the handshake is still going on.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
            Err(_) => self.fail(i, Failure::Connect, now),
        }
    }

    /// An idle connection became readable: the server closed it (keep-alive timeout,
    /// restart) or sent something unasked. Either way, start afresh without an error.
    fn check_idle(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        let Some(s) = c.sock.as_mut() else { return };
        let mut probe = [0u8; 1];
        match s.read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => {
                self.drop_socket(i);
                let c = &mut self.conns[i];
                c.phase = Phase::Down;
                c.retry_at = now;
            }
        }
    }

    fn drive(&mut self, i: usize, now: Instant) {
        match self.progress_io(i, now) {
            Ok(()) | Err(Step::Blocked) => {}
            Err(Step::Failed(f)) => self.fail(i, f, now),
        }
    }

    /// Writes the request and reads the answer as far as the socket allows.
    fn progress_io(&mut self, i: usize, now: Instant) -> Result<(), Step> {
        let c = &mut self.conns[i];
        let Some(sock) = c.sock.as_mut() else {
            return Err(Step::Failed(Failure::Closed));
        };
        if c.phase == Phase::Writing {
            while c.out_pos < c.out.len() {
                match sock.write(&c.out[c.out_pos..]) {
                    Ok(0) => return Err(Step::Failed(Failure::Closed)),
                    Ok(n) => c.out_pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Step::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Step::Failed(classify(&e))),
                }
            }
            self.tally.wire_bytes += c.out.len() as u64;
            self.tally.lines_sent += c.req_lines;
            c.phase = Phase::Reading;
        }
        loop {
            if c.in_len == c.inb.len() {
                if c.inb.len() >= MAX_RESPONSE {
                    return Err(Step::Failed(Failure::Proto));
                }
                let n = c.inb.len() * 2;
                c.inb.resize(n, 0);
            }
            match sock.read(&mut c.inb[c.in_len..]) {
                Ok(0) => {
                    return match c.until_eof {
                        Some(status) => {
                            self.complete(i, status, true, now);
                            Ok(())
                        }
                        None => Err(Step::Failed(Failure::Closed)),
                    };
                }
                Ok(n) => c.in_len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Step::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Step::Failed(classify(&e))),
            }
            loop {
                match frame_response(&c.inb[..c.in_len]) {
                    Ok(Framing::Partial) => break,
                    Ok(Framing::Interim { len }) => {
                        c.inb.copy_within(len..c.in_len, 0);
                        c.in_len -= len;
                    }
                    Ok(Framing::UntilEof { status }) => {
                        c.until_eof = Some(status);
                        break;
                    }
                    Ok(Framing::Done { status, len, close }) => {
                        // Bytes after the answer were never asked for: start afresh.
                        let close = close || len < c.in_len;
                        self.complete(i, status, close, now);
                        return Ok(());
                    }
                    Err(_) => return Err(Step::Failed(Failure::Proto)),
                }
            }
        }
    }

    fn complete(&mut self, i: usize, status: u16, close: bool, now: Instant) {
        self.in_flight -= 1;
        let c = &mut self.conns[i];
        // A fresh clock: `now` may predate the body build and the write of this pass.
        let answered = Instant::now();
        let us = answered.saturating_duration_since(c.origin).as_micros() as u64;
        self.hist.saturating_record(us.max(1));
        self.interval.saturating_record(us.max(1));
        self.tally.requests += 1;
        let ok = (200..300).contains(&status);
        if let Some(tl) = self.timeline.as_mut() {
            let acked = if ok { c.req_lines } else { 0 };
            tl.answer(answered.duration_since(self.shared.start), acked, ok, us);
        }
        if ok {
            self.tally.lines_acked += c.req_lines;
            self.tally.bytes_acked += c.req_body_bytes;
        } else {
            *self.tally.statuses.entry(status).or_default() += 1;
        }
        c.backoff = MIN_BACKOFF;
        if close {
            self.drop_socket(i);
            let c = &mut self.conns[i];
            c.phase = Phase::Down;
            c.retry_at = now;
        } else {
            c.phase = Phase::Idle;
            self.ready.push_back(i);
        }
    }

    /// Counts the failure, drops the socket and schedules a reconnect with backoff.
    fn fail(&mut self, i: usize, f: Failure, now: Instant) {
        if matches!(self.conns[i].phase, Phase::Writing | Phase::Reading) {
            self.in_flight -= 1;
        }
        self.tally.fail(f);
        if let Some(tl) = self.timeline.as_mut() {
            tl.failure(now.saturating_duration_since(self.shared.start));
        }
        // A failed connect spends budget too, so `--requests` alone still ends against
        // a target that never comes up.
        if f == Failure::Connect && self.shared.limit.is_some() && self.shared.claim().is_none() {
            self.exhausted = true;
        }
        self.drop_socket(i);
        let c = &mut self.conns[i];
        c.phase = Phase::Down;
        c.retry_at = now + c.backoff;
        c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
    }

    fn drop_socket(&mut self, i: usize) {
        if let Some(mut s) = self.conns[i].sock.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
    }
}

fn classify(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Failure::Closed,
        _ => Failure::Io,
    }
}

/// Sends datagrams of whole lines until the run stops (or, with `--udp-only`, until the
/// `--requests` budget of datagrams is spent).
///
/// Datagrams leave in batches (one `sendmmsg` each). Paced, the sender wakes once per
/// [`UDP_PACING_STEP`] at most and sends every datagram due by then: sleeping before
/// each one capped it at a few tens of thousands per second, as each sleep costs more
/// than the gap between two datagrams at 100 000/s.
fn udp_sender(
    shared: &Shared,
    target: SocketAddr,
    mut gen: LineGen,
    rate: Option<f64>,
    only: bool,
    thread: usize,
    progress: Option<Sender<Tick>>,
) -> Tally {
    let mut tally = Tally::default();
    let local: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = match UdpSocket::bind(local).and_then(|s| s.connect(target).map(|()| s)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("level=error msg=\"cannot open UDP socket\" target={target} error=\"{e}\"");
            tally.fail(Failure::UdpSend);
            return tally;
        }
    };
    let start = Instant::now();
    let mut pacer = rate.map(|r| Pacer::new(r, start));
    let mut batch = Datagrams::default();
    let mut next_tick = start + PROGRESS_EVERY;
    let mut budget_spent = false;
    while !shared.stopping() && !budget_spent {
        let mut due = mmsg::BATCH;
        if let Some(p) = pacer.as_mut() {
            let now = Instant::now();
            let ready = p.due_by(now + PACING_EARLY);
            if ready == 0 {
                // Nothing due: sleep a whole step, so each wake-up sends a batch.
                let wake = p.next_due().max(now + UDP_PACING_STEP);
                thread::sleep(wake - now);
                continue;
            }
            due = usize::try_from(ready).map_or(mmsg::BATCH, |r| r.min(mmsg::BATCH));
        }
        // One clock read per batch: a few hundred microseconds of timestamp skew is
        // nothing next to the system calls it saves.
        let stamp = unix_nanos();
        while batch.len() < due {
            if only && shared.claim().is_none() {
                budget_spent = true;
                break;
            }
            batch.push(|buf| {
                let limit = buf.len() + UDP_PAYLOAD;
                gen.fill_datagram(buf, limit, stamp)
            });
        }
        if let Some(p) = pacer.as_mut() {
            p.skip(batch.len() as u64);
        }
        let sent = batch.send(sock.as_raw_fd(), |_| {
            // ECONNREFUSED (nobody listening) or ENOBUFS: back off a little.
            thread::sleep(Duration::from_millis(1));
        });
        tally.udp_datagrams += sent.datagrams;
        tally.udp_lines += sent.lines;
        tally.udp_bytes += sent.bytes;
        for _ in 0..sent.failed {
            tally.fail(Failure::UdpSend);
        }
        if progress.is_some() && Instant::now() >= next_tick {
            next_tick += PROGRESS_EVERY;
            if let Some(tx) = &progress {
                let _ = tx.try_send(Tick {
                    thread,
                    lines: tally.udp_lines,
                    requests: tally.udp_datagrams,
                    errors: tally.error_total(),
                    interval: new_histogram(),
                });
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_says_rate_errors_p99_and_what_is_left() {
        let mut s = Status {
            elapsed: Duration::from_secs(12),
            lines_per_sec: 2_412_345.0,
            requests_per_sec: 24_123.0,
            errors: 3,
            p99_us: Some(3_210),
            left: Left::Time(Duration::from_millis(17_400)),
        };
        assert_eq!(
            s.line(),
            "[  12s] 2.41 M lines/s  24.1 k req/s  errors 3  p99 so far 3.21 ms  18s left"
        );
        s.left = Left::Requests { done: 40, of: 100 };
        s.p99_us = None;
        s.lines_per_sec = 512.4;
        assert_eq!(
            s.line(),
            "[  12s] 512 lines/s  24.1 k req/s  errors 3  p99 so far -  40 of 100 requests"
        );
        s.left = Left::Unknown;
        assert!(s.line().ends_with("p99 so far -"));
        assert!(s.line().chars().all(|c| !c.is_control()));
    }

    #[test]
    fn a_pacer_counts_what_is_due_and_takes_it_in_batches() {
        let start = Instant::now();
        let mut p = Pacer::new(100_000.0, start);
        // The first request is due at once, then one every 10 µs.
        assert_eq!(p.due_by(start), 1);
        assert_eq!(p.due_by(start + Duration::from_micros(995)), 100);
        p.skip(32);
        assert_eq!(p.due_by(start + Duration::from_micros(995)), 68);
        assert_eq!(p.next_due(), start + Duration::from_micros(320));
        p.skip(68);
        assert_eq!(p.due_by(start + Duration::from_micros(995)), 0);
        assert_eq!(p.due_by(start + Duration::from_millis(2)), 101);
    }
}
