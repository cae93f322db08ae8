//! Small checks the grammar calls: values, keys, numeric ranges, quoting.

use super::*;

/// Whether `value` is one of InfluxDB's spellings of a boolean.
#[inline(always)]
pub(super) fn is_boolean(value: &[u8]) -> bool {
    matches!(
        value,
        b"t" | b"T" | b"true" | b"True" | b"TRUE" | b"f" | b"F" | b"false" | b"False" | b"FALSE"
    )
}

/// Whether every byte is an ASCII digit, eight at a time.
pub(super) fn all_digits(bytes: &[u8]) -> bool {
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
pub(super) fn skip_blanks(line: &[u8], mut i: usize) -> usize {
    while i < line.len() && matches!(line[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

pub(super) fn trim_end_blanks(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

/// Where the measurement and tags end.
pub(super) struct KeyEnd {
    /// Index of the space that ends them.
    pub(super) end: usize,
    /// They contain an escaped space.
    pub(super) escaped_space: bool,
    /// On that space, for the fields to go on from.
    pub(super) cur: Cursor,
}

/// `a.cmp(b)` without a call to `memcmp`, which costs more than the few bytes that
/// short keys and timestamps need.
#[inline]
pub(super) fn byte_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
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
pub(super) fn key_prefix(line: &[u8], start: usize, end: usize) -> Option<u64> {
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
pub(super) fn has_duplicate_tag(tags: &[u8]) -> bool {
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
pub(super) fn tag_keys(tags: &[u8]) -> impl Iterator<Item = &[u8]> {
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
pub(super) const I64_MAX: &[u8] = b"9223372036854775807";
pub(super) const I64_MIN_ABS: &[u8] = b"9223372036854775808";
pub(super) const U64_MAX: &[u8] = b"18446744073709551615";

/// `i` if a number ends there, else the number has trailing junk.
#[inline]
pub(super) fn value_end(line: &[u8], i: usize) -> Result<usize, Reason> {
    match line.get(i) {
        None | Some(b',' | b' ') => Ok(i),
        Some(_) => Err(reason::INVALID_NUMBER),
    }
}

/// Decimal `digits` (leading zeros allowed) are at most `max` (written without any).
pub(super) fn check_integer_range(digits: &[u8], max: &[u8]) -> Result<(), Reason> {
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
pub(super) fn check_float_range(token: &[u8]) -> Result<(), Reason> {
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
pub(super) fn check_backend_quoting(line: &[u8]) -> Result<(), Reason> {
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
