//! Where writes wait when a buffering backend's channel is full, in order, until its
//! worker queues them; and what a write that cannot wait anywhere becomes (a counted drop).

use super::*;

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
pub(super) struct Overflow {
    pub(super) active: AtomicBool,
    /// Jobs waiting, in order.
    pub(super) jobs: Mutex<VecDeque<Job>>,
    /// Body bytes in `jobs`; changed under the lock, read without it.
    pub(super) bytes: AtomicUsize,
    /// Past this many bytes the backend is congested.
    pub(super) limit: usize,
}

/// How many body bytes may wait in one backend's overflow list before loops hold new
/// writes: 64 MiB (or the backend's RAM buffer or spool size when smaller).
pub(super) const OVERFLOW_LIMIT: usize = 64 << 20;

/// What became of a write offered to the overflow list.
pub(super) enum Offer {
    /// Queued behind the others.
    Taken,
    /// The list is not active any more: use the channel.
    Declined(Job),
}

impl Overflow {
    pub(super) fn offer(&self, job: Job, activate: bool) -> Offer {
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
    pub(super) fn take_all(&self) -> VecDeque<Job> {
        let Ok(mut jobs) = self.jobs.lock() else {
            return VecDeque::new();
        };
        self.bytes.store(0, Ordering::Relaxed);
        self.active.store(false, Ordering::Release);
        std::mem::take(&mut *jobs)
    }

    pub(super) fn congested(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) > self.limit
    }
}

/// One line per 5 s at most, however many writes a saturated channel turns away.
pub(super) static QUEUE_FULL_LOG: crate::log::RateLimit = crate::log::RateLimit::every_interval();

/// A write the backend will never see: counted, logged, and its client told.
pub(super) fn drop_job(handle: &BackendHandle, job: Job) {
    let (backend, stats) = (&handle.name, &handle.stats);
    handle.unapplied.done(job.batch.seq);
    stats.dropped_queue_full.add(job.batch.points as u64);
    handle.dropped.record(&job.batch);
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
