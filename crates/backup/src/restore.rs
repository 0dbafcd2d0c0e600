//! `restore`: an archive back into place, what it replaces kept aside.
//!
//! The archive is read whole into a staging directory inside the state
//! directory (same filesystem, so the moves are renames) and checked
//! there; only then is anything moved. The state directory's current
//! files go to `<state_dir>/pre-restore/<UTC time>/state/`, the staged
//! ones take their place, and a failure half-way moves everything back.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::check::{check_journal_file, JournalCheck, JournalReport};
use crate::error::BackupError;
use crate::fsx::{self, Bounded, TempDir};
use crate::layout::{self, EntryKind, Layout, AUDIT_KEY_NAME, JOURNAL_NAME, PRE_RESTORE_DIR, STAGING_PREFIX};
use crate::manifest::{Counts, Manifest};
use crate::read::{read_archive, Extract};

/// How a restore is run.
pub struct RestoreOptions<'a> {
    /// The pid of a steward daemon running for this state directory, if
    /// one does (the `steward` binary reads its pidfile): the restore is
    /// then refused, since the daemon keeps writing the journal.
    pub daemon_pid: Option<u32>,
    /// The caller's check of the archived journal (see [`crate::verify`]).
    pub check_journal: JournalCheck<'a>,
}

/// What `restore` did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The archive.
    pub archive: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Files by kind, and bytes, in the archive.
    pub counts: Counts,
    /// The archived journal's checks, when it holds one.
    pub journal: Option<JournalReport>,
    /// The state directory restored.
    pub state_dir: PathBuf,
    /// Files of the state directory put in place.
    pub state_files: usize,
    /// Where what the restore replaced was moved (`<state_dir>/pre-restore/<time>`);
    /// `None` when nothing was replaced (a fresh state directory, the same config).
    pub set_aside_in: Option<PathBuf>,
    /// What was moved there, relative to it (`state/journal.db`, `config/steward.yaml`, ...).
    pub set_aside: Vec<String>,
    /// What became of the config file.
    pub config: ConfigRestore,
    /// What became of the coordination directory.
    pub coordination: CoordinationRestore,
    /// Things to know (a journal that belongs to another directory, ...).
    pub warnings: Vec<String>,
}

/// What a restore did with the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ConfigRestore {
    /// The archive holds no config file.
    NotInArchive,
    /// No config file was named, so the archived one stays in the archive.
    NotRestored {
        /// Its path in the archive.
        archived_as: String,
    },
    /// The config file is already what the archive holds.
    Unchanged {
        /// The config file.
        path: PathBuf,
    },
    /// The archived config was written.
    Written {
        /// The config file.
        path: PathBuf,
        /// Where the file it replaced went, if there was one.
        previous: Option<PathBuf>,
    },
}

/// What a restore did with the coordination directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CoordinationRestore {
    /// The archive holds no file of it.
    NotInArchive,
    /// It was missing or empty, and the archived files were put in it.
    Restored {
        /// The directory.
        dir: PathBuf,
        /// Files written.
        files: usize,
        /// Files that appeared meanwhile under the same name (left as they were).
        existed: usize,
    },
    /// It holds files: a live spool is not rolled back (that would redo
    /// finished work and hide new work), so it was left as it is.
    LeftInPlace {
        /// The directory.
        dir: PathBuf,
        /// Its files in the archive (`coordination/...`, extract by hand if needed).
        files_in_archive: usize,
        /// Entries it holds now.
        entries_now: usize,
    },
}

