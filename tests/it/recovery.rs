//! The relay follows a backend's state without traffic: idle backends are probed, so
//! `/health` tells the truth, and a backend's catch-up starts when it is back rather
//! than when the replay's backoff runs out.

use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn health_fails_within_seconds_when_idle_backends_die() {
    let mut backends = Influxd::start_n(2);
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to(backends.iter(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let health = || http_request(relay.addr(), "GET", "/health", &[], b"").status;
    assert_eq!(health(), 200);
    for b in &mut backends {
        b.kill9();
    }
    // No write comes in: only the relay's own probes can notice.
    let killed = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || health() == 503),
        "/health still 200 with every backend dead"
    );
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "took {:?}",
        killed.elapsed()
    );
    let status = http_request(relay.addr(), "GET", "/status", &[], b"").body_str();
    assert!(status.contains("\"state\":\"down\""), "{status}");
}

#[test]
fn catch_up_starts_when_the_backend_is_back_not_when_the_backoff_ends() {
    let db = unique_db("rc_wake");
    let mut backend = Influxd::start();
    create_db(&backend, &db);
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to([&backend], "1s")
        .output_opt("spool-size-mb", 16)
        .output_opt("max-delay-interval", "60s");
    let relay = Relay::start(&cfg.to_toml());
    backend.kill9();
    for i in 0..3 {
        assert_eq!(relay.write(&db, &format!("w v={i} {i}\n")).status, 204);
    }
    // Replays fail at about 0, 0.5, 1.5, 3.5 and 7.5 s; the next waits 8 s more.
    std::thread::sleep(Duration::from_millis(8000));
    backend.restart();
    let back = Instant::now();
    assert!(
        wait_until(Duration::from_secs(15), || count(
            backend.http_addr(),
            &db,
            "w"
        ) == 3),
        "the spooled writes never arrived"
    );
    assert!(
        back.elapsed() < Duration::from_secs(4),
        "catch-up began {:?} after the backend was back",
        back.elapsed()
    );
}
