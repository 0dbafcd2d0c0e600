//! Reconciliation: list the lake, compare it with every dataset's expected
//! keys, queue the gaps as tasks, close the tasks whose gap closed, and
//! write `<state-dir>/inventory/gaps.json`.
//!
//! Memory is one byte per expected key (each partition's state), whatever
//! the size of the listing: listed keys are parsed back to their partition
//! through the key template, never looked up in a table of keys. Coverage
//! is counted over every expected key, never sampled.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use steward_core::reconcile::{Coverage, Dataset, GapKind, Priority};
use steward_core::time::{format_rfc3339, UnixMs};
use steward_store::{Journal, NewTask, TaskState};

use crate::inventory::{Inventory, InventoryError};

/// What went wrong in a reconciliation.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The lake could not be read.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The journal could not be written.
    #[error("journal: {0}")]
    Journal(#[from] steward_store::JournalError),
    /// gaps.json could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A partition's state, one byte each.
const UNSEEN: u8 = 0;
const VALID: u8 = 1;
const TRUNCATED: u8 = 2;
const STALE: u8 = 3;

fn state_of(gap: Option<GapKind>) -> u8 {
    match gap {
        None => VALID,
        Some(GapKind::Missing) => UNSEEN,
        Some(GapKind::Truncated) => TRUNCATED,
        Some(GapKind::Stale) => STALE,
    }
}

fn gap_of(state: u8) -> Option<GapKind> {
    match state {
        VALID => None,
        TRUNCATED => Some(GapKind::Truncated),
        STALE => Some(GapKind::Stale),
        _ => Some(GapKind::Missing),
    }
}

/// One dataset's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DatasetReport {
    /// The dataset.
    pub name: String,
    /// Counted over every expected key.
    pub coverage: Coverage,
    /// valid / expected.
    pub ratio: f64,
}

/// What a reconciliation found and did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// When.
    pub at: UnixMs,
    /// Objects listed.
    pub listed: u64,
    /// Entries the listing could not read.
    pub unreadable: u64,
    /// Per dataset.
    pub datasets: Vec<DatasetReport>,
    /// Open gaps, by priority.
    pub gaps_by_priority: BTreeMap<&'static str, u64>,
    /// Open gaps.
    pub gaps: u64,
    /// Tasks queued by this run (gaps not already open).
    pub queued: u64,
    /// Tasks closed because their gap closed.
    pub resolved: u64,
    /// Where the gaps were written.
    pub gaps_file: PathBuf,
}

/// The lake's state from the last full listing: one byte per partition.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// When the lake was last listed in full.
    pub at: UnixMs,
    /// When the states were last checked (a listing or a refresh).
    checked_at: UnixMs,
    /// Per dataset (by name), the state of each partition.
    states: BTreeMap<String, Vec<u8>>,
}

/// Progress of a listing: objects listed so far.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Lists the lake and classifies every expected key of `datasets`.
///
/// # Errors
/// The store failed the listing.
pub fn list(datasets: &[Dataset], inv: &Inventory, now: UnixMs, progress: Progress<'_>) -> Result<(Listing, u64, u64), ReconcileError> {
    let mut states: BTreeMap<String, Vec<u8>> =
        datasets.iter().map(|d| (d.name().to_owned(), vec![UNSEEN; usize::try_from(d.count()).unwrap_or(0)])).collect();
    // One listing per directory prefix; a prefix inside another is covered by it.
    let mut prefixes: Vec<String> = datasets.iter().map(|d| d.prefix()).collect();
    prefixes.sort();
    prefixes.dedup();
    let prefixes: Vec<String> =
        prefixes.iter().filter(|p| !prefixes.iter().any(|q| q != *p && p.starts_with(q.as_str()))).cloned().collect();
    let (mut listed, mut unreadable) = (0u64, 0u64);
    for prefix in &prefixes {
        let mut each = |e: crate::inventory::Entry| {
            listed += 1;
            if listed.is_multiple_of(10_000) {
                progress(listed);
            }
            for d in datasets.iter().filter(|d| e.key.starts_with(&d.prefix())) {
                if let Some(i) = d.partition_of(&e.key) {
                    if let Some(slot) = states.get_mut(d.name()).and_then(|s| s.get_mut(i as usize)) {
                        *slot = state_of(d.classify(i, Some((e.size, e.modified)), now));
                    }
                }
            }
        };
        let mut warn = |w: String| {
            unreadable += 1;
            tracing::warn!(inventory = inv.url(), "An entry of the lake could not be read: {w}");
        };
        inv.list(prefix, &mut each, &mut warn)?;
    }
    progress(listed);
    Ok((Listing { at: now, checked_at: now, states }, listed, unreadable))
}

