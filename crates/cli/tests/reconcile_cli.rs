//! `steward reconcile`, `orchestrate` and `tasks` through the real binary:
//! an orchestrator SIGKILLed mid-run loses nothing and repeats nothing
//! verified, and bad settings are refused (exit 2, naming the dataset and
//! the key) without touching the lake.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let f = Self { tmp: tempfile::tempdir().unwrap() };
        fs::create_dir_all(f.dir().join("lake")).unwrap();
        fs::create_dir_all(f.dir().join("coordination")).unwrap();
        f
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_steward"));
        c.current_dir(self.dir()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("STEWARD_") || k.starts_with("DSLMODEL_") || k == "RUST_LOG" || k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.code().is_some_and(|c| c <= 1), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    fn write(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir().join(name);
        fs::write(&p, body).unwrap();
        p
    }

    /// Every file of the lake with its bytes and mtime.
    fn lake(&self) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.dir().join("lake")];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(p.display().to_string(), (fs::read(&p).unwrap(), e.metadata().unwrap().modified().unwrap()));
                }
            }
        }
        out
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A collector that takes a while, logs each run to a ledger, writes atomically.
const SLOW: &str = "#!/bin/sh\nset -e\necho \"$STEWARD_TASK_KEY\" >> \"$LEDGER\"\nsleep 0.4\nout=\"$STEWARD_LAKE_DIR/$STEWARD_TASK_KEY\"\nmkdir -p \"$(dirname \"$out\")\"\nprintf '%0100d' 0 > \"$out.part\"\nmv \"$out.part\" \"$out\"\n";

fn config(f: &Fixture, dataset: &str) {
    f.write(
        "steward.yaml",
        &format!(
            "inventory:\n  url: lake\ndatasets:\n{dataset}orchestrator:\n  concurrency: 2\n  retries: 1\n  retry_backoff: 100ms\n  retry_backoff_max: 200ms\n"
        ),
    );
}

