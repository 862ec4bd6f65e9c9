//! The dashboard's queue: open incidents and those closed lately, one incident's whole
//! timeline, the operators' actions, the alarms vakt refused, the gateways and the
//! alarm devices.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{DASHBOARD, OPERATORS, body};
use super::{ApiError, AppState, Authed};
use crate::core::{IncidentId, IncidentView, Position, Timestamp};
use crate::live::accounts::{self, User};
use crate::live::clock::wall_clock;
use crate::live::driver::{ActOutcome, Driver, OperatorAct, WebAct, WebAction};
use crate::live::errors::ErrorCode;
use crate::live::store::HistoryEvent;

/// An open incident as the dashboard and the staff app show it.
#[derive(Debug, Serialize)]
pub(super) struct OpenIncident {
    incident_id: u64,
    open: bool,
    municipality: String,
    model: &'static str,
    kind: &'static str,
    priority: String,
    stage: &'static str,
    received_at: String,
    answered_at: Option<String>,
    queued_at: Option<String>,
    live_offers: Vec<String>,
    assigned: Option<String>,
    next_deadline: Option<String>,
    set_aside: bool,
    /// Queued at a centre other than the municipality's own: its backup (or an overflow).
    at_backup: bool,
    /// Offered to everyone on duty.
    broadcast: bool,
    /// Operations have been alerted about it.
    alerted: bool,
    resident_id: String,
    address: Option<String>,
    notes: Option<String>,
    text: Option<String>,
    position: Option<Position>,
    alarm_id: Option<String>,
}

impl OpenIncident {
    /// From the engine's view of it, and what the driver remembers of its alarm.
    pub(super) fn of(d: &Driver, v: &IncidentView) -> OpenIncident {
        let m = &d.engine().config().municipalities[v.municipality];
        let ctx = d.context(v.id);
        OpenIncident {
            incident_id: v.id.0,
            open: true,
            municipality: m.id.to_string(),
            model: m.model.as_str(),
            kind: v.kind.as_str(),
            priority: v.priority.to_string(),
            stage: v.stage.code(),
            received_at: v.received_at.to_string(),
            answered_at: v.answered_at.map(|t| t.to_string()),
            queued_at: v.queued_at.as_ref().map(ToString::to_string),
            live_offers: v.live_offers.iter().map(ToString::to_string).collect(),
            assigned: v.assigned.as_ref().map(ToString::to_string),
            next_deadline: v.next_deadline.map(|t| t.to_string()),
            set_aside: v.set_aside,
            at_backup: v.queued_at.as_ref().is_some_and(|c| m.response_centre.as_ref() != Some(c)),
            broadcast: v.broadcast,
            alerted: v.alerted,
            resident_id: v.resident.to_string(),
            address: ctx.map(|c| c.address.clone()),
            notes: ctx.map(|c| c.notes.clone()),
            text: ctx.and_then(|c| c.text.clone()),
            position: ctx.map(|c| c.position),
            alarm_id: ctx.map(|c| c.alarm.to_string()),
        }
    }
}

/// An incident closed lately, from its stored events (the engine has forgotten it).
#[derive(Debug, Serialize)]
pub(super) struct ClosedIncident {
    incident_id: i64,
    open: bool,
    municipality: Option<String>,
    model: Option<String>,
    kind: Option<String>,
    priority: Option<String>,
    stage: &'static str,
    received_at: Option<String>,
    answered_at: Option<String>,
    answer_secs: Option<f64>,
    closed_at: Option<String>,
    outcome: Option<String>,
    resident_id: Option<String>,
    position: Option<Position>,
    alarm_id: Option<String>,
}

/// What a closed incident's summary reads of its stored events (docs/mqtt.md): every
/// field optional, so that an event of an older version still reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StoredEventFields {
    #[serde(rename = "type")]
    kind_of_event: String,
    at: Option<String>,
    municipality: Option<String>,
    model: Option<String>,
    kind: Option<String>,
    priority: Option<String>,
    resident_id: Option<String>,
    position: Option<Position>,
    alarm_id: Option<String>,
    answer_secs: Option<f64>,
    outcome: Option<String>,
}

impl ClosedIncident {
    /// From its stored events; `None` unless it was both raised and closed.
    fn of(id: i64, events: &[HistoryEvent]) -> Option<ClosedIncident> {
        let parsed: Vec<StoredEventFields> = events.iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect();
        let find = |t: &str| parsed.iter().find(|e| e.kind_of_event == t);
        let (raised, closed, answered) = (find("raised")?, find("closed")?, find("answered"));
        Some(ClosedIncident {
            incident_id: id,
            open: false,
            municipality: raised.municipality.clone(),
            model: raised.model.clone(),
            kind: raised.kind.clone(),
            priority: raised.priority.clone(),
            stage: "closed",
            received_at: raised.at.clone(),
            answered_at: answered.and_then(|a| a.at.clone()),
            answer_secs: answered.and_then(|a| a.answer_secs),
            closed_at: closed.at.clone(),
            outcome: closed.outcome.clone(),
            resident_id: raised.resident_id.clone(),
            position: raised.position,
            alarm_id: raised.alarm_id.clone(),
        })
    }
}

