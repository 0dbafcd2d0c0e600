//! The `fleet:` section when `kind: supervisor`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_core::config::{duration, InvalidValue};

/// How the supervisor runs workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    /// The worker's argv, never run through a shell. `{agent_id}` and
    /// `{coordination}` are replaced in each argument. Empty (the default)
    /// runs the built-in `steward worker`.
    #[serde(default)]
    pub command: Vec<String>,
    /// Extra arguments for the built-in worker, e.g. `["--service-time", "exp:0.2"]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables added for each worker (`STEWARD_AGENT_ID` and
    /// `STEWARD_COORDINATION` are always set).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the workers. Default: steward's own.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// How long a stopping worker may take to finish its current item
    /// after SIGTERM before it is killed. Default 30s.
    #[serde(default = "default_drain_timeout", with = "duration")]
    pub drain_timeout: Duration,
    /// Leave workers running when steward stops (they are adopted on the
    /// next start). Default false: workers stop with steward.
    #[serde(default)]
    pub detach: bool,
    /// First delay before replacing a crashed worker; doubles with each
    /// crash inside `crash_window`. Default 1s.
    #[serde(default = "default_restart_backoff", with = "duration")]
    pub restart_backoff: Duration,
    /// Longest delay between replacements. Default 60s.
    #[serde(default = "default_restart_backoff_max", with = "duration")]
    pub restart_backoff_max: Duration,
    /// Crashes inside `crash_window` that make a crash loop: replacements
    /// stop until the window has passed. Default 5.
    #[serde(default = "default_crash_loop")]
    pub crash_loop: u32,
    /// The window crashes are counted in. Default 60s.
    #[serde(default = "default_crash_window", with = "duration")]
    pub crash_window: Duration,
    /// How often workers report a heartbeat (passed to the built-in worker;
    /// the supervisor writes it for workers that keep no agent file). Default 2s.
    #[serde(default = "default_heartbeat_interval", with = "duration")]
    pub heartbeat_interval: Duration,
    /// Who writes the agent files: `worker` (the built-in worker does),
    /// `supervisor` (for commands that keep none), or `auto` (the default:
    /// `worker` for the built-in worker, `supervisor` for a command).
    #[serde(default)]
    pub agent_files: AgentFiles,
}

/// Who writes a worker's agent file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentFiles {
    /// `worker` for the built-in worker, `supervisor` for a command.
    #[default]
    Auto,
    /// The worker writes its own.
    Worker,
    /// The supervisor writes it for the worker.
    Supervisor,
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_restart_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_restart_backoff_max() -> Duration {
    Duration::from_secs(60)
}
fn default_crash_loop() -> u32 {
    5
}
fn default_crash_window() -> Duration {
    Duration::from_secs(60)
}
fn default_heartbeat_interval() -> Duration {
    Duration::from_secs(2)
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            drain_timeout: default_drain_timeout(),
            detach: false,
            restart_backoff: default_restart_backoff(),
            restart_backoff_max: default_restart_backoff_max(),
            crash_loop: default_crash_loop(),
            crash_window: default_crash_window(),
            heartbeat_interval: default_heartbeat_interval(),
            agent_files: AgentFiles::Auto,
        }
    }
}

impl SupervisorConfig {
    /// Checks the config before anything starts.
    ///
    /// # Errors
    /// The first key that is out of range.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let bad = |key: &str, message: &str| Err(InvalidValue { key: format!("fleet.{key}"), message: message.into() });
        if self.command.first().is_some_and(|c| c.trim().is_empty()) {
            return bad("command", "the first element must name a program");
        }
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval", "must be above zero");
        }
        if self.crash_loop == 0 {
            return bad("crash_loop", "must be at least 1");
        }
        if self.restart_backoff > self.restart_backoff_max {
            return bad("restart_backoff", "must not exceed restart_backoff_max");
        }
        if self.env.keys().any(|k| k.is_empty() || k.contains('=') || k.contains('\0')) {
            return bad("env", "variable names must be non-empty and contain no '=' or NUL");
        }
        Ok(())
    }

    /// Whether the supervisor writes the agent files.
    pub fn supervisor_writes_agent_files(&self) -> bool {
        match self.agent_files {
            AgentFiles::Auto => !self.command.is_empty(),
            AgentFiles::Worker => false,
            AgentFiles::Supervisor => true,
        }
    }
}
