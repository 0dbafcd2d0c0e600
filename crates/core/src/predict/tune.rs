//! Self-tuning (`steward tune`): the worker count from Little's law and a
//! queueing check, a memory split from usage percentiles, and a per-query
//! time estimate from history.

use serde::Serialize;

use super::stats::{mean, quantile};

/// Workers for a load: Little's law gives the busy workers `L = λ·S`; at a
/// target utilization ρ the count is `ceil(λ·S / ρ)`, at least 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerPlan {
    /// Arrival rate used (items per second): the forecast peak when given.
    pub arrival_per_sec: f64,
    /// Mean service time per item, seconds.
    pub service_secs: f64,
    /// Target utilization.
    pub target_utilization: f64,
    /// Busy workers by Little's law (λ·S).
    pub busy_workers: f64,
    /// The recommended count.
    pub workers: u32,
    /// Expected utilization at that count.
    pub utilization: f64,
    /// Mean queue wait at that count (M/M/c, Erlang C), seconds.
    pub mean_wait_secs: f64,
    /// The arithmetic, step by step.
    pub arithmetic: Vec<String>,
}

/// Sizes workers for `arrival_per_sec` (use the forecast peak over the
/// agents' start-up time) with `service_secs` per item. `None` for a
/// non-positive service time or utilization, or a non-finite rate.
pub fn workers(arrival_per_sec: f64, service_secs: f64, target_utilization: f64) -> Option<WorkerPlan> {
    if !(arrival_per_sec.is_finite()
        && arrival_per_sec >= 0.0
        && service_secs > 0.0
        && target_utilization > 0.0
        && target_utilization <= 1.0)
    {
        return None;
    }
    let busy = arrival_per_sec * service_secs;
    let n = (busy / target_utilization).ceil().max(1.0);
    let workers = if n > f64::from(u32::MAX) { u32::MAX } else { n as u32 };
    let mu = 1.0 / service_secs;
    let wait = erlang_c(arrival_per_sec, mu, workers).map_or(f64::INFINITY, |c| c / (f64::from(workers) * mu - arrival_per_sec));
    Some(WorkerPlan {
        arrival_per_sec,
        service_secs,
        target_utilization,
        busy_workers: busy,
        workers,
        utilization: busy / f64::from(workers),
        mean_wait_secs: wait,
        arithmetic: vec![
            format!("busy workers L = λ·S = {arrival_per_sec:.4}/s × {service_secs:.3} s = {busy:.3}"),
            format!("workers = ceil(L / ρ) = ceil({busy:.3} / {target_utilization}) = {workers}"),
            format!("utilization = {busy:.3} / {workers} = {:.3}; mean wait (M/M/c) = {wait:.3} s", busy / f64::from(workers)),
        ],
    })
}

/// The Erlang C probability that an arrival waits, for arrival rate `λ`,
/// service rate `μ` per server and `c` servers; `None` when the queue is
/// unstable (λ ≥ cμ).
pub fn erlang_c(lambda: f64, mu: f64, c: u32) -> Option<f64> {
    if c == 0 || mu <= 0.0 {
        return None;
    }
    let a = lambda / mu;
    if a >= f64::from(c) {
        return None;
    }
    if a <= 0.0 {
        return Some(0.0);
    }
    // Erlang B by recursion (stable), then C from B.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let c = f64::from(c);
    Some(c * b / (c - a * (1.0 - b)))
}

/// The p-quantile of the queue wait in M/M/c, seconds (0 when fewer than
/// `1 − p` of arrivals wait); `None` when unstable.
pub fn wait_quantile(lambda: f64, mu: f64, c: u32, p: f64) -> Option<f64> {
    let pw = erlang_c(lambda, mu, c)?;
    let tail = 1.0 - p;
    if pw <= tail {
        return Some(0.0);
    }
    Some((pw / tail).ln() / (f64::from(c) * mu - lambda))
}

