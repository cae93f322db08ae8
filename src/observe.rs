//! `/health`, `/status` and `/metrics` (README: Operations): the counters that loops, backend
//! workers and UDP threads keep in `metrics`, summed over threads and rendered when
//! asked.
//!
//! Rendering only loads relaxed atomics, so it never slows a writer; the one lock it
//! takes is a backend's `last_error`, and only for `/status`. `/health` is what load
//! balancers poll every second: one pass over the backends and a few hundred bytes.
//!
//! The pages are rendered from a [`View`], a borrowed picture of the relay, so the
//! rendering can be tested without sockets or threads.
//!
//! `GET /` is a static HTML page ([`STATUS_PAGE`]) for people: it polls `status` from
//! the browser and draws it, so the relay renders nothing more for it and keeps no
//! history of its own.

use std::fmt::{Display, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Ack;
use crate::metrics::{
    unix_ms, BackendStats, ListenerStats, UdpListenerStats, UdpOutputStats, LATENCY_BOUNDS_US,
};
use crate::state::Shared;

/// An observability page (`/health`, `/status`, `/metrics`).
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Content type of `/health` and `/status`.
pub const JSON: &str = "application/json";
/// Content type of `/metrics`: the Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Every metric name starts with this.
pub const PREFIX: &str = "influx_relay_";

/// `GET /`: the status page, one self-contained file. It fetches `status` relative to
/// its own URL, so it also works behind a proxy that adds a path prefix.
pub const STATUS_PAGE: &[u8] = include_bytes!("status.html");
/// Content type of [`STATUS_PAGE`].
pub const HTML: &str = "text/html; charset=utf-8";
/// Header lines sent with [`STATUS_PAGE`]. The policy lets the page run its own inline
/// script and styles and talk to the relay that served it, nothing else: a backend's
/// error message shown on the page can never load or send anything elsewhere.
pub const STATUS_PAGE_HEADERS: &str = "Content-Security-Policy: default-src 'none'; \
     script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
     img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
     X-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n";

/// Render `/health`, `/status` or `/metrics`; anything else is 404.
pub fn render(shared: &Shared, path: &str) -> Page {
    let view = View::of(shared);
    match path {
        "/health" => health(&view),
        "/status" => status(&view),
        "/metrics" => metrics(&view),
        _ => Page {
            status: 404,
            content_type: JSON,
            body: br#"{"error":"invalid endpoint"}"#.to_vec(),
        },
    }
}

/// What the pages show, borrowed from a running relay (or built by a test).
pub struct View<'a> {
    pub version: &'a str,
    pub uptime: Duration,
    /// Unix milliseconds: the "now" that queue ages are measured against.
    pub now_ms: u64,
    pub shutting_down: bool,
    /// TLS handshakes that failed on HTTPS listeners, since start.
    pub tls_handshake_failures: u64,
    pub http: Vec<HttpView<'a>>,
    pub udp: Vec<UdpView<'a>>,
}

pub struct HttpView<'a> {
    pub name: &'a str,
    pub bind_addr: SocketAddr,
    pub ack: Ack,
    /// One per event loop; the listener's numbers are their sum.
    pub loops: &'a [Arc<ListenerStats>],
    pub open_connections: u64,
    pub backends: Vec<BackendView<'a>>,
}

pub struct BackendView<'a> {
    pub name: &'a str,
    /// The output's URL, for people reading `/status`.
    pub location: &'a str,
    /// `spool-size-mb` in bytes; 0 when the output has no spool.
    pub spool_limit: u64,
    pub stats: &'a BackendStats,
}

pub struct UdpView<'a> {
    pub name: &'a str,
    pub bind_addr: SocketAddr,
    /// One per event loop; the listener's numbers are their sum.
    pub loops: &'a [Arc<UdpListenerStats>],
    pub outputs: Vec<UdpOutputView<'a>>,
}

pub struct UdpOutputView<'a> {
    pub name: &'a str,
    pub location: SocketAddr,
    pub mtu: usize,
    pub stats: &'a UdpOutputStats,
}

impl<'a> View<'a> {
    pub fn of(shared: &'a Shared) -> View<'a> {
        let http = shared
            .http
            .iter()
            .map(|l| HttpView {
                name: &l.config.name,
                bind_addr: l.config.bind_addr,
                ack: l.config.ack,
                loops: &l.stats,
                open_connections: l.open_connections.load(Ordering::Relaxed) as u64,
                // Backends were started from the outputs in order, so index i matches.
                backends: l
                    .backends
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let output = l.config.outputs.get(i);
                        BackendView {
                            name: &b.name,
                            location: output.map_or("", |o| o.location.url.as_str()),
                            spool_limit: output.map_or(0, |o| o.spool_size),
                            stats: &b.stats,
                        }
                    })
                    .collect(),
            })
            .collect();
        let udp = shared
            .udp
            .iter()
            .map(|l| UdpView {
                name: &l.config.name,
                bind_addr: l.config.bind_addr,
                loops: &l.stats,
                outputs: l
                    .outputs
                    .iter()
                    .map(|o| UdpOutputView {
                        name: &o.config.name,
                        location: o.config.location,
                        mtu: o.config.mtu,
                        stats: &o.stats,
                    })
                    .collect(),
            })
            .collect();
        View {
            version: env!("CARGO_PKG_VERSION"),
            uptime: shared.started.elapsed(),
            now_ms: unix_ms(),
            shutting_down: shared.shutdown.load(Ordering::Acquire),
            tls_handshake_failures: crate::tls::handshake_failures(),
            http,
            udp,
        }
    }

    /// `/health` passes: not shutting down, and every HTTP listener can deliver now.
    pub fn healthy(&self) -> bool {
        !self.shutting_down && self.http.iter().all(HttpView::healthy)
    }
}

