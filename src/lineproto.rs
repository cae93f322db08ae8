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

use memchr::{memchr, memchr2};

/// Timestamp precision of a write (`precision=` or a UDP listener's `precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// `n ns u us µ ms s m h`; `None` for anything else (empty is the caller's default).
    pub fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "n" | "ns" => Precision::Nanoseconds,
            "u" | "us" | "µ" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            _ => return None,
        })
    }

    /// Nanoseconds since the epoch → a timestamp in this precision (truncated).
    pub fn from_nanos(self, ns: i64) -> i64 {
        ns / self.nanos_per_unit()
    }

    /// The spelling InfluxDB 1.x understands in `precision=`. It silently reads any other
    /// value (`ns`, `us`, `µ`) as nanoseconds, so a forwarded query must use this one.
    pub fn as_query_value(self) -> &'static str {
        match self {
            Precision::Nanoseconds => "n",
            Precision::Microseconds => "u",
            Precision::Milliseconds => "ms",
            Precision::Seconds => "s",
            Precision::Minutes => "m",
            Precision::Hours => "h",
        }
    }

    fn nanos_per_unit(self) -> i64 {
        match self {
            Precision::Nanoseconds => 1,
            Precision::Microseconds => 1_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }
}

/// A rejected line: `line N: reason` (N counts from 1, as a client sees its body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
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

/// Short lower-case reasons, shown to clients after `line N: `.
mod reason {
    pub const MISSING_MEASUREMENT: &str = "missing measurement";
    pub const MISSING_FIELDS: &str = "missing fields";
    pub const MISSING_TAG_KEY: &str = "missing tag key";
    pub const MISSING_TAG_VALUE: &str = "missing tag value";
    pub const INVALID_TAG: &str = "invalid tag format";
    pub const DUPLICATE_TAG: &str = "duplicate tag key";
    pub const MISSING_FIELD_KEY: &str = "missing field key";
    pub const MISSING_FIELD_VALUE: &str = "missing field value";
    pub const INVALID_FIELD: &str = "invalid field format";
    pub const INVALID_NUMBER: &str = "invalid number";
    pub const OUT_OF_RANGE: &str = "number out of range";
    pub const INVALID_BOOLEAN: &str = "invalid boolean";
    pub const UNTERMINATED_STRING: &str = "unterminated string";
    pub const AMBIGUOUS_QUOTES: &str = "ambiguous quotes";
    pub const BAD_TIMESTAMP: &str = "bad timestamp";
    pub const AFTER_TIMESTAMP: &str = "unexpected text after timestamp";
    pub const NEWLINE: &str = "newline outside a string field";
}

/// One logical line of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line without its `\n`; a trailing `\r` is still there. Contains `\n` only
    /// inside a string field value.
    pub raw: &'a [u8],
    /// Physical line (1-based) on which this line starts.
    pub number: usize,
}

impl<'a> Line<'a> {
    /// The line with a trailing `\r` dropped: what `check_line` and backends should see.
    pub fn text(&self) -> &'a [u8] {
        match self.raw {
            [text @ .., b'\r'] => text,
            text => text,
        }
    }
}

/// Iterator over the lines of a body, see [`split_lines`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    body: &'a [u8],
    /// Start of the next line; may pass `body.len()` by one after a final line that had
    /// no `\n`.
    pos: usize,
    /// Physical line number of the line starting at `pos`.
    number: usize,
}

/// The lines of `body`, quote-aware (see the module doc). A final `\n` does not start
/// another line; an empty body has none.
pub fn split_lines(body: &[u8]) -> Lines<'_> {
    Lines {
        body,
        pos: 0,
        number: 1,
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let rest = self.body.get(self.pos..).filter(|r| !r.is_empty())?;
        let (len, newlines) = match memchr2(b'\n', b'"', rest) {
            Some(i) if rest[i] == b'\n' => (i, 0),
            Some(_) => quoted_line_end(rest),
            None => (rest.len(), 0),
        };
        let line = Line {
            raw: &rest[..len],
            number: self.number,
        };
        self.pos += len + 1;
        self.number += 1 + newlines;
        Some(line)
    }
}

