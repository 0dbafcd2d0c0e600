//! Fuzzing the readers of agent, claim and telemetry records (issue 9):
//! whatever a record holds, a snapshot is taken without a panic, every
//! agent file becomes an agent or a warning, every claim is counted, and
//! the telemetry means stay within their domain.
//!
//! CI runs a few hundred cases. For a long run:
//! `STEWARD_FUZZ_CASES=100000 cargo test --release -p steward-sources --test fuzz_records -- --nocapture`

use std::fs;

use proptest::prelude::*;
use steward_sources::{CoordinationConfig, CoordinationSource, Source};

fn cases() -> u32 {
    std::env::var("STEWARD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// JSON values of every kind, some hostile.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("-1e308".to_owned()),
        Just("1e999".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("\"2999-01-01T00:00:00Z\"".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| x.to_string()),
        "[a-z0-9:.\\-]{0,24}".prop_map(|s| format!("{s:?}")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec(("[a-z_]{1,12}", inner), 0..4)
                .prop_map(|kv| format!("{{{}}}", kv.iter().map(|(k, v)| format!("{k:?}:{v}")).collect::<Vec<_>>().join(","))),
        ]
    })
}

/// A record: an object with the fields steward reads set to anything, or raw bytes.
fn record() -> impl Strategy<Value = Vec<u8>> {
    let fields = [
        "id",
        "status",
        "heartbeat",
        "last_heartbeat",
        "pid",
        "capacity",
        "lifecycle",
        "metrics",
        "claimed_by",
        "claimed_at",
        "attempts",
        "max_attempts",
        "timestamp",
        "worker",
        "managed_by",
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        proptest::collection::vec((proptest::sample::select(fields.to_vec()), value()), 0..8).prop_map(|kv| format!(
            "{{{}}}",
            kv.iter().map(|(k, v)| format!("{k:?}:{v}")).collect::<Vec<_>>().join(",")
        )
        .into_bytes()),
        value().prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_record_is_read_or_warned_about(agents in proptest::collection::vec(record(), 0..4), claims in proptest::collection::vec(record(), 0..4), telemetry in proptest::collection::vec(record(), 0..4)) {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for (i, b) in agents.iter().enumerate() {
            fs::write(d.join(format!("agent_{i}.json")), b).unwrap();
        }
        for (i, b) in claims.iter().enumerate() {
            fs::write(d.join(format!("claimed_{i}.json")), b).unwrap();
        }
        for (i, b) in telemetry.iter().enumerate() {
            fs::write(d.join(format!("telemetry_{i}.json")), b).unwrap();
        }
        let source = CoordinationSource::new(CoordinationConfig { dir: d.to_owned(), read_threads: 1, ..CoordinationConfig::default() });
        let s = source.snapshot(1_800_000_000_000).unwrap();
        // Every agent file is read as an agent, or named in a warning, or both.
        let seen: std::collections::BTreeSet<String> =
            s.agents.iter().map(|a| a.file.clone()).chain(s.warnings.iter().filter(|w| w.file.starts_with("agent_")).map(|w| w.file.clone())).collect();
        prop_assert_eq!(seen.len(), agents.len(), "{:?}", s.warnings);
        prop_assert_eq!(s.claims.len(), claims.len());
        prop_assert_eq!(s.telemetry_volume, telemetry.len() as u64);
        if let Some(e) = s.telemetry.error_rate {
            prop_assert!((0.0..=1.0).contains(&e));
        }
        if let Some(rt) = s.telemetry.response_time_ms {
            prop_assert!(rt.is_finite() && rt >= 0.0);
        }
        for a in &s.agents {
            prop_assert!(a.capacity >= 1);
            prop_assert!(a.metrics.values().all(|v| v.is_finite()));
        }
    }
}
