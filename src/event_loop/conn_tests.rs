//! The connection's framing and timeout rules on byte strings and made-up instants: no
//! socket, no sleep.

use super::*;
use crate::http::request::Method;

const MAX_BODY: usize = 1 << 20;

fn head_of(input: &[u8]) -> (Head, usize) {
    match frame_head(&mut HeadScanner::default(), input) {
        HeadStep::Head(head, len) => (head, len),
        other => panic!("expected a head, got {other:?}"),
    }
}

/// Frame every request in `input` the way the loop does; (method, path, body) each.
fn frame_all(input: &[u8]) -> Vec<(Method, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut scanner = HeadScanner::default();
    while pos < input.len() {
        let (head, len) = match frame_head(&mut scanner, &input[pos..]) {
            HeadStep::Head(head, len) => (head, len),
            other => panic!("at {pos}: {other:?}"),
        };
        scanner = HeadScanner::default();
        pos += len;
        let body = match begin_body(&head, MAX_BODY, input.len() - pos) {
            BodyStart::None => Vec::new(),
            BodyStart::TooLarge => panic!("too large"),
            BodyStart::Expect { mut framing, .. } => {
                let mut body = Vec::new();
                let (used, done) =
                    feed_body(&mut framing, &mut body, &input[pos..], MAX_BODY).expect("body");
                assert!(done, "body incomplete at {pos}");
                pos += used;
                body
            }
        };
        out.push((head.method, head.path, body));
    }
    out
}

#[test]
fn a_partial_head_needs_more_and_a_whole_one_is_framed() {
    let req = b"POST /write?db=x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nm v=";
    for cut in 1..req.len() - 4 {
        assert!(
            matches!(
                frame_head(&mut HeadScanner::default(), &req[..cut]),
                HeadStep::NeedMore
            ),
            "cut at {cut}"
        );
    }
    let (head, len) = head_of(req);
    assert_eq!(len, req.len() - 4);
    assert_eq!(head.path, "/write");
    assert_eq!(head.body, BodyKind::Length(4));
}

#[test]
fn bytes_that_cannot_be_a_request_are_refused_before_the_head_ends() {
    let step = frame_head(&mut HeadScanner::default(), b"\x01\x02garbage without end");
    assert!(
        matches!(step, HeadStep::Reject(r) if r.status == 400),
        "{step:?}"
    );
}

#[test]
fn a_head_over_the_limit_is_431() {
    let mut req = b"GET /ping HTTP/1.1\r\nX-Big: ".to_vec();
    req.resize(request::MAX_HEAD + 10, b'a');
    let step = frame_head(&mut HeadScanner::default(), &req);
    assert!(
        matches!(step, HeadStep::Reject(r) if r.status == 431),
        "{step:?}"
    );
}

#[test]
fn pipelined_requests_come_out_one_by_one_in_order() {
    let input = b"POST /write?db=x HTTP/1.1\r\nContent-Length: 8\r\n\r\nm v=1 1\n\
                  GET /ping HTTP/1.1\r\n\r\n\
                  POST /write?db=x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                  4\r\nm v=\r\n4\r\n2 2\n\r\n0\r\n\r\n\
                  GET /health HTTP/1.1\r\n\r\n";
    let got = frame_all(input);
    let summary: Vec<(Method, &str, &[u8])> = got
        .iter()
        .map(|(m, p, b)| (*m, p.as_str(), b.as_slice()))
        .collect();
    assert_eq!(
        summary,
        [
            (Method::Post, "/write", &b"m v=1 1\n"[..]),
            (Method::Get, "/ping", &b""[..]),
            (Method::Post, "/write", &b"m v=2 2\n"[..]),
            (Method::Get, "/health", &b""[..]),
        ]
    );
}

