//! The `adaptive` policy: size the fleet to the load, restart what stopped
//! heart-beating, requeue stale claims; confidence from the data.
//!
//! Sizing follows queue-driven autoscalers. With a measured service rate μ
//! per agent and arrival rate λ (from the journal's recent cycles), Little's
//! law gives the agents needed to keep up at a target utilization ρ, plus
//! enough to work off the backlog within `drain_time`:
//!
//! ```text
//! desired = ceil((λ + backlog / drain_time) / (μ · ρ))
//! ```
//!
//! Without a measured rate (too little history, or no completions yet) it
//! falls back to KEDA's rule, `desired = ceil((queued + in_flight) / target_per_agent)`.
//! Either way the result is bounded by `min_agents`/`max_agents` and by
//! `scale_factor` per step, and a change within `tolerance` of the current
//! count is no change, so noise causes no action.

use super::{agents_u32, Plan, Policy};
use crate::assess::{Assessment, RestartReason};
use crate::config::EngineConfig;
use crate::decision::{sort_by_priority, Action, DecisionType, Proposal};
use crate::history::{CycleSummary, History};
use crate::time::human_secs;

/// Load-proportional sizing with a tolerance band and bounds.
pub struct Adaptive;

/// Rates measured over the journal's recent cycles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Items arriving per second: the larger of the window's mean and the
    /// last interval's (quick to see a rise).
    pub arrival_per_sec: f64,
    /// Items arriving per second over the whole window.
    pub mean_arrival_per_sec: f64,
    /// Items finished (completed or dead-lettered) per second per active agent.
    pub service_per_agent_sec: f64,
    /// Past cycles the estimate rests on.
    pub cycles: usize,
    /// Seconds the estimate spans.
    pub span_secs: f64,
}

/// Estimates arrival and per-agent service rates from the last `window`
/// cycles and the current one. `None` when the data cannot support a rate:
/// too short a span, counters that went backwards (records archived), or no
/// completions by any agent.
///
/// The service rate comes from Little's law applied to the service stage:
/// items finished divided by busy agent-seconds (the number of items in
/// service, i.e. claimed, integrated over the window). Dividing by all
/// agents instead would mistake idle agents for slow ones and
/// over-provision at low load.
///
/// The arrival rate is the larger of the window's and the last interval's,
/// so a load step is seen at once (quick to add capacity); scale-downs are
/// held back by the stabilization window instead.
pub fn estimate_rates(history: &[CycleSummary], current: &CycleSummary, window: usize) -> Option<Rates> {
    let past: Vec<&CycleSummary> = history.iter().filter(|c| c.ts < current.ts).collect();
    let start = past.len().saturating_sub(window);
    let used = &past[start..];
    let first = used.first()?;
    let span_secs = (current.ts - first.ts) as f64 / 1000.0;
    if span_secs < 1.0 {
        return None;
    }
    let seen = |c: &CycleSummary| c.work_queue_size + c.in_flight + c.completed + c.failed;
    let done = |c: &CycleSummary| c.completed + c.failed;
    let arrivals = seen(current).checked_sub(seen(first))?;
    let finished = done(current).checked_sub(done(first))?;
    if finished == 0 {
        return None;
    }
    // Busy agent-seconds over the window. Snapshots only see the ends of
    // each interval, and a fleet that just grew (or shrank) was busy at the
    // larger count for most of it: take the larger end, at least half an
    // agent (items too fast to catch in flight still occupy someone), and
    // never more agents than were there.
    let mut points: Vec<&CycleSummary> = used.to_vec();
    points.push(current);
    let mut busy_secs = 0.0;
    for w in points.windows(2) {
        let dt = (w[1].ts - w[0].ts) as f64 / 1000.0;
        let agents = w[0].active_agents.max(w[1].active_agents) as f64;
        let busy = (w[0].in_flight.max(w[1].in_flight) as f64).clamp(0.5_f64.min(agents), agents.max(0.5));
        busy_secs += dt.max(0.0) * busy;
    }
    if busy_secs <= 0.0 {
        return None;
    }
    let service_per_agent_sec = finished as f64 / busy_secs;
    let mean_arrival_per_sec = arrivals as f64 / span_secs;
    let mut arrival_per_sec = mean_arrival_per_sec;
    if let Some(last) = used.last() {
        let dt = (current.ts - last.ts) as f64 / 1000.0;
        if let (true, Some(recent)) = (dt >= 1.0, seen(current).checked_sub(seen(last))) {
            arrival_per_sec = arrival_per_sec.max(recent as f64 / dt);
        }
    }
    Some(Rates { arrival_per_sec, mean_arrival_per_sec, service_per_agent_sec, cycles: used.len(), span_secs })
}

