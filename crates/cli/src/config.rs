//! `steward.yaml`, environment overrides and flags, in layers.
//!
//! Precedence: flag > env > config file > default. The raw layers are
//! merged as a JSON tree, then deserialized into [`Config`] in one go, so
//! an error names the dotted key and where its value came from (the file,
//! or the environment variable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use steward_core::config::{AdaptiveConfig, AutoConfig, CostConfig, EngineConfig, HealthConfig, InvalidValue, Ownership, PredictConfig};
use steward_core::reconcile::{compile_all, DatasetConfig, InventoryConfig, OrchestratorConfig};
use steward_runtime::{FleetConfig, SourceKind};
use steward_server::ServerConfig;
use steward_sources::CoordinationConfig;

/// The example config, with every key, its default and its meaning.
pub const EXAMPLE: &str = include_str!("../steward.example.yaml");

/// The default config file, read when present and no `--config` is given.
pub const DEFAULT_FILE: &str = "steward.yaml";

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What the loop watches, by URL (default: the coordination directory).
    #[serde(default)]
    pub source: steward_runtime::SourceConfig,
    /// The coordination directory and how its files are judged.
    #[serde(default)]
    pub coordination: CoordinationConfig,
    /// Where steward keeps its own state.
    #[serde(default)]
    pub state: StateConfig,
    /// High availability: replicas share a lease on PostgreSQL; one acts.
    #[serde(default)]
    pub ha: steward_runtime::ha::HaConfig,
    /// Health score weights and targets.
    #[serde(default)]
    pub health: HealthConfig,
    /// Policy and guards.
    #[serde(default)]
    pub auto: AutoConfig,
    /// Adaptive policy sizing.
    #[serde(default)]
    pub adaptive: AdaptiveConfig,
    /// What carries out scale and restart decisions.
    #[serde(default)]
    pub fleet: FleetConfig,
    /// Failure prediction from agent metrics.
    #[serde(default)]
    pub predict: PredictConfig,
    /// Prices for `steward cost`.
    #[serde(default)]
    pub cost: CostConfig,
    /// The daemon's HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// The daemon's log file.
    #[serde(default)]
    pub logs: LogsConfig,
    /// The journal's audit chain and retention.
    #[serde(default)]
    pub journal: JournalConfig,
    /// Incident rules and lifecycle timing.
    #[serde(default)]
    pub incidents: steward_core::incident::IncidentConfig,
    /// Where incidents are sent: Alertmanager and webhooks.
    #[serde(default)]
    pub notify: steward_runtime::notify::NotifyConfig,
    /// The data lake reconciliation reads.
    #[serde(default)]
    pub inventory: InventoryConfig,
    /// What the lake should hold: datasets of keys and their collectors.
    #[serde(default)]
    pub datasets: Vec<DatasetConfig>,
    /// How collectors run, and the daemon's reconciliation schedule.
    #[serde(default)]
    pub orchestrator: OrchestratorConfig,
    /// Where relative paths of collectors are resolved (the config file's
    /// directory); not a key.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// The `logs:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// Size at which the daemon's log file is rotated, in bytes. Default 100 MB.
    #[serde(default = "default_log_size")]
    pub max_size: u64,
    /// Rotated generations kept (steward.log.1 ... .N). Default 5.
    #[serde(default = "default_log_keep")]
    pub keep: u32,
}

fn default_log_size() -> u64 {
    100_000_000
}
fn default_log_keep() -> u32 {
    5
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self { max_size: default_log_size(), keep: default_log_keep() }
    }
}

/// The `journal:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Sign every decision, action, outcome, rollback, config change and manual command into the audit chain. Default true.
    #[serde(default = "default_true")]
    pub audit: bool,
    /// Cycles, metric samples and finished tasks older than this are removed (decisions, incidents and audit records stay). Default 30d.
    #[serde(default = "default_retain", with = "steward_core::config::duration")]
    pub retain: std::time::Duration,
    /// Audit records older than this are removed, leaving a signed checkpoint; 0 keeps them all. Default 0.
    #[serde(default, with = "steward_core::config::duration")]
    pub retain_audit: std::time::Duration,
}

fn default_true() -> bool {
    true
}
fn default_retain() -> std::time::Duration {
    std::time::Duration::from_secs(30 * 86_400)
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self { audit: true, retain: default_retain(), retain_audit: std::time::Duration::ZERO }
    }
}

