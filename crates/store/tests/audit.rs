//! The audit chain against tampering by direct SQL on the journal: each
//! edit, deletion, swap, insertion, truncation and re-signing is found, and
//! `verify` names the first bad seq. Any sequence of appends verifies.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rusqlite::{params, Connection};
use serde_json::json;
use steward_store::audit::{self, AuditKey, Head, NewRecord};
use steward_store::{ChainBreak, Journal};

const KEY: [u8; 32] = [7; 32];

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        Self { _tmp: tmp, dir }
    }
    fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.db")
    }
    fn head_path(&self) -> PathBuf {
        self.dir.join(audit::HEAD_FILE)
    }
    fn journal(&self, actor: &str) -> Journal {
        let mut j = Journal::open(&self.journal_path()).unwrap();
        j.enable_audit(AuditKey::from_seed(KEY), actor, Some(self.head_path())).unwrap();
        j
    }
    /// `n` records of assorted kinds and actors.
    fn filled(n: u64) -> Self {
        let f = Self::new();
        let j = f.journal("loop");
        for i in 1..=n {
            let actor = if i % 3 == 0 { Some("cli:alice".to_owned()) } else { None };
            let r = NewRecord {
                actor,
                kind: ["decision", "outcome", "command"][i as usize % 3].into(),
                payload: json!({"i": i, "why": format!("reason {i}"), "x": 0.1 * i as f64}),
            };
            j.audit(1_700_000_000_000 + i as i64, &[r]).unwrap();
        }
        f
    }
    fn sql(&self) -> Connection {
        Connection::open(self.journal_path()).unwrap()
    }
    fn verify(&self) -> Result<steward_store::Verified, ChainBreak> {
        let j = Journal::open_existing(&self.journal_path()).unwrap().unwrap();
        let head = audit::read_head(&self.head_path()).unwrap();
        j.verify_audit(&AuditKey::from_seed(KEY).public(), None, head.as_ref()).unwrap()
    }
    fn first_bad(&self) -> u64 {
        match self.verify() {
            Ok(v) => panic!("tampering not detected: {v:?}"),
            Err(b) => b.seq,
        }
    }
}

#[test]
fn an_untouched_chain_verifies_and_says_how_far() {
    let f = Fixture::filled(20);
    let v = f.verify().unwrap();
    assert_eq!((v.records, v.first_seq, v.last_seq), (20, 1, 20));
    assert_eq!(audit::read_head(&f.head_path()).unwrap().unwrap(), Head { seq: 20, hash: v.head_hash.clone() });
    // --from: the rest of the chain only.
    let j = Journal::open_existing(&f.journal_path()).unwrap().unwrap();
    let v = j.verify_audit(&AuditKey::from_seed(KEY).public(), Some(15), None).unwrap().unwrap();
    assert_eq!((v.records, v.first_seq), (6, 15));
}

#[test]
fn an_edited_payload_is_named() {
    let f = Fixture::filled(20);
    f.sql().execute("UPDATE audit SET payload = replace(payload, 'reason 7', 'reason 8') WHERE seq = 7", []).unwrap();
    let b = f.verify().unwrap_err();
    assert_eq!(b.seq, 7);
    assert!(b.reason.contains("edited"), "{b:?}");
    // Also an edited actor or time.
    let f = Fixture::filled(20);
    f.sql().execute("UPDATE audit SET actor = 'cli:mallory' WHERE seq = 12", []).unwrap();
    assert_eq!(f.first_bad(), 12);
    let f = Fixture::filled(20);
    f.sql().execute("UPDATE audit SET ts = ts + 1 WHERE seq = 3", []).unwrap();
    assert_eq!(f.first_bad(), 3);
}

#[test]
fn a_deleted_record_is_named() {
    let f = Fixture::filled(20);
    f.sql().execute("DELETE FROM audit WHERE seq = 9", []).unwrap();
    let b = f.verify().unwrap_err();
    assert_eq!(b.seq, 9);
    assert!(b.reason.contains("missing"), "{b:?}");
    // The first one too.
    let f = Fixture::filled(5);
    f.sql().execute("DELETE FROM audit WHERE seq = 1", []).unwrap();
    assert_eq!(f.first_bad(), 1);
}

