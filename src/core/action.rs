//! What the engine wants done, as values. Every transition of an incident is one
//! action with its time; the drivers apply them (MQTT publish, store, dashboard) and
//! the KPI collector counts them, so live and simulated runs report alike.

use std::time::Duration;

use super::alarm::{AlarmKind, Priority};
use super::config::{Backup, ResponseModel};
use super::ids::{AlarmId, CentreId, IncidentId, MunicipalityId, OperatorId, ResidentId, StaffId};
use super::input::Outcome;
use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A new incident for a new alarm. The answer clock starts at `at`.
    Raised {
        at: Timestamp,
        incident: IncidentId,
        alarm: AlarmId,
        resident: ResidentId,
        municipality: MunicipalityId,
        model: ResponseModel,
        kind: AlarmKind,
        priority: Priority,
    },
    /// Another alarm from a resident whose incident is still open: joined to it.
    Attached {
        at: Timestamp,
        incident: IncidentId,
        alarm: AlarmId,
        priority_raised_to: Option<Priority>,
    },
    /// The same alarm id again (a redelivery): nothing else happens.
    DuplicateIgnored {
        at: Timestamp,
        alarm: AlarmId,
    },

    /// Queued for the operators of a centre.
    Queued {
        at: Timestamp,
        incident: IncidentId,
        centre: CentreId,
    },
    /// Taken out of a centre's queue (answered, moved on, cancelled...).
    Dequeued {
        at: Timestamp,
        incident: IncidentId,
        centre: CentreId,
    },
    /// Offered to a staff member. `expires_at: None` in the broadcast stage (no expiry).
    Offered {
        at: Timestamp,
        incident: IncidentId,
        staff: StaffId,
        eta: Duration,
        expires_at: Option<Timestamp>,
    },
    /// An offer withdrawn: the app must stop showing it.
    Revoked {
        at: Timestamp,
        incident: IncidentId,
        staff: StaffId,
        reason: RevokeReason,
    },
    /// The ladder moved to offering to everyone on duty.
    Broadcast {
        at: Timestamp,
        incident: IncidentId,
    },
    /// Forwarded to the backup (a centre's queue or another team).
    ForwardedToBackup {
        at: Timestamp,
        incident: IncidentId,
        backup: Backup,
    },
    /// Nobody has it yet and the configured time has passed: operations must know.
    Alert {
        at: Timestamp,
        incident: IncidentId,
        kind: AlertKind,
        waiting: Duration,
    },

    /// An operator sent it to a named staff member (the offer follows).
    AssignedByOperator {
        at: Timestamp,
        incident: IncidentId,
        operator: OperatorId,
        staff: StaffId,
    },
    /// An operator escalated it to everyone on duty (the broadcast follows).
    EscalatedByOperator {
        at: Timestamp,
        incident: IncidentId,
        operator: OperatorId,
    },
    /// A note on the incident, for the record.
    NoteAdded {
        at: Timestamp,
        incident: IncidentId,
        by: Actor,
        note: String,
    },
    /// The engine stopped handling it by itself (see `Input::SetAside`): people must.
    SetAside {
        at: Timestamp,
        incident: IncidentId,
        reason: String,
    },

    /// A human has it: the answer clock stops. `answer_time` counts from arrival.
    Answered {
        at: Timestamp,
        incident: IncidentId,
        by: Responder,
        answer_time: Duration,
    },
    /// The operator resolved it on the phone.
    ResolvedByCentre {
        at: Timestamp,
        incident: IncidentId,
        operator: OperatorId,
    },
    /// The operator sent it to home care; the staff ladder starts now.
    ForwardedToHomeCare {
        at: Timestamp,
        incident: IncidentId,
        operator: OperatorId,
    },
    /// A staff member took it. `since_dispatch` counts from the start of the staff ladder.
    Accepted {
        at: Timestamp,
        incident: IncidentId,
        staff: StaffId,
        since_dispatch: Duration,
    },
    EnRoute {
        at: Timestamp,
        incident: IncidentId,
        staff: StaffId,
    },
    /// `since_raised` counts from the alarm's arrival (the second clock, utrykning).
    OnSite {
        at: Timestamp,
        incident: IncidentId,
        staff: StaffId,
        since_raised: Duration,
    },
    /// `note`: what the staff member or operator wrote when closing, for the record.
    Closed {
        at: Timestamp,
        incident: IncidentId,
        outcome: Outcome,
        note: Option<String>,
    },

    /// An input that could not be applied, with the reason. Nothing changed.
    Rejected {
        at: Timestamp,
        by: Option<Actor>,
        incident: Option<IncidentId>,
        reason: RejectReason,
    },
}