/// One incident as listed: open, or closed lately.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum IncidentSummary {
    Open(OpenIncident),
    Closed(ClosedIncident),
}

#[derive(Serialize)]
pub(super) struct IncidentList {
    incidents: Vec<IncidentSummary>,
    target_secs: u64,
}

/// Open incidents in the user's scope, and those closed in the last two hours.
pub(super) async fn incidents(State(s): State<AppState>, a: Authed) -> Result<Json<IncidentList>, ApiError> {
    a.require(DASHBOARD)?;
    let user = a.user.clone();
    let open =
        s.read(move |d| d.engine().open_incidents().filter(|v| d.in_scope(&user, v.municipality)).map(|v| OpenIncident::of(d, &v)).collect::<Vec<_>>()).await?;
    let mut incidents: Vec<IncidentSummary> = open.into_iter().map(IncidentSummary::Open).collect();
    let since = wall_clock().as_millis() - 2 * 3600 * 1000;
    for closed in s.stored(s.store.closed_since(since, 100)).await? {
        if let Some(c) = ClosedIncident::of(closed.incident, &closed.events).filter(|c| municipality_visible(&s, &a.user, c.municipality.as_deref())) {
            incidents.push(IncidentSummary::Closed(c));
        }
    }
    Ok(Json(IncidentList { incidents, target_secs: s.config.target_answer.as_secs() }))
}

pub(super) fn municipality_visible(s: &AppState, user: &User, m: Option<&str>) -> bool {
    m.and_then(|m| crate::core::MunicipalityId::parse(m).ok()).is_some_and(|m| accounts::may_see_id(&s.config, user, &m))
}

/// One line of an incident's audit trail, as the dashboard shows it.
#[derive(Serialize)]
pub(super) struct AuditLine {
    at: String,
    username: String,
    role: &'static str,
    action: String,
    detail: String,
    outcome: String,
}

/// One incident: its state, its whole timeline (the MQTT contract's incident events, as
/// stored) and who did what.
#[derive(Serialize)]
pub(super) struct IncidentDetail {
    incident: Option<IncidentSummary>,
    events: Vec<Value>,
    audit: Vec<AuditLine>,
}

pub(super) async fn incident(State(s): State<AppState>, a: Authed, Path(id): Path<u64>) -> Result<Json<IncidentDetail>, ApiError> {
    a.require(DASHBOARD)?;
    let events = s.stored(s.store.incident_events(id as i64)).await?;
    let timeline: Vec<Value> = events.iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect();
    let Some(raised) = timeline.iter().find(|e| e["type"] == "raised") else {
        return Err(ApiError::new(ErrorCode::UnknownIncident, format!("no incident {id}")));
    };
    if !municipality_visible(&s, &a.user, raised["municipality"].as_str()) {
        return Err(ApiError::new(ErrorCode::NotYourCentre, format!("incident {id} is in a municipality your centre does not answer for")));
    }
    let open = s.read(move |d| d.engine().incident(IncidentId(id)).map(|v| OpenIncident::of(d, &v))).await?;
    let incident = open.map(IncidentSummary::Open).or_else(|| ClosedIncident::of(id as i64, &events).map(IncidentSummary::Closed));
    let audit = s.stored(s.store.incident_audit(id as i64)).await?;
    let audit = audit
        .into_iter()
        .map(|r| AuditLine {
            at: Timestamp::from_millis(r.at_ms).to_string(),
            username: r.username,
            role: r.role,
            action: r.action,
            detail: r.detail,
            outcome: r.outcome,
        })
        .collect();
    Ok(Json(IncidentDetail { incident, events: timeline, audit }))
}

/// An action applied: the incident events it produced (as published).
#[derive(Serialize)]
pub(super) struct Done {
    ok: bool,
    events: Vec<Value>,
}

pub(super) fn outcome_response(outcome: ActOutcome) -> Result<Json<Done>, ApiError> {
    match outcome {
        ActOutcome::Done { events } => Ok(Json(Done { ok: true, events })),
        ActOutcome::Refused { code, detail } => Err(ApiError::new(code, detail)),
    }
}

/// answer, resolve, forward_to_home_care, assign, escalate, note.
pub(super) async fn incident_action(
    State(s): State<AppState>,
    a: Authed,
    Path(id): Path<u64>,
    b: Result<Json<OperatorAct>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    a.require(OPERATORS)?;
    let act = body(b)?;
    let outcome = s.act(WebAct { who: a.user, what: WebAction::Operator { incident: IncidentId(id), act } }).await?;
    outcome_response(outcome)
}

