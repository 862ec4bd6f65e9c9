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

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection, Row};

use crate::core::{CentreId, MunicipalityId, Position, Resident, ResidentId, Roles, Staff, StaffId};
use crate::live::accounts::{Role, User};

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

/// One applied input (or timer tick) for the log.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub seq: i64,
    pub at_ms: i64,
    pub record: String,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub at_ms: i64,
    pub incident: Option<i64>,
    pub municipality: Option<String>,
    pub kind: &'static str,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub topic: String,
    pub payload: String,
    pub created_ms: i64,
}

/// Everything one engine step (a batch of inputs) wrote: stored in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    pub log: Vec<LogRow>,
    pub events: Vec<EventRow>,
    pub outbox: Vec<OutboxRow>,
    /// The broker has every outbox row up to this `outbox.id`.
    pub outbox_acked_through: Option<i64>,
    /// What people did through the web side, stored with the inputs it became.
    pub audit: Vec<AuditRow>,
    /// The broker has every published incident event up to this `events.seq`.
    pub events_acked_through: Option<i64>,
}

/// The role of vakt's own lines in the audit trail (refused alarms, incidents set
/// aside), beside the users' roles.
pub const SYSTEM_ROLE: &str = "system";

/// One line of the audit trail: who did what, when, and whether it was done.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRow {
    pub at_ms: i64,
    pub username: String,
    pub role: &'static str,
    pub action: String,
    pub incident: Option<i64>,
    pub detail: String,
    /// `ok`, or the code of the reason it was refused.
    pub outcome: String,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
            && self.events.is_empty()
            && self.outbox.is_empty()
            && self.audit.is_empty()
            && self.events_acked_through.is_none()
            && self.outbox_acked_through.is_none()
    }
}

/// The highest numbers in use, so a restarted engine continues after them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequences {
    pub log: i64,
    pub events: i64,
    pub outbox: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryProbe {
    pub residents: i64,
    pub staff: i64,
    pub newest_ms: i64,
}

/// A directory entry as stored, with when it last changed.
#[derive(Debug, Clone)]
pub struct DirectoryRow<T> {
    pub entry: T,
    pub updated_ms: i64,
}

