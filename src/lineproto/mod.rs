//! Line protocol, parsed just enough (README: HTTP API).
//!
//! The relay never re-serialises a point: it finds where each line ends, checks that the
//! line has the structure InfluxDB 1.x will accept, and forwards the bytes unchanged
//! apart from dropping a trailing `\r` and appending the receive time to lines that have
//! no timestamp.
//!
//! Nothing is allocated per line. [`check_body`] classifies the body once, 64 bytes at a
//! time with SIMD, into bitmaps of separators and of non-digits; the grammar then jumps
//! from separator to separator with `tzcnt` and checks most numbers from their bits
//! alone. It takes a line to end at the next `\n` unless a string value turns out to run
//! over it, and counts lines only to report an error. [`split_lines`] finds lines with
//! `memchr2`, walking the field grammar only for a line that holds a `"`.
//!
//! Lines end at `\n` except inside a double-quoted string *field value*: quotes in the
//! measurement, tag keys, tag values and field keys are ordinary characters. A `#` as
//! the first non-blank byte makes the line a comment, which ends at the next `\n` (its
//! quotes mean nothing). Blank lines hold only spaces and tabs.
//!
//! Line numbers in errors count physical lines, as an editor shows the client's body: a
//! line whose string value spans three physical lines is reported by the number of its
//! first one, and the line after it is three further on.
//!
//! Where this scanner knowingly differs from InfluxDB 1.6's parser:
//! - unsigned integers (`1u`, up to `u64::MAX`) are accepted, and a trailing `\r` is
//!   dropped (README: HTTP API);
//! - text after a closing quote (`v="x"y`, which 1.6 silently ignores) is rejected, and so
//!   is a tag value that starts with `=`;
//! - a backslash before a newline does not join two lines (1.6 would); the first line then
//!   ends in a bare backslash and is rejected;
//! - NUL is not whitespace, and a timestamp only has to fit an `i64` (the backend still
//!   rejects one that overflows after scaling by a coarse precision);
//! - a line whose quotes 1.6's line splitter would pair differently from its field parser
//!   is rejected (`ambiguous quotes`), so a forwarded body always splits into the same
//!   lines on the backend as here, and valid lines can be concatenated safely.
//!
//! Comments are dropped by [`stamp_body`] and make [`check_body`] ask for a rewrite:
//! InfluxDB 1.6 pairs quotes inside comments and could swallow the lines after one.

use std::ops::ControlFlow;

/// A rejected line: `line N: reason` (N counts from 1, as a client sees its body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub reason: Reason,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What `check_body` learned about a valid body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyInfo {
    /// Point lines (comments and blank lines excluded).
    pub points: usize,
    /// Some line lacks a timestamp, ends in `\r` or is a comment: forward `stamp_body`'s
    /// output rather than the body as received.
    pub needs_rewrite: bool,
}

/// What a valid line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Only spaces and tabs (or nothing).
    Blank,
    /// First non-blank byte is `#`.
    Comment,
    Point {
        has_timestamp: bool,
    },
}

/// Why a line was refused. Shown to clients as short lower-case text after `line N: `
/// (`as_str`); a `Copy` value so the grammar's error path costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `missing measurement`
    MissingMeasurement,
    /// `missing fields`
    MissingFields,
    /// `missing tag key`
    MissingTagKey,
    /// `missing tag value`
    MissingTagValue,
    /// `invalid tag format`
    InvalidTag,
    /// `duplicate tag key`
    DuplicateTag,
    /// `missing field key`
    MissingFieldKey,
    /// `missing field value`
    MissingFieldValue,
    /// `invalid field format`
    InvalidField,
    /// `invalid number`
    InvalidNumber,
    /// `number out of range`
    OutOfRange,
    /// `invalid boolean`
    InvalidBoolean,
    /// `unterminated string`
    UnterminatedString,
    /// `ambiguous quotes`
    AmbiguousQuotes,
    /// `bad timestamp`
    BadTimestamp,
    /// `unexpected text after timestamp`
    AfterTimestamp,
    /// `newline outside a string field`
    Newline,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingMeasurement => "missing measurement",
            Reason::MissingFields => "missing fields",
            Reason::MissingTagKey => "missing tag key",
            Reason::MissingTagValue => "missing tag value",
            Reason::InvalidTag => "invalid tag format",
            Reason::DuplicateTag => "duplicate tag key",
            Reason::MissingFieldKey => "missing field key",
            Reason::MissingFieldValue => "missing field value",
            Reason::InvalidField => "invalid field format",
            Reason::InvalidNumber => "invalid number",
            Reason::OutOfRange => "number out of range",
            Reason::InvalidBoolean => "invalid boolean",
            Reason::UnterminatedString => "unterminated string",
            Reason::AmbiguousQuotes => "ambiguous quotes",
            Reason::BadTimestamp => "bad timestamp",
            Reason::AfterTimestamp => "unexpected text after timestamp",
            Reason::Newline => "newline outside a string field",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reasons under the names the grammar uses.
