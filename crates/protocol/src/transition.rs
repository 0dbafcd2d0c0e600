//! The transitions of a work item, each one function: claim, complete,
//! retry, requeue (with dead-lettering at `max_attempts`), adopt, release.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use steward_core::time::{format_rfc3339, parse_json_timestamp, UnixMs};

use crate::error::ProtocolError;
use crate::io::{publish, read_record, unix_ms, write_atomic, Durability, Links, RecordError, DEFAULT_MAX_ITEM_BYTES};
use crate::name::{classify, file_name, valid_id, FileKind};

/// A coordination directory, and the attempts after which an item that
/// does not set its own `max_attempts` is dead-lettered.
#[derive(Debug, Clone)]
pub struct CoordinationDir {
    dir: PathBuf,
    max_attempts: u32,
    max_item_bytes: u64,
}

/// What a retry, requeue or adopt did to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Back in the queue with this many attempts.
    Requeued(u32),
    /// Moved to the dead letters after this many attempts.
    DeadLettered(u32),
    /// Moved to the dead letters as it was, because nobody can work it;
    /// says why (not a JSON object, too large, not a regular file).
    Poisoned(String),
    /// A leftover claim removed (its completed record exists).
    LeftoverRemoved,
    /// The claim no longer exists: someone else finished or requeued it.
    Gone,
    /// Left alone, with the reason.
    Kept(String),
}

/// What a claim attempt got.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This agent holds the item; here it is as `claimed_<id>.json` now
    /// stands (with `claimed_by`, `claimed_at`, `status: claimed`).
    Won(Map<String, Value>),
    /// Another claimant was faster, the item is gone, or the id is not a
    /// plain name (so no file of this directory can hold it).
    Lost,
    /// The item's completion was already recorded: the claim was a
    /// leftover of a requeue race and has been removed. Nothing to do.
    AlreadyCompleted,
    /// Nobody can work the item (not a JSON object, larger than
    /// `max_item_bytes`, or not a regular file): it was dead-lettered as it
    /// was (or left claimed if `failed_<id>.json` exists). Says why.
    Poison(String),
}

/// What publishing a completion found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// This record is the item's completion.
    Recorded,
    /// Another agent had completed the item first; its record was kept.
    Duplicate,
}

/// What a listing of pending items found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// Ids of the items that may be claimed (regular files).
    pub ids: Vec<String>,
    /// Entries named like items that are not regular files, with their
    /// kind: never claimed, worth a warning.
    pub refused: Vec<(String, &'static str)>,
}

/// Items by state, counted from file names (the demo's accounting).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// `work_*.json`.
    pub pending: u64,
    /// `claimed_*.json`.
    pub in_flight: u64,
    /// `completed_*.json`.
    pub completed: u64,
    /// `failed_*.json`.
    pub dead_lettered: u64,
    /// Distinct item ids over the four states.
    pub distinct: u64,
    /// Ids found in more than one state at once.
    pub in_several_states: u64,
}

/// A claim as read: the item, or why nobody can work it.
type Workable = Result<Map<String, Value>, String>;

/// A claim as listed: its id, its path, and its record (`None` when it is
/// not a JSON object or cannot be read).
struct ClaimFile {
    id: String,
    path: PathBuf,
    record: Option<Map<String, Value>>,
}

/// The facts of a finished item, for its completed record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished<'a> {
    /// The agent that did it.
    pub agent: &'a str,
    /// When it finished.
    pub at: UnixMs,
    /// How long the work took.
    pub duration_ms: u64,
    /// What the work produced, if anything.
    pub result: Option<Value>,
}

impl CoordinationDir {
    /// The directory `dir`; items without their own `max_attempts` use this
    /// one (at least 1). Files are read up to [`DEFAULT_MAX_ITEM_BYTES`].
    pub fn new(dir: impl Into<PathBuf>, max_attempts: u32) -> Self {
        Self { dir: dir.into(), max_attempts: max_attempts.max(1), max_item_bytes: DEFAULT_MAX_ITEM_BYTES }
    }

