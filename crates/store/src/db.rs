//! One journal, two databases: the statements the journal runs, on SQLite
//! (the embedded default, one file) or on PostgreSQL (shared by replicas).
//!
//! The journal's SQL is written once, in the dialect both accept (numbered
//! `?N` parameters, `ON CONFLICT` upserts, `RETURNING`); this module turns
//! `?N` into PostgreSQL's `$N`, binds values by the types the server
//! expects, and reads rows back into the few kinds of value the journal
//! stores (integers, reals, text, NULL). The few statements that differ
//! between the two pick their text with [`Db::pick`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use postgres::types::{ToSql, Type};
use steward_queue::url::PostgresUrl;

use crate::{JournalError, Result};

/// A value bound to a statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum P<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
}

/// Something that binds as a [`P`].
pub(crate) trait ToP {
    fn to_p(&self) -> P<'_>;
}

macro_rules! int_to_p {
    ($($t:ty),*) => {$(
        impl ToP for $t {
            fn to_p(&self) -> P<'_> {
                P::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_p!(i64, i32, u32, u16, u8, u64, usize);

impl ToP for f64 {
    fn to_p(&self) -> P<'_> {
        P::Real(*self)
    }
}
impl ToP for bool {
    fn to_p(&self) -> P<'_> {
        P::Int(i64::from(*self))
    }
}
impl ToP for str {
    fn to_p(&self) -> P<'_> {
        P::Text(self)
    }
}
impl ToP for String {
    fn to_p(&self) -> P<'_> {
        P::Text(self)
    }
}
impl<T: ToP + ?Sized> ToP for &T {
    fn to_p(&self) -> P<'_> {
        (**self).to_p()
    }
}
impl<T: ToP> ToP for Option<T> {
    fn to_p(&self) -> P<'_> {
        self.as_ref().map_or(P::Null, ToP::to_p)
    }
}

/// The parameters of one statement: `p![a, b, c]`.
macro_rules! p {
    ($($e:expr),* $(,)?) => { &[$($crate::db::ToP::to_p(&$e)),*][..] };
}
pub(crate) use p;

/// A value read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// A type a [`Cell`] converts into.
pub(crate) trait FromCell: Sized {
    fn from_cell(c: &Cell) -> Option<Self>;
}
impl FromCell for i64 {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Int(v) => Some(*v),
            _ => None,
        }
    }
}
impl FromCell for f64 {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Real(v) => Some(*v),
            Cell::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}
impl FromCell for bool {
    fn from_cell(c: &Cell) -> Option<Self> {
        i64::from_cell(c).map(|v| v != 0)
    }
}
impl FromCell for String {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Null => Some(None),
            c => T::from_cell(c).map(Some),
        }
    }
}

/// A row read back.
#[derive(Debug, Clone)]
pub(crate) struct Row(Vec<Cell>);

impl Row {
    /// Column `i` as a `T`; a value of another type is a corrupt journal.
    pub(crate) fn get<T: FromCell>(&self, i: usize) -> Result<T> {
        let cell = self.0.get(i).unwrap_or(&Cell::Null);
        T::from_cell(cell).ok_or_else(|| JournalError::Corrupt {
            id: format!("column {i}"),
            message: format!("holds {cell:?}, not a {}", std::any::type_name::<T>()),
        })
    }

    /// Column `i` as text, borrowed.
    pub(crate) fn text(&self, i: usize) -> Option<&str> {
        match self.0.get(i) {
            Some(Cell::Text(s)) => Some(s),
            _ => None,
        }
    }
}

/// A PostgreSQL connection with its prepared statements; reconnects after
/// a lost connection (outside a transaction).
pub(crate) struct Pg {
    url: PostgresUrl,
    schema: String,
    /// The advisory lock of this journal's writers (one per schema, so
    /// journals of other targets in the database never wait on it).
    lock_key: i64,
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    in_tx: bool,
}

/// How long a statement or a lock may wait on PostgreSQL before the
/// journal gives up (and the cycle fails rather than hangs).
pub(crate) const PG_TIMEOUT: Duration = Duration::from_secs(10);

