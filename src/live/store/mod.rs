//! The store: SQLite (the embedded default) or PostgreSQL, through sqlx's `Any` driver,
//! so every query above this line is one code path. Each backend has its own migrations
//! (`migrations/sqlite`, `migrations/postgres`), applied at start.
//!
//! What is stored (see the migrations for the columns):
//! - `input_log`: every input the engine applied, with its time. Replaying it through a
//!   fresh engine rebuilds the state exactly (the core is deterministic), which is how a
//!   restart recovers open incidents, pending timers and staff state.
//! - `events`: the incident history, one row per action.
//! - `outbox`: messages for the broker; pruned with each checkpoint up to how far the
//!   broker has acknowledged them.
//! - `event_feed`: how far the broker has acknowledged, without a gap, the incident
//!   events (published from `events` itself) and the outbox's rows.
//! - `users`, `sessions`, `audit`: the web side's accounts and who did what.
//! - `residents`, `staff`: the directory, filled by `vakt import`.
//!
//! One engine writes a database at a time; it numbers log, event and outbox rows itself.
//! Its batches go through a connection of its own (`append`), one round trip each;
//! everything else uses the pool. That connection is the one place below the store's
//! interface where the backends differ in kind: SQLite's goes through the `Any` driver,
//! PostgreSQL's is sqlx's own PostgreSQL connection, which binds arrays, so that every
//! batch is the same statement.
//!
//! The files: `mod.rs` (opening, errors, the URL as it may be logged), `batch.rs` (the
//! engine's batches, one round trip each), `engine.rs` (what the engine reads back:
//! checkpoints, the log, the marks, the outbox, what it set aside), `directory.rs`,
//! `accounts.rs` (users, sessions, the audit trail), `reads.rs` (the web side's
//! history and KPI reads), `sql.rs` (placeholders and multi-row inserts).

mod accounts;
mod batch;
mod devices;
mod directory;
mod engine;
mod reads;
mod sql;

pub use accounts::{AuditRow, SYSTEM_ROLE, Session, StoredUser};
pub use batch::{Batch, EventRow, LogRow, OutboxRow, Sequences, SetAsideRow, WalCheckpoint};
pub use devices::ContactRow;
pub use directory::{DirectoryProbe, DirectoryRow, StaffName};
pub use engine::{CheckpointRow, StoredEvent};
pub use reads::{Answer, ClosedIncident, EventCount, HistoryEvent};

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// The engine's own connection for its batches, outside the pool: no pool
    /// bookkeeping or liveness pings on the alarm path, and web reads holding pooled
    /// connections never make a batch wait. Dropped after any failed write, so the
    /// next attempt starts on a fresh connection.
    writer: Arc<tokio::sync::Mutex<Option<Writer>>>,
    /// How many writes of the engine's (`append`'s batches, `write_checkpoint`'s
    /// snapshots) have been tried: what the log checkpointer (`wal_checkpoint_due`)
    /// goes by.
    engine_writes: Arc<std::sync::atomic::AtomicU64>,
    url: Arc<str>,
    pub backend: Backend,
}

/// The engine's connection for its batches.
enum Writer {
    /// SQLite: each batch is one multi-statement query (BEGIN … COMMIT).
    Sqlite(AnyConnection),
    /// PostgreSQL: each batch is one statement with its rows bound as arrays.
    Postgres(sqlx::PgConnection),
}

/// How long opening the database, and taking a pooled connection, may wait.
const OPEN_WAIT: Duration = Duration::from_secs(5);

/// Whether a store error means the database cannot be reached or used just now (a
/// refused or cut connection, a pool that timed out, PostgreSQL shutting down or taking
/// no connections, SQLite busy or out of disk), rather than a fault in the request or in
/// vakt. The web side answers the first with 503 and Retry-After, the second with 500.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    if e.chain().any(|c| c.is::<StoreTimedOut>()) {
        return true;
    }
    let Some(e) = e.chain().find_map(|c| c.downcast_ref::<sqlx::Error>()) else {
        return false;
    };
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
            db.code().is_some_and(|code| unavailable_code(sqlite, &code))
        }
        _ => false,
    }
}

/// A store call its caller stopped waiting for: the database did not answer in time.
#[derive(Debug)]
pub struct StoreTimedOut(pub Duration);

