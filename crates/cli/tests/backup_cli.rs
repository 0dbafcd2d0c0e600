//! `steward backup` for real: an archive taken while the daemon cycles,
//! verified, refused while the daemon runs, restored into a fresh state
//! directory with every decision of the moment; damaged archives refused
//! with nothing touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{wait_for, Fixture};

/// `steward serve`, killed when the test ends however it ends.
struct Daemon(Child);

impl Daemon {
    /// SIGTERM, then waits for a graceful stop.
    fn stop(mut self) {
        let pid = i32::try_from(self.0.id()).unwrap();
        // SAFETY: signals our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every decision id in a journal.
fn decision_ids(journal: &Path) -> BTreeSet<String> {
    match steward_store::Journal::open_existing(journal).unwrap() {
        Some(j) => j.recent_decisions(1_000_000).unwrap().into_iter().map(|d| d.decision.id).collect(),
        None => BTreeSet::new(),
    }
}

/// Every file under `dir` with its bytes, by relative path; lock files
/// left out (taking the target lock writes its holder's pid into it).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.map(Result::unwrap) {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &e.path(), out);
            } else if !rel.ends_with(".lock") {
                out.insert(rel, fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The offset of an entry's data in a tar archive (512-byte headers: the
/// name at 0, the size in octal at 124).
fn data_offset(archive: &[u8], entry: &str) -> usize {
    let mut at = 0;
    while at + 512 <= archive.len() {
        let header = &archive[at..at + 512];
        let name = String::from_utf8_lossy(&header[..100]).trim_end_matches('\0').to_owned();
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&header[124..136]).trim_matches(|c: char| c == '\0' || c == ' '), 8).unwrap();
        if name == entry {
            return at + 512;
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    panic!("no entry {entry}");
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn backup_while_the_daemon_runs_then_restore_into_a_fresh_state_directory() {
    let f = Fixture::new();
    // More work than two agents can do: the policy decides every cycle.
    f.write("agent_1.json", r#"{"id":"agent_1","status":"active"}"#);
    f.write("agent_2.json", r#"{"id":"agent_2","status":"active"}"#);
    for i in 0..40 {
        f.write(&format!("work_{i:02}.json"), &format!(r#"{{"id":"{i}"}}"#));
    }
    fs::write(f.tmp.path().join("steward.yaml"), "auto: {interval: 100ms}\n").unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let daemon = Daemon(
        f.cmd(&["serve"])
            .env("STEWARD_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let journal = f.state().join("journal.db");
    assert!(wait_for(30, || decision_ids(&journal).len() >= 10), "the daemon journals decisions");

    // While it runs: create (named and default), verify.
    let before = decision_ids(&journal);
    let archive = f.tmp.path().join("backup.tar");
    let out = f.run(&["backup", "create", "--out", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup written"), "{}", String::from_utf8_lossy(&out.stdout));
    let created = f.json(&["--json", "backup", "create"]);
    let default_archive = PathBuf::from(created["data"]["archive"].as_str().unwrap());
    assert!(default_archive.starts_with(f.state().join("backups")), "{}", default_archive.display());
    assert!(default_archive.file_name().unwrap().to_str().unwrap().starts_with("steward-backup-"));
    let n = decision_ids(&journal).len();
    assert!(wait_for(20, || decision_ids(&journal).len() > n), "the daemon goes on writing");
    for file in [&archive, &default_archive] {
        let verified = f.json(&["--json", "backup", "verify", file.to_str().unwrap()]);
        let data = &verified["data"];
        assert_eq!(data["ok"], true);
        assert_eq!(data["counts"]["journal"], 1);
        assert_eq!(data["counts"]["coordination"], 42);
        assert_eq!(data["counts"]["config"], 1);
        assert!(data["journal"]["cycles"].as_u64().unwrap() >= 3, "{data}");
        assert!(data["journal"]["audit_records"].as_u64().unwrap() > 0, "the chain was checked: {data}");
    }
    let text = f.run(&["backup", "verify", archive.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("audit chain ok"), "{}", String::from_utf8_lossy(&text.stdout));

    // Restoring under a running daemon is refused; nothing is moved.
    let refused = f.run(&["backup", "restore", archive.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("daemon") && stderr(&refused).contains("runs"), "{}", stderr(&refused));
    assert!(!f.state().join("pre-restore").exists());

    daemon.stop();
    let after = decision_ids(&journal);
    assert!(after.len() > before.len());

    // Into a fresh state directory: every decision of the backup's moment.
    let fresh = f.tmp.path().join("restored");
    let restored = f.json(&["--json", "--state-dir", fresh.to_str().unwrap(), "backup", "restore", archive.to_str().unwrap()]);
    let data = &restored["data"];
    assert_eq!(data["set_aside_in"], serde_json::Value::Null, "nothing to set aside in a fresh directory");
    assert_eq!(data["config"]["action"], "unchanged");
    assert_eq!(data["coordination"]["action"], "left_in_place", "a live spool is not rolled back");
    let ids = decision_ids(&fresh.join("journal.db"));
    assert!(before.is_subset(&ids), "missing: {:?}", before.difference(&ids).collect::<Vec<_>>());
    assert!(ids.is_subset(&after), "nothing that was never written");
    assert_eq!(
        fs::metadata(fresh.join("audit.key")).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777).unwrap(),
        0o600
    );
    // The restored journal is steward's again: status reads it, its chain verifies.
    let status = f.json(&["--json", "--state-dir", fresh.to_str().unwrap(), "status"]);
    assert!(status["success"].as_bool().unwrap(), "{status}");
    let audit = f.run(&["--state-dir", fresh.to_str().unwrap(), "audit", "verify"]);
    assert!(audit.status.success(), "{}{}", String::from_utf8_lossy(&audit.stdout), stderr(&audit));
    // The restore is the restored chain's last record.
    let last = f.json(&["--state-dir", fresh.to_str().unwrap(), "audit", "show", "--limit", "1", "--json"]);
    assert_eq!(last["records"][0]["payload"]["command"], "backup restore", "{last}");

    // Damaged archives: refused (exit 2), naming what is wrong; nothing touched.
    let pristine = fs::read(&archive).unwrap();
    let mut flipped = pristine.clone();
    flipped[data_offset(&pristine, "state/journal.db") + 2048] ^= 0x01;
    let corrupt = f.tmp.path().join("corrupt.tar");
    fs::write(&corrupt, &flipped).unwrap();
    let truncated = f.tmp.path().join("truncated.tar");
    fs::write(&truncated, &pristine[..pristine.len() * 2 / 3]).unwrap();
    let out = f.run(&["backup", "verify", corrupt.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("state/journal.db") && stderr(&out).contains("SHA-256"), "{}", stderr(&out));
    let untouched = [f.state(), fresh.clone(), f.dir(), f.tmp.path().join("steward.yaml")];
    let snapshot = || {
        untouched
            .iter()
            .map(|p| if p.is_dir() { tree(p) } else { BTreeMap::from([(String::new(), fs::read(p).unwrap())]) })
            .collect::<Vec<_>>()
    };
    let before_restore = snapshot();
    let never = f.tmp.path().join("never").join("state");
    for (bad, why) in [(&corrupt, "SHA-256"), (&truncated, "truncated")] {
        for state_dir in [f.state(), fresh.clone(), never.clone()] {
            let out = f.run(&["--state-dir", state_dir.to_str().unwrap(), "backup", "restore", bad.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{}: {}", bad.display(), stderr(&out));
            assert!(stderr(&out).contains(why), "{}", stderr(&out));
            assert_eq!(snapshot(), before_restore, "{} into {}: untouched", bad.display(), state_dir.display());
        }
    }
    assert!(!f.tmp.path().join("never").exists(), "no directory left behind");
}
