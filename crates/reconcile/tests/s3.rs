//! The same lake behind a real S3 endpoint: moto's server (`moto_server`,
//! from the `moto[server]` Python package, which scripts/test installs),
//! started by the test on a free loopback port. Reconciling it finds the
//! same gaps as reconciling the local directory.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{lake_with, now_ms};
use steward_reconcile::{reconcile, Inventory};
use steward_store::Journal;

/// moto_server: on PATH, or in the virtualenv scripts/test makes.
fn moto() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| here.join("target"), PathBuf::from).join("ci-venv/bin/moto_server");
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("moto_server")).find(|p| p.is_file()))
        .or_else(|| venv.is_file().then_some(venv))
        .expect("moto_server is not installed: scripts/test installs it (python3 -m venv target/ci-venv; pip install 'moto[server]')")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn start_moto() -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(moto())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let server = Server(child);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "moto_server did not listen in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

fn gap_set(state: &std::path::Path) -> BTreeSet<(String, String, String)> {
    let gaps: serde_json::Value = serde_json::from_slice(&std::fs::read(state.join("inventory/gaps.json")).unwrap()).unwrap();
    gaps["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["dataset"].as_str().unwrap().to_owned(), g["key"].as_str().unwrap().to_owned(), g["kind"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn an_s3_lake_has_the_same_gaps_as_the_local_one() {
    let now = now_ms();
    let (l, datasets, planted) = lake_with(&[("box", "collect.sh"), ("odds", "collect.sh"), ("liar", "liar.sh")], now, false);
    let (_server, port) = start_moto();
    let created = http(port, "PUT /lake HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(created.starts_with("HTTP/1.1 200"), "creating the bucket: {created}");
    // object_store reads the standard AWS variables, as the AWS tools do.
    std::env::set_var("AWS_ACCESS_KEY_ID", "steward-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "steward-test");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"));
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    let s3 = Inventory::open("s3://lake/raw").unwrap();
    // Upload the local lake, file for file.
    let mut uploaded = 0;
    for d in &datasets {
        for i in 0..d.count() {
            if let Ok(bytes) = std::fs::read(l.lake.join(d.key(i))) {
                s3.put(&d.key(i), bytes).unwrap();
                uploaded += 1;
            }
        }
    }
    let missing: u64 = planted.values().map(|(m, _, _)| m).sum();
    assert_eq!(uploaded, 3 * 60 - missing);

    let local = Inventory::open(l.lake.to_str().unwrap()).unwrap();
    let (local_state, s3_state) = (l.state.join("local"), l.state.join("s3"));
    let mut j1 = Journal::open(&{
        std::fs::create_dir_all(&local_state).unwrap();
        local_state.join("journal.db")
    })
    .unwrap();
    let mut j2 = Journal::open(&{
        std::fs::create_dir_all(&s3_state).unwrap();
        s3_state.join("journal.db")
    })
    .unwrap();
    let (r1, _) = reconcile(&datasets, &local, &mut j1, &local_state, now, &mut |_| {}).unwrap();
    let (r2, _) = reconcile(&datasets, &s3, &mut j2, &s3_state, now, &mut |_| {}).unwrap();
    assert_eq!(r2.listed, uploaded);
    let expected: u64 = planted.values().map(|(m, t, _)| m + t).sum();
    assert_eq!(r1.gaps, expected);
    assert_eq!(r2.gaps, r1.gaps);
    assert_eq!(gap_set(&s3_state), gap_set(&local_state));
    assert_eq!(
        r2.datasets.iter().map(|d| (d.name.clone(), d.coverage)).collect::<Vec<_>>(),
        r1.datasets.iter().map(|d| (d.name.clone(), d.coverage)).collect::<Vec<_>>()
    );
    // A key is checked one by one too (what the orchestrator verifies with).
    let one = datasets[0].key(3);
    assert_eq!(s3.head(&one).unwrap().map(|e| e.size), Some(120));
    assert_eq!(s3.head(&datasets[0].key(0)).unwrap(), None);

    // Keys with characters object_store would percent-encode, written as a
    // collector's own S3 client writes them (the key as it is, encoded
    // only on the wire): listed and checked one by one as the same keys.
    for (wire, body) in [("teams/a%23b.json", "0123456789"), ("teams/x%2541y.json", "01234567")] {
        let put = http(
            port,
            &format!(
                "PUT /lake/raw/{wire} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(put.starts_with("HTTP/1.1 200"), "uploading {wire}: {put}");
    }
    let mut listed = BTreeSet::new();
    s3.list(
        "teams/",
        &mut |e| {
            listed.insert((e.key, e.size));
        },
        &mut |w| panic!("{w}"),
    )
    .unwrap();
    assert_eq!(listed, BTreeSet::from([("teams/a#b.json".to_owned(), 10), ("teams/x%41y.json".to_owned(), 8)]));
    assert_eq!(s3.head("teams/a#b.json").unwrap().map(|e| e.size), Some(10));
    assert_eq!(s3.head("teams/x%41y.json").unwrap().map(|e| e.size), Some(8));
    assert_eq!(s3.head("teams/xAy.json").unwrap(), None);

    // An endpoint that does not answer is an error that names it, quickly.
    std::env::set_var("AWS_ENDPOINT", "http://127.0.0.1:9");
    let started = Instant::now();
    let err = Inventory::open("s3://lake/raw").unwrap_err().to_string();
    assert!(err.contains("s3://lake/raw") && err.contains("cannot be read"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "gave up after {:?}", started.elapsed());
}
