//! What the web side reads of the history: an incident's events and audit lines, and
//! the answers for the KPIs.

use anyhow::Result;
use sqlx::Row;

use super::Store;

impl Store {
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
}
