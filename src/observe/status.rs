//! `/status`: every counter, queue and error as JSON, for people (and the status page).

use super::*;

/// `GET /status`: everything the relay knows, as JSON. 200 or 503 as `/health`, so the
/// status code alone still says whether the relay can deliver. Times are RFC 3339 UTC
/// with milliseconds; durations are seconds.
pub fn status(view: &View) -> Page {
    let ok = view.healthy();
    let mut out = String::with_capacity(4096);
    let mut top = Obj::open(&mut out);
    top.str("status", pass_fail(ok));
    top.str("version", view.version);
    top.str("time", &rfc3339(view.now_ms));
    top.secs("uptime_seconds", view.uptime.as_secs_f64());
    top.str(
        "started",
        &rfc3339(
            view.now_ms
                .saturating_sub(u64::try_from(view.uptime.as_millis()).unwrap_or(u64::MAX)),
        ),
    );
    json_array(top.key("http"), &view.http, |out, l| {
        http_status(out, l, view.now_ms)
    });
    json_array(top.key("udp"), &view.udp, udp_status);
    top.close();
    json_page(ok, out)
}

pub(super) fn http_status(out: &mut String, l: &HttpView, now_ms: u64) {
    let t = HttpTotals::of(l.loops);
    let mut o = Obj::open(out);
    o.str("name", l.name);
    o.str("bind_addr", &l.bind_addr.to_string());
    o.str("ack", ack_name(l.ack));
    o.str("status", pass_fail(l.healthy()));
    o.num("requests", t.requests);
    let mut answers = Obj::open(o.key("answers"));
    answers.num("2xx", t.answered_2xx);
    answers.num("4xx", t.answered_4xx);
    answers.num("5xx", t.answered_5xx);
    answers.close();
    o.num("points_in", t.points_in);
    o.num("bytes_in", t.bytes_in);
    o.num("open_connections", l.open_connections);
    o.num("rejected_connections", t.connections_rejected);
    o.num("held_changes", t.changes_held);
    o.num("held_changes_too_long", t.changes_held_too_long);
    let mut latency = Obj::open(o.key("write_latency"));
    latency.num("count", t.latency_count());
    latency.secs("sum_seconds", t.latency_sum_us as f64 / 1e6);
    latency.close();
    json_array(o.key("backends"), &l.backends, |out, b| {
        backend_status(out, b, now_ms)
    });
    o.close();
}

pub(super) fn backend_status(out: &mut String, b: &BackendView, now_ms: u64) {
    let s = b.stats;
    let mut o = Obj::open(out);
    o.str("name", b.name);
    o.str("location", b.location);
    o.str("state", b.state().as_str());
    o.num("queued_requests", s.queued_requests.get());
    o.num("queued_ram_bytes", s.ram_queue_bytes.get());
    o.num("queued_spool_bytes", s.spool_bytes.get());
    o.num("spool_limit_bytes", b.spool_limit);
    o.str("full_queue_policy", b.full_queue);
    o.str("api", b.api);
    o.bool("reads", b.reads);
    o.secs("oldest_queued_seconds", oldest_queued_seconds(s, now_ms));
    o.num("delivered_requests", s.delivered_requests.get());
    o.num("delivered_points", s.delivered_points.get());
    o.num("delivered_bytes", s.delivered_bytes.get());
    o.num("rejected_requests", s.rejected_requests.get());
    o.num("failed_requests", s.failed_requests.get());
    o.num("retries", s.retries.get());
    o.num("spooled_points", s.spooled_points.get());
    o.num("spool_appended_bytes", s.spool_appended_bytes.get());
    o.num("spool_syncs", s.spool_syncs.get());
    o.num("replayed_points", s.replayed_points.get());
    let mut dropped = Obj::open(o.key("dropped_points"));
    for (reason, get) in BACKEND_DROPS {
        dropped.num(reason, get(s));
    }
    dropped.close();
    // Where the dropped points were: what to repair on this backend.
    json_array(o.key("dropped_ranges"), b.dropped.ranges(), |out, r| {
        let mut o = Obj::open(out);
        o.str("database", &r.database);
        o.str("retention_policy", &r.retention_policy);
        o.str("from", &rfc3339_ns(r.from_ns));
        o.str("until", &rfc3339_ns(r.until_ns));
        let _ = write!(o.key("from_ns"), "{}", r.from_ns);
        let _ = write!(o.key("until_ns"), "{}", r.until_ns);
        o.num("points", r.points);
        o.num("first_dropped_ms", r.first_dropped_ms);
        o.num("last_dropped_ms", r.last_dropped_ms);
        o.close();
    });
    // Cloned out so the worker that records the next failure never waits on rendering.
    let last = s.last_error.lock().ok().and_then(|e| e.clone());
    match last {
        Some(e) => {
            let mut err = Obj::open(o.key("last_error"));
            err.str("message", &e.message);
            err.str("at", &rfc3339(e.at_ms));
            err.secs(
                "age_seconds",
                now_ms.saturating_sub(e.at_ms) as f64 / 1000.0,
            );
            err.close();
        }
        None => o.key("last_error").push_str("null"),
    }
    match &b.rebuild {
        Some(job) => crate::rebuild::render(o.key("rebuild"), job),
        None => o.key("rebuild").push_str("null"),
    }
    o.close();
}

