//! The rebuild state file: what was asked, how far it got, and how it ended, one
//! `key value` per line with values percent-encoded (names may hold any byte),
//! replaced whole ([`crate::spool::replace_file`]) so a crash leaves the old or the new
//! state, never half of one.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Counters, Cursor, Detail, Job, Params, State};
use crate::http::write::{percent_decode, percent_encode_into};

const VERSION: &str = "influx-relay-rebuild 1";

/// What a state file holds.
pub struct Loaded {
    pub params: Params,
    pub detail: Detail,
    pub counters: Counters,
}

pub fn save(path: &Path, job: &Job) -> io::Result<()> {
    let text = encode(&job.params, &job.detail(), &job.counters);
    crate::spool::replace_file(path, text.as_bytes())
}

fn put(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push(' ');
    percent_encode_into(out, value);
    out.push('\n');
}

pub fn encode(p: &Params, d: &Detail, c: &Counters) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(VERSION);
    out.push('\n');
    put(&mut out, "listener", &p.listener);
    put(&mut out, "output", &p.output);
    put(&mut out, "source", &p.source);
    for db in &p.databases {
        put(&mut out, "database", db);
    }
    if let Some(since) = p.since {
        put(&mut out, "since", &since.to_string());
    }
    put(&mut out, "until", &p.until.to_string());
    put(&mut out, "window", &p.window.to_string());
    put(&mut out, "rate", &p.rate.to_string());
    put(&mut out, "chunk_size", &p.chunk_size.to_string());
    put(
        &mut out,
        "give_up_after_ms",
        &p.give_up_after.as_millis().to_string(),
    );
    put(&mut out, "dropped", if p.dropped { "1" } else { "0" });
    put(&mut out, "state", d.state.as_str());
    put(&mut out, "started_ms", &d.started_ms.to_string());
    if let Some(f) = d.finished_ms {
        put(&mut out, "finished_ms", &f.to_string());
    }
    if let Some(e) = &d.error {
        put(&mut out, "error", e);
    }
    for (at, message) in &d.errors {
        put(&mut out, "logged", &format!("{at} {message}"));
    }
    if let Some(cur) = &d.cursor {
        put(&mut out, "cursor_database", &cur.database);
        put(&mut out, "cursor_retention_policy", &cur.retention_policy);
        put(&mut out, "cursor_measurement", &cur.measurement);
        put(&mut out, "cursor_window", &cur.window_start.to_string());
    }
    for (key, counter) in counters(c) {
        let _ = writeln!(out, "{key} {}", counter.load(Ordering::Relaxed));
    }
    out
}

