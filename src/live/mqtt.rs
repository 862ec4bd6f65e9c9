//! The MQTT side: the embedded broker (rumqttd) and the engine's client (rumqttc).
//!
//! The engine is always a client, of its own embedded broker or of an external one, so
//! there is one code path. The client task owns rumqttc's event loop and:
//! - passes every inbound publish to the driver, which acknowledges it (manual acks)
//!   only after the batch it belongs to is stored;
//! - publishes the driver's stored outbox messages (QoS 1) and reports each one the
//!   broker acknowledged (PUBACK), so the driver can delete it from the outbox;
//! - reconnects with backoff; when the broker has lost the session it subscribes again
//!   and republishes every message not yet acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::metrics::Metrics;
use crate::settings::MqttSection;

/// What the engine subscribes to.
pub const SUBSCRIPTIONS: &[&str] = &["vakt/v1/alarms/+", "vakt/v1/staff/+/status", "vakt/v1/staff/+/replies"];

/// Which stored message an outbound message is: reported back once the broker has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A row of `outbox` (offers, revokes, answers to staff, rejects): deleted then.
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

/// Starts rumqttd in its own threads, listening on `listen`. Fails clearly if the
/// port is taken (checked by binding it first: rumqttd would only log the error).
pub fn start_embedded_broker(listen: &str, max_payload_bytes: usize) -> Result<SocketAddr> {
    let addr: SocketAddr = listen.parse().with_context(|| format!("mqtt.listen {listen:?} is not an address:port"))?;
    match std::net::TcpListener::bind(addr) {
        Ok(l) => drop(l),
        Err(e) => bail!(
            "cannot start the embedded MQTT broker on {addr}: {e}. Another broker is probably running there: \
             set mqtt.listen to a free port, or mqtt.url to use that broker"
        ),
    }
    // rumqttd's own configuration format; values sized for one municipality's devices.
    let toml = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 10485760
max_segment_count = 10
[v4.1]
name = "vakt-embedded"
listen = "{addr}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = {payload}
max_inflight_count = 500
dynamic_filters = true
"#,
        // Larger than the wire limit, so vakt sees oversized messages and can say why it refuses them.
        payload = max_payload_bytes.max(64 * 1024) * 4
    );
    let config: rumqttd::Config = toml::from_str(&toml).context("embedded broker configuration")?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .context("starting the embedded broker thread")?;
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            info!(%addr, "embedded MQTT broker listening");
            return Ok(addr);
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
            let o = MqttOptions::parse_url(full).with_context(|| format!("mqtt.url {:?} (use mqtt://host:port or mqtts://host:port)", super::store::redact(url)))?;
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
        .set_inflight(1000)
        .set_request_channel_capacity(section.request_queue.max(10))
        .set_max_packet_size(1 << 20, 1 << 20);
    Ok(opts)
}

/// The driver's handle on the client task.
#[derive(Clone)]
pub struct MqttHandle {
    pub client: AsyncClient,
    out: mpsc::UnboundedSender<OutMsg>,
}

impl MqttHandle {
    /// Publish a stored message; it comes back on the delivered channel once the broker has it.
    pub fn publish(&self, msg: OutMsg) {
        let _ = self.out.send(msg);
    }

    /// Acknowledge an inbound message to the broker (after it is stored).
    pub fn ack(&self, publish: &Publish) {
        if let Err(e) = self.client.try_ack(publish) {
            warn!(error = %e, "could not queue an MQTT ack; the broker will redeliver");
        }
    }
}

pub struct Channels {
    pub inbound: mpsc::Receiver<Publish>,
    pub delivered: mpsc::UnboundedReceiver<Stored>,
}

