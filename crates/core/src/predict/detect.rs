//! Streaming anomaly detection (`steward detect`): one configuration for
//! every series, online, no look-ahead: the score of a point uses only that
//! point and the points before it.
//!
//! A **count series** (every value so far a non-negative integer: requests,
//! events, keystrokes) is read through Anscombe's transform `√(x + 3/8)`,
//! under which Poisson-like counts have about the same noise at every
//! level; a detector on the raw values runs alongside and takes over at the
//! first value that is not a count (see [`Detector`]).
//!
//! Per point:
//! 1. **Predict** the value three ways: the local level (an exponentially
//!    weighted mean), the mean of the values one and two days before, and
//!    the mean of the values one and two weeks before (each the nearest
//!    sample to its time, when the history reaches back that far and it
//!    lies within half a sampling gap; one cycle alone while the history
//!    holds one). Averaging two cycles halves the weight of any one past
//!    outlier, so yesterday's spike does not return as today's surprise,
//!    and the prediction's own noise is lower than one sample's. Each
//!    predictor keeps a running mean absolute error.
//! 2. **Trust** the predictor with the lowest running error: its error,
//!    divided by its own typical error, is the point's surprise `z`. A daily
//!    cycle is then judged against the past days (so a missing peak shows)
//!    and a random walk against its recent level (so a jump shows).
//! 3. **Calibrate** `z` against the series' own history of surprises: the
//!    ratio `r = z / q` to their 98th percentile `q` (a log-binned
//!    histogram), mapped to `r⁴ / (1 + r⁴)`. `q` is raised for a series
//!    whose extremes lie further out than Gaussian noise's, so that a
//!    single point pages on what is rare *for it*, judged in time: the
//!    surprise the series exceeds once per [`DetectorConfig::page_interval_ms`]
//!    (28 days; its risk per point is the sampling interval over that, at
//!    most one in 1,000) is extrapolated from a generalized Pareto
//!    distribution fitted to its surprises above their 95th percentile
//!    (by probability-weighted moments, once 20 lie there), believed only
//!    to twice the history's length (further out it is capped at what the
//!    fit expects once in twice as many points as seen, or the
//!    second-largest surprise when that is larger), and `q` is at least
//!    that surprise over its ratio to the 98th percentile in Gaussian
//!    noise. Slow requests, bursts and retry storms so stop paging as
//!    ordinary extremes, a young heavy-tailed series does not page on each
//!    new record, a Gaussian-like series is judged by its percentile as
//!    before, and a minute's metric is held to a rarer surprise than an
//!    hourly one: false pages cost per day, not per point. For the first
//!    [`DetectorConfig::learning_ms`] (two days: the daily predictor's two
//!    cycles) a point's surprise is discounted, halved at the start.
//! 4. **Runs of surprises**: two exponentially weighted means of `z`,
//!    each `z` entering capped at twice the 98th percentile (they stand
//!    for many moderate surprises, not one outlier's echo), are calibrated
//!    the same way against their own histories: the *smoothed* surprise
//!    (unsigned: denser spikes, a wider spread) and the *drift* (signed:
//!    above the prediction or below it). Noise cancels in the drift while
//!    a level shift, a ramp or a lost daily cycle, whose surprises share a
//!    sign, adds up, so it sees a lasting move long before the unsigned
//!    mean does; its reference is at least its own 99.9th percentile over
//!    1.41 once a thousand values are known, so bursty counts do not page
//!    on every session. The score is the largest of the three paths, and
//!    one threshold serves every series.
//! 5. **A flat-lined sensor**: the same value repeated longer than
//!    [`DetectorConfig::flat_factor`] times the longest repeat the series
//!    made before (at least [`DetectorConfig::flat_min_run`]) scores on the
//!    same curve, once per flat line; a series that never moved does not.
//! 6. **Report each event once**: a score that does not exceed the highest
//!    score of the last [`DetectorConfig::rest_points`] points is damped,
//!    so an incident is one alarm, yet a stronger one still surfaces. An
//!    event still rising is not cut in two: the point right after two or
//!    more peaks in a row keeps its score.
//!
//! The defaults were chosen on the NAB development set (nab-dev) by a small
//! grid over the level weight, the error weight and the percentile, for one
//! configuration over all its files, and checked by leaving each of its
//! categories out in turn (`scripts/eval-detect.py`). A single setting moved
//! one step either way costs up to eight points there, so no one knob was
//! picked at its best value: structural choices were compared over many
//! settings of the others. Averaging two cycles back instead of one, for
//! instance, scored higher in-sample in 63 of 80 random settings of the
//! other knobs and held out in 46 (median gain about one point each), and
//! three cycles did not (held out in 35). nab-dev is not the whole test: an
//! error weight of 0.002 also scored higher there, but a doubling of
//! heavy-tailed latency then went unseen (the test
//! `a_lasting_shift_shows_through_a_heavy_tailed_series`), so it stays 0.003.
//! The drift and the extrapolated tail together, against the design
//! before them over 50 random settings of the other knobs (`detect_dir`
//! example, 10 generator seeds): fewer false alarms on the generated server
//! metrics in 33 (median -0.2 per 1,000 points), held-out nab-dev about
//! even (higher in 24, median -0.15), in-sample lower in 34 (median -1.3);
//! at the defaults both nab-dev scores held or rose (in-sample 81.1 from
//! 80.1, held out 78.1) and the false alarms fell by a third. The tail's
//! cap at the second-largest surprise, not the largest, is what the test
//! `yesterdays_outlier_does_not_return_as_todays_alarm` needs: the first
//! day's transitions of a square wave, surprising while the cycle was
//! unknown, would otherwise hide a spike a week later.
//!
//! The last three rules (the fit believed to twice the history, the
//! two-day learning period, an event still rising kept whole) were judged
//! the same way, each against the design without it over 30 to 40 random
//! settings of the other knobs. The learning period changed nothing on
//! nab-dev in any of them (its first two days lie in NAB's probation) and
//! lowered the generated series' false alarms in all 30 (median -0.15 per
//! 1,000 points for the worst kind). The horizon lowered them in 29 of 40
//! (median -0.15) at a cost on nab-dev in most (in-sample median -2, held
//! out -1.7); keeping a rising event whole lowered them in 29 of 30
//! (median -0.04; -0.15 at the defaults, where one series flapped) for
//! about one nab-dev point (the extra row over the threshold is a false
//! positive to NAB when no anomaly is labelled there). At the defaults
//! nab-dev rose (in-sample 82.1 from 81.1, held out 81.0 from 78.1) and
//! the worst kind's false alarms fell from 1.30 to 0.93 per 1,000 points.
//!
//! Everything is O(1) per point (amortized), with a bounded history.
//!
//! Any finite values and timestamps give a finite score in 0..=1: errors
//! that overflow saturate at `f64::MAX`, surprises at [`MAX_SURPRISE`], time
//! arithmetic is exact, and a value that is not finite scores 0 and is not
//! learned from. None of these guards is reached by ordinary data, whose
//! scores are exactly those of the plain formulas.

