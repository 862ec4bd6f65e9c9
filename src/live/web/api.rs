//! The JSON API under `/api` (docs/api.md, `/api/openapi.json`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{ApiError, AppState, Authed, ClientAddr, LiveMessage, SESSION_COOKIE};
use crate::core::{IncidentId, IncidentView, Timestamp};
use crate::live::accounts::{self, Role, User};
use crate::live::clock::wall_clock;
use crate::live::driver::{ActOutcome, Driver, OperatorAct, WebAct, WebAction};
use crate::live::outbound;
use crate::live::store::{Answer, AuditRow, HistoryEvent};
use crate::live::wire;

/// Who may read the dashboard, and who may act on it.
const DASHBOARD: &[Role] = &[Role::Operator, Role::Admin, Role::Planner];
const OPERATORS: &[Role] = &[Role::Operator, Role::Admin];
const STAFF: &[Role] = &[Role::Staff];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/me/password", post(change_password))
        .route("/api/incidents", get(incidents))
        .route("/api/incidents/{id}", get(incident))
        .route("/api/incidents/{id}/actions", post(incident_action))
        .route("/api/map", get(map))
        .route("/api/kpis", get(kpis))
        .route("/api/refused", get(refused))
        .route("/api/gateways", get(gateways))
        .route("/api/stream", get(stream))
        .route("/api/staff/me", get(staff_me))
        .route("/api/staff/me/status", post(staff_status))
        .route("/api/staff/me/replies", post(staff_reply))
        .route("/api/staff/me/stream", get(staff_stream))
        .route("/api/openapi.json", get(openapi))
        .route("/api/{*rest}", any(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API path (see /api/openapi.json)") }))
        .layer(axum::middleware::map_response(json_errors))
}

/// The API's own refusals are JSON already. What axum refuses before a handler runs (a
/// path or query that does not parse, a method the path does not take) comes as text:
/// it gets the same `{"error", "message"}` shape, so an API client reads every error
/// one way.
async fn json_errors(r: Response) -> Response {
    let status = r.status();
    let json = r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return r;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).trim().to_owned()).unwrap_or_default();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("refused").to_lowercase() } else { text };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// Every route above, as (method, path): the OpenAPI document is tested against it.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/login"),
    ("post", "/api/logout"),
    ("get", "/api/me"),
    ("post", "/api/me/password"),
    ("get", "/api/incidents"),
    ("get", "/api/incidents/{id}"),
    ("post", "/api/incidents/{id}/actions"),
    ("get", "/api/map"),
    ("get", "/api/kpis"),
    ("get", "/api/refused"),
    ("get", "/api/gateways"),
    ("get", "/api/stream"),
    ("get", "/api/staff/me"),
    ("post", "/api/staff/me/status"),
    ("post", "/api/staff/me/replies"),
    ("get", "/api/staff/me/stream"),
    ("get", "/api/openapi.json"),
];

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| ApiError::bad_request("bad_request", e.body_text()))
}

fn audit_line(user: &str, role: &'static str, action: &str, outcome: &str) -> AuditRow {
    AuditRow {
        at_ms: wall_clock().as_millis(),
        username: user.to_owned(),
        role,
        action: action.to_owned(),
        incident: None,
        detail: String::new(),
        outcome: outcome.to_owned(),
    }
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    /// `"cookie"` (default: an HttpOnly session cookie and a CSRF token) or `"token"`
    /// (a bearer token for API clients, no cookie).
    #[serde(default)]
    client: Option<String>,
}

/// Over the login limit (failed logins and wrong current passwords alike, counted by
/// username and the client's address: `accounts::LoginLimiter`): audited as
/// `rate_limited`, answered 429 with Retry-After.
async fn within_limit(s: &AppState, username: &str, addr: Option<IpAddr>, audit: AuditRow, what: &str) -> Result<(), ApiError> {
    let Err(wait) = s.limiter.check(username, addr, Instant::now()) else { return Ok(()) };
    let _ = s.stored(s.store.audit(&audit)).await;
    let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", format!("too many {what}; try again in {} s", wait.as_secs().max(1)));
    e.retry_after = Some(wait);
    Err(e)
}

