//! Where steward's state lives, which of it a backup carries, and the
//! archive's names for it.
//!
//! The state directory holds the journal (`journal.db`, with SQLite's
//! `-wal`/`-shm` beside it while it is open), the fleet registry
//! (`fleet.json`), the audit signing key (`audit.key`, mode 0600),
//! the audit chain's head (`audit.head`), reconciliation's
//! `inventory/gaps.json`, and things that are not state:
//! the pidfile, the target lock, logs (`logs/`, `workers/*.log`), backups
//! (`backups/`) and what earlier restores set aside (`pre-restore/`).

use std::path::{Path, PathBuf};

/// The journal's file name in the state directory (and in the archive's
/// `state/`).
pub const JOURNAL_NAME: &str = steward_store::JOURNAL_FILE;

/// The audit signing key's file name in the state directory: restored
/// with mode 0600 whatever the archive says.
pub const AUDIT_KEY_NAME: &str = steward_store::audit::KEY_FILE;

/// The audit chain's head file in the state directory: checked with the
/// journal (a journal that lacks records the head names was truncated).
pub const AUDIT_HEAD_NAME: &str = steward_store::audit::HEAD_FILE;

/// The manifest's name in the archive.
pub const MANIFEST_NAME: &str = "MANIFEST.json";

/// Where a restore sets aside what it replaces, inside the state directory.
pub const PRE_RESTORE_DIR: &str = "pre-restore";

/// Where `steward backup create` writes by default, inside the state
/// directory.
pub const BACKUPS_DIR: &str = "backups";

/// The target lock (`steward_runtime::LOCK_FILE`): never archived, never
/// moved while a restore holds it.
const LOCK_FILE: &str = ".steward.lock";

/// The daemon's pidfile: it names a process of this machine, now.
const PIDFILE: &str = "steward.pid";

/// Top-level entries of the state directory that are not state: never
/// archived, and left where they are by a restore.
const KEPT_IN_PLACE: [&str; 5] = ["logs", "workers", BACKUPS_DIR, PRE_RESTORE_DIR, LOCK_FILE];

/// The start of a restore's staging directory's name inside the state
/// directory.
pub(crate) const STAGING_PREFIX: &str = ".restore-";

/// The start of the temp files and directories `create` makes beside the
/// archive.
pub(crate) const TEMP_PREFIX: &str = ".steward-backup-";

/// What a backup copies and a restore replaces: steward's state directory,
/// its journal, its config file and the coordination directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The state directory (`--state-dir`).
    pub state_dir: PathBuf,
    /// The journal; `<state_dir>/journal.db` for the `steward` binary.
    pub journal: PathBuf,
    /// The coordination directory (`--coordination`).
    pub coordination_dir: PathBuf,
    /// The config file, if one is used.
    pub config_file: Option<PathBuf>,
    /// A journal on PostgreSQL (`state.journal: postgres://…`): backed up
    /// as a SQLite copy of its every row in the archive (read from one
    /// snapshot), and loaded back into PostgreSQL on restore. `journal`
    /// then names no file of steward's.
    pub shared_journal: Option<steward_store::JournalAt>,
}

impl Layout {
    /// The layout of the `steward` binary: the journal in the state
    /// directory.
    pub fn new(state_dir: impl Into<PathBuf>, coordination_dir: impl Into<PathBuf>, config_file: Option<PathBuf>) -> Self {
        let state_dir = state_dir.into();
        Self {
            journal: state_dir.join(JOURNAL_NAME),
            state_dir,
            coordination_dir: coordination_dir.into(),
            config_file,
            shared_journal: None,
        }
    }

    /// The journal where the config keeps it: a file (the default is the
    /// state directory's `journal.db`), or a PostgreSQL database.
    #[must_use]
    pub fn with_journal(mut self, at: steward_store::JournalAt) -> Self {
        match at {
            steward_store::JournalAt::File(p) => {
                self.journal = p;
                self.shared_journal = None;
            }
            shared @ steward_store::JournalAt::Postgres { .. } => self.shared_journal = Some(shared),
        }
        self
    }

    /// The journal's sidecar files (`-wal`, `-shm`, `-journal`): never
    /// mixed with another journal.
    pub(crate) fn journal_sidecars(&self) -> Vec<PathBuf> {
        ["-wal", "-shm", "-journal"]
            .iter()
            .map(|suffix| {
                let mut name = self.journal.as_os_str().to_owned();
                name.push(suffix);
                PathBuf::from(name)
            })
            .collect()
    }