impl std::fmt::Display for StoreTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer from the database within {} s", self.0.as_secs())
    }
}

impl std::error::Error for StoreTimedOut {}

/// A store call bounded by `timeout` (`database.write_timeout_secs`): a database that
/// took the connection but never answers fails the call with `StoreTimedOut` instead of
/// holding its caller for ever. The engine's batch writes have their own watchdog.
pub async fn within<T>(timeout: Duration, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(timeout, call).await.unwrap_or_else(|_| Err(anyhow::Error::new(StoreTimedOut(timeout))))
}

/// PostgreSQL: connection exceptions (08…), insufficient resources (53…: too many
/// connections, disk full), operator intervention (57P0…: shutting down, cannot connect
/// now) and a database that takes no connections (55000). SQLite (primary result codes):
/// BUSY 5, LOCKED 6, IOERR 10, FULL 13, CANTOPEN 14.
fn unavailable_code(sqlite: bool, code: &str) -> bool {
    if sqlite {
        return code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14));
    }
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P0") || code == "55000"
}

/// A URL as it may be logged or shown: every credential in it replaced by `***`, the
/// password of its user part (`postgres://vakt:***@db/vakt`) and the value of every
/// query parameter whose name says it is one (`?password=***`, `sslpassword`, `token`,
/// `secret`, `key`...). The rest stays, to tell which database or broker it is.
pub fn redact(url: &str) -> String {
    let (head, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // The user part ends at the last `@` before the query: a password may hold an `@`
    // (or a `/`) that was not percent-encoded.
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (user, rest) = match rest[..query_at].rfind('@') {
        Some(at) if !head.is_empty() => {
            let (user, rest) = rest.split_at(at);
            let user = match user.split_once(':') {
                Some((name, _)) => format!("{name}:***"),
                None => user.to_owned(),
            };
            (user, rest)
        }
        _ => (String::new(), rest),
    };
    let (path, query) = match rest.find('?') {
        Some(q) => rest.split_at(q + 1),
        None => (rest, ""),
    };
    let (query, fragment) = query.split_at(query.find('#').unwrap_or(query.len()));
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_credential(key) => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{user}{path}{}{fragment}", if query == [""] { String::new() } else { query.join("&") })
}

/// The query parameters of a PostgreSQL URL that sqlx reads. sqlx logs any other it
/// meets, with its value, as a warning: a password under a name it does not know
/// (`sslpassword`, a misspelt `pasword`) would be printed in clear. So vakt refuses the
/// URL first, naming the parameter and not its value.
const POSTGRES_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

fn postgres_parameters_known(url: &str) -> Result<()> {
    let Some((_, query)) = url.split_once('?') else { return Ok(()) };
    let query = query.split('#').next().unwrap_or_default();
    for key in query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').map_or(p, |(k, _)| k)) {
        let known = POSTGRES_PARAMETERS.contains(&key) || (key.starts_with("options[") && key.ends_with(']'));
        if !known {
            bail!(
                "database.url has a parameter vakt's PostgreSQL driver does not know: {key:?} (its value is not shown). It takes {}",
                POSTGRES_PARAMETERS.join(", ")
            );
        }
    }
    Ok(())
}

/// Does a URL's query parameter of this name carry a secret?
fn is_credential(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "key", "auth", "credential"].iter().any(|word| key.contains(word))
}