impl Action {
    pub fn at(&self) -> Timestamp {
        match self {
            Action::Raised { at, .. }
            | Action::Attached { at, .. }
            | Action::DuplicateIgnored { at, .. }
            | Action::Queued { at, .. }
            | Action::Dequeued { at, .. }
            | Action::Offered { at, .. }
            | Action::Revoked { at, .. }
            | Action::Broadcast { at, .. }
            | Action::ForwardedToBackup { at, .. }
            | Action::Alert { at, .. }
            | Action::AssignedByOperator { at, .. }
            | Action::EscalatedByOperator { at, .. }
            | Action::NoteAdded { at, .. }
            | Action::SetAside { at, .. }
            | Action::Answered { at, .. }
            | Action::ResolvedByCentre { at, .. }
            | Action::ForwardedToHomeCare { at, .. }
            | Action::Accepted { at, .. }
            | Action::EnRoute { at, .. }
            | Action::OnSite { at, .. }
            | Action::Closed { at, .. }
            | Action::Rejected { at, .. } => *at,
        }
    }

    pub fn incident(&self) -> Option<IncidentId> {
        match self {
            Action::Raised { incident, .. }
            | Action::Attached { incident, .. }
            | Action::Queued { incident, .. }
            | Action::Dequeued { incident, .. }
            | Action::Offered { incident, .. }
            | Action::Revoked { incident, .. }
            | Action::Broadcast { incident, .. }
            | Action::ForwardedToBackup { incident, .. }
            | Action::Alert { incident, .. }
            | Action::AssignedByOperator { incident, .. }
            | Action::EscalatedByOperator { incident, .. }
            | Action::NoteAdded { incident, .. }
            | Action::SetAside { incident, .. }
            | Action::Answered { incident, .. }
            | Action::ResolvedByCentre { incident, .. }
            | Action::ForwardedToHomeCare { incident, .. }
            | Action::Accepted { incident, .. }
            | Action::EnRoute { incident, .. }
            | Action::OnSite { incident, .. }
            | Action::Closed { incident, .. } => Some(*incident),
            Action::Rejected { incident, .. } => *incident,
            Action::DuplicateIgnored { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevokeReason {
    Declined,
    Expired,
    /// Another staff member accepted first.
    TakenByOther,
    /// An operator answered it (the backup centre of a mobile guard room).
    AnsweredByOperator,
    Cancelled,
    StaffOffDuty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// Nobody has answered it (answer clock).
    Unanswered,
    /// Forwarded to home care and nobody has accepted it (dispatch clock).
    NotAccepted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Responder {
    Staff(StaffId),
    Operator { centre: CentreId, operator: OperatorId },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Staff(StaffId),
    Operator(OperatorId),
    Resident(ResidentId),
    Device(AlarmId),
    Centre(CentreId),
    /// vakt itself (`Input::SystemNote`).
    System,
}

/// Why an input was refused. Expected outcomes, not errors: the sender gets told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    UnknownResident,
    UnknownStaff,
    UnknownCentre,
    UnknownMunicipality,
    /// The alarm's municipality is not the resident's.
    WrongMunicipality {
        resident_belongs_to: MunicipalityId,
    },
    /// No open incident with that id (never existed, or already closed).
    UnknownIncident,
    /// Somebody else accepted it first.
    AlreadyTaken,
    /// The staff member was never offered it, or the offer was withdrawn.
    NotOffered,
    /// The staff member is not the one who accepted it.
    NotAssigned,
    /// The reply does not fit the incident's state (e.g. on site before accepting).
    WrongState {
        state: &'static str,
    },
    /// The incident is not queued at this operator's centre.
    NotAtThisCentre,
    /// The staff member must be on duty for this.
    OffDuty,
    /// The resident has no open incident to cancel.
    NothingToCancel,
    /// An operator assigned an incident to a staff member who is neither of the
    /// incident's municipality nor of its backup team.
    NotInScope,
}

impl RejectReason {
    /// A stable code for machines (the rejects topic, metric labels, app translations).
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::UnknownResident => "unknown_resident",
            RejectReason::UnknownStaff => "unknown_staff",
            RejectReason::UnknownCentre => "unknown_centre",
            RejectReason::UnknownMunicipality => "unknown_municipality",
            RejectReason::WrongMunicipality { .. } => "wrong_municipality",
            RejectReason::UnknownIncident => "unknown_incident",
            RejectReason::AlreadyTaken => "already_taken",
            RejectReason::NotOffered => "not_offered",
            RejectReason::NotAssigned => "not_assigned",
            RejectReason::WrongState { .. } => "wrong_state",
            RejectReason::NotAtThisCentre => "not_at_this_centre",
            RejectReason::OffDuty => "off_duty",
            RejectReason::NothingToCancel => "nothing_to_cancel",
            RejectReason::NotInScope => "not_in_scope",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::UnknownResident => f.write_str("unknown resident"),
            RejectReason::UnknownStaff => f.write_str("unknown staff member"),
            RejectReason::UnknownCentre => f.write_str("unknown response centre"),
            RejectReason::UnknownMunicipality => f.write_str("unknown municipality"),
            RejectReason::WrongMunicipality { resident_belongs_to } => write!(f, "the resident belongs to {resident_belongs_to}"),
            RejectReason::UnknownIncident => f.write_str("no open incident with that id"),
            RejectReason::AlreadyTaken => f.write_str("already taken by someone else"),
            RejectReason::NotOffered => f.write_str("this incident is not offered to you"),
            RejectReason::NotAssigned => f.write_str("this incident is assigned to someone else"),
            RejectReason::WrongState { state } => write!(f, "not possible while the incident is {state}"),
            RejectReason::NotAtThisCentre => f.write_str("the incident is not queued at this centre"),
            RejectReason::OffDuty => f.write_str("log in (go on duty) first"),
            RejectReason::NothingToCancel => f.write_str("no open incident to cancel"),
            RejectReason::NotInScope => f.write_str("the staff member is neither of the incident's municipality nor of its backup team"),
        }
    }
}

fn secs(d: &Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl std::fmt::Display for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Responder::Staff(s) => write!(f, "staff {s}"),
            Responder::Operator { centre, operator } => write!(f, "operator {operator} at {centre}"),
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Staff(s) => write!(f, "staff {s}"),
            Actor::Operator(o) => write!(f, "operator {o}"),
            Actor::Resident(r) => write!(f, "resident {r}"),
            Actor::Device(a) => write!(f, "alarm {a}"),
            Actor::Centre(c) => write!(f, "centre {c}"),
            Actor::System => f.write_str("vakt"),
        }
    }
}

