//! Series input: `timestamp,value` CSV text to a checked series.
//!
//! Every error names the line it is on (1-based, the header is line 1), so a
//! user can fix the file: empty input, a missing column, a timestamp that does
//! not parse, a value that is not a finite number, and timestamps that are not
//! strictly increasing. A UTF-8 byte order mark at the start of the text
//! (as spreadsheet programs write) is skipped.

use thiserror::Error;

use crate::time::{parse_rfc3339, UnixMs};

/// Why a series could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SeriesError {
    /// No header line at all.
    #[error("empty input: expected a header line `timestamp,value`")]
    Empty,
    /// The header lacks a needed column.
    #[error("line {line}: the header has no `{column}` column (found: {found})")]
    MissingColumn {
        /// The header's line.
        line: usize,
        /// The missing column's name.
        column: &'static str,
        /// The header as read.
        found: String,
    },
    /// Fewer data rows than the command needs.
    #[error("{found} data row(s): at least {needed} needed")]
    TooShort {
        /// Rows read.
        found: usize,
        /// Rows needed.
        needed: usize,
    },
    /// A row has fewer fields than the header says.
    #[error("line {line}: expected {expected} fields, found {found}")]
    MissingField {
        /// The row's line.
        line: usize,
        /// Fields the header has.
        expected: usize,
        /// Fields the row has.
        found: usize,
    },
    /// A timestamp that is neither RFC 3339 (or `YYYY-MM-DD HH:MM:SS`) nor Unix seconds.
    #[error("line {line}: {text:?} is not a timestamp (use RFC 3339, `YYYY-MM-DD HH:MM:SS` or Unix seconds)")]
    BadTimestamp {
        /// The row's line.
        line: usize,
        /// The field as read.
        text: String,
    },
    /// A value that is not a finite number (text, NaN, infinity).
    #[error("line {line}: value {text:?} is not a finite number")]
    BadValue {
        /// The row's line.
        line: usize,
        /// The field as read.
        text: String,
    },
    /// The same timestamp twice.
    #[error("line {line}: duplicate timestamp {text:?} (also on line {previous_line})")]
    Duplicate {
        /// The row's line.
        line: usize,
        /// The timestamp as read.
        text: String,
        /// The earlier line with the same timestamp.
        previous_line: usize,
    },
    /// A timestamp earlier than the row before it.
    #[error("line {line}: timestamp {text:?} is earlier than line {previous_line}'s: rows must be in increasing time order")]
    Unsorted {
        /// The row's line.
        line: usize,
        /// The timestamp as read.
        text: String,
        /// The previous row's line.
        previous_line: usize,
    },
}

/// A time series with increasing timestamps and finite values (strictly
/// increasing, unless read with [`Duplicates::Keep`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Timestamps, increasing.
    pub ts: Vec<UnixMs>,
    /// Values, finite, one per timestamp.
    pub values: Vec<f64>,
}

impl Series {
    /// Builds a series from parallel vectors, checking the invariants.
    /// `None` when the lengths differ, a value is not finite, or the
    /// timestamps are not strictly increasing.
    pub fn new(ts: Vec<UnixMs>, values: Vec<f64>) -> Option<Self> {
        let ok = ts.len() == values.len() && values.iter().all(|v| v.is_finite()) && ts.windows(2).all(|w| w[0] < w[1]);
        ok.then_some(Self { ts, values })
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The typical sampling interval: the median gap between timestamps
    /// (robust to a few gaps). `None` with fewer than two points.
    pub fn step_ms(&self) -> Option<i64> {
        // Saturating: the gap between two i64 timestamps may exceed i64::MAX.
        let mut gaps: Vec<i64> = self.ts.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
        if gaps.is_empty() {
            return None;
        }
        let mid = gaps.len() / 2;
        let (_, m, _) = gaps.select_nth_unstable(mid);
        Some(*m)
    }
}

/// A parsed row of text, borrowed from the input, for commands that echo it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawRow<'a> {
    /// The timestamp field as written.
    pub timestamp: &'a str,
    /// The value field as written.
    pub value: &'a str,
}

/// What to do with a timestamp equal to the previous row's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// An error ([`SeriesError::Duplicate`]).
    Reject,
    /// Keep the row (a row-for-row scorer such as `detect` needs every row;
    /// some public benchmark files repeat a timestamp).
    Keep,
}