/// The length of the line at the start of `rest`, and how many `\n` lie inside it (in
/// string values). Mirrors what `check_line` accepts: a string can only open right
/// after the `=` of a field.
fn quoted_line_end(rest: &[u8]) -> (usize, usize) {
    let n = rest.len();
    let line_end = |from: usize| memchr(b'\n', &rest[from..]).map_or(n, |o| from + o);

    let mut i = skip_blanks(rest, 0);
    if rest.get(i) == Some(&b'#') {
        return (line_end(i), 0);
    }
    // Measurement and tags: a byte is escaped when the byte before it is a backslash.
    loop {
        match memchr2(b' ', b'\n', &rest[i..]) {
            None => return (n, 0),
            Some(o) => i += o,
        }
        if rest[i] == b'\n' {
            return (i, 0);
        }
        if i > 0 && rest[i - 1] == b'\\' {
            i += 1;
        } else {
            break;
        }
    }
    i = skip_blanks(rest, i + 1);
    if i >= n {
        return (n, 0);
    }

    // Fields: a backslash escapes the next byte unless that byte is the line's end.
    let mut scan = Scan::<1>::new(rest);
    scan.line = rest;
    let mut cur = scan.cursor(i);
    let mut newlines = 0;
    let mut in_key = true;
    loop {
        i = scan.stop_from(&mut cur, i);
        let Some(&b) = rest.get(i) else {
            return (n, newlines);
        };
        match b {
            b'\n' => return (i, newlines),
            b' ' => return (line_end(i), newlines),
            b',' => in_key = true,
            b'\\' => {
                if rest.get(i + 1) == Some(&b'\n') {
                    return (i + 1, newlines);
                }
                i += 1;
            }
            _ if in_key => {
                // `=`: a value starts.
                in_key = false;
                if rest.get(i + 1) == Some(&b'"') {
                    let open = i + 2;
                    let close = string_end(rest, open).unwrap_or(n);
                    newlines += memchr::memchr_iter(b'\n', &rest[open..close]).count();
                    i = close;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Index just past the quote closing a string whose contents start at `i`; `None` when
/// the string does not end. `\"` and `\\` (any backslash pair) do not end it.
#[inline]
fn string_end(buf: &[u8], mut i: usize) -> Option<usize> {
    // Most strings are short: look 8 bytes at a time first, as `memchr2` costs a call.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    // The high bit of each zero byte of `x`; the lowest is exact (a borrow only moves
    // upwards from a zero byte).
    let zeros = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let short = i + 64;
    while i < short {
        let Some(word) = buf.get(i..).and_then(<[u8]>::first_chunk::<8>) else {
            break;
        };
        let x = u64::from_le_bytes(*word);
        let hits = zeros(x ^ QUOTES) | zeros(x ^ BACKSLASHES);
        if hits == 0 {
            i += 8;
            continue;
        }
        let j = i + (hits.trailing_zeros() / 8) as usize;
        if buf[j] == b'"' {
            return Some(j + 1);
        }
        i = j + 2;
    }
    loop {
        let j = i + memchr2(b'"', b'\\', buf.get(i..)?)?;
        if buf[j] == b'"' {
            return Some(j + 1);
        }
        i = j + 2;
    }
}

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
pub fn check_line(line: &[u8]) -> Result<LineKind, &'static str> {
    let mut scan = Scan::<WINDOW_WORDS>::new(line);
    scan.line = line;
    scan.check(0)
}

/// How many 64-byte words one classification pass of a body covers at most: 4 KiB, in
/// 1.5 KiB of stack. A line that a window ends inside is found with `memchr` and
/// makes the next window reclassify a word: the fewer windows, the fewer of those.
const WINDOW_WORDS: usize = 64;

/// A buffer's bytes as bitmaps, one bit per byte, built a window at a time with SIMD
/// compares, and the grammar that walks them. Finding the next separator is then a mask
/// and a `tzcnt`, and most numbers are checked from their non-digit bits alone.
///
/// A window has `WORDS` words: a whole body is worth classifying kilobytes ahead, a lone
/// line found by `split_lines` is not (nor zeroing a large window for it).
struct Scan<'a, const WORDS: usize = WINDOW_WORDS> {
    /// The whole buffer; lines are checked in order, each classified once.
    body: &'a [u8],
    /// The line being checked, `body[..limit]`: the grammar reads no further, and treats
    /// reaching `line.len()` as the end of the line.
    line: &'a [u8],
    /// The window `body[base..end]` that the bitmaps describe (bit `k % 64` of word
    /// `k / 64` is byte `base + k`; bits past `end` are clear).
    base: usize,
    end: usize,
    /// Take the commonest keys and runs of fields in tight loops (off only to test the
    /// general grammar).
    fast_paths: bool,
    /// The window's bitmaps, a word per 64 bytes.
    bits: [simd::Bits; WORDS],
}

/// Where the grammar is in the bitmaps: one word of each, small enough to stay in
/// registers while a function walks the line.
#[derive(Clone, Copy)]
struct Cursor {
    /// Position of bit 0 of both words.
    at: usize,
    /// Stops from the cursor's position on; earlier ones may be cleared, so a cursor
    /// only moves forwards (a function that goes back takes a new one).
    stops: u64,
    /// Non-digits, whole.
    non_digits: u64,
}

impl<'a, const WORDS: usize> Scan<'a, WORDS> {
    fn new(body: &'a [u8]) -> Scan<'a, WORDS> {
        Scan {
            body,
            line: &[],
            base: 0,
            end: 0,
            fast_paths: true,
            bits: [simd::Bits::default(); WORDS],
        }
    }

    /// Check `body[start..end]` as a line, a trailing `\r` dropped; also says whether
    /// there was one.
    fn check_span(&mut self, start: usize, end: usize) -> (Result<LineKind, &'static str>, bool) {
        let body = self.body;
        let text_end = if end > start && body[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        self.line = &body[..text_end];
        (self.check(start), text_end != end)
    }

    /// Check the line `line[start..]`.
    fn check(&mut self, start: usize) -> Result<LineKind, &'static str> {
        let line = self.line;
        let first = skip_blanks(line, start);
        match line.get(first) {
            None => return Ok(LineKind::Blank),
            Some(b'#') => return Ok(LineKind::Comment),
            Some(_) => {}
        }
        let key = match self.plain_key(first) {
            Some(key) => key,
            None => self.key(first)?,
        };
        let has_timestamp = self.fields(key.cur, key.end + 1)?;
        // InfluxDB's line splitter starts pairing quotes at the first unescaped space;
        // when that is the separator (no space before it), it pairs them exactly as
        // parsed here.
        let early_space = key.escaped_space || line[start..first].contains(&b' ');
        if early_space && memchr(b'"', &line[start..]).is_some() {
            check_backend_quoting(&line[start..])?;
        }
        Ok(LineKind::Point { has_timestamp })
    }

    /// Classify a window that holds `i` (< `body.len()`). Moving forwards it starts a
    /// word before `i`: a token that straddles the old window's end is then whole in the
    /// new one, instead of sending the grammar back to its start for yet another window.
    #[inline(never)]
    fn load(&mut self, i: usize) {
        let back = if i >= self.end && WORDS > 1 {
            i.min(64)
        } else {
            0
        };
        let base = i - back;
        self.base = base;
        self.end = self.body.len().min(base + 64 * WORDS);
        let words = (self.end - base).div_ceil(64);
        simd::classify(self.body, base, &mut self.bits[..words]);
    }

    /// The first `\n` at or after `pos` (< `body.len()`), or `body.len()`: from the
    /// newline bits of the window the line's check needs anyway, and with `memchr` only
    /// past the window's end, for a line that crosses it.
    #[inline(always)]
    fn line_end(&mut self, pos: usize) -> usize {
        if pos < self.base || pos >= self.end {
            self.load(pos);
        }
        let at = pos - self.base;
        let words = (self.end - self.base).div_ceil(64);
        let mut w = at / 64;
        let mut bits = self.bits[w % WORDS].newlines & u64::MAX << (at % 64);
        loop {
            if bits != 0 {
                return self.base + 64 * w + bits.trailing_zeros() as usize;
            }
            w += 1;
            if w >= words {
                break;
            }
            bits = self.bits[w % WORDS].newlines;
        }
        let len = self.body.len();
        if self.end == len {
            return len;
        }
        memchr(b'\n', &self.body[self.end..]).map_or(len, |o| self.end + o)
    }

    /// A cursor on `i` (< `body.len()`).
    #[inline]
    fn cursor(&mut self, i: usize) -> Cursor {
        if i < self.base || i >= self.end {
            self.load(i);
        }
        let at = i - self.base;
        let word = at / 64 % WORDS;
        Cursor {
            at: i - at % 64,
            stops: self.bits[word].stops & u64::MAX << (at % 64),
            non_digits: self.bits[word].non_digits,
        }
    }

    /// The first stop at or after `i` (not before `cur`'s last answer), or
    /// `line.len()`.
    #[inline(always)]
    fn stop_from(&mut self, cur: &mut Cursor, mut i: usize) -> usize {
        let limit = self.line.len();
        loop {
            let off = i.wrapping_sub(cur.at);
            if off < 64 {
                let bits = cur.stops & u64::MAX << off;
                if bits != 0 {
                    cur.stops = bits;
                    return limit.min(cur.at + bits.trailing_zeros() as usize);
                }
                i = cur.at + 64;
            }
            if i >= limit {
                return limit;
            }
            *cur = self.cursor(i);
        }
    }

    /// The stop after `cur`'s current one (the lowest it holds), or `line.len()`.
    #[inline(always)]
    fn stop_after(&mut self, cur: &mut Cursor) -> usize {
        let rest = cur.stops & cur.stops.wrapping_sub(1);
        if rest != 0 {
            cur.stops = rest;
            self.line.len().min(cur.at + rest.trailing_zeros() as usize)
        } else {
            let next = cur.at + 64;
            self.stop_from(cur, next)
        }
    }

    /// Non-digit bits of the token `start..end` (bit 0 is `start`), from `cur`'s word
    /// when it holds all of it, else from the window; `None` for a token that is empty,
    /// longer than 64 bytes or outside the window.
    #[inline(always)]
    fn non_digits_of(&self, cur: &Cursor, start: usize, end: usize) -> Option<u64> {
        let off = start.wrapping_sub(cur.at);
        let n = end - start;
        if off < 64 && n > 0 && off + n <= 64 {
            return Some(cur.non_digits >> off & u64::MAX >> (64 - n));
        }
        // About one token in four straddles two words.
        if n == 0 || n > 64 || start < self.base || end > self.end {
            return None;
        }
        let at = start - self.base;
        let (word, shift) = (at / 64 % WORDS, at % 64);
        let mut bits = self.bits[word].non_digits >> shift;
        if shift > 0 && word + 1 < WORDS {
            bits |= self.bits[word + 1].non_digits << (64 - shift);
        }
        Some(bits & u64::MAX >> (64 - n))
    }

    /// The first non-digit at or after `i`, or `line.len()`.
    fn next_non_digit(&mut self, mut i: usize) -> usize {
        let limit = self.line.len();
        while i < limit {
            if i < self.base || i >= self.end {
                self.load(i);
            }
            let at = i - self.base;
            let bits = self.bits[at / 64 % WORDS].non_digits >> (at % 64);
            if bits != 0 {
                return limit.min(i + bits.trailing_zeros() as usize);
            }
            i += 64 - at % 64;
        }
        limit
    }

    /// Measurement and tags of the commonest shape, from the measurement's first byte:
    /// no backslash, no `=` in the measurement, no empty part, tag keys strictly
    /// increasing (so none repeats). Then the separators alone decide, and they must
    /// alternate `,` `=` `,` `=` ... ` `. `None` for anything else, which `key` decides
    /// (and words its error) from the start.
    #[inline(always)]
    fn plain_key(&mut self, start: usize) -> Option<KeyEnd> {
        if !self.fast_paths {
            return None;
        }
        let line = self.line;
        let mut cur = self.cursor(start);
        let mut i = self.stop_from(&mut cur, start);
        if i == start {
            return None;
        }
        // The previous tag key and its `key_prefix`.
        let mut prev: &[u8] = &[];
        let mut prev_prefix = 0;
        loop {
            match line.get(i) {
                Some(b',') => {}
                Some(b' ') => {
                    return Some(KeyEnd {
                        end: i,
                        escaped_space: false,
                        cur,
                    })
                }
                _ => return None,
            }
            let key = i + 1;
            let eq = self.stop_after(&mut cur);
            if eq == key || line.get(eq) != Some(&b'=') {
                return None;
            }
            let name = &line[key..eq];
            let prefix = key_prefix(line, key, eq)?;
            if prefix < prev_prefix
                || prefix == prev_prefix && byte_order(name, prev) != std::cmp::Ordering::Greater
            {
                return None;
            }
            (prev, prev_prefix) = (name, prefix);
            i = self.stop_after(&mut cur);
            if i == eq + 1 {
                return None;
            }
        }
    }

    /// Measurement and tags, from the measurement's first byte (not blank, not `#`). As
    /// in InfluxDB, a separator here is escaped when the byte before it is a backslash.
    fn key(&mut self, start: usize) -> Result<KeyEnd, &'static str> {
        let line = self.line;
        match line.get(start) {
            None | Some(b',') => return Err(reason::MISSING_MEASUREMENT),
            Some(b'\n') => return Err(reason::NEWLINE),
            Some(_) => {}
        }
        let mut cur = self.cursor(start);
        let mut escaped_space = false;
        let mut i = start + 1;
        loop {
            i = self.stop_from(&mut cur, i);
            let Some(&b) = line.get(i) else {
                return Err(reason::MISSING_FIELDS);
            };
            match b {
                b'\n' => return Err(reason::NEWLINE),
                _ if line[i - 1] == b'\\' => escaped_space |= b == b' ',
                b' ' => {
                    return Ok(KeyEnd {
                        end: i,
                        escaped_space,
                        cur,
                    })
                }
                b',' => return self.tags(cur, i + 1, escaped_space),
                _ => {} // `=` is an ordinary byte in a measurement; `\` escapes the next
            }
            i += 1;
        }
    }

    /// The tags, from the first byte of the first tag key.
    fn tags(
        &mut self,
        mut cur: Cursor,
        first: usize,
        mut escaped_space: bool,
    ) -> Result<KeyEnd, &'static str> {
        let line = self.line;
        let mut i = first;
        // Clients usually sort their tags; while they are strictly increasing no key can
        // repeat, and only an unsorted set needs the slower search.
        let mut prev_key: &[u8] = &[];
        let mut sorted = true;
        loop {
            match line.get(i) {
                None | Some(b' ' | b',' | b'=') => return Err(reason::MISSING_TAG_KEY),
                Some(b'\n') => return Err(reason::NEWLINE),
                Some(_) => {}
            }
            let key_start = i;
            i += 1;
            loop {
                i = self.stop_from(&mut cur, i);
                match line.get(i) {
                    None => return Err(reason::MISSING_TAG_VALUE),
                    Some(b'\n') => return Err(reason::NEWLINE),
                    Some(&b) if line[i - 1] == b'\\' => escaped_space |= b == b' ',
                    Some(b'=') => break,
                    Some(b'\\') => {}
                    Some(_) => return Err(reason::MISSING_TAG_VALUE),
                }
                i += 1;
            }
            let key = &line[key_start..i];
            if sorted {
                match byte_order(key, prev_key) {
                    std::cmp::Ordering::Greater => prev_key = key,
                    std::cmp::Ordering::Equal => return Err(reason::DUPLICATE_TAG),
                    std::cmp::Ordering::Less => sorted = false,
                }
            }
            i += 1;
            match line.get(i) {
                None | Some(b' ' | b',') => return Err(reason::MISSING_TAG_VALUE),
                Some(b'=') => return Err(reason::INVALID_TAG),
                Some(b'\n') => return Err(reason::NEWLINE),
                Some(_) => {}
            }
            i += 1;
            loop {
                i = self.stop_from(&mut cur, i);
                match line.get(i) {
                    None => return Err(reason::MISSING_FIELDS),
                    Some(b'\n') => return Err(reason::NEWLINE),
                    Some(&b) if line[i - 1] == b'\\' => escaped_space |= b == b' ',
                    Some(b',') => break,
                    Some(b' ') => {
                        if !sorted && has_duplicate_tag(&line[first..i]) {
                            return Err(reason::DUPLICATE_TAG);
                        }
                        return Ok(KeyEnd {
                            end: i,
                            escaped_space,
                            cur,
                        });
                    }
                    Some(b'\\') => {}
                    Some(_) => return Err(reason::INVALID_TAG),
                }
                i += 1;
            }
            i += 1;
        }
    }

    /// Fields and the optional timestamp, from the byte after the space that ends the
    /// key (`cur` on that space). Returns whether there is a timestamp.
    fn fields(&mut self, mut cur: Cursor, from: usize) -> Result<bool, &'static str> {
        let line = self.line;
        let mut i = skip_blanks(line, from);
        if i >= line.len() {
            return Err(reason::MISSING_FIELDS);
        }
        let mut stop = self.stop_from(&mut cur, i);
        loop {
            if self.fast_paths {
                match self.skip_plain_fields(&mut cur, i, stop) {
                    ControlFlow::Continue(next) => (i, stop) = next,
                    ControlFlow::Break(end) if end < line.len() => {
                        return self.timestamp(cur, end + 1)
                    }
                    ControlFlow::Break(_) => return Ok(false),
                }
            }
            let key_start = i;
            i = stop;
            loop {
                match line.get(i) {
                    Some(b'=') => break,
                    Some(b'\\') => match line.get(i + 1) {
                        None => return Err(reason::INVALID_FIELD),
                        Some(b'\n') => return Err(reason::NEWLINE),
                        Some(_) => i = self.stop_from(&mut cur, i + 2),
                    },
                    Some(b'\n') => return Err(reason::NEWLINE),
                    _ => return Err(reason::INVALID_FIELD),
                }
            }
            if i == key_start {
                return Err(reason::MISSING_FIELD_KEY);
            }
            i += 1;
            // An if-chain, most likely first: a jump table here mispredicts on every
            // change of value type. Each branch also says what junk after the value is.
            let Some(&b) = line.get(i) else {
                return Err(reason::MISSING_FIELD_VALUE);
            };
            let junk;
            (i, junk) = if b.is_ascii_digit() || b == b'-' || b == b'.' {
                (self.number(&mut cur, i)?, reason::INVALID_NUMBER)
            } else if b == b'"' {
                let end = string_end(line, i + 1).ok_or(reason::UNTERMINATED_STRING)?;
                // Stops inside the string are not separators: put the cursor after them.
                self.stop_from(&mut cur, end);
                (end, reason::INVALID_FIELD)
            } else if matches!(b, b't' | b'f' | b'T' | b'F') {
                (self.boolean(&mut cur, i)?, reason::INVALID_BOOLEAN)
            } else if b == b',' || b == b' ' {
                return Err(reason::MISSING_FIELD_VALUE);
            } else if b == b'n' || b == b'N' {
                // InfluxDB reads these as a number, hence its message for `NaN`.
                return Err(reason::INVALID_NUMBER);
            } else {
                return Err(reason::INVALID_BOOLEAN);
            };
            match line.get(i) {
                None => return Ok(false),
                Some(b',') => {}
                Some(b' ') => return self.timestamp(cur, i + 1),
                Some(_) => return Err(junk),
            }
            // The cursor is on this `,`: the next stop is the next key's `=`.
            stop = self.stop_after(&mut cur);
            i += 1;
        }
    }

    /// Take fields of the commonest shapes (a key without escapes, `=`, then a number
    /// that starts with a digit and is decided by its bits, a boolean, or a string) from the field starting at `key`, whose first stop is `stop`
    /// and the cursor's current one. Breaks with the index of the space or line end after
    /// the last field, the cursor on it, when it takes them all; else continues with the
    /// first field not taken and its first stop, the cursor back on that stop: whatever
    /// is unusual or wrong is left to the general loop.
    #[inline(always)]
    fn skip_plain_fields(
        &mut self,
        cur: &mut Cursor,
        mut key: usize,
        mut stop: usize,
    ) -> ControlFlow<usize, (usize, usize)> {
        let line = self.line;
        loop {
            let at_key = *cur;
            if stop == key || line.get(stop) != Some(&b'=') {
                return ControlFlow::Continue((key, stop));
            }
            let value = stop + 1;
            let first = line.get(value).copied().unwrap_or(b' ');
            let end = if first.is_ascii_digit() {
                let end = self.stop_after(cur);
                let plain = self.non_digits_of(cur, value, end).is_some_and(|odd| {
                    if odd == 0 {
                        return true;
                    }
                    let at = odd.trailing_zeros() as usize;
                    // One odd byte, after the leading digit: `.` anywhere, or a short `i`
                    // last.
                    odd & (odd - 1) == 0
                        && match line.get(value + at) {
                            Some(b'.') => true,
                            Some(b'i') => at == end - value - 1 && at < I64_MAX.len(),
                            _ => false,
                        }
                });
                plain.then_some(end)
            } else if first == b'"' {
                // Read on past the line, so that a string near its end is still read a
                // word at a time. Stops inside the string are not separators: put the
                // cursor after them.
                let end = string_end(self.body, value + 1).filter(|&end| end <= line.len());
                end.inspect(|&end| {
                    self.stop_from(cur, end);
                })
            } else if matches!(first, b't' | b'f' | b'T' | b'F') {
                let end = self.stop_after(cur);
                is_boolean(&line[value..end]).then_some(end)
            } else {
                None
            };
            match end.map(|end| (end, line.get(end))) {
                Some((end, Some(b','))) => key = end + 1,
                Some((end, None | Some(b' '))) => return ControlFlow::Break(end),
                _ => {
                    *cur = at_key;
                    return ControlFlow::Continue((key, stop));
                }
            }
            stop = self.stop_after(cur);
        }
    }

    /// A number field value starting at `start`, which the cursor's current stop (its
    /// `=`) precedes; returns the index after it. The shapes clients send most (`12`,
    /// `1.5`, `.5`, `12i`) are decided from the token's non-digit bits (the caller
    /// checks the byte after it); the rest, and every error, go through `any_number`.
    #[inline(always)]
    fn number(&mut self, cur: &mut Cursor, start: usize) -> Result<usize, &'static str> {
        let end = self.stop_after(cur);
        if let Some(odd) = self.non_digits_of(cur, start, end) {
            if odd == 0 {
                return Ok(end);
            }
            if odd & (odd - 1) == 0 {
                let at = odd.trailing_zeros() as usize;
                let n = end - start;
                match self.line.get(start + at) {
                    Some(b'.') if n > 1 => return Ok(end),
                    // Fewer digits than the limit always fit.
                    Some(b'i') if at == n - 1 && at > 0 && at < I64_MAX.len() => return Ok(end),
                    _ => {}
                }
            }
        }
        self.any_number(start)
    }

    /// A float (`1`, `-1.5`, `.5`, `5.`, `1e10`, `1E+10`), an integer `123i` or an
    /// unsigned `123u`, starting at `start`; returns the index of the byte after it.
    #[inline(never)]
    fn any_number(&mut self, start: usize) -> Result<usize, &'static str> {
        let line = self.line;
        let negative = line.get(start) == Some(&b'-');
        let int_start = start + usize::from(negative);
        let int_end = self.next_non_digit(int_start);
        let mut i = int_end;
        let mut mantissa_digits = int_end - int_start;
        let fraction = line.get(i) == Some(&b'.');
        if fraction {
            let frac_start = i + 1;
            i = self.next_non_digit(frac_start);
            mantissa_digits += i - frac_start;
        }
        if mantissa_digits == 0 {
            return Err(reason::INVALID_NUMBER);
        }
        let digits = &line[int_start..int_end];
        match line.get(i) {
            None | Some(b',' | b' ') => {
                // Only a float with hundreds of integer digits can overflow without an
                // exponent.
                if digits.len() > 300 {
                    check_float_range(&line[start..i])?;
                }
                Ok(i)
            }
            Some(b'i') if !fraction => {
                let max = if negative { I64_MIN_ABS } else { I64_MAX };
                check_integer_range(digits, max)?;
                value_end(line, i + 1)
            }
            Some(b'u') if !fraction && !negative => {
                check_integer_range(digits, U64_MAX)?;
                value_end(line, i + 1)
            }
            Some(b'e' | b'E') => {
                i += 1;
                if matches!(line.get(i), Some(b'+' | b'-')) {
                    i += 1;
                }
                let exp_start = i;
                i = self.next_non_digit(i);
                if i == exp_start {
                    return Err(reason::INVALID_NUMBER);
                }
                let end = value_end(line, i)?;
                check_float_range(&line[start..end])?;
                Ok(end)
            }
            Some(_) => Err(reason::INVALID_NUMBER),
        }
    }

    /// A boolean starting at `start`, which the cursor's current stop precedes; the
    /// caller checks the byte after it.
    #[inline]
    fn boolean(&mut self, cur: &mut Cursor, start: usize) -> Result<usize, &'static str> {
        let end = self.stop_after(cur);
        if is_boolean(&self.line[start..end]) {
            Ok(end)
        } else {
            Err(reason::INVALID_BOOLEAN)
        }
    }

    /// The optional timestamp, from the byte after the space that ends the fields. The
    /// usual case is decided here, the rest and every error by `any_timestamp`.
    #[inline(always)]
    fn timestamp(&mut self, cur: Cursor, from: usize) -> Result<bool, &'static str> {
        let line = self.line;
        // The rest of the line a timestamp that cannot overflow: up to 18 digits, or 19
        // not starting with a 9.
        let n = line.len().saturating_sub(from);
        if (1..=19).contains(&n)
            && (n < 19 || line[from] != b'9')
            && self.non_digits_of(&cur, from, line.len()) == Some(0)
        {
            return Ok(true);
        }
        self.any_timestamp(cur, from)
    }

    /// `timestamp`, any case.
    #[inline(never)]
    fn any_timestamp(&mut self, mut cur: Cursor, from: usize) -> Result<bool, &'static str> {
        let line = self.line;
        let start = skip_blanks(line, from);
        if start >= line.len() {
            return Ok(false);
        }
        let end = self.stop_from(&mut cur, start);
        let negative = line[start] == b'-';
        let digits = &line[(start + usize::from(negative)).min(end)..end];
        let all_digits = match self.non_digits_of(&cur, start, end) {
            Some(odd) => odd & !u64::from(negative) == 0,
            None => all_digits(digits),
        };
        if digits.is_empty() || !all_digits || !matches!(line.get(end), None | Some(b' ')) {
            return Err(reason::BAD_TIMESTAMP);
        }
        let max = if negative { I64_MIN_ABS } else { I64_MAX };
        check_integer_range(digits, max).map_err(|_| reason::BAD_TIMESTAMP)?;
        if line[end..].iter().any(|&b| b != b' ') {
            return Err(reason::AFTER_TIMESTAMP);
        }
        Ok(true)
    }
}

