//! The rebuild's walk: schema first, then every window of every measurement, compared
//! and copied when the target lacks or differs.
//!
//! How a live write is kept from being undone. A window's copy carries the source's
//! points as they were when it was read; a live write that changes one of them and
//! reaches the target before the copy would be overwritten with the older value. So,
//! per window:
//! 1. the target's [`Mark`] starts logging the live writes sent to it, and the relay's
//!    latest change number `n` is read;
//! 2. the copy waits until the source has applied every change up to `n` — every live
//!    write that was not logged is then in what it reads;
//! 3. it reads the source and sends the copy through the target's queue, and waits
//!    until the target has taken all of it;
//! 4. it looks at what was logged: a write for the same database with a point in the
//!    window may have been overwritten, so the window is done again from step 1 (the
//!    source holds that write by then, so the next copy carries the new value).
//!
//! The target may hold an older value for a moment in between, but it serves no read
//! while it is being rebuilt, and a window only counts as done once a copy of it saw
//! no live write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::mark::Touched;
use super::*;
use crate::applied::Unapplied;
use crate::backend::{BackendHandle, Completion, Job as BackendJob, LoopNotifier, Reply};
use crate::batch::{Batch, Kind, Outcome, SharedBatch};
use crate::config::{HttpOutput, OutputApi};
use crate::verify::digest::{Digest, FieldTypes, Folder};
use crate::verify::reader::{quote_ident, Reader, Row};
use crate::verify::VerifyError;

/// InfluxDB's own monitoring database, different on every server: copied only when
/// named.
const INTERNAL_DB: &str = "_internal";
/// Bytes of line protocol per copied write (1 MiB), unless the target's `max-batch-kb`
/// is smaller.
const CHUNK_BYTES: usize = 1 << 20;
/// Copied writes in flight to the target at once.
const IN_FLIGHT: usize = 4;
/// First and longest pause between retries of a failing step.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long one wait for the source to apply the relay's latest writes lasts before it
/// counts as a failed step (and is retried like one).
const SOURCE_WAIT: Duration = Duration::from_secs(10);
/// The state file is written at most this often while windows finish.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// A window copied again this many times in a row waits a little between tries, so
/// a client that keeps writing into it does not keep the rebuild spinning.
const REDO_PATIENCE: u32 = 3;

/// Check what `params` name against the running relay: the target and the source.
pub(super) fn check(shared: &Shared, params: &Params) -> Result<(OutputAt, OutputAt), Refusal> {
    let target = find(shared, Some(&params.listener), &params.output)?;
    if params.source.is_empty() {
        return Err(Refusal::new(
            400,
            format!(
                "listener {:?} has no other 1.x output with reads to copy {:?} from; name one with source=NAME",
                params.listener, params.output
            ),
        ));
    }
    let source = find(shared, Some(&params.listener), &params.source)
        .or_else(|_| find(shared, None, &params.source))?;
    let (t, s) = (output(shared, target), output(shared, source));
    if target == source {
        return Err(Refusal::new(
            400,
            format!("source and target are the same output {:?}", t.name),
        ));
    }
    if same_server(t, s) {
        return Err(Refusal::new(
            400,
            format!(
                "source {:?} and target {:?} are the same server ({}:{})",
                s.name, t.name, t.location.host, t.location.port
            ),
        ));
    }
    for (role, o) in [("target", t), ("source", s)] {
        if o.api != OutputApi::V1 {
            return Err(Refusal::new(
                400,
                format!(
                    "the {role} {:?} speaks the {} write API: a rebuild reads both sides with InfluxQL (1.x /query)",
                    o.name,
                    o.api.name()
                ),
            ));
        }
    }
    if !s.reads {
        return Err(Refusal::new(
            400,
            format!(
                "the source {:?} has reads = false: it is not a full replica to copy from",
                s.name
            ),
        ));
    }
    if shared.http[source.listener].backends[source.output]
        .rebuild
        .is_active()
    {
        return Err(Refusal::new(
            400,
            format!("the source {:?} is being rebuilt itself", s.name),
        ));
    }
    if params.window <= 0 || params.chunk_size == 0 || params.rate.is_nan() || params.rate < 0.0 {
        return Err(Refusal::new(
            400,
            "window, chunk-size and rate must be positive",
        ));
    }
    Ok((target, source))
}

