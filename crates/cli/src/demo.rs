//! `steward demo`: a self-contained run on the embedded defaults.
//!
//! In a fresh directory, a producer feeds a load that rises to a burst and
//! falls back; the same loop as `steward loop` scales real `steward worker`
//! processes through the supervisor; a live view shows health, agents and
//! queue (a plain line per cycle when stdout is not a terminal). With
//! `--chaos` a random worker is SIGKILLed every few seconds. It ends with
//! a summary that accounts for every item by id.

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use steward_actuators::process::{self, Signal};
use steward_actuators::SupervisorConfig;
use steward_core::config::PolicyName;
use steward_core::decision::DecisionType;
use steward_core::time::format_rfc3339;
use steward_protocol::{file_name, write_atomic, CoordinationDir, Durability, FileKind};
use steward_runtime::worker::{ledger_duplicates, Rng};
use steward_runtime::{drive, now_ms, CycleReport, DriveOptions, FleetConfig, Next, RunOptions};

use crate::cli::DemoArgs;
use crate::config::{Config, StateConfig};
use crate::error::UsageError;
use crate::output::{out, outln, print_json};
use crate::signals::install_stop_handlers;
use crate::wire;

/// The `--json` summary (spec/cli.md).
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// Items the producer wrote.
    pub produced: u64,
    /// Items with a completed record.
    pub completed: u64,
    /// Items still queued.
    pub pending: u64,
    /// Items still claimed.
    pub in_flight: u64,
    /// Items dead-lettered.
    pub dead_lettered: u64,
    /// Items worked twice (a worker found its completion already recorded).
    pub duplicates: u64,
    /// Most active agents seen in a cycle.
    pub max_agents: u64,
    /// Scale-up decisions executed.
    pub scale_ups: u64,
    /// Scale-down decisions executed.
    pub scale_downs: u64,
    /// Health score of the first cycle.
    pub health_start: f64,
    /// Health score of the last cycle.
    pub health_end: f64,
    /// Health state of the last cycle.
    pub state_end: String,
    /// Workers killed by --chaos.
    pub chaos_kills: u64,
    /// Items whose id is in more than one state, or in none (must be 0).
    pub unaccounted: u64,
    /// Seconds the demo ran.
    pub duration_secs: f64,
    /// Cycles run.
    pub cycles: u64,
    /// Where it ran.
    pub dir: PathBuf,
}

const MARKER: &str = ".steward-demo";

/// Arrivals per second at `t` seconds into a demo of `d` seconds:
/// base → ramp → peak → ramp → base → none (the drain).
pub fn load_at(t: f64, d: f64, peak: f64) -> f64 {
    let base = peak * 0.1;
    let f = t / d;
    let ramp = |a: f64, b: f64| ((f - a) / (b - a)).clamp(0.0, 1.0);
    if f < 0.08 {
        base
    } else if f < 0.13 {
        base + (peak - base) * ramp(0.08, 0.13)
    } else if f < 0.33 {
        peak
    } else if f < 0.38 {
        peak - (peak - base) * ramp(0.33, 0.38)
    } else if f < LOAD_ENDS {
        base
    } else {
        0.0
    }
}

/// The share of the demo after which no more work arrives (the rest drains).
const LOAD_ENDS: f64 = 0.6;

fn prepare(dir: &Path) -> Result<()> {
    let empty = fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    if dir.exists() && !empty {
        if !dir.join(MARKER).exists() {
            return Err(UsageError(format!("{} exists and was not made by `steward demo`; choose another --dir", dir.display())).into());
        }
        fs::remove_dir_all(dir).with_context(|| format!("clearing the previous demo in {}", dir.display()))?;
    }
    fs::create_dir_all(dir.join("coordination")).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(dir.join(MARKER), "made by steward demo; removed and remade by the next one\n").context("marking the demo directory")?;
    Ok(())
}

