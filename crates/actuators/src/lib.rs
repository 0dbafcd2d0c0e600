//! Actuators apply [`Action`](steward_core::decision::Action)s to the world.
//!
//! **Architecture invariant:** actuators are only called by the executor,
//! after guards and after the decision is journaled. An actuator is
//! idempotent: applying an action whose effect already holds is a no-op.

#![warn(missing_docs)]

mod actuator;
pub mod command;
pub mod coordination;
pub mod http;
pub mod process;
pub mod supervisor;
pub mod webhook;

pub use actuator::{action_kind, error_chain, Actuator, ActuatorError};
pub use command::{CommandActuator, CommandConfig};
pub use coordination::CoordinationActuator;
pub use supervisor::{Supervisor, SupervisorConfig, SupervisorContext};
pub use webhook::{WebhookActuator, WebhookConfig};
