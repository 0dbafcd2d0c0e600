//! Additive exponential smoothing (ETS with additive errors): a level, an
//! optional damped trend and up to two additive seasons (Taylor's double
//! seasonal Holt-Winters, e.g. a day inside a week), written in
//! error-correction form:
//!
//! ```text
//! ŷ[t]      = l + φ·b + s1[t mod m1] + s2[t mod m2]
//! e         = y[t] − ŷ[t]           (clipped to ±CLIP_SIGMAS·σ̂ for the update)
//! l         ← l + φ·b + α·e
//! b         ← φ·b + β·e
//! s1[t], s2[t] += γ1·e, γ2·e
//! ```
//!
//! The smoothing parameters minimize the mean squared (clipped) one-step
//! error by Nelder-Mead over a box that keeps the model stable
//! (0 < β ≤ α, γ1 + γ2 ≤ 1 − α, 0.8 ≤ φ ≤ 0.98). Clipping errors at a few
//! robust standard deviations (Gelper, Fried and Croux, 2010) keeps an outage
//! or a spike from dragging the level and the seasons; a missing point
//! (NaN) advances time without an update. Initial states come from the
//! first cycles (level = mean, seasons = cycle-position means).

use super::stats::{mean, normal_quantile};

/// Errors beyond this many robust standard deviations are clipped for the update.
pub const CLIP_SIGMAS: f64 = 3.0;
/// Weight of each new absolute error in the running error scale.
const SCALE_WEIGHT: f64 = 0.05;
/// Mean absolute error to standard deviation, for normal errors.
const MAE_TO_SD: f64 = 1.253_314;

/// Which components a model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// A damped additive trend.
    pub trend: bool,
    /// The primary season length in points (0 = none).
    pub m1: usize,
    /// A second, longer season (0 = none); a multiple of `m1`.
    pub m2: usize,
    /// An AR(1) term on the one-step error (Taylor, 2003): short-lived
    /// deviations are carried a few steps and decay as ρ^k, so the level
    /// need not chase them.
    pub ar: bool,
}

impl Spec {
    /// A short name in ETS notation, e.g. `ETS(A,Ad,A) m=24,168`.
    pub fn name(&self) -> String {
        let trend = if self.trend { "Ad" } else { "N" };
        let season = if self.m1 > 0 { "A" } else { "N" };
        let ar = if self.ar { "+AR(1)" } else { "" };
        match (self.m1, self.m2) {
            (0, _) => format!("ETS(A,{trend},N){ar}"),
            (m, 0) => format!("ETS(A,{trend},{season}){ar} m={m}"),
            (m, n) => format!("ETS(A,{trend},{season}{season}){ar} m={m},{n}"),
        }
    }

    fn n_params(&self) -> usize {
        1 + if self.trend { 2 } else { 0 } + usize::from(self.m1 > 0) + usize::from(self.m2 > 0) + usize::from(self.ar)
    }
}

/// Smoothing parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Level smoothing.
    pub alpha: f64,
    /// Trend smoothing.
    pub beta: f64,
    /// Primary season smoothing.
    pub gamma1: f64,
    /// Secondary season smoothing.
    pub gamma2: f64,
    /// Trend damping.
    pub phi: f64,
    /// AR(1) coefficient of the one-step error.
    pub rho: f64,
}

impl Params {
    /// Maps unconstrained coordinates into the stable box.
    fn from_free(spec: &Spec, z: &[f64]) -> Self {
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut it = z.iter().copied();
        let alpha = 0.001 + 0.998 * sig(it.next().unwrap_or(0.0));
        let (beta, phi) =
            if spec.trend { (alpha * sig(it.next().unwrap_or(0.0)), 0.8 + 0.18 * sig(it.next().unwrap_or(0.0))) } else { (0.0, 1.0) };
        let gamma1 = if spec.m1 > 0 { (1.0 - alpha) * sig(it.next().unwrap_or(0.0)) } else { 0.0 };
        let gamma2 = if spec.m2 > 0 { (1.0 - alpha - gamma1) * sig(it.next().unwrap_or(0.0)) } else { 0.0 };
        let rho = if spec.ar { 0.99 * sig(it.next().unwrap_or(0.0)) } else { 0.0 };
        Self { alpha, beta, gamma1, gamma2, phi, rho }
    }
}

/// The state after filtering a series.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    level: f64,
    trend: f64,
    s1: Vec<f64>,
    s2: Vec<f64>,
    /// Index of the next point in `s1` / `s2`.
    i1: usize,
    i2: usize,
    /// Running mean absolute one-step error.
    scale: f64,
    /// The last (clipped) error of the components, for the AR(1) term.
    last_err: f64,
}