/// A memory split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemorySplit {
    /// Memory to split, MB.
    pub total_mb: f64,
    /// For the application: its p99 usage plus [`HEADROOM`].
    pub application_mb: f64,
    /// For buffers: the p95 of buffer usage plus headroom, or the
    /// application's burst (p99 − p50) when buffer usage is not measured.
    pub buffer_mb: f64,
    /// The rest, for cache (0 when nothing is left).
    pub cache_mb: f64,
    /// Application usage percentiles p50, p95, p99.
    pub application_percentiles: [f64; 3],
    /// 0..1: samples (30 for full weight).
    pub confidence: f64,
    /// The arithmetic.
    pub arithmetic: Vec<String>,
    /// Problems (over-committed memory).
    pub warnings: Vec<String>,
}

/// Headroom added to measured usage.
pub const HEADROOM: f64 = 0.10;

/// Splits `total_mb` from application (and optionally buffer) usage
/// samples in MB. `None` without application samples.
pub fn memory_split(total_mb: f64, application: &[f64], buffer: &[f64]) -> Option<MemorySplit> {
    let p = |x: &[f64], q| quantile(x, q);
    let (a50, a95, a99) = (p(application, 0.5)?, p(application, 0.95)?, p(application, 0.99)?);
    let app = a99 * (1.0 + HEADROOM);
    let (buf, buf_how) = match p(buffer, 0.95) {
        Some(b95) => (
            b95 * (1.0 + HEADROOM),
            format!("buffer = p95(buffer) × {} = {b95:.1} × {} = {:.1} MB", 1.0 + HEADROOM, 1.0 + HEADROOM, b95 * (1.0 + HEADROOM)),
        ),
        None => (
            (a99 - a50).max(0.0),
            format!("buffer = p99 − p50 of application = {a99:.1} − {a50:.1} = {:.1} MB (no buffer samples)", (a99 - a50).max(0.0)),
        ),
    };
    let cache = (total_mb - app - buf).max(0.0);
    let mut warnings = Vec::new();
    if app + buf > total_mb {
        warnings.push(format!("application and buffer need {:.1} MB of {total_mb:.1} MB: add memory", app + buf));
    }
    Some(MemorySplit {
        total_mb,
        application_mb: app,
        buffer_mb: buf,
        cache_mb: cache,
        application_percentiles: [a50, a95, a99],
        confidence: (application.len() as f64 / 30.0).min(1.0),
        arithmetic: vec![
            format!("application = p99 × {} = {a99:.1} × {} = {app:.1} MB", 1.0 + HEADROOM, 1.0 + HEADROOM),
            buf_how,
            format!("cache = total − application − buffer = {total_mb:.1} − {app:.1} − {buf:.1} = {cache:.1} MB"),
        ],
        warnings,
    })
}

/// A past query: its size and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuerySample {
    /// Rows read or returned.
    pub rows: f64,
    /// Bytes read or returned.
    pub bytes: f64,
    /// Duration, milliseconds.
    pub duration_ms: f64,
}

/// A query-time model `duration = a + b·rows + c·bytes` by least squares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryModel {
    /// Fixed cost, ms.
    pub intercept_ms: f64,
    /// Cost per row, ms.
    pub per_row_ms: f64,
    /// Cost per byte, ms.
    pub per_byte_ms: f64,
    /// R² of the fit.
    pub r2: f64,
    /// Residual standard deviation, ms.
    pub residual_sd_ms: f64,
    /// Queries fitted.
    pub n: usize,
}

/// An estimate for one query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryEstimate {
    /// Expected duration, ms (at least 0).
    pub duration_ms: f64,
    /// About 95 % of such queries take at most this, ms.
    pub upper_ms: f64,
    /// 0..1: R² × amount of history (`min(1, n / 30)`).
    pub confidence: f64,
    /// The model.
    pub model: QueryModel,
}

