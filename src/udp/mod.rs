//! UDP ingest and UDP outputs (README: UDP).
//!
//! ```text
//! datagram → the loop's own SO_REUSEPORT socket, drained with a budget (recv)
//!   → lines split, checked, stamped at the listener's precision (scan)
//!   → one Arc-shared LineBatch per drain, try_send to every output (full: counted drop)
//!   → per output, a sender thread packs whole lines into datagrams ≤ mtu (pack, output)
//! ```
//!
//! UDP has no acknowledgement, so nothing here retries or spools: every line that does
//! not leave the relay is counted where it was lost (bad line, truncated datagram,
//! kernel buffer overflow, full queue, line longer than the mtu, send error), and
//! `report` logs the counters.

mod output;
mod pack;
mod recv;
mod report;
mod scan;

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use mio::{Interest, Registry};

use crate::config::UdpConfig;
use crate::metrics::UdpListenerStats;

pub use output::{OutputHandle, QUEUE_CAPACITY};
pub use pack::{Packer, Push};
pub use report::{DEFAULT_INTERVAL as DEFAULT_STATS_INTERVAL, INTERVAL_ENV as STATS_INTERVAL_ENV};
pub use scan::{scan_datagram, LineBatch, Scanned};

/// Largest datagram accepted (64 KiB, above any UDP payload over IPv4 or IPv6 without
/// jumbograms). Receive slots are one byte larger so a longer one shows as truncated.
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// Datagrams read per readiness event before the loop serves others (HTTP on the same
/// core); a socket with more waiting goes on the loop's `again` list.
pub const RECV_BUDGET: usize = 64;

/// A batch is handed to the outputs once it holds this much (128 KiB), even mid-drain,
/// so one drain of large datagrams does not become one huge message.
const BATCH_FLUSH_BYTES: usize = 128 * 1024;

/// State every loop reads for one `[[udp]]` listener.
pub struct UdpListener {
    pub config: UdpConfig,
    pub outputs: Vec<OutputHandle>,
    /// One per event loop, indexed by loop id.
    pub stats: Vec<Arc<UdpListenerStats>>,
    /// The smallest receive buffer the kernel gave a loop's socket, in `read-buffer`
    /// units; `usize::MAX` until the first loop binds. Written only at start-up.
    read_buffer_granted: AtomicUsize,
}

impl UdpListener {
    /// The receive buffer every loop's socket has at least, once the loops are bound.
    pub fn read_buffer_granted(&self) -> usize {
        self.read_buffer_granted.load(Ordering::Relaxed)
    }
}

