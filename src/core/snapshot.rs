//! Snapshots of the engine between steps (no action waiting): the directory, who is on
//! duty where, the centres' staffing, the alarm ids still in the dedupe window, the next
//! incident number, and every open incident with its ladder, queue and deadline. A
//! driver can store one instead of the inputs that led there (the live engine's input
//! log is cut at each snapshot, so a restart replays from the last snapshot, not from
//! the beginning).
//!
//! `Engine::from_snapshot(config, engine.snapshot()?)` behaves exactly as `engine` from
//! then on: staff keep their order (ties between equally near staff break on it), and
//! the timers and the open incidents by resident are rebuilt from the incidents.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::config::EngineConfig;
use super::engine::{Engine, SeenKey, StaffState};
use super::geo::Position;
use super::ids::{AlarmId, CentreId, IncidentId, MunicipalityId, ResidentId};
use super::incident::Incident;
use super::people::{Resident, Staff};
use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffSnapshot {
    pub info: Staff,
    pub on_duty: bool,
    pub position: Option<Position>,
    /// Incidents accepted and not closed (0 in a snapshot of a quiet engine).
    #[serde(default)]
    pub busy: u32,
    /// Incidents this staff member holds a live offer for.
    #[serde(default)]
    pub live_offers: Vec<IncidentId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Sorted by id.
    pub residents: Vec<Resident>,
    /// In the engine's order.
    pub staff: Vec<StaffSnapshot>,
    /// Operators on duty, per configured centre, in configuration order.
    pub centres: Vec<u32>,
    /// Alarms in the dedupe window (id and resident), each with when it was last seen,
    /// sorted. The window's queue is rebuilt from these in time order.
    pub seen: Vec<SeenEntry>,
    pub next_incident: u64,
    /// Open incidents, by id. They refer to staff by their place in `staff`, and to
    /// municipalities and centres by their place in `municipalities` and `centre_ids`
    /// (the configuration's order when it was taken), mapped to this configuration's
    /// places when restored.
    #[serde(default)]
    pub(crate) incidents: Vec<Incident>,
    #[serde(default)]
    pub municipalities: Vec<MunicipalityId>,
    #[serde(default)]
    pub centre_ids: Vec<CentreId>,
}

/// One alarm of the dedupe window: `[alarm_id, resident_id, seen_at]`, or, in snapshots
/// taken before the resident was part of the key, `[alarm_id, seen_at]` (read as an id
/// that matches for any resident, as it did then).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SeenEntry {
    Alarm(AlarmId, ResidentId, Timestamp),
    IdOnly(AlarmId, Timestamp),
}

impl SeenEntry {
    fn from_key((alarm, resident): &SeenKey, at: Timestamp) -> SeenEntry {
        match resident {
            Some(r) => SeenEntry::Alarm(alarm.clone(), r.clone(), at),
            None => SeenEntry::IdOnly(alarm.clone(), at),
        }
    }
    fn into_key(self) -> (SeenKey, Timestamp) {
        match self {
            SeenEntry::Alarm(a, r, at) => ((a, Some(r)), at),
            SeenEntry::IdOnly(a, at) => ((a, None), at),
        }
    }
}

impl Snapshot {
    /// How many incidents were open.
    pub fn open_incidents(&self) -> usize {
        self.incidents.len()
    }
}

/// For each id of a snapshot's list, its place in this configuration (`None`: gone).
struct Places<'a, T> {
    ids: &'a [T],
    now: Vec<Option<usize>>,
    what: &'static str,
}

impl<'a, T: std::fmt::Display> Places<'a, T> {
    fn new(ids: &'a [T], find: impl Fn(&T) -> Option<usize>, what: &'static str) -> Self {
        Places { ids, now: ids.iter().map(find).collect(), what }
    }
    /// The place now of what was at `old`; an error if an open incident needs one that
    /// this configuration no longer has.
    fn map(&self, old: usize, incident: IncidentId) -> Result<usize, String> {
        match (self.now.get(old).copied().flatten(), self.ids.get(old)) {
            (Some(i), _) => Ok(i),
            (None, Some(id)) => Err(format!(
                "open incident {incident} in the snapshot needs the {} {id}, which this configuration does not have (start with the earlier configuration and let it close first)",
                self.what
            )),
            (None, None) => Err(format!("open incident {incident} in the snapshot refers to a {} it does not list", self.what)),
        }
    }
}

