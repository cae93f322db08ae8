//! `/query` in the event loop: statements fan out like writes; reads are proxied to
//! one up-to-date backend over a non-blocking connection of the loop's own and
//! streamed to the client, pausing while the client has not taken what it was sent.
//!
//! Up to date means read-your-writes (`crate::applied`): the backend has finished
//! every change acknowledged before the read arrived. When none has, the read is
//! parked (`Phase::ReadWait`) for up to the listener's `read-wait`, then served by the
//! least-behind backend with `X-Relay-Behind: true`.

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
    /// reached or gives no answer, each with whether it may lack acknowledged changes.
    pub(super) backend: usize,
    pub(super) fallbacks: Vec<(usize, bool)>,
    pub(super) behind: bool,
    /// What the request says, to rebuild it for a fallback backend.
    pub(super) params: String,
    pub(super) authorization: Option<Box<[u8]>>,
    pub(super) request: Vec<u8>,
    /// The client asked to close after this answer.
    pub(super) client_close: bool,
}

impl ReadPlan {
    /// Aim the plan at backend `b`, whose request line and `Host` may differ.
    fn next_backend(&mut self, target: &upstream::QueryTarget, b: usize, behind: bool) {
        self.backend = b;
        self.behind = behind;
        self.request = upstream::read_request(target, &self.params, self.authorization.as_deref());
    }
}

/// A read query waiting for an up-to-date backend.
pub(super) struct ParkedRead {
    params: String,
    authorization: Option<Box<[u8]>>,
    keep_alive: bool,
    /// The acknowledged watermark when the read arrived.
    watermark: u64,
    /// Past this, the least-behind backend answers.
    deadline: Instant,
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
    /// with the writes; reads go to one up-to-date backend and stream back.
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
                    seq: 0,
                };
                self.send_change(token, conn, batch, statements, keep_alive);
                Ok(())
            }
            query::Class::Read => {
                let parked = ParkedRead {
                    params,
                    authorization: head.authorization.clone(),
                    keep_alive,
                    watermark: self.shared.changes.watermark(),
                    deadline: self.now + self.shared.http[conn.listener].config.read_wait,
                };
                conn.phase = self.begin_read(token, conn.listener, parked)?;
                if matches!(conn.phase, Phase::ReadWait(_)) {
                    self.parked.push(token);
                }
                Ok(())
            }
        }
    }

    /// Send a read to an up-to-date backend, or park it until one is (or its wait is
    /// over, when the least-behind one answers). The connection's next phase.
    fn begin_read(
        &mut self,
        token: usize,
        listener: usize,
        read: ParkedRead,
    ) -> Result<Phase, (u16, &'static str)> {
        let (order, fresh, fresh_up) = self.readers(listener, read.watermark);
        if fresh_up == 0 && self.now < read.deadline && !order.is_empty() {
            return Ok(Phase::ReadWait(read));
        }
        let Some((&first, rest)) = order.split_first() else {
            return Err((503, "no backend can answer queries"));
        };
        let fallbacks = rest
            .iter()
            .enumerate()
            .rev()
            .map(|(i, &b)| (b, i + 1 >= fresh))
            .collect();
        let request = upstream::read_request(
            &self.shared.http[listener].query_targets[first],
            &read.params,
            read.authorization.as_deref(),
        );
        let plan = ReadPlan {
            client: token,
            listener,
            backend: first,
            fallbacks,
            behind: fresh == 0,
            params: read.params,
            authorization: read.authorization,
            request,
            client_close: !read.keep_alive,
        };
        let upstream = self
            .connect_upstream(plan)
            .ok_or((503, "no backend can answer queries"))?;
        Ok(Phase::Proxying {
            upstream,
            keep_alive: read.keep_alive,
        })
    }

    /// Look again at every parked read: send those that now have an up-to-date
    /// backend, or whose wait is over.
    pub(super) fn recheck_parked(&mut self) {
        let parked = std::mem::take(&mut self.parked);
        for token in parked {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            let listener = conn.listener;
            let Phase::ReadWait(read) = std::mem::replace(&mut conn.phase, Phase::Head) else {
                continue;
            };
            let keep_alive = read.keep_alive;
            match self.begin_read(token, listener, read) {
                Ok(phase) => {
                    let wait = matches!(phase, Phase::ReadWait(_));
                    if let Some(conn) = self.conns.get_mut(&token) {
                        conn.phase = phase;
                    }
                    if wait {
                        self.parked.push(token);
                    }
                }
                Err((status, message)) => {
                    let Some(conn) = self.conns.get_mut(&token) else {
                        continue;
                    };
                    let close = !keep_alive || self.shutdown_deadline.is_some();
                    response::error(&mut conn.wbuf, status, message, "", close);
                    conn.close_after_flush |= close;
                    self.count_answer(listener, status);
                    self.drive(token);
                }
            }
        }
    }

    /// Backends to ask for a read given the acknowledged `watermark`, best first, and
    /// how many of them at the front are up to date (finished every change up to the
    /// watermark, on every output that writes to the same server), and how many of
    /// those are not marked down. Up-to-date ones come round-robin, up before down;
    /// the rest follow least behind first (oldest unfinished change the newest).
    pub(super) fn readers(
        &mut self,
        listener: usize,
        watermark: u64,
    ) -> (Vec<usize>, usize, usize) {
        let shared = &self.shared.http[listener];
        let mut fresh_up = Vec::new();
        let mut fresh_down = Vec::new();
        let mut behind = Vec::new();
        for (i, b) in shared.backends.iter().enumerate() {
            // A server being rebuilt may lack data that was acknowledged.
            if shared.query_targets[i].addr.is_none() || b.rebuild.is_active() {
                continue;
            }
            let down = b.stats.down.get() != 0;
            let unapplied = &shared.server_unapplied[i];
            if unapplied.iter().all(|u| u.has_applied(watermark)) {
                if down {
                    fresh_down.push(i);
                } else {
                    fresh_up.push(i);
                }
            } else {
                let oldest = unapplied
                    .iter()
                    .filter_map(|u| u.oldest())
                    .min()
                    .unwrap_or(0);
                behind.push((down, std::cmp::Reverse(oldest), i));
            }
        }
        if !fresh_up.is_empty() {
            let n = fresh_up.len();
            fresh_up.rotate_left(self.next_reader % n);
            self.next_reader = self.next_reader.wrapping_add(1);
        }
        behind.sort_unstable();
        let up = fresh_up.len();
        let mut order = fresh_up;
        order.extend(fresh_down);
        let fresh = order.len();
        order.extend(behind.into_iter().map(|(_, _, i)| i));
        (order, fresh, up)
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
            let (b, behind) = plan.fallbacks.pop()?;
            plan.next_backend(&self.shared.http[plan.listener].query_targets[b], b, behind);
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
        let next = plan.fallbacks.pop().and_then(|(b, behind)| {
            plan.next_backend(&self.shared.http[plan.listener].query_targets[b], b, behind);
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
