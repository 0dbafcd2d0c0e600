//! Queue URLs: `redis://…` and `postgres://…`, parsed once, printed
//! without their password.

use std::fmt;

use crate::QueueError;

/// Where a Redis queue lives and what it is.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or address.
    pub host: String,
    /// Port (6379 when not given).
    pub port: u16,
    /// Database number (`/DB`, default 0).
    pub db: u32,
    /// `AUTH` user (Redis 6 ACLs), if any.
    pub user: Option<String>,
    /// `AUTH` password: from the URL, else `REDISCLI_AUTH` / `REDIS_PASSWORD`.
    pub password: Option<String>,
    /// What the queue is.
    pub kind: RedisKind,
}

/// A stream with a consumer group, or a plain list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisKind {
    /// `?stream=NAME&group=NAME`: entries claimed by a consumer group.
    Stream {
        /// The stream's key.
        stream: String,
        /// The consumer group.
        group: String,
    },
    /// `?list=NAME`: a Sidekiq/RQ-style list; only its length is read.
    List {
        /// The list's key.
        list: String,
    },
}

/// Where a PostgreSQL job table lives.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// The connection string (`postgres://user@host:port/db`) without its
    /// password and without steward's own parameters (`table`).
    pub conninfo: String,
    /// The password: from the URL, else `PGPASSWORD`.
    pub password: Option<String>,
    /// The job table (`?table=NAME`, default `steward_jobs`).
    pub table: String,
    /// The connection string with its password replaced, for messages.
    redacted: String,
}

/// A queue URL of either kind.
#[derive(Clone, PartialEq, Eq)]
pub enum QueueUrl {
    /// `redis://`.
    Redis(RedisUrl),
    /// `postgres://` or `postgresql://`.
    Postgres(PostgresUrl),
}

impl fmt::Debug for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueUrl({self})")
    }
}

impl fmt::Display for QueueUrl {
    /// The URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(r) => r.fmt(f),
            Self::Postgres(p) => p.fmt(f),
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match (&self.user, &self.password) {
            (Some(u), Some(_)) => format!("{u}:***@"),
            (Some(u), None) => format!("{u}@"),
            (None, Some(_)) => ":***@".to_owned(),
            (None, None) => String::new(),
        };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let what = match &self.kind {
            RedisKind::Stream { stream, group } => format!("stream={stream}&group={group}"),
            RedisKind::List { list } => format!("list={list}"),
        };
        write!(f, "redis://{auth}{host}:{}/{}?{what}", self.port, self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

impl PostgresUrl {
    /// The URL without its password (and without steward's parameters).
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (table {})", self.redacted, self.table)
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

fn bad(url: &str, why: impl Into<String>) -> QueueError {
    QueueError::BadUrl { url: redact(url), why: why.into() }
}

/// `url` with any password replaced by `***`, for messages. Conservative:
/// everything between the user name's `:` and the last `@` is masked, so a
/// password holding `/`, `?` or `@` unescaped is masked too; a
/// `password=` parameter is masked as well.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let mut out = match rest.rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        _ => url.to_owned(),
    };
    while let Some(i) = out.find("password=").filter(|i| !out[i + 9..].starts_with("***")) {
        let end = out[i + 9..].find('&').map_or(out.len(), |e| i + 9 + e);
        out.replace_range(i + 9..end, "***");
    }
    out
}

/// Decodes `%XX` escapes (and `+` as a space in query values).
fn decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                // The text is not repeated: it may be a password.
                out.push(hex.ok_or_else(|| "a bad %-escape (% must be followed by two hex digits)".to_owned())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "a %-escape that is not UTF-8 once decoded".to_owned())
}

/// The `key=value` pairs of a query string, decoded.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k, true)?, decode(v, true)?))
        })
        .collect()
}

/// A name Redis keys and consumer groups may use here: printable, no spaces.
fn plain_name(what: &str, v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 200 || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{what}={v:?} must be a non-empty name of at most 200 characters without spaces"));
    }
    Ok(v.to_owned())
}

