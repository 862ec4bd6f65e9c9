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

pub mod accounts;
pub mod clock;
pub mod directory;
pub mod driver;
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

/// Most inbound messages taken into one stored batch.
const MAX_BATCH: usize = 2_000;

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
    let metrics = Arc::new(metrics::Metrics::new());
    let (ready_tx, ready_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (engine_tx, engine_rx) = tokio::sync::mpsc::channel(1024);
    let (live_tx, _) = tokio::sync::broadcast::channel(4096);

    // The embedded broker's port is checked first: a taken port is reported before
    // anything else happens. The broker starts listening only when the engine is about
    // to subscribe (below).
    let embedded = match &settings.mqtt.url {
        Some(_) => None,
        None => Some(mqtt::embedded_broker_address(&settings.mqtt.listen)?),
    };

    // Every store call of the start is bounded like the writes: a database that takes
    // the connection but never answers fails the start, and a supervisor restarts vakt,
    // rather than leaving it waiting, not ready, for ever.
    let bound = settings.database.write_timeout();
    let store = open_store_with_retry(&settings.database.url, bound).await?;
    info!(backend = ?store.backend, url = %store::redact(&settings.database.url), "store open, migrations applied");
    store::within(bound, seed(&store, &settings, &config, config_dir)).await.context("seeding the directory")?;

    // HTTP before recovery, so /healthz answers (and /readyz says "not yet") meanwhile.
    let web = web::AppState::new(&settings, store.clone(), metrics.clone(), ready_rx.clone(), engine_tx.clone(), live_tx.clone(), &config);
    let app = web::router(web);
    let limits =
        http::Limits { header_timeout: Duration::from_secs(settings.http.header_timeout_secs.max(1)), max_connections: settings.http.max_connections.max(1) };
    let http_addr = http::serve(&settings.http.listen, app.clone(), limits, stop_rx.clone()).await?;
    info!(%http_addr, "HTTP: dashboard /, staff app /app, API /api, /metrics /healthz /readyz");
    if store::within(bound, store.users()).await?.is_empty() {
        warn!("no web users yet: create the first with `vakt user add NAME --role admin` (same --config), then log in at http://{http_addr}/");
    }

    let mut driver = driver::Driver::new(Engine::new(config), store.clone(), metrics.clone(), driver::DriverConfig::from_settings(&settings));
    let started = std::time::Instant::now();
    let replayed = driver.recover().await.context("recovering the engine's state from the store")?;
    let probe = store::within(bound, store.directory_probe()).await?;
    let changed = driver.apply_directory(store::within(bound, directory::read_directory(&store, i64::MIN)).await.context("reading the directory")?);
    let now = driver.now();
    driver.fire_due(now);
    if let Some(p) = driver.failure() {
        // A directory row or a timer due at start made the engine panic: the row or the
        // incident is set aside (stored), and the next start goes on without it.
        let why = p.to_string();
        error!(panic = %why, "at start, the engine panicked (a fault in vakt): what it met is set aside, and vakt ends to start again from the store");
        driver.set_aside_failure(&ready_tx).await;
        anyhow::bail!("{why}; it was set aside");
    }
    let open = driver.engine().open_incident_count();
    info!(replayed, directory_changes = changed, open_incidents = open, ms = started.elapsed().as_millis() as u64, "state recovered");
    driver.commit(&ready_tx, true).await;

    let opts = mqtt::options(&settings.mqtt, embedded)?;
    let max_payload = settings.wire.max_payload_bytes;
    let mqtt_at = match (&settings.mqtt.url, embedded) {
        (Some(url), _) => store::redact(url),
        (None, Some(addr)) => format!("mqtt://{addr} (embedded)"),
        (None, None) => String::new(),
    };
    let database_at = store::redact(&settings.database.url);

    // The engine task and its MQTT client run on a thread of their own, on a runtime of
    // one thread: an alarm passes from the client to the engine and its offer back
    // without waking another thread, and nothing the web side does (on the main runtime)
    // takes the engine's thread.
    let (stop_req_tx, stop_req) = watch::channel(false);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<()>>();
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
        let _ = ready_tx.send(true);
        let _ = started_tx.send(Ok(()));
        let parts =
            LoopParts { driver, store, mqtt, channels, mqtt_task, probe, ready_tx, stop_tx, stop_req, engine_rx, live_tx, embedded: embedded.is_some() };
        main_loop(parts).await
    };
    if let Some(addr) = embedded {
        mqtt::start_embedded_broker(addr, settings.wire.max_payload_bytes, &settings.mqtt.client_id, broker_metrics)?;
    }
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
    match started_rx.await {
        Ok(started) => started?,
        // The thread ended before the engine started: its result says why.
        Err(_) => {
            done_rx.await.unwrap_or_else(|_| Err(anyhow::anyhow!("the engine thread ended")))?;
            anyhow::bail!("the engine thread ended before the engine started");
        }
    }
    info!(mqtt = %mqtt_at, http = %http_addr, database = %database_at, "vakt is running; alarms on vakt/v1/alarms/{{municipality}}");
    let task = tokio::spawn(async move { done_rx.await.unwrap_or_else(|_| Err(anyhow::anyhow!("the engine thread ended"))) });
    Ok(Running { http_addr, app, mqtt_addr: embedded, stop: stop_req_tx, task, requests: engine_tx })
}

