//! `influx-relay verify`: are the backends of a listener really replicas of each other?
//!
//! The relay is not involved: each output's backend is read directly (its `/query`
//! beside its `/write`), top down — `SHOW DATABASES`, `SHOW RETENTION POLICIES`,
//! `SHOW MEASUREMENTS`, `SHOW FIELD KEYS` — and then, per retention policy, measurement
//! and time window, `SELECT * … GROUP BY *` streamed in chunks and folded into a point
//! count and an order-independent digest ([`digest`]). Every step asks all backends the
//! same thing and compares the answers ([`compare`]) before the next, so memory is one
//! answer chunk per backend, whatever the data.
//!
//! With `--dropped` only what the relay recorded as given up for some output is
//! compared: the databases and time ranges of the listener's `dropped-ranges` files
//! (written at most a second after a drop; see `crate::dropped`).
//!
//! Cost is bounded three ways: answers come in chunks of `--chunk-size` rows, at most
//! `--concurrency` backends are asked at once (each one query at a time), and each
//! backend gets at most `--rate` queries per second.

mod args;
mod compare;
pub mod digest;
pub mod json;
pub(crate) mod reader;
mod report;
pub(crate) mod time;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use args::{Options, Since};
use compare::{Difference, Place, What};
use digest::{Digest, FieldTypes, Folder};
use reader::{quote_ident, Reader};
pub use report::Report;
use report::{BackendSummary, ListenerSummary};

use crate::config::{Config, HttpConfig};

/// InfluxDB's own monitoring database: every server writes its own statistics there,
/// so replicas always differ in it. Compared only when named with `--db`.
const INTERNAL_DB: &str = "_internal";
/// Least time between two redraws of the progress line.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Why verify could not finish: exit code 2.
#[derive(Debug)]
pub enum VerifyError {
    /// Bad command line or configuration.
    Setup(String),
    /// A backend could not be read; the message says what it answered, if anything.
    Backend {
        backend: String,
        url: String,
        message: String,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Setup(message) => f.write_str(message),
            VerifyError::Backend {
                backend,
                url,
                message,
            } => write!(f, "backend {backend:?} ({url}): {message}"),
        }
    }
}

/// The progress line on stderr, shown only on a terminal.
pub struct Progress {
    tty: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    pub fn new(tty: bool) -> Progress {
        Progress {
            tty,
            last: None,
            shown: false,
        }
    }

    /// A terminal on stderr gets the line; a pipe or file gets nothing, so logs and
    /// scripts see only the result.
    pub fn on_stderr() -> Progress {
        // SAFETY: isatty only inspects the descriptor; 2 is ours for the whole run.
        let tty = unsafe { libc::isatty(2) } == 1;
        Progress::new(tty)
    }

    fn show(&mut self, text: impl FnOnce() -> String) {
        if !self.tty || self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let mut line: String = text().chars().take(120).collect();
        line.insert_str(0, "\r\x1b[2K");
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let _ = std::io::stderr().write_all(b"\r\x1b[2K");
            self.shown = false;
        }
    }
}

