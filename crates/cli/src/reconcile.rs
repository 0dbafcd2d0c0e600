//! `steward reconcile`, `steward orchestrate`, `steward tasks`: the glue
//! between the config, `steward_reconcile` and the terminal.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use steward_core::time::format_rfc3339;
use steward_reconcile::{Event, Inventory, Orchestrator, RunOptions};
use steward_store::{Journal, TaskOutcome, TaskState};

use crate::cli::TasksAction;
use crate::config::Config;
use crate::error::UsageError;
use crate::output::{out, outln, print_json, table};
use crate::signals::install_stop_handlers;

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The datasets and the inventory, or a usage error saying what is missing.
fn open(cfg: &Config) -> Result<(Vec<steward_core::reconcile::Dataset>, Inventory)> {
    if cfg.datasets.is_empty() {
        return Err(usage("no datasets are configured: add a datasets: list and inventory.url to the config (steward config --example)"));
    }
    let datasets = cfg.datasets().map_err(|e| usage(format!("{}: {}", e.key, e.message)))?;
    // A lake that cannot be opened is a setting to fix: exit 2, naming the key.
    let inv = Inventory::open(&cfg.inventory.url).map_err(|e| usage(e.to_string()))?;
    Ok((datasets, inv))
}

fn journal(cfg: &Config) -> Result<Journal> {
    let dir = cfg.state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating the state directory {}", dir.display()))?;
    let at = cfg.journal();
    Journal::open_at(&at).with_context(|| format!("opening the journal {at}"))
}