impl Pg {
    pub(crate) fn new(url: PostgresUrl, schema: String) -> Self {
        // FNV-1a of the schema's name: a stable key per journal.
        let lock_key = format!("steward-journal:{schema}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)) as i64;
        Self { url, schema, lock_key, client: None, statements: HashMap::new(), in_tx: false }
    }

    fn client(&mut self, what: &'static str) -> Result<&mut postgres::Client> {
        if self.client.as_ref().is_some_and(postgres::Client::is_closed) {
            if self.in_tx {
                return Err(pg_err(what, "the connection was lost mid-transaction".into()));
            }
            self.client = None;
        }
        if self.client.is_none() {
            let mut c =
                steward_queue::postgres::connect(&self.url, PG_TIMEOUT, "steward-journal").map_err(|e| pg_err(what, e.to_string()))?;
            // The journal's tables live in their own schema, so they never
            // meet a table of the same name (`tasks`, `events`) of the
            // database's other users. Created (once, under the lock) by
            // the first writer; a reader never creates it.
            c.batch_execute(&format!("SET search_path TO \"{}\"", self.schema)).map_err(pg_fail(what))?;
            self.statements.clear();
            self.client = Some(c);
        }
        self.client.as_mut().ok_or_else(|| pg_err(what, "no connection".into()))
    }

    fn statement(&mut self, what: &'static str, q: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(q) {
            return Ok(s.clone());
        }
        let s = self.client(what)?.prepare(q).map_err(pg_fail(what))?;
        // Bounded: the journal's statements are a few dozen texts.
        if self.statements.len() > 256 {
            self.statements.clear();
        }
        self.statements.insert(q.to_owned(), s.clone());
        Ok(s)
    }

