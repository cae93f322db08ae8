//! Configuration: raw TOML → checked `Config` (defaults as documented constants).
//!
//! Loading happens in two stages so that every mistake is reported against the key the
//! user wrote:
//!
//! 1. **Raw**: the TOML is walked table by table; each known key is taken out with its
//!    expected type, and whatever is left over is an unknown key. The result is a set of
//!    `Raw*` structs holding plain TOML values (`Option` = not written).
//! 2. **Build**: the raw values are interpreted (durations, addresses, URLs, sizes),
//!    defaults from the `DEFAULT_*` constants fill the gaps, and the cross-field rules run
//!    (unique names, non-overlapping binds, at least one listener and one output each).
//!
//! The accepted file is a superset of influxdb-relay's, and where that program treated a
//! value specially (an empty duration string, `max-batch-kb = 0`, `mtu = 0`: "use the
//! default"), so does this loader, so that its configs load unchanged.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Default `threads`: 0, meaning one event loop per core.
pub const DEFAULT_THREADS: usize = 0;
/// Upper bound for `threads`: far above any core count, low enough to catch a typo
/// that would start thousands of loops.
pub const MAX_THREADS: usize = 1024;
/// Default `pin-threads`: false (let the scheduler place loops).
pub const DEFAULT_PIN_THREADS: bool = false;
/// Default `spool-dir`: `./spool`, relative to the working directory.
pub const DEFAULT_SPOOL_DIR: &str = "./spool";
/// Default `log-level`: `info` (events, nothing per request).
pub const DEFAULT_LOG_LEVEL: LogLevel = LogLevel::Info;
/// Default `shutdown-timeout`: 10 s to answer in-flight requests before exiting.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Default `[[http]] ack`: `any`, the original's answer-on-first-success.
pub const DEFAULT_ACK: Ack = Ack::Any;
/// Default `[[http]] max-body-size-mb`: 25 MiB, InfluxDB's own default limit.
pub const DEFAULT_MAX_BODY_SIZE_MB: u64 = 25;
/// Default `[[http]] read-timeout`: 10 s for a client to make progress on head or body.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `[[http]] read-wait`: 5 s. How long a read may wait for a backend that has
/// applied every change acknowledged before it arrived; past it, the least-behind
/// backend answers with `X-Relay-Behind: true`.
pub const DEFAULT_READ_WAIT: Duration = Duration::from_secs(5);

/// Default `[[http]] idle-timeout`: 60 s before an idle keep-alive connection is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `[[http]] max-connections`: 10 000 open client connections per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default `[[http]] auth-metrics`: false, so `/health`, `/status`, `/metrics` and the
/// status page `/` stay open to health checkers and scrapers even when the listener has
/// users.
pub const DEFAULT_AUTH_METRICS: bool = false;
/// Default `[[http]] forward-credentials`: true, the original's behaviour: the client's
/// `Authorization` header and `u`/`p` query parameters go on to the backends.
pub const DEFAULT_FORWARD_CREDENTIALS: bool = true;
/// Default `[[http]] ssl-min-version`: TLS 1.2, the oldest version still considered
/// safe and the newest that every InfluxDB client library speaks.
pub const DEFAULT_SSL_MIN_VERSION: TlsVersion = TlsVersion::V1_2;

