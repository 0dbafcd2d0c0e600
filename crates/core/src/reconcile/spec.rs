//! The coverage spec in the config (`inventory:`, `datasets:`,
//! `orchestrator:`), checked and compiled into [`Dataset`]s.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::template::{Fill, Template, Use};
use crate::config::duration;
use crate::expr::{Expr, Type, Value};
use crate::time::{parse_rfc3339, UnixMs};

/// The `inventory:` section: where the lake is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// `file:///data/lake` or a plain path, `s3://bucket/prefix`, `gs://..`,
    /// `az://..` (credentials from the cloud's standard variables).
    /// Empty: no inventory. Default empty.
    #[serde(default)]
    pub url: String,
    /// A full listing at most this often; between them the daemon reuses the
    /// last one and checks only the open gaps. Default 1h.
    #[serde(default = "default_rescan", with = "duration")]
    pub rescan: Duration,
}

fn default_rescan() -> Duration {
    Duration::from_secs(3600)
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self { url: String::new(), rescan: default_rescan() }
    }
}

/// A task's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Run first.
    Critical,
    /// Then these.
    High,
    /// The default.
    #[default]
    Medium,
    /// Last.
    Low,
}

impl Priority {
    /// All of them, highest first.
    pub const ALL: [Self; 4] = [Self::Critical, Self::High, Self::Medium, Self::Low];

    /// The name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }

    /// 0 for critical to 3 for low: the order tasks run in.
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// From the name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A priority rule: the first whose condition holds gives the priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityRule {
    /// A condition over `age_days`, `kind`, `dataset`, `partition`, e.g. `age_days <= 2`.
    pub when: String,
    /// The priority when it holds.
    pub is: Priority,
}

/// `dates:` of a dataset: one partition per `every` from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatesConfig {
    /// The first partition: `2024-10-01` or an RFC 3339 time.
    pub from: String,
    /// The last one: a date, `today` or `now`. Default `today`.
    #[serde(default = "default_to")]
    pub to: String,
    /// The step between partitions. Default 1d.
    #[serde(default = "default_every", with = "duration")]
    pub every: Duration,
}

fn default_to() -> String {
    "today".into()
}
fn default_every() -> Duration {
    Duration::from_secs(86_400)
}

/// One dataset of the `datasets:` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The key template, e.g. `box_scores/{date:%Y/%m/%d}.json`.
    pub key: String,
    /// Date partitions.
    #[serde(default)]
    pub dates: Option<DatesConfig>,
    /// Explicit partitions (instead of `dates`), filled into `{value}`.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// A file smaller than this is truncated. Default 1.
    #[serde(default = "default_min_bytes")]
    pub min_bytes: u64,
    /// A file written before its partition ended goes stale after this
    /// (today's partition, refreshed through the day). 0 = never. Default 0.
    #[serde(default, with = "duration")]
    pub max_age: Duration,
    /// The collector's argv (never a shell string), with the placeholders
    /// `{date}`, `{date:FMT}`, `{value}`, `{key}`, `{partition}`, `{dataset}`.
    pub collector: Vec<String>,
    /// Variables for the collector, on top of a clean environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Least time between two starts of this dataset's collector (a rate
    /// limit that never holds up other datasets). Default 0.
    #[serde(default, with = "duration")]
    pub min_interval: Duration,
    /// Priority rules; the first that holds wins; none: medium.
    #[serde(default)]
    pub priority: Vec<PriorityRule>,
}

fn default_min_bytes() -> u64 {
    1
}

/// The `orchestrator:` section: how tasks run, and the daemon's schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestratorConfig {
    /// Collectors running at once. Default 4.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Longest one collector run; then it is killed and the task retried. Default 10m.
    #[serde(default = "default_task_timeout", with = "duration")]
    pub task_timeout: Duration,
    /// Longest one orchestrator run; tasks still running are killed and requeued. Default 1h.
    #[serde(default = "default_max_runtime", with = "duration")]
    pub max_runtime: Duration,
    /// Retries after a failed run before the task is dead-lettered. Default 3.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Delay before the first retry; it doubles each time, with jitter. Default 30s.
    #[serde(default = "default_backoff", with = "duration")]
    pub retry_backoff: Duration,
    /// Longest delay between retries. Default 1h.
    #[serde(default = "default_backoff_max", with = "duration")]
    pub retry_backoff_max: Duration,
    /// Variables for every collector, on top of a clean environment (`PATH` is kept).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The daemon reconciles this often (and once at start). Default 1h.
    #[serde(default = "default_reconcile_every", with = "duration")]
    pub reconciliation_interval: Duration,
    /// The daemon checks the task queue this often. Default 30s.
    #[serde(default = "default_queue_check", with = "duration")]
    pub queue_check_interval: Duration,
    /// The daemon starts the orchestrator when at least this many tasks are ready. Default 1.
    #[serde(default = "default_min_tasks")]
    pub min_tasks_to_trigger: u32,
}

