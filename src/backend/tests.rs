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
    let (handle, backend) = Backend::start(
        "in",
        &config.http[0].outputs[0],
        dir.path(),
        Default::default(),
    )
    .unwrap();
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
    let (handle, backend) = Backend::start(
        "in",
        &config.http[0].outputs[0],
        dir.path(),
        Default::default(),
    )
    .unwrap();
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
    let (handle, backend) = Backend::start(
        "in",
        &config.http[0].outputs[0],
        dir.path(),
        Default::default(),
    )
    .unwrap();
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
    // Every write was given up (a full channel, a timeout, the shutdown deadline):
    // one range says what the backend lacks, in memory and, after join, on disk.
    let ranges = handle.dropped.ranges();
    assert_eq!(ranges.len(), 1);
    let r = &ranges[0];
    assert_eq!((r.database.as_str(), r.from_ns, r.until_ns), ("x", 1, 3));
    assert!(r.points >= 2 * extra as u64);
    let file = output_dir(dir.path(), "in", "hung").join(crate::dropped::FILE_NAME);
    assert_eq!(DroppedLog::open(file).ranges(), ranges);
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

/// A backend that answers from a script and records what it was sent.
struct Scripted {
    answers: std::collections::VecDeque<Outcome>,
    sent: Vec<replay::ReplayedAttempt>,
}

impl replay::Target for Scripted {
    fn send(&mut self, _: &Worker, a: &queue::Attempt) -> Outcome {
        self.sent.push(replay::ReplayedAttempt::of(a));
        self.answers.pop_front().unwrap_or(Outcome::Delivered)
    }

    fn ping(&mut self, _: &Worker) -> bool {
        true
    }
}

fn rejected(status: u16, body: &str) -> Outcome {
    Outcome::Rejected {
        status,
        body: Arc::from(body.as_bytes()),
    }
}

fn failed() -> Outcome {
    Outcome::Failed {
        status: Some(503),
        body: Arc::from(&b""[..]),
    }
}

