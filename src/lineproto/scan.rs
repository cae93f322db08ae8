//! The grammar of one line, walked over bitmaps of the body's bytes (see `simd`).

use memchr::memchr;

use super::grammar::*;
use super::simd;
use super::*;

/// How many 64-byte words one classification pass of a body covers at most: 4 KiB, in
/// 1.5 KiB of stack. A line that a window ends inside is found with `memchr` and
/// makes the next window reclassify a word: the fewer windows, the fewer of those.
pub(super) const WINDOW_WORDS: usize = 64;

/// A buffer's bytes as bitmaps, one bit per byte, built a window at a time with SIMD
/// compares, and the grammar that walks them. Finding the next separator is then a mask
/// and a `tzcnt`, and most numbers are checked from their non-digit bits alone.
///
/// A window has `WORDS` words: a whole body is worth classifying kilobytes ahead, a lone
/// line found by `split_lines` is not (nor zeroing a large window for it).
pub(super) struct Scan<'a, const WORDS: usize = WINDOW_WORDS> {
    /// The whole buffer; lines are checked in order, each classified once.
    pub(super) body: &'a [u8],
    /// The line being checked, `body[..limit]`: the grammar reads no further, and treats
    /// reaching `line.len()` as the end of the line.
    pub(super) line: &'a [u8],
    /// The window `body[base..end]` that the bitmaps describe (bit `k % 64` of word
    /// `k / 64` is byte `base + k`; bits past `end` are clear).
    pub(super) base: usize,
    pub(super) end: usize,
    /// Take the commonest keys and runs of fields in tight loops (off only to test the
    /// general grammar).
    pub(super) fast_paths: bool,
    /// The window's bitmaps, a word per 64 bytes.
    pub(super) bits: [simd::Bits; WORDS],
}

/// Where the grammar is in the bitmaps: one word of each, small enough to stay in
/// registers while a function walks the line.
#[derive(Clone, Copy)]
pub(super) struct Cursor {
    /// Position of bit 0 of both words.
    pub(super) at: usize,
    /// Stops from the cursor's position on; earlier ones may be cleared, so a cursor
    /// only moves forwards (a function that goes back takes a new one).
    pub(super) stops: u64,
    /// Non-digits, whole.
    pub(super) non_digits: u64,
}

impl<'a, const WORDS: usize> Scan<'a, WORDS> {
    pub(super) fn new(body: &'a [u8]) -> Scan<'a, WORDS> {
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
    pub(super) fn check_span(
        &mut self,
        start: usize,
        end: usize,
    ) -> (Result<LineKind, Reason>, bool) {
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
    pub(super) fn check(&mut self, start: usize) -> Result<LineKind, Reason> {
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
    pub(super) fn load(&mut self, i: usize) {
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
    pub(super) fn line_end(&mut self, pos: usize) -> usize {
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
    pub(super) fn cursor(&mut self, i: usize) -> Cursor {
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
    pub(super) fn stop_from(&mut self, cur: &mut Cursor, mut i: usize) -> usize {
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
    pub(super) fn stop_after(&mut self, cur: &mut Cursor) -> usize {
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
    pub(super) fn non_digits_of(&self, cur: &Cursor, start: usize, end: usize) -> Option<u64> {
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
    pub(super) fn next_non_digit(&mut self, mut i: usize) -> usize {
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
    pub(super) fn plain_key(&mut self, start: usize) -> Option<KeyEnd> {
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
    pub(super) fn key(&mut self, start: usize) -> Result<KeyEnd, Reason> {
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
    pub(super) fn tags(
        &mut self,
        mut cur: Cursor,
        first: usize,
        mut escaped_space: bool,
    ) -> Result<KeyEnd, Reason> {
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
    pub(super) fn fields(&mut self, mut cur: Cursor, from: usize) -> Result<bool, Reason> {
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
    pub(super) fn skip_plain_fields(
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
    pub(super) fn number(&mut self, cur: &mut Cursor, start: usize) -> Result<usize, Reason> {
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
    pub(super) fn any_number(&mut self, start: usize) -> Result<usize, Reason> {
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
    pub(super) fn boolean(&mut self, cur: &mut Cursor, start: usize) -> Result<usize, Reason> {
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
    pub(super) fn timestamp(&mut self, cur: Cursor, from: usize) -> Result<bool, Reason> {
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
    pub(super) fn any_timestamp(&mut self, mut cur: Cursor, from: usize) -> Result<bool, Reason> {
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
