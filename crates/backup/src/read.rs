//! Reading an archive as hostile input, and `verify`.
//!
//! One pass over the tar: every entry is checked (a regular file, a path
//! a backup writes, a size under its bound, once), hashed, and written
//! only under a directory of ours; then the manifest is held against what
//! was read, and the end of the archive must be there. Nothing outside the
//! destination directory is ever written, whatever the archive says.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{DirBuilder, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::check::{check_journal_file, JournalCheck, JournalReport};
use crate::error::BackupError;
use crate::fsx::TempDir;
use crate::layout::{self, EntryKind, AUDIT_HEAD_NAME, AUDIT_KEY_NAME, JOURNAL_NAME, MANIFEST_NAME};
use crate::manifest::{Counts, Hashing, Manifest, FORMAT_NAME, FORMAT_VERSION};

/// The largest journal an archive may hold.
pub const MAX_JOURNAL_BYTES: u64 = 64 << 30;

/// The largest other file an archive may hold (what `create` copies).
pub const MAX_ENTRY_BYTES: u64 = crate::create::MAX_FILE_BYTES;

/// The most entries an archive may hold.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The most bytes after the end-of-archive blocks (tar pads to its record
/// size, 10 KiB by default).
const MAX_TRAILER_BYTES: u64 = 1 << 20;

/// What `verify` found: the archive is whole and its journal sound.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The archive.
    pub archive: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Files by kind, and bytes.
    pub counts: Counts,
    /// The journal's checks, when the archive holds one.
    pub journal: Option<JournalReport>,
}

/// Checks an archive without touching any state: every entry is a
/// regular file with a path a backup writes (never absolute, never `..`,
/// never a link), within its size bound; the manifest lists exactly the
/// files there, with their sizes and SHA-256; the archive ends where tar
/// ends; and the journal, extracted to a temp directory (under `TMPDIR`)
/// with the audit key and head, opens, passes SQLite's `PRAGMA
/// integrity_check`, its audit chain verifies, and it passes
/// `check_journal`.
///
/// # Errors
/// [`BackupError::BadArchive`] naming the entry and what is wrong;
/// [`BackupError::BadJournal`]; I/O errors of the temp directory.
pub fn verify(archive: &Path, check_journal: JournalCheck<'_>) -> Result<VerifyReport, BackupError> {
    let scratch = TempDir::new(&std::env::temp_dir(), "steward-verify-")?;
    let manifest = read_archive(archive, scratch.path(), Extract::Checked)?;
    let journal_path = scratch.path().join("state").join(JOURNAL_NAME);
    let journal = if journal_path.exists() { Some(check_journal_file(archive, &journal_path, check_journal)?) } else { None };
    Ok(VerifyReport { archive: archive.to_owned(), counts: Counts::of(&manifest), manifest, journal })
}

/// Which entries `read_archive` writes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extract {
    /// What the journal's checks read: `state/journal.db`,
    /// `state/audit.key` and `state/audit.head` (the rest is hashed and
    /// dropped).
    Checked,
    /// Every entry but the manifest.
    All,
}

