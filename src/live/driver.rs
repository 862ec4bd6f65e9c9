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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{debug, error, info, warn};

use super::accounts::{Role, User};
use super::gateways::{self, Gateways};
use super::metrics::Metrics;
use super::mqtt::{Inbound, OutMsg, Stored};
use super::outbound::{self, ALARMS_PREFIX, IncidentContext, RefusedIds};
use super::store::{AuditRow, Batch, EventRow, LogRow, OutboxRow, SYSTEM_ROLE, Sequences, Store, StoreTimedOut, within};
use super::wire::{self, WireLimits, WireReject};
use crate::core::{Action, Actor, Engine, IncidentId, Input, Position, RejectReason, StaffId, StaffReply, Timestamp};

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

/// How far the broker has acknowledged a numbered run of stored messages (the incident
/// events, the outbox's rows), without a gap: every number up to `acked` is done, and
/// those done beyond it wait for the gap to close. At start, what is after the stored
/// mark is published again (at least once).
#[derive(Debug, Default)]
struct Feed {
    acked: i64,
    beyond: BTreeSet<i64>,
    /// `acked` as of the last commit.
    stored: i64,
}

impl Feed {
    /// As stored: everything up to `mark` done.
    fn at(mark: i64) -> Feed {
        Feed { acked: mark, beyond: BTreeSet::new(), stored: mark }
    }

    /// Message `seq` needs publishing no more (acknowledged, or never published).
    fn done(&mut self, seq: i64) {
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
    fn moved(&self) -> bool {
        self.acked != self.stored
    }

    /// How many of the messages up to `last` are not done.
    fn unacknowledged(&self, last: i64) -> i64 {
        last - self.acked - self.beyond.len() as i64
    }
}

pub struct Driver {
    engine: Engine,
    store: Store,
    metrics: Arc<Metrics>,
    limits: WireLimits,
    seq: Sequences,
    /// The numbers in use by what is stored (as of the last commit): a step that is
    /// thrown away gives its numbers back, so the stored events and outbox rows stay
    /// without a gap (the broker's acknowledgements move their marks on only over a run
    /// without one).
    seq_stored: Sequences,
    /// By incident id, which only grows: a B-tree takes each new one at its end. A hash
    /// map here doubled its table now and then, moving every context at once: with
    /// hundreds of thousands open (the load bench), a stall of a tenth of a second.
    contexts: BTreeMap<IncidentId, IncidentContext>,
    last_now: Timestamp,
    batch: Batch,
    store_failing: bool,
    /// The log record the last checkpoint covers, and how often to take one: after
    /// `checkpoint_every` records at a quiet moment, or with incidents open once
    /// `checkpoint_busy` has passed since the last one (engine time).
    checkpoint_seq: i64,
    checkpoint_at: Option<Timestamp>,
    pub checkpoint_every: u64,
    pub checkpoint_busy: Duration,
    /// How long a home's base unit stays offline before its resident's
    /// `connection_lost` alarm is raised (`gateways.offline_alarm_after_secs`).
    pub base_unit_grace: Duration,
    /// A write that takes longer has failed (`database.write_timeout_secs`).
    pub write_timeout: Duration,
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
    /// (see [`Driver::refuse_poisoned`]).
    poison: Option<Poisoned>,
    failed: bool,
    /// Open incidents the engine no longer handles by itself (`vakt_incidents_set_aside`).
    set_aside: BTreeSet<IncidentId>,
    /// Directory rows (their inputs as logged) that made the engine panic, from the audit
    /// trail: not applied again until they change. `directory_aside_met`: whose current
    /// row is one of them (`vakt_directory_rows_set_aside`).
    directory_aside: BTreeSet<String>,
    directory_aside_met: BTreeSet<String>,
    /// Web actions (their inputs as logged) that made this version of the engine panic,
    /// from the audit trail: refused rather than applied again. Without it, a person who
    /// repeats the action (the page said it failed) would stop vakt again each time, and
    /// every alarm would wait for each restart.
    web_aside: BTreeSet<String>,
    /// Alarms (alarm id, resident id) that made this version of the engine panic, from
    /// the audit trail: refused at once if met again. A retained message (a home's base
    /// unit's `offline`, met at every start) or a gateway that sends an alarm again
    /// would otherwise stop vakt again each time, and every other alarm would wait for
    /// each restart.
    alarm_aside: BTreeSet<(String, String)>,
    faults: Faults,
}

/// Fault injection for the tests: what makes the engine panic, each a comma-separated
/// list in an environment variable. Read at start; unset in any real use.
#[derive(Default)]
struct Faults {
    /// Alarms with these ids, when they arrive (`VAKT_FAULT_PANIC_ON_ALARM`)...
    alarm: Vec<String>,
    /// ... when their incident's timer runs (`VAKT_FAULT_PANIC_ON_TIMER`)...
    timer: Vec<String>,
    /// ... and when they are replayed from the input log (`VAKT_FAULT_PANIC_ON_REPLAY`).
    replay: Vec<String>,
    /// Residents or staff with these ids, when their directory row is applied
    /// (`VAKT_FAULT_PANIC_ON_DIRECTORY`).
    directory: Vec<String>,
    /// Web actions of these names (`resolve`, `on_duty`...), when they are applied
    /// (`VAKT_FAULT_PANIC_ON_WEB_ACTION`).
    web: Vec<String>,
}

impl Faults {
    fn from_env() -> Faults {
        Faults {
            alarm: fault_injected("VAKT_FAULT_PANIC_ON_ALARM"),
            timer: fault_injected("VAKT_FAULT_PANIC_ON_TIMER"),
            replay: fault_injected("VAKT_FAULT_PANIC_ON_REPLAY"),
            directory: fault_injected("VAKT_FAULT_PANIC_ON_DIRECTORY"),
            web: fault_injected("VAKT_FAULT_PANIC_ON_WEB_ACTION"),
        }
    }
}

/// The audit trail's action for an incident the engine set aside.
pub const SET_ASIDE_ACTION: &str = "set_aside";
/// The audit trail's outcome of a web action that made the engine fail.
pub const WEB_ACTION_FAILED: &str = "engine_failed";
/// The audit trail's action for a directory row the engine set aside.
pub const DIRECTORY_ASIDE_ACTION: &str = "directory_row_set_aside";
/// The audit trail's action (by vakt) for a web action that made the engine fail: the
/// same action (the same input) is refused, not applied, by this version of vakt.
pub const WEB_ACTION_ASIDE_ACTION: &str = "web_action_set_aside";
/// The refusal of a web action set aside.
pub const WEB_ACTION_ASIDE_CODE: &str = "action_set_aside";
/// The audit trail's action (by vakt) for an alarm that made the engine fail: this
/// version of vakt refuses the same alarm (alarm id and resident) if it meets it again.
pub const ALARM_ASIDE_ACTION: &str = "alarm_set_aside";

/// A step that made the engine panic (a fault in vakt, not in a message's form: the
/// wire's parsers refuse those): what the panic said, and what to put aside so that the
/// restarted engine does not meet it again.
#[derive(Debug)]
pub struct Poisoned {
    pub why: String,
    pub culprit: Culprit,
}

impl std::fmt::Display for Poisoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.culprit {
            Culprit::Message { topic, .. } => write!(f, "a message on {topic} made the engine panic ({})", self.why),
            Culprit::Timer { incident } => write!(f, "the timer of {incident} made the engine panic ({})", self.why),
            Culprit::Directory { who, .. } => write!(f, "the directory row of {who} made the engine panic ({})", self.why),
            Culprit::WebAction { username, action, .. } => write!(f, "{username}'s web action {action} made the engine panic ({})", self.why),
        }
    }
}

