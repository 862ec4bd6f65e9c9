//! Configuration files → a validated [`EngineConfig`].
//!
//! TOML, one file; every key is listed with its unit and default in docs/config.md.
//! Units are in the key names (`offer_timeout_secs`). Unknown keys are errors: a typo
//! must not silently fall back to a default in a system that routes emergencies.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::core::{
    AlarmKind, Backup, CentreConfig, CentreId, CentreKind, ConfigError, DrivingTime, EngineConfig, EngineConfigParts, KindRule, LadderConfig,
    MunicipalityConfig, MunicipalityId, Position, Priority, ResponseModel, Role, Roles, TravelModel,
};

/// The configuration shipped in the binary: `config/default.toml`, a small demo municipality.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub defaults: DefaultsSection,
    #[serde(default)]
    pub kinds: std::collections::BTreeMap<AlarmKind, KindSection>,
    #[serde(default, rename = "centre")]
    pub centres: Vec<CentreSection>,
    #[serde(rename = "municipality")]
    pub municipalities: Vec<MunicipalitySection>,
    #[serde(default, rename = "driving_time")]
    pub driving_times: Vec<DrivingTimeSection>,
    /// `vakt run` only: the broker, the store, the HTTP port, wire limits, gateways,
    /// sample data.
    #[serde(default)]
    pub mqtt: MqttSection,
    #[serde(default)]
    pub database: DatabaseSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub wire: WireSection,
    #[serde(default)]
    pub gateways: GatewaysSection,
    #[serde(default)]
    pub seed: SeedSection,
    /// Alarm devices (docs/devices.md): the SIA DC-09 receiver, the SCAIP receiver, and
    /// what they share.
    #[serde(default)]
    pub dc09: Dc09Section,
    #[serde(default)]
    pub scaip: ScaipSection,
    #[serde(default)]
    pub devices: DevicesSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSection {
    /// An external broker (`mqtt://` or `mqtts://`, optional `user:password@`).
    /// Without it, vakt runs its own broker on `listen`.
    pub url: Option<String>,
    /// Where the embedded broker listens.
    pub listen: String,
    /// The engine's MQTT client id: one engine per id (its persistent session).
    pub client_id: String,
    pub keep_alive_secs: u64,
    /// Messages published and not yet acknowledged by the broker, at most (1 to 65535);
    /// more wait in vakt's own queue, in order, until PUBACKs make room.
    pub inflight: u16,
}

