//! The status page (README: Status page) as people see it: served on every HTTP
//! listener, guarded like `/status`, and, in a real browser in front of real `influxd`,
//! showing a killed backend down and back up and a dead relay as a banner.
//!
//! Screenshots go to `target/status-page/` for people to look at.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::auth::{base64, users};
use crate::browser::{chromium_or_skip, Browser};
use crate::util::*;

/// The page polls every 2 s and probes run every second: a change must show within
/// this (6 s), or the page is too slow for someone watching an outage.
const SHOWS_WITHIN: Duration = Duration::from_secs(6);
/// Backends configured on the crowded listener: the page must stay readable with them.
const MANY: usize = 20;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/status-page")
}

#[test]
fn served_on_every_listener_and_guarded_like_status() {
    let (b0, b1) = (&shared_backends()[0], &shared_backends()[1]);
    let cfg = RelayConfig::new()
        .http_listener("open", "any")
        .output("b0", &b0.write_url(), "2s")
        .output_opt("spool-size-mb", 8)
        .http_listener("writers", "any")
        .listener_opt("users", users())
        .outputs_to([b0], "2s")
        .http_listener("guarded", "any")
        .listener_opt("users", users())
        .listener_opt("auth-metrics", true)
        .outputs_to([b1], "2s");
    let relay = Relay::start(&cfg.to_toml());
    let page = include_bytes!("../../src/status.html");

    let open = cfg.listener_addr("open");
    for path in ["/", "/?refresh=1"] {
        let resp = http_request(open, "GET", path, &[], b"");
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(
            resp.header("Content-Type"),
            Some("text/html; charset=utf-8")
        );
        let policy = resp.header("Content-Security-Policy").unwrap_or_default();
        assert!(policy.starts_with("default-src 'none';"), "{policy}");
        assert!(policy.contains("connect-src 'self'"), "{policy}");
        assert_eq!(resp.body, page);
        assert_identity(&resp);
    }
    let head = http_request(open, "HEAD", "/", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(&*page.len().to_string())
    );
    assert!(head.body.is_empty());
    assert_eq!(http_request(open, "POST", "/", &[], b"").status, 404);

    // What the page reads for its spool bar.
    let status = Json::parse(&http_request(open, "GET", "/status", &[], b"").body_str())
        .expect("status is JSON");
    let backend = &status["http"][0]["backends"][0];
    assert_eq!(backend["spool_limit_bytes"].as_u64(), Some(8 << 20));
    assert_eq!(backend["queued_spool_bytes"].as_u64(), Some(0));

    // Authentication for writes alone leaves the page open, like /status.
    let writers = cfg.listener_addr("writers");
    assert_eq!(http_request(writers, "GET", "/", &[], b"").status, 200);

    let guarded = cfg.listener_addr("guarded");
    let refused = http_request(guarded, "GET", "/", &[], b"");
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("WWW-Authenticate"),
        Some(r#"Basic realm="influx-relay""#),
        "browsers ask for credentials only when challenged"
    );
    let basic = format!("Basic {}", base64(b"telegraf:s3cret"));
    let resp = http_request(guarded, "GET", "/", &[("Authorization", &basic)], b"");
    assert_eq!(resp.status, 200);
    drop(relay);
}

/// The page's view of one backend card: its `data-state`, or null without one.
fn card_state(browser: &mut Browser, key: &str) -> Option<String> {
    let js = format!(
        "(() => {{ const c = document.querySelector('[data-backend=\"{key}\"]'); \
         return c ? c.dataset.state : null; }})()"
    );
    browser.eval(&js).as_str().map(str::to_string)
}