/// Spawns the client task. `stop` ends it (after a clean DISCONNECT).
pub fn spawn(opts: MqttOptions, metrics: Arc<Metrics>, stop: watch::Receiver<bool>) -> (MqttHandle, Channels, tokio::task::JoinHandle<()>) {
    let capacity = opts.request_channel_capacity();
    let (client, mut eventloop) = AsyncClient::new(opts, capacity);
    // Small messages (acks, offers) go out at once, not after the previous one's TCP ACK.
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let (in_tx, in_rx) = mpsc::channel(50_000);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (del_tx, del_rx) = mpsc::unbounded_channel();
    let task = ClientTask { client: client.clone(), in_tx, out_rx, del_tx, metrics, fifo: VecDeque::new(), inflight: FxHashMap::default(), unacked: BTreeMap::new(), next_key: 0, subscribed: false, backlog: VecDeque::new() };
    let join = tokio::spawn(task.run(eventloop, stop));
    (MqttHandle { client, out: out_tx }, Channels { inbound: in_rx, delivered: del_rx }, join)
}

struct ClientTask {
    client: AsyncClient,
    in_tx: mpsc::Sender<Publish>,
    out_rx: mpsc::UnboundedReceiver<OutMsg>,
    del_tx: mpsc::UnboundedSender<Stored>,
    metrics: Arc<Metrics>,
    /// Keys (send order) of messages handed to rumqttc, waiting for their packet id
    /// (assigned in order).
    fifo: VecDeque<u64>,
    /// Packet id → key, for publishes on the wire awaiting PUBACK.
    inflight: FxHashMap<u16, u64>,
    /// Every message not yet acknowledged, by key (so in the order sent), to republish
    /// if the broker lost our session.
    unacked: BTreeMap<u64, OutMsg>,
    next_key: u64,
    /// A SUBACK has come back in this process: the broker's session has our subscriptions.
    subscribed: bool,
    /// Messages waiting for room in rumqttc's request queue, in order.
    backlog: VecDeque<(u64, OutMsg)>,
}

impl ClientTask {
    async fn run(mut self, mut eventloop: EventLoop, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => {
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
                        backoff = Duration::from_millis(100);
                        self.on_event(ev).await;
                        if !self.backlog.is_empty() {
                            self.flush_backlog();
                        }
                    }
                    Err(e) => {
                        self.metrics.mqtt_connected.set(0);
                        self.metrics.mqtt_disconnects.inc();
                        warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection lost or refused");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                },
                Some(msg) = self.out_rx.recv() => self.send(msg),
            }
        }
    }

    /// Hands a message to rumqttc, in order; what its request queue cannot take now
    /// waits in `backlog` (a long outbox after an outage is bigger than the queue).
    fn send(&mut self, msg: OutMsg) {
        let key = self.next_key;
        self.next_key += 1;
        self.unacked.insert(key, msg.clone());
        self.backlog.push_back((key, msg));
        self.flush_backlog();
    }

    fn flush_backlog(&mut self) {
        while let Some((key, msg)) = self.backlog.front() {
            if self.client.try_publish(msg.topic.clone(), QoS::AtLeastOnce, false, msg.payload.clone().into_bytes()).is_err() {
                break; // full: the event loop drains it, and we come back after its next event
            }
            let key = *key;
            self.backlog.pop_front();
            self.fifo.push_back(key);
        }
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Incoming(Packet::ConnAck(ack)) => {
                self.metrics.mqtt_connected.set(1);
                info!(session_present = ack.session_present, "MQTT connected");
                // Subscribe when the broker has no session for us, and also when this process
                // has not seen a SUBACK yet: a connection can drop between the broker creating
                // the session and us receiving its CONNACK, and then "session present" holds
                // a session without our subscriptions.
                if !ack.session_present || !self.subscribed {
                    for topic in SUBSCRIPTIONS {
                        if let Err(e) = self.client.try_subscribe(*topic, QoS::AtLeastOnce) {
                            warn!(error = %e, topic, "subscribe failed");
                        }
                    }
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
                        self.send(msg);
                    }
                }
            }
            Event::Incoming(Packet::Publish(p)) => {
                let delivered = self.in_tx.send(p).await;
                if delivered.is_err() {
                    warn!("engine stopped; inbound message left unacknowledged for redelivery");
                }
            }
            Event::Incoming(Packet::SubAck(_)) => self.subscribed = true,
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
