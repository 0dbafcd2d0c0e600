//! The Prometheus source against a real Prometheus (Debian's `prometheus`,
//! which scripts/test installs), scraping a tiny exporter inside the test
//! every second. Without `prometheus` on PATH the test fails.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use steward_core::snapshot::Snapshot;
use steward_sources::{PrometheusConfig, PrometheusSource, Source};

/// How long Prometheus may take to start and scrape, or to see a change.
const PATIENCE: Duration = Duration::from_secs(30);

/// Consumers the exporter reports, one series each.
const WORKERS: usize = 40;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `prometheus` on PATH.
fn find_prometheus() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("prometheus")).find(|p| p.is_file())
}

/// A `/metrics` endpoint in Prometheus's text format; the queue depth can
/// change while it runs.
struct Exporter {
    port: u16,
    depth: Arc<AtomicU64>,
}

impl Exporter {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let depth = Arc::new(AtomicU64::new(42));
        let shared = Arc::clone(&depth);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let depth = shared.load(Ordering::SeqCst);
                thread::spawn(move || answer_scrape(stream, depth));
            }
        });
        Self { port, depth }
    }
}

fn answer_scrape(stream: TcpStream, depth: u64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        line.clear();
    }
    let mut body = format!(
        "# TYPE jobs_queue_depth gauge\njobs_queue_depth {depth}\n\
         # TYPE jobs_in_flight gauge\njobs_in_flight 3\n\
         # TYPE jobs_completed_total counter\njobs_completed_total 1234\n\
         # TYPE jobs_error_ratio gauge\njobs_error_ratio 0.25\n\
         # TYPE jobs_worker_up gauge\n"
    );
    for w in 0..WORKERS {
        body.push_str(&format!("jobs_worker_up{{worker=\"worker-number-{w:03}\"}} 1\n"));
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = (&stream).write_all(head.as_bytes()).and_then(|()| (&stream).write_all(body.as_bytes()));
}

/// Prometheus on a free loopback port, scraping `exporter` every second;
/// killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(binary: &Path, exporter: &Exporter) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: jobs\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            exporter.port
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Snapshots until `done` holds, for at most [`PATIENCE`].
    fn wait_for(&mut self, source: &PrometheusSource, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let start = Instant::now();
        loop {
            let last = source.snapshot(now_ms());
            match &last {
                Ok(snapshot) if done(snapshot) => return snapshot.clone(),
                _ => {}
            }
            if let Some(exit) = self.child.try_wait().unwrap() {
                panic!("Prometheus exited ({exit}):\n{}", self.log());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{what}: not after {PATIENCE:?}; the last snapshot: {last:?}\nPrometheus's log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn source(url: &str, queries: &[(&str, &str)]) -> PrometheusSource {
    let mut cfg = PrometheusConfig::from_url(url);
    for (name, promql) in queries {
        let slot = match *name {
            "queue_depth" => &mut cfg.queries.queue_depth,
            "in_flight" => &mut cfg.queries.in_flight,
            "consumers" => &mut cfg.queries.consumers,
            "completed" => &mut cfg.queries.completed,
            "error_rate" => &mut cfg.queries.error_rate,
            other => panic!("{other}"),
        };
        *slot = Some((*promql).to_owned());
    }
    let source = PrometheusSource::new(cfg);
    source.check().unwrap();
    source
}

#[test]
fn the_source_reads_a_real_prometheus_and_follows_a_change() {
    let Some(binary) = find_prometheus() else {
        panic!("prometheus is not on PATH: install Debian's `prometheus` package (scripts/test does)");
    };
    let exporter = Exporter::start();
    let mut prometheus = Prometheus::start(&binary, &exporter);

    // The source URL form alone, percent-encoded, as `--source` gives it.
    let url_form = PrometheusSource::from_url(&format!(
        "prometheus://127.0.0.1:{}?queue_depth=sum%28jobs_queue_depth%29&in_flight=sum%28jobs_in_flight%29",
        prometheus.port
    ));
    url_form.check().unwrap();
    assert_eq!(url_form.target(), format!("prometheus {}", prometheus.url()));
    let snapshot = prometheus.wait_for(&url_form, "the first scrape", |s| s.work_queue_size == 42);
    assert!(snapshot.target_exists && snapshot.warnings.is_empty(), "{:?}", snapshot.warnings);
    assert_eq!(snapshot.claims.len(), 3);
    assert!(snapshot.claims.iter().all(|c| c.claimed_at == Some(snapshot.taken_at)));

    // Every field, from a config.
    let full = source(
        &prometheus.url(),
        &[
            ("queue_depth", "sum(jobs_queue_depth)"),
            ("in_flight", "jobs_in_flight"),
            ("consumers", "count(jobs_worker_up == 1)"),
            ("completed", "sum(jobs_completed_total)"),
            ("error_rate", "scalar(jobs_error_ratio)"),
        ],
    );
    let snapshot = full.snapshot(now_ms()).unwrap();
    assert_eq!((snapshot.work_queue_size, snapshot.claims.len(), snapshot.agents.len()), (42, 3, WORKERS));
    assert_eq!((snapshot.completed, snapshot.telemetry.error_rate), (1234, Some(0.25)));
    assert!(snapshot.warnings.is_empty(), "{:?}", snapshot.warnings);

    // The exporter's value changes; the next scrapes carry it.
    exporter.depth.store(100, Ordering::SeqCst);
    let snapshot = prometheus.wait_for(&url_form, "the changed depth", |s| s.work_queue_size == 100);
    assert_eq!(snapshot.claims.len(), 3);

    // One series per worker is several samples: a warning (and, at this
    // size, a chunked answer the client must decode).
    let several = source(&prometheus.url(), &[("queue_depth", "sum(jobs_queue_depth)"), ("consumers", "jobs_worker_up")]);
    let snapshot = several.snapshot(now_ms()).unwrap();
    assert!(snapshot.agents.is_empty());
    let [warning] = snapshot.warnings.as_slice() else { panic!("{:?}", snapshot.warnings) };
    assert!(warning.reason.contains(&format!("gave {WORKERS} samples where one was expected")), "{warning}");

    // No series: queue_depth fails the snapshot, unless it says what none means.
    let e = source(&prometheus.url(), &[("queue_depth", "sum(no_such_metric)")]).snapshot(now_ms()).unwrap_err().to_string();
    assert!(e.contains("`sum(no_such_metric)` gave no sample") && e.contains(&prometheus.url()), "{e}");
    let snapshot = source(&prometheus.url(), &[("queue_depth", "sum(no_such_metric) or vector(0)")]).snapshot(now_ms()).unwrap();
    assert_eq!(snapshot.work_queue_size, 0);

    // A query Prometheus cannot parse: its error type, in a sentence.
    let e = source(&prometheus.url(), &[("queue_depth", "sum(jobs_queue_depth))")]).snapshot(now_ms()).unwrap_err().to_string();
    assert!(
        e.contains(&format!("the Prometheus server at {} answered queue_depth", prometheus.url())) && e.contains("with 400: bad_data: "),
        "{e}"
    );

    // A wrong path prefix.
    let e = source(&format!("{}/nope", prometheus.url()), &[("queue_depth", "1")]).snapshot(now_ms()).unwrap_err().to_string();
    assert!(e.contains("with 404") && e.contains("path prefix"), "{e}");
}
