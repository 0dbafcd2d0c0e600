//! steward's loop as a library: the cycle, the driver, the target lock,
//! rollback, span export, the daemon's control surface and the built-in
//! worker, with every part handed in by the caller.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use std::time::Duration;
//!
//! use steward_core::config::EngineConfig;
//! use steward_runtime::{drive, DriveOptions, Engine, Next};
//! use steward_sources::{CoordinationConfig, CoordinationSource};
//!
//! # fn main() -> Result<(), steward_runtime::RuntimeError> {
//! let source = CoordinationSource::new(CoordinationConfig::default());
//! let engine = Engine::builder(EngineConfig::default()).source(source).state_dir("./.steward").build()?;
//! let opts = DriveOptions { interval: Duration::from_secs(30), max_cycles: 3, dry_run: true, tick_every: Duration::from_millis(200) };
//! drive(&engine, &opts, &AtomicBool::new(false), |report| {
//!     if let Ok(r) = report {
//!         println!("{} health {:.2}", r.cycle_id, r.metrics.health_score);
//!     }
//!     Next::Continue
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! Where things go: a new way to observe the world is a
//! [`Source`](steward_sources::Source) (the `sources` crate, or your own
//! type), a new way to decide is a [`Policy`](steward_core::policy::Policy),
//! a new way to change the world is an
//! [`Actuator`](steward_actuators::Actuator) (or a [`Fleet`] for scaling),
//! and a new daemon component (reconciler, incidents, leadership) is a
//! module here with an entry in [`EngineControl`]'s health.
//!
//! **Invariants**, kept here:
//! - nothing is executed before it is journaled: a cycle writes itself and
//!   every decision with its guard verdict, then acts, then writes each
//!   outcome; a failed journal write stops the cycle before any action;
//! - one executor per target: acting needs the [`TargetLock`], which the
//!   loop and the daemon hold for their whole life; inside a process a
//!   cycle gate keeps two cycles (loop and HTTP) from overlapping;
//! - no clap, no printing to stdout, no process exit: errors are
//!   [`RuntimeError`] and [`WorkerError`](worker::WorkerError), and the
//!   caller decides what they mean for a process.

#![warn(missing_docs)]

mod clock;
mod control;
mod driver;
mod engine;
mod error;
mod fleet;
pub mod ha;
pub mod incidents;
mod lock;
pub mod notify;
pub mod otel;
pub mod predict;
mod report;
mod rollback;
pub mod source;
pub mod worker;

pub use clock::{cycle_id, now_ms};
pub use control::{CycleObserver, EngineControl, Extras};
pub use driver::{drive, drive_with, DriveOptions, Next};
pub use engine::{Engine, EngineBuilder, JournalSettings};
pub use error::{error_chain, RuntimeError};
pub use fleet::{Fleet, FleetConfig, ItemLimits};
pub use lock::{TargetLock, LOCK_FILE};
pub use report::{CycleReport, Executed, Failed, RollbackReport, RunOptions, Skipped};
pub use source::{SourceConfig, SourceKind};
/// A journaled decision with its verdict and outcome, as [`Engine::recent_decisions`] returns it.
pub use steward_store::DecisionEntry;
