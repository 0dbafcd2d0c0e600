//! `state.journal: postgres://…` through the binary, against a real
//! PostgreSQL: every command that reads or writes the journal follows it
//! (no journal.db appears), `audit verify` checks the chain in PostgreSQL,
//! and `backup create|verify|restore` carry it through an archive.

use std::fs;

mod common;
use common::Fixture;

#[path = "../../queue/tests/support/servers.rs"]
mod servers;
use servers::shared_postgres;

fn journal_url(schema: &str) -> String {
    format!("postgres://steward@127.0.0.1:{}/postgres?schema={schema}", shared_postgres().port)
}

fn cycles(schema: &str) -> i64 {
    shared_postgres().int(&format!("SELECT count(*) FROM {schema}.cycles"))
}

#[test]
fn every_command_follows_a_postgres_journal_and_a_backup_carries_it() {
    let f = Fixture::new();
    let schema = format!("cli_{}", std::process::id());
    fs::write(f.tmp.path().join("steward.yaml"), format!("state: {{journal: \"{}\"}}\n", journal_url(&schema))).unwrap();
    for i in 0..30 {
        f.write(&format!("work_{i}.json"), &format!(r#"{{"id":"{i}"}}"#));
    }
    let first = f.json(&["execute", "--format", "json"]);
    assert!(first["decisions_generated"].as_u64().unwrap_or(0) >= 1, "{first}");
    f.json(&["execute", "--format", "json"]);
    assert_eq!(cycles(&schema), 2);
    assert!(!f.state().join("journal.db").exists(), "a SQLite journal appeared beside the PostgreSQL one");
    // Reading commands read it.
    let status = f.json(&["status", "--json"]);
    let shown = status["data"]["recent_decisions"].as_array().map_or(0, Vec::len);
    assert!(shown >= 1, "{status}");
    let out = f.run(&["audit", "verify"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("audit chain ok"), "{said}{}", String::from_utf8_lossy(&out.stderr));
    // A backup holds it; verify checks it; a restore puts it back.
    let archive = f.tmp.path().join("b.tar");
    let out = f.run(&["backup", "create", "--out", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = f.run(&["backup", "verify", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    f.json(&["execute", "--format", "json"]);
    assert_eq!(cycles(&schema), 3);
    let out = f.run(&["backup", "restore", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cycles(&schema), 2, "the restore put the archived journal back in PostgreSQL");
    assert!(!f.state().join("journal.db").exists(), "the restore wrote the journal to a file");
    let out = f.run(&["audit", "verify"]);
    assert!(out.status.success(), "after the restore: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The restore is itself in the chain, and steward goes on from there.
    let shown = f.json(&["audit", "show", "--kind", "command", "--json"]);
    assert!(shown.to_string().contains("backup restore"), "{shown}");
    f.json(&["execute", "--format", "json"]);
    assert_eq!(cycles(&schema), 3);
}

#[test]
fn a_journal_url_that_cannot_work_is_refused_without_showing_its_password() {
    let f = Fixture::new();
    let port = shared_postgres().port;
    for (journal, words) in [
        (format!("postgres://steward:s3cretPW@127.0.0.1:{port}/postgres?schema=bad-name"), "schema"),
        (format!("postgres://steward:s3cretPW@127.0.0.1:{port}/postgres?sslmode=require"), "TLS"),
        (format!("postgres://steward:s3cretPW@127.0.0.1:{port}/postgres?nonsense=1"), "nonsense"),
    ] {
        fs::write(f.tmp.path().join("steward.yaml"), format!("state: {{journal: \"{journal}\"}}\n")).unwrap();
        let out = f.run(&["status"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{journal}: {err}");
        assert!(err.contains("state.journal") && err.contains(words), "{journal}: {err}");
        assert!(!err.contains("s3cretPW"), "{err}");
    }
    // A server that does not answer: a clear failure, exit 1, no password.
    let closed = servers::free_port();
    fs::write(
        f.tmp.path().join("steward.yaml"),
        format!("state: {{journal: \"postgres://steward:s3cretPW@127.0.0.1:{closed}/postgres\"}}\n"),
    )
    .unwrap();
    let out = f.run(&["execute"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("journal") && !err.contains("s3cretPW"), "{err}");
    // `steward config` shows the journal without its password.
    fs::write(
        f.tmp.path().join("steward.yaml"),
        format!("state: {{journal: \"postgres://steward:s3cretPW@127.0.0.1:{port}/postgres\"}}\n"),
    )
    .unwrap();
    let out = f.run(&["config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("state.journal") && !text.contains("s3cretPW"), "{text}");
}
