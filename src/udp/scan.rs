//! One datagram → its forwardable lines (sans-I/O).
//!
//! A datagram is split into lines (as for HTTP: `\n` ends a line except inside a quoted
//! string field value), and each line is checked on its own: unlike an HTTP body, a bad
//! line costs only itself. Good lines are stamped (receive time for those without a
//! timestamp, `\r` dropped) and appended to a [`LineBatch`] that remembers where each
//! line ends, so outputs can pack whole lines without scanning again.

use memchr::memchr;

use crate::lineproto::{self, LineKind};

/// Stamped lines of one or more datagrams, shared (in an `Arc`) by every output of a
/// listener.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineBatch {
    /// Lines back to back, each ending in `\n`; a line holds other `\n` only inside a
    /// string field value.
    data: Vec<u8>,
    /// Exclusive end of each line in `data`, ascending; the last equals `data.len()`.
    ends: Vec<u32>,
}

impl LineBatch {
    pub fn with_capacity(bytes: usize, lines: usize) -> LineBatch {
        LineBatch {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(lines),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes held.
    pub fn len_bytes(&self) -> usize {
        self.data.len()
    }

    /// Point lines held (what the counters count).
    pub fn points(&self) -> usize {
        self.ends.len()
    }

    /// The lines, each with its final `\n`.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let line = &self.data[start..end as usize];
            start = end as usize;
            line
        })
    }

    /// A batch of already-forwardable lines (without their `\n`), for tests that
    /// must not depend on the scanner.
    #[cfg(test)]
    pub(crate) fn from_lines(lines: &[&str]) -> LineBatch {
        let mut b = LineBatch::default();
        for line in lines {
            b.data.extend_from_slice(line.as_bytes());
            b.data.push(b'\n');
            b.ends.push(b.data.len() as u32);
        }
        b
    }

    /// Append one checked point line (`text`: no `\n`, no trailing `\r`), with ` ts`
    /// after its trailing blanks if it has no timestamp: the form `stamp_body` gives.
    fn push_point(&mut self, text: &[u8], has_timestamp: bool, ts: i64) {
        if has_timestamp {
            self.data.extend_from_slice(text);
        } else {
            self.data.extend_from_slice(trim_end_blanks(text));
            self.data.push(b' ');
            lineproto::write_timestamp(&mut self.data, ts);
        }
        self.data.push(b'\n');
        // A datagram is at most 64 KiB and a batch is flushed at a fraction of 4 GiB.
        self.ends
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
    }
}

fn trim_end_blanks(text: &[u8]) -> &[u8] {
    let end = text
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &text[..end]
}

/// `raw` without a trailing `\r` (README: HTTP API), as [`lineproto::Line::text`] gives it.
fn text_of(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

/// What one datagram contributed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Point lines appended to the batch.
    pub lines: usize,
    /// Lines dropped because they are not valid line protocol.
    pub bad: usize,
}