impl Default for MqttSection {
    fn default() -> Self {
        Self { url: None, listen: "127.0.0.1:1883".into(), client_id: "vakt-engine".into(), keep_alive_secs: 10, inflight: 1000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    /// `sqlite://FILE` (created if missing) or `postgres://user@host/db`.
    pub url: String,
    /// After this many input log records, the next quiet moment (no incident open)
    /// stores a snapshot of the engine and cuts the log: restarts replay from there.
    pub checkpoint_every: u64,
    /// A site that is never quiet (or an incident left open) still gets a snapshot, with
    /// its open incidents, once this many seconds have passed since the last one.
    pub checkpoint_busy_secs: u64,
    /// A store write that has not finished after this many seconds (a database that
    /// hangs rather than refuses: a network partition, a stalled disk) counts as failed:
    /// the engine drops the connection, says it is not ready, and tries again.
    pub write_timeout_secs: u64,
}

impl DatabaseSection {
    /// `write_timeout_secs`, at least a second: the bound on the engine's writes and on
    /// the web side's own store calls alike.
    pub fn write_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.write_timeout_secs.max(1))
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self { url: "sqlite://vakt.sqlite".into(), checkpoint_every: 10_000, checkpoint_busy_secs: 600, write_timeout_secs: 10 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// The dashboard, the staff app, the HTTP API, `/metrics`, `/healthz`, `/readyz`.
    pub listen: String,
    /// Map tiles for the dashboard, as a URL template with `{z}`, `{x}`, `{y}` (for
    /// example a municipality's own tile server). Unset: positions on a plain background.
    pub tiles: Option<String>,
    /// Attribution shown under the map when `tiles` is set.
    pub tiles_attribution: String,
    /// Mark session cookies `Secure` (only sent over HTTPS). Set it when vakt is behind
    /// a TLS-terminating proxy; plain HTTP on localhost needs it off.
    pub secure_cookies: bool,
    /// Failed logins allowed per username from one client address within 5 minutes
    /// (four times as many per address, ten times as many per username in all).
    pub login_attempts: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (their own addresses).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Longest wait for a request's headers, from the connection's start or the end of
    /// the previous request, before the connection is closed.
    pub header_timeout_secs: u64,
    /// Most HTTP connections open at once (each staff app and dashboard holds one for
    /// its live updates); beyond, new ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            tiles: None,
            tiles_attribution: String::new(),
            secure_cookies: false,
            login_attempts: 5,
            trusted_proxies: Vec::new(),
            header_timeout_secs: 10,
            max_connections: 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WireSection {
    pub max_payload_bytes: usize,
    pub max_future_secs: u64,
    pub max_age_secs: u64,
    pub max_ahead_secs: u64,
}

impl Default for WireSection {
    fn default() -> Self {
        Self { max_payload_bytes: 16 * 1024, max_future_secs: 300, max_age_secs: 24 * 3600, max_ahead_secs: 24 * 3600 }
    }
}

/// Gateways' statuses (docs/mqtt.md, `vakt/v1/gateways/...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaysSection {
    /// How long a home's base unit must stay offline before vakt raises its resident's
    /// `connection_lost` alarm: a unit that reconnects within it (a mobile network's
    /// blink) raises none. 0: at once.
    pub offline_alarm_after_secs: u64,
}

impl Default for GatewaysSection {
    fn default() -> Self {
        Self { offline_alarm_after_secs: 300 }
    }
}

/// The SIA DC-09 receiver (docs/devices.md): off unless `listen` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dc09Section {
    /// TCP and UDP on this address (`HOST:PORT`).
    pub listen: Option<String>,
    /// A frame's timestamp may be this many seconds old, or this far ahead of vakt's
    /// clock; outside, vakt answers `NAK` with its own time.
    pub max_age_secs: u64,
    pub max_ahead_secs: u64,
}

impl Default for Dc09Section {
    fn default() -> Self {
        Self { listen: None, max_age_secs: 40, max_ahead_secs: 20 }
    }
}

/// The SCAIP receiver, SIP over UDP and TCP, and over TLS (docs/devices.md): each off
/// unless its address is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScaipSection {
    pub listen: Option<String>,
    /// SIP over TLS on this address, with `certificate` (PEM, the chain) and
    /// `private_key` (PEM); paths relative to the configuration file.
    pub tls_listen: Option<String>,
    pub certificate: Option<String>,
    pub private_key: Option<String>,
}

/// What the device receivers share (docs/devices.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesSection {
    /// A supervised device is silent once its `heartbeat_secs` and this have passed
    /// without a word from it; its resident then gets a `heartbeat_missed` alarm.
    pub supervision_grace_secs: u64,
    /// How long a receiver waits for a message to be stored before it answers that it
    /// was not (the device sends it again).
    pub answer_timeout_secs: u64,
    /// Connections one address may hold open at once, per receiver.
    pub max_connections_per_address: usize,
    /// A device connection silent this long is closed.
    pub idle_timeout_secs: u64,
    /// Messages one address may send per second, on average (bursts of ten times that).
    pub max_messages_per_second: u32,
}

impl Default for DevicesSection {
    fn default() -> Self {
        Self { supervision_grace_secs: 60, answer_timeout_secs: 5, max_connections_per_address: 16, idle_timeout_secs: 300, max_messages_per_second: 50 }
    }
}

/// The device receivers' addresses, checked (`Settings::device_addresses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAddresses {
    pub dc09: Option<std::net::SocketAddr>,
    pub scaip: Option<std::net::SocketAddr>,
    /// SIP over TLS: the address, the certificate file and the key file.
    pub scaip_tls: Option<(std::net::SocketAddr, String, String)>,
}

impl Settings {
    /// The receivers' addresses, and the bounds they share, checked.
    pub fn device_addresses(&self) -> Result<DeviceAddresses, ConfigError> {
        let addr = |key: &str, v: &Option<String>| -> Result<Option<std::net::SocketAddr>, ConfigError> {
            v.as_deref().map(|a| a.parse().map_err(|_| ConfigError(format!("{key} {a:?} is not HOST:PORT (an IP address and a port)")))).transpose()
        };
        let d = &self.devices;
        if d.answer_timeout_secs == 0 || d.max_connections_per_address == 0 || d.max_messages_per_second == 0 {
            return Err(ConfigError("devices.answer_timeout_secs, max_connections_per_address and max_messages_per_second must be at least 1".into()));
        }
        let scaip_tls = match (addr("scaip.tls_listen", &self.scaip.tls_listen)?, &self.scaip.certificate, &self.scaip.private_key) {
            (None, None, None) => None,
            (Some(listen), Some(certificate), Some(key)) => Some((listen, certificate.clone(), key.clone())),
            _ => return Err(ConfigError("scaip.tls_listen, scaip.certificate and scaip.private_key go together: set all three, or none".into())),
        };
        Ok(DeviceAddresses { dc09: addr("dc09.listen", &self.dc09.listen)?, scaip: addr("scaip.listen", &self.scaip.listen)?, scaip_tls })
    }
}