/// Byte classification, 64 bytes at a time: AVX2 where the CPU has it, else SSE2 (part
/// of every x86_64), else plain code.
mod simd {
    /// What 64 consecutive bytes are, bit `k` for byte `k`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Bits {
        /// `,` ` ` `=` `\` `\n`: where the grammar can change state outside a string.
        pub stops: u64,
        /// Anything but `0`..=`9`.
        pub non_digits: u64,
        /// `\n` alone: where a line may end, found without walking the other stops.
        pub newlines: u64,
    }

    impl Bits {
        fn shr(self, n: u32) -> Bits {
            Bits {
                stops: self.stops >> n,
                non_digits: self.non_digits >> n,
                newlines: self.newlines >> n,
            }
        }

        fn and(self, mask: u64) -> Bits {
            Bits {
                stops: self.stops & mask,
                non_digits: self.non_digits & mask,
                newlines: self.newlines & mask,
            }
        }
    }

    /// Fill `out[w]` with the bits of `buf[at + 64 * w..][..64]`; bits past the end of
    /// `buf` are clear.
    pub fn classify(buf: &[u8], at: usize, out: &mut [Bits]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has just been seen to support AVX2.
                unsafe { x86::classify_avx2(buf, at, out) }
            } else {
                // SAFETY: SSE2 is part of the x86_64 baseline.
                unsafe { x86::classify_sse2(buf, at, out) }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        fill(buf, at, out, portable)
    }

    #[cfg(any(test, not(target_arch = "x86_64")))]
    fn portable(block: &[u8; 64]) -> Bits {
        let mut bits = Bits::default();
        for (k, &b) in block.iter().enumerate() {
            let stop = matches!(b, b',' | b' ' | b'=' | b'\\' | b'\n');
            bits.stops |= u64::from(stop) << k;
            bits.non_digits |= u64::from(!b.is_ascii_digit()) << k;
            bits.newlines |= u64::from(b == b'\n') << k;
        }
        bits
    }

    /// `classify`, with `block` classifying 64 bytes.
    #[inline(always)]
    fn fill(buf: &[u8], at: usize, out: &mut [Bits], block: impl Fn(&[u8; 64]) -> Bits) {
        let len = buf.len();
        for (w, bits) in out.iter_mut().enumerate() {
            let start = at + 64 * w;
            *bits = if let Some(b) = buf.get(start..).and_then(<[u8]>::first_chunk::<64>) {
                block(b)
            } else if start >= len {
                Bits::default()
            } else if let Some(b) = buf.last_chunk::<64>() {
                // The tail: classify the buffer's last 64 bytes, which reach back before
                // `start`, and shift those earlier bytes out.
                block(b).shr((start - (len - 64)) as u32)
            } else {
                // A buffer under 64 bytes: pad it, and clear the padding's bits.
                let mut b = [0u8; 64];
                b[..len - start].copy_from_slice(&buf[start..]);
                block(&b).and(u64::MAX >> (64 - (len - start)))
            };
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::Bits;
        use std::arch::x86_64::{
            __m128i, __m256i, _mm256_add_epi8, _mm256_and_si256, _mm256_broadcastsi128_si256,
            _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
            _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_srli_epi16, _mm_and_si128,
            _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8, _mm_setr_epi8,
        };

        #[target_feature(enable = "avx2")]
        pub fn classify_avx2(buf: &[u8], at: usize, out: &mut [Bits]) {
            super::fill(buf, at, out, |block| {
                let (s0, d0, n0) = half_avx2(block, 0);
                let (s1, d1, n1) = half_avx2(block, 32);
                Bits {
                    stops: s0 | s1 << 32,
                    non_digits: d0 | d1 << 32,
                    newlines: n0 | n1 << 32,
                }
            })
        }

        /// (stops, non-digits, newlines) of `block[k..k + 32]`, each byte classified by
        /// looking its two nibbles up in 16-byte tables and ANDing the answers: bits 0-2
        /// and 6 mark the stops (bit 6 `\n` alone), bit 7 the digits. Five vector
        /// operations classify 32 bytes, where a compare per stop byte and two for the
        /// digits (and ORs and an AND) took twelve.
        #[inline]
        #[target_feature(enable = "avx2")]
        fn half_avx2(block: &[u8; 64], k: usize) -> (u64, u64, u64) {
            // The classes: stops by high nibble (`\n` alone in its own), and the digits.
            const NL: i8 = 0x40; // `\n`
            const S2: i8 = 0x01; // ` ` `,`
            const S3: i8 = 0x02; // `=`
            const S5: i8 = 0x04; // `\`
            const DIGIT: i8 = i8::MIN;
            // By low nibble, then by high; a byte >= 0x80 finds 0 in `lo` (its high bit
            // is set) and its high nibble none in `hi`.
            #[rustfmt::skip]
            let lo = _mm256_broadcastsi128_si256(_mm_setr_epi8(
                DIGIT | S2, DIGIT, DIGIT, DIGIT, DIGIT, DIGIT, DIGIT, DIGIT,
                DIGIT, DIGIT, NL, 0, S2 | S5, S3, 0, 0,
            ));
            #[rustfmt::skip]
            let hi = _mm256_broadcastsi128_si256(_mm_setr_epi8(
                NL, 0, S2, DIGIT | S3, 0, S5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ));
            // SAFETY: `k` is 0 or 32, so the unaligned 32-byte load stays inside `block`.
            let v: __m256i = unsafe { _mm256_loadu_si256(block[k..].as_ptr().cast()) };
            // A byte >= 0x80 looks up 0 in `lo` (its high bit is set).
            let high_nibbles = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f));
            let class = _mm256_and_si256(
                _mm256_shuffle_epi8(lo, v),
                _mm256_shuffle_epi8(hi, high_nibbles),
            );
            let mask = |m: __m256i| u64::from(_mm256_movemask_epi8(m) as u32);
            // A stop's class is positive, a digit's negative; doubling moves bit 6 to 7.
            let stops = _mm256_cmpgt_epi8(class, _mm256_setzero_si256());
            let newlines = _mm256_add_epi8(class, class);
            (mask(stops), !mask(class) & 0xffff_ffff, mask(newlines))
        }

        #[target_feature(enable = "sse2")]
        pub fn classify_sse2(buf: &[u8], at: usize, out: &mut [Bits]) {
            super::fill(buf, at, out, |block| {
                let mut bits = Bits::default();
                for k in 0..4 {
                    let (s, d, n) = quarter_sse2(block, 16 * k);
                    bits.stops |= s << (16 * k);
                    bits.non_digits |= d << (16 * k);
                    bits.newlines |= n << (16 * k);
                }
                bits
            })
        }

        /// (stops, non-digits, newlines) of `block[k..k + 16]`.
        #[inline]
        #[target_feature(enable = "sse2")]
        fn quarter_sse2(block: &[u8; 64], k: usize) -> (u64, u64, u64) {
            // SAFETY: `k` is at most 48, so the unaligned 16-byte load stays inside `block`.
            let v: __m128i = unsafe { _mm_loadu_si128(block[k..].as_ptr().cast()) };
            let is = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
            let newlines = is(b'\n');
            let stops = _mm_or_si128(
                _mm_or_si128(is(b','), is(b' ')),
                _mm_or_si128(_mm_or_si128(is(b'='), is(b'\\')), newlines),
            );
            let digits = _mm_and_si128(
                _mm_cmpgt_epi8(v, _mm_set1_epi8(b'0' as i8 - 1)),
                _mm_cmplt_epi8(v, _mm_set1_epi8(b'9' as i8 + 1)),
            );
            let mask = |m: __m128i| u64::from(_mm_movemask_epi8(m) as u16);
            (mask(stops), !mask(digits) & 0xffff, mask(newlines))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::Bits;
        use proptest::prelude::*;

        /// One byte at a time, as the contract of `classify` says.
        fn reference(buf: &[u8], at: usize, words: usize) -> Vec<Bits> {
            let mut out = vec![Bits::default(); words];
            for k in 0..64 * words {
                let Some(&b) = buf.get(at + k) else { break };
                let bits = &mut out[k / 64];
                let bit = 1 << (k % 64);
                if matches!(b, b',' | b' ' | b'=' | b'\\' | b'\n') {
                    bits.stops |= bit;
                }
                if !b.is_ascii_digit() {
                    bits.non_digits |= bit;
                }
                if b == b'\n' {
                    bits.newlines |= bit;
                }
            }
            out
        }

        type Fill = fn(&[u8], usize, &mut [Bits]);

        fn run(fill: Fill, buf: &[u8], at: usize, words: usize) -> Vec<Bits> {
            // Start dirty: `classify` must write every word it is given.
            let dirty = Bits {
                stops: !0,
                non_digits: !0,
                newlines: !0,
            };
            let mut out = vec![dirty; words];
            fill(buf, at, &mut out);
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn every_classifier_agrees_with_the_reference(
                buf in prop::collection::vec(
                    prop::sample::select(b", =\\\n\"09/:az\x80\xff".to_vec()),
                    1..300,
                ),
                at in any::<prop::sample::Index>(),
                words in 1usize..6,
            ) {
                let at = at.index(buf.len());
                let want = reference(&buf, at, words);
                prop_assert_eq!(run(super::classify, &buf, at, words), want.clone());
                prop_assert_eq!(
                    run(|b, a, o| super::fill(b, a, o, super::portable), &buf, at, words),
                    want.clone()
                );
                #[cfg(target_arch = "x86_64")]
                {
                    // SAFETY: SSE2 is part of the x86_64 baseline.
                    let sse2: Fill = |b, a, o| unsafe { super::x86::classify_sse2(b, a, o) };
                    prop_assert_eq!(run(sse2, &buf, at, words), want.clone());
                    if std::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU has just been seen to support AVX2.
                        let avx2: Fill = |b, a, o| unsafe { super::x86::classify_avx2(b, a, o) };
                        prop_assert_eq!(run(avx2, &buf, at, words), want);
                    }
                }
            }
        }
    }
}