    /// Reads files up to `bytes` (`coordination.max_item_bytes`); a larger
    /// item is dead-lettered, a larger record ignored.
    #[must_use]
    pub fn with_max_item_bytes(mut self, bytes: u64) -> Self {
        self.max_item_bytes = bytes;
        self
    }

    /// The bound on what is read from the directory.
    pub fn max_item_bytes(&self) -> u64 {
        self.max_item_bytes
    }

    /// Reads a claim as an item: a regular file (never through a link), up
    /// to the bound, as a JSON object. `Ok(None)` when it is gone;
    /// `Ok(Some(Err(why)))` when nobody can work it.
    fn read_claim(&self, id: &str) -> Result<Option<Workable>, ProtocolError> {
        let name = file_name(FileKind::Claimed, id);
        let mut buf = Vec::new();
        match read_record(&self.dir, &name, &mut buf, self.max_item_bytes, Links::Refuse) {
            Ok(None) => Ok(None),
            Ok(Some(_)) => Ok(Some(match serde_json::from_slice::<Value>(&buf) {
                Ok(Value::Object(item)) => Ok(item),
                Ok(_) => Err("not a JSON object".to_owned()),
                Err(e) => Err(format!("not JSON ({e})")),
            })),
            Err(e @ (RecordError::NotRegular(_) | RecordError::TooLarge { .. })) => Ok(Some(Err(e.to_string()))),
            Err(RecordError::Open(e) | RecordError::Stat(e) | RecordError::Read(e) | RecordError::Mtime(e)) => {
                Err(ProtocolError::io("read", &self.dir.join(&name))(e))
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of an item or record of this kind.
    pub fn item_path(&self, kind: FileKind, id: &str) -> PathBuf {
        self.dir.join(file_name(kind, id))
    }

    /// Whether a completed record for `id` exists (see [`completion_recorded`]).
    pub fn completion_recorded(&self, id: &str) -> bool {
        completion_recorded(&self.dir, id)
    }

    /// **claim**: `work_<id>.json` → `claimed_<id>.json` by rename (exactly
    /// one claimant wins), then the claim is rewritten with `claimed_by`,
    /// `claimed_at` and `status: claimed` (temp file and rename).
    ///
    /// # Errors
    /// A file operation failed other than losing the race.
    pub fn claim(&self, id: &str, agent: &str, now: UnixMs, durability: Durability) -> Result<Claim, ProtocolError> {
        if !valid_id(id) {
            return Ok(Claim::Lost);
        }
        let work = self.item_path(FileKind::Work, id);
        let claimed = self.item_path(FileKind::Claimed, id);
        match fs::rename(&work, &claimed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Claim::Lost),
            Err(e) => return Err(ProtocolError::io("claim", &work)(e)),
        }
        // A requeue may have raced a slow claimant that finished after all:
        // caught before any work is done, this is a leftover, not a duplicate.
        if self.completion_recorded(id) {
            let _ = fs::remove_file(&claimed);
            return Ok(Claim::AlreadyCompleted);
        }
        let mut item = match self.read_claim(id)? {
            None => return Ok(Claim::Lost),
            Some(Ok(item)) => item,
            Some(Err(why)) => {
                self.dead_letter_untouched(id, &why)?;
                return Ok(Claim::Poison(why));
            }
        };
        item.insert("claimed_by".into(), agent.into());
        item.insert("claimed_at".into(), format_rfc3339(now).into());
        item.insert("status".into(), "claimed".into());
        let body =
            serde_json::to_vec(&Value::Object(item.clone())).map_err(|e| ProtocolError::io("encode", &claimed)(io::Error::other(e)))?;
        write_atomic(&self.dir, &claimed, &body, durability)?;
        Ok(Claim::Won(item))
    }

    /// **complete**: publishes `completed_<id>.json` from the claimed item
    /// (without `claimed_by`/`claimed_at`, with `status: completed`,
    /// `agent_id`, `completed_at`, `duration_ms` and `result`) by `link()`,
    /// which never replaces an existing record, then removes the claim.
    ///
    /// # Errors
    /// The id is not a plain name, the record could not be written, or the
    /// claim not removed.
    pub fn complete(
        &self,
        id: &str,
        mut item: Map<String, Value>,
        done: Finished<'_>,
        durability: Durability,
    ) -> Result<Completion, ProtocolError> {
        if !valid_id(id) {
            return Err(ProtocolError::InvalidId(id.to_owned()));
        }
        let dest = self.item_path(FileKind::Completed, id);
        item.remove("claimed_by");
        item.remove("claimed_at");
        item.insert("status".into(), "completed".into());
        item.insert("agent_id".into(), done.agent.into());
        item.insert("completed_at".into(), format_rfc3339(done.at).into());
        item.insert("duration_ms".into(), done.duration_ms.into());
        if let Some(r) = done.result {
            item.insert("result".into(), r);
        }
        let body = serde_json::to_vec(&Value::Object(item)).map_err(|e| ProtocolError::io("encode", &dest)(io::Error::other(e)))?;
        let first = publish(&self.dir, &dest, &body, durability)?;
        if !first && !self.completion_recorded(id) {
            // Something that is not a completion holds the name (a link, a
            // directory, an empty file): removing the claim would lose the
            // item. It stays claimed, for a requeue.
            return Err(ProtocolError::NotARecord(dest));
        }
        let claimed = self.item_path(FileKind::Claimed, id);
        match fs::remove_file(&claimed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ProtocolError::io("remove", &claimed)(e)),
        }
        Ok(if first { Completion::Recorded } else { Completion::Duplicate })
    }

    /// **retry**: the claimant failed the item and gives it back: as
    /// `work_<id>.json` with `attempts + 1` and `last_error`, or
    /// dead-lettered as `failed_<id>.json` once attempts reach `max_attempts`.
    ///
    /// # Errors
    /// A file operation failed; the item stays claimed.
    pub fn retry(&self, id: &str, why: &str, now: UnixMs) -> Result<ItemOutcome, ProtocolError> {
        self.give_back(id, why, now)
    }

    /// **requeue**: steward takes back a stale claim (its claimant is dead or
    /// the claim is older than `claim_ttl`), exactly as a [`retry`](Self::retry):
    /// `attempts + 1`, or dead-lettered at `max_attempts`. A claim whose
    /// completion exists is [adopted](Self::adopt) instead.
    ///
    /// # Errors
    /// A file operation failed; the item stays claimed.
    pub fn requeue(&self, id: &str, why: &str, now: UnixMs) -> Result<ItemOutcome, ProtocolError> {
        self.give_back(id, why, now)
    }

    fn give_back(&self, id: &str, why: &str, now: UnixMs) -> Result<ItemOutcome, ProtocolError> {
        if !valid_id(id) {
            return Ok(ItemOutcome::Kept(format!("{id:?} is not a plain item id")));
        }
        let claimed = self.item_path(FileKind::Claimed, id);
        let Some(read) = self.read_claim(id)? else { return Ok(ItemOutcome::Gone) };
        if self.completion_recorded(id) {
            return self.adopt(id);
        }
        let mut item = match read {
            Ok(item) => item,
            // A claim nobody can work cannot be annotated either: it is a
            // poison item: dead-letter it untouched, never delete it.
            Err(why) => return self.dead_letter_untouched(id, &why),
        };
        let attempts = item.get("attempts").map_or(Some(0), count).unwrap_or(0).saturating_add(1);
        let max = item.get("max_attempts").and_then(count).map_or(u64::from(self.max_attempts), |m| m.max(1));
        let dead = attempts >= max;
        let dest = if dead { self.item_path(FileKind::Failed, id) } else { self.item_path(FileKind::Work, id) };
        if dest.exists() {
            let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            return Ok(ItemOutcome::Kept(format!("{name} already exists; the claim stays")));
        }
        annotate(&mut item, attempts, why, dead, now);
        let body = serde_json::to_vec(&Value::Object(item)).map_err(|e| ProtocolError::io("encode", &claimed)(io::Error::other(e)))?;
        // Attempts are counted in the claim before it moves: a crash between
        // the two steps leaves the claim with its attempt already counted.
        write_atomic(&self.dir, &claimed, &body, Durability::Flushed)?;
        fs::rename(&claimed, &dest).map_err(ProtocolError::io("rename", &claimed))?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        Ok(if dead { ItemOutcome::DeadLettered(attempts) } else { ItemOutcome::Requeued(attempts) })
    }

    /// Dead-letters a claim as it is (it cannot be annotated), for `why`.
    fn dead_letter_untouched(&self, id: &str, why: &str) -> Result<ItemOutcome, ProtocolError> {
        let claimed = self.item_path(FileKind::Claimed, id);
        let failed = self.item_path(FileKind::Failed, id);
        if fs::symlink_metadata(&failed).is_ok() {
            return Ok(ItemOutcome::Kept(format!("{} already exists", file_name(FileKind::Failed, id))));
        }
        fs::rename(&claimed, &failed).map_err(ProtocolError::io("rename", &claimed))?;
        Ok(ItemOutcome::Poisoned(why.to_owned()))
    }

    /// **adopt**: a claim whose completed record exists is a leftover (its
    /// claimant crashed between publishing and removing it): the record is
    /// authoritative and the claim is removed. Without such a record the
    /// claim stays.
    ///
    /// # Errors
    /// The removal failed.
    pub fn adopt(&self, id: &str) -> Result<ItemOutcome, ProtocolError> {
        if !valid_id(id) {
            return Ok(ItemOutcome::Kept(format!("{id:?} is not a plain item id")));
        }
        if !self.completion_recorded(id) {
            return Ok(ItemOutcome::Kept(format!(
                "completed_{id}.json is not a completed record (missing, empty, or not a regular file); the claim stays"
            )));
        }
        let claimed = self.item_path(FileKind::Claimed, id);
        match fs::remove_file(&claimed) {
            Ok(()) => Ok(ItemOutcome::LeftoverRemoved),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ItemOutcome::Gone),
            Err(e) => Err(ProtocolError::io("remove", &claimed)(e)),
        }
    }

