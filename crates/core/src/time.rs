//! Timestamps as Unix milliseconds, with an RFC 3339 parser and formatter.
//!
//! The core never reads a clock: callers pass `now` in. This module only
//! converts between text and [`UnixMs`], which is all the coordination
//! formats need (RFC 3339 with or without a zone, or Unix seconds).

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMs = i64;

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    let mut v = 0i64;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Parses `YYYY-MM-DD[T| ]HH:MM[:SS[.frac]][Z|±HH:MM|±HHMM]`, or a bare date.
/// A timestamp without a zone is UTC (spec/coordination.md).
pub fn parse_rfc3339(text: &str) -> Option<UnixMs> {
    let b = text.trim().as_bytes();
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(days * 86_400_000);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let minute = digits(b, 14, 2)?;
    let mut i = 16;
    let mut second = 0;
    let mut millis = 0i64;
    if b.get(i) == Some(&b':') {
        second = digits(b, i + 1, 2)?;
        i += 3;
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                if i - start < 3 {
                    millis = millis * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..3 {
                millis *= 10;
            }
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset_secs = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            let rest = &b[i + 3..];
            let om = match rest {
                [] => 0,
                [b':', ..] if rest.len() == 3 => digits(b, i + 4, 2)?,
                _ if rest.len() == 2 => digits(b, i + 3, 2)?,
                _ => return None,
            };
            let off = oh * 3600 + om * 60;
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1000 + millis)
}

/// Interprets a JSON value as a timestamp: an RFC 3339 string, or a number
/// of Unix seconds (fractions allowed), or a string holding such a number.
pub fn parse_json_timestamp(value: &serde_json::Value) -> Option<UnixMs> {
    match value {
        serde_json::Value::Number(n) => n.as_f64().and_then(secs_to_ms),
        serde_json::Value::String(s) => parse_rfc3339(s).or_else(|| s.trim().parse::<f64>().ok().and_then(secs_to_ms)),
        _ => None,
    }
}

fn secs_to_ms(secs: f64) -> Option<UnixMs> {
    // Reject values that cannot be a time (NaN, or beyond year ±100000).
    if secs.is_finite() && secs.abs() < 3.0e12 {
        Some((secs * 1000.0).round() as i64)
    } else {
        None
    }
}

/// A duration in seconds as people read it: `45 s`, `12 min`, `5 h`, `694 d`
/// (rounded down to the largest unit that fits at least twice, so `90 s`
/// stays seconds and `120 s` is `2 min`).
pub fn human_secs(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// Formats as RFC 3339 UTC with millisecond precision: `2026-11-23T13:44:00.000Z`.
pub fn format_rfc3339(ms: UnixMs) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (mi, rem) = (rem / 60_000, rem % 60_000);
    let (s, milli) = (rem / 1000, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_secs(45), "45 s");
        assert_eq!(human_secs(90), "90 s");
        assert_eq!(human_secs(720), "12 min");
        assert_eq!(human_secs(5 * 3600 + 10), "5 h");
        assert_eq!(human_secs(59_946_215), "693 d");
    }

    use super::*;

    fn check(text: &str, expect: Option<&str>) {
        let got = parse_rfc3339(text).map(format_rfc3339);
        assert_eq!(got.as_deref(), expect, "parsing {text:?}");
    }

    #[test]
    fn parses_the_shapes_agents_write() {
        check("2025-06-27T15:41:04.944999", Some("2025-06-27T15:41:04.944Z"));
        check("2025-06-27T15:41:04Z", Some("2025-06-27T15:41:04.000Z"));
        check("2025-06-27 15:41:04", Some("2025-06-27T15:41:04.000Z"));
        check("2025-06-27T17:41:04+02:00", Some("2025-06-27T15:41:04.000Z"));
        check("2025-06-27T10:41:04-0500", Some("2025-06-27T15:41:04.000Z"));
        check("2025-06-27T15:41", Some("2025-06-27T15:41:00.000Z"));
        check("2024-02-29", Some("2024-02-29T00:00:00.000Z"));
        check("1969-12-31T23:59:59.5Z", Some("1969-12-31T23:59:59.500Z"));
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in ["", "yesterday", "2025-13-01", "2025-06-27T25:00:00", "2025-06-27T15:41:04Zjunk", "2025-06-27T15:41:04.", "2025/06/27"]
        {
            check(bad, None);
        }
    }

    #[test]
    fn json_numbers_are_unix_seconds() {
        assert_eq!(parse_json_timestamp(&serde_json::json!(1_700_000_000)), Some(1_700_000_000_000));
        assert_eq!(parse_json_timestamp(&serde_json::json!(1.5)), Some(1500));
        assert_eq!(parse_json_timestamp(&serde_json::json!("1700000000")), Some(1_700_000_000_000));
        assert_eq!(parse_json_timestamp(&serde_json::json!(1e300)), None);
        assert_eq!(parse_json_timestamp(&serde_json::json!(true)), None);
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 19_000, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
