//! One executor per target: an exclusive file lock, held as long as the
//! value lives.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use steward_core::time::format_rfc3339;

use crate::clock::now_ms;
use crate::error::RuntimeError;

/// The lock file's name in the directory it guards.
pub const LOCK_FILE: &str = ".steward.lock";

/// An exclusive lock on a target; released when dropped (or when the
/// process dies, so a crash never leaves a stale lock).
#[derive(Debug)]
pub struct TargetLock {
    _file: File,
}

/// The most a lock file of ours holds (`<pid> <timestamp>\n`, ~40 bytes).
const MAX_LOCK_FILE: u64 = 256;

impl TargetLock {
    /// Takes the lock `dir/.steward.lock` (creating `dir` if needed) and
    /// writes the holder's pid into it for the next one's message.
    /// `target` names what is guarded, for that message.
    ///
    /// The directory may be shared with people steward should not trust,
    /// so the lock file is never opened through a symbolic link, and a file
    /// steward did not create is written only if it is what a lock file of
    /// steward's looks like (a small regular file with one name, holding a
    /// pid and a time, or nothing). Anything else is refused, untouched.
    ///
    /// # Errors
    /// [`RuntimeError::LockBusy`] when another process holds it; a lock file
    /// that is not one; I/O errors.
    pub fn acquire(dir: &Path, target: &str) -> Result<Self, RuntimeError> {
        fs::create_dir_all(dir).map_err(RuntimeError::io("creating", dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = match steward_protocol::create_new(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => open_existing(&path)?,
            Err(e) => return Err(RuntimeError::io("creating the lock file", &path)(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                let _ = (&mut file).take(MAX_LOCK_FILE).read_to_string(&mut who);
                let holder = who.split_whitespace().next().map(|pid| format!(" (pid {pid})")).unwrap_or_default();
                return Err(RuntimeError::LockBusy { holder, target: target.to_owned() });
            }
            Err(fs::TryLockError::Error(e)) => return Err(RuntimeError::io("locking", &path)(e)),
        }
        // Say who holds it, for the message the next one prints.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{} {}", std::process::id(), format_rfc3339(now_ms()));
        Ok(Self { _file: file })
    }
}

/// Opens a lock file that already exists, if it is one of steward's.
fn open_existing(path: &Path) -> Result<File, RuntimeError> {
    let refuse = |why: String| RuntimeError::NotALockFile { path: path.to_owned(), why };
    let mut file = match OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refuse("it is a symbolic link".into())),
        Err(e) => return Err(RuntimeError::io("opening the lock file", path)(e)),
    };
    let meta = file.metadata().map_err(RuntimeError::io("reading the lock file", path))?;
    if !meta.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    if meta.nlink() != 1 {
        return Err(refuse(format!("it has {} names (a hard link to another file?)", meta.nlink())));
    }
    if meta.len() > MAX_LOCK_FILE {
        return Err(refuse(format!("it holds {} bytes, more than a lock file does", meta.len())));
    }
    let mut text = String::new();
    (&mut file).take(MAX_LOCK_FILE).read_to_string(&mut text).map_err(|_| refuse("it is not text".into()))?;
    let mut words = text.split_whitespace();
    let looks_ours = match (words.next(), words.next(), words.next()) {
        (None, _, _) => true,
        (Some(pid), Some(_time), None) => pid.parse::<u32>().is_ok(),
        _ => false,
    };
    if !looks_ours {
        return Err(refuse("its content is not a pid and a time".into()));
    }
    file.rewind().map_err(RuntimeError::io("reading the lock file", path))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_target_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = TargetLock::acquire(tmp.path(), "t").unwrap();
        let e = TargetLock::acquire(tmp.path(), "t").unwrap_err();
        assert!(matches!(&e, RuntimeError::LockBusy { holder, .. } if holder.contains(&std::process::id().to_string())), "{e}");
        drop(first);
        // Another test of this binary forking a child at that moment holds a
        // copy of the descriptor until the child execs (the lock is the open
        // file's): give it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match TargetLock::acquire(tmp.path(), "t") {
                Ok(_) => break,
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(matches!(e, RuntimeError::LockBusy { .. }), "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("the lock stayed busy after it was dropped: {e}"),
            }
        }
    }

    /// Regression (issue 9): a lock file planted as a link to the journal
    /// (or any file) is refused and the file left as it was; so is a hard
    /// link, and a file that does not look like a lock file.
    #[test]
    fn a_planted_lock_file_is_refused_and_left_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, state) = (tmp.path().join("c"), tmp.path().join("state"));
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(&state).unwrap();
        let journal = state.join("journal.db");
        fs::write(&journal, "SQLite format 3\0 precious").unwrap();
        std::os::unix::fs::symlink(&journal, dir.join(LOCK_FILE)).unwrap();
        let e = TargetLock::acquire(&dir, "c").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read(&journal).unwrap(), b"SQLite format 3\0 precious");
        fs::remove_file(dir.join(LOCK_FILE)).unwrap();
        fs::hard_link(&journal, dir.join(LOCK_FILE)).unwrap();
        assert!(TargetLock::acquire(&dir, "c").unwrap_err().to_string().contains("names"));
        assert_eq!(fs::read(&journal).unwrap(), b"SQLite format 3\0 precious");
        fs::remove_file(dir.join(LOCK_FILE)).unwrap();
        fs::write(dir.join(LOCK_FILE), "my notes").unwrap();
        assert!(TargetLock::acquire(&dir, "c").unwrap_err().to_string().contains("not a pid"));
        assert_eq!(fs::read_to_string(dir.join(LOCK_FILE)).unwrap(), "my notes");
        // A lock file of ours, left by a process that died, is reused.
        fs::write(dir.join(LOCK_FILE), "12345 2026-01-01T00:00:00.000Z\n").unwrap();
        drop(TargetLock::acquire(&dir, "c").unwrap());
        assert!(fs::read_to_string(dir.join(LOCK_FILE)).unwrap().starts_with(&std::process::id().to_string()));
    }
}
