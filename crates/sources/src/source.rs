//! The [`Source`] trait and its error.

use steward_core::snapshot::Snapshot;
use steward_core::time::UnixMs;

/// A source failed to produce any snapshot at all. Unreadable single inputs
/// are warnings inside the snapshot, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The target exists but cannot be listed.
    #[error("cannot read the coordination directory {path}")]
    ListDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A source of the embedder's own failed, for its own reason.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
    /// The target path exists but is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: std::path::PathBuf,
    },
}

/// Something that can observe the world.
///
/// Implement it to feed the loop from anything: a queue's depth over HTTP,
/// a database table, a metrics system. A snapshot is plain data; fill what
/// the source knows (`work_queue_size`, `agents`, ...) and leave the rest
/// at its default, and say what could not be read in `warnings`.
pub trait Source {
    /// What this source reads, for messages and the lock's description:
    /// a directory, a URL.
    fn target(&self) -> String;

    /// Checks, before the engine creates anything (a lock, the state
    /// directory, the journal), that the target can be what it is meant to
    /// be. A wrong target is bad input. The default accepts any.
    ///
    /// # Errors
    /// The target is of the wrong kind (e.g. a file where a directory belongs).
    fn check(&self) -> Result<(), SourceError> {
        Ok(())
    }

    /// Takes a snapshot; `now` stands in for the clock (mtimes are compared with it).
    ///
    /// # Errors
    /// Only when no snapshot can be built at all; per-file problems are warnings.
    fn snapshot(&self, now: UnixMs) -> Result<Snapshot, SourceError>;
}
