//! One client connection, and the parts of serving it that need no socket: framing a
//! request out of the bytes received (`frame_head`, `begin_body`, `feed_body`) and
//! deciding what its clock says (`expiry`). The event loop does the I/O around them;
//! `conn_tests.rs` runs them on byte strings and made-up instants.
//!
//! Buffers: unparsed input is an [`Input`] (its cursor invariants are on the type);
//! unsent output is `wbuf[wpos..]`. A request moves
//! through `Phase`: `Head` until its head is complete, `Body` until its body is, then
//! one of the busy phases until it is answered; nothing more is parsed meanwhile, so
//! pipelined requests wait in `rbuf` in order.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::batch::AckTracker;
use crate::http::request::{self, BodyKind, ChunkedDecoder, Head, HeadScanner, Reject};
use crate::tls::Transport;

use super::proxy;

/// Average rate, in bytes per second, below which a body that is still arriving is
/// answered 408, on top of the `read-timeout` allowance: without it a client sending a
/// few bytes per second keeps resetting the stall timer and holds its connection for
/// days. 8 KiB/s is 64 kbit/s, below any link that usefully carries metrics.
pub(super) const MIN_BODY_RATE: u64 = 8 * 1024;
/// Longest a refused connection lingers after its answer (see [`Linger`]): time for a
/// client still sending to finish and read the answer, short enough that refused
/// clients cannot pile up.
pub(super) const LINGER_TIME: Duration = Duration::from_secs(2);
/// Most input dropped while lingering (4 MiB); a client still sending after that is
/// reset rather than read for.
pub(super) const LINGER_BYTES: usize = 4 << 20;

/// Where a connection is in its current request.
pub(super) enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Head parsed; receiving the body.
    Body {
        head: Head,
        body: Vec<u8>,
        framing: BodyFraming,
    },
    /// Request handed to backends; the answer comes from a completion.
    Waiting(InFlight),
    /// A read query streamed from one backend by the upstream with this token.
    Proxying { upstream: usize, keep_alive: bool },
    /// A read query waiting for a backend that has applied every change acknowledged
    /// before it arrived (the connection is on `EventLoop::parked`).
    ReadWait(proxy::ParkedRead),
    /// A checked write or statement not yet handed to the backends, because one of
    /// them cannot take writes as fast as they come (the connection is on
    /// `EventLoop::held`). Nothing more is read from this client meanwhile: that is
    /// how a relay with a spool slows its clients instead of dropping their writes.
    Held(HeldChange),
}

pub(super) struct HeldChange {
    pub(super) batch: crate::batch::Batch,
    pub(super) statements: usize,
    pub(super) keep_alive: bool,
    /// Past this the client is answered 503 and may retry; nothing was forwarded.
    pub(super) deadline: Instant,
}

/// How a connection the relay closes after an error answer ends: the lingering close
/// of web servers. Closing a socket with input unread makes the kernel reset the
/// connection, and a client still sending (a huge head, a body over the limit) then sees
/// ECONNRESET instead of the answer it was sent. So once the answer is flushed, the
/// write side is shut (the client reads the answer, then EOF) and input is read and
/// dropped until the client closes, [`LINGER_TIME`] passes or [`LINGER_BYTES`] came.
pub(super) enum Linger {
    /// Close as soon as the output is flushed.
    No,
    /// Linger once the output is flushed.
    Wanted,
    /// Write side shut; dropping input until `until`, or until `left` more bytes came.
    Draining { until: Instant, left: usize },
}

#[derive(Debug)]
pub(super) enum BodyFraming {
    /// The body buffer is allocated ahead of the bytes received (up to `BODY_AHEAD`,
    /// never past `len`) and `filled` from the front, so reads can land in it
    /// directly; its length is never below `filled`.
    Length {
        len: usize,
        filled: usize,
    },
    Chunked(ChunkedDecoder),
}

impl Phase {
    /// A request is being served: nothing more is read or parsed until it is answered.
    pub(super) fn is_busy(&self) -> bool {
        matches!(
            self,
            Phase::Waiting(_) | Phase::Proxying { .. } | Phase::ReadWait(_) | Phase::Held(_)
        )
    }
}

impl BodyFraming {
    /// Body bytes received so far.
    pub(super) fn received(&self, body: &[u8]) -> usize {
        match self {
            BodyFraming::Length { filled, .. } => *filled,
            BodyFraming::Chunked(_) => body.len(),
        }
    }
}

pub(super) struct InFlight {
    pub(super) request: u64,
    /// The change's number (`applied`): a 2xx answer acknowledges it.
    pub(super) seq: u64,
    pub(super) tracker: AckTracker,
    pub(super) deadline: Instant,
    pub(super) keep_alive: bool,
    /// Schema statements sent (0 for a write): their success answer is JSON.
    pub(super) statements: usize,
}

