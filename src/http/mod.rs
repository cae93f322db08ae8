//! HTTP ingest: request framing (sans-I/O), relay-side authentication, the write
//! handlers (1.x `/write`, 2.x `/api/v2/write`, 3.x `/api/v3/write_lp`) and pre-built
//! answers.

pub mod api;
pub mod auth;
pub mod query;
pub mod request;
pub mod response;
pub mod upstream;
pub mod v2;
pub mod v3;
pub mod write;
