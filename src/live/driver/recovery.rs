//! The replay at start (the newest checkpoint, then the input log after it), what the
//! broker has not acknowledged, and the checkpoints that keep the replay short.

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::commit::Feed;
use super::{Cause, Driver, Mode, REFUSED_ACTION, REFUSED_KEPT, TICK};
use crate::core::{Engine, IncidentId, Input, Timestamp};
use crate::live::mqtt::{OutMsg, Stored};
use crate::live::outbound::{self, IncidentContext};
use crate::live::panic_text;
use crate::live::store::{CheckpointRow, StoreTimedOut, StoredEvent, within};

/// A stored checkpoint: the engine's snapshot and what the driver remembers about each
/// open incident. (Not `#[serde(flatten)]`: through it, the numeric map keys inside the
/// snapshot no longer read back.)
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Checkpoint {
    pub(super) engine: crate::core::Snapshot,
    pub(super) contexts: Vec<(IncidentId, IncidentContext)>,
}

impl Checkpoint {
    /// Also reads the checkpoints stored before open incidents were kept: a bare
    /// snapshot, taken at a quiet moment.
    pub(super) fn parse(state: &str) -> serde_json::Result<Checkpoint> {
        serde_json::from_str::<Checkpoint>(state)
            .or_else(|e| serde_json::from_str::<crate::core::Snapshot>(state).map(|engine| Checkpoint { engine, contexts: Vec::new() }).map_err(|_| e))
    }
}

