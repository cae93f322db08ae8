//! What `verify` found, as a table for people or one JSON document for scripts.

use std::fmt::Write;

use super::compare::{Difference, What};
use super::time::format_rfc3339;

#[derive(Debug, Default)]
pub struct Report {
    /// Start of the checked range; `None` for all data.
    pub since: Option<i64>,
    /// End of the checked range (exclusive).
    pub until: i64,
    pub listeners: Vec<ListenerSummary>,
    pub differences: Vec<Difference>,
}

#[derive(Debug, Default)]
pub struct ListenerSummary {
    pub name: String,
    pub backends: Vec<BackendSummary>,
    pub databases: usize,
    pub measurements: usize,
    /// Time windows compared (each on every backend).
    pub windows: u64,
}

#[derive(Debug, Default)]
pub struct BackendSummary {
    pub name: String,
    pub url: String,
    /// Points read from it in the checked range.
    pub points: u64,
    pub queries: u64,
}

impl Report {
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }
}

fn describe(d: &Difference) -> String {
    let r = &d.reference;
    match &d.what {
        What::MissingDatabase => format!("no such database ({r} has it)"),
        What::MissingRetentionPolicy => format!("no such retention policy ({r} has it)"),
        What::RetentionPolicySettings { this, reference } => {
            format!(
                "retention policy is {this}, on {r} {reference} (duration/shard group/replication)"
            )
        }
        What::MissingMeasurement => format!("no such measurement ({r} has it)"),
        What::FieldType {
            field,
            this,
            reference,
        } => format!("field {field:?} is {this}, on {r} {reference}"),
        What::Lacks {
            points,
            reference_points,
        } => format!(
            "lacks {} points: has {points}, {r} has {reference_points}",
            reference_points - points
        ),
        What::Extra {
            points,
            reference_points,
        } => format!(
            "has {} points more: {points}, {r} has {reference_points}",
            points - reference_points
        ),
        What::Differs { points } => {
            format!("{points} points, as many as {r}, but other points or values")
        }
    }
}

fn window_text(window: Option<(i64, i64)>) -> String {
    match window {
        Some((start, end)) => format!("{} .. {}", format_rfc3339(start), format_rfc3339(end)),
        None => "-".into(),
    }
}

/// The table of differences (nothing when there is none) and the summary lines.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    if !report.differences.is_empty() {
        let header = [
            "LISTENER",
            "DATABASE",
            "RP",
            "MEASUREMENT",
            "WINDOW (UTC)",
            "BACKEND",
            "DIFFERENCE",
        ];
        let rows: Vec<[String; 7]> = report
            .differences
            .iter()
            .map(|d| {
                [
                    d.place.listener.clone(),
                    d.place.database.clone(),
                    d.place
                        .retention_policy
                        .clone()
                        .unwrap_or_else(|| "-".into()),
                    d.place.measurement.clone().unwrap_or_else(|| "-".into()),
                    window_text(d.place.window),
                    d.backend.clone(),
                    describe(d),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut line = |cells: &[&str]| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", l.trim_end());
        };
        line(&header);
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(&cells);
        }
        out.push('\n');
    }
    let range = match report.since {
        Some(since) => format!(
            "{} .. {}",
            format_rfc3339(since),
            format_rfc3339(report.until)
        ),
        None => format!("all data before {}", format_rfc3339(report.until)),
    };
    for l in &report.listeners {
        let points: Vec<String> = l
            .backends
            .iter()
            .map(|b| format!("{} {}", b.name, b.points))
            .collect();
        let _ = writeln!(
            out,
            "listener {:?}: {}, {}, {} in {range}; points read: {}",
            l.name,
            plural(l.databases as u64, "database"),
            plural(l.measurements as u64, "measurement"),
            plural(l.windows, "window"),
            points.join(", ")
        );
    }
    if report.differences.is_empty() {
        out.push_str("identical\n");
    } else {
        let _ = writeln!(
            out,
            "{}",
            plural(report.differences.len() as u64, "difference")
        );
    }
    out
}

fn plural(n: u64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    crate::observe::json_str(&mut out, s);
    out
}

fn opt_string(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "null".into(), json_string)
}

