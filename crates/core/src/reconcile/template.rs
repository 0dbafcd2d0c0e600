//! Key templates: `box_scores/{date:%Y/%m/%d}.json`, `{dataset}/{value}.csv`.
//!
//! Placeholders: `{date}` (the partition's date as `%Y-%m-%d`),
//! `{date:FORMAT}` (with `%Y %m %d %H %M %S %j %%`), `{value}` (an explicit
//! partition value), `{dataset}` (the dataset's name); collectors' argv may
//! also use `{key}` and `{partition}`. `{{` and `}}` are literal braces.
//!
//! A key template also works backwards: a listed key is parsed back to
//! its partition (no table of every expected key is held in memory).

use crate::time::UnixMs;

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as it is.
    Lit(String),
    /// A date field: a `%` directive of a format.
    Date(Field),
    /// The explicit partition value.
    Value,
    /// The dataset's name.
    Dataset,
    /// The key (collectors only).
    Key,
    /// The partition as text (collectors only).
    Partition,
}

/// A date field, fixed width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `%Y`: four-digit year.
    Year,
    /// `%m`: month 01–12.
    Month,
    /// `%d`: day 01–31.
    Day,
    /// `%H`: hour 00–23.
    Hour,
    /// `%M`: minute 00–59.
    Minute,
    /// `%S`: second 00–59.
    Second,
    /// `%j`: day of the year 001–366.
    DayOfYear,
}

impl Field {
    fn width(self) -> usize {
        match self {
            Self::Year => 4,
            Self::DayOfYear => 3,
            _ => 2,
        }
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Where a template may be used: which placeholders it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A key of a dataset with `dates:`.
    DateKey,
    /// A key of a dataset with `values:`.
    ValueKey,
    /// An argument of a collector.
    Argument,
}

/// The parts of a civil time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month 1–12.
    pub month: i64,
    /// Day 1–31.
    pub day: i64,
    /// Hour.
    pub hour: i64,
    /// Minute.
    pub minute: i64,
    /// Second.
    pub second: i64,
}

impl Civil {
    /// The civil time of a Unix time (UTC).
    pub fn of(ms: UnixMs) -> Self {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = crate::time::civil_from_days(days);
        Self { year, month, day, hour: rem / 3600, minute: rem % 3600 / 60, second: rem % 60 }
    }

    /// Back to Unix time.
    pub fn ms(self) -> UnixMs {
        let days = crate::time::days_from_civil(self.year, self.month, self.day);
        (days * 86_400 + self.hour * 3600 + self.minute * 60 + self.second) * 1000
    }

    fn day_of_year(self) -> i64 {
        crate::time::days_from_civil(self.year, self.month, self.day) - crate::time::days_from_civil(self.year, 1, 1) + 1
    }
}

/// What a template is filled with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fill<'a> {
    /// The partition's start, for date fields.
    pub date: Option<UnixMs>,
    /// The partition value.
    pub value: Option<&'a str>,
    /// The dataset's name.
    pub dataset: &'a str,
    /// The key.
    pub key: Option<&'a str>,
}