impl Listing {
    /// Re-checks, with one request each, the keys that were not valid, the
    /// partitions added since (`to: today` moved on), and the recent ones
    /// that may have gone stale since the listing.
    ///
    /// # Errors
    /// The store failed.
    pub fn refresh(&mut self, datasets: &[Dataset], inv: &Inventory, now: UnixMs) -> Result<u64, ReconcileError> {
        let mut checked = 0;
        for d in datasets {
            let states = self.states.entry(d.name().to_owned()).or_default();
            states.resize(usize::try_from(d.count()).unwrap_or(0), UNSEEN);
            let max_age = i64::try_from(d.cfg.max_age.as_millis()).unwrap_or(i64::MAX);
            // A valid file can only have gone stale since if it was written
            // before its partition ended and less than max_age before the listing.
            let may_go_stale = |i: u64| max_age > 0 && d.end(i).is_none_or(|end| end > self.checked_at.saturating_sub(max_age));
            for (i, s) in states.iter_mut().enumerate() {
                if *s != VALID || may_go_stale(i as u64) {
                    checked += 1;
                    let file = inv.head(&d.key(i as u64))?.map(|e| (e.size, e.modified));
                    *s = state_of(d.classify(i as u64, file, now));
                }
            }
        }
        // `at` stays: a refresh sees only the keys it checks (a valid file
        // deleted since is found by the next full listing).
        self.checked_at = now;
        Ok(checked)
    }

    /// The gaps still open: how many.
    pub fn open_gaps(&self) -> u64 {
        self.states.values().flat_map(|v| v.iter()).filter(|s| **s != VALID).count() as u64
    }

    /// Marks a key of `dataset` as checked (after a collector ran).
    pub fn set(&mut self, d: &Dataset, i: u64, gap: Option<GapKind>) {
        if let Some(slot) = self.states.get_mut(d.name()).and_then(|s| s.get_mut(i as usize)) {
            *slot = state_of(gap);
        }
    }
}

/// How many gaps are queued per journal transaction.
const BATCH: usize = 10_000;

