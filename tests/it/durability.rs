//! Durability (see the README's section of that name): ordered queues, the RAM retry buffer and the disk spool,
//! against real InfluxDB stopped with kill -9 or SIGSTOP.

use std::time::Duration;

use crate::util::*;

/// How long replay may take to drain after a backend returns.
const CATCH_UP: Duration = Duration::from_secs(30);

/// `n` points of measurement `m`, sequence numbers `from..from+n` as timestamps, so
/// every point is distinct and a replay of one is an idempotent overwrite.
fn seq_body(m: &str, from: u64, n: u64) -> String {
    (from..from + n)
        .map(|i| format!("{m},src=t seq={i}i {}\n", 1_600_000_000_000_000_000 + i))
        .collect()
}

/// One output per backend (`b0`, `b1`, …), each with a spool of `spool_mb` MiB and its
/// replay backoff capped at `max_delay`.
fn spooled(
    ack: &str,
    backends: &[Influxd],
    timeout: &str,
    spool_mb: i64,
    max_delay: &str,
) -> RelayConfig {
    let mut cfg = RelayConfig::new().http_listener("in", ack);
    for (i, b) in backends.iter().enumerate() {
        cfg = cfg
            .output(&format!("b{i}"), &b.write_url(), timeout)
            .output_opt("spool-size-mb", spool_mb)
            .output_opt("max-delay-interval", max_delay);
    }
    cfg
}

fn own_backends(n: usize, db: &str) -> Vec<Influxd> {
    let backends = Influxd::start_n(n);
    for b in &backends {
        create_db(b, db);
    }
    backends
}

fn wait_count(b: &Influxd, db: &str, m: &str, want: u64) -> u64 {
    let mut last = 0;
    wait_until(CATCH_UP, || {
        last = count(b.http_addr(), db, m);
        last >= want
    });
    last
}

#[test]
fn single_backend_down_with_spool_answers_204_and_loses_nothing() {
    let db = unique_db("dur_single");
    let mut backends = own_backends(1, &db);
    let cfg = spooled("any", &backends, "1s", 64, "1s");
    let relay = Relay::start(&cfg.to_toml());
    backends[0].kill9();
    for r in 0..20 {
        let resp = relay.write(&db, &seq_body("m", r * 10, 10));
        assert_eq!(resp.status, 204, "request {r}: {}", resp.body_str());
    }
    backends[0].restart();
    assert_eq!(wait_count(&backends[0], &db, "m", 200), 200);
}

#[test]
fn ram_buffer_overflow_is_caught_by_the_spool() {
    let db = unique_db("dur_overflow");
    let mut backends = own_backends(2, &db);
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .outputs_to(backends.iter(), "2s")
        .output_opt("buffer-size-mb", 1)
        .output_opt("spool-size-mb", 64)
        .output_opt("max-delay-interval", "1s");
    let relay = Relay::start(&cfg.to_toml());
    backends[1].kill9();
    // About 3 MB: three times what the RAM buffer alone could hold.
    let per_request = 1000;
    for r in 0..30 {
        let resp = relay.write(&db, &seq_body("big", r * per_request, per_request));
        assert_eq!(resp.status, 204, "request {r}: {}", resp.body_str());
    }
    backends[1].restart();
    let want = 30 * per_request;
    assert_eq!(count(backends[0].http_addr(), &db, "big"), want);
    assert_eq!(wait_count(&backends[1], &db, "big", want), want);
}

#[test]
fn kill9_of_the_relay_with_a_spool_loses_no_acknowledged_write_and_torn_tail_is_cut() {
    let db = unique_db("dur_kill9");
    let mut backends = own_backends(1, &db);
    let cfg = spooled("any", &backends, "1s", 64, "1s");
    let toml = cfg.to_toml();
    let relay = Relay::start(&toml);
    backends[0].kill9();
    for r in 0..10 {
        assert_eq!(relay.write(&db, &seq_body("k", r * 50, 50)).status, 204);
    }
    let dir = relay.into_dir(); // kill -9

    // A torn write at the tail, as a crash mid-append leaves it.
    let spool = find_files(dir.path(), "seg");
    assert!(
        !spool.is_empty(),
        "no spool segment under {}",
        dir.path().display()
    );
    let last = spool.iter().max().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    std::io::Write::write_all(&mut f, &[0x42; 37]).unwrap();
    drop(f);

    backends[0].restart();
    let relay = Relay::start_in(dir, &toml);
    assert_eq!(wait_count(&backends[0], &db, "k", 500), 500);
    assert!(
        relay.wait_for_log("spool recovery", Duration::from_secs(1)),
        "{}",
        relay.stderr_text()
    );
}

