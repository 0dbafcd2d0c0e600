use steward_core::config::{EngineConfig, PolicyName};
use steward_core::sim::*;
fn main() {
    let text = std::fs::read_to_string("../shared/datasets/workload/nasa_http_5min.csv").unwrap();
    let s = steward_core::predict::series::parse_csv(&text, 2).unwrap();
    let t = Trace::new(&s.ts, &s.values).unwrap();
    let svc = ServiceTime::Exp(30.0);
    let t = t.scaled(50.0 / (t.peak_rate() * 30.0));
    let c = SimConfig { service: svc, startup: 60.0, sla: 300.0, min_agents: 1, max_agents: 100, initial_agents: 1, seed: 1, record_every: 60.0, reversal_window: 300.0 };
    let mut e = EngineConfig::default();
    e.auto.max_agents = 100;
    e.adaptive.startup_time = std::time::Duration::from_secs(60);
    e.adaptive.max_wait = std::time::Duration::from_secs(300);
    let mut st = Steward::new(steward_core::policy::builtin(PolicyName::Adaptive), e, s.ts[0]);
    let r = simulate(&t, &c, &mut st);
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "rev" {
        let mut n = 0;
        for w in r.actions.windows(3) {
            let (a, b) = (w[1], w[2]);
            if (a.2 > a.1) != (b.2 > b.1) && b.0 - a.0 <= 300.0 {
                n += 1;
                if n > 40 { break; }
                let p = r.series.iter().find(|p| p.t >= b.0).unwrap();
                println!("{:>9.0} prev {:>9.0} {}->{}  then {:>9.0} {}->{}  backlog {} rate {:.3}", w[0].0, a.0, a.1, a.2, b.0, b.1, b.2, p.backlog, p.arrival_rate);
            }
        }
        return;
    }
    let from: f64 = mode.parse().unwrap_or(86400.0 * 3.0);
    for a in r.actions.iter().filter(|a| a.0 >= from).take(60) {
        let p = r.series.iter().find(|p| p.t >= a.0).unwrap();
        println!("{:>8.0} {:>3} -> {:<3} backlog {} rate {:.3} maxwait {:.0}", a.0 - from, a.1, a.2, p.backlog, p.arrival_rate, p.max_wait);
    }
}
