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

use crate::lineproto::Precision;

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
    /// `http-user` + `http-pass` (the original's per-output credentials). When set, the
    /// backend gets this `Authorization` instead of the client's; `None` unless both
    /// keys are non-empty, as in the original.
    pub basic_auth: Option<BasicAuth>,
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

// ---------------------------------------------------------------------------------------
// Stage 1: key names and types.
// ---------------------------------------------------------------------------------------

/// One TOML table being taken apart. Each accessor removes its key and remembers the
/// name, so that `finish` can report what is left as unknown, with a suggestion.
struct Fields {
    path: String,
    table: toml::Table,
    known: Vec<&'static str>,
}

impl Fields {
    fn new(path: String, table: toml::Table) -> Fields {
        Fields {
            path,
            table,
            known: Vec::new(),
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    fn take(&mut self, key: &'static str) -> Option<toml::Value> {
        self.known.push(key);
        self.table.remove(key)
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &toml::Value) -> ConfigError {
        error(
            self.key_path(key),
            format!("expected {expected}, found {}", type_name(found)),
        )
    }

    fn string(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", &other)),
        }
    }

    /// Durations are Go strings in the original; a bare number is ambiguous (seconds?
    /// nanoseconds, as Go would read it?), so it is refused with a hint.
    fn duration(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a duration string such as \"10s\"", &other)),
        }
    }

    fn integer(&mut self, key: &'static str) -> Result<Option<i64>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(i)),
            Some(other) => Err(self.wrong_type(key, "an integer", &other)),
        }
    }

    fn boolean(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(b)),
            Some(other) => Err(self.wrong_type(key, "true or false", &other)),
        }
    }

    /// `[[key]]` sections or `key = [ { ... }, ... ]`; TOML makes both the same value.
    fn tables(&mut self, key: &'static str) -> Result<Vec<(String, toml::Table)>, ConfigError> {
        let items = match self.take(key) {
            None => return Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items,
            Some(other) => {
                return Err(self.wrong_type(
                    key,
                    &format!("an array of tables ([[{key}]])"),
                    &other,
                ))
            }
        };
        let base = self.key_path(key);
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("{base}[{i}]");
                match item {
                    toml::Value::Table(t) => Ok((path, t)),
                    other => Err(error(
                        path,
                        format!("expected a table, found {}", type_name(&other)),
                    )),
                }
            })
            .collect()
    }

    fn finish(self) -> Result<(), ConfigError> {
        // The table is sorted, so the first unknown key reported is deterministic.
        match self.table.keys().next() {
            None => Ok(()),
            Some(key) => {
                let mut message = format!("unknown key \"{key}\"");
                if let Some(near) = suggest(key, &self.known) {
                    message.push_str(&format!(" (did you mean \"{near}\"?)"));
                }
                Err(error(self.path, message))
            }
        }
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// The known key an unknown one was probably meant to be: `bind_addr`, `Bind-Addr` and
/// one- or two-letter slips are the usual mistakes.
fn suggest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    let normalised = unknown.to_ascii_lowercase().replace('_', "-");
    known
        .iter()
        .map(|&k| (k, edit_distance(&normalised, k)))
        .filter(|&(_, d)| d <= 2)
        .min_by_key(|&(_, d)| d)
        .map(|(k, _)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

struct RawConfig {
    threads: Option<i64>,
    pin_threads: Option<bool>,
    spool_dir: Option<String>,
    log_level: Option<String>,
    shutdown_timeout: Option<String>,
    http: Vec<RawHttp>,
    udp: Vec<RawUdp>,
}

struct RawHttp {
    path: String,
    name: Option<String>,
    bind_addr: Option<String>,
    ssl_combined_pem: Option<String>,
    ssl_min_version: Option<String>,
    default_retention_policy: Option<String>,
    ack: Option<String>,
    max_body_size_mb: Option<i64>,
    read_timeout: Option<String>,
    idle_timeout: Option<String>,
    read_wait: Option<String>,
    max_connections: Option<i64>,
    users: Vec<RawUser>,
    users_file: Option<String>,
    auth_metrics: Option<bool>,
    forward_credentials: Option<bool>,
    outputs: Vec<RawHttpOutput>,
}

struct RawUser {
    path: String,
    name: Option<String>,
    password_sha256: Option<String>,
    token_sha256: Option<String>,
}

struct RawHttpOutput {
    path: String,
    name: Option<String>,
    location: Option<String>,
    timeout: Option<String>,
    skip_tls_verification: Option<bool>,
    ca_file: Option<String>,
    buffer_size_mb: Option<i64>,
    max_batch_kb: Option<i64>,
    max_delay_interval: Option<String>,
    concurrency: Option<i64>,
    spool_size_mb: Option<i64>,
    spool_max_age: Option<String>,
    gzip: Option<bool>,
    http_user: Option<String>,
    http_pass: Option<String>,
}

struct RawUdp {
    path: String,
    name: Option<String>,
    bind_addr: Option<String>,
    read_buffer: Option<i64>,
    precision: Option<String>,
    outputs: Vec<RawUdpOutput>,
}

struct RawUdpOutput {
    path: String,
    name: Option<String>,
    location: Option<String>,
    mtu: Option<i64>,
}

impl RawConfig {
    fn read(table: toml::Table) -> Result<RawConfig, ConfigError> {
        let mut f = Fields::new(String::new(), table);
        let raw = RawConfig {
            threads: f.integer("threads")?,
            pin_threads: f.boolean("pin-threads")?,
            spool_dir: f.string("spool-dir")?,
            log_level: f.string("log-level")?,
            shutdown_timeout: f.duration("shutdown-timeout")?,
            http: f
                .tables("http")?
                .into_iter()
                .map(RawHttp::read)
                .collect::<Result<_, _>>()?,
            udp: f
                .tables("udp")?
                .into_iter()
                .map(RawUdp::read)
                .collect::<Result<_, _>>()?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawHttp {
    fn read((path, table): (String, toml::Table)) -> Result<RawHttp, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawHttp {
            path,
            name: f.string("name")?,
            bind_addr: f.string("bind-addr")?,
            ssl_combined_pem: f.string("ssl-combined-pem")?,
            ssl_min_version: f.string("ssl-min-version")?,
            default_retention_policy: f.string("default-retention-policy")?,
            ack: f.string("ack")?,
            max_body_size_mb: f.integer("max-body-size-mb")?,
            read_timeout: f.duration("read-timeout")?,
            idle_timeout: f.duration("idle-timeout")?,
            read_wait: f.duration("read-wait")?,
            max_connections: f.integer("max-connections")?,
            users: f
                .tables("users")?
                .into_iter()
                .map(RawUser::read)
                .collect::<Result<_, _>>()?,
            users_file: f.string("users-file")?,
            auth_metrics: f.boolean("auth-metrics")?,
            forward_credentials: f.boolean("forward-credentials")?,
            outputs: f
                .tables("output")?
                .into_iter()
                .map(RawHttpOutput::read)
                .collect::<Result<_, _>>()?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawUser {
    fn read((path, table): (String, toml::Table)) -> Result<RawUser, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawUser {
            path,
            name: f.string("name")?,
            password_sha256: f.string("password-sha256")?,
            token_sha256: f.string("token-sha256")?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawHttpOutput {
    fn read((path, table): (String, toml::Table)) -> Result<RawHttpOutput, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawHttpOutput {
            path,
            name: f.string("name")?,
            location: f.string("location")?,
            timeout: f.duration("timeout")?,
            skip_tls_verification: f.boolean("skip-tls-verification")?,
            ca_file: f.string("ca-file")?,
            buffer_size_mb: f.integer("buffer-size-mb")?,
            max_batch_kb: f.integer("max-batch-kb")?,
            max_delay_interval: f.duration("max-delay-interval")?,
            concurrency: f.integer("concurrency")?,
            spool_size_mb: f.integer("spool-size-mb")?,
            spool_max_age: f.duration("spool-max-age")?,
            gzip: f.boolean("gzip")?,
            http_user: f.string("http-user")?,
            http_pass: f.string("http-pass")?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawUdp {
    fn read((path, table): (String, toml::Table)) -> Result<RawUdp, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawUdp {
            path,
            name: f.string("name")?,
            bind_addr: f.string("bind-addr")?,
            read_buffer: f.integer("read-buffer")?,
            precision: f.string("precision")?,
            outputs: f
                .tables("output")?
                .into_iter()
                .map(RawUdpOutput::read)
                .collect::<Result<_, _>>()?,
        };
        f.finish()?;
        Ok(raw)
    }
}

impl RawUdpOutput {
    fn read((path, table): (String, toml::Table)) -> Result<RawUdpOutput, ConfigError> {
        let mut f = Fields::new(path.clone(), table);
        let raw = RawUdpOutput {
            path,
            name: f.string("name")?,
            location: f.string("location")?,
            mtu: f.integer("mtu")?,
        };
        f.finish()?;
        Ok(raw)
    }
}

// ---------------------------------------------------------------------------------------
// Stage 2: values, defaults, cross-field rules.
// ---------------------------------------------------------------------------------------

fn build(raw: RawConfig) -> Result<Config, ConfigError> {
    let threads = match integer_in(
        "threads",
        raw.threads,
        DEFAULT_THREADS as i64,
        0,
        MAX_THREADS as i64,
    )? {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let spool_dir = raw
        .spool_dir
        .unwrap_or_else(|| DEFAULT_SPOOL_DIR.to_string());
    if spool_dir.is_empty() {
        return Err(error("spool-dir", "must not be empty"));
    }
    let log_level = match raw.log_level.as_deref() {
        None => DEFAULT_LOG_LEVEL,
        Some("error") => LogLevel::Error,
        Some("warn") => LogLevel::Warn,
        Some("info") => LogLevel::Info,
        Some("debug") => LogLevel::Debug,
        Some(other) => {
            return Err(error(
                "log-level",
                format!("unknown level \"{other}\" (use error, warn, info or debug)"),
            ))
        }
    };
    let shutdown_timeout = duration(
        "shutdown-timeout",
        raw.shutdown_timeout,
        DEFAULT_SHUTDOWN_TIMEOUT,
        true,
    )?;

    if raw.http.is_empty() && raw.udp.is_empty() {
        return Err(error(
            "",
            "no listeners: add at least one [[http]] or [[udp]] section",
        ));
    }
    let http = raw
        .http
        .into_iter()
        .map(build_http)
        .collect::<Result<Vec<_>, _>>()?;
    let udp = raw
        .udp
        .into_iter()
        .map(build_udp)
        .collect::<Result<Vec<_>, _>>()?;

    check_listener_names(&http, &udp)?;
    check_binds("http", http.iter().map(|h| h.bind_addr))?;
    check_binds("udp", udp.iter().map(|u| u.bind_addr))?;

    Ok(Config {
        threads,
        pin_threads: raw.pin_threads.unwrap_or(DEFAULT_PIN_THREADS),
        spool_dir: PathBuf::from(spool_dir),
        log_level,
        shutdown_timeout,
        http,
        udp,
    })
}

fn build_http(raw: RawHttp) -> Result<HttpConfig, ConfigError> {
    let p = &raw.path;
    let at = |key: &str| format!("{p}.{key}");
    let bind_text = raw
        .bind_addr
        .ok_or_else(|| error(at("bind-addr"), "missing (e.g. \"127.0.0.1:9096\")"))?;
    let bind_addr = bind_address(&at("bind-addr"), &bind_text)?;
    let ssl_combined_pem = raw
        .ssl_combined_pem
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let scheme = if ssl_combined_pem.is_some() {
        "https"
    } else {
        "http"
    };
    let name = non_empty(raw.name).unwrap_or_else(|| format!("{scheme}://{bind_text}"));
    // Accepted (and unused) without a PEM, so a file that sets every key to its
    // default, TLS off, still loads.
    let ssl_min_version = match raw.ssl_min_version.as_deref() {
        None | Some("") => DEFAULT_SSL_MIN_VERSION,
        Some("1.2") => TlsVersion::V1_2,
        Some("1.3") => TlsVersion::V1_3,
        Some(other) => {
            return Err(error(
                at("ssl-min-version"),
                format!("unknown TLS version \"{other}\" (use \"1.2\" or \"1.3\")"),
            ))
        }
    };
    let ack = match raw.ack.as_deref() {
        None => DEFAULT_ACK,
        Some("any") => Ack::Any,
        Some("quorum") => Ack::Quorum,
        Some("all") => Ack::All,
        Some(other) => {
            return Err(error(
                at("ack"),
                format!("unknown value \"{other}\" (use any, quorum or all)"),
            ))
        }
    };
    let max_body_mb = integer_in(
        &at("max-body-size-mb"),
        raw.max_body_size_mb,
        DEFAULT_MAX_BODY_SIZE_MB as i64,
        1,
        i64::MAX,
    )?;
    let max_body_size = bytes(&at("max-body-size-mb"), max_body_mb, MIB)?;
    let read_timeout = duration(
        &at("read-timeout"),
        raw.read_timeout,
        DEFAULT_READ_TIMEOUT,
        false,
    )?;
    let idle_timeout = duration(
        &at("idle-timeout"),
        raw.idle_timeout,
        DEFAULT_IDLE_TIMEOUT,
        false,
    )?;
    let read_wait = duration(&at("read-wait"), raw.read_wait, DEFAULT_READ_WAIT, true)?;
    let max_connections = integer_in(
        &at("max-connections"),
        raw.max_connections,
        DEFAULT_MAX_CONNECTIONS as i64,
        1,
        i64::MAX,
    )? as usize;

    let auth = build_auth(p, raw.users, raw.users_file, raw.auth_metrics)?;

    if raw.outputs.is_empty() {
        return Err(error(at("output"), "at least one output is required"));
    }
    let outputs = raw
        .outputs
        .into_iter()
        .map(build_http_output)
        .collect::<Result<Vec<_>, _>>()?;
    check_output_names(p, outputs.iter().map(|o| o.name.as_str()))?;

    Ok(HttpConfig {
        name,
        bind_addr,
        ssl_combined_pem,
        ssl_min_version,
        default_retention_policy: non_empty(raw.default_retention_policy),
        ack,
        max_body_size,
        read_timeout,
        idle_timeout,
        read_wait,
        max_connections,
        auth,
        forward_credentials: raw
            .forward_credentials
            .unwrap_or(DEFAULT_FORWARD_CREDENTIALS),
        outputs,
    })
}

/// `users`, `users-file` and `auth-metrics` of the listener at `p`. Authentication is on
/// when either source is given; a source that yields nobody is an error rather than a
/// listener that silently refuses everyone.
fn build_auth(
    p: &str,
    users: Vec<RawUser>,
    users_file: Option<String>,
    auth_metrics: Option<bool>,
) -> Result<Option<AuthConfig>, ConfigError> {
    let at = |key: &str| format!("{p}.{key}");
    let users_file = non_empty(users_file);
    if users.is_empty() && users_file.is_none() {
        if auth_metrics == Some(true) {
            return Err(error(
                at("auth-metrics"),
                "needs users or users-file: there is nobody to authenticate",
            ));
        }
        return Ok(None);
    }
    let mut auth = AuthConfig {
        users: Vec::new(),
        tokens: Vec::new(),
        metrics: auth_metrics.unwrap_or(DEFAULT_AUTH_METRICS),
    };
    // Where each user name and token came from, for duplicate messages.
    let mut names: HashMap<String, String> = HashMap::new();
    let mut tokens: HashMap<[u8; 32], String> = HashMap::new();

    for raw in users {
        let u = &raw.path;
        let key = |k: &str| format!("{u}.{k}");
        match (raw.name, raw.password_sha256, raw.token_sha256) {
            (None, None, Some(token)) => {
                let digest = sha256_hex(&token).map_err(|m| error(key("token-sha256"), m))?;
                if let Some(first) = tokens.insert(digest, u.clone()) {
                    return Err(error(
                        key("token-sha256"),
                        format!("duplicate token (also given by {first})"),
                    ));
                }
                auth.tokens.push(digest);
            }
            (_, _, Some(_)) => {
                return Err(error(
                    u.clone(),
                    "a token entry takes only token-sha256 (no name or password-sha256)",
                ))
            }
            (None, None, None) => {
                return Err(error(
                    u.clone(),
                    "expected name and password-sha256, or token-sha256",
                ))
            }
            (None, Some(_), None) => return Err(error(key("name"), "missing")),
            (Some(_), None, None) => return Err(error(key("password-sha256"), "missing")),
            (Some(name), Some(hex), None) => {
                check_user_name(&name).map_err(|m| error(key("name"), m))?;
                let digest = sha256_hex(&hex).map_err(|m| error(key("password-sha256"), m))?;
                if let Some(first) = names.insert(name.clone(), u.clone()) {
                    return Err(error(
                        key("name"),
                        format!("duplicate user \"{name}\" (also in {first})"),
                    ));
                }
                auth.users.push(User {
                    name,
                    password_sha256: digest,
                });
            }
        }
    }

    if let Some(file) = users_file {
        let path = at("users-file");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| error(&path, format!("cannot read \"{file}\": {e}")))?;
        let before = auth.users.len();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at_line = |m: String| error(&path, format!("\"{file}\" line {}: {m}", i + 1));
            let (name, hex) = line
                .split_once(':')
                .ok_or_else(|| at_line("expected name:sha256hex".to_string()))?;
            let name = name.trim();
            check_user_name(name).map_err(|m| at_line(m.to_string()))?;
            let digest = sha256_hex(hex.trim()).map_err(at_line)?;
            let here = format!("\"{file}\" line {}", i + 1);
            if let Some(first) = names.insert(name.to_string(), here) {
                return Err(at_line(format!(
                    "duplicate user \"{name}\" (also in {first})"
                )));
            }
            auth.users.push(User {
                name: name.to_string(),
                password_sha256: digest,
            });
        }
        // An empty file is more likely a deployment mistake than an intent.
        if auth.users.len() == before {
            return Err(error(
                &path,
                format!("\"{file}\" has no users (one name:sha256hex per line)"),
            ));
        }
    }
    Ok(Some(auth))
}

/// A name Basic credentials can carry: the first `:` ends the user name there.
fn check_user_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.contains(':') {
        return Err("must not contain ':'");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

/// A SHA-256 digest written as 64 hex digits (what `sha256sum` prints).
fn sha256_hex(text: &str) -> Result<[u8; 32], String> {
    let hint = "expected the SHA-256 digest as 64 hex digits \
                (e.g. printf %s 'secret' | sha256sum), not the secret itself";
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return Err(format!("{hint}; got {} characters", text.chars().count()));
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |b: u8| (b as char).to_digit(16).ok_or_else(|| hint.to_string());
        *o = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
    }
    Ok(out)
}

fn build_http_output(raw: RawHttpOutput) -> Result<HttpOutput, ConfigError> {
    let p = &raw.path;
    let at = |key: &str| format!("{p}.{key}");
    let url = raw.location.ok_or_else(|| {
        error(
            at("location"),
            "missing (e.g. \"http://127.0.0.1:8086/write\")",
        )
    })?;
    let location = parse_location(&url).map_err(|m| error(at("location"), m))?;
    let name = non_empty(raw.name).unwrap_or_else(|| url.clone());

    let buffer_mb = integer_in(
        &at("buffer-size-mb"),
        raw.buffer_size_mb,
        DEFAULT_BUFFER_SIZE_MB as i64,
        0,
        i64::MAX,
    )?;
    // 0 means "default" here, as in the original, not "no batching".
    let batch_kb = match integer_in(
        &at("max-batch-kb"),
        raw.max_batch_kb,
        DEFAULT_MAX_BATCH_KB as i64,
        0,
        i64::MAX,
    )? {
        0 => DEFAULT_MAX_BATCH_KB as i64,
        n => n,
    };
    let spool_mb = integer_in(
        &at("spool-size-mb"),
        raw.spool_size_mb,
        DEFAULT_SPOOL_SIZE_MB as i64,
        0,
        i64::MAX,
    )?;
    let concurrency = integer_in(
        &at("concurrency"),
        raw.concurrency,
        DEFAULT_CONCURRENCY as i64,
        1,
        i64::MAX,
    )? as usize;

    let skip_tls_verification = raw
        .skip_tls_verification
        .unwrap_or(DEFAULT_SKIP_TLS_VERIFICATION);
    let ca_file = non_empty(raw.ca_file).map(PathBuf::from);
    if ca_file.is_some() && skip_tls_verification {
        return Err(error(
            at("ca-file"),
            "set together with skip-tls-verification = true, which ignores it; remove one",
        ));
    }

    // The original only used credentials when both were set; keep that.
    let basic_auth = match (non_empty(raw.http_user), non_empty(raw.http_pass)) {
        (Some(user), Some(pass)) => Some(BasicAuth { user, pass }),
        _ => None,
    };

    let max_batch = bytes(&at("max-batch-kb"), batch_kb, KIB)?;
    // A limit the file sets bounds every merge; without one, merges may be larger.
    let coalesce_limit = if raw.max_batch_kb.is_some_and(|n| n > 0) {
        max_batch
    } else {
        (DEFAULT_COALESCE_KB * KIB) as usize
    };
    Ok(HttpOutput {
        name,
        location,
        // 0 would mean "wait forever" to an HTTP client, yet a client's answer waits
        // for the largest timeout (README: HTTP API): refuse it.
        timeout: duration(&at("timeout"), raw.timeout, DEFAULT_HTTP_TIMEOUT, false)?,
        skip_tls_verification,
        ca_file,
        buffer_size: bytes(&at("buffer-size-mb"), buffer_mb, MIB)?,
        coalesce_limit,
        max_delay_interval: duration(
            &at("max-delay-interval"),
            raw.max_delay_interval,
            DEFAULT_MAX_DELAY_INTERVAL,
            false,
        )?,
        concurrency,
        spool_size: bytes(&at("spool-size-mb"), spool_mb, MIB)? as u64,
        spool_max_age: duration(
            &at("spool-max-age"),
            raw.spool_max_age,
            DEFAULT_SPOOL_MAX_AGE,
            false,
        )?,
        gzip: raw.gzip.unwrap_or(DEFAULT_GZIP),
        basic_auth,
    })
}

fn build_udp(raw: RawUdp) -> Result<UdpConfig, ConfigError> {
    let p = &raw.path;
    let at = |key: &str| format!("{p}.{key}");
    let bind_text = raw
        .bind_addr
        .ok_or_else(|| error(at("bind-addr"), "missing (e.g. \"127.0.0.1:9096\")"))?;
    let bind_addr = bind_address(&at("bind-addr"), &bind_text)?;
    let name = non_empty(raw.name).unwrap_or_else(|| format!("udp://{bind_text}"));
    // SO_RCVBUF takes a C int.
    let read_buffer = integer_in(
        &at("read-buffer"),
        raw.read_buffer,
        DEFAULT_READ_BUFFER as i64,
        0,
        i64::from(i32::MAX),
    )? as usize;
    let precision = match raw.precision.as_deref() {
        None => DEFAULT_PRECISION,
        Some(s) => parse_precision(s).ok_or_else(|| {
            error(
                at("precision"),
                format!("unknown precision \"{s}\" (use n, ns, u, us, µ, ms, s, m or h)"),
            )
        })?,
    };

    if raw.outputs.is_empty() {
        return Err(error(at("output"), "at least one output is required"));
    }
    let outputs = raw
        .outputs
        .into_iter()
        .map(build_udp_output)
        .collect::<Result<Vec<_>, _>>()?;
    check_output_names(p, outputs.iter().map(|o| o.name.as_str()))?;

    Ok(UdpConfig {
        name,
        bind_addr,
        read_buffer,
        precision,
        outputs,
    })
}

fn build_udp_output(raw: RawUdpOutput) -> Result<UdpOutput, ConfigError> {
    let p = &raw.path;
    let at = |key: &str| format!("{p}.{key}");
    let text = raw
        .location
        .ok_or_else(|| error(at("location"), "missing (e.g. \"127.0.0.1:8089\")"))?;
    let location = udp_target(&text).map_err(|m| error(at("location"), m))?;
    let mtu = match integer_in(&at("mtu"), raw.mtu, DEFAULT_MTU as i64, 0, MAX_MTU as i64)? {
        // 0 means "default", as in the original.
        0 => DEFAULT_MTU,
        n if (n as usize) < MIN_MTU => {
            return Err(error(
                at("mtu"),
                format!("must be 0 (default) or between {MIN_MTU} and {MAX_MTU}, got {n}"),
            ))
        }
        n => n as usize,
    };
    Ok(UdpOutput {
        name: non_empty(raw.name).unwrap_or(text),
        location,
        mtu,
    })
}

/// `n ns u us µ ms s m h`, empty = nanoseconds: the spellings InfluxDB accepts for
/// `precision=`. Kept here so the config does not depend on the scanner's parser.
fn parse_precision(s: &str) -> Option<Precision> {
    Some(match s {
        "" | "n" | "ns" => Precision::Nanoseconds,
        "u" | "us" | "µ" => Precision::Microseconds,
        "ms" => Precision::Milliseconds,
        "s" => Precision::Seconds,
        "m" => Precision::Minutes,
        "h" => Precision::Hours,
        _ => return None,
    })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn integer_in(
    path: &str,
    value: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let n = value.unwrap_or(default);
    if n < min {
        return Err(error(path, format!("must be at least {min}, got {n}")));
    }
    if n > max {
        return Err(error(path, format!("must be at most {max}, got {n}")));
    }
    Ok(n)
}

fn bytes(path: &str, count: i64, unit: u64) -> Result<usize, ConfigError> {
    u64::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(unit))
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| error(path, format!("{count} is too large")))
}

/// An empty string means "default", as it did in the original (its fields were strings
/// checked with `!= ""`).
fn duration(
    path: &str,
    value: Option<String>,
    default: Duration,
    allow_zero: bool,
) -> Result<Duration, ConfigError> {
    let text = match value {
        Some(s) if !s.is_empty() => s,
        _ => return Ok(default),
    };
    let d = parse_duration(&text).map_err(|m| error(path, m))?;
    if d.is_zero() && !allow_zero {
        return Err(error(
            path,
            format!("must be greater than 0, got \"{text}\""),
        ));
    }
    Ok(d)
}

/// `ip:port`, `[v6]:port`, `:port` (all IPv4 interfaces) or `name:port` (resolved now).
fn bind_address(path: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix(':') {
        let port = port
            .parse::<u16>()
            .map_err(|_| error(path, format!("invalid port in \"{text}\"")))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    resolve(text).map_err(|m| error(path, m))
}

fn udp_target(text: &str) -> Result<SocketAddr, String> {
    let addr = match text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => resolve(text)?,
    };
    if addr.port() == 0 {
        return Err(format!("port 0 in \"{text}\" is not a destination"));
    }
    if addr.ip().is_unspecified() {
        return Err(format!("\"{text}\" is not a destination address"));
    }
    Ok(addr)
}

/// Names resolve once, at load time. IPv4 wins when a name has both families because
/// `localhost` often lists `::1` first while InfluxDB's UDP listener is usually IPv4.
fn resolve(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = text
        .rsplit_once(':')
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| format!("expected host:port, got \"{text}\""))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port in \"{text}\""))?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{text}\": {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("cannot resolve \"{text}\": no addresses"))
}

/// `http[s]://host[:port][/path][?query]`. A query is accepted and ignored, as in the
/// original, where the client's query string replaced it.
fn parse_location(url: &str) -> Result<Location, String> {
    let bad = |why: &str| format!("invalid URL \"{url}\": {why}");
    let (https, rest) = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        Some((scheme, _)) => return Err(bad(&format!("scheme \"{scheme}\" is not http or https"))),
        None => return Err(bad("expected http://host[:port]/write or https://…")),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (rest, _query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(bad(
            "credentials in the URL are not supported; use http-user and http-pass",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("invalid IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("unexpected text after ']'"))?,
            ),
        };
        (ip, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let host_ok = authority.starts_with('[')
        || host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !host_ok {
        return Err(bad("invalid character in host"));
    }
    let default_port = if https { 443 } else { 80 };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad(&format!("invalid port \"{p}\""))),
            Ok(n) => n,
        },
    };
    // The path goes verbatim into the request line, so nothing that would split it.
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "the path must not contain spaces or control characters",
        ));
    }
    let path = if path.is_empty() || path == "/" {
        DEFAULT_WRITE_PATH
    } else {
        path
    };
    Ok(Location {
        https,
        host: host.to_string(),
        port,
        path: path.to_string(),
        url: url.to_string(),
    })
}

