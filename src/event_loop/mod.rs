//! One event loop per core: it owns a `mio::Poll`, its own `SO_REUSEPORT` socket for
//! every listener, the connections it accepted, and the client requests waiting on
//! backends. Nothing here blocks: backends are reached with `try_send` and answer
//! through the loop's completion channel and waker.
//!
//! Readiness is kept as data per connection (`readable`/`writable`), cleared only on
//! `WouldBlock`, and every connection and listener is served with a budget so one
//! busy client cannot starve the others; a connection that used its budget is put on
//! `again` and served before the next wait.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use crate::backend::{Completion, Job, LoopNotifier, Reply};
use crate::batch::{AckTracker, Answer};
use crate::http::api::{self, Api};
use crate::http::request::{self, BodyKind, Head, HeadScanner, Method, Reject};
use crate::http::{auth, query, response, write};
use crate::net::token::{self, Source};
use crate::state::Shared;

mod admin;
mod changes;
mod conn;
mod proxy;
mod router;
mod write_apis;
use crate::tls::Transport;
use conn::*;
use proxy::Upstream;

/// How often parked reads look again for an up-to-date backend. Backends finish
/// changes on their own threads without telling this loop, so it looks.
const PARKED_RECHECK: Duration = Duration::from_millis(1);

/// Reads per connection per turn before others get theirs.
const READ_BUDGET: usize = 16;
/// Accepts per listener per turn.
const ACCEPT_BUDGET: usize = 128;
/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;
/// Buffers a connection keeps between requests; larger ones are freed when empty.
const IDLE_BUFFER_KEEP: usize = 4 * 1024;
/// Unsent answers above this stop a pipelining client's next requests from being
/// parsed until it reads what it was sent.
const MAX_PENDING_OUTPUT: usize = 256 * 1024;
/// How often deadlines are checked; timeouts are accurate to this.
const TICK: Duration = Duration::from_millis(50);
pub struct EventLoop {
    id: usize,
    poll: Poll,
    shared: Arc<Shared>,
    listeners: Vec<Option<TcpListener>>,
    /// This loop's socket for every `[[udp]]` listener, same index.
    udp: Vec<crate::udp::LoopSocket>,
    conns: HashMap<usize, Conn>,
    upstreams: HashMap<usize, Upstream>,
    /// Every socket read lands here first (`READ_CHUNK` bytes, zeroed once).
    scratch: Vec<u8>,
    /// Round-robin start for read queries over up-to-date backends.
    next_reader: usize,
    next_token: usize,
    notifier: Arc<LoopNotifier>,
    completions: Receiver<Completion>,
    next_request: u64,
    /// Connections and listeners with readiness left after their budget.
    again: Vec<Token>,
    /// Connections whose read query waits in `Phase::ReadWait`.
    parked: Vec<usize>,
    /// Connections whose change waits in `Phase::Held`, oldest first.
    held: Vec<usize>,
    now: Instant,
    now_ns: i64,
    last_tick: Instant,
    shutdown_deadline: Option<Instant>,
}

