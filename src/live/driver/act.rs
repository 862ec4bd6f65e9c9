//! The web side's requests: an operator's action, a staff member's reply or duty
//! change (the same core inputs as MQTT), checked for what only the web side knows,
//! applied and audited; and reads between steps.

use tracing::warn;

use super::{Culprit, Driver, Failure, refusal, staff_audit};
use crate::core::{IncidentId, Input, StaffId};
use crate::live::accounts::{Role, User};
use crate::live::errors::ErrorCode;
use crate::live::outbound;
use crate::live::panic_text;
use crate::live::store::AuditRow;
use crate::live::wire;

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
    /// An operator (or admin) has seen to a refused alarm on the dashboards' list, known
    /// by its reject's `at` and `topic`: it leaves the list (see `acknowledge_refused`).
    AcknowledgeRefused { at: String, topic: String },
    /// An operator (or admin) has seen to a gateway being offline: it leaves the list
    /// until its status changes.
    AcknowledgeGateway { municipality: crate::core::MunicipalityId, gateway: crate::core::GatewayId },
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
    Refused { code: ErrorCode, detail: String },
}

/// The audit trail's action for a refused alarm taken off the dashboards' list.
pub const REFUSED_ACKNOWLEDGED: &str = "refused_acknowledged";

/// An operator's note is held to what a staff member's is on the wire
/// ([`wire::MAX_NOTE_CHARS`]): it goes into the log, the incident's events and every
/// dashboard's live feed.
fn note_fits(note: &str) -> Result<(), (ErrorCode, String)> {
    let n = note.chars().count();
    if n > wire::MAX_NOTE_CHARS {
        return Err((ErrorCode::NoteTooLong, format!("a note has at most {} characters; this one has {n}", wire::MAX_NOTE_CHARS)));
    }
    if let Some(why) = crate::core::text::refused(note, true) {
        return Err((ErrorCode::NoteUnreadable, format!("the note {why}")));
    }
    Ok(())
}