use super::stats::normal_quantile;
use crate::time::UnixMs;

/// The detector's settings (one set for all series; see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Weight of each new point in the local level (0..1).
    pub level_weight: f64,
    /// Weight of each new error in the predictors' running errors (0..1).
    pub error_weight: f64,
    /// The seasons tried, in milliseconds (0 = unused).
    pub seasons_ms: [i64; 2],
    /// How many past cycles of each season its prediction averages (the
    /// value one season back, two seasons back, ...; 1 to
    /// [`MAX_SEASON_CYCLES`]). The nearer cycles are used while the history
    /// does not reach the farther ones.
    pub season_cycles: usize,
    /// The percentile of past surprises a surprise is compared with.
    pub tail_quantile: f64,
    /// Exponent of the ratio to that percentile in the score.
    pub sharpness: f64,
    /// How rarely a single point may page, as time: a point's surprise is
    /// judged against the larger of the `tail_quantile` percentile and the
    /// surprise the series itself exceeds once in this long (its risk per
    /// point is the sampling interval over it, at most one in 1,000 and at
    /// least one in 100,000), scaled down by the ratio the two have
    /// for Gaussian noise. That surprise is extrapolated from the series'
    /// own tail (see `fit_quantile`), so a heavy-tailed series (slow
    /// requests, bursts, retry storms) raises its own bar until its
    /// ordinary extremes stop paging, while for Gaussian-like noise the two
    /// agree and the reference stays the percentile. A minute's metric is
    /// held to a rarer event than an hourly one: false pages are a cost per
    /// day, not per point. 0 turns it off (the percentile alone).
    pub page_interval_ms: i64,
    /// The percentile above which the tail of the points' surprises is
    /// fitted (a generalized Pareto distribution, once 20 surprises lie
    /// above it) to extrapolate the once-per-`page_interval_ms` surprise.
    pub fit_quantile: f64,
    /// How far past its history a fitted tail is believed: the
    /// extrapolated surprise is at most the one the fit expects once in
    /// this many times as many points as it has seen, or the second-largest
    /// surprise seen when that is larger. A young history cannot show what
    /// happens once in 28 days; judged against its own records instead, a
    /// heavy-tailed series (a t-distributed CPU, bursts, slow requests)
    /// pages on each new record, about two in every `n` points. 0 caps the
    /// extrapolation at the second-largest surprise.
    pub fit_horizon: f64,
    /// For this long after a series' first point, a single point's surprise
    /// is discounted: halved at the start, less and less, not at all at
    /// the end. The daily predictor needs two days to average two cycles,
    /// and a young history cannot yet tell the series' ordinary extremes
    /// from its rare ones. A surprise twice the bar still pages on the first
    /// day; runs of surprises (a level shift, a ramp) are not discounted.
    /// 0 turns it off.
    pub learning_ms: i64,
    /// The rarer percentile of past drift values (see `drift_weight`) that
    /// keeps a series whose drifts are heavy-tailed (bursty counts, retry
    /// storms) from paging on its ordinary ones, read from the history once
    /// it holds `1 / (1 - rare_quantile)` of them and scaled by its ratio
    /// to the `tail_quantile` percentile for Gaussian noise (also a single
    /// point's, when `page_interval_ms` is 0). 1, or any value not above
    /// `tail_quantile`, turns it off.
    pub rare_quantile: f64,
    /// Weight of each new surprise in the smoothed surprise (0..1), which
    /// catches a burst of moderate surprises that no single point shows.
    pub smooth_weight: f64,
    /// Each surprise enters the smoothed surprise capped at this many times
    /// the `tail_quantile` percentile, so one huge spike cannot carry it: it
    /// stands for many moderate surprises in a row (a level shift, a
    /// ramp, a denser burst), which a series' isolated outliers are not.
    /// 0 turns the cap off.
    pub smooth_cap: f64,
    /// Weight of each new signed surprise in the drift (0..1): an
    /// exponentially weighted mean of the surprises with their sign (above
    /// the prediction or below it), each capped like the smoothed one. Noise
    /// cancels in it; a level shift, a ramp or a lost daily cycle, whose
    /// surprises share a sign, adds up. Calibrated like the others against
    /// its own history. 0 turns it off.
    pub drift_weight: f64,
    /// Points after an alarm during which weaker scores are damped.
    pub rest_points: usize,
    /// Samples either side of a seasonal match that bound the expected value.
    pub neighbours: usize,
    /// Factor applied to damped scores.
    pub damping: f64,
    /// A flat-lined sensor: the same value repeated this many times longer
    /// than the longest repeat seen before (and than `flat_min_run`) scores
    /// 0.5, more scores higher on the same curve as a surprise.
    pub flat_factor: f64,
    /// The shortest repeat that counts as the series' own (below it, any
    /// series could repeat a value by chance).
    pub flat_min_run: usize,
    /// Points before scores reach full weight (the start is learning).
    pub warmup_points: usize,
    /// Most points of history kept (for the seasonal predictors).
    pub max_history: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            level_weight: 0.05,
            error_weight: 0.003,
            seasons_ms: [86_400_000, 7 * 86_400_000],
            season_cycles: 2,
            tail_quantile: 0.98,
            sharpness: 4.0,
            page_interval_ms: 28 * 86_400_000,
            fit_quantile: 0.95,
            fit_horizon: 2.0,
            learning_ms: 2 * 86_400_000,
            rare_quantile: 0.999,
            smooth_weight: 0.1,
            smooth_cap: 2.0,
            drift_weight: 0.1,
            rest_points: 100,
            damping: 0.5,
            flat_factor: 2.0,
            flat_min_run: 5,
            neighbours: 0,
            warmup_points: 150,
            max_history: 16_384,
        }
    }
}

