//! The prediction commands' other inputs, parsed from text: limits,
//! `timestamp,component,metric,value` samples, and CSVs of named numeric
//! columns. Errors are phrases that name the line; the caller adds the file.
//! A UTF-8 byte order mark at the start of a text is skipped.

use std::collections::HashMap;

use super::maintenance::{Limit, MetricSample};
use super::series::{parse_timestamp, parse_value, strip_bom};
use super::tune::QuerySample;
use crate::time::UnixMs;

/// Parses a limit, `metric=value` (rising) or `metric<value` (falling).
///
/// # Errors
/// What is wrong with it, in a phrase.
pub fn parse_limit(text: &str) -> Result<(String, Limit), String> {
    let (name, value, rising) = if let Some((n, v)) = text.split_once('<') {
        (n, v, false)
    } else if let Some((n, v)) = text.split_once(['=', '>']) {
        (n, v, true)
    } else {
        return Err("expected METRIC=VALUE or METRIC<VALUE".to_owned());
    };
    let value = parse_value(value).ok_or_else(|| format!("{value:?} is not a number"))?;
    if name.trim().is_empty() {
        return Err("no metric name".to_owned());
    }
    Ok((name.trim().to_owned(), Limit { value, rising }))
}

/// Reads `timestamp,component,metric,value` rows (the header names the
/// columns, in any order), each series in time order.
///
/// # Errors
/// What is wrong, naming the line.
pub fn metric_samples(text: &str) -> Result<Vec<MetricSample>, String> {
    let bad = |msg: String| msg;
    let mut lines = strip_bom(text).lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let (hl, header) = lines.next().ok_or_else(|| bad("empty input: expected a header `timestamp,component,metric,value`".to_owned()))?;
    let cols: Vec<String> = header.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
    let find = |name: &str| cols.iter().position(|c| c == name).ok_or_else(|| bad(format!("line {hl}: the header has no `{name}` column")));
    let (it, ic, im, iv) = (find("timestamp")?, find("component")?, find("metric")?, find("value")?);
    let need = it.max(ic).max(im).max(iv) + 1;
    let mut out = Vec::new();
    let mut last_seen: HashMap<(String, String), (UnixMs, usize)> = HashMap::new();
    for (line, row) in lines {
        let f: Vec<&str> = row.split(',').map(|x| x.trim().trim_matches('"')).collect();
        if f.len() < need {
            return Err(bad(format!("line {line}: expected {} fields, found {}", cols.len(), f.len())));
        }
        let ts = parse_timestamp(f[it]).ok_or_else(|| bad(format!("line {line}: {:?} is not a timestamp", f[it])))?;
        let value = parse_value(f[iv]).ok_or_else(|| bad(format!("line {line}: value {:?} is not a finite number", f[iv])))?;
        let key = (f[ic].to_owned(), f[im].to_owned());
        if let Some(&(prev, prev_line)) = last_seen.get(&key) {
            if ts == prev {
                return Err(bad(format!(
                    "line {line}: duplicate timestamp {:?} for {}/{} (also on line {prev_line})",
                    f[it], key.0, key.1
                )));
            }
            if ts < prev {
                return Err(bad(format!("line {line}: timestamp {:?} is earlier than line {prev_line}'s for {}/{}", f[it], key.0, key.1)));
            }
        }
        last_seen.insert(key.clone(), (ts, line));
        out.push(MetricSample { ts, component: key.0, metric: key.1, value });
    }
    if out.is_empty() {
        return Err(bad("no data rows".to_owned()));
    }
    Ok(out)
}

