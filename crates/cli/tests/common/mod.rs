//! What the integration tests share: a temporary coordination directory
//! and the real `steward` binary run inside it.
#![allow(dead_code)] // each test file uses a different part

pub mod cdp;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Fixture {
    pub tmp: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let f = Self { tmp: tempfile::tempdir().unwrap() };
        fs::create_dir(f.dir()).unwrap();
        f
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("coordination")
    }

    /// The default state directory of `dir()`: `<parent>/.steward/coordination`.
    pub fn state(&self) -> PathBuf {
        self.tmp.path().join(".steward").join("coordination")
    }

    pub fn write(&self, name: &str, body: &str) {
        fs::write(self.dir().join(name), body).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_steward"));
        c.current_dir(self.tmp.path()).arg("--coordination").arg(self.dir()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("STEWARD_") || k.starts_with("DSLMODEL_") || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Every file in the coordination directory with its bytes.
    pub fn contents(&self) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap_or_default()))
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.contents().into_keys().collect()
    }
}

/// Waits up to `secs` for `done`, polling every 50 ms.
pub fn wait_for(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// SIGKILLs every worker recorded in a state directory's fleet registry
/// (tests clean up after fleets that outlive the steward that started them).
pub fn kill_fleet(state_dir: &std::path::Path) {
    let Ok(bytes) = fs::read(state_dir.join("fleet.json")) else { return };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else { return };
    for w in v["workers"].as_array().into_iter().flatten() {
        if let Some(pid) = w["pid"].as_u64() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// `GET path` from a daemon on loopback `port` (HTTP/1.0: never chunked);
/// the body, or empty when it does not answer.
pub fn get_text(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}
