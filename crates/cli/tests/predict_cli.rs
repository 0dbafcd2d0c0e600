//! The prediction commands through the real binary: bad input is exit 2
//! with the line named; good input gives the spec's shapes.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let f = Self { tmp: tempfile::tempdir().unwrap() };
        fs::create_dir(f.tmp.path().join("coordination")).unwrap();
        f
    }

    fn file(&self, name: &str, body: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::write(&p, body).unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_steward"));
        c.current_dir(self.tmp.path()).arg("--coordination").arg(self.tmp.path().join("coordination")).args(args);
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
}

fn hourly(n: usize, f: impl Fn(usize) -> f64) -> String {
    let mut s = String::from("timestamp,value\n");
    for i in 0..n {
        s.push_str(&format!("2024-01-{:02} {:02}:00:00,{}\n", 1 + i / 24, i % 24, f(i)));
    }
    s
}

/// Runs `cmd` on a CSV body and checks exit 2 and that stderr says `expect`.
fn check_bad(cmd: &[&str], body: &str, expect: &str) {
    let f = Fixture::new();
    let input = f.file("in.csv", body);
    let out_csv = f.tmp.path().join("out.csv");
    let mut args: Vec<&str> = cmd.to_vec();
    let (i, o) = (input.to_str().unwrap().to_owned(), out_csv.to_str().unwrap().to_owned());
    args.extend(["--input", &i]);
    if cmd[0] == "detect" {
        args.extend(["--output", &o]);
    }
    let out = f.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{cmd:?} on {body:?}: {stderr}");
    assert!(stderr.contains(expect), "{cmd:?} on {body:?}: expected {expect:?} in {stderr}");
}

#[test]
fn bad_series_input_is_exit_2_naming_the_line() {
    for cmd in [&["forecast"][..], &["detect"][..], &["detect", "--strict"][..]] {
        let order_matters = cmd != ["detect"];
        check_bad(cmd, "", "empty input");
        check_bad(cmd, "timestamp,value\n2024-01-01 00:00:00,1\n", "1 data row(s): at least 2 needed");
        check_bad(
            cmd,
            "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 01:00:00,high\n",
            "line 3: value \"high\" is not a finite number",
        );
        check_bad(cmd, "timestamp,value\n2024-01-01 00:00:00,NaN\n2024-01-01 01:00:00,1\n", "line 2: value \"NaN\"");
        if order_matters {
            check_bad(
                cmd,
                "timestamp,value\n2024-01-01 01:00:00,1\n2024-01-01 00:00:00,2\n",
                "line 3: timestamp \"2024-01-01 00:00:00\" is earlier than line 2's",
            );
        }
        check_bad(cmd, "timestamp,value\nsoon,1\n2024-01-01 00:00:00,2\n", "line 2: \"soon\" is not a timestamp");
    }
    let dup = "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:00:00,2\n2024-01-01 01:00:00,3\n";
    check_bad(&["forecast"], dup, "line 3: duplicate timestamp");
    check_bad(&["detect", "--strict"], dup, "line 3: duplicate timestamp");
    check_bad(&["predict"], "timestamp,component,metric,value\n2024-01-01 00:00:00,a,memory,x\n", "line 2: value \"x\"");
    check_bad(
        &["predict"],
        "timestamp,component,metric,value\n2024-01-01 00:00:00,a,memory,1\n2024-01-01 00:00:00,a,memory,2\n",
        "line 3: duplicate timestamp",
    );
    check_bad(&["predict"], "", "empty input");
}

#[test]
fn missing_input_file_is_exit_2() {
    let f = Fixture::new();
    let out = f.run(&["forecast", "--input", "nope.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.csv"));
}