impl JournalConfig {
    /// The runtime's settings, for `actor`.
    pub fn settings(&self, actor: &str) -> steward_runtime::JournalSettings {
        steward_runtime::JournalSettings {
            audit: self.audit,
            actor: actor.to_owned(),
            retain: self.retain,
            retain_audit: (!self.retain_audit.is_zero()).then_some(self.retain_audit),
        }
    }
}

/// The `state:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The state directory (journal, fleet registry, pidfile). Default `<parent>/.steward/<name>` for the coordination directory `<parent>/<name>`: one per coordination directory.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Where the journal lives: a file (default `<state dir>/journal.db`), or `postgres://USER@HOST/DB?schema=NAME` for one journal that HA replicas share (schema default `steward`; password from the URL or PGPASSWORD, never shown).
    #[serde(default)]
    pub journal: Option<String>,
}

impl Config {
    /// The pure engine's part of the config.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            health: self.health.clone(),
            liveness: self.coordination.liveness(),
            auto: self.auto.clone(),
            adaptive: self.adaptive.clone(),
            predict: self.predict.clone(),
            // A supervisor runs its own workers: other agents in the
            // directory are not its to scale or restart.
            fleet_owns: if self.fleet.is_supervisor() { Ownership::StewardManaged } else { Ownership::All },
        }
    }

    /// The HA settings in effect: with a PostgreSQL journal and `ha.name`,
    /// the lease lives in the journal's database unless `ha.url` says where.
    pub fn ha(&self) -> steward_runtime::ha::HaConfig {
        let mut ha = self.ha.clone();
        if ha.url.is_none() && ha.name.is_some() {
            if let Some(j) = self.state.journal.as_deref().filter(|j| steward_store::JournalAt::is_postgres_url(j)) {
                ha.url = Some(steward_store::JournalAt::split_schema(j).0);
            }
        }
        ha
    }

    /// Where the journal lives: `state.journal`, else `<state dir>/journal.db`.
    pub fn journal(&self) -> steward_store::JournalAt {
        match self.state.journal.as_deref().map(steward_store::JournalAt::parse) {
            Some(Ok(at)) => at,
            // Refused when the config loads (validate); never reached there.
            Some(Err(_)) | None => steward_store::JournalAt::File(self.state_dir().join(steward_store::JOURNAL_FILE)),
        }
    }

    /// The state directory: configured, or `.steward` next to the coordination directory.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state.dir {
            return dir.clone();
        }
        // A queue or a metrics server: one state directory per target,
        // named after it (without its password), under ./.steward.
        if let Some(shown) = self.source.kind().ok().and_then(|k| k.public_target()) {
            let mut slug: String = shown.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '-' }).collect();
            while slug.contains("--") {
                slug = slug.replace("--", "-");
            }
            let slug: String = slug.trim_matches('-').chars().take(120).collect();
            return PathBuf::from(".steward").join(slug);
        }
        // One state directory per coordination directory, so two of them
        // in one parent never share a journal: <parent>/.steward/<name>.
        let dir = &self.coordination.dir;
        let (parent, name) = match (dir.parent(), dir.file_name()) {
            (Some(parent), Some(name)) => (parent.to_owned(), name.to_owned()),
            // `.`, `..` or `/`: name it by where it really is.
            _ => {
                let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
                (
                    real.parent().map(Path::to_path_buf).unwrap_or_default(),
                    real.file_name().map_or_else(|| "root".into(), ToOwned::to_owned),
                )
            }
        };
        parent.join(".steward").join(name)
    }

    /// The state directory steward 0.1.0 used by default, shared by every
    /// coordination directory in one parent.
    pub fn legacy_state_dir(&self) -> Option<PathBuf> {
        if self.state.dir.is_some() {
            return None;
        }
        Some(match self.coordination.dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.join(".steward"),
            _ => PathBuf::from(".steward"),
        })
    }

    fn validate(&self) -> Result<(), InvalidValue> {
        self.source.kind()?;
        if let Some(j) = &self.state.journal {
            steward_store::JournalAt::parse(j).map_err(|message| InvalidValue { key: "state.journal".into(), message })?;
        }
        let ha = self.ha();
        ha.validate()?;
        if ha.url.is_some() && self.fleet.is_supervisor() {
            return Err(InvalidValue {
                key: "fleet.kind".into(),
                message: "supervisor does not go with ha: its workers are processes of one host, which a new leader cannot adopt; \
                          use a command or webhook fleet (kubectl scale, your scaler) with ha"
                    .into(),
            });
        }
        self.coordination.validate()?;
        self.health.validate()?;
        self.auto.validate()?;
        self.adaptive.validate()?;
        self.predict.validate()?;
        self.cost.validate()?;
        self.server.validate()?;
        self.notify.validate()?;
        let hour = std::time::Duration::from_secs(3600);
        if self.journal.retain < hour {
            return Err(InvalidValue {
                key: "journal.retain".into(),
                message: format!(
                    "{} would remove the history the policies read; at least 1h",
                    steward_core::config::duration::format(self.journal.retain)
                ),
            });
        }
        if !self.journal.retain_audit.is_zero() && self.journal.retain_audit < hour {
            return Err(InvalidValue { key: "journal.retain_audit".into(), message: "at least 1h, or 0 to keep every record".into() });
        }
        if self.logs.max_size < 1024 {
            return Err(InvalidValue { key: "logs.max_size".into(), message: "must be at least 1024 bytes".into() });
        }
        self.fleet.validate()?;
        self.validate_reconciliation()
    }

    /// The datasets, checked and expanded as of now: templates, dates,
    /// rules, and that each collector can be run.
    ///
    /// # Errors
    /// The first bad key, naming the dataset.
    pub fn datasets(&self) -> Result<Vec<steward_core::reconcile::Dataset>, InvalidValue> {
        let spec = |e: steward_core::reconcile::SpecError| InvalidValue { key: format!("{}.{}", e.section, e.key), message: e.message };
        let datasets = compile_all(&self.datasets, steward_runtime::now_ms()).map_err(spec)?;
        for d in &datasets {
            let program = &d.cfg.collector[0];
            let resolved = match &self.base_dir {
                Some(base) if program.contains('/') && Path::new(program).is_relative() => base.join(program).display().to_string(),
                _ => program.clone(),
            };
            if !steward_actuators::process::runnable(&resolved) {
                return Err(InvalidValue {
                    key: format!("datasets[{}].collector", d.name()),
                    message: format!("{program:?} is not an executable file (nor a program on PATH)"),
                });
            }
        }
        Ok(datasets)
    }

    fn validate_reconciliation(&self) -> Result<(), InvalidValue> {
        let spec = |e: steward_core::reconcile::SpecError| InvalidValue { key: format!("{}.{}", e.section, e.key), message: e.message };
        self.orchestrator.validate().map_err(spec)?;
        if self.inventory.rescan < std::time::Duration::from_secs(1) {
            return Err(InvalidValue { key: "inventory.rescan".into(), message: "must be at least 1s".into() });
        }
        if !self.datasets.is_empty() && self.inventory.url.trim().is_empty() {
            return Err(InvalidValue {
                key: "inventory.url".into(),
                message: "datasets are configured but no inventory: set inventory.url to the lake (a directory, s3://.., gs://.., az://..)"
                    .into(),
            });
        }
        self.datasets().map(|_| ())
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The config file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "in {}", p.display()),
            Self::Env(v) => write!(f, "from environment variable {v}"),
            Self::Flag(flag) => write!(f, "from flag {flag}"),
        }
    }
}

