//! The engine task: one step at a time (a batch of messages, due timers, directory
//! changes, web requests), each stored before it is acknowledged, answered or
//! published; and its end (a stop, a lost MQTT client, or a failure of the engine).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{error, info, warn};

use super::devices::{Answer, DeviceInput};
use super::driver::{ActOutcome, Culprit, Driver, EngineRequest};
use super::mqtt::{self, Inbound, MqttHandle};
use super::{clock, directory, store, web};

/// Most inbound messages taken into one stored batch.
const MAX_BATCH: usize = 2_000;

/// Stopping with the embedded broker: how long vakt goes on taking alarms, at most, and
/// how long a quiet moment must be for it to stop taking them.
const EMBEDDED_STOP_DRAIN: Duration = Duration::from_secs(2);
const EMBEDDED_STOP_QUIET: Duration = Duration::from_millis(50);

/// Everything the engine task owns but what it waits on (`Inputs`).
pub(super) struct EngineTask {
    pub driver: Driver,
    pub store: store::Store,
    pub mqtt: MqttHandle,
    pub mqtt_task: tokio::task::JoinHandle<()>,
    pub ready_tx: watch::Sender<bool>,
    /// Ends the MQTT client and the HTTP server, once the engine has stopped.
    pub stop_tx: watch::Sender<bool>,
    pub live_tx: broadcast::Sender<web::LiveMessage>,
    /// The broker is vakt's own (see `run` on stopping).
    pub embedded: bool,
}

/// What the engine task waits on.
pub(super) struct Inputs {
    pub channels: mqtt::Channels,
    /// Asks the engine to stop (SIGTERM, `Running::stop`).
    pub stop_req: watch::Receiver<bool>,
    pub engine_rx: mpsc::Receiver<EngineRequest>,
    /// The directory as the engine last read it, for the watcher to compare with.
    pub probe: store::DirectoryProbe,
    /// Alarm devices' messages, from the receivers (`live::devices`).
    pub devices: mpsc::Receiver<DeviceInput>,
}

/// What one step took in, beside what the driver holds.
#[derive(Default)]
struct Step {
    /// The inbound messages taken, acknowledged after the step's commit.
    inbound: Vec<Inbound>,
    /// The web actions applied, answered after it.
    answers: Vec<(oneshot::Sender<ActOutcome>, ActOutcome)>,
    /// The device messages taken, and their answers, sent after it.
    device_inputs: Vec<DeviceInput>,
    device_answers: Vec<(oneshot::Sender<Answer>, Answer)>,
    /// The inbound message (by its place in `inbound`) that made the engine fail.
    culprit: Option<usize>,
    /// Store the broker's marks even if nothing else is to be stored.
    flush_marks: bool,
    /// A stop was asked for (with the embedded broker, which drains first).
    stopping: bool,
}

/// Why the loop ended.
enum End {
    Stopped,
    Lost(String),
}

