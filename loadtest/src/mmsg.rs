//! Several datagrams per system call for the UDP sender: `sendmmsg(2)` over a connected
//! socket.
//!
//! One `send` per datagram costs a system call each, and at 100 000 datagrams/s the
//! generator would spend a core on entries and exits alone. The datagrams of one call
//! sit back to back in one buffer, so filling a batch allocates nothing once the
//! buffer has grown to its working size.

use std::io;
use std::os::fd::RawFd;

/// Datagrams handed to the kernel per call, at most.
pub const BATCH: usize = 32;

/// Up to [`BATCH`] datagrams waiting to be sent, and what each one carries.
#[derive(Debug, Default)]
pub struct Datagrams {
    /// Payloads back to back.
    buf: Vec<u8>,
    /// Exclusive end of each datagram in `buf`, ascending.
    ends: Vec<usize>,
    /// Lines in each datagram.
    lines: Vec<u64>,
}

/// What one [`Datagrams::send`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub datagrams: u64,
    pub lines: u64,
    pub bytes: u64,
    /// Datagrams the kernel refused (their lines are lost).
    pub failed: u64,
}

impl Datagrams {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.ends.len() >= BATCH
    }

    /// Append one datagram written by `fill`, which appends its payload to the buffer it
    /// is given and returns how many lines that payload holds.
    pub fn push(&mut self, fill: impl FnOnce(&mut Vec<u8>) -> u64) {
        let lines = fill(&mut self.buf);
        self.ends.push(self.buf.len());
        self.lines.push(lines);
    }

    /// Datagram `i`'s payload.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// Send every datagram on the connected socket `fd`, then forget them. A datagram
    /// the kernel refuses is counted as failed and skipped, as a failed `send` would be;
    /// `on_error` runs after each refusal (the caller backs off there).
    pub fn send(&mut self, fd: RawFd, mut on_error: impl FnMut(&io::Error)) -> Sent {
        let mut sent = Sent::default();
        let n = self.ends.len();
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (iov, msg)) in iovs.iter_mut().zip(msgs.iter_mut()).take(n).enumerate() {
            let payload = self.get(i);
            *iov = libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            };
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        let mut first = 0;
        while first < n {
            // SAFETY: headers first..n point at their own iovec, each of which points
            // into `self.buf`; none of them is moved or changed during the call, and
            // the kernel only reads the payloads.
            let rc = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs[first..].as_mut_ptr(),
                    (n - first) as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                for i in first..first + rc as usize {
                    sent.datagrams += 1;
                    sent.lines += self.lines[i];
                    sent.bytes += self.get(i).len() as u64;
                }
                first += rc as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first datagram left was not sent (ECONNREFUSED for an earlier one,
            // ENOBUFS); its lines are lost, as the sink's analysis will show.
            sent.failed += 1;
            first += 1;
            on_error(&e);
        }
        self.buf.clear();
        self.ends.clear();
        self.lines.clear();
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn a_batch_leaves_as_separate_datagrams_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let mut d = Datagrams::default();
        for i in 0..BATCH {
            d.push(|buf| {
                buf.extend_from_slice(format!("m v={i}\n").repeat(i % 3 + 1).as_bytes());
                (i % 3 + 1) as u64
            });
        }
        assert!(d.is_full());
        assert_eq!(d.get(1), b"m v=1\nm v=1\n");
        let sent = d.send(tx.as_raw_fd(), |e| panic!("{e}"));
        assert!(d.is_empty());
        assert_eq!(sent.datagrams, BATCH as u64);
        assert_eq!(sent.failed, 0);
        let mut buf = [0u8; 256];
        let mut lines = 0;
        let mut bytes = 0;
        for i in 0..BATCH {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], format!("m v={i}\n").repeat(i % 3 + 1).as_bytes());
            lines += (i % 3 + 1) as u64;
            bytes += n as u64;
        }
        assert_eq!((sent.lines, sent.bytes), (lines, bytes));
    }

    #[test]
    fn refused_datagrams_are_counted_and_skipped() {
        // Bind then close: nothing listens there, so loopback answers ICMP unreachable,
        // which the kernel reports on a later send of the connected socket.
        let gone = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(gone).unwrap();
        let mut total = Sent::default();
        let mut errors = 0;
        for _ in 0..5 {
            let mut d = Datagrams::default();
            for _ in 0..4 {
                d.push(|buf| {
                    buf.extend_from_slice(b"m v=1\n");
                    1
                });
            }
            let s = d.send(tx.as_raw_fd(), |_| errors += 1);
            total.datagrams += s.datagrams;
            total.failed += s.failed;
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(total.datagrams + total.failed, 20);
        assert!(total.failed >= 1, "loopback reports the unreachable port");
        assert_eq!(errors, total.failed);
    }
}