/// A fitted model: its components, parameters, final state and fit statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Components.
    pub spec: Spec,
    /// Smoothing parameters.
    pub params: Params,
    /// State after the last point.
    pub state: State,
    /// Standard deviation of the (clipped) one-step errors.
    pub sigma: f64,
    /// Mean squared (clipped) one-step error.
    pub mse: f64,
    /// Points the errors were measured on.
    pub n: usize,
}

/// Initial states from the first cycles. `None` when there is too little
/// data for the spec (two cycles of the longest season, or 3 points).
pub fn initial_state(spec: &Spec, y: &[f64]) -> Option<State> {
    let longest = spec.m2.max(spec.m1).max(1);
    let need = (2 * longest).max(3);
    let known: Vec<f64> = y.iter().copied().filter(|v| v.is_finite()).collect();
    if y.len() < need || known.len() < need.min(y.len()) / 2 + 1 {
        return None;
    }
    // The level: mean of the first cycle (of finite points).
    let first: Vec<f64> = y[..longest].iter().copied().filter(|v| v.is_finite()).collect();
    let level0 = if first.is_empty() { mean(&known) } else { mean(&first) };
    let n_cycles = (y.len() / longest).clamp(1, 4);
    let window = &y[..n_cycles * longest];
    let pos_means = |m: usize, base: &dyn Fn(usize) -> f64| -> Vec<f64> {
        let mut sum = vec![0.0; m];
        let mut cnt = vec![0usize; m];
        for (i, v) in window.iter().enumerate() {
            if v.is_finite() {
                sum[i % m] += v - base(i);
                cnt[i % m] += 1;
            }
        }
        let mut out: Vec<f64> = sum.iter().zip(&cnt).map(|(s, &c)| if c > 0 { s / c as f64 } else { 0.0 }).collect();
        let m0 = mean(&out);
        out.iter_mut().for_each(|v| *v -= m0);
        out
    };
    let s1 = if spec.m1 > 0 { pos_means(spec.m1, &|_| level0) } else { Vec::new() };
    let s2 = if spec.m2 > 0 { pos_means(spec.m2, &|i| level0 + s1[i % spec.m1]) } else { Vec::new() };
    let trend = if spec.trend && y.len() >= 2 * longest {
        let m_a: Vec<f64> = y[..longest].iter().copied().filter(|v| v.is_finite()).collect();
        let m_b: Vec<f64> = y[longest..2 * longest].iter().copied().filter(|v| v.is_finite()).collect();
        if m_a.is_empty() || m_b.is_empty() {
            0.0
        } else {
            (mean(&m_b) - mean(&m_a)) / longest as f64
        }
    } else {
        0.0
    };
    let scale = {
        // A first error scale: mean absolute successive difference.
        let d: Vec<f64> = known.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        mean(&d).max(1e-12)
    };
    // Level at the start of the series: the first cycle's mean sits at its middle.
    let level = level0 - trend * (longest as f64 - 1.0) / 2.0;
    Some(State { level, trend, s1, s2, i1: 0, i2: 0, scale, last_err: 0.0 })
}

impl State {
    /// The one-step prediction of the components (without the AR term).
    #[inline]
    fn base(&self, phi: f64) -> f64 {
        self.level + phi * self.trend + self.s1.get(self.i1).copied().unwrap_or(0.0) + self.s2.get(self.i2).copied().unwrap_or(0.0)
    }

    /// The one-step prediction.
    #[inline]
    fn predict(&self, p: &Params) -> f64 {
        self.base(p.phi) + p.rho * self.last_err
    }

    /// Consumes one observation (NaN = missing); returns the raw and the
    /// clipped one-step error (0 for a missing point).
    #[inline]
    fn step(&mut self, p: &Params, y: f64) -> (f64, f64) {
        let base = self.base(p.phi);
        let yhat = base + p.rho * self.last_err;
        let (e, ec, eb) = if y.is_finite() {
            let e = y - yhat;
            let c = CLIP_SIGMAS * MAE_TO_SD * self.scale;
            let ec = clip(e, c);
            self.scale = (1.0 - SCALE_WEIGHT) * self.scale + SCALE_WEIGHT * ec.abs();
            // The components learn from their own error (Taylor, 2003); the
            // AR term carries it forward. Without AR the two are the same.
            let eb = clip(y - base, c);
            self.last_err = eb;
            (e, ec, eb)
        } else {
            self.last_err *= p.rho;
            (0.0, 0.0, 0.0)
        };
        self.level += p.phi * self.trend + p.alpha * eb;
        self.trend = p.phi * self.trend + p.beta * eb;
        if let Some(s) = self.s1.get_mut(self.i1) {
            *s += p.gamma1 * eb;
            self.i1 = (self.i1 + 1) % self.s1.len();
        }
        if let Some(s) = self.s2.get_mut(self.i2) {
            *s += p.gamma2 * eb;
            self.i2 = (self.i2 + 1) % self.s2.len();
        }
        (e, ec)
    }
}

