//! The opens, reads and writes of the protocol: atomic writes, publishing
//! without replacing, and bounded reads of records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use steward_core::time::UnixMs;

use crate::error::ProtocolError;
use crate::name::temp_prefix;

/// The default bound on any file read from the directory (an item, an
/// agent record, a telemetry record): `coordination.max_item_bytes`.
pub const DEFAULT_MAX_ITEM_BYTES: u64 = 1 << 20;

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

/// Whether a read may follow a symbolic link at the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Never (`O_NOFOLLOW`): what every transition reads, so a planted link
    /// cannot pull a file from elsewhere into the queue.
    Refuse,
    /// Yes: for a link the caller has checked leads to a regular file
    /// inside the directory (the source's listing does).
    Follow,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Tries at creating a temp file before giving up on name collisions.
const TEMP_ATTEMPTS: u32 = 16;

/// 64 unpredictable bits: the process's randomly keyed hasher over a
/// counter and the clock. Temp names carry them, so nobody can plant a
/// file at the next name in advance.
pub fn unpredictable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(TMP_SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// Creates a file that must not exist yet: `O_CREAT | O_EXCL | O_NOFOLLOW`
/// (and `O_CLOEXEC`, as every open of Rust's standard library), mode 0644
/// before the umask. A name that exists, even as a dangling symbolic link,
/// is an error, never followed or reused.
///
/// # Errors
/// The name exists (`AlreadyExists`), or the create failed.
pub fn create_new(path: &Path) -> io::Result<File> {
    create_new_mode(path, 0o644)
}

/// [`create_new`] with `mode` (before the umask), e.g. 0600 for a file of
/// the owner's only.
///
/// # Errors
/// As [`create_new`].
pub fn create_new_mode(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// Opens a file to append to (a log, a ledger), creating it if needed,
/// never through a symbolic link, and only if it is a regular file.
///
/// # Errors
/// The name is a symbolic link or not a regular file, or the open failed.
pub fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().append(true).create(true).mode(0o644).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!("{} is not a regular file", path.display())));
    }
    Ok(file)
}

/// What becomes of the temp file once `finish` has run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Temp {
    /// `finish` renamed it away: remove it only if `finish` failed.
    Renamed,
    /// `finish` linked it: it is a second name, always removed.
    Linked,
}

/// Writes `bytes` to a fresh temp file in `dir` (an unpredictable name,
/// created exclusively, never through a link; another name on a collision)
/// and hands its path to `finish`.
fn via_temp<T>(
    dir: &Path,
    bytes: &[u8],
    durability: Durability,
    temp: Temp,
    mode: u32,
    finish: impl FnOnce(&Path) -> Result<T, ProtocolError>,
) -> Result<T, ProtocolError> {
    let prefix = temp_prefix(std::process::id());
    let mut attempt = 0;
    let (tmp, mut f) = loop {
        let tmp = dir.join(format!("{prefix}{:016x}", unpredictable()));
        match create_new_mode(&tmp, mode) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt + 1 < TEMP_ATTEMPTS => attempt += 1,
            Err(e) => return Err(ProtocolError::io("create", &tmp)(e)),
        }
    };
    let result = (|| {
        f.write_all(bytes).map_err(ProtocolError::io("write", &tmp))?;
        if durability == Durability::Flushed {
            f.sync_all().map_err(ProtocolError::io("sync", &tmp))?;
        }
        drop(f);
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
    via_temp(dir, bytes, durability, Temp::Renamed, 0o644, |tmp| fs::rename(tmp, dest).map_err(ProtocolError::io("rename into", dest)))
}

/// Writes `bytes` to `dest` without ever replacing an existing `dest`: a
/// temp file hard-linked to its final name. `Ok(false)` when `dest`
/// already existed (and was left as it was).
///
/// # Errors
/// Any step of the write failed; the temp file is removed.
pub fn publish(dir: &Path, dest: &Path, bytes: &[u8], durability: Durability) -> Result<bool, ProtocolError> {
    publish_mode(dir, dest, bytes, durability, 0o644)
}

/// [`publish`] with `mode` (before the umask): 0600 for a secret.
///
/// # Errors
/// As [`publish`].
pub fn publish_mode(dir: &Path, dest: &Path, bytes: &[u8], durability: Durability, mode: u32) -> Result<bool, ProtocolError> {
    via_temp(dir, bytes, durability, Temp::Linked, mode, |tmp| match fs::hard_link(tmp, dest) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(ProtocolError::io("link into", dest)(e)),
    })
}

