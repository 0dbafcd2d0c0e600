//! steward's self-healing data collection (spec/reconcile.md): the
//! inventory of a lake, reconciliation of what should exist with what
//! does into a queue of tasks, and the orchestrator that runs collectors
//! for them and checks that they worked.

#![warn(missing_docs)]

pub mod inventory;
pub mod orchestrate;
pub mod scan;
pub mod service;

pub use inventory::{Entry, Inventory, InventoryError};
pub use orchestrate::{Event, Orchestrator, RunOptions, Summary};
pub use scan::{reconcile, Listing, ReconcileError, Report};
pub use service::{Board, Service, ServiceConfig};
