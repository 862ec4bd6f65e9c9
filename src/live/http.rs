//! Operations HTTP: `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (state recovered, store writable, broker connected).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
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

/// Why `/readyz` says 503, each its own line of text. The dashboard and the staff app
/// show these in their own words (`web/common.js` lists them; a test holds the two
/// lists together).
pub const NOT_READY: [&str; 3] = ["not ready: the engine is not running", "not ready: recovering, or the store is not taking writes", "not ready: not connected to the MQTT broker"];

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let [stopped, storing, broker_lost] = NOT_READY;
    let not_ready = |why: &str| (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
    // The engine holds the sender: gone, the engine is gone (the process exits next).
    if s.ready.has_changed().is_err() {
        return not_ready(stopped);
    }
    let recovered_and_storing = *s.ready.borrow();
    let broker = s.metrics.mqtt_connected.get() == 1;
    match (recovered_and_storing, broker) {
        (true, true) => (StatusCode::OK, "ready\n".to_owned()),
        (false, _) => not_ready(storing),
        (true, false) => not_ready(broker_lost),
    }
}

/// Binds `listen` and serves `app` until `stop` turns true. Returns the bound address.
pub async fn serve(listen: &str, app: Router, mut stop: watch::Receiver<bool>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen for HTTP on {listen} (set http.listen)"))?;
    let addr = listener.local_addr()?;
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok(addr)
}
