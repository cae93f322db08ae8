//! `/query` statements: `http::query::classify`, which decides whether a query goes to
//! every backend (it changes something) or to one (it only reads).
//!
//! Oracles: nothing panics; what comes before a query's first statement cannot change
//! how it is classified (an empty statement and blanks in front give the same answer);
//! a query of only reads, sent twice in one request, is still only reads, with twice
//! the statements; and the statement count is never zero on success.

#![no_main]

use influx_relay::http::query::{classify, Class};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let got = classify(q);
    assert_eq!(classify(&format!(" ;\t; {q}")), got, "{q:?}");
    if let Ok((class, n)) = got {
        assert!(n > 0);
        // Doubling a query is only safe to reason about when it ends cleanly: no open
        // quote or comment that would swallow the second copy.
        let clean = !q.contains(['\'', '"', '-', '/', '\\']);
        if clean && class == Class::Read {
            assert_eq!(classify(&format!("{q};{q}")), Ok((Class::Read, 2 * n)), "{q:?}");
        }
    }
});
