//! Predictive maintenance (issue 5): a leak is caught with a time to
//! failure and a confidence; a flat series is not a failure; a short series
//! is a low confidence, not a crash.

use steward_core::predict::maintenance::{predict, MaintenanceAction, MaintenanceConfig, MetricSample};

/// Deterministic noise, roughly normal (sum of uniforms), sd ≈ `sd`.
fn noise(i: usize, sd: f64) -> f64 {
    let u = |k: u64| {
        let mut h = (i as u64 * 4 + k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 31;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 29;
        (h % 1_000_000) as f64 / 1_000_000.0 - 0.5
    };
    (u(0) + u(1) + u(2) + u(3)) * sd * (3.0_f64).sqrt()
}

fn samples(component: &str, metric: &str, n: usize, step_min: i64, f: impl Fn(usize) -> f64) -> Vec<MetricSample> {
    (0..n)
        .map(|i| MetricSample {
            ts: 1_700_000_000_000 + i as i64 * step_min * 60_000,
            component: component.into(),
            metric: metric.into(),
            value: f(i),
        })
        .collect()
}

#[test]
fn a_memory_leak_fails_in_about_45_hours() {
    // Memory rises 1 %/h from 50 %, sampled every minute for 3 hours, with
    // noise (sd 0.5 %). From 50 % the limit of 95 % is 45 h away; at the
    // last sample (about 53 %) it is about 42 h away.
    let s = samples("agent-7", "memory_percent", 181, 1, |i| 50.0 + i as f64 / 60.0 + noise(i, 0.5));
    let p = &predict(&s, &MaintenanceConfig::default())[0];
    let ttf = p.time_to_failure_hours.unwrap();
    assert!(p.will_fail && p.component == "agent-7");
    assert!((40.0..=50.0).contains(&ttf), "time to failure {ttf}");
    assert!(p.confidence > 0.7, "confidence {}", p.confidence);
    assert!((p.slope_per_hour.unwrap() - 1.0).abs() < 0.1);
    assert_eq!(p.recommendations[0].action, MaintenanceAction::Restart);
}

#[test]
fn a_flat_noisy_series_does_not_fail() {
    let s = samples("host-1", "disk_percent", 24 * 12, 5, |i| 60.0 + noise(i, 2.0));
    let p = &predict(&s, &MaintenanceConfig::default())[0];
    assert!(!p.will_fail, "{p:?}");
    assert!(p.recommendations.is_empty());
    assert!(p.confidence > 0.5, "a confident no: {}", p.confidence);
}

#[test]
fn a_short_series_is_a_low_confidence_not_a_crash() {
    for n in 0..4 {
        let s = samples("agent-1", "memory_percent", n, 1, |i| 50.0 + i as f64 * 5.0);
        let out = predict(&s, &MaintenanceConfig::default());
        if n == 0 {
            assert!(out.is_empty());
            continue;
        }
        assert!(!out[0].will_fail && out[0].confidence < 0.2, "{n} points: {:?}", out[0]);
        assert!(!out[0].notes.is_empty());
    }
    // Two points that happen to rise steeply still do not claim a failure.
    let s = samples("agent-1", "memory_percent", 4, 60, |i| 50.0 + i as f64 * 10.0);
    let p = &predict(&s, &MaintenanceConfig::default())[0];
    assert!(p.confidence < 0.3, "{p:?}");
}
