//! The on-disk record format: encoding, and a sans-I/O decoder that never panics.
//!
//! A segment file is nothing but records back to back; there is no file header, so a
//! segment can be cut at any record boundary and stay valid. All integers are
//! little-endian.
//!
//! | offset      | size | field                                                   |
//! |-------------|------|---------------------------------------------------------|
//! | 0           | 1    | magic `0xA5`                                            |
//! | 1           | 1    | format version `2` (`1` is still read, below)           |
//! | 2           | 4    | `N`: payload length (u32), at most [`MAX_PAYLOAD_BYTES`] |
//! | 6           | 4    | CRC-32 (IEEE) of bytes 0..6 followed by the payload     |
//! | 10          | N    | payload, below                                          |
//!
//! Payload:
//!
//! | offset      | size | field                                                   |
//! |-------------|------|---------------------------------------------------------|
//! | 0           | 8    | `seq` (u64)                                             |
//! | 8           | 8    | `created_ms` (u64, unix milliseconds)                   |
//! | 16          | 1    | kind: `0` a `/write`, `1` a `/query` statement           |
//! | 17          | 4    | `Q`: query length (u32)                                 |
//! | 21          | Q    | query string, forwarded as is                           |
//! | 21+Q        | 1    | `1` if an `Authorization` value follows, else `0`       |
//! | 22+Q        | 4    | `A`: authorization length (u32; `0` when the flag is 0) |
//! | 26+Q        | A    | authorization header value                              |
//! | 26+Q+A      | 4    | `B`: body length (u32)                                  |
//! | 30+Q+A      | B    | body                                                    |
//!
//! `N` must equal `30 + Q + A + B` exactly.
//!
//! Version 1 had no kind byte (offsets from 16 on are one less, `N = 29 + Q + A + B`):
//! a statement was told apart by its query string starting with `/query?`, which no
//! write's query string does. Version 1 records are still read, as the kind that
//! prefix says and with the prefix removed, so a spool written before the change
//! replays after it. The CRC covers the length field, so a torn
//! or bit-flipped length is caught instead of sending the scanner off into the next
//! record. A zero-filled tail (what some file systems leave after a crash) fails the
//! magic check at once.

/// Identifies the start of a record; chosen so neither zero fill nor ASCII text matches.
pub const MAGIC: u8 = 0xA5;

/// Bumped whenever the layout changes; an unknown version ends the segment like damage.
pub const VERSION: u8 = 2;

/// The layout before records had a kind; read, never written.
const VERSION_1: u8 = 1;

/// How a version 1 record marked a statement: its query string began with this.
const V1_STATEMENT_PREFIX: &[u8] = b"/query?";

/// What a spooled record replays as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordKind {
    /// `POST` to the backend's write path with the body.
    #[default]
    Write,
    /// `POST` to the backend's `/query` with the statement in the query string.
    Statement,
}

impl RecordKind {
    fn to_byte(self) -> u8 {
        match self {
            RecordKind::Write => 0,
            RecordKind::Statement => 1,
        }
    }

    fn from_byte(b: u8) -> Option<RecordKind> {
        match b {
            0 => Some(RecordKind::Write),
            1 => Some(RecordKind::Statement),
            _ => None,
        }
    }
}

/// Bytes before the payload: magic, version, length, CRC.
pub const HEADER_BYTES: usize = 10;

/// Payload bytes that are not query, authorization or body (seq, created, kind, three
/// lengths, the authorization flag).
pub const PAYLOAD_FIXED_BYTES: usize = 30;

/// The same for a version 1 record, which had no kind byte.
const V1_PAYLOAD_FIXED_BYTES: usize = 29;

/// Upper bound on a record's payload, in bytes (256 MiB). Far above any write the relay
/// accepts, and the limit that keeps a damaged length field from making the recovery
/// scan allocate gigabytes.
pub const MAX_PAYLOAD_BYTES: u32 = 256 << 20;

/// One spooled write, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number, strictly increasing in append order across restarts.
    pub seq: u64,
    /// When the write was spooled, unix milliseconds (for `spool-max-age`).
    pub created_ms: u64,
    pub kind: RecordKind,
    /// Query string to forward, without the leading `?`.
    pub query: Vec<u8>,
    /// The client's `Authorization` header value, verbatim.
    pub auth: Option<Vec<u8>>,
    /// The checked line-protocol body.
    pub body: Vec<u8>,
}

/// One write to append, borrowing from the caller's batch so that spooling copies the
/// body only once (into the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// When the write was spooled, unix milliseconds.
    pub created_ms: u64,
    pub kind: RecordKind,
    /// Query string to forward, without the leading `?`.
    pub query: &'a [u8],
    /// The client's `Authorization` header value, verbatim.
    pub auth: Option<&'a [u8]>,
    /// The checked line-protocol body.
    pub body: &'a [u8],
}

impl Record {
    /// Borrows this record in the form [`crate::spool::Spool::append`] takes.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            created_ms: self.created_ms,
            kind: self.kind,
            query: &self.query,
            auth: self.auth.as_deref(),
            body: &self.body,
        }
    }
}

/// A decoded record that still borrows the buffer, so that the recovery scan can check
/// records without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub seq: u64,
    pub created_ms: u64,
    pub kind: RecordKind,
    pub query: &'a [u8],
    pub auth: Option<&'a [u8]>,
    pub body: &'a [u8],
}

impl RecordView<'_> {
    pub fn into_record(self) -> Record {
        Record {
            seq: self.seq,
            created_ms: self.created_ms,
            kind: self.kind,
            query: self.query.to_vec(),
            auth: self.auth.map(<[u8]>::to_vec),
            body: self.body.to_vec(),
        }
    }
}

