//! Socket set-up with socket2: every event loop binds its own socket for every
//! listener, so `SO_REUSEPORT` must be set *before* `bind` or the second bind fails.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

/// Accept backlog per loop socket; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Every source an event loop registers, by its `mio::Token`: one map for the whole
/// loop, so that what a token is can be read off it.
///
/// | tokens | source |
/// |---|---|
/// | `0 .. MAX_LISTENERS` | HTTP listener `i` |
/// | `UDP_BASE .. UDP_BASE + MAX_LISTENERS` | UDP listener `i` |
/// | `FIRST_CONN ..` | client connections and backend connections for reads, numbered in order and never reused, so a stale event cannot reach a newer connection |
/// | `WAKER` | the loop's waker (completions from backends, shutdown) |
pub mod token {
    use mio::Token;

    /// More listeners of one kind than any configuration has (1 024).
    pub const MAX_LISTENERS: usize = 1 << 10;
    const UDP_BASE: usize = 1 << 19;
    /// The first connection's token; later ones count up from here.
    pub const FIRST_CONN: usize = 1 << 20;
    pub const WAKER: Token = Token(usize::MAX - 1);

    /// What a token stands for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Source {
        HttpListener(usize),
        UdpListener(usize),
        Waker,
        /// A client connection or a backend connection for a read: the loop's maps say which.
        Connection(usize),
        /// Nothing the loop registers (a bug or a stale event).
        Unknown,
    }

    pub fn http_listener(i: usize) -> Token {
        debug_assert!(i < MAX_LISTENERS);
        Token(i)
    }

    pub fn udp_listener(i: usize) -> Token {
        debug_assert!(i < MAX_LISTENERS);
        Token(UDP_BASE + i)
    }

    pub fn source(token: Token) -> Source {
        match token.0 {
            _ if token == WAKER => Source::Waker,
            t if t < MAX_LISTENERS => Source::HttpListener(t),
            t if (UDP_BASE..UDP_BASE + MAX_LISTENERS).contains(&t) => {
                Source::UdpListener(t - UDP_BASE)
            }
            t if t >= FIRST_CONN => Source::Connection(t),
            _ => Source::Unknown,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_token_reads_back_as_what_it_was_made_for() {
            for i in [0, 1, MAX_LISTENERS - 1] {
                assert_eq!(source(http_listener(i)), Source::HttpListener(i));
                assert_eq!(source(udp_listener(i)), Source::UdpListener(i));
            }
            assert_eq!(source(WAKER), Source::Waker);
            assert_eq!(source(Token(FIRST_CONN)), Source::Connection(FIRST_CONN));
            assert_eq!(
                source(Token(FIRST_CONN + 7)),
                Source::Connection(FIRST_CONN + 7)
            );
            assert_eq!(source(Token(MAX_LISTENERS)), Source::Unknown);
            const { assert!(UDP_BASE + MAX_LISTENERS < FIRST_CONN) };
        }
    }
}

/// Make sure no other socket holds `addr` before the loops bind it, and give back the
/// address they should bind (a port 0 becomes the port the kernel chose, so that every
/// loop shares one).
///
/// `SO_REUSEPORT`, which lets every loop bind its own socket, also lets another process
/// of the same user bind the address without an error (a second relay started by
/// mistake), and the kernel then splits the clients between the two. A socket bound
/// without `SO_REUSEPORT` is refused while any other socket listens on the address,
/// whatever that one's options, so such a probe, bound and dropped before the loops
/// bind, tells. It keeps `SO_REUSEADDR`, so the connections of a relay that just
/// stopped (`TIME_WAIT`) do not count. Between the probe and the loops' binds another
/// process could still slip in; two relays started in the same instant are not caught.
pub fn claim_tcp(addr: SocketAddr) -> io::Result<SocketAddr> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(in_use)?;
    local_addr(&socket)
}

/// [`claim_tcp`] for a UDP address. The probe sets neither `SO_REUSEADDR` nor
/// `SO_REUSEPORT`: for UDP either would let it share the address with another socket.
pub fn claim_udp(addr: SocketAddr) -> io::Result<SocketAddr> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.bind(&addr.into()).map_err(in_use)?;
    local_addr(&socket)
}

fn in_use(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::AddrInUse {
        io::Error::new(
            e.kind(),
            "already in use by another process (another relay, or a server, listening there)",
        )
    } else {
        e
    }
}

fn local_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound socket has no IP address"))
}

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