const N_PRED: usize = 3;
/// The most past cycles a seasonal prediction averages.
pub const MAX_SEASON_CYCLES: usize = 4;
/// Log2-spaced histogram bins per octave, and the octave range covered.
const BINS_PER_OCTAVE: f64 = 8.0;
const MIN_LOG2: f64 = -20.0;
const N_BINS: usize = 8 * 50;
/// Halve the histogram when it holds this many points (bounded memory of the past).
const HIST_CAP: u32 = 1 << 16;
/// Recompute the percentile every this many points.
const QUANTILE_EVERY: u64 = 8;
/// Surprises are capped here so the smoothed surprise stays finite; the
/// score saturates long before (no real series comes near it).
pub const MAX_SURPRISE: f64 = 1e300;

/// A streaming anomaly detector for one series.
///
/// While every value so far is a non-negative integer (a count: requests,
/// events, keystrokes), the series is scored after Anscombe's transform
/// `√(x + 3/8)`, under which Poisson-like counts have about the same noise
/// at every level, so a busy hour's ordinary spread is not judged against a
/// quiet night's. A detector on the raw values runs alongside and takes over
/// for good at the first value that is not a count.
#[derive(Debug, Clone)]
pub struct Detector {
    raw: Core,
    counts: Option<Box<Core>>,
}

impl Detector {
    /// A detector with no history.
    pub fn new(cfg: DetectorConfig) -> Self {
        Self { raw: Core::new(cfg), counts: Some(Box::new(Core::new(cfg))) }
    }

    /// Scores the next point (timestamps must increase): 0..1, higher is
    /// more anomalous. A value that is not finite scores 0 and is skipped.
    pub fn update(&mut self, ts: UnixMs, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        if value < 0.0 || value.fract() != 0.0 {
            self.counts = None;
        }
        let raw = self.raw.update(ts, value);
        match &mut self.counts {
            Some(c) => c.update(ts, (value + 0.375).sqrt()),
            None => raw,
        }
    }
}