/// The threads behind the UDP listeners: one sender per output and the reporter.
pub struct Service {
    outputs: Vec<output::OutputThread>,
    reporter: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Service {
    /// Call once the loops have stopped: every output sends what is queued, then the
    /// reporter logs the final counters.
    pub fn shutdown(self) {
        for o in self.outputs {
            o.stop();
        }
        if let Some((stop, handle)) = self.reporter {
            drop(stop);
            let _ = handle.join();
        }
    }
}

/// Start the output threads and the reporter for `configs`, with per-loop counters for
/// `threads` loops.
pub fn start(configs: &[UdpConfig], threads: usize) -> io::Result<(Vec<UdpListener>, Service)> {
    let mut listeners = Vec::new();
    let mut threads_out = Vec::new();
    let mut watched = Vec::new();
    for config in configs {
        let mut outputs = Vec::new();
        for o in &config.outputs {
            let (handle, thread) = output::start(&config.name, o)?;
            outputs.push(handle);
            threads_out.push(thread);
        }
        let stats: Vec<_> = (0..threads)
            .map(|_| Arc::new(UdpListenerStats::default()))
            .collect();
        watched.push(report::Watched {
            name: config.name.clone(),
            loops: stats.clone(),
            outputs: outputs
                .iter()
                .map(|o| (o.config.name.clone(), o.stats.clone()))
                .collect(),
        });
        listeners.push(UdpListener {
            config: config.clone(),
            outputs,
            stats,
            read_buffer_granted: AtomicUsize::new(usize::MAX),
        });
    }
    let reporter = if watched.is_empty() {
        None
    } else {
        Some(report::start(watched, report::interval())?)
    };
    Ok((
        listeners,
        Service {
            outputs: threads_out,
            reporter,
        },
    ))
}

/// One event loop's socket for one UDP listener.
pub struct LoopSocket {
    /// `None` once shutdown began.
    socket: Option<mio::net::UdpSocket>,
    receiver: recv::Receiver,
    /// Lines of the current drain, not yet handed to the outputs.
    batch: LineBatch,
    stats: Arc<UdpListenerStats>,
}

impl LoopSocket {
    /// Bind and register loop `loop_id`'s socket for every listener.
    pub fn bind_all(
        registry: &Registry,
        listeners: &[UdpListener],
        loop_id: usize,
    ) -> io::Result<Vec<LoopSocket>> {
        let mut sockets = Vec::new();
        for (i, l) in listeners.iter().enumerate() {
            let addr = l.config.bind_addr;
            let (mut socket, granted) =
                crate::net::bind_udp(addr, l.config.read_buffer).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen on udp {addr}: {e}"))
                })?;
            l.read_buffer_granted.fetch_min(granted, Ordering::Relaxed);
            if let Err(e) = recv::Receiver::enable_drop_count(socket.as_raw_fd()) {
                crate::warn!(
                    "kernel drops on this socket will not be counted",
                    listener = l.config.name,
                    error = e
                );
            }
            registry.register(
                &mut socket,
                crate::net::token::udp_listener(i),
                Interest::READABLE,
            )?;
            sockets.push(LoopSocket {
                socket: Some(socket),
                receiver: recv::Receiver::new(MAX_DATAGRAM + 1),
                batch: LineBatch::default(),
                stats: l.stats[loop_id].clone(),
            });
        }
        Ok(sockets)
    }

    /// Read what is waiting, up to [`RECV_BUDGET`] datagrams, and hand the lines to the
    /// outputs. `true` when the budget ran out with datagrams possibly left: the loop
    /// must come back without waiting for another event (readiness is edge-triggered).
    pub fn drain(&mut self, listener: &UdpListener, now_ns: i64) -> bool {
        let Some(fd) = self.socket.as_ref().map(AsRawFd::as_raw_fd) else {
            return false;
        };
        let ts = listener.config.precision.from_nanos(now_ns);
        let mut tally = Tally::default();
        let mut budget = RECV_BUDGET;
        let more = loop {
            if budget == 0 {
                break true;
            }
            match self.receiver.recv(fd, budget.min(recv::BATCH)) {
                Ok(n) => {
                    budget -= n;
                    for i in 0..n {
                        tally.datagram(self.receiver.datagram(i), ts, &mut self.batch);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.recv_errors.inc();
                    static LIMIT: crate::log::RateLimit = crate::log::RateLimit::every_interval();
                    if let Some(suppressed) = LIMIT.check() {
                        crate::error!(
                            "udp receive failed",
                            listener = listener.config.name,
                            error = e,
                            suppressed = suppressed
                        );
                    }
                    break false;
                }
            }
            if self.batch.len_bytes() >= BATCH_FLUSH_BYTES {
                self.hand_over(listener);
            }
        };
        self.hand_over(listener);
        tally.record(&self.stats);
        self.stats
            .kernel_drops
            .set(u64::from(self.receiver.kernel_drops()));
        more
    }

    /// Give the current batch to every output.
    fn hand_over(&mut self, listener: &UdpListener) {
        if self.batch.is_empty() {
            return;
        }
        // The next batch is probably as large: size it so it does not grow piecemeal.
        let next = LineBatch::with_capacity(self.batch.len_bytes(), self.batch.points());
        let batch = Arc::new(std::mem::replace(&mut self.batch, next));
        for o in &listener.outputs {
            o.offer(&listener.config.name, &batch);
        }
    }

    /// Stop reading: what the kernel still holds for this socket is lost with it.
    pub fn close(&mut self, registry: &Registry) {
        if let Some(mut socket) = self.socket.take() {
            let _ = registry.deregister(&mut socket);
        }
    }
}

