//! The engine on both journals: every test runs once with the embedded
//! SQLite journal and once with a PostgreSQL journal (a real server started
//! once for this binary). Cycles, the history that steers the next one, the
//! audit chain, interrupted decisions, rollbacks and a foreign journal must
//! behave the same on both.

#[path = "support/fakes.rs"]
mod fakes;
#[path = "../../queue/tests/support/servers.rs"]
mod servers;
#[macro_use]
#[path = "../../store/tests/support/journal_backends.rs"]
mod journal_backends;
use fakes::{Queue, Replicas};
use journal_backends::{fresh_journal, Backend};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steward_core::config::EngineConfig;
use steward_core::decision::{DecisionType, OutcomeResult, Proposal};
use steward_runtime::{Engine, RunOptions, RuntimeError};
use steward_store::audit;
use steward_store::{Journal, JournalAt, VerdictRecord};

/// A state directory and a journal location of one backend.
struct Place {
    at: JournalAt,
    tmp: tempfile::TempDir,
}

impl Place {
    fn new(b: Backend) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (at, _) = fresh_journal(b, tmp.path(), "e");
        Self { at, tmp }
    }

    fn engine(&self, queue: u64, replicas: &Arc<AtomicU32>, cooldown: Duration) -> Engine {
        let mut cfg = EngineConfig::default();
        cfg.auto.scale_up_cooldown = cooldown;
        cfg.auto.max_agents = 20;
        Engine::builder(cfg)
            .source(Queue(queue))
            .fleet_actuator(Replicas(Arc::clone(replicas)))
            .state_dir(self.tmp.path())
            .journal(self.at.clone())
            .build()
            .unwrap()
    }

    fn journal(&self) -> Journal {
        Journal::open_existing_at(&self.at).unwrap().expect("a journal")
    }
}

fn a_cycle_is_journaled_and_its_history_steers_the_next(b: Backend) {
    let p = Place::new(b);
    let replicas = Arc::new(AtomicU32::new(1));
    let e = p.engine(100, &replicas, Duration::from_secs(3600));
    let r = e.execute(&RunOptions::default()).unwrap();
    assert_eq!(r.executed.len(), 1, "{r:?}");
    let scaled_to = replicas.load(Ordering::SeqCst);
    assert!(scaled_to > 1);
    let entries = e.recent_decisions(10).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].outcome.as_ref().map(|o| o.result), Some(OutcomeResult::Executed));
    // The next cycle reads the last scale-up from the journal: the cooldown holds.
    let r = e.execute(&RunOptions::default()).unwrap();
    assert!(r.executed.is_empty(), "the cooldown read from the journal should hold: {r:?}");
    assert_eq!(replicas.load(Ordering::SeqCst), scaled_to);
    // A second engine on the same journal (another process, another replica) sees the same.
    let again = p.engine(100, &replicas, Duration::from_secs(3600));
    assert!(again.execute(&RunOptions::default()).unwrap().executed.is_empty());
    assert_eq!(p.journal().cycle_count().unwrap(), 3);
}

fn every_cycle_is_signed_into_a_chain_that_verifies(b: Backend) {
    let p = Place::new(b);
    let replicas = Arc::new(AtomicU32::new(1));
    let e = p.engine(100, &replicas, Duration::ZERO);
    for _ in 0..3 {
        e.execute(&RunOptions::default()).unwrap();
    }
    let key = audit::verifying_key(p.tmp.path(), None).unwrap();
    let head = audit::read_head(&p.tmp.path().join(audit::HEAD_FILE)).unwrap();
    let v = p.journal().verify_audit(&key, None, head.as_ref()).unwrap().unwrap();
    assert!(v.records >= 6, "decisions and outcomes of three cycles: {v:?}");
    assert_eq!(head.map(|h| h.seq), Some(v.last_seq), "the head file follows the chain");
}

fn decisions_of_a_killed_cycle_are_marked_interrupted(b: Backend) {
    let p = Place::new(b);
    let replicas = Arc::new(AtomicU32::new(1));
    let e = p.engine(0, &replicas, Duration::ZERO);
    e.execute(&RunOptions::default()).unwrap();
    // A cycle killed between its decision and its outcome.
    let j = Journal::open_at(&p.at).unwrap();
    let cycle = j.last_cycle_id().unwrap().unwrap();
    let d = Proposal::scale(DecisionType::ScaleUp, 6, 0.8, 1, 3, "why.").into_decision("killed-01".into());
    j.record_decision(&cycle, 1, &d, &VerdictRecord { verdict: "execute", guard: None, reason: None, notes: &[] }).unwrap();
    e.execute(&RunOptions::default()).unwrap();
    let entry = p.journal().decision("killed-01").unwrap().unwrap();
    assert_eq!(entry.outcome.map(|o| o.result), Some(OutcomeResult::Interrupted));
}

fn a_rollback_reads_the_decision_from_the_journal(b: Backend) {
    let p = Place::new(b);
    let replicas = Arc::new(AtomicU32::new(2));
    let e = p.engine(100, &replicas, Duration::ZERO);
    let r = e.execute(&RunOptions::default()).unwrap();
    let id = r.executed[0].decision_id.clone();
    let left = replicas.load(Ordering::SeqCst);
    // The source sees no agents (the fleet moved since): the journaled
    // decision is found, its inverse judged unsafe, and nothing acts.
    match e.rollback(&id) {
        Err(RuntimeError::RollbackRefused { id: refused, why }) => {
            assert_eq!(refused, id);
            assert!(why.contains(&format!("the decision left {left}")), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(replicas.load(Ordering::SeqCst), left);
    assert!(matches!(e.rollback("no-such-decision"), Err(RuntimeError::UnknownDecision { .. })));
}

fn a_journal_of_another_target_is_refused(b: Backend) {
    let p = Place::new(b);
    Journal::open_at(&p.at).unwrap().claim("another queue").unwrap();
    let replicas = Arc::new(AtomicU32::new(1));
    let e = p.engine(100, &replicas, Duration::ZERO);
    match e.execute(&RunOptions::default()) {
        Err(RuntimeError::ForeignJournal { owner, .. }) => assert_eq!(owner, "another queue"),
        other => panic!("a foreign journal was used: {other:?}"),
    }
    assert_eq!(replicas.load(Ordering::SeqCst), 1, "nothing acted");
}

on_both!(
    a_cycle_is_journaled_and_its_history_steers_the_next,
    every_cycle_is_signed_into_a_chain_that_verifies,
    decisions_of_a_killed_cycle_are_marked_interrupted,
    a_rollback_reads_the_decision_from_the_journal,
    a_journal_of_another_target_is_refused,
);