/// The whole report as one JSON document (one line).
pub fn json(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"identical\":{},\"since\":{},\"until\":{},\"listeners\":[",
        report.identical(),
        report
            .since
            .map_or_else(|| "null".into(), |s| json_string(&format_rfc3339(s))),
        json_string(&format_rfc3339(report.until))
    );
    for (i, l) in report.listeners.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"name\":{},\"databases\":{},\"measurements\":{},\"windows\":{},\"backends\":[",
            json_string(&l.name),
            l.databases,
            l.measurements,
            l.windows
        );
        for (j, b) in l.backends.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"name\":{},\"url\":{},\"points\":{},\"queries\":{}}}",
                json_string(&b.name),
                json_string(&b.url),
                b.points,
                b.queries
            );
        }
        out.push_str("]}");
    }
    out.push_str("],\"differences\":[");
    for (i, d) in report.differences.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let window = match d.place.window {
            Some((start, end)) => format!(
                "{{\"start\":{},\"end\":{},\"start_ns\":{start},\"end_ns\":{end}}}",
                json_string(&format_rfc3339(start)),
                json_string(&format_rfc3339(end))
            ),
            None => "null".into(),
        };
        let _ = write!(
            out,
            "{{\"kind\":{},\"listener\":{},\"database\":{},\"retention_policy\":{},\"measurement\":{},\"window\":{window},\"backend\":{},\"reference\":{}",
            json_string(d.what.kind()),
            json_string(&d.place.listener),
            json_string(&d.place.database),
            opt_string(&d.place.retention_policy),
            opt_string(&d.place.measurement),
            json_string(&d.backend),
            json_string(&d.reference),
        );
        match &d.what {
            What::Lacks {
                points,
                reference_points,
            }
            | What::Extra {
                points,
                reference_points,
            } => {
                let _ = write!(
                    out,
                    ",\"points\":{points},\"reference_points\":{reference_points}"
                );
            }
            What::Differs { points } => {
                let _ = write!(out, ",\"points\":{points},\"reference_points\":{points}");
            }
            What::RetentionPolicySettings { this, reference } => {
                let _ = write!(
                    out,
                    ",\"value\":{},\"reference_value\":{}",
                    json_string(this),
                    json_string(reference)
                );
            }
            What::FieldType {
                field,
                this,
                reference,
            } => {
                let _ = write!(
                    out,
                    ",\"field\":{},\"value\":{},\"reference_value\":{}",
                    json_string(field),
                    json_string(this),
                    json_string(reference)
                );
            }
            What::MissingDatabase | What::MissingRetentionPolicy | What::MissingMeasurement => {}
        }
        let _ = write!(out, ",\"text\":{}}}", json_string(&describe(d)));
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::compare::Place;
    use super::*;

    fn sample() -> Report {
        Report {
            since: Some(0),
            until: 7_200_000_000_000,
            listeners: vec![ListenerSummary {
                name: "http".into(),
                backends: vec![
                    BackendSummary {
                        name: "a".into(),
                        url: "http://a/write".into(),
                        points: 10,
                        queries: 4,
                    },
                    BackendSummary {
                        name: "b\"".into(),
                        url: "http://b/write".into(),
                        points: 7,
                        queries: 4,
                    },
                ],
                databases: 1,
                measurements: 1,
                windows: 2,
            }],
            differences: vec![Difference {
                place: Place {
                    listener: "http".into(),
                    database: "db".into(),
                    retention_policy: Some("autogen".into()),
                    measurement: Some("cpu".into()),
                    window: Some((0, 3_600_000_000_000)),
                },
                backend: "b\"".into(),
                reference: "a".into(),
                what: What::Lacks {
                    points: 7,
                    reference_points: 10,
                },
            }],
        }
    }

    #[test]
    fn table_names_backend_place_and_counts() {
        let text = table(&sample());
        assert!(text.starts_with("LISTENER  DATABASE  RP "), "{text}");
        assert!(
            text.contains("1970-01-01T00:00:00Z .. 1970-01-01T01:00:00Z  b\"       lacks 3 points: has 7, a has 10"),
            "{text}"
        );
        assert!(text.ends_with("1 difference\n"), "{text}");
    }

    #[test]
    fn json_is_one_escaped_line() {
        let text = json(&sample());
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains("\"backend\":\"b\\\"\""), "{text}");
        assert!(text.contains("\"kind\":\"lacks-points\""), "{text}");
        assert!(text.starts_with("{\"identical\":false,"), "{text}");
    }
}
