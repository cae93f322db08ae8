//! `/query` in the event loop: statements fan out like writes; reads are proxied to
//! one in-sync backend over a non-blocking connection of the loop's own and streamed
//! to the client, pausing while the client has not taken what it was sent.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::*;
use crate::http::request::{self, Head, Method};
use crate::http::{query, response, upstream};

/// Which backends a read query may go to, and what to send them.
pub(super) struct ReadPlan {
    pub(super) client: usize,
    pub(super) listener: usize,
    /// The backend being asked now, and those to try (from the end) if it cannot be
    /// reached or gives no answer.
    pub(super) backend: usize,
    pub(super) fallbacks: Vec<usize>,
    pub(super) behind: bool,
    pub(super) request: Vec<u8>,
    /// The client asked to close after this answer.
    pub(super) client_close: bool,
}

/// A connection to a backend carrying one read query (see `http::upstream`).
pub(super) struct Upstream {
    pub(super) stream: TcpStream,
    pub(super) plan: ReadPlan,
    pub(super) wpos: usize,
    /// Response head bytes until the head is complete; `None` once it was forwarded.
    pub(super) head: Option<Vec<u8>>,
    pub(super) connected: bool,
    pub(super) readable: bool,
    pub(super) writable: bool,
    pub(super) last_io: Instant,
    /// The client connection must close once this answer is through.
    pub(super) close_client: bool,
}

/// What became of an upstream after it was served.
pub(super) enum Pump {
    Continue,
    /// Budget used with data left: serve it again in the next pass.
    Again,
    /// Nothing reached the client yet: ask the next backend.
    Retry,
    /// The answer is complete.
    Done,
    /// The answer broke off after part of it was sent: the client must be closed.
    Broken,
}

impl EventLoop {
    /// `/query`: statements that change schema or data go to every backend in order
    /// with the writes; reads go to one in-sync backend and stream back.
    pub(super) fn query(
        &mut self,
        token: usize,
        conn: &mut Conn,
        head: &Head,
        body: &[u8],
    ) -> Result<(), (u16, &'static str)> {
        let form = (head.method == Method::Post && !body.is_empty()).then_some(body);
        let (params, q) = query::forward_params(&head.query, form);
        let q = q.ok_or((400, "missing required parameter \"q\""))?;
        let (class, statements) = query::classify(&q).map_err(|e| (400, e.0))?;
        let keep_alive = head.keep_alive && self.shutdown_deadline.is_none();
        match class {
            query::Class::Write => {
                let batch = crate::batch::Batch {
                    kind: crate::batch::Kind::Statement,
                    query: params.into_boxed_str(),
                    auth: head.authorization.clone(),
                    body: Vec::new(),
                    points: 0,
                };
                let in_flight = self.fan_out(token, conn.listener, batch, statements);
                conn.phase = Phase::Waiting(InFlight {
                    keep_alive,
                    ..in_flight
                });
                Ok(())
            }
            query::Class::Read => {
                let (order, behind) = self.readers(conn.listener);
                let Some((&first, rest)) = order.split_first() else {
                    return Err((503, "no backend can answer queries"));
                };
                let request = {
                    let target = &self.shared.http[conn.listener].query_targets[first];
                    upstream::read_request(target, &params, head.authorization.as_deref())
                };
                let plan = ReadPlan {
                    client: token,
                    listener: conn.listener,
                    backend: first,
                    fallbacks: rest.iter().rev().copied().collect(),
                    behind,
                    request,
                    client_close: !keep_alive,
                };
                let up_token = self
                    .connect_upstream(plan)
                    .ok_or((503, "no backend can answer queries"))?;
                conn.phase = Phase::Proxying {
                    upstream: up_token,
                    keep_alive,
                };
                Ok(())
            }
        }
    }

    /// Backends to ask for a read, best first: in-sync ones (up, nothing queued)
    /// round-robin, then the rest by how little they have queued. `true` when none is
    /// in sync.
    pub(super) fn readers(&mut self, listener: usize) -> (Vec<usize>, bool) {
        let shared = &self.shared.http[listener];
        let mut in_sync = Vec::new();
        let mut behind = Vec::new();
        for (i, b) in shared.backends.iter().enumerate() {
            if shared.query_targets[i].addr.is_none() {
                continue;
            }
            let s = &b.stats;
            let queued = s.queued_requests.get() + s.ram_queue_bytes.get() + s.spool_bytes.get();
            if s.down.get() == 0 && s.queued_since_ms.get() == 0 && queued == 0 {
                in_sync.push(i);
            } else {
                behind.push((s.down.get(), queued, i));
            }
        }
        if !in_sync.is_empty() {
            let n = in_sync.len();
            in_sync.rotate_left(self.next_reader % n);
            self.next_reader = self.next_reader.wrapping_add(1);
        }
        behind.sort_unstable();
        let none_in_sync = in_sync.is_empty();
        in_sync.extend(behind.into_iter().map(|(_, _, i)| i));
        (in_sync, none_in_sync)
    }

