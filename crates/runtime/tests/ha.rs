//! High availability against a real PostgreSQL (Debian's package, which
//! scripts/test installs): one leader per lease, a lease taken over when
//! it expires or is released, and fencing: a leader whose token is no
//! longer current (paused past its lease, its own clock not yet aware)
//! refuses its actions and journals the refusal.

#[path = "support/fakes.rs"]
mod fakes;
#[path = "../../queue/tests/support/servers.rs"]
mod servers;
use fakes::{Queue, Replicas};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use steward_core::config::EngineConfig;
use steward_runtime::ha::{Fence, HaConfig, Leadership};
use steward_runtime::{Engine, RunOptions};

fn ha(lease_ms: u64) -> HaConfig {
    HaConfig {
        url: Some(format!("postgres://steward@127.0.0.1:{}/postgres", servers::shared_postgres().port)),
        lease: Duration::from_millis(lease_ms),
        renew: Duration::from_millis(lease_ms / 4),
        name: None,
    }
}

#[test]
fn one_leader_per_lease_and_a_released_lease_passes_at_once() {
    let cfg = ha(2000);
    let a = Leadership::new(&cfg, "lease-one", "a".into()).unwrap();
    let b = Leadership::new(&cfg, "lease-one", "b".into()).unwrap();
    assert!(a.step(), "the first replica takes a free lease");
    assert!(!b.step(), "the second stands by");
    let t1 = a.token().unwrap();
    assert!(a.step() && a.token() == Some(t1), "renewal keeps the token");
    assert_eq!(a.check(), Ok(t1));
    a.release();
    assert!(!a.is_leader() && a.check().is_err());
    assert!(b.step(), "released: the standby takes it without waiting for the expiry");
    let t2 = b.token().unwrap();
    assert!(t2 > t1, "every change of holder raises the token: {t1} -> {t2}");
}

#[test]
fn an_expired_lease_is_taken_over_and_the_old_leader_cannot_renew() {
    let cfg = ha(800);
    let a = Leadership::new(&cfg, "lease-two", "a".into()).unwrap();
    let b = Leadership::new(&cfg, "lease-two", "b".into()).unwrap();
    assert!(a.step());
    // a pauses (no renewal) past its lease.
    std::thread::sleep(Duration::from_millis(900));
    assert!(!a.is_leader(), "by its own clock, a paused leader knows its lease ran out");
    assert!(b.step(), "the standby takes the expired lease");
    assert!(!a.step(), "the old leader cannot renew a lease that changed hands");
    assert!(a.check().unwrap_err().contains("not the leader"));
}

fn engine(leadership: Leadership, dir: &std::path::Path, replicas: Arc<AtomicU32>) -> Engine {
    let mut cfg = EngineConfig::default();
    cfg.auto.scale_up_cooldown = Duration::ZERO;
    cfg.auto.max_agents = 20;
    Engine::builder(cfg).source(Queue(100)).fleet_actuator(Replicas(replicas)).state_dir(dir).leadership(leadership).build().unwrap()
}

#[test]
fn a_leader_whose_token_is_no_longer_current_refuses_and_journals_it() {
    let cfg = ha(60_000);
    let name = format!("fenced-{}", std::process::id());
    let a = Leadership::new(&cfg, &name, "a".into()).unwrap();
    assert!(a.step());
    let tmp = tempfile::tempdir().unwrap();
    let replicas = Arc::new(AtomicU32::new(1));
    let e = engine(a.clone(), tmp.path(), replicas.clone());
    // As leader it acts, and the decision carries its token.
    let r = e.execute(&RunOptions::default()).unwrap();
    assert_eq!(r.executed.len(), 1, "{r:?}");
    assert!(replicas.load(Ordering::SeqCst) > 1);
    let token = a.token().unwrap();
    let d = &r.decisions.as_ref().unwrap()[0];
    assert_eq!(d.parameters["fencing_token"], serde_json::json!(token));
    // Another replica took the lease while this one was paused, before its own clock could tell.
    let pg = servers::shared_postgres();
    pg.psql(&format!("UPDATE steward_lease SET holder = 'b', token = token + 1 WHERE name = '{name}'"));
    replicas.store(1, Ordering::SeqCst);
    let r = e.execute(&RunOptions::default()).unwrap();
    assert!(r.executed.is_empty(), "a fenced leader acted: {r:?}");
    assert_eq!(replicas.load(Ordering::SeqCst), 1, "the fleet was not touched");
    let refused = &r.skipped[0];
    assert!(refused.reason.starts_with("fenced:") && refused.reason.contains("held by b"), "{refused:?}");
    // The refusal is in the journal, with the decision and its token.
    let recent = e.recent_decisions(5).unwrap();
    let entry = serde_json::to_value(&recent[0]).unwrap();
    assert!(entry.to_string().contains("fenced: fencing token"), "{entry}");
    // And once its clock says so, it does not even start a cycle.
    assert!(!a.step());
    let err = e.execute(&RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("stands by"), "{err}");
    let started = Instant::now();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_answer_that_comes_after_the_leaders_own_deadline_does_not_let_it_act() {
    let cfg = ha(600);
    let name = format!("late-{}", std::process::id());
    let a = Leadership::new(&cfg, &name, "a".into()).unwrap();
    assert!(a.step());
    // The database would still say yes (its row runs for an hour), but this
    // replica's own clock says its lease ran out: a paused or slow leader.
    servers::shared_postgres().psql(&format!("UPDATE steward_lease SET expires_at = now() + interval '1 hour' WHERE name = '{name}'"));
    std::thread::sleep(Duration::from_millis(700));
    assert!(a.check().is_err(), "a leader past its own deadline passed the fence");
}

#[test]
fn a_lease_held_for_a_command_is_renewed_until_the_command_ends() {
    let cfg = ha(800);
    let name = format!("by-hand-{}", std::process::id());
    let hand = Leadership::new(&cfg, &name, "hand".into()).unwrap();
    let other = Leadership::new(&cfg, &name, "daemon".into()).unwrap();
    let held = hand.hold_for_command().unwrap();
    // Longer than the lease: still held, renewed.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!other.step(), "a replica took the lease while a command held it");
    drop(held);
    assert!(other.step(), "the lease was not given back when the command ended");
    assert!(hand.hold_for_command().unwrap_err().contains("another replica leads"));
}