/// Fits the query-time model. With rows and bytes collinear (or constant)
/// the model drops to the one that varies (or to the mean). `None` for
/// fewer than 3 queries.
pub fn fit_queries(history: &[QuerySample]) -> Option<QueryModel> {
    let n = history.len();
    if n < 3 {
        return None;
    }
    let y: Vec<f64> = history.iter().map(|q| q.duration_ms).collect();
    let my = mean(&y);
    let syy: f64 = y.iter().map(|v| (v - my) * (v - my)).sum();
    let solve = |cols: &[fn(&QuerySample) -> f64]| -> Option<Vec<f64>> {
        // Normal equations with an intercept.
        let k = cols.len() + 1;
        let row = |q: &QuerySample| -> Vec<f64> { std::iter::once(1.0).chain(cols.iter().map(|f| f(q))).collect() };
        let mut a = vec![vec![0.0; k + 1]; k];
        for q in history {
            let r = row(q);
            for i in 0..k {
                for j in 0..k {
                    a[i][j] += r[i] * r[j];
                }
                a[i][k] += r[i] * q.duration_ms;
            }
        }
        gauss(a)
    };
    let rows: fn(&QuerySample) -> f64 = |q| q.rows;
    let bytes: fn(&QuerySample) -> f64 = |q| q.bytes;
    let coef = solve(&[rows, bytes])
        .map(|c| [c[0], c[1], c[2]])
        .or_else(|| solve(&[rows]).map(|c| [c[0], c[1], 0.0]))
        .or_else(|| solve(&[bytes]).map(|c| [c[0], 0.0, c[1]]))
        .unwrap_or([my, 0.0, 0.0]);
    let sse: f64 = history.iter().map(|q| (q.duration_ms - coef[0] - coef[1] * q.rows - coef[2] * q.bytes).powi(2)).sum();
    let r2 = if syy > 0.0 { (1.0 - sse / syy).clamp(0.0, 1.0) } else { 1.0 };
    let dof = n.saturating_sub(3).max(1) as f64;
    Some(QueryModel { intercept_ms: coef[0], per_row_ms: coef[1], per_byte_ms: coef[2], r2, residual_sd_ms: (sse / dof).sqrt(), n })
}

/// Estimates a query's time from its rows and bytes.
pub fn estimate_query(model: &QueryModel, rows: f64, bytes: f64) -> QueryEstimate {
    let d = (model.intercept_ms + model.per_row_ms * rows + model.per_byte_ms * bytes).max(0.0);
    QueryEstimate {
        duration_ms: d,
        upper_ms: d + 1.96 * model.residual_sd_ms,
        confidence: (model.r2 * (model.n as f64 / 30.0).min(1.0)).clamp(0.0, 1.0),
        model: model.clone(),
    }
}