impl Driver {
    /// Applies a web action (after the checks only the engine can make) and notes it in
    /// the audit trail. Answered after the next commit.
    pub fn act(&mut self, act: WebAct) -> ActOutcome {
        let now = self.now();
        self.fire_due(now);
        if self.failed {
            return ActOutcome::Refused { code: ErrorCode::EngineUnavailable, detail: "the engine met a fault and starts again; try again in a moment".into() };
        }
        let WebAct { who, what } = act;
        let (name, incident, detail, input) = match what {
            WebAction::AcknowledgeRefused { at, topic } => return self.acknowledge_refused(now, who, &at, &topic),
            WebAction::AcknowledgeGateway { municipality, gateway } => return self.acknowledge_gateway(now, who, municipality, gateway),
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
                if self.set_aside.web_actions.contains(&record) {
                    warn!(action = name, username = %who.username, "a web action that made the engine fail before is refused, not applied again");
                    break 'applied ActOutcome::Refused {
                        code: ErrorCode::ActionSetAside,
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
                    self.fail(Failure { why: panic_text(&*panic), culprit });
                    return ActOutcome::Refused {
                        code: ErrorCode::EngineUnavailable,
                        detail: "this action made the engine fail (a fault in vakt) and was not applied; vakt starts again".into(),
                    };
                }
                match refusal(&actions) {
                    Some(reason) => ActOutcome::Refused { code: ErrorCode::from(reason), detail: reason.to_string() },
                    None => ActOutcome::Done { events: self.batch.events[first_event..].iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect() },
                }
            }
        };
        // Refusals before the engine (scope, unknown incident) are audited too; nothing
        // else about them is stored.
        self.audit_act(now, &who, name, incident, detail, &outcome);
        outcome
    }

    /// Takes the refused alarms listed with this `at` and `topic` off the dashboards'
    /// list, for an operator or admin who sees them; audited (`refused_acknowledged`,
    /// its detail the reject), which a start reads back so that they stay off.
    fn acknowledge_refused(&mut self, now: crate::core::Timestamp, who: User, at: &str, topic: &str) -> ActOutcome {
        let config = self.engine.config();
        let sees = |m: &str| crate::live::accounts::sees_refused(config, &who, m);
        // The detail: the reject taken off the list (a start reads it back), or what was asked.
        let (outcome, detail) = if !matches!(who.role, Role::Operator | Role::Admin) {
            let detail = format!("a {} does not acknowledge refused alarms", who.role.as_str());
            (ActOutcome::Refused { code: ErrorCode::Forbidden, detail }, serde_json::json!({ "at": at, "topic": topic }).to_string())
        } else {
            let (taken, kept): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.refused_alarms).into_iter().partition(|r| outbound::refused_key(&r.message) == (at, topic) && sees(&r.municipality));
            self.refused_alarms = kept.into();
            match taken.first() {
                Some(r) => (ActOutcome::Done { events: Vec::new() }, r.message.to_string()),
                None => {
                    let detail = format!("no refused alarm of {at} on {topic} is on your list (acknowledged already?)");
                    (ActOutcome::Refused { code: ErrorCode::NotFound, detail }, serde_json::json!({ "at": at, "topic": topic }).to_string())
                }
            }
        };
        self.audit_act(now, &who, REFUSED_ACKNOWLEDGED, None, detail, &outcome);
        outcome
    }

    /// Takes an offline gateway off the dashboards' list until its status changes, for
    /// an operator or admin of its municipality; audited (`gateway_acknowledged`).
    fn acknowledge_gateway(
        &mut self,
        now: crate::core::Timestamp,
        who: User,
        municipality: crate::core::MunicipalityId,
        gateway: crate::core::GatewayId,
    ) -> ActOutcome {
        let config = self.engine.config();
        let outcome = if !matches!(who.role, Role::Operator | Role::Admin) {
            ActOutcome::Refused { code: ErrorCode::Forbidden, detail: format!("a {} does not acknowledge gateways", who.role.as_str()) }
        } else if !crate::live::accounts::may_see_id(config, &who, &municipality) || !self.gateways.acknowledge(&municipality, &gateway) {
            ActOutcome::Refused {
                code: ErrorCode::NotFound,
                detail: format!("no gateway {gateway} of {municipality} is offline on your list (acknowledged already?)"),
            }
        } else {
            ActOutcome::Done { events: Vec::new() }
        };
        self.audit_act(now, &who, "gateway_acknowledged", None, format!("{municipality}/{gateway}"), &outcome);
        outcome
    }

    /// A web action's audit line, stored with the batch: `ok`, or its refusal's code.
    fn audit_act(&mut self, now: crate::core::Timestamp, who: &User, action: &str, incident: Option<IncidentId>, detail: String, outcome: &ActOutcome) {
        let outcome = match outcome {
            ActOutcome::Done { .. } => "ok",
            ActOutcome::Refused { code, .. } => code.as_str(),
        };
        self.batch.audit.push(AuditRow {
            at_ms: now.as_millis(),
            username: who.username.clone(),
            role: who.role.as_str(),
            action: action.to_owned(),
            incident: incident.map(|i| i.0 as i64),
            detail,
            outcome: outcome.to_owned(),
        });
    }

    pub(super) fn operator_input(&self, who: &User, incident: IncidentId, act: OperatorAct) -> Result<Input, ActOutcome> {
        let refused = |code: ErrorCode, detail: String| ActOutcome::Refused { code, detail };
        let view = self.engine.incident(incident).ok_or_else(|| refused(ErrorCode::UnknownIncident, format!("no open incident {}", incident.0)))?;
        if !matches!(who.role, Role::Operator | Role::Admin) {
            return Err(refused(ErrorCode::Forbidden, format!("a {} does not act on incidents", who.role.as_str())));
        }
        if !self.in_scope(who, view.municipality) {
            let m = &self.engine.config().municipalities[view.municipality].id;
            return Err(refused(ErrorCode::NotYourCentre, format!("incident {} is in {m}, which your centre does not answer for", incident.0)));
        }
        let operator = crate::core::OperatorId::parse(&who.username).map_err(|e| refused(ErrorCode::BadUser, e.to_string()))?;
        Ok(match act {
            OperatorAct::Answer {} => {
                // The centre it is queued at (an admin answers for that centre); an
                // operator answers for their own, and the engine refuses if it is elsewhere.
                let centre = match (&who.centre, view.queued_at) {
                    (Some(c), _) => c.clone(),
                    (None, Some(c)) => c,
                    (None, None) => return Err(refused(ErrorCode::WrongState, format!("incident {} is not queued at a centre", incident.0))),
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
                    return Err(refused(ErrorCode::EmptyNote, "a note has some text".into()));
                }
                note_fits(&note).map_err(|(code, d)| refused(code, d))?;
                Input::OperatorNote { operator, incident, note }
            }
        })
    }
}
