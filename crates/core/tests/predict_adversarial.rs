//! Adversarial property tests of the prediction core (issue 9): `forecast`,
//! `detect` and maintenance `predict` on hostile series, and the CSV readers
//! on arbitrary and mutated text. This is the fuzzing of these parsers and
//! models: cargo-fuzz needs nightly Rust, so the fuzzer is proptest, whose
//! failures are shrunk to a minimal input.
//!
//! Properties: no panic for any input; on success, every number finite, the
//! forecast's timestamps strictly increasing and after the last input,
//! scores in 0..=1, and each parser's output meeting its contract.
//!
//! Running:
//! - CI (the default, a few seconds): `cargo test -p steward-core --test predict_adversarial`
//! - more cases per property: `STEWARD_FUZZ_CASES=200000 cargo test --release -p steward-core --test predict_adversarial`
//! - each property for at least 60 s (batches of `STEWARD_FUZZ_CASES` until
//!   then; each prints its cases and seconds):
//!   `STEWARD_FUZZ_SECS=60 cargo test --release -p steward-core --test predict_adversarial -- --nocapture --test-threads=2`
//! - a failure prints its seed; `STEWARD_FUZZ_SEED=<seed>` replays that run.
//!
//! Regression tests for the failures the issue reported are at the end.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use steward_core::predict::detect::{score_series, Detector, DetectorConfig};
use steward_core::predict::forecast::{forecast, Forecast, ForecastConfig, ForecastError, Grid, MAX_ABS_VALUE, MAX_HORIZON};
use steward_core::predict::input::{columns, memory_usage, metric_samples, metric_samples_sorted, parse_limit, query_history};
use steward_core::predict::maintenance::{predict, FailurePrediction, Limit, MaintenanceConfig, MetricSample};
use steward_core::predict::series::{
    parse_csv_in_file_order, parse_csv_rows, parse_csv_sorted, parse_timestamp, parse_value, Duplicates, Series, SeriesError, TimeIssue,
};
use steward_core::time::format_rfc3339;

// ---------------------------------------------------------------------------
// The runner: cases and time from the environment.

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// Runs `test` on `strategy` for `STEWARD_FUZZ_CASES` cases (default
/// `default_cases`), repeated until `STEWARD_FUZZ_SECS` have passed.
fn fuzz<S: Strategy>(name: &str, default_cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let cases = env_u64("STEWARD_FUZZ_CASES").map_or(default_cases, |c| u32::try_from(c.max(1)).unwrap_or(u32::MAX));
    let budget = Duration::from_secs(env_u64("STEWARD_FUZZ_SECS").unwrap_or(0));
    let seed = env_u64("STEWARD_FUZZ_SEED")
        .unwrap_or_else(|| SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    let start = Instant::now();
    let mut total = 0u64;
    for batch in 0u64.. {
        let config = Config {
            cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed.wrapping_add(batch)),
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{name}: {e}\n(seed {}: STEWARD_FUZZ_SEED={} replays this batch)", seed.wrapping_add(batch), seed.wrapping_add(batch));
        }
        total += u64::from(cases);
        if start.elapsed() >= budget {
            break;
        }
    }
    eprintln!("fuzz {name}: {total} cases in {:.1} s", start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// Adversarial series.

/// Values that break naive arithmetic.
fn special() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        1e308,
        -1e308,
        f64::MAX / 2.0,
        -f64::MAX / 2.0,
        f64::MAX,
        -f64::MAX,
        1e300,
        -1e300,
        MAX_ABS_VALUE,
        -MAX_ABS_VALUE,
        1e154,
        -1e154,
        5e-324,
        -5e-324,
        1e-310,
        f64::MIN_POSITIVE,
        1e-300,
        9_007_199_254_740_993.0,
    ])
}

/// A mix of ordinary numbers, the special ones, and any finite float.
fn value() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        5 => -1e4..1e4f64,
        3 => special(),
        2 => POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO,
    ]
}

/// A piece of a series.
#[derive(Debug, Clone)]
enum Segment {
    Noise(Vec<f64>),
    Run(f64, usize),
    Alternate(f64, f64, usize),
    Ramp(f64, f64, usize),
    Wave { offset: f64, amplitude: f64, period: usize, len: usize },
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        prop::collection::vec(value(), 0..60).prop_map(Segment::Noise),
        (value(), 0..200usize).prop_map(|(v, n)| Segment::Run(v, n)),
        (value(), value(), 0..200usize).prop_map(|(a, b, n)| Segment::Alternate(a, b, n)),
        (value(), value(), 0..200usize).prop_map(|(a, b, n)| Segment::Ramp(a, b, n)),
        (value(), value(), 2..50usize, 0..300usize).prop_map(|(offset, amplitude, period, len)| Segment::Wave {
            offset,
            amplitude,
            period,
            len
        }),
    ]
}

/// Finite, saturating at ±f64::MAX.
fn sat(x: f64) -> f64 {
    x.clamp(-f64::MAX, f64::MAX)
}