impl HttpView<'_> {
    /// At least one backend is up with an empty queue, so a write can be delivered
    /// now rather than only queued.
    pub fn healthy(&self) -> bool {
        self.backends
            .iter()
            .any(|b| BackendState::of(b.stats) == BackendState::Up)
    }
}

/// A backend as `/health` and `/status` show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendState {
    /// The last attempt succeeded and nothing waits in its queue.
    Up,
    /// Reachable again, but writes are still queued (RAM or spool) and replaying; new
    /// writes go behind them, so this replica lags.
    CatchingUp,
    /// The last write or probe failed.
    Down,
}

impl BackendState {
    pub fn of(stats: &BackendStats) -> BackendState {
        if stats.down.get() != 0 {
            BackendState::Down
        } else if stats.queued_since_ms.get() != 0 || stats.queued_requests.get() != 0 {
            BackendState::CatchingUp
        } else {
            BackendState::Up
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Up => "up",
            BackendState::CatchingUp => "catching-up",
            BackendState::Down => "down",
        }
    }
}

/// Seconds the oldest queued write of a backend has waited; 0 with an empty queue.
fn oldest_queued_seconds(stats: &BackendStats, now_ms: u64) -> f64 {
    match stats.queued_since_ms.get() {
        0 => 0.0,
        since => now_ms.saturating_sub(since) as f64 / 1000.0,
    }
}

fn pass_fail(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "fail"
    }
}

fn ack_name(ack: Ack) -> &'static str {
    match ack {
        Ack::Any => "any",
        Ack::Quorum => "quorum",
        Ack::All => "all",
    }
}

// ---------------------------------------------------------------------------------------
// Totals over loops
// ---------------------------------------------------------------------------------------

const LATENCY_SLOTS: usize = LATENCY_BOUNDS_US.len() + 1;

/// One HTTP listener's counters, summed over the loops.
#[derive(Debug, Default)]
struct HttpTotals {
    requests: u64,
    answered_2xx: u64,
    answered_4xx: u64,
    answered_5xx: u64,
    points_in: u64,
    bytes_in: u64,
    connections_rejected: u64,
    changes_held: u64,
    changes_held_too_long: u64,
    /// Per bucket, not cumulative (see `metrics::Histogram`).
    latency: [u64; LATENCY_SLOTS],
    latency_sum_us: u64,
}

impl HttpTotals {
    fn of(loops: &[Arc<ListenerStats>]) -> HttpTotals {
        let mut t = HttpTotals::default();
        for s in loops {
            t.requests += s.requests.get();
            t.answered_2xx += s.answered_2xx.get();
            t.answered_4xx += s.answered_4xx.get();
            t.answered_5xx += s.answered_5xx.get();
            t.points_in += s.points_in.get();
            t.bytes_in += s.bytes_in.get();
            t.connections_rejected += s.connections_rejected.get();
            t.changes_held += s.changes_held.get();
            t.changes_held_too_long += s.changes_held_too_long.get();
            let (buckets, sum_us) = s.write_latency.snapshot();
            for (total, n) in t.latency.iter_mut().zip(buckets) {
                *total += n;
            }
            t.latency_sum_us += sum_us;
        }
        t
    }

    fn latency_count(&self) -> u64 {
        self.latency.iter().sum()
    }
}

/// One UDP listener's counters, summed over the loops.
#[derive(Debug, Default)]
struct UdpTotals {
    datagrams_in: u64,
    bytes_in: u64,
    lines_in: u64,
    bad_lines: u64,
    truncated: u64,
    kernel_drops: u64,
    recv_errors: u64,
}

impl UdpTotals {
    fn of(loops: &[Arc<UdpListenerStats>]) -> UdpTotals {
        let mut t = UdpTotals::default();
        for s in loops {
            t.datagrams_in += s.datagrams_in.get();
            t.bytes_in += s.bytes_in.get();
            t.lines_in += s.lines_in.get();
            t.bad_lines += s.bad_lines.get();
            t.truncated += s.truncated.get();
            t.kernel_drops += s.kernel_drops.get();
            t.recv_errors += s.recv_errors.get();
        }
        t
    }
}

/// A drop reason and how to read its counter.
type DropReason<T> = (&'static str, fn(&T) -> u64);

/// Every way a backend loses points: the `reason` label of
/// `influx_relay_backend_dropped_points_total` and the keys of `dropped_points` in
/// `/status`.
const BACKEND_DROPS: [DropReason<BackendStats>; 8] = [
    ("queue_full", |s| s.dropped_queue_full.get()),
    ("buffer_full", |s| s.dropped_buffer_full.get()),
    ("spool_full", |s| s.dropped_spool_full.get()),
    ("spool_error", |s| s.dropped_spool_error.get()),
    ("max_age", |s| s.dropped_max_age.get()),
    ("rejected", |s| s.dropped_rejected.get()),
    ("shutdown", |s| s.dropped_shutdown.get()),
    ("unbuffered", |s| s.dropped_unbuffered.get()),
];

/// Every way a UDP output loses lines, as [`BACKEND_DROPS`] for HTTP.
const UDP_OUTPUT_DROPS: [DropReason<UdpOutputStats>; 3] = [
    ("too_long", |s| s.lines_too_long.get()),
    ("queue_full", |s| s.lines_queue_full.get()),
    ("send_failed", |s| s.lines_send_failed.get()),
];

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

/// A JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Members of one JSON object, commas handled.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, first: true }
    }

    /// Write `"key":` and hand back the output for the value.
    fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        json_str(self.out, key);
        self.out.push(':');
        self.out
    }

    fn str(&mut self, key: &str, value: &str) {
        json_str(self.key(key), value);
    }

    fn num(&mut self, key: &str, value: u64) {
        let _ = write!(self.key(key), "{value}");
    }

    /// Seconds, to the millisecond.
    fn secs(&mut self, key: &str, value: f64) {
        let _ = write!(self.key(key), "{value:.3}");
    }

    fn close(self) {
        self.out.push('}');
    }
}

