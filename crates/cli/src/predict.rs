//! Prediction commands: `forecast`, `detect`, `predict`, `tune`, `cost`
//! (spec/cli.md). Being built (issue 5); this placeholder refuses clearly.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::engine::Engine;

/// The prediction commands, flattened into the top-level command list.
#[derive(Debug, Subcommand)]
pub enum PredictionCommand {
    /// Forecast a `timestamp,value` series (not yet available)
    #[command(hide = true)]
    Forecast,
}

impl PredictionCommand {
    /// The command's name, for the JSON envelope.
    pub fn name(&self) -> &'static str {
        "forecast"
    }

    /// Whether the command's own flags ask for JSON.
    pub fn wants_json(&self) -> bool {
        false
    }
}

/// Runs a prediction command.
///
/// # Errors
/// Always, until issue 5 lands.
pub fn run(_cmd: PredictionCommand, _engine: &Engine, _json: bool) -> Result<ExitCode> {
    Err(crate::UsageError("forecast is not available in this build".into()).into())
}
