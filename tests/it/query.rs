//! `/query` through the relay: schema statements through every backend's ordered
//! queue, reads from an in-sync backend, streamed.

use std::time::Duration;

use crate::util::*;

fn q(addr: std::net::SocketAddr, method: &str, params: &str) -> Response {
    match method {
        "GET" => http_request(addr, "GET", &format!("/query?{params}"), &[], b""),
        _ => http_request(
            addr,
            "POST",
            "/query",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            params.as_bytes(),
        ),
    }
}

fn databases(b: &Influxd) -> String {
    query(b.http_addr(), "", "SHOW DATABASES").to_string()
}

#[test]
fn create_database_reaches_every_backend() {
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let db = unique_db("q_create");
    let r = q(
        relay.addr(),
        "POST",
        &format!("q={}", url_encode(&format!("CREATE DATABASE {db}"))),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(
        r.body_str().contains("\"statement_id\":0"),
        "{}",
        r.body_str()
    );
    for b in shared_backends() {
        assert!(databases(b).contains(&db), "{}", databases(b));
    }
}

#[test]
fn create_database_while_a_backend_is_down_arrives_before_the_writes() {
    let mut backends = Influxd::start_n(2);
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .outputs_to(backends.iter(), "1s")
        .output_opt("spool-size-mb", 16)
        .output_opt("max-delay-interval", "500ms");
    let relay = Relay::start(&cfg.to_toml());
    backends[1].kill9();
    let db = unique_db("q_down");
    let r = q(
        relay.addr(),
        "GET",
        &format!("q={}", url_encode(&format!("CREATE DATABASE {db}"))),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    for i in 0..5 {
        let resp = relay.write(&db, &format!("m v={i} {i}\n"));
        assert_eq!(resp.status, 204, "{}", resp.body_str());
    }
    backends[1].restart();
    assert!(wait_until(Duration::from_secs(20), || databases(
        &backends[1]
    )
    .contains(&db)));
    assert!(wait_until(Duration::from_secs(20), || count(
        backends[1].http_addr(),
        &db,
        "m"
    ) == 5));
    assert_eq!(count(backends[0].http_addr(), &db, "m"), 5);
}

#[test]
fn select_returns_rows_and_chunked_answers_stream() {
    let db = shared_db("q_select");
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let body: String = (0..100).map(|i| format!("s v={i} {}\n", i + 1)).collect();
    assert_eq!(relay.write(&db, &body).status, 204);
    let r = q(
        relay.addr(),
        "GET",
        &format!("db={db}&q={}", url_encode("SELECT count(v) FROM s")),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let json = Json::parse(&r.body_str()).unwrap();
    assert_eq!(
        json["results"][0]["series"][0]["values"][0][1].as_u64(),
        Some(100)
    );
    assert!(r.header("X-Relay-Backend").is_some());

    // POST form body, chunked answer: several JSON documents, one per line.
    let r = q(
        relay.addr(),
        "POST",
        &format!(
            "db={db}&chunked=true&chunk_size=10&q={}",
            url_encode("SELECT v FROM s")
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let docs: Vec<_> = r
        .body_str()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| Json::parse(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 10, "{}", r.body_str());
    let rows: usize = docs
        .iter()
        .map(|d| {
            d["results"][0]["series"][0]["values"]
                .as_arr()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(rows, 100);
}

#[test]
fn mixed_or_missing_statements_are_refused() {
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let r = q(
        relay.addr(),
        "GET",
        &format!("q={}", url_encode("CREATE DATABASE x; SELECT * FROM m")),
    );
    assert_eq!(r.status, 400);
    assert!(r.body_str().contains("may not mix"), "{}", r.body_str());
    let r = q(relay.addr(), "GET", "db=x");
    assert_eq!(r.status, 400);
    assert!(
        r.body_str().contains("missing required parameter"),
        "{}",
        r.body_str()
    );
}

#[test]
fn reads_avoid_a_backend_that_is_behind() {
    let db = unique_db("q_behind");
    let mut backends = Influxd::start_n(2);
    for b in &backends {
        create_db(b, &db);
    }
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .output("a", &backends[0].write_url(), "1s")
        .output("b", &backends[1].write_url(), "1s")
        .output_opt("spool-size-mb", 16);
    let relay = Relay::start(&cfg.to_toml());
    backends[1].kill9();
    // Spooled for b, which now lacks an acknowledged write (a paused backend, up but
    // behind, is in `consistency`).
    assert_eq!(relay.write(&db, "r v=1 1\n").status, 204);
    for _ in 0..6 {
        let r = q(
            relay.addr(),
            "GET",
            &format!("db={db}&q={}", url_encode("SELECT count(v) FROM r")),
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(
            r.header("X-Relay-Backend"),
            Some("a"),
            "read went to the backend that is behind"
        );
        assert_eq!(r.header("X-Relay-Behind"), None);
        assert!(r.body_str().contains(",1]"), "{}", r.body_str());
    }
}

#[test]
fn a_read_fails_over_when_a_backend_cannot_be_reached() {
    let db = shared_db("q_failover");
    let dead = format!("http://127.0.0.1:{}/write", free_port());
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .output("dead", &dead, "1s")
        .output("live", &shared_backends()[0].write_url(), "2s");
    let relay = Relay::start(&cfg.to_toml());
    // Until the dead one has failed a write it still counts as in sync: reads that
    // pick it first must move on to the live one.
    for _ in 0..4 {
        let r = q(
            relay.addr(),
            "GET",
            &format!("db={db}&q={}", url_encode("SHOW MEASUREMENTS")),
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.header("X-Relay-Backend"), Some("live"));
    }
}
