//! HTTP ingest: request framing (sans-I/O), relay-side authentication, the write
//! handler and pre-built answers.

pub mod auth;
pub mod query;
pub mod request;
pub mod response;
pub mod upstream;
pub mod write;
