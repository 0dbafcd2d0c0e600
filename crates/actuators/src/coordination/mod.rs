//! The coordination actuator: repairs the claim protocol's leftovers
//! (spec/coordination.md).
//!
//! - a stale claim goes back to the queue as `work_<id>.json` with
//!   `attempts + 1`, or to the dead letters as `failed_<id>.json` once its
//!   attempts reach `max_attempts`;
//! - a claim whose `completed_<id>.json` exists is removed (the completion
//!   is authoritative).
//!
//! It never deletes a work item: the item's file is rewritten in place
//! (temp file + rename) and then renamed to its new name, so at every
//! instant exactly one file holds the item, and a crash between the two
//! steps leaves the claim with its attempts already counted.

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};
use steward_core::decision::Action;
use steward_core::time::{format_rfc3339, parse_json_timestamp, UnixMs};

use crate::{Actuator, ActuatorError};

/// Applies coordination actions to a directory.
#[derive(Debug, Clone)]
pub struct CoordinationActuator {
    dir: PathBuf,
    max_attempts: u32,
}

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Back in the queue with this many attempts.
    Requeued(u32),
    /// Moved to the dead letters after this many attempts.
    DeadLettered(u32),
    /// A leftover claim removed (its completed record exists).
    LeftoverRemoved,
    /// The claim no longer exists: someone else finished or requeued it.
    Gone,
    /// Left alone, with the reason.
    Kept(String),
}

#[derive(Default)]
struct Tally {
    requeued: usize,
    dead: usize,
    removed: usize,
    gone: usize,
    kept: usize,
    errors: Vec<String>,
    total: usize,
    first_kept: Option<String>,
}

impl Tally {
    fn add(&mut self, id: &str, r: Result<ItemOutcome, ActuatorError>) {
        self.total += 1;
        match r {
            Ok(ItemOutcome::Requeued(_)) => self.requeued += 1,
            Ok(ItemOutcome::DeadLettered(_)) => self.dead += 1,
            Ok(ItemOutcome::LeftoverRemoved) => self.removed += 1,
            Ok(ItemOutcome::Gone) => self.gone += 1,
            Ok(ItemOutcome::Kept(why)) => {
                self.kept += 1;
                if self.first_kept.is_none() {
                    self.first_kept = Some(format!("{id}: {why}"));
                }
            }
            Err(e) => self.errors.push(format!("{id}: {}", crate::error_chain(&e))),
        }
    }