/// One line, without the time (the caller knows its clock): for logs, traces and the demo.
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Raised { incident, alarm, resident, municipality, model, kind, priority, .. } => {
                write!(f, "{incident} raised: alarm {alarm} ({kind}, {priority}) from {resident} in {municipality} under {model}")
            }
            Action::Attached { incident, alarm, priority_raised_to, .. } => match priority_raised_to {
                Some(p) => write!(f, "{incident} attached alarm {alarm}, priority raised to {p}"),
                None => write!(f, "{incident} attached alarm {alarm}"),
            },
            Action::DuplicateIgnored { alarm, .. } => write!(f, "duplicate alarm {alarm} ignored"),
            Action::Queued { incident, centre, .. } => write!(f, "{incident} queued at {centre}"),
            Action::Dequeued { incident, centre, .. } => write!(f, "{incident} left the queue at {centre}"),
            Action::Offered { at, incident, staff, eta, expires_at } => match expires_at {
                Some(e) => write!(f, "{incident} offered to {staff} (eta {}, expires in {})", secs(eta), secs(&e.since(*at))),
                None => write!(f, "{incident} offered to {staff} (eta {}, broadcast)", secs(eta)),
            },
            Action::Revoked { incident, staff, reason, .. } => write!(f, "{incident} revoked from {staff}: {reason:?}"),
            Action::Broadcast { incident, .. } => write!(f, "{incident} escalated: offered to everyone on duty"),
            Action::ForwardedToBackup { incident, backup, .. } => match backup {
                super::config::Backup::Centre(c) => write!(f, "{incident} forwarded to backup centre {c}"),
                super::config::Backup::Team(t) => write!(f, "{incident} forwarded to backup team {t}"),
            },
            Action::Alert { incident, kind, waiting, .. } => write!(f, "{incident} ALERT {kind:?}: waiting {}", secs(waiting)),
            Action::AssignedByOperator { incident, operator, staff, .. } => write!(f, "{incident} assigned to {staff} by operator {operator}"),
            Action::EscalatedByOperator { incident, operator, .. } => write!(f, "{incident} escalated by operator {operator}"),
            Action::NoteAdded { incident, by, note, .. } => write!(f, "{incident} note from {by}: {note:?}"),
            Action::SetAside { incident, reason, .. } => write!(f, "{incident} SET ASIDE, to be handled by hand: {reason}"),
            Action::Answered { incident, by, answer_time, .. } => write!(f, "{incident} answered by {by} after {}", secs(answer_time)),
            Action::ResolvedByCentre { incident, operator, .. } => write!(f, "{incident} resolved by operator {operator}"),
            Action::ForwardedToHomeCare { incident, operator, .. } => write!(f, "{incident} forwarded to home care by operator {operator}"),
            Action::Accepted { incident, staff, since_dispatch, .. } => write!(f, "{incident} accepted by {staff} ({} after dispatch)", secs(since_dispatch)),
            Action::EnRoute { incident, staff, .. } => write!(f, "{incident} {staff} en route"),
            Action::OnSite { incident, staff, since_raised, .. } => write!(f, "{incident} {staff} on site ({} after the alarm)", secs(since_raised)),
            Action::Closed { incident, outcome, note, .. } => match note {
                Some(n) => write!(f, "{incident} closed: {outcome} ({n:?})"),
                None => write!(f, "{incident} closed: {outcome}"),
            },
            Action::Rejected { by, incident, reason, .. } => {
                let by = by.as_ref().map_or(String::new(), |b| format!(" from {b}"));
                let inc = incident.map_or(String::new(), |i| format!(" about {i}"));
                write!(f, "rejected input{by}{inc}: {reason}")
            }
        }
    }
}
