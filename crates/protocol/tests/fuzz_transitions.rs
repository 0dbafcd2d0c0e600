//! Fuzzing the claim protocol's readers and transitions (issue 9): whatever
//! bytes a claimed, work or completed file holds, and whatever kind of
//! file it is, a transition never panics and never loses the item: after
//! it, the item is in exactly one state.
//!
//! CI runs a few hundred cases. For a long run:
//! `STEWARD_FUZZ_CASES=200000 cargo test --release -p steward-protocol --test fuzz_transitions -- --nocapture`

use std::fs;

use proptest::prelude::*;
use steward_protocol::{Claim, CoordinationDir, Durability, Finished};

fn cases() -> u32 {
    std::env::var("STEWARD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Item bodies: arbitrary bytes, or JSON objects with hostile fields.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let attempts = prop_oneof![
        Just("0".to_owned()),
        Just("\"7\"".to_owned()),
        Just("-1".to_owned()),
        Just("1e308".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("null".to_owned()),
        Just("{\"a\":1}".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| x.to_string()),
    ];
    let timestamp = prop_oneof![
        Just("\"2999-01-01T00:00:00Z\"".to_owned()),
        Just("\"not a time\"".to_owned()),
        Just("-1e300".to_owned()),
        Just("1700000000".to_owned()),
        Just("\"\"".to_owned()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (attempts.clone(), attempts, timestamp, "[a-z\\u{0}-\\u{10FFFF}]{0,12}").prop_map(|(a, m, t, by)| {
            format!(r#"{{"id":"x","attempts":{a},"max_attempts":{m},"claimed_at":{t},"claimed_by":{by:?},"payload":{{"n":[1,2,3]}}}}"#)
                .into_bytes()
        }),
        Just(b"[]".to_vec()),
        Just(b"\"just a string\"".to_vec()),
        Just(format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200)).into_bytes()),
    ]
}

/// Every state the item `x` is in.
fn states(dir: &std::path::Path) -> Vec<&'static str> {
    ["work", "claimed", "completed", "failed"]
        .into_iter()
        .filter(|p| fs::symlink_metadata(dir.join(format!("{p}_x.json"))).is_ok())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_claim_of_any_content_is_requeued_or_dead_lettered_never_lost(bytes in body(), max_attempts in 1u32..5, step in 0u8..3) {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("claimed_x.json"), &bytes).unwrap();
        let q = CoordinationDir::new(d, max_attempts).with_max_item_bytes(4096);
        let _ = match step {
            0 => q.requeue("x", "stale", 1_800_000_000_000).map(|_| ()),
            1 => q.retry("x", "failed", 1_800_000_000_000).map(|_| ()),
            _ => q.adopt("x").map(|_| ()),
        };
        prop_assert_eq!(states(d).len(), 1, "the item is in exactly one state: {:?}", states(d));
    }

    #[test]
    fn a_work_item_of_any_content_is_claimed_and_finished_or_dead_lettered(bytes in body(), fail: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("work_x.json"), &bytes).unwrap();
        let q = CoordinationDir::new(d, 3).with_max_item_bytes(4096);
        match q.claim("x", "agent_1", 1_800_000_000_000, Durability::Visible).unwrap() {
            Claim::Won(item) if fail => { q.retry("x", "boom", 1_800_000_000_000).unwrap(); let _ = item; }
            Claim::Won(item) => {
                let done = Finished { agent: "agent_1", at: 1_800_000_000_000, duration_ms: 1, result: None };
                q.complete("x", item, done, Durability::Visible).unwrap();
            }
            Claim::Poison(_) => prop_assert!(d.join("failed_x.json").exists()),
            other => prop_assert!(false, "a lone item is claimed or poison, not {:?}", other),
        }
        prop_assert_eq!(states(d).len(), 1, "{:?}", states(d));
    }
}
