//! A queue of fixed depth and a replica count: the smallest source and
//! fleet actuator an engine test needs (shared with `#[path]`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use steward_actuators::{Actuator, ActuatorError};
use steward_core::decision::Action;
use steward_core::snapshot::Snapshot;
use steward_core::time::UnixMs;
use steward_sources::{Source, SourceError};

/// A queue that always holds `0` items.
pub struct Queue(pub u64);

impl Source for Queue {
    fn target(&self) -> String {
        "a test queue".into()
    }
    fn snapshot(&self, now: UnixMs) -> Result<Snapshot, SourceError> {
        Ok(Snapshot { taken_at: now, target_exists: true, work_queue_size: self.0, ..Snapshot::default() })
    }
}

/// A fleet that is a number: scale actions set it.
pub struct Replicas(pub Arc<AtomicU32>);

impl Actuator for Replicas {
    fn name(&self) -> &'static str {
        "replicas"
    }
    fn handles(&self, action: &Action) -> bool {
        matches!(action, Action::Scale { .. })
    }
    fn apply(&mut self, action: &Action, _now: UnixMs) -> Result<String, ActuatorError> {
        if let Action::Scale { to, .. } = action {
            self.0.store(*to, Ordering::SeqCst);
        }
        Ok("scaled".into())
    }
}
