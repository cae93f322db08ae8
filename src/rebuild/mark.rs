//! What the write path and the read path know of a rebuild: one [`Mark`] per backend
//! server, shared by every output that names the same host and port.
//!
//! Reads skip a marked server. Writes to it are logged while a rebuild runs, so the
//! rebuild can tell whether a live write reached the target while a window was being
//! copied there (and copy that window again, see `copy`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::batch::SharedBatch;

/// Writes logged for one window at most; past this the log stops keeping them and the
/// window counts as touched, which only costs one more copy of it.
const MAX_LOGGED: usize = 50_000;

#[derive(Default)]
pub struct Mark {
    /// A rebuild of this server is running or failed: it may lack data, so it serves
    /// no read, and live writes to it are logged.
    active: AtomicBool,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    writes: VecDeque<SharedBatch>,
    /// More than [`MAX_LOGGED`] writes came since the last [`Mark::start_window`].
    overflowed: bool,
}

/// The live writes a window's copy may have overwritten.
pub enum Touched {
    Writes(Vec<SharedBatch>),
    /// Too many to keep: assume the window was touched.
    TooMany,
}

impl Mark {
    /// The server serves no read and has its writes logged from now on.
    pub fn activate(&self) {
        self.active.store(true, Ordering::SeqCst);
    }

    pub fn deactivate(&self) {
        self.active.store(false, Ordering::SeqCst);
        if let Ok(mut log) = self.log.lock() {
            *log = Log::default();
        }
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Called by the loop for each change it hands to this server, after the change's
    /// number is registered with every backend and before it is sent to any. The lock
    /// orders it against [`Mark::start_window`]: a change logged after a window started
    /// is looked at by that window; one not logged was registered before the window
    /// started, so waiting for the source to apply it covers it.
    pub fn record(&self, batch: &SharedBatch) {
        if !self.active.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut log) = self.log.lock() else {
            return;
        };
        if log.writes.len() >= MAX_LOGGED {
            log.overflowed = true;
            log.writes.clear();
        } else if !log.overflowed {
            log.writes.push_back(batch.clone());
        }
    }

    /// A window's copy begins: forget what was logged before.
    pub fn start_window(&self) {
        if let Ok(mut log) = self.log.lock() {
            *log = Log::default();
        }
    }

    /// What was logged since [`Mark::start_window`].
    pub fn take(&self) -> Touched {
        let Ok(mut log) = self.log.lock() else {
            return Touched::TooMany;
        };
        let log = std::mem::take(&mut *log);
        if log.overflowed {
            Touched::TooMany
        } else {
            Touched::Writes(log.writes.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Batch, Kind};
    use std::sync::Arc;

    fn batch() -> SharedBatch {
        Arc::new(Batch {
            kind: Kind::Write,
            query: "db=a".into(),
            auth: None,
            body: b"m v=1 1\n".to_vec(),
            points: 1,
            seq: 1,
        })
    }

    #[test]
    fn only_an_active_mark_logs_and_a_window_sees_only_its_own_writes() {
        let mark = Mark::default();
        mark.record(&batch());
        assert!(matches!(mark.take(), Touched::Writes(w) if w.is_empty()));
        mark.activate();
        mark.record(&batch());
        mark.start_window();
        mark.record(&batch());
        assert!(matches!(mark.take(), Touched::Writes(w) if w.len() == 1));
        assert!(matches!(mark.take(), Touched::Writes(w) if w.is_empty()));
    }

    #[test]
    fn too_many_writes_count_as_touched() {
        let mark = Mark::default();
        mark.activate();
        mark.start_window();
        for _ in 0..=MAX_LOGGED {
            mark.record(&batch());
        }
        assert!(matches!(mark.take(), Touched::TooMany));
        mark.start_window();
        assert!(matches!(mark.take(), Touched::Writes(w) if w.is_empty()));
    }
}
