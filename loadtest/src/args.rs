//! Hand-rolled command-line parsing for `loadtest sink` and `loadtest run`.
//!
//! Scripts drive these spellings, so every flag is spelled exactly as the README says
//! and an unknown flag is an error rather than something silently ignored.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Connections opened by `run` when `--connections` is absent.
pub const DEFAULT_CONNECTIONS: usize = 32;
/// Lines per HTTP request when `--lines` is absent.
pub const DEFAULT_LINES: usize = 100;
/// Distinct series (tag sets) the generator cycles through when `--series` is absent.
pub const DEFAULT_SERIES: u64 = 1000;
/// Database named in `/write?db=` when `--db` is absent.
pub const DEFAULT_DB: &str = "loadtest";
/// Run length when neither `--duration` nor `--requests` is given: 10 s.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// How long one request may wait for its answer before it counts as a `timeout`: 10 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on `--connections`; more would exhaust loopback ports and file limits.
pub const MAX_CONNECTIONS: usize = 60_000;
/// Upper bound on `--lines` so one request body stays well under InfluxDB's 25 MB.
pub const MAX_LINES: usize = 100_000;
/// Window width when `--phase` is given without `--window`: 1 s.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);
/// Narrowest `--window`: 10 ms. Each window holds a histogram per generator thread.
pub const MIN_WINDOW: Duration = Duration::from_millis(10);

/// `--progress`: how `run` shows how it is doing on stderr while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// `live` on a terminal, `lines` otherwise (the default).
    Auto,
    /// One status line rewritten in place every second.
    Live,
    /// A plain line every few seconds, no control characters: for logs and pipes.
    Lines,
    /// Nothing but the final report.
    Off,
}

/// A named stretch of a run (`--phase NAME=FROM-TO`), reported on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseSpec {
    pub name: String,
    /// Offsets from the start of the run.
    pub from: Duration,
    pub to: Duration,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Sink(SinkConfig),
    Run(Box<RunConfig>),
    Help,
    /// `--version`: print the name and version, as `influx-relay --version` does.
    Version,
}

/// `loadtest sink` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    pub http: SocketAddr,
    pub udp: Option<SocketAddr>,
    /// Answer every write with this status from the start (`--fail-status`).
    pub fail_status: Option<u16>,
    /// Sleep this long before answering each write (`--delay-ms`).
    pub delay: Duration,
    /// Writes must carry `Authorization: Token <this>` (`--token`), as an InfluxDB 2.x
    /// or 3.x server with a token would demand.
    pub token: Option<String>,
}

/// Timestamp precision of generated lines, sent as `precision=` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanos,
    Micros,
    Millis,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// Nanoseconds in one unit of this precision.
    pub fn unit_nanos(self) -> u64 {
        match self {
            Precision::Nanos => 1,
            Precision::Micros => 1_000,
            Precision::Millis => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }

    fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "n" | "ns" => Precision::Nanos,
            "u" | "us" | "µ" => Precision::Micros,
            "ms" => Precision::Millis,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            _ => return None,
        })
    }
}

/// `loadtest run` settings, already checked for consistency.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// HTTP target; `None` with `--udp-only`.
    pub target: Option<SocketAddr>,
    /// `Host` header value (what the user wrote in `--target`).
    pub host_header: String,
    /// Path of the write endpoint, `/write` unless `--target` carries a prefix.
    pub write_path: String,
    pub udp: Option<SocketAddr>,
    pub udp_only: bool,
    /// Stop starting requests after this long; `None` when only `--requests` bounds the run.
    pub duration: Option<Duration>,
    /// Total requests (HTTP) or datagrams (`--udp-only`) to send.
    pub requests: Option<u64>,
    pub connections: usize,
    pub lines: usize,
    pub gzip: bool,
    /// HTTP requests per second over all connections (datagrams/s with `--udp-only`).
    pub rate: Option<f64>,
    /// Datagrams per second when UDP runs beside HTTP; unlimited when `None`.
    pub udp_rate: Option<f64>,
    pub series: u64,
    pub timestamps: bool,
    /// `--ts-step`: stamp the lines of the `--requests` budget this far apart, ending
    /// at the run's start, instead of from the clock (HTTP, nanoseconds only).
    pub ts_step: Option<Duration>,
    pub db: String,
    /// `None` sends no `precision=` and stamps nanoseconds.
    pub precision: Option<Precision>,
    /// The raw `--precision` spelling, passed through to the query string.
    pub precision_param: Option<String>,
    pub json: bool,
    /// Generator threads; each drives a share of the connections with one `mio::Poll`.
    pub threads: usize,
    /// Value of the `gen` tag on every line; the sink groups its analysis by it.
    pub run_id: String,
    pub timeout: Duration,
    /// Report throughput and latency per window of this width (`--window`).
    pub window: Option<Duration>,
    /// Stretches of the run summed from the windows (`--phase`, repeatable).
    pub phases: Vec<PhaseSpec>,
    pub progress: ProgressMode,
    /// Which write API the requests use (`--api`).
    pub api: WriteApi,
}

