//! Read-only views of the engine's state, for drivers, dashboards and tests: what an
//! open incident or a staff member looks like from outside, by id rather than by the
//! engine's own indices.

use super::alarm::{AlarmKind, Priority};
use super::engine::Engine;
use super::geo::Position;
use super::ids::{CentreId, IncidentId, ResidentId, StaffId};
use super::incident::{Incident, Stage};
use super::people::Staff;
use super::time::Timestamp;

/// A read-only view of an open incident, for drivers, dashboards and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentView {
    pub id: IncidentId,
    pub resident: ResidentId,
    pub municipality: usize,
    pub kind: AlarmKind,
    pub priority: Priority,
    pub stage: Stage,
    pub received_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub queued_at: Option<CentreId>,
    pub live_offers: Vec<StaffId>,
    pub assigned: Option<StaffId>,
    pub next_deadline: Option<Timestamp>,
    /// The engine no longer handles it by itself (see `Input::SetAside`).
    pub set_aside: bool,
    /// Its staff ladder has widened to everyone on duty.
    pub broadcast: bool,
    /// Operations have been alerted about it.
    pub alerted: bool,
}

/// A read-only view of a registered staff member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaffView<'a> {
    pub info: &'a Staff,
    pub on_duty: bool,
    /// Where they last were (on duty, or as last known).
    pub position: Option<Position>,
    /// Incidents they have accepted and not yet closed.
    pub busy: u32,
}

impl Engine {
    pub fn incident(&self, id: IncidentId) -> Option<IncidentView> {
        self.incidents.get(&id).map(|inc| self.view(inc))
    }

    pub fn open_incidents(&self) -> impl Iterator<Item = IncidentView> + '_ {
        self.incidents.values().map(|inc| self.view(inc))
    }

    fn view(&self, inc: &Incident) -> IncidentView {
        IncidentView {
            id: inc.id,
            resident: inc.resident.clone(),
            municipality: inc.muni,
            kind: inc.kind,
            priority: inc.priority,
            stage: inc.stage,
            received_at: inc.received_at,
            answered_at: inc.answered_at,
            queued_at: inc.queue.as_ref().map(|q| self.config.centres[q.centre].id.clone()),
            live_offers: inc.dispatch.iter().flat_map(|d| d.live.keys()).map(|&s| self.staff[s].info.id.clone()).collect(),
            assigned: inc.assigned.map(|s| self.staff[s].info.id.clone()),
            next_deadline: inc.deadline,
            set_aside: inc.set_aside,
            broadcast: inc.dispatch.as_ref().is_some_and(|d| d.broadcast),
            alerted: inc.alerted,
        }
    }

    /// Every registered staff member, in the order they were registered.
    pub fn staff(&self) -> impl Iterator<Item = StaffView<'_>> {
        self.staff.iter().map(|s| StaffView { info: &s.info, on_duty: s.on_duty, position: s.position, busy: s.busy })
    }

    /// One staff member, by id.
    pub fn staff_view(&self, id: &StaffId) -> Option<StaffView<'_>> {
        let s = &self.staff[*self.staff_index.get(id)?];
        Some(StaffView { info: &s.info, on_duty: s.on_duty, position: s.position, busy: s.busy })
    }
}
