//! The anomaly detector: no look-ahead, scores in 0..1, one alarm for a
//! clear anomaly in a clean daily cycle and none in plain noise.

use steward_core::predict::detect::{score_series, Detector, DetectorConfig};

fn noise(i: usize) -> f64 {
    let mut h = (i as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 29;
    (h % 10_000) as f64 / 10_000.0 - 0.5
}

/// Two weeks of 5-minute points: a daily square wave with noise.
fn daily(n: usize) -> (Vec<i64>, Vec<f64>) {
    let ts = (0..n as i64).map(|i| 1_400_000_000_000 + i * 300_000).collect();
    let v = (0..n).map(|i| if (108..216).contains(&(i % 288)) { 80.0 } else { 20.0 } + 4.0 * noise(i)).collect();
    (ts, v)
}

const NAB_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets/nab-dev/data/realTraffic/speed_7578.csv");

#[test]
fn a_prefix_scores_identically() {
    // Real data with gaps: the scores of the first k rows do not depend on
    // the rows after them.
    let text = std::fs::read_to_string(NAB_FILE).expect("nab-dev is in shared/");
    let p = steward_core::predict::series::parse_csv_rows(&text, 2, steward_core::predict::series::Duplicates::Keep).unwrap();
    let (ts, v) = (&p.series.ts, &p.series.values);
    let full = score_series(ts, v, DetectorConfig::default());
    for k in [1, 2, 10, 150, 500, v.len() - 1] {
        let prefix = score_series(&ts[..k], &v[..k], DetectorConfig::default());
        assert_eq!(prefix, full[..k], "prefix of {k} rows");
    }
    // Changing a later row changes nothing before it.
    let mut changed = v.clone();
    changed[700] += 1000.0;
    let again = score_series(ts, &changed, DetectorConfig::default());
    assert_eq!(again[..700], full[..700]);
    assert!(again[700] > full[700]);
}

#[test]
fn scores_stay_in_the_unit_interval() {
    let (ts, mut v) = daily(4032);
    v[3000] = 1e12;
    v[3001] = -1e12;
    v[3500] = 0.0;
    for s in score_series(&ts, &v, DetectorConfig::default()) {
        assert!((0.0..=1.0).contains(&s), "{s}");
    }
    let mut d = Detector::new(DetectorConfig::default());
    assert_eq!(d.update(0, 5.0), 0.0);
}

#[test]
fn a_missing_peak_stands_out_and_noise_does_not() {
    let (ts, mut v) = daily(4032);
    // Day 11 has no peak.
    for (i, x) in v.iter_mut().enumerate().take(11 * 288 + 216).skip(11 * 288 + 108) {
        *x = 20.0 + 4.0 * noise(i);
    }
    let s = score_series(&ts, &v, DetectorConfig::default());
    let in_event = s[11 * 288 + 108..11 * 288 + 120].iter().copied().fold(0.0, f64::max);
    let elsewhere = s[600..11 * 288].iter().copied().fold(0.0, f64::max);
    assert!(in_event > 0.95, "missing peak scores {in_event}");
    assert!(in_event > elsewhere, "{in_event} vs normal days {elsewhere}");
}