/// Restores `archive` into `layout`: refuses while the daemon runs, reads
/// and checks the whole archive first (as [`crate::verify`] does: a
/// damaged or truncated archive changes nothing), then moves the state
/// directory's current files aside to `<state_dir>/pre-restore/<UTC
/// time>/state/` (its logs, backups, earlier pre-restore copies and the
/// target lock stay where they are), puts the archived ones in place
/// (`audit.key` with mode 0600; no old `journal.db-wal`/`-shm` stays beside
/// the restored journal), writes the config file if one is named (the old
/// one to `.../config/`), and fills the coordination directory only if it
/// is missing or empty. A fresh (missing or empty) state directory works.
///
/// # Errors
/// [`BackupError::DaemonRunning`]; [`BackupError::BadArchive`] and
/// [`BackupError::BadJournal`] with nothing touched;
/// [`BackupError::RestoreFailed`] when a move failed (what was moved is
/// moved back when it can be, and the message says where things are).
pub fn restore(archive: &Path, layout: &Layout, opts: &RestoreOptions<'_>) -> Result<RestoreReport, BackupError> {
    if let Some(pid) = opts.daemon_pid {
        return Err(BackupError::DaemonRunning { state_dir: layout.state_dir.clone(), pid });
    }
    // The directories this creates, to remove them again if it fails.
    let created: Vec<PathBuf> =
        layout.state_dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).map(Path::to_path_buf).collect();
    fs::create_dir_all(&layout.state_dir).map_err(BackupError::io("create the state directory", &layout.state_dir))?;
    let result = restore_into(archive, layout, opts);
    if result.is_err() {
        for dir in &created {
            // Only while empty: a directory made and used for nothing.
            let _ = fs::remove_dir(dir);
        }
    }
    result
}

fn restore_into(archive: &Path, layout: &Layout, opts: &RestoreOptions<'_>) -> Result<RestoreReport, BackupError> {
    let state_dir = &layout.state_dir;
    let mut staging = TempDir::new(state_dir, STAGING_PREFIX)?;
    let manifest = read_archive(archive, staging.path(), Extract::All)?;
    let staged_state = staging.path().join("state");
    let has_journal = manifest.entries.iter().any(|e| layout::classify(&e.path) == Ok(EntryKind::Journal));
    let journal = if has_journal { Some(check_journal_file(archive, &staged_state.join(JOURNAL_NAME), opts.check_journal)?) } else { None };
    for e in &manifest.entries {
        let path = staging.path().join(&e.path);
        fs::set_permissions(&path, fs::Permissions::from_mode(restored_mode(&e.path, e.mode)))
            .map_err(BackupError::io("set the mode of", &path))?;
    }

    let mut aside = Aside::new(state_dir);
    // A shared journal is loaded into PostgreSQL, not moved into the state directory.
    let staged_tops: BTreeSet<&str> = manifest
        .entries
        .iter()
        .filter_map(|e| e.path.strip_prefix("state/"))
        .filter_map(|r| r.split('/').next())
        .filter(|top| !(*top == JOURNAL_NAME && layout.shared_journal.is_some()))
        .collect();
    let state_files = manifest.entries.iter().filter(|e| e.path.starts_with("state/")).count();
    let mut moves = Moves::default();
    let swapped = swap_state(layout, &staged_state, &staged_tops, &mut aside, &mut moves);
    if let Err(e) = swapped {
        let undone = moves.undo();
        let state = match undone {
            Ok(()) => "nothing was changed (every move was undone)".to_owned(),
            Err(left) => {
                staging.keep();
                format!(
                    "some moves could not be undone ({left}); the previous files are in {}, the archived ones in {}",
                    aside.dir.as_ref().map_or_else(|| "(none)".into(), |d| d.display().to_string()),
                    staging.path().display()
                )
            }
        };
        if let Some(dir) = &aside.dir {
            // Empty when every move was undone.
            let _ = fs::remove_dir(dir.join("state"));
            let _ = fs::remove_dir(dir);
        }
        return Err(BackupError::RestoreFailed {
            archive: archive.to_owned(),
            step: "moving the state files".into(),
            reason: e.to_string(),
            state,
        });
    }
    fsx::sync_dir(state_dir)?;

    let failed_after_state = |step: &str, e: BackupError, aside: &Aside| BackupError::RestoreFailed {
        archive: archive.to_owned(),
        step: step.to_owned(),
        reason: e.to_string(),
        state: format!(
            "the state directory {} was restored{}",
            state_dir.display(),
            aside.dir.as_ref().map(|d| format!(" (its previous files are in {})", d.display())).unwrap_or_default()
        ),
    };
    let config = restore_config(&manifest, staging.path(), layout, &mut aside)
        .map_err(|e| failed_after_state("writing the config file", e, &aside))?;
    let coordination = restore_coordination(&manifest, staging.path(), &layout.coordination_dir)
        .map_err(|e| failed_after_state("filling the coordination directory", e, &aside))?;
    if let (Some(at), true) = (&layout.shared_journal, has_journal) {
        // Last, in one transaction: on failure the database keeps its journal.
        load_shared_journal(at, &staged_state.join(JOURNAL_NAME)).map_err(|e| {
            let mut err = failed_after_state("loading the journal into PostgreSQL", e, &aside);
            if let BackupError::RestoreFailed { state, .. } = &mut err {
                state.push_str("; the PostgreSQL journal was left as it was");
            }
            err
        })?;
    }

    let mut warnings = Vec::new();
    if layout.shared_journal.is_some() && has_journal {
        warnings.push(
            "the journal is shared: other replicas keep an audit.head that names records this restore removed; \
             remove audit.head from their state directories (their next write makes a new one), or `audit verify` there reports the cut"
                .to_owned(),
        );
    }
    if let Some(owner) = journal.as_ref().and_then(|j| j.owner.as_ref()) {
        let here = fs::canonicalize(&layout.coordination_dir).unwrap_or_else(|_| layout.coordination_dir.clone());
        if Path::new(owner) != here {
            warnings.push(format!(
                "the restored journal belongs to the coordination directory {owner}, not {}: steward refuses a journal of another directory (run it with --coordination {owner})",
                here.display()
            ));
        }
    }
    Ok(RestoreReport {
        archive: archive.to_owned(),
        counts: Counts::of(&manifest),
        manifest,
        journal,
        state_dir: state_dir.clone(),
        state_files,
        set_aside_in: aside.dir.clone(),
        set_aside: aside.moved,
        config,
        coordination,
        warnings,
    })
}

