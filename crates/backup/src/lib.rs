//! Backups of steward (spec/operations.md, "Backup and recovery";
//! docs/backup.md): [`create`] an archive while the daemon runs,
//! [`verify`] one, [`restore`] one into place.
//!
//! An archive is one tar file: `state/journal.db` (an online copy through
//! SQLite's backup API), the other files of the state directory that a
//! restore needs (`state/fleet.json`, `state/audit.key`, ...), the config
//! file (`config/<name>`), the coordination directory's regular files
//! (`coordination/<name>`), and last `MANIFEST.json`: the format version,
//! when, which steward, and every file's path, size, SHA-256 and mode.
//!
//! An archive is hostile input when it is read: only regular files under
//! those three prefixes, no absolute path, no `..`, no link, each within a
//! size bound; nothing is written outside a directory of ours until the
//! whole archive has matched its manifest and its journal has passed
//! SQLite's integrity check, the audit chain's verification (with the
//! archived key and head) and the caller's check.
//!
//! ```no_run
//! use std::path::Path;
//! use steward_backup::{create, verify, Layout};
//!
//! let layout = Layout::new("/var/lib/steward", "/srv/spool", None);
//! let created = create(&layout, Path::new("/backups/steward.tar"))?;
//! let report = verify(&created.path, &|_journal: &Path| Ok("no audit check".to_owned()))?;
//! assert_eq!(report.counts, created.counts);
//! # Ok::<(), steward_backup::BackupError>(())
//! ```
//!
//! This crate does not print, exit or parse flags; `steward backup` does.

#![warn(missing_docs)]

mod check;
mod create;
mod error;
mod fsx;
mod layout;
mod manifest;
mod read;
mod restore;

pub use check::{JournalCheck, JournalReport};
pub use create::{create, Created, Skipped, MAX_FILE_BYTES};
pub use error::BackupError;
pub use layout::{
    default_archive_path, Layout, AUDIT_HEAD_NAME, AUDIT_KEY_NAME, BACKUPS_DIR, JOURNAL_NAME, MANIFEST_NAME, PRE_RESTORE_DIR,
};
pub use manifest::{Counts, Manifest, ManifestEntry, Source, FORMAT_NAME, FORMAT_VERSION};
pub use read::{verify, VerifyReport, MAX_ENTRIES, MAX_ENTRY_BYTES, MAX_JOURNAL_BYTES};
pub use restore::{restore, ConfigRestore, CoordinationRestore, RestoreOptions, RestoreReport};

#[cfg(test)]
mod tests;
