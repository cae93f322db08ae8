//! Sequence analysis: which generated lines arrived, how often, and in what order.
//!
//! Lines are grouped by run id (the `gen` tag) and, within a run, by stream (one
//! generator connection or UDP sender). Each stream keeps a growable bitmap of the
//! sequence numbers seen, so the cost per line is one hash lookup per batch plus one bit
//! test. Definitions, per stream:
//! - *unique*: distinct sequence numbers seen; `lost = lines sent − unique` over a run.
//! - *duplicate*: a sequence number seen before (a retry or a replay).
//! - *reordered*: a first arrival whose sequence number is lower than that of the line
//!   seen just before it on the same stream. Duplicates are never also counted here.
//! - *gaps*: numbers below the stream's highest seen that have not arrived (yet).

use std::collections::HashMap;

/// Highest sequence number tracked per stream (2^30 lines, a 128 MiB bitmap at most);
/// larger values are counted as `out_of_range` so a stray line cannot exhaust memory.
pub const MAX_TRACKED_SEQ: u64 = 1 << 30;

/// One observed line: run id as a byte range into the body it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obs {
    pub run_start: u32,
    pub run_end: u32,
    pub stream: u64,
    pub seq: u64,
}

/// What is known about one stream.
#[derive(Debug, Default)]
struct StreamState {
    /// Bit `n` set ⇔ sequence number `n` has arrived.
    bits: Vec<u64>,
    /// Sequence number of the most recent first arrival, for the reorder check.
    last: Option<u64>,
    max: u64,
    unique: u64,
}

/// Per-run totals, as `/stats` reports them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    pub lines: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Highest sequence number seen on any stream of the run.
    pub max_seq: u64,
    pub streams: u64,
    pub gaps: u64,
    pub out_of_range: u64,
}

/// Scans `payload` into `obs` (cleared first); returns (lines, lines without markers).
pub fn collect(payload: &[u8], obs: &mut Vec<Obs>) -> (u64, u64) {
    obs.clear();
    let base = payload.as_ptr() as usize;
    let mut untagged = 0u64;
    let lines = crate::scan::for_each_line(payload, |line| match crate::scan::marker(line) {
        Some(m) => {
            // The run id borrows from `payload`; keep it as offsets so the batch can be
            // applied under the lock without copying ids.
            let run_start = (m.run.as_ptr() as usize - base) as u32;
            obs.push(Obs {
                run_start,
                run_end: run_start + m.run.len() as u32,
                stream: m.stream,
                seq: m.seq,
            });
        }
        None => untagged += 1,
    });
    (lines, untagged)
}

/// Counters and streams of one run.
#[derive(Debug, Default)]
pub struct RunTracker {
    streams: HashMap<u64, StreamState>,
    lines: u64,
    duplicates: u64,
    reordered: u64,
    out_of_range: u64,
}

impl RunTracker {
    /// Records the arrival of `seqs` on `stream`, in arrival order.
    pub fn observe(&mut self, stream: u64, seqs: impl IntoIterator<Item = u64>) {
        let st = self.streams.entry(stream).or_default();
        for seq in seqs {
            self.lines += 1;
            if seq >= MAX_TRACKED_SEQ {
                self.out_of_range += 1;
                continue;
            }
            let word = (seq / 64) as usize;
            let bit = 1u64 << (seq % 64);
            if word >= st.bits.len() {
                // Doubling keeps growth amortised when a stream's numbers climb steadily.
                let want = (word + 1).max(st.bits.len() * 2);
                st.bits.resize(want, 0);
            }
            if st.bits[word] & bit != 0 {
                self.duplicates += 1;
                continue;
            }
            st.bits[word] |= bit;
            st.unique += 1;
            if st.last.is_some_and(|last| seq < last) {
                self.reordered += 1;
            }
            st.last = Some(seq);
            st.max = st.max.max(seq);
        }
    }

    pub fn stats(&self) -> RunStats {
        let mut s = RunStats {
            lines: self.lines,
            duplicates: self.duplicates,
            reordered: self.reordered,
            out_of_range: self.out_of_range,
            streams: self.streams.len() as u64,
            ..RunStats::default()
        };
        for st in self.streams.values() {
            s.unique += st.unique;
            if st.unique > 0 {
                s.max_seq = s.max_seq.max(st.max);
                s.gaps += st.max + 1 - st.unique;
            }
        }
        s
    }
}

/// All runs the sink has seen.
#[derive(Debug, Default)]
pub struct SeqTracker {
    runs: HashMap<Vec<u8>, RunTracker>,
}

