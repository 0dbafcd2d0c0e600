//! Workload forecasting: put the series on a regular grid, detect seasons,
//! state the pattern, choose a model on a holdout, forecast with intervals.
//!
//! - **Grid.** The step is the median gap; points are placed on it, gaps
//!   become missing points that the model steps over without an update.
//! - **Pattern.** `periodic` when a season is found ([`super::season`]) and
//!   the seasonal strength `F_s = max(0, 1 − Var(R) / Var(S + R))` of a
//!   classical additive decomposition is at least [`PERIODIC_STRENGTH`]
//!   (Wang, Smith and Hyndman, 2006); else `trending` when the Mann-Kendall
//!   test on block means of the deseasonalized series rejects "no trend" at
//!   [`TREND_P_VALUE`] and Sen's slope moves the level by at least
//!   [`TREND_MIN_SDS`] residual standard deviations over the series; else
//!   `stable`.
//! - **Model.** Candidates: simple exponential smoothing, a damped trend
//!   when the series trends, one season, two seasons (e.g. day and week);
//!   the seasonal naive of every detected season and of a day and a week
//!   in grid steps ([`naive_seasons`]), so that no model is chosen that
//!   does worse than the obvious; and the mean of the best smoothing model
//!   with those naives (each, and all), since their errors differ and a
//!   mean of forecasts often errs less than any of them. Each is fitted on
//!   all but a holdout (the last quarter at most), scored by the mean
//!   absolute error of forecasts from the same rolling origins in the
//!   holdout, and the best is refitted on everything: its holdout error
//!   never exceeds the best seasonal naive's ([`Holdout`] reports both).
//!   Short series fall back to the naive forecast (last value); a constant
//!   series to a constant.
//! - **Confidence.** `data × skill`: skill = `max(0, 1 − MASE/2)` with the
//!   holdout MASE (scaled by the in-sample naive error; below 1 unless the
//!   holdout is perfect), data =
//!   `min(1, cycles / 4)` (cycles of the season seen, or points / 20
//!   without a season). Not a constant: it falls with error and with data.
//! - **Range.** The model works on the series multiplied by a power of two
//!   that brings its largest magnitude into [1, 2): exact (so ordinary data
//!   gives the same forecast as unscaled), and no sum of squares can
//!   overflow however large or small the values are. Values beyond
//!   ±[`MAX_ABS_VALUE`] are refused ([`ForecastError::OutOfRange`]): above
//!   that the intervals at long horizons would not fit in an `f64`. The
//!   horizon is at most [`MAX_HORIZON`] points. Every number of a forecast
//!   is finite, and its timestamps are strictly increasing and after the
//!   last input.

use serde::Serialize;
use thiserror::Error;

use super::ets::{self, Spec};
use super::season::{self, Seasons};
use super::series::Series;
use super::stats::{block_means, mann_kendall, mean, sen_slope, variance, Pow2};
use crate::history::CycleSummary;
use crate::time::UnixMs;

/// Seasonal strength from which a seasonal series is `periodic`.
pub const PERIODIC_STRENGTH: f64 = 0.4;
/// Mann-Kendall p-value below which a series may be `trending`.
pub const TREND_P_VALUE: f64 = 0.05;
/// Minimum change over the series, in residual standard deviations, for `trending`.
pub const TREND_MIN_SDS: f64 = 1.0;
/// Fewer points than this get the naive forecast.
pub const MIN_MODEL_POINTS: usize = 10;
/// At most this many grid points per input point (irregular timestamps
/// with huge gaps are then treated as evenly spaced instead).
const MAX_GRID_EXPANSION: usize = 4;
/// The largest magnitude of a value a forecast accepts. Inside the model
/// the series is scaled to magnitudes below 2; a forecast and its interval
/// stay within about a million times the series' magnitude at the longest
/// horizon, so 1e300 leaves ample room below `f64::MAX` (≈ 1.8e308).
pub const MAX_ABS_VALUE: f64 = 1e300;
/// The longest horizon, in points.
pub const MAX_HORIZON: usize = 1_000_000;

/// Why a forecast could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ForecastError {
    /// Fewer than two points.
    #[error("a forecast needs at least 2 points, got {0}")]
    TooShort(usize),
    /// A horizon of zero.
    #[error("the horizon must be at least one point")]
    ZeroHorizon,
    /// A horizon beyond [`MAX_HORIZON`].
    #[error("the horizon must be at most {MAX_HORIZON} points, got {0}")]
    HorizonTooLong(usize),
    /// An interval probability outside (0, 1).
    #[error("the prediction interval must be a probability strictly between 0 and 1")]
    BadInterval,
    /// A series that breaks [`Series`]' invariants (built by hand).
    #[error("data row {row}: {reason}")]
    InvalidSeries {
        /// The 1-based row.
        row: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value beyond ±[`MAX_ABS_VALUE`].
    #[error(
        "data row {row}: value {value} is beyond ±1e300: a forecast needs values within ±1e300 so that its arithmetic and \
         intervals fit in a 64-bit float (max ±1.8e308); rescale the series (e.g. use larger units)"
    )]
    OutOfRange {
        /// The 1-based row of the first such value.
        row: usize,
        /// The value as printed.
        value: String,
    },
    /// The forecast's timestamps would pass the largest representable time.
    #[error("the forecast's timestamps (step {step_ms} ms, {horizon} points) pass the largest representable time")]
    TimeOverflow {
        /// The grid step.
        step_ms: i64,
        /// The horizon.
        horizon: usize,
    },
    /// A forecast number that is not finite (a safeguard: values within
    /// ±[`MAX_ABS_VALUE`] do not reach it).
    #[error("the forecast or its interval does not fit in a 64-bit float: rescale the series (e.g. use larger units)")]
    NotRepresentable,
}

/// The shape of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// A clear season.
    Periodic,
    /// A significant monotonic trend.
    Trending,
    /// Neither.
    Stable,
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Periodic => "periodic",
            Self::Trending => "trending",
            Self::Stable => "stable",
        })
    }
}