#[derive(Debug)]
pub enum Culprit {
    /// An inbound message, or what one brought about (a base unit's `connection_lost`
    /// alarm, on its status topic): refused, with the ids of the alarm it held. An alarm
    /// (both ids known) is also set aside: this version of vakt refuses it at once if it
    /// meets it again.
    Message { topic: String, ids: RefusedIds },
    /// An incident's timer: the incident is set aside (`Input::SetAside`), for people to
    /// handle by hand.
    Timer { incident: IncidentId },
    /// A resident's or staff member's row of the directory (an import, the seed): set
    /// aside until the row changes. `record`: its input as logged.
    Directory { who: String, record: String },
    /// A user's action from the web side: not applied, noted in the audit trail under
    /// the user (outcome `engine_failed`), and set aside: this version of vakt refuses
    /// the same action (the same input: `record`, as it would be logged) from then on.
    WebAction { username: String, role: &'static str, action: String, incident: Option<IncidentId>, record: String },
}

/// How many refused alarms the dashboards can look back on.
pub const REFUSED_KEPT: usize = 200;
/// A refused alarm's line in the audit trail: by the system, not a user.
pub const REFUSED_BY: &str = "(vakt)";
pub const REFUSED_ACTION: &str = "refused_alarm";

/// An alarm vakt refused: the municipality of the topic it came on, and the message
/// published on `vakt/v1/rejects` for it.
#[derive(Debug, Clone)]
pub struct RefusedAlarm {
    pub municipality: String,
    pub message: serde_json::Value,
}

/// A request from the web side to the engine task. Acts go through the same core
/// inputs as MQTT and are stored (with their audit line) before they are answered;
/// reads run between batches, on committed state.
pub enum EngineRequest {
    Act(WebAct, tokio::sync::oneshot::Sender<ActOutcome>, std::sync::Arc<Claim>),
    Read(Box<dyn FnOnce(&Driver) + Send>),
}

/// Who has a web action: the engine takes it, unless its request gave up waiting first
/// (then it never happens); a request that gives up learns which it was.
#[derive(Default)]
pub struct Claim(std::sync::Mutex<ClaimState>);

#[derive(Default, PartialEq)]
enum ClaimState {
    #[default]
    Queued,
    Taken,
    Abandoned,
}

impl Claim {
    /// The engine: true if the action is its to apply (the request still waits).
    pub fn take(&self) -> bool {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if *s == ClaimState::Abandoned {
            return false;
        }
        *s = ClaimState::Taken;
        true
    }

    /// The request, giving up: true if the engine had not taken the action (and now
    /// never will); false if it had, and the action takes effect once it is stored.
    pub fn abandon(&self) -> bool {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if *s == ClaimState::Taken {
            return false;
        }
        *s = ClaimState::Abandoned;
        true
    }
}

pub struct WebAct {
    pub who: User,
    pub what: WebAction,
}

pub enum WebAction {
    /// An operator's (or admin's) action on an incident.
    Operator { incident: IncidentId, act: OperatorAct },
    /// A staff member's input, built by the MQTT contract's parsers for the user's own id.
    Staff(Input),
}

/// A field it does not know is refused, not ignored: `{"action": "resolve", "notes": …}`
/// would otherwise resolve the incident and lose the note.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum OperatorAct {
    // Struct variants with no field, not unit variants: serde lets a unit variant of a
    // tagged enum take any other field.
    Answer {},
    Resolve { note: Option<String> },
    ForwardToHomeCare {},
    Assign { staff_id: StaffId },
    Escalate {},
    Note { note: String },
}

impl OperatorAct {
    pub fn name(&self) -> &'static str {
        match self {
            OperatorAct::Answer {} => "answer",
            OperatorAct::Resolve { .. } => "resolve",
            OperatorAct::ForwardToHomeCare {} => "forward_to_home_care",
            OperatorAct::Assign { .. } => "assign",
            OperatorAct::Escalate {} => "escalate",
            OperatorAct::Note { .. } => "note",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ActOutcome {
    /// Applied and stored: the incident events it produced.
    Done { events: Vec<serde_json::Value> },
    /// Not applied; nothing changed. `code` is stable (docs/api.md).
    Refused { code: &'static str, detail: String },
}

/// Residents and staff read from the store, to be compared with the engine's view.
#[derive(Debug, Default)]
pub struct DirectoryChanges {
    pub residents: Vec<crate::core::Resident>,
    pub staff: Vec<crate::core::Staff>,
}

/// The residents and staff changed at or after `since_ms` (`i64::MIN`: all of them).
pub async fn read_directory(store: &Store, since_ms: i64) -> Result<DirectoryChanges> {
    Ok(DirectoryChanges {
        residents: store.residents_since(since_ms).await?.into_iter().map(|r| r.entry).collect(),
        staff: store.staff_since(since_ms).await?.into_iter().map(|r| r.entry).collect(),
    })
}

/// Watches the directory tables off the engine's path: a cheap (count, newest change)
/// probe every `every`, and a read of the changed rows only when the probe moves.
/// The engine task then applies what differs.
/// `seen`: the probe taken before the engine last read the whole directory.
pub async fn watch_directory(store: Store, every: Duration, seen: super::store::DirectoryProbe, tx: tokio::sync::mpsc::Sender<DirectoryChanges>) {
    let mut last = Some(seen);
    loop {
        tokio::time::sleep(every).await;
        let probe = match store.directory_probe().await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "directory probe failed");
                continue;
            }
        };
        let Some(prev) = last.replace(probe) else { continue };
        if prev == probe {
            continue;
        }
        // Rows changed at or after the newest change seen before (same-millisecond writes included).
        let since = prev.newest_ms;
        match read_directory(&store, since).await {
            Ok(changes) => {
                if tx.send(changes).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "directory read failed");
                last = Some(prev);
            }
        }
    }
}

/// Wall-clock time as a `Timestamp`. The only place the live engine reads the clock.
pub fn wall_clock() -> Timestamp {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Timestamp::from_millis(ms)
}

