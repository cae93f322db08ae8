//! Backend workers: one set per configured output, fed by every event loop through
//! one bounded channel.
//!
//! Each output has `concurrency` sender threads, each with its own keep-alive
//! [`client::Client`]. A sender takes a job, posts it, and reports the outcome to the
//! loop that owns the client request (channel + `mio::Waker`, see [`LoopNotifier`]).
//! Loops only ever `try_send` here; a full channel is a counted *failed* outcome, never
//! a blocked loop.

pub mod client;
mod queue;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::applied::Unapplied;
use crate::batch::{Kind, Outcome, SharedBatch};
use crate::config::HttpOutput;
use crate::metrics::BackendStats;
use client::Client;
use queue::{Queue, Store};

/// Jobs that may wait in one backend's channel. At 100-line writes this is about
/// 400 000 points of slack before a stalled backend makes writes fail for it.
pub const CHANNEL_CAPACITY: usize = 4096;

/// How often idle workers look at the shutdown flag.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How often a backend is asked `/ping` while nothing else tells whether it is up: when
/// it is marked down, or when no request has gone to it for this long (1 s). A dead
/// backend is thus seen down within about two seconds even when no writes come.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a `/ping` may take before the backend counts as down (1 s): a probe must not
/// hold a worker for a whole output `timeout`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A finished backend write, on its way back to the loop that owns the client.
#[derive(Debug)]
pub struct Completion {
    pub token: u64,
    pub request: u64,
    pub backend: usize,
    pub outcome: Outcome,
}

/// The way back into one event loop: completions go into the channel and the loop's
/// waker is poked only when the loop is not already due to look (one syscall per
/// burst, not per completion).
pub struct LoopNotifier {
    tx: Sender<Completion>,
    waker: mio::Waker,
    armed: AtomicBool,
}

impl LoopNotifier {
    pub fn new(tx: Sender<Completion>, waker: mio::Waker) -> LoopNotifier {
        LoopNotifier {
            tx,
            waker,
            armed: AtomicBool::new(false),
        }
    }

    pub fn notify(&self, completion: Completion) {
        // The receiver lives as long as its loop; a loop that is gone has no client
        // left to answer.
        if self.tx.send(completion).is_ok() && !self.armed.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Make the loop look at its shared state (shutdown) now.
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }

    /// Called by the loop before it drains its completion channel.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
    }
}

/// Where a job's outcome must be reported.
pub struct Reply {
    pub notifier: Arc<LoopNotifier>,
    pub token: u64,
    pub request: u64,
    pub backend: usize,
}

impl Reply {
    pub fn send(self, outcome: Outcome) {
        let Reply {
            notifier,
            token,
            request,
            backend,
        } = self;
        notifier.notify(Completion {
            token,
            request,
            backend,
            outcome,
        });
    }
}

/// One write for one backend.
pub struct Job {
    pub batch: SharedBatch,
    /// `None` for writes nobody waits for (replays, UDP).
    pub reply: Option<Reply>,
}

/// What a loop holds for each backend.
pub struct BackendHandle {
    pub name: String,
    tx: Sender<Job>,
    pub stats: Arc<BackendStats>,
    /// Changes handed to this backend and not finished there (read-your-writes).
    pub unapplied: Arc<Unapplied>,
    control: Arc<Control>,
    /// Where writes go when the channel is full, for a backend that can queue them
    /// (RAM buffer or spool); `None` without either.
    overflow: Option<Arc<Overflow>>,
    pace: Arc<Pace>,
}

/// Writes that found a buffering backend's channel full, waiting (in order) for its
/// worker to queue them. Without this, a worker stuck on a hung backend for up to
/// `timeout` would make its channel drop writes that its spool could have kept.
/// While `active`, every new write for the backend comes here, behind the others, so
/// the order of writes is kept; the worker drains the channel, then this list, into
/// its queue, and only then clears `active`.
///
/// The list never drops a write. Its bound is kept by the event loops instead: past
/// `limit` bytes the backend reports itself [`BackendHandle::congested`], and loops
/// hold new writes for its listener (and stop reading their clients) until it is
/// not. Each loop adds at most the one request it is handling after the last check,
/// so the list stays under `limit` + `threads` × `max-body-size-mb`.
struct Overflow {
    active: AtomicBool,
    /// Jobs waiting, in order.
    jobs: Mutex<VecDeque<Job>>,
    /// Body bytes in `jobs`; changed under the lock, read without it.
    bytes: AtomicUsize,
    /// Past this many bytes the backend is congested.
    limit: usize,
}

