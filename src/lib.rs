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
//! Every stage downstream of the loop is sans-I/O or owns its own thread: the scanner
//! and the spool know nothing of sockets, and backends know nothing of the HTTP server.

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
pub mod tls;
pub mod udp;