/// Reads and checks the whole archive, writing entries under `dest` (a
/// fresh directory of ours) as `extract` says; returns the manifest once
/// everything matches it.
pub(crate) fn read_archive(archive: &Path, dest: &Path, extract: Extract) -> Result<Manifest, BackupError> {
    let bad = |entry: Option<&str>, reason: String| BackupError::bad(archive, entry, reason);
    let file = File::open(archive).map_err(BackupError::io("open", archive))?;
    let meta = file.metadata().map_err(BackupError::io("stat", archive))?;
    if !meta.is_file() {
        return Err(bad(None, format!("not a regular file ({})", steward_protocol::kind_of(&meta.file_type()))));
    }
    let mut tar = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest_bytes: Option<Vec<u8>> = None;
    let mut last: Option<String> = None;
    let after = |last: &Option<String>| last.as_ref().map_or_else(|| "at its start".to_owned(), |l| format!("after {l}"));
    let entries = tar.entries().map_err(|e| bad(None, format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(None, format!("damaged or cut short {}: {e}", after(&last))))?;
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| bad(None, format!("an entry {} has a name that is not UTF-8", after(&last))))?;
        let entry_type = entry.header().entry_type();
        if entry_type.is_symlink() {
            return Err(bad(Some(&name), "a symbolic link; a backup holds regular files only".into()));
        }
        if entry_type.is_hard_link() {
            return Err(bad(Some(&name), "a hard link; a backup holds regular files only".into()));
        }
        if !entry_type.is_file() {
            return Err(bad(Some(&name), format!("a {entry_type:?} entry; a backup holds regular files only")));
        }
        let kind = layout::classify(&name).map_err(|reason| bad(Some(&name), reason))?;
        let size = entry.size();
        let limit = match kind {
            EntryKind::Journal => MAX_JOURNAL_BYTES,
            _ => MAX_ENTRY_BYTES,
        };
        if size > limit {
            return Err(bad(Some(&name), format!("{size} bytes, more than a backup holds ({limit})")));
        }
        if seen.contains_key(&name) || (kind == EntryKind::Manifest && manifest_bytes.is_some()) {
            return Err(bad(Some(&name), "it appears twice".into()));
        }
        if seen.len() >= MAX_ENTRIES {
            return Err(bad(None, format!("more than {MAX_ENTRIES} entries")));
        }
        if kind == EntryKind::Manifest {
            let mut bytes = Vec::new();
            (&mut entry).take(size).read_to_end(&mut bytes).map_err(|e| bad(Some(&name), format!("cannot be read: {e}")))?;
            if bytes.len() as u64 != size {
                return Err(bad(Some(&name), format!("cut short: {} of {size} bytes", bytes.len())));
            }
            manifest_bytes = Some(bytes);
        } else {
            let write_out = extract == Extract::All
                || kind == EntryKind::Journal
                || [AUDIT_KEY_NAME, AUDIT_HEAD_NAME].iter().any(|n| name.strip_prefix("state/") == Some(n));
            let out_path = dest.join(&name);
            let mut out = if write_out { Some(io::BufWriter::with_capacity(1 << 20, create_under(dest, &name)?)) } else { None };
            let mut hashing = Hashing::default();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = match entry.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(bad(Some(&name), format!("cannot be read: {e}"))),
                };
                hashing.update(&buf[..n]);
                if let Some(out) = out.as_mut() {
                    out.write_all(&buf[..n]).map_err(BackupError::io("write", &out_path))?;
                }
            }
            if let Some(out) = out {
                let file = out.into_inner().map_err(|e| BackupError::io("write", &out_path)(e.into_error()))?;
                // What a restore puts in place is on disk before it is.
                if extract == Extract::All {
                    file.sync_all().map_err(BackupError::io("sync", &out_path))?;
                }
            }
            let (got, sha256) = hashing.finish();
            if got != size {
                return Err(bad(Some(&name), format!("cut short: {got} of {size} bytes (the archive is truncated)")));
            }
            seen.insert(name.clone(), (size, sha256));
        }
        last = Some(name);
    }
    let mut rest = tar.into_inner();
    // tar stops at the first zero block it reads, or at the end of the
    // file; a whole archive has that block and at least one more of zeros.
    let mut trailer = Vec::new();
    (&mut rest).take(MAX_TRAILER_BYTES + 1).read_to_end(&mut trailer).map_err(BackupError::io("read", archive))?;
    if trailer.len() < 512 {
        return Err(bad(None, format!("cut short {}: the end-of-archive blocks are missing (the archive is truncated)", after(&last))));
    }
    if trailer.len() as u64 > MAX_TRAILER_BYTES || trailer.iter().any(|b| *b != 0) {
        return Err(bad(None, "data after the end of the archive".into()));
    }
    let Some(manifest_bytes) = manifest_bytes else {
        return Err(bad(None, format!("no {MANIFEST_NAME}: not a steward backup, or cut short")));
    };
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| bad(Some(MANIFEST_NAME), format!("not a backup manifest: {e}")))?;
    check_manifest(archive, &manifest, &seen)?;
    Ok(manifest)
}

/// The manifest lists exactly the files read, with their sizes and hashes.
fn check_manifest(archive: &Path, manifest: &Manifest, seen: &BTreeMap<String, (u64, String)>) -> Result<(), BackupError> {
    let bad = |entry: Option<&str>, reason: String| BackupError::bad(archive, entry, reason);
    if manifest.format != FORMAT_NAME {
        return Err(bad(Some(MANIFEST_NAME), format!("format {:?}, not {FORMAT_NAME:?}", manifest.format)));
    }
    if manifest.format_version > FORMAT_VERSION {
        return Err(bad(
            Some(MANIFEST_NAME),
            format!(
                "format version {} from steward {}; this steward reads up to version {FORMAT_VERSION}: upgrade steward",
                manifest.format_version, manifest.steward_version
            ),
        ));
    }
    let mut listed = BTreeSet::new();
    for e in &manifest.entries {
        match layout::classify(&e.path) {
            Ok(EntryKind::Manifest) => return Err(bad(Some(&e.path), "the manifest lists itself".into())),
            Ok(_) => {}
            Err(reason) => return Err(bad(Some(&e.path), format!("the manifest lists {reason}"))),
        }
        if !listed.insert(e.path.as_str()) {
            return Err(bad(Some(&e.path), "listed twice in the manifest".into()));
        }
        let Some((size, sha256)) = seen.get(&e.path) else {
            return Err(bad(Some(&e.path), "listed in the manifest but missing from the archive".into()));
        };
        if *size != e.size {
            return Err(bad(Some(&e.path), format!("{size} bytes, the manifest says {} (the entry is damaged)", e.size)));
        }
        if *sha256 != e.sha256 {
            return Err(bad(Some(&e.path), format!("its SHA-256 is {sha256}, the manifest says {} (the entry is damaged)", e.sha256)));
        }
    }
    if let Some(extra) = seen.keys().find(|k| !listed.contains(k.as_str())) {
        return Err(bad(Some(extra), "in the archive but not in the manifest".into()));
    }
    Ok(())
}

/// Creates `dest/<name>` (a checked archive path) exclusively, mode 0600,
/// with its directories (0700).
fn create_under(dest: &Path, name: &str) -> Result<File, BackupError> {
    let path = dest.join(name);
    if let Some(parent) = path.parent() {
        DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(BackupError::io("create the directory", parent))?;
    }
    steward_protocol::create_new_mode(&path, 0o600).map_err(BackupError::io("create", &path))
}
