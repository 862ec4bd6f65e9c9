//! Snapshots of a quiet engine: no incident open, no action waiting. Then the whole
//! state is the directory, who is on duty where, the centres' staffing, the alarm ids
//! still in the dedupe window and the next incident number, and a driver can store it
//! instead of the inputs that led there (the live engine's input log is cut at each
//! snapshot, so a restart replays from the last quiet moment, not from the beginning).
//!
//! `Engine::from_snapshot(config, engine.snapshot()?)` behaves exactly as `engine` from
//! then on: staff keep their order (ties between equally near staff break on it).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::config::EngineConfig;
use super::engine::{Engine, StaffState};
use super::geo::Position;
use super::ids::AlarmId;
use super::people::{Resident, Staff};
use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffSnapshot {
    pub info: Staff,
    pub on_duty: bool,
    pub position: Option<Position>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Sorted by id.
    pub residents: Vec<Resident>,
    /// In the engine's order.
    pub staff: Vec<StaffSnapshot>,
    /// Operators on duty, per configured centre, in configuration order.
    pub centres: Vec<u32>,
    /// Alarm ids in the dedupe window: last seen, by id; and the window's queue.
    pub seen: Vec<(AlarmId, Timestamp)>,
    pub seen_order: Vec<(Timestamp, AlarmId)>,
    pub next_incident: u64,
}

impl Engine {
    /// The engine's whole state, if it is quiet (no incident open, no action waiting).
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.incidents.is_empty() || !self.actions.is_empty() {
            return None;
        }
        let mut residents: Vec<Resident> = self.residents.values().cloned().collect();
        residents.sort_by(|a, b| a.id.cmp(&b.id));
        let mut seen: Vec<(AlarmId, Timestamp)> = self.seen_alarms.iter().map(|(a, t)| (a.clone(), *t)).collect();
        seen.sort();
        Some(Snapshot {
            residents,
            staff: self.staff.iter().map(|s| StaffSnapshot { info: s.info.clone(), on_duty: s.on_duty, position: s.position }).collect(),
            centres: self.centres.iter().map(|c| c.operators_on_duty).collect(),
            seen,
            seen_order: self.seen_order.iter().cloned().collect(),
            next_incident: self.next_incident,
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
            if s.on_duty {
                e.staff[i].on_duty = true;
                e.join_tree(i);
            }
        }
        for (c, n) in e.centres.iter_mut().zip(snapshot.centres) {
            c.operators_on_duty = n;
        }
        e.seen_alarms = snapshot.seen.into_iter().collect();
        e.seen_order = VecDeque::from(snapshot.seen_order);
        e.next_incident = snapshot.next_incident;
        Ok(e)
    }
}
