//! How the binary judges an error: bad usage or bad input (exit 2), or a
//! failure (exit 1).

use steward_runtime::worker::WorkerError;
use steward_runtime::RuntimeError;

use crate::config::ConfigError;

/// An error in what the user asked for (bad flag, bad input file): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Whether any error in the chain is the user's (exit 2) rather than the system's (exit 1).
pub fn is_usage(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.is::<UsageError>()
            || e.is::<ConfigError>()
            || e.downcast_ref::<RuntimeError>().is_some_and(RuntimeError::is_bad_input)
            || e.downcast_ref::<WorkerError>().is_some_and(WorkerError::is_bad_input)
    })
}

/// The error and its causes on one line, each part once.
pub fn one_line(err: &anyhow::Error) -> String {
    err.chain().map(ToString::to_string).fold(String::new(), |mut acc, part| {
        if !acc.contains(&part) {
            if !acc.is_empty() {
                acc.push_str(": ");
            }
            acc.push_str(&part);
        }
        acc
    })
}
