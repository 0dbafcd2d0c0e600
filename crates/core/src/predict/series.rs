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
    /// Lines whose timestamp repeated the previous row's (with [`Duplicates::Keep`]).
    pub duplicate_lines: Vec<usize>,
}

/// Like [`parse_csv`], and also returns each row's fields as written.
///
/// # Errors
/// As [`parse_csv`].
pub fn parse_csv_rows(text: &str, min_rows: usize, duplicates: Duplicates) -> Result<Parsed<'_>, SeriesError> {
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
    let mut series = Series::default();
    let mut raw = Vec::new();
    let mut duplicate_lines = Vec::new();
    let mut prev_line = header_line;
    for (line, row) in lines {
        let fields: Vec<&str> = split_fields(row).collect();
        let need = it.max(iv) + 1;
        if fields.len() < need {
            return Err(SeriesError::MissingField { line, expected: columns.len(), found: fields.len() });
        }
        let (t_text, v_text) = (fields[it], fields[iv]);
        let t = parse_timestamp(t_text).ok_or_else(|| SeriesError::BadTimestamp { line, text: t_text.to_owned() })?;
        let v = parse_value(v_text).ok_or_else(|| SeriesError::BadValue { line, text: v_text.to_owned() })?;
        if let Some(&last) = series.ts.last() {
            if t == last {
                if duplicates == Duplicates::Reject {
                    return Err(SeriesError::Duplicate { line, text: t_text.to_owned(), previous_line: prev_line });
                }
                duplicate_lines.push(line);
            }
            if t < last {
                return Err(SeriesError::Unsorted { line, text: t_text.to_owned(), previous_line: prev_line });
            }
        }
        series.ts.push(t);
        series.values.push(v);
        raw.push(RawRow { timestamp: t_text, value: v_text });
        prev_line = line;
    }
    if series.len() < min_rows {
        return Err(SeriesError::TooShort { found: series.len(), needed: min_rows });
    }
    Ok(Parsed { series, rows: raw, duplicate_lines })
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
}
