//! Prediction benchmarks (not part of the test suite):
//! `cargo bench -p steward-core --bench predict`. Prints medians of
//! repeated runs on one thread:
//! - `detect`: points per second over the nab-dev set (all 24 files, fed
//!   point by point, each with a fresh detector), repeated to ~1 s of work;
//! - `forecast`: latency of a full forecast (season detection, pattern,
//!   model choice on a holdout, fit, 24 points ahead) of two weeks of
//!   5-minute data (the first 4032 points of the NASA 5-minute trace).

use std::hint::black_box;
use std::time::Instant;

use steward_core::predict::detect::{score_series, DetectorConfig};
use steward_core::predict::forecast::{forecast, ForecastConfig};
use steward_core::predict::series::{parse_csv, parse_csv_rows, Duplicates, Series};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets");

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn nab_series() -> Vec<Series> {
    let mut out = Vec::new();
    for cat in ["artificialNoAnomaly", "artificialWithAnomaly", "realAdExchange", "realTraffic"] {
        let dir = format!("{SHARED}/nab-dev/data/{cat}");
        let mut files: Vec<_> = std::fs::read_dir(&dir).expect("nab-dev in shared/").flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("readable");
            out.push(parse_csv_rows(&text, 2, Duplicates::Keep).expect("nab-dev parses").series);
        }
    }
    out
}

fn main() {
    let series = nab_series();
    let points: usize = series.iter().map(Series::len).sum();
    let reps = (1_000_000 / points).max(1);
    let mut rates = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        for _ in 0..reps {
            for s in &series {
                black_box(score_series(&s.ts, &s.values, DetectorConfig::default()));
            }
        }
        rates.push((reps * points) as f64 / t.elapsed().as_secs_f64());
    }
    println!("detect: median {:.0} points/s ({} points x {reps} per run, 11 runs)", median(rates), points);

    let text = std::fs::read_to_string(format!("{SHARED}/workload/nasa_http_5min.csv")).expect("workload in shared/");
    let all = parse_csv(&text, 2).expect("parses");
    let two_weeks = Series::new(all.ts[..4032].to_vec(), all.values[..4032].to_vec()).expect("valid");
    let mut ms = Vec::new();
    let mut model = String::new();
    for _ in 0..21 {
        let t = Instant::now();
        let f = forecast(black_box(&two_weeks), 24, &ForecastConfig::default()).expect("forecast");
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        model = format!("{} ({}, season {:?})", f.model, f.pattern, f.season_length);
    }
    println!("forecast: median {:.2} ms for 4032 points of 5-minute data, 24 ahead, 21 runs; model {model}", median(ms));
}
