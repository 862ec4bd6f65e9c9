//! The live engine (`vakt run`): the core on the wire.
//!
//! - `wire`: the inbound MQTT contract (JSON → core inputs, or a reject with a reason).
//! - `outbound`: the outbound contract (actions → offers, revokes, confirmations, events).
//! - `store`: SQLite or PostgreSQL through sqlx (input log, events, outbox, directory).
//! - `driver`: owns the engine; batches, stores, then acknowledges and publishes.
//! - `mqtt`: the embedded broker (rumqttd) and the engine's client (rumqttc).
//! - `http`: `/metrics`, `/healthz`, `/readyz`, and the HTTP server.
//! - `web`: the dashboard, the staff app and the HTTP API (accounts in `accounts`).
//! - `directory`: residents and staff from CSV (`vakt import`, sample data).
//! - `devices`: alarm devices over SIA DC-09 and SCAIP, their register and supervision.

pub mod accounts;
pub mod clock;
pub mod deadlines;
pub mod devices;
pub mod directory;
pub mod driver;
mod engine_task;
pub mod errors;
pub mod gateways;
pub mod http;
pub mod metrics;
pub mod mqtt;
pub mod outbound;
pub mod store;
pub mod web;
pub mod wire;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::core::Engine;
use crate::settings::Settings;
use engine_task::{EngineTask, Inputs};

/// Runs until SIGINT or SIGTERM. `config_dir` resolves relative seed paths.
pub async fn run(settings: Settings, config_dir: Option<&Path>) -> Result<()> {
    let mut signals = Signals::new()?;
    let mut running = start(settings, config_dir).await?;
    let failed = tokio::select! {
        _ = signals.recv() => None,
        e = running.failed() => Some(e),
    };
    match failed {
        None => {
            info!("stopping: no more input is taken");
            running.stop().await
        }
        // Exit non-zero, so a supervisor starts vakt again and recovery carries on from
        // the store; serving web pages without an engine would only hide the fault.
        Some(e) => {
            error!(error = %format!("{e:#}"), "the engine stopped; vakt exits");
            Err(e.context("the engine stopped"))
        }
    }
}

/// A started engine: its HTTP address, its web application (for tests that call it
/// without a socket), and the handle that stops it.
pub struct Running {
    pub http_addr: std::net::SocketAddr,
    pub app: axum::Router,
    pub mqtt_addr: Option<std::net::SocketAddr>,
    /// Where the device receivers listen, when configured (`[dc09]`, `[scaip]`).
    pub dc09_addr: Option<std::net::SocketAddr>,
    pub scaip_addr: Option<std::net::SocketAddr>,
    pub scaip_tls_addr: Option<std::net::SocketAddr>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
    requests: tokio::sync::mpsc::Sender<driver::EngineRequest>,
}

impl Running {
    /// Stops taking input, finishes the writes, disconnects.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("engine task")?
    }

    /// Resolves only if the engine ends without being asked to stop (a panic, its MQTT
    /// client gone), with the reason. After it resolves, do not call `stop`.
    pub async fn failed(&mut self) -> anyhow::Error {
        match (&mut self.task).await {
            Ok(Ok(())) => anyhow::anyhow!("the engine task ended without being asked to stop"),
            Ok(Err(e)) => e,
            Err(e) => anyhow::Error::from(e).context("engine task"),
        }
    }

    /// The engine's request channel, as the web side uses it (reads between batches,
    /// acts stored before they are answered).
    pub fn requests(&self) -> tokio::sync::mpsc::Sender<driver::EngineRequest> {
        self.requests.clone()
    }
}