/// How to forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastConfig {
    /// Probability of the prediction interval (0.95 = 95 %).
    pub interval: f64,
    /// Clamp forecasts and bounds at 0 when the series never went negative
    /// (counts and rates).
    pub non_negative: bool,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self { interval: 0.95, non_negative: true }
    }
}

/// One forecast point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForecastPoint {
    /// When.
    pub ts: UnixMs,
    /// Point forecast.
    pub value: f64,
    /// Lower bound of the prediction interval.
    pub lower: f64,
    /// Upper bound of the prediction interval.
    pub upper: f64,
}

/// The statistics behind the pattern and the confidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostics {
    /// Points on the regular grid (missing ones included).
    pub grid_points: usize,
    /// Missing grid points (gaps).
    pub missing_points: usize,
    /// The grid step in seconds.
    pub step_secs: f64,
    /// Autocorrelation at the primary season.
    pub season_acf: f64,
    /// A second, longer season, if any.
    pub secondary_season: Option<usize>,
    /// Seasonal strength `F_s` (0..1).
    pub seasonal_strength: f64,
    /// Mann-Kendall p-value of the deseasonalized block means.
    pub trend_p_value: f64,
    /// Sen's slope of the deseasonalized series, per point.
    pub trend_slope_per_point: f64,
    /// Holdout MAE of the chosen model (None when there was no holdout).
    pub holdout_mae: Option<f64>,
    /// Holdout MASE of the chosen model.
    pub holdout_mase: Option<f64>,
    /// Each candidate model and its holdout MAE.
    pub candidates: Vec<(String, f64)>,
}

/// How the chosen model and the seasonal naive forecasts did on the holdout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Holdout {
    /// The chosen model.
    pub model: String,
    /// Its holdout MAE.
    pub mae: f64,
    /// Its holdout MASE (None when the series never changed in the fit period).
    pub mase: Option<f64>,
    /// Each seasonal naive candidate, shortest season first.
    pub naive: Vec<NaiveHoldout>,
}

/// A seasonal naive forecast's holdout error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NaiveHoldout {
    /// The season, in points.
    pub season: usize,
    /// Holdout MAE.
    pub mae: f64,
    /// Holdout MASE (scaled as the chosen model's).
    pub mase: Option<f64>,
}

/// A forecast (spec/cli.md: `pattern`, `season_length`, `model`, `forecast`, `confidence`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// periodic, trending or stable.
    pub pattern: Pattern,
    /// The primary season in points, if any.
    pub season_length: Option<usize>,
    /// The model used.
    pub model: String,
    /// The forecast points.
    pub forecast: Vec<ForecastPoint>,
    /// 0..1, from holdout accuracy and the amount of data.
    pub confidence: f64,
    /// How the above was decided.
    pub diagnostics: Diagnostics,
    /// The chosen model's holdout error next to each seasonal naive's
    /// (None when no model was chosen on a holdout: a constant or a short series).
    pub holdout: Option<Holdout>,
}

/// A series on a regular grid: NaN marks a missing point.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Timestamp of the first point.
    pub start: UnixMs,
    /// Timestamp of the last point: the last input's slot, or the last
    /// input itself when the points are taken as evenly spaced. Never more
    /// than half a step before the last input.
    pub end: UnixMs,
    /// Step between points.
    pub step_ms: i64,
    /// Values (NaN = missing).
    pub values: Vec<f64>,
}

impl Grid {
    /// Places a series on the grid of its median step; points falling on
    /// the same slot are averaged. With very irregular timestamps (the grid
    /// would be much longer than the series) the points are taken as evenly
    /// spaced at the median step, ending at the last input.
    pub fn from_series(s: &Series) -> Option<Self> {
        let step = s.step_ms()?.max(1);
        let (&t0, &t1) = (s.ts.first()?, s.ts.last()?);
        // abs_diff: the span of any two i64 timestamps fits in a u64.
        let slot_of = |t: UnixMs| (t.abs_diff(t0) as f64 / step as f64).round() as usize;
        let slots = slot_of(t1).saturating_add(1);
        if slots > MAX_GRID_EXPANSION.saturating_mul(s.len()) {
            return Some(Self { start: t0, end: t1, step_ms: step, values: s.values.clone() });
        }
        let mut sum = vec![0.0; slots];
        let mut cnt = vec![0u32; slots];
        for (&t, &v) in s.ts.iter().zip(&s.values) {
            let i = slot_of(t).min(slots - 1);
            sum[i] += v;
            cnt[i] += 1;
        }
        let values = sum.iter().zip(&cnt).map(|(s, &c)| if c > 0 { s / f64::from(c) } else { f64::NAN }).collect();
        // The last slot is the last input rounded to the grid (saturated:
        // a grid ending past the largest time has no forecast timestamps).
        let end = i64::try_from(slots - 1).ok().and_then(|k| step.checked_mul(k)).and_then(|d| t0.checked_add(d)).unwrap_or(i64::MAX);
        Some(Self { start: t0, end, step_ms: step, values })
    }

    /// The timestamp `j` steps after the last point (j ≥ 1); `None` past
    /// the largest representable time.
    pub fn ts_after(&self, j: usize) -> Option<UnixMs> {
        self.step_ms.checked_mul(i64::try_from(j).ok()?).and_then(|d| self.end.checked_add(d))
    }
}

/// Linear interpolation over missing points (ends take the nearest value).
pub fn fill_gaps(y: &[f64]) -> Vec<f64> {
    let mut out = y.to_vec();
    let known: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_finite()).collect();
    let (Some(&first), Some(&last)) = (known.first(), known.last()) else {
        return vec![0.0; y.len()];
    };
    for v in &mut out[..first] {
        *v = y[first];
    }
    for v in &mut out[last..] {
        *v = y[last];
    }
    for w in known.windows(2) {
        let (a, b) = (w[0], w[1]);
        for (i, slot) in out.iter_mut().enumerate().take(b).skip(a + 1) {
            *slot = y[a] + (y[b] - y[a]) * (i - a) as f64 / (b - a) as f64;
        }
    }
    out
}