/// The InfluxDB write API the generator speaks (`--api v1|v2|v3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteApi {
    /// `POST …/write?db=&precision=`.
    #[default]
    V1,
    /// `POST …/api/v2/write?org=loadtest&bucket=&precision=` (ns, us, ms, s).
    V2,
    /// `POST …/api/v3/write_lp?db=&precision=` (nanosecond … second).
    V3,
}

impl RunConfig {
    /// Path and query of every write request, in the chosen API.
    pub fn write_target(&self) -> String {
        let prefix = self.write_path.strip_suffix("/write").unwrap_or("");
        let p = self.precision_param.as_deref();
        let (mut out, precision) = match self.api {
            WriteApi::V1 => (format!("{}?db={}", self.write_path, self.db), p),
            WriteApi::V2 => (
                format!("{prefix}/api/v2/write?org=loadtest&bucket={}", self.db),
                p.map(|p| match p {
                    "n" | "ns" => "ns",
                    "u" | "us" => "us",
                    other => other,
                }),
            ),
            WriteApi::V3 => (
                format!("{prefix}/api/v3/write_lp?db={}", self.db),
                Some(match p {
                    None | Some("n" | "ns") => "nanosecond",
                    Some("u" | "us") => "microsecond",
                    Some("ms") => "millisecond",
                    Some(_) => "second",
                }),
            ),
        };
        if let Some(p) = precision {
            out.push_str("&precision=");
            out.push_str(p);
        }
        out
    }
}

impl RunConfig {
    /// A config with every default, aimed at `target`; tests start from this.
    pub fn new(target: SocketAddr) -> RunConfig {
        RunConfig {
            target: Some(target),
            host_header: target.to_string(),
            write_path: "/write".to_string(),
            udp: None,
            udp_only: false,
            duration: Some(DEFAULT_DURATION),
            requests: None,
            connections: DEFAULT_CONNECTIONS,
            lines: DEFAULT_LINES,
            gzip: false,
            rate: None,
            udp_rate: None,
            series: DEFAULT_SERIES,
            timestamps: true,
            ts_step: None,
            db: DEFAULT_DB.to_string(),
            precision: None,
            precision_param: None,
            json: false,
            threads: default_threads(DEFAULT_CONNECTIONS),
            run_id: new_run_id(),
            timeout: DEFAULT_TIMEOUT,
            window: None,
            phases: Vec::new(),
            progress: ProgressMode::Auto,
            api: WriteApi::V1,
        }
    }

    /// Timestamp unit in nanoseconds (1 when no precision was given).
    pub fn unit_nanos(&self) -> u64 {
        self.precision.map_or(1, Precision::unit_nanos)
    }
}

/// A command line that cannot be run; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ArgError> {
    Err(ArgError(msg.into()))
}

pub const USAGE: &str = "\
usage:
  loadtest --version | --help
  loadtest sink --http ADDR [--udp ADDR] [--fail-status CODE] [--delay-ms MS] [--token T]
  loadtest run  --target http://HOST:PORT [--udp HOST:PORT] [--udp-only]
                [--duration 10s | --requests N] [--connections 32] [--lines 100]
                [--rate REQ_PER_SEC] [--udp-rate DGRAMS_PER_SEC] [--series 1000]
                [--timestamps | --no-timestamps] [--precision n|u|ms|s|m|h]
                [--ts-step DURATION] [--db loadtest] [--gzip] [--threads N] [--run-id ID]
                [--timeout 10s] [--window 1s] [--phase NAME=FROM-TO ...] [--json]
                [--api v1|v2|v3]
                [--progress auto|live|lines|off]
";

