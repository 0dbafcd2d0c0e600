//! Predictive maintenance (`steward predict`): per component and metric, a
//! trend extrapolated to the metric's limit gives the time to failure.
//!
//! For each (component, metric) series with a configured [`Limit`]:
//! - a least-squares line of value against time (hours) over the last
//!   [`MaintenanceConfig::window_hours`]; the Mann-Kendall test must find a
//!   trend (p < [`TREND_P_VALUE`]) and the slope must point at the limit;
//! - `time_to_failure_hours = (limit − fitted value now) / slope`, 0 when the
//!   limit is already crossed; `will_fail` when that is within
//!   [`MaintenanceConfig::horizon_hours`];
//! - `confidence` when failing = `|r| × precision × amount`: `|r|` the
//!   correlation of the fit (how line-like the rise is), precision =
//!   `1 / (1 + 2·SE(slope)/|slope|)`, amount = `min(1, n / 30)`. When not
//!   failing it is `amount × min(1, T⁺ / horizon)` where `T⁺` is the time to
//!   the limit at the pessimistic slope (slope + 2 SE): a flat series with
//!   many points is a confident "no", a short one is not.
//! - recommendations by metric kind and urgency: restart (a leak), drain
//!   (errors), add capacity (disk, CPU, load), investigate (always, when
//!   failing).
//!
//! Fewer than [`MIN_POINTS`] points give `will_fail = false` with a low
//! confidence and a note, never an error.
//!
//! Any finite input gives an answer without panicking: the line is fitted
//! to the values scaled by a power of two (exact, so ordinary data is
//! unaffected; no sum of squares overflows), time differences are exact,
//! and a number of the answer that does not fit in an `f64` (a slope of
//! 1e308 per millisecond, a limit the trend reaches after more than 1e308
//! hours) is left out (`None`) instead of being infinite.

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats::{linear_fit, mann_kendall, Pow2};
use crate::time::UnixMs;

/// The trend test's significance level.
pub const TREND_P_VALUE: f64 = 0.05;
/// Fewer points than this cannot support a trend.
pub const MIN_POINTS: usize = 4;
/// Points for full weight of the amount of data.
const FULL_POINTS: f64 = 30.0;

/// One observation of a component's metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// When.
    pub ts: UnixMs,
    /// The component (agent, host, service).
    pub component: String,
    /// The metric's name, e.g. `memory_percent`.
    pub metric: String,
    /// Its value.
    pub value: f64,
}

/// The value at which a metric means failure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limit {
    /// The limit.
    pub value: f64,
    /// Failure is reaching the limit from below (memory, disk); false for
    /// metrics that fail by falling (free space).
    pub rising: bool,
}

/// Limits and horizons.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    /// Limits by metric name; a metric not listed is matched by the kind
    /// its name contains (memory, disk, cpu, error), else ignored.
    pub limits: BTreeMap<String, Limit>,
    /// A failure further away than this many hours is not `will_fail`.
    pub horizon_hours: f64,
    /// Only the last this many hours of each series are fitted (recent behaviour).
    pub window_hours: f64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        let rising = |value| Limit { value, rising: true };
        let limits = [("memory", rising(95.0)), ("disk", rising(95.0)), ("cpu", rising(95.0)), ("error_rate", rising(0.05))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        Self { limits, horizon_hours: 168.0, window_hours: 72.0 }
    }
}

impl MaintenanceConfig {
    /// The limit for a metric: an exact name first, then the first kind
    /// (`memory`, `disk`, `cpu`, `error`) the name contains.
    pub fn limit_for(&self, metric: &str) -> Option<Limit> {
        if let Some(l) = self.limits.get(metric) {
            return Some(*l);
        }
        let lower = metric.to_ascii_lowercase();
        self.limits.iter().find(|(k, _)| lower.contains(k.split('_').next().unwrap_or(k))).map(|(_, l)| *l)
    }
}

/// What to do about a predicted failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceAction {
    /// Restart the component (clears a leak).
    Restart,
    /// Take it out of rotation (stop giving it work).
    Drain,
    /// Add capacity (disk, agents, hosts).
    AddCapacity,
    /// A person should look.
    Investigate,
}

/// How soon to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// More than 3 days away.
    Low,
    /// Within 3 days.
    Medium,
    /// Within a day.
    High,
    /// Within 6 hours, or already at the limit.
    Critical,
}

/// A recommended action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// What to do.
    pub action: MaintenanceAction,
    /// How soon.
    pub urgency: Urgency,
    /// Why, in a sentence.
    pub reason: String,
}