/// A classical additive decomposition's seasonal component (position
/// means of the series minus its centred moving average), repeated over
/// the series, and the seasonal strength.
pub fn seasonal_component(y: &[f64], m: usize) -> (Vec<f64>, f64) {
    let n = y.len();
    if m < 2 || n < 2 * m {
        return (vec![0.0; n], 0.0);
    }
    // Centred moving average of order m (2×m when m is even).
    let half = m / 2;
    let mut trend = vec![f64::NAN; n];
    let mut prefix = vec![0.0; n + 1];
    for i in 0..n {
        prefix[i + 1] = prefix[i] + y[i];
    }
    for (i, t) in trend.iter_mut().enumerate().take(n - half).skip(half) {
        *t = if m % 2 == 1 {
            (prefix[i + half + 1] - prefix[i - half]) / m as f64
        } else {
            let inner = prefix[i + half] - prefix[i + 1 - half];
            (inner + 0.5 * (y[i - half] + y[i + half])) / m as f64
        };
    }
    let mut sum = vec![0.0; m];
    let mut cnt = vec![0usize; m];
    for i in 0..n {
        if trend[i].is_finite() {
            sum[i % m] += y[i] - trend[i];
            cnt[i % m] += 1;
        }
    }
    let mut pos: Vec<f64> = sum.iter().zip(&cnt).map(|(s, &c)| if c > 0 { s / c as f64 } else { 0.0 }).collect();
    let pm = mean(&pos);
    pos.iter_mut().for_each(|v| *v -= pm);
    let seasonal: Vec<f64> = (0..n).map(|i| pos[i % m]).collect();
    let detrended: Vec<f64> = (0..n).filter(|&i| trend[i].is_finite()).map(|i| y[i] - trend[i]).collect();
    let remainder: Vec<f64> = (0..n).filter(|&i| trend[i].is_finite()).map(|i| y[i] - trend[i] - seasonal[i]).collect();
    let vd = variance(&detrended);
    let strength = if vd > 0.0 { (1.0 - variance(&remainder) / vd).max(0.0) } else { 0.0 };
    (seasonal, strength)
}

/// The pattern statistics of a gap-filled series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatternStats {
    /// Seasons found.
    pub seasons: Seasons,
    /// Seasonal strength at the primary season.
    pub seasonal_strength: f64,
    /// Mann-Kendall p-value.
    pub trend_p_value: f64,
    /// Sen's slope per point.
    pub slope_per_point: f64,
    /// The decision.
    pub pattern: Pattern,
}

/// Decides the pattern of a gap-filled series (see the module doc).
pub fn pattern_of(y: &[f64]) -> PatternStats {
    pattern_of_step(y, None)
}

/// [`pattern_of`] knowing the sampling step (calendar periods preferred).
pub fn pattern_of_step(y: &[f64], step_ms: Option<i64>) -> PatternStats {
    let seasons = season::detect_with_step(y, step_ms);
    let m = seasons.primary.unwrap_or(0);
    let (seasonal, strength) = if m > 0 { seasonal_component(y, m) } else { (vec![0.0; y.len()], 0.0) };
    let deseason: Vec<f64> = y.iter().zip(&seasonal).map(|(v, s)| v - s).collect();
    let n = y.len();
    let block = if m > 0 && n / m >= 6 { m } else { (n / 40).max(1) };
    let blocks = block_means(&deseason, block);
    // Sen's slope is quadratic: at most 400 blocks.
    let blocks = if blocks.len() > 400 { block_means(&blocks, blocks.len().div_ceil(400)) } else { blocks };
    let per_block = (n as f64 / blocks.len().max(1) as f64).max(1.0);
    let mk = mann_kendall(&blocks);
    let p = mk.map_or(1.0, |m| m.p_value);
    let slope = sen_slope(&blocks).unwrap_or(0.0) / per_block;
    // Residual spread around the Sen line.
    let mid = (n as f64 - 1.0) / 2.0;
    let centre = mean(&deseason);
    let resid: Vec<f64> = deseason.iter().enumerate().map(|(i, v)| v - centre - slope * (i as f64 - mid)).collect();
    let sd = variance(&resid).sqrt();
    let pattern = if m > 0 && strength >= PERIODIC_STRENGTH {
        Pattern::Periodic
    } else if p < TREND_P_VALUE && (slope * n as f64).abs() >= TREND_MIN_SDS * sd && slope != 0.0 {
        Pattern::Trending
    } else {
        Pattern::Stable
    };
    PatternStats { seasons, seasonal_strength: strength, trend_p_value: p, slope_per_point: slope, pattern }
}

/// A seasonal naive forecast: each point is the latest value seen at the
/// same position of the season (`m` points back, or a whole number of
/// seasons back when the horizon passes a season or a value is missing).
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalNaive {
    /// The season in points.
    pub m: usize,
    /// The latest known value at each position of the season.
    last: Vec<f64>,
    /// The position of the next point.
    next: usize,
    /// Root mean square of the in-sample one-season changes: the one-step
    /// error scale of the intervals.
    pub sigma: f64,
}

impl SeasonalNaive {
    /// Fits on `y` (NaN = missing). `None` with fewer than `m` points, or
    /// no finite one.
    pub fn fit(m: usize, y: &[f64]) -> Option<Self> {
        if m == 0 || y.len() < m {
            return None;
        }
        let known: Vec<f64> = y.iter().copied().filter(|v| v.is_finite()).collect();
        if known.is_empty() {
            return None;
        }
        // A position never seen takes the mean (a season with a gap in every cycle).
        let mut last = vec![mean(&known); m];
        for (i, &v) in y.iter().enumerate() {
            if v.is_finite() {
                last[i % m] = v;
            }
        }
        let d: Vec<f64> = y.windows(m + 1).map(|w| w[m] - w[0]).filter(|v| v.is_finite()).collect();
        let sigma = if d.is_empty() { variance(&known).sqrt() } else { (d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64).sqrt() };
        Some(Self { m, last, next: y.len() % m, sigma })
    }

