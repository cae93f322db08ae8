use super::prometheus::*;
use super::status::*;
use super::*;
use crate::batch::Kind;
use crate::dropped::DroppedLog;
use crate::metrics::LastError;

/// Stats that outlive the views borrowing them.
struct Fixture {
    loops: Vec<Arc<ListenerStats>>,
    backends: Vec<BackendStats>,
    udp_loops: Vec<Arc<UdpListenerStats>>,
    udp_out: UdpOutputStats,
    /// One per backend; their files would be in `_dir`, never written by these tests.
    dropped: Vec<DroppedLog>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(backends: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Fixture {
            loops: vec![Arc::default(), Arc::default()],
            backends: (0..backends).map(|_| BackendStats::default()).collect(),
            udp_loops: vec![Arc::default(), Arc::default()],
            udp_out: UdpOutputStats::default(),
            dropped: (0..backends)
                .map(|i| DroppedLog::open(dir.path().join(i.to_string())))
                .collect(),
            _dir: dir,
        }
    }

    fn view(&self) -> View<'_> {
        View {
            version: "1.2.3",
            uptime: Duration::from_millis(61_500),
            now_ms: 1_700_000_010_000,
            shutting_down: false,
            tls_handshake_failures: 0,
            http: vec![HttpView {
                name: "in",
                bind_addr: "127.0.0.1:9096".parse().unwrap(),
                ack: Ack::Any,
                loops: &self.loops,
                open_connections: 3,
                backends: self
                    .backends
                    .iter()
                    .enumerate()
                    .map(|(i, stats)| BackendView {
                        name: ["a", "b", "c"][i],
                        location: "http://127.0.0.1:8086/write",
                        spool_limit: 64 << 20,
                        full_queue: "hold-spool",
                        api: "v1",
                        reads: true,
                        stats,
                        rebuilding: false,
                        rebuild: None,
                        dropped: &self.dropped[i],
                    })
                    .collect(),
            }],
            udp: vec![UdpView {
                name: "udp-in",
                bind_addr: "127.0.0.1:8089".parse().unwrap(),
                loops: &self.udp_loops,
                outputs: vec![UdpOutputView {
                    name: "u0",
                    location: "127.0.0.1:9089".parse().unwrap(),
                    mtu: 1024,
                    stats: &self.udp_out,
                }],
            }],
        }
    }
}

fn body(page: &Page) -> String {
    String::from_utf8(page.body.clone()).unwrap()
}

/// Sample lines of `/metrics` as (name with labels, value).
fn samples(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit_once(' ').unwrap())
        .collect()
}

fn sample<'t>(text: &'t str, series: &str) -> &'t str {
    let found = samples(text).into_iter().find(|(s, _)| *s == series);
    found
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .1
}

#[test]
fn backend_state_follows_down_flag_and_queue() {
    let s = BackendStats::default();
    assert_eq!(BackendState::of(&s), BackendState::Up);
    s.queued_requests.set(2);
    assert_eq!(BackendState::of(&s), BackendState::CatchingUp);
    s.queued_requests.set(0);
    s.queued_since_ms.set(1);
    assert_eq!(BackendState::of(&s), BackendState::CatchingUp);
    s.down.set(1);
    assert_eq!(BackendState::of(&s), BackendState::Down);
    assert_eq!(BackendState::Down.as_str(), "down");
    assert_eq!(BackendState::CatchingUp.as_str(), "catching-up");
}