/// Default HTTP output `timeout`: 10 s per write request to a backend.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default HTTP output `skip-tls-verification`: false.
pub const DEFAULT_SKIP_TLS_VERIFICATION: bool = false;
/// Default HTTP output `buffer-size-mb`: 0 MiB, i.e. no RAM retry buffer.
pub const DEFAULT_BUFFER_SIZE_MB: u64 = 0;
/// HTTP output `max-batch-kb` when the file says 0: 512 KiB, as the original did.
pub const DEFAULT_MAX_BATCH_KB: u64 = 512;
/// Largest request that writes waiting for a backend (live ones, and queued ones on
/// replay) are merged into when the output does not set `max-batch-kb`: 4 MiB. With
/// one connection per backend, a backend that fell behind can only catch up by sending
/// more per round trip: at 512 KiB two equal backends under full load both run at that
/// cap, so the one behind never recovers (measured: 2 of 8 five-second runs at 128
/// connections overflowed a backend's channel at 512 KiB, none of 8 at 4 MiB).
/// InfluxDB 1.x takes bodies up to 25 MB by default.
pub const DEFAULT_COALESCE_KB: u64 = 4096;
/// Default HTTP output `max-delay-interval`: 10 s, the cap of the retry backoff.
pub const DEFAULT_MAX_DELAY_INTERVAL: Duration = Duration::from_secs(10);
/// Default HTTP output `concurrency`: 1 keep-alive connection per backend.
pub const DEFAULT_CONCURRENCY: usize = 1;
/// Default HTTP output `spool-size-mb`: 0 MiB, i.e. no disk spool.
pub const DEFAULT_SPOOL_SIZE_MB: u64 = 0;
/// Default HTTP output `spool-max-age`: 168 h (one week) before a spooled write is dropped.
pub const DEFAULT_SPOOL_MAX_AGE: Duration = Duration::from_secs(168 * 3600);
/// Default HTTP output `gzip`: false (send bodies uncompressed).
pub const DEFAULT_GZIP: bool = false;
/// Default HTTP output `catch-up-live-percent`: 0, live writes are never held back for
/// a catch-up. A backend that only answers slowly would otherwise slow every client of
/// its listener down to its own pace.
pub const DEFAULT_CATCH_UP_LIVE_PERCENT: u32 = 0;
/// Path used when an HTTP output `location` has none (or just `/`).
pub const DEFAULT_WRITE_PATH: &str = "/write";

/// Default `[[udp]] read-buffer`: 0 bytes, i.e. keep the OS default `SO_RCVBUF`.
pub const DEFAULT_READ_BUFFER: usize = 0;
/// Default `[[udp]] precision`: nanoseconds (also what an empty string means).
pub const DEFAULT_PRECISION: Precision = Precision::Nanoseconds;
/// Default UDP output `mtu`: 1024 bytes per datagram (also used when the file says 0).
pub const DEFAULT_MTU: usize = 1024;
/// Smallest UDP output `mtu`, in bytes: below this most lines could never be sent.
pub const MIN_MTU: usize = 64;
/// Largest UDP output `mtu`, in bytes: the biggest IPv4 UDP payload.
pub const MAX_MTU: usize = 65_507;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// When a client's write counts as accepted (README: HTTP API).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// First backend delivered-or-spooled answers 204 (the original's behaviour).
    Any,
    /// A majority of backends delivered-or-spooled.
    Quorum,
    /// Every backend delivered-or-spooled.
    All,
}

/// The oldest TLS version an HTTPS listener accepts (`ssl-min-version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
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
    /// Unique among all listeners; defaults to `http://`+bind-addr (`https://` when
    /// `ssl-combined-pem` is set), so it may contain `/` and `:`.
    pub name: String,
    /// Port 0 is accepted (tests); such listeners are exempt from the duplicate check.
    pub bind_addr: SocketAddr,
    /// Certificate chain and private key in one PEM file; `None` = plain HTTP. Only the
    /// name is checked here: the file is read when the listener starts.
    pub ssl_combined_pem: Option<PathBuf>,
    /// Used only with `ssl_combined_pem`.
    pub ssl_min_version: TlsVersion,
    /// `None` when absent or empty.
    pub default_retention_policy: Option<String>,
    pub ack: Ack,
    /// Bytes (from `max-body-size-mb`).
    pub max_body_size: usize,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Longest wait of a read for an up-to-date backend (`read-wait`; 0: never wait).
    pub read_wait: Duration,
    pub max_connections: usize,
    /// Relay-side authentication (`users`, `users-file`, `auth-metrics`); `None`: every
    /// request is accepted, as in the original.
    pub auth: Option<AuthConfig>,
    /// `false`: the client's `Authorization` header and `u`/`p` query parameters stay
    /// at the relay instead of going on to the backends.
    pub forward_credentials: bool,
    /// Never empty; names unique within the listener.
    pub outputs: Vec<HttpOutput>,
}