/// A config that cannot be used. Always a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("config file {path} is not valid YAML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The top level is not a mapping.
    #[error("config file {path} must be a mapping of sections (coordination, state, health, auto, adaptive, fleet)")]
    NotAMapping {
        /// The file.
        path: PathBuf,
    },
    /// A key has a value of the wrong type, or is unknown.
    #[error("bad config value for {key} {origin}: {message}")]
    Value {
        /// The dotted key.
        key: String,
        /// Where the value came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// Overrides that flags apply on top of everything else.
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    /// `--coordination DIR`
    pub coordination: Option<PathBuf>,
    /// `--source URL`
    pub source: Option<String>,
    /// `--state-dir DIR`
    pub state_dir: Option<PathBuf>,
    /// `--policy NAME`
    pub policy: Option<String>,
    /// `--listen ADDR` (serve, start)
    pub listen: Option<String>,
    /// `--create`
    pub create: bool,
}

/// Loads the config: `file` (or `./steward.yaml` if present), then the
/// environment `env` (name, value pairs), then flags.
///
/// # Errors
/// A file that cannot be read or parsed, or any value that is of the wrong
/// type, unknown, or out of range; the error names the key and its origin.
pub fn load(file: Option<&Path>, env: &[(String, String)], flags: &FlagOverrides) -> Result<(Config, Option<PathBuf>), ConfigError> {
    let path = match file {
        Some(p) => Some(p.to_owned()),
        None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()),
    };
    let mut tree = Map::new();
    let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
    if let Some(path) = &path {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_saphyr::from_str(&text).map_err(|e| ConfigError::Syntax { path: path.clone(), message: e.to_string() })?
        };
        match value {
            Value::Null => {}
            // A section with only comments under it reads as null: no keys.
            Value::Object(map) => tree = map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            _ => return Err(ConfigError::NotAMapping { path: path.clone() }),
        }
        // Paths in the file are relative to the file, as a reader expects,
        // not to wherever steward happens to be started.
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
        if let Some(base) = base {
            for (section, key) in [("coordination", "dir"), ("state", "dir"), ("inventory", "url")] {
                if let Some(Value::String(dir)) = tree.get_mut(section).and_then(|s| s.get_mut(key)) {
                    if !dir.is_empty() && !dir.contains("://") && Path::new(dir.as_str()).is_relative() {
                        *dir = base.join(dir.as_str()).display().to_string();
                    }
                }
            }
        }
        for (section, body) in &tree {
            origins.insert(section.clone(), Origin::File(path.clone()));
            if let Value::Object(keys) = body {
                for key in keys.keys() {
                    origins.insert(format!("{section}.{key}"), Origin::File(path.clone()));
                }
            }
        }
    }
    let (overrides, unknown) = env_overrides(env);
    for var in unknown {
        tracing::warn!(variable = %var, "Environment variable names no config key; ignored (see `steward config --example`).");
    }
    let bool_keys: Vec<(String, String)> =
        known_key_defaults().into_iter().filter(|(_, _, v)| v.is_boolean()).map(|(s, k, _)| (s, k)).collect();
    for (var, (section, key), raw) in overrides {
        let is_bool = bool_keys.iter().any(|(s, k)| *s == section && *k == key);
        let value = if is_bool { parse_bool(&raw).map_or_else(|| Value::String(raw.clone()), Value::Bool) } else { parse_scalar(&raw) };
        let entry = tree.entry(section.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(m) = entry {
            m.insert(key.clone(), value);
        }
        origins.insert(format!("{section}.{key}"), Origin::Env(var));
    }
    let mut set_flag = |section: &str, key: &str, value: Value, flag: &'static str| {
        let entry = tree.entry(section.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(m) = entry {
            m.insert(key.to_owned(), value);
        }
        origins.insert(format!("{section}.{key}"), Origin::Flag(flag));
    };
    if let Some(dir) = &flags.coordination {
        set_flag("coordination", "dir", Value::String(dir.display().to_string()), "--coordination");
    }
    if let Some(url) = &flags.source {
        set_flag("source", "url", Value::String(url.clone()), "--source");
    }
    if let Some(dir) = &flags.state_dir {
        set_flag("state", "dir", Value::String(dir.display().to_string()), "--state-dir");
    }
    if let Some(p) = &flags.policy {
        set_flag("auto", "policy", Value::String(p.clone()), "--policy");
    }
    if let Some(l) = &flags.listen {
        set_flag("server", "listen", Value::String(l.clone()), "--listen");
    }
    if flags.create {
        set_flag("coordination", "create", Value::Bool(true), "--create");
    }

    let origin_of = |key: &str| -> String {
        let mut k = key;
        loop {
            if let Some(o) = origins.get(k) {
                return o.to_string();
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => return path.as_ref().map_or_else(|| "(defaults)".to_owned(), |p| Origin::File(p.clone()).to_string()),
            }
        }
    };
    let config: Config = serde_path_to_error::deserialize(Value::Object(tree)).map_err(|e| {
        let key = e.path().to_string();
        let message = e.inner().to_string();
        // Unknown keys are reported at their parent; name the key itself.
        let key = match message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
            Some(field) if key == "." => field.to_owned(),
            Some(field) if key == field || key.ends_with(&format!(".{field}")) => key,
            Some(field) => format!("{key}.{field}"),
            None => key,
        };
        ConfigError::Value { origin: origin_of(&key), key, message }
    })?;
    let mut config = config;
    config.base_dir = path.as_ref().and_then(|p| p.parent()).filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
    config.validate().map_err(|e| ConfigError::Value { origin: origin_of(&e.key), key: e.key, message: e.message })?;
    // `source.url` naming a directory is the coordination directory.
    if let Ok(SourceKind::Coordination(Some(dir))) = config.source.kind() {
        config.coordination.dir = dir;
        config.source.url = None;
    }
    Ok((config, path))
}