/// The summary of the current cycle, as it will be journaled.
pub fn current_summary(a: &Assessment) -> CycleSummary {
    let m = &a.metrics;
    CycleSummary {
        ts: a.taken_at,
        work_queue_size: m.work_queue_size,
        in_flight: m.in_flight,
        completed: m.completed,
        failed: m.failed,
        active_agents: m.active_agents,
        recommended_agents: None,
    }
}

/// Cycles of history that make a rate estimate fully trusted.
const TRUSTED_CYCLES: f64 = 5.0;

impl Policy for Adaptive {
    fn name(&self) -> &'static str {
        "adaptive"
    }

    fn plan(&self, a: &Assessment, history: &History, cfg: &EngineConfig) -> Plan {
        let m = &a.metrics;
        let mut out = Vec::new();
        let penalty = data_penalty(a);

        // Restarts: agents that report failure or went silent.
        if !a.restart.is_empty() {
            let ids: Vec<String> = a.restart.iter().map(|(id, _)| id.clone()).collect();
            let explicit = a.restart.iter().all(|(_, r)| *r == RestartReason::ReportsFailed);
            let why: Vec<String> = a
                .restart
                .iter()
                .take(5)
                .map(|(id, r)| match r {
                    RestartReason::ReportsFailed => format!("{id} reports failed"),
                    RestartReason::Silent(u64::MAX) => {
                        format!("{id} never reported a sign of life")
                    }
                    RestartReason::Silent(age) => format!("{id} silent for {}", human_secs(*age)),
                })
                .collect();
            let more = if ids.len() > 5 { format!(" and {} more", ids.len() - 5) } else { String::new() };
            out.push(
                Proposal::new(
                    DecisionType::Restart,
                    9,
                    (if explicit { 0.9 } else { 0.8 }) - penalty,
                    Action::Restart { agents: ids.clone() },
                    format!("Restart {} agent(s)", ids.len()),
                    format!("{}{more} (agent_ttl {}).", why.join("; "), human_secs(cfg.liveness.agent_ttl.as_secs())),
                )
                .param("agents", ids),
            );
        }

        // Stale claims go back to the queue (or to the dead letters).
        if !a.stale.is_empty() {
            let items: Vec<String> = a.stale.iter().map(|(id, _)| id.clone()).collect();
            let oldest = a.stale.iter().map(|(_, age)| *age).filter(|&x| x != u64::MAX).max().unwrap_or(0);
            out.push(
                Proposal::new(
                    DecisionType::CoordinationImprove,
                    8,
                    0.9 - penalty,
                    Action::RequeueClaims { items: items.clone() },
                    format!("Requeue {} stale claim(s)", items.len()),
                    format!(
                        "{} claim(s) are stale (claimant not active, or older than claim_ttl {}; oldest {}).",
                        items.len(),
                        human_secs(cfg.liveness.claim_ttl.as_secs()),
                        human_secs(oldest)
                    ),
                )
                .param("method", "requeue_stale")
                .param("items", items),
            );
        }

        if !a.leftover.is_empty() {
            let items = a.leftover.clone();
            out.push(
                Proposal::new(
                    DecisionType::CoordinationImprove,
                    7,
                    0.95 - penalty,
                    Action::RemoveLeftoverClaims { items: items.clone() },
                    format!("Remove {} leftover claim(s)", items.len()),
                    format!("{} claimed item(s) also have a completed record, which is authoritative.", items.len()),
                )
                .param("method", "remove_leftover_claims")
                .param("items", items),
            );
        }

        // What dead writers left: steward's own stale agent records and temp files.
        let lo = &a.leftovers;
        if !lo.agent_files.is_empty() || !lo.temp_files.is_empty() {
            out.push(
                Proposal::new(
                    DecisionType::CoordinationImprove,
                    1,
                    0.9 - penalty,
                    Action::Tidy {
                        agent_files: lo.agent_files.clone(),
                        temp_files: lo.temp_files.clone(),
                        unchanged_since: lo.unchanged_since,
                    },
                    format!("Tidy {} stale agent record(s) and {} temp file(s)", lo.agent_files.len(), lo.temp_files.len()),
                    format!(
                        "Left by writers that stopped: steward's agent records and temp files unchanged for at least {} s.",
                        (a.taken_at - lo.unchanged_since).max(0) / 1000
                    ),
                )
                .param("method", "tidy")
                .param("agent_files", lo.agent_files.clone())
                .param("temp_files", lo.temp_files.clone()),
            );
        }

        // Predicted failures become decisions (a restart already proposed
        // for the same agent is not proposed twice).
        let restarting: Vec<&String> = a.restart.iter().map(|(id, _)| id).collect();
        for p in maintenance_proposals(a, history, &a.agent_ids, cfg) {
            let already = matches!(&p.action, Action::Restart { agents } if agents.iter().all(|x| restarting.contains(&x)));
            if !already {
                out.push(p);
            }
        }

        let sizing = size_fleet(a, history, cfg);
        let current = agents_u32(m.active_agents);
        if let Some(p) = sizing.proposal(current, cfg, penalty) {
            out.push(p);
        }
        sort_by_priority(&mut out);
        Plan { proposals: out, recommended_agents: Some(sizing.desired) }
    }
}

