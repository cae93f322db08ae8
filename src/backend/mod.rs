//! Backend workers: one set per configured output, fed by every event loop through
//! one bounded channel.
//!
//! Each output has `concurrency` sender threads, each with its own keep-alive
//! [`client::Client`]. A sender takes a job, posts it, and reports the outcome to the
//! loop that owns the client request (channel + `mio::Waker`, see [`LoopNotifier`]).
//! Loops only ever `try_send` here; a full channel is a counted *failed* outcome, never
//! a blocked loop.

pub mod api;
pub mod client;
mod overflow;
mod pace;
mod queue;
mod replay;
mod sender;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::applied::Unapplied;
use crate::batch::{Kind, Outcome, SharedBatch};
use crate::config::{FullQueuePolicy, HttpOutput};
use crate::dropped::DroppedLog;
use crate::metrics::BackendStats;
use client::Client;
use overflow::*;
use pace::*;
use queue::{Queue, Store};
use sender::*;

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
    /// `/query` statements are sent here (see `HttpOutput::takes_statements`); the
    /// others never get one, so none is ever unfinished there.
    pub takes_statements: bool,
    tx: Sender<Job>,
    pub stats: Arc<BackendStats>,
    /// Changes handed to this backend and not finished there (read-your-writes).
    pub unapplied: Arc<Unapplied>,
    /// The time ranges of the writes given up for this backend (what it lacks).
    pub dropped: Arc<DroppedLog>,
    control: Arc<Control>,
    /// Where writes go when the channel is full, for a backend that can queue them
    /// (RAM buffer or spool); `None` without either.
    overflow: Option<Arc<Overflow>>,
    pace: Arc<Pace>,
    /// Whether the server is being rebuilt; one for every output naming the same
    /// server (see `relay::Relay::start`).
    pub rebuild: Arc<crate::rebuild::Mark>,
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
        self.register(job.batch.seq);
        self.send(job);
    }

    /// Count change `seq` as given to this backend and not finished. Before any
    /// worker can see it, so that finishing it always finds it.
    pub fn register(&self, seq: u64) {
        self.unapplied.add(seq, 1);
    }

    /// [`BackendHandle::submit`] for a change already [registered](Self::register).
    pub fn send(&self, job: Job) {
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
    /// Written once more after the threads stop: what the last second dropped.
    dropped: Arc<DroppedLog>,
}

impl Backend {
    /// Start the workers of `output`, an output of listener `listener`; its spool (if
    /// any) lives under `spool_dir/<listener>/<output>/`.
    pub fn start(
        listener: &str,
        output: &HttpOutput,
        spool_dir: &Path,
        rebuild: Arc<crate::rebuild::Mark>,
    ) -> std::io::Result<(BackendHandle, Backend)> {
        // First, so that a bad ca-file stops the start before any thread runs.
        let tls = crate::tls::client_tls(output)
            .map_err(|e| std::io::Error::other(format!("output {:?}: {e}", output.name)))?;
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        let mut shared = Worker::new(listener, output, tls, spool_dir);
        shared.rebuild = rebuild.clone();
        let (stats, unapplied, dropped, pace, control) = (
            shared.stats.clone(),
            shared.unapplied.clone(),
            shared.dropped.clone(),
            shared.pace.clone(),
            shared.control.clone(),
        );
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
                    let mut backend = replay::Http::new(&shared);
                    replay::replay_loop(&shared, &mut backend);
                })?;
            threads.push(t);
        }
        Ok((
            BackendHandle {
                name: output.name.clone(),
                takes_statements: output.takes_statements(),
                tx,
                stats,
                unapplied,
                dropped: dropped.clone(),
                control,
                overflow,
                pace,
                rebuild,
            },
            Backend { threads, dropped },
        ))
    }

    /// Wait for the workers to finish (after [`BackendHandle::close`]).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
        self.dropped.flush();
    }
}

/// `/write` → `/query`, keeping any prefix a proxy in front of the backend needs.
pub fn query_path_of(write_path: &str) -> String {
    match write_path.strip_suffix("write") {
        Some(prefix) if prefix.ends_with('/') => format!("{prefix}query"),
        _ => "/query".to_string(),
    }
}

/// The directory of output `output` of listener `listener` under `spool_dir`: its
/// spool (if any) and its list of dropped ranges.
pub fn output_dir(spool_dir: &Path, listener: &str, output: &str) -> PathBuf {
    spool_dir.join(path_safe(listener)).join(path_safe(output))
}

/// A listener or output name as one directory name: names like
/// `http://127.0.0.1:9096` must not create subdirectories.
pub(crate) fn path_safe(name: &str) -> String {
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

/// One output as its threads (senders and replay) share it: its settings, counters,
/// queue and shutdown signal. (What the event loops hold is [`BackendHandle`].)
pub(crate) struct Worker {
    output: HttpOutput,
    /// Set for `https://` outputs; every client of this output shares it.
    tls: Option<crate::tls::ClientTls>,
    listener: String,
    stats: Arc<BackendStats>,
    unapplied: Arc<Unapplied>,
    /// Every thread that gives a write up records it here; senders and replay write
    /// the file (`DroppedLog::flush_if_due`).
    dropped: Arc<DroppedLog>,
    pace: Arc<Pace>,
    control: Arc<Control>,
    /// `Authorization` value from the output's `token` or `http-user`/`http-pass`.
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
    /// The server's rebuild mark, as the loops see it.
    rebuild: Arc<crate::rebuild::Mark>,
}

impl Worker {
    /// The state one output's threads share, its spool (if any) reopened under
    /// `spool_dir/<listener>/<output>/` so that replay of what an earlier run left can
    /// start at once. No thread is started here.
    fn new(
        listener: &str,
        output: &HttpOutput,
        tls: Option<crate::tls::ClientTls>,
        spool_dir: &Path,
    ) -> Worker {
        let stats = Arc::new(BackendStats::default());
        let unapplied = Arc::new(Unapplied::default());
        let pace = Arc::new(Pace {
            percent: i64::from(output.catch_up_live_percent),
            ..Pace::default()
        });
        let control = Arc::new(Control::default());
        let dir = output_dir(spool_dir, listener, &output.name);
        // Beside the spool, and there also for an output without one.
        let dropped = Arc::new(DroppedLog::open(dir.join(crate::dropped::FILE_NAME)));
        let store = match output.full_queue_policy() {
            FullQueuePolicy::HoldSpool => Some(Store::Disk {
                spool: None,
                dir,
                limit: output.spool_size,
            }),
            FullQueuePolicy::HoldRam => Some(Store::Ram {
                jobs: Default::default(),
                bytes: 0,
                limit: output.buffer_size,
            }),
            FullQueuePolicy::Drop => None,
        };
        let mut worker = Worker {
            output: output.clone(),
            tls,
            listener: listener.to_string(),
            stats,
            unapplied: unapplied.clone(),
            dropped,
            pace,
            control,
            output_auth: output.own_authorization(),
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
            rebuild: Default::default(),
        };
        if let Some(mut store) = store {
            // Reopen the spool now, so replay of what an earlier run left starts at once.
            if let Store::Disk { spool, dir, limit } = &mut store {
                *spool = queue::open_spool(&worker, dir, *limit);
            }
            worker.queue = Mutex::new(Queue::new(store, &unapplied));
        }
        worker
    }
}