/// `influx-relay verify …`: `args` are those after `verify`.
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let options = match args::parse(args) {
        Ok(args::Parsed::Run(o)) => o,
        Ok(args::Parsed::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let json = options.json;
    let fail = |e: &dyn fmt::Display| {
        eprintln!("error: {e}");
        if json {
            println!("{{\"error\":{}}}", report::json_string(&e.to_string()));
        }
        ExitCode::from(2)
    };
    let path = match &options.config {
        Some(p) => p.clone(),
        None => std::path::PathBuf::from("relay.toml"),
    };
    let config = match crate::config::load(&path) {
        Ok(c) => c,
        Err(e) => return fail(&format!("{}: {e}", path.display())),
    };
    let mut progress = Progress::on_stderr();
    let result = run(&config, &options, &mut progress);
    progress.clear();
    match result {
        Ok(report) if options.dropped && report.listeners.is_empty() => {
            if json {
                print!("{}", report::json(&report));
            } else {
                println!(
                    "no dropped ranges recorded under {}: nothing to compare",
                    config.spool_dir.display()
                );
            }
            ExitCode::SUCCESS
        }
        Ok(report) => {
            if json {
                print!("{}", report::json(&report));
            } else {
                print!("{}", report::table(&report));
            }
            if report.identical() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(&e),
    }
}

/// Compare the backends of every listener `options` selects.
pub fn run(
    config: &Config,
    options: &Options,
    progress: &mut Progress,
) -> Result<Report, VerifyError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let until = options.until.unwrap_or(now);
    let since = match options.since {
        Since::Ago(d) => {
            Some(until.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
        }
        Since::All => None,
    };
    let listeners: Vec<&HttpConfig> = match &options.listener {
        Some(name) => {
            let found: Vec<&HttpConfig> = config.http.iter().filter(|l| &l.name == name).collect();
            if found.is_empty() {
                let names: Vec<String> = config
                    .http
                    .iter()
                    .map(|l| format!("{:?}", l.name))
                    .collect();
                let udp = if config.udp.iter().any(|u| &u.name == name) {
                    " (a UDP listener's outputs have no query endpoint: verify the HTTP listener that writes to the same backends)"
                } else {
                    ""
                };
                return Err(VerifyError::Setup(format!(
                    "no HTTP listener named {name:?}{udp}; the config has {}",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            found
        }
        None => config.http.iter().collect(),
    };
    if listeners.is_empty() {
        return Err(VerifyError::Setup(
            "the config has no HTTP listener, so no backend to read".into(),
        ));
    }
    let mut report = Report {
        since,
        until,
        ..Report::default()
    };
    let mut found_dbs = BTreeSet::new();
    for listener in listeners {
        let limit = match options.dropped {
            false => None,
            true => match dropped_ranges(config, listener) {
                ranges if ranges.is_empty() => continue,
                ranges => Some(ranges),
            },
        };
        let mut check = Check::new(listener, options, since, until)?;
        check.limit = limit;
        check.listener(progress, &mut found_dbs)?;
        report
            .differences
            .extend(compare::merge_windows(check.differences));
        report.listeners.push(check.summary);
    }
    if let Some(db) = options.databases.iter().find(|db| !found_dbs.contains(*db)) {
        return Err(VerifyError::Setup(format!(
            "database {db:?} is on no backend of the listeners checked; SHOW DATABASES on them lists the names"
        )));
    }
    Ok(report)
}

/// What the relay recorded as dropped for any output of `listener`: per database,
/// `[from, until)` spans, sorted and merged over outputs and retention policies (a
/// retention policy is not told apart here: comparing all of the database's is
/// the safe side). Database `""` (a statement that named none) stands for all.
fn dropped_ranges(config: &Config, listener: &HttpConfig) -> BTreeMap<String, Vec<(i64, i64)>> {
    let mut by_db: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for output in &listener.outputs {
        let dir = crate::backend::output_dir(&config.spool_dir, &listener.name, &output.name);
        let log = crate::dropped::DroppedLog::open(dir.join(crate::dropped::FILE_NAME));
        for r in log.ranges() {
            by_db
                .entry(r.database)
                .or_default()
                .push((r.from_ns, r.until_ns));
        }
    }
    for spans in by_db.values_mut() {
        *spans = merged(std::mem::take(spans));
    }
    by_db
}

/// `spans` sorted, with those that overlap or touch made one.
fn merged(mut spans: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    spans.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
    for (from, until) in spans {
        match out.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(until),
            _ => out.push((from, until)),
        }
    }
    out
}

/// One listener's backends under comparison.
struct Check<'o> {
    options: &'o Options,
    /// With `--dropped`: the only databases and spans compared ([`dropped_ranges`]).
    limit: Option<BTreeMap<String, Vec<(i64, i64)>>>,
    since: Option<i64>,
    until: i64,
    readers: Vec<Reader>,
    names: Vec<String>,
    summary: ListenerSummary,
    differences: Vec<Difference>,
}

impl<'o> Check<'o> {
    fn new(
        listener: &HttpConfig,
        options: &'o Options,
        since: Option<i64>,
        until: i64,
    ) -> Result<Check<'o>, VerifyError> {
        let pace = if options.rate > 0.0 {
            Duration::from_secs_f64(1.0 / options.rate)
        } else {
            Duration::ZERO
        };
        let readers = listener
            .outputs
            .iter()
            .map(|o| Reader::new(o, options.timeout, options.chunk_size, pace))
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<String> = readers.iter().map(|r| r.name.clone()).collect();
        let summary = ListenerSummary {
            name: listener.name.clone(),
            backends: readers
                .iter()
                .map(|r| BackendSummary {
                    name: r.name.clone(),
                    url: r.url.clone(),
                    ..BackendSummary::default()
                })
                .collect(),
            ..ListenerSummary::default()
        };
        Ok(Check {
            options,
            limit: None,
            since,
            until,
            readers,
            names,
            summary,
            differences: Vec::new(),
        })
    }

    /// Run `f` on every backend, at most `--concurrency` at a time, and return the
    /// answers in backend order; the first error wins.
    fn on_all<T: Send>(
        &mut self,
        f: impl Fn(usize, &mut Reader) -> Result<T, VerifyError> + Sync,
    ) -> Result<Vec<T>, VerifyError> {
        let per_group = self.options.concurrency.max(1);
        let mut out = Vec::with_capacity(self.readers.len());
        for (g, group) in self.readers.chunks_mut(per_group).enumerate() {
            let base = g * per_group;
            if group.len() == 1 {
                out.push(f(base, &mut group[0])?);
                continue;
            }
            let f = &f;
            let answers: Vec<Result<T, VerifyError>> = thread::scope(|s| {
                let handles: Vec<_> = group
                    .iter_mut()
                    .enumerate()
                    .map(|(j, r)| s.spawn(move || f(base + j, r)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(VerifyError::Setup(
                                "a backend reader failed unexpectedly".into(),
                            ))
                        })
                    })
                    .collect()
            });
            for answer in answers {
                out.push(answer?);
            }
        }
        for (summary, reader) in self.summary.backends.iter_mut().zip(&self.readers) {
            summary.queries = reader.queries;
        }
        Ok(out)
    }

    fn listener(
        &mut self,
        progress: &mut Progress,
        found_dbs: &mut BTreeSet<String>,
    ) -> Result<(), VerifyError> {
        let per_backend: Vec<BTreeSet<String>> = self.on_all(|_, r| {
            Ok(r.rows("SHOW DATABASES")?
                .iter()
                .filter_map(|row| row.get("name").map(str::to_string))
                .collect())
        })?;
        let all: BTreeSet<String> = per_backend.iter().flatten().cloned().collect();
        let wanted: Vec<String> = all
            .into_iter()
            .filter(|db| {
                let dropped = self
                    .limit
                    .as_ref()
                    .is_none_or(|l| l.contains_key(db) || l.contains_key(""));
                if !dropped {
                    false
                } else if self.options.databases.is_empty() {
                    db != INTERNAL_DB
                } else {
                    self.options.databases.contains(db)
                }
            })
            .collect();
        for db in wanted {
            found_dbs.insert(db.clone());
            let has: Vec<bool> = per_backend.iter().map(|dbs| dbs.contains(&db)).collect();
            self.database(&db, &has, progress)?;
        }
        Ok(())
    }

    fn place(&self, db: &str, rp: Option<&str>, m: Option<&str>) -> Place {
        Place {
            listener: self.summary.name.clone(),
            database: db.to_string(),
            retention_policy: rp.map(str::to_string),
            measurement: m.map(str::to_string),
            window: None,
        }
    }

    fn database(
        &mut self,
        db: &str,
        has: &[bool],
        progress: &mut Progress,
    ) -> Result<(), VerifyError> {
        self.summary.databases += 1;
        let place = self.place(db, None, None);
        self.differences.extend(compare::presence(
            &place,
            &self.names,
            has,
            What::MissingDatabase,
        ));
        let rps: Vec<BTreeMap<String, String>> = self.on_all(|i, r| {
            if !has[i] {
                return Ok(BTreeMap::new());
            }
            Ok(
                r.rows(&format!("SHOW RETENTION POLICIES ON {}", quote_ident(db)))?
                    .iter()
                    .filter_map(|row| {
                        let settings = format!(
                            "{}/{}/{}",
                            row.get("duration").unwrap_or("?"),
                            row.get("shardGroupDuration").unwrap_or("?"),
                            row.get("replicaN").unwrap_or("?")
                        );
                        Some((row.get("name")?.to_string(), settings))
                    })
                    .collect(),
            )
        })?;
        let measurements: Vec<BTreeSet<String>> = self.on_all(|i, r| {
            if !has[i] {
                return Ok(BTreeSet::new());
            }
            Ok(
                r.rows(&format!("SHOW MEASUREMENTS ON {}", quote_ident(db)))?
                    .iter()
                    .filter_map(|row| row.get("name").map(str::to_string))
                    .collect(),
            )
        })?;
        let all_rps: BTreeSet<&String> = rps.iter().flat_map(|m| m.keys()).collect();
        let all_measurements: BTreeSet<&String> = measurements.iter().flatten().collect();
        self.summary.measurements += all_measurements.len();
        // A backend without the database is reported once, not once more per
        // retention policy and measurement.
        let holders: Vec<usize> = (0..has.len()).filter(|i| has[*i]).collect();
        let holder_names: Vec<String> = holders.iter().map(|i| self.names[*i].clone()).collect();
        for m in &all_measurements {
            let present: Vec<bool> = holders
                .iter()
                .map(|i| measurements[*i].contains(*m))
                .collect();
            let place = self.place(db, None, Some(m));
            self.differences.extend(compare::presence(
                &place,
                &holder_names,
                &present,
                What::MissingMeasurement,
            ));
        }
        for rp in &all_rps {
            let place = self.place(db, Some(rp), None);
            let present: Vec<bool> = holders.iter().map(|i| rps[*i].contains_key(*rp)).collect();
            self.differences.extend(compare::presence(
                &place,
                &holder_names,
                &present,
                What::MissingRetentionPolicy,
            ));
            let settings: Vec<Option<String>> =
                holders.iter().map(|i| rps[*i].get(*rp).cloned()).collect();
            self.differences.extend(compare::setting(
                &place,
                &holder_names,
                &settings,
                |this, reference| What::RetentionPolicySettings { this, reference },
            ));
            let has_rp: Vec<bool> = rps.iter().map(|m| m.contains_key(*rp)).collect();
            for m in &all_measurements {
                self.measurement(db, rp, m, &has_rp, progress)?;
            }
        }
        Ok(())
    }

    fn measurement(
        &mut self,
        db: &str,
        rp: &str,
        m: &str,
        has_rp: &[bool],
        progress: &mut Progress,
    ) -> Result<(), VerifyError> {
        let from = format!("{}.{}.{}", quote_ident(db), quote_ident(rp), quote_ident(m));
        let types: Vec<FieldTypes> = self.on_all(|i, r| {
            if !has_rp[i] {
                return Ok(FieldTypes::new());
            }
            r.field_types(db, rp, m)
        })?;
        // No field keys anywhere: the measurement has no data in this retention policy.
        if types.iter().all(FieldTypes::is_empty) {
            return Ok(());
        }
        let place = self.place(db, Some(rp), Some(m));
        let fields: BTreeSet<&String> = types.iter().flat_map(|t| t.keys()).collect();
        for field in fields {
            let values: Vec<Option<String>> = types.iter().map(|t| t.get(field).cloned()).collect();
            self.differences.extend(compare::setting(
                &place,
                &self.names,
                &values,
                |this, reference| What::FieldType {
                    field: field.clone(),
                    this,
                    reference,
                },
            ));
        }
        let (start, end) = match self.since {
            Some(since) => (since, self.until),
            None => match self.bounds(&from, has_rp)? {
                Some(b) => b,
                None => return Ok(()),
            },
        };
        let spans = match &self.limit {
            None => vec![(start, end)],
            Some(limit) => {
                let dropped = [db, ""].into_iter().flat_map(|d| limit.get(d)).flatten();
                let clipped = dropped
                    .map(|(from, until)| (*from.max(&start), *until.min(&end)))
                    .filter(|(from, until)| from < until)
                    .collect();
                merged(clipped)
            }
        };
        let size = i64::try_from(self.options.window.as_nanos()).unwrap_or(i64::MAX);
        let all_windows = || {
            spans
                .iter()
                .flat_map(move |(start, end)| windows(*start, *end, size))
        };
        let total = all_windows().count();
        for (n, (a, b)) in all_windows().enumerate() {
            progress.show(|| {
                format!(
                    "verify {}: {db}.{rp}.{m} window {}/{total} · {} differences so far",
                    self.summary.name,
                    n + 1,
                    self.differences.len()
                )
            });
            let statement =
                format!("SELECT * FROM {from} WHERE time >= {a} AND time < {b} GROUP BY *");
            let digests: Vec<Digest> = self.on_all(|i, r| {
                if !has_rp[i] {
                    return Ok(Digest::default());
                }
                let mut folder = Folder::new(&types[i]);
                r.query(&statement, &mut folder)?;
                Ok(folder.digest)
            })?;
            self.summary.windows += 1;
            for (summary, d) in self.summary.backends.iter_mut().zip(&digests) {
                summary.points += d.points;
            }
            let place = Place {
                window: Some((a, b)),
                ..place.clone()
            };
            self.differences
                .extend(compare::window(&place, &self.names, &digests));
        }
        Ok(())
    }

    /// For `--since all`: from the earliest point on any backend to just past the
    /// latest, or `None` when no backend has a point.
    fn bounds(&mut self, from: &str, has_rp: &[bool]) -> Result<Option<(i64, i64)>, VerifyError> {
        let until = self.until;
        let per_backend: Vec<Option<(i64, i64)>> = self.on_all(|i, r| {
            if !has_rp[i] {
                return Ok(None);
            }
            let mut ends = [0i64; 2];
            for (end, order) in ends.iter_mut().zip(["ASC", "DESC"]) {
                let rows = r.rows(&format!(
                    "SELECT * FROM {from} WHERE time < {until} ORDER BY time {order} LIMIT 1"
                ))?;
                let Some(time) = rows.first().and_then(|row| row.get("time")) else {
                    return Ok(None);
                };
                *end = time.parse().map_err(|_| VerifyError::Backend {
                    backend: r.name.clone(),
                    url: r.url.clone(),
                    message: format!("a time that is not nanoseconds: {time:?}"),
                })?;
            }
            Ok(Some((ends[0], ends[1].saturating_add(1))))
        })?;
        let start = per_backend.iter().flatten().map(|b| b.0).min();
        let end = per_backend.iter().flatten().map(|b| b.1).max();
        Ok(start.zip(end))
    }
}

/// `[start, end)` cut at multiples of `size` since the epoch, so that two runs over
/// different ranges compare the same windows.
pub(crate) fn windows(start: i64, end: i64, size: i64) -> impl Iterator<Item = (i64, i64)> {
    let size = size.max(1);
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let next = at
            .div_euclid(size)
            .saturating_add(1)
            .saturating_mul(size)
            .min(end);
        let window = (at, next);
        at = next;
        Some(window)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_spans_join_what_overlaps_or_touches() {
        assert_eq!(
            merged(vec![(30, 40), (0, 10), (10, 15), (5, 12), (41, 50)]),
            [(0, 15), (30, 40), (41, 50)]
        );
        assert_eq!(merged(vec![]), []);
    }

    #[test]
    fn windows_are_aligned_and_cover_the_range() {
        let w: Vec<_> = windows(5, 32, 10).collect();
        assert_eq!(w, [(5, 10), (10, 20), (20, 30), (30, 32)]);
        assert_eq!(
            windows(-15, 0, 10).collect::<Vec<_>>(),
            [(-15, -10), (-10, 0)]
        );
        assert_eq!(windows(3, 3, 10).count(), 0);
        assert_eq!(windows(i64::MAX - 5, i64::MAX, 10).count(), 1);
    }
}