fn find_files(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(find_files(&p, ext));
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out
}

#[test]
fn overwrite_order_is_kept_after_recovery() {
    let db = unique_db("dur_order");
    let mut backends = own_backends(2, &db);
    let cfg = spooled("any", &backends, "1s", 64, "3s");
    let relay = Relay::start(&cfg.to_toml());
    backends[1].kill9();
    assert_eq!(relay.write(&db, "ow v=1i 1000\n").status, 204);
    // Let the backoff grow so the replay is still pending when the backend returns.
    std::thread::sleep(Duration::from_millis(1600));
    backends[1].restart();
    assert_eq!(relay.write(&db, "ow v=2i 1000\n").status, 204);
    let q = "SELECT v FROM ow";
    assert!(wait_until(CATCH_UP, || rows(
        backends[1].http_addr(),
        &db,
        q
    )
    .len()
        == 1));
    // Give a late replay of the old value every chance to land, then compare.
    std::thread::sleep(Duration::from_secs(4));
    let a = rows(backends[0].http_addr(), &db, q);
    let b = rows(backends[1].http_addr(), &db, q);
    assert_eq!(a, vec![vec!["1000".to_string(), "2".to_string()]]);
    assert_eq!(a, b);
}

#[test]
fn a_write_rejected_during_replay_is_dropped_and_later_writes_arrive() {
    let db = unique_db("dur_poison");
    let mut backends = own_backends(1, &db);
    // The backend knows `f` as an integer: a float for it will be refused.
    assert_eq!(backends[0].write(&db, "t f=1i 1").status, 204);
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to(backends.iter(), "1s")
        .output_opt("spool-size-mb", 64)
        .output_opt("max-batch-kb", 1)
        .output_opt("max-delay-interval", "1s");
    let relay = Relay::start(&cfg.to_toml());
    backends[0].kill9();
    let poison = format!("t f=1.5 2\n{}", "t,pad=x f=2.5 3\n".repeat(80));
    assert_eq!(relay.write(&db, &poison).status, 204);
    assert_eq!(relay.write(&db, &seq_body("after", 0, 20)).status, 204);
    backends[0].restart();
    assert_eq!(wait_count(&backends[0], &db, "after", 20), 20);
    assert!(
        relay.wait_for_log(
            "backend rejected a queued write; dropped",
            Duration::from_secs(5)
        ),
        "{}",
        relay.stderr_text()
    );
}

#[test]
fn full_spool_drops_the_newest_and_says_so() {
    let db = unique_db("dur_full");
    let mut backends = own_backends(1, &db);
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to(backends.iter(), "1s")
        .output_opt("spool-size-mb", 1);
    let relay = Relay::start(&cfg.to_toml());
    backends[0].kill9();
    let mut statuses = Vec::new();
    for r in 0..20 {
        // ~100 KB each: the 1 MiB spool takes about ten.
        statuses.push(relay.write(&db, &seq_body("full", r * 2000, 2000)).status);
    }
    let accepted = statuses.iter().filter(|&&s| s == 204).count() as u64;
    assert!((5..20).contains(&accepted), "{statuses:?}");
    // Once full, every later write fails (a single backend: 503), never a false 204.
    let first_fail = statuses.iter().position(|&s| s != 204).unwrap();
    assert!(
        statuses[first_fail..].iter().all(|&s| s == 503),
        "{statuses:?}"
    );
    assert!(
        relay.wait_for_log("spool write failed", Duration::from_secs(2)),
        "{}",
        relay.stderr_text()
    );
    backends[0].restart();
    assert_eq!(
        wait_count(&backends[0], &db, "full", accepted * 2000),
        accepted * 2000
    );
}

