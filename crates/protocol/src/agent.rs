//! Agent records and the leftovers of a dead writer: what the worker and
//! the supervisor write about agents, and sweep after them.

use std::fs;

use serde_json::{Map, Value};

use crate::error::ProtocolError;
use crate::io::{read_record, write_atomic, Durability, Links};
use crate::name::{agent_file_name, temp_prefix, valid_id};
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
