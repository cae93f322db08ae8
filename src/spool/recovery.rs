//! Opening a spool: the directory made durable and locked, segments listed, each
//! scanned to its last good record (a torn or damaged tail is cut), consumed segments
//! deleted, and replay positioned after the last consumed record (the cursor).

use super::*;

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, bounded to `max_bytes` of
    /// unconsumed records, and recovers what the previous run left: cuts damaged
    /// segment tails, deletes consumed segments, and positions replay after the last
    /// consumed record.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Spool, Recovery), SpoolError> {
        Spool::open_with(dir, max_bytes, SEGMENT_ROLL_BYTES)
    }

    pub(super) fn open_with(
        dir: &Path,
        max_bytes: u64,
        segment_roll_bytes: u64,
    ) -> Result<(Spool, Recovery), SpoolError> {
        create_dir_durably(dir)?;
        let lock = lock_dir(dir)?;
        let mut recovery = Recovery::default();

        match fs::remove_file(dir.join(CURSOR_TMP_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err(&dir.join(CURSOR_TMP_FILE))(e))
            }
            _ => {}
        }
        let consumed_seq = read_cursor(dir, &mut recovery.notes);
        let ids = list_segments(dir)?;

        let mut scan = Scan {
            consumed_seq,
            head: None,
            max_seq: consumed_seq,
            records: 0,
            bytes: 0,
            scratch: Vec::new(),
        };
        // (id, valid length) of every segment, and which ones were cut.
        let mut found = Vec::with_capacity(ids.len());
        let mut cut_in = Vec::new();
        for (idx, &id) in ids.iter().enumerate() {
            let path = dir.join(segment_name(id));
            let outcome = scan.segment(&path, idx)?;
            if let Some((offset, why)) = outcome.cut {
                let cut = outcome.file_len - offset;
                recovery.truncated_bytes += cut;
                recovery.notes.push(format!(
                    "{}: {why} at byte {offset}; cut {cut} bytes",
                    segment_name(id)
                ));
                cut_in.push((idx, recovery.notes.len() - 1));
            }
            found.push((id, outcome.len));
        }
        for (idx, note) in cut_in {
            if idx + 1 < ids.len() {
                recovery.notes[note].push_str("; the records in later segments are kept");
            }
        }

        // Keep the segment holding the oldest unconsumed record and every non-empty one
        // after it; everything before it was consumed.
        let (head_idx, cursor_offset, head_meta) = match scan.head {
            Some((idx, offset, meta)) => (idx, offset, Some(meta)),
            None => (found.len(), 0, None),
        };
        let mut segments = VecDeque::new();
        let mut deleted_consumed = 0;
        for (idx, &(id, len)) in found.iter().enumerate() {
            if idx >= head_idx && len > 0 {
                segments.push_back(Segment { id, len });
                continue;
            }
            let path = dir.join(segment_name(id));
            match fs::remove_file(&path) {
                // Left alone, the file does no harm: the cursor or its emptiness keeps
                // it out of replay, and new segments get higher ids.
                Err(e) => recovery.notes.push(format!(
                    "cannot delete finished segment {} ({e}); it will be retried",
                    segment_name(id)
                )),
                Ok(()) if len > 0 => deleted_consumed += 1,
                Ok(()) => {}
            }
        }
        if deleted_consumed > 0 {
            recovery.notes.push(format!(
                "deleted {deleted_consumed} segment(s) whose records were all consumed"
            ));
        }

        recovery.records = scan.records;
        recovery.bytes = scan.bytes;
        recovery.segments = segments.len();
        let mut ahead = VecDeque::new();
        let mut ahead_end = Pos {
            idx: 0,
            offset: cursor_offset,
        };
        if let Some(meta) = head_meta {
            ahead.push_back(meta);
            ahead_end.offset += meta.disk_len;
        }
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_roll_bytes,
            segments,
            cursor_offset,
            consumed_seq,
            next_seq: scan.max_seq.saturating_add(1),
            next_segment_id: ids.last().map_or(1, |id| id.saturating_add(1)),
            len_records: scan.records,
            len_bytes: scan.bytes,
            ahead,
            ahead_end,
            writer: None,
            dirty: None,
            reader: None,
            scratch: Vec::new(),
            _lock: lock,
        };
        Ok((spool, recovery))
    }
}

