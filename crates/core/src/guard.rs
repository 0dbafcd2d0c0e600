//! Guards: the safeguards between a decision and its action.
//!
//! Applied in the order of spec/engine.md: min_confidence, max_decisions,
//! bounds and max_step, stabilization, circuit breaker, dry-run. Every
//! decision leaves with a verdict; a skipped one says which guard and why.
//! The lock (one executor per target) is taken by the driver, not here.

use serde::Serialize;

use crate::config::AutoConfig;
use crate::decision::{Action, Decision, DecisionType};
use crate::history::History;
use crate::time::UnixMs;

/// The guard that stopped a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    /// Confidence below `min_confidence`.
    MinConfidence,
    /// More decisions than `max_decisions` this cycle.
    MaxDecisions,
    /// Target outside `min_agents`/`max_agents`, or no change left after clamping.
    Bounds,
    /// Scale-down vetoed by a recent recommendation, or a reversal inside the window.
    Stabilization,
    /// Scale action too soon after the previous one.
    Cooldown,
    /// Another scale decision already runs this cycle.
    Conflict,
    /// The decision type's circuit breaker is open.
    CircuitBreaker,
    /// Dry-run: nothing is touched.
    DryRun,
    /// The target (the coordination directory) is gone: nothing is acted
    /// on until it returns.
    Target,
}

impl GuardKind {
    /// The guard's name as users see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MinConfidence => "min_confidence",
            Self::MaxDecisions => "max_decisions",
            Self::Bounds => "bounds",
            Self::Stabilization => "stabilization",
            Self::Cooldown => "cooldown",
            Self::Conflict => "conflict",
            Self::CircuitBreaker => "circuit_breaker",
            Self::DryRun => "dry_run",
            Self::Target => "target",
        }
    }
}

/// A guard's verdict on one decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go ahead.
    Execute,
    /// Do not act.
    Skip {
        /// Which guard.
        guard: GuardKind,
        /// Why, with the numbers.
        reason: String,
    },
}

/// A decision with its verdict and any changes the guards made to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Guarded {
    /// The decision, as it will be executed (targets may have been clamped).
    pub decision: Decision,
    /// Execute or skip.
    pub verdict: Verdict,
    /// Adjustments made on the way ("target 14 clamped to max_agents 10").
    pub notes: Vec<String>,
}

/// What the guards need besides the decisions.
#[derive(Debug, Clone)]
pub struct GuardContext<'a> {
    /// Guard settings (with one-run overrides from flags already applied).
    pub auto: &'a AutoConfig,
    /// Recent cycles and outcomes.
    pub history: &'a History,
    /// The time of this cycle.
    pub now: UnixMs,
    /// The policy's recommendation this cycle, counted in the stabilization window.
    pub recommended_agents: Option<u32>,
    /// `--force-confidence`: replaces every decision's confidence for this run.
    pub force_confidence: Option<f64>,
    /// Whether the target exists; when it does not, nothing is acted on.
    pub target_exists: bool,
}

