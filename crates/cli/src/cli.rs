//! The command line (spec/cli.md).
//!
//! The doc comments below are `--help` text, written for a terminal: clap
//! prints them as they are, so they use `<id>` and `[default: ...]` the way
//! help does, not rustdoc's markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// steward: an autonomous operations engine.
///
/// It reads a coordination directory of agents and work (or a Redis stream,
/// a PostgreSQL job table, Prometheus: --source URL), scores the system's
/// health, decides what to do (scale, requeue, restart), does it under
/// guards, and journals every step.
///
/// Start with `steward --coordination DIR analyze` to see what it would do,
/// then `steward execute --dry-run`, then `steward execute` or `steward loop`.
#[derive(Debug, Parser)]
#[command(name = "steward", version, propagate_version = true, max_term_width = 100, after_help = AFTER_HELP)]
pub struct Cli {
    /// The coordination directory [default: ./coordination; env: STEWARD_COORDINATION]
    #[arg(long, global = true, help_heading = "Global options", value_name = "DIR")]
    pub coordination: Option<PathBuf>,

    /// What to watch, by URL: redis://HOST:PORT/DB?stream=S&group=G, redis://HOST/DB?list=L,
    /// postgres://USER@HOST/DB?table=T, prometheus://HOST:PORT?queue_depth=PROMQL, or a directory
    /// [default: the coordination directory; config: source.url]
    #[arg(long, global = true, help_heading = "Global options", value_name = "URL")]
    pub source: Option<String>,

    /// Config file [default: ./steward.yaml when present]
    #[arg(long, global = true, help_heading = "Global options", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// State directory: journal, fleet registry, pidfile [default: <coordination>/../.steward/<name of coordination>]
    #[arg(long, global = true, help_heading = "Global options", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Create the coordination directory if it does not exist (a missing one is an error otherwise)
    #[arg(long, global = true, help_heading = "Global options")]
    pub create: bool,

    /// Decision policy: adaptive or classic [default: from the config, else adaptive].
    /// `simulate` also runs the references hpa, keda and oracle, several at once: adaptive,hpa,oracle
    #[arg(long, global = true, help_heading = "Global options", value_name = "NAME[,NAME..]", value_parser = policy_list)]
    pub policy: Option<String>,

    /// Print one JSON document on stdout (logs go to stderr); the same as --format json
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// Output: a readable table, or one JSON document (every command that prints)
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t)]
    pub format: Format,

    /// More log output on stderr (-v info, -vv debug; RUST_LOG overrides); `execute -v` also prints every decision in full
    #[arg(short = 'v', long = "verbose", global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    pub log_level: u8,

    /// Log lines on stderr: readable text, JSON lines, or auto (text on a terminal, JSON otherwise)
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
Examples:
  steward --coordination ./coordination analyze
  steward execute --dry-run --format json | jq '.skipped[].reason'
  steward --json status | jq .data.status.health_score
  STEWARD_AUTO_MAX_AGENTS=20 steward loop --interval 15

Exit codes: 0 ok, 1 failure (an action failed, the target is locked), 2 bad usage or bad input.
Config: ./steward.yaml or --config FILE; env STEWARD_<SECTION>_<KEY> overrides it; flags override both.
Every key with its default: steward config --example";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise
    #[default]
    Auto,
    /// Readable text
    Text,
    /// JSON lines
    Json,
}

/// The policies `--policy` names: the loop's two, and the references
/// `simulate` compares them with.
pub const POLICIES: [&str; 5] = ["adaptive", "classic", "hpa", "keda", "oracle"];

/// `--policy`: one name or a comma list of known names.
fn policy_list(s: &str) -> Result<String, String> {
    let names: Vec<&str> = s.split(',').map(str::trim).collect();
    if let Some(bad) = names.iter().find(|n| !POLICIES.contains(n)) {
        return Err(format!("{bad:?} is not a policy (known: {})", POLICIES.join(", ")));
    }
    Ok(names.join(","))
}