/// Parses `timestamp,value` CSV text (extra columns are ignored; the header
/// names the columns, in any order). Blank lines and a leading byte order
/// mark are skipped.
///
/// # Errors
/// A [`SeriesError`] naming the first bad line; [`SeriesError::TooShort`]
/// with fewer than `min_rows` rows.
pub fn parse_csv(text: &str, min_rows: usize) -> Result<Series, SeriesError> {
    parse_csv_rows(text, min_rows, Duplicates::Reject).map(|p| p.series)
}

/// A parsed CSV with its rows as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<'a> {
    /// The series.
    pub series: Series,
    /// Each row's fields as written.
    pub rows: Vec<RawRow<'a>>,
    /// Each row's line (1-based, the header is line 1).
    pub lines: Vec<usize>,
    /// Lines whose timestamp repeated the previous row's (with [`Duplicates::Keep`]).
    pub duplicate_lines: Vec<usize>,
}

/// Like [`parse_csv`], and also returns each row's fields as written.
///
/// # Errors
/// As [`parse_csv`].
pub fn parse_csv_rows(text: &str, min_rows: usize, duplicates: Duplicates) -> Result<Parsed<'_>, SeriesError> {
    let mut series = Series::default();
    let mut raw = Vec::new();
    let mut lines = Vec::new();
    let mut duplicate_lines = Vec::new();
    for row in read_rows(text)? {
        let Row { line, t, v, raw: fields } = row?;
        if let (Some(&last), Some(&prev_line)) = (series.ts.last(), lines.last()) {
            if t == last {
                if duplicates == Duplicates::Reject {
                    return Err(SeriesError::Duplicate { line, text: fields.timestamp.to_owned(), previous_line: prev_line });
                }
                duplicate_lines.push(line);
            }
            if t < last {
                return Err(SeriesError::Unsorted { line, text: fields.timestamp.to_owned(), previous_line: prev_line });
            }
        }
        series.ts.push(t);
        series.values.push(v);
        raw.push(fields);
        lines.push(line);
    }
    if series.len() < min_rows {
        return Err(SeriesError::TooShort { found: series.len(), needed: min_rows });
    }
    Ok(Parsed { series, rows: raw, lines, duplicate_lines })
}

/// One data row as read: its line, time, value and fields as written.
struct Row<'a> {
    line: usize,
    t: UnixMs,
    v: f64,
    raw: RawRow<'a>,
}

/// The data rows of `timestamp,value` CSV text in file order, each parsed
/// (or the error of its line), after the header is checked.
fn read_rows(text: &str) -> Result<impl Iterator<Item = Result<Row<'_>, SeriesError>>, SeriesError> {
    let mut lines = numbered_lines(strip_bom(text));
    let (header_line, header) = lines.next().ok_or(SeriesError::Empty)?;
    let columns: Vec<&str> = split_fields(header).collect();
    let find = |name: &'static str| {
        columns.iter().position(|c| c.eq_ignore_ascii_case(name)).ok_or_else(|| SeriesError::MissingColumn {
            line: header_line,
            column: name,
            found: header.trim().to_owned(),
        })
    };
    let (it, iv) = (find("timestamp")?, find("value")?);
    let n_columns = columns.len();
    Ok(lines.map(move |(line, row)| {
        let fields: Vec<&str> = split_fields(row).collect();
        let (Some(&t_text), Some(&v_text)) = (fields.get(it), fields.get(iv)) else {
            return Err(SeriesError::MissingField { line, expected: n_columns, found: fields.len() });
        };
        let t = parse_timestamp(t_text).ok_or_else(|| SeriesError::BadTimestamp { line, text: t_text.to_owned() })?;
        let v = parse_value(v_text).ok_or_else(|| SeriesError::BadValue { line, text: v_text.to_owned() })?;
        Ok(Row { line, t, v, raw: RawRow { timestamp: t_text, value: v_text } })
    }))
}

/// A gap longer than this many typical steps is reported.
pub const GAP_STEPS: i64 = 10;
/// Sampling is reported as irregular when at least this share of the
/// steps (gaps aside) differs from the typical step by more than half of it.
pub const IRREGULAR_SHARE: f64 = 0.05;

