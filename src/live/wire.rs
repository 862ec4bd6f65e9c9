//! The MQTT wire contract, version 1 (docs/mqtt.md): JSON payloads in, core `Input`s
//! out, or a [`WireReject`] with a reason a person can act on.
//!
//! Parsing is strict: unknown fields, wrong types, unknown kinds, out-of-range
//! positions, oversized payloads and absurd timestamps are refused here, before the
//! engine sees anything. Whether a resident, staff member or municipality exists is
//! the engine's question (it answers with `Action::Rejected`).

use std::time::Duration;

use serde::Deserialize;
use tracing::error;

use super::errors::ErrorCode;
use super::panic_text;
use crate::settings::WireSection;

use crate::core::{
    Alarm, AlarmId, AlarmKind, AlarmText, GatewayId, IncidentId, Input, MunicipalityId, Outcome, Position, Priority, ResidentId, StaffId, StaffReply, Timestamp,
};

/// Limits on what the wire accepts.
#[derive(Debug, Clone, Copy)]
pub struct WireLimits {
    /// Larger payloads are refused unread.
    pub max_payload_bytes: usize,
    /// An alarm raised further in the future than this says its device's clock is
    /// fast. It is taken all the same (see [`clock_ahead`]): the answer clock starts
    /// when the alarm reaches vakt, so the device's time changes nothing but the
    /// `raised_at` the staff see.
    pub max_future: Duration,
    /// An alarm raised longer ago than this is refused (a replay from another era).
    pub max_age: Duration,
    /// Any time further ahead than this is refused: not a clock that runs fast but a
    /// broken one (year 9999), which would be stored and shown as it came.
    pub max_ahead: Duration,
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits::from(&WireSection::default())
    }
}

impl From<&WireSection> for WireLimits {
    fn from(w: &WireSection) -> Self {
        WireLimits {
            max_payload_bytes: w.max_payload_bytes,
            max_future: Duration::from_secs(w.max_future_secs),
            max_age: Duration::from_secs(w.max_age_secs),
            max_ahead: Duration::from_secs(w.max_ahead_secs),
        }
    }
}

/// The earliest time the wire takes (2000-01-01T00:00:00Z): before it, a device's
/// clock has been reset (a base unit's `connected_at` of year 0000 raised an alarm).
pub const EARLIEST_MS: i64 = 946_684_800_000;

/// A time from the wire (`field` names it), refused as `absurd_timestamp` when it does
/// not parse, is before [`EARLIEST_MS`], or is further ahead of `now` than `max_ahead`.
fn wire_time(field: &str, text: &str, now: Timestamp, limits: &WireLimits) -> Result<Timestamp, WireReject> {
    let t = Timestamp::parse_rfc3339(text).map_err(|e| WireReject::new(ErrorCode::AbsurdTimestamp, format!("{field}: {e}")))?;
    if t.as_millis() < EARLIEST_MS {
        return Err(WireReject::new(ErrorCode::AbsurdTimestamp, format!("{field} {t} is before 2000: the device's clock was reset")));
    }
    if t > now + limits.max_ahead {
        return Err(WireReject::new(
            ErrorCode::AbsurdTimestamp,
            format!("{field} {t} is more than {} h ahead of vakt's clock ({now}): the device's clock is broken", limits.max_ahead.as_secs() / 3600),
        ));
    }
    Ok(t)
}

/// Why a message was refused: a stable code (for the metric label and the rejects
/// topic; the API answers a staff member's body it refuses with the same) and a detail
/// for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireReject {
    pub code: ErrorCode,
    pub detail: String,
}

impl WireReject {
    fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into() }
    }
}

