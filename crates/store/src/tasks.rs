//! The task queue of reconciliation (spec/reconcile.md): one row per gap,
//! from queued to done, dead-lettered or resolved.
//!
//! An open gap (queued, running or dead-lettered) is never queued twice:
//! a partial unique index over `(dataset, key)` says so, and queueing is
//! `INSERT OR IGNORE` against it. A dead-lettered gap stays dead until
//! someone retries it (`retry_dead`), so a collector that keeps failing is
//! not run again every hour.

use crate::db::{p, Row, ToP, P};
use serde::Serialize;
use steward_core::reconcile::{GapKind, Priority};
use steward_core::time::UnixMs;

use crate::{Journal, Result};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting to run (from `not_before`).
    Queued,
    /// A collector runs it now.
    Running,
    /// Verified done: the key is present and valid.
    Done,
    /// Failed every retry; waits for a person.
    Dead,
    /// The gap closed without it (someone else filled it).
    Resolved,
}

impl TaskState {
    /// The name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "done" => Self::Done,
            "dead" => Self::Dead,
            "resolved" => Self::Resolved,
            _ => Self::Queued,
        }
    }
}

/// A gap to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// The dataset.
    pub dataset: String,
    /// The key to fill.
    pub key: String,
    /// The partition, as text.
    pub partition: String,
    /// What is wrong.
    pub kind: GapKind,
    /// Its priority.
    pub priority: Priority,
}

/// A task as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    /// Its id.
    pub id: i64,
    /// The dataset.
    pub dataset: String,
    /// The key to fill.
    pub key: String,
    /// The partition, as text.
    pub partition: String,
    /// What was wrong when it was queued.
    pub kind: GapKind,
    /// Its priority.
    pub priority: Priority,
    /// Its state.
    pub state: TaskState,
    /// Runs so far.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: UnixMs,
    /// Not run before this.
    pub not_before: UnixMs,
    /// Why the last run failed.
    pub last_error: Option<String>,
    /// The orchestrator running it (`pid:start`).
    pub owner: Option<String>,
    /// When its last run started.
    pub started_at: Option<UnixMs>,
    /// When it ended (done, dead or resolved).
    pub finished_at: Option<UnixMs>,
}

/// How a run of a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Verified done.
    Done,
    /// Failed; run again from `not_before`.
    Retry {
        /// When.
        not_before: UnixMs,
        /// Why it failed.
        error: String,
    },
    /// Failed its last retry.
    Dead {
        /// Why it failed.
        error: String,
    },
    /// Stopped by the orchestrator (its run ended, or it was killed): back
    /// to the queue without counting an attempt.
    Requeue {
        /// Why.
        error: String,
    },
}

/// Tasks by priority (queued and running) and by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskCounts {
    /// Open tasks (queued or running) by priority, highest first.
    pub by_priority: Vec<(Priority, u64)>,
    /// Tasks by state.
    pub by_state: Vec<(TaskState, u64)>,
    /// Queued tasks ready to run now.
    pub ready: u64,
}

const COLUMNS: &str =
    "id, dataset, key, partition, kind, priority, state, attempts, created_at, not_before, last_error, owner, started_at, finished_at";

fn task(r: &Row) -> Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        dataset: r.get(1)?,
        key: r.get(2)?,
        partition: r.get(3)?,
        kind: GapKind::parse(&r.get::<String>(4)?).unwrap_or(GapKind::Missing),
        priority: Priority::parse(&r.get::<String>(5)?).unwrap_or_default(),
        state: TaskState::parse(&r.get::<String>(6)?),
        attempts: r.get::<i64>(7)?.clamp(0, i64::from(u32::MAX)) as u32,
        created_at: r.get(8)?,
        not_before: r.get(9)?,
        last_error: r.get(10)?,
        owner: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
    })
}

