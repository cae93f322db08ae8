//! Rebuild: fill one backend (the target) from another (the source) while the relay
//! keeps running, so a replaced, emptied or long-unreachable replica becomes a replica
//! again.
//!
//! The running relay does it because it knows what a separate tool cannot: which
//! backends serve reads (the target serves none until it is done, see [`Mark`]), and
//! every live write that reaches the target while a window is copied (so a copy never
//! leaves a point at an older value than a live write gave it, see `copy`).
//!
//! A rebuild walks the source top down like `verify` — databases, retention policies
//! (created on the target with the same settings), measurements, and time windows in a
//! fixed order — and per window compares counts and digests and copies only when the
//! target lacks or differs. Copies are line protocol with each field in its declared
//! type, sent through the target's own queue like any write. Its progress is written
//! to `<spool-dir>/rebuild/<listener>/<output>.state` as windows finish, so a relay
//! that stops (even with `kill -9`) resumes from the last finished window.

pub mod cli;
mod copy;
pub mod file;
pub mod lines;
mod mark;
mod status;

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use copy::{default_params, find};
pub use mark::Mark;
pub use status::{render, render_all};

use crate::metrics::unix_ms;
use crate::state::Shared;

/// Time window of one comparison and copy when none is asked for (24 h): large enough
/// that years of data are a few thousand windows, small enough that a window touched
/// by a live write is cheap to copy again.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a failing step is retried before the rebuild stops as failed (5 min).
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(300);
/// Rows per chunk of a source answer (10 000).
pub const DEFAULT_CHUNK_SIZE: usize = 10_000;
/// Points later than the start of a rebuild reach the target as live writes; the copy
/// still goes this far past it (1 min), for clients whose clocks run a little ahead or
/// that send what they collected a moment ago.
pub const UNTIL_MARGIN: Duration = Duration::from_secs(60);
/// Errors kept for `/status`.
const ERRORS_KEPT: usize = 20;

/// What a rebuild was asked to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub listener: String,
    pub output: String,
    pub source: String,
    /// Only these databases; empty: all but `_internal`.
    pub databases: Vec<String>,
    /// Nanoseconds; `None`: from each measurement's first point.
    pub since: Option<i64>,
    pub until: i64,
    pub window: i64,
    /// Queries per second to each backend; 0: no limit.
    pub rate: f64,
    pub chunk_size: usize,
    pub give_up_after: Duration,
    /// Only the time ranges recorded as dropped for the target.
    pub dropped: bool,
}

impl Params {
    /// Whether `other` asks for the same copy: same output, source, databases, kind of
    /// range and windows. The range's ends may differ (`since=72h` and the default
    /// `until` move with the clock) and so may the pace (`rate`, `chunk-size`,
    /// `give-up-after`), which do not change what is copied.
    pub fn same_work(&self, other: &Params) -> bool {
        self.listener == other.listener
            && self.output == other.output
            && self.source == other.source
            && self.databases == other.databases
            && self.since.is_some() == other.since.is_some()
            && self.window == other.window
            && self.dropped == other.dropped
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<State> {
        Some(match s {
            "running" => State::Running,
            "done" => State::Done,
            "failed" => State::Failed,
            "cancelled" => State::Cancelled,
            _ => return None,
        })
    }

    /// The target may lack data: it serves no read.
    pub fn excludes_reads(self) -> bool {
        matches!(self, State::Running | State::Failed)
    }
}

/// The last window finished, in the walk's order: database, retention policy,
/// measurement, window start.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub database: String,
    pub retention_policy: String,
    pub measurement: String,
    pub window_start: i64,
}

