//! The `coordination:` section of the config.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_core::config::{duration, InvalidValue, LivenessConfig};

/// Where the coordination directory is and how its files are judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinationConfig {
    /// The coordination directory. Default `./coordination` (flag `--coordination`, env `STEWARD_COORDINATION`).
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// An agent whose last heartbeat (or file mtime) is older than this is not active;
    /// 0 counts every agent file, as tools that count names do. Default 300s.
    #[serde(default = "default_agent_ttl", with = "duration")]
    pub agent_ttl: Duration,
    /// A claim older than this is stale and gets requeued. Default 600s.
    #[serde(default = "default_claim_ttl", with = "duration")]
    pub claim_ttl: Duration,
    /// Attempts after which a work item is dead-lettered (`failed_<id>.json`)
    /// instead of requeued, unless the item sets its own `max_attempts`. Default 3.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Telemetry records dated within this window (by their own `timestamp`,
    /// else the file's mtime) feed `error_rate` and `response_time_ms`;
    /// spans received over OTLP count into the telemetry volume for as long.
    /// Default 15m.
    #[serde(default = "default_telemetry_window", with = "duration")]
    pub telemetry_window: Duration,
    /// Telemetry files read per cycle for those means: the ones with the
    /// greatest names in natural order (the newest, for names by sequence or
    /// time), so a cycle's cost does not grow with history. Default 100.
    #[serde(default = "default_telemetry_sample")]
    pub telemetry_sample: u32,
    /// Create the directory when it does not exist (flag `--create`); without
    /// it, a directory that does not exist is an error, so a mistyped path
    /// is caught instead of scored as an empty system. Default false.
    #[serde(default)]
    pub create: bool,
    /// Threads that read agent and claim files (0 = one per core). Default 0.
    #[serde(default)]
    pub read_threads: u32,
    /// The largest file read from the directory (an item, an agent or
    /// telemetry record), in bytes: a larger record is ignored with a
    /// warning, a larger item dead-lettered with the reason. Default 1048576.
    #[serde(default = "default_max_item_bytes")]
    pub max_item_bytes: u64,
}

fn default_dir() -> PathBuf {
    PathBuf::from("./coordination")
}
fn default_agent_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_claim_ttl() -> Duration {
    Duration::from_secs(600)
}
fn default_max_attempts() -> u32 {
    3
}
fn default_telemetry_window() -> Duration {
    Duration::from_secs(900)
}
fn default_max_item_bytes() -> u64 {
    steward_protocol::DEFAULT_MAX_ITEM_BYTES
}
fn default_telemetry_sample() -> u32 {
    100
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        Self {
            dir: default_dir(),
            agent_ttl: default_agent_ttl(),
            claim_ttl: default_claim_ttl(),
            max_attempts: default_max_attempts(),
            telemetry_window: default_telemetry_window(),
            telemetry_sample: default_telemetry_sample(),
            create: false,
            read_threads: 0,
            max_item_bytes: default_max_item_bytes(),
        }
    }
}

impl CoordinationConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// The first key whose value is out of range.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.max_attempts == 0 {
            return Err(InvalidValue { key: "coordination.max_attempts".into(), message: "must be at least 1".into() });
        }
        if self.claim_ttl.is_zero() {
            return Err(InvalidValue { key: "coordination.claim_ttl".into(), message: "must be above zero".into() });
        }
        if !(1024..=1 << 40).contains(&self.max_item_bytes) {
            return Err(InvalidValue {
                key: "coordination.max_item_bytes".into(),
                message: format!("{} must be between 1024 bytes and 1 TiB", self.max_item_bytes),
            });
        }
        if self.read_threads > 64 {
            return Err(InvalidValue {
                key: "coordination.read_threads".into(),
                message: format!("{} threads is more than makes sense (0 = one per core)", self.read_threads),
            });
        }
        Ok(())
    }

    /// The liveness part, as the core needs it.
    pub fn liveness(&self) -> LivenessConfig {
        LivenessConfig { agent_ttl: self.agent_ttl, claim_ttl: self.claim_ttl, max_attempts: self.max_attempts }
    }
}
