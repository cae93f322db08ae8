//! The line-protocol scanner: `check_body` and `stamp_body`.
//!
//! Oracles: nothing panics; a body `check_body` accepts, once stamped, is accepted again
//! with the same number of points and nothing left to rewrite, every line of it is a
//! point with a timestamp, and stamping it again changes nothing.

#![no_main]

use influx_relay::lineproto::{check_body, check_line, split_lines, stamp_body, LineKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(info) = check_body(body) else {
        // A rejected body is never forwarded, but stamping must still not panic.
        let mut out = Vec::new();
        stamp_body(body, 1, &mut out);
        return;
    };
    let mut stamped = Vec::new();
    stamp_body(body, 1_700_000_000_000_000_000, &mut stamped);
    let again = check_body(&stamped).expect("a stamped valid body is valid");
    assert_eq!(again.points, info.points);
    assert!(!again.needs_rewrite, "stamped output needs no rewrite");
    let mut lines = 0;
    for line in split_lines(&stamped) {
        lines += 1;
        assert_eq!(
            check_line(line.text()),
            Ok(LineKind::Point {
                has_timestamp: true
            }),
            "line {}",
            line.number
        );
    }
    assert_eq!(lines, info.points);
    let mut twice = Vec::new();
    stamp_body(&stamped, 2, &mut twice);
    assert_eq!(twice, stamped);
});