/// How many body bytes may wait in one backend's overflow list before loops hold new
/// writes: 64 MiB (or the backend's RAM buffer or spool size when smaller).
const OVERFLOW_LIMIT: usize = 64 << 20;

/// What became of a write offered to the overflow list.
enum Offer {
    /// Queued behind the others.
    Taken,
    /// The list is not active any more: use the channel.
    Declined(Job),
}

impl Overflow {
    fn offer(&self, job: Job, activate: bool) -> Offer {
        let Ok(mut jobs) = self.jobs.lock() else {
            return Offer::Declined(job);
        };
        if !activate && !self.active.load(Ordering::Acquire) {
            return Offer::Declined(job);
        }
        self.bytes
            .fetch_add(job.batch.body.len(), Ordering::Relaxed);
        jobs.push_back(job);
        self.active.store(true, Ordering::Release);
        Offer::Taken
    }

    /// Everything waiting, in order; the list is inactive again once this returns.
    fn take_all(&self) -> VecDeque<Job> {
        let Ok(mut jobs) = self.jobs.lock() else {
            return VecDeque::new();
        };
        self.bytes.store(0, Ordering::Relaxed);
        self.active.store(false, Ordering::Release);
        std::mem::take(&mut *jobs)
    }

    fn congested(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) > self.limit
    }
}

/// One line per 5 s at most, however many writes a saturated channel turns away.
static QUEUE_FULL_LOG: crate::log::RateLimit = crate::log::RateLimit::new(5_000);

/// A write the backend will never see: counted, logged, and its client told.
fn drop_job(handle: &BackendHandle, job: Job) {
    let (backend, stats) = (&handle.name, &handle.stats);
    handle.unapplied.done(job.batch.seq);
    stats.dropped_queue_full.add(job.batch.points as u64);
    if let Some(suppressed) = QUEUE_FULL_LOG.check() {
        crate::warn!(
            "backend far behind, its channel is full: write dropped for it \
             (configure buffer-size-mb or spool-size-mb to keep such writes)",
            backend = backend,
            points = job.batch.points,
            total_dropped_points = stats.dropped_queue_full.get(),
            suppressed = suppressed,
        );
    }
    stats.failed_requests.inc();
    if let Some(reply) = job.reply {
        reply.send(Outcome::Failed {
            status: None,
            body: Arc::from(&b""[..]),
        });
    }
}

/// How much live traffic a backend that is catching up lets in, when its output sets
/// `catch-up-live-percent`: while its replay makes progress, the writes admitted for its
/// listener may add at most that share of the bytes the replay delivered, so the
/// backlog shrinks however hard clients push. Without it, on a machine whose CPU is the
/// limit, live writes and the replay share it about evenly and a backlog built at full
/// load hardly shrinks while the load goes on (measured: replay 0.7-0.9 M lines/s
/// against 0.8-1.0 M lines/s of live writes joining it; at 50% the backlog drained at
/// 2.1 M lines/s with 1.05 M lines/s of live writes). Off by default: it slows every
/// client of the listener to a slow backend's pace (a backend answering after 50 ms
/// took the relay from 2 M to 0.3 M lines/s).
#[derive(Default)]
struct Pace {
    /// Percent of replayed bytes live writes may add; 0: pacing is off.
    percent: i64,
    /// Bytes live writes may still add; replay adds to it, live writes take from it.
    credit: AtomicI64,
    /// Unix ms of the last replayed batch the backend took.
    last_replay_ms: AtomicU64,
}

/// Most credit that can pile up (8 MiB), so a burst after a quiet spell stays small.
const CATCH_UP_CREDIT_MAX: i64 = 8 << 20;
/// A replay that delivered nothing for this long (1 s) is stuck (the backend refuses
/// the queue's head, say), not catching up: live writes are not held for it.
const CATCH_UP_STALL_MS: u64 = 1_000;

impl Pace {
    /// The replay delivered `bytes`.
    fn replayed(&self, bytes: usize) {
        if self.percent == 0 {
            return;
        }
        let add = (bytes as i64).saturating_mul(self.percent) / 100;
        let _ = self
            .credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some((c + add).min(CATCH_UP_CREDIT_MAX))
            });
        self.last_replay_ms
            .store(crate::metrics::unix_ms(), Ordering::Relaxed);
    }

    fn caught_up(&self) {
        self.credit.store(0, Ordering::Relaxed);
    }
}

