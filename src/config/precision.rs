//! Timestamp precisions, as `precision=` and a UDP listener's `precision` name them.

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

    /// Nanoseconds in one unit of this precision.
    pub fn nanos_per_unit(self) -> i64 {
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