/// Output format of `analyze` and `execute`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table
    #[default]
    Table,
    /// One JSON document
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Health score, state, agents, queue, daemon state and recent decisions
    Status,
    /// Assess the system and show the decisions it would make; executes nothing
    Analyze,
    /// One cycle: analyze, decide, guard, act, journal
    ///
    /// Every decision and its guard verdict is journaled before any action
    /// starts. A lock file (.steward.lock in the coordination directory)
    /// keeps a second executor out; --dry-run takes no lock and touches
    /// nothing. Exits 1 if an action failed or another steward holds the lock.
    Execute(ExecuteArgs),
    /// Run cycles until stopped (SIGINT/SIGTERM finish the current cycle; a second signal exits at once)
    Loop {
        /// Seconds between cycles [default: auto.interval, 30]
        #[arg(long, value_name = "SECS")]
        interval: Option<f64>,
        /// Stop after N cycles (0 = run until stopped)
        #[arg(long, default_value_t = 0, value_name = "N")]
        max_cycles: u64,
        /// Decide and journal, touch nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Agents with lifecycle phase, status, heartbeat age and current work
    Agents,
    /// Apply a decision's recorded inverse (e.g. agents 5 → 2), journaled as its own decision
    ///
    /// Refuses when the decision has no inverse, was not executed, or the
    /// fleet has changed since in a way that makes the inverse unsafe.
    Rollback {
        /// The decision to undo (from `steward status` or the journal)
        decision_id: String,
    },
    /// The built-in worker: claims work_*.json items (or a queue's, with --queue) and completes them (the supervisor runs it)
    Worker(WorkerArgs),
    /// A self-contained run: a load burst, real workers scaled up and back down, a live view
    Demo(DemoArgs),
    /// The daemon in the foreground: the loop plus the HTTP server (what systemd and Kubernetes run)
    ///
    /// Endpoints: /health, /status, /metrics (Prometheus), /decisions, /history, /tasks,
    /// /incidents, /events (Server-Sent Events), POST /execute, POST /rollback/ID, OTLP/HTTP
    /// at /v1/traces and /v1/metrics, and a dashboard at /. Listens on server.listen (default
    /// 127.0.0.1:8080); any other address needs server.token. The first SIGINT/SIGTERM stops
    /// new cycles, finishes what is in flight and stops the fleet; a second exits at once.
    Serve {
        /// Decide and journal, touch nothing
        #[arg(long)]
        dry_run: bool,
        /// Listen here [default: server.listen, 127.0.0.1:8080; env STEWARD_SERVER_LISTEN]
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
        /// Write JSON-lines logs here, rotated by logs.max_size (what `start` uses)
        #[arg(long, value_name = "FILE")]
        log_file: Option<std::path::PathBuf>,
        /// Rotate the log file at this many bytes (`start` passes logs.max_size)
        #[arg(long, hide = true, default_value_t = 100_000_000)]
        log_max_size: u64,
        /// Rotated generations kept (`start` passes logs.keep)
        #[arg(long, hide = true, default_value_t = 5)]
        log_keep: u32,
    },
    /// Start the daemon in the background (pidfile and log in the state directory)
    Start {
        /// Decide and journal, touch nothing
        #[arg(long)]
        dry_run: bool,
        /// Listen here [default: server.listen, 127.0.0.1:8080; env STEWARD_SERVER_LISTEN]
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
    },
    /// Stop the background daemon: SIGTERM, then SIGKILL after --timeout
    Stop {
        /// Seconds to wait for a graceful stop
        #[arg(long, default_value_t = 60.0, value_name = "SECS")]
        timeout: f64,
    },
    /// Stop, then start the background daemon
    Restart {
        /// Seconds to wait for a graceful stop
        #[arg(long, default_value_t = 60.0, value_name = "SECS")]
        timeout: f64,
    },
    /// Each component of the running daemon with its status; exit 0 healthy, 1 not
    Health,
    /// The daemon's log (JSON lines)
    Logs {
        /// Lines from the end
        #[arg(long, default_value_t = 50, value_name = "N")]
        tail: usize,
        /// Keep printing as the log grows
        #[arg(long)]
        follow: bool,
    },
    /// Replay a trace of arrivals through a simulated fleet under a policy; compare policies
    ///
    /// A discrete-event simulation: each row's arrivals are spread over its
    /// interval, each item's service time is drawn from --service-time, new
    /// agents serve after --startup, and the policy decides every --interval
    /// through the same code and guards the loop runs (with the config's
    /// settings). Reports the share of items that waited at most --sla,
    /// the p95 wait, the agent-hours paid for, scale actions, reversals
    /// (a scale opposite to the previous one within auto.scale_down_window,
    /// 300 s: flapping) and the longest queue.
    ///
    /// Policies: adaptive and classic (steward's), hpa (the Kubernetes HPA on
    /// the queue length, AverageValue --queue-target per pod, its default
    /// behavior: tolerance 0.1, 300 s scale-down window, +max(100 %, 4 pods)
    /// per 15 s, 15 s sync), keda (KEDA's queue scaler in front of the HPA:
    /// 30 s polling, activation 1, 300 s cooldown to zero when --min-agents is
    /// 0) and oracle (the fewest agents that meet the SLA, planned knowing the
    /// whole trace: a yardstick, not a policy).
    ///
    /// Examples:
    ///   steward simulate --trace load.csv --peak-agents 50 --startup 60 --compare
    ///   steward simulate --trace load.csv --policy adaptive,hpa,oracle --plot run.svg
    ///   steward simulate --trace load.csv --format json | jq .sla_attainment
    #[command(verbatim_doc_comment)]
    Simulate(SimulateArgs),
    /// Compare the lake with its datasets: coverage, gaps queued as tasks, gaps.json
    ///
    /// Lists the inventory (inventory.url), expands every dataset's keys, and
    /// classifies each as valid, missing, truncated (below min_bytes) or stale
    /// (written before its partition ended and older than max_age). Each gap
    /// becomes a task in the journal (an open gap is never queued twice); tasks
    /// whose gap closed are resolved. Writes <state-dir>/inventory/gaps.json.
    /// Without --once it runs every orchestrator.reconciliation_interval until
    /// stopped. Nothing in the lake is touched.
    Reconcile {
        /// One reconciliation, then exit
        #[arg(long)]
        once: bool,
    },
    /// Run the collectors of queued tasks, verify each result, retry or dead-letter
    ///
    /// Tasks run by priority (critical, high, medium, low), oldest first,
    /// orchestrator.concurrency at once, each dataset's collector at most once
    /// per its min_interval. A task is done only when the inventory then shows
    /// its key present and valid. Runs until no task is ready before
    /// orchestrator.max_runtime ends. SIGINT/SIGTERM: collectors are killed and
    /// their tasks requeued. Exits 1 if a task was dead-lettered.
    Orchestrate {
        /// Print what would run, in order; run nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// The task queue: counts by priority and state, and the open tasks
    Tasks {
        #[command(subcommand)]
        action: Option<TasksAction>,
        /// Only tasks in this state (queued, running, done, dead, resolved)
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// At most this many tasks listed
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// The signed audit trail: verify it, show it, export it, print its public key
    ///
    /// Every decision, action, outcome, rollback, config change and manual
    /// command is a record with its actor (loop, cli:USER, http:TOKEN-NAME),
    /// hash-chained and Ed25519-signed with <state-dir>/audit.key.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Incidents: list, show a post-incident report, acknowledge, resolve
    ///
    /// Raised by rules over each cycle: health critical (severity 1),
    /// degraded for incidents.degraded_for (2), a circuit breaker open, a
    /// dead-lettered task or a failing daemon component (3). One open
    /// incident per rule and target; each walks detected → assessed →
    /// contained → eradicated → recovered → closed, and is sent to the
    /// notify: section's Alertmanager and webhooks.
    Incidents {
        #[command(subcommand)]
        action: Option<IncidentsAction>,
    },
    /// Back up, verify or restore steward: journal, state files, config, coordination directory
    ///
    /// One tar archive with a MANIFEST.json of every file's size and SHA-256.
    /// `create` copies the journal online (the daemon may run); `verify` checks
    /// every file, the journal's integrity and its audit chain; `restore`
    /// refuses while the daemon runs, verifies first, and keeps what it
    /// replaces in <state-dir>/pre-restore/<time>/. See docs/backup.md.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Forecasts, anomaly detection, failure prediction, tuning and cost.
    #[command(flatten)]
    Prediction(PredictionCommand),
    /// Show the effective config, or an example with every key
    Config {
        /// Print an example steward.yaml with every key, its default and meaning
        #[arg(long)]
        example: bool,
    },
}

/// Flags of `execute`.
#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// Execute at most N decisions this cycle [default: auto.max_decisions, 3]
    #[arg(long, value_name = "N")]
    pub max: Option<u32>,
    /// Skip decisions below this confidence [default: auto.min_confidence, 0.6]
    #[arg(long, value_name = "X", value_parser = unit_interval)]
    pub min_confidence: Option<f64>,
    /// Give every decision this confidence for this run (1 forces all through min_confidence, 0 holds all back)
    #[arg(long, value_name = "X", value_parser = unit_interval)]
    pub force_confidence: Option<f64>,
    /// Decide, guard and journal, but touch nothing
    #[arg(long)]
    pub dry_run: bool,
}

fn unit_interval(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is not between 0 and 1"))
    }
}

