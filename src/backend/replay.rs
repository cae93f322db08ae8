//! The replay thread of a backend with a RAM buffer or spool: it drains the queue in
//! order, one merged attempt at a time (`queue::next_attempt`), and decides what each
//! answer means for the writes it carried.
//!
//! The decisions are kept apart from the I/O so they can be tested against a scripted
//! backend: [`Target`] is what the loop sends to (HTTP in production), [`verdict`] says
//! what an answer means, and [`Backoff`] when to try again.
//!
//! | answer | verdict | the writes |
//! |---|---|---|
//! | 2xx | `Done` | removed from the queue |
//! | 4xx `database not found` (2.x: `bucket "x" not found`) | `Retry` | kept: the database may be being restored |
//! | other 4xx | `Dropped` | removed, logged and counted (no poison pill blocks the queue) |
//! | 5xx, timeout, refused | `Retry` | kept; wait, doubling from 500 ms to `max-delay-interval` |

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::client::Client;
use super::queue::{finish, next_attempt, shutdown_leftovers, Attempt, Store};
use super::Worker;
use crate::batch::Outcome;
use crate::spool::Record;

/// First retry delay after a failure; doubles up to `max-delay-interval` (the
/// original relay's schedule).
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);

/// What a scripted backend keeps of an attempt (tests).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplayedAttempt {
    pub query: String,
    pub body: String,
}

#[cfg(test)]
impl ReplayedAttempt {
    pub(crate) fn of(a: &Attempt) -> ReplayedAttempt {
        ReplayedAttempt {
            query: a.query.clone(),
            body: String::from_utf8_lossy(&a.body).into_owned(),
        }
    }
}

/// Where replay attempts go.
pub(crate) trait Target {
    /// Send one merged attempt; the answer, classified.
    fn send(&mut self, worker: &Worker, attempt: &Attempt) -> Outcome;
    /// Ask whether the backend answers at all (while waiting out a backoff).
    fn ping(&mut self, worker: &Worker) -> bool;
}

/// The backend over HTTP: one keep-alive connection for attempts, one with a short
/// timeout for probes.
pub(crate) struct Http {
    client: Client,
    probe: Client,
    gz: Vec<u8>,
}

impl Http {
    pub(crate) fn new(worker: &Worker) -> Http {
        Http {
            client: Client::new(
                worker.output.location.clone(),
                worker.output.timeout,
                worker.tls.clone(),
            ),
            probe: super::sender::probe_client(worker),
            gz: Vec::new(),
        }
    }
}

impl Target for Http {
    fn send(&mut self, worker: &Worker, a: &Attempt) -> Outcome {
        let auth = match &worker.output_auth {
            Some(h) => Some(h.as_bytes()),
            None => a.auth.as_deref(),
        };
        super::sender::post(
            worker,
            &mut self.client,
            a.kind,
            &a.query,
            auth,
            &[&a.body],
            a.points,
            &mut self.gz,
        )
    }

    fn ping(&mut self, worker: &Worker) -> bool {
        super::sender::ping(worker, &mut self.probe)
    }
}

/// What an answer to a replayed attempt means for the writes it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The backend has them.
    Done,
    /// The backend refused them for good: drop, log, count.
    Dropped,
    /// Keep them and try again after a wait.
    Retry,
}

pub(crate) fn verdict(outcome: &Outcome) -> Verdict {
    match outcome {
        Outcome::Delivered | Outcome::Answered { .. } => Verdict::Done,
        Outcome::Rejected { body, .. } if is_database_not_found(body) => Verdict::Retry,
        Outcome::Rejected { .. } => Verdict::Dropped,
        Outcome::Spooled | Outcome::Failed { .. } => Verdict::Retry,
    }
}

