//! The write path in the loop: a checked change (a write body or statements) handed to
//! every backend that takes it, or held while one cannot keep up; completions from the
//! backends turned into the client's answer by the `ack` rule; a 2xx acknowledges the
//! change for read-your-writes.

use std::sync::Arc;

use super::*;

impl EventLoop {
    /// Check and stamp a `/write`; `None` when it holds no points.
    pub(super) fn write(
        &mut self,
        listener: usize,
        head: Head,
        body: Vec<u8>,
    ) -> Result<Option<crate::batch::Batch>, write::WriteError> {
        let shared = &self.shared.http[listener];
        let body = if head.gzip {
            request::gunzip(&body, shared.config.max_body_size).map_err(|r| write::WriteError {
                status: r.status,
                message: r.message.to_string(),
            })?
        } else {
            body
        };
        let Some(batch) = write::prepare(
            &shared.write,
            &head.query,
            head.authorization,
            body,
            self.now_ns,
        )?
        else {
            return Ok(None);
        };
        shared.stats[self.id].points_in.add(batch.points as u64);
        Ok(Some(batch))
    }

    /// Hand a checked change to the backends, or hold it (and its client) while one
    /// of them is congested.
    pub(super) fn send_change(
        &mut self,
        token: usize,
        conn: &mut Conn,
        batch: crate::batch::Batch,
        statements: usize,
        keep_alive: bool,
    ) {
        if self.congested(conn.listener) {
            self.shared.http[conn.listener].stats[self.id]
                .changes_held
                .inc();
            conn.phase = Phase::Held(HeldChange {
                batch,
                statements,
                keep_alive,
                deadline: self.now + self.shared.http[conn.listener].answer_timeout,
            });
            self.held.push(token);
            return;
        }
        let in_flight = self.fan_out(token, conn.listener, batch, statements);
        conn.phase = Phase::Waiting(InFlight {
            keep_alive,
            ..in_flight
        });
    }

    /// A backend of `listener` takes writes slower than they come (see
    /// `BackendHandle::congested`).
    pub(super) fn congested(&self, listener: usize) -> bool {
        self.shared.http[listener]
            .backends
            .iter()
            .any(|b| b.congested())
    }