fn render(segments: &[Segment], max_len: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for s in segments {
        match s {
            Segment::Noise(v) => out.extend(v),
            Segment::Run(v, n) => out.extend(std::iter::repeat_n(*v, *n)),
            Segment::Alternate(a, b, n) => out.extend((0..*n).map(|i| if i % 2 == 0 { *a } else { *b })),
            Segment::Ramp(a, b, n) => {
                out.extend((0..*n).map(|i| {
                    let t = i as f64 / (*n).max(1) as f64;
                    sat(a * (1.0 - t) + b * t)
                }));
            }
            Segment::Wave { offset, amplitude, period, len } => {
                out.extend((0..*len).map(|i| sat(offset + amplitude * (i as f64 * std::f64::consts::TAU / *period as f64).sin())));
            }
        }
    }
    out.truncate(max_len);
    out
}

fn values(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    (prop::collection::vec(segment(), 0..8), 0..=max_len).prop_map(|(segs, n)| render(&segs, n))
}

/// A gap between timestamps: mostly the series' step, sometimes jittered,
/// sometimes from a millisecond to years.
#[derive(Debug, Clone, Copy)]
enum Gap {
    Step,
    Jitter(i64),
    Multiple(i64),
    Any(i64),
    Zero,
}

fn gap(zero: bool) -> impl Strategy<Value = Gap> {
    prop_oneof![
        12 => Just(Gap::Step),
        2 => (1..=10i64).prop_map(Gap::Jitter),
        1 => (2..=100i64).prop_map(Gap::Multiple),
        1 => prop_oneof![1..=1_000i64, 1..=3_600_000i64, 1..=400_000_000_000i64].prop_map(Gap::Any),
        if zero { 1 } else { 0 } => Just(Gap::Zero),
    ]
}

fn start() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => -3_000_000_000_000_000..3_000_000_000_000_000i64,
        1 => Just(i64::MIN),
        1 => (i64::MAX - 10_000_000_000_000)..=i64::MAX,
    ]
}

/// Timestamps for `n` values (fewer if they would pass i64::MAX);
/// strictly increasing unless `zero_gaps`.
fn timestamps(n: usize, zero_gaps: bool) -> impl Strategy<Value = Vec<i64>> {
    let steps = prop::sample::select(vec![1i64, 1_000, 60_000, 300_000, 3_600_000, 86_400_000]);
    (start(), steps, prop::collection::vec(gap(zero_gaps), n.saturating_sub(1))).prop_map(move |(t0, step, gaps)| {
        let mut ts = Vec::with_capacity(n);
        if n > 0 {
            ts.push(t0);
        }
        for g in gaps {
            let d = match g {
                Gap::Step => step,
                Gap::Jitter(j) => step.saturating_add(j),
                Gap::Multiple(k) => step.saturating_mul(k),
                Gap::Any(d) => d,
                Gap::Zero => 0,
            };
            match ts.last().and_then(|t: &i64| t.checked_add(d)) {
                Some(t) => ts.push(t),
                None => break,
            }
        }
        ts
    })
}

/// An adversarial series: (timestamps, values) of equal length.
fn series(max_len: usize, zero_gaps: bool) -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
    values(max_len).prop_flat_map(move |v| {
        let n = v.len();
        (timestamps(n, zero_gaps), Just(v)).prop_map(|(ts, mut v)| {
            v.truncate(ts.len());
            (ts, v)
        })
    })
}

// ---------------------------------------------------------------------------
// Forecast.

/// Checks a forecast's contract; returns what came out (0 an ETS model,
/// 1 constant or naive, 2 out of range, 3 another error).
fn check_forecast(ts: &[i64], v: &[f64], horizon: usize, cfg: &ForecastConfig) -> Result<usize, TestCaseError> {
    let s = Series::new(ts.to_vec(), v.to_vec()).ok_or_else(|| TestCaseError::fail("the strategy made an invalid series"))?;
    let result = forecast(&s, horizon, cfg);
    let too_big = v.iter().position(|x| x.abs() > MAX_ABS_VALUE);
    let f = match result {
        Ok(f) => f,
        Err(e) => {
            let expected = match &e {
                ForecastError::TooShort(n) => *n == v.len() && v.len() < 2,
                ForecastError::ZeroHorizon => horizon == 0,
                ForecastError::HorizonTooLong(h) => *h == horizon && horizon > MAX_HORIZON,
                ForecastError::BadInterval => !(cfg.interval > 0.0 && cfg.interval < 1.0),
                ForecastError::OutOfRange { row, .. } => too_big == Some(row - 1),
                // Only when the forecast would pass i64::MAX (ms): the series ends within reach of it.
                ForecastError::TimeOverflow { step_ms, horizon: h } => {
                    *h == horizon
                        && ts.last().is_some_and(|&t| i128::from(t) + i128::from(*step_ms) * (horizon as i128 + 1) > i128::from(i64::MAX))
                }
                ForecastError::InvalidSeries { .. } | ForecastError::NotRepresentable => false,
            };
            prop_assert!(expected, "unexpected error {e:?} for {} points, horizon {horizon}", v.len());
            prop_assert!(!e.to_string().is_empty());
            return Ok(if matches!(e, ForecastError::OutOfRange { .. }) { 2 } else { 3 });
        }
    };
    prop_assert!(v.len() >= 2 && (1..=MAX_HORIZON).contains(&horizon) && too_big.is_none(), "accepted what it must refuse");
    check_forecast_output(ts, v, horizon, &f)?;
    Ok(if f.model.starts_with("ETS") { 0 } else { 1 })
}

