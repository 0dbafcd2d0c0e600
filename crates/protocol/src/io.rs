//! The opens, reads and writes of the protocol: atomic writes, publishing
//! without replacing, and bounded reads of records.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use steward_core::time::UnixMs;

use crate::error::ProtocolError;
use crate::name::temp_prefix;

/// Files larger than this are not agent, claim or telemetry records.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// How far a write must get before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the rename (fsync): survives a power loss. For rare,
    /// important writes: requeues, dead letters, the fleet registry.
    Flushed,
    /// Complete for every reader at the rename, in the page cache: survives
    /// any process being killed, not a power loss. For per-item and
    /// heartbeat writes, where an fsync each would cost most of the time.
    Visible,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// What becomes of the temp file once `finish` has run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Temp {
    /// `finish` renamed it away: remove it only if `finish` failed.
    Renamed,
    /// `finish` linked it: it is a second name, always removed.
    Linked,
}

/// Writes `bytes` to a fresh temp file in `dir` and hands its path to
/// `finish`.
fn via_temp<T>(
    dir: &Path,
    bytes: &[u8],
    durability: Durability,
    temp: Temp,
    finish: impl FnOnce(&Path) -> Result<T, ProtocolError>,
) -> Result<T, ProtocolError> {
    let tmp = dir.join(format!("{}{}", temp_prefix(std::process::id()), TMP_SEQ.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(ProtocolError::io("create", &tmp))?;
        f.write_all(bytes).map_err(ProtocolError::io("write", &tmp))?;
        if durability == Durability::Flushed {
            f.sync_all().map_err(ProtocolError::io("sync", &tmp))?;
        }
        finish(&tmp)
    })();
    if result.is_err() || temp == Temp::Linked {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `dest` through a temp file in the same directory and
/// a rename, so readers never see half a file.
///
/// # Errors
/// Any step of the write failed; the temp file is removed.
pub fn write_atomic(dir: &Path, dest: &Path, bytes: &[u8], durability: Durability) -> Result<(), ProtocolError> {
    via_temp(dir, bytes, durability, Temp::Renamed, |tmp| fs::rename(tmp, dest).map_err(ProtocolError::io("rename into", dest)))
}

/// Writes `bytes` to `dest` without ever replacing an existing `dest`: a
/// temp file hard-linked to its final name. `Ok(false)` when `dest`
/// already existed (and was left as it was).
///
/// # Errors
/// Any step of the write failed; the temp file is removed.
pub fn publish(dir: &Path, dest: &Path, bytes: &[u8], durability: Durability) -> Result<bool, ProtocolError> {
    via_temp(dir, bytes, durability, Temp::Linked, |tmp| match fs::hard_link(tmp, dest) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(ProtocolError::io("link into", dest)(e)),
    })
}

/// Why a record could not be read (a warning, never fatal to a cycle).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// It could not be opened.
    #[error("cannot open: {0}")]
    Open(io::Error),
    /// fstat failed.
    #[error("cannot stat: {0}")]
    Stat(io::Error),
    /// It is larger than a record can be.
    #[error("{0} bytes is larger than a record can be ({MAX_RECORD_BYTES}); ignored")]
    TooLarge(u64),
    /// A read failed.
    #[error("cannot read: {0}")]
    Read(io::Error),
    /// The filesystem gives no modification time.
    #[error("no modification time: {0}")]
    Mtime(io::Error),
}

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn unix_ms(t: SystemTime) -> UnixMs {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Reads the record `dir/name` into `buf` and returns its modification
/// time; `Ok(None)` when it vanished since the listing (an agent
/// deregistered, a claim completed), which is not a problem.
///
/// Open, fstat, read, close is all a record costs: it reads exactly the
/// length fstat gave (records are replaced by rename, never grown in
/// place), with no size probe and no read for end of file.
///
/// # Errors
/// The record cannot be opened, stat'ed or read, or is larger than
/// [`MAX_RECORD_BYTES`].
pub fn read_record(dir: &Path, name: &str, buf: &mut Vec<u8>) -> Result<Option<UnixMs>, RecordError> {
    let mut file = match File::open(dir.join(name)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RecordError::Open(e)),
    };
    let meta = file.metadata().map_err(RecordError::Stat)?;
    if meta.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge(meta.len()));
    }
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    buf.clear();
    buf.resize(len, 0);
    let mut filled = 0;
    while filled < len {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RecordError::Read(e)),
        }
    }
    buf.truncate(filled);
    let mtime = meta.modified().map(unix_ms).map_err(RecordError::Mtime)?;
    Ok(Some(mtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_never_replaces_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("completed_1.json");
        assert!(publish(tmp.path(), &dest, b"first", Durability::Visible).unwrap());
        assert!(!publish(tmp.path(), &dest, b"second", Durability::Flushed).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"first");
        write_atomic(tmp.path(), &tmp.path().join("work_1.json"), b"{}", Durability::Visible).unwrap();
        let names: Vec<String> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn records_are_read_whole_or_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut buf = Vec::new();
        fs::write(tmp.path().join("agent_1.json"), b"{\"id\":1}").unwrap();
        assert!(read_record(tmp.path(), "agent_1.json", &mut buf).unwrap().is_some());
        assert_eq!(buf, b"{\"id\":1}");
        assert!(read_record(tmp.path(), "agent_gone.json", &mut buf).unwrap().is_none());
        let big = File::create(tmp.path().join("agent_big.json")).unwrap();
        big.set_len(MAX_RECORD_BYTES + 1).unwrap();
        let e = read_record(tmp.path(), "agent_big.json", &mut buf).unwrap_err();
        assert!(e.to_string().contains("larger than a record can be"), "{e}");
    }
}
