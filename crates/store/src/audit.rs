//! The audit trail: an append-only, tamper-evident chain of records in the
//! journal (spec/operations.md).
//!
//! Each record is `seq, ts, actor, kind, payload` (canonical JSON),
//! `prev_hash`, `hash = SHA-256(prev_hash || canonical record)` and an
//! Ed25519 `signature` over `hash`. The canonical record is the JSON object
//! `{"actor","kind","payload","seq","ts"}` with sorted keys and no white
//! space; the payload is stored in its canonical form, so a verifier never
//! re-encodes anything it hashes.
//!
//! Records are appended inside the transaction of what they describe (a
//! decision and its record commit together, or neither does), under
//! SQLite's write lock (`BEGIN IMMEDIATE`), so two processes appending to
//! one journal still make one chain.
//!
//! Truncating the tail leaves a valid chain; the head file
//! (`audit.head` next to the key) remembers the last record written, and
//! `verify` names the records that went missing. Pruning old records keeps
//! a signed checkpoint (the last pruned record's hash and signature), from
//! which the chain goes on.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use steward_core::time::{format_rfc3339, UnixMs};

use crate::db::{p, Db};
use crate::{Journal, JournalError, Result};

/// The signing key's file name in the state directory.
pub const KEY_FILE: &str = "audit.key";
/// The head file's name in the state directory.
pub const HEAD_FILE: &str = "audit.head";

/// What went wrong with the audit key or head.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The key file could not be read or created.
    #[error("audit key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A public key given by hand is not one.
    #[error("{0:?} is not an Ed25519 public key (64 hex digits, as `steward audit pubkey` prints)")]
    BadPublicKey(String),
}

/// The key that signs the chain. Its secret half is never printed: `Debug`
/// shows the public half only.
pub struct AuditKey {
    signing: SigningKey,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("public", &self.public_hex()).finish_non_exhaustive()
    }
}

const KEY_HEADER: &str = "steward-audit-ed25519-v1";
const MAX_KEY_FILE: u64 = 4096;

