//! The `steward` binary: parses flags, loads the config, wires the layers
//! and reports errors once, mapped to exit codes (0 ok, 1 failure, 2 bad
//! usage or bad input).

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

mod cli;
mod commands;
mod config;
mod daemon;
mod demo;
mod driver;
mod engine;
mod otel;
mod output;
mod predict;
mod worker;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

/// An error in what the user asked for (bad flag, bad config): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The error and its causes on one line.
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

fn init_logging(verbose: u8, log_file: Option<&std::path::Path>, logs: (u64, u32), daemon: bool) {
    use std::io::IsTerminal;
    let json_stderr = daemon && !std::io::stderr().is_terminal();
    let default = match (verbose, log_file.is_some() || daemon) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    match log_file {
        // Daemonized: JSON lines to a file rotated by size.
        Some(path) => {
            let file: &'static daemon::RotatingFile = Box::leak(Box::new(daemon::RotatingFile::new(path.to_owned(), logs.0, logs.1)));
            let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(move || file).with_target(false).try_init();
        }
        // `serve` under systemd or Kubernetes (stderr not a terminal): JSON lines.
        None if json_stderr => {
            let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
        }
        None => {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // --help and --version are not errors; a script that asked for
            // JSON gets its usage error as JSON too.
            if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand)
                && std::env::args().any(|a| a == "--json")
            {
                let message = e
                    .kind()
                    .as_str()
                    .map_or_else(|| e.to_string(), |k| format!("{k}: {}", e.to_string().lines().next().unwrap_or_default()));
                output::print_json(&output::envelope("", false, serde_json::Value::Null, vec![message], Vec::new()));
            }
            e.exit();
        }
    };
    let (log_file, rotation, daemon) = match &cli.command {
        cli::Command::Serve { log_file, log_max_size, log_keep, .. } => (log_file.clone(), ((*log_max_size).max(1024), *log_keep), true),
        _ => (None, (0, 0), false),
    };
    init_logging(cli.log_level, log_file.as_deref(), rotation, daemon);
    let json = cli.json || commands::wants_json(&cli.command);
    let name = commands::name(&cli.command);
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            let usage = err.chain().any(|e| {
                e.is::<UsageError>()
                    || e.is::<config::ConfigError>()
                    || matches!(e.downcast_ref::<steward_sources::SourceError>(), Some(steward_sources::SourceError::NotADirectory { .. }))
            });
            let message = err.chain().map(ToString::to_string).fold(String::new(), |mut acc, part| {
                if !acc.contains(&part) {
                    if !acc.is_empty() {
                        acc.push_str(": ");
                    }
                    acc.push_str(&part);
                }
                acc
            });
            if json {
                output::print_json(&output::envelope(name, false, serde_json::Value::Null, vec![message.clone()], Vec::new()));
            }
            eprintln!("error: {message}");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