#[test]
fn health_passes_while_one_backend_per_listener_is_up_and_empty() {
    let f = Fixture::new(2);
    let page = health(&f.view());
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, JSON);
    assert!(body(&page).starts_with(r#"{"status":"pass","listeners":[{"name":"in""#));
    let tail = format!(
        r#"],"name":"influxdb","message":"ready for queries and writes","checks":[],"version":"{}","#,
        crate::http::response::INFLUXDB_VERSION
    );
    assert!(body(&page).contains(&tail), "{}", body(&page));

    f.backends[0].down.set(1);
    let page = health(&f.view());
    assert_eq!(page.status, 200, "{}", body(&page));
    assert!(body(&page).contains(r#"{"name":"a","state":"down","#));
}

#[test]
fn health_fails_with_detail_when_no_backend_is_up_and_empty() {
    let f = Fixture::new(2);
    f.backends[0].down.set(1);
    f.backends[1].queued_requests.set(4);
    f.backends[1].ram_queue_bytes.set(100);
    f.backends[1].spool_bytes.set(20);
    f.backends[1].queued_since_ms.set(1_700_000_007_500);
    let page = health(&f.view());
    assert_eq!(page.status, 503);
    let text = body(&page);
    assert!(text.starts_with(r#"{"status":"fail","reason":"#), "{text}");
    assert!(text.contains(r#""name":"in","status":"fail""#), "{text}");
    assert!(
        text.contains(
            r#"{"name":"b","state":"catching-up","queued_requests":4,"queued_bytes":120,"oldest_queued_seconds":2.500}"#
        ),
        "{text}"
    );
}

#[test]
fn health_fails_while_shutting_down() {
    let f = Fixture::new(1);
    let mut view = f.view();
    view.shutting_down = true;
    let page = health(&view);
    assert_eq!(page.status, 503);
    assert!(body(&page).contains(r#""reason":"shutting down""#));
}

#[test]
fn status_sums_loops_and_shows_backend_detail() {
    let f = Fixture::new(2);
    f.loops[0].requests.add(2);
    f.loops[1].requests.add(3);
    f.loops[0].answered_2xx.add(4);
    f.loops[1].answered_4xx.inc();
    f.loops[1].points_in.add(30);
    f.loops[0]
        .write_latency
        .observe(Duration::from_millis(1500));
    let b = &f.backends[1];
    b.delivered_requests.add(7);
    b.dropped_spool_full.add(9);
    b.down.set(1);
    *b.last_error.lock().unwrap() = Some(LastError {
        message: "connection refused \"x\"".into(),
        at_ms: 1_700_000_000_123,
    });
    f.udp_loops[1].lines_in.add(5);
    f.udp_out.lines_too_long.add(2);
    f.dropped[1].record_parts(
        Kind::Write,
        "db=my+db",
        b"m v=1 1700000000000000001\nm v=2 1700000000000000002\n",
        2,
        1_700_000_000_500,
    );

    let page = status(&f.view());
    assert_eq!(page.status, 200);
    let text = body(&page);
    for part in [
        r#"{"status":"pass","version":"1.2.3","time":"2023-11-14T22:13:30.000Z","uptime_seconds":61.500,"started":"2023-11-14T22:12:28.500Z","http":[{"name":"in","bind_addr":"127.0.0.1:9096","ack":"any","status":"pass","requests":5,"answers":{"2xx":4,"4xx":1,"5xx":0},"points_in":30,"#,
        r#""open_connections":3,"rejected_connections":0,"held_changes":0,"held_changes_too_long":0,"write_latency":{"count":1,"sum_seconds":1.500}"#,
        r#"{"name":"b","location":"http://127.0.0.1:8086/write","state":"down","#,
        r#""queued_spool_bytes":0,"spool_limit_bytes":67108864,"full_queue_policy":"hold-spool","api":"v1","reads":true,"#,
        r#""delivered_requests":7,"#,
        r#""dropped_points":{"queue_full":0,"buffer_full":0,"spool_full":9,"#,
        r#""last_error":{"message":"connection refused \"x\"","at":"2023-11-14T22:13:20.123Z","age_seconds":9.877}"#,
        r#""last_error":null"#,
        r#""dropped_ranges":[{"database":"my db","retention_policy":"","from":"2023-11-14T22:13:20.000000001Z","until":"2023-11-14T22:13:20.000000003Z","from_ns":1700000000000000001,"until_ns":1700000000000000003,"points":2,"#,
        r#""dropped_ranges":[],"#,
        r#""udp":[{"name":"udp-in","bind_addr":"127.0.0.1:8089","datagrams_in":0,"bytes_in":0,"lines_in":5,"#,
        r#""dropped_lines":{"too_long":2,"queue_full":0,"send_failed":0}"#,
    ] {
        assert!(text.contains(part), "missing {part}\nin {text}");
    }
}

#[test]
fn status_page_is_self_contained_and_reads_what_status_renders() {
    let page = std::str::from_utf8(STATUS_PAGE).unwrap();
    assert!(
        page.len() < 16 << 10,
        "the page grew to {} bytes",
        page.len()
    );
    // The SVG namespace is a name, not something fetched; nothing else may be absolute.
    let page_only = page.replace("http://www.w3.org/2000/svg", "");
    for external in ["http://", "https://", "src=", "@import", "url("] {
        assert!(!page_only.contains(external), "the page holds {external:?}");
    }
    assert!(
        page.contains(r#"new URL("status", location.href)"#),
        "status relative to the page"
    );

    let f = Fixture::new(1);
    *f.backends[0].last_error.lock().unwrap() = Some(LastError {
        message: "refused".into(),
        at_ms: 1_700_000_000_000,
    });
    let json = body(&status(&f.view()));
    for field in [
        "status",
        "version",
        "uptime_seconds",
        "http",
        "udp",
        "name",
        "bind_addr",
        "ack",
        "points_in",
        "open_connections",
        "answers",
        "backends",
        "state",
        "location",
        "queued_requests",
        "queued_ram_bytes",
        "queued_spool_bytes",
        "spool_limit_bytes",
        "oldest_queued_seconds",
        "delivered_points",
        "failed_requests",
        "dropped_points",
        "last_error",
        "message",
        "age_seconds",
        "lines_in",
        "datagrams_in",
        "bad_lines",
        "truncated_datagrams",
        "kernel_dropped_datagrams",
        "receive_errors",
        "outputs",
        "lines_out",
        "datagrams_out",
        "send_errors",
        "dropped_lines",
    ] {
        assert!(
            page.contains(&format!(".{field}")),
            "the page does not read {field}"
        );
        assert!(
            json.contains(&format!("\"{field}\":")),
            "/status has no {field}"
        );
    }
}

#[test]
fn json_strings_are_escaped() {
    let mut out = String::new();
    json_str(&mut out, "a\"b\\c\nd\u{1}é");
    assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
}

#[test]
fn rfc3339_matches_known_instants() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(951_825_600_007), "2000-02-29T12:00:00.007Z");
    assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    assert_eq!(rfc3339(1_709_251_200_000), "2024-03-01T00:00:00.000Z");
    assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
}

#[test]
fn rfc3339_ns_keeps_every_digit_before_and_after_1970() {
    assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
    assert_eq!(
        rfc3339_ns(951_825_600_000_000_007),
        "2000-02-29T12:00:00.000000007Z"
    );
    assert_eq!(rfc3339_ns(-1), "1969-12-31T23:59:59.999999999Z");
    assert_eq!(rfc3339_ns(i64::MIN), "1677-09-21T00:12:43.145224192Z");
    assert_eq!(rfc3339_ns(i64::MAX), "2262-04-11T23:47:16.854775807Z");
}

#[test]
fn civil_dates_advance_one_day_at_a_time() {
    // Walk 1970..2400 and check each date follows the previous one.
    let (mut y, mut m, mut d) = civil_from_days(0);
    for days in 1..157_000 {
        let next = civil_from_days(days);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_len = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let expected = if d < month_len {
            (y, m, d + 1)
        } else if m < 12 {
            (y, m + 1, 1)
        } else {
            (y + 1, 1, 1)
        };
        assert_eq!(next, expected, "day {days}");
        (y, m, d) = next;
    }
}

#[test]
fn histogram_buckets_by_upper_bound() {
    let f = Fixture::new(1);
    let h = &f.loops[0].write_latency;
    h.observe(Duration::from_micros(500));
    h.observe(Duration::from_micros(501));
    h.observe(Duration::from_secs(11));
    let (buckets, sum_us) = h.snapshot();
    assert_eq!(buckets[0], 1, "500 us is <= the first bound");
    assert_eq!(buckets[1], 1);
    assert_eq!(buckets[LATENCY_BOUNDS_US.len()], 1, "above every bound");
    assert_eq!(sum_us, 11_001_001);
}

#[test]
fn metrics_declare_each_family_once_before_its_samples() {
    let f = Fixture::new(2);
    let page = metrics(&f.view());
    assert_eq!(page.content_type, PROMETHEUS_TEXT);
    let text = body(&page);
    let mut typed: Vec<(&str, &str)> = Vec::new();
    let mut helped = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(typed.iter().all(|(n, _)| *n != name), "{name} typed twice");
            assert!(helped.last() == Some(&name), "HELP before TYPE for {name}");
            typed.push((name, kind));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split_once(' ').unwrap().0);
        } else {
            let series = line.split([' ', '{']).next().unwrap();
            let (family, kind) = *typed.last().expect("a sample before any TYPE");
            let ok = series == family
                || kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| series.strip_suffix(s) == Some(family));
            assert!(ok, "{series} under the family {family}");
            assert!(series.starts_with(PREFIX));
        }
    }
    for (name, kind) in typed {
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
    }
}

#[test]
fn metrics_histogram_is_cumulative_and_counts_match() {
    let f = Fixture::new(1);
    f.loops[0].write_latency.observe(Duration::from_micros(700));
    f.loops[1].write_latency.observe(Duration::from_micros(800));
    f.loops[1].write_latency.observe(Duration::from_millis(30));
    f.loops[1].write_latency.observe(Duration::from_secs(20));
    let text = body(&metrics(&f.view()));
    let bucket = |le: &str| {
        sample(
            &text,
            &format!("influx_relay_request_duration_seconds_bucket{{listener=\"in\",le=\"{le}\"}}"),
        )
        .to_string()
    };
    assert_eq!(bucket("0.0005"), "0");
    assert_eq!(bucket("0.001"), "2");
    assert_eq!(bucket("0.025"), "2");
    assert_eq!(bucket("0.05"), "3");
    assert_eq!(bucket("10"), "3");
    assert_eq!(bucket("+Inf"), "4");
    assert_eq!(
        sample(
            &text,
            "influx_relay_request_duration_seconds_count{listener=\"in\"}"
        ),
        "4"
    );
    assert_eq!(
        sample(
            &text,
            "influx_relay_request_duration_seconds_sum{listener=\"in\"}"
        ),
        "20.0315"
    );
}

#[test]
fn metrics_show_counters_by_listener_backend_code_and_reason() {
    let f = Fixture::new(2);
    f.loops[0].points_in.add(10);
    f.loops[1].points_in.add(20);
    f.loops[1].answered_2xx.add(3);
    f.backends[0].dropped_max_age.add(4);
    f.backends[1].down.set(1);
    f.backends[1].spool_bytes.set(4096);
    f.udp_loops[0].truncated.inc();
    f.dropped[0].record_parts(Kind::Write, "db=x", b"m v=1 1\n", 1, 1);
    f.dropped[0].record_parts(Kind::Statement, "db=y", b"", 0, 1);
    let text = body(&metrics(&f.view()));
    for (series, value) in [
        ("influx_relay_points_in_total{listener=\"in\"}", "30"),
        (
            "influx_relay_responses_total{listener=\"in\",code=\"2xx\"}",
            "3",
        ),
        ("influx_relay_open_connections{listener=\"in\"}", "3"),
        (
            "influx_relay_backend_up{listener=\"in\",backend=\"a\"}",
            "1",
        ),
        (
            "influx_relay_backend_up{listener=\"in\",backend=\"b\"}",
            "0",
        ),
        (
            "influx_relay_backend_queue_spool_bytes{listener=\"in\",backend=\"b\"}",
            "4096",
        ),
        (
            "influx_relay_backend_dropped_points_total{listener=\"in\",backend=\"a\",reason=\"max_age\"}",
            "4",
        ),
        (
            "influx_relay_udp_dropped_datagrams_total{listener=\"udp-in\",reason=\"truncated\"}",
            "1",
        ),
        (
            "influx_relay_backend_dropped_ranges{listener=\"in\",backend=\"a\"}",
            "2",
        ),
        (
            "influx_relay_backend_dropped_ranges{listener=\"in\",backend=\"b\"}",
            "0",
        ),
        ("influx_relay_healthy", "1"),
        ("influx_relay_uptime_seconds", "61.5"),
        ("influx_relay_build_info{version=\"1.2.3\"}", "1"),
    ] {
        assert_eq!(sample(&text, series), value, "{series}");
    }
}

#[test]
fn metric_label_values_are_escaped() {
    let mut m = Exposition { out: String::new() };
    m.sample("x", &[("listener", "a\"b\\c\nd")], 1);
    assert_eq!(m.out, "influx_relay_x{listener=\"a\\\"b\\\\c\\nd\"} 1\n");
}
