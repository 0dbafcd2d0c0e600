//! Agent records and the leftovers of a dead writer: what the worker and
//! the supervisor write about agents, and sweep after them.

use std::fs;

use serde_json::{Map, Value};

use crate::error::ProtocolError;
use steward_core::time::UnixMs;

use crate::io::{read_record, unix_ms, write_atomic, Durability, Links};
use crate::name::{agent_file_name, classify, is_temp_name, temp_prefix, valid_id, FileKind};
use crate::transition::CoordinationDir;

/// An agent's reported status, as far as steward acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    /// Working an item (`"status": "busy"`).
    Busy,
    /// Any other status.
    Other,
}

impl CoordinationDir {
    /// Writes an agent's record (`agent_<id>.json`) atomically.
    ///
    /// # Errors
    /// The id is not a plain name, or the write failed.
    pub fn write_agent(&self, id: &str, record: &Value, durability: Durability) -> Result<(), ProtocolError> {
        if !valid_id(id) {
            return Err(ProtocolError::InvalidId(id.to_owned()));
        }
        let path = self.path().join(agent_file_name(id));
        write_atomic(self.path(), &path, record.to_string().as_bytes(), durability)
    }

    /// Removes an agent's record: the agent is gone. A record already gone is fine.
    pub fn remove_agent(&self, id: &str) {
        let _ = fs::remove_file(self.path().join(agent_file_name(id)));
    }

    /// What an agent's record says it is doing; `None` when it has no readable record.
    pub fn agent_status(&self, id: &str) -> Option<AgentStatus> {
        let mut buf = Vec::new();
        read_record(self.path(), &agent_file_name(id), &mut buf, self.max_item_bytes(), Links::Refuse).ok()??;
        let record: Map<String, Value> = serde_json::from_slice(&buf).ok()?;
        Some(if record.get("status").and_then(Value::as_str) == Some("busy") { AgentStatus::Busy } else { AgentStatus::Other })
    }

    /// Removes what a writer that stopped left behind, an agent record or a
    /// temp file, only if it is still a regular file last written at or
    /// before `unchanged_since` (a writer that came back keeps its file).
    /// `Ok(false)` when it was left (changed since, gone, or not such a file).
    ///
    /// # Errors
    /// The name is neither an agent record nor a temp file, or the removal failed.
    pub fn remove_stale(&self, name: &str, unchanged_since: UnixMs) -> Result<bool, ProtocolError> {
        let kind_ok = matches!(classify(name.as_bytes()), Some((FileKind::Agent, _))) || is_temp_name(name);
        if !kind_ok || !valid_id(name) {
            return Err(ProtocolError::InvalidId(name.to_owned()));
        }
        let path = self.path().join(name);
        let Ok(meta) = fs::symlink_metadata(&path) else { return Ok(false) };
        let modified = meta.modified().map(unix_ms).unwrap_or(UnixMs::MAX);
        if !meta.is_file() || modified > unchanged_since {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ProtocolError::io("remove", &path)(e)),
        }
    }

    /// Removes the temp files of a process that has died: nobody will
    /// rename them, and they never count as records. Workers of steward
    /// 0.1.0 named their completions' temp files `.steward-worker-<pid>-`;
    /// those are swept too, for workers adopted across an upgrade.
    pub fn remove_temp_files_of(&self, pid: u32) {
        let prefixes = [temp_prefix(pid), format!(".steward-worker-{pid}-")];
        let Ok(entries) = fs::read_dir(self.path()) else { return };
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(|n| prefixes.iter().any(|p| n.starts_with(p.as_str()))) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}
