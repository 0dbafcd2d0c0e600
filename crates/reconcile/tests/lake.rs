//! A real local lake: three datasets of 60 daily partitions, 20 % missing,
//! 5 % truncated, today's stale; collectors that are small scripts, one
//! of which exits 0 without writing anything.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use common::{lake, lake_with, now_ms};
use steward_core::reconcile::{Dataset, OrchestratorConfig, Priority};
use steward_reconcile::{reconcile, Event, Inventory, Orchestrator, RunOptions};
use steward_store::{Journal, TaskState};

fn orchestrator_cfg() -> OrchestratorConfig {
    OrchestratorConfig {
        concurrency: 4,
        retries: 2,
        retry_backoff: Duration::from_millis(40),
        retry_backoff_max: Duration::from_millis(200),
        task_timeout: Duration::from_secs(20),
        max_runtime: Duration::from_secs(120),
        ..OrchestratorConfig::default()
    }
}

#[test]
fn gaps_are_found_filled_verified_and_the_liar_is_dead_lettered() {
    let now = now_ms();
    let (l, datasets, planted) = lake(&[("box", "collect.sh"), ("odds", "collect.sh"), ("liar", "liar.sh")], now);
    let inv = Arc::new(Inventory::open(l.lake.to_str().unwrap()).unwrap());
    let mut journal = Journal::open(&l.state.join("journal.db")).unwrap();

    let (report, _) = reconcile(&datasets, &inv, &mut journal, &l.state, now, &mut |_| {}).unwrap();
    let expected_gaps: u64 = planted.values().map(|(m, t, s)| m + t + s).sum();
    assert_eq!(report.gaps, expected_gaps);
    assert_eq!(report.queued, expected_gaps);
    for r in &report.datasets {
        let (m, t, s) = planted[&r.name];
        assert_eq!((r.coverage.missing, r.coverage.truncated, r.coverage.stale), (m, t, s), "{}", r.name);
        assert_eq!(r.coverage.expected, 60);
        assert!((0.0..=1.0).contains(&r.ratio));
        assert_eq!(r.ratio, (60 - m - t - s) as f64 / 60.0);
    }
    // gaps.json says the same.
    let gaps: serde_json::Value = serde_json::from_slice(&std::fs::read(l.state.join("inventory/gaps.json")).unwrap()).unwrap();
    assert_eq!(gaps["totals"]["gaps"], expected_gaps);
    assert_eq!(gaps["gaps"].as_array().unwrap().len() as u64, expected_gaps);
    for (name, (m, t, s)) in &planted {
        let d = &gaps["totals"]["by_dataset"][name];
        assert_eq!((d["missing"].as_u64(), d["truncated"].as_u64(), d["stale"].as_u64()), (Some(*m), Some(*t), Some(*s)), "{name}");
    }
    let by_priority: u64 = gaps["totals"]["by_priority"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_priority, expected_gaps);
    // Reconciling again queues nothing new: an open gap is never queued twice.
    let (again, _) = reconcile(&datasets, &inv, &mut journal, &l.state, now, &mut |_| {}).unwrap();
    assert_eq!((again.gaps, again.queued), (expected_gaps, 0));

    let cfg = orchestrator_cfg();
    let orch = Orchestrator::new(&cfg, &datasets, Arc::clone(&inv));
    let mut order = Vec::new();
    let opts = RunOptions { max_runtime: cfg.max_runtime, stop: Arc::new(AtomicBool::new(false)) };
    let summary = orch
        .run(&mut journal, &opts, &mut |e| {
            if let Event::Started { task, .. } = e {
                order.push((task.priority, task.attempts));
            }
        })
        .unwrap();
    let (lm, lt, ls) = planted["liar"];
    let liar_gaps = lm + lt + ls;
    assert_eq!(summary.done, expected_gaps - liar_gaps, "{summary:?}");
    assert_eq!(summary.dead, liar_gaps, "{summary:?}");
    assert_eq!(summary.remaining, 0);
    // First attempts ran by priority: critical ones first.
    let firsts: Vec<Priority> = order.iter().filter(|(_, a)| *a == 0).map(|(p, _)| *p).collect();
    assert!(firsts.windows(2).take(4).all(|w| w[0] <= w[1]), "{firsts:?}");
    assert_eq!(firsts[0], Priority::Critical);

    // Every fillable gap is filled and valid; the liar's are dead after 1 + retries attempts.
    for d in datasets.iter().filter(|d| d.name() != "liar") {
        for i in 0..d.count() {
            let len = std::fs::metadata(l.lake.join(d.key(i))).unwrap().len();
            assert!(len >= 50, "{} is {len} bytes", d.key(i));
        }
    }
    let dead = journal.tasks(&[TaskState::Dead], 1000).unwrap();
    assert_eq!(dead.len() as u64, liar_gaps);
    assert!(dead.iter().all(|t| t.dataset == "liar" && t.attempts == cfg.retries + 1), "{dead:?}");
    assert!(dead[0].last_error.as_deref().unwrap().contains("exited 0 but"), "{:?}", dead[0].last_error);

    // The lake now: box and odds complete, the liar's gaps open but dead-lettered (not queued again).
    let (after, _) = reconcile(&datasets, &inv, &mut journal, &l.state, now_ms(), &mut |_| {}).unwrap();
    assert_eq!(after.gaps, liar_gaps);
    assert_eq!(after.queued, 0);
    for r in &after.datasets {
        assert_eq!(r.ratio == 1.0, r.name != "liar", "{r:?}");
    }
    let gaps: serde_json::Value = serde_json::from_slice(&std::fs::read(l.state.join("inventory/gaps.json")).unwrap()).unwrap();
    assert_eq!(gaps["totals"]["gaps"], liar_gaps);
    assert_eq!(gaps["totals"]["by_dataset"]["box"]["coverage"], 1.0);
    let _ = &l.tools;
}