/// Sample residents and staff imported into an empty database at start, so a fresh
/// install does something visible. Paths are relative to the configuration file;
/// `builtin:NAME` names a file shipped inside the binary (`data/NAME`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedSection {
    pub residents: Option<String>,
    pub staff: Option<String>,
}

/// A role's name as written in configuration and CSV files (`nurse`, `health_worker`...).
pub fn parse_role(s: &str) -> Result<Role, ConfigError> {
    Role::ALL
        .into_iter()
        .find(|r| r.as_str() == s.trim())
        .ok_or_else(|| ConfigError(format!("unknown role {s:?} (nurse, health_worker, assistant, technician)")))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    pub target_answer_secs: u64,
    pub dedupe_window_hours: u64,
}

impl Default for EngineSection {
    fn default() -> Self {
        Self { target_answer_secs: 60, dedupe_window_hours: 24 }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultsSection {
    pub ladder: LadderSection,
    pub travel: TravelSection,
}

/// Every field optional: a municipality's section overrides the defaults' key by key.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LadderSection {
    pub offer_timeout_secs: Option<u64>,
    pub broadcast_after_offers: Option<u32>,
    pub broadcast_after_secs: Option<u64>,
    pub backup_after_secs: Option<u64>,
    pub alert_after_secs: Option<u64>,
    pub alert_repeat_secs: Option<u64>,
    pub retry_secs: Option<u64>,
    pub regular_helper_extra_secs: Option<u64>,
    pub skip_busy_staff: Option<bool>,
}

impl LadderSection {
    fn over(&self, base: &LadderConfig) -> LadderConfig {
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        LadderConfig {
            offer_timeout: secs(self.offer_timeout_secs, base.offer_timeout),
            broadcast_after_offers: self.broadcast_after_offers.unwrap_or(base.broadcast_after_offers),
            broadcast_after: secs(self.broadcast_after_secs, base.broadcast_after),
            backup_after: secs(self.backup_after_secs, base.backup_after),
            alert_after: secs(self.alert_after_secs, base.alert_after),
            alert_repeat: secs(self.alert_repeat_secs, base.alert_repeat),
            retry_interval: secs(self.retry_secs, base.retry_interval),
            regular_helper_extra: secs(self.regular_helper_extra_secs, base.regular_helper_extra),
            skip_busy_staff: self.skip_busy_staff.unwrap_or(base.skip_busy_staff),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TravelSection {
    pub road_factor: Option<f64>,
    pub speed_kmh: Option<f64>,
}

impl TravelSection {
    fn over(&self, base: TravelModel) -> Result<TravelModel, ConfigError> {
        TravelModel::new(self.road_factor.unwrap_or(base.road_factor), self.speed_kmh.unwrap_or(base.speed_kmh)).map_err(|e| ConfigError(e.to_string()))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSection {
    pub priority: Option<Priority>,
    #[serde(default)]
    pub required_roles: Vec<Role>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreSection {
    pub id: CentreId,
    pub name: String,
    pub kind: CentreKind,
    #[serde(default = "default_operators")]
    pub operators_on_duty: u32,
    #[serde(default = "default_overflow")]
    pub overflow_after_secs: u64,
    pub backup: Option<CentreId>,
}

fn default_operators() -> u32 {
    2
}
fn default_overflow() -> u64 {
    40
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MunicipalitySection {
    pub id: MunicipalityId,
    pub name: String,
    pub population: u32,
    pub centre: Position,
    pub model: ResponseModel,
    pub response_centre: Option<CentreId>,
    pub backup: Option<Backup>,
    #[serde(default)]
    pub ladder: LadderSection,
    #[serde(default)]
    pub travel: TravelSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrivingTimeSection {
    pub between: [MunicipalityId; 2],
    pub minutes: f64,
    /// Road distance, for the record (not used for ranking).
    pub km: Option<f64>,
}

impl Settings {
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("configuration: {e}")))
    }

    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    pub fn engine_config(&self) -> Result<EngineConfig, ConfigError> {
        let ladder = self.defaults.ladder.over(&LadderConfig::default());
        let travel = self.defaults.travel.over(TravelModel::default())?;
        let mut municipalities = Vec::new();
        for m in &self.municipalities {
            municipalities.push(MunicipalityConfig {
                id: m.id.clone(),
                name: m.name.clone(),
                population: m.population,
                centre: m.centre,
                model: m.model,
                response_centre: m.response_centre.clone(),
                backup: m.backup.clone(),
                ladder: m.ladder.over(&ladder),
                travel: m.travel.over(travel).map_err(|e| ConfigError(format!("municipality {}: {}", m.id, e.0)))?,
            });
        }
        let centres = self
            .centres
            .iter()
            .map(|c| CentreConfig {
                id: c.id.clone(),
                name: c.name.clone(),
                kind: c.kind,
                operators_on_duty: c.operators_on_duty,
                overflow_after: Duration::from_secs(c.overflow_after_secs),
                backup: c.backup.clone(),
            })
            .collect();
        let mut driving_times = Vec::new();
        for d in &self.driving_times {
            if !(d.minutes.is_finite() && d.minutes > 0.0 && d.minutes < 24.0 * 60.0) {
                return Err(ConfigError(format!("driving time between {} and {}: minutes must be within (0, 1440)", d.between[0], d.between[1])));
            }
            driving_times.push(DrivingTime { between: (d.between[0].clone(), d.between[1].clone()), time: Duration::from_secs_f64(d.minutes * 60.0) });
        }
        let kind_rules = self
            .kinds
            .iter()
            .map(|(k, s)| (*k, KindRule { priority: s.priority.unwrap_or(k.default_priority()), required_roles: Roles::of(&s.required_roles) }))
            .collect();
        if self.engine.dedupe_window_hours == 0 {
            return Err(ConfigError("engine.dedupe_window_hours must be at least 1".into()));
        }
        EngineConfig::new(EngineConfigParts {
            target_answer: Duration::from_secs(self.engine.target_answer_secs),
            dedupe_window: Duration::from_secs(self.engine.dedupe_window_hours * 3600),
            municipalities,
            centres,
            driving_times,
            kind_rules,
        })
    }
}

/// Loads `path`, or the built-in default configuration when `None`.
pub fn load(path: Option<&Path>) -> Result<(Settings, EngineConfig), ConfigError> {
    let settings = match path {
        Some(p) => Settings::from_file(p)?,
        None => Settings::from_toml(DEFAULT_TOML)?,
    };
    let config = settings.engine_config()?;
    settings.device_addresses()?;
    Ok((settings, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configurations_load() {
        let (_, c) = load(None).expect("default.toml");
        assert!(!c.municipalities.is_empty());
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (_, c) = load(Some(&root.join("config/indre-sogn.toml"))).expect("indre-sogn.toml");
        assert_eq!(c.municipalities.len(), 6);
        let sogndal = c.municipality_index(&MunicipalityId::parse("sogndal").unwrap()).unwrap();
        let vik = c.municipality_index(&MunicipalityId::parse("vik").unwrap()).unwrap();
        assert_eq!(c.driving_time(sogndal, vik), Some(Duration::from_secs(54 * 60)));
        assert_eq!(c.driving_time(vik, sogndal), Some(Duration::from_secs(54 * 60)));
        assert!(c.municipalities.iter().all(|m| m.model == ResponseModel::SharedCentre));
    }

    #[test]
    fn mistakes_are_reported_not_defaulted() {
        let base = DEFAULT_TOML;
        let typo = base.replace("offer_timeout_secs", "offer_timout_secs");
        let e = Settings::from_toml(&typo).unwrap_err();
        assert!(e.0.contains("unknown field `offer_timout_secs`"), "{e}");

        let late_backup = format!("{base}\n");
        let late_backup = late_backup.replace("backup_after_secs = 45", "backup_after_secs = 75");
        let e = Settings::from_toml(&late_backup).unwrap().engine_config().unwrap_err();
        assert!(e.0.contains("must come before the answer target"), "{e}");

        let bad_position = base.replace("lat = 61.2297", "lat = 161.2297");
        assert!(Settings::from_toml(&bad_position).unwrap_err().0.contains("latitude"));
    }
}