/// Shutdown signalling between the relay and a backend's threads.
#[derive(Default)]
struct Control {
    closing: AtomicBool,
    /// Past this instant, writes still queued are no longer attempted.
    deadline: Mutex<Option<Instant>>,
}

impl Control {
    fn past_deadline(&self) -> bool {
        self.closing.load(Ordering::Acquire)
            && self
                .deadline
                .lock()
                .ok()
                .and_then(|d| *d)
                .is_some_and(|d| Instant::now() >= d)
    }
}

impl BackendHandle {
    /// No more jobs will come: finish what is queued by `deadline`, then stop.
    pub fn close(&self, deadline: Instant) {
        if let Ok(mut d) = self.control.deadline.lock() {
            *d = Some(deadline);
        }
        self.control.closing.store(true, Ordering::Release);
    }

    /// The backend's worker cannot keep up with what its overflow list takes in: new
    /// writes for its listener should wait (see [`Overflow`]). Never for a backend
    /// without a buffer or spool, whose full channel drops instead.
    pub fn congested(&self) -> bool {
        self.overflow.as_ref().is_some_and(|o| o.congested()) || self.pacing()
    }

    /// The backend is catching up and live writes used their share (see [`Pace`]).
    fn pacing(&self) -> bool {
        self.pace.percent > 0
            && self.catching_up()
            && self.pace.credit.load(Ordering::Relaxed) < 0
            && crate::metrics::unix_ms()
                < self.pace.last_replay_ms.load(Ordering::Relaxed) + CATCH_UP_STALL_MS
    }

    /// Up, with writes queued for it: every new write joins the end of its queue.
    fn catching_up(&self) -> bool {
        self.overflow.is_some()
            && self.stats.queued_since_ms.get() != 0
            && self.stats.down.get() == 0
    }

    /// Hand `job` to the backend without blocking. A full channel means the backend
    /// is far behind: a backend with a buffer or spool takes the job into its overflow
    /// list; one without reports it failed and counts it.
    pub fn submit(&self, job: Job) {
        // Before any worker can see it, so that finishing it always finds it.
        self.unapplied.add(job.batch.seq, 1);
        if self.pace.percent > 0 && self.catching_up() {
            self.pace
                .credit
                .fetch_sub(job.batch.body.len() as i64, Ordering::Relaxed);
        }
        let job = match &self.overflow {
            // Writes already overflowing: this one goes behind them.
            Some(o) if o.active.load(Ordering::Acquire) => match o.offer(job, false) {
                Offer::Taken => return,
                Offer::Declined(job) => job,
            },
            _ => job,
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => match &self.overflow {
                Some(o) => {
                    let _ = o.offer(job, true);
                }
                None => drop_job(self, job),
            },
            Err(TrySendError::Disconnected(job)) => drop_job(self, job),
        }
    }
}

/// The threads behind one backend; [`BackendHandle::close`] then [`Backend::join`]
/// drains what is queued and stops them.
pub struct Backend {
    threads: Vec<JoinHandle<()>>,
}