impl EngineTask {
    pub(super) async fn run(mut self, inputs: Inputs) -> Result<()> {
        let Inputs { mut channels, mut stop_req, mut engine_rx, probe, mut devices } = inputs;
        // Bounded: the watcher waits for the engine to take a change before it probes again.
        let (dir_tx, mut directory) = mpsc::channel(4);
        let watcher = tokio::spawn(directory::watch_directory(self.store.clone(), Duration::from_secs(5), probe, dir_tx));
        let checkpointer = (self.store.backend == store::Backend::Sqlite).then(|| tokio::spawn(checkpoint_wal(self.store.clone())));
        let mut delivered = Vec::new();
        let mut flush_tick = tokio::time::interval(Duration::from_millis(500));
        let mut step = Step { inbound: Vec::with_capacity(MAX_BATCH), ..Step::default() };
        // Stopping with the embedded broker: until when vakt goes on taking alarms.
        let mut draining: Option<tokio::time::Instant> = None;
        let end = loop {
            let sleep_until = self.driver.next_deadline().map(|t| {
                let wait = t.as_millis().saturating_sub(clock::wall_clock().as_millis()).max(0) as u64;
                tokio::time::Instant::now() + Duration::from_millis(wait)
            });
            tokio::select! {
                _ = stop_req.wait_for(|s| *s), if draining.is_none() => {
                    if !self.embedded {
                        break End::Stopped;
                    }
                    step.stopping = true;
                }
                _ = tokio::time::sleep(EMBEDDED_STOP_QUIET), if draining.is_some() => break End::Stopped,
                _ = async { tokio::time::sleep_until(draining.expect("guarded")).await }, if draining.is_some() => break End::Stopped,
                n = channels.inbound.recv_many(&mut step.inbound, MAX_BATCH) => {
                    if n == 0 { break End::Lost("the MQTT client task ended".into()); }
                    step.culprit = self.take_messages(&step.inbound);
                }
                _ = async { tokio::time::sleep_until(sleep_until.expect("guarded")).await }, if sleep_until.is_some() && draining.is_none() => {
                    let now = self.driver.now();
                    self.driver.fire_due(now);
                }
                n = channels.delivered.recv_many(&mut delivered, 50_000) => {
                    if n == 0 { break End::Lost("the MQTT client task ended".into()); }
                }
                _ = flush_tick.tick() => step.flush_marks = true,
                Some(changes) = directory.recv() => {
                    let n = self.driver.apply_directory(changes);
                    if n > 0 {
                        info!(changes = n, "directory updated");
                    }
                }
                Some(req) = engine_rx.recv() => self.take_requests(req, &mut engine_rx, &mut step.answers),
                n = devices.recv_many(&mut step.device_inputs, MAX_BATCH), if draining.is_none() => {
                    if n > 0 {
                        self.take_device_inputs(&mut step);
                    }
                }
            }
            if self.driver.failure().is_some() {
                break End::Lost(self.set_aside_failure(&mut step).await);
            }
            self.driver.delivered(&mut delivered, &mut channels.delivered);
            self.finish_step(&mut step).await;
            if std::mem::take(&mut step.stopping) {
                // The embedded broker has acknowledged to the devices every alarm it
                // passes on, and ends with the process: an alarm it holds for vakt when
                // vakt stops is lost. So vakt stores its checkpoint (after the step's
                // commit, as a stop with an external broker does after the loop), then
                // goes on taking alarms until none has come for a moment (at most
                // EMBEDDED_STOP_DRAIN), and only then stops.
                self.driver.checkpoint_at_stop().await;
                draining = Some(tokio::time::Instant::now() + EMBEDDED_STOP_DRAIN);
            }
        };
        watcher.abort();
        if let Some(task) = checkpointer {
            task.abort();
        }
        self.driver.delivered(&mut delivered, &mut channels.delivered);
        self.shut_down(draining.is_some(), end).await
    }

    /// A batch of inbound messages, in order; the place of the one that made the engine
    /// fail, if one did (the driver takes nothing more then).
    fn take_messages(&mut self, inbound: &[Inbound]) -> Option<usize> {
        for (i, p) in inbound.iter().enumerate() {
            self.driver.on_message(p);
            if let Some(failure) = self.driver.failure() {
                return matches!(failure.culprit, Culprit::Message { .. }).then_some(i);
            }
        }
        None
    }

    /// Device messages, in order; their answers wait for the step's commit.
    fn take_device_inputs(&mut self, step: &mut Step) {
        let Step { device_inputs, device_answers, .. } = step;
        for input in device_inputs.drain(..) {
            if let Some(answer) = self.driver.on_device(input) {
                device_answers.push(answer);
            }
            if self.driver.failure().is_some() {
                // What is left is dropped unanswered (with the drain): the devices send it again.
                break;
            }
        }
    }

    /// Everything queued from the web side, in one step (one commit).
    fn take_requests(
        &mut self,
        first: EngineRequest,
        queued: &mut mpsc::Receiver<EngineRequest>,
        answers: &mut Vec<(oneshot::Sender<ActOutcome>, ActOutcome)>,
    ) {
        let mut next = Some(first);
        while let Some(req) = next {
            match req {
                EngineRequest::Act(act, reply, claim) => {
                    if claim.take() {
                        answers.push((reply, self.driver.act(act)));
                    } else {
                        info!("a web action whose request stopped waiting was not applied");
                    }
                }
                EngineRequest::Read(read) => read(&self.driver),
            }
            if self.driver.failure().is_some() {
                // Nothing more of a failed engine: the requests left are dropped, and
                // their callers told the engine is unavailable.
                return;
            }
            next = queued.try_recv().ok();
        }
    }

