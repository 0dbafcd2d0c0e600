//! The [`Actuator`] trait and its error.

use steward_core::decision::Action;
use steward_core::time::UnixMs;

/// An action that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// A file operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Some items were handled and some failed; the report says which.
    #[error("{failed} of {total} items failed: {first}")]
    Partial {
        /// Items that failed.
        failed: usize,
        /// Items in the action.
        total: usize,
        /// The first failure, for the log.
        first: String,
    },
    /// The actuator will not do it now, and says why.
    #[error("{0}")]
    Refused(String),
    /// A step of the claim protocol failed.
    #[error(transparent)]
    Protocol(#[from] steward_protocol::ProtocolError),
    /// This actuator does not handle the action.
    #[error("{actuator} does not handle {action} actions")]
    Unsupported {
        /// The actuator.
        actuator: &'static str,
        /// The action kind.
        action: &'static str,
    },
}

/// Something that changes the world.
pub trait Actuator: Send {
    /// The actuator's name, for logs and outcomes.
    fn name(&self) -> &'static str;
    /// Whether this actuator applies this kind of action.
    fn handles(&self, action: &Action) -> bool;
    /// Applies the action; returns a sentence saying what it did.
    ///
    /// # Errors
    /// The action failed, wholly or in part.
    fn apply(&mut self, action: &Action, now: UnixMs) -> Result<String, ActuatorError>;
}

/// The error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The kind name of an action, for messages.
pub fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::Scale { .. } => "scale",
        Action::Restart { .. } => "restart",
        Action::RequeueClaims { .. } => "requeue_claims",
        Action::RemoveLeftoverClaims { .. } => "remove_leftover_claims",
        Action::ClearOldWork { .. } => "clear_old_work",
        Action::Tidy { .. } => "tidy",
        Action::Advisory { .. } => "advisory",
    }
}
