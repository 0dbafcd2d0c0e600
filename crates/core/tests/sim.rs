//! The simulator: conservation, accounting, the oracle as a lower bound,
//! and steward's policies run through the same code as the loop.

use std::time::Duration;

use steward_core::config::{EngineConfig, PolicyName};
use steward_core::policy;
use steward_core::sim::{self, simulate, Controller, Hpa, HpaConfig, Report, ServiceTime, SimConfig, Steward, Trace};

const BASE_MS: i64 = 1_800_000_000_000;

fn cfg(service: ServiceTime) -> SimConfig {
    SimConfig {
        service,
        startup: 60.0,
        sla: 300.0,
        min_agents: 1,
        max_agents: 100,
        initial_agents: 1,
        seed: 7,
        record_every: 60.0,
        reversal_window: 300.0,
    }
}

fn trace(counts: &[f64], step_s: i64) -> Trace {
    let ts: Vec<i64> = (0..counts.len() as i64).map(|i| BASE_MS + i * step_s * 1000).collect();
    Trace::new(&ts, counts).unwrap()
}

/// Days of the NASA trace (5-minute rows) from `from_day`, scaled so the
/// busiest row of the slice needs `peak` agents of `service` seconds.
fn nasa(from_day: usize, days: usize, peak: f64, service: f64) -> Trace {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets/workload/nasa_http_5min.csv"))
        .expect("the shared NASA trace");
    let rows: Vec<&str> = text.lines().skip(1 + from_day * 288).take(days * 288).collect();
    let mut csv = String::from("timestamp,value\n");
    csv.push_str(&rows.join("\n"));
    let s = steward_core::predict::series::parse_csv(&csv, 2).unwrap();
    let t = Trace::new(&s.ts, &s.values).unwrap();
    t.scaled(peak / (t.peak_rate() * service))
}

fn steward(name: PolicyName, c: &SimConfig) -> Steward {
    let mut e = EngineConfig::default();
    e.auto.min_agents = c.min_agents;
    e.auto.max_agents = c.max_agents;
    e.adaptive.startup_time = Duration::from_secs_f64(c.startup);
    e.adaptive.max_wait = Duration::from_secs_f64(c.sla);
    Steward::new(policy::builtin(name), e, BASE_MS)
}

fn controllers(c: &SimConfig) -> Vec<Box<dyn Controller>> {
    vec![
        Box::new(steward(PolicyName::Adaptive, c)),
        Box::new(steward(PolicyName::Classic, c)),
        Box::new(Hpa::new(HpaConfig::hpa(5.0, c.min_agents, c.max_agents))),
        Box::new(Hpa::new(HpaConfig::hpa(1.0, c.min_agents, c.max_agents))),
        Box::new(Hpa::new(HpaConfig::keda(5.0, c.min_agents, c.max_agents))),
    ]
}

#[test]
fn items_are_conserved_under_every_policy() {
    let t = nasa(2, 1, 20.0, 30.0);
    let c = cfg(ServiceTime::Exp(30.0));
    let expected = t.counts().iter().sum::<f64>().floor() as u64;
    let mut reports: Vec<Report> = controllers(&c).iter_mut().map(|k| simulate(&t, &c, k.as_mut())).collect();
    reports.push(sim::oracle(&t, &c, 30.0, &mut |_| {}));
    for r in &reports {
        assert_eq!(r.items, expected, "{}: every arrival is an item", r.policy);
        assert_eq!(r.completed + r.unfinished, r.items, "{}: every item is served or still there", r.policy);
        if r.policy != "classic" {
            assert_eq!(r.unfinished, 0, "{}: keeps up with the load", r.policy);
        }
        assert!(r.busy_agent_hours <= r.agent_hours + 1e-9, "{}", r.policy);
    }
    // Every policy served the same items: the busy hours are the same work.
    let busy = reports[0].busy_agent_hours;
    assert!(reports.iter().filter(|r| r.unfinished == 0).all(|r| (r.busy_agent_hours - busy).abs() < 1e-6 * busy), "{reports:?}");
}

