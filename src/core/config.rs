//! The engine's configuration, already validated: cross references resolve, deadlines
//! are in order, every response model has what it needs. Built by `settings.rs` from
//! TOML files (the core never reads files), or directly by tests and the simulator.

use std::fmt;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::alarm::{AlarmKind, Priority};
use super::geo::{Position, TravelModel};
use super::ids::{CentreId, MunicipalityId};
use super::people::Roles;

/// How a municipality organises alarm response (DOMAIN.md, "The four response models").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseModel {
    /// 1. A shared inter-municipal response centre (today's Alarmsentralen IKS).
    SharedCentre,
    /// 2. "Mobilt vaktrom": straight to the nearest logged-in home-care staff.
    MobileGuardRoom,
    /// 3. A private response centre, paid per alarm user.
    PrivateCentre,
    /// 4. An own municipal or inter-municipal response centre.
    OwnCentre,
}

impl ResponseModel {
    pub const ALL: [ResponseModel; 4] = [ResponseModel::SharedCentre, ResponseModel::MobileGuardRoom, ResponseModel::PrivateCentre, ResponseModel::OwnCentre];
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseModel::SharedCentre => "shared_centre",
            ResponseModel::MobileGuardRoom => "mobile_guard_room",
            ResponseModel::PrivateCentre => "private_centre",
            ResponseModel::OwnCentre => "own_centre",
        }
    }
    /// The kind of centre whose operators answer first; `None` for the mobile guard room.
    pub fn centre_kind(self) -> Option<CentreKind> {
        match self {
            ResponseModel::SharedCentre => Some(CentreKind::Shared),
            ResponseModel::PrivateCentre => Some(CentreKind::Private),
            ResponseModel::OwnCentre => Some(CentreKind::Own),
            ResponseModel::MobileGuardRoom => None,
        }
    }
}

impl fmt::Display for ResponseModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CentreKind {
    Shared,
    Private,
    Own,
}

/// Who takes what the first line does not answer in time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backup {
    /// A response centre's operator queue (Farsund's model, or a centre's overflow).
    Centre(CentreId),
    /// Another municipality's home-care team.
    Team(MunicipalityId),
}

/// The staff ladder: how offers escalate until somebody accepts.
/// All times count from the start of the ladder (the alarm's arrival in the mobile
/// guard room; the operator's forward in the centre models).
#[derive(Debug, Clone, PartialEq)]
pub struct LadderConfig {
    /// How long one staff member has to accept a personal offer.
    pub offer_timeout: Duration,
    /// After this many personal offers, offer to everyone on duty.
    pub broadcast_after_offers: u32,
    /// ...or after this long, whichever comes first.
    pub broadcast_after: Duration,
    /// Forward to the backup this long after the start (must be before the target).
    pub backup_after: Duration,
    /// Raise an alert to operations when nobody has it this long after the start...
    pub alert_after: Duration,
    /// ...and again this often while nobody has it.
    pub alert_repeat: Duration,
    /// With nobody to offer to, look again this often (logins also trigger a look).
    pub retry_interval: Duration,
    /// Prefer a regular helper whose travel time is at most this much longer than the nearest.
    pub regular_helper_extra: Duration,
    /// Skip staff busy on an incident for personal offers (the broadcast includes them).
    pub skip_busy_staff: bool,
}

