//! What can go wrong with a backup, and whose fault it is.

use std::path::{Path, PathBuf};

/// Backup, verify and restore failures. Each names the file and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file or directory could not be read, written, renamed or synced.
    #[error("cannot {what} {path}")]
    Io {
        /// What was being done ("create", "read", "rename", ...).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// SQLite's online backup of the journal failed.
    #[error("cannot copy the journal {path}: {what}")]
    JournalCopy {
        /// The live journal.
        path: PathBuf,
        /// Which step failed.
        what: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The PostgreSQL journal could not be copied out (backup) or loaded
    /// (restore).
    #[error("cannot {what} the journal {journal}: {source}")]
    SharedJournal {
        /// The journal (its URL without the password, and schema).
        journal: String,
        /// Which step failed.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<steward_store::JournalError>,
    },
    /// The file to write the archive to already exists: a backup never
    /// replaces a file.
    #[error("{path} already exists; a backup never replaces a file (choose another --out or move it away)")]
    Exists {
        /// The archive asked for.
        path: PathBuf,
    },
    /// The archive is damaged, truncated, not a steward backup, or holds
    /// something a backup never does (a link, an absolute path, `..`). No
    /// state was touched.
    #[error("{archive}: {}{reason}", entry.as_ref().map(|e| format!("entry {e}: ")).unwrap_or_default())]
    BadArchive {
        /// The archive.
        archive: PathBuf,
        /// The entry at fault, when one is.
        entry: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// The journal in the archive does not open, fails SQLite's integrity
    /// check, or fails the caller's check (the audit chain).
    #[error("{archive}: the journal in the archive fails its check: {reason}")]
    BadJournal {
        /// The archive.
        archive: PathBuf,
        /// What the check said.
        reason: String,
    },
    /// A restore was asked for while the daemon of that state directory
    /// runs: it would keep writing the journal being replaced.
    #[error("a steward daemon (pid {pid}) runs for {state_dir}; stop it first (`steward stop`), then restore")]
    DaemonRunning {
        /// The state directory.
        state_dir: PathBuf,
        /// The daemon's pid.
        pid: u32,
    },
    /// A restore failed after it had started to move files. What could be
    /// put back was; the message says where the rest is.
    #[error("the restore from {archive} failed while {step}: {reason}; {state}")]
    RestoreFailed {
        /// The archive.
        archive: PathBuf,
        /// What was being done.
        step: String,
        /// Why.
        reason: String,
        /// Where the state stands now (rolled back, or where the files set
        /// aside are).
        state: String,
    },
}

impl BackupError {
    /// Whether the user gave something unusable (a bad archive, an `--out`
    /// that exists): the binary's exit 2. Everything else is a failure of
    /// the system (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::BadArchive { .. } | Self::BadJournal { .. } | Self::Exists { .. })
    }

    /// A closure for `map_err` on an I/O result.
    pub(crate) fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Self::Io { what, path: path.to_owned(), source }
    }

    /// A bad archive, for an entry or the whole file.
    pub(crate) fn bad(archive: &Path, entry: Option<&str>, reason: impl Into<String>) -> Self {
        Self::BadArchive { archive: archive.to_owned(), entry: entry.map(str::to_owned), reason: reason.into() }
    }
}
