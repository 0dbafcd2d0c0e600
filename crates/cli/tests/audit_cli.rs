//! `steward audit` as its users run it: who did what is signed (the CLI
//! user, the HTTP client by its token's name), `verify` exits 0 on an
//! untouched chain and 1 naming the first bad seq after an edit by SQL,
//! and the key never leaves its 0600 file.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::{get_text, wait_for, Fixture};
use serde_json::Value;

fn post(port: u16, path: &str, token: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn who_did_what_is_signed_and_any_edit_is_named() {
    let f = Fixture::new();
    for i in 0..12 {
        f.write(&format!("work_r{i}.json"), &format!(r#"{{"id":"r{i}"}}"#));
    }
    // A webhook fleet that answers 200, its URL and header carrying secrets.
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_port = hook.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in hook.incoming().flatten() {
            let mut buf = [0u8; 65536];
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    std::fs::write(f.tmp.path().join("steward.yaml"), format!("server: {{tokens: {{ops-team: s3cret-for-ops}}}}\nauto: {{interval: 1h}}\nfleet: {{kind: webhook, url: \"http://127.0.0.1:{hook_port}/scale?key=hook-secret-5\", headers: {{Authorization: \"Bearer fleet-secret-9\"}}}}\n")).unwrap();
    for _ in 0..2 {
        let out = f.cmd(&["execute"]).env("USER", "alice").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // The daemon: a POST /execute with a named token.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut daemon = f
        .cmd(&["serve"])
        .env("STEWARD_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(20, || !get_text(port, "/health").is_empty()));
    assert_eq!(post(port, "/execute", "s3cret-for-ops"), 200);
    assert_eq!(post(port, "/execute", "wrong"), 401);
    let _ = std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    let _ = daemon.wait();

    let records = f.json(&["audit", "show", "--limit", "1000", "--json"])["records"].as_array().unwrap().clone();
    let by = |actor: &str, kind: &str| records.iter().filter(|r| r["actor"] == actor && r["kind"] == kind).count();
    assert!(by("cli:alice", "command") == 2 && by("cli:alice", "decision") >= 2 && by("cli:alice", "outcome") >= 2, "{records:#?}");
    assert_eq!(by("http:ops-team", "command"), 1, "the HTTP client by its token's name");
    assert!(by("loop", "decision") >= 1, "the daemon's cycles are the loop's");
    assert!(records.iter().any(|r| r["kind"] == "config"), "the config is recorded");
    for secret in ["s3cret-for-ops", "fleet-secret-9", "hook-secret-5"] {
        for r in &records {
            assert!(!r.to_string().contains(secret), "a secret is never written down: {r}");
        }
    }
    assert!(records.iter().any(|r| r["kind"] == "outcome" && r["payload"]["result"] == "executed"), "the webhook was called");
    let mode = std::fs::metadata(f.state().join("journal.db")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the journal is its owner's only");

    // Untouched: exit 0, every record counted.
    let out = f.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} records", records.len())));
    // The key: 0600, and its public half verifies from elsewhere.
    let key = f.state().join("audit.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let pubkey = String::from_utf8(f.run(&["audit", "pubkey"]).stdout).unwrap();
    assert!(f.run(&["audit", "verify", "--pubkey", pubkey.trim()]).status.success());
    let other = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"; // RFC 8032 test key 1
    let out = f.run(&["audit", "verify", "--pubkey", other]);
    assert_eq!(out.status.code(), Some(1), "another key: every signature fails");
    assert!(String::from_utf8_lossy(&out.stderr).contains("seq 1"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(f.run(&["audit", "verify", "--pubkey", "not-a-key"]).status.code(), Some(2));

    // The key gone: steward refuses to sign with a new one (the chain would break).
    std::fs::rename(&key, key.with_extension("away")).unwrap();
    let out = f.run(&["execute"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is missing"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!key.exists(), "no new key made");
    std::fs::rename(key.with_extension("away"), &key).unwrap();

    // One payload changed by SQL: exit 1, the seq named.
    let db = rusqlite::Connection::open(f.state().join("journal.db")).unwrap();
    let target: i64 = db.query_row("SELECT seq FROM audit WHERE kind = 'outcome' ORDER BY seq LIMIT 1", [], |r| r.get(0)).unwrap();
    db.execute("UPDATE audit SET payload = replace(payload, 'executed', 'failed') WHERE seq = ?1", [target]).unwrap();
    db.execute("UPDATE audit SET payload = replace(payload, 'skipped', 'executed') WHERE seq = ?1", [target]).unwrap();
    let out = f.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("seq {target}")) && err.contains("edited"), "{err}");
    let v: Value = serde_json::from_slice(&f.run(&["audit", "verify", "--json"]).stdout).unwrap();
    assert_eq!((v["ok"].as_bool(), v["first_bad_seq"].as_i64()), (Some(false), Some(target)));

    // The export: every record, one JSON line each, to a new file only.
    let out_file = f.tmp.path().join("audit.jsonl");
    assert!(f.run(&["audit", "export", "--out", out_file.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read_to_string(&out_file).unwrap().lines().count(), records.len());
    assert_eq!(f.run(&["audit", "export", "--out", out_file.to_str().unwrap()]).status.code(), Some(2), "never overwritten");
    assert_eq!(f.run(&["audit", "show", "--kind", "bogus"]).status.code(), Some(2), "an unknown kind is refused");
}

#[test]
fn a_missing_head_file_is_not_taken_for_an_intact_tail() {
    let f = Fixture::new();
    f.write("work_a.json", r#"{"id":"a"}"#);
    for _ in 0..3 {
        assert!(f.run(&["execute"]).status.success());
    }
    assert!(f.run(&["audit", "verify"]).status.success());
    // The tail cut and the head file removed with it: refused, unless told.
    let db = rusqlite::Connection::open(f.state().join("journal.db")).unwrap();
    db.execute("DELETE FROM audit WHERE seq >= 5", []).unwrap();
    std::fs::remove_file(f.state().join("audit.head")).unwrap();
    let out = f.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit.head is missing"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(f.run(&["audit", "verify", "--no-head"]).status.success());
    // Every record gone too: still refused (the journal was signed before).
    db.execute("DELETE FROM audit", []).unwrap();
    assert_eq!(f.run(&["audit", "verify"]).status.code(), Some(1));
}