/// Counts of one drain, added to the shared counters once at its end.
#[derive(Default)]
struct Tally {
    datagrams: u64,
    bytes: u64,
    lines: u64,
    bad_lines: u64,
    truncated: u64,
}

impl Tally {
    fn datagram(&mut self, datagram: recv::Datagram<'_>, ts: i64, batch: &mut LineBatch) {
        self.datagrams += 1;
        match datagram {
            recv::Datagram::Whole(bytes) => {
                self.bytes += bytes.len() as u64;
                let scanned = scan_datagram(bytes, ts, batch);
                self.lines += scanned.lines as u64;
                self.bad_lines += scanned.bad as u64;
            }
            recv::Datagram::Truncated { received } => {
                self.bytes += received as u64;
                self.truncated += 1;
            }
        }
    }

    fn record(&self, stats: &UdpListenerStats) {
        if self.datagrams == 0 {
            return;
        }
        stats.datagrams_in.add(self.datagrams);
        stats.bytes_in.add(self.bytes);
        stats.lines_in.add(self.lines);
        stats.bad_lines.add(self.bad_lines);
        stats.truncated.add(self.truncated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Precision;
    use crate::config::UdpOutput;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn config(outputs: Vec<UdpOutput>, precision: Precision) -> UdpConfig {
        UdpConfig {
            name: "udp-test".into(),
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            read_buffer: 0,
            precision,
            outputs,
        }
    }

    /// A loop socket end to end without an event loop: drain with a budget, stamp,
    /// count, hand to an output, flush on shutdown.
    #[test]
    fn a_drain_reads_at_most_its_budget_and_forwards_good_lines() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let out = UdpOutput {
            name: "sink".into(),
            location: sink.local_addr().unwrap(),
            mtu: 1024,
        };
        let (listeners, service) = start(&[config(vec![out], Precision::Seconds)], 1).unwrap();
        let poll = mio::Poll::new().unwrap();
        let mut sockets = LoopSocket::bind_all(poll.registry(), &listeners, 0).unwrap();
        let addr = sockets[0].socket.as_ref().unwrap().local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..RECV_BUDGET + 6 {
            client
                .send_to(format!("m v={i}i\nbad\n").as_bytes(), addr)
                .unwrap();
        }
        // Give loopback a moment to deliver everything.
        std::thread::sleep(Duration::from_millis(50));
        let now_ns = 1_700_000_000_987_654_321;
        assert!(sockets[0].drain(&listeners[0], now_ns), "budget exhausted");
        assert!(!sockets[0].drain(&listeners[0], now_ns), "drained");
        let stats = &listeners[0].stats[0];
        assert_eq!(stats.datagrams_in.get(), RECV_BUDGET as u64 + 6);
        assert_eq!(stats.lines_in.get(), RECV_BUDGET as u64 + 6);
        assert_eq!(stats.bad_lines.get(), RECV_BUDGET as u64 + 6);
        sockets[0].close(poll.registry());
        assert!(!sockets[0].drain(&listeners[0], now_ns));
        service.shutdown();

        let mut received = String::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = sink.recv(&mut buf) {
            assert!(n <= 1024);
            received.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        let expected: String = (0..RECV_BUDGET + 6)
            .map(|i| format!("m v={i}i 1700000000\n"))
            .collect();
        assert_eq!(received, expected);
        let o = &listeners[0].outputs[0].stats;
        assert_eq!(o.lines_out.get(), RECV_BUDGET as u64 + 6);
    }
}