/// Replaces every row of the PostgreSQL journal with the archived journal's.
fn load_shared_journal(at: &steward_store::JournalAt, archived: &Path) -> Result<(), BackupError> {
    let fail = |what: &'static str| move |source| BackupError::SharedJournal { journal: at.to_string(), what, source: Box::new(source) };
    let src = steward_store::Journal::open_existing(archived).map_err(fail("read the archived copy of"))?.ok_or_else(|| {
        BackupError::SharedJournal {
            journal: at.to_string(),
            what: "read the archived copy of",
            source: Box::new(steward_store::JournalError::Corrupt {
                id: "journal".into(),
                message: "the archived journal is empty".into(),
            }),
        }
    })?;
    let dst = steward_store::Journal::open_at(at).map_err(fail("open"))?;
    dst.replace_with(&src).map_err(fail("load"))?;
    Ok(())
}

/// The mode a restored file gets: its own without the group's and others'
/// write bits, readable and writable by its owner; the audit key 0600.
fn restored_mode(path: &str, mode: u32) -> u32 {
    if path == format!("state/{AUDIT_KEY_NAME}") {
        0o600
    } else {
        (mode & 0o755) | 0o600
    }
}

/// Moves the state directory's current files aside and the staged ones
/// in, recording each move so that a failure can undo them.
fn swap_state(
    layout: &Layout,
    staged: &Path,
    staged_tops: &BTreeSet<&str>,
    aside: &mut Aside,
    moves: &mut Moves,
) -> Result<(), BackupError> {
    let state_dir = &layout.state_dir;
    let mut current: Vec<OsString> = Vec::new();
    for entry in fs::read_dir(state_dir).map_err(BackupError::io("list", state_dir))? {
        let name = entry.map_err(BackupError::io("list", state_dir))?.file_name();
        if !name.to_str().is_some_and(layout::is_kept_in_place) {
            current.push(name);
        }
    }
    current.sort();
    for name in current {
        let to = aside.path_for("state", &name)?;
        moves.rename(&state_dir.join(&name), &to)?;
        aside.moved.push(format!("state/{}", name.to_string_lossy()));
    }
    // A journal outside the state directory: it and its sidecars too.
    let journal_inside = layout.journal_name_in_state_dir().is_some();
    if !journal_inside {
        for path in std::iter::once(layout.journal.clone()).chain(layout.journal_sidecars()) {
            if fs::symlink_metadata(&path).is_ok() {
                let name = path.file_name().map(OsString::from).unwrap_or_else(|| OsString::from(JOURNAL_NAME));
                let to = aside.path_for("state", &name)?;
                moves.move_file(&path, &to)?;
                aside.moved.push(format!("state/{}", name.to_string_lossy()));
            }
        }
    }
    for top in staged_tops {
        let from = staged.join(top);
        if *top == JOURNAL_NAME && !journal_inside {
            moves.move_file(&from, &layout.journal)?;
        } else {
            let to = match (*top == JOURNAL_NAME, layout.journal_name_in_state_dir()) {
                (true, Some(name)) => state_dir.join(name),
                _ => state_dir.join(top),
            };
            moves.rename(&from, &to)?;
        }
    }
    Ok(())
}