    /// Open a connection for `plan`, moving on to the next backend while connecting
    /// fails at once. `None` when no backend is left.
    pub(super) fn connect_upstream(&mut self, mut plan: ReadPlan) -> Option<usize> {
        loop {
            let target = &self.shared.http[plan.listener].query_targets[plan.backend];
            if let Some(addr) = target.addr {
                if let Ok(mut stream) = TcpStream::connect(addr) {
                    let token = self.next_token;
                    self.next_token += 1;
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(token), interest)
                        .is_ok()
                    {
                        let _ = stream.set_nodelay(true);
                        let up = Upstream {
                            stream,
                            plan,
                            wpos: 0,
                            head: Some(Vec::new()),
                            connected: false,
                            readable: false,
                            writable: false,
                            last_io: self.now,
                            close_client: false,
                        };
                        self.upstreams.insert(token, up);
                        return Some(token);
                    }
                }
            }
            plan.backend = plan.fallbacks.pop()?;
        }
    }

    pub(super) fn drive_upstream(&mut self, token: usize) {
        let Some(mut up) = self.upstreams.remove(&token) else {
            return;
        };
        match self.pump(&mut up) {
            result @ (Pump::Continue | Pump::Again) => {
                let client = up.plan.client;
                self.upstreams.insert(token, up);
                if matches!(result, Pump::Again) {
                    self.again.push(Token(token));
                }
                self.drive(client);
            }
            Pump::Done => {
                let _ = self.poll.registry().deregister(&mut up.stream);
                let client = up.plan.client;
                if let Some(conn) = self.conns.get_mut(&client) {
                    conn.phase = Phase::Head;
                    conn.close_after_flush |= up.close_client;
                }
                self.drive(client);
            }
            Pump::Retry => {
                let _ = self.poll.registry().deregister(&mut up.stream);
                self.retry_read(up.plan);
            }
            Pump::Broken => {
                let _ = self.poll.registry().deregister(&mut up.stream);
                if let Some(conn) = self.conns.get_mut(&up.plan.client) {
                    // Part of an answer went out; the rest never will.
                    conn.phase = Phase::Head;
                    conn.close_after_flush = true;
                }
                self.drive(up.plan.client);
            }
        }
    }

    /// The backend asked could not answer: ask the next, or tell the client.
    pub(super) fn retry_read(&mut self, mut plan: ReadPlan) {
        let client = plan.client;
        let next = plan.fallbacks.pop().and_then(|b| {
            plan.backend = b;
            self.connect_upstream(plan)
        });
        let Some(conn) = self.conns.get_mut(&client) else {
            if let Some(t) = next {
                self.drop_upstream(t);
            }
            return;
        };
        match next {
            Some(t) => {
                if let Phase::Proxying { upstream, .. } = &mut conn.phase {
                    *upstream = t;
                }
            }
            None => {
                let listener = conn.listener;
                let close = matches!(
                    conn.phase,
                    Phase::Proxying {
                        keep_alive: false,
                        ..
                    }
                );
                conn.phase = Phase::Head;
                response::error(
                    &mut conn.wbuf,
                    503,
                    "no backend answered the query",
                    "",
                    close,
                );
                conn.close_after_flush |= close;
                self.count_answer(listener, 503);
                self.drive(client);
            }
        }
    }

    pub(super) fn drop_upstream(&mut self, token: usize) {
        if let Some(mut up) = self.upstreams.remove(&token) {
            let _ = self.poll.registry().deregister(&mut up.stream);
        }
    }

    /// Move a read query along: connect, send, then stream the answer into the
    /// client's output, pausing while the client has not taken what it was sent.
    pub(super) fn pump(&mut self, up: &mut Upstream) -> Pump {
        if !up.connected {
            if !up.writable && !up.readable {
                return Pump::Continue;
            }
            // The mio way to learn how a non-blocking connect ended.
            if !matches!(up.stream.take_error(), Ok(None)) {
                return Pump::Retry;
            }
            match up.stream.peer_addr() {
                Ok(_) => up.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Pump::Continue,
                Err(_) => return Pump::Retry,
            }
        }
        while up.wpos < up.plan.request.len() {
            if !up.writable {
                return Pump::Continue;
            }
            match up.stream.write(&up.plan.request[up.wpos..]) {
                Ok(0) => return Pump::Retry,
                Ok(n) => up.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => up.writable = false,
                Err(_) => return Pump::Retry,
            }
        }
        let mut scratch = [0u8; 16 * 1024];
        for _ in 0..READ_BUDGET {
            let Some(conn) = self.conns.get_mut(&up.plan.client) else {
                return Pump::Done;
            };
            if conn.pending_output() >= MAX_PENDING_OUTPUT || !up.readable {
                return Pump::Continue;
            }
            let n = match up.stream.read(&mut scratch) {
                Ok(0) if up.head.is_some() => return Pump::Retry,
                Ok(0) => return Pump::Done,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    up.readable = false;
                    return Pump::Continue;
                }
                Err(_) if up.head.is_some() => return Pump::Retry,
                Err(_) => return Pump::Broken,
            };
            up.last_io = self.now;
            let data = &scratch[..n];
            let Some(head) = up.head.as_mut() else {
                conn.wbuf.extend_from_slice(data);
                continue;
            };
            head.extend_from_slice(data);
            let Some(end) = memchr::memmem::find(head, b"\r\n\r\n").map(|i| i + 4) else {
                if head.len() > request::MAX_HEAD {
                    return Pump::Retry;
                }
                continue;
            };
            let backend = &self.shared.http[up.plan.listener].query_targets[up.plan.backend].name;
            let Some(fwd) =
                upstream::forward_head(&head[..end], backend, up.plan.behind, up.plan.client_close)
            else {
                return Pump::Retry;
            };
            conn.wbuf.extend_from_slice(&fwd.bytes);
            conn.wbuf.extend_from_slice(&head[end..]);
            up.close_client = fwd.close_delimited || up.plan.client_close;
            up.head = None;
            let listener = conn.listener;
            self.count_answer(listener, fwd.status);
        }
        Pump::Again
    }
}