/// Queues the gaps of `listing`, closes tasks whose gap closed, and writes
/// gaps.json into `<state_dir>/inventory/`.
///
/// # Errors
/// The journal or gaps.json could not be written.
pub fn record(
    datasets: &[Dataset],
    listing: &Listing,
    journal: &mut Journal,
    state_dir: &Path,
    inventory_url: &str,
    now: UnixMs,
) -> Result<Report, ReconcileError> {
    let dir = state_dir.join("inventory");
    std::fs::create_dir_all(&dir).map_err(|source| ReconcileError::Write { path: dir.clone(), source })?;
    let path = dir.join("gaps.json");
    let tmp = dir.join(format!(".gaps.json.{}.tmp", std::process::id()));
    let write_err = |source| ReconcileError::Write { path: path.clone(), source };
    // A temporary name of our own, created new and never through a link
    // (one left by a crash is removed first; removing does not follow).
    let _ = std::fs::remove_file(&tmp);
    let file = steward_protocol::create_new(&tmp).map_err(write_err)?;
    let mut out = std::io::BufWriter::new(file);
    let mut by_priority: BTreeMap<&'static str, u64> = Priority::ALL.iter().map(|p| (p.as_str(), 0)).collect();
    let (mut gaps, mut queued, mut resolved) = (0u64, 0u64, 0u64);
    let mut reports = Vec::with_capacity(datasets.len());
    let mut batch: Vec<NewTask> = Vec::with_capacity(BATCH);
    let mut first = true;
    write!(out, "{{\"generated_at\":{},\"inventory\":{},\"gaps\":[", json!(format_rfc3339(now)), json!(inventory_url))
        .map_err(write_err)?;
    let empty = Vec::new();
    for d in datasets {
        let states = listing.states.get(d.name()).unwrap_or(&empty);
        let mut coverage = Coverage::default();
        for i in 0..d.count() {
            let gap = gap_of(states.get(i as usize).copied().unwrap_or(UNSEEN));
            coverage.add(gap);
            let Some(kind) = gap else { continue };
            gaps += 1;
            let priority = d.priority(i, kind, now);
            *by_priority.entry(priority.as_str()).or_default() += 1;
            let task = NewTask { dataset: d.name().to_owned(), key: d.key(i), partition: d.partition(i), kind, priority };
            if !first {
                out.write_all(b",").map_err(write_err)?;
            }
            first = false;
            let line = json!({"dataset": task.dataset, "key": task.key, "partition": task.partition, "kind": kind, "priority": priority});
            out.write_all(line.to_string().as_bytes()).map_err(write_err)?;
            batch.push(task);
            if batch.len() == BATCH {
                queued += journal.queue_tasks(&batch, now)?;
                batch.clear();
            }
        }
        // Tasks whose gap has closed (or whose key is no longer expected).
        let closed: Vec<i64> = journal
            .open_tasks_of(d.name())?
            .into_iter()
            .filter(|(_, key, state)| {
                *state != TaskState::Running && d.partition_of(key).is_none_or(|i| states.get(i as usize) == Some(&VALID))
            })
            .map(|(id, _, _)| id)
            .collect();
        resolved += journal.resolve_tasks(&closed, now)?;
        reports.push(DatasetReport { name: d.name().to_owned(), ratio: coverage.ratio(), coverage });
    }
    queued += journal.queue_tasks(&batch, now)?;
    let totals = json!({
        "gaps": gaps,
        "by_priority": by_priority,
        "by_dataset": reports.iter().map(|r| (r.name.clone(), json!({
            "expected": r.coverage.expected,
            "valid": r.coverage.valid,
            "missing": r.coverage.missing,
            "truncated": r.coverage.truncated,
            "stale": r.coverage.stale,
            "coverage": r.ratio,
        }))).collect::<serde_json::Map<_, _>>(),
    });
    write!(out, "],\"totals\":{totals}}}").map_err(write_err)?;
    out.flush().map_err(write_err)?;
    // On disk before it replaces the last one: a crash leaves one or the other.
    out.get_ref().sync_all().map_err(write_err)?;
    drop(out);
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(Report {
        at: now,
        listed: 0,
        unreadable: 0,
        datasets: reports,
        gaps_by_priority: by_priority,
        gaps,
        queued,
        resolved,
        gaps_file: path,
    })
}

/// A whole reconciliation: list (or refresh a recent listing), then record.
///
/// # Errors
/// The store, the journal or gaps.json failed.
pub fn reconcile(
    datasets: &[Dataset],
    inv: &Inventory,
    journal: &mut Journal,
    state_dir: &Path,
    now: UnixMs,
    progress: Progress<'_>,
) -> Result<(Report, Listing), ReconcileError> {
    let (listing, listed, unreadable) = list(datasets, inv, now, progress)?;
    let mut report = record(datasets, &listing, journal, state_dir, inv.url(), now)?;
    report.listed = listed;
    report.unreadable = unreadable;
    Ok((report, listing))
}