/// The payload length of `rec`, or `None` if it cannot be stored (over
/// [`MAX_PAYLOAD_BYTES`], or a field over 4 GiB).
pub(crate) fn payload_len(rec: &RecordRef<'_>) -> Option<u32> {
    let auth = rec.auth.map_or(0, <[u8]>::len);
    let total = PAYLOAD_FIXED_BYTES
        .checked_add(rec.query.len())?
        .checked_add(auth)?
        .checked_add(rec.body.len())?;
    u32::try_from(total)
        .ok()
        .filter(|&n| n <= MAX_PAYLOAD_BYTES)
}

/// Appends the encoding of `rec` with sequence number `seq` to `out`. The caller has
/// checked the size with [`payload_len`], which bounds every length below `u32::MAX`.
pub(crate) fn encode(seq: u64, rec: &RecordRef<'_>, payload_len: u32, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&rec.created_ms.to_le_bytes());
    out.push(rec.kind.to_byte());
    put_bytes(out, rec.query);
    out.push(u8::from(rec.auth.is_some()));
    put_bytes(out, rec.auth.unwrap_or_default());
    put_bytes(out, rec.body);
    debug_assert_eq!(out.len() - start, HEADER_BYTES + payload_len as usize);
    let crc = checksum(&out[start..start + 6], &out[start + HEADER_BYTES..]);
    out[start + 6..start + HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths were bounded by `payload_len`, so this cast cannot truncate.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn checksum(head: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(head);
    hasher.update(payload);
    hasher.finalize()
}

/// What the first [`HEADER_BYTES`] of a record say, checked as far as they can be
/// without the payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub version: u8,
    pub payload_len: u32,
    pub crc: u32,
}

/// Checks a record header. `Err` is a reason fit for a recovery note.
pub(crate) fn parse_header(head: &[u8; HEADER_BYTES]) -> Result<Header, &'static str> {
    if head[0] != MAGIC {
        return Err("bad magic byte");
    }
    let version = head[1];
    let fixed = match version {
        VERSION => PAYLOAD_FIXED_BYTES,
        VERSION_1 => V1_PAYLOAD_FIXED_BYTES,
        _ => return Err("unknown record version"),
    };
    let payload_len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err("record length over the limit");
    }
    if (payload_len as usize) < fixed {
        return Err("record length too short for its fixed fields");
    }
    let crc = u32::from_le_bytes([head[6], head[7], head[8], head[9]]);
    Ok(Header {
        version,
        payload_len,
        crc,
    })
}

/// Decodes one record from the start of `buf` without copying.
///
/// `Ok(None)`: `buf` holds a valid-looking prefix but not the whole record yet.
/// `Err`: the bytes are not a record (reason for the recovery note).
pub(crate) fn decode(buf: &[u8]) -> Result<Option<(RecordView<'_>, usize)>, &'static str> {
    let Some(head) = buf.first_chunk::<HEADER_BYTES>() else {
        // Reject a bad magic byte even in a short prefix, so a caller feeding bytes
        // one at a time learns about garbage as early as possible.
        return match buf.first() {
            Some(&b) if b != MAGIC => Err("bad magic byte"),
            _ => Ok(None),
        };
    };
    let header = parse_header(head)?;
    let total = HEADER_BYTES + header.payload_len as usize;
    let Some(payload) = buf.get(HEADER_BYTES..total) else {
        return Ok(None);
    };
    if checksum(&head[..6], payload) != header.crc {
        return Err("checksum mismatch");
    }
    let view =
        decode_payload(header.version, payload).ok_or("payload field lengths do not add up")?;
    Ok(Some((view, total)))
}

/// Splits a checksummed payload into its fields; `None` if the lengths disagree with
/// the payload length (possible only for a record written by a buggy or foreign
/// encoder, since the CRC already matched).
fn decode_payload(version: u8, payload: &[u8]) -> Option<RecordView<'_>> {
    let mut rest = payload;
    let seq = take_u64(&mut rest)?;
    let created_ms = take_u64(&mut rest)?;
    let kind = if version == VERSION_1 {
        None
    } else {
        let (&kind, tail) = rest.split_first()?;
        rest = tail;
        Some(RecordKind::from_byte(kind)?)
    };
    let query = take_bytes(&mut rest)?;
    let (kind, query) = match kind {
        Some(kind) => (kind, query),
        None => match query.strip_prefix(V1_STATEMENT_PREFIX) {
            Some(statement) => (RecordKind::Statement, statement),
            None => (RecordKind::Write, query),
        },
    };
    let (&flag, tail) = rest.split_first()?;
    rest = tail;
    let auth = take_bytes(&mut rest)?;
    let auth = match flag {
        0 if auth.is_empty() => None,
        1 => Some(auth),
        _ => return None,
    };
    let body = take_bytes(&mut rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some(RecordView {
        seq,
        created_ms,
        kind,
        query,
        auth,
        body,
    })
}

fn take_u64(rest: &mut &[u8]) -> Option<u64> {
    let (bytes, tail) = rest.split_first_chunk::<8>()?;
    *rest = tail;
    Some(u64::from_le_bytes(*bytes))
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    if tail.len() < len {
        return None;
    }
    let (bytes, tail) = tail.split_at(len);
    *rest = tail;
    Some(bytes)
}

/// Decodes one record from the start of `buf`.
///
/// `Ok(Some((record, used)))`: a whole, checksummed record occupying `buf[..used]`.
/// `Ok(None)`: `buf` is a prefix of a record; more bytes are needed.
/// `Err(reason)`: `buf` does not start with a record. Never panics, whatever `buf` holds,
/// and allocates only for a record it returns.
pub fn read_record(buf: &[u8]) -> Result<Option<(Record, usize)>, &'static str> {
    Ok(decode(buf)?.map(|(view, used)| (view.into_record(), used)))
}