impl std::fmt::Display for WireReject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// The codes, all of them: the metric's `reason` label takes only these values.
pub const REJECT_CODES: &[ErrorCode] = &[
    ErrorCode::PayloadTooLarge,
    ErrorCode::NotUtf8,
    ErrorCode::MalformedJson,
    ErrorCode::InvalidField,
    ErrorCode::UnknownKind,
    ErrorCode::AbsurdTimestamp,
    ErrorCode::BadTopic,
    ErrorCode::Unreadable,
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmMsg {
    alarm_id: String,
    resident_id: String,
    kind: String,
    priority: Option<Priority>,
    raised_at: String,
    position: Option<Position>,
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusMsg {
    state: Option<DutyState>,
    position: Option<Position>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum DutyState {
    OnDuty,
    OffDuty,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyMsg {
    incident_id: u64,
    action: ReplyAction,
    outcome: Option<Outcome>,
    note: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ReplyAction {
    Accept,
    Decline,
    EnRoute,
    OnSite,
    Close,
}

fn json<'a, T: Deserialize<'a>>(payload: &'a [u8], limits: &WireLimits) -> Result<T, WireReject> {
    if payload.len() > limits.max_payload_bytes {
        return Err(WireReject::new(ErrorCode::PayloadTooLarge, format!("{} bytes; the limit is {}", payload.len(), limits.max_payload_bytes)));
    }
    let text = std::str::from_utf8(payload).map_err(|e| WireReject::new(ErrorCode::NotUtf8, e.to_string()))?;
    serde_json::from_str(text).map_err(|e| {
        // serde_json says "invalid type", "missing field", "unknown field" or a syntax error.
        let msg = e.to_string();
        let code = if e.is_data() { ErrorCode::InvalidField } else { ErrorCode::MalformedJson };
        WireReject::new(code, msg)
    })
}

fn field<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> Result<T, WireReject> {
    r.map_err(|e| WireReject::new(ErrorCode::InvalidField, format!("{name}: {e}")))
}

/// `vakt/v1/alarms/{municipality}` → `Input::Alarm`.
pub fn parse_alarm(municipality: &str, payload: &[u8], now: Timestamp, limits: &WireLimits) -> Result<Input, WireReject> {
    let municipality = MunicipalityId::parse(municipality).map_err(|e| WireReject::new(ErrorCode::BadTopic, e.to_string()))?;
    let m: AlarmMsg = json(payload, limits)?;
    let kind = AlarmKind::parse(&m.kind).ok_or_else(|| WireReject::new(ErrorCode::UnknownKind, format!("{:?} is not an alarm kind", m.kind)))?;
    let raised_at = wire_time("raised_at", &m.raised_at, now, limits)?;
    if raised_at < now - limits.max_age {
        return Err(WireReject::new(ErrorCode::AbsurdTimestamp, format!("raised_at {raised_at} is more than {} h old", limits.max_age.as_secs() / 3600)));
    }
    Ok(Input::Alarm(Alarm {
        id: field("alarm_id", AlarmId::parse(&m.alarm_id))?,
        resident: field("resident_id", ResidentId::parse(&m.resident_id))?,
        municipality,
        kind,
        priority: m.priority,
        raised_at,
        position: m.position,
        text: m.text.map(|t| field("text", AlarmText::parse(&t))).transpose()?,
    }))
}

/// How far ahead of vakt's clock an alarm's device clock runs, when it runs further
/// ahead than `max_future`: a person pressed the alarm now, whatever the device's
/// clock says, so such an alarm is not refused. An old `raised_at` is refused (by
/// [`parse_alarm`]): a gateway sending its history again must not send staff out.
pub fn clock_ahead(alarm: &Alarm, now: Timestamp, limits: &WireLimits) -> Option<Duration> {
    (alarm.raised_at > now + limits.max_future).then(|| alarm.raised_at.since(now))
}

/// `vakt/v1/staff/{staff_id}/status` → on duty, off duty, or a position update.
pub fn parse_status(staff: &str, payload: &[u8], limits: &WireLimits) -> Result<Input, WireReject> {
    let staff = StaffId::parse(staff).map_err(|e| WireReject::new(ErrorCode::BadTopic, e.to_string()))?;
    let m: StatusMsg = json(payload, limits)?;
    match (m.state, m.position) {
        (Some(DutyState::OnDuty), position) => Ok(Input::StaffOnDuty { staff, position }),
        (Some(DutyState::OffDuty), _) => Ok(Input::StaffOffDuty { staff }),
        (None, Some(position)) => Ok(Input::StaffPosition { staff, position }),
        (None, None) => Err(WireReject::new(ErrorCode::InvalidField, "a status needs \"state\" or \"position\"")),
    }
}

/// What a gateway said of itself on `vakt/v1/gateways/{municipality}/{gateway_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayReport {
    pub municipality: MunicipalityId,
    pub gateway: GatewayId,
    /// Online or offline; `None` for an empty message, which clears the topic's retained
    /// status: the gateway is gone for good (taken out of service), to be forgotten.
    pub online: Option<bool>,
    /// A home's base unit names the one resident it serves, and when it connected: its
    /// going offline is then that resident's technical alarm (see
    /// [`GatewayReport::connection_lost`]). A receiver shared by many homes names none.
    pub base_unit: Option<BaseUnit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUnit {
    pub resident: ResidentId,
    /// When the connection the status speaks of began: the same in the retained
    /// `online` and in that connection's last will, new at each connection.
    pub connected_at: Timestamp,
}

impl GatewayReport {
    /// The `connection_lost` alarm a base unit's `offline` raises for its resident,
    /// raised at `offline_since` (when vakt learned of it: a last will carries no time of
    /// its own).
    ///
    /// Its id is the connection's start, `gateway-offline:{connected_at in ms}`: the
    /// broker gives the same retained `offline` again at each start of vakt, and the
    /// engine takes the same id for the same resident as a redelivery (within
    /// `engine.dedupe_window_hours`), so one lost connection is one alarm.
    pub fn connection_lost(&self, offline_since: Timestamp) -> Option<Alarm> {
        let unit = self.base_unit.as_ref().filter(|_| self.online == Some(false))?;
        let text = format!("Base unit {} lost its connection (connected since {}); no alarm can come through it", self.gateway, unit.connected_at);
        Some(Alarm {
            id: connection_lost_id(unit),
            resident: unit.resident.clone(),
            municipality: self.municipality.clone(),
            kind: AlarmKind::ConnectionLost,
            priority: None,
            raised_at: offline_since,
            position: None,
            text: Some(AlarmText::parse(&text).expect("a gateway id and a time fit an alarm's text")),
        })
    }
}

/// The id of the `connection_lost` alarm of a base unit's connection (see
/// [`GatewayReport::connection_lost`]).
pub fn connection_lost_id(unit: &BaseUnit) -> AlarmId {
    AlarmId::parse(&format!("gateway-offline:{}", unit.connected_at.as_millis())).expect("a number after a fixed prefix is a valid id")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayMsg {
    state: GatewayState,
    resident_id: Option<String>,
    connected_at: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum GatewayState {
    Online,
    Offline,
}

/// `vakt/v1/gateways/{municipality}/{gateway_id}` → a gateway's status (not an engine
/// input: see `live::gateways`; a base unit's `offline` becomes an alarm).
pub fn parse_gateway(municipality: &str, gateway: &str, payload: &[u8], now: Timestamp, limits: &WireLimits) -> Result<GatewayReport, WireReject> {
    let municipality = MunicipalityId::parse(municipality).map_err(|e| WireReject::new(ErrorCode::BadTopic, e.to_string()))?;
    let gateway = GatewayId::parse(gateway).map_err(|e| WireReject::new(ErrorCode::BadTopic, e.to_string()))?;
    if payload.is_empty() {
        return Ok(GatewayReport { municipality, gateway, online: None, base_unit: None });
    }
    let m: GatewayMsg = json(payload, limits)?;
    let connected_at = m.connected_at.map(|t| wire_time("connected_at", &t, now, limits)).transpose()?;
    let base_unit = match (m.resident_id, connected_at) {
        (Some(r), Some(connected_at)) => Some(BaseUnit { resident: field("resident_id", ResidentId::parse(&r))?, connected_at }),
        (Some(_), None) => return Err(WireReject::new(ErrorCode::InvalidField, "a base unit that names its resident_id gives its connected_at too")),
        (None, _) => None,
    };
    Ok(GatewayReport { municipality, gateway, online: Some(m.state == GatewayState::Online), base_unit })
}

/// The longest note a reply (or an operator's action) may carry, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

/// `vakt/v1/staff/{staff_id}/replies` → `Input::StaffReply`.
pub fn parse_reply(staff: &str, payload: &[u8], limits: &WireLimits) -> Result<Input, WireReject> {
    let staff = StaffId::parse(staff).map_err(|e| WireReject::new(ErrorCode::BadTopic, e.to_string()))?;
    let m: ReplyMsg = json(payload, limits)?;
    if let Some(note) = &m.note {
        if note.chars().count() > MAX_NOTE_CHARS {
            return Err(WireReject::new(ErrorCode::InvalidField, format!("note: longer than {MAX_NOTE_CHARS} characters")));
        }
        if let Some(why) = crate::core::text::refused(note, true) {
            return Err(WireReject::new(ErrorCode::InvalidField, format!("note: {why}")));
        }
    }
    let reply = match (m.action, m.outcome) {
        (ReplyAction::Close, Some(Outcome::ResolvedByCentre | Outcome::Cancelled)) => {
            return Err(WireReject::new(ErrorCode::InvalidField, "outcome: resolved_by_centre and cancelled are not staff outcomes"));
        }
        (ReplyAction::Close, Some(outcome)) => StaffReply::Close { outcome, note: m.note },
        (ReplyAction::Close, None) => return Err(WireReject::new(ErrorCode::InvalidField, "close needs an \"outcome\"")),
        (ReplyAction::Accept, _) => StaffReply::Accept,
        (ReplyAction::Decline, _) => StaffReply::Decline,
        (ReplyAction::EnRoute, _) => StaffReply::EnRoute,
        (ReplyAction::OnSite, _) => StaffReply::OnSite,
    };
    Ok(Input::StaffReply { staff, incident: IncidentId(m.incident_id), reply })
}

/// The alarm and resident ids of an alarm message that was refused, each where it can be
/// read (a JSON object, a field that is a valid id), whatever else is wrong with it:
/// operations can still find the person.
pub fn readable_alarm_ids(payload: &[u8], limits: &WireLimits) -> (Option<AlarmId>, Option<ResidentId>) {
    if payload.len() > limits.max_payload_bytes {
        return (None, None);
    }
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(payload) else { return (None, None) };
    let text = |k: &str| m.get(k).and_then(|v| v.as_str());
    (text("alarm_id").and_then(|s| AlarmId::parse(s).ok()), text("resident_id").and_then(|s| ResidentId::parse(s).ok()))
}

/// Routes a topic to its parser.
pub fn parse_topic(topic: &str, payload: &[u8], now: Timestamp, limits: &WireLimits) -> Result<Input, WireReject> {
    refused_on_panic(topic, || {
        let parts: Vec<&str> = topic.split('/').collect();
        match parts.as_slice() {
            ["vakt", "v1", "alarms", m] => parse_alarm(m, payload, now, limits),
            ["vakt", "v1", "staff", s, "status"] => parse_status(s, payload, limits),
            ["vakt", "v1", "staff", s, "replies"] => parse_reply(s, payload, limits),
            _ => Err(WireReject { code: ErrorCode::BadTopic, detail: format!("vakt does not take messages on {topic:?}") }),
        }
    })
}

/// A message that makes a parser panic (a fault in vakt: the parsers are pure, so
/// nothing is left half done) is refused as `unreadable` instead of ending the engine:
/// the broker would give the restarted engine the same message again, and again, and
/// no alarm after it would get through.
pub(crate) fn refused_on_panic<T>(topic: &str, parse: impl FnOnce() -> Result<T, WireReject>) -> Result<T, WireReject> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)).unwrap_or_else(|panic| {
        let why = panic_text(&*panic);
        error!(topic, panic = %why, "a parser panicked on a message: a fault in vakt; the message is refused");
        Err(WireReject { code: ErrorCode::Unreadable, detail: "vakt could not read this message (a fault in vakt, logged); it was refused".to_owned() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parser_that_panics_refuses_the_message_and_the_engine_goes_on() {
        let r = refused_on_panic::<Input>("vakt/v1/alarms/demo", || panic!("a fault"));
        let e = r.unwrap_err();
        assert_eq!(e.code, "unreadable");
        assert!(REJECT_CODES.contains(&e.code));
        let limits = WireLimits::default();
        assert!(parse_topic("vakt/v1/staff/s1/status", br#"{"state":"off_duty"}"#, Timestamp::from_secs(0), &limits).is_ok());
    }

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2024-03-01T08:00:00Z").unwrap()
    }

    fn alarm(payload: &str) -> Result<Input, WireReject> {
        parse_alarm("sogndal", payload.as_bytes(), now(), &WireLimits::default())
    }

    #[test]
    fn a_good_alarm_parses_with_every_field() {
        let i = alarm(r#"{"alarm_id":"a-1","resident_id":"r-7","kind":"fall","priority":"critical","raised_at":"2024-03-01T08:59:58+01:00","position":{"lat":61.23,"lon":7.1},"text":"Falt på badet"}"#).unwrap();
        let Input::Alarm(a) = i else { panic!("not an alarm") };
        assert_eq!((a.id.as_str(), a.resident.as_str(), a.municipality.as_str()), ("a-1", "r-7", "sogndal"));
        assert_eq!((a.kind, a.priority), (AlarmKind::Fall, Some(Priority::Critical)));
        assert_eq!(a.raised_at, now() - Duration::from_secs(2));
        assert_eq!(a.text.unwrap().as_str(), "Falt på badet");
        assert!(alarm(r#"{"alarm_id":"a","resident_id":"r","kind":"safety","raised_at":"2024-03-01T08:00:00Z"}"#).is_ok());
    }

    #[test]
    fn a_gateway_says_online_or_offline_or_clears_its_status() {
        let l = WireLimits::default();
        let online = parse_gateway("sogndal", "gw-1", br#"{"state":"online"}"#, now(), &l).unwrap();
        assert_eq!((online.municipality.as_str(), online.gateway.as_str(), online.online), ("sogndal", "gw-1", Some(true)));
        assert_eq!(parse_gateway("sogndal", "gw-1", br#"{"state":"offline"}"#, now(), &l).unwrap().online, Some(false));
        assert_eq!(parse_gateway("sogndal", "gw-1", b"", now(), &l).unwrap().online, None);
        let code = |m: &str, g: &str, p: &[u8]| parse_gateway(m, g, p, now(), &l).unwrap_err().code;
        assert_eq!(code("sogndal", "gw-1", br#"{"state":"asleep"}"#), "invalid_field");
        assert_eq!(code("sogndal", "gw-1", br#"{"state":"online","battery":3}"#), "invalid_field");
        assert_eq!(code("sogndal", "gw-1", b"{}"), "invalid_field");
        assert_eq!(code("sogndal", "gw-1", b"online"), "malformed_json");
        assert_eq!(code("sogndal", "gw 1", br#"{"state":"online"}"#), "bad_topic");
        assert_eq!(code("", "gw-1", br#"{"state":"online"}"#), "bad_topic");
        assert_eq!(online.connection_lost(Timestamp::from_millis(0)), None, "a shared receiver raises no alarm");
    }

    #[test]
    fn a_base_unit_that_goes_offline_raises_one_alarm_for_its_resident() {
        let l = WireLimits::default();
        let now = Timestamp::parse_rfc3339("2026-11-28T10:00:00Z").unwrap();
        let will = br#"{"state":"offline","resident_id":"r-17","connected_at":"2026-11-20T06:00:00.250Z"}"#;
        let r = parse_gateway("sogndal", "bu-17", will, now, &l).unwrap();
        assert_eq!(r.base_unit.as_ref().map(|b| b.resident.as_str()), Some("r-17"));
        let a = r.connection_lost(now).unwrap();
        assert_eq!(
            (a.id.as_str(), a.resident.as_str(), a.municipality.as_str(), a.kind),
            ("gateway-offline:1795154400250", "r-17", "sogndal", AlarmKind::ConnectionLost)
        );
        assert_eq!((a.raised_at, a.priority, a.position), (now, None, None));
        assert!(a.text.unwrap().as_str().contains("bu-17"));
        // The same will again (a restart of vakt, a redelivery): the same alarm id.
        assert_eq!(parse_gateway("sogndal", "bu-17", will, now, &l).unwrap().connection_lost(now + Duration::from_secs(60)).unwrap().id, a.id);
        // Its `online` raises nothing.
        let online =
            parse_gateway("sogndal", "bu-17", br#"{"state":"online","resident_id":"r-17","connected_at":"2026-11-20T06:00:00.250Z"}"#, now, &l).unwrap();
        assert!(online.base_unit.is_some() && online.connection_lost(now).is_none());
        let code = |p: &[u8]| parse_gateway("sogndal", "bu-17", p, now, &l).unwrap_err().code;
        assert_eq!(code(br#"{"state":"offline","resident_id":"r-17"}"#), "invalid_field");
        assert_eq!(code(br#"{"state":"offline","resident_id":"r 17","connected_at":"2026-11-20T06:00:00Z"}"#), "invalid_field");
        assert_eq!(code(br#"{"state":"offline","resident_id":"r-17","connected_at":"monday"}"#), "absurd_timestamp");
        // A clock reset to year 0, or one far ahead: refused, not an alarm.
        assert_eq!(code(br#"{"state":"offline","resident_id":"r-17","connected_at":"0000-01-01T00:00:00Z"}"#), "absurd_timestamp");
        assert_eq!(code(br#"{"state":"offline","resident_id":"r-17","connected_at":"1999-12-31T23:59:59Z"}"#), "absurd_timestamp");
        assert_eq!(code(br#"{"state":"offline","resident_id":"r-17","connected_at":"2026-11-29T10:00:01Z"}"#), "absurd_timestamp");
        assert!(
            parse_gateway("sogndal", "bu-17", br#"{"state":"offline","resident_id":"r-17","connected_at":"2026-11-29T09:59:59Z"}"#, now, &l).is_ok(),
            "within a day ahead"
        );
    }

    #[test]
    fn every_kind_of_bad_alarm_has_its_reason() {
        let ok = r#""alarm_id":"a","resident_id":"r","raised_at":"2024-03-01T08:00:00Z""#;
        let cases = [
            ("{not json", "malformed_json"),
            (&format!(r#"{{{ok},"kind":"earthquake"}}"#), "unknown_kind"),
            (&format!(r#"{{{ok},"kind":7}}"#), "invalid_field"),
            (r#"{"alarm_id":"a","kind":"fall","raised_at":"2024-03-01T08:00:00Z"}"#, "invalid_field"),
            (&format!(r#"{{{ok},"kind":"fall","colour":"red"}}"#), "invalid_field"),
            (&format!(r#"{{{ok},"kind":"fall","position":{{"lat":95,"lon":7}}}}"#), "invalid_field"),
            (&format!(r#"{{{ok},"kind":"fall","priority":"urgent"}}"#), "invalid_field"),
            (r#"{"alarm_id":"a/b","resident_id":"r","kind":"fall","raised_at":"2024-03-01T08:00:00Z"}"#, "invalid_field"),
            (r#"{"alarm_id":"a","resident_id":"r","kind":"fall","raised_at":"yesterday"}"#, "absurd_timestamp"),
            (r#"{"alarm_id":"a","resident_id":"r","kind":"fall","raised_at":"1999-01-01T00:00:00Z"}"#, "absurd_timestamp"),
            // A broken clock: more than a day ahead (a fast one, less, is taken).
            (r#"{"alarm_id":"a","resident_id":"r","kind":"fall","raised_at":"9999-12-31T23:59:59Z"}"#, "absurd_timestamp"),
            (r#"{"alarm_id":"a","resident_id":"r","kind":"fall","raised_at":"2024-03-02T08:00:01Z"}"#, "absurd_timestamp"),
            // Text that would read otherwise than sent: a right-to-left override, an isolate, a zero-width space.
            (&format!(r#"{{{ok},"kind":"fall","text":"Nøkkelboks \u202e4321"}}"#), "invalid_field"),
            (&format!(r#"{{{ok},"kind":"fall","text":"Ring \u2066naboen\u2069"}}"#), "invalid_field"),
            (&format!(r#"{{{ok},"kind":"fall","text":"Falt\u200b"}}"#), "invalid_field"),
        ];
        for (payload, code) in cases {
            let e = alarm(payload).unwrap_err();
            assert_eq!(e.code, code, "{payload}: {e}");
            assert!(REJECT_CODES.contains(&e.code));
            assert!(!e.detail.is_empty());
        }
        let big = format!(r#"{{"alarm_id":"a","resident_id":"r","kind":"fall","raised_at":"2024-03-01T08:00:00Z","text":"{}"}}"#, "x".repeat(20_000));
        assert_eq!(alarm(&big).unwrap_err().code, "payload_too_large");
        assert_eq!(parse_alarm("sogndal", &[0xff, 0xfe], now(), &WireLimits::default()).unwrap_err().code, "not_utf8");
        assert_eq!(parse_alarm("a+b", b"{}", now(), &WireLimits::default()).unwrap_err().code, "bad_topic");
    }

    #[test]
    fn an_alarm_from_a_fast_clock_is_taken_and_its_clock_told() {
        let limits = WireLimits::default();
        let at = |t: &str| {
            let Input::Alarm(a) = alarm(&format!(r#"{{"alarm_id":"a","resident_id":"r","kind":"fall","raised_at":"{t}"}}"#)).unwrap() else {
                panic!("not an alarm")
            };
            clock_ahead(&a, now(), &limits)
        };
        assert_eq!(at("2024-03-01T08:05:00Z"), None, "within the 300 s a clock may be off");
        assert_eq!(at("2024-03-01T08:06:00Z"), Some(Duration::from_secs(360)));
        assert_eq!(at("2024-03-02T07:00:00Z"), Some(Duration::from_secs(23 * 3600)), "a clock most of a day off: still a person pressing now");
        assert_eq!(at("2024-03-01T07:00:00Z"), None, "late, not ahead");
    }

    #[test]
    fn staff_status_and_replies() {
        let l = WireLimits::default();
        assert!(matches!(
            parse_status("s1", br#"{"state":"on_duty","position":{"lat":61.2,"lon":7.1}}"#, &l),
            Ok(Input::StaffOnDuty { position: Some(_), .. })
        ));
        assert!(matches!(parse_status("s1", br#"{"state":"off_duty"}"#, &l), Ok(Input::StaffOffDuty { .. })));
        assert!(matches!(parse_status("s1", br#"{"position":{"lat":61.2,"lon":7.1}}"#, &l), Ok(Input::StaffPosition { .. })));
        assert_eq!(parse_status("s1", br#"{}"#, &l).unwrap_err().code, "invalid_field");
        assert_eq!(parse_status("s1", br#"{"state":"asleep"}"#, &l).unwrap_err().code, "invalid_field");

        let accept = parse_reply("s1", br#"{"incident_id":12,"action":"accept"}"#, &l).unwrap();
        assert_eq!(accept, Input::StaffReply { staff: StaffId::parse("s1").unwrap(), incident: IncidentId(12), reply: StaffReply::Accept });
        let close = parse_reply("s1", br#"{"incident_id":12,"action":"close","outcome":"false_alarm","note":"ok"}"#, &l).unwrap();
        assert!(matches!(close, Input::StaffReply { reply: StaffReply::Close { outcome: Outcome::FalseAlarm, .. }, .. }));
        assert_eq!(parse_reply("s1", br#"{"incident_id":12,"action":"close"}"#, &l).unwrap_err().code, "invalid_field");
        assert_eq!(parse_reply("s1", br#"{"incident_id":12,"action":"close","outcome":"cancelled"}"#, &l).unwrap_err().code, "invalid_field");
        assert_eq!(parse_reply("s1", br#"{"incident_id":"I12","action":"accept"}"#, &l).unwrap_err().code, "invalid_field");
        let hidden = parse_reply("s1", br#"{"incident_id":12,"action":"close","outcome":"false_alarm","note":"Alt vel \u202e"}"#, &l).unwrap_err();
        assert!(hidden.code == "invalid_field" && hidden.detail.contains("U+202E"), "{hidden}");
    }

    /// Any JSON value, nested a little, with strings from every script.
    fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(any::<String>(), inner, 0..4).prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// What can go wrong with one field of a good message: a character replaced (a
    /// broken encoder, a bit flip; half of them outside ASCII, where byte offsets and
    /// characters part), a character cut out, the field missing, or any value at all.
    #[derive(Debug, Clone)]
    enum Damage {
        Replace(usize, char),
        Cut(usize),
        Missing,
        Value(serde_json::Value),
    }

    fn damage() -> impl proptest::strategy::Strategy<Value = Damage> {
        use proptest::prelude::*;
        let ch = prop_oneof![any::<char>(), proptest::char::range('\u{80}', '\u{10FFFF}')];
        prop_oneof![
            4 => (any::<usize>(), ch).prop_map(|(at, c)| Damage::Replace(at, c)),
            1 => any::<usize>().prop_map(Damage::Cut),
            1 => Just(Damage::Missing),
            2 => any_json().prop_map(Damage::Value),
        ]
    }

    /// A good message (its fields in order) with up to three fields damaged.
    fn damaged(good: Vec<(&'static str, serde_json::Value)>) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let n = good.len();
        proptest::collection::vec((0..n, damage()), 0..=3).prop_map(move |hits| {
            let mut fields: Vec<(&str, Option<serde_json::Value>)> = good.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
            for (i, d) in hits {
                let f = &mut fields[i].1;
                *f = match (d, f.take()) {
                    (Damage::Missing, _) => None,
                    (Damage::Value(v), _) => Some(v),
                    (d, Some(serde_json::Value::String(text))) => {
                        let chars: Vec<char> = text.chars().collect();
                        let at = match &d {
                            Damage::Replace(at, _) | Damage::Cut(at) => at % chars.len().max(1),
                            _ => 0,
                        };
                        let mut out: Vec<char> = chars.clone();
                        match d {
                            Damage::Replace(_, c) if !out.is_empty() => out[at] = c,
                            Damage::Cut(_) if !out.is_empty() => {
                                out.remove(at);
                            }
                            _ => {}
                        }
                        Some(serde_json::Value::String(out.into_iter().collect()))
                    }
                    (_, other) => other,
                };
            }
            serde_json::Value::Object(fields.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))).collect()).to_string()
        })
    }

    /// Whatever arrives is either taken or refused with a listed code and a reason; it
    /// never panics (a panic would end the engine, and the broker would hand the same
    /// message to the restarted engine again).
    fn taken_or_refused(r: Result<Input, WireReject>) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Err(e) = r {
            proptest::prop_assert!(REJECT_CODES.contains(&e.code), "{e}");
            proptest::prop_assert!(!e.detail.is_empty(), "{e}");
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        #[test]
        fn any_alarm_message_is_taken_or_refused_with_a_reason(
            payload in damaged(vec![
                ("alarm_id", "a-1".into()), ("resident_id", "r-7".into()), ("kind", "fall".into()), ("priority", "critical".into()),
                ("raised_at", "2024-03-01T08:59:58.250+01:00".into()), ("position", serde_json::json!({ "lat": 61.23, "lon": 7.1 })),
                ("text", "Falt på badet".into()),
            ]),
            topic in proptest::prelude::any::<String>(),
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let l = WireLimits::default();
            taken_or_refused(parse_alarm("sogndal", payload.as_bytes(), now(), &l))?;
            taken_or_refused(parse_alarm(&topic, payload.as_bytes(), now(), &l))?;
            taken_or_refused(parse_alarm("sogndal", &bytes, now(), &l))?;
        }

        #[test]
        fn any_status_or_reply_is_taken_or_refused_with_a_reason(
            status in damaged(vec![("state", "on_duty".into()), ("position", serde_json::json!({ "lat": 61.23, "lon": 7.1 }))]),
            reply in damaged(vec![("incident_id", 12.into()), ("action", "close".into()), ("outcome", "false_alarm".into()), ("note", "Alt vel".into())]),
            staff in proptest::prelude::any::<String>(),
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let l = WireLimits::default();
            for who in ["s1", staff.as_str()] {
                taken_or_refused(parse_status(who, status.as_bytes(), &l))?;
                taken_or_refused(parse_reply(who, reply.as_bytes(), &l))?;
                taken_or_refused(parse_status(who, &bytes, &l))?;
                taken_or_refused(parse_reply(who, &bytes, &l))?;
            }
        }
    }

    #[test]
    fn a_refused_alarm_keeps_the_ids_that_can_be_read() {
        let l = WireLimits::default();
        let ids = |p: &str| readable_alarm_ids(p.as_bytes(), &l);
        let (a, r) = ids(r#"{"alarm_id":"gw3-17","resident_id":"r-7","kind":"earthquake","raised_at":"2031-01-01T00:00:00Z"}"#);
        assert_eq!((a.unwrap().as_str(), r.unwrap().as_str()), ("gw3-17", "r-7"));
        let (a, r) = ids(r#"{"alarm_id":"a/b","resident_id":"r-7"}"#);
        assert_eq!((a, r.map(|r| r.as_str().to_owned())), (None, Some("r-7".to_owned())), "an id that is not valid is left out");
        assert_eq!(ids(r#"{"alarm_id":7,"resident_id":null}"#), (None, None));
        assert_eq!(ids("{not json"), (None, None));
        assert_eq!(ids(r#"["a","r"]"#), (None, None));
    }
}
