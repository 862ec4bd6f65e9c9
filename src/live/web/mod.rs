//! The web side: the operators' dashboard (`/`), the staff app (`/app`), and the JSON
//! API under `/api` that both use (docs/api.md; OpenAPI at `/api/openapi.json`).
//!
//! It drives the same core through the same inputs as MQTT: actions go to the engine
//! task as `EngineRequest::Act` and are answered only after they are stored (with their
//! audit line); reads run on the engine task between batches. Live updates are the
//! MQTT contract's own messages (incident events, offers), pushed as server-sent events.
//!
//! Security: argon2id password hashes; sessions in an HttpOnly, SameSite=Strict cookie
//! (or a bearer token for API clients); a CSRF token on every state-changing request
//! made with the cookie; failed logins limited per username and client address;
//! operators see and act on their centre's municipalities only, staff on what is
//! offered to them only (the engine decides that, as for MQTT).

pub mod api;
mod assets;
mod auth;
mod error;
mod incidents;
mod kpis;
mod map;
mod staff;
mod streams;

use crate::live::errors::ErrorCode;
pub use error::ApiError;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::accounts::{self, LoginLimiter, Role, User};
use super::driver::{ActOutcome, Claim, Driver, EngineRequest, WebAct};
use super::metrics::Metrics;
use super::store::Store;
use crate::core::EngineConfig;
use crate::settings::HttpSection;

/// An outbound message as published on MQTT: (topic, payload).
pub type LiveMessage = Arc<(String, String)>;

pub const SESSION_COOKIE: &str = "vakt_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ready: watch::Receiver<bool>,
    engine: mpsc::Sender<EngineRequest>,
    pub(crate) live: broadcast::Sender<LiveMessage>,
    pub(crate) limiter: Arc<LoginLimiter>,
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) http: Arc<HttpSection>,
    pub(crate) limits: super::wire::WireLimits,
    store_wait: Duration,
}

impl AppState {
    pub fn new(
        settings: &crate::settings::Settings,
        store: Store,
        metrics: Arc<Metrics>,
        ready: watch::Receiver<bool>,
        engine: mpsc::Sender<EngineRequest>,
        live: broadcast::Sender<LiveMessage>,
        config: &EngineConfig,
    ) -> AppState {
        let http = &settings.http;
        AppState {
            store,
            metrics,
            ready,
            engine,
            live,
            limiter: Arc::new(LoginLimiter::new(http.login_attempts as usize, Duration::from_secs(300))),
            config: Arc::new(config.clone()),
            http: Arc::new(http.clone()),
            limits: crate::live::wire::WireLimits::from(&settings.wire),
            store_wait: settings.database.write_timeout(),
        }
    }

    /// Refuses at once what would only wait: while the store takes no writes (the engine
    /// retries its commit and answers nothing else), or before recovery is done.
    fn engine_ready(&self) -> Result<(), ApiError> {
        if self.ready.has_changed().is_err() {
            return Err(ApiError::unavailable());
        }
        if !*self.ready.borrow() {
            return Err(ApiError::not_ready());
        }
        Ok(())
    }

    /// The web side's own reads and writes of the store, bounded like the engine's: a
    /// database that hangs answers 503 `store_unavailable` after
    /// `database.write_timeout_secs`, as one that refuses does.
    pub(crate) async fn stored<T>(&self, f: impl std::future::Future<Output = anyhow::Result<T>>) -> Result<T, ApiError> {
        crate::live::store::within(self.store_wait, f).await.map_err(ApiError::failed)
    }

    /// Puts a request in the engine's queue, if the engine is ready and takes it before
    /// `write_timeout_secs` have passed; the deadline for its answer.
    async fn queue(&self, req: EngineRequest) -> Result<tokio::time::Instant, ApiError> {
        self.engine_ready()?;
        let deadline = tokio::time::Instant::now() + self.store_wait;
        match tokio::time::timeout_at(deadline, self.engine.send(req)).await {
            Ok(sent) => sent.map_err(|_| ApiError::unavailable())?,
            Err(_) => return Err(ApiError::not_ready()),
        }
        Ok(deadline)
    }

