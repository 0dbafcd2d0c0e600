//! The `steward` binary: parses flags, loads the config, wires the
//! library crates and reports errors once, mapped to exit codes (0 ok,
//! 1 failure, 2 bad usage or bad input).

mod cli;
mod commands;
mod config;
mod daemon;
mod demo;
mod error;
mod output;
mod predict;
mod signals;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

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
        Command::Serve { log_file, log_max_size, log_keep, .. } => (log_file.clone(), ((*log_max_size).max(1024), *log_keep), true),
        _ => (None, (0, 0), false),
    };
    init_logging(cli.log_level, log_file.as_deref(), rotation, daemon);
    let json = cli.json || commands::wants_json(&cli.command);
    let name = commands::name(&cli.command);
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            let message = error::one_line(&err);
            if json {
                output::print_json(&output::envelope(name, false, serde_json::Value::Null, vec![message.clone()], Vec::new()));
            }
            eprintln!("error: {message}");
            ExitCode::from(if error::is_usage(&err) { 2 } else { 1 })
        }
    }
}