/// Lowers confidence when the data is incomplete: a missing target, or
/// files that could not be read.
fn data_penalty(a: &Assessment) -> f64 {
    let mut p = 0.0;
    if !a.target_exists {
        p += 0.1;
    }
    if !a.warnings.is_empty() {
        p += 0.1;
    }
    p
}

/// The words of a sizing, deferred: most cycles propose nothing, and
/// formatting numbers costs more than the sizing itself.
type Basis = Box<dyn Fn() -> String>;

struct Sizing {
    desired: u32,
    raw: f64,
    /// Why, in words: written only when a decision is proposed.
    basis: Basis,
    rates: Option<Rates>,
    /// Sized for a wait target: the hysteresis is in the sizing itself,
    /// so the tolerance band does not apply.
    for_wait: bool,
}

fn size_fleet(a: &Assessment, history: &History, cfg: &EngineConfig) -> Sizing {
    let m = &a.metrics;
    let ad = &cfg.adaptive;
    let current = current_summary(a);
    let rates = estimate_rates(&history.cycles, &current, ad.rate_window as usize);
    let backlog = (m.work_queue_size + m.in_flight) as f64;
    let for_wait = !ad.max_wait.is_zero() && rates.is_some();
    let (raw, basis) = match rates {
        Some(r) if for_wait => {
            let peak = recent_peak_rate(&history.cycles, &current, ad.rate_window as usize, wait_horizons(cfg).1);
            // The service rate is a property of the work, slow to change:
            // measured over all the history there is, it is steadier than
            // over the rate window (which stays for the arrivals).
            let all = crate::history::depth(cfg).0;
            let steady =
                estimate_rates(&history.cycles, &current, all).map_or(r, |l| Rates { service_per_agent_sec: l.service_per_agent_sec, ..r });
            size_for_wait(steady, peak.max(r.mean_arrival_per_sec), m.work_queue_size as f64, agents_u32(m.active_agents), cfg)
        }
        Some(r) => {
            let drain = ad.drain_time.as_secs_f64();
            let need = (r.arrival_per_sec + m.work_queue_size as f64 / drain) / (r.service_per_agent_sec * ad.target_utilization);
            let (queued, utilization) = (m.work_queue_size, ad.target_utilization);
            let basis: Basis = Box::new(move || {
                format!(
                    "arrivals {:.3}/s and {queued} queued to clear in {drain:.0} s, at {:.3}/s per agent and {:.0}% utilization, need {need:.2} agents",
                    r.arrival_per_sec,
                    r.service_per_agent_sec,
                    utilization * 100.0
                )
            });
            (need, basis)
        }
        None if idle_window(&history.cycles, &current, ad.rate_window as usize) => {
            // Nothing arrived, nothing waits, nothing ran over a whole window:
            // the fleet can go down to its minimum.
            let cycles = history.cycles.len().min(ad.rate_window as usize);
            let basis: Basis = Box::new(move || format!("no work arrived, queued or in flight over the last {cycles} cycles"));
            (0.0, basis)
        }
        None => {
            // Without a measured service rate the backlog rule can only add
            // capacity: shrinking a fleet needs evidence of what it serves.
            let need = (backlog / ad.target_per_agent).max(f64::from(agents_u32(m.active_agents)));
            let per = ad.target_per_agent;
            let basis: Basis = Box::new(move || {
                format!(
                    "{backlog} items queued or in flight at {per} per agent need {:.2} agents (no service rate measured yet, so no scale-down)",
                    backlog / per
                )
            });
            (need, basis)
        }
    };
    // Scale up ahead of a forecast peak: capacity takes startup_time to
    // arrive. The forecast only ever raises the need, never lowers it.
    // Sizing for a wait projects the queue through the start-up itself.
    let forecast = ad.forecast && !for_wait;
    let (raw, basis) = match (rates, forecast) {
        (Some(r), true) => match forecast_need(history, &current, r, m.work_queue_size as f64, cfg) {
            Some((need, peak)) if need > raw => {
                let lead = ad.startup_time.as_secs_f64();
                let basis: Basis = Box::new(move || {
                    format!("{}; the forecast peak of {peak:.3}/s within startup_time {lead:.0} s needs {need:.2}", basis())
                });
                (need, basis)
            }
            _ => (raw, basis),
        },
        _ => (raw, basis),
    };
    // A hair below the integer still needs it; float noise above it does not.
    let mut desired = if raw.is_finite() { (raw - 1e-9).ceil().max(0.0).min(f64::from(u32::MAX)) as u32 } else { cfg.auto.max_agents };
    let active = agents_u32(m.active_agents);
    if active > 0 {
        let cap = (f64::from(active) * cfg.auto.scale_factor).ceil().min(f64::from(u32::MAX)) as u32;
        desired = desired.min(cap);
    }
    desired = desired.clamp(cfg.auto.min_agents, cfg.auto.max_agents);
    Sizing { desired, raw, basis, rates, for_wait }
}

