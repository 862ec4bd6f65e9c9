//! The engine: one pure state machine for all four response models.
//!
//! Shape (after quinn-proto): `handle_input` and `handle_timeout` take the time as an
//! argument, `poll_timeout` says when to call again, `poll_action` hands out what must
//! be done. No I/O, no clock, no randomness: the same inputs at the same times give
//! the same actions, live or simulated.
//!
//! Incident bookkeeping is here; the staff ladder is in `ladder.rs` and the centre
//! queue in `centre_queue.rs` (both `impl Engine` blocks on the same state).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rstar::RTree;
use rustc_hash::FxHashMap;

use super::action::{Action, Actor, AlertKind, RejectReason, Responder, RevokeReason};
use super::alarm::Alarm;
use super::config::{Backup, EngineConfig};
use super::geo::Position;
use super::ids::{AlarmId, CentreId, IncidentId, OperatorId, ResidentId, StaffId};
use super::incident::{Incident, Stage};
use super::input::{Input, Outcome, StaffReply};
use super::people::{Resident, Staff};
use super::routing::{StaffPoint, Team, point};
use super::time::Timestamp;

/// An alarm as the dedupe window knows it: its id and the resident it came for. Gateways
/// number their alarms independently (a SIA receiver's 0001–9999, a device's counter
/// after a restart), so the same id for another resident is another alarm, never a
/// redelivery. `None` only in entries restored from a snapshot taken before the
/// resident was part of the key: those still match by id until they leave the window.
pub(crate) type SeenKey = (AlarmId, Option<ResidentId>);

#[derive(Debug)]
pub(crate) struct StaffState {
    pub info: Staff,
    pub team: usize,
    pub on_duty: bool,
    pub position: Option<Position>,
    /// The point in the team's tree while on duty.
    pub point: Option<StaffPoint>,
    /// Incidents accepted and not yet closed.
    pub busy: u32,
    /// Incidents this staff member holds a live offer for.
    pub live_offers: Vec<IncidentId>,
}

impl StaffState {
    /// Registered, off duty, idle.
    pub(crate) fn new(info: Staff, team: usize, position: Option<Position>) -> StaffState {
        StaffState { info, team, on_duty: false, position, point: None, busy: 0, live_offers: Vec::new() }
    }
}

#[derive(Debug)]
pub(crate) struct CentreState {
    pub operators_on_duty: u32,
}

pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) residents: FxHashMap<ResidentId, Resident>,
    pub(crate) staff: Vec<StaffState>,
    pub(crate) staff_index: FxHashMap<StaffId, usize>,
    pub(crate) teams: Vec<Team>,
    pub(crate) centres: Vec<CentreState>,
    /// Boxed: `with_incident` takes an incident out and puts it back on every step, and
    /// a B-tree shifts its values inline: unboxed, moving whole incidents about dominated
    /// a simulation's time.
    pub(crate) incidents: BTreeMap<IncidentId, Box<Incident>>,
    /// B-trees, not hash maps: these grow with every alarm, and a hash map that doubles
    /// its table rehashes every entry at once, a pause for everything behind it; a B-tree
    /// grows a node at a time.
    pub(crate) open_by_resident: BTreeMap<ResidentId, IncidentId>,
    /// Alarms in the dedupe window, by alarm id and resident: when last seen.
    pub(crate) seen_alarms: BTreeMap<SeenKey, Timestamp>,
    pub(crate) seen_order: VecDeque<(Timestamp, SeenKey)>,
    pub(crate) timers: BTreeSet<(Timestamp, IncidentId)>,
    pub(crate) next_incident: u64,
    pub(crate) actions: VecDeque<Action>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        let teams = config.municipalities.iter().map(|_| Team { on_duty: RTree::new() }).collect();
        let centres = config.centres.iter().map(|c| CentreState { operators_on_duty: c.operators_on_duty }).collect();
        Self {
            config,
            residents: FxHashMap::default(),
            staff: Vec::new(),
            staff_index: FxHashMap::default(),
            teams,
            centres,
            incidents: BTreeMap::new(),
            open_by_resident: BTreeMap::new(),
            seen_alarms: BTreeMap::new(),
            seen_order: VecDeque::new(),
            timers: BTreeSet::new(),
            next_incident: 1,
            actions: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Continue numbering incidents after `last` (a driver restoring from its store).
    pub fn set_next_incident_id(&mut self, next: u64) {
        self.next_incident = self.next_incident.max(next);
    }

    // ---- The sans-IO interface -------------------------------------------------

    pub fn handle_input(&mut self, now: Timestamp, input: Input) {
        match input {
            Input::Alarm(alarm) => self.on_alarm(now, alarm),
            Input::Cancel { resident } => self.on_cancel(now, resident),
            Input::StaffOnDuty { staff, position } => self.on_staff_on_duty(now, staff, position),
            Input::StaffOffDuty { staff } => self.on_staff_off_duty(now, staff),
            Input::StaffPosition { staff, position } => self.on_staff_position(now, staff, position),
            Input::StaffReply { staff, incident, reply } => self.on_staff_reply(now, staff, incident, reply),
            Input::OperatorAnswer { centre, operator, incident } => self.on_operator_answer(now, centre, operator, incident),
            Input::OperatorResolve { operator, incident, note } => self.on_operator_resolve(now, operator, incident, note),
            Input::OperatorForward { operator, incident } => self.on_operator_forward(now, operator, incident),
            Input::OperatorAssign { operator, incident, staff } => self.on_operator_assign(now, operator, incident, staff),
            Input::OperatorEscalate { operator, incident } => self.on_operator_escalate(now, operator, incident),
            Input::OperatorNote { operator, incident, note } => self.on_operator_note(now, operator, incident, note),
            Input::SystemNote { incident, note } => self.on_system_note(now, incident, note),
            Input::CentreStaffing { centre, operators_on_duty } => self.on_centre_staffing(now, centre, operators_on_duty),
            Input::SetAside { incident, reason } => self.on_set_aside(now, incident, reason),
            Input::UpsertResident(r) => self.on_upsert_resident(now, r),
            Input::UpsertStaff(s) => self.on_upsert_staff(now, s),
        }
    }

    /// Runs every step that is due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while self.handle_next_timeout(now).is_some() {}
    }

    /// Runs the first timer due at `now`, if there is one, and returns its incident
    /// (`handle_timeout` is this until nothing is due; a driver that wants to know which
    /// incident's step failed calls it one at a time).
    pub fn handle_next_timeout(&mut self, now: Timestamp) -> Option<IncidentId> {
        let (at, id) = self.next_timer()?;
        if at > now {
            return None;
        }
        self.timers.pop_first();
        self.with_incident(id, |engine, inc| {
            inc.deadline = None;
            engine.advance(inc, now);
        });
        Some(id)
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_timer().map(|(at, _)| at)
    }

    /// The first timer: when, and for which incident.
    pub fn next_timer(&self) -> Option<(Timestamp, IncidentId)> {
        self.timers.first().copied()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    // ---- Queries -------------------------------------------------------------------

    pub fn open_incident_count(&self) -> usize {
        self.incidents.len()
    }

    pub fn on_duty_count(&self) -> usize {
        self.teams.iter().map(Team::on_duty_count).sum()
    }

    /// The resident's open incident, if they have one.
    pub fn open_incident_of(&self, resident: &ResidentId) -> Option<IncidentId> {
        self.open_by_resident.get(resident).copied()
    }

    /// A registered resident, as last upserted.
    pub fn resident(&self, id: &ResidentId) -> Option<&Resident> {
        self.residents.get(id)
    }

    /// A registered staff member, as last upserted.
    pub fn staff_member(&self, id: &StaffId) -> Option<&Staff> {
        self.staff_index.get(id).map(|&i| &self.staff[i].info)
    }

    /// The ids of every registered resident and staff member (for a driver diffing its directory).
    pub fn resident_ids(&self) -> impl Iterator<Item = &ResidentId> {
        self.residents.keys()
    }

    /// Checks what must always hold; for tests and debug builds of drivers.
    /// Returns the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        for inc in self.incidents.values() {
            if inc.stage.needs_a_human() && !inc.set_aside {
                let Some(deadline) = inc.deadline else {
                    return Err(format!("{} is {} with no timer", inc.id, inc.stage.as_str()));
                };
                if !self.timers.contains(&(deadline, inc.id)) {
                    return Err(format!("{} has a deadline that is not registered", inc.id));
                }
                if inc.queue.is_none() && inc.dispatch.is_none() {
                    return Err(format!("{} is {} but neither queued nor dispatched", inc.id, inc.stage.as_str()));
                }
            }
            if let Some(d) = &inc.dispatch {
                for &s in d.live.keys() {
                    let holds = self.staff[s].live_offers.iter().filter(|&&i| i == inc.id).count();
                    if holds != 1 {
                        return Err(format!("staff {} holds {} live offers for {}", self.staff[s].info.id, holds, inc.id));
                    }
                    if !self.staff[s].on_duty {
                        return Err(format!("staff {} is off duty with a live offer for {}", self.staff[s].info.id, inc.id));
                    }
                }
            }
            if inc.assigned.is_some() && inc.dispatch.is_some() {
                return Err(format!("{} is assigned and still being offered", inc.id));
            }
        }
        for s in &self.staff {
            for id in &s.live_offers {
                let live = self.incidents.get(id).and_then(|i| i.dispatch.as_ref()).is_some_and(|d| d.live.contains_key(&self.staff_index[&s.info.id]));
                if !live {
                    return Err(format!("staff {} believes it holds an offer for {} that the incident does not know", s.info.id, id));
                }
            }
        }
        if self.timers.len() > self.incidents.len() {
            return Err(format!("{} timers for {} incidents", self.timers.len(), self.incidents.len()));
        }
        Ok(())
    }

    // ---- Plumbing ------------------------------------------------------------------

    pub(crate) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    pub(crate) fn reject(&mut self, at: Timestamp, by: Option<Actor>, incident: Option<IncidentId>, reason: RejectReason) {
        self.push(Action::Rejected { at, by, incident, reason });
    }

    /// Takes the incident out of the map so that `f` may use all of `&mut self`, then
    /// puts it back, or forgets it if it closed. Returns false if there is no such incident.
    fn with_incident(&mut self, id: IncidentId, f: impl FnOnce(&mut Engine, &mut Incident)) -> bool {
        let Some(mut inc) = self.incidents.remove(&id) else { return false };
        f(self, &mut inc);
        if inc.closed {
            if let Some(old) = inc.deadline.take() {
                self.timers.remove(&(old, inc.id));
            }
            self.open_by_resident.remove(&inc.resident);
        } else {
            self.incidents.insert(id, inc);
        }
        true
    }

    /// Does whatever is due for this incident at `now`, then sets its next timer. Nothing,
    /// for an incident set aside: what people do to it is all that happens.
    pub(crate) fn advance(&mut self, inc: &mut Incident, now: Timestamp) {
        if inc.set_aside {
            return;
        }
        if let Some(at) = inc.alert_at.filter(|&at| at <= now) {
            let ladder_repeat = self.config.municipalities[inc.muni].ladder.alert_repeat;
            let (kind, since) = match (&inc.dispatch, inc.answered_at) {
                (Some(d), Some(_)) => (AlertKind::NotAccepted, d.started_at),
                _ => (AlertKind::Unanswered, inc.received_at),
            };
            self.push(Action::Alert { at: now, incident: inc.id, kind, waiting: now.since(since) });
            inc.alerted = true;
            let mut next = at;
            while next <= now {
                next = next + ladder_repeat;
            }
            inc.alert_at = Some(next);
        }
        if inc.queue.is_some() {
            self.step_queue(inc, now);
        }
        if inc.dispatch.is_some() {
            self.step_dispatch(inc, now);
        }
        self.reschedule(inc, now);
    }

    fn reschedule(&mut self, inc: &mut Incident, now: Timestamp) {
        if let Some(old) = inc.deadline.take() {
            self.timers.remove(&(old, inc.id));
        }
        if inc.set_aside {
            return;
        }
        let mut next = inc.alert_at;
        let mut consider = |t: Timestamp| next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
        if let Some(overflow) = self.queue_deadline(inc) {
            consider(overflow);
        }
        if let Some(d) = &inc.dispatch {
            let ladder = &self.config.municipalities[inc.muni].ladder;
            if let Some(first_expiry) = d.live.values().flatten().min() {
                consider(*first_expiry);
            }
            if !d.broadcast {
                consider(d.started_at + ladder.broadcast_after);
            }
            if !d.backup_done {
                consider(d.started_at + ladder.backup_after);
            }
            if let Some(r) = d.retry_at {
                consider(r);
            }
        }
        if let Some(mut at) = next {
            // Everything due at `now` was just done; a timer in the past would spin.
            if at <= now {
                debug_assert!(false, "{} rescheduled into the past", inc.id);
                at = now + std::time::Duration::from_millis(1);
            }
            self.timers.insert((at, inc.id));
            inc.deadline = Some(at);
        }
    }

    /// A redelivery: this alarm id for this resident within the window, or the id
    /// alone from a snapshot taken before residents told alarms apart.
    fn seen(&self, key: &SeenKey) -> bool {
        self.seen_alarms.contains_key(key) || self.seen_alarms.contains_key(&(key.0.clone(), None))
    }

    fn prune_seen(&mut self, now: Timestamp) {
        let horizon = now - self.config.dedupe_window;
        while let Some((t, _)) = self.seen_order.front() {
            if *t >= horizon {
                break;
            }
            let (t, id) = self.seen_order.pop_front().expect("front exists");
            if self.seen_alarms.get(&id) == Some(&t) {
                self.seen_alarms.remove(&id);
            }
        }
    }

    // ---- Alarms ------------------------------------------------------------------

    fn on_alarm(&mut self, now: Timestamp, alarm: Alarm) {
        self.prune_seen(now);
        let key = (alarm.id.clone(), Some(alarm.resident.clone()));
        if self.seen(&key) {
            self.push(Action::DuplicateIgnored { at: now, alarm: alarm.id });
            return;
        }
        let device = Some(Actor::Device(alarm.id.clone()));
        let Some(muni) = self.config.municipality_index(&alarm.municipality) else {
            return self.reject(now, device, None, RejectReason::UnknownMunicipality);
        };
        let Some(resident) = self.residents.get(&alarm.resident) else {
            return self.reject(now, device, None, RejectReason::UnknownResident);
        };
        if resident.municipality != alarm.municipality {
            let resident_belongs_to = resident.municipality.clone();
            return self.reject(now, device, None, RejectReason::WrongMunicipality { resident_belongs_to });
        }
        let home = resident.home;
        self.seen_alarms.insert(key.clone(), now);
        self.seen_order.push_back((now, key));

        let rule = self.config.kind_rule(alarm.kind);
        let priority = alarm.priority.unwrap_or(rule.priority);
        if let Some(&open) = self.open_by_resident.get(&alarm.resident) {
            let inc = self.incidents.get_mut(&open).expect("open_by_resident points at open incidents");
            let priority_raised_to = (priority > inc.priority).then_some(priority);
            if let Some(p) = priority_raised_to {
                inc.priority = p;
            }
            self.push(Action::Attached { at: now, incident: open, alarm: alarm.id, priority_raised_to });
            return;
        }

        let id = IncidentId(self.next_incident);
        self.next_incident += 1;
        let m = &self.config.municipalities[muni];
        let model = m.model;
        let mut inc = Incident {
            id,
            resident: alarm.resident.clone(),
            muni,
            model,
            kind: alarm.kind,
            priority,
            required_roles: rule.required_roles,
            position: alarm.position.unwrap_or(home),
            received_at: now,
            answered_at: None,
            stage: Stage::AwaitingAnswer,
            queue: None,
            dispatch: None,
            assigned: None,
            operator: None,
            alert_at: Some(now + m.ladder.alert_after),
            alerted: false,
            deadline: None,
            closed: false,
            set_aside: false,
        };
        let response_centre = m.response_centre.as_ref().and_then(|c| self.config.centre_index(c));
        self.push(Action::Raised {
            at: now,
            incident: id,
            alarm: alarm.id,
            resident: alarm.resident.clone(),
            municipality: alarm.municipality,
            model,
            kind: alarm.kind,
            priority,
        });
        self.open_by_resident.insert(alarm.resident, id);
        match response_centre {
            Some(centre) => self.enqueue(&mut inc, centre, now),
            None => self.start_dispatch(&mut inc, now, true, muni),
        }
        self.advance(&mut inc, now);
        self.incidents.insert(id, Box::new(inc));
    }

    fn on_cancel(&mut self, now: Timestamp, resident: ResidentId) {
        let Some(&id) = self.open_by_resident.get(&resident) else {
            return self.reject(now, Some(Actor::Resident(resident)), None, RejectReason::NothingToCancel);
        };
        self.with_incident(id, |engine, inc| {
            engine.end_dispatch(inc, now, RevokeReason::Cancelled);
            engine.dequeue(inc, now);
            if let Some(s) = inc.assigned {
                engine.staff[s].busy -= 1;
                let staff = engine.staff[s].info.id.clone();
                engine.push(Action::Revoked { at: now, incident: id, staff, reason: RevokeReason::Cancelled });
            }
            engine.close(inc, now, Outcome::Cancelled, None);
        });
    }

    pub(crate) fn close(&mut self, inc: &mut Incident, now: Timestamp, outcome: Outcome, note: Option<String>) {
        inc.closed = true;
        self.push(Action::Closed { at: now, incident: inc.id, outcome, note });
    }

    // ---- Staff -------------------------------------------------------------------------

    fn staff_idx(&mut self, now: Timestamp, staff: &StaffId) -> Option<usize> {
        let idx = self.staff_index.get(staff).copied();
        if idx.is_none() {
            self.reject(now, Some(Actor::Staff(staff.clone())), None, RejectReason::UnknownStaff);
        }
        idx
    }

    fn on_upsert_staff(&mut self, now: Timestamp, info: Staff) {
        let Some(team) = self.config.municipality_index(&info.municipality) else {
            return self.reject(now, Some(Actor::Staff(info.id)), None, RejectReason::UnknownMunicipality);
        };
        match self.staff_index.get(&info.id).copied() {
            Some(s) => {
                let was_on_duty = self.staff[s].on_duty;
                if was_on_duty {
                    self.leave_tree(s);
                }
                self.staff[s].info = info;
                self.staff[s].team = team;
                if was_on_duty {
                    self.join_tree(s);
                }
            }
            None => {
                self.staff_index.insert(info.id.clone(), self.staff.len());
                self.staff.push(StaffState::new(info, team, None));
            }
        }
    }

    fn on_upsert_resident(&mut self, now: Timestamp, r: Resident) {
        if self.config.municipality_index(&r.municipality).is_none() {
            return self.reject(now, Some(Actor::Resident(r.id)), None, RejectReason::UnknownMunicipality);
        }
        self.residents.insert(r.id.clone(), r);
    }

    pub(crate) fn join_tree(&mut self, s: usize) {
        let st = &mut self.staff[s];
        let at = st.position.unwrap_or(self.config.municipalities[st.team].centre);
        let p = point(s, at);
        st.point = Some(p);
        self.teams[st.team].on_duty.insert(p);
    }

    fn leave_tree(&mut self, s: usize) {
        let st = &mut self.staff[s];
        if let Some(p) = st.point.take() {
            self.teams[st.team].on_duty.remove(&p);
        }
    }

    fn on_staff_on_duty(&mut self, now: Timestamp, staff: StaffId, position: Option<Position>) {
        let Some(s) = self.staff_idx(now, &staff) else { return };
        if position.is_some() {
            self.staff[s].position = position;
        }
        if self.staff[s].on_duty {
            self.leave_tree(s);
        }
        self.staff[s].on_duty = true;
        self.join_tree(s);
        // Somebody new to offer to: let every ladder that could use them look again.
        let team = self.staff[s].team;
        let waiting: Vec<IncidentId> = self.incidents.values().filter(|i| i.dispatch.as_ref().is_some_and(|d| d.pool.contains(&team))).map(|i| i.id).collect();
        for id in waiting {
            self.with_incident(id, |engine, inc| engine.advance(inc, now));
        }
    }

    fn on_staff_off_duty(&mut self, now: Timestamp, staff: StaffId) {
        let Some(s) = self.staff_idx(now, &staff) else { return };
        if !self.staff[s].on_duty {
            return;
        }
        self.leave_tree(s);
        self.staff[s].on_duty = false;
        let offers = std::mem::take(&mut self.staff[s].live_offers);
        for id in offers {
            self.with_incident(id, |engine, inc| {
                if let Some(d) = inc.dispatch.as_mut() {
                    d.live.remove(&s);
                }
                engine.push(Action::Revoked { at: now, incident: id, staff: staff.clone(), reason: RevokeReason::StaffOffDuty });
                engine.advance(inc, now);
            });
        }
    }

    fn on_staff_position(&mut self, now: Timestamp, staff: StaffId, position: Position) {
        let Some(s) = self.staff_idx(now, &staff) else { return };
        self.staff[s].position = Some(position);
        if self.staff[s].on_duty {
            self.leave_tree(s);
            self.join_tree(s);
        }
    }

    fn on_staff_reply(&mut self, now: Timestamp, staff: StaffId, id: IncidentId, reply: StaffReply) {
        let Some(s) = self.staff_idx(now, &staff) else { return };
        let by = Some(Actor::Staff(staff.clone()));
        let found = self.with_incident(id, |engine, inc| {
            let refuse = |engine: &mut Engine, reason| engine.reject(now, by.clone(), Some(id), reason);
            match reply {
                StaffReply::Accept | StaffReply::Decline => {
                    let live = inc.dispatch.as_ref().is_some_and(|d| d.live.contains_key(&s));
                    if !live {
                        let reason = match (inc.assigned, inc.stage) {
                            (Some(a), _) if a == s => RejectReason::WrongState { state: "accepted by you" },
                            (Some(_), _) | (None, Stage::WithOperator) => RejectReason::AlreadyTaken,
                            _ => RejectReason::NotOffered,
                        };
                        return refuse(engine, reason);
                    }
                    if !engine.staff[s].on_duty {
                        return refuse(engine, RejectReason::OffDuty);
                    }
                    if reply == StaffReply::Accept {
                        engine.accept(inc, s, now);
                    } else {
                        engine.decline(inc, s, now);
                    }
                }
                StaffReply::EnRoute | StaffReply::OnSite | StaffReply::Close { .. } => {
                    if inc.assigned != Some(s) {
                        // Somebody else's; or offered to them but not accepted yet; or
                        // nothing to do with them at all.
                        let offered = inc.dispatch.as_ref().is_some_and(|d| d.live.contains_key(&s));
                        let reason = match (inc.assigned, offered) {
                            (Some(_), _) => RejectReason::NotAssigned,
                            (None, true) => RejectReason::WrongState { state: inc.stage.as_str() },
                            (None, false) => RejectReason::NotOffered,
                        };
                        return refuse(engine, reason);
                    }
                    match (reply, inc.stage) {
                        (StaffReply::EnRoute, Stage::Accepted) => {
                            inc.stage = Stage::EnRoute;
                            engine.push(Action::EnRoute { at: now, incident: id, staff: staff.clone() });
                        }
                        (StaffReply::OnSite, Stage::Accepted | Stage::EnRoute) => {
                            inc.stage = Stage::OnSite;
                            engine.push(Action::OnSite { at: now, incident: id, staff: staff.clone(), since_raised: now.since(inc.received_at) });
                        }
                        (StaffReply::Close { outcome, note }, Stage::Accepted | Stage::EnRoute | Stage::OnSite) => {
                            engine.staff[s].busy -= 1;
                            engine.close(inc, now, outcome, note);
                        }
                        (_, stage) => refuse(engine, RejectReason::WrongState { state: stage.as_str() }),
                    }
                }
            }
        });
        if !found {
            self.reject(now, Some(Actor::Staff(staff)), Some(id), RejectReason::UnknownIncident);
        }
    }

    // ---- Operators and centres --------------------------------------------------------------

    fn on_operator_answer(&mut self, now: Timestamp, centre: CentreId, operator: OperatorId, id: IncidentId) {
        let by = Some(Actor::Operator(operator.clone()));
        let Some(c) = self.config.centre_index(&centre) else {
            return self.reject(now, by, Some(id), RejectReason::UnknownCentre);
        };
        let found = self.with_incident(id, |engine, inc| {
            if inc.queue.as_ref().map(|q| q.centre) != Some(c) {
                let reason = if inc.stage.needs_a_human() { RejectReason::NotAtThisCentre } else { RejectReason::AlreadyTaken };
                return engine.reject(now, by.clone(), Some(id), reason);
            }
            engine.dequeue(inc, now);
            engine.end_dispatch(inc, now, RevokeReason::AnsweredByOperator);
            engine.mark_answered(inc, now, Responder::Operator { centre: centre.clone(), operator: operator.clone() });
            inc.stage = Stage::WithOperator;
            inc.operator = Some(operator.clone());
            inc.alert_at = None;
            engine.reschedule(inc, now);
        });
        if !found {
            self.reject(now, Some(Actor::Operator(operator)), Some(id), RejectReason::UnknownIncident);
        }
    }

    fn with_operator_incident(&mut self, now: Timestamp, operator: OperatorId, id: IncidentId, f: impl FnOnce(&mut Engine, &mut Incident)) {
        let by = Some(Actor::Operator(operator.clone()));
        let found = self.with_incident(id, |engine, inc| {
            if inc.stage != Stage::WithOperator {
                return engine.reject(now, by, Some(id), RejectReason::WrongState { state: inc.stage.as_str() });
            }
            f(engine, inc);
        });
        if !found {
            self.reject(now, Some(Actor::Operator(operator)), Some(id), RejectReason::UnknownIncident);
        }
    }

    fn on_operator_resolve(&mut self, now: Timestamp, operator: OperatorId, id: IncidentId, note: Option<String>) {
        self.with_operator_incident(now, operator.clone(), id, |engine, inc| {
            engine.push(Action::ResolvedByCentre { at: now, incident: id, operator });
            engine.close(inc, now, Outcome::ResolvedByCentre, note);
        });
    }

    fn on_operator_forward(&mut self, now: Timestamp, operator: OperatorId, id: IncidentId) {
        self.with_operator_incident(now, operator.clone(), id, |engine, inc| {
            engine.push(Action::ForwardedToHomeCare { at: now, incident: id, operator });
            inc.stage = Stage::AwaitingStaff;
            inc.alert_at = Some(now + engine.config.municipalities[inc.muni].ladder.alert_after);
            let team = inc.muni;
            engine.start_dispatch(inc, now, false, team);
            engine.advance(inc, now);
        });
    }

    /// For the operator actions on a running staff ladder: the incident, or the reason not.
    fn with_ladder_incident(&mut self, now: Timestamp, operator: OperatorId, id: IncidentId, f: impl FnOnce(&mut Engine, &mut Incident)) {
        let by = Some(Actor::Operator(operator.clone()));
        let found = self.with_incident(id, |engine, inc| {
            if inc.dispatch.is_none() {
                // Waiting at a centre (answer or forward it first), or already accepted.
                return engine.reject(now, by, Some(id), RejectReason::WrongState { state: inc.stage.as_str() });
            }
            f(engine, inc);
        });
        if !found {
            self.reject(now, Some(Actor::Operator(operator)), Some(id), RejectReason::UnknownIncident);
        }
    }

    fn on_operator_assign(&mut self, now: Timestamp, operator: OperatorId, id: IncidentId, staff: StaffId) {
        let Some(&s) = self.staff_index.get(&staff) else {
            return self.reject(now, Some(Actor::Operator(operator)), Some(id), RejectReason::UnknownStaff);
        };
        self.with_ladder_incident(now, operator.clone(), id, |engine, inc| {
            let by = Some(Actor::Operator(operator.clone()));
            // Only a staff member who may go there: the incident's own municipality's, or
            // its backup team's. An offer carries the resident's address and notes.
            let team = engine.staff[s].team;
            let backup_team = match &engine.config.municipalities[inc.muni].backup {
                Some(Backup::Team(t)) => engine.config.municipality_index(t),
                _ => None,
            };
            if team != inc.muni && Some(team) != backup_team {
                return engine.reject(now, by, Some(id), RejectReason::NotInScope);
            }
            if !engine.staff[s].on_duty {
                return engine.reject(now, by, Some(id), RejectReason::OffDuty);
            }
            if inc.dispatch.as_ref().is_some_and(|d| d.live.contains_key(&s)) {
                return engine.reject(now, by, Some(id), RejectReason::WrongState { state: "already offered to them" });
            }
            engine.push(Action::AssignedByOperator { at: now, incident: id, operator, staff });
            engine.offer_directed(inc, s, now);
            engine.advance(inc, now);
        });
    }

    fn on_operator_escalate(&mut self, now: Timestamp, operator: OperatorId, id: IncidentId) {
        self.with_ladder_incident(now, operator.clone(), id, |engine, inc| {
            engine.push(Action::EscalatedByOperator { at: now, incident: id, operator });
            engine.escalate_now(inc, now);
            engine.advance(inc, now);
        });
    }

    fn on_operator_note(&mut self, now: Timestamp, operator: OperatorId, id: IncidentId, note: String) {
        if !self.incidents.contains_key(&id) {
            return self.reject(now, Some(Actor::Operator(operator)), Some(id), RejectReason::UnknownIncident);
        }
        self.push(Action::NoteAdded { at: now, incident: id, by: Actor::Operator(operator), note });
    }

    fn on_system_note(&mut self, now: Timestamp, id: IncidentId, note: String) {
        if self.incidents.contains_key(&id) {
            self.push(Action::NoteAdded { at: now, incident: id, by: Actor::System, note });
        }
    }

    fn on_set_aside(&mut self, now: Timestamp, id: IncidentId, reason: String) {
        let found = self.with_incident(id, |engine, inc| {
            if !inc.set_aside {
                inc.set_aside = true;
                engine.reschedule(inc, now);
                engine.push(Action::SetAside { at: now, incident: id, reason });
            }
        });
        if !found {
            self.reject(now, None, Some(id), RejectReason::UnknownIncident);
        }
    }

    fn on_centre_staffing(&mut self, now: Timestamp, centre: CentreId, operators: u32) {
        let Some(c) = self.config.centre_index(&centre) else {
            return self.reject(now, Some(Actor::Centre(centre)), None, RejectReason::UnknownCentre);
        };
        self.centres[c].operators_on_duty = operators;
        let queued: Vec<IncidentId> = self.incidents.values().filter(|i| i.queue.as_ref().is_some_and(|q| q.centre == c)).map(|i| i.id).collect();
        for id in queued {
            self.with_incident(id, |engine, inc| engine.advance(inc, now));
        }
    }

    pub(crate) fn mark_answered(&mut self, inc: &mut Incident, now: Timestamp, by: Responder) {
        if inc.answered_at.is_none() {
            inc.answered_at = Some(now);
            self.push(Action::Answered { at: now, incident: inc.id, by, answer_time: now.since(inc.received_at) });
        }
    }
}
