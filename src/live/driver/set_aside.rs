//! What made the engine fail (a panic: a fault in vakt), and what vakt sets aside so
//! that it does not fail on it again: the message (refused), the incident whose timer it
//! was (left to people), the directory row (left out until it changes), the web action
//! (refused if repeated), the alarm (refused if met again). Then vakt exits, and its
//! supervisor starts it again from the store.

use std::collections::BTreeSet;

use super::{Cause, Driver};
use crate::core::{Action, IncidentId, Input, Timestamp};
use crate::live::mqtt::OutMsg;
use crate::live::outbound::RefusedIds;
use crate::live::store::{AuditRow, Batch, SetAsideRow};

/// What vakt has set aside, each because it made the engine fail (a fault in vakt):
/// read back from the store at every start, so that a restart does not fail on it again.
#[derive(Debug, Default)]
pub(super) struct SetAside {
    /// Open incidents the engine no longer handles by itself (`vakt_incidents_set_aside`):
    /// people do. Their state is the engine's (`Input::SetAside`, in the input log).
    pub(super) incidents: BTreeSet<IncidentId>,
    /// Directory rows (their inputs as logged): not applied again until they change.
    pub(super) directory_rows: BTreeSet<String>,
    /// Whose current row is one of them (`vakt_directory_rows_set_aside`).
    pub(super) directory_rows_met: BTreeSet<String>,
    /// Web actions (their inputs as logged) that made this version of the engine fail:
    /// refused rather than applied again. Without it, a person who repeats the action
    /// (the page said it failed) would stop vakt again each time, and every alarm would
    /// wait for each restart.
    pub(super) web_actions: BTreeSet<String>,
    /// Alarms (alarm id, resident id) that made this version of the engine fail: refused
    /// at once if met again. A retained message (a home's base unit's `offline`, met at
    /// every start) or a gateway that sends an alarm again would otherwise stop vakt
    /// again each time.
    pub(super) alarms: BTreeSet<(String, String)>,
}

impl SetAside {
    /// What earlier failures set aside, as stored: every directory row; the web actions
    /// and alarms that made this version fail (another version may have mended it).
    pub(super) fn read_back(&mut self, rows: Vec<SetAsideRow>) {
        let this_version = env!("CARGO_PKG_VERSION");
        for r in rows {
            match (r.kind, r.input, r.alarm_id, r.resident_id) {
                ("directory_row", Some(input), ..) => {
                    self.directory_rows.insert(input);
                }
                ("web_action", Some(input), ..) if r.version == this_version => {
                    self.web_actions.insert(input);
                }
                ("alarm", _, Some(alarm), Some(resident)) if r.version == this_version => {
                    self.alarms.insert((alarm, resident));
                }
                _ => {}
            }
        }
    }
}

/// Fault injection for the tests: what makes the engine panic, each a comma-separated
/// list in an environment variable. Read at start; unset in any real use.
#[derive(Default)]
pub(super) struct Faults {
    /// Alarms with these ids, when they arrive (`VAKT_FAULT_PANIC_ON_ALARM`)...
    pub(super) alarm: Vec<String>,
    /// ... when their incident's timer runs (`VAKT_FAULT_PANIC_ON_TIMER`)...
    pub(super) timer: Vec<String>,
    /// ... and when they are replayed from the input log (`VAKT_FAULT_PANIC_ON_REPLAY`).
    pub(super) replay: Vec<String>,
    /// Residents or staff with these ids, when their directory row is applied
    /// (`VAKT_FAULT_PANIC_ON_DIRECTORY`).
    pub(super) directory: Vec<String>,
    /// Web actions of these names (`resolve`, `on_duty`...), when they are applied
    /// (`VAKT_FAULT_PANIC_ON_WEB_ACTION`).
    pub(super) web: Vec<String>,
}

impl Faults {
    pub(super) fn from_env() -> Faults {
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
pub const INCIDENT_SET_ASIDE: &str = "set_aside";

/// The audit trail's outcome of a web action that made the engine fail.
pub const WEB_ACTION_FAILED: &str = "engine_failed";

/// The audit trail's action for a directory row the engine set aside.
pub const DIRECTORY_ROW_SET_ASIDE: &str = "directory_row_set_aside";

/// The audit trail's action (by vakt) for a web action that made the engine fail: the
/// same action (the same input) is refused, not applied, by this version of vakt.
pub const WEB_ACTION_SET_ASIDE: &str = "web_action_set_aside";

/// The audit trail's action (by vakt) for an alarm that made the engine fail: this
/// version of vakt refuses the same alarm (alarm id and resident) if it meets it again.
pub const ALARM_SET_ASIDE: &str = "alarm_set_aside";

/// A step that made the engine panic (a fault in vakt, not in a message's form: the
/// wire's parsers refuse those): what the panic said, and what to put aside so that the
/// restarted engine does not meet it again.
#[derive(Debug)]
pub struct Failure {
    pub why: String,
    pub culprit: Culprit,
}

impl std::fmt::Display for Failure {
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

/// A fault injection's alarm ids, if set (tests only).
fn fault_injected(name: &str) -> Vec<String> {
    std::env::var(name).map(|s| s.split(',').filter(|id| !id.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

impl Driver {
    pub(super) fn fail(&mut self, p: Failure) {
        self.failed = true;
        self.failure = Some(p);
    }

    /// The step that made the engine panic, if one did: the engine must not go on (the
    /// caller stores what [`Driver::set_aside_failure`] makes of it, and ends).
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
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
    pub async fn set_aside_failure(&mut self, ready: &tokio::sync::watch::Sender<bool>) -> Vec<OutMsg> {
        let Some(p) = self.failure.take() else { return Vec::new() };
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
                    self.audit_by_vakt(now, ALARM_SET_ASIDE, None, aside, "ok");
                    self.batch.set_aside.push(set_aside_row(now, "alarm", None, Some((a.to_string(), r.to_string())), &p.why));
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
                self.audit_by_vakt(now, INCIDENT_SET_ASIDE, Some(incident), reason, "ok");
            }
            Culprit::Directory { who, record } => {
                let detail = serde_json::json!({ "who": who, "input": record, "why": p.why }).to_string();
                self.audit_by_vakt(now, DIRECTORY_ROW_SET_ASIDE, None, detail, "ok");
                self.batch.set_aside.push(set_aside_row(now, "directory_row", Some(record), None, &p.why));
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
                self.audit_by_vakt(now, WEB_ACTION_SET_ASIDE, None, aside, "ok");
                self.batch.set_aside.push(set_aside_row(now, "web_action", Some(record), None, &p.why));
            }
        }
        self.commit(ready, false).await
    }
}

/// A row of `set_aside`, by this version of vakt.
fn set_aside_row(now: Timestamp, kind: &'static str, input: Option<String>, alarm: Option<(String, String)>, why: &str) -> SetAsideRow {
    let (alarm_id, resident_id) = alarm.unzip();
    SetAsideRow { at_ms: now.as_millis(), kind, input, alarm_id, resident_id, version: env!("CARGO_PKG_VERSION").to_owned(), why: why.to_owned() }
}