/// `steward tasks` actions.
#[derive(Debug, Subcommand)]
pub enum TasksAction {
    /// Put a dead-lettered task back in the queue (its attempts reset)
    Retry {
        /// The task's id (from `steward tasks --state dead`)
        id: Option<i64>,
        /// Every dead-lettered task
        #[arg(long, conflicts_with = "id")]
        all_dead: bool,
    },
}

/// `steward incidents` actions.
#[derive(Debug, Subcommand)]
pub enum IncidentsAction {
    /// Open incidents (newest first); --all for closed ones too
    List {
        /// Closed incidents too
        #[arg(long)]
        all: bool,
        /// At most this many
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// A post-incident report in Markdown: timeline, metrics, actions, outcome
    Show {
        /// The incident's id (from `steward incidents list`)
        id: i64,
    },
    /// Acknowledge: someone is on it (recorded with who, in the audit trail)
    Ack {
        /// The incident's id
        id: i64,
    },
    /// Close it by hand; if its condition still holds, the next cycle opens a new one
    Resolve {
        /// The incident's id
        id: i64,
        /// What was done, for the report
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
}

/// `steward backup` actions.
#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Write an archive: the journal (copied online), the state files, the config, the coordination directory
    Create {
        /// The archive to write; an existing file is never replaced [default: <state-dir>/backups/steward-backup-<UTC time>.tar]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check an archive: every file against the manifest, the journal's integrity and audit chain (exit 2 if bad)
    Verify {
        /// The archive
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Put an archive in place (refused while the daemon runs); what it replaces is kept aside
    Restore {
        /// The archive
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// `steward audit` actions.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Recompute the chain and check every signature; name the first bad record (exit 1)
    Verify {
        /// Start at this seq (the record before it is trusted)
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        /// Verify with this public key (64 hex digits) instead of the state directory's key
        #[arg(long, value_name = "HEX")]
        pubkey: Option<String>,
        /// Accept a missing audit.head (then records cut from the end cannot be detected)
        #[arg(long)]
        no_head: bool,
    },
    /// The records, oldest first
    Show {
        /// Only records at or after T (RFC 3339, or a duration ago: 1h, 2d)
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only records of this kind (decision, outcome, action, rollback, command, config, incident, ...)
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// At most this many (the newest)
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// Print the public key that verifies the chain (give it to auditors)
    Pubkey,
    /// Every record as JSON lines (seq, ts, time, actor, kind, payload, prev_hash, hash, signature)
    Export {
        /// Write to this file instead of stdout (created new; never overwritten)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Only records at or after T (RFC 3339, or a duration ago)
        #[arg(long, value_name = "T")]
        since: Option<String>,
    },
}

/// Flags of `steward simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Arrivals: a CSV with a `timestamp,value` header, value = items arriving in the row's interval
    #[arg(long, value_name = "IN.csv")]
    pub trace: PathBuf,
    /// Service time per item: seconds, const:S, exp:MEAN, uniform:A,B or lognormal:MEDIAN,SIGMA
    #[arg(long, default_value = "exp:30", value_name = "DIST")]
    pub service_time: String,
    /// Seconds from asking for an agent to its first item [default: adaptive.startup_time, 30]
    #[arg(long, value_name = "SECS")]
    pub startup: Option<f64>,
    /// The SLA: the longest an item may wait in the queue, in seconds
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub sla: f64,
    /// Seconds between the policy's decisions (hpa and keda keep their own) [default: auto.interval, 30]
    #[arg(long, value_name = "SECS")]
    pub interval: Option<f64>,
    /// Fewest agents [default: auto.min_agents, 1]
    #[arg(long, value_name = "N")]
    pub min_agents: Option<u32>,
    /// Most agents [default: auto.max_agents, 10]
    #[arg(long, value_name = "N")]
    pub max_agents: Option<u32>,
    /// Scale the trace so its busiest row needs N agents (at the mean service time)
    #[arg(long, value_name = "N", conflicts_with = "scale")]
    pub peak_agents: Option<f64>,
    /// Multiply every count of the trace by X
    #[arg(long, value_name = "X")]
    pub scale: Option<f64>,
    /// hpa and keda: the queue items per pod they aim at (AverageValue; KEDA's default is 5)
    #[arg(long, default_value_t = 5.0, value_name = "N")]
    pub queue_target: f64,
    /// Run every policy and print them side by side
    #[arg(long)]
    pub compare: bool,
    /// Draw arrivals, agents, backlog and wait over time for each policy into an SVG file
    #[arg(long, value_name = "OUT.svg")]
    pub plot: Option<PathBuf>,
    /// Seed of the service times (every policy sees the same items)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Flags of `steward worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Consume a real queue instead of the coordination directory: a Redis stream with its
    /// consumer group (redis://HOST:PORT/DB?stream=S&group=G) or a PostgreSQL job table
    /// (postgres://USER@HOST/DB?table=T). Passwords: in the URL, or REDIS_PASSWORD / PGPASSWORD
    #[arg(long, value_name = "URL")]
    pub queue: Option<String>,
    /// Items claimed at once from a --queue (each is still completed on its own record)
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub batch: usize,
    /// This agent's id; its file is agent_<id>.json (or <id>.json when the id starts with "agent_")
    /// [default: env STEWARD_AGENT_ID, else agent_<pid>]
    #[arg(long)]
    pub id: Option<String>,
    /// Simulated time per item: a number of seconds, const:S, exp:MEAN, uniform:A,B or lognormal:MEDIAN,SIGMA
    #[arg(long, default_value = "0", value_name = "DIST")]
    pub service_time: String,
    /// Fraction of simulated items that fail (and are retried or dead-lettered)
    #[arg(long, default_value_t = 0.0, value_name = "X")]
    pub fail_rate: f64,
    /// Run this program per item instead of simulating: the item's JSON on stdin, exit 0 = done.
    /// Give it last: `steward worker --exec python3 handle.py`
    #[arg(long, num_args = 1.., value_name = "ARGV", allow_hyphen_values = true)]
    pub exec: Option<Vec<String>>,
    /// Seconds allowed per --exec run before it is killed and the item failed
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub exec_timeout: f64,
    /// Seconds between heartbeats in the agent file
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub heartbeat_interval: f64,
    /// Attempts before an item is dead-lettered (an item's own max_attempts wins)
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_attempts: u32,
    /// Exit after this many items (0 = no limit)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_items: u64,
    /// Exit after this many seconds without work (0 = wait for work forever)
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub exit_when_idle: f64,
    /// Seed of the simulation's random numbers [default: from the id and the clock]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Append a line to FILE for each item this worker finished but found already completed
    /// (a duplicate execution); used by `steward demo` and tests to prove there are none
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// fsync every claim and completion before it becomes visible (survives a power loss,
    /// at a large cost in throughput); without it, writes survive any process crash
    #[arg(long)]
    pub fsync: bool,
}

/// Flags of `steward demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Longest the demo runs, in seconds: a burst in the first part, a drain after. It ends
    /// earlier once the load is over, the queue drained and the fleet scaled back down
    #[arg(long, default_value_t = 75.0, value_name = "SECS")]
    pub duration: f64,
    /// SIGKILL a random worker every few seconds (nothing may be lost)
    #[arg(long)]
    pub chaos: bool,
    /// Directory to run in; made fresh (a previous demo's is replaced, anything else is refused)
    #[arg(long, default_value = "steward-demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// Arrivals per second at the peak of the burst
    #[arg(long, default_value_t = 20.0, value_name = "N")]
    pub peak_rate: f64,
    /// Seconds between cycles
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub interval: f64,
    /// Run on a real queue instead of a directory: a Redis stream
    /// (redis://HOST:PORT/DB?stream=S&group=G) or a PostgreSQL table (postgres://USER@HOST/DB?table=T).
    /// Items are added to it, workers consume it; what it held before is left alone and not counted
    #[arg(long, value_name = "URL")]
    pub queue: Option<String>,
}

/// The prediction commands, flattened into the top-level command list.
#[derive(Debug, Subcommand)]
pub enum PredictionCommand {
    /// Forecast a `timestamp,value` series, or the queue's arrival rate.
    ///
    /// Without --input the series is the arrival rate (items per second)
    /// between the journal's recorded cycles. Prints the pattern
    /// (periodic|trending|stable, from seasonal strength and a Mann-Kendall
    /// test), the season length, the model chosen on a holdout (exponential
    /// smoothing or the seasonal naive of a day or a week, whichever erred
    /// least), the forecast with 95 % intervals, and a confidence from
    /// holdout accuracy and the amount of data. Timestamps must increase
    /// (exit 2 naming the line) unless --sort.
    Forecast(ForecastArgs),
    /// Streaming anomaly scores for a `timestamp,value` series.
    ///
    /// Writes `timestamp,value,anomaly_score` row for row (score 0..1), every
    /// input row in file order with its timestamp as written. Each score
    /// uses only its row and the rows before it. Repeated timestamps, a
    /// clock that steps back (daylight saving, an NTP step, a reboot), long
    /// gaps and irregular sampling are scored in file order, with a warning
    /// naming the lines and what was assumed; a row earlier than a row
    /// before it is scored as if at that row's time. --strict refuses
    /// repeated and backward timestamps instead (exit 2).
    ///
    /// Where to page: 0.88 (the default --threshold of the closing summary)
    /// is about where NAB's standard profile puts it on its development
    /// data (0.874), on the quieter side: about 0.9 false alarms per 1,000
    /// points of bursty, heavy-tailed server metrics. A series' first two
    /// days are a learning period: a single point must be up to twice as
    /// surprising to page. 0.95 gives under half as many false alarms and
    /// misses far more of the subtle changes. docs/prediction.md has the
    /// measurements.
    Detect(DetectArgs),
    /// Predict failures: per component and metric, the trend extrapolated to
    /// its limit.
    ///
    /// Input: --input CSV with the header `timestamp,component,metric,value`,
    /// else the telemetry records in the coordination directory
    /// (`telemetry_*.json`: `timestamp`, `metrics` {name: number}; the
    /// component is `attributes.component`, `attributes.agent_id`,
    /// `attributes.host` or `name`). Limits: memory 95, disk 95, cpu 95,
    /// error_rate 0.05 (matched by name), changed with --limit.
    Predict(PredictArgs),
    /// Tune: workers from Little's law, a memory split, query-time estimates.
    ///
    /// Workers: the arrival rate (--arrival-rate, else the forecast peak of
    /// the journal's arrival rate over --horizon) times the service time
    /// (--service-time, else measured from the journal), over the target
    /// utilization. Memory: --usage CSV with `application_mb` (and optional
    /// `buffer_mb`) columns and --total-memory-mb. Queries: --queries CSV with
    /// `rows,bytes,duration_ms`, and --rows/--bytes for the query to estimate.
    Tune(TuneArgs),
    /// Cost strategies under a monthly budget and an SLA (p95 queue wait).
    ///
    /// The load is the forecast of the journal's arrival rate (or of --input,
    /// a `timestamp,value` trace of arrivals per row) over --horizon; the
    /// service time is --service-time or measured from the journal. Prices
    /// per agent-hour come from --price-on-demand, --price-spot, --price-idle.
    Cost(CostArgs),
}

/// `steward forecast`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// Input CSV with a `timestamp,value` header (default: the journal's arrival rate)
    #[arg(long, value_name = "IN.csv")]
    pub input: Option<PathBuf>,
    /// Points to forecast, or a duration such as 60m, 6h, 1d
    #[arg(long, default_value = "24", value_name = "N|DURATION")]
    pub horizon: String,
    /// Probability of the prediction interval
    #[arg(long, default_value_t = 0.95)]
    pub interval: f64,
    /// Sort the rows by timestamp (stable) instead of refusing rows out of order; of equal timestamps the last row is kept
    #[arg(long)]
    pub sort: bool,
}

/// `steward detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Input CSV with a `timestamp,value` header
    #[arg(long, value_name = "IN.csv")]
    pub input: PathBuf,
    /// Output CSV (`-` for stdout)
    #[arg(long, value_name = "OUT.csv", default_value = "-")]
    pub output: PathBuf,
    /// Reject repeated timestamps and a clock that steps back (exit 2) instead of scoring every row in file order
    #[arg(long)]
    pub strict: bool,
    /// The score you page on: the closing summary counts the alarms at it (a row at or above it after one below) and names the first ones. The output file is the same whatever it is
    #[arg(long, value_name = "SCORE", default_value_t = 0.88, value_parser = unit_interval)]
    pub threshold: f64,
}

/// `steward predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// CSV with a `timestamp,component,metric,value` header (default: telemetry in the coordination directory)
    #[arg(long, value_name = "IN.csv")]
    pub input: Option<PathBuf>,
    /// A limit, `metric=value` (rising, e.g. memory_percent=90) or `metric<value` (falling, e.g. free_gb<5); repeatable
    #[arg(long, value_name = "METRIC=VALUE")]
    pub limit: Vec<String>,
    /// Failures further away than this are not predicted [default: predict.horizon, 168 h]
    #[arg(long, value_name = "HOURS")]
    pub horizon_hours: Option<f64>,
    /// Only the last this many hours of each series are fitted [default: predict.window, 72 h]
    #[arg(long, value_name = "HOURS")]
    pub window_hours: Option<f64>,
    /// Sort each series' rows by timestamp (stable) instead of refusing rows out of order; of equal timestamps the last row is kept
    #[arg(long)]
    pub sort: bool,
}

