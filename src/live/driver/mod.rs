//! The driver: owns the core `Engine`, feeds it inputs and timer ticks at wall-clock
//! time, and turns its actions into stored rows and outbound messages.
//!
//! Every step is logged in `input_log` before anything leaves the process:
//! 1. take a batch of inbound messages (and any timers that are due),
//! 2. apply them to the engine, collecting log rows, events and outbox messages,
//! 3. store all of it in one transaction, retrying until the store takes it,
//! 4. only then publish the outbox (before the batch's incident events) and acknowledge
//!    the inbound messages to the broker.
//!
//! A restart replays `input_log` through a fresh engine (the core is deterministic), so
//! open incidents, pending timers and staff state come back exactly; then the timers
//! that fell due while vakt was down fire at once.
//!
//! The files, by what they do for the engine:
//! - `mod.rs`: the `Driver`, applying inputs and timers, turning actions into rows and messages;
//! - `inbound.rs`: MQTT messages and directory rows in, refusals out;
//! - `gateways.rs`: gateways' statuses, and a base unit's `connection_lost` alarm;
//! - `devices.rs`: alarm devices' messages (DC-09, SCAIP), and silent devices;
//! - `act.rs`: the web side's requests (operators' actions, staff replies, reads);
//! - `commit.rs`: storing a step, and how far the broker has what was stored;
//! - `recovery.rs`: checkpoints, and the replay at start;
//! - `set_aside.rs`: what made the engine fail, and what vakt sets aside so that it
//!   does not fail on it again.

mod act;
mod commit;
mod devices;
mod gateways;
mod inbound;
mod recovery;
mod set_aside;
#[cfg(test)]
mod tests;

pub use act::{ActOutcome, Claim, EngineRequest, OperatorAct, REFUSED_ACKNOWLEDGED, WebAct, WebAction};
pub use devices::DeviceView;
pub use inbound::{REFUSED_ACTION, REFUSED_BY, REFUSED_KEPT, RefusedAlarm};
pub use set_aside::{ALARM_SET_ASIDE, Culprit, DIRECTORY_ROW_SET_ASIDE, Failure, INCIDENT_SET_ASIDE, WEB_ACTION_FAILED, WEB_ACTION_SET_ASIDE};

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::accounts::User;
use super::gateways::Gateways;
use super::metrics::Metrics;
use super::mqtt::{OutMsg, Stored};
use super::outbound::{self, IncidentContext, RefusedIds};
use super::store::{Batch, EventRow, LogRow, OutboxRow, Sequences, Store};
use super::wire::WireLimits;
use crate::core::{Action, Actor, Engine, IncidentId, Input, Position, RejectReason, StaffId, StaffReply, Timestamp};
use crate::live::clock::wall_clock;
use crate::live::panic_text;
use commit::{Feed, WriteWatch};
use set_aside::{Faults, SetAside};

/// The log record for "the timers due at this time ran".
const TICK: &str = "\"tick\"";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Rebuilding state from the log: nothing is stored, published or counted.
    Replay,
    Live,
}

/// What the input being applied was, for the messages that answer it.
struct Cause<'a> {
    topic: Option<&'a str>,
    alarm: Option<&'a crate::core::Alarm>,
    reply: Option<(StaffId, IncidentId, StaffReply)>,
}

pub struct Driver {
    engine: Engine,
    store: Store,
    metrics: Arc<Metrics>,
    config: DriverConfig,
    seq: Sequences,
    /// The numbers in use by what is stored (as of the last commit): a step that is
    /// thrown away gives its numbers back, so the stored events and outbox rows stay
    /// without a gap (the broker's acknowledgements move their marks on only over a run
    /// without one).
    seq_stored: Sequences,
    /// By incident id, which only grows: a B-tree takes each new one at its end, where a
    /// hash map would now and then double its table and move every context at once, a
    /// stall for every alarm behind it.
    contexts: BTreeMap<IncidentId, IncidentContext>,
    last_now: Timestamp,
    batch: Batch,
    store_failing: bool,
    /// The log record the last checkpoint covers, and when it was taken (engine time).
    checkpoint_seq: i64,
    checkpoint_at: Option<Timestamp>,
    write_watch: Arc<WriteWatch>,
    watchdog: Option<tokio::task::JoinHandle<()>>,
    /// While a web action is applied: the actions it produced, to answer the request.
    capture: Option<Vec<Action>>,
    /// What to publish after the next commit, in the order it was made: outbox rows
    /// (`None`: the next row of `batch.outbox`) and incident events.
    out: Vec<Option<OutMsg>>,
    /// How far the broker has the incident events (an event not published counts as
    /// done at once), and the outbox's rows.
    events_feed: Feed,
    outbox_feed: Feed,
    /// The latest refused alarms (oldest first, at most [`REFUSED_KEPT`]), for the
    /// dashboards: a refused alarm may still be a person who needs help. Each is in the
    /// audit trail too, from which a start reads them back.
    refused_alarms: VecDeque<RefusedAlarm>,
    /// Each gateway's latest status (see `live::gateways`).
    gateways: Gateways,
    /// A step made the engine panic, and what did: its state is not to be trusted,
    /// stored or checkpointed any more (`failed`, for good), and the culprit is put aside
    /// (see [`Driver::set_aside_failure`]).
    failure: Option<Failure>,
    failed: bool,
    /// What vakt has set aside after a failure: incidents, directory rows, web actions
    /// and alarms it no longer applies by itself (see `set_aside`).
    set_aside: SetAside,
    faults: Faults,
    /// The device register and the devices' supervision.
    devices: devices::DeviceState,
}

