//! `steward incidents list | show | ack | resolve`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use steward_core::time::format_rfc3339;
use steward_store::audit::{cli_actor, AuditKey};
use steward_store::{IncidentDetail, Journal};

use crate::cli::IncidentsAction;
use crate::config::Config;
use crate::error::UsageError;
use crate::output::{age, out, outln, print_json, table};

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// `steward incidents ...`.
///
/// # Errors
/// An unknown incident (exit 2), or the journal cannot be read or written.
pub fn run(cfg: &Config, action: Option<IncidentsAction>, json: bool) -> Result<ExitCode> {
    let path = cfg.journal();
    let now = steward_runtime::now_ms();
    match action.unwrap_or(IncidentsAction::List { all: false, limit: 50 }) {
        IncidentsAction::List { all, limit } => {
            let list = match Journal::open_existing_at(&path)? {
                Some(j) => j.incidents(all, limit)?,
                None => Vec::new(),
            };
            if json {
                print_json(&json!({"incidents": list}));
                return Ok(ExitCode::SUCCESS);
            }
            if list.is_empty() {
                outln!("no {}incidents", if all { "" } else { "open " });
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    vec![
                        i.id.to_string(),
                        format!("sev{}", i.severity),
                        i.phase.as_str().into(),
                        i.rule.clone(),
                        i.target.clone(),
                        age(u64::try_from((now - i.opened_at).max(0) / 1000).unwrap_or(0)),
                        i.acked.as_ref().map(|(who, _)| who.clone()).unwrap_or_default(),
                        i.summary.clone(),
                    ]
                })
                .collect();
            out!("{}", table(&["ID", "SEV", "PHASE", "RULE", "TARGET", "OPENED", "ACKED BY", "SUMMARY"], &rows));
            Ok(ExitCode::SUCCESS)
        }
        IncidentsAction::Show { id } => {
            let j = Journal::open_existing_at(&path)?.ok_or_else(|| usage(format!("no incident {id}: no journal yet")))?;
            let detail = j.incident(id)?.ok_or_else(|| usage(format!("no incident {id} (steward incidents list --all)")))?;
            if json {
                print_json(&detail);
                return Ok(ExitCode::SUCCESS);
            }
            let end = detail.incident.phases.last().map_or(now, |(_, t)| *t).max(detail.incident.last_seen);
            let metrics = j.cycle_metrics(detail.incident.opened_at.saturating_sub(5 * 60_000), end)?;
            out!("{}", report(&detail, &metrics, now));
            Ok(ExitCode::SUCCESS)
        }
        IncidentsAction::Ack { id } | IncidentsAction::Resolve { id, .. } if Journal::open_existing_at(&path)?.is_none() => {
            Err(usage(format!("no incident {id}: no journal yet")))
        }
        IncidentsAction::Ack { id } => change(cfg, id, json, |j, who| j.ack_incident(id, who, now), "acknowledged"),
        IncidentsAction::Resolve { id, note } => {
            let note = note.unwrap_or_default();
            change(cfg, id, json, |j, who| j.resolve_incident(id, who, now, &note), "resolved (closed)")
        }
    }
}

