//! The staff app's API: the signed-in staff member, their duty and position, and their
//! replies (the MQTT contract's bodies).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Serialize;

use super::api::STAFF;
use super::incidents::{Done, OpenIncident, outcome_response};
use super::{ApiError, AppState, Authed};
use crate::core::Position;
use crate::live::driver::{WebAct, WebAction};
use crate::live::wire;

pub(super) fn my_staff_id(a: &Authed) -> Result<crate::core::StaffId, ApiError> {
    a.require(STAFF)?;
    a.user.staff_id.clone().ok_or_else(|| ApiError::forbidden("this user is not linked to a staff member"))
}

/// An incident offered to or held by the signed-in staff member.
#[derive(Serialize)]
pub(super) struct StaffIncident {
    #[serde(flatten)]
    incident: OpenIncident,
    /// They accepted it.
    mine: bool,
    /// When their offer expires (none once it is theirs).
    expires_at: Option<String>,
}

/// The signed-in staff member: duty state, position, and what is offered to or held by them.
#[derive(Serialize)]
pub(super) struct StaffMe {
    staff_id: String,
    name: Option<String>,
    /// In the engine's directory.
    known: bool,
    on_duty: bool,
    position: Option<Position>,
    incidents: Vec<StaffIncident>,
}

pub(super) async fn staff_me(State(s): State<AppState>, a: Authed) -> Result<Json<StaffMe>, ApiError> {
    let me = my_staff_id(&a)?;
    let name = s.stored(s.store.staff_name(me.as_str())).await?;
    let v = s
        .read(move |d| {
            let e = d.engine();
            let state = e.staff_view(&me);
            let incidents = e
                .open_incidents()
                .filter(|v| v.live_offers.contains(&me) || v.assigned.as_ref() == Some(&me))
                .map(|v| StaffIncident {
                    incident: OpenIncident::of(d, &v),
                    mine: v.assigned.as_ref() == Some(&me),
                    expires_at: v.next_deadline.filter(|_| v.assigned.is_none()).map(|t| t.to_string()),
                })
                .collect();
            StaffMe {
                staff_id: me.to_string(),
                name,
                known: state.is_some(),
                on_duty: state.is_some_and(|s| s.on_duty),
                position: state.and_then(|s| s.position),
                incidents,
            }
        })
        .await?;
    Ok(Json(v))
}

pub(super) async fn staff_input(s: &AppState, a: Authed, parsed: Result<crate::core::Input, wire::WireReject>) -> Result<Json<Done>, ApiError> {
    let input = parsed.map_err(|r| ApiError::new(r.code, r.detail))?;
    let outcome = s.act(WebAct { who: a.user, what: WebAction::Staff(input) }).await?;
    outcome_response(outcome)
}

/// Body as on `vakt/v1/staff/{id}/status`: `{"state": "on_duty"|"off_duty", "position"?}` or `{"position"}`.
pub(super) async fn staff_status(State(s): State<AppState>, a: Authed, b: Bytes) -> Result<Json<Done>, ApiError> {
    let me = my_staff_id(&a)?;
    let parsed = wire::parse_status(me.as_str(), &b, &s.limits);
    staff_input(&s, a, parsed).await
}

/// Body as on `vakt/v1/staff/{id}/replies`: `{"incident_id", "action", "outcome"?, "note"?}`.
pub(super) async fn staff_reply(State(s): State<AppState>, a: Authed, b: Bytes) -> Result<Json<Done>, ApiError> {
    let me = my_staff_id(&a)?;
    let parsed = wire::parse_reply(me.as_str(), &b, &s.limits);
    staff_input(&s, a, parsed).await
}
