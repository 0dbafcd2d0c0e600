//! Rendering: the JSON envelope, readable tables, and stdout writes that
//! never panic.

/// `print!` that never panics: a closed stdout (`steward demo | head`)
/// marks the output closed, and long runs stop gracefully on it.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*), false) };
}

/// `println!` that never panics (see `out!`).
macro_rules! outln {
    () => { $crate::output::write_out(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*), true) };
}

pub(crate) use {out, outln};

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::{json, Value};

use steward_runtime::now_ms;

/// The `--json` envelope of spec/cli.md.
pub fn envelope(command: &str, success: bool, data: Value, errors: Vec<String>, warnings: Vec<String>) -> Value {
    json!({
        "command": command,
        "success": success,
        "timestamp": steward_core::time::format_rfc3339(now_ms()),
        "data": data,
        "errors": errors,
        "warnings": warnings,
    })
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write to stdout has failed (the reader went away): long runs
/// take it as a request to stop.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::SeqCst)
}

/// Writes to stdout (what `out!`/`outln!` expand to); a failure is
/// remembered, never a panic.
pub fn write_out(args: std::fmt::Arguments<'_>, newline: bool) {
    if stdout_closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let ok = out.write_fmt(args).and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) }).and_then(|()| out.flush());
    if ok.is_err() {
        STDOUT_CLOSED.store(true, Ordering::SeqCst);
    }
}

/// Prints one JSON document and a newline on stdout. A closed pipe
/// (`| head`) is not an error worth a panic.
pub fn print_json<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    let ok = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::other)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if ok.is_err() {
        STDOUT_CLOSED.store(true, Ordering::SeqCst);
    }
}

/// A plain text table: left-aligned columns, two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Seconds as a short age: `42s`, `5m`, `3h`, `2d`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()], vec!["q".into(), "22".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\nq    22\n");
    }

    #[test]
    fn ages_read_short() {
        assert_eq!([age(5), age(300), age(7200), age(200_000)], ["5s", "5m", "2h", "2d"]);
    }
}