/// The prediction for one component's metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailurePrediction {
    /// The component.
    pub component: String,
    /// The metric.
    pub metric: String,
    /// Whether the limit is reached within the horizon.
    pub will_fail: bool,
    /// Hours from the last sample to the limit, if the trend reaches it.
    pub time_to_failure_hours: Option<f64>,
    /// 0..1 (see the module doc).
    pub confidence: f64,
    /// The fitted value at the last sample.
    pub current: Option<f64>,
    /// The limit.
    pub limit: f64,
    /// The fitted rate, per hour.
    pub slope_per_hour: Option<f64>,
    /// R² of the line.
    pub r2: Option<f64>,
    /// Mann-Kendall p-value.
    pub trend_p_value: Option<f64>,
    /// Points fitted.
    pub points: usize,
    /// The last sample's time.
    pub last_sample: UnixMs,
    /// What to do.
    pub recommendations: Vec<Recommendation>,
    /// Why the answer is limited (too few points, ...).
    pub notes: Vec<String>,
}

/// Predicts failures for every (component, metric) with a limit, most
/// urgent first (failing before not, then by time to failure).
pub fn predict(samples: &[MetricSample], cfg: &MaintenanceConfig) -> Vec<FailurePrediction> {
    let mut groups: BTreeMap<(&str, &str), Vec<(UnixMs, f64)>> = BTreeMap::new();
    for s in samples {
        if s.value.is_finite() {
            groups.entry((s.component.as_str(), s.metric.as_str())).or_default().push((s.ts, s.value));
        }
    }
    let mut out: Vec<FailurePrediction> = groups
        .into_iter()
        .filter_map(|((component, metric), mut points)| {
            // A limit that is not a finite number cannot be reached.
            let limit = cfg.limit_for(metric).filter(|l| l.value.is_finite())?;
            points.sort_by_key(|p| p.0);
            Some(predict_one(component, metric, &points, limit, cfg))
        })
        .collect();
    out.sort_by(|a, b| {
        b.will_fail
            .cmp(&a.will_fail)
            .then(a.time_to_failure_hours.unwrap_or(f64::INFINITY).total_cmp(&b.time_to_failure_hours.unwrap_or(f64::INFINITY)))
    });
    out
}

/// The prediction for one series (sorted by time).
pub fn predict_one(component: &str, metric: &str, points: &[(UnixMs, f64)], limit: Limit, cfg: &MaintenanceConfig) -> FailurePrediction {
    let last_sample = points.last().map_or(0, |p| p.0);
    let mut p = FailurePrediction {
        component: component.to_owned(),
        metric: metric.to_owned(),
        will_fail: false,
        time_to_failure_hours: None,
        confidence: 0.0,
        current: points.last().map(|p| p.1),
        limit: limit.value,
        slope_per_hour: None,
        r2: None,
        trend_p_value: None,
        points: points.len(),
        last_sample,
        recommendations: Vec::new(),
        notes: Vec::new(),
    };
    let window_ms = (cfg.window_hours * 3_600_000.0) as i64;
    // Time differences in i128: exact for any two i64 timestamps.
    let before_last = |t: UnixMs| i128::from(last_sample) - i128::from(t);
    let recent: Vec<(UnixMs, f64)> = points.iter().copied().filter(|&(t, _)| before_last(t) <= i128::from(window_ms)).collect();
    p.points = recent.len();
    let amount = (recent.len() as f64 / FULL_POINTS).min(1.0);
    // Signed so that "towards the limit" is positive.
    let sign = if limit.rising { 1.0 } else { -1.0 };
    let x: Vec<f64> = recent.iter().map(|&(t, _)| -before_last(t) as f64 / 3_600_000.0).collect();
    // The fit works on values scaled by a power of two (exact): magnitudes
    // below 2, so no sum of squares overflows. The limit is scaled alike (it
    // may become infinite when it dwarfs the values: then it is out of reach).
    let scale = Pow2::normalizing(recent.iter().fold(0.0, |m: f64, p| m.max(p.1.abs())));
    let y: Vec<f64> = recent.iter().map(|&(_, v)| sign * scale.apply(v)).collect();
    let limit_s = sign * scale.apply(limit.value);
    let fit = if recent.len() >= MIN_POINTS { linear_fit(&x, &y) } else { None };
    let Some(fit) = fit else {
        p.notes.push(format!("{} point(s) in the last {} h: at least {MIN_POINTS} needed for a trend", recent.len(), cfg.window_hours));
        p.confidence = 0.1 * amount;
        if let Some(&(_, v)) = recent.last() {
            if sign * v >= sign * limit.value {
                p.will_fail = true;
                p.time_to_failure_hours = Some(0.0);
                p.confidence = 0.5;
                p.notes.push("the last value is already at the limit".to_owned());
            }
        }
        p.recommendations = recommend(&p);
        return p;
    };
    let current = fit.intercept; // x = 0 at the last sample

    // Back to the metric's units (exact, or not representable: then absent).
    let unscaled = |v: f64| Some(sign * scale.undo(v)).filter(|u| u.is_finite());
    p.current = unscaled(current);
    p.slope_per_hour = unscaled(fit.slope);
    p.r2 = Some(fit.r2).filter(|r| r.is_finite());
    let mk = mann_kendall(&y);
    p.trend_p_value = mk.map(|m| m.p_value);
    let significant = mk.is_some_and(|m| m.p_value < TREND_P_VALUE) && fit.slope > 0.0;
    // The last value against the limit in the metric's units (scaling may
    // round a value far below the largest one to zero).
    let last_at_limit = recent.last().is_some_and(|&(_, v)| sign * v >= sign * limit.value);
    if current >= limit_s || last_at_limit {
        p.will_fail = true;
        p.time_to_failure_hours = Some(0.0);
        p.confidence = (0.5 + 0.5 * amount).min(1.0);
        p.notes.push("already at the limit".to_owned());
    } else if significant && !((limit_s - current) / fit.slope).is_finite() {
        // Reached after more hours than an f64 holds: not in any horizon.
        p.confidence = amount;
        p.notes.push("the trend reaches the limit only after more hours than a 64-bit float holds".to_owned());
    } else if significant {
        let ttf = (limit_s - current) / fit.slope;
        p.time_to_failure_hours = Some(ttf);
        p.will_fail = ttf <= cfg.horizon_hours;
        let precision = 1.0 / (1.0 + 2.0 * fit.slope_se / fit.slope.abs());
        let fit_quality = fit.r2.sqrt();
        if p.will_fail {
            p.confidence = fit_quality * precision * amount;
        } else {
            let pessimistic = (limit_s - current) / (fit.slope + 2.0 * fit.slope_se);
            p.confidence = amount * (pessimistic / cfg.horizon_hours).min(1.0);
        }
    } else {
        let up = fit.slope + 2.0 * fit.slope_se;
        let reach = if up > 0.0 { (limit_s - current) / up } else { f64::INFINITY };
        p.confidence = amount * (reach / cfg.horizon_hours).min(1.0);
        if fit.slope > 0.0 {
            p.notes.push(format!("rising but not significantly (Mann-Kendall p = {:.2})", p.trend_p_value.unwrap_or(1.0)));
        }
    }
    p.confidence = if p.confidence.is_nan() { 0.0 } else { p.confidence.clamp(0.0, 1.0) };
    p.recommendations = recommend(&p);
    p
}

