//! The disk spool (README: Durability): a crash-safe FIFO of writes for one backend that is down.
//!
//! One [`Spool`] owns one directory, `spool-dir/<listener>/<output>/`, and is driven by
//! exactly one thread (the backend's queue thread), so it takes `&mut self` everywhere
//! and holds no locks; an advisory file lock keeps a second process out of the same
//! directory.
//!
//! On disk:
//!
//! - `NNNNNNNNNNNNNNNNNNNN.seg` (20-digit id): segment files, records back to back in
//!   the format documented in [`record`]. Appends go to the newest segment;
//!   a new one starts once a group would take the current one past
//!   [`SEGMENT_ROLL_BYTES`]. A segment is deleted as soon as every record in it has been
//!   consumed.
//! - `cursor`: the sequence number of the last consumed record, with a CRC. Rewritten
//!   (write a temporary file, rename) on every [`Spool::consume`] but never fsynced: a
//!   stale cursor only re-sends records, and every spooled line carries its timestamp,
//!   so a re-send overwrites a point with itself. Because it names a sequence number
//!   rather than a byte offset, it can never point into the middle of a record, and a
//!   cursor past the newest record simply means everything was consumed.
//! - `lock`: held with `flock` while the spool is open.
//!
//! Durability: [`Spool::append`] writes a whole group and `fdatasync`s once (group
//! commit) before it returns `Ok`, and fsyncs the directory when it creates a segment,
//! so an `Ok` survives `kill -9` and power loss. [`Spool::open`] scans every segment and
//! cuts each one at its first damaged record (torn tail, bad CRC); see [`Recovery`].
//!
//! Sizes: [`Spool::len_bytes`] counts the on-disk bytes of unconsumed records and is
//! what `max_bytes` bounds. The consumed prefix of the oldest segment stays on disk until
//! that segment is finished, so the directory can hold up to one segment more.

mod files;
pub mod record;
mod recovery;
#[cfg(test)]
mod tests;

pub use files::replace_file;
use files::*;
pub use record::{read_record, Record, RecordKind, RecordRef, MAX_PAYLOAD_BYTES};

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use record::{decode, parse_header, HEADER_BYTES};

/// A new segment starts once appending a group would take the current one past this many
/// bytes (64 MiB). A group is never split, so a segment can be longer by one group.
pub const SEGMENT_ROLL_BYTES: u64 = 64 << 20;

/// Records may carry `Authorization` values: owner-only access.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_ID_DIGITS: usize = 20;
const CURSOR_FILE: &str = "cursor";
const CURSOR_TMP_FILE: &str = "cursor.tmp";
const LOCK_FILE: &str = "lock";

/// `cursor` file: magic, consumed sequence number (u64 LE), CRC-32 of the first 12 bytes.
const CURSOR_MAGIC: &[u8; 4] = b"SPC1";
const CURSOR_BYTES: usize = 16;

/// Read buffer for a segment scan or replay: large enough that small records cost one
/// `read` per many records.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// The encode/decode buffer keeps its allocation between calls up to this size (1 MiB),
/// so one huge write does not pin its size in memory for the life of the spool.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

/// [`Spool::drop_older_than`] inspects at most this many records per consume step, which
/// bounds the metadata it holds in memory however many records have expired.
const DROP_CHUNK_RECORDS: usize = 4096;

