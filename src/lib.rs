//! influx-relay: InfluxDB writes in (1.x, 2.x and 3.x APIs), the same writes out to every backend.
//!
//! One write's way through the code, each arrow a module boundary, every import
//! pointing down this page:
//!
//! ```text
//! relay          starts it all: backends, then one event loop per thread (state.rs: what they share)
//!   │
//! net            SO_REUSEPORT listening sockets (tls wraps HTTPS ones)
//!   ▼
//! event_loop     mio loop: accept, read, frame (conn.rs), route, answer, deadlines
//!   ├─▶ http     request head and body framing, /write checks, /query classes, answers
//!   │     ▼
//!   │   lineproto   line scan, grammar, timestamp stamping (sans-I/O)
//!   │     ▼
//!   │   batch    one Arc-shared Batch per request; AckTracker turns outcomes into the answer
//!   │     ▼
//!   │   applied  the change's number: what each backend has not finished (read-your-writes)
//!   │     ▼
//!   ├─▶ backend  per output: bounded channel → sender threads → HTTP client,
//!   │     │      or overflow → queue → replay thread; outcome back over LoopNotifier
//!   │     ▼
//!   │   spool    segment files, records, recovery, group commit (sans-network)
//!   │   dropped  per backend, the time ranges of the writes it gave up (for repairs)
//!   └─▶ udp      per-loop datagram sockets → scan → pack → output threads
//!
//! metrics (counters, written by their thread) and observe (/health, /status,
//! /metrics, the status page) read state; config is read by all and reads none.
//! verify is a command of its own (`influx-relay verify`): it reads every backend
//! directly through backend::client and compares them.
//! ```
//!
//! `/query` statements travel the write path as a batch of another kind; reads are
//! proxied by the loop itself to one up-to-date backend (`event_loop::proxy`).
//! Every stage downstream of the loop is sans-I/O or owns its own thread: the scanner
//! and the spool know nothing of sockets, and backends know nothing of the HTTP server.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod applied;
pub mod backend;
pub mod batch;
pub mod config;
pub mod dropped;
pub mod event_loop;
pub mod http;
pub mod lineproto;
pub mod log;
pub mod metrics;
pub mod net;
pub mod observe;
pub mod rebuild;
pub mod relay;
pub mod spool;
pub mod state;
pub mod tls;
pub mod udp;
pub mod verify;
