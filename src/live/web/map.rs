//! The dashboard's map: residents, staff and open incidents in the user's scope.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::DASHBOARD;
use super::incidents::incident_json;
use super::{ApiError, AppState, Authed};
use crate::live::accounts;

/// Residents, staff and open incidents in the user's scope, with positions.
#[derive(Deserialize)]
pub(super) struct MapQuery {
    /// `false`: staff and incidents only (the dashboard's reloads on live events; the
    /// residents it keeps from its last full load).
    residents: Option<bool>,
}

pub(super) async fn map(State(s): State<AppState>, a: Authed, Query(q): Query<MapQuery>) -> Result<Json<Value>, ApiError> {
    a.require(DASHBOARD)?;
    let names: BTreeMap<String, String> = s.stored(s.store.staff_names()).await?.into_iter().map(|n| (n.staff_id, n.name)).collect();
    // Residents from the store (in id order), not from the engine: a directory of
    // thousands made into JSON on the engine's thread would hold up the alarms behind it
    // at every map reload of every dashboard. (The engine takes directory changes within
    // 5 s; the map may show a new resident that much sooner.)
    let user = a.user;
    let residents: Option<Vec<Value>> = match q.residents {
        Some(false) => None,
        _ => Some(
            s.stored(s.store.residents_since(i64::MIN))
                .await?
                .into_iter()
                .map(|row| row.entry)
                .filter(|r| accounts::may_see_id(&s.config, &user, &r.municipality))
                .map(|r| json!({ "resident_id": r.id.as_str(), "municipality": r.municipality.as_str(), "position": r.home, "address": r.address }))
                .collect(),
        ),
    };
    let v = s
        .read(move |d| {
            let e = d.engine();
            let visible = |m: &crate::core::MunicipalityId| accounts::may_see_id(e.config(), &user, m);
            let staff: Vec<Value> = e
                .staff()
                .filter(|s| visible(&s.info.municipality))
                .map(|s| {
                    json!({
                        "staff_id": s.info.id.as_str(), "name": names.get(s.info.id.as_str()), "municipality": s.info.municipality.as_str(),
                        "on_duty": s.on_duty, "position": s.position, "busy": s.busy > 0,
                    })
                })
                .collect();
            let incidents: Vec<Value> = e.open_incidents().filter(|v| d.in_scope(&user, v.municipality)).map(|v| incident_json(d, &v)).collect();
            json!({ "residents": residents, "staff": staff, "incidents": incidents })
        })
        .await?;
    Ok(Json(v))
}
