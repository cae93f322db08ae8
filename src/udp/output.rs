//! One sender thread per UDP output: batches of stamped lines in, datagrams of whole
//! lines no larger than `mtu` out, over a socket connected to the destination.
//!
//! Batches that are already queued are packed together, so a trickle of small
//! datagrams leaves as few full ones; the datagram being built is sent as soon as the
//! queue is empty, so packing never waits for more input. Finished datagrams leave up
//! to [`SEND_BATCH`] per `sendmmsg(2)`: on loopback a `send` costs about 3 µs of kernel
//! time, part of it entering and leaving the system call.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::pack::{Packer, Push};
use super::scan::LineBatch;
use crate::config::UdpOutput;
use crate::log::RateLimit;
use crate::metrics::UdpOutputStats;

/// Bytes of lines that may wait for one output (32 MiB). A sender that gets no CPU for
/// a while (the loops, the other outputs and the rest of the host compete for it) must
/// not cost lines as long as it catches up: at 100 000 datagrams/s of 1.35 kB this is a
/// quarter of a second. Batches are shared by all outputs of a listener, so this also
/// bounds the memory a listener's queues hold to 32 MiB per output.
pub const QUEUE_BYTES: usize = 32 << 20;

/// Batches that may wait for one output, whatever their size. A batch is one socket
/// drain of one loop: at 100 000 datagrams/s about fifteen datagrams, 20 KiB. Counting
/// batches alone filled 256 of them in 40 ms; bytes are the real bound now, and this
/// one only caps the bookkeeping of a flood of tiny batches.
pub const QUEUE_CAPACITY: usize = 8192;

/// Datagrams handed to the kernel per `sendmmsg`, at most. A sender that has this many
/// finished sends them at once, without waiting for the queue to empty.
const SEND_BATCH: usize = 64;

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
    /// Bytes of lines queued and not yet packed by the sender (at most [`QUEUE_BYTES`]).
    queued: Arc<AtomicUsize>,
    full_log: RateLimit,
}

