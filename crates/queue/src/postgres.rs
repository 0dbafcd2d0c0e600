//! A PostgreSQL job table, claimed with `FOR UPDATE SKIP LOCKED`: see the
//! crate doc, and [`SCHEMA`] for the table steward creates when it is missing.

use std::time::Duration;

use postgres::{Client, NoTls};
use serde_json::{Map, Value};

use crate::url::PostgresUrl;
use crate::{item_body, Census, Consumer, Fate, Item, PendingClaim, QueueError, Recovery, WorkQueue};

/// The job table and its workers table; `{t}` is the table's name.
///
/// Producers insert rows (`INSERT INTO {t} (payload) VALUES ('{...}')`,
/// optionally with `item` as their own id and `max_attempts`); everything
/// else is the worker's and steward's.
pub const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS {t} (
    id           bigserial PRIMARY KEY,
    item         text,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer,
    claimed_by   text,
    claimed_at   timestamptz,
    heartbeat_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    last_error   text,
    result       jsonb
);
CREATE INDEX IF NOT EXISTS {n}_queued ON {t} (id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS {n}_running ON {t} (heartbeat_at) WHERE state = 'running';
CREATE TABLE IF NOT EXISTS {t}_workers (
    name       text PRIMARY KEY,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz NOT NULL DEFAULT now()
);";

/// The queries steward runs, each replaceable in the config
/// (`source.queries`) for a table of another shape. `{t}` is the table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Queries {
    /// Counts: one row of four bigints, waiting, in flight, completed, dead.
    pub counts: String,
    /// Claims: rows of (id text, claimed_by text, idle_ms bigint, attempts int), oldest first; `$1` is the limit.
    pub claims: String,
    /// Consumers: rows of (name text, idle_ms bigint, pending bigint).
    pub consumers: String,
    /// Requeue: `$1` ids (text[]), `$2` the minimum idle in ms (bigint),
    /// `$3` the attempt limit (int); returns (id text, state text) of each row changed.
    pub requeue: String,
}

impl Default for Queries {
    fn default() -> Self {
        Self {
            counts: "SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running'), \
                     count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'dead') FROM {t}"
                .into(),
            claims: "SELECT id::text, claimed_by, (extract(epoch FROM now() - heartbeat_at) * 1000)::bigint, attempts \
                     FROM {t} WHERE state = 'running' ORDER BY heartbeat_at LIMIT $1"
                .into(),
            consumers: "SELECT w.name, (extract(epoch FROM now() - w.seen_at) * 1000)::bigint, \
                        (SELECT count(*) FROM {t} j WHERE j.state = 'running' AND j.claimed_by = w.name) FROM {t}_workers w"
                .into(),
            requeue: "UPDATE {t} SET state = CASE WHEN attempts + 1 >= coalesce(max_attempts, $3) THEN 'dead' ELSE 'queued' END, \
                      attempts = attempts + 1, claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, \
                      finished_at = CASE WHEN attempts + 1 >= coalesce(max_attempts, $3) THEN now() END, \
                      last_error = 'its claim went stale: requeued by steward' \
                      WHERE id::text = ANY($1) AND state = 'running' AND heartbeat_at <= now() - make_interval(secs => $2::bigint / 1000.0) \
                      RETURNING id::text, state"
                .into(),
        }
    }
}

/// Connects with steward's settings: the password kept apart from the URL,
/// `timeout` on connecting and on every statement and lock wait, and
/// keepalives that find a dead server even while a call waits for its answer.
///
/// # Errors
/// [`QueueError::Connect`] when the server cannot be reached;
/// [`QueueError::Command`] when it answers and refuses (credentials, database):
/// retrying will not help then.
pub fn connect(url: &PostgresUrl, timeout: Duration, application: &str) -> Result<Client, QueueError> {
    let mut cfg: postgres::Config = url.conninfo.parse().map_err(pg("parsing the connection string"))?;
    if let Some(pw) = &url.password {
        cfg.password(pw.as_bytes());
    }
    cfg.connect_timeout(timeout)
        .tcp_user_timeout(timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(1))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3);
    if cfg.get_application_name().is_none() {
        cfg.application_name(application);
    }
    let mut client = cfg.connect(NoTls).map_err(|e| match e.as_db_error() {
        Some(_) => QueueError::Command { command: format!("connecting to {url}"), message: pg_message(&e) },
        None => QueueError::Connect { target: url.to_string(), source: std::io::Error::other(pg_message(&e)) },
    })?;
    let ms = timeout.as_millis().max(1);
    client.batch_execute(&format!("SET statement_timeout = {ms}; SET lock_timeout = {ms}")).map_err(pg("setting timeouts"))?;
    Ok(client)
}