impl Engine {
    /// The engine's whole state, between steps (`None` while actions wait to be polled).
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.actions.is_empty() {
            return None;
        }
        let mut residents: Vec<Resident> = self.residents.values().cloned().collect();
        residents.sort_by(|a, b| a.id.cmp(&b.id));
        let mut seen: Vec<SeenEntry> = self.seen_alarms.iter().map(|(k, t)| SeenEntry::from_key(k, *t)).collect();
        seen.sort();
        Some(Snapshot {
            residents,
            staff: self
                .staff
                .iter()
                .map(|s| StaffSnapshot { info: s.info.clone(), on_duty: s.on_duty, position: s.position, busy: s.busy, live_offers: s.live_offers.clone() })
                .collect(),
            centres: self.centres.iter().map(|c| c.operators_on_duty).collect(),
            seen,
            next_incident: self.next_incident,
            incidents: self.incidents.values().map(|i| (**i).clone()).collect(),
            municipalities: self.config.municipalities.iter().map(|m| m.id.clone()).collect(),
            centre_ids: self.config.centres.iter().map(|c| c.id.clone()).collect(),
        })
    }

    /// An engine in the state `snapshot` describes. Fails if the configuration no longer
    /// fits it (a municipality or centre removed).
    pub fn from_snapshot(config: EngineConfig, snapshot: Snapshot) -> Result<Engine, String> {
        if snapshot.centres.len() != config.centres.len() {
            return Err(format!("the snapshot has {} centres, the configuration {}", snapshot.centres.len(), config.centres.len()));
        }
        let mut e = Engine::new(config);
        for r in snapshot.residents {
            if e.config.municipality_index(&r.municipality).is_none() {
                return Err(format!("resident {} belongs to {}, which the configuration does not have", r.id, r.municipality));
            }
            e.residents.insert(r.id.clone(), r);
        }
        for s in snapshot.staff {
            let Some(team) = e.config.municipality_index(&s.info.municipality) else {
                return Err(format!("staff member {} belongs to {}, which the configuration does not have", s.info.id, s.info.municipality));
            };
            let i = e.staff.len();
            e.staff_index.insert(s.info.id.clone(), i);
            e.staff.push(StaffState::new(s.info, team, s.position));
            e.staff[i].busy = s.busy;
            e.staff[i].live_offers = s.live_offers;
            if s.on_duty {
                e.staff[i].on_duty = true;
                e.join_tree(i);
            }
        }
        for (c, n) in e.centres.iter_mut().zip(snapshot.centres) {
            c.operators_on_duty = n;
        }
        e.seen_alarms = snapshot.seen.into_iter().map(SeenEntry::into_key).collect();
        // The window's queue in time order, one entry per alarm: it prunes exactly as
        // the queue it replaces (whose older entries for an alarm seen again were
        // skipped when they came to the front).
        let mut order: Vec<(Timestamp, SeenKey)> = e.seen_alarms.iter().map(|(k, t)| (*t, k.clone())).collect();
        order.sort();
        e.seen_order = VecDeque::from(order);
        e.next_incident = snapshot.next_incident;
        // Incidents name municipalities (teams) and centres by their place in the
        // configuration they were taken under: map each to its place in this one.
        let munis = Places::new(&snapshot.municipalities, |m| e.config.municipality_index(m), "municipality");
        let centres = Places::new(&snapshot.centre_ids, |c| e.config.centres.iter().position(|x| &x.id == c), "centre");
        let staff = e.staff.len();
        for mut inc in snapshot.incidents {
            let id = inc.id;
            inc.muni = munis.map(inc.muni, id)?;
            if let Some(q) = &mut inc.queue {
                q.centre = centres.map(q.centre, id)?;
                for c in &mut q.visited {
                    *c = centres.map(*c, id)?;
                }
            }
            let unknown_staff = || format!("open incident {id} in the snapshot refers to a staff member it does not have");
            if let Some(d) = &mut inc.dispatch {
                for m in &mut d.pool {
                    *m = munis.map(*m, id)?;
                }
                if !d.live.keys().chain(d.tried.iter()).chain(d.declined_broadcast.iter()).all(|&s| s < staff) {
                    return Err(unknown_staff());
                }
            }
            if inc.assigned.is_some_and(|s| s >= staff) {
                return Err(unknown_staff());
            }
            if let Some(at) = inc.deadline {
                e.timers.insert((at, inc.id));
            }
            e.open_by_resident.insert(inc.resident.clone(), inc.id);
            e.incidents.insert(inc.id, Box::new(inc));
        }
        Ok(e)
    }
}
