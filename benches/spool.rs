//! The disk spool alone (`influx_relay::spool::Spool`): sequential appends, one group
//! commit (`fdatasync`) per call, and replay (`peek` then `consume`) of what was
//! appended. `scripts/bench.sh spool-disk` runs this next to `dd oflag=dsync` on the
//! same directory, so the append rate can be read against what the disk does.
//!
//! The spool lives in `SPOOL_BENCH_DIR`, default `target/tmp/spool-bench` (on the disk
//! the target directory is on). Every bench asserts the record count it expects.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use influx_relay::spool::{Record, RecordKind, RecordRef, Spool};

mod common;
use common::telegraf_body;

/// One client write of 100 telegraf lines (about 20 KB), as the relay spools it.
const LINES_PER_WRITE: usize = 100;
/// The spool's bound: far above what one sample appends, so `Full` never shows up.
const MAX_BYTES: u64 = 64 << 30;
/// Records appended before each replay measurement: 64 MiB of writes.
const REPLAY_BYTES: usize = 64 << 20;
/// What one replay step reads, as the backend's sender asks for a batch.
const REPLAY_PEEK_BYTES: usize = 4 << 20;
const QUERY: &[u8] = b"db=telegraf&precision=n";

fn bench_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("SPOOL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("spool-bench"));
    let dir = root.join(name);
    // A previous run that was interrupted may have left a spool behind.
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn fresh_spool(dir: &PathBuf) -> Spool {
    let _ = std::fs::remove_dir_all(dir);
    let (spool, recovery) = Spool::open(dir, MAX_BYTES).expect("spool opens");
    assert_eq!(recovery.records, 0);
    spool
}

fn append(c: &mut Criterion) {
    let body = telegraf_body(LINES_PER_WRITE, true);
    let mut group = c.benchmark_group("spool/append");
    // Groups of 1 and 16 writes: what one client write costs alone, and a group commit
    // as a busy backend queue makes it.
    for writes in [1usize, 16] {
        let dir = bench_dir(&format!("append-{writes}"));
        let recs: Vec<RecordRef> = (0..writes)
            .map(|_| RecordRef {
                kind: RecordKind::Write,
                created_ms: 1_700_000_000_000,
                query: QUERY,
                auth: None,
                body: &body,
            })
            .collect();
        group.throughput(Throughput::Bytes((body.len() * writes) as u64));
        group.bench_function(format!("{writes}x{}B", body.len()), |b| {
            b.iter_custom(|iters| {
                let mut spool = fresh_spool(&dir);
                let start = Instant::now();
                for _ in 0..iters {
                    spool.append(&recs).expect("append");
                }
                let took = start.elapsed();
                assert_eq!(spool.len_records(), iters * writes as u64);
                drop(spool);
                let _ = std::fs::remove_dir_all(&dir);
                took
            })
        });
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    let body = telegraf_body(LINES_PER_WRITE, true);
    let writes = REPLAY_BYTES / body.len();
    let dir = bench_dir("replay");
    let mut group = c.benchmark_group("spool/replay");
    group.throughput(Throughput::Bytes((body.len() * writes) as u64));
    group.bench_function(format!("{writes}x{}B", body.len()), |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            let mut out: Vec<Record> = Vec::new();
            for _ in 0..iters {
                let mut spool = fresh_spool(&dir);
                let recs: Vec<RecordRef> = (0..64)
                    .map(|_| RecordRef {
                        kind: RecordKind::Write,
                        created_ms: 1_700_000_000_000,
                        query: QUERY,
                        auth: None,
                        body: &body,
                    })
                    .collect();
                let mut left = writes;
                while left > 0 {
                    let n = left.min(recs.len());
                    spool.append(&recs[..n]).expect("append");
                    left -= n;
                }
                // The segments were just written: they are in the page cache, as a
                // backlog that has just built up is.
                let start = Instant::now();
                let mut replayed = 0usize;
                let mut bytes = 0usize;
                loop {
                    spool.peek(REPLAY_PEEK_BYTES, &mut out).expect("peek");
                    if out.is_empty() {
                        break;
                    }
                    replayed += out.len();
                    bytes += out.iter().map(|r| r.body.len()).sum::<usize>();
                    spool.consume(out.len()).expect("consume");
                }
                took += start.elapsed();
                assert_eq!((replayed, bytes), (writes, writes * body.len()));
                assert!(spool.is_empty());
            }
            let _ = std::fs::remove_dir_all(&dir);
            took
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Each append is an fsync: a few ms each on a slow disk, so fewer samples.
    config = Criterion::default().sample_size(20);
    targets = append, replay
}
criterion_main!(benches);
