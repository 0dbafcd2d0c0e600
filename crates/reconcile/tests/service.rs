//! The daemon's reconciler and orchestrator: a lake that is not there yet
//! shows them failing (not dead); once it appears they recover on their
//! own, fill every gap, and report full coverage.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dataset, lake_with, now_ms, DAY};
use steward_core::reconcile::{InventoryConfig, OrchestratorConfig};
use steward_reconcile::{Board, Service, ServiceConfig};
use steward_store::{Journal, TaskState};

fn status(board: &Board, name: &str) -> (String, String) {
    board.components().into_iter().find(|c| c.name == name).map(|c| (c.status, c.message)).unwrap_or_default()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failing_lake_is_reported_then_recovered_from_and_every_gap_filled() {
    let now = now_ms();
    let (lake, _, planted) = lake_with(&[("alpha", "collect.sh"), ("beta", "collect.sh")], now, false);
    let from = steward_core::time::format_rfc3339(now.div_euclid(DAY) * DAY - 59 * DAY)[..10].to_owned();
    let away = lake.lake.with_extension("away");
    std::fs::rename(&lake.lake, &away).unwrap();
    let journal = lake.state.join("steward.db");
    let journal = steward_store::JournalAt::File(journal);
    let cfg = ServiceConfig {
        inventory: InventoryConfig { url: lake.lake.display().to_string(), rescan: Duration::from_secs(3600) },
        datasets: ["alpha", "beta"].iter().map(|n| dataset(n, &lake.tools, "collect.sh", &from)).collect(),
        orchestrator: OrchestratorConfig {
            concurrency: 4,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_millis(200),
            // Coverage must not wait an hour for the next reconciliation:
            // closed gaps are re-checked when the collectors finish.
            reconciliation_interval: Duration::from_secs(3600),
            queue_check_interval: Duration::from_millis(100),
            ..OrchestratorConfig::default()
        },
        state_dir: lake.state.clone(),
        journal: journal.clone(),
        cwd: None,
        halt: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&changes);
    let service = Service::start(
        cfg,
        Arc::clone(&stop),
        Arc::new(move |_: &Board| {
            seen.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .unwrap();
    let board = Arc::clone(&service.board);

    // The lake is not there: failing, with the reason and the retry.
    wait_for("the reconciler to report the missing lake", 10, || status(&board, "reconciler").0 == "failing");
    let (_, message) = status(&board, "reconciler");
    assert!(message.contains(&lake.lake.display().to_string()) && message.contains("restarting in"), "{message}");
    assert_eq!(status(&board, "inventory").0, "failing");
    assert!(!lake.state.join("inventory/gaps.json").exists(), "nothing reconciled against a lake that is not there");

    // It appears: the next attempt (after the backoff) works, and the
    // orchestrator fills every gap without anyone starting it.
    std::fs::rename(&away, &lake.lake).unwrap();
    wait_for("full coverage", 60, || {
        let c = board.coverage();
        c.len() == 2 && c.iter().all(|(_, ratio, gaps)| *ratio == 1.0 && *gaps == 0)
    });
    for name in ["reconciler", "orchestrator", "inventory"] {
        assert_eq!(status(&board, name).0, "ok", "{name}: {:?}", status(&board, name));
    }
    assert!(changes.load(Ordering::SeqCst) >= 2, "the daemon was told after each run");
    stop.store(true, Ordering::SeqCst);
    let stopping = Instant::now();
    service.join();
    assert!(stopping.elapsed() < Duration::from_secs(5), "stops promptly");

    let j = Journal::open_at(&journal).unwrap();
    let done = j.tasks(&[TaskState::Done], usize::MAX).unwrap();
    let planted_gaps: u64 = planted.values().map(|(m, t, s)| m + t + s).sum();
    assert_eq!(done.len() as u64, planted_gaps, "one task per planted gap, each done once");
    assert!(j.tasks(&[TaskState::Queued, TaskState::Running, TaskState::Dead], usize::MAX).unwrap().is_empty());
}

#[test]
fn a_standby_neither_reconciles_nor_runs_collectors_until_it_leads() {
    let now = now_ms();
    let (lake, _, planted) = lake_with(&[("alpha", "collect.sh")], now, false);
    let from = steward_core::time::format_rfc3339(now.div_euclid(DAY) * DAY - 59 * DAY)[..10].to_owned();
    let journal = steward_store::JournalAt::File(lake.state.join("steward.db"));
    let halt = Arc::new(AtomicBool::new(true));
    let cfg = ServiceConfig {
        inventory: InventoryConfig { url: lake.lake.display().to_string(), rescan: Duration::from_secs(3600) },
        datasets: vec![dataset("alpha", &lake.tools, "collect.sh", &from)],
        orchestrator: OrchestratorConfig {
            concurrency: 4,
            reconciliation_interval: Duration::from_secs(3600),
            queue_check_interval: Duration::from_millis(100),
            ..OrchestratorConfig::default()
        },
        state_dir: lake.state.clone(),
        journal: journal.clone(),
        cwd: None,
        halt: Some(Arc::clone(&halt)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let service = Service::start(cfg, Arc::clone(&stop), Arc::new(|_: &Board| {})).unwrap();
    let board = Arc::clone(&service.board);
    wait_for("the standby to say so", 10, || status(&board, "reconciler").1.contains("standing by"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!lake.state.join("inventory/gaps.json").exists(), "a standby reconciled");
    assert!(
        Journal::open_existing_at(&journal).unwrap().is_none_or(|j| j.tasks(&[], usize::MAX).unwrap().is_empty()),
        "a standby queued tasks"
    );
    // It leads: within the second it reconciles, and its collectors fill the gaps.
    halt.store(false, Ordering::SeqCst);
    wait_for("full coverage once leading", 60, || {
        let c = board.coverage();
        c.len() == 1 && c.iter().all(|(_, ratio, gaps)| *ratio == 1.0 && *gaps == 0)
    });
    stop.store(true, Ordering::SeqCst);
    service.join();
    let done = Journal::open_at(&journal).unwrap().tasks(&[TaskState::Done], usize::MAX).unwrap();
    let planted_gaps: u64 = planted.values().map(|(m, t, s)| m + t + s).sum();
    assert_eq!(done.len() as u64, planted_gaps);
}
