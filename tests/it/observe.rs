//! Observability (README: Operations) against a running relay and real `influxd`: `/health` as a
//! load balancer sees it while a backend dies and comes back, `/status` and `/metrics`
//! counting exactly what was written.
//!
//! `/metrics` is checked with [`Exposition::parse`], a strict reader of the Prometheus
//! text format 0.0.4 that the HA test uses too.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::util::*;

/// How long a state change may take to show (probes run once a second).
const SETTLE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------------------

/// Label names and values, in the order written.
pub type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed and checked `/metrics` page.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → type.
    pub types: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

const TYPES: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A sample value: Go float syntax, as Prometheus reads it.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// `{a="x",b="y"}` from just after `{`; returns the labels and the rest after `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let name = s[..eq].trim();
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        s = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape in label value: {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        s = s[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

/// `le` as a number, for ordering buckets.
fn le_value(sample: &Sample) -> Result<f64, String> {
    parse_value(sample.label("le").ok_or("bucket without le")?)
}

impl Exposition {
    /// Parse `text` and check it: every line a comment or a sample; `# TYPE` at most once
    /// per family and before its samples; a family's samples together; no series twice;
    /// names prefixed `influx_relay_`; counters named `_total` and never negative;
    /// histogram buckets cumulative with `+Inf` equal to `_count`, and `_sum` present.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut exp = Exposition::default();
        let mut helped = HashSet::new();
        let mut finished: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut series = HashSet::new();
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("the last line does not end in a newline".into());
        }
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line}", n + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let mut words = rest.trim_start().splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("HELP"), Some(name), _)
                        if !is_metric_name(name) || !helped.insert(name.to_string()) =>
                    {
                        return Err(at("bad or repeated HELP".into()));
                    }
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        if !is_metric_name(name) || !TYPES.contains(&kind) {
                            return Err(at("bad TYPE".into()));
                        }
                        if exp.types.contains_key(name) || finished.contains(name) {
                            return Err(at("TYPE repeated or after the family's samples".into()));
                        }
                        if current.as_deref() == Some(name) {
                            return Err(at("TYPE after the family's samples".into()));
                        }
                        exp.types.insert(name.to_string(), kind.to_string());
                    }
                    _ => {}
                }
                continue;
            }
            let sample = Self::parse_sample(line).map_err(at)?;
            if !sample.name.starts_with("influx_relay_") {
                return Err(at("name without the influx_relay_ prefix".into()));
            }
            let family = exp
                .family_of(&sample.name)
                .ok_or_else(|| at("sample before its TYPE".into()))?;
            if current.as_deref() != Some(family.as_str()) {
                if finished.contains(&family) {
                    return Err(at(format!("family {family} is split")));
                }
                if let Some(done) = current.replace(family.clone()) {
                    finished.insert(done);
                }
            }
            let key = format!("{}{:?}", sample.name, sample.labels);
            if !series.insert(key) {
                return Err(at("series repeated".into()));
            }
            if exp.types[&family] == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
                return Err(at("negative counter".into()));
            }
            exp.samples.push(sample);
        }
        for (name, kind) in &exp.types {
            if (kind == "counter") != name.ends_with("_total") {
                return Err(format!("{name} is a {kind}: only counters end in _total"));
            }
            if kind == "histogram" {
                exp.check_histogram(name)?;
            }
        }
        Ok(exp)
    }

    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(inner) => parse_labels(inner)?,
            None => (Vec::new(), &line[name_end..]),
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or("no value")?)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| format!("bad timestamp {ts:?}"))?;
        }
        if fields.next().is_some() {
            return Err("trailing text".into());
        }
        Ok(Sample {
            name: name.to_string(),
            labels,
            value,
        })
    }

    /// The family a sample name belongs to: itself, or a histogram or summary it is a
    /// `_bucket`/`_sum`/`_count` of.
    fn family_of(&self, name: &str) -> Option<String> {
        if self.types.contains_key(name) {
            return Some(name.to_string());
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            let kind = self.types.get(base)?;
            let ok = kind == "histogram" || (kind == "summary" && *suffix != "_bucket");
            ok.then(|| base.to_string())
        })
    }

    fn check_histogram(&self, name: &str) -> Result<(), String> {
        let bucket = format!("{name}_bucket");
        let without_le = |s: &Sample| -> Labels {
            s.labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect()
        };
        let mut groups: Vec<(Labels, Vec<&Sample>)> = Vec::new();
        for s in self.samples.iter().filter(|s| s.name == bucket) {
            let key = without_le(s);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(s),
                None => groups.push((key, vec![s])),
            }
        }
        for (labels, buckets) in groups {
            let mut previous: Option<(f64, f64)> = None;
            for b in &buckets {
                let le = le_value(b)?;
                if let Some((prev_le, prev_count)) = previous {
                    if le <= prev_le {
                        return Err(format!("{name}{labels:?}: le not increasing"));
                    }
                    if b.value < prev_count {
                        return Err(format!("{name}{labels:?}: buckets not cumulative"));
                    }
                }
                previous = Some((le, b.value));
            }
            let last = buckets.last().ok_or("no buckets")?;
            if le_value(last)? != f64::INFINITY {
                return Err(format!("{name}{labels:?}: no +Inf bucket"));
            }
            let find = |suffix: &str| {
                self.samples
                    .iter()
                    .find(|s| s.name == format!("{name}{suffix}") && s.labels == labels)
            };
            let count = find("_count").ok_or(format!("{name}{labels:?}: no _count"))?;
            find("_sum").ok_or(format!("{name}{labels:?}: no _sum"))?;
            if count.value != last.value {
                return Err(format!("{name}{labels:?}: +Inf bucket != _count"));
            }
        }
        Ok(())
    }

    /// The value of the one series with this name and exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.label(k) == Some(v))
            })
            .map(|s| s.value)
    }

    /// [`Exposition::get`], panicking when the series is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }
}