fn default_concurrency() -> u32 {
    4
}
fn default_task_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_max_runtime() -> Duration {
    Duration::from_secs(3600)
}
fn default_retries() -> u32 {
    3
}
fn default_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(3600)
}
fn default_reconcile_every() -> Duration {
    Duration::from_secs(3600)
}
fn default_queue_check() -> Duration {
    Duration::from_secs(30)
}
fn default_min_tasks() -> u32 {
    1
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            task_timeout: default_task_timeout(),
            max_runtime: default_max_runtime(),
            retries: default_retries(),
            retry_backoff: default_backoff(),
            retry_backoff_max: default_backoff_max(),
            env: BTreeMap::new(),
            reconciliation_interval: default_reconcile_every(),
            queue_check_interval: default_queue_check(),
            min_tasks_to_trigger: default_min_tasks(),
        }
    }
}

/// A bad dataset or orchestrator setting: which dataset, which key, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{section}.{key}: {message}")]
pub struct SpecError {
    /// `datasets[NAME]` or `orchestrator` or `inventory`.
    pub section: String,
    /// The key inside it.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn err(section: &str, key: &str, message: impl Into<String>) -> SpecError {
    SpecError { section: section.into(), key: key.into(), message: message.into() }
}

impl OrchestratorConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// The first bad key.
    pub fn validate(&self) -> Result<(), SpecError> {
        let e = |k: &str, m: &str| Err(err("orchestrator", k, m));
        if self.concurrency == 0 || self.concurrency > 1024 {
            return e("concurrency", "must be 1 to 1024");
        }
        if self.task_timeout.is_zero() {
            return e("task_timeout", "must be above zero");
        }
        if self.max_runtime.is_zero() {
            return e("max_runtime", "must be above zero");
        }
        if self.retries > 100 {
            return e("retries", "must be at most 100");
        }
        if self.retry_backoff > self.retry_backoff_max {
            return e("retry_backoff", "is above retry_backoff_max");
        }
        if self.reconciliation_interval < Duration::from_secs(1) {
            return e("reconciliation_interval", "must be at least 1s");
        }
        if self.queue_check_interval < Duration::from_millis(100) {
            return e("queue_check_interval", "must be at least 100ms");
        }
        if self.min_tasks_to_trigger == 0 {
            return e("min_tasks_to_trigger", "must be at least 1");
        }
        check_env("orchestrator", &self.env)
    }
}

fn check_env(section: &str, env: &BTreeMap<String, String>) -> Result<(), SpecError> {
    for k in env.keys() {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(err(section, "env", format!("{k:?} is not a variable name")));
        }
    }
    Ok(())
}

/// Whether `key` can name an object of every inventory, and stays inside
/// the lake when a collector writes it as a path: `Err` says why not.
///
/// Refused: an empty key, a leading `/`, an empty segment (`a//b`, a
/// trailing `/`), `.` and `..` segments, control characters (NUL among
/// them), and a file name ending in `#` and digits (a local inventory
/// keeps those names for its own temporary files, and never lists them).
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("is empty".into());
    }
    if key.starts_with('/') {
        return Err("starts with `/` (keys are relative to the inventory)".into());
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(format!("holds the control character {c:?}"));
    }
    for seg in key.split('/') {
        match seg {
            "" => return Err("has an empty segment (`//`, or a `/` at the end)".into()),
            "." | ".." => return Err(format!("has a `{seg}` segment (keys stay inside the inventory)")),
            _ => {}
        }
    }
    let name = key.rsplit('/').next().unwrap_or(key);
    if let Some((_, suffix)) = name.split_once('#') {
        if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("ends in `#{suffix}` (a local inventory keeps such names for its temporary files)"));
        }
    }
    Ok(())
}

