//! The command line (spec/cli.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// steward: an autonomous operations engine.
///
/// It reads a coordination directory of agents and work, scores the
/// system's health, decides what to do (scale, requeue, restart), does it
/// under guards, and journals every step.
///
/// Start with `steward --coordination DIR analyze` to see what it would do,
/// then `steward execute --dry-run`, then `steward execute` or `steward loop`.
#[derive(Debug, Parser)]
#[command(name = "steward", version, propagate_version = true, max_term_width = 100, after_help = AFTER_HELP)]
pub struct Cli {
    /// The coordination directory [default: ./coordination; env: STEWARD_COORDINATION]
    #[arg(long, global = true, value_name = "DIR")]
    pub coordination: Option<PathBuf>,

    /// Config file [default: ./steward.yaml when present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// State directory: journal, fleet registry, pidfile [default: <coordination>/../.steward]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Decision policy [default: from the config, else adaptive]
    #[arg(long, global = true, value_enum)]
    pub policy: Option<PolicyArg>,

    /// Print one JSON document on stdout (logs go to stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides
    #[arg(short = 'v', global = true, action = clap::ArgAction::Count)]
    pub log_level: u8,

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

/// A built-in policy.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// Size the fleet to the load; restart silent agents; requeue stale claims
    Adaptive,
    /// The compatibility rules table, decision for decision
    Classic,
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
    Analyze {
        /// Output format
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
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
    /// The built-in worker: claims work_*.json items and completes them (the supervisor runs it)
    Worker(crate::worker::WorkerArgs),
    /// A self-contained run: a load burst, real workers scaled up and back down, a live view
    Demo(crate::demo::DemoArgs),
    /// The daemon in the foreground: the loop plus the HTTP server (what systemd and Kubernetes run)
    ///
    /// Endpoints: /health, /status, /metrics (Prometheus), /tasks, /decisions, POST /execute,
    /// POST /rollback/ID, and a dashboard at /. Listens on server.listen (default
    /// 127.0.0.1:8080); any other address needs server.token. The first SIGINT/SIGTERM stops
    /// new cycles, finishes what is in flight and stops the fleet; a second exits at once.
    Serve {
        /// Decide and journal, touch nothing
        #[arg(long)]
        dry_run: bool,
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
    /// Forecasts, anomaly detection, failure prediction, tuning and cost.
    #[command(flatten)]
    Prediction(crate::predict::PredictionCommand),
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
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Include every decision in full in the output
    #[arg(long)]
    pub verbose: bool,
}

fn unit_interval(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is not between 0 and 1"))
    }
}
