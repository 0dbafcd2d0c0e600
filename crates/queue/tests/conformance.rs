//! The same transitions on both queues, against real servers.

mod support;

use std::time::Duration;

use serde_json::{json, Map, Value};
use steward_queue::{open, Fate, QueueUrl, WorkQueue};
use support::servers::{shared_postgres, shared_redis};

fn items(n: usize, prefix: &str) -> Vec<Map<String, Value>> {
    (0..n).map(|i| json!({"id": format!("{prefix}{i}"), "n": i}).as_object().unwrap().clone()).collect()
}

fn queue(url: &str) -> Box<dyn WorkQueue> {
    let mut q = open(&QueueUrl::parse(url).unwrap(), Duration::from_secs(5));
    q.prepare().unwrap();
    q
}

/// Claim, complete, duplicate completion, failure, dead letter, stale requeue.
fn transitions(url: &str) {
    let mut q = queue(url);
    q.push(&items(10, "a")).unwrap();
    let c = q.census(100).unwrap();
    assert_eq!((c.depth, c.in_flight, c.completed), (10, 0, 0), "{c:?}");

    let got = q.claim("w1", 4, Duration::from_millis(100)).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].body["id"], "a0");
    assert_eq!(got[0].body["n"], 0);
    let c = q.census(100).unwrap();
    assert_eq!((c.depth, c.in_flight), (6, 4), "{c:?}");
    assert_eq!(c.claims.len(), 4);
    assert!(c.claims.iter().all(|p| p.consumer.as_deref() == Some("w1")));

    // Completing records each once.
    let refs: Vec<_> = got.iter().take(2).collect();
    assert_eq!(q.complete("w1", &refs, &[Some(json!({"ok": 1})), None]).unwrap(), vec![true, true]);
    let c = q.census(100).unwrap();
    assert_eq!((c.depth, c.in_flight, c.completed), (6, 2, 2), "{c:?}");

    // A failure requeues with one more attempt; at the limit it is dead.
    assert_eq!(q.fail("w1", &got[2], "boom", 2).unwrap(), Fate::Requeued);
    assert_eq!(q.fail("w1", &got[3], "boom", 1).unwrap(), Fate::DeadLettered);
    let c = q.census(100).unwrap();
    assert_eq!((c.depth, c.in_flight, c.completed, c.failed), (7, 0, 2, 1), "{c:?}");

    // Stale claims: a worker claims and dies; recovery brings them back.
    let lost = q.claim("w2", 3, Duration::from_millis(100)).unwrap();
    assert_eq!(lost.len(), 3);
    // Not stale yet: nothing moves.
    let ids: Vec<String> = lost.iter().map(|i| i.claim.clone()).collect();
    let r = q.requeue(&ids, Duration::from_secs(60), 3).unwrap();
    assert_eq!((r.requeued, r.gone), (0, 3), "{r:?}");
    std::thread::sleep(Duration::from_millis(1100));
    let r = q.requeue(&ids[..1], Duration::from_secs(1), 3).unwrap();
    assert_eq!(r.requeued, 1, "{r:?}");
    let r = q.requeue_idle(Duration::from_secs(1), 3).unwrap();
    assert_eq!(r.requeued, 2, "{r:?}");
    let c = q.census(100).unwrap();
    assert_eq!((c.depth, c.in_flight), (7, 0), "{c:?}");

    // A worker whose claim was requeued cannot record its completion twice.
    let rest = q.claim("w3", 100, Duration::from_millis(100)).unwrap();
    assert_eq!(rest.len(), 7);
    let again: Vec<_> = rest.iter().collect();
    assert!(q.complete("w3", &again, &[]).unwrap().iter().all(|b| *b));
    let c = q.census(100).unwrap();
    assert_eq!((c.depth, c.in_flight, c.completed, c.failed), (0, 0, 9, 1), "{c:?}");
    // The requeued items kept their ids and counted their attempts.
    let retried = rest.iter().find(|i| i.id == lost[0].id).unwrap();
    assert_eq!(retried.attempts, 1);
}

#[test]
fn redis_streams_follow_the_claim_protocol() {
    transitions(&shared_redis().url("conformance"));
}

#[test]
fn postgres_job_tables_follow_the_claim_protocol() {
    transitions(&shared_postgres().url("conformance"));
}

