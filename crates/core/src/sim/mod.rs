//! Simulation (`steward simulate`): a discrete-event simulation of a work
//! queue served by a fleet of agents, driven by a controller that decides
//! the fleet's size, on a trace of real arrivals.
//!
//! The controllers are the autoscalers people compare steward with: the
//! Kubernetes HPA on a queue metric, KEDA, and the offline oracle; and
//! steward's own policies, run through the same [`crate::analyze`] and
//! [`crate::guard::apply`] the loop runs (there is no second copy of any
//! policy). The simulated clock is the only clock: like the rest of the
//! core, nothing here reads a clock or a file, so a run is a pure
//! function of the trace, the config and the seed.
//!
//! The model:
//! - each trace row's count of arrivals is spread evenly over its interval;
//! - service times are drawn from a distribution, per item, from a seeded
//!   generator (so every controller sees the same items);
//! - the queue is first come, first served; an agent works one item at a time;
//! - a new agent serves `startup` seconds after it is asked for, and costs
//!   from the moment it is asked for; an agent asked to stop finishes its
//!   item first (a scale-down never interrupts work), and costs until then;
//! - the wait of an item is from its arrival to the start of its service;
//!   it meets the SLA when that wait is at most `sla`.

mod dist;
mod engine;
mod hpa;
mod oracle;
mod steward;

pub use dist::{Rng, ServiceTime};
pub use engine::{simulate, simulate_with_progress, Controller, Observation, Point, Report, SimConfig, Trace};
pub use hpa::{Hpa, HpaConfig, KedaConfig};
pub use oracle::{best as oracle, Oracle};
pub use steward::Steward;
