//! Backups for real: files on disk, a live journal, hostile archives.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use steward_store::{AuditKey, Journal, NewRecord};

use super::*;

/// A steward installation: state, coordination directory, config.
struct Fixture {
    tmp: tempfile::TempDir,
    layout: Layout,
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn no_check(_: &Path) -> Result<String, String> {
    Ok("checked".to_owned())
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let coordination = tmp.path().join("coordination");
        fs::create_dir_all(state.join("inventory")).unwrap();
        fs::create_dir_all(state.join("logs")).unwrap();
        fs::create_dir_all(&coordination).unwrap();
        let config = tmp.path().join("steward.yaml");
        fs::write(&config, "auto: {interval: 1s}\n").unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o640)).unwrap();
        let layout = Layout::new(&state, &coordination, Some(config));
        let f = Self { tmp, layout };
        {
            let journal = f.audited_journal();
            journal.claim(&fs::canonicalize(&coordination).unwrap().display().to_string()).unwrap();
            // Some pages of journal: 30 events of 4 KiB.
            for i in 0..30 {
                journal.record_event(1_000 + i, "test", &format!("subject-{i}"), &"x".repeat(4096), None).unwrap();
            }
            for i in 0..5 {
                journal.audit(2_000 + i, &[NewRecord::new("test", serde_json::json!({"i": i}))]).unwrap();
            }
        }
        fs::write(state.join("fleet.json"), r#"{"next_id":3,"workers":[]}"#).unwrap();
        fs::write(state.join("inventory/gaps.json"), "{\"gaps\":[]}").unwrap();
        fs::write(state.join("steward.pid"), "1 2 127.0.0.1:1\n").unwrap();
        fs::write(state.join(".steward.lock"), "").unwrap();
        fs::write(state.join("logs/steward.log"), "{}\n").unwrap();
        fs::write(coordination.join("work_1.json"), "{\"task\":\"one-of-a-kind payload 4242\"}").unwrap();
        fs::write(coordination.join("agent_a.json"), r#"{"id":"a","status":"active"}"#).unwrap();
        fs::write(coordination.join(".steward.lock"), "").unwrap();
        f
    }

    /// The journal, signing as steward's engine does (key and head in the
    /// state directory).
    fn audited_journal(&self) -> Journal {
        let mut journal = Journal::open(&self.layout.journal).unwrap();
        let (key, _) = AuditKey::load_or_create(&self.layout.state_dir).unwrap();
        journal.enable_audit(key, "test", Some(self.layout.state_dir.join(AUDIT_HEAD_NAME))).unwrap();
        journal
    }

    fn archive(&self) -> PathBuf {
        self.tmp.path().join("out").join("backup.tar")
    }

    fn create(&self) -> Created {
        create(&self.layout, &self.archive()).unwrap()
    }

    /// A layout in fresh directories of the same temp dir.
    fn fresh(&self, name: &str) -> Layout {
        let base = self.tmp.path().join(name);
        Layout::new(base.join("state"), base.join("coordination"), Some(base.join("steward.yaml")))
    }
}

/// Every file under `dir` with its SHA-256 (and mode), by relative path.
fn tree(dir: &Path) -> BTreeMap<String, (String, u32)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (String, u32)>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if meta.is_dir() {
                out.insert(format!("{rel}/"), (String::new(), meta.permissions().mode() & 0o777));
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, (sha(&fs::read(e.path()).unwrap_or_default()), meta.permissions().mode() & 0o777));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The byte offset of an entry's data in an archive.
fn data_offset(archive: &Path, entry: &str) -> u64 {
    let mut tar = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in tar.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().to_str() == Some(entry) {
            return e.raw_file_position();
        }
    }
    panic!("no entry {entry}");
}

fn flip_byte(archive: &Path, offset: u64) {
    let mut bytes = fs::read(archive).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= 0x20;
    fs::write(archive, bytes).unwrap();
}

fn bad_entry(e: &BackupError) -> Option<String> {
    match e {
        BackupError::BadArchive { entry, .. } => entry.clone(),
        other => panic!("not a bad archive: {other}"),
    }
}