#[test]
fn a_redelivered_redis_item_whose_completion_is_recorded_is_not_run_again() {
    let r = shared_redis();
    let mut q = queue(&r.url("redelivery"));
    q.push(&items(1, "x")).unwrap();
    let got = q.claim("slow", 1, Duration::from_millis(100)).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    // The loop requeues the slow worker's claim...
    assert_eq!(q.requeue(&[got[0].claim.clone()], Duration::from_secs(1), 3).unwrap().requeued, 1);
    // ...which then finishes: its completion is the one recorded.
    assert_eq!(q.complete("slow", &[&got[0]], &[]).unwrap(), vec![true]);
    // The copy is delivered marked completed, and a second completion records nothing.
    let copy = q.claim("fast", 1, Duration::from_millis(100)).unwrap();
    assert_eq!(copy.len(), 1);
    assert!(copy[0].completed);
    assert_eq!(q.complete("fast", &[&copy[0]], &[]).unwrap(), vec![false]);
    let c = q.census(10).unwrap();
    assert_eq!((c.completed, c.in_flight, c.depth), (1, 0, 0));
    assert_eq!(r.int(&["HLEN", "redelivery:completed"]), 1);
}

#[test]
fn a_postgres_worker_whose_claim_was_requeued_cannot_complete_it() {
    let mut q = queue(&shared_postgres().url("requeued_claim"));
    q.push(&items(1, "x")).unwrap();
    let got = q.claim("slow", 1, Duration::from_millis(100)).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(q.requeue(&[got[0].claim.clone()], Duration::from_secs(1), 3).unwrap().requeued, 1);
    let copy = q.claim("fast", 1, Duration::from_millis(100)).unwrap();
    assert_eq!(q.complete("slow", &[&got[0]], &[]).unwrap(), vec![false]);
    assert_eq!(q.complete("fast", &[&copy[0]], &[]).unwrap(), vec![true]);
    assert_eq!(q.census(10).unwrap().completed, 1);
}

#[test]
fn heartbeats_keep_a_long_claim_fresh() {
    for url in [shared_redis().url("heartbeat"), shared_postgres().url("heartbeat")] {
        let mut q = queue(&url);
        q.push(&items(1, "h")).unwrap();
        let got = q.claim("busy", 1, Duration::from_millis(100)).unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        q.heartbeat("busy", &[got[0].claim.clone()]).unwrap();
        let r = q.requeue_idle(Duration::from_secs(1), 3).unwrap();
        assert_eq!(r.requeued, 0, "{url}: a refreshed claim was requeued");
        let c = q.census(10).unwrap();
        assert!(c.claims[0].idle_ms < 1000, "{url}: {c:?}");
        assert!(c.consumers.iter().any(|k| k.name == "busy" && k.idle_ms < 1000), "{url}: {c:?}");
    }
}

#[test]
fn a_list_reports_its_length_and_refuses_claims() {
    let r = shared_redis();
    r.cli(&["RPUSH", "rq:default", "a", "b", "c"]);
    let mut q = open(&QueueUrl::parse(&format!("redis://127.0.0.1:{}/0?list=rq:default", r.port)).unwrap(), Duration::from_secs(2));
    assert_eq!(q.census(10).unwrap().depth, 3);
    let e = q.claim("w", 1, Duration::ZERO).unwrap_err();
    assert!(e.is_bad_input() && e.to_string().contains("stream"), "{e}");
}

