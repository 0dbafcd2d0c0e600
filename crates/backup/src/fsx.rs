//! The file operations backups need: exclusive creates that never follow a
//! link, bounded reads of files that may be anything, private temp
//! directories removed on drop, and publishing without replacing.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::BackupError;

/// Tries at a fresh name before giving up on collisions.
const ATTEMPTS: u32 = 16;

/// 64 unpredictable bits, hex (the claim protocol's temp names' source):
/// nobody can plant a file at the next temp name in advance.
pub(crate) fn unpredictable() -> String {
    format!("{:016x}", steward_protocol::unpredictable())
}

/// A new file `<dir>/<prefix><random><suffix>`, created exclusively with
/// `mode`.
pub(crate) fn create_temp_file(dir: &Path, prefix: &str, suffix: &str, mode: u32) -> Result<(PathBuf, File), BackupError> {
    let mut attempt = 0;
    loop {
        let path = dir.join(format!("{prefix}{}{suffix}", unpredictable()));
        match steward_protocol::create_new_mode(&path, mode) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt + 1 < ATTEMPTS => attempt += 1,
            Err(e) => return Err(BackupError::io("create", &path)(e)),
        }
    }
}

/// A directory of ours (mode 0700), removed with everything in it when
/// dropped unless [`TempDir::keep`] was called.
pub(crate) struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Creates `<parent>/<prefix><random>`.
    pub(crate) fn new(parent: &Path, prefix: &str) -> Result<Self, BackupError> {
        let mut attempt = 0;
        loop {
            let path = parent.join(format!("{prefix}{}", unpredictable()));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self { path, keep: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt + 1 < ATTEMPTS => attempt += 1,
                Err(e) => return Err(BackupError::io("create the directory", &path)(e)),
            }
        }
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves it in place when dropped (it holds what a failed restore
    /// could not put back).
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// What a bounded read of a file found.
pub(crate) enum Bounded {
    /// A regular file: its bytes and permission bits.
    Read {
        /// Its contents.
        bytes: Vec<u8>,
        /// Its permission bits.
        mode: u32,
    },
    /// It vanished since it was listed.
    Gone,
    /// Not read: not a regular file, or larger than the bound.
    Refused(String),
}

/// Reads `path` only if it is a regular file of at most `limit` bytes:
/// the open never follows a link (`O_NOFOLLOW`) and never blocks
/// (`O_NONBLOCK`, so a FIFO cannot hang it), and fstat decides the rest.
/// A file that grows while it is read is cut at the length fstat gave.
///
/// # Errors
/// The file exists but cannot be opened or read.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> io::Result<Bounded> {
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Bounded::Gone),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(Bounded::Refused("a symbolic link".into())),
        // Opening a socket gives ENXIO.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(Bounded::Refused("not a regular file".into())),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Bounded::Refused(format!("not a regular file ({})", steward_protocol::kind_of(&meta.file_type()))));
    }
    if meta.len() > limit {
        return Ok(Bounded::Refused(format!("{} bytes, more than the {limit} a backup copies of one file", meta.len())));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(meta.len()).read_to_end(&mut bytes)?;
    Ok(Bounded::Read { bytes, mode: meta.mode() & 0o7777 })
}

/// fsyncs a directory, so a rename into it survives a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(BackupError::io("sync the directory", dir))
}

/// Gives the finished temp file `tmp` its final name `dest`, never
/// replacing a file there: a hard link then the temp name's removal (a
/// rename where the filesystem has no hard links).
pub(crate) fn publish_no_replace(tmp: &Path, dest: &Path) -> Result<(), BackupError> {
    match fs::hard_link(tmp, dest) {
        Ok(()) => fs::remove_file(tmp).map_err(BackupError::io("remove the temp file", tmp)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(BackupError::Exists { path: dest.to_owned() }),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP | libc::EXDEV | libc::EMLINK)) => {
            if fs::symlink_metadata(dest).is_ok() {
                return Err(BackupError::Exists { path: dest.to_owned() });
            }
            fs::rename(tmp, dest).map_err(BackupError::io("rename into", dest))
        }
        Err(e) => Err(BackupError::io("link into", dest)(e)),
    }
}

/// Moves `from` to `to`; across filesystems, copies (a file) then removes.
pub(crate) fn move_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let dir = to.parent().unwrap_or(Path::new("."));
            let (tmp, mut out) = create_temp_file(dir, ".steward-restore-", ".tmp", 0o600)?;
            let copied = File::open(from)
                .and_then(|mut src| io::copy(&mut src, &mut out))
                .and_then(|_| out.sync_all())
                .map_err(BackupError::io("copy into", &tmp))
                .and_then(|()| fs::rename(&tmp, to).map_err(BackupError::io("rename into", to)));
            if copied.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            copied?;
            fs::remove_file(from).map_err(BackupError::io("remove", from))
        }
        Err(e) => Err(BackupError::io("rename into", to)(e)),
    }
}