impl Driver {
    pub fn new(engine: Engine, store: Store, metrics: Arc<Metrics>, limits: WireLimits) -> Driver {
        Driver {
            engine,
            store,
            metrics,
            limits,
            seq: Sequences::default(),
            seq_stored: Sequences::default(),
            contexts: BTreeMap::new(),
            last_now: Timestamp::from_millis(0),
            batch: Batch::default(),
            store_failing: false,
            checkpoint_seq: 0,
            checkpoint_at: None,
            checkpoint_every: 10_000,
            checkpoint_busy: Duration::from_secs(600),
            base_unit_grace: Duration::from_secs(300),
            write_timeout: Duration::from_secs(10),
            write_watch: Arc::default(),
            watchdog: None,
            capture: None,
            out: Vec::new(),
            events_feed: Feed::default(),
            outbox_feed: Feed::default(),
            refused_alarms: VecDeque::new(),
            gateways: Gateways::default(),
            poison: None,
            failed: false,
            set_aside: BTreeSet::new(),
            directory_aside: BTreeSet::new(),
            directory_aside_met: BTreeSet::new(),
            web_aside: BTreeSet::new(),
            alarm_aside: BTreeSet::new(),
            faults: Faults::from_env(),
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

    /// Applies a web action (after the checks only the engine can make) and notes it in
    /// the audit trail. Answered after the next commit.
    pub fn act(&mut self, act: WebAct) -> ActOutcome {
        let now = self.now();
        self.fire_due(now);
        if self.failed {
            return ActOutcome::Refused { code: "engine_unavailable", detail: "the engine met a fault and starts again; try again in a moment".into() };
        }
        let WebAct { who, what } = act;
        let (name, incident, detail, input) = match what {
            WebAction::Staff(input) => {
                let (name, incident, detail) = staff_audit(&input);
                (name, incident, detail, Ok(input))
            }
            WebAction::Operator { incident, act } => {
                let detail = match &act {
                    OperatorAct::Assign { staff_id } => staff_id.to_string(),
                    OperatorAct::Resolve { note: Some(n) } | OperatorAct::Note { note: n } => n.clone(),
                    _ => String::new(),
                };
                (act.name(), Some(incident), detail, self.operator_input(&who, incident, act))
            }
        };
        let outcome = match input {
            Err(refused) => refused,
            Ok(input) => 'applied: {
                let record = serde_json::to_string(&input).expect("inputs serialize");
                if self.web_aside.contains(&record) {
                    warn!(action = name, username = %who.username, "a web action that made the engine fail before is refused, not applied again");
                    break 'applied ActOutcome::Refused {
                        code: WEB_ACTION_ASIDE_CODE,
                        detail: "this same action made the engine fail before (a fault in vakt), so it is not applied again; do what it was for another way, and report it".into(),
                    };
                }
                let first_event = self.batch.events.len();
                self.capture = Some(Vec::new());
                let fault = self.faults.web.iter().any(|f| f == name);
                let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    assert!(!fault, "fault injected by VAKT_FAULT_PANIC_ON_WEB_ACTION");
                    self.apply_recorded(now, input, record.clone(), Some("(web)"))
                }));
                let actions = self.capture.take().unwrap_or_default();
                if let Err(panic) = applied {
                    let culprit = Culprit::WebAction { username: who.username, role: who.role.as_str(), action: name.to_owned(), incident, record };
                    self.poisoned(Poisoned { why: panic_text(&*panic), culprit });
                    return ActOutcome::Refused {
                        code: "engine_unavailable",
                        detail: "this action made the engine fail (a fault in vakt) and was not applied; vakt starts again".into(),
                    };
                }
                match refusal(&actions) {
                    Some(reason) => ActOutcome::Refused { code: reason.code(), detail: reason.to_string() },
                    None => ActOutcome::Done { events: self.batch.events[first_event..].iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect() },
                }
            }
        };
        let result = match &outcome {
            ActOutcome::Done { .. } => "ok".to_owned(),
            ActOutcome::Refused { code, .. } => (*code).to_owned(),
        };
        // Refusals before the engine (scope, unknown incident) are audited too; nothing
        // else about them is stored.
        self.batch.audit.push(AuditRow {
            at_ms: now.as_millis(),
            username: who.username,
            role: who.role.as_str(),
            action: name.to_owned(),
            incident: incident.map(|i| i.0 as i64),
            detail,
            outcome: result,
        });
        outcome
    }

    fn operator_input(&self, who: &User, incident: IncidentId, act: OperatorAct) -> Result<Input, ActOutcome> {
        let refused = |code: &'static str, detail: String| ActOutcome::Refused { code, detail };
        let view = self.engine.incident(incident).ok_or_else(|| refused("unknown_incident", format!("no open incident {}", incident.0)))?;
        if !matches!(who.role, Role::Operator | Role::Admin) {
            return Err(refused("forbidden", format!("a {} does not act on incidents", who.role.as_str())));
        }
        if !self.in_scope(who, view.municipality) {
            let m = &self.engine.config().municipalities[view.municipality].id;
            return Err(refused("not_your_centre", format!("incident {} is in {m}, which your centre does not answer for", incident.0)));
        }
        let operator = crate::core::OperatorId::parse(&who.username).map_err(|e| refused("bad_user", e.to_string()))?;
        Ok(match act {
            OperatorAct::Answer {} => {
                // The centre it is queued at (an admin answers for that centre); an
                // operator answers for their own, and the engine refuses if it is elsewhere.
                let centre = match (&who.centre, view.queued_at) {
                    (Some(c), _) => c.clone(),
                    (None, Some(c)) => c,
                    (None, None) => return Err(refused("wrong_state", format!("incident {} is not queued at a centre", incident.0))),
                };
                Input::OperatorAnswer { centre, operator, incident }
            }
            OperatorAct::Resolve { note } => {
                if let Some(n) = &note {
                    note_fits(n).map_err(|(code, d)| refused(code, d))?;
                }
                Input::OperatorResolve { operator, incident, note }
            }
            OperatorAct::ForwardToHomeCare {} => Input::OperatorForward { operator, incident },
            OperatorAct::Assign { staff_id } => Input::OperatorAssign { operator, incident, staff: staff_id },
            OperatorAct::Escalate {} => Input::OperatorEscalate { operator, incident },
            OperatorAct::Note { note } => {
                if note.trim().is_empty() {
                    return Err(refused("empty_note", "a note has some text".into()));
                }
                note_fits(&note).map_err(|(code, d)| refused(code, d))?;
                Input::OperatorNote { operator, incident, note }
            }
        })
    }

    /// Time never runs backwards for the engine, even if the wall clock does.
    pub fn now(&mut self) -> Timestamp {
        self.last_now = self.last_now.max(wall_clock());
        self.last_now
    }

    /// Rebuilds the engine from the newest checkpoint and the input log after it.
    /// Returns the number of log records replayed.
    pub async fn recover(&mut self) -> Result<u64> {
        // Each read bounded: a database that hangs fails the start (a supervisor restarts
        // vakt) rather than leaving it waiting, not ready, for ever.
        let bound = self.write_timeout;
        self.seq = within(bound, self.store.sequences()).await?;
        self.seq_stored = self.seq;
        self.events_feed = Feed::at(within(bound, self.store.events_acked_through()).await?);
        self.outbox_feed = Feed::at(within(bound, self.store.outbox_acked_through()).await?);
        let mut after = 0;
        if let Some((log_seq, at_ms, state)) = within(bound, self.store.latest_checkpoint()).await? {
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
        self.set_aside = self.engine.open_incidents().filter(|v| v.set_aside).map(|v| v.id).collect();
        self.refresh_gauges();
        // Directory rows that made the engine panic, and web actions that made this
        // version of it panic (a new version tries them again: the fault may be mended),
        // from the audit trail: the inputs each line sets aside.
        let set_aside = async |action| -> Result<Vec<serde_json::Value>> {
            let lines = within(bound, self.store.latest_audit(action, 10_000)).await?;
            Ok(lines.iter().filter_map(|detail| serde_json::from_str::<serde_json::Value>(detail).ok()).collect())
        };
        let directory = set_aside(DIRECTORY_ASIDE_ACTION).await?;
        let web = set_aside(WEB_ACTION_ASIDE_ACTION).await?;
        let alarms = set_aside(ALARM_ASIDE_ACTION).await?;
        let input = |d: &serde_json::Value| d["input"].as_str().map(str::to_owned);
        let this_version = |d: &&serde_json::Value| d["version"] == env!("CARGO_PKG_VERSION");
        self.directory_aside.extend(directory.iter().filter_map(input));
        self.web_aside.extend(web.iter().filter(this_version).filter_map(input));
        let alarm = |d: &serde_json::Value| Some((d["alarm_id"].as_str()?.to_owned(), d["resident_id"].as_str()?.to_owned()));
        self.alarm_aside.extend(alarms.iter().filter(this_version).filter_map(alarm));
        // The latest refused alarms, from the audit trail, oldest first.
        let refused = within(bound, self.store.latest_audit(REFUSED_ACTION, REFUSED_KEPT as i64)).await?;
        for detail in refused.into_iter().rev() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&detail) else { continue };
            if let Some(m) = outbound::listed_municipality(&message).map(str::to_owned) {
                self.remember_refused(&m, message);
            }
        }
        Ok(n)
    }

    /// Applies directory entries (imports, seeds) that differ from the engine's view.
    /// Returns how many changed. A row that made the engine panic before is left out
    /// until it changes; one that makes it panic now poisons the driver (see
    /// [`Driver::refuse_poisoned`]).
    pub fn apply_directory(&mut self, changes: DirectoryChanges) -> usize {
        let residents = changes
            .residents
            .into_iter()
            .filter(|r| self.engine.resident(&r.id) != Some(r))
            .map(|r| (format!("resident {}", r.id), r.id.to_string(), Input::UpsertResident(r)));
        let staff = changes
            .staff
            .into_iter()
            .filter(|s| self.engine.staff_member(&s.id) != Some(s))
            .map(|s| (format!("staff {}", s.id), s.id.to_string(), Input::UpsertStaff(s)));
        let rows: Vec<_> = residents.chain(staff).collect();
        let mut changed = 0;
        for (who, id, input) in rows {
            if self.failed {
                break;
            }
            let record = serde_json::to_string(&input).expect("inputs serialize");
            if self.directory_aside.contains(&record) {
                if self.directory_aside_met.insert(who.clone()) {
                    warn!(%who, "a directory row that made the engine panic is left out until it changes (import it again, corrected)");
                }
                continue;
            }
            self.directory_aside_met.remove(&who);
            let fault = self.faults.directory.contains(&id);
            let now = self.now();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                assert!(!fault, "fault injected by VAKT_FAULT_PANIC_ON_DIRECTORY");
                self.apply_recorded(now, input, record.clone(), None)
            }));
            if let Err(panic) = ran {
                self.poisoned(Poisoned { why: panic_text(&*panic), culprit: Culprit::Directory { who, record } });
                break;
            }
            changed += 1;
        }
        self.metrics.directory_rows_set_aside.set(self.directory_aside_met.len() as i64);
        changed
    }

    /// Runs the timers due at `now` (logged as a tick, so a replay runs them at the same
    /// time), one incident at a time: should one make the engine panic, the driver is
    /// poisoned with that incident as the culprit (see [`Driver::refuse_poisoned`]).
    ///
    /// Then the base units' alarms whose grace has passed (see `live::gateways`).
    pub fn fire_due(&mut self, now: Timestamp) {
        self.run_timers(now);
        for (r, since) in self.gateways.take_due(now) {
            self.raise_connection_lost(now, &r, since);
        }
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
                self.poisoned(Poisoned { why: panic_text(&*panic), culprit: Culprit::Timer { incident } });
                return;
            }
        }
        self.drain(Mode::Live, &Cause { topic: None, alarm: None, reply: None });
    }

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

    /// What the broker has not acknowledged, to publish at start (after `recover`): the
    /// outbox rows and the incident events after their stored marks, in order.
    pub async fn unpublished(&mut self) -> Result<Vec<OutMsg>> {
        let bound = self.write_timeout;
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
        for (seq, kind, municipality, body) in within(bound, self.store.events_after(self.events_feed.acked)).await? {
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

    pub fn next_deadline(&self) -> Option<Timestamp> {
        [self.engine.poll_timeout(), self.gateways.next_due()].into_iter().flatten().min()
    }

    fn poisoned(&mut self, p: Poisoned) {
        self.failed = true;
        self.poison = Some(p);
    }

    /// The step that made the engine panic, if one did: the engine must not go on (the
    /// caller stores what [`Driver::refuse_poisoned`] makes of it, and ends).
    pub fn poison(&self) -> Option<&Poisoned> {
        self.poison.as_ref()
    }

    /// One inbound MQTT message: parsed by the wire contract, applied, or refused. Should
    /// it (or a timer due before it) make the engine panic, the driver is poisoned (see
    /// [`Driver::poison`]) and takes no more input.
    pub fn on_message(&mut self, message: &Inbound) {
        let now = self.now();
        self.fire_due(now);
        if self.failed {
            return;
        }
        let publish = &message.publish;
        let topic = publish.topic.as_str();
        if let Some(size) = message.oversize {
            // Its bytes are gone (the client task dropped them): refused for its size alone.
            let detail = format!("{size} bytes; the limit is {}", self.limits.max_payload_bytes);
            return self.refuse(now, topic, &[], WireReject { code: "payload_too_large", detail });
        }
        if let Some(rest) = topic.strip_prefix(gateways::PREFIX) {
            return self.on_gateway(now, topic, rest, &publish.payload);
        }
        match parse_topic(topic, &publish.payload, now, &self.limits) {
            Ok(input) => self.take_input(now, topic, &publish.payload, input),
            Err(reject) => self.refuse(now, topic, &publish.payload, reject),
        }
    }

    /// Applies what an inbound message (`payload`, on `topic`) said: counted when it is
    /// an alarm, audited when it is a staff member's. A panic poisons the driver, with
    /// the message as the culprit.
    fn take_input(&mut self, now: Timestamp, topic: &str, payload: &[u8], input: Input) {
        let mut fault = false;
        let mut alarm_ids = None;
        if let Input::Alarm(a) = &input {
            let ids = RefusedIds { alarm: Some(a.id.clone()), resident: Some(a.resident.clone()), municipality: None };
            if !self.alarm_aside.is_empty() && self.alarm_aside.contains(&(a.id.to_string(), a.resident.to_string())) {
                warn!(topic, alarm_id = %a.id, resident_id = %a.resident, "an alarm that made the engine fail before is refused, not taken again");
                let detail =
                    "this alarm made the engine fail before (a fault in vakt), so it is refused rather than taken again; handle it by hand, and report it";
                return self.reject(now, topic, "unreadable", detail, &ids);
            }
            alarm_ids = Some(ids);
            // A label takes configured values only: the topic is anyone's to make up, and
            // every new value would be a new series for ever (`metrics::UNKNOWN`).
            let label = if self.engine.config().municipality_index(&a.municipality).is_some() { a.municipality.as_str() } else { super::metrics::UNKNOWN };
            self.metrics.alarms_received.with_label_values(&[label]).inc();
            if let Some(ahead) = wire::clock_ahead(a, now, &self.limits) {
                warn!(alarm_id = %a.id, municipality = %a.municipality, raised_at = %a.raised_at, ahead_s = ahead.as_secs(), "the alarm's device clock is fast; the alarm is taken at its arrival");
                self.metrics.alarms_clock_ahead.with_label_values(&[label]).inc();
            }
            fault = self.faults.alarm.iter().any(|f| f == a.id.as_str());
        }
        let audited = match &input {
            Input::StaffReply { staff, .. } | Input::StaffOnDuty { staff, .. } | Input::StaffOffDuty { staff } => {
                Some((staff.to_string(), staff_audit(&input)))
            }
            _ => None,
        };
        if audited.is_some() {
            self.capture = Some(Vec::new());
        }
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert!(!fault, "fault injected by VAKT_FAULT_PANIC_ON_ALARM");
            self.apply(Mode::Live, now, input, Some(topic))
        }));
        if let (Some((staff, audit)), Ok(())) = (audited, &applied) {
            let actions = self.capture.take().unwrap_or_default();
            self.audit_staff_message(now, staff, audit, &actions);
        }
        if let Err(panic) = applied {
            let ids = alarm_ids.unwrap_or_else(|| self.refused_ids(topic, payload));
            self.poisoned(Poisoned { why: panic_text(&*panic), culprit: Culprit::Message { topic: topic.to_owned(), ids } });
        }
    }

    /// A message the wire refused: logged, and refused on the rejects topic with the ids
    /// that can be read from it.
    fn refuse(&mut self, now: Timestamp, topic: &str, payload: &[u8], reject: WireReject) {
        warn!(topic, reason = reject.code, detail = %reject.detail, "message rejected");
        let mut ids = self.refused_ids(topic, payload);
        if reject.code == "payload_too_large" {
            // A staff member's app sending what vakt cannot read: listed for their municipality.
            let staff = match topic.split('/').collect::<Vec<_>>().as_slice() {
                ["vakt", "v1", "staff", id, _] => StaffId::parse(id).ok(),
                _ => None,
            };
            ids.municipality = staff.and_then(|id| self.engine.staff_member(&id)).map(|s| s.municipality.clone());
        }
        self.reject(now, topic, reject.code, &reject.detail, &ids);
    }

    /// A gateway's status (`rest`: the topic after [`gateways::PREFIX`]): kept, counted
    /// and logged; refused with a reason as any message is. The status is not stored
    /// (the broker's retained message is the record). A home's base unit going offline
    /// is its resident's `connection_lost` alarm, which the engine takes as any alarm.
    fn on_gateway(&mut self, now: Timestamp, topic: &str, rest: &str, payload: &[u8]) {
        let parsed = refused_on_panic(topic, || match rest.split_once('/') {
            Some((m, g)) => wire::parse_gateway(m, g, payload, now, &self.limits),
            None => Err(WireReject {
                code: "bad_topic",
                detail: format!("a gateway's status goes on vakt/v1/gateways/{{municipality}}/{{gateway_id}}, not {topic:?}"),
            }),
        });
        let known = parsed.and_then(|r| match self.engine.config().municipality_index(&r.municipality) {
            Some(_) => Ok(r),
            None => Err(WireReject { code: RejectReason::UnknownMunicipality.code(), detail: format!("no municipality {} is configured", r.municipality) }),
        });
        let r = match known {
            Ok(r) => r,
            Err(reject) => return self.refuse(now, topic, payload, reject),
        };
        let (municipality, gateway) = (r.municipality.as_str(), r.gateway.as_str());
        let lost = self.gateways.get(&r.municipality, &r.gateway).filter(|s| !s.online).and_then(|s| s.base_unit.clone());
        let change = self.gateways.report(&r, now);
        match change {
            gateways::Change::WentOffline => warn!(municipality, gateway, "gateway offline: alarms sent through it cannot reach vakt until it is back"),
            gateways::Change::CameBack => info!(municipality, gateway, "gateway online again"),
            gateways::Change::Appeared => info!(municipality, gateway, "gateway online"),
            gateways::Change::Forgotten => info!(municipality, gateway, "gateway taken out of service (its status cleared)"),
            gateways::Change::Unchanged => {}
        }
        let (online, offline) = self.gateways.counts(&r.municipality);
        self.metrics.gateways.with_label_values(&[municipality, "online"]).set(online);
        self.metrics.gateways.with_label_values(&[municipality, "offline"]).set(offline);
        self.on_base_unit(now, topic, payload, change, r, lost);
    }

    /// What a base unit's status (`r`, which made `change`) means for its resident:
    /// - offline: held for the grace, then the `connection_lost` alarm. vakt learns it
    ///   from the will, or at vakt's start from the retained status (the same alarm id
    ///   then: a redelivery, see `GatewayReport::connection_lost`);
    /// - back online after its alarm (`lost`: the connection that was lost): a note on
    ///   that alarm's incident, if it is still open, so that whoever has it knows alarms
    ///   can come through again.
    fn on_base_unit(&mut self, now: Timestamp, topic: &str, payload: &[u8], change: gateways::Change, r: wire::GatewayReport, lost: Option<wire::BaseUnit>) {
        match (change, lost) {
            (gateways::Change::WentOffline, _) if r.base_unit.is_some() => {
                if self.base_unit_grace.is_zero() {
                    self.raise_connection_lost(now, &r, now);
                } else {
                    self.gateways.hold(r, now, now + self.base_unit_grace);
                }
            }
            (gateways::Change::CameBack, Some(lost)) => {
                let alarm = wire::connection_lost_id(&lost);
                let open = self.contexts.iter().find(|(_, c)| c.alarm == alarm && c.resident == lost.resident).map(|(id, _)| *id);
                if let Some(incident) = open {
                    let note = format!("Base unit {} is back online: alarms can come through it again", r.gateway);
                    self.take_input(now, topic, payload, Input::SystemNote { incident, note });
                }
            }
            _ => {}
        }
    }

    /// A base unit's `connection_lost` alarm for its resident, taken as any alarm is.
    fn raise_connection_lost(&mut self, now: Timestamp, r: &wire::GatewayReport, since: Timestamp) {
        if self.failed {
            return;
        }
        if let Some(alarm) = r.connection_lost(since) {
            info!(municipality = %r.municipality, gateway = %r.gateway, alarm_id = %alarm.id, "a base unit is still offline: its resident's connection_lost alarm goes to the engine");
            let topic = format!("{}{}/{}", gateways::PREFIX, r.municipality, r.gateway);
            self.take_input(now, &topic, &[], Input::Alarm(alarm));
        }
    }

    /// Every gateway known, with its latest status.
    pub fn gateways(&self) -> &Gateways {
        &self.gateways
    }

    /// A staff member's reply or duty change over MQTT: an audit line, as from the web
    /// app (by the staff id, the broker's login). Positions are not audited from MQTT: an
    /// app may send one every few seconds.
    fn audit_staff_message(&mut self, now: Timestamp, staff: String, audited: (&'static str, Option<IncidentId>, String), actions: &[Action]) {
        let (name, incident, detail) = audited;
        let outcome = refusal(actions).map_or("ok", RejectReason::code);
        let row = AuditRow {
            at_ms: now.as_millis(),
            username: staff,
            role: Role::Staff.as_str(),
            action: name.to_owned(),
            incident: incident.map(|i| i.0 as i64),
            detail,
            outcome: outcome.to_owned(),
        };
        self.batch.audit.push(row);
    }

    /// The ids a refused message's reject carries: an alarm's, where they can be read.
    fn refused_ids(&self, topic: &str, payload: &[u8]) -> RefusedIds {
        if !topic.starts_with(ALARMS_PREFIX) {
            return RefusedIds::default();
        }
        let (alarm, resident) = wire::readable_alarm_ids(payload, &self.limits);
        RefusedIds { alarm, resident, municipality: None }
    }

    /// After a step made the engine panic: nothing of the step is kept (the broker still
    /// holds its messages, unacknowledged, and gives them to the restarted engine), but
    /// what put the engine there, which is stored alone:
    /// - a message is refused as `unreadable`, with its ids (the caller acknowledges it
    ///   with what this returns);
    /// - an incident whose timer it was is set aside (`Input::SetAside`, logged for the
    ///   replay, with its incident event and an audit line): the restarted engine no
    ///   longer runs that incident's timers, and people handle it by hand.
    ///
    /// Returns what to publish. The engine is not to be used afterwards: the caller ends,
    /// and a restart recovers from the store, which the panic never reached.
    pub async fn refuse_poisoned(&mut self, ready: &tokio::sync::watch::Sender<bool>) -> Vec<OutMsg> {
        let Some(p) = self.poison.take() else { return Vec::new() };
        self.batch = Batch::default();
        self.out.clear();
        self.seq = self.seq_stored;
        let now = self.last_now;
        match p.culprit {
            Culprit::Message { topic, ids } => {
                let detail = format!("this message made the engine fail (a fault in vakt: {}); it was refused, and vakt starts again", p.why);
                self.reject(now, &topic, "unreadable", &detail, &ids);
                if let (Some(a), Some(r)) = (&ids.alarm, &ids.resident) {
                    let aside = serde_json::json!({ "alarm_id": a.as_str(), "resident_id": r.as_str(), "topic": topic, "version": env!("CARGO_PKG_VERSION"), "why": p.why }).to_string();
                    self.audit_by_vakt(now, ALARM_ASIDE_ACTION, None, aside, "ok");
                }
            }
            Culprit::Timer { incident } => {
                let reason = format!(
                    "its timer made the engine fail (a fault in vakt: {}); the engine no longer offers, escalates or alerts on it: handle it by hand",
                    p.why
                );
                let input = Input::SetAside { incident, reason: reason.clone() };
                self.log_record(now, serde_json::to_string(&input).expect("inputs serialize"));
                self.emit(&Action::SetAside { at: now, incident, reason: reason.clone() }, &Cause { topic: None, alarm: None, reply: None });
                self.audit_by_vakt(now, SET_ASIDE_ACTION, Some(incident), reason, "ok");
            }
            Culprit::Directory { who, record } => {
                let detail = serde_json::json!({ "who": who, "input": record, "why": p.why }).to_string();
                self.audit_by_vakt(now, DIRECTORY_ASIDE_ACTION, None, detail, "ok");
            }
            Culprit::WebAction { username, role, action, incident, record } => {
                let detail = format!("it made the engine fail (a fault in vakt: {}) and was not applied; vakt started again", p.why);
                let aside = serde_json::json!({ "action": action, "input": record, "version": env!("CARGO_PKG_VERSION"), "why": p.why }).to_string();
                self.batch.audit.push(AuditRow {
                    at_ms: now.as_millis(),
                    username,
                    role,
                    action,
                    incident: incident.map(|i| i.0 as i64),
                    detail,
                    outcome: WEB_ACTION_FAILED.to_owned(),
                });
                // Not on the incident's own history, which the user's line above tells.
                self.audit_by_vakt(now, WEB_ACTION_ASIDE_ACTION, None, aside, "ok");
            }
        }
        self.commit(ready, false).await
    }

    fn reject(&mut self, now: Timestamp, topic: &str, code: &'static str, detail: &str, ids: &RefusedIds) {
        self.metrics.rejected.with_label_values(&[code]).inc();
        let msg = outbound::reject_message(topic, code, detail, now, ids);
        let kept: serde_json::Value = serde_json::from_str(&msg).expect("a reject is JSON");
        if let Some(m) = outbound::listed_municipality(&kept).map(str::to_owned) {
            // In the audit trail too, with the batch: the dashboards' list survives a
            // restart (which a message that made the engine fail brings about itself).
            self.audit_by_vakt(now, REFUSED_ACTION, None, msg.clone(), code);
            self.remember_refused(&m, kept);
        }
        self.push_out(outbound::REJECTS_TOPIC.to_owned(), msg, now);
    }

    /// An audit line of vakt's own (by `(vakt)`, role `system`), stored with the batch.
    fn audit_by_vakt(&mut self, now: Timestamp, action: &str, incident: Option<IncidentId>, detail: String, outcome: &str) {
        let row = AuditRow {
            at_ms: now.as_millis(),
            username: REFUSED_BY.to_owned(),
            role: SYSTEM_ROLE,
            action: action.to_owned(),
            incident: incident.map(|i| i.0 as i64),
            detail,
            outcome: outcome.to_owned(),
        };
        self.batch.audit.push(row);
    }

    fn remember_refused(&mut self, municipality: &str, message: serde_json::Value) {
        if self.refused_alarms.len() == REFUSED_KEPT {
            self.refused_alarms.pop_front();
        }
        self.refused_alarms.push_back(RefusedAlarm { municipality: municipality.to_owned(), message });
    }

    /// The latest refused alarms, newest first (see [`REFUSED_KEPT`]; read back from the
    /// audit trail at start).
    pub fn refused_alarms(&self) -> impl Iterator<Item = &RefusedAlarm> {
        self.refused_alarms.iter().rev()
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
                    self.set_aside.remove(incident);
                }
                Action::SetAside { incident, .. } => {
                    self.set_aside.insert(*incident);
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
        self.metrics.incidents_set_aside.set(self.set_aside.len() as i64);
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
        let has_work = !(self.batch.log.is_empty() && self.batch.events.is_empty() && self.batch.outbox.is_empty() && self.batch.audit.is_empty());
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
            let result = watch.bounded(self.write_timeout, attempt).await;
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
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
    }
}