/// Counters shown while the rebuild runs and kept in its state file.
#[derive(Debug, Default)]
pub struct Counters {
    pub windows_total: AtomicU64,
    pub windows_done: AtomicU64,
    pub windows_copied: AtomicU64,
    pub windows_equal: AtomicU64,
    pub windows_redone: AtomicU64,
    pub points_copied: AtomicU64,
    pub bytes_copied: AtomicU64,
    pub queries: AtomicU64,
    pub retries: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What changes under the lock: state, phase, errors, position.
#[derive(Debug, Clone)]
pub struct Detail {
    pub state: State,
    pub phase: &'static str,
    pub current: Option<String>,
    pub error: Option<String>,
    pub errors: VecDeque<(u64, String)>,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub cursor: Option<Cursor>,
    pub resumed: bool,
    /// When the copying began in this run, and the points copied before it (for the
    /// rate and the time left).
    pub run_started_ms: u64,
    pub points_before_run: u64,
    pub windows_before_run: u64,
}

/// One rebuild: its parameters, progress and the signal that stops it.
pub struct Job {
    pub params: Params,
    pub counters: Counters,
    detail: Mutex<Detail>,
    /// Set by a cancel or the relay's shutdown; the job stops between steps.
    stop: AtomicBool,
    cancelled: AtomicBool,
    /// The target's server mark, shared with the loops.
    mark: Arc<Mark>,
    state_file: PathBuf,
}

impl Job {
    pub fn detail(&self) -> Detail {
        self.detail
            .lock()
            .map(|d| d.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn update(&self, f: impl FnOnce(&mut Detail)) {
        match self.detail.lock() {
            Ok(mut d) => f(&mut d),
            Err(e) => f(&mut e.into_inner()),
        }
    }

    pub fn state(&self) -> State {
        self.detail().state
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// An error worth showing; `fatal` ends the rebuild with it.
    fn note_error(&self, message: String, fatal: bool) {
        crate::warn!(
            "rebuild",
            output = self.params.output,
            error = message,
            fatal = fatal
        );
        self.update(|d| {
            if d.errors.len() == ERRORS_KEPT {
                d.errors.pop_front();
            }
            d.errors.push_back((unix_ms(), message.clone()));
            if fatal {
                d.error = Some(message);
            }
        });
    }

    /// Write the state file now.
    fn save(&self) {
        if let Err(e) = file::save(&self.state_file, self) {
            crate::warn!(
                "cannot write the rebuild state; a restart would repeat work",
                output = self.params.output,
                path = self.state_file.display(),
                error = e,
            );
        }
    }
}

/// Why a rebuild cannot start, and the HTTP status that says so.
pub struct Refusal {
    pub status: u16,
    pub message: String,
    /// The rebuild already running (409).
    pub running: Option<Arc<Job>>,
}

impl Refusal {
    pub fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            running: None,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A rebuild and its thread (`None` once joined, or for one that finished in an
/// earlier run).
type Entry = (Arc<Job>, Option<JoinHandle<()>>);

/// Every rebuild this relay knows: running ones, and finished ones for `/status`.
#[derive(Default)]
pub struct Registry {
    jobs: Mutex<Vec<Entry>>,
    spool_dir: PathBuf,
}

/// Where the output's rebuild state lives.
fn state_path(spool_dir: &Path, listener: &str, output: &str) -> PathBuf {
    spool_dir
        .join("rebuild")
        .join(crate::backend::path_safe(listener))
        .join(format!("{}.state", crate::backend::path_safe(output)))
}

/// An output of a listener, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputAt {
    pub listener: usize,
    pub output: usize,
}

impl Registry {
    pub fn new(spool_dir: &Path) -> Registry {
        Registry {
            jobs: Mutex::new(Vec::new()),
            spool_dir: spool_dir.to_path_buf(),
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest rebuild of an output (running or not).
    pub fn find(&self, listener: &str, output: &str) -> Option<Arc<Job>> {
        self.jobs()
            .iter()
            .rev()
            .find(|(j, _)| j.params.listener == listener && j.params.output == output)
            .map(|(j, _)| j.clone())
    }

    pub fn all(&self) -> Vec<Arc<Job>> {
        self.jobs().iter().map(|(j, _)| j.clone()).collect()
    }

    /// Start (or resume from its state file) a rebuild with `params`.
    pub fn start(&self, shared: &Arc<Shared>, params: Params) -> Result<Arc<Job>, Refusal> {
        let (target, source) = copy::check(shared, &params)?;
        let mut jobs = self.jobs();
        if let Some((running, _)) = jobs.iter().find(|(j, _)| {
            j.params.listener == params.listener
                && j.params.output == params.output
                && j.state() == State::Running
        }) {
            return Err(Refusal {
                status: 409,
                message: format!(
                    "a rebuild of output {:?} is already running; DELETE /admin/rebuild?output={} cancels it",
                    params.output, params.output
                ),
                running: Some(running.clone()),
            });
        }
        let path = state_path(&self.spool_dir, &params.listener, &params.output);
        // The same rebuild asked again after a failure or a restart goes on from where
        // it stopped, over the range it was given then; a different one starts over.
        let mut params = params;
        let earlier = file::load(&path).ok().filter(|e| {
            matches!(e.detail.state, State::Running | State::Failed) && e.params.same_work(&params)
        });
        if let Some(e) = &earlier {
            params.since = e.params.since;
            params.until = e.params.until;
        }
        let mark = shared.http[target.listener].backends[target.output]
            .rebuild
            .clone();
        let now = unix_ms();
        let (detail, counters) = match earlier {
            Some(e) => (
                Detail {
                    state: State::Running,
                    phase: "planning",
                    current: None,
                    error: None,
                    resumed: true,
                    finished_ms: None,
                    run_started_ms: now,
                    ..e.detail
                },
                e.counters,
            ),
            None => (
                Detail {
                    state: State::Running,
                    phase: "planning",
                    current: None,
                    error: None,
                    errors: VecDeque::new(),
                    started_ms: now,
                    finished_ms: None,
                    cursor: None,
                    resumed: false,
                    run_started_ms: now,
                    points_before_run: 0,
                    windows_before_run: 0,
                },
                Counters::default(),
            ),
        };
        let job = Arc::new(Job {
            params,
            counters,
            detail: Mutex::new(detail),
            stop: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            mark,
            state_file: path,
        });
        job.mark.activate();
        job.save();
        let thread = {
            let (job, shared) = (job.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("rebuild-{}", job.params.output))
                .spawn(move || copy::run(&shared, &job, target, source))
                .map_err(|e| Refusal::new(500, format!("cannot start the rebuild thread: {e}")))?
        };
        crate::info!(
            "rebuild started",
            listener = job.params.listener,
            output = job.params.output,
            source = job.params.source,
            resumed = job.detail().resumed,
        );
        jobs.retain(|(j, _)| {
            !(j.params.listener == job.params.listener && j.params.output == job.params.output)
        });
        jobs.push((job.clone(), Some(thread)));
        Ok(job)
    }

    /// Cancel the running (or failed) rebuild of an output: the target serves reads
    /// again.
    pub fn cancel(&self, listener: &str, output: &str) -> Option<Arc<Job>> {
        let job = self
            .find(listener, output)
            .filter(|j| j.state().excludes_reads())?;
        job.cancelled.store(true, Ordering::Release);
        job.stop.store(true, Ordering::Release);
        job.update(|d| {
            d.state = State::Cancelled;
            d.phase = "finished";
            d.finished_ms = Some(unix_ms());
        });
        job.mark.deactivate();
        job.save();
        crate::info!("rebuild cancelled", listener = listener, output = output);
        Some(job)
    }

    /// At start-up: mark every target whose rebuild did not finish, resume the running
    /// ones, and start those the config asks for (`rebuild-on-start`).
    pub fn resume_all(&self, shared: &Arc<Shared>) {
        for (l, listener) in shared.http.iter().enumerate() {
            for (o, output) in listener.config.outputs.iter().enumerate() {
                let path = state_path(&self.spool_dir, &listener.config.name, &output.name);
                let earlier = match file::load(&path) {
                    Ok(e) => Some(e),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => {
                        crate::warn!(
                            "cannot read a rebuild state file; the rebuild is not resumed",
                            path = path.display(),
                            error = e,
                        );
                        None
                    }
                };
                let params = match earlier {
                    Some(e) if e.detail.state == State::Running => Some(e.params),
                    Some(e) => {
                        if e.detail.state == State::Failed {
                            // Still incomplete: it serves no read until resumed or
                            // cancelled.
                            listener.backends[o].rebuild.activate();
                        }
                        self.keep_finished(e, listener.backends[o].rebuild.clone(), path);
                        None
                    }
                    None if output.rebuild_on_start => Some(copy::default_params(
                        shared,
                        OutputAt {
                            listener: l,
                            output: o,
                        },
                    )),
                    None => None,
                };
                if let Some(params) = params {
                    if let Err(e) = self.start(shared, params) {
                        crate::warn!("cannot resume a rebuild", output = output.name, error = e);
                    }
                }
            }
        }
    }

    /// A finished rebuild from an earlier run, shown in `/status`.
    fn keep_finished(&self, e: file::Loaded, mark: Arc<Mark>, path: PathBuf) {
        let job = Arc::new(Job {
            params: e.params,
            counters: e.counters,
            detail: Mutex::new(e.detail),
            stop: AtomicBool::new(true),
            cancelled: AtomicBool::new(false),
            mark,
            state_file: path,
        });
        self.jobs().push((job, None));
    }

    /// Stop every rebuild thread (relay shutdown); their state files say where to go
    /// on.
    pub fn stop_all(&self) {
        let threads: Vec<JoinHandle<()>> = {
            let mut jobs = self.jobs();
            for (j, _) in jobs.iter() {
                j.stop.store(true, Ordering::Release);
            }
            jobs.iter_mut().filter_map(|(_, t)| t.take()).collect()
        };
        for t in threads {
            let _ = t.join();
        }
    }
}
