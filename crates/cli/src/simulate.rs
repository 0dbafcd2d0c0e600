//! `steward simulate`: replays a trace through the simulator in
//! `steward_core::sim` under each chosen policy, and prints the spec's
//! report (a table, or JSON), optionally a plot.

use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use steward_core::config::EngineConfig;
use steward_core::config::PolicyName;
use steward_core::policy;
use steward_core::predict::series::{parse_csv_rows, Duplicates};
use steward_core::sim::{self, Controller, Hpa, HpaConfig, Report, ServiceTime, SimConfig, Steward, Trace};

use crate::cli::SimulateArgs;
use crate::config::Config;
use crate::error::UsageError;
use crate::output::{out, print_json, table};

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The largest trace file read (a 5-minute trace of ten years is ~30 MB).
const MAX_TRACE_BYTES: u64 = 256 << 20;

/// What to run and on what: everything checked before the first run.
pub struct Plan {
    /// The trace, scaled.
    pub trace: Trace,
    /// The trace's first row, Unix ms.
    pub base: i64,
    /// The world.
    pub sim: SimConfig,
    /// The engine's config for steward's policies.
    pub engine: EngineConfig,
    /// Policies in order.
    pub policies: Vec<String>,
    /// hpa/keda target per pod.
    pub queue_target: f64,
    /// Seconds between steward's (and the oracle's) decisions.
    pub interval: f64,
}

fn positive(v: f64, flag: &str) -> Result<f64> {
    if (0.0..1e9).contains(&v) {
        Ok(v)
    } else {
        Err(usage(format!("{flag} {v} must be a number of seconds, from 0 to 1e9")))
    }
}

