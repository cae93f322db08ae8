//! The command line of `influx-relay verify`.

use std::path::PathBuf;
use std::time::Duration;

use super::time::parse_time;
use crate::config::parse_duration;

pub const USAGE: &str = "\
usage: influx-relay verify --config FILE [--listener NAME] [--db DB]... [--since DURATION|all]
                           [--until TIME] [--window DURATION] [--dropped] [--json]
                           [cost options]

Reads every backend of each HTTP listener directly and compares them per database,
retention policy, measurement and time window: point counts and a digest of the points
(tags, timestamps, field values and field types). Prints the differences; exits 0 when
the backends are identical, 1 when they differ, 2 on error.

  --config FILE         the relay's configuration file (default: ./relay.toml)
  --listener NAME       only this HTTP listener (default: all of them)
  --db DB               only this database; repeat for more (default: all but _internal)
  --since DURATION|all  how far back from --until to compare (default: 24h); `all` finds
                        each measurement's first and last point and compares everything
  --until TIME          end of the compared range, RFC 3339 or nanoseconds since the
                        epoch (default: now)
  --window DURATION     time window compared at once (default: 1h)
  --dropped             only the time ranges the relay recorded as dropped for the
                        listener's outputs (the dropped-ranges files under spool-dir),
                        and only their databases; --since then defaults to all
  --json                print one JSON document instead of a table

cost options:
  --rate N              queries per second to each backend, at most (default: 10; 0: no limit)
  --concurrency N       backends queried at the same time, at most (default: 4)
  --chunk-size N        rows per chunk of a query answer (default: 10000)
  --timeout DURATION    longest wait for a backend's next bytes (default: 30s)
";

/// Compared range when `--since` is not given: the last day, what an outage or a
/// restart usually touches, at a cost that suits a routine check.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(24 * 3600);
/// Time window of one query and one comparison (1 h).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// Queries per second each backend gets, at most (10): with one query at a time per
/// backend, it keeps at most one of its cores busy and leaves it time between queries.
pub const DEFAULT_RATE: f64 = 10.0;
/// Backends queried at the same time (4).
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Rows per chunk of an answer (10 000), which bounds the memory one answer takes on
/// both sides.
pub const DEFAULT_CHUNK_SIZE: usize = 10_000;
/// Longest wait for a backend's next bytes (30 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    Ago(Duration),
    All,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub listener: Option<String>,
    pub databases: Vec<String>,
    pub since: Since,
    /// Nanoseconds since the epoch; `None` = the time verify starts.
    pub until: Option<i64>,
    pub window: Duration,
    /// Only what the relay recorded as dropped for some output (`crate::dropped`).
    pub dropped: bool,
    pub json: bool,
    /// Queries per second per backend; 0 = no limit.
    pub rate: f64,
    /// At least 1.
    pub concurrency: usize,
    pub chunk_size: usize,
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            config: None,
            listener: None,
            databases: Vec::new(),
            since: Since::Ago(DEFAULT_SINCE),
            until: None,
            window: DEFAULT_WINDOW,
            dropped: false,
            json: false,
            rate: DEFAULT_RATE,
            concurrency: DEFAULT_CONCURRENCY,
            chunk_size: DEFAULT_CHUNK_SIZE,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

pub enum Parsed {
    Run(Options),
    Help,
}

/// `args` are those after `verify`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut o = Options::default();
    let mut since_given = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let flag = flag.trim_start_matches('-');
        if arg.starts_with('-') && matches!(flag, "help" | "h") {
            return Ok(Parsed::Help);
        }
        if arg.starts_with('-') && flag == "json" {
            o.json = true;
            continue;
        }
        if arg.starts_with('-') && flag == "dropped" {
            o.dropped = true;
            continue;
        }
        if !arg.starts_with('-') {
            return Err(format!("unexpected argument {arg:?} (see verify --help)"));
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match flag {
            "config" => o.config = Some(PathBuf::from(value()?)),
            "listener" => o.listener = Some(value()?),
            "db" => o.databases.push(value()?),
            "since" => {
                since_given = true;
                let v = value()?;
                o.since = if v == "all" {
                    Since::All
                } else {
                    Since::Ago(parse_duration(&v).map_err(|e| format!("--since: {e}, or all"))?)
                };
            }
            "until" => {
                let v = value()?;
                o.until = if v == "now" {
                    None
                } else {
                    Some(parse_time(&v).map_err(|e| format!("--until: {e}"))?)
                };
            }
            "window" => {
                o.window = parse_duration(&value()?).map_err(|e| format!("--window: {e}"))?;
                if o.window.is_zero() {
                    return Err("--window must be longer than 0".into());
                }
            }
            "rate" => {
                let v = value()?;
                o.rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| {
                        format!("--rate: {v:?} is not a number of queries per second")
                    })?;
            }
            "concurrency" => {
                o.concurrency = positive(&value()?, "--concurrency")?;
            }
            "chunk-size" => o.chunk_size = positive(&value()?, "--chunk-size")?,
            "timeout" => {
                o.timeout = parse_duration(&value()?).map_err(|e| format!("--timeout: {e}"))?;
                if o.timeout.is_zero() {
                    return Err("--timeout must be longer than 0".into());
                }
            }
            _ => return Err(format!("unknown argument {arg:?} (see verify --help)")),
        }
    }
    // Dropped ranges may be older than a day: the ranges bound the comparison.
    if o.dropped && !since_given {
        o.since = Since::All;
    }
    Ok(Parsed::Run(o))
}

fn positive(v: &str, flag: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag}: {v:?} is not a whole number above 0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(o) => Ok(o),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn flags_take_values_both_ways() {
        let o = options(&[
            "--config",
            "r.toml",
            "-listener=l",
            "--db",
            "a",
            "--db=b",
            "--since",
            "2h",
            "--until",
            "1970-01-01T00:00:01Z",
            "--json",
            "--rate",
            "2.5",
            "--concurrency",
            "1",
        ])
        .unwrap();
        assert_eq!(o.config, Some(PathBuf::from("r.toml")));
        assert_eq!(o.listener.as_deref(), Some("l"));
        assert_eq!(o.databases, ["a", "b"]);
        assert_eq!(o.since, Since::Ago(Duration::from_secs(7200)));
        assert_eq!(o.until, Some(1_000_000_000));
        assert!(o.json);
        assert_eq!(o.rate, 2.5);
        assert_eq!(o.concurrency, 1);
        assert_eq!(options(&["--since", "all"]).unwrap().since, Since::All);
        let o = options(&["--dropped"]).unwrap();
        assert!(o.dropped);
        assert_eq!(o.since, Since::All);
        let o = options(&["--dropped", "--since", "1h"]).unwrap();
        assert_eq!(o.since, Since::Ago(Duration::from_secs(3600)));
        assert_eq!(options(&[]).unwrap(), Options::default());
    }

    #[test]
    fn bad_values_say_what_is_wanted() {
        for (args, needle) in [
            (&["--since", "yesterday"][..], "--since"),
            (&["--until", "soon"][..], "RFC 3339"),
            (&["--concurrency", "0"][..], "above 0"),
            (&["--window", "0"][..], "longer than 0"),
            (&["--rate", "-1"][..], "queries per second"),
            (&["--db"][..], "needs a value"),
            (&["--what"][..], "unknown argument"),
            (&["stray"][..], "unexpected argument"),
        ] {
            let e = options(args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }
}
