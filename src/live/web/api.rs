//! The JSON API under `/api` (docs/api.md, `/api/openapi.json`): its one route table,
//! from which both the router and the list the OpenAPI document is tested against are
//! made. The handlers are by what they serve: `auth` (login, the user, their password),
//! `incidents` (the queue, one incident, actions, refused alarms, gateways), `map`,
//! `kpis`, `staff` (the staff app), `streams` (server-sent events).

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::http::header;
use axum::response::IntoResponse;

use super::{ApiError, AppState, auth, incidents, kpis, map, staff, streams};
use crate::live::accounts::Role;
use crate::live::errors::ErrorCode;

/// Who may read the dashboard, and who may act on it.
pub(super) const DASHBOARD: &[Role] = &[Role::Operator, Role::Admin, Role::Planner];
pub(super) const OPERATORS: &[Role] = &[Role::Operator, Role::Admin];
pub(super) const STAFF: &[Role] = &[Role::Staff];

/// The route table: each route once, as (method, path) => handler.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path;)*) => {
        /// Every route of the API, as (method, path): the OpenAPI document is tested against it.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)*];

        pub fn routes() -> Router<AppState> {
            Router::new()
                $(.route($path, axum::routing::$method($handler)))*
                .route("/api/{*rest}", axum::routing::any(|| async { ApiError::new(ErrorCode::NotFound, "no such API path (see /api/openapi.json)") }))
                .layer(axum::middleware::map_response(super::error::json_errors))
        }
    };
}

api_routes! {
    post "/api/login" => auth::login;
    post "/api/logout" => auth::logout;
    get "/api/me" => auth::me;
    post "/api/me/password" => auth::change_password;
    get "/api/incidents" => incidents::incidents;
    get "/api/incidents/{id}" => incidents::incident;
    post "/api/incidents/{id}/actions" => incidents::incident_action;
    get "/api/map" => map::map;
    get "/api/kpis" => kpis::kpis;
    get "/api/refused" => incidents::refused;
    post "/api/refused/acknowledge" => incidents::acknowledge_refused;
    get "/api/gateways" => incidents::gateways;
    post "/api/gateways/acknowledge" => incidents::acknowledge_gateway;
    get "/api/devices" => incidents::devices;
    get "/api/stream" => streams::stream;
    get "/api/staff/me" => staff::staff_me;
    post "/api/staff/me/status" => staff::staff_status;
    post "/api/staff/me/replies" => staff::staff_reply;
    get "/api/staff/me/stream" => streams::staff_stream;
    get "/api/openapi.json" => openapi;
}

pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// A JSON body, or 400 `bad_request` saying what is wrong with it.
pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))
}
