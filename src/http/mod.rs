//! HTTP ingest: request framing (sans-I/O), the write handler and pre-built answers.

pub mod query;
pub mod request;
pub mod response;
pub mod upstream;
pub mod write;