pub(super) fn udp_status(out: &mut String, l: &UdpView) {
    let t = UdpTotals::of(l.loops);
    let mut o = Obj::open(out);
    o.str("name", l.name);
    o.str("bind_addr", &l.bind_addr.to_string());
    o.num("datagrams_in", t.datagrams_in);
    o.num("bytes_in", t.bytes_in);
    o.num("lines_in", t.lines_in);
    o.num("bad_lines", t.bad_lines);
    o.num("truncated_datagrams", t.truncated);
    o.num("kernel_dropped_datagrams", t.kernel_drops);
    o.num("receive_errors", t.recv_errors);
    json_array(o.key("outputs"), &l.outputs, |out, u| {
        let s = u.stats;
        let mut o = Obj::open(out);
        o.str("name", u.name);
        o.str("location", &u.location.to_string());
        o.num("mtu", u.mtu as u64);
        o.num("datagrams_out", s.datagrams_out.get());
        o.num("lines_out", s.lines_out.get());
        o.num("bytes_out", s.bytes_out.get());
        o.num("send_errors", s.send_errors.get());
        let mut dropped = Obj::open(o.key("dropped_lines"));
        for (reason, get) in UDP_OUTPUT_DROPS {
            dropped.num(reason, get(s));
        }
        dropped.close();
        o.close();
    });
    o.close();
}

/// Unix milliseconds as RFC 3339 UTC: `2024-02-29T13:05:09.042Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        unix_ms % 1000
    )
}

/// Nanoseconds since the epoch as RFC 3339 UTC with all nine digits:
/// `2024-02-29T13:05:09.042000001Z`. Any `i64`, so dates before 1970 too.
pub fn rfc3339_ns(ns: i64) -> String {
    const DAYS_PER_ERA: i64 = 146_097;
    let secs = ns.div_euclid(1_000_000_000);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Dates repeat every 400 years: count from a later era when `days` is negative.
    let eras = if days < 0 {
        days / -DAYS_PER_ERA + 1
    } else {
        0
    };
    let (year, month, day) = civil_from_days((days + eras * DAYS_PER_ERA) as u64);
    format!(
        "{:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        year as i64 - eras * 400,
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        ns.rem_euclid(1_000_000_000)
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01. Counts in 400-year eras
/// (146 097 days each) of years that start on 1 March, so the leap day is the last day
/// of a year and month lengths follow a fixed 153-days-per-5-months pattern.
pub(super) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 1970-01-01 is day 719 468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
