//! Work done by a program of the user's: the item's JSON on its stdin,
//! its stdout the result.

use std::process::Command;
use std::time::Duration;

use serde_json::{Map, Value};

/// Why an item was not done.
pub(super) enum ItemError {
    /// The item failed: retry it, or dead-letter it at max_attempts.
    Failed(String),
    /// The worker cannot work any item (its handler cannot run): stop.
    Fatal(String),
}

/// Runs `argv` with the item on stdin; its stdout (JSON if it parses,
/// else text) becomes the result.
pub(super) fn exec_item(argv: &[String], item: &Map<String, Value>, timeout: Duration) -> Result<Option<Value>, ItemError> {
    let Some((program, rest)) = argv.split_first() else { return Err(ItemError::Fatal("--exec needs a program".into())) };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    let input = serde_json::to_vec(item).unwrap_or_default();
    let finished = steward_actuators::process::run_with_timeout(cmd, Some(&input), false, timeout, 1 << 20)
        .map_err(|e| ItemError::Fatal(format!("cannot run {program}: {e}")))?
        .ok_or_else(|| ItemError::Failed(format!("{program} did not finish within {} s", timeout.as_secs_f64())))?;
    if !finished.status.success() {
        return Err(ItemError::Failed(format!("{program} exited with {}", finished.status)));
    }
    let out = finished.output;
    let text = String::from_utf8_lossy(&out).trim().to_owned();
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&text).unwrap_or(Value::String(text))))
}
