//! Actuators apply [`Action`](steward_core::decision::Action)s to the world.
//!
//! **Architecture invariant:** actuators are only called by the executor,
//! after guards and after the decision is journaled. An actuator is
//! idempotent: applying an action whose effect already holds is a no-op.

#![warn(missing_docs)]

mod actuator;
pub mod command;
pub mod coordination;
pub mod process;
pub mod queue;
pub mod supervisor;
pub mod webhook;

/// The small HTTP/1.1 client, now its own crate (`steward-http`); kept
/// here so that `steward_actuators::http` still names it.
pub use steward_http as http;

pub use actuator::{action_kind, error_chain, Actuator, ActuatorError};
pub use command::{CommandActuator, CommandConfig};
pub use coordination::CoordinationActuator;
pub use queue::QueueActuator;
pub use supervisor::{QueueWorkers, Supervisor, SupervisorConfig, SupervisorContext};
pub use webhook::{WebhookActuator, WebhookConfig};