/// `GET /metrics` of the relay listening on `addr`, checked.
pub fn scrape(addr: SocketAddr) -> Exposition {
    let resp = http_request(addr, "GET", "/metrics", &[], b"");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.body_str();
    Exposition::parse(&text).unwrap_or_else(|e| panic!("/metrics is not valid: {e}\n{text}"))
}

fn get_json(addr: SocketAddr, path: &str) -> (u16, Json) {
    let resp = http_request(addr, "GET", path, &[], b"");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let text = resp.body_str();
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (resp.status, json)
}

/// The member of a JSON array of objects whose `name` is `name`.
fn named<'a>(list: &'a Json, name: &str) -> &'a Json {
    let found = list
        .as_arr()
        .unwrap_or_default()
        .iter()
        .find(|item| item["name"].as_str() == Some(name));
    found.unwrap_or_else(|| panic!("no {name:?} in {list}"))
}

/// `count` lines with explicit timestamps, all in measurement `m`.
fn lines(m: &str, first: u64, count: u64) -> String {
    (first..first + count)
        .map(|i| format!("{m},src=obs seq={i}i {}\n", 1_700_000_000_000_000_000 + i))
        .collect()
}

fn post(addr: SocketAddr, db: &str, body: &str) -> Response {
    http_request(
        addr,
        "POST",
        &format!("/write?db={}", url_encode(db)),
        &[],
        body.as_bytes(),
    )
}

// ---------------------------------------------------------------------------------------
// The validator itself
// ---------------------------------------------------------------------------------------

#[test]
fn validator_accepts_a_well_formed_page() {
    let text = "# HELP influx_relay_x_total X.\n# TYPE influx_relay_x_total counter\n\
                influx_relay_x_total{a=\"q\\\"\\\\\\n\",b=\"2\",} 3\n\
                # TYPE influx_relay_h histogram\n\
                influx_relay_h_bucket{le=\"0.1\"} 1\ninflux_relay_h_bucket{le=\"+Inf\"} 2\n\
                influx_relay_h_sum 0.3\ninflux_relay_h_count 2 1700000000000\n";
    let exp = Exposition::parse(text).unwrap();
    assert_eq!(
        exp.value("influx_relay_x_total", &[("a", "q\"\\\n"), ("b", "2")]),
        3.0
    );
    assert_eq!(exp.value("influx_relay_h_count", &[]), 2.0);
}