#[test]
fn unwritable_spool_dir_fails_writes_for_that_backend_and_the_relay_keeps_serving() {
    let db = unique_db("dur_unwritable");
    let mut backends = own_backends(1, &db);
    let blocker = tempfile::NamedTempFile::new().unwrap();
    // A path below a regular file can never be created, even by root.
    let spool_dir = blocker.path().join("spool");
    let cfg = RelayConfig::new()
        .global("spool-dir", spool_dir.to_str().unwrap())
        .http_listener("in", "any")
        .outputs_to(backends.iter(), "1s")
        .output_opt("spool-size-mb", 8);
    let relay = Relay::start(&cfg.to_toml());
    assert!(
        relay.wait_for_log("cannot open spool", Duration::from_secs(2)),
        "{}",
        relay.stderr_text()
    );
    // Backend up: writes go straight through.
    assert_eq!(relay.write(&db, "u v=1 1\n").status, 204);
    backends[0].kill9();
    let resp = relay.write(&db, "u v=2 2\n");
    assert_eq!(resp.status, 503, "{}", resp.body_str());
    let ping = http_request(relay.addr(), "GET", "/ping", &[], b"");
    assert_eq!(ping.status, 204);
}

/// The loss/duplicate oracle: sequence-numbered points through backend outages and
/// relay restarts (graceful and kill -9); every acknowledged point must end up on
/// every backend.
#[test]
fn randomised_outages_and_restarts_lose_no_acknowledged_point() {
    let db = unique_db("dur_oracle");
    let mut backends = own_backends(2, &db);
    let cfg = spooled("all", &backends, "1s", 64, "500ms");
    let toml = cfg.to_toml();
    let mut relay = Some(Relay::start(&toml));
    // A small deterministic generator: the same schedule on every run.
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut acked = Vec::new();
    let mut seq = 0u64;
    for step in 0..24 {
        match next() % 6 {
            0 => {
                let i = (next() % 2) as usize;
                if backends[i].is_running() {
                    backends[i].kill9();
                } else {
                    backends[i].restart();
                }
            }
            1 => {
                let r = relay.take().unwrap();
                let dir = if next() % 2 == 0 {
                    r.into_dir()
                } else {
                    let mut r = r;
                    assert!(r.stop().success(), "step {step}");
                    r.into_dir()
                };
                relay = Some(Relay::start_in(dir, &toml));
            }
            _ => {}
        }
        let r = relay.as_ref().unwrap();
        for _ in 0..3 {
            let n = 25;
            let resp = r.write(&db, &seq_body("o", seq, n));
            if resp.status == 204 {
                acked.extend(seq..seq + n);
            }
            seq += n;
        }
    }
    for b in backends.iter_mut() {
        if !b.is_running() {
            b.restart();
        }
    }
    assert!(
        acked.len() > 100,
        "too few writes acknowledged: {}",
        acked.len()
    );
    for b in &backends {
        let mut got = Vec::new();
        let complete = wait_until(CATCH_UP, || {
            got = rows(b.http_addr(), &db, "SELECT seq FROM o")
                .into_iter()
                .map(|r| r[1].parse::<u64>().unwrap())
                .collect();
            acked.iter().all(|s| got.binary_search(s).is_ok())
        });
        let missing: Vec<_> = acked
            .iter()
            .filter(|s| got.binary_search(s).is_err())
            .take(10)
            .collect();
        assert!(
            complete,
            "backend {} misses acknowledged points, e.g. {missing:?}",
            b.http_addr()
        );
        // No point beyond what was sent, and (timestamps being unique) no duplicates.
        assert!(got.len() as u64 <= seq);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }
}

/// SIGTERM while writes wait in a hung backend's channel: they go to its spool, the
/// relay exits 0, and the next start delivers them.
#[test]
fn sigterm_hands_waiting_writes_to_the_spool() {
    let db = unique_db("dur_sigterm");
    let mut backends = own_backends(2, &db);
    let cfg = spooled("any", &backends, "2s", 16, "500ms").global("shutdown-timeout", "5s");
    let toml = cfg.to_toml();
    let mut relay = Relay::start(&toml);
    backends[1].pause();
    for r in 0..10 {
        // Answered by backend 0; backend 1's worker is stuck on the first one.
        assert_eq!(relay.write(&db, &seq_body("st", r * 10, 10)).status, 204);
    }
    let status = relay.stop();
    assert!(status.success(), "{status:?}\n{}", relay.stderr_text());
    backends[1].resume();
    let _relay = Relay::start_in(relay.into_dir(), &toml);
    assert_eq!(wait_count(&backends[1], &db, "st", 100), 100);
}