    /// Stores the step, answers its web requests, publishes what it made (to the live
    /// pages too), then acknowledges its inbound messages.
    async fn finish_step(&mut self, step: &mut Step) {
        let out = self.driver.commit(&self.ready_tx, std::mem::take(&mut step.flush_marks)).await;
        for (reply, outcome) in step.answers.drain(..) {
            let _ = reply.send(outcome);
        }
        for (reply, answer) in step.device_answers.drain(..) {
            let _ = reply.send(answer);
        }
        if self.live_tx.receiver_count() > 0 {
            for msg in &out {
                let _ = self.live_tx.send(Arc::new((msg.topic.clone(), msg.payload.clone())));
            }
        }
        // The acknowledgements after the messages people act on: the broker keeps an
        // alarm a few microseconds longer, the offer leaves first. All in one write.
        self.mqtt.send(out, std::mem::take(&mut step.inbound));
    }

    /// The engine failed: its state is not to be trusted. Stores nothing of this step
    /// but what put it there (a message's refusal, acknowledging that message alone; or
    /// a timer's incident, set aside), so that the supervisor starts vakt again from the
    /// store and the broker gives it the step's other messages again. Left to crash, vakt
    /// would meet the same message or timer after every restart, and no alarm after it
    /// would get through. Returns why.
    async fn set_aside_failure(&mut self, step: &mut Step) -> String {
        let failure = self.driver.failure().expect("failed");
        let why = failure.to_string();
        let what = match &failure.culprit {
            Culprit::Message { .. } => "a message made the engine panic (a fault in vakt): it is refused",
            Culprit::Timer { .. } => "an incident's timer made the engine panic (a fault in vakt): the incident is set aside for people to handle",
            Culprit::Directory { .. } => "a directory row made the engine panic (a fault in vakt): it is left out until it changes",
            Culprit::WebAction { .. } => "a web action made the engine panic (a fault in vakt): it is not applied (noted in the audit trail)",
        };
        error!(panic = %why, "{what}, and vakt ends to start again from the store");
        let out = self.driver.set_aside_failure(&self.ready_tx).await;
        let acks = step.culprit.take().map(|i| vec![step.inbound.swap_remove(i)]).unwrap_or_default();
        self.mqtt.send(out, acks);
        step.inbound.clear();
        // Nothing of the step is stored: its devices hear nothing, and send again.
        step.device_answers.clear();
        format!("{why}; it was put aside")
    }

    /// In-flight writes are done (the loop commits after every step): stores the last
    /// marks and a checkpoint (unless a drain stored it), lets the publishes and acks
    /// already queued go out, then disconnects.
    async fn shut_down(mut self, drained: bool, end: End) -> Result<()> {
        self.driver.commit(&self.ready_tx, true).await;
        if !drained {
            self.driver.checkpoint_at_stop().await;
        }
        let _ = self.ready_tx.send(false);
        if !self.embedded {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let _ = self.stop_tx.send(true);
        if let Err(e) = tokio::time::timeout(Duration::from_secs(3), self.mqtt_task).await {
            error!(error = %e, "MQTT client did not stop in time");
        }
        self.store.close().await;
        match end {
            End::Lost(why) => Err(anyhow::anyhow!(why)),
            End::Stopped => {
                info!("stopped");
                Ok(())
            }
        }
    }
}

/// SQLite: copies the write-ahead log into the database file every 100 ms, beside the
/// engine rather than inside one of its commits. SQLite's own checkpoint (after 1,000
/// pages of log) runs in the commit that crosses the mark, and every alarm queued behind
/// that commit waits for the database file's fsync too. This one runs on a pooled
/// connection and does not block the writer; the automatic one remains as a safety net.
/// It skips its turn while the engine has written nothing since a pass that copied the
/// whole log (`Store::wal_checkpoint_due`).
async fn checkpoint_wal(store: store::Store) {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clean = None;
    loop {
        every.tick().await;
        if let Err(e) = store.wal_checkpoint_due(&mut clean).await {
            warn!(error = %format!("{e:#}"), "SQLite log checkpoint failed; SQLite's own checkpoint still runs");
        }
    }
}