impl Backend {
    /// Start the workers of `output`, an output of listener `listener`; its spool (if
    /// any) lives under `spool_dir/<listener>/<output>/`.
    pub fn start(
        listener: &str,
        output: &HttpOutput,
        spool_dir: &Path,
    ) -> std::io::Result<(BackendHandle, Backend)> {
        // First, so that a bad ca-file stops the start before any thread runs.
        let tls = crate::tls::client_tls(output)
            .map_err(|e| std::io::Error::other(format!("output {:?}: {e}", output.name)))?;
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        let stats = Arc::new(BackendStats::default());
        let unapplied = Arc::new(Unapplied::default());
        let pace = Arc::new(Pace {
            percent: i64::from(output.catch_up_live_percent),
            ..Pace::default()
        });
        let control = Arc::new(Control::default());
        let store = if output.spool_size > 0 {
            Some(Store::Disk {
                spool: None,
                dir: spool_dir
                    .join(path_safe(listener))
                    .join(path_safe(&output.name)),
                limit: output.spool_size,
            })
        } else if output.buffer_size > 0 {
            Some(Store::Ram {
                jobs: Default::default(),
                bytes: 0,
                limit: output.buffer_size,
            })
        } else {
            None
        };
        let mut shared = Shared {
            output: output.clone(),
            tls,
            listener: listener.to_string(),
            stats: stats.clone(),
            unapplied: unapplied.clone(),
            pace: pace.clone(),
            control: control.clone(),
            output_auth: output.basic_auth.as_ref().map(|a| a.header_value()),
            buffering: store.is_some(),
            queue: Mutex::new(Queue::new(
                Store::Ram {
                    jobs: Default::default(),
                    bytes: 0,
                    limit: 0,
                },
                &unapplied,
            )),
            queue_ready: Condvar::new(),
            last_probe_ms: AtomicU64::new(0),
            last_contact_ms: AtomicU64::new(crate::metrics::unix_ms()),
            query_path: query_path_of(&output.location.path),
        };
        if let Some(mut store) = store {
            // Reopen the spool now, so replay of what an earlier run left starts at once.
            if let Store::Disk { spool, dir, limit } = &mut store {
                *spool = queue::open_spool(&shared, dir, *limit);
            }
            shared.queue = Mutex::new(Queue::new(store, &unapplied));
        }
        let overflow = shared.buffering.then(|| {
            let store_limit = if output.spool_size > 0 {
                output.spool_size as usize
            } else {
                output.buffer_size
            };
            Arc::new(Overflow {
                active: AtomicBool::new(false),
                jobs: Mutex::new(VecDeque::new()),
                bytes: AtomicUsize::new(0),
                limit: OVERFLOW_LIMIT.min(store_limit.max(1)),
            })
        });
        let shared = Arc::new(shared);
        let mut threads = Vec::new();
        for i in 0..output.concurrency.max(1) {
            let rx: Receiver<Job> = rx.clone();
            let shared = shared.clone();
            let overflow = overflow.clone();
            let t = std::thread::Builder::new()
                .name(format!("out-{}-{i}", output.name))
                .spawn(move || sender_loop(&shared, &rx, overflow.as_deref()))?;
            threads.push(t);
        }
        if shared.buffering {
            let shared = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("replay-{}", output.name))
                .spawn(move || {
                    let mut client = Client::new(
                        shared.output.location.clone(),
                        shared.output.timeout,
                        shared.tls.clone(),
                    );
                    queue::replay_loop(&shared, &mut client);
                })?;
            threads.push(t);
        }
        Ok((
            BackendHandle {
                name: output.name.clone(),
                tx,
                stats,
                unapplied,
                control,
                overflow,
                pace,
            },
            Backend { threads },
        ))
    }

    /// Wait for the workers to finish (after [`BackendHandle::close`]).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// `/write` → `/query`, keeping any prefix a proxy in front of the backend needs.
pub fn query_path_of(write_path: &str) -> String {
    match write_path.strip_suffix("write") {
        Some(prefix) if prefix.ends_with('/') => format!("{prefix}query"),
        _ => "/query".to_string(),
    }
}

/// A listener or output name as one directory name: names like
/// `http://127.0.0.1:9096` must not create subdirectories.
fn path_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.starts_with('.') {
        out.replace_range(..1, "%2E");
    }
    out
}

pub(crate) struct Shared {
    output: HttpOutput,
    /// Set for `https://` outputs; every client of this output shares it.
    tls: Option<crate::tls::ClientTls>,
    listener: String,
    stats: Arc<BackendStats>,
    unapplied: Arc<Unapplied>,
    pace: Arc<Pace>,
    control: Arc<Control>,
    /// `Authorization` value from the output's `http-user`/`http-pass`.
    output_auth: Option<String>,
    /// A RAM buffer or spool is configured: failed writes are queued, not lost.
    buffering: bool,
    queue: Mutex<Queue>,
    /// Signalled when something is queued, to wake the replay thread.
    queue_ready: Condvar,
    /// Path of the backend's `/query`, beside its `/write`.
    query_path: String,
    /// Unix ms of the last `/ping` probe of a down backend.
    last_probe_ms: AtomicU64,
    /// Unix ms of the last request that went to the backend (write, statement, probe).
    last_contact_ms: AtomicU64,
}

static FAILURE_LOG: crate::log::RateLimit = crate::log::RateLimit::new(5_000);

/// Writes taken from the channel in one go while queueing: one spool group commit
/// (one fsync) covers all of them.
const GROUP_COMMIT: usize = 256;

