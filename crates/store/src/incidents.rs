//! Incidents in the journal: one open incident per (rule, target), walked
//! through `detected → assessed → contained → eradicated → recovered →
//! closed`, every transition timestamped in its timeline (and signed into
//! the audit chain), the automatic actions taken linked to it.

use serde::Serialize;
use serde_json::{json, Value};
use steward_core::incident::{IncidentConfig, Phase, Signal};
use steward_core::time::UnixMs;

use crate::audit::NewRecord;
use crate::db::{p, Db, Row};
use crate::{Journal, JournalError, Result};

/// An incident as `steward incidents` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Incident {
    /// Its id.
    pub id: i64,
    /// The rule that raised it.
    pub rule: String,
    /// What it concerns.
    pub target: String,
    /// 1, 2 or 3 (1 is the worst).
    pub severity: u8,
    /// The rule's last sentence about it.
    pub summary: String,
    /// Where it is.
    pub phase: Phase,
    /// When it was detected (Unix ms).
    pub opened_at: UnixMs,
    /// When its rule last held.
    pub last_seen: UnixMs,
    /// Cycles its rule held.
    pub occurrences: u64,
    /// When each phase was reached (Unix ms), by name.
    pub phases: Vec<(Phase, UnixMs)>,
    /// Who acknowledged it, and when.
    pub acked: Option<(String, UnixMs)>,
    /// How it was closed: `auto`, or `resolved by ACTOR: note`.
    pub resolution: Option<String>,
    /// What the cycle that detected it saw.
    pub assessment: Value,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TimelineEntry {
    /// When.
    pub ts: UnixMs,
    /// The phase reached, or `note`, `ack`, `recurred`, `action`.
    pub what: String,
    /// Who (`loop`, `cli:USER`).
    pub actor: String,
    /// A sentence.
    pub message: String,
}

/// An automatic action linked to an incident.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LinkedAction {
    /// The decision.
    pub decision_id: String,
    /// When it was linked.
    pub ts: UnixMs,
    /// Its type (`scale_up`, ...).
    pub kind: String,
    /// Its outcome, if recorded (`executed`, `failed`, ...).
    pub result: Option<String>,
    /// The outcome's reason.
    pub reason: Option<String>,
}

/// An incident with its timeline and the actions linked to it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncidentDetail {
    /// The incident.
    pub incident: Incident,
    /// What happened, in order.
    pub timeline: Vec<TimelineEntry>,
    /// The automatic actions taken against it.
    pub actions: Vec<LinkedAction>,
}

/// One cycle's health, queue and agents, for a post-incident report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CycleMetric {
    /// When.
    pub ts: UnixMs,
    /// Health score.
    pub score: f64,
    /// Health state.
    pub state: String,
    /// Work items waiting.
    pub queue: u64,
    /// Active agents.
    pub agents: u64,
}

/// Cycles averaged over a chart's bucket of time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CyclePoint {
    /// The bucket's last cycle.
    pub ts: UnixMs,
    /// Mean health score.
    pub score: f64,
    /// Mean queue depth.
    pub queue: f64,
    /// Mean items in flight.
    pub in_flight: f64,
    /// Mean active agents.
    pub agents: f64,
    /// Mean recommended agents (the policy's target), when recorded.
    pub target: Option<f64>,
    /// Mean items seen (queued, in flight, completed, failed): its growth is the arrival rate.
    pub seen: f64,
    /// Cycles in the bucket.
    pub cycles: u64,
}

/// A change an observation made, for logs, alerts and metrics.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Transition {
    /// The incident.
    pub id: i64,
    /// Its rule and target.
    pub rule: String,
    /// Its target.
    pub target: String,
    /// The phase it reached (or was in, for a link).
    pub phase: Phase,
    /// What happened, in a sentence.
    pub message: String,
}

/// An action the cycle took, to link to the active incidents.
#[derive(Debug, Clone)]
pub struct CycleAction {
    /// The decision.
    pub decision_id: String,
    /// A sentence (`scale_up 2 → 5: executed`).
    pub description: String,
}