impl QueueUrl {
    /// The URL without its password, in a form that parses again (for a
    /// worker's command line), and the variable that carries the password
    /// (`REDIS_PASSWORD`, `PGPASSWORD`) with its value, if there is one.
    pub fn without_password(&self) -> (String, Option<(&'static str, String)>) {
        match self {
            Self::Redis(r) => {
                let mut public = r.clone();
                let pw = public.password.take();
                (public.to_string(), pw.map(|p| ("REDIS_PASSWORD", p)))
            }
            Self::Postgres(p) => {
                let sep = if p.conninfo.contains('?') { '&' } else { '?' };
                (format!("{}{sep}table={}", p.conninfo, p.table), p.password.clone().map(|pw| ("PGPASSWORD", pw)))
            }
        }
    }

    /// Whether `s` names a queue this crate serves (by its scheme).
    pub fn is_queue_url(s: &str) -> bool {
        ["redis://", "rediss://", "postgres://", "postgresql://"].iter().any(|p| s.starts_with(p))
    }

    /// Parses a queue URL. Passwords may come from the environment
    /// instead (`REDISCLI_AUTH`/`REDIS_PASSWORD`; `PGPASSWORD` as libpq does).
    ///
    /// # Errors
    /// [`QueueError::BadUrl`], naming the URL without its password.
    pub fn parse(url: &str) -> Result<Self, QueueError> {
        Self::parse_with_env(url, |k| std::env::var(k).ok())
    }

    /// [`QueueUrl::parse`] with the environment given (for tests).
    ///
    /// # Errors
    /// As [`QueueUrl::parse`].
    pub fn parse_with_env(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, QueueError> {
        if let Some(rest) = url.strip_prefix("redis://") {
            return parse_redis(url, rest, env).map(Self::Redis);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return parse_postgres(url, env).map(Self::Postgres);
        }
        if url.starts_with("rediss://") {
            return Err(bad(url, "rediss:// (TLS) is not supported yet; use redis:// through a TLS tunnel (stunnel, spiped)"));
        }
        Err(bad(url, "not a queue URL: use redis://HOST:PORT/DB?stream=NAME&group=NAME, redis://HOST/0?list=NAME or postgres://USER@HOST/DB?table=NAME"))
    }
}

fn parse_redis(url: &str, rest: &str, env: impl Fn(&str) -> Option<String>) -> Result<RedisUrl, QueueError> {
    // The user information ends at the last `@`: a password may hold an
    // unescaped `/`, `?` or `@` (names with `@` must be %-escaped).
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (hostport, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let (mut user, mut password) = (None, None);
    if let Some(ui) = userinfo {
        let (u, p) = ui.split_once(':').map_or((ui, None), |(u, p)| (u, Some(p)));
        let u = decode(u, false).map_err(|e| bad(url, e))?;
        if !u.is_empty() {
            user = Some(u);
        }
        if let Some(p) = p {
            password = Some(decode(p, false).map_err(|e| bad(url, e))?);
        }
    }
    if password.is_none() {
        password = env("REDISCLI_AUTH").or_else(|| env("REDIS_PASSWORD")).filter(|p| !p.is_empty());
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad(url, "unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse::<u16>().map_err(|_| bad(url, format!("bad port {p:?}")))?,
            None => 6379,
        };
        (h.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse::<u16>().map_err(|_| bad(url, format!("bad port {p:?}")))?),
            None => (hostport.to_owned(), 6379),
        }
    };
    if host.is_empty() {
        return Err(bad(url, "no host"));
    }
    let db =
        if path.is_empty() { 0 } else { path.parse::<u32>().map_err(|_| bad(url, format!("the database /{path} is not a number")))? };
    let pairs = query_pairs(query).map_err(|e| bad(url, e))?;
    let get = |k: &str| pairs.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    for (k, _) in &pairs {
        if !["stream", "group", "list"].contains(&k.as_str()) {
            return Err(bad(url, format!("unknown parameter {k:?} (known: stream, group, list)")));
        }
    }
    let kind = match (get("stream"), get("group"), get("list")) {
        (Some(s), Some(g), None) => RedisKind::Stream {
            stream: plain_name("stream", s).map_err(|e| bad(url, e))?,
            group: plain_name("group", g).map_err(|e| bad(url, e))?,
        },
        (Some(_), None, None) => return Err(bad(url, "a stream needs its consumer group: add &group=NAME")),
        (None, None, Some(l)) => RedisKind::List { list: plain_name("list", l).map_err(|e| bad(url, e))? },
        (None, None, None) => return Err(bad(url, "say which queue: ?stream=NAME&group=NAME or ?list=NAME")),
        _ => return Err(bad(url, "give either stream and group, or list, not both")),
    };
    Ok(RedisUrl { host, port, db, user, password, kind })
}

fn parse_postgres(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<PostgresUrl, QueueError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    // The password is kept apart, so the URL can be shown and handed on.
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    // The user information ends at the last `@` (a password may hold an unescaped `/`).
    let auth_end = rest.rfind('@').map_or(0, |at| at + 1);
    let auth_end = auth_end + rest[auth_end..].find('/').unwrap_or(rest.len() - auth_end);
    let (authority, tail) = rest.split_at(auth_end);
    let (base, mut password) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pw)) => (format!("{scheme}://{user}@{host}{tail}"), Some(decode(pw, false).map_err(|e| bad(url, e))?)),
            None => (base.to_owned(), None),
        },
        None => (base.to_owned(), None),
    };
    let base = base.as_str();
    let pairs = query_pairs(query).map_err(|e| bad(url, e))?;
    let mut table = "steward_jobs".to_owned();
    let mut kept = Vec::new();
    for (k, v) in pairs {
        if k == "table" {
            table = v;
        } else if k == "sslmode" && ["require", "verify-ca", "verify-full"].contains(&v.as_str()) {
            return Err(bad(url, format!("sslmode={v}: steward connects to PostgreSQL without TLS for now; use a TLS tunnel, or sslmode=disable on a trusted network")));
        } else if k == "password" {
            // Kept apart like the userinfo password: never on a command line.
            if password.is_none() {
                password = Some(v);
            }
        } else {
            kept.push((k, v));
        }
    }
    if !valid_table(&table) {
        return Err(bad(url, format!("table={table:?} must be a plain SQL name (letters, digits, _; optionally schema.table)")));
    }
    let mut conninfo = base.to_owned();
    if !kept.is_empty() {
        // Parameters libpq knows (sslmode, connect_timeout, ...) pass through, encoded again.
        let enc = |s: &str| {
            s.bytes()
                .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect::<String>()
        };
        conninfo.push('?');
        conninfo.push_str(&kept.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&"));
    }
    if password.is_none() {
        password = env("PGPASSWORD").filter(|p| !p.is_empty());
    }
    // Checked now, so a bad URL is bad input at load, not a failing cycle.
    conninfo.parse::<postgres::Config>().map_err(|e| bad(url, e.to_string()))?;
    Ok(PostgresUrl { redacted: base.to_owned(), conninfo, password, table })
}