/// What a panic said.
/// The engine's refusal among the actions an input produced, if it refused it.
fn refusal(actions: &[Action]) -> Option<&RejectReason> {
    actions.iter().find_map(|a| if let Action::Rejected { reason, .. } = a { Some(reason) } else { None })
}

/// What the audit trail says of a staff member's input: the action's name, the
/// incident, and a detail (a close's outcome and note).
fn staff_audit(input: &Input) -> (&'static str, Option<IncidentId>, String) {
    match input {
        Input::StaffReply { incident, reply, .. } => {
            let detail = match reply {
                StaffReply::Close { outcome, note } => format!("{outcome}{}", note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()),
                _ => String::new(),
            };
            (outbound::reply_name(reply), Some(*incident), detail)
        }
        Input::StaffOnDuty { .. } => ("on_duty", None, String::new()),
        Input::StaffOffDuty { .. } => ("off_duty", None, String::new()),
        Input::StaffPosition { .. } => ("position", None, String::new()),
        _ => ("input", None, String::new()),
    }
}

/// How a driver works, from the configuration (`Settings`): every key is named in
/// docs/config.md.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// What the wire accepts (`[wire]`).
    pub limits: WireLimits,
    /// A checkpoint after this many log records, at a quiet moment
    /// (`database.checkpoint_every`)...
    pub checkpoint_every: u64,
    /// ...or, with incidents open, once this long has passed since the last one
    /// (`database.checkpoint_busy_secs`).
    pub checkpoint_busy: Duration,
    /// How long a home's base unit stays offline before its resident's
    /// `connection_lost` alarm is raised (`gateways.offline_alarm_after_secs`).
    pub base_unit_grace: Duration,
    /// A store write that takes longer has failed (`database.write_timeout_secs`).
    pub write_timeout: Duration,
    /// A supervised device is silent after its interval and this
    /// (`devices.supervision_grace_secs`).
    pub supervision_grace: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            limits: WireLimits::default(),
            checkpoint_every: 10_000,
            checkpoint_busy: Duration::from_secs(600),
            base_unit_grace: Duration::from_secs(300),
            write_timeout: Duration::from_secs(10),
            supervision_grace: Duration::from_secs(60),
        }
    }
}

impl DriverConfig {
    pub fn from_settings(settings: &crate::settings::Settings) -> DriverConfig {
        DriverConfig {
            limits: WireLimits::from(&settings.wire),
            checkpoint_every: settings.database.checkpoint_every.max(1),
            checkpoint_busy: Duration::from_secs(settings.database.checkpoint_busy_secs),
            base_unit_grace: Duration::from_secs(settings.gateways.offline_alarm_after_secs),
            write_timeout: settings.database.write_timeout(),
            supervision_grace: Duration::from_secs(settings.devices.supervision_grace_secs),
        }
    }
}

