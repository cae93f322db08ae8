//! The ordered per-backend queue (README: Durability): a RAM retry buffer or a disk spool,
//! what goes in (`enqueue`) and what the replay takes out (`next_attempt`, `finish`).
//!
//! While anything is queued, every new write for the backend joins the end of the
//! queue (`Queue::active`), so replicas converge to the same last value after an
//! outage. With a spool, queued writes go to disk at once (write-through) and count
//! as *spooled*; the RAM buffer is then not used, because a write held only in RAM
//! cannot be acknowledged. Without a spool, RAM-queued writes keep their reply and
//! answer the client when they are finally delivered (or fail when dropped).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::applied::Unapplied;
use crate::batch::{Kind, Outcome};
use crate::metrics::unix_ms as now_ms;
use crate::spool::{PendingSync, Record, RecordKind, RecordRef, Spool, SpoolError};

use super::{Job, Worker};

/// How a backend queues what it cannot deliver now.
pub enum Store {
    /// RAM only: jobs keep their replies; bounded by `buffer-size-mb`.
    Ram {
        jobs: VecDeque<Job>,
        bytes: usize,
        limit: usize,
    },
    /// Disk spool. `None` while it cannot be opened (logged; writes fail until it can).
    Disk {
        spool: Option<Box<Spool>>,
        dir: PathBuf,
        limit: u64,
    },
}

/// The queue proper, behind `Worker::queue`.
pub struct Queue {
    pub store: Store,
    /// Something is queued: new writes must join the end.
    pub active: bool,
    /// When the oldest queued write was queued (for `/status`).
    pub oldest: Option<Instant>,
    /// The change number of each spooled record, oldest first (the spool itself
    /// does not keep them): what finishing a record tells `Worker::unapplied`.
    spooled: VecDeque<u64>,
}

impl Queue {
    /// A queue over `store`; records an earlier run left in its spool are counted in
    /// `unapplied` as change 0.
    pub fn new(store: Store, unapplied: &Unapplied) -> Queue {
        let mut q = Queue {
            store,
            active: false,
            oldest: None,
            spooled: VecDeque::new(),
        };
        if let Store::Disk { spool: Some(s), .. } = &q.store {
            let n = s.len_records();
            adopt_recovered(&mut q.spooled, unapplied, n);
            q.active = n > 0;
            q.oldest = q.active.then(Instant::now);
        }
        q
    }

    pub(crate) fn is_empty(&self) -> bool {
        match &self.store {
            Store::Ram { jobs, .. } => jobs.is_empty(),
            Store::Disk { spool: Some(s), .. } => s.is_empty(),
            Store::Disk { spool: None, .. } => true,
        }
    }
}

/// Records found in a reopened spool precede every change of this run.
fn adopt_recovered(spooled: &mut VecDeque<u64>, unapplied: &Unapplied, records: u64) {
    spooled.extend(std::iter::repeat_n(0, records as usize));
    unapplied.add(0, records);
}

/// Lines in a body, for counting what is dropped (every line ends in `\n`).
fn lines_in(body: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', body).count() as u64
}

static SPOOL_ERROR_LOG: crate::log::RateLimit = crate::log::RateLimit::every_interval();
static DROP_LOG: crate::log::RateLimit = crate::log::RateLimit::every_interval();

/// Queue `jobs` (in order) at the end of the backend's queue and answer their clients
/// as the store allows. Spool appends are one group commit (one fsync) per call.
pub(crate) fn enqueue(shared: &Worker, jobs: Vec<Job>) {
    let Some((pending, jobs)) = enqueue_locked(shared, jobs) else {
        shared.queue_ready.notify_one();
        return;
    };
    shared.queue_ready.notify_one();
    // Durable before any client is told, but outside the queue's lock: replay peeks and
    // consumes meanwhile instead of waiting behind the disk (under load it did, and
    // drained a backlog at a few percent of its speed).
    let synced = pending.map_or(Ok(()), |p| {
        shared.stats.spool_syncs.inc();
        p.sync()
    });
    let outcome = match synced {
        Ok(()) => Outcome::Spooled,
        Err(e) => {
            // The records stay in the spool and will likely be replayed, but they
            // cannot be promised: the clients hear of a failure.
            if let Some(suppressed) = SPOOL_ERROR_LOG.check() {
                crate::error!(
                    "spool sync failed; writes not acknowledged for this backend",
                    listener = shared.listener,
                    backend = shared.output.name,
                    error = e,
                    suppressed = suppressed,
                );
            }
            Outcome::Failed {
                status: None,
                body: Arc::from(&b""[..]),
            }
        }
    };
    for job in jobs {
        if let Some(reply) = job.reply {
            reply.send(outcome.clone());
        }
    }
}