async fn login(State(s): State<AppState>, ClientAddr(addr): ClientAddr, b: Result<Json<LoginBody>, JsonRejection>) -> Result<Response, ApiError> {
    let b = body(b)?;
    // The audit keeps at most 64 characters of a name that does not exist.
    let claimed: String = b.username.chars().take(64).collect();
    within_limit(&s, &b.username, addr, audit_line(&claimed, "unknown", "login", "rate_limited"), "failed logins").await?;
    let found = s.stored(s.store.user(&b.username)).await?;
    let (hash, user) = match found {
        Some(stored) => (stored.password_hash, Some(stored.user)),
        None => (accounts::dummy_hash().to_owned(), None),
    };
    let password = b.password;
    // argon2 is deliberately slow: off the async workers.
    let ok = tokio::task::spawn_blocking(move || accounts::verify_password(&hash, &password)).await.unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        s.limiter.failed(&b.username, addr, Instant::now());
        let _ = s.stored(s.store.audit(&audit_line(&claimed, "unknown", "login", "wrong_credentials"))).await;
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong_credentials", "wrong username or password"));
    };
    s.limiter.succeeded(&user.username, addr);
    let token = accounts::new_token();
    let csrf = accounts::new_token();
    let now = wall_clock().as_millis();
    let ttl = accounts::SESSION_TTL;
    s.stored(s.store.create_session(&accounts::token_digest(&token), &user.username, &csrf, now, now + ttl.as_millis() as i64)).await?;
    s.stored(s.store.audit(&audit_line(&user.username, user.role.as_str(), "login", "ok"))).await?;
    let expires_at = Timestamp::from_millis(now + ttl.as_millis() as i64).to_string();
    if b.client.as_deref() == Some("token") {
        return Ok(Json(json!({ "user": user, "token": token, "expires_at": expires_at })).into_response());
    }
    let secure = if s.http.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", ttl.as_secs());
    Ok(([(header::SET_COOKIE, cookie)], Json(json!({ "user": user, "csrf_token": csrf, "expires_at": expires_at }))).into_response())
}

async fn logout(State(s): State<AppState>, a: Authed) -> Result<Response, ApiError> {
    s.stored(s.store.delete_session(&a.digest)).await?;
    s.stored(s.store.audit(&audit_line(&a.user.username, a.user.role.as_str(), "logout", "ok"))).await?;
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response())
}

#[derive(Deserialize)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// A user changes their own password: the current one is asked for again (a session
/// left open on a shared PC must not be enough), wrong answers count towards the login
/// limit, and every other session of theirs ends.
async fn change_password(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    a: Authed,
    b: Result<Json<PasswordBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let username = a.user.username.clone();
    let role = a.user.role.as_str();
    within_limit(&s, &username, addr, audit_line(&username, role, "password_change", "rate_limited"), "wrong passwords").await?;
    accounts::acceptable_password(&b.new_password).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", e.to_string()))?;
    if b.new_password == b.current_password {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "same_password", "the new password is the current one"));
    }
    let hash = s
        .stored(s.store.user(&username))
        .await?
        .map(|stored| stored.password_hash)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "session_expired", "the user no longer exists"))?;
    let (current, new) = (b.current_password, b.new_password);
    // argon2 is deliberately slow: off the async workers.
    let hashed =
        tokio::task::spawn_blocking(move || if accounts::verify_password(&hash, &current) { accounts::hash_password(&new).map(Some) } else { Ok(None) })
            .await
            .map_err(|e| ApiError::failed(anyhow::anyhow!(e)))?;
    let new_hash = match hashed.map_err(ApiError::failed)? {
        Some(h) => h,
        None => {
            s.limiter.failed(&username, addr, Instant::now());
            let _ = s.stored(s.store.audit(&audit_line(&username, role, "password_change", "wrong_credentials"))).await;
            return Err(ApiError::new(StatusCode::FORBIDDEN, "wrong_credentials", "the current password is wrong"));
        }
    };
    if !s.stored(s.store.set_password(&username, &new_hash, &a.digest)).await? {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "session_expired", "the user no longer exists"));
    }
    s.limiter.succeeded(&username, addr);
    s.stored(s.store.audit(&audit_line(&username, role, "password_change", "ok"))).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

