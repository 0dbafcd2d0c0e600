//! `steward worker`: the built-in worker, following the claim protocol of
//! spec/coordination.md exactly.
//!
//! 1. claim `work_<id>.json` by `rename()` to `claimed_<id>.json` (exactly
//!    one claimant wins), then rewrite it with `claimed_by`/`claimed_at`
//!    through a temp file and a rename;
//! 2. on success publish `completed_<id>.json` (temp file, then `link()`,
//!    which never replaces an existing record), then remove the claim;
//! 3. on failure put the item back as `work_<id>.json` with `attempts + 1`,
//!    or dead-letter it as `failed_<id>.json` at `max_attempts`.
//!
//! Before working an item it checks that no completed record exists (a
//! requeue can race a slow claimant), so an item is completed once. The
//! agent file carries a heartbeat every `--heartbeat-interval`. SIGTERM or
//! SIGINT: finish the current item, then exit.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Map, Value};
use steward_core::time::format_rfc3339;
use steward_protocol::{agent_file_name, Claim, Completion, CoordinationDir, Durability, Finished, ItemOutcome};

use crate::engine::now_ms;
use crate::UsageError;

/// Flags of `steward worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// This agent's id; its file is agent_<id>.json (or <id>.json when the id starts with "agent_")
    /// [default: env STEWARD_AGENT_ID, else agent_<pid>]
    #[arg(long)]
    pub id: Option<String>,
    /// Simulated time per item: a number of seconds, const:S, exp:MEAN, uniform:A,B or lognormal:MEDIAN,SIGMA
    #[arg(long, default_value = "0", value_name = "DIST")]
    pub service_time: String,
    /// Fraction of simulated items that fail (and are retried or dead-lettered)
    #[arg(long, default_value_t = 0.0, value_name = "X")]
    pub fail_rate: f64,
    /// Run this program per item instead of simulating: the item's JSON on stdin, exit 0 = done.
    /// Give it last: `steward worker --exec python3 handle.py`
    #[arg(long, num_args = 1.., value_name = "ARGV", allow_hyphen_values = true)]
    pub exec: Option<Vec<String>>,
    /// Seconds allowed per --exec run before it is killed and the item failed
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub exec_timeout: f64,
    /// Seconds between heartbeats in the agent file
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub heartbeat_interval: f64,
    /// Attempts before an item is dead-lettered (an item's own max_attempts wins)
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_attempts: u32,
    /// Exit after this many items (0 = no limit)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_items: u64,
    /// Exit after this many seconds without work (0 = wait for work forever)
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub exit_when_idle: f64,
    /// Seed of the simulation's random numbers [default: from the id and the clock]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Append a line to FILE for each item this worker finished but found already completed
    /// (a duplicate execution); used by `steward demo` and tests to prove there are none
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// fsync every claim and completion before it becomes visible (survives a power loss,
    /// at a large cost in throughput); without it, writes survive any process crash
    #[arg(long)]
    pub fsync: bool,
}

/// Service time distributions for simulated work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTime {
    /// Always this many seconds.
    Const(f64),
    /// Exponential with this mean.
    Exp(f64),
    /// Uniform between the two.
    Uniform(f64, f64),
    /// Log-normal with this median and shape.
    LogNormal(f64, f64),
}

impl std::str::FromStr for ServiceTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| -> Result<f64, String> {
            let v: f64 = t.trim().parse().map_err(|_| format!("{t:?} is not a number of seconds"))?;
            if (0.0..86_400.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("{v} is out of range (0 to 86400 seconds)"))
            }
        };
        let (kind, args) = s.split_once(':').unwrap_or(("const", s));
        let parts: Vec<&str> = args.split(',').collect();
        let t = match (kind, parts.as_slice()) {
            ("const", [a]) => Self::Const(num(a)?),
            ("exp", [m]) => Self::Exp(num(m)?),
            ("uniform", [a, b]) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("uniform:{a},{b} needs the smaller bound first"));
                }
                Self::Uniform(a, b)
            }
            ("lognormal", [m, s]) => Self::LogNormal(num(m)?, num(s)?),
            _ => return Err(format!("{s:?} is not a distribution (try 0.2, exp:0.2, uniform:0.1,0.5 or lognormal:0.2,0.5)")),
        };
        Ok(t)
    }
}

