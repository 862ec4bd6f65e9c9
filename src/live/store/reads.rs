//! What the web side reads of the history: an incident's events and audit lines, and
//! the answers for the KPIs.

use anyhow::Result;
use sqlx::Row;

use super::Store;

/// One event of an incident's history: its kind (`raised`, `answered`...) and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub kind: String,
    pub body: String,
}

/// How many events of one kind are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCount {
    pub kind: String,
    pub count: i64,
}

/// An `answered` event, for the KPIs.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub at_ms: i64,
    pub municipality: String,
    pub body: String,
}

/// A closed incident with its `raised`, `answered` and `closed` events.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedIncident {
    pub incident: i64,
    pub events: Vec<HistoryEvent>,
}

impl Store {
    /// An incident's history, in order.
    pub async fn incident_events(&self, incident: i64) -> Result<Vec<HistoryEvent>> {
        let rows = sqlx::query("SELECT kind, body FROM events WHERE incident = $1 ORDER BY seq").bind(incident).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(HistoryEvent { kind: r.try_get(0)?, body: r.try_get(1)? })).collect()
    }

    /// How many events of each kind are stored, sorted by kind.
    pub async fn event_counts(&self) -> Result<Vec<EventCount>> {
        let rows = sqlx::query("SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(EventCount { kind: r.try_get(0)?, count: r.try_get(1)? })).collect()
    }

    /// How many events of this kind are stored.
    pub async fn event_count(&self, kind: &str) -> Result<i64> {
        Ok(self.event_counts().await?.into_iter().find(|c| c.kind == kind).map_or(0, |c| c.count))
    }

    /// The `answered` events since `since_ms`, for the KPIs.
    pub async fn answered_since(&self, since_ms: i64) -> Result<Vec<Answer>> {
        let rows = sqlx::query("SELECT at_ms, municipality, body FROM events WHERE kind = 'answered' AND at_ms >= $1 ORDER BY seq")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(Answer { at_ms: r.try_get(0)?, municipality: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(), body: r.try_get(2)? }))
            .collect()
    }

    /// Incidents closed since `since_ms`, newest first (at most `limit`), each with its
    /// `raised`, `answered` and `closed` events: one query, not one per incident.
    pub async fn closed_since(&self, since_ms: i64, limit: i64) -> Result<Vec<ClosedIncident>> {
        let rows = sqlx::query(
            "SELECT e.incident, e.kind, e.body FROM \
             (SELECT incident, seq AS closed_seq FROM events WHERE kind = 'closed' AND at_ms >= $1 AND incident IS NOT NULL ORDER BY seq DESC LIMIT $2) c \
             JOIN events e ON e.incident = c.incident WHERE e.kind IN ('raised', 'answered', 'closed') ORDER BY c.closed_seq DESC, e.seq",
        )
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<ClosedIncident> = Vec::new();
        for r in &rows {
            let (incident, event) = (r.try_get(0)?, HistoryEvent { kind: r.try_get(1)?, body: r.try_get(2)? });
            match out.last_mut() {
                Some(c) if c.incident == incident => c.events.push(event),
                _ => out.push(ClosedIncident { incident, events: vec![event] }),
            }
        }
        Ok(out)
    }
}