impl Driver {
    pub fn new(engine: Engine, store: Store, metrics: Arc<Metrics>, config: DriverConfig) -> Driver {
        Driver {
            engine,
            store,
            metrics,
            config,
            seq: Sequences::default(),
            seq_stored: Sequences::default(),
            contexts: BTreeMap::new(),
            last_now: Timestamp::from_millis(0),
            batch: Batch::default(),
            store_failing: false,
            checkpoint_seq: 0,
            checkpoint_at: None,
            write_watch: Arc::default(),
            watchdog: None,
            capture: None,
            out: Vec::new(),
            events_feed: Feed::default(),
            outbox_feed: Feed::default(),
            refused_alarms: VecDeque::new(),
            gateways: Gateways::default(),
            failure: None,
            failed: false,
            set_aside: SetAside::default(),
            faults: Faults::from_env(),
            devices: devices::DeviceState::default(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What the driver remembers about an open incident (alarm, address, position).
    pub fn context(&self, incident: IncidentId) -> Option<&IncidentContext> {
        self.contexts.get(&incident)
    }

    /// May this user act on (and see) incidents of this municipality (`accounts::may_see`)?
    pub fn in_scope(&self, user: &User, municipality: usize) -> bool {
        super::accounts::may_see(self.engine.config(), user, municipality)
    }

    /// Time never runs backwards for the engine, even if the wall clock does.
    pub fn now(&mut self) -> Timestamp {
        self.last_now = self.last_now.max(wall_clock());
        self.last_now
    }

    /// Runs the timers due at `now` (logged as a tick, so a replay runs them at the same
    /// time), one incident at a time: should one make the engine panic, the driver
    /// holds a `Failure` with that incident as its cause (see [`Driver::set_aside_failure`]).
    ///
    /// Then the base units' alarms whose grace has passed (see `live::gateways`).
    pub fn fire_due(&mut self, now: Timestamp) {
        self.run_timers(now);
        for (r, since) in self.gateways.take_due(now) {
            self.raise_connection_lost(now, &r, since);
        }
        self.raise_silences(now);
    }

    fn run_timers(&mut self, now: Timestamp) {
        if self.failed || self.engine.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        self.log_record(now, TICK.to_owned());
        while let Some((_, incident)) = self.engine.next_timer().filter(|&(at, _)| at <= now) {
            let fault = !self.faults.timer.is_empty() && self.contexts.get(&incident).is_some_and(|c| self.faults.timer.iter().any(|f| f == c.alarm.as_str()));
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                assert!(!fault, "fault injected by VAKT_FAULT_PANIC_ON_TIMER");
                self.engine.handle_next_timeout(now)
            }));
            if let Err(panic) = ran {
                self.fail(Failure { why: panic_text(&*panic), culprit: Culprit::Timer { incident } });
                return;
            }
        }
        self.drain(Mode::Live, &Cause { topic: None, alarm: None, reply: None });
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        [self.engine.poll_timeout(), self.gateways.next_due(), self.next_silence()].into_iter().flatten().min()
    }

    fn log_record(&mut self, at: Timestamp, record: String) {
        self.seq.log += 1;
        self.batch.log.push(LogRow { seq: self.seq.log, at_ms: at.as_millis(), record });
    }

    fn push_out(&mut self, topic: String, payload: String, now: Timestamp) {
        self.seq.outbox += 1;
        self.batch.outbox.push(OutboxRow { id: self.seq.outbox, topic, payload, created_ms: now.as_millis() });
        self.out.push(None);
    }

    fn apply(&mut self, mode: Mode, now: Timestamp, input: Input, topic: Option<&str>) {
        match mode {
            Mode::Live => {
                let record = serde_json::to_string(&input).expect("inputs serialize");
                self.apply_recorded(now, input, record, topic);
            }
            Mode::Replay => self.apply_unlogged(mode, now, input, topic),
        }
    }

    /// Applies a live input whose log record (`record`) the caller has made already, to
    /// check it against what was set aside (directory rows, web actions).
    fn apply_recorded(&mut self, now: Timestamp, input: Input, record: String, topic: Option<&str>) {
        self.log_record(now, record);
        self.apply_unlogged(Mode::Live, now, input, topic);
    }

    fn apply_unlogged(&mut self, mode: Mode, now: Timestamp, input: Input, topic: Option<&str>) {
        let alarm = match &input {
            Input::Alarm(a) => Some(a.clone()),
            _ => None,
        };
        let reply = match &input {
            Input::StaffReply { staff, incident, reply } => Some((staff.clone(), *incident, reply.clone())),
            _ => None,
        };
        self.engine.handle_input(now, input);
        self.drain(mode, &Cause { topic, alarm: alarm.as_ref(), reply });
    }