impl EventLoop {
    /// Bind this loop's sockets. Called on the starting thread so bind errors surface
    /// before anything runs.
    pub fn new(id: usize, shared: Arc<Shared>) -> io::Result<(EventLoop, Arc<LoopNotifier>)> {
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        for (i, l) in shared.http.iter().enumerate() {
            let mut listener = crate::net::bind_tcp(l.config.bind_addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", l.config.bind_addr),
                )
            })?;
            poll.registry()
                .register(&mut listener, token::http_listener(i), Interest::READABLE)?;
            listeners.push(Some(listener));
        }
        let udp = crate::udp::LoopSocket::bind_all(poll.registry(), &shared.udp, id)?;
        let waker = mio::Waker::new(poll.registry(), token::WAKER)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let notifier = Arc::new(LoopNotifier::new(tx, waker));
        let now = Instant::now();
        let lp = EventLoop {
            id,
            poll,
            shared,
            listeners,
            udp,
            conns: HashMap::new(),
            upstreams: HashMap::new(),
            scratch: vec![0; READ_CHUNK],
            next_reader: id,
            next_token: token::FIRST_CONN,
            notifier: notifier.clone(),
            completions: rx,
            next_request: 0,
            again: Vec::new(),
            parked: Vec::new(),
            held: Vec::new(),
            now,
            now_ns: 0,
            last_tick: now,
            shutdown_deadline: None,
        };
        Ok((lp, notifier))
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut again = Vec::new();
        loop {
            let timeout = if !self.again.is_empty() {
                Duration::ZERO
            } else if !self.parked.is_empty() || !self.held.is_empty() {
                PARKED_RECHECK
            } else {
                TICK
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    crate::error!("poll failed; loop stops", event_loop = self.id, error = e);
                    return;
                }
            }
            self.clock();
            std::mem::swap(&mut again, &mut self.again);
            for token in again.drain(..) {
                self.dispatch(token, false, false);
            }
            for event in events.iter() {
                let token = event.token();
                if token == token::WAKER {
                    self.drain_completions();
                    continue;
                }
                // Errors and hang-ups surface as a failed read or write.
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_write_closed();
                self.dispatch(token, readable, writable);
            }
            if !self.held.is_empty() {
                self.recheck_held();
            }
            if !self.parked.is_empty() {
                self.recheck_parked();
            }
            if self.now.duration_since(self.last_tick) >= TICK {
                self.last_tick = self.now;
                self.drain_completions();
                self.check_deadlines();
                if self.check_shutdown() {
                    return;
                }
            }
        }
    }

    /// One timestamp per pass: every request of a pass is stamped with the same time.
    fn clock(&mut self) {
        self.now = Instant::now();
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        self.now_ns = i64::try_from(ns).unwrap_or(i64::MAX);
    }

    fn dispatch(&mut self, token: Token, readable: bool, writable: bool) {
        match token::source(token) {
            Source::HttpListener(i) if i < self.listeners.len() => {
                self.accept(i);
                return;
            }
            Source::UdpListener(i) if i < self.udp.len() => {
                if self.udp[i].drain(&self.shared.udp[i], self.now_ns) {
                    self.again.push(token);
                }
                return;
            }
            Source::Connection(_) => {}
            // The waker is read in `run`; anything else is not ours.
            _ => return,
        }
        if let Some(conn) = self.conns.get_mut(&token.0) {
            conn.readable |= readable;
            conn.writable |= writable;
            self.drive(token.0);
        } else if let Some(up) = self.upstreams.get_mut(&token.0) {
            up.readable |= readable;
            up.writable |= writable;
            self.drive_upstream(token.0);
        }
    }

    fn accept(&mut self, index: usize) {
        let Some(listener) = self.listeners[index].as_ref() else {
            return;
        };
        let shared = &self.shared.http[index];
        let stats = &shared.stats[self.id];
        for _ in 0..ACCEPT_BUDGET {
            match listener.accept() {
                Ok((stream, peer)) => {
                    let open = shared.open_connections.fetch_add(1, Ordering::Relaxed);
                    if open >= shared.config.max_connections {
                        // Over the limit: close at once so the client sees it quickly
                        // and everyone already connected keeps being served.
                        shared.open_connections.fetch_sub(1, Ordering::Relaxed);
                        stats.connections_rejected.inc();
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let mut stream = match Transport::accept(stream, shared.tls.as_ref(), peer) {
                        Ok(stream) => stream,
                        Err(e) => {
                            shared.open_connections.fetch_sub(1, Ordering::Relaxed);
                            crate::warn!("cannot start a TLS session", error = e);
                            continue;
                        }
                    };
                    let token = self.next_token;
                    self.next_token += 1;
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(token),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        shared.open_connections.fetch_sub(1, Ordering::Relaxed);
                        crate::warn!("cannot register connection", error = e);
                        continue;
                    }
                    stats.connections_open.add(1);
                    self.conns.insert(
                        token,
                        Conn {
                            stream,
                            listener: index,
                            // Data may already be waiting; try before the first event.
                            readable: true,
                            writable: true,
                            input: Input::default(),
                            scanner: HeadScanner::default(),
                            phase: Phase::Head,
                            wbuf: Vec::new(),
                            wpos: 0,
                            peer_closed: false,
                            close_after_flush: false,
                            linger: Linger::No,
                            last_input: self.now,
                            head_done: self.now,
                            request_started: None,
                            api: Api::V1,
                            partial: None,
                        },
                    );
                    self.again.push(Token(token));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: retry on the next pass rather than spin.
                    static LIMIT: crate::log::RateLimit = crate::log::RateLimit::every_interval();
                    if let Some(suppressed) = LIMIT.check() {
                        crate::error!(
                            "accept failed",
                            listener = shared.config.name,
                            error = e,
                            suppressed = suppressed
                        );
                    }
                    return;
                }
            }
        }
        self.again.push(token::http_listener(index));
    }

    /// Serve one connection as far as its readiness and budget allow.
    fn drive(&mut self, token: usize) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        let mut reads = 0;
        let keep = loop {
            // Answers first: they free the client to send more.
            if conn.pending_output() > 0 && conn.writable {
                match flush(&mut conn) {
                    Io::Progress | Io::WouldBlock => {}
                    Io::Closed | Io::Error => break false,
                }
            }
            if conn.pending_output() == 0 && conn.close_after_flush {
                break self.linger(token, &mut conn);
            }
            // Parse and act on everything already buffered; flush what that queued.
            if self.process(token, &mut conn) || (conn.pending_output() > 0 && conn.writable) {
                continue;
            }
            let can_read = !conn.phase.is_busy()
                && !conn.peer_closed
                && !conn.close_after_flush
                && conn.pending_output() < MAX_PENDING_OUTPUT;
            if !(can_read && conn.readable) {
                if conn.peer_closed && !conn.phase.is_busy() && conn.pending_output() == 0 {
                    break false;
                }
                break true;
            }
            if reads == READ_BUDGET {
                self.again.push(Token(token));
                break true;
            }
            reads += 1;
            match self.read(&mut conn) {
                Io::Progress => conn.last_input = self.now,
                Io::WouldBlock => conn.readable = false,
                Io::Closed => conn.peer_closed = true,
                Io::Error => break false,
            }
        };
        if keep && !conn.readable {
            // Drained to WouldBlock: the client is quiet for now.
            Self::release_buffers(&mut conn);
        }
        // A proxied read paused for this client's sake may go on once it has
        // taken most of what it was sent.
        let resume = match conn.phase {
            Phase::Proxying { upstream, .. }
                if keep && conn.pending_output() < MAX_PENDING_OUTPUT / 2 =>
            {
                Some(upstream)
            }
            _ => None,
        };
        if keep {
            self.conns.insert(token, conn);
        } else {
            self.close(conn);
        }
        if let Some(up) = resume.filter(|up| self.upstreams.get(up).is_some_and(|u| u.readable)) {
            self.again.push(Token(up));
        }
    }

    /// Read once: into the body being received when its length is known and nothing
    /// else is buffered, else into the loop's scratch buffer and from there onto the
    /// connection's input. Reading through one zeroed-once scratch buffer costs a copy
    /// of the bytes that arrived instead of zero-filling a fresh 64 KiB per read, and
    /// an idle connection holds no read buffer at all.
    fn read(&mut self, conn: &mut Conn) -> Io {
        let nothing_buffered = conn.input.is_empty();
        let result = match &mut conn.phase {
            // A body of known length with nothing else buffered is read straight into
            // its own buffer: no copy.
            Phase::Body {
                body,
                framing: BodyFraming::Length { len, filled },
                ..
            } if nothing_buffered => {
                if *filled == *len {
                    return Io::Progress;
                }
                grow_body(body, *filled, *len);
                let result = read_retrying(&mut conn.stream, &mut body[*filled..]);
                if let Ok(n) = result {
                    *filled += n;
                }
                result
            }
            _ => {
                let result = read_retrying(&mut conn.stream, &mut self.scratch);
                if let Ok(n) = result {
                    conn.input.append(&self.scratch[..n]);
                }
                result
            }
        };
        match result {
            Ok(0) => Io::Closed,
            Ok(n) => {
                self.shared.http[conn.listener].stats[self.id]
                    .bytes_in
                    .add(n as u64);
                Io::Progress
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Io::WouldBlock,
            Err(_) => Io::Error,
        }
    }

    /// Give back the memory of a connection that has nothing buffered, so thousands of
    /// idle keep-alive clients cost little more than their sockets.
    fn release_buffers(conn: &mut Conn) {
        conn.input.release_if_idle(IDLE_BUFFER_KEEP);
        if conn.wpos == conn.wbuf.len() && conn.wbuf.capacity() > IDLE_BUFFER_KEEP {
            conn.wbuf = Vec::new();
            conn.wpos = 0;
        }
    }

    /// Advance the request state machine over buffered input. `true` if something
    /// changed that is worth another turn (an answer was queued).
    fn process(&mut self, token: usize, conn: &mut Conn) -> bool {
        let max_body = self.shared.http[conn.listener].config.max_body_size;
        loop {
            if conn.close_after_flush || conn.pending_output() >= MAX_PENDING_OUTPUT {
                return false;
            }
            match &mut conn.phase {
                Phase::Waiting(_)
                | Phase::Proxying { .. }
                | Phase::ReadWait(_)
                | Phase::Held(_) => return false,
                Phase::Head => {
                    let input = conn.input.unparsed();
                    if input.is_empty() {
                        return false;
                    }
                    conn.request_started.get_or_insert(self.now);
                    // Until this request's head is parsed, its errors are 1.x-shaped.
                    conn.api = Api::V1;
                    conn.partial = None;
                    let (mut head, len) = match frame_head(&mut conn.scanner, input) {
                        HeadStep::NeedMore => return false,
                        HeadStep::Reject(reject) => {
                            self.reject(conn, reject);
                            return true;
                        }
                        HeadStep::Head(head, len) => (head, len),
                    };
                    conn.input.consume(len);
                    conn.head_done = self.now;
                    conn.api = Api::of_path(&head.path);
                    // Before the body: a client without credentials costs no more than
                    // its head, however large a body it announced.
                    if !self.authorize(conn.listener, &mut head) {
                        self.unauthorized(conn, &head);
                        continue;
                    }
                    let buffered = conn.input.unparsed().len();
                    match begin_body(&head, max_body, buffered) {
                        BodyStart::None => self.handle(token, conn, head, Vec::new()),
                        BodyStart::TooLarge => {
                            self.reject(conn, request::TOO_LARGE);
                            return true;
                        }
                        BodyStart::Expect {
                            framing,
                            send_continue,
                        } => {
                            if send_continue {
                                conn.wbuf.extend_from_slice(response::CONTINUE);
                            }
                            // Grown as bytes arrive (`grow_body`): an announced length
                            // costs nothing until the body actually comes.
                            conn.phase = Phase::Body {
                                head,
                                body: Vec::new(),
                                framing,
                            };
                        }
                    }
                }
                Phase::Body { body, framing, .. } => {
                    let input = conn.input.unparsed();
                    let done = match feed_body(framing, body, input, max_body) {
                        Ok((used, done)) => {
                            conn.input.consume(used);
                            done
                        }
                        Err(reject) => {
                            self.reject(conn, reject);
                            return true;
                        }
                    };
                    if !done {
                        return false;
                    }
                    let Phase::Body { head, body, .. } =
                        std::mem::replace(&mut conn.phase, Phase::Head)
                    else {
                        return false;
                    };
                    self.handle(token, conn, head, body);
                }
            }
        }
    }

    /// A framing error: answer and close, since what follows cannot be delimited. The
    /// client may be in the middle of sending: linger.
    fn reject(&mut self, conn: &mut Conn, reject: Reject) {
        self.count_answer(conn.listener, reject.status);
        api::error(
            &mut conn.wbuf,
            conn.api,
            reject.status,
            reject.message,
            "",
            true,
        );
        conn.close_after_flush = true;
        conn.linger = Linger::Wanted;
        conn.phase = Phase::Head;
    }

    /// The end of a connection that must close and has flushed its output: at once, or
    /// after lingering (see [`Linger`]). `true`: keep it for now.
    fn linger(&mut self, token: usize, conn: &mut Conn) -> bool {
        if matches!(conn.linger, Linger::Wanted) {
            // A client that closed its side has nothing left in flight.
            if conn.peer_closed || conn.stream.shutdown_write().is_err() {
                return false;
            }
            conn.linger = Linger::Draining {
                until: self.now + LINGER_TIME,
                left: LINGER_BYTES,
            };
        }
        let Linger::Draining { left, .. } = &mut conn.linger else {
            return false;
        };
        for _ in 0..READ_BUDGET {
            if !conn.readable {
                return true;
            }
            match conn.stream.read_raw(&mut self.scratch) {
                Ok(n) if n == 0 || n >= *left => return false,
                Ok(n) => *left -= n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.readable = false,
                Err(_) => return false,
            }
        }
        self.again.push(Token(token));
        true
    }

    /// Check the credentials of a request on a listener with authentication, and
    /// keep them from the backends when the listener says so. `false`: refuse it.
    fn authorize(&self, listener: usize, head: &mut Head) -> bool {
        let config = &self.shared.http[listener].config;
        if let Some(table) = &config.auth {
            if auth::needs_credentials(&head.path, head.method, table.metrics)
                && !auth::check(table, head.authorization.as_deref(), &head.query)
            {
                return false;
            }
        }
        if !config.forward_credentials {
            head.authorization = None;
            head.query = auth::strip_credentials(&head.query);
        }
        true
    }

    /// Answer 401. An announced body is left unread, so the next request cannot be
    /// found: the connection closes after the answer unless there was no body.
    fn unauthorized(&mut self, conn: &mut Conn, head: &Head) {
        let close =
            !head.keep_alive || head.body != BodyKind::None || self.shutdown_deadline.is_some();
        self.shared.http[conn.listener].stats[self.id]
            .requests
            .inc();
        self.count_answer(conn.listener, 401);
        api::error(
            &mut conn.wbuf,
            conn.api,
            401,
            auth::FAILED,
            auth::CHALLENGE,
            close,
        );
        conn.close_after_flush |= close;
        if head.body != BodyKind::None {
            // The body it announced may be on its way.
            conn.linger = Linger::Wanted;
        }
        conn.request_started = None;
    }

    fn count_answer(&self, listener: usize, status: u16) {
        let stats = &self.shared.http[listener].stats[self.id];
        match status {
            200..=299 => stats.answered_2xx.inc(),
            400..=499 => stats.answered_4xx.inc(),
            _ => stats.answered_5xx.inc(),
        }
    }

    fn check_deadlines(&mut self) {
        let now = self.now;
        let mut expired = Vec::new();
        let mut timed_out = Vec::new();
        let mut idle = Vec::new();
        for (&token, conn) in self.conns.iter_mut() {
            let cfg = &self.shared.http[conn.listener].config;
            match &mut conn.phase {
                Phase::Waiting(in_flight) => {
                    if now >= in_flight.deadline {
                        if let Some(answer) = in_flight.tracker.expire() {
                            expired.push((token, answer));
                        }
                    }
                }
                // The upstream keeps its own time (below); parked and held ones theirs.
                Phase::Proxying { .. } | Phase::ReadWait(_) | Phase::Held(_) => {}
                _ => match expiry(
                    &conn.clock(),
                    cfg.read_timeout,
                    cfg.idle_timeout,
                    self.shutdown_deadline.is_some(),
                    now,
                ) {
                    Some(Expiry::RequestTimeout) => timed_out.push(token),
                    Some(Expiry::Close) => idle.push(token),
                    None => {}
                },
            }
        }
        for (token, answer) in expired {
            self.answer(token, answer);
        }
        let stalled: Vec<usize> = self
            .upstreams
            .iter()
            .filter(|(_, up)| {
                now.duration_since(up.last_io) >= self.shared.http[up.plan.listener].answer_timeout
            })
            .map(|(&t, _)| t)
            .collect();
        for token in stalled {
            if let Some(mut up) = self.upstreams.remove(&token) {
                let _ = self.poll.registry().deregister(&mut up.stream);
                if up.head.is_some() {
                    self.retry_read(up.plan);
                } else if let Some(conn) = self.conns.get_mut(&up.plan.client) {
                    conn.phase = Phase::Head;
                    conn.close_after_flush = true;
                    self.drive(up.plan.client);
                }
            }
        }
        for token in timed_out {
            if let Some(mut conn) = self.conns.remove(&token) {
                self.count_answer(conn.listener, 408);
                api::error(&mut conn.wbuf, conn.api, 408, "request timed out", "", true);
                conn.close_after_flush = true;
                conn.linger = Linger::Wanted;
                conn.phase = Phase::Head;
                conn.writable = true;
                self.conns.insert(token, conn);
                self.drive(token);
            }
        }
        for token in idle {
            if let Some(conn) = self.conns.remove(&token) {
                self.close(conn);
            }
        }
    }

    /// `true` when the loop should exit.
    fn check_shutdown(&mut self) -> bool {
        if !self.shared.shutdown.load(Ordering::Acquire) {
            return false;
        }
        if self.shutdown_deadline.is_none() {
            // Stop accepting; in-flight requests are still answered.
            for (i, listener) in self.listeners.iter_mut().enumerate() {
                if let Some(mut l) = listener.take() {
                    let _ = self.poll.registry().deregister(&mut l);
                    crate::debug!(
                        "listener closed",
                        event_loop = self.id,
                        listener = self.shared.http[i].config.name
                    );
                }
            }
            for socket in &mut self.udp {
                socket.close(self.poll.registry());
            }
            self.shutdown_deadline = Some(self.now + self.shared.shutdown_timeout);
            self.check_deadlines();
        }
        self.conns.is_empty() || self.shutdown_deadline.is_some_and(|d| self.now >= d)
    }

    fn close(&mut self, mut conn: Conn) {
        conn.stream.close_notify();
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Phase::Proxying { upstream, .. } = conn.phase {
            self.drop_upstream(upstream);
        }
        let shared = &self.shared.http[conn.listener];
        shared.open_connections.fetch_sub(1, Ordering::Relaxed);
        shared.stats[self.id].connections_open.sub(1);
    }
}