#[test]
fn validator_rejects_malformed_pages() {
    let bad = [
        ("influx_relay_x 1\n", "before its TYPE"),
        (
            "# TYPE influx_relay_x gauge\n# TYPE influx_relay_x gauge\ninflux_relay_x 1\n",
            "TYPE repeated",
        ),
        (
            "# TYPE influx_relay_x counter\ninflux_relay_x 1\n",
            "_total",
        ),
        (
            "# TYPE influx_relay_x_total gauge\ninflux_relay_x_total 1\n",
            "_total",
        ),
        (
            "# TYPE influx_relay_x_total counter\ninflux_relay_x_total -1\n",
            "negative",
        ),
        (
            "# TYPE influx_relay_x gauge\ninflux_relay_x{a=\"\\t\"} 1\n",
            "escape",
        ),
        (
            "# TYPE influx_relay_x gauge\ninflux_relay_x{a=b} 1\n",
            "quoted",
        ),
        (
            "# TYPE influx_relay_x gauge\ninflux_relay_x one\n",
            "bad value",
        ),
        (
            "# TYPE influx_relay_x gauge\ninflux_relay_x 1\ninflux_relay_x 2\n",
            "repeated",
        ),
        ("# TYPE other_x gauge\nother_x 1\n", "prefix"),
        (
            "# TYPE influx_relay_x gauge\n# TYPE influx_relay_y gauge\ninflux_relay_x 1\n\
             influx_relay_y 1\ninflux_relay_x{a=\"1\"} 1\n",
            "split",
        ),
        (
            "# TYPE influx_relay_h histogram\ninflux_relay_h_bucket{le=\"1\"} 2\n\
             influx_relay_h_bucket{le=\"+Inf\"} 1\ninflux_relay_h_sum 1\ninflux_relay_h_count 1\n",
            "cumulative",
        ),
        (
            "# TYPE influx_relay_h histogram\ninflux_relay_h_bucket{le=\"+Inf\"} 2\n\
             influx_relay_h_sum 1\ninflux_relay_h_count 3\n",
            "!= _count",
        ),
        (
            "# TYPE influx_relay_h histogram\ninflux_relay_h_bucket{le=\"1\"} 2\n\
             influx_relay_h_sum 1\ninflux_relay_h_count 2\n",
            "+Inf",
        ),
        ("# TYPE influx_relay_x gauge\ninflux_relay_x 1", "newline"),
    ];
    for (text, why) in bad {
        let err = Exposition::parse(text).expect_err(text);
        assert!(
            err.contains(why),
            "{text:?}: {err:?} should mention {why:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The relay's pages
// ---------------------------------------------------------------------------------------

#[test]
fn health_fails_with_detail_while_a_listener_has_no_backend_and_recovers() {
    let mut own = Influxd::start();
    let shared = &shared_backends()[0];
    let db = unique_db("obs_health");
    create_db(&own, &db);
    create_db(shared, &db);
    // "both" keeps a healthy backend when `own` dies; "solo" has nothing else.
    let cfg = RelayConfig::new()
        .http_listener("both", "any")
        .output("own", &own.write_url(), "1s")
        .output("shared", &shared.write_url(), "1s")
        .http_listener("solo", "any")
        .output("own", &own.write_url(), "1s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();

    let (code, health) = get_json(addr, "/health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"].as_str(), Some("pass"));
    let solo = named(&health["listeners"], "solo");
    assert_eq!(
        named(&solo["backends"], "own")["state"].as_str(),
        Some("up")
    );
    assert_eq!(
        named(&solo["backends"], "own")["queued_requests"].as_u64(),
        Some(0)
    );
    let head = http_request(addr, "HEAD", "/health", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    own.kill9();
    assert_eq!(post(addr, &db, &lines("h", 0, 5)).status, 204);
    let solo_addr = cfg.listener_addr("solo");
    assert_eq!(post(solo_addr, &db, &lines("h", 5, 5)).status, 503);

    let mut last = Json::Null;
    let failed = wait_until(SETTLE, || {
        let (code, json) = get_json(addr, "/health");
        last = json;
        code == 503
    });
    assert!(failed, "health still passes: {last}");
    assert_eq!(last["status"].as_str(), Some("fail"));
    assert!(last["reason"].as_str().is_some());
    let both = named(&last["listeners"], "both");
    assert_eq!(both["status"].as_str(), Some("pass"), "{last}");
    assert_eq!(
        named(&both["backends"], "shared")["state"].as_str(),
        Some("up")
    );
    let solo = named(&last["listeners"], "solo");
    assert_eq!(solo["status"].as_str(), Some("fail"), "{last}");
    assert_eq!(
        named(&solo["backends"], "own")["state"].as_str(),
        Some("down")
    );
    // Any listener on the relay answers for all of them.
    assert_eq!(
        http_request(solo_addr, "GET", "/health", &[], b"").status,
        503
    );

    let (code, status) = get_json(addr, "/status");
    assert_eq!(code, 503);
    let own_status = named(&named(&status["http"], "solo")["backends"], "own");
    assert_eq!(own_status["state"].as_str(), Some("down"));
    assert!(own_status["failed_requests"].as_u64() >= Some(1));
    assert_eq!(
        own_status["location"].as_str(),
        Some(own.write_url().as_str())
    );
    let error = &own_status["last_error"];
    assert!(
        !error["message"].as_str().unwrap_or_default().is_empty(),
        "{error}"
    );
    let at = error["at"].as_str().unwrap_or_default();
    assert!(
        at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );

    let metrics = scrape(addr);
    let up = |listener: &str, backend: &str| {
        metrics.value(
            "influx_relay_backend_up",
            &[("listener", listener), ("backend", backend)],
        )
    };
    assert_eq!(up("solo", "own"), 0.0);
    assert_eq!(up("both", "shared"), 1.0);
    assert_eq!(metrics.value("influx_relay_healthy", &[]), 0.0);

    // Idle down backends are probed with /ping: health comes back without a write.
    own.restart();
    let mut last = Json::Null;
    let passed = wait_until(SETTLE, || {
        let (code, json) = get_json(addr, "/health");
        last = json;
        code == 200
    });
    assert!(passed, "health did not recover: {last}");
    let solo = named(&last["listeners"], "solo");
    assert_eq!(
        named(&solo["backends"], "own")["state"].as_str(),
        Some("up")
    );
}

#[test]
fn status_and_metrics_count_exactly_what_was_written() {
    let [a, b] = shared_backends();
    let db = shared_db("obs_count");
    let udp_in = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to([a, b], "5s")
        .global("threads", 2);
    let mut toml = cfg.to_toml();
    // A UDP listener whose output nobody reads: only its counters matter here.
    toml.push_str(&format!(
        "\n[[udp]]\nname = \"udp-in\"\nbind-addr = \"{udp_in}\"\n\
         [[udp.output]]\nname = \"void\"\nlocation = \"127.0.0.1:{}\"\n",
        free_udp_port()
    ));
    let relay = Relay::start(&toml);
    let addr = relay.addr();
    let listener = [("listener", "in")];

    let before = scrape(addr);
    let mut body_bytes = 0;
    for r in 0..3 {
        let body = lines("cnt", r * 10, 10);
        body_bytes += body.len();
        let resp = post(addr, &db, &body);
        assert_eq!(resp.status, 204, "{}", resp.body_str());
    }
    let resp = post(addr, &db, "cnt,src=obs seq=\n");
    assert_eq!(resp.status, 400, "{}", resp.body_str());
    let after = scrape(addr);

    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.get(name, labels).unwrap_or(0.0)
    };
    assert_eq!(after.value("influx_relay_points_in_total", &listener), 30.0);
    // Between the two scrapes: 4 writes, the second scrape itself (counted when its head
    // is read), and the answer to the first scrape.
    assert_eq!(delta("influx_relay_requests_total", &listener), 5.0);
    let code = |c| [("listener", "in"), ("code", c)];
    assert_eq!(delta("influx_relay_responses_total", &code("2xx")), 4.0);
    assert_eq!(delta("influx_relay_responses_total", &code("4xx")), 1.0);
    assert_eq!(delta("influx_relay_responses_total", &code("5xx")), 0.0);
    assert!(delta("influx_relay_bytes_in_total", &listener) > body_bytes as f64);
    // Only /write answers are timed.
    assert_eq!(
        after.value("influx_relay_request_duration_seconds_count", &listener),
        4.0
    );
    assert!(after.value("influx_relay_request_duration_seconds_sum", &listener) > 0.0);
    assert_eq!(
        after.value(
            "influx_relay_request_duration_seconds_bucket",
            &[("listener", "in"), ("le", "+Inf")]
        ),
        4.0
    );
    // One scrape connection open: the one being answered.
    assert_eq!(after.value("influx_relay_open_connections", &listener), 1.0);

    // ack = "any" answers after the first backend; wait for both.
    let mut status = Json::Null;
    let delivered = wait_until(SETTLE, || {
        status = get_json(addr, "/status").1;
        let backends = &named(&status["http"], "in")["backends"];
        ["b0", "b1"]
            .iter()
            .all(|b| named(backends, b)["delivered_points"].as_u64() == Some(30))
    });
    assert!(delivered, "{status}");
    assert_eq!(status["status"].as_str(), Some("pass"));
    assert_eq!(status["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));
    assert!(status["uptime_seconds"].as_f64() > Some(0.0));
    let http = named(&status["http"], "in");
    assert_eq!(http["ack"].as_str(), Some("any"));
    assert_eq!(http["points_in"].as_u64(), Some(30));
    assert_eq!(http["answers"]["4xx"].as_u64(), Some(1));
    assert_eq!(http["write_latency"]["count"].as_u64(), Some(4));
    for (name, influxd) in [("b0", a), ("b1", b)] {
        let backend = named(&http["backends"], name);
        assert_eq!(backend["state"].as_str(), Some("up"), "{backend}");
        assert_eq!(
            backend["location"].as_str(),
            Some(influxd.write_url().as_str())
        );
        // Writes waiting for the same backend may go out as one request.
        let requests = backend["delivered_requests"].as_u64().unwrap_or(0);
        assert!((1..=3).contains(&requests), "{backend}");
        assert_eq!(backend["delivered_bytes"].as_u64(), Some(body_bytes as u64));
        assert_eq!(backend["failed_requests"].as_u64(), Some(0));
        assert_eq!(backend["queued_requests"].as_u64(), Some(0));
        assert_eq!(backend["oldest_queued_seconds"].as_f64(), Some(0.0));
        assert!(backend["last_error"].is_null());
        for (_, dropped) in backend["dropped_points"].as_obj().unwrap_or_default() {
            assert_eq!(dropped.as_u64(), Some(0), "{backend}");
        }
        assert_eq!(count(influxd.http_addr(), &db, "cnt"), 30);
    }
    let metrics = scrape(addr);
    for backend in ["b0", "b1"] {
        let labels = [("listener", "in"), ("backend", backend)];
        assert_eq!(
            metrics.value("influx_relay_backend_points_out_total", &labels),
            30.0
        );
        let requests = metrics.value("influx_relay_backend_delivered_requests_total", &labels);
        assert!((1.0..=3.0).contains(&requests), "{requests}");
        assert_eq!(metrics.value("influx_relay_backend_up", &labels), 1.0);
        assert_eq!(
            metrics.value("influx_relay_backend_queued_requests", &labels),
            0.0
        );
        let reasons: HashSet<_> = metrics
            .samples
            .iter()
            .filter(|s| {
                s.name == "influx_relay_backend_dropped_points_total"
                    && s.label("backend") == Some(backend)
            })
            .map(|s| (s.label("reason").unwrap_or_default(), s.value))
            .map(|(r, v)| {
                assert_eq!(v, 0.0, "{backend} dropped {r}");
                r.to_string()
            })
            .collect();
        assert_eq!(reasons.len(), 8, "{reasons:?}");
    }

    // UDP: two good lines and a bad one in one datagram.
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    socket
        .send_to(b"u v=1i 1\nnot line protocol\nu v=2i 2\n", udp_in)
        .expect("send a datagram");
    let udp = [("listener", "udp-in")];
    let mut metrics = scrape(addr);
    let arrived = wait_until(SETTLE, || {
        metrics = scrape(addr);
        metrics.value("influx_relay_udp_lines_in_total", &udp) == 2.0
    });
    assert!(
        arrived,
        "{:?}",
        metrics.get("influx_relay_udp_lines_in_total", &udp)
    );
    assert_eq!(
        metrics.value("influx_relay_udp_datagrams_in_total", &udp),
        1.0
    );
    assert_eq!(metrics.value("influx_relay_udp_bad_lines_total", &udp), 1.0);
    let (_, status) = get_json(addr, "/status");
    let udp_status = named(&status["udp"], "udp-in");
    assert_eq!(udp_status["lines_in"].as_u64(), Some(2));
    assert_eq!(udp_status["bad_lines"].as_u64(), Some(1));
    assert_eq!(
        named(&udp_status["outputs"], "void")["mtu"].as_u64(),
        Some(1024)
    );
}

/// Writes that queue while a backend is busy leave as one merged request: up to 4 MiB
/// when `max-batch-kb` is not set (so a backend that fell behind can catch up), and no
/// larger than `max-batch-kb` when it is. Counted from the backend's own
/// `delivered_requests` after 16 writes of ~100 KB piled up behind a paused influxd.
#[test]
fn queued_writes_merge_up_to_4_mib_unless_max_batch_kb_is_set() {
    const WRITES: u64 = 16;
    const LINES: u64 = 1000;
    let mut own = Influxd::start();
    for (limit, expected) in [(None, 2..=2), (Some(512), 5..=(WRITES + 1))] {
        let db = unique_db("obs_merge");
        create_db(&own, &db);
        let mut cfg = RelayConfig::new()
            .http_listener("in", "any")
            .outputs_to([&own], "10s");
        if let Some(kb) = limit {
            cfg = cfg.output_opt("max-batch-kb", kb);
        }
        let relay = Relay::start(&cfg.to_toml());
        let addr = relay.addr();
        let write = move |db: String, w: u64| {
            let body: String = (0..LINES)
                .map(|i| {
                    format!(
                        "merge,w=w{w:02} pad=\"{:060}\",i={i}i {}\n",
                        0,
                        w * LINES + i + 1
                    )
                })
                .collect();
            std::thread::spawn(move || write_ok(addr, &db, body.as_bytes()))
        };
        own.pause();
        // The first write holds the backend's only connection; the rest queue behind it.
        let mut clients = vec![write(db.clone(), 0)];
        std::thread::sleep(Duration::from_millis(300));
        clients.extend((1..=WRITES).map(|w| write(db.clone(), w)));
        std::thread::sleep(Duration::from_millis(700));
        own.resume();
        for c in clients {
            c.join().unwrap();
        }
        let (_, status) = get_json(addr, "/status");
        let backend = named(&named(&status["http"], "in")["backends"], "b0");
        let requests = backend["delivered_requests"].as_u64().unwrap_or(0);
        assert!(
            expected.contains(&requests),
            "max-batch-kb {limit:?}: {requests} requests, expected {expected:?}: {backend}"
        );
        assert_eq!(
            backend["delivered_points"].as_u64(),
            Some((WRITES + 1) * LINES)
        );
        assert_eq!(count(own.http_addr(), &db, "merge"), (WRITES + 1) * LINES);
    }
}