fn json_array<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut each: impl FnMut(&mut String, T),
) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
    out.push(']');
}

fn json_page(ok: bool, body: String) -> Page {
    Page {
        status: if ok { 200 } else { 503 },
        content_type: JSON,
        body: body.into_bytes(),
    }
}

// ---------------------------------------------------------------------------------------
// /health
// ---------------------------------------------------------------------------------------

/// `GET /health`: 200 `{"status":"pass",...}` or 503 `{"status":"fail",...}`, with
/// each listener's and backend's state either way so a failing check explains itself.
/// It ends with the fields of InfluxDB 2's own `/health` (`name`, `message`, `checks`,
/// `version`, `commit`), so that the 2.x and 3.x client libraries' health checks,
/// which require them, read it as a server's.
pub fn health(view: &View) -> Page {
    let ok = view.healthy();
    let backends: usize = view.http.iter().map(|l| l.backends.len()).sum();
    let mut out = String::with_capacity(96 + 64 * view.http.len() + 112 * backends);
    let mut top = Obj::open(&mut out);
    top.str("status", pass_fail(ok));
    if view.shutting_down {
        top.str("reason", "shutting down");
    } else if !ok {
        top.str(
            "reason",
            "a listener has no backend that is up with an empty queue",
        );
    }
    json_array(top.key("listeners"), &view.http, |out, l| {
        let mut o = Obj::open(out);
        o.str("name", l.name);
        o.str("status", pass_fail(l.healthy()));
        json_array(o.key("backends"), &l.backends, |out, b| {
            let mut o = Obj::open(out);
            o.str("name", b.name);
            o.str("state", BackendState::of(b.stats).as_str());
            o.num("queued_requests", b.stats.queued_requests.get());
            o.num(
                "queued_bytes",
                b.stats.ram_queue_bytes.get() + b.stats.spool_bytes.get(),
            );
            o.secs(
                "oldest_queued_seconds",
                oldest_queued_seconds(b.stats, view.now_ms),
            );
            o.close();
        });
        o.close();
    });
    top.str("name", "influxdb");
    top.str(
        "message",
        if view.shutting_down {
            "shutting down"
        } else if ok {
            "ready for queries and writes"
        } else {
            "a listener has no backend that is up with an empty queue"
        },
    );
    top.key("checks").push_str("[]");
    top.str("version", crate::http::response::INFLUXDB_VERSION);
    top.str(
        "commit",
        concat!("influx-relay ", env!("CARGO_PKG_VERSION")),
    );
    top.close();
    json_page(ok, out)
}

// ---------------------------------------------------------------------------------------
// /status
// ---------------------------------------------------------------------------------------

/// `GET /status`: everything the relay knows, as JSON. 200 or 503 as `/health`, so the
/// status code alone still says whether the relay can deliver. Times are RFC 3339 UTC
/// with milliseconds; durations are seconds.
pub fn status(view: &View) -> Page {
    let ok = view.healthy();
    let mut out = String::with_capacity(4096);
    let mut top = Obj::open(&mut out);
    top.str("status", pass_fail(ok));
    top.str("version", view.version);
    top.str("time", &rfc3339(view.now_ms));
    top.secs("uptime_seconds", view.uptime.as_secs_f64());
    top.str(
        "started",
        &rfc3339(
            view.now_ms
                .saturating_sub(u64::try_from(view.uptime.as_millis()).unwrap_or(u64::MAX)),
        ),
    );
    json_array(top.key("http"), &view.http, |out, l| {
        http_status(out, l, view.now_ms)
    });
    json_array(top.key("udp"), &view.udp, udp_status);
    top.close();
    json_page(ok, out)
}

fn http_status(out: &mut String, l: &HttpView, now_ms: u64) {
    let t = HttpTotals::of(l.loops);
    let mut o = Obj::open(out);
    o.str("name", l.name);
    o.str("bind_addr", &l.bind_addr.to_string());
    o.str("ack", ack_name(l.ack));
    o.str("status", pass_fail(l.healthy()));
    o.num("requests", t.requests);
    let mut answers = Obj::open(o.key("answers"));
    answers.num("2xx", t.answered_2xx);
    answers.num("4xx", t.answered_4xx);
    answers.num("5xx", t.answered_5xx);
    answers.close();
    o.num("points_in", t.points_in);
    o.num("bytes_in", t.bytes_in);
    o.num("open_connections", l.open_connections);
    o.num("rejected_connections", t.connections_rejected);
    o.num("held_changes", t.changes_held);
    o.num("held_changes_too_long", t.changes_held_too_long);
    let mut latency = Obj::open(o.key("write_latency"));
    latency.num("count", t.latency_count());
    latency.secs("sum_seconds", t.latency_sum_us as f64 / 1e6);
    latency.close();
    json_array(o.key("backends"), &l.backends, |out, b| {
        backend_status(out, b, now_ms)
    });
    o.close();
}