/// Why a record could not be read (a warning, never fatal to a cycle).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// It could not be opened.
    #[error("cannot open: {0}")]
    Open(io::Error),
    /// fstat failed.
    #[error("cannot stat: {0}")]
    Stat(io::Error),
    /// It is not a regular file (a symbolic link where none may be, a
    /// directory, a FIFO, a socket, a device).
    #[error("not a regular file ({0}); ignored")]
    NotRegular(&'static str),
    /// It is larger than the bound.
    #[error("{len} bytes is larger than a record can be ({limit}, coordination.max_item_bytes); ignored")]
    TooLarge {
        /// Its size.
        len: u64,
        /// The bound.
        limit: u64,
    },
    /// A read failed.
    #[error("cannot read: {0}")]
    Read(io::Error),
    /// The filesystem gives no modification time.
    #[error("no modification time: {0}")]
    Mtime(io::Error),
}

/// What kind of non-regular file this is, for messages.
pub fn kind_of(t: &fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a file"
    }
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
/// Only a regular file is read, up to `limit` bytes: the open never blocks
/// (`O_NONBLOCK`, so a FIFO cannot hang it), a symbolic link is refused
/// unless `links` says it was checked, and a directory, FIFO, socket or
/// device is refused after `fstat`. Open, fstat, read, close is all a
/// record costs: it reads exactly the length fstat gave (records are
/// replaced by rename, never grown in place).
///
/// # Errors
/// The record cannot be opened, stat'ed or read, is not a regular file,
/// or is larger than `limit`.
pub fn read_record(dir: &Path, name: &str, buf: &mut Vec<u8>, limit: u64, links: Links) -> Result<Option<UnixMs>, RecordError> {
    let flags = match links {
        Links::Refuse => libc::O_NOFOLLOW | libc::O_NONBLOCK,
        Links::Follow => libc::O_NONBLOCK,
    };
    let mut file = match OpenOptions::new().read(true).custom_flags(flags).open(dir.join(name)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(RecordError::NotRegular("a symbolic link")),
        Err(e) => return Err(RecordError::Open(e)),
    };
    let meta = file.metadata().map_err(RecordError::Stat)?;
    if !meta.is_file() {
        return Err(RecordError::NotRegular(kind_of(&meta.file_type())));
    }
    if meta.len() > limit {
        return Err(RecordError::TooLarge { len: meta.len(), limit });
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
        let d = tmp.path();
        let mut buf = Vec::new();
        fs::write(d.join("agent_1.json"), b"{\"id\":1}").unwrap();
        assert!(read_record(d, "agent_1.json", &mut buf, 1024, Links::Refuse).unwrap().is_some());
        assert_eq!(buf, b"{\"id\":1}");
        assert!(read_record(d, "agent_gone.json", &mut buf, 1024, Links::Refuse).unwrap().is_none());
        let big = File::create(d.join("agent_big.json")).unwrap();
        big.set_len(DEFAULT_MAX_ITEM_BYTES + 1).unwrap();
        let e = read_record(d, "agent_big.json", &mut buf, DEFAULT_MAX_ITEM_BYTES, Links::Refuse).unwrap_err();
        assert!(e.to_string().contains("larger than a record can be"), "{e}");
    }

    /// Regression (issue 9): a FIFO, a directory, a device or a planted
    /// link is refused at once, never read or waited on.
    #[test]
    fn only_regular_files_are_read_and_a_fifo_never_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let fifo = std::ffi::CString::new(d.join("claimed_f.json").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        fs::create_dir(d.join("claimed_d.json")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.join("claimed_z.json")).unwrap();
        fs::write(d.join("secret"), "{}").unwrap();
        std::os::unix::fs::symlink(d.join("secret"), d.join("claimed_s.json")).unwrap();
        let mut buf = Vec::new();
        for (name, kind) in [
            ("claimed_f.json", "FIFO"),
            ("claimed_d.json", "directory"),
            ("claimed_z.json", "symbolic link"),
            ("claimed_s.json", "symbolic link"),
        ] {
            let e = read_record(d, name, &mut buf, 1024, Links::Refuse).unwrap_err();
            assert!(e.to_string().contains(kind), "{name}: {e}");
        }
        let e = read_record(d, "claimed_z.json", &mut buf, 1024, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("device"), "{e}");
    }

    /// Regression (issue 9): temp names are unpredictable and created
    /// exclusively, so a link planted at a name is never written through.
    #[test]
    fn temp_files_are_never_written_through_a_planted_link() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let outside = tempfile::NamedTempFile::new().unwrap();
        fs::write(outside.path(), "keep").unwrap();
        // Links at every name the old scheme would have used next.
        for seq in 0..64 {
            std::os::unix::fs::symlink(outside.path(), d.join(format!("{}{seq}", temp_prefix(std::process::id())))).unwrap();
        }
        write_atomic(d, &d.join("work_1.json"), b"{}", Durability::Visible).unwrap();
        assert_eq!(fs::read_to_string(outside.path()).unwrap(), "keep");
        assert!(fs::symlink_metadata(d.join("work_1.json")).unwrap().is_file(), "the item is a file, not a link out");
        let e = create_new(&d.join(format!("{}0", temp_prefix(std::process::id())))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    }
}
