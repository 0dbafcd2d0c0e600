//! The measured load behind `forecast`, `tune` and `cost`: arrival rates
//! and service times from the journal's cycles, and a load profile over a
//! horizon (a forecast when there is enough data).

use steward_core::history::CycleSummary;
use steward_core::predict::cost::Load;
use steward_core::predict::forecast::{self, arrival_rates, ForecastConfig};
use steward_core::predict::series::Series;
use steward_core::predict::tune;
use steward_store::{Journal, JournalAt};

use crate::clock::now_ms;
use crate::error::RuntimeError;

/// The journal's cycles, oldest first (none without a journal).
///
/// # Errors
/// The journal exists but cannot be read.
pub fn journal_cycles(journal: &JournalAt) -> Result<Vec<CycleSummary>, RuntimeError> {
    let Some(j) = Journal::open_existing_at(journal).map_err(RuntimeError::journal(format!("opening the journal {journal}")))? else {
        return Ok(Vec::new());
    };
    Ok(j.history(now_ms(), 1_000_000, 0).map_err(RuntimeError::journal("reading the journal's history"))?.cycles)
}

/// The load the journal measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Arrival rates (items per second) between recorded cycles.
    pub rates: Series,
    /// The mean service time per item, when completions tell it.
    pub service_secs: Option<f64>,
    /// The mean of active agents over the cycles, if any.
    pub mean_agents: Option<f64>,
}

/// The load measured in the journal at `journal`.
///
/// # Errors
/// As [`journal_cycles`].
pub fn measured(journal: &JournalAt) -> Result<Measured, RuntimeError> {
    let cycles = journal_cycles(journal)?;
    let mean_agents = (!cycles.is_empty()).then(|| cycles.iter().map(|c| c.active_agents as f64).sum::<f64>() / cycles.len() as f64);
    Ok(Measured { rates: arrival_rates(&cycles), service_secs: tune::service_secs_from_history(&cycles), mean_agents })
}

/// Mean and upper bound of a rate series over the next `points`: its
/// forecast when the series is long enough for a model, else the measured
/// values themselves. Also says which, in a phrase.
pub fn load_profile(rates: &Series, points: usize) -> (Load, String) {
    if rates.len() >= forecast::MIN_MODEL_POINTS {
        if let Ok(f) = forecast::forecast(rates, points, &ForecastConfig::default()) {
            let how = format!("forecast ({}, {} points, confidence {:.2})", f.model, points, f.confidence);
            return (Load { rate: f.forecast.iter().map(|p| p.value).collect(), upper: f.forecast.iter().map(|p| p.upper).collect() }, how);
        }
    }
    (Load { rate: rates.values.clone(), upper: rates.values.clone() }, format!("measured ({} points, too few for a forecast)", rates.len()))
}
