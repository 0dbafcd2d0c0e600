//! The coordination-directory source (spec/coordination.md).
//!
//! One pass over the directory. Work, completed and failed items are
//! counted by name only and never opened; agent and claim files are opened
//! because their content (status, heartbeat, claimant) is what the metrics
//! need. Reading overlaps the listing: names go in batches to reader
//! threads while the listing goes on, and the lister joins the readers
//! when it is done, so both cores work.
//!
//! Telemetry files are counted by name. For `error_rate` and
//! `response_time_ms` only `telemetry_sample` of them are read: those with
//! the greatest names in natural order (producers name records by sequence
//! number or time, so these are the newest), keeping the ones dated (by
//! their `timestamp`, else their mtime) inside `telemetry_window`. No file
//! is stat'ed to choose them, so a cycle's cost does not grow with the
//! history kept in the directory.

mod config;
mod read;
mod samples;

#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};

use steward_core::snapshot::{Snapshot, SourceWarning, TempFile};
use steward_core::time::UnixMs;
use steward_protocol::{classify, is_temp_name, FileKind};

pub use config::CoordinationConfig;
pub use samples::telemetry_samples;

use crate::source::{Source, SourceError};

/// Reads a coordination directory into snapshots.
#[derive(Debug, Clone)]
pub struct CoordinationSource {
    cfg: CoordinationConfig,
}

impl CoordinationSource {
    /// A source over `cfg.dir`.
    pub fn new(cfg: CoordinationConfig) -> Self {
        Self { cfg }
    }

    /// The directory this source reads.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    fn threads(&self) -> usize {
        match self.cfg.read_threads {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n as usize,
        }
    }
}

/// A batch of names for the readers.
enum Job {
    Agents(Vec<String>),
    Claims(Vec<String>),
}

const BATCH: usize = 64;

/// What the listing pass counts by name.
#[derive(Default)]
struct Counts {
    agents: u64,
    work: u64,
    completed: u64,
    failed: u64,
    telemetry: u64,
}

impl Source for CoordinationSource {
    fn target(&self) -> String {
        self.cfg.dir.display().to_string()
    }

    fn check(&self) -> Result<(), SourceError> {
        let dir = &self.cfg.dir;
        if dir.exists() && !dir.is_dir() {
            return Err(SourceError::NotADirectory { path: dir.clone() });
        }
        Ok(())
    }

    fn snapshot(&self, now: UnixMs) -> Result<Snapshot, SourceError> {
        let dir = &self.cfg.dir;
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Snapshot {
                    taken_at: now,
                    target_exists: false,
                    warnings: vec![SourceWarning {
                        file: dir.display().to_string(),
                        reason: "the coordination directory does not exist".into(),
                    }],
                    ..Snapshot::default()
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Err(SourceError::NotADirectory { path: dir.clone() }),
            Err(source) => return Err(SourceError::ListDir { path: dir.clone(), source }),
        };

        let limit = self.cfg.max_item_bytes;
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Mutex::new(rx);
        let mut counts = Counts::default();
        let mut listing_warnings = Vec::new();
        let mut temp_files = Vec::new();
        let workers = self.threads().saturating_sub(1);

        let (mut parts, telemetry_names) = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(|| read::drain(dir, &rx, now, limit))).collect();
            let names = list(dir, entries, &tx, &mut counts, &mut listing_warnings, &mut temp_files);
            drop(tx);
            let mut parts = vec![read::drain(dir, &rx, now, limit)];
            for h in handles {
                // A reader thread only panics on a bug; keep what the others read.
                if let Ok(p) = h.join() {
                    parts.push(p);
                }
            }
            (parts, names)
        });

        let mut snapshot = Snapshot { taken_at: now, target_exists: true, ..Snapshot::default() };
        snapshot.agent_files = counts.agents;
        snapshot.work_queue_size = counts.work;
        snapshot.completed = counts.completed;
        snapshot.failed = counts.failed;
        snapshot.telemetry_volume = counts.telemetry;
        snapshot.warnings = listing_warnings;
        temp_files.sort_by(|a, b| a.name.cmp(&b.name));
        snapshot.temp_files = temp_files;
        for part in &mut parts {
            snapshot.agents.append(&mut part.agents);
            snapshot.claims.append(&mut part.claims);
            snapshot.warnings.append(&mut part.warnings);
        }
        // Listing order is the filesystem's: sort so snapshots compare and diff.
        snapshot.agents.sort_by(|a, b| a.file.cmp(&b.file));
        snapshot.claims.sort_by(|a, b| a.id.cmp(&b.id));
        snapshot.warnings.sort_by(|a, b| a.file.cmp(&b.file));
        let window_ms = i64::try_from(self.cfg.telemetry_window.as_millis()).unwrap_or(i64::MAX);
        snapshot.telemetry = read::telemetry_summary(
            dir,
            telemetry_names,
            now.saturating_sub(window_ms),
            self.cfg.telemetry_sample as usize,
            self.threads(),
            limit,
            &mut snapshot.warnings,
        );
        snapshot.warnings.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(snapshot)
    }
}

