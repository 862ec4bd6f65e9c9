//! The MQTT side: the embedded broker (rumqttd) and the engine's client (rumqttc).
//!
//! The engine is always a client, of its own embedded broker or of an external one, so
//! there is one code path. The client task owns rumqttc's event loop and:
//! - passes every inbound publish to the driver, which acknowledges it (manual acks)
//!   only after the batch it belongs to is stored;
//! - publishes the driver's stored outbox messages (QoS 1) and reports each one the
//!   broker acknowledged (PUBACK), so the driver can delete it from the outbox;
//! - writes what one commit sends (its messages, then its acknowledgements) onto the
//!   connection together and flushes once: one send to the broker per commit, where
//!   rumqttc's request queue flushes every request with a send of its own. It writes
//!   through rumqttc's own connection state (packet ids, in-flight window), so rumqttc
//!   still retransmits after a reconnect; while the window is full, the connection is
//!   down or rumqttc is resending, messages wait in order;
//! - reconnects at once and then every few hundred milliseconds, jittered (see
//!   [`Reconnect`]); when the broker has lost the session it subscribes again
//!   and republishes every message not yet acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, PubAck, PubRec, Publish, QoS, Request, StateError};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::metrics::Metrics;
use crate::settings::MqttSection;

/// What the engine subscribes to. Subscribing at every start also has the broker send
/// each gateway's retained status again (vakt keeps them in memory only).
pub const SUBSCRIPTIONS: &[&str] = &["vakt/v1/alarms/+", "vakt/v1/staff/+/status", "vakt/v1/staff/+/replies", "vakt/v1/gateways/+/+"];

/// Which stored message an outbound message is: reported back once the broker has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A row of `outbox` (offers, revokes, answers to staff, rejects): the outbox's mark
    /// moves over it then.
    Outbox(i64),
    /// An incident event (`events.seq`), published from the events table itself.
    Event(i64),
}

/// One stored message to publish.
#[derive(Debug, Clone)]
pub struct OutMsg {
    pub stored: Stored,
    pub topic: String,
    pub payload: String,
}

impl From<super::store::OutboxRow> for OutMsg {
    fn from(row: super::store::OutboxRow) -> OutMsg {
        OutMsg { stored: Stored::Outbox(row.id), topic: row.topic, payload: row.payload }
    }
}

/// Where the embedded broker is to listen (`mqtt.listen`). Fails clearly if the port is
/// taken (checked by binding it: rumqttd would only log the error), so that vakt says
/// so at once, before the broker itself starts.
pub fn embedded_broker_address(listen: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = listen.parse().with_context(|| format!("mqtt.listen {listen:?} is not an address:port"))?;
    match std::net::TcpListener::bind(addr) {
        Ok(l) => drop(l),
        Err(e) => bail!(
            "cannot start the embedded MQTT broker on {addr}: {e}. Another broker is probably running there: \
             run vakt with --mqtt-listen {next} (or set mqtt.listen to a free port), or with --mqtt-url mqtt://{addr} to use that broker",
            next = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1))
        ),
    }
    Ok(addr)
}