/// Rows read in file order, whatever their times, for a row-for-row scorer
/// (`steward detect`): every row is kept, and [`InFileOrder::scoring_ts`]
/// gives each a time that never goes back.
#[derive(Debug, Clone, PartialEq)]
pub struct InFileOrder<'a> {
    /// Each row's time as written, in file order (any order).
    pub ts: Vec<UnixMs>,
    /// The time each row is scored at: the latest time so far
    /// (non-decreasing). A row earlier than a row before it (a clock that
    /// stepped back) takes the time of the latest row before it; every
    /// other row keeps its own.
    pub scoring_ts: Vec<UnixMs>,
    /// Values, finite, one per row.
    pub values: Vec<f64>,
    /// Each row's fields as written.
    pub rows: Vec<RawRow<'a>>,
    /// Each row's line (1-based, the header is line 1).
    pub lines: Vec<usize>,
    /// Where the times are not a regular increasing clock, in file order.
    pub report: TimeReport,
}

/// Where a series' times depart from a regular increasing clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeReport {
    /// Repeats, steps back and long gaps, in file order.
    pub issues: Vec<TimeIssue>,
    /// The typical step: the median of the steps forward (`None` without one).
    pub step_ms: Option<i64>,
    /// Irregular sampling, if the steps vary that much.
    pub irregular: Option<Irregular>,
}

/// A row whose time is out of line with the rows before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeIssue {
    /// The same time as the latest row before it.
    Duplicate {
        /// The row's line.
        line: usize,
        /// Its timestamp as written.
        text: String,
        /// The line of the latest row before it (with the same time).
        previous_line: usize,
    },
    /// The clock stepped back: the row at `line`, and the `rows − 1` rows
    /// after it up to `last_line`, are earlier than the latest row before
    /// them (`latest_line`). They are scored at that row's time.
    Backward {
        /// The first row behind.
        line: usize,
        /// Its timestamp as written.
        text: String,
        /// How far it is behind the latest row before it.
        by_ms: i64,
        /// The latest row before it, whose time it is scored at.
        latest_line: usize,
        /// Rows in a row behind that time (1 or more).
        rows: usize,
        /// The last of them.
        last_line: usize,
    },
    /// A step forward of more than [`GAP_STEPS`] typical steps.
    Gap {
        /// The row after the gap.
        line: usize,
        /// The latest row before it.
        previous_line: usize,
        /// The length of the gap.
        gap_ms: i64,
    },
}

impl TimeIssue {
    /// The row the issue starts at.
    pub fn line(&self) -> usize {
        match self {
            Self::Duplicate { line, .. } | Self::Backward { line, .. } | Self::Gap { line, .. } => *line,
        }
    }
}

impl TimeIssue {
    /// What happened, without what was assumed.
    pub fn what(&self) -> String {
        match self {
            Self::Duplicate { line, text, previous_line } => format!("line {line}: timestamp {text} repeats line {previous_line}'s"),
            Self::Backward { line, text, by_ms, latest_line, rows, last_line } => {
                let mut out = format!("line {line}: timestamp {text} is {} before line {latest_line}'s", human_ms(*by_ms));
                if *rows > 1 {
                    out.push_str(&format!(" (and so are the {} rows after it, to line {last_line})", rows - 1));
                }
                out
            }
            Self::Gap { line, previous_line, gap_ms } => format!("line {line} is {} after line {previous_line}", human_ms(*gap_ms)),
        }
    }

    /// What a scorer in file order assumes about the rows.
    pub fn assumed(&self) -> String {
        match self {
            Self::Duplicate { .. } => "scored in file order, at the same time".to_owned(),
            Self::Backward { latest_line, .. } => format!("scored in file order, as if at line {latest_line}'s time"),
            Self::Gap { .. } => "scored at its own time, nothing filled in".to_owned(),
        }
    }
}

impl std::fmt::Display for TimeIssue {
    /// What happened and what a scorer in file order assumes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.what(), self.assumed())
    }
}

/// Sampling whose steps vary by more than half the typical step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irregular {
    /// Steps forward (gaps aside) that differ so.
    pub steps_off: usize,
    /// Steps forward (gaps aside).
    pub steps: usize,
    /// The first few rows after such a step.
    pub first_lines: Vec<usize>,
    /// The shortest and the longest of those steps.
    pub range_ms: (i64, i64),
}

