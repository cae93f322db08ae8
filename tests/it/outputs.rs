//! Backends that speak the InfluxDB 2.x and 3.x write APIs (issue 13): a real
//! VictoriaMetrics (Debian's `victoria-metrics`) as a write-only `/api/v2/write` output
//! next to an `influxd`, and the load generator's sink standing in for InfluxDB 3 Core
//! (none can be installed here) and for InfluxDB 2.x, where the exact database,
//! precision and token each output received are checked.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use loadtest::args::SinkConfig;
use loadtest::sink::{self, SinkHandle};

use crate::util::*;

/// How long VictoriaMetrics may take to make a write searchable, or replay to finish.
const SETTLE: Duration = Duration::from_secs(30);

/// A throwaway VictoriaMetrics on a loopback port with its own data directory.
struct VictoriaMetrics {
    addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl VictoriaMetrics {
    fn start() -> VictoriaMetrics {
        let dir = harness_tempdir("victoria").expect("temp dir");
        let mut vm = VictoriaMetrics {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            child: None,
            dir,
        };
        vm.spawn();
        vm
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("victoria-metrics");
        cmd.arg(format!("-httpListenAddr={}", self.addr))
            .arg(format!("-storageDataPath={}", self.dir.path().display()))
            .args([
                "-retentionPeriod=100y",
                // Reads must see a write as soon as it is stored, not 30 s later.
                "-search.latencyOffset=0s",
                "-search.disableCache",
                "-loggerLevel=ERROR",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_tied(cmd).unwrap_or_else(|e| {
            panic!("cannot start victoria-metrics (apt-get install victoria-metrics): {e}")
        });
        let pid = child.id();
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(20), || {
            process_exists(pid)
                && try_http_request(self.addr, "GET", "/ping", &[], b"", Duration::from_secs(1))
                    .is_ok_and(|r| r.status == 204)
        });
        assert!(up, "victoria-metrics did not answer /ping on {}", self.addr);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: it flushes and releases its data directory before exiting.
            unsafe_sigterm(child.id());
            if wait_timeout(&mut child, Duration::from_secs(20)).is_none() {
                kill_and_reap(&mut child);
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Distinct timestamps (ms) of metric `name` over all its series.
    fn timestamps(&self, name: &str) -> Vec<i64> {
        let path = format!(
            "/api/v1/export?match[]={}&start=1500000000",
            url_encode(&format!("{{__name__=\"{name}\"}}"))
        );
        let r = http_request(self.addr, "GET", &path, &[], b"");
        assert_eq!(r.status, 200, "{}", r.body_str());
        let mut out = Vec::new();
        for line in r.body_str().lines().filter(|l| !l.trim().is_empty()) {
            let j = Json::parse(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            for t in j["timestamps"].as_arr().unwrap_or_default() {
                out.extend(t.as_i64());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn wait_points(&self, name: &str, want: usize) -> Vec<i64> {
        let mut last = Vec::new();
        wait_until(SETTLE, || {
            last = self.timestamps(name);
            last.len() >= want
        });
        last
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}

fn unsafe_sigterm(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid this test spawned and has not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

fn post(addr: SocketAddr, path: &str, body: &str) -> Response {
    http_request(addr, "POST", path, &[], body.as_bytes())
}

/// Writes `name` through each of the three input APIs (two points each, timestamps
/// from `s` on, in seconds but sent in a different precision per API) plus one 1.x write
/// in hours; 7 points in all, at `s`, `s+1`, …, `s+5` and `h` hours.
fn write_every_api(addr: SocketAddr, db: &str, name: &str, s: i64, h: i64) {
    let ok = |r: Response| assert_eq!(r.status, 204, "{}", r.body_str());
    ok(post(
        addr,
        &format!("/write?db={db}&precision=ms"),
        &format!(
            "{name},api=v1 v=1 {}\n{name},api=v1 v=2 {}\n",
            s * 1000,
            (s + 1) * 1000
        ),
    ));
    ok(post(
        addr,
        &format!("/api/v2/write?org=-&bucket={db}&precision=us"),
        &format!(
            "{name},api=v2 v=3 {}\n{name},api=v2 v=4 {}\n",
            (s + 2) * 1_000_000,
            (s + 3) * 1_000_000
        ),
    ));
    ok(post(
        addr,
        &format!("/api/v3/write_lp?db={db}/autogen"),
        &format!(
            "{name},api=v3 v=5 {}\n{name},api=v3 v=6 {}\n",
            s + 4,
            (s + 5) * 1_000_000_000
        ),
    ));
    ok(post(
        addr,
        &format!("/write?db={db}&precision=h"),
        &format!("{name},api=h v=7 {h}\n"),
    ));
}

#[test]
fn victoria_metrics_write_only_gets_every_write_and_no_read_or_statement() {
    let db = shared_db("vm_all");
    let vm = VictoriaMetrics::start();
    let influxd = &shared_backends()[0];
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .output("influxd", &influxd.write_url(), "5s")
        .output("vm", &vm.url("/api/v2/write"), "5s")
        .output_opt("org", "-");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let m = unique_db("vm_m");
    let (s, h) = (1_600_000_000i64, 444_445i64);
    write_every_api(addr, &db, &m, s, h);
    assert_eq!(count(influxd.http_addr(), &db, &m), 7);
    // VictoriaMetrics names a field's series `<measurement>_<field>` and keeps ms.
    let mut want: Vec<i64> = (0..6).map(|i| (s + i) * 1000).collect();
    want.push(h * 3_600_000);
    assert_eq!(vm.wait_points(&format!("{m}_v"), 7), want);

    // A statement goes to the influxd only: VictoriaMetrics has no InfluxQL.
    let other = unique_db("vm_created");
    let r = post(
        addr,
        &format!(
            "/query?q={}",
            url_encode(&format!("CREATE DATABASE {other}"))
        ),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(!r.body_str().contains("error"), "{}", r.body_str());
    let dbs = query(influxd.http_addr(), "", "SHOW DATABASES").to_string();
    assert!(dbs.contains(&other), "{dbs}");
    // Reads never go to the write-only output.
    for _ in 0..10 {
        let r = http_request(
            addr,
            "GET",
            &format!(
                "/query?db={db}&q={}",
                url_encode(&format!("SELECT count(v) FROM \"{m}\""))
            ),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.header("X-Relay-Backend"), Some("influxd"));
    }
    // Its probes (`/ping`) pass: it was never taken for down.
    let log = relay.stderr_text();
    assert!(!log.contains("backend down"), "{log}");
}

#[test]
fn victoria_metrics_outage_is_spooled_and_replayed() {
    let db = shared_db("vm_outage");
    let mut vm = VictoriaMetrics::start();
    let influxd = &shared_backends()[1];
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .output("influxd", &influxd.write_url(), "2s")
        .output("vm", &vm.url("/api/v2/write"), "2s")
        .output_opt("org", "-")
        .output_opt("spool-size-mb", 16)
        .output_opt("max-delay-interval", "500ms");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let m = unique_db("vm_spool");
    let s = 1_600_000_000i64;
    let body = |from: i64| -> String {
        (from..from + 5)
            .map(|i| format!("{m} v={i} {}\n", s + i))
            .collect()
    };
    let r = post(
        addr,
        &format!("/api/v2/write?org=-&bucket={db}&precision=s"),
        &body(0),
    );
    assert_eq!(r.status, 204, "{}", r.body_str());
    assert_eq!(vm.wait_points(&format!("{m}_v"), 5).len(), 5);

    vm.stop();
    // Spooled for VictoriaMetrics, delivered to influxd: acknowledged under ack = all.
    for (i, path) in [
        format!("/write?db={db}&precision=s"),
        format!("/api/v2/write?org=-&bucket={db}&precision=s"),
        format!("/api/v3/write_lp?db={db}&precision=second"),
    ]
    .iter()
    .enumerate()
    {
        let r = post(addr, path, &body(5 + 5 * i as i64));
        assert_eq!(r.status, 204, "{path}: {}", r.body_str());
    }
    assert_eq!(count(influxd.http_addr(), &db, &m), 20);
    vm.spawn();
    let got = vm.wait_points(&format!("{m}_v"), 20);
    let want: Vec<i64> = (0..20).map(|i| (s + i) * 1000).collect();
    assert_eq!(got, want, "relay:\n{}", relay.stderr_text());
}

// ---------------------------------------------------------------------------------------
// The sink as an InfluxDB 3 Core (and 2.x) stand-in
// ---------------------------------------------------------------------------------------

fn sink(token: Option<&str>) -> SinkHandle {
    sink::start(&SinkConfig {
        http: "127.0.0.1:0".parse().expect("address"),
        udp: None,
        fail_status: None,
        delay: Duration::ZERO,
        token: token.map(String::from),
    })
    .expect("sink starts")
}

/// Lines the sink accepted for `target`.
fn lines_for(s: &SinkHandle, target: &str) -> u64 {
    s.stats()
        .targets
        .iter()
        .find(|(t, _)| t == target)
        .map_or(0, |(_, n)| *n)
}

#[test]
fn two_v3_outputs_get_every_write_converted_and_no_statement() {
    let (a, b) = (sink(Some("tok-a")), sink(Some("tok-b")));
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .output(
            "a",
            &format!("http://{}/api/v3/write_lp", a.http_addr()),
            "5s",
        )
        .output_opt("token", "tok-a")
        .output_opt("reads", false)
        .output(
            "b",
            &format!("http://{}/api/v3/write_lp", b.http_addr()),
            "5s",
        )
        .output_opt("token", "tok-b")
        .output_opt("reads", false);
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    for (path, body) in [
        ("/write?db=d&rp=r&precision=m", "m v=1 10\n"),
        ("/write?db=d&precision=u&u=x&p=y", "m v=1 10\n"),
        (
            "/api/v2/write?org=o&bucket=d%2Fr&precision=ms",
            "m v=1 10\nm v=2 20\n",
        ),
        ("/api/v3/write_lp?db=d", "m v=1 1600000000\n"),
        (
            "/api/v3/write_lp?db=d&precision=second",
            "m v=1 1600000000\n",
        ),
    ] {
        let r = post(addr, path, body);
        assert_eq!(r.status, 204, "{path}: {}", r.body_str());
    }
    for s in [&a, &b] {
        for (target, n) in [
            ("v3 db=d/r precision=second", 1),
            ("v3 db=d precision=microsecond", 1),
            ("v3 db=d/r precision=millisecond", 2),
            ("v3 db=d precision=nanosecond", 1),
            ("v3 db=d precision=second", 1),
        ] {
            assert_eq!(lines_for(s, target), n, "{target}: {:?}", s.stats().targets);
        }
    }
    // No InfluxQL on a 3.x output: the statement is answered, and sent nowhere.
    let r = post(addr, "/query?q=CREATE+DATABASE+d", "");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.body_str().trim_end(),
        r#"{"results":[{"statement_id":0}]}"#
    );
    for s in [&a, &b] {
        let st = s.stats();
        assert_eq!(st.requests, st.writes + st.pings, "{}", st.to_json());
        assert_eq!(st.unauthorized, 0);
    }
    a.shutdown();
    b.shutdown();
}

#[test]
fn v2_output_gets_org_bucket_and_seconds_for_hours() {
    let s = sink(Some("t2"));
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .output(
            "v2",
            &format!("http://{}/api/v2/write", s.http_addr()),
            "5s",
        )
        .output_opt("org", "my org")
        .output_opt("token", "t2");
    let relay = Relay::start(&cfg.to_toml());
    for (path, body) in [
        ("/write?db=d&rp=r&precision=h", "m v=1 1\n"),
        ("/api/v3/write_lp?db=d&precision=microsecond", "m v=1 1\n"),
    ] {
        let r = post(relay.addr(), path, body);
        assert_eq!(r.status, 204, "{path}: {}", r.body_str());
    }
    assert_eq!(lines_for(&s, "v2 org=my org bucket=d/r precision=s"), 1);
    assert_eq!(lines_for(&s, "v2 org=my org bucket=d precision=us"), 1);
    s.shutdown();
}

#[test]
fn a_wrong_output_token_is_the_clients_401_in_its_shape() {
    let s = sink(Some("right"));
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .output(
            "v3",
            &format!("http://{}/api/v3/write_lp", s.http_addr()),
            "5s",
        )
        .output_opt("token", "wrong")
        .output_opt("reads", false);
    let relay = Relay::start(&cfg.to_toml());
    let r = post(relay.addr(), "/api/v2/write?org=-&bucket=d", "m v=1 1\n");
    assert_eq!(r.status, 401, "{}", r.body_str());
    assert_eq!(
        r.body_str(),
        r#"{"code":"unauthorized","message":"unauthorized access"}"#
    );
    let r = post(relay.addr(), "/write?db=d", "m v=1 1\n");
    assert_eq!(r.status, 401);
    assert_eq!(r.body_str(), r#"{"error":"unauthorized access"}"#);
    assert!(s.stats().unauthorized >= 2);
    s.shutdown();
}

#[test]
fn check_config_prints_each_outputs_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("relay.toml");
    let text = "[[http]]\nbind-addr = \"127.0.0.1:0\"\n\
        [[http.output]]\nname = \"one\"\nlocation = \"http://127.0.0.1:8086/write\"\n\
        [[http.output]]\nname = \"vm\"\nlocation = \"http://127.0.0.1:8428/api/v2/write\"\norg = \"-\"\n\
        [[http.output]]\nname = \"three\"\nlocation = \"http://127.0.0.1:8181/api/v3/write_lp\"\ntoken = \"secret-token\"\n";
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_influx-relay"))
        .args(["--check-config", "-config"])
        .arg(&path)
        .output()
        .expect("run influx-relay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!("\"{name}\"")))
            .unwrap_or_else(|| panic!("{name} missing: {stdout}"))
            .to_string()
    };
    assert!(line("one").contains(" api=v1 "), "{stdout}");
    assert!(
        line("vm").contains(" api=v2 write-only no-statements "),
        "{stdout}"
    );
    assert!(line("three").contains(" api=v3 no-statements "), "{stdout}");
    assert!(!stdout.contains("secret-token"), "{stdout}");
}