/// A PostgreSQL job table. Connects on first use and after a lost connection.
pub struct PgQueue {
    url: PostgresUrl,
    timeout: Duration,
    queries: Queries,
    client: Option<Client>,
}

/// A PostgreSQL error in one line: the server's message and SQLSTATE, or
/// the client's error and its causes.
pub fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            if e.is_closed() && !s.contains("closed") {
                s.push_str(" (connection closed)");
            }
            s
        }
    }
}

fn pg(what: &str) -> impl Fn(postgres::Error) -> QueueError + '_ {
    move |e| QueueError::Postgres { what: what.to_owned(), message: pg_message(&e) }
}

impl PgQueue {
    /// A queue on this table; nothing is connected yet.
    pub fn new(url: PostgresUrl, timeout: Duration) -> Self {
        Self { url, timeout, queries: Queries::default(), client: None }
    }

    /// Replaces the queries steward runs.
    #[must_use]
    pub fn with_queries(mut self, q: Queries) -> Self {
        self.queries = q;
        self
    }

    /// Depth, claims and consumers in one snapshot of the table.
    fn census_in(&self, c: &mut Client, limit: i64) -> Result<Census, postgres::Error> {
        // One snapshot of the table for all three reads.
        let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start()?;
        let rows = query_some(&mut tx, &self.sql(&self.queries.counts), &[])?;
        let Some(row) = rows.first() else {
            return Ok(Census { warnings: vec!["the counts query returned no row".into()], ..Census::default() });
        };
        let mut census = Census {
            depth: to_u64(row.try_get(0)?),
            in_flight: to_u64(row.try_get(1)?),
            completed: to_u64(row.try_get(2)?),
            failed: to_u64(row.try_get(3)?),
            ..Census::default()
        };
        for r in query_some(&mut tx, &self.sql(&self.queries.claims), &[&limit])? {
            census.claims.push(PendingClaim {
                claim: r.try_get(0)?,
                consumer: r.try_get(1)?,
                idle_ms: r.try_get::<_, Option<i64>>(2)?.unwrap_or(0),
                attempts: u32::try_from(r.try_get::<_, i32>(3)?).unwrap_or(0),
            });
        }
        for r in query_some(&mut tx, &self.sql(&self.queries.consumers), &[])? {
            census.consumers.push(Consumer {
                name: r.try_get(0)?,
                idle_ms: r.try_get::<_, Option<i64>>(1)?.unwrap_or(0),
                pending: to_u64(r.try_get(2)?),
            });
        }
        tx.commit()?;
        if census.in_flight > census.claims.len() as u64 {
            census.warnings.push(format!("{} items are claimed; only the {} oldest were examined", census.in_flight, census.claims.len()));
        }
        Ok(census)
    }

    fn sql(&self, q: &str) -> String {
        q.replace("{t}", &self.url.table).replace("{n}", &self.url.table.replace('.', "_"))
    }

    fn with<T>(&mut self, what: &str, f: impl FnOnce(&mut Client, &Self) -> Result<T, postgres::Error>) -> Result<T, QueueError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let client = connect(&self.url, self.timeout, "steward")?;
            self.client = Some(client);
        }
        let mut client = self.client.take().ok_or_else(|| QueueError::Unsupported("no connection".into()))?;
        let r = f(&mut client, self).map_err(pg(what));
        if !client.is_closed() {
            self.client = Some(client);
        }
        r
    }
}

