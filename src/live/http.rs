//! Operations HTTP: `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (state recovered, store writable, broker connected).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;

use super::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
}

pub fn router(metrics: Arc<Metrics>, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, ready })
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

/// Why `/readyz` says 503: a code, which the dashboard and the staff app show in their
/// own words (`web/common.js`; a test holds the two together), and a sentence for people
/// reading it elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The engine is gone (the process exits next).
    EngineStopped,
    /// Recovering at start, or the store is not taking writes.
    NotStoring,
    /// No connection to the MQTT broker (or its subscriptions not yet confirmed).
    NoBroker,
}

impl NotReady {
    pub const ALL: [NotReady; 3] = [NotReady::EngineStopped, NotReady::NotStoring, NotReady::NoBroker];

    pub fn code(self) -> &'static str {
        match self {
            NotReady::EngineStopped => "engine_stopped",
            NotReady::NotStoring => "not_storing",
            NotReady::NoBroker => "no_broker",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            NotReady::EngineStopped => "the engine is not running",
            NotReady::NotStoring => "recovering, or the store is not taking writes",
            NotReady::NoBroker => "not connected to the MQTT broker",
        }
    }
}

/// `/readyz`'s answer: `{"ready": true}`, or `{"ready": false, "reason": CODE, "message": TEXT}` with 503.
#[derive(serde::Serialize)]
struct Readiness {
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let not_ready = |why: NotReady| (StatusCode::SERVICE_UNAVAILABLE, Json(Readiness { ready: false, reason: Some(why.code()), message: Some(why.message()) }));
    // The engine holds the sender: gone, the engine is gone (the process exits next).
    if s.ready.has_changed().is_err() {
        return not_ready(NotReady::EngineStopped);
    }
    let recovered_and_storing = *s.ready.borrow();
    let broker = s.metrics.mqtt_connected.get() == 1;
    match (recovered_and_storing, broker) {
        (true, true) => (StatusCode::OK, Json(Readiness { ready: true, reason: None, message: None })),
        (false, _) => not_ready(NotReady::NotStoring),
        (true, false) => not_ready(NotReady::NoBroker),
    }
}

/// What one HTTP connection may take of vakt (`http.header_timeout_secs`,
/// `http.max_connections`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a request's headers (from the connection's start, or the end of
    /// its previous request): then the connection is closed.
    pub header_timeout: std::time::Duration,
    /// Most connections open at once; beyond, new ones wait in the kernel's queue until
    /// one closes.
    pub max_connections: usize,
}

/// Binds `listen` and serves `app` until `stop` turns true. Returns the bound address.
///
/// Its own accept loop rather than `axum::serve`, which has no header timeout and no
/// bound on connections: a client that opens a connection and sends its headers a byte
/// at a time (or never) held a task and a descriptor for as long as it liked, and
/// enough of them would take every descriptor vakt has, its database's and broker's
/// included. Now a connection is closed when its headers take longer than
/// `header_timeout`, and at most `max_connections` are open: the rest wait to be
/// accepted. Connections are HTTP/1.1; on `stop` each finishes the request it is
/// serving and closes, as with `axum::serve`.
pub async fn serve(listen: &str, app: Router, limits: Limits, stop: watch::Receiver<bool>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {listen}: run vakt with --http-listen ADDR:PORT (or set http.listen) to use another"))?;
    let addr = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::spawn(async move {
        let mut stopped = stop.clone();
        loop {
            // A free slot first, then the next connection: at the bound, connections
            // wait in the listen queue rather than being accepted and dropped.
            let accepted = tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                accepted = async {
                    let slot = slots.clone().acquire_owned().await.expect("never closed");
                    (slot, listener.accept().await)
                } => accepted,
            };
            match accepted {
                (slot, Ok((stream, peer))) => {
                    tokio::spawn(serve_connection(stream, peer, app.clone(), limits, stop.clone(), slot));
                }
                (_, Err(e)) => {
                    // Out of descriptors, say: the connection stays queued; try again shortly.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(addr)
}

/// One connection, until it ends or vakt stops; `_slot` is its place among
/// `Limits::max_connections`, given back when it ends.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        // What `into_make_service_with_connect_info` would give the handlers.
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        tower_service::Service::call(&mut app.clone(), req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "HTTP connection ended with an error");
            }
        }
        // The guard `wait_for` returns is dropped before anything is awaited.
        _ = async { drop(stop.wait_for(|s| *s).await) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