/// A small, fast PRNG (SplitMix64): simulation needs no more.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

impl ServiceTime {
    /// One draw, in seconds.
    pub fn sample(self, rng: &mut Rng) -> f64 {
        match self {
            Self::Const(s) => s,
            Self::Exp(mean) => -mean * (1.0 - rng.unit()).ln(),
            Self::Uniform(a, b) => a + (b - a) * rng.unit(),
            Self::LogNormal(median, sigma) => median * (sigma * rng.normal()).exp(),
        }
    }
}

struct Worker {
    dir: PathBuf,
    id: String,
    queue: CoordinationDir,
    args: WorkerArgs,
    service: ServiceTime,
    rng: Rng,
    started_at: i64,
    processed: u64,
    failures: u64,
    duplicates: u64,
    last_beat: Option<Instant>,
    last_status: &'static str,
    phase: &'static str,
}

/// Runs the worker until stopped.
///
/// # Errors
/// Bad flags (exit 2), or the agent file cannot be written.
pub fn run(dir: &Path, args: WorkerArgs) -> Result<ExitCode> {
    let service: ServiceTime = args.service_time.parse().map_err(|e: String| UsageError(format!("--service-time: {e}")))?;
    if !(0.0..=1.0).contains(&args.fail_rate) {
        return Err(UsageError(format!("--fail-rate {} must be between 0 and 1", args.fail_rate)).into());
    }
    for (flag, v) in [("--heartbeat-interval", args.heartbeat_interval), ("--exec-timeout", args.exec_timeout)] {
        if !(v.is_finite() && v > 0.0 && v < 1e7) {
            return Err(UsageError(format!("{flag} {v} must be a positive number of seconds")).into());
        }
    }
    if !(args.exit_when_idle.is_finite() && args.exit_when_idle >= 0.0) {
        return Err(UsageError(format!("--exit-when-idle {} must be zero or more seconds", args.exit_when_idle)).into());
    }
    if !dir.is_dir() {
        return Err(UsageError(format!("the coordination directory {} does not exist", dir.display())).into());
    }
    // A handler that cannot run would fail every item into the dead letters:
    // refuse before claiming anything.
    if let Some(program) = args.exec.as_ref().and_then(|a| a.first()) {
        if !steward_actuators::process::runnable(program) {
            return Err(UsageError(format!("--exec: {program:?} is not an executable file or a program on PATH")).into());
        }
    }
    let id = args.id.clone().or_else(|| std::env::var("STEWARD_AGENT_ID").ok()).unwrap_or_else(|| format!("agent_{}", std::process::id()));
    if id.is_empty() || id.contains('/') || id.contains('\0') {
        return Err(UsageError(format!("--id {id:?} must be a plain name")).into());
    }
    let seed = args.seed.unwrap_or_else(|| {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in id.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h ^ now_ms().unsigned_abs() ^ u64::from(std::process::id())
    });
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    let mut w = Worker {
        dir: dir.to_owned(),
        queue: CoordinationDir::new(dir, args.max_attempts),
        id,
        service,
        rng: Rng::new(seed),
        started_at: now_ms(),
        processed: 0,
        failures: 0,
        duplicates: 0,
        last_beat: None,
        last_status: "idle",
        phase: "initialization",
        args,
    };
    w.beat("idle", None, true)?;
    w.phase = "active";
    let result = w.work(&stop);
    // Whatever happened, leave no agent file claiming life: the agent is gone.
    w.phase = "decommissioning";
    w.queue.remove_agent(&w.id);
    result?;
    tracing::info!(agent = %w.id, processed = w.processed, failures = w.failures, duplicates = w.duplicates, "Worker stopped.");
    Ok(ExitCode::SUCCESS)
}