impl Journal {
    /// Queues gaps; a gap already open (queued, running or dead) is left as
    /// it is. Returns how many were queued. One transaction.
    ///
    /// # Errors
    /// A write failed (nothing is queued then).
    pub fn queue_tasks<'a>(&mut self, tasks: impl IntoIterator<Item = &'a NewTask>, now: UnixMs) -> Result<u64> {
        self.db.tx("queueing tasks", |db| {
            let mut added = 0;
            for t in tasks {
                added += db.exec(
                    "queueing a task",
                    "INSERT INTO tasks (dataset, key, partition, kind, priority, rank, state, attempts, created_at, not_before)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 0, ?7, ?7) ON CONFLICT DO NOTHING",
                    p![t.dataset, t.key, t.partition, t.kind.as_str(), t.priority.as_str(), t.priority.rank(), now],
                )?;
            }
            Ok(added)
        })
    }

    /// Open tasks (queued, running, dead) of a dataset: id, key and state.
    ///
    /// # Errors
    /// A read failed.
    pub fn open_tasks_of(&self, dataset: &str) -> Result<Vec<(i64, String, TaskState)>> {
        if !self.has_table("tasks")? {
            return Ok(Vec::new());
        }
        self.db.all(
            "reading open tasks",
            "SELECT id, key, state FROM tasks WHERE dataset = ?1 AND state IN ('queued', 'running', 'dead')",
            p![dataset],
            |r| Ok((r.get(0)?, r.get(1)?, TaskState::parse(&r.get::<String>(2)?))),
        )
    }

    /// Marks queued or dead tasks resolved: their gap closed without them.
    /// Running ones are left to their run.
    ///
    /// # Errors
    /// A write failed.
    pub fn resolve_tasks(&mut self, ids: &[i64], now: UnixMs) -> Result<u64> {
        self.db.tx("resolving tasks", |db| {
            let mut n = 0;
            for id in ids {
                n += db.exec(
                    "resolving a task",
                    "UPDATE tasks SET state = 'resolved', finished_at = ?2 WHERE id = ?1 AND state IN ('queued', 'dead')",
                    p![id, now],
                )?;
            }
            Ok(n)
        })
    }

    /// Queued tasks ready at `now`: highest priority first, oldest first
    /// inside a priority.
    ///
    /// # Errors
    /// A read failed.
    pub fn ready_tasks(&self, now: UnixMs, limit: usize) -> Result<Vec<Task>> {
        self.select_tasks(
            &format!("SELECT {COLUMNS} FROM tasks WHERE state = 'queued' AND not_before <= ?1 ORDER BY rank, created_at, id LIMIT ?2"),
            p![now, limit],
        )
    }

    /// As [`Journal::ready_tasks`], leaving out the tasks of `exclude`: the
    /// datasets still inside their `min_interval`, whose tasks cannot start
    /// now and must not fill the batch ahead of other datasets' tasks.
    ///
    /// # Errors
    /// A read failed.
    pub fn ready_tasks_excluding(&self, now: UnixMs, limit: usize, exclude: &[&str]) -> Result<Vec<Task>> {
        if exclude.is_empty() {
            return self.ready_tasks(now, limit);
        }
        let marks = (0..exclude.len()).map(|i| format!("?{}", i + 3)).collect::<Vec<_>>().join(", ");
        let mut ps: Vec<P<'_>> = vec![now.to_p(), limit.to_p()];
        ps.extend(exclude.iter().map(|d| P::Text(d)));
        self.select_tasks(
            &format!(
                "SELECT {COLUMNS} FROM tasks WHERE state = 'queued' AND not_before <= ?1 AND dataset NOT IN ({marks})
                 ORDER BY rank, created_at, id LIMIT ?2"
            ),
            &ps,
        )
    }

    /// When each dataset's last task started (any run, any process).
    ///
    /// # Errors
    /// A read failed.
    pub fn last_starts(&self) -> Result<Vec<(String, UnixMs)>> {
        if !self.has_table("tasks")? {
            return Ok(Vec::new());
        }
        self.db.all(
            "reading when tasks started",
            "SELECT dataset, MAX(started_at) FROM tasks WHERE started_at IS NOT NULL GROUP BY dataset",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Whether `dataset` has a queued task ready at `now`.
    ///
    /// # Errors
    /// A read failed.
    pub fn has_ready_task(&self, dataset: &str, now: UnixMs) -> Result<bool> {
        if !self.has_table("tasks")? {
            return Ok(false);
        }
        self.db.one(
            "reading the task queue",
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE state = 'queued' AND dataset = ?1 AND not_before <= ?2)",
            p![dataset, now],
            |r| r.get::<bool>(0),
        )
    }

    /// Every queued task in the order they would run (for `--dry-run`).
    ///
    /// # Errors
    /// A read failed.
    pub fn queued_tasks(&self, limit: usize) -> Result<Vec<Task>> {
        self.select_tasks(&format!("SELECT {COLUMNS} FROM tasks WHERE state = 'queued' ORDER BY rank, created_at, id LIMIT ?1"), p![limit])
    }

    /// Tasks in `states` (all when empty), newest first.
    ///
    /// # Errors
    /// A read failed.
    pub fn tasks(&self, states: &[TaskState], limit: usize) -> Result<Vec<Task>> {
        let filter = if states.is_empty() {
            String::new()
        } else {
            format!("WHERE state IN ({})", states.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", "))
        };
        self.select_tasks(&format!("SELECT {COLUMNS} FROM tasks {filter} ORDER BY id DESC LIMIT ?1"), p![limit])
    }

    /// One task.
    ///
    /// # Errors
    /// A read failed.
    pub fn task(&self, id: i64) -> Result<Option<Task>> {
        Ok(self.select_tasks(&format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"), p![id])?.pop())
    }

    fn select_tasks(&self, query: &str, ps: &[P<'_>]) -> Result<Vec<Task>> {
        if !self.has_table("tasks")? {
            return Ok(Vec::new());
        }
        self.db.all("reading tasks", query, ps, task)
    }

    /// When the next queued task becomes ready.
    ///
    /// # Errors
    /// A read failed.
    pub fn next_ready_at(&self) -> Result<Option<UnixMs>> {
        if !self.has_table("tasks")? {
            return Ok(None);
        }
        self.db.one("reading the task queue", "SELECT min(not_before) FROM tasks WHERE state = 'queued'", &[], |r| r.get(0))
    }

    /// Takes a queued task for a run: `false` if it is no longer queued
    /// (another orchestrator took it, or it was resolved).
    ///
    /// # Errors
    /// A write failed.
    pub fn start_task(&self, id: i64, owner: &str, now: UnixMs) -> Result<bool> {
        let n = self.db.exec(
            "starting a task",
            "UPDATE tasks SET state = 'running', owner = ?2, started_at = ?3 WHERE id = ?1 AND state = 'queued'",
            p![id, owner, now],
        )?;
        Ok(n == 1)
    }

    /// Records how a run ended.
    ///
    /// # Errors
    /// A write failed.
    pub fn finish_task(&self, id: i64, outcome: &TaskOutcome, now: UnixMs) -> Result<()> {
        let what = "finishing a task";
        match outcome {
            TaskOutcome::Done => self.db.exec(
                what,
                "UPDATE tasks SET state = 'done', attempts = attempts + 1, finished_at = ?2, last_error = NULL, owner = NULL WHERE id = ?1",
                p![id, now],
            ),
            TaskOutcome::Retry { not_before, error } => self.db.exec(
                what,
                "UPDATE tasks SET state = 'queued', attempts = attempts + 1, not_before = ?2, last_error = ?3, owner = NULL WHERE id = ?1",
                p![id, not_before, error],
            ),
            TaskOutcome::Dead { error } => self.db.exec(
                what,
                "UPDATE tasks SET state = 'dead', attempts = attempts + 1, finished_at = ?2, last_error = ?3, owner = NULL WHERE id = ?1",
                p![id, now, error],
            ),
            TaskOutcome::Requeue { error } => self.db.exec(
                what,
                "UPDATE tasks SET state = 'queued', not_before = ?2, last_error = ?3, owner = NULL WHERE id = ?1",
                p![id, now, error],
            ),
        }?;
        Ok(())
    }

    /// Puts running tasks whose owner is gone (per `alive`) back in the
    /// queue without counting an attempt: an orchestrator was killed
    /// mid-run. Returns the ids requeued.
    ///
    /// # Errors
    /// A read or write failed.
    pub fn requeue_orphans(&self, alive: impl Fn(&str) -> bool, now: UnixMs) -> Result<Vec<i64>> {
        let running = self.tasks(&[TaskState::Running], usize::MAX)?;
        let mut out = Vec::new();
        for t in running {
            if !t.owner.as_deref().is_some_and(&alive) {
                let why = format!("its orchestrator ({}) stopped during the run", t.owner.as_deref().unwrap_or("unknown"));
                self.finish_task(t.id, &TaskOutcome::Requeue { error: why }, now)?;
                out.push(t.id);
            }
        }
        Ok(out)
    }

    /// Puts running tasks owned by `owner` (this very process) that `held`
    /// says no run holds back in the queue without counting an attempt: a
    /// run of this process stopped on an error, or panicked, after taking
    /// them. [`Journal::requeue_orphans`] cannot see these, as their owner
    /// is alive. Returns the ids requeued.
    ///
    /// # Errors
    /// A read or write failed.
    pub fn requeue_own(&self, owner: &str, held: impl Fn(i64) -> bool, now: UnixMs) -> Result<Vec<i64>> {
        let running = self.tasks(&[TaskState::Running], usize::MAX)?;
        let mut out = Vec::new();
        for t in running.into_iter().filter(|t| t.owner.as_deref() == Some(owner) && !held(t.id)) {
            let why = format!("an earlier run of this orchestrator ({owner}) stopped without finishing it");
            let n = self.db.exec(
                "requeueing a task",
                "UPDATE tasks SET state = 'queued', not_before = ?2, last_error = ?3, owner = NULL
                 WHERE id = ?1 AND state = 'running' AND owner = ?4",
                p![t.id, now, why, owner],
            )?;
            if n == 1 {
                out.push(t.id);
            }
        }
        Ok(out)
    }

    /// The journal's file (or PostgreSQL schema), which tells task ids of
    /// two journals apart in one process (empty for an in-memory journal).
    pub fn task_queue_path(&self) -> String {
        self.db.name()
    }

    /// Dead-lettered tasks back to the queue with their attempts reset:
    /// one (`Some(id)`) or all. Returns how many.
    ///
    /// # Errors
    /// A write failed.
    pub fn retry_dead(&self, id: Option<i64>, now: UnixMs) -> Result<u64> {
        match id {
            Some(id) => self.db.exec(
                "retrying dead tasks",
                "UPDATE tasks SET state = 'queued', attempts = 0, not_before = ?2, finished_at = NULL WHERE id = ?1 AND state = 'dead'",
                p![id, now],
            ),
            None => self.db.exec(
                "retrying dead tasks",
                "UPDATE tasks SET state = 'queued', attempts = 0, not_before = ?1, finished_at = NULL WHERE state = 'dead'",
                p![now],
            ),
        }
    }

    /// Counts for `/tasks`, `steward tasks` and `steward_tasks{priority}`.
    ///
    /// # Errors
    /// A read failed.
    pub fn task_counts(&self, now: UnixMs) -> Result<TaskCounts> {
        let mut c = TaskCounts { by_priority: Priority::ALL.iter().map(|p| (*p, 0)).collect(), ..TaskCounts::default() };
        if !self.has_table("tasks")? {
            return Ok(c);
        }
        let pair = |r: &Row| Ok((r.get::<String>(0)?, r.get::<i64>(1)?));
        let rows = self.db.all(
            "counting tasks",
            "SELECT priority, count(*) FROM tasks WHERE state IN ('queued', 'running') GROUP BY priority",
            &[],
            pair,
        )?;
        for (p, n) in rows {
            if let Some(slot) = Priority::parse(&p).and_then(|p| c.by_priority.iter_mut().find(|(q, _)| *q == p)) {
                slot.1 = n.max(0) as u64;
            }
        }
        for (s, n) in self.db.all("counting tasks", "SELECT state, count(*) FROM tasks GROUP BY state", &[], pair)? {
            c.by_state.push((TaskState::parse(&s), n.max(0) as u64));
        }
        c.ready = self
            .db
            .one("counting tasks", "SELECT count(*) FROM tasks WHERE state = 'queued' AND not_before <= ?1", p![now], |r| r.get::<i64>(0))?
            .max(0) as u64;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(key: &str, p: Priority) -> NewTask {
        NewTask { dataset: "d".into(), key: key.into(), partition: key.into(), kind: GapKind::Missing, priority: p }
    }

    #[test]
    fn a_gap_is_queued_once_and_runs_by_priority_then_age() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&tmp.path().join("j.db")).unwrap();
        let a = gap("a", Priority::Low);
        let b = gap("b", Priority::Critical);
        assert_eq!(j.queue_tasks([&a], 10).unwrap(), 1);
        assert_eq!(j.queue_tasks([&a, &b], 20).unwrap(), 1, "a is already open");
        let ready = j.ready_tasks(30, 10).unwrap();
        assert_eq!(ready.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        // Running, then failed with a retry later.
        assert!(j.start_task(ready[0].id, "me", 31).unwrap());
        assert!(!j.start_task(ready[0].id, "you", 31).unwrap(), "taken once");
        assert_eq!(j.queue_tasks([&b], 32).unwrap(), 0, "still open while running");
        j.finish_task(ready[0].id, &TaskOutcome::Retry { not_before: 100, error: "exit 0, key still missing".into() }, 40).unwrap();
        assert_eq!(j.ready_tasks(50, 10).unwrap().len(), 1, "b waits for its backoff");
        assert_eq!(j.next_ready_at().unwrap(), Some(10));
        let t = j.task(ready[0].id).unwrap().unwrap();
        assert_eq!((t.state, t.attempts, t.not_before), (TaskState::Queued, 1, 100));
        // Dead-lettered: not queued again, until retried.
        j.finish_task(t.id, &TaskOutcome::Dead { error: "gave up".into() }, 120).unwrap();
        assert_eq!(j.queue_tasks([&b], 130).unwrap(), 0);
        assert_eq!(j.retry_dead(None, 140).unwrap(), 1);
        assert_eq!(j.task(t.id).unwrap().unwrap().attempts, 0);
        // Done: a new gap on the same key is a new task.
        j.start_task(t.id, "me", 150).unwrap();
        j.finish_task(t.id, &TaskOutcome::Done, 160).unwrap();
        assert_eq!(j.queue_tasks([&b], 170).unwrap(), 1);
        let c = j.task_counts(200).unwrap();
        assert_eq!(c.by_priority, [(Priority::Critical, 1), (Priority::High, 0), (Priority::Medium, 0), (Priority::Low, 1)]);
        assert_eq!(c.ready, 2);
    }

    #[test]
    fn orphans_go_back_to_the_queue_without_an_attempt() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&tmp.path().join("j.db")).unwrap();
        j.queue_tasks([&gap("a", Priority::High), &gap("b", Priority::High)], 1).unwrap();
        let ts = j.ready_tasks(2, 10).unwrap();
        j.start_task(ts[0].id, "1:dead", 3).unwrap();
        j.start_task(ts[1].id, "2:alive", 3).unwrap();
        assert_eq!(j.requeue_orphans(|o| o == "2:alive", 4).unwrap(), [ts[0].id]);
        let t = j.task(ts[0].id).unwrap().unwrap();
        assert_eq!((t.state, t.attempts), (TaskState::Queued, 0));
        assert!(t.last_error.unwrap().contains("1:dead"));
        // Resolved: the gap closed by itself.
        assert_eq!(j.resolve_tasks(&[ts[0].id, ts[1].id], 5).unwrap(), 1, "the running one is left to its run");
    }

    #[test]
    fn own_tasks_no_run_holds_go_back_to_the_queue() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&tmp.path().join("j.db")).unwrap();
        j.queue_tasks([&gap("a", Priority::High), &gap("b", Priority::High), &gap("c", Priority::High)], 1).unwrap();
        let ts = j.ready_tasks(2, 10).unwrap();
        j.start_task(ts[0].id, "7:me", 3).unwrap();
        j.start_task(ts[1].id, "7:me", 3).unwrap();
        j.start_task(ts[2].id, "8:other", 3).unwrap();
        // b is held by a run of this process; c is another process's.
        assert_eq!(j.requeue_own("7:me", |id| id == ts[1].id, 4).unwrap(), [ts[0].id]);
        let t = j.task(ts[0].id).unwrap().unwrap();
        assert_eq!((t.state, t.attempts, t.owner), (TaskState::Queued, 0, None));
        assert_eq!(j.task(ts[1].id).unwrap().unwrap().state, TaskState::Running);
        assert_eq!(j.task(ts[2].id).unwrap().unwrap().state, TaskState::Running);
        assert!(j.task_queue_path().ends_with("j.db"));
    }

    #[test]
    fn ready_tasks_can_leave_datasets_out() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&tmp.path().join("j.db")).unwrap();
        let mut slow: Vec<NewTask> = (0..5).map(|i| gap(&format!("s{i}"), Priority::Critical)).collect();
        for t in &mut slow {
            t.dataset = "slow".into();
        }
        let mut fast = gap("f", Priority::Low);
        fast.dataset = "fast".into();
        j.queue_tasks(slow.iter().chain([&fast]), 1).unwrap();
        assert!(j.ready_tasks(2, 3).unwrap().iter().all(|t| t.dataset == "slow"), "the slow dataset fills a short batch");
        let rest = j.ready_tasks_excluding(2, 3, &["slow"]).unwrap();
        assert_eq!(rest.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["f"]);
        assert_eq!(j.ready_tasks_excluding(2, 10, &["slow", "fast"]).unwrap().len(), 0);
        assert_eq!(j.ready_tasks_excluding(2, 10, &[]).unwrap().len(), 6);
        assert!(j.has_ready_task("slow", 2).unwrap());
        assert!(!j.has_ready_task("slow", 0).unwrap(), "not before it was queued");
        assert!(!j.has_ready_task("other", 2).unwrap());
    }
}
