//! A rebuild as JSON, for `/admin/rebuild`, `/status` and the `rebuild` command.

use std::fmt::Write as _;

use super::{Counters, Job, State};
use crate::metrics::unix_ms;
use crate::observe::{json_array, json_str, Obj};

/// Append one rebuild's status object to `out`.
pub fn render(out: &mut String, job: &Job) {
    let d = job.detail();
    let p = &job.params;
    let c = &job.counters;
    let mut o = Obj::open(out);
    o.str("output", &p.output);
    o.str("listener", &p.listener);
    o.str("source", &p.source);
    o.str("state", d.state.as_str());
    o.str("phase", d.phase);
    json_array(o.key("databases"), &p.databases, |out, db| {
        json_str(out, db)
    });
    match p.since {
        Some(s) => {
            let _ = write!(o.key("since_ns"), "{s}");
        }
        None => o.key("since_ns").push_str("null"),
    }
    let _ = write!(o.key("until_ns"), "{}", p.until);
    let _ = write!(o.key("window_ns"), "{}", p.window);
    o.bool("dropped_only", p.dropped);
    let total = Counters::get(&c.windows_total);
    let done = Counters::get(&c.windows_done);
    o.num("windows_total", total);
    o.num("windows_done", done);
    o.num("windows_copied", Counters::get(&c.windows_copied));
    o.num("windows_equal", Counters::get(&c.windows_equal));
    o.num("windows_redone", Counters::get(&c.windows_redone));
    let points = Counters::get(&c.points_copied);
    o.num("points_copied", points);
    o.num("bytes_copied", Counters::get(&c.bytes_copied));
    o.num("queries", Counters::get(&c.queries));
    o.num("retries", Counters::get(&c.retries));
    // Rates over this run only: a resumed rebuild's earlier work took an unknown time.
    let end_ms = d.finished_ms.unwrap_or_else(unix_ms);
    let seconds = end_ms.saturating_sub(d.run_started_ms) as f64 / 1000.0;
    let rate = if seconds > 0.0 {
        points.saturating_sub(d.points_before_run) as f64 / seconds
    } else {
        0.0
    };
    let _ = write!(o.key("rate_points_per_s"), "{rate:.1}");
    let windows_rate = if seconds > 0.0 {
        done.saturating_sub(d.windows_before_run) as f64 / seconds
    } else {
        0.0
    };
    if d.state == State::Running && d.phase == "copying" && windows_rate > 0.0 {
        let left = total.saturating_sub(done) as f64 / windows_rate;
        let _ = write!(o.key("eta_seconds"), "{left:.1}");
    } else {
        o.key("eta_seconds").push_str("null");
    }
    o.num("started_ms", d.started_ms);
    match d.finished_ms {
        Some(f) => o.num("finished_ms", f),
        None => o.key("finished_ms").push_str("null"),
    }
    o.bool("resumed", d.resumed);
    match &d.current {
        Some(cur) => o.str("current", cur),
        None => o.key("current").push_str("null"),
    }
    match &d.error {
        Some(e) => o.str("error", e),
        None => o.key("error").push_str("null"),
    }
    json_array(o.key("errors"), &d.errors, |out, (at, message)| {
        let mut e = Obj::open(out);
        e.num("at_ms", *at);
        e.str("message", message);
        e.close();
    });
    o.close();
}

/// `{"rebuilds":[…]}`.
pub fn render_all(jobs: &[std::sync::Arc<Job>]) -> String {
    let mut out = String::with_capacity(64 + 900 * jobs.len());
    out.push_str("{\"rebuilds\":");
    json_array(&mut out, jobs, |out, job| render(out, job));
    out.push('}');
    out
}