/// Solves an augmented k×(k+1) system by Gaussian elimination with partial
/// pivoting; `None` when singular.
fn gauss(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let k = a.len();
    for col in 0..k {
        let piv = (col..k).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        let scale = a.iter().map(|r| r[col].abs()).fold(0.0, f64::max);
        if a[piv][col].abs() <= 1e-10 * scale.max(1e-300) {
            return None;
        }
        a.swap(col, piv);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    Some((0..k).map(|i| a[i][k] / a[i][i]).collect())
}

/// The mean service time per item (seconds) measured over journal cycles,
/// by Little's law on the service stage: busy agent-seconds (items in
/// flight, integrated over time by the trapezoid rule between cycles) over
/// items finished (completed + dead-lettered).
///
/// Dividing all agent-seconds instead (what this did before) counts idle
/// agents as slow ones: an 8-agent fleet at 30 % load measured items
/// several times slower than they are. `None` without finished items or
/// time in flight, or when counters went backwards (records archived).
pub fn service_secs_from_history(cycles: &[crate::history::CycleSummary]) -> Option<f64> {
    let (first, last) = (cycles.first()?, cycles.last()?);
    let finished = (last.completed + last.failed).checked_sub(first.completed + first.failed)? as f64;
    let busy_secs: f64 = cycles
        .windows(2)
        .map(|w| {
            let dt = (w[1].ts.saturating_sub(w[0].ts)).max(0) as f64 / 1000.0;
            dt * (w[0].in_flight + w[1].in_flight) as f64 / 2.0
        })
        .sum();
    (finished > 0.0 && busy_secs > 0.0).then(|| busy_secs / finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 10): the service time measured from the journal
    /// was several times too high (7.7–8.0 s where items took 0.5 s),
    /// because idle agents counted as busy. A simulated fleet with a known
    /// service time is measured within 10 %.
    #[test]
    fn a_known_service_time_is_recovered_from_the_journal() {
        use crate::history::CycleSummary;
        for (service, rate, agents) in [(0.5, 3.0, 8u64), (2.0, 0.7, 4), (0.05, 20.0, 16)] {
            // Items arrive every 1/rate s (with jitter) and take `service` s
            // on one of `agents`; a cycle samples the queue once a second.
            let mut seed = 12_345u64;
            let mut jitter = || {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (seed >> 11) as f64 / (1u64 << 53) as f64
            };
            let (mut t, mut arrivals) = (0.0, Vec::new());
            while t < 600.0 {
                t += (0.5 + jitter()) / rate;
                arrivals.push(t);
            }
            let mut free_at = vec![0.0f64; agents as usize];
            let mut spans = Vec::new();
            for a in arrivals {
                let (i, _) = free_at.iter().enumerate().fold((0, f64::MAX), |b, (i, &f)| if f < b.1 { (i, f) } else { b });
                let start = a.max(free_at[i]);
                free_at[i] = start + service;
                spans.push((a, start, start + service));
            }
            let cycles: Vec<CycleSummary> = (0..590i32)
                .map(|s| {
                    let now = f64::from(s);
                    let s = i64::from(s);
                    CycleSummary {
                        ts: s * 1000,
                        work_queue_size: spans.iter().filter(|(a, st, _)| *a <= now && *st > now).count() as u64,
                        in_flight: spans.iter().filter(|(_, st, end)| *st <= now && *end > now).count() as u64,
                        completed: spans.iter().filter(|(_, _, end)| *end <= now).count() as u64,
                        failed: 0,
                        active_agents: agents,
                        recommended_agents: None,
                    }
                })
                .collect();
            let measured = service_secs_from_history(&cycles).unwrap();
            assert!((measured / service - 1.0).abs() < 0.10, "service {service} s at {rate}/s on {agents} agents measured as {measured}");
        }
    }

    #[test]
    fn littles_law_sizes_workers() {
        let p = workers(10.0, 0.5, 0.8).unwrap();
        assert_eq!((p.busy_workers, p.workers), (5.0, 7));
        assert!(p.mean_wait_secs.is_finite() && p.mean_wait_secs < 0.5);
        assert!(workers(1.0, 0.0, 0.8).is_none());
    }

    #[test]
    fn erlang_c_matches_a_known_value() {
        // λ = 2/s, μ = 1/s, c = 3: P(wait) = 4/9.
        assert!((erlang_c(2.0, 1.0, 3).unwrap() - 4.0 / 9.0).abs() < 1e-12);
        assert!(erlang_c(3.0, 1.0, 3).is_none());
    }

    #[test]
    fn memory_split_adds_up() {
        let app: Vec<f64> = (0..100).map(|i| 1000.0 + f64::from(i)).collect();
        let s = memory_split(4096.0, &app, &[]).unwrap();
        assert!((s.application_mb + s.buffer_mb + s.cache_mb - 4096.0).abs() < 1e-9);
        assert!(s.warnings.is_empty() && s.confidence == 1.0);
        assert!(!memory_split(1000.0, &app, &[]).unwrap().warnings.is_empty());
    }

    #[test]
    fn query_time_from_rows_and_bytes() {
        let h: Vec<QuerySample> = (0..40)
            .map(|i| {
                let (rows, bytes) = (f64::from(i * 100), f64::from((i * 37) % 11) * 1000.0);
                QuerySample { rows, bytes, duration_ms: 5.0 + 0.01 * rows + 0.002 * bytes }
            })
            .collect();
        let m = fit_queries(&h).unwrap();
        assert!((m.per_row_ms - 0.01).abs() < 1e-9 && (m.per_byte_ms - 0.002).abs() < 1e-9, "{m:?}");
        let e = estimate_query(&m, 1000.0, 2000.0);
        assert!((e.duration_ms - 19.0).abs() < 1e-6 && e.confidence > 0.99);
    }
}