/// Reports what the embedded broker says of a log it overran (rumqttd's alert
/// `cursor_jump`): a subscriber was further behind on a filter than its log holds
/// (`EMBEDDED_SEGMENTS`), and lost the oldest messages it had not read. The broker had
/// acknowledged them to their senders, who will not send them again. Behind is vakt
/// itself only when it cannot keep up for long (its database down for a long time, or
/// more alarms a second than it stores for tens of thousands of alarms): then these are
/// alarms, statuses or replies that never reached the engine, logged as an error.
/// Another subscriber (an app or an integration offline for long) missed offers or
/// events; the engine still holds them. Counted in
/// `vakt_embedded_broker_overruns_total` by `subscriber` (`engine`, `other`). rumqttd
/// does not say how many messages were lost, only that some were.
fn watch_overruns(link: rumqttd::alerts::AlertsLink, engine_client: &str, metrics: &Metrics) {
    while let Ok(alerts) = link.router_rx.recv() {
        for alert in alerts {
            let Ok(kind) = serde_json::to_value(&alert.kind) else { continue };
            let Some(filter) = kind.get("CursorJump").and_then(|j| j.get("filter")).and_then(|f| f.as_str()) else { continue };
            if alert.client_id == engine_client {
                metrics.embedded_broker_overruns.with_label_values(&["engine"]).inc();
                tracing::error!(
                    filter,
                    "the embedded broker dropped messages on {filter} before vakt read them: vakt fell too far behind, and alarms, \
                     statuses or replies it had acknowledged to their senders are lost. Use an external broker (docs/mqtt.md)"
                );
            } else {
                metrics.embedded_broker_overruns.with_label_values(&["other"]).inc();
                warn!(client = %alert.client_id, filter, "the embedded broker dropped messages on {filter} that a subscriber had not read: it was too far behind");
            }
        }
    }
}

/// Sets TCP_NODELAY on the embedded broker's listening socket, and says whether it did.
///
/// rumqttd binds its listener itself and has no setting for it, so Nagle's algorithm
/// held each small packet it sent (an alarm to vakt, an offer to an app) while an
/// earlier one awaited the peer's delayed TCP acknowledgement, tens of milliseconds on
/// every offer at low rates (docs/mqtt.md). On Linux a connection
/// accepted from a listener inherits its TCP_NODELAY, so setting it once on the
/// listener, before the engine's client or any device connects, covers every
/// connection the broker takes. The listener is found among this process's own file
/// descriptors: the one listening TCP socket bound to `addr`. Elsewhere, or should it
/// not be found, the broker runs as before (logged).
#[cfg(target_os = "linux")]
fn listener_nodelay(addr: SocketAddr) -> bool {
    let found = own_socket(|sock| {
        let listener = sock.r#type().is_ok_and(|t| t == socket2::Type::STREAM)
            && sock.is_listener().unwrap_or(false)
            && sock.local_addr().ok().and_then(|a| a.as_socket()) == Some(addr);
        listener.then(|| sock.set_tcp_nodelay(true))
    });
    match found {
        Some(Ok(())) => true,
        Some(Err(e)) => {
            warn!(error = %e, "cannot set TCP_NODELAY on the embedded broker's listener");
            false
        }
        None => {
            warn!(%addr, "the embedded broker's listener was not found: it runs without TCP_NODELAY");
            false
        }
    }
}

/// The first answer `f` gives for one of this process's sockets, which it is lent in
/// turn (found among `/proc/self/fd`).
#[cfg(target_os = "linux")]
fn own_socket<T>(mut f: impl FnMut(socket2::SockRef<'_>) -> Option<T>) -> Option<T> {
    use std::os::fd::{BorrowedFd, RawFd};
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else { continue };
        if !std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")) {
            continue;
        }
        // SAFETY: the descriptor is only lent to `f` for socket options and addresses,
        // and never closed. Should it have been closed meanwhile those calls fail; should
        // its number have been taken again, `f` checks what it finds before it sets
        // anything.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        if let Some(t) = f(socket2::SockRef::from(&fd)) {
            return Some(t);
        }
    }
    None
}

#[cfg(not(target_os = "linux"))]
fn listener_nodelay(_addr: SocketAddr) -> bool {
    false
}

/// The embedded broker's log of each subscription filter: segments of this many bytes...
pub const EMBEDDED_SEGMENT_BYTES: usize = 1 << 20;
/// ...and this many of them besides the one being written.
pub const EMBEDDED_SEGMENTS: usize = 10;