fn sender_loop(shared: &Shared, rx: &Receiver<Job>, overflow: Option<&Overflow>) {
    let mut client = Client::new(
        shared.output.location.clone(),
        direct_timeout(shared.output.timeout),
        shared.tls.clone(),
    );
    let mut probe = probe_client(shared);
    let mut gz = Vec::new();
    // A job taken while coalescing that did not fit; it goes first next time.
    let mut held: Option<Job> = None;
    loop {
        if let Some(o) = overflow.filter(|o| o.active.load(Ordering::Acquire)) {
            // The channel overflowed while this worker was busy: queue everything, in
            // order: the job held back, the channel, then the overflow list. Checked
            // before waiting on the channel, which may stay empty while the list is
            // active (every new write then goes to the list).
            let mut group: Vec<Job> = held.take().into_iter().collect();
            while let Ok(job) = rx.try_recv() {
                group.push(job);
                if group.len() == GROUP_COMMIT {
                    queue::enqueue(shared, std::mem::take(&mut group));
                }
            }
            group.extend(o.take_all());
            while !group.is_empty() {
                let rest = group.split_off(group.len().min(GROUP_COMMIT));
                queue::enqueue(shared, std::mem::replace(&mut group, rest));
            }
            continue;
        }
        let job = match held.take().map_or_else(|| rx.recv_timeout(IDLE_POLL), Ok) {
            Ok(job) => job,
            // Done when shutting down and nothing is left, here or in the overflow list.
            Err(RecvTimeoutError::Timeout)
                if shared.control.closing.load(Ordering::Acquire)
                    && !overflow.is_some_and(|o| o.active.load(Ordering::Acquire)) =>
            {
                return
            }
            Err(RecvTimeoutError::Timeout) => {
                probe_if_due(shared, &mut probe);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let closing = shared.control.closing.load(Ordering::Acquire);
        let spooling = shared.buffering && shared.output.spool_size > 0;
        // Order (README: Durability): while anything is queued, new writes go behind it. At
        // shutdown, with a spool, everything left goes to disk rather than the wire.
        let queued = shared.buffering && shared.queue.lock().map(|q| q.active).unwrap_or(false);
        if queued || (closing && spooling) {
            let mut group = vec![job];
            while group.len() < GROUP_COMMIT {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            queue::enqueue(shared, group);
            continue;
        }
        if closing && shared.control.past_deadline() {
            // Shutting down, out of time, nowhere to keep it: lost, and counted.
            shared.stats.dropped_shutdown.add(job.batch.points as u64);
            shared.unapplied.done(job.batch.seq);
            continue;
        }
        let group = coalesce(shared, rx, job, &mut held);
        let outcome = post_group(shared, &mut client, &group, &mut gz);
        if group.len() > 1 && matches!(outcome, Outcome::Rejected { .. }) {
            // One client's bad write must not turn its neighbours' answers into
            // errors: say it per write. Every point carries a timestamp, so sending
            // the accepted ones again only overwrites them with the same values.
            for job in group {
                let outcome = post_group(shared, &mut client, std::slice::from_ref(&job), &mut gz);
                finish_direct(shared, job, outcome);
            }
            continue;
        }
        if shared.buffering && matches!(outcome, Outcome::Failed { .. }) {
            // Queued in order, with their replies: answered as spooled, or when
            // finally delivered.
            queue::enqueue(shared, group);
            continue;
        }
        if matches!(outcome, Outcome::Failed { .. }) {
            // Nowhere to keep them: lost for this backend, and counted as such.
            let points: u64 = group.iter().map(|j| j.batch.points as u64).sum();
            shared.stats.dropped_unbuffered.add(points);
        }
        for job in group {
            shared.unapplied.done(job.batch.seq);
            if let Some(reply) = job.reply {
                reply.send(outcome.clone());
            }
        }
    }
}

/// How long a direct attempt may take: a little less than `timeout`, so that a write
/// that times out can still be spooled (and answered as such) before its client's
/// own deadline, which is `timeout` (README: HTTP API).
fn direct_timeout(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(250)))
}

/// Take the jobs already waiting behind `first` that can share one request with it
/// (same query and credentials) up to the output's coalescing limit. Under load this turns many small
/// client writes into a few large backend requests; when idle it costs nothing, since
/// it never waits for more.
fn coalesce(shared: &Shared, rx: &Receiver<Job>, first: Job, held: &mut Option<Job>) -> Vec<Job> {
    let max = shared.output.coalesce_limit;
    let mut size = first.batch.body.len();
    let mut group = vec![first];
    while size < max && group.len() < GROUP_COMMIT {
        let Ok(next) = rx.try_recv() else { break };
        let head = &group[0].batch;
        if head.kind != Kind::Write
            || next.batch.kind != Kind::Write
            || next.batch.query != head.query
            || next.batch.auth != head.auth
            || size + next.batch.body.len() > max
        {
            *held = Some(next);
            break;
        }
        size += next.batch.body.len();
        group.push(next);
    }
    group
}

/// Post the bodies of `group` (which share query and credentials) as one request.
fn post_group(shared: &Shared, client: &mut Client, group: &[Job], gz: &mut Vec<u8>) -> Outcome {
    let first = &group[0].batch;
    let auth = match &shared.output_auth {
        Some(header) => Some(header.as_bytes()),
        None => first.auth.as_deref(),
    };
    let points: u64 = group.iter().map(|j| j.batch.points as u64).sum();
    // The bodies go out back to back: one request, no copy into a merged buffer.
    let body: Vec<&[u8]> = group.iter().map(|j| &j.batch.body[..]).collect();
    post(
        shared,
        client,
        first.kind,
        &first.query,
        auth,
        &body,
        points,
        gz,
    )
}

/// Answer or queue one job after a direct attempt.
fn finish_direct(shared: &Shared, job: Job, outcome: Outcome) {
    if shared.buffering && matches!(outcome, Outcome::Failed { .. }) {
        queue::enqueue(shared, vec![job]);
        return;
    }
    if matches!(outcome, Outcome::Failed { .. }) {
        shared.stats.dropped_unbuffered.add(job.batch.points as u64);
    }
    shared.unapplied.done(job.batch.seq);
    if let Some(reply) = job.reply {
        reply.send(outcome);
    }
}

/// Post one body and classify the answer (README: HTTP API).
#[allow(clippy::too_many_arguments)]
fn post(
    shared: &Shared,
    client: &mut Client,
    kind: Kind,
    query: &str,
    auth: Option<&[u8]>,
    body: &[&[u8]],
    points: u64,
    gz: &mut Vec<u8>,
) -> Outcome {
    let raw_len: usize = body.iter().map(|part| part.len()).sum();
    let gzip = shared.output.gzip && kind == Kind::Write;
    let compressed: [&[u8]; 1];
    let body: &[&[u8]] = if gzip {
        gz.clear();
        let mut enc =
            flate2::write::GzEncoder::new(std::mem::take(gz), flate2::Compression::fast());
        for part in body {
            let _ = std::io::Write::write_all(&mut enc, part);
        }
        *gz = enc.finish().unwrap_or_default();
        compressed = [&gz[..]];
        &compressed
    } else {
        body
    };
    let stats = &shared.stats;
    let path = match kind {
        Kind::Write => shared.output.location.path.as_str(),
        Kind::Statement => shared.query_path.as_str(),
    };
    let answer = client.post(path, query, auth, body, gzip);
    contacted(shared);
    match answer {
        Ok(resp) if (200..300).contains(&resp.status) => {
            mark_up(shared);
            stats.delivered_requests.inc();
            stats.delivered_points.add(points);
            stats.delivered_bytes.add(raw_len as u64);
            match kind {
                Kind::Write => Outcome::Delivered,
                Kind::Statement => Outcome::Answered {
                    status: resp.status,
                    body: Arc::from(resp.body),
                },
            }
        }
        Ok(resp) if (400..500).contains(&resp.status) => {
            mark_up(shared);
            stats.rejected_requests.inc();
            Outcome::Rejected {
                status: resp.status,
                body: Arc::from(resp.body),
            }
        }
        Ok(resp) => {
            stats.failed_requests.inc();
            log_failure(shared, &format!("status {}", resp.status));
            Outcome::Failed {
                status: Some(resp.status),
                body: Arc::from(resp.body),
            }
        }
        Err(e) => {
            stats.failed_requests.inc();
            log_failure(shared, &e);
            Outcome::Failed {
                status: None,
                body: Arc::from(&b""[..]),
            }
        }
    }
}

/// A client for `/ping` probes, with their own short timeout.
pub(crate) fn probe_client(shared: &Shared) -> Client {
    Client::new(
        shared.output.location.clone(),
        PROBE_TIMEOUT.min(shared.output.timeout),
        shared.tls.clone(),
    )
}

/// Keep the up/down state true when no writes flow: a backend marked down, or one
/// nothing was sent to for `PROBE_INTERVAL`, is asked `/ping` about once per
/// `PROBE_INTERVAL` by whichever idle worker gets there first.
fn probe_if_due(shared: &Shared, client: &mut Client) {
    let now = crate::metrics::unix_ms();
    let interval = PROBE_INTERVAL.as_millis() as u64;
    let down = shared.stats.down.get() != 0;
    let quiet = now >= shared.last_contact_ms.load(Ordering::Relaxed) + interval;
    let last = shared.last_probe_ms.load(Ordering::Relaxed);
    if !(down || quiet)
        || now < last + interval
        || shared
            .last_probe_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    ping(shared, client);
}

/// Something was just sent to the backend: no idle probe is due for a while.
fn contacted(shared: &Shared) {
    shared
        .last_contact_ms
        .store(crate::metrics::unix_ms(), Ordering::Relaxed);
}

/// Ask the backend `/ping` now and mark it up or down by the answer; `true` if up.
pub(crate) fn ping(shared: &Shared, client: &mut Client) -> bool {
    let answer = client.get("/ping");
    contacted(shared);
    match answer {
        Ok(resp) if (200..300).contains(&resp.status) => {
            mark_up(shared);
            true
        }
        Ok(resp) => {
            note_failure(shared, &format!("ping answered {}", resp.status));
            false
        }
        Err(e) => {
            note_failure(shared, &e);
            false
        }
    }
}

fn mark_up(shared: &Shared) {
    if shared.stats.down.get() == 1 {
        shared.stats.down.set(0);
        crate::info!(
            "backend up",
            listener = shared.listener,
            backend = shared.output.name
        );
    }
}

/// Record a failure for `/status` and mark the backend down (logged once per change).
fn note_failure(shared: &Shared, what: &dyn std::fmt::Display) {
    let message = what.to_string();
    if shared.stats.down.get() == 0 {
        shared.stats.down.set(1);
        crate::warn!(
            "backend down",
            listener = shared.listener,
            backend = shared.output.name,
            location = shared.output.location.url,
            error = message,
        );
    }
    if let Ok(mut last) = shared.stats.last_error.lock() {
        *last = Some(crate::metrics::LastError {
            message,
            at_ms: crate::metrics::unix_ms(),
        });
    }
}

fn log_failure(shared: &Shared, what: &dyn std::fmt::Display) {
    note_failure(shared, what);
    if let Some(suppressed) = FAILURE_LOG.check() {
        crate::warn!(
            "backend write failed",
            listener = shared.listener,
            backend = shared.output.name,
            location = shared.output.location.url,
            error = what,
            suppressed = suppressed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_make_one_directory_each() {
        assert_eq!(
            path_safe("http://127.0.0.1:9096"),
            "http%3A%2F%2F127.0.0.1%3A9096"
        );
        assert_eq!(path_safe("local-1_a.b"), "local-1_a.b");
        assert_eq!(path_safe(".."), "%2E.");
        assert!(!path_safe("a/../b").contains('/'));
    }

    #[test]
    fn query_path_sits_beside_the_write_path() {
        assert_eq!(query_path_of("/write"), "/query");
        assert_eq!(query_path_of("/influx/write"), "/influx/query");
        assert_eq!(query_path_of("/custom"), "/query");
    }

    /// Regression: with the overflow list active every new write goes to it, so the
    /// channel can stay empty; the worker must still move the list into its queue.
    #[test]
    fn an_active_overflow_list_is_drained_while_the_channel_is_empty() {
        let config = crate::config::parse(
            "[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nname = \"dead\"\n\
             location = \"http://127.0.0.1:1/write\"\ntimeout = \"1s\"\nbuffer-size-mb = 1\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (handle, backend) =
            Backend::start("in", &config.http[0].outputs[0], dir.path()).unwrap();
        let job = || Job {
            batch: Arc::new(crate::batch::Batch {
                kind: Kind::Write,
                query: "db=x".into(),
                auth: None,
                body: b"m v=1 1\n".to_vec(),
                points: 1,
                seq: 0,
            }),
            reply: None,
        };
        let overflow = handle
            .overflow
            .as_ref()
            .expect("a buffering backend has one");
        assert!(matches!(overflow.offer(job(), true), Offer::Taken));
        handle.submit(job()); // goes behind it, not into the channel
        let deadline = Instant::now() + Duration::from_secs(5);
        while handle.stats.queued_requests.get() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(handle.stats.queued_requests.get(), 2);
        assert!(!overflow.active.load(Ordering::Acquire));
        handle.close(Instant::now());
        backend.join();
    }

    /// With a spool, a backend whose worker is stuck never drops at a full channel:
    /// the overflow list takes everything, and past its bound the backend says it is
    /// congested so that the loops hold their clients; once the worker is free again
    /// every write reaches the spool.
    #[test]
    fn a_full_channel_never_drops_for_a_spooling_backend_it_reports_congestion() {
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = crate::config::parse(&format!(
            "[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nname = \"hung\"\n\
             location = \"http://{}/write\"\ntimeout = \"1s\"\nspool-size-mb = 1\n",
            hung.local_addr().unwrap()
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (handle, backend) =
            Backend::start("in", &config.http[0].outputs[0], dir.path()).unwrap();
        let batch = Arc::new(crate::batch::Batch {
            kind: Kind::Write,
            query: "db=x".into(),
            auth: None,
            body: vec![b'\n'; 64],
            points: 1,
            seq: 0,
        });
        let job = || Job {
            batch: batch.clone(),
            reply: None,
        };
        handle.submit(job());
        let _held = hung.accept().unwrap();
        // The channel, then 1 MiB (the spool's size bounds the list) and one more.
        let n = CHANNEL_CAPACITY + (1 << 20) / 64 + 1;
        assert!(!handle.congested());
        for _ in 0..n {
            handle.submit(job());
        }
        assert!(handle.congested());
        assert_eq!(handle.stats.dropped_queue_full.get(), 0);
        // The stuck attempt times out; everything goes to the spool in order (the
        // spool is full before the last ones: those are the only drops, and counted).
        let deadline = Instant::now() + Duration::from_secs(10);
        while handle.congested() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!handle.congested());
        let s = &handle.stats;
        let settled = || s.spooled_points.get() + s.dropped_spool_full.get() == n as u64 + 1;
        while !settled() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(settled(), "{:?}", s.spooled_points.get());
        assert_eq!(s.dropped_queue_full.get(), 0);
        handle.close(Instant::now());
        backend.join();
    }

    /// Without a buffer or spool, a backend whose worker is stuck takes what its
    /// channel holds and no more: the rest is counted as dropped, never blocked on.
    #[test]
    fn a_full_channel_drops_and_counts_for_an_unbuffered_backend() {
        // Accepts connections (the kernel's backlog) but never answers.
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = crate::config::parse(&format!(
            "[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nname = \"hung\"\n\
             location = \"http://{}/write\"\ntimeout = \"2s\"\n",
            hung.local_addr().unwrap()
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (handle, backend) =
            Backend::start("in", &config.http[0].outputs[0], dir.path()).unwrap();
        assert!(handle.overflow.is_none());
        let batch = Arc::new(crate::batch::Batch {
            kind: Kind::Write,
            query: "db=x".into(),
            auth: None,
            body: b"m v=1 1\nm v=2 2\n".to_vec(),
            points: 2,
            seq: 0,
        });
        let job = || Job {
            batch: batch.clone(),
            reply: None,
        };
        // Once the backend has its connection, the worker holds the first write and
        // waits for an answer that never comes: the channel alone takes the rest.
        handle.submit(job());
        let _held = hung.accept().unwrap();
        let extra = 10;
        for _ in 0..CHANNEL_CAPACITY + extra {
            handle.submit(job());
        }
        assert_eq!(handle.stats.dropped_queue_full.get(), 2 * extra as u64);
        assert_eq!(handle.stats.failed_requests.get(), extra as u64);
        handle.close(Instant::now());
        backend.join();
    }

    #[test]
    fn replay_earns_live_writes_their_share_capped() {
        let pace = Pace {
            percent: 50,
            ..Pace::default()
        };
        pace.credit.store(-1000, Ordering::Relaxed);
        pace.replayed(4000);
        assert_eq!(pace.credit.load(Ordering::Relaxed), 1000);
        pace.replayed(64 << 20);
        assert_eq!(pace.credit.load(Ordering::Relaxed), CATCH_UP_CREDIT_MAX);
        pace.caught_up();
        assert_eq!(pace.credit.load(Ordering::Relaxed), 0);
        // Off: replay earns nothing and nothing is held.
        let off = Pace::default();
        off.replayed(4000);
        assert_eq!(off.credit.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn direct_attempts_leave_time_to_spool() {
        assert_eq!(
            direct_timeout(Duration::from_secs(10)),
            Duration::from_millis(9750)
        );
        assert_eq!(
            direct_timeout(Duration::from_secs(1)),
            Duration::from_millis(900)
        );
    }
}
