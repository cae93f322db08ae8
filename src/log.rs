//! Logging: one line per event to stderr, `ts=… level=… msg="…" key=value`.
//!
//! Nothing is logged per request at `info`. Repeated errors go through
//! [`RateLimit`] so a dead backend cannot flood the log.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::LogLevel;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

/// Set the most verbose level that is written.
pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: LogLevel) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
    }
}

/// Write one log line. Use the `error!`/`warn!`/`info!`/`debug!` macros instead.
pub fn emit(level: LogLevel, msg: &str, fields: &[(&str, &dyn fmt::Display)]) {
    if !enabled(level) {
        return;
    }
    let mut line = String::with_capacity(128);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let _ = write!(
        line,
        "ts={}.{:03} level={} msg=",
        now.as_secs(),
        now.subsec_millis(),
        level_name(level)
    );
    push_value(&mut line, msg);
    let mut value = String::new();
    for (key, v) in fields {
        value.clear();
        let _ = write!(value, "{v}");
        line.push(' ');
        line.push_str(key);
        line.push('=');
        push_value(&mut line, &value);
    }
    line.push('\n');
    // One write per line so lines from different threads never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Quote a value when it would otherwise be ambiguous to a `key=value` parser.
fn push_value(out: &mut String, v: &str) {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|b| b > b' ' && b != b'"' && b != b'=' && b < 0x7f);
    if plain {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[macro_export]
macro_rules! log_at {
    ($level:expr, $msg:expr $(, $key:ident = $val:expr)* $(,)?) => {
        if $crate::log::enabled($level) {
            $crate::log::emit($level, $msg, &[$((stringify!($key), &$val as &dyn ::std::fmt::Display)),*]);
        }
    };
}
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log_at!($crate::config::LogLevel::Error, $($t)*) }; }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log_at!($crate::config::LogLevel::Warn, $($t)*) }; }
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log_at!($crate::config::LogLevel::Info, $($t)*) }; }
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::log_at!($crate::config::LogLevel::Debug, $($t)*) }; }

/// Lets one message through per `interval_ms` and counts what it held back, so a
/// repeated error is visible without flooding the log. Shareable between threads.
pub struct RateLimit {
    interval_ms: u64,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

/// How often one repeated message may be logged: once per 5 s, with the count of those
/// held back in between. Every throttled message in the relay uses it.
pub const LOG_INTERVAL_MS: u64 = 5_000;

impl RateLimit {
    /// One message per [`LOG_INTERVAL_MS`].
    pub const fn every_interval() -> RateLimit {
        RateLimit::new(LOG_INTERVAL_MS)
    }

    pub const fn new(interval_ms: u64) -> RateLimit {
        RateLimit {
            interval_ms,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many were held
    /// back since the last one that was.
    pub fn check(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_spaces_or_quotes_are_quoted() {
        let mut s = String::new();
        push_value(&mut s, "plain");
        push_value(&mut s, " a \"b\"");
        assert_eq!(s, "plain\" a \\\"b\\\"\"");
    }

    #[test]
    fn rate_limit_lets_the_first_through_and_counts_the_rest() {
        let rl = RateLimit::new(60_000);
        assert_eq!(rl.check(), Some(0));
        assert_eq!(rl.check(), None);
        assert_eq!(rl.check(), None);
        assert_eq!(rl.suppressed.load(Ordering::Relaxed), 2);
    }
}
