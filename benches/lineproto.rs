//! Line protocol throughput: `check_body` and `stamp_body` on 1000 telegraf-like lines.
//! Every bench asserts the answer it expects, so a fast-but-wrong change never looks like
//! a win.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use influx_relay::lineproto::{check_body, stamp_body, BodyInfo};

mod common;
use common::telegraf_body;

const LINES: usize = 1000;

/// This thread's CPU time. The machine is shared with other builds; time spent
/// descheduled is not the code's, and wall time under load says little about it.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, which outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Run `f` `iters` times and return the CPU time it took.
fn cpu_timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = cpu_time();
    for _ in 0..iters {
        f();
    }
    cpu_time() - start
}

fn bench(c: &mut Criterion) {
    let stamped = telegraf_body(LINES, true);
    let bare = telegraf_body(LINES, false);
    let mean_line = stamped.len() / LINES;
    assert!(
        (180..=300).contains(&mean_line),
        "lines average {mean_line} bytes"
    );

    let mut group = c.benchmark_group("lineproto");
    group.throughput(Throughput::Bytes(stamped.len() as u64));
    group.bench_function("check_body/timestamped", |b| {
        b.iter_custom(|iters| {
            cpu_timed(iters, || {
                let info = check_body(black_box(&stamped)).expect("valid body");
                assert_eq!(
                    info,
                    BodyInfo {
                        points: LINES,
                        needs_rewrite: false
                    }
                );
            })
        })
    });

    group.throughput(Throughput::Bytes(bare.len() as u64));
    group.bench_function("check_body/untimestamped", |b| {
        b.iter_custom(|iters| {
            cpu_timed(iters, || {
                let info = check_body(black_box(&bare)).expect("valid body");
                assert_eq!(
                    info,
                    BodyInfo {
                        points: LINES,
                        needs_rewrite: true
                    }
                );
            })
        })
    });

    let mut out = Vec::with_capacity(bare.len() + LINES * 21);
    let ts = 1_700_000_000_123_456_789;
    group.bench_function("stamp_body/untimestamped", |b| {
        b.iter_custom(|iters| {
            cpu_timed(iters, || {
                out.clear();
                stamp_body(black_box(&bare), ts, &mut out);
                assert_eq!(out.len(), bare.len() + LINES * 20);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