impl Driver {
    /// The watch over store writes, its watchdog running (started on the runtime of the
    /// first write, and again should it have ended).
    fn write_watch(&mut self) -> Arc<WriteWatch> {
        if self.watchdog.as_ref().is_none_or(|w| w.is_finished()) {
            self.watchdog = Some(tokio::spawn(watch_writes(self.write_watch.clone(), self.write_timeout)));
        }
        self.write_watch.clone()
    }
}

/// When the store write under way began (milliseconds after `base`, plus one; 0: none),
/// and the signal that it has run too long, with the start of the write it was meant
/// for. Writes are bounded by the watchdog rather than a timer per write: one on every
/// commit measurably lengthened the alarm → offer tail on PostgreSQL.
struct WriteWatch {
    base: Instant,
    started: AtomicU64,
    overdue_mark: AtomicU64,
    overdue: tokio::sync::Notify,
}

impl Default for WriteWatch {
    fn default() -> Self {
        WriteWatch { base: Instant::now(), started: Default::default(), overdue_mark: Default::default(), overdue: Default::default() }
    }
}

impl WriteWatch {
    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64 + 1
    }

    /// Runs a store write: its result, or `StoreTimedOut` once the watchdog finds it has
    /// run past `timeout` (the write is then dropped). A wake meant for an earlier write
    /// (one that ended between the watchdog's look and its signal) is not this write's:
    /// it waits on.
    async fn bounded<T>(&self, timeout: Duration, write: impl std::future::Future<Output = Result<T>>) -> Result<T> {
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
async fn watch_writes(watch: Arc<WriteWatch>, timeout: Duration) {
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
    /// At a quiet moment, after enough log records: store a snapshot and cut the log.
    /// A failure is logged and tried again after the next batch; nothing depends on it.
    async fn maybe_checkpoint(&mut self) {
        if self.failed {
            return; // a snapshot of an engine that panicked would keep what went wrong
        }
        if self.seq.log - self.checkpoint_seq < self.checkpoint_every as i64 {
            return;
        }
        // Quiet: the snapshot is the directory and little else. Busy: it carries every
        // open incident, so not more often than `checkpoint_busy`.
        let since = *self.checkpoint_at.get_or_insert(self.last_now);
        if self.engine.open_incident_count() > 0 && self.last_now.since(since) < self.checkpoint_busy {
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

    async fn checkpoint(&mut self) {
        let Some(engine) = self.engine.snapshot() else { return };
        let open = engine.open_incidents();
        let contexts = self.contexts.iter().map(|(id, c)| (*id, c.clone())).collect();
        let state = serde_json::to_string(&Checkpoint { engine, contexts }).expect("checkpoints serialize");
        // Bounded like the batches: a database that hangs must not hold the engine here.
        let watch = self.write_watch();
        match watch.bounded(self.write_timeout, self.store.write_checkpoint(self.seq.log, self.last_now.as_millis(), &state)).await {
            Ok(()) => {
                info!(log_seq = self.seq.log, bytes = state.len(), open_incidents = open, "checkpoint stored; input log cut");
                self.checkpoint_seq = self.seq.log;
                self.checkpoint_at = Some(self.last_now);
            }
            Err(e) if e.is::<StoreTimedOut>() => {
                warn!(timeout_secs = self.write_timeout.as_secs(), "checkpoint got no answer from the database in time; the input log stays whole")
            }
            Err(e) => warn!(error = %format!("{e:#}"), "checkpoint failed; the input log stays whole"),
        }
    }
}

/// A stored checkpoint: the engine's snapshot and what the driver remembers about each
/// open incident. (Not `#[serde(flatten)]`: through it, the numeric map keys inside the
/// snapshot no longer read back.)
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    engine: crate::core::Snapshot,
    contexts: Vec<(IncidentId, IncidentContext)>,
}

impl Checkpoint {
    /// Also reads the checkpoints stored before open incidents were kept: a bare
    /// snapshot, taken at a quiet moment.
    fn parse(state: &str) -> serde_json::Result<Checkpoint> {
        serde_json::from_str::<Checkpoint>(state)
            .or_else(|e| serde_json::from_str::<crate::core::Snapshot>(state).map(|engine| Checkpoint { engine, contexts: Vec::new() }).map_err(|_| e))
    }
}

/// An operator's note is held to what a staff member's is on the wire
/// ([`wire::MAX_NOTE_CHARS`]): it goes into the log, the incident's events and every
/// dashboard's live feed.
fn note_fits(note: &str) -> Result<(), (&'static str, String)> {
    let n = note.chars().count();
    if n > wire::MAX_NOTE_CHARS {
        return Err(("note_too_long", format!("a note has at most {} characters; this one has {n}", wire::MAX_NOTE_CHARS)));
    }
    if let Some(why) = crate::core::text::refused(note, true) {
        return Err((NOTE_UNREADABLE, format!("the note {why}")));
    }
    Ok(())
}

/// The refusal of an operator's note with a character people could not see.
pub const NOTE_UNREADABLE: &str = "note_unreadable";

/// Routes a topic to its parser.
pub fn parse_topic(topic: &str, payload: &[u8], now: Timestamp, limits: &WireLimits) -> Result<Input, WireReject> {
    refused_on_panic(topic, || {
        let parts: Vec<&str> = topic.split('/').collect();
        match parts.as_slice() {
            ["vakt", "v1", "alarms", m] => wire::parse_alarm(m, payload, now, limits),
            ["vakt", "v1", "staff", s, "status"] => wire::parse_status(s, payload, limits),
            ["vakt", "v1", "staff", s, "replies"] => wire::parse_reply(s, payload, limits),
            _ => Err(WireReject { code: "bad_topic", detail: format!("vakt does not take messages on {topic:?}") }),
        }
    })
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

/// A fault injection's alarm ids, if set (tests only).
fn fault_injected(name: &str) -> Vec<String> {
    std::env::var(name).map(|s| s.split(',').filter(|id| !id.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_else(|| "a panic".to_owned())
}

/// A message that makes a parser panic (a fault in vakt: the parsers are pure, so
/// nothing is left half done) is refused as `unreadable` instead of ending the engine:
/// the broker would give the restarted engine the same message again, and again, and
/// no alarm after it would get through.
fn refused_on_panic<T>(topic: &str, parse: impl FnOnce() -> Result<T, WireReject>) -> Result<T, WireReject> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)).unwrap_or_else(|panic| {
        let why = panic_text(&*panic);
        error!(topic, panic = %why, "a parser panicked on a message: a fault in vakt; the message is refused");
        Err(WireReject { code: "unreadable", detail: "vakt could not read this message (a fault in vakt, logged); it was refused".to_owned() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parser_that_panics_refuses_the_message_and_the_engine_goes_on() {
        let r = refused_on_panic::<Input>("vakt/v1/alarms/demo", || panic!("a fault"));
        let e = r.unwrap_err();
        assert_eq!(e.code, "unreadable");
        assert!(wire::REJECT_CODES.contains(&e.code));
        let limits = WireLimits::default();
        assert!(parse_topic("vakt/v1/staff/s1/status", br#"{"state":"off_duty"}"#, Timestamp::from_secs(0), &limits).is_ok());
    }

    /// Checkpoints stored before open incidents were kept (a bare snapshot) still read,
    /// and the new kind reads back whole.
    #[test]
    fn checkpoints_of_both_kinds_read_back() {
        let config = crate::settings::Settings::from_toml(include_str!("../../config/default.toml")).unwrap().engine_config().unwrap();
        let engine = Engine::new(config).snapshot().unwrap();
        let legacy = serde_json::to_string(&engine).unwrap();
        let read = Checkpoint::parse(&legacy).unwrap();
        assert_eq!((read.engine, read.contexts.len()), (engine.clone(), 0));
        let ctx = IncidentContext {
            municipality: crate::core::MunicipalityId::parse("demo").unwrap(),
            model: crate::core::ResponseModel::MobileGuardRoom,
            alarm: crate::core::AlarmId::parse("a-1").unwrap(),
            resident: crate::core::ResidentId::parse("r-1").unwrap(),
            kind: crate::core::AlarmKind::Fall,
            priority: crate::core::Priority::Critical,
            raised_at: Timestamp::from_millis(1_000),
            text: None,
            position: Position::new(61.2, 7.1).unwrap(),
            address: "Kyrkjevegen 3".into(),
            notes: String::new(),
        };
        let text = serde_json::to_string(&Checkpoint { engine: engine.clone(), contexts: vec![(IncidentId(7), ctx.clone())] }).unwrap();
        let read = Checkpoint::parse(&text).unwrap();
        assert_eq!((read.engine, read.contexts), (engine, vec![(IncidentId(7), ctx)]));
        assert!(Checkpoint::parse("{\"engine\": 1}").is_err());
    }

    /// A driver on a new SQLite store in its own folder, on the default configuration
    /// (municipality `demo`), with residents r1..r3 applied.
    async fn demo_driver(name: &str) -> (std::path::PathBuf, Store, Driver) {
        use crate::core::{MunicipalityId, Resident, ResidentId};
        let dir = std::env::temp_dir().join(format!("vakt-driver-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("t.sqlite").display());
        let store = Store::open(&url).await.unwrap();
        let mut d = driver_on(&store);
        d.recover().await.unwrap();
        let demo = MunicipalityId::parse("demo").unwrap();
        for r in ["r1", "r2", "r3"] {
            let home = Position::new(61.23, 7.10).unwrap();
            let res = Resident {
                id: ResidentId::parse(r).unwrap(),
                municipality: demo.clone(),
                home,
                regular_helpers: Vec::new(),
                address: String::new(),
                notes: String::new(),
            };
            d.apply(Mode::Live, T0, Input::UpsertResident(res), None);
        }
        (dir, store, d)
    }

    /// A new driver (an engine as at start, before recovery) on `store`.
    fn driver_on(store: &Store) -> Driver {
        Driver::new(Engine::new(demo_config()), store.clone(), Arc::new(Metrics::new()), WireLimits::default())
    }

    fn demo_config() -> crate::core::EngineConfig {
        crate::settings::Settings::from_toml(include_str!("../../config/default.toml")).unwrap().engine_config().unwrap()
    }

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    fn demo_alarm(a: &str, r: &str) -> Input {
        use crate::core::{Alarm, AlarmId, AlarmKind, MunicipalityId, ResidentId};
        let (id, resident, municipality) = (AlarmId::parse(a).unwrap(), ResidentId::parse(r).unwrap(), MunicipalityId::parse("demo").unwrap());
        Input::Alarm(Alarm { id, resident, municipality, kind: AlarmKind::Fall, priority: None, raised_at: T0, position: None, text: None })
    }

    /// A step that failed on an incident's timer, after an alarm of the same step had
    /// made events: only the set-aside is stored, and it takes the numbers after what was
    /// stored (a gap in the events would hold their acknowledged mark back for good);
    /// the alarm's incident is not stored (the broker gives the alarm again), and an
    /// engine recovered from the store has the incident aside and the other's timer.
    #[tokio::test]
    async fn a_failed_step_is_thrown_away_and_leaves_no_gap() {
        let (dir, store, mut d) = demo_driver("gap").await;
        let (ready, _) = tokio::sync::watch::channel(false);
        d.apply(Mode::Live, T0, demo_alarm("a1", "r1"), None);
        d.apply(Mode::Live, T0, demo_alarm("a2", "r2"), None);
        d.commit(&ready, true).await;
        let stored = store.sequences().await.unwrap();

        d.faults.timer = vec!["a2".into()];
        d.apply(Mode::Live, T0, demo_alarm("a3", "r3"), None);
        assert!(!d.batch.events.is_empty(), "the alarm made events");
        d.fire_due(T0 + Duration::from_secs(3_600));
        assert!(matches!(d.poison().map(|p| &p.culprit), Some(Culprit::Timer { incident: IncidentId(2) })));
        d.refuse_poisoned(&ready).await;

        let now = store.sequences().await.unwrap();
        assert_eq!((now.events, now.log), (stored.events + 1, stored.log + 1), "the set-aside alone, right after what was stored");
        let last = store.incident_events(2).await.unwrap().pop().unwrap();
        assert_eq!(last.0, "set_aside");
        assert!(store.incident_events(3).await.unwrap().is_empty(), "the alarm's step was thrown away");
        let mut again = driver_on(&store);
        again.recover().await.unwrap();
        let view = |id: u64| again.engine().incident(IncidentId(id));
        assert_eq!((view(1).map(|v| v.set_aside), view(2).map(|v| v.set_aside), view(3).is_none()), (Some(false), Some(true), true));
        assert_eq!(again.engine().next_timer().map(|(_, i)| i), Some(IncidentId(1)), "the other incident's timer is still due");
        // A version that cannot replay the log (here: a fault injected on a1) says so,
        // with the record and what to do, rather than panic.
        let mut other = driver_on(&store);
        other.faults.replay = vec!["a1".into()];
        let err = format!("{:#}", other.recover().await.unwrap_err());
        assert!(err.contains("replaying input log record 4") && err.contains("fault injected") && err.contains("stop it with SIGTERM"), "{err}");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A web action that makes the engine panic is not applied: the step is thrown away,
    /// the action is noted in the audit trail under its user (`engine_failed`), and an
    /// engine recovered from the store refuses the same action (it would only fail again)
    /// and takes any other.
    #[tokio::test]
    async fn a_web_action_that_makes_the_engine_fail_is_audited_and_not_applied() {
        use crate::live::accounts::{Role, User};
        let (dir, store, mut d) = demo_driver("web-fault").await;
        let (ready, _) = tokio::sync::watch::channel(false);
        d.apply(Mode::Live, T0, demo_alarm("a1", "r1"), None);
        d.commit(&ready, true).await;
        let admin = || User { username: "admin1".into(), role: Role::Admin, staff_id: None, centre: None };
        let note = || WebAct { who: admin(), what: WebAction::Operator { incident: IncidentId(1), act: OperatorAct::Note { note: "rang her".into() } } };

        d.faults.web = vec!["note".into()];
        let outcome = d.act(note());
        assert!(matches!(outcome, ActOutcome::Refused { code: "engine_unavailable", .. }));
        assert!(matches!(d.poison().map(|p| &p.culprit), Some(Culprit::WebAction { incident: Some(IncidentId(1)), .. })));
        d.refuse_poisoned(&ready).await;
        let audit = store.incident_audit(1).await.unwrap();
        let failed = audit.iter().find(|a| a.username == "admin1").expect("the user's audit line");
        assert_eq!((failed.action.as_str(), failed.outcome.as_str()), ("note", WEB_ACTION_FAILED));
        assert!(failed.detail.contains("fault injected"), "{}", failed.detail);
        let aside = store.latest_audit(WEB_ACTION_ASIDE_ACTION, 10).await.unwrap();
        assert!(
            aside.len() == 1 && aside[0].contains("rang her") && aside[0].contains(env!("CARGO_PKG_VERSION")),
            "vakt's line setting the action aside: {aside:?}"
        );
        let kinds = |events: Vec<(String, String)>| events.into_iter().map(|(kind, _)| kind).collect::<Vec<_>>();
        assert!(!kinds(store.incident_events(1).await.unwrap()).contains(&"note_added".to_owned()), "not applied");

        let mut again = driver_on(&store);
        again.recover().await.unwrap();
        assert!(matches!(again.act(note()), ActOutcome::Refused { code: WEB_ACTION_ASIDE_CODE, .. }), "the same action is refused, not applied again");
        let other = WebAct { who: admin(), what: WebAction::Operator { incident: IncidentId(1), act: OperatorAct::Note { note: "rang igjen".into() } } };
        assert!(matches!(again.act(other), ActOutcome::Done { .. }), "another action is taken");
        again.commit(&ready, true).await;
        assert!(kinds(store.incident_events(1).await.unwrap()).contains(&"note_added".to_owned()));
        let audit = store.incident_audit(1).await.unwrap();
        let refused = audit.iter().filter(|a| a.outcome == WEB_ACTION_ASIDE_CODE).count();
        assert_eq!(refused, 1, "the refusal is audited: {audit:?}");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An alarm that makes the engine panic is refused and set aside: an engine recovered
    /// from the store refuses the same alarm (alarm id and resident) at once if it meets
    /// it again (a retained message, a gateway that sends it again), rather than fail
    /// again, and takes any other, the same id for another resident included.
    #[tokio::test]
    async fn an_alarm_that_made_the_engine_fail_is_refused_at_once_if_met_again() {
        let (dir, store, mut d) = demo_driver("alarm-fault").await;
        let (ready, _) = tokio::sync::watch::channel(false);
        d.commit(&ready, true).await;
        let raised_at = wall_clock();
        let publish = |a: &str, r: &str| {
            let alarm = serde_json::json!({ "alarm_id": a, "resident_id": r, "kind": "fall", "raised_at": raised_at.to_string() });
            Inbound::new(rumqttc::Publish::new("vakt/v1/alarms/demo", rumqttc::QoS::AtLeastOnce, alarm.to_string()), 16 * 1024)
        };
        let rejects = |out: &[OutMsg]| {
            out.iter()
                .filter(|m| m.topic == outbound::REJECTS_TOPIC)
                .map(|m| serde_json::from_str::<serde_json::Value>(&m.payload).unwrap())
                .collect::<Vec<_>>()
        };

        d.faults.alarm = vec!["a1".into()];
        d.on_message(&publish("a1", "r1"));
        assert!(matches!(d.poison().map(|p| &p.culprit), Some(Culprit::Message { ids: RefusedIds { alarm: Some(_), resident: Some(_), .. }, .. })));
        let out = d.refuse_poisoned(&ready).await;
        let refused = rejects(&out);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(
            (refused[0]["reason"].as_str(), refused[0]["alarm_id"].as_str(), refused[0]["resident_id"].as_str()),
            (Some("unreadable"), Some("a1"), Some("r1"))
        );
        let aside = store.latest_audit(ALARM_ASIDE_ACTION, 10).await.unwrap();
        assert!(
            aside.len() == 1 && aside[0].contains("\"a1\"") && aside[0].contains(env!("CARGO_PKG_VERSION")),
            "vakt's line setting the alarm aside: {aside:?}"
        );

        // The fault is not injected any more: only the set-aside keeps the alarm out.
        let mut again = driver_on(&store);
        again.recover().await.unwrap();
        again.on_message(&publish("a1", "r1"));
        again.on_message(&publish("a2", "r2"));
        again.on_message(&publish("a1", "r3"));
        assert!(again.poison().is_none());
        let out = again.commit(&ready, true).await;
        let refused = rejects(&out);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(
            (refused[0]["reason"].as_str(), refused[0]["alarm_id"].as_str(), refused[0]["resident_id"].as_str()),
            (Some("unreadable"), Some("a1"), Some("r1"))
        );
        assert!(refused[0]["detail"].as_str().unwrap().contains("made the engine fail before"), "{}", refused[0]);
        let mut raised: Vec<(String, String)> = again.contexts.values().map(|c| (c.alarm.to_string(), c.resident.to_string())).collect();
        raised.sort();
        assert_eq!(raised, [("a1".to_owned(), "r3".to_owned()), ("a2".to_owned(), "r2".to_owned())]);
        assert_eq!(again.refused_alarms().count(), 2, "the first refusal (read back at start) and this one, for the dashboards");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A mark moves only over a run without a gap; what was done beyond a gap waits for
    /// it, and counts as done meanwhile.
    #[test]
    fn a_feed_mark_moves_over_what_is_done_without_a_gap() {
        let mut f = Feed::at(3);
        assert!(!f.moved());
        for seq in [5, 6, 2, 3] {
            f.done(seq);
        }
        assert_eq!((f.acked, f.unacknowledged(8)), (3, 3), "4, 7 and 8 are not done");
        f.done(4);
        assert_eq!((f.acked, f.unacknowledged(8), f.moved()), (6, 2, true));
        f.stored = f.acked;
        assert!(!f.moved());
    }

    /// The outbox's rows stay, acknowledged, until a checkpoint prunes them: the mark
    /// tells a start what to publish again. An id after the mark with no row (deleted
    /// when acknowledged, before the outbox kept a mark) counts as done, so the mark can
    /// move past it.
    #[tokio::test]
    async fn a_start_publishes_the_outbox_after_its_mark_and_steps_over_ids_without_a_row() {
        let (dir, store, mut d) = demo_driver("outbox-mark").await;
        let (ready, _) = tokio::sync::watch::channel(false);
        d.commit(&ready, true).await;
        let row = |id: i64| OutboxRow { id, topic: format!("t{id}"), payload: format!("p{id}"), created_ms: id };
        store.append(&Batch { outbox: vec![row(5), row(9)], outbox_acked_through: Some(4), ..Batch::default() }).await.unwrap();

        let mut again = driver_on(&store);
        again.recover().await.unwrap();
        let out = again.unpublished().await.unwrap();
        let ids: Vec<_> = out.iter().filter_map(|m| if let Stored::Outbox(id) = m.stored { Some(id) } else { None }).collect();
        assert_eq!(ids, [5, 9]);
        assert_eq!(again.outbox_feed.unacknowledged(again.seq.outbox), 2);
        let (_tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        again.delivered(&mut vec![Stored::Outbox(9), Stored::Outbox(5)], &mut rx);
        assert!(again.commit(&ready, true).await.is_empty());
        assert_eq!((store.outbox_acked_through().await.unwrap(), store.outbox_pending().await.unwrap()), (9, 0));
        assert_eq!(store.outbox_ids().await.unwrap(), [5, 9], "kept until a checkpoint");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The watchdog's wake ends the write it was meant for, and only that one: a write
    /// that was overdue may end between the watchdog's look and its signal, and the next
    /// write, already waiting by then, must not take the signal for its own.
    #[tokio::test]
    async fn the_watchdog_ends_only_the_write_it_found_overdue() {
        let watch = Arc::new(WriteWatch::default());
        let (done, finish) = tokio::sync::oneshot::channel::<()>();
        let write = watch.bounded(Duration::from_secs(1), async move {
            finish.await.ok();
            Ok("stored")
        });
        let earlier = async {
            tokio::task::yield_now().await;
            let mark = watch.started.load(Ordering::Relaxed);
            assert_ne!(mark, 0, "the write has begun");
            watch.overdue_mark.store(mark + 1, Ordering::Relaxed);
            watch.overdue.notify_waiters();
            tokio::task::yield_now().await;
            done.send(()).unwrap();
        };
        let (result, ()) = tokio::join!(write, earlier);
        assert_eq!(result.unwrap(), "stored");
        assert_eq!(watch.started.load(Ordering::Relaxed), 0);

        // A write that never ends is ended by the watchdog once it is overdue.
        tokio::spawn(watch_writes(watch.clone(), Duration::from_millis(1)));
        let hung = watch.bounded(Duration::from_millis(1), std::future::pending::<Result<()>>());
        let err = tokio::time::timeout(Duration::from_secs(5), hung).await.expect("the watchdog ends a hung write").unwrap_err();
        assert!(err.is::<StoreTimedOut>(), "{err:#}");
    }
}
