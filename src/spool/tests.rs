use super::record::{encode, payload_len, HEADER_BYTES, PAYLOAD_FIXED_BYTES};
use super::*;
use proptest::prelude::*;
use std::os::unix::fs::PermissionsExt;

fn record(seq: u64, created_ms: u64, body: &str) -> Record {
    Record {
        seq,
        created_ms,
        // Every third one a statement, so both kinds go through every test.
        kind: if seq.is_multiple_of(3) {
            RecordKind::Statement
        } else {
            RecordKind::Write
        },
        query: format!("db=test&seq={seq}").into_bytes(),
        auth: seq
            .is_multiple_of(2)
            .then(|| b"Basic dXNlcjpwYXNz".to_vec()),
        body: body.as_bytes().to_vec(),
    }
}

fn disk_len(rec: &Record) -> u64 {
    (HEADER_BYTES
        + PAYLOAD_FIXED_BYTES
        + rec.query.len()
        + rec.auth.as_ref().map_or(0, Vec::len)
        + rec.body.len()) as u64
}

fn append(spool: &mut Spool, recs: &[Record]) -> Result<(), SpoolError> {
    let refs: Vec<RecordRef<'_>> = recs.iter().map(Record::as_ref).collect();
    spool.append(&refs)
}

fn peek_all(spool: &mut Spool) -> Vec<Record> {
    let mut out = Vec::new();
    spool.peek(usize::MAX, &mut out).expect("peek");
    out
}

/// Records 1..=n with distinct bodies, as `append` would number them in a new spool.
fn numbered(n: u64) -> Vec<Record> {
    (1..=n)
        .map(|i| record(i, 1_000 + i, &format!("cpu,host=h{i} value={i}i {i}\n")))
        .collect()
}

fn open(dir: &Path) -> (Spool, Recovery) {
    Spool::open(dir, 1 << 30).expect("open")
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn append_peek_consume_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery, Recovery::default());
    assert!(spool.is_empty());
    assert_eq!(spool.oldest_created_ms(), None);

    let recs = numbered(5);
    for rec in &recs {
        append(&mut spool, std::slice::from_ref(rec)).expect("append");
    }
    assert_eq!(spool.len_records(), 5);
    assert_eq!(spool.len_bytes(), recs.iter().map(disk_len).sum::<u64>());
    assert_eq!(spool.oldest_created_ms(), Some(1_001));
    assert_eq!(peek_all(&mut spool), recs);
    // Peeking does not consume.
    assert_eq!(peek_all(&mut spool), recs);

    spool.consume(2).expect("consume");
    assert_eq!(spool.len_records(), 3);
    assert_eq!(spool.oldest_created_ms(), Some(1_003));
    assert_eq!(peek_all(&mut spool), recs[2..]);
    spool.consume(10).expect("consume past the end");
    assert!(spool.is_empty());
    assert_eq!(spool.len_bytes(), 0);
    assert!(peek_all(&mut spool).is_empty());
    assert!(segment_files(tmp.path()).is_empty());
}

#[test]
fn group_append_of_many_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let recs = numbered(1000);
    append(&mut spool, &recs).expect("append");
    assert_eq!(spool.len_records(), 1000);
    assert_eq!(peek_all(&mut spool), recs);
    // Sequence numbers continue with the next group.
    let more = vec![record(1001, 5, "m f=1 1\n")];
    append(&mut spool, &more).expect("append");
    spool.consume(1000).expect("consume");
    assert_eq!(peek_all(&mut spool), more);
}

#[test]
fn peek_stops_before_max_bytes_but_returns_at_least_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let mut recs = numbered(3);
    recs[0].body = vec![b'x'; 1000];
    append(&mut spool, &recs).expect("append");
    let sizes: Vec<usize> = recs.iter().map(|r| disk_len(r) as usize).collect();
    let mut out = vec![record(99, 0, "stale")];

    spool.peek(0, &mut out).expect("peek");
    assert_eq!(out, recs[..1], "one record even over the limit");
    spool.peek(sizes[0] + sizes[1] - 1, &mut out).expect("peek");
    assert_eq!(out, recs[..1]);
    spool.peek(sizes[0] + sizes[1], &mut out).expect("peek");
    assert_eq!(out, recs[..2]);
    spool.consume(1).expect("consume");
    spool.peek(sizes[1] + sizes[2], &mut out).expect("peek");
    assert_eq!(out, recs[1..]);
}

