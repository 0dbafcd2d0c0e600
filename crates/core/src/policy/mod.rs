//! Policies turn an assessment into proposals.
//!
//! A policy is a pure function of (assessment, history, config): the same
//! inputs give the same proposals. It owns no scheduling and no I/O.

mod adaptive;
mod classic;

pub use adaptive::{current_summary, estimate_rates, maintenance_proposals, Adaptive, Rates};
pub use classic::Classic;

use crate::assess::Assessment;
use crate::config::{EngineConfig, PolicyName};
use crate::decision::Proposal;
use crate::history::History;

/// What a policy recommends for one cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Proposals, highest priority first.
    pub proposals: Vec<Proposal>,
    /// The agent count the policy would like, if it sized the fleet this
    /// cycle (recorded so stabilization can look back at recommendations).
    pub recommended_agents: Option<u32>,
}

/// A decision policy.
pub trait Policy {
    /// The policy's name, as `--policy` takes it.
    fn name(&self) -> &'static str;
    /// Proposes decisions for an assessment.
    fn plan(&self, assessment: &Assessment, history: &History, cfg: &EngineConfig) -> Plan;
}

/// A boxed policy is a policy (so `policy::builtin(..)` can be handed on
/// wherever a policy is taken).
impl<P: Policy + ?Sized> Policy for Box<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn plan(&self, assessment: &Assessment, history: &History, cfg: &EngineConfig) -> Plan {
        (**self).plan(assessment, history, cfg)
    }
}

/// The built-in policy of that name.
pub fn builtin(name: PolicyName) -> Box<dyn Policy + Send + Sync> {
    match name {
        PolicyName::Adaptive => Box::new(Adaptive),
        PolicyName::Classic => Box::new(Classic),
    }
}

/// Agent counts as u32 (a fleet beyond u32 is not a real fleet).
pub(crate) fn agents_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
