//! Simulated work: service-time distributions and a small PRNG, for the
//! simulator, the worker's `--service-time` and the demo.

/// Service time distributions for simulated work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTime {
    /// Always this many seconds.
    Const(f64),
    /// Exponential with this mean.
    Exp(f64),
    /// Uniform between the two.
    Uniform(f64, f64),
    /// Log-normal with this median and shape.
    LogNormal(f64, f64),
}

impl std::str::FromStr for ServiceTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| -> Result<f64, String> {
            let v: f64 = t.trim().parse().map_err(|_| format!("{t:?} is not a number of seconds"))?;
            if (0.0..86_400.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("{v} is out of range (0 to 86400 seconds)"))
            }
        };
        let (kind, args) = s.split_once(':').unwrap_or(("const", s));
        let parts: Vec<&str> = args.split(',').collect();
        let t = match (kind, parts.as_slice()) {
            ("const", [a]) => Self::Const(num(a)?),
            ("exp", [m]) => Self::Exp(num(m)?),
            ("uniform", [a, b]) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("uniform:{a},{b} needs the smaller bound first"));
                }
                Self::Uniform(a, b)
            }
            ("lognormal", [m, s]) => Self::LogNormal(num(m)?, num(s)?),
            _ => return Err(format!("{s:?} is not a distribution (try 0.2, exp:0.2, uniform:0.1,0.5 or lognormal:0.2,0.5)")),
        };
        Ok(t)
    }
}

/// A small, fast PRNG (SplitMix64): simulation needs no more.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

impl ServiceTime {
    /// The mean, in seconds.
    pub fn mean(self) -> f64 {
        match self {
            Self::Const(s) | Self::Exp(s) => s,
            Self::Uniform(a, b) => (a + b) / 2.0,
            Self::LogNormal(median, sigma) => median * (sigma * sigma / 2.0).exp(),
        }
    }

    /// One draw, in seconds.
    pub fn sample(self, rng: &mut Rng) -> f64 {
        match self {
            Self::Const(s) => s,
            Self::Exp(mean) => -mean * (1.0 - rng.unit()).ln(),
            Self::Uniform(a, b) => a + (b - a) * rng.unit(),
            Self::LogNormal(median, sigma) => median * (sigma * rng.normal()).exp(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_parse_and_sample_in_range() {
        let mut rng = Rng::new(7);
        assert_eq!("0.5".parse::<ServiceTime>(), Ok(ServiceTime::Const(0.5)));
        let exp: ServiceTime = "exp:0.2".parse().unwrap();
        let mean = (0..20_000).map(|_| exp.sample(&mut rng)).sum::<f64>() / 20_000.0;
        assert!((mean - 0.2).abs() < 0.01, "{mean}");
        let u: ServiceTime = "uniform:1,2".parse().unwrap();
        assert!((0..1000).map(|_| u.sample(&mut rng)).all(|x| (1.0..2.0).contains(&x)));
        let ln: ServiceTime = "lognormal:0.2,0.5".parse().unwrap();
        let mut xs: Vec<f64> = (0..20_001).map(|_| ln.sample(&mut rng)).collect();
        xs.sort_by(f64::total_cmp);
        assert!((xs[10_000] - 0.2).abs() < 0.01, "median {}", xs[10_000]);
        for bad in ["fast", "exp:", "uniform:2,1", "const:-1", "exp:1e9", "weibull:1,2"] {
            assert!(bad.parse::<ServiceTime>().is_err(), "{bad}");
        }
    }
}
