//! The checks of an archived journal: it opens, SQLite finds it sound, its
//! audit chain verifies, and the caller's own check passes.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use steward_store::audit::{self, AuditKey};
use steward_store::Journal;

use crate::error::BackupError;
use crate::layout::{AUDIT_HEAD_NAME, AUDIT_KEY_NAME};

/// A check of the journal that the caller adds to the archive's own
/// (SQLite's integrity check and the audit chain). Called with the path of
/// the journal extracted from the archive (`.../state/journal.db`, with
/// the archived `audit.key` and `audit.head` beside it); `Ok(summary)` or
/// `Err(reason)`.
pub type JournalCheck<'a> = &'a dyn Fn(&Path) -> Result<String, String>;

/// What the checks of an archived journal found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalReport {
    /// Cycles recorded in it.
    pub cycles: u64,
    /// The coordination directory it belongs to, as it records it.
    pub owner: Option<String>,
    /// Audit records verified.
    pub audit_records: u64,
    /// The audit chain's check, in words.
    pub audit: String,
    /// What the caller's check said.
    pub check: String,
}

/// Opens the extracted journal read-only, runs SQLite's integrity check,
/// verifies the audit chain (with the archived key and head), then runs
/// the caller's check.
pub(crate) fn check_journal_file(archive: &Path, journal: &Path, check: JournalCheck<'_>) -> Result<JournalReport, BackupError> {
    let bad = |reason: String| BackupError::BadJournal { archive: archive.to_owned(), reason };
    let result = (|| {
        let opened = Journal::open_existing(journal).map_err(|e| error_chain(&e))?;
        let Some(opened) = opened else {
            return Err("it is not a steward journal (no schema)".to_owned());
        };
        opened.integrity_check().map_err(|e| error_chain(&e))?;
        let cycles = opened.cycle_count().map_err(|e| error_chain(&e))?;
        let owner = opened.owner().map_err(|e| error_chain(&e))?;
        let (audit_records, audit) = check_audit(journal, &opened)?;
        drop(opened);
        let check = check(journal)?;
        Ok(JournalReport { cycles, owner, audit_records, audit, check })
    })();
    // A read-only open may leave nothing, but never let a sidecar through.
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = journal.as_os_str().to_owned();
        side.push(suffix);
        let _ = fs::remove_file(PathBuf::from(side));
    }
    result.map_err(bad)
}

/// Verifies the audit chain with the archived key (or, without one, the
/// public key the journal records) and the archived head file: every
/// record links to the one before, matches its hash and is signed, and
/// none the head names is missing.
fn check_audit(path: &Path, journal: &Journal) -> Result<(u64, String), String> {
    if !has_audit_table(path)? {
        return Ok((0, "no audit chain (a journal from before audit)".to_owned()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let recorded = journal.audit_pubkey().map_err(|e| error_chain(&e))?;
    let key_file = dir.join(AUDIT_KEY_NAME);
    let (key, whose) = if key_file.exists() {
        let key = AuditKey::load(&key_file).map_err(|e| format!("the archived {AUDIT_KEY_NAME}: {e}"))?;
        (key.public(), format!("the archived key {}", key.public_hex()))
    } else if let Some(hex) = &recorded {
        // Proves the chain whole, not who signed it: say so.
        (
            audit::parse_public_key(hex).map_err(|e| e.to_string())?,
            format!("the key the journal records ({hex}; no {AUDIT_KEY_NAME} archived)"),
        )
    } else {
        let n = journal.audit_records(None, None, 0, 1).map_err(|e| error_chain(&e))?.len();
        return if n == 0 {
            Ok((0, "no audit records".to_owned()))
        } else {
            Err(format!("it holds audit records but neither a key nor {AUDIT_KEY_NAME} to check them"))
        };
    };
    let head = audit::read_head(&dir.join(AUDIT_HEAD_NAME))?;
    match journal.verify_audit(&key, None, head.as_ref()).map_err(|e| error_chain(&e))? {
        Ok(v) if v.records == 0 => Ok((0, "no audit records".to_owned())),
        Ok(v) => Ok((
            v.records,
            format!("audit chain ok: {} records (seq {}..{}), every signature valid for {whose}", v.records, v.first_seq, v.last_seq),
        )),
        Err(b) => {
            let note = match &recorded {
                Some(r) if *r != audit::to_hex(key.as_bytes()) => format!(" (the journal was first signed with key {r})"),
                _ => String::new(),
            };
            Err(format!("audit chain broken at seq {}: {}{note}", b.seq, b.reason))
        }
    }
}

/// Whether the journal has the audit chain's table (journals written
/// before audit have none).
fn has_audit_table(path: &Path) -> Result<bool, String> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(|e| e.to_string())?;
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit'", [], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
        .map_err(|e| e.to_string())
}

/// An error and its causes on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