    fn finish(self) -> Result<String, ActuatorError> {
        if let Some(first) = self.errors.first() {
            return Err(ActuatorError::Partial { failed: self.errors.len(), total: self.total, first: first.clone() });
        }
        let kept = match &self.first_kept {
            Some(first) if self.kept > 1 => format!(" (first: {first})"),
            Some(first) => format!(" ({first})"),
            None => String::new(),
        };
        Ok(format!(
            "requeued {}, dead-lettered {}, leftover claims removed {}, already gone {}, kept {}{kept}",
            self.requeued, self.dead, self.removed, self.gone, self.kept
        ))
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ActuatorError + 'a {
    move |source| ActuatorError::Io { op, path: path.to_owned(), source }
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// How far a write must get before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the rename (fsync): survives a power loss. For rare,
    /// important writes: requeues, dead letters, the fleet registry.
    Flushed,
    /// Complete for every reader at the rename, in the page cache: survives
    /// any process being killed, not a power loss. For per-item and
    /// heartbeat writes, where an fsync each would cost most of the time.
    Visible,
}

/// Writes `bytes` to `dest` through a temp file in the same directory and
/// a rename, so readers never see half a file; flushed to disk first.
/// The temp name starts with a dot and so never matches a coordination
/// pattern.
///
/// # Errors
/// Any step of the write failed; the temp file is removed.
pub fn write_atomic(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), ActuatorError> {
    write_atomic_with(dir, dest, bytes, Durability::Flushed)
}

/// [`write_atomic`] with a chosen [`Durability`].
///
/// # Errors
/// Any step of the write failed; the temp file is removed.
pub fn write_atomic_with(dir: &Path, dest: &Path, bytes: &[u8], durability: Durability) -> Result<(), ActuatorError> {
    let tmp = dir.join(format!(".steward-tmp-{}-{}", std::process::id(), TMP_SEQ.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        if durability == Durability::Flushed {
            f.sync_all().map_err(io_err("sync", &tmp))?;
        }
        fs::rename(&tmp, dest).map_err(io_err("rename into", dest))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl CoordinationActuator {
    /// An actuator over `dir`; items without their own `max_attempts` use this one.
    pub fn new(dir: impl Into<PathBuf>, max_attempts: u32) -> Self {
        Self { dir: dir.into(), max_attempts: max_attempts.max(1) }
    }

    fn path(&self, prefix: &str, id: &str) -> PathBuf {
        self.dir.join(format!("{prefix}_{id}.json"))
    }

    /// Requeues or dead-letters one claim.
    ///
    /// # Errors
    /// A file operation failed; the item stays where it was.
    pub fn requeue(&self, id: &str, why: &str, now: UnixMs) -> Result<ItemOutcome, ActuatorError> {
        if !valid_id(id) {
            return Ok(ItemOutcome::Kept(format!("{id:?} is not a plain item id")));
        }
        let claimed = self.path("claimed", id);
        let bytes = match fs::read(&claimed) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ItemOutcome::Gone),
            Err(e) => return Err(io_err("read", &claimed)(e)),
        };
        if completion_recorded(&self.dir, id) {
            return self.remove_leftover(id);
        }
        let Ok(Value::Object(mut item)) = serde_json::from_slice::<Value>(&bytes) else {
            // A claim that is not a JSON object cannot be annotated; it is a
            // poison item: dead-letter it untouched, never delete it.
            let failed = self.path("failed", id);
            if failed.exists() {
                return Ok(ItemOutcome::Kept(format!("failed_{id}.json already exists")));
            }
            fs::rename(&claimed, &failed).map_err(io_err("rename", &claimed))?;
            return Ok(ItemOutcome::DeadLettered(0));
        };
        let attempts = item.get("attempts").map_or(Some(0), count).unwrap_or(0).saturating_add(1);
        let max = item.get("max_attempts").and_then(count).map_or(u64::from(self.max_attempts), |m| m.max(1));
        let dead = attempts >= max;
        let (dest, status) = if dead { (self.path("failed", id), "failed") } else { (self.path("work", id), "pending") };
        if dest.exists() {
            let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            return Ok(ItemOutcome::Kept(format!("{name} already exists; the claim stays")));
        }
        annotate(&mut item, attempts, status, why, dead, now);
        let body = serde_json::to_vec(&Value::Object(item)).map_err(|e| io_err("encode", &claimed)(io::Error::other(e)))?;
        write_atomic(&self.dir, &claimed, &body)?;
        fs::rename(&claimed, &dest).map_err(io_err("rename", &claimed))?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        Ok(if dead { ItemOutcome::DeadLettered(attempts) } else { ItemOutcome::Requeued(attempts) })
    }

    /// Removes a claim whose completed record exists; keeps it otherwise.
    ///
    /// # Errors
    /// The removal failed.
    pub fn remove_leftover(&self, id: &str) -> Result<ItemOutcome, ActuatorError> {
        if !valid_id(id) {
            return Ok(ItemOutcome::Kept(format!("{id:?} is not a plain item id")));
        }
        if !completion_recorded(&self.dir, id) {
            return Ok(ItemOutcome::Kept(format!(
                "completed_{id}.json is not a completed record (missing, empty, or not a regular file); the claim stays"
            )));
        }
        let claimed = self.path("claimed", id);
        match fs::remove_file(&claimed) {
            Ok(()) => Ok(ItemOutcome::LeftoverRemoved),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ItemOutcome::Gone),
            Err(e) => Err(io_err("remove", &claimed)(e)),
        }
    }

    /// Claims at least `max_age_ms` old (by `claimed_at`, else mtime).
    fn old_claims(&self, max_age_ms: i64, now: UnixMs) -> Result<Vec<String>, ActuatorError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))? {
            let entry = entry.map_err(io_err("list", &self.dir))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_prefix("claimed_")).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let path = entry.path();
            let claimed_at = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
                .and_then(|m| m.get("claimed_at").and_then(parse_json_timestamp));
            let at = match claimed_at {
                Some(t) => t,
                None => match entry.metadata().and_then(|m| m.modified()) {
                    Ok(t) => t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
                    Err(_) => continue,
                },
            };
            if now - at >= max_age_ms || completion_recorded(&self.dir, id) {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn sync_dir(&self) {
        // Make the renames durable; a failure here loses nothing already done.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }
}

/// A count as producers write it: an integer, a float (rounded up, so a
/// retry is never forgotten), or either as text. `None` for anything else.
fn count(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f.ceil().min(u64::MAX as f64) as u64))
        }
        Value::String(s) => count(&serde_json::from_str(s.trim()).ok()?),
        _ => None,
    }
}