/// `steward tune`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// Arrival rate to size for, items per second (default: forecast peak from the journal)
    #[arg(long, value_name = "PER_SEC")]
    pub arrival_rate: Option<f64>,
    /// Mean service time per item, seconds (default: measured from the journal)
    #[arg(long, value_name = "SECS")]
    pub service_time: Option<f64>,
    /// Target utilization, 0..1 (default: adaptive.target_utilization)
    #[arg(long, value_name = "RHO")]
    pub target_utilization: Option<f64>,
    /// How far ahead the forecast peak is taken (the agents' start-up time or more)
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub horizon: String,
    /// Memory usage CSV with `application_mb` and optional `buffer_mb` columns
    #[arg(long, value_name = "USAGE.csv")]
    pub usage: Option<PathBuf>,
    /// Memory to split, MB (with --usage)
    #[arg(long, value_name = "MB")]
    pub total_memory_mb: Option<f64>,
    /// Query history CSV with `rows,bytes,duration_ms` columns
    #[arg(long, value_name = "QUERIES.csv")]
    pub queries: Option<PathBuf>,
    /// Rows of the query to estimate (with --queries)
    #[arg(long, default_value_t = 0.0)]
    pub rows: f64,
    /// Bytes of the query to estimate (with --queries)
    #[arg(long, default_value_t = 0.0)]
    pub bytes: f64,
}