fn urgency(ttf: f64) -> Urgency {
    match ttf {
        t if t <= 6.0 => Urgency::Critical,
        t if t <= 24.0 => Urgency::High,
        t if t <= 72.0 => Urgency::Medium,
        _ => Urgency::Low,
    }
}

/// Recommendations for a prediction: nothing unless it will fail.
pub fn recommend(p: &FailurePrediction) -> Vec<Recommendation> {
    let Some(ttf) = p.time_to_failure_hours.filter(|_| p.will_fail) else {
        return Vec::new();
    };
    let u = urgency(ttf);
    let m = p.metric.to_ascii_lowercase();
    let when = if ttf <= 0.0 { "is at its limit".to_owned() } else { format!("reaches {} in {ttf:.1} h", p.limit) };
    let mut out = Vec::new();
    let mut push = |action, reason: String| out.push(Recommendation { action, urgency: u, reason });
    if m.contains("mem") {
        push(MaintenanceAction::Restart, format!("{} of {} {when}: a leak; a restart frees it", p.metric, p.component));
    } else if m.contains("error") || m.contains("fail") {
        push(MaintenanceAction::Drain, format!("{} of {} {when}: stop giving it work", p.metric, p.component));
    } else if m.contains("disk") || m.contains("cpu") || m.contains("load") || m.contains("queue") {
        push(MaintenanceAction::AddCapacity, format!("{} of {} {when}: add capacity", p.metric, p.component));
    }
    push(MaintenanceAction::Investigate, format!("{} of {} {when}: find the cause", p.metric, p.component));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, step_min: i64, f: impl Fn(usize) -> f64) -> Vec<(UnixMs, f64)> {
        (0..n).map(|i| (i as i64 * step_min * 60_000, f(i))).collect()
    }

    #[test]
    fn already_at_the_limit_fails_now() {
        let pts = series(10, 5, |_| 97.0);
        let p = predict_one("a", "disk_percent", &pts, Limit { value: 95.0, rising: true }, &MaintenanceConfig::default());
        assert!(p.will_fail && p.time_to_failure_hours == Some(0.0));
        assert_eq!(p.recommendations[0].action, MaintenanceAction::AddCapacity);
        assert_eq!(p.recommendations[0].urgency, Urgency::Critical);
    }

    #[test]
    fn falling_limits_work() {
        let pts = series(60, 60, |i| 50.0 - i as f64 * 0.5);
        let p = predict_one("h", "free_gb", &pts, Limit { value: 5.0, rising: false }, &MaintenanceConfig::default());
        assert!(p.will_fail, "{p:?}");
        let ttf = p.time_to_failure_hours.unwrap();
        assert!((ttf - (50.0 - 59.0 * 0.5 - 5.0) / 0.5).abs() < 0.5, "{ttf}");
    }

    #[test]
    fn limits_match_by_kind() {
        let cfg = MaintenanceConfig::default();
        assert_eq!(cfg.limit_for("memory_percent").map(|l| l.value), Some(95.0));
        assert_eq!(cfg.limit_for("error_rate").map(|l| l.value), Some(0.05));
        assert_eq!(cfg.limit_for("latency_ms"), None);
    }
}