/// Numeric columns of a CSV by header name (`wanted`, of which `required`
/// must be present); a column not in the header comes back empty.
///
/// # Errors
/// What is wrong, naming the line.
pub fn columns(text: &str, wanted: &[&str], required: &[&str]) -> Result<Vec<Vec<f64>>, String> {
    let bad = |msg: String| msg;
    let mut lines = strip_bom(text).lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let (hl, header) = lines.next().ok_or_else(|| bad("empty input: expected a header".to_owned()))?;
    let cols: Vec<String> = header.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
    for r in required {
        if !cols.iter().any(|c| c == r) {
            return Err(bad(format!("line {hl}: the header has no `{r}` column")));
        }
    }
    let idx: Vec<Option<usize>> = wanted.iter().map(|w| cols.iter().position(|c| c == w)).collect();
    let mut out = vec![Vec::new(); wanted.len()];
    for (line, row) in lines {
        let f: Vec<&str> = row.split(',').map(|x| x.trim().trim_matches('"')).collect();
        for (k, i) in idx.iter().enumerate() {
            if let Some(i) = *i {
                let field = f.get(i).ok_or_else(|| bad(format!("line {line}: missing field `{}`", wanted[k])))?;
                out[k]
                    .push(parse_value(field).ok_or_else(|| bad(format!("line {line}: {}: {field:?} is not a finite number", wanted[k])))?);
            }
        }
    }
    if out.first().is_none_or(Vec::is_empty) {
        return Err(bad("no data rows".to_owned()));
    }
    Ok(out)
}

/// Memory usage rows: the `application_mb` column and the optional `buffer_mb` one.
///
/// # Errors
/// As [`columns`].
pub fn memory_usage(text: &str) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut cols = columns(text, &["application_mb", "buffer_mb"], &["application_mb"])?;
    let buf = cols.pop().unwrap_or_default();
    Ok((cols.pop().unwrap_or_default(), buf))
}

/// Query history rows: `duration_ms`, and the optional `rows` and `bytes`.
///
/// # Errors
/// As [`columns`].
pub fn query_history(text: &str) -> Result<Vec<QuerySample>, String> {
    let cols = columns(text, &["duration_ms", "rows", "bytes"], &["duration_ms"])?;
    let n = cols[0].len();
    let get = |k: usize, i: usize| cols.get(k).and_then(|c| c.get(i)).copied().unwrap_or(0.0);
    Ok((0..n).map(|i| QuerySample { duration_ms: get(0, i), rows: get(1, i), bytes: get(2, i) }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_both_directions() {
        assert_eq!(parse_limit("memory_percent=90"), Ok(("memory_percent".to_owned(), Limit { value: 90.0, rising: true })));
        assert_eq!(parse_limit(" free_gb < 5 "), Ok(("free_gb".to_owned(), Limit { value: 5.0, rising: false })));
        assert!(parse_limit("memory").unwrap_err().contains("METRIC=VALUE"));
        assert!(parse_limit("=3").unwrap_err().contains("no metric name"));
    }

    #[test]
    fn samples_and_columns_name_the_bad_line() {
        let ok = "component,timestamp,metric,value\na,2026-01-01T00:00:00Z,mem,1\na,2026-01-01T01:00:00Z,mem,2\n";
        assert_eq!(metric_samples(ok).unwrap().len(), 2);
        let back = "timestamp,component,metric,value\n2026-01-01T01:00:00Z,a,mem,1\n2026-01-01T00:00:00Z,a,mem,2\n";
        assert!(metric_samples(back).unwrap_err().starts_with("line 3:"));
        let (app, buf) = memory_usage("application_mb\n10\n20\n").unwrap();
        assert_eq!((app, buf), (vec![10.0, 20.0], vec![]));
        assert!(columns("rows\n1\n", &["duration_ms"], &["duration_ms"]).unwrap_err().contains("no `duration_ms` column"));
        assert!(query_history("duration_ms,rows\n5,x\n").unwrap_err().starts_with("line 2:"));
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let samples = metric_samples("\u{feff}timestamp,component,metric,value\n2026-01-01T00:00:00Z,a,mem,1\n").unwrap();
        assert_eq!((samples[0].component.as_str(), samples[0].value), ("a", 1.0));
        assert_eq!(memory_usage("\u{feff}application_mb,buffer_mb\n10,2\n").unwrap(), (vec![10.0], vec![2.0]));
        assert_eq!(query_history("\u{feff}duration_ms\n5\n").unwrap()[0].duration_ms, 5.0);
        assert_eq!(metric_samples("\u{feff}").unwrap_err(), "empty input: expected a header `timestamp,component,metric,value`");
    }
}