#[test]
fn reopen_returns_the_same_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = numbered(20);
    {
        let (mut spool, _) = open(tmp.path());
        append(&mut spool, &recs[..10]).expect("append");
        append(&mut spool, &recs[10..]).expect("append");
    }
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.records, 20);
    assert_eq!(recovery.bytes, recs.iter().map(disk_len).sum::<u64>());
    assert_eq!(recovery.segments, 1);
    assert_eq!(recovery.truncated_bytes, 0);
    assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
    assert_eq!(spool.len_records(), 20);
    assert_eq!(spool.oldest_created_ms(), Some(1_001));
    assert_eq!(peek_all(&mut spool), recs);
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record() {
    let recs = numbered(3);
    let last_start: u64 = recs[..2].iter().map(disk_len).sum();
    let full: u64 = last_start + disk_len(&recs[2]);
    for keep in last_start..full {
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let (mut spool, _) = open(tmp.path());
            append(&mut spool, &recs).expect("append");
        }
        let seg = &segment_files(tmp.path())[0];
        OpenOptions::new()
            .write(true)
            .open(seg)
            .and_then(|f| f.set_len(keep))
            .expect("truncate");

        let (mut spool, recovery) = open(tmp.path());
        assert_eq!(recovery.records, 2, "keep {keep}");
        assert_eq!(recovery.truncated_bytes, keep - last_start, "keep {keep}");
        assert_eq!(recovery.notes.len(), usize::from(keep > last_start));
        assert_eq!(fs::metadata(seg).expect("stat").len(), last_start);
        assert_eq!(peek_all(&mut spool), recs[..2], "keep {keep}");

        // Appends continue after the cut, reusing the lost record's sequence number.
        let next = record(3, 77, "after the cut 1\n");
        append(&mut spool, std::slice::from_ref(&next)).expect("append");
        drop(spool);
        let (mut spool, _) = open(tmp.path());
        assert_eq!(peek_all(&mut spool), [&recs[..2], &[next][..]].concat());
    }
}

#[test]
fn bit_flip_in_the_middle_record_cuts_there() {
    let recs = numbered(3);
    let middle = disk_len(&recs[0]);
    let end = middle + disk_len(&recs[1]);
    // Flip a bit in the header (length), the seq, the auth flag region and the body.
    for at in [middle + 3, middle + 12, middle + 45, end - 2] {
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let (mut spool, _) = open(tmp.path());
            append(&mut spool, &recs).expect("append");
        }
        let seg = &segment_files(tmp.path())[0];
        let mut bytes = fs::read(seg).expect("read");
        bytes[at as usize] ^= 0x10;
        fs::write(seg, &bytes).expect("write");

        let (mut spool, recovery) = open(tmp.path());
        assert_eq!(recovery.records, 1, "flip at {at}");
        assert_eq!(recovery.truncated_bytes, bytes.len() as u64 - middle);
        assert_eq!(recovery.notes.len(), 1);
        assert!(
            recovery.notes[0].contains(&format!("at byte {middle}")),
            "{:?}",
            recovery.notes
        );
        assert_eq!(peek_all(&mut spool), recs[..1]);
    }
}

