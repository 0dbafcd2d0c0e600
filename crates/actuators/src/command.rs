//! The command actuator: scales (and restarts) by running the user's argv
//! template, e.g. `["kubectl", "scale", "deploy/x", "--replicas={target}"]`.
//! Never through a shell; placeholders are replaced inside each argument.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_core::config::{duration, InvalidValue};
use steward_core::decision::Action;
use steward_core::time::UnixMs;

use crate::actuator::{Actuator, ActuatorError};

/// The `fleet:` section when `kind: command`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Argv run to scale; `{target}` and `{current}` are replaced, e.g.
    /// `["kubectl", "scale", "deploy/workers", "--replicas={target}"]`.
    pub scale: Vec<String>,
    /// Argv run once per agent to restart it; `{agent}` is replaced. Optional.
    #[serde(default)]
    pub restart: Vec<String>,
    /// Longest a command may run before it is killed and the action failed. Default 30s.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Environment variables added for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl CommandConfig {
    /// Checks the config before anything runs.
    ///
    /// # Errors
    /// The first key that is wrong.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.scale.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(InvalidValue { key: "fleet.scale".into(), message: "needs an argv whose first element names a program".into() });
        }
        if !self.scale.iter().any(|a| a.contains("{target}")) {
            return Err(InvalidValue {
                key: "fleet.scale".into(),
                message: "must contain {target} somewhere, or it cannot set the size".into(),
            });
        }
        if self.timeout.is_zero() {
            return Err(InvalidValue { key: "fleet.timeout".into(), message: "must be above zero".into() });
        }
        Ok(())
    }
}

/// Runs commands to change the fleet.
pub struct CommandActuator {
    cfg: CommandConfig,
}

impl CommandActuator {
    /// An actuator running `cfg`'s commands.
    pub fn new(cfg: CommandConfig) -> Self {
        Self { cfg }
    }
}

/// Runs argv with a timeout; returns the combined output's tail.
///
/// # Errors
/// The program cannot start, times out, or exits non-zero.
pub fn run_argv(argv: &[String], env: &BTreeMap<String, String>, timeout: Duration) -> Result<String, ActuatorError> {
    let Some((program, rest)) = argv.split_first() else { return Err(ActuatorError::Refused("empty command".into())) };
    let mut cmd = Command::new(program);
    cmd.args(rest).envs(env);
    let finished = crate::process::run_with_timeout(cmd, None, true, timeout, 64 * 1024)
        .map_err(|source| ActuatorError::Io { op: "run", path: program.into(), source })?
        .ok_or_else(|| ActuatorError::Refused(format!("{program} did not finish within {} s; killed", timeout.as_secs_f64())))?;
    let status = finished.status;
    let output = finished.output().trim().to_owned();
    let tail: String = output.chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
    if status.success() {
        Ok(format!("{} exited 0{}", argv.join(" "), if tail.is_empty() { String::new() } else { format!(": {tail}") }))
    } else {
        Err(ActuatorError::Refused(format!("{} exited with {status}: {tail}", argv.join(" "))))
    }
}

impl Actuator for CommandActuator {
    fn name(&self) -> &'static str {
        "command"
    }

    fn handles(&self, action: &Action) -> bool {
        match action {
            Action::Scale { .. } => true,
            Action::Restart { .. } => !self.cfg.restart.is_empty(),
            _ => false,
        }
    }

    fn apply(&mut self, action: &Action, _now: UnixMs) -> Result<String, ActuatorError> {
        match action {
            Action::Scale { from, to } => {
                let argv: Vec<String> =
                    self.cfg.scale.iter().map(|a| a.replace("{target}", &to.to_string()).replace("{current}", &from.to_string())).collect();
                run_argv(&argv, &self.cfg.env, self.cfg.timeout)
            }
            Action::Restart { agents } if !self.cfg.restart.is_empty() => {
                let mut done = Vec::new();
                for agent in agents {
                    let argv: Vec<String> = self.cfg.restart.iter().map(|a| a.replace("{agent}", agent)).collect();
                    done.push(run_argv(&argv, &self.cfg.env, self.cfg.timeout)?);
                }
                Ok(done.join("; "))
            }
            other => Err(ActuatorError::Unsupported { actuator: "command", action: crate::actuator::action_kind(other) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(scale: &[&str]) -> CommandConfig {
        CommandConfig {
            scale: scale.iter().map(|s| (*s).to_owned()).collect(),
            restart: vec![],
            timeout: Duration::from_secs(5),
            env: BTreeMap::new(),
        }
    }

    #[test]
    fn runs_the_template_with_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("replicas");
        let script = format!("echo $0 > {}", out.display());
        let mut act = CommandActuator::new(cfg(&["sh", "-c", &script, "{target}"]));
        let r = act.apply(&Action::Scale { from: 2, to: 5 }, 0).unwrap();
        assert!(r.contains("exited 0"), "{r}");
        assert_eq!(std::fs::read_to_string(out).unwrap().trim(), "5");
    }

    #[test]
    fn failures_and_timeouts_are_errors_with_output() {
        let mut act = CommandActuator::new(cfg(&["sh", "-c", "echo no such deployment >&2; exit 3", "{target}"]));
        let e = act.apply(&Action::Scale { from: 2, to: 5 }, 0).unwrap_err().to_string();
        assert!(e.contains("no such deployment") && e.contains('3'), "{e}");
        let mut slow = cfg(&["sleep", "10", "{target}"]);
        slow.timeout = Duration::from_millis(200);
        let started = std::time::Instant::now();
        assert!(CommandActuator::new(slow).apply(&Action::Scale { from: 1, to: 2 }, 0).is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn config_needs_a_target_placeholder() {
        assert_eq!(cfg(&["kubectl", "scale"]).validate().unwrap_err().key, "fleet.scale");
        assert!(cfg(&["kubectl", "scale", "--replicas={target}"]).validate().is_ok());
    }
}