fn check_forecast_output(ts: &[i64], v: &[f64], horizon: usize, f: &Forecast) -> Result<(), TestCaseError> {
    prop_assert_eq!(f.forecast.len(), horizon);
    let last = ts[ts.len() - 1];
    let mut prev = last;
    for p in &f.forecast {
        prop_assert!(p.ts > prev, "timestamp {} not after {} (last input {last})", p.ts, prev);
        prev = p.ts;
        prop_assert!(p.value.is_finite() && p.lower.is_finite() && p.upper.is_finite(), "{p:?}");
        prop_assert!(p.lower <= p.value && p.value <= p.upper, "{p:?}");
    }
    prop_assert!(f.confidence.is_finite() && (0.0..=1.0).contains(&f.confidence), "confidence {}", f.confidence);
    let d = &f.diagnostics;
    for x in [d.step_secs, d.season_acf, d.seasonal_strength, d.trend_p_value, d.trend_slope_per_point] {
        prop_assert!(x.is_finite(), "{d:?}");
    }
    prop_assert!(d.holdout_mae.iter().chain(&d.holdout_mase).chain(d.candidates.iter().map(|c| &c.1)).all(|x| x.is_finite()), "{d:?}");
    // Full confidence only for a (near) constant series or a perfect holdout.
    if f.confidence >= 1.0 {
        if f.model == "constant" {
            let grid = Grid::from_series(&Series::new(ts.to_vec(), v.to_vec()).unwrap_or_default());
            let known: Vec<f64> = grid.map(|g| g.values.into_iter().filter(|x| x.is_finite()).collect()).unwrap_or_default();
            let (lo, hi) = known.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            let magnitude = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            prop_assert!(hi - lo <= 1e-5 * magnitude, "constant with confidence 1 over {lo}..{hi}");
        } else {
            prop_assert_eq!(d.holdout_mase, Some(0.0), "confidence 1 without a perfect holdout: {:?}", f);
        }
    }
    // What the CLI prints: JSON without a null in the forecast (the first
    // points: the finiteness of all of them is checked above).
    let json = serde_json::to_value(&f.forecast[..f.forecast.len().min(1000)]).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(!json.to_string().contains("null"), "{json}");
    Ok(())
}

fn horizon() -> impl Strategy<Value = usize> {
    prop_oneof![
        40 => 1..=60usize,
        8 => prop::sample::select(vec![168usize, 288, 1_000, 10_000]),
        3 => prop::sample::select(vec![0usize, MAX_HORIZON + 1, usize::MAX]),
        // The longest horizon: slow in a debug build, so rare.
        1 => Just(MAX_HORIZON),
    ]
}

fn interval() -> impl Strategy<Value = f64> {
    prop_oneof![
        10 => Just(0.95),
        3 => 0.0..1.0f64,
        1 => prop::sample::select(vec![0.0, 1.0, 0.999_999_999_999, f64::NAN, -1.0, 2.0, 1e-300]),
    ]
}

#[test]
fn fuzz_forecast() {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    // Outcomes, to see that both the models and the refusals are reached.
    let counts: [AtomicU64; 4] = Default::default();
    let strategy = (series(500, false), horizon(), interval(), any::<bool>());
    fuzz("forecast", 64, strategy, |((ts, v), h, interval, non_negative)| {
        let kind = check_forecast(&ts, &v, h, &ForecastConfig { interval, non_negative })?;
        counts[kind].fetch_add(1, Relaxed);
        Ok(())
    });
    let [ets, simple, range, other] = counts.map(|c| c.load(Relaxed));
    eprintln!("fuzz forecast outcomes: {ets} ETS models, {simple} constant/naive, {range} out of range, {other} other errors");
}

// ---------------------------------------------------------------------------
// Detect.

#[test]
fn fuzz_detect() {
    fuzz("detect", 128, series(500, true), |(ts, v)| {
        let scores = score_series(&ts, &v, DetectorConfig::default());
        prop_assert_eq!(scores.len(), v.len());
        for (i, s) in scores.iter().enumerate() {
            prop_assert!(s.is_finite() && (0.0..=1.0).contains(s), "score {s} at {i}");
        }
        // No look-ahead: a prefix scores the same.
        let k = v.len() / 2;
        let prefix = score_series(&ts[..k], &v[..k], DetectorConfig::default());
        prop_assert!(prefix.iter().zip(&scores).all(|(a, b)| a.to_bits() == b.to_bits()), "prefix of {k} scores differently");
        Ok(())
    });
}