#[test]
fn damage_in_one_segment_keeps_later_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = numbered(6);
    {
        let (mut spool, _) = Spool::open_with(tmp.path(), 1 << 20, 1).expect("open");
        // A roll size of 1 byte puts every group in its own segment.
        for pair in recs.chunks(2) {
            append(&mut spool, pair).expect("append");
        }
    }
    let segs = segment_files(tmp.path());
    assert_eq!(segs.len(), 3);
    let mut bytes = fs::read(&segs[1]).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&segs[1], &bytes).expect("write");

    let (mut spool, recovery) = Spool::open_with(tmp.path(), 1 << 20, 1).expect("open");
    assert_eq!(recovery.records, 5);
    assert_eq!(recovery.segments, 3);
    assert_eq!(recovery.truncated_bytes, disk_len(&recs[3]));
    assert_eq!(recovery.notes.len(), 1);
    assert!(recovery.notes[0].contains("00000000000000000002.seg"));
    assert!(recovery.notes[0].contains("later segments are kept"));
    let mut expected = recs.clone();
    expected.remove(3);
    assert_eq!(peek_all(&mut spool), expected);
    // New records get sequence numbers after every recovered one.
    let next = record(7, 1, "n v=1 1\n");
    append(&mut spool, std::slice::from_ref(&next)).expect("append");
    spool.consume(5).expect("consume");
    assert_eq!(peek_all(&mut spool), [next]);
}

#[test]
fn segments_roll_and_consumed_ones_are_deleted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = numbered(30);
    let roll = disk_len(&recs[0]) * 4;
    let (mut spool, _) = Spool::open_with(tmp.path(), 1 << 20, roll).expect("open");
    for rec in &recs {
        append(&mut spool, std::slice::from_ref(rec)).expect("append");
    }
    let before = segment_files(tmp.path()).len();
    assert!(before >= 7, "{before} segments");
    for seg in segment_files(tmp.path()) {
        assert!(fs::metadata(&seg).expect("stat").len() <= roll);
    }

    spool.consume(9).expect("consume");
    let after = segment_files(tmp.path()).len();
    assert!(after < before && after >= before - 3, "{before} -> {after}");
    assert_eq!(peek_all(&mut spool), recs[9..]);

    drop(spool);
    let (mut spool, recovery) = Spool::open_with(tmp.path(), 1 << 20, roll).expect("open");
    assert_eq!(recovery.records, 21);
    assert_eq!(recovery.segments, after);
    assert_eq!(peek_all(&mut spool), recs[9..]);
    spool.consume(21).expect("consume");
    assert!(segment_files(tmp.path()).is_empty());
}

#[test]
fn full_spool_refuses_the_append_and_stays_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = numbered(3);
    let max = disk_len(&recs[0]) + disk_len(&recs[1]) + 5;
    let (mut spool, _) = Spool::open(tmp.path(), max).expect("open");
    append(&mut spool, &recs[..1]).expect("append");
    let seg_len = fs::metadata(&segment_files(tmp.path())[0])
        .expect("stat")
        .len();

    match append(&mut spool, &recs[1..]) {
        Err(SpoolError::Full { needed, free }) => {
            assert_eq!(needed, disk_len(&recs[1]) + disk_len(&recs[2]));
            assert_eq!(free, max - disk_len(&recs[0]));
        }
        other => panic!("expected Full, got {other:?}"),
    }
    let message = append(&mut spool, &recs[1..])
        .map_err(|e| e.to_string())
        .expect_err("still full");
    assert!(message.starts_with("spool full"), "{message}");
    assert_eq!(spool.len_records(), 1);
    assert_eq!(spool.len_bytes(), disk_len(&recs[0]));
    let seg = &segment_files(tmp.path())[0];
    assert_eq!(fs::metadata(seg).expect("stat").len(), seg_len);
    assert_eq!(peek_all(&mut spool), recs[..1]);

    // The failed group did not use up sequence numbers, and a smaller one still fits.
    append(&mut spool, &recs[1..2]).expect("append");
    assert_eq!(peek_all(&mut spool), recs[..2]);
}

