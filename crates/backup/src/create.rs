//! `create`: an online backup into one tar archive.

use std::fs::{self, DirBuilder, File};
use std::io::{self, BufWriter, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::error::BackupError;
use crate::fsx::{self, Bounded, TempDir};
use crate::layout::{self, Layout, JOURNAL_NAME, MANIFEST_NAME, MAX_DEPTH, TEMP_PREFIX};
use crate::manifest::{self, Counts, Hashing, Manifest, ManifestEntry, Source, FORMAT_NAME, FORMAT_VERSION};

/// The most a backup copies of one file of the coordination directory, the
/// state directory (but the journal) or the config: a larger one is
/// skipped with a warning.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// How long the journal's copy waits for SQLite's locks before it gives up.
const JOURNAL_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// What `create` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// The archive.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// How many files of each kind, and bytes.
    pub counts: Counts,
    /// Files left out, each with the reason.
    pub skipped: Vec<Skipped>,
}

/// A file a backup left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why: a symbolic link, a FIFO, too large, not UTF-8, ...
    pub reason: String,
}

/// Writes a backup of `layout` to `out`: the journal copied with SQLite's
/// online backup API (consistent while the daemon keeps writing), the
/// other state files, the config file and the coordination directory's
/// regular files, then `MANIFEST.json` with every file's size and SHA-256.
///
/// The archive is written to a temp file beside `out` (created with
/// `O_EXCL | O_NOFOLLOW`, mode 0600: it holds the audit key), synced, and
/// given its name only when complete; `out` is never replaced. The
/// coordination directory is read as hostile: only regular files with
/// UTF-8 names, never through a link, never blocking on a FIFO, at most
/// [`MAX_FILE_BYTES`] each; anything else is reported in
/// [`Created::skipped`].
///
/// # Errors
/// `out` exists ([`BackupError::Exists`]); the journal cannot be copied; a
/// state file or the config cannot be read; the archive cannot be written.
pub fn create(layout: &Layout, out: &Path) -> Result<Created, BackupError> {
    let now = steward_core::time::format_rfc3339(layout::now_ms());
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if fs::symlink_metadata(out).is_ok() {
        return Err(BackupError::Exists { path: out.to_owned() });
    }
    // Backups hold the audit key: their directory is the owner's only.
    DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(BackupError::io("create the directory", &dir))?;
    let work = TempDir::new(&dir, TEMP_PREFIX)?;
    let mut skipped = Vec::new();
    // The state files first, the journal after: the audit head file is
    // written after each commit, so read before the journal's copy it never
    // names a record the copy lacks.
    let state_files = read_state_dir(layout, &mut skipped)?;
    let journal_copy = if let Some(at) = &layout.shared_journal {
        let copy = work.path().join(JOURNAL_NAME);
        match copy_shared_journal(at, &copy)? {
            true => Some(copy),
            false => {
                skipped.push(Skipped { path: PathBuf::from(at.to_string()), reason: "no journal yet (steward has not run here)".into() });
                None
            }
        }
    } else if layout.journal.exists() {
        let copy = work.path().join(JOURNAL_NAME);
        copy_journal(&layout.journal, &copy)?;
        Some(copy)
    } else {
        skipped.push(Skipped { path: layout.journal.clone(), reason: "no journal yet (steward has not run here)".into() });
        None
    };

    let (tmp, file) = fsx::create_temp_file(&dir, TEMP_PREFIX, ".tar.tmp", 0o600)?;
    let written = (|| {
        let mut writer = ArchiveWriter::new(file, &tmp);
        if let Some(copy) = &journal_copy {
            // The live journal's mode, not the copy's (owner only for a shared one).
            let mode = match &layout.shared_journal {
                Some(_) => 0o600,
                None => fs::metadata(&layout.journal).map_or(0o600, |m| std::os::unix::fs::PermissionsExt::mode(&m.permissions())),
            };
            writer.append_file(&format!("state/{JOURNAL_NAME}"), copy, mode)?;
        }
        for (rel, bytes, mode) in &state_files {
            writer.append_bytes(&format!("state/{rel}"), bytes, *mode)?;
        }
        if let Some(config) = &layout.config_file {
            append_config(&mut writer, config)?;
        }
        append_coordination(&mut writer, &layout.coordination_dir, &mut skipped)?;
        let manifest = Manifest {
            format: FORMAT_NAME.to_owned(),
            format_version: FORMAT_VERSION,
            created_at: now,
            steward_version: env!("CARGO_PKG_VERSION").to_owned(),
            source: Source {
                state_dir: layout.state_dir.display().to_string(),
                coordination_dir: layout.coordination_dir.display().to_string(),
                config_file: layout.config_file.as_ref().map(|p| p.display().to_string()),
            },
            entries: std::mem::take(&mut writer.entries),
        };
        let json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::io("encode the manifest for", &tmp)(io::Error::other(e)))?;
        writer.append_bytes_unlisted(MANIFEST_NAME, &json, 0o644)?;
        writer.finish()?;
        let counts = Counts::of(&manifest);
        Ok((manifest, counts))
    })();
    let (manifest, counts) = match written {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = fsx::publish_no_replace(&tmp, out) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsx::sync_dir(&dir)?;
    Ok(Created { path: out.to_owned(), manifest, counts, skipped })
}

