//! Metric samples for failure prediction (`steward predict`) from the
//! directory's telemetry records: every number in a record's `metrics`,
//! for the component its `attributes` (or `name`) say.

use std::fs;
use std::path::Path;

use serde_json::Value;
use steward_core::predict::maintenance::MetricSample;
use steward_core::time::parse_json_timestamp;
use steward_protocol::{classify, read_record, FileKind, Links};

/// Each numeric metric of each `telemetry_*.json` record as a sample at the
/// record's `timestamp` (its mtime when it has none), with a warning per
/// record that cannot be read. The component is `attributes.component`,
/// `.agent_id`, `.agent` or `.host`, else the record's `name`, else `system`.
/// Files are read as a cycle reads them: regular ones (or links checked to
/// lead inside the directory), up to `max_item_bytes`.
pub fn telemetry_samples(dir: &Path, max_item_bytes: u64) -> (Vec<MetricSample>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        warnings.push(format!("{}: cannot read the coordination directory", dir.display()));
        return (out, warnings);
    };
    let mut buf = Vec::new();
    let canonical_dir = fs::canonicalize(dir).ok();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !matches!(classify(name.as_bytes()), Some((FileKind::Telemetry, _))) {
            continue;
        }
        // The same files as a cycle reads: regular ones, and links to regular
        // files inside the directory. Never a FIFO, which would block the read.
        match entry.file_type() {
            Ok(t) if t.is_file() => {}
            Ok(t) if t.is_symlink() => {
                if let Err(reason) = super::symlink_inside(&entry.path(), canonical_dir.as_deref()) {
                    warnings.push(format!("{name}: {reason}"));
                    continue;
                }
            }
            _ => continue,
        }
        let record = match read_record(dir, &name, &mut buf, max_item_bytes, Links::Follow) {
            Ok(Some(mtime)) => match serde_json::from_slice::<Value>(&buf) {
                Ok(v) => (v, mtime),
                Err(e) => {
                    warnings.push(format!("{name}: {e}"));
                    continue;
                }
            },
            Ok(None) => continue,
            Err(e) => {
                warnings.push(format!("{name}: {e}"));
                continue;
            }
        };
        let (record, mtime) = record;
        let ts = record.get("timestamp").and_then(parse_json_timestamp).unwrap_or(mtime);
        let attrs = record.get("attributes");
        let component = ["component", "agent_id", "agent", "host"]
            .iter()
            .find_map(|k| attrs.and_then(|a| a.get(k)).and_then(Value::as_str))
            .or_else(|| record.get("name").and_then(Value::as_str))
            .unwrap_or("system")
            .to_owned();
        if let Some(metrics) = record.get("metrics").and_then(Value::as_object) {
            for (metric, v) in metrics {
                if let Some(value) = v.as_f64().filter(|x| x.is_finite()) {
                    out.push(MetricSample { ts, component: component.clone(), metric: metric.clone(), value });
                }
            }
        }
    }
    (out, warnings)
}
