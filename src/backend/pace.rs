//! Live writes against a catch-up (`catch-up-live-percent`).

use super::*;

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
pub(super) struct Pace {
    /// Percent of replayed bytes live writes may add; 0: pacing is off.
    pub(super) percent: i64,
    /// Bytes live writes may still add; replay adds to it, live writes take from it.
    pub(super) credit: AtomicI64,
    /// Unix ms of the last replayed batch the backend took.
    pub(super) last_replay_ms: AtomicU64,
}

/// Most credit that can pile up (8 MiB), so a burst after a quiet spell stays small.
pub(super) const CATCH_UP_CREDIT_MAX: i64 = 8 << 20;
/// A replay that delivered nothing for this long (1 s) is stuck (the backend refuses
/// the queue's head, say), not catching up: live writes are not held for it.
pub(super) const CATCH_UP_STALL_MS: u64 = 1_000;

impl Pace {
    /// The replay delivered `bytes`.
    pub(super) fn replayed(&self, bytes: usize) {
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

    pub(super) fn caught_up(&self) {
        self.credit.store(0, Ordering::Relaxed);
    }
}
