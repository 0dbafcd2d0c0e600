//! Builds the engine from the loaded config: the source (the coordination
//! directory, a queue, or Prometheus), the configured policy, the actuator
//! that repairs claims, the fleet, the journal in the state directory, the
//! lock (in the coordination directory, else the state directory), and
//! span export from the environment.

use steward_actuators::{CoordinationActuator, QueueActuator};
use steward_queue::postgres::PgQueue;
use steward_queue::QueueUrl;
use steward_runtime::ha::Leadership;
use steward_runtime::otel::Exporter;
use steward_runtime::{Engine, ItemLimits, RuntimeError, SourceKind};
use steward_sources::{CoordinationSource, PrometheusSource, QueueSource};

use crate::config::Config;

/// The engine for a command that the loop runs (actor `loop` in the audit trail).
///
/// # Errors
/// Never for a validated config; the builder's checks are kept anyway.
pub fn engine(cfg: &Config) -> Result<Engine, RuntimeError> {
    engine_as(cfg, "loop")
}

/// The engine, recording `actor` (e.g. `cli:alice`) in the audit trail.
///
/// # Errors
/// As [`engine`].
pub fn engine_as(cfg: &Config, actor: &str) -> Result<Engine, RuntimeError> {
    let (mut dir, state_dir) = (cfg.coordination.dir.clone(), cfg.state_dir());
    let items = ItemLimits { max_attempts: cfg.coordination.max_attempts, max_item_bytes: cfg.coordination.max_item_bytes };
    let kind = cfg.source.kind().map_err(|e| RuntimeError::BadSetting(format!("{}: {}", e.key, e.message)))?;
    let mut builder = Engine::builder(cfg.engine());
    let mut queue = None;
    let kind_target = kind.public_target();
    match kind {
        SourceKind::Coordination(_) => {
            builder = builder
                .source(CoordinationSource::new(cfg.coordination.clone()))
                .actuator(CoordinationActuator::new(&dir, items.max_attempts).with_max_item_bytes(items.max_item_bytes))
                .lock_dir(&dir)
                // The journal records which directory it belongs to, by its real path.
                .owner(std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone()).display().to_string())
                .telemetry_window(cfg.coordination.telemetry_window);
        }
        SourceKind::Queue { url, queries } => {
            let timeout = cfg.source.timeout;
            let open = || -> Box<dyn steward_queue::WorkQueue> {
                match &url {
                    QueueUrl::Postgres(p) => Box::new(PgQueue::new(p.clone(), timeout).with_queries(queries.clone())),
                    QueueUrl::Redis(_) => steward_queue::open(&url, timeout),
                }
            };
            let liveness = cfg.coordination.liveness();
            // A claim is taken back only while it is still as stale as the
            // snapshot saw it: idle for the shorter of the two TTLs.
            let min_idle = match (liveness.agent_ttl.is_zero(), liveness.claim_ttl.is_zero()) {
                (true, _) => liveness.claim_ttl,
                (_, true) => liveness.agent_ttl,
                _ => liveness.agent_ttl.min(liveness.claim_ttl),
            };
            builder = builder
                .source(QueueSource::from_queue(open()).with_max_claims(cfg.source.max_claims).with_agent_ttl(liveness.agent_ttl))
                .actuator(QueueActuator::from_queue(open(), items.max_attempts, min_idle))
                .owner(kind_target.clone().unwrap_or_default());
            // A supervisor keeps its workers' agent files in the state directory.
            dir = state_dir.join("workers");
            queue = Some(url);
        }
        SourceKind::Prometheus(p) => {
            builder = builder.source(PrometheusSource::new(p.clone())).owner(kind_target.clone().unwrap_or_default());
            dir = state_dir.join("workers");
        }
    }
    let mut builder = builder.state_dir(&state_dir).journal(cfg.journal()).journal_settings(cfg.journal.settings(actor)).incidents(
        steward_runtime::incidents::Desk::from_config(cfg.incidents.clone(), &cfg.notify)
            .map_err(|e| RuntimeError::BadSetting(format!("{}: {}", e.key, e.message)))?,
    );
    builder = if cfg.fleet.is_supervisor() {
        // Built on first use, so commands that only look never start or
        // adopt workers; the loop's first tick adopts them.
        let fleet = cfg.fleet.clone();
        builder.fleet_with(move || fleet.build_for(&dir, &state_dir, items, queue.as_ref()))
    } else {
        // A command or a webhook has nothing to start: build it now.
        builder.fleet(cfg.fleet.build_for(&dir, &state_dir, items, queue.as_ref())?)
    };
    let ha = cfg.ha();
    if ha.url.is_some() {
        // ha.name is required with ha.url (checked when the config loads).
        let leadership = Leadership::new(&ha, "", Leadership::holder_id()).map_err(RuntimeError::BadSetting)?;
        builder = builder.leadership(leadership);
    }
    if let Some(exporter) = Exporter::from_env() {
        builder = builder.exporter(exporter);
    }
    builder.build()
}