fn output(shared: &Shared, at: OutputAt) -> &HttpOutput {
    &shared.http[at.listener].config.outputs[at.output]
}

fn same_server(a: &HttpOutput, b: &HttpOutput) -> bool {
    a.location.host.eq_ignore_ascii_case(&b.location.host) && a.location.port == b.location.port
}

/// The output called `name`, in `listener` when given. Outputs of different listeners
/// may share a name; they must then be the same server, or the listener must be named.
pub fn find(shared: &Shared, listener: Option<&str>, name: &str) -> Result<OutputAt, Refusal> {
    let mut found: Vec<OutputAt> = Vec::new();
    for (l, http) in shared.http.iter().enumerate() {
        if listener.is_some_and(|want| want != http.config.name) {
            continue;
        }
        for (o, out) in http.config.outputs.iter().enumerate() {
            if out.name == name {
                found.push(OutputAt {
                    listener: l,
                    output: o,
                });
            }
        }
    }
    match found.as_slice() {
        [] => {
            let names: Vec<String> = shared
                .http
                .iter()
                .filter(|h| listener.is_none_or(|want| want == h.config.name))
                .flat_map(|h| h.config.outputs.iter().map(|o| format!("{:?}", o.name)))
                .collect();
            Err(Refusal::new(
                404,
                format!(
                    "no output named {name:?}{}; the outputs are {}",
                    listener.map_or(String::new(), |l| format!(" in listener {l:?}")),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ))
        }
        [first, rest @ ..] => {
            let one = output(shared, *first);
            if rest.iter().any(|at| !same_server(output(shared, *at), one)) {
                return Err(Refusal::new(
                    400,
                    format!("several listeners have an output named {name:?}: add listener=NAME"),
                ));
            }
            Ok(*first)
        }
    }
}

/// What a rebuild of an output does when nothing more is said: copy everything from
/// the first other 1.x output of the listener that serves reads (none: an empty
/// source, which [`check`] refuses).
pub fn default_params(shared: &Shared, at: OutputAt) -> Params {
    let (l, o) = (at.listener, at.output);
    let http = &shared.http[l];
    let target = &http.config.outputs[o];
    let source = http
        .config
        .outputs
        .iter()
        .enumerate()
        .find(|(i, s)| {
            *i != o
                && s.api == OutputApi::V1
                && s.reads
                && !same_server(s, target)
                && !http.backends[*i].rebuild.is_active()
        })
        .map_or_else(String::new, |(_, s)| s.name.clone());
    Params {
        listener: http.config.name.clone(),
        output: target.name.clone(),
        source,
        databases: Vec::new(),
        since: None,
        until: default_until(),
        window: DEFAULT_WINDOW.as_nanos() as i64,
        rate: 0.0,
        chunk_size: DEFAULT_CHUNK_SIZE,
        give_up_after: DEFAULT_GIVE_UP_AFTER,
        dropped: false,
    }
}

/// Now plus [`UNTIL_MARGIN`], in nanoseconds.
pub fn default_until() -> i64 {
    (unix_ms() as i64)
        .saturating_mul(1_000_000)
        .saturating_add(UNTIL_MARGIN.as_nanos() as i64)
}

/// Why the walk stopped early.
enum Stop {
    /// Cancelled, or the relay is shutting down.
    Stopped,
    /// A step kept failing past `give-up-after`, or cannot succeed.
    Failed(String),
}

/// The rebuild thread.
pub(super) fn run(shared: &Arc<Shared>, job: &Job, target: OutputAt, source: OutputAt) {
    let result = Walk::new(shared, job, target, source).and_then(|mut walk| walk.everything());
    let cancelled = job.cancelled.load(Ordering::Acquire);
    match result {
        _ if cancelled => {}
        Err(Stop::Stopped) => {
            // The relay stops: the state file says where to go on.
            job.save();
        }
        Ok(()) => {
            job.update(|d| {
                d.state = State::Done;
                d.phase = "finished";
                d.current = None;
                d.finished_ms = Some(unix_ms());
            });
            job.mark.deactivate();
            job.save();
            crate::info!(
                "rebuild done",
                output = job.params.output,
                points = Counters::get(&job.counters.points_copied),
                windows_copied = Counters::get(&job.counters.windows_copied),
                windows_equal = Counters::get(&job.counters.windows_equal),
            );
        }
        Err(Stop::Failed(message)) => {
            job.note_error(message, true);
            job.update(|d| {
                d.state = State::Failed;
                d.finished_ms = Some(unix_ms());
            });
            job.save();
        }
    }
}

/// One measurement of one retention policy, with the windows to look at.
struct Plan {
    database: String,
    retention_policy: String,
    measurement: String,
    source_types: FieldTypes,
    windows: Vec<(i64, i64)>,
}

struct Walk<'a> {
    job: &'a Job,
    shared: &'a Shared,
    source: Reader,
    target: Reader,
    /// Everything the source's server has not finished, over all its outputs.
    source_unapplied: &'a [Arc<Unapplied>],
    handle: &'a BackendHandle,
    pipe: Pipe,
    chunk_bytes: usize,
    last_save: Instant,
    /// With `dropped`: the ranges recorded for the target when the rebuild started,
    /// `(database, from, until)`; the ones it repairs (drops recorded later are not).
    dropped: Vec<(String, i64, i64)>,
}

