//! The commands: each builds what it needs from the config and prints
//! either a table or one JSON document.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use steward_core::assess::{age_secs, is_active};
use steward_core::config::MIN_INTERVAL;
use steward_core::decision::Decision;
use steward_core::time::format_rfc3339;
use steward_runtime::worker::{self, WorkerOptions};
use steward_runtime::{drive, CycleReport, DriveOptions, Engine, Next, RunOptions};

use crate::cli::{Cli, Command, ExecuteArgs, Format, WorkerArgs};
use crate::config::{self, Config, FlagOverrides};
use crate::error::UsageError;
use crate::output::{age, envelope, out, outln, print_json, table};
use crate::signals::{install_finish_handlers, install_stop_handlers};
use crate::wire;

/// The command's name, for the JSON envelope.
pub fn name(c: &Command) -> &'static str {
    match c {
        Command::Status => "status",
        Command::Analyze => "analyze",
        Command::Execute(_) => "execute",
        Command::Loop { .. } => "loop",
        Command::Agents => "agents",
        Command::Config { .. } => "config",
        Command::Worker(_) => "worker",
        Command::Rollback { .. } => "rollback",
        Command::Demo(_) => "demo",
        Command::Serve { .. } => "serve",
        Command::Start { .. } => "start",
        Command::Stop { .. } => "stop",
        Command::Restart { .. } => "restart",
        Command::Health => "health",
        Command::Logs { .. } => "logs",
        Command::Prediction(p) => p.name(),
        Command::Simulate(_) => "simulate",
        Command::Reconcile { .. } => "reconcile",
        Command::Orchestrate { .. } => "orchestrate",
        Command::Tasks { .. } => "tasks",
        Command::Audit { .. } => "audit",
        Command::Backup { .. } => "backup",
        Command::Incidents { .. } => "incidents",
    }
}

/// Whether the command line asks for JSON (`--json` or `--format json`).
pub fn wants_json(cli: &Cli) -> bool {
    cli.json || cli.format == Format::Json
}

fn load_config(cli: &Cli) -> Result<Config> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("STEWARD_") || k.starts_with("DSLMODEL_AUTO_"))
        .collect();
    let flags = FlagOverrides {
        coordination: cli.coordination.clone(),
        source: cli.source.clone(),
        state_dir: cli.state_dir.clone(),
        policy: match (&cli.command, &cli.policy) {
            (Command::Simulate(_), _) | (_, None) => None,
            (_, Some(p)) if p == "adaptive" || p == "classic" => Some(p.clone()),
            (_, Some(p)) => {
                return Err(UsageError(format!(
                "--policy {p}: the loop runs one policy, adaptive or classic (hpa, keda and oracle are references for `steward simulate`)"
            ))
                .into())
            }
        },
        listen: match &cli.command {
            Command::Serve { listen, .. } | Command::Start { listen, .. } => listen.clone(),
            _ => None,
        },
        create: cli.create,
    };
    let (cfg, path) = config::load(cli.config.as_deref(), &env, &flags)?;
    if let Some(p) = path {
        tracing::debug!(file = %p.display(), "Config loaded.");
    }
    Ok(cfg)
}

