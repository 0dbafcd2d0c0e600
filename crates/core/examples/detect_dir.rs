//! Runs the detector over every `timestamp,value` CSV under a directory and
//! writes `timestamp,value,anomaly_score` files mirroring it (for scoring
//! a corpus quickly: `cargo run --release -p steward-core --example
//! detect_dir -- IN_DIR OUT_DIR`). Settings from the default config; for
//! experiments TAIL_Q, RARE_Q, FIT_Q, HORIZON, LEARN_H (hours), PAGE_DAYS, SMOOTH_W, SMOOTH_CAP,
//! DRIFT_W, SHARP, FLAT_F, FLAT_MIN, NEIGH, LEVEL_W, ERR_W, WARMUP, DAMP,
//! CYCLES and REST override theirs. A
//! timestamp that goes back is fed as the previous one (scored in order).

use std::path::Path;

use steward_core::predict::detect::{score_series, DetectorConfig};
use steward_core::predict::series::{parse_timestamp, parse_value};

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "csv") {
            out.push(p);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: detect_dir IN_DIR OUT_DIR");
        std::process::exit(2);
    };
    let (input, output) = (Path::new(input), Path::new(output));
    let mut files = Vec::new();
    walk(input, &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let mut rows: Vec<(&str, &str)> = Vec::new();
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        let mut last = i64::MIN;
        for line in text.lines().skip(1) {
            let Some((t, v)) = line.split_once(',') else { continue };
            let (Some(tt), Some(vv)) = (parse_timestamp(t), parse_value(v)) else { continue };
            let tt = tt.max(last);
            last = tt;
            rows.push((t, v));
            ts.push(tt);
            vs.push(vv);
        }
        let mut cfg = DetectorConfig::default();
        // Each override: its variable and the setting it writes.
        type Set = fn(&mut DetectorConfig, f64);
        let overrides: [(&str, Set); 19] = [
            ("TAIL_Q", |c, v| c.tail_quantile = v),
            ("RARE_Q", |c, v| c.rare_quantile = v),
            ("FIT_Q", |c, v| c.fit_quantile = v),
            ("HORIZON", |c, v| c.fit_horizon = v),
            ("LEARN_H", |c, v| c.learning_ms = (v * 3_600_000.0) as i64),
            ("PAGE_DAYS", |c, v| c.page_interval_ms = (v * 86_400_000.0) as i64),
            ("DRIFT_W", |c, v| c.drift_weight = v),
            ("SMOOTH_CAP", |c, v| c.smooth_cap = v),
            ("SMOOTH_W", |c, v| c.smooth_weight = v),
            ("SHARP", |c, v| c.sharpness = v),
            ("FLAT_F", |c, v| c.flat_factor = v),
            ("FLAT_MIN", |c, v| c.flat_min_run = v as usize),
            ("NEIGH", |c, v| c.neighbours = v as usize),
            ("LEVEL_W", |c, v| c.level_weight = v),
            ("ERR_W", |c, v| c.error_weight = v),
            ("WARMUP", |c, v| c.warmup_points = v as usize),
            ("DAMP", |c, v| c.damping = v),
            ("CYCLES", |c, v| c.season_cycles = v as usize),
            ("REST", |c, v| c.rest_points = v as usize),
        ];
        for (name, set) in overrides {
            if let Some(v) = std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok()) {
                set(&mut cfg, v);
            }
        }
        let scores = score_series(&ts, &vs, cfg);
        let rel = f.strip_prefix(input).unwrap_or(&f);
        let dest = output.join(rel);
        if let Some(parent) = dest.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let mut s = String::from("timestamp,value,anomaly_score\n");
        for ((t, v), sc) in rows.iter().zip(&scores) {
            s.push_str(&format!("{t},{v},{sc}\n"));
        }
        let _ = std::fs::write(dest, s);
    }
}