#[test]
fn a_body_fed_in_pieces_stops_at_its_end() {
    let (head, _) = head_of(b"POST /write HTTP/1.1\r\nContent-Length: 10\r\n\r\n");
    let BodyStart::Expect { mut framing, .. } = begin_body(&head, MAX_BODY, 0) else {
        panic!("a body is expected");
    };
    let mut body = Vec::new();
    assert_eq!(
        feed_body(&mut framing, &mut body, b"0123", MAX_BODY),
        Ok((4, false))
    );
    // The rest of the body and the next request's first bytes.
    assert_eq!(
        feed_body(&mut framing, &mut body, b"456789GET", MAX_BODY),
        Ok((6, true))
    );
    assert_eq!(body, b"0123456789");
}

#[test]
fn continue_is_sent_only_when_the_client_waits_for_it() {
    let (head, _) =
        head_of(b"POST /write HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    assert!(matches!(
        begin_body(&head, MAX_BODY, 0),
        BodyStart::Expect {
            send_continue: true,
            ..
        }
    ));
    // The body came with the head: the client did not wait.
    assert!(matches!(
        begin_body(&head, MAX_BODY, 5),
        BodyStart::Expect {
            send_continue: false,
            ..
        }
    ));
    let (plain, _) = head_of(b"POST /write HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    assert!(matches!(
        begin_body(&plain, MAX_BODY, 0),
        BodyStart::Expect {
            send_continue: false,
            ..
        }
    ));
}

#[test]
fn an_announced_body_over_the_limit_is_refused_and_no_body_is_no_body() {
    let (big, _) = head_of(b"POST /write HTTP/1.1\r\nContent-Length: 2000\r\n\r\n");
    assert!(matches!(begin_body(&big, 1000, 0), BodyStart::TooLarge));
    let (get, _) = head_of(b"GET /ping HTTP/1.1\r\n\r\n");
    assert!(matches!(begin_body(&get, 1000, 0), BodyStart::None));
}

#[test]
fn a_chunked_body_over_the_limit_is_refused_as_it_grows() {
    let (head, _) = head_of(b"POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    let BodyStart::Expect { mut framing, .. } = begin_body(&head, 8, 0) else {
        panic!("a body is expected");
    };
    let mut body = Vec::new();
    let result = feed_body(&mut framing, &mut body, b"10\r\n0123456789abcdef\r\n", 8);
    assert_eq!(result.map_err(|r| r.status), Err(413));
}

// --- timeouts -----------------------------------------------------------------------

const READ: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(60);

fn idle_since(t0: Instant) -> Clock {
    Clock {
        last_input: t0,
        request_started: None,
        body_received: None,
        partial_request: false,
        closing: false,
        pending_output: false,
        linger_until: None,
    }
}

fn at(t0: Instant, secs: u64) -> Instant {
    t0 + Duration::from_secs(secs)
}

#[test]
fn an_idle_keep_alive_connection_closes_after_idle_timeout_or_at_shutdown() {
    let t0 = Instant::now();
    let c = idle_since(t0);
    assert_eq!(expiry(&c, READ, IDLE, false, at(t0, 59)), None);
    assert_eq!(
        expiry(&c, READ, IDLE, false, at(t0, 60)),
        Some(Expiry::Close)
    );
    assert_eq!(expiry(&c, READ, IDLE, true, at(t0, 1)), Some(Expiry::Close));
}

#[test]
fn a_stalled_request_gets_408_after_read_timeout() {
    let t0 = Instant::now();
    let c = Clock {
        request_started: Some(t0),
        partial_request: true,
        ..idle_since(t0)
    };
    assert_eq!(expiry(&c, READ, IDLE, false, at(t0, 9)), None);
    assert_eq!(
        expiry(&c, READ, IDLE, false, at(t0, 10)),
        Some(Expiry::RequestTimeout)
    );
    // Shutting down does not cut a request short: it has read-timeout like any other.
    assert_eq!(expiry(&c, READ, IDLE, true, at(t0, 9)), None);
}

#[test]
fn a_trickling_head_is_timed_out_from_its_first_byte_despite_progress() {
    let t0 = Instant::now();
    let c = Clock {
        last_input: at(t0, 11), // a byte just came
        request_started: Some(t0),
        partial_request: true,
        ..idle_since(t0)
    };
    assert_eq!(
        expiry(&c, READ, IDLE, false, at(t0, 11)),
        Some(Expiry::RequestTimeout)
    );
}