    /// **release**: the claimant gives an item back uncounted, because the
    /// fault was its own (its handler cannot run at all), not the item's.
    /// The claim is renamed back as it stands: `attempts` is not counted,
    /// and its `claimed_by`/`claimed_at` stay until the next claim rewrites
    /// them. Never replaces a `work_<id>.json` that appeared meanwhile.
    ///
    /// # Errors
    /// The id is not a plain name, or the rename failed; the item stays claimed.
    pub fn release(&self, id: &str) -> Result<(), ProtocolError> {
        if !valid_id(id) {
            return Err(ProtocolError::InvalidId(id.to_owned()));
        }
        let work = self.item_path(FileKind::Work, id);
        if work.exists() {
            return Ok(());
        }
        let claimed = self.item_path(FileKind::Claimed, id);
        fs::rename(&claimed, &work).map_err(ProtocolError::io("rename", &claimed))
    }

    /// The pending items (`work_<id>.json`), in listing order: the ids of
    /// the regular files, which may be claimed, and the names of entries
    /// that are not regular files (links, FIFOs, directories), which must
    /// never be claimed. Empty when the directory cannot be listed.
    pub fn pending(&self) -> Pending {
        let mut pending = Pending::default();
        let Ok(entries) = fs::read_dir(&self.dir) else { return pending };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some((FileKind::Work, id)) = classify(name.as_encoded_bytes()) else { continue };
            let Ok(id) = std::str::from_utf8(id) else { continue };
            if id.is_empty() {
                continue;
            }
            // d_type from the listing: no stat for the usual regular file.
            match e.file_type() {
                Ok(t) if t.is_file() => pending.ids.push(id.to_owned()),
                Ok(t) => pending.refused.push((file_name(FileKind::Work, id), crate::io::kind_of(&t))),
                Err(_) => pending.refused.push((file_name(FileKind::Work, id), "of an unknown type")),
            }
        }
        pending
    }

    /// Each claim with the claim record read, sorted by id.
    fn claims(&self) -> Result<Vec<ClaimFile>, ProtocolError> {
        let mut out = Vec::new();
        // An entry that cannot be read is skipped, not fatal: the others
        // still need their repairs.
        for entry in fs::read_dir(&self.dir).map_err(ProtocolError::io("list", &self.dir))?.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((FileKind::Claimed, id)) = classify(name.as_bytes()) else { continue };
            let Ok(id) = std::str::from_utf8(id) else { continue };
            let record = self.read_claim(id).ok().flatten().and_then(Result::ok);
            out.push(ClaimFile { id: id.to_owned(), path: entry.path(), record });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Ids of the claims whose `claimed_by` is `agent`, sorted; empty when
    /// the directory cannot be listed.
    pub fn claims_of(&self, agent: &str) -> Vec<String> {
        let claims = self.claims().unwrap_or_default();
        claims
            .into_iter()
            .filter(|c| c.record.as_ref().and_then(|m| m.get("claimed_by")).and_then(Value::as_str) == Some(agent))
            .map(|c| c.id)
            .collect()
    }

    /// Ids of the claims at least `max_age_ms` old (by `claimed_at`, else
    /// the file's mtime), or whose completion is recorded, sorted.
    ///
    /// # Errors
    /// The directory cannot be listed.
    pub fn claims_older_than(&self, max_age_ms: i64, now: UnixMs) -> Result<Vec<String>, ProtocolError> {
        let mut ids = Vec::new();
        for ClaimFile { id, path, record } in self.claims()? {
            let mtime = match fs::symlink_metadata(&path).and_then(|m| m.modified()) {
                Ok(t) => unix_ms(t),
                Err(_) => continue,
            };
            // A claimed_at in the future (clock skew, milliseconds read as
            // seconds) would keep the claim from ever going stale: the file's
            // mtime stands in, as for heartbeats.
            let at = record
                .as_ref()
                .and_then(|m| m.get("claimed_at"))
                .and_then(parse_json_timestamp)
                .filter(|t| *t <= now.saturating_add(FUTURE_TOLERANCE_MS))
                .unwrap_or(mtime);
            if now - at >= max_age_ms || self.completion_recorded(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Counts items by state from their names, and the ids found in more
    /// than one state (there must be none once the claim protocol settles).
    pub fn census(&self) -> Census {
        let mut census = Census::default();
        let mut seen: std::collections::HashMap<Vec<u8>, u32> = std::collections::HashMap::new();
        let Ok(entries) = fs::read_dir(&self.dir) else { return census };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some((kind, id)) = classify(name.as_encoded_bytes()) else { continue };
            let counter = match kind {
                FileKind::Work => &mut census.pending,
                FileKind::Claimed => &mut census.in_flight,
                FileKind::Completed => &mut census.completed,
                FileKind::Failed => &mut census.dead_lettered,
                FileKind::Agent | FileKind::Telemetry => continue,
            };
            *counter += 1;
            *seen.entry(id.to_vec()).or_default() += 1;
        }
        census.distinct = seen.len() as u64;
        census.in_several_states = seen.values().filter(|&&n| n > 1).count() as u64;
        census
    }

    /// Makes the directory's renames durable; a failure loses nothing
    /// already done.
    pub fn sync(&self) {
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }
}

/// Clock skew tolerated before a timestamp counts as being in the future.
pub const FUTURE_TOLERANCE_MS: i64 = 60_000;

/// Whether a completed record for `id` exists in `dir`: a non-empty
/// regular file (not a directory, not a symbolic link), the only kind of
/// completion that may justify removing a claim.
pub fn completion_recorded(dir: &Path, id: &str) -> bool {
    fs::symlink_metadata(dir.join(file_name(FileKind::Completed, id))).is_ok_and(|m| m.is_file() && m.len() > 0)
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

/// The fields a retry, requeue or dead-letter adds to an item.
fn annotate(item: &mut Map<String, Value>, attempts: u64, why: &str, dead: bool, now: UnixMs) {
    let ts = format_rfc3339(now);
    if let Some(by) = item.remove("claimed_by") {
        item.insert("last_claimed_by".into(), by);
    }
    item.remove("claimed_at");
    item.insert("attempts".into(), attempts.into());
    item.insert("status".into(), if dead { "failed" } else { "pending" }.into());
    if dead {
        item.insert("error".into(), format!("{why}; attempts exhausted ({attempts})").into());
        item.insert("dead_lettered_at".into(), ts.into());
    } else {
        item.insert("last_error".into(), why.into());
        item.insert("requeued_at".into(), ts.into());
    }
}

#[cfg(test)]
mod tests;