/// The listing pass: counts by name, sends readable names to the readers.
fn list(
    dir: &Path,
    entries: fs::ReadDir,
    tx: &mpsc::Sender<Job>,
    counts: &mut Counts,
    warnings: &mut Vec<SourceWarning>,
    temp_files: &mut Vec<TempFile>,
) -> Vec<String> {
    let mut agents = Vec::new();
    let mut claims = Vec::new();
    let mut telemetry = Vec::new();
    let mut canonical_dir: Option<Option<PathBuf>> = None;
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                warnings.push(SourceWarning { file: dir.display().to_string(), reason: format!("listing failed part-way: {e}") });
                continue;
            }
        };
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            continue;
        };
        if is_temp_name(name) {
            // Rare (writes in flight, or left by a writer that died): stat'ed
            // for their age, so a dead writer's can be tidied.
            if let Ok(meta) = entry.metadata() {
                if meta.is_file() {
                    let modified = meta.modified().map_or(0, |t| {
                        t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    });
                    temp_files.push(TempFile { name: name.to_owned(), modified });
                }
            }
            continue;
        }
        let Some((kind, _id)) = classify(name.as_bytes()) else {
            continue;
        };
        // d_type from the listing: no stat for regular files.
        let regular = match entry.file_type() {
            Ok(t) if t.is_file() => true,
            Ok(t) if t.is_symlink() => {
                let canon = canonical_dir.get_or_insert_with(|| fs::canonicalize(dir).ok());
                match symlink_inside(&entry.path(), canon.as_deref()) {
                    Ok(()) => true,
                    Err(reason) => {
                        warnings.push(SourceWarning { file: name.to_owned(), reason });
                        false
                    }
                }
            }
            // A FIFO, directory, socket or device is never read: opening a
            // FIFO would block the cycle.
            Ok(t) => {
                let kind = if t.is_dir() { "a directory" } else { "a FIFO, socket or device" };
                warnings.push(SourceWarning { file: name.to_owned(), reason: format!("not a regular file ({kind}); ignored") });
                false
            }
            Err(e) => {
                warnings.push(SourceWarning { file: name.to_owned(), reason: format!("cannot tell its file type: {e}") });
                false
            }
        };
        if !regular {
            continue;
        }
        match kind {
            FileKind::Work => counts.work += 1,
            FileKind::Completed => counts.completed += 1,
            FileKind::Failed => counts.failed += 1,
            FileKind::Telemetry => {
                counts.telemetry += 1;
                telemetry.push(name.to_owned());
            }
            FileKind::Agent => {
                counts.agents += 1;
                push(tx, &mut agents, name, Job::Agents);
            }
            FileKind::Claimed => push(tx, &mut claims, name, Job::Claims),
        }
    }
    for (batch, job) in [(agents, Job::Agents as fn(Vec<String>) -> Job), (claims, Job::Claims)] {
        if !batch.is_empty() {
            // The receiver lives until every reader is done: send cannot fail.
            let _ = tx.send(job(batch));
        }
    }
    telemetry
}

/// Compares names as people read them: digit runs by value, so
/// `telemetry_10` comes after `telemetry_9`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (run(a), run(b));
                let zeros = |s: &[u8]| s.iter().take_while(|&&c| c == b'0').count();
                let (da, db) = (&a[zeros(&a[..na])..na], &b[zeros(&b[..nb])..nb]);
                // More significant digits is larger; then digit by digit; then fewer leading zeros first.
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db)).then_with(|| na.cmp(&nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn push(tx: &mpsc::Sender<Job>, batch: &mut Vec<String>, name: &str, job: fn(Vec<String>) -> Job) {
    batch.push(name.to_owned());
    if batch.len() >= BATCH {
        let _ = tx.send(job(std::mem::take(batch)));
    }
}

/// A symbolic link counts only if it resolves to a regular file inside the directory.
pub(super) fn symlink_inside(path: &Path, canonical_dir: Option<&Path>) -> Result<(), String> {
    let target = fs::canonicalize(path).map_err(|e| format!("symbolic link cannot be resolved ({e}); ignored"))?;
    let inside = canonical_dir.is_some_and(|d| target.parent() == Some(d));
    if !inside {
        return Err(format!("symbolic link leads out of the directory (to {}); ignored", target.display()));
    }
    match fs::metadata(&target) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err("symbolic link does not lead to a regular file; ignored".into()),
        Err(e) => Err(format!("symbolic link target unreadable ({e}); ignored")),
    }
}
