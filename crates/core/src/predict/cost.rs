//! Cost strategies (`steward cost`): from the load (measured and
//! forecast), the service time and the prices, the monthly cost of ways to
//! run the fleet, each checked against the SLA and the budget, each with its
//! arithmetic.
//!
//! The SLA is the 95th percentile of the queue wait (arrival to start of
//! work) in an M/M/c model: `P(wait > t) = C(c, λ/μ)·e^{−(cμ−λ)t}` (Erlang C).
//! The fewest agents meeting it at a rate are found by counting up from
//! `ceil(λ/μ)`. A month is [`HOURS_PER_MONTH`] hours.

use serde::Serialize;

use super::tune::wait_quantile;

/// Hours in an average month (8766 / 12).
pub const HOURS_PER_MONTH: f64 = 730.5;
/// No strategy considers more agents than this.
const MAX_AGENTS: u32 = 100_000;

/// Prices per agent-hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    /// An on-demand agent-hour.
    pub on_demand: f64,
    /// A spot (interruptible) agent-hour.
    pub spot: f64,
    /// An idle (suspended, not working) agent-hour.
    pub idle: f64,
}

/// The load over one representative period (e.g. the next day).
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Arrival rate per point, items per second (the forecast mean).
    pub rate: Vec<f64>,
    /// The upper bound of the forecast per point (sizing uses it).
    pub upper: Vec<f64>,
}

/// What the strategies are computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct CostInput {
    /// The load profile.
    pub load: Load,
    /// Mean service time per item, seconds.
    pub service_secs: f64,
    /// Agents running now on average (the journal's mean active agents).
    pub current_agents: f64,
    /// The monthly budget.
    pub budget_per_month: f64,
    /// The SLA: 95th percentile of the queue wait, milliseconds.
    pub sla_ms: f64,
    /// Prices.
    pub prices: Prices,
}

/// One way to run the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Strategy {
    /// Short name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Monthly cost.
    pub monthly_cost: f64,
    /// Savings per month against the current fleet (negative = costs more).
    pub savings_per_month: f64,
    /// Whether the SLA holds at every point of the load profile.
    pub meets_sla: bool,
    /// Whether the cost is within the budget.
    pub within_budget: bool,
    /// The arithmetic, step by step.
    pub arithmetic: Vec<String>,
}

/// The fewest agents whose p95 queue wait at `rate` is within `sla_secs`.
pub fn agents_for(rate: f64, service_secs: f64, sla_secs: f64) -> Option<u32> {
    if rate <= 0.0 {
        return Some(0);
    }
    let mu = 1.0 / service_secs;
    let mut c = ((rate / mu).floor() as u32).saturating_add(1).max(1);
    while c <= MAX_AGENTS {
        if wait_quantile(rate, mu, c, 0.95).is_some_and(|w| w <= sla_secs) {
            return Some(c);
        }
        c += 1;
    }
    None
}