/// A spinner or bar on a terminal; nothing otherwise.
fn progress(total: Option<u64>, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

fn report_json(r: &steward_reconcile::Report) -> Value {
    json!({
        "at": format_rfc3339(r.at),
        "listed": r.listed,
        "unreadable": r.unreadable,
        "gaps": r.gaps,
        "by_priority": r.gaps_by_priority,
        "queued": r.queued,
        "resolved": r.resolved,
        "gaps_file": r.gaps_file,
        "datasets": r.datasets.iter().map(|d| json!({
            "name": d.name,
            "expected": d.coverage.expected,
            "valid": d.coverage.valid,
            "missing": d.coverage.missing,
            "truncated": d.coverage.truncated,
            "stale": d.coverage.stale,
            "coverage": d.ratio,
        })).collect::<Vec<_>>(),
    })
}

fn print_report(r: &steward_reconcile::Report, json: bool) {
    if json {
        print_json(&report_json(r));
        return;
    }
    let rows: Vec<Vec<String>> = r
        .datasets
        .iter()
        .map(|d| {
            let c = &d.coverage;
            vec![
                d.name.clone(),
                c.expected.to_string(),
                c.valid.to_string(),
                c.missing.to_string(),
                c.truncated.to_string(),
                c.stale.to_string(),
                format!("{:.1}%", d.ratio * 100.0),
            ]
        })
        .collect();
    out!("{}", table(&["DATASET", "EXPECTED", "VALID", "MISSING", "TRUNCATED", "STALE", "COVERAGE"], &rows));
    let by: Vec<String> = steward_core::reconcile::Priority::ALL
        .iter()
        .map(|p| format!("{} {}", r.gaps_by_priority.get(p.as_str()).copied().unwrap_or(0), p.as_str()))
        .collect();
    outln!(
        "\n{} objects listed; {} gap(s) ({}); {} task(s) queued, {} resolved; {}",
        r.listed,
        r.gaps,
        by.join(", "),
        r.queued,
        r.resolved,
        r.gaps_file.display()
    );
    if r.unreadable > 0 {
        outln!("{} entr(ies) of the lake could not be read (see the log)", r.unreadable);
    }
}

/// `steward reconcile [--once]`.
///
/// # Errors
/// Bad settings (exit 2), or the lake or the journal failing (exit 1).
pub fn reconcile(cfg: &Config, once: bool, json: bool) -> Result<ExitCode> {
    let (_, inv) = open(cfg)?;
    let mut journal = journal(cfg)?;
    let stop = if once { None } else { Some(install_stop_handlers()?) };
    loop {
        // `to: today` moves: expand again each time.
        let datasets = cfg.datasets().map_err(|e| usage(format!("{}: {}", e.key, e.message)))?;
        let bar = progress(None, "listing the lake");
        let now = steward_runtime::now_ms();
        let result = steward_reconcile::reconcile(&datasets, &inv, &mut journal, &cfg.state_dir(), now, &mut |n| {
            if let Some(b) = &bar {
                b.set_message(format!("listing the lake: {n} objects"));
            }
        });
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let (report, _) = result.context("reconciling")?;
        tracing::info!(gaps = report.gaps, queued = report.queued, resolved = report.resolved, "Reconciled.");
        print_report(&report, json);
        let Some(stop) = &stop else { return Ok(ExitCode::SUCCESS) };
        let until = std::time::Instant::now() + cfg.orchestrator.reconciliation_interval;
        while std::time::Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `steward orchestrate [--dry-run]`.
///
/// # Errors
/// Bad settings (exit 2), or the journal failing (exit 1).
pub fn orchestrate(cfg: &Config, dry_run: bool, json: bool) -> Result<ExitCode> {
    let (datasets, inv) = open(cfg)?;
    let mut journal = journal(cfg)?;
    let orch = Orchestrator::new(&cfg.orchestrator, &datasets, Arc::new(inv)).with_cwd(cfg.base_dir.clone());
    if dry_run {
        let plan = orch.plan(&journal)?;
        if json {
            print_json(&json!({"dry_run": true, "would_run": plan.iter().map(|(t, argv)| json!({
                "id": t.id, "priority": t.priority, "dataset": t.dataset, "key": t.key, "kind": t.kind,
                "attempts": t.attempts, "not_before": format_rfc3339(t.not_before), "argv": argv,
            })).collect::<Vec<_>>()}));
        } else {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|(t, argv)| {
                    vec![
                        t.id.to_string(),
                        t.priority.as_str().into(),
                        t.dataset.clone(),
                        t.key.clone(),
                        t.kind.as_str().into(),
                        t.attempts.to_string(),
                        argv.join(" "),
                    ]
                })
                .collect();
            out!("{}", table(&["ID", "PRIORITY", "DATASET", "KEY", "KIND", "ATTEMPTS", "WOULD RUN"], &rows));
            outln!("{} task(s) would run, in this order; nothing ran (--dry-run)", plan.len());
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A run by hand is a manual command: who started it goes in the audit trail.
    crate::audit::record_command(cfg, &mut journal, "orchestrate", json!({}))?;
    let stop = install_stop_handlers()?;
    let total = journal.queued_tasks(usize::MAX)?.len() as u64;
    let bar = progress(Some(total), "collecting");
    let tty = bar.is_some();
    let opts = RunOptions { max_runtime: cfg.orchestrator.max_runtime, stop: Arc::clone(&stop) };
    let mut finished = Vec::new();
    let summary = orch.run(&mut journal, &opts, &mut |e| match e {
        Event::Started { task, argv } => {
            tracing::info!(task = task.id, dataset = %task.dataset, key = %task.key, attempt = task.attempts + 1, argv = ?argv, "Collector started.");
        }
        Event::Finished { task, outcome, note, secs } => {
            let what = match outcome {
                TaskOutcome::Done => "done",
                TaskOutcome::Retry { .. } => "retry",
                TaskOutcome::Dead { .. } => "dead",
                TaskOutcome::Requeue { .. } => "requeued",
            };
            let line = format!("task {} {} {}: {what} (ran {secs:.1} s): {note}", task.id, task.dataset, task.key);
            match &bar {
                Some(b) => {
                    if matches!(outcome, TaskOutcome::Done | TaskOutcome::Dead { .. }) {
                        b.inc(1);
                    }
                    if !matches!(outcome, TaskOutcome::Done) {
                        b.println(&line);
                    }
                }
                None if !json => outln!("{line}"),
                None => {}
            }
            finished.push(json!({"id": task.id, "dataset": task.dataset, "key": task.key, "result": what, "note": note, "secs": secs}));
        }
        Event::Requeued { ids } => {
            let line = format!("{} task(s) left running by a stopped orchestrator were requeued: {ids:?}", ids.len());
            match &bar {
                Some(b) => b.println(&line),
                None if !json => outln!("{line}"),
                None => {}
            }
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json {
        print_json(&json!({"summary": summary, "tasks": finished}));
    } else {
        outln!(
            "{} started: {} done, {} already valid, {} to retry, {} dead-lettered, {} requeued; {} still queued{}",
            summary.started,
            summary.done,
            summary.already_valid,
            summary.retried,
            summary.dead,
            summary.requeued,
            summary.remaining,
            if stop.load(Ordering::SeqCst) { " (stopped by a signal)" } else { "" }
        );
        if tty && summary.dead > 0 {
            outln!("dead-lettered tasks: steward tasks --state dead; retry with steward tasks retry ID");
        }
    }
    Ok(if summary.dead > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `steward tasks [retry ..]`.
///
/// # Errors
/// A bad state name (exit 2), or the journal failing.
pub fn tasks(cfg: &Config, action: Option<TasksAction>, state: Option<&str>, limit: usize, json: bool) -> Result<ExitCode> {
    let now = steward_runtime::now_ms();
    if let Some(TasksAction::Retry { id, all_dead }) = action {
        if id.is_none() && !all_dead {
            return Err(usage("steward tasks retry needs a task id, or --all-dead"));
        }
        let mut j = journal(cfg)?;
        crate::audit::record_command(cfg, &mut j, "tasks retry", json!({"id": id, "all_dead": all_dead}))?;
        let n = j.retry_dead(id, now)?;
        if let (Some(id), 0) = (id, n) {
            return Err(usage(match j.task(id)? {
                None => format!("there is no task {id} (steward tasks lists them)"),
                Some(t) => {
                    format!("task {id} is {}, not dead-lettered (steward tasks --state dead lists those that are)", t.state.as_str())
                }
            }));
        }
        if json {
            print_json(&json!({"requeued": n}));
        } else {
            outln!("{n} dead-lettered task(s) back in the queue");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let states: Vec<TaskState> = match state {
        None => vec![TaskState::Queued, TaskState::Running, TaskState::Dead],
        Some(s) => vec![parse_state(s)?],
    };
    let path = cfg.journal();
    let Some(j) = Journal::open_existing_at(&path)? else {
        if json {
            print_json(&json!({"by_priority": {}, "by_state": {}, "tasks": []}));
        } else {
            outln!("no journal yet at {path}: run steward reconcile first");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let counts = j.task_counts(now)?;
    let list = j.tasks(&states, limit)?;
    if json {
        print_json(&json!({
            "by_priority": counts.by_priority.iter().map(|(p, n)| (p.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "by_state": counts.by_state.iter().map(|(s, n)| (s.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "ready": counts.ready,
            "tasks": list,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let by_p: Vec<String> = counts.by_priority.iter().map(|(p, n)| format!("{n} {}", p.as_str())).collect();
    let by_s: Vec<String> = counts.by_state.iter().map(|(s, n)| format!("{n} {}", s.as_str())).collect();
    outln!(
        "open: {} ({} ready now); all: {}",
        by_p.join(", "),
        counts.ready,
        if by_s.is_empty() { "none".into() } else { by_s.join(", ") }
    );
    if !list.is_empty() {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.state.as_str().into(),
                    t.priority.as_str().into(),
                    t.dataset.clone(),
                    t.key.clone(),
                    t.kind.as_str().into(),
                    t.attempts.to_string(),
                    t.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out!("\n{}", table(&["ID", "STATE", "PRIORITY", "DATASET", "KEY", "KIND", "ATTEMPTS", "LAST ERROR"], &rows));
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_state(s: &str) -> Result<TaskState> {
    [TaskState::Queued, TaskState::Running, TaskState::Done, TaskState::Dead, TaskState::Resolved]
        .into_iter()
        .find(|t| t.as_str() == s)
        .ok_or_else(|| usage(format!("--state {s:?}: one of queued, running, done, dead, resolved")))
}
