//! Per-thread tallies, their merge, and the final summary as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::json::Obj;

/// Highest latency the histograms hold: 10 minutes in µs; longer ones are clamped.
pub const MAX_LATENCY_US: u64 = 600_000_000;

/// A latency histogram in microseconds with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// A latency histogram for one window of a [`Timeline`]: 2 significant digits (1%),
/// a tenth of the memory of [`new_histogram`], since a run keeps one per window.
pub fn new_window_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("constant histogram bounds are valid")
}

/// What was answered during one window of a run, by when the answer (or failure)
/// came.
#[derive(Debug, Clone)]
pub struct Window {
    /// Requests answered, any status.
    pub requests: u64,
    /// Lines in requests answered 2xx.
    pub lines_acked: u64,
    /// Non-2xx answers and failures (connect, timeout, ...).
    pub errors: u64,
    /// Latency of every answered request, in µs.
    pub latency: Histogram<u64>,
}

impl Window {
    fn new() -> Window {
        Window {
            requests: 0,
            lines_acked: 0,
            errors: 0,
            latency: new_window_histogram(),
        }
    }

    fn add(&mut self, o: &Window) {
        self.requests += o.requests;
        self.lines_acked += o.lines_acked;
        self.errors += o.errors;
        let _ = self.latency.add(&o.latency);
    }

    fn pct(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }
}

/// A run cut into windows of equal width (`--window`), so a script can tell the
/// throughput and latency before, during and after something it did to the server
/// (a backend stopped, say) from one run. Window `k` covers
/// `[k·width, (k+1)·width)` from the start of the run.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub width: Duration,
    pub windows: Vec<Window>,
}

/// One phase of a run, summed over the windows inside it (see [`Timeline::phase`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    /// Start and end, seconds from the start of the run, on window edges.
    pub from_secs: f64,
    pub to_secs: f64,
    pub requests: u64,
    pub lines_acked: u64,
    pub errors: u64,
    pub lines_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Timeline {
    pub fn new(width: Duration) -> Timeline {
        Timeline {
            width: width.max(Duration::from_millis(1)),
            windows: Vec::new(),
        }
    }

    /// The window an event `at` after the start falls in, created on first use.
    fn window(&mut self, at: Duration) -> &mut Window {
        let k = (at.as_nanos() / self.width.as_nanos()) as usize;
        if self.windows.len() <= k {
            self.windows.resize_with(k + 1, Window::new);
        }
        &mut self.windows[k]
    }

    /// An answer `at` after the start: its status class and latency.
    pub fn answer(&mut self, at: Duration, lines_acked: u64, ok: bool, latency_us: u64) {
        let w = self.window(at);
        w.requests += 1;
        w.lines_acked += lines_acked;
        w.errors += u64::from(!ok);
        w.latency.saturating_record(latency_us.max(1));
    }

    /// A request that failed without an answer `at` after the start.
    pub fn failure(&mut self, at: Duration) {
        self.window(at).errors += 1;
    }

    /// Adds another thread's timeline of the same width, window by window.
    pub fn merge(&mut self, o: &Timeline) {
        debug_assert_eq!(self.width, o.width);
        if self.windows.len() < o.windows.len() {
            self.windows.resize_with(o.windows.len(), Window::new);
        }
        for (a, b) in self.windows.iter_mut().zip(&o.windows) {
            a.add(b);
        }
    }

    /// The windows that lie wholly inside `[from, to)`: `from` is rounded up and `to`
    /// down to a window edge, so a window cut by a boundary belongs to neither side.
    /// `None` when no whole window fits.
    pub fn phase(&self, from: Duration, to: Duration) -> Option<Phase> {
        let w = self.width.as_nanos();
        let first = from.as_nanos().div_ceil(w) as usize;
        let end = ((to.as_nanos() / w) as usize).min(self.windows.len());
        if first >= end {
            return None;
        }
        let mut sum = Window::new();
        for win in &self.windows[first..end] {
            sum.add(win);
        }
        let secs = self.width.as_secs_f64();
        let (from_secs, to_secs) = (first as f64 * secs, end as f64 * secs);
        Some(Phase {
            from_secs,
            to_secs,
            requests: sum.requests,
            lines_acked: sum.lines_acked,
            errors: sum.errors,
            lines_per_sec: sum.lines_acked as f64 / (to_secs - from_secs),
            p50_us: sum.pct(0.5),
            p99_us: sum.pct(0.99),
            max_us: sum.latency.max(),
        })
    }

    /// `[{"t":0.000,"requests":…,"lines_acked":…,"errors":…,"p50_us":…,"p99_us":…,
    /// "max_us":…},…]`, one object per window, `t` its start in seconds.
    pub fn to_json(&self) -> String {
        let secs = self.width.as_secs_f64();
        let items: Vec<String> = self
            .windows
            .iter()
            .enumerate()
            .map(|(k, w)| {
                Obj::new()
                    .f64("t", k as f64 * secs)
                    .u64("requests", w.requests)
                    .u64("lines_acked", w.lines_acked)
                    .u64("errors", w.errors)
                    .u64("p50_us", w.pct(0.5))
                    .u64("p99_us", w.pct(0.99))
                    .u64("max_us", w.latency.max())
                    .finish()
            })
            .collect();
        format!("[{}]", items.join(","))
    }
}

