//! Counters. Event loops and backend workers own their counters (relaxed atomics
//! written by one thread, so the hot path never contends) and readers aggregate.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter written by its owner thread and read by anyone.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level that goes up and down (queue depth, connections).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(&self, n: u64) {
        // Saturating: a gauge must never wrap to 2^64 because of a counting slip.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per event loop, per listener: what clients sent and what they were answered.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub requests: Counter,
    pub answered_2xx: Counter,
    pub answered_4xx: Counter,
    pub answered_5xx: Counter,
    pub points_in: Counter,
    pub bytes_in: Counter,
    pub connections_open: Gauge,
    pub connections_rejected: Counter,
    /// Writes and statements held back (their client not read meanwhile) because a
    /// backend's queue could not take them as fast as they came.
    pub changes_held: Counter,
    /// Of those, the ones answered 503 because the backend did not catch up within
    /// the listener's answer time.
    pub changes_held_too_long: Counter,
    /// `/write` requests: from the pass that completed the request head to the answer
    /// being queued.
    pub write_latency: Histogram,
}

/// Upper bounds of the latency histogram's buckets, in microseconds (0.5 ms to 10 s,
/// about 2.5x apart); slower answers land in the implicit `+Inf` bucket. Fixed, so
/// recording is a binary search over 14 bounds and two atomic adds.
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram written by one loop without locks: one counter per bucket (not
/// cumulative; readers add them up) plus the sum. A reader may see a bucket and the sum
/// from slightly different instants; the count is the buckets' total, so it always
/// agrees with them.
#[derive(Debug, Default)]
pub struct Histogram {
    /// `buckets[i]` counts observations `<= LATENCY_BOUNDS_US[i]` and above the bound
    /// before it; the last one counts those above every bound.
    buckets: [Counter; LATENCY_BOUNDS_US.len() + 1],
    sum_us: Counter,
}

impl Histogram {
    pub fn observe(&self, elapsed: std::time::Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[i].inc();
        self.sum_us.add(us);
    }

    /// Per-bucket counts (same layout as `buckets`) and the sum in microseconds.
    pub fn snapshot(&self) -> ([u64; LATENCY_BOUNDS_US.len() + 1], u64) {
        (
            std::array::from_fn(|i| self.buckets[i].get()),
            self.sum_us.get(),
        )
    }
}

/// A backend failure as `/status` shows it.
#[derive(Debug, Clone)]
pub struct LastError {
    pub message: String,
    /// Unix milliseconds.
    pub at_ms: u64,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Per backend: what happened to the writes sent to it.
#[derive(Debug, Default)]
pub struct BackendStats {
    pub delivered_requests: Counter,
    pub delivered_points: Counter,
    pub delivered_bytes: Counter,
    pub rejected_requests: Counter,
    pub failed_requests: Counter,
    pub retries: Counter,
    /// Writes the loop could not hand over because the backend's channel was full.
    pub dropped_queue_full: Counter,
    /// Points dropped because the RAM buffer was full and no spool is configured.
    pub dropped_buffer_full: Counter,
    /// Points dropped because the spool was full.
    pub dropped_spool_full: Counter,
    /// Points dropped because the spool could not be written (disk full, permissions).
    pub dropped_spool_error: Counter,
    /// Points dropped because they waited longer than `spool-max-age`.
    pub dropped_max_age: Counter,
    /// Points dropped because the backend rejected them (4xx) during replay.
    pub dropped_rejected: Counter,
    /// Points that failed for this backend and were not kept, because it has neither
    /// a RAM buffer nor a spool.
    pub dropped_unbuffered: Counter,
    /// Points lost at shutdown because they were only in RAM.
    pub dropped_shutdown: Counter,
    pub spooled_points: Counter,
    /// Bytes appended to the spool (records with their headers), and the fdatasync
    /// calls that made them durable: the spool's write rate and group commit.
    pub spool_appended_bytes: Counter,
    pub spool_syncs: Counter,
    /// Points delivered from the queue (RAM or spool) rather than directly: the
    /// catch-up rate.
    pub replayed_points: Counter,
    /// 1 while the last attempt to reach the backend failed (5xx, timeout, refused).
    pub down: Gauge,
    /// Unix ms when the oldest queued write was queued; 0 when nothing is queued.
    pub queued_since_ms: Gauge,
    /// The last failure, for `/status`.
    pub last_error: std::sync::Mutex<Option<LastError>>,
    pub ram_queue_bytes: Gauge,
    pub spool_bytes: Gauge,
    pub queued_requests: Gauge,
}

/// Per event loop, per `[[udp]]` listener: what arrived and what was dropped on the way
/// in. Aligned so the loops' copies never share a cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct UdpListenerStats {
    /// Every datagram read, truncated ones included.
    pub datagrams_in: Counter,
    pub bytes_in: Counter,
    /// Point lines accepted and handed to the outputs.
    pub lines_in: Counter,
    /// Lines that failed the line-protocol check; their neighbours went on.
    pub bad_lines: Counter,
    /// Datagrams larger than the receive buffer, dropped whole.
    pub truncated: Counter,
    /// Datagrams the kernel dropped on this loop's socket because its receive buffer was
    /// full (`SO_RXQ_OVFL`, cumulative; learnt with the next datagram that gets through).
    pub kernel_drops: Gauge,
    pub recv_errors: Counter,
}

/// Per UDP output. Written by its sender thread, except `lines_queue_full` (the loops).
#[derive(Debug, Default)]
pub struct UdpOutputStats {
    pub datagrams_out: Counter,
    pub lines_out: Counter,
    pub bytes_out: Counter,
    /// Lines longer than the output's `mtu`: never sent to this output.
    pub lines_too_long: Counter,
    /// Lines a loop could not queue because this output's channel was full.
    pub lines_queue_full: Counter,
    /// Datagrams the kernel refused to send, and the lines they held.
    pub send_errors: Counter,
    pub lines_send_failed: Counter,
}