/// Starts everything and returns once state is recovered and the engine task runs.
pub async fn start(settings: Settings, config_dir: Option<&Path>) -> Result<Running> {
    let config = settings.engine_config()?;
    let mut devices_config = devices::DevicesConfig::from_settings(&settings)?;
    devices_config.scaip_tls = devices_config.scaip_tls.map(|t| t.relative_to(config_dir));
    let metrics = Arc::new(metrics::Metrics::new());
    let (ready_tx, ready_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Bounded: a web request waits at most `database.write_timeout_secs` to be taken.
    let (engine_tx, engine_rx) = tokio::sync::mpsc::channel(1024);
    // Bounded: a page that falls further behind is told (`lagged`) and reloads.
    let (live_tx, _) = tokio::sync::broadcast::channel(4096);

    // The embedded broker's port is checked first: a taken port is reported before
    // anything else happens. The broker starts listening only when the engine is about
    // to subscribe (below).
    let embedded = match &settings.mqtt.url {
        Some(_) => None,
        None => Some(mqtt::embedded_broker_address(&settings.mqtt.listen)?),
    };
    let store = open_and_seed(&settings, &config, config_dir).await?;

    // HTTP before recovery, so /healthz answers (and /readyz says "not yet") meanwhile.
    let web = web::AppState::new(&settings, store.clone(), metrics.clone(), ready_rx.clone(), engine_tx.clone(), live_tx.clone(), &config);
    let app = web::router(web);
    let limits =
        http::Limits { header_timeout: Duration::from_secs(settings.http.header_timeout_secs.max(1)), max_connections: settings.http.max_connections.max(1) };
    let http_addr = http::serve(&settings.http.listen, app.clone(), limits, stop_rx.clone()).await?;
    info!(%http_addr, "HTTP: dashboard /, staff app /app, API /api, /metrics /healthz /readyz");
    if store::within(settings.database.write_timeout(), store.users()).await?.is_empty() {
        warn!("no web users yet: create the first with `vakt user add NAME --role admin` (same --config), then log in at http://{http_addr}/");
    }

    let driver = driver::Driver::new(Engine::new(config), store.clone(), metrics.clone(), driver::DriverConfig::from_settings(&settings));
    let (mut driver, probe) = recover(driver, &store, settings.database.write_timeout(), &ready_tx).await?;
    let register = driver.register();
    // Bounded: a receiver waits at most `devices.answer_timeout_secs` for room.
    let (devices_tx, devices_rx) = tokio::sync::mpsc::channel(10_000);
    let receivers_stop = stop_rx.clone();
    let receivers_metrics = metrics.clone();
    let engine_devices_tx = devices_tx.clone();

    let opts = mqtt::options(&settings.mqtt, embedded)?;
    let max_payload = settings.wire.max_payload_bytes;
    let mqtt_at = match (&settings.mqtt.url, embedded) {
        (Some(url), _) => store::redact(url),
        (None, Some(addr)) => format!("mqtt://{addr} (embedded)"),
        (None, None) => String::new(),
    };
    let database_at = store::redact(&settings.database.url);
    let (stop_req_tx, stop_req) = watch::channel(false);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<Result<devices::Receivers>>();
    let broker_metrics = metrics.clone();
    let engine = async move {
        // Its database connection is opened afresh on this runtime.
        store.drop_writer().await;
        let (mqtt, channels, mqtt_task) = mqtt::spawn(opts, max_payload, metrics, stop_rx);
        // Whatever the broker had not acknowledged before the restart goes out first
        // (with what recovery itself just stored).
        match driver.unpublished().await {
            Ok(msgs) => mqtt.send(msgs, Vec::new()),
            Err(e) => {
                let _ = started_tx.send(Err(e.context("reading what was stored but not yet published")));
                return Ok(());
            }
        }
        // The device receivers run on this thread too, as the MQTT client does: a frame
        // reaches the engine and its ACK leaves without waking another thread. They
        // listen before vakt says it is ready, and end with the engine.
        let receivers = match devices::spawn_receivers(devices_config, register, devices_tx, receivers_metrics, receivers_stop).await {
            Ok(r) => r,
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return Ok(());
            }
        };
        let _ = ready_tx.send(true);
        let _ = started_tx.send(Ok(receivers));
        let task = EngineTask { driver, store, mqtt, mqtt_task, ready_tx, stop_tx, live_tx, embedded: embedded.is_some() };
        // The channel stays open while the engine runs, receivers or none.
        let _devices_tx = engine_devices_tx;
        task.run(Inputs { channels, stop_req, engine_rx, probe, devices: devices_rx }).await
    };
    if let Some(addr) = embedded {
        mqtt::start_embedded_broker(addr, settings.wire.max_payload_bytes, &settings.mqtt.client_id, broker_metrics)?;
    }
    let done_rx = spawn_engine_thread(engine)?;
    let receivers = match started_rx.await {
        Ok(started) => started?,
        // The thread ended before the engine started: its result says why.
        Err(_) => {
            done_rx.await.unwrap_or_else(|_| Err(anyhow::anyhow!("the engine thread ended")))?;
            anyhow::bail!("the engine thread ended before the engine started");
        }
    };
    info!(mqtt = %mqtt_at, http = %http_addr, database = %database_at, "vakt is running; alarms on vakt/v1/alarms/{{municipality}}");
    let task = tokio::spawn(async move { done_rx.await.unwrap_or_else(|_| Err(anyhow::anyhow!("the engine thread ended"))) });
    Ok(Running {
        http_addr,
        app,
        mqtt_addr: embedded,
        dc09_addr: receivers.dc09,
        scaip_addr: receivers.scaip,
        scaip_tls_addr: receivers.scaip_tls,
        stop: stop_req_tx,
        task,
        requests: engine_tx,
    })
}