impl AuditKey {
    /// A new random key (the OS's randomness).
    ///
    /// # Errors
    /// The OS gave no randomness.
    pub fn generate() -> std::result::Result<Self, String> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
        Ok(Self { signing: SigningKey::from_bytes(&seed) })
    }

    /// A key from a 32-byte seed (tests, benchmarks).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { signing: SigningKey::from_bytes(&seed) }
    }

    /// Loads `<state_dir>/audit.key`, creating it (mode 0600, never through a
    /// link, never over an existing file) when there is none. Returns the key
    /// and whether it was created.
    ///
    /// # Errors
    /// The file cannot be read or created, is not a regular file, is
    /// readable by others, or does not hold a key.
    pub fn load_or_create(state_dir: &Path) -> std::result::Result<(Self, bool), AuditError> {
        let path = state_dir.join(KEY_FILE);
        match Self::load(&path) {
            Ok(k) => Ok((k, false)),
            Err(AuditError::Key { reason, .. }) if reason == NOT_THERE => {
                let key = Self::generate().map_err(|reason| AuditError::Key { path: path.clone(), reason })?;
                // Written whole under a temporary name, then linked into
                // place: a crash never leaves a half-written key, and a key
                // another process made first is never overwritten.
                let text = format!("{KEY_HEADER}\n{}\n", to_hex(key.signing.as_bytes()));
                match steward_protocol::publish_mode(state_dir, &path, text.as_bytes(), steward_protocol::Durability::Flushed, 0o600) {
                    Ok(true) => Ok((key, true)),
                    // Another process created it first: use theirs.
                    Ok(false) => Ok((Self::load(&path)?, false)),
                    Err(e) => Err(AuditError::Key { path: path.clone(), reason: e.to_string() }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// [`AuditKey::load_or_create`] for a journal whose chain was first
    /// signed with the public key `recorded` (if any): a missing key file is
    /// not replaced by a new key, and a key that is not that one is refused
    /// (either would break the chain for every verifier).
    ///
    /// # Errors
    /// As [`AuditKey::load_or_create`], and those two refusals.
    pub fn load_or_create_for(state_dir: &Path, recorded: Option<&str>) -> std::result::Result<(Self, bool), AuditError> {
        let path = state_dir.join(KEY_FILE);
        let exists = std::fs::symlink_metadata(&path).is_ok();
        if let (false, Some(pk)) = (exists, recorded) {
            return Err(AuditError::Key {
                path,
                reason: format!(
                    "is missing, but this journal's chain was signed with the key whose public half is {pk}: restore that key \
                     (steward backup restore, or wherever you keep it); a new key would break the chain. To start a new chain \
                     on purpose, move the journal aside"
                ),
            });
        }
        let (key, created) = Self::load_or_create(state_dir)?;
        if let Some(pk) = recorded {
            if key.public_hex() != pk {
                return Err(AuditError::Key {
                    path,
                    reason: format!(
                        "is not the key this journal's chain was signed with (its public half is {}, the journal's {pk})",
                        key.public_hex()
                    ),
                });
            }
        }
        Ok((key, created))
    }

    /// Loads a key file: a regular file (not a link), not readable by group
    /// or others (as ssh insists for its keys), at most 4 KiB.
    ///
    /// # Errors
    /// As [`AuditKey::load_or_create`]; a missing file is an error here.
    pub fn load(path: &Path) -> std::result::Result<Self, AuditError> {
        let bad = |reason: String| AuditError::Key { path: path.to_owned(), reason };
        let f = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad(NOT_THERE.into())),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(bad("is a symbolic link; refusing it".into())),
            Err(e) => return Err(bad(e.to_string())),
        };
        let meta = f.metadata().map_err(|e| bad(e.to_string()))?;
        if !meta.is_file() {
            return Err(bad("is not a regular file".into()));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(bad(format!("is readable or writable by others (mode {:o}); chmod 600 it", meta.mode() & 0o777)));
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(bad(format!("is {} bytes; a key file is under {MAX_KEY_FILE}", meta.len())));
        }
        let mut text = String::new();
        f.take(MAX_KEY_FILE).read_to_string(&mut text).map_err(|e| bad(e.to_string()))?;
        let mut lines = text.lines();
        if lines.next() != Some(KEY_HEADER) {
            return Err(bad(format!("does not start with {KEY_HEADER:?}: not a steward audit key")));
        }
        let seed = lines.next().and_then(from_hex::<32>).ok_or_else(|| bad("holds no key (64 hex digits on line 2)".into()))?;
        Ok(Self { signing: SigningKey::from_bytes(&seed) })
    }

    /// The public key, as 64 hex digits.
    pub fn public_hex(&self) -> String {
        to_hex(self.signing.verifying_key().as_bytes())
    }

    /// The public key.
    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    fn sign(&self, hash: &[u8; 32]) -> [u8; 64] {
        self.signing.sign(hash).to_bytes()
    }
}

const NOT_THERE: &str = "does not exist";

/// Parses a public key printed by `steward audit pubkey`.
///
/// # Errors
/// Not 64 hex digits, or not a point of the curve.
pub fn parse_public_key(hex: &str) -> std::result::Result<VerifyingKey, AuditError> {
    from_hex::<32>(hex.trim())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| AuditError::BadPublicKey(hex.trim().chars().take(80).collect()))
}

/// Who did it: `loop`, `cli:USER`, `http:IDENTITY`.
pub type Actor = String;

/// The identity of the person running the CLI: `cli:` and the login name
/// (`$USER`, else the uid).
pub fn cli_actor() -> Actor {
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty() && u.len() < 64 && !u.contains(char::is_control));
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    match user {
        Some(u) => format!("cli:{u}"),
        None => format!("cli:uid {uid}"),
    }
}

/// One record of the chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its position, from 1, without gaps.
    pub seq: u64,
    /// When (Unix ms).
    pub ts: UnixMs,
    /// Who.
    pub actor: String,
    /// What kind (`decision`, `outcome`, `action`, `command`, `config`, ...).
    pub kind: String,
    /// What, as canonical JSON text.
    pub payload: String,
    /// The previous record's hash (hex; 64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 of `prev_hash || canonical record` (hex).
    pub hash: String,
    /// Ed25519 over the hash's 32 bytes (hex).
    pub signature: String,
}

impl AuditRecord {
    /// As a JSON line of an export: the payload as JSON, the time also in
    /// RFC 3339.
    pub fn to_export(&self) -> Value {
        serde_json::json!({
            "seq": self.seq,
            "ts": self.ts,
            "time": format_rfc3339(self.ts),
            "actor": self.actor,
            "kind": self.kind,
            "payload": serde_json::from_str::<Value>(&self.payload).unwrap_or(Value::String(self.payload.clone())),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "signature": self.signature,
        })
    }
}

