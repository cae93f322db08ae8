//! The periodic UDP summary: one `info` line per listener, and one per output, each
//! time the counters moved since the last one (totals since start). UDP has no
//! answer to tell a client about loss, so this, `/status` and `/metrics` are where drops
//! show.
//!
//! The interval is 60 s; `INFLUX_RELAY_STATS_INTERVAL_MS` overrides it (tests).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::metrics::{UdpListenerStats, UdpOutputStats};

/// Time between two summaries unless overridden (60 s).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Environment variable with the interval in milliseconds.
pub const INTERVAL_ENV: &str = "INFLUX_RELAY_STATS_INTERVAL_MS";
/// Shortest interval accepted from the environment (10 ms).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The counters of one listener, as the reporter sees them.
pub(super) struct Watched {
    pub name: String,
    /// One per event loop.
    pub loops: Vec<Arc<UdpListenerStats>>,
    pub outputs: Vec<(String, Arc<UdpOutputStats>)>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ListenerTotals {
    datagrams: u64,
    bytes: u64,
    lines: u64,
    bad_lines: u64,
    truncated: u64,
    kernel_drops: u64,
    recv_errors: u64,
}

impl ListenerTotals {
    fn sum(loops: &[Arc<UdpListenerStats>]) -> ListenerTotals {
        let mut t = ListenerTotals::default();
        for s in loops {
            t.datagrams += s.datagrams_in.get();
            t.bytes += s.bytes_in.get();
            t.lines += s.lines_in.get();
            t.bad_lines += s.bad_lines.get();
            t.truncated += s.truncated.get();
            t.kernel_drops += s.kernel_drops.get();
            t.recv_errors += s.recv_errors.get();
        }
        t
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct OutputTotals {
    datagrams: u64,
    lines: u64,
    bytes: u64,
    too_long: u64,
    queue_full: u64,
    send_errors: u64,
    send_failed: u64,
}

impl OutputTotals {
    fn of(s: &UdpOutputStats) -> OutputTotals {
        OutputTotals {
            datagrams: s.datagrams_out.get(),
            lines: s.lines_out.get(),
            bytes: s.bytes_out.get(),
            too_long: s.lines_too_long.get(),
            queue_full: s.lines_queue_full.get(),
            send_errors: s.send_errors.get(),
            send_failed: s.lines_send_failed.get(),
        }
    }

    fn dropped_lines(&self) -> u64 {
        self.too_long + self.queue_full + self.send_failed
    }
}

/// The summary interval: [`INTERVAL_ENV`] if set and valid, else [`DEFAULT_INTERVAL`].
pub(super) fn interval() -> Duration {
    let Ok(text) = std::env::var(INTERVAL_ENV) else {
        return DEFAULT_INTERVAL;
    };
    match text.trim().parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms).max(MIN_INTERVAL),
        Err(_) => {
            crate::warn!(
                "ignoring invalid stats interval",
                variable = INTERVAL_ENV,
                value = text
            );
            DEFAULT_INTERVAL
        }
    }
}

/// Start the reporter; dropping the returned sender makes it log once more and stop.
pub(super) fn start(
    watched: Vec<Watched>,
    every: Duration,
) -> std::io::Result<(Sender<()>, JoinHandle<()>)> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let handle = std::thread::Builder::new()
        .name("udp-stats".into())
        .spawn(move || {
            let mut last = vec![(ListenerTotals::default(), Vec::new()); watched.len()];
            loop {
                let done = matches!(
                    stopped.recv_timeout(every),
                    Ok(()) | Err(RecvTimeoutError::Disconnected)
                );
                for (w, last) in watched.iter().zip(last.iter_mut()) {
                    report(w, last);
                }
                if done {
                    return;
                }
            }
        })?;
    Ok((stop, handle))
}

fn report(w: &Watched, last: &mut (ListenerTotals, Vec<OutputTotals>)) {
    let now = ListenerTotals::sum(&w.loops);
    let outputs: Vec<OutputTotals> = w.outputs.iter().map(|(_, s)| OutputTotals::of(s)).collect();
    if now == last.0 && outputs == last.1 {
        return;
    }
    let dropped_out: u64 = outputs.iter().map(OutputTotals::dropped_lines).sum();
    crate::info!(
        "udp stats",
        listener = w.name,
        datagrams = now.datagrams,
        bytes = now.bytes,
        lines = now.lines,
        bad_lines = now.bad_lines,
        truncated = now.truncated,
        kernel_drops = now.kernel_drops,
        recv_errors = now.recv_errors,
        dropped_out = dropped_out,
    );
    for (i, ((name, _), o)) in w.outputs.iter().zip(&outputs).enumerate() {
        if last.1.get(i) == Some(o) {
            continue;
        }
        crate::info!(
            "udp output stats",
            listener = w.name,
            output = name,
            datagrams = o.datagrams,
            bytes = o.bytes,
            lines = o.lines,
            too_long = o.too_long,
            queue_full = o.queue_full,
            send_errors = o.send_errors,
            send_failed = o.send_failed,
        );
    }
    *last = (now, outputs);
}
