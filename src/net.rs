//! Socket set-up with socket2: every event loop binds its own socket for every
//! listener, so `SO_REUSEPORT` must be set *before* `bind` or the second bind fails.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Accept backlog per loop socket; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking TCP listener sharing `addr` with the other loops' listeners.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// A non-blocking UDP socket sharing `addr` with the other loops' sockets.
/// `read_buffer` sets `SO_RCVBUF` when non-zero.
pub fn bind_udp(addr: SocketAddr, read_buffer: usize) -> io::Result<mio::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if read_buffer > 0 {
        socket.set_recv_buffer_size(read_buffer)?;
    }
    socket.bind(&addr.into())?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_loops_can_bind_the_same_address() {
        let first = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind_tcp(addr).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        let u1 = bind_udp("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let u2 = bind_udp(u1.local_addr().unwrap(), 1 << 20).unwrap();
        assert_eq!(u1.local_addr().unwrap(), u2.local_addr().unwrap());
    }
}
