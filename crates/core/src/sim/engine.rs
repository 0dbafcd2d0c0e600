//! The discrete-event engine: arrivals, a FIFO queue, agents that start,
//! serve and stop, a controller on a period, and the accounting.

use std::collections::{BinaryHeap, VecDeque};

use serde::Serialize;

use super::dist::{Rng, ServiceTime};

/// Arrivals: each row's count spread evenly over its interval.
///
/// A row's interval is the time to the next row, but never more than the
/// trace's usual step (the median): a gap in the data (rows missing for
/// days) is a stretch without arrivals, not one row's count smeared over
/// the gap.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    ts: Vec<f64>,
    counts: Vec<f64>,
    step: f64,
}

impl Trace {
    /// A trace from row times in Unix milliseconds and counts.
    ///
    /// # Errors
    /// Fewer than two rows, times that do not increase, or a count that is
    /// negative or not finite.
    pub fn new(ts_ms: &[i64], counts: &[f64]) -> Result<Self, String> {
        if ts_ms.len() < 2 || ts_ms.len() != counts.len() {
            return Err("a trace needs at least two rows".into());
        }
        if let Some(w) = ts_ms.windows(2).find(|w| w[1] <= w[0]) {
            return Err(format!("trace timestamps must increase ({} ms is followed by {} ms)", w[0], w[1]));
        }
        if let Some(c) = counts.iter().find(|c| !(c.is_finite() && **c >= 0.0)) {
            return Err(format!("a trace count must be a number of arrivals, zero or more (found {c})"));
        }
        let t0 = ts_ms[0];
        let ts: Vec<f64> = ts_ms.iter().map(|t| (t - t0) as f64 / 1000.0).collect();
        let mut steps: Vec<f64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
        let mid = steps.len() / 2;
        let (_, step, _) = steps.select_nth_unstable_by(mid, f64::total_cmp);
        let step = *step;
        Ok(Self { ts, counts: counts.to_vec(), step })
    }

    /// Row times, in seconds from the first row.
    pub fn times(&self) -> &[f64] {
        &self.ts
    }

    /// Arrivals of each row.
    pub fn counts(&self) -> &[f64] {
        &self.counts
    }

    /// The usual time between rows (the median), in seconds.
    pub fn step(&self) -> f64 {
        self.step
    }

    /// Row `i`'s interval: to the next row, at most the usual step.
    pub fn interval(&self, i: usize) -> f64 {
        match (self.ts.get(i), self.ts.get(i + 1)) {
            (Some(a), Some(b)) => (b - a).min(self.step),
            _ => self.step,
        }
    }

    /// Where the trace ends (the end of its last row's interval).
    pub fn end(&self) -> f64 {
        self.ts.last().copied().unwrap_or(0.0) + self.step
    }

    /// The highest arrival rate of any row, per second.
    pub fn peak_rate(&self) -> f64 {
        (0..self.ts.len()).map(|i| self.counts[i] / self.interval(i)).fold(0.0, f64::max)
    }

    /// Total arrivals.
    pub fn total(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// The same trace with every count multiplied by `factor`.
    #[must_use]
    pub fn scaled(&self, factor: f64) -> Self {
        Self { ts: self.ts.clone(), counts: self.counts.iter().map(|c| c * factor).collect(), step: self.step }
    }
}

/// How the world behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Service times.
    pub service: ServiceTime,
    /// Seconds from asking for an agent to its first item.
    pub startup: f64,
    /// The wait (arrival to start of service) an item may have, in seconds.
    pub sla: f64,
    /// The fewest agents the controller may keep.
    pub min_agents: u32,
    /// The most agents the controller may keep.
    pub max_agents: u32,
    /// Agents ready at the start.
    pub initial_agents: u32,
    /// Seed of the service times.
    pub seed: u64,
    /// Seconds between the points of the reported time series.
    pub record_every: f64,
    /// A scale action opposite to the previous one within this many
    /// seconds is a reversal (flapping): the stabilization window.
    pub reversal_window: f64,
}

/// What a controller sees when it is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation<'a> {
    /// Seconds from the start of the trace.
    pub now: f64,
    /// Items waiting.
    pub queued: u64,
    /// Items being served, with when each started.
    pub in_service: &'a [f64],
    /// Items served so far.
    pub completed: u64,
    /// Items arrived so far.
    pub arrived: u64,
    /// Agents serving or ready to (started, not asked to stop).
    pub ready: u32,
    /// Agents asked for and not asked to stop (ready or starting).
    pub provisioned: u32,
    /// For each of those agents, when it can take its next item: now if
    /// idle, the end of its item if busy, the end of its start-up if
    /// starting. No real controller knows when an item will end: only the
    /// oracle, which knows the future by definition, looks at this.
    pub free_at: &'a [f64],
}