mod reason {
    use super::Reason;
    pub const MISSING_MEASUREMENT: Reason = Reason::MissingMeasurement;
    pub const MISSING_FIELDS: Reason = Reason::MissingFields;
    pub const MISSING_TAG_KEY: Reason = Reason::MissingTagKey;
    pub const MISSING_TAG_VALUE: Reason = Reason::MissingTagValue;
    pub const INVALID_TAG: Reason = Reason::InvalidTag;
    pub const DUPLICATE_TAG: Reason = Reason::DuplicateTag;
    pub const MISSING_FIELD_KEY: Reason = Reason::MissingFieldKey;
    pub const MISSING_FIELD_VALUE: Reason = Reason::MissingFieldValue;
    pub const INVALID_FIELD: Reason = Reason::InvalidField;
    pub const INVALID_NUMBER: Reason = Reason::InvalidNumber;
    pub const OUT_OF_RANGE: Reason = Reason::OutOfRange;
    pub const INVALID_BOOLEAN: Reason = Reason::InvalidBoolean;
    pub const UNTERMINATED_STRING: Reason = Reason::UnterminatedString;
    pub const AMBIGUOUS_QUOTES: Reason = Reason::AmbiguousQuotes;
    pub const BAD_TIMESTAMP: Reason = Reason::BadTimestamp;
    pub const AFTER_TIMESTAMP: Reason = Reason::AfterTimestamp;
    pub const NEWLINE: Reason = Reason::Newline;
}

mod grammar;
mod rescale;
mod scan;
mod simd;
mod split;
#[cfg(test)]
mod tests;

use grammar::*;
pub use rescale::{auto_unit_nanos, multiply, rescale_timestamps, OutOfRange};
use scan::*;
use split::{quoted_line_end, string_end};
pub use split::{split_lines, Line, Lines};

/// Check every line of `body`; all-or-nothing. Errors carry the physical line number on
/// which the offending line starts.
pub fn check_body(body: &[u8]) -> Result<BodyInfo, ParseError> {
    // One scan for the whole body: its bytes are classified once, window by window.
    check_lines(Scan::new(body))
}

/// `check_body` through a given scan (tests turn its fast paths off).
fn check_lines(mut scan: Scan<'_>) -> Result<BodyInfo, ParseError> {
    let body = scan.body;
    let mut info = BodyInfo::default();
    let mut pos = 0;
    while pos < body.len() {
        // Optimistically end the line at the next `\n`: only a string value can run over
        // one, and then the string looks unterminated.
        let nl = scan.line_end(pos);
        let mut end = nl;
        let (mut result, mut cr) = scan.check_span(pos, end);
        if result == Err(reason::UNTERMINATED_STRING) && nl < body.len() {
            end = pos + quoted_line_end(&body[pos..]).0;
            (result, cr) = scan.check_span(pos, end);
        }
        match result {
            Ok(LineKind::Point { has_timestamp }) => {
                info.points += 1;
                info.needs_rewrite |= cr || !has_timestamp;
            }
            Ok(LineKind::Comment) => info.needs_rewrite = true,
            Ok(LineKind::Blank) => info.needs_rewrite |= cr,
            Err(reason) => {
                // Counting lines only here keeps the common path free of it.
                let line = 1 + memchr::memchr_iter(b'\n', &body[..pos]).count();
                return Err(ParseError { line, reason });
            }
        }
        pos = end + 1;
    }
    Ok(info)
}

/// Append the forwardable form of a checked `body` to `out`: blank and comment lines
/// dropped, `\r` before `\n` dropped, ` <ts>` appended to point lines without a timestamp
/// (after their trailing blanks), every line ended by `\n`. On a body `check_body`
/// rejected the output is unspecified but this still does not panic.
pub fn stamp_body(body: &[u8], ts: i64, out: &mut Vec<u8>) {
    out.reserve(body.len() + 1);
    for line in split_lines(body) {
        let text = line.text();
        let start = skip_blanks(text, 0);
        match text.get(start) {
            None | Some(b'#') => continue,
            Some(_) => {}
        }
        if ends_with_timestamp(text) {
            out.extend_from_slice(text);
        } else {
            out.extend_from_slice(trim_end_blanks(text));
            out.push(b' ');
            write_timestamp(out, ts);
        }
        out.push(b'\n');
    }
}

/// Append `ts` in decimal.
pub fn write_timestamp(out: &mut Vec<u8>, ts: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = ts.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if ts < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// Whether a point line (as `check_line` accepted it) ends with a timestamp. A field
/// value's digits always follow `=`, `.`, `e` or a sign, never a blank, so the last
/// token alone decides.
fn ends_with_timestamp(text: &[u8]) -> bool {
    let t = trim_end_blanks(text);
    let digits = t.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return false;
    }
    let mut k = t.len() - digits;
    if k > 0 && t[k - 1] == b'-' {
        k -= 1;
    }
    k > 0 && matches!(t[k - 1], b' ' | b'\t')
}

/// Check one line (without its `\n` and trailing `\r`; see [`Line::text`]).
pub fn check_line(line: &[u8]) -> Result<LineKind, Reason> {
    let mut scan = Scan::<WINDOW_WORDS>::new(line);
    scan.line = line;
    scan.check(0)
}