impl Store {
    /// Connects (creating an SQLite file if missing) and applies the migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            postgres_parameters_known(url)?;
            (Backend::Postgres, url.to_owned())
        } else if url.starts_with("sqlite:") {
            let with_mode = if url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, with_mode)
        } else {
            bail!("database.url must start with sqlite: or postgres:// (got {:?})", redact(url));
        };
        // One connection first, on its own: the pool reports a database it cannot reach
        // (a refused connection, a host that does not resolve) as "pool timed out" after
        // 5 s, hiding why, which is what the person setting vakt up needs to read.
        // Bounded as the pool's own wait is: a server that takes the connection but
        // never answers must not hold a command (`vakt import`) for ever.
        let first = match tokio::time::timeout(OPEN_WAIT, AnyConnection::connect(&url)).await {
            Ok(connected) => connected.with_context(|| format!("cannot open the database {}", redact(&url)))?,
            Err(_) => bail!("cannot open the database {}: it did not answer within {} s", redact(&url), OPEN_WAIT.as_secs()),
        };
        let _ = first.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 2 } else { 4 })
            .acquire_timeout(OPEN_WAIT)
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the database {}", redact(&url)))?;
        let store = Store { pool, writer: Arc::default(), engine_writes: Arc::default(), url: url.into(), backend };
        if backend == Backend::Sqlite {
            // Readers (vakt import, backups) do not block the engine's writes.
            sqlx::query("PRAGMA journal_mode=WAL").execute(&store.pool).await.context("enabling SQLite WAL")?;
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&store.pool).await.context("applying database migrations")?;
        Ok(store)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Forgets the engine's write connection without a goodbye (an append that was cut
    /// short left it in an unknown state, and closing it could hang as well).
    pub fn discard_writer(&self) {
        if let Ok(mut writer) = self.writer.try_lock() {
            writer.take();
        }
    }

    /// Closes the engine's write connection; the next batch opens a new one (on the
    /// runtime it runs on).
    pub async fn drop_writer(&self) {
        match self.writer.lock().await.take() {
            Some(Writer::Sqlite(conn)) => drop(conn.close().await),
            Some(Writer::Postgres(conn)) => drop(conn.close().await),
            None => {}
        }
    }

    pub async fn close(&self) {
        self.drop_writer().await;
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::sql::placeholders;
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redact("postgres://vakt:secret@db:5432/vakt"), "postgres://vakt:***@db:5432/vakt");
        assert_eq!(redact("sqlite://vakt.sqlite"), "sqlite://vakt.sqlite");
        assert_eq!(redact("sqlite://vakt.sqlite?mode=rwc"), "sqlite://vakt.sqlite?mode=rwc");
        assert_eq!(redact("postgres://db/vakt?user=vakt&password=secret&sslmode=require"), "postgres://db/vakt?user=vakt&password=***&sslmode=require");
        assert_eq!(redact("postgres://vakt:s3@cr/t@db/vakt?sslpassword=x&PASSWORD=y#f"), "postgres://vakt:***@db/vakt?sslpassword=***&PASSWORD=***#f");
        assert_eq!(redact("postgres://vakt@db/vakt?application_name=a@b"), "postgres://vakt@db/vakt?application_name=a@b");
        assert_eq!(redact("mqtts://vakt:secret@broker:8883?client_id=x"), "mqtts://vakt:***@broker:8883?client_id=x");
        assert_eq!(redact("postgres:///vakt?host=/run/postgresql&password=secret"), "postgres:///vakt?host=/run/postgresql&password=***");
        for url in ["postgres://u:Sekrit@h/d?password=Sekrit", "postgres://u:Sek@rit@h/d", "postgres://h/d?auth_token=Sekrit&api_key=Sekrit"] {
            assert!(!redact(url).contains("Sekrit") && !redact(url).contains("rit@"), "{url} → {}", redact(url));
        }
        assert_eq!(placeholders(Backend::Postgres, 3, 2), "$3, $4");
        assert_eq!(placeholders(Backend::Sqlite, 3, 2), "?, ?");
    }

    /// A PostgreSQL SQLSTATE is five characters and may be all digits ("55000"): it is
    /// not read as an SQLite result code.
    #[test]
    fn an_unreachable_store_is_told_from_a_fault() {
        for (sqlite, code, unavailable) in [
            (false, "55000", true),
            (false, "08006", true),
            (false, "57P01", true),
            (false, "53300", true),
            (false, "23505", false),
            (false, "42P01", false),
            (true, "5", true),
            (true, "517", true),
            (true, "13", true),
            (true, "19", false),
            (true, "2067", false),
        ] {
            assert_eq!(unavailable_code(sqlite, code), unavailable, "{code} (SQLite: {sqlite})");
        }
        assert!(is_unavailable(&anyhow::Error::from(sqlx::Error::PoolTimedOut).context("reading a session")));
        assert!(is_unavailable(&anyhow::Error::new(StoreTimedOut(Duration::from_secs(10))).context("reading a session")));
        assert!(!is_unavailable(&anyhow::Error::from(sqlx::Error::RowNotFound)));
        assert!(!is_unavailable(&anyhow::anyhow!("not a database error")));
    }
}