/// Check every line of `datagram` and append the good ones to `out`, stamped with `ts`
/// (already in the listener's precision). Blank lines and comments are skipped.
///
/// The lines are those of [`lineproto::split_lines`], found in one pass: each line is
/// first taken to end at the next `\n` and checked. Only a string value can hold a
/// `\n`, and a line cut inside one does not check, so only a line that fails and holds
/// a `"` is split again the quote-aware way (as `check_body` does for HTTP bodies).
pub fn scan_datagram(datagram: &[u8], ts: i64, out: &mut LineBatch) -> Scanned {
    let mut scanned = Scanned::default();
    let mut rest = datagram;
    while !rest.is_empty() {
        let nl = memchr(b'\n', rest).unwrap_or(rest.len());
        let mut raw = &rest[..nl];
        let mut kind = lineproto::check_line(text_of(raw));
        if kind.is_err() && nl < rest.len() && memchr(b'"', raw).is_some() {
            if let Some(line) = lineproto::split_lines(rest).next() {
                if line.raw.len() != raw.len() {
                    raw = line.raw;
                    kind = lineproto::check_line(line.text());
                }
            }
        }
        match kind {
            Err(_) => scanned.bad += 1,
            Ok(LineKind::Blank | LineKind::Comment) => {}
            Ok(LineKind::Point { has_timestamp }) => {
                out.push_point(text_of(raw), has_timestamp, ts);
                scanned.lines += 1;
            }
        }
        rest = rest.get(raw.len() + 1..).unwrap_or_default();
    }
    scanned
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Precision;

    fn lines_of(batch: &LineBatch) -> Vec<String> {
        batch
            .lines()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn split_all(buf: &str) -> Vec<&str> {
        lineproto::split_lines(buf.as_bytes())
            .map(|l| std::str::from_utf8(l.raw).unwrap())
            .collect()
    }

    #[test]
    fn split_ends_lines_at_newlines_outside_strings() {
        assert_eq!(split_all("a v=1\nb v=2\n"), ["a v=1", "b v=2"]);
        assert_eq!(split_all("a v=1\r\nb v=2"), ["a v=1\r", "b v=2"]);
        assert_eq!(
            split_all("a s=\"x\ny\" 5\nb v=2"),
            ["a s=\"x\ny\" 5", "b v=2"]
        );
        assert_eq!(
            split_all("a s=\"q\\\"\n\" 5\nb v=2"),
            ["a s=\"q\\\"\n\" 5", "b v=2"]
        );
        // Quotes in the measurement, tags, field keys and comments are plain bytes.
        assert_eq!(
            split_all("m\"x,t=\"y v=1\nb v=2"),
            ["m\"x,t=\"y v=1", "b v=2"]
        );
        assert_eq!(split_all("# say \"hi\nb v=2"), ["# say \"hi", "b v=2"]);
        assert_eq!(split_all("m a\"b=1\nb v=2"), ["m a\"b=1", "b v=2"]);
        assert_eq!(split_all("\n\n"), ["", ""]);
        assert_eq!(split_all(""), Vec::<&str>::new());
        // An unterminated string swallows the rest of the datagram.
        assert_eq!(split_all("a s=\"x\nb v=2"), ["a s=\"x\nb v=2"]);
    }

    #[test]
    fn good_lines_are_kept_bad_ones_dropped_and_counted() {
        let mut batch = LineBatch::default();
        let got = scan_datagram(
            b"a v=1 10\nnot a line\n\n# note\nb v=2 20\r\n",
            99,
            &mut batch,
        );
        assert_eq!(got, Scanned { lines: 2, bad: 1 });
        assert_eq!(lines_of(&batch), ["a v=1 10\n", "b v=2 20\n"]);
        assert_eq!(batch.points(), 2);
    }

    #[test]
    fn lines_without_timestamp_get_the_receive_time() {
        let mut batch = LineBatch::default();
        scan_datagram(b"a v=1\nb v=2 7\nc s=\"x\ny\"", 1234, &mut batch);
        assert_eq!(
            lines_of(&batch),
            ["a v=1 1234\n", "b v=2 7\n", "c s=\"x\ny\" 1234\n"]
        );
    }

    #[test]
    fn the_stamp_follows_the_listener_precision() {
        let now_ns: i64 = 1_700_000_123_456_789_012;
        let cases = [
            (Precision::Nanoseconds, "1700000123456789012"),
            (Precision::Microseconds, "1700000123456789"),
            (Precision::Milliseconds, "1700000123456"),
            (Precision::Seconds, "1700000123"),
            (Precision::Minutes, "28333335"),
            (Precision::Hours, "472222"),
        ];
        for (precision, want) in cases {
            let mut batch = LineBatch::default();
            scan_datagram(b"m v=1", precision.from_nanos(now_ns), &mut batch);
            assert_eq!(
                lines_of(&batch),
                [format!("m v=1 {want}\n")],
                "{precision:?}"
            );
        }
    }

    /// What the scanner did before it split in one pass: `split_lines`, then
    /// `check_line` and `stamp_body` per line. The fast path must agree with it.
    fn reference(datagram: &[u8], ts: i64) -> (Vec<u8>, Scanned) {
        let mut out = Vec::new();
        let mut scanned = Scanned::default();
        for line in lineproto::split_lines(datagram) {
            match lineproto::check_line(line.text()) {
                Err(_) => scanned.bad += 1,
                Ok(LineKind::Blank | LineKind::Comment) => {}
                Ok(LineKind::Point { .. }) => {
                    lineproto::stamp_body(line.raw, ts, &mut out);
                    scanned.lines += 1;
                }
            }
        }
        (out, scanned)
    }

    fn check_against_reference(datagram: &[u8]) {
        let mut batch = LineBatch::default();
        let got = scan_datagram(datagram, 42, &mut batch);
        let (want, want_scanned) = reference(datagram, 42);
        assert_eq!(
            (String::from_utf8_lossy(&batch.data), got),
            (String::from_utf8_lossy(&want), want_scanned),
            "{:?}",
            String::from_utf8_lossy(datagram)
        );
        assert_eq!(batch.points(), got.lines);
        assert!(batch.lines().all(|l| l.ends_with(b"\n")));
    }

    #[test]
    fn one_pass_agrees_with_split_then_check_on_tricky_lines() {
        for d in [
            "a s=\"x\ny\" 5\nb v=2",
            "a s=\"x\ny\",t=\"p\nq\" \nb v=2 \t\r\n",
            "a s=\"x\nb v=2",
            "a,t=\"x v=1\nb s=\"\n\"",
            "# c \"x\na v=1\n  # \"\n",
            "a v=1\\\nb v=2\n",
            "a\\ \"b v=\"x\ny\" 1\n",
            "a s=\"\\\"\n\" 1\r\n\r\n\n",
            "a v=1 \t \nb v=2i 3 \n",
        ] {
            check_against_reference(d.as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn one_pass_agrees_with_split_then_check(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "b", "v", "=", "\"", "\n", " ", ",", "\\", "1", "#", "\r",
                    "i", "t", "\t", "x=1", "m v=1", "m,t=a s=\"", "\" 5", "e", ".",
                ]),
                0..40,
            )
        ) {
            check_against_reference(parts.concat().as_bytes());
        }
    }

    #[test]
    fn batches_accumulate_datagrams() {
        let mut batch = LineBatch::default();
        scan_datagram(b"a v=1 1\n", 5, &mut batch);
        scan_datagram(b"garbage\nb v=2 2", 5, &mut batch);
        assert_eq!(lines_of(&batch), ["a v=1 1\n", "b v=2 2\n"]);
        assert_eq!(batch.len_bytes(), 16);
    }
}