impl Driver {
    /// Rebuilds the engine from the newest checkpoint and the input log after it.
    /// Returns the number of log records replayed.
    pub async fn recover(&mut self) -> Result<u64> {
        // Each read bounded: a database that hangs fails the start (a supervisor restarts
        // vakt) rather than leaving it waiting, not ready, for ever.
        let bound = self.config.write_timeout;
        self.seq = within(bound, self.store.sequences()).await?;
        self.seq_stored = self.seq;
        self.events_feed = Feed::at(within(bound, self.store.events_acked_through()).await?);
        self.outbox_feed = Feed::at(within(bound, self.store.outbox_acked_through()).await?);
        let contacts = within(bound, self.store.device_contacts()).await?;
        let started = self.now();
        self.start_supervision(contacts, started);
        let mut after = 0;
        if let Some(CheckpointRow { log_seq, at_ms, state }) = within(bound, self.store.latest_checkpoint()).await? {
            let checkpoint = Checkpoint::parse(&state).with_context(|| format!("checkpoint at log record {log_seq} is unreadable"))?;
            let open = checkpoint.engine.open_incidents();
            self.engine = Engine::from_snapshot(self.engine.config().clone(), checkpoint.engine)
                .map_err(|e| anyhow::anyhow!("the checkpoint at log record {log_seq} does not fit this configuration: {e}"))?;
            self.contexts = checkpoint.contexts.into_iter().collect();
            self.last_now = self.last_now.max(Timestamp::from_millis(at_ms));
            self.checkpoint_seq = log_seq;
            self.checkpoint_at = Some(Timestamp::from_millis(at_ms));
            after = log_seq;
            info!(log_seq, open_incidents = open, "restored the engine from its checkpoint");
        }
        let mut n = 0u64;
        loop {
            let page = within(bound, self.store.log_page(after, 5_000)).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for row in page {
                let at = Timestamp::from_millis(row.at_ms);
                let input = if row.record == TICK {
                    None
                } else {
                    Some(serde_json::from_str::<Input>(&row.record).with_context(|| format!("input log record {} is unreadable", row.seq))?)
                };
                let fault = matches!(&input, Some(Input::Alarm(a)) if self.faults.replay.iter().any(|f| f == a.id.as_str()));
                // The live engine applied this record without a panic; this one panics
                // only if it is not the version that wrote it. Said plainly, not as a
                // crash that a supervisor would repeat with the same result.
                let replayed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    assert!(!fault, "fault injected by VAKT_FAULT_PANIC_ON_REPLAY");
                    match input {
                        None => {
                            self.engine.handle_timeout(at);
                            self.drain(Mode::Replay, &Cause { topic: None, alarm: None, reply: None });
                        }
                        Some(input) => self.apply(Mode::Replay, at, input, None),
                    }
                }));
                if let Err(panic) = replayed {
                    anyhow::bail!(
                        "replaying input log record {} (at {at}) made the engine panic ({}): this version of vakt cannot replay what the one that wrote it did. \
                         Start the version that wrote the log and stop it with SIGTERM (a clean stop stores a checkpoint and leaves nothing to replay), then start this one",
                        row.seq,
                        panic_text(&*panic)
                    );
                }
                self.last_now = self.last_now.max(at);
                n += 1;
            }
        }
        self.metrics.replayed_records.inc_by(n);
        self.set_aside.incidents = self.engine.open_incidents().filter(|v| v.set_aside).map(|v| v.id).collect();
        self.refresh_gauges();
        // What earlier failures set aside (a new version tries a web action or an alarm
        // again: the fault may be mended).
        let rows = within(bound, self.store.set_aside_rows()).await?;
        self.set_aside.read_back(rows);
        // The latest refused alarms, from the audit trail, oldest first, but those an
        // operator has acknowledged (by their `at` and `topic`).
        let refused = within(bound, self.store.latest_audit(REFUSED_ACTION, REFUSED_KEPT as i64)).await?;
        let acknowledged = within(bound, self.store.latest_audit_ok(super::REFUSED_ACKNOWLEDGED, 4 * REFUSED_KEPT as i64)).await?;
        let acknowledged: Vec<serde_json::Value> = acknowledged.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
        let acknowledged: std::collections::HashSet<(&str, &str)> = acknowledged.iter().map(outbound::refused_key).collect();
        for detail in refused.into_iter().rev() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&detail) else { continue };
            if acknowledged.contains(&outbound::refused_key(&message)) {
                continue;
            }
            if let Some(m) = outbound::listed_municipality(&message).map(str::to_owned) {
                self.remember_refused(&m, message);
            }
        }
        Ok(n)
    }

    /// What the broker has not acknowledged, to publish at start (after `recover`): the
    /// outbox rows and the incident events after their stored marks, in order.
    pub async fn unpublished(&mut self) -> Result<Vec<OutMsg>> {
        let bound = self.config.write_timeout;
        let rows = within(bound, self.store.pending_outbox()).await?;
        // An id after the mark without a row was acknowledged and deleted before the
        // outbox kept a mark (migration 0006): done. (A thrown-away step gives its ids
        // back, and pruning stops at the mark, so no other id goes missing.)
        let mut next = self.outbox_feed.acked + 1;
        for id in rows.iter().map(|r| r.id).chain([self.seq.outbox + 1]) {
            for absent in next..id {
                self.outbox_feed.done(absent);
            }
            next = id + 1;
        }
        let mut out: Vec<OutMsg> = rows.into_iter().map(OutMsg::from).collect();
        self.metrics.outbox_pending.set(self.outbox_feed.unacknowledged(self.seq.outbox));
        for StoredEvent { seq, kind, municipality, body } in within(bound, self.store.events_after(self.events_feed.acked)).await? {
            if self.events_feed.beyond.contains(&seq) {
                continue;
            }
            let topic = municipality.as_deref().and_then(|m| crate::core::MunicipalityId::parse(m).ok()).map(|m| outbound::incidents_topic(&m));
            match topic {
                Some(topic) if outbound::is_published(&kind) => out.push(OutMsg { stored: Stored::Event(seq), topic, payload: body }),
                _ => self.events_feed.done(seq),
            }
        }
        Ok(out)
    }

    /// At a quiet moment, after enough log records: store a snapshot and cut the log.
    /// A failure is logged and tried again after the next batch; nothing depends on it.
    pub(super) async fn maybe_checkpoint(&mut self) {
        if self.failed {
            return; // a snapshot of an engine that panicked would keep what went wrong
        }
        if self.seq.log - self.checkpoint_seq < self.config.checkpoint_every as i64 {
            return;
        }
        // Quiet: the snapshot is the directory and little else. Busy: it carries every
        // open incident, so not more often than `checkpoint_busy`.
        let since = *self.checkpoint_at.get_or_insert(self.last_now);
        if self.engine.open_incident_count() > 0 && self.last_now.since(since) < self.config.checkpoint_busy {
            return;
        }
        self.checkpoint().await;
    }

    /// At a clean stop (after the last commit): a checkpoint of everything stored, so the
    /// next start replays no input. After an upgrade, the new version then reads the old
    /// one's snapshot (whose older forms it reads, tested) rather than apply the old
    /// one's inputs under its own rules.
    pub async fn checkpoint_at_stop(&mut self) {
        if !self.failed && self.seq.log > self.checkpoint_seq {
            self.checkpoint().await;
        }
    }

    pub(super) async fn checkpoint(&mut self) {
        let Some(engine) = self.engine.snapshot() else { return };
        let open = engine.open_incidents();
        let contexts = self.contexts.iter().map(|(id, c)| (*id, c.clone())).collect();
        let state = serde_json::to_string(&Checkpoint { engine, contexts }).expect("checkpoints serialize");
        // Bounded like the batches: a database that hangs must not hold the engine here.
        let watch = self.write_watch();
        match watch.bounded(self.config.write_timeout, self.store.write_checkpoint(self.seq.log, self.last_now.as_millis(), &state)).await {
            Ok(()) => {
                info!(log_seq = self.seq.log, bytes = state.len(), open_incidents = open, "checkpoint stored; input log cut");
                self.checkpoint_seq = self.seq.log;
                self.checkpoint_at = Some(self.last_now);
            }
            Err(e) if e.is::<StoreTimedOut>() => {
                warn!(timeout_secs = self.config.write_timeout.as_secs(), "checkpoint got no answer from the database in time; the input log stays whole")
            }
            Err(e) => warn!(error = %format!("{e:#}"), "checkpoint failed; the input log stays whole"),
        }
    }
}