impl Default for LadderConfig {
    fn default() -> Self {
        Self {
            offer_timeout: Duration::from_secs(15),
            broadcast_after_offers: 2,
            broadcast_after: Duration::from_secs(30),
            backup_after: Duration::from_secs(45),
            alert_after: Duration::from_secs(60),
            alert_repeat: Duration::from_secs(60),
            retry_interval: Duration::from_secs(5),
            regular_helper_extra: Duration::from_secs(180),
            skip_busy_staff: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MunicipalityConfig {
    pub id: MunicipalityId,
    pub name: String,
    pub population: u32,
    /// The administrative centre: the zone's reference point for the driving-time
    /// matrix and the assumed position of staff who have not shared theirs.
    pub centre: Position,
    pub model: ResponseModel,
    /// The centre whose operators answer first (required for the centre models).
    pub response_centre: Option<CentreId>,
    /// Who takes what the staff ladder does not answer in time.
    pub backup: Option<Backup>,
    pub ladder: LadderConfig,
    pub travel: TravelModel,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CentreConfig {
    pub id: CentreId,
    pub name: String,
    pub kind: CentreKind,
    /// Operators on duty when the engine starts (changed by `Input::CentreStaffing`).
    pub operators_on_duty: u32,
    /// Move a queued alarm to the backup centre if no operator has answered it by then.
    pub overflow_after: Duration,
    pub backup: Option<CentreId>,
}

/// A driving time between two municipalities' centres (symmetric).
#[derive(Debug, Clone, PartialEq)]
pub struct DrivingTime {
    pub between: (MunicipalityId, MunicipalityId),
    pub time: Duration,
}

/// Per alarm kind: default priority and the roles whoever takes it must have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KindRule {
    pub priority: Priority,
    pub required_roles: Roles,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Everything the engine needs to know that does not change while it runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The answer-time target (60 s nationally).
    pub target_answer: Duration,
    /// How long an alarm id is remembered to recognise a redelivery.
    pub dedupe_window: Duration,
    pub municipalities: Vec<MunicipalityConfig>,
    pub centres: Vec<CentreConfig>,
    kinds: [KindRule; AlarmKind::ALL.len()],
    muni_index: FxHashMap<MunicipalityId, usize>,
    centre_index: FxHashMap<CentreId, usize>,
    /// `matrix[a * n + b]`: driving time between municipality centres a and b.
    matrix: Vec<Option<Duration>>,
}

/// Inputs to [`EngineConfig::new`].
#[derive(Debug, Clone)]
pub struct EngineConfigParts {
    pub target_answer: Duration,
    pub dedupe_window: Duration,
    pub municipalities: Vec<MunicipalityConfig>,
    pub centres: Vec<CentreConfig>,
    pub driving_times: Vec<DrivingTime>,
    /// Overrides of the kinds' defaults.
    pub kind_rules: Vec<(AlarmKind, KindRule)>,
}

impl EngineConfig {
    /// Long: every cross-check of a configuration in one pass, each refusal naming the
    /// key that is wrong, in the order a reader of the file meets them.
    pub fn new(parts: EngineConfigParts) -> Result<Self, ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        if parts.target_answer < Duration::from_secs(1) {
            return err("target answer time must be at least 1 s".into());
        }
        if parts.municipalities.is_empty() {
            return err("at least one municipality must be configured".into());
        }
        let mut muni_index = FxHashMap::default();
        for (i, m) in parts.municipalities.iter().enumerate() {
            if muni_index.insert(m.id.clone(), i).is_some() {
                return err(format!("municipality {} is configured twice", m.id));
            }
        }
        let mut centre_index = FxHashMap::default();
        for (i, c) in parts.centres.iter().enumerate() {
            if centre_index.insert(c.id.clone(), i).is_some() {
                return err(format!("centre {} is configured twice", c.id));
            }
        }
        for c in &parts.centres {
            if c.overflow_after.is_zero() {
                return err(format!("centre {}: overflow_after must be positive", c.id));
            }
            if let Some(b) = &c.backup {
                if b == &c.id {
                    return err(format!("centre {} cannot be its own backup", c.id));
                }
                if !centre_index.contains_key(b) {
                    return err(format!("centre {}: backup centre {} is not configured", c.id, b));
                }
            }
        }
        for m in &parts.municipalities {
            let l = &m.ladder;
            if l.offer_timeout < Duration::from_secs(1) || l.alert_repeat < Duration::from_secs(1) || l.retry_interval < Duration::from_secs(1) {
                return err(format!("municipality {}: offer timeout, alert repeat and retry interval must be at least 1 s", m.id));
            }
            if l.broadcast_after_offers == 0 {
                return err(format!("municipality {}: broadcast_after_offers must be at least 1", m.id));
            }
            if m.model == ResponseModel::MobileGuardRoom && m.backup.is_some() && l.backup_after >= parts.target_answer {
                return err(format!(
                    "municipality {}: backup_after ({} s) must come before the answer target ({} s)",
                    m.id,
                    l.backup_after.as_secs(),
                    parts.target_answer.as_secs()
                ));
            }
            match (m.model.centre_kind(), &m.response_centre) {
                (Some(kind), Some(c)) => match centre_index.get(c) {
                    None => return err(format!("municipality {}: response centre {} is not configured", m.id, c)),
                    Some(&ci) if parts.centres[ci].kind != kind => {
                        return err(format!("municipality {}: model {} needs a {:?} centre, but {} is {:?}", m.id, m.model, kind, c, parts.centres[ci].kind));
                    }
                    Some(_) => {}
                },
                (Some(_), None) => return err(format!("municipality {}: model {} needs a response_centre", m.id, m.model)),
                (None, Some(c)) => {
                    return err(format!("municipality {}: the mobile guard room has no response centre (got {}); use backup = {{ centre = ... }}", m.id, c));
                }
                (None, None) => {}
            }
            match &m.backup {
                Some(Backup::Centre(c)) if !centre_index.contains_key(c) => {
                    return err(format!("municipality {}: backup centre {} is not configured", m.id, c));
                }
                Some(Backup::Team(t)) if t == &m.id => return err(format!("municipality {} cannot be its own backup team", m.id)),
                Some(Backup::Team(t)) if !muni_index.contains_key(t) => return err(format!("municipality {}: backup team {} is not configured", m.id, t)),
                _ => {}
            }
        }
        let n = parts.municipalities.len();
        let mut matrix = vec![None; n * n];
        for d in &parts.driving_times {
            let (Some(&a), Some(&b)) = (muni_index.get(&d.between.0), muni_index.get(&d.between.1)) else {
                return err(format!("driving time between {} and {}: both must be configured municipalities", d.between.0, d.between.1));
            };
            if a == b || d.time.is_zero() {
                return err(format!("driving time between {} and {}: needs two different places and a positive time", d.between.0, d.between.1));
            }
            matrix[a * n + b] = Some(d.time);
            matrix[b * n + a] = Some(d.time);
        }
        let mut kinds = AlarmKind::ALL.map(|k| KindRule { priority: k.default_priority(), required_roles: Roles::NONE });
        for (k, rule) in parts.kind_rules {
            kinds[k as usize] = rule;
        }
        Ok(Self {
            target_answer: parts.target_answer,
            dedupe_window: parts.dedupe_window,
            municipalities: parts.municipalities,
            centres: parts.centres,
            kinds,
            muni_index,
            centre_index,
            matrix,
        })
    }

    pub fn municipality_index(&self, id: &MunicipalityId) -> Option<usize> {
        self.muni_index.get(id).copied()
    }
    pub fn centre_index(&self, id: &CentreId) -> Option<usize> {
        self.centre_index.get(id).copied()
    }
    pub fn kind_rule(&self, kind: AlarmKind) -> KindRule {
        self.kinds[kind as usize]
    }
    /// Configured driving time between two municipalities' centres.
    pub fn driving_time(&self, a: usize, b: usize) -> Option<Duration> {
        self.matrix[a * self.municipalities.len() + b]
    }
    /// The municipalities a centre answers first for.
    pub fn served_by(&self, centre: usize) -> impl Iterator<Item = &MunicipalityConfig> {
        let id = &self.centres[centre].id;
        self.municipalities.iter().filter(move |m| m.response_centre.as_ref() == Some(id))
    }
}
