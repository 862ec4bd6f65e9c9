//! The engine's batches: everything one step wrote, in one transaction and one round
//! trip (SQLite: one multi-statement query; PostgreSQL: one statement of data-modifying
//! CTEs with each column bound as an array), and the numbers in use.

use anyhow::{Context, Result};
use sqlx::{AnyConnection, Connection, Row};

use super::accounts::{AUDIT_COLUMNS, AuditRow, audit_values};
use super::devices::{CONTACT_COLUMNS, CONTACT_UPSERT, ContactRow};
use super::sql::{TableRows, Val, execute_bound, insert_sql, rows_per_statement};
use super::{Backend, Store, Writer, redact};

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
    /// What vakt sets aside after a failure (with its audit line): rare, and written
    /// only then.
    pub set_aside: Vec<SetAsideRow>,
    /// Devices heard (or found silent) in this step, one row each (an upsert).
    pub device_contact: std::collections::BTreeMap<String, ContactRow>,
}

/// Something vakt set aside because it made the engine fail (table `set_aside`): a
/// directory row or a web action by its input as logged, or an alarm by its ids.
#[derive(Debug, Clone, PartialEq)]
pub struct SetAsideRow {
    pub at_ms: i64,
    /// `directory_row`, `web_action` or `alarm`.
    pub kind: &'static str,
    pub input: Option<String>,
    pub alarm_id: Option<String>,
    pub resident_id: Option<String>,
    /// The version of vakt that failed on it.
    pub version: String,
    /// What the panic said.
    pub why: String,
}

const SET_ASIDE_COLUMNS: [&str; 7] = ["at_ms", "kind", "input", "alarm_id", "resident_id", "version", "why"];

fn set_aside_values(r: &SetAsideRow) -> Vec<Val<'_>> {
    vec![
        Val::I64(r.at_ms),
        Val::Text(r.kind),
        Val::OptText(r.input.as_deref()),
        Val::OptText(r.alarm_id.as_deref()),
        Val::OptText(r.resident_id.as_deref()),
        Val::Text(&r.version),
        Val::Text(&r.why),
    ]
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
            && self.events.is_empty()
            && self.outbox.is_empty()
            && self.audit.is_empty()
            && self.events_acked_through.is_none()
            && self.outbox_acked_through.is_none()
            && self.set_aside.is_empty()
            && self.device_contact.is_empty()
    }
}

/// What a pass of SQLite's log checkpoint did: the frames in the log, and how many it
/// copied into the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalCheckpoint {
    pub frames: i64,
    pub copied: i64,
}

/// The highest numbers in use, so a restarted engine continues after them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequences {
    pub log: i64,
    pub events: i64,
    pub outbox: i64,
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
    let contacts: Vec<Val> = contact_values(batch).collect();
    for chunk in contacts.chunks(rows_per_statement(&CONTACT_COLUMNS) * CONTACT_COLUMNS.len()) {
        sql.push_str(&insert_sql(Backend::Sqlite, "device_contact", &CONTACT_COLUMNS, chunk.len() / CONTACT_COLUMNS.len()));
        sql.push_str(CONTACT_UPSERT);
        sql.push_str(";\n");
        vals.extend_from_slice(chunk);
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
          WHERE id = 1 AND ($21::int8 IS NOT NULL OR $22::int8 IS NOT NULL)), \
    d AS (INSERT INTO device_contact (device_id, last_heard_ms, silent_since_ms) SELECT * FROM UNNEST($23::text[], $24::int8[], $25::int8[]) \
          ON CONFLICT (device_id) DO UPDATE SET last_heard_ms = excluded.last_heard_ms, silent_since_ms = excluded.silent_since_ms) \
    SELECT 1";

async fn append_postgres_in_one_statement(conn: &mut sqlx::PgConnection, batch: &Batch) -> Result<()> {
    if batch.set_aside.is_empty() {
        return postgres_batch(conn, batch).await;
    }
    // What a failure sets aside (rare): with the batch, in one transaction.
    let mut tx = conn.begin().await?;
    postgres_batch(&mut tx, batch).await?;
    let rows = &batch.set_aside;
    sqlx::query(
        "INSERT INTO set_aside (at_ms, kind, input, alarm_id, resident_id, version, why) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])",
    )
    .bind(rows.iter().map(|r| r.at_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.input.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.alarm_id.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.resident_id.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.version.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.why.as_str()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn postgres_batch(conn: &mut sqlx::PgConnection, batch: &Batch) -> Result<()> {
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
        .bind(batch.device_contact.keys().map(String::as_str).collect::<Vec<_>>())
        .bind(batch.device_contact.values().map(|c| c.last_heard_ms).collect::<Vec<_>>())
        .bind(batch.device_contact.values().map(|c| c.silent_since_ms).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

/// The batch's device contacts, row after row.
fn contact_values(batch: &Batch) -> impl Iterator<Item = Val<'_>> {
    batch.device_contact.iter().flat_map(|(id, c)| [Val::Text(id), Val::I64(c.last_heard_ms), Val::OptI64(c.silent_since_ms)])
}

fn batch_tables(batch: &Batch) -> [TableRows<'_>; 5] {
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
        ("set_aside", &SET_ASIDE_COLUMNS, batch.set_aside.iter().map(set_aside_values).collect()),
    ]
}

impl Store {
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

    /// SQLite: a passive checkpoint (copies what it can of the write-ahead log into the
    /// database file, without blocking the writer).
    pub async fn checkpoint_wal(&self) -> Result<WalCheckpoint> {
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&self.pool).await?;
        Ok(WalCheckpoint { frames: row.try_get(1)?, copied: row.try_get(2)? })
    }

    /// Counted before the write: a write that fails may have left pages in the log.
    pub(super) fn count_engine_write(&self) {
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
        let pass = self.checkpoint_wal().await?;
        // A reader in the way leaves part of the log uncopied: try again next time.
        *clean = (pass.copied == pass.frames).then_some(writes);
        Ok(true)
    }
}