/// Poll the page until the card of `key` shows `state`; returns how long it took.
fn wait_for_state(browser: &mut Browser, key: &str, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if card_state(browser, key).as_deref() == Some(state) {
            return started.elapsed();
        }
        if started.elapsed() > within {
            let text = browser.eval("document.body.innerText");
            panic!(
                "{key} not shown {state} within {within:?}; the page says:\n{}",
                text.as_str().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn banner(browser: &mut Browser) -> Option<String> {
    let js = "(() => { const b = document.getElementById('banner'); \
              return b.hidden ? null : b.textContent; })()";
    browser.eval(js).as_str().map(str::to_string)
}

/// Writes one small batch every 50 ms until dropped, so the charts have something to
/// draw. Failures are expected while the relay is down and are ignored.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Writer {
    fn start(relay: SocketAddr, db: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, path) = (stop.clone(), format!("/write?db={}", url_encode(db)));
        let thread = thread::spawn(move || {
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let body: String = (0..10)
                    .map(|k| format!("page,src=browser v={}i\n", i * 10 + k))
                    .collect();
                let _ = try_http_request(
                    relay,
                    "POST",
                    &path,
                    &[],
                    body.as_bytes(),
                    Duration::from_secs(2),
                );
                i += 1;
                thread::sleep(Duration::from_millis(50));
            }
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_browser_shows_a_killed_backend_down_and_up_again_and_a_dead_relay() {
    let Some(chromium) = chromium_or_skip("status_page::a_browser_shows_a_killed_backend") else {
        return;
    };
    let mut backends = Influxd::start_n(2);
    let db = unique_db("page");
    for b in &backends {
        create_db(b, &db);
    }
    let mut cfg = RelayConfig::new().http_listener("in", "all");
    for (i, b) in backends.iter().enumerate() {
        cfg = cfg
            .output(&format!("b{i}"), &b.write_url(), "2s")
            .output_opt("spool-size-mb", 16);
    }
    cfg = cfg.http_listener("crowded", "any");
    for i in 0..MANY {
        let url = backends[i % 2].write_url();
        cfg = cfg.output(&format!("c{i:02}"), &url, "2s");
    }
    cfg = cfg.udp_listener("udp-in").outputs_to(&backends, "2s");
    let mut relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let writer = Writer::start(addr, &db);

    let mut browser = Browser::start(&chromium, 1280, 1000);
    browser.navigate(&format!("http://{addr}/"));
    wait_for_state(&mut browser, "in/b1", "up", Duration::from_secs(15));
    let cards = browser.eval("document.querySelectorAll('[data-backend^=\"crowded/\"]').length");
    assert_eq!(cards.as_u64(), Some(MANY as u64), "one card per backend");
    let udp = browser.eval("document.querySelectorAll('table tr').length");
    assert_eq!(
        udp.as_u64(),
        Some(5),
        "UDP: heading and totals, heading and 2 outputs"
    );

    backends[1].kill9();
    let took = wait_for_state(&mut browser, "in/b1", "down", SHOWS_WITHIN);
    eprintln!("status_page: backend shown down {took:?} after kill -9");
    // Let a poll or two pass so the error and the spool show up.
    thread::sleep(Duration::from_millis(2500));
    let card = browser.eval("document.querySelector('[data-backend=\"in/b1\"]').innerText");
    let card = card.as_str().unwrap_or_default().to_string();
    assert!(card.contains("last error"), "{card}");
    assert!(
        card.contains("of 16.0 MiB"),
        "spool against its limit: {card}"
    );
    let lines =
        browser.eval("document.querySelectorAll('[data-backend=\"in/b0\"] polyline').length");
    assert_eq!(
        lines.as_u64(),
        Some(3),
        "delivered, failed and dropped charts"
    );
    assert_eq!(banner(&mut browser), None);
    browser.screenshot(&screenshots().join("backend-down.png"));

    // A phone: the page must not need sideways scrolling.
    browser.resize(390, 844, 2.0, true);
    thread::sleep(Duration::from_millis(300));
    let overflow = browser.eval("document.documentElement.scrollWidth - window.innerWidth");
    assert!(
        overflow.as_i64().is_some_and(|o| o <= 0),
        "{overflow} px wider than a phone"
    );
    browser.screenshot(&screenshots().join("phone.png"));
    browser.call("Emulation.clearDeviceMetricsOverride", "{}");

    backends[1].restart();
    let took = wait_for_state(&mut browser, "in/b1", "up", SHOWS_WITHIN + SHOWS_WITHIN);
    eprintln!("status_page: backend shown up {took:?} after its restart");
    browser.screenshot(&screenshots().join("backend-up.png"));

    relay.kill9();
    let started = Instant::now();
    let text = loop {
        if let Some(text) = banner(&mut browser) {
            break text;
        }
        assert!(
            started.elapsed() < SHOWS_WITHIN,
            "no banner for a dead relay"
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("not answering"), "{text}");
    browser.screenshot(&screenshots().join("relay-down.png"));

    relay.restart();
    let started = Instant::now();
    while banner(&mut browser).is_some() {
        assert!(
            started.elapsed() < SHOWS_WITHIN,
            "banner stays after the relay is back"
        );
        thread::sleep(Duration::from_millis(100));
    }
    drop(writer);
}

#[test]
fn a_browser_signs_in_when_auth_metrics_asks() {
    let Some(chromium) = chromium_or_skip("status_page::a_browser_signs_in") else {
        return;
    };
    let cfg = RelayConfig::new()
        .http_listener("guarded", "any")
        .listener_opt("users", users())
        .listener_opt("auth-metrics", true)
        .outputs_to(shared_backends(), "2s");
    let relay = Relay::start(&cfg.to_toml());
    let mut browser = Browser::start(&chromium, 1000, 800);
    // Credentials in the URL stand in for the browser's sign-in dialog: the page's own
    // fetch of `status` then carries them as a signed-in person's would.
    browser.navigate(&format!("http://telegraf:s3cret@{}/", relay.addr()));
    wait_for_state(&mut browser, "guarded/b0", "up", Duration::from_secs(15));
    assert_eq!(banner(&mut browser), None);
}

/// A backend being rebuilt shows as such, with its progress, and goes back to up when
/// the rebuild is cancelled.
#[test]
fn a_browser_shows_a_rebuild_in_progress() {
    let Some(chromium) = chromium_or_skip("status_page::a_browser_shows_a_rebuild_in_progress")
    else {
        return;
    };
    let backends = Influxd::start_n(2);
    let db = unique_db("page_rebuild");
    create_db(&backends[0], &db);
    // One point per hour over a month: hundreds of windows at window=1h, copied slowly.
    let start: i64 = 1_714_557_600_000_000_000;
    let body: String = (0..720)
        .map(|h| format!("m v={h} {}\n", start + h * 3_600_000_000_000))
        .collect();
    assert_eq!(backends[0].write(&db, &body).status, 204);
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .output("a", &backends[0].write_url(), "2s")
        .output("b", &backends[1].write_url(), "2s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let started = http_request(
        addr,
        "POST",
        "/admin/rebuild?output=b&window=1h&rate=5",
        &[],
        b"",
    );
    assert_eq!(started.status, 202, "{}", started.body_str());

    let mut browser = Browser::start(&chromium, 1000, 700);
    browser.navigate(&format!("http://{addr}/"));
    wait_for_state(&mut browser, "in/b", "rebuilding", SHOWS_WITHIN);
    let shown = Instant::now();
    let progress = loop {
        let text = browser.eval(
            "(() => { const r = document.querySelector('[data-backend=\"in/b\"] [data-rebuild]'); \
             return r ? r.innerText : null; })()",
        );
        match text.as_str() {
            Some(t) if t.contains("copying") => break t.to_string(),
            _ if shown.elapsed() > SHOWS_WITHIN => panic!("no rebuild progress shown: {text:?}"),
            _ => thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(progress.contains("running from a"), "{progress}");
    assert!(progress.contains("windows"), "{progress}");
    browser.screenshot(&screenshots().join("rebuilding.png"));

    let cancelled = http_request(addr, "DELETE", "/admin/rebuild?output=b", &[], b"");
    assert_eq!(cancelled.status, 200, "{}", cancelled.body_str());
    wait_for_state(&mut browser, "in/b", "up", SHOWS_WITHIN);
}
