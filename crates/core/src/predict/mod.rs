//! Prediction: workload forecasts, streaming anomaly scores, failure
//! prediction, self-tuning and cost strategies (spec/cli.md, "Prediction and
//! tuning"). Pure and deterministic like the rest of the core: series come in
//! as data, `now` as an argument, and nothing here reads a file or a clock.
//!
//! - [`series`]: `timestamp,value` CSV text to a checked [`series::Series`],
//!   with errors that name the line; or every row in file order with
//!   scoring times that never go back and a report of repeats, steps back,
//!   gaps and irregular sampling (for `detect`); or sorted (`--sort`).
//! - [`stats`]: the statistics the others state their decisions with
//!   (autocorrelation, Mann-Kendall, Sen's slope, quantiles, the normal law).
//! - [`season`]: season detection from the autocorrelation function.
//! - [`ets`]: additive exponential smoothing (level, damped trend, one or two
//!   seasons), fitted by minimizing the one-step squared error.
//! - [`forecast`]: model choice (smoothing, seasonal naives and their
//!   means, on a holdout), prediction intervals, the pattern, and
//!   [`forecast::peak_within`] for the adaptive policy.
//! - [`detect`]: the online anomaly detector behind `steward detect`.
//! - [`maintenance`]: trend-to-limit failure prediction (`steward predict`).
//! - [`tune`]: Little's-law worker count, memory split, query-time estimate.
//! - [`input`]: the other inputs of the commands (limits, metric samples,
//!   columns of numbers) parsed from text.
//! - [`cost`]: cost strategies under a budget and an SLA.

pub mod cost;
pub mod detect;
pub mod ets;
pub mod forecast;
pub mod input;
pub mod maintenance;
pub mod season;
pub mod series;
pub mod stats;
pub mod tune;