/// Runs the parsed command line.
///
/// # Errors
/// Anything the command could not do; `main` maps it to an exit code.
pub fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Config { example: true } = cli.command {
        if cli.json {
            print_json(&envelope("config", true, json!({"example": config::EXAMPLE}), vec![], vec![]));
        } else {
            out!("{}", config::EXAMPLE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = load_config(&cli)?;
    let json = wants_json(&cli);
    let verbose = cli.log_level;
    let cli_global = GlobalFlags { config: cli.config.clone(), policy: cli.policy.clone() };
    let engine = || wire::engine(&cfg);
    warn_about_a_legacy_journal(&cfg);
    match cli.command {
        Command::Config { .. } => {
            let mut value = serde_json::to_value(&cfg).context("encoding the config")?;
            // A queue's password is shown as ***.
            for key in ["/source/url", "/ha/url", "/state/journal"] {
                if let Some(Value::String(url)) = value.pointer_mut(key) {
                    *url = steward_queue::url::redact(url);
                }
            }
            if json {
                print_json(&envelope("config", true, json!({"config": value, "state_dir": cfg.state_dir()}), vec![], vec![]));
            } else {
                let mut lines = Vec::new();
                flatten("", &value, &mut lines);
                lines.push(format!("(state directory: {})", cfg.state_dir().display()));
                outln!("{}", lines.join("\n"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            ensure_target(&cfg)?;
            status(&cfg, &engine()?, json)
        }
        Command::Analyze => {
            ensure_target(&cfg)?;
            analyze(&cfg, &engine()?, json)
        }
        Command::Execute(args) => {
            ensure_target(&cfg)?;
            let engine = wire::engine_as(&cfg, &audit_actor())?;
            if !args.dry_run && !cfg.auto.dry_run {
                audit_start(
                    &cfg,
                    &engine,
                    Some((
                        "execute",
                        json!({"max": args.max, "min_confidence": args.min_confidence, "force_confidence": args.force_confidence}),
                    )),
                )?;
            }
            let _lease = lease_for_command(&engine, args.dry_run || cfg.auto.dry_run)?;
            execute(&engine, &args, json, verbose)
        }
        Command::Loop { interval, max_cycles, dry_run } => {
            ensure_target(&cfg)?;
            let engine = engine()?;
            if !dry_run && !cfg.auto.dry_run {
                audit_start(&cfg, &engine, None)?;
            }
            run_loop(&cfg, &engine, interval, max_cycles, dry_run, json)
        }
        Command::Agents => {
            ensure_target(&cfg)?;
            agents(&engine()?, json)
        }
        Command::Worker(args) => run_worker(&cfg, args),
        Command::Rollback { decision_id } => {
            ensure_target(&cfg)?;
            let engine = wire::engine_as(&cfg, &audit_actor())?;
            let _lease = lease_for_command(&engine, false)?;
            audit_start(&cfg, &engine, Some(("rollback", json!({"decision_id": decision_id}))))?;
            rollback(&engine, &decision_id, json)
        }
        Command::Demo(args) => crate::demo::run(args, json),
        Command::Serve { dry_run, .. } => {
            ensure_target(&cfg)?;
            let stop = install_stop_handlers()?;
            let engine = engine()?;
            if !dry_run && !cfg.auto.dry_run {
                audit_start(&cfg, &engine, None)?;
            }
            crate::daemon::serve(&cfg, engine, dry_run, stop)
        }
        Command::Start { dry_run, .. } => {
            ensure_target(&cfg)?;
            let global = daemon_args(&cli_global, &cfg)?;
            crate::daemon::start(&cfg, &global, dry_run, json)
        }
        Command::Stop { timeout } => crate::daemon::stop(&cfg, seconds(timeout, "--timeout")?, json),
        Command::Restart { timeout } => {
            ensure_target(&cfg)?;
            crate::daemon::stop(&cfg, seconds(timeout, "--timeout")?, json)?;
            let global = daemon_args(&cli_global, &cfg)?;
            crate::daemon::start(&cfg, &global, false, json)
        }
        Command::Health => crate::daemon::health(&cfg, json),
        Command::Logs { tail, follow } => {
            let stop = install_stop_handlers()?;
            crate::daemon::logs(&cfg, tail, follow, &stop)
        }
        Command::Prediction(p) => crate::predict::run(p, &cfg, json),
        Command::Simulate(args) => crate::simulate::run(&args, cli_global.policy.as_deref(), &cfg, json),
        Command::Reconcile { once } => crate::reconcile::reconcile(&cfg, once, json),
        Command::Orchestrate { dry_run } => crate::reconcile::orchestrate(&cfg, dry_run, json),
        Command::Tasks { action, state, limit } => crate::reconcile::tasks(&cfg, action, state.as_deref(), limit, json),
        Command::Audit { action } => crate::audit::run(&cfg, action, json),
        Command::Backup { action } => crate::backup::run(&cfg, cli_global.config.as_deref(), action, json),
        Command::Incidents { action } => crate::incidents::run(&cfg, action, json),
    }
}

/// Who runs this command, for the audit trail.
fn audit_actor() -> String {
    steward_store::audit::cli_actor()
}

/// Before a command that acts: the config (recorded when it changed) and
/// the command with who asked for it, appended once the engine holds the
/// target lock (a refused lock leaves the journal untouched).
fn audit_start(cfg: &Config, engine: &steward_runtime::Engine, command: Option<(&str, Value)>) -> Result<()> {
    if !cfg.journal.audit {
        return Ok(());
    }
    let actor = audit_actor();
    engine.audit_when_acting(Some(audited_config(cfg)?), command.map(|(name, detail)| (actor.as_str(), name, detail)));
    Ok(())
}

/// The effective config as the audit trail records it: secrets replaced by
/// a digest, so a change is seen and the value is not written down. Every
/// string under a key that names credentials or where they travel (tokens,
/// headers, environments, passwords, URLs) counts as one.
fn audited_config(cfg: &Config) -> Result<Value> {
    const SENSITIVE: [&str; 9] = ["token", "tokens", "headers", "env", "password", "secret", "url", "alertmanagers", "webhooks"];
    fn digest_strings(v: &mut Value) {
        match v {
            Value::String(s) => *v = Value::String(format!("sha256:{}", &steward_store::audit::sha256_hex(s.as_bytes())[..16])),
            Value::Array(a) => a.iter_mut().for_each(digest_strings),
            Value::Object(m) => m.values_mut().for_each(digest_strings),
            _ => {}
        }
    }
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if SENSITIVE.contains(&k.as_str()) {
                        digest_strings(x);
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(cfg).context("encoding the config")?;
    walk(&mut v);
    // The same directory named two ways (`./coordination` from a shell,
    // an absolute path from `steward start`) is not a change.
    for ptr in ["/coordination/dir", "/state/dir"] {
        if let Some(Value::String(p)) = v.pointer_mut(ptr) {
            if let Ok(real) = std::fs::canonicalize(&*p) {
                *p = real.display().to_string();
            }
        }
    }
    Ok(v)
}

/// steward 0.1.0 kept one state directory for every coordination
/// directory in a parent; its journal stays where it was: say so once.
fn warn_about_a_legacy_journal(cfg: &Config) {
    let Some(legacy) = cfg.legacy_state_dir() else { return };
    let new = cfg.state_dir();
    let old_journal = legacy.join(steward_store::JOURNAL_FILE);
    if old_journal.is_file() && !new.join(steward_store::JOURNAL_FILE).exists() {
        tracing::warn!(
            old = %old_journal.display(),
            new = %new.display(),
            "State is now kept per coordination directory; an older journal (shared by every directory in this parent) \
             was left where it was. Move it into the new state directory, or pass --state-dir to keep using the old one."
        );
    }
}

/// With HA, a command that acts by hand (`execute`, `rollback`) holds the
/// lease while it runs, as the daemon does; while a replica leads, it does nothing.
fn lease_for_command(engine: &steward_runtime::Engine, dry_run: bool) -> Result<Option<steward_runtime::ha::HeldLease>> {
    match engine.leadership().filter(|_| !dry_run) {
        Some(l) => Ok(Some(l.hold_for_command().map_err(anyhow::Error::msg)?)),
        None => Ok(None),
    }
}

/// A coordination directory that does not exist is an error, so a typo is
/// not scored as an empty system (and nothing is created for it), unless
/// `--create` (or `coordination.create`) asks for it to be made.
fn ensure_target(cfg: &Config) -> Result<()> {
    if cfg.source.url.is_some() {
        // A queue or a metrics server: the source says itself whether it can be read.
        return Ok(());
    }
    let dir = &cfg.coordination.dir;
    match std::fs::metadata(dir) {
        // A file where the directory belongs is refused by the engine, before it creates anything.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && cfg.coordination.create => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the coordination directory {}", dir.display()))?;
            tracing::info!(dir = %dir.display(), "Created the coordination directory (--create).");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = similar_directory(dir).map(|d| format!(" Did you mean {}?", d.display())).unwrap_or_default();
            Err(UsageError(format!(
                "the coordination directory {} does not exist.{hint} Pass --create (or set coordination.create: true) to make it",
                dir.display()
            ))
            .into())
        }
        Err(e) => Err(e).with_context(|| format!("reading the coordination directory {}", dir.display())),
    }
}

/// A directory next to `dir` whose name is one or two edits away (a typo).
fn similar_directory(dir: &Path) -> Option<std::path::PathBuf> {
    let name = dir.file_name()?.to_str()?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let entries = std::fs::read_dir(&parent).ok()?;
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .map(|n| (edit_distance(name, &n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| parent.join(n))
}

/// Levenshtein distance, for typo hints on short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// `section.key = value` lines, one per key.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, x, out);
            }
        }
        other => out.push(format!("{prefix} = {other}")),
    }
}

fn decision_json(d: &Decision) -> Value {
    serde_json::to_value(d).unwrap_or(Value::Null)
}

fn analyze(cfg: &Config, engine: &Engine, json: bool) -> Result<ExitCode> {
    let (snapshot, analysis) = engine.analyze()?;
    let a = &analysis.assessment;
    let warnings: Vec<String> = a.warnings.iter().map(ToString::to_string).collect();
    if json {
        print_json(&json!({
            "timestamp": format_rfc3339(a.taken_at),
            "coordination_dir": cfg.coordination.dir,
            "source": engine.target(),
            "policy": cfg.auto.policy.to_string(),
            "metrics": a.metrics,
            "decisions": analysis.decisions.iter().map(decision_json).collect::<Vec<_>>(),
            "warnings": warnings,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let m = &a.metrics;
    let mut out = String::new();
    out.push_str(&format!("steward analyze: {} (policy {})\n\n", engine.target(), cfg.auto.policy));
    if !snapshot.target_exists {
        out.push_str("The coordination directory does not exist: scoring it as an empty system.\n\n");
    }
    out.push_str(&metrics_block(m));
    out.push('\n');
    if analysis.decisions.is_empty() {
        out.push_str("No decisions: nothing to do.\n");
    } else {
        let rows: Vec<Vec<String>> = analysis
            .decisions
            .iter()
            .map(|d| {
                vec![d.kind.to_string(), d.priority.to_string(), format!("{:.2}", d.confidence), d.description.clone(), d.rationale.clone()]
            })
            .collect();
        out.push_str(&table(&["DECISION", "PRIO", "CONF", "ACTION", "WHY"], &rows));
    }
    out.push_str(&warnings_block(&warnings));
    out!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn metrics_block(m: &steward_core::assess::Metrics) -> String {
    let mut s = format!(
        "health      {:.3} ({})\nagents      {} active of {}\nqueue       {} pending, {} in flight ({} stale)\ncompleted   {} (rate {:.3}), {} dead-lettered\ntelemetry   {} record{}",
        m.health_score, m.health_state, m.active_agents, m.total_agents, m.work_queue_size, m.in_flight, m.stale_claims, m.completed, m.completion_rate, m.failed, m.telemetry_volume, if m.telemetry_volume == 1 { "" } else { "s" }
    );
    if let Some(e) = m.error_rate {
        s.push_str(&format!(", error rate {e:.3}"));
    }
    if let Some(rt) = m.response_time_ms {
        s.push_str(&format!(", response time {rt:.0} ms"));
    }
    s.push('\n');
    s
}

fn warnings_block(warnings: &[String]) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let mut s = format!("\n{} warning(s):\n", warnings.len());
    for w in warnings.iter().take(20) {
        s.push_str(&format!("  {w}\n"));
    }
    if warnings.len() > 20 {
        s.push_str(&format!("  ... and {} more (see --json)\n", warnings.len() - 20));
    }
    s
}

fn execute(engine: &Engine, args: &ExecuteArgs, json: bool, verbose: u8) -> Result<ExitCode> {
    let opts = RunOptions {
        dry_run: args.dry_run,
        max_decisions: args.max,
        min_confidence: args.min_confidence,
        force_confidence: args.force_confidence,
    };
    let result = engine.execute(&opts);
    engine.flush_telemetry();
    let mut report = result?;
    if verbose == 0 {
        report.decisions = None;
    }
    // A one-shot run does not stop the workers it started: the next run
    // adopts them. Say so, rather than leave them unannounced.
    let left = engine.fleet_workers().len();
    report.workers_left_running = (left > 0).then_some(left);
    let code = if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    if json {
        print_json(&report);
    } else {
        out!("{}", render_report(engine, &report));
    }
    Ok(code)
}

fn render_report(engine: &Engine, r: &CycleReport) -> String {
    let mut out = format!(
        "steward execute: {} (cycle {}, policy {}{})\n\n",
        engine.target(),
        r.cycle_id,
        r.policy,
        if r.dry_run { ", dry run: nothing touched" } else { "" }
    );
    out.push_str(&metrics_block(&r.metrics));
    out.push('\n');
    let mut rows = Vec::new();
    for e in &r.executed {
        rows.push(vec![e.decision_id.clone(), e.kind.clone(), "executed".into(), format!("{} ({} ms)", e.result, e.duration_ms)]);
    }
    for f in &r.failed {
        rows.push(vec![f.decision_id.clone(), f.kind.clone(), "FAILED".into(), f.error.clone()]);
    }
    for s in &r.skipped {
        rows.push(vec![s.decision_id.clone(), s.kind.clone(), "skipped".into(), s.reason.clone()]);
    }
    if rows.is_empty() {
        out.push_str("No decisions: nothing to do.\n");
    } else {
        out.push_str(&table(&["DECISION", "TYPE", "RESULT", "DETAIL"], &rows));
    }
    if let Some(n) = r.workers_left_running {
        out.push_str(&format!(
            "\n{n} worker(s) left running for the next run to adopt: a one-shot execute does not stop its workers \
             (`steward loop` and `steward serve` stop theirs on exit, unless fleet.detach).\n"
        ));
    }
    out.push_str(&warnings_block(&r.warnings));
    out
}

fn run_loop(cfg: &Config, engine: &Engine, interval: Option<f64>, max_cycles: u64, dry_run: bool, json: bool) -> Result<ExitCode> {
    let interval = match interval {
        None => cfg.auto.interval,
        Some(s) if s.is_finite() && s >= MIN_INTERVAL.as_secs_f64() && s < 1e9 => Duration::from_secs_f64(s),
        Some(s) if s.is_finite() && s > 0.0 && s < MIN_INTERVAL.as_secs_f64() => {
            return Err(UsageError(format!(
                "--interval {s} is below the floor of 0.1 s: a cycle lists the whole directory and writes the journal"
            ))
            .into())
        }
        Some(s) => return Err(UsageError(format!("--interval {s} must be a positive number of seconds")).into()),
    };
    let stop = install_stop_handlers()?;
    tracing::info!(dir = %engine.target(), interval_secs = interval.as_secs_f64(), "Loop started.");
    let opts = DriveOptions { interval, max_cycles, dry_run, tick_every: Duration::from_millis(200) };
    let cycles = drive(engine, &opts, &stop, |result| {
        if let Ok(report) = result {
            if json {
                // One JSON document per cycle, one per line.
                outln!("{}", serde_json::to_string(report).unwrap_or_default());
            } else {
                let m = &report.metrics;
                // Say what happened and why, not just how many.
                let mut what: Vec<String> = report.executed.iter().map(|e| format!("{}: {}", e.kind, e.result)).collect();
                what.extend(report.failed.iter().map(|e| format!("{} FAILED: {}", e.kind, e.error)));
                what.extend(report.skipped.iter().map(|e| format!("{} skipped ({})", e.kind, e.reason)));
                outln!(
                    "{} health {:.2} {:<8} agents {:>3} queue {:>5} in-flight {:>4}{}",
                    report.timestamp,
                    m.health_score,
                    m.health_state.as_str(),
                    m.active_agents,
                    m.work_queue_size,
                    m.in_flight,
                    if what.is_empty() { String::new() } else { format!(" | {}", what.join("; ")) }
                );
            }
        }
        if crate::output::stdout_closed() {
            return Next::Stop;
        }
        Next::Continue
    });
    // Whatever ended the loop, the fleet stops with it (unless detached).
    engine.shutdown();
    engine.flush_telemetry();
    let cycles = cycles?;
    tracing::info!(cycles, "Loop stopped.");
    Ok(ExitCode::SUCCESS)
}

/// The global flags `start` passes on to the daemon it spawns.
struct GlobalFlags {
    config: Option<std::path::PathBuf>,
    policy: Option<String>,
}

/// Arguments for the background daemon: absolute paths, since it may
/// outlive the shell that started it.
fn daemon_args(g: &GlobalFlags, cfg: &Config) -> Result<Vec<String>> {
    let abs = |p: &Path| -> Result<String> {
        let p = if p.is_absolute() { p.to_owned() } else { std::env::current_dir().context("reading the working directory")?.join(p) };
        Ok(p.display().to_string())
    };
    let mut args = vec!["--coordination".to_owned(), abs(&cfg.coordination.dir)?, "--state-dir".to_owned(), abs(&cfg.state_dir())?];
    // A queue's URL without its password (the daemon gets that in its environment).
    match cfg.source.kind() {
        Ok(steward_runtime::SourceKind::Queue { url, .. }) => args.extend(["--source".to_owned(), url.without_password().0]),
        Ok(steward_runtime::SourceKind::Prometheus(p)) => args.extend(["--source".to_owned(), p.url.clone()]),
        _ => {}
    }
    if let Some(c) = &g.config {
        args.extend(["--config".to_owned(), abs(c)?]);
    } else if Path::new(config::DEFAULT_FILE).is_file() {
        args.extend(["--config".to_owned(), abs(Path::new(config::DEFAULT_FILE))?]);
    }
    if let Some(p) = &g.policy {
        args.extend(["--policy".to_owned(), p.clone()]);
    }
    Ok(args)
}

fn seconds(v: f64, flag: &str) -> Result<Duration> {
    if v.is_finite() && (0.0..1e7).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(UsageError(format!("{flag} {v} must be a number of seconds")).into())
    }
}

fn rollback(engine: &Engine, decision_id: &str, json: bool) -> Result<ExitCode> {
    let report = engine.rollback(decision_id)?;
    if json {
        print_json(&envelope("rollback", true, serde_json::to_value(&report).unwrap_or(Value::Null), vec![], vec![]));
    } else {
        outln!("Rolled back {decision_id} as {}: {} ({})", report.decision.id, report.decision.description, report.result);
    }
    Ok(ExitCode::SUCCESS)
}

fn status(cfg: &Config, engine: &Engine, json: bool) -> Result<ExitCode> {
    let (_snapshot, analysis) = engine.analyze()?;
    let a = &analysis.assessment;
    let m = &a.metrics;
    let recent = engine.recent_decisions(10)?;
    let daemon = crate::daemon::daemon_info(&cfg.state_dir());
    let mut warnings: Vec<String> = a.warnings.iter().map(ToString::to_string).collect();
    // With HA: who leads, as the lease says.
    let ha = engine.leadership().map(|l| match l.holder_now() {
        Ok((holder, token, left_ms)) => json!({"lease": l.name(), "holder": holder, "token": token, "expires_in_ms": left_ms}),
        Err(e) => {
            warnings.push(format!("the HA lease {} cannot be read: {e}", l.name()));
            json!({"lease": l.name(), "holder": null, "error": e})
        }
    });
    if json {
        let data = json!({
            "coordination_dir": cfg.coordination.dir,
            "state_dir": cfg.state_dir(),
            "status": {
                "health_score": m.health_score,
                "health_state": m.health_state,
                "active_agents": m.active_agents,
                "work_queue_size": m.work_queue_size,
                "completion_rate": m.completion_rate,
                "telemetry_volume": m.telemetry_volume,
                "in_flight": m.in_flight,
                "stale_claims": m.stale_claims,
                "completed": m.completed,
                "failed": m.failed,
                "last_updated": format_rfc3339(a.taken_at),
            },
            "daemon": daemon,
            "recent_decisions": recent,
        });
        let mut data = data;
        if let Some(ha) = &ha {
            data["ha"] = ha.clone();
        }
        print_json(&envelope("status", true, data, vec![], warnings));
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!("steward status: {}\n\n", cfg.coordination.dir.display());
    out.push_str(&metrics_block(m));
    match (daemon["running"].as_bool(), daemon["pid"].as_u64()) {
        (Some(true), Some(pid)) => {
            out.push_str(&format!("daemon      running, pid {pid}, up {}\n", age(daemon["uptime_seconds"].as_u64().unwrap_or(0))))
        }
        _ => out.push_str("daemon      not running\n"),
    }
    if let Some(ha) = &ha {
        match ha["holder"].as_str() {
            Some(h) => out.push_str(&format!(
                "ha          lease {} held by {h} (fencing token {}, {:.1} s left)\n",
                ha["lease"].as_str().unwrap_or_default(),
                ha["token"],
                ha["expires_in_ms"].as_f64().unwrap_or(0.0) / 1000.0
            )),
            None => out.push_str(&format!("ha          lease {}: nobody leads now\n", ha["lease"].as_str().unwrap_or_default())),
        }
    }
    out.push('\n');
    if recent.is_empty() {
        out.push_str("No decisions journaled yet (run `steward execute`).\n");
    } else {
        let rows: Vec<Vec<String>> = recent
            .iter()
            .map(|e| {
                let (result, why) =
                    e.outcome.as_ref().map_or(("pending".to_owned(), String::new()), |o| (o.result.as_str().to_owned(), o.reason.clone()));
                vec![e.decision.id.clone(), e.timestamp.clone(), e.decision.kind.to_string(), result, e.decision.description.clone(), why]
            })
            .collect();
        out.push_str("Recent decisions (undo one with `steward rollback ID`):\n");
        out.push_str(&table(&["ID", "WHEN", "TYPE", "RESULT", "ACTION", "DETAIL"], &rows));
    }
    out.push_str(&warnings_block(&warnings));
    out!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn agents(engine: &Engine, json: bool) -> Result<ExitCode> {
    let (snapshot, _) = engine.analyze()?;
    let now = snapshot.taken_at;
    let rows: Vec<Value> = snapshot
        .agents
        .iter()
        .map(|a| {
            let work: Vec<&str> =
                snapshot.claims.iter().filter(|c| c.claimed_by.as_deref() == Some(a.id.as_str())).map(|c| c.id.as_str()).collect();
            json!({
                "id": a.id,
                "file": a.file,
                "status": a.status,
                "lifecycle": a.lifecycle,
                "active": is_active(a, engine.config(), now),
                "heartbeat_age_seconds": a.last_seen.map(|t| age_secs(now, t)),
                "liveness_from": a.liveness_from,
                "pid": a.pid,
                "capacity": a.capacity,
                "current_work": work,
            })
        })
        .collect();
    let warnings: Vec<String> = snapshot.warnings.iter().map(ToString::to_string).collect();
    if json {
        print_json(&envelope("agents", true, json!({"coordination_dir": engine.target(), "agents": rows}), vec![], warnings));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        outln!("No agent files in {}.", engine.target());
    } else {
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
                vec![
                    s("id"),
                    s("status"),
                    s("lifecycle"),
                    r["heartbeat_age_seconds"].as_u64().map_or("-".into(), age),
                    if r["active"].as_bool() == Some(true) { "yes".into() } else { "no".into() },
                    r["pid"].as_u64().map_or("-".into(), |p| p.to_string()),
                    r["current_work"]
                        .as_array()
                        .map_or(String::new(), |w| w.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
                ]
            })
            .collect();
        out!("{}", table(&["AGENT", "STATUS", "PHASE", "HEARTBEAT", "ACTIVE", "PID", "WORK"], &table_rows));
    }
    out!("{}", warnings_block(&warnings));
    Ok(ExitCode::SUCCESS)
}

/// `steward worker`: the built-in worker until SIGTERM (or its limits).
fn run_worker(cfg: &Config, args: WorkerArgs) -> Result<ExitCode> {
    let service = args.service_time.parse().map_err(|e: String| UsageError(format!("--service-time: {e}")))?;
    if !(0.0..=1.0).contains(&args.fail_rate) {
        return Err(UsageError(format!("--fail-rate {} must be between 0 and 1", args.fail_rate)).into());
    }
    let positive = |flag: &str, v: f64| -> Result<Duration> {
        if v.is_finite() && v > 0.0 && v < 1e7 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(UsageError(format!("{flag} {v} must be a positive number of seconds")).into())
        }
    };
    let heartbeat_interval = positive("--heartbeat-interval", args.heartbeat_interval)?;
    let exec_timeout = positive("--exec-timeout", args.exec_timeout)?;
    if !(args.exit_when_idle.is_finite() && args.exit_when_idle >= 0.0) {
        return Err(UsageError(format!("--exit-when-idle {} must be zero or more seconds", args.exit_when_idle)).into());
    }
    let id = args.id.or_else(|| std::env::var("STEWARD_AGENT_ID").ok()).unwrap_or_else(|| format!("agent_{}", std::process::id()));
    let opts = WorkerOptions {
        service,
        fail_rate: args.fail_rate,
        exec: args.exec,
        exec_timeout,
        heartbeat_interval,
        max_attempts: args.max_attempts,
        max_items: args.max_items,
        exit_when_idle: (args.exit_when_idle > 0.0).then(|| Duration::try_from_secs_f64(args.exit_when_idle).unwrap_or(Duration::MAX)),
        seed: args.seed,
        ledger: args.ledger,
        fsync: args.fsync,
        max_item_bytes: cfg.coordination.max_item_bytes,
        batch: args.batch.max(1),
        ..WorkerOptions::new(id)
    };
    // `--queue`, else the config's source when it is a queue, else the directory.
    let queue = match &args.queue {
        Some(url) => Some(steward_queue::QueueUrl::parse(url).map_err(|e| UsageError(format!("--queue: {e}")))?),
        None => match cfg.source.kind() {
            Ok(steward_runtime::SourceKind::Queue { url, .. }) => Some(url),
            _ => None,
        },
    };
    let stop = install_finish_handlers()?;
    match queue {
        Some(url) => worker::run_queue(&url, opts, &stop)?,
        None => worker::run(&cfg.coordination.dir, opts, &stop)?,
    };
    Ok(ExitCode::SUCCESS)
}
