//! The spool's record reader: `read_record`, which recovery runs over whatever a crash
//! or a disk left behind.
//!
//! Oracles: nothing panics; a record it accepts re-encodes (with an encoder written
//! here from the documented layout) to exactly the bytes it consumed; and a record built
//! from the input round-trips, with every strict prefix reported as incomplete.

#![no_main]

use influx_relay::spool::record::{HEADER_BYTES, MAGIC, VERSION};
use influx_relay::spool::{read_record, Record, RecordKind};
use libfuzzer_sys::fuzz_target;

/// The layout of `src/spool/record.rs`'s module doc, independently of its encoder, in
/// the current version or in version 1 (no kind byte; a statement's query string
/// prefixed with `/query?`), which the reader still accepts.
fn encode(rec: &Record, version: u8) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&rec.seq.to_le_bytes());
    payload.extend_from_slice(&rec.created_ms.to_le_bytes());
    let mut query = rec.query.clone();
    if version == 1 {
        if rec.kind == RecordKind::Statement {
            query.splice(0..0, b"/query?".iter().copied());
        }
    } else {
        payload.push(u8::from(rec.kind == RecordKind::Statement));
    }
    payload.extend_from_slice(&(query.len() as u32).to_le_bytes());
    payload.extend_from_slice(&query);
    payload.push(u8::from(rec.auth.is_some()));
    let auth = rec.auth.as_deref().unwrap_or_default();
    payload.extend_from_slice(&(auth.len() as u32).to_le_bytes());
    payload.extend_from_slice(auth);
    payload.extend_from_slice(&(rec.body.len() as u32).to_le_bytes());
    payload.extend_from_slice(&rec.body);

    let mut out = vec![MAGIC, version];
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out);
    crc.update(&payload);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_BYTES);
    out.extend_from_slice(&payload);
    out
}

fuzz_target!(|data: &[u8]| {
    // Whatever the bytes: no panic, and an accepted record is exactly what it consumed.
    if let Ok(Some((rec, used))) = read_record(data) {
        assert!(used <= data.len());
        assert_eq!(encode(&rec, data[1]), &data[..used]);
    }

    // A record made of the input: three fields cut at points the first bytes choose.
    let [a, b, flag, rest @ ..] = data else {
        return;
    };
    let q = (*a as usize).min(rest.len());
    let (query, rest) = rest.split_at(q);
    let k = (*b as usize).min(rest.len());
    let (auth, body) = rest.split_at(k);
    let rec = Record {
        seq: u64::from(*a) << 40 | u64::from(*b),
        created_ms: u64::from(*flag) * 1_000,
        kind: if flag & 2 == 2 {
            RecordKind::Statement
        } else {
            RecordKind::Write
        },
        query: query.to_vec(),
        auth: (flag & 1 == 1).then(|| auth.to_vec()),
        body: body.to_vec(),
    };
    let bytes = encode(&rec, VERSION);
    let (back, used) = read_record(&bytes)
        .expect("an encoded record is valid")
        .expect("and complete");
    assert_eq!(used, bytes.len());
    assert_eq!(back, rec);
    let mut tail = bytes.clone();
    tail.extend_from_slice(b"next");
    assert_eq!(
        read_record(&tail).ok().flatten().map(|(_, n)| n),
        Some(used)
    );
    let cut = usize::from(*flag) % bytes.len();
    assert_eq!(
        read_record(&bytes[..cut]),
        Ok(None),
        "prefix of {cut} bytes"
    );
});