#[test]
fn create_then_verify() {
    let f = Fixture::new();
    let created = f.create();
    let paths: Vec<&str> = created.manifest.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "state/journal.db",
            "state/audit.head",
            "state/audit.key",
            "state/fleet.json",
            "state/inventory/gaps.json",
            "config/steward.yaml",
            "coordination/agent_a.json",
            "coordination/work_1.json",
        ],
        "no pidfile, lock, log or WAL"
    );
    assert_eq!(created.counts, Counts { journal: 1, state: 4, config: 1, coordination: 2, bytes: created.counts.bytes });
    assert!(created.skipped.is_empty(), "{:?}", created.skipped);
    assert_eq!(created.manifest.format_version, FORMAT_VERSION);
    assert_eq!(created.manifest.steward_version, env!("CARGO_PKG_VERSION"));
    let key = created.manifest.entries.iter().find(|e| e.path == "state/audit.key").unwrap();
    assert_eq!((key.sha256.as_str(), key.mode), (sha(&fs::read(f.layout.state_dir.join("audit.key")).unwrap()).as_str(), 0o600));
    // It holds the audit key: the owner's only, and nothing left beside it.
    assert_eq!(fs::metadata(f.archive()).unwrap().permissions().mode() & 0o777, 0o600);
    let beside: Vec<_> = fs::read_dir(f.archive().parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(beside, ["backup.tar"]);

    let called = std::cell::Cell::new(false);
    let report = verify(&f.archive(), &|journal: &Path| {
        called.set(true);
        // The caller gets a real journal to check.
        let j = Journal::open_existing(journal).unwrap().unwrap();
        Ok(format!("{} events", j.recent_events(1000).unwrap().len()))
    })
    .unwrap();
    assert!(called.get());
    assert_eq!(report.counts, created.counts);
    let journal = report.journal.unwrap();
    assert_eq!(journal.check, "30 events");
    // Every event is signed too: 30 events and 5 records of their own.
    assert_eq!(journal.audit_records, 35);
    assert!(journal.audit.starts_with("audit chain ok: 35 records (seq 1..35)"), "{}", journal.audit);
    assert_eq!(journal.owner, Some(fs::canonicalize(&f.layout.coordination_dir).unwrap().display().to_string()));

    // The archived journal is one file, out of WAL mode (header bytes 18-19).
    let scratch = tempfile::tempdir().unwrap();
    tar::Archive::new(fs::File::open(f.archive()).unwrap()).unpack(scratch.path()).unwrap();
    let db = fs::read(scratch.path().join("state/journal.db")).unwrap();
    assert_eq!((db[18], db[19]), (1, 1));

    // The caller's check can refuse it.
    let e = verify(&f.archive(), &|_: &Path| Err("the audit chain breaks at 7".to_owned())).unwrap_err();
    assert!(matches!(e, BackupError::BadJournal { .. }) && e.is_bad_input(), "{e}");
    assert!(e.to_string().contains("the audit chain breaks at 7"), "{e}");
}

#[test]
fn a_backup_never_replaces_a_file() {
    let f = Fixture::new();
    fs::create_dir_all(f.archive().parent().unwrap()).unwrap();
    fs::write(f.archive(), "precious").unwrap();
    let e = create(&f.layout, &f.archive()).unwrap_err();
    assert!(matches!(e, BackupError::Exists { .. }) && e.is_bad_input(), "{e}");
    assert_eq!(fs::read_to_string(f.archive()).unwrap(), "precious");
}

