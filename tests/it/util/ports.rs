//! Free loopback ports, never handed out twice by this test binary.

use super::*;

/// Ports handed out by this test binary. The kernel may return a port again once its
/// probe socket is closed; remembering them keeps two parallel tests of this binary from
/// being given the same port before either has bound it.
pub(crate) fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

pub(crate) fn pick_port(probe: impl Fn() -> io::Result<u16>) -> u16 {
    for _ in 0..1000 {
        let port = probe().unwrap_or_else(|e| panic!("cannot bind a probe socket: {e}"));
        let mut taken = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if taken.insert(port) {
            return port;
        }
    }
    panic!("the kernel kept returning ports this test binary already handed out");
}

/// A TCP port on 127.0.0.1 that was free a moment ago and has not been handed out before
/// by this test binary.
///
/// Racy by nature: the probe socket is closed before the caller's process binds the port,
/// and in between another program (another test binary, an outgoing connection's
/// ephemeral port) may take it. [`Influxd::start`] detects that and retries with fresh
/// ports; a relay started on a stolen port fails to start and the test fails loudly.
pub fn free_port() -> u16 {
    pick_port(|| {
        Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port())
    })
}

/// A UDP port on 127.0.0.1 that was free a moment ago; the same race as [`free_port`].
pub fn free_udp_port() -> u16 {
    pick_port(|| {
        Ok(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port())
    })
}

pub(crate) fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
