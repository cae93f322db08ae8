//! The spool's files: segment names, the directory (created and synced durably, locked
//! against a second relay), and buffered segment reads.

use super::*;

/// Buffered reads from one segment, tracking the file position so that reads that
/// follow each other (the usual replay) never seek.
#[derive(Debug)]
pub(super) struct SegmentReader {
    pub(super) id: u64,
    /// Offset in the file of the next byte `file` yields.
    pub(super) pos: u64,
    pub(super) file: BufReader<File>,
}

impl SegmentReader {
    pub(super) fn seek_to(&mut self, offset: u64) -> io::Result<()> {
        if offset != self.pos {
            // Both fit in i64: segment offsets are bounded by the file size.
            self.file.seek_relative(offset as i64 - self.pos as i64)?;
            self.pos = offset;
        }
        Ok(())
    }

    pub(super) fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        match self.file.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // The position is unknown after a failed read: force a fresh open.
                self.pos = u64::MAX;
                Err(e)
            }
        }
    }
}

pub(super) fn segment_name(id: u64) -> String {
    format!("{id:0width$}{SEGMENT_SUFFIX}", width = SEGMENT_ID_DIGITS)
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment ids in `dir`, ascending. Other files are left alone.
pub(super) fn list_segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Creates `dir` (0700) and makes the new directory entries durable, so the first
/// segment's fsync is not undone by a lost directory.
pub(super) fn create_dir_durably(dir: &Path) -> Result<(), SpoolError> {
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .collect();
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io_err(dir))?;
    for created in missing {
        let parent = match created.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(parent)?;
    }
    Ok(())
}

/// Replace `path` with `bytes`: a temporary file beside it, fsynced, renamed over it,
/// and the directory fsynced so the rename itself survives a crash. A crash leaves the
/// old contents or the new, never half of either. (Small state files: the dropped
/// ranges, a rebuild's progress.)
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f = File::create(&tmp)?;
    std::io::Write::write_all(&mut f, bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    // Not every platform can open a directory to sync it; the rename is done anyway.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

pub(super) fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// The reader for segment `id`, reopened if it is on another segment or lost its place.
pub(super) fn open_reader<'a>(
    slot: &'a mut Option<SegmentReader>,
    path: &Path,
    id: u64,
) -> Result<&'a mut SegmentReader, SpoolError> {
    let reader = match slot.take() {
        Some(reader) if reader.id == id && reader.pos != u64::MAX => reader,
        _ => SegmentReader {
            id,
            pos: 0,
            file: BufReader::with_capacity(
                READ_BUFFER_BYTES,
                File::open(path).map_err(io_err(path))?,
            ),
        },
    };
    Ok(slot.insert(reader))
}