fn read_trace(path: &Path) -> Result<(Trace, i64)> {
    let meta = std::fs::metadata(path).map_err(|e| usage(format!("--trace {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(usage(format!("--trace {}: not a regular file", path.display())));
    }
    if meta.len() > MAX_TRACE_BYTES {
        return Err(usage(format!(
            "--trace {}: {} bytes, more than the {} MiB a trace may have",
            path.display(),
            meta.len(),
            MAX_TRACE_BYTES >> 20
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("--trace {}: {e}", path.display())))?;
    let parsed = parse_csv_rows(&text, 2, Duplicates::Reject).map_err(|e| usage(format!("--trace {}: {e}", path.display())))?;
    let s = parsed.series;
    let trace = Trace::new(&s.ts, &s.values).map_err(|e| usage(format!("--trace {}: {e}", path.display())))?;
    Ok((trace, s.ts.first().copied().unwrap_or(0)))
}

/// Checks the flags and builds the plan.
///
/// # Errors
/// A bad flag or trace (a usage error).
pub fn plan(args: &SimulateArgs, policies: Option<&str>, cfg: &Config) -> Result<Plan> {
    let mut policies: Vec<String> = policies.unwrap_or("adaptive").split(',').map(str::to_owned).collect();
    if args.compare {
        policies = crate::cli::POLICIES.iter().map(|p| (*p).to_owned()).collect();
    }
    policies.dedup();
    let service: ServiceTime = args.service_time.parse().map_err(|e| usage(format!("--service-time: {e}")))?;
    if service.mean() <= 0.0 {
        return Err(usage("--service-time must have a mean above zero"));
    }
    let mut engine = cfg.engine();
    let startup = match args.startup {
        Some(s) => positive(s, "--startup")?,
        None => engine.adaptive.startup_time.as_secs_f64(),
    };
    let sla = positive(args.sla, "--sla")?;
    let interval = match args.interval {
        Some(s) => positive(s, "--interval")?,
        None => engine.auto.interval.as_secs_f64(),
    };
    if interval < 1.0 {
        return Err(usage(format!("--interval {interval} must be at least 1 second")));
    }
    let min_agents = args.min_agents.unwrap_or(engine.auto.min_agents);
    let max_agents = args.max_agents.unwrap_or(engine.auto.max_agents);
    if min_agents > max_agents {
        return Err(usage(format!("--min-agents {min_agents} is above --max-agents {max_agents}")));
    }
    if max_agents > 100_000 {
        return Err(usage(format!("--max-agents {max_agents}: the simulator models at most 100000 agents")));
    }
    if !(args.queue_target.is_finite() && args.queue_target > 0.0) {
        return Err(usage(format!("--queue-target {} must be above zero", args.queue_target)));
    }
    let (mut trace, base) = read_trace(&args.trace)?;
    let factor = match (args.peak_agents, args.scale) {
        (Some(n), _) => {
            if !(n.is_finite() && n > 0.0) {
                return Err(usage(format!("--peak-agents {n} must be above zero")));
            }
            let need = trace.peak_rate() * service.mean();
            if need <= 0.0 {
                return Err(usage(format!("--trace {}: no arrivals to scale", args.trace.display())));
            }
            n / need
        }
        (None, Some(x)) if x.is_finite() && x > 0.0 => x,
        (None, Some(x)) => return Err(usage(format!("--scale {x} must be above zero"))),
        (None, None) => 1.0,
    };
    if factor != 1.0 {
        trace = trace.scaled(factor);
    }
    // A run of billions of items is a typo, not a benchmark.
    if trace.total() > 2e8 {
        return Err(usage(format!("the trace has {:.3e} arrivals after scaling; at most 2e8 are simulated", trace.total())));
    }
    engine.auto.min_agents = min_agents;
    engine.auto.max_agents = max_agents;
    engine.auto.interval = Duration::from_secs_f64(interval);
    engine.auto.dry_run = false;
    engine.adaptive.startup_time = Duration::from_secs_f64(startup);
    // The SLA is the wait target, unless the config sets its own.
    if engine.adaptive.max_wait.is_zero() {
        engine.adaptive.max_wait = Duration::from_secs_f64(sla);
    }
    let sim = SimConfig {
        service,
        startup,
        sla,
        min_agents,
        max_agents,
        initial_agents: min_agents.max(1).min(max_agents),
        seed: args.seed,
        record_every: (trace.end() / 2000.0).max(60.0),
        reversal_window: engine.auto.scale_down_window.as_secs_f64(),
    };
    Ok(Plan { trace, base, sim, engine, policies, queue_target: args.queue_target, interval })
}

/// Runs one policy of the plan.
fn run_one(plan: &Plan, name: &str, progress: &AtomicU32) -> Report {
    let set = |x: f64| progress.store((x * 1000.0) as u32, Ordering::Relaxed);
    let mut controller: Box<dyn Controller> = match name {
        "hpa" => Box::new(Hpa::new(HpaConfig::hpa(plan.queue_target, plan.sim.min_agents, plan.sim.max_agents))),
        "keda" => Box::new(Hpa::new(HpaConfig::keda(plan.queue_target, plan.sim.min_agents, plan.sim.max_agents))),
        "oracle" => return sim::oracle(&plan.trace, &plan.sim, plan.interval, &mut |x| set(x)),
        other => {
            let name = if other == "classic" { PolicyName::Classic } else { PolicyName::Adaptive };
            Box::new(Steward::new(policy::builtin(name), plan.engine.clone(), plan.base))
        }
    };
    sim::simulate_with_progress(&plan.trace, &plan.sim, controller.as_mut(), &mut |x| set(x))
}

/// Runs every policy of the plan (in parallel), showing progress on a terminal.
pub fn run_all(plan: &Plan) -> Vec<Report> {
    let progress: Vec<AtomicU32> = plan.policies.iter().map(|_| AtomicU32::new(0)).collect();
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = plan.policies.iter().zip(&progress).map(|(name, p)| scope.spawn(move || run_one(plan, name, p))).collect();
        let mut shown = false;
        while handles.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            if tty && started.elapsed() > Duration::from_millis(700) {
                let line: Vec<String> =
                    plan.policies.iter().zip(&progress).map(|(n, p)| format!("{n} {:>3}%", p.load(Ordering::Relaxed) / 10)).collect();
                eprint!("\r\x1b[Ksimulating: {}", line.join(" · "));
                let _ = std::io::stderr().flush();
                shown = true;
            }
        }
        if shown {
            eprint!("\r\x1b[K");
        }
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

fn report_json(r: &Report) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// `steward simulate`.
///
/// # Errors
/// Bad flags or trace (exit 2), or a plot that cannot be written.
pub fn run(args: &SimulateArgs, policies: Option<&str>, cfg: &Config, json: bool) -> Result<ExitCode> {
    let plan = plan(args, policies, cfg)?;
    let peak_need = plan.trace.peak_rate() * plan.sim.service.mean();
    if peak_need > f64::from(plan.sim.max_agents) {
        tracing::warn!(
            "The busiest row needs about {peak_need:.0} agents, more than --max-agents {}: no policy can meet the SLA there.",
            plan.sim.max_agents
        );
    }
    let reports = run_all(&plan);
    if let Some(path) = &args.plot {
        let setting = crate::plot::Setting {
            sla: plan.sim.sla,
            startup: plan.sim.startup,
            service_mean: plan.sim.service.mean(),
            end: plan.trace.end(),
        };
        crate::plot::write(path, &setting, &reports)?;
    }
    if json {
        if let [one] = reports.as_slice() {
            print_json(&report_json(one));
        } else {
            print_json(&Value::Array(reports.iter().map(report_json).collect()));
        }
        return Ok(ExitCode::SUCCESS);
    }
    out!("{}", render(&plan, &reports));
    if let Some(path) = &args.plot {
        out!("plot: {}\n", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn render(plan: &Plan, reports: &[Report]) -> String {
    let t = &plan.trace;
    let days = t.end() / 86_400.0;
    let mut s = format!(
        "trace: {} rows over {days:.1} days, {} items (peak needs ~{:.0} agents); service {:?} (mean {:.1} s); SLA {} s; startup {} s; interval {} s; agents {}..{}\n\n",
        t.times().len(),
        reports.first().map_or(0, |r| r.items),
        t.peak_rate() * plan.sim.service.mean(),
        plan.sim.service,
        plan.sim.service.mean(),
        plan.sim.sla,
        plan.sim.startup,
        plan.interval,
        plan.sim.min_agents,
        plan.sim.max_agents,
    );
    let oracle = reports.iter().find(|r| r.policy == "oracle").map(|r| r.agent_hours);
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.policy.clone(),
                format!("{:.2}%", r.sla_attainment * 100.0),
                format!("{:.0} s", r.p95_wait_s),
                format!("{:.1}", r.agent_hours),
                format!("{:.1}%", 100.0 * (r.agent_hours - r.busy_agent_hours - r.starting_agent_hours).max(0.0) / r.agent_hours.max(1e-9)),
                format!("{:.1}%", 100.0 * r.starting_agent_hours / r.agent_hours.max(1e-9)),
                oracle.filter(|o| *o > 0.0).map_or("-".into(), |o| format!("{:.2}×", r.agent_hours / o)),
                r.scale_actions.to_string(),
                r.reversals.to_string(),
                r.max_backlog.to_string(),
            ]
        })
        .collect();
    s.push_str(&table(
        &["POLICY", "SLA MET", "P95 WAIT", "AGENT-HOURS", "IDLE", "STARTING", "VS ORACLE", "SCALE ACTIONS", "REVERSALS", "MAX BACKLOG"],
        &rows,
    ));
    s
}