/// A table name safe to put into SQL text: `name` or `schema.name`, each
/// part letters, digits and `_`, not starting with a digit.
pub fn valid_table(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty() && p.len() <= 63 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !p.as_bytes()[0].is_ascii_digit()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_stream_url_parses_and_prints_without_its_password() {
        let u = QueueUrl::parse_with_env("redis://me:s3cret@10.0.0.1:6380/2?stream=jobs&group=workers", no_env).unwrap();
        let QueueUrl::Redis(r) = &u else { panic!("not redis") };
        assert_eq!((r.host.as_str(), r.port, r.db), ("10.0.0.1", 6380, 2));
        assert_eq!(r.password.as_deref(), Some("s3cret"));
        assert_eq!(r.kind, RedisKind::Stream { stream: "jobs".into(), group: "workers".into() });
        let shown = u.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!format!("{u:?}").contains("s3cret"));
    }

    #[test]
    fn the_password_can_come_from_the_environment() {
        let u = QueueUrl::parse_with_env("redis://localhost/0?list=q", |k| (k == "REDIS_PASSWORD").then(|| "pw".to_owned())).unwrap();
        let QueueUrl::Redis(r) = u else { panic!() };
        assert_eq!(r.password.as_deref(), Some("pw"));
        assert_eq!((r.port, r.kind), (6379, RedisKind::List { list: "q".into() }));
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        for (url, want) in [
            ("redis://h:1/0?stream=s", "group"),
            ("redis://h:99999/0?stream=s&group=g", "bad port"),
            ("redis://h/x?list=q", "not a number"),
            ("redis://h/0", "which queue"),
            ("redis://h/0?list=q&stream=s&group=g", "not both"),
            ("redis://h/0?lsit=q", "unknown parameter"),
            ("redis://u:pw@/0?list=q", "no host"),
            ("rediss://h/0?list=q", "TLS"),
            ("amqp://h", "not a queue URL"),
            ("postgres://u:pw@h/db?table=x;drop", "plain SQL name"),
            ("redis://h/0?list=a%20b", "without spaces"),
        ] {
            let e = QueueUrl::parse_with_env(url, no_env).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains(":pw@"), "{e}");
        }
    }

    #[test]
    fn a_postgres_url_keeps_libpq_parameters_and_takes_the_table() {
        let u = QueueUrl::parse_with_env("postgres://app:pw@127.0.0.1:5433/jobs?table=work.queue&connect_timeout=5", no_env).unwrap();
        let QueueUrl::Postgres(p) = &u else { panic!() };
        assert_eq!(p.table, "work.queue");
        assert_eq!(p.conninfo, "postgres://app@127.0.0.1:5433/jobs?connect_timeout=5");
        assert_eq!(p.password.as_deref(), Some("pw"));
        assert!(!u.to_string().contains("pw@"), "{u}");
        let (public, secret) = u.without_password();
        assert_eq!(public, "postgres://app@127.0.0.1:5433/jobs?connect_timeout=5&table=work.queue");
        assert_eq!(secret, Some(("PGPASSWORD", "pw".to_owned())));
        assert_eq!(QueueUrl::parse_with_env(&public, |k| (k == "PGPASSWORD").then(|| "pw".to_owned())).unwrap(), u);
    }

    #[test]
    fn passwords_are_masked_however_they_are_written() {
        for url in [
            "redis://:pa/ss@h:1/0?list=q",
            "redis://u:p?w@d@h/0?list=q",
            "postgres://app:Pg/Secret@h/db",
            "postgres://app@h/db?password=Pg5ecret&sslmode=disable",
        ] {
            let shown = redact(url);
            for secret in ["pa/ss", "p?w@d", "Pg/Secret", "Pg5ecret"] {
                assert!(!shown.contains(secret), "{url} -> {shown}");
            }
            match QueueUrl::parse_with_env(url, no_env) {
                Err(e) => assert!(!e.to_string().contains("pa/ss") && !e.to_string().contains("Pg/Secret"), "{e}"),
                Ok(u) => {
                    let all = format!("{u} {u:?} {}", u.without_password().0);
                    for secret in ["pa/ss", "p?w@d", "Pg/Secret", "Pg5ecret"] {
                        assert!(!all.contains(secret), "{url} -> {all}");
                    }
                }
            }
        }
        let u = QueueUrl::parse_with_env("postgres://app@h/db?password=Pg5ecret&sslmode=disable", no_env).unwrap();
        let (public, secret) = u.without_password();
        assert!(!public.contains("Pg5ecret") && !u.to_string().contains("Pg5ecret"), "{public}");
        assert_eq!(secret, Some(("PGPASSWORD", "Pg5ecret".to_owned())));
    }

    #[test]
    fn a_redis_url_without_its_password_parses_back_with_the_variable() {
        let u = QueueUrl::parse_with_env("redis://:s3%40cret@h:7000/1?stream=s&group=g", no_env).unwrap();
        let (public, secret) = u.without_password();
        assert!(!public.contains("s3"), "{public}");
        assert_eq!(secret, Some(("REDIS_PASSWORD", "s3@cret".to_owned())));
        assert_eq!(QueueUrl::parse_with_env(&public, |k| (k == "REDIS_PASSWORD").then(|| "s3@cret".to_owned())).unwrap(), u);
    }
}