/// Booleans as shells spell them: true/false, 1/0, yes/no, on/off.
fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// Parses an environment value as YAML would a scalar: numbers and
/// booleans typed, anything else a string.
fn parse_scalar(raw: &str) -> Value {
    let t = raw.trim();
    match t {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = t.parse::<f64>() {
        if f.is_finite() {
            return Value::from(f);
        }
    }
    Value::String(raw.to_owned())
}

/// `STEWARD_` variables that are not config keys: what the supervisor
/// hands its workers, and the test harness's own.
const NOT_CONFIG: [&str; 1] = ["STEWARD_AGENT_ID"];

/// Maps environment variables to (section, key): `STEWARD_<SECTION>_<KEY>`,
/// and `DSLMODEL_AUTO_<KEY>` as an alias of `STEWARD_AUTO_<KEY>`, which
/// wins when both are set. `STEWARD_COORDINATION` is the directory.
/// Variables that name no known key are ignored (other tools share the prefix).
/// Also returns the variables that start like a section but name no key
/// (typos worth a warning).
#[allow(clippy::type_complexity)]
fn env_overrides(env: &[(String, String)]) -> (Vec<(String, (String, String), String)>, Vec<String>) {
    let known = known_keys();
    let mut unknown = Vec::new();
    let mut aliases = Vec::new();
    let mut primary = Vec::new();
    for (var, value) in env {
        if var == "STEWARD_COORDINATION" {
            primary.push((var.clone(), ("coordination".to_owned(), "dir".to_owned()), value.clone()));
            continue;
        }
        let (rest, alias) = if let Some(rest) = var.strip_prefix("STEWARD_") {
            (rest.to_ascii_lowercase(), false)
        } else if let Some(rest) = var.strip_prefix("DSLMODEL_AUTO_") {
            (format!("auto_{}", rest.to_ascii_lowercase()), true)
        } else {
            continue;
        };
        let found =
            known.iter().find(|(section, key)| rest.strip_prefix(section.as_str()).and_then(|r| r.strip_prefix('_')) == Some(key.as_str()));
        if let Some((section, key)) = found {
            let item = (var.clone(), (section.clone(), key.clone()), value.clone());
            if alias {
                aliases.push(item);
            } else {
                primary.push(item);
            }
        } else if known.iter().any(|(section, _)| rest.starts_with(&format!("{section}_"))) || !NOT_CONFIG.contains(&var.as_str()) {
            // A typo in a key or in a section: worth a warning either way.
            unknown.push(var.clone());
        }
    }
    aliases.sort();
    primary.sort();
    unknown.sort();
    (aliases.into_iter().chain(primary).collect(), unknown)
}

/// Every (section, key, default value) of the config.
fn known_key_defaults() -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    if let Ok(Value::Object(sections)) = serde_json::to_value(Config::default()) {
        for (section, body) in sections {
            if let Value::Object(m) = body {
                for (key, v) in m {
                    out.push((section.clone(), key, v));
                }
            }
        }
    }
    out
}