const COLUMNS: &str = "id, rule, target, severity, summary, phase, opened_at, last_seen, occurrences, assessed_at, contained_at, eradicated_at, recovered_at, closed_at, acked_at, acked_by, resolution, assessment";

fn row_to_incident(r: &Row) -> Result<Incident> {
    let phase: String = r.get(5)?;
    let at = |i: usize| r.get::<Option<i64>>(i);
    let opened_at: i64 = r.get(6)?;
    let mut phases = vec![(Phase::Detected, opened_at)];
    for (p, i) in [(Phase::Assessed, 9), (Phase::Contained, 10), (Phase::Eradicated, 11), (Phase::Recovered, 12), (Phase::Closed, 13)] {
        if let Some(t) = at(i)? {
            phases.push((p, t));
        }
    }
    let acked = match (at(14)?, r.get::<Option<String>>(15)?) {
        (Some(t), Some(who)) => Some((who, t)),
        _ => None,
    };
    let assessment: Option<String> = r.get(17)?;
    Ok(Incident {
        id: r.get(0)?,
        rule: r.get(1)?,
        target: r.get(2)?,
        severity: u8::try_from(r.get::<i64>(3)?).unwrap_or(3),
        summary: r.get(4)?,
        phase: Phase::parse(&phase).unwrap_or(Phase::Detected),
        opened_at,
        last_seen: r.get(7)?,
        occurrences: u64::try_from(r.get::<i64>(8)?).unwrap_or(0),
        phases,
        acked,
        resolution: r.get(16)?,
        assessment: assessment.and_then(|a| serde_json::from_str(&a).ok()).unwrap_or(Value::Null),
    })
}

fn phase_column(p: Phase) -> &'static str {
    match p {
        Phase::Detected => "opened_at",
        Phase::Assessed => "assessed_at",
        Phase::Contained => "contained_at",
        Phase::Eradicated => "eradicated_at",
        Phase::Recovered => "recovered_at",
        Phase::Closed => "closed_at",
    }
}

/// Moves incident `id` to `phase` at `now`, with a timeline line; returns
/// the audit record and the transition.
fn enter(c: &Db, inc: &Incident, phase: Phase, now: UnixMs, actor: &str, message: &str) -> Result<(NewRecord, Transition)> {
    c.exec(
        "moving an incident",
        &format!("UPDATE incidents SET phase = ?2, {} = ?3 WHERE id = ?1", phase_column(phase)),
        p![inc.id, phase.as_str(), now],
    )?;
    note(c, inc.id, now, phase.as_str(), actor, message)?;
    Ok((
        NewRecord {
            actor: Some(actor.to_owned()),
            kind: "incident".into(),
            payload: json!({"incident": inc.id, "rule": inc.rule, "target": inc.target, "severity": inc.severity, "phase": phase, "message": message}),
        },
        Transition { id: inc.id, rule: inc.rule.clone(), target: inc.target.clone(), phase, message: message.to_owned() },
    ))
}

fn note(c: &Db, id: i64, ts: UnixMs, what: &str, actor: &str, message: &str) -> Result<()> {
    c.exec(
        "writing an incident's timeline",
        "INSERT INTO incident_timeline (incident_id, ts, what, actor, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        p![id, ts, what, actor, message],
    )?;
    Ok(())
}

fn open_incidents(c: &Db) -> Result<Vec<Incident>> {
    c.all("reading incidents", &format!("SELECT {COLUMNS} FROM incidents WHERE phase != 'closed' ORDER BY id"), &[], row_to_incident)
}