#[test]
fn a_server_that_is_not_there_fails_calls_quickly_and_names_it() {
    let port = support::servers::free_port();
    for url in [format!("redis://127.0.0.1:{port}/0?stream=s&group=g"), format!("postgres://u:secret@127.0.0.1:{port}/db")] {
        let mut q = open(&QueueUrl::parse(&url).unwrap(), Duration::from_secs(1));
        let started = std::time::Instant::now();
        let e = q.census(10).unwrap_err();
        assert!(e.is_connection(), "{e:?}");
        let text = format!("{e}");
        assert!(text.contains(&port.to_string()) && !text.contains("secret"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn an_entry_steward_holds_mid_recovery_is_never_dropped() {
    // steward died between XCLAIM and its EXEC: A is pending under steward-requeue.
    let r = shared_redis();
    let mut q = queue(&r.url("held"));
    q.push(&items(2, "h")).unwrap();
    let got = q.claim("w1", 2, Duration::from_millis(100)).unwrap();
    r.cli(&["XCLAIM", "held", "workers", "steward-requeue", "0", &got[0].claim, "JUSTID"]);
    std::thread::sleep(Duration::from_millis(1100));
    // B is stale; A was touched just now... by the time recovery runs both are over 1 s idle.
    let rec = q.requeue_idle(Duration::from_secs(1), 5).unwrap();
    assert_eq!(rec.requeued, 2, "{rec:?}");
    let c = q.census(10).unwrap();
    assert_eq!((c.depth, c.in_flight), (2, 0), "{c:?}");
    // Now a second run while steward-requeue holds one entry that is not stale yet.
    let again = q.claim("w2", 2, Duration::from_millis(100)).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    r.cli(&["XCLAIM", "held", "workers", "steward-requeue", "0", &again[0].claim, "JUSTID"]);
    let rec = q.requeue_idle(Duration::from_secs(1), 5).unwrap();
    assert_eq!(rec.requeued, 1, "only the stale one: {rec:?}");
    let c = q.census(10).unwrap();
    assert_eq!((c.depth, c.in_flight), (1, 1), "the entry steward holds is still pending, not lost: {c:?}");
}

#[test]
fn a_failure_racing_a_requeue_makes_one_copy() {
    for url in [shared_redis().url("race"), shared_postgres().url("race")] {
        let mut q = queue(&url);
        q.push(&items(1, "r")).unwrap();
        let got = q.claim("slow", 1, Duration::from_millis(100)).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(q.requeue(&[got[0].claim.clone()], Duration::from_secs(1), 5).unwrap().requeued, 1);
        assert_eq!(q.fail("slow", &got[0], "boom", 5).unwrap(), Fate::Gone, "{url}");
        q.release("slow", &got[0]).unwrap();
        let c = q.census(10).unwrap();
        assert_eq!((c.depth, c.in_flight, c.failed), (1, 0, 0), "{url}: one copy, not two: {c:?}");
    }
}

#[test]
fn an_idle_heartbeat_does_not_refresh_an_orphaned_claim() {
    let r = shared_redis();
    let mut q = queue(&r.url("orphan"));
    q.push(&items(1, "o")).unwrap();
    // Delivered, but the worker never got it (it restarted with the same id).
    assert_eq!(q.claim("w6", 1, Duration::from_millis(100)).unwrap().len(), 1);
    std::thread::sleep(Duration::from_millis(600));
    for _ in 0..3 {
        q.heartbeat("w6", &[]).unwrap();
    }
    let c = q.census(10).unwrap();
    assert!(c.claims[0].idle_ms >= 500, "the orphan was refreshed: {c:?}");
    assert_eq!(c.claims[0].attempts, 0, "a delivery was counted: {c:?}");
}

#[test]
fn a_dead_workers_claims_go_back_at_once_and_its_name_is_forgotten() {
    for url in [shared_redis().url("dead_worker"), shared_postgres().url("dead_worker")] {
        let mut q = queue(&url);
        q.push(&items(3, "d")).unwrap();
        assert_eq!(q.claim("gone", 2, Duration::from_millis(100)).unwrap().len(), 2);
        let rec = q.requeue_consumer("gone", 5).unwrap();
        assert_eq!(rec.requeued, 2, "{url}: {rec:?}");
        let c = q.census(10).unwrap();
        assert_eq!((c.depth, c.in_flight), (3, 0), "{url}: {c:?}");
        assert!(c.consumers.iter().all(|k| k.name != "gone"), "{url}: {c:?}");
    }
}

#[test]
fn a_replacement_requeue_query_may_leave_parameters_unused_and_a_missing_table_is_empty() {
    let pg = shared_postgres();
    let url = QueueUrl::parse(&pg.url("custom")).unwrap();
    let QueueUrl::Postgres(p) = &url else { panic!() };
    let mut q = steward_queue::postgres::PgQueue::new(p.clone(), Duration::from_secs(5));
    // Before anything was queued, the table does not exist: an empty queue, said so.
    let c = q.census(10).unwrap();
    assert_eq!(c.depth, 0);
    assert!(c.warnings.iter().any(|w| w.contains("does not exist yet")), "{c:?}");
    q.prepare().unwrap();
    q.push(&items(1, "c")).unwrap();
    let got = q.claim("w", 1, Duration::from_millis(100)).unwrap();
    let queries = steward_queue::postgres::Queries {
        requeue:
            "UPDATE {t} SET state = 'queued', claimed_by = NULL WHERE id::text = ANY($1) AND state = 'running' RETURNING id::text, state"
                .into(),
        ..Default::default()
    };
    let mut custom = steward_queue::postgres::PgQueue::new(p.clone(), Duration::from_secs(5)).with_queries(queries);
    assert_eq!(custom.requeue(&[got[0].claim.clone()], Duration::ZERO, 3).unwrap().requeued, 1);
}