#[test]
fn two_swapped_records_are_named() {
    let f = Fixture::filled(20);
    let c = f.sql();
    c.execute_batch(
        "UPDATE audit SET seq = -1 WHERE seq = 6; UPDATE audit SET seq = 6 WHERE seq = 11; UPDATE audit SET seq = 11 WHERE seq = -1;",
    )
    .unwrap();
    assert_eq!(f.first_bad(), 6);
    // Neighbours.
    let f = Fixture::filled(20);
    f.sql()
        .execute_batch(
            "UPDATE audit SET seq = -1 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 5; UPDATE audit SET seq = 5 WHERE seq = -1;",
        )
        .unwrap();
    assert_eq!(f.first_bad(), 4);
}

#[test]
fn an_inserted_record_is_named() {
    // Made to look right: it links to seq 9, its hash is computed honestly,
    // and it is signed, with another key (the forger has no other).
    let f = Fixture::filled(20);
    let forger = Fixture::new();
    {
        let mut fj = Journal::open(&forger.journal_path()).unwrap();
        fj.enable_audit(AuditKey::from_seed([9; 32]), "loop", None).unwrap();
        fj.audit(1, &[NewRecord::new("command", json!({"forged": true}))]).unwrap();
    }
    let c = f.sql();
    c.execute("UPDATE audit SET seq = seq + 1000 WHERE seq >= 10", []).unwrap();
    c.execute("UPDATE audit SET seq = seq - 999 WHERE seq >= 1010", []).unwrap();
    let prev: String = c.query_row("SELECT hash FROM audit WHERE seq = 9", [], |r| r.get(0)).unwrap();
    c.execute(
        "INSERT INTO audit (seq, ts, actor, kind, payload, prev_hash, hash, signature) VALUES (10, 5, 'loop', 'command', '{}', ?1, ?2, ?3)",
        params![prev, "00".repeat(32), "00".repeat(64)],
    )
    .unwrap();
    assert_eq!(f.first_bad(), 10);
    // Appended at the end with an honest hash but a foreign signature.
    let f = Fixture::filled(20);
    let c = f.sql();
    let fc = forger.sql();
    let (payload, sig): (String, String) =
        fc.query_row("SELECT payload, signature FROM audit WHERE seq = 1", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    let prev: String = c.query_row("SELECT hash FROM audit WHERE seq = 20", [], |r| r.get(0)).unwrap();
    let hash = honest_hash(&prev, 21, 1, "loop", "command", &payload);
    c.execute(
        "INSERT INTO audit (seq, ts, actor, kind, payload, prev_hash, hash, signature) VALUES (21, 1, 'loop', 'command', ?1, ?2, ?3, ?4)",
        params![payload, prev, hash, sig],
    )
    .unwrap();
    let b = f.verify().unwrap_err();
    assert_eq!(b.seq, 21);
    assert!(b.reason.contains("signature"), "{b:?}");
}

/// The hash a record would have, computed the documented way.
fn honest_hash(prev_hex: &str, seq: u64, ts: i64, actor: &str, kind: &str, payload: &str) -> String {
    use sha2::{Digest, Sha256};
    let prev: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&prev_hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    let canonical = format!("{{\"actor\":{},\"kind\":{},\"payload\":{payload},\"seq\":{seq},\"ts\":{ts}}}", json!(actor), json!(kind));
    let mut h = Sha256::new();
    h.update(&prev);
    h.update(canonical.as_bytes());
    audit::to_hex(&h.finalize())
}

#[test]
fn a_truncated_tail_is_named_from_the_head_file() {
    let f = Fixture::filled(20);
    f.sql().execute("DELETE FROM audit WHERE seq > 16", []).unwrap();
    let b = f.verify().unwrap_err();
    assert_eq!(b.seq, 17);
    assert!(b.reason.contains("truncated") && b.reason.contains("17..20"), "{b:?}");
}

#[test]
fn a_chain_re_signed_with_another_key_fails_at_its_first_record() {
    let f = Fixture::filled(20);
    // Rewrite every signature with another key: hashes intact, chain intact.
    let other = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let c = f.sql();
    let rows: Vec<(i64, String)> = c
        .prepare("SELECT seq, hash FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (seq, hash) in rows {
        use ed25519_dalek::Signer;
        let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap()).collect();
        let sig = other.sign(&bytes).to_bytes();
        c.execute("UPDATE audit SET signature = ?1 WHERE seq = ?2", params![audit::to_hex(&sig), seq]).unwrap();
    }
    let b = f.verify().unwrap_err();
    assert_eq!(b.seq, 1);
    assert!(b.reason.contains("signature"), "{b:?}");
    // One re-signed record in the middle.
    let f = Fixture::filled(20);
    let c = f.sql();
    c.execute("UPDATE audit SET signature = (SELECT signature FROM audit WHERE seq = 3) WHERE seq = 13", []).unwrap();
    assert_eq!(f.first_bad(), 13);
}