/// Every (section, key) of the config, from the defaults.
pub fn known_keys() -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(Value::Object(sections)) = serde_json::to_value(Config::default()) {
        for (section, body) in sections {
            let keys: Vec<String> = match body {
                Value::Object(m) => m.keys().cloned().collect(),
                _ => Vec::new(),
            };
            for key in keys {
                out.push((section.clone(), key));
            }
        }
    }
    // `state.dir` defaults to null and still is a key.
    if !out.iter().any(|(s, k)| s == "state" && k == "dir") {
        out.push(("state".into(), "dir".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("steward.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_example_parses_and_holds_every_key_at_its_default() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(tmp.path(), EXAMPLE);
        let (cfg, _) = load(Some(&p), &[], &FlagOverrides::default()).unwrap();
        let mut expected = Config::default();
        expected.coordination.dir = tmp.path().join("./coordination");
        expected.base_dir = Some(tmp.path().to_owned());
        assert_eq!(cfg, expected);
        let parsed: Value = serde_saphyr::from_str(EXAMPLE).unwrap();
        for (section, key) in known_keys() {
            assert!(
                parsed.get(&section).and_then(|s| s.get(&key)).is_some() || EXAMPLE.contains(&format!("# {key}:")),
                "the example lacks {section}.{key}"
            );
        }
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(tmp.path(), "auto:\n  min_confidence: 0.7\n  max_agents: 20\n  policy: classic\n");
        let e = env(&[
            ("STEWARD_AUTO_MIN_CONFIDENCE", "0.8"),
            ("DSLMODEL_AUTO_MIN_CONFIDENCE", "0.9"),
            ("DSLMODEL_AUTO_MAX_AGENTS", "30"),
            ("STEWARD_AUTO_DRY_RUN", "true"),
        ]);
        let flags = FlagOverrides { policy: Some("adaptive".into()), ..FlagOverrides::default() };
        let (cfg, _) = load(Some(&p), &e, &flags).unwrap();
        assert_eq!(cfg.auto.min_confidence, 0.8, "STEWARD_ wins over its DSLMODEL_ alias");
        assert_eq!(cfg.auto.max_agents, 30, "the alias wins over the file");
        assert!(cfg.auto.dry_run);
        assert_eq!(cfg.auto.policy.to_string(), "adaptive", "the flag wins");
        assert_eq!(cfg.auto.max_decisions, 3, "untouched keys keep their default");
    }

    #[test]
    fn durations_and_the_coordination_variable() {
        let e = env(&[("STEWARD_COORDINATION_AGENT_TTL", "2m"), ("STEWARD_COORDINATION", "/tmp/x/coord")]);
        let (cfg, _) = load(None, &e, &FlagOverrides::default()).unwrap();
        assert_eq!(cfg.coordination.agent_ttl.as_secs(), 120);
        assert_eq!(cfg.coordination.dir, PathBuf::from("/tmp/x/coord"));
        assert_eq!(cfg.state_dir(), PathBuf::from("/tmp/x/.steward/coord"), "one state directory per coordination directory");
    }

    fn err(text: &str, e: &[(&str, &str)]) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(tmp.path(), text);
        load(Some(&p), &env(e), &FlagOverrides::default()).unwrap_err().to_string()
    }

    #[test]
    fn bad_values_name_the_key_and_where_it_came_from() {
        let m = err("auto:\n  min_confidence: high\n", &[]);
        assert!(m.contains("auto.min_confidence") && m.contains("steward.yaml"), "{m}");
        let m = err("auto:\n  min_confidence: 1.5\n", &[]);
        assert!(m.contains("auto.min_confidence") && m.contains("between 0 and 1"), "{m}");
        let m = err("", &[("STEWARD_AUTO_MAX_AGENTS", "many")]);
        assert!(m.contains("auto.max_agents") && m.contains("STEWARD_AUTO_MAX_AGENTS"), "{m}");
        let m = err("auto:\n  max_agentz: 3\n", &[]);
        assert!(m.contains("auto.max_agentz") && m.contains("unknown field") && !m.contains("max_agentz.max_agentz"), "{m}");
        let m = err("autoo: {}\n", &[]);
        assert!(m.contains("autoo"), "{m}");
        let m = err("coordination:\n  claim_ttl: 5 fortnights\n", &[]);
        assert!(m.contains("coordination.claim_ttl") && m.contains("unit"), "{m}");
        let m = err("auto: [1, 2\n", &[]);
        assert!(m.contains("not valid YAML"), "{m}");
        let m = err("- a\n- b\n", &[]);
        assert!(m.contains("must be a mapping"), "{m}");
        let m = err("auto:\n  min_agents: 9\n  max_agents: 2\n", &[]);
        assert!(m.contains("auto.min_agents"), "{m}");
    }

    #[test]
    fn relative_paths_in_the_file_are_relative_to_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(tmp.path(), "coordination:\n  dir: coord\nstate:\n  dir: /var/lib/steward\n");
        let (cfg, _) = load(Some(&p), &[], &FlagOverrides::default()).unwrap();
        assert_eq!(cfg.coordination.dir, tmp.path().join("coord"));
        assert_eq!(cfg.state_dir(), PathBuf::from("/var/lib/steward"));
        // A flag is relative to where steward runs, as flags are.
        let flags = FlagOverrides { coordination: Some("here".into()), ..FlagOverrides::default() };
        assert_eq!(load(Some(&p), &[], &flags).unwrap().0.coordination.dir, PathBuf::from("here"));
    }

    #[test]
    fn booleans_from_the_environment_read_as_shells_write_them() {
        for (raw, want) in [("1", true), ("yes", true), ("ON", true), ("0", false), ("no", false), ("false", false)] {
            let (cfg, _) = load(None, &env(&[("STEWARD_AUTO_DRY_RUN", raw)]), &FlagOverrides::default()).unwrap();
            assert_eq!(cfg.auto.dry_run, want, "{raw}");
        }
        assert!(load(None, &env(&[("STEWARD_AUTO_DRY_RUN", "maybe")]), &FlagOverrides::default()).is_err());
        // A typo is ignored with a warning, not applied to some other key.
        let (cfg, _) = load(None, &env(&[("STEWARD_AUTO_MAX_AGNTS", "3")]), &FlagOverrides::default()).unwrap();
        assert_eq!(cfg.auto.max_agents, 10);
        assert_eq!(env_overrides(&env(&[("STEWARD_AUTO_MAX_AGNTS", "3"), ("STEWARD_AGENT_ID", "x")])).1, ["STEWARD_AUTO_MAX_AGNTS"]);
        // Regression (issue 9): an unknown section was ignored silently.
        assert_eq!(
            env_overrides(&env(&[("STEWARD_FOO_BAR", "1"), ("DSLMODEL_AUTO_MAX_AGNTS", "2")])).1,
            ["DSLMODEL_AUTO_MAX_AGNTS", "STEWARD_FOO_BAR"]
        );
    }

    #[test]
    fn a_missing_config_file_named_by_flag_is_an_error() {
        let e = load(Some(Path::new("/nonexistent/steward.yaml")), &[], &FlagOverrides::default()).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
    }

    fn fuzz_cases() -> u32 {
        std::env::var("STEWARD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)
    }

    /// YAML documents built from the config's own sections and keys with
    /// values of every kind, plus raw text.
    fn yaml() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let keys: Vec<(String, String)> = known_keys();
        let value = prop_oneof![
            Just("~".to_owned()),
            Just("-1".to_owned()),
            Just("1e999".to_owned()),
            Just("0".to_owned()),
            Just("\"5 fortnights\"".to_owned()),
            Just("[1, [2, [3]]]".to_owned()),
            Just("{a: 1}".to_owned()),
            Just("*ref".to_owned()),
            Just("&ref [1]".to_owned()),
            Just("\"0.0.0.0:80\"".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|x| x.to_string()),
            "[ -~]{0,16}".prop_map(|s| format!("{s:?}")),
        ];
        prop_oneof![
            proptest::collection::vec((proptest::sample::select(keys), value), 0..10)
                .prop_map(|kv| { kv.iter().map(|((section, key), v)| format!("{section}:\n  {key}: {v}\n")).collect::<String>() }),
            "[ -~\n\t]{0,200}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: fuzz_cases(), ..proptest::prelude::ProptestConfig::default() })]

        /// Fuzzing the config loader (issue 9): any file and any
        /// environment loads or fails with a message naming a key or the
        /// file, never a panic; what loads passes its own validation.
        #[test]
        fn any_config_loads_or_is_refused_with_a_message(text in yaml(), env_value in "[ -~]{0,12}", key in proptest::sample::select(known_keys())) {
            let tmp = tempfile::tempdir().unwrap();
            let p = write(tmp.path(), &text);
            let var = format!("STEWARD_{}_{}", key.0.to_ascii_uppercase(), key.1.to_ascii_uppercase());
            match load(Some(&p), &env(&[(var.as_str(), env_value.as_str())]), &FlagOverrides::default()) {
                Ok((cfg, _)) => proptest::prop_assert!(cfg.validate().is_ok()),
                Err(e) => proptest::prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
