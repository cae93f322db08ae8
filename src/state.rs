//! What every event loop reads: the listeners with their backends, the UDP side, the
//! order of changes and the shutdown flag. Built once by `relay` at start-up; only its
//! atomics change afterwards.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::BackendHandle;
use crate::config::HttpConfig;
use crate::http::write::WriteSettings;
use crate::metrics::ListenerStats;

/// State every loop reads; written only at start-up, except the atomics.
pub struct Shared {
    pub shutdown: AtomicBool,
    pub shutdown_timeout: Duration,
    pub http: Vec<HttpListener>,
    pub udp: Vec<crate::udp::UdpListener>,
    pub started: Instant,
    /// The order of changes and what clients were told succeeded (read-your-writes).
    pub changes: crate::applied::Changes,
    /// Rebuilds of backends, running and finished.
    pub rebuilds: crate::rebuild::Registry,
}

pub struct HttpListener {
    pub config: HttpConfig,
    /// Set for HTTPS listeners (`ssl-combined-pem`); one config for every loop.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub write: WriteSettings,
    pub backends: Vec<BackendHandle>,
    /// The longest a client waits for its answer: the largest output timeout.
    pub answer_timeout: Duration,
    /// Connections open across all loops (the `max-connections` limit).
    pub open_connections: AtomicUsize,
    /// Where read queries go, one per backend (same index).
    pub query_targets: Vec<crate::http::upstream::QueryTarget>,
    /// Per backend (same index), what every output of any listener that writes to the
    /// same server has not finished: a read may go there only once all of it is past
    /// the acknowledged watermark.
    pub server_unapplied: Vec<Vec<Arc<crate::applied::Unapplied>>>,
    /// One per event loop, indexed by loop id.
    pub stats: Vec<Arc<ListenerStats>>,
}