    /// `(mean, lower, upper)` for `h` points with a central interval of
    /// probability `level`: the spread grows with the seasons passed.
    pub fn forecast(&self, h: usize, level: f64) -> Vec<(f64, f64, f64)> {
        let z = super::stats::normal_quantile(0.5 + level.clamp(0.0, 0.999_999) / 2.0);
        (1..=h)
            .map(|j| {
                let mean = self.last[(self.next + j - 1) % self.m];
                let half = z * self.sigma * (((j - 1) / self.m + 1) as f64).sqrt();
                (mean, mean - half, mean + half)
            })
            .collect()
    }

    /// Takes in more observations (NaN = missing).
    pub fn update(&mut self, y: &[f64]) {
        for &v in y {
            if v.is_finite() {
                self.last[self.next] = v;
            }
            self.next = (self.next + 1) % self.m;
        }
    }
}

/// A way to forecast, before it is fitted.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Exponential smoothing.
    Ets(Spec),
    /// The seasonal naive of a season, in points.
    Naive(usize),
    /// The mean of several methods' forecasts (a combination).
    Mean(Vec<Method>),
}

impl Method {
    /// A short name: `ETS(A,N,A) m=24`, `seasonal naive m=168`, `mean(…, …)`.
    pub fn name(&self) -> String {
        match self {
            Self::Ets(spec) => spec.name(),
            Self::Naive(m) => format!("seasonal naive m={m}"),
            Self::Mean(parts) => format!("mean({})", parts.iter().map(Self::name).collect::<Vec<_>>().join(", ")),
        }
    }

    /// The method fitted to `y` (NaN = missing); `None` when it (or a part
    /// of it) cannot be.
    pub fn fit(&self, y: &[f64]) -> Option<Model> {
        match self {
            Self::Ets(spec) => ets::fit(*spec, y).map(Model::Ets),
            Self::Naive(m) => SeasonalNaive::fit(*m, y).map(Model::Naive),
            Self::Mean(parts) => parts.iter().map(|p| p.fit(y)).collect::<Option<Vec<_>>>().map(Model::Mean),
        }
    }
}

/// A fitted model: exponential smoothing, a seasonal naive, or the mean of several.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// Exponential smoothing.
    Ets(ets::Model),
    /// A seasonal naive.
    Naive(SeasonalNaive),
    /// The mean of the parts' forecasts.
    Mean(Vec<Model>),
}

impl Model {
    /// The method's name (see [`Method::name`]).
    pub fn name(&self) -> String {
        match self {
            Self::Ets(m) => m.spec.name(),
            Self::Naive(n) => Method::Naive(n.m).name(),
            Self::Mean(parts) => format!("mean({})", parts.iter().map(Self::name).collect::<Vec<_>>().join(", ")),
        }
    }

    /// `(mean, lower, upper)` for `h` points after the last one seen, with
    /// a central interval of probability `level`. A mean's interval is the
    /// mean of its parts' half-widths around the mean forecast: the spread
    /// of an average of errors is at most the average of their spreads, so
    /// the interval is, if anything, wide.
    pub fn forecast(&self, h: usize, level: f64) -> Vec<(f64, f64, f64)> {
        match self {
            Self::Ets(m) => m.forecast(h, level),
            Self::Naive(n) => n.forecast(h, level),
            Self::Mean(parts) => {
                let k = parts.len().max(1) as f64;
                let mut sum = vec![(0.0, 0.0); h];
                for part in parts {
                    for (acc, (mean, lo, hi)) in sum.iter_mut().zip(part.forecast(h, level)) {
                        acc.0 += mean / k;
                        acc.1 += (hi - lo) / 2.0 / k;
                    }
                }
                sum.into_iter().map(|(mean, half)| (mean, mean - half, mean + half)).collect()
            }
        }
    }

    /// Takes in more observations (NaN = missing), keeping the parameters.
    pub fn update(&mut self, y: &[f64]) {
        match self {
            Self::Ets(m) => m.update(y),
            Self::Naive(n) => n.update(y),
            Self::Mean(parts) => parts.iter_mut().for_each(|p| p.update(y)),
        }
    }
}

/// The forecasts of `h` steps from rolling origins through `test` (every
/// `h/2` points), after fitting on the points before it: one value per
/// (origin, lead), in the order [`holdout_actuals`] gives the targets.
fn holdout_path(mut model: Model, test: &[f64], h: usize) -> Vec<f64> {
    let stride = (h / 2).max(1);
    let mut out = Vec::new();
    let mut origin = 0;
    while origin < test.len() {
        out.extend(model.forecast(h.min(test.len() - origin), 0.5).into_iter().map(|(mean, _, _)| mean));
        let next = (origin + stride).min(test.len());
        model.update(&test[origin..next]);
        origin = next;
    }
    out
}

/// The targets of [`holdout_path`], in its order.
fn holdout_actuals(test: &[f64], h: usize) -> Vec<f64> {
    let stride = (h / 2).max(1);
    let mut out = Vec::new();
    let mut origin = 0;
    while origin < test.len() {
        out.extend_from_slice(&test[origin..(origin + h).min(test.len())]);
        origin = (origin + stride).min(test.len());
    }
    out
}

/// Mean absolute error of the mean of `paths` against `actuals`, over
/// the finite actuals. `None` when there is none or the error is not
/// finite (an unstable fit).
fn path_mae(paths: &[&[f64]], actuals: &[f64]) -> Option<f64> {
    let k = paths.len() as f64;
    let (mut sum, mut cnt) = (0.0, 0usize);
    for (i, &actual) in actuals.iter().enumerate() {
        if actual.is_finite() {
            let f: f64 = paths.iter().map(|p| p.get(i).copied().unwrap_or(f64::NAN)).sum::<f64>() / k;
            sum += (actual - f).abs();
            cnt += 1;
        }
    }
    Some(sum / cnt as f64).filter(|mae| cnt > 0 && mae.is_finite())
}

