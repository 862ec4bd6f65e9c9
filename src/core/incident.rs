//! An incident: one resident's open need for help, from the first alarm until it closes.

use std::collections::{BTreeMap, BTreeSet};

use super::alarm::{AlarmKind, Priority};
use super::config::ResponseModel;
use super::geo::Position;
use super::ids::{IncidentId, OperatorId, ResidentId};
use super::people::Roles;
use super::time::Timestamp;

/// Where an incident stands. Before `Accepted`/`WithOperator` nobody has it, and the
/// engine guarantees it a next step and a timer (unless it was set aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stage {
    /// Nobody has answered: queued at a centre and/or offered to staff.
    AwaitingAnswer,
    /// An operator has it on the line.
    WithOperator,
    /// Answered by an operator and forwarded to home care; offered to staff.
    AwaitingStaff,
    Accepted,
    EnRoute,
    OnSite,
}

impl Stage {
    /// Its stable code, as the API and the pages name it (docs/api.md).
    pub fn code(self) -> &'static str {
        match self {
            Stage::AwaitingAnswer => "awaiting_answer",
            Stage::WithOperator => "with_operator",
            Stage::AwaitingStaff => "awaiting_staff",
            Stage::Accepted => "accepted",
            Stage::EnRoute => "en_route",
            Stage::OnSite => "on_site",
        }
    }

    /// In words, for refusals and logs ("not possible while the incident is awaiting answer").
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::AwaitingAnswer => "awaiting answer",
            Stage::WithOperator => "with an operator",
            Stage::AwaitingStaff => "awaiting staff",
            Stage::Accepted => "accepted",
            Stage::EnRoute => "en route",
            Stage::OnSite => "on site",
        }
    }
    /// Nobody has it yet: the engine must keep a timer running.
    pub fn needs_a_human(self) -> bool {
        matches!(self, Stage::AwaitingAnswer | Stage::AwaitingStaff)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Incident {
    pub id: IncidentId,
    pub resident: ResidentId,
    pub muni: usize,
    pub model: ResponseModel,
    pub kind: AlarmKind,
    pub priority: Priority,
    pub required_roles: Roles,
    /// Where help must go: the alarm's own position, or the resident's home.
    pub position: Position,
    pub received_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub stage: Stage,
    pub queue: Option<Queue>,
    pub dispatch: Option<Dispatch>,
    /// The staff member who accepted it.
    pub assigned: Option<usize>,
    /// The operator who answered it.
    pub operator: Option<OperatorId>,
    /// Next alert to operations while nobody has it.
    pub alert_at: Option<Timestamp>,
    /// Operations have been alerted about it at least once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alerted: bool,
    /// The timer currently registered for this incident.
    pub deadline: Option<Timestamp>,
    /// Set when it closed: the engine drops it.
    pub closed: bool,
    /// Its automatic handling stopped (a fault in vakt met it, see `Input::SetAside`):
    /// no timers, offers or escalations from the engine; people handle it by hand.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub set_aside: bool,
}

/// Waiting in a centre's operator queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Queue {
    pub centre: usize,
    pub since: Timestamp,
    /// Centres it has been queued at (never go back: no ping-pong between backups).
    pub visited: Vec<usize>,
    /// The municipality's own backup was already called on from this queue.
    pub municipal_backup_used: bool,
}

/// The staff ladder in progress.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Dispatch {
    pub started_at: Timestamp,
    /// True: this ladder answers the alarm (mobile guard room, or a centre's team
    /// fallback). False: an operator answered and forwarded (the dispatch clock).
    pub answering: bool,
    /// Teams (municipality indices) whose staff may be offered it.
    pub pool: Vec<usize>,
    /// Live offers: staff index → expiry (`None` for broadcast offers).
    pub live: BTreeMap<usize, Option<Timestamp>>,
    /// Everyone ever offered it personally or by broadcast.
    pub tried: BTreeSet<usize>,
    /// Declined during the broadcast: not offered again by this ladder.
    pub declined_broadcast: BTreeSet<usize>,
    pub personal_offers: u32,
    pub broadcast: bool,
    /// The backup step is behind us (or there is none).
    pub backup_done: bool,
    /// With nobody to offer to: look again at this time.
    pub retry_at: Option<Timestamp>,
    /// When the current broadcast round began. Staff who declined the broadcast are
    /// asked again in the next round (`alert_repeat` later), so a team that said no
    /// once is not shut out of the incident for good.
    pub round_started: Option<Timestamp>,
}
