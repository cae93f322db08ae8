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
use crate::dropped::DroppedLog;
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
pub const STATUS_PAGE: &[u8] = include_bytes!("../status.html");
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
    /// What happens when it cannot keep up (`FullQueuePolicy`).
    pub full_queue: &'static str,
    /// The write API the output speaks (`v1`, `v2`, `v3`), and whether reads go to it.
    pub api: &'static str,
    pub reads: bool,
    pub stats: &'a BackendStats,
    /// What the backend lacks: only `/status` and `/metrics` read it, not `/health`.
    pub dropped: &'a DroppedLog,
    /// Being rebuilt (running, or failed and not yet resumed): it serves no read.
    pub rebuilding: bool,
    /// The output's latest rebuild, finished or not.
    pub rebuild: Option<Arc<crate::rebuild::Job>>,
}

impl BackendView<'_> {
    pub fn state(&self) -> BackendState {
        if self.rebuilding {
            BackendState::Rebuilding
        } else {
            BackendState::of(self.stats)
        }
    }
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
                            full_queue: output.map_or("", |o| o.full_queue_policy().as_str()),
                            api: output.map_or("", |o| o.api.name()),
                            reads: output.is_some_and(|o| o.reads),
                            stats: &b.stats,
                            rebuilding: b.rebuild.is_active(),
                            rebuild: shared.rebuilds.find(&l.config.name, &b.name),
                            dropped: &b.dropped,
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
        self.backends.iter().any(|b| b.state() == BackendState::Up)
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
    /// Being filled from another backend: it may lack data, so it serves no read.
    Rebuilding,
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
            BackendState::Rebuilding => "rebuilding",
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

mod health;
mod json;
mod prometheus;
mod status;
#[cfg(test)]
mod tests;

pub use health::health;
use json::*;
pub(crate) use json::{json_array, json_str, Obj};
pub use prometheus::metrics;
pub use status::{rfc3339, rfc3339_ns, status};
