//! A real Alertmanager for tests: Debian's `prometheus-alertmanager` on a
//! free loopback port, routing everything to a webhook receiver inside the
//! test. Shared by the runtime's notifier test and the CLI's incident test
//! (`#[path]`); scripts/test installs Alertmanager, and without it a test
//! fails (it does not skip).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A webhook receiver: records every POST as (path, JSON body) and answers
/// with `status`.
pub struct Receiver {
    port: u16,
    posts: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    pub fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&posts);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = Arc::clone(&record);
                thread::spawn(move || serve(stream, &record, status));
            }
        });
        Self { port, posts }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The bodies POSTed to `path`, in order.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.posts.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, b)| b.clone()).collect()
    }
}

fn serve(stream: TcpStream, record: &Mutex<Vec<(String, Value)>>, status: u16) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    record.lock().unwrap().push((path, body));
    let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope");
    let _ = (&stream).write_all(answer.as_bytes());
}

/// Alertmanager on a free loopback port; killed on drop.
pub struct Alertmanager {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts it with one route: everything to `webhook`, grouped by
    /// alertname, with short intervals.
    pub fn start(webhook: &str) -> Self {
        assert!(
            Path::new(ALERTMANAGER).exists(),
            "{ALERTMANAGER} is missing: run scripts/test, which installs Debian's prometheus-alertmanager"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "route:\n  receiver: test\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n\
             receivers:\n  - name: test\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
        );
        std::fs::write(dir.path().join("alertmanager.yml"), config).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", dir.path().join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut am = Self { child, port, dir };
        let start = Instant::now();
        while get(port, "/-/ready").map(|(s, _)| s) != Some(200) {
            if let Some(exit) = am.child.try_wait().unwrap() {
                panic!("Alertmanager exited ({exit}):\n{}", am.log());
            }
            assert!(start.elapsed() < Duration::from_secs(20), "Alertmanager not ready after 20 s:\n{}", am.log());
            thread::sleep(Duration::from_millis(100));
        }
        am
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// `GET /api/v2/alerts`: the alerts it holds as active (or silenced,
    /// inhibited, unprocessed: the API's defaults).
    pub fn alerts(&self) -> Vec<Value> {
        let (status, body) = get(self.port, "/api/v2/alerts").unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap().as_array().unwrap().clone()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET in HTTP/1.0, so that the answer is never chunked.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    Some((head.split_whitespace().nth(1)?.parse().ok()?, body.to_owned()))
}
