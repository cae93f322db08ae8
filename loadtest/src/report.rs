//! Per-thread tallies, their merge, and the final summary as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;

use crate::json::Obj;

/// Highest latency the histograms hold: 10 minutes in µs; longer ones are clamped.
pub const MAX_LATENCY_US: u64 = 600_000_000;

/// A latency histogram in microseconds with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Request failures that carry no HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// The TCP connection could not be established (refused, timed out).
    Connect,
    /// The peer closed or reset the connection before answering.
    Closed,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The answer was not parseable HTTP.
    Proto,
    /// Any other socket error.
    Io,
    /// A datagram could not be sent.
    UdpSend,
}

impl Failure {
    pub const ALL: [Failure; 6] = [
        Failure::Connect,
        Failure::Closed,
        Failure::Timeout,
        Failure::Proto,
        Failure::Io,
        Failure::UdpSend,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Closed => "closed",
            Failure::Timeout => "timeout",
            Failure::Proto => "proto",
            Failure::Io => "io",
            Failure::UdpSend => "udp_send",
        }
    }
}

/// Counters one generator thread keeps without sharing; merged at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests that got a complete answer (any status).
    pub requests: u64,
    /// Lines in requests written completely to a socket.
    pub lines_sent: u64,
    /// Lines in requests answered 2xx.
    pub lines_acked: u64,
    /// Uncompressed body bytes of requests answered 2xx.
    pub bytes_acked: u64,
    /// Request bytes written (heads and bodies as sent).
    pub wire_bytes: u64,
    pub udp_datagrams: u64,
    pub udp_lines: u64,
    pub udp_bytes: u64,
    /// Non-2xx answers by status.
    pub statuses: BTreeMap<u16, u64>,
    pub failures: [u64; Failure::ALL.len()],
}

impl Tally {
    pub fn fail(&mut self, f: Failure) {
        self.failures[f as usize] += 1;
    }

    pub fn error_total(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.failures.iter().sum::<u64>()
    }

    pub fn merge(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.lines_sent += o.lines_sent;
        self.lines_acked += o.lines_acked;
        self.bytes_acked += o.bytes_acked;
        self.wire_bytes += o.wire_bytes;
        self.udp_datagrams += o.udp_datagrams;
        self.udp_lines += o.udp_lines;
        self.udp_bytes += o.udp_bytes;
        for (s, n) in &o.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        for (a, b) in self.failures.iter_mut().zip(o.failures) {
            *a += b;
        }
    }

    /// Errors keyed the way the JSON shows them: status codes and failure names.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        let mut m: BTreeMap<String, u64> = self
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        for f in Failure::ALL {
            let n = self.failures[f as usize];
            if n > 0 {
                m.insert(f.name().to_string(), n);
            }
        }
        m
    }
}

/// The outcome of one `run`.
#[derive(Debug, Clone)]
pub struct Report {
    pub run_id: String,
    pub duration_secs: f64,
    pub connections: usize,
    pub lines_per_request: usize,
    pub tally: Tally,
    pub latency: Histogram<u64>,
}

impl Report {
    fn per_sec(&self, n: u64) -> f64 {
        if self.duration_secs > 0.0 {
            n as f64 / self.duration_secs
        } else {
            0.0
        }
    }

    /// Lines acknowledged over HTTP plus lines sent over UDP (which has no answer).
    pub fn lines_per_sec(&self) -> f64 {
        self.per_sec(self.tally.lines_acked + self.tally.udp_lines)
    }

    /// Uncompressed line-protocol megabytes (10^6) per second, counted like lines/s, so
    /// gzip and plain runs compare directly.
    pub fn mb_per_sec(&self) -> f64 {
        self.per_sec(self.tally.bytes_acked + self.tally.udp_bytes) / 1e6
    }

    pub fn requests_per_sec(&self) -> f64 {
        self.per_sec(self.tally.requests)
    }

    fn pct(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }

