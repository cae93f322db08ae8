//! One sender thread per UDP output: batches of stamped lines in, datagrams of whole
//! lines no larger than `mtu` out, over a socket connected to the destination.
//!
//! Batches that are already queued are packed together, so a trickle of small
//! datagrams leaves as few full ones; the datagram being built is sent as soon as the
//! queue is empty, so packing never waits for more input.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::pack::{Packer, Push};
use super::scan::LineBatch;
use crate::config::UdpOutput;
use crate::log::RateLimit;
use crate::metrics::UdpOutputStats;

/// Batches that may wait for one output. A batch is one socket drain of one loop (at
/// most a few hundred KiB, usually a few KiB) and is shared by all outputs of its
/// listener, so this bounds memory at a few tens of MiB per listener in the worst case.
pub const QUEUE_CAPACITY: usize = 256;

/// How often a repeated send error or a full queue is logged, at most (5 s).
const LOG_INTERVAL_MS: u64 = 5_000;

pub(super) enum Message {
    Lines(Arc<LineBatch>),
    /// Flush and exit; sent once the loops have stopped, so nothing follows it.
    Stop,
}

/// The loops' side of an output.
pub struct OutputHandle {
    pub config: UdpOutput,
    pub stats: Arc<UdpOutputStats>,
    tx: Sender<Message>,
    full_log: RateLimit,
}

impl OutputHandle {
    /// Queue a batch without blocking; a full queue drops it and counts its lines.
    pub(super) fn offer(&self, listener: &str, batch: &Arc<LineBatch>) {
        match self.tx.try_send(Message::Lines(batch.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.lines_queue_full.add(batch.points() as u64);
                if let Some(suppressed) = self.full_log.check() {
                    crate::warn!(
                        "udp output queue full; dropping lines",
                        listener = listener,
                        output = self.config.name,
                        suppressed = suppressed
                    );
                }
            }
        }
    }
}

/// The relay's side of an output thread, for shutdown.
pub(super) struct OutputThread {
    tx: Sender<Message>,
    handle: JoinHandle<()>,
}

impl OutputThread {
    /// Let the thread send what is queued, then wait for it.
    pub(super) fn stop(self) {
        // Blocking is fine here: this is the shutdown thread, and the sender drains.
        let _ = self.tx.send(Message::Stop);
        let _ = self.handle.join();
    }
}

/// Open the output's socket and start its thread.
pub(super) fn start(
    listener: &str,
    config: &UdpOutput,
) -> io::Result<(OutputHandle, OutputThread)> {
    let socket = connect(config.location).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "udp output {} of {listener}: cannot connect to {}: {e}",
                config.name, config.location
            ),
        )
    })?;
    let stats = Arc::new(UdpOutputStats::default());
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
    let mut link = Link {
        socket,
        stats: stats.clone(),
        listener: listener.to_string(),
        output: config.name.clone(),
        error_log: RateLimit::new(LOG_INTERVAL_MS),
    };
    let mtu = config.mtu;
    let handle = std::thread::Builder::new()
        .name(format!("udp-out-{}", config.name))
        .spawn(move || run(&rx, &mut link, mtu))?;
    Ok((
        OutputHandle {
            config: config.clone(),
            stats,
            tx: tx.clone(),
            full_log: RateLimit::new(LOG_INTERVAL_MS),
        },
        OutputThread { tx, handle },
    ))
}

fn connect(to: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(to)?;
    Ok(socket)
}