/// Copies a PostgreSQL journal, every row from one snapshot, into a new
/// SQLite journal at `copy` (the archive's journal, checked like any).
/// `false` when the database holds no journal yet.
fn copy_shared_journal(at: &steward_store::JournalAt, copy: &Path) -> Result<bool, BackupError> {
    let fail = |what: &'static str| move |source| BackupError::SharedJournal { journal: at.to_string(), what, source: Box::new(source) };
    let Some(src) = steward_store::Journal::open_existing_at(at).map_err(fail("open"))? else { return Ok(false) };
    let dst = steward_store::Journal::open(copy).map_err(fail("create the copy of"))?;
    dst.replace_with(&src).map_err(fail("copy"))?;
    drop(dst);
    // The copy stands alone: no -wal beside it in the archive.
    let c =
        Connection::open(copy).map_err(|source| BackupError::JournalCopy { path: copy.to_owned(), what: "reopening the copy", source })?;
    c.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0)).map_err(|source| BackupError::JournalCopy {
        path: copy.to_owned(),
        what: "leaving WAL mode in the copy",
        source,
    })?;
    Ok(true)
}

/// Copies the live journal to `copy` with SQLite's online backup API, in
/// one step: one read transaction, so the copy is one consistent moment of
/// the journal, and in WAL mode the daemon's writes go on meanwhile. The
/// copy is then taken out of WAL mode, so it is one self-contained file.
fn copy_journal(journal: &Path, copy: &Path) -> Result<(), BackupError> {
    let fail = |what: &'static str| move |source| BackupError::JournalCopy { path: journal.to_owned(), what, source };
    let src = Connection::open_with_flags(journal, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(fail("opening it"))?;
    src.busy_timeout(Duration::from_secs(5)).map_err(fail("setting the busy timeout"))?;
    let mut dst = Connection::open(copy).map_err(fail("creating the copy"))?;
    {
        let backup = Backup::new(&src, &mut dst).map_err(fail("starting the backup"))?;
        let deadline = Instant::now() + JOURNAL_BUSY_TIMEOUT;
        loop {
            match backup.step(-1).map_err(fail("copying pages"))? {
                StepResult::Done => break,
                // More cannot follow a step of every page; Busy and Locked pass.
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    return Err(BackupError::JournalCopy {
                        path: journal.to_owned(),
                        what: "copying pages",
                        source: rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some(format!("still locked after {} s", JOURNAL_BUSY_TIMEOUT.as_secs())),
                        ),
                    })
                }
            }
        }
    }
    dst.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0)).map_err(fail("leaving WAL mode in the copy"))?;
    dst.close().map_err(|(_, e)| fail("closing the copy")(e))?;
    drop(src);
    Ok(())
}