/// A 1.x backend says `database not found: "x"`; a 2.x one `bucket "x" not found`; a
/// 3.x one `database not found`. Each may be created or restored any moment.
pub(super) fn is_database_not_found(body: &[u8]) -> bool {
    let has = |needle: &[u8]| memchr::memmem::find(body, needle).is_some();
    // In JSON the bucket's quotes come escaped: match the words around them.
    has(b"database not found") || (has(b"bucket ") && has(b" not found"))
}

/// The wait before the next attempt after failures: from [`INITIAL_BACKOFF`] (or the
/// cap, when lower), doubling up to the cap; back to the start after a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Backoff {
        Backoff {
            next: INITIAL_BACKOFF.min(max),
            max,
        }
    }

    /// An attempt failed: how long to wait now.
    pub(crate) fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    pub(crate) fn succeeded(&mut self) {
        self.next = INITIAL_BACKOFF.min(self.max);
    }
}

/// Drain the queue in order until shutdown: with a spool, what is left stays on disk
/// for the next start; RAM-held writes are retried until the shutdown deadline.
pub(crate) fn replay_loop(worker: &Worker, target: &mut impl Target) {
    let mut backoff = Backoff::new(worker.output.max_delay_interval);
    let mut peeked: Vec<Record> = Vec::new();
    loop {
        worker.dropped.flush_if_due();
        let attempt = {
            let Ok(mut q) = worker.queue.lock() else {
                return;
            };
            if q.is_empty() {
                if q.active {
                    q.active = false;
                    q.oldest = None;
                    worker.stats.queued_since_ms.set(0);
                    worker.pace.caught_up();
                    crate::info!(
                        "backend caught up",
                        listener = worker.listener,
                        backend = worker.output.name
                    );
                }
                if worker.control.closing.load(Ordering::Acquire) {
                    return;
                }
                let _ = worker.queue_ready.wait_timeout(q, super::IDLE_POLL);
                continue;
            }
            if worker.control.closing.load(Ordering::Acquire) {
                if matches!(q.store, Store::Disk { .. }) {
                    return;
                }
                if worker.control.past_deadline() {
                    shutdown_leftovers(worker, &mut q);
                    return;
                }
            }
            match next_attempt(worker, &mut q, &mut peeked) {
                Some(a) => a,
                None => continue,
            }
        };
        let outcome = target.send(worker, &attempt);
        match verdict(&outcome) {
            Verdict::Done => {
                worker.stats.replayed_points.add(attempt.points);
            }
            Verdict::Dropped => {
                worker.stats.dropped_rejected.add(attempt.points);
                if let Outcome::Rejected { status, body } = &outcome {
                    crate::error!(
                        "backend rejected a queued write; dropped",
                        listener = worker.listener,
                        backend = worker.output.name,
                        status = status,
                        answer = String::from_utf8_lossy(body),
                        points = attempt.points,
                    );
                }
            }
            Verdict::Retry => {
                worker.stats.retries.inc();
                let wait = backoff.failed();
                wait_unless_up(worker, target, wait);
                continue;
            }
        }
        backoff.succeeded();
        worker.pace.replayed(attempt.body.len());
        finish(worker, attempt.n, &outcome);
    }
}

/// Wait `total` before the next attempt, but stop waiting as soon as a backend that
/// was down answers a probe: catch-up starts when the backend is back, not when the
/// backoff (up to `max-delay-interval`) runs out. A backend that is up and refused
/// the write (`database not found`) gets the whole wait.
fn wait_unless_up(worker: &Worker, target: &mut impl Target, total: Duration) {
    let end = Instant::now() + total;
    let was_down = worker.stats.down.get() != 0;
    let mut next_probe = Instant::now() + super::PROBE_INTERVAL.min(total);
    while Instant::now() < end {
        if worker.control.past_deadline() {
            return;
        }
        if was_down && worker.stats.down.get() == 0 {
            return; // a sender's probe saw it up
        }
        if was_down && Instant::now() >= next_probe {
            next_probe = Instant::now() + super::PROBE_INTERVAL;
            if target.ping(worker) {
                return;
            }
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
}
