//! Builds the engine from the loaded config: the coordination source, the
//! configured policy, the coordination actuator, the fleet, the journal in
//! the state directory, the lock in the coordination directory, and span
//! export from the environment.

use steward_actuators::CoordinationActuator;
use steward_runtime::otel::Exporter;
use steward_runtime::{Engine, ItemLimits, RuntimeError};
use steward_sources::CoordinationSource;

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
    let (dir, state_dir) = (cfg.coordination.dir.clone(), cfg.state_dir());
    let items = ItemLimits { max_attempts: cfg.coordination.max_attempts, max_item_bytes: cfg.coordination.max_item_bytes };
    let mut builder = Engine::builder(cfg.engine())
        .source(CoordinationSource::new(cfg.coordination.clone()))
        .actuator(CoordinationActuator::new(&dir, items.max_attempts).with_max_item_bytes(items.max_item_bytes))
        .state_dir(&state_dir)
        .lock_dir(&dir)
        // The journal records which directory it belongs to, by its real path.
        .owner(std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone()).display().to_string())
        .telemetry_window(cfg.coordination.telemetry_window)
        .journal_settings(cfg.journal.settings(actor))
        .incidents(
            steward_runtime::incidents::Desk::from_config(cfg.incidents.clone(), &cfg.notify)
                .map_err(|e| RuntimeError::BadSetting(format!("{}: {}", e.key, e.message)))?,
        );
    builder = if cfg.fleet.is_supervisor() {
        // Built on first use, so commands that only look never start or
        // adopt workers; the loop's first tick adopts them.
        let fleet = cfg.fleet.clone();
        builder.fleet_with(move || fleet.build(&dir, &state_dir, items))
    } else {
        // A command or a webhook has nothing to start: build it now.
        builder.fleet(cfg.fleet.build(&dir, &state_dir, items)?)
    };
    if let Some(exporter) = Exporter::from_env() {
        builder = builder.exporter(exporter);
    }
    builder.build()
}
