//! The protocol's one error type.

use std::path::PathBuf;

/// A protocol step that could not be done. The item stays where it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Something that is not a completed record (a link, a directory, an
    /// empty file) holds the name a completion needs; the claim stays.
    #[error("{0} exists but is not a completed record (not a non-empty regular file); the claim stays for a requeue")]
    NotARecord(PathBuf),
    /// The id does not name a file inside the directory (`/`, NUL, `.`, `..`).
    #[error("{0:?} is not a plain item or agent id")]
    InvalidId(String),
    /// A file operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done (`create`, `rename`, `read`, ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ProtocolError {
    /// A closure that wraps an I/O error with what was done to which file.
    pub(crate) fn io<'a>(op: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Self::Io { op, path: path.to_owned(), source }
    }
}