#[test]
fn fuzz_detect_any_timestamps_and_values() {
    // Not what the CLI passes (it sorts and checks), but the detector must not panic on it.
    let strategy = prop::collection::vec((any::<i64>(), prop_oneof![4 => value(), 1 => any::<f64>()]), 0..300);
    fuzz("detect_any", 128, strategy, |points| {
        let mut d = Detector::new(DetectorConfig::default());
        for (t, x) in points {
            let s = d.update(t, x);
            prop_assert!(s.is_finite() && (0.0..=1.0).contains(&s), "score {s}");
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Maintenance predict.

const METRICS: [&str; 6] = ["memory_percent", "disk_used", "cpu", "error_rate", "custom", "free_gb"];

fn samples() -> impl Strategy<Value = Vec<MetricSample>> {
    let ts = prop_oneof![
        6 => 0..400_000_000i64,
        1 => any::<i64>(),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1]),
    ];
    prop::collection::vec((0..3usize, 0..METRICS.len(), ts, value()), 0..400).prop_map(|rows| {
        rows.into_iter()
            .map(|(c, m, ts, value)| MetricSample { ts, component: format!("c{c}"), metric: METRICS[m].to_owned(), value })
            .collect()
    })
}

fn maintenance_config() -> impl Strategy<Value = MaintenanceConfig> {
    let hours = || prop::sample::select(vec![168.0, 72.0, 1e-9, 1e-300, 1.0, 1e12, 1e300, f64::MAX]);
    (value(), any::<bool>(), value(), hours(), hours()).prop_map(|(custom, rising, free, horizon_hours, window_hours)| {
        let mut cfg = MaintenanceConfig { horizon_hours, window_hours, ..MaintenanceConfig::default() };
        cfg.limits.insert("custom".to_owned(), Limit { value: custom, rising });
        cfg.limits.insert("free_gb".to_owned(), Limit { value: free, rising: false });
        cfg
    })
}

fn check_prediction(p: &FailurePrediction) -> Result<(), TestCaseError> {
    prop_assert!(p.confidence.is_finite() && (0.0..=1.0).contains(&p.confidence), "{p:?}");
    prop_assert!(p.limit.is_finite(), "{p:?}");
    for x in [p.time_to_failure_hours, p.current, p.slope_per_hour, p.r2, p.trend_p_value].into_iter().flatten() {
        prop_assert!(x.is_finite(), "{p:?}");
    }
    if let Some(t) = p.time_to_failure_hours {
        prop_assert!(t >= 0.0, "{p:?}");
    }
    prop_assert!(!p.will_fail || p.time_to_failure_hours.is_some(), "{p:?}");
    prop_assert!(!p.will_fail || !p.recommendations.is_empty(), "{p:?}");
    Ok(())
}

#[test]
fn fuzz_maintenance_predict() {
    fuzz("maintenance", 128, (samples(), maintenance_config()), |(samples, cfg)| {
        let out = predict(&samples, &cfg);
        for p in &out {
            check_prediction(p)?;
        }
        // Failing first, then by time to failure.
        for w in out.windows(2) {
            prop_assert!(w[0].will_fail >= w[1].will_fail);
        }
        Ok(())
    });
}

#[test]
fn fuzz_maintenance_one_series() {
    // One long series with the adversarial shapes, against one limit.
    let strategy = (series(400, true), value(), any::<bool>());
    fuzz("maintenance_series", 128, strategy, |((ts, v), limit, rising)| {
        let mut cfg = MaintenanceConfig::default();
        cfg.limits.insert("custom".to_owned(), Limit { value: limit, rising });
        let samples: Vec<MetricSample> = ts
            .iter()
            .zip(&v)
            .map(|(&ts, &value)| MetricSample { ts, component: "a".to_owned(), metric: "custom".to_owned(), value })
            .collect();
        for p in predict(&samples, &cfg) {
            check_prediction(&p)?;
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// The CSV readers: arbitrary text and mutated valid files.

/// Text: arbitrary Unicode, arbitrary bytes made UTF-8, or CSV-like tokens.
fn any_text() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        ",",
        "\n",
        "\r\n",
        "\"",
        " ",
        "\u{feff}",
        "timestamp",
        "value",
        "component",
        "metric",
        "application_mb",
        "buffer_mb",
        "duration_ms",
        "rows",
        "bytes",
        "2024-01-01",
        "T",
        "00:00:00",
        "Z",
        "+01:00",
        ".5",
        "1e308",
        "-1e308",
        "NaN",
        "inf",
        "9999999999999",
        "-",
        "=",
        "<",
        ">",
        "0",
        "1",
        "12",
        "2024-02-30 25:61:61",
        "1970-01-01T00:00:00.123456+14:00",
    ]);
    prop_oneof![
        ".{0,200}",
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        prop::collection::vec(token, 0..80).prop_map(|t| t.concat()),
    ]
}

/// A timestamp in one of the accepted spellings.
fn timestamp_text(ms: i64, style: u8) -> String {
    let iso = format_rfc3339(ms);
    match style % 4 {
        0 => iso,
        1 => iso.replace('T', " ").trim_end_matches('Z').to_owned(),
        2 => format!("{}", ms / 1000),
        _ => format!("\"{iso}\""),
    }
}

fn value_text(v: f64, style: u8) -> String {
    match style % 3 {
        0 => format!("{v}"),
        1 => format!("{v:e}"),
        _ => format!(" {v} "),
    }
}

/// An edit to a valid text.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, String),
    Delete(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Bom,
    Crlf,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippet = prop::sample::select(vec![",", "\n", "\"", "x", "-", "9", "1e400", "NaN", "\u{feff}", " ", ".", ":", "\r"]);
    prop_oneof![
        4 => (any::<usize>(), prop_oneof![snippet.prop_map(str::to_owned), ".{0,5}"]).prop_map(|(i, s)| Mutation::Insert(i, s)),
        3 => (any::<usize>(), 1..10usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        1 => Just(Mutation::Bom),
        1 => Just(Mutation::Crlf),
    ]
}

fn char_boundary(text: &str, i: usize) -> usize {
    let mut i = i % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(text: &str, edits: &[Mutation]) -> String {
    let mut t = text.to_owned();
    for m in edits {
        match m {
            Mutation::Insert(i, s) => t.insert_str(char_boundary(&t, *i), s),
            Mutation::Delete(i, n) => {
                let a = char_boundary(&t, *i);
                let b = char_boundary(&t, a + n);
                if b > a {
                    t.replace_range(a..b, "");
                }
            }
            Mutation::DuplicateLine(i) | Mutation::SwapLines(i, _) => {
                let mut lines: Vec<String> = t.split('\n').map(str::to_owned).collect();
                let a = i % lines.len();
                if let Mutation::SwapLines(_, j) = m {
                    let b = j % lines.len();
                    lines.swap(a, b);
                } else {
                    let l = lines[a].clone();
                    lines.insert(a, l);
                }
                t = lines.join("\n");
            }
            Mutation::Bom => t.insert(0, '\u{feff}'),
            Mutation::Crlf => t = t.replace('\n', "\r\n"),
        }
    }
    t
}

/// A valid `timestamp,value` file and what it holds.
#[derive(Debug, Clone)]
struct ValidSeries {
    text: String,
    ts: Vec<i64>,
    values: Vec<f64>,
}

fn valid_series_csv() -> impl Strategy<Value = ValidSeries> {
    let row = (1..100_000_000i64, value(), any::<u8>(), any::<u8>());
    (prop::collection::vec(row, 0..40), any::<bool>(), any::<bool>(), -62_000_000_000i64..240_000_000_000).prop_map(
        |(rows, swapped, bom, t0)| {
            let mut text = String::from(if bom { "\u{feff}" } else { "" });
            text.push_str(if swapped { "value,extra,timestamp\n" } else { "timestamp,value\n" });
            let (mut ts, mut values) = (Vec::new(), Vec::new());
            // Whole seconds, so every spelling (Unix seconds included) is
            // exact; years 0 to 9999 (RFC 3339 has four digits).
            let mut t = t0 * 1000;
            for (gap, v, ts_style, v_style) in rows {
                t += gap * 1000;
                let (tt, vt) = (timestamp_text(t, ts_style), value_text(v, v_style));
                if swapped {
                    text.push_str(&format!("{vt},x,{tt}\n"));
                } else {
                    text.push_str(&format!("{tt},{vt}\n"));
                }
                ts.push(t);
                values.push(v);
            }
            ValidSeries { text, ts, values }
        },
    )
}

/// The line count a reported line number must not exceed.
fn line_count(text: &str) -> usize {
    text.lines().count()
}

fn check_series_parse(text: &str, min_rows: usize, dup: Duplicates) -> Result<(), TestCaseError> {
    match parse_csv_rows(text, min_rows, dup) {
        Ok(p) => {
            let s = &p.series;
            prop_assert!(s.len() >= min_rows && s.ts.len() == s.len() && p.rows.len() == s.len());
            prop_assert!(s.values.iter().all(|v| v.is_finite()));
            match dup {
                Duplicates::Reject => {
                    prop_assert!(s.ts.windows(2).all(|w| w[0] < w[1]));
                    prop_assert!(p.duplicate_lines.is_empty());
                }
                Duplicates::Keep => {
                    prop_assert!(s.ts.windows(2).all(|w| w[0] <= w[1]));
                    prop_assert_eq!(p.duplicate_lines.len(), s.ts.windows(2).filter(|w| w[0] == w[1]).count());
                }
            }
            for (i, r) in p.rows.iter().enumerate() {
                prop_assert_eq!(parse_timestamp(r.timestamp), Some(s.ts[i]));
                prop_assert_eq!(parse_value(r.value).map(f64::to_bits), Some(s.values[i].to_bits()));
            }
        }
        Err(e) => {
            let line = match &e {
                SeriesError::MissingColumn { line, .. }
                | SeriesError::MissingField { line, .. }
                | SeriesError::BadTimestamp { line, .. }
                | SeriesError::BadValue { line, .. }
                | SeriesError::Duplicate { line, .. }
                | SeriesError::Unsorted { line, .. } => Some(*line),
                SeriesError::Empty | SeriesError::TooShort { .. } => None,
            };
            if let Some(l) = line {
                prop_assert!(l >= 1 && l <= line_count(text), "line {l} of {} in {e}", line_count(text));
            }
            if let SeriesError::MissingColumn { column, .. } = &e {
                prop_assert!(*column == "timestamp" || *column == "value");
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_series_csv_arbitrary_text() {
    fuzz("parse_csv_rows_text", 256, (any_text(), 0..4usize, any::<bool>()), |(text, min_rows, keep)| {
        check_series_parse(&text, min_rows, if keep { Duplicates::Keep } else { Duplicates::Reject })
    });
}

/// Times as clocks write them: mostly forward, with repeats, steps back,
/// long gaps and jumps to anywhere (a reboot to 1970, a clock far ahead).
fn clock_steps() -> impl Strategy<Value = Vec<i64>> {
    let step = prop_oneof![
        6 => 1..120i64,
        1 => Just(0i64),
        1 => -7200..0i64,
        1 => 3600..400_000i64,
        1 => -3_000_000_000..3_000_000_000i64,
    ];
    (-2_000_000_000..2_000_000_000i64, prop::collection::vec(step, 0..200)).prop_map(|(start, steps)| {
        let mut t = start;
        let mut out = vec![t];
        for s in steps {
            t = (t + s).clamp(-2_900_000_000_000, 2_900_000_000_000);
            out.push(t);
        }
        out
    })
}

#[test]
fn fuzz_times_in_file_order_and_sorted() {
    // Issue 14: every row kept in file order, scored at times that never go
    // back; sorting keeps one row per time, the file's last.
    fuzz("times_in_file_order", 512, clock_steps(), |secs| {
        let text = secs.iter().enumerate().fold(String::from("timestamp,value\n"), |s, (i, t)| s + &format!("{t},{i}\n"));
        let p = parse_csv_in_file_order(&text, 0).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(p.ts.len(), secs.len());
        prop_assert_eq!(p.scoring_ts.len(), secs.len());
        prop_assert_eq!(&p.lines, &(2..secs.len() + 2).collect::<Vec<_>>());
        prop_assert!(p.scoring_ts.windows(2).all(|w| w[0] <= w[1]));
        let mut latest = i64::MIN;
        let mut behind = 0;
        for (i, (&t, &fed)) in p.ts.iter().zip(&p.scoring_ts).enumerate() {
            prop_assert_eq!(t, secs[i] * 1000);
            prop_assert_eq!(fed, latest.max(t));
            behind += usize::from(t < latest);
            latest = latest.max(t);
        }
        // Every row behind is in exactly one step back; each issue names a real line.
        let counted: usize = p.report.issues.iter().map(|i| if let TimeIssue::Backward { rows, .. } = i { *rows } else { 0 }).sum();
        prop_assert_eq!(counted, behind);
        prop_assert!(p.report.issues.iter().all(|i| (2..secs.len() + 2).contains(&i.line())));
        prop_assert!(p.report.issues.iter().all(|i| !i.to_string().is_empty()));
        let (s, sorted) = parse_csv_sorted(&text, 0).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert!(Series::new(s.ts.clone(), s.values.clone()).is_some(), "strictly increasing");
        prop_assert_eq!(sorted.moved, behind);
        prop_assert_eq!(s.len() + sorted.dropped, secs.len());
        for (t, v) in s.ts.iter().zip(&s.values) {
            // The value is the row's index: the last row of the file with that time.
            let last = secs.iter().rposition(|x| x * 1000 == *t);
            prop_assert_eq!(last.map(|i| i as f64), Some(*v));
        }
        // The same for metric samples, one series.
        let metric =
            secs.iter().enumerate().fold(String::from("timestamp,component,metric,value\n"), |s, (i, t)| s + &format!("{t},a,m,{i}\n"));
        if !secs.is_empty() {
            let (samples, m_sorted) = metric_samples_sorted(&metric).map_err(TestCaseError::fail)?;
            prop_assert_eq!(m_sorted, sorted);
            prop_assert_eq!(samples.iter().map(|x| x.value).collect::<Vec<_>>(), s.values.clone());
        }
        // The detector fed these times scores every row in 0..=1.
        let mut d = Detector::new(DetectorConfig::default());
        for (&t, &v) in p.scoring_ts.iter().zip(&p.values) {
            let score = d.update(t, v);
            prop_assert!((0.0..=1.0).contains(&score));
        }
        Ok(())
    });
}

#[test]
fn fuzz_series_csv_mutated() {
    let strategy = (valid_series_csv(), prop::collection::vec(mutation(), 0..4), any::<bool>());
    fuzz("parse_csv_rows_mutated", 256, strategy, |(valid, edits, keep)| {
        let dup = if keep { Duplicates::Keep } else { Duplicates::Reject };
        if edits.is_empty() {
            // Unmutated: exactly what was written.
            let p = parse_csv_rows(&valid.text, 0, dup).map_err(|e| TestCaseError::fail(format!("{e} in {:?}", valid.text)))?;
            prop_assert_eq!(&p.series.ts, &valid.ts);
            prop_assert!(p.series.values.iter().zip(&valid.values).all(|(a, b)| a == b));
        }
        let text = mutate(&valid.text, &edits);
        check_series_parse(&text, 0, dup)?;
        check_series_parse(&text, 2, dup)
    });
}

/// The error phrases of the input readers: either one of the whole-file
/// ones or `line N: ...` with N within the text.
fn check_input_error(text: &str, e: &str) -> Result<(), TestCaseError> {
    if let Some(rest) = e.strip_prefix("line ") {
        let n: usize =
            rest.split(':').next().and_then(|d| d.parse().ok()).ok_or_else(|| TestCaseError::fail(format!("bad error {e:?}")))?;
        prop_assert!(n >= 1 && n <= line_count(text), "line {n} of {} in {e:?}", line_count(text));
    } else {
        prop_assert!(e.starts_with("empty input") || e == "no data rows", "unexpected error {e:?}");
    }
    Ok(())
}

fn check_metric_samples(text: &str) -> Result<(), TestCaseError> {
    match metric_samples(text) {
        Ok(samples) => {
            prop_assert!(!samples.is_empty());
            let mut last: HashMap<(&str, &str), i64> = HashMap::new();
            for s in &samples {
                prop_assert!(s.value.is_finite());
                if let Some(prev) = last.insert((s.component.as_str(), s.metric.as_str()), s.ts) {
                    prop_assert!(prev < s.ts, "{}/{} not increasing", s.component, s.metric);
                }
            }
        }
        Err(e) => check_input_error(text, &e)?,
    }
    Ok(())
}

fn check_columns(text: &str) -> Result<(), TestCaseError> {
    let wanted = ["duration_ms", "rows", "bytes"];
    match columns(text, &wanted, &["duration_ms"]) {
        Ok(cols) => {
            prop_assert_eq!(cols.len(), wanted.len());
            let n = cols[0].len();
            prop_assert!(n > 0);
            for c in &cols {
                prop_assert!(c.is_empty() || c.len() == n);
                prop_assert!(c.iter().all(|v| v.is_finite()));
            }
        }
        Err(e) => check_input_error(text, &e)?,
    }
    match memory_usage(text) {
        Ok((app, buf)) => {
            prop_assert!(!app.is_empty() && (buf.is_empty() || buf.len() == app.len()));
            prop_assert!(app.iter().chain(&buf).all(|v| v.is_finite()));
        }
        Err(e) => check_input_error(text, &e)?,
    }
    match query_history(text) {
        Ok(q) => {
            prop_assert!(!q.is_empty());
            prop_assert!(q.iter().all(|s| s.duration_ms.is_finite() && s.rows.is_finite() && s.bytes.is_finite()));
        }
        Err(e) => check_input_error(text, &e)?,
    }
    Ok(())
}

fn valid_samples_csv() -> impl Strategy<Value = String> {
    let row = (0..3usize, 0..METRICS.len(), 1..10_000_000i64, value(), any::<u8>());
    (prop::collection::vec(row, 0..40), any::<bool>()).prop_map(|(rows, shuffled)| {
        let mut text = String::from(if shuffled { "metric,value,timestamp,component\n" } else { "timestamp,component,metric,value\n" });
        let mut t = 1_700_000_000_000i64;
        for (c, m, gap, v, style) in rows {
            t += gap * 1000;
            let (tt, vt, c, m) = (timestamp_text(t, style), value_text(v, style), format!("c{c}"), METRICS[m]);
            text.push_str(&if shuffled { format!("{m},{vt},{tt},{c}\n") } else { format!("{tt},{c},{m},{vt}\n") });
        }
        text
    })
}

fn valid_columns_csv() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "duration_ms,rows,bytes",
        "bytes,duration_ms",
        "application_mb,buffer_mb",
        "buffer_mb,application_mb,duration_ms",
        "\"duration_ms\",\"application_mb\"",
    ]);
    (header, prop::collection::vec(prop::collection::vec(value(), 3), 0..30)).prop_map(|(h, rows)| {
        let width = h.split(',').count();
        let mut text = format!("{h}\n");
        for r in rows {
            text.push_str(&r[..width].iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(","));
            text.push('\n');
        }
        text
    })
}

#[test]
fn fuzz_metric_samples() {
    let strategy =
        prop_oneof![any_text(), (valid_samples_csv(), prop::collection::vec(mutation(), 0..4)).prop_map(|(t, m)| mutate(&t, &m)),];
    fuzz("metric_samples", 256, strategy, |text| check_metric_samples(&text));
}

#[test]
fn fuzz_columns_memory_usage_query_history() {
    let strategy =
        prop_oneof![any_text(), (valid_columns_csv(), prop::collection::vec(mutation(), 0..4)).prop_map(|(t, m)| mutate(&t, &m)),];
    fuzz("columns", 256, strategy, |text| check_columns(&text));
}

#[test]
fn fuzz_parse_limit() {
    let strategy = prop_oneof![
        any_text(),
        (".{0,8}", prop::sample::select(vec!["=", "<", ">", "=<", ""]), value()).prop_map(|(n, op, v)| format!("{n}{op}{v}")),
    ];
    fuzz("parse_limit", 256, strategy, |text| {
        if let Ok((name, limit)) = parse_limit(&text) {
            prop_assert!(!name.is_empty() && name == name.trim(), "{name:?}");
            prop_assert!(limit.value.is_finite());
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Regression tests for the failures reported in issue 9.

fn minutes(n: usize) -> Vec<i64> {
    (0..n as i64).map(|i| 1_700_000_000_000 + i * 60_000).collect()
}

fn forecast_of(ts: Vec<i64>, v: Vec<f64>, h: usize) -> Result<Forecast, ForecastError> {
    forecast(&Series::new(ts, v).unwrap(), h, &ForecastConfig::default())
}

#[test]
fn alternating_1e308_is_refused_not_a_confident_constant() {
    let v: Vec<f64> = (0..100).map(|i| if i % 2 == 0 { 1e308 } else { -1e308 }).collect();
    let e = forecast_of(minutes(100), v, 10).unwrap_err();
    assert!(matches!(e, ForecastError::OutOfRange { row: 1, .. }), "{e:?}");
    assert!(e.to_string().contains("beyond ±1e300"), "{e}");
}

#[test]
fn values_near_f64_max_are_refused_without_a_panic() {
    // These panicked in ets::filter ("min > max, or either was NaN").
    let mut v: Vec<f64> = (0..40).map(|i| if i % 2 == 0 { 1e308 } else { 1.5e308 }).collect();
    v[39] = 0.0;
    assert!(matches!(forecast_of(minutes(40), v, 5), Err(ForecastError::OutOfRange { row: 1, .. })));
    let v: Vec<f64> = (0..60).map(|i| if i % 7 == 0 { f64::MAX / 2.0 } else { i as f64 }).collect();
    assert!(matches!(forecast_of(minutes(60), v, 5), Err(ForecastError::OutOfRange { row: 1, .. })));
}

#[test]
fn alternation_at_the_largest_accepted_magnitude_is_finite_and_not_a_constant() {
    for big in [1e300, 1e154, 1e200] {
        let ts = minutes(100);
        let v: Vec<f64> = (0..100).map(|i| if i % 2 == 0 { big } else { -big }).collect();
        let f = forecast_of(ts.clone(), v.clone(), 24).unwrap();
        assert_ne!(f.model, "constant", "{big}");
        check_forecast_output(&ts, &v, 24, &f).unwrap();
        // Nothing squared overflows: a season of 2 is found and followed.
        assert_eq!(f.season_length, Some(2), "{big}");
        // The last point (the 100th) is -big: the next is +big.
        assert!(
            (f.forecast[0].value - big).abs() <= 1e-6 * big && (f.forecast[1].value + big).abs() <= 1e-6 * big,
            "{:?}",
            &f.forecast[..2]
        );
    }
}

#[test]
fn huge_values_that_once_gave_null_bounds_are_finite() {
    // ±1e200 noise: the sums of squares overflowed to inf (JSON null).
    let ts = minutes(200);
    let v: Vec<f64> = (0..200).map(|i| ((i * 7919) % 101) as f64 * 1e200 - 5e201).collect();
    let f = forecast_of(ts.clone(), v.clone(), 48).unwrap();
    check_forecast_output(&ts, &v, 48, &f).unwrap();
}

#[test]
fn tiny_values_are_modelled_relative_to_their_size() {
    // Subnormal-sized alternation is not a "constant" either (down to the
    // smallest subnormal, found by the fuzzer).
    for tiny in [3e-310, 5e-324] {
        let ts = minutes(168);
        let mut v: Vec<f64> = (0..168).map(|i| if i % 2 == 0 { tiny } else { -tiny }).collect();
        v[100] = 0.0;
        let f = forecast_of(ts.clone(), v.clone(), 4).unwrap();
        assert_ne!(f.model, "constant", "{tiny}");
        check_forecast_output(&ts, &v, 4, &f).unwrap();
    }
}

#[test]
fn a_gappy_series_is_forecast_after_its_last_point() {
    // Huge irregular gaps: the grid would be much longer than the series, so
    // the points are taken as evenly spaced (the MAX_GRID_EXPANSION fallback),
    // whose timestamps once started before the last input.
    let ts = vec![0, 1, 2, 3_000_000_000, 3_000_000_001, 9_000_000_000];
    let f = forecast_of(ts.clone(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).unwrap();
    assert_eq!(f.forecast.iter().map(|p| p.ts).collect::<Vec<_>>(), [9_000_000_001, 9_000_000_002, 9_000_000_003]);
    let ts: Vec<i64> = (0..30).map(|i| if i < 20 { i } else { 1_000_000 * i }).collect();
    let v: Vec<f64> = (0..30).map(f64::from).collect();
    let f = forecast_of(ts.clone(), v.clone(), 5).unwrap();
    check_forecast_output(&ts, &v, 5, &f).unwrap();
}

#[test]
fn a_forecast_past_the_end_of_time_is_an_error() {
    let ts: Vec<i64> = (0..20).map(|i| i64::MAX - 20 * 1000 + i * 1000).collect();
    let e = forecast_of(ts, (0..20).map(f64::from).collect(), 100).unwrap_err();
    assert_eq!(e, ForecastError::TimeOverflow { step_ms: 1000, horizon: 100 });
    let e = forecast_of(minutes(20), (0..20).map(f64::from).collect(), MAX_HORIZON + 1).unwrap_err();
    assert_eq!(e, ForecastError::HorizonTooLong(MAX_HORIZON + 1));
}

#[test]
fn detect_scores_stay_finite_at_the_float_extremes() {
    let ts = minutes(400);
    let v: Vec<f64> = (0..400).map(|i| [1e308, -1e308, 0.0, f64::MAX, -f64::MAX, 5e-324][i % 6]).collect();
    for s in score_series(&ts, &v, DetectorConfig::default()) {
        assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{s}");
    }
    // Timestamp jumps across the whole i64 range.
    let mut d = Detector::new(DetectorConfig::default());
    for (i, t) in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX].into_iter().enumerate() {
        let s = d.update(t, i as f64 * 1e308);
        assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{s}");
    }
    assert_eq!(d.update(i64::MAX, f64::NAN), 0.0);
}

#[test]
fn maintenance_answers_stay_finite_at_the_float_extremes() {
    let cfg = MaintenanceConfig::default();
    // From -1e308 to 1e308 within milliseconds: a slope beyond f64 per hour.
    let samples: Vec<MetricSample> = (0..10)
        .map(|i| MetricSample { ts: i, component: "a".to_owned(), metric: "memory".to_owned(), value: if i < 5 { -1e308 } else { 1e308 } })
        .collect();
    for p in predict(&samples, &cfg) {
        check_prediction(&p).unwrap();
    }
    // A trend so slow that the limit is 1e300 hours away or more.
    let samples: Vec<MetricSample> = (0..40)
        .map(|i| MetricSample {
            ts: i * 3_600_000,
            component: "a".to_owned(),
            metric: "disk".to_owned(),
            value: -1e300 + i as f64 * 1e-300,
        })
        .collect();
    for p in predict(&samples, &cfg) {
        check_prediction(&p).unwrap();
    }
    // Timestamps at both ends of i64.
    let samples: Vec<MetricSample> = [i64::MIN, 0, i64::MAX - 1, i64::MAX]
        .iter()
        .enumerate()
        .map(|(i, &ts)| MetricSample { ts, component: "a".to_owned(), metric: "cpu".to_owned(), value: i as f64 * 30.0 })
        .collect();
    for p in predict(&samples, &cfg) {
        check_prediction(&p).unwrap();
    }
}
