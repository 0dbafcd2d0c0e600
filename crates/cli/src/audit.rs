//! `steward audit verify | show | pubkey | export`: the glue between the
//! config, the journal's audit chain and the terminal.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use steward_core::time::{format_rfc3339, parse_rfc3339, UnixMs};
use steward_store::audit::{self, AuditKey};
use steward_store::{Journal, JournalAt};

use crate::cli::AuditAction;
use crate::config::Config;
use crate::error::UsageError;
use crate::output::{outln, print_json, table};

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

fn now() -> UnixMs {
    steward_runtime::now_ms()
}

/// `--since`: an RFC 3339 time, or a duration ago (`90m`, `2d`).
fn parse_since(text: &str) -> Result<UnixMs> {
    if let Some(t) = parse_rfc3339(text.trim()) {
        return Ok(t);
    }
    match steward_core::config::duration::parse(text) {
        Ok(d) => Ok(now().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        Err(_) => Err(usage(format!("--since {text:?}: an RFC 3339 time (2026-11-25T08:00:00Z) or a duration ago (90m, 2d)"))),
    }
}

fn open_journal(at: &JournalAt) -> Result<Option<Journal>> {
    Journal::open_existing_at(at).with_context(|| format!("opening the journal {at}"))
}

/// `steward audit ...`.
///
/// # Errors
/// Bad flags (exit 2), or the journal or key cannot be read.
pub fn run(cfg: &Config, action: AuditAction, json: bool) -> Result<ExitCode> {
    let state_dir = cfg.state_dir();
    let at = cfg.journal();
    match action {
        AuditAction::Pubkey => {
            let path = state_dir.join(audit::KEY_FILE);
            if !path.exists() {
                return Err(usage(format!(
                    "no audit key at {}: it is made by the first cycle that journals (steward execute, loop or serve)",
                    path.display()
                )));
            }
            let key = AuditKey::load(&path)?;
            if json {
                print_json(&json!({"public_key": key.public_hex(), "algorithm": "ed25519", "key_file": path}));
            } else {
                outln!("{}", key.public_hex());
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Verify { from, pubkey, no_head } => verify(&state_dir, &at, from, pubkey.as_deref(), no_head, json),
        AuditAction::Show { since, kind, limit } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            const KINDS: [&str; 9] = ["decision", "action", "outcome", "rollback", "config", "command", "incident", "event", "prune"];
            if let Some(k) = kind.as_deref().filter(|k| !KINDS.contains(k)) {
                return Err(usage(format!("--kind {k:?}: one of {}", KINDS.join(", "))));
            }
            let Some(j) = open_journal(&at)? else {
                return nothing_yet(&state_dir, json);
            };
            let mut records = j.audit_records(since, kind.as_deref(), 0, usize::MAX)?;
            let skip = records.len().saturating_sub(limit);
            records.drain(..skip);
            if json {
                print_json(&json!({"records": records.iter().map(audit::AuditRecord::to_export).collect::<Vec<_>>()}));
                return Ok(ExitCode::SUCCESS);
            }
            if records.is_empty() {
                outln!("no audit records{}", if since.is_some() || kind.is_some() { " match" } else { " yet" });
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    let mut what: String = r.payload.chars().take(100).collect();
                    if r.payload.chars().count() > 100 {
                        what.push('…');
                    }
                    vec![r.seq.to_string(), format_rfc3339(r.ts), r.actor.clone(), r.kind.clone(), what]
                })
                .collect();
            outln!("{}", table(&["SEQ", "TIME", "ACTOR", "KIND", "PAYLOAD"], &rows).trim_end());
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Export { out, since } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let Some(j) = open_journal(&at)? else {
                return nothing_yet(&state_dir, json);
            };
            let mut sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(steward_protocol::create_new_mode(p, 0o600).map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => usage(format!("{} exists: an export never overwrites a file", p.display())),
                    _ => anyhow::Error::new(e).context(format!("creating {}", p.display())),
                })?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let (mut after, mut n) = (0u64, 0u64);
            // A reader that stops early (`| head`) ends the export quietly.
            let closed = |e: &std::io::Error| e.kind() == std::io::ErrorKind::BrokenPipe && out.is_none();
            loop {
                let page = j.audit_records(since, None, after, 10_000)?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for r in &page {
                    match writeln!(sink, "{}", r.to_export()) {
                        Ok(()) => n += 1,
                        Err(e) if closed(&e) => return Ok(ExitCode::SUCCESS),
                        Err(e) => return Err(anyhow::Error::new(e).context("writing the export")),
                    }
                }
            }
            match sink.flush() {
                Err(e) if closed(&e) => return Ok(ExitCode::SUCCESS),
                r => r.context("writing the export")?,
            }
            drop(sink);
            if let Some(p) = out {
                std::fs::File::open(&p).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", p.display()))?;
                tracing::info!(records = n, file = %p.display(), "Audit trail exported.");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn nothing_yet(state_dir: &Path, json: bool) -> Result<ExitCode> {
    if json {
        print_json(&json!({"records": []}));
    } else {
        outln!("no journal yet in {}: nothing audited", state_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(state_dir: &Path, at: &JournalAt, from: Option<u64>, pubkey: Option<&str>, no_head: bool, json: bool) -> Result<ExitCode> {
    let key = match audit::verifying_key(state_dir, pubkey) {
        Ok(k) => k,
        Err(e @ audit::AuditError::BadPublicKey(_)) => return Err(usage(e.to_string())),
        Err(e) => return Err(anyhow::Error::new(e).context("the key to verify with (or give --pubkey)")),
    };
    let Some(j) = open_journal(at)? else {
        return Err(usage(format!("no journal at {at}: nothing to verify")));
    };
    let head_path = state_dir.join(audit::HEAD_FILE);
    let head = audit::read_head(&head_path).map_err(|e| anyhow::anyhow!(e))?;
    let recorded = j.audit_pubkey()?;
    let given = audit::to_hex(key.as_bytes());
    let started = std::time::Instant::now();
    let mut result = j.verify_audit(&key, from, head.as_ref())?;
    // The head file is what tells a cut tail; without it only an intact
    // chain of unknown length can be vouched for.
    if let Ok(v) = &result {
        let signed_before = recorded.is_some();
        if head.is_none() && !no_head && (v.records > 0 || signed_before) {
            result = Err(steward_store::ChainBreak {
                seq: v.last_seq + 1,
                reason: format!(
                    "{} is missing: records cut from the end could not be detected (the chain holds {} record(s)); \
                     --no-head accepts that",
                    head_path.display(),
                    v.records
                ),
            });
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let key_note = match &recorded {
        Some(r) if *r != given => Some(format!("the journal was first signed with key {r}, not {given}")),
        _ => None,
    };
    match result {
        Ok(v) => {
            if json {
                print_json(&json!({"ok": true, "verified": v, "public_key": given, "seconds": secs, "note": key_note}));
            } else {
                if v.records == 0 {
                    outln!("audit chain ok: no records{}", if from.is_some() { " from there" } else { " yet" });
                } else {
                    outln!(
                        "audit chain ok: {} records (seq {}..{}){}, every signature valid for key {given}; head {}",
                        v.records,
                        v.first_seq,
                        v.last_seq,
                        v.checkpoint.map(|c| format!(", from the signed checkpoint at seq {c}")).unwrap_or_default(),
                        v.head_hash
                    );
                }
                if let Some(n) = key_note {
                    outln!("note: {n}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            if json {
                print_json(&json!({"ok": false, "first_bad_seq": b.seq, "reason": b.reason, "public_key": given, "note": key_note}));
            } else {
                eprintln!("audit chain broken at seq {}: {}", b.seq, b.reason);
                if let Some(n) = key_note {
                    eprintln!("note: {n}");
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Signs what `journal` records from now on as the CLI's user, and records
/// `command` (with `detail`) before it runs: a manual command in the audit
/// trail. Nothing when `journal.audit` is off.
///
/// # Errors
/// The key cannot be read (or is not the journal's), or the journal written.
pub fn record_command(cfg: &Config, journal: &mut Journal, command: &str, detail: serde_json::Value) -> Result<()> {
    if !cfg.journal.audit {
        return Ok(());
    }
    let state_dir = cfg.state_dir();
    let recorded = journal.audit_pubkey()?;
    let (key, _) = AuditKey::load_or_create_for(&state_dir, recorded.as_deref())?;
    journal.enable_audit(key, audit::cli_actor(), Some(state_dir.join(audit::HEAD_FILE)))?;
    let mut payload = json!({"command": command});
    if let (Some(p), serde_json::Value::Object(d)) = (payload.as_object_mut(), detail) {
        p.extend(d);
    }
    journal.audit(now(), &[audit::NewRecord::new("command", payload)])?;
    Ok(())
}