/// Reads `timestamp,value` CSV text like [`parse_csv_rows`], but keeps
/// every row in file order whatever its time: repeated times, a clock that
/// steps back (a daylight-saving change, an NTP step, a reboot), long gaps
/// and irregular sampling are reported in [`InFileOrder::report`], not
/// refused.
///
/// # Errors
/// A [`SeriesError`] naming the first bad line (never
/// [`SeriesError::Duplicate`] or [`SeriesError::Unsorted`]);
/// [`SeriesError::TooShort`] with fewer than `min_rows` rows.
pub fn parse_csv_in_file_order(text: &str, min_rows: usize) -> Result<InFileOrder<'_>, SeriesError> {
    let mut out = InFileOrder {
        ts: Vec::new(),
        scoring_ts: Vec::new(),
        values: Vec::new(),
        rows: Vec::new(),
        lines: Vec::new(),
        report: TimeReport::default(),
    };
    for row in read_rows(text)? {
        let Row { line, t, v, raw } = row?;
        out.ts.push(t);
        out.values.push(v);
        out.rows.push(raw);
        out.lines.push(line);
    }
    if out.values.len() < min_rows {
        return Err(SeriesError::TooShort { found: out.values.len(), needed: min_rows });
    }
    out.scoring_ts = out
        .ts
        .iter()
        .scan(UnixMs::MIN, |latest, &t| {
            *latest = (*latest).max(t);
            Some(*latest)
        })
        .collect();
    out.report = time_report(&out.ts, &out.lines, &out.rows);
    Ok(out)
}

/// The [`TimeReport`] of rows in file order: their times as written, lines
/// and fields (all of one length).
pub fn time_report(ts: &[UnixMs], lines: &[usize], rows: &[RawRow<'_>]) -> TimeReport {
    let n = ts.len().min(lines.len()).min(rows.len());
    // The typical step: the median of the steps forward from the latest time.
    let mut forward: Vec<i64> = Vec::new();
    let mut latest: Option<UnixMs> = None;
    for &t in &ts[..n] {
        if let Some(l) = latest {
            if t > l {
                forward.push(t.saturating_sub(l));
            }
        }
        latest = Some(latest.map_or(t, |l| l.max(t)));
    }
    let step_ms = if forward.is_empty() {
        None
    } else {
        let mut sorted = forward.clone();
        let mid = sorted.len() / 2;
        Some(*sorted.select_nth_unstable(mid).1)
    };
    let gap_over = step_ms.map_or(i64::MAX, |s| s.max(1).saturating_mul(GAP_STEPS));
    let mut report = TimeReport { issues: Vec::new(), step_ms, irregular: None };
    let (mut steps, mut off, mut first_lines, mut range) = (0usize, 0usize, Vec::new(), (i64::MAX, i64::MIN));
    // The latest row so far: its time and index.
    let mut top: Option<(UnixMs, usize)> = None;
    for i in 0..n {
        let (t, line) = (ts[i], lines[i]);
        let Some((t_top, i_top)) = top else {
            top = Some((t, i));
            continue;
        };
        if t < t_top {
            // Behind the latest: a new step back, or one more row of the last one.
            let by_ms = t_top.saturating_sub(t);
            match report.issues.last_mut() {
                Some(TimeIssue::Backward { latest_line, rows: behind, last_line, .. })
                    if *latest_line == lines[i_top] && *last_line == lines[i - 1] =>
                {
                    *behind += 1;
                    *last_line = line;
                }
                _ => report.issues.push(TimeIssue::Backward {
                    line,
                    text: rows[i].timestamp.to_owned(),
                    by_ms,
                    latest_line: lines[i_top],
                    rows: 1,
                    last_line: line,
                }),
            }
        } else if t == t_top {
            report.issues.push(TimeIssue::Duplicate { line, text: rows[i].timestamp.to_owned(), previous_line: lines[i_top] });
            top = Some((t, i));
        } else {
            let gap = t.saturating_sub(t_top);
            if gap > gap_over {
                report.issues.push(TimeIssue::Gap { line, previous_line: lines[i_top], gap_ms: gap });
            } else if let Some(s) = step_ms {
                steps += 1;
                if gap.abs_diff(s) > s.unsigned_abs() / 2 {
                    off += 1;
                    range = (range.0.min(gap), range.1.max(gap));
                    if first_lines.len() < 5 {
                        first_lines.push(line);
                    }
                }
            }
            top = Some((t, i));
        }
    }
    if steps > 0 && off as f64 >= IRREGULAR_SHARE * steps as f64 {
        report.irregular = Some(Irregular { steps_off: off, steps, first_lines, range_ms: range });
    }
    report
}

/// A duration as people read it, to its two largest units: `250 ms`,
/// `1 min 30 s`, `1 h`, `3 d 2 h`.
pub fn human_ms(ms: i64) -> String {
    const UNITS: [(u64, &str); 5] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1000, "s"), (1, "ms")];
    let mut rest = ms.unsigned_abs();
    let mut parts = Vec::new();
    for (size, name) in UNITS {
        if rest >= size && parts.len() < 2 {
            parts.push(format!("{} {name}", rest / size));
            rest %= size;
        } else if !parts.is_empty() {
            // Only adjacent units: `1 d 5 min` would read as more exact than it is.
            break;
        }
    }
    let text = if parts.is_empty() { "0 ms".to_owned() } else { parts.join(" ") };
    if ms < 0 {
        format!("-{text}")
    } else {
        text
    }
}