/// Runs a (possibly user-written) query with as many of `params` as it
/// takes: a replacement query need not use every parameter.
fn query_some(
    c: &mut impl postgres::GenericClient,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<postgres::Row>, postgres::Error> {
    let stmt = c.prepare(sql)?;
    let n = stmt.params().len().min(params.len());
    c.query(&stmt, &params[..n])
}

/// SQLSTATE 42P01: the table does not exist.
fn no_table(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl WorkQueue for PgQueue {
    fn target(&self) -> String {
        format!("postgres {}", self.url)
    }

    fn census(&mut self, max_claims: usize) -> Result<Census, QueueError> {
        let limit = i64::try_from(max_claims.max(1)).unwrap_or(i64::MAX);
        let table = self.url.table.clone();
        let missing = std::cell::Cell::new(false);
        let r = self.with("reading the job table", |c, me| {
            let r = me.census_in(c, limit);
            if r.as_ref().is_err_and(no_table) {
                missing.set(true);
            }
            r
        });
        if missing.get() {
            // Nothing was ever queued: the first worker creates the table.
            return Ok(Census {
                warnings: vec![format!("the table {table} does not exist yet: nothing was ever queued")],
                ..Census::default()
            });
        }
        r
    }

    fn requeue_consumer(&mut self, consumer: &str, max_attempts: u32) -> Result<Recovery, QueueError> {
        let limit = i32::try_from(max_attempts.max(1)).unwrap_or(i32::MAX);
        self.with("requeueing a dead worker's claims", |c, me| {
            let q = me.sql(
                "UPDATE {t} SET state = CASE WHEN attempts + 1 >= coalesce(max_attempts, $2) THEN 'dead' ELSE 'queued' END, \
                 attempts = attempts + 1, claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, \
                 finished_at = CASE WHEN attempts + 1 >= coalesce(max_attempts, $2) THEN now() END, \
                 last_error = 'its worker died: requeued by steward' \
                 WHERE state = 'running' AND claimed_by = $1 RETURNING state",
            );
            let mut rec = Recovery::default();
            for r in c.query(&q, &[&consumer, &limit])? {
                match r.try_get::<_, String>(0)?.as_str() {
                    "dead" => rec.dead_lettered += 1,
                    _ => rec.requeued += 1,
                }
            }
            c.execute(&me.sql("DELETE FROM {t}_workers WHERE name = $1"), &[&consumer])?;
            Ok(rec)
        })
    }

    fn requeue(&mut self, claims: &[String], min_idle: Duration, max_attempts: u32) -> Result<Recovery, QueueError> {
        let idle = i64::try_from(min_idle.as_millis()).unwrap_or(i64::MAX);
        let limit = i32::try_from(max_attempts.max(1)).unwrap_or(i32::MAX);
        let ids: Vec<String> = claims.to_vec();
        self.with("requeueing stale claims", |c, me| {
            let mut rec = Recovery::default();
            let rows = query_some(c, &me.sql(&me.queries.requeue), &[&ids, &idle, &limit])?;
            for r in &rows {
                match r.try_get::<_, String>(1)?.as_str() {
                    "dead" => rec.dead_lettered += 1,
                    _ => rec.requeued += 1,
                }
            }
            rec.gone = (ids.len() - rows.len().min(ids.len())) as u64;
            Ok(rec)
        })
    }

    fn requeue_idle(&mut self, min_idle: Duration, max_attempts: u32) -> Result<Recovery, QueueError> {
        let idle = i64::try_from(min_idle.as_millis()).unwrap_or(i64::MAX);
        let ids: Vec<String> = self.with("finding stale claims", |c, me| {
            let q = me.sql(
                "SELECT id::text FROM {t} WHERE state = 'running' AND heartbeat_at <= now() - make_interval(secs => $1::bigint / 1000.0)",
            );
            c.query(&q, &[&idle])?.iter().map(|r| r.try_get(0)).collect()
        })?;
        let mut rec = self.requeue(&ids, min_idle, max_attempts)?;
        rec.gone = 0;
        Ok(rec)
    }

    fn prepare(&mut self) -> Result<(), QueueError> {
        let table = self.url.table.clone();
        // Workers starting together: CREATE … IF NOT EXISTS races in PostgreSQL, so one at a time.
        self.with("creating the job table", |c, me| {
            c.batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock(7253002); {} COMMIT", me.sql(SCHEMA)))
        })
        .map_err(|e| match e {
            // CREATE TABLE IF NOT EXISTS kept a table of another shape, and its index failed.
            QueueError::Postgres { message, .. } if message.contains("42703") => QueueError::Unsupported(format!(
                "the table {table} exists with another shape ({message}): steward's worker needs the schema in docs/sources.md; \
                 a source can still read any table through source.queries"
            )),
            e => e,
        })
    }

    fn claim(&mut self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Item>, QueueError> {
        let limit = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let items = self.with("claiming jobs", |c, me| {
                let q = me.sql(
                    // Claiming is a sign of life, as a read is for a Redis consumer.
                    "WITH seen AS (INSERT INTO {t}_workers (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET seen_at = now()) \
                     UPDATE {t} SET state = 'running', claimed_by = $1, claimed_at = now(), heartbeat_at = now() \
                     WHERE id IN (SELECT id FROM {t} WHERE state = 'queued' ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                     RETURNING id::text, coalesce(item, id::text), payload::text, attempts, max_attempts",
                );
                let rows = c.query(&q, &[&consumer, &limit])?;
                rows.iter()
                    .map(|r| {
                        let (claim, id, payload): (String, String, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                        Ok(Item {
                            body: item_body(&id, Some(&payload)),
                            claim,
                            id,
                            attempts: u32::try_from(r.try_get::<_, i32>(3)?).unwrap_or(0),
                            max_attempts: r.try_get::<_, Option<i32>>(4)?.and_then(|m| u32::try_from(m).ok()),
                            completed: false,
                        })
                    })
                    .collect::<Result<Vec<_>, postgres::Error>>()
            })?;
            if !items.is_empty() || started.elapsed() >= wait {
                return Ok(items);
            }
            // No LISTEN here: a short poll that backs off to 250 ms.
            std::thread::sleep(pause.min(wait.saturating_sub(started.elapsed())));
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    fn complete(&mut self, consumer: &str, items: &[&Item], results: &[Option<Value>]) -> Result<Vec<bool>, QueueError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = items.iter().map(|i| i.claim.clone()).collect();
        let res: Vec<Option<String>> = (0..items.len()).map(|i| results.get(i).and_then(Option::as_ref).map(Value::to_string)).collect();
        self.with("completing jobs", |c, me| {
            let q = me.sql(
                "UPDATE {t} j SET state = 'done', finished_at = now(), result = r.res::jsonb \
                 FROM unnest($1::text[], $2::text[]) AS r(id, res) \
                 WHERE j.id::text = r.id AND j.state = 'running' AND j.claimed_by = $3 RETURNING j.id::text",
            );
            let done: std::collections::HashSet<String> =
                c.query(&q, &[&ids, &res, &consumer])?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
            Ok(ids.iter().map(|id| done.contains(id)).collect())
        })
    }

    fn fail(&mut self, consumer: &str, item: &Item, reason: &str, max_attempts: u32) -> Result<Fate, QueueError> {
        let limit = i32::try_from(max_attempts.max(1)).unwrap_or(i32::MAX);
        self.with("failing a job", |c, me| {
            let q = me.sql(
                "UPDATE {t} SET state = CASE WHEN attempts + 1 >= coalesce(max_attempts, $3) THEN 'dead' ELSE 'queued' END, \
                 attempts = attempts + 1, claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, last_error = $4, \
                 finished_at = CASE WHEN attempts + 1 >= coalesce(max_attempts, $3) THEN now() END \
                 WHERE id::text = $1 AND state = 'running' AND claimed_by = $2 RETURNING state",
            );
            Ok(match c.query_opt(&q, &[&item.claim, &consumer, &limit, &reason])? {
                Some(r) if r.try_get::<_, String>(0)? == "dead" => Fate::DeadLettered,
                Some(_) => Fate::Requeued,
                None => Fate::Gone,
            })
        })
    }

    fn release(&mut self, consumer: &str, item: &Item) -> Result<(), QueueError> {
        self.with("releasing a job", |c, me| {
            let q = me.sql(
                "UPDATE {t} SET state = 'queued', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL \
                 WHERE id::text = $1 AND state = 'running' AND claimed_by = $2",
            );
            c.execute(&q, &[&item.claim, &consumer]).map(|_| ())
        })
    }

    fn heartbeat(&mut self, consumer: &str, claims: &[String]) -> Result<(), QueueError> {
        let ids = claims.to_vec();
        self.with("heartbeat", |c, me| {
            let mut tx = c.transaction()?;
            tx.execute(
                &me.sql("INSERT INTO {t}_workers (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET seen_at = now()"),
                &[&consumer],
            )?;
            if !ids.is_empty() {
                tx.execute(
                    &me.sql("UPDATE {t} SET heartbeat_at = now() WHERE id::text = ANY($1) AND state = 'running' AND claimed_by = $2"),
                    &[&ids, &consumer],
                )?;
            }
            tx.commit()
        })
    }

    fn leave(&mut self, consumer: &str) -> Result<(), QueueError> {
        self.with("removing the worker", |c, me| c.execute(&me.sql("DELETE FROM {t}_workers WHERE name = $1"), &[&consumer]).map(|_| ()))
    }

    fn push(&mut self, items: &[Map<String, Value>]) -> Result<(), QueueError> {
        self.with("inserting jobs", |c, me| {
            let q = me.sql("INSERT INTO {t} (item, payload) SELECT i, p::jsonb FROM unnest($1::text[], $2::text[]) AS x(i, p)");
            for chunk in items.chunks(5000) {
                let ids: Vec<Option<String>> =
                    chunk.iter().map(|m| m.get("id").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect();
                let payloads: Vec<String> = chunk.iter().map(|m| Value::Object(m.clone()).to_string()).collect();
                c.execute(&q, &[&ids, &payloads])?;
            }
            Ok(())
        })
    }
}