/// Canonical JSON: object keys sorted, no white space, serde_json's
/// number and string encoding. Deterministic for equal values.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The bytes a record's hash covers after `prev_hash`.
fn canonical_record(seq: u64, ts: UnixMs, actor: &str, kind: &str, payload: &str) -> String {
    let s = |x: &str| Value::String(x.to_owned()).to_string();
    format!("{{\"actor\":{},\"kind\":{},\"payload\":{payload},\"seq\":{seq},\"ts\":{ts}}}", s(actor), s(kind))
}

fn record_hash(prev: &[u8; 32], seq: u64, ts: UnixMs, actor: &str, kind: &str, payload: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical_record(seq, ts, actor, kind, payload).as_bytes());
    h.finalize().into()
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// Hex of bytes, lower case.
pub fn to_hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(D[usize::from(x >> 4)] as char);
        s.push(D[usize::from(x & 15)] as char);
    }
    s
}

fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nib(b[2 * i])? << 4 | nib(b[2 * i + 1])?;
    }
    Some(out)
}

/// What the journal needs to append: the key, who acts, and where the
/// head file goes.
pub(crate) struct Auditor {
    key: AuditKey,
    actor: Actor,
    head: Option<PathBuf>,
}

/// One record to append.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Who (`None`: the journal's actor).
    pub actor: Option<Actor>,
    /// What kind.
    pub kind: String,
    /// What.
    pub payload: Value,
}

impl NewRecord {
    /// A record by the journal's actor.
    pub fn new(kind: &str, payload: Value) -> Self {
        Self { actor: None, kind: kind.to_owned(), payload }
    }
}

/// The last record written, as the head file keeps it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Head {
    /// Its seq.
    pub seq: u64,
    /// Its hash (hex).
    pub hash: String,
}

/// The newest record's (seq, hash): where the next one links on.
fn tail(db: &Db) -> Result<(u64, [u8; 32])> {
    let pair = |r: &crate::db::Row| Ok((r.get::<i64>(0)?, r.get::<String>(1)?));
    let last = match db.opt("reading the audit chain's end", "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[], pair)? {
        Some(l) => Some(l),
        None => db.opt("reading the audit checkpoint", "SELECT seq, hash FROM audit_checkpoint WHERE id = 1", &[], pair)?,
    };
    match last {
        None => Ok((0, [0u8; 32])),
        Some((seq, hash)) => {
            let h = from_hex::<32>(&hash)
                .ok_or_else(|| JournalError::Corrupt { id: format!("audit seq {seq}"), message: "its hash is not 64 hex digits".into() })?;
            Ok((u64::try_from(seq).unwrap_or(0), h))
        }
    }
}

/// Appends `records` in the open write transaction on `db`; returns the head.
pub(crate) fn append(db: &Db, auditor: &Auditor, ts: UnixMs, records: &[NewRecord]) -> Result<Option<Head>> {
    if records.is_empty() {
        return Ok(None);
    }
    let (mut seq, mut prev) = tail(db)?;
    for r in records {
        seq += 1;
        let actor = r.actor.as_deref().unwrap_or(&auditor.actor);
        let payload = canonical_json(&r.payload);
        let hash = record_hash(&prev, seq, ts, actor, &r.kind, &payload);
        let sig = auditor.key.sign(&hash);
        db.exec(
            "appending to the audit chain",
            "INSERT INTO audit (seq, ts, actor, kind, payload, prev_hash, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            p![seq, ts, actor, r.kind, payload, to_hex(&prev), to_hex(&hash), to_hex(&sig)],
        )?;
        prev = hash;
    }
    Ok(Some(Head { seq, hash: to_hex(&prev) }))
}

/// Writes the head file (temp name, rename; not synced: after a crash it
/// may be older than the journal, never newer).
fn write_head(path: &Path, head: &Head) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let bytes = serde_json::to_vec(head).unwrap_or_default();
    if let Err(e) = steward_protocol::write_atomic(dir, path, &bytes, steward_protocol::Durability::Visible) {
        tracing::warn!(head = %path.display(), "Could not write the audit head: {e}");
    }
}

/// Reads a head file, if there is one (bounded, regular files only).
///
/// # Errors
/// It exists but is not a head.
pub fn read_head(path: &Path) -> std::result::Result<Option<Head>, String> {
    let f = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut text = String::new();
    f.take(4096).read_to_string(&mut text).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map(Some).map_err(|e| format!("{} is not an audit head: {e}", path.display()))
}

/// Why a chain does not verify: the first bad record and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The first record that fails.
    pub seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// The first checked.
    pub first_seq: u64,
    /// The last.
    pub last_seq: u64,
    /// Where pruning left a signed checkpoint, if it did.
    pub checkpoint: Option<u64>,
    /// The last record's hash.
    pub head_hash: String,
}