/// The credentials one listener accepts. Only SHA-256 digests are kept, so neither the
/// config file nor the relay's memory holds a usable secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Names unique, non-empty and without `:` (Basic credentials cannot carry one).
    pub users: Vec<User>,
    /// SHA-256 of each accepted bare token (`Authorization: Token <token>`); unique.
    pub tokens: Vec<[u8; 32]>,
    /// `auth-metrics`: `/health`, `/status`, `/metrics` and `/` need credentials too.
    pub metrics: bool,
}

/// One `name` + `password-sha256` entry (from `users` or `users-file`).
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password_sha256: [u8; 32],
}

// Digests of short passwords can be brute-forced: keep them out of printed configs.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        f.debug_struct("AuthConfig")
            .field("users", &names)
            .field("tokens", &self.tokens.len())
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password_sha256", &"<redacted>")
            .finish()
    }
}

/// Where an HTTP output's writes go, split out of `location`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub https: bool,
    /// Host name or IP literal, IPv6 without brackets (ready for `(host, port)`
    /// resolution; a `Host:` header needs the brackets put back).
    pub host: String,
    pub port: u16,
    /// Path without query, e.g. `/write`.
    pub path: String,
    /// The URL as written in the file, for logs.
    pub url: String,
}

impl Location {
    /// The backend's addresses, looked up now (a name may move while the relay runs),
    /// in the order to try them: see [`lookup`].
    pub fn addresses(&self) -> std::io::Result<Vec<SocketAddr>> {
        lookup(&self.host, self.port)
    }
}

/// The one way the relay turns a host name into addresses: every address of `host`,
/// IPv4 ones first, since `localhost` often lists `::1` first while InfluxDB's
/// listeners are usually IPv4 only. Bind and UDP addresses in the file take the first,
/// once, at load; writes try each in turn; reads go to the first.
pub fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    Ok(addrs)
}

#[derive(Clone, Debug)]
pub struct HttpOutput {
    /// Defaults to `location` as written.
    pub name: String,
    pub location: Location,
    /// Always > 0.
    pub timeout: Duration,
    pub skip_tls_verification: bool,
    /// PEM certificates that an `https://` backend's chain must lead to, instead of the
    /// system roots; `None` when absent or empty. Never set together with
    /// `skip_tls_verification`.
    pub ca_file: Option<PathBuf>,
    /// Bytes (from `buffer-size-mb`); 0 = no RAM retry buffer.
    pub buffer_size: usize,
    /// Bytes: the most one request of merged writes carries, live or replayed;
    /// `max-batch-kb` when the file sets it (not 0), else [`DEFAULT_COALESCE_KB`].
    pub coalesce_limit: usize,
    pub max_delay_interval: Duration,
    /// Always ≥ 1.
    pub concurrency: usize,
    /// Bytes (from `spool-size-mb`); 0 = no spool.
    pub spool_size: u64,
    pub spool_max_age: Duration,
    pub gzip: bool,
    /// While this backend catches up (up, writes queued for it), live writes for its
    /// listener may add at most this percentage of the bytes its replay delivers; the
    /// rest wait. 0: never held for a catch-up. At most 100.
    pub catch_up_live_percent: u32,
    /// `http-user` + `http-pass` (the original's per-output credentials). When set, the
    /// backend gets this `Authorization` instead of the client's; `None` unless both
    /// keys are non-empty, as in the original.
    pub basic_auth: Option<BasicAuth>,
    /// The write API, from the `location` path (see `output_api`).
    pub api: OutputApi,
    /// `token`: sent as `Authorization: Token <token>` instead of the client's. Never
    /// set together with `basic_auth`.
    pub token: Option<Secret>,
    /// `reads`: the output may answer `/query` reads. A write-only output gets every
    /// write and never a read.
    pub reads: bool,
    /// `rebuild-on-start`: a replacement server. Unless a rebuild of this output
    /// finished before, the relay starts one at start-up (from another output of the
    /// listener) and reads skip it until it is done.
    pub rebuild_on_start: bool,
}

impl HttpOutput {
    /// Whether `/query` statements (`CREATE DATABASE`, `DROP …`) go to this output: only
    /// to a 1.x output that serves reads. 2.x and 3.x servers have no InfluxQL for
    /// them, and a write-only output is write-only because it is not a full InfluxDB
    /// (a migration target such as VictoriaMetrics).
    pub fn takes_statements(&self) -> bool {
        self.api == OutputApi::V1 && self.reads
    }

