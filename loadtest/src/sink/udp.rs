//! The sink's UDP listener: counts datagrams and lines and feeds the same sequence
//! analysis as HTTP writes.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{lock, Shared};
use crate::seq::{collect, Obs};

/// Largest UDP payload; one more byte in the buffer exposes truncation.
const MAX_DATAGRAM: usize = 65_535;
/// Kernel receive buffer asked for, so bursts from the generator are not dropped by
/// the socket before the thread gets to them.
const RECV_BUFFER: usize = 16 << 20;
/// Wake-up interval to notice a shutdown request.
const STOP_TICK: Duration = Duration::from_millis(100);

pub(super) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // The kernel caps SO_RCVBUF at net.core.rmem_max without an error; SO_RCVBUFFORCE
    // goes past it with CAP_NET_ADMIN. Without, a smaller buffer still works, it only
    // drops sooner, so say so: the sink's drops would otherwise look like the relay's.
    let _ = sock.set_recv_buffer_size(RECV_BUFFER);
    // Linux reports twice the size set (half is its bookkeeping).
    if sock.recv_buffer_size().unwrap_or(0) / 2 < RECV_BUFFER {
        let value = RECV_BUFFER as libc::c_int;
        // SAFETY: an open fd and a live c_int passed with its size. Fails with EPERM
        // without CAP_NET_ADMIN, which the check below reports.
        let _ = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let got = sock.recv_buffer_size().unwrap_or(0) / 2;
        if got < RECV_BUFFER {
            eprintln!(
                "level=warn msg=\"sink: udp receive buffer capped by the kernel\" \
                 asked={RECV_BUFFER} got={got} \
                 fix=\"raise net.core.rmem_max, or run with CAP_NET_ADMIN\""
            );
        }
    }
    sock.bind(&addr.into())?;
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(STOP_TICK))?;
    Ok(sock)
}

pub(super) fn serve(shared: &Shared, sock: &UdpSocket) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut obs: Vec<Obs> = Vec::new();
    let c = &shared.counters;
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                eprintln!("level=warn msg=\"sink: udp receive failed\" error=\"{e}\"");
                std::thread::sleep(STOP_TICK);
                continue;
            }
        };
        c.udp_datagrams.fetch_add(1, Ordering::Relaxed);
        if n > MAX_DATAGRAM {
            c.udp_truncated.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let payload = &buf[..n];
        let (lines, untagged) = collect(payload, &mut obs);
        lock(&shared.tracker).apply(payload, &obs);
        c.udp_lines.fetch_add(lines, Ordering::Relaxed);
        c.udp_bytes.fetch_add(n as u64, Ordering::Relaxed);
        c.untagged_lines.fetch_add(untagged, Ordering::Relaxed);
    }
}
