//! Work done by a program of the user's: the item's JSON on its stdin,
//! its stdout the result.

use std::process::Command;
use std::time::Duration;

use serde_json::{Map, Value};

/// How much of a failing handler's stderr goes into the item's `last_error`.
const STDERR_TAIL_CHARS: usize = 2000;

/// The last `n` characters of `text`, marked as cut when they are.
fn tail_chars(text: &str, n: usize) -> String {
    let count = text.chars().count();
    if count <= n {
        return text.to_owned();
    }
    format!("…{}", text.chars().skip(count - n).collect::<String>())
}

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
    let finished = steward_actuators::process::run_with_timeout(cmd, Some(&input), true, timeout, 1 << 20)
        .map_err(|e| ItemError::Fatal(format!("cannot run {program}: {e}")))?
        .ok_or_else(|| ItemError::Failed(format!("{program} did not finish within {} s", timeout.as_secs_f64())))?;
    // What the handler says on stderr still reaches the worker's own log.
    if !finished.stderr.is_empty() {
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(&finished.stderr);
    }
    if !finished.status.success() {
        // The end of what it said on stderr is usually why: keep its tail.
        let said = String::from_utf8_lossy(&finished.stderr);
        let tail = tail_chars(said.trim(), STDERR_TAIL_CHARS);
        let why = if tail.is_empty() { String::new() } else { format!(": {tail}") };
        return Err(ItemError::Failed(format!("{program} exited with {}{why}", finished.status)));
    }
    let out = finished.stdout;
    let text = String::from_utf8_lossy(&out).trim().to_owned();
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&text).unwrap_or(Value::String(text))))
}