/// In-sample mean absolute error of the (seasonal, lag m) naive forecast.
pub fn naive_scale(y: &[f64], m: usize) -> f64 {
    let m = m.max(1);
    let d: Vec<f64> = y.windows(m + 1).map(|w| (w[m] - w[0]).abs()).filter(|v| v.is_finite()).collect();
    mean(&d)
}

/// The seasons whose seasonal naive is a candidate: those detected, and a
/// day and a week in steps of `step_ms` (when they are whole numbers of
/// steps); each at most `longest` points.
pub fn naive_seasons(seasons: &Seasons, step_ms: Option<i64>, longest: usize) -> Vec<usize> {
    let calendar = [86_400_000i64, 604_800_000].into_iter().filter_map(|p| match step_ms {
        Some(step) if step > 0 && p % step == 0 => usize::try_from(p / step).ok(),
        _ => None,
    });
    let mut out: Vec<usize> =
        seasons.primary.into_iter().chain(seasons.secondary).chain(calendar).filter(|&m| m >= 2 && m <= longest).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The model chosen for a series, fitted on all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// The model, refitted on the whole series (None if none could be fitted).
    pub model: Option<Model>,
    /// Holdout MAE of the chosen model.
    pub holdout_mae: Option<f64>,
    /// The in-sample naive MAE that scales the holdout MAE into a MASE.
    pub scale: f64,
    /// Each candidate and its holdout MAE.
    pub candidates: Vec<(String, f64)>,
    /// Each seasonal naive candidate's season (points) and holdout MAE.
    pub naive: Vec<(usize, f64)>,
}

/// Chooses among the candidate models (see the module doc) on a holdout
/// at the horizon (up to one season), then refits the winner on all of
/// `y` (NaN = missing; `filled` is `y` with gaps interpolated).
pub fn fit_best(y: &[f64], filled: &[f64], horizon: usize, stats: &PatternStats) -> Fitted {
    fit_best_step(y, filled, horizon, stats, None)
}

/// [`fit_best`] knowing the grid step, so that the seasonal naive of a day
/// and of a week are candidates even when the autocorrelation did not pick
/// them.
pub fn fit_best_step(y: &[f64], filled: &[f64], horizon: usize, stats: &PatternStats, step_ms: Option<i64>) -> Fitted {
    let n = y.len();
    let m1 = stats.seasons.primary.unwrap_or(0);
    let m2 = stats.seasons.secondary.unwrap_or(0);
    let trending = stats.pattern == Pattern::Trending;
    let plain = Spec { trend: false, m1: 0, m2: 0, ar: false };
    let mut specs = vec![plain];
    if trending {
        specs.push(Spec { trend: true, ..plain });
    }
    if m1 > 0 {
        for ar in [false, true] {
            specs.push(Spec { m1, ar, ..plain });
            if trending {
                specs.push(Spec { trend: true, m1, ar, ..plain });
            }
            if m2 > 0 {
                specs.push(Spec { m1, m2, ar, ..plain });
            }
        }
    }
    // Holdout: the last quarter at most, else two horizons, two primary
    // seasons or one secondary season, whichever is longest.
    let h_eval = horizon.min(if m1 > 0 { m1 } else { horizon }).max(1);
    let hold = (n / 4).min((2 * h_eval).max(2 * m1).max(m2)).max(1);
    let (train, test) = y.split_at(n - hold);
    let scale = naive_scale(&filled[..n - hold], 1).max(f64::MIN_POSITIVE);
    let actuals = holdout_actuals(test, h_eval);
    // Every candidate forecasts the same targets from the same origins.
    let mut scored: Vec<(Method, Vec<f64>, f64)> = Vec::new();
    let try_method = |method: Method, scored: &mut Vec<(Method, Vec<f64>, f64)>| {
        if let Some(model) = method.fit(train) {
            let path = holdout_path(model, test, h_eval);
            if let Some(mae) = path_mae(&[&path], &actuals) {
                scored.push((method, path, mae));
            }
        }
    };
    for spec in specs {
        try_method(Method::Ets(spec), &mut scored);
    }
    let n_ets = scored.len();
    // The obvious forecasts: a model is chosen only when it beats them.
    for m in naive_seasons(&stats.seasons, step_ms, train.len()) {
        try_method(Method::Naive(m), &mut scored);
    }
    let naive: Vec<(usize, f64)> =
        scored[n_ets..].iter().filter_map(|(method, _, mae)| if let Method::Naive(m) = method { Some((*m, *mae)) } else { None }).collect();
    // Combinations of the best smoothing model and the seasonal naives:
    // their errors differ, so their mean often errs less than either.
    let best_ets = scored[..n_ets].iter().enumerate().min_by(|a, b| a.1 .2.total_cmp(&b.1 .2)).map(|(i, _)| i);
    let mut combos: Vec<Vec<usize>> = Vec::new();
    let naive_idx: Vec<usize> = (n_ets..scored.len()).collect();
    if let Some(e) = best_ets {
        for &i in &naive_idx {
            combos.push(vec![e, i]);
        }
        if naive_idx.len() >= 2 {
            combos.push(std::iter::once(e).chain(naive_idx.iter().copied()).collect());
        }
    }
    if naive_idx.len() >= 2 {
        combos.push(naive_idx.clone());
    }
    for parts in combos {
        let paths: Vec<&[f64]> = parts.iter().map(|&i| scored[i].1.as_slice()).collect();
        if let Some(mae) = path_mae(&paths, &actuals) {
            let method = Method::Mean(parts.iter().map(|&i| scored[i].0.clone()).collect());
            scored.push((method, Vec::new(), mae));
        }
    }
    let candidates = scored.iter().map(|(method, _, mae)| (method.name(), *mae)).collect();
    // Of equal errors the first tried: smoothing, then the naives, then the means.
    let best = scored.iter().fold(None::<&(Method, Vec<f64>, f64)>, |best, c| if best.is_none_or(|b| c.2 < b.2) { Some(c) } else { best });
    let model = best.and_then(|(method, _, _)| method.fit(y)).or_else(|| Method::Ets(plain).fit(y));
    Fitted { model, holdout_mae: best.map(|b| b.2), scale, candidates, naive }
}

