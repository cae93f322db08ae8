//! Which data each backend lacks because the relay gave it up: per database and
//! retention policy, the time ranges of every write dropped for the backend (a full
//! channel, buffer or spool, a spool error, `spool-max-age`, the shutdown deadline).
//! The drop counters say how much was lost; these ranges say where, so an operator can
//! repair the backend (`verify --dropped`, or copy the ranges from a replica).
//!
//! Recording is in memory, under one short lock, because drops are recorded by the
//! event loops themselves (a full channel) and come in bursts of thousands a second.
//! The backend's own threads write the file ([`DroppedLog::flush_if_due`]) at most
//! once per [`FLUSH_INTERVAL_MS`], and once more when the backend stops.
//!
//! The file, `<spool-dir>/<listener>/<output>/dropped-ranges`, is text: a version line,
//! then one range per line, tab-separated, names percent-encoded:
//!
//! ```text
//! # influx-relay dropped ranges 1
//! <database>\t<retention policy>\t<from ns>\t<until ns>\t<points>\t<first dropped ms>\t<last dropped ms>
//! ```
//!
//! It is replaced whole (temporary file, fsync, rename), so a crash leaves the old
//! or the new list, never half of one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::batch::{Batch, Kind};
use crate::config::Precision;
use crate::http::write::{percent_decode, percent_encode_into, query_pairs};
use crate::lineproto::split_lines;

/// File name of the list, in the output's spool directory.
pub const FILE_NAME: &str = "dropped-ranges";
/// First line of the file; another first line means another format (or damage).
const HEADER: &str = "# influx-relay dropped ranges 1";
/// Ranges kept per backend, at most (1000). Past that the two closest ranges of a
/// database are merged into one that also covers the gap between them: the list
/// then claims more is missing than is, never less.
pub const MAX_RANGES: usize = 1000;
/// Shortest time between two writes of the file while drops keep coming (1 s).
pub const FLUSH_INTERVAL_MS: u64 = 1000;

/// A span of time in which writes for one database and retention policy were given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedRange {
    pub database: String,
    /// As the writes named it; `""` is the database's default retention policy.
    pub retention_policy: String,
    /// Nanoseconds since the epoch, the earliest dropped point.
    pub from_ns: i64,
    /// Exclusive: just past the latest dropped point.
    pub until_ns: i64,
    /// Points dropped in the range. After a [`DroppedLog::forget`] cut a range in two,
    /// each part keeps the count of the whole: an upper bound.
    pub points: u64,
    /// Unix milliseconds of the first and the last drop that fell in the range.
    pub first_dropped_ms: u64,
    pub last_dropped_ms: u64,
}

/// One range as the map keeps it (keyed by `from_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    until_ns: i64,
    points: u64,
    first_dropped_ms: u64,
    last_dropped_ms: u64,
}

/// The ranges of one database and retention policy, disjoint and not touching.
#[derive(Debug, Default)]
struct Series {
    database: String,
    retention_policy: String,
    spans: BTreeMap<i64, Span>,
}

#[derive(Debug, Default)]
struct Ranges {
    /// Few: one per database and retention policy that lost writes.
    series: Vec<Series>,
}

/// The dropped ranges of one backend, in memory and in their file.
pub struct DroppedLog {
    path: PathBuf,
    ranges: Mutex<Ranges>,
    /// Changed since the file was last written.
    dirty: AtomicBool,
    /// Unix ms of the last write of the file (or of the last attempt).
    flushed_ms: AtomicU64,
    /// Held while the file is written, so two threads never share the temporary file.
    writing: Mutex<()>,
}

static FLUSH_ERROR_LOG: crate::log::RateLimit = crate::log::RateLimit::every_interval();