pub(super) struct Conn {
    pub(super) stream: Transport,
    pub(super) listener: usize,
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// Bytes received and not parsed yet.
    pub(super) input: Input,
    pub(super) scanner: HeadScanner,
    pub(super) phase: Phase,
    /// Output not yet accepted by the kernel is `wbuf[wpos..]`.
    pub(super) wbuf: Vec<u8>,
    pub(super) wpos: usize,
    /// The client sent FIN: answer what is buffered, then close.
    pub(super) peer_closed: bool,
    /// Close once `wbuf` is flushed (error answers, `Connection: close`, shutdown).
    pub(super) close_after_flush: bool,
    /// How that close goes; `Wanted` when the client may still be sending.
    pub(super) linger: Linger,
    /// Last time the client sent bytes (read-timeout and idle-timeout run from here).
    pub(super) last_input: Instant,
    /// When the current request's head was complete: a `/write`'s latency runs from
    /// here to its answer (stable while it waits: nothing more is parsed meanwhile).
    pub(super) head_done: Instant,
    /// When the first byte of the request being received was seen; `None` between
    /// requests. Bounds the whole head, and the body's average rate (`too_slow`).
    pub(super) request_started: Option<Instant>,
    /// The write API of the request being served: the shape of its error answers.
    pub(super) api: crate::http::api::Api,
    /// A 3.x write that dropped invalid lines (`accept_partial`): its client is
    /// answered this 400 body instead of 204 once the rest is acknowledged.
    pub(super) partial: Option<Vec<u8>>,
}

impl Conn {
    /// Includes TLS records the session could not hand to the kernel yet.
    pub(super) fn pending_output(&self) -> usize {
        self.wbuf.len() - self.wpos + self.stream.pending_output()
    }

    pub(super) fn has_partial_request(&self) -> bool {
        matches!(self.phase, Phase::Body { .. }) || !self.input.is_empty()
    }
}

/// Outcome of one I/O attempt.
pub(super) enum Io {
    Progress,
    WouldBlock,
    Closed,
    Error,
}

impl Conn {
    /// This connection's timeout facts (see [`expiry`]).
    pub(super) fn clock(&self) -> Clock {
        Clock {
            last_input: self.last_input,
            request_started: self.request_started,
            body_received: match &self.phase {
                Phase::Body { body, framing, .. } => Some(framing.received(body)),
                _ => None,
            },
            partial_request: self.has_partial_request(),
            closing: self.close_after_flush,
            pending_output: self.pending_output() > 0,
            linger_until: match self.linger {
                Linger::Draining { until, .. } => Some(until),
                _ => None,
            },
        }
    }
}

/// A connection's input: bytes received, parsed from the front.
///
/// Invariants: `pos <= buf.len()`; `buf[..pos]` is consumed (parsed) and may be dropped
/// at any time, `buf[pos..]` is what is left, in the order it arrived. Appending never
/// moves unparsed bytes past a request boundary, so pipelined requests stay in order.
/// Consumed bytes are dropped when nothing is left (the buffer restarts at 0) or when
/// they are more than half of it (one `memmove` of the rest), so the buffer never grows
/// without bound while a client sends request after request.
#[derive(Debug, Default)]
pub(super) struct Input {
    buf: Vec<u8>,
    pos: usize,
}

impl Input {
    /// What is left to parse.
    pub(super) fn unparsed(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// The first `n` unparsed bytes were used.
    pub(super) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.buf.len() - self.pos);
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Bytes that just arrived go after what is left.
    pub(super) fn append(&mut self, bytes: &[u8]) {
        if self.is_empty() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Give the memory back when nothing is left and it holds more than `keep` bytes:
    /// an idle keep-alive client then costs no read buffer.
    pub(super) fn release_if_idle(&mut self, keep: usize) {
        if self.is_empty() && self.buf.capacity() > keep {
            *self = Input::default();
        }
    }
}

/// What the bytes at the start of a connection's input hold.
#[derive(Debug)]
pub(super) enum HeadStep {
    /// Not a whole head yet (and nothing that can never become one).
    NeedMore,
    /// Cannot be a request: answer this and close.
    Reject(Reject),
    /// A whole head, taking `len` bytes of the input.
    Head(Head, usize),
}

/// Find and parse the request head at the start of `input`. Bytes that can never
/// become a request line are refused at once rather than after `read-timeout`. The
/// announced body length is not held against `max-body-size` here: that waits until
/// the credentials are checked (a client without them learns that first).
pub(super) fn frame_head(scanner: &mut HeadScanner, input: &[u8]) -> HeadStep {
    let end = match scanner.find_end(input) {
        Ok(Some(end)) => end,
        Ok(None) => {
            return match scanner.check_line(input) {
                Err(reject) => HeadStep::Reject(reject),
                Ok(()) => HeadStep::NeedMore,
            }
        }
        Err(reject) => return HeadStep::Reject(reject),
    };
    match request::parse_head(&input[..end], usize::MAX) {
        Ok(head) => HeadStep::Head(head, end),
        Err(reject) => HeadStep::Reject(reject),
    }
}

/// What follows an accepted head.
#[derive(Debug)]
pub(super) enum BodyStart {
    /// No body: the request is complete.
    None,
    /// The announced length is over `max-body-size`: 413.
    TooLarge,
    /// A body to receive; `send_continue` when the client waits for `100 Continue`
    /// before sending it (not when the body is already here).
    Expect {
        framing: BodyFraming,
        send_continue: bool,
    },
}

/// How to receive the body of `head`, given `buffered` input bytes already after it.
pub(super) fn begin_body(head: &Head, max_body: usize, buffered: usize) -> BodyStart {
    let framing = match head.body {
        BodyKind::None => return BodyStart::None,
        BodyKind::Length(n) if n > max_body => return BodyStart::TooLarge,
        BodyKind::Length(n) => BodyFraming::Length { len: n, filled: 0 },
        BodyKind::Chunked => BodyFraming::Chunked(ChunkedDecoder::default()),
    };
    let complete_here = matches!(framing, BodyFraming::Length { len, .. } if buffered >= len);
    BodyStart::Expect {
        send_continue: head.expect_continue && !complete_here,
        framing,
    }
}

/// Take body bytes from the start of `input` into `body`: how many were used, and
/// whether the body is complete. Never takes a byte past the body's end, so a
/// pipelined request after it stays in the input.
pub(super) fn feed_body(
    framing: &mut BodyFraming,
    body: &mut Vec<u8>,
    input: &[u8],
    max_body: usize,
) -> Result<(usize, bool), Reject> {
    match framing {
        BodyFraming::Length { len, filled } => {
            let take = input.len().min(*len - *filled);
            if body.len() < *filled + take {
                body.resize(*filled + take, 0);
            }
            body[*filled..*filled + take].copy_from_slice(&input[..take]);
            *filled += take;
            Ok((take, *filled == *len))
        }
        BodyFraming::Chunked(decoder) => {
            let used = decoder.decode(input, body, max_body)?;
            Ok((used, decoder.is_done()))
        }
    }
}

/// What a connection's clock says, at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// A request that stalled or trickles: 408, then close.
    RequestTimeout,
    /// Idle, not reading its answers, done lingering, or shutting down: close.
    Close,
}

