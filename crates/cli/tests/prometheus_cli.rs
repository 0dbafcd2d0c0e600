//! The loop on a PromQL source: a real Prometheus (Debian's package, which
//! scripts/test installs) scrapes a small exporter this test runs; steward
//! reads the queue depth through it and scales a command fleet on it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{wait_for, Fixture};

fn exporter(depth: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let depth = depth.load(Ordering::SeqCst);
            std::thread::spawn(move || scrape(stream, depth));
        }
    });
    port
}

fn scrape(stream: TcpStream, depth: u64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        line.clear();
    }
    let body = format!("# TYPE jobs_queue_depth gauge\njobs_queue_depth {depth}\n# TYPE jobs_workers gauge\njobs_workers 1\n");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = (&stream).write_all(head.as_bytes()).and_then(|()| (&stream).write_all(body.as_bytes()));
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_loop_scales_on_a_queue_depth_read_through_a_real_prometheus() {
    let bin = std::path::Path::new("/usr/bin/prometheus");
    assert!(bin.exists(), "{} is missing: install Debian's prometheus (scripts/test does)", bin.display());
    let f = Fixture::new();
    let depth = Arc::new(AtomicU64::new(40));
    let exporter_port = exporter(Arc::clone(&depth));
    let prom_dir = f.tmp.path().join("prometheus");
    std::fs::create_dir(&prom_dir).unwrap();
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: jobs\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"),
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _prometheus = Killed(
        Command::new(bin)
            .arg(format!("--config.file={}", prom_dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The fleet is a command: it records each scale it is asked for.
    let scaled = f.tmp.path().join("scaled.log");
    std::fs::write(
        f.tmp.path().join("steward.yaml"),
        format!(
            r#"
source:
  url: "prometheus://127.0.0.1:{port}"
  queries: {{queue_depth: "sum(jobs_queue_depth)", consumers: "sum(jobs_workers)"}}
auto: {{min_agents: 1, max_agents: 20, max_step: 10, interval: 500ms, min_confidence: 0.5}}
fleet:
  kind: command
  scale: ["sh", "-c", "echo {{current}} {{target}} >> {}"]
"#,
            scaled.display()
        ),
    )
    .unwrap();
    // Until Prometheus has scraped, the source fails and nothing is decided.
    let mut analysis = serde_json::Value::Null;
    let analyzed = wait_for(30, || {
        let out = f.run(&["analyze", "--json"]);
        analysis = serde_json::from_slice(&out.stdout).unwrap_or_default();
        out.status.success() && analysis["metrics"]["work_queue_size"] == 40
    });
    assert!(analyzed, "analyze never read the depth through Prometheus: {analysis}");
    assert_eq!(analysis["metrics"]["active_agents"], 1, "{analysis}");
    let wanted =
        analysis["decisions"].as_array().unwrap().iter().find(|d| d["type"] == "scale_up").map(|d| d["parameters"]["desired_raw"].clone());
    assert_eq!(wanted, Some(serde_json::json!(8.0)), "40 pending at 5 per agent need 8: {analysis}");
    let mut child = f.cmd(&["loop"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let up = wait_for(30, || {
        std::fs::read_to_string(&scaled)
            .is_ok_and(|s| s.lines().any(|l| l.split(' ').nth(1).is_some_and(|t| t.parse::<u32>().is_ok_and(|t| t > 1))))
    });
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let log = std::fs::read_to_string(&scaled).unwrap_or_default();
    assert!(up, "the loop did not scale up on a depth of 40 with one consumer; scale calls: {log:?}");
    let first: Vec<u32> = log.lines().next().unwrap().split(' ').map(|n| n.parse().unwrap()).collect();
    assert_eq!(first[0], 1, "it started from the one consumer Prometheus reports: {log}");
    assert!(first[1] > 1, "{log}");
}