fn backend_status(out: &mut String, b: &BackendView, now_ms: u64) {
    let s = b.stats;
    let mut o = Obj::open(out);
    o.str("name", b.name);
    o.str("location", b.location);
    o.str("state", BackendState::of(s).as_str());
    o.num("queued_requests", s.queued_requests.get());
    o.num("queued_ram_bytes", s.ram_queue_bytes.get());
    o.num("queued_spool_bytes", s.spool_bytes.get());
    o.num("spool_limit_bytes", b.spool_limit);
    o.secs("oldest_queued_seconds", oldest_queued_seconds(s, now_ms));
    o.num("delivered_requests", s.delivered_requests.get());
    o.num("delivered_points", s.delivered_points.get());
    o.num("delivered_bytes", s.delivered_bytes.get());
    o.num("rejected_requests", s.rejected_requests.get());
    o.num("failed_requests", s.failed_requests.get());
    o.num("retries", s.retries.get());
    o.num("spooled_points", s.spooled_points.get());
    o.num("spool_appended_bytes", s.spool_appended_bytes.get());
    o.num("spool_syncs", s.spool_syncs.get());
    o.num("replayed_points", s.replayed_points.get());
    let mut dropped = Obj::open(o.key("dropped_points"));
    for (reason, get) in BACKEND_DROPS {
        dropped.num(reason, get(s));
    }
    dropped.close();
    // Cloned out so the worker that records the next failure never waits on rendering.
    let last = s.last_error.lock().ok().and_then(|e| e.clone());
    match last {
        Some(e) => {
            let mut err = Obj::open(o.key("last_error"));
            err.str("message", &e.message);
            err.str("at", &rfc3339(e.at_ms));
            err.secs(
                "age_seconds",
                now_ms.saturating_sub(e.at_ms) as f64 / 1000.0,
            );
            err.close();
        }
        None => o.key("last_error").push_str("null"),
    }
    o.close();
}

fn udp_status(out: &mut String, l: &UdpView) {
    let t = UdpTotals::of(l.loops);
    let mut o = Obj::open(out);
    o.str("name", l.name);
    o.str("bind_addr", &l.bind_addr.to_string());
    o.num("datagrams_in", t.datagrams_in);
    o.num("bytes_in", t.bytes_in);
    o.num("lines_in", t.lines_in);
    o.num("bad_lines", t.bad_lines);
    o.num("truncated_datagrams", t.truncated);
    o.num("kernel_dropped_datagrams", t.kernel_drops);
    o.num("receive_errors", t.recv_errors);
    json_array(o.key("outputs"), &l.outputs, |out, u| {
        let s = u.stats;
        let mut o = Obj::open(out);
        o.str("name", u.name);
        o.str("location", &u.location.to_string());
        o.num("mtu", u.mtu as u64);
        o.num("datagrams_out", s.datagrams_out.get());
        o.num("lines_out", s.lines_out.get());
        o.num("bytes_out", s.bytes_out.get());
        o.num("send_errors", s.send_errors.get());
        let mut dropped = Obj::open(o.key("dropped_lines"));
        for (reason, get) in UDP_OUTPUT_DROPS {
            dropped.num(reason, get(s));
        }
        dropped.close();
        o.close();
    });
    o.close();
}

/// Unix milliseconds as RFC 3339 UTC: `2024-02-29T13:05:09.042Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        unix_ms % 1000
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01. Counts in 400-year eras
/// (146 097 days each) of years that start on 1 March, so the leap day is the last day
/// of a year and month lengths follow a fixed 153-days-per-5-months pattern.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 1970-01-01 is day 719 468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------
// /metrics
// ---------------------------------------------------------------------------------------