#[derive(Clone, Copy)]
enum Val<'a> {
    I64(i64),
    F64(f64),
    OptI64(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

/// PostgreSQL allows 65,535 parameters per statement, SQLite 32,766; stay well below.
const MAX_PARAMS: usize = 20_000;

/// How long opening the database, and taking a pooled connection, may wait.
const OPEN_WAIT: Duration = Duration::from_secs(5);

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

    pub async fn sequences(&self) -> Result<Sequences> {
        let row = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM input_log), (SELECT COALESCE(MAX(seq), 0) FROM events), (SELECT COALESCE(MAX(id), 0) FROM outbox), \
             (SELECT COALESCE(MAX(log_seq), 0) FROM checkpoints), (SELECT outbox_acked_through FROM event_feed WHERE id = 1)",
        )
        .fetch_one(&self.pool)
        .await?;
        let (log, checkpoint): (i64, i64) = (row.try_get(0)?, row.try_get(3)?);
        let (outbox, outbox_acked): (i64, i64) = (row.try_get(2)?, row.try_get(4)?);
        // After a checkpoint cut the whole log, or pruned the whole outbox, numbering
        // continues after the checkpoint, or after the outbox's mark.
        Ok(Sequences { log: log.max(checkpoint), events: row.try_get(1)?, outbox: outbox.max(outbox_acked) })
    }

    /// Stores a batch in one transaction: all of it or nothing.
    pub async fn append(&self, batch: &Batch) -> Result<()> {
        self.count_engine_write();
        let mut writer = self.writer.lock().await;
        let conn = match &mut *writer {
            Some(conn) => conn,
            empty => {
                let connected = match self.backend {
                    Backend::Sqlite => AnyConnection::connect(&self.url).await.map(Writer::Sqlite),
                    Backend::Postgres => sqlx::PgConnection::connect(&self.url).await.map(Writer::Postgres),
                };
                empty.insert(connected.with_context(|| format!("cannot open the database {}", redact(&self.url)))?)
            }
        };
        let result = match conn {
            Writer::Sqlite(conn) => append_sqlite_in_one_query(conn, batch).await,
            Writer::Postgres(conn) => append_postgres_in_one_statement(conn, batch).await,
        };
        if result.is_err() {
            // Never reuse a connection in an unknown state (an open transaction, a
            // broken socket): the retry connects afresh.
            *writer = None;
        }
        result
    }

    /// Whether `batch` is in the store already. After a failed or timed-out append the
    /// transaction may have committed all the same (the connection broke after the
    /// server took the COMMIT); writing it again would then fail on its keys for ever,
    /// or, for a batch of audit lines alone (a refused web action), repeat them. A batch
    /// is one transaction, so its first keyed row tells; an audit line is told by its
    /// time, user, action, incident and outcome. A batch with none of these (only the
    /// marks, the same when written twice) is simply written again.
    pub async fn batch_stored(&self, batch: &Batch) -> Result<bool> {
        let (sql, key) = if let Some(r) = batch.log.first() {
            ("SELECT COUNT(*) FROM input_log WHERE seq = $1", r.seq)
        } else if let Some(r) = batch.events.first() {
            ("SELECT COUNT(*) FROM events WHERE seq = $1", r.seq)
        } else if let Some(r) = batch.outbox.first() {
            ("SELECT COUNT(*) FROM outbox WHERE id = $1", r.id)
        } else if let Some(a) = batch.audit.first() {
            let n: i64 =
                sqlx::query("SELECT COUNT(*) FROM audit WHERE at_ms = $1 AND username = $2 AND action = $3 AND COALESCE(incident, -1) = $4 AND outcome = $5")
                    .bind(a.at_ms)
                    .bind(a.username.as_str())
                    .bind(a.action.as_str())
                    .bind(a.incident.unwrap_or(-1))
                    .bind(a.outcome.as_str())
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
            return Ok(n > 0);
        } else {
            return Ok(false);
        };
        let n: i64 = sqlx::query(sql).bind(key).fetch_one(&self.pool).await?.try_get(0)?;
        Ok(n > 0)
    }

    /// Forgets the engine's write connection without a goodbye (an append that was cut
    /// short left it in an unknown state, and closing it could hang as well).
    pub fn discard_writer(&self) {
        if let Ok(mut writer) = self.writer.try_lock() {
            writer.take();
        }
    }

    /// The newest checkpoint: (log_seq, at_ms, state JSON).
    pub async fn latest_checkpoint(&self) -> Result<Option<(i64, i64, String)>> {
        let row = sqlx::query("SELECT log_seq, at_ms, state FROM checkpoints ORDER BY log_seq DESC LIMIT 1").fetch_optional(&self.pool).await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).transpose()
    }

    /// Stores a checkpoint and cuts the input log (and older checkpoints) up to it, in one
    /// transaction; prunes the outbox up to its stored mark there too, off the alarms'
    /// path (the mark itself is read in the transaction, so only what it covers goes).
    pub async fn write_checkpoint(&self, log_seq: i64, at_ms: i64, state: &str) -> Result<()> {
        self.count_engine_write();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO checkpoints (log_seq, at_ms, state) VALUES ($1, $2, $3)").bind(log_seq).bind(at_ms).bind(state).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM input_log WHERE seq <= $1").bind(log_seq).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM checkpoints WHERE log_seq < $1").bind(log_seq).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM outbox WHERE id <= (SELECT outbox_acked_through FROM event_feed WHERE id = 1)").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn log_len(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM input_log").fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// The input log after `after_seq`, at most `limit` rows, in order.
    pub async fn log_page(&self, after_seq: i64, limit: i64) -> Result<Vec<LogRow>> {
        let rows = sqlx::query("SELECT seq, at_ms, record FROM input_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(LogRow { seq: r.try_get(0)?, at_ms: r.try_get(1)?, record: r.try_get(2)? })).collect()
    }

    /// The outbox rows after its stored mark, oldest first: what the broker may not have.
    pub async fn pending_outbox(&self) -> Result<Vec<OutboxRow>> {
        let rows =
            sqlx::query("SELECT id, topic, payload, created_ms FROM outbox WHERE id > (SELECT outbox_acked_through FROM event_feed WHERE id = 1) ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(OutboxRow { id: r.try_get(0)?, topic: r.try_get(1)?, payload: r.try_get(2)?, created_ms: r.try_get(3)? })).collect()
    }

    /// The broker has every published incident event up to this seq.
    pub async fn events_acked_through(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT acked_through FROM event_feed WHERE id = 1").fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// The broker has every outbox row up to this id.
    pub async fn outbox_acked_through(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT outbox_acked_through FROM event_feed WHERE id = 1").fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// The events after `seq`, oldest first: (seq, kind, municipality, body).
    pub async fn events_after(&self, seq: i64) -> Result<Vec<(i64, String, Option<String>, String)>> {
        let rows = sqlx::query("SELECT seq, kind, municipality, body FROM events WHERE seq > $1 ORDER BY seq").bind(seq).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))).collect()
    }

    /// The ids of every row the outbox holds, acknowledged or not (pruned with each
    /// checkpoint), in order.
    pub async fn outbox_ids(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM outbox ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// How many outbox rows are after its stored mark (see `pending_outbox`).
    pub async fn outbox_pending(&self) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM outbox WHERE id > (SELECT outbox_acked_through FROM event_feed WHERE id = 1)";
        Ok(sqlx::query(sql).fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// An incident's history, in order: (event kind, JSON body).
    pub async fn incident_events(&self, incident: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT kind, body FROM events WHERE incident = $1 ORDER BY seq").bind(incident).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// How many events of each kind are stored: (kind, count), sorted by kind.
    pub async fn event_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    // ---- The directory ------------------------------------------------------------

    pub async fn upsert_residents(&self, residents: &[Resident], now_ms: i64) -> Result<()> {
        let helpers: Vec<String> = residents.iter().map(|r| r.regular_helpers.iter().map(StaffId::as_str).collect::<Vec<_>>().join(";")).collect();
        let rows: Vec<Vec<Val>> = residents
            .iter()
            .zip(&helpers)
            .map(|(r, h)| {
                vec![
                    Val::Text(r.id.as_str()),
                    Val::Text(r.municipality.as_str()),
                    Val::F64(r.home.lat()),
                    Val::F64(r.home.lon()),
                    Val::Text(&r.address),
                    Val::Text(&r.notes),
                    Val::Text(h),
                    Val::I64(now_ms),
                ]
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        // Later rows win over earlier ones with the same id (one statement may not touch a row twice).
        let mut last = rustc_hash::FxHashMap::default();
        for (i, r) in residents.iter().enumerate() {
            last.insert(r.id.as_str(), i);
        }
        let rows: Vec<Vec<Val>> = rows.into_iter().enumerate().filter(|(i, _)| last.get(residents[*i].id.as_str()) == Some(i)).map(|(_, r)| r).collect();
        insert_rows_with(
            self.backend,
            &mut tx,
            "residents",
            &["id", "municipality", "lat", "lon", "address", "notes", "regular_helpers", "updated_ms"],
            &rows,
            " ON CONFLICT (id) DO UPDATE SET municipality = excluded.municipality, lat = excluded.lat, lon = excluded.lon, address = excluded.address, \
             notes = excluded.notes, regular_helpers = excluded.regular_helpers, updated_ms = excluded.updated_ms",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every line of the audit trail about an incident, oldest first.
    pub async fn incident_audit(&self, incident: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query("SELECT at_ms, username, role, action, incident, detail, outcome FROM audit WHERE incident = $1 ORDER BY seq")
            .bind(incident)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(2)?;
                Ok(AuditRow {
                    at_ms: r.try_get(0)?,
                    username: r.try_get(1)?,
                    role: if role == SYSTEM_ROLE { SYSTEM_ROLE } else { crate::live::accounts::Role::parse(&role)?.as_str() },
                    action: r.try_get(3)?,
                    incident: r.try_get(4)?,
                    detail: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// The details of the latest `limit` audit lines of `action`, newest first.
    pub async fn latest_audit(&self, action: &str, limit: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT detail FROM audit WHERE action = $1 ORDER BY seq DESC LIMIT $2").bind(action).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// One audit line written on its own (logins, logouts); engine actions go with their batch.
    pub async fn audit(&self, row: &AuditRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_rows(self.backend, &mut tx, "audit", &AUDIT_COLUMNS, &[audit_values(row)]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The `answered` events since `since_ms`, as (at_ms, municipality, body), for the KPIs.
    pub async fn answered_since(&self, since_ms: i64) -> Result<Vec<(i64, String, String)>> {
        let rows = sqlx::query("SELECT at_ms, municipality, body FROM events WHERE kind = 'answered' AND at_ms >= $1 ORDER BY seq")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get::<Option<String>, _>(1)?.unwrap_or_default(), r.try_get(2)?))).collect()
    }

    /// Incidents closed since `since_ms`, newest first (at most `limit`), each with its
    /// `raised`, `answered` and `closed` events as (kind, body): one query, not one per incident.
    pub async fn closed_since(&self, since_ms: i64, limit: i64) -> Result<Vec<(i64, Vec<(String, String)>)>> {
        let rows = sqlx::query(
            "SELECT e.incident, e.kind, e.body FROM \
             (SELECT incident, seq AS closed_seq FROM events WHERE kind = 'closed' AND at_ms >= $1 AND incident IS NOT NULL ORDER BY seq DESC LIMIT $2) c \
             JOIN events e ON e.incident = c.incident WHERE e.kind IN ('raised', 'answered', 'closed') ORDER BY c.closed_seq DESC, e.seq",
        )
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(i64, Vec<(String, String)>)> = Vec::new();
        for r in &rows {
            let (incident, kind, body): (i64, String, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            match out.last_mut() {
                Some((i, events)) if *i == incident => events.push((kind, body)),
                _ => out.push((incident, vec![(kind, body)])),
            }
        }
        Ok(out)
    }

    /// A staff member's name from the directory.
    pub async fn staff_name(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT name FROM staff WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    /// Staff names by id, for the dashboard.
    pub async fn staff_names(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, name FROM staff ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Adds a user, or with `replace` changes an existing one (new password, role, links).
    pub async fn put_user(&self, user: &User, password_hash: &str, now_ms: i64, replace: bool) -> Result<()> {
        user.validate()?;
        let sql = if replace {
            "INSERT INTO users (username, password_hash, role, staff_id, centre, created_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role, staff_id = excluded.staff_id, centre = excluded.centre"
        } else {
            "INSERT INTO users (username, password_hash, role, staff_id, centre, created_ms) VALUES ($1, $2, $3, $4, $5, $6)"
        };
        let r = sqlx::query(sql)
            .bind(user.username.as_str())
            .bind(password_hash)
            .bind(user.role.as_str())
            .bind(user.staff_id.as_ref().map(|s| s.as_str().to_owned()))
            .bind(user.centre.as_ref().map(|c| c.as_str().to_owned()))
            .bind(now_ms)
            .execute(&self.pool)
            .await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => bail!("user {:?} exists (use --replace to change it)", user.username),
            r => {
                r?;
            }
        }
        if replace {
            // A changed password or role ends every session the user had.
            sqlx::query("DELETE FROM sessions WHERE username = $1").bind(user.username.as_str()).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The user and their password hash.
    pub async fn user(&self, username: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query("SELECT username, role, staff_id, centre, password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get(4)?))).transpose()
    }

    /// Removes a user and ends their sessions. `false` if there was no such user.
    pub async fn remove_user(&self, username: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM users WHERE username = $1").bind(username).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT username, role, staff_id, centre FROM users ORDER BY username").fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn create_session(&self, digest: &str, username: &str, csrf: &str, now_ms: i64, expires_ms: i64) -> Result<()> {
        // Expired sessions go when new ones come.
        sqlx::query("DELETE FROM sessions WHERE expires_ms < $1").bind(now_ms).execute(&self.pool).await?;
        sqlx::query("INSERT INTO sessions (token_digest, username, csrf, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(digest)
            .bind(username)
            .bind(csrf)
            .bind(now_ms)
            .bind(expires_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user of a live session, and its CSRF token.
    pub async fn session(&self, digest: &str, now_ms: i64) -> Result<Option<(User, String)>> {
        let row = sqlx::query(
            "SELECT u.username, u.role, u.staff_id, u.centre, s.csrf FROM sessions s JOIN users u ON u.username = s.username WHERE s.token_digest = $1 AND s.expires_ms > $2",
        )
        .bind(digest)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get(4)?))).transpose()
    }

    /// A user's new password: every other session of theirs ends, `keep` (the session
    /// that changed it) stays. False if the user no longer exists.
    pub async fn set_password(&self, username: &str, password_hash: &str, keep: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n =
            sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2").bind(password_hash).bind(username).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM sessions WHERE username = $1 AND token_digest <> $2").bind(username).bind(keep).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn delete_session(&self, digest: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_digest = $1").bind(digest).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn upsert_staff(&self, staff: &[(Staff, String)], now_ms: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (s, name) in staff {
            let roles = s.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(";");
            sqlx::query(
                "INSERT INTO staff (id, municipality, name, roles, updated_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET municipality = excluded.municipality, name = excluded.name, roles = excluded.roles, updated_ms = excluded.updated_ms",
            )
            .bind(s.id.as_str())
            .bind(s.municipality.as_str())
            .bind(name.as_str())
            .bind(roles)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A cheap fingerprint of the directory: row counts and the newest change.
    pub async fn directory_probe(&self) -> Result<DirectoryProbe> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM residents), (SELECT COALESCE(MAX(updated_ms), 0) FROM residents), \
             (SELECT COUNT(*) FROM staff), (SELECT COALESCE(MAX(updated_ms), 0) FROM staff)",
        )
        .fetch_one(&self.pool)
        .await?;
        let (rc, rm, sc, sm): (i64, i64, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
        Ok(DirectoryProbe { residents: rc, staff: sc, newest_ms: rm.max(sm) })
    }

    /// Residents changed at or after `since_ms`.
    pub async fn residents_since(&self, since_ms: i64) -> Result<Vec<DirectoryRow<Resident>>> {
        let rows =
            sqlx::query("SELECT id, municipality, lat, lon, address, notes, regular_helpers, updated_ms FROM residents WHERE updated_ms >= $1 ORDER BY id")
                .bind(since_ms)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let parse = || -> Result<Resident> {
                let helpers: String = r.try_get(6)?;
                Ok(Resident {
                    id: ResidentId::parse(&id)?,
                    municipality: MunicipalityId::parse(&r.try_get::<String, _>(1)?)?,
                    home: Position::new(r.try_get(2)?, r.try_get(3)?)?,
                    address: r.try_get(4)?,
                    notes: r.try_get(5)?,
                    regular_helpers: helpers.split(';').filter(|h| !h.is_empty()).map(StaffId::parse).collect::<Result<_, _>>()?,
                })
            };
            out.push(DirectoryRow { entry: parse().with_context(|| format!("resident {id} in the database"))?, updated_ms: r.try_get(7)? });
        }
        Ok(out)
    }

    /// Staff changed at or after `since_ms`.
    pub async fn staff_since(&self, since_ms: i64) -> Result<Vec<DirectoryRow<Staff>>> {
        let rows = sqlx::query("SELECT id, municipality, roles, updated_ms FROM staff WHERE updated_ms >= $1 ORDER BY id")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let parse = || -> Result<Staff> {
                let roles: String = r.try_get(2)?;
                let roles = roles.split(';').filter(|s| !s.is_empty()).map(crate::settings::parse_role).collect::<Result<Vec<_>, _>>()?;
                Ok(Staff { id: StaffId::parse(&id)?, municipality: MunicipalityId::parse(&r.try_get::<String, _>(1)?)?, roles: Roles::of(&roles) })
            };
            out.push(DirectoryRow { entry: parse().with_context(|| format!("staff member {id} in the database"))?, updated_ms: r.try_get(3)? });
        }
        Ok(out)
    }

    /// SQLite: a passive checkpoint (copies what it can of the write-ahead log into the
    /// database file, without blocking the writer). Returns (frames in the log, frames
    /// copied).
    pub async fn checkpoint_wal(&self) -> Result<(i64, i64)> {
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&self.pool).await?;
        Ok((row.try_get(1)?, row.try_get(2)?))
    }

    /// Counted before the write: a write that fails may have left pages in the log.
    fn count_engine_write(&self) {
        self.engine_writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// SQLite: a passive checkpoint (`checkpoint_wal`) unless none is needed: the last
    /// one (`*clean`, kept by the caller between calls) copied the whole log and the
    /// engine has written nothing since (no batch, no snapshot). Returns whether it ran. So an idle vakt does not wake
    /// sqlx's connection thread ten times a second for nothing. What the web side writes
    /// (sessions, users, audit lines) is copied with the next batch's pass, or by
    /// SQLite's own checkpoint; until then it is in the log, as durable as anywhere.
    pub async fn wal_checkpoint_due(&self, clean: &mut Option<u64>) -> Result<bool> {
        let writes = self.engine_writes.load(std::sync::atomic::Ordering::Relaxed);
        if *clean == Some(writes) {
            return Ok(false);
        }
        let (frames, copied) = self.checkpoint_wal().await?;
        // A reader in the way leaves part of the log uncopied: try again next time.
        *clean = (copied == frames).then_some(writes);
        Ok(true)
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

/// SQLite: the whole transaction (BEGIN, every insert and delete, COMMIT) as one
/// multi-statement query, so a batch costs one round trip to sqlx's connection
/// thread instead of one per statement.
async fn append_sqlite_in_one_query(conn: &mut AnyConnection, batch: &Batch) -> Result<()> {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    let mut vals: Vec<Val> = Vec::new();
    for (table, columns, rows) in batch_tables(batch) {
        for chunk in rows.chunks(rows_per_statement(columns)) {
            sql.push_str(&insert_sql(Backend::Sqlite, table, columns, chunk.len()));
            sql.push_str(";\n");
            vals.extend(chunk.iter().flatten().copied());
        }
    }
    if batch.events_acked_through.is_some() || batch.outbox_acked_through.is_some() {
        sql.push_str(
            "UPDATE event_feed SET acked_through = COALESCE(?, acked_through), outbox_acked_through = COALESCE(?, outbox_acked_through) WHERE id = 1;\n",
        );
        vals.push(Val::OptI64(batch.events_acked_through));
        vals.push(Val::OptI64(batch.outbox_acked_through));
    }
    sql.push_str("COMMIT;");
    execute_bound(conn, &sql, vals).await
}

/// PostgreSQL: every batch is this one statement (data-modifying CTEs, so one round
/// trip and one commit), with each column's values bound as an array. The text never
/// changes, so the connection prepares and plans it once; a statement built for its
/// batch's row counts was new text at nearly every commit under load (prepared again,
/// planned again, with up to 60,000 parameters). The marks move over rows of earlier
/// batches (a PUBACK follows a commit); no row is deleted here (see `write_checkpoint`).
const POSTGRES_BATCH: &str = "WITH \
    l AS (INSERT INTO input_log (seq, at_ms, record) SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[])), \
    e AS (INSERT INTO events (seq, at_ms, incident, municipality, kind, body) \
          SELECT * FROM UNNEST($4::int8[], $5::int8[], $6::int8[], $7::text[], $8::text[], $9::text[])), \
    o AS (INSERT INTO outbox (id, topic, payload, created_ms) SELECT * FROM UNNEST($10::int8[], $11::text[], $12::text[], $13::int8[])), \
    a AS (INSERT INTO audit (at_ms, username, role, action, incident, detail, outcome) \
          SELECT * FROM UNNEST($14::int8[], $15::text[], $16::text[], $17::text[], $18::int8[], $19::text[], $20::text[])), \
    f AS (UPDATE event_feed SET acked_through = COALESCE($21::int8, acked_through), outbox_acked_through = COALESCE($22::int8, outbox_acked_through) \
          WHERE id = 1 AND ($21::int8 IS NOT NULL OR $22::int8 IS NOT NULL)) \
    SELECT 1";

async fn append_postgres_in_one_statement(conn: &mut sqlx::PgConnection, batch: &Batch) -> Result<()> {
    let (log, ev, out, au) = (&batch.log, &batch.events, &batch.outbox, &batch.audit);
    sqlx::query(POSTGRES_BATCH)
        .bind(log.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(log.iter().map(|r| r.at_ms).collect::<Vec<_>>())
        .bind(log.iter().map(|r| r.record.as_str()).collect::<Vec<_>>())
        .bind(ev.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(ev.iter().map(|r| r.at_ms).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.incident).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.municipality.as_deref()).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.kind).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.body.as_str()).collect::<Vec<_>>())
        .bind(out.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(out.iter().map(|o| o.topic.as_str()).collect::<Vec<_>>())
        .bind(out.iter().map(|o| o.payload.as_str()).collect::<Vec<_>>())
        .bind(out.iter().map(|r| r.created_ms).collect::<Vec<_>>())
        .bind(au.iter().map(|r| r.at_ms).collect::<Vec<_>>())
        .bind(au.iter().map(|a| a.username.as_str()).collect::<Vec<_>>())
        .bind(au.iter().map(|a| a.role).collect::<Vec<_>>())
        .bind(au.iter().map(|a| a.action.as_str()).collect::<Vec<_>>())
        .bind(au.iter().map(|a| a.incident).collect::<Vec<_>>())
        .bind(au.iter().map(|a| a.detail.as_str()).collect::<Vec<_>>())
        .bind(au.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>())
        .bind(batch.events_acked_through)
        .bind(batch.outbox_acked_through)
        .execute(conn)
        .await?;
    Ok(())
}

/// Runs `sql` with `vals` bound in order.
async fn execute_bound(conn: &mut AnyConnection, sql: &str, vals: Vec<Val<'_>>) -> Result<()> {
    let mut q = sqlx::query(sql);
    for v in vals {
        q = bind(q, v);
    }
    q.execute(conn).await?;
    Ok(())
}

/// (table, columns, rows).
type TableRows<'a> = (&'static str, &'static [&'static str], Vec<Vec<Val<'a>>>);

/// A batch's rows for each table it inserts into: (table, columns, rows), the same for
/// both ways of writing a batch.
const AUDIT_COLUMNS: [&str; 7] = ["at_ms", "username", "role", "action", "incident", "detail", "outcome"];

fn audit_values(a: &AuditRow) -> Vec<Val<'_>> {
    vec![
        Val::I64(a.at_ms),
        Val::Text(&a.username),
        Val::Text(a.role),
        Val::Text(&a.action),
        Val::OptI64(a.incident),
        Val::Text(&a.detail),
        Val::Text(&a.outcome),
    ]
}

fn batch_tables(batch: &Batch) -> [TableRows<'_>; 4] {
    [
        ("input_log", &["seq", "at_ms", "record"], batch.log.iter().map(|r| vec![Val::I64(r.seq), Val::I64(r.at_ms), Val::Text(&r.record)]).collect()),
        (
            "events",
            &["seq", "at_ms", "incident", "municipality", "kind", "body"],
            batch
                .events
                .iter()
                .map(|e| {
                    vec![
                        Val::I64(e.seq),
                        Val::I64(e.at_ms),
                        Val::OptI64(e.incident),
                        Val::OptText(e.municipality.as_deref()),
                        Val::Text(e.kind),
                        Val::Text(&e.body),
                    ]
                })
                .collect(),
        ),
        (
            "outbox",
            &["id", "topic", "payload", "created_ms"],
            batch.outbox.iter().map(|o| vec![Val::I64(o.id), Val::Text(&o.topic), Val::Text(&o.payload), Val::I64(o.created_ms)]).collect(),
        ),
        ("audit", &AUDIT_COLUMNS, batch.audit.iter().map(audit_values).collect()),
    ]
}

/// `$1, $2...` for PostgreSQL; anonymous `?` for SQLite, because SQLite looks a named
/// parameter up by a linear scan, which makes binding n `$n` parameters O(n²) (it was
/// 98 % of the engine's time under load with 20,000-parameter inserts).
fn placeholders(backend: Backend, first: usize, n: usize) -> String {
    match backend {
        Backend::Postgres => (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
        Backend::Sqlite => vec!["?"; n].join(", "),
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind<'q>(q: AnyQuery<'q>, v: Val<'q>) -> AnyQuery<'q> {
    match v {
        Val::I64(x) => q.bind(x),
        Val::F64(x) => q.bind(x),
        Val::OptI64(x) => q.bind(x),
        Val::Text(x) => q.bind(x),
        Val::OptText(x) => q.bind(x),
    }
}

/// Multi-row INSERT in chunks (one round trip per chunk, not per row).
fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = r.try_get(1)?;
    let staff: Option<String> = r.try_get(2)?;
    let centre: Option<String> = r.try_get(3)?;
    Ok(User {
        username: r.try_get(0)?,
        role: Role::parse(&role)?,
        staff_id: staff.map(|s| StaffId::parse(&s)).transpose()?,
        centre: centre.map(|c| CentreId::parse(&c)).transpose()?,
    })
}

/// `INSERT INTO table (columns) VALUES (...), (...)` for `rows` rows, its parameters
/// numbered from 1 (PostgreSQL; SQLite's are anonymous).
fn insert_sql(backend: Backend, table: &str, columns: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&placeholders(backend, 1 + i * columns.len(), columns.len()));
        sql.push(')');
    }
    sql
}

/// How many rows one INSERT may carry within `MAX_PARAMS`.
fn rows_per_statement(columns: &[&str]) -> usize {
    (MAX_PARAMS / columns.len()).max(1)
}

async fn insert_rows(backend: Backend, tx: &mut sqlx::Transaction<'_, sqlx::Any>, table: &str, columns: &[&str], rows: &[Vec<Val<'_>>]) -> Result<()> {
    insert_rows_with(backend, tx, table, columns, rows, "").await
}

async fn insert_rows_with(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Val<'_>>],
    suffix: &str,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    for chunk in rows.chunks(rows_per_statement(columns)) {
        let mut sql = insert_sql(backend, table, columns, chunk.len());
        sql.push_str(suffix);
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = bind(q, *v);
            }
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
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