#[test]
fn failed_append_rolls_back_and_the_next_one_succeeds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = numbered(4);
    let (mut spool, _) = open(tmp.path());
    append(&mut spool, &recs[..2]).expect("append");
    let seg = segment_files(tmp.path()).remove(0);
    let seg_len = fs::metadata(&seg).expect("stat").len();
    let id = spool.segments[0].id;
    // A read-only descriptor makes both the write and the rollback's set_len fail, as
    // a dying disk would.
    spool.writer = Some((id, File::open(&seg).expect("open")));

    match append(&mut spool, &recs[2..3]) {
        Err(SpoolError::Io { path, .. }) => assert_eq!(path, seg),
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(spool.len_records(), 2);
    assert_eq!(fs::metadata(&seg).expect("stat").len(), seg_len);
    assert_eq!(peek_all(&mut spool), recs[..2]);

    // Same sequence number as the failed attempt: it never counted.
    append(&mut spool, &recs[2..]).expect("append");
    assert_eq!(peek_all(&mut spool), recs);
    drop(spool);
    let (mut spool, recovery) = open(tmp.path());
    assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
    assert_eq!(peek_all(&mut spool), recs);
}

#[test]
fn crafted_sequence_numbers_at_the_limit_do_not_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = record(u64::MAX, 1, "m v=1 1\n");
    let mut bytes = Vec::new();
    let r = rec.as_ref();
    encode(rec.seq, &r, payload_len(&r).expect("size"), &mut bytes);
    fs::write(tmp.path().join(segment_name(7)), bytes).expect("write");
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.records, 1);
    assert!(matches!(
        append(&mut spool, &numbered(1)),
        Err(SpoolError::Io { .. })
    ));
    assert_eq!(peek_all(&mut spool), [rec]);
    spool.consume(1).expect("consume");
    assert!(spool.is_empty());
}

#[test]
fn an_oversized_cursor_file_is_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let (mut spool, _) = open(tmp.path());
        append(&mut spool, &numbered(2)).expect("append");
    }
    fs::write(tmp.path().join(CURSOR_FILE), vec![7u8; 1 << 16]).expect("write");
    let (spool, recovery) = open(tmp.path());
    assert_eq!(spool.len_records(), 2);
    assert_eq!(recovery.notes.len(), 1, "{:?}", recovery.notes);
}

#[test]
fn cursor_survives_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = numbered(5);
    {
        let (mut spool, _) = open(tmp.path());
        append(&mut spool, &recs).expect("append");
        spool.consume(2).expect("consume");
    }
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.records, 3);
    assert_eq!(recovery.bytes, recs[2..].iter().map(disk_len).sum::<u64>());
    assert_eq!(spool.oldest_created_ms(), Some(1_003));
    assert_eq!(peek_all(&mut spool), recs[2..]);

    // Drained completely: sequence numbers still continue after a restart.
    spool.consume(3).expect("consume");
    drop(spool);
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.records, 0);
    append(&mut spool, &numbered(6)[5..]).expect("append");
    assert_eq!(peek_all(&mut spool)[0].seq, 6);
}

#[test]
fn consumed_segments_left_behind_are_deleted_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = numbered(4);
    {
        let (mut spool, _) = Spool::open_with(tmp.path(), 1 << 20, 1).expect("open");
        for rec in &recs {
            append(&mut spool, std::slice::from_ref(rec)).expect("append");
        }
    }
    let segs = segment_files(tmp.path());
    // A cursor written just before a crash that kept the segments it had finished.
    {
        let (mut spool, _) = Spool::open_with(tmp.path(), 1 << 20, 1).expect("open");
        spool.consume(2).expect("consume");
    }
    for (seg, rec) in segs.iter().zip(&recs).take(2) {
        let mut one = Vec::new();
        let r = rec.as_ref();
        encode(rec.seq, &r, payload_len(&r).expect("size"), &mut one);
        fs::write(seg, one).expect("restore");
    }
    let (mut spool, recovery) = Spool::open_with(tmp.path(), 1 << 20, 1).expect("open");
    assert_eq!(recovery.records, 2);
    assert_eq!(recovery.segments, 2);
    assert!(
        recovery.notes.iter().any(|n| n.contains("consumed")),
        "{:?}",
        recovery.notes
    );
    assert_eq!(segment_files(tmp.path()), segs[2..]);
    assert_eq!(peek_all(&mut spool), recs[2..]);
}