/// Runs until `Stop` arrives or every sender is gone (the relay failed to start).
fn run(rx: &Receiver<Message>, link: &mut Link, mtu: usize) {
    let stats = link.stats.clone();
    let mut packer = Packer::new(mtu);
    let mut emit = |datagram: &[u8], lines: usize| link.send(datagram, lines);
    loop {
        let mut next = rx.recv().ok();
        let mut stop = next.is_none();
        while let Some(message) = next {
            match message {
                Message::Lines(batch) => {
                    for line in batch.lines() {
                        if packer.push(line, &mut emit) == Push::TooLong {
                            stats.lines_too_long.inc();
                        }
                    }
                }
                Message::Stop => {
                    stop = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        packer.flush(&mut emit);
        if stop {
            return;
        }
    }
}

/// The connected socket and the counters of one output.
struct Link {
    socket: UdpSocket,
    stats: Arc<UdpOutputStats>,
    listener: String,
    output: String,
    error_log: RateLimit,
}

impl Link {
    /// Send one packed datagram of `lines` lines.
    fn send(&mut self, datagram: &[u8], lines: usize) {
        let mut retried = false;
        loop {
            match self.socket.send(datagram) {
                Ok(_) => {
                    self.stats.datagrams_out.inc();
                    self.stats.lines_out.add(lines as u64);
                    self.stats.bytes_out.add(datagram.len() as u64);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP "port unreachable" for an earlier datagram is reported on
                // this send, which the kernel then did not carry out: one retry sends it.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && !retried => {
                    retried = true;
                }
                Err(e) => {
                    self.stats.send_errors.inc();
                    self.stats.lines_send_failed.add(lines as u64);
                    if let Some(suppressed) = self.error_log.check() {
                        crate::warn!(
                            "udp output send failed; datagram dropped",
                            listener = self.listener,
                            output = self.output,
                            error = e,
                            suppressed = suppressed
                        );
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn output(location: SocketAddr, mtu: usize) -> UdpOutput {
        UdpOutput {
            name: "sink".into(),
            location,
            mtu,
        }
    }

    fn batch(text: &str) -> Arc<LineBatch> {
        Arc::new(LineBatch::from_lines(&text.lines().collect::<Vec<_>>()))
    }

    fn recv_all(sink: &UdpSocket) -> Vec<Vec<u8>> {
        sink.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 70_000];
        while let Ok(n) = sink.recv(&mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    #[test]
    fn queued_batches_are_packed_together_and_flushed_on_stop() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (handle, thread) = start("in", &output(sink.local_addr().unwrap(), 64)).unwrap();
        let long = format!("m v=\"{}\" 5", "x".repeat(80));
        handle.offer("in", &batch("a v=1 1\nb v=2 2\n"));
        handle.offer("in", &batch(&format!("c v=3 3\n{long}\nd v=4 4")));
        thread.stop();
        let datagrams = recv_all(&sink);
        let all: Vec<u8> = datagrams.concat();
        assert_eq!(all, b"a v=1 1\nb v=2 2\nc v=3 3\nd v=4 4\n");
        assert!(datagrams.iter().all(|d| d.len() <= 64));
        let s = &handle.stats;
        assert_eq!(s.lines_out.get(), 4);
        assert_eq!(s.lines_too_long.get(), 1);
        assert_eq!(s.datagrams_out.get(), datagrams.len() as u64);
        assert_eq!(s.bytes_out.get(), all.len() as u64);
    }

    #[test]
    fn a_refused_destination_counts_failures_and_keeps_going() {
        // Bind then close: nothing listens there, so loopback answers ICMP unreachable.
        let addr = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (handle, thread) = start("in", &output(addr, 1024)).unwrap();
        for i in 0..20 {
            handle.offer("in", &batch(&format!("m v={i} {i}")));
            // One batch at a time, so each is its own datagram.
            std::thread::sleep(Duration::from_millis(2));
        }
        thread.stop();
        let s = &handle.stats;
        assert_eq!(s.lines_out.get() + s.lines_send_failed.get(), 20);
        assert_eq!(s.lines_queue_full.get(), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_lines() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let handle = OutputHandle {
            config: output(sink.local_addr().unwrap(), 1024),
            stats: Arc::default(),
            tx,
            full_log: RateLimit::new(LOG_INTERVAL_MS),
        };
        let b = batch("a v=1 1\nb v=2 2");
        handle.offer("in", &b);
        handle.offer("in", &b);
        handle.offer("in", &b);
        assert_eq!(handle.stats.lines_queue_full.get(), 4);
    }
}