/// A controller: asked every `period` seconds, it says how many agents it wants.
pub trait Controller {
    /// Its name, for the report.
    fn name(&self) -> String;
    /// Seconds between its decisions.
    fn period(&self) -> f64;
    /// The agents it wants now (`None`: no change).
    fn decide(&mut self, obs: &Observation<'_>) -> Option<u32>;
}

/// One point of the reported time series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Seconds from the start: the end of the stretch the point sums up.
    pub t: f64,
    /// Arrivals per second in the stretch.
    pub arrival_rate: f64,
    /// Agents paid for, on average over the stretch.
    pub agents: f64,
    /// Items waiting at `t`.
    pub backlog: u64,
    /// The longest wait of an item that started service in this stretch, in seconds.
    pub max_wait: f64,
}

/// What a simulation measured (the spec's `simulate` JSON, plus the series).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The controller.
    pub policy: String,
    /// Items that arrived.
    pub items: u64,
    /// Items served.
    pub completed: u64,
    /// Items not served when the run ended (a fleet too small for the
    /// load leaves work a day after the trace ends; they missed the SLA).
    pub unfinished: u64,
    /// Share of items whose wait was at most the SLA.
    pub sla_attainment: f64,
    /// The 95th percentile of the wait, in seconds.
    pub p95_wait_s: f64,
    /// Agents paid for, integrated over time, in hours.
    pub agent_hours: f64,
    /// Of the agent-hours, those spent serving items.
    pub busy_agent_hours: f64,
    /// Of the agent-hours, those spent starting (paid, not yet serving).
    pub starting_agent_hours: f64,
    /// Changes of the fleet's size the controller asked for.
    pub scale_actions: u64,
    /// Scale actions in the opposite direction of the previous one within
    /// the reversal window (flapping).
    pub reversals: u64,
    /// The longest the queue got.
    pub max_backlog: u64,
    /// The time series, for plots.
    #[serde(skip)]
    pub series: Vec<Point>,
    /// Every scale action: when, from how many agents, to how many.
    #[serde(skip)]
    pub actions: Vec<(f64, u32, u32)>,
}

/// The item arrival times of a trace (each row's count spread evenly over
/// its interval, fractions carried to the next row), and their service
/// times, drawn once so every controller sees the same items.
pub(crate) fn items(trace: &Trace, cfg: &SimConfig) -> (Vec<f64>, Vec<f64>) {
    let mut arrivals = Vec::with_capacity(trace.total().min(1e8) as usize);
    let mut owed = 0.0;
    for i in 0..trace.ts.len() {
        owed += trace.counts[i];
        let n = owed.floor();
        owed -= n;
        let (start, span) = (trace.ts[i], trace.interval(i));
        let n = n as u64;
        for k in 0..n {
            arrivals.push(start + span * (k as f64 + 0.5) / n as f64);
        }
    }
    let mut rng = Rng::new(cfg.seed);
    // Capped at 50 means: a heavier tail only adds noise to a comparison.
    let cap = 50.0 * cfg.service.mean();
    let service = arrivals.iter().map(|_| cfg.service.sample(&mut rng).min(cap)).collect();
    (arrivals, service)
}

/// An agent.
#[derive(Debug, Clone, Copy)]
struct Agent {
    /// When it can serve.
    ready_at: f64,
    /// The item it serves ends then (`None`: idle).
    busy_until: Option<f64>,
    /// When its item started.
    busy_since: f64,
    /// Asked to stop: it leaves when idle.
    stopping: bool,
}

/// Runs `controller` over `trace`. The run ends when the trace has ended
/// and every item is served (at the latest a day after the trace).
pub fn simulate(trace: &Trace, cfg: &SimConfig, controller: &mut dyn Controller) -> Report {
    simulate_with_progress(trace, cfg, controller, &mut |_| {})
}

