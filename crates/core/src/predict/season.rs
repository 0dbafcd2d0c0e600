//! Season detection from the autocorrelation function.
//!
//! The series is detrended by least squares, then its autocorrelation is
//! computed up to half its length (at least two cycles must be seen). A lag
//! is a season when the autocorrelation there is a local peak of at least
//! [`MIN_ACF`] that rises at least [`MIN_PROMINENCE`] above the lowest
//! autocorrelation at shorter lags; this rejects the slow monotone decay of a
//! random walk, whose wiggles are not cycles, and that is the highest
//! within a tenth of its lag (sampling noise makes wiggles on the slope of
//! a broad peak at fine resolution). The primary season is the
//! shortest such lag among those whose peak is within [`NEAR_BEST`] of the
//! best one (a cycle of 24 also peaks at 48, 72 ...). A second, longer
//! season (e.g. weekly over daily) is kept when the autocorrelation at a
//! multiple of the primary stands out from its neighbouring multiples by at
//! least [`HARMONIC_RISE`].

use super::stats::{acf, linear_fit};

/// Smallest autocorrelation that counts as a season.
pub const MIN_ACF: f64 = 0.25;
/// How far a peak must rise above the lowest autocorrelation before it.
pub const MIN_PROMINENCE: f64 = 0.15;
/// Peaks this close to the best one compete on shortness.
pub const NEAR_BEST: f64 = 0.1;
/// How far a multiple of the primary season must stand out from its
/// neighbouring multiples to be a second season.
pub const HARMONIC_RISE: f64 = 0.05;
/// At most this many of the latest points are used (the cost is quadratic).
pub const MAX_POINTS: usize = 8640;

/// The seasons found in a series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Seasons {
    /// The shortest clear cycle, in points.
    pub primary: Option<usize>,
    /// A longer cycle, a multiple of the primary (e.g. a week over a day).
    pub secondary: Option<usize>,
    /// Autocorrelation at the primary season.
    pub primary_acf: f64,
    /// Autocorrelation at the secondary season.
    pub secondary_acf: f64,
}

/// Autocorrelation within which a calendar period (an hour, a day, a
/// week) is preferred to a nearby lag that peaks slightly higher.
pub const CALENDAR_SLACK: f64 = 0.02;

/// Finds the seasons of a regularly sampled series (see the module doc).
pub fn detect(values: &[f64]) -> Seasons {
    detect_with_step(values, None)
}