/// Forecasts `horizon` points after the series (see the module doc).
///
/// # Errors
/// [`ForecastError`] for fewer than 2 points, a zero or too long horizon,
/// an interval outside (0, 1), values beyond ±[`MAX_ABS_VALUE`] or a
/// series that breaks [`Series`]' invariants, and (never for input within
/// those limits) timestamps or numbers that would not be representable.
pub fn forecast(series: &Series, horizon: usize, cfg: &ForecastConfig) -> Result<Forecast, ForecastError> {
    if series.ts.len() != series.len() {
        let row = series.len().min(series.ts.len()) + 1;
        return Err(ForecastError::InvalidSeries { row, reason: "timestamps and values differ in number" });
    }
    if series.len() < 2 {
        return Err(ForecastError::TooShort(series.len()));
    }
    if horizon == 0 {
        return Err(ForecastError::ZeroHorizon);
    }
    if horizon > MAX_HORIZON {
        return Err(ForecastError::HorizonTooLong(horizon));
    }
    if !(cfg.interval > 0.0 && cfg.interval < 1.0) {
        return Err(ForecastError::BadInterval);
    }
    if let Some(i) = series.values.iter().position(|v| !v.is_finite()) {
        return Err(ForecastError::InvalidSeries { row: i + 1, reason: "the value is not a finite number" });
    }
    if let Some(i) = series.ts.windows(2).position(|w| w[0] >= w[1]) {
        return Err(ForecastError::InvalidSeries { row: i + 2, reason: "the timestamp is not after the previous one" });
    }
    if let Some(i) = series.values.iter().position(|v| v.abs() > MAX_ABS_VALUE) {
        return Err(ForecastError::OutOfRange { row: i + 1, value: format!("{:e}", series.values[i]) });
    }
    // Work on the series scaled to magnitudes in [1, 2) (see the module doc).
    let scale = Pow2::normalizing(series.values.iter().fold(0.0, |m: f64, v| m.max(v.abs())));
    let scaled = Series { ts: series.ts.clone(), values: series.values.iter().map(|&v| scale.apply(v)).collect() };
    let non_negative = cfg.non_negative && series.values.iter().all(|v| *v >= 0.0);
    // As the models do: a 100 % interval would be infinitely wide.
    let mut f = forecast_scaled(&scaled, horizon, cfg.interval.min(0.999_999), non_negative)?;
    // Back to the series' units: dividing by a power of two is exact.
    let unscale = |x: f64| scale.undo(x);
    for p in &mut f.forecast {
        (p.value, p.lower, p.upper) = (unscale(p.value), unscale(p.lower), unscale(p.upper));
    }
    let d = &mut f.diagnostics;
    d.holdout_mae = d.holdout_mae.map(unscale);
    d.trend_slope_per_point = unscale(d.trend_slope_per_point);
    d.candidates.iter_mut().for_each(|c| c.1 = unscale(c.1));
    d.candidates.retain(|c| c.1.is_finite());
    if let Some(h) = &mut f.holdout {
        h.mae = unscale(h.mae);
        h.naive.iter_mut().for_each(|n| n.mae = unscale(n.mae));
        h.naive.retain(|n| n.mae.is_finite());
    }
    let finite = |x: &f64| x.is_finite();
    let numbers_ok = f.forecast.iter().all(|p| [p.value, p.lower, p.upper].iter().all(finite))
        && finite(&f.confidence)
        && [d.step_secs, d.season_acf, d.seasonal_strength, d.trend_p_value, d.trend_slope_per_point].iter().all(finite)
        && d.holdout_mae.iter().chain(&d.holdout_mase).all(finite)
        && f.holdout.iter().all(|h| finite(&h.mae) && h.mase.iter().chain(h.naive.iter().flat_map(|n| n.mase.as_ref())).all(finite));
    if !numbers_ok {
        return Err(ForecastError::NotRepresentable);
    }
    Ok(f)
}