/// What went wrong, with what the operator can do about it.
#[derive(Debug)]
pub enum SpoolError {
    /// Appending would take the unconsumed bytes over `max_bytes`; nothing was written.
    Full { needed: u64, free: u64 },
    /// One record is over [`MAX_PAYLOAD_BYTES`]; nothing was written.
    TooLarge { bytes: u64, max: u64 },
    /// Another process holds the spool directory.
    Locked { dir: PathBuf },
    /// A file operation failed (disk full, permissions, a damaged file changed under us).
    Io { path: PathBuf, source: io::Error },
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full { needed, free } => write!(
                f,
                "spool full: {needed} bytes to append, {free} free; raise spool-size-mb \
                 or bring the backend back"
            ),
            SpoolError::TooLarge { bytes, max } => write!(
                f,
                "write of {bytes} bytes is over the spool's {max}-byte record limit; \
                 lower max-body-size-mb"
            ),
            SpoolError::Locked { dir } => write!(
                f,
                "spool directory {} is in use by another process; give each relay its \
                 own spool-dir",
                dir.display()
            ),
            SpoolError::Io { path, source } => write!(
                f,
                "spool i/o error on {}: {source}; check free space and permissions of \
                 spool-dir",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpoolError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A record that passed its checks when it was appended or recovered no longer does:
/// the file was changed by something else.
fn damaged(path: &Path, offset: u64, why: &str) -> SpoolError {
    SpoolError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("record at byte {offset} changed on disk: {why}"),
        ),
    }
}

/// What [`Spool::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Unconsumed records, ready for replay.
    pub records: u64,
    /// Their on-disk bytes.
    pub bytes: u64,
    /// Segment files kept.
    pub segments: usize,
    /// Bytes cut from damaged or torn segment ends.
    pub truncated_bytes: u64,
    /// What was cut or ignored, and where; one sentence each, for the log.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    /// Bytes of whole, checked records. Never 0 for a segment in `Spool::segments`.
    len: u64,
}

/// What replay bookkeeping needs to know about a record without reading its payload.
#[derive(Debug, Clone, Copy)]
struct Meta {
    seq: u64,
    created_ms: u64,
    disk_len: u64,
}

/// A record position: index into `Spool::segments` and byte offset in that segment.
#[derive(Debug, Clone, Copy)]
struct Pos {
    idx: usize,
    offset: u64,
}

/// Records written by [`Spool::append_unsynced`] that are not yet durable.
#[must_use = "the records are not durable until synced"]
pub struct PendingSync {
    file: File,
    path: PathBuf,
}

impl PendingSync {
    /// fdatasync the segment the records went to (and whatever else was written to it
    /// before: group commit across callers comes for free).
    pub fn sync(self) -> Result<(), SpoolError> {
        self.file.sync_data().map_err(io_err(&self.path))
    }
}

/// A crash-safe, size-bounded FIFO of records in one directory. See the module docs.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_roll_bytes: u64,
    /// Oldest first. The front holds the replay cursor, the back takes appends. Empty
    /// exactly when no record is unconsumed: a segment leaves as soon as the cursor
    /// reaches its end.
    segments: VecDeque<Segment>,
    /// Offset of the oldest unconsumed record in `segments.front()`.
    cursor_offset: u64,
    /// Sequence number of the last consumed record (what the cursor file stores).
    consumed_seq: u64,
    next_seq: u64,
    next_segment_id: u64,
    len_records: u64,
    len_bytes: u64,
    /// Metadata of the records right after the cursor, in order: a cache filled by
    /// `peek` and by lookups, so that `consume` and `oldest_created_ms` need no reads.
    /// Non-empty whenever `len_records > 0` (the front is the oldest record).
    ahead: VecDeque<Meta>,
    /// Position just after the last record in `ahead`; meaningless when it is empty.
    ahead_end: Pos,
    /// Open for writing on the segment with this id (the back one, or one being created).
    writer: Option<(u64, File)>,
    /// A failed append whose rollback failed too left bytes past this length in this
    /// segment; they are cut before anything else is appended. Length 0: the segment
    /// was being created and is not in `segments`, so the file is removed instead.
    dirty: Option<(u64, u64)>,
    reader: Option<SegmentReader>,
    /// Encode buffer for `append`, record buffer for `peek` and the recovery scan.
    scratch: Vec<u8>,
    /// Held for the advisory lock; released when the spool is dropped.
    _lock: File,
}