/// Listener names key the spool directory, `/status` and metrics, so they are unique
/// across HTTP and UDP alike.
fn check_listener_names(http: &[HttpConfig], udp: &[UdpConfig]) -> Result<(), ConfigError> {
    let all = http
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("http[{i}]"), &h.name))
        .chain(
            udp.iter()
                .enumerate()
                .map(|(i, u)| (format!("udp[{i}]"), &u.name)),
        );
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (path, name) in all {
        if let Some(first) = seen.get(name.as_str()) {
            return Err(error(
                format!("{path}.name"),
                format!("duplicate listener name \"{name}\" (also used by {first})"),
            ));
        }
        seen.insert(name, path);
    }
    Ok(())
}

fn check_output_names<'a>(
    listener: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.enumerate() {
        if let Some(first) = seen.get(name) {
            return Err(error(
                format!("{listener}.output[{i}].name"),
                format!("duplicate output name \"{name}\" (also used by output[{first}])"),
            ));
        }
        seen.insert(name, i);
    }
    Ok(())
}

/// Every loop binds each listener with `SO_REUSEPORT`, so two listeners of one protocol
/// on overlapping addresses would not fail to bind: they would silently share (or split)
/// the traffic. HTTP and UDP on the same address are fine (different protocols).
fn check_binds(kind: &str, binds: impl Iterator<Item = SocketAddr>) -> Result<(), ConfigError> {
    let binds: Vec<SocketAddr> = binds.collect();
    for (i, b) in binds.iter().enumerate() {
        for (j, a) in binds[..i].iter().enumerate() {
            if !overlaps(a, b) {
                continue;
            }
            let message = if a == b {
                format!("duplicate bind address {b} (also used by {kind}[{j}])")
            } else {
                format!("bind address {b} overlaps {a} of {kind}[{j}]")
            };
            return Err(error(format!("{kind}[{i}].bind-addr"), message));
        }
    }
    Ok(())
}