/// Starts rumqttd in its own threads, listening on `addr`, and returns once it takes
/// connections.
///
/// vakt starts it only when its engine is about to subscribe. The broker acknowledges
/// an alarm as soon as it has it, and drops one that nobody subscribes to: listening
/// any earlier (while vakt opens its database, or replays its log) would acknowledge
/// the devices' alarms into nothing. Until then a device cannot connect, and keeps its
/// alarm.
///
/// It also reports, once a second, each subscriber whose log it overran
/// (`watch_overruns`), so that a loss is never silent: `engine_client` is vakt's own
/// client id, whose loss is alarms.
pub fn start_embedded_broker(addr: SocketAddr, max_payload_bytes: usize, engine_client: &str, metrics: Arc<Metrics>) -> Result<()> {
    // rumqttd's own configuration format; values sized for one municipality's devices.
    // rumqttd keeps every message it routes in memory, in a log per subscription filter,
    // for subscribers that are behind or offline: up to max_segment_size ×
    // (max_segment_count + 1) bytes of topics and payloads per filter, dropping the
    // oldest segment beyond. 1 MiB × 11 holds some 40,000 alarms for a vakt that is
    // behind (its database down, say): more than a year of the six Indre Sogn
    // municipalities' alarms, while keeping the memory a log can hold small (docs/mqtt.md,
    // "The embedded broker's memory"). Its alerts are read once a second (`watch_overruns`);
    // [metrics.meters] is there only because rumqttd's timer fails without it, and
    // nothing reads the meters.
    let toml = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = {EMBEDDED_SEGMENT_BYTES}
max_segment_count = {EMBEDDED_SEGMENTS}
[v4.1]
name = "vakt-embedded"
listen = "{addr}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = {payload}
max_inflight_count = 500
dynamic_filters = true
[metrics.alerts]
push_interval = 1
[metrics.meters]
push_interval = 3600
"#,
        // Larger than the wire limit, so vakt sees oversized messages and can say why it refuses them.
        payload = max_payload_bytes.max(64 * 1024) * 4
    );
    let config: rumqttd::Config = toml::from_str(&toml).context("embedded broker configuration")?;
    let engine_client = engine_client.to_owned();
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            let watching = broker.alerts().map_err(anyhow::Error::from).and_then(|link| {
                let watch = move || watch_overruns(link, &engine_client, &metrics);
                std::thread::Builder::new().name("rumqttd-alerts".into()).spawn(watch).map_err(anyhow::Error::from)
            });
            if let Err(e) = watching {
                warn!(error = %e, "cannot watch the embedded broker's alerts: a log it overruns goes unreported");
            }
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .context("starting the embedded broker thread")?;
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            let nodelay = listener_nodelay(addr);
            info!(%addr, tcp_nodelay = nodelay, "embedded MQTT broker listening");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the embedded MQTT broker did not start listening on {addr}")
}

/// Client options for the engine from the configuration (`url` or the embedded broker).
pub fn options(section: &MqttSection, embedded: Option<SocketAddr>) -> Result<MqttOptions> {
    let mut opts = match (&section.url, embedded) {
        (Some(url), _) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let full = format!("{url}{sep}client_id={}", section.client_id);
            let o = MqttOptions::parse_url(full)
                .with_context(|| format!("mqtt.url {:?} (use mqtt://host:port or mqtts://host:port)", super::store::redact(url)))?;
            if url.starts_with("mqtts://") || url.starts_with("ssl://") {
                // TLS with the system's root certificates (set SSL_CERT_FILE for a private CA).
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            o
        }
        (None, Some(addr)) => MqttOptions::new(section.client_id.clone(), addr.ip().to_string(), addr.port()),
        (None, None) => bail!("no MQTT broker: set mqtt.url or start the embedded broker"),
    };
    opts.set_keep_alive(Duration::from_secs(section.keep_alive_secs.max(1)))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_inflight(section.inflight.max(1))
        // Subscriptions and the disconnect; publishes and acks are written by `ClientTask`.
        .set_request_channel_capacity(64)
        .set_max_packet_size(MAX_INCOMING_PACKET, 1 << 20);
    Ok(opts)
}