#[test]
fn a_slow_dataset_does_not_hold_up_another() {
    let now = now_ms();
    let (l, mut datasets, _) = lake(&[("slow", "collect.sh"), ("fast", "collect.sh")], now);
    // The slow dataset may start its collector once a second.
    let mut cfg = datasets[0].cfg.clone();
    cfg.min_interval = Duration::from_secs(1);
    datasets[0] = Dataset::compile(&cfg, now).unwrap();
    let inv = Arc::new(Inventory::open(l.lake.to_str().unwrap()).unwrap());
    let mut journal = Journal::open(&l.state.join("journal.db")).unwrap();
    // Only the slow dataset's gaps are older: they come first in the queue.
    reconcile(&datasets[..1], &inv, &mut journal, &l.state, now - 60_000, &mut |_| {}).unwrap();
    reconcile(&datasets, &inv, &mut journal, &l.state, now, &mut |_| {}).unwrap();
    let ocfg = OrchestratorConfig { concurrency: 2, max_runtime: Duration::from_secs(3), ..orchestrator_cfg() };
    let orch = Orchestrator::new(&ocfg, &datasets, Arc::clone(&inv));
    let mut starts: Vec<(String, std::time::Instant)> = Vec::new();
    let opts = RunOptions { max_runtime: ocfg.max_runtime, stop: Arc::new(AtomicBool::new(false)) };
    orch.run(&mut journal, &opts, &mut |e| {
        if let Event::Started { task, .. } = e {
            starts.push((task.dataset.clone(), std::time::Instant::now()));
        }
    })
    .unwrap();
    let slow: Vec<std::time::Instant> = starts.iter().filter(|(d, _)| d == "slow").map(|(_, t)| *t).collect();
    let fast: Vec<std::time::Instant> = starts.iter().filter(|(d, _)| d == "fast").map(|(_, t)| *t).collect();
    assert!(slow.len() >= 2 && slow.len() <= 4, "3 s at one start a second: {} starts", slow.len());
    for w in slow.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(990), "slow starts {:?} apart", w[1] - w[0]);
    }
    // All 14 fast tasks ran while the slow dataset waited for its second start.
    let fast_total = journal.tasks(&[], 1000).unwrap().iter().filter(|t| t.dataset == "fast").count();
    assert_eq!(fast.len(), fast_total, "every fast task started within the run");
    assert!(fast.iter().all(|t| *t < slow[1]), "a fast task waited for the slow dataset");
}

#[test]
fn a_refresh_rechecks_the_open_gaps_and_leaves_the_full_listing_due() {
    let now = now_ms();
    let (l, datasets, planted) = lake_with(&[("box", "collect.sh")], now, false);
    let inv = Inventory::open(l.lake.to_str().unwrap()).unwrap();
    let mut journal = Journal::open(&l.state.join("journal.db")).unwrap();
    let (mut listing, _, _) = steward_reconcile::scan::list(&datasets, &inv, now, &mut |_| {}).unwrap();
    let (missing, truncated, _) = planted["box"];
    assert_eq!(listing.open_gaps(), missing + truncated);
    let d = &datasets[0];
    // Someone fills the first missing key, and deletes a valid one.
    std::fs::create_dir_all(l.lake.join(d.key(0)).parent().unwrap()).unwrap();
    std::fs::write(l.lake.join(d.key(0)), vec![b'x'; 120]).unwrap();
    std::fs::remove_file(l.lake.join(d.key(2))).unwrap();
    let checked = listing.refresh(&datasets, &inv, now + 1000).unwrap();
    // The open gaps, and the valid keys recent enough to go stale (max_age 26 h).
    let recent_valid = (0..d.count()).filter(|&i| i % 5 != 0 && i % 20 != 1 && d.end(i).unwrap() > now - 26 * 3_600_000).count() as u64;
    assert_eq!(checked, missing + truncated + recent_valid, "only the open gaps and the recent keys were checked");
    assert_eq!(listing.open_gaps(), missing + truncated - 1, "the filled gap closed");
    assert_eq!(listing.at, now, "a refresh is not a full listing: the next one stays due");
    let report = steward_reconcile::scan::record(&datasets, &listing, &mut journal, &l.state, inv.url(), now + 1000).unwrap();
    assert_eq!(report.gaps, missing + truncated - 1);
    // The full listing finds the deleted one.
    let (listing, _, _) = steward_reconcile::scan::list(&datasets, &inv, now + 2000, &mut |_| {}).unwrap();
    assert_eq!(listing.open_gaps(), missing + truncated);
}