/// Whether `value` is one of InfluxDB's spellings of a boolean.
#[inline(always)]
fn is_boolean(value: &[u8]) -> bool {
    matches!(
        value,
        b"t" | b"T" | b"true" | b"True" | b"TRUE" | b"f" | b"F" | b"false" | b"False" | b"FALSE"
    )
}

/// Whether every byte is an ASCII digit, eight at a time.
fn all_digits(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    let words_ok = chunks.by_ref().all(|c| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        // Each byte is 0x30..=0x39: high nibble 3, and adding 6 keeps it there.
        const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
        const THREES: u64 = 0x3030_3030_3030_3030;
        x & HIGH == THREES && x.wrapping_add(0x0606_0606_0606_0606) & HIGH == THREES
    });
    words_ok && chunks.remainder().iter().all(u8::is_ascii_digit)
}

#[inline]
fn skip_blanks(line: &[u8], mut i: usize) -> usize {
    while i < line.len() && matches!(line[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

fn trim_end_blanks(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

/// Where the measurement and tags end.
struct KeyEnd {
    /// Index of the space that ends them.
    end: usize,
    /// They contain an escaped space.
    escaped_space: bool,
    /// On that space, for the fields to go on from.
    cur: Cursor,
}

/// `a.cmp(b)` without a call to `memcmp`, which costs more than the few bytes that
/// short keys and timestamps need.
#[inline]
fn byte_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// The first 8 bytes of the tag key `line[start..end]` (not empty) as a big-endian
/// number, the bytes after the key zeroed. Keys whose prefixes differ are in the order of
/// their prefixes: at the first byte that differs either both are the keys' own, or one
/// key has ended there and is a proper prefix of the other. `None` near the line's end.
#[inline(always)]
fn key_prefix(line: &[u8], start: usize, end: usize) -> Option<u64> {
    let word = u64::from_be_bytes(*line.get(start..)?.first_chunk::<8>()?);
    let n = end - start;
    Some(if n >= 8 {
        word
    } else {
        word & !(u64::MAX >> (8 * n))
    })
}

/// Whether two raw (still escaped) keys in an already validated tag section
/// (`k=v,k=v...`) are equal, which is how InfluxDB 1.x compares them.
fn has_duplicate_tag(tags: &[u8]) -> bool {
    const INLINE: usize = 16;
    let mut inline: [&[u8]; INLINE] = [&[]; INLINE];
    let mut count = 0;
    let mut spilled: Vec<&[u8]> = Vec::new();
    for key in tag_keys(tags) {
        if count < INLINE {
            inline[count] = key;
        } else {
            // A line with this many unsorted tags is rare enough to pay an allocation.
            if count == INLINE {
                spilled.extend_from_slice(&inline);
            }
            spilled.push(key);
        }
        count += 1;
    }
    if count <= INLINE {
        let keys = &inline[..count];
        return keys
            .iter()
            .enumerate()
            .any(|(a, ka)| keys[a + 1..].iter().any(|kb| ka == kb));
    }
    spilled.sort_unstable();
    spilled.windows(2).any(|w| w[0] == w[1])
}

/// The raw keys of a validated tag section.
fn tag_keys(tags: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= tags.len() {
            return None;
        }
        let start = i;
        let mut in_key = true;
        let mut key_end = tags.len();
        i += 1;
        while i < tags.len() {
            let b = tags[i];
            if tags[i - 1] != b'\\' {
                if in_key && b == b'=' {
                    key_end = i;
                    in_key = false;
                    // The value's first byte is never a separator.
                    i += 1;
                } else if !in_key && b == b',' {
                    break;
                }
            }
            i += 1;
        }
        i += 1;
        Some(&tags[start..key_end])
    })
}

/// Largest magnitudes, in decimal without leading zeros.
const I64_MAX: &[u8] = b"9223372036854775807";
const I64_MIN_ABS: &[u8] = b"9223372036854775808";
const U64_MAX: &[u8] = b"18446744073709551615";

/// `i` if a number ends there, else the number has trailing junk.
#[inline]
fn value_end(line: &[u8], i: usize) -> Result<usize, &'static str> {
    match line.get(i) {
        None | Some(b',' | b' ') => Ok(i),
        Some(_) => Err(reason::INVALID_NUMBER),
    }
}

/// Decimal `digits` (leading zeros allowed) are at most `max` (written without any).
fn check_integer_range(digits: &[u8], max: &[u8]) -> Result<(), &'static str> {
    if digits.len() < max.len() {
        return Ok(());
    }
    let significant = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    let digits = &digits[significant..];
    // Same length: decimal order is byte order.
    let fits = match digits.len().cmp(&max.len()) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Equal => byte_order(digits, max).is_le(),
        std::cmp::Ordering::Greater => false,
    };
    if fits {
        Ok(())
    } else {
        Err(reason::OUT_OF_RANGE)
    }
}