    /// Takes every action the engine produced and turns it into rows and messages.
    fn drain(&mut self, mode: Mode, cause: &Cause<'_>) {
        let mut refused = false;
        while let Some(action) = self.engine.poll_action() {
            if let Action::Raised { incident, alarm, resident, municipality, model, kind, priority, .. } = &action {
                let a = cause.alarm.filter(|a| &a.id == alarm);
                let res = self.engine.resident(resident);
                let home = res.map(|r| r.home).unwrap_or_else(|| Position::new(0.0, 0.0).expect("valid"));
                self.contexts.insert(
                    *incident,
                    IncidentContext {
                        municipality: municipality.clone(),
                        model: *model,
                        alarm: alarm.clone(),
                        resident: resident.clone(),
                        kind: *kind,
                        priority: *priority,
                        raised_at: a.map_or(action.at(), |a| a.raised_at),
                        text: a.and_then(|a| a.text.as_ref()).map(|t| t.as_str().to_owned()),
                        position: a.and_then(|a| a.position).unwrap_or(home),
                        address: res.map(|r| r.address.clone()).unwrap_or_default(),
                        notes: res.map(|r| r.notes.clone()).unwrap_or_default(),
                    },
                );
            }
            if let Action::Attached { incident, priority_raised_to: Some(p), .. } = &action {
                if let Some(ctx) = self.contexts.get_mut(incident) {
                    ctx.priority = *p;
                }
            }
            if let (Mode::Live, Some(c)) = (mode, &mut self.capture) {
                c.push(action.clone());
            }
            if mode == Mode::Live {
                if let Action::Rejected { by: Some(Actor::Staff(_)), .. } = &action {
                    refused = true;
                }
                self.emit(&action, cause);
            }
            match &action {
                Action::Closed { incident, .. } => {
                    self.contexts.remove(incident);
                    self.set_aside.incidents.remove(incident);
                }
                Action::SetAside { incident, .. } => {
                    self.set_aside.incidents.insert(*incident);
                }
                _ => {}
            }
        }
        if mode == Mode::Live {
            if let (Some((staff, incident, reply)), false) = (&cause.reply, refused) {
                let at = self.last_now;
                let msg = outbound::confirmed_message(*incident, reply, at);
                self.push_out(outbound::offers_topic(staff), msg, at);
            }
            self.refresh_gauges();
        }
    }

    fn emit(&mut self, action: &Action, cause: &Cause<'_>) {
        let at = action.at();
        debug!(%action, "engine");
        match action {
            Action::Offered { staff, incident, .. } => {
                if let Some(msg) = self.contexts.get(incident).and_then(|c| outbound::offer_message(action, c)) {
                    self.push_out(outbound::offers_topic(staff), msg, at);
                }
            }
            Action::Revoked { staff, incident, reason, .. } => {
                let msg = outbound::revoke_message(*incident, *reason, at);
                self.push_out(outbound::offers_topic(staff), msg, at);
            }
            Action::Rejected { by, incident, reason, .. } => {
                let topic = cause.topic.unwrap_or("(internal)");
                warn!(topic, reason = reason.code(), detail = %reason, "input refused by the engine");
                match (by, &cause.reply) {
                    (Some(Actor::Staff(s)), Some((_, inc, reply))) => {
                        // The app is told on its own topic; an unknown staff member is
                        // also a matter for operations.
                        if matches!(reason, RejectReason::UnknownStaff) {
                            self.reject(at, topic, reason.code(), &reason.to_string(), &RefusedIds::default());
                        } else {
                            self.metrics.rejected.with_label_values(&[reason.code()]).inc();
                        }
                        let msg = outbound::refused_message(incident.unwrap_or(*inc), reply, reason, at);
                        self.push_out(outbound::offers_topic(s), msg, at);
                    }
                    _ => {
                        let ids = cause
                            .alarm
                            .map(|a| RefusedIds { alarm: Some(a.id.clone()), resident: Some(a.resident.clone()), municipality: None })
                            .unwrap_or_default();
                        self.reject(at, topic, reason.code(), &reason.to_string(), &ids)
                    }
                }
            }
            Action::Alert { .. } | Action::ForwardedToBackup { .. } => info!(%action, "escalation"),
            _ => {}
        }
        let Some(incident) = action.incident() else { return };
        let Some(ctx) = self.contexts.get(&incident) else { return };
        self.metrics.observe(action, ctx.municipality.as_str(), ctx.model, self.engine.config().target_answer);
        self.seq.events += 1;
        let seq = self.seq.events;
        let body = outbound::incident_event(seq, action, ctx);
        let published = body.is_some();
        let text = body.unwrap_or_else(|| outbound::unpublished_event(seq, action, incident));
        // A published event goes out from the events row itself (no outbox copy); the
        // broker's acknowledgement moves `events_feed` on.
        if published {
            let topic = outbound::incidents_topic(&ctx.municipality);
            self.out.push(Some(OutMsg { stored: Stored::Event(seq), topic, payload: text.clone() }));
        }
        self.batch.events.push(EventRow {
            seq,
            at_ms: at.as_millis(),
            incident: Some(incident.0 as i64),
            municipality: Some(ctx.municipality.as_str().to_owned()),
            kind: outbound::event_kind(action),
            body: text,
        });
        if !published {
            self.events_feed.done(seq);
        }
    }

    fn refresh_gauges(&self) {
        self.metrics.open_incidents.set(self.engine.open_incident_count() as i64);
        self.metrics.staff_on_duty.set(self.engine.on_duty_count() as i64);
        self.metrics.incidents_set_aside.set(self.set_aside.incidents.len() as i64);
    }
}
