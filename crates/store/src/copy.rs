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
                    copied += copy_table(from, to, t, cols)?;
                }
                if to.is_pg() {
                    // Explicit ids do not move an identity's sequence: set
                    // each past the largest id copied.
                    for (t, col) in [("events", "seq"), ("tasks", "id"), ("incidents", "id")] {
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

fn copy_table(from: &Db, to: &Db, table: &str, cols: &[String]) -> Result<u64> {
    let list = cols.join(", ");
    // Ordered by every column: a total order, so pages neither repeat nor
    // skip rows (rows equal in every column are interchangeable).
    let select = format!("SELECT {list} FROM {table} ORDER BY {list} LIMIT ?1 OFFSET ?2");
    let marks = (1..=cols.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let insert = format!("INSERT INTO {table} ({list}) VALUES ({marks})");
    let mut offset = 0usize;
    let mut copied = 0u64;
    loop {
        let rows = from.all("reading the journal to copy", &select, p![PAGE, offset], |r| Ok(r.clone()))?;
        for r in &rows {
            let ps: Vec<P<'_>> = r.params();
            to.exec("copying the journal", &insert, &ps)?;
        }
        copied += rows.len() as u64;
        if rows.len() < PAGE {
            return Ok(copied);
        }
        offset += PAGE;
    }
}
