//! Rewriting the trailing timestamp of every point line: how a write changes precision
//! when its destination does not have the one it was written in (InfluxDB 2.x and 3.x
//! know no minutes or hours), and how an InfluxDB 3 `precision=auto` write, whose
//! lines may each have their own unit, becomes one nanosecond write.
//!
//! Only the timestamp's digits change; every other byte of a line is copied as is.

use super::*;

/// A timestamp that does not fit an `i64` once rescaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange {
    /// Physical line (1-based) of the offending line.
    pub line: usize,
}

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: timestamp out of range", self.line)
    }
}

/// Append `body` to `out` with each point line's timestamp replaced by `scale(ts)`;
/// lines without one are copied unchanged (they are stamped later, in the new unit).
/// Every line in `out` ends with `\n`, a trailing `\r` dropped. `body` must have
/// passed [`check_body`]: a line that did not is copied as is.
pub fn rescale_timestamps(
    body: &[u8],
    out: &mut Vec<u8>,
    mut scale: impl FnMut(i64) -> Option<i64>,
) -> Result<(), OutOfRange> {
    out.reserve(body.len() + body.len() / 8);
    for line in split_lines(body) {
        let text = line.text();
        match trailing_timestamp(text) {
            Some((start, ts)) => {
                let scaled = scale(ts).ok_or(OutOfRange { line: line.number })?;
                out.extend_from_slice(&text[..start]);
                write_timestamp(out, scaled);
            }
            None => out.extend_from_slice(text),
        }
        out.push(b'\n');
    }
    Ok(())
}

/// Where a point line's timestamp starts (its sign, if any) and its value; `None` for
/// a line without one (blank lines and comments included). Trailing blanks after the
/// timestamp are dropped with it.
fn trailing_timestamp(text: &[u8]) -> Option<(usize, i64)> {
    let start = skip_blanks(text, 0);
    if matches!(text.get(start), None | Some(b'#')) || !ends_with_timestamp(text) {
        return None;
    }
    let t = trim_end_blanks(text);
    let digits = t.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let mut from = t.len() - digits;
    if from > 0 && t[from - 1] == b'-' {
        from -= 1;
    }
    let ts = std::str::from_utf8(&t[from..]).ok()?.parse().ok()?;
    Some((from, ts))
}

/// `ts * factor`, `None` on overflow: minutes or hours into seconds.
pub fn multiply(factor: i64) -> impl FnMut(i64) -> Option<i64> {
    move |ts| ts.checked_mul(factor)
}

/// Nanoseconds per unit for a timestamp whose unit InfluxDB 3 would guess under
/// `precision=auto`: below 5e9 seconds, 5e12 milliseconds or 5e15 microseconds (each
/// about the year 2128 in that unit) it is taken as that unit, else as nanoseconds.
pub fn auto_unit_nanos(ts: i64) -> i64 {
    const NANOS_PER_SECOND: i64 = 1_000_000_000;
    let seconds_if_nanos = ts.unsigned_abs() / NANOS_PER_SECOND as u64;
    if seconds_if_nanos < 5 {
        NANOS_PER_SECOND
    } else if seconds_if_nanos < 5_000 {
        1_000_000
    } else if seconds_if_nanos < 5_000_000 {
        1_000
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rescaled(body: &[u8], factor: i64) -> Result<String, OutOfRange> {
        let mut out = Vec::new();
        rescale_timestamps(body, &mut out, multiply(factor))?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn only_the_trailing_timestamp_changes() {
        assert_eq!(
            rescaled(b"m,t=1 v=2i,s=\"3 4\" 5\nm v=1 -2\r\nm v=3\n", 60).unwrap(),
            "m,t=1 v=2i,s=\"3 4\" 300\nm v=1 -120\nm v=3\n"
        );
        // Trailing blanks go with the old timestamp; comments and blank lines stay.
        assert_eq!(
            rescaled(b"# c 1\n\nm v=1 7  \n", 3600).unwrap(),
            "# c 1\n\nm v=1 25200\n"
        );
        // A string value that ends in digits, spanning lines, is not a timestamp.
        assert_eq!(
            rescaled(b"m s=\"a\n12\" 2\nm s=\"9\"\n", 60).unwrap(),
            "m s=\"a\n12\" 120\nm s=\"9\"\n"
        );
    }

    #[test]
    fn overflow_names_the_line() {
        let body = format!("m v=1 1\nm v=1 {}\n", i64::MAX / 59);
        assert_eq!(rescaled(body.as_bytes(), 60), Err(OutOfRange { line: 2 }));
        assert_eq!(
            OutOfRange { line: 2 }.to_string(),
            "line 2: timestamp out of range"
        );
    }

    #[test]
    fn auto_guesses_like_influxdb_3() {
        let s = 1_708_976_567;
        assert_eq!(auto_unit_nanos(s), 1_000_000_000);
        assert_eq!(auto_unit_nanos(s * 1_000), 1_000_000);
        assert_eq!(auto_unit_nanos(s * 1_000_000), 1_000);
        assert_eq!(auto_unit_nanos(s * 1_000_000_000), 1);
        assert_eq!(auto_unit_nanos(-s), 1_000_000_000);
        assert_eq!(auto_unit_nanos(0), 1_000_000_000);
        assert_eq!(auto_unit_nanos(i64::MIN), 1);
    }

    /// Against a naive reference: split on `\n` (no quotes in these bodies), scale the
    /// last space-separated token when it is an integer after a field set.
    #[test]
    fn matches_a_naive_rewrite() {
        use proptest::prelude::*;
        proptest!(|(lines in proptest::collection::vec((any::<bool>(), -1_000_000i64..1_000_000, 0u8..3), 0..20))| {
            let mut body = String::new();
            let mut want = String::new();
            for (with_ts, ts, blanks) in &lines {
                let pad = " ".repeat(*blanks as usize);
                if *with_ts {
                    body.push_str(&format!("m,t=a v=1i {ts}{pad}\n"));
                    want.push_str(&format!("m,t=a v=1i {}\n", ts * 60));
                } else {
                    body.push_str(&format!("m,t=a v=1i{pad}\n"));
                    want.push_str(&format!("m,t=a v=1i{pad}\n"));
                }
            }
            prop_assert_eq!(rescaled(body.as_bytes(), 60).unwrap(), want);
        });
    }
}
