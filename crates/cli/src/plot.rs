//! `simulate --plot`: the runs over time, as an SVG.

use std::path::Path;

use anyhow::Result;
use steward_core::sim::Report;

use crate::simulate::Plan;

/// Writes the plot of `reports` to `path`.
///
/// # Errors
/// The file cannot be written.
pub fn write(_path: &Path, _plan: &Plan, _reports: &[Report]) -> Result<()> {
    anyhow::bail!("--plot is not built yet")
}
