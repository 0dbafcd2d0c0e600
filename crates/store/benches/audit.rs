//! Audit chain throughput (`bash scripts/bench-audit.sh` runs it):
//! - durable appends, one record per transaction (each synced before the
//!   next: the strictest reading of "durable before its action starts");
//! - durable appends in group commits of 64 (a cycle's decisions, a batch
//!   of events: each batch synced before any of its actions start);
//! - `verify` over the chain those wrote.
//!
//! Prints the median of 5 runs of each. Not a test: timings are never
//! asserted (shared machines are noisy).

use std::time::Instant;

use serde_json::json;
use steward_store::audit::{AuditKey, NewRecord};
use steward_store::Journal;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn record(i: u64) -> NewRecord {
    NewRecord::new(
        "decision",
        json!({"id": format!("20261126T000000000Z-abcd-{i:02}"), "cycle_id": "20261126T000000000Z-abcd",
               "decision": {"type": "scale_up", "action": {"kind": "scale", "from": 3, "to": 5}, "confidence": 0.8,
                            "rationale": "120 items queued at 5 per agent need 24 agents, bounded to 5 by max_step"},
               "verdict": "execute", "guard": null, "reason": null, "notes": []}),
    )
}

fn main() {
    let runs = 5;
    let (single_n, batch_n, batch) = (2_000u64, 100_000u64, 64u64);
    let mut single = Vec::new();
    let mut grouped = Vec::new();
    let mut verify = Vec::new();
    let mut verified = 0;
    for _ in 0..runs {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let mut j = Journal::open(&tmp.path().join("journal.db")).expect("a journal");
        j.enable_audit(AuditKey::from_seed([5; 32]), "loop", Some(tmp.path().join("audit.head"))).expect("audit on");
        let t = Instant::now();
        for i in 0..single_n {
            j.audit(i as i64, &[record(i)]).expect("append");
        }
        single.push(single_n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut i = 0;
        while i < batch_n {
            let records: Vec<NewRecord> = (i..i + batch).map(record).collect();
            j.audit(i as i64, &records).expect("append");
            i += batch;
        }
        grouped.push(batch_n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let v = j.verify_audit(&AuditKey::from_seed([5; 32]).public(), None, None).expect("read").expect("a valid chain");
        verify.push(v.records as f64 / t.elapsed().as_secs_f64());
        verified = v.records;
    }
    println!("durable appends, 1 record per commit:   {:>9.0} records/s (median of {runs})", median(single));
    println!("durable appends, {batch} per group commit:  {:>9.0} records/s", median(grouped));
    println!("verify (chain + every signature):       {:>9.0} records/s over {verified} records", median(verify));
}