#[test]
fn damaged_cursor_replays_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = numbered(3);
    {
        let (mut spool, _) = open(tmp.path());
        append(&mut spool, &recs).expect("append");
        spool.consume(1).expect("consume");
    }
    let cursor = tmp.path().join(CURSOR_FILE);
    let mut bytes = fs::read(&cursor).expect("read");
    bytes[5] ^= 0xff;
    fs::write(&cursor, bytes).expect("write");
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.records, 3);
    assert_eq!(recovery.notes.len(), 1, "{:?}", recovery.notes);
    assert_eq!(peek_all(&mut spool), recs);
}

#[test]
fn drop_older_than_consumes_expired_records_from_the_head() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let recs = numbered(10); // created 1001..=1010
    append(&mut spool, &recs).expect("append");
    assert_eq!(spool.drop_older_than(1_000).expect("drop"), 0);
    assert_eq!(spool.drop_older_than(1_004).expect("drop"), 3);
    assert_eq!(spool.oldest_created_ms(), Some(1_004));
    assert_eq!(peek_all(&mut spool), recs[3..]);
    assert_eq!(spool.drop_older_than(u64::MAX).expect("drop"), 7);
    assert!(spool.is_empty());

    // More than one chunk's worth.
    let many: Vec<Record> = (0..DROP_CHUNK_RECORDS as u64 * 2 + 7)
        .map(|i| record(11 + i, i, "m v=1 1\n"))
        .collect();
    append(&mut spool, &many).expect("append");
    let expired = DROP_CHUNK_RECORDS as u64 * 2 + 3;
    assert_eq!(spool.drop_older_than(expired).expect("drop"), expired);
    assert_eq!(spool.len_records(), 4);
}

#[test]
fn files_are_private_to_the_owner() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("listener").join("output");
    let (mut spool, _) = open(&dir);
    append(&mut spool, &numbered(2)).expect("append");
    spool.consume(1).expect("consume");
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&tmp.path().join("listener")), 0o700);
    for file in fs::read_dir(&dir).expect("read_dir") {
        let path = file.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert_eq!(fs::read_dir(&dir).expect("read_dir").count(), 3); // seg, cursor, lock
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_spool, _) = open(tmp.path());
    match Spool::open(tmp.path(), 1 << 20) {
        Err(SpoolError::Locked { dir }) => assert_eq!(dir, tmp.path()),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("expected Locked, got a second spool"),
    }
}

#[test]
fn foreign_files_are_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(tmp.path().join("notes.txt"), "hello").expect("write");
    fs::write(tmp.path().join("1.seg"), "not ours").expect("write");
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery, Recovery::default());
    append(&mut spool, &numbered(1)).expect("append");
    assert_eq!(
        fs::read(tmp.path().join("1.seg")).expect("read"),
        b"not ours"
    );
}

#[test]
fn read_record_round_trips_and_waits_for_more_bytes() {
    let recs = numbered(2);
    let mut buf = Vec::new();
    for rec in &recs {
        let r = rec.as_ref();
        encode(rec.seq, &r, payload_len(&r).expect("size"), &mut buf);
    }
    let first = disk_len(&recs[0]) as usize;
    for cut in 0..first {
        assert_eq!(read_record(&buf[..cut]), Ok(None), "prefix of {cut} bytes");
    }
    let (rec, used) = read_record(&buf).expect("valid").expect("complete");
    assert_eq!((rec, used), (recs[0].clone(), first));
    let (rec, used) = read_record(&buf[first..])
        .expect("valid")
        .expect("complete");
    assert_eq!((rec, used), (recs[1].clone(), buf.len() - first));
    assert_eq!(read_record(&[0]), Err("bad magic byte"));
}