/// The latest refused alarms in the user's scope, newest first (the last 200, kept
/// across restarts in the audit trail):
/// each a person who may still need help, whom no one was offered.
#[derive(Serialize)]
pub(super) struct RefusedList {
    /// Each as published on `vakt/v1/rejects` (the MQTT contract's message).
    refused: Vec<Value>,
}

pub(super) async fn refused(State(s): State<AppState>, a: Authed) -> Result<Json<RefusedList>, ApiError> {
    a.require(DASHBOARD)?;
    let (config, user) = (s.config.clone(), a.user.clone());
    let refused = s
        .read(move |d| {
            d.refused_alarms().filter(|r| accounts::sees_refused(&config, &user, &r.municipality)).map(|r| r.message.clone()).collect::<Vec<Value>>()
        })
        .await?;
    Ok(Json(RefusedList { refused }))
}

/// The gateways of the user's municipalities with their latest status, offline first
/// (see `live::gateways`): a gateway offline is alarms that cannot reach vakt.
#[derive(Serialize)]
pub(super) struct Gateway {
    municipality: String,
    gateway_id: String,
    /// `online` or `offline`.
    state: &'static str,
    since: String,
    /// A home's base unit's resident.
    resident_id: Option<String>,
    /// An operator has seen to it being offline (until its status changes).
    acknowledged: bool,
}

#[derive(Serialize)]
pub(super) struct GatewayList {
    gateways: Vec<Gateway>,
}

pub(super) async fn gateways(State(s): State<AppState>, a: Authed) -> Result<Json<GatewayList>, ApiError> {
    a.require(DASHBOARD)?;
    let user = a.user.clone();
    let mut gateways = s
        .read(move |d| {
            d.gateways()
                .iter()
                .filter(|(m, ..)| accounts::may_see_id(d.engine().config(), &user, m))
                .map(|(m, g, st)| Gateway {
                    municipality: m.to_string(),
                    gateway_id: g.to_string(),
                    state: if st.online { "online" } else { "offline" },
                    since: st.since.to_string(),
                    resident_id: st.base_unit.as_ref().map(|b| b.resident.to_string()),
                    acknowledged: st.acknowledged,
                })
                .collect::<Vec<_>>()
        })
        .await?;
    // Offline first; the sort is stable, so each group keeps its order.
    gateways.sort_by_key(|g| g.state == "online");
    Ok(Json(GatewayList { gateways }))
}

/// A refused alarm on the list, by its reject's `at` and `topic`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RefusedKey {
    at: String,
    topic: String,
}

/// An operator has seen to a refused alarm: it leaves the dashboards' list (audited as
/// `refused_acknowledged`, and kept off after a restart).
pub(super) async fn acknowledge_refused(State(s): State<AppState>, a: Authed, b: Result<Json<RefusedKey>, JsonRejection>) -> Result<Json<Done>, ApiError> {
    a.require(OPERATORS)?;
    let RefusedKey { at, topic } = body(b)?;
    outcome_response(s.act(WebAct { who: a.user, what: WebAction::AcknowledgeRefused { at, topic } }).await?)
}

/// A gateway, by its municipality and id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GatewayKey {
    municipality: String,
    gateway_id: String,
}

/// An operator has seen to a gateway being offline: it leaves the dashboards' list
/// until its status changes (audited as `gateway_acknowledged`).
pub(super) async fn acknowledge_gateway(State(s): State<AppState>, a: Authed, b: Result<Json<GatewayKey>, JsonRejection>) -> Result<Json<Done>, ApiError> {
    a.require(OPERATORS)?;
    let GatewayKey { municipality, gateway_id } = body(b)?;
    let bad = |e: crate::core::ids::IdError| ApiError::new(ErrorCode::BadRequest, e.to_string());
    let (municipality, gateway) = (crate::core::MunicipalityId::parse(&municipality).map_err(bad)?, crate::core::GatewayId::parse(&gateway_id).map_err(bad)?);
    outcome_response(s.act(WebAct { who: a.user, what: WebAction::AcknowledgeGateway { municipality, gateway } }).await?)
}

/// The alarm devices of the user's municipalities with their last contact, silent ones
/// first (see `live::devices`). A device whose resident is not in the directory has no
/// municipality: admins see it.
#[derive(Serialize)]
pub(super) struct DeviceList {
    devices: Vec<crate::live::driver::DeviceView>,
}

pub(super) async fn devices(State(s): State<AppState>, a: Authed) -> Result<Json<DeviceList>, ApiError> {
    a.require(DASHBOARD)?;
    let user = a.user.clone();
    let devices = s
        .read(move |d| {
            let config = d.engine().config();
            d.device_views()
                .into_iter()
                .filter(|v| match v.municipality.as_deref().map(crate::core::MunicipalityId::parse) {
                    Some(Ok(m)) => accounts::may_see_id(config, &user, &m),
                    _ => user.role == accounts::Role::Admin,
                })
                .collect()
        })
        .await?;
    Ok(Json(DeviceList { devices }))
}
