//! Line-protocol generation: realistic lines, each carrying its run id and sequence.
//!
//! A line looks like
//! `cpu,dc=dc-3,gen=r1a2b,host=host-42,region=eu-west,service=svc-2 stream=3i,seq=17i,usage=64.25,requests=1234i,healthy=true,status="ok",latency=0.532 1700000000000000017`.
//! Tag keys are sorted (as InfluxDB prefers); `host` alone makes the series distinct, so
//! `--series N` yields exactly N series. `stream` and `seq` are fields, not tags, so the
//! sequence adds no cardinality, and they come first so the sink finds them quickly.
//!
//! Field values come from a pool rendered once; per line the generator copies a few
//! pre-rendered pieces and formats three integers, so generation stays far cheaper than
//! the I/O it feeds. Field types never vary, so InfluxDB sees no type conflicts.

use std::sync::Arc;

const MEASUREMENTS: [&str; 4] = ["cpu", "mem", "disk", "net"];
const REGIONS: [&str; 6] = [
    "eu-west",
    "eu-central",
    "us-east",
    "us-west",
    "ap-south",
    "ap-northeast",
];
/// String values, including ones that need quoting care (space, comma, escaped quote).
const STATUSES: [&str; 5] = [
    "ok",
    "degraded",
    "ok, warming up",
    "error: disk \\\"sdb\\\" slow",
    "maintenance window",
];
/// Distinct field-value tails rendered up front; lines cycle through them.
const FIELD_POOL: usize = 1024;

/// What every line of a run shares.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub run_id: String,
    pub series: u64,
    pub timestamps: bool,
    /// Nanoseconds per timestamp unit (1 for ns precision).
    pub unit_nanos: u64,
    /// `--ts-step` in nanoseconds; 0 stamps from the clock. Otherwise the lines of one
    /// fill are this far apart from the stamp given, which the run derives from the
    /// request's number (see `run`).
    pub ts_step: u64,
}

/// Pre-rendered field tails (`,usage=…,latency=…`), shared by all generators of a run.
#[derive(Debug, Clone)]
pub struct FieldPool(Arc<Vec<Box<[u8]>>>);

impl FieldPool {
    pub fn new(seed: u64) -> FieldPool {
        let mut rng = XorShift(seed | 1);
        let tails = (0..FIELD_POOL)
            .map(|_| {
                let usage = rng.next() % 10_000;
                let requests = rng.next() % 100_000;
                let healthy = !rng.next().is_multiple_of(8);
                let status = STATUSES[(rng.next() % STATUSES.len() as u64) as usize];
                let latency = rng.next() % 5_000;
                format!(
                    ",usage={}.{:02},requests={requests}i,healthy={healthy},status=\"{status}\",latency=0.{latency:03}",
                    usage / 100,
                    usage % 100,
                )
                .into_bytes()
                .into_boxed_slice()
            })
            .collect();
        FieldPool(Arc::new(tails))
    }
}

/// Generates the lines of one stream; sequence numbers continue across calls.
#[derive(Debug)]
pub struct LineGen {
    cfg: Arc<GenConfig>,
    pool: FieldPool,
    stream: u64,
    next_seq: u64,
    /// Which series the next line belongs to; streams start at different offsets so
    /// concurrent connections do not all write the same series at once.
    series_cursor: u64,
    pool_cursor: usize,
}

impl LineGen {
    pub fn new(cfg: Arc<GenConfig>, pool: FieldPool, stream: u64) -> LineGen {
        let series = cfg.series.max(1);
        LineGen {
            series_cursor: stream.wrapping_mul(7919) % series,
            pool_cursor: (stream as usize).wrapping_mul(31) % FIELD_POOL,
            cfg,
            pool,
            stream,
            next_seq: 0,
        }
    }

    pub fn stream(&self) -> u64 {
        self.stream
    }