impl Spool {
    /// Appends `recs` as one group: on `Ok` every record is on disk and fdatasync'ed, in
    /// order, with consecutive sequence numbers; on `Err` none of them counts (the file
    /// is rolled back to where it was).
    ///
    /// Checks size before writing: [`SpoolError::TooLarge`] for a record over
    /// [`MAX_PAYLOAD_BYTES`], [`SpoolError::Full`] if the group would take
    /// [`len_bytes`](Self::len_bytes) over `max_bytes`.
    pub fn append(&mut self, recs: &[RecordRef<'_>]) -> Result<(), SpoolError> {
        match self.append_unsynced(recs)? {
            Some(pending) => pending.sync(),
            None => Ok(()),
        }
    }

    /// [`append`](Self::append) without the fdatasync: the records are written (to the
    /// page cache) and counted, and the returned [`PendingSync`] makes them durable.
    /// The caller may release whatever guards the spool first, so that replay (peek,
    /// consume) is not kept waiting behind the disk: a record may even be replayed
    /// before it is durable, which is harmless (delivered is delivered; after a crash
    /// the cursor only skips records up to the sequence number it names).
    ///
    /// A failed sync leaves the records in the spool (they may well be replayed) but
    /// they must not count as durable.
    pub fn append_unsynced(
        &mut self,
        recs: &[RecordRef<'_>],
    ) -> Result<Option<PendingSync>, SpoolError> {
        if recs.is_empty() {
            return Ok(None);
        }
        let mut total = 0u64;
        for rec in recs {
            let Some(payload) = record::payload_len(rec) else {
                let auth = rec.auth.map_or(0, <[u8]>::len);
                let fields = rec.query.len() as u64 + auth as u64 + rec.body.len() as u64;
                return Err(SpoolError::TooLarge {
                    bytes: fields + record::PAYLOAD_FIXED_BYTES as u64,
                    max: u64::from(MAX_PAYLOAD_BYTES),
                });
            };
            total += (HEADER_BYTES as u64) + u64::from(payload);
        }
        let free = self.max_bytes.saturating_sub(self.len_bytes);
        if total > free {
            return Err(SpoolError::Full {
                needed: total,
                free,
            });
        }
        // Only a crafted file can push sequence numbers this far; refuse rather than
        // wrap, which would break replay order.
        let Some(after) = self.next_seq.checked_add(recs.len() as u64) else {
            return Err(SpoolError::Io {
                path: self.dir.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sequence numbers exhausted; move the spool directory away",
                ),
            });
        };
        self.clean_dirty()?;

        let roll = self
            .segments
            .back()
            .is_none_or(|tail| tail.len + total > self.segment_roll_bytes);
        let (id, offset) = match self.segments.back() {
            Some(tail) if !roll => (tail.id, tail.len),
            _ => (self.next_segment_id, 0),
        };
        let path = self.dir.join(segment_name(id));
        if roll {
            self.create_segment(id, &path)?;
        } else if self.writer.as_ref().is_none_or(|(open, _)| *open != id) {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            self.writer = Some((id, file));
        }

        self.scratch.clear();
        for (seq, rec) in (self.next_seq..after).zip(recs) {
            // Cannot fail: every record passed `payload_len` above.
            if let Some(payload) = record::payload_len(rec) {
                record::encode(seq, rec, payload, &mut self.scratch);
            }
        }
        // A second descriptor of the segment, for the caller's fdatasync.
        let written = match &self.writer {
            Some((_, file)) => file
                .write_all_at(&self.scratch, offset)
                .and_then(|()| file.try_clone()),
            None => Err(io::Error::other("segment writer missing")),
        };
        self.trim_scratch();
        let file = match written {
            Ok(file) => file,
            Err(e) => {
                self.roll_back(id, offset, &path);
                return Err(io_err(&path)(e));
            }
        };

        if roll {
            self.segments.push_back(Segment { id, len: total });
        } else if let Some(tail) = self.segments.back_mut() {
            tail.len += total;
        }
        if self.len_records == 0 {
            // The spool was empty, so `segments` was too and this is a fresh segment.
            // The first record's metadata is known without reading it back, which keeps
            // an `Ok` append free of any later failure.
            let first = &recs[0];
            let disk_len = HEADER_BYTES as u64 + record::payload_len(first).map_or(0, u64::from);
            self.cursor_offset = offset;
            self.ahead.clear();
            self.ahead.push_back(Meta {
                seq: self.next_seq,
                created_ms: first.created_ms,
                disk_len,
            });
            self.ahead_end = Pos {
                idx: 0,
                offset: offset + disk_len,
            };
        }
        self.len_records += recs.len() as u64;
        self.len_bytes += total;
        self.next_seq = after;
        Ok(Some(PendingSync { file, path }))
    }

    /// Creates segment `id` for appending and makes its directory entry durable.
    fn create_segment(&mut self, id: u64, path: &Path) -> Result<(), SpoolError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(io_err(path))?;
        self.next_segment_id = id + 1;
        self.writer = Some((id, file));
        if let Err(e) = sync_dir(&self.dir) {
            self.writer = None;
            if fs::remove_file(path).is_err() {
                self.dirty = Some((id, 0));
            }
            return Err(e);
        }
        Ok(())
    }