/// The highest arrival rate of any `window` consecutive cycles that ended
/// within the last `span_secs`: what the load was at its busiest lately.
fn recent_peak_rate(history: &[CycleSummary], current: &CycleSummary, window: usize, span_secs: f64) -> f64 {
    let seen = |c: &CycleSummary| c.work_queue_size + c.in_flight + c.completed + c.failed;
    let mut cycles: Vec<&CycleSummary> = history.iter().filter(|c| c.ts < current.ts).collect();
    cycles.push(current);
    let since = current.ts - (span_secs * 1000.0) as i64;
    let window = window.max(1);
    let mut peak = 0.0f64;
    for end in (window..cycles.len()).rev() {
        let (a, b) = (cycles[end - window], cycles[end]);
        if b.ts < since {
            break;
        }
        let dt = (b.ts - a.ts) as f64 / 1000.0;
        if let (true, Some(d)) = (dt >= 1.0, seen(b).checked_sub(seen(a))) {
            peak = peak.max(d as f64 / dt);
        }
    }
    peak
}

/// The share of `max_wait` the sizing plans for when it sizes the fleet;
/// the rest is margin for what the estimates miss (a burst inside a
/// cycle, slow items).
const WAIT_PLAN_SHARE: f64 = 0.5;

/// The share of `max_wait` the projected wait may reach before the
/// current size no longer holds. Between the two shares the fleet keeps
/// its size: the band that stops it from flapping.
const WAIT_HOLD_SHARE: f64 = 0.85;