#[test]
fn decisions_outcomes_and_events_are_signed_with_their_writes() {
    use steward_core::decision::{DecisionType, Outcome, OutcomeResult, Proposal};
    let f = Fixture::new();
    let j = f.journal("loop");
    let m: steward_core::assess::Metrics = serde_json::from_value(json!({
        "completion_rate": 0.5, "active_agents": 2, "work_queue_size": 3, "telemetry_volume": 0, "health_score": 0.5,
        "health_state": "degraded", "in_flight": 1, "stale_claims": 0, "completed": 1, "failed": 0, "total_agents": 2,
        "error_rate": null, "response_time_ms": null
    }))
    .unwrap();
    j.record_cycle(&steward_store::CycleStart {
        id: "c1",
        ts: 10,
        policy: "adaptive",
        dry_run: false,
        metrics: &m,
        recommended_agents: None,
        warnings: 0,
    })
    .unwrap();
    let d = Proposal::scale(DecisionType::ScaleUp, 6, 0.8, 2, 4, "why.").into_decision("c1-01".into());
    j.record_decision("c1", 10, &d, &steward_store::VerdictRecord { verdict: "execute", guard: None, reason: None, notes: &[] }).unwrap();
    j.record_event(11, "started", "agent-1", "started", Some("c1-01")).unwrap();
    j.record_outcome("c1-01", 12, &Outcome { result: OutcomeResult::Executed, reason: "ok".into(), duration_ms: 2 }).unwrap();
    j.record_event(13, "rollback", "c1-01", "rolled back", Some("c2-01")).unwrap();
    let kinds: Vec<String> = j.audit_records(None, None, 0, 100).unwrap().into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["decision", "action", "outcome", "rollback"]);
    let first = &j.audit_records(None, Some("decision"), 0, 1).unwrap()[0];
    let payload: serde_json::Value = serde_json::from_str(&first.payload).unwrap();
    assert_eq!(payload["decision"]["id"], "c1-01");
    assert_eq!(first.actor, "loop");
    assert_eq!(f.verify().unwrap().records, 4);
    // A config change once, not again while it stays the same.
    assert!(j.audit_config(14, &json!({"auto": {"max_agents": 5}})).unwrap());
    assert!(!j.audit_config(15, &json!({"auto": {"max_agents": 5}})).unwrap());
    assert!(j.audit_config(16, &json!({"auto": {"max_agents": 6}})).unwrap());
    assert_eq!(f.verify().unwrap().records, 6);
}

#[test]
fn two_writers_on_one_journal_make_one_chain() {
    let f = Fixture::new();
    std::thread::scope(|s| {
        for actor in ["loop", "cli:bob"] {
            let f = &f;
            s.spawn(move || {
                let j = f.journal(actor);
                for i in 0..50 {
                    j.audit(i, &[NewRecord::new("command", json!({"i": i}))]).unwrap();
                }
            });
        }
    });
    assert_eq!(f.verify().unwrap().records, 100);
}

#[test]
fn pruning_keeps_a_signed_checkpoint() {
    let f = Fixture::filled(30);
    let j = f.journal("loop");
    // Records 1..=20 are older than the cut.
    let removed = j.prune_audit(1_700_000_000_000 + 21, 1_800_000_000_000).unwrap();
    assert_eq!(removed, 20);
    let v = f.verify().unwrap();
    assert_eq!((v.checkpoint, v.first_seq, v.last_seq), (Some(20), 21, 31), "30 records and the prune record");
    let prune = j.audit_records(None, Some("prune"), 0, 1).unwrap();
    assert!(prune[0].payload.contains("\"through_seq\":20"), "{prune:?}");
    // A forged checkpoint is found.
    f.sql().execute("UPDATE audit_checkpoint SET signature = ?1", params!["11".repeat(64)]).unwrap();
    assert_eq!(f.first_bad(), 20);
}

