//! Prediction commands: `forecast`, `detect`, `predict`, `tune`, `cost`
//! (spec/cli.md, "Prediction and tuning"). The math lives in
//! `steward_core::predict`; this module reads inputs, calls it, and prints
//! results. Bad input (a file that does not parse, a bad flag value) is a
//! `UsageError` (exit 2) that names the file and line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use steward_core::predict::cost::{self, CostInput, Prices};
use steward_core::predict::detect::{Detector, DetectorConfig};
use steward_core::predict::forecast::{self, arrival_rates, Forecast, ForecastConfig};
use steward_core::predict::input;
use steward_core::predict::maintenance::{self, MaintenanceConfig};
use steward_core::predict::series::{
    human_ms, parse_csv_in_file_order, parse_csv_rows, parse_csv_sorted, time_report, Duplicates, RawRow, Series, SeriesError, Sorted,
    TimeIssue, TimeReport, GAP_STEPS,
};
use steward_core::predict::tune;
use steward_core::time::format_rfc3339;
use steward_runtime::predict::{journal_cycles, load_profile, measured};
use steward_sources::coordination::telemetry_samples;

use crate::cli::{CostArgs, DetectArgs, ForecastArgs, PredictArgs, PredictionCommand, TuneArgs};
use crate::config::Config;
use crate::error::UsageError;
use crate::output::{out, print_json, table};

