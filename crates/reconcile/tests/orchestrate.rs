//! The orchestrator's edges (issue 11's review): a collector that leaves a
//! detached child behind, a journal that fails mid-run, tasks left running
//! by this very process, a rate-limited dataset with more ready tasks than
//! one batch, and keys with characters an object store would encode.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{now_ms, script, COLLECT};
use steward_core::reconcile::{compile_all, Dataset, DatasetConfig, OrchestratorConfig, Priority, PriorityRule};
use steward_reconcile::{orchestrate, reconcile, Event, Inventory, Orchestrator, RunOptions, Summary};
use steward_store::{Journal, TaskState};

struct Fixture {
    _tmp: tempfile::TempDir,
    lake: PathBuf,
    state: PathBuf,
    tools: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (lake, state, tools) = (tmp.path().join("lake"), tmp.path().join("state"), tmp.path().join("tools"));
        for d in [&lake, &state, &tools] {
            std::fs::create_dir_all(d).unwrap();
        }
        script(&tools, "collect.sh", COLLECT);
        Self { _tmp: tmp, lake, state, tools }
    }

    fn journal_path(&self) -> PathBuf {
        self.state.join("journal.db")
    }

    fn journal(&self) -> Journal {
        Journal::open(&self.journal_path()).unwrap()
    }

    fn inventory(&self) -> Arc<Inventory> {
        Arc::new(Inventory::open(self.lake.to_str().unwrap()).unwrap())
    }

    /// A dataset with `values`, key `NAME/{value}.json`, run by `sh tools/COLLECTOR {value}`.
    fn values(&self, name: &str, values: &[&str], collector: &str) -> DatasetConfig {
        DatasetConfig {
            name: name.into(),
            key: format!("{name}/{{value}}.json"),
            dates: None,
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
            min_bytes: 50,
            max_age: Duration::ZERO,
            collector: vec!["sh".into(), self.tools.join(collector).display().to_string(), "{value}".into()],
            env: BTreeMap::new(),
            min_interval: Duration::ZERO,
            priority: Vec::new(),
        }
    }

    /// Reconciles `datasets` against the lake: queues their gaps.
    fn queue(&self, datasets: &[Dataset], journal: &mut Journal) -> steward_reconcile::Report {
        reconcile(datasets, &self.inventory(), journal, &self.state, now_ms(), &mut |_| {}).unwrap().0
    }

    fn run(&self, cfg: &OrchestratorConfig, datasets: &[Dataset], journal: &mut Journal, events: &mut Vec<Event>) -> Summary {
        self.try_run(cfg, datasets, journal, events).unwrap()
    }

    fn try_run(
        &self,
        cfg: &OrchestratorConfig,
        datasets: &[Dataset],
        journal: &mut Journal,
        events: &mut Vec<Event>,
    ) -> Result<Summary, steward_reconcile::orchestrate::OrchestrateError> {
        let orch = Orchestrator::new(cfg, datasets, self.inventory());
        let opts = RunOptions { max_runtime: cfg.max_runtime, stop: Arc::new(AtomicBool::new(false)) };
        orch.run(journal, &opts, &mut |e| events.push(e.clone()))
    }
}

fn orchestrator(concurrency: u32) -> OrchestratorConfig {
    OrchestratorConfig {
        concurrency,
        retries: 1,
        retry_backoff: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(40),
        task_timeout: Duration::from_secs(20),
        max_runtime: Duration::from_secs(60),
        ..OrchestratorConfig::default()
    }
}

fn states(journal: &Journal) -> BTreeMap<String, TaskState> {
    journal.tasks(&[], usize::MAX).unwrap().into_iter().map(|t| (t.key, t.state)).collect()
}

/// Whether process `pid` still exists (and is not a zombie).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()).is_some_and(|st| st != "Z"))
}