/// Parses everything after the program name.
pub fn parse<I, S>(args: I) -> Result<Command, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args: Vec<String> = args.into_iter().map(Into::into).collect();
    if args.is_empty() {
        return err("missing command: expected `sink` or `run`");
    }
    let cmd = args.remove(0);
    match cmd.as_str() {
        "sink" => parse_sink(&args).map(Command::Sink),
        "run" => parse_run(&args).map(|c| Command::Run(Box::new(c))),
        "help" | "-h" | "--help" => Ok(Command::Help),
        "version" | "-V" | "--version" | "-version" => Ok(Command::Version),
        other => err(format!(
            "unknown command `{other}`: expected `sink` or `run`"
        )),
    }
}

/// Walks `--flag value` pairs and bare `--switch`es.
struct Flags<'a> {
    args: &'a [String],
    pos: usize,
}

impl<'a> Flags<'a> {
    fn next_flag(&mut self) -> Option<&'a str> {
        let a = self.args.get(self.pos)?;
        self.pos += 1;
        Some(a.as_str())
    }

    fn value(&mut self, flag: &str) -> Result<&'a str, ArgError> {
        match self.args.get(self.pos) {
            Some(v) => {
                self.pos += 1;
                Ok(v.as_str())
            }
            None => err(format!("{flag} needs a value")),
        }
    }
}

/// Splits `--flag=value` into the flag and an inline value.
fn split_inline(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((f, v)) if f.starts_with("--") => (f, Some(v)),
        _ => (arg, None),
    }
}

fn parse_sink(args: &[String]) -> Result<SinkConfig, ArgError> {
    let mut flags = Flags { args, pos: 0 };
    let mut http = None;
    let mut udp = None;
    let mut fail_status = None;
    let mut delay = Duration::ZERO;
    let mut token = None;
    while let Some(arg) = flags.next_flag() {
        let (flag, inline) = split_inline(arg);
        let mut value = || match inline {
            Some(v) => Ok(v),
            None => flags.value(flag),
        };
        match flag {
            "--http" => http = Some(parse_addr(flag, value()?)?),
            "--udp" => udp = Some(parse_addr(flag, value()?)?),
            "--fail-status" => fail_status = Some(parse_status(flag, value()?)?),
            "--delay-ms" => delay = Duration::from_millis(parse_num(flag, value()?)?),
            "--token" => token = Some(value()?.to_string()),
            _ => return err(format!("unknown flag `{arg}` for sink")),
        }
    }
    let Some(http) = http else {
        return err("sink needs --http ADDR (use port 0 for any free port)");
    };
    Ok(SinkConfig {
        http,
        udp,
        fail_status,
        delay,
        token,
    })
}