/// The journal is copied while another connection keeps writing to it,
/// signing each record and moving the head file on: the copy is one
/// consistent moment, between the counts before and after, and its audit
/// chain verifies against the head archived with it.
#[test]
fn the_journal_is_copied_while_it_is_written() {
    let f = Fixture::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (journal, stop) = (f.audited_journal(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                journal.record_event(5_000 + n, "live", "s", "m", None).unwrap();
                journal.audit(5_000 + n, &[NewRecord::new("live", serde_json::json!({"n": n}))]).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let mut reports = Vec::new();
    for i in 0..2 {
        let out = f.tmp.path().join(format!("live-{i}.tar"));
        create(&f.layout, &out).unwrap();
        reports.push(
            verify(&out, &|journal: &Path| {
                let j = Journal::open_existing(journal).unwrap().unwrap();
                Ok(j.recent_events(1_000_000).unwrap().len().to_string())
            })
            .unwrap(),
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 0);
    for report in reports {
        let journal = report.journal.unwrap();
        let events: i64 = journal.check.parse().unwrap();
        assert!((30..=30 + written).contains(&events), "{events} of 30 + {written}");
        // Each live round signs its event, then a record of its own (two
        // transactions: the copy may fall between them).
        let live = 2 * u64::try_from(events - 30).unwrap();
        assert!([35 + live, 35 + live - 1].contains(&journal.audit_records), "{events} events: {}", journal.audit);
    }
}

/// A record edited in the journal, or a tail cut off behind the head
/// file's back: verify names the first bad record.
#[test]
fn a_broken_audit_chain_is_refused() {
    let f = Fixture::new();
    {
        let conn = rusqlite::Connection::open(&f.layout.journal).unwrap();
        conn.execute("UPDATE audit SET payload = '{\"i\":99}' WHERE seq = 7", []).unwrap();
    }
    f.create();
    let e = verify(&f.archive(), &no_check).unwrap_err();
    assert!(matches!(e, BackupError::BadJournal { .. }) && e.is_bad_input(), "{e}");
    assert!(e.to_string().contains("audit chain broken at seq 7"), "{e}");
    let before = state_of(&f);
    assert!(restore(&f.archive(), &f.layout, &RestoreOptions { daemon_pid: None, check_journal: &no_check }).is_err());
    assert_eq!(state_of(&f), before);

    let f = Fixture::new();
    {
        let conn = rusqlite::Connection::open(&f.layout.journal).unwrap();
        conn.execute("DELETE FROM audit WHERE seq > 33", []).unwrap();
    }
    f.create();
    let e = verify(&f.archive(), &no_check).unwrap_err();
    assert!(e.to_string().contains("audit chain broken at seq 34") && e.to_string().contains("truncated"), "{e}");
}

#[test]
fn one_flipped_byte_is_found_and_named() {
    let f = Fixture::new();
    f.create();
    let pristine = fs::read(f.archive()).unwrap();
    for entry in ["coordination/work_1.json", "state/journal.db", "state/audit.key", "config/steward.yaml"] {
        fs::write(f.archive(), &pristine).unwrap();
        flip_byte(&f.archive(), data_offset(&f.archive(), entry) + 5);
        let e = verify(&f.archive(), &no_check).unwrap_err();
        assert_eq!(bad_entry(&e).as_deref(), Some(entry), "{e}");
        assert!(e.to_string().contains("SHA-256") && e.to_string().contains(entry), "{e}");
        assert!(e.is_bad_input());
    }
    // In the manifest: it lists a file the archive does not hold.
    fs::write(f.archive(), &pristine).unwrap();
    let at = usize::try_from(data_offset(&f.archive(), MANIFEST_NAME)).unwrap();
    let journal_at = pristine[at..].windows(11).position(|w| w == b"journal.db\"").unwrap();
    flip_byte(&f.archive(), (at + journal_at) as u64);
    let e = verify(&f.archive(), &no_check).unwrap_err();
    assert_eq!(bad_entry(&e).as_deref(), Some("state/Journal.db"), "{e}");
    assert!(e.to_string().contains("missing from the archive"), "{e}");
    // In a header: its checksum fails.
    fs::write(f.archive(), &pristine).unwrap();
    flip_byte(&f.archive(), data_offset(&f.archive(), "state/fleet.json") - 512 + 3);
    let e = verify(&f.archive(), &no_check).unwrap_err();
    assert!(e.to_string().contains("damaged or cut short after state/audit.key"), "{e}");
}

#[test]
fn a_truncated_archive_is_refused() {
    let f = Fixture::new();
    f.create();
    let pristine = fs::read(f.archive()).unwrap();
    let len = pristine.len();
    for keep in [0, 100, 512, len / 2, len - 1536, len - 1024, len - 600, len - 512, len - 1] {
        fs::write(f.archive(), &pristine[..keep]).unwrap();
        let e = verify(&f.archive(), &no_check).unwrap_err();
        assert!(matches!(e, BackupError::BadArchive { .. }), "{keep}: {e}");
        let msg = e.to_string();
        assert!(msg.contains("cut short") || msg.contains("truncated") || msg.contains("not a tar"), "{keep}: {msg}");
    }
    // Something after the end is not ours either.
    let mut longer = pristine.clone();
    longer.extend_from_slice(b"appended");
    fs::write(f.archive(), &longer).unwrap();
    assert!(verify(&f.archive(), &no_check).unwrap_err().to_string().contains("after the end"));
    fs::write(f.archive(), &pristine).unwrap();
    verify(&f.archive(), &no_check).unwrap();
}

/// A tar with one entry whose name and type are written raw, past the
/// checks of the tar crate's own `set_path`.
fn hostile_tar(path: &Path, name: &[u8], entry_type: tar::EntryType, link: Option<&[u8]>) {
    let mut builder = tar::Builder::new(fs::File::create(path).unwrap());
    let data = b"owned";
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    if let Some(link) = link {
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(entry_type);
    header.set_mode(0o644);
    let size = if entry_type == tar::EntryType::Regular { data.len() as u64 } else { 0 };
    header.set_size(size);
    header.set_cksum();
    builder.append(&header, &data[..usize::try_from(size).unwrap()]).unwrap();
    builder.finish().unwrap();
}

#[test]
fn escapes_and_links_are_refused() {
    let f = Fixture::new();
    let archive = f.tmp.path().join("hostile.tar");
    // (name, type, link target, what the refusal says)
    type Case = (&'static [u8], tar::EntryType, Option<&'static [u8]>, &'static str);
    let cases: [Case; 6] = [
        (b"../escape", tar::EntryType::Regular, None, "`..`"),
        (b"state/../../escape", tar::EntryType::Regular, None, "`..`"),
        (b"/tmp/steward-escape", tar::EntryType::Regular, None, "absolute"),
        (b"state/fleet.json", tar::EntryType::Symlink, Some(b"/etc/passwd"), "symbolic link"),
        (b"state/fleet.json", tar::EntryType::Link, Some(b"state/audit.key"), "hard link"),
        (b"coordination/sub", tar::EntryType::Directory, None, "regular files only"),
    ];
    let before = tree(f.tmp.path());
    for (name, entry_type, link, why) in cases {
        hostile_tar(&archive, name, entry_type, link);
        let e = verify(&archive, &no_check).unwrap_err();
        assert_eq!(bad_entry(&e).as_deref(), Some(std::str::from_utf8(name).unwrap()), "{e}");
        assert!(e.to_string().contains(why), "{e}");
        let e = restore(&archive, &f.layout, &RestoreOptions { daemon_pid: None, check_journal: &no_check }).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
    }
    fs::remove_file(&archive).unwrap();
    assert_eq!(tree(f.tmp.path()), before, "nothing written anywhere");
    assert!(!f.tmp.path().parent().unwrap().join("escape").exists());
    assert!(!Path::new("/tmp/steward-escape").exists());
}

#[test]
fn restore_into_a_fresh_state_directory() {
    let f = Fixture::new();
    let created = f.create();
    let fresh = f.fresh("new");
    let report = restore(&f.archive(), &fresh, &RestoreOptions { daemon_pid: None, check_journal: &no_check }).unwrap();
    assert_eq!(report.set_aside_in, None, "nothing to set aside");
    assert_eq!(report.state_files, 5);
    assert_eq!(report.coordination, CoordinationRestore::Restored { dir: fresh.coordination_dir.clone(), files: 2, existed: 0 });
    assert_eq!(report.config, ConfigRestore::Written { path: fresh.config_file.clone().unwrap(), previous: None });
    // Every archived file is in place, byte for byte.
    let base = fresh.state_dir.parent().unwrap();
    for e in &created.manifest.entries {
        let path = match e.path.split_once('/').unwrap() {
            ("state", rest) => fresh.state_dir.join(rest),
            ("coordination", rest) => fresh.coordination_dir.join(rest),
            ("config", _) => base.join("steward.yaml"),
            other => panic!("{other:?}"),
        };
        assert_eq!(sha(&fs::read(&path).unwrap()), e.sha256, "{}", e.path);
    }
    for name in ["fleet.json", "inventory/gaps.json"] {
        assert_eq!(fs::read(fresh.state_dir.join(name)).unwrap(), fs::read(f.layout.state_dir.join(name)).unwrap());
    }
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh.state_dir.join("audit.key")), 0o600);
    assert_eq!(mode(fresh.config_file.as_ref().unwrap()), 0o640);
    let journal = Journal::open_existing(&fresh.journal).unwrap().unwrap();
    journal.integrity_check().unwrap();
    assert_eq!(journal.recent_events(1000).unwrap().len(), 30);
    // Only what was restored: no staging left, no pidfile, no lock.
    let mut names: Vec<String> = fs::read_dir(&fresh.state_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["audit.head", "audit.key", "fleet.json", "inventory", "journal.db"]);
    // The journal belongs to the first coordination directory: said.
    assert!(report.warnings.iter().any(|w| w.contains("belongs to the coordination directory")), "{:?}", report.warnings);
}

#[test]
fn restore_sets_aside_what_it_replaces() {
    let f = Fixture::new();
    f.create();
    // The state moves on after the backup: a new journal with a WAL beside it.
    let before = tree(&f.layout.state_dir);
    let live = Journal::open(&f.layout.journal).unwrap();
    live.record_event(9_999, "after", "the backup", "m", None).unwrap();
    drop(live);
    fs::write(f.layout.state_dir.join("journal.db-wal"), "stale wal").unwrap();
    fs::write(f.layout.state_dir.join("journal.db-shm"), "stale shm").unwrap();
    fs::write(f.layout.state_dir.join("fleet.json"), "{\"next_id\":9}").unwrap();
    fs::write(f.layout.config_file.as_ref().unwrap(), "auto: {interval: 5s}\n").unwrap();
    let old_state = tree(&f.layout.state_dir);

    let report = restore(&f.archive(), &f.layout, &RestoreOptions { daemon_pid: None, check_journal: &no_check }).unwrap();
    let aside = report.set_aside_in.clone().unwrap();
    assert!(aside.starts_with(f.layout.state_dir.join("pre-restore")), "{}", aside.display());
    // What was there is there, whole.
    for (name, (hash, _)) in &old_state {
        if name.starts_with("logs") || name == ".steward.lock" || name.ends_with('/') {
            continue;
        }
        assert_eq!(&sha(&fs::read(aside.join("state").join(name)).unwrap()), hash, "{name}");
    }
    assert_eq!(fs::read_to_string(aside.join("config/steward.yaml")).unwrap(), "auto: {interval: 5s}\n");
    assert!(matches!(&report.config, ConfigRestore::Written { previous: Some(p), .. } if *p == aside.join("config/steward.yaml")));
    assert_eq!(fs::read_to_string(f.layout.config_file.as_ref().unwrap()).unwrap(), "auto: {interval: 1s}\n");
    // Logs and the lock stay; no WAL of the old journal beside the new one.
    assert!(f.layout.state_dir.join("logs/steward.log").exists());
    assert!(f.layout.state_dir.join(".steward.lock").exists());
    assert!(!f.layout.state_dir.join("journal.db-wal").exists());
    assert!(!f.layout.state_dir.join("journal.db-shm").exists());
    assert!(!f.layout.state_dir.join("steward.pid").exists());
    for name in ["fleet.json", "audit.key", "audit.head", "inventory/gaps.json"] {
        assert_eq!(tree(&f.layout.state_dir).get(name), before.get(name), "{name}");
    }
    let journal = Journal::open_existing(&f.layout.journal).unwrap().unwrap();
    assert_eq!(journal.recent_events(1000).unwrap().len(), 30, "the event written after the backup is gone");
    // A live coordination directory is not rolled back.
    assert!(
        matches!(report.coordination, CoordinationRestore::LeftInPlace { files_in_archive: 2, entries_now: 2, .. }),
        "{:?}",
        report.coordination
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

/// Everything but the archives.
fn state_of(f: &Fixture) -> BTreeMap<String, (String, u32)> {
    tree(f.tmp.path()).into_iter().filter(|(k, _)| !k.starts_with("out/")).collect()
}

#[test]
fn a_bad_archive_leaves_the_state_as_it_was() {
    let f = Fixture::new();
    f.create();
    let pristine = fs::read(f.archive()).unwrap();
    // The state after the backup: different from the archive.
    fs::write(f.layout.state_dir.join("fleet.json"), "{\"next_id\":9}").unwrap();
    fs::write(f.layout.state_dir.join("journal.db-wal"), "wal").unwrap();
    fs::remove_file(f.layout.coordination_dir.join("work_1.json")).unwrap();
    fs::remove_file(f.layout.coordination_dir.join("agent_a.json")).unwrap();
    let before = state_of(&f);
    let fresh = f.fresh("never");
    let damaged = [
        ("flipped", {
            let mut b = pristine.clone();
            b[usize::try_from(data_offset(&f.archive(), "state/journal.db")).unwrap() + 4096] ^= 1;
            b
        }),
        ("truncated", pristine[..pristine.len() / 2].to_vec()),
        ("truncated at the end", pristine[..pristine.len() - 1024].to_vec()),
    ];
    for (what, bytes) in damaged {
        fs::write(f.archive(), &bytes).unwrap();
        for layout in [&f.layout, &fresh] {
            let e = restore(&f.archive(), layout, &RestoreOptions { daemon_pid: None, check_journal: &no_check }).unwrap_err();
            assert!(e.is_bad_input(), "{what}: {e}");
            assert_eq!(state_of(&f), before, "{what}: untouched");
        }
    }
    // A journal the caller's check refuses: the same.
    fs::write(f.archive(), &pristine).unwrap();
    let before = state_of(&f);
    let e =
        restore(&f.archive(), &f.layout, &RestoreOptions { daemon_pid: None, check_journal: &|_| Err("chain broken".into()) }).unwrap_err();
    assert!(matches!(e, BackupError::BadJournal { .. }), "{e}");
    assert_eq!(state_of(&f), before);
}

#[test]
fn restore_refuses_while_the_daemon_runs() {
    let f = Fixture::new();
    f.create();
    let before = tree(f.tmp.path());
    let e = restore(&f.archive(), &f.layout, &RestoreOptions { daemon_pid: Some(4242), check_journal: &no_check }).unwrap_err();
    assert!(matches!(e, BackupError::DaemonRunning { pid: 4242, .. }) && !e.is_bad_input(), "{e}");
    assert!(e.to_string().contains("steward stop"), "{e}");
    assert_eq!(tree(f.tmp.path()), before);
}

/// Regression for a hostile spool: a link, a FIFO, a directory, a socket
/// and a file too large are skipped, and the FIFO never hangs the backup.
#[test]
fn the_coordination_directory_is_read_as_hostile() {
    let f = Fixture::new();
    let d = &f.layout.coordination_dir;
    let secret = f.tmp.path().join("secret.txt");
    fs::write(&secret, "do not copy").unwrap();
    std::os::unix::fs::symlink(&secret, d.join("work_link.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("work_zero.json")).unwrap();
    let fifo = std::ffi::CString::new(d.join("work_fifo.json").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    fs::create_dir(d.join("work_dir.json")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(d.join("work_sock.json")).unwrap();
    fs::File::create(d.join("work_big.json")).unwrap().set_len(MAX_FILE_BYTES + 1).unwrap();
    fs::write(d.join(".steward-tmp-1-abc"), "half written").unwrap();

    let (tx, rx) = std::sync::mpsc::channel();
    let (layout, out) = (f.layout.clone(), f.archive());
    std::thread::spawn(move || tx.send(create(&layout, &out)).unwrap());
    let created = rx.recv_timeout(Duration::from_secs(60)).expect("the backup hung (on the FIFO?)").unwrap();
    let coordination: Vec<&str> = created.manifest.entries.iter().filter_map(|e| e.path.strip_prefix("coordination/")).collect();
    assert_eq!(coordination, ["agent_a.json", "work_1.json"]);
    let skipped: BTreeMap<String, String> =
        created.skipped.iter().map(|s| (s.path.file_name().unwrap().to_str().unwrap().to_owned(), s.reason.clone())).collect();
    assert_eq!(
        skipped.keys().map(String::as_str).collect::<Vec<_>>(),
        ["work_big.json", "work_dir.json", "work_fifo.json", "work_link.json", "work_sock.json", "work_zero.json"]
    );
    assert!(skipped["work_link.json"].contains("symbolic link"));
    assert!(skipped["work_fifo.json"].contains("FIFO"));
    assert!(skipped["work_big.json"].contains("more than"), "{}", skipped["work_big.json"]);
    verify(&f.archive(), &no_check).unwrap();
}

#[test]
fn a_fresh_installation_without_a_journal_backs_up_and_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("state"), tmp.path().join("coordination"), None);
    let out = tmp.path().join("b.tar");
    let created = create(&layout, &out).unwrap();
    assert_eq!(created.counts, Counts::default());
    assert_eq!(created.skipped.len(), 2, "no journal, no coordination directory: {:?}", created.skipped);
    let report = verify(&out, &no_check).unwrap();
    assert!(report.journal.is_none());
    let target = Layout::new(tmp.path().join("s2"), tmp.path().join("c2"), None);
    let restored = restore(&out, &target, &RestoreOptions { daemon_pid: None, check_journal: &no_check }).unwrap();
    assert_eq!(restored.state_files, 0);
    assert_eq!(restored.coordination, CoordinationRestore::NotInArchive);
}
