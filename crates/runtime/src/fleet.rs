//! The fleet: what carries out scale and restart decisions. One tagged
//! config enum (`fleet.kind`) lists the built-in kinds; an embedder hands
//! in any [`Actuator`] instead.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use steward_actuators::{
    Actuator, CommandActuator, CommandConfig, Supervisor, SupervisorConfig, SupervisorContext, WebhookActuator, WebhookConfig,
};
use steward_core::config::InvalidValue;

use crate::clock::now_ms;
use crate::error::RuntimeError;

/// The fleet actuator of an engine.
pub enum Fleet {
    /// None: scale and restart decisions are journaled as skipped, saying so.
    None,
    /// Local worker processes, ticked between cycles (reaping, replacing, draining).
    Supervisor(Box<Supervisor>),
    /// Any other actuator: a command, a webhook, an embedder's own.
    Actuator(Box<dyn Actuator>),
}

/// The `fleet:` section of the config, chosen by `kind`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FleetConfig {
    /// None: scale and restart decisions are journaled as skipped.
    #[default]
    None,
    /// Local worker processes run by steward's supervisor.
    Supervisor(SupervisorConfig),
    /// A command per action (e.g. kubectl scale).
    Command(CommandConfig),
    /// A JSON POST per action.
    Webhook(WebhookConfig),
}

/// What the fleet's workers are told about items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemLimits {
    /// Attempts before an item is dead-lettered (`coordination.max_attempts`).
    pub max_attempts: u32,
    /// The largest item read (`coordination.max_item_bytes`).
    pub max_item_bytes: u64,
}

/// Creates a directory and makes its path absolute, since workers may run
/// elsewhere (`fleet.cwd`).
fn absolute(p: &Path, creating: &'static str) -> Result<PathBuf, RuntimeError> {
    fs::create_dir_all(p).map_err(RuntimeError::io(creating, p))?;
    fs::canonicalize(p).map_err(RuntimeError::io("resolving", p))
}

impl FleetConfig {
    /// Checks the chosen kind's settings.
    ///
    /// # Errors
    /// A value out of range, naming its key.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        match self {
            Self::None => Ok(()),
            Self::Supervisor(c) => c.validate(),
            Self::Command(c) => c.validate(),
            Self::Webhook(c) => c.validate(),
        }
    }

    /// Whether the fleet is local processes that need ticks between cycles.
    pub fn is_supervisor(&self) -> bool {
        matches!(self, Self::Supervisor(_))
    }

    /// Builds the fleet for the workers of `coordination_dir`. A supervisor
    /// creates both directories, records its workers in `state_dir`, adopts
    /// the live ones recorded there, and runs this executable's `worker`
    /// command unless `fleet.command` names another (a program that embeds
    /// the runtime has no `worker` command: give it `fleet.command`); items
    /// its dead workers held are requeued, or dead-lettered after
    /// `items.max_attempts`. Command and webhook fleets have nothing to start.
    ///
    /// # Errors
    /// A directory cannot be created, the executable cannot be found, or
    /// the supervisor's registry cannot be read or written.
    pub fn build(&self, coordination_dir: &Path, state_dir: &Path, items: ItemLimits) -> Result<Fleet, RuntimeError> {
        self.build_for(coordination_dir, state_dir, items, None)
    }

    /// As [`FleetConfig::build`]; with `queue`, a supervisor's workers serve
    /// that queue (`worker --queue URL`, the password in the environment)
    /// and `coordination_dir` is only where it keeps their agent files.
    ///
    /// # Errors
    /// As [`FleetConfig::build`].
    pub fn build_for(
        &self,
        coordination_dir: &Path,
        state_dir: &Path,
        items: ItemLimits,
        queue: Option<&steward_queue::QueueUrl>,
    ) -> Result<Fleet, RuntimeError> {
        Ok(match self {
            Self::None => Fleet::None,
            Self::Supervisor(cfg) => {
                let scx = SupervisorContext {
                    coordination_dir: absolute(coordination_dir, "creating the coordination directory")?,
                    state_dir: absolute(state_dir, "creating the state directory")?,
                    exe: std::env::current_exe().map_err(RuntimeError::Executable)?,
                    max_attempts: items.max_attempts,
                    max_item_bytes: items.max_item_bytes,
                    queue: queue.map(|q| {
                        let (url, secret) = q.without_password();
                        steward_actuators::QueueWorkers { url, secret }
                    }),
                };
                Fleet::Supervisor(Box::new(Supervisor::new(cfg.clone(), scx, now_ms()).map_err(RuntimeError::Fleet)?))
            }
            Self::Command(cfg) => Fleet::Actuator(Box::new(CommandActuator::new(cfg.clone()))),
            Self::Webhook(cfg) => Fleet::Actuator(Box::new(WebhookActuator::new(cfg.clone()))),
        })
    }
}

/// Why an action could not reach an actuator, in the words the journal keeps.
pub(crate) fn unhandled(fleet: &Fleet) -> String {
    match fleet {
        Fleet::None => "no fleet actuator configured".into(),
        Fleet::Supervisor(_) => "the supervisor does not handle this action".into(),
        Fleet::Actuator(a) => format!("the {} actuator has nothing configured for this action", a.name()),
    }
}
