//! Copying a whole journal from one database to another: how a PostgreSQL
//! journal is backed up (into a SQLite file inside the archive, which the
//! archive's checks then read like any journal) and restored.

use crate::db::{columns_of, p, Db, P};
use crate::{Journal, Result, SCHEMA, TABLES};

/// Rows read per query while copying.
const PAGE: usize = 5_000;

impl Journal {
    /// Replaces everything in this journal with the content of `src`, read
    /// from one consistent snapshot of it and written in one transaction
    /// (on failure this journal is left as it was). Returns the rows copied.
    ///
    /// # Errors
    /// Either journal cannot be read or written.
    pub fn replace_with(&self, src: &Journal) -> Result<u64> {
        let tables = columns_of(SCHEMA);
        src.db.snapshot("reading the journal to copy", |from| {
            self.db.tx("copying the journal", |to| {
                for t in TABLES.iter().rev() {
                    to.exec("emptying the journal", &format!("DELETE FROM {t}"), &[])?;
                }
                let mut copied = 0u64;
                for t in TABLES {
                    let Some((_, cols)) = tables.iter().find(|(name, _)| name == t) else { continue };
                    // Tables read in insertion order carry their row ids along.
                    let mut cols = cols.clone();
                    if BY_ROWID.contains(&t) {
                        cols.insert(0, "rowid".to_owned());
                    }
                    copied += copy_table(from, to, t, &cols, order_of(t))?;
                }
                if to.is_pg() {
                    // Explicit ids do not move an identity's sequence: set
                    // each past the largest id copied.
                    let keys = [("events", "seq"), ("tasks", "id"), ("incidents", "id")];
                    for (t, col) in keys.into_iter().chain(BY_ROWID.iter().map(|t| (*t, "rowid"))) {
                        to.exec(
                            "moving the identity sequences",
                            &format!(
                                "SELECT setval(pg_get_serial_sequence('{t}', '{col}'), COALESCE((SELECT MAX({col}) FROM {t}), 0) + 1, false)"
                            ),
                            &[],
                        )?;
                    }
                }
                Ok(copied)
            })
        })
    }
}

/// Tables whose readers order rows by insertion (`rowid`): copied with it.
const BY_ROWID: [&str; 3] = ["outcomes", "samples", "incident_timeline"];

/// The key that orders a table's pages (unique, so pages neither repeat
/// nor skip rows).
fn order_of(table: &str) -> &'static str {
    match table {
        "meta" => "key",
        "events" | "audit" => "seq",
        "incident_actions" => "incident_id, decision_id",
        t if BY_ROWID.contains(&t) => "rowid",
        _ => "id",
    }
}

fn copy_table(from: &Db, to: &Db, table: &str, cols: &[String], order: &str) -> Result<u64> {
    let list = cols.join(", ");
    let marks = (1..=cols.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let insert = format!("INSERT INTO {table} ({list}) VALUES ({marks})");
    // Pages follow the key (each starts after the last row of the one
    // before), so a table of millions of rows is read once; a two-column
    // key (a small table) pages by offset.
    let key_at = cols.iter().position(|c| c == order);
    let first = format!("SELECT {list} FROM {table} ORDER BY {order} LIMIT ?1");
    let after = format!("SELECT {list} FROM {table} WHERE {order} > ?2 ORDER BY {order} LIMIT ?1");
    let by_offset = format!("SELECT {list} FROM {table} ORDER BY {order} LIMIT ?1 OFFSET ?2");
    let what = "reading the journal to copy";
    let (mut last, mut offset, mut copied) = (None::<crate::db::Row>, 0usize, 0u64);
    loop {
        let rows = match (key_at, &last) {
            (Some(k), Some(prev)) => {
                let key = prev.params()[k];
                from.all(what, &after, &[P::Int(PAGE as i64), key], |r| Ok(r.clone()))?
            }
            (Some(_), None) => from.all(what, &first, p![PAGE], |r| Ok(r.clone()))?,
            (None, _) => from.all(what, &by_offset, p![PAGE, offset], |r| Ok(r.clone()))?,
        };
        for r in &rows {
            let ps: Vec<P<'_>> = r.params();
            to.exec("copying the journal", &insert, &ps)?;
        }
        copied += rows.len() as u64;
        if rows.len() < PAGE {
            return Ok(copied);
        }
        offset += PAGE;
        last = rows.into_iter().last();
    }
}