fn change(
    cfg: &Config,
    id: i64,
    json: bool,
    f: impl FnOnce(&Journal, &str) -> Result<bool, steward_store::JournalError>,
    done: &str,
) -> Result<ExitCode> {
    let path = cfg.journal();
    let mut j = Journal::open_at(&path).with_context(|| format!("opening the journal {path}"))?;
    let who = cli_actor();
    if cfg.journal.audit {
        let recorded = j.audit_pubkey()?;
        let (key, _) = AuditKey::load_or_create_for(&cfg.state_dir(), recorded.as_deref())?;
        j.enable_audit(key, who.clone(), Some(cfg.state_dir().join(steward_store::audit::HEAD_FILE)))?;
    }
    if !f(&j, &who)? {
        return Err(usage(format!("incident {id} is unknown or closed already (steward incidents list --all)")));
    }
    if json {
        print_json(&json!({"incident": id, "done": done, "by": who}));
    } else {
        outln!("incident {id} {done} by {who}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The post-incident report, in Markdown.
pub fn report(d: &IncidentDetail, metrics: &[steward_store::CycleMetric], now: steward_core::time::UnixMs) -> String {
    let i = &d.incident;
    let mut s = String::new();
    let _ = writeln!(s, "# Incident {}: {} (severity {})\n", i.id, i.rule, i.severity);
    let _ = writeln!(s, "- **Target:** {}", i.target);
    let _ = writeln!(s, "- **Summary:** {}", i.summary);
    let _ = writeln!(s, "- **Phase:** {}", i.phase.as_str());
    let end = if i.phase == steward_core::incident::Phase::Closed { i.phases.last().map_or(now, |(_, t)| *t) } else { now };
    let _ = writeln!(
        s,
        "- **Opened:** {} ({}; {} min{})",
        format_rfc3339(i.opened_at),
        if i.phase == steward_core::incident::Phase::Closed { "closed" } else { "still open" },
        (end - i.opened_at) / 60_000,
        if i.phase == steward_core::incident::Phase::Closed { " long" } else { " so far" }
    );
    let _ = writeln!(s, "- **Seen in:** {} cycle(s), last at {}", i.occurrences, format_rfc3339(i.last_seen));
    if let Some((who, at)) = &i.acked {
        let _ = writeln!(s, "- **Acknowledged:** by {who} at {}", format_rfc3339(*at));
    }
    let _ = writeln!(s, "\n## Timeline\n");
    let _ = writeln!(s, "| time | event | by | detail |\n|---|---|---|---|");
    for e in &d.timeline {
        let _ = writeln!(s, "| {} | {} | {} | {} |", format_rfc3339(e.ts), e.what, e.actor, e.message.replace('|', "\\|"));
    }
    let _ = writeln!(s, "\n## Metrics\n");
    if metrics.is_empty() {
        let _ = writeln!(s, "No cycles recorded in that window.");
    } else {
        let worst = metrics.iter().min_by(|a, b| a.score.total_cmp(&b.score));
        let peak_queue = metrics.iter().map(|m| m.queue).max().unwrap_or(0);
        let (first, last) = (&metrics[0], &metrics[metrics.len() - 1]);
        let _ = writeln!(s, "| | health | state | queue | agents |\n|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| at detection | {:.2} | {} | {} | {} |",
            i.assessment["metrics"]["health_score"].as_f64().unwrap_or(f64::NAN),
            i.assessment["metrics"]["health_state"].as_str().unwrap_or("?"),
            i.assessment["metrics"]["work_queue_size"],
            i.assessment["metrics"]["active_agents"]
        );
        if let Some(w) = worst {
            let _ = writeln!(s, "| worst ({}) | {:.2} | {} | {} | {} |", format_rfc3339(w.ts), w.score, w.state, w.queue, w.agents);
        }
        let _ =
            writeln!(s, "| latest ({}) | {:.2} | {} | {} | {} |", format_rfc3339(last.ts), last.score, last.state, last.queue, last.agents);
        let _ = writeln!(
            s,
            "\n{} cycles from {} (the window opens 5 min before detection); the queue peaked at {peak_queue}.",
            metrics.len(),
            format_rfc3339(first.ts)
        );
    }
    let _ = writeln!(s, "\n## Actions\n");
    if d.actions.is_empty() {
        let _ = writeln!(s, "No automatic action was taken against it.");
    } else {
        let _ = writeln!(s, "| time | decision | type | outcome |\n|---|---|---|---|");
        for a in &d.actions {
            let outcome = match (&a.result, &a.reason) {
                (Some(r), Some(why)) => format!("{r}: {}", why.replace('|', "\\|")),
                (Some(r), None) => r.clone(),
                _ => "no outcome recorded".into(),
            };
            let _ = writeln!(s, "| {} | {} | {} | {outcome} |", format_rfc3339(a.ts), a.decision_id, a.kind);
        }
    }
    let _ = writeln!(s, "\n## Outcome\n");
    let _ = writeln!(
        s,
        "{}",
        match (&i.resolution, i.phase) {
            (Some(r), _) if r == "auto" =>
                "Closed automatically: its condition cleared, stayed clear through recovery, and did not come back.".to_owned(),
            (Some(r), _) => format!("Closed by hand: {r}."),
            (None, p) if p.is_active() => "Still active: its condition holds.".to_owned(),
            (None, p) => format!("Condition cleared; {} (closes automatically unless it comes back).", p.as_str()),
        }
    );
    s
}
