//! `steward backup create | verify | restore`: the glue between the
//! config, `steward_backup` and the terminal (docs/backup.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use steward_backup::{BackupError, ConfigRestore, CoordinationRestore, JournalReport, Layout, RestoreOptions};
use steward_store::audit::{AuditKey, KEY_FILE};

use crate::cli::BackupAction;
use crate::config::{Config, DEFAULT_FILE};
use crate::error::UsageError;
use crate::output::{envelope, outln, print_json};

/// `steward backup ...`.
///
/// `config_file` is `--config` as given; without it, `./steward.yaml` when
/// present (the file the config was loaded from).
///
/// # Errors
/// A bad archive or an `--out` that exists (exit 2); a daemon that runs,
/// a busy target or an I/O failure (exit 1).
pub fn run(cfg: &Config, config_file: Option<&Path>, action: BackupAction, json: bool) -> Result<ExitCode> {
    let config_file = config_file.map(Path::to_path_buf).or_else(|| Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()));
    let layout = Layout::new(cfg.state_dir(), cfg.coordination.dir.clone(), config_file).with_journal(cfg.journal());
    match action {
        BackupAction::Create { out } => create(&layout, out, json),
        BackupAction::Verify { file } => verify(&layout, &file, json),
        BackupAction::Restore { file } => restore(&layout, &file, json),
    }
}

/// A bad archive is the user's to fix (exit 2); the rest is the system's.
fn lib_error(e: BackupError) -> anyhow::Error {
    if e.is_bad_input() {
        UsageError(e.to_string()).into()
    } else {
        anyhow::Error::new(e)
    }
}

fn create(layout: &Layout, out: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    let out = out.unwrap_or_else(|| steward_backup::default_archive_path(&layout.state_dir, steward_runtime::now_ms()));
    let started = std::time::Instant::now();
    let created = steward_backup::create(layout, &out).map_err(lib_error)?;
    let secs = started.elapsed().as_secs_f64();
    let warnings: Vec<String> = created.skipped.iter().map(|s| format!("skipped {}: {}", s.path.display(), s.reason)).collect();
    let c = created.counts;
    if json {
        let data = json!({
            "archive": created.path,
            "created_at": created.manifest.created_at,
            "format_version": created.manifest.format_version,
            "counts": c,
            "skipped": created.skipped,
            "seconds": secs,
        });
        print_json(&envelope("backup", true, data, vec![], warnings));
    } else {
        outln!("backup written: {} ({}, {secs:.1} s)", created.path.display(), size(c.bytes));
        outln!("  {}", contents(&c));
        print_warnings(&warnings);
    }
    Ok(ExitCode::SUCCESS)
}

/// A check beside the archive's own: whether the archive was signed with
/// this state directory's audit key (a note, not a refusal: a restore is
/// often what follows losing that key).
fn same_key_check(state_dir: &Path) -> impl Fn(&Path) -> Result<String, String> + '_ {
    move |journal: &Path| {
        let live = state_dir.join(KEY_FILE);
        let archived = journal.with_file_name(KEY_FILE);
        if !live.exists() || !archived.exists() {
            return Ok(String::new());
        }
        match (AuditKey::load(&live), AuditKey::load(&archived)) {
            (Ok(l), Ok(a)) if l.public_hex() == a.public_hex() => Ok(format!("signed with the key of {}", state_dir.display())),
            (Ok(l), Ok(a)) => {
                Ok(format!("note: signed with key {}, not with the key of {} ({})", a.public_hex(), state_dir.display(), l.public_hex()))
            }
            (Err(e), _) => Ok(format!("note: {e}: not compared with the archive's key")),
            (_, Err(e)) => Err(e.to_string()),
        }
    }
}