fn demo_config(dir: &Path, interval: Duration) -> Config {
    let mut cfg = Config::default();
    cfg.coordination.dir = dir.join("coordination");
    cfg.coordination.agent_ttl = Duration::from_secs(6);
    cfg.coordination.claim_ttl = Duration::from_secs(30);
    cfg.state = StateConfig { dir: Some(dir.join(".steward")), journal: None };
    cfg.auto.policy = PolicyName::Adaptive;
    cfg.auto.interval = interval;
    cfg.auto.min_agents = 1;
    cfg.auto.max_agents = 8;
    cfg.auto.scale_up_cooldown = interval * 2;
    cfg.auto.scale_down_window = interval * 4;
    cfg.adaptive.target_per_agent = 4.0;
    cfg.adaptive.drain_time = Duration::from_secs(10);
    cfg.adaptive.rate_window = 5;
    let ledger = dir.join(".steward").join("duplicates.log");
    cfg.fleet = FleetConfig::Supervisor(SupervisorConfig {
        args: vec![
            "--service-time".into(),
            "exp:0.25".into(),
            "--fail-rate".into(),
            "0.02".into(),
            "--ledger".into(),
            ledger.display().to_string(),
        ],
        heartbeat_interval: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(5),
        restart_backoff: Duration::from_millis(500),
        restart_backoff_max: Duration::from_secs(5),
        crash_loop: 20,
        ..SupervisorConfig::default()
    });
    cfg
}

/// Where the demo's items go: the coordination directory, or a real queue.
enum Sink {
    Dir(std::path::PathBuf),
    Queue(Box<dyn steward_queue::WorkQueue>, String),
}

