use super::*;

#[test]
fn default_names_make_one_directory_each() {
    assert_eq!(
        path_safe("http://127.0.0.1:9096"),
        "http%3A%2F%2F127.0.0.1%3A9096"
    );
    assert_eq!(path_safe("local-1_a.b"), "local-1_a.b");
    assert_eq!(path_safe(".."), "%2E.");
    assert!(!path_safe("a/../b").contains('/'));
}

#[test]
fn query_path_sits_beside_the_write_path() {
    assert_eq!(query_path_of("/write"), "/query");
    assert_eq!(query_path_of("/influx/write"), "/influx/query");
    assert_eq!(query_path_of("/custom"), "/query");
}

/// Regression: with the overflow list active every new write goes to it, so the
/// channel can stay empty; the worker must still move the list into its queue.
#[test]
fn an_active_overflow_list_is_drained_while_the_channel_is_empty() {
    let config = crate::config::parse(
        "[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nname = \"dead\"\n\
         location = \"http://127.0.0.1:1/write\"\ntimeout = \"1s\"\nbuffer-size-mb = 1\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (handle, backend) = Backend::start("in", &config.http[0].outputs[0], dir.path()).unwrap();
    let job = || Job {
        batch: Arc::new(crate::batch::Batch {
            kind: Kind::Write,
            query: "db=x".into(),
            auth: None,
            body: b"m v=1 1\n".to_vec(),
            points: 1,
            seq: 0,
        }),
        reply: None,
    };
    let overflow = handle
        .overflow
        .as_ref()
        .expect("a buffering backend has one");
    assert!(matches!(overflow.offer(job(), true), Offer::Taken));
    handle.submit(job()); // goes behind it, not into the channel
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.stats.queued_requests.get() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(handle.stats.queued_requests.get(), 2);
    assert!(!overflow.active.load(Ordering::Acquire));
    handle.close(Instant::now());
    backend.join();
}

/// With a spool, a backend whose worker is stuck never drops at a full channel:
/// the overflow list takes everything, and past its bound the backend says it is
/// congested so that the loops hold their clients; once the worker is free again
/// every write reaches the spool.
#[test]
fn a_full_channel_never_drops_for_a_spooling_backend_it_reports_congestion() {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = crate::config::parse(&format!(
        "[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nname = \"hung\"\n\
         location = \"http://{}/write\"\ntimeout = \"4s\"\nspool-size-mb = 1\n",
        hung.local_addr().unwrap()
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (handle, backend) = Backend::start("in", &config.http[0].outputs[0], dir.path()).unwrap();
    let batch = Arc::new(crate::batch::Batch {
        kind: Kind::Write,
        query: "db=x".into(),
        auth: None,
        body: vec![b'\n'; 64],
        points: 1,
        seq: 0,
    });
    let job = || Job {
        batch: batch.clone(),
        reply: None,
    };
    handle.submit(job());
    let _held = hung.accept().unwrap();
    // The channel, then 1 MiB (the spool's size bounds the list) and one more.
    let n = CHANNEL_CAPACITY + (1 << 20) / 64 + 1;
    assert!(!handle.congested());
    for _ in 0..n {
        handle.submit(job());
    }
    assert!(handle.congested());
    assert_eq!(handle.stats.dropped_queue_full.get(), 0);
    // The stuck attempt times out; everything goes to the spool in order (the
    // spool is full before the last ones: those are the only drops, and counted).
    let deadline = Instant::now() + Duration::from_secs(30);
    while handle.congested() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!handle.congested());
    let s = &handle.stats;
    let settled = || s.spooled_points.get() + s.dropped_spool_full.get() == n as u64 + 1;
    while !settled() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(settled(), "{:?}", s.spooled_points.get());
    assert_eq!(s.dropped_queue_full.get(), 0);
    handle.close(Instant::now());
    backend.join();
}

/// Without a buffer or spool, a backend whose worker is stuck takes what its
/// channel holds and no more: the rest is counted as dropped, never blocked on.
#[test]
fn a_full_channel_drops_and_counts_for_an_unbuffered_backend() {
    // Accepts connections (the kernel's backlog) but never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = crate::config::parse(&format!(
        "[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nname = \"hung\"\n\
         location = \"http://{}/write\"\ntimeout = \"2s\"\n",
        hung.local_addr().unwrap()
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (handle, backend) = Backend::start("in", &config.http[0].outputs[0], dir.path()).unwrap();
    assert!(handle.overflow.is_none());
    let batch = Arc::new(crate::batch::Batch {
        kind: Kind::Write,
        query: "db=x".into(),
        auth: None,
        body: b"m v=1 1\nm v=2 2\n".to_vec(),
        points: 2,
        seq: 0,
    });
    let job = || Job {
        batch: batch.clone(),
        reply: None,
    };
    // Once the backend has its connection, the worker holds the first write and
    // waits for an answer that never comes: the channel alone takes the rest.
    handle.submit(job());
    let _held = hung.accept().unwrap();
    let extra = 10;
    for _ in 0..CHANNEL_CAPACITY + extra {
        handle.submit(job());
    }
    assert_eq!(handle.stats.dropped_queue_full.get(), 2 * extra as u64);
    assert_eq!(handle.stats.failed_requests.get(), extra as u64);
    handle.close(Instant::now());
    backend.join();
}

#[test]
fn replay_earns_live_writes_their_share_capped() {
    let pace = Pace {
        percent: 50,
        ..Pace::default()
    };
    pace.credit.store(-1000, Ordering::Relaxed);
    pace.replayed(4000);
    assert_eq!(pace.credit.load(Ordering::Relaxed), 1000);
    pace.replayed(64 << 20);
    assert_eq!(pace.credit.load(Ordering::Relaxed), CATCH_UP_CREDIT_MAX);
    pace.caught_up();
    assert_eq!(pace.credit.load(Ordering::Relaxed), 0);
    // Off: replay earns nothing and nothing is held.
    let off = Pace::default();
    off.replayed(4000);
    assert_eq!(off.credit.load(Ordering::Relaxed), 0);
}

#[test]
fn direct_attempts_leave_time_to_spool() {
    assert_eq!(
        direct_timeout(Duration::from_secs(10)),
        Duration::from_millis(9750)
    );
    assert_eq!(
        direct_timeout(Duration::from_secs(1)),
        Duration::from_millis(900)
    );
}