fn skip(guard: GuardKind, reason: String) -> Verdict {
    Verdict::Skip { guard, reason }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Applies the guards to decisions sorted by priority (highest first).
pub fn apply(decisions: Vec<Decision>, cx: &GuardContext<'_>) -> Vec<Guarded> {
    let auto = cx.auto;
    let mut admitted = 0u32;
    let mut scaled_this_cycle = false;
    let mut out = Vec::with_capacity(decisions.len());
    for mut decision in decisions {
        let mut notes = Vec::new();
        if let Some(forced) = cx.force_confidence {
            notes.push(format!("confidence forced from {:.3} to {forced:.3}", decision.confidence));
            decision.confidence = forced;
        }
        let verdict = (|| {
            if !cx.target_exists {
                return skip(
                    GuardKind::Target,
                    "the target does not exist (unmounted? moved?): nothing is acted on until it returns".into(),
                );
            }
            if decision.confidence < auto.min_confidence {
                return skip(
                    GuardKind::MinConfidence,
                    format!("confidence {:.3} is below min_confidence {:.3}", decision.confidence, auto.min_confidence),
                );
            }
            if admitted >= auto.max_decisions {
                return skip(
                    GuardKind::MaxDecisions,
                    format!("{} decision(s) already admitted this cycle, the most max_decisions allows", auto.max_decisions),
                );
            }
            admitted += 1;
            if let Action::Scale { from, to } = decision.action {
                if let Err(v) = bound_scale(&mut decision, from, to, auto, &mut notes) {
                    return v;
                }
                if let Action::Scale { from, to } = decision.action {
                    if scaled_this_cycle {
                        return skip(GuardKind::Conflict, "another scale decision already acts this cycle".into());
                    }
                    if let Err(v) = stabilize(&mut decision, from, to, cx, &mut notes) {
                        return v;
                    }
                }
            }
            let (streak, last) = cx.history.failure_streak(&decision.kind);
            if streak >= auto.breaker_failures {
                if let Some(last) = last {
                    let until = last.saturating_add(ms(auto.breaker_cooldown));
                    if cx.now < until {
                        return skip(
                            GuardKind::CircuitBreaker,
                            format!(
                                "circuit breaker open: {streak} consecutive failures of {}; retry in {} s",
                                decision.kind,
                                (until - cx.now + 999) / 1000
                            ),
                        );
                    }
                }
            }
            if matches!(decision.action, Action::Scale { .. }) {
                scaled_this_cycle = true;
            }
            if auto.dry_run {
                return skip(GuardKind::DryRun, format!("would execute: {}", decision.description));
            }
            Verdict::Execute
        })();
        out.push(Guarded { decision, verdict, notes });
    }
    out
}

/// Clamps a scale target to max_step and to the bounds (bounds win). A decision whose
/// direction would flip, or that is left with no change, is skipped.
fn bound_scale(decision: &mut Decision, from: u32, to: u32, auto: &AutoConfig, notes: &mut Vec<String>) -> Result<(), Verdict> {
    let mut target = to.clamp(auto.min_agents, auto.max_agents);
    if target != to {
        let which = if to > auto.max_agents { "max_agents" } else { "min_agents" };
        notes.push(format!("target {to} clamped to {which} {target}"));
    }
    let emergency = decision.kind == DecisionType::EmergencyScale;
    if !emergency {
        let stepped =
            if target > from { target.min(from.saturating_add(auto.max_step)) } else { target.max(from.saturating_sub(auto.max_step)) };
        if stepped != target {
            notes.push(format!("target {target} limited by max_step {} to {stepped}", auto.max_step));
            target = stepped;
        }
        // Bounds are hard: a fleet outside them goes straight back inside,
        // even past max_step.
        let bounded = target.clamp(auto.min_agents, auto.max_agents);
        if bounded != target {
            notes.push(format!("target {target} brought inside the bounds to {bounded}, past max_step"));
            target = bounded;
        }
    }
    if target == from || (to > from) != (target > from) {
        return Err(skip(
            GuardKind::Bounds,
            format!("{from} → {to} leaves no change within min_agents {} and max_agents {}", auto.min_agents, auto.max_agents),
        ));
    }
    set_target(decision, from, target);
    Ok(())
}

fn set_target(decision: &mut Decision, from: u32, target: u32) {
    decision.action = Action::Scale { from, to: target };
    decision.inverse = Some(Action::Scale { from: target, to: from });
    decision.description = format!("Scale agents {from} → {target}");
    decision.parameters.insert("target_agents".into(), target.into());
}

/// Cooldown after any scale action, no reversal inside the window, and the
/// HPA rule for scale-down: never below the highest recommendation in the window.
fn stabilize(decision: &mut Decision, from: u32, to: u32, cx: &GuardContext<'_>, notes: &mut Vec<String>) -> Result<(), Verdict> {
    let auto = cx.auto;
    let since = |t: Option<UnixMs>| t.map(|t| cx.now - t);
    if to > from {
        let cooldown = ms(auto.scale_up_cooldown);
        for (up, what) in [(true, "scale-up"), (false, "scale-down")] {
            if let Some(ago) = since(cx.history.last_scale(up)) {
                if ago < cooldown {
                    return Err(skip(
                        GuardKind::Cooldown,
                        format!("last {what} was {} s ago, inside scale_up_cooldown {} s", ago / 1000, cooldown / 1000),
                    ));
                }
            }
        }
        return Ok(());
    }
    let window = ms(auto.scale_down_window);
    if let Some(ago) = since(cx.history.last_scale(true)) {
        if ago < window {
            return Err(skip(
                GuardKind::Stabilization,
                format!("no reversal: a scale-up ran {} s ago, inside scale_down_window {} s", ago / 1000, window / 1000),
            ));
        }
    }
    let floor = cx
        .history
        .cycles
        .iter()
        .filter(|c| cx.now - c.ts < window)
        .filter_map(|c| c.recommended_agents)
        .chain(cx.recommended_agents)
        .max()
        .unwrap_or(to);
    if floor >= from {
        return Err(skip(
            GuardKind::Stabilization,
            format!("a recommendation of {floor} agents within scale_down_window {} s does not allow going below {from}", window / 1000),
        ));
    }
    if floor > to {
        notes.push(format!("target {to} raised to {floor}, the highest recommendation within scale_down_window"));
        set_target(decision, from, floor);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
