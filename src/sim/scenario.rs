//! A planner's scenario (docs/simulation.md): which engine configuration, how many
//! alarms and when, who is on duty, how people behave, what things cost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::dist::{Dist, DistSpec};
use crate::core::{AlarmKind, Backup, CentreId, EngineConfig, MunicipalityId, ResponseModel, Timestamp};
use crate::settings::Settings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub simulation: SimulationSection,
    #[serde(default)]
    pub models: ModelsSection,
    pub alarms: AlarmsSection,
    pub staff: StaffSection,
    #[serde(default)]
    pub operators: OperatorsSection,
    #[serde(default)]
    pub cost: CostSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSection {
    /// The engine configuration (municipalities, centres, ladder, driving times), relative to the scenario.
    pub config: String,
    #[serde(default = "default_days")]
    pub days: u32,
    /// Midnight UTC of the first simulated day.
    #[serde(default = "default_start")]
    pub start: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "one")]
    pub replications: u32,
    /// `"all"`: the four models side by side on the same alarms; `"configured"`: each
    /// municipality under the model its configuration names.
    #[serde(default = "default_compare")]
    pub compare: String,
}

fn default_days() -> u32 {
    365
}
fn default_start() -> String {
    "2024-01-01T00:00:00Z".into()
}
fn default_seed() -> u64 {
    1
}
fn one() -> u32 {
    1
}
fn default_compare() -> String {
    "all".into()
}

/// What each model means when `compare = "all"` puts every municipality under it.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelsSection {
    pub shared_centre: Option<CentreId>,
    pub private_centre: Option<CentreId>,
    pub own_centre: Option<CentreId>,
    pub mobile_guard_room_backup: Option<Backup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsSection {
    /// Relative weights of the 24 hours (UTC); default peaks 08:00 to 11:00.
    pub hourly_profile: Option<Vec<f64>>,
    /// Relative weights Monday..Sunday; default flat.
    pub weekday_profile: Option<Vec<f64>>,
    /// Share of alarm users who are heavy users, and the share of alarms they raise.
    #[serde(default = "default_heavy_users")]
    pub heavy_user_share: f64,
    #[serde(default = "default_heavy_alarms")]
    pub heavy_user_alarm_share: f64,
    /// Relative weights per alarm kind; default: mostly safety alarms.
    pub kind_mix: Option<BTreeMap<AlarmKind, f64>>,
    /// Alarm users live within this distance of their municipality's centre.
    #[serde(default = "default_radius")]
    pub resident_radius_km: f64,
    #[serde(rename = "municipality")]
    pub municipalities: Vec<AlarmsMunicipality>,
}

