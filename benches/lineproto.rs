//! Line protocol throughput: `check_body` and `stamp_body` on 1000 telegraf-like lines.
//! Every bench asserts the answer it expects, so a fast-but-wrong change never looks like
//! a win.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use influx_relay::lineproto::{check_body, stamp_body, BodyInfo};

const LINES: usize = 1000;

/// A body shaped like telegraf's output: mostly cpu/mem/disk/net lines of about 200
/// bytes, a few with a string field, tags sorted, every line timestamped (or none).
fn telegraf_body(with_timestamps: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..LINES {
        let host = format!("server{:03}.eu-west-1.example.com", i % 37);
        let line = match i % 4 {
            0 => format!(
                "cpu,cpu=cpu{},host={host} usage_guest=0,usage_guest_nice=0,usage_idle={}.{:014},\
                 usage_iowait=0.0500250125062531,usage_irq=0,usage_nice=0,usage_softirq=0.1000500250125,\
                 usage_steal=0,usage_system=1.{:016},usage_user=3.{:016}",
                i % 16,
                90 + i % 10,
                i * 7919,
                i * 104_729,
                i * 1_299_709
            ),
            1 => format!(
                "mem,host={host} active={}i,available={}i,available_percent=72.{:013},buffered=123456i,\
                 cached={}i,free={}i,total=16777216000i,used={}i,used_percent=27.{:013}",
                4_000_000_000u64 + i as u64 * 4096,
                12_000_000_000u64 + i as u64 * 8192,
                i * 31,
                5_000_000_000u64 + i as u64,
                3_000_000_000u64 + i as u64,
                4_500_000_000u64 + i as u64,
                i * 37
            ),
            2 => format!(
                "disk,device=nvme0n1p{},fstype=ext4,host={host},mode=rw,path=/var/lib/data{} \
                 free={}i,inodes_free=1234567i,inodes_total=2621440i,inodes_used=1386873i,\
                 total=42004086784i,used={}i,used_percent=54.{:014}",
                i % 4,
                i % 8,
                19_000_000_000u64 + i as u64,
                23_000_000_000u64 + i as u64,
                i * 13
            ),
            _ => format!(
                "net,host={host},interface=eth{} bytes_recv={}i,bytes_sent={}i,drop_in=0i,\
                 drop_out=0i,err_in=0i,err_out=0i,packets_recv={}i,packets_sent={}i,up=true,\
                 status=\"ok, link {} Mb/s\"",
                i % 2,
                987_654_321u64 + i as u64 * 1500,
                123_456_789u64 + i as u64 * 900,
                7_654_321u64 + i as u64,
                1_234_567u64 + i as u64,
                1000 * (1 + i % 10)
            ),
        };
        body.extend_from_slice(line.as_bytes());
        if with_timestamps {
            body.extend_from_slice(
                format!(
                    " {}",
                    1_700_000_000_000_000_000u64 + i as u64 * 10_000_000_000
                )
                .as_bytes(),
            );
        }
        body.push(b'\n');
    }
    body
}

fn bench(c: &mut Criterion) {
    let stamped = telegraf_body(true);
    let bare = telegraf_body(false);

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