/// The horizons of sizing for a wait: until a change takes effect
/// (`startup_time` and two cycles), and how long a new size must hold
/// (twice `scale_down_window`, so a scale-down is not undone inside the
/// window that guards against flapping).
fn wait_horizons(cfg: &EngineConfig) -> (f64, f64) {
    let short = cfg.adaptive.startup_time.as_secs_f64() + 2.0 * cfg.auto.interval.as_secs_f64();
    (short, (2.0 * cfg.auto.scale_down_window.as_secs_f64()).max(short))
}

/// Sizing for a wait target (`adaptive.max_wait`).
///
/// The queue carries the load between two fleet sizes: with a load of 6.5
/// agents' worth, the fleet runs 6 while the queue grows and 7 while it
/// shrinks, and every agent is busy all the time. With the queue `q`, the
/// arrival rate λ and the service rate μ per agent, `n` agents *fit* a
/// wait `w` over a horizon when the projected queue stays within what
/// they serve in `w` (`n·μ·w`); agents added now serve only after
/// `startup_time`, agents removed leave at once. Then:
/// - the current size *holds* while it fits 85 % of `max_wait` until a
///   change could take effect (see [`wait_horizons`]); then the fleet
///   goes down to the fewest agents that fit half of `max_wait` for twice
///   `scale_down_window` at the highest arrival rate of that long lately
///   (a scale-down that would have to be undone soon is not made);
/// - when it does not hold, the fleet goes up to the fewest agents that
///   hold and fit half of `max_wait` for that long at the current rate.
///
/// The two shares make a band in which the size does not change: what
/// keeps the fleet from flapping on noise.
fn size_for_wait(r: Rates, peak_rate: f64, queue: f64, current: u32, cfg: &EngineConfig) -> (f64, Basis) {
    let ad = &cfg.adaptive;
    let mu = r.service_per_agent_sec;
    let wait = ad.max_wait.as_secs_f64() * WAIT_PLAN_SHARE;
    let startup = ad.startup_time.as_secs_f64();
    let (short, long) = wait_horizons(cfg);
    let c = f64::from(current);
    // The largest the queue gets over `horizon` with `n` agents from now on.
    let peak = |n: f64, lambda: f64, horizon: f64| -> f64 {
        let first = if n > c { startup.min(horizon) } else { 0.0 };
        let q1 = (queue + (lambda - c * mu) * first).max(0.0);
        let q2 = (q1 + (lambda - n * mu) * (horizon - first)).max(0.0);
        // A smaller fleet must serve the queue as it is now; the current
        // one or a larger one needs only to bring it back in time.
        if n < c {
            q2.max(queue)
        } else {
            q2
        }
    };
    let fits_at = |n: u32, lambda: f64, horizon: f64, wait: f64| {
        let n = f64::from(n);
        if n == 0.0 {
            return lambda <= 0.0 && queue <= 0.0;
        }
        peak(n, lambda, horizon) <= n * mu * wait
    };
    let fits = |n: u32, lambda: f64, horizon: f64| fits_at(n, lambda, horizon, wait);
    let (lo, hi) = (cfg.auto.min_agents, cfg.auto.max_agents.max(cfg.auto.min_agents));
    let fewest = |from: u32, to: u32, ok: &dyn Fn(u32) -> bool| (from..=to).find(|&n| ok(n));
    let lambda = r.mean_arrival_per_sec;
    let hold_wait = ad.max_wait.as_secs_f64() * WAIT_HOLD_SHARE;
    let holds = fits_at(current, lambda, short, hold_wait);
    let desired = if holds {
        // Down only as far as the recent peak rate allows for the long horizon.
        fewest(lo, current, &|n| fits(n, peak_rate, long)).unwrap_or(current)
    } else {
        fewest(current.saturating_add(1).max(lo), hi, &|n| fits_at(n, lambda, short, hold_wait) && fits(n, lambda, long)).unwrap_or(hi)
    };
    let max_wait = ad.max_wait.as_secs_f64();
    let basis: Basis = Box::new(move || {
        if holds {
            format!(
                "{queue} queued, arrivals {lambda:.3}/s (at most {peak_rate:.3}/s lately), {mu:.3}/s per agent: {current} agents keep the \
                 wait under {hold_wait:.0} s; {desired} would keep it under {wait:.0} s for {long:.0} s even at the recent peak"
            )
        } else {
            format!(
                "{queue} queued, arrivals {lambda:.3}/s, {mu:.3}/s per agent: {current} agents would let the wait pass {hold_wait:.0} s \
                 (of max_wait {max_wait:.0} s) before a change could take effect; {desired} bring it back under {wait:.0} s"
            )
        }
    });
    (f64::from(desired), basis)
}

