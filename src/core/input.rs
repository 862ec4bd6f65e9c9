//! What the world tells the engine. The live driver builds these from MQTT and HTTP;
//! the simulator builds them from its agenda. The engine takes every one as it comes:
//! an input that cannot be applied becomes a `Rejected` action with a reason.

use super::alarm::Alarm;
use super::geo::Position;
use super::ids::{CentreId, IncidentId, OperatorId, ResidentId, StaffId};
use super::people::{Resident, Staff};

/// Serializable so the live driver can keep an input log and replay it after a restart
/// (the engine is deterministic: the same inputs at the same times give the same state).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// A device or gateway reports an alarm.
    Alarm(Alarm),
    /// The resident (or their device) cancels: "it was a mistake". Closes their open incident.
    Cancel {
        resident: ResidentId,
    },

    /// A staff member logs in for a shift.
    StaffOnDuty {
        staff: StaffId,
        position: Option<Position>,
    },
    /// A staff member logs out. Their live offers are revoked and passed on.
    StaffOffDuty {
        staff: StaffId,
    },
    StaffPosition {
        staff: StaffId,
        position: Position,
    },
    /// A staff member answers an offer or reports progress on an incident.
    StaffReply {
        staff: StaffId,
        incident: IncidentId,
        reply: StaffReply,
    },

    /// An operator at a centre takes a queued incident (the answer clock stops).
    OperatorAnswer {
        centre: CentreId,
        operator: OperatorId,
        incident: IncidentId,
    },
    /// The operator handled it on the phone ("avklart"); the incident closes.
    OperatorResolve {
        operator: OperatorId,
        incident: IncidentId,
        note: Option<String>,
    },
    /// The operator sends it to home care: the staff ladder starts with its own clock.
    OperatorForward {
        operator: OperatorId,
        incident: IncidentId,
    },
    /// An operator sends the incident to a named staff member (a personal offer, with the
    /// usual expiry), while the staff ladder runs.
    OperatorAssign {
        operator: OperatorId,
        incident: IncidentId,
        staff: StaffId,
    },
    /// An operator escalates now: the staff ladder goes to everyone on duty at once (or
    /// starts a new round of asking everyone, if it already had).
    OperatorEscalate {
        operator: OperatorId,
        incident: IncidentId,
    },
    /// An operator writes a note on an open incident, for the record.
    OperatorNote {
        operator: OperatorId,
        incident: IncidentId,
        note: String,
    },
    /// A note of the driver's own on an open incident, for the record (e.g. the base
    /// unit whose lost connection raised it is back online). Nothing else changes; an
    /// incident no longer open is left alone.
    SystemNote {
        incident: IncidentId,
        note: String,
    },
    /// How many operators a centre has on duty; zero is an outage (queue goes to backup).
    CentreStaffing {
        centre: CentreId,
        operators_on_duty: u32,
    },

    /// The engine stops handling this open incident by itself: its timers go, and no
    /// offer, escalation or alert follows from the engine; people see it flagged and
    /// handle it by hand (offers already out, staff replies and operator actions still
    /// work). A driver gives this when handling the incident's timer made the engine fail
    /// (a fault in vakt): otherwise the same timer would fail it after every restart.
    SetAside {
        incident: IncidentId,
        reason: String,
    },

    /// Registers or updates an alarm user.
    UpsertResident(Resident),
    /// Registers or updates a staff member (roles, team). Duty state is kept.
    UpsertStaff(Staff),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffReply {
    Accept,
    Decline,
    EnRoute,
    OnSite,
    Close { outcome: Outcome, note: Option<String> },
}

/// How an incident ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Help given on site.
    Helped,
    /// Nothing was wrong (a false or accidental alarm).
    FalseAlarm,
    /// Sent on to the ambulance or out-of-hours doctor.
    ReferredToHealthService,
    /// A technical fault fixed or reported.
    TechnicalFixed,
    /// Resolved by a centre's operator on the phone.
    ResolvedByCentre,
    /// The resident cancelled.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Helped => "helped",
            Outcome::FalseAlarm => "false_alarm",
            Outcome::ReferredToHealthService => "referred_to_health_service",
            Outcome::TechnicalFixed => "technical_fixed",
            Outcome::ResolvedByCentre => "resolved_by_centre",
            Outcome::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