/// [`forecast`] on a checked series already scaled to magnitudes below 2.
fn forecast_scaled(series: &Series, horizon: usize, interval: f64, non_negative: bool) -> Result<Forecast, ForecastError> {
    let grid = Grid::from_series(series).ok_or(ForecastError::TooShort(series.len()))?;
    let timestamps: Vec<UnixMs> = (1..=horizon)
        .map(|j| grid.ts_after(j))
        .collect::<Option<_>>()
        .ok_or(ForecastError::TimeOverflow { step_ms: grid.step_ms, horizon })?;
    let y = &grid.values;
    let n = y.len();
    let filled = fill_gaps(y);
    let stats = pattern_of_step(&filled, Some(grid.step_ms));
    let mut diagnostics = Diagnostics {
        grid_points: n,
        missing_points: y.iter().filter(|v| !v.is_finite()).count(),
        step_secs: grid.step_ms as f64 / 1000.0,
        season_acf: stats.seasons.primary_acf,
        secondary_season: stats.seasons.secondary,
        seasonal_strength: stats.seasonal_strength,
        trend_p_value: stats.trend_p_value,
        trend_slope_per_point: stats.slope_per_point,
        holdout_mae: None,
        holdout_mase: None,
        candidates: Vec::new(),
    };
    let finish = |points: Vec<(f64, f64, f64)>, model: String, confidence: f64, diagnostics: Diagnostics, holdout: Option<Holdout>| {
        let forecast = points
            .into_iter()
            .zip(&timestamps)
            .map(|((v, lo, hi), &ts)| {
                let clamp = |x: f64| if non_negative { x.max(0.0) } else { x };
                ForecastPoint { ts, value: clamp(v), lower: clamp(lo), upper: clamp(hi) }
            })
            .collect();
        Forecast {
            pattern: stats.pattern,
            season_length: stats.seasons.primary,
            model,
            forecast,
            confidence: confidence.clamp(0.0, 1.0),
            diagnostics,
            holdout,
        }
    };
    let known: Vec<f64> = y.iter().copied().filter(|v| v.is_finite()).collect();
    let last = known.last().copied().unwrap_or(0.0);
    // Constant within float noise: the series is scaled, so this is relative
    // to its magnitude (a standard deviation below about 3e-8 of it).
    if variance(&known) <= f64::EPSILON * (1.0 + last * last) {
        let data = (known.len() as f64 / 20.0).min(1.0);
        return Ok(finish(vec![(last, last, last); horizon], "constant".to_owned(), data, diagnostics, None));
    }
    if n < MIN_MODEL_POINTS {
        // Naive: the last value, with the spread of successive changes growing as a random walk.
        let diffs: Vec<f64> = known.windows(2).map(|w| w[1] - w[0]).collect();
        let sd = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len().max(1) as f64).sqrt();
        let z = super::stats::normal_quantile(0.5 + interval / 2.0);
        let pts = (1..=horizon).map(|j| (last, last - z * sd * (j as f64).sqrt(), last + z * sd * (j as f64).sqrt())).collect();
        let data = n as f64 / 20.0;
        return Ok(finish(pts, "naive".to_owned(), 0.5 * data, diagnostics, None));
    }
    let fitted = fit_best_step(y, &filled, horizon, &stats, Some(grid.step_ms));
    diagnostics.candidates = fitted.candidates.clone();
    let Some(model) = fitted.model else {
        let pts = vec![(last, last, last); horizon];
        return Ok(finish(pts, "naive".to_owned(), 0.0, diagnostics, None));
    };
    let m1 = stats.seasons.primary.unwrap_or(0);
    // A MASE that is not finite (no in-sample change to scale by) says nothing about skill.
    let mase = fitted.holdout_mae.map(|mae| mae / fitted.scale).filter(|m| m.is_finite());
    diagnostics.holdout_mae = fitted.holdout_mae;
    diagnostics.holdout_mase = mase;
    let cycles = if m1 > 0 { n as f64 / m1 as f64 } else { n as f64 / 20.0 };
    let data = (cycles / 4.0).min(1.0);
    // Full skill only for a perfect holdout (MASE 0): a MASE too small to
    // move `1 − MASE/2` off 1 in f64 (e.g. a holdout far calmer than the
    // fit period) gives the largest f64 below 1.
    let skill = mase.map_or(0.0, |m| if m > 0.0 { (1.0 - m / 2.0).clamp(0.0, 1.0 - f64::EPSILON / 2.0) } else { 1.0 });
    let to_mase = |mae: f64| Some(mae / fitted.scale).filter(|m| m.is_finite());
    let holdout = fitted.holdout_mae.map(|mae| Holdout {
        model: model.name(),
        mae,
        mase,
        naive: fitted.naive.iter().map(|&(season, mae)| NaiveHoldout { season, mae, mase: to_mase(mae) }).collect(),
    });
    Ok(finish(model.forecast(horizon, interval), model.name(), data * skill, diagnostics, holdout))
}

/// The forecast peak within a lead time, for scaling ahead of load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Peak {
    /// The highest point forecast within the lead time.
    pub value: f64,
    /// The upper bound of the interval at that point.
    pub upper: f64,
    /// When it is expected.
    pub at: UnixMs,
    /// The forecast's confidence.
    pub confidence: f64,
    /// The forecast's pattern.
    pub pattern: Pattern,
}

/// The forecast peak of a rate within `lead_ms` after the last point (e.g.
/// the agents' start-up time), so the adaptive policy can scale up before
/// it. `None` when the history cannot support a forecast (fewer than
/// [`MIN_MODEL_POINTS`] points, or a lead shorter than one step); a
/// forecast alone must never scale down, so callers only compare it upwards.
pub fn peak_within(ts: &[UnixMs], values: &[f64], lead_ms: i64) -> Option<Peak> {
    let series = Series::new(ts.to_vec(), values.to_vec())?;
    if series.len() < MIN_MODEL_POINTS || lead_ms <= 0 {
        return None;
    }
    let step = series.step_ms()?.max(1);
    // A lead shorter than one step sees no forecast point before capacity
    // would be ready anyway.
    let horizon = usize::try_from(lead_ms.div_euclid(step)).ok()?.min(10_000);
    if horizon == 0 {
        return None;
    }
    let f = forecast(&series, horizon, &ForecastConfig::default()).ok()?;
    // The first of equal highs: the earliest time the peak is reached.
    let p = f.forecast.iter().reduce(|best, p| if p.value > best.value { p } else { best })?;
    Some(Peak { value: p.value, upper: p.upper, at: p.ts, confidence: f.confidence, pattern: f.pattern })
}