/// `x` limited to ±`c` (`f64::clamp` without its panic when a diverging
/// fit makes `c` NaN; such fits are rejected by their error, see [`fit`]).
#[inline]
fn clip(x: f64, c: f64) -> f64 {
    if x > c {
        c
    } else if x < -c {
        -c
    } else {
        x
    }
}

impl State {
    /// Whether every number of the state is finite.
    fn is_finite(&self) -> bool {
        [self.level, self.trend, self.scale, self.last_err].iter().chain(&self.s1).chain(&self.s2).all(|v| v.is_finite())
    }
}

/// Filters `y` from `init` with `params`: the final state and the mean
/// squared clipped error over the finite points.
fn filter(init: &State, p: &Params, y: &[f64]) -> (State, f64, usize) {
    let mut st = init.clone();
    let mut sse = 0.0;
    let mut n = 0usize;
    for &v in y {
        let (_, ec) = st.step(p, v);
        if v.is_finite() {
            sse += ec * ec;
            n += 1;
        }
    }
    (st, if n > 0 { sse / n as f64 } else { 0.0 }, n)
}

/// Fits a model of the given spec to `y` (NaN = missing). `None` when the
/// series is too short for the spec, or when even the best parameters make
/// the filter diverge (a state or error that is not finite).
pub fn fit(spec: Spec, y: &[f64]) -> Option<Model> {
    let init = initial_state(&spec, y)?;
    let dim = spec.n_params();
    // Start near the usual values: α = 0.3, β = 0.1α, φ = 0.9, γ = 0.1.
    let mut z0 = vec![-0.85];
    if spec.trend {
        z0.extend([-2.2, 0.5]);
    }
    if spec.m1 > 0 {
        z0.push(-2.0);
    }
    if spec.m2 > 0 {
        z0.push(-2.0);
    }
    if spec.ar {
        z0.push(0.0);
    }
    debug_assert_eq!(z0.len(), dim);
    if !init.is_finite() {
        return None;
    }
    // A diverging filter (a non-finite error) is the worst possible fit.
    let objective = |z: &[f64]| Some(filter(&init, &Params::from_free(&spec, z), y).1).filter(|v| v.is_finite()).unwrap_or(f64::MAX);
    let z = nelder_mead(objective, &z0, 1.0, 60 * dim, 1e-7);
    let params = Params::from_free(&spec, &z);
    let (state, mse, n) = filter(&init, &params, y);
    (mse.is_finite() && state.is_finite()).then(|| Model { spec, params, state, sigma: mse.sqrt(), mse, n })
}

impl Model {
    /// Forecasts `h` points after the last one filtered, with a central
    /// prediction interval of probability `level` (e.g. 0.95):
    /// `(mean, lower, upper)` per point.
    pub fn forecast(&self, h: usize, level: f64) -> Vec<(f64, f64, f64)> {
        let z = normal_quantile(0.5 + level.clamp(0.0, 0.999_999) / 2.0);
        let p = &self.params;
        let st = &self.state;
        let mut out = Vec::with_capacity(h);
        let mut damp_sum = 0.0; // φ + φ² + … + φ^j
        let mut phi_j = 1.0;
        let mut var_sum: f64 = 0.0; // Σ c_j² for j < current lead
        for j in 1..=h {
            phi_j *= p.phi;
            damp_sum += phi_j;
            let s1 = if st.s1.is_empty() { 0.0 } else { st.s1[(st.i1 + j - 1) % st.s1.len()] };
            let s2 = if st.s2.is_empty() { 0.0 } else { st.s2[(st.i2 + j - 1) % st.s2.len()] };
            let trend = if self.spec.trend { damp_sum * st.trend } else { 0.0 };
            let mean = st.level + trend + s1 + s2 + p.rho.powi(j as i32) * st.last_err;
            let half = z * self.sigma * (1.0 + var_sum).sqrt();
            out.push((mean, mean - half, mean + half));
            // c_j: how much an error now moves the forecast j steps ahead.
            let mut c = p.alpha + if self.spec.trend { p.beta * damp_sum } else { 0.0 } + p.rho.powi(j as i32);
            if self.spec.m1 > 0 && j % self.spec.m1 == 0 {
                c += p.gamma1;
            }
            if self.spec.m2 > 0 && j % self.spec.m2 == 0 {
                c += p.gamma2;
            }
            var_sum += c * c;
        }
        out
    }

