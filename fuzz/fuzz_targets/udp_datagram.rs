//! One UDP datagram: `udp::scan::scan_datagram`, which splits, checks and stamps every
//! line in one pass.
//!
//! Oracles: nothing panics; the one-pass scanner agrees, byte for byte and in its
//! counts, with the plain route it replaced (split the lines, check each, stamp the
//! good ones); every line it keeps ends in `\n` and carries a timestamp.

#![no_main]

use influx_relay::lineproto::{self, LineKind};
use influx_relay::udp::{scan_datagram, LineBatch};
use libfuzzer_sys::fuzz_target;

const TS: i64 = 1_600_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let mut batch = LineBatch::default();
    let got = scan_datagram(data, TS, &mut batch);

    let mut want = Vec::new();
    let (mut lines, mut bad) = (0, 0);
    for line in lineproto::split_lines(data) {
        match lineproto::check_line(line.text()) {
            Err(_) => bad += 1,
            Ok(LineKind::Blank | LineKind::Comment) => {}
            Ok(LineKind::Point { .. }) => {
                lineproto::stamp_body(line.raw, TS, &mut want);
                lines += 1;
            }
        }
    }
    let kept: Vec<u8> = batch.lines().flatten().copied().collect();
    assert_eq!(kept, want);
    assert_eq!((got.lines, got.bad), (lines, bad));
    assert_eq!(batch.points(), lines);
    for line in batch.lines() {
        assert!(line.ends_with(b"\n"));
        assert!(matches!(
            lineproto::check_line(&line[..line.len() - 1]),
            Ok(LineKind::Point { has_timestamp: true })
        ));
    }
});