#[test]
fn a_killed_orchestrator_loses_nothing_and_repeats_nothing_verified() {
    let f = Fixture::new();
    let collect = f.write("collect.sh", SLOW);
    let ledger = f.dir().join("ledger.txt");
    config(
        &f,
        &format!(
            "  - name: daily\n    key: \"daily/{{date}}.json\"\n    dates: {{from: 2024-01-01, to: 2024-01-16}}\n    min_bytes: 50\n    collector: [\"sh\", \"{}\"]\n    env: {{LEDGER: \"{}\"}}\n",
            collect.display(),
            ledger.display()
        ),
    );
    let r = f.json(&["reconcile", "--once", "--json"]);
    assert_eq!(r["gaps"], 16);
    assert_eq!(r["queued"], 16);

    // Start, let a few finish, SIGKILL it mid-run.
    let mut child = f.cmd(&["orchestrate"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let done_count = || f.json(&["tasks", "--state", "done", "--json"])["tasks"].as_array().unwrap().len();
    while done_count() < 4 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let running = f.json(&["tasks", "--state", "running", "--json"])["tasks"].as_array().unwrap().len();
    assert!(running > 0, "killed mid-run: some tasks were running");
    let done_before: Vec<String> = f.json(&["tasks", "--state", "done", "--json"])["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_owned())
        .collect();
    // Its collectors died with it: nothing writes to the ledger any more.
    std::thread::sleep(Duration::from_millis(800));
    let ledger_at_kill = fs::read_to_string(&ledger).unwrap().lines().count();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(fs::read_to_string(&ledger).unwrap().lines().count(), ledger_at_kill, "a collector outlived its orchestrator");

    // The next run requeues what was running and finishes everything.
    let out = f.run(&["orchestrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("requeued"), "{text}");
    let done = f.json(&["tasks", "--state", "done", "--json"])["tasks"].as_array().unwrap().len();
    assert_eq!(done, 16, "no task lost");
    let second_run: Vec<String> = fs::read_to_string(&ledger).unwrap().lines().skip(ledger_at_kill).map(str::to_owned).collect();
    for key in &done_before {
        assert!(!second_run.contains(key), "{key} ran again after it was verified done");
    }
    let r = f.json(&["reconcile", "--once", "--json"]);
    assert_eq!(r["gaps"], 0);
    assert_eq!(r["datasets"][0]["coverage"], 1.0);
    // Both runs by hand are in the audit trail, and it verifies.
    let runs = f.json(&["audit", "show", "--kind", "command", "--json"])["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["payload"]["command"] == "orchestrate")
        .count();
    assert_eq!(runs, 2);
    assert!(f.run(&["audit", "verify"]).status.success());
}

#[test]
fn bad_settings_are_refused_naming_the_dataset_and_key_and_the_lake_is_untouched() {
    let f = Fixture::new();
    let collect = f.write("collect.sh", SLOW);
    fs::create_dir_all(f.dir().join("lake/daily")).unwrap();
    fs::write(f.dir().join("lake/daily/2024-01-02.json"), "{}").unwrap();
    let not_executable = f.write("not-executable.py", "print('hi')\n");
    let before = f.lake();
    let ds = |key: &str, dates: &str, collector: &str| {
        format!("  - name: daily\n    key: \"{key}\"\n    dates: {dates}\n    collector: [{collector}]\n")
    };
    let good_dates = "{from: 2024-01-01, to: 2024-01-05}";
    let sh = format!("\"sh\", \"{}\"", collect.display());
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        (ds("daily/{day}.json", good_dates, &sh), "datasets[daily].key", vec!["unknown placeholder {day}"]),
        (ds("daily/{date}.json", "{from: 2024-01-05, to: 2024-01-01}", &sh), "datasets[daily].dates.to", vec!["precedes"]),
        (
            ds("daily/{date}.json", good_dates, &format!("\"{}\"", not_executable.display())),
            "datasets[daily].collector",
            vec!["not an executable"],
        ),
        (ds("daily/{date}.json", good_dates, "\"no-such-collector-anywhere\""), "datasets[daily].collector", vec!["not an executable"]),
    ];
    for (dataset, key, needles) in &cases {
        config(&f, dataset);
        for args in [&["reconcile", "--once"][..], &["orchestrate"][..], &["orchestrate", "--dry-run"][..]] {
            let out = f.run(args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?} {key}: {err}");
            assert!(err.contains(key), "{key} not named: {err}");
            for n in needles {
                assert!(err.contains(n), "{n:?} not in {err}");
            }
        }
    }
    // A store that is not there, or does not answer.
    for (url, needle) in [("lake-that-is-not-there", "lake-that-is-not-there"), ("s3://bucket/raw", "s3://bucket/raw")] {
        f.write("steward.yaml", &format!("inventory:\n  url: {url}\ndatasets:\n{}", ds("daily/{date}.json", good_dates, &sh)));
        let started = Instant::now();
        let out = f
            .cmd(&["reconcile", "--once"])
            .env("AWS_ENDPOINT", "http://127.0.0.1:9")
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "y")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains("inventory") && err.contains(needle), "{err}");
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    assert_eq!(f.lake(), before, "the lake was touched");
    assert!(!f.dir().join(".steward").join("coordination").join("inventory").exists(), "no gaps.json from a refused config");
}

#[test]
fn dry_run_lists_in_order_and_runs_nothing() {
    let f = Fixture::new();
    let collect = f.write("collect.sh", SLOW);
    let ledger = f.dir().join("ledger.txt");
    config(
        &f,
        &format!(
            "  - name: daily\n    key: \"daily/{{date}}.json\"\n    dates: {{from: 2024-01-01, to: 2024-01-04}}\n    collector: [\"sh\", \"{}\", \"{{date}}\"]\n    env: {{LEDGER: \"{}\"}}\n    priority:\n      - {{when: \"partition == '2024-01-03'\", is: critical}}\n",
            collect.display(),
            ledger.display()
        ),
    );
    f.json(&["reconcile", "--once", "--json"]);
    let plan = f.json(&["orchestrate", "--dry-run", "--json"]);
    let keys: Vec<&str> = plan["would_run"].as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["daily/2024-01-03.json", "daily/2024-01-01.json", "daily/2024-01-02.json", "daily/2024-01-04.json"]);
    assert_eq!(plan["would_run"][0]["argv"][2], "2024-01-03");
    assert!(!ledger.exists(), "a dry run ran a collector");
    let table = String::from_utf8(f.run(&["orchestrate", "--dry-run"]).stdout).unwrap();
    assert!(table.contains("4 task(s) would run"), "{table}");
    let tasks = f.json(&["tasks", "--json"]);
    assert_eq!(tasks["by_priority"]["critical"], 1);
    assert_eq!(tasks["by_priority"]["medium"], 3);
}

#[test]
fn a_value_that_leads_a_key_out_of_the_lake_is_refused_at_load_and_nothing_is_written() {
    let f = Fixture::new();
    let collect = f.write("collect.sh", SLOW);
    let ledger = f.dir().join("ledger.txt");
    let before = f.lake();
    let cases: [(&str, &[&str]); 4] = [
        ("[ok, \"../x\"]", &["datasets[teams].values[1]", "\"../x\" gives the key \"teams/../x.json\", which has a `..` segment"]),
        ("[\"../../escaped\"]", &["datasets[teams].values[0]", "\"../../escaped\""]),
        ("[\"a//b\"]", &["datasets[teams].values[0]", "\"a//b\"", "empty segment"]),
        ("[\"/abs\"]", &["datasets[teams].values[0]", "\"/abs\""]),
    ];
    for (values, needles) in cases {
        config(
            &f,
            &format!(
                "  - name: teams\n    key: \"teams/{{value}}.json\"\n    values: {values}\n    collector: [\"sh\", \"{}\"]\n    env: {{LEDGER: \"{}\"}}\n",
                collect.display(),
                ledger.display()
            ),
        );
        for args in [&["reconcile", "--once"][..], &["orchestrate"][..], &["orchestrate", "--dry-run"][..], &["tasks"][..]] {
            let out = f.run(args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?} {values}: {err}");
            for n in needles {
                assert!(err.contains(n), "{n:?} not in {err}");
            }
        }
    }
    assert_eq!(f.lake(), before, "the lake was touched");
    assert!(!ledger.exists(), "a collector ran");
    assert!(!f.dir().join("escaped.json").exists() && !f.dir().join("lake/x.json").exists());
    assert!(!f.dir().join(".steward").join("coordination").join("inventory").exists(), "no gaps.json from a refused config");
}