/// Signatures checked together (a failing batch is re-checked one by one
/// to name the first bad record).
const SIG_BATCH: usize = 4096;
/// Records read before their hashes and signatures are checked (bounded memory).
const WINDOW: usize = 64 * 1024;
/// Records read per query by `verify_audit`.
const VERIFY_PAGE: usize = 20_000;

/// A record read, its links checked, waiting for its own hash and
/// signature to be checked.
struct Stored {
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
    sig: [u8; 64],
    /// The canonical record its hash covers (after `prev`).
    body: String,
}

/// Whether every signature in `items` verifies against the one `key`, in
/// one batch: with fresh random 128-bit weights z_i,
/// `[8](-(Σ z_i s_i) B + Σ z_i R_i + (Σ z_i k_i) A) = 0`, where
/// `k_i = SHA-512(R_i || A || hash_i) mod l` (RFC 8032's equation, summed).
/// A false answer is re-checked one by one with ed25519-dalek's
/// `verify_strict`, which names the bad record; this only decides that a
/// batch is good. Non-canonical `s` or an `R` off the curve fails it.
fn same_key_batch(key: &VerifyingKey, items: &[Stored], seed: &[u8; 32]) -> bool {
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
    use sha2::Sha512;
    let a_bytes = key.to_bytes();
    let a = key.to_edwards();
    let mut scalars: Vec<Scalar> = Vec::with_capacity(items.len() + 2);
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(items.len() + 2);
    let (mut sum_zs, mut sum_zk) = (Scalar::ZERO, Scalar::ZERO);
    for (i, r) in items.iter().enumerate() {
        let (r_bytes, s_bytes) = r.sig.split_at(32);
        let (Ok(r_arr), Ok(s_arr)) = (<[u8; 32]>::try_from(r_bytes), <[u8; 32]>::try_from(s_bytes)) else { return false };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_arr)) else { return false };
        let Some(big_r) = CompressedEdwardsY(r_arr).decompress() else { return false };
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new().chain_update(r_arr).chain_update(a_bytes).chain_update(r.hash).finalize().into(),
        );
        // z_i: 128 random bits from the run's seed (unknown to whoever wrote the journal).
        let mut zb = [0u8; 32];
        zb[..16].copy_from_slice(&Sha512::new().chain_update(seed).chain_update((i as u64).to_le_bytes()).finalize()[..16]);
        let z = Scalar::from_bytes_mod_order(zb);
        sum_zs += z * s;
        sum_zk += z * k;
        scalars.push(z);
        points.push(big_r);
    }
    scalars.push(-sum_zs);
    points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
    scalars.push(sum_zk);
    points.push(a);
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points).mul_by_cofactor().is_identity()
}

/// Checks each record's hash against its content and its signature
/// against `key`, on every core; the first bad record, if any.
fn first_bad(key: &VerifyingKey, items: &[Stored]) -> Option<ChainBreak> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).clamp(1, 8);
    let per = items.len().div_ceil(threads).max(1);
    let mut seed = [0u8; 32];
    if getrandom::getrandom(&mut seed).is_err() {
        // No randomness: every signature checked on its own (slower, as sound).
        seed = [0; 32];
    }
    let batch_ok = |c: &[Stored]| seed != [0; 32] && same_key_batch(key, c, &seed);
    let bad: Vec<ChainBreak> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| {
                let batch_ok = &batch_ok;
                s.spawn(move || {
                    let mut first: Option<ChainBreak> = None;
                    for c in part.chunks(SIG_BATCH) {
                        if let Some(r) = c.iter().find(|r| {
                            let mut h = Sha256::new();
                            h.update(r.prev);
                            h.update(r.body.as_bytes());
                            <[u8; 32]>::from(h.finalize()) != r.hash
                        }) {
                            first = Some(ChainBreak { seq: r.seq, reason: "its content does not match its hash (edited)".into() });
                        }
                        let upto = first.as_ref().map_or(u64::MAX, |b| b.seq);
                        if !batch_ok(c) {
                            // One by one, to name the first.
                            if let Some(r) = c
                                .iter()
                                .take_while(|r| r.seq < upto)
                                .find(|r| key.verify_strict(&r.hash, &Signature::from_bytes(&r.sig)).is_err())
                            {
                                first = Some(ChainBreak {
                                    seq: r.seq,
                                    reason: "its signature does not verify with this key (re-signed or forged)".into(),
                                });
                            }
                        }
                        if first.is_some() {
                            break;
                        }
                    }
                    first
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok().flatten()).collect()
    });
    bad.into_iter().min_by_key(|b| b.seq)
}