impl<'a> Walk<'a> {
    fn new(
        shared: &'a Shared,
        job: &'a Job,
        target: OutputAt,
        source: OutputAt,
    ) -> Result<Walk<'a>, Stop> {
        let pace = if job.params.rate > 0.0 {
            Duration::from_secs_f64(1.0 / job.params.rate)
        } else {
            Duration::ZERO
        };
        let reader = |at: OutputAt| {
            let o = output(shared, at);
            // The output's own `timeout` bounds each wait for a backend's next bytes:
            // a stalled backend is seen as soon as writes to it would be.
            Reader::new(o, o.timeout, job.params.chunk_size, pace)
                .map_err(|e| Stop::Failed(e.to_string()))
        };
        let t = output(shared, target);
        Ok(Walk {
            job,
            shared,
            source: reader(source)?,
            target: reader(target)?,
            source_unapplied: &shared.http[source.listener].server_unapplied[source.output],
            handle: &shared.http[target.listener].backends[target.output],
            pipe: Pipe::new().map_err(|e| Stop::Failed(format!("cannot set up the copy: {e}")))?,
            chunk_bytes: CHUNK_BYTES.min(t.coalesce_limit.max(64 << 10)),
            last_save: Instant::now(),
            dropped: if job.params.dropped {
                shared.http[target.listener].backends[target.output]
                    .dropped
                    .ranges()
                    .into_iter()
                    .map(|r| (r.database, r.from_ns, r.until_ns))
                    .collect()
            } else {
                Vec::new()
            },
        })
    }

    fn phase(&self, phase: &'static str) {
        self.job.update(|d| d.phase = phase);
    }

    /// Run `step` until it succeeds, retrying a failure with a growing pause for up to
    /// `give-up-after`.
    fn retrying<T>(
        &mut self,
        mut step: impl FnMut(&mut Self) -> Result<T, VerifyError>,
    ) -> Result<T, Stop> {
        let mut first_failure: Option<Instant> = None;
        let mut wait = BACKOFF_FIRST;
        loop {
            if self.job.stopping() {
                return Err(Stop::Stopped);
            }
            let before = self.source.queries + self.target.queries;
            let result = step(self);
            Counters::add(
                &self.job.counters.queries,
                (self.source.queries + self.target.queries).saturating_sub(before),
            );
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let since = *first_failure.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.job.params.give_up_after {
                        return Err(Stop::Failed(format!(
                            "{e} (retried for {:?})",
                            self.job.params.give_up_after
                        )));
                    }
                    Counters::add(&self.job.counters.retries, 1);
                    self.job.note_error(e.to_string(), false);
                    self.sleep(wait)?;
                    wait = (wait * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn sleep(&self, d: Duration) -> Result<(), Stop> {
        pause(self.job, d)
    }

    fn everything(&mut self) -> Result<(), Stop> {
        let databases = self.databases()?;
        self.phase("schema");
        for db in &databases {
            self.schema(db)?;
        }
        self.phase("planning");
        let mut plans = Vec::new();
        for db in &databases {
            plans.extend(self.plan(db)?);
        }
        let total: u64 = plans.iter().map(|p| p.windows.len() as u64).sum();
        let cursor = self.job.detail().cursor;
        let already: u64 = plans
            .iter()
            .flat_map(|p| p.windows.iter().map(move |w| (p, w)))
            .filter(|(p, w)| cursor.as_ref().is_some_and(|c| unit_cursor(p, w.0) <= *c))
            .count() as u64;
        self.job
            .counters
            .windows_total
            .store(total, Ordering::Relaxed);
        self.job
            .counters
            .windows_done
            .store(already, Ordering::Relaxed);
        let points = Counters::get(&self.job.counters.points_copied);
        self.job.update(|d| {
            d.phase = "copying";
            d.run_started_ms = unix_ms();
            d.points_before_run = points;
            d.windows_before_run = already;
        });
        for plan in &plans {
            let mut target_types: Option<FieldTypes> = None;
            for &(a, b) in &plan.windows {
                let unit = unit_cursor(plan, a);
                if cursor.as_ref().is_some_and(|c| unit <= *c) {
                    continue;
                }
                self.window(plan, a, b, &mut target_types)?;
                Counters::add(&self.job.counters.windows_done, 1);
                self.job.update(|d| d.cursor = Some(unit));
                if self.last_save.elapsed() >= SAVE_EVERY {
                    self.job.save();
                    self.last_save = Instant::now();
                }
            }
        }
        // A copy the target's spool took is not in the target yet: the target may serve
        // reads only once it has applied every copy.
        self.phase("draining");
        while !self.handle.unapplied.has_applied(self.pipe.last_seq) {
            self.sleep(Duration::from_millis(50))?;
        }
        if self.job.params.dropped {
            // Repaired: what was dropped for the target is there now.
            for (db, from, until) in &self.dropped {
                self.handle.dropped.forget(db, *from, *until);
            }
        }
        Ok(())
    }

    /// The databases to copy: those the source has, limited to the ones asked for.
    fn databases(&mut self) -> Result<Vec<String>, Stop> {
        let on_source: BTreeSet<String> = self.retrying(|w| {
            Ok(w.source
                .rows("SHOW DATABASES")?
                .iter()
                .filter_map(|r| r.get("name").map(str::to_string))
                .collect())
        })?;
        let asked = &self.job.params.databases;
        if let Some(missing) = asked.iter().find(|db| !on_source.contains(*db)) {
            return Err(Stop::Failed(format!(
                "database {missing:?} is not on the source {:?}",
                self.job.params.source
            )));
        }
        let dropped: Option<BTreeSet<String>> = self
            .job
            .params
            .dropped
            .then(|| self.dropped.iter().map(|r| r.0.clone()).collect());
        Ok(on_source
            .into_iter()
            .filter(|db| {
                if asked.is_empty() {
                    db != INTERNAL_DB
                } else {
                    asked.contains(db)
                }
            })
            // A range recorded without a database (a statement that named none)
            // concerns them all.
            .filter(|db| {
                dropped
                    .as_ref()
                    .is_none_or(|d| d.contains(db) || d.contains(""))
            })
            .collect())
    }

    /// The database and its retention policies on the target, with the source's
    /// settings (duration, shard duration, replication, which one is the default).
    fn schema(&mut self, db: &str) -> Result<(), Stop> {
        let q = quote_ident(db);
        let statement = format!("SHOW RETENTION POLICIES ON {q}");
        let source = self.retrying(|w| w.source.rows(&statement))?;
        let on_target = self.retrying(|w| w.target.rows("SHOW DATABASES"))?;
        if !on_target.iter().any(|r| r.get("name") == Some(db)) {
            // Created with the source's default policy, so that it does not also get
            // an `autogen` the source may not have.
            let default = source
                .iter()
                .find(|r| r.get("default") == Some("true"))
                .and_then(|rp| {
                    Some(format!(
                        " WITH DURATION {} REPLICATION {} SHARD DURATION {} NAME {}",
                        influxql_duration(rp.get("duration")?)?,
                        rp.get("replicaN")?,
                        influxql_duration(rp.get("shardGroupDuration")?)?,
                        quote_ident(rp.get("name")?)
                    ))
                })
                .unwrap_or_default();
            self.retrying(|w| w.target.execute(&format!("CREATE DATABASE {q}{default}")))?;
        }
        let target = self.retrying(|w| w.target.rows(&statement))?;
        let target: BTreeMap<&str, &Row> = target
            .iter()
            .filter_map(|r| Some((r.get("name")?, r)))
            .collect();
        for rp in &source {
            let Some(name) = rp.get("name") else {
                continue;
            };
            let settings = |r: &Row| {
                [
                    r.get("duration").map(str::to_string),
                    r.get("shardGroupDuration").map(str::to_string),
                    r.get("replicaN").map(str::to_string),
                    r.get("default").map(str::to_string),
                ]
            };
            if target
                .get(name)
                .is_some_and(|t| settings(t) == settings(rp))
            {
                continue;
            }
            let (Some(duration), Some(shard), Some(replication)) = (
                rp.get("duration").and_then(influxql_duration),
                rp.get("shardGroupDuration").and_then(influxql_duration),
                rp.get("replicaN"),
            ) else {
                self.job.note_error(
                    format!("retention policy {name:?} on {db:?}: settings not understood, left as they are"),
                    false,
                );
                continue;
            };
            let verb = if target.contains_key(name) {
                "ALTER"
            } else {
                "CREATE"
            };
            let default = if rp.get("default") == Some("true") {
                " DEFAULT"
            } else {
                ""
            };
            let statement = format!(
                "{verb} RETENTION POLICY {} ON {q} DURATION {duration} REPLICATION {replication} SHARD DURATION {shard}{default}",
                quote_ident(name)
            );
            self.retrying(|w| w.target.execute(&statement))?;
        }
        Ok(())
    }

    /// Every measurement with data in each retention policy of `db`, with its windows.
    fn plan(&mut self, db: &str) -> Result<Vec<Plan>, Stop> {
        let q = quote_ident(db);
        let rps: BTreeSet<String> = self.retrying(|w| {
            Ok(w.source
                .rows(&format!("SHOW RETENTION POLICIES ON {q}"))?
                .iter()
                .filter_map(|r| r.get("name").map(str::to_string))
                .collect())
        })?;
        let measurements: BTreeSet<String> = self.retrying(|w| {
            Ok(w.source
                .rows(&format!("SHOW MEASUREMENTS ON {q}"))?
                .iter()
                .filter_map(|r| r.get("name").map(str::to_string))
                .collect())
        })?;
        let dropped: Vec<(i64, i64)> = if self.job.params.dropped {
            self.dropped
                .iter()
                .filter(|r| r.0 == db || r.0.is_empty())
                .map(|r| (r.1, r.2))
                .collect()
        } else {
            Vec::new()
        };
        let mut plans = Vec::new();
        for rp in &rps {
            for m in &measurements {
                let from = format!("{q}.{}.{}", quote_ident(rp), quote_ident(m));
                let types = self.retrying(|w| w.source.field_types(db, rp, m))?;
                if types.is_empty() {
                    continue;
                }
                let Some((start, end)) = self.bounds(&from)? else {
                    continue;
                };
                let size = self.job.params.window;
                let mut windows: Vec<(i64, i64)> =
                    crate::verify::windows(start, end, size).collect();
                if self.job.params.dropped {
                    windows.retain(|&(a, b)| dropped.iter().any(|&(f, u)| f < b && a < u));
                }
                if windows.is_empty() {
                    continue;
                }
                plans.push(Plan {
                    database: db.to_string(),
                    retention_policy: rp.clone(),
                    measurement: m.clone(),
                    source_types: types,
                    windows,
                });
            }
        }
        Ok(plans)
    }

    /// First point and just past the last one on the source in the asked range.
    fn bounds(&mut self, from: &str) -> Result<Option<(i64, i64)>, Stop> {
        let until = self.job.params.until;
        let since = self.job.params.since;
        let range = match since {
            Some(s) => format!("time >= {s} AND time < {until}"),
            None => format!("time < {until}"),
        };
        let mut ends = [0i64; 2];
        for (end, order) in ends.iter_mut().zip(["ASC", "DESC"]) {
            let statement =
                format!("SELECT * FROM {from} WHERE {range} ORDER BY time {order} LIMIT 1");
            let rows = self.retrying(|w| w.source.rows(&statement))?;
            let Some(time) = rows.first().and_then(|row| row.get("time")) else {
                return Ok(None);
            };
            *end = time.parse().map_err(|_| {
                Stop::Failed(format!(
                    "the source answered a time that is not nanoseconds: {time:?}"
                ))
            })?;
        }
        Ok(Some((ends[0], ends[1].saturating_add(1))))
    }

    /// Compare one window and copy it if the target lacks or differs, again while a
    /// live write touched it during the copy.
    fn window(
        &mut self,
        plan: &Plan,
        a: i64,
        b: i64,
        target_types: &mut Option<FieldTypes>,
    ) -> Result<(), Stop> {
        let (db, rp, m) = (&plan.database, &plan.retention_policy, &plan.measurement);
        self.job.update(|d| {
            d.current = Some(format!(
                "{db}.{rp}.{m} from {}",
                crate::verify::time::format_rfc3339(a)
            ))
        });
        let from = format!("{}.{}.{}", quote_ident(db), quote_ident(rp), quote_ident(m));
        let select = format!("SELECT * FROM {from} WHERE time >= {a} AND time < {b} GROUP BY *");
        let mut redone = 0u32;
        loop {
            // Step 1 (see the module's comment).
            self.job.mark.start_window();
            let seq = self.shared.changes.last();
            self.retrying(|w| w.source_has_applied(seq))?;
            if target_types.is_none() {
                *target_types = Some(self.retrying(|w| w.target.field_types(db, rp, m))?);
            }
            let types = target_types.as_ref().map_or(&plan.source_types, |t| t);
            let target_digest = if types.is_empty() {
                Digest::default()
            } else {
                let types = types.clone();
                self.retrying(|w| {
                    let mut folder = Folder::new(&types);
                    w.target.query(&select, &mut folder)?;
                    Ok(folder.digest)
                })?
            };
            if target_digest.points > 0 {
                let source_digest = self.retrying(|w| {
                    let mut folder = Folder::new(&plan.source_types);
                    w.source.query(&select, &mut folder)?;
                    Ok(folder.digest)
                })?;
                if source_digest == target_digest {
                    if redone == 0 {
                        Counters::add(&self.job.counters.windows_equal, 1);
                    }
                    return Ok(());
                }
            }
            // Steps 2 and 3.
            self.copy(plan, &select)?;
            // The target now has the fields the copy created.
            *target_types = None;
            if redone == 0 {
                Counters::add(&self.job.counters.windows_copied, 1);
            }
            // Step 4.
            if !self.touched(db, a, b) {
                return Ok(());
            }
            redone += 1;
            Counters::add(&self.job.counters.windows_redone, 1);
            if redone >= REDO_PATIENCE {
                self.sleep(Duration::from_millis(200 * u64::from(redone.min(50))))?;
            }
        }
    }

    fn source_has_applied(&mut self, seq: u64) -> Result<(), VerifyError> {
        let start = Instant::now();
        while !self.source_unapplied.iter().all(|u| u.has_applied(seq)) {
            if self.job.stopping() {
                return Ok(());
            }
            if start.elapsed() >= SOURCE_WAIT {
                return Err(VerifyError::Backend {
                    backend: self.source.name.clone(),
                    url: self.source.url.clone(),
                    message: format!(
                        "has not applied the relay's latest writes for {SOURCE_WAIT:?} (down, or catching up?)"
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Read the window from the source and send it to the target; retried as a whole
    /// (copying a point twice writes the same value twice).
    fn copy(&mut self, plan: &Plan, select: &str) -> Result<(), Stop> {
        let query: Box<str> = {
            let mut q = String::from("db=");
            crate::http::write::percent_encode_into(&mut q, &plan.database);
            q.push_str("&rp=");
            crate::http::write::percent_encode_into(&mut q, &plan.retention_policy);
            q.push_str("&precision=n");
            q.into_boxed_str()
        };
        let chunk_bytes = self.chunk_bytes;
        let mut failure: Option<Stop> = None;
        let copied = self.retrying(|w| {
            let Walk {
                source,
                pipe,
                handle,
                shared,
                job,
                ..
            } = w;
            let mut sink = |body: Vec<u8>, points: usize| -> Result<(), String> {
                let batch = Batch {
                    kind: Kind::Write,
                    query: query.clone(),
                    auth: None,
                    body,
                    points,
                    seq: shared.changes.next(),
                };
                pipe.send(handle, job, Arc::new(batch)).map_err(|stop| {
                    let text = match &stop {
                        Stop::Stopped => "stopped".to_string(),
                        Stop::Failed(m) => m.clone(),
                    };
                    failure = Some(stop);
                    text
                })
            };
            let mut writer = lines::LineWriter::new(&plan.source_types, chunk_bytes, &mut sink);
            let totals = match source.query(select, &mut writer) {
                Ok(()) => writer.finish().map_err(|message| VerifyError::Backend {
                    backend: source.name.clone(),
                    url: source.url.clone(),
                    message,
                }),
                Err(e) => Err(e),
            };
            match (failure.is_some(), totals) {
                // The pipe stopped the read: said below, not retried here.
                (true, _) => Ok((0, 0)),
                (false, Ok((points, bytes, skipped))) => {
                    if skipped > 0 {
                        job.note_error(
                            format!("{skipped} points with a newline in a name cannot be written as line protocol; left out"),
                            false,
                        );
                    }
                    Ok((points, bytes))
                }
                (false, Err(e)) => Err(e),
            }
        });
        if let Some(stop) = failure.take() {
            return Err(stop);
        }
        let (points, bytes) = copied?;
        self.pipe.drain(self.handle, self.job)?;
        Counters::add(&self.job.counters.points_copied, points);
        Counters::add(&self.job.counters.bytes_copied, bytes);
        Ok(())
    }

    /// Whether a live write logged since the window started may have been overwritten.
    fn touched(&self, db: &str, a: i64, b: i64) -> bool {
        match self.job.mark.take() {
            Touched::TooMany => true,
            Touched::Writes(writes) => writes.iter().any(|w| touches(w, db, a, b)),
        }
    }
}

/// The cursor value of a window.
fn unit_cursor(plan: &Plan, window_start: i64) -> Cursor {
    Cursor {
        database: plan.database.clone(),
        retention_policy: plan.retention_policy.clone(),
        measurement: plan.measurement.clone(),
        window_start,
    }
}

/// Whether the live write `batch` may have changed a point of database `db` in
/// `[a, b)`. Statements (`DELETE`, `DROP`) on the database always may, and so does a
/// write whose timestamps cannot all be read.
fn touches(batch: &Batch, db: &str, a: i64, b: i64) -> bool {
    match crate::dropped::covered(batch.kind, &batch.query, &batch.body) {
        Some(c) => (c.database.is_empty() || c.database == db) && c.from_ns < b && a < c.until_ns,
        None => true,
    }
}

/// A Go duration as `SHOW RETENTION POLICIES` prints it (`168h0m0s`, `0s`) as an
/// InfluxQL duration literal (`604800s`, `INF`).
fn influxql_duration(go: &str) -> Option<String> {
    let mut total: f64 = 0.0;
    let mut rest = go;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(split);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let number: f64 = number.parse().ok()?;
        let scale = match unit {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        total += number * scale;
        rest = tail;
    }
    let ns = total.round() as i64;
    Some(match ns {
        0 => "INF".to_string(),
        ns if ns % 1_000_000_000 == 0 => format!("{}s", ns / 1_000_000_000),
        ns if ns % 1_000_000 == 0 => format!("{}ms", ns / 1_000_000),
        ns => format!("{}u", ns / 1_000),
    })
}

/// Sleep for `d`, waking early when the rebuild is stopped.
fn pause(job: &Job, d: Duration) -> Result<(), Stop> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if job.stopping() {
            return Err(Stop::Stopped);
        }
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
    Ok(())
}

/// Copied writes on their way to the target, through its queue like any write, with
/// the outcomes coming back on a channel of their own.
struct Pipe {
    notifier: Arc<LoopNotifier>,
    completions: Receiver<Completion>,
    /// Keeps the waker's poll open.
    _poll: mio::Poll,
    in_flight: BTreeMap<u64, SharedBatch>,
    next: u64,
    /// The highest change number of a copy sent so far.
    last_seq: u64,
}

impl Pipe {
    fn new() -> std::io::Result<Pipe> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), mio::Token(0))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(Pipe {
            notifier: Arc::new(LoopNotifier::new(tx, waker)),
            completions: rx,
            _poll: poll,
            in_flight: BTreeMap::new(),
            next: 0,
            last_seq: 0,
        })
    }

    fn submit(&mut self, handle: &BackendHandle, batch: SharedBatch) {
        self.next += 1;
        self.last_seq = self.last_seq.max(batch.seq);
        self.in_flight.insert(self.next, batch.clone());
        handle.submit(BackendJob {
            batch,
            reply: Some(Reply {
                notifier: self.notifier.clone(),
                token: 0,
                request: self.next,
                backend: 0,
            }),
        });
    }

    fn send(&mut self, handle: &BackendHandle, job: &Job, batch: SharedBatch) -> Result<(), Stop> {
        while self.in_flight.len() >= IN_FLIGHT {
            self.wait_one(handle, job)?;
        }
        self.submit(handle, batch);
        Ok(())
    }

    fn drain(&mut self, handle: &BackendHandle, job: &Job) -> Result<(), Stop> {
        while !self.in_flight.is_empty() {
            self.wait_one(handle, job)?;
        }
        Ok(())
    }

    /// Wait for one outcome. Delivered or spooled: done. Refused (4xx): reported, the
    /// target will refuse it again. Failed: sent again after a pause, until
    /// `give-up-after`.
    fn wait_one(&mut self, handle: &BackendHandle, job: &Job) -> Result<(), Stop> {
        let started = Instant::now();
        let mut wait = BACKOFF_FIRST;
        loop {
            if job.stopping() {
                self.in_flight.clear();
                return Err(Stop::Stopped);
            }
            let c = match self.completions.recv_timeout(Duration::from_millis(100)) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Stop::Failed("the target's workers are gone".into()))
                }
            };
            let Some(batch) = self.in_flight.remove(&c.request) else {
                continue;
            };
            match c.outcome {
                Outcome::Delivered | Outcome::Spooled | Outcome::Answered { .. } => return Ok(()),
                Outcome::Rejected { status, body } if matches!(status, 401 | 403) => {
                    // Every later copy would be refused alike.
                    return Err(Stop::Failed(format!(
                        "the target refused the copy's credentials ({status}: {}); give the output http-user and http-pass (or token)",
                        String::from_utf8_lossy(&body).trim()
                    )));
                }
                Outcome::Rejected { status, body } => {
                    job.note_error(
                        format!(
                            "the target refused copied points ({status}): {}",
                            String::from_utf8_lossy(&body).trim()
                        ),
                        false,
                    );
                    return Ok(());
                }
                Outcome::Failed { status, body } => {
                    let why = match status {
                        Some(s) => format!("{s}: {}", String::from_utf8_lossy(&body).trim()),
                        None => "no answer, or its queue is full".to_string(),
                    };
                    if started.elapsed() >= job.params.give_up_after {
                        return Err(Stop::Failed(format!(
                            "the target keeps failing copied writes ({why})"
                        )));
                    }
                    Counters::add(&job.counters.retries, 1);
                    job.note_error(
                        format!("a copied write failed at the target ({why}); sent again"),
                        false,
                    );
                    if let Err(stop) = pause(job, wait) {
                        self.in_flight.clear();
                        return Err(stop);
                    }
                    wait = (wait * 2).min(BACKOFF_MAX);
                    self.submit(handle, batch);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_policy_durations_become_influxql_literals() {
        assert_eq!(influxql_duration("0s").as_deref(), Some("INF"));
        assert_eq!(influxql_duration("168h0m0s").as_deref(), Some("604800s"));
        assert_eq!(influxql_duration("1h30m0s").as_deref(), Some("5400s"));
        assert_eq!(influxql_duration("1m0.5s").as_deref(), Some("60500ms"));
        assert_eq!(influxql_duration("bad"), None);
    }

    #[test]
    fn a_live_write_touches_a_window_of_its_database_only() {
        let write = |query: &str, body: &str| Batch {
            kind: Kind::Write,
            query: query.into(),
            auth: None,
            body: body.as_bytes().to_vec(),
            points: 1,
            seq: 1,
        };
        let w = write("db=a&precision=s", "m v=1 10\nm v=2 20\n");
        assert!(touches(&w, "a", 15_000_000_000, 16_000_000_000));
        assert!(touches(&w, "a", 20_000_000_000, 21_000_000_000));
        assert!(!touches(&w, "a", 21_000_000_000, 30_000_000_000));
        assert!(!touches(&w, "b", 0, i64::MAX));
        let statement = Batch {
            kind: Kind::Statement,
            ..write("db=a&q=DROP+MEASUREMENT+m", "")
        };
        assert!(touches(&statement, "a", 0, 1));
    }
}