fn parse_run(args: &[String]) -> Result<RunConfig, ArgError> {
    let mut flags = Flags { args, pos: 0 };
    let mut target: Option<(SocketAddr, String, String)> = None;
    let mut cfg = RunConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut duration = None;
    let mut threads = None;
    while let Some(arg) = flags.next_flag() {
        let (flag, inline) = split_inline(arg);
        let mut value = || match inline {
            Some(v) => Ok(v),
            None => flags.value(flag),
        };
        match flag {
            "--target" => target = Some(parse_target(value()?)?),
            "--udp" => cfg.udp = Some(parse_addr(flag, value()?)?),
            "--udp-only" => cfg.udp_only = true,
            "--duration" => {
                duration = Some(
                    parse_duration(value()?).map_err(|e| ArgError(format!("--duration: {e}")))?,
                )
            }
            "--requests" => cfg.requests = Some(parse_positive(flag, value()?)?),
            "--connections" => {
                cfg.connections = parse_positive(flag, value()?)? as usize;
                if cfg.connections > MAX_CONNECTIONS {
                    return err(format!("--connections: at most {MAX_CONNECTIONS}"));
                }
            }
            "--lines" => {
                cfg.lines = parse_positive(flag, value()?)? as usize;
                if cfg.lines > MAX_LINES {
                    return err(format!("--lines: at most {MAX_LINES}"));
                }
            }
            "--gzip" => cfg.gzip = true,
            "--rate" => cfg.rate = Some(parse_rate(flag, value()?)?),
            "--udp-rate" => cfg.udp_rate = Some(parse_rate(flag, value()?)?),
            "--series" => cfg.series = parse_positive(flag, value()?)?,
            "--timestamps" => cfg.timestamps = true,
            "--no-timestamps" => cfg.timestamps = false,
            "--ts-step" => {
                let d =
                    parse_duration(value()?).map_err(|e| ArgError(format!("--ts-step: {e}")))?;
                if d.is_zero() {
                    return err("--ts-step must be above zero");
                }
                cfg.ts_step = Some(d);
            }
            "--db" => {
                let v = value()?;
                if v.is_empty() || !v.bytes().all(is_query_safe) {
                    return err("--db: use letters, digits, `_`, `-` or `.`");
                }
                cfg.db = v.to_string();
            }
            "--precision" => {
                let v = value()?;
                let Some(p) = Precision::parse(v) else {
                    return err(format!(
                        "--precision: `{v}` is not one of n, u, ms, s, m, h"
                    ));
                };
                cfg.precision = Some(p);
                cfg.precision_param = Some(if v == "µ" { "u".into() } else { v.into() });
            }
            "--json" => cfg.json = true,
            "--api" => {
                cfg.api = match value()? {
                    "v1" => WriteApi::V1,
                    "v2" => WriteApi::V2,
                    "v3" => WriteApi::V3,
                    other => return err(format!("--api: `{other}` is not one of v1, v2, v3")),
                }
            }
            "--threads" => threads = Some(parse_positive(flag, value()?)? as usize),
            "--run-id" => {
                let v = value()?;
                if v.is_empty() || v.len() > 64 || !v.bytes().all(is_query_safe) {
                    return err("--run-id: 1-64 letters, digits, `_`, `-` or `.`");
                }
                cfg.run_id = v.to_string();
            }
            "--timeout" => {
                cfg.timeout =
                    parse_duration(value()?).map_err(|e| ArgError(format!("--timeout: {e}")))?;
                if cfg.timeout.is_zero() {
                    return err("--timeout must be above zero");
                }
            }
            "--window" => {
                let w = parse_duration(value()?).map_err(|e| ArgError(format!("--window: {e}")))?;
                if w < MIN_WINDOW {
                    return err("--window: at least 10ms");
                }
                cfg.window = Some(w);
            }
            "--phase" => cfg.phases.push(parse_phase(value()?)?),
            "--progress" => {
                cfg.progress = match value()? {
                    "auto" => ProgressMode::Auto,
                    "live" => ProgressMode::Live,
                    "lines" => ProgressMode::Lines,
                    "off" => ProgressMode::Off,
                    other => {
                        return err(format!(
                            "--progress: `{other}` is not one of auto, live, lines, off"
                        ))
                    }
                }
            }
            _ => return err(format!("unknown flag `{arg}` for run")),
        }
    }
    if cfg.api != WriteApi::V1
        && matches!(cfg.precision, Some(Precision::Minutes | Precision::Hours))
    {
        return err("--precision m and h exist only in the v1 API (--api v1)");
    }
    // The budget fixes where the backfill starts; a step below the precision's unit
    // would round lines onto each other, and datagrams take no request numbers.
    if cfg.ts_step.is_some()
        && (cfg.requests.is_none()
            || cfg.udp.is_some()
            || !cfg.timestamps
            || !matches!(cfg.precision, None | Some(Precision::Nanos)))
    {
        return err(
            "--ts-step needs --requests, HTTP only, and timestamps in nanoseconds (no --no-timestamps, --precision n)",
        );
    }
    if !cfg.phases.is_empty() && cfg.window.is_none() {
        cfg.window = Some(DEFAULT_WINDOW);
    }
    match target {
        Some((addr, host, path)) => {
            cfg.target = Some(addr);
            cfg.host_header = host;
            cfg.write_path = path;
        }
        None if cfg.udp_only => cfg.target = None,
        None => return err("run needs --target http://HOST:PORT (or --udp-only with --udp)"),
    }
    if cfg.udp_only {
        if cfg.udp.is_none() {
            return err("--udp-only needs --udp HOST:PORT");
        }
        cfg.target = None;
    }
    cfg.duration = match (duration, cfg.requests) {
        (Some(d), _) if d.is_zero() => return err("--duration must be above zero"),
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_DURATION),
    };
    cfg.threads = threads.unwrap_or_else(|| default_threads(cfg.connections));
    cfg.threads = cfg.threads.min(cfg.connections).max(1);
    Ok(cfg)
}

/// One generator thread per core, never more threads than connections.
pub fn default_threads(connections: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(connections).max(1)
}