    /// Continues filtering with more observations (NaN = missing), keeping
    /// the parameters: the state then sits after the new points.
    pub fn update(&mut self, y: &[f64]) {
        for &v in y {
            self.state.step(&self.params, v);
        }
    }

    /// One-step predictions for `y` from the current state (each made before
    /// its point is seen), advancing the state through `y`.
    pub fn one_step(&mut self, y: &[f64]) -> Vec<f64> {
        y.iter()
            .map(|&v| {
                let f = self.state.predict(&self.params);
                self.state.step(&self.params, v);
                f
            })
            .collect()
    }
}

/// Minimizes `f` by the Nelder-Mead simplex method from `x0` with initial
/// step `step`, for at most `max_evals` evaluations or until the simplex's
/// values agree within `tol` (relative).
pub fn nelder_mead(f: impl Fn(&[f64]) -> f64, x0: &[f64], step: f64, max_evals: usize, tol: f64) -> Vec<f64> {
    let n = x0.len();
    let mut pts: Vec<Vec<f64>> = vec![x0.to_vec()];
    for i in 0..n {
        let mut p = x0.to_vec();
        p[i] += step;
        pts.push(p);
    }
    let mut vals: Vec<f64> = pts.iter().map(|p| f(p)).collect();
    let mut evals = n + 1;
    while evals < max_evals {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        pts = order.iter().map(|&i| pts[i].clone()).collect();
        vals = order.iter().map(|&i| vals[i]).collect();
        let (best, worst) = (vals[0], vals[n]);
        if (worst - best).abs() <= tol * (best.abs() + 1e-12) {
            break;
        }
        let centroid: Vec<f64> = (0..n).map(|d| pts[..n].iter().map(|p| p[d]).sum::<f64>() / n as f64).collect();
        let towards = |t: f64| -> Vec<f64> { (0..n).map(|d| centroid[d] + t * (pts[n][d] - centroid[d])).collect() };
        let reflected = towards(-1.0);
        let fr = f(&reflected);
        evals += 1;
        if fr < vals[0] {
            let expanded = towards(-2.0);
            let fe = f(&expanded);
            evals += 1;
            if fe < fr {
                pts[n] = expanded;
                vals[n] = fe;
            } else {
                pts[n] = reflected;
                vals[n] = fr;
            }
        } else if fr < vals[n - 1] {
            pts[n] = reflected;
            vals[n] = fr;
        } else {
            let contracted = if fr < vals[n] { towards(-0.5) } else { towards(0.5) };
            let fc = f(&contracted);
            evals += 1;
            if fc < vals[n].min(fr) {
                pts[n] = contracted;
                vals[n] = fc;
            } else {
                // Shrink towards the best point.
                for i in 1..=n {
                    let shrunk: Vec<f64> = (0..n).map(|d| pts[0][d] + 0.5 * (pts[i][d] - pts[0][d])).collect();
                    vals[i] = f(&shrunk);
                    pts[i] = shrunk;
                }
                evals += n;
            }
        }
    }
    let best = (0..=n).min_by(|&a, &b| vals[a].total_cmp(&vals[b])).unwrap_or(0);
    pts.swap_remove(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nelder_mead_finds_a_minimum() {
        let x = nelder_mead(|p| (p[0] - 1.0).powi(2) + 10.0 * (p[1] + 2.0).powi(2), &[0.0, 0.0], 1.0, 400, 1e-12);
        assert!((x[0] - 1.0).abs() < 1e-3 && (x[1] + 2.0).abs() < 1e-3, "{x:?}");
    }

    #[test]
    fn a_clean_season_is_forecast_exactly_enough() {
        let y: Vec<f64> = (0..24 * 10).map(|i| 100.0 + 20.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin()).collect();
        let m = fit(Spec { trend: false, m1: 24, m2: 0, ar: false }, &y).unwrap();
        for (j, (mean, lo, hi)) in m.forecast(24, 0.95).into_iter().enumerate() {
            let truth = 100.0 + 20.0 * (((240 + j) % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
            assert!((mean - truth).abs() < 0.5, "lead {j}: {mean} vs {truth}");
            assert!(lo <= mean && mean <= hi);
        }
    }

    #[test]
    fn missing_points_advance_time() {
        let mut y: Vec<f64> = (0..24 * 6).map(|i| if i % 24 < 12 { 10.0 } else { 20.0 }).collect();
        for v in &mut y[100..110] {
            *v = f64::NAN;
        }
        let m = fit(Spec { trend: false, m1: 24, m2: 0, ar: false }, &y).unwrap();
        let f = m.forecast(24, 0.9);
        assert!((f[0].0 - 10.0).abs() < 0.5 && (f[12].0 - 20.0).abs() < 0.5, "{:?}", &f[..13]);
    }
}