/// [`simulate`], reporting the share of the trace done (0 to 1) as it goes.
pub fn simulate_with_progress(trace: &Trace, cfg: &SimConfig, controller: &mut dyn Controller, progress: &mut dyn FnMut(f64)) -> Report {
    let (arrivals, service) = items(trace, cfg);
    let mut events = 0u32;
    let period = controller.period().max(0.001);
    let mut agents: Vec<Agent> =
        (0..cfg.initial_agents).map(|_| Agent { ready_at: 0.0, busy_until: None, busy_since: 0.0, stopping: false }).collect();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut waits: Vec<f64> = Vec::with_capacity(arrivals.len());
    let (mut next_arrival, mut completed) = (0usize, 0u64);
    let mut agent_secs = 0.0;
    let (mut busy_secs, mut starting_secs) = (0.0, 0.0);
    let mut last_t = 0.0;
    let mut next_tick = 0.0;
    let mut next_point = 0.0;
    let (mut scale_actions, mut reversals, mut max_backlog) = (0u64, 0u64, 0u64);
    let mut last_direction: Option<(bool, f64)> = None;
    let mut series = Vec::new();
    let mut actions = Vec::new();
    let mut point_max_wait = 0.0f64;
    let mut point_arrivals = 0u64;
    let mut point_agent_secs = 0.0;
    let end_of_trace = trace.end();
    let hard_end = end_of_trace + 86_400.0;
    // Busy agents by the time they finish (a min-heap of negated times).
    let mut finishing: BinaryHeap<(std::cmp::Reverse<OrdF64>, usize)> = BinaryHeap::new();
    let mut in_service: Vec<f64> = Vec::new();
    let mut free_at: Vec<f64> = Vec::new();
    loop {
        // The next event: an arrival, a completion, an agent ready, a tick, a point.
        let t_arrival = arrivals.get(next_arrival).copied().unwrap_or(f64::INFINITY);
        let t_done = finishing.peek().map_or(f64::INFINITY, |(std::cmp::Reverse(OrdF64(t)), _)| *t);
        let t_ready = agents.iter().filter(|a| !a.stopping && a.ready_at > last_t).map(|a| a.ready_at).fold(f64::INFINITY, f64::min);
        let drained = next_arrival >= arrivals.len() && queue.is_empty() && finishing.is_empty();
        if drained && last_t >= end_of_trace {
            break;
        }
        let t = t_arrival.min(t_done).min(t_ready).min(next_tick).min(next_point);
        if t > hard_end {
            break;
        }
        events = events.wrapping_add(1);
        if events.is_multiple_of(65_536) {
            progress((t / end_of_trace).min(1.0));
        }
        // Pay for what was provisioned until now.
        let dt = t - last_t;
        agent_secs += agents.len() as f64 * dt;
        point_agent_secs += agents.len() as f64 * dt;
        busy_secs += finishing.len() as f64 * dt;
        starting_secs += agents.iter().filter(|a| a.ready_at > last_t).map(|a| (a.ready_at.min(t) - last_t).max(0.0)).sum::<f64>();
        last_t = t;
        if t == t_done {
            while let Some((std::cmp::Reverse(OrdF64(ft)), i)) = finishing.peek().copied() {
                if ft > t {
                    break;
                }
                finishing.pop();
                agents[i].busy_until = None;
                completed += 1;
            }
            // Stopping agents leave as soon as they are idle.
            remove_stopped(&mut agents, &mut finishing);
        }
        if t == t_arrival {
            while arrivals.get(next_arrival).is_some_and(|&a| a <= t) {
                queue.push_back(next_arrival);
                next_arrival += 1;
                point_arrivals += 1;
            }
        }
        // Idle ready agents take the oldest items.
        for (i, a) in agents.iter_mut().enumerate() {
            if queue.is_empty() {
                break;
            }
            if a.busy_until.is_none() && !a.stopping && a.ready_at <= t {
                if let Some(item) = queue.pop_front() {
                    let wait = t - arrivals[item];
                    waits.push(wait);
                    point_max_wait = point_max_wait.max(wait);
                    a.busy_until = Some(t + service[item]);
                    a.busy_since = t;
                    finishing.push((std::cmp::Reverse(OrdF64(t + service[item])), i));
                }
            }
        }
        max_backlog = max_backlog.max(queue.len() as u64);
        if t == next_point {
            let span = cfg.record_every.max(1.0);
            // The first point closes an empty stretch.
            let spanned = if series.is_empty() { 1.0 } else { span };
            series.push(Point {
                t,
                arrival_rate: point_arrivals as f64 / spanned,
                agents: point_agent_secs / spanned,
                backlog: queue.len() as u64,
                max_wait: point_max_wait,
            });
            point_arrivals = 0;
            point_agent_secs = 0.0;
            point_max_wait = 0.0;
            next_point += span;
        }
        if t == next_tick {
            next_tick += period;
            if t >= end_of_trace && drained {
                continue;
            }
            in_service.clear();
            in_service.extend(agents.iter().filter(|a| a.busy_until.is_some()).map(|a| a.busy_since));
            free_at.clear();
            free_at.extend(agents.iter().filter(|a| !a.stopping).map(|a| a.busy_until.unwrap_or(a.ready_at.max(t))));
            let live = |a: &Agent| !a.stopping;
            let obs = Observation {
                now: t,
                queued: queue.len() as u64,
                in_service: &in_service,
                completed,
                arrived: next_arrival as u64,
                ready: u32::try_from(agents.iter().filter(|a| live(a) && a.ready_at <= t).count()).unwrap_or(u32::MAX),
                provisioned: u32::try_from(agents.iter().filter(|a| live(a)).count()).unwrap_or(u32::MAX),
                free_at: &free_at,
            };
            if let Some(want) = controller.decide(&obs) {
                let want = want.clamp(cfg.min_agents, cfg.max_agents);
                let have = obs.provisioned;
                if want != have {
                    scale_actions += 1;
                    let up = want > have;
                    if let Some((was_up, when)) = last_direction {
                        if was_up != up && t - when < cfg.reversal_window {
                            reversals += 1;
                        }
                    }
                    last_direction = Some((up, t));
                    actions.push((t, have, want));
                    resize(&mut agents, &mut finishing, want, t, cfg.startup);
                }
            }
        }
    }
    progress(1.0);
    let items = arrivals.len() as u64;
    // Items never started count with the wait they had when the run ended
    // (at least that long).
    waits.extend(queue.iter().map(|&i| last_t - arrivals[i]));
    waits.extend(arrivals[next_arrival..].iter().map(|a| (last_t - a).max(0.0)));
    let met = waits.iter().filter(|w| **w <= cfg.sla + 1e-9).count() as u64;
    let p95 = percentile(&mut waits, 0.95);
    Report {
        policy: controller.name(),
        items,
        completed,
        unfinished: items - completed,
        // Items never served (a run cut at its hard end) miss the SLA.
        sla_attainment: if items == 0 { 1.0 } else { met as f64 / items as f64 },
        p95_wait_s: p95,
        agent_hours: agent_secs / 3600.0,
        busy_agent_hours: busy_secs / 3600.0,
        starting_agent_hours: starting_secs / 3600.0,
        scale_actions,
        reversals,
        max_backlog,
        series,
        actions,
    }
}

