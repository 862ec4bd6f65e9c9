//! The dashboard's queue: open incidents and those closed lately, one incident's whole
//! timeline, the operators' actions, the alarms vakt refused and the gateways.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::api::{DASHBOARD, OPERATORS, body};
use super::{ApiError, AppState, Authed};
use crate::core::{IncidentId, IncidentView, Timestamp};
use crate::live::accounts::{self, User};
use crate::live::clock::wall_clock;
use crate::live::driver::{ActOutcome, Driver, OperatorAct, WebAct, WebAction};
use crate::live::errors::ErrorCode;
use crate::live::store::HistoryEvent;

/// An open incident as the dashboard shows it.
pub(super) fn incident_json(d: &Driver, v: &IncidentView) -> Value {
    let m = &d.engine().config().municipalities[v.municipality];
    let ctx = d.context(v.id);
    json!({
        "incident_id": v.id.0,
        "open": true,
        "municipality": m.id.as_str(),
        "model": m.model.as_str(),
        "kind": v.kind.as_str(),
        "priority": v.priority.to_string(),
        "stage": v.stage.code(),
        "received_at": v.received_at.to_string(),
        "answered_at": v.answered_at.map(|t| t.to_string()),
        "queued_at": v.queued_at.as_ref().map(|c| c.as_str()),
        "live_offers": v.live_offers.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "assigned": v.assigned.as_ref().map(|s| s.as_str()),
        "next_deadline": v.next_deadline.map(|t| t.to_string()),
        "set_aside": v.set_aside,
        "resident_id": v.resident.as_str(),
        "address": ctx.map(|c| c.address.as_str()),
        "notes": ctx.map(|c| c.notes.as_str()),
        "text": ctx.and_then(|c| c.text.as_deref()),
        "position": ctx.map(|c| c.position),
        "alarm_id": ctx.map(|c| c.alarm.as_str()),
    })
}

/// A closed incident, from its stored events.
pub(super) fn closed_json(id: i64, events: &[HistoryEvent]) -> Option<Value> {
    let parsed: Vec<Value> = events.iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect();
    let find = |t: &str| parsed.iter().find(|e| e["type"] == t);
    let raised = find("raised")?;
    let closed = find("closed")?;
    Some(json!({
        "incident_id": id,
        "open": false,
        "municipality": raised["municipality"],
        "model": raised["model"],
        "kind": raised["kind"],
        "priority": raised["priority"],
        "stage": "closed",
        "received_at": raised["at"],
        "answered_at": find("answered").map(|a| a["at"].clone()),
        "answer_secs": find("answered").map(|a| a["answer_secs"].clone()),
        "closed_at": closed["at"],
        "outcome": closed["outcome"],
        "resident_id": raised["resident_id"],
        "position": raised["position"],
        "alarm_id": raised["alarm_id"],
    }))
}

/// Open incidents in the user's scope, and those closed in the last two hours.
pub(super) async fn incidents(State(s): State<AppState>, a: Authed) -> Result<Json<Value>, ApiError> {
    a.require(DASHBOARD)?;
    let user = a.user.clone();
    let mut list =
        s.read(move |d| d.engine().open_incidents().filter(|v| d.in_scope(&user, v.municipality)).map(|v| incident_json(d, &v)).collect::<Vec<_>>()).await?;
    let since = wall_clock().as_millis() - 2 * 3600 * 1000;
    for closed in s.stored(s.store.closed_since(since, 100)).await? {
        if let Some(v) = closed_json(closed.incident, &closed.events).filter(|v| municipality_visible(&s, &a.user, &v["municipality"])) {
            list.push(v);
        }
    }
    Ok(Json(json!({ "incidents": list, "target_secs": s.config.target_answer.as_secs() })))
}

pub(super) fn municipality_visible(s: &AppState, user: &User, m: &Value) -> bool {
    m.as_str().and_then(|m| crate::core::MunicipalityId::parse(m).ok()).is_some_and(|m| accounts::may_see_id(&s.config, user, &m))
}