impl Journal {
    /// Signs what this journal records from now on with `key`, as `actor`
    /// unless a record names another; `head` is the head file to keep
    /// (`<state_dir>/audit.head`). Records the public key in the journal
    /// the first time.
    ///
    /// # Errors
    /// The journal cannot be written.
    pub fn enable_audit(&mut self, key: AuditKey, actor: impl Into<Actor>, head: Option<PathBuf>) -> Result<()> {
        self.claim_audit_key(&key.public_hex())?;
        self.audit = Some(Auditor { key, actor: actor.into(), head });
        Ok(())
    }

    /// Records `public_hex` as the key the chain is signed with unless one
    /// is recorded; returns the one recorded (first writer wins: replicas
    /// starting together on a new shared journal agree on one key).
    ///
    /// # Errors
    /// The journal cannot be written.
    pub fn claim_audit_key(&self, public_hex: &str) -> Result<Option<String>> {
        self.db.exec(
            "recording the audit key",
            "INSERT INTO meta (key, value) VALUES ('audit_pubkey', ?1) ON CONFLICT DO NOTHING",
            p![public_hex],
        )?;
        self.audit_pubkey()
    }

    /// Whether records are signed.
    pub fn audited(&self) -> bool {
        self.audit.is_some()
    }

    /// Who acts from now on (`loop`, `cli:USER`, `http:ID`).
    pub fn set_actor(&mut self, actor: impl Into<Actor>) {
        if let Some(a) = &mut self.audit {
            a.actor = actor.into();
        }
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`) and appends
    /// `records` to the chain in it: both commit, or neither. Without
    /// auditing, only `f` runs (in the transaction).
    pub(crate) fn write_with_audit<T>(
        &self,
        what: &'static str,
        ts: UnixMs,
        records: impl FnOnce() -> Vec<NewRecord>,
        f: impl FnOnce(&Db) -> Result<T>,
    ) -> Result<T> {
        let (out, head) = self.db.tx(what, |db| {
            let out = f(db)?;
            let head = match &self.audit {
                Some(a) => append(db, a, ts, &records())?,
                None => None,
            };
            Ok((out, head))
        })?;
        self.audit_committed(head);
        Ok(out)
    }

    /// After a commit that appended: the head file follows.
    pub(crate) fn audit_committed(&self, head: Option<Head>) {
        if let (Some(head), Some(path)) = (head, self.audit.as_ref().and_then(|a| a.head.as_deref())) {
            write_head(path, &head);
        }
    }

    /// Appends records on their own (a command, a config change), in one
    /// transaction: durable when this returns. Without auditing, nothing.
    ///
    /// # Errors
    /// The write failed.
    pub fn audit(&self, ts: UnixMs, records: &[NewRecord]) -> Result<()> {
        if self.audit.is_none() || records.is_empty() {
            return Ok(());
        }
        self.write_with_audit("appending to the audit chain", ts, || records.to_vec(), |_| Ok(()))
    }

    /// Records `payload` as the effective configuration when it differs
    /// from the last one recorded (kind `config`, with both digests).
    /// Returns whether it recorded.
    ///
    /// # Errors
    /// The journal cannot be read or written.
    pub fn audit_config(&self, ts: UnixMs, payload: &Value) -> Result<bool> {
        if self.audit.is_none() {
            return Ok(false);
        }
        let text = canonical_json(payload);
        let digest = to_hex(&Sha256::digest(text.as_bytes()));
        let last: Option<String> =
            self.db.opt("reading the last config digest", "SELECT value FROM meta WHERE key = 'config_sha256'", &[], |r| r.get(0))?;
        if last.as_deref() == Some(digest.as_str()) {
            return Ok(false);
        }
        let record = NewRecord::new("config", serde_json::json!({"sha256": digest, "previous_sha256": last, "config": payload}));
        self.write_with_audit(
            "recording a config change",
            ts,
            || vec![record],
            |db| {
                db.exec(
                    "recording the config digest",
                    "INSERT INTO meta (key, value) VALUES ('config_sha256', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    p![digest],
                )?;
                Ok(())
            },
        )?;
        Ok(true)
    }

    /// The public key the journal's chain was first signed with (hex).
    ///
    /// # Errors
    /// A read failed.
    pub fn audit_pubkey(&self) -> Result<Option<String>> {
        self.db.opt("reading the audit key", "SELECT value FROM meta WHERE key = 'audit_pubkey'", &[], |r| r.get(0))
    }

    /// Records, oldest first: from `since` (Unix ms), of `kind`, at most
    /// `limit`, starting after `after_seq`.
    ///
    /// # Errors
    /// A read failed.
    pub fn audit_records(&self, since: Option<UnixMs>, kind: Option<&str>, after_seq: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        self.db.all(
            "reading the audit chain",
            "SELECT seq, ts, actor, kind, payload, prev_hash, hash, signature FROM audit
             WHERE seq > ?1 AND ts >= ?2 AND (CAST(?3 AS TEXT) IS NULL OR kind = ?3) ORDER BY seq LIMIT ?4",
            p![after_seq, since.unwrap_or(i64::MIN), kind, limit],
            |r| {
                Ok(AuditRecord {
                    seq: u64::try_from(r.get::<i64>(0)?).unwrap_or(0),
                    ts: r.get(1)?,
                    actor: r.get(2)?,
                    kind: r.get(3)?,
                    payload: r.get(4)?,
                    prev_hash: r.get(5)?,
                    hash: r.get(6)?,
                    signature: r.get(7)?,
                })
            },
        )
    }

    /// Recomputes the chain from `from` (or its start) and checks every
    /// signature against `key`, and the head file's record when given.
    /// `Ok(Err(..))` names the first record that fails.
    ///
    /// # Errors
    /// The journal cannot be read.
    pub fn verify_audit(
        &self,
        key: &VerifyingKey,
        from: Option<u64>,
        head: Option<&Head>,
    ) -> Result<std::result::Result<Verified, ChainBreak>> {
        let checkpoint: Option<(i64, String, String)> =
            self.db.opt("reading the audit checkpoint", "SELECT seq, hash, signature FROM audit_checkpoint WHERE id = 1", &[], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        let checkpoint_seq = checkpoint.as_ref().map(|c| u64::try_from(c.0).unwrap_or(0));
        let brk = |seq: u64, reason: String| Ok(Err(ChainBreak { seq, reason }));
        // A checkpoint stands only for records that are gone, carries the
        // signature of the last of them, and is announced by a signed
        // `prune` record in the chain after it; a checkpoint row planted by
        // hand (to skip records) fails one of these.
        if let Some((cp, h, sig)) = &checkpoint {
            let cp_seq = u64::try_from(*cp).unwrap_or(0);
            let below: Option<i64> =
                self.db.one("reading the audit chain", "SELECT MIN(seq) FROM audit WHERE seq <= ?1", p![cp], |r| r.get(0))?;
            if let Some(kept) = below {
                return brk(
                    u64::try_from(kept).unwrap_or(0),
                    format!(
                        "a checkpoint says records up to seq {cp_seq} were pruned, yet this one is still there (a planted checkpoint?)"
                    ),
                );
            }
            let signed = from_hex::<32>(h)
                .zip(from_hex::<64>(sig))
                .is_some_and(|(hb, sb)| key.verify_strict(&hb, &Signature::from_bytes(&sb)).is_ok());
            if !signed {
                return brk(cp_seq, "the checkpoint left by pruning is not signed by this key".into());
            }
            let announced: i64 = self.db.one(
                "reading the audit chain",
                self.db.pick(
                    "SELECT COUNT(*) FROM audit WHERE kind = 'prune' AND seq > ?1 AND json_extract(payload, '$.through_seq') = ?1",
                    "SELECT COUNT(*) FROM audit WHERE kind = 'prune' AND seq > ?1 AND (payload::jsonb ->> 'through_seq') = (?1)::text",
                ),
                p![cp],
                |r| r.get(0),
            )?;
            if announced == 0 {
                return brk(cp_seq + 1, format!("no signed prune record announces the checkpoint at seq {cp_seq} (a planted checkpoint?)"));
            }
        }
        // Where to start, and the hash the first checked record links to.
        let start = from.unwrap_or(1).max(checkpoint_seq.map_or(1, |c| c + 1));
        let mut prev: [u8; 32] = [0; 32];
        if start > 1 {
            let stored: Option<String> =
                self.db.opt("reading the audit chain", "SELECT hash FROM audit WHERE seq = ?1", p![start - 1], |r| r.get(0))?;
            let anchor = match (stored, &checkpoint) {
                (Some(h), _) => h,
                // The checkpoint (checked above) stands for the pruned records.
                (None, Some((seq, h, _))) if u64::try_from(*seq).ok() == Some(start - 1) => h.clone(),
                (None, _) => return brk(start - 1, format!("seq {} is missing: --from needs the record before it", start - 1)),
            };
            prev = match from_hex::<32>(&anchor) {
                Some(h) => h,
                None => return brk(start - 1, "its hash is not 64 hex digits".into()),
            };
        }
        let mut expected = start;
        let mut window: Vec<Stored> = Vec::with_capacity(WINDOW.min(4096));
        let mut chain_break: Option<ChainBreak> = None;
        let mut count = 0u64;
        // Read in pages, so a chain of millions of records is checked in
        // bounded memory on either database.
        let mut page: Vec<crate::db::Row> = Vec::new();
        let mut next = 0usize;
        let mut more = true;
        let mut from_seq = start;
        loop {
            if next == page.len() {
                if !more {
                    break;
                }
                page = self.db.all(
                    "reading the audit chain",
                    "SELECT seq, ts, actor, kind, payload, prev_hash, hash, signature FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
                    p![from_seq, VERIFY_PAGE],
                    |r| Ok(r.clone()),
                )?;
                more = page.len() == VERIFY_PAGE;
                next = 0;
                if page.is_empty() {
                    break;
                }
            }
            let row = &page[next];
            next += 1;
            let seq = u64::try_from(row.get::<i64>(0)?).unwrap_or(0);
            from_seq = seq.saturating_add(1);
            let text = |i: usize| row.text(i);
            let fail = |reason: &str| Some(ChainBreak { seq: expected.min(seq), reason: reason.to_owned() });
            if seq != expected {
                chain_break = if seq > expected {
                    Some(ChainBreak {
                        seq: expected,
                        reason: if expected + 1 == seq {
                            format!("seq {expected} is missing (the chain goes from {} to {seq})", expected.saturating_sub(1))
                        } else {
                            format!(
                                "seqs {expected}..{} are missing (the chain goes from {} to {seq})",
                                seq - 1,
                                expected.saturating_sub(1)
                            )
                        },
                    })
                } else {
                    fail("out of order")
                };
                break;
            }
            let fields = (row.get::<i64>(1).ok(), text(2), text(3), text(4), text(5), text(6), text(7));
            let (Some(ts), Some(actor), Some(kind), Some(payload), Some(prev_hex), Some(hash_hex), Some(sig_hex)) = fields else {
                chain_break = fail("a field is missing or of the wrong type");
                break;
            };
            // The links, in order; each record's own hash and signature are
            // checked below, on every core.
            if from_hex::<32>(prev_hex) != Some(prev) {
                chain_break = fail(&format!(
                    "does not follow seq {}: its prev_hash is not that record's hash (inserted, reordered or the one before it changed)",
                    seq.saturating_sub(1)
                ));
                break;
            }
            let (Some(hash), Some(sig)) = (from_hex::<32>(hash_hex), from_hex::<64>(sig_hex)) else {
                chain_break = fail("its hash or signature is not hex of the right length");
                break;
            };
            window.push(Stored { seq, prev, hash, sig, body: canonical_record(seq, ts, actor, kind, payload) });
            if window.len() >= WINDOW {
                if let Some(b) = first_bad(key, &window) {
                    return Ok(Err(b));
                }
                window.clear();
            }
            prev = hash;
            count += 1;
            expected += 1;
        }
        if let Some(bad) = first_bad(key, &window) {
            if chain_break.as_ref().is_none_or(|b| bad.seq < b.seq) {
                return Ok(Err(bad));
            }
        }
        if let Some(b) = chain_break {
            return Ok(Err(b));
        }
        let last_seq = expected - 1;
        if let Some(h) = head {
            if h.seq > last_seq {
                return brk(
                    last_seq + 1,
                    if h.seq == last_seq + 1 {
                        format!(
                            "seq {} is missing: the journal ends at {last_seq} but seq {} was written (audit.head); the tail was truncated",
                            h.seq, h.seq
                        )
                    } else {
                        format!("seqs {}..{} are missing: the journal ends at {last_seq} but seq {} was written (audit.head); the tail was truncated", last_seq + 1, h.seq, h.seq)
                    },
                );
            }
            if h.seq >= start {
                let stored: Option<String> =
                    self.db.opt("reading the audit chain", "SELECT hash FROM audit WHERE seq = ?1", p![h.seq], |r| r.get(0))?;
                if stored.as_deref() != Some(h.hash.as_str()) {
                    return brk(h.seq, "differs from the record written there (audit.head has another hash)".into());
                }
            }
        }
        Ok(Ok(Verified { records: count, first_seq: start, last_seq, checkpoint: checkpoint_seq, head_hash: to_hex(&prev) }))
    }

    /// Removes audit records older than `before` (keeping at least the
    /// newest), leaving a signed checkpoint at the last one removed and a
    /// `prune` record saying so. Returns how many were removed.
    ///
    /// # Errors
    /// The journal cannot be written.
    pub fn prune_audit(&self, before: UnixMs, now: UnixMs) -> Result<u64> {
        if self.audit.is_none() {
            return Ok(0);
        }
        let upto: Option<i64> = self.db.one(
            "finding audit records to prune",
            "SELECT MAX(seq) FROM audit WHERE ts < ?1 AND seq < (SELECT MAX(seq) FROM audit)",
            p![before],
            |r| r.get(0),
        )?;
        let Some(upto) = upto else { return Ok(0) };
        let mut removed = 0u64;
        self.write_with_audit(
            "pruning the audit chain",
            now,
            || vec![NewRecord::new("prune", serde_json::json!({"through_seq": upto, "before": format_rfc3339(before)}))],
            |db| {
                db.exec(
                    "keeping the audit checkpoint",
                    "INSERT INTO audit_checkpoint (id, seq, hash, signature, ts) SELECT 1, seq, hash, signature, ?2 FROM audit WHERE seq = ?1
                     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, signature = excluded.signature, ts = excluded.ts",
                    p![upto, now],
                )?;
                removed = db.exec("pruning the audit chain", "DELETE FROM audit WHERE seq <= ?1", p![upto])?;
                Ok(())
            },
        )?;
        Ok(removed)
    }
}

/// Opens a key file's public half for verifying, or parses a given one.
///
/// # Errors
/// The key file cannot be read, or the given key is not a key.
pub fn verifying_key(state_dir: &Path, given: Option<&str>) -> std::result::Result<VerifyingKey, AuditError> {
    match given {
        Some(hex) => parse_public_key(hex),
        None => Ok(AuditKey::load(&state_dir.join(KEY_FILE))?.public()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &AuditKey, n: u64) -> Vec<Stored> {
        (1..=n)
            .map(|seq| {
                let body = canonical_record(seq, 1, "loop", "decision", &format!("{{\"i\":{seq}}}"));
                let mut h = Sha256::new();
                h.update([0u8; 32]);
                h.update(body.as_bytes());
                let hash: [u8; 32] = h.finalize().into();
                Stored { seq, prev: [0; 32], hash, sig: key.sign(&hash), body }
            })
            .collect()
    }

    #[test]
    fn the_same_key_batch_accepts_honest_signatures_and_nothing_else() {
        let key = AuditKey::from_seed([1; 32]);
        let seed = [9u8; 32];
        let items = signed(&key, 40);
        assert!(same_key_batch(&key.public(), &items, &seed));
        assert!(same_key_batch(&key.public(), &items[..1], &seed));
        // Any byte of any signature changed: refused.
        for i in [0usize, 17, 39] {
            for byte in [0usize, 13, 31, 32, 50, 63] {
                let mut bad = signed(&key, 40);
                bad[i].sig[byte] ^= 0x40;
                assert!(!same_key_batch(&key.public(), &bad, &seed), "sig {i} byte {byte}");
            }
        }
        // A changed hash (the signed message): refused.
        let mut bad = signed(&key, 40);
        bad[5].hash[0] ^= 1;
        assert!(!same_key_batch(&key.public(), &bad, &seed));
        // Signed by another key, or checked against another: refused.
        let other = AuditKey::from_seed([2; 32]);
        let mut mixed = signed(&key, 10);
        mixed.extend(signed(&other, 1));
        assert!(!same_key_batch(&key.public(), &mixed, &seed));
        assert!(!same_key_batch(&other.public(), &signed(&key, 3), &seed));
        // s not reduced (s + l): refused, as RFC 8032 requires.
        let mut bad = signed(&key, 3);
        // l = 2^252 + 27742317777372353535851937790883648493, little-endian.
        let mut l = [0u8; 32];
        l[..16].copy_from_slice(&[0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14]);
        l[31] = 0x10;
        let mut carry = 0u16;
        for (s, l) in bad[1].sig[32..].iter_mut().zip(l) {
            let v = u16::from(*s) + u16::from(l) + carry;
            *s = v as u8;
            carry = v >> 8;
        }
        assert!(!same_key_batch(&key.public(), &bad, &seed));
        // What ed25519-dalek accepts one by one, the batch accepts.
        for r in &items {
            assert!(key.public().verify_strict(&r.hash, &Signature::from_bytes(&r.sig)).is_ok());
        }
    }
}