impl DroppedLog {
    /// The list kept at `path`, with what an earlier run recorded there. A file that
    /// cannot be read as such a list is logged and set aside (renamed with `.damaged`
    /// appended) rather than trusted; its lines that do not parse are skipped.
    pub fn open(path: PathBuf) -> DroppedLog {
        let log = DroppedLog {
            path,
            ranges: Mutex::new(Ranges::default()),
            dirty: AtomicBool::new(false),
            flushed_ms: AtomicU64::new(0),
            writing: Mutex::new(()),
        };
        match std::fs::read(&log.path) {
            Ok(bytes) => log.load(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => crate::error!(
                "cannot read the dropped ranges of an earlier run; they are not shown",
                path = log.path.display(),
                error = e,
            ),
        }
        log
    }

    fn load(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            let aside = self.path.with_file_name(format!("{FILE_NAME}.damaged"));
            let moved = std::fs::rename(&self.path, &aside).is_ok();
            crate::error!(
                "dropped ranges file is not one this relay wrote; ignored",
                path = self.path.display(),
                moved_to = if moved {
                    aside.display().to_string()
                } else {
                    "(not moved)".to_string()
                },
            );
            return;
        }
        let Ok(mut ranges) = self.ranges.lock() else {
            return;
        };
        let mut damaged = 0u64;
        for line in lines.filter(|l| !l.is_empty() && !l.starts_with('#')) {
            match parse_line(line) {
                Some(r) => ranges.insert(&r.database, &r.retention_policy, r.from_ns, span(&r)),
                None => damaged += 1,
            }
        }
        if damaged > 0 {
            crate::error!(
                "damaged lines in the dropped ranges file skipped",
                path = self.path.display(),
                lines = damaged,
            );
        }
    }

    /// A write given up for this backend. Its database and retention policy come from
    /// its query, its range from the timestamps of its lines, read in its `precision`.
    /// A statement changes data at times its text does not bound (`DELETE`, `DROP
    /// SERIES`…), so a dropped statement records all time for its database. So does a
    /// write with a line whose timestamp cannot be read (a stored body never has one):
    /// recording too much is safe, too little is not.
    ///
    /// No file I/O: this runs on event loops.
    pub fn record(&self, batch: &Batch) {
        self.record_parts(
            batch.kind,
            &batch.query,
            &batch.body,
            batch.points as u64,
            crate::metrics::unix_ms(),
        );
    }

    /// [`DroppedLog::record`] for a write known by its parts (a spool record).
    pub fn record_parts(&self, kind: Kind, query: &str, body: &[u8], points: u64, now_ms: u64) {
        let Some(Covered {
            database,
            retention_policy,
            from_ns,
            until_ns,
        }) = covered(kind, query, body)
        else {
            return;
        };
        let Ok(mut ranges) = self.ranges.lock() else {
            return;
        };
        let span = Span {
            until_ns,
            points,
            first_dropped_ms: now_ms,
            last_dropped_ms: now_ms,
        };
        ranges.insert(&database, &retention_policy, from_ns, span);
        self.dirty.store(true, Ordering::Release);
    }

