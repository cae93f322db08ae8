//! What a rebuild reads from outside: a source backend's `/query` answers, turned into
//! line protocol (`rebuild::lines`), and its own state file after a crash
//! (`rebuild::file`).
//!
//! Oracles: nothing panics; every chunk of line protocol handed on is whole lines; a
//! state file that decodes encodes to one that decodes to the same rebuild.

#![no_main]

use influx_relay::rebuild::{file, lines::LineWriter};
use influx_relay::verify::digest::FieldTypes;
use influx_relay::verify::json::walk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the declared types, so mixed and unknown ones are reached.
    let (pick, rest) = data.split_first().unwrap_or((&0, &[]));
    let kinds = ["float", "integer", "unsigned", "string", "boolean", "float+integer", ""];
    let mut types = FieldTypes::new();
    for (i, key) in ["v", "f", "value", "x y"].iter().enumerate() {
        types.insert(key.to_string(), kinds[(usize::from(*pick) + i) % kinds.len()].to_string());
    }
    let mut sink = |body: Vec<u8>, points: usize| {
        assert!(body.ends_with(b"\n"), "a chunk that is not whole lines");
        assert!(points > 0);
        Ok(())
    };
    let mut writer = LineWriter::new(&types, 64, &mut sink);
    for line in rest.split(|b| *b == b'\n') {
        if walk(line, &mut writer).is_err() {
            break;
        }
    }
    let _ = writer.finish();

    if let Ok(text) = std::str::from_utf8(rest) {
        if let Ok(loaded) = file::decode(text) {
            let again = file::encode(&loaded.params, &loaded.detail, &loaded.counters);
            let back = file::decode(&again).expect("an encoded state decodes");
            assert_eq!(back.params, loaded.params);
            assert_eq!(back.detail.cursor, loaded.detail.cursor);
            assert_eq!(back.detail.state, loaded.detail.state);
        }
    }
});