    /// Sequence number the next line will carry (= lines generated so far).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends `lines` lines to `buf`, stamped from `now_nanos` when timestamps are on.
    pub fn fill(&mut self, buf: &mut Vec<u8>, lines: usize, now_nanos: u64) {
        let base = now_nanos / self.cfg.unit_nanos;
        for i in 0..lines {
            self.push_line(buf, base, i as u64);
        }
    }

    /// Appends whole lines to `buf` while it stays within `max_bytes`; returns how many.
    /// At least one line is written even if it alone is longer.
    pub fn fill_datagram(&mut self, buf: &mut Vec<u8>, max_bytes: usize, now_nanos: u64) -> u64 {
        let base = now_nanos / self.cfg.unit_nanos;
        let mut n = 0u64;
        loop {
            let before = buf.len();
            self.push_line(buf, base, n);
            if buf.len() > max_bytes && n > 0 {
                buf.truncate(before);
                self.next_seq -= 1;
                // Keep the series and field cursors where the dropped line left them:
                // a cycle position is not part of what the sink checks.
                return n;
            }
            n += 1;
            if buf.len() >= max_bytes {
                return n;
            }
        }
    }

    fn push_line(&mut self, buf: &mut Vec<u8>, base_ts: u64, index_in_batch: u64) {
        let cfg = &*self.cfg;
        let s = self.series_cursor;
        self.series_cursor += 1;
        if self.series_cursor >= cfg.series {
            self.series_cursor = 0;
        }
        buf.extend_from_slice(MEASUREMENTS[(s % 4) as usize].as_bytes());
        buf.extend_from_slice(b",dc=dc-");
        push_u64(buf, s % 8);
        buf.extend_from_slice(b",gen=");
        buf.extend_from_slice(cfg.run_id.as_bytes());
        buf.extend_from_slice(b",host=host-");
        push_u64(buf, s);
        buf.extend_from_slice(b",region=");
        buf.extend_from_slice(REGIONS[(s % 6) as usize].as_bytes());
        buf.extend_from_slice(b",service=svc-");
        push_u64(buf, s % 20);
        buf.extend_from_slice(b" stream=");
        push_u64(buf, self.stream);
        buf.extend_from_slice(b"i,seq=");
        push_u64(buf, self.next_seq);
        buf.push(b'i');
        self.next_seq += 1;
        buf.extend_from_slice(&self.pool.0[self.pool_cursor]);
        self.pool_cursor = (self.pool_cursor + 1) % FIELD_POOL;
        if cfg.timestamps {
            buf.push(b' ');
            // Fine precisions spread a batch over distinct instants so a real InfluxDB
            // keeps every point; coarse ones keep the receive instant instead of
            // pushing points minutes into the future.
            let ts = if cfg.ts_step > 0 {
                base_ts + index_in_batch * cfg.ts_step
            } else if cfg.unit_nanos <= 1_000 {
                base_ts + index_in_batch
            } else {
                base_ts
            };
            push_u64(buf, ts);
        }
        buf.push(b'\n');
    }
}