/// A hung backend (SIGSTOP: it accepts and never answers) with a spool: the write
/// times out at the backend, is spooled, and is answered 204 within the client's
/// time (the output's timeout).
#[test]
fn a_hung_backend_with_a_spool_still_gets_204_within_the_timeout() {
    let db = unique_db("dur_hung");
    let mut backends = own_backends(1, &db);
    let cfg = spooled("any", &backends, "1s", 16, "500ms");
    let relay = Relay::start(&cfg.to_toml());
    backends[0].pause();
    let started = std::time::Instant::now();
    let resp = relay.write(&db, &seq_body("hung", 0, 10));
    let took = started.elapsed();
    assert_eq!(resp.status, 204, "{}", resp.body_str());
    assert!(
        took < Duration::from_millis(1100),
        "answered after {took:?}"
    );
    backends[0].resume();
    assert_eq!(wait_count(&backends[0], &db, "hung", 10), 10);
}

/// A hung backend holds its worker for up to `timeout`; writes that arrive meanwhile
/// overflow its 4 096-job channel. With a spool they must still all arrive.
#[test]
fn writes_overflowing_a_hung_backends_channel_are_kept_by_its_spool() {
    const WRITES: u64 = 6000;
    let db = unique_db("dur_overflow_channel");
    let mut backends = own_backends(2, &db);
    let cfg = spooled("any", &backends, "10s", 64, "500ms");
    let relay = Relay::start(&cfg.to_toml());
    backends[1].pause();
    let addr = relay.addr();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in (w..WRITES).step_by(16) {
                    let body = format!("ovf seq={i}i {}\n", 1_000_000 + i);
                    write_ok(addr, &db, body.as_bytes());
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    backends[1].resume();
    assert_eq!(count(backends[0].http_addr(), &db, "ovf"), WRITES);
    assert_eq!(wait_count(&backends[1], &db, "ovf", WRITES), WRITES);
}

/// When a spooling backend's overflow list passes its bound, the relay holds new
/// writes (and stops reading their clients) instead of dropping them; they go on once
/// the backend's worker has caught up.
#[test]
fn writes_past_the_overflow_bound_are_held_not_dropped() {
    let db = unique_db("dur_hold");
    let mut backends = own_backends(2, &db);
    // A 2 MiB spool bounds the overflow list at 2 MiB.
    let cfg = spooled("any", &backends, "10s", 2, "500ms");
    let relay = Relay::start(&cfg.to_toml());
    backends[1].pause();
    let addr = relay.addr();
    // Fill the hung backend's channel (4 096 jobs) with small writes.
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in (w..4200).step_by(16) {
                    write_ok(addr, &db, format!("small seq={i}i {i}\n").as_bytes());
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // Then more than 2 MiB into the overflow list: the last write has to wait.
    let big = |k: u64| seq_body(&format!("big{k}"), 0, 30_000);
    for k in 0..2 {
        write_ok(addr, &db, big(k).as_bytes());
    }
    let held = {
        let db = db.clone();
        std::thread::spawn(move || relay_write_status(addr, &db, &big(2)))
    };
    let metric = |name: &str| metric_value(&relay, name);
    assert!(
        wait_until(Duration::from_secs(5), || metric(
            "influx_relay_held_changes_total{listener=\"in\"}"
        ) >= 1.0),
        "no write was held"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !held.is_finished(),
        "the held write was answered while held"
    );
    backends[1].resume();
    assert_eq!(held.join().unwrap(), 204);
    // What reached b1's spool was synced and then replayed, and the counters say so.
    let b1 = |family: &str| {
        metric(&format!(
            "influx_relay_{family}{{listener=\"in\",backend=\"b1\"}}"
        ))
    };
    assert!(b1("backend_spool_syncs_total") >= 1.0);
    assert!(b1("backend_spool_appended_bytes_total") > 0.0);
    assert!(wait_until(Duration::from_secs(20), || b1(
        "backend_replayed_points_total"
    ) > 0.0));
    assert_eq!(
        metric("influx_relay_backend_dropped_points_total{listener=\"in\",backend=\"b1\",reason=\"queue_full\"}"),
        0.0
    );
}

fn relay_write_status(addr: std::net::SocketAddr, db: &str, body: &str) -> u16 {
    let path = format!("/write?db={}", url_encode(db));
    http_request(addr, "POST", &path, &[], body.as_bytes()).status
}

/// The value of one sample in the relay's `/metrics`.
fn metric_value(relay: &Relay, sample: &str) -> f64 {
    let text = http_request(relay.addr(), "GET", "/metrics", &[], b"").body_str();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in /metrics:\n{text}"))
}