/// The largest packet vakt's client reads: the largest MQTT can frame (its remaining
/// length is at most 268,435,455 bytes). Any smaller limit would be a packet vakt's client
/// refuses by dropping the connection, and a broker that keeps the session (and the
/// message) would deliver it again at the next connection, and the next: one message
/// too large stopped vakt's intake for good. So the client reads whatever the broker
/// sends, and a payload over the wire's limit is dropped at once and refused with its
/// reason (see [`Inbound`]). The broker's own packet limit (config/mosquitto/vakt.conf)
/// keeps such messages from reaching vakt at all.
pub const MAX_INCOMING_PACKET: usize = 268_435_455;

/// An inbound message as the client task hands it to the driver.
#[derive(Debug)]
pub struct Inbound {
    /// The message; its payload is empty when it was too large (`oversize`).
    pub publish: Publish,
    /// The payload's size when it was over the wire's limit (`wire.max_payload_bytes`):
    /// its bytes were dropped as soon as it was read, so a big one is not held while its
    /// batch is stored, and the driver refuses it (`payload_too_large`).
    pub oversize: Option<usize>,
}

impl Inbound {
    /// A message as read (`limit`: the wire's largest payload).
    pub fn new(mut publish: Publish, limit: usize) -> Inbound {
        let size = publish.payload.len();
        let oversize = (size > limit).then(|| {
            publish.payload = Default::default();
            size
        });
        Inbound { publish, oversize }
    }
}

/// When to try the broker again, and what to log of it.
///
/// Every alarm waiting at the broker waits as long as vakt is away, so vakt comes back
/// within a few hundred milliseconds of the broker: after a lost connection it tries at
/// once, then after 50, 100, 200 and then every 400 ms at most, each wait jittered
/// (between half and all of it) so that a fleet of clients does not come back in step.
/// A refused or failed attempt costs the broker one TCP connection. The first failure
/// is logged, then one line a minute while it lasts, and the reconnection with how long
/// it took: an outage of an hour is some sixty lines, not nine thousand.
#[derive(Default)]
struct Reconnect {
    /// Failed attempts since the last connection.
    attempts: u32,
    since: Option<std::time::Instant>,
    logged: Option<std::time::Instant>,
}

impl Reconnect {
    const FIRST: Duration = Duration::from_millis(50);
    const MOST: Duration = Duration::from_millis(400);
    const LOG_EVERY: Duration = Duration::from_secs(60);

    /// After a failed attempt or a lost connection: how long to wait before the next.
    fn failed(&mut self, error: &rumqttc::ConnectionError) -> Duration {
        let now = std::time::Instant::now();
        let since = *self.since.get_or_insert(now);
        self.attempts += 1;
        let wait = match self.attempts {
            1 => Duration::ZERO,
            n => (Self::FIRST * 2u32.saturating_pow(n - 2)).min(Self::MOST).mul_f64(0.5 + 0.5 * jitter()),
        };
        if self.logged.is_none_or(|at| now.duration_since(at) >= Self::LOG_EVERY) {
            self.logged = Some(now);
            let down_for_s = now.duration_since(since).as_secs();
            warn!(error = %error, attempts = self.attempts, down_for_s, "MQTT connection lost or refused; trying again every {} ms at most", Self::MOST.as_millis());
        }
        wait
    }

    fn connected(&mut self) {
        if let Some(since) = self.since.take() {
            info!(attempts = self.attempts, down_for_ms = since.elapsed().as_millis() as u64, "MQTT connection back");
        }
        *self = Reconnect::default();
    }
}