#[test]
fn a_body_gets_read_timeout_plus_its_size_at_the_minimum_rate() {
    let t0 = Instant::now();
    let c = Clock {
        last_input: at(t0, 19),
        request_started: Some(t0),
        body_received: Some(10 * MIN_BODY_RATE as usize), // 10 s worth
        partial_request: true,
        ..idle_since(t0)
    };
    assert_eq!(expiry(&c, READ, IDLE, false, at(t0, 19)), None);
    assert_eq!(
        expiry(&c, READ, IDLE, false, at(t0, 20)),
        Some(Expiry::RequestTimeout)
    );
}

#[test]
fn a_client_not_reading_its_answers_is_closed_after_idle_timeout_even_at_shutdown() {
    let t0 = Instant::now();
    let c = Clock {
        pending_output: true,
        ..idle_since(t0)
    };
    assert_eq!(expiry(&c, READ, IDLE, true, at(t0, 30)), None);
    assert_eq!(
        expiry(&c, READ, IDLE, false, at(t0, 60)),
        Some(Expiry::Close)
    );
}

#[test]
fn lingering_ends_at_its_deadline_whatever_else() {
    let t0 = Instant::now();
    let c = Clock {
        partial_request: true,
        request_started: Some(t0),
        linger_until: Some(at(t0, 2)),
        ..idle_since(t0)
    };
    assert_eq!(expiry(&c, READ, IDLE, false, at(t0, 1)), None);
    assert_eq!(
        expiry(&c, READ, IDLE, false, at(t0, 2)),
        Some(Expiry::Close)
    );
}

#[test]
fn a_connection_already_closing_is_not_timed_out_as_a_request() {
    let t0 = Instant::now();
    let c = Clock {
        partial_request: true,
        closing: true,
        pending_output: true,
        ..idle_since(t0)
    };
    assert_eq!(expiry(&c, READ, IDLE, false, at(t0, 30)), None);
}

// --- the input buffer --------------------------------------------------------------

#[test]
fn input_keeps_what_is_left_in_order_across_appends() {
    let mut input = Input::default();
    input.append(b"GET /a HTTP/1.1\r\n\r\nGET /b");
    input.consume(19);
    assert_eq!(input.unparsed(), b"GET /b");
    input.append(b" HTTP/1.1\r\n\r\n");
    assert_eq!(input.unparsed(), b"GET /b HTTP/1.1\r\n\r\n");
    input.consume(input.unparsed().len());
    assert!(input.is_empty());
    // Nothing left: the next bytes start the buffer over rather than grow it.
    input.append(b"x");
    assert_eq!((input.unparsed(), input.buf.len()), (&b"x"[..], 1));
}

#[test]
fn input_is_given_back_only_when_idle() {
    let mut input = Input::default();
    input.append(&[b'a'; 10_000]);
    input.release_if_idle(4096);
    assert_eq!(input.unparsed().len(), 10_000, "not idle: kept");
    input.consume(10_000);
    input.release_if_idle(4096);
    assert_eq!(input.buf.capacity(), 0);
}

proptest::proptest! {
    /// Against a plain queue of bytes: whatever the appends and consumes, what is left
    /// is the same, and consumed bytes never pile up past half the buffer plus a read.
    #[test]
    fn input_matches_a_plain_queue(ops in proptest::collection::vec((proptest::bool::ANY, 1usize..50), 0..200)) {
        let mut input = Input::default();
        let mut model: std::collections::VecDeque<u8> = Default::default();
        let mut next = 0u8;
        for (append, n) in ops {
            if append {
                let bytes: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                input.append(&bytes);
                model.extend(&bytes);
                proptest::prop_assert!(input.pos <= input.buf.len() / 2 + n);
            } else {
                let n = n.min(model.len());
                input.consume(n);
                model.drain(..n);
            }
            proptest::prop_assert_eq!(input.unparsed(), &model.iter().copied().collect::<Vec<u8>>()[..]);
        }
    }
}