impl Journal {
    /// One step of every incident's life, in one transaction: `signals`
    /// (what holds this cycle, among `rules`, the rules evaluated) open or
    /// update incidents; the active ones of `rules` whose signal is gone are
    /// eradicated; eradicated ones recover after `recover_after`, recovered
    /// ones close after `close_after`; `actions` are linked to every active
    /// incident (and contain it). `assessment` is kept with a new incident.
    ///
    /// # Errors
    /// The journal cannot be read or written.
    pub fn observe_incidents(
        &self,
        now: UnixMs,
        rules: &[&str],
        signals: &[Signal],
        assessment: &Value,
        actions: &[CycleAction],
        cfg: &IncidentConfig,
    ) -> Result<Vec<Transition>> {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut transitions = Vec::new();
        let mut records = Vec::new();
        let head = self.db.tx("observing incidents", |tx| {
            let open = open_incidents(tx)?;
            let actor = "loop";
            for s in signals {
                let existing = open.iter().find(|i| i.rule == s.rule && i.target == s.target);
                let inc = match existing {
                    Some(i) => {
                        tx.exec(
                            "updating an incident",
                            tx.pick(
                                "UPDATE incidents SET last_seen = ?2, occurrences = occurrences + 1, summary = ?3, severity = MIN(severity, ?4) WHERE id = ?1",
                                "UPDATE incidents SET last_seen = ?2, occurrences = occurrences + 1, summary = ?3, severity = LEAST(severity, ?4) WHERE id = ?1",
                            ),
                            p![i.id, now, s.summary, s.severity],
                        )?;
                        if !i.phase.is_active() {
                            // It came back before closing: the same incident, active again.
                            let (r, t) = enter(tx, i, Phase::Assessed, now, actor, &format!("recurred: {}", s.summary))?;
                            tx.exec("reopening an incident", "UPDATE incidents SET eradicated_at = NULL, recovered_at = NULL WHERE id = ?1", p![i.id])?;
                            records.push(r);
                            transitions.push(t);
                        }
                        i.clone()
                    }
                    None => {
                        let id: i64 = tx.one(
                            "opening an incident",
                            "INSERT INTO incidents (rule, target, severity, summary, phase, opened_at, last_seen, occurrences, assessment)
                             VALUES (?1, ?2, ?3, ?4, 'detected', ?5, ?5, 1, ?6) RETURNING id",
                            p![s.rule, s.target, s.severity, s.summary, now, assessment.to_string()],
                            |r| r.get(0),
                        )?;
                        let inc = Incident {
                            id,
                            rule: s.rule.to_owned(),
                            target: s.target.clone(),
                            severity: s.severity,
                            summary: s.summary.clone(),
                            phase: Phase::Detected,
                            opened_at: now,
                            last_seen: now,
                            occurrences: 1,
                            phases: vec![(Phase::Detected, now)],
                            acked: None,
                            resolution: None,
                            assessment: assessment.clone(),
                        };
                        note(tx, id, now, "detected", actor, &s.summary)?;
                        records.push(NewRecord {
                            actor: Some(actor.into()),
                            kind: "incident".into(),
                            payload: json!({"incident": id, "rule": s.rule, "target": s.target, "severity": s.severity, "phase": "detected", "message": s.summary}),
                        });
                        transitions.push(Transition {
                            id,
                            rule: inc.rule.clone(),
                            target: inc.target.clone(),
                            phase: Phase::Detected,
                            message: s.summary.clone(),
                        });
                        // Assessed in the same cycle: what it saw is kept with it.
                        let seen = assessment_sentence(assessment);
                        let (r, t) = enter(tx, &inc, Phase::Assessed, now, actor, &seen)?;
                        records.push(r);
                        transitions.push(t);
                        inc
                    }
                };
                // The actions of this cycle are taken against it.
                for a in actions {
                    let linked = tx.exec(
                        "linking an action to an incident",
                        "INSERT INTO incident_actions (incident_id, decision_id, ts) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                        p![inc.id, a.decision_id, now],
                    )?;
                    if linked > 0 {
                        note(tx, inc.id, now, "action", actor, &a.description)?;
                    }
                }
                let phase_now: String = tx.one("reading an incident", "SELECT phase FROM incidents WHERE id = ?1", p![inc.id], |r| r.get(0))?;
                if !actions.is_empty() && Phase::parse(&phase_now).is_some_and(|p| p < Phase::Contained) {
                    let what: Vec<&str> = actions.iter().map(|a| a.description.as_str()).collect();
                    let (r, t) = enter(tx, &inc, Phase::Contained, now, actor, &format!("contained: {}", what.join("; ")))?;
                    records.push(r);
                    transitions.push(t);
                }
            }
            for inc in &open {
                if !rules.contains(&inc.rule.as_str()) || signals.iter().any(|s| s.rule == inc.rule && s.target == inc.target) {
                    continue;
                }
                let since = |p: Phase| inc.phases.iter().rev().find(|(q, _)| *q == p).map(|(_, t)| *t);
                let next = match inc.phase {
                    p if p.is_active() => Some((Phase::Eradicated, format!("eradicated: {} no longer holds", inc.rule))),
                    Phase::Eradicated if since(Phase::Eradicated).is_some_and(|t| now - t >= ms(cfg.recover_after)) => {
                        Some((Phase::Recovered, format!("recovered: clear for {} s", ms(cfg.recover_after) / 1000)))
                    }
                    Phase::Recovered if since(Phase::Recovered).is_some_and(|t| now - t >= ms(cfg.close_after)) => {
                        Some((Phase::Closed, format!("closed: recovered {} s ago and not back", ms(cfg.close_after) / 1000)))
                    }
                    _ => None,
                };
                if let Some((phase, message)) = next {
                    let (r, t) = enter(tx, inc, phase, now, actor, &message)?;
                    if phase == Phase::Closed {
                        tx.exec("closing an incident", "UPDATE incidents SET resolution = 'auto' WHERE id = ?1", p![inc.id])?;
                    }
                    records.push(r);
                    transitions.push(t);
                }
            }
            // The audit records join the same transaction.
            match &self.audit {
                Some(a) => crate::audit::append(tx, a, now, &records),
                None => Ok(None),
            }
        })?;
        self.audit_committed(head);
        Ok(transitions)
    }