/// The part of [`enqueue`] done under the queue's lock. Spooled jobs come back with
/// what makes them durable; every other job is answered here.
fn enqueue_locked(shared: &Worker, jobs: Vec<Job>) -> Option<(Option<PendingSync>, Vec<Job>)> {
    let Ok(mut q) = shared.queue.lock() else {
        return None;
    };
    let q = &mut *q;
    let stats = &shared.stats;
    let spooled = &mut q.spooled;
    match &mut q.store {
        Store::Ram {
            jobs: queued,
            bytes,
            limit,
        } => {
            for job in jobs {
                let len = job.batch.body.len();
                if *bytes + len > *limit {
                    // Full: the newest write is the one that goes (the README's Durability policy,
                    // applied to RAM as well).
                    stats.dropped_buffer_full.add(job.batch.points as u64);
                    shared.dropped.record(&job.batch);
                    shared.unapplied.done(job.batch.seq);
                    log_drop(
                        shared,
                        "retry buffer full; write dropped",
                        job.batch.points as u64,
                    );
                    if let Some(reply) = job.reply {
                        reply.send(Outcome::Failed {
                            status: None,
                            body: Arc::from(&b""[..]),
                        });
                    }
                    continue;
                }
                *bytes += len;
                stats.ram_queue_bytes.add(len as u64);
                stats.queued_requests.add(1);
                queued.push_back(job);
            }
            if !queued.is_empty() && !q.active {
                q.active = true;
                q.oldest = Some(Instant::now());
                stats.queued_since_ms.set(now_ms());
            }
            None
        }
        Store::Disk { spool, dir, limit } => {
            if spool.is_none() {
                *spool = open_spool(shared, dir, *limit);
                if let Some(s) = spool {
                    adopt_recovered(spooled, &shared.unapplied, s.len_records());
                }
            }
            let result = match spool.as_mut() {
                Some(s) => {
                    let created_ms = now_ms();
                    let records: Vec<RecordRef<'_>> = jobs
                        .iter()
                        .map(|j| RecordRef {
                            created_ms,
                            kind: match j.batch.kind {
                                Kind::Write => RecordKind::Write,
                                Kind::Statement => RecordKind::Statement,
                            },
                            query: j.batch.query.as_bytes(),
                            auth: j.batch.auth.as_deref(),
                            body: &j.batch.body,
                        })
                        .collect();
                    let before = s.len_bytes();
                    s.append_unsynced(&records).map(|p| {
                        let after = s.len_bytes();
                        stats.spool_appended_bytes.add(after.saturating_sub(before));
                        (p, after)
                    })
                }
                None => Err(SpoolError::Io {
                    path: dir.clone(),
                    source: std::io::Error::other("spool unavailable"),
                }),
            };
            let points: u64 = jobs.iter().map(|j| j.batch.points as u64).sum();
            match result {
                Ok((pending, spool_bytes)) => {
                    spooled.extend(jobs.iter().map(|j| j.batch.seq));
                    stats.spooled_points.add(points);
                    stats.spool_bytes.set(spool_bytes);
                    stats.queued_requests.add(jobs.len() as u64);
                    if !q.active {
                        q.active = true;
                        q.oldest = Some(Instant::now());
                        stats.queued_since_ms.set(now_ms());
                    }
                    Some((pending, jobs))
                }
                Err(e) => {
                    for job in &jobs {
                        shared.unapplied.done(job.batch.seq);
                        shared.dropped.record(&job.batch);
                    }
                    if matches!(e, SpoolError::Full { .. }) {
                        stats.dropped_spool_full.add(points);
                    } else {
                        stats.dropped_spool_error.add(points);
                    }
                    if let Some(suppressed) = SPOOL_ERROR_LOG.check() {
                        crate::error!(
                            "spool write failed; writes dropped for this backend",
                            listener = shared.listener,
                            backend = shared.output.name,
                            error = e,
                            points = points,
                            suppressed = suppressed,
                        );
                    }
                    for job in jobs {
                        if let Some(reply) = job.reply {
                            reply.send(Outcome::Failed {
                                status: None,
                                body: Arc::from(&b""[..]),
                            });
                        }
                    }
                    None
                }
            }
        }
    }
}