    /// Prepares `q` (in SQLite's `?N` form) and runs it with `params`
    /// through `run` (a query or an execute).
    fn with_bound<T>(
        &mut self,
        what: &'static str,
        q: &str,
        params: &[P<'_>],
        run: impl FnOnce(&mut postgres::Client, &postgres::Statement, &[&(dyn ToSql + Sync)]) -> Result<T, postgres::Error>,
    ) -> Result<T> {
        let stmt = self.statement(what, &to_dollars(q))?;
        let bound = bind(what, stmt.params(), params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
        run(self.client(what)?, &stmt, &refs).map_err(pg_fail(what))
    }

    fn batch(&mut self, what: &'static str, q: &str) -> Result<()> {
        self.client(what)?.batch_execute(q).map_err(pg_fail(what))
    }

    /// Opens a transaction (`begin`), and for a writer takes the journal's
    /// lock in it. A lock wait that times out ends the transaction again,
    /// so the connection stays usable.
    fn begin(&mut self, what: &'static str, begin: &str, writer: bool) -> Result<()> {
        self.batch(what, begin)?;
        self.in_tx = true;
        if writer {
            if let Err(e) = self.batch(what, &format!("SELECT pg_advisory_xact_lock({})", self.lock_key)) {
                if self.batch(what, "ROLLBACK").is_err() {
                    self.client = None;
                }
                self.in_tx = false;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Creates the journal's schema unless it exists (a role that may not
    /// create schemas can still use one made for it).
    pub(crate) fn ensure_schema(&mut self, what: &'static str) -> Result<()> {
        let schema = self.schema.clone();
        let stmt = "SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)";
        let missing: bool = self.client(what)?.query_one(stmt, &[&schema]).and_then(|r| r.try_get(0)).map_err(pg_fail(what))?;
        if missing {
            self.batch(what, &format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
        }
        Ok(())
    }
}

fn pg_err(what: &'static str, message: String) -> JournalError {
    JournalError::Postgres { what, message }
}

fn pg_fail(what: &'static str) -> impl FnOnce(postgres::Error) -> JournalError {
    move |e| pg_err(what, steward_queue::postgres::pg_message(&e))
}

/// Binds each value as the type the server inferred for its parameter.
fn bind(what: &'static str, types: &[Type], params: &[P<'_>]) -> Result<Vec<Box<dyn ToSql + Sync>>> {
    if types.len() != params.len() {
        return Err(pg_err(what, format!("the statement takes {} parameters, {} given", types.len(), params.len())));
    }
    let mut out: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(params.len());
    for (ty, p) in types.iter().zip(params) {
        let mismatch = || pg_err(what, format!("cannot bind {p:?} as {ty}"));
        let b: Box<dyn ToSql + Sync> = match (*ty).clone() {
            Type::INT8 => Box::new(match p {
                P::Null => None,
                P::Int(v) => Some(*v),
                _ => return Err(mismatch()),
            }),
            Type::INT4 => Box::new(match p {
                P::Null => None,
                P::Int(v) => Some(i32::try_from(*v).map_err(|_| mismatch())?),
                _ => return Err(mismatch()),
            }),
            Type::INT2 => Box::new(match p {
                P::Null => None,
                P::Int(v) => Some(i16::try_from(*v).map_err(|_| mismatch())?),
                _ => return Err(mismatch()),
            }),
            Type::FLOAT8 => Box::new(match p {
                P::Null => None,
                P::Real(v) => Some(*v),
                P::Int(v) => Some(*v as f64),
                _ => return Err(mismatch()),
            }),
            Type::BOOL => Box::new(match p {
                P::Null => None,
                P::Int(v) => Some(*v != 0),
                _ => return Err(mismatch()),
            }),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => Box::new(match p {
                P::Null => None,
                P::Text(s) => Some((*s).to_owned()),
                P::Int(v) => Some(v.to_string()),
                P::Real(v) => Some(v.to_string()),
            }),
            _ => return Err(mismatch()),
        };
        out.push(b);
    }
    Ok(out)
}

fn pg_row(what: &'static str, r: &postgres::Row) -> Result<Row> {
    let mut cells = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let bad = |e: postgres::Error| pg_err(what, steward_queue::postgres::pg_message(&e));
        let cell = match *col.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i).map_err(bad)?.map_or(Cell::Null, Cell::Int),
            Type::INT4 => r.try_get::<_, Option<i32>>(i).map_err(bad)?.map_or(Cell::Null, |v| Cell::Int(v.into())),
            Type::INT2 => r.try_get::<_, Option<i16>>(i).map_err(bad)?.map_or(Cell::Null, |v| Cell::Int(v.into())),
            Type::BOOL => r.try_get::<_, Option<bool>>(i).map_err(bad)?.map_or(Cell::Null, |v| Cell::Int(v.into())),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map_err(bad)?.map_or(Cell::Null, Cell::Real),
            Type::FLOAT4 => r.try_get::<_, Option<f32>>(i).map_err(bad)?.map_or(Cell::Null, |v| Cell::Real(v.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                r.try_get::<_, Option<String>>(i).map_err(bad)?.map_or(Cell::Null, Cell::Text)
            }
            ref other => return Err(pg_err(what, format!("column {} has the type {other}, which the journal does not store", col.name()))),
        };
        cells.push(cell);
    }
    Ok(Row(cells))
}

fn lite_row(r: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Row> {
    use rusqlite::types::ValueRef;
    let mut cells = Vec::with_capacity(n);
    for i in 0..n {
        cells.push(match r.get_ref(i)? {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(v) => Cell::Int(v),
            ValueRef::Real(v) => Cell::Real(v),
            ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(_) => return Err(rusqlite::Error::InvalidColumnType(i, "blob".into(), rusqlite::types::Type::Blob)),
        });
    }
    Ok(Row(cells))
}

fn lite_params<'a>(params: &'a [P<'a>]) -> Vec<rusqlite::types::ToSqlOutput<'a>> {
    use rusqlite::types::{ToSqlOutput, Value, ValueRef};
    params
        .iter()
        .map(|p| match p {
            P::Null => ToSqlOutput::Owned(Value::Null),
            P::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            P::Real(v) => ToSqlOutput::Owned(Value::Real(*v)),
            P::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
        .collect()
}

/// `?N` → `$N`, outside quoted text.
pub(crate) fn to_dollars(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    let mut quoted = false;
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

/// The journal's connection.
pub(crate) enum Db {
    /// The embedded journal.
    Lite(rusqlite::Connection),
    /// A shared journal.
    Pg(Box<RefCell<Pg>>),
}

fn lite(what: &'static str) -> impl FnOnce(rusqlite::Error) -> JournalError {
    move |source| JournalError::Sql { what, source }
}

impl Db {
    /// Whether this is the PostgreSQL journal.
    pub(crate) fn is_pg(&self) -> bool {
        matches!(self, Self::Pg(_))
    }

    /// The statement text for this database.
    pub(crate) fn pick<'a>(&self, lite: &'a str, pg: &'a str) -> &'a str {
        if self.is_pg() {
            pg
        } else {
            lite
        }
    }

    /// Runs a statement; returns the rows it changed (or returned).
    pub(crate) fn exec(&self, what: &'static str, q: &str, params: &[P<'_>]) -> Result<u64> {
        match self {
            Self::Lite(c) => {
                let mut stmt = c.prepare_cached(q).map_err(lite(what))?;
                let bound = lite_params(params);
                let n = stmt.execute(rusqlite::params_from_iter(bound.iter())).map_err(lite(what))?;
                Ok(n as u64)
            }
            Self::Pg(pg) => pg.borrow_mut().with_bound(what, q, params, |c, stmt, refs| c.execute(stmt, refs)),
        }
    }

    /// Every row of a query, each through `f`.
    pub(crate) fn all<T>(&self, what: &'static str, q: &str, params: &[P<'_>], mut f: impl FnMut(&Row) -> Result<T>) -> Result<Vec<T>> {
        match self {
            Self::Lite(c) => {
                let mut stmt = c.prepare_cached(q).map_err(lite(what))?;
                let n = stmt.column_count();
                let bound = lite_params(params);
                let mut rows = stmt.query(rusqlite::params_from_iter(bound.iter())).map_err(lite(what))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(lite(what))? {
                    out.push(f(&lite_row(r, n).map_err(lite(what))?)?);
                }
                Ok(out)
            }
            Self::Pg(pg) => {
                let rows = pg.borrow_mut().with_bound(what, q, params, |c, stmt, refs| c.query(stmt, refs))?;
                rows.iter().map(|r| f(&pg_row(what, r)?)).collect()
            }
        }
    }

    /// The first row of a query, if any (the journal asks this only of
    /// queries that return at most one: a key, `LIMIT 1`, an aggregate).
    pub(crate) fn opt<T>(&self, what: &'static str, q: &str, params: &[P<'_>], f: impl FnMut(&Row) -> Result<T>) -> Result<Option<T>> {
        Ok(self.all(what, q, params, f)?.into_iter().next())
    }

    /// The first row of a query that always returns one (an aggregate).
    pub(crate) fn one<T>(&self, what: &'static str, q: &str, params: &[P<'_>], f: impl FnMut(&Row) -> Result<T>) -> Result<T> {
        self.opt(what, q, params, f)?.ok_or_else(|| JournalError::Corrupt { id: what.into(), message: "the query returned no row".into() })
    }

    /// Statements without parameters, run as one batch.
    pub(crate) fn batch(&self, what: &'static str, q: &str) -> Result<()> {
        match self {
            Self::Lite(c) => c.execute_batch(q).map_err(lite(what)),
            Self::Pg(pg) => pg.borrow_mut().batch(what, q),
        }
    }

    /// Runs `f` in one write transaction: both databases let one writer in
    /// at a time (SQLite's `BEGIN IMMEDIATE`; on PostgreSQL a transaction
    /// advisory lock of this journal, so replicas append to the audit chain
    /// in turn).
    pub(crate) fn tx<T>(&self, what: &'static str, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        self.transaction(what, true, f)
    }

    /// Runs `f` on one consistent snapshot of the database (read only).
    pub(crate) fn snapshot<T>(&self, what: &'static str, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        self.transaction(what, false, f)
    }

    fn transaction<T>(&self, what: &'static str, write: bool, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        match (self, write) {
            (Self::Lite(_), true) => self.batch(what, "BEGIN IMMEDIATE")?,
            (Self::Lite(_), false) => self.batch(what, "BEGIN")?,
            (Self::Pg(pg), true) => pg.borrow_mut().begin(what, "BEGIN", true)?,
            (Self::Pg(pg), false) => pg.borrow_mut().begin(what, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", false)?,
        }
        let out = f(self);
        let end = self.batch(what, if write && out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        if let Self::Pg(pg) = self {
            let mut pg = pg.borrow_mut();
            pg.in_tx = false;
            if end.is_err() {
                // A failed COMMIT or ROLLBACK leaves the connection in doubt.
                pg.client = None;
            }
        }
        match (out, end) {
            (Ok(v), Ok(())) => Ok(v),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    }

    /// The SQLite connection, for what only SQLite has (its file path).
    pub(crate) fn lite_conn(&self) -> Option<&rusqlite::Connection> {
        match self {
            Self::Lite(c) => Some(c),
            Self::Pg(_) => None,
        }
    }

    /// Creates the PostgreSQL journal's schema unless it exists (in the
    /// open write transaction).
    pub(crate) fn ensure_schema(&self, what: &'static str) -> Result<()> {
        match self {
            Self::Lite(_) => Ok(()),
            Self::Pg(pg) => pg.borrow_mut().ensure_schema(what),
        }
    }

    /// Where this journal lives, for telling two apart (the SQLite file's
    /// path, empty in memory; the PostgreSQL URL and schema).
    pub(crate) fn name(&self) -> String {
        match self {
            Self::Lite(c) => c.path().unwrap_or_default().to_owned(),
            Self::Pg(pg) => {
                let pg = pg.borrow();
                format!("{} (schema {})", pg.url.redacted(), pg.schema)
            }
        }
    }
}

/// The SQLite schema in PostgreSQL's types: 64-bit integers, double
/// precision reals, identity keys; tables without an integer key get a
/// `rowid` identity column, so queries ordering by insertion read the same.
pub(crate) fn pg_schema(lite: &str) -> String {
    let mut s = lite
        .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace("REAL", "DOUBLE PRECISION");
    for t in ["outcomes", "samples", "incident_timeline"] {
        s.push_str(&format!("\nALTER TABLE {t} ADD COLUMN IF NOT EXISTS rowid BIGINT GENERATED BY DEFAULT AS IDENTITY;"));
    }
    s
}

/// The columns of each table of a SQLite schema text, in order.
pub(crate) fn columns_of(schema: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in schema.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("CREATE TABLE IF NOT EXISTS ") {
            let name = rest.split_whitespace().next().unwrap_or_default().to_owned();
            current = Some((name, Vec::new()));
        } else if line.starts_with(");") || line == ")" {
            out.extend(current.take());
        } else if let Some((_, cols)) = current.as_mut() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if !first.is_empty() && !["PRIMARY", "UNIQUE", "CHECK", "FOREIGN"].contains(&first) {
                cols.push(first.trim_end_matches(',').to_owned());
            }
        }
    }
    out
}

impl Row {
    /// The row's values, to bind again.
    pub(crate) fn params(&self) -> Vec<P<'_>> {
        self.0
            .iter()
            .map(|c| match c {
                Cell::Null => P::Null,
                Cell::Int(v) => P::Int(*v),
                Cell::Real(v) => P::Real(*v),
                Cell::Text(s) => P::Text(s),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_dollars_outside_quotes() {
        assert_eq!(to_dollars("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"), "SELECT '?1', x FROM t WHERE a = $1 AND b = $12");
        assert_eq!(to_dollars("a ? b"), "a ? b");
    }

    #[test]
    fn every_table_of_the_schema_is_listed_with_its_columns() {
        let cols = columns_of(crate::SCHEMA);
        let names: Vec<&str> = cols.iter().map(|(t, _)| t.as_str()).collect();
        let mut tables = crate::TABLES.to_vec();
        tables.sort_unstable();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, tables);
        let actions = cols.iter().find(|(t, _)| t == "incident_actions").map(|(_, c)| c.clone()).unwrap_or_default();
        assert_eq!(actions, ["incident_id", "decision_id", "ts"]);
        let cycles = cols.iter().find(|(t, _)| t == "cycles").map(|(_, c)| c.len()).unwrap_or_default();
        assert_eq!(cycles, 15);
    }

    #[test]
    fn the_postgres_schema_has_wide_integers_and_identity_keys() {
        let s = pg_schema("CREATE TABLE x (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, v REAL);");
        assert!(s.contains("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, ts BIGINT NOT NULL, v DOUBLE PRECISION"), "{s}");
    }
}