impl SeqTracker {
    /// The tracker of run `run`, created on first sight.
    pub fn run_mut(&mut self, run: &[u8]) -> &mut RunTracker {
        if !self.runs.contains_key(run) {
            self.runs.insert(run.to_vec(), RunTracker::default());
        }
        self.runs
            .get_mut(run)
            .expect("run tracker was inserted just above")
    }

    /// Applies a batch of observations whose run ids point into `body`. Consecutive
    /// lines of one run and stream are applied with one lookup.
    pub fn apply(&mut self, body: &[u8], obs: &[Obs]) {
        let mut i = 0;
        while i < obs.len() {
            let first = obs[i];
            let run = &body[first.run_start as usize..first.run_end as usize];
            let mut j = i + 1;
            while j < obs.len()
                && obs[j].stream == first.stream
                && &body[obs[j].run_start as usize..obs[j].run_end as usize] == run
            {
                j += 1;
            }
            self.run_mut(run)
                .observe(first.stream, obs[i..j].iter().map(|o| o.seq));
            i = j;
        }
    }

    /// Every run's totals, sorted by run id.
    pub fn snapshot(&self) -> Vec<(String, RunStats)> {
        let mut v: Vec<(String, RunStats)> = self
            .runs
            .iter()
            .map(|(k, r)| (String::from_utf8_lossy(k).into_owned(), r.stats()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn clear(&mut self) {
        self.runs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_nothing_to_report() {
        let mut r = RunTracker::default();
        r.observe(1, 0..1000);
        let s = r.stats();
        assert_eq!(
            (s.lines, s.unique, s.duplicates, s.reordered),
            (1000, 1000, 0, 0)
        );
        assert_eq!((s.max_seq, s.streams, s.gaps), (999, 1, 0));
    }

    #[test]
    fn lost_lines_show_as_gaps_and_missing_unique() {
        let mut r = RunTracker::default();
        r.observe(0, (0..100).filter(|n| n % 10 != 3));
        let s = r.stats();
        assert_eq!(s.unique, 90);
        assert_eq!(s.gaps, 10);
        // What a script computes: sent − unique.
        assert_eq!(100 - s.unique, 10);
    }

    #[test]
    fn duplicates_are_counted_once_and_not_as_reorders() {
        let mut r = RunTracker::default();
        r.observe(0, [0, 1, 2, 3, 1, 2, 4, 4]);
        let s = r.stats();
        assert_eq!((s.lines, s.unique, s.duplicates, s.reordered), (8, 5, 3, 0));
    }

    #[test]
    fn reorder_means_lower_than_the_previous_line_of_the_stream() {
        let mut r = RunTracker::default();
        r.observe(0, [0, 1, 5, 2, 3, 4, 6]);
        let s = r.stats();
        assert_eq!(s.reordered, 1, "only 2 after 5 goes backwards");
        assert_eq!((s.unique, s.gaps), (7, 0));
    }

    #[test]
    fn streams_are_independent() {
        let mut r = RunTracker::default();
        r.observe(0, [0, 1, 2]);
        r.observe(1, [0, 1]);
        r.observe(0, [3]);
        r.observe(1, [2, 3, 4]);
        let s = r.stats();
        assert_eq!(
            (s.unique, s.duplicates, s.reordered, s.streams),
            (9, 0, 0, 2)
        );
        assert_eq!(s.max_seq, 4);
    }

    #[test]
    fn huge_sequence_numbers_do_not_allocate() {
        let mut r = RunTracker::default();
        r.observe(0, [MAX_TRACKED_SEQ, u64::MAX, 3]);
        let s = r.stats();
        assert_eq!((s.lines, s.out_of_range, s.unique), (3, 2, 1));
    }

    #[test]
    fn apply_groups_by_run_and_stream() {
        let body = b"r1r2";
        let o = |run: u32, stream, seq| Obs {
            run_start: run * 2,
            run_end: run * 2 + 2,
            stream,
            seq,
        };
        let mut t = SeqTracker::default();
        t.apply(
            body,
            &[o(0, 0, 0), o(0, 0, 1), o(1, 0, 0), o(0, 1, 0), o(0, 0, 1)],
        );
        let snap = t.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].0, "r1");
        assert_eq!(
            (
                snap[0].1.lines,
                snap[0].1.unique,
                snap[0].1.duplicates,
                snap[0].1.streams
            ),
            (4, 3, 1, 2)
        );
        assert_eq!((snap[1].0.as_str(), snap[1].1.unique), ("r2", 1));
    }
}
