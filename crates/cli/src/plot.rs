//! `simulate --plot`: the runs over time, as an SVG (plotters).
//!
//! Four panels share the time axis (days from the trace's start): the
//! arrivals, the agents each policy paid for, the backlog, and the
//! longest wait (with the SLA drawn across). One colour per policy.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use steward_core::sim::{Point, Report};
use steward_protocol::{write_atomic, Durability};

/// What the run was: for the title and the axes.
pub struct Setting {
    /// The SLA, in seconds.
    pub sla: f64,
    /// The start-up, in seconds.
    pub startup: f64,
    /// The mean service time, in seconds.
    pub service_mean: f64,
    /// Where the trace ends, in seconds from its start.
    pub end: f64,
}

/// Width and height of the picture, in pixels.
const SIZE: (u32, u32) = (1200, 1100);

fn colour(policy: &str) -> RGBColor {
    match policy {
        "adaptive" => RGBColor(31, 119, 180),
        "classic" => RGBColor(148, 103, 189),
        "hpa" => RGBColor(214, 39, 40),
        "keda" => RGBColor(255, 127, 14),
        "oracle" => RGBColor(44, 160, 44),
        _ => RGBColor(90, 90, 90),
    }
}

/// One panel: a value of each point, per policy.
struct Panel<'a> {
    title: &'a str,
    unit: &'a str,
    value: fn(&Point) -> f64,
    /// A horizontal line (the SLA), if any.
    line: Option<f64>,
    /// Only the first report's series (the arrivals are the same for all).
    shared: bool,
}

/// Renders the plot as SVG text.
///
/// # Errors
/// Drawing failed (it does not, short of a bug in the drawing library).
pub fn render(run: &Setting, reports: &[Report]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (head, body) = root.split_vertically(50);
        let names: Vec<&str> = reports.iter().map(|r| r.policy.as_str()).collect();
        head.draw_text(
            &format!(
                "steward simulate: {} (SLA {} s, start-up {} s, service mean {:.1} s)",
                names.join(", "),
                run.sla,
                run.startup,
                run.service_mean
            ),
            &("sans-serif", 22).into_font().color(&BLACK),
            (20, 15),
        )?;
        let panels = [
            Panel { title: "Arrivals", unit: "items/s", value: |p| p.arrival_rate, line: None, shared: true },
            Panel { title: "Agents paid for", unit: "agents", value: |p| p.agents, line: None, shared: false },
            Panel { title: "Backlog", unit: "items", value: |p| p.backlog as f64, line: None, shared: false },
            Panel { title: "Longest wait", unit: "seconds", value: |p| p.max_wait, line: Some(run.sla), shared: false },
        ];
        let areas = body.split_evenly((panels.len(), 1));
        let days = reports.iter().flat_map(|r| r.series.last()).map(|p| p.t / 86_400.0).fold(run.end / 86_400.0, f64::max);
        for (panel, area) in panels.iter().zip(&areas) {
            let shown: Vec<&Report> = if panel.shared { reports.iter().take(1).collect() } else { reports.iter().collect() };
            let top = shown
                .iter()
                .flat_map(|r| r.series.iter().map(panel.value))
                .chain(panel.line)
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max)
                .max(1e-9)
                * 1.08;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{} ({})", panel.title, panel.unit), ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..days.max(1e-6), 0.0..top)?;
            chart.configure_mesh().x_desc("days").light_line_style(WHITE.mix(0.0)).draw()?;
            if let Some(y) = panel.line {
                chart
                    .draw_series(LineSeries::new([(0.0, y), (days, y)], BLACK.mix(0.6).stroke_width(1)))?
                    .label(format!("SLA {y} s"))
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.6)));
            }
            for r in &shown {
                let c = if panel.shared { RGBColor(60, 60, 60) } else { colour(&r.policy) };
                let points = r.series.iter().map(|p| (p.t / 86_400.0, (panel.value)(p)));
                let series = chart.draw_series(LineSeries::new(points, c.stroke_width(1)))?;
                if !panel.shared {
                    series.label(r.policy.clone()).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(3)));
                }
            }
            if !panel.shared {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()?;
            }
        }
        root.present()?;
    }
    Ok(svg)
}

/// Writes the plot of `reports` to `path` (whole or not at all).
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &Path, run: &Setting, reports: &[Report]) -> Result<()> {
    let svg = render(run, reports).context("drawing the plot")?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    write_atomic(dir, path, svg.as_bytes(), Durability::Visible).with_context(|| format!("writing the plot to {}", path.display()))
}
