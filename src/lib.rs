//! influx-relay: InfluxDB 1.x writes in, the same writes out to every backend.
//!
//! Data flow, one arrow per module boundary:
//!
//! ```text
//! socket (net) → event loop (event_loop, TLS in tls) → HTTP request (http) / datagram (udp)
//!   → line scan + timestamp stamping (lineproto) → one Arc-shared Batch (batch)
//!   → bounded channel per backend → backend worker (backend) ⇄ spool (spool)
//!   → outcome back to the owning loop over a channel + mio::Waker → client answer
//! ```
//!
//! `/query` statements travel the same path as writes (a batch of another kind); reads
//! are proxied by the loop itself to one in-sync backend (`event_loop::proxy`).
//! Counters live in `metrics` (written by their owning thread, summed on read) and are
//! rendered by `observe` for `/health`, `/status` and `/metrics`; `relay` starts and
//! stops everything, `config` is read by all and reads none.
//!
//! Every stage downstream of the loop is sans-I/O or owns its own thread: the scanner
//! and the spool know nothing of sockets, and backends know nothing of the HTTP server.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod applied;
pub mod backend;
pub mod batch;
pub mod config;
pub mod event_loop;
pub mod http;
pub mod lineproto;
pub mod log;
pub mod metrics;
pub mod net;
pub mod observe;
pub mod relay;
pub mod spool;
pub mod state;
pub mod tls;
pub mod udp;
