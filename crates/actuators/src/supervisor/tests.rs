use std::time::Instant;

use super::*;

fn clock() -> UnixMs {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

struct Fleet {
    _tmp: tempfile::TempDir,
    cx: SupervisorContext,
}

fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let cx = SupervisorContext {
        coordination_dir: tmp.path().join("c"),
        state_dir: tmp.path().join("state"),
        exe: PathBuf::from("/bin/false"),
        max_attempts: 3,
        max_item_bytes: steward_protocol::DEFAULT_MAX_ITEM_BYTES,
        queue: None,
    };
    fs::create_dir_all(&cx.coordination_dir).unwrap();
    Fleet { _tmp: tmp, cx }
}

fn sleepers() -> SupervisorConfig {
    SupervisorConfig {
        command: vec!["sleep".into(), "30".into()],
        restart_backoff: Duration::from_millis(100),
        restart_backoff_max: Duration::from_millis(400),
        drain_timeout: Duration::from_secs(2),
        ..SupervisorConfig::default()
    }
}

/// Ticks until `done` holds or 5 s pass.
fn settle(sup: &mut Supervisor, done: impl Fn(&Supervisor) -> bool) {
    let start = Instant::now();
    while !done(sup) && start.elapsed() < Duration::from_secs(5) {
        sup.tick(clock());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(done(sup), "did not settle: {:?}", sup.workers());
}

#[test]
fn scales_up_and_down_with_real_processes() {
    let f = fleet();
    let mut sup = Supervisor::new(sleepers(), f.cx.clone(), clock()).unwrap();
    let r = sup.apply(&Action::Scale { from: 0, to: 3 }, clock()).unwrap();
    assert!(r.starts_with("started 3"), "{r}");
    let pids: Vec<u32> = sup.workers().iter().map(|w| w.1).collect();
    assert!(pids.iter().all(|&p| process::stat(p).is_some()));
    // Workers that keep no agent file get one from the supervisor.
    let first = &sup.workers()[0].0;
    assert!(first.starts_with("agent_sw"), "{first}");
    assert!(f.cx.coordination_dir.join(format!("{first}.json")).exists());

    sup.apply(&Action::Scale { from: 3, to: 1 }, clock()).unwrap();
    settle(&mut sup, |s| s.workers().len() == 1);
    let gone: Vec<&u32> = pids.iter().filter(|p| !sup.workers().iter().any(|w| w.1 == **p)).collect();
    assert_eq!(gone.len(), 2);
    // Stopped workers are reaped (no zombie) and their agent files removed.
    for &&p in &gone {
        assert!(process::stat(p).is_none(), "pid {p} still exists");
    }
    let agent_files = fs::read_dir(&f.cx.coordination_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("agent_"))
        .count();
    assert_eq!(agent_files, 1);
    let kinds: Vec<&str> = sup.take_events().iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "started").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "stopped").count(), 2);
    sup.shutdown(Duration::from_secs(2), &clock);
    assert!(sup.workers().is_empty());
}

