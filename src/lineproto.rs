//! Line protocol, parsed just enough (SPEC §4.3). INTERFACE STUB: being written.

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
    pub fn parse(_s: &str) -> Option<Precision> {
        None
    }
    /// Nanoseconds since the epoch → a timestamp in this precision (truncated).
    pub fn from_nanos(self, ns: i64) -> i64 {
        ns
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
    /// Some line lacks a timestamp or ends in `\r`: forward `stamp_body`'s output.
    pub needs_rewrite: bool,
}

/// Validate every line of `body`; all-or-nothing.
pub fn check_body(_body: &[u8]) -> Result<BodyInfo, ParseError> {
    Ok(BodyInfo::default())
}

/// Append the forwardable form of a checked `body` to `out`: `\r` before `\n` dropped,
/// ` <ts>` appended to point lines without a timestamp, everything else byte for byte.
pub fn stamp_body(body: &[u8], _ts: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(body);
}