fn kill(pid: i32) {
    // SAFETY: kill(2) on a pid this test's collector started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

fn read_pid(p: &Path) -> i32 {
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

#[test]
fn a_collector_that_leaves_a_detached_child_does_not_hold_up_the_run() {
    let f = Fixture::new();
    // The child keeps the collector's stdout and stderr open for a minute,
    // in a session of its own: out of reach of the process-group kill.
    script(
        &f.tools,
        "detach.sh",
        "#!/bin/sh\nset -e\nsetsid sleep 60 &\necho $! > \"$PIDFILE\"\necho \"started a child\"\nexec sh \"$COLLECT\" \"$1\"\n",
    );
    let pidfile = f.tools.join("child.pid");
    let mut cfg = f.values("teams", &["ATL"], "detach.sh");
    cfg.env = BTreeMap::from([
        ("PIDFILE".to_owned(), pidfile.display().to_string()),
        ("COLLECT".to_owned(), f.tools.join("collect.sh").display().to_string()),
    ]);
    let datasets = compile_all(&[cfg], now_ms()).unwrap();
    let mut journal = f.journal();
    assert_eq!(f.queue(&datasets, &mut journal).queued, 1);
    let ocfg = OrchestratorConfig { task_timeout: Duration::from_secs(3), ..orchestrator(1) };
    let started = Instant::now();
    let summary = f.run(&ocfg, &datasets, &mut journal, &mut Vec::new());
    let took = started.elapsed();
    let child = read_pid(&pidfile);
    let still_there = running(child);
    kill(child);
    assert!(took < Duration::from_secs(20), "the run waited {took:?} for the detached child's pipes");
    assert!(still_there, "the test's premise: the detached child outlived its collector");
    assert_eq!((summary.done, summary.retried, summary.dead), (1, 0, 0), "{summary:?}");
    assert_eq!(states(&journal)["teams/ATL.json"], TaskState::Done);
}

#[test]
fn a_task_left_running_by_this_very_process_is_requeued_by_the_next_run() {
    let f = Fixture::new();
    let datasets = compile_all(&[f.values("teams", &["ATL", "BOS"], "collect.sh")], now_ms()).unwrap();
    let mut journal = f.journal();
    f.queue(&datasets, &mut journal);
    // A run of this process took ATL, then stopped on an error without
    // finishing it: its owner (this process) is alive.
    let atl = journal.tasks(&[], 10).unwrap().into_iter().find(|t| t.key == "teams/ATL.json").unwrap();
    assert!(journal.start_task(atl.id, &orchestrate::me(), now_ms()).unwrap());
    let mut events = Vec::new();
    let summary = f.run(&orchestrator(2), &datasets, &mut journal, &mut events);
    assert!(events.iter().any(|e| matches!(e, Event::Requeued { ids } if ids == &[atl.id])), "{events:?}");
    assert_eq!(summary.done, 2, "{summary:?}");
    let t = journal.task(atl.id).unwrap().unwrap();
    assert_eq!((t.state, t.attempts), (TaskState::Done, 1), "requeued without counting an attempt, then run once");
}

#[test]
fn a_journal_error_mid_run_kills_the_collectors_and_requeues_their_tasks() {
    let f = Fixture::new();
    let marks = f.tools.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    // b's first run starts a long sleep; a waits until b has started, then
    // writes its key. A second run of b writes at once.
    script(
        &f.tools,
        "two.sh",
        "#!/bin/sh\nset -e\nif [ \"$1\" = b ] && [ ! -e \"$MARKS/b.pid\" ]; then\n  echo $$ > \"$MARKS/b.pid.part\"\n  mv \"$MARKS/b.pid.part\" \"$MARKS/b.pid\"\n  exec sleep 30\nfi\nwhile [ ! -e \"$MARKS/b.pid\" ]; do sleep 0.05; done\nexec sh \"$COLLECT\" \"$1\"\n",
    );
    let mut cfg = f.values("two", &["a", "b"], "two.sh");
    cfg.env = BTreeMap::from([
        ("MARKS".to_owned(), marks.display().to_string()),
        ("COLLECT".to_owned(), f.tools.join("collect.sh").display().to_string()),
    ]);
    let datasets = compile_all(&[cfg], now_ms()).unwrap();
    let mut journal = f.journal();
    f.queue(&datasets, &mut journal);
    // The journal refuses to record a task done: a's finish fails while b runs.
    let sql = rusqlite::Connection::open(f.journal_path()).unwrap();
    sql.execute_batch(
        "CREATE TRIGGER refuse_done BEFORE UPDATE OF state ON tasks WHEN NEW.state = 'done'
         BEGIN SELECT RAISE(ABORT, 'the disk is full (injected)'); END;",
    )
    .unwrap();
    let started = Instant::now();
    let err = f.try_run(&orchestrator(2), &datasets, &mut journal, &mut Vec::new()).unwrap_err();
    let took = started.elapsed();
    let b = read_pid(&marks.join("b.pid"));
    let b_alive = running(b);
    kill(b);
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain.push_str(&format!(": {e}"));
        source = e.source();
    }
    assert!(chain.contains("the disk is full (injected)"), "{chain}");
    assert!(!b_alive, "b's collector outlived the failed run");
    assert!(took < Duration::from_secs(15), "the failed run waited {took:?} for b's collector");
    let s = states(&journal);
    assert_eq!((s["two/a.json"], s["two/b.json"]), (TaskState::Queued, TaskState::Queued), "nothing left running: {s:?}");
    assert!(journal.tasks(&[], 10).unwrap().iter().all(|t| t.attempts == 0 && t.owner.is_none()));

    // The journal works again: the next run finishes both.
    sql.execute_batch("DROP TRIGGER refuse_done;").unwrap();
    let summary = f.run(&orchestrator(2), &datasets, &mut journal, &mut Vec::new());
    assert_eq!(summary.done + summary.already_valid, 2, "{summary:?}");
    assert!(states(&journal).values().all(|s| *s == TaskState::Done));
}

#[test]
fn a_rate_limited_dataset_with_more_ready_tasks_than_a_batch_does_not_block_another() {
    let f = Fixture::new();
    let many: Vec<String> = (0..1100).map(|i| format!("{i:04}")).collect();
    let mut slow = f.values("slow", &many.iter().map(String::as_str).collect::<Vec<_>>(), "collect.sh");
    slow.min_interval = Duration::from_secs(3600);
    slow.priority = vec![PriorityRule { when: "true".into(), is: Priority::Critical }];
    let mut fast = f.values("fast", &["a", "b", "c"], "collect.sh");
    fast.priority = vec![PriorityRule { when: "true".into(), is: Priority::Low }];
    let datasets = compile_all(&[slow, fast], now_ms()).unwrap();
    let mut journal = f.journal();
    assert_eq!(f.queue(&datasets, &mut journal).queued, 1103);
    let mut events = Vec::new();
    let started = Instant::now();
    let summary =
        f.run(&OrchestratorConfig { max_runtime: Duration::from_secs(30), ..orchestrator(4) }, &datasets, &mut journal, &mut events);
    let took = started.elapsed();
    let starts = |name: &str| events.iter().filter(|e| matches!(e, Event::Started { task, .. } if task.dataset == name)).count();
    assert_eq!(starts("slow"), 1, "one start an hour");
    assert_eq!(starts("fast"), 3, "every fast task ran in the same run");
    let done: Vec<_> = journal.tasks(&[TaskState::Done], 100).unwrap().into_iter().map(|t| t.key).collect();
    assert_eq!(done.iter().filter(|k| k.starts_with("fast/")).count(), 3, "{done:?}");
    assert_eq!(summary.done, 4, "{summary:?}");
    assert!(took < Duration::from_secs(20), "the run waited {took:?}: nothing else could start before it ended");
    // The next run (the daemon starts one every queue check) respects the
    // same hour: min_interval spans runs.
    let mut again = Vec::new();
    f.run(&OrchestratorConfig { max_runtime: Duration::from_secs(2), ..orchestrator(4) }, &datasets, &mut journal, &mut again);
    let next = again.iter().filter(|e| matches!(e, Event::Started { task, .. } if task.dataset == "slow")).count();
    assert_eq!(next, 0, "a second start within the hour");
}

#[test]
fn keys_with_hash_and_percent_are_verified_and_counted_valid() {
    let f = Fixture::new();
    let datasets = compile_all(&[f.values("teams", &["a#b", "x%41y", "plain"], "collect.sh")], now_ms()).unwrap();
    let mut journal = f.journal();
    let report = f.queue(&datasets, &mut journal);
    assert_eq!(report.gaps, 3);
    let summary = f.run(&orchestrator(2), &datasets, &mut journal, &mut Vec::new());
    assert_eq!((summary.done, summary.retried, summary.dead), (3, 0, 0), "{summary:?}: {:?}", journal.tasks(&[], 10).unwrap());
    // The collector wrote the keys as they are.
    for name in ["a#b.json", "x%41y.json", "plain.json"] {
        assert_eq!(std::fs::metadata(f.lake.join("teams").join(name)).unwrap().len(), 100, "{name}");
    }
    let inv = f.inventory();
    assert_eq!(inv.head("teams/a#b.json").unwrap().map(|e| e.size), Some(100));
    assert_eq!(inv.head("teams/x%41y.json").unwrap().map(|e| e.size), Some(100));
    assert_eq!(inv.head("teams/xAy.json").unwrap(), None, "a key is never percent-decoded");
    let after = f.queue(&datasets, &mut journal);
    assert_eq!((after.gaps, after.datasets[0].coverage.valid), (0, 3), "the listing counts them valid");
}