    /// Undoes a failed append to segment `id` that started at `offset`.
    fn roll_back(&mut self, id: u64, offset: u64, path: &Path) {
        // Whatever the reader buffered past the old end is no longer what the file holds.
        if self.reader.as_ref().is_some_and(|r| r.id == id) {
            self.reader = None;
        }
        let cut = match self.writer.take() {
            Some((_, file)) => file.set_len(offset),
            None => Err(io::Error::other("segment writer missing")),
        };
        // The writer is dropped either way: the next append opens a fresh descriptor
        // rather than trust one that just failed.
        if offset == 0 {
            // The segment was created for this group.
            if fs::remove_file(path).is_ok() {
                return;
            }
        } else if cut.is_ok() {
            return;
        }
        self.dirty = Some((id, offset));
    }

    /// Retries the cut of a failed append's leftovers, so that no stray bytes (possibly
    /// whole, valid records) end up between or after records that count.
    fn clean_dirty(&mut self) -> Result<(), SpoolError> {
        let Some((id, len)) = self.dirty else {
            return Ok(());
        };
        let path = self.dir.join(segment_name(id));
        if self.reader.as_ref().is_some_and(|r| r.id == id) {
            self.reader = None;
        }
        if len == 0 {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
                _ => {}
            }
        } else {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            file.set_len(len).map_err(io_err(&path))?;
        }
        self.dirty = None;
        Ok(())
    }

    /// Replaces `out` with the next records from the replay cursor, in order, without
    /// consuming them: at least one if any exists (even one bigger than `max_bytes`),
    /// then more while their total on-disk size stays within `max_bytes`. The on-disk
    /// size of a record exceeds its body length, so the bodies of one peek never total
    /// more than `max_bytes` unless a single record does.
    pub fn peek(&mut self, max_bytes: usize, out: &mut Vec<Record>) -> Result<(), SpoolError> {
        out.clear();
        let result = self.peek_into(max_bytes as u64, out);
        self.trim_scratch();
        result
    }

    fn peek_into(&mut self, max_bytes: u64, out: &mut Vec<Record>) -> Result<(), SpoolError> {
        let mut pos = Pos {
            idx: 0,
            offset: self.cursor_offset,
        };
        let mut total = 0u64;
        while let Some(seg) = self.segments.get(pos.idx).copied() {
            if pos.offset >= seg.len {
                pos = Pos {
                    idx: pos.idx + 1,
                    offset: 0,
                };
                continue;
            }
            let path = self.dir.join(segment_name(seg.id));
            let reader = open_reader(&mut self.reader, &path, seg.id)?;
            let mut head = [0u8; HEADER_BYTES];
            reader
                .seek_to(pos.offset)
                .and_then(|()| reader.read_exact(&mut head))
                .map_err(io_err(&path))?;
            let header = parse_header(&head).map_err(|why| damaged(&path, pos.offset, why))?;
            let disk_len = HEADER_BYTES as u64 + u64::from(header.payload_len);
            if pos.offset + disk_len > seg.len {
                return Err(damaged(
                    &path,
                    pos.offset,
                    "runs past the end of the segment",
                ));
            }
            if !out.is_empty() && total + disk_len > max_bytes {
                break;
            }
            self.scratch.clear();
            self.scratch.extend_from_slice(&head);
            self.scratch.resize(disk_len as usize, 0);
            reader
                .read_exact(&mut self.scratch[HEADER_BYTES..])
                .map_err(io_err(&path))?;
            let view = match decode(&self.scratch) {
                Ok(Some((view, _))) => view,
                Ok(None) => return Err(damaged(&path, pos.offset, "incomplete record")),
                Err(why) => return Err(damaged(&path, pos.offset, why)),
            };
            if out.len() == self.ahead.len() {
                self.ahead.push_back(Meta {
                    seq: view.seq,
                    created_ms: view.created_ms,
                    disk_len,
                });
                self.ahead_end = Pos {
                    idx: pos.idx,
                    offset: pos.offset + disk_len,
                };
            }
            out.push(view.into_record());
            total += disk_len;
            pos.offset += disk_len;
        }
        Ok(())
    }

    /// Marks the oldest `n` records done (delivered, or dropped on purpose): moves the
    /// cursor past them, deletes segments that are now fully consumed and rewrites the
    /// cursor file. `n` beyond [`len_records`](Self::len_records) consumes everything.
    ///
    /// On `Err` the spool is still consistent but some of the `n` may have been
    /// consumed: log it and [`peek`](Self::peek) again rather than repeating the call.
    /// A failure to tidy the disk (delete a segment, write the cursor) is reported after
    /// all `n` are consumed; at worst it re-sends records after a restart.
    pub fn consume(&mut self, n: usize) -> Result<(), SpoolError> {
        let n = (n as u64).min(self.len_records);
        if n == 0 {
            return Ok(());
        }
        let mut tidy_error = None;
        for _ in 0..n {
            if self.ahead.is_empty() && !self.extend_ahead()? {
                break;
            }
            let Some(meta) = self.ahead.pop_front() else {
                break;
            };
            self.advance(meta, &mut tidy_error);
        }
        if let Err(e) = self.write_cursor() {
            tidy_error.get_or_insert(e);
        }
        if self.ahead.is_empty() {
            self.extend_ahead()?;
        }
        tidy_error.map_or(Ok(()), Err)
    }

    /// Moves the cursor past the record `meta` describes (the oldest one).
    fn advance(&mut self, meta: Meta, tidy_error: &mut Option<SpoolError>) {
        self.cursor_offset += meta.disk_len;
        // Saturating: only a file changed under us could make these disagree.
        self.len_records = self.len_records.saturating_sub(1);
        self.len_bytes = self.len_bytes.saturating_sub(meta.disk_len);
        self.consumed_seq = meta.seq;
        let Some(front) = self.segments.front().copied() else {
            return;
        };
        if self.cursor_offset < front.len {
            return;
        }
        self.segments.pop_front();
        self.cursor_offset = 0;
        self.ahead_end.idx = self.ahead_end.idx.saturating_sub(1);
        if self.reader.as_ref().is_some_and(|r| r.id == front.id) {
            self.reader = None;
        }
        if self.writer.as_ref().is_some_and(|(id, _)| *id == front.id) {
            self.writer = None;
        }
        let path = self.dir.join(segment_name(front.id));
        // A segment that survives here is deleted by the next `open`: the cursor file
        // says its records are consumed.
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tidy_error.get_or_insert(io_err(&path)(e));
            }
            _ => {}
        }
    }

    /// Drops records from the head while they were created before `cutoff_ms` (unix
    /// milliseconds), for `spool-max-age`. Returns how many were dropped; the caller
    /// logs and counts them. Errors as for [`consume`](Self::consume).
    pub fn drop_older_than(&mut self, cutoff_ms: u64) -> Result<u64, SpoolError> {
        let mut dropped = 0u64;
        loop {
            let mut expired = 0;
            while expired < DROP_CHUNK_RECORDS && (expired as u64) < self.len_records {
                if expired == self.ahead.len() && !self.extend_ahead()? {
                    break;
                }
                if self.ahead[expired].created_ms >= cutoff_ms {
                    break;
                }
                expired += 1;
            }
            if expired == 0 {
                return Ok(dropped);
            }
            self.consume(expired)?;
            dropped += expired as u64;
            if expired < DROP_CHUNK_RECORDS {
                return Ok(dropped);
            }
        }
    }

    /// Reads the metadata of the record after the last one in `ahead` into it; `false`
    /// when there is none.
    fn extend_ahead(&mut self) -> Result<bool, SpoolError> {
        let mut pos = match self.ahead.back() {
            Some(_) => self.ahead_end,
            None => Pos {
                idx: 0,
                offset: self.cursor_offset,
            },
        };
        let seg = loop {
            let Some(seg) = self.segments.get(pos.idx).copied() else {
                return Ok(false);
            };
            if pos.offset < seg.len {
                break seg;
            }
            pos = Pos {
                idx: pos.idx + 1,
                offset: 0,
            };
        };
        let path = self.dir.join(segment_name(seg.id));
        let reader = open_reader(&mut self.reader, &path, seg.id)?;
        // The header plus the seq and created_ms that open every payload.
        let mut head = [0u8; HEADER_BYTES + 16];
        reader
            .seek_to(pos.offset)
            .and_then(|()| reader.read_exact(&mut head))
            .map_err(io_err(&path))?;
        let header = head
            .first_chunk::<HEADER_BYTES>()
            .ok_or("short header")
            .and_then(parse_header)
            .map_err(|why| damaged(&path, pos.offset, why))?;
        let disk_len = HEADER_BYTES as u64 + u64::from(header.payload_len);
        if pos.offset + disk_len > seg.len {
            return Err(damaged(
                &path,
                pos.offset,
                "runs past the end of the segment",
            ));
        }
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&head[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        self.ahead.push_back(Meta {
            seq: word(HEADER_BYTES),
            created_ms: word(HEADER_BYTES + 8),
            disk_len,
        });
        self.ahead_end = Pos {
            idx: pos.idx,
            offset: pos.offset + disk_len,
        };
        Ok(true)
    }

    fn write_cursor(&self) -> Result<(), SpoolError> {
        let mut buf = [0u8; CURSOR_BYTES];
        buf[..4].copy_from_slice(CURSOR_MAGIC);
        buf[4..12].copy_from_slice(&self.consumed_seq.to_le_bytes());
        let crc = crc32fast::hash(&buf[..12]);
        buf[12..].copy_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join(CURSOR_TMP_FILE);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all_at(&buf, 0).map_err(io_err(&tmp))?;
        drop(file);
        // The rename makes the switch atomic: a crash leaves the old cursor or the new
        // one, never a torn mix.
        let path = self.dir.join(CURSOR_FILE);
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    fn trim_scratch(&mut self) {
        if self.scratch.capacity() > SCRATCH_KEEP_BYTES {
            self.scratch = Vec::new();
        }
    }

    /// Unconsumed records.
    pub fn len_records(&self) -> u64 {
        self.len_records
    }

    /// On-disk bytes of unconsumed records (headers included); bounded by `max_bytes`.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// The bound on [`len_bytes`](Self::len_bytes) given to [`open`](Self::open).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// `created_ms` of the oldest unconsumed record.
    pub fn oldest_created_ms(&self) -> Option<u64> {
        self.ahead.front().map(|meta| meta.created_ms)
    }

    pub fn is_empty(&self) -> bool {
        self.len_records == 0
    }

    /// The directory this spool owns.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