impl Template {
    /// Parses `text` for `usage`.
    ///
    /// # Errors
    /// An unknown placeholder or directive, or an unclosed brace, in words.
    pub fn parse(text: &str, usage: Use) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => return Err(format!("a lone `}}` in {text:?} (write `}}}}` for a brace)")),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            None => return Err(format!("a `{{` is not closed in {text:?}")),
                            Some('}') => break,
                            Some(c) => name.push(c),
                        }
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.extend(placeholder(&name, usage, text)?);
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        // Adjacent literals (around a `{dataset}` that stays a placeholder) are fine.
        Ok(Self { pieces })
    }

    /// The pieces.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The finest date unit the template tells apart, in seconds (`None`
    /// without date fields).
    pub fn date_resolution(&self) -> Option<i64> {
        let has = |f: Field| self.pieces.contains(&Piece::Date(f));
        let day = has(Field::DayOfYear) || (has(Field::Month) && has(Field::Day));
        if !has(Field::Year) || !day {
            return if self.pieces.iter().any(|p| matches!(p, Piece::Date(_))) { Some(i64::MAX) } else { None };
        }
        Some(if has(Field::Second) {
            1
        } else if has(Field::Minute) {
            60
        } else if has(Field::Hour) {
            3600
        } else {
            86_400
        })
    }

    /// Fills the template.
    pub fn fill(&self, f: &Fill<'_>) -> String {
        let mut out = String::new();
        let civil = f.date.map(Civil::of);
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Dataset => out.push_str(f.dataset),
                Piece::Value | Piece::Partition => out.push_str(&partition_text(f)),
                Piece::Key => out.push_str(f.key.unwrap_or_default()),
                Piece::Date(field) => {
                    let c = civil.unwrap_or_default();
                    let (v, w) = match field {
                        Field::Year => (c.year, 4),
                        Field::Month => (c.month, 2),
                        Field::Day => (c.day, 2),
                        Field::Hour => (c.hour, 2),
                        Field::Minute => (c.minute, 2),
                        Field::Second => (c.second, 2),
                        Field::DayOfYear => (c.day_of_year(), 3),
                    };
                    out.push_str(&format!("{v:0w$}"));
                }
            }
        }
        out
    }

    /// The literal text every filled key starts with (with `{dataset}` as
    /// `dataset`): where a listing can start.
    pub fn literal_prefix(&self, dataset: &str) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Dataset => out.push_str(dataset),
                _ => break,
            }
        }
        out
    }

    /// Parses a key back into the date it was filled with; `None` when
    /// the key does not have the template's shape.
    pub fn parse_date(&self, key: &str, dataset: &str) -> Option<UnixMs> {
        let mut rest = key;
        let mut c = Civil { year: 1970, month: 1, day: 1, ..Civil::default() };
        let mut doy = None;
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => rest = rest.strip_prefix(s.as_str())?,
                Piece::Dataset => rest = rest.strip_prefix(dataset)?,
                Piece::Date(f) => {
                    let w = f.width();
                    let digits = rest.get(..w)?;
                    if !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    let v: i64 = digits.parse().ok()?;
                    rest = &rest[w..];
                    match f {
                        Field::Year => c.year = v,
                        Field::Month => c.month = v,
                        Field::Day => c.day = v,
                        Field::Hour => c.hour = v,
                        Field::Minute => c.minute = v,
                        Field::Second => c.second = v,
                        Field::DayOfYear => doy = Some(v),
                    }
                }
                Piece::Value | Piece::Key | Piece::Partition => return None,
            }
        }
        if !rest.is_empty() {
            return None;
        }
        if !(1..=12).contains(&c.month) || !(1..=31).contains(&c.day) || c.hour > 23 || c.minute > 59 || c.second > 59 {
            return None;
        }
        let mut ms = c.ms();
        if let Some(d) = doy {
            if !(1..=366).contains(&d) {
                return None;
            }
            ms = Civil { month: 1, day: 1, ..c }.ms() + (d - 1) * 86_400_000;
        }
        Some(ms)
    }
}

/// A partition as text: its value, or its date (`2024-10-05`, with the
/// time `T07:00:00Z` when it does not start at midnight).
pub fn partition_text(f: &Fill<'_>) -> String {
    if let Some(v) = f.value {
        return v.to_owned();
    }
    let Some(c) = f.date.map(Civil::of) else { return String::new() };
    let mut out = format!("{:04}-{:02}-{:02}", c.year, c.month, c.day);
    if c.hour != 0 || c.minute != 0 || c.second != 0 {
        out.push_str(&format!("T{:02}:{:02}:{:02}Z", c.hour, c.minute, c.second));
    }
    out
}

fn placeholder(name: &str, usage: Use, text: &str) -> Result<Vec<Piece>, String> {
    let known = match usage {
        Use::DateKey => "date, date:FORMAT, dataset",
        Use::ValueKey => "value, dataset",
        Use::Argument => "date, date:FORMAT, value, dataset, key, partition",
    };
    let unknown = || format!("unknown placeholder {{{name}}} in {text:?} (known here: {known})");
    let dates = matches!(usage, Use::DateKey | Use::Argument);
    match name {
        "date" if dates => Ok(vec![
            Piece::Date(Field::Year),
            Piece::Lit("-".into()),
            Piece::Date(Field::Month),
            Piece::Lit("-".into()),
            Piece::Date(Field::Day),
        ]),
        "value" if matches!(usage, Use::ValueKey | Use::Argument) => Ok(vec![Piece::Value]),
        "dataset" => Ok(vec![Piece::Dataset]),
        "key" if usage == Use::Argument => Ok(vec![Piece::Key]),
        "partition" if usage == Use::Argument => Ok(vec![Piece::Partition]),
        _ => match name.strip_prefix("date:") {
            Some(fmt) if dates => date_format(fmt, text),
            _ => Err(unknown()),
        },
    }
}