/// Grows the fleet to `want` (new agents serve after `startup`, stopping
/// ones are kept instead where they can be), or shrinks it: idle agents
/// leave at once, busy ones after their item, starting ones first.
fn resize(agents: &mut Vec<Agent>, finishing: &mut BinaryHeap<(std::cmp::Reverse<OrdF64>, usize)>, want: u32, now: f64, startup: f64) {
    let want = want as usize;
    let live = agents.iter().filter(|a| !a.stopping).count();
    if want > live {
        let mut need = want - live;
        // An agent still finishing its last item is cheaper to keep than a new one.
        for a in agents.iter_mut().filter(|a| a.stopping) {
            if need == 0 {
                break;
            }
            a.stopping = false;
            need -= 1;
        }
        agents.extend((0..need).map(|_| Agent { ready_at: now + startup, busy_until: None, busy_since: now, stopping: false }));
    } else {
        let mut surplus = live - want;
        let mut order: Vec<usize> = (0..agents.len()).filter(|&i| !agents[i].stopping).collect();
        let free = |a: &Agent| a.busy_until.unwrap_or(a.ready_at.max(now));
        order.sort_by(|&i, &j| stop_order(free(&agents[i]), free(&agents[j]), now));
        for i in order {
            if surplus == 0 {
                break;
            }
            agents[i].stopping = true;
            surplus -= 1;
        }
        remove_stopped(agents, finishing);
    }
}

/// Which agents a scale-down stops first, by when each is next free: idle
/// ones (they leave at once), then those that would be free last (starting
/// ones that are not ready yet, busy ones with the most work left; a busy
/// one finishes its item before it leaves). The oracle's planner stops
/// agents in the same order.
pub(crate) fn stop_order(a: f64, b: f64, now: f64) -> std::cmp::Ordering {
    let idle = |t: f64| t <= now;
    idle(b).cmp(&idle(a)).then(b.total_cmp(&a))
}

/// Removes stopping agents that are idle, renumbering the heap's entries.
fn remove_stopped(agents: &mut Vec<Agent>, finishing: &mut BinaryHeap<(std::cmp::Reverse<OrdF64>, usize)>) {
    if !agents.iter().any(|a| a.stopping && a.busy_until.is_none()) {
        return;
    }
    let mut map = vec![usize::MAX; agents.len()];
    let mut kept = Vec::with_capacity(agents.len());
    for (i, a) in agents.iter().enumerate() {
        if !(a.stopping && a.busy_until.is_none()) {
            map[i] = kept.len();
            kept.push(*a);
        }
    }
    *agents = kept;
    let entries: Vec<_> = finishing.drain().map(|(t, i)| (t, map[i])).collect();
    finishing.extend(entries);
}

/// The `q` quantile of `v` (sorted in place), 0 when empty.
fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let k = ((v.len() as f64 - 1.0) * q).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(k, f64::total_cmp);
    *x
}

/// An f64 ordered totally, for the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OrdF64(pub(crate) f64);

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