/// Open (and recover) the spool of one backend, logging what recovery found.
pub(crate) fn open_spool(shared: &Worker, dir: &std::path::Path, limit: u64) -> Option<Box<Spool>> {
    match Spool::open(dir, limit) {
        Ok((spool, recovery)) => {
            for note in &recovery.notes {
                crate::warn!("spool recovery", backend = shared.output.name, note = note);
            }
            if recovery.records > 0 {
                crate::info!(
                    "spool reopened; replaying",
                    listener = shared.listener,
                    backend = shared.output.name,
                    records = recovery.records,
                    bytes = recovery.bytes,
                    truncated_bytes = recovery.truncated_bytes,
                );
            }
            shared.stats.spool_bytes.set(spool.len_bytes());
            shared.stats.queued_requests.set(spool.len_records());
            shared
                .stats
                .queued_since_ms
                .set(spool.oldest_created_ms().unwrap_or(0));
            Some(Box::new(spool))
        }
        Err(e) => {
            crate::error!(
                "cannot open spool; writes this backend cannot take now will fail",
                listener = shared.listener,
                backend = shared.output.name,
                dir = dir.display(),
                error = e,
            );
            None
        }
    }
}

fn log_drop(shared: &Worker, msg: &str, points: u64) {
    if let Some(suppressed) = DROP_LOG.check() {
        crate::error!(
            msg,
            listener = shared.listener,
            backend = shared.output.name,
            points = points,
            suppressed = suppressed,
        );
    }
}

/// One merged replay attempt: the first `n` queued writes, which share query and auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub(crate) kind: Kind,
    pub(crate) n: usize,
    pub(crate) query: String,
    pub(crate) auth: Option<Vec<u8>>,
    pub(crate) body: Vec<u8>,
    pub(crate) points: u64,
}