    /// Every range, by database, retention policy and time.
    pub fn ranges(&self) -> Vec<DroppedRange> {
        let Ok(ranges) = self.ranges.lock() else {
            return Vec::new();
        };
        let mut out: Vec<DroppedRange> = ranges
            .series
            .iter()
            .flat_map(|s| {
                s.spans.iter().map(|(from_ns, span)| DroppedRange {
                    database: s.database.clone(),
                    retention_policy: s.retention_policy.clone(),
                    from_ns: *from_ns,
                    until_ns: span.until_ns,
                    points: span.points,
                    first_dropped_ms: span.first_dropped_ms,
                    last_dropped_ms: span.last_dropped_ms,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.database, &a.retention_policy, a.from_ns).cmp(&(
                &b.database,
                &b.retention_policy,
                b.from_ns,
            ))
        });
        out
    }

    /// How many ranges there are (for `/metrics`, without copying them).
    pub fn len(&self) -> usize {
        self.ranges
            .lock()
            .map_or(0, |r| r.series.iter().map(|s| s.spans.len()).sum())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[from_ns, until_ns)` of `database` (every retention policy) was repaired: cut it
    /// out of the ranges, keeping what lies outside. Writes the file before returning,
    /// so this is for a thread that may wait on the disk, not an event loop.
    pub fn forget(&self, database: &str, from_ns: i64, until_ns: i64) {
        if from_ns >= until_ns {
            return;
        }
        if let Ok(mut ranges) = self.ranges.lock() {
            for s in ranges.series.iter_mut().filter(|s| s.database == database) {
                s.cut(from_ns, until_ns);
            }
            ranges.series.retain(|s| !s.spans.is_empty());
        }
        self.dirty.store(true, Ordering::Release);
        self.flush();
    }

    /// Write the file if something changed and the last write is [`FLUSH_INTERVAL_MS`]
    /// old: cheap when nothing did, so backend threads call it on every turn.
    pub fn flush_if_due(&self) {
        if !self.dirty.load(Ordering::Acquire) {
            return;
        }
        let now = crate::metrics::unix_ms();
        let last = self.flushed_ms.load(Ordering::Relaxed);
        if now < last.saturating_add(FLUSH_INTERVAL_MS)
            || self
                .flushed_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.flush();
    }

    /// Write the file now if something changed since it was last written. A failure
    /// is logged and retried at the next flush.
    pub fn flush(&self) {
        let Ok(_writing) = self.writing.lock() else {
            return;
        };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        self.flushed_ms
            .store(crate::metrics::unix_ms(), Ordering::Relaxed);
        let text = self.render();
        if let Err(e) = crate::spool::replace_file(&self.path, text.as_bytes()) {
            self.dirty.store(true, Ordering::Release);
            if let Some(suppressed) = FLUSH_ERROR_LOG.check() {
                crate::error!(
                    "cannot write the dropped ranges file; kept in memory, retried",
                    path = self.path.display(),
                    error = e,
                    suppressed = suppressed,
                );
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::from(HEADER);
        out.push('\n');
        for r in self.ranges() {
            percent_encode_into(&mut out, &r.database);
            out.push('\t');
            percent_encode_into(&mut out, &r.retention_policy);
            out.push_str(&format!(
                "\t{}\t{}\t{}\t{}\t{}\n",
                r.from_ns, r.until_ns, r.points, r.first_dropped_ms, r.last_dropped_ms
            ));
        }
        out
    }
}

fn span(r: &DroppedRange) -> Span {
    Span {
        until_ns: r.until_ns,
        points: r.points,
        first_dropped_ms: r.first_dropped_ms,
        last_dropped_ms: r.last_dropped_ms,
    }
}

fn parse_line(line: &str) -> Option<DroppedRange> {
    let mut f = line.split('\t');
    let r = DroppedRange {
        database: percent_decode(f.next()?),
        retention_policy: percent_decode(f.next()?),
        from_ns: f.next()?.parse().ok()?,
        until_ns: f.next()?.parse().ok()?,
        points: f.next()?.parse().ok()?,
        first_dropped_ms: f.next()?.parse().ok()?,
        last_dropped_ms: f.next()?.parse().ok()?,
    };
    (f.next().is_none() && r.from_ns < r.until_ns).then_some(r)
}

impl Ranges {
    fn insert(&mut self, database: &str, retention_policy: &str, from_ns: i64, span: Span) {
        let i = match self
            .series
            .iter()
            .position(|s| s.database == database && s.retention_policy == retention_policy)
        {
            Some(i) => i,
            None => {
                self.series.push(Series {
                    database: database.to_string(),
                    retention_policy: retention_policy.to_string(),
                    spans: BTreeMap::new(),
                });
                self.series.len() - 1
            }
        };
        self.series[i].insert(from_ns, span);
        while self.len() > MAX_RANGES && self.merge_closest() {}
    }

    fn len(&self) -> usize {
        self.series.iter().map(|s| s.spans.len()).sum()
    }

    /// Merge the two neighbouring ranges with the smallest gap, over every series;
    /// `false` when no series has two ranges (then the list stays longer: one range
    /// per database and retention policy cannot be merged any further).
    fn merge_closest(&mut self) -> bool {
        let mut best: Option<(i128, usize, i64)> = None;
        for (i, s) in self.series.iter().enumerate() {
            let mut prev: Option<&Span> = None;
            for (from, span) in &s.spans {
                if let Some(p) = prev {
                    let gap = i128::from(*from) - i128::from(p.until_ns);
                    if best.is_none_or(|(g, _, _)| gap < g) {
                        best = Some((gap, i, *from));
                    }
                }
                prev = Some(span);
            }
        }
        let Some((_, i, from)) = best else {
            return false;
        };
        let spans = &mut self.series[i].spans;
        let Some(later) = spans.remove(&from) else {
            return false;
        };
        if let Some((_, earlier)) = spans.range_mut(..from).next_back() {
            *earlier = earlier.joined(&later);
        }
        true
    }
}

impl Span {
    fn joined(&self, other: &Span) -> Span {
        Span {
            until_ns: self.until_ns.max(other.until_ns),
            points: self.points.saturating_add(other.points),
            first_dropped_ms: self.first_dropped_ms.min(other.first_dropped_ms),
            last_dropped_ms: self.last_dropped_ms.max(other.last_dropped_ms),
        }
    }
}

impl Series {
    /// Add `[from_ns, span.until_ns)`, merged with every range it overlaps or touches.
    fn insert(&mut self, mut from_ns: i64, mut span: Span) {
        // Ranges starting at or before the new one's end are the candidates; the
        // latest of them is checked first, and merging stops at the first that ends
        // before the new range starts (the ranges are disjoint and ordered).
        while let Some((&f, s)) = self.spans.range(..=span.until_ns).next_back() {
            if s.until_ns < from_ns {
                break;
            }
            let s = *s;
            self.spans.remove(&f);
            from_ns = from_ns.min(f);
            span = span.joined(&s);
        }
        self.spans.insert(from_ns, span);
    }

    /// Remove `[from_ns, until_ns)` from every range.
    fn cut(&mut self, from_ns: i64, until_ns: i64) {
        let hit: Vec<(i64, Span)> = self
            .spans
            .range(..until_ns)
            .filter(|(_, s)| s.until_ns > from_ns)
            .map(|(f, s)| (*f, *s))
            .collect();
        for (f, s) in hit {
            self.spans.remove(&f);
            if f < from_ns {
                self.spans.insert(
                    f,
                    Span {
                        until_ns: from_ns,
                        ..s
                    },
                );
            }
            if s.until_ns > until_ns {
                self.spans.insert(until_ns, s);
            }
        }
    }
}

/// What a write or statement may change: its database and retention policy (from its
/// query string) and the span of its timestamps.
pub struct Covered {
    pub database: String,
    /// `""`: the database's default.
    pub retention_policy: String,
    pub from_ns: i64,
    /// Exclusive.
    pub until_ns: i64,
}

/// What `body` (sent with `query`) covers: all time for a statement, or for a write
/// with a timestamp that cannot be read, since what it changed has no bounds that can
/// be read; `None` for a write without points.
pub fn covered(kind: Kind, query: &str, body: &[u8]) -> Option<Covered> {
    let mut database = String::new();
    let mut retention_policy = String::new();
    let mut unit = 1;
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "db" => database = value,
            "rp" => retention_policy = value,
            "precision" => {
                unit = Precision::parse(&value)
                    .unwrap_or_default()
                    .nanos_per_unit()
            }
            _ => {}
        }
    }
    let (from_ns, until_ns) = match kind {
        Kind::Statement => (i64::MIN, i64::MAX),
        Kind::Write => match time_span(body, unit) {
            // At the very end of time `until` cannot pass the latest point: the range
            // starts one earlier instead, so it is never empty.
            Some((min, max)) => (min.min(i64::MAX - 1), max.saturating_add(1)),
            None if body.is_empty() => return None,
            None => (i64::MIN, i64::MAX),
        },
    };
    Some(Covered {
        database,
        retention_policy,
        from_ns,
        until_ns,
    })
}

/// The earliest and latest timestamp of `body`, in nanoseconds, its timestamps being
/// in units of `unit` ns; `None` when a point line has no timestamp that can be read
/// (or there is no point line). Lines are split as the scanner splits them, so a
/// newline inside a string value does not end one.
fn time_span(body: &[u8], unit: i64) -> Option<(i64, i64)> {
    let mut span: Option<(i64, i64)> = None;
    for line in split_lines(body) {
        let text = line.text();
        match text.iter().find(|b| !matches!(b, b' ' | b'\t')) {
            None | Some(b'#') => continue,
            Some(_) => {}
        }
        // Out of range once scaled: the farthest time an i64 holds, which only widens.
        let ns = trailing_timestamp(text)?.saturating_mul(unit);
        span = Some(span.map_or((ns, ns), |(lo, hi)| (lo.min(ns), hi.max(ns))));
    }
    span
}

/// The timestamp ending a point line: the last blank-separated token, an optional
/// `-` and digits. `None` when the line does not end so, or the number does not fit.
fn trailing_timestamp(text: &[u8]) -> Option<i64> {
    let end = text.len()
        - text
            .iter()
            .rev()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
    let t = &text[..end];
    let digits = t.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let mut start = t.len() - digits;
    let negative = start > 0 && t[start - 1] == b'-';
    if negative {
        start -= 1;
    }
    if start == 0 || !matches!(t[start - 1], b' ' | b'\t') {
        return None;
    }
    let mut v: i64 = 0;
    for d in &t[t.len() - digits..] {
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if negative {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(kind: Kind, query: &str, body: &str, points: usize) -> Batch {
        Batch {
            kind,
            query: query.into(),
            auth: None,
            body: body.as_bytes().to_vec(),
            points,
            seq: 0,
        }
    }

    fn write(query: &str, body: &str) -> Batch {
        let points = body.lines().count();
        batch(Kind::Write, query, body, points)
    }

    /// A log whose file would be in a directory that does not exist yet.
    fn log_in(dir: &tempfile::TempDir) -> DroppedLog {
        DroppedLog::open(dir.path().join("l").join("o").join(FILE_NAME))
    }

    fn spans(log: &DroppedLog) -> Vec<(String, String, i64, i64, u64)> {
        log.ranges()
            .into_iter()
            .map(|r| {
                (
                    r.database,
                    r.retention_policy,
                    r.from_ns,
                    r.until_ns,
                    r.points,
                )
            })
            .collect()
    }

    fn s(
        db: &str,
        rp: &str,
        from: i64,
        until: i64,
        points: u64,
    ) -> (String, String, i64, i64, u64) {
        (db.into(), rp.into(), from, until, points)
    }

    #[test]
    fn a_write_records_its_database_and_time_span() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        log.record(&write(
            "db=my%20db&rp=week",
            "m v=1 30\nm,t=a v=2 10\nm v=3 20\n",
        ));
        assert_eq!(spans(&log), [s("my db", "week", 10, 31, 3)]);
        let r = &log.ranges()[0];
        assert!(r.first_dropped_ms > 0 && r.first_dropped_ms == r.last_dropped_ms);
    }

    #[test]
    fn overlapping_and_touching_ranges_merge_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        log.record(&write("db=a", "m v=1 10\nm v=1 19\n")); // [10, 20)
        log.record(&write("db=a", "m v=1 20\n")); // touches: [10, 21)
        log.record(&write("db=a", "m v=1 15\n")); // inside
        log.record(&write("db=a", "m v=1 40\n")); // apart
        log.record(&write("db=a&rp=r", "m v=1 21\n")); // other rp
        log.record(&write("db=b", "m v=1 21\n")); // other database
        assert_eq!(
            spans(&log),
            [
                s("a", "", 10, 21, 4),
                s("a", "", 40, 41, 1),
                s("a", "r", 21, 22, 1),
                s("b", "", 21, 22, 1)
            ]
        );
        // One write spanning the gap joins both.
        log.record(&write("db=a", "m v=1 5\nm v=1 50\n"));
        assert_eq!(spans(&log)[0], s("a", "", 5, 51, 7));
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn timestamps_are_read_in_the_write_precision() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        for (precision, unit) in [
            ("n", 1),
            ("ns", 1),
            ("u", 1_000),
            ("us", 1_000),
            ("%C2%B5", 1_000),
            ("ms", 1_000_000),
            ("s", 1_000_000_000),
            ("m", 60_000_000_000),
            ("h", 3_600_000_000_000i64),
        ] {
            log.record(&write(
                &format!("db={precision}&precision={precision}"),
                "m v=1 7\n",
            ));
            let r = log
                .ranges()
                .into_iter()
                .find(|r| r.database == precision.replace("%C2%B5", "µ"))
                .unwrap();
            assert_eq!(
                (r.from_ns, r.until_ns),
                (7 * unit, 7 * unit + 1),
                "{precision}"
            );
        }
        // Negative timestamps, and a timestamp that overflows once scaled (saturates).
        log.record(&write("db=neg", "m v=1 -5\nm v=1 -2\n"));
        assert_eq!(
            spans(&log).into_iter().find(|r| r.0 == "neg").unwrap(),
            s("neg", "", -5, -1, 2)
        );
        log.record(&write(
            "db=big&precision=h",
            &format!("m v=1 {}\n", i64::MAX / 2),
        ));
        let big = log
            .ranges()
            .into_iter()
            .find(|r| r.database == "big")
            .unwrap();
        assert_eq!((big.from_ns, big.until_ns), (i64::MAX - 1, i64::MAX));
    }

    #[test]
    fn a_newline_in_a_string_value_does_not_end_the_line() {
        assert_eq!(time_span(b"m s=\"a 99\n b\" 5\n", 1), Some((5, 5)));
        assert_eq!(
            time_span(b"m v=1 5\r\n# c 1\n\nm v=2 6  \n", 1),
            Some((5, 6))
        );
        // A point line without a timestamp makes the span unknown.
        assert_eq!(time_span(b"m v=1 5\nm v=1\n", 1), None);
        assert_eq!(time_span(b"m v=1 99999999999999999999\n", 1), None);
        assert_eq!(time_span(b"", 1), None);
    }

    #[test]
    fn statements_and_unreadable_bodies_record_all_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        log.record(&batch(Kind::Statement, "db=a&q=DELETE+FROM+m", "", 0));
        log.record(&batch(Kind::Statement, "q=DROP+DATABASE+x", "", 0));
        log.record(&write("db=c", "m v=1\n"));
        assert_eq!(
            spans(&log),
            [
                s("", "", i64::MIN, i64::MAX, 0),
                s("a", "", i64::MIN, i64::MAX, 0),
                s("c", "", i64::MIN, i64::MAX, 1)
            ]
        );
    }

    #[test]
    fn forget_cuts_the_repaired_span_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        log.record(&write("db=a", "m v=1 10\nm v=1 99\n")); // [10, 100)
        log.record(&write("db=a&rp=r", "m v=1 10\nm v=1 99\n"));
        log.record(&write("db=a", "m v=1 200\n"));
        log.record(&write("db=b", "m v=1 50\n"));
        log.forget("a", 20, 30);
        log.forget("a", 150, 300);
        assert_eq!(
            spans(&log),
            [
                s("a", "", 10, 20, 2),
                s("a", "", 30, 100, 2),
                s("a", "r", 10, 20, 2),
                s("a", "r", 30, 100, 2),
                s("b", "", 50, 51, 1)
            ]
        );
        log.forget("a", i64::MIN, i64::MAX);
        log.forget("b", 0, 50); // ends where the range starts: nothing to cut
        assert_eq!(spans(&log), [s("b", "", 50, 51, 1)]);
        // Persisted at once.
        let again = DroppedLog::open(log.path.clone());
        assert_eq!(spans(&again), [s("b", "", 50, 51, 1)]);
    }

    #[test]
    fn the_file_round_trips_and_is_written_only_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        log.record(&write("db=a%09b%0A&rp=r%2Fx", "m v=1 -10\nm v=1 20\n"));
        log.record(&batch(Kind::Statement, "db=c", "", 0));
        log.flush_if_due();
        assert!(log.path.exists(), "the directory is created");
        let before = std::fs::read_to_string(&log.path).unwrap();
        // Within the interval a new drop is kept in memory only...
        log.record(&write("db=d", "m v=1 1\n"));
        log.flush_if_due();
        assert_eq!(std::fs::read_to_string(&log.path).unwrap(), before);
        // ...until the next flush (as at shutdown).
        log.flush();
        let again = DroppedLog::open(log.path.clone());
        assert_eq!(again.ranges(), log.ranges());
        assert_eq!(again.ranges()[0].database, "a\tb\n");
        assert_eq!(again.ranges()[0].retention_policy, "r/x");
        assert_eq!(again.len(), 3);
    }

    #[test]
    fn a_damaged_file_is_set_aside_or_its_bad_lines_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"\xff\x00garbage\n1\t2\n").unwrap();
        let log = DroppedLog::open(path.clone());
        assert!(log.is_empty());
        assert!(dir.path().join(format!("{FILE_NAME}.damaged")).exists());
        assert!(!path.exists());

        let good = "a\t\t10\t20\t3\t1\t2";
        let text = format!(
            "{HEADER}\n{good}\nb\t\t10\nc\t\tx\t20\t3\t1\t2\nd\t\t30\t20\t1\t1\t1\n{good}\textra\n"
        );
        std::fs::write(&path, text).unwrap();
        let log = DroppedLog::open(path);
        assert_eq!(spans(&log), [s("a", "", 10, 20, 3)]);
    }

    #[test]
    fn the_list_stays_bounded_by_merging_the_closest_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        // Ranges 10 ns apart, one pair only 2 ns apart.
        for i in 0..MAX_RANGES as i64 {
            log.record(&write("db=a", &format!("m v=1 {}\n", i * 10)));
        }
        log.record(&write("db=b", "m v=1 0\n"));
        assert_eq!(log.len(), MAX_RANGES);
        let r = log.ranges();
        // Two of "a" were merged (all gaps equal: the first pair); nothing is lost:
        // every dropped timestamp is still inside some range.
        for i in 0..MAX_RANGES as i64 {
            assert!(
                r.iter()
                    .any(|r| r.database == "a" && r.from_ns <= i * 10 && i * 10 < r.until_ns),
                "{i}"
            );
        }
        assert_eq!(
            r.iter().map(|r| r.points).sum::<u64>(),
            MAX_RANGES as u64 + 1
        );

        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        for i in 0..MAX_RANGES as i64 {
            log.record(&write("db=a", &format!("m v=1 {}\n", i * 100)));
        }
        log.record(&write("db=a", "m v=1 1002\n")); // closest to [1000, 1001)
        let merged: Vec<_> = spans(&log).into_iter().filter(|r| r.2 == 1000).collect();
        assert_eq!(merged, [s("a", "", 1000, 1003, 2)]);
    }

    #[test]
    fn record_never_panics_on_any_body_or_query() {
        use proptest::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        let alphabet = prop::sample::select(b" \t\n\r\"\\=,-#0123456789mv".to_vec());
        proptest!(|(
            body in prop::collection::vec(prop_oneof![any::<u8>(), alphabet], 0..200),
            query in ".{0,40}",
            statement in any::<bool>(),
        )| {
            let kind = if statement { Kind::Statement } else { Kind::Write };
            let points = memchr::memchr_iter(b'\n', &body).count() as u64;
            log.record_parts(kind, &query, &body, points, 1);
            for r in log.ranges() {
                prop_assert!(r.from_ns < r.until_ns);
            }
        });
        assert!(log.len() <= MAX_RANGES);
    }
}