/// `steward cost`.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Monthly budget, in the prices' currency
    #[arg(long, value_name = "X")]
    pub budget_per_month: f64,
    /// SLA: the 95th percentile of the queue wait, milliseconds
    #[arg(long, value_name = "MS")]
    pub sla_ms: f64,
    /// Arrival trace: `timestamp,value`, each value the count of arrivals in its row's interval (default: the journal)
    #[arg(long, value_name = "IN.csv")]
    pub input: Option<PathBuf>,
    /// Mean service time per item, seconds (default: measured from the journal)
    #[arg(long, value_name = "SECS")]
    pub service_time: Option<f64>,
    /// Agents running now (default: the journal's mean active agents)
    #[arg(long, value_name = "N")]
    pub current_agents: Option<f64>,
    /// The period the strategies are sized over (a forecast horizon)
    #[arg(long, default_value = "1d", value_name = "DURATION")]
    pub horizon: String,
    /// Price of an on-demand agent-hour [default: cost.on_demand_per_agent_hour, 0.10]
    #[arg(long)]
    pub price_on_demand: Option<f64>,
    /// Price of a spot agent-hour [default: cost.spot_per_agent_hour, 0.03]
    #[arg(long)]
    pub price_spot: Option<f64>,
    /// Price of an idle (suspended) agent-hour [default: cost.idle_per_agent_hour, 0.01]
    #[arg(long)]
    pub price_idle: Option<f64>,
}

impl PredictionCommand {
    /// The command's name, for the JSON envelope.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Forecast(_) => "forecast",
            Self::Detect(_) => "detect",
            Self::Predict(_) => "predict",
            Self::Tune(_) => "tune",
            Self::Cost(_) => "cost",
        }
    }
}
