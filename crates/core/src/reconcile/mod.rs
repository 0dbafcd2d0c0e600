//! Reconciliation (spec/reconcile.md): what SHOULD exist in a data lake
//! (datasets of keys expanded from templates over partitions), what DOES
//! (an inventory listing), the gaps between them, and their priority.
//!
//! Pure, like the rest of the core: the listing comes in as entries, time
//! as an argument; the inventory, the task queue and the collectors live
//! in the crates above.

pub mod spec;
pub mod template;

pub use spec::{
    compile_all, Coverage, Dataset, DatasetConfig, DatesConfig, GapKind, InventoryConfig, OrchestratorConfig, Priority, PriorityRule,
    SpecError,
};
