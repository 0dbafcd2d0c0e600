//! Sources build [`Snapshot`]s from the world.
//!
//! **Architecture invariant:** a source only reads. It never calls an
//! actuator and never changes what it observes.

pub mod coordination;

use steward_core::snapshot::Snapshot;
use steward_core::time::UnixMs;

pub use coordination::{CoordinationConfig, CoordinationSource};

/// A source failed to produce any snapshot at all. Unreadable single inputs
/// are warnings inside the snapshot, not errors.
#[derive(Debug, thiserror::Error)]
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
    /// The target path exists but is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: std::path::PathBuf,
    },
}

/// Something that can observe the world.
pub trait Source {
    /// Takes a snapshot; `now` stands in for the clock (mtimes are compared with it).
    ///
    /// # Errors
    /// Only when no snapshot can be built at all; per-file problems are warnings.
    fn snapshot(&self, now: UnixMs) -> Result<Snapshot, SourceError>;
}
