use steward_core::predict::forecast::{peak_within, pattern_of_step, fit_best, fill_gaps};
fn main() {
    let n = 64;
    let v: Vec<f64> = (0..n).map(|i| 0.3 + 0.05 * ((i * 7919) % 13) as f64 / 13.0 + i as f64 * 0.001).collect();
    let ts: Vec<i64> = (0..n as i64).map(|i| 1_000_000 + i * 30_000).collect();
    let t = std::time::Instant::now();
    let mut s = 0.0;
    for _ in 0..2000 { s += peak_within(&ts, &v, 60_000).map_or(0.0, |p| p.value); }
    eprintln!("peak_within {:?}/call {s}", t.elapsed() / 2000);
    let t = std::time::Instant::now();
    for _ in 0..2000 { s += pattern_of_step(&v, Some(30_000)).slope_per_point; }
    eprintln!("pattern {:?}/call", t.elapsed() / 2000);
    let st = pattern_of_step(&v, Some(30_000));
    eprintln!("{:?}", st.pattern);
    let f = fill_gaps(&v);
    let t = std::time::Instant::now();
    for _ in 0..2000 { s += fit_best(&v, &f, 2, &st).scale; }
    eprintln!("fit_best {:?}/call {s}", t.elapsed() / 2000);
}
