//! The `steward` binary: parses flags, loads the config, wires the
//! library crates and reports errors once, mapped to exit codes (0 ok,
//! 1 failure, 2 bad usage or bad input).

mod audit;
mod backup;
mod cli;
mod commands;
mod config;
mod daemon;
mod demo;
mod error;
mod incidents;
mod output;
mod plot;
mod predict;
mod reconcile;
mod signals;
mod simulate;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};

fn init_logging(verbose: u8, log_file: Option<&std::path::Path>, logs: (u64, u32), daemon: bool, format: LogFormat) {
    use std::io::IsTerminal;
    // Readable text for a person at a terminal, JSON lines for whatever
    // reads stderr otherwise (systemd, Kubernetes, a script).
    let json_stderr = match format {
        LogFormat::Auto => !std::io::stderr().is_terminal(),
        LogFormat::Text => false,
        LogFormat::Json => true,
    };
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
                && {
                    let args: Vec<String> = std::env::args().collect();
                    args.iter().any(|a| a == "--json" || a == "--format=json")
                        || args.windows(2).any(|w| w[0] == "--format" && w[1] == "json")
                }
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
    init_logging(cli.log_level, log_file.as_deref(), rotation, daemon, cli.log_format);
    let json = commands::wants_json(&cli);
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
