//! The runtime's one error type.

use std::path::PathBuf;

use steward_actuators::ActuatorError;
use steward_sources::SourceError;
use steward_store::JournalError;

/// What stopped a cycle, a rollback or the engine's construction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// High availability: another replica leads; this one does not act.
    #[error("this replica stands by: {0}")]
    NotLeader(String),
    /// Another executor holds the target's lock.
    #[error("another steward{holder} is already executing on {target}; this one did nothing")]
    LockBusy {
        /// Who holds it, as far as the lock file says (` (pid 123)`), or empty.
        holder: String,
        /// The target.
        target: String,
    },
    /// The journal belongs to another target: using it would mix their decisions.
    #[error("the journal {journal} belongs to {owner}, not {target}: give {target} its own journal (--state-dir; on PostgreSQL, its own ?schema=)")]
    ForeignJournal {
        /// The journal (its file, or its URL without the password).
        journal: String,
        /// The target it records.
        owner: String,
        /// The target asked for.
        target: String,
    },
    /// The lock file's name holds something that is not a lock file of
    /// steward's (a link, a hard link, another file): it is left untouched.
    #[error("refusing to use the lock file {path}: {why}; remove it if it is not yours")]
    NotALockFile {
        /// The lock file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A file operation of the runtime's own failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A setting the engine was built with is invalid (`key: why`).
    #[error("{0}")]
    BadSetting(String),
    /// The audit key could not be read or created.
    #[error(transparent)]
    Audit(#[from] steward_store::audit::AuditError),
    /// The source could not produce a snapshot.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The journal could not be read or written; when writing, nothing was executed.
    #[error("{what}")]
    Journal {
        /// What was being done (`journaling the cycle`).
        what: String,
        /// Why.
        #[source]
        source: JournalError,
    },
    /// The supervisor could not be started (its registry cannot be read or written).
    #[error("starting the supervisor")]
    Fleet(#[source] ActuatorError),
    /// The running executable cannot be found (to run its `worker` command).
    #[error("finding the steward executable for the built-in worker")]
    Executable(#[source] std::io::Error),
    /// The decision named for rollback is not in the journal.
    #[error("no decision {id:?} in the journal {journal}")]
    UnknownDecision {
        /// The id asked for.
        id: String,
        /// The journal searched.
        journal: String,
    },
    /// A rollback that must not happen, and why.
    #[error("refusing to roll back {id}: {why}")]
    RollbackRefused {
        /// The decision.
        id: String,
        /// Why not.
        why: String,
    },
    /// The rollback's action ran and did not take effect.
    #[error("rollback of {id} did not take effect: {reason}")]
    RollbackFailed {
        /// The decision.
        id: String,
        /// What the actuator said.
        reason: String,
    },
    /// The engine was built without something it needs.
    #[error("the engine needs {0}")]
    Incomplete(&'static str),
}

impl RuntimeError {
    /// Whether the error is in what the user asked for (an unknown
    /// decision, a target of the wrong kind), not in the system: the CLI
    /// exits 2 for it.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::UnknownDecision { .. }
                | Self::ForeignJournal { .. }
                | Self::BadSetting(_)
                | Self::Source(SourceError::NotADirectory { .. })
        )
    }

    /// A journal error with what was being done.
    pub(crate) fn journal(what: impl Into<String>) -> impl FnOnce(JournalError) -> Self {
        let what = what.into();
        move |source| Self::Journal { what, source }
    }

    /// An I/O error with what was being done to which file.
    pub(crate) fn io<'a>(what: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Self::Io { what, path: path.to_owned(), source }
    }
}

/// The error and its causes on one line, each cause once.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}
