//! The statistics that predictions state their decisions with: moments and
//! quantiles, the autocorrelation function, the Mann-Kendall trend test,
//! Sen's slope, least squares, and the normal distribution.

/// The arithmetic mean; 0 for an empty slice.
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        0.0
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// Scaling by a power of two, `2^k`: exact (but for results that are
/// subnormal), so arithmetic on scaled values gives, once scaled back, the
/// results of unscaled arithmetic wherever that does not overflow or
/// underflow. Used to bring a series near 1 before summing squares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pow2 {
    k: i32,
}

impl Pow2 {
    /// The power of two that brings `magnitude` into [1, 2) (`2^0` for zero
    /// or a magnitude that is not finite): `k = −floor(log2(magnitude))`,
    /// from −1023 (for f64::MAX) to 1074 (for the smallest subnormal).
    pub fn normalizing(magnitude: f64) -> Self {
        if !(magnitude > 0.0 && magnitude.is_finite()) {
            return Self { k: 0 };
        }
        let bits = magnitude.to_bits();
        let field = ((bits >> 52) & 0x7ff) as i32;
        // floor(log2), exactly: the exponent field, or for a subnormal
        // (mantissa × 2^-1074) the position of the mantissa's top bit.
        let exponent = if field > 0 { field - 1023 } else { 63 - bits.leading_zeros() as i32 - 1074 };
        Self { k: -exponent }
    }

    /// The exponent `k`.
    pub fn exponent(self) -> i32 {
        self.k
    }

    /// `x × 2^k` (one multiplication when 2^k is a normal number, two otherwise).
    pub fn apply(self, x: f64) -> f64 {
        match self.k {
            k if k > 1023 => x * pow2(1023) * pow2(k - 1023),
            k if k < -1022 => x * pow2(-1) * pow2(k + 1),
            k => x * pow2(k),
        }
    }

    /// `x / 2^k`, the inverse of [`Pow2::apply`].
    pub fn undo(self, x: f64) -> f64 {
        match self.k {
            k if k > 1023 => x / pow2(k - 1023) / pow2(1023),
            k if k < -1022 => x / pow2(-1) / pow2(k + 1),
            k => x / pow2(k),
        }
    }
}

/// `2^k` for `k` in −1022..=1023 (the normal exponents), from its bits.
fn pow2(k: i32) -> f64 {
    f64::from_bits(u64::from((k + 1023).clamp(1, 2046).unsigned_abs()) << 52)
}

/// The population variance; 0 for fewer than two values.
pub fn variance(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / x.len() as f64
}

/// The `q`-quantile (0..=1) by linear interpolation between order
/// statistics (type 7, as R and NumPy default). `None` when empty.
pub fn quantile(x: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(quantile_sorted(&v, q))
}

/// [`quantile`] of an already sorted, non-empty slice.
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The median; `None` when empty.
pub fn median(x: &[f64]) -> Option<f64> {
    quantile(x, 0.5)
}

/// The sample autocorrelation at lags `0..=max_lag` (biased estimator, as
/// in Box-Jenkins). All zeros (but lag 0) for a constant series.
pub fn acf(x: &[f64], max_lag: usize) -> Vec<f64> {
    let n = x.len();
    let max_lag = max_lag.min(n.saturating_sub(1));
    let m = mean(x);
    let d: Vec<f64> = x.iter().map(|v| v - m).collect();
    let c0: f64 = d.iter().map(|v| v * v).sum();
    let mut out = vec![0.0; max_lag + 1];
    if n == 0 {
        return out;
    }
    out[0] = 1.0;
    if c0 <= f64::EPSILON * n as f64 * (m.abs() + 1.0) {
        return out;
    }
    for (k, slot) in out.iter_mut().enumerate().skip(1) {
        let s: f64 = d[..n - k].iter().zip(&d[k..]).map(|(a, b)| a * b).sum();
        *slot = s / c0;
    }
    out
}

/// The result of a Mann-Kendall trend test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendall {
    /// The S statistic: concordant minus discordant pairs.
    pub s: f64,
    /// The normal score of S (with continuity correction).
    pub z: f64,
    /// The two-sided p-value.
    pub p_value: f64,
}

/// The Mann-Kendall test for a monotonic trend (ties corrected). `None` for
/// fewer than 4 points. O(n²): callers pass block means for long series.
pub fn mann_kendall(x: &[f64]) -> Option<MannKendall> {
    let n = x.len();
    if n < 4 {
        return None;
    }
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            s += match x[j].partial_cmp(&x[i]) {
                Some(std::cmp::Ordering::Greater) => 1,
                Some(std::cmp::Ordering::Less) => -1,
                _ => 0,
            };
        }
    }
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * (t - 1.0) * (2.0 * t + 5.0);
        i = j + 1;
    }
    let nf = n as f64;
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - tie_term) / 18.0;
    let s = s as f64;
    let z = if var <= 0.0 {
        0.0
    } else if s > 0.0 {
        (s - 1.0) / var.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var.sqrt()
    } else {
        0.0
    };
    Some(MannKendall { s, z, p_value: 2.0 * (1.0 - normal_cdf(z.abs())) })
}

