//! Line protocol throughput: `check_body` and `stamp_body` on 1000 telegraf-like lines.
//! Every bench asserts the answer it expects, so a fast-but-wrong change never looks like
//! a win.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use influx_relay::lineproto::{check_body, stamp_body, BodyInfo};

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

/// A body shaped like telegraf's output: cpu, mem, disk and net lines of about 200
/// bytes, sorted tags, long floats, integers, a boolean and a string with a comma; every
/// line timestamped, or none.
fn telegraf_body(with_timestamps: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..LINES {
        let n = i as u64;
        let host = format!("web{:02}", i % 37);
        let line = match i % 4 {
            0 => format!(
                "cpu,cpu=cpu{},host={host} usage_guest=0,usage_idle={}.{:02},usage_iowait=0.05,\
                 usage_irq=0,usage_nice=0,usage_softirq=0.1000500250125,usage_steal=0,\
                 usage_system=1.{:016},usage_user=3.{:016}",
                i % 16,
                90 + i % 10,
                i % 100,
                n * 104_729,
                n * 1_299_709
            ),
            1 => format!(
                "mem,host={host} active={}i,available={}i,available_percent=72.{:013},\
                 buffered=123456i,cached={}i,free={}i,used={}i",
                4_000_000_000 + n * 4096,
                12_000_000_000 + n * 8192,
                n * 31,
                5_000_000_000 + n,
                3_000_000_000 + n,
                4_500_000_000 + n,
            ),
            2 => format!(
                "disk,device=nvme0n1p{},fstype=ext4,host={host},mode=rw,path=/var/lib/data{} \
                 free={}i,inodes_free=1234567i,inodes_used=1386873i,used={}i,used_percent=54.{:014}",
                i % 4,
                i % 8,
                19_000_000_000 + n,
                23_000_000_000 + n,
                n * 13
            ),
            _ => format!(
                "net,host={host},interface=eth{} bytes_recv={}i,bytes_sent={}i,drop_in=0i,\
                 err_in=0i,packets_recv={}i,packets_sent={}i,up=true,status=\"ok, link {} Mb/s\"",
                i % 2,
                987_654_321 + n * 1500,
                123_456_789 + n * 900,
                7_654_321 + n,
                1_234_567 + n,
                1000 * (1 + i % 10)
            ),
        };
        body.extend_from_slice(line.as_bytes());
        if with_timestamps {
            let ts = 1_700_000_000_000_000_000 + n * 10_000_000_000;
            body.extend_from_slice(format!(" {ts}").as_bytes());
        }
        body.push(b'\n');
    }
    body
}

fn bench(c: &mut Criterion) {
    let stamped = telegraf_body(true);
    let bare = telegraf_body(false);
    let mean_line = stamped.len() / LINES;
    assert!(
        (180..=220).contains(&mean_line),
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