/// A fresh run id: distinct across runs on one machine without coordination.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = nanos ^ (u64::from(std::process::id()) << 40);
    format!("r{:010x}", mixed & 0xff_ffff_ffff)
}

fn is_query_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn parse_addr(flag: &str, v: &str) -> Result<SocketAddr, ArgError> {
    match v.to_socket_addrs() {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => Ok(a),
            None => err(format!("{flag}: `{v}` resolves to no address")),
        },
        Err(e) => err(format!("{flag}: `{v}` is not HOST:PORT ({e})")),
    }
}

/// `http://HOST:PORT[/prefix]` → (address, Host header, write path).
fn parse_target(v: &str) -> Result<(SocketAddr, String, String), ArgError> {
    let Some(rest) = v.strip_prefix("http://") else {
        if v.starts_with("https://") {
            return err("--target: https is not supported; point it at a plain-HTTP listener");
        }
        return err(format!("--target: `{v}` must start with http://"));
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let hostport_with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addr = parse_addr("--target", &hostport_with_port)?;
    let path = path.trim_end_matches('/');
    let write_path = if path.ends_with("/write") {
        path.to_string()
    } else {
        format!("{path}/write")
    };
    Ok((addr, hostport.to_string(), write_path))
}

/// `NAME=FROM-TO`, both offsets from the start of the run: `outage=10s-18s`.
fn parse_phase(v: &str) -> Result<PhaseSpec, ArgError> {
    let bad = || err("--phase: expected NAME=FROM-TO, e.g. outage=10s-18s");
    let Some((name, span)) = v.split_once('=') else {
        return bad();
    };
    let Some((from, to)) = span.split_once('-') else {
        return bad();
    };
    if name.is_empty() || !name.bytes().all(is_query_safe) {
        return err("--phase: name with letters, digits, `_`, `-` or `.`");
    }
    let from = parse_duration(from).map_err(|e| ArgError(format!("--phase {name}: {e}")))?;
    let to = parse_duration(to).map_err(|e| ArgError(format!("--phase {name}: {e}")))?;
    if to <= from {
        return err(format!("--phase {name}: ends before it starts"));
    }
    Ok(PhaseSpec {
        name: name.to_string(),
        from,
        to,
    })
}

fn parse_num(flag: &str, v: &str) -> Result<u64, ArgError> {
    v.parse::<u64>()
        .or_else(|_| err(format!("{flag}: `{v}` is not a whole number")))
}

fn parse_positive(flag: &str, v: &str) -> Result<u64, ArgError> {
    match parse_num(flag, v)? {
        0 => err(format!("{flag} must be above zero")),
        n => Ok(n),
    }
}

fn parse_rate(flag: &str, v: &str) -> Result<f64, ArgError> {
    match v.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => err(format!("{flag}: `{v}` is not a positive number")),
    }
}

fn parse_status(flag: &str, v: &str) -> Result<u16, ArgError> {
    match v.parse::<u16>() {
        Ok(s) if (200..=599).contains(&s) => Ok(s),
        _ => err(format!("{flag}: `{v}` is not an HTTP status (200-599)")),
    }
}