/// Whether a completed record for `id` exists: a non-empty regular file
/// (not a directory, not a symbolic link), the only kind of completion
/// that may justify removing a claim.
pub fn completion_recorded(dir: &Path, id: &str) -> bool {
    fs::symlink_metadata(dir.join(format!("completed_{id}.json"))).is_ok_and(|m| m.is_file() && m.len() > 0)
}

fn annotate(item: &mut Map<String, Value>, attempts: u64, status: &str, why: &str, dead: bool, now: UnixMs) {
    let ts = format_rfc3339(now);
    if let Some(by) = item.remove("claimed_by") {
        item.insert("last_claimed_by".into(), by);
    }
    item.remove("claimed_at");
    item.insert("attempts".into(), attempts.into());
    item.insert("status".into(), status.into());
    if dead {
        item.insert("error".into(), format!("{why}; attempts exhausted ({attempts})").into());
        item.insert("dead_lettered_at".into(), ts.into());
    } else {
        item.insert("last_error".into(), why.into());
        item.insert("requeued_at".into(), ts.into());
    }
}

/// An id must name a file inside the directory and nothing else.
fn valid_id(id: &str) -> bool {
    !id.contains('/') && !id.contains('\0') && id != "." && id != ".."
}

impl Actuator for CoordinationActuator {
    fn name(&self) -> &'static str {
        "coordination"
    }

    fn handles(&self, action: &Action) -> bool {
        matches!(action, Action::RequeueClaims { .. } | Action::RemoveLeftoverClaims { .. } | Action::ClearOldWork { .. })
    }

    fn apply(&mut self, action: &Action, now: UnixMs) -> Result<String, ActuatorError> {
        let mut tally = Tally::default();
        match action {
            Action::RequeueClaims { items } => {
                for id in items {
                    tally.add(id, self.requeue(id, "claim went stale", now));
                }
            }
            Action::RemoveLeftoverClaims { items } => {
                for id in items {
                    tally.add(id, self.remove_leftover(id));
                }
            }
            Action::ClearOldWork { max_age_hours } => {
                let max_age_ms = (max_age_hours.max(0.0) * 3_600_000.0).min(i64::MAX as f64) as i64;
                for id in self.old_claims(max_age_ms, now)? {
                    let r = self.requeue(&id, &format!("claim older than {max_age_hours} h"), now);
                    tally.add(&id, r);
                }
            }
            other => return Err(ActuatorError::Unsupported { actuator: "coordination", action: crate::action_kind(other) }),
        }
        self.sync_dir();
        tally.finish()
    }
}