/// What is wrong with a partition's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GapKind {
    /// No file.
    Missing,
    /// Smaller than `min_bytes`.
    Truncated,
    /// Written before its partition ended, and older than `max_age`.
    Stale,
}

impl GapKind {
    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Truncated => "truncated",
            Self::Stale => "stale",
        }
    }

    /// From the name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Missing, Self::Truncated, Self::Stale].into_iter().find(|k| k.as_str() == s)
    }
}

/// The most partitions one dataset may have.
pub const MAX_PARTITIONS: u64 = 50_000_000;

#[derive(Debug, Clone)]
enum Partitions {
    Dates { from: UnixMs, every: i64, count: u64 },
    Values { values: Vec<String>, by_key: HashMap<String, u32> },
}

/// The variables a priority rule sees, in order.
const RULE_VARS: [(&str, Type); 4] = [("age_days", Type::Num), ("kind", Type::Str), ("dataset", Type::Str), ("partition", Type::Str)];

/// A dataset, checked and expanded at a given time.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// As configured.
    pub cfg: DatasetConfig,
    key: Template,
    args: Vec<Template>,
    partitions: Partitions,
    rules: Vec<(Expr, Priority)>,
}

/// Coverage of one dataset: counted exactly, over every expected key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Keys that should exist.
    pub expected: u64,
    /// Present and valid.
    pub valid: u64,
    /// Not there.
    pub missing: u64,
    /// Below `min_bytes`.
    pub truncated: u64,
    /// Stale.
    pub stale: u64,
}

impl Coverage {
    /// valid / expected, within 0..1 (1 when nothing is expected).
    pub fn ratio(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            (self.valid as f64 / self.expected as f64).clamp(0.0, 1.0)
        }
    }

    /// Counts one partition's state.
    pub fn add(&mut self, gap: Option<GapKind>) {
        self.expected += 1;
        match gap {
            None => self.valid += 1,
            Some(GapKind::Missing) => self.missing += 1,
            Some(GapKind::Truncated) => self.truncated += 1,
            Some(GapKind::Stale) => self.stale += 1,
        }
    }
}

fn parse_time(s: &str) -> Option<UnixMs> {
    parse_rfc3339(s)
}

