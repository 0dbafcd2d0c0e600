//! The prediction commands' other inputs, parsed from text: limits,
//! `timestamp,component,metric,value` samples, and CSVs of named numeric
//! columns. Errors are phrases that name the line; the caller adds the file.
//! A UTF-8 byte order mark at the start of a text is skipped.

use std::collections::HashMap;

use super::maintenance::{Limit, MetricSample};
use super::series::{parse_timestamp, parse_value, sort_rows, strip_bom, Sorted};
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
/// What is wrong, naming the line: also a timestamp repeated or earlier
/// than the one before it in its series.
pub fn metric_samples(text: &str) -> Result<Vec<MetricSample>, String> {
    let mut out = Vec::new();
    let mut last_seen: HashMap<(String, String), (UnixMs, usize)> = HashMap::new();
    // Checked row by row: the error is the first bad line's, whatever is wrong with it.
    for row in metric_rows(text)? {
        let (line, t_text, s) = row?;
        let key = (s.component.clone(), s.metric.clone());
        if let Some(&(prev, prev_line)) = last_seen.get(&key) {
            if s.ts == prev {
                return Err(format!("line {line}: duplicate timestamp {t_text:?} for {}/{} (also on line {prev_line})", key.0, key.1));
            }
            if s.ts < prev {
                return Err(format!("line {line}: timestamp {t_text:?} is earlier than line {prev_line}'s for {}/{}", key.0, key.1));
            }
        }
        last_seen.insert(key, (s.ts, line));
        out.push(s);
    }
    if out.is_empty() {
        return Err("no data rows".to_owned());
    }
    Ok(out)
}

/// Like [`metric_samples`], for rows in any order (`--sort`): each series
/// sorted by time (stable), the last row of the file kept for a repeated
/// time; the samples come in time order.
///
/// # Errors
/// What is wrong, naming the line (never the order).
pub fn metric_samples_sorted(text: &str) -> Result<(Vec<MetricSample>, Sorted), String> {
    let rows = metric_rows(text)?.collect::<Result<Vec<_>, _>>()?;
    if rows.is_empty() {
        return Err("no data rows".to_owned());
    }
    // Each series on its own: a row is out of order only within its series.
    // Per series: its times, their lines, and the rows' indices in the file.
    type Rows = (Vec<UnixMs>, Vec<usize>, Vec<usize>);
    let mut series: HashMap<(&str, &str), Rows> = HashMap::new();
    for (i, (line, _, s)) in rows.iter().enumerate() {
        let (ts, lines, index) = series.entry((s.component.as_str(), s.metric.as_str())).or_default();
        ts.push(s.ts);
        lines.push(*line);
        index.push(i);
    }
    let mut keep = Vec::with_capacity(rows.len());
    let mut sorted = Sorted::default();
    for (ts, lines, index) in series.values() {
        let (kept, one) = sort_rows(ts, lines);
        keep.extend(kept.into_iter().map(|k| index[k]));
        sorted.moved += one.moved;
        sorted.dropped += one.dropped;
        sorted.first_moved_line = sorted.first_moved_line.into_iter().chain(one.first_moved_line).min();
        sorted.first_dropped_line = sorted.first_dropped_line.into_iter().chain(one.first_dropped_line).min();
    }
    // Time order, the file's order among equal times (of different series).
    keep.sort_by_key(|&i| (rows[i].2.ts, i));
    let mut rows: Vec<Option<MetricSample>> = rows.into_iter().map(|(_, _, s)| Some(s)).collect();
    Ok((keep.into_iter().filter_map(|i| rows.get_mut(i).and_then(Option::take)).collect(), sorted))
}

/// The rows of a metric CSV in file order (line, timestamp as written,
/// sample), each parsed or the error of its line, after the header is checked.
type MetricRow<'a> = Result<(usize, &'a str, MetricSample), String>;

fn metric_rows(text: &str) -> Result<impl Iterator<Item = MetricRow<'_>>, String> {
    let mut lines = strip_bom(text).lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let (hl, header) = lines.next().ok_or_else(|| "empty input: expected a header `timestamp,component,metric,value`".to_owned())?;
    let cols: Vec<String> = header.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
    let find = |name: &str| cols.iter().position(|c| c == name).ok_or_else(|| format!("line {hl}: the header has no `{name}` column"));
    let (it, ic, im, iv) = (find("timestamp")?, find("component")?, find("metric")?, find("value")?);
    let need = it.max(ic).max(im).max(iv) + 1;
    let n_cols = cols.len();
    Ok(lines.map(move |(line, row)| {
        let f: Vec<&str> = row.split(',').map(|x| x.trim().trim_matches('"')).collect();
        if f.len() < need {
            return Err(format!("line {line}: expected {n_cols} fields, found {}", f.len()));
        }
        let ts = parse_timestamp(f[it]).ok_or_else(|| format!("line {line}: {:?} is not a timestamp", f[it]))?;
        let value = parse_value(f[iv]).ok_or_else(|| format!("line {line}: value {:?} is not a finite number", f[iv]))?;
        Ok((line, f[it], MetricSample { ts, component: f[ic].to_owned(), metric: f[im].to_owned(), value }))
    }))
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

    #[test]
    fn samples_sort_per_series_and_keep_the_last_of_equal_times() {
        let text = "timestamp,component,metric,value\n\
            2026-01-01T02:00:00Z,a,mem,3\n\
            2026-01-01T00:00:00Z,b,mem,7\n\
            2026-01-01T01:00:00Z,a,mem,1\n\
            2026-01-01T01:00:00Z,a,mem,2\n\
            2026-01-01T01:00:00Z,b,mem,8\n";
        assert!(metric_samples(text).unwrap_err().starts_with("line 4: timestamp"));
        let (samples, sorted) = metric_samples_sorted(text).unwrap();
        let got: Vec<(&str, f64)> = samples.iter().map(|s| (s.component.as_str(), s.value)).collect();
        assert_eq!(got, [("b", 7.0), ("a", 2.0), ("b", 8.0), ("a", 3.0)]);
        assert_eq!(sorted, Sorted { moved: 2, first_moved_line: Some(4), dropped: 1, first_dropped_line: Some(4) });
    }
}