fn counters(c: &Counters) -> [(&'static str, &std::sync::atomic::AtomicU64); 9] {
    [
        ("windows_total", &c.windows_total),
        ("windows_done", &c.windows_done),
        ("windows_copied", &c.windows_copied),
        ("windows_equal", &c.windows_equal),
        ("windows_redone", &c.windows_redone),
        ("points_copied", &c.points_copied),
        ("bytes_copied", &c.bytes_copied),
        ("queries", &c.queries),
        ("retries", &c.retries),
    ]
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

pub fn load(path: &Path) -> io::Result<Loaded> {
    decode(&std::fs::read_to_string(path)?)
}

/// A state file's text, checked.
pub fn decode(text: &str) -> io::Result<Loaded> {
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return Err(bad("not a rebuild state file of this version"));
    }
    let mut p = Params {
        listener: String::new(),
        output: String::new(),
        source: String::new(),
        databases: Vec::new(),
        since: None,
        until: 0,
        window: 0,
        rate: 0.0,
        chunk_size: 0,
        give_up_after: Duration::ZERO,
        dropped: false,
    };
    let mut d = Detail {
        state: State::Failed,
        phase: "finished",
        current: None,
        error: None,
        errors: VecDeque::new(),
        started_ms: 0,
        finished_ms: None,
        cursor: None,
        resumed: false,
        run_started_ms: 0,
        points_before_run: 0,
        windows_before_run: 0,
    };
    let c = Counters::default();
    let mut cursor = Cursor::default();
    let mut has_cursor = false;
    let mut state = None;
    let num = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| bad("a number that is not one"))
    };
    for line in lines {
        let (key, raw) = line.split_once(' ').unwrap_or((line, ""));
        let v = percent_decode(raw);
        match key {
            "listener" => p.listener = v,
            "output" => p.output = v,
            "source" => p.source = v,
            "database" => p.databases.push(v),
            "since" => p.since = Some(num(&v)?),
            "until" => p.until = num(&v)?,
            "window" => p.window = num(&v)?,
            "rate" => p.rate = v.parse().map_err(|_| bad("rate"))?,
            "chunk_size" => p.chunk_size = num(&v)? as usize,
            "give_up_after_ms" => p.give_up_after = Duration::from_millis(num(&v)? as u64),
            "dropped" => p.dropped = v == "1",
            "state" => state = State::parse(&v),
            "started_ms" => d.started_ms = num(&v)? as u64,
            "finished_ms" => d.finished_ms = Some(num(&v)? as u64),
            "error" => d.error = Some(v),
            "logged" => {
                let (at, message) = v.split_once(' ').unwrap_or(("0", &v));
                d.errors
                    .push_back((at.parse().unwrap_or(0), message.to_string()));
            }
            "cursor_database" => {
                cursor.database = v;
                has_cursor = true;
            }
            "cursor_retention_policy" => cursor.retention_policy = v,
            "cursor_measurement" => cursor.measurement = v,
            "cursor_window" => cursor.window_start = num(&v)?,
            other => {
                if let Some((_, counter)) = counters(&c).into_iter().find(|(k, _)| *k == other) {
                    counter.store(num(&v)? as u64, Ordering::Relaxed);
                }
            }
        }
    }
    d.state = state.ok_or_else(|| bad("no state"))?;
    if d.state == State::Running {
        d.phase = "planning";
    }
    if has_cursor {
        d.cursor = Some(cursor);
    }
    if p.output.is_empty() || p.source.is_empty() || p.window <= 0 {
        return Err(bad("an incomplete rebuild state"));
    }
    Ok(Loaded {
        params: p,
        detail: d,
        counters: c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_whatever_the_names() {
        let p = Params {
            listener: "http one".into(),
            output: "b\n%x".into(),
            source: "a".into(),
            databases: vec!["x y".into(), "z".into()],
            since: Some(-5),
            until: 1_700_000_000_000_000_000,
            window: 3_600_000_000_000,
            rate: 2.5,
            chunk_size: 100,
            give_up_after: Duration::from_secs(3),
            dropped: true,
        };
        let mut errors = VecDeque::new();
        errors.push_back((7, "it broke\nbadly".to_string()));
        let d = Detail {
            state: State::Running,
            phase: "copying",
            current: None,
            error: None,
            errors,
            started_ms: 11,
            finished_ms: None,
            cursor: Some(Cursor {
                database: "x y".into(),
                retention_policy: "autogen".into(),
                measurement: "m,1".into(),
                window_start: 42,
            }),
            resumed: false,
            run_started_ms: 0,
            points_before_run: 0,
            windows_before_run: 0,
        };
        let c = Counters::default();
        c.points_copied.store(99, Ordering::Relaxed);
        let back = decode(&encode(&p, &d, &c)).expect("decodes");
        assert_eq!(back.params, p);
        assert_eq!(back.detail.cursor, d.cursor);
        assert_eq!(back.detail.errors, d.errors);
        assert_eq!(back.detail.state, State::Running);
        assert_eq!(back.counters.points_copied.load(Ordering::Relaxed), 99);
    }

    #[test]
    fn damaged_files_are_refused() {
        assert!(decode("").is_err());
        assert!(decode("something else\n").is_err());
        assert!(decode(&format!("{VERSION}\noutput b\n")).is_err());
        assert!(decode(&format!("{VERSION}\nstate running\nuntil x\n")).is_err());
    }
}