/// State of the recovery scan across segments.
pub(super) struct Scan {
    pub(super) consumed_seq: u64,
    /// Segment index, offset and metadata of the oldest unconsumed record.
    pub(super) head: Option<(usize, u64, Meta)>,
    pub(super) max_seq: u64,
    /// Unconsumed records and their bytes.
    pub(super) records: u64,
    pub(super) bytes: u64,
    pub(super) scratch: Vec<u8>,
}

pub(super) struct SegmentScan {
    pub(super) file_len: u64,
    /// Length after the scan (and the cut, if any).
    pub(super) len: u64,
    /// Where the segment was cut, and why.
    pub(super) cut: Option<(u64, &'static str)>,
}

impl Scan {
    /// Checks every record of one segment, streaming, and cuts the file at the first
    /// one that is incomplete or damaged. I/O errors are returned, never treated as
    /// damage: cutting a readable-later file would lose records.
    pub(super) fn segment(&mut self, path: &Path, idx: usize) -> Result<SegmentScan, SpoolError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        let file_len = file.metadata().map_err(io_err(path))?.len();
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, &file);
        let mut offset = 0u64;
        let cut = loop {
            let remaining = file_len - offset;
            if remaining == 0 {
                break None;
            }
            if remaining < HEADER_BYTES as u64 {
                break Some("incomplete record header");
            }
            let mut head = [0u8; HEADER_BYTES];
            reader.read_exact(&mut head).map_err(io_err(path))?;
            let header = match parse_header(&head) {
                Ok(header) => header,
                Err(why) => break Some(why),
            };
            let disk_len = HEADER_BYTES as u64 + u64::from(header.payload_len);
            if disk_len > remaining {
                break Some("incomplete record");
            }
            self.scratch.clear();
            self.scratch.extend_from_slice(&head);
            self.scratch.resize(disk_len as usize, 0);
            reader
                .read_exact(&mut self.scratch[HEADER_BYTES..])
                .map_err(io_err(path))?;
            let view = match decode(&self.scratch) {
                Ok(Some((view, _))) => view,
                Ok(None) => break Some("incomplete record"),
                Err(why) => break Some(why),
            };
            self.max_seq = self.max_seq.max(view.seq);
            if self.head.is_none() && view.seq > self.consumed_seq {
                let meta = Meta {
                    seq: view.seq,
                    created_ms: view.created_ms,
                    disk_len,
                };
                self.head = Some((idx, offset, meta));
            }
            if self.head.is_some() {
                self.records += 1;
                self.bytes += disk_len;
            }
            offset += disk_len;
        };
        if self.scratch.capacity() > SCRATCH_KEEP_BYTES {
            self.scratch = Vec::new();
        }
        if cut.is_some() {
            file.set_len(offset).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
        }
        Ok(SegmentScan {
            file_len,
            len: offset,
            cut: cut.map(|why| (offset, why)),
        })
    }
}

/// The consumed sequence number from the cursor file; 0 (replay everything) if there is
/// none or it cannot be trusted.
pub(super) fn read_cursor(dir: &Path, notes: &mut Vec<String>) -> u64 {
    let path = dir.join(CURSOR_FILE);
    // Read one byte more than a cursor holds, so that an oversized file is rejected
    // without being loaded whole.
    let mut bytes = Vec::with_capacity(CURSOR_BYTES + 1);
    let read = File::open(&path)
        .and_then(|file| file.take(CURSOR_BYTES as u64 + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return 0,
        Err(e) => {
            notes.push(format!(
                "cannot read {CURSOR_FILE} ({e}); replaying from the oldest record"
            ));
            return 0;
        }
    };
    let parsed = <&[u8; CURSOR_BYTES]>::try_from(bytes.as_slice())
        .ok()
        .filter(|b| &b[..4] == CURSOR_MAGIC)
        .filter(|b| crc32fast::hash(&b[..12]).to_le_bytes() == b[12..])
        .and_then(|b| b[4..12].try_into().ok())
        .map(u64::from_le_bytes);
    match parsed {
        Some(seq) => seq,
        None => {
            notes.push(format!(
                "{CURSOR_FILE} is damaged; replaying from the oldest record"
            ));
            0
        }
    }
}