/// A worker with a RAM buffer and no threads, its queue holding `writes` (query,
/// body) in order, for the replay loop to drain against a script.
fn queued_worker(writes: &[(&str, &str)], max_batch_kb: u32) -> Worker {
    let config = crate::config::parse(&format!(
        "[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nname = \"s\"\n\
         location = \"http://127.0.0.1:1/write\"\nbuffer-size-mb = 1\n\
         max-delay-interval = \"20ms\"\nmax-batch-kb = {max_batch_kb}\n"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::new("in", &config.http[0].outputs[0], None, dir.path());
    let jobs = writes
        .iter()
        .enumerate()
        .map(|(i, (query, body))| {
            worker.unapplied.add(i as u64 + 1, 1);
            Job {
                batch: Arc::new(crate::batch::Batch {
                    kind: Kind::Write,
                    query: (*query).into(),
                    auth: None,
                    body: body.as_bytes().to_vec(),
                    points: body.lines().count(),
                    seq: i as u64 + 1,
                }),
                reply: None,
            }
        })
        .collect();
    queue::enqueue(&worker, jobs);
    worker
}

/// Run the replay loop until the queue is empty (or 10 s), then stop it.
fn replay_all(worker: &Worker, script: Vec<Outcome>) -> Scripted {
    let mut backend = Scripted {
        answers: script.into(),
        sent: Vec::new(),
    };
    std::thread::scope(|s| {
        s.spawn(|| replay::replay_loop(worker, &mut backend));
        let deadline = Instant::now() + Duration::from_secs(10);
        while worker.queue.lock().map(|q| q.active).unwrap_or(false) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        worker.control.closing.store(true, Ordering::Release);
        worker.queue_ready.notify_one();
    });
    backend
}

#[test]
fn replay_merges_neighbours_with_the_same_query_in_order() {
    let w = queued_worker(
        &[
            ("db=a", "m v=1 1\n"),
            ("db=a", "m v=2 2\n"),
            ("db=b", "m v=3 3\n"),
            ("db=a", "m v=4 4\n"),
        ],
        512,
    );
    let sent = replay_all(&w, vec![]).sent;
    let bodies: Vec<(&str, &str)> = sent.iter().map(|a| (&a.query[..], &a.body[..])).collect();
    assert_eq!(
        bodies,
        [
            ("db=a", "m v=1 1\nm v=2 2\n"),
            ("db=b", "m v=3 3\n"),
            ("db=a", "m v=4 4\n"),
        ]
    );
    assert!(w.unapplied.is_empty(), "every replayed write is finished");
    assert_eq!(w.stats.replayed_points.get(), 4);
}

#[test]
fn replay_merges_no_further_than_the_batch_limit() {
    let line = format!("m v={} 1\n", "9".repeat(600));
    let writes: Vec<(&str, &str)> = (0..3).map(|_| ("db=a", &line[..])).collect();
    // 1 KiB: two of these lines (610 bytes each) do not fit in one request.
    let sent = replay_all(&queued_worker(&writes, 1), vec![]).sent;
    assert_eq!(sent.len(), 3);
}

#[test]
fn replay_retries_failures_and_a_missing_database_but_drops_other_refusals() {
    let w = queued_worker(&[("db=a", "m v=1 1\n"), ("db=b", "m v=2 2\n")], 512);
    let script = vec![
        failed(),
        rejected(404, r#"{"error":"database not found: \"a\""}"#),
        Outcome::Delivered,
        rejected(400, r#"{"error":"partial write: field type conflict"}"#),
    ];
    let started = Instant::now();
    let sent = replay_all(&w, script).sent;
    let queries: Vec<&str> = sent.iter().map(|a| &a.query[..]).collect();
    // The first write twice more after a 5xx and a 404 database not found, in order;
    // the second once: its 400 drops it rather than blocking the queue.
    assert_eq!(queries, ["db=a", "db=a", "db=a", "db=b"]);
    assert_eq!(w.stats.retries.get(), 2);
    assert_eq!(w.stats.dropped_rejected.get(), 1);
    assert_eq!(w.stats.replayed_points.get(), 1);
    assert!(w.unapplied.is_empty());
    // Two waits of the 20 ms cap.
    assert!(started.elapsed() >= Duration::from_millis(40));
}

#[test]
fn backoff_doubles_to_its_cap_and_starts_over_after_a_success() {
    let mut b = replay::Backoff::new(Duration::from_secs(3));
    let waits: Vec<u64> = (0..5).map(|_| b.failed().as_millis() as u64).collect();
    assert_eq!(waits, [500, 1000, 2000, 3000, 3000]);
    b.succeeded();
    assert_eq!(b.failed(), Duration::from_millis(500));
    // A cap below the first wait is the wait.
    assert_eq!(
        replay::Backoff::new(Duration::from_millis(20)).failed(),
        Duration::from_millis(20)
    );
}

#[test]
fn verdicts_of_every_answer() {
    use replay::{verdict, Verdict};
    assert_eq!(verdict(&Outcome::Delivered), Verdict::Done);
    let answered = Outcome::Answered {
        status: 200,
        body: Arc::from(&b"{}"[..]),
    };
    assert_eq!(verdict(&answered), Verdict::Done);
    assert_eq!(verdict(&failed()), Verdict::Retry);
    assert_eq!(
        verdict(&rejected(404, r#"{"error":"database not found: \"x\""}"#)),
        Verdict::Retry
    );
    assert_eq!(
        verdict(&rejected(
            404,
            r#"{"code":"not found","message":"bucket \"db/rp\" not found"}"#
        )),
        Verdict::Retry
    );
    assert_eq!(verdict(&rejected(400, "{}")), Verdict::Dropped);
    assert_eq!(verdict(&rejected(401, "{}")), Verdict::Dropped);
}
