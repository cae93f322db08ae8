//! Read-your-writes: which backends have applied every change the relay acknowledged.
//!
//! Every change a client waits for (a `/write` body, a schema or data statement) takes
//! the next number of one relay-wide sequence ([`Changes::next`]) before it is handed
//! to any backend. Each backend keeps the numbers it was given and has not finished
//! ([`Unapplied`]): in its channel, on the wire, in its retry queue or spool. When the
//! loop answers a change with a 2xx, the change's number raises the acknowledged
//! watermark ([`Changes::acknowledge`]). A read that arrives when the watermark is `w`
//! may be served by a backend whose oldest unfinished number is above `w`: that
//! backend has finished every change numbered `w` or lower, so every change a client
//! was told had succeeded is visible there.
//!
//! "Finished" is delivered (2xx), rejected (4xx: the backend decided, and will decide
//! the same on a read), or given up for that backend (dropped and counted: it will
//! never arrive, so waiting for it would only block reads forever). Writes recovered
//! from an earlier run's spool carry number 0, below every watermark, so a backend
//! replaying them serves no read until they are through.
//!
//! Costs on the write path: one lock and a map insert per backend when a change is
//! submitted, one lock and a map removal when it finishes — per client request, not
//! per line. A read takes one atomic load per candidate backend.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The relay-wide sequence of changes and the highest one acknowledged.
#[derive(Debug, Default)]
pub struct Changes {
    last: AtomicU64,
    acknowledged: AtomicU64,
}

impl Changes {
    /// Number the next change: 1, 2, … (0 is kept for changes of an earlier run).
    pub fn next(&self) -> u64 {
        self.last.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The number of the latest change so far (0 before the first).
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }

    /// A client was answered 2xx for change `seq`.
    pub fn acknowledge(&self, seq: u64) {
        self.acknowledged.fetch_max(seq, Ordering::AcqRel);
    }

    /// Every change numbered up to this was acknowledged or is still undecided; a read
    /// arriving now must see all acknowledged ones.
    pub fn watermark(&self) -> u64 {
        self.acknowledged.load(Ordering::Acquire)
    }
}

/// What one backend was given and has not finished, by change number.
#[derive(Debug)]
pub struct Unapplied {
    /// Change number → how many jobs with that number are unfinished (a number
    /// repeats only for recovered spool records, all 0).
    open: Mutex<BTreeMap<u64, u64>>,
    /// The smallest key of `open`, `u64::MAX` when empty; written under the lock,
    /// read without it.
    oldest: AtomicU64,
}

impl Default for Unapplied {
    fn default() -> Unapplied {
        Unapplied {
            open: Mutex::new(BTreeMap::new()),
            oldest: AtomicU64::new(u64::MAX),
        }
    }
}

impl Unapplied {
    /// `n` jobs of change `seq` were handed to the backend.
    pub fn add(&self, seq: u64, n: u64) {
        if n == 0 {
            return;
        }
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        *open.entry(seq).or_insert(0) += n;
        self.oldest.fetch_min(seq, Ordering::Release);
    }

    /// One job of change `seq` is finished at the backend.
    pub fn done(&self, seq: u64) {
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        if let std::collections::btree_map::Entry::Occupied(mut e) = open.entry(seq) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
        let oldest = open.keys().next().copied().unwrap_or(u64::MAX);
        self.oldest.store(oldest, Ordering::Release);
    }

    /// The oldest unfinished change, `None` when the backend has finished all it got.
    pub fn oldest(&self) -> Option<u64> {
        let oldest = self.oldest.load(Ordering::Acquire);
        (oldest != u64::MAX).then_some(oldest)
    }

    /// The backend has finished every change numbered `watermark` or lower.
    pub fn has_applied(&self, watermark: u64) -> bool {
        self.oldest.load(Ordering::Acquire) > watermark
    }

    /// Changes given and not finished (for `/status`).
    pub fn len(&self) -> u64 {
        self.open.lock().map(|o| o.values().sum()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.oldest().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_start_at_one_and_the_watermark_only_rises() {
        let c = Changes::default();
        assert_eq!(c.watermark(), 0);
        let (a, b) = (c.next(), c.next());
        assert_eq!((a, b), (1, 2));
        c.acknowledge(b);
        c.acknowledge(a);
        assert_eq!(c.watermark(), 2);
    }

    #[test]
    fn a_backend_has_applied_what_it_finished_and_nothing_older_is_open() {
        let u = Unapplied::default();
        assert!(u.has_applied(u64::MAX - 1));
        u.add(5, 1);
        u.add(7, 1);
        assert!(u.has_applied(4));
        assert!(!u.has_applied(5));
        // Finishing out of order (two senders): 7 done, 5 still open.
        u.done(7);
        assert!(!u.has_applied(6));
        assert_eq!(u.oldest(), Some(5));
        u.done(5);
        assert!(u.has_applied(7));
        assert!(u.is_empty());
    }

    #[test]
    fn recovered_records_block_every_read_until_replayed() {
        let u = Unapplied::default();
        u.add(0, 3);
        assert!(!u.has_applied(0));
        u.done(0);
        u.done(0);
        assert_eq!(u.len(), 1);
        assert!(!u.has_applied(0));
        u.done(0);
        assert!(u.has_applied(0));
    }

    #[test]
    fn finishing_an_unknown_number_changes_nothing() {
        let u = Unapplied::default();
        u.add(3, 1);
        u.done(9);
        assert_eq!(u.oldest(), Some(3));
    }

    proptest::proptest! {
        /// Against a plain list: `oldest` is always the smallest open number.
        #[test]
        fn oldest_matches_a_reference(ops in proptest::collection::vec((0u64..20, proptest::bool::ANY), 0..200)) {
            let u = Unapplied::default();
            let mut reference: Vec<u64> = Vec::new();
            for (seq, add) in ops {
                if add {
                    u.add(seq, 1);
                    reference.push(seq);
                } else if let Some(i) = reference.iter().position(|&s| s == seq) {
                    reference.swap_remove(i);
                    u.done(seq);
                }
                proptest::prop_assert_eq!(u.oldest(), reference.iter().min().copied());
            }
        }
    }
}
