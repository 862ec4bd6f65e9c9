//! What the engine reads back at start and keeps short: its checkpoints, the input log,
//! the broker's marks, the outbox, and what it has set aside.

use anyhow::Result;
use sqlx::Row;

use super::Store;
use super::batch::{LogRow, OutboxRow, SetAsideRow};

/// A stored checkpoint: the input log record it covers, its time, and its state (JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRow {
    pub log_seq: i64,
    pub at_ms: i64,
    pub state: String,
}

/// An incident event as stored: its number, kind (`raised`, ...), municipality, and
/// its JSON as published.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub kind: String,
    pub municipality: Option<String>,
    pub body: String,
}

impl Store {
    /// The newest checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>> {
        let row = sqlx::query("SELECT log_seq, at_ms, state FROM checkpoints ORDER BY log_seq DESC LIMIT 1").fetch_optional(&self.pool).await?;
        row.map(|r| Ok(CheckpointRow { log_seq: r.try_get(0)?, at_ms: r.try_get(1)?, state: r.try_get(2)? })).transpose()
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

    /// The events after `seq`, oldest first.
    pub async fn events_after(&self, seq: i64) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query("SELECT seq, kind, municipality, body FROM events WHERE seq > $1 ORDER BY seq").bind(seq).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(StoredEvent { seq: r.try_get(0)?, kind: r.try_get(1)?, municipality: r.try_get(2)?, body: r.try_get(3)? })).collect()
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

    /// Everything vakt has set aside after a failure, oldest first (at most 10,000).
    pub async fn set_aside_rows(&self) -> Result<Vec<SetAsideRow>> {
        let rows =
            sqlx::query("SELECT at_ms, kind, input, alarm_id, resident_id, version, why FROM set_aside ORDER BY seq LIMIT 10000").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(1)?;
                let kind = match kind.as_str() {
                    "directory_row" => "directory_row",
                    "web_action" => "web_action",
                    "alarm" => "alarm",
                    other => anyhow::bail!("set_aside has a row of an unknown kind {other:?}"),
                };
                Ok(SetAsideRow {
                    at_ms: r.try_get(0)?,
                    kind,
                    input: r.try_get(2)?,
                    alarm_id: r.try_get(3)?,
                    resident_id: r.try_get(4)?,
                    version: r.try_get(5)?,
                    why: r.try_get(6)?,
                })
            })
            .collect()
    }
}