struct LoopParts {
    driver: driver::Driver,
    store: store::Store,
    mqtt: mqtt::MqttHandle,
    channels: mqtt::Channels,
    mqtt_task: tokio::task::JoinHandle<()>,
    probe: store::DirectoryProbe,
    ready_tx: watch::Sender<bool>,
    stop_tx: watch::Sender<bool>,
    stop_req: watch::Receiver<bool>,
    engine_rx: tokio::sync::mpsc::Receiver<driver::EngineRequest>,
    live_tx: tokio::sync::broadcast::Sender<web::LiveMessage>,
    /// The broker is vakt's own (see `main_loop` on stopping).
    embedded: bool,
}

/// Stopping with the embedded broker: how long vakt goes on taking alarms, at most, and
/// how long a quiet moment must be for it to stop taking them.
const EMBEDDED_STOP_DRAIN: Duration = Duration::from_secs(2);
const EMBEDDED_STOP_QUIET: Duration = Duration::from_millis(50);

/// The engine task: one step at a time (a batch of messages, due timers, web actions),
/// each stored before it is acknowledged, answered or published.
async fn main_loop(p: LoopParts) -> Result<()> {
    let LoopParts { mut driver, store, mqtt, mut channels, mqtt_task, probe, ready_tx, stop_tx, mut stop_req, mut engine_rx, live_tx, embedded } = p;
    let (dir_tx, mut directory) = tokio::sync::mpsc::channel(4);
    let watcher = tokio::spawn(directory::watch_directory(store.clone(), Duration::from_secs(5), probe, dir_tx));
    let checkpointer = (store.backend == store::Backend::Sqlite).then(|| tokio::spawn(checkpoint_wal(store.clone())));
    let mut inbound = Vec::with_capacity(MAX_BATCH);
    let mut delivered = Vec::new();
    let mut answers = Vec::new();
    let mut flush_tick = tokio::time::interval(Duration::from_millis(500));
    let mut lost: Option<String> = None;
    // The inbound message (by its place in `inbound`) that made the engine panic.
    let mut culprit = None;
    // Stopping with the embedded broker: until when vakt goes on taking alarms.
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        let sleep_until = driver.next_deadline().map(|t| {
            let wait = t.as_millis().saturating_sub(clock::wall_clock().as_millis()).max(0) as u64;
            tokio::time::Instant::now() + Duration::from_millis(wait)
        });
        let mut flush = false;
        let mut stopping = false;
        tokio::select! {
            _ = stop_req.wait_for(|s| *s), if draining.is_none() => {
                if !embedded {
                    break;
                }
                stopping = true;
            }
            _ = tokio::time::sleep(EMBEDDED_STOP_QUIET), if draining.is_some() => break,
            _ = async { tokio::time::sleep_until(draining.expect("guarded")).await }, if draining.is_some() => break,
            n = channels.inbound.recv_many(&mut inbound, MAX_BATCH) => {
                if n == 0 { lost = Some("the MQTT client task ended".into()); break; }
                for (i, p) in inbound.iter().enumerate() {
                    driver.on_message(p);
                    if let Some(failure) = driver.failure() {
                        culprit = matches!(failure.culprit, driver::Culprit::Message { .. }).then_some(i);
                        break;
                    }
                }
            }
            _ = async { tokio::time::sleep_until(sleep_until.expect("guarded")).await }, if sleep_until.is_some() && draining.is_none() => {
                let now = driver.now();
                driver.fire_due(now);
            }
            n = channels.delivered.recv_many(&mut delivered, 50_000) => {
                if n == 0 { lost = Some("the MQTT client task ended".into()); break; }
            }
            _ = flush_tick.tick() => flush = true,
            Some(changes) = directory.recv() => {
                let n = driver.apply_directory(changes);
                if n > 0 {
                    info!(changes = n, "directory updated");
                }
            }
            Some(req) = engine_rx.recv() => {
                // Everything queued from the web side in one step (one commit).
                let mut next = Some(req);
                while let Some(req) = next {
                    match req {
                        driver::EngineRequest::Act(act, reply, claim) => {
                            if claim.take() {
                                answers.push((reply, driver.act(act)));
                            } else {
                                info!("a web action whose request stopped waiting was not applied");
                            }
                        }
                        driver::EngineRequest::Read(read) => read(&driver),
                    }
                    if driver.failure().is_some() {
                        // Nothing more of a failed engine: the requests left are dropped,
                        // and their callers told the engine is unavailable.
                        break;
                    }
                    next = engine_rx.try_recv().ok();
                }
            }
        }
        if let Some(failure) = driver.failure() {
            // The engine's state is not to be trusted: store nothing of this step but what
            // put it there (a message's refusal, acknowledging that message alone; or a
            // timer's incident, set aside), and end, so that the supervisor starts vakt
            // again from the store and the broker gives it the step's other messages
            // again. Left to crash, vakt would meet the same message or timer after every
            // restart, and no alarm after it would get through.
            let why = failure.to_string();
            match &failure.culprit {
                driver::Culprit::Message { .. } => {
                    error!(panic = %why, "a message made the engine panic (a fault in vakt): it is refused, and vakt ends to start again from the store")
                }
                driver::Culprit::Timer { .. } => {
                    error!(panic = %why, "an incident's timer made the engine panic (a fault in vakt): the incident is set aside for people to handle, and vakt ends to start again from the store")
                }
                driver::Culprit::Directory { .. } => {
                    error!(panic = %why, "a directory row made the engine panic (a fault in vakt): it is left out until it changes, and vakt ends to start again from the store")
                }
                driver::Culprit::WebAction { .. } => {
                    error!(panic = %why, "a web action made the engine panic (a fault in vakt): it is not applied (noted in the audit trail), and vakt ends to start again from the store")
                }
            }
            let out = driver.set_aside_failure(&ready_tx).await;
            let acks = culprit.take().map(|i| vec![inbound.swap_remove(i)]).unwrap_or_default();
            mqtt.send(out, acks);
            inbound.clear();
            lost = Some(format!("{why}; it was put aside"));
            break;
        }
        driver.delivered(&mut delivered, &mut channels.delivered);
        let out = driver.commit(&ready_tx, flush).await;
        for (reply, outcome) in answers.drain(..) {
            let _ = reply.send(outcome);
        }
        if live_tx.receiver_count() > 0 {
            for msg in &out {
                let _ = live_tx.send(Arc::new((msg.topic.clone(), msg.payload.clone())));
            }
        }
        // The acknowledgements after the messages people act on: the broker keeps an
        // alarm a few microseconds longer, the offer leaves first. All in one write.
        mqtt.send(out, std::mem::take(&mut inbound));
        if stopping {
            // The embedded broker has acknowledged to the devices every alarm it passes
            // on, and ends with the process: an alarm it holds for vakt when vakt stops
            // is lost. So vakt stores its checkpoint (after the step's commit, as a stop
            // with an external broker does after the loop), then goes on taking alarms
            // until none has come for a moment (at most EMBEDDED_STOP_DRAIN), and only
            // then stops.
            driver.checkpoint_at_stop().await;
            draining = Some(tokio::time::Instant::now() + EMBEDDED_STOP_DRAIN);
        }
    }
    // In-flight writes are done (the loop commits after every step); store the last
    // deletes and a checkpoint, let the publishes and acks already queued go out, then
    // disconnect.
    watcher.abort();
    if let Some(task) = checkpointer {
        task.abort();
    }
    driver.delivered(&mut delivered, &mut channels.delivered);
    driver.commit(&ready_tx, true).await;
    if draining.is_none() {
        driver.checkpoint_at_stop().await;
    }
    let _ = ready_tx.send(false);
    if !embedded {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = stop_tx.send(true);
    if let Err(e) = tokio::time::timeout(Duration::from_secs(3), mqtt_task).await {
        error!(error = %e, "MQTT client did not stop in time");
    }
    store.close().await;
    match lost {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => {
            info!("stopped");
            Ok(())
        }
    }
}

/// SQLite: copies the write-ahead log into the database file every 100 ms, beside the
/// engine rather than inside one of its commits. SQLite's own checkpoint (after 1,000
/// pages of log) runs in the commit that crosses the mark, and every alarm queued behind
/// that commit waits for the database file's fsync too. This one runs on a pooled
/// connection and does not block the writer; the automatic one remains as a safety net.
/// It skips its turn while the engine has written nothing since a pass that copied the
/// whole log (`Store::wal_checkpoint_due`).
async fn checkpoint_wal(store: store::Store) {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clean = None;
    loop {
        every.tick().await;
        if let Err(e) = store.wal_checkpoint_due(&mut clean).await {
            warn!(error = %format!("{e:#}"), "SQLite log checkpoint failed; SQLite's own checkpoint still runs");
        }
    }
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
