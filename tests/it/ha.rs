//! The high-availability setup end to end: HAProxy (from `config/haproxy.cfg`) in front
//! of two relays, each writing to both of two real `influxd` with a spool. Writes flow
//! through HAProxy while one relay is killed -9 and one `influxd` is killed and later
//! restarted; afterwards every acknowledged point is in both `influxd`.
//!
//! The client only counts 204s: at the moment a relay dies, a request it was answering
//! fails at the client (HAProxy retries only connections that were refused).

use std::collections::HashSet;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::observe::scrape;
use crate::util::*;

const HAPROXY: &str = "/usr/sbin/haproxy";
/// Points per write request.
const BATCH: u64 = 10;
/// Timestamp of sequence number 0; point `seq` is stored at `BASE_NS + seq`.
const BASE_NS: u64 = 1_700_000_000_000_000_000;
/// How long spool replay may take to bring the restarted `influxd` up to date.
const CATCH_UP: Duration = Duration::from_secs(30);

/// HAProxy in the foreground on a config in its own temp dir; killed on drop.
struct Haproxy {
    child: Child,
    dir: TempDir,
}

impl Haproxy {
    fn start(config: &str) -> Haproxy {
        let dir = tempfile::Builder::new()
            .prefix("haproxy-")
            .tempdir()
            .expect("create a temp dir");
        let path = dir.path().join("haproxy.cfg");
        fs::write(&path, config).expect("write haproxy.cfg");
        let check = Command::new(HAPROXY)
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {HAPROXY} (scripts/test.sh installs it): {e}"));
        assert!(
            check.status.success(),
            "haproxy rejects the config: {}{}\n{config}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = File::create(dir.path().join("haproxy.log")).expect("create haproxy.log");
        let mut cmd = Command::new(HAPROXY);
        cmd.arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log file"))
            .stderr(log);
        // SAFETY: between fork and exec only prctl, an async-signal-safe call. The
        // signal fires when this test's thread ends, and the test owns HAProxy for no
        // longer than that.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {HAPROXY}: {e}"));
        Haproxy { child, dir }
    }

    /// Panics with the log if HAProxy has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("haproxy exited ({status}):\n{}", self.log_text());
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- haproxy log (last lines) ---\n{}",
                last_lines(&self.log_text(), 40)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `config/haproxy.cfg` with its placeholder addresses replaced, in one pass so that
/// a new address can never be mistaken for a placeholder. Panics if one is missing, so
/// the sample cannot drift away from what this test checks.
fn haproxy_config(replacements: &[(&str, SocketAddr)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/haproxy.cfg");
    let text = fs::read_to_string(&path).expect("read config/haproxy.cfg");
    let mut out = String::with_capacity(text.len());
    let mut used = vec![false; replacements.len()];
    let mut rest = text.as_str();
    loop {
        let next = replacements
            .iter()
            .enumerate()
            .filter_map(|(i, (from, _))| rest.find(from).map(|at| (at, i)))
            .min();
        let Some((at, i)) = next else {
            out.push_str(rest);
            break;
        };
        let (from, to) = replacements[i];
        out.push_str(&rest[..at]);
        out.push_str(&to.to_string());
        rest = &rest[at + from.len()..];
        used[i] = true;
    }
    for ((from, _), used) in replacements.iter().zip(used) {
        assert!(used, "config/haproxy.cfg no longer mentions {from}");
    }
    out
}

/// A relay writing to both backends, each output with a spool; a 204 means both
/// backends have the write or have it on disk (`ack = "all"`).
fn relay_config(backends: &[&Influxd]) -> RelayConfig {
    let mut cfg = RelayConfig::new().http_listener("in", "all");
    for (i, b) in backends.iter().enumerate() {
        cfg = cfg
            .output(&format!("b{i}"), &b.write_url(), "2s")
            .output_opt("spool-size-mb", 64);
    }
    cfg
}

fn body(first: u64) -> String {
    (first..first + BATCH)
        .map(|seq| format!("ha,writer=w seq={seq}i {}\n", BASE_NS + seq))
        .collect()
}

/// One acknowledged write request.
struct Ack {
    first: u64,
    /// The relay that took it (HAProxy's `X-Influx-Relay`).
    relay: String,
    at: Instant,
}

#[derive(Default)]
struct Outcomes {
    acked: Vec<Ack>,
    /// Anything but a 204, including connection errors.
    failed: usize,
}

/// Send numbered points through `front` until `stop`: one request at a time, 10 points
/// each, sequence numbers never reused.
fn writer(
    front: SocketAddr,
    db: String,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Outcomes>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let path = format!("/write?db={}", url_encode(&db));
        let mut first = 0;
        while !stop.load(Ordering::Relaxed) {
            let result = try_http_request(
                front,
                "POST",
                &path,
                &[],
                body(first).as_bytes(),
                Duration::from_secs(5),
            );
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(resp) if resp.status == 204 => out.acked.push(Ack {
                    first,
                    relay: resp.header("x-influx-relay").unwrap_or("?").to_string(),
                    at: Instant::now(),
                }),
                _ => out.failed += 1,
            }
            drop(out);
            first += BATCH;
        }
    })
}