    /// Runs `f` on the engine task, on committed state. An engine held up by its store
    /// (a write that has not failed yet) is waited for `write_timeout_secs` at most.
    pub(crate) async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Driver) -> T + Send + 'static) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let deadline = self
            .queue(EngineRequest::Read(Box::new(move |d: &Driver| {
                let _ = tx.send(f(d));
            })))
            .await?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(answer) => answer.map_err(|_| ApiError::unavailable()),
            Err(_) => Err(ApiError::not_ready()),
        }
    }

    /// Applies an action on the engine task; answers once it is stored. Waits
    /// `write_timeout_secs` at most: an action the engine had not taken by then never
    /// happens (503 `not_ready`); one it had taken takes effect once its store answers
    /// (503 `not_stored_yet`), which the answer says so that nobody repeats it.
    pub(crate) async fn act(&self, act: WebAct) -> Result<ActOutcome, ApiError> {
        let (tx, rx) = oneshot::channel();
        let claim = Arc::new(Claim::default());
        let deadline = self.queue(EngineRequest::Act(act, tx, claim.clone())).await?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(answer) => answer.map_err(|_| ApiError::unavailable()),
            Err(_) if claim.abandon() => Err(ApiError::not_ready()),
            Err(_) => Err(ApiError::new(
                ErrorCode::NotStoredYet,
                "the engine has taken the action but cannot store it yet; it takes effect when the database answers again, so do not repeat it",
            )),
        }
    }
}

/// The dashboard, the staff app, their files, the API and the operations endpoints.
pub fn router(state: AppState) -> Router {
    let ops = super::http::router(state.metrics.clone(), state.ready.clone());
    Router::new().merge(api::routes()).merge(assets::routes()).with_state(state).merge(ops).layer(axum::middleware::map_response(security_headers))
}

/// On every response: no content-type sniffing, no referrer to other sites, no framing.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    r
}

/// Compares secrets in time that does not depend on where they first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The signed-in user of a request. Extracting it checks the session (cookie or
/// bearer token) and, for a state-changing request made with the cookie, the CSRF token.
pub struct Authed {
    pub user: User,
    /// The CSRF token of a cookie session (`None` for bearer tokens).
    pub csrf: Option<String>,
    pub digest: String,
}

impl Authed {
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!("this needs the role {}; you are {}", names.join(" or "), self.user.role.as_str())))
        }
    }
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let bearer = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let (token, via_cookie) = match (bearer, cookie_value(&parts.headers, SESSION_COOKIE)) {
            (Some(t), _) => (t, false),
            (None, Some(t)) => (t, true),
            (None, None) => return Err(ApiError::new(ErrorCode::LoginRequired, "log in first")),
        };
        let digest = accounts::token_digest(token);
        let now = super::clock::wall_clock().as_millis();
        let crate::live::store::Session { user, csrf } = state
            .stored(state.store.session(&digest, now))
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::SessionExpired, "the session has ended; log in again"))?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if via_cookie && !safe {
            let sent = parts.headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
            if !constant_time_eq(sent, csrf.as_bytes()) {
                return Err(ApiError::new(ErrorCode::Csrf, "missing or wrong X-CSRF-Token header (GET /api/me gives it)"));
            }
        }
        Ok(Authed { user, csrf: via_cookie.then_some(csrf), digest })
    }
}

/// The client's address, where the server knows it (not in tests without a socket):
/// the connection's peer, or, when that is one of `http.trusted_proxies`, the address
/// the proxy says it forwards for (`X-Forwarded-For`, read from the right: the first
/// address that is not itself a trusted proxy). Behind a proxy every client would
/// otherwise have the proxy's address, and one person's wrong passwords would count
/// against everyone's.
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
        Ok(ClientAddr(peer.map(|peer| client_address(peer, &parts.headers, &state.http.trusted_proxies))))
    }
}

fn client_address(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    // Every X-Forwarded-For line, in order, as one list: the client first, each proxy
    // after it appending the address it took the request from.
    let forwarded: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim).collect();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(a) if trusted.contains(&a.to_canonical()) => continue,
            Ok(a) => return a.to_canonical(),
            // Not an address: what comes before it cannot be trusted either.
            Err(_) => break,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through two trusted proxies, the client is the last address that is not one of
    /// them; what a client writes into the header itself, before that, is not taken.
    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let headers = |lines: &[&str]| {
            let mut h = axum::http::HeaderMap::new();
            for l in lines {
                h.append("x-forwarded-for", l.parse().unwrap());
            }
            h
        };
        let forged_then_real = headers(&["6.6.6.6, 192.0.2.7", "10.0.0.2"]);
        assert_eq!(client_address(ip("10.0.0.1"), &forged_then_real, &trusted), ip("192.0.2.7"));
        assert_eq!(client_address(ip("192.0.2.50"), &forged_then_real, &trusted), ip("192.0.2.50"), "not from a trusted proxy: its own address");
        assert_eq!(client_address(ip("10.0.0.1"), &headers(&[]), &trusted), ip("10.0.0.1"), "no header: the proxy itself");
        assert_eq!(client_address(ip("10.0.0.1"), &headers(&["192.0.2.7, junk"]), &trusted), ip("10.0.0.1"), "an unreadable hop ends the trust");
        assert_eq!(client_address(ip("10.0.0.1"), &headers(&["::ffff:192.0.2.9"]), &trusted), ip("192.0.2.9"));
    }
}
