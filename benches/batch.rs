//! Building the batch every backend receives from a request body
//! (`http::write::prepare`: query checks, line-protocol check, timestamp stamping).
//! Every bench asserts the answer it expects, so a fast-but-wrong change never looks
//! like a win.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use influx_relay::http::write::{prepare, WriteSettings};

mod common;
use common::telegraf_body;

const NOW_NS: i64 = 1_700_000_000_123_456_789;
/// Bytes `stamp_body` appends per line: a space and 19 digits.
const STAMP: usize = 20;

fn bench(c: &mut Criterion) {
    let settings = WriteSettings {
        default_retention_policy: Some("autogen".to_string()),
    };
    let mut group = c.benchmark_group("batch/prepare");
    for lines in [100, 1000] {
        for stamped in [true, false] {
            let body = telegraf_body(lines, stamped);
            let want_len = if stamped {
                body.len()
            } else {
                body.len() + lines * STAMP
            };
            group.throughput(Throughput::Elements(lines as u64));
            let name = format!(
                "{lines}-lines/{}",
                if stamped {
                    "timestamped"
                } else {
                    "untimestamped"
                }
            );
            // The body arrives as an owned buffer from the socket; copying it in the
            // setup keeps that copy out of the measurement.
            group.bench_function(name, |b| {
                b.iter_batched(
                    || body.clone(),
                    |body| {
                        let batch = prepare(
                            &settings,
                            black_box("db=telegraf&precision=ns"),
                            None,
                            body,
                            NOW_NS,
                        )
                        .expect("valid write")
                        .expect("has points");
                        assert_eq!(batch.points, lines);
                        assert_eq!(batch.body.len(), want_len);
                        // `ns` is forwarded as `n`, the spelling InfluxDB 1.x reads.
                        assert_eq!(&*batch.query, "db=telegraf&precision=n&rp=autogen");
                        batch
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
