//! Line protocol throughput: `check_body` and `stamp_body` on 1000 telegraf-like lines.
//! Every bench asserts the answer it expects, so a fast-but-wrong change never looks like
//! a win.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use influx_relay::lineproto::{check_body, stamp_body, BodyInfo};

mod common;
use common::telegraf_body;

const LINES: usize = 1000;

fn bench(c: &mut Criterion) {
    let stamped = telegraf_body(LINES, true);
    let bare = telegraf_body(LINES, false);

    let mut group = c.benchmark_group("lineproto");
    group.throughput(Throughput::Bytes(stamped.len() as u64));
    group.bench_function("check_body/timestamped", |b| {
        b.iter(|| {
            let info = check_body(black_box(&stamped)).expect("valid body");
            assert_eq!(
                info,
                BodyInfo {
                    points: LINES,
                    needs_rewrite: false
                }
            );
        })
    });

    group.throughput(Throughput::Bytes(bare.len() as u64));
    group.bench_function("check_body/untimestamped", |b| {
        b.iter(|| {
            let info = check_body(black_box(&bare)).expect("valid body");
            assert_eq!(
                info,
                BodyInfo {
                    points: LINES,
                    needs_rewrite: true
                }
            );
        })
    });

    let mut out = Vec::with_capacity(bare.len() + LINES * 21);
    let ts = 1_700_000_000_123_456_789;
    group.bench_function("stamp_body/untimestamped", |b| {
        b.iter(|| {
            out.clear();
            stamp_body(black_box(&bare), ts, &mut out);
            assert_eq!(out.len(), bare.len() + LINES * 20);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