/// How [`sort_rows`] changed a file: rows moved and rows dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sorted {
    /// Rows earlier than a row before them, moved into time order.
    pub moved: usize,
    /// The first such row's line.
    pub first_moved_line: Option<usize>,
    /// Rows dropped because a later row of the file has the same time.
    pub dropped: usize,
    /// The first dropped row's line.
    pub first_dropped_line: Option<usize>,
}

impl Sorted {
    /// Whether the rows were already in strictly increasing time order.
    pub fn is_unchanged(&self) -> bool {
        self.moved == 0 && self.dropped == 0
    }
}

impl std::fmt::Display for Sorted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(l) = self.first_moved_line {
            parts.push(format!("{} row(s) earlier than a row before them moved into time order (the first on line {l})", self.moved));
        }
        if let Some(l) = self.first_dropped_line {
            parts.push(format!(
                "{} row(s) dropped for a repeated timestamp, keeping the last value of each (the first on line {l})",
                self.dropped
            ));
        }
        if parts.is_empty() {
            f.write_str("already in time order")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// Sorts rows by time (stable), keeping only the last row of the file for
/// each time: the indices of the rows kept, in time order, and what moved.
pub fn sort_rows(ts: &[UnixMs], lines: &[usize]) -> (Vec<usize>, Sorted) {
    let mut sorted = Sorted::default();
    let mut latest: Option<UnixMs> = None;
    for (i, &t) in ts.iter().enumerate() {
        if latest.is_some_and(|l| t < l) {
            sorted.moved += 1;
            sorted.first_moved_line = sorted.first_moved_line.or(lines.get(i).copied());
        }
        latest = Some(latest.map_or(t, |l| l.max(t)));
    }
    let mut order: Vec<usize> = (0..ts.len()).collect();
    order.sort_by_key(|&i| ts[i]);
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    let mut dropped_lines = Vec::new();
    for i in order {
        match kept.last_mut() {
            // Stable: the later row of the file comes later, and wins.
            Some(last) if ts[*last] == ts[i] => {
                dropped_lines.push(lines.get(*last).copied().unwrap_or(0));
                *last = i;
            }
            _ => kept.push(i),
        }
    }
    sorted.dropped = dropped_lines.len();
    sorted.first_dropped_line = dropped_lines.into_iter().min();
    (kept, sorted)
}

/// Reads `timestamp,value` CSV text in any order (`--sort`): the rows sorted
/// by time (stable), the last row of the file kept for a repeated time.
///
/// # Errors
/// As [`parse_csv_in_file_order`]; [`SeriesError::TooShort`] counts the rows kept.
pub fn parse_csv_sorted(text: &str, min_rows: usize) -> Result<(Series, Sorted), SeriesError> {
    let rows = parse_csv_in_file_order(text, 0)?;
    let (kept, sorted) = sort_rows(&rows.ts, &rows.lines);
    let series = Series { ts: kept.iter().map(|&i| rows.ts[i]).collect(), values: kept.iter().map(|&i| rows.values[i]).collect() };
    if series.len() < min_rows {
        return Err(SeriesError::TooShort { found: series.len(), needed: min_rows });
    }
    Ok((series, sorted))
}

/// The text without a UTF-8 byte order mark (U+FEFF) at its start.
pub(crate) fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Non-blank lines with their 1-based numbers.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty())
}