#[test]
fn a_crashed_worker_is_replaced_and_its_claims_requeued() {
    let f = fleet();
    let mut sup = Supervisor::new(sleepers(), f.cx.clone(), clock()).unwrap();
    sup.apply(&Action::Scale { from: 0, to: 2 }, clock()).unwrap();
    let (victim, pid) = sup.workers()[0].clone();
    fs::write(f.cx.coordination_dir.join("claimed_w1.json"), format!(r#"{{"id":"w1","claimed_by":"{victim}"}}"#)).unwrap();
    process::kill(pid, Signal::Kill).unwrap();
    settle(&mut sup, |s| s.workers().len() == 2 && !s.workers().iter().any(|w| w.0 == victim));
    let events = sup.take_events();
    assert!(events.iter().any(|e| e.kind == "crashed" && e.agent == victim), "{events:?}");
    assert!(events.iter().any(|e| e.kind == "requeued" && e.agent == victim), "{events:?}");
    let requeued: serde_json::Value = serde_json::from_slice(&fs::read(f.cx.coordination_dir.join("work_w1.json")).unwrap()).unwrap();
    assert_eq!(requeued["attempts"], 1);
    sup.shutdown(Duration::from_secs(2), &clock);
}

#[test]
fn a_crash_loop_pauses_replacements_and_refuses_scale_up() {
    let f = fleet();
    let cfg = SupervisorConfig { command: vec!["false".into()], crash_loop: 3, crash_window: Duration::from_secs(60), ..sleepers() };
    let mut sup = Supervisor::new(cfg, f.cx.clone(), clock()).unwrap();
    // A worker that dies at once makes the scale action fail, not succeed.
    let e = sup.apply(&Action::Scale { from: 0, to: 1 }, clock()).unwrap_err().to_string();
    assert!(e.contains("exited at once"), "{e}");
    settle(&mut sup, |s| s.crash_loop_open(clock()));
    let started = sup.take_events().iter().filter(|e| e.kind == "started").count();
    std::thread::sleep(Duration::from_millis(300));
    sup.tick(clock());
    let later = sup.take_events();
    assert_eq!(later.iter().filter(|e| e.kind == "started").count(), 0, "no restarts while the loop is open");
    for _ in 0..5 {
        sup.tick(clock());
    }
    assert!(sup.take_events().iter().all(|e| e.kind != "crash_loop"), "the crash loop is reported once, not every tick");
    assert!(started >= 3);
    assert!(matches!(sup.apply(&Action::Scale { from: 0, to: 2 }, clock()), Err(ActuatorError::Refused(_))));
}

#[test]
fn a_new_supervisor_adopts_live_workers_instead_of_duplicating_them() {
    let f = fleet();
    let mut first = Supervisor::new(sleepers(), f.cx.clone(), clock()).unwrap();
    first.apply(&Action::Scale { from: 0, to: 2 }, clock()).unwrap();
    let before = first.workers();
    drop(first); // steward exits without stopping its fleet (detach)

    let mut second = Supervisor::new(sleepers(), f.cx.clone(), clock()).unwrap();
    assert_eq!(second.workers(), before);
    assert_eq!(second.desired(), Some(2));
    second.tick(clock());
    assert_eq!(second.workers(), before, "no duplicates started");
    assert!(second.take_events().iter().filter(|e| e.kind == "adopted").count() == 2);
    second.shutdown(Duration::from_secs(2), &clock);
    for (_, pid) in before {
        assert!(process::stat(pid).is_none_or(|s| s.state == 'Z'), "adopted worker {pid} stopped");
    }
}

#[test]
fn restart_replaces_our_workers_and_refuses_strangers() {
    let f = fleet();
    let mut sup = Supervisor::new(sleepers(), f.cx.clone(), clock()).unwrap();
    sup.apply(&Action::Scale { from: 0, to: 1 }, clock()).unwrap();
    let (id, _) = sup.workers()[0].clone();
    let r = sup.apply(&Action::Restart { agents: vec![id.clone()] }, clock()).unwrap();
    assert!(r.contains(&id));
    settle(&mut sup, |s| s.workers().len() == 1 && s.workers()[0].0 != id);
    assert!(matches!(sup.apply(&Action::Restart { agents: vec!["stranger".into()] }, clock()), Err(ActuatorError::Refused(_))));
    sup.shutdown(Duration::from_secs(2), &clock);
}

#[test]
fn bad_config_is_refused_by_key() {
    let cfg = SupervisorConfig { command: vec![" ".into()], ..SupervisorConfig::default() };
    assert_eq!(cfg.validate().unwrap_err().key, "fleet.command");
    let cfg = SupervisorConfig { restart_backoff: Duration::from_secs(100), ..SupervisorConfig::default() };
    assert_eq!(cfg.validate().unwrap_err().key, "fleet.restart_backoff");
}

/// Regression (issue 10): with hand-made agents `agent_1` … `agent_4` in
/// the directory, a scale-up started workers named `agent_1` … and wrote
/// over their records. Workers now get names no hand-made agent has, and
/// never one whose record exists.
#[test]
fn workers_never_take_over_an_agent_record_they_did_not_create() {
    let f = fleet();
    for i in 1..=4 {
        fs::write(f.cx.coordination_dir.join(format!("agent_{i}.json")), format!(r#"{{"id":"agent_{i}","mine":true}}"#)).unwrap();
    }
    let mut sup = Supervisor::new(sleepers(), f.cx.clone(), clock()).unwrap();
    sup.apply(&Action::Scale { from: 0, to: 3 }, clock()).unwrap();
    for i in 1..=4 {
        let body = fs::read_to_string(f.cx.coordination_dir.join(format!("agent_{i}.json"))).unwrap();
        assert!(body.contains("\"mine\":true"), "agent_{i} was written over: {body}");
    }
    let ids: Vec<String> = sup.workers().into_iter().map(|w| w.0).collect();
    assert!(ids.iter().all(|id| id.starts_with("agent_sw")), "{ids:?}");
    sup.shutdown(Duration::from_millis(500), &clock);
}