    /// The journal's file name when it lives directly in the state
    /// directory (it is then excluded from the walk of that directory).
    pub(crate) fn journal_name_in_state_dir(&self) -> Option<String> {
        (self.journal.parent() == Some(self.state_dir.as_path()))
            .then(|| self.journal.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .flatten()
    }
}

/// The default archive for a state directory and a time:
/// `<state_dir>/backups/steward-backup-<UTC yyyymmddThhmmssZ>.tar`.
pub fn default_archive_path(state_dir: &Path, now: steward_core::time::UnixMs) -> PathBuf {
    state_dir.join(BACKUPS_DIR).join(format!("steward-backup-{}.tar", compact_utc(now)))
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> steward_core::time::UnixMs {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `20260102T030405Z`: a UTC time for file names.
pub(crate) fn compact_utc(now: steward_core::time::UnixMs) -> String {
    // "2026-01-02T03:04:05.678Z" without the separators and the milliseconds.
    let full = steward_core::time::format_rfc3339(now);
    let seconds = full.split('.').next().unwrap_or(&full);
    seconds.chars().filter(|c| *c != '-' && *c != ':').collect::<String>() + "Z"
}

/// Whether a top-level name of the state directory is state a backup
/// carries (given that the journal is copied on its own).
pub(crate) fn is_state_name(name: &str, journal_name: Option<&str>) -> bool {
    if KEPT_IN_PLACE.contains(&name) || name == PIDFILE {
        return false;
    }
    if let Some(journal) = journal_name {
        if name == journal || ["-wal", "-shm", "-journal"].iter().any(|s| name.strip_prefix(journal) == Some(s)) {
            return false;
        }
    }
    is_state_file_name(name)
}

/// Whether a file name anywhere under the state directory can be state:
/// not a lock, a log, a temp file, or a backup.
pub(crate) fn is_state_file_name(name: &str) -> bool {
    !(name.ends_with(".lock")
        || name.ends_with(".log")
        || name.ends_with(".tmp")
        || name.starts_with(steward_protocol::TEMP_PREFIX)
        || name.starts_with(TEMP_PREFIX)
        || name.starts_with(STAGING_PREFIX)
        || name.starts_with("steward-backup-"))
}

/// Whether a top-level name of the state directory stays where it is
/// during a restore (not state, or the restore's own staging).
pub(crate) fn is_kept_in_place(name: &str) -> bool {
    KEPT_IN_PLACE.contains(&name) || name.starts_with(STAGING_PREFIX)
}

/// What an archive entry is, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// `MANIFEST.json`.
    Manifest,
    /// `state/journal.db`.
    Journal,
    /// `state/...`: another file of the state directory.
    State,
    /// `config/<name>`.
    Config,
    /// `coordination/<name>`.
    Coordination,
}

/// Checks an archive path (hostile: it comes from a file anyone may have
/// written) and says what it is. A path is relative, `/`-separated UTF-8,
/// with no empty, `.` or `..` component, under `state/` (a name a backup
/// carries), `config/` or `coordination/` (one level).
pub(crate) fn classify(path: &str) -> Result<EntryKind, String> {
    if path == MANIFEST_NAME {
        return Ok(EntryKind::Manifest);
    }
    if path.starts_with('/') {
        return Err("an absolute path".into());
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.contains(&"..") {
        return Err("a path that climbs out with `..`".into());
    }
    if parts.iter().any(|p| p.is_empty() || *p == "." || p.contains('\0') || p.contains('\\')) {
        return Err("not a plain relative path".into());
    }
    if parts.len() > MAX_DEPTH + 1 {
        return Err(format!("deeper than {MAX_DEPTH} directories"));
    }
    match parts.as_slice() {
        ["state", name] if *name == JOURNAL_NAME => Ok(EntryKind::Journal),
        ["state", top, rest @ ..] if is_state_name(top, Some(JOURNAL_NAME)) && rest.iter().all(|n| is_state_file_name(n)) => {
            Ok(EntryKind::State)
        }
        ["state", ..] => Err("not a file of the state directory that a backup carries".into()),
        ["config", _] => Ok(EntryKind::Config),
        ["coordination", _] => Ok(EntryKind::Coordination),
        _ => Err("not under state/, config/ or coordination/".into()),
    }
}

/// How deep a backup walks the state directory.
pub(crate) const MAX_DEPTH: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_checked() {
        assert_eq!(classify("MANIFEST.json"), Ok(EntryKind::Manifest));
        assert_eq!(classify("state/journal.db"), Ok(EntryKind::Journal));
        assert_eq!(classify("state/audit.key"), Ok(EntryKind::State));
        assert_eq!(classify("state/inventory/gaps.json"), Ok(EntryKind::State));
        assert_eq!(classify("coordination/work_1.json"), Ok(EntryKind::Coordination));
        assert_eq!(classify("config/steward.yaml"), Ok(EntryKind::Config));
        for bad in [
            "../escape",
            "state/../../x",
            "/etc/passwd",
            "state//x",
            "state/./x",
            "coordination/a/b",
            "other/x",
            "state/logs/steward.log",
            "state/journal.db-wal",
            "state/steward.pid",
            "state/.steward.lock",
            "state/pre-restore/x/state/journal.db",
        ] {
            assert!(classify(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn what_the_state_directory_holds_that_counts() {
        let j = Some("journal.db");
        for name in ["fleet.json", "audit.key", "inventory"] {
            assert!(is_state_name(name, j), "{name}");
        }
        for name in ["journal.db", "journal.db-wal", "journal.db-shm", "steward.pid", ".steward.lock", "logs", "workers", "backups"] {
            assert!(!is_state_name(name, j), "{name}");
        }
        assert_eq!(compact_utc(1_767_322_245_678), "20260102T025045Z");
    }
}