/// The arrival rate (items per second) between consecutive journal cycles:
/// the growth of everything ever seen (pending + in flight + completed +
/// dead-lettered) over the time between them, stamped at the later cycle.
/// Intervals where the count went backwards (records archived) are skipped.
pub fn arrival_rates(cycles: &[CycleSummary]) -> Series {
    let seen = |c: &CycleSummary| c.work_queue_size.saturating_add(c.in_flight).saturating_add(c.completed).saturating_add(c.failed);
    let mut out = Series::default();
    for w in cycles.windows(2) {
        let dt = (i128::from(w[1].ts) - i128::from(w[0].ts)) as f64 / 1000.0;
        if dt <= 0.0 {
            continue;
        }
        if let Some(d) = seen(&w[1]).checked_sub(seen(&w[0])) {
            out.ts.push(w[1].ts);
            out.values.push(d as f64 / dt);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64], step_ms: i64) -> Series {
        Series::new((0..values.len() as i64).map(|i| 1_000_000 + i * step_ms).collect(), values.to_vec()).unwrap()
    }

    #[test]
    fn a_season_is_periodic_and_forecast() {
        let v: Vec<f64> =
            (0..24 * 14).map(|i| 50.0 + 30.0 * ((i % 24) as f64 * std::f64::consts::TAU / 24.0).sin() + (i % 7) as f64 * 0.3).collect();
        let f = forecast(&series(&v, 3_600_000), 24, &ForecastConfig::default()).unwrap();
        assert_eq!(f.pattern, Pattern::Periodic);
        assert_eq!(f.season_length, Some(24));
        assert_eq!(f.forecast.len(), 24);
        assert!(f.confidence > 0.7, "{f:?}");
        assert_eq!(f.forecast[0].ts, 1_000_000 + 24 * 14 * 3_600_000);
    }

    fn noise(i: usize) -> f64 {
        let mut h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 31;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 29;
        (h % 1000) as f64 / 100.0 - 5.0
    }

    #[test]
    fn a_line_is_trending_and_a_constant_is_stable() {
        let v: Vec<f64> = (0..200).map(|i| i as f64 * 2.0 + noise(i)).collect();
        let f = forecast(&series(&v, 60_000), 10, &ForecastConfig::default()).unwrap();
        assert_eq!(f.pattern, Pattern::Trending);
        assert!(f.forecast[9].value > 400.0, "{:?}", f.forecast[9]);
        let c = forecast(&series(&[5.0; 30], 60_000), 3, &ForecastConfig::default()).unwrap();
        assert_eq!((c.pattern, c.model.as_str(), c.forecast[2].value), (Pattern::Stable, "constant", 5.0));
    }

    #[test]
    fn short_series_fall_back_to_naive() {
        let f = forecast(&series(&[1.0, 3.0, 2.0], 60_000), 2, &ForecastConfig::default()).unwrap();
        assert_eq!(f.model, "naive");
        assert_eq!(f.forecast[1].value, 2.0);
        assert!(f.confidence < 0.2);
        assert_eq!(forecast(&series(&[1.0], 60_000), 2, &ForecastConfig::default()), Err(ForecastError::TooShort(1)));
    }

    #[test]
    fn the_chosen_model_errs_no_more_than_any_seasonal_naive_on_the_holdout() {
        let shapes: [&dyn Fn(usize) -> f64; 4] = [
            // A noisy daily cycle, hourly.
            &|i| 50.0 + 30.0 * ((i % 24) as f64 * std::f64::consts::TAU / 24.0).sin() + noise(i),
            // A square wave with quiet weekends.
            &|i| if (i / 24) % 7 >= 5 { 5.0 } else if (8..18).contains(&(i % 24)) { 40.0 } else { 10.0 } + noise(i) / 5.0,
            // A random walk with a small daily ripple.
            &|i| (0..i).map(noise).sum::<f64>() / 4.0 + ((i % 24) as f64 / 4.0).sin(),
            // Noise alone.
            &noise,
        ];
        for (k, shape) in shapes.iter().enumerate() {
            let v: Vec<f64> = (0..24 * 21).map(shape).collect();
            let f = forecast(&series(&v, 3_600_000), 24, &ForecastConfig::default()).unwrap();
            let h = f.holdout.as_ref().unwrap();
            assert_eq!(h.model, f.model);
            assert!(h.naive.iter().any(|n| n.season == 24) && h.naive.iter().any(|n| n.season == 168), "shape {k}: {h:?}");
            for n in &h.naive {
                assert!(h.mae <= n.mae, "shape {k}: {} {} > naive m={} {}", h.model, h.mae, n.season, n.mae);
            }
        }
    }

    #[test]
    fn a_seasonal_naive_repeats_the_last_season_and_widens_per_season() {
        let y = [1.0, 2.0, 3.0, 4.0, f64::NAN, 6.0, 7.0];
        let mut n = SeasonalNaive::fit(3, &y).unwrap();
        // Positions 0, 1, 2: the latest known values 7, 2 (5 is missing), 6.
        let f = n.forecast(4, 0.95);
        assert_eq!(f.iter().map(|p| p.0).collect::<Vec<_>>(), [2.0, 6.0, 7.0, 2.0]);
        assert!((f[0].2 - f[0].1) < (f[3].2 - f[3].1), "{f:?}");
        n.update(&[20.0, f64::NAN]);
        assert_eq!(n.forecast(3, 0.5).iter().map(|p| p.0).collect::<Vec<_>>(), [7.0, 20.0, 6.0]);
        assert!(SeasonalNaive::fit(3, &[1.0, 2.0]).is_none());
        assert!(SeasonalNaive::fit(2, &[f64::NAN; 4]).is_none());
        // A mean's forecast is the mean of its parts'.
        let m = Method::Mean(vec![Method::Naive(2), Method::Naive(3)]).fit(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(m.forecast(1, 0.5)[0].0, (5.0 + 4.0) / 2.0);
        assert_eq!(m.name(), "mean(seasonal naive m=2, seasonal naive m=3)");
    }

    #[test]
    fn peak_within_lead_time() {
        // A daily cycle at 5-minute steps, last point just before the rise.
        let v: Vec<f64> = (0..288 * 4 + 100).map(|i| if (i % 288) >= 108 && (i % 288) < 200 { 10.0 } else { 2.0 }).collect();
        let ts: Vec<i64> = (0..v.len() as i64).map(|i| i * 300_000).collect();
        assert!(peak_within(&ts, &v, 15 * 60_000).unwrap().value < 3.0, "the rise is 45 minutes away");
        let p = peak_within(&ts, &v, 60 * 60_000).unwrap();
        assert!(p.value > 8.0 && p.at == ts[ts.len() - 1] + 9 * 300_000, "{p:?}");
        assert!(peak_within(&ts[..5], &v[..5], 60_000).is_none());
    }
}