/// Sen's slope: the median of the pairwise slopes `(x[j]-x[i])/(j-i)`, per
/// index step. `None` for fewer than 2 points. O(n²) memory and time.
pub fn sen_slope(x: &[f64]) -> Option<f64> {
    let n = x.len();
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            slopes.push((x[j] - x[i]) / (j - i) as f64);
        }
    }
    median(&slopes)
}

/// Means of consecutive blocks of `size` values (a shorter last block is
/// dropped unless it is the only one).
pub fn block_means(x: &[f64], size: usize) -> Vec<f64> {
    let size = size.max(1);
    let mut out: Vec<f64> = x.chunks(size).filter(|c| c.len() == size).map(mean).collect();
    if out.is_empty() && !x.is_empty() {
        out.push(mean(x));
    }
    out
}

/// An ordinary least squares line `y = intercept + slope * x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearFit {
    /// Value at x = 0.
    pub intercept: f64,
    /// Change in y per unit of x.
    pub slope: f64,
    /// Coefficient of determination, 0..=1 (0 when y is constant).
    pub r2: f64,
    /// Standard error of the slope.
    pub slope_se: f64,
    /// Residual standard deviation.
    pub residual_sd: f64,
    /// Points used.
    pub n: usize,
}

/// Least squares of `y` on `x`. `None` with fewer than 2 points or when all
/// x are equal.
pub fn linear_fit(x: &[f64], y: &[f64]) -> Option<LinearFit> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    let (mx, my) = (mean(&x[..n]), mean(&y[..n]));
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse = (syy - slope * sxy).max(0.0);
    let r2 = if syy > 0.0 { (1.0 - sse / syy).clamp(0.0, 1.0) } else { 0.0 };
    let dof = n.saturating_sub(2).max(1) as f64;
    let residual_sd = (sse / dof).sqrt();
    Some(LinearFit { intercept, slope, r2, slope_se: residual_sd / sxx.sqrt(), residual_sd, n })
}

/// The standard normal cumulative distribution function.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit,
/// relative error below 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative
/// error below 1.2e-9), for `p` in (0, 1); ±infinity at the ends.
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] =
        [-5.447_609_879_822_406e1, 1.615_858_368_580_409e2, -1.556_989_798_598_866e2, 6.680_131_188_771_972e1, -1.328_068_155_288_572e1];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_brings_any_magnitude_into_one_to_two_exactly() {
        for m in [1.0, 3.0, 1e-3, 1e300, f64::MAX, 2f64.powi(1023), 1e-310, 5e-324, 2.5e-323, f64::MIN_POSITIVE, 1e-320] {
            let s = Pow2::normalizing(m);
            let scaled = s.apply(m);
            assert!((1.0..2.0).contains(&scaled), "{m}: 2^{} gives {scaled}", s.exponent());
            assert_eq!(s.undo(scaled), m, "{m}: exact round trip");
            assert_eq!(s.undo(s.apply(-m / 2.0)), -m / 2.0, "{m}");
        }
        assert_eq!(Pow2::normalizing(4096.0).apply(3.0), 3.0 / 4096.0);
        assert_eq!(Pow2::normalizing(0.0).exponent(), 0);
        assert_eq!(Pow2::normalizing(f64::NAN).exponent(), 0);
    }

    #[test]
    fn quantiles_interpolate() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&x, 0.5), Some(2.5));
        assert_eq!(quantile(&x, 1.0), Some(4.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn normal_law_round_trips() {
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile(0.001) + 3.090_232).abs() < 1e-5);
    }

    #[test]
    fn mann_kendall_sees_a_trend_and_not_noise() {
        let up: Vec<f64> = (0..30).map(|i| i as f64 + if i % 2 == 0 { 0.5 } else { -0.5 }).collect();
        let mk = mann_kendall(&up).unwrap();
        assert!(mk.p_value < 0.001 && mk.s > 0.0);
        assert!((sen_slope(&up).unwrap() - 1.0).abs() < 0.1);
        let flat: Vec<f64> = (0..30).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        assert!(mann_kendall(&flat).unwrap().p_value > 0.5);
    }

    #[test]
    fn acf_finds_the_period() {
        let x: Vec<f64> = (0..240).map(|i| (i as f64 * std::f64::consts::TAU / 24.0).sin()).collect();
        let r = acf(&x, 48);
        assert!(r[24] > 0.85 && r[12] < -0.85);
        assert_eq!(acf(&[3.0; 10], 3), vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn least_squares_recovers_a_line() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| 2.0 + 3.0 * v).collect();
        let f = linear_fit(&x, &y).unwrap();
        assert!((f.slope - 3.0).abs() < 1e-12 && (f.intercept - 2.0).abs() < 1e-9 && f.r2 > 0.999_999);
    }
}
