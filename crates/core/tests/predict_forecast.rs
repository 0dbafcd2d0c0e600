//! Forecast accuracy on a real request-rate trace (issue 5): NASA HTTP,
//! hourly. Fit on 1995-07-01..07-27, then forecast 24 h ahead from every
//! hourly origin whose targets fall in 08-04..08-31, updating the state (not
//! the parameters) as the data comes in. The model's MASE must beat the
//! seasonal-naive forecast (daily season), both scaled by the in-sample
//! one-step seasonal-naive error of the fit period.

use steward_core::predict::forecast::{fill_gaps, fit_best, pattern_of, Grid};
use steward_core::predict::series::parse_csv;
use steward_core::time::parse_rfc3339;

const NASA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets/workload/nasa_http_1h.csv");

struct Scores {
    model: f64,
    snaive: f64,
    model_name: String,
}

fn evaluate() -> Scores {
    let text = std::fs::read_to_string(NASA).expect("the workload dataset is in shared/");
    let series = parse_csv(&text, 2).unwrap();
    let grid = Grid::from_series(&series).unwrap();
    assert_eq!(grid.step_ms, 3_600_000);
    let at = |t: &str| ((parse_rfc3339(t).unwrap() - grid.start) / grid.step_ms) as usize;
    let y = &grid.values;
    let train_end = at("1995-07-28 00:00:00");
    let first_target = at("1995-08-04 00:00:00");
    let last_target = at("1995-08-31 23:00:00");
    assert_eq!(last_target, y.len() - 1);
    let train = &y[..train_end];
    let filled = fill_gaps(train);
    let stats = pattern_of(&filled);
    let fitted = fit_best(train, &filled, 24, &stats);
    assert_eq!((stats.seasons.primary, stats.seasons.secondary), (Some(24), Some(168)), "daily and weekly seasons");
    let mut model = fitted.model.unwrap();
    let scale = filled.windows(25).map(|w| (w[24] - w[0]).abs()).sum::<f64>() / (filled.len() - 24) as f64;

    // Catch up to the first origin (the gap and the outage included).
    let first_origin = first_target - 1;
    model.update(&y[train_end..=first_origin]);
    let (mut err_model, mut err_snaive, mut n) = (0.0, 0.0, 0usize);
    for origin in first_origin..=last_target - 24 {
        let f = model.forecast(24, 0.95);
        for (j, (mean, _, _)) in f.iter().enumerate() {
            let target = origin + 1 + j;
            let actual = y[target];
            let naive = y[target - 24];
            if actual.is_finite() && naive.is_finite() {
                err_model += (actual - mean.max(0.0)).abs();
                err_snaive += (actual - naive).abs();
                n += 1;
            }
        }
        model.update(&y[origin + 1..=origin + 1]);
    }
    Scores { model: err_model / n as f64 / scale, snaive: err_snaive / n as f64 / scale, model_name: model.spec.name() }
}

#[test]
fn nasa_http_beats_seasonal_naive() {
    let s = evaluate();
    eprintln!("MASE: model {} = {:.3}, seasonal naive (24 h) = {:.3}", s.model_name, s.model, s.snaive);
    assert!(s.model < s.snaive, "model MASE {:.3} does not beat seasonal naive {:.3}", s.model, s.snaive);
}