/// Appends the decimal form of `n`.
pub fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Small deterministic generator for field values; quality does not matter here.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{for_each_line, marker};

    fn gen(stream: u64, series: u64, timestamps: bool) -> LineGen {
        let cfg = Arc::new(GenConfig {
            run_id: "rtest".into(),
            series,
            timestamps,
            unit_nanos: 1,
            ts_step: 0,
        });
        LineGen::new(cfg, FieldPool::new(7), stream)
    }

    fn markers(body: &[u8]) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        for_each_line(body, |l| {
            let m = marker(l).expect("every generated line has markers");
            assert_eq!(m.run, b"rtest");
            v.push((m.stream, m.seq));
        });
        v
    }

    #[test]
    fn push_u64_formats_decimal() {
        for n in [0u64, 7, 10, 99, 1_234_567, u64::MAX] {
            let mut b = Vec::new();
            push_u64(&mut b, n);
            assert_eq!(b, n.to_string().into_bytes());
        }
    }

    #[test]
    fn fill_writes_the_asked_line_count_with_consecutive_seqs() {
        let mut g = gen(3, 1000, true);
        let mut body = Vec::new();
        g.fill(&mut body, 100, 1_700_000_000_000_000_000);
        let m = markers(&body);
        assert_eq!(m.len(), 100);
        assert!(m
            .iter()
            .enumerate()
            .all(|(i, &(st, seq))| st == 3 && seq == i as u64));
        body.clear();
        g.fill(&mut body, 5, 1_700_000_000_000_000_000);
        let m = markers(&body);
        assert_eq!(
            m.iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![100, 101, 102, 103, 104]
        );
        assert_eq!(g.next_seq(), 105);
    }

    #[test]
    fn lines_have_five_typed_fields_and_a_timestamp() {
        let mut g = gen(0, 10, true);
        let mut body = Vec::new();
        g.fill(&mut body, 3, 1_700_000_000_000_000_000);
        let text = String::from_utf8(body).unwrap();
        for (i, line) in text.lines().enumerate() {
            assert!(line.contains(" stream=0i,seq="), "{line}");
            for f in [
                ",usage=",
                ",requests=",
                ",healthy=",
                ",status=\"",
                ",latency=",
            ] {
                assert!(line.contains(f), "{line} lacks {f}");
            }
            let ts = line.rsplit(' ').next().unwrap();
            assert_eq!(ts, (1_700_000_000_000_000_000u64 + i as u64).to_string());
        }
    }

    #[test]
    fn no_timestamps_means_line_ends_with_fields() {
        let mut g = gen(0, 10, false);
        let mut body = Vec::new();
        g.fill(&mut body, 20, 1);
        for line in String::from_utf8(body).unwrap().lines() {
            assert!(line.ends_with(|c: char| c.is_ascii_digit()), "{line}");
            assert!(
                line.rsplit(' ').next().unwrap().starts_with("healthy=")
                    || line.rsplit(',').next().unwrap().starts_with("latency="),
                "{line}"
            );
        }
        assert_eq!(
            markers(&{
                let mut b = Vec::new();
                g.fill(&mut b, 1, 1);
                b
            }),
            vec![(0, 20)]
        );
    }

    #[test]
    fn series_count_is_exact() {
        let mut g = gen(0, 37, false);
        let mut body = Vec::new();
        g.fill(&mut body, 500, 0);
        let hosts: std::collections::HashSet<&str> = std::str::from_utf8(&body)
            .unwrap()
            .lines()
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(hosts.len(), 37);
    }

    #[test]
    fn datagrams_hold_whole_lines_within_the_limit() {
        let mut g = gen(1, 1000, true);
        let mut seen = Vec::new();
        for _ in 0..20 {
            let mut d = Vec::new();
            let n = g.fill_datagram(&mut d, 1400, 1_700_000_000_000_000_000);
            assert!(d.len() <= 1400 && n > 1, "{} bytes, {n} lines", d.len());
            assert_eq!(*d.last().unwrap(), b'\n');
            let m = markers(&d);
            assert_eq!(m.len() as u64, n);
            seen.extend(m.into_iter().map(|x| x.1));
        }
        assert!(seen.iter().enumerate().all(|(i, &s)| s == i as u64));
    }

    #[test]
    fn ts_step_spaces_the_lines_of_a_fill_from_the_stamp() {
        let step = 60_000_000_000u64;
        let cfg = Arc::new(GenConfig {
            run_id: "rtest".into(),
            series: 10,
            timestamps: true,
            unit_nanos: 1,
            ts_step: step,
        });
        let mut g = LineGen::new(cfg, FieldPool::new(7), 2);
        let mut body = Vec::new();
        g.fill(&mut body, 4, 1_000);
        let stamps: Vec<u64> = std::str::from_utf8(&body)
            .unwrap()
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            stamps,
            [1_000, 1_000 + step, 1_000 + 2 * step, 1_000 + 3 * step]
        );
    }
}
