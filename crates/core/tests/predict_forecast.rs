//! Forecast accuracy on a real request-rate trace (issues 5 and 14): NASA
//! HTTP, hourly and every 5 minutes. Fit on 1995-07-01..07-27, then forecast
//! 24 steps ahead (a day at 1 h, two hours at 5 min) from every origin whose
//! targets fall in 08-04..08-31, updating the state (not the parameters) as
//! the data comes in. The chosen model's MASE must beat the seasonal naive
//! forecasts of a day and of a week, each compared on the targets where that
//! naive has a value, all scaled by the in-sample one-step daily naive error
//! of the fit period.

use steward_core::predict::forecast::{fill_gaps, fit_best_step, pattern_of_step, Grid};
use steward_core::predict::series::parse_csv;
use steward_core::time::parse_rfc3339;

const WORKLOAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets/workload");

/// A MASE of the model and of a naive forecast, on the same targets.
#[derive(Debug, Clone, Copy, Default)]
struct Versus {
    model: f64,
    naive: f64,
    targets: usize,
}

struct Scores {
    daily: Versus,
    weekly: Versus,
    model_name: String,
}

fn evaluate(file: &str, step_ms: i64) -> Scores {
    let text = std::fs::read_to_string(format!("{WORKLOAD}/{file}")).expect("the workload dataset is in shared/");
    let series = parse_csv(&text, 2).unwrap();
    let grid = Grid::from_series(&series).unwrap();
    assert_eq!(grid.step_ms, step_ms);
    let (day, week) = ((86_400_000 / step_ms) as usize, (604_800_000 / step_ms) as usize);
    let at = |t: &str| ((parse_rfc3339(t).unwrap() - grid.start) / grid.step_ms) as usize;
    let y = &grid.values;
    let train_end = at("1995-07-28 00:00:00");
    let first_target = at("1995-08-04 00:00:00");
    let last_target = y.len() - 1;
    assert_eq!(last_target, at(if day == 24 { "1995-08-31 23:00:00" } else { "1995-08-31 23:55:00" }));
    let train = &y[..train_end];
    let filled = fill_gaps(train);
    let stats = pattern_of_step(&filled, Some(step_ms));
    assert_eq!((stats.seasons.primary, stats.seasons.secondary), (Some(day), Some(week)), "daily and weekly seasons");
    let fitted = fit_best_step(train, &filled, 24, &stats, Some(step_ms));
    // The chosen model erred no more on the holdout than any seasonal naive.
    let best_naive = fitted.naive.iter().map(|n| n.1).fold(f64::INFINITY, f64::min);
    assert!(fitted.naive.iter().any(|n| n.0 == day) && fitted.naive.iter().any(|n| n.0 == week), "{:?}", fitted.naive);
    assert!(fitted.holdout_mae.unwrap() <= best_naive, "{:?} vs {best_naive}", fitted.holdout_mae);
    let mut model = fitted.model.unwrap();
    let scale = filled.windows(day + 1).map(|w| (w[day] - w[0]).abs()).sum::<f64>() / (filled.len() - day) as f64;

    // Catch up to the first origin (the gap and the outage included).
    let first_origin = first_target - 1;
    model.update(&y[train_end..=first_origin]);
    let (mut daily, mut weekly) = (Versus::default(), Versus::default());
    for origin in first_origin..=last_target - 24 {
        let f = model.forecast(24, 0.95);
        for (j, (mean, _, _)) in f.iter().enumerate() {
            let target = origin + 1 + j;
            let actual = y[target];
            for (v, naive) in [(&mut daily, y[target - day]), (&mut weekly, y[target - week])] {
                if actual.is_finite() && naive.is_finite() {
                    v.model += (actual - mean.max(0.0)).abs();
                    v.naive += (actual - naive).abs();
                    v.targets += 1;
                }
            }
        }
        model.update(&y[origin + 1..=origin + 1]);
    }
    for v in [&mut daily, &mut weekly] {
        v.model /= v.targets as f64 * scale;
        v.naive /= v.targets as f64 * scale;
    }
    Scores { daily, weekly, model_name: model.name() }
}

fn check(file: &str, step_ms: i64) {
    let s = evaluate(file, step_ms);
    for (what, v) in [("daily", s.daily), ("weekly", s.weekly)] {
        eprintln!("{file}: MASE {} = {:.3} vs {what} seasonal naive {:.3} ({} targets)", s.model_name, v.model, v.naive, v.targets);
        assert!(v.model < v.naive, "{file}: model MASE {:.3} does not beat the {what} seasonal naive {:.3}", v.model, v.naive);
    }
}

#[test]
fn nasa_http_beats_seasonal_naive() {
    check("nasa_http_1h.csv", 3_600_000);
}

#[test]
fn issue_14_nasa_http_5min_beats_daily_and_weekly_seasonal_naive() {
    check("nasa_http_5min.csv", 300_000);
}