impl Worker {
    fn beat(&mut self, status: &str, current: Option<&str>, force: bool) -> Result<()> {
        let every = Duration::from_secs_f64(self.args.heartbeat_interval);
        if !force && self.last_beat.is_some_and(|t| t.elapsed() < every) {
            return Ok(());
        }
        self.last_beat = Some(Instant::now());
        self.last_status = if status == "busy" { "busy" } else { "idle" };
        let body = json!({
            "id": self.id,
            "status": status,
            "heartbeat": format_rfc3339(now_ms()),
            "started_at": format_rfc3339(self.started_at),
            "pid": std::process::id(),
            "capacity": 1,
            "lifecycle": self.phase,
            "current_work": current,
            "processed": self.processed,
            "failures": self.failures,
            "duplicates": self.duplicates,
            "worker": "steward",
        });
        self.queue
            .write_agent(&self.id, &body, Durability::Visible)
            .with_context(|| format!("writing the agent file {}", self.dir.join(agent_file_name(&self.id)).display()))?;
        Ok(())
    }

    /// Ids of pending items, rotated by a random offset so workers that
    /// list at once do not all race for the same first file.
    fn pending(&mut self) -> Vec<String> {
        let mut ids = self.queue.pending();
        if !ids.is_empty() {
            let k = (self.rng.next_u64() % ids.len() as u64) as usize;
            ids.rotate_left(k);
        }
        ids
    }

    fn work(&mut self, stop: &AtomicBool) -> Result<()> {
        let mut idle_since = Instant::now();
        let mut poll = Duration::from_millis(10);
        while !stop.load(Ordering::SeqCst) {
            let ids = self.pending();
            let mut did = false;
            for id in ids {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if self.process(&id)? {
                    did = true;
                    if self.args.max_items != 0 && self.processed + self.failures >= self.args.max_items {
                        return Ok(());
                    }
                }
                self.beat("busy", None, false)?;
            }
            if did {
                idle_since = Instant::now();
                poll = Duration::from_millis(10);
                continue;
            }
            self.beat("idle", None, false)?;
            if self.args.exit_when_idle > 0.0 && idle_since.elapsed().as_secs_f64() >= self.args.exit_when_idle {
                return Ok(());
            }
            // Back off gently while idle: 10 ms up to 250 ms between listings.
            let until = Instant::now() + poll;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5).min(poll));
            }
            poll = (poll * 2).min(Duration::from_millis(250));
        }
        Ok(())
    }

    /// Claims and works one item; `Ok(false)` when another agent was faster.
    fn process(&mut self, id: &str) -> Result<bool> {
        let item = match self.queue.claim(id, &self.id, now_ms(), self.durability()).with_context(|| format!("claiming item {id}"))? {
            Claim::Lost => return Ok(false),
            Claim::AlreadyCompleted => return Ok(true),
            Claim::Poison => {
                self.failures += 1;
                return Ok(true);
            }
            Claim::Won(item) => item,
        };
        // The agent file says what the agent holds as soon as it turns busy.
        let turning_busy = self.last_status != "busy";
        self.beat("busy", Some(id), turning_busy)?;

        let started = Instant::now();
        let outcome = match self.run_item(&item) {
            Err(ItemError::Fatal(why)) => {
                // Not the item's fault: put it back as it was, uncounted, and stop.
                let _ = self.queue.release(id);
                anyhow::bail!("{why}; item {id} was put back untouched");
            }
            Err(ItemError::Failed(why)) => Err(why),
            Ok(r) => Ok(r),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok(result) => {
                let done = Finished { agent: &self.id, at: now_ms(), duration_ms, result };
                match self.queue.complete(id, item, done, self.durability()).with_context(|| format!("completing item {id}"))? {
                    Completion::Recorded => self.processed += 1,
                    Completion::Duplicate => {
                        self.duplicates += 1;
                        self.record_duplicate(id);
                        tracing::warn!(agent = %self.id, item = %id, "Item was already completed by another agent; kept the first record.");
                    }
                }
            }
            Err(why) => {
                self.failures += 1;
                match self.queue.retry(id, &why, now_ms()) {
                    Ok(ItemOutcome::Kept(reason)) => tracing::warn!(agent = %self.id, item = %id, %reason, "Failed item kept in place."),
                    Ok(_) => {}
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("returning failed item {id}"))),
                }
            }
        }
        Ok(true)
    }

    fn durability(&self) -> Durability {
        if self.args.fsync {
            Durability::Flushed
        } else {
            Durability::Visible
        }
    }

    fn record_duplicate(&self, id: &str) {
        let Some(path) = &self.args.ledger else { return };
        let line = format!("duplicate {id} {} {}\n", self.id, format_rfc3339(now_ms()));
        let written = fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(error = %e, path = %path.display(), "Could not write the ledger.");
        }
    }

    /// Works one item: `Ok(result)` on success, or why it failed.
    fn run_item(&mut self, item: &Map<String, Value>) -> Result<Option<Value>, ItemError> {
        if let Some(argv) = self.args.exec.clone() {
            return exec_item(&argv, item, Duration::from_secs_f64(self.args.exec_timeout));
        }
        let secs = self.service.sample(&mut self.rng);
        if secs > 0.0 {
            // Keep the heartbeat going through long items.
            let until = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < until {
                let left = until.saturating_duration_since(Instant::now());
                std::thread::sleep(left.min(Duration::from_secs_f64(self.args.heartbeat_interval)));
                let current = item.get("id").and_then(Value::as_str).map(str::to_owned);
                let _ = self.beat("busy", current.as_deref(), false);
            }
        }
        if self.args.fail_rate > 0.0 && self.rng.unit() < self.args.fail_rate {
            return Err(ItemError::Failed("simulated failure".into()));
        }
        Ok(None)
    }
}

