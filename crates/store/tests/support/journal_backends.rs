//! Running one test on both journal databases: [`Backend`], a fresh
//! journal location on each ([`fresh_journal`]), and `on_both!`, which
//! makes a `sqlite` and a `postgres` test of each function named. Included
//! by `#[macro_use] #[path] mod` next to the PostgreSQL harness
//! (`mod servers`), by the store's suite and the runtime's.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use steward_store::JournalAt;

/// The journal's database.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static N: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty journal location: `dir/journal.db`, or a schema of its
/// own on the shared server, named `{prefix}_{pid}_{n}` (returned too, for
/// raw SQL behind the journal's back).
pub fn fresh_journal(b: Backend, dir: &Path, prefix: &str) -> (JournalAt, Option<String>) {
    match b {
        Backend::Sqlite => (JournalAt::File(dir.join("journal.db")), None),
        Backend::Postgres => {
            let port = super::servers::shared_postgres().port;
            let schema = format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
            let at = JournalAt::parse(&format!("postgres://steward@127.0.0.1:{port}/postgres?schema={schema}"))
                .expect("a test journal URL parses");
            (at, Some(schema))
        }
    }
}

/// `on_both!(a, b)`: tests `sqlite::a`, `postgres::a`, … calling `a(Backend)`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Backend::Postgres) })*
        }
    };
}