#[test]
fn forecast_prints_the_spec_shape() {
    let f = Fixture::new();
    let input = f.file("in.csv", &hourly(24 * 14, |i| 100.0 + 50.0 * ((i % 24) as f64 * std::f64::consts::TAU / 24.0).sin()));
    let v = f.json(&["forecast", "--input", input.to_str().unwrap(), "--horizon", "6h", "--format", "json"]);
    assert_eq!(v["pattern"], "periodic");
    assert_eq!(v["season_length"], 24);
    // An exact daily cycle: smoothing and the seasonal naives are all exact
    // on the holdout, and of equal errors smoothing (tried first) is kept.
    assert!(v["model"].as_str().unwrap().starts_with("ETS"));
    let h = &v["holdout"];
    assert_eq!(h["model"], v["model"]);
    assert_eq!(h["naive"][0]["season"], 24);
    assert!(h["mase"].as_f64().unwrap() <= h["naive"][0]["mase"].as_f64().unwrap(), "{h}");
    let pts = v["forecast"].as_array().unwrap();
    assert_eq!(pts.len(), 6);
    assert_eq!(pts[0]["timestamp"], "2024-01-15T00:00:00.000Z");
    for p in pts {
        assert!(p["lower"].as_f64() <= p["value"].as_f64() && p["value"].as_f64() <= p["upper"].as_f64());
    }
    assert!((0.0..=1.0).contains(&v["confidence"].as_f64().unwrap()));
    let n = f.json(&["forecast", "--input", input.to_str().unwrap(), "--horizon", "3", "--format", "json"]);
    assert_eq!(n["forecast"].as_array().unwrap().len(), 3);
    // Without --input and without a journal: a clear usage error.
    assert_eq!(f.run(&["forecast"]).status.code(), Some(2));
}

#[test]
fn forecast_refuses_values_beyond_1e300_and_too_long_horizons() {
    // Issue 9: ±1e308 panicked, gave null bounds, or came out as a confident constant.
    let alternating = hourly(48, |i| if i % 2 == 0 { 1e308 } else { -1e308 });
    check_bad(&["forecast"], &alternating, "data row 1: value 1e308 is beyond ±1e300");
    check_bad(&["forecast"], &alternating, "rescale the series");
    check_bad(&["forecast", "--horizon", "100000000000"], &hourly(48, |i| i as f64), "the horizon must be at most 1000000 points");
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let f = Fixture::new();
    let input = f.file("in.csv", &format!("\u{feff}{}", hourly(48, |i| (i % 24) as f64)));
    let v = f.json(&["forecast", "--input", input.to_str().unwrap(), "--horizon", "2", "--format", "json"]);
    assert_eq!(v["forecast"].as_array().unwrap().len(), 2);
    let out = f.tmp.path().join("out.csv");
    let o = f.run(&["detect", "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read_to_string(out).unwrap().lines().count(), 49);
}

#[test]
fn detect_writes_every_row_with_a_score() {
    let f = Fixture::new();
    let body = "timestamp,value\n2024-01-01 00:00:00,1.5\n2024-01-01 00:05:00,1.5\n2024-01-01 00:05:00,2\n2024-01-01 00:10:00,40\n";
    let input = f.file("in.csv", body);
    let out = f.tmp.path().join("out.csv");
    let o = f.run(&["detect", "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("1 repeated timestamp(s): line 4: timestamp 2024-01-01 00:05:00 repeats line 3's (scored in file order, at the same time; --strict refuses them)"),
        "{stderr}"
    );
    let text = fs::read_to_string(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "timestamp,value,anomaly_score");
    assert_eq!(lines.len(), 5);
    assert!(lines[3].starts_with("2024-01-01 00:05:00,2,"));
    for l in &lines[1..] {
        let s: f64 = l.rsplit(',').next().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&s));
    }
}

/// Five-minute rows with a repeated timestamp (line 302), a clock set back
/// an hour (line 802: it and the 11 rows after it are behind line 801; line
/// 814 repeats line 801's time) and a 3-day gap (line 1502).
fn clock_trouble() -> (String, Vec<String>) {
    let start = 1_709_251_200i64; // 2024-03-01 00:00:00 UTC
    let mut clock = start;
    let mut stamps = Vec::new();
    let mut body = String::from("timestamp,value\n");
    for i in 0..2000i64 {
        if i > 0 {
            clock += match i {
                300 => 0,
                800 => -3600,
                1500 => 3 * 86_400,
                _ => 300,
            };
        }
        let secs = clock - start;
        let (day, rest) = (1 + secs / 86_400, secs % 86_400);
        let stamp = format!("2024-03-{day:02} {:02}:{:02}:00", rest / 3600, rest % 3600 / 60);
        let value = 100.0 + 40.0 * ((i % 288) as f64 * std::f64::consts::TAU / 288.0).sin() + (i * 37 % 11) as f64;
        body.push_str(&format!("{stamp},{value}\n"));
        stamps.push(stamp);
    }
    (body, stamps)
}

#[test]
fn issue_14_detect_scores_every_row_through_a_clock_that_steps_back_a_repeat_and_a_gap() {
    let f = Fixture::new();
    let (body, stamps) = clock_trouble();
    let input = f.file("in.csv", &body);
    let out = f.tmp.path().join("out.csv");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let run = f.run(&["detect", "--input", i, "--output", o]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    // Every row, in file order, with its timestamp as written and a score.
    let text = fs::read_to_string(&out).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), stamps.len());
    for (row, (stamp, line)) in rows.iter().zip(stamps.iter().zip(body.lines().skip(1))) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!((fields[0], fields[1]), (stamp.as_str(), line.split(',').nth(1).unwrap()));
        let score: f64 = fields[2].parse().unwrap();
        assert!((0.0..=1.0).contains(&score), "{row}");
    }
    // The warnings name the lines and what was assumed.
    for expect in [
        "the clock steps back 1 time(s): line 802: timestamp 2024-03-03 17:30:00 is 1 h before line 801's \
         (and so are the 11 rows after it, to line 813); scored in file order, as if at line 801's time",
        "line 302: timestamp 2024-03-02 00:55:00 repeats line 301's",
        "line 814: timestamp 2024-03-03 18:30:00 repeats line 801's",
        "1 gap(s) longer than 10 steps of 5 min: line 1502 is 3 d after line 1501 (scored at their own times, nothing filled in)",
    ] {
        assert!(stderr.contains(expect), "expected {expect:?} in {stderr}");
    }
    // --strict refuses the same file at its first offence.
    let strict = f.run(&["detect", "--strict", "--input", i, "--output", o]);
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert_eq!(strict.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 302: duplicate timestamp \"2024-03-02 00:55:00\" (also on line 301)"), "{stderr}");
}