/// The agents a forecast peak of arrivals within `startup_time` needs,
/// with that peak; `None` without enough history for a forecast.
fn forecast_need(history: &History, current: &CycleSummary, r: Rates, queue: f64, cfg: &EngineConfig) -> Option<(f64, f64)> {
    let mut cycles: Vec<CycleSummary> = history.cycles.iter().filter(|c| c.ts < current.ts).cloned().collect();
    cycles.push(current.clone());
    let series = crate::predict::forecast::arrival_rates(&cycles);
    let lead = i64::try_from(cfg.adaptive.startup_time.as_millis()).unwrap_or(i64::MAX);
    let peak = crate::predict::forecast::peak_within(&series.ts, &series.values, lead)?;
    if !(peak.value.is_finite() && peak.value > r.arrival_per_sec) {
        return None;
    }
    let drain = cfg.adaptive.drain_time.as_secs_f64();
    let need = (peak.value + queue / drain) / (r.service_per_agent_sec * cfg.adaptive.target_utilization);
    Some((need, peak.value))
}

/// Decisions for predicted failures: the first concrete recommendation of
/// each prediction that will fail within the horizon, with the
/// prediction's confidence. Restarts of known agents are real actions;
/// the rest (drain, add capacity, investigate) are advice for a human.
pub fn maintenance_proposals(a: &Assessment, history: &History, agents: &[String], cfg: &EngineConfig) -> Vec<Proposal> {
    use crate::predict::maintenance::{self, MaintenanceAction, MetricSample, Urgency};
    if !cfg.predict.act || history.samples.is_empty() {
        return Vec::new();
    }
    let since = a.taken_at - i64::try_from(cfg.predict.window.as_millis()).unwrap_or(i64::MAX);
    let samples: Vec<MetricSample> = history
        .samples
        .iter()
        .filter(|s| s.ts >= since && s.ts <= a.taken_at)
        .map(|s| MetricSample { ts: s.ts, component: s.component.clone(), metric: s.metric.clone(), value: s.value })
        .collect();
    let mut out = Vec::new();
    for p in maintenance::predict(&samples, &cfg.predict.maintenance()) {
        if !p.will_fail {
            continue;
        }
        let Some(rec) = p.recommendations.iter().find(|r| r.action != MaintenanceAction::Investigate).or(p.recommendations.first()) else {
            continue;
        };
        let priority = match rec.urgency {
            Urgency::Critical => 9,
            Urgency::High => 7,
            Urgency::Medium => 5,
            Urgency::Low => 3,
        };
        let ttf = p.time_to_failure_hours.unwrap_or(0.0);
        let rationale = format!("{} (trend over {} readings, R² {:.2}).", rec.reason.trim_end_matches('.'), p.points, p.r2.unwrap_or(0.0));
        let proposal = match rec.action {
            MaintenanceAction::Restart if agents.contains(&p.component) => Proposal::new(
                DecisionType::Restart,
                priority,
                p.confidence,
                Action::Restart { agents: vec![p.component.clone()] },
                format!("Restart {} before {} reaches {}", p.component, p.metric, p.limit),
                rationale,
            ),
            action => {
                let name = match action {
                    MaintenanceAction::Restart => "restart",
                    MaintenanceAction::Drain => "drain",
                    MaintenanceAction::AddCapacity => "add_capacity",
                    MaintenanceAction::Investigate => "investigate",
                };
                Proposal::new(
                    DecisionType::Custom(format!("predict_{name}")),
                    priority,
                    p.confidence,
                    Action::Advisory { note: rec.reason.clone() },
                    format!("{} {} ({} predicted to reach {} in {ttf:.1} h)", capitalize(name), p.component, p.metric, p.limit),
                    rationale,
                )
            }
        };
        out.push(
            proposal
                .param("component", p.component.clone())
                .param("metric", p.metric.clone())
                .param("time_to_failure_hours", (ttf * 10.0).round() / 10.0),
        );
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.replace('_', " ");
    if let Some(first) = c.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    c
}

/// Whether the last `window` cycles and the current one saw no work at all.
fn idle_window(history: &[CycleSummary], current: &CycleSummary, window: usize) -> bool {
    let past: Vec<&CycleSummary> = history.iter().filter(|c| c.ts < current.ts).collect();
    let used = &past[past.len().saturating_sub(window)..];
    let idle = |c: &CycleSummary| c.work_queue_size == 0 && c.in_flight == 0;
    let total = |c: &CycleSummary| c.work_queue_size + c.in_flight + c.completed + c.failed;
    !used.is_empty() && used.iter().all(|c| idle(c)) && idle(current) && used.first().is_some_and(|f| total(f) == total(current))
}

impl Sizing {
    fn proposal(&self, current: u32, cfg: &EngineConfig, penalty: f64) -> Option<Proposal> {
        let tol = cfg.adaptive.tolerance;
        if self.desired == current {
            return None;
        }
        let margin = if current == 0 || self.for_wait {
            1.0
        } else {
            let ratio = f64::from(self.desired) / f64::from(current);
            let off = (ratio - 1.0).abs();
            if off <= tol {
                return None;
            }
            ((off - tol) / 0.5).clamp(0.0, 1.0)
        };
        let data = self.rates.map_or(0.0, |r| (r.cycles as f64 / TRUSTED_CYCLES).min(1.0));
        let confidence = (0.55 + 0.25 * data + 0.15 * margin - penalty).clamp(0.0, 1.0);
        let up = self.desired > current;
        let basis = match self.rates {
            Some(r) => format!("{} (rates from {} cycles over {:.0} s)", (self.basis)(), r.cycles, r.span_secs),
            None => (self.basis)(),
        };
        let bounded = if (self.raw - f64::from(self.desired)).abs() >= 1.0 {
            format!(", bounded to {} by min/max agents and scale_factor", self.desired)
        } else {
            String::new()
        };
        let rationale = format!("{basis}{bounded}; {current} active now.");
        let (kind, priority) = if up { (DecisionType::ScaleUp, 6) } else { (DecisionType::ScaleDown, 3) };
        let mut p = Proposal::scale(kind, priority, confidence, current, self.desired, rationale)
            .param("desired_raw", (self.raw * 100.0).round() / 100.0);
        if let Some(r) = self.rates {
            p = p.param("arrival_per_sec", r.arrival_per_sec).param("service_per_agent_sec", r.service_per_agent_sec);
        }
        Some(p)
    }
}
