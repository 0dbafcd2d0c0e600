//! The file grammar: which names are part of the format, and how steward
//! names what it writes.

/// The kinds of file the directory holds, by name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `agent_<id>.json`: one agent.
    Agent,
    /// `work_<id>.json`: a pending work item.
    Work,
    /// `claimed_<id>.json`: a work item an agent is processing.
    Claimed,
    /// `completed_<id>.json`: a finished work item.
    Completed,
    /// `failed_<id>.json`: a dead-lettered work item.
    Failed,
    /// `telemetry_<id>.json`: a telemetry record.
    Telemetry,
}

impl FileKind {
    /// The name prefix, with its underscore (`"work_"`).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Agent => "agent_",
            Self::Work => "work_",
            Self::Claimed => "claimed_",
            Self::Completed => "completed_",
            Self::Failed => "failed_",
            Self::Telemetry => "telemetry_",
        }
    }
}

const KINDS: [FileKind; 6] =
    [FileKind::Agent, FileKind::Work, FileKind::Claimed, FileKind::Completed, FileKind::Failed, FileKind::Telemetry];

/// The suffix every file of the format has.
const SUFFIX: &str = ".json";

/// Classifies a file name: `Some((kind, id))` when it matches exactly
/// `<prefix>_<id>.json` (case-sensitive), else `None`. The id may be empty
/// (`work_.json`): such a file is counted, as tools that count names do.
pub fn classify(name: &[u8]) -> Option<(FileKind, &[u8])> {
    let stem = name.strip_suffix(SUFFIX.as_bytes())?;
    KINDS.iter().find_map(|kind| stem.strip_prefix(kind.prefix().as_bytes()).map(|id| (*kind, id)))
}

/// The file name of an item or record: `file_name(FileKind::Work, "w1")` is `work_w1.json`.
pub fn file_name(kind: FileKind, id: &str) -> String {
    format!("{}{id}{SUFFIX}", kind.prefix())
}

/// The agent file of an agent id: `agent_3` → `agent_3.json`, `w1` →
/// `agent_w1.json` (an id that already carries the prefix keeps it once).
pub fn agent_file_name(id: &str) -> String {
    match id.strip_prefix(FileKind::Agent.prefix()) {
        Some(rest) => file_name(FileKind::Agent, rest),
        None => file_name(FileKind::Agent, id),
    }
}

/// Whether an id names a file inside the directory and nothing else: no
/// `/`, no NUL, not `.` or `..`. (An empty id names `work_.json`, which is
/// odd but inside the directory.)
pub fn valid_id(id: &str) -> bool {
    !id.contains('/') && !id.contains('\0') && id != "." && id != ".."
}

/// The start of every temp file steward writes in the directory. It starts
/// with a dot, so it never matches the format and listings skip it.
pub const TEMP_PREFIX: &str = ".steward-tmp-";

/// The start of the temp files of one process: `.steward-tmp-<pid>-`.
pub fn temp_prefix(pid: u32) -> String {
    format!("{TEMP_PREFIX}{pid}-")
}

/// Whether a name is one of steward's temp files.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_matches_exact_prefixes_only() {
        assert_eq!(classify(b"agent_3.json"), Some((FileKind::Agent, &b"3"[..])));
        assert_eq!(classify(b"work_.json"), Some((FileKind::Work, &b""[..])));
        assert_eq!(classify(b"claimed_w1.json"), Some((FileKind::Claimed, &b"w1"[..])));
        for other in [
            &b"Agent_3.json"[..],
            b"agent_3.json.tmp",
            b"agent3.json",
            b".work_1.json",
            b"work_1.JSON",
            b"agents_1.json",
            b"coordination_log.json",
        ] {
            assert_eq!(classify(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn file_names_round_trip_through_classify() {
        assert_eq!(classify(b"claimed_a_b.json"), Some((FileKind::Claimed, &b"a_b"[..])));
        for kind in KINDS {
            let name = file_name(kind, "x7");
            assert_eq!(classify(name.as_bytes()), Some((kind, &b"x7"[..])));
        }
    }

    #[test]
    fn agent_files_and_ids() {
        assert_eq!(agent_file_name("agent_3"), "agent_3.json");
        assert_eq!(agent_file_name("w1"), "agent_w1.json");
        assert!(valid_id("w-1.2") && valid_id("") && !valid_id("../x") && !valid_id("..") && !valid_id("a\0b"));
        assert!(is_temp_name(&format!("{}7", temp_prefix(42))) && classify(temp_prefix(42).as_bytes()).is_none());
    }
}