/// The municipalities this user sees, with their model and backup team (the staff an
/// operator may assign its incidents to, besides its own): `[{id, name, model, backup_team}]`.
fn scope(s: &AppState, user: &User) -> Vec<Value> {
    accounts::visible_municipalities(&s.config, user)
        .map(|m| {
            let backup_team = match &m.backup {
                Some(crate::core::Backup::Team(t)) => Some(t.as_str()),
                _ => None,
            };
            json!({ "id": m.id.as_str(), "name": m.name, "model": m.model.as_str(), "backup_team": backup_team })
        })
        .collect()
}

async fn me(State(s): State<AppState>, a: Authed) -> Json<Value> {
    Json(json!({
        "user": a.user,
        "csrf_token": a.csrf,
        "target_secs": s.config.target_answer.as_secs(),
        "municipalities": scope(&s, &a.user),
        "tiles": s.http.tiles,
        "tiles_attribution": s.http.tiles_attribution,
    }))
}

/// An open incident as the dashboard shows it.
fn incident_json(d: &Driver, v: &IncidentView) -> Value {
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
fn closed_json(id: i64, events: &[HistoryEvent]) -> Option<Value> {
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
async fn incidents(State(s): State<AppState>, a: Authed) -> Result<Json<Value>, ApiError> {
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

fn municipality_visible(s: &AppState, user: &User, m: &Value) -> bool {
    m.as_str().and_then(|m| crate::core::MunicipalityId::parse(m).ok()).is_some_and(|m| accounts::may_see_id(&s.config, user, &m))
}

/// One incident: its state and its whole timeline (engine events and who did what).
async fn incident(State(s): State<AppState>, a: Authed, Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    a.require(DASHBOARD)?;
    let events = s.stored(s.store.incident_events(id as i64)).await?;
    let timeline: Vec<Value> = events.iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect();
    let Some(raised) = timeline.iter().find(|e| e["type"] == "raised") else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_incident", format!("no incident {id}")));
    };
    if !municipality_visible(&s, &a.user, &raised["municipality"]) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "not_your_centre", format!("incident {id} is in a municipality your centre does not answer for")));
    }
    let current = s.read(move |d| d.engine().incident(IncidentId(id)).map(|v| incident_json(d, &v))).await?;
    let current = current.or_else(|| closed_json(id as i64, &events));
    let audit = s.stored(s.store.incident_audit(id as i64)).await?;
    let audit: Vec<Value> = audit.into_iter().map(|r| json!({ "at": Timestamp::from_millis(r.at_ms).to_string(), "username": r.username, "role": r.role, "action": r.action, "detail": r.detail, "outcome": r.outcome })).collect();
    Ok(Json(json!({ "incident": current, "events": timeline, "audit": audit })))
}

fn outcome_response(outcome: ActOutcome) -> Result<Json<Value>, ApiError> {
    match outcome {
        ActOutcome::Done { events } => Ok(Json(json!({ "ok": true, "events": events }))),
        ActOutcome::Refused { code, detail } => Err(ApiError::refused(code, detail)),
    }
}