proptest! {
    #[test]
    fn read_record_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = read_record(&bytes);
    }

    /// Any record survives encoding: read back whole, every strict prefix incomplete,
    /// and bytes after it left alone.
    #[test]
    fn encoded_records_round_trip(
        seq in any::<u64>(),
        created_ms in any::<u64>(),
        query in proptest::collection::vec(any::<u8>(), 0..40),
        auth in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        statement in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let kind = if statement { RecordKind::Statement } else { RecordKind::Write };
        let rec = Record { seq, created_ms, kind, query, auth, body };
        let mut buf = Vec::new();
        let r = rec.as_ref();
        encode(rec.seq, &r, payload_len(&r).expect("size"), &mut buf);
        let len = buf.len();
        prop_assert_eq!(read_record(&buf[..cut.index(len)]), Ok(None));
        buf.extend_from_slice(b"next record");
        prop_assert_eq!(read_record(&buf), Ok(Some((rec, len))));
    }

    #[test]
    fn read_record_never_panics_on_damaged_records(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let rec = Record { seq: 9, created_ms: 10, kind: RecordKind::Write, query: b"db=x".to_vec(), auth: None, body };
        let mut buf = Vec::new();
        let r = rec.as_ref();
        encode(rec.seq, &r, payload_len(&r).expect("size"), &mut buf);
        for (at, x) in flips {
            let i = at.index(buf.len());
            buf[i] ^= x;
        }
        let cut = cut.index(buf.len() + 1);
        if let Ok(Some((_, used))) = read_record(&buf[..cut]) {
            prop_assert!(used <= cut);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(u64, u8, bool, u16)>),
    Peek(usize),
    /// Peek with a limit of exactly the first `k` records' size, plus -1, 0 or 1.
    PeekAround(usize, i8),
    Consume(usize),
    DropOlder(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let rec = (0u64..50, 0u8..20, any::<bool>(), 0u16..300);
    prop_oneof![
        4 => proptest::collection::vec(rec, 0..6).prop_map(Op::Append),
        1 => (0usize..800).prop_map(Op::Peek),
        1 => (1usize..6, -1i8..=1).prop_map(|(k, d)| Op::PeekAround(k, d)),
        3 => (0usize..8).prop_map(Op::Consume),
        1 => (0u64..50).prop_map(Op::DropOlder),
        1 => Just(Op::Reopen),
    ]
}

fn check_peek(
    spool: &mut Spool,
    model: &VecDeque<Record>,
    max: usize,
) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    spool.peek(max, &mut out).expect("peek");
    let mut total = 0;
    let expected: Vec<&Record> = model
        .iter()
        .enumerate()
        .take_while(|(i, r)| {
            total += disk_len(r);
            *i == 0 || total <= max as u64
        })
        .map(|(_, r)| r)
        .collect();
    prop_assert_eq!(out.iter().collect::<Vec<_>>(), expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn spool_matches_a_queue_model(ops in proptest::collection::vec(op(), 1..60)) {
        const MAX: u64 = 2500;
        const ROLL: u64 = 600;
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut spool, _) = Spool::open_with(tmp.path(), MAX, ROLL).expect("open");
        let mut model: VecDeque<Record> = VecDeque::new();
        let mut next_seq = 1u64;
        for op in ops {
            match op {
                Op::Append(specs) => {
                    let recs: Vec<Record> = specs
                        .iter()
                        .enumerate()
                        .map(|(i, &(created, q, auth, body))| Record {
                            kind: RecordKind::Write,
                            seq: next_seq + i as u64,
                            created_ms: created,
                            query: vec![b'q'; q as usize],
                            auth: auth.then(|| vec![b'a'; 3]),
                            body: vec![b'b'; body as usize],
                        })
                        .collect();
                    let size: u64 = recs.iter().map(disk_len).sum();
                    let queued: u64 = model.iter().map(disk_len).sum();
                    match append(&mut spool, &recs) {
                        Ok(()) => {
                            prop_assert!(queued + size <= MAX);
                            next_seq += recs.len() as u64;
                            model.extend(recs);
                        }
                        Err(SpoolError::Full { needed, free }) => {
                            prop_assert_eq!(needed, size);
                            prop_assert_eq!(free, MAX - queued);
                            prop_assert!(queued + size > MAX);
                        }
                        Err(e) => prop_assert!(false, "append: {}", e),
                    }
                }
                Op::Peek(max) => check_peek(&mut spool, &model, max)?,
                Op::PeekAround(k, delta) => {
                    let exact: u64 = model.iter().take(k).map(disk_len).sum();
                    let max = exact.saturating_add_signed(i64::from(delta));
                    check_peek(&mut spool, &model, max as usize)?;
                }
                Op::Consume(n) => {
                    spool.consume(n).expect("consume");
                    model.drain(..n.min(model.len()));
                }
                Op::DropOlder(cutoff) => {
                    let dropped = spool.drop_older_than(cutoff).expect("drop");
                    let expired = model.iter().take_while(|r| r.created_ms < cutoff).count();
                    model.drain(..expired);
                    prop_assert_eq!(dropped, expired as u64);
                }
                Op::Reopen => {
                    drop(spool);
                    let (reopened, recovery) =
                        Spool::open_with(tmp.path(), MAX, ROLL).expect("open");
                    spool = reopened;
                    prop_assert_eq!(recovery.records, model.len() as u64);
                    prop_assert_eq!(recovery.truncated_bytes, 0);
                    prop_assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
                }
            }
            prop_assert_eq!(spool.len_records(), model.len() as u64);
            prop_assert_eq!(spool.len_bytes(), model.iter().map(disk_len).sum::<u64>());
            prop_assert_eq!(spool.oldest_created_ms(), model.front().map(|r| r.created_ms));
            prop_assert_eq!(spool.is_empty(), model.is_empty());
        }
        prop_assert_eq!(peek_all(&mut spool), Vec::from(model));
    }
}