/// A non-blocking UDP socket sharing `addr` with the other loops' sockets, and the
/// receive buffer the kernel gave it in `read-buffer` units (see [`recv_buffer`]).
/// `read_buffer` asks for that buffer when non-zero, past `net.core.rmem_max` if the
/// process may (see [`set_recv_buffer`]); 0 keeps the OS default.
pub fn bind_udp(addr: SocketAddr, read_buffer: usize) -> io::Result<(mio::net::UdpSocket, usize)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if read_buffer > 0 {
        set_recv_buffer(&socket, read_buffer)?;
    }
    let granted = recv_buffer(&socket)?;
    socket.bind(&addr.into())?;
    Ok((mio::net::UdpSocket::from_std(socket.into()), granted))
}

/// Ask for a `bytes` receive buffer, forcing it past `net.core.rmem_max` when allowed.
///
/// The kernel silently caps `SO_RCVBUF` at `net.core.rmem_max` (4 MiB on many hosts).
/// At 100 000 datagrams/s of 1.35 kB, 4 MiB holds about 36 ms of traffic: a loop that
/// stalls that long (a page fault storm, a busy neighbour on its core) loses datagrams.
/// `SO_RCVBUFFORCE` skips the cap but needs `CAP_NET_ADMIN`; without it the capped
/// buffer is kept, since a smaller buffer only overflows sooner. The caller compares
/// [`recv_buffer`] with what it asked for and says so.
fn set_recv_buffer(socket: &Socket, bytes: usize) -> io::Result<()> {
    socket.set_recv_buffer_size(bytes)?;
    if recv_buffer(socket)? >= bytes {
        return Ok(());
    }
    // The config caps `read-buffer` at `c_int::MAX`; saturate rather than wrap anyway.
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // Fails with EPERM without CAP_NET_ADMIN: what SO_RCVBUF gave then stays.
    // SAFETY: the fd is open for as long as `socket` is borrowed, and the option value
    // is a live c_int whose size is passed with it.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Ok(())
}

/// The socket's receive buffer in `read-buffer` units. Linux doubles what is set (the
/// extra half is for its own bookkeeping) and reports the doubled value, so this halves
/// it back: a `read-buffer` of 8388608 that was granted reads 8388608 here.
fn recv_buffer(socket: &Socket) -> io::Result<usize> {
    Ok(socket.recv_buffer_size()? / 2)
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
        let (u1, _) = bind_udp("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let (u2, _) = bind_udp(u1.local_addr().unwrap(), 1 << 20).unwrap();
        assert_eq!(u1.local_addr().unwrap(), u2.local_addr().unwrap());
    }

    #[test]
    fn an_address_held_by_another_socket_cannot_be_claimed_even_with_reuse_port() {
        // Another process's listener, with the options the loops use.
        let other = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = other.local_addr().unwrap();
        let err = claim_tcp(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("another process"), "{err}");
        let any_ip = SocketAddr::new([0, 0, 0, 0].into(), addr.port());
        assert!(claim_tcp(any_ip).is_err(), "the wildcard covers it");
        drop(other);
        assert_eq!(claim_tcp(addr).unwrap(), addr);

        let (other, _) = bind_udp("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let addr = other.local_addr().unwrap();
        assert_eq!(
            claim_udp(addr).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        drop(other);
        assert_eq!(claim_udp(addr).unwrap(), addr);
    }

    #[test]
    fn port_zero_is_claimed_as_one_port_for_every_loop() {
        let addr = claim_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(addr.port(), 0);
        let first = bind_tcp(addr).unwrap();
        let second = bind_tcp(addr).unwrap();
        assert_eq!(first.local_addr().unwrap(), second.local_addr().unwrap());
        let addr = claim_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(addr.port(), 0);
    }

    fn udp_socket() -> Socket {
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap()
    }

    /// Whether this process may force a receive buffer, asked of the kernel directly
    /// rather than through the code under test.
    fn may_force_recv_buffer() -> bool {
        let probe = udp_socket();
        let value: libc::c_int = 1 << 20;
        // SAFETY: as in `set_recv_buffer`: an open fd and a live c_int with its size.
        let rc = unsafe {
            libc::setsockopt(
                probe.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }

    #[test]
    fn a_read_buffer_above_rmem_max_is_forced_when_permitted_and_capped_otherwise() {
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The kernel keeps the doubled size in an int, so it forces at most half of that.
        let asked = (2 * rmem_max).min(libc::c_int::MAX as usize / 2);
        assert!(
            asked > rmem_max,
            "rmem_max {rmem_max} leaves nothing to force"
        );
        let (_, granted) = bind_udp("127.0.0.1:0".parse().unwrap(), asked).unwrap();
        if may_force_recv_buffer() {
            assert!(granted >= asked, "asked {asked}, forced only {granted}");
        } else {
            let plain = udp_socket();
            plain.set_recv_buffer_size(asked).unwrap();
            assert_eq!(granted, plain.recv_buffer_size().unwrap() / 2);
            assert!(granted < asked);
        }
    }
}