    /// The `Authorization` value the output sends instead of the client's, if any.
    pub fn own_authorization(&self) -> Option<String> {
        match (&self.token, &self.basic_auth) {
            (Some(token), _) => Some(format!("Token {}", token.0)),
            (None, Some(basic)) => Some(basic.header_value()),
            (None, None) => None,
        }
    }
}

/// What the relay does when an output cannot take writes as fast as they come, decided
/// at start-up from the output's `spool-size-mb` and `buffer-size-mb` (`--check-config`
/// and `/status` name it). Every drop is counted under the reason given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullQueuePolicy {
    /// No spool and no RAM buffer (the original relay's way): a write that finds the
    /// backend's channel full, or fails, is lost for that backend (`queue_full`,
    /// `unbuffered`); clients are never held for it.
    Drop,
    /// A RAM buffer: writes wait in order, clients are held while the overflow list is
    /// past its bound, and a full buffer drops the newest write (`buffer_full`). Not an
    /// acknowledgement: a write held only in RAM is answered once delivered.
    HoldRam,
    /// A spool: writes wait on disk in order, clients are held while the overflow list
    /// is past its bound, and only a full or unwritable spool drops (`spool_full`,
    /// `spool_error`), or age (`max_age`).
    HoldSpool,
}

impl FullQueuePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FullQueuePolicy::Drop => "drop",
            FullQueuePolicy::HoldRam => "hold-ram",
            FullQueuePolicy::HoldSpool => "hold-spool",
        }
    }
}

impl HttpOutput {
    /// A spool wins over a RAM buffer: a write on disk can be acknowledged, one in RAM
    /// cannot.
    pub fn full_queue_policy(&self) -> FullQueuePolicy {
        if self.spool_size > 0 {
            FullQueuePolicy::HoldSpool
        } else if self.buffer_size > 0 {
            FullQueuePolicy::HoldRam
        } else {
            FullQueuePolicy::Drop
        }
    }
}

/// Credentials an HTTP output sends in place of the client's `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub pass: String,
}

impl BasicAuth {
    /// The `Authorization` header value: `Basic base64(user:pass)`.
    pub fn header_value(&self) -> String {
        let mut out = String::from("Basic ");
        base64_encode(format!("{}:{}", self.user, self.pass).as_bytes(), &mut out);
        out
    }
}

// Config is printed by `--check-config` and may end up in logs: never show the password.
impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("pass", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct UdpConfig {
    /// Unique among all listeners; defaults to `udp://`+bind-addr.
    pub name: String,
    pub bind_addr: SocketAddr,
    /// SO_RCVBUF bytes; 0 = OS default.
    pub read_buffer: usize,
    pub precision: Precision,
    /// Never empty; names unique within the listener.
    pub outputs: Vec<UdpOutput>,
}

#[derive(Clone, Debug)]
pub struct UdpOutput {
    /// Defaults to `location` as written.
    pub name: String,
    /// Resolved once at load time; an IPv4 address is preferred when a name has both.
    pub location: SocketAddr,
    /// `MIN_MTU..=MAX_MTU`.
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

fn error(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// Parse and check a configuration text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| syntax_error(text, &e))?;
    let raw = RawConfig::read(table)?;
    build(raw)
}

/// Read `path` and `parse` it.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| error(String::new(), format!("cannot read: {e}")))?;
    parse(&text)
}

/// The TOML parser's own message is multi-line with a source excerpt; the command line
/// prints one line per error, so keep the message and turn the span into line:column.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message: Vec<&str> = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let message = message.join(": ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
            error(
                String::new(),
                format!("TOML syntax error at line {line}, column {column}: {message}"),
            )
        }
        None => error(String::new(), format!("TOML syntax error: {message}")),
    }
}

mod auth;
mod build;
mod fields;
mod output_api;
mod precision;
mod raw;
#[cfg(test)]
mod tests;
mod values;

pub(crate) use auth::base64_encode;
use auth::*;
use build::*;
use fields::*;
pub use output_api::*;
pub use precision::Precision;
use raw::*;
use values::*;
pub use values::{parse_duration, parse_location};