/// Prometheus text exposition, one family at a time.
struct Exposition {
    out: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of one family; its samples must follow before the next.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(
            self.out,
            "# HELP {PREFIX}{name} {help}\n# TYPE {PREFIX}{name} {kind}\n"
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(PREFIX);
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                push_label_value(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newline escaped, as the format requires.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";

type Family<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

/// Per HTTP listener, label `listener`: (name, type, help, value).
const LISTENER_FAMILIES: [Family<HttpTotals>; 6] = [
    (
        "requests_total",
        COUNTER,
        "HTTP requests received with a complete head, every route.",
        |t| t.requests,
    ),
    (
        "points_in_total",
        COUNTER,
        "Points accepted in /write bodies (before fan-out).",
        |t| t.points_in,
    ),
    (
        "bytes_in_total",
        COUNTER,
        "Bytes read from HTTP clients, request heads included.",
        |t| t.bytes_in,
    ),
    (
        "rejected_connections_total",
        COUNTER,
        "Connections closed at once because the listener had max-connections open.",
        |t| t.connections_rejected,
    ),
    (
        "held_changes_total",
        COUNTER,
        "Writes and statements held (client not read) while a backend's queue caught up.",
        |t| t.changes_held,
    ),
    (
        "held_changes_too_long_total",
        COUNTER,
        "Held writes and statements answered 503 because the backend did not catch up in time.",
        |t| t.changes_held_too_long,
    ),
];

/// Per HTTP backend, labels `listener` and `backend`.
const BACKEND_FAMILIES: [Family<BackendStats>; 15] = [
    (
        "backend_up",
        GAUGE,
        "1 when the last write or /ping probe to the backend succeeded.",
        |s| u64::from(s.down.get() == 0),
    ),
    (
        "backend_delivered_requests_total",
        COUNTER,
        "Writes the backend accepted (2xx), replays included.",
        |s| s.delivered_requests.get(),
    ),
    (
        "backend_points_out_total",
        COUNTER,
        "Points the backend accepted (2xx).",
        |s| s.delivered_points.get(),
    ),
    (
        "backend_bytes_out_total",
        COUNTER,
        "Body bytes the backend accepted (2xx), before any gzip.",
        |s| s.delivered_bytes.get(),
    ),
    (
        "backend_rejected_requests_total",
        COUNTER,
        "Writes the backend refused (4xx).",
        |s| s.rejected_requests.get(),
    ),
    (
        "backend_failed_requests_total",
        COUNTER,
        "Write attempts that failed (5xx, timeout, connection error, full channel).",
        |s| s.failed_requests.get(),
    ),
    (
        "backend_retries_total",
        COUNTER,
        "Attempts to deliver queued (RAM or spooled) writes after a failure.",
        |s| s.retries.get(),
    ),
    (
        "backend_spooled_points_total",
        COUNTER,
        "Points written to the backend's disk spool.",
        |s| s.spooled_points.get(),
    ),
    (
        "backend_spool_appended_bytes_total",
        COUNTER,
        "Bytes appended to the backend's disk spool, record headers included.",
        |s| s.spool_appended_bytes.get(),
    ),
    (
        "backend_spool_syncs_total",
        COUNTER,
        "fdatasync calls that made spool appends durable (one per group commit).",
        |s| s.spool_syncs.get(),
    ),
    (
        "backend_replayed_points_total",
        COUNTER,
        "Points delivered from the backend's queue (RAM or spool), i.e. caught up.",
        |s| s.replayed_points.get(),
    ),
    (
        "backend_queued_requests",
        GAUGE,
        "Writes waiting for the backend, in RAM or in the spool.",
        |s| s.queued_requests.get(),
    ),
    (
        "backend_queue_ram_bytes",
        GAUGE,
        "Bytes of writes waiting for the backend in the RAM retry buffer.",
        |s| s.ram_queue_bytes.get(),
    ),
    (
        "backend_queue_spool_bytes",
        GAUGE,
        "Bytes of writes waiting for the backend in its disk spool.",
        |s| s.spool_bytes.get(),
    ),
    (
        "backend_queued_since_seconds",
        GAUGE,
        "Unix time the oldest queued write was queued; 0 when nothing is queued.",
        |s| s.queued_since_ms.get() / 1000,
    ),
];

/// Per UDP listener, label `listener`.
const UDP_FAMILIES: [Family<UdpTotals>; 5] = [
    (
        "udp_datagrams_in_total",
        COUNTER,
        "Datagrams received, truncated ones included.",
        |t| t.datagrams_in,
    ),
    (
        "udp_bytes_in_total",
        COUNTER,
        "Bytes of datagrams received.",
        |t| t.bytes_in,
    ),
    (
        "udp_lines_in_total",
        COUNTER,
        "Point lines accepted and handed to the outputs.",
        |t| t.lines_in,
    ),
    (
        "udp_bad_lines_total",
        COUNTER,
        "Lines dropped because they are not valid line protocol.",
        |t| t.bad_lines,
    ),
    (
        "udp_receive_errors_total",
        COUNTER,
        "Failed socket reads.",
        |t| t.recv_errors,
    ),
];

/// Per UDP output, labels `listener` and `backend`.
const UDP_OUTPUT_FAMILIES: [Family<UdpOutputStats>; 4] = [
    (
        "udp_output_datagrams_total",
        COUNTER,
        "Datagrams sent to the output.",
        |s| s.datagrams_out.get(),
    ),
    (
        "udp_output_lines_total",
        COUNTER,
        "Lines sent to the output.",
        |s| s.lines_out.get(),
    ),
    (
        "udp_output_bytes_total",
        COUNTER,
        "Bytes sent to the output.",
        |s| s.bytes_out.get(),
    ),
    (
        "udp_output_send_errors_total",
        COUNTER,
        "Datagrams the kernel refused to send.",
        |s| s.send_errors.get(),
    ),
];

/// `le` label values of the latency buckets, in seconds.
fn latency_bounds() -> [String; LATENCY_BOUNDS_US.len()] {
    LATENCY_BOUNDS_US.map(|us| (us as f64 / 1e6).to_string())
}

/// `GET /metrics`: Prometheus text format 0.0.4.
pub fn metrics(view: &View) -> Page {
    let mut m = Exposition {
        out: String::with_capacity(16 * 1024),
    };
    m.family("build_info", GAUGE, "Always 1; the version is a label.");
    m.sample("build_info", &[("version", view.version)], 1);
    m.family("uptime_seconds", GAUGE, "Seconds since the relay started.");
    m.sample("uptime_seconds", &[], view.uptime.as_secs_f64());
    m.family(
        "tls_handshake_failures_total",
        COUNTER,
        "TLS handshakes that failed on HTTPS listeners.",
    );
    m.sample(
        "tls_handshake_failures_total",
        &[],
        view.tls_handshake_failures,
    );
    m.family(
        "healthy",
        GAUGE,
        "1 when /health passes: every HTTP listener has a backend up with an empty queue.",
    );
    m.sample("healthy", &[], u64::from(view.healthy()));

    let http: Vec<HttpTotals> = view.http.iter().map(|l| HttpTotals::of(l.loops)).collect();
    for (name, kind, help, get) in LISTENER_FAMILIES {
        m.family(name, kind, help);
        for (l, t) in view.http.iter().zip(&http) {
            m.sample(name, &[("listener", l.name)], get(t));
        }
    }
    m.family(
        "responses_total",
        COUNTER,
        "HTTP answers sent, by status class.",
    );
    for (l, t) in view.http.iter().zip(&http) {
        for (code, n) in [
            ("2xx", t.answered_2xx),
            ("4xx", t.answered_4xx),
            ("5xx", t.answered_5xx),
        ] {
            m.sample(
                "responses_total",
                &[("listener", l.name), ("code", code)],
                n,
            );
        }
    }
    m.family(
        "open_connections",
        GAUGE,
        "HTTP client connections open now.",
    );
    for l in &view.http {
        m.sample(
            "open_connections",
            &[("listener", l.name)],
            l.open_connections,
        );
    }
    m.family(
        "request_duration_seconds",
        "histogram",
        "Time from a /write request's complete head to its answer being queued.",
    );
    let bounds = latency_bounds();
    for (l, t) in view.http.iter().zip(&http) {
        let mut cumulative = 0;
        for (bound, n) in bounds.iter().zip(t.latency) {
            cumulative += n;
            m.sample(
                "request_duration_seconds_bucket",
                &[("listener", l.name), ("le", bound)],
                cumulative,
            );
        }
        let count = t.latency_count();
        m.sample(
            "request_duration_seconds_bucket",
            &[("listener", l.name), ("le", "+Inf")],
            count,
        );
        m.sample(
            "request_duration_seconds_sum",
            &[("listener", l.name)],
            t.latency_sum_us as f64 / 1e6,
        );
        m.sample(
            "request_duration_seconds_count",
            &[("listener", l.name)],
            count,
        );
    }

    for (name, kind, help, get) in BACKEND_FAMILIES {
        m.family(name, kind, help);
        for l in &view.http {
            for b in &l.backends {
                m.sample(
                    name,
                    &[("listener", l.name), ("backend", b.name)],
                    get(b.stats),
                );
            }
        }
    }
    m.family(
        "backend_dropped_points_total",
        COUNTER,
        "Points that will never reach the backend, by reason.",
    );
    for l in &view.http {
        for b in &l.backends {
            for (reason, get) in BACKEND_DROPS {
                m.sample(
                    "backend_dropped_points_total",
                    &[
                        ("listener", l.name),
                        ("backend", b.name),
                        ("reason", reason),
                    ],
                    get(b.stats),
                );
            }
        }
    }

    let udp: Vec<UdpTotals> = view.udp.iter().map(|l| UdpTotals::of(l.loops)).collect();
    for (name, kind, help, get) in UDP_FAMILIES {
        m.family(name, kind, help);
        for (l, t) in view.udp.iter().zip(&udp) {
            m.sample(name, &[("listener", l.name)], get(t));
        }
    }
    m.family(
        "udp_dropped_datagrams_total",
        COUNTER,
        "Datagrams lost on the way in: truncated (over 64 KiB) or dropped by the kernel \
         (receive buffer full).",
    );
    for (l, t) in view.udp.iter().zip(&udp) {
        for (reason, n) in [("truncated", t.truncated), ("kernel", t.kernel_drops)] {
            m.sample(
                "udp_dropped_datagrams_total",
                &[("listener", l.name), ("reason", reason)],
                n,
            );
        }
    }
    for (name, kind, help, get) in UDP_OUTPUT_FAMILIES {
        m.family(name, kind, help);
        for l in &view.udp {
            for o in &l.outputs {
                m.sample(
                    name,
                    &[("listener", l.name), ("backend", o.name)],
                    get(o.stats),
                );
            }
        }
    }
    m.family(
        "udp_output_dropped_lines_total",
        COUNTER,
        "Lines that never left for the output, by reason.",
    );
    for l in &view.udp {
        for o in &l.outputs {
            for (reason, get) in UDP_OUTPUT_DROPS {
                m.sample(
                    "udp_output_dropped_lines_total",
                    &[
                        ("listener", l.name),
                        ("backend", o.name),
                        ("reason", reason),
                    ],
                    get(o.stats),
                );
            }
        }
    }
    Page {
        status: 200,
        content_type: PROMETHEUS_TEXT,
        body: m.out.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::LastError;

    /// Stats that outlive the views borrowing them.
    struct Fixture {
        loops: Vec<Arc<ListenerStats>>,
        backends: Vec<BackendStats>,
        udp_loops: Vec<Arc<UdpListenerStats>>,
        udp_out: UdpOutputStats,
    }

    impl Fixture {
        fn new(backends: usize) -> Fixture {
            Fixture {
                loops: vec![Arc::default(), Arc::default()],
                backends: (0..backends).map(|_| BackendStats::default()).collect(),
                udp_loops: vec![Arc::default(), Arc::default()],
                udp_out: UdpOutputStats::default(),
            }
        }

        fn view(&self) -> View<'_> {
            View {
                version: "1.2.3",
                uptime: Duration::from_millis(61_500),
                now_ms: 1_700_000_010_000,
                shutting_down: false,
                tls_handshake_failures: 0,
                http: vec![HttpView {
                    name: "in",
                    bind_addr: "127.0.0.1:9096".parse().unwrap(),
                    ack: Ack::Any,
                    loops: &self.loops,
                    open_connections: 3,
                    backends: self
                        .backends
                        .iter()
                        .enumerate()
                        .map(|(i, stats)| BackendView {
                            name: ["a", "b", "c"][i],
                            location: "http://127.0.0.1:8086/write",
                            spool_limit: 64 << 20,
                            stats,
                        })
                        .collect(),
                }],
                udp: vec![UdpView {
                    name: "udp-in",
                    bind_addr: "127.0.0.1:8089".parse().unwrap(),
                    loops: &self.udp_loops,
                    outputs: vec![UdpOutputView {
                        name: "u0",
                        location: "127.0.0.1:9089".parse().unwrap(),
                        mtu: 1024,
                        stats: &self.udp_out,
                    }],
                }],
            }
        }
    }

    fn body(page: &Page) -> String {
        String::from_utf8(page.body.clone()).unwrap()
    }

    /// Sample lines of `/metrics` as (name with labels, value).
    fn samples(text: &str) -> Vec<(&str, &str)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap())
            .collect()
    }

    fn sample<'t>(text: &'t str, series: &str) -> &'t str {
        let found = samples(text).into_iter().find(|(s, _)| *s == series);
        found
            .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
            .1
    }

    #[test]
    fn backend_state_follows_down_flag_and_queue() {
        let s = BackendStats::default();
        assert_eq!(BackendState::of(&s), BackendState::Up);
        s.queued_requests.set(2);
        assert_eq!(BackendState::of(&s), BackendState::CatchingUp);
        s.queued_requests.set(0);
        s.queued_since_ms.set(1);
        assert_eq!(BackendState::of(&s), BackendState::CatchingUp);
        s.down.set(1);
        assert_eq!(BackendState::of(&s), BackendState::Down);
        assert_eq!(BackendState::Down.as_str(), "down");
        assert_eq!(BackendState::CatchingUp.as_str(), "catching-up");
    }

    #[test]
    fn health_passes_while_one_backend_per_listener_is_up_and_empty() {
        let f = Fixture::new(2);
        let page = health(&f.view());
        assert_eq!(page.status, 200);
        assert_eq!(page.content_type, JSON);
        assert!(body(&page).starts_with(r#"{"status":"pass","listeners":[{"name":"in""#));
        let tail = format!(
            r#"],"name":"influxdb","message":"ready for queries and writes","checks":[],"version":"{}","#,
            crate::http::response::INFLUXDB_VERSION
        );
        assert!(body(&page).contains(&tail), "{}", body(&page));

        f.backends[0].down.set(1);
        let page = health(&f.view());
        assert_eq!(page.status, 200, "{}", body(&page));
        assert!(body(&page).contains(r#"{"name":"a","state":"down","#));
    }

    #[test]
    fn health_fails_with_detail_when_no_backend_is_up_and_empty() {
        let f = Fixture::new(2);
        f.backends[0].down.set(1);
        f.backends[1].queued_requests.set(4);
        f.backends[1].ram_queue_bytes.set(100);
        f.backends[1].spool_bytes.set(20);
        f.backends[1].queued_since_ms.set(1_700_000_007_500);
        let page = health(&f.view());
        assert_eq!(page.status, 503);
        let text = body(&page);
        assert!(text.starts_with(r#"{"status":"fail","reason":"#), "{text}");
        assert!(text.contains(r#""name":"in","status":"fail""#), "{text}");
        assert!(
            text.contains(
                r#"{"name":"b","state":"catching-up","queued_requests":4,"queued_bytes":120,"oldest_queued_seconds":2.500}"#
            ),
            "{text}"
        );
    }

    #[test]
    fn health_fails_while_shutting_down() {
        let f = Fixture::new(1);
        let mut view = f.view();
        view.shutting_down = true;
        let page = health(&view);
        assert_eq!(page.status, 503);
        assert!(body(&page).contains(r#""reason":"shutting down""#));
    }

    #[test]
    fn status_sums_loops_and_shows_backend_detail() {
        let f = Fixture::new(2);
        f.loops[0].requests.add(2);
        f.loops[1].requests.add(3);
        f.loops[0].answered_2xx.add(4);
        f.loops[1].answered_4xx.inc();
        f.loops[1].points_in.add(30);
        f.loops[0]
            .write_latency
            .observe(Duration::from_millis(1500));
        let b = &f.backends[1];
        b.delivered_requests.add(7);
        b.dropped_spool_full.add(9);
        b.down.set(1);
        *b.last_error.lock().unwrap() = Some(LastError {
            message: "connection refused \"x\"".into(),
            at_ms: 1_700_000_000_123,
        });
        f.udp_loops[1].lines_in.add(5);
        f.udp_out.lines_too_long.add(2);

        let page = status(&f.view());
        assert_eq!(page.status, 200);
        let text = body(&page);
        for part in [
            r#"{"status":"pass","version":"1.2.3","time":"2023-11-14T22:13:30.000Z","uptime_seconds":61.500,"started":"2023-11-14T22:12:28.500Z","http":[{"name":"in","bind_addr":"127.0.0.1:9096","ack":"any","status":"pass","requests":5,"answers":{"2xx":4,"4xx":1,"5xx":0},"points_in":30,"#,
            r#""open_connections":3,"rejected_connections":0,"held_changes":0,"held_changes_too_long":0,"write_latency":{"count":1,"sum_seconds":1.500}"#,
            r#"{"name":"b","location":"http://127.0.0.1:8086/write","state":"down","#,
            r#""queued_spool_bytes":0,"spool_limit_bytes":67108864,"#,
            r#""delivered_requests":7,"#,
            r#""dropped_points":{"queue_full":0,"buffer_full":0,"spool_full":9,"#,
            r#""last_error":{"message":"connection refused \"x\"","at":"2023-11-14T22:13:20.123Z","age_seconds":9.877}"#,
            r#""last_error":null"#,
            r#""udp":[{"name":"udp-in","bind_addr":"127.0.0.1:8089","datagrams_in":0,"bytes_in":0,"lines_in":5,"#,
            r#""dropped_lines":{"too_long":2,"queue_full":0,"send_failed":0}"#,
        ] {
            assert!(text.contains(part), "missing {part}\nin {text}");
        }
    }

    #[test]
    fn status_page_is_self_contained_and_reads_what_status_renders() {
        let page = std::str::from_utf8(STATUS_PAGE).unwrap();
        assert!(
            page.len() < 16 << 10,
            "the page grew to {} bytes",
            page.len()
        );
        // The SVG namespace is a name, not something fetched; nothing else may be absolute.
        let page_only = page.replace("http://www.w3.org/2000/svg", "");
        for external in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!page_only.contains(external), "the page holds {external:?}");
        }
        assert!(
            page.contains(r#"new URL("status", location.href)"#),
            "status relative to the page"
        );

        let f = Fixture::new(1);
        *f.backends[0].last_error.lock().unwrap() = Some(LastError {
            message: "refused".into(),
            at_ms: 1_700_000_000_000,
        });
        let json = body(&status(&f.view()));
        for field in [
            "status",
            "version",
            "uptime_seconds",
            "http",
            "udp",
            "name",
            "bind_addr",
            "ack",
            "points_in",
            "open_connections",
            "answers",
            "backends",
            "state",
            "location",
            "queued_requests",
            "queued_ram_bytes",
            "queued_spool_bytes",
            "spool_limit_bytes",
            "oldest_queued_seconds",
            "delivered_points",
            "failed_requests",
            "dropped_points",
            "last_error",
            "message",
            "age_seconds",
            "lines_in",
            "datagrams_in",
            "bad_lines",
            "truncated_datagrams",
            "kernel_dropped_datagrams",
            "receive_errors",
            "outputs",
            "lines_out",
            "datagrams_out",
            "send_errors",
            "dropped_lines",
        ] {
            assert!(
                page.contains(&format!(".{field}")),
                "the page does not read {field}"
            );
            assert!(
                json.contains(&format!("\"{field}\":")),
                "/status has no {field}"
            );
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_825_600_007), "2000-02-29T12:00:00.007Z");
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(1_709_251_200_000), "2024-03-01T00:00:00.000Z");
        assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn civil_dates_advance_one_day_at_a_time() {
        // Walk 1970..2400 and check each date follows the previous one.
        let (mut y, mut m, mut d) = civil_from_days(0);
        for days in 1..157_000 {
            let next = civil_from_days(days);
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if d < month_len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!(next, expected, "day {days}");
            (y, m, d) = next;
        }
    }

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let f = Fixture::new(1);
        let h = &f.loops[0].write_latency;
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_micros(501));
        h.observe(Duration::from_secs(11));
        let (buckets, sum_us) = h.snapshot();
        assert_eq!(buckets[0], 1, "500 us is <= the first bound");
        assert_eq!(buckets[1], 1);
        assert_eq!(buckets[LATENCY_BOUNDS_US.len()], 1, "above every bound");
        assert_eq!(sum_us, 11_001_001);
    }

    #[test]
    fn metrics_declare_each_family_once_before_its_samples() {
        let f = Fixture::new(2);
        let page = metrics(&f.view());
        assert_eq!(page.content_type, PROMETHEUS_TEXT);
        let text = body(&page);
        let mut typed: Vec<(&str, &str)> = Vec::new();
        let mut helped = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(typed.iter().all(|(n, _)| *n != name), "{name} typed twice");
                assert!(helped.last() == Some(&name), "HELP before TYPE for {name}");
                typed.push((name, kind));
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.push(rest.split_once(' ').unwrap().0);
            } else {
                let series = line.split([' ', '{']).next().unwrap();
                let (family, kind) = *typed.last().expect("a sample before any TYPE");
                let ok = series == family
                    || kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| series.strip_suffix(s) == Some(family));
                assert!(ok, "{series} under the family {family}");
                assert!(series.starts_with(PREFIX));
            }
        }
        for (name, kind) in typed {
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{name} is a {kind}"
            );
        }
    }

    #[test]
    fn metrics_histogram_is_cumulative_and_counts_match() {
        let f = Fixture::new(1);
        f.loops[0].write_latency.observe(Duration::from_micros(700));
        f.loops[1].write_latency.observe(Duration::from_micros(800));
        f.loops[1].write_latency.observe(Duration::from_millis(30));
        f.loops[1].write_latency.observe(Duration::from_secs(20));
        let text = body(&metrics(&f.view()));
        let bucket = |le: &str| {
            sample(
                &text,
                &format!(
                    "influx_relay_request_duration_seconds_bucket{{listener=\"in\",le=\"{le}\"}}"
                ),
            )
            .to_string()
        };
        assert_eq!(bucket("0.0005"), "0");
        assert_eq!(bucket("0.001"), "2");
        assert_eq!(bucket("0.025"), "2");
        assert_eq!(bucket("0.05"), "3");
        assert_eq!(bucket("10"), "3");
        assert_eq!(bucket("+Inf"), "4");
        assert_eq!(
            sample(
                &text,
                "influx_relay_request_duration_seconds_count{listener=\"in\"}"
            ),
            "4"
        );
        assert_eq!(
            sample(
                &text,
                "influx_relay_request_duration_seconds_sum{listener=\"in\"}"
            ),
            "20.0315"
        );
    }

    #[test]
    fn metrics_show_counters_by_listener_backend_code_and_reason() {
        let f = Fixture::new(2);
        f.loops[0].points_in.add(10);
        f.loops[1].points_in.add(20);
        f.loops[1].answered_2xx.add(3);
        f.backends[0].dropped_max_age.add(4);
        f.backends[1].down.set(1);
        f.backends[1].spool_bytes.set(4096);
        f.udp_loops[0].truncated.inc();
        let text = body(&metrics(&f.view()));
        for (series, value) in [
            ("influx_relay_points_in_total{listener=\"in\"}", "30"),
            (
                "influx_relay_responses_total{listener=\"in\",code=\"2xx\"}",
                "3",
            ),
            ("influx_relay_open_connections{listener=\"in\"}", "3"),
            (
                "influx_relay_backend_up{listener=\"in\",backend=\"a\"}",
                "1",
            ),
            (
                "influx_relay_backend_up{listener=\"in\",backend=\"b\"}",
                "0",
            ),
            (
                "influx_relay_backend_queue_spool_bytes{listener=\"in\",backend=\"b\"}",
                "4096",
            ),
            (
                "influx_relay_backend_dropped_points_total{listener=\"in\",backend=\"a\",reason=\"max_age\"}",
                "4",
            ),
            (
                "influx_relay_udp_dropped_datagrams_total{listener=\"udp-in\",reason=\"truncated\"}",
                "1",
            ),
            ("influx_relay_healthy", "1"),
            ("influx_relay_uptime_seconds", "61.5"),
            ("influx_relay_build_info{version=\"1.2.3\"}", "1"),
        ] {
            assert_eq!(sample(&text, series), value, "{series}");
        }
    }

    #[test]
    fn metric_label_values_are_escaped() {
        let mut m = Exposition { out: String::new() };
        m.sample("x", &[("listener", "a\"b\\c\nd")], 1);
        assert_eq!(m.out, "influx_relay_x{listener=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
