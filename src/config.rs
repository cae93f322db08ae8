//! Configuration: raw TOML → checked `Config` (defaults as documented constants).
//!
//! INTERFACE STUB: the loader is being written; the types below are the contract.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::lineproto::Precision;

/// When a client's write counts as accepted (SPEC §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// First backend delivered-or-spooled answers 204 (the original's behaviour).
    Any,
    /// A majority of backends delivered-or-spooled.
    Quorum,
    /// Every backend delivered-or-spooled.
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Event-loop threads, already resolved (0 in the file = number of cores).
    pub threads: usize,
    pub pin_threads: bool,
    pub spool_dir: PathBuf,
    pub log_level: LogLevel,
    pub shutdown_timeout: Duration,
    pub http: Vec<HttpConfig>,
    pub udp: Vec<UdpConfig>,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub name: String,
    pub bind_addr: SocketAddr,
    pub ssl_combined_pem: Option<PathBuf>,
    pub default_retention_policy: Option<String>,
    pub ack: Ack,
    /// Bytes (from `max-body-size-mb`).
    pub max_body_size: usize,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub outputs: Vec<HttpOutput>,
}

/// Where an HTTP output's writes go, split out of `location`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path without query, e.g. `/write`.
    pub path: String,
    /// The URL as written in the file, for logs.
    pub url: String,
}

#[derive(Clone, Debug)]
pub struct HttpOutput {
    pub name: String,
    pub location: Location,
    pub timeout: Duration,
    pub skip_tls_verification: bool,
    /// Bytes (from `buffer-size-mb`); 0 = no RAM retry buffer.
    pub buffer_size: usize,
    /// Bytes (from `max-batch-kb`).
    pub max_batch: usize,
    pub max_delay_interval: Duration,
    pub concurrency: usize,
    /// Bytes (from `spool-size-mb`); 0 = no spool.
    pub spool_size: u64,
    pub spool_max_age: Duration,
    pub gzip: bool,
}

#[derive(Clone, Debug)]
pub struct UdpConfig {
    pub name: String,
    pub bind_addr: SocketAddr,
    /// SO_RCVBUF bytes; 0 = OS default.
    pub read_buffer: usize,
    pub precision: Precision,
    pub outputs: Vec<UdpOutput>,
}

#[derive(Clone, Debug)]
pub struct UdpOutput {
    pub name: String,
    pub location: SocketAddr,
    pub mtu: usize,
}

/// A configuration problem, naming the key path (`http[0].output[1].timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parse and check a configuration text.
pub fn parse(_text: &str) -> Result<Config, ConfigError> {
    Err(ConfigError {
        path: String::new(),
        message: "loader not written yet".into(),
    })
}

/// Read `path` and `parse` it.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text)
}

/// Go duration syntax: `500ms`, `10s`, `1m30s`, `250us`, `1h`.
pub fn parse_duration(_s: &str) -> Result<Duration, String> {
    Err("not written yet".into())
}
