//! One executor per target: an exclusive file lock, held as long as the
//! value lives.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
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

impl TargetLock {
    /// Takes the lock `dir/.steward.lock` (creating `dir` if needed) and
    /// writes the holder's pid into it for the next one's message.
    /// `target` names what is guarded, for that message.
    ///
    /// # Errors
    /// [`RuntimeError::LockBusy`] when another process holds it; I/O errors otherwise.
    pub fn acquire(dir: &Path, target: &str) -> Result<Self, RuntimeError> {
        fs::create_dir_all(dir).map_err(RuntimeError::io("creating", dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(RuntimeError::io("opening the lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                let _ = file.read_to_string(&mut who);
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
        TargetLock::acquire(tmp.path(), "t").unwrap();
    }
}