/// Build the next attempt from the head of the queue (called with the lock held).
pub(crate) fn next_attempt(
    shared: &Worker,
    q: &mut Queue,
    peeked: &mut Vec<Record>,
) -> Option<Attempt> {
    let max = shared.output.coalesce_limit.max(1);
    match &mut q.store {
        Store::Ram { jobs, .. } => {
            let first = jobs.front()?;
            let mut a = Attempt {
                kind: first.batch.kind,
                n: 0,
                query: first.batch.query.to_string(),
                auth: first.batch.auth.as_ref().map(|a| a.to_vec()),
                body: Vec::new(),
                points: 0,
            };
            for job in jobs.iter() {
                // Statements run one at a time; writes merge with their like.
                let same = a.kind == Kind::Write
                    && job.batch.kind == Kind::Write
                    && *job.batch.query == *a.query
                    && job.batch.auth.as_deref() == a.auth.as_deref();
                if a.n > 0 && (!same || a.body.len() + job.batch.body.len() > max) {
                    break;
                }
                a.body.extend_from_slice(&job.batch.body);
                a.points += job.batch.points as u64;
                a.n += 1;
            }
            Some(a)
        }
        Store::Disk { spool, .. } => {
            let s = spool.as_mut()?;
            peeked.clear();
            if let Err(e) = s.peek(max, peeked) {
                crate::error!("spool read failed", backend = shared.output.name, error = e);
                return None;
            }
            // Too old for `spool-max-age`: dropped and counted, never sent.
            let cutoff = now_ms().saturating_sub(shared.output.spool_max_age.as_millis() as u64);
            let stale = peeked.iter().take_while(|r| r.created_ms < cutoff).count();
            if stale > 0 {
                let lines: u64 = peeked[..stale].iter().map(|r| lines_in(&r.body)).sum();
                shared.stats.dropped_max_age.add(lines);
                let now = now_ms();
                for r in &peeked[..stale] {
                    let kind = match r.kind {
                        RecordKind::Write => Kind::Write,
                        RecordKind::Statement => Kind::Statement,
                    };
                    let query = String::from_utf8_lossy(&r.query);
                    shared
                        .dropped
                        .record_parts(kind, &query, &r.body, lines_in(&r.body), now);
                }
                log_drop(
                    shared,
                    "queued writes older than spool-max-age dropped",
                    lines,
                );
                consume(shared, s, stale);
                finish_spooled(shared, &mut q.spooled, stale);
                return None;
            }
            let first = peeked.first()?;
            let mut a = Attempt {
                kind: match first.kind {
                    RecordKind::Write => Kind::Write,
                    RecordKind::Statement => Kind::Statement,
                },
                n: 0,
                query: String::from_utf8_lossy(&first.query).into_owned(),
                auth: first.auth.clone(),
                body: Vec::new(),
                points: 0,
            };
            for r in peeked.iter() {
                let same = a.kind == Kind::Write
                    && r.kind == RecordKind::Write
                    && r.query == a.query.as_bytes()
                    && r.auth == a.auth;
                if a.n > 0 && (!same || a.body.len() + r.body.len() > max) {
                    break;
                }
                a.body.extend_from_slice(&r.body);
                a.points += lines_in(&r.body);
                a.n += 1;
            }
            Some(a)
        }
    }
}

fn consume(shared: &Worker, s: &mut Spool, n: usize) {
    if let Err(e) = s.consume(n) {
        crate::error!(
            "spool consume failed",
            backend = shared.output.name,
            error = e
        );
    }
    shared.stats.spool_bytes.set(s.len_bytes());
    shared.stats.queued_requests.set(s.len_records());
}

/// The first `n` queued writes are done (delivered, or rejected and dropped).
pub(crate) fn finish(shared: &Worker, n: usize, outcome: &Outcome) {
    let Ok(mut q) = shared.queue.lock() else {
        return;
    };
    match &mut q.store {
        Store::Ram { jobs, bytes, .. } => {
            for job in jobs.drain(..n.min(jobs.len())) {
                *bytes -= job.batch.body.len();
                shared
                    .stats
                    .ram_queue_bytes
                    .sub(job.batch.body.len() as u64);
                shared.stats.queued_requests.sub(1);
                shared.unapplied.done(job.batch.seq);
                if let Some(reply) = job.reply {
                    reply.send(outcome.clone());
                }
            }
        }
        Store::Disk { spool: Some(s), .. } => {
            consume(shared, s, n);
            finish_spooled(shared, &mut q.spooled, n);
        }
        Store::Disk { spool: None, .. } => {}
    }
}

/// The first `n` spooled records left the spool: their changes are finished here.
fn finish_spooled(shared: &Worker, spooled: &mut VecDeque<u64>, n: usize) {
    for seq in spooled.drain(..n.min(spooled.len())) {
        shared.unapplied.done(seq);
    }
}

/// Out of time at shutdown: RAM-only writes are lost (counted); spooled ones stay on
/// disk for the next start.
pub(crate) fn shutdown_leftovers(shared: &Worker, q: &mut Queue) {
    if let Store::Ram { jobs, .. } = &mut q.store {
        let points: u64 = jobs.iter().map(|j| j.batch.points as u64).sum();
        for job in jobs.iter() {
            shared.dropped.record(&job.batch);
        }
        if points > 0 {
            shared.stats.dropped_shutdown.add(points);
            crate::error!(
                "shutdown: writes held only in RAM are lost (configure spool-size-mb to keep them)",
                backend = shared.output.name,
                points = points,
            );
        }
        jobs.clear();
    }
}
