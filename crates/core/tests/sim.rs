//! The simulator: conservation, accounting, and the oracle as a lower bound.

use steward_core::sim::{simulate, Oracle, ServiceTime, SimConfig, Trace};

fn cfg(service: ServiceTime) -> SimConfig {
    SimConfig { service, startup: 60.0, sla: 300.0, min_agents: 1, max_agents: 100, initial_agents: 1, seed: 7, record_every: 60.0, reversal_window: 300.0 }
}

fn flat(rows: usize, per_row: f64, step_s: i64) -> Trace {
    let ts: Vec<i64> = (0..rows as i64).map(|i| 1_000_000 + i * step_s * 1000).collect();
    Trace::new(&ts, &vec![per_row; rows]).unwrap()
}

#[test]
fn the_oracle_meets_the_sla_on_a_flat_load() {
    // 1 item/s of 10 s each: 10 agents busy.
    let t = flat(48, 300.0, 300);
    let c = cfg(ServiceTime::Const(10.0));
    let mut o = Oracle::plan(&t, &c, 30.0);
    let r = simulate(&t, &c, &mut o);
    assert_eq!(r.items, 48 * 300);
    assert!(r.sla_attainment > 0.999, "{r:?}");
    // 4 h of work is 40 agent-hours.
    assert!(r.agent_hours >= 40.0 && r.agent_hours < 44.0, "{}", r.agent_hours);
}

#[test]
fn dbg_oracle_exp() {
    let t = flat(48, 300.0, 300);
    let c = cfg(ServiceTime::Exp(10.0));
    let mut o = Oracle::plan(&t, &c, 30.0);
    let want: Vec<u32> = (0..20).map(|k| o.agents_at(k as f64 * 30.0)).collect();
    eprintln!("{want:?}");
    let r = simulate(&t, &c, &mut o);
    eprintln!("{r:?}");
    for p in r.series.iter().take(30) { eprintln!("{p:?}"); }
}

#[test]
fn dbg_oracle_nasa() {
    let text = std::fs::read_to_string("../../../shared/datasets/workload/nasa_http_5min.csv").unwrap();
    let s = steward_core::predict::series::parse_csv(&text.lines().take(300).collect::<Vec<_>>().join("\n"), 2).unwrap();
    let t = Trace::new(&s.ts, &s.values).unwrap().scaled(0.333);
    let c = cfg(ServiceTime::Exp(30.0));
    let mut o = Oracle::plan(&t, &c, 30.0);
    let want: Vec<u32> = (0..40).map(|k| o.agents_at(k as f64 * 30.0)).collect();
    eprintln!("{want:?}");
    let r = simulate(&t, &c, &mut o);
    eprintln!("{} {}", r.sla_attainment, r.agent_hours);
    for p in r.series.iter().take(30) { eprintln!("{p:?}"); }
}