impl OutputHandle {
    /// Queue a batch without blocking; a full queue drops it and counts its lines.
    pub(super) fn offer(&self, listener: &str, batch: &Arc<LineBatch>) {
        let bytes = batch.len_bytes();
        // Reserve first, so loops offering at the same time cannot overshoot together.
        let fits = self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes <= QUEUE_BYTES;
        let sent = fits && self.tx.try_send(Message::Lines(batch.clone())).is_ok();
        if !sent {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
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
    let queued = Arc::new(AtomicUsize::new(0));
    let mut link = Link {
        socket,
        queued: queued.clone(),
        stats: stats.clone(),
        listener: listener.to_string(),
        output: config.name.clone(),
        error_log: RateLimit::every_interval(),
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
            queued,
            full_log: RateLimit::every_interval(),
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
    let mut packer = Packer::new(mtu);
    loop {
        let mut next = rx.recv().ok();
        let mut stop = next.is_none();
        while let Some(message) = next {
            match message {
                Message::Lines(batch) => {
                    let mut too_long = 0;
                    for line in batch.lines() {
                        if packer.push(line) == Push::TooLong {
                            too_long += 1;
                        }
                    }
                    if too_long > 0 {
                        link.stats.lines_too_long.add(too_long);
                    }
                    // Packed: the queue no longer holds these bytes (the packer does,
                    // up to SEND_BATCH datagrams).
                    link.queued.fetch_sub(batch.len_bytes(), Ordering::Relaxed);
                    if packer.finished() >= SEND_BATCH {
                        link.send(&mut packer);
                    }
                }
                Message::Stop => {
                    stop = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        packer.finish();
        link.send(&mut packer);
        if stop {
            return;
        }
    }
}

/// The connected socket and the counters of one output.
struct Link {
    socket: UdpSocket,
    /// The handle's count of queued bytes.
    queued: Arc<AtomicUsize>,
    stats: Arc<UdpOutputStats>,
    listener: String,
    output: String,
    error_log: RateLimit,
}

impl Link {
    /// Send the packer's finished datagrams, [`SEND_BATCH`] per system call, then
    /// forget them. A datagram the kernel refuses is counted and dropped.
    fn send(&mut self, packer: &mut Packer) {
        let total = packer.finished();
        let mut first = 0;
        let mut retried = false;
        while first < total {
            let n = (total - first).min(SEND_BATCH);
            match send_batch(self.socket.as_raw_fd(), packer, first, n) {
                Ok(sent) => {
                    let mut lines = 0;
                    let mut bytes = 0;
                    for i in first..first + sent {
                        let (datagram, l) = packer.datagram(i);
                        lines += l as u64;
                        bytes += datagram.len() as u64;
                    }
                    self.stats.datagrams_out.add(sent as u64);
                    self.stats.lines_out.add(lines);
                    self.stats.bytes_out.add(bytes);
                    first += sent;
                    retried = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP "port unreachable" for an earlier datagram is reported on this
                // call, which then did not send datagram `first`: one retry sends it.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && !retried => {
                    retried = true;
                }
                Err(e) => {
                    self.failed(packer, first, e);
                    first += 1;
                    retried = false;
                }
            }
        }
        packer.clear_finished();
    }

    /// Count datagram `i` as refused and log (rate-limited).
    fn failed(&mut self, packer: &Packer, i: usize, e: io::Error) {
        let (_, lines) = packer.datagram(i);
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
    }
}

/// One `sendmmsg(2)` of the packer's finished datagrams `first..first + n` (`n` at most
/// [`SEND_BATCH`]) on the connected socket `fd`: how many the kernel took (≥ 1), or the
/// error for datagram `first`, which was then not sent.
fn send_batch(fd: RawFd, packer: &Packer, first: usize, n: usize) -> io::Result<usize> {
    let n = n.min(SEND_BATCH);
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut iovs: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above: all-zero is a valid `mmsghdr`; its pointers are set below.
    let mut msgs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
    for (i, (iov, msg)) in iovs.iter_mut().zip(msgs.iter_mut()).take(n).enumerate() {
        let (datagram, _) = packer.datagram(first + i);
        *iov = libc::iovec {
            iov_base: datagram.as_ptr() as *mut libc::c_void,
            iov_len: datagram.len(),
        };
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `n` headers each point at their own iovec, which points into
    // the packer's buffer; `packer` is borrowed for the whole call, so nothing moves
    // or changes, and the kernel only reads the payloads.
    let rc = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, 0) };
    match rc {
        ..0 => Err(io::Error::last_os_error()),
        // Only a call with no messages returns 0; never loop on one.
        0 => Err(io::ErrorKind::WriteZero.into()),
        _ => Ok(rc as usize),
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

    /// More datagrams than one `sendmmsg` takes, from batches of every size, all queued
    /// before the sender looks: what arrives is exactly what packing one datagram at a
    /// time gives, in order.
    #[test]
    fn batched_sends_carry_exactly_the_packed_datagrams() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mtu = 200;
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut all_lines = Vec::new();
        let mut queued = 0;
        for b in 0..40 {
            let lines: Vec<String> = (0..b % 13 + 1)
                .map(|i| {
                    let pad = "x".repeat((b * 7 + i * 31) % 190);
                    format!("m,b={b} v={i}i,pad=\"{pad}\" {b}")
                })
                .collect();
            let b = batch(&lines.join("\n"));
            queued += b.len_bytes();
            tx.send(Message::Lines(b)).unwrap();
            all_lines.extend(lines);
        }
        tx.send(Message::Stop).unwrap();
        let stats = Arc::new(UdpOutputStats::default());
        let mut link = Link {
            socket: connect(sink.local_addr().unwrap()).unwrap(),
            queued: Arc::new(AtomicUsize::new(queued)),
            stats: stats.clone(),
            listener: "in".into(),
            output: "sink".into(),
            error_log: RateLimit::every_interval(),
        };
        let reader = std::thread::spawn(move || recv_all(&sink));
        run(&rx, &mut link, mtu);
        let datagrams: Vec<String> = reader
            .join()
            .unwrap()
            .into_iter()
            .map(|d| String::from_utf8(d).unwrap())
            .collect();

        let mut expected = vec![String::new()];
        let mut too_long = 0;
        for line in &all_lines {
            let line = format!("{line}\n");
            if line.len() > mtu {
                too_long += 1;
                continue;
            }
            if expected.last().unwrap().len() + line.len() > mtu {
                expected.push(String::new());
            }
            expected.last_mut().unwrap().push_str(&line);
        }
        assert!(too_long > 0 && expected.len() > SEND_BATCH);
        assert_eq!(datagrams, expected);
        assert_eq!(stats.datagrams_out.get(), expected.len() as u64);
        assert_eq!(stats.lines_out.get() + too_long, all_lines.len() as u64);
        assert_eq!(stats.lines_too_long.get(), too_long);
        assert_eq!(stats.bytes_out.get(), expected.concat().len() as u64);
        assert_eq!(link.queued.load(Ordering::Relaxed), 0);
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
            queued: Arc::default(),
            full_log: RateLimit::every_interval(),
        };
        let b = batch("a v=1 1\nb v=2 2");
        handle.offer("in", &b);
        handle.offer("in", &b);
        handle.offer("in", &b);
        assert_eq!(handle.stats.lines_queue_full.get(), 4);
        assert_eq!(handle.queued.load(Ordering::Relaxed), b.len_bytes());
    }

    #[test]
    fn the_queue_is_bounded_by_bytes_and_gives_them_back_once_packed() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (handle, thread) = start("in", &output(sink.local_addr().unwrap(), 1024)).unwrap();
        let b = batch("a v=1 1\nb v=2 2");
        // As if the sender had fallen behind by all but a few bytes.
        handle
            .queued
            .store(QUEUE_BYTES - b.len_bytes() + 1, Ordering::Relaxed);
        handle.offer("in", &b);
        assert_eq!(handle.stats.lines_queue_full.get(), 2);
        handle
            .queued
            .store(QUEUE_BYTES - b.len_bytes(), Ordering::Relaxed);
        handle.offer("in", &b);
        thread.stop();
        assert_eq!(handle.stats.lines_queue_full.get(), 2);
        assert_eq!(handle.stats.lines_out.get(), 2);
        assert_eq!(
            handle.queued.load(Ordering::Relaxed),
            QUEUE_BYTES - b.len_bytes()
        );
    }
}