/// answer, resolve, forward_to_home_care, assign, escalate, note.
async fn incident_action(
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

/// Residents, staff and open incidents in the user's scope, with positions.
#[derive(Deserialize)]
struct MapQuery {
    /// `false`: staff and incidents only (the dashboard's reloads on live events; the
    /// residents it keeps from its last full load).
    residents: Option<bool>,
}

async fn map(State(s): State<AppState>, a: Authed, Query(q): Query<MapQuery>) -> Result<Json<Value>, ApiError> {
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

/// Share answered within the target today (since local midnight), last 7 and 30 days,
/// per municipality and per model; open incidents; staff on duty.
async fn kpis(State(s): State<AppState>, a: Authed) -> Result<Json<Value>, ApiError> {
    a.require(DASHBOARD)?;
    let now = wall_clock();
    let day = 86_400_000;
    let periods = [("today", now.norway_midnight().as_millis()), ("7d", now.as_millis() - 7 * day), ("30d", now.as_millis() - 30 * day)];
    let target = s.config.target_answer.as_secs_f64();
    let answered = s.stored(s.store.answered_since(periods[2].1)).await?;
    // (period, municipality) -> (answered, within target)
    let mut counts: BTreeMap<(usize, String), (u64, u64)> = BTreeMap::new();
    for Answer { at_ms, municipality: m, body } in &answered {
        let Ok(v) = serde_json::from_str::<Value>(body) else { continue };
        let within = v["answer_secs"].as_f64().is_some_and(|t| t <= target);
        for (p, (_, since)) in periods.iter().enumerate() {
            if *at_ms >= *since {
                let c = counts.entry((p, m.clone())).or_default();
                c.0 += 1;
                c.1 += within as u64;
            }
        }
    }
    let row = |n: u64, w: u64| json!({ "answered": n, "within_target": w, "share": if n == 0 { Value::Null } else { json!(w as f64 / n as f64) } });
    let mut out = Vec::new();
    for (p, (name, since)) in periods.iter().enumerate() {
        let mut by_model: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        let mut rows = Vec::new();
        for m in accounts::visible_municipalities(&s.config, &a.user) {
            let (n, w) = counts.get(&(p, m.id.as_str().to_owned())).copied().unwrap_or_default();
            let t = by_model.entry(m.model.as_str()).or_default();
            t.0 += n;
            t.1 += w;
            let mut r = row(n, w);
            r["municipality"] = json!(m.id.as_str());
            r["model"] = json!(m.model.as_str());
            rows.push(r);
        }
        let models: Vec<Value> = by_model
            .into_iter()
            .map(|(model, (n, w))| {
                let mut r = row(n, w);
                r["model"] = json!(model);
                r
            })
            .collect();
        out.push(json!({ "period": name, "since": Timestamp::from_millis(*since).to_string(), "municipalities": rows, "models": models }));
    }
    let user = a.user;
    let (open, on_duty) = s
        .read(move |d| {
            let e = d.engine();
            let open = e.open_incidents().filter(|v| d.in_scope(&user, v.municipality)).count();
            let on_duty = e.staff().filter(|s| s.on_duty && accounts::may_see_id(e.config(), &user, &s.info.municipality)).count();
            (open, on_duty)
        })
        .await?;
    Ok(Json(json!({ "target_secs": target, "periods": out, "open_incidents": open, "staff_on_duty": on_duty })))
}

/// Server-sent events from the live channel, filtered; `lagged` tells the page to reload
/// its state (it fell more than the channel's capacity behind).
fn live_events(
    rx: broadcast::Receiver<LiveMessage>,
    keep: impl Fn(&str, &str) -> Option<&'static str> + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((rx, keep), |(mut rx, keep)| async move {
        loop {
            match rx.recv().await {
                Ok(m) => {
                    if let Some(name) = keep(&m.0, &m.1) {
                        return Some((Ok(Event::default().event(name).data(m.1.clone())), (rx, keep)));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => return Some((Ok(Event::default().event("lagged").data(n.to_string())), (rx, keep))),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Every incident change in the user's scope, as on `vakt/v1/incidents/{m}` (event
/// `incident`), and every alarm refused in it, as on `vakt/v1/rejects` (event `refused`).
async fn stream(State(s): State<AppState>, a: Authed) -> Result<impl IntoResponse, ApiError> {
    a.require(DASHBOARD)?;
    let topics: Vec<String> = accounts::visible_municipalities(&s.config, &a.user).map(|m| outbound::incidents_topic(&m.id)).collect();
    let scope = RefusedScope::of(&s, &a.user);
    Ok(live_events(s.live.subscribe(), move |t, payload| {
        if topics.iter().any(|x| x == t) {
            return Some("incident");
        }
        let refused_alarm = t == outbound::REJECTS_TOPIC
            && serde_json::from_str::<Value>(payload).ok().is_some_and(|m| outbound::listed_municipality(&m).is_some_and(|m| scope.sees(m)));
        refused_alarm.then_some("refused")
    }))
}

/// Whose refused alarms a dashboard user sees: those of the municipalities they see,
/// and those on a municipality no one has (a typo in a gateway's topic): an alarm that
/// is nobody's is everybody's concern.
struct RefusedScope {
    visible: Vec<String>,
    configured: Vec<String>,
}

impl RefusedScope {
    fn of(s: &AppState, user: &User) -> RefusedScope {
        RefusedScope {
            visible: accounts::visible_municipalities(&s.config, user).map(|m| m.id.as_str().to_owned()).collect(),
            configured: s.config.municipalities.iter().map(|m| m.id.as_str().to_owned()).collect(),
        }
    }
    fn sees(&self, municipality: &str) -> bool {
        self.visible.iter().any(|m| m == municipality) || !self.configured.iter().any(|m| m == municipality)
    }
}

/// The latest refused alarms in the user's scope, newest first (the last 200, kept
/// across restarts in the audit trail):
/// each a person who may still need help, whom no one was offered.
async fn refused(State(s): State<AppState>, a: Authed) -> Result<Json<Value>, ApiError> {
    a.require(DASHBOARD)?;
    let scope = RefusedScope::of(&s, &a.user);
    let list = s.read(move |d| d.refused_alarms().filter(|r| scope.sees(&r.municipality)).map(|r| r.message.clone()).collect::<Vec<Value>>()).await?;
    Ok(Json(json!({ "refused": list })))
}

/// The gateways of the user's municipalities with their latest status, offline first
/// (see `live::gateways`): a gateway offline is alarms that cannot reach vakt.
async fn gateways(State(s): State<AppState>, a: Authed) -> Result<Json<Value>, ApiError> {
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

fn my_staff_id(a: &Authed) -> Result<crate::core::StaffId, ApiError> {
    a.require(STAFF)?;
    a.user.staff_id.clone().ok_or_else(|| ApiError::forbidden("this user is not linked to a staff member"))
}

/// The signed-in staff member: duty state, position, and what is offered to or held by them.
async fn staff_me(State(s): State<AppState>, a: Authed) -> Result<Json<Value>, ApiError> {
    let me = my_staff_id(&a)?;
    let name = s.stored(s.store.staff_name(me.as_str())).await?;
    let v = s
        .read(move |d| {
            let e = d.engine();
            let state = e.staff_view(&me);
            let offers: Vec<Value> = e
                .open_incidents()
                .filter(|v| v.live_offers.contains(&me) || v.assigned.as_ref() == Some(&me))
                .map(|v| {
                    let mut j = incident_json(d, &v);
                    j["mine"] = json!(v.assigned.as_ref() == Some(&me));
                    j["expires_at"] = json!(v.next_deadline.filter(|_| v.assigned.is_none()).map(|t| t.to_string()));
                    j
                })
                .collect();
            json!({
                "staff_id": me.as_str(),
                "name": name,
                "known": state.is_some(),
                "on_duty": state.is_some_and(|s| s.on_duty),
                "position": state.and_then(|s| s.position),
                "incidents": offers,
            })
        })
        .await?;
    Ok(Json(v))
}

async fn staff_input(s: &AppState, a: Authed, parsed: Result<crate::core::Input, wire::WireReject>) -> Result<Json<Value>, ApiError> {
    let input = parsed.map_err(|r| ApiError::bad_request(r.code, r.detail))?;
    let outcome = s.act(WebAct { who: a.user, what: WebAction::Staff(input) }).await?;
    outcome_response(outcome)
}

/// Body as on `vakt/v1/staff/{id}/status`: `{"state": "on_duty"|"off_duty", "position"?}` or `{"position"}`.
async fn staff_status(State(s): State<AppState>, a: Authed, b: Bytes) -> Result<Json<Value>, ApiError> {
    let me = my_staff_id(&a)?;
    let parsed = wire::parse_status(me.as_str(), &b, &s.limits);
    staff_input(&s, a, parsed).await
}

/// Body as on `vakt/v1/staff/{id}/replies`: `{"incident_id", "action", "outcome"?, "note"?}`.
async fn staff_reply(State(s): State<AppState>, a: Authed, b: Bytes) -> Result<Json<Value>, ApiError> {
    let me = my_staff_id(&a)?;
    let parsed = wire::parse_reply(me.as_str(), &b, &s.limits);
    staff_input(&s, a, parsed).await
}

/// Offers, revokes, confirmations and refusals for the signed-in staff member, as on
/// `vakt/v1/staff/{id}/offers`.
async fn staff_stream(State(s): State<AppState>, a: Authed) -> Result<impl IntoResponse, ApiError> {
    let topic = outbound::offers_topic(&my_staff_id(&a)?);
    Ok(live_events(s.live.subscribe(), move |t, _| (t == topic).then_some("offer")))
}

pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