    /// Incidents, newest first: only open ones (not closed) unless `all`.
    ///
    /// # Errors
    /// A read failed.
    pub fn incidents(&self, all: bool, limit: usize) -> Result<Vec<Incident>> {
        if !self.has_table("incidents")? {
            return Ok(Vec::new());
        }
        let q = format!("SELECT {COLUMNS} FROM incidents {} ORDER BY id DESC LIMIT ?1", if all { "" } else { "WHERE phase != 'closed'" });
        self.db.all("reading incidents", &q, p![limit], row_to_incident)
    }

    /// Every incident Alertmanager should hear of: all that are not
    /// closed, however old, and those that ended since `since`.
    ///
    /// # Errors
    /// A read failed.
    pub fn incidents_to_alert(&self, since: UnixMs) -> Result<Vec<Incident>> {
        if !self.has_table("incidents")? {
            return Ok(Vec::new());
        }
        let q = format!(
            "SELECT {COLUMNS} FROM incidents WHERE phase != 'closed' OR COALESCE(eradicated_at, closed_at) >= ?1 OR closed_at >= ?1 ORDER BY id"
        );
        self.db.all("reading incidents", &q, p![since], row_to_incident)
    }

    /// One incident with its timeline and linked actions.
    ///
    /// # Errors
    /// A read failed.
    pub fn incident(&self, id: i64) -> Result<Option<IncidentDetail>> {
        if !self.has_table("incidents")? {
            return Ok(None);
        }
        let Some(inc) =
            self.db.opt("reading an incident", &format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"), p![id], row_to_incident)?
        else {
            return Ok(None);
        };
        let timeline = self.db.all(
            "reading a timeline",
            "SELECT ts, what, actor, message FROM incident_timeline WHERE incident_id = ?1 ORDER BY ts, rowid",
            p![id],
            |r| Ok(TimelineEntry { ts: r.get(0)?, what: r.get(1)?, actor: r.get(2)?, message: r.get(3)? }),
        )?;
        let actions = self.db.all(
            "reading an incident's actions",
            "SELECT a.decision_id, a.ts, d.type, o.result, o.reason FROM incident_actions a
             LEFT JOIN decisions d ON d.id = a.decision_id LEFT JOIN outcomes o ON o.decision_id = a.decision_id
             WHERE a.incident_id = ?1 ORDER BY a.ts, a.decision_id",
            p![id],
            |r| {
                Ok(LinkedAction {
                    decision_id: r.get(0)?,
                    ts: r.get(1)?,
                    kind: r.get::<Option<String>>(2)?.unwrap_or_default(),
                    result: r.get(3)?,
                    reason: r.get(4)?,
                })
            },
        )?;
        Ok(Some(IncidentDetail { incident: inc, timeline, actions }))
    }

    /// Acknowledges an open incident: someone is on it. Returns false when
    /// it is closed or unknown.
    ///
    /// # Errors
    /// The write failed.
    pub fn ack_incident(&self, id: i64, actor: &str, now: UnixMs) -> Result<bool> {
        self.manual(
            id,
            actor,
            now,
            "ack",
            |c| {
                c.exec(
                    "acknowledging an incident",
                    "UPDATE incidents SET acked_at = ?2, acked_by = ?3 WHERE id = ?1 AND phase != 'closed'",
                    p![id, now, actor],
                )
            },
            "acknowledged",
        )
    }

    /// Closes an incident by hand, with a note. Returns false when it is
    /// closed already or unknown. If its rule still holds, the next cycle
    /// opens a new one.
    ///
    /// # Errors
    /// The write failed.
    pub fn resolve_incident(&self, id: i64, actor: &str, now: UnixMs, note_text: &str) -> Result<bool> {
        let resolution = if note_text.is_empty() { format!("resolved by {actor}") } else { format!("resolved by {actor}: {note_text}") };
        let r2 = resolution.clone();
        self.manual(
            id,
            actor,
            now,
            "closed",
            move |c| {
                c.exec(
                    "resolving an incident",
                    "UPDATE incidents SET phase = 'closed', closed_at = ?2, resolution = ?3 WHERE id = ?1 AND phase != 'closed'",
                    p![id, now, r2],
                )
            },
            &resolution,
        )
    }

    fn manual(
        &self,
        id: i64,
        actor: &str,
        now: UnixMs,
        what: &str,
        change: impl FnOnce(&Db) -> Result<u64>,
        message: &str,
    ) -> Result<bool> {
        if !self.has_table("incidents")? {
            return Ok(false);
        }
        let record = || {
            vec![NewRecord {
                actor: Some(actor.to_owned()),
                kind: "incident".into(),
                payload: json!({"incident": id, "what": what, "message": message}),
            }]
        };
        self.write_with_audit("changing an incident", now, record, |c| {
            let n = change(c)?;
            if n == 0 {
                // Nothing changed: no timeline line, and the transaction's
                // audit record is rolled back with this error.
                return Err(JournalError::Corrupt { id: format!("incident {id}"), message: NOTHING.into() });
            }
            note(c, id, now, what, actor, message)?;
            Ok(())
        })
        .map(|()| true)
        .or_else(|e| match e {
            JournalError::Corrupt { message, .. } if message == NOTHING => Ok(false),
            e => Err(e),
        })
    }

    /// Open incidents (not closed) by severity 1, 2, 3.
    ///
    /// # Errors
    /// A read failed.
    pub fn open_incident_counts(&self) -> Result<[u64; 3]> {
        let mut out = [0u64; 3];
        if !self.has_table("incidents")? {
            return Ok(out);
        }
        let rows = self.db.all(
            "counting incidents",
            "SELECT severity, COUNT(*) FROM incidents WHERE phase != 'closed' GROUP BY severity",
            &[],
            |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
        )?;
        for (sev, n) in rows {
            if let Some(slot) = usize::try_from(sev - 1).ok().and_then(|i| out.get_mut(i)) {
                *slot = u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// Since when health has been below healthy, if it is now: the first
    /// cycle after the last healthy (or optimal) one.
    ///
    /// # Errors
    /// A read failed.
    pub fn unhealthy_since(&self) -> Result<Option<UnixMs>> {
        self.db.one(
            "reading health history",
            "SELECT MIN(ts) FROM cycles WHERE dry_run = 0 AND ts > COALESCE((SELECT MAX(ts) FROM cycles WHERE dry_run = 0 AND health_state IN ('healthy', 'optimal')), -1)",
            &[],
            |r| r.get(0),
        )
    }

    /// Health score, queue and agents of the cycles from `from` to `to`,
    /// for a post-incident report.
    ///
    /// # Errors
    /// A read failed.
    pub fn cycle_metrics(&self, from: UnixMs, to: UnixMs) -> Result<Vec<CycleMetric>> {
        self.db.all(
            "reading cycles",
            "SELECT ts, health_score, health_state, work_queue_size, active_agents FROM cycles WHERE ts >= ?1 AND ts <= ?2 AND dry_run = 0 ORDER BY ts",
            p![from, to],
            |r| {
                Ok(CycleMetric {
                    ts: r.get(0)?,
                    score: r.get(1)?,
                    state: r.get(2)?,
                    queue: u64::try_from(r.get::<i64>(3)?).unwrap_or(0),
                    agents: u64::try_from(r.get::<i64>(4)?).unwrap_or(0),
                })
            },
        )
    }

    /// Datasets with dead-lettered tasks, and how many each.
    ///
    /// # Errors
    /// A read failed.
    pub fn dead_tasks_by_dataset(&self) -> Result<Vec<(String, u64)>> {
        if !self.has_table("tasks")? {
            return Ok(Vec::new());
        }
        self.db.all(
            "counting dead tasks",
            "SELECT dataset, COUNT(*) FROM tasks WHERE state = 'dead' GROUP BY dataset ORDER BY dataset",
            &[],
            |r| Ok((r.get::<String>(0)?, u64::try_from(r.get::<i64>(1)?).unwrap_or(0))),
        )
    }

    /// The cycles since `from` for a chart, at most about `points` of them:
    /// consecutive cycles are averaged into buckets of equal time.
    ///
    /// # Errors
    /// A read failed.
    pub fn cycle_points(&self, from: UnixMs, to: UnixMs, points: usize) -> Result<Vec<CyclePoint>> {
        let bucket = ((to - from) / i64::try_from(points.max(1)).unwrap_or(1)).max(1);
        // PostgreSQL averages integers as numeric: cast to a double, which
        // SQLite reads as its REAL.
        self.db.all(
            "reading cycles",
            "SELECT MAX(ts), CAST(AVG(health_score) AS DOUBLE PRECISION), CAST(AVG(work_queue_size) AS DOUBLE PRECISION),
                    CAST(AVG(in_flight) AS DOUBLE PRECISION), CAST(AVG(active_agents) AS DOUBLE PRECISION),
                    CAST(AVG(recommended_agents) AS DOUBLE PRECISION),
                    CAST(AVG(work_queue_size + in_flight + completed + failed) AS DOUBLE PRECISION), COUNT(*)
             FROM cycles WHERE ts >= ?1 AND ts <= ?2 AND dry_run = 0 GROUP BY (ts - ?1) / ?3 ORDER BY 1",
            p![from, to, bucket],
            |r| {
                Ok(CyclePoint {
                    ts: r.get(0)?,
                    score: r.get(1)?,
                    queue: r.get(2)?,
                    in_flight: r.get(3)?,
                    agents: r.get(4)?,
                    target: r.get(5)?,
                    seen: r.get(6)?,
                    cycles: u64::try_from(r.get::<i64>(7)?).unwrap_or(0),
                })
            },
        )
    }
}

const NOTHING: &str = "nothing to change";

/// What the detecting cycle saw, in a sentence.
fn assessment_sentence(a: &Value) -> String {
    let m = &a["metrics"];
    if m.is_null() {
        return "assessed".into();
    }
    format!(
        "assessed: health {} ({:.2}), queue {}, {} in flight, {} active agents, {} failed",
        m["health_state"].as_str().unwrap_or("?"),
        m["health_score"].as_f64().unwrap_or(0.0),
        m["work_queue_size"],
        m["in_flight"],
        m["active_agents"],
        m["failed"]
    )
}
