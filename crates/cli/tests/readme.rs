//! Issue 10: the README's "Using it" lines all run as written. Each line
//! of that block runs in a fresh directory, in order, through `bash`, with
//! the steward under test first on PATH. Only placeholders change: the
//! port 8080 becomes a free one, and DECISION_ID the latest decision's id.
//! `cargo install` is the one line not run (it builds what the test
//! already built). Lines that run until stopped (loop, worker, serve) get
//! SIGTERM after a few seconds and must stop cleanly.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

fn readme_lines() -> Vec<String> {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let block = readme.split("## Using it").nth(1).unwrap().split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    block
        .lines()
        .map(|l| match l.find("  #") {
            Some(i) => l[..i].trim().to_owned(),
            None => l.trim().to_owned(),
        })
        .filter(|l| !l.is_empty())
        .collect()
}

fn runs_until_stopped(line: &str) -> bool {
    [" loop ", " worker ", "steward serve"].iter().any(|w| line.contains(w))
}

#[test]
fn the_readme_using_it_lines_run_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let bin = Path::new(env!("CARGO_BIN_EXE_steward")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // What the lines refer to: a handler of the user's, a series to forecast.
    fs::write(d.join("handle.py"), "import json, sys\nitem = json.load(sys.stdin)\nprint(json.dumps({'seen': item.get('id')}))\n").unwrap();
    let series: String = (0..72).map(|h| format!("2026-01-{:02}T{:02}:00:00Z,{}\n", 1 + h / 24, h % 24, 10 + (h % 24))).collect();
    fs::write(d.join("load.csv"), format!("timestamp,value\n{series}")).unwrap();
    // A lake with three of five days, one truncated, and its collector.
    fs::write(
        d.join("lake.yaml"),
        "inventory:\n  url: lake\ndatasets:\n  - name: daily\n    key: \"daily/{date}.json\"\n    dates: {from: 2026-01-01, to: 2026-01-05}\n    min_bytes: 10\n    collector: [\"python3\", \"collect.py\"]\n",
    )
    .unwrap();
    fs::write(
        d.join("collect.py"),
        "import os, pathlib\np = pathlib.Path(os.environ['STEWARD_LAKE_DIR'], os.environ['STEWARD_TASK_KEY'])\np.parent.mkdir(parents=True, exist_ok=True)\np.write_text('{\"rows\": [1, 2, 3]}')\n",
    )
    .unwrap();
    fs::create_dir_all(d.join("lake/daily")).unwrap();
    for (day, body) in [("01", "{\"rows\": [1, 2]}"), ("02", "{}"), ("04", "{\"rows\": [4, 5]}")] {
        fs::write(d.join(format!("lake/daily/2026-01-{day}.json")), body).unwrap();
    }
    let lines = readme_lines();
    assert!(lines.len() >= 15, "{lines:?}");
    let mut ran = 0;
    for line in &lines {
        if line.starts_with("cargo install") {
            continue;
        }
        if line.contains("execute --dry-run") {
            // Something to decide about, once the directory exists.
            for i in 0..12 {
                fs::write(d.join(format!("coordination/work_r{i}.json")), format!(r#"{{"id":"r{i}"}}"#)).unwrap();
            }
        }
        let mut line = line.replace("8080", &port.to_string());
        if line.contains("DECISION_ID") {
            let status = Command::new(bin.join("steward")).current_dir(d).args(["--json", "status"]).output().unwrap();
            let v: Value = serde_json::from_slice(&status.stdout).unwrap();
            let id = v["data"]["recent_decisions"][0]["id"].as_str().expect("a decision to roll back").to_owned();
            line = line.replace("DECISION_ID", &id);
        }
        let mut cmd = Command::new("bash");
        // Its own port for 8080, in the lines and for the daemon they start.
        cmd.current_dir(d).env("PATH", &path).env("STEWARD_SERVER_LISTEN", format!("127.0.0.1:{port}")).env_remove("RUST_LOG");
        if runs_until_stopped(&line) {
            cmd.args(["-c", &format!("exec timeout -s TERM 4 {line}")]);
        } else {
            cmd.args(["-c", &format!("set -o pipefail; {line}")]);
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let code = out.status.code();
        if runs_until_stopped(&line) {
            // timeout's 124: it ran until told to stop, then stopped.
            assert_eq!(code, Some(124), "{line}: {stdout}{stderr}");
        } else if line.starts_with("steward rollback") {
            // Nothing the fleet did can be undone without a fleet: a refusal
            // that says why, never a usage error.
            assert!(code == Some(0) || (code == Some(1) && stderr.contains("refusing to roll back")), "{line}: {stderr}");
        } else {
            assert_eq!(code, Some(0), "{line}: {stdout}{stderr}");
        }
        if line.starts_with("curl") {
            assert!(stdout.contains("steward_health_score"), "{stdout}");
        }
        if line.contains("reconcile --once") {
            assert!(stdout.contains("daily") && stdout.contains("40.0%"), "coverage 2/5: {stdout}");
        }
        if line.contains("orchestrate --dry-run") {
            assert!(!d.join("lake/daily/2026-01-03.json").exists(), "a dry run runs nothing");
        }
        if line.ends_with("orchestrate") {
            for day in ["01", "02", "03", "04", "05"] {
                let body = fs::read_to_string(d.join(format!("lake/daily/2026-01-{day}.json"))).unwrap();
                assert!(body.len() >= 10, "the collector filled 2026-01-{day}: {body}");
            }
        }
        if line.contains("worker --exec") {
            assert!(
                fs::read_dir(d.join("coordination")).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with("completed_")),
                "the worker did the work"
            );
        }
        ran += 1;
    }
    assert!(ran >= 15);
    // The daemon the lines started is gone.
    assert!(!d.join(".steward/coordination/steward.pid").exists());
    std::thread::sleep(Duration::from_millis(10));
}