fn overlaps(a: &SocketAddr, b: &SocketAddr) -> bool {
    // Port 0 asks the OS for a fresh port each time: never a clash.
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    // An IPv4 wildcard covers every IPv4 address; an IPv6 wildcard is dual-stack on
    // Linux by default and covers everything.
    let covers = |w: &SocketAddr, x: &SocketAddr| match w.ip() {
        IpAddr::V4(ip) => ip.is_unspecified() && x.is_ipv4(),
        IpAddr::V6(ip) => ip.is_unspecified(),
    };
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

/// Go duration syntax (`time.ParseDuration`): `500ms`, `10s`, `1m30s`, `1.5h`, `250us`,
/// `250µs`, `-0`, or a bare `0`. Negative durations are refused: nothing here waits a
/// negative time. The range is Go's, about 292 years.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration \"{s}\": {why}");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
        None => return Err(invalid("empty")),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("no number"));
    }
    const LIMIT: u128 = i64::MAX as u128;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(invalid("missing unit (use ns, us, ms, s, m or h)")),
            other => return Err(invalid(&format!("unknown unit \"{other}\""))),
        };
        let out_of_range = || invalid("out of range");
        let mut whole: u128 = 0;
        for d in int_digits.bytes() {
            whole = whole * 10 + u128::from(d - b'0');
            if whole > LIMIT {
                return Err(out_of_range());
            }
        }
        let mut part = whole
            .checked_mul(scale)
            .filter(|&v| v <= LIMIT)
            .ok_or_else(out_of_range)?;
        // Digits beyond nanosecond resolution cannot change the result; 20 keeps the
        // arithmetic inside u128 whatever the unit.
        let mut frac: u128 = 0;
        let mut denom: u128 = 1;
        for d in frac_digits.bytes().take(20) {
            frac = frac * 10 + u128::from(d - b'0');
            denom *= 10;
        }
        part += frac * scale / denom;
        total += part;
        if total > LIMIT {
            return Err(out_of_range());
        }
        rest = after;
    }
    if negative && total != 0 {
        return Err(invalid("negative durations are not allowed"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Standard base64 with padding, for one `Authorization` header per output at start-up.
pub(crate) fn base64_encode(input: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid file: one HTTP listener with one output.
    const MINIMAL: &str = r#"
        [[http]]
        bind-addr = "127.0.0.1:9096"
        output = [ { location = "http://127.0.0.1:8086/write" } ]
    "#;

    fn err(text: &str) -> ConfigError {
        match parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e,
        }
    }

    /// `MINIMAL` with `extra` added to the listener (`listener`) or output (`output`).
    fn http_with(listener: &str, output: &str) -> String {
        format!(
            "[[http]]\nbind-addr = \"127.0.0.1:9096\"\n{listener}\n\
             [[http.output]]\nlocation = \"http://127.0.0.1:8086/write\"\n{output}\n"
        )
    }

    fn udp_with(listener: &str, output: &str) -> String {
        format!(
            "[[udp]]\nbind-addr = \"127.0.0.1:9096\"\n{listener}\n\
             [[udp.output]]\nlocation = \"127.0.0.1:8089\"\n{output}\n"
        )
    }

    #[test]
    fn defaults() {
        let c = parse(MINIMAL).expect("minimal config");
        assert_eq!(
            c.threads,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        assert!(c.threads >= 1);
        assert!(!c.pin_threads);
        assert_eq!(c.spool_dir, PathBuf::from("./spool"));
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert!(c.udp.is_empty());

        let h = &c.http[0];
        assert_eq!(h.name, "http://127.0.0.1:9096");
        assert_eq!(h.bind_addr, "127.0.0.1:9096".parse().unwrap());
        assert_eq!(h.ssl_combined_pem, None);
        assert_eq!(h.ssl_min_version, TlsVersion::V1_2);
        assert_eq!(h.default_retention_policy, None);
        assert_eq!(h.ack, Ack::Any);
        assert_eq!(h.max_body_size, 25 * 1024 * 1024);
        assert_eq!(h.read_timeout, Duration::from_secs(10));
        assert_eq!(h.idle_timeout, Duration::from_secs(60));
        assert_eq!(h.max_connections, 10_000);
        assert_eq!(h.auth, None);
        assert!(h.forward_credentials);

        let o = &h.outputs[0];
        assert_eq!(o.name, "http://127.0.0.1:8086/write");
        assert_eq!(
            o.location,
            Location {
                https: false,
                host: "127.0.0.1".into(),
                port: 8086,
                path: "/write".into(),
                url: "http://127.0.0.1:8086/write".into(),
            }
        );
        assert_eq!(o.timeout, Duration::from_secs(10));
        assert!(!o.skip_tls_verification);
        assert_eq!(o.ca_file, None);
        assert_eq!(o.buffer_size, 0);
        assert_eq!(
            o.coalesce_limit,
            4096 * 1024,
            "not set: live merges may be larger"
        );
        assert_eq!(o.max_delay_interval, Duration::from_secs(10));
        assert_eq!(o.concurrency, 1);
        assert_eq!(o.spool_size, 0);
        assert_eq!(o.spool_max_age, Duration::from_secs(168 * 3600));
        assert!(!o.gzip);
        assert_eq!(o.basic_auth, None);
    }

    #[test]
    fn udp_defaults() {
        let c = parse(&udp_with("", "")).expect("udp config");
        let u = &c.udp[0];
        assert_eq!(u.name, "udp://127.0.0.1:9096");
        assert_eq!(u.read_buffer, 0);
        assert_eq!(u.precision, Precision::Nanoseconds);
        assert_eq!(u.outputs[0].name, "127.0.0.1:8089");
        assert_eq!(u.outputs[0].location, "127.0.0.1:8089".parse().unwrap());
        assert_eq!(u.outputs[0].mtu, 1024);
    }

    #[test]
    fn every_key_set() {
        let text = r#"
            threads = 3
            pin-threads = true
            spool-dir = "/var/lib/relay"
            log-level = "debug"
            shutdown-timeout = "0"

            [[http]]
            name = "a"
            bind-addr = ":9096"
            ssl-combined-pem = "/etc/relay.pem"
            ssl-min-version = "1.3"
            default-retention-policy = "autogen"
            ack = "quorum"
            max-body-size-mb = 1
            read-timeout = "1500ms"
            idle-timeout = "2m"
            max-connections = 7
            users = [ { name = "telegraf", password-sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b" },
                      { token-sha256 = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD" } ]
            auth-metrics = true
            forward-credentials = false
            [[http.output]]
            name = "x"
            location = "HTTPS://db.example:8443/api/write?db=ignored"
            timeout = "2s"
            skip-tls-verification = true
            buffer-size-mb = 3
            max-batch-kb = 0
            max-delay-interval = "1m30s"
            concurrency = 4
            spool-size-mb = 1024
            spool-max-age = "24h"
            gzip = true
            http-user = "u"
            http-pass = "p"

            [[udp]]
            bind-addr = "[::1]:9097"
            read-buffer = 8388608
            precision = "ms"
            output = [ { name = "y", location = "localhost:8089", mtu = 0 },
                       { location = "10.0.0.1:8089", mtu = 1400 } ]
        "#;
        let c = parse(text).expect("full config");
        assert_eq!(c.threads, 3);
        assert!(c.pin_threads);
        assert_eq!(c.spool_dir, PathBuf::from("/var/lib/relay"));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.shutdown_timeout, Duration::ZERO);

        let h = &c.http[0];
        assert_eq!(h.name, "a");
        assert_eq!(h.bind_addr, "0.0.0.0:9096".parse().unwrap());
        assert_eq!(h.ssl_combined_pem, Some(PathBuf::from("/etc/relay.pem")));
        assert_eq!(h.ssl_min_version, TlsVersion::V1_3);
        assert_eq!(h.default_retention_policy.as_deref(), Some("autogen"));
        assert_eq!(h.ack, Ack::Quorum);
        assert_eq!(h.max_body_size, 1024 * 1024);
        assert_eq!(h.read_timeout, Duration::from_millis(1500));
        assert_eq!(h.idle_timeout, Duration::from_secs(120));
        assert_eq!(h.max_connections, 7);
        let auth = h.auth.as_ref().expect("users");
        assert_eq!(auth.users.len(), 1);
        assert_eq!(auth.users[0].name, "telegraf");
        assert_eq!(
            auth.users[0].password_sha256,
            crate::http::auth::sha256(b"secret")
        );
        assert_eq!(auth.tokens, vec![crate::http::auth::sha256(b"abc")]);
        assert!(auth.metrics);
        assert!(!h.forward_credentials);
        let printed = format!("{h:?}");
        assert!(printed.contains("telegraf"), "{printed}");
        assert!(
            !printed.contains("2bb80d") && !printed.contains("43, 184"),
            "digests must not be printed: {printed}"
        );

        let o = &h.outputs[0];
        assert_eq!(o.name, "x");
        assert!(o.location.https);
        assert_eq!(o.location.host, "db.example");
        assert_eq!(o.location.port, 8443);
        assert_eq!(o.location.path, "/api/write");
        assert_eq!(
            o.location.url,
            "HTTPS://db.example:8443/api/write?db=ignored"
        );
        assert_eq!(o.timeout, Duration::from_secs(2));
        assert!(o.skip_tls_verification);
        assert_eq!(o.buffer_size, 3 * 1024 * 1024);
        assert_eq!(o.coalesce_limit, 4096 * 1024, "0 means the default");
        assert_eq!(o.max_delay_interval, Duration::from_secs(90));
        assert_eq!(o.concurrency, 4);
        assert_eq!(o.spool_size, 1024 * 1024 * 1024);
        assert_eq!(o.spool_max_age, Duration::from_secs(24 * 3600));
        assert!(o.gzip);
        let auth = o.basic_auth.as_ref().expect("credentials");
        assert_eq!(auth.header_value(), "Basic dTpw");
        assert!(
            !format!("{auth:?}").contains("\"p\""),
            "password must not be printed"
        );

        let u = &c.udp[0];
        assert_eq!(u.name, "udp://[::1]:9097");
        assert_eq!(u.bind_addr, "[::1]:9097".parse().unwrap());
        assert_eq!(u.read_buffer, 8_388_608);
        assert_eq!(u.precision, Precision::Milliseconds);
        assert_eq!(u.outputs[0].name, "y");
        assert_eq!(
            u.outputs[0].location,
            "127.0.0.1:8089".parse().unwrap(),
            "IPv4 preferred"
        );
        assert_eq!(
            u.outputs[0].mtu, 1024,
            "0 means the default, as in the original"
        );
        assert_eq!(u.outputs[1].name, "10.0.0.1:8089");
        assert_eq!(u.outputs[1].mtu, 1400);
    }

    #[test]
    fn https_listener_default_name() {
        let c = parse(&http_with("ssl-combined-pem = \"/x.pem\"", "")).unwrap();
        assert_eq!(c.http[0].name, "https://127.0.0.1:9096");
    }

    #[test]
    fn ssl_min_version_values() {
        for (text, want) in [
            ("\"1.2\"", TlsVersion::V1_2),
            ("\"1.3\"", TlsVersion::V1_3),
            ("\"\"", DEFAULT_SSL_MIN_VERSION),
        ] {
            let c = parse(&http_with(
                &format!("ssl-combined-pem = \"/x.pem\"\nssl-min-version = {text}"),
                "",
            ))
            .unwrap();
            assert_eq!(c.http[0].ssl_min_version, want, "for {text}");
        }
        // A file that writes every key at its default, TLS off, must still load.
        let c = parse(&http_with(
            "ssl-combined-pem = \"\"\nssl-min-version = \"1.2\"",
            "",
        ))
        .unwrap();
        assert_eq!(c.http[0].ssl_combined_pem, None);

        for bad in ["1.1", "1.0", "TLS1.3", "1.4"] {
            let e = err(&http_with(&format!("ssl-min-version = \"{bad}\""), ""));
            assert_eq!(
                e.to_string(),
                format!("http[0].ssl-min-version: unknown TLS version \"{bad}\" (use \"1.2\" or \"1.3\")")
            );
        }
        let e = err(&http_with("ssl-min-version = 1.3", ""));
        assert_eq!(
            e.to_string(),
            "http[0].ssl-min-version: expected a string, found a float"
        );
    }

    #[test]
    fn ca_file() {
        let https = |output: &str| {
            http_with("", output).replace("http://127.0.0.1:8086", "https://127.0.0.1:8086")
        };
        let c = parse(&https("ca-file = \"/etc/ssl/influx-ca.pem\"")).unwrap();
        let o = &c.http[0].outputs[0];
        assert_eq!(o.ca_file, Some(PathBuf::from("/etc/ssl/influx-ca.pem")));
        assert!(!o.skip_tls_verification);

        let c = parse(&https("ca-file = \"\"")).unwrap();
        assert_eq!(c.http[0].outputs[0].ca_file, None, "empty = system roots");

        let e = err(&https(
            "ca-file = \"/ca.pem\"\nskip-tls-verification = true",
        ));
        assert_eq!(
            e.to_string(),
            "http[0].output[0].ca-file: set together with skip-tls-verification = true, \
             which ignores it; remove one"
        );
        let e = err(&https("ca-file = true"));
        assert_eq!(
            e.to_string(),
            "http[0].output[0].ca-file: expected a string, found a boolean"
        );
        let e = err(&https("cafile = \"/ca.pem\""));
        assert_eq!(
            e.to_string(),
            "http[0].output[0]: unknown key \"cafile\" (did you mean \"ca-file\"?)"
        );
    }

    #[test]
    fn go_sample_loads_with_the_original_meaning() {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/influxdb-relay-sample.toml");
        let c = load(&path).expect("Go-shaped sample");
        let h = &c.http[0];
        assert_eq!(h.name, "example-http");
        assert_eq!(h.bind_addr, "127.0.0.1:9096".parse().unwrap());
        assert_eq!(h.ssl_combined_pem, None, "empty = plain HTTP");
        assert_eq!(h.default_retention_policy, None, "empty = none");
        assert_eq!(h.ack, Ack::Any);
        assert_eq!(h.outputs.len(), 2);
        assert_eq!(h.outputs[0].name, "local1");
        assert_eq!(h.outputs[0].location.port, 8086);
        assert_eq!(h.outputs[0].basic_auth, None);
        let o = &h.outputs[1];
        assert_eq!(o.location.port, 7086);
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.buffer_size, 100 * 1024 * 1024);
        assert_eq!(
            o.coalesce_limit,
            50 * 1024,
            "set: it bounds live merges too"
        );
        assert_eq!(o.max_delay_interval, Duration::from_secs(5));
        assert_eq!(
            o.basic_auth.as_ref().map(|a| a.user.as_str()),
            Some("relay")
        );

        let u = &c.udp[0];
        assert_eq!(u.name, "example-udp");
        assert_eq!(
            u.bind_addr, h.bind_addr,
            "HTTP and UDP may share an address"
        );
        assert_eq!(u.precision, Precision::Seconds);
        assert_eq!(u.outputs[0].location, "127.0.0.1:8089".parse().unwrap());
        assert_eq!(u.outputs[0].mtu, 512);
        assert_eq!(u.outputs[1].mtu, 1024);
    }

    /// Every sample shipped in config/ must load: they are what users copy.
    #[test]
    fn every_shipped_sample_loads() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).expect("config/ directory") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Err(e) = load(&path) {
                    panic!("{}: {e}", path.display());
                }
                loaded += 1;
            }
        }
        assert!(
            loaded >= 2,
            "expected relay.toml and influxdb-relay-sample.toml"
        );
    }

    #[test]
    fn relay_sample_sets_every_default() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/relay.toml");
        let c = load(&path).expect("relay.toml");
        let o = &c.http[0].outputs[0];
        assert_eq!(o.timeout, DEFAULT_HTTP_TIMEOUT);
        assert_eq!(o.spool_max_age, DEFAULT_SPOOL_MAX_AGE);
        assert_eq!(c.http[0].outputs[1].location.port, 7086);
        assert_eq!(c.http[0].max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(c.udp[0].outputs[0].mtu, DEFAULT_MTU);
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let e = err("threads = 1\nlog-level = \n");
        assert_eq!(e.path, "");
        assert!(
            e.message.starts_with("TOML syntax error at line 2, column"),
            "{e}"
        );
        assert!(!e.message.contains('\n'), "one line: {e:?}");
    }

    #[test]
    fn unknown_keys_name_their_table() {
        let e = err(&format!("foo = 1\n{MINIMAL}"));
        assert_eq!(e.to_string(), "unknown key \"foo\"");

        let e = err(&http_with("colour = \"x\"", ""));
        assert_eq!(e.path, "http[0]");
        assert_eq!(e.message, "unknown key \"colour\"");

        let e = err(&http_with("bind_addr = \"x\"", ""));
        assert_eq!(
            e.message,
            "unknown key \"bind_addr\" (did you mean \"bind-addr\"?)"
        );

        let e = err(&http_with("Max_Connections = 3", ""));
        assert_eq!(
            e.to_string(),
            "http[0]: unknown key \"Max_Connections\" (did you mean \"max-connections\"?)"
        );

        let e = err(&http_with("", "timout = \"1s\""));
        assert_eq!(
            e.to_string(),
            "http[0].output[0]: unknown key \"timout\" (did you mean \"timeout\"?)"
        );

        let e = err(&udp_with("", "mtuu = 1"));
        assert_eq!(e.path, "udp[0].output[0]");
        let e = err(&udp_with("precison = \"s\"", ""));
        assert_eq!(
            e.to_string(),
            "udp[0]: unknown key \"precison\" (did you mean \"precision\"?)"
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        let cases: &[(String, &str)] = &[
            (format!("threads = \"4\"\n{MINIMAL}"), "threads: expected an integer, found a string"),
            (format!("pin-threads = 1\n{MINIMAL}"), "pin-threads: expected true or false, found an integer"),
            (
                format!("shutdown-timeout = 10\n{MINIMAL}"),
                "shutdown-timeout: expected a duration string such as \"10s\", found an integer",
            ),
            ("http = 1".into(), "http: expected an array of tables ([[http]]), found an integer"),
            ("[http]\nbind-addr = \"127.0.0.1:1\"".into(), "http: expected an array of tables ([[http]]), found a table"),
            ("http = [1]".into(), "http[0]: expected a table, found an integer"),
            (http_with("max-body-size-mb = 1.5", ""), "http[0].max-body-size-mb: expected an integer, found a float"),
            (http_with("bind-addr2 = 1", "").replace("bind-addr2", "name"), "http[0].name: expected a string, found an integer"),
            (http_with("", "gzip = \"yes\""), "http[0].output[0].gzip: expected true or false, found a string"),
            (http_with("", "timeout = 5"), "http[0].output[0].timeout: expected a duration string such as \"10s\", found an integer"),
            (udp_with("read-buffer = \"8M\"", ""), "udp[0].read-buffer: expected an integer, found a string"),
            (udp_with("", "mtu = true"), "udp[0].output[0].mtu: expected an integer, found a boolean"),
        ];
        for (text, want) in cases {
            assert_eq!(err(text).to_string(), *want, "for:\n{text}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases: &[(String, &str)] = &[
            (
                http_with("", "timeout = \"10x\""),
                "http[0].output[0].timeout: invalid duration \"10x\": unknown unit \"x\"",
            ),
            (
                http_with("", "timeout = \"0s\""),
                "http[0].output[0].timeout: must be greater than 0, got \"0s\"",
            ),
            (
                http_with("read-timeout = \"-1s\"", ""),
                "http[0].read-timeout: invalid duration \"-1s\": negative durations are not allowed",
            ),
            (format!("log-level = \"trace\"\n{MINIMAL}"), "log-level: unknown level \"trace\" (use error, warn, info or debug)"),
            (format!("threads = -1\n{MINIMAL}"), "threads: must be at least 0, got -1"),
            (format!("threads = 5000\n{MINIMAL}"), "threads: must be at most 1024, got 5000"),
            (format!("spool-dir = \"\"\n{MINIMAL}"), "spool-dir: must not be empty"),
            (http_with("ack = \"most\"", ""), "http[0].ack: unknown value \"most\" (use any, quorum or all)"),
            (http_with("max-body-size-mb = 0", ""), "http[0].max-body-size-mb: must be at least 1, got 0"),
            (http_with("max-connections = 0", ""), "http[0].max-connections: must be at least 1, got 0"),
            (http_with("", "concurrency = 0"), "http[0].output[0].concurrency: must be at least 1, got 0"),
            (http_with("", "buffer-size-mb = -1"), "http[0].output[0].buffer-size-mb: must be at least 0, got -1"),
            (
                http_with("", "spool-size-mb = 9223372036854775807"),
                "http[0].output[0].spool-size-mb: 9223372036854775807 is too large",
            ),
            (udp_with("precision = \"sec\"", ""), "udp[0].precision: unknown precision \"sec\" (use n, ns, u, us, µ, ms, s, m or h)"),
            (udp_with("read-buffer = -1", ""), "udp[0].read-buffer: must be at least 0, got -1"),
            (udp_with("", "mtu = 63"), "udp[0].output[0].mtu: must be 0 (default) or between 64 and 65507, got 63"),
            (udp_with("", "mtu = 65508"), "udp[0].output[0].mtu: must be at most 65507, got 65508"),
            (
                udp_with("", "").replace("127.0.0.1:8089", "127.0.0.1"),
                "udp[0].output[0].location: expected host:port, got \"127.0.0.1\"",
            ),
            (
                udp_with("", "").replace("127.0.0.1:8089", "127.0.0.1:0"),
                "udp[0].output[0].location: port 0 in \"127.0.0.1:0\" is not a destination",
            ),
            (
                http_with("", "").replace("127.0.0.1:9096", "127.0.0.1:99999"),
                "http[0].bind-addr: invalid port in \"127.0.0.1:99999\"",
            ),
            (
                http_with("", "").replace("bind-addr = \"127.0.0.1:9096\"", ""),
                "http[0].bind-addr: missing (e.g. \"127.0.0.1:9096\")",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(text).to_string(), *want, "for:\n{text}");
        }
    }

    #[test]
    fn mtu_bounds_are_inclusive() {
        for mtu in [MIN_MTU, MAX_MTU] {
            let c = parse(&udp_with("", &format!("mtu = {mtu}"))).unwrap();
            assert_eq!(c.udp[0].outputs[0].mtu, mtu);
        }
    }

    #[test]
    fn every_precision_spelling() {
        let table = [
            ("", Precision::Nanoseconds),
            ("n", Precision::Nanoseconds),
            ("ns", Precision::Nanoseconds),
            ("u", Precision::Microseconds),
            ("us", Precision::Microseconds),
            ("µ", Precision::Microseconds),
            ("ms", Precision::Milliseconds),
            ("s", Precision::Seconds),
            ("m", Precision::Minutes),
            ("h", Precision::Hours),
        ];
        for (spelling, want) in table {
            let c = parse(&udp_with(&format!("precision = \"{spelling}\""), "")).unwrap();
            assert_eq!(c.udp[0].precision, want, "precision = {spelling:?}");
        }
    }

    #[test]
    fn structural_rules() {
        assert_eq!(
            err("").to_string(),
            "no listeners: add at least one [[http]] or [[udp]] section"
        );
        assert_eq!(
            err("threads = 2").to_string(),
            "no listeners: add at least one [[http]] or [[udp]] section"
        );
        assert_eq!(
            err("[[http]]\nbind-addr = \"127.0.0.1:1\"").to_string(),
            "http[0].output: at least one output is required"
        );
        assert_eq!(
            err("[[udp]]\nbind-addr = \"127.0.0.1:1\"\noutput = []").to_string(),
            "udp[0].output: at least one output is required"
        );
        assert_eq!(
            err("[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nname = \"x\"").to_string(),
            "http[0].output[0].location: missing (e.g. \"http://127.0.0.1:8086/write\")"
        );
    }

    #[test]
    fn duplicate_output_names() {
        let text = r#"
            [[http]]
            bind-addr = "127.0.0.1:9096"
            output = [ { name = "a", location = "http://h1:8086/write" },
                       { name = "b", location = "http://h2:8086/write" },
                       { name = "a", location = "http://h3:8086/write" } ]
        "#;
        assert_eq!(
            err(text).to_string(),
            "http[0].output[2].name: duplicate output name \"a\" (also used by output[0])"
        );
        // Unnamed outputs are named after their location, so the same backend twice clashes.
        let text = r#"
            [[udp]]
            bind-addr = "127.0.0.1:9096"
            output = [ { location = "127.0.0.1:8089" }, { location = "127.0.0.1:8089" } ]
        "#;
        assert_eq!(
            err(text).to_string(),
            "udp[0].output[1].name: duplicate output name \"127.0.0.1:8089\" (also used by output[0])"
        );
        // The same name under two listeners is fine.
        let text = format!(
            "{}{}",
            http_with("name = \"l1\"", "name = \"o\""),
            http_with("name = \"l2\"", "name = \"o\"").replace(":9096", ":9097")
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn duplicate_listener_names_across_protocols() {
        let text = format!(
            "{}{}",
            http_with("name = \"a\"", ""),
            http_with("name = \"a\"", "").replace(":9096", ":9097")
        );
        assert_eq!(
            err(&text).to_string(),
            "http[1].name: duplicate listener name \"a\" (also used by http[0])"
        );
        let text = format!(
            "{}{}",
            http_with("name = \"a\"", ""),
            udp_with("name = \"a\"", "")
        );
        assert_eq!(
            err(&text).to_string(),
            "udp[0].name: duplicate listener name \"a\" (also used by http[0])"
        );
    }

    #[test]
    fn duplicate_and_overlapping_binds() {
        let text = format!(
            "{}{}",
            http_with("name = \"a\"", ""),
            http_with("name = \"b\"", "")
        );
        assert_eq!(
            err(&text).to_string(),
            "http[1].bind-addr: duplicate bind address 127.0.0.1:9096 (also used by http[0])"
        );
        let text = format!(
            "{}{}",
            udp_with("name = \"a\"", ""),
            udp_with("name = \"b\"", "").replace("127.0.0.1:9096", ":9096")
        );
        assert_eq!(
            err(&text).to_string(),
            "udp[1].bind-addr: bind address 0.0.0.0:9096 overlaps 127.0.0.1:9096 of udp[0]"
        );
        let text = format!(
            "{}{}",
            http_with("name = \"a\"", ""),
            http_with("name = \"b\"", "").replace("127.0.0.1:9096", "[::]:9096")
        );
        assert!(err(&text).message.contains("overlaps"));
        // Different ports, different protocols, or port 0 (ephemeral): no clash.
        let text = format!(
            "{}{}",
            http_with("name = \"a\"", ""),
            http_with("name = \"b\"", "").replace(":9096", ":9097")
        );
        assert!(parse(&text).is_ok());
        assert!(parse(&format!("{}{}", http_with("", ""), udp_with("", ""))).is_ok());
        let zero = http_with("", "").replace(":9096", ":0");
        let text = format!(
            "{}{}",
            zero.replace("[[http]]", "[[http]]\nname = \"a\""),
            zero.replace("[[http]]", "[[http]]\nname = \"b\"")
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn empty_strings_mean_default_as_in_the_original() {
        let c = parse(&http_with(
            "name = \"\"\ndefault-retention-policy = \"\"\nssl-combined-pem = \"\"\nread-timeout = \"\"",
            "name = \"\"\ntimeout = \"\"\nmax-delay-interval = \"\"\nhttp-user = \"u\"\nhttp-pass = \"\"",
        ))
        .unwrap();
        let h = &c.http[0];
        assert_eq!(h.name, "http://127.0.0.1:9096");
        assert_eq!(h.default_retention_policy, None);
        assert_eq!(h.ssl_combined_pem, None);
        assert_eq!(h.read_timeout, DEFAULT_READ_TIMEOUT);
        assert_eq!(h.outputs[0].name, "http://127.0.0.1:8086/write");
        assert_eq!(h.outputs[0].timeout, DEFAULT_HTTP_TIMEOUT);
        assert_eq!(h.outputs[0].max_delay_interval, DEFAULT_MAX_DELAY_INTERVAL);
        assert_eq!(
            h.outputs[0].basic_auth, None,
            "only both credentials take effect"
        );
    }

    #[test]
    fn locations() {
        let ok = |url: &str| parse_location(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let l = ok("http://localhost");
        assert_eq!(
            (l.https, l.host.as_str(), l.port, l.path.as_str()),
            (false, "localhost", 80, "/write")
        );
        let l = ok("https://db.example/");
        assert_eq!((l.https, l.port, l.path.as_str()), (true, 443, "/write"));
        let l = ok("http://[::1]:8086/write?u=x#frag");
        assert_eq!(
            (l.host.as_str(), l.port, l.path.as_str()),
            ("::1", 8086, "/write")
        );
        let l = ok("http://[fe80::1]/proxy/write");
        assert_eq!(
            (l.host.as_str(), l.port, l.path.as_str()),
            ("fe80::1", 80, "/proxy/write")
        );
        let l = ok("http://my_host-1.example:8086?db=x");
        assert_eq!(
            (l.host.as_str(), l.port, l.path.as_str()),
            ("my_host-1.example", 8086, "/write")
        );

        let bad = [
            ("127.0.0.1:8086/write", "expected http://host[:port]/write"),
            (
                "udp://127.0.0.1:8089",
                "scheme \"udp\" is not http or https",
            ),
            ("http://", "missing host"),
            ("http://:8086/write", "missing host"),
            ("http://h:0/write", "invalid port \"0\""),
            ("http://h:65536/write", "invalid port \"65536\""),
            ("http://h:x/write", "invalid port \"x\""),
            (
                "http://u:p@h/write",
                "credentials in the URL are not supported",
            ),
            ("http://[::1/write", "unclosed '['"),
            ("http://[zz]/write", "invalid IPv6 address"),
            ("http://[::1]x/write", "unexpected text after ']'"),
            ("http://h h/write", "invalid character in host"),
            ("http://h/wr ite", "must not contain spaces"),
        ];
        for (url, want) in bad {
            match parse_location(url) {
                Ok(l) => panic!("{url} accepted: {l:?}"),
                Err(e) => assert!(e.contains(want), "{url}: {e}"),
            }
        }
        let e = err(&http_with("", "").replace("http://127.0.0.1:8086/write", "ftp://x/write"));
        assert_eq!(
            e.to_string(),
            "http[0].output[0].location: invalid URL \"ftp://x/write\": scheme \"ftp\" is not http or https"
        );
    }

    #[test]
    fn bind_addresses() {
        let ok = |text: &str| bind_address("b", text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(ok("127.0.0.1:9096"), "127.0.0.1:9096".parse().unwrap());
        assert_eq!(ok(":9096"), "0.0.0.0:9096".parse().unwrap());
        assert_eq!(ok("[::]:9096"), "[::]:9096".parse().unwrap());
        assert_eq!(ok("localhost:9096").port(), 9096);
        assert!(ok("localhost:9096").ip().is_loopback());
        for bad in ["9096", "", ":", ":x", "127.0.0.1", "127.0.0.1:"] {
            assert!(bind_address("b", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn duration_table() {
        let ns = Duration::from_nanos;
        let table: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("-0s", Duration::ZERO),
            ("1ns", ns(1)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("250μs", Duration::from_micros(250)),
            ("300ms", Duration::from_millis(300)),
            ("10s", Duration::from_secs(10)),
            ("+10s", Duration::from_secs(10)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("1m30s", Duration::from_secs(90)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("1h1m1s1ms1us1ns", ns(3_661_001_001_001)),
            ("1.5h", Duration::from_secs(5400)),
            ("168h", Duration::from_secs(168 * 3600)),
            ("0.000000001s", ns(1)),
            ("0.0000000019s", ns(1)),
            ("1.000000000000000000000000009s", Duration::from_secs(1)),
            ("9223372036854775807ns", ns(i64::MAX as u64)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ];
        for &(text, want) in table {
            assert_eq!(parse_duration(text), Ok(want), "{text:?}");
        }

        let errors: &[(&str, &str)] = &[
            ("", "invalid duration \"\": empty"),
            ("-", "invalid duration \"-\": no number"),
            (
                "10",
                "invalid duration \"10\": missing unit (use ns, us, ms, s, m or h)",
            ),
            (
                "00",
                "invalid duration \"00\": missing unit (use ns, us, ms, s, m or h)",
            ),
            ("10x", "invalid duration \"10x\": unknown unit \"x\""),
            ("10 s", "invalid duration \"10 s\": unknown unit \" s\""),
            ("1S", "invalid duration \"1S\": unknown unit \"S\""),
            ("s", "invalid duration \"s\": expected a number"),
            (".s", "invalid duration \".s\": expected a number"),
            (
                "1.5.2s",
                "invalid duration \"1.5.2s\": missing unit (use ns, us, ms, s, m or h)",
            ),
            (
                "-1.5h",
                "invalid duration \"-1.5h\": negative durations are not allowed",
            ),
            (
                "9223372036854775808ns",
                "invalid duration \"9223372036854775808ns\": out of range",
            ),
            ("2562048h", "invalid duration \"2562048h\": out of range"),
            (
                "2562047h2562047h",
                "invalid duration \"2562047h2562047h\": out of range",
            ),
            (
                "99999999999999999999999h",
                "invalid duration \"99999999999999999999999h\": out of range",
            ),
        ];
        for &(text, want) in errors {
            assert_eq!(parse_duration(text), Err(want.to_string()), "{text:?}");
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let table = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in table {
            let mut out = String::new();
            base64_encode(input.as_bytes(), &mut out);
            assert_eq!(out, want, "{input:?}");
        }
        let auth = BasicAuth {
            user: "Aladdin".into(),
            pass: "open sesame".into(),
        };
        assert_eq!(auth.header_value(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    const SECRET_SHA256: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

    #[test]
    fn users_as_sections_and_from_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("users");
        std::fs::write(
            &file,
            format!("# name:sha256\n\n  alice : {SECRET_SHA256}\nbob:{SECRET_SHA256}\n"),
        )
        .expect("write users file");
        let text = format!(
            "[[http]]\nbind-addr = \"127.0.0.1:9096\"\nusers-file = \"{}\"\n\
             [[http.users]]\nname = \"carol\"\npassword-sha256 = \"{SECRET_SHA256}\"\n\
             [[http.output]]\nlocation = \"http://127.0.0.1:8086/write\"\n",
            file.display()
        );
        let c = parse(&text).expect("users config");
        let auth = c.http[0].auth.as_ref().expect("auth on");
        let names: Vec<&str> = auth.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["carol", "alice", "bob"]);
        assert!(!auth.metrics, "pages stay open by default");
        assert!(c.http[0].forward_credentials);

        // Only a file: auth is on too; an empty string means none, as elsewhere.
        let only_file = parse(&http_with(
            &format!("users-file = \"{}\"", file.display()),
            "",
        ))
        .expect("file only");
        assert_eq!(
            only_file.http[0].auth.as_ref().map(|a| a.users.len()),
            Some(2)
        );
        assert_eq!(
            parse(&http_with("users-file = \"\"", "")).unwrap().http[0].auth,
            None
        );
    }

    #[test]
    fn bad_credentials_name_the_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let users_file = |name: &str, content: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).expect("write users file");
            format!("users-file = \"{}\"", path.display())
        };
        let cases = [
            (
                "users = [ { name = \"a\", password-sha256 = \"secret\" } ]".to_string(),
                "http[0].users[0].password-sha256",
                "64 hex digits",
            ),
            (
                format!("users = [ {{ name = \"a\", password-sha256 = \"{}\" }} ]", "g".repeat(64)),
                "http[0].users[0].password-sha256",
                "64 hex digits",
            ),
            (
                format!("users = [ {{ name = \"a:b\", password-sha256 = \"{SECRET_SHA256}\" }} ]"),
                "http[0].users[0].name",
                "':'",
            ),
            (
                format!("users = [ {{ name = \"\", password-sha256 = \"{SECRET_SHA256}\" }} ]"),
                "http[0].users[0].name",
                "empty",
            ),
            (
                "users = [ { name = \"a\" } ]".to_string(),
                "http[0].users[0].password-sha256",
                "missing",
            ),
            (
                format!("users = [ {{ password-sha256 = \"{SECRET_SHA256}\" }} ]"),
                "http[0].users[0].name",
                "missing",
            ),
            (
                "users = [ {} ]".to_string(),
                "http[0].users[0]",
                "token-sha256",
            ),
            (
                format!("users = [ {{ name = \"a\", token-sha256 = \"{SECRET_SHA256}\" }} ]"),
                "http[0].users[0]",
                "only token-sha256",
            ),
            (
                format!("users = [ {{ name = \"a\", password = \"{SECRET_SHA256}\" }} ]"),
                "http[0].users[0]",
                "unknown key \"password\"",
            ),
            (
                format!(
                    "users = [ {{ name = \"a\", password-sha256 = \"{SECRET_SHA256}\" }},\n\
                     {{ name = \"a\", password-sha256 = \"{SECRET_SHA256}\" }} ]"
                ),
                "http[0].users[1].name",
                "duplicate user \"a\" (also in http[0].users[0])",
            ),
            (
                format!(
                    "users = [ {{ token-sha256 = \"{SECRET_SHA256}\" }}, {{ token-sha256 = \"{SECRET_SHA256}\" }} ]"
                ),
                "http[0].users[1].token-sha256",
                "duplicate token",
            ),
            ("users = \"a\"".to_string(), "http[0].users", "array of tables"),
            ("auth-metrics = true".to_string(), "http[0].auth-metrics", "needs users"),
            ("auth-metrics = 1".to_string(), "http[0].auth-metrics", "true or false"),
            ("forward-credentials = \"no\"".to_string(), "http[0].forward-credentials", "true or false"),
            (
                "users-file = \"/nonexistent/users\"".to_string(),
                "http[0].users-file",
                "cannot read",
            ),
            (users_file("empty", "# nobody yet\n"), "http[0].users-file", "has no users"),
            (users_file("nocolon", "alice\n"), "http[0].users-file", "line 1: expected name:sha256hex"),
            (
                users_file("badhex", &format!("# c\nalice:{SECRET_SHA256}\nbob:xyz\n")),
                "http[0].users-file",
                "line 3: expected the SHA-256",
            ),
            (
                users_file("dup", &format!("alice:{SECRET_SHA256}\nalice:{SECRET_SHA256}\n")),
                "http[0].users-file",
                "line 2: duplicate user \"alice\"",
            ),
        ];
        for (listener, path, needle) in cases {
            let e = err(&http_with(&listener, ""));
            assert_eq!(e.path, path, "{listener}: {e}");
            assert!(e.message.contains(needle), "{listener}: {e}");
        }
    }

    #[test]
    fn suggestions() {
        let known = ["bind-addr", "name", "output", "max-body-size-mb"];
        assert_eq!(suggest("bind_addr", &known), Some("bind-addr"));
        assert_eq!(suggest("BIND-ADDR", &known), Some("bind-addr"));
        assert_eq!(suggest("nmae", &known), Some("name"));
        assert_eq!(suggest("outputs", &known), Some("output"));
        assert_eq!(suggest("completely-different", &known), None);
    }
}