/// Runs a prediction command.
///
/// # Errors
/// Bad input (exit 2 through `UsageError`) or failures (exit 1).
pub fn run(cmd: PredictionCommand, cfg: &Config, json: bool) -> Result<ExitCode> {
    match cmd {
        PredictionCommand::Forecast(a) => run_forecast(&a, cfg, json),
        PredictionCommand::Detect(a) => run_detect(&a),
        PredictionCommand::Predict(a) => run_predict(&a, cfg, json),
        PredictionCommand::Tune(a) => run_tune(&a, cfg, json),
        PredictionCommand::Cost(a) => run_cost(&a, cfg, json),
    }
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn read_input(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// A parse error of a file's content, as bad input naming the file.
fn in_file<T>(path: &Path, parsed: Result<T, String>) -> Result<T> {
    parsed.map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// The journal of the state directory.
fn journal_path(cfg: &Config) -> steward_store::JournalAt {
    cfg.journal()
}

fn read_series(path: &Path, duplicates: Duplicates) -> Result<(String, Series)> {
    let text = read_input(path)?;
    let series = parse_csv_rows(&text, 2, duplicates).map_err(|e| usage(format!("{}: {e}", path.display())))?.series;
    Ok((text, series))
}

/// A series in increasing time order: refused otherwise (naming the line,
/// and how to sort it), or sorted with `--sort` (a warning says what moved).
fn read_ordered_series(path: &Path, sort: bool) -> Result<Series> {
    if sort {
        let text = read_input(path)?;
        let (series, sorted) = parse_csv_sorted(&text, 2).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        warn_sorted(path, &sorted);
        return Ok(series);
    }
    let text = read_input(path)?;
    parse_csv_rows(&text, 2, Duplicates::Reject).map(|p| p.series).map_err(|e| {
        let hint = match e {
            SeriesError::Duplicate { .. } | SeriesError::Unsorted { .. } => {
                "; --sort sorts the rows by time, keeping the last of equal timestamps"
            }
            _ => "",
        };
        usage(format!("{}: {e}{hint}", path.display()))
    })
}

/// Whether a metric CSV's error (`input::metric_samples`) refuses rows out of time order.
fn is_order_error(message: &str) -> bool {
    message.contains(": duplicate timestamp ") || message.contains("is earlier than line")
}

fn warn_sorted(path: &Path, sorted: &Sorted) {
    if !sorted.is_unchanged() {
        tracing::warn!("{}: sorted by timestamp (--sort): {sorted}.", path.display());
    }
}

/// Up to this many lines of a kind are named in a warning; the rest are counted.
const NAMED_LINES: usize = 3;

/// The warnings of `detect` about times that are not a regular increasing
/// clock: what happened where, and what the scores assumed.
fn time_warnings(report: &TimeReport) -> Vec<String> {
    let (mut back, mut repeats, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
    for issue in &report.issues {
        match issue {
            TimeIssue::Backward { .. } => back.push(issue),
            TimeIssue::Duplicate { .. } => repeats.push(issue),
            TimeIssue::Gap { .. } => gaps.push(issue),
        }
    }
    let step = report.step_ms.map_or_else(|| "?".to_owned(), human_ms);
    let mut out = Vec::new();
    // A step back says per place at whose time its rows were scored; the
    // other kinds assume one thing, said once.
    for (of_kind, head, per_place, assumed) in [
        (back, "the clock steps back {n} time(s)".to_owned(), true, "--strict refuses them"),
        (repeats, "{n} repeated timestamp(s)".to_owned(), false, "scored in file order, at the same time; --strict refuses them"),
        (gaps, format!("{{n}} gap(s) longer than {GAP_STEPS} steps of {step}"), false, "scored at their own times, nothing filled in"),
    ] {
        if of_kind.is_empty() {
            continue;
        }
        let named: Vec<String> = of_kind.iter().take(NAMED_LINES).map(|i| if per_place { i.to_string() } else { i.what() }).collect();
        let more = match of_kind.get(NAMED_LINES) {
            Some(next) => format!("; and {} more (the first on line {})", of_kind.len() - NAMED_LINES, next.line()),
            None => String::new(),
        };
        out.push(format!("{}: {}{more} ({assumed})", head.replace("{n}", &of_kind.len().to_string()), named.join("; ")));
    }
    if let (Some(irr), Some(step)) = (&report.irregular, report.step_ms) {
        let lines: Vec<String> = irr.first_lines.iter().map(ToString::to_string).collect();
        out.push(format!(
            "irregular sampling: {} of {} steps differ from the usual {} by more than half ({} to {}; the first after line(s) {}); \
             each row is scored at its own time",
            irr.steps_off,
            irr.steps,
            human_ms(step),
            human_ms(irr.range_ms.0),
            human_ms(irr.range_ms.1),
            lines.join(", ")
        ));
    }
    out
}

/// `N` points, or a duration converted to points of `step_ms`.
fn horizon_points(text: &str, step_ms: Option<i64>) -> Result<usize> {
    if let Ok(n) = text.trim().parse::<usize>() {
        return if n == 0 { Err(usage("--horizon must be at least 1")) } else { Ok(n) };
    }
    let d = steward_core::config::duration::parse(text).map_err(|e| usage(format!("--horizon: {e}")))?;
    let step = step_ms.filter(|s| *s > 0).ok_or_else(|| usage("--horizon as a duration needs a series with a regular step"))?;
    let n = (d.as_millis() as f64 / step as f64).ceil() as usize;
    Ok(n.clamp(1, 1_000_000))
}

fn forecast_json(f: &Forecast) -> Value {
    json!({
        "pattern": f.pattern,
        "season_length": f.season_length,
        "model": f.model,
        "forecast": f.forecast.iter().map(|p| json!({
            "timestamp": format_rfc3339(p.ts), "value": p.value, "lower": p.lower, "upper": p.upper,
        })).collect::<Vec<_>>(),
        "confidence": f.confidence,
        "diagnostics": f.diagnostics,
        "holdout": f.holdout,
    })
}

fn run_forecast(a: &ForecastArgs, cfg: &Config, json: bool) -> Result<ExitCode> {
    if !(a.interval > 0.0 && a.interval < 1.0) {
        return Err(usage(format!("--interval {} must be between 0 and 1", a.interval)));
    }
    let (series, source) = match &a.input {
        Some(p) => (read_ordered_series(p, a.sort)?, p.display().to_string()),
        None => {
            let rates = arrival_rates(&journal_cycles(&journal_path(cfg))?);
            if rates.len() < 2 {
                return Err(usage(format!(
                    "the journal {} has {} arrival-rate point(s): run the loop for a while, or pass --input",
                    cfg.journal(),
                    rates.len()
                )));
            }
            (rates, "journal arrival rate (items/s)".to_owned())
        }
    };
    let horizon = horizon_points(&a.horizon, series.step_ms())?;
    let cfg = ForecastConfig { interval: a.interval, ..ForecastConfig::default() };
    let f = forecast::forecast(&series, horizon, &cfg).map_err(|e| usage(format!("{source}: {e}")))?;
    if json {
        print_json(&forecast_json(&f));
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "steward forecast: {source}\npattern {} (seasonal strength {:.2}, trend p {:.3}), season {}, model {}, confidence {:.2}\n\n",
        f.pattern,
        f.diagnostics.seasonal_strength,
        f.diagnostics.trend_p_value,
        f.season_length.map_or("none".to_owned(), |m| m.to_string()),
        f.model,
        f.confidence
    );
    if let Some(h) = &f.holdout {
        let naive: Vec<String> =
            h.naive.iter().map(|n| format!("m={} {}", n.season, n.mase.map_or("-".to_owned(), |m| format!("{m:.3}")))).collect();
        let _ = writeln!(
            out,
            "holdout MASE {} (seasonal naive: {})\n",
            h.mase.map_or("-".to_owned(), |m| format!("{m:.3}")),
            if naive.is_empty() { "none".to_owned() } else { naive.join(", ") }
        );
    }
    let rows: Vec<Vec<String>> = f
        .forecast
        .iter()
        .map(|p| vec![format_rfc3339(p.ts), format!("{:.3}", p.value), format!("{:.3}", p.lower), format!("{:.3}", p.upper)])
        .collect();
    out.push_str(&table(&["TIMESTAMP", "VALUE", "LOWER", "UPPER"], &rows));
    out!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn run_detect(a: &DetectArgs) -> Result<ExitCode> {
    let text = read_input(&a.input)?;
    let bad = |e: SeriesError| usage(format!("{}: {e}", a.input.display()));
    // Every row in file order. The detector looks back by time (a day, a
    // week), so it is fed times that never go back: a row earlier than one
    // before it is scored at the latest time so far (--strict refuses it).
    let (rows, values, scoring_ts, report): (Vec<RawRow<'_>>, Vec<f64>, Vec<i64>, TimeReport) = if a.strict {
        let p = parse_csv_rows(&text, 2, Duplicates::Reject).map_err(bad)?;
        let report = time_report(&p.series.ts, &p.lines, &p.rows);
        (p.rows, p.series.values, p.series.ts, report)
    } else {
        let p = parse_csv_in_file_order(&text, 2).map_err(bad)?;
        (p.rows, p.values, p.scoring_ts, p.report)
    };
    for w in time_warnings(&report) {
        tracing::warn!("{}: {w}", a.input.display());
    }
    let mut detector = Detector::new(DetectorConfig::default());
    let mut out = String::with_capacity(text.len() + rows.len() * 12);
    out.push_str("timestamp,value,anomaly_score\n");
    // Alarms at the threshold: rows at or above it after one below (a run
    // of such rows is one alarm), the first few named.
    const NAMED: usize = 3;
    let (mut alarms, mut first_alarms, mut above) = (0usize, Vec::with_capacity(NAMED), false);
    let mut peak = (0.0f64, "");
    for (row, (&t, &v)) in rows.iter().zip(scoring_ts.iter().zip(&values)) {
        let score = detector.update(t, v);
        let now_above = score >= a.threshold;
        if now_above && !above {
            alarms += 1;
            if first_alarms.len() < NAMED {
                first_alarms.push(row.timestamp);
            }
        }
        above = now_above;
        if score > peak.0 {
            peak = (score, row.timestamp);
        }
        let _ = writeln!(out, "{},{},{}", row.timestamp, row.value, score);
    }
    let to = if a.output.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        "stdout".to_owned()
    } else {
        std::fs::write(&a.output, out).with_context(|| format!("writing {}", a.output.display()))?;
        a.output.display().to_string()
    };
    // The scores went to `to`; a line for the person who ran it.
    let named = match alarms {
        0 => String::new(),
        n if n <= NAMED => format!(": {}", first_alarms.join(", ")),
        _ => format!(", the first at {}", first_alarms.join(", ")),
    };
    eprintln!(
        "steward detect: {} rows scored to {to}; {alarms} alarm(s) at {}{named}; highest score {:.2} at {}",
        rows.len(),
        a.threshold,
        peak.0,
        if peak.1.is_empty() { "-" } else { peak.1 }
    );
    Ok(ExitCode::SUCCESS)
}

fn run_predict(a: &PredictArgs, cfg: &Config, json: bool) -> Result<ExitCode> {
    // The predict: section of the config, then the flags.
    let mut m: MaintenanceConfig = cfg.predict.maintenance();
    m.horizon_hours = a.horizon_hours.unwrap_or(m.horizon_hours);
    m.window_hours = a.window_hours.unwrap_or(m.window_hours);
    if !(m.horizon_hours.is_finite() && m.horizon_hours > 0.0 && m.window_hours.is_finite() && m.window_hours > 0.0) {
        return Err(usage("--horizon-hours and --window-hours must be positive"));
    }
    for l in &a.limit {
        let (name, limit) = input::parse_limit(l).map_err(|e| usage(format!("--limit {l:?}: {e}")))?;
        m.limits.insert(name, limit);
    }
    let (samples, warnings, source) = match &a.input {
        Some(p) if a.sort => {
            let (samples, sorted) = in_file(p, input::metric_samples_sorted(&read_input(p)?))?;
            warn_sorted(p, &sorted);
            (samples, Vec::new(), p.display().to_string())
        }
        Some(p) => {
            let samples = input::metric_samples(&read_input(p)?).map_err(|e| {
                let hint = if is_order_error(&e) { "; --sort sorts each series by time, keeping the last of equal timestamps" } else { "" };
                usage(format!("{}: {e}{hint}", p.display()))
            })?;
            (samples, Vec::new(), p.display().to_string())
        }
        None => {
            let (s, w) = telemetry_samples(&cfg.coordination.dir, cfg.coordination.max_item_bytes);
            (s, w, format!("telemetry in {}", &cfg.coordination.dir.display()))
        }
    };
    let predictions = maintenance::predict(&samples, &m);
    if json {
        let items: Vec<Value> = predictions
            .iter()
            .map(|p| {
                let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("last_sample".to_owned(), json!(format_rfc3339(p.last_sample)));
                }
                v
            })
            .collect();
        print_json(&json!({"source": source, "predictions": items, "warnings": warnings}));
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!("steward predict: {source}, horizon {} h\n\n", m.horizon_hours);
    if predictions.is_empty() {
        out.push_str("No series with a limit (memory, disk, cpu, error_rate, or --limit).\n");
    }
    let rows: Vec<Vec<String>> = predictions
        .iter()
        .map(|p| {
            vec![
                p.component.clone(),
                p.metric.clone(),
                if p.will_fail { "yes".to_owned() } else { "no".to_owned() },
                p.time_to_failure_hours.map_or("-".to_owned(), |t| format!("{t:.1} h")),
                format!("{:.2}", p.confidence),
                // The names JSON and the docs use (`add_capacity`).
                p.recommendations
                    .iter()
                    .map(|r| serde_json::to_value(r.action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", "),
                p.notes.join("; "),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&table(&["COMPONENT", "METRIC", "FAILS", "FAILS IN", "CONFIDENCE", "RECOMMEND", "NOTES"], &rows));
    }
    for w in &warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn run_tune(a: &TuneArgs, cfg: &Config, json: bool) -> Result<ExitCode> {
    let rho = a.target_utilization.unwrap_or(cfg.adaptive.target_utilization);
    if !(rho > 0.0 && rho <= 1.0) {
        return Err(usage(format!("--target-utilization {rho} must be in (0, 1]")));
    }
    let mut notes: Vec<String> = Vec::new();
    let need_journal = a.arrival_rate.is_none() || a.service_time.is_none();
    let m = if need_journal { Some(measured(&journal_path(cfg))?) } else { None };
    let arrival = match (a.arrival_rate, &m) {
        (Some(r), _) => Some((r, "--arrival-rate".to_owned())),
        (None, Some(m)) if m.rates.len() >= 2 => {
            let (load, how) = load_profile(&m.rates, horizon_points(&a.horizon, m.rates.step_ms())?);
            load.rate
                .iter()
                .copied()
                .fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v))))
                .map(|peak| (peak, format!("peak of the {how}")))
        }
        _ => None,
    };
    let service = a
        .service_time
        .map(|s| (s, "--service-time".to_owned()))
        .or_else(|| m.as_ref()?.service_secs.map(|s| (s, "measured from the journal".to_owned())));
    let workers = match (arrival, service) {
        (Some((rate, rate_src)), Some((s, s_src))) => {
            let plan = tune::workers(rate, s, rho).ok_or_else(|| usage("--arrival-rate must be ≥ 0 and --service-time > 0"))?;
            Some(json!({"plan": plan, "arrival_source": rate_src, "service_source": s_src}))
        }
        (a_opt, s_opt) => {
            let missing = match (a_opt.is_none(), s_opt.is_none()) {
                (true, true) => "no arrival rate and no service time",
                (true, false) => "no arrival rate",
                _ => "no service time",
            };
            notes.push(format!("workers: {missing} (pass --arrival-rate and --service-time, or run the loop to build a journal)"));
            None
        }
    };
    let memory = match &a.usage {
        Some(p) => {
            let total = a.total_memory_mb.ok_or_else(|| usage("--usage needs --total-memory-mb"))?;
            let (app, buf) = in_file(p, input::memory_usage(&read_input(p)?))?;
            Some(serde_json::to_value(
                tune::memory_split(total, &app, &buf).ok_or_else(|| usage(format!("{}: no application_mb values", p.display())))?,
            )?)
        }
        None => None,
    };
    let query = match &a.queries {
        Some(p) => {
            let hist = in_file(p, input::query_history(&read_input(p)?))?;
            let model = tune::fit_queries(&hist).ok_or_else(|| usage(format!("{}: at least 3 queries needed", p.display())))?;
            Some(json!({"rows": a.rows, "bytes": a.bytes, "estimate": tune::estimate_query(&model, a.rows, a.bytes)}))
        }
        None => None,
    };
    let doc = json!({"workers": workers, "memory": memory, "query": query, "notes": notes});
    if json {
        print_json(&doc);
    } else {
        let mut out = String::from("steward tune\n");
        for (k, v) in [("workers", &doc["workers"]), ("memory", &doc["memory"]), ("query", &doc["query"])] {
            if v.is_null() {
                continue;
            }
            let _ = writeln!(out, "\n{k}:");
            let lines = v.pointer("/plan/arithmetic").or_else(|| v.get("arithmetic")).and_then(Value::as_array);
            for l in lines.into_iter().flatten() {
                let _ = writeln!(out, "  {}", l.as_str().unwrap_or_default());
            }
            if let Some(e) = v.get("estimate") {
                let _ = writeln!(
                    out,
                    "  estimate {:.1} ms (95 % ≤ {:.1} ms), confidence {:.2}",
                    e["duration_ms"].as_f64().unwrap_or(0.0),
                    e["upper_ms"].as_f64().unwrap_or(0.0),
                    e["confidence"].as_f64().unwrap_or(0.0)
                );
            }
        }
        for n in &notes {
            let _ = writeln!(out, "note: {n}");
        }
        out!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

fn run_cost(a: &CostArgs, cfg: &Config, json: bool) -> Result<ExitCode> {
    if !(a.budget_per_month >= 0.0 && a.sla_ms > 0.0) {
        return Err(usage("--budget-per-month must be ≥ 0 and --sla-ms > 0"));
    }
    let c = &cfg.cost;
    let prices = Prices {
        on_demand: a.price_on_demand.unwrap_or(c.on_demand_per_agent_hour),
        spot: a.price_spot.unwrap_or(c.spot_per_agent_hour),
        idle: a.price_idle.unwrap_or(c.idle_per_agent_hour),
    };
    if [prices.on_demand, prices.spot, prices.idle].iter().any(|p| !(p.is_finite() && *p >= 0.0)) {
        return Err(usage("prices must be non-negative numbers"));
    }
    let m = measured(&journal_path(cfg))?;
    let (rates, source) = match &a.input {
        Some(p) => {
            let (_, s) = read_series(p, Duplicates::Reject)?;
            // One meaning: each value is the count of arrivals in its row's
            // interval (a trace), turned into items per second.
            let step_s = s.step_ms().unwrap_or(1000).max(1) as f64 / 1000.0;
            let per_sec = Series { ts: s.ts.clone(), values: s.values.iter().map(|v| v / step_s).collect() };
            (per_sec, format!("{} (arrivals per row of {step_s} s, as items/s)", p.display()))
        }
        None => (m.rates.clone(), format!("journal {} (items/s)", cfg.journal())),
    };
    if rates.len() < 2 {
        return Err(usage(format!("{source}: fewer than 2 arrival-rate points: run the loop for a while, or pass --input")));
    }
    let service_secs = a
        .service_time
        .or(m.service_secs)
        .ok_or_else(|| usage("no service time: pass --service-time (the journal has no completions to measure it)"))?;
    if service_secs.is_nan() || service_secs <= 0.0 {
        return Err(usage("--service-time must be positive"));
    }
    let (load, how) = load_profile(&rates, horizon_points(&a.horizon, rates.step_ms())?);
    let current_agents = a.current_agents.or(m.mean_agents).unwrap_or(0.0);
    let input = CostInput { load, service_secs, current_agents, budget_per_month: a.budget_per_month, sla_ms: a.sla_ms, prices };
    let strategies = cost::strategies(&input);
    let recommended = strategies.iter().find(|s| s.meets_sla && s.within_budget).map(|s| s.name.clone());
    let mut notes = Vec::new();
    if recommended.is_none() {
        notes.push("no strategy meets both the SLA and the budget: raise the budget or relax the SLA".to_owned());
    }
    if json {
        print_json(&json!({
            "budget_per_month": a.budget_per_month, "sla_ms": a.sla_ms, "prices": prices,
            "load": {"source": source, "unit": "items/s", "profile": how, "peak_per_sec": input.load.upper.iter().copied().fold(0.0, f64::max)},
            "service_secs": service_secs, "current_agents": current_agents,
            "strategies": strategies, "recommended": recommended, "notes": notes,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "steward cost: load from {source}, {how}; service {service_secs:.3} s; SLA p95 wait ≤ {} ms; budget {}/month\n\n",
        a.sla_ms, a.budget_per_month
    );
    for s in &strategies {
        let _ = writeln!(
            out,
            "{}{}: {:.2}/month, {}; SLA {}, budget {}\n  {}",
            s.name,
            if Some(&s.name) == recommended.as_ref() { " (recommended)" } else { "" },
            s.monthly_cost,
            if s.savings_per_month >= 0.0 {
                format!("saves {:.2}", s.savings_per_month)
            } else {
                format!("costs {:.2} more", -s.savings_per_month)
            },
            if s.meets_sla { "met" } else { "NOT met" },
            if s.within_budget { "within" } else { "over" },
            s.description
        );
        for l in &s.arithmetic {
            let _ = writeln!(out, "    {l}");
        }
    }
    for n in &notes {
        let _ = writeln!(out, "note: {n}");
    }
    out!("{out}");
    Ok(ExitCode::SUCCESS)
}