/// A tar archive being written, with the manifest's entries so far.
struct ArchiveWriter<'a> {
    builder: tar::Builder<BufWriter<File>>,
    path: &'a Path,
    entries: Vec<ManifestEntry>,
    mtime: u64,
}

impl<'a> ArchiveWriter<'a> {
    fn new(file: File, path: &'a Path) -> Self {
        let mtime = u64::try_from(layout::now_ms() / 1000).unwrap_or(0);
        Self { builder: tar::Builder::new(BufWriter::with_capacity(1 << 20, file)), path, entries: Vec::new(), mtime }
    }

    fn header(&self, size: u64, mode: u32) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(mode & 0o777);
        header.set_mtime(self.mtime);
        header
    }

    /// A file we made (the journal's copy), streamed and hashed on the way.
    fn append_file(&mut self, name: &str, path: &Path, mode: u32) -> Result<(), BackupError> {
        let file = File::open(path).map_err(BackupError::io("open", path))?;
        let size = file.metadata().map_err(BackupError::io("stat", path))?.len();
        let mut reader = HashingReader { inner: file.take(size), hashing: Hashing::default() };
        let mut header = self.header(size, mode);
        self.builder.append_data(&mut header, name, &mut reader).map_err(BackupError::io("write", self.path))?;
        let (len, sha256) = reader.hashing.finish();
        if len != size {
            return Err(BackupError::io("read", path)(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was copied")));
        }
        self.entries.push(ManifestEntry { path: name.to_owned(), size, sha256, mode: mode & 0o777 });
        Ok(())
    }

    /// Bytes read whole beforehand, listed in the manifest.
    fn append_bytes(&mut self, name: &str, bytes: &[u8], mode: u32) -> Result<(), BackupError> {
        self.append_bytes_unlisted(name, bytes, mode)?;
        let (size, sha256) = manifest::sha256(bytes);
        self.entries.push(ManifestEntry { path: name.to_owned(), size, sha256, mode: mode & 0o777 });
        Ok(())
    }

    fn append_bytes_unlisted(&mut self, name: &str, bytes: &[u8], mode: u32) -> Result<(), BackupError> {
        let mut header = self.header(bytes.len() as u64, mode);
        self.builder.append_data(&mut header, name, bytes).map_err(BackupError::io("write", self.path))
    }

    /// The end-of-archive blocks, then everything on disk.
    fn finish(self) -> Result<(), BackupError> {
        let path = self.path;
        let writer = self.builder.into_inner().map_err(BackupError::io("write", path))?;
        let file = writer.into_inner().map_err(|e| BackupError::io("write", path)(e.into_error()))?;
        file.sync_all().map_err(BackupError::io("sync", path))
    }
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hashing: Hashing,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hashing.update(&buf[..n]);
        Ok(n)
    }
}

/// The state directory's files but the journal (copied on its own), the
/// pidfile, locks, logs, backups and what restores set aside: `(path
/// relative to it, bytes, mode)`.
fn read_state_dir(layout: &Layout, skipped: &mut Vec<Skipped>) -> Result<Vec<(String, Vec<u8>, u32)>, BackupError> {
    let journal_name = layout.journal_name_in_state_dir();
    let mut files = Vec::new();
    walk(
        &layout.state_dir,
        "",
        0,
        &mut |rel, name| rel.is_empty() && !layout::is_state_name(name, journal_name.as_deref()),
        &mut files,
        skipped,
    )?;
    let mut read = Vec::new();
    for (rel, path) in files {
        match fsx::read_bounded(&path, MAX_FILE_BYTES).map_err(BackupError::io("read", &path))? {
            Bounded::Read { bytes, mode } => read.push((rel, bytes, mode)),
            Bounded::Gone => {}
            Bounded::Refused(reason) => skipped.push(Skipped { path, reason }),
        }
    }
    Ok(read)
}

