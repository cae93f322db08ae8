//! The sender threads: take a write, merge what waits behind it, post, classify the
//! answer; queue what fails when the backend can keep it; probe the backend when idle.

use super::*;

pub(super) static FAILURE_LOG: crate::log::RateLimit = crate::log::RateLimit::every_interval();

/// Writes taken from the channel in one go while queueing: one spool group commit
/// (one fsync) covers all of them.
pub(super) const GROUP_COMMIT: usize = 256;

pub(super) fn sender_loop(shared: &Worker, rx: &Receiver<Job>, overflow: Option<&Overflow>) {
    let mut client = Client::new(
        shared.output.location.clone(),
        direct_timeout(shared.output.timeout),
        shared.tls.clone(),
    );
    let mut probe = probe_client(shared);
    let mut gz = Vec::new();
    // A job taken while coalescing that did not fit; it goes first next time.
    let mut held: Option<Job> = None;
    loop {
        shared.dropped.flush_if_due();
        if let Some(o) = overflow.filter(|o| o.active.load(Ordering::Acquire)) {
            // The channel overflowed while this worker was busy: queue everything, in
            // order: the job held back, the channel, then the overflow list. Checked
            // before waiting on the channel, which may stay empty while the list is
            // active (every new write then goes to the list).
            let mut group: Vec<Job> = held.take().into_iter().collect();
            while let Ok(job) = rx.try_recv() {
                group.push(job);
                if group.len() == GROUP_COMMIT {
                    queue::enqueue(shared, std::mem::take(&mut group));
                }
            }
            group.extend(o.take_all());
            while !group.is_empty() {
                let rest = group.split_off(group.len().min(GROUP_COMMIT));
                queue::enqueue(shared, std::mem::replace(&mut group, rest));
            }
            continue;
        }
        let job = match held.take().map_or_else(|| rx.recv_timeout(IDLE_POLL), Ok) {
            Ok(job) => job,
            // Done when shutting down and nothing is left, here or in the overflow list.
            Err(RecvTimeoutError::Timeout)
                if shared.control.closing.load(Ordering::Acquire)
                    && !overflow.is_some_and(|o| o.active.load(Ordering::Acquire)) =>
            {
                return
            }
            Err(RecvTimeoutError::Timeout) => {
                probe_if_due(shared, &mut probe);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let closing = shared.control.closing.load(Ordering::Acquire);
        let spooling = shared.buffering && shared.output.spool_size > 0;
        // Order (README: Durability): while anything is queued, new writes go behind it. At
        // shutdown, with a spool, everything left goes to disk rather than the wire.
        let queued = shared.buffering && shared.queue.lock().map(|q| q.active).unwrap_or(false);
        if queued || (closing && spooling) {
            let mut group = vec![job];
            while group.len() < GROUP_COMMIT {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            queue::enqueue(shared, group);
            continue;
        }
        if closing && shared.control.past_deadline() {
            // Shutting down, out of time, nowhere to keep it: lost, and counted.
            shared.stats.dropped_shutdown.add(job.batch.points as u64);
            shared.dropped.record(&job.batch);
            shared.unapplied.done(job.batch.seq);
            continue;
        }
        let group = coalesce(shared, rx, job, &mut held);
        let outcome = match post_group(shared, &mut client, &group, &mut gz) {
            // A server being rebuilt lacks a database until the rebuild creates it: a
            // write for it waits in order in the queue, as if the server were down,
            // rather than being refused to its client.
            Outcome::Rejected { status, body }
                if shared.rebuild.is_active() && replay::is_database_not_found(&body) =>
            {
                Outcome::Failed {
                    status: Some(status),
                    body,
                }
            }
            other => other,
        };
        if group.len() > 1 && matches!(outcome, Outcome::Rejected { .. }) {
            // One client's bad write must not turn its neighbours' answers into
            // errors: say it per write. Every point carries a timestamp, so sending
            // the accepted ones again only overwrites them with the same values.
            for job in group {
                let outcome = post_group(shared, &mut client, std::slice::from_ref(&job), &mut gz);
                finish_direct(shared, job, outcome);
            }
            continue;
        }
        if shared.buffering && matches!(outcome, Outcome::Failed { .. }) {
            // Queued in order, with their replies: answered as spooled, or when
            // finally delivered.
            queue::enqueue(shared, group);
            continue;
        }
        if matches!(outcome, Outcome::Failed { .. }) {
            // Nowhere to keep them: lost for this backend, and counted as such.
            let points: u64 = group.iter().map(|j| j.batch.points as u64).sum();
            shared.stats.dropped_unbuffered.add(points);
            for job in &group {
                shared.dropped.record(&job.batch);
            }
        }
        for job in group {
            shared.unapplied.done(job.batch.seq);
            if let Some(reply) = job.reply {
                reply.send(outcome.clone());
            }
        }
    }
}

/// How long a direct attempt may take: a little less than `timeout`, so that a write
/// that times out can still be spooled (and answered as such) before its client's
/// own deadline, which is `timeout` (README: HTTP API).
pub(super) fn direct_timeout(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(250)))
}

/// Take the jobs already waiting behind `first` that can share one request with it
/// (same query and credentials) up to the output's coalescing limit. Under load this turns many small
/// client writes into a few large backend requests; when idle it costs nothing, since
/// it never waits for more.
pub(super) fn coalesce(
    shared: &Worker,
    rx: &Receiver<Job>,
    first: Job,
    held: &mut Option<Job>,
) -> Vec<Job> {
    let max = shared.output.coalesce_limit;
    let mut size = first.batch.body.len();
    let mut group = vec![first];
    while size < max && group.len() < GROUP_COMMIT {
        let Ok(next) = rx.try_recv() else { break };
        let head = &group[0].batch;
        if head.kind != Kind::Write
            || next.batch.kind != Kind::Write
            || next.batch.query != head.query
            || next.batch.auth != head.auth
            || size + next.batch.body.len() > max
        {
            *held = Some(next);
            break;
        }
        size += next.batch.body.len();
        group.push(next);
    }
    group
}

/// Post the bodies of `group` (which share query and credentials) as one request.
pub(super) fn post_group(
    shared: &Worker,
    client: &mut Client,
    group: &[Job],
    gz: &mut Vec<u8>,
) -> Outcome {
    let first = &group[0].batch;
    let auth = match &shared.output_auth {
        Some(header) => Some(header.as_bytes()),
        None => first.auth.as_deref(),
    };
    let points: u64 = group.iter().map(|j| j.batch.points as u64).sum();
    // The bodies go out back to back: one request, no copy into a merged buffer.
    let body: Vec<&[u8]> = group.iter().map(|j| &j.batch.body[..]).collect();
    post(
        shared,
        client,
        first.kind,
        &first.query,
        auth,
        &body,
        points,
        gz,
    )
}

/// Answer or queue one job after a direct attempt.
pub(super) fn finish_direct(shared: &Worker, job: Job, outcome: Outcome) {
    if shared.buffering && matches!(outcome, Outcome::Failed { .. }) {
        queue::enqueue(shared, vec![job]);
        return;
    }
    if matches!(outcome, Outcome::Failed { .. }) {
        shared.stats.dropped_unbuffered.add(job.batch.points as u64);
        shared.dropped.record(&job.batch);
    }
    shared.unapplied.done(job.batch.seq);
    if let Some(reply) = job.reply {
        reply.send(outcome);
    }
}

/// Post one body and classify the answer (README: HTTP API).
#[allow(clippy::too_many_arguments)]
pub(super) fn post(
    shared: &Worker,
    client: &mut Client,
    kind: Kind,
    query: &str,
    auth: Option<&[u8]>,
    body: &[&[u8]],
    points: u64,
    gz: &mut Vec<u8>,
) -> Outcome {
    if kind == Kind::Statement && !shared.output.takes_statements() {
        // Only a spool from before the output changed can hold one: fan-out sends
        // none here. Finished, as the other outputs will have run it.
        return Outcome::Delivered;
    }
    let translated;
    let rescaled: Vec<u8>;
    let whole: [&[u8]; 1];
    let (query, auth, body) = match &shared.output.api {
        crate::config::OutputApi::V1 => (query, auth, body),
        other => {
            translated = match api::translate(other, query) {
                Ok(t) => t,
                Err(e) => return refused(shared, &e),
            };
            let body = match translated.scale {
                None => body,
                Some(factor) => {
                    let mut out = Vec::new();
                    for part in body {
                        if let Err(e) = crate::lineproto::rescale_timestamps(
                            part,
                            &mut out,
                            crate::lineproto::multiply(factor),
                        ) {
                            return refused(shared, &e);
                        }
                    }
                    rescaled = out;
                    whole = [&rescaled[..]];
                    &whole[..]
                }
            };
            let auth = auth.or(translated.authorization.as_deref().map(str::as_bytes));
            (translated.query.as_str(), auth, body)
        }
    };
    let raw_len: usize = body.iter().map(|part| part.len()).sum();
    let gzip = shared.output.gzip && kind == Kind::Write;
    let compressed: [&[u8]; 1];
    let body: &[&[u8]] = if gzip {
        gz.clear();
        let mut enc =
            flate2::write::GzEncoder::new(std::mem::take(gz), flate2::Compression::fast());
        for part in body {
            let _ = std::io::Write::write_all(&mut enc, part);
        }
        *gz = enc.finish().unwrap_or_default();
        compressed = [&gz[..]];
        &compressed
    } else {
        body
    };
    let stats = &shared.stats;
    let path = match kind {
        Kind::Write => shared.output.location.path.as_str(),
        Kind::Statement => shared.query_path.as_str(),
    };
    let answer = client.post(path, query, auth, body, gzip);
    contacted(shared);
    match answer {
        Ok(resp) if (200..300).contains(&resp.status) => {
            mark_up(shared);
            stats.delivered_requests.inc();
            stats.delivered_points.add(points);
            stats.delivered_bytes.add(raw_len as u64);
            match kind {
                Kind::Write => Outcome::Delivered,
                Kind::Statement => Outcome::Answered {
                    status: resp.status,
                    body: Arc::from(resp.body),
                },
            }
        }
        Ok(resp) if (400..500).contains(&resp.status) => {
            mark_up(shared);
            stats.rejected_requests.inc();
            Outcome::Rejected {
                status: resp.status,
                body: Arc::from(resp.body),
            }
        }
        Ok(resp) => {
            stats.failed_requests.inc();
            log_failure(shared, &format!("status {}", resp.status));
            Outcome::Failed {
                status: Some(resp.status),
                body: Arc::from(resp.body),
            }
        }
        Err(e) => {
            stats.failed_requests.inc();
            log_failure(shared, &e);
            Outcome::Failed {
                status: None,
                body: Arc::from(&b""[..]),
            }
        }
    }
}

/// A write this backend's API cannot carry, answered as a 400 without asking it.
fn refused(shared: &Worker, why: &dyn std::fmt::Display) -> Outcome {
    shared.stats.rejected_requests.inc();
    let mut body = b"{\"error\":\"".to_vec();
    crate::http::response::json_escape(&mut body, &why.to_string());
    body.extend_from_slice(b"\"}");
    Outcome::Rejected {
        status: 400,
        body: Arc::from(body),
    }
}

/// A client for `/ping` probes, with their own short timeout.
pub(crate) fn probe_client(shared: &Worker) -> Client {
    Client::new(
        shared.output.location.clone(),
        PROBE_TIMEOUT.min(shared.output.timeout),
        shared.tls.clone(),
    )
}

/// Keep the up/down state true when no writes flow: a backend marked down, or one
/// nothing was sent to for `PROBE_INTERVAL`, is asked `/ping` about once per
/// `PROBE_INTERVAL` by whichever idle worker gets there first.
pub(super) fn probe_if_due(shared: &Worker, client: &mut Client) {
    let now = crate::metrics::unix_ms();
    let interval = PROBE_INTERVAL.as_millis() as u64;
    let down = shared.stats.down.get() != 0;
    let quiet = now >= shared.last_contact_ms.load(Ordering::Relaxed) + interval;
    let last = shared.last_probe_ms.load(Ordering::Relaxed);
    if !(down || quiet)
        || now < last + interval
        || shared
            .last_probe_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    ping(shared, client);
}

/// Something was just sent to the backend: no idle probe is due for a while.
pub(super) fn contacted(shared: &Worker) {
    shared
        .last_contact_ms
        .store(crate::metrics::unix_ms(), Ordering::Relaxed);
}

/// Ask the backend `/ping` now and mark it up or down by the answer; `true` if up.
pub(crate) fn ping(shared: &Worker, client: &mut Client) -> bool {
    // InfluxDB 3 guards `/ping` like everything else: probe with the output's own
    // credentials.
    let answer = client.get_with("/ping", shared.output_auth.as_deref().map(str::as_bytes));
    contacted(shared);
    match answer {
        Ok(resp) if (200..300).contains(&resp.status) => {
            mark_up(shared);
            true
        }
        Ok(resp) => {
            note_failure(shared, &format!("ping answered {}", resp.status));
            false
        }
        Err(e) => {
            note_failure(shared, &e);
            false
        }
    }
}

pub(super) fn mark_up(shared: &Worker) {
    if shared.stats.down.get() == 1 {
        shared.stats.down.set(0);
        crate::info!(
            "backend up",
            listener = shared.listener,
            backend = shared.output.name
        );
    }
}

/// Record a failure for `/status` and mark the backend down (logged once per change).
pub(super) fn note_failure(shared: &Worker, what: &dyn std::fmt::Display) {
    let message = what.to_string();
    if shared.stats.down.get() == 0 {
        shared.stats.down.set(1);
        crate::warn!(
            "backend down",
            listener = shared.listener,
            backend = shared.output.name,
            location = shared.output.location.url,
            error = message,
        );
    }
    if let Ok(mut last) = shared.stats.last_error.lock() {
        *last = Some(crate::metrics::LastError {
            message,
            at_ms: crate::metrics::unix_ms(),
        });
    }
}

pub(super) fn log_failure(shared: &Worker, what: &dyn std::fmt::Display) {
    note_failure(shared, what);
    if let Some(suppressed) = FAILURE_LOG.check() {
        crate::warn!(
            "backend write failed",
            listener = shared.listener,
            backend = shared.output.name,
            location = shared.output.location.url,
            error = what,
            suppressed = suppressed,
        );
    }
}