#[test]
fn issue_14_forecast_refuses_rows_out_of_order_unless_sorted() {
    let f = Fixture::new();
    let (body, _) = clock_trouble();
    let input = f.file("in.csv", &body);
    let i = input.to_str().unwrap();
    let refused = f.run(&["forecast", "--input", i, "--horizon", "12"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 302: duplicate timestamp") && stderr.contains("--sort sorts the rows"), "{stderr}");
    let sorted = f.run(&["forecast", "--input", i, "--horizon", "12", "--sort", "--format", "json"]);
    let stderr = String::from_utf8_lossy(&sorted.stderr);
    assert_eq!(sorted.status.code(), Some(0), "{stderr}");
    // 12 rows behind line 801's time moved; 14 dropped for a later row of the same time (line 301, and lines 789 to 801: the hour's first pass).
    assert!(
        stderr.contains(
            "sorted by timestamp (--sort): 12 row(s) earlier than a row before them moved into time order (the first on line 802); \
             14 row(s) dropped for a repeated timestamp, keeping the last value of each (the first on line 301)"
        ),
        "{stderr}"
    );
    let v: Value = serde_json::from_slice(&sorted.stdout).unwrap();
    assert_eq!(v["forecast"].as_array().unwrap().len(), 12);
    // predict: the same rule per series.
    let metrics = "timestamp,component,metric,value\n2024-01-01T02:00:00Z,a,memory,3\n2024-01-01T00:00:00Z,a,memory,1\n\
                   2024-01-01T01:00:00Z,a,memory,2\n2024-01-01T01:00:00Z,a,memory,2.5\n";
    let m = f.file("m.csv", metrics);
    let refused = f.run(&["predict", "--input", m.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 3: timestamp") && stderr.contains("--sort"), "{stderr}");
    let v = f.json(&["predict", "--input", m.to_str().unwrap(), "--sort", "--format", "json"]);
    assert_eq!(v["predictions"][0]["current"], 3.0);
}

#[test]
fn detect_names_the_first_few_lines_and_counts_the_rest() {
    let f = Fixture::new();
    let mut body = String::from("timestamp,value\n");
    for i in 0..40 {
        body.push_str(&format!("{},1\n{},2\n", i * 60, i * 60));
    }
    let input = f.file("in.csv", &body);
    let run = f.run(&["detect", "--input", input.to_str().unwrap(), "--output", "-"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&run.stdout).lines().count(), 81);
    assert!(stderr.contains("40 repeated timestamp(s): line 3: timestamp 0 repeats line 2's;"), "{stderr}");
    assert!(
        stderr
            .contains("line 7: timestamp 120 repeats line 6's; and 37 more (the first on line 9) (scored in file order, at the same time; --strict refuses them)"),
        "{stderr}"
    );
}

#[test]
fn predict_finds_the_leak_in_a_csv() {
    let f = Fixture::new();
    let mut body = String::from("timestamp,component,metric,value\n");
    for i in 0..120 {
        let t = format!("2024-01-01T{:02}:{:02}:00Z", i / 60, i % 60);
        body.push_str(&format!("{t},agent-1,memory_percent,{}\n", 50.0 + f64::from(i) / 60.0 + if i % 2 == 0 { 0.2 } else { -0.2 }));
        body.push_str(&format!("{t},agent-2,memory_percent,{}\n", 40.0 + if i % 3 == 0 { 0.5 } else { -0.25 }));
    }
    let input = f.file("m.csv", &body);
    let v = f.json(&["predict", "--input", input.to_str().unwrap(), "--format", "json"]);
    let p = &v["predictions"];
    assert_eq!(p[0]["component"], "agent-1");
    assert_eq!(p[0]["will_fail"], true);
    let ttf = p[0]["time_to_failure_hours"].as_f64().unwrap();
    assert!((40.0..46.0).contains(&ttf), "{ttf}");
    assert_eq!(p[0]["recommendations"][0]["action"], "restart");
    assert_eq!(p[1]["will_fail"], false);
    // A tighter limit brings the failure closer.
    let v = f.json(&["predict", "--input", input.to_str().unwrap(), "--limit", "memory_percent=60", "--format", "json"]);
    assert!(v["predictions"][0]["time_to_failure_hours"].as_f64().unwrap() < 10.0);
    assert_eq!(f.run(&["predict", "--input", input.to_str().unwrap(), "--limit", "memory"]).status.code(), Some(2));
}

#[test]
fn predict_reads_telemetry_from_the_coordination_directory() {
    let f = Fixture::new();
    for i in 0..40 {
        let body = format!(
            r#"{{"id": "t{i}", "timestamp": "2024-01-01T{:02}:{:02}:00Z", "name": "worker", "attributes": {{"agent_id": "agent-9"}}, "metrics": {{"disk_percent": {}}}}}"#,
            i / 4,
            (i % 4) * 15,
            80.0 + f64::from(i) * 0.25
        );
        fs::write(f.tmp.path().join("coordination").join(format!("telemetry_{i}.json")), body).unwrap();
    }
    let v = f.json(&["predict", "--format", "json"]);
    let p = &v["predictions"][0];
    assert_eq!(
        (p["component"].as_str(), p["metric"].as_str(), p["will_fail"].as_bool()),
        (Some("agent-9"), Some("disk_percent"), Some(true))
    );
    assert_eq!(p["recommendations"][0]["action"], "add_capacity");
}

#[test]
fn tune_and_cost_show_their_arithmetic() {
    let f = Fixture::new();
    let v = f.json(&["tune", "--arrival-rate", "10", "--service-time", "0.5", "--target-utilization", "0.8", "--format", "json"]);
    assert_eq!(v["workers"]["plan"]["workers"], 7);
    let usage =
        f.file("u.csv", &(0..50).fold(String::from("application_mb,buffer_mb\n"), |s, i| s + &format!("{},{}\n", 1000 + i, 100 + i % 7)));
    let queries = f.file(
        "q.csv",
        &(1..40).fold(String::from("rows,bytes,duration_ms\n"), |s, i| s + &format!("{},{},{}\n", i * 10, i * i * 7, 3 + i)),
    );
    let v = f.json(&[
        "tune",
        "--arrival-rate",
        "1",
        "--service-time",
        "1",
        "--usage",
        usage.to_str().unwrap(),
        "--total-memory-mb",
        "4096",
        "--queries",
        queries.to_str().unwrap(),
        "--rows",
        "200",
        "--format",
        "json",
    ]);
    assert!(v["memory"]["cache_mb"].as_f64().unwrap() > 2500.0);
    assert!((v["query"]["estimate"]["duration_ms"].as_f64().unwrap() - 23.0).abs() < 0.5, "{}", v["query"]);
    let trace = f.file("t.csv", &hourly(24 * 7, |i| if (9..18).contains(&(i % 24)) { 36_000.0 } else { 3_600.0 }));
    let v = f.json(&[
        "cost",
        "--budget-per-month",
        "500",
        "--sla-ms",
        "1000",
        "--input",
        trace.to_str().unwrap(),
        "--service-time",
        "1",
        "--current-agents",
        "20",
        "--format",
        "json",
    ]);
    let s = v["strategies"].as_array().unwrap();
    assert!(s.len() >= 3 && s.iter().all(|x| !x["arithmetic"].as_array().unwrap().is_empty()));
    // Issue 10: one meaning for the trace (arrivals per row), with the unit said:
    // 36,000 an hour at the peak is 10 items/s.
    assert_eq!(v["load"]["unit"], "items/s");
    assert!(v["load"]["source"].as_str().unwrap().contains("arrivals per row of 3600 s"), "{}", v["load"]);
    assert!((v["load"]["peak_per_sec"].as_f64().unwrap() - 10.0).abs() < 3.0, "{}", v["load"]);
    assert!(v["recommended"].is_string(), "{v}");
    assert_eq!(f.run(&["cost", "--budget-per-month", "500", "--sla-ms", "1000"]).status.code(), Some(2));
}

/// The closing summary counts the alarms at the threshold one pages on
/// (0.88 unless --threshold) and names them; the output is the same
/// whatever the threshold, and a threshold outside 0..1 is exit 2.
#[test]
fn detect_summarises_the_alarms_at_the_threshold() {
    let f = Fixture::new();
    let mut body = String::from("timestamp,value\n");
    for i in 0..600 {
        let v = if i == 450 { 60.0 } else { 10.0 + ((i * 7919) % 13) as f64 * 0.1 };
        let m = i * 5;
        body.push_str(&format!("2024-01-{:02} {:02}:{:02}:00,{v}\n", 1 + m / 1440, (m / 60) % 24, m % 60));
    }
    let input = f.file("in.csv", &body);
    let i = input.to_str().unwrap();
    let default = f.run(&["detect", "--input", i]);
    let stderr = String::from_utf8_lossy(&default.stderr);
    assert!(default.status.success(), "{stderr}");
    assert!(stderr.contains("1 alarm(s) at 0.88: 2024-01-02 13:30:00;"), "{stderr}");
    let strict = f.run(&["detect", "--input", i, "--threshold", "1"]);
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(stderr.contains("0 alarm(s) at 1;"), "{stderr}");
    assert_eq!(strict.stdout, default.stdout, "the scores do not depend on the threshold");
    let bad = f.run(&["detect", "--input", i, "--threshold", "1.5"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1.5 is not between 0 and 1"));
}