/// InfluxDB rejects a float that overflows to infinity (underflow to zero is fine).
fn check_float_range(token: &[u8]) -> Result<(), &'static str> {
    let value: f64 = std::str::from_utf8(token)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(reason::INVALID_NUMBER)?;
    if value.is_finite() {
        Ok(())
    } else {
        Err(reason::OUT_OF_RANGE)
    }
}

/// InfluxDB 1.x splits a body into lines with a cruder quote tracker than the parser it
/// then runs on each line: after the first unescaped space, a `"` toggles "quoted"
/// whenever more `=` than `,` have been seen outside quotes. Reject a line on which that
/// tracker would end a line early (an unquoted `\n`) or run into the next line (still
/// quoted at the end), so that what is forwarded splits on the backend exactly as here.
fn check_backend_quoting(line: &[u8]) -> Result<(), &'static str> {
    let (mut fields, mut quoted) = (false, false);
    let (mut equals, mut commas) = (0usize, 0usize);
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b == b'\\' && i + 1 < line.len() {
            i += 2;
            continue;
        }
        fields |= b == b' ';
        if fields {
            match b {
                b'=' if !quoted => equals += 1,
                b',' if !quoted => commas += 1,
                b'"' if equals > commas => quoted = !quoted,
                _ => {}
            }
        }
        if b == b'\n' && !quoted {
            return Err(reason::AMBIGUOUS_QUOTES);
        }
        i += 1;
    }
    if quoted {
        return Err(reason::AMBIGUOUS_QUOTES);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines_of(body: &[u8]) -> Vec<(Vec<u8>, usize)> {
        split_lines(body)
            .map(|l| (l.raw.to_vec(), l.number))
            .collect()
    }

    /// The splitting rules written as the plainest byte-at-a-time state machine, to
    /// check the memchr-driven splitter against.
    fn reference_split(body: &[u8]) -> Vec<(Vec<u8>, usize)> {
        #[derive(Clone, Copy, PartialEq)]
        enum S {
            Lead,
            Comment,
            Key,
            Gap,
            FieldKey,
            ValueStart,
            Value,
            Str,
            StrEscape,
            Tail,
        }
        let mut out = Vec::new();
        let mut line = Vec::new();
        let mut number = 1;
        let mut first_number = 1;
        let mut state = S::Lead;
        let mut escape = false; // a backslash in a field key or value is pending
        let mut prev = 0u8;
        for &b in body {
            let mut ends = false;
            match state {
                S::Lead => match b {
                    b' ' | b'\t' => {}
                    b'#' => state = S::Comment,
                    b'\n' => ends = true,
                    _ => state = S::Key,
                },
                S::Comment | S::Tail => ends = b == b'\n',
                S::Key => {
                    if b == b'\n' {
                        ends = true;
                    } else if b == b' ' && prev != b'\\' {
                        state = S::Gap;
                    }
                }
                S::Gap => match b {
                    b' ' | b'\t' => {}
                    b'\n' => ends = true,
                    b'\\' => {
                        state = S::FieldKey;
                        escape = true;
                    }
                    b'=' => state = S::ValueStart,
                    _ => state = S::FieldKey,
                },
                S::FieldKey | S::ValueStart | S::Value => {
                    if b == b'\n' {
                        ends = true;
                    } else if state == S::ValueStart && b == b'"' {
                        state = S::Str;
                    } else if escape {
                        escape = false;
                        if state == S::ValueStart {
                            state = S::Value;
                        }
                    } else {
                        let in_key = state == S::FieldKey;
                        state = if in_key { S::FieldKey } else { S::Value };
                        match b {
                            b'\\' => escape = true,
                            b' ' => state = S::Tail,
                            b',' => state = S::FieldKey,
                            b'=' if in_key => state = S::ValueStart,
                            _ => {}
                        }
                    }
                }
                S::Str => match b {
                    b'\\' => state = S::StrEscape,
                    b'"' => state = S::Value,
                    _ => {}
                },
                S::StrEscape => state = S::Str,
            }
            if b == b'\n' {
                number += 1;
            }
            if ends {
                out.push((std::mem::take(&mut line), first_number));
                first_number = number;
                state = S::Lead;
                escape = false;
                prev = 0;
            } else {
                line.push(b);
                prev = b;
            }
        }
        if !line.is_empty() {
            out.push((line, first_number));
        }
        out
    }

    fn body_from(alphabet: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(alphabet), 0..64)
    }

    const ALPHABET: &[u8] = b"a,= \"\\\n\r#1i.";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn split_lines_matches_reference(body in body_from(ALPHABET)) {
            prop_assert_eq!(lines_of(&body), reference_split(&body));
        }

        #[test]
        fn check_body_never_panics(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = check_body(&body);
            let mut out = Vec::new();
            stamp_body(&body, 42, &mut out);
        }

        /// Stamping a valid body gives one that needs no rewrite, has the same points,
        /// and is its own stamp.
        #[test]
        fn stamped_body_is_stable(body in body_from(b"m,t=1 v=\"\\\n\r#i.-9 fT\t")) {
            if let Ok(info) = check_body(&body) {
                let mut stamped = Vec::new();
                stamp_body(&body, 7, &mut stamped);
                let again = check_body(&stamped);
                prop_assert_eq!(
                    again.clone(),
                    Ok(BodyInfo { points: info.points, needs_rewrite: false }),
                    "{:?} -> {:?}", String::from_utf8_lossy(&body), String::from_utf8_lossy(&stamped)
                );
                let mut twice = Vec::new();
                stamp_body(&stamped, 8, &mut twice);
                prop_assert_eq!(twice, stamped);
            }
        }
    }

    /// A line `check_line` accepts: tags, several field types (a string with a newline
    /// among them), with or without a timestamp, maybe a `\r`; or a blank or comment.
    fn valid_line() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            Just("1.5".to_string()),
            Just("-2e3".to_string()),
            Just("42i".to_string()),
            Just("7u".to_string()),
            Just("t".to_string()),
            Just("false".to_string()),
            Just("\"multi\nline, \\\"quoted\\\"\"".to_string()),
            "\"[a-z ,=]{0,8}\"",
        ];
        let point = (
            "[a-z]{1,6}",
            proptest::collection::vec("[a-z0-9]{1,4}", 0..3),
            proptest::collection::vec(value, 1..4),
            proptest::option::of(-1_000_000i64..1_000_000_000),
            any::<bool>(),
        )
            .prop_map(|(m, tags, fields, ts, cr)| {
                let mut line = m;
                for (i, t) in tags.iter().enumerate() {
                    line.push_str(&format!(",t{i}={t}"));
                }
                let fields: Vec<String> = fields
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("f{i}={v}"))
                    .collect();
                line.push(' ');
                line.push_str(&fields.join(","));
                if let Some(ts) = ts {
                    line.push_str(&format!(" {ts}"));
                }
                if cr {
                    line.push('\r');
                }
                line
            });
        prop_oneof![
            8 => point,
            1 => Just(String::new()),
            1 => Just("# a comment".to_string()),
        ]
    }

    proptest! {
        /// The scanner's contract with the forwarding path, on bodies it must accept:
        /// after stamping, every line is a point with a timestamp.
        #[test]
        fn stamped_valid_bodies_have_a_timestamp_on_every_line(
            lines in proptest::collection::vec(valid_line(), 0..12),
        ) {
            let body = lines.join("\n");
            let info = check_body(body.as_bytes());
            prop_assert!(info.is_ok(), "{:?}: {:?}", body, info);
            let info = info.unwrap_or_default();
            let mut stamped = Vec::new();
            stamp_body(body.as_bytes(), 99, &mut stamped);
            let mut points = 0;
            for line in split_lines(&stamped) {
                points += 1;
                prop_assert_eq!(
                    check_line(line.text()),
                    Ok(LineKind::Point { has_timestamp: true }),
                    "{:?}", String::from_utf8_lossy(line.raw)
                );
            }
            prop_assert_eq!(points, info.points);
        }
    }

    /// What `check_body` must say, worked out from `split_lines` and `check_line`.
    fn reference_check_body(body: &[u8]) -> Result<BodyInfo, ParseError> {
        let mut info = BodyInfo::default();
        for line in split_lines(body) {
            let text = line.text();
            let cr = text.len() != line.raw.len();
            match check_line(text) {
                Ok(LineKind::Point { has_timestamp }) => {
                    info.points += 1;
                    info.needs_rewrite |= cr || !has_timestamp;
                }
                Ok(LineKind::Comment) => info.needs_rewrite = true,
                Ok(LineKind::Blank) => info.needs_rewrite |= cr,
                Err(reason) => {
                    return Err(ParseError {
                        line: line.number,
                        reason,
                    })
                }
            }
        }
        Ok(info)
    }

    /// How InfluxDB 1.x cuts a body into lines before parsing them (its own quote
    /// tracker, see `check_backend_quoting`), written out independently.
    fn backend_split(body: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut pos = 0;
        while pos < body.len() {
            let (mut fields, mut quoted, mut equals, mut commas) = (false, false, 0, 0);
            let mut i = pos;
            while i < body.len() {
                let b = body[i];
                if b == b'\\' && i + 2 < body.len() {
                    i += 2;
                    continue;
                }
                fields |= b == b' ';
                if fields && !quoted && b == b'=' {
                    equals += 1;
                } else if fields && !quoted && b == b',' {
                    commas += 1;
                } else if fields && b == b'"' && equals > commas {
                    quoted = !quoted;
                } else if b == b'\n' && !quoted {
                    break;
                }
                i += 1;
            }
            lines.push(body[pos..i].to_vec());
            pos = i + 1;
        }
        lines
    }

    /// The number grammar written out plainly: what `check_line` must accept.
    fn number_is_valid(token: &str) -> bool {
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if let Some(int) = token.strip_suffix('i') {
            let magnitude = int.strip_prefix('-').unwrap_or(int);
            return !magnitude.is_empty() && digits(magnitude) && int.parse::<i64>().is_ok();
        }
        if let Some(int) = token.strip_suffix('u') {
            return !int.is_empty() && digits(int) && int.parse::<u64>().is_ok();
        }
        let unsigned = token.strip_prefix('-').unwrap_or(token);
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(k) => (&unsigned[..k], Some(&unsigned[k + 1..])),
            None => (unsigned, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let mantissa_ok = digits(int) && digits(frac) && int.len() + frac.len() > 0;
        let exponent_ok = exponent.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
        mantissa_ok && exponent_ok && unsigned.parse::<f64>().is_ok_and(f64::is_finite)
    }

    fn one_of(options: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
        prop::sample::select(options).prop_map(str::to_owned)
    }

    /// Number-like tokens: every shape the grammar tells apart, mostly valid, and near
    /// misses.
    fn number_token() -> impl Strategy<Value = String> + Clone {
        (
            one_of(&["", "", "", "", "", "", "", "", "-", "-", "-", "+", "--"]),
            prop_oneof![8 => "[0-9]{1,12}", 2 => "[0-9]{0,21}"],
            prop::option::of("\\.[0-9]{0,4}"),
            prop::option::weighted(0.2, "[eE][+-]?[0-9]{0,3}"),
            one_of(&[
                "", "", "", "", "", "", "i", "i", "u", "x", ".", "-", "e", "i2",
            ]),
        )
            .prop_map(|(sign, int, frac, exp, suffix)| {
                format!(
                    "{sign}{int}{}{}{suffix}",
                    frac.unwrap_or_default(),
                    exp.unwrap_or_default()
                )
            })
    }

    /// Numbers of the shapes clients send.
    fn valid_number() -> impl Strategy<Value = String> + Clone {
        prop_oneof![
            "-?[0-9]{1,12}(\\.[0-9]{1,6})?",
            "-?[0-9]{1,15}i",
            "[0-9]{1,15}u",
            "-?[0-9]\\.[0-9]{1,3}[eE][+-]?[0-9]{1,2}",
            "-?\\.[0-9]{1,3}",
        ]
    }

    /// Mostly `valid` pieces, sometimes `invalid` ones.
    fn mostly(
        valid: &'static [&'static str],
        invalid: &'static [&'static str],
    ) -> impl Strategy<Value = String> + Clone {
        prop_oneof![30 => one_of(valid), 1 => one_of(invalid)]
    }

    /// Plausible lines, mostly valid, from pieces that exercise every rule.
    fn line_text() -> impl Strategy<Value = String> {
        let measurement = mostly(
            &["m", "cpu", "m\\ x", "m\\,y", "\"q\"", "été", "m=x", "\\ m"],
            &[",m", "", "m\\"],
        );
        let tag = (
            mostly(&["t", "host", "a\\ b", "a\\=b", "\"k\"", "t", "u"], &[""]),
            mostly(
                &["1", "web01", "a\\ b", "a\\,b", "\"v\""],
                &["x=y", "", "a\\\\"],
            ),
        );
        let field_value = prop_oneof![
            6 => valid_number(),
            1 => number_token(),
            3 => one_of(&[
                "t", "true", "F", "FALSE", "\"s\"", "\"a,b c=d\"", "\"x\\\"y\"",
                "\"multi\nline\"", "\"a\r\nb\"", "\"\\\\\"", "\"\"", "\"é\"",
            ]),
            1 => one_of(&["tRUE", "\"open", "", "\"x\"y", "n", "1", "2.5"]),
        ];
        let field = (
            mostly(
                &["v", "usage_idle", "a\\ b", "a\\,b", "a\\=b", "\"f\"", "w"],
                &[""],
            ),
            field_value,
        );
        let timestamp = prop_oneof![
            4 => Just(String::new()),
            4 => one_of(&["1700000000000000000", "-1", "0"]),
            1 => number_token(),
        ];
        (
            one_of(&["", "", "", " ", "\t"]),
            measurement,
            prop::collection::vec(tag, 0..3),
            one_of(&[" ", " ", "  ", " \t"]),
            prop::collection::vec(field, 1..4),
            timestamp,
            mostly(&["", "", "", " ", "\r", " \r"], &["\t", "\r\r"]),
        )
            .prop_map(|(lead, m, tags, sep, fields, ts, trail)| {
                let mut line = format!("{lead}{m}");
                for (k, v) in tags {
                    line += &format!(",{k}={v}");
                }
                line += &sep;
                let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                line += &fields.join(",");
                if !ts.is_empty() {
                    line += &format!(" {ts}");
                }
                line + &trail
            })
    }

    /// Bodies of such lines with comments and blank lines, sometimes with one byte
    /// replaced.
    fn body_text() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            8 => line_text(),
            1 => one_of(&["", "# note", "  # \"quoted", " \t", "\r"]),
        ];
        (
            prop::collection::vec(line, 1..5),
            any::<bool>(),
            prop::option::weighted(
                0.2,
                (any::<prop::sample::Index>(), prop::sample::select(ALPHABET)),
            ),
        )
            .prop_map(|(lines, final_newline, mutation)| {
                let mut body = lines.join("\n").into_bytes();
                if final_newline {
                    body.push(b'\n');
                }
                if let Some((at, byte)) = mutation {
                    if !body.is_empty() {
                        let at = at.index(body.len());
                        body[at] = byte;
                    }
                }
                body
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The whole-body checker (one scan, optimistic line ends, lazy line numbers)
        /// says exactly what checking `split_lines` one line at a time says.
        #[test]
        fn check_body_matches_line_by_line(body in body_text()) {
            prop_assert_eq!(
                check_body(&body),
                reference_check_body(&body),
                "{:?}", String::from_utf8_lossy(&body)
            );
        }

        #[test]
        fn check_body_matches_line_by_line_on_noise(body in body_from(ALPHABET)) {
            prop_assert_eq!(check_body(&body), reference_check_body(&body));
        }

        /// The fast paths for keys and fields change no answer, on plausible bodies and on
        /// ones built to sit on their edges.
        #[test]
        fn fast_paths_change_nothing(body in prop_oneof![body_text(), edge_body()]) {
            prop_assert_eq!(
                check_body(&body),
                general_check_body(&body),
                "{:?}", String::from_utf8_lossy(&body)
            );
        }

        /// A stamped body needs no rewrite, has the same points, is its own stamp, and
        /// InfluxDB cuts it into exactly the lines counted here.
        #[test]
        fn stamped_bodies_split_the_same_on_the_backend(body in body_text()) {
            if let Ok(info) = check_body(&body) {
                let stamped = stamped(&body, 7);
                prop_assert_eq!(
                    check_body(&stamped),
                    Ok(BodyInfo { points: info.points, needs_rewrite: false })
                );
                prop_assert_eq!(stamped_twice(&stamped), stamped.clone());
                let ours: Vec<Vec<u8>> = split_lines(&stamped).map(|l| l.raw.to_vec()).collect();
                prop_assert_eq!(ours.len(), info.points);
                prop_assert_eq!(backend_split(&stamped), ours);
            }
        }

        /// Numbers at every offset in the 64-byte words and across them, in bodies of
        /// one to three lines: the bitmap fast path and the byte-wise path agree with
        /// the plain grammar.
        #[test]
        fn numbers_follow_the_grammar(token in number_token(), pad in 0usize..140, lines in 1usize..4) {
            let want = number_is_valid(&token);
            let name = "m".repeat(pad + 1);
            for line in [
                format!("{name} v={token}"),
                format!("{name} v={token},w=1"),
                format!("{name} w=1,v={token} 5"),
            ] {
                prop_assert_eq!(check_line(line.as_bytes()).is_ok(), want, "{:?}", line);
                let body = format!("{line}\n").repeat(lines);
                prop_assert_eq!(check_body(body.as_bytes()).is_ok(), want, "{:?}", body);
                let mut general = Scan::new(body.as_bytes());
                general.fast_paths = false;
                prop_assert_eq!(check_lines(general).is_ok(), want, "{:?}", body);
            }
        }

        #[test]
        fn timestamps_follow_the_grammar(token in number_token(), pad in 0usize..140) {
            let magnitude = token.strip_prefix('-').unwrap_or(&token);
            let want = !magnitude.is_empty()
                && magnitude.bytes().all(|b| b.is_ascii_digit())
                && token.parse::<i64>().is_ok();
            let line = format!("{} v=1 {token}", "m".repeat(pad + 1));
            let got = check_line(line.as_bytes());
            if token.is_empty() {
                prop_assert_eq!(got, Ok(LineKind::Point { has_timestamp: false }));
            } else if want {
                prop_assert_eq!(got, Ok(LineKind::Point { has_timestamp: true }));
            } else {
                prop_assert!(got.is_err(), "{:?} {:?}", line, got);
            }
        }
    }

    /// `string_end` written byte by byte.
    fn reference_string_end(buf: &[u8], mut i: usize) -> Option<usize> {
        while i < buf.len() {
            match buf[i] {
                b'"' => return Some(i + 1),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        None
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The word-at-a-time search agrees with the plain one, from any start, on
        /// strings short and long, closed or not.
        #[test]
        fn string_end_matches_reference(
            buf in prop::collection::vec(
                prop_oneof![20 => Just(b'a'), 1 => Just(b'"'), 2 => Just(b'\\'), 1 => any::<u8>()],
                0..200,
            ),
            start in any::<prop::sample::Index>(),
        ) {
            let start = start.index(buf.len() + 1);
            prop_assert_eq!(string_end(&buf, start), reference_string_end(&buf, start));
        }
    }

    /// `check_body` with the fast paths off.
    fn general_check_body(body: &[u8]) -> Result<BodyInfo, ParseError> {
        let mut general = Scan::new(body);
        general.fast_paths = false;
        check_lines(general)
    }

    /// Lines on the edges of `plain_key` and `skip_plain_fields`: tag keys that share
    /// their first 8 bytes or are prefixes of one another, NUL bytes, unsorted and
    /// repeated keys, escapes, empty parts, booleans and strings anywhere, CRLF.
    fn edge_body() -> impl Strategy<Value = Vec<u8>> {
        let tag_key = mostly(
            &[
                "a",
                "ab",
                "b",
                "a\0",
                "abcdefg",
                "abcdefgh",
                "abcdefghi",
                "abcdefgi",
                "abcdefghij",
                "abcdefgh\0",
                "host",
                "region",
                r"a\ b",
                r"a\,b",
                r"a\=b",
            ],
            &["", "a=b", r"\"],
        );
        let tag_value = mostly(
            &["1", "x", "web-01", r"a\ b", r"a\=b", "\""],
            &["", "=", "a=b", r"\"],
        );
        let field_value = mostly(
            &[
                "1",
                "12",
                "1.5",
                "0.123",
                "555i",
                "-1",
                "1e3",
                "t",
                "true",
                "FALSE",
                r#""""#,
                r#""ok""#,
                r#""ok, warming up""#,
                r#""a=b c""#,
                r#""e \"q\" s""#,
                r#""\\""#,
                "\"a\nb\"",
                r#""0123456789abcdef0123456789abcdef0123456789abcdef0123456789""#,
            ],
            &["truex", "tru", r#""x"y"#, r#""open"#, ""],
        );
        let line = (
            mostly(&["m", "cpu", "m=x", r"m\ x"], &["", ",m"]),
            prop::collection::vec((tag_key, tag_value), 0..5),
            mostly(&[" ", "  "], &[","]),
            prop::collection::vec(
                (mostly(&["v", "w", "usage", r"a\ b"], &[""]), field_value),
                1..5,
            ),
            mostly(&["", " 1795317000000000000", " 1", " -5"], &[" x", " 1 "]),
            mostly(&["", "\r", " "], &["\t"]),
        )
            .prop_map(|(m, mut tags, sep, fields, ts, trail)| {
                // Mostly sorted, as clients send them.
                if m.len() != 3 {
                    tags.sort();
                }
                let mut line = m.to_string();
                for (k, v) in tags {
                    line += &format!(",{k}={v}");
                }
                line += &sep;
                let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                line + &fields.join(",") + &ts + &trail
            });
        prop::collection::vec(line, 1..4).prop_map(|lines| lines.join("\n").into_bytes())
    }

    fn stamped_twice(body: &[u8]) -> Vec<u8> {
        stamped(body, 8)
    }

    /// Lines longer than the scan's 1 KiB window, with tokens straddling its edges.
    #[test]
    fn long_lines_cross_windows() {
        for pad in [0, 1, 7, 63, 64, 65, 1000, 1017, 1023, 1024, 1025, 3000] {
            let mut fields = Vec::new();
            for k in 0..200 {
                fields.push(format!("f{k}={}.{k}", k * 37));
                fields.push(format!("g{k}={}i", k * 1_000_003));
                fields.push(format!("h{k}=\"s {k}, x=y\""));
            }
            let line = format!(
                "{},t=v {} 1700000000000000000",
                "m".repeat(pad + 1),
                fields.join(",")
            );
            let body = format!("{line}\n{line}\r\n# c\n{line}");
            assert_eq!(
                check_body(body.as_bytes()),
                Ok(BodyInfo {
                    points: 3,
                    needs_rewrite: true
                }),
                "pad {pad}"
            );
            let broken = body.replacen("g150=", "g150=x", 1);
            assert_eq!(
                check_body(broken.as_bytes()),
                Err(ParseError {
                    line: 1,
                    reason: reason::INVALID_BOOLEAN
                }),
                "pad {pad}"
            );
            let broken = format!(
                "{line}\n{}",
                line.replace("f199=7363.199", "f199=7363.1.99")
            );
            assert_eq!(
                check_body(broken.as_bytes()),
                Err(ParseError {
                    line: 2,
                    reason: reason::INVALID_NUMBER
                }),
                "pad {pad}"
            );
        }
    }

    /// Line ends are found from the window's newline bits, and with `memchr` past its
    /// end: lines of every length near a word and near a window, so that their `\n`
    /// (or `\r\n`, or a `\n` inside a string) falls on each side of every edge, a line
    /// that exactly fills a window, and a last line without `\n`.
    #[test]
    fn line_ends_on_window_edges() {
        let window = 64 * WINDOW_WORDS;
        let pads = (1..140).chain(window - 70..window + 70);
        for pad in pads {
            let m = "m".repeat(pad);
            let shapes = [
                format!("{m} v=1"),
                format!("{m} v=1 5\r"),
                format!("{m} s=\"a\nb\",v=1i 5"),
                format!("{m} s=\"a\r\n\""),
                format!("# {m} \""),
                format!("{m},t=\"x v=1"),
            ];
            for (k, shape) in shapes.iter().enumerate() {
                // Enough lines to cross a few windows, a different shape in the middle.
                let mut lines = vec![shape.clone(); 3 * window / (pad + 8) + 3];
                let mid = lines.len() / 2;
                lines[mid] = shapes[(k + 1) % shapes.len()].clone();
                let body = lines.join("\n");
                for body in [
                    body.clone(),
                    format!("{body}\n"),
                    format!("{body}\n{m} v=1.1."),
                ] {
                    let want = reference_check_body(body.as_bytes());
                    assert_eq!(check_body(body.as_bytes()), want, "pad {pad} shape {k}");
                    assert_eq!(general_check_body(body.as_bytes()), want, "pad {pad}");
                }
            }
        }
        // One line, `\n` included, exactly a window; then the next starts a new one.
        let line = format!("{} v=1\n", "m".repeat(window - 5));
        assert_eq!(line.len(), window);
        let body = format!("{line}{line}m v=\"\n\"");
        assert_eq!(
            check_body(body.as_bytes()),
            Ok(BodyInfo {
                points: 3,
                needs_rewrite: true
            })
        );
        let body = format!("{line}{line}m v=\"\n");
        assert_eq!(
            check_body(body.as_bytes()),
            Err(ParseError {
                line: 3,
                reason: reason::UNTERMINATED_STRING
            })
        );
    }

    /// Short buffers classify through the padded path, and the first line of a body
    /// through the one that reaches back: every length up to two words.
    #[test]
    fn every_short_length() {
        for len in 1..130 {
            let line = format!("m v={}", "9".repeat(len));
            assert!(check_line(line.as_bytes()).is_ok(), "{len}");
            let line = format!("m v={}x", "9".repeat(len));
            assert_eq!(
                check_line(line.as_bytes()),
                Err(reason::INVALID_NUMBER),
                "{len}"
            );
            let body = format!("m v=1\nm v=1,w=2i{}\n", " ".repeat(len));
            assert!(check_body(body.as_bytes()).is_ok(), "{len}");
        }
    }

    /// One row of `tests/data/lineproto-cases.jsonl`.
    struct Case {
        line: Vec<u8>,
        relay: String,
    }

    /// The JSON string value of `key` in a flat one-line object.
    fn json_field(row: &str, key: &str) -> String {
        let pat = format!("\"{key}\": \"");
        let at = row
            .find(&pat)
            .unwrap_or_else(|| panic!("no {key} in {row}"))
            + pat.len();
        let mut out = String::new();
        let mut chars = row[at..].chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return out,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let code = u32::from_str_radix(&hex, 16).expect("\\u escape");
                        out.push(char::from_u32(code).expect("scalar value"));
                    }
                    Some(other) => out.push(other), // \" \\ \/
                    None => break,
                },
                c => out.push(c),
            }
        }
        panic!("unterminated {key} in {row}");
    }

    fn cases() -> Vec<Case> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/lineproto-cases.jsonl"
        );
        let text = std::fs::read_to_string(path).expect("read the cases");
        text.lines()
            .filter(|row| !row.trim().is_empty())
            .map(|row| Case {
                line: json_field(row, "line").into_bytes(),
                relay: json_field(row, "relay"),
            })
            .collect()
    }

    fn stamped(body: &[u8], ts: i64) -> Vec<u8> {
        let mut out = Vec::new();
        stamp_body(body, ts, &mut out);
        out
    }

    #[test]
    fn influxdb_cases() {
        let cases = cases();
        assert_eq!(cases.len(), 97);
        let mut checked = 0;
        for case in &cases {
            let shown = String::from_utf8_lossy(&case.line);
            let result = check_body(&case.line);
            match case.relay.as_str() {
                "must-accept" => {
                    let info = result.unwrap_or_else(|e| panic!("{shown:?} rejected: {e}"));
                    assert_eq!(info.points, 1, "{shown:?}");
                    let text = case.line.strip_suffix(b"\r").unwrap_or(&case.line);
                    let kind = check_line(text).expect("check_line agrees");
                    let LineKind::Point { has_timestamp } = kind else {
                        panic!("{shown:?} is {kind:?}");
                    };
                    assert_eq!(has_timestamp, ends_with_timestamp(text), "{shown:?}");
                    let mut want = if has_timestamp {
                        text.to_vec()
                    } else {
                        let mut w = trim_end_blanks(text).to_vec();
                        w.extend_from_slice(b" 123");
                        w
                    };
                    want.push(b'\n');
                    assert_eq!(stamped(&case.line, 123), want, "{shown:?}");
                    checked += 1;
                }
                "must-reject" => {
                    assert!(result.is_err(), "{shown:?} accepted");
                    checked += 1;
                }
                "either" => {}
                other => panic!("unknown verdict {other}"),
            }
        }
        assert_eq!(checked, 94);
    }

    fn reason_of(body: &str) -> Result<BodyInfo, ParseError> {
        check_body(body.as_bytes())
    }

    fn err(line: usize, reason: &'static str) -> Result<BodyInfo, ParseError> {
        Err(ParseError { line, reason })
    }

    #[test]
    fn reasons() {
        use reason::*;
        let table: &[(&str, &str)] = &[
            (",t=1 v=1", MISSING_MEASUREMENT),
            ("m", MISSING_FIELDS),
            ("m ", MISSING_FIELDS),
            ("m,t=1", MISSING_FIELDS),
            ("m,t v=1", MISSING_TAG_VALUE),
            ("m,t= v=1", MISSING_TAG_VALUE),
            ("m,=1 v=1", MISSING_TAG_KEY),
            ("m, v=1", MISSING_TAG_KEY),
            ("m,t=a=b v=1", INVALID_TAG),
            ("m,t==b v=1", INVALID_TAG),
            ("m,b=1,a=2,b=3 v=1", DUPLICATE_TAG),
            ("m,a=1,a=2 v=1", DUPLICATE_TAG),
            ("m =1", MISSING_FIELD_KEY),
            ("m v=1,=2", MISSING_FIELD_KEY),
            ("m v=", MISSING_FIELD_VALUE),
            ("m v=,w=1", MISSING_FIELD_VALUE),
            ("m v", INVALID_FIELD),
            ("m v=1,", INVALID_FIELD),
            ("m v=\"x\"y", INVALID_FIELD),
            ("m v=1.2.3", INVALID_NUMBER),
            ("m v=1.5i", INVALID_NUMBER),
            ("m v=-1u", INVALID_NUMBER),
            ("m v=1e5i", INVALID_NUMBER),
            ("m v=-", INVALID_NUMBER),
            ("m v=.", INVALID_NUMBER),
            ("m v=nan", INVALID_NUMBER),
            ("m v=1e400", OUT_OF_RANGE),
            ("m v=18446744073709551616u", OUT_OF_RANGE),
            ("m v=-9223372036854775809i", OUT_OF_RANGE),
            ("m v=yes", INVALID_BOOLEAN),
            ("m v=truE", INVALID_BOOLEAN),
            ("m v=\"abc", UNTERMINATED_STRING),
            ("m v=1 12a", BAD_TIMESTAMP),
            ("m v=1 -", BAD_TIMESTAMP),
            ("m v=1 9223372036854775808", BAD_TIMESTAMP),
            ("m v=1 1\t", BAD_TIMESTAMP),
            ("m v=1 1 2", AFTER_TIMESTAMP),
            ("m v=1 1 \t", AFTER_TIMESTAMP),
            (" m=x,t=a\"b v=1", AMBIGUOUS_QUOTES),
            ("m v=\"x\"y,w=1", INVALID_FIELD),
            ("m v=truex,w=1", INVALID_BOOLEAN),
            ("m v=true w=1", BAD_TIMESTAMP),
            ("m,abcdefghX=1,abcdefghX=2 v=1", DUPLICATE_TAG),
            ("m,a\0=1,a\0=2 v=1", DUPLICATE_TAG),
        ];
        for &(line, want) in table {
            assert_eq!(reason_of(line), err(1, want), "{line:?}");
        }
    }

    #[test]
    fn numbers_at_the_limits() {
        for ok in [
            "m v=18446744073709551615u",
            "m v=-9223372036854775808i",
            "m v=0000000000000000000000000001i",
            "m v=1e-400",
            "m v=1.7976931348623157e308",
            "m v=-.5",
            "m v=-5.",
            "m v=1.e5",
            "m v=0E-0",
            "m v=1 -9223372036854775808",
            "m v=1 9223372036854775807",
        ] {
            assert!(reason_of(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(reason_of("m v=1.8e308"), err(1, reason::OUT_OF_RANGE));
        let long = format!("m v={}", "9".repeat(400));
        assert_eq!(reason_of(&long), err(1, reason::OUT_OF_RANGE));
        let long = format!("m v={}.5", "0".repeat(400));
        assert!(reason_of(&long).is_ok());
    }

    #[test]
    fn line_numbers_count_physical_lines() {
        let body = "a v=1\n\n# note\nb v=2\nc v=\"x\ny\nz\"\n  \nd v=oops\n";
        assert_eq!(reason_of(body), err(9, reason::INVALID_BOOLEAN));
        let body = "a v=1\r\nb v=\"one\r\ntwo\"\r\nc\r\n";
        assert_eq!(reason_of(body), err(4, reason::MISSING_FIELDS));
        assert_eq!(
            reason_of("a v=1\nb v=\"never closed\nc v=1\n"),
            err(2, reason::UNTERMINATED_STRING)
        );
        assert_eq!(reason_of("x"), err(1, reason::MISSING_FIELDS));
        assert_eq!(reason_of("\n\n\nx"), err(4, reason::MISSING_FIELDS));
    }

    #[test]
    fn quoted_newlines() {
        let body = b"m v=\"a\nb\",w=1i 5\nm v=\"c\\\"\nd\" 6\nm s=\"\\\\\" 7\n";
        let lines = lines_of(body);
        assert_eq!(
            lines,
            vec![
                (b"m v=\"a\nb\",w=1i 5".to_vec(), 1),
                (b"m v=\"c\\\"\nd\" 6".to_vec(), 3),
                (b"m s=\"\\\\\" 7".to_vec(), 5),
            ]
        );
        assert_eq!(
            check_body(body),
            Ok(BodyInfo {
                points: 3,
                needs_rewrite: false
            })
        );
        // Quotes outside a field value do not open a string.
        let body = b"\"m\",t=\"a v=1 1\nm,t=b\" v=1 2\n# say \"hi\nm v=\"x\" 3\n";
        assert_eq!(lines_of(body).len(), 4);
        assert_eq!(
            check_body(body),
            Ok(BodyInfo {
                points: 3,
                needs_rewrite: true
            })
        );
        // A string key is not a string value.
        assert_eq!(lines_of(b"m \"k=1 2\nm v=2").len(), 2);
    }

    #[test]
    fn crlf_blank_and_comment_lines() {
        let body = b"# header\r\n\r\n  \t\nm v=1 10\r\n\t# indented\nm v=2 11\r\n";
        assert_eq!(
            check_body(body),
            Ok(BodyInfo {
                points: 2,
                needs_rewrite: true
            })
        );
        assert_eq!(stamped(body, 99), b"m v=1 10\nm v=2 11\n");
        let body = b"m v=1 10\n\nm v=2 11";
        assert_eq!(
            check_body(body),
            Ok(BodyInfo {
                points: 2,
                needs_rewrite: false
            })
        );
        assert_eq!(check_body(b""), Ok(BodyInfo::default()));
        assert_eq!(check_body(b"\n \n"), Ok(BodyInfo::default()));
        assert_eq!(check_line(b"  # c"), Ok(LineKind::Comment));
        assert_eq!(check_line(b" \t "), Ok(LineKind::Blank));
        // Only one `\r` is a line ending.
        assert_eq!(reason_of("m v=1\r\r\n"), err(1, reason::INVALID_NUMBER));
    }

    #[test]
    fn escapes() {
        for ok in [
            "m\\ x,t\\ k=v\\ w f\\ k=1",
            "m\\,x,t\\,k=v\\,w f\\,k=1",
            "m,t\\=k=v\\=w f\\=k=1",
            "m v=\"a\\\\\"",
            "m v=\"\\\"\"",
            "m v=\"a\\nb\"",
            "m=x v=1",
            "\\ m v=1",
            "m,t=a\\ b\\,c\\=d v=1",
        ] {
            assert!(reason_of(ok).is_ok(), "{ok:?}: {:?}", reason_of(ok));
        }
        // InfluxDB's key scanner only looks at the byte before a separator.
        assert_eq!(reason_of("m,t=a\\\\ v=1"), err(1, reason::INVALID_TAG));
        assert_eq!(reason_of("m v=1\\"), err(1, reason::INVALID_NUMBER));
        assert_eq!(reason_of("m v\\"), err(1, reason::INVALID_FIELD));
        // A backslash before a newline does not join lines.
        assert_eq!(lines_of(b"m,t=a\\\nb v=1").len(), 2);
        assert_eq!(reason_of("m,t=a\\\nb v=1"), err(1, reason::MISSING_FIELDS));
    }

    #[test]
    fn unsorted_tags() {
        assert!(reason_of("m,b=1,a=2,c=3 v=1").is_ok());
        let many: Vec<String> = (0..40).rev().map(|i| format!("k{i:02}=v")).collect();
        let line = format!("m,{} v=1", many.join(","));
        assert!(reason_of(&line).is_ok());
        let line = format!("m,{},k17=w v=1", many.join(","));
        assert_eq!(reason_of(&line), err(1, reason::DUPLICATE_TAG));
        let line = format!("m,{},k17=w v=1", many[..10].join(","));
        assert!(reason_of(&line).is_ok());
        let line = format!("m,{},k35=w v=1", many[..10].join(","));
        assert_eq!(reason_of(&line), err(1, reason::DUPLICATE_TAG));
        // Keys compare as written: an escaped space is not a space.
        assert!(reason_of("m,a\\ b=1,a\\,b=2 v=1").is_ok());
        assert_eq!(
            reason_of("m,b=1,a\\ b=2,a\\ b=3 v=1"),
            err(1, reason::DUPLICATE_TAG)
        );
        assert!(reason_of("m,b\\ =1,b=2,b\\ =3 v=1").is_err());
    }

    /// Keys that `key_prefix` orders, and ones only the full compare tells apart.
    #[test]
    fn tag_order_near_8_bytes() {
        for line in [
            "m,abcdefghX=1,abcdefghY=2 v=1",
            "m,abcdefghY=1,abcdefghX=2 v=1",
            "m,abcdefgh=1,abcdefghX=2 v=1",
            "m,abcdefghX=1,abcdefgh=2 v=1",
            "m,a=1,ab=2 v=1",
            "m,ab=1,a=2 v=1",
            "m,a=1,a\0=2 v=1",
            "m,a\0=1,a=2 v=1",
            "m,a=1,b=2,a\0=3 v=1",
        ] {
            assert_eq!(
                reason_of(line),
                Ok(BodyInfo {
                    points: 1,
                    needs_rewrite: true
                }),
                "{line:?}"
            );
        }
    }

    /// Booleans and strings, last on the line or not, with and without a timestamp.
    #[test]
    fn booleans_and_strings_anywhere() {
        for (line, needs_rewrite) in [
            ("m v=true", true),
            ("m v=t,w=\"x\" 1", false),
            ("m v=\"a, b=c\" 1", false),
            ("m v=\"e \\\"q\\\" s\",w=F", true),
            ("m v=\"\\\\\",w=1i 1", false),
            ("m v=FALSE 1795317000000000000", false),
        ] {
            let want = Ok(BodyInfo {
                points: 1,
                needs_rewrite,
            });
            assert_eq!(reason_of(line), want, "{line:?}");
            let body = format!("{line}\n{line}\r\n");
            assert_eq!(
                check_body(body.as_bytes()).map(|i| i.points),
                Ok(2),
                "{body:?}"
            );
        }
    }

    #[test]
    fn newline_only_inside_strings() {
        assert_eq!(check_line(b"m\nx v=1"), Err(reason::NEWLINE));
        assert_eq!(check_line(b"m,t=a\nb v=1"), Err(reason::NEWLINE));
        assert_eq!(check_line(b"m v\nw=1"), Err(reason::NEWLINE));
        assert_eq!(check_line(b"m v=1\n"), Err(reason::INVALID_NUMBER));
        assert_eq!(check_line(b"\nm v=1"), Err(reason::NEWLINE));
        assert_eq!(
            check_line(b"m v=\"a\nb\""),
            Ok(LineKind::Point {
                has_timestamp: false
            })
        );
    }

    #[test]
    fn stamping_at_each_precision() {
        let ns: i64 = 1_700_000_123_456_789_012;
        let want = [
            ("n", 1_700_000_123_456_789_012),
            ("ns", 1_700_000_123_456_789_012),
            ("u", 1_700_000_123_456_789),
            ("us", 1_700_000_123_456_789),
            ("µ", 1_700_000_123_456_789),
            ("ms", 1_700_000_123_456),
            ("s", 1_700_000_123),
            ("m", 28_333_335),
            ("h", 472_222),
        ];
        let body = b"m v=1\nm v=2 5\nm v=3  \t\r\n";
        for (name, ts) in want {
            let precision = Precision::parse(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(precision.from_nanos(ns), ts, "{name}");
            let out = stamped(body, precision.from_nanos(ns));
            let expect = format!("m v=1 {ts}\nm v=2 5\nm v=3 {ts}\n");
            assert_eq!(String::from_utf8_lossy(&out), expect, "{name}");
        }
        for bad in ["", "N", "nanoseconds", "S", "μ", "us "] {
            assert_eq!(Precision::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            Precision::parse("us").map(Precision::as_query_value),
            Some("u")
        );
        assert_eq!(Precision::default().as_query_value(), "n");
    }

    #[test]
    fn timestamps_are_written_in_decimal() {
        for ts in [0, 7, -7, 1_700_000_000, i64::MAX, i64::MIN] {
            let mut out = b"x".to_vec();
            write_timestamp(&mut out, ts);
            assert_eq!(out, format!("x{ts}").into_bytes());
        }
    }

    #[test]
    fn needs_rewrite() {
        let cases: &[(&str, bool)] = &[
            ("m v=1 1\nm v=2 2\n", false),
            ("m v=1 1\nm v=2\n", true),
            ("m v=1 1\r\n", true),
            ("m v=1 1\n# c\n", true),
            ("m v=1 1\n\n   \n", false),
            ("m v=1 1 ", false),
        ];
        for &(body, want) in cases {
            let info = reason_of(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
            assert_eq!(info.needs_rewrite, want, "{body:?}");
        }
    }

    #[test]
    fn error_display() {
        let e = ParseError {
            line: 3,
            reason: reason::BAD_TIMESTAMP,
        };
        assert_eq!(e.to_string(), "line 3: bad timestamp");
    }
}