    pub fn to_json(&self) -> String {
        let t = &self.tally;
        let mut errors = Obj::new();
        for (k, v) in t.errors() {
            errors = errors.u64(&k, v);
        }
        Obj::new()
            .str("run_id", &self.run_id)
            .f64("duration_secs", self.duration_secs)
            .f64("lines_per_sec", self.lines_per_sec())
            .f64("mb_per_sec", self.mb_per_sec())
            .f64("requests_per_sec", self.requests_per_sec())
            .u64("p50_us", self.pct(0.5))
            .u64("p99_us", self.pct(0.99))
            .u64("p999_us", self.pct(0.999))
            .u64("max_us", self.latency.max())
            .u64("lines_sent", t.lines_sent + t.udp_lines)
            .u64("lines_acked", t.lines_acked)
            .u64("requests", t.requests)
            .raw("errors", &errors.finish())
            .u64("error_total", t.error_total())
            .u64("bytes_sent", t.wire_bytes + t.udp_bytes)
            .u64("http_lines_sent", t.lines_sent)
            .u64("udp_datagrams", t.udp_datagrams)
            .u64("udp_lines_sent", t.udp_lines)
            .u64("connections", self.connections as u64)
            .u64("lines_per_request", self.lines_per_request as u64)
            .finish()
    }

    pub fn to_text(&self) -> String {
        let t = &self.tally;
        let mut s = String::new();
        let _ = writeln!(s, "run {} for {:.2} s", self.run_id, self.duration_secs);
        let _ = writeln!(
            s,
            "  throughput  {:.0} lines/s  {:.2} MB/s  {:.0} requests/s",
            self.lines_per_sec(),
            self.mb_per_sec(),
            self.requests_per_sec()
        );
        let _ = writeln!(
            s,
            "  latency     p50 {} us  p99 {} us  p99.9 {} us  max {} us",
            self.pct(0.5),
            self.pct(0.99),
            self.pct(0.999),
            self.latency.max()
        );
        let _ = writeln!(
            s,
            "  lines       sent {}  acked {}  (requests answered {})",
            t.lines_sent + t.udp_lines,
            t.lines_acked,
            t.requests
        );
        if t.udp_datagrams > 0 {
            let _ = writeln!(
                s,
                "  udp         {} datagrams, {} lines",
                t.udp_datagrams, t.udp_lines
            );
        }
        let errors = t.errors();
        if errors.is_empty() {
            let _ = writeln!(s, "  errors      none");
        } else {
            let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "  errors      {}", list.join(" "));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_json_fields() {
        let mut a = Tally {
            requests: 10,
            lines_sent: 1000,
            lines_acked: 900,
            bytes_acked: 2_000_000,
            ..Tally::default()
        };
        a.statuses.insert(503, 1);
        a.fail(Failure::Timeout);
        let mut b = a.clone();
        b.fail(Failure::Connect);
        a.merge(&b);
        assert_eq!((a.requests, a.lines_acked, a.error_total()), (20, 1800, 5));
        let mut h = new_histogram();
        h.record(100).unwrap();
        h.record(2000).unwrap();
        let r = Report {
            run_id: "r1".into(),
            duration_secs: 2.0,
            connections: 4,
            lines_per_request: 100,
            tally: a,
            latency: h,
        };
        let j = r.to_json();
        for key in [
            "\"lines_per_sec\":900.000",
            "\"mb_per_sec\":2.000",
            "\"requests_per_sec\":10.000",
            "\"p50_us\":100",
            "\"p99_us\":",
            "\"p999_us\":",
            "\"max_us\":2000",
            "\"lines_sent\":2000",
            "\"lines_acked\":1800",
            "\"requests\":20",
            "\"errors\":{\"503\":2,\"connect\":1,\"timeout\":2}",
            "\"duration_secs\":2.000",
        ] {
            assert!(j.contains(key), "{j} lacks {key}");
        }
        assert!(r.to_text().contains("503=2"));
    }
}