/// The detector proper, on one series of values.
#[derive(Debug, Clone)]
struct Core {
    cfg: DetectorConfig,
    /// Ring buffer of past (timestamp, value).
    ts: Vec<UnixMs>,
    vals: Vec<f64>,
    head: usize,
    len: usize,
    /// For each season and cycle back, the ring offset (from the oldest)
    /// where the last lookup landed.
    cursor: [usize; 2 * MAX_SEASON_CYCLES],
    n: u64,
    level: f64,
    /// Running mean absolute error per predictor (NaN until first seen).
    mae: [f64; N_PRED],
    seen: [u64; N_PRED],
    point: Tail,
    smoothed: Tail,
    smooth: f64,
    drifted: Tail,
    drift: f64,
    /// The mean log of the gaps between timestamps (NaN until one is
    /// seen): the sampling interval, for the point's risk.
    log_gap: f64,
    /// The last gap and its log (most gaps repeat the one before).
    gap: (i64, f64),
    once: Once,
    /// The last value, how many times in a row it came, and the longest
    /// such repeat before the current one.
    last_value: f64,
    run: usize,
    longest_run: usize,
    /// How many times the value has changed (a series that never moved
    /// cannot flat-line).
    changes: u64,
    /// This repeat has been reported (one alarm per flat line).
    flat_reported: bool,
    /// The first timestamp (the learning period runs from it).
    start: UnixMs,
}

impl Core {
    fn new(cfg: DetectorConfig) -> Self {
        let cap = cfg.max_history.max(2);
        Self {
            cfg,
            ts: vec![0; cap],
            vals: vec![0.0; cap],
            head: 0,
            len: 0,
            cursor: [0; 2 * MAX_SEASON_CYCLES],
            n: 0,
            level: 0.0,
            mae: [f64::NAN; N_PRED],
            seen: [0; N_PRED],
            point: Tail::new(if cfg.page_interval_ms > 0 { Rare::Extrapolated } else { Rare::observed(&cfg) }),
            smoothed: Tail::new(Rare::Off),
            smooth: f64::NAN,
            drifted: Tail::new(Rare::observed(&cfg)),
            drift: 0.0,
            log_gap: f64::NAN,
            gap: (0, f64::NAN),
            once: Once::new(),
            last_value: f64::NAN,
            run: 0,
            longest_run: 0,
            changes: 0,
            flat_reported: false,
            start: 0,
        }
    }

    fn at(&self, i: usize) -> (UnixMs, f64) {
        // i-th oldest point in the ring.
        let cap = self.ts.len();
        let j = (self.head + cap - self.len + i) % cap;
        (self.ts[j], self.vals[j])
    }

    /// The range of the samples around the one nearest to `target`
    /// ([`DetectorConfig::neighbours`] either side), if the nearest is
    /// within half the local sampling gap. Moves cursor `k` forward.
    fn lookup(&mut self, k: usize, target: UnixMs) -> Option<(f64, f64)> {
        if self.len < 2 {
            return None;
        }
        let (oldest, _) = self.at(0);
        if target < oldest {
            return None;
        }
        let mut c = self.cursor[k].min(self.len - 1);
        while c + 1 < self.len && self.at(c + 1).0 <= target {
            c += 1;
        }
        self.cursor[k] = c;
        // In i128: differences of any two i64 timestamps are exact.
        let target = i128::from(target);
        let t0 = i128::from(self.at(c).0);
        let (dist, nearest, gap) = if c + 1 < self.len {
            let t1 = i128::from(self.at(c + 1).0);
            if target - t0 <= t1 - target {
                (target - t0, c, t1 - t0)
            } else {
                (t1 - target, c + 1, t1 - t0)
            }
        } else {
            (target - t0, c, i128::from(i64::MAX))
        };
        if 2 * dist > gap.max(1) && dist != 0 {
            return None;
        }
        let lo = nearest.saturating_sub(self.cfg.neighbours);
        let hi = (nearest + self.cfg.neighbours).min(self.len - 1);
        let mut range = (f64::INFINITY, f64::NEG_INFINITY);
        for i in lo..=hi {
            let v = self.at(i).1;
            range = (range.0.min(v), range.1.max(v));
        }
        Some(range)
    }