#[test]
fn agent_hours_are_the_integral_of_agents_over_time() {
    // A rising and falling load, sampled every 5 s.
    let counts: Vec<f64> = (0..48).map(|i| 40.0 + 200.0 * (std::f64::consts::PI * i as f64 / 47.0).sin()).collect();
    let t = trace(&counts, 300);
    let mut c = cfg(ServiceTime::Exp(20.0));
    c.record_every = 5.0;
    for mut k in controllers(&c) {
        let r = simulate(&t, &c, k.as_mut());
        // Each point holds the mean agents paid for over the stretch
        // before it: their sum is the integral up to the last point, and
        // the run ends within one stretch after it.
        let integral: f64 = r.series.iter().skip(1).map(|p| p.agents * c.record_every).sum();
        let hours = integral / 3600.0;
        let last = r.series.last().map_or(0.0, |p| p.agents);
        let tail = (last + 1.0) * c.record_every / 3600.0;
        assert!(
            r.agent_hours >= hours - 1e-9 && r.agent_hours <= hours + tail,
            "{}: {} agent-hours reported, {hours} integrated",
            r.policy,
            r.agent_hours
        );
        assert!(r.scale_actions > 0, "{}: the load moved, the fleet should have", r.policy);
    }
}

#[test]
fn no_policy_beats_the_oracle_at_equal_sla() {
    let t = nasa(3, 2, 25.0, 30.0);
    let c = cfg(ServiceTime::Exp(30.0));
    let oracle = sim::oracle(&t, &c, 30.0, &mut |_| {});
    assert!(oracle.sla_attainment > 0.999, "{oracle:?}");
    // Nothing can cost less than the work itself.
    assert!(oracle.agent_hours >= oracle.busy_agent_hours);
    for mut k in controllers(&c) {
        let r = simulate(&t, &c, k.as_mut());
        if r.sla_attainment >= oracle.sla_attainment {
            assert!(
                r.agent_hours >= oracle.agent_hours,
                "{} met the SLA for {:.4} at {:.1} agent-hours, the oracle {:.4} at {:.1}",
                r.policy,
                r.sla_attainment,
                r.agent_hours,
                oracle.sla_attainment,
                oracle.agent_hours
            );
        }
    }
}

#[test]
fn adaptive_with_a_wait_target_meets_it_cheaply_without_flapping() {
    // Four weekdays of real load, the busiest row needing 30 agents.
    let t = nasa(9, 4, 30.0, 30.0);
    let c = cfg(ServiceTime::Exp(30.0));
    let r = simulate(&t, &c, &mut steward(PolicyName::Adaptive, &c));
    let oracle = sim::oracle(&t, &c, 30.0, &mut |_| {});
    assert!(r.sla_attainment >= 0.99, "{r:?}");
    assert!(r.agent_hours <= 1.15 * oracle.agent_hours, "adaptive {:.1} h, oracle {:.1} h", r.agent_hours, oracle.agent_hours);
    assert!(r.reversals <= 4, "{} reversals in 4 days", r.reversals);
}

#[test]
fn a_trace_with_a_gap_has_no_arrivals_in_the_gap() {
    // Rows every 5 minutes, then nothing for a day, then rows again.
    let mut ts: Vec<i64> = (0..12).map(|i| BASE_MS + i * 300_000).collect();
    ts.extend((0..12).map(|i| BASE_MS + 86_400_000 + i * 300_000));
    let t = Trace::new(&ts, &[60.0; 24]).unwrap();
    assert_eq!(t.step(), 300.0);
    assert_eq!(t.interval(11), 300.0, "the row before the gap keeps the usual step");
    let c = cfg(ServiceTime::Const(1.0));
    let r = simulate(&t, &c, &mut Hpa::new(HpaConfig::hpa(5.0, 1, 10)));
    assert_eq!(r.items, 24 * 60);
    // One agent serves 1 item/5 s at once: nobody waits, in the gap or out of it.
    assert_eq!(r.sla_attainment, 1.0);
}

#[test]
fn bad_traces_are_refused_with_a_reason() {
    assert!(Trace::new(&[1], &[1.0]).unwrap_err().contains("two rows"));
    assert!(Trace::new(&[2, 1], &[1.0, 1.0]).unwrap_err().contains("increase"));
    assert!(Trace::new(&[1, 2], &[1.0, -1.0]).unwrap_err().contains("zero or more"));
    assert!(Trace::new(&[1, 2], &[1.0, f64::NAN]).is_err());
}