#[test]
fn the_key_file_is_private_and_never_followed() {
    let f = Fixture::new();
    let (k, created) = AuditKey::load_or_create(&f.dir).unwrap();
    assert!(created);
    let path = f.dir.join(audit::KEY_FILE);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let (again, created) = AuditKey::load_or_create(&f.dir).unwrap();
    assert!(!created);
    assert_eq!(k.public_hex(), again.public_hex());
    assert!(
        !format!("{k:?}").contains(&std::fs::read_to_string(&path).unwrap().lines().nth(1).unwrap()[..16]),
        "Debug never shows the secret"
    );
    // Readable by others: refused, as ssh refuses.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = AuditKey::load(&path).unwrap_err().to_string();
    assert!(e.contains("chmod 600"), "{e}");
    // A link planted where the key goes: refused, not followed, not replaced.
    let g = Fixture::new();
    std::os::unix::fs::symlink(&path, g.dir.join(audit::KEY_FILE)).unwrap();
    let e = AuditKey::load_or_create(&g.dir).unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    // A journal signed with a key: its key file missing is not replaced by a
    // new key, and another key is refused.
    let k = Fixture::new();
    let e = AuditKey::load_or_create_for(&k.dir, Some(&again.public_hex())).unwrap_err().to_string();
    assert!(e.contains("is missing") && e.contains(&again.public_hex()), "{e}");
    assert!(!k.dir.join(audit::KEY_FILE).exists(), "no new key made");
    let (other, _) = AuditKey::load_or_create(&k.dir).unwrap();
    let e = AuditKey::load_or_create_for(&k.dir, Some(&again.public_hex())).unwrap_err().to_string();
    assert!(e.contains("is not the key") && e.contains(&other.public_hex()), "{e}");
    assert!(AuditKey::load_or_create_for(&k.dir, Some(&other.public_hex())).is_ok());
    // Not a key.
    let h = Fixture::new();
    write_private(&h.dir.join(audit::KEY_FILE), "hello\n");
    assert!(AuditKey::load_or_create(&h.dir).unwrap_err().to_string().contains("not a steward audit key"));
}

fn write_private(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn payload() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e12f64..1e12).prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4).prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("STEWARD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32), ..ProptestConfig::default() })]
    #[test]
    fn any_sequence_of_appends_verifies(
        batches in prop::collection::vec(prop::collection::vec((".{0,10}", "[a-z_]{1,10}", payload(), any::<i64>()), 1..4), 1..8)
    ) {
        let f = Fixture::new();
        let j = f.journal("loop");
        let mut n = 0;
        for batch in &batches {
            let ts = batch[0].3;
            let records: Vec<NewRecord> = batch.iter().map(|(actor, kind, p, _)| NewRecord { actor: Some(actor.clone()), kind: kind.clone(), payload: p.clone() }).collect();
            n += records.len() as u64;
            j.audit(ts, &records).unwrap();
        }
        let v = f.verify().unwrap();
        prop_assert_eq!(v.records, n);
        prop_assert_eq!(v.last_seq, n);
    }
}

#[test]
fn a_checkpoint_planted_by_hand_skips_nothing() {
    // Records still there below a planted checkpoint.
    let f = Fixture::filled(20);
    let c = f.sql();
    c.execute("UPDATE audit SET payload = replace(payload, 'reason 4', 'reason 5') WHERE seq = 4", []).unwrap();
    c.execute("INSERT INTO audit_checkpoint VALUES (1, 9, 'x', 'y', 0)", []).unwrap();
    let b = f.verify().unwrap_err();
    assert_eq!(b.seq, 1, "{b:?}");
    assert!(b.reason.contains("planted"), "{b:?}");
    // Records 1..9 deleted and seq 9's own hash and signature copied into a
    // checkpoint: it looks like a prune, but no signed prune record says so.
    let f = Fixture::filled(20);
    let c = f.sql();
    c.execute("INSERT INTO audit_checkpoint SELECT 1, seq, hash, signature, 0 FROM audit WHERE seq = 9", []).unwrap();
    c.execute("DELETE FROM audit WHERE seq <= 9", []).unwrap();
    let b = f.verify().unwrap_err();
    assert_eq!(b.seq, 10, "{b:?}");
    assert!(b.reason.contains("no signed prune record"), "{b:?}");
}