/// [`detect`], knowing the sampling step: a nearby calendar period (an
/// hour, a day or a week, in points) whose autocorrelation is within
/// [`CALENDAR_SLACK`] of the peak is taken instead of the peak, since
/// operational load follows the clock and a noisy peak drifts by a few lags.
pub fn detect_with_step(values: &[f64], step_ms: Option<i64>) -> Seasons {
    let x = &values[values.len().saturating_sub(MAX_POINTS)..];
    let n = x.len();
    if n < 8 {
        return Seasons::default();
    }
    let idx: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let detrended: Vec<f64> = match linear_fit(&idx, x) {
        Some(f) => x.iter().enumerate().map(|(i, v)| v - f.intercept - f.slope * i as f64).collect(),
        None => x.to_vec(),
    };
    let max_lag = n / 2;
    let r = acf(&detrended, max_lag + 1);
    let mut peaks = Vec::new();
    let mut lowest = f64::INFINITY;
    for k in 1..r.len().saturating_sub(1) {
        lowest = lowest.min(r[k]);
        if k >= 2 && k <= max_lag && r[k] >= MIN_ACF && r[k] > r[k - 1] && r[k] >= r[k + 1] && r[k] - lowest >= MIN_PROMINENCE {
            // A wiggle on the slope of a broader peak is not a season: the
            // peak must be the highest within a tenth of its lag.
            let reach = (k / 10).max(1);
            let (lo, hi) = (k.saturating_sub(reach).max(1), (k + reach).min(r.len() - 1));
            if r[lo..=hi].iter().all(|&v| v <= r[k]) {
                peaks.push(k);
            }
        }
    }
    let Some(best) = peaks.iter().map(|&k| r[k]).reduce(f64::max) else {
        return Seasons::default();
    };
    let Some(&primary) = peaks.iter().find(|&&k| r[k] >= best - NEAR_BEST) else {
        return Seasons::default();
    };
    let calendar: Vec<usize> = match step_ms {
        Some(step) if step > 0 => [3_600_000i64, 86_400_000, 604_800_000]
            .iter()
            .filter(|&&p| p % step == 0)
            .map(|&p| usize::try_from(p / step).unwrap_or(0))
            .filter(|&l| l >= 2 && l <= max_lag)
            .collect(),
        _ => Vec::new(),
    };
    let snap = |k: usize| -> usize {
        let reach = (k / 10).max(1);
        calendar.iter().copied().find(|&l| l.abs_diff(k) <= reach && r[l] >= r[k] - CALENDAR_SLACK).unwrap_or(k)
    };
    let primary = snap(refine(&r, primary, max_lag));
    let mut seasons = Seasons { primary: Some(primary), secondary: None, primary_acf: r[primary], secondary_acf: 0.0 };
    // A second season: a multiple of the primary that is a peak among the
    // multiples, seen at least twice (so at most n/2).
    let at = |m: usize| -> f64 {
        // The best value within one lag of the multiple: cycles drift by a sample.
        let k = m * primary;
        (k.saturating_sub(1)..=(k + 1).min(r.len() - 1)).map(|j| r[j]).fold(f64::NEG_INFINITY, f64::max)
    };
    let mut m = 2;
    while (m + 1) * primary <= max_lag + 1 {
        let (prev, here, next) = (at(m - 1), at(m), at(m + 1));
        if here >= MIN_ACF && here >= prev + HARMONIC_RISE && here >= next + HARMONIC_RISE {
            let secondary = snap(m * primary);
            seasons.secondary = Some(secondary);
            seasons.secondary_acf = r[secondary];
            break;
        }
        m += 1;
    }
    seasons
}

/// The lag near `k` (within a tenth) whose multiples line up best: the
/// highest sum of the autocorrelation at j, 2j, … (up to 5 multiples within
/// `max_lag`). At fine resolution the single peak is noisy; its multiples
/// average the noise out.
fn refine(r: &[f64], k: usize, max_lag: usize) -> usize {
    let reach = (k / 10).max(1);
    let score = |j: usize| -> f64 { (1..=5).map(|m| m * j).take_while(|&l| l <= max_lag).map(|l| r[l]).sum() };
    (k.saturating_sub(reach).max(2)..=(k + reach).min(max_lag)).max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a))).unwrap_or(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: usize) -> f64 {
        // A deterministic pseudo-random value in [-0.5, 0.5).
        let mut h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 32;
        (h % 10_000) as f64 / 10_000.0 - 0.5
    }

    #[test]
    fn finds_daily_and_weekly() {
        let x: Vec<f64> = (0..24 * 28)
            .map(|i| {
                let day = (i / 24) % 7;
                let daily = 10.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin();
                daily + if day >= 5 { -8.0 } else { 0.0 } + noise(i)
            })
            .collect();
        let s = detect(&x);
        assert_eq!(s.primary, Some(24));
        assert_eq!(s.secondary, Some(168));
    }

    #[test]
    fn no_season_in_noise_or_a_random_walk_or_a_line() {
        let white: Vec<f64> = (0..500).map(noise).collect();
        assert_eq!(detect(&white).primary, None);
        let mut walk = vec![0.0];
        for i in 1..500 {
            walk.push(walk[i - 1] + noise(i));
        }
        assert_eq!(detect(&walk).primary, None);
        let line: Vec<f64> = (0..500).map(|i| i as f64).collect();
        assert_eq!(detect(&line).primary, None);
        assert_eq!(detect(&[1.0; 100]).primary, None);
    }
}