/// Lists the regular files under `dir` (sorted, as `a/b` relative paths),
/// without following links, skipping what `exclude(parent, name)` says and
/// names no state file has.
/// A directory's entries by name, each with its type as the listing gives
/// it (without following a link: a planted one is skipped, not read).
fn sorted_entries(dir: &Path) -> io::Result<Vec<(std::ffi::OsString, fs::FileType)>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        names.push((entry.file_name(), entry.file_type()?));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

fn walk(
    dir: &Path,
    rel: &str,
    depth: usize,
    exclude: &mut dyn FnMut(&str, &str) -> bool,
    files: &mut Vec<(String, PathBuf)>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), BackupError> {
    let names = match sorted_entries(dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound && depth == 0 => return Ok(()),
        Err(e) => return Err(BackupError::io("list", dir)(e)),
    };
    for (name, file_type) in names {
        let path = dir.join(&name);
        let Some(name) = name.to_str() else {
            skipped.push(Skipped { path, reason: "its name is not UTF-8".into() });
            continue;
        };
        if exclude(rel, name) || !layout::is_state_file_name(name) {
            continue;
        }
        let child = if rel.is_empty() { name.to_owned() } else { format!("{rel}/{name}") };
        if file_type.is_dir() {
            if depth + 1 >= MAX_DEPTH {
                skipped.push(Skipped { path, reason: format!("deeper than {MAX_DEPTH} directories") });
            } else {
                walk(&path, &child, depth + 1, exclude, files, skipped)?;
            }
        } else if file_type.is_file() {
            files.push((child, path));
        } else {
            skipped.push(Skipped { path, reason: steward_protocol::kind_of(&file_type).to_owned() });
        }
    }
    Ok(())
}

/// The config file, as `config/<its name>`.
fn append_config(writer: &mut ArchiveWriter<'_>, config: &Path) -> Result<usize, BackupError> {
    let name = config
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| layout::classify(&format!("config/{n}")).is_ok())
        .unwrap_or("steward.yaml")
        .to_owned();
    match fsx::read_bounded(config, MAX_FILE_BYTES).map_err(BackupError::io("read the config file", config))? {
        Bounded::Read { bytes, mode } => {
            writer.append_bytes(&format!("config/{name}"), &bytes, mode)?;
            Ok(1)
        }
        Bounded::Gone => Ok(0),
        Bounded::Refused(reason) => {
            Err(BackupError::io("read the config file", config)(io::Error::new(io::ErrorKind::InvalidInput, reason)))
        }
    }
}

/// The coordination directory's regular files, read as hostile.
fn append_coordination(writer: &mut ArchiveWriter<'_>, dir: &Path, skipped: &mut Vec<Skipped>) -> Result<usize, BackupError> {
    let names = match sorted_entries(dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            skipped.push(Skipped { path: dir.to_owned(), reason: "the coordination directory does not exist".into() });
            return Ok(0);
        }
        Err(e) => return Err(BackupError::io("list", dir)(e)),
    };
    let mut n = 0;
    for (name, file_type) in names {
        let path = dir.join(&name);
        let Some(name) = name.to_str() else {
            skipped.push(Skipped { path, reason: "its name is not UTF-8".into() });
            continue;
        };
        // The lock and writes in progress are not items.
        if name.ends_with(".lock") || steward_protocol::is_temp_name(name) {
            continue;
        }
        if !file_type.is_file() {
            skipped.push(Skipped { path, reason: steward_protocol::kind_of(&file_type).to_owned() });
            continue;
        }
        let entry_name = format!("coordination/{name}");
        if let Err(reason) = layout::classify(&entry_name) {
            skipped.push(Skipped { path, reason });
            continue;
        }
        // The listing's type may be stale: the open decides again.
        match fsx::read_bounded(&path, MAX_FILE_BYTES) {
            Ok(Bounded::Read { bytes, mode }) => {
                writer.append_bytes(&entry_name, &bytes, mode)?;
                n += 1;
            }
            Ok(Bounded::Gone) => {}
            Ok(Bounded::Refused(reason)) => skipped.push(Skipped { path, reason }),
            Err(e) => skipped.push(Skipped { path, reason: format!("cannot read: {e}") }),
        }
    }
    Ok(n)
}
