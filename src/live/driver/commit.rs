//! Storing a step: one transaction for its log records, events, outbox rows and audit
//! lines, retried until the store takes it, bounded by a watchdog; and how far the
//! broker has acknowledged what was stored (the marks).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tracing::{info, warn};

use super::Driver;
use crate::live::mqtt::{OutMsg, Stored};
use crate::live::store::StoreTimedOut;

/// How far the broker has acknowledged a numbered run of stored messages (the incident
/// events, the outbox's rows), without a gap: every number up to `acked` is done, and
/// those done beyond it wait for the gap to close. At start, what is after the stored
/// mark is published again (at least once).
#[derive(Debug, Default)]
pub(super) struct Feed {
    pub(super) acked: i64,
    pub(super) beyond: BTreeSet<i64>,
    /// `acked` as of the last commit.
    pub(super) stored: i64,
}

impl Feed {
    /// As stored: everything up to `mark` done.
    pub(super) fn at(mark: i64) -> Feed {
        Feed { acked: mark, beyond: BTreeSet::new(), stored: mark }
    }

    /// Message `seq` needs publishing no more (acknowledged, or never published).
    pub(super) fn done(&mut self, seq: i64) {
        if seq <= self.acked {
            return;
        }
        self.beyond.insert(seq);
        while self.beyond.first() == Some(&(self.acked + 1)) {
            self.beyond.pop_first();
            self.acked += 1;
        }
    }

    /// The mark moved since it was stored.
    pub(super) fn moved(&self) -> bool {
        self.acked != self.stored
    }

    /// How many of the messages up to `last` are not done.
    pub(super) fn unacknowledged(&self, last: i64) -> i64 {
        last - self.acked - self.beyond.len() as i64
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
    }
}

/// When the store write under way began (milliseconds after `base`, plus one; 0: none),
/// and the signal that it has run too long, with the start of the write it was meant
/// for. Writes are bounded by the watchdog rather than a timer per write: a timer armed
/// and dropped on every commit is work on the alarm's path (docs/load.md).
pub(super) struct WriteWatch {
    pub(super) base: Instant,
    pub(super) started: AtomicU64,
    pub(super) overdue_mark: AtomicU64,
    pub(super) overdue: tokio::sync::Notify,
}

impl Default for WriteWatch {
    fn default() -> Self {
        WriteWatch { base: Instant::now(), started: Default::default(), overdue_mark: Default::default(), overdue: Default::default() }
    }
}

impl WriteWatch {
    pub(super) fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64 + 1
    }

    /// Runs a store write: its result, or `StoreTimedOut` once the watchdog finds it has
    /// run past `timeout` (the write is then dropped). A wake meant for an earlier write
    /// (one that ended between the watchdog's look and its signal) is not this write's:
    /// it waits on.
    pub(super) async fn bounded<T>(&self, timeout: Duration, write: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let mut overdue = std::pin::pin!(self.overdue.notified());
        let mark = self.now();
        self.started.store(mark, Ordering::Relaxed);
        let mut write = std::pin::pin!(write);
        let result = loop {
            tokio::select! {
                biased;
                result = &mut write => break result,
                () = &mut overdue => {
                    if self.overdue_mark.load(Ordering::Relaxed) == mark {
                        break Err(anyhow::Error::new(StoreTimedOut(timeout)));
                    }
                    overdue.set(self.overdue.notified());
                }
            }
        };
        self.started.store(0, Ordering::Relaxed);
        result
    }
}

/// Four times a second: wakes a store write that has run past `timeout`.
pub(super) async fn watch_writes(watch: Arc<WriteWatch>, timeout: Duration) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let started = watch.started.load(Ordering::Relaxed);
        if started != 0 && watch.now().saturating_sub(started) >= timeout.as_millis() as u64 {
            watch.overdue_mark.store(started, Ordering::Relaxed);
            watch.overdue.notify_waiters();
        }
    }
}

impl Driver {
    /// The broker acknowledged these messages (those in `received`, and any waiting on
    /// `rx`): the outbox's and the incident events' marks move on over every one
    /// acknowledged without a gap (stored with the next commit).
    pub fn delivered(&mut self, received: &mut Vec<Stored>, rx: &mut tokio::sync::mpsc::UnboundedReceiver<Stored>) {
        while let Ok(m) = rx.try_recv() {
            received.push(m);
        }
        for m in received.drain(..) {
            match m {
                Stored::Outbox(id) => self.outbox_feed.done(id),
                Stored::Event(seq) => self.events_feed.done(seq),
            }
        }
    }