fn default_heavy_users() -> f64 {
    0.01
}
fn default_heavy_alarms() -> f64 {
    0.15
}
fn default_radius() -> f64 {
    10.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsMunicipality {
    pub id: MunicipalityId,
    /// Alarms a year on average; or `per_hour` (one of the two).
    #[serde(default)]
    pub per_year: f64,
    pub per_hour: Option<f64>,
    /// Alarm users (residents with a device).
    pub users: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffSection {
    /// From an offer until the staff member answers it.
    pub reply_delay: DistSpec,
    /// Share of offers declined, and share left unanswered (they expire).
    pub decline_probability: f64,
    pub no_reply_probability: f64,
    /// Time spent on site, by default and per kind.
    pub on_site: DistSpec,
    #[serde(default)]
    pub on_site_by_kind: BTreeMap<AlarmKind, DistSpec>,
    #[serde(rename = "municipality")]
    pub municipalities: Vec<ShiftCounts<MunicipalityId>>,
}

/// People on duty per shift: day 07–15, evening 15–23, night 23–07 (UTC).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftCounts<Id> {
    pub id: Id,
    pub day: u32,
    pub evening: u32,
    pub night: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorsSection {
    /// From a free operator seeing the alarm until answering it.
    #[serde(default = "default_pickup")]
    pub answer_delay: DistSpec,
    #[serde(default = "default_talk")]
    pub talk_time: DistSpec,
    /// The share of alarms a centre resolves itself ("avklart"); per municipality overrides.
    #[serde(default = "default_resolve")]
    pub resolve_share: f64,
    #[serde(default)]
    pub resolve_share_by_municipality: BTreeMap<MunicipalityId, f64>,
    /// Operators per shift per centre; a centre not listed keeps its configured count all day.
    #[serde(default, rename = "centre")]
    pub centres: Vec<ShiftCounts<CentreId>>,
}

impl Default for OperatorsSection {
    fn default() -> Self {
        Self {
            answer_delay: default_pickup(),
            talk_time: default_talk(),
            resolve_share: default_resolve(),
            resolve_share_by_municipality: BTreeMap::new(),
            centres: Vec::new(),
        }
    }
}

fn default_pickup() -> DistSpec {
    DistSpec::Constant(5.0)
}
fn default_talk() -> DistSpec {
    DistSpec::Lognormal { median: 90.0, spread: 1.6 }
}
fn default_resolve() -> f64 {
    0.32
}

/// Yearly costs, NOK. Defaults from DOMAIN.md (see docs/simulation.md for the derivation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostSection {
    /// The shared centre's whole yearly cost and its owners: 10 % split equally over the
    /// owners, 90 % by population.
    pub shared_centre_total: f64,
    pub shared_centre_owners: u32,
    pub shared_centre_owner_population: f64,
    /// A private centre's price per alarm user per year.
    pub private_centre_per_user: f64,
    /// An own centre: full-time equivalents and the yearly cost of one, split by population.
    pub own_centre_fte: f64,
    pub fte_cost: f64,
    /// A mobile guard room's backup centre, as a share of the municipality's shared-centre cost.
    pub mobile_guard_room_backup_share: f64,
}

impl Default for CostSection {
    fn default() -> Self {
        Self {
            shared_centre_total: 14_300_000.0,
            shared_centre_owners: 17,
            shared_centre_owner_population: 79_700.0,
            private_centre_per_user: 3_000.0,
            own_centre_fte: 10.0,
            fte_cost: 650_000.0,
            mobile_guard_room_backup_share: 0.30,
        }
    }
}

/// A scenario, checked and ready to run.
pub struct Scenario {
    pub file: ScenarioFile,
    pub settings: Settings,
    pub base: EngineConfig,
    pub start: Timestamp,
    pub dir: PathBuf,
    pub reply_delay: Dist,
    pub on_site: Dist,
    pub on_site_by_kind: BTreeMap<AlarmKind, Dist>,
    pub answer_delay: Dist,
    pub talk_time: Dist,
}

pub const DEFAULT_HOURLY: [f64; 24] = [0.5, 0.4, 0.4, 0.4, 0.4, 0.5, 0.7, 1.0, 1.6, 1.8, 1.8, 1.6, 1.3, 1.2, 1.1, 1.1, 1.1, 1.1, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6];

pub fn default_kind_mix() -> BTreeMap<AlarmKind, f64> {
    use AlarmKind::*;
    [
        (Safety, 0.74),
        (Fall, 0.06),
        (ManDown, 0.01),
        (Door, 0.04),
        (Wandering, 0.02),
        (Bed, 0.03),
        (Smoke, 0.01),
        (Medication, 0.02),
        (Assistance, 0.02),
        (BatteryLow, 0.02),
        (PowerFailure, 0.005),
        (HeartbeatMissed, 0.01),
        (ConnectionLost, 0.005),
    ]
    .into_iter()
    .collect()
}

impl AlarmsMunicipality {
    /// The mean rate, alarms a year.
    pub fn yearly(&self) -> f64 {
        self.per_hour.map_or(self.per_year, |h| h * 24.0 * 365.0)
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, &dir).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_toml(text: &str, dir: &Path) -> Result<Scenario, String> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let settings = Settings::from_file(&dir.join(&file.simulation.config)).map_err(|e| e.0)?;
        let base = settings.engine_config().map_err(|e| e.0)?;
        let start = Timestamp::parse_rfc3339(&file.simulation.start).map_err(|e| format!("simulation.start: {e}"))?;
        let s = &file;
        if s.simulation.days == 0 || s.simulation.replications == 0 {
            return Err("simulation.days and simulation.replications must be at least 1".into());
        }
        if !matches!(s.simulation.compare.as_str(), "all" | "configured") {
            return Err(format!("simulation.compare must be \"all\" or \"configured\", not {:?}", s.simulation.compare));
        }
        for p in
            [s.staff.decline_probability, s.staff.no_reply_probability, s.operators.resolve_share, s.alarms.heavy_user_share, s.alarms.heavy_user_alarm_share]
        {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("probabilities and shares must be within 0..1 (found {p})"));
            }
        }
        if s.staff.decline_probability + s.staff.no_reply_probability > 1.0 {
            return Err("staff.decline_probability + staff.no_reply_probability must not exceed 1".into());
        }
        if let Some(h) = &s.alarms.hourly_profile {
            if h.len() != 24 || h.iter().any(|x| !x.is_finite() || *x < 0.0) || h.iter().sum::<f64>() <= 0.0 {
                return Err("alarms.hourly_profile needs 24 weights ≥ 0, not all 0".into());
            }
        }
        if let Some(w) = &s.alarms.weekday_profile {
            if w.len() != 7 || w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 {
                return Err("alarms.weekday_profile needs 7 weights ≥ 0, not all 0".into());
            }
        }
        for m in &s.alarms.municipalities {
            if base.municipality_index(&m.id).is_none() {
                return Err(format!("alarms.municipality {}: not in the engine configuration", m.id));
            }
            if m.users == 0 || !(m.per_year.is_finite() && m.per_year >= 0.0) || m.per_hour.is_some_and(|h| !(h.is_finite() && h >= 0.0)) {
                return Err(format!("alarms.municipality {}: users ≥ 1 and per_year (or per_hour) ≥ 0", m.id));
            }
            if m.per_hour.is_some() && m.per_year != 0.0 {
                return Err(format!("alarms.municipality {}: give per_year or per_hour, not both", m.id));
            }
        }
        for m in &s.staff.municipalities {
            if base.municipality_index(&m.id).is_none() {
                return Err(format!("staff.municipality {}: not in the engine configuration", m.id));
            }
        }
        for c in &s.operators.centres {
            if base.centre_index(&c.id).is_none() {
                return Err(format!("operators.centre {}: not in the engine configuration", c.id));
            }
        }
        let reply_delay = s.staff.reply_delay.build("staff.reply_delay", Some(dir))?;
        let on_site = s.staff.on_site.build("staff.on_site", Some(dir))?;
        let mut on_site_by_kind = BTreeMap::new();
        for (k, d) in &s.staff.on_site_by_kind {
            on_site_by_kind.insert(*k, d.build(&format!("staff.on_site_by_kind.{k}"), Some(dir))?);
        }
        let answer_delay = s.operators.answer_delay.build("operators.answer_delay", Some(dir))?;
        let talk_time = s.operators.talk_time.build("operators.talk_time", Some(dir))?;
        let scenario = Scenario { file, settings, base, start, dir: dir.to_owned(), reply_delay, on_site, on_site_by_kind, answer_delay, talk_time };
        for model in scenario.models() {
            scenario.config_for(model).map_err(|e| format!("model {}: {e}", model.map_or("configured", |m| m.as_str())))?;
        }
        Ok(scenario)
    }

    /// The models to run: all four, or `None` for "as configured".
    pub fn models(&self) -> Vec<Option<ResponseModel>> {
        if self.file.simulation.compare == "all" {
            [ResponseModel::SharedCentre, ResponseModel::MobileGuardRoom, ResponseModel::PrivateCentre, ResponseModel::OwnCentre]
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None]
        }
    }

    /// The engine configuration with every municipality under `model` (or as configured).
    pub fn config_for(&self, model: Option<ResponseModel>) -> Result<EngineConfig, String> {
        let Some(model) = model else { return Ok(self.base.clone()) };
        let mut settings = self.settings.clone();
        let m = &self.file.models;
        let centre = |c: &Option<CentreId>, key: &str| c.clone().ok_or_else(|| format!("[models] {key} is needed to compare the models"));
        for muni in &mut settings.municipalities {
            muni.model = model;
            match model {
                ResponseModel::SharedCentre => muni.response_centre = Some(centre(&m.shared_centre, "shared_centre")?),
                ResponseModel::PrivateCentre => muni.response_centre = Some(centre(&m.private_centre, "private_centre")?),
                ResponseModel::OwnCentre => muni.response_centre = Some(centre(&m.own_centre, "own_centre")?),
                ResponseModel::MobileGuardRoom => {
                    muni.response_centre = None;
                    muni.backup = m.mobile_guard_room_backup.clone().or(muni.backup.clone());
                }
            }
        }
        settings.engine_config().map_err(|e| e.0)
    }

    pub fn resolve_share(&self, m: &MunicipalityId) -> f64 {
        self.file.operators.resolve_share_by_municipality.get(m).copied().unwrap_or(self.file.operators.resolve_share)
    }
}
