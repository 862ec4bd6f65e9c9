//! The dashboard's map: residents, staff and open incidents in the user's scope.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::api::DASHBOARD;
use super::incidents::OpenIncident;
use super::{ApiError, AppState, Authed};
use crate::core::Position;
use crate::live::accounts;

/// Residents, staff and open incidents in the user's scope, with positions.
#[derive(Deserialize)]
pub(super) struct MapQuery {
    /// `false`: staff and incidents only (the dashboard's reloads on live events; the
    /// residents it keeps from its last full load).
    residents: Option<bool>,
}

/// A resident on the map.
#[derive(Serialize)]
pub(super) struct MapResident {
    resident_id: String,
    municipality: String,
    position: Position,
    address: String,
}

/// A staff member on the map.
#[derive(Serialize)]
pub(super) struct MapStaff {
    staff_id: String,
    name: Option<String>,
    municipality: String,
    on_duty: bool,
    position: Option<Position>,
    busy: bool,
}

#[derive(Serialize)]
pub(super) struct Map {
    /// `null` with `?residents=false`.
    residents: Option<Vec<MapResident>>,
    staff: Vec<MapStaff>,
    incidents: Vec<OpenIncident>,
}

pub(super) async fn map(State(s): State<AppState>, a: Authed, Query(q): Query<MapQuery>) -> Result<Json<Map>, ApiError> {
    a.require(DASHBOARD)?;
    let mut names: BTreeMap<String, String> = s.stored(s.store.staff_names()).await?.into_iter().map(|n| (n.staff_id, n.name)).collect();
    // Residents from the store (in id order), not from the engine: a directory of
    // thousands made into JSON on the engine's thread would hold up the alarms behind it
    // at every map reload of every dashboard. (The engine takes directory changes within
    // 5 s; the map may show a new resident that much sooner.)
    let user = a.user;
    let residents = match q.residents {
        Some(false) => None,
        _ => Some(
            s.stored(s.store.residents_since(i64::MIN))
                .await?
                .into_iter()
                .map(|row| row.entry)
                .filter(|r| accounts::may_see_id(&s.config, &user, &r.municipality))
                .map(|r| MapResident { resident_id: r.id.to_string(), municipality: r.municipality.to_string(), position: r.home, address: r.address })
                .collect(),
        ),
    };
    let map = s
        .read(move |d| {
            let e = d.engine();
            let visible = |m: &crate::core::MunicipalityId| accounts::may_see_id(e.config(), &user, m);
            let staff = e
                .staff()
                .filter(|s| visible(&s.info.municipality))
                .map(|s| MapStaff {
                    staff_id: s.info.id.to_string(),
                    name: names.remove(s.info.id.as_str()),
                    municipality: s.info.municipality.to_string(),
                    on_duty: s.on_duty,
                    position: s.position,
                    busy: s.busy > 0,
                })
                .collect();
            let incidents = e.open_incidents().filter(|v| d.in_scope(&user, v.municipality)).map(|v| OpenIncident::of(d, &v)).collect();
            Map { residents, staff, incidents }
        })
        .await?;
    Ok(Json(map))
}