impl Phase {
    pub fn to_json(&self, name: &str) -> String {
        Obj::new()
            .str("name", name)
            .f64("from_secs", self.from_secs)
            .f64("to_secs", self.to_secs)
            .u64("requests", self.requests)
            .u64("lines_acked", self.lines_acked)
            .u64("errors", self.errors)
            .f64("lines_per_sec", self.lines_per_sec)
            .u64("p50_us", self.p50_us)
            .u64("p99_us", self.p99_us)
            .u64("max_us", self.max_us)
            .finish()
    }
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
    /// Wall clock at the start of the run, so windows can be lined up with events
    /// outside the generator.
    pub start_unix_ms: u64,
    /// Per-window figures, with `--window` (HTTP only).
    pub timeline: Option<Timeline>,
    /// `--phase` stretches, summed from the timeline.
    pub phases: Vec<crate::args::PhaseSpec>,
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
        let obj = Obj::new()
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
            .u64("start_unix_ms", self.start_unix_ms);
        let Some(tl) = &self.timeline else {
            return obj.finish();
        };
        // A phase with no whole window inside the run is left out.
        let phases: Vec<String> = self
            .phases
            .iter()
            .filter_map(|p| Some(tl.phase(p.from, p.to)?.to_json(&p.name)))
            .collect();
        obj.f64("window_secs", tl.width.as_secs_f64())
            .raw("windows", &tl.to_json())
            .raw("phases", &format!("[{}]", phases.join(",")))
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
        if let Some(tl) = &self.timeline {
            for p in &self.phases {
                match tl.phase(p.from, p.to) {
                    Some(ph) => {
                        let _ = writeln!(
                            s,
                            "  phase       {} {:.0}-{:.0} s: {:.0} lines/s  p99 {} us  errors {}",
                            p.name,
                            ph.from_secs,
                            ph.to_secs,
                            ph.lines_per_sec,
                            ph.p99_us,
                            ph.errors
                        );
                    }
                    None => {
                        let _ = writeln!(s, "  phase       {}: no whole window in the run", p.name);
                    }
                }
            }
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
            start_unix_ms: 1_700_000_000_000,
            timeline: None,
            phases: Vec::new(),
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
            "\"start_unix_ms\":1700000000000}",
        ] {
            assert!(j.contains(key), "{j} lacks {key}");
        }
        assert!(r.to_text().contains("503=2"));
    }

    #[test]
    fn a_timeline_sums_whole_windows_into_phases() {
        let ms = Duration::from_millis;
        // Two threads, 1 s windows: a fast second, a slow second, a failure.
        let mut a = Timeline::new(ms(1000));
        let mut b = Timeline::new(ms(1000));
        for i in 0..99 {
            a.answer(ms(100 + i), 100, true, 1_000);
        }
        b.answer(ms(900), 100, true, 50_000);
        b.answer(ms(1_500), 0, false, 2_000);
        for i in 0..50 {
            b.answer(ms(1_100 + i), 100, true, 20_000);
        }
        a.failure(ms(2_500));
        a.merge(&b);
        assert_eq!(a.windows.len(), 3);
        assert_eq!(
            (a.windows[0].requests, a.windows[0].lines_acked),
            (100, 10_000)
        );
        assert_eq!((a.windows[1].requests, a.windows[1].errors), (51, 1));
        assert_eq!((a.windows[2].requests, a.windows[2].errors), (0, 1));

        let first = a.phase(ms(0), ms(1_000)).unwrap();
        assert_eq!((first.from_secs, first.to_secs), (0.0, 1.0));
        assert_eq!(first.lines_per_sec, 10_000.0);
        // 1 of 100 at 50 ms: p99 is still the fast answers, the max is not.
        assert!((990..=1010).contains(&first.p99_us), "{first:?}");
        assert!((49_500..=50_500).contains(&first.max_us), "{first:?}");

        // 0.5 s is rounded up to the edge at 1 s: the cut window counts on neither side.
        let second = a.phase(ms(500), ms(2_000)).unwrap();
        assert_eq!((second.from_secs, second.to_secs), (1.0, 2.0));
        assert_eq!((second.lines_acked, second.errors), (5_000, 1));
        assert!((19_800..=20_200).contains(&second.p99_us), "{second:?}");

        let all = a.phase(ms(0), ms(60_000)).unwrap();
        assert_eq!((all.to_secs, all.requests, all.errors), (3.0, 151, 2));
        assert!(a.phase(ms(500), ms(900)).is_none());
        assert!(a.phase(ms(5_000), ms(9_000)).is_none());

        let j = a.to_json();
        assert!(
            j.starts_with("[{\"t\":0.000,\"requests\":100,\"lines_acked\":10000,"),
            "{j}"
        );
        assert!(
            j.contains("{\"t\":2.000,\"requests\":0,\"lines_acked\":0,\"errors\":1,"),
            "{j}"
        );
    }

    #[test]
    fn phases_appear_in_the_json_report() {
        let ms = Duration::from_millis;
        let mut tl = Timeline::new(ms(1000));
        tl.answer(ms(10), 100, true, 700);
        tl.answer(ms(1_010), 100, true, 900);
        let phase = |name: &str, from, to| crate::args::PhaseSpec {
            name: name.into(),
            from: ms(from),
            to: ms(to),
        };
        let r = Report {
            run_id: "r1".into(),
            duration_secs: 2.0,
            connections: 1,
            lines_per_request: 100,
            tally: Tally::default(),
            latency: new_histogram(),
            start_unix_ms: 5,
            timeline: Some(tl),
            phases: vec![phase("a", 0, 1000), phase("gone", 7000, 9000)],
        };
        let j = r.to_json();
        assert!(
            j.contains("\"window_secs\":1.000,\"windows\":[{\"t\":0.000"),
            "{j}"
        );
        assert!(
            j.contains("\"phases\":[{\"name\":\"a\",\"from_secs\":0.000,\"to_secs\":1.000,\"requests\":1,\"lines_acked\":100,"),
            "{j}"
        );
        assert!(!j.contains("gone"), "{j}");
        assert!(r.to_text().contains("phase       gone: no whole window"));
    }
}
