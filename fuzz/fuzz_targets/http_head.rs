//! The request head: `HeadScanner::find_end`, `parse_head`, and the credential parser
//! that reads the parsed head.
//!
//! Oracles: nothing panics; the scanner finds the same end whether the bytes arrive at
//! once or in two reads (the split point comes from the first input byte); an accepted
//! head has consistent fields and parses the same way twice.

#![no_main]

use influx_relay::config::{AuthConfig, User};
use influx_relay::http::auth;
use influx_relay::http::request::{parse_head, BodyKind, HeadScanner, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

/// Small enough that announced lengths often exceed it.
const MAX_BODY: usize = 4096;

fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else {
        return;
    };

    let whole = HeadScanner::default().find_end(data);
    let cut = (cut as usize * data.len()) / 255;
    let mut scanner = HeadScanner::default();
    let split = match scanner.find_end(&data[..cut]) {
        Ok(None) => scanner.find_end(data),
        other => {
            // Found (or refused) in the first read: the whole input must agree, since
            // the head ends at the first blank line.
            let other = other.map(|end| end.expect("matched Ok(None) above"));
            let whole = whole.map(|end| end.expect("a prefix found an end, so must the whole"));
            assert_eq!(other.map_err(|r| r.status), whole.map_err(|r| r.status));
            return;
        }
    };
    assert_eq!(
        split.map_err(|r| r.status),
        whole.map_err(|r| r.status),
        "split at {cut}"
    );

    let end = match whole {
        Ok(Some(end)) => end,
        Ok(None) => {
            assert!(
                data.len() < MAX_HEAD,
                "an unfinished head at the limit is 431"
            );
            return;
        }
        Err(reject) => {
            assert_eq!(reject.status, 431);
            return;
        }
    };
    assert!(end <= data.len() && end <= MAX_HEAD);
    assert!(data[..end].ends_with(b"\n\n") || data[..end].ends_with(b"\r\n\r\n"));

    let Ok(head) = parse_head(&data[..end], MAX_BODY) else {
        return;
    };
    assert_eq!(parse_head(&data[..end], MAX_BODY), Ok(head.clone()));
    assert!(!head.path.contains('?'), "the query is split off the path");
    match head.body {
        BodyKind::Length(n) => assert!(n > 0 && n <= MAX_BODY, "length {n}"),
        BodyKind::None | BodyKind::Chunked => {}
    }

    let table = AuthConfig {
        users: vec![User {
            name: "fuzz".into(),
            password_sha256: auth::sha256(b"fuzz"),
        }],
        tokens: vec![auth::sha256(b"token")],
        metrics: false,
    };
    let _ = auth::check(&table, head.authorization.as_deref(), &head.query);
    let stripped = auth::strip_credentials(&head.query);
    assert!(stripped.len() <= head.query.len());
    assert!(influx_relay::http::write::query_pairs(&stripped).all(|(k, _)| k != "u" && k != "p"));
});
