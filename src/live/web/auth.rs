//! Logging in and out, the signed-in user, and their own password.

use std::net::IpAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::api::body;
use super::{ApiError, AppState, Authed, ClientAddr, SESSION_COOKIE};
use crate::core::Timestamp;
use crate::live::accounts::{self, User};
use crate::live::clock::wall_clock;
use crate::live::errors::ErrorCode;
use crate::live::store::AuditRow;

pub(super) fn audit_line(user: &str, role: &'static str, action: &str, outcome: &str) -> AuditRow {
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
pub(super) struct LoginBody {
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
pub(super) async fn within_limit(s: &AppState, username: &str, addr: Option<IpAddr>, audit: AuditRow, what: &str) -> Result<(), ApiError> {
    let Err(wait) = s.limiter.check(username, addr, Instant::now()) else { return Ok(()) };
    let _ = s.stored(s.store.audit(&audit)).await;
    let mut e = ApiError::new(ErrorCode::TooManyAttempts, format!("too many {what}; try again in {} s", wait.as_secs().max(1)));
    e.retry_after = Some(wait);
    Err(e)
}

/// A login's answer: the user, and their CSRF token (cookie sessions) or bearer token.
#[derive(Serialize)]
pub(super) struct LoggedIn {
    user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    expires_at: String,
}

/// `{"ok": true}`.
#[derive(Serialize)]
pub(super) struct Confirmed {
    ok: bool,
}

pub(super) async fn login(State(s): State<AppState>, ClientAddr(addr): ClientAddr, b: Result<Json<LoginBody>, JsonRejection>) -> Result<Response, ApiError> {
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
        return Err(ApiError::new(ErrorCode::WrongCredentials, "wrong username or password"));
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
        return Ok(Json(LoggedIn { user, csrf_token: None, token: Some(token), expires_at }).into_response());
    }
    let secure = if s.http.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", ttl.as_secs());
    Ok(([(header::SET_COOKIE, cookie)], Json(LoggedIn { user, csrf_token: Some(csrf), token: None, expires_at })).into_response())
}

pub(super) async fn logout(State(s): State<AppState>, a: Authed) -> Result<Response, ApiError> {
    s.stored(s.store.delete_session(&a.digest)).await?;
    s.stored(s.store.audit(&audit_line(&a.user.username, a.user.role.as_str(), "logout", "ok"))).await?;
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, cookie)], Json(Confirmed { ok: true })).into_response())
}

#[derive(Deserialize)]
pub(super) struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// A user changes their own password: the current one is asked for again (a session
/// left open on a shared PC must not be enough), wrong answers count towards the login
/// limit, and every other session of theirs ends.
pub(super) async fn change_password(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    a: Authed,
    b: Result<Json<PasswordBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let username = a.user.username.clone();
    let role = a.user.role.as_str();
    within_limit(&s, &username, addr, audit_line(&username, role, "password_change", "rate_limited"), "wrong passwords").await?;
    accounts::acceptable_password(&b.new_password).map_err(|e| ApiError::new(ErrorCode::WeakPassword, e.to_string()))?;
    if b.new_password == b.current_password {
        return Err(ApiError::new(ErrorCode::SamePassword, "the new password is the current one"));
    }
    let hash = s
        .stored(s.store.user(&username))
        .await?
        .map(|stored| stored.password_hash)
        .ok_or_else(|| ApiError::new(ErrorCode::SessionExpired, "the user no longer exists"))?;
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
            return Err(ApiError::new(ErrorCode::WrongCurrentPassword, "the current password is wrong"));
        }
    };
    if !s.stored(s.store.set_password(&username, &new_hash, &a.digest)).await? {
        return Err(ApiError::new(ErrorCode::SessionExpired, "the user no longer exists"));
    }
    s.limiter.succeeded(&username, addr);
    s.stored(s.store.audit(&audit_line(&username, role, "password_change", "ok"))).await?;
    Ok(Json(Confirmed { ok: true }).into_response())
}

/// A municipality the user sees, with its model and backup team (the staff an operator
/// may assign its incidents to, besides its own).
#[derive(Serialize)]
pub(super) struct ScopeMunicipality {
    id: String,
    name: String,
    model: &'static str,
    backup_team: Option<String>,
}

pub(super) fn scope(s: &AppState, user: &User) -> Vec<ScopeMunicipality> {
    accounts::visible_municipalities(&s.config, user)
        .map(|m| ScopeMunicipality {
            id: m.id.to_string(),
            name: m.name.clone(),
            model: m.model.as_str(),
            backup_team: match &m.backup {
                Some(crate::core::Backup::Team(t)) => Some(t.to_string()),
                _ => None,
            },
        })
        .collect()
}

/// The signed-in user, and what the pages need to know of their scope.
#[derive(Serialize)]
pub(super) struct Me {
    user: User,
    /// For a cookie session: the token every change must carry (`X-CSRF-Token`).
    csrf_token: Option<String>,
    target_secs: u64,
    municipalities: Vec<ScopeMunicipality>,
    tiles: Option<String>,
    tiles_attribution: String,
}

pub(super) async fn me(State(s): State<AppState>, a: Authed) -> Json<Me> {
    Json(Me {
        municipalities: scope(&s, &a.user),
        user: a.user,
        csrf_token: a.csrf,
        target_secs: s.config.target_answer.as_secs(),
        tiles: s.http.tiles.clone(),
        tiles_attribution: s.http.tiles_attribution.clone(),
    })
}
