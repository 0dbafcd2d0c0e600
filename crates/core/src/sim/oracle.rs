//! The oracle: the fewest agents that meet the SLA, knowing the whole
//! trace and every item's service time in advance.
//!
//! At each decision it looks at the world as it is (the queue, and when
//! each agent will next be free) and at the arrivals still to come, and
//! keeps the fewest agents that, held for the next `horizon`, start every
//! item by its deadline (arrival + SLA): work is put off as long as the
//! SLA allows, so agents are busy whenever they are paid for, and the
//! queue carries the load between two fleet sizes (holding a size for a
//! horizon keeps the fleet from changing every period, which would pay a
//! start-up each time). Agents it adds serve after `startup`, as anyone's.
//! Deadlines no fleet could meet any more (work already too late) do not
//! count against a size.
//!
//! Two horizons are tried, and the cheapest run that meets the SLA best
//! is the oracle's (see [`best`]). It is a heuristic, not a proof of
//! optimality: the test suite checks that no policy beats it at equal SLA.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::engine::{items, simulate_with_progress, stop_order, Controller, Observation, OrdF64, Report, SimConfig, Trace};

/// The oracle as a controller.
#[derive(Debug, Clone)]
pub struct Oracle {
    period: f64,
    horizon: f64,
    startup: f64,
    sla: f64,
    min: u32,
    max: u32,
    arrivals: Vec<f64>,
    service: Vec<f64>,
}

impl Oracle {
    /// The oracle for `trace` under `cfg`, deciding every `period`
    /// seconds, holding a size for `horizon` seconds.
    pub fn new(trace: &Trace, cfg: &SimConfig, period: f64, horizon: f64) -> Self {
        let (arrivals, service) = items(trace, cfg);
        Self {
            period: period.max(1.0),
            horizon: horizon.max(period),
            startup: cfg.startup,
            sla: cfg.sla,
            min: cfg.min_agents,
            max: cfg.max_agents.max(cfg.min_agents),
            arrivals,
            service,
        }
    }

    /// Deadlines in `[now, now + horizon)` missed with `n` agents from now
    /// on (counting stops past `limit`).
    fn misses(&self, n: u32, now: f64, free_at: &[f64], head: usize, limit: usize) -> usize {
        let end = now + self.horizon;
        let mut free: Vec<f64> = free_at.to_vec();
        let n = n as usize;
        if free.len() > n {
            free.sort_by(|a, b| stop_order(*a, *b, now));
            free.drain(..free.len() - n);
        }
        while free.len() < n {
            free.push(now + self.startup);
        }
        let mut heap: BinaryHeap<Reverse<OrdF64>> = free.into_iter().map(|t| Reverse(OrdF64(t))).collect();
        let mut head = head;
        let mut missed = 0;
        while let (Some(&Reverse(OrdF64(f))), Some(&a)) = (heap.peek(), self.arrivals.get(head)) {
            let at = f.max(a);
            if at >= end {
                break;
            }
            if at - a > self.sla + 1e-9 {
                missed += 1;
                if missed > limit {
                    return missed;
                }
            }
            heap.pop();
            heap.push(Reverse(OrdF64(at + self.service[head])));
            head += 1;
        }
        // Items still waiting whose deadline falls inside the horizon.
        let due = self.arrivals.partition_point(|&a| a + self.sla < end);
        missed + due.saturating_sub(head)
    }
}

impl Controller for Oracle {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn period(&self) -> f64 {
        self.period
    }

    fn decide(&mut self, obs: &Observation<'_>) -> Option<u32> {
        let head = usize::try_from(obs.arrived.saturating_sub(obs.queued)).unwrap_or(usize::MAX);
        let (now, free) = (obs.now, obs.free_at);
        let current = obs.provisioned.clamp(self.min, self.max);
        // What no size can help (work already too late): computed only
        // when some deadline is missed at all.
        let floor = std::cell::OnceCell::new();
        let fits = |n: u32| {
            let m = self.misses(n, now, free, head, 0);
            m == 0 || {
                let floor = *floor.get_or_init(|| self.misses(self.max, now, free, head, usize::MAX));
                self.misses(n, now, free, head, floor) <= floor
            }
        };
        // The fewest that fit (more agents never start an item later).
        let (mut bad, mut good) = if fits(current) {
            if current == self.min || !fits(current - 1) {
                return Some(current);
            }
            (self.min, current - 1)
        } else {
            (current, self.max)
        };
        if bad == self.min && fits(bad) {
            return Some(bad);
        }
        while good - bad > 1 {
            let mid = bad + (good - bad) / 2;
            if fits(mid) {
                good = mid;
            } else {
                bad = mid;
            }
        }
        Some(good)
    }
}

/// The oracle's run: the cheapest of a few horizons that meets the SLA
/// best (the oracle knows the trace, so it may pick its own setting).
pub fn best(trace: &Trace, cfg: &SimConfig, period: f64, progress: &mut dyn FnMut(f64)) -> Report {
    // Holding a size for ten minutes or half an hour (longer when agents
    // take long to start): one or the other is cheapest on every load
    // tried; shorter horizons pay a start-up too often, and miss deadlines
    // they cannot see coming.
    let unit = cfg.startup.max(300.0);
    let horizons = [2.0 * unit, 6.0 * unit];
    let mut best: Option<Report> = None;
    for (i, h) in horizons.iter().enumerate() {
        let mut o = Oracle::new(trace, cfg, period, *h);
        let r = simulate_with_progress(trace, cfg, &mut o, &mut |x| progress((i as f64 + x) / horizons.len() as f64));
        let better = match &best {
            None => true,
            Some(b) => (r.sla_attainment, -r.agent_hours) > (b.sla_attainment, -b.agent_hours),
        };
        if better {
            best = Some(r);
        }
    }
    best.unwrap_or_else(|| simulate_with_progress(trace, cfg, &mut Oracle::new(trace, cfg, period, period), &mut |_| {}))
}