/// The comma-separated fields of a line, trimmed and unquoted.
pub(crate) fn split_fields(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|f| {
        let f = f.trim();
        f.strip_prefix('"').and_then(|g| g.strip_suffix('"')).unwrap_or(f)
    })
}

/// RFC 3339, `YYYY-MM-DD HH:MM:SS[.frac]` (UTC), or Unix seconds.
pub fn parse_timestamp(text: &str) -> Option<UnixMs> {
    parse_rfc3339(text).or_else(|| {
        let secs: f64 = text.trim().parse().ok()?;
        (secs.is_finite() && secs.abs() < 3.0e12).then(|| (secs * 1000.0).round() as i64)
    })
}

/// A finite number; `NaN`, `inf` and text are rejected.
pub fn parse_value(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_csv(text, 2).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn reads_nab_layout() {
        let s = parse_csv("timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,2\n", 2).unwrap();
        assert_eq!(s.values, [1.5, 2.0]);
        assert_eq!(s.ts[1] - s.ts[0], 300_000);
        assert_eq!(s.step_ms(), Some(300_000));
    }

    #[test]
    fn columns_in_any_order_and_unix_seconds() {
        let s = parse_csv("value,timestamp,extra\n3,100,x\n4,160,y\n", 2).unwrap();
        assert_eq!(s.ts, [100_000, 160_000]);
        assert_eq!(s.values, [3.0, 4.0]);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(err(""), "empty input: expected a header line `timestamp,value`");
        assert!(err("time,value\n").contains("line 1: the header has no `timestamp` column"));
        assert_eq!(err("timestamp,value\n2014-04-01 00:00:00,1\n"), "1 data row(s): at least 2 needed");
        assert!(err("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n").starts_with("line 3: value \"abc\""));
        assert!(err("timestamp,value\n2014-04-01 00:00:00,NaN\n").starts_with("line 2: value \"NaN\""));
        assert!(err("timestamp,value\nyesterday,1\n").starts_with("line 2: \"yesterday\" is not a timestamp"));
        assert!(err("timestamp,value\n2014-04-01 00:05:00,1\n2014-04-01 00:00:00,2\n").starts_with("line 3: timestamp"));
        let dup = err("timestamp,value\n2014-04-01 00:05:00,1\n\n2014-04-01 00:05:00,2\n");
        assert!(dup.starts_with("line 4: duplicate timestamp") && dup.contains("also on line 2"), "{dup}");
        assert!(err("timestamp,value\n2014-04-01 00:05:00\n").starts_with("line 2: expected 2 fields"));
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let p = parse_csv_rows("\u{feff}timestamp,value\n100,1\n160,2\n", 2, Duplicates::Reject).unwrap();
        assert_eq!((p.series.ts.as_slice(), p.series.values.as_slice()), (&[100_000, 160_000][..], &[1.0, 2.0][..]));
        assert_eq!(p.rows[0].timestamp, "100");
        // Only at the start: elsewhere it is part of a field.
        let inner = err("timestamp,value\n\u{feff}100,1\n160,2\n");
        assert!(inner.starts_with("line 2:") && inner.contains("is not a timestamp"), "{inner}");
        assert_eq!(err("\u{feff}"), "empty input: expected a header line `timestamp,value`");
    }

    #[test]
    fn duplicates_can_be_kept_for_row_for_row_scoring() {
        let p = parse_csv_rows("timestamp,value\n100,1\n100,2\n160,3\n", 2, Duplicates::Keep).unwrap();
        assert_eq!((p.series.len(), p.duplicate_lines.as_slice(), p.rows[1].value), (3, &[3][..], "2"));
    }

    #[test]
    fn in_file_order_keeps_every_row_and_never_scores_back_in_time() {
        // A duplicate (line 4), an hour back for two rows (lines 6, 7), and a 3-day gap (line 9).
        let text = "timestamp,value\n\
            2021-03-28 01:00:00,1\n\
            2021-03-28 02:00:00,2\n\
            2021-03-28 02:00:00,3\n\
            2021-03-28 03:00:00,4\n\
            2021-03-28 02:00:00,5\n\
            2021-03-28 02:30:00,6\n\
            2021-03-28 04:00:00,7\n\
            2021-03-31 04:00:00,8\n\
            2021-03-31 05:00:00,9\n";
        let p = parse_csv_in_file_order(text, 2).unwrap();
        assert_eq!(p.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(p.lines, [2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let h = 3_600_000;
        let t0 = p.ts[0];
        let fed: Vec<i64> = p.scoring_ts.iter().map(|t| (t - t0) / h).collect();
        assert_eq!(fed, [0, 1, 1, 2, 2, 2, 3, 75, 76]);
        assert_eq!(p.ts[4] - t0, h, "times as written are kept");
        assert_eq!(p.report.step_ms, Some(h));
        let said: Vec<String> = p.report.issues.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "line 4: timestamp 2021-03-28 02:00:00 repeats line 3's; scored in file order, at the same time",
                "line 6: timestamp 2021-03-28 02:00:00 is 1 h before line 5's (and so are the 1 rows after it, to line 7); \
                 scored in file order, as if at line 5's time",
                "line 9 is 3 d after line 8; scored at its own time, nothing filled in",
            ]
        );
        assert_eq!(p.report.irregular, None);
        // The strict reader refuses the same text at the first offence.
        assert!(matches!(parse_csv_rows(text, 2, Duplicates::Reject), Err(SeriesError::Duplicate { line: 4, .. })));
        assert!(matches!(parse_csv_rows(text, 2, Duplicates::Keep), Err(SeriesError::Unsorted { line: 6, previous_line: 5, .. })));
    }

    #[test]
    fn irregular_sampling_is_reported_once() {
        let mut text = String::from("timestamp,value\n");
        let mut t = 0;
        for i in 0..100 {
            t += if i % 4 == 0 { 170 } else { 60 };
            text.push_str(&format!("{t},1\n"));
        }
        let r = parse_csv_in_file_order(&text, 2).unwrap().report;
        assert!(r.issues.is_empty(), "{:?}", r.issues);
        let irr = r.irregular.unwrap();
        assert_eq!((irr.steps, irr.steps_off, irr.range_ms, irr.first_lines[0]), (99, 24, (170_000, 170_000), 6));
        let regular = parse_csv_in_file_order("timestamp,value\n0,1\n60,2\n120,3\n", 2).unwrap().report;
        assert_eq!(regular, TimeReport { issues: vec![], step_ms: Some(60_000), irregular: None });
    }

    #[test]
    fn sorting_is_stable_and_keeps_the_last_of_equal_times() {
        let text = "timestamp,value\n300,3\n100,1\n200,2\n100,9\n400,4\n";
        let (s, sorted) = parse_csv_sorted(text, 2).unwrap();
        assert_eq!(s.ts, [100_000, 200_000, 300_000, 400_000]);
        assert_eq!(s.values, [9.0, 2.0, 3.0, 4.0]);
        assert_eq!(sorted, Sorted { moved: 3, first_moved_line: Some(3), dropped: 1, first_dropped_line: Some(3) });
        assert!(sorted.to_string().contains("3 row(s) earlier than a row before them"), "{sorted}");
        let (_, none) = parse_csv_sorted("timestamp,value\n1,1\n2,2\n", 2).unwrap();
        assert!(none.is_unchanged());
        assert_eq!(parse_csv_sorted("timestamp,value\n1,1\n1,2\n", 2), Err(SeriesError::TooShort { found: 1, needed: 2 }));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_ms(250), "250 ms");
        assert_eq!(human_ms(3_600_000), "1 h");
        assert_eq!(human_ms(5_400_000), "1 h 30 min");
        assert_eq!(human_ms(3 * 86_400_000 + 300_000), "3 d");
        assert_eq!(human_ms(-90_000), "-1 min 30 s");
        assert_eq!(human_ms(0), "0 ms");
    }
}
