//! Real Redis and PostgreSQL servers for tests, from Debian's packages
//! (`redis-server`, `postgresql`; scripts/test installs them), each on a
//! free loopback port in a temporary directory. Start one per test binary
//! (`shared_redis()`, `shared_postgres()`), give each test its own stream
//! or table. A server outlives no test binary: a watchdog shell stops it
//! when the test process is gone, even after a panic or a SIGKILL.
//! Without the server installed a test fails; it does not skip.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `argv` under a watchdog that stops it (with `signal`) once this test
/// process is gone.
fn watched(argv: &[String], signal: &str, user: Option<&str>, log: &Path) -> Child {
    let script = format!(
        "\"$@\" & s=$!; while [ -d /proc/{pid} ] && kill -0 $s 2>/dev/null; do sleep 0.3; done; kill -{signal} $s 2>/dev/null; wait $s",
        pid = std::process::id()
    );
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", "sh", "-c", &script, "sh"]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.args(["-c", &script, "sh"]);
            c
        }
    };
    let out = std::fs::File::create(log).unwrap();
    cmd.args(argv).stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
    cmd.spawn().unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"))
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc_getuid() == 0 }
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl Redis {
    pub fn start() -> Self {
        let bin = "/usr/bin/redis-server";
        assert!(Path::new(bin).exists(), "{bin} is missing: install Debian's redis-server (scripts/test does)");
        let dir = tempfile::tempdir().unwrap();
        let r = Self { port: free_port(), dir, child: Mutex::new(None) };
        r.start_again();
        r
    }

    /// Starts the server (again) on the same port and directory: what was
    /// saved at the stop is there.
    pub fn start_again(&self) {
        let argv: Vec<String> = [
            "/usr/bin/redis-server",
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &self.dir.path().display().to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let log = self.dir.path().join("redis.log");
        let child = watched(&argv, "TERM", None, &log);
        wait_port(self.port, "redis-server", &log);
        // Loading the append-only file: wait until it answers PING.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server does not answer PING");
            std::thread::sleep(Duration::from_millis(50));
        }
        *self.child.lock().unwrap() = Some(child);
    }

    /// Stops the server, saving what it holds (`SHUTDOWN SAVE`).
    pub fn stop(&self) {
        let _ = self.cli(&["SHUTDOWN", "SAVE"]);
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, stream: &str) -> String {
        format!("redis://127.0.0.1:{}/0?stream={stream}&group=workers", self.port)
    }

    /// `redis-cli` against this server; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn int(&self, args: &[&str]) -> i64 {
        let s = self.cli(args);
        s.trim().parse().unwrap_or_else(|_| panic!("{args:?} answered {s:?}"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = self.cli(&["SHUTDOWN", "NOSAVE"]);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn shared_redis() -> &'static Redis {
    static R: OnceLock<Redis> = OnceLock::new();
    R.get_or_init(Redis::start)
}

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
    bin: PathBuf,
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|b| b.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("no PostgreSQL server under /usr/lib/postgresql: install Debian's postgresql (scripts/test does)"))
}

impl Postgres {
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        let user = is_root().then_some("postgres");
        if user.is_some() {
            // initdb and postgres refuse to run as root: the data belongs to postgres.
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(ok.success());
        }
        let data = dir.path().join("data");
        let mut init = match user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(bin.join("initdb"));
                c
            }
            None => Command::new(bin.join("initdb")),
        };
        let out = init.arg("-D").arg(&data).args(["-U", "steward", "--auth=trust", "-E", "UTF8", "--no-sync"]).output().unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let pg = Self { port: free_port(), dir, child: Mutex::new(None), bin };
        pg.start_again();
        pg
    }

    pub fn start_again(&self) {
        let user = is_root().then_some("postgres");
        let argv: Vec<String> = vec![
            self.bin.join("postgres").display().to_string(),
            "-D".into(),
            self.dir.path().join("data").display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-k".into(),
            self.dir.path().display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "synchronous_commit=off".into(),
            "-c".into(),
            "full_page_writes=off".into(),
            "-c".into(),
            "max_connections=200".into(),
        ];
        let log = self.dir.path().join("postgres.log");
        let child = watched(&argv, "INT", user, &log);
        wait_port(self.port, "postgres", &log);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.psql("SELECT 1").contains('1') {
            assert!(Instant::now() < deadline, "postgres does not answer; its log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
        *self.child.lock().unwrap() = Some(child);
    }

    pub fn url(&self, table: &str) -> String {
        format!("postgres://steward@127.0.0.1:{}/postgres?table={table}", self.port)
    }

    /// `psql` against this server: the unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "steward", "-d", "postgres", "-Atqc", sql])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn int(&self, sql: &str) -> i64 {
        let s = self.psql(sql);
        s.trim().parse().unwrap_or_else(|_| panic!("{sql} answered {s:?}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn shared_postgres() -> &'static Postgres {
    static P: OnceLock<Postgres> = OnceLock::new();
    P.get_or_init(Postgres::start)
}