/// Sequence numbers stored in `influxd`, read in windows small enough for any row limit.
fn stored(influxd: &Influxd, db: &str, below: u64) -> HashSet<u64> {
    let mut seen = HashSet::new();
    let window = 5_000;
    for start in (0..below).step_by(window as usize) {
        let q = format!(
            "SELECT seq FROM ha WHERE time >= {} AND time < {}",
            BASE_NS + start,
            BASE_NS + start + window
        );
        let Ok(json) = try_query(influxd.http_addr(), db, &q) else {
            return HashSet::new();
        };
        for series in json["results"][0]["series"].as_arr().unwrap_or_default() {
            for row in series["values"].as_arr().unwrap_or_default() {
                if let Some(seq) = row[1].as_u64() {
                    seen.insert(seq);
                }
            }
        }
    }
    seen
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn phase(what: &str, started: Instant) {
    eprintln!("ha: {:>6.2}s {what}", started.elapsed().as_secs_f64());
}

#[test]
fn acknowledged_writes_survive_a_dead_relay_and_a_restarted_influxd() {
    let t0 = Instant::now();
    let mut influx = Influxd::start_n(2);
    let db = unique_db("ha");
    for i in &influx {
        create_db(i, &db);
    }
    let (a, b) = (&influx[0], &influx[1]);
    let mut relay_a = Relay::start(&relay_config(&[a, b]).to_toml());
    let relay_b = Relay::start(&relay_config(&[a, b]).to_toml());
    let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut haproxy = Haproxy::start(&haproxy_config(&[
        ("127.0.0.1:9086", front),
        ("127.0.0.1:9096", relay_a.addr()),
        ("127.0.0.1:9097", relay_b.addr()),
        ("127.0.0.1:8086", a.http_addr()),
        ("127.0.0.1:7086", b.http_addr()),
    ]));
    let through = wait_until(Duration::from_secs(10), || {
        haproxy.assert_running();
        try_http_request(front, "GET", "/ping", &[], b"", Duration::from_secs(1))
            .is_ok_and(|r| r.status == 204 && r.header("x-influx-relay").is_some())
    });
    assert!(through, "HAProxy does not pass /ping to a relay");
    phase("haproxy, 2 relays, 2 influxd up", t0);

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let writing = writer(front, db.clone(), stop.clone(), outcomes.clone());

    thread::sleep(Duration::from_secs(2));
    let relay_a_name = "relay-a";
    relay_a.kill9();
    let relay_killed = Instant::now();
    phase("relay-a killed -9", t0);
    thread::sleep(Duration::from_secs(2));
    influx[0].kill9();
    let influx_killed = Instant::now();
    phase("influxd a killed -9", t0);
    thread::sleep(Duration::from_secs(3));
    influx[0].restart();
    let influx_back = Instant::now();
    phase("influxd a restarted", t0);
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    writing.join().expect("the writer thread panicked");
    phase("writer stopped", t0);
    // Back from the dead, as its service manager would bring it: it replays what its
    // spool held when it was killed.
    relay_a.restart();
    phase("relay-a restarted", t0);

    let out = std::mem::take(&mut *outcomes.lock().unwrap_or_else(|e| e.into_inner()));
    let acked_since = |since: Instant| out.acked.iter().filter(|a| a.at > since).count();
    let total = out.acked.len() + out.failed;
    eprintln!(
        "ha: {} write requests, {} acknowledged, {} failed",
        total,
        out.acked.len(),
        out.failed
    );
    assert!(
        out.failed * 20 < total,
        "too many failed writes: {}",
        out.failed
    );
    for (what, since) in [
        ("after relay-a died", relay_killed),
        ("while influxd a was down", influx_killed),
        ("after influxd a came back", influx_back),
    ] {
        assert!(acked_since(since) > 20, "few writes acknowledged {what}");
    }
    assert!(
        out.acked
            .iter()
            .all(|a| a.relay == relay_a_name || a.relay == "relay-b"),
        "a 204 without X-Influx-Relay naming a relay"
    );
    assert!(
        out.acked
            .iter()
            .filter(|a| a.at > relay_killed + Duration::from_millis(100))
            .all(|a| a.relay != relay_a_name),
        "HAProxy kept acknowledging through the dead relay"
    );

    // Every point acknowledged must reach both influxd.
    let below = out.acked.iter().map(|a| a.first + BATCH).max().unwrap_or(0);
    let missing = |stored: &[HashSet<u64>]| -> Vec<String> {
        let mut missing = Vec::new();
        for ack in out.acked.iter() {
            for seq in ack.first..ack.first + BATCH {
                let held = stored.iter().filter(|s| s.contains(&seq)).count();
                if held < stored.len() {
                    missing.push(format!("{seq} (via {}, in {held})", ack.relay));
                }
            }
        }
        missing
    };
    let deadline = Instant::now() + CATCH_UP;
    let mut last = loop {
        let now: Vec<HashSet<u64>> = influx.iter().map(|i| stored(i, &db, below)).collect();
        let gone = missing(&now);
        if gone.is_empty() || Instant::now() >= deadline {
            break gone;
        }
        thread::sleep(Duration::from_millis(500));
    };
    phase("checked both influxd", t0);
    last.truncate(20);
    assert!(
        last.is_empty(),
        "acknowledged points missing (first 20): {last:?}\nrelay-b stderr:\n{}",
        last_lines(&relay_b.stderr_text(), 30)
    );
    // The survivor's own account agrees.
    let acked_b: u64 = out.acked.iter().filter(|a| a.relay == "relay-b").count() as u64;
    let metrics = scrape(relay_b.addr());
    let listener = [("listener", "in")];
    assert!(metrics.value("influx_relay_points_in_total", &listener) >= (acked_b * BATCH) as f64);
    let b0 = [("listener", "in"), ("backend", "b0")];
    assert!(metrics.value("influx_relay_backend_spooled_points_total", &b0) > 0.0);
    assert_eq!(metrics.value("influx_relay_backend_up", &b0), 1.0);
    let drained = wait_until(Duration::from_secs(10), || {
        scrape(relay_b.addr()).value("influx_relay_backend_queued_requests", &b0) == 0.0
    });
    assert!(
        drained,
        "relay-b still holds writes for the restarted influxd"
    );
    let health = http_request(relay_b.addr(), "GET", "/health", &[], b"");
    assert_eq!(health.status, 200, "{}", health.body_str());
    // Queries go through HAProxy straight to InfluxDB.
    assert!(count(front, &db, "ha") >= out.acked.len() as u64 * BATCH);
    drop(haproxy);
    phase("done", t0);
}