fn verify(layout: &Layout, file: &Path, json: bool) -> Result<ExitCode> {
    let check = same_key_check(&layout.state_dir);
    let report = steward_backup::verify(file, &check).map_err(lib_error)?;
    let m = &report.manifest;
    if json {
        let data = json!({
            "archive": report.archive,
            "ok": true,
            "created_at": m.created_at,
            "steward_version": m.steward_version,
            "format_version": m.format_version,
            "source": m.source,
            "counts": report.counts,
            "journal": report.journal,
        });
        print_json(&envelope("backup", true, data, vec![], vec![]));
    } else {
        outln!("backup ok: {}", report.archive.display());
        outln!("  taken {} by steward {} (format {}) from {}", m.created_at, m.steward_version, m.format_version, m.source.state_dir);
        outln!("  {}; every SHA-256 matches the manifest", contents(&report.counts));
        print_journal(report.journal.as_ref());
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(layout: &Layout, file: &Path, json: bool) -> Result<ExitCode> {
    let daemon_pid = crate::daemon::running_daemon(&layout.state_dir).map(|(pid, _)| pid);
    // One executor per target: no `loop` or `execute` may write the
    // journal while it is replaced (the daemon is refused just below).
    let _lock = match daemon_pid {
        Some(_) => None,
        None => {
            let dir = if layout.coordination_dir.is_dir() { &layout.coordination_dir } else { &layout.state_dir };
            Some(steward_runtime::TargetLock::acquire(dir, &layout.coordination_dir.display().to_string())?)
        }
    };
    let check = same_key_check(&layout.state_dir);
    let report = steward_backup::restore(file, layout, &RestoreOptions { daemon_pid, check_journal: &check }).map_err(lib_error)?;
    // The restore itself is the restored chain's next record, signed with its key.
    if let Err(e) = audit_restore(layout, file, &report.manifest.created_at) {
        tracing::warn!(error = %format!("{e:#}"), "The restore is done, but could not be recorded in the audit trail.");
    }
    if json {
        let data = json!({
            "archive": report.archive,
            "created_at": report.manifest.created_at,
            "state_dir": report.state_dir,
            "state_files": report.state_files,
            "counts": report.counts,
            "journal": report.journal,
            "set_aside_in": report.set_aside_in,
            "set_aside": report.set_aside,
            "config": report.config,
            "coordination": report.coordination,
        });
        print_json(&envelope("backup", true, data, vec![], report.warnings.clone()));
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "restored {} (taken {}) into {}: {} state file(s)",
        report.archive.display(),
        report.manifest.created_at,
        report.state_dir.display(),
        report.state_files
    );
    print_journal(report.journal.as_ref());
    match &report.set_aside_in {
        Some(dir) => {
            outln!("  what it replaced is in {} ({} file(s): {})", dir.display(), report.set_aside.len(), listing(&report.set_aside))
        }
        None => outln!("  nothing was replaced (the state directory was empty)"),
    }
    match &report.config {
        ConfigRestore::NotInArchive => outln!("  config: none in the archive"),
        ConfigRestore::NotRestored { archived_as } => {
            outln!("  config: not restored (no config file here; give --config FILE, or take {archived_as} from the archive with tar)");
        }
        ConfigRestore::Unchanged { path } => outln!("  config: {} is already the archived one", path.display()),
        ConfigRestore::Written { path, previous: Some(p) } => {
            outln!("  config: {} written (the previous one is {})", path.display(), p.display())
        }
        ConfigRestore::Written { path, previous: None } => outln!("  config: {} written", path.display()),
    }
    match &report.coordination {
        CoordinationRestore::NotInArchive => outln!("  coordination directory: none of its files in the archive"),
        CoordinationRestore::Restored { dir, files, existed } => outln!(
            "  coordination directory: {files} file(s) restored into {}{}",
            dir.display(),
            if *existed > 0 { format!(" ({existed} already there, left as they were)") } else { String::new() }
        ),
        CoordinationRestore::LeftInPlace { dir, files_in_archive, entries_now } => outln!(
            "  coordination directory: {} holds {entries_now} entries, left as it is (a live spool is not rolled back); its {files_in_archive} archived file(s) are under coordination/ in the archive",
            dir.display()
        ),
    }
    print_warnings(&report.warnings);
    Ok(ExitCode::SUCCESS)
}

fn print_journal(journal: Option<&JournalReport>) {
    let Some(j) = journal else {
        outln!("  journal: none in the archive");
        return;
    };
    outln!(
        "  journal: integrity ok, {} cycle(s){}",
        j.cycles,
        j.owner.as_ref().map(|o| format!(", of the coordination directory {o}")).unwrap_or_default()
    );
    outln!("  {}", j.audit);
    if !j.check.is_empty() {
        outln!("  {}", j.check);
    }
}

fn contents(c: &steward_backup::Counts) -> String {
    format!(
        "{} file(s), {}: journal {}, {} other state file(s), config {}, {} coordination file(s)",
        c.journal + c.state + c.config + c.coordination,
        size(c.bytes),
        if c.journal > 0 { "yes" } else { "no" },
        c.state,
        if c.config > 0 { "yes" } else { "no" },
        c.coordination
    )
}

/// The first few names, then how many more.
fn listing(names: &[String]) -> String {
    let mut s = names.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 6 {
        s.push_str(&format!(", ... and {} more", names.len() - 6));
    }
    s
}

fn print_warnings(warnings: &[String]) {
    for w in warnings.iter().take(20) {
        outln!("warning: {w}");
    }
    if warnings.len() > 20 {
        outln!("... and {} more warnings (see --json)", warnings.len() - 20);
    }
}

/// Bytes for people: `812 B`, `14.2 KiB`, `3.1 MiB`, `1.4 GiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Appends `backup restore` (who, which archive, of when) to the restored
/// journal's audit chain, when the archive holds its key.
fn audit_restore(layout: &Layout, file: &Path, created_at: &str) -> Result<()> {
    let key_path = layout.state_dir.join(steward_store::audit::KEY_FILE);
    let at = layout.shared_journal.clone().unwrap_or_else(|| steward_store::JournalAt::File(layout.journal.clone()));
    if !key_path.exists() || (layout.shared_journal.is_none() && !layout.journal.exists()) {
        return Ok(());
    }
    let key = steward_store::audit::AuditKey::load(&key_path)?;
    let mut j = steward_store::Journal::open_at(&at)?;
    j.enable_audit(key, steward_store::audit::cli_actor(), Some(layout.state_dir.join(steward_store::audit::HEAD_FILE)))?;
    let payload = json!({"command": "backup restore", "archive": file, "archive_created_at": created_at});
    j.audit(steward_runtime::now_ms(), &[steward_store::audit::NewRecord::new("command", payload)])?;
    Ok(())
}