/// Appends whose fdatasync runs later (outside the caller's lock) are readable and
/// consumable at once; a record consumed before its sync is not replayed after a
/// reopen, and the sync of a group still succeeds once later groups were consumed.
#[test]
fn unsynced_appends_are_replayable_and_sync_later() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = numbered(4);
    let (mut spool, _) = open(tmp.path());
    let refs: Vec<RecordRef<'_>> = recs.iter().map(Record::as_ref).collect();
    let first = spool
        .append_unsynced(&refs[..2])
        .expect("append")
        .expect("pending");
    let second = spool
        .append_unsynced(&refs[2..])
        .expect("append")
        .expect("pending");
    assert_eq!(peek_all(&mut spool), recs);
    spool.consume(3).expect("consume");
    second.sync().expect("sync");
    first.sync().expect("sync");
    drop(spool);
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.records, 1);
    assert_eq!(peek_all(&mut spool), recs[3..]);
}

#[test]
fn an_empty_unsynced_append_has_nothing_to_sync() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    assert!(spool.append_unsynced(&[]).expect("append").is_none());
}

/// A version 1 record (no kind byte; a statement's query string began with `/query?`),
/// as a spool written before the kind existed holds it.
fn encode_v1(seq: u64, created_ms: u64, query: &[u8], body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&seq.to_le_bytes());
    payload.extend_from_slice(&created_ms.to_le_bytes());
    payload.extend_from_slice(&(query.len() as u32).to_le_bytes());
    payload.extend_from_slice(query);
    payload.push(0); // no Authorization
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(&(body.len() as u32).to_le_bytes());
    payload.extend_from_slice(body);
    let mut out = vec![record::MAGIC, 1];
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out);
    hasher.update(&payload);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Regression for the format change: a spool left by a relay that wrote version 1
/// records reopens and replays, statements as statements without their old marker.
#[test]
fn version_1_records_still_replay_with_their_kind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut seg = encode_v1(1, 5, b"db=a", b"m v=1 1\n");
    seg.extend(encode_v1(2, 6, b"/query?q=CREATE+DATABASE+a", b""));
    fs::write(tmp.path().join(segment_name(1)), &seg).expect("write segment");
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.records, 2);
    let got = peek_all(&mut spool);
    assert_eq!(got[0].kind, RecordKind::Write);
    assert_eq!(got[0].query, b"db=a");
    assert_eq!(got[1].kind, RecordKind::Statement);
    assert_eq!(got[1].query, b"q=CREATE+DATABASE+a");
    // New appends go after them, in the current version.
    append(&mut spool, &[record(3, 7, "m v=3 3\n")]).expect("append");
    drop(spool);
    let (mut spool, _) = open(tmp.path());
    assert_eq!(peek_all(&mut spool).len(), 3);
}