    fn push(&mut self, ts: UnixMs, value: f64) {
        let cap = self.ts.len();
        self.ts[self.head] = ts;
        self.vals[self.head] = value;
        self.head = (self.head + 1) % cap;
        if self.len < cap {
            self.len += 1;
        } else {
            // The oldest point dropped: cursors index from the oldest.
            for c in &mut self.cursor {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// What a point's surprise is divided by at `ts` during the learning
    /// period: 2 at the first point, falling linearly to 1 at its end (time
    /// stepping back counts as no time passed).
    fn learning(&self, ts: UnixMs) -> f64 {
        if self.cfg.learning_ms <= 0 {
            return 1.0;
        }
        // In i128: the difference of any two i64 timestamps is exact.
        let elapsed = (i128::from(ts) - i128::from(self.start)).max(0) as f64;
        2.0 - (elapsed / self.cfg.learning_ms as f64).min(1.0)
    }

    fn update(&mut self, ts: UnixMs, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        if self.n == 0 {
            self.start = ts;
        }
        // Each predictor gives an expected range; the error is the distance
        // from the value to it.
        let mut preds = [(f64::NAN, f64::NAN); N_PRED];
        if self.n > 0 {
            preds[0] = (self.level, self.level);
        }
        let cycles = self.cfg.season_cycles.clamp(1, MAX_SEASON_CYCLES);
        for k in 0..2 {
            let season = self.cfg.seasons_ms[k];
            if season <= 0 {
                continue;
            }
            // The mean of the cycles the history reaches, nearest first. A
            // target before the earliest time has no history either.
            let mut got = [(0.0, 0.0); MAX_SEASON_CYCLES];
            let mut n = 0;
            for (m, slot) in got.iter_mut().enumerate().take(cycles) {
                let target = season.checked_mul(m as i64 + 1).and_then(|back| ts.checked_sub(back));
                let Some(r) = target.and_then(|t| self.lookup(k * MAX_SEASON_CYCLES + m, t)) else { break };
                *slot = r;
                n += 1;
            }
            if n > 0 {
                // Each part divided first, so the mean of values near
                // ±f64::MAX stays finite.
                let w = 1.0 / n as f64;
                preds[k + 1] = got[..n].iter().fold((0.0, 0.0), |(lo, hi), r| (lo + w * r.0, hi + w * r.1));
            }
        }
        // The distance saturates: ±1e308 apart is as far as f64 goes.
        let err = |(lo, hi): (f64, f64)| {
            if value < lo {
                (lo - value).min(f64::MAX)
            } else if value > hi {
                (value - hi).min(f64::MAX)
            } else {
                0.0
            }
        };
        // The trusted predictor: the lowest running error among those that
        // have predicted and are available now.
        let mut best: Option<usize> = None;
        for (k, pred) in preds.iter().enumerate() {
            if pred.0.is_finite() && self.seen[k] >= 10 && best.is_none_or(|b| self.mae[k] < self.mae[b]) {
                best = Some(k);
            }
        }
        let mut score = 0.0;
        // The sampling interval: a geometric mean of the gaps, slow to move.
        // The newest point in the ring is the previous one learned from.
        let last = (self.len > 0).then(|| self.at(self.len - 1).0);
        if let Some(gap) = last.and_then(|last| ts.checked_sub(last)).filter(|g| *g > 0) {
            if gap != self.gap.0 {
                self.gap = (gap, (gap as f64).ln());
            }
            let g = self.gap.1;
            self.log_gap = if self.log_gap.is_nan() { g } else { self.log_gap + GAP_WEIGHT * (g - self.log_gap) };
        }
        if let Some(b) = best {
            let floor = match 1e-9 * (value.abs() + self.level.abs()) + 1e-12 {
                f if f.is_finite() => f,
                _ => 1e-9 * value.abs() + 1e-9 * self.level.abs(),
            };
            let z = (err(preds[b]) / (self.mae[b] + floor).min(f64::MAX)).min(MAX_SURPRISE);
            // Capped, so the smoothed surprise stands for many moderate
            // surprises in a row, never for one outlier.
            let capped = match self.point.quantile {
                q if self.cfg.smooth_cap > 0.0 && q.is_finite() => z.min(self.cfg.smooth_cap * q),
                _ => z,
            };
            self.smooth = if self.smooth.is_nan() { capped } else { self.smooth + self.cfg.smooth_weight * (capped - self.smooth) };
            // The drift: signed surprises, capped the same way, so noise
            // cancels and a lasting move adds up.
            let (lo, hi) = preds[b];
            let signed = if value > hi {
                capped
            } else if value < lo {
                -capped
            } else {
                0.0
            };
            self.drift += self.cfg.drift_weight * (signed - self.drift);
            let warm = self.point.total() >= 30;
            let s_point = self.point.score(z / self.learning(ts), &self.cfg);
            let s_smooth = self.smoothed.score(self.smooth, &self.cfg);
            let s_drift = self.drifted.score(self.drift.abs(), &self.cfg);
            if warm {
                score = s_point;
                if self.cfg.smooth_weight > 0.0 {
                    score = score.max(s_smooth);
                }
                if self.cfg.drift_weight > 0.0 {
                    score = score.max(s_drift);
                }
            }
            // How rare a point's surprise must be to page: once per
            // `page_interval_ms` at the series' sampling interval.
            if self.point.record(z, self.n) {
                let risk = (self.log_gap.exp() / self.cfg.page_interval_ms as f64).clamp(MIN_RISK, MAX_RISK);
                self.point.refit(&self.cfg, risk);
            }
            if self.smoothed.record(self.smooth, self.n) {
                self.smoothed.refit(&self.cfg, f64::NAN);
            }
            if self.cfg.drift_weight > 0.0 && self.drifted.record(self.drift.abs(), self.n) {
                self.drifted.refit(&self.cfg, f64::NAN);
            }
        }
        // A flat-lined sensor: a repeat far longer than the series has made.
        if value == self.last_value {
            self.run += 1;
        } else {
            self.longest_run = self.longest_run.max(self.run);
            self.run = 1;
            self.last_value = value;
            self.changes += 1;
            self.flat_reported = false;
        }
        if self.cfg.flat_factor > 0.0 && self.n as usize >= self.cfg.warmup_points && self.changes as usize > self.cfg.warmup_points / 2 {
            let usual = self.longest_run.max(self.cfg.flat_min_run) as f64;
            let r = self.run as f64 / (self.cfg.flat_factor * usual);
            // Reported once, as it becomes clear (r = 2); then quiet until the value moves.
            if !self.flat_reported {
                let rk = r.min(2.0).powf(self.cfg.sharpness);
                score = score.max(rk / (1.0 + rk));
                self.flat_reported = r >= 2.0;
            }
        }
        // Learning weight at the start.
        let warm = (self.n as f64 / self.cfg.warmup_points.max(1) as f64).min(1.0);
        score *= warm;
        let out = self.once.report(score, &self.cfg);
        // Learn from the point.
        for (k, &pred) in preds.iter().enumerate() {
            if pred.0.is_finite() {
                let e = err(pred);
                self.mae[k] = if self.seen[k] == 0 {
                    e
                } else {
                    self.mae[k] + self.cfg.error_weight.max(1.0 / (self.seen[k] + 1) as f64) * (e - self.mae[k])
                };
                self.seen[k] += 1;
            }
        }
        self.level = if self.n == 0 {
            value
        } else {
            let w = self.cfg.level_weight;
            match self.level + w * (value - self.level) {
                // The same weighted mean without the overflowing difference.
                l if !l.is_finite() => (1.0 - w) * self.level + w * value,
                l => l,
            }
        };
        self.push(ts, value);
        self.n += 1;
        if out.is_nan() {
            0.0
        } else {
            out.clamp(0.0, 1.0)
        }
    }
}

/// One alarm per event: a score that does not exceed the highest of the
/// last [`DetectorConfig::rest_points`] points is damped, so an incident is
/// one alarm, yet a stronger one still surfaces.
#[derive(Debug, Clone)]
struct Once {
    peak: f64,
    since_peak: usize,
    /// How many points in a row, ending at the peak, were peaks.
    rising: u32,
}

impl Once {
    fn new() -> Self {
        Self { peak: 0.0, since_peak: usize::MAX, rising: 0 }
    }

    /// The score reported for a point that scored `score`.
    fn report(&mut self, score: f64, cfg: &DetectorConfig) -> f64 {
        self.since_peak = self.since_peak.saturating_add(1);
        if score > self.peak || self.since_peak > cfg.rest_points {
            self.rising = if self.since_peak == 1 { self.rising.saturating_add(1) } else { 1 };
            self.peak = score;
            self.since_peak = 0;
            score
        } else if self.since_peak == 1 && self.rising >= 2 {
            // An event still rising (0.80, 0.90, 0.95, then 0.92, 0.96)
            // would dip between its peaks and alarm twice: the point right
            // after two or more peaks in a row keeps its score. After a
            // lone peak (a spike) it is damped, so a spike's echo is not a
            // second row over the threshold.
            score
        } else {
            score * cfg.damping
        }
    }
}

/// How far out the surprise exceeded with probability `risk` lies, over the
/// `q` percentile, for Gaussian noise (of absolute errors). 0 when it does
/// not lie further out (or either is out of range).
fn gaussian_ratio(q: f64, risk: f64) -> f64 {
    if !(q > 0.0 && q < 1.0 && risk > 0.0 && risk < 1.0 - q) {
        return 0.0;
    }
    let ratio = normal_quantile(1.0 - risk / 2.0) / normal_quantile(1.0 - (1.0 - q) / 2.0);
    if ratio.is_finite() && ratio > 0.0 {
        ratio
    } else {
        0.0
    }
}

/// Weight of each new gap in the mean log gap (the sampling interval).
const GAP_WEIGHT: f64 = 0.02;
/// The most lenient risk a single point may page at (one point in 1,000).
const MAX_RISK: f64 = 1e-3;
/// The least number of surprises above the fit percentile before the tail
/// is extrapolated (fewer give a shape too noisy to trust).
const MIN_EXCEEDANCES: f64 = 20.0;
/// The rarest risk a tail is extrapolated to (one point in 100,000).
const MIN_RISK: f64 = 1e-5;

/// How a [`Tail`] knows how far out its rare surprises lie, which sets the
/// least its reference can be.
#[derive(Debug, Clone, Copy)]
enum Rare {
    /// Not at all: the reference is the percentile.
    Off,
    /// The `rare_quantile` percentile, read from the history once it is long
    /// enough to hold one such event, over its Gaussian ratio to the
    /// percentile.
    Observed { ratio: f64 },
    /// The surprise exceeded with the given risk, extrapolated from a
    /// generalized Pareto distribution fitted to the surprises above the
    /// `fit_quantile` percentile, over its Gaussian ratio to the percentile.
    Extrapolated,
}

impl Rare {
    /// The `rare_quantile` percentile over its Gaussian ratio to the
    /// `tail_quantile` one (1.41 for the 99.9th over the 98th: a series
    /// whose rare percentile lies further out has heavier tails than
    /// Gaussian noise); off when the rare percentile is.
    fn observed(cfg: &DetectorConfig) -> Self {
        match gaussian_ratio(cfg.tail_quantile, 1.0 - cfg.rare_quantile) {
            r if r > 0.0 => Rare::Observed { ratio: r },
            _ => Rare::Off,
        }
    }
}

/// A log-binned histogram of past surprises and its upper percentiles.
#[derive(Debug, Clone)]
struct Tail {
    hist: Vec<u32>,
    total: u32,
    /// The `tail_quantile` percentile.
    quantile: f64,
    /// The least the reference can be, from the rare surprises (NaN while
    /// unknown).
    floor: f64,
    rare: Rare,
    /// The last risk extrapolated to and its Gaussian ratio.
    ratio: (f64, f64),
    /// No bin above this one holds a surprise (where scans start).
    top: usize,
}

impl Tail {
    fn new(rare: Rare) -> Self {
        Self { hist: vec![0; N_BINS], total: 0, quantile: f64::NAN, floor: f64::NAN, rare, ratio: (f64::NAN, 0.0), top: 0 }
    }

    fn total(&self) -> u32 {
        self.total
    }

    /// What a surprise is measured against: the percentile, raised for a
    /// series whose rare surprises lie further out than Gaussian noise's.
    fn reference(&self) -> f64 {
        let q = self.quantile.max(1e-6);
        if self.floor.is_finite() {
            q.max(self.floor)
        } else {
            q
        }
    }

    /// `r⁴ / (1 + r⁴)` with `r` = the surprise over the reference.
    fn score(&self, z: f64, cfg: &DetectorConfig) -> f64 {
        if !self.quantile.is_finite() {
            return 0.0;
        }
        let r = z / self.reference();
        let rk = r.powf(cfg.sharpness);
        if rk.is_finite() {
            rk / (1.0 + rk)
        } else {
            1.0
        }
    }

    /// Learns a surprise; true when the percentiles are due to be read
    /// again ([`Tail::refit`]: every few points, and until known).
    fn record(&mut self, z: f64, n: u64) -> bool {
        let b = bin_of(z);
        self.hist[b] += 1;
        self.top = self.top.max(b);
        self.total += 1;
        if self.total >= HIST_CAP {
            // Halved from the top with the odd one carried down, so the
            // count above every bin is halved too (rounding each bin down
            // would empty the rare tail, where bins hold one event each).
            self.total = 0;
            let mut carry = 0;
            for h in self.hist.iter_mut().rev() {
                let x = *h + carry;
                *h = x / 2;
                carry = x % 2;
                self.total += *h;
            }
        }
        n.is_multiple_of(QUANTILE_EVERY) || self.quantile.is_nan()
    }

    /// Reads the percentile and the floor again. `risk` is how rare a
    /// surprise the extrapolated floor stands for (unused by the other kinds).
    fn refit(&mut self, cfg: &DetectorConfig, risk: f64) {
        let total = f64::from(self.total);
        self.quantile = bin_floor(self.percentile_bin(cfg.tail_quantile, 0.0));
        self.floor = match self.rare {
            Rare::Off => f64::NAN,
            // The rare percentile is known once the history is long enough
            // to hold one such event (1,000 surprises for the 99.9th): it is
            // then the bin of the largest, later of the top 0.1 %.
            Rare::Observed { ratio } if (1.0 - cfg.rare_quantile) * total >= 1.0 - 1e-9 => {
                // (The rare share of the history can be exactly one event:
                // its count is compared with a tolerance for rounding.)
                bin_floor(self.percentile_bin(cfg.rare_quantile, 1e-9)) / ratio
            }
            Rare::Observed { .. } => f64::NAN,
            Rare::Extrapolated => {
                // The ratio changes only with the risk, which settles with
                // the sampling interval.
                if risk != self.ratio.0 {
                    self.ratio = (risk, gaussian_ratio(cfg.tail_quantile, risk));
                }
                let ratio = self.ratio.1;
                match self.extrapolate(cfg.fit_quantile, risk, cfg.fit_horizon) {
                    Some(z) if ratio > 0.0 => z / ratio,
                    _ => f64::NAN,
                }
            }
        };
    }

    /// The bin holding the `p` percentile: where the count from the top
    /// reaches the top `1 - p` share (at least one event, less `slack`).
    fn percentile_bin(&self, p: f64, slack: f64) -> usize {
        let tail = ((1.0 - p) * f64::from(self.total)).max(1.0);
        let mut acc = 0.0;
        for b in (0..=self.top).rev() {
            acc += f64::from(self.hist[b]);
            if acc >= tail - slack {
                return b;
            }
        }
        0
    }

    /// The surprise exceeded with probability `risk`, from a generalized
    /// Pareto distribution fitted (by probability-weighted moments, Hosking
    /// and Wallis 1987) to the surprises in the bins above the one holding
    /// the `fit` percentile. `None` until [`MIN_EXCEEDANCES`] lie there, or
    /// when the fit is degenerate.
    fn extrapolate(&self, fit: f64, risk: f64, horizon: f64) -> Option<f64> {
        let ub = self.percentile_bin(fit, 0.0);
        // The exceedances start at the upper edge of that bin; each counts at
        // its bin's geometric centre.
        let t = bin_floor(ub + 1);
        let centre = (0.5 / BINS_PER_OCTAVE).exp2();
        let nt: f64 = self.hist[ub + 1..=self.top.max(ub)].iter().map(|&c| f64::from(c)).sum();
        if nt < MIN_EXCEEDANCES || risk.is_nan() || risk <= 0.0 {
            return None;
        }
        // a0 = E[Y], a1 = E[Y (1 - F(Y))] over the excesses Y above t.
        let (mut a0, mut a1, mut above) = (0.0, 0.0, 0.0);
        for b in (ub + 1..=self.top).rev() {
            let c = f64::from(self.hist[b]);
            if c == 0.0 {
                continue;
            }
            let y = bin_floor(b) * centre - t;
            a0 += c * y;
            a1 += c * y * (above + 0.5 * c) / nt;
            above += c;
        }
        a0 /= nt;
        a1 /= nt;
        let d = a0 - 2.0 * a1;
        if !(d > 0.0 && a0 > 0.0) {
            return None;
        }
        // Hosking's shape k is minus the usual xi; a short history's shape is
        // noisy, so it is kept within what server metrics show.
        let xi = (2.0 - a0 / d).clamp(-0.5, 0.9);
        let sigma = 2.0 * a0 * a1 / d;
        let total = f64::from(self.total);
        let exceeded = |risk: f64| {
            // How many times rarer than an exceedance the risk is.
            let x = (nt / (risk * total)).max(1.0);
            if xi.abs() < 1e-6 {
                t + sigma * x.ln()
            } else {
                t + sigma / xi * (x.powf(xi) - 1.0)
            }
        };
        // Believed only to `horizon` times the history's length: a young
        // history's fit says little about a once-in-28-days event, and a
        // fitted heavy tail runs on where the series' own is cut off (a
        // timeout, a full disk).
        let believed = if horizon > 0.0 { exceeded(risk.max(1.0 / (horizon * total))) } else { 0.0 };
        // Nor below the second-largest surprise seen (the upper edge of its
        // bin): what exceeds all the series has done but once is news
        // whatever the fit says. Not the largest: one past event alone (the
        // first time a daily cycle was seen, an old incident) must not set
        // the bar.
        let second = bin_floor(self.percentile_bin(1.0 - 2.0 / total, 0.0) + 1);
        let z = exceeded(risk).min(believed.max(second));
        z.is_finite().then_some(z)
    }
}

fn bin_of(z: f64) -> usize {
    if z.is_nan() || z <= 0.0 {
        return 0;
    }
    let b = ((z.log2() - MIN_LOG2) * BINS_PER_OCTAVE).floor();
    if b < 0.0 {
        0
    } else {
        (b as usize).min(N_BINS - 1)
    }
}

fn bin_floor(b: usize) -> f64 {
    (b as f64 / BINS_PER_OCTAVE + MIN_LOG2).exp2()
}

/// Scores a whole series with a fresh detector (the same scores as feeding
/// it point by point).
pub fn score_series(ts: &[UnixMs], values: &[f64], cfg: DetectorConfig) -> Vec<f64> {
    let mut d = Detector::new(cfg);
    ts.iter().zip(values).map(|(&t, &v)| d.update(t, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rising edges at 0.88 in what [`Once`] reports for `scores`.
    fn alarms(scores: &[f64]) -> (Vec<f64>, usize) {
        let cfg = DetectorConfig::default();
        let mut once = Once::new();
        let out: Vec<f64> = scores.iter().map(|&s| once.report(s, &cfg)).collect();
        let edges = out.windows(2).filter(|w| w[1] >= 0.88 && w[0] < 0.88).count();
        (out, edges)
    }

    #[test]
    fn an_event_still_rising_is_one_alarm() {
        // Three peaks in a row, a dip of one point, higher again.
        let (out, edges) = alarms(&[0.1, 0.80, 0.90, 0.95, 0.92, 0.96, 0.97, 0.5, 0.3]);
        assert_eq!(edges, 1, "{out:?}");
        assert_eq!(out[4], 0.92);
        // The point right after it keeps its score too (0.5, under the
        // threshold); what follows is damped as before.
        assert_eq!(out[7], 0.5);
        assert_eq!(out[8], 0.15);
    }

    #[test]
    fn a_spikes_echo_is_damped_and_a_stronger_spike_still_surfaces() {
        // A lone peak: the point after it is not a second row over the
        // threshold; a clearly stronger one later is a new alarm.
        let (out, edges) = alarms(&[0.1, 0.2, 0.1, 0.95, 0.93, 0.1, 0.1, 0.97, 0.1]);
        assert_eq!(out[4], 0.465);
        assert_eq!(out[7], 0.97);
        assert_eq!(edges, 2, "{out:?}");
        // After the rest, any score stands for itself again.
        let mut scores = vec![0.1, 0.95];
        scores.extend(std::iter::repeat_n(0.1, DetectorConfig::default().rest_points));
        scores.push(0.9);
        let (out, edges) = alarms(&scores);
        assert_eq!(edges, 2, "{out:?}");
    }
}