    /// Stores the pending batch in one transaction, retrying until the store takes it.
    /// Returns the outbox messages to publish. While the store is down nothing is
    /// acknowledged, so the broker keeps the inbound messages.
    ///
    /// Storing how far the broker has acknowledged is not urgent (at worst a message is
    /// published again after a crash), so marks that moved alone wait for the next batch
    /// with work in it, or for `flush_marks`: one fsync per alarm batch, not one per
    /// PUBACK.
    pub async fn commit(&mut self, ready: &tokio::sync::watch::Sender<bool>, flush_marks: bool) -> Vec<OutMsg> {
        let has_work = !(self.batch.log.is_empty()
            && self.batch.events.is_empty()
            && self.batch.outbox.is_empty()
            && self.batch.audit.is_empty()
            && self.batch.device_contact.is_empty());
        let marks_due = flush_marks && (self.events_feed.moved() || self.outbox_feed.moved());
        if !has_work && !marks_due {
            return Vec::new();
        }
        self.batch.events_acked_through = self.events_feed.moved().then_some(self.events_feed.acked);
        self.batch.outbox_acked_through = self.outbox_feed.moved().then_some(self.outbox_feed.acked);
        let mut backoff = Duration::from_millis(50);
        let mut failed_before = false;
        let watch = self.write_watch();
        loop {
            let started = Instant::now();
            // After a failure, the batch may be stored all the same (see `batch_stored`).
            let (store, batch) = (&self.store, &self.batch);
            let attempt = async move {
                if failed_before && store.batch_stored(batch).await? {
                    info!("the batch of the failed write had been stored all the same");
                    return Ok(());
                }
                store.append(batch).await
            };
            let result = watch.bounded(self.config.write_timeout, attempt).await;
            if result.as_ref().is_err_and(|e| e.is::<StoreTimedOut>()) {
                self.store.discard_writer();
            }
            match result {
                Ok(()) => {
                    self.metrics.store_write_seconds.observe(started.elapsed().as_secs_f64());
                    if self.store_failing {
                        info!("store writes succeed again");
                        self.store_failing = false;
                        let _ = ready.send(true);
                    }
                    break;
                }
                Err(e) => {
                    failed_before = true;
                    self.metrics.store_write_failures.inc();
                    self.store_failing = true;
                    let _ = ready.send(false);
                    warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "store write failed; inbound messages stay unacknowledged");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        let batch = std::mem::take(&mut self.batch);
        self.seq_stored = self.seq;
        if let Some(mark) = batch.events_acked_through {
            self.events_feed.stored = mark;
        }
        if let Some(mark) = batch.outbox_acked_through {
            self.outbox_feed.stored = mark;
        }
        self.maybe_checkpoint().await;
        // Counted here, not in the database: a count query after every commit held each
        // batch's offers back by a round trip to the database.
        self.metrics.outbox_pending.set(self.outbox_feed.unacknowledged(self.seq.outbox));
        self.metrics.events_unacknowledged.set(self.events_feed.unacknowledged(self.seq.events));
        let mut rows = batch.outbox.into_iter();
        let made = std::mem::take(&mut self.out).into_iter().filter_map(|m| m.or_else(|| rows.next().map(OutMsg::from)));
        // Offers, revokes and answers to staff (the outbox) go out before the incident
        // events for dashboards; each kind keeps its own order. MQTT orders messages per
        // topic only, and these are on different topics.
        let (mut first, events): (Vec<OutMsg>, Vec<OutMsg>) = made.partition(|m| matches!(m.stored, Stored::Outbox(_)));
        first.extend(events);
        first
    }

    /// The watch over store writes, its watchdog running (started on the runtime of the
    /// first write, and again should it have ended).
    pub(super) fn write_watch(&mut self) -> Arc<WriteWatch> {
        if self.watchdog.as_ref().is_none_or(|w| w.is_finished()) {
            self.watchdog = Some(tokio::spawn(watch_writes(self.write_watch.clone(), self.config.write_timeout)));
        }
        self.write_watch.clone()
    }
}