/// A number in [0, 1), from the operating system's randomness (0.5 should it fail).
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::getrandom(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// What one commit sends: its stored messages, then the inbound messages it stored, to
/// acknowledge. Written onto the connection together.
struct Sends {
    msgs: Vec<OutMsg>,
    acks: Vec<Inbound>,
}

/// The driver's handle on the client task.
#[derive(Clone)]
pub struct MqttHandle {
    out: mpsc::UnboundedSender<Sends>,
}

impl MqttHandle {
    /// After a commit: publish its stored messages (each comes back on the delivered
    /// channel once the broker has it), then acknowledge the inbound messages it stored.
    pub fn send(&self, msgs: Vec<OutMsg>, acks: Vec<Inbound>) {
        if !msgs.is_empty() || !acks.is_empty() {
            let _ = self.out.send(Sends { msgs, acks });
        }
    }
}

pub struct Channels {
    pub inbound: mpsc::Receiver<Inbound>,
    pub delivered: mpsc::UnboundedReceiver<Stored>,
}

/// Spawns the client task. `stop` ends it (after a clean DISCONNECT). `max_payload` is
/// the wire's largest payload: a larger one's bytes are dropped as soon as it is read
/// (see [`Inbound`]).
pub fn spawn(opts: MqttOptions, max_payload: usize, metrics: Arc<Metrics>, stop: watch::Receiver<bool>) -> (MqttHandle, Channels, tokio::task::JoinHandle<()>) {
    let capacity = opts.request_channel_capacity();
    let (client, mut eventloop) = AsyncClient::new(opts, capacity);
    // Small messages (acks, offers) go out at once, not after the previous one's TCP ACK.
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let (in_tx, in_rx) = mpsc::channel(50_000);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (del_tx, del_rx) = mpsc::unbounded_channel();
    let task = ClientTask {
        client,
        max_payload,
        in_tx,
        out_rx,
        del_tx,
        metrics,
        fifo: VecDeque::new(),
        inflight: FxHashMap::default(),
        unacked: BTreeMap::new(),
        next_key: 0,
        subscribed: false,
        backlog: VecDeque::new(),
    };
    let join = tokio::spawn(task.run(eventloop, stop));
    (MqttHandle { out: out_tx }, Channels { inbound: in_rx, delivered: del_rx }, join)
}

struct ClientTask {
    client: AsyncClient,
    max_payload: usize,
    in_tx: mpsc::Sender<Inbound>,
    out_rx: mpsc::UnboundedReceiver<Sends>,
    del_tx: mpsc::UnboundedSender<Stored>,
    metrics: Arc<Metrics>,
    /// Keys (send order) of messages written, waiting for rumqttc's event with their
    /// packet id (assigned in order).
    fifo: VecDeque<u64>,
    /// Packet id → key, for publishes on the wire awaiting PUBACK.
    inflight: FxHashMap<u16, u64>,
    /// Every message not yet acknowledged, by key (so in the order sent), to republish
    /// if the broker lost our session.
    unacked: BTreeMap<u64, OutMsg>,
    next_key: u64,
    /// A SUBACK has come back in this process: the broker's session has our subscriptions.
    subscribed: bool,
    /// Messages not yet written, in order.
    backlog: VecDeque<(u64, OutMsg)>,
}

/// After a lost connection: drops rumqttc's not yet seen announcements of publishes
/// written on it. They would come after the next CONNACK and be taken for messages of the
/// new connection. rumqttc announces each again when it resends it (the session is still
/// there), or we republish them all (the session is gone).
fn forget_unseen_publishes(el: &mut EventLoop) {
    el.state.events.retain(|e| !matches!(e, Event::Outgoing(Outgoing::Publish(_))));
}

impl ClientTask {
    async fn run(mut self, mut eventloop: EventLoop, mut stop: watch::Receiver<bool>) {
        let mut reconnect = Reconnect::default();
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => {
                    // What the engine sent last (its last acknowledgements) goes out first.
                    let acks = self.take_sends(None, usize::MAX);
                    self.write(&mut eventloop, acks).await;
                    let _ = self.client.try_disconnect();
                    // Let the DISCONNECT (and queued acks) go out.
                    let _ = tokio::time::timeout(Duration::from_millis(500), async {
                        while let Ok(ev) = eventloop.poll().await {
                            if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) { break; }
                        }
                    }).await;
                    self.metrics.mqtt_connected.set(0);
                    return;
                }
                ev = eventloop.poll() => match ev {
                    Ok(ev) => {
                        if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                            reconnect.connected();
                        }
                        self.on_event(ev).await;
                        if !self.backlog.is_empty() {
                            self.write(&mut eventloop, Vec::new()).await;
                        }
                    }
                    Err(e) => {
                        forget_unseen_publishes(&mut eventloop);
                        self.metrics.mqtt_connected.set(0);
                        self.metrics.mqtt_disconnects.inc();
                        let wait = reconnect.failed(&e);
                        tokio::time::sleep(wait).await;
                    }
                },
                Some(first) = self.out_rx.recv() => {
                    // What several commits sent while we were busy goes out together.
                    let acks = self.take_sends(Some(first), 64);
                    self.write(&mut eventloop, acks).await;
                }
            }
        }
    }

    /// Queues the messages of `first` and of the sends waiting behind it (`most` sends in
    /// all), and returns their acknowledgements, in order.
    fn take_sends(&mut self, first: Option<Sends>, most: usize) -> Vec<Inbound> {
        let mut acks = Vec::new();
        let mut next = first.or_else(|| self.out_rx.try_recv().ok());
        let mut taken = 0;
        while let Some(sends) = next.take() {
            for msg in sends.msgs {
                self.queue(msg);
            }
            acks.extend(sends.acks);
            taken += 1;
            if taken < most {
                next = self.out_rx.try_recv().ok();
            }
        }
        acks
    }

    /// Queues a message to publish, in order, remembering it until the broker has it.
    fn queue(&mut self, msg: OutMsg) {
        let key = self.next_key;
        self.next_key += 1;
        self.unacked.insert(key, msg.clone());
        self.backlog.push_back((key, msg));
    }

    /// Publishes the backlog, then acknowledges `acks`: written onto the connection, in
    /// order, and flushed once.
    async fn write(&mut self, el: &mut EventLoop, acks: Vec<Inbound>) {
        let timeout = Duration::from_secs(el.network_options().connection_timeout().max(1));
        match tokio::time::timeout(timeout, self.write_direct(el, acks)).await {
            Ok(Ok(())) => {}
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                warn!(error, "MQTT write failed; reconnecting");
                self.metrics.mqtt_connected.set(0);
                self.metrics.mqtt_disconnects.inc();
                // As rumqttc does on a failed connection: what was in flight is sent again
                // on the next one (or, if the broker lost the session, republished by us).
                el.clean();
                forget_unseen_publishes(el);
            }
        }
    }

    async fn write_direct(&mut self, el: &mut EventLoop, acks: Vec<Inbound>) -> Result<(), StateError> {
        let mut wrote = false;
        // Messages wait in order while there is no connection, while rumqttc resends what
        // was in flight before a reconnect or holds a publish whose packet id is taken, and
        // while the in-flight window is full. Each of those ends with an event of the event
        // loop (a connection, a resend, a PUBACK), after which we come back here.
        while let Some(network) = el.network.as_mut() {
            if self.backlog.is_empty() || !el.pending.is_empty() || el.state.collision.is_some() || el.state.inflight() >= el.mqtt_options.inflight() {
                break;
            }
            let (key, msg) = self.backlog.pop_front().expect("checked");
            let publish = Publish::new(msg.topic, QoS::AtLeastOnce, msg.payload.into_bytes());
            // Its packet id becomes known with rumqttc's outgoing-publish event, which comes
            // in order with the PUBACKs it has read: mapping ids there keeps a reused id
            // apart from its previous message, whose PUBACK may still be among the events.
            self.fifo.push_back(key);
            // None: its packet id is still in flight (the broker acknowledged out of order);
            // rumqttc holds it and sends it when the id is free.
            if let Some(packet) = el.state.handle_outgoing_packet(Request::Publish(publish))? {
                network.write(packet).await?;
                wrote = true;
            }
        }
        for Inbound { publish: p, .. } in acks {
            let ack = match p.qos {
                QoS::AtMostOnce => continue,
                QoS::AtLeastOnce => Request::PubAck(PubAck::new(p.pkid)),
                QoS::ExactlyOnce => Request::PubRec(PubRec::new(p.pkid)),
            };
            // Not connected: the broker delivers the message again, and it is acknowledged then.
            let Some(network) = el.network.as_mut() else { continue };
            if let Some(packet) = el.state.handle_outgoing_packet(ack)? {
                network.write(packet).await?;
                wrote = true;
            }
        }
        if wrote {
            el.network.as_mut().expect("wrote on it").flush().await?;
        }
        Ok(())
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Incoming(Packet::ConnAck(ack)) => {
                info!(session_present = ack.session_present, "MQTT connected");
                // Subscribe when the broker has no session for us, and also when this process
                // has not seen a SUBACK yet: a connection can drop between the broker creating
                // the session and us receiving its CONNACK, and then "session present" holds
                // a session without our subscriptions. All in one SUBSCRIBE: vakt counts as
                // connected (and ready) at its one SUBACK, when the broker routes the alarms
                // to it; before, a broker without our session would drop them.
                if !ack.session_present || !self.subscribed {
                    let filters = SUBSCRIPTIONS.iter().map(|t| rumqttc::SubscribeFilter::new((*t).to_owned(), QoS::AtLeastOnce));
                    if let Err(e) = self.client.try_subscribe_many(filters) {
                        warn!(error = %e, "subscribe failed");
                    }
                } else {
                    self.metrics.mqtt_connected.set(1);
                }
                if !ack.session_present {
                    // The broker forgot what was in flight (rumqttc dropped its copies too):
                    // send every unacknowledged message again.
                    self.fifo.clear();
                    self.inflight.clear();
                    self.backlog.clear();
                    let again: Vec<OutMsg> = std::mem::take(&mut self.unacked).into_values().collect();
                    if !again.is_empty() {
                        info!(messages = again.len(), "republishing unacknowledged messages");
                    }
                    for msg in again {
                        self.queue(msg); // written by the caller, after this event
                    }
                }
            }
            Event::Incoming(Packet::Publish(p)) => {
                let delivered = self.in_tx.send(Inbound::new(p, self.max_payload)).await;
                if delivered.is_err() {
                    warn!("engine stopped; inbound message left unacknowledged for redelivery");
                }
            }
            Event::Incoming(Packet::SubAck(_)) => {
                self.subscribed = true;
                self.metrics.mqtt_connected.set(1);
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(msg) = self.inflight.remove(&ack.pkid).and_then(|key| self.unacked.remove(&key)) {
                    let _ = self.del_tx.send(msg.stored);
                }
            }
            // A retransmission keeps its packet id; a new publish takes the next key.
            Event::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 && !self.inflight.contains_key(&pkid) => {
                if let Some(key) = self.fifo.pop_front() {
                    self.inflight.insert(pkid, key);
                }
            }
            _ => {}
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn free_addr() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    /// A client of the embedded broker with a persistent session.
    fn client(addr: SocketAddr, id: &str) -> (AsyncClient, EventLoop) {
        let mut opts = MqttOptions::new(id, "127.0.0.1", addr.port());
        opts.set_clean_session(false);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        AsyncClient::new(opts, 100)
    }

    /// Polls `el` until `until` says so (at most 10 s).
    async fn poll_until(el: &mut EventLoop, mut until: impl FnMut(&Event) -> bool) {
        let polled = tokio::time::timeout(Duration::from_secs(10), async { while !until(&el.poll().await.expect("connected")) {} });
        polled.await.expect("in time");
    }

    /// A subscriber too far behind for the embedded broker's log loses messages: the
    /// broker says so, and vakt counts it (a loss of the engine's own would be alarms).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_the_embedded_broker_overruns_is_counted() {
        let addr = free_addr();
        let metrics = Arc::new(Metrics::new());
        start_embedded_broker(addr, 64 * 1024, "vakt-engine", metrics.clone()).unwrap();
        let overruns = |who: &str| metrics.embedded_broker_overruns.with_label_values(&[who]).get();
        // A subscriber that goes away, keeping its session (and its place in the log).
        let (behind, mut el) = client(addr, "behind");
        behind.subscribe("test/flood", QoS::AtLeastOnce).await.unwrap();
        poll_until(&mut el, |e| matches!(e, Event::Incoming(Packet::SubAck(_)))).await;
        behind.disconnect().await.unwrap();
        while el.poll().await.is_ok() {}
        // More than its log holds is published on its filter meanwhile.
        let (flood, mut el) = client(addr, "flood");
        let payload = vec![b'x'; 60_000];
        let n = (EMBEDDED_SEGMENTS + 1) * EMBEDDED_SEGMENT_BYTES / payload.len() * 3 / 2;
        let sending = tokio::spawn(async move {
            for _ in 0..n {
                flood.publish("test/flood", QoS::AtLeastOnce, false, payload.clone()).await.unwrap();
            }
        });
        let mut acked = 0;
        poll_until(&mut el, |e| {
            acked += matches!(e, Event::Incoming(Packet::PubAck(_))) as usize;
            acked == n
        })
        .await;
        sending.await.unwrap();
        assert_eq!(overruns("other"), 0, "nobody is behind yet: the subscriber has not come back");
        // It comes back, from where it was: the oldest of what it missed is gone.
        let (_behind, mut el) = client(addr, "behind");
        let counted = tokio::time::timeout(Duration::from_secs(10), async {
            while overruns("other") == 0 {
                tokio::select! {
                    _ = el.poll() => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
        counted.await.expect("the overrun is reported within 10 s (rumqttd reports once a second)");
        assert_eq!(overruns("engine"), 0, "the engine's client was not the one behind");
    }

    /// After a lost connection vakt tries at once, then within 50 ms, and never waits
    /// more than 400 ms, however long the broker stays away; each wait is jittered.
    #[test]
    fn reconnection_is_tried_at_once_and_then_every_400_ms_at_most() {
        let mut r = Reconnect::default();
        let error = rumqttc::ConnectionError::RequestsDone;
        let waits: Vec<Duration> = (0..1000).map(|_| r.failed(&error)).collect();
        assert_eq!(waits[0], Duration::ZERO);
        assert!(waits[1] <= Duration::from_millis(50) && waits[1] >= Duration::from_millis(25), "{:?}", waits[1]);
        assert!(waits.iter().all(|w| *w <= Reconnect::MOST), "never more than 400 ms");
        assert!(waits[10..].iter().all(|w| *w >= Reconnect::MOST / 2), "400 ms jittered down to half at most, once it has grown");
        assert!(waits[10..].iter().any(|w| *w != waits[10]), "jittered, not in step");
        r.connected();
        assert_eq!(r.failed(&error), Duration::ZERO, "at once again after a connection");
    }

    /// Every connection the embedded broker accepts sends at once: its accepted socket
    /// (the broker's end of a client's connection) has TCP_NODELAY, which it inherits
    /// from the listener vakt set it on.
    #[test]
    fn the_embedded_broker_s_connections_have_tcp_nodelay() {
        let addr = free_addr();
        start_embedded_broker(addr, 64 * 1024, "vakt-engine", Arc::new(Metrics::new())).unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let ours = client.local_addr().unwrap();
        // The broker's end: bound to its address, connected to this client.
        let nodelay = (0..100).find_map(|_| {
            let found = own_socket(|sock| {
                let theirs = sock.local_addr().ok()?.as_socket() == Some(addr) && sock.peer_addr().ok()?.as_socket() == Some(ours);
                theirs.then(|| sock.tcp_nodelay().unwrap())
            });
            if found.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            found
        });
        assert_eq!(nodelay, Some(true), "the broker's end of the connection (None: not found)");
        assert!(!client.nodelay().unwrap(), "the client's own end is the client's to set, and was left alone");
    }
}