/// Go-style durations (`500ms`, `10s`, `1m30s`, `1.5s`); a bare number is seconds.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    if v.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = v.parse::<f64>() {
        return secs_to_duration(secs, v);
    }
    let mut total = 0f64;
    let mut rest = v;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{v}` has a number without a unit"))?;
        if num_end == 0 {
            return Err(format!("`{v}` is not a duration such as 10s or 500ms"));
        }
        let num: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("`{v}` has a bad number"))?;
        let after = &rest[num_end..];
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let scale = match &after[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(format!("`{v}` has unknown unit `{u}`")),
        };
        total += num * scale;
        rest = &after[unit_end..];
    }
    secs_to_duration(total, v)
}

fn secs_to_duration(secs: f64, v: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{v}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RunConfig, ArgError> {
        let mut v = vec!["run"];
        v.extend_from_slice(args);
        match parse(v)? {
            Command::Run(c) => Ok(*c),
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn version_and_help_in_every_spelling() {
        for v in ["--version", "-V", "-version", "version"] {
            assert_eq!(parse([v]), Ok(Command::Version), "{v}");
        }
        for h in ["--help", "-h", "help"] {
            assert_eq!(parse([h]), Ok(Command::Help), "{h}");
        }
        assert!(parse(["--versions"]).is_err());
    }

    #[test]
    fn progress_modes() {
        let t = ["--target", "http://127.0.0.1:1"];
        assert_eq!(run(&t).unwrap().progress, ProgressMode::Auto);
        for (v, mode) in [
            ("live", ProgressMode::Live),
            ("lines", ProgressMode::Lines),
            ("off", ProgressMode::Off),
        ] {
            assert_eq!(run(&[t[0], t[1], "--progress", v]).unwrap().progress, mode);
        }
        assert!(run(&[t[0], t[1], "--progress", "loud"]).is_err());
    }

    #[test]
    fn durations_follow_go_syntax() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn run_defaults() {
        let c = run(&["--target", "http://127.0.0.1:8086"]).unwrap();
        assert_eq!(c.target, Some("127.0.0.1:8086".parse().unwrap()));
        assert_eq!(c.host_header, "127.0.0.1:8086");
        assert_eq!(c.write_path, "/write");
        assert_eq!(c.connections, DEFAULT_CONNECTIONS);
        assert_eq!(c.lines, DEFAULT_LINES);
        assert_eq!(c.series, DEFAULT_SERIES);
        assert_eq!(c.db, "loadtest");
        assert_eq!(c.duration, Some(DEFAULT_DURATION));
        assert!(c.timestamps && !c.gzip && !c.json && !c.udp_only);
        assert!(c.threads >= 1 && c.threads <= c.connections);
    }

    #[test]
    fn run_all_flags() {
        let c = run(&[
            "--target=http://127.0.0.1:9096/prefix/",
            "--udp",
            "127.0.0.1:9097",
            "--duration",
            "3s",
            "--requests",
            "200",
            "--connections",
            "2000",
            "--lines",
            "50",
            "--gzip",
            "--rate",
            "1000.5",
            "--series",
            "7",
            "--no-timestamps",
            "--db",
            "bench",
            "--precision",
            "ms",
            "--json",
            "--threads",
            "3",
            "--run-id",
            "abc-1",
            "--timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(c.write_path, "/prefix/write");
        assert_eq!(c.udp, Some("127.0.0.1:9097".parse().unwrap()));
        assert_eq!(c.duration, Some(Duration::from_secs(3)));
        assert_eq!(c.requests, Some(200));
        assert_eq!(c.connections, 2000);
        assert_eq!(c.lines, 50);
        assert!(c.gzip && c.json && !c.timestamps);
        assert_eq!(c.rate, Some(1000.5));
        assert_eq!(c.series, 7);
        assert_eq!(c.db, "bench");
        assert_eq!(c.precision, Some(Precision::Millis));
        assert_eq!(c.precision_param.as_deref(), Some("ms"));
        assert_eq!(c.unit_nanos(), 1_000_000);
        assert_eq!(c.threads, 3);
        assert_eq!(c.run_id, "abc-1");
        assert_eq!(c.timeout, Duration::from_secs(2));
    }

    #[test]
    fn phases_bring_a_default_window() {
        let c = run(&[
            "--target",
            "http://127.0.0.1:1",
            "--phase",
            "before=2s-10s",
            "--phase=outage=10s-18.5s",
        ])
        .unwrap();
        assert_eq!(c.window, Some(DEFAULT_WINDOW));
        assert_eq!(
            c.phases[1],
            PhaseSpec {
                name: "outage".into(),
                from: Duration::from_secs(10),
                to: Duration::from_millis(18_500),
            }
        );
        let c = run(&["--target", "http://127.0.0.1:1", "--window", "250ms"]).unwrap();
        assert_eq!(
            (c.window, c.phases.len()),
            (Some(Duration::from_millis(250)), 0)
        );
        for bad in ["x", "a=1s", "a=2s-1s", "=1s-2s", "a b=1s-2s", "a=1x-2s"] {
            assert!(
                run(&["--target", "http://127.0.0.1:1", "--phase", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(run(&["--target", "http://127.0.0.1:1", "--window", "1ms"]).is_err());
    }

    #[test]
    fn requests_alone_means_no_duration() {
        let c = run(&["--target", "http://127.0.0.1:1", "--requests", "5"]).unwrap();
        assert_eq!(c.duration, None);
        assert_eq!(c.requests, Some(5));
    }

    #[test]
    fn ts_step_needs_nanosecond_timestamps() {
        let t = ["--target", "http://127.0.0.1:1", "--requests", "10"];
        let c = run(&[t[0], t[1], t[2], t[3], "--ts-step", "10s"]).unwrap();
        assert_eq!(c.ts_step, Some(Duration::from_secs(10)));
        let c = run(&[
            t[0],
            t[1],
            t[2],
            t[3],
            "--ts-step",
            "1ms",
            "--precision",
            "n",
        ])
        .unwrap();
        assert_eq!(c.ts_step, Some(Duration::from_millis(1)));
        for bad in [
            &["--ts-step", "0s"][..],
            &["--ts-step", "10s", "--precision", "s"],
            &["--ts-step", "10s", "--no-timestamps"],
            &["--ts-step", "10s", "--udp", "127.0.0.1:2"],
        ] {
            let mut args = t.to_vec();
            args.extend_from_slice(bad);
            let e = run(&args).unwrap_err();
            assert!(e.0.contains("--ts-step"), "{bad:?}: {e}");
        }
        let e = run(&["--target", "http://127.0.0.1:1", "--ts-step", "10s"]).unwrap_err();
        assert!(e.0.contains("--requests"), "{e}");
    }

    #[test]
    fn udp_only_needs_udp_and_drops_target() {
        assert!(run(&["--udp-only"]).is_err());
        let c = run(&["--udp-only", "--udp", "127.0.0.1:5"]).unwrap();
        assert_eq!(c.target, None);
        assert!(c.udp_only);
    }

    #[test]
    fn bad_run_flags_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "--target"),
            (&["--target", "https://127.0.0.1:1"], "https"),
            (&["--target", "127.0.0.1:1"], "http://"),
            (
                &["--target", "http://127.0.0.1:1", "--connections", "0"],
                "--connections",
            ),
            (
                &["--target", "http://127.0.0.1:1", "--lines", "x"],
                "--lines",
            ),
            (
                &["--target", "http://127.0.0.1:1", "--precision", "d"],
                "--precision",
            ),
            (
                &["--target", "http://127.0.0.1:1", "--rate", "-1"],
                "--rate",
            ),
            (&["--target", "http://127.0.0.1:1", "--bogus"], "--bogus"),
            (&["--target", "http://127.0.0.1:1", "--db"], "--db"),
            (&["--target", "http://127.0.0.1:1", "--db", "a b"], "--db"),
        ];
        for (args, needle) in cases {
            let e = run(args).unwrap_err();
            assert!(e.0.contains(needle), "{args:?}: `{e}` lacks `{needle}`");
        }
    }

    #[test]
    fn sink_flags() {
        let c = match parse([
            "sink",
            "--http",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--fail-status",
            "503",
            "--delay-ms",
            "50",
        ])
        .unwrap()
        {
            Command::Sink(c) => c,
            other => panic!("expected sink, got {other:?}"),
        };
        assert_eq!(c.http, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.udp, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(c.fail_status, Some(503));
        assert_eq!(c.delay, Duration::from_millis(50));
        assert!(parse(["sink"]).is_err());
        assert!(parse(["sink", "--http", "127.0.0.1:0", "--fail-status", "99"]).is_err());
        assert!(parse(["nope"]).is_err());
        assert_eq!(parse(["--help"]), Ok(Command::Help));
    }

    #[test]
    fn write_targets_per_api() {
        let mut c = RunConfig::new("127.0.0.1:1".parse().unwrap());
        c.db = "d".into();
        c.write_path = "/p/write".into();
        assert_eq!(c.write_target(), "/p/write?db=d");
        c.api = WriteApi::V2;
        c.precision_param = Some("u".into());
        assert_eq!(
            c.write_target(),
            "/p/api/v2/write?org=loadtest&bucket=d&precision=us"
        );
        c.api = WriteApi::V3;
        assert_eq!(
            c.write_target(),
            "/p/api/v3/write_lp?db=d&precision=microsecond"
        );
        c.precision_param = None;
        assert_eq!(
            c.write_target(),
            "/p/api/v3/write_lp?db=d&precision=nanosecond"
        );
        assert!(parse([
            "run",
            "--target",
            "http://h:1",
            "--api",
            "v2",
            "--precision",
            "h"
        ])
        .is_err());
        assert!(parse(["run", "--target", "http://h:1", "--api", "v4"]).is_err());
    }
}