/// The facts about an idle-or-receiving connection that its timeouts depend on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub(super) last_input: Instant,
    /// When the request being received began; `None` between requests.
    pub(super) request_started: Option<Instant>,
    /// Body bytes received of the request, when it is in its body.
    pub(super) body_received: Option<usize>,
    pub(super) partial_request: bool,
    pub(super) closing: bool,
    pub(super) pending_output: bool,
    /// Lingering ends then.
    pub(super) linger_until: Option<Instant>,
}

/// The timeout rules of a connection that is not waiting on a backend:
/// - lingering after an error answer ends at its deadline;
/// - a request in progress gets `read-timeout` from its last byte, and as a whole
///   `read-timeout` for the head plus the time its body takes at `MIN_BODY_RATE`
///   (progress alone does not save a client that sends a byte every few seconds);
/// - a client that stopped reading its answers, or is idle between requests, is
///   closed after `idle-timeout`; at shutdown an idle one is closed at once.
pub(super) fn expiry(
    c: &Clock,
    read_timeout: Duration,
    idle_timeout: Duration,
    shutting_down: bool,
    now: Instant,
) -> Option<Expiry> {
    if let Some(until) = c.linger_until {
        return (now >= until).then_some(Expiry::Close);
    }
    let quiet = now.saturating_duration_since(c.last_input);
    if c.partial_request && !c.closing {
        let too_slow = c.request_started.is_some_and(|started| {
            let body = c.body_received.unwrap_or(0) as u64;
            let allowance = read_timeout + Duration::from_millis(body * 1000 / MIN_BODY_RATE);
            now.saturating_duration_since(started) >= allowance
        });
        return (quiet >= read_timeout || too_slow).then_some(Expiry::RequestTimeout);
    }
    if c.pending_output {
        return (quiet >= idle_timeout).then_some(Expiry::Close);
    }
    (quiet >= idle_timeout || shutting_down).then_some(Expiry::Close)
}

/// How far ahead of the bytes received a body of known length is allocated: reads
/// land in it directly, and a client that announces a large body but sends nothing
/// holds no more than this.
pub(super) const BODY_AHEAD: usize = 1 << 20;

/// Make room in `body` (filled up to `filled`, `len` in all) for the next read.
pub(super) fn grow_body(body: &mut Vec<u8>, filled: usize, len: usize) {
    if body.len() == filled {
        body.resize(len.min(filled + BODY_AHEAD), 0);
    }
}

/// One read, retried on `EINTR`.
pub(super) fn read_retrying(stream: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Write queued output until done or `WouldBlock`.
pub(super) fn flush(conn: &mut Conn) -> Io {
    while conn.wpos < conn.wbuf.len() {
        match conn.stream.write(&conn.wbuf[conn.wpos..]) {
            Ok(0) => return Io::Closed,
            Ok(n) => conn.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.writable = false;
                return Io::WouldBlock;
            }
            Err(_) => return Io::Error,
        }
    }
    conn.wbuf.clear();
    conn.wpos = 0;
    // What a TLS session still holds after taking the whole buffer.
    match conn.stream.flush() {
        Ok(()) => Io::Progress,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            conn.writable = false;
            Io::WouldBlock
        }
        Err(_) => Io::Error,
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
