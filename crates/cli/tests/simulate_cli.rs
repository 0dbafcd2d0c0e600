//! `steward simulate` through the real binary: the spec's JSON, the
//! comparison table, bad input refused with exit 2, and a plot that
//! renders in a real browser (headless Chromium).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self { tmp: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn file(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, body).unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_steward"));
        c.current_dir(self.tmp.path()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("STEWARD_") || k.starts_with("DSLMODEL_") || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c.output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// A day of 5-minute rows: quiet at night, busy by day.
    fn day(&self) -> PathBuf {
        let mut s = String::from("timestamp,value\n");
        for i in 0..288 {
            let hour = i / 12;
            let v = if (8..18).contains(&hour) { 120 + (i % 7) * 10 } else { 20 + i % 5 };
            s.push_str(&format!("2024-03-04 {:02}:{:02}:00,{v}\n", hour, (i % 12) * 5));
        }
        self.file("day.csv", &s)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn one_policy_reports_the_spec_keys() {
    let f = Fixture::new();
    let trace = f.day();
    let total: u64 =
        fs::read_to_string(&trace).unwrap().lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap()).sum();
    let v = f.json(&["simulate", "--trace", trace.to_str().unwrap(), "--max-agents", "40", "--format", "json"]);
    for key in ["policy", "items", "sla_attainment", "p95_wait_s", "agent_hours", "scale_actions", "reversals", "max_backlog"] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    assert_eq!(v["policy"], "adaptive", "the default policy");
    assert_eq!(v["items"].as_u64(), Some(total), "every arrival of the trace is an item");
    assert_eq!(v["completed"].as_u64(), Some(total));
    let sla = v["sla_attainment"].as_f64().unwrap();
    assert!((0.99..=1.0).contains(&sla), "{v}");
    assert!(v["agent_hours"].as_f64().unwrap() > 0.0);
}

#[test]
fn compare_runs_every_policy_side_by_side() {
    let f = Fixture::new();
    let trace = f.day();
    let out = f.run(&["simulate", "--trace", trace.to_str().unwrap(), "--max-agents", "40", "--startup", "60", "--compare"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("POLICY") && text.contains("AGENT-HOURS") && text.contains("REVERSALS"), "{text}");
    for p in ["adaptive", "classic", "hpa", "keda", "oracle"] {
        assert!(text.lines().any(|l| l.starts_with(p)), "{p} missing:\n{text}");
    }
    // As JSON: one report per policy, in the order asked.
    let v = f.json(&["simulate", "--trace", trace.to_str().unwrap(), "--max-agents", "40", "--policy", "hpa,oracle,adaptive", "--json"]);
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(names, ["hpa", "oracle", "adaptive"]);
    let items: Vec<u64> = v.as_array().unwrap().iter().map(|r| r["items"].as_u64().unwrap()).collect();
    assert!(items.windows(2).all(|w| w[0] == w[1]), "every policy sees the same items: {items:?}");
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let f = Fixture::new();
    let trace = f.day();
    let t = trace.to_str().unwrap();
    let bad = f.file("bad.csv", "timestamp,value\n2024-01-01 00:00:00,5\n2024-01-01 00:05:00,many\n");
    let dir = f.path("a-directory");
    fs::create_dir(&dir).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["simulate", "--trace", "missing.csv"], "missing.csv"),
        (vec!["simulate", "--trace", dir.to_str().unwrap()], "not a regular file"),
        (vec!["simulate", "--trace", bad.to_str().unwrap()], "bad.csv"),
        (vec!["simulate", "--trace", t, "--service-time", "fast"], "--service-time"),
        (vec!["simulate", "--trace", t, "--min-agents", "5", "--max-agents", "2"], "--min-agents"),
        (vec!["simulate", "--trace", t, "--policy", "magic"], "not a policy"),
        (vec!["simulate", "--trace", t, "--sla=-3"], "--sla"),
        (vec!["simulate", "--trace", t, "--scale", "0"], "--scale"),
        (vec!["simulate", "--trace", t, "--peak-agents", "5", "--scale", "2"], "cannot be used with"),
        (vec!["simulate", "--trace", t, "--scale", "1e12"], "at most"),
        (vec!["--policy", "oracle", "analyze"], "references for `steward simulate`"),
    ];
    for (args, needle) in cases {
        let out = f.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {needle:?} not in {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}

/// Headless Chromium from Debian's `chromium` package (scripts/test installs it).
fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
        })
        .expect("chromium is not installed: scripts/test installs Debian's chromium package")
}

fn screenshot(svg: &Path, png: &Path, profile: &Path) {
    let mut child = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1100"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", svg.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_plot_renders_in_a_browser() {
    let f = Fixture::new();
    let trace = f.day();
    let svg = f.path("run.svg");
    let out = f.run(&[
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--max-agents",
        "40",
        "--policy",
        "adaptive,hpa,oracle",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("Backlog") && text.contains("oracle"), "not the plot");

    let png = f.path("run.png");
    screenshot(&svg, &png, &f.path("chromium-profile"));
    let decoder = png::Decoder::new(fs::File::open(&png).expect("chromium wrote no screenshot"));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 1100));
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let inked = pixels.iter().filter(|p| p[..3].iter().any(|&c| c < 200)).count();
    assert!(inked * 100 > pixels.len(), "the screenshot is blank: {inked} dark pixels of {}", pixels.len());
    // The policies' colours made it to the screen (adaptive blue, hpa red, oracle green).
    for (name, rgb) in [("adaptive", [31u8, 119, 180]), ("hpa", [214, 39, 40]), ("oracle", [44, 160, 44])] {
        let near = pixels.iter().filter(|p| p[..3].iter().zip(rgb).all(|(a, b)| a.abs_diff(b) < 40)).count();
        assert!(near > 200, "no {name} line on screen ({near} pixels)");
    }
}