/// Writes work items at the load curve, and a telemetry record a second.
fn produce(sink: &mut Sink, duration: f64, peak: f64, stop: &AtomicBool, produced: &AtomicU64) {
    let started = Instant::now();
    let mut owed = 0.0;
    let mut last_telemetry = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let t = started.elapsed().as_secs_f64();
        if t >= duration * LOAD_ENDS {
            break;
        }
        owed += load_at(t, duration, peak) * 0.1;
        while owed >= 1.0 {
            owed -= 1.0;
            let n = produced.load(Ordering::SeqCst) + 1;
            let id = format!("d{n:06}");
            let body =
                json!({"id": id, "status": "pending", "priority": "medium", "created": format_rfc3339(now_ms()), "payload": {"n": n}});
            let written = match sink {
                Sink::Dir(dir) => {
                    write_atomic(dir, &dir.join(file_name(FileKind::Work, &id)), body.to_string().as_bytes(), Durability::Visible).is_ok()
                }
                Sink::Queue(q, run) => {
                    let mut item = body.as_object().cloned().unwrap_or_default();
                    item.insert("id".into(), json!(format!("{run}-{id}")));
                    q.push(&[item]).is_ok()
                }
            };
            if written {
                produced.store(n, Ordering::SeqCst);
            }
        }
        let secs = t as u64;
        let Sink::Dir(dir) = sink else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let dir = dir.as_path();
        if secs >= last_telemetry {
            last_telemetry = secs + 1;
            let body = json!({"id": format!("t{secs}"), "timestamp": format_rfc3339(now_ms()), "name": "demo.producer",
                "metrics": {"arrival_rate": load_at(t, duration, peak), "error_rate": 0.02}});
            let _ = write_atomic(
                dir,
                &dir.join(file_name(FileKind::Telemetry, &format!("{secs:05}"))),
                body.to_string().as_bytes(),
                Durability::Visible,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct View {
    tty: bool,
    json: bool,
    started: Instant,
    duration: f64,
    peak: f64,
    lines: usize,
}

impl View {
    fn show(&mut self, r: &CycleReport, workers: usize, produced: u64, kills: u64) {
        let t = self.started.elapsed().as_secs_f64();
        let m = &r.metrics;
        let acted: Vec<String> = r.executed.iter().map(|e| format!("{} ({})", e.kind, e.result)).collect();
        if !self.tty {
            // With --json, stdout holds the one JSON document: progress goes to stderr.
            let line = format!(
                "t={t:5.1}s load {:5.1}/s health {:.3} {:<8} agents {:>2} workers {:>2} queue {:>4} in-flight {:>3} completed {:>5}{}",
                load_at(t, self.duration, self.peak),
                m.health_score,
                m.health_state.as_str(),
                m.active_agents,
                workers,
                m.work_queue_size,
                m.in_flight,
                m.completed,
                if acted.is_empty() { String::new() } else { format!(" | {}", acted.join("; ")) }
            );
            if self.json {
                eprintln!("{line}");
            } else {
                outln!("{line}");
            }
            return;
        }
        let bar = |v: f64, max: f64, width: usize| -> String {
            let n = ((v / max.max(1e-9)) * width as f64).round().clamp(0.0, width as f64) as usize;
            format!("{}{}", "█".repeat(n), "·".repeat(width - n))
        };
        let mut out = String::new();
        if self.lines > 0 {
            out.push_str(&format!("\x1b[{}A", self.lines));
        }
        let rows = [
            format!("steward demo  t={t:5.1}s / {:.0}s   cycle {}   chaos kills {kills}", self.duration, r.cycle_id),
            format!(
                "load       {} {:5.1}/s  (produced {produced})",
                bar(load_at(t, self.duration, self.peak), self.peak, 30),
                load_at(t, self.duration, self.peak)
            ),
            format!("health     {} {:.3} {}", bar(m.health_score, 1.0, 30), m.health_score, m.health_state),
            format!("agents     {} {} active, {} workers", bar(m.active_agents as f64, 8.0, 30), m.active_agents, workers),
            format!("queue      {} {} pending, {} in flight", bar(m.work_queue_size as f64, 100.0, 30), m.work_queue_size, m.in_flight),
            format!("completed  {}  dead-lettered {}", m.completed, m.failed),
            format!("last       {}", if acted.is_empty() { "no action this cycle".to_owned() } else { acted.join("; ") }),
        ];
        for row in &rows {
            out.push_str("\x1b[2K");
            out.push_str(row);
            out.push('\n');
        }
        self.lines = rows.len();
        out!("{out}");
    }
}

/// Runs the demo.
///
/// # Errors
/// Bad flags (exit 2), a directory that is not a previous demo's, or a
/// failure to start.
pub fn run(args: DemoArgs, json: bool) -> Result<ExitCode> {
    if !(args.duration.is_finite() && (5.0..=3600.0).contains(&args.duration)) {
        return Err(UsageError(format!("--duration {} must be between 5 and 3600 seconds", args.duration)).into());
    }
    if !(args.peak_rate.is_finite() && args.peak_rate > 0.0 && args.peak_rate <= 1000.0) {
        return Err(UsageError(format!("--peak-rate {} must be above 0 and at most 1000", args.peak_rate)).into());
    }
    if !(args.interval.is_finite() && (0.2..=60.0).contains(&args.interval)) {
        return Err(UsageError(format!("--interval {} must be between 0.2 and 60 seconds", args.interval)).into());
    }
    prepare(&args.dir)?;
    let dir = fs::canonicalize(&args.dir).with_context(|| format!("resolving {}", args.dir.display()))?;
    let mut cfg = demo_config(&dir, Duration::from_secs_f64(args.interval));
    let coordination = cfg.coordination.dir.clone();
    // On a real queue: its counts before, so the summary counts this run's items only.
    let queue = match &args.queue {
        Some(url) => {
            let parsed = steward_queue::QueueUrl::parse(url).map_err(|e| UsageError(format!("--queue: {e}")))?;
            if matches!(&parsed, steward_queue::QueueUrl::Redis(r) if matches!(r.kind, steward_queue::RedisKind::List { .. })) {
                return Err(UsageError("--queue: a list keeps no claims; give a stream with its group (?stream=S&group=G)".into()).into());
            }
            cfg.source.url = Some(url.clone());
            let mut q = steward_queue::open(&parsed, Duration::from_secs(5));
            q.prepare().with_context(|| format!("preparing {}", q.target()))?;
            let before = q.census(1).with_context(|| format!("reading {}", q.target()))?;
            Some((q, before))
        }
        None => None,
    };
    let ledger = dir.join(".steward").join("duplicates.log");
    let cfg_agents_target = cfg.health.agents_target;
    let engine = wire::engine(&cfg)?;
    let stop = install_stop_handlers()?;
    let produced = AtomicU64::new(0);
    let producer_done = AtomicBool::new(false);
    let started = Instant::now();
    let mut view =
        View { tty: !json && std::io::stdout().is_terminal(), json, started, duration: args.duration, peak: args.peak_rate, lines: 0 };
    if !json {
        outln!(
            "steward demo in {}: a burst to {:.0} items/s, workers scaled by the adaptive policy{}.",
            dir.display(),
            args.peak_rate,
            if args.chaos { ", a worker SIGKILLed every few seconds" } else { "" }
        );
        outln!(
            "It runs at most {:.0} s, usually {:.0}–{:.0} s: it ends once the load is over, the queue drained and the fleet scaled back down.",
            args.duration,
            args.duration * 0.75,
            args.duration * 0.85
        );
        outln!(
            "agents: agent records alive (a heartbeat within agent_ttl); workers: the processes the supervisor runs \
             (one that is draining after a scale-down still counts until it exits)."
        );
    }
    let mut summary = DemoSummary {
        produced: 0,
        completed: 0,
        pending: 0,
        in_flight: 0,
        dead_lettered: 0,
        duplicates: 0,
        max_agents: 0,
        scale_ups: 0,
        scale_downs: 0,
        health_start: f64::NAN,
        health_end: 0.0,
        state_end: String::new(),
        chaos_kills: 0,
        unaccounted: 0,
        duration_secs: 0.0,
        cycles: 0,
        dir: dir.clone(),
    };
    let mut rng = Rng::new(now_ms().unsigned_abs());
    let mut next_kill = args.interval * 2.0;
    let mut sink = match &args.queue {
        Some(url) => match steward_queue::QueueUrl::parse(url) {
            Ok(u) => Sink::Queue(steward_queue::open(&u, Duration::from_secs(5)), format!("demo{}", now_ms())),
            Err(_) => Sink::Dir(coordination.clone()),
        },
        None => Sink::Dir(coordination.clone()),
    };
    let drive_result = std::thread::scope(|scope| {
        let sink = &mut sink;
        scope.spawn(|| {
            produce(sink, args.duration, args.peak_rate, &stop, &produced);
            producer_done.store(true, Ordering::SeqCst);
        });
        let opts = DriveOptions {
            interval: Duration::from_secs_f64(args.interval),
            max_cycles: 0,
            dry_run: false,
            tick_every: Duration::from_millis(100),
        };
        let result = drive(&engine, &opts, &stop, |result| {
            let t = started.elapsed().as_secs_f64();
            if let Ok(r) = result {
                let m = &r.metrics;
                if summary.health_start.is_nan() {
                    summary.health_start = m.health_score;
                }
                summary.health_end = m.health_score;
                summary.state_end = m.health_state.to_string();
                summary.max_agents = summary.max_agents.max(m.active_agents);
                for e in &r.executed {
                    match DecisionType::from(e.kind.clone()) {
                        DecisionType::ScaleUp => summary.scale_ups += 1,
                        DecisionType::ScaleDown => summary.scale_downs += 1,
                        _ => {}
                    }
                }
                view.show(r, engine.fleet_workers().len(), produced.load(Ordering::SeqCst), summary.chaos_kills);
                let drained = producer_done.load(Ordering::SeqCst) && m.work_queue_size == 0 && m.in_flight == 0;
                // Done when the time is up, or once the load is over, the
                // queue drained and the fleet came back down.
                if t >= args.duration || (drained && t >= args.duration * 0.75 && summary.scale_downs > 0) {
                    return Next::Stop;
                }
            }
            if args.chaos && t >= next_kill && t < args.duration * 0.7 {
                let workers = engine.fleet_workers();
                if !workers.is_empty() {
                    let (id, pid) = &workers[(rng.next_u64() % workers.len() as u64) as usize];
                    if process::kill(*pid, Signal::Kill).is_ok() {
                        summary.chaos_kills += 1;
                        tracing::info!(agent = %id, pid, "Chaos: SIGKILL.");
                    }
                }
                next_kill = t + args.interval * 2.0;
            }
            // Nobody reads the view any more (`| head`): wind down in order.
            if crate::output::stdout_closed() {
                return Next::Stop;
            }
            Next::Continue
        });
        let interrupted = stop.swap(true, Ordering::SeqCst);
        (result, interrupted)
    });
    let (drive_result, interrupted) = drive_result;
    // The fleet stops with the demo: SIGTERM, drain, SIGKILL.
    engine.shutdown();
    let cycles = drive_result?;
    // A last cycle requeues what killed workers left claimed, so the
    // accounting sees every item in exactly one state.
    let _ = engine.execute(&RunOptions::default());
    engine.shutdown();
    engine.flush_telemetry();
    summary.cycles = cycles;
    summary.produced = produced.load(Ordering::SeqCst);
    if let Some((mut q, before)) = queue {
        let now = q.census(1).with_context(|| format!("reading {}", q.target()))?;
        summary.completed = now.completed.saturating_sub(before.completed);
        summary.pending = now.depth.saturating_sub(before.depth);
        summary.in_flight = now.in_flight.saturating_sub(before.in_flight);
        summary.dead_lettered = now.failed.saturating_sub(before.failed);
        let seen = summary.completed + summary.pending + summary.in_flight + summary.dead_lettered;
        // A queue counts states, not ids: what is missing, or counted twice.
        summary.unaccounted = summary.produced.abs_diff(seen);
    } else {
        let census = CoordinationDir::new(&coordination, 1).census();
        summary.completed = census.completed;
        summary.pending = census.pending;
        summary.in_flight = census.in_flight;
        summary.dead_lettered = census.dead_lettered;
        // Produced ids found in no state, plus ids found in two at once.
        summary.unaccounted = summary.produced.saturating_sub(census.distinct) + census.in_several_states;
    }
    summary.duplicates = ledger_duplicates(&ledger);
    summary.duration_secs = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    if summary.health_start.is_nan() {
        summary.health_start = 0.0;
    }
    if json {
        print_json(&summary);
    } else {
        let s = &summary;
        outln!();
        outln!("Summary after {:.1} s and {} cycles:", s.duration_secs, s.cycles);
        outln!(
            "  produced {} = completed {} + pending {} + in flight {} + dead-lettered {}   (duplicates {}, unaccounted {})",
            s.produced,
            s.completed,
            s.pending,
            s.in_flight,
            s.dead_lettered,
            s.duplicates,
            s.unaccounted
        );
        outln!(
            "  agents up to {}: {} scale-up(s), {} scale-down(s){}",
            s.max_agents,
            s.scale_ups,
            s.scale_downs,
            if args.chaos { format!(", {} worker(s) killed by chaos", s.chaos_kills) } else { String::new() }
        );
        outln!("  health {:.3} → {:.3} ({})", s.health_start, s.health_end, s.state_end);
        if s.health_end < 0.9 {
            // A right-sized idle fleet scores below optimal by the formula's
            // design: its agent term wants health.agents_target agents.
            outln!(
                "  (the score's agent term counts up to {} active agents (health.agents_target): a fleet rightly scaled down to fewer \
                 for an empty queue scores below optimal on it; that is the formula, not a fault)",
                cfg_agents_target
            );
        }
        outln!("  journal: steward --coordination {} --state-dir {} status", coordination.display(), dir.join(".steward").display());
    }
    let conserved = summary.produced == summary.completed + summary.pending + summary.in_flight + summary.dead_lettered;
    if interrupted {
        // Stopped by a signal: the summary stands, but the run did not finish.
        return Ok(ExitCode::from(130));
    }
    Ok(if conserved && summary.duplicates == 0 && summary.unaccounted == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_rises_to_the_peak_and_ends_in_a_drain() {
        let d = 60.0;
        assert!((load_at(1.0, d, 20.0) - 2.0).abs() < 1e-9);
        assert_eq!(load_at(12.0, d, 20.0), 20.0);
        assert!((load_at(30.0, d, 20.0) - 2.0).abs() < 1e-9);
        assert_eq!(load_at(40.0, d, 20.0), 0.0);
        let mut last = 0.0;
        for i in 0..=60 {
            let x = load_at(f64::from(i) * 0.1 + 4.8, d, 20.0);
            assert!(x >= last, "the ramp only rises");
            last = x;
        }
    }

    #[test]
    fn a_directory_that_is_not_a_demo_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("precious.txt"), "keep").unwrap();
        assert!(prepare(tmp.path()).is_err());
        assert!(tmp.path().join("precious.txt").exists());
        let demo = tmp.path().join("d");
        prepare(&demo).unwrap();
        fs::write(demo.join("coordination/work_1.json"), "{}").unwrap();
        prepare(&demo).unwrap();
        assert!(!demo.join("coordination/work_1.json").exists(), "a previous demo is replaced");
    }
}