/// The strategies, cheapest first among those meeting the SLA, then the rest.
pub fn strategies(input: &CostInput) -> Vec<Strategy> {
    let p = input.prices;
    let sla_s = input.sla_ms / 1000.0;
    let od_month = p.on_demand * HOURS_PER_MONTH;
    let current_cost = input.current_agents * od_month;
    let needed: Vec<Option<u32>> = input.load.upper.iter().map(|&r| agents_for(r.max(0.0), input.service_secs, sla_s)).collect();
    let feasible = needed.iter().all(Option::is_some);
    let needed: Vec<u32> = needed.into_iter().map(|n| n.unwrap_or(MAX_AGENTS)).collect();
    let peak = needed.iter().copied().max().unwrap_or(0);
    let floor = needed.iter().copied().min().unwrap_or(0);
    let mean_needed = if needed.is_empty() { 0.0 } else { needed.iter().map(|&n| f64::from(n)).sum::<f64>() / needed.len() as f64 };
    let peak_rate = input.load.upper.iter().copied().fold(0.0, f64::max);
    let make = |name: &str, description: String, cost: f64, meets: bool, arithmetic: Vec<String>| Strategy {
        name: name.to_owned(),
        description,
        monthly_cost: cost,
        savings_per_month: current_cost - cost,
        meets_sla: meets && feasible,
        within_budget: cost <= input.budget_per_month,
        arithmetic,
    };
    let mut out = Vec::new();
    // The current fleet, for reference: does it meet the SLA at the peak?
    let current_meets = f64::from(peak) <= input.current_agents;
    out.push(make(
        "current",
        format!("keep {:.1} on-demand agents around the clock", input.current_agents),
        current_cost,
        current_meets,
        vec![format!("{:.2} agents × {:.4}/agent-hour × {HOURS_PER_MONTH} h = {current_cost:.2}", input.current_agents, p.on_demand)],
    ));
    let static_cost = f64::from(peak) * od_month;
    out.push(make(
        "right_size",
        format!("a fixed fleet of {peak} on-demand agents, the fewest that meet the SLA at the forecast peak"),
        static_cost,
        true,
        vec![
            format!(
                "peak rate (upper bound) {peak_rate:.4}/s, service {:.3} s: the fewest agents with p95 wait ≤ {:.0} ms = {peak}",
                input.service_secs, input.sla_ms
            ),
            format!("{peak} × {:.4} × {HOURS_PER_MONTH} h = {static_cost:.2}", p.on_demand),
        ],
    ));
    let follow_cost = mean_needed * od_month;
    out.push(make(
        "follow_forecast",
        "scale on-demand agents to the forecast, point by point, ahead of each rise by the start-up time".to_owned(),
        follow_cost,
        true,
        vec![
            format!("agents needed per point range {floor}..{peak}, mean {mean_needed:.2} over {} points", needed.len()),
            format!("{mean_needed:.2} × {:.4} × {HOURS_PER_MONTH} h = {follow_cost:.2}", p.on_demand),
        ],
    ));
    if p.spot < p.on_demand && peak > floor {
        // The floor stays on demand; the part above it runs on spot, with one
        // on-demand spare to cover an interrupted spot agent while it is replaced.
        let variable = mean_needed - f64::from(floor);
        let spare = 1.0;
        let cost = (f64::from(floor) + spare) * od_month + variable * p.spot * HOURS_PER_MONTH;
        out.push(make(
            "follow_forecast_spot",
            format!("{floor} on-demand agents plus 1 on-demand spare, the varying part on spot"),
            cost,
            true,
            vec![
                format!(
                    "on demand: ({floor} + {spare} spare) × {:.4} × {HOURS_PER_MONTH} h = {:.2}",
                    p.on_demand,
                    (f64::from(floor) + spare) * od_month
                ),
                format!(
                    "spot: mean {variable:.2} agents above the floor × {:.4} × {HOURS_PER_MONTH} h = {:.2}",
                    p.spot,
                    variable * p.spot * HOURS_PER_MONTH
                ),
                format!("total {cost:.2}"),
            ],
        ));
    }
    let quiet = needed.iter().filter(|&&n| n == 0).count();
    if quiet > 0 && p.idle < p.on_demand && !needed.is_empty() {
        // Agents that follow_forecast stops are kept suspended (idle) so the
        // first item after a quiet spell does not wait for a cold start.
        let share = quiet as f64 / needed.len() as f64;
        let cost = follow_cost + share * p.idle * HOURS_PER_MONTH;
        out.push(make(
            "idle_when_quiet",
            "follow the forecast, and keep one agent suspended instead of none when no load is expected".to_owned(),
            cost,
            true,
            vec![
                format!("{quiet} of {} points expect no load: {:.1} % of the month", needed.len(), share * 100.0),
                format!("{follow_cost:.2} + {share:.3} × {:.4} × {HOURS_PER_MONTH} h = {cost:.2}", p.idle),
            ],
        ));
    }
    out.sort_by(|a, b| b.meets_sla.cmp(&a.meets_sla).then(a.monthly_cost.total_cmp(&b.monthly_cost)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rate: Vec<f64>) -> CostInput {
        CostInput {
            load: Load { upper: rate.clone(), rate },
            service_secs: 1.0,
            current_agents: 20.0,
            budget_per_month: 1000.0,
            sla_ms: 500.0,
            prices: Prices { on_demand: 0.10, spot: 0.03, idle: 0.01 },
        }
    }

    #[test]
    fn following_a_daily_load_is_cheaper_than_a_fixed_fleet() {
        let rate: Vec<f64> = (0..24).map(|h| if (9..18).contains(&h) { 8.0 } else { 1.0 }).collect();
        let s = strategies(&input(rate));
        let get = |n: &str| s.iter().find(|x| x.name == n).unwrap();
        assert!(get("follow_forecast").monthly_cost < get("right_size").monthly_cost);
        assert!(get("follow_forecast_spot").monthly_cost < get("follow_forecast").monthly_cost);
        assert!(s.iter().all(|x| !x.arithmetic.is_empty()));
        assert!(s[0].meets_sla && s[0].savings_per_month > 0.0);
    }

    #[test]
    fn sla_sizing_counts_up() {
        // 8 items/s of 1 s each need more than 8 agents for a short wait.
        let n = agents_for(8.0, 1.0, 0.5).unwrap();
        assert!(n > 8 && n < 16, "{n}");
        assert_eq!(agents_for(0.0, 1.0, 0.5), Some(0));
    }
}