impl Dataset {
    /// Checks `cfg` and expands its partitions as of `now` (`to: today`).
    ///
    /// # Errors
    /// The first bad key, naming the dataset.
    pub fn compile(cfg: &DatasetConfig, now: UnixMs) -> Result<Self, SpecError> {
        let section = format!("datasets[{}]", if cfg.name.is_empty() { "?" } else { &cfg.name });
        let e = |k: &str, m: String| err(&section, k, m);
        if cfg.name.is_empty() || !cfg.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(e("name", format!("{:?} must be letters, digits, '-', '_' or '.'", cfg.name)));
        }
        let usage = match (&cfg.dates, &cfg.values) {
            (Some(_), None) => Use::DateKey,
            (None, Some(_)) => Use::ValueKey,
            (Some(_), Some(_)) => return Err(e("dates", "a dataset has dates or values, not both".into())),
            (None, None) => return Err(e("dates", "a dataset needs dates: {from, to, every} or values: [..]".into())),
        };
        let key = Template::parse(&cfg.key, usage).map_err(|m| e("key", m))?;
        if cfg.key.starts_with('/') || cfg.key.split('/').any(|s| s == ".." || s == ".") {
            return Err(e("key", format!("{:?} must be relative to the inventory, without . or .. segments", cfg.key)));
        }
        let partitions = match (&cfg.dates, &cfg.values) {
            (Some(d), _) => {
                let from =
                    parse_time(&d.from).ok_or_else(|| e("dates.from", format!("{:?} is not a date (YYYY-MM-DD or RFC 3339)", d.from)))?;
                let every = i64::try_from(d.every.as_millis()).unwrap_or(i64::MAX);
                if every < 1000 {
                    return Err(e("dates.every", "must be at least 1s".into()));
                }
                let to = match d.to.trim() {
                    "today" => now.div_euclid(86_400_000) * 86_400_000,
                    "now" => now,
                    t => parse_time(t).ok_or_else(|| e("dates.to", format!("{t:?} is not a date, `today` or `now`")))?,
                };
                if to < from {
                    return Err(e("dates.to", format!("{} precedes dates.from {}", d.to, d.from)));
                }
                match key.date_resolution() {
                    None => return Err(e("key", format!("{:?} has no {{date}}: every partition would have the same key", cfg.key))),
                    Some(r) if r.saturating_mul(1000) > every => {
                        return Err(e(
                            "key",
                            format!(
                                "{:?} does not tell partitions {} apart: give the date finer fields, e.g. {}",
                                cfg.key,
                                duration::format(d.every),
                                if every < 86_400_000 { "{date:%Y-%m-%dT%H} or {date:%Y/%m/%d/%H%M}" } else { "{date:%Y/%m/%d}" }
                            ),
                        ))
                    }
                    _ => {}
                }
                // Date fields are digits only: every key has the segments
                // of the first, so its literal parts are checked with it.
                let first = key.fill(&Fill { date: Some(from), dataset: &cfg.name, ..Fill::default() });
                if let Err(why) = check_key(&first) {
                    return Err(e("key", format!("{:?} gives keys such as {first:?}, which {why}", cfg.key)));
                }
                let count = u64::try_from((to - from) / every).unwrap_or(0) + 1;
                if count > MAX_PARTITIONS {
                    return Err(e("dates", format!("{count} partitions; at most {MAX_PARTITIONS}")));
                }
                Partitions::Dates { from, every, count }
            }
            (None, Some(values)) => {
                if values.is_empty() {
                    return Err(e("values", "is empty".into()));
                }
                if values.len() as u64 > MAX_PARTITIONS {
                    return Err(e("values", format!("at most {MAX_PARTITIONS}")));
                }
                // The template's own parts first (with a harmless value), so
                // a bad template is named as the key, not as every value.
                let sample = key.fill(&Fill { value: Some("v"), dataset: &cfg.name, ..Fill::default() });
                if let Err(why) = check_key(&sample) {
                    return Err(e("key", format!("{:?} gives keys such as {sample:?}, which {why}", cfg.key)));
                }
                let mut by_key = HashMap::with_capacity(values.len());
                for (i, v) in values.iter().enumerate() {
                    let k = key.fill(&Fill { value: Some(v), dataset: &cfg.name, ..Fill::default() });
                    // The collector writes there: a value must not lead it
                    // out of the lake, or to a name no store can hold.
                    if let Err(why) = check_key(&k) {
                        return Err(e(&format!("values[{i}]"), format!("{v:?} gives the key {k:?}, which {why}")));
                    }
                    if by_key.insert(k.clone(), u32::try_from(i).unwrap_or(u32::MAX)).is_some() {
                        return Err(e("values", format!("two values give the key {k:?}")));
                    }
                }
                Partitions::Values { values: values.clone(), by_key }
            }
            (None, None) => unreachable!("checked above"),
        };
        if cfg.collector.is_empty() || cfg.collector[0].trim().is_empty() {
            return Err(e("collector", "needs a program: an argv such as [\"python3\", \"collect.py\", \"--date\", \"{date}\"]".into()));
        }
        let args = cfg
            .collector
            .iter()
            .map(|a| Template::parse(a, Use::Argument).map_err(|m| e("collector", m)))
            .collect::<Result<Vec<_>, _>>()?;
        if matches!(partitions, Partitions::Values { .. })
            && args.iter().any(|a| a.pieces().iter().any(|p| matches!(p, super::template::Piece::Date(_))))
        {
            return Err(e("collector", "{date} has no meaning for a dataset with values".into()));
        }
        check_env(&section, &cfg.env)?;
        let rules = cfg
            .priority
            .iter()
            .enumerate()
            .map(|(i, r)| Expr::parse(&r.when, &RULE_VARS).map(|x| (x, r.is)).map_err(|m| e(&format!("priority[{i}].when"), m.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { cfg: cfg.clone(), key, args, partitions, rules })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// How many partitions (expected keys).
    pub fn count(&self) -> u64 {
        match &self.partitions {
            Partitions::Dates { count, .. } => *count,
            Partitions::Values { values, .. } => values.len() as u64,
        }
    }

    /// When partition `i` starts (date partitions).
    pub fn start(&self, i: u64) -> Option<UnixMs> {
        match &self.partitions {
            Partitions::Dates { from, every, .. } => Some(from + i as i64 * every),
            Partitions::Values { .. } => None,
        }
    }

    /// When partition `i` ends (date partitions).
    pub fn end(&self, i: u64) -> Option<UnixMs> {
        match &self.partitions {
            Partitions::Dates { every, .. } => self.start(i).map(|s| s + every),
            Partitions::Values { .. } => None,
        }
    }

    fn fill(&self, i: u64) -> Fill<'_> {
        match &self.partitions {
            Partitions::Dates { .. } => Fill { date: self.start(i), dataset: &self.cfg.name, ..Fill::default() },
            Partitions::Values { values, .. } => {
                Fill { value: values.get(i as usize).map(String::as_str), dataset: &self.cfg.name, ..Fill::default() }
            }
        }
    }

    /// The key of partition `i`.
    pub fn key(&self, i: u64) -> String {
        self.key.fill(&self.fill(i))
    }

    /// Partition `i` as text (`2024-10-05`, or the value).
    pub fn partition(&self, i: u64) -> String {
        super::template::partition_text(&self.fill(i))
    }

    /// The partition a listed key belongs to, if it is one of this dataset's.
    pub fn partition_of(&self, key: &str) -> Option<u64> {
        match &self.partitions {
            Partitions::Dates { from, every, count } => {
                let t = self.key.parse_date(key, &self.cfg.name)?;
                let off = t - from;
                if off < 0 || off % every != 0 {
                    return None;
                }
                let i = u64::try_from(off / every).ok()?;
                (i < *count).then_some(i)
            }
            Partitions::Values { by_key, .. } => by_key.get(key).map(|&i| u64::from(i)),
        }
    }

    /// Where a listing of this dataset's keys starts: the literal text
    /// before the first placeholder.
    pub fn prefix(&self) -> String {
        self.key.literal_prefix(&self.cfg.name)
    }

    /// What is wrong with partition `i`, given its file's size and last
    /// write (`None`: no file), at `now`.
    pub fn classify(&self, i: u64, file: Option<(u64, UnixMs)>, now: UnixMs) -> Option<GapKind> {
        let Some((size, modified)) = file else { return Some(GapKind::Missing) };
        if size < self.cfg.min_bytes {
            return Some(GapKind::Truncated);
        }
        let max_age = i64::try_from(self.cfg.max_age.as_millis()).unwrap_or(i64::MAX);
        if max_age > 0 && now.saturating_sub(modified) > max_age {
            // Written after its partition ended: complete, never stale.
            if self.end(i).is_none_or(|end| modified < end) {
                return Some(GapKind::Stale);
            }
        }
        None
    }

    /// The priority of a gap in partition `i`.
    pub fn priority(&self, i: u64, kind: GapKind, now: UnixMs) -> Priority {
        if self.rules.is_empty() {
            return Priority::Medium;
        }
        let age_days = self.start(i).map_or(0.0, |s| ((now - s) as f64 / 86_400_000.0).floor().max(0.0));
        let vars =
            [Value::Num(age_days), Value::Str(kind.as_str().into()), Value::Str(self.cfg.name.clone()), Value::Str(self.partition(i))];
        self.rules.iter().find(|(x, _)| x.eval(&vars)).map_or(Priority::Medium, |(_, p)| *p)
    }

    /// The collector's argv for partition `i`.
    pub fn argv(&self, i: u64) -> Vec<String> {
        let key = self.key(i);
        let mut f = self.fill(i);
        f.key = Some(&key);
        self.args.iter().map(|a| a.fill(&f)).collect()
    }
}

/// Compiles every dataset, checking their names are unique.
///
/// # Errors
/// The first bad dataset.
pub fn compile_all(datasets: &[DatasetConfig], now: UnixMs) -> Result<Vec<Dataset>, SpecError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(datasets.len());
    for d in datasets {
        if !seen.insert(d.name.as_str()) {
            return Err(err(&format!("datasets[{}]", d.name), "name", "is used by two datasets"));
        }
        out.push(Dataset::compile(d, now)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMs = 1_735_000_000_000; // 2024-12-24T00:26:40Z

    fn daily(name: &str) -> DatasetConfig {
        DatasetConfig {
            name: name.into(),
            key: format!("{name}/{{date:%Y/%m/%d}}.json"),
            dates: Some(DatesConfig { from: "2024-12-01".into(), to: "today".into(), every: Duration::from_secs(86_400) }),
            values: None,
            min_bytes: 10,
            max_age: Duration::from_secs(26 * 3600),
            collector: vec!["collect".into(), "--date".into(), "{date}".into(), "--out".into(), "{key}".into()],
            env: BTreeMap::new(),
            min_interval: Duration::ZERO,
            priority: vec![
                PriorityRule { when: "age_days <= 2".into(), is: Priority::Critical },
                PriorityRule { when: "kind == 'truncated'".into(), is: Priority::High },
                PriorityRule { when: "true".into(), is: Priority::Low },
            ],
        }
    }

    #[test]
    fn a_daily_dataset_expands_to_today() {
        let d = Dataset::compile(&daily("box"), NOW).unwrap();
        assert_eq!(d.count(), 24, "Dec 1 to Dec 24 inclusive");
        assert_eq!(d.key(0), "box/2024/12/01.json");
        assert_eq!(d.key(23), "box/2024/12/24.json");
        assert_eq!(d.partition(3), "2024-12-04");
        assert_eq!(d.partition_of("box/2024/12/04.json"), Some(3));
        assert_eq!(d.partition_of("box/2024/11/30.json"), None, "before from");
        assert_eq!(d.partition_of("box/2024/12/25.json"), None, "after today");
        assert_eq!(d.partition_of("other/2024/12/04.json"), None);
        assert_eq!(d.prefix(), "box/");
        assert_eq!(d.argv(0), ["collect", "--date", "2024-12-01", "--out", "box/2024/12/01.json"]);
    }

    #[test]
    fn gaps_and_priorities() {
        let d = Dataset::compile(&daily("box"), NOW).unwrap();
        let day = 86_400_000;
        assert_eq!(d.classify(0, None, NOW), Some(GapKind::Missing));
        assert_eq!(d.classify(0, Some((5, NOW)), NOW), Some(GapKind::Truncated));
        // Written on Dec 2 for Dec 1 (after it ended): complete, however old.
        assert_eq!(d.classify(0, Some((100, d.start(1).unwrap() + 1)), NOW), None);
        // Today's, written 27 h ago (before its day ended): stale.
        assert_eq!(d.classify(23, Some((100, NOW - 27 * 3_600_000)), NOW), Some(GapKind::Stale));
        assert_eq!(d.classify(23, Some((100, NOW - 3_600_000)), NOW), None);
        // Dec 1 written mid-day Dec 1, long ago: stale too (it never got the rest of its day).
        assert_eq!(d.classify(0, Some((100, d.start(0).unwrap() + day / 2)), NOW), Some(GapKind::Stale));
        assert_eq!(d.priority(23, GapKind::Missing, NOW), Priority::Critical);
        assert_eq!(d.priority(0, GapKind::Truncated, NOW), Priority::High);
        assert_eq!(d.priority(0, GapKind::Missing, NOW), Priority::Low);
        let mut c = Coverage::default();
        for g in [None, Some(GapKind::Missing), Some(GapKind::Stale), None] {
            c.add(g);
        }
        assert_eq!((c.expected, c.valid, c.missing, c.stale), (4, 2, 1, 1));
        assert_eq!(c.ratio(), 0.5);
        assert_eq!(Coverage::default().ratio(), 1.0);
    }

    #[test]
    fn values_datasets() {
        let mut cfg = daily("cities");
        cfg.dates = None;
        cfg.values = Some(vec!["nyc".into(), "sf".into()]);
        cfg.key = "{dataset}/{value}.csv".into();
        cfg.collector = vec!["get".into(), "{value}".into()];
        let d = Dataset::compile(&cfg, NOW).unwrap();
        assert_eq!(d.count(), 2);
        assert_eq!(d.partition_of("cities/sf.csv"), Some(1));
        assert_eq!(d.argv(1), ["get", "sf"]);
        assert_eq!(d.partition(0), "nyc");
    }

    #[test]
    fn every_value_key_stays_inside_the_lake() {
        let with = |values: &[&str], key: &str| {
            let mut cfg = daily("teams");
            cfg.dates = None;
            cfg.values = Some(values.iter().map(|v| (*v).to_owned()).collect());
            cfg.key = key.into();
            cfg.collector = vec!["get".into(), "{value}".into()];
            Dataset::compile(&cfg, NOW).map(|_| ()).map_err(|e| e.to_string())
        };
        // Odd characters that an object's name can hold are fine.
        assert_eq!(with(&["a#b", "x%41y", "é ü", "a#"], "teams/{value}.json"), Ok(()));
        let cases: [(&[&str], &str); 6] = [
            (&["ok", "../x"], "datasets[teams].values[1]: \"../x\" gives the key \"teams/../x.json\", which has a `..` segment"),
            (&["../../../tmp/x"], "datasets[teams].values[0]: \"../../../tmp/x\""),
            (&["a/./b"], "datasets[teams].values[0]: \"a/./b\""),
            (&["a//b"], "empty segment"),
            (&["a\0b"], "control character '\\0'"),
            (&["a\nb"], "control character '\\n'"),
        ];
        for (values, needle) in cases {
            let e = with(values, "teams/{value}.json").unwrap_err();
            assert!(e.contains(needle), "{values:?}: {e}");
        }
        // A value that is the whole key.
        let e = with(&["/etc/passwd"], "{value}").unwrap_err();
        assert!(e.starts_with("datasets[teams].values[0]:") && e.contains("starts with `/`"), "{e}");
        for v in ["..", ".", "x/", "", "b#12"] {
            let e = with(&[v], "{value}").unwrap_err();
            assert!(e.starts_with("datasets[teams].values[0]:"), "{v:?}: {e}");
        }
        // A bad template is the key's fault, not the values'.
        let e = with(&["a"], "teams//{value}").unwrap_err();
        assert!(e.starts_with("datasets[teams].key:"), "{e}");
    }

    #[test]
    fn bad_datasets_name_the_dataset_and_key() {
        let bad = |f: &dyn Fn(&mut DatasetConfig)| {
            let mut c = daily("box");
            f(&mut c);
            Dataset::compile(&c, NOW).unwrap_err().to_string()
        };
        assert!(bad(&|c| c.key = "box/{day}.json".into()).starts_with("datasets[box].key: unknown placeholder {day}"));
        let e = bad(&|c| c.dates.as_mut().unwrap().to = "2024-11-01".into());
        assert!(e.starts_with("datasets[box].dates.to:") && e.contains("precedes"), "{e}");
        assert!(bad(&|c| c.dates.as_mut().unwrap().from = "yesterday".into()).starts_with("datasets[box].dates.from"));
        assert!(bad(&|c| c.key = "box/{date:%Y-%m}.json".into()).contains("does not tell partitions"));
        assert!(bad(&|c| c.collector.clear()).starts_with("datasets[box].collector"));
        assert!(bad(&|c| c.priority[0].when = "age <= 2".into()).starts_with("datasets[box].priority[0].when"));
        assert!(bad(&|c| c.values = Some(vec![])).contains("not both"));
        assert!(bad(&|c| c.key = "../etc/{date}".into()).contains(".."));
        assert!(bad(&|c| c.name = "a b".into()).contains("name"));
        // A name of `..` would lead `{dataset}/...` keys out of the lake.
        let e = bad(&|c| {
            c.name = "..".into();
            c.key = "{dataset}/{date}.json".into();
        });
        assert!(e.starts_with("datasets[..].key:") && e.contains("`..` segment"), "{e}");
        assert!(bad(&|c| c.key = "box//{date}.json".into()).contains("empty segment"), "a literal empty segment");
        assert!(bad(&|c| c.key = "box/{date}/".into()).contains("empty segment"));
        assert!(bad(&|c| c.key = "box/{date}\u{1}.json".into()).contains("control character"));
        assert!(bad(&|c| c.key = "box/{date}#1".into()).contains("#1"));
        let dup = compile_all(&[daily("a"), daily("a")], NOW).unwrap_err();
        assert_eq!(dup.to_string(), "datasets[a].name: is used by two datasets");
    }
}