fn date_format(fmt: &str, text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let field = match chars.next() {
            Some('Y') => Field::Year,
            Some('m') => Field::Month,
            Some('d') => Field::Day,
            Some('H') => Field::Hour,
            Some('M') => Field::Minute,
            Some('S') => Field::Second,
            Some('j') => Field::DayOfYear,
            Some('%') => {
                lit.push('%');
                continue;
            }
            Some(d) => return Err(format!("unknown date directive %{d} in {text:?} (known: %Y %m %d %H %M %S %j %%)")),
            None => return Err(format!("a date format ends with a lone % in {text:?}")),
        };
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        out.push(Piece::Date(field));
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    if out.is_empty() {
        return Err(format!("an empty date format in {text:?}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn ms(s: &str) -> UnixMs {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn fills_and_parses_back() {
        let t = Template::parse("box_scores/{date:%Y/%m/%d}.json", Use::DateKey).unwrap();
        let d = ms("2024-10-05");
        let key = t.fill(&Fill { date: Some(d), dataset: "box", ..Fill::default() });
        assert_eq!(key, "box_scores/2024/10/05.json");
        assert_eq!(t.parse_date(&key, "box"), Some(d));
        assert_eq!(t.parse_date("box_scores/2024/10/05.json.tmp", "box"), None);
        assert_eq!(t.parse_date("box_scores/2024/13/05.json", "box"), None);
        assert_eq!(t.parse_date("box_scores/2024/1x/05.json", "box"), None);
        assert_eq!(t.literal_prefix("box"), "box_scores/");
        assert_eq!(t.date_resolution(), Some(86_400));

        let h = Template::parse("{dataset}/{date}/{date:%H}h-{date:%j}.csv", Use::DateKey).unwrap();
        let d = ms("2024-03-01T07:00:00Z");
        let key = h.fill(&Fill { date: Some(d), dataset: "logs", ..Fill::default() });
        assert_eq!(key, "logs/2024-03-01/07h-061.csv");
        assert_eq!(h.parse_date(&key, "logs"), Some(d));
        assert_eq!(h.literal_prefix("logs"), "logs/");
        assert_eq!(h.date_resolution(), Some(3600));
    }

    #[test]
    fn values_and_arguments() {
        let t = Template::parse("{dataset}/{value}.json", Use::ValueKey).unwrap();
        assert_eq!(t.fill(&Fill { value: Some("nyc"), dataset: "cities", ..Fill::default() }), "cities/nyc.json");
        let a = Template::parse("--date={date}", Use::Argument).unwrap();
        assert_eq!(a.fill(&Fill { date: Some(ms("2024-01-02")), ..Fill::default() }), "--date=2024-01-02");
        let k = Template::parse("{key}", Use::Argument).unwrap();
        assert_eq!(k.fill(&Fill { key: Some("a/b.json"), ..Fill::default() }), "a/b.json");
        assert_eq!(Template::parse("{{literal}}", Use::Argument).unwrap().fill(&Fill::default()), "{literal}");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        let e = |t: &str, u: Use| Template::parse(t, u).unwrap_err();
        assert!(e("a/{dat}.json", Use::DateKey).contains("unknown placeholder {dat}"));
        assert!(e("a/{value}.json", Use::DateKey).contains("unknown placeholder {value}"));
        assert!(e("a/{date}.json", Use::ValueKey).contains("unknown placeholder {date}"));
        assert!(e("a/{key}", Use::DateKey).contains("unknown placeholder {key}"));
        assert!(e("a/{date:%Q}", Use::DateKey).contains("%Q"));
        assert!(e("a/{date", Use::DateKey).contains("not closed"));
        assert!(e("a/}", Use::DateKey).contains("lone"));
        // A monthly key cannot tell daily partitions apart.
        assert_eq!(Template::parse("m/{date:%Y-%m}", Use::DateKey).unwrap().date_resolution(), Some(i64::MAX));
    }
}