/// Where a restore sets things aside: created on first use.
struct Aside {
    state_dir: PathBuf,
    dir: Option<PathBuf>,
    moved: Vec<String>,
}

impl Aside {
    fn new(state_dir: &Path) -> Self {
        Self { state_dir: state_dir.to_owned(), dir: None, moved: Vec::new() }
    }

    /// `<aside>/<part>/<name>`, creating the directories.
    fn path_for(&mut self, part: &str, name: &std::ffi::OsStr) -> Result<PathBuf, BackupError> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => {
                let parent = self.state_dir.join(PRE_RESTORE_DIR);
                DirBuilder::new().recursive(true).mode(0o700).create(&parent).map_err(BackupError::io("create the directory", &parent))?;
                let stamp = layout::compact_utc(layout::now_ms());
                let mut n = 1;
                let dir = loop {
                    let candidate = parent.join(if n == 1 { stamp.clone() } else { format!("{stamp}-{n}") });
                    match DirBuilder::new().mode(0o700).create(&candidate) {
                        Ok(()) => break candidate,
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                        Err(e) => return Err(BackupError::io("create the directory", &candidate)(e)),
                    }
                };
                self.dir = Some(dir.clone());
                dir
            }
        };
        let sub = dir.join(part);
        DirBuilder::new().recursive(true).mode(0o700).create(&sub).map_err(BackupError::io("create the directory", &sub))?;
        Ok(sub.join(name))
    }
}

/// The moves done so far, to undo them in reverse.
#[derive(Default)]
struct Moves {
    done: Vec<(PathBuf, PathBuf)>,
}

impl Moves {
    fn rename(&mut self, from: &Path, to: &Path) -> Result<(), BackupError> {
        fs::rename(from, to).map_err(BackupError::io("move", from))?;
        self.done.push((from.to_owned(), to.to_owned()));
        Ok(())
    }

    fn move_file(&mut self, from: &Path, to: &Path) -> Result<(), BackupError> {
        fsx::move_file(from, to)?;
        self.done.push((from.to_owned(), to.to_owned()));
        Ok(())
    }