/// One incident: its state and its whole timeline (engine events and who did what).
pub(super) async fn incident(State(s): State<AppState>, a: Authed, Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    a.require(DASHBOARD)?;
    let events = s.stored(s.store.incident_events(id as i64)).await?;
    let timeline: Vec<Value> = events.iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect();
    let Some(raised) = timeline.iter().find(|e| e["type"] == "raised") else {
        return Err(ApiError::new(ErrorCode::UnknownIncident, format!("no incident {id}")));
    };
    if !municipality_visible(&s, &a.user, &raised["municipality"]) {
        return Err(ApiError::new(ErrorCode::NotYourCentre, format!("incident {id} is in a municipality your centre does not answer for")));
    }
    let current = s.read(move |d| d.engine().incident(IncidentId(id)).map(|v| incident_json(d, &v))).await?;
    let current = current.or_else(|| closed_json(id as i64, &events));
    let audit = s.stored(s.store.incident_audit(id as i64)).await?;
    let audit: Vec<Value> = audit.into_iter().map(|r| json!({ "at": Timestamp::from_millis(r.at_ms).to_string(), "username": r.username, "role": r.role, "action": r.action, "detail": r.detail, "outcome": r.outcome })).collect();
    Ok(Json(json!({ "incident": current, "events": timeline, "audit": audit })))
}

pub(super) fn outcome_response(outcome: ActOutcome) -> Result<Json<Value>, ApiError> {
    match outcome {
        ActOutcome::Done { events } => Ok(Json(json!({ "ok": true, "events": events }))),
        ActOutcome::Refused { code, detail } => Err(ApiError::new(code, detail)),
    }
}

/// answer, resolve, forward_to_home_care, assign, escalate, note.
pub(super) async fn incident_action(
    State(s): State<AppState>,
    a: Authed,
    Path(id): Path<u64>,
    b: Result<Json<OperatorAct>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    a.require(OPERATORS)?;
    let act = body(b)?;
    let outcome = s.act(WebAct { who: a.user, what: WebAction::Operator { incident: IncidentId(id), act } }).await?;
    outcome_response(outcome)
}

/// Whose refused alarms a dashboard user sees: those of the municipalities they see,
/// and those on a municipality no one has (a typo in a gateway's topic): an alarm that
/// is nobody's is everybody's concern.
pub(super) struct RefusedScope {
    visible: Vec<String>,
    configured: Vec<String>,
}

impl RefusedScope {
    pub(super) fn of(s: &AppState, user: &User) -> RefusedScope {
        RefusedScope {
            visible: accounts::visible_municipalities(&s.config, user).map(|m| m.id.as_str().to_owned()).collect(),
            configured: s.config.municipalities.iter().map(|m| m.id.as_str().to_owned()).collect(),
        }
    }
    pub(super) fn sees(&self, municipality: &str) -> bool {
        self.visible.iter().any(|m| m == municipality) || !self.configured.iter().any(|m| m == municipality)
    }
}

/// The latest refused alarms in the user's scope, newest first (the last 200, kept
/// across restarts in the audit trail):
/// each a person who may still need help, whom no one was offered.
pub(super) async fn refused(State(s): State<AppState>, a: Authed) -> Result<Json<Value>, ApiError> {
    a.require(DASHBOARD)?;
    let scope = RefusedScope::of(&s, &a.user);
    let list = s.read(move |d| d.refused_alarms().filter(|r| scope.sees(&r.municipality)).map(|r| r.message.clone()).collect::<Vec<Value>>()).await?;
    Ok(Json(json!({ "refused": list })))
}

/// The gateways of the user's municipalities with their latest status, offline first
/// (see `live::gateways`): a gateway offline is alarms that cannot reach vakt.
pub(super) async fn gateways(State(s): State<AppState>, a: Authed) -> Result<Json<Value>, ApiError> {
    a.require(DASHBOARD)?;
    let user = a.user.clone();
    let mut list = s
        .read(move |d| {
            d.gateways()
                .iter()
                .filter(|(m, ..)| accounts::may_see_id(d.engine().config(), &user, m))
                .map(|(m, g, st)| (st.online, json!({ "municipality": m.as_str(), "gateway_id": g.as_str(), "state": if st.online { "online" } else { "offline" }, "since": st.since.to_string(), "resident_id": st.base_unit.as_ref().map(|b| b.resident.as_str()) })))
                .collect::<Vec<_>>()
        })
        .await?;
    list.sort_by_key(|(online, _)| *online);
    Ok(Json(json!({ "gateways": list.into_iter().map(|(_, g)| g).collect::<Vec<Value>>() })))
}
