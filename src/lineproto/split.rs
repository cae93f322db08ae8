//! Where lines end: `\n`, except inside a double-quoted string field value.

use memchr::{memchr, memchr2};

use super::*;

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
pub(super) fn quoted_line_end(rest: &[u8]) -> (usize, usize) {
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
pub(super) fn string_end(buf: &[u8], mut i: usize) -> Option<usize> {
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