    /// Moves everything back, newest first; what could not be moved back.
    fn undo(&mut self) -> Result<(), String> {
        let mut failed = Vec::new();
        while let Some((from, to)) = self.done.pop() {
            if let Err(e) = fsx::move_file(&to, &from) {
                failed.push(format!("{} -> {}: {e}", to.display(), from.display()));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// Writes the archived config to `layout.config_file`, the old one aside.
fn restore_config(manifest: &Manifest, staging: &Path, layout: &Layout, aside: &mut Aside) -> Result<ConfigRestore, BackupError> {
    let Some(entry) = manifest.entries.iter().find(|e| layout::classify(&e.path) == Ok(EntryKind::Config)) else {
        return Ok(ConfigRestore::NotInArchive);
    };
    let Some(path) = &layout.config_file else {
        return Ok(ConfigRestore::NotRestored { archived_as: entry.path.clone() });
    };
    let staged = staging.join(&entry.path);
    let new = fs::read(&staged).map_err(BackupError::io("read", &staged))?;
    let previous = match fsx::read_bounded(path, crate::create::MAX_FILE_BYTES).map_err(BackupError::io("read", path))? {
        Bounded::Read { bytes, .. } if bytes == new => return Ok(ConfigRestore::Unchanged { path: path.clone() }),
        Bounded::Read { bytes, mode } => {
            let name = path.file_name().map(OsString::from).unwrap_or_else(|| OsString::from("steward.yaml"));
            let to = aside.path_for("config", &name)?;
            let mut f = steward_protocol::create_new_mode(&to, mode & 0o700 | 0o600).map_err(BackupError::io("create", &to))?;
            io::Write::write_all(&mut f, &bytes).and_then(|()| f.sync_all()).map_err(BackupError::io("write", &to))?;
            aside.moved.push(format!("config/{}", name.to_string_lossy()));
            Some(to)
        }
        Bounded::Gone => None,
        Bounded::Refused(reason) => {
            return Err(BackupError::io("replace", path)(io::Error::new(io::ErrorKind::InvalidInput, reason)));
        }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(BackupError::io("create the directory", &dir))?;
    let (tmp, mut f) = fsx::create_temp_file(&dir, ".steward-restore-", ".tmp", restored_mode(&entry.path, entry.mode))?;
    let written = io::Write::write_all(&mut f, &new)
        .and_then(|()| f.sync_all())
        .map_err(BackupError::io("write", &tmp))
        .and_then(|()| fs::rename(&tmp, path).map_err(BackupError::io("rename into", path)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsx::sync_dir(&dir)?;
    Ok(ConfigRestore::Written { path: path.clone(), previous })
}

/// Fills a missing or empty coordination directory with the archived files.
fn restore_coordination(manifest: &Manifest, staging: &Path, dir: &Path) -> Result<CoordinationRestore, BackupError> {
    let entries: Vec<&str> = manifest
        .entries
        .iter()
        .filter(|e| layout::classify(&e.path) == Ok(EntryKind::Coordination))
        .filter_map(|e| e.path.strip_prefix("coordination/"))
        .collect();
    if entries.is_empty() {
        return Ok(CoordinationRestore::NotInArchive);
    }
    let entries_now = match fs::read_dir(dir) {
        Ok(list) => list
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_str().is_none_or(|n| !n.ends_with(".lock") && !steward_protocol::is_temp_name(n)))
            .count(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(BackupError::io("list", dir)(e)),
    };
    if entries_now > 0 {
        return Ok(CoordinationRestore::LeftInPlace { dir: dir.to_owned(), files_in_archive: entries.len(), entries_now });
    }
    fs::create_dir_all(dir).map_err(BackupError::io("create the directory", dir))?;
    let (mut files, mut existed) = (0, 0);
    for name in entries {
        let staged = staging.join("coordination").join(name);
        let bytes = fs::read(&staged).map_err(BackupError::io("read", &staged))?;
        // Never replaces a file that appeared meanwhile; never through a link.
        let dest = dir.join(name);
        match steward_protocol::publish(dir, &dest, &bytes, steward_protocol::Durability::Flushed) {
            Ok(true) => files += 1,
            Ok(false) => existed += 1,
            Err(e) => return Err(BackupError::io("write", &dest)(io::Error::other(e))),
        }
    }
    fsx::sync_dir(dir)?;
    Ok(CoordinationRestore::Restored { dir: dir.to_owned(), files, existed })
}