/// Why an item was not done.
enum ItemError {
    /// The item failed: retry it, or dead-letter it at max_attempts.
    Failed(String),
    /// The worker cannot work any item (its handler cannot run): stop.
    Fatal(String),
}

/// Runs `argv` with the item on stdin; its stdout (JSON if it parses,
/// else text) becomes the result.
fn exec_item(argv: &[String], item: &Map<String, Value>, timeout: Duration) -> Result<Option<Value>, ItemError> {
    let Some((program, rest)) = argv.split_first() else { return Err(ItemError::Fatal("--exec needs a program".into())) };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    let input = serde_json::to_vec(item).unwrap_or_default();
    let finished = steward_actuators::process::run_with_timeout(cmd, Some(&input), false, timeout, 1 << 20)
        .map_err(|e| ItemError::Fatal(format!("cannot run {program}: {e}")))?
        .ok_or_else(|| ItemError::Failed(format!("{program} did not finish within {} s", timeout.as_secs_f64())))?;
    if !finished.status.success() {
        return Err(ItemError::Failed(format!("{program} exited with {}", finished.status)));
    }
    let out = finished.output;
    let text = String::from_utf8_lossy(&out).trim().to_owned();
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_parse_and_sample_in_range() {
        let mut rng = Rng::new(7);
        assert_eq!("0.5".parse::<ServiceTime>(), Ok(ServiceTime::Const(0.5)));
        let exp: ServiceTime = "exp:0.2".parse().unwrap();
        let mean = (0..20_000).map(|_| exp.sample(&mut rng)).sum::<f64>() / 20_000.0;
        assert!((mean - 0.2).abs() < 0.01, "{mean}");
        let u: ServiceTime = "uniform:1,2".parse().unwrap();
        assert!((0..1000).map(|_| u.sample(&mut rng)).all(|x| (1.0..2.0).contains(&x)));
        let ln: ServiceTime = "lognormal:0.2,0.5".parse().unwrap();
        let mut xs: Vec<f64> = (0..20_001).map(|_| ln.sample(&mut rng)).collect();
        xs.sort_by(f64::total_cmp);
        assert!((xs[10_000] - 0.2).abs() < 0.01, "median {}", xs[10_000]);
        for bad in ["fast", "exp:", "uniform:2,1", "const:-1", "exp:1e9", "weibull:1,2"] {
            assert!(bad.parse::<ServiceTime>().is_err(), "{bad}");
        }
    }
}