    /// Send held changes whose listener is no longer congested, in the order they
    /// were held; answer 503 to those held past their deadline.
    pub(super) fn recheck_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        for token in held {
            let Some(listener) = self.conns.get(&token).map(|c| c.listener) else {
                continue;
            };
            let congested = self.congested(listener);
            let now = self.now;
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            let Phase::Held(change) = &conn.phase else {
                continue;
            };
            if congested && now < change.deadline {
                self.held.push(token);
                continue;
            }
            let Phase::Held(change) = std::mem::replace(&mut conn.phase, Phase::Head) else {
                continue;
            };
            if congested {
                // Nothing was forwarded: the client may send it again.
                let close = !change.keep_alive || self.shutdown_deadline.is_some();
                api::error(
                    &mut conn.wbuf,
                    conn.api,
                    503,
                    "backend queue cannot keep up; retry later",
                    "Retry-After: 1\r\n",
                    close,
                );
                conn.close_after_flush |= close;
                let stats = &self.shared.http[listener].stats[self.id];
                stats.changes_held_too_long.inc();
                self.count_answer(listener, 503);
                self.drive(token);
                continue;
            }
            let in_flight = self.fan_out(token, listener, change.batch, change.statements);
            if let Some(conn) = self.conns.get_mut(&token) {
                conn.phase = Phase::Waiting(InFlight {
                    keep_alive: change.keep_alive,
                    ..in_flight
                });
            }
        }
    }

    /// Hand one batch to every backend of `listener`; the client waits for the
    /// answer the `ack` rule decides.
    pub(super) fn fan_out(
        &mut self,
        token: usize,
        listener: usize,
        batch: crate::batch::Batch,
        statements: usize,
    ) -> InFlight {
        let shared = &self.shared.http[listener];
        let mut batch = batch;
        batch.seq = self.shared.changes.next();
        let seq = batch.seq;
        let batch = Arc::new(batch);
        let request = self.next_request;
        self.next_request += 1;
        let takes = |backend: &crate::backend::BackendHandle| {
            // No InfluxQL there: not sent, so never unfinished there either.
            batch.kind != crate::batch::Kind::Statement || backend.takes_statements
        };
        // Every backend counts the change as unfinished before any is sent it, and
        // before a backend being rebuilt logs it: a rebuild that did not see it in the
        // log finds it unfinished at its source (see `rebuild::copy`).
        for backend in shared.backends.iter().filter(|b| takes(b)) {
            backend.register(seq);
        }
        for backend in shared.backends.iter().filter(|b| takes(b)) {
            backend.rebuild.record(&batch);
        }
        let mut sent = 0;
        for (i, backend) in shared.backends.iter().enumerate() {
            if !takes(backend) {
                continue;
            }
            sent += 1;
            let reply = Reply {
                notifier: self.notifier.clone(),
                token: token as u64,
                request,
                backend: i,
            };
            backend.send(Job {
                batch: batch.clone(),
                reply: Some(reply),
            });
        }
        if sent == 0 {
            // A statement and no output runs InfluxQL: nothing to wait for. Answered
            // through the loop's own completion channel like any other, as run.
            sent = 1;
            self.notifier.notify(Completion {
                token: token as u64,
                request,
                backend: 0,
                outcome: crate::batch::Outcome::Delivered,
            });
        }
        InFlight {
            request,
            seq,
            tracker: AckTracker::new(shared.config.ack, sent),
            // A client waits at most the largest output timeout (checked
            // every TICK); backends still busy then finish in the background.
            deadline: self.now + shared.answer_timeout,
            keep_alive: true,
            statements,
        }
    }

    pub(super) fn drain_completions(&mut self) {
        self.notifier.disarm();
        let mut finished = Vec::new();
        while let Ok(c) = self.completions.try_recv() {
            let Some(conn) = self.conns.get_mut(&(c.token as usize)) else {
                continue;
            };
            let Phase::Waiting(in_flight) = &mut conn.phase else {
                continue;
            };
            if in_flight.request != c.request {
                continue;
            }
            if let Some(answer) = in_flight.tracker.record(c.outcome) {
                finished.push((c.token as usize, answer));
            }
        }
        for (token, answer) in finished {
            self.answer(token, answer);
        }
    }

    /// Send the decided answer of a waiting request and carry on with the connection.
    pub(super) fn answer(&mut self, token: usize, answer: Answer) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let Phase::Waiting(in_flight) = std::mem::replace(&mut conn.phase, Phase::Head) else {
            return;
        };
        let close = !in_flight.keep_alive || self.shutdown_deadline.is_some();
        if matches!(answer, Answer::NoContent | Answer::Body { .. }) {
            // From here on, every read must see this change.
            self.shared.changes.acknowledge(in_flight.seq);
        }
        let status = match answer {
            Answer::NoContent if in_flight.statements > 0 => {
                // Spooled everywhere, run nowhere yet: answer as InfluxDB does for
                // statements that return nothing.
                let body = query::empty_results(in_flight.statements);
                json_answer(&mut conn.wbuf, 200, &body, close)
            }
            Answer::NoContent => match conn.partial.take() {
                Some(body) => {
                    response::full(&mut conn.wbuf, 400, api::JSON, "", &body, close, false);
                    400
                }
                None => {
                    response::no_content(&mut conn.wbuf, close);
                    204
                }
            },
            Answer::Error { status, body } => {
                // Backends answer in their own API's shape; the client reads its own.
                let body = api::reshape(conn.api, status, &body).map_or(body, Arc::from);
                json_answer(&mut conn.wbuf, status, &body, close)
            }
            Answer::Body { status, body } => json_answer(&mut conn.wbuf, status, &body, close),
        };
        conn.close_after_flush |= close;
        let (listener, head_done) = (conn.listener, conn.head_done);
        self.count_answer(listener, status);
        self.observe_write(listener, head_done);
        self.drive(token);
    }

    /// Record a `/write` answer that was just queued in the latency histogram.
    pub(super) fn observe_write(&self, listener: usize, head_done: Instant) {
        self.shared.http[listener].stats[self.id]
            .write_latency
            .observe(head_done.elapsed());
    }
}

/// A JSON answer (statement results, or an error), as InfluxDB 1.x labels them; the
/// status, for counting.
fn json_answer(wbuf: &mut Vec<u8>, status: u16, body: &[u8], close: bool) -> u16 {
    response::full(wbuf, status, "application/json", "", body, close, false);
    status
}