/// Opens the store (migrated) and seeds an empty directory. Every store call of the
/// start is bounded like the writes: a database that takes the connection but never
/// answers fails the start, and a supervisor restarts vakt, rather than leaving it
/// waiting, not ready, for ever.
async fn open_and_seed(settings: &Settings, config: &crate::core::EngineConfig, config_dir: Option<&Path>) -> Result<store::Store> {
    let bound = settings.database.write_timeout();
    let store = open_store_with_retry(&settings.database.url, bound).await?;
    info!(backend = ?store.backend, url = %store::redact(&settings.database.url), "store open, migrations applied");
    store::within(bound, seed(&store, settings, config, config_dir)).await.context("seeding the directory")?;
    Ok(store)
}

/// The engine's state recovered from the store, the directory applied, the timers due
/// meanwhile run, and all of it stored; with the directory as read, for its watcher.
async fn recover(
    mut driver: driver::Driver,
    store: &store::Store,
    bound: Duration,
    ready_tx: &watch::Sender<bool>,
) -> Result<(driver::Driver, store::DirectoryProbe)> {
    let started = std::time::Instant::now();
    let replayed = driver.recover().await.context("recovering the engine's state from the store")?;
    let probe = store::within(bound, store.directory_probe()).await?;
    let changed = driver.apply_directory(store::within(bound, directory::read_directory(store, i64::MIN, true)).await.context("reading the directory")?);
    let now = driver.now();
    driver.fire_due(now);
    if let Some(p) = driver.failure() {
        // A directory row or a timer due at start made the engine panic: the row or the
        // incident is set aside (stored), and the next start goes on without it.
        let why = p.to_string();
        error!(panic = %why, "at start, the engine panicked (a fault in vakt): what it met is set aside, and vakt ends to start again from the store");
        driver.set_aside_failure(ready_tx).await;
        anyhow::bail!("{why}; it was set aside");
    }
    let open = driver.engine().open_incident_count();
    info!(replayed, directory_changes = changed, open_incidents = open, ms = started.elapsed().as_millis() as u64, "state recovered");
    driver.commit(ready_tx, true).await;
    Ok((driver, probe))
}

/// The engine task and its MQTT client run on a thread of their own, on a runtime of
/// one thread: an alarm passes from the client to the engine and its offer back without
/// waking another thread, and nothing the web side does (on the main runtime) takes the
/// engine's thread. Returns its result, when it ends (a panic is caught and named).
fn spawn_engine_thread(engine: impl std::future::Future<Output = Result<()>> + Send + 'static) -> Result<tokio::sync::oneshot::Receiver<Result<()>>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    std::thread::Builder::new()
        .name("vakt-engine".into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(engine))).unwrap_or_else(|panic| {
                    let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
                    Err(anyhow::anyhow!("the engine panicked: {what}"))
                }),
                Err(e) => Err(anyhow::Error::from(e).context("cannot start the engine's runtime")),
            };
            let _ = done_tx.send(result);
        })
        .context("starting the engine thread")?;
    Ok(done_rx)
}

async fn open_store_with_retry(url: &str, bound: Duration) -> Result<store::Store> {
    let mut backoff = Duration::from_millis(200);
    for attempt in 1.. {
        match store::within(bound, store::Store::open(url)).await {
            Ok(s) => return Ok(s),
            Err(e) if attempt < 8 => {
                warn!(error = %format!("{e:#}"), attempt, "database not available yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

/// Imports the configured sample residents and staff into an empty directory.
async fn seed(store: &store::Store, settings: &Settings, config: &crate::core::EngineConfig, config_dir: Option<&Path>) -> Result<()> {
    let now = clock::wall_clock().as_millis();
    let counts = store.directory_probe().await?;
    if let Some(src) = &settings.seed.residents {
        if counts.residents == 0 {
            let rows = directory::parse_residents(&directory::read_source(src, config_dir)?, config).with_context(|| format!("seed residents {src}"))?;
            info!(count = rows.len(), source = %src, "seeding sample residents");
            store.upsert_residents(&rows, now).await?;
        }
    }
    if let Some(src) = &settings.seed.staff {
        if counts.staff == 0 {
            let rows = directory::parse_staff(&directory::read_source(src, config_dir)?, config).with_context(|| format!("seed staff {src}"))?;
            info!(count = rows.len(), source = %src, "seeding sample staff");
            store.upsert_staff(&rows, now).await?;
        }
    }
    Ok(())
}

/// SIGINT or SIGTERM.
struct Signals {
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        Ok(Signals { term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing the SIGTERM handler")? })
    }
    async fn recv(&mut self) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.term.recv() => {}
        }
    }
}

pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_else(|| "a panic".to_owned())
}
