//! Sources build [`Snapshot`](steward_core::snapshot::Snapshot)s from the world.
//!
//! **Architecture invariant:** a source only reads. It never calls an
//! actuator and never changes what it observes.

#![warn(missing_docs)]

pub mod coordination;
pub mod prometheus;
pub mod queue;
mod source;

pub use coordination::{CoordinationConfig, CoordinationSource};
pub use prometheus::{PrometheusConfig, PrometheusError, PrometheusQueries, PrometheusSource};
pub use queue::QueueSource;
pub use source::{Source, SourceError};
