//! The receivers: DC-09 over TCP and UDP, SCAIP (SIP) over UDP, TCP and TLS. Each message
//! is read, checked against the register, handed to the engine task, and answered
//! once the engine task says it is stored (see the module above).
//!
//! Bounds, so that no sender delays another device's alarm: connections per address,
//! a message rate per address (a token bucket), frame and message sizes, an idle
//! timeout per connection. Each connection is served by its own task, one message at
//! a time; each UDP message by a task of its own. Refusals are counted, and listed on
//! the dashboards at most once per address and reason every [`LIST_EVERY`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::dc09::{self, Meaning};
use super::scaip::{self, Snu};
use super::sip;
use super::{Answer, DeviceInput, DevicesConfig, Protocol, Register, Reported};
use crate::live::clock::wall_clock;
use crate::live::errors::ErrorCode;
use crate::live::metrics::Metrics;

/// One refusal per address and reason is listed per this long; the rest are counted.
pub const LIST_EVERY: Duration = Duration::from_secs(10);

/// Connections one receiver holds open in all.
const MAX_CONNECTIONS: usize = 4096;

/// The receivers running, and where they listen.
pub struct Receivers {
    pub dc09: Option<SocketAddr>,
    pub scaip: Option<SocketAddr>,
    pub scaip_tls: Option<SocketAddr>,
}

/// What every receiver task shares.
struct Shared {
    config: DevicesConfig,
    register: watch::Receiver<Arc<Register>>,
    engine: mpsc::Sender<DeviceInput>,
    metrics: Arc<Metrics>,
    peers: Mutex<Peers>,
    /// vakt's own SCAIP `MESSAGE`s over UDP awaiting the device's response, by Via
    /// branch: resent until it comes (RFC 3261 §17.1.2).
    awaiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

#[derive(Default)]
struct Peers {
    by_ip: HashMap<(Protocol, IpAddr), Peer>,
    connections: HashMap<Protocol, usize>,
    listed: HashMap<(IpAddr, ErrorCode), Instant>,
}

struct Peer {
    connections: usize,
    tokens: f64,
    at: Instant,
}

impl Peers {
    /// An address's bookkeeping; a new one starts with a full burst (ten times `rate`).
    fn peer(&mut self, protocol: Protocol, ip: IpAddr, rate: f64, now: Instant) -> &mut Peer {
        self.by_ip.entry((protocol, ip)).or_insert(Peer { connections: 0, tokens: rate * 10.0, at: now })
    }
}

/// Starts the receivers configured; each ends when `stop` turns true.
pub async fn spawn_receivers(
    config: DevicesConfig,
    register: watch::Receiver<Arc<Register>>,
    engine: mpsc::Sender<DeviceInput>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<Receivers> {
    let shared = Arc::new(Shared { config: config.clone(), register, engine, metrics, peers: Mutex::default(), awaiting: Mutex::default() });
    let mut out = Receivers { dc09: None, scaip: None, scaip_tls: None };
    for (protocol, listen) in [(Protocol::Dc09, config.dc09_listen), (Protocol::Scaip, config.scaip_listen)] {
        let Some(addr) = listen else { continue };
        let what = if protocol == Protocol::Dc09 { "DC-09" } else { "SCAIP" };
        let tcp = TcpListener::bind(addr).await.with_context(|| format!("{what} receiver: cannot listen on TCP {addr}"))?;
        let local = tcp.local_addr()?;
        let udp = UdpSocket::bind(local).await.with_context(|| format!("{what} receiver: cannot listen on UDP {local}"))?;
        tokio::spawn(accept(shared.clone(), protocol, tcp, None, stop.clone()));
        tokio::spawn(datagrams(shared.clone(), protocol, Arc::new(udp), stop.clone()));
        info!(%local, "{what} receiver listening (TCP and UDP)");
        match protocol {
            Protocol::Dc09 => out.dc09 = Some(local),
            Protocol::Scaip => out.scaip = Some(local),
        }
    }
    if let Some(tls) = &config.scaip_tls {
        let acceptor = tls_acceptor(tls)?;
        let tcp = TcpListener::bind(tls.listen).await.with_context(|| format!("SCAIP receiver: cannot listen on TLS {}", tls.listen))?;
        let local = tcp.local_addr()?;
        tokio::spawn(accept(shared.clone(), Protocol::Scaip, tcp, Some(acceptor), stop.clone()));
        info!(%local, "SCAIP receiver listening (SIP over TLS)");
        out.scaip_tls = Some(local);
    }
    Ok(out)
}

/// The TLS server side of SIP over TLS, from the configured PEM files.
fn tls_acceptor(tls: &super::ScaipTls) -> Result<tokio_rustls::TlsAcceptor> {
    let read = |path: &std::path::Path| std::fs::read(path).with_context(|| format!("scaip: cannot read {}", path.display()));
    let certs = rustls_pemfile::certs(&mut read(&tls.certificate)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("scaip.certificate {}: not PEM certificates", tls.certificate.display()))?;
    anyhow::ensure!(!certs.is_empty(), "scaip.certificate {}: no certificate in it", tls.certificate.display());
    let key = rustls_pemfile::private_key(&mut read(&tls.private_key)?.as_slice())
        .with_context(|| format!("scaip.private_key {}: not a PEM key", tls.private_key.display()))?
        .with_context(|| format!("scaip.private_key {}: no private key in it", tls.private_key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("scaip.certificate and scaip.private_key do not make a TLS server")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl Shared {
    /// A refusal: counted always, listed (through the engine task) once per address
    /// and reason per [`LIST_EVERY`].
    fn refuse(&self, protocol: Protocol, peer: SocketAddr, device: Option<Arc<super::Device>>, code: ErrorCode, detail: String) {
        self.metrics.device_messages.with_label_values(&[protocol.as_str(), code.as_str()]).inc();
        let list = {
            let mut peers = self.peers.lock().expect("not poisoned");
            let now = Instant::now();
            let due = peers.listed.get(&(peer.ip(), code)).is_none_or(|at| now.duration_since(*at) >= LIST_EVERY);
            if due {
                if peers.listed.len() > 10_000 {
                    peers.listed.retain(|_, at| now.duration_since(*at) < LIST_EVERY);
                }
                peers.listed.insert((peer.ip(), code), now);
            }
            due
        };
        if list {
            let _ = self.engine.try_send(DeviceInput::Refused { protocol, peer, device, code, detail });
        } else {
            debug!(%peer, protocol = protocol.as_str(), reason = code.as_str(), %detail, "device message refused (listed already)");
        }
    }

    /// Takes a token for one message from `peer`; `false`: over its rate, and refused
    /// as `flooding`.
    fn admit(&self, protocol: Protocol, peer: SocketAddr) -> bool {
        let rate = f64::from(self.config.max_messages_per_second);
        let admitted = {
            let mut peers = self.peers.lock().expect("not poisoned");
            let now = Instant::now();
            if peers.by_ip.len() > 100_000 {
                // Senders from very many addresses (spoofed UDP, say): forget the quiet ones.
                peers.by_ip.retain(|_, p| p.connections > 0 || now.duration_since(p.at) < Duration::from_secs(60));
            }
            let p = peers.peer(protocol, peer.ip(), rate, now);
            p.tokens = (p.tokens + now.duration_since(p.at).as_secs_f64() * rate).min(rate * 10.0);
            p.at = now;
            let admitted = p.tokens >= 1.0;
            if admitted {
                p.tokens -= 1.0;
            }
            admitted
        };
        if !admitted {
            let detail = format!("more than {} messages a second from {}", self.config.max_messages_per_second, peer.ip());
            self.refuse(protocol, peer, None, ErrorCode::Flooding, detail);
        }
        admitted
    }

    /// Counts a new connection from `peer`; `false`: over a bound.
    fn connect(&self, protocol: Protocol, peer: IpAddr) -> bool {
        let rate = f64::from(self.config.max_messages_per_second);
        let mut peers = self.peers.lock().expect("not poisoned");
        let total = peers.connections.entry(protocol).or_default();
        if *total >= MAX_CONNECTIONS {
            return false;
        }
        let p = peers.peer(protocol, peer, rate, Instant::now());
        if p.connections >= self.config.max_connections_per_address {
            return false;
        }
        p.connections += 1;
        *peers.connections.entry(protocol).or_default() += 1;
        true
    }

    fn disconnect(&self, protocol: Protocol, peer: IpAddr) {
        let mut peers = self.peers.lock().expect("not poisoned");
        if let Some(p) = peers.by_ip.get_mut(&(protocol, peer)) {
            p.connections = p.connections.saturating_sub(1);
        }
        if let Some(n) = peers.connections.get_mut(&protocol) {
            *n = n.saturating_sub(1);
        }
    }

    /// Hands a registered device's report to the engine task and waits for its answer
    /// (`None`: not stored in time, or vakt is stopping).
    async fn report(&self, device: Arc<super::Device>, reported: Reported) -> Option<Answer> {
        let protocol = device.protocol;
        let (tx, rx) = oneshot::channel();
        let wait = self.config.answer_timeout;
        let answered = tokio::time::timeout(wait, async {
            self.engine.send(DeviceInput::Report { device, reported, answer: tx }).await.ok()?;
            rx.await.ok()
        })
        .await
        .ok()
        .flatten();
        if answered.is_none() {
            self.metrics.device_messages.with_label_values(&[protocol.as_str(), "unanswered"]).inc();
        }
        answered
    }
}

/// How long a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Accepts connections (over TLS with `tls`); each is served by a task of its own.
async fn accept(shared: Arc<Shared>, protocol: Protocol, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, protocol = protocol.as_str(), "accepting a device connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !shared.connect(protocol, peer.ip()) {
            let detail = format!("more than {} connections from {} at once", shared.config.max_connections_per_address, peer.ip());
            shared.refuse(protocol, peer, None, ErrorCode::Flooding, detail);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let local = stream.local_addr().unwrap_or(peer);
            match (protocol, tls) {
                (Protocol::Dc09, _) => dc09_stream(&shared, stream, peer, stop).await,
                (Protocol::Scaip, None) => scaip_stream(&shared, stream, "TCP", local, peer, stop).await,
                (Protocol::Scaip, Some(tls)) => match tokio::time::timeout(HANDSHAKE, tls.accept(stream)).await {
                    Ok(Ok(stream)) => scaip_stream(&shared, stream, "TLS", local, peer, stop).await,
                    Ok(Err(e)) => shared.refuse(protocol, peer, None, ErrorCode::BadFrame, format!("TLS handshake failed: {e}")),
                    Err(_) => shared.refuse(protocol, peer, None, ErrorCode::BadFrame, format!("no TLS handshake within {} s", HANDSHAKE.as_secs())),
                },
            }
            shared.disconnect(protocol, peer.ip());
        });
    }
}

/// UDP: each datagram is one message, handled by a task of its own.
async fn datagrams(shared: Arc<Shared>, protocol: Protocol, socket: Arc<UdpSocket>, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = tokio::select! {
            _ = stopped(&mut stop) => return,
            got = socket.recv_from(&mut buf) => match got {
                Ok(g) => g,
                Err(e) => {
                    debug!(error = %e, "a device datagram could not be read");
                    continue;
                }
            },
        };
        if !shared.admit(protocol, peer) {
            continue;
        }
        let message = buf[..n].to_vec();
        let (shared, socket) = (shared.clone(), socket.clone());
        tokio::spawn(async move {
            match protocol {
                Protocol::Dc09 => {
                    if let Some(answer) = dc09_message(&shared, peer, &message).await {
                        let _ = socket.send_to(&answer, peer).await;
                    }
                }
                Protocol::Scaip => scaip_datagram(&shared, &socket, peer, &message).await,
            }
        });
    }
}

/// Reads into `buf` with the idle timeout; `false`: the connection is done (closed,
/// idle, failed, or vakt stopping).
async fn fill(shared: &Shared, stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>, stop: &mut watch::Receiver<bool>) -> bool {
    let mut chunk = [0u8; 4096];
    let read = tokio::select! {
        _ = stopped(stop) => return false,
        r = tokio::time::timeout(shared.config.idle_timeout, stream.read(&mut chunk)) => r,
    };
    match read {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

async fn dc09_stream(shared: &Shared, mut stream: TcpStream, peer: SocketAddr, mut stop: watch::Receiver<bool>) {
    let mut buf = Vec::with_capacity(512);
    while fill(shared, &mut stream, &mut buf, &mut stop).await {
        loop {
            // Bytes before a frame's LF are noise.
            match buf.iter().position(|&b| b == b'\n') {
                Some(0) => {}
                Some(start) => drop(buf.drain(..start)),
                None => {
                    buf.clear();
                    break;
                }
            }
            let Some(end) = buf.iter().position(|&b| b == b'\r') else {
                if buf.len() > dc09::MAX_FRAME {
                    let detail = format!("no CR within {} bytes: not a DC-09 frame; connection closed", dc09::MAX_FRAME);
                    shared.refuse(Protocol::Dc09, peer, None, ErrorCode::BadFrame, detail);
                    return;
                }
                break;
            };
            let frame: Vec<u8> = buf.drain(..=end).collect();
            if !shared.admit(Protocol::Dc09, peer) {
                continue;
            }
            if let Some(answer) = dc09_message(shared, peer, &frame).await {
                if stream.write_all(&answer).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One DC-09 frame: the answer to send, if any (none to a frame whose header cannot
/// be trusted, nor while its event is not stored).
async fn dc09_message(shared: &Shared, peer: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let proto = Protocol::Dc09;
    let frame = match dc09::parse_frame(bytes) {
        Ok(f) => f,
        Err(why) => {
            shared.refuse(proto, peer, None, ErrorCode::BadFrame, why);
            return None;
        }
    };
    if matches!(frame.token.as_str(), "ACK" | "NAK" | "DUH") {
        return None;
    }
    let now = wall_clock();
    let device = shared.register.borrow().by_account(proto, &frame.account).cloned();
    let Some(device) = device else {
        shared.refuse(proto, peer, None, ErrorCode::UnknownDevice, format!("no DC-09 device with account {} in the register", frame.account));
        return Some(frame.duh(now));
    };
    if frame.encrypted != device.key.is_some() {
        let detail = if frame.encrypted {
            "the frame is encrypted, and the device has no key in the register"
        } else {
            "the device has a key in the register, and the frame is not encrypted"
        };
        shared.refuse(proto, peer, Some(device.clone()), ErrorCode::WrongKey, format!("account {}: {detail}", frame.account));
        return Some(frame.duh(now));
    }
    let content = match frame.content(device.key.as_deref()) {
        Ok(c) => c,
        Err(why) => {
            let code = if frame.encrypted { ErrorCode::WrongKey } else { ErrorCode::BadFrame };
            shared.refuse(proto, peer, Some(device.clone()), code, format!("account {}: {why}", frame.account));
            return Some(frame.duh(now));
        }
    };
    if let Some(at) = content.timestamp {
        let (oldest, newest) = (now - shared.config.max_age, now + shared.config.max_ahead);
        if at < oldest || at > newest {
            let detail = format!("account {}: the frame's time {} is outside vakt's window ({} to {})", frame.account, at, oldest, newest);
            shared.refuse(proto, peer, Some(device.clone()), ErrorCode::StaleTimestamp, detail);
            return Some(frame.nak(now));
        }
    }
    let event = match frame.token.as_str() {
        "NULL" => None,
        "ADM-CID" => Some(dc09::contact_id(&content.data)),
        "SIA-DCS" => Some(dc09::sia_dcs(&content.data)),
        other => Some(Err(format!("the {other:?} token is not one vakt reads (SIA-DCS, ADM-CID, NULL)"))),
    };
    let reported = match event {
        None => Reported::Heard("link test"),
        Some(Err(why)) => {
            shared.refuse(proto, peer, Some(device.clone()), ErrorCode::Unsupported, format!("account {}: {why}", frame.account));
            return Some(frame.duh(now));
        }
        Some(Ok(e)) => match e.meaning {
            Meaning::Alarm(kind, priority) => {
                let zone: String = e.zone.chars().take(6).collect();
                let mut text = e.text.clone();
                for x in content.extended.iter().filter_map(|x| x.strip_prefix('I')) {
                    text.push_str(&format!("; {x}"));
                }
                let key = format!("{}-{}{zone}", frame.seq, e.code);
                Reported::Alarm { key, kind, priority, text, position: None, sent_at: content.timestamp }
            }
            Meaning::Cancel => Reported::Cancel,
            Meaning::Heard(what) => Reported::Heard(what),
        },
    };
    match shared.report(device.clone(), reported).await? {
        Answer::Stored => Some(frame.ack(device.key.as_deref(), wall_clock())),
        Answer::Refused { .. } => Some(frame.duh(wall_clock())),
    }
}

/// SIP over TCP or TLS (`transport`): messages one after another on the connection;
/// vakt's `<mrs>` goes back on it.
async fn scaip_stream(
    shared: &Shared,
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    transport: &str,
    local: SocketAddr,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = Vec::with_capacity(2048);
    while fill(shared, &mut stream, &mut buf, &mut stop).await {
        loop {
            // Keep-alive blank lines (RFC 5626) between messages.
            let blank = buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            buf.drain(..blank);
            if buf.is_empty() {
                break;
            }
            let (message, used) = match sip::read(&buf) {
                sip::Read::Partial => break,
                sip::Read::Bad(why) => {
                    shared.refuse(Protocol::Scaip, peer, None, ErrorCode::BadFrame, format!("{why}; connection closed"));
                    return;
                }
                sip::Read::Whole(m, used) => (m, used),
            };
            if message.header("Content-Length").is_none() {
                shared.refuse(Protocol::Scaip, peer, None, ErrorCode::BadFrame, "a SIP message over TCP must say its Content-Length; connection closed".into());
                return;
            }
            buf.drain(..used);
            if !shared.admit(Protocol::Scaip, peer) {
                let _ = stream.write_all(&message.response(503, "Service Unavailable", "vakt")).await;
                continue;
            }
            let tag = tag();
            let Some((response, mrs)) = scaip_request(shared, peer, &message, &tag).await else { continue };
            if stream.write_all(&response).await.is_err() {
                return;
            }
            if let Some(mrs) = mrs {
                let out = sip::message_to_sender(&message, transport, local, &mrs.body, &branch(), &tag);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn scaip_datagram(shared: &Shared, socket: &UdpSocket, peer: SocketAddr, bytes: &[u8]) {
    let message = match sip::read(bytes) {
        sip::Read::Whole(m, _) => m,
        sip::Read::Partial => {
            shared.refuse(Protocol::Scaip, peer, None, ErrorCode::BadFrame, "a SIP datagram shorter than its Content-Length".into());
            return;
        }
        sip::Read::Bad(why) => {
            // CRLF keep-alives (RFC 5626) are not refusals.
            if !bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                shared.refuse(Protocol::Scaip, peer, None, ErrorCode::BadFrame, why);
            }
            return;
        }
    };
    if !message.is_request() {
        // The device's response to vakt's own MESSAGE: it stops the resends.
        let branch = message.header("Via").and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("branch=z9hG4bK")));
        if let Some(done) = branch.and_then(|b| shared.awaiting.lock().expect("not poisoned").remove(b)) {
            let _ = done.send(());
        }
        return;
    }
    let tag = tag();
    let Some((response, mrs)) = scaip_request(shared, peer, &message, &tag).await else { return };
    let _ = socket.send_to(&response, peer).await;
    if let Some(mrs) = mrs {
        let local = socket.local_addr().unwrap_or(peer);
        let branch = branch();
        let out = sip::message_to_sender(&message, "UDP", local, &mrs.body, &branch, &tag);
        if !mrs.registered {
            let _ = socket.send_to(&out, peer).await;
            return;
        }
        let (done_tx, mut done) = oneshot::channel();
        shared.awaiting.lock().expect("not poisoned").insert(branch.clone(), done_tx);
        // Timer E: 500 ms, doubling up to 4 s, for at most 32 s (timer F).
        let mut wait = Duration::from_millis(500);
        let give_up = tokio::time::Instant::now() + Duration::from_secs(32);
        loop {
            let _ = socket.send_to(&out, peer).await;
            tokio::select! {
                _ = &mut done => break,
                _ = tokio::time::sleep(wait) => {}
            }
            if tokio::time::Instant::now() >= give_up {
                debug!(%peer, "a device did not answer vakt's SCAIP response message");
                break;
            }
            wait = (wait * 2).min(Duration::from_secs(4));
        }
        shared.awaiting.lock().expect("not poisoned").remove(&branch);
    }
}

/// What vakt sends back for a SCAIP `MESSAGE`: its `<mrs>`, and whether it is for a
/// registered device (only then is it resent over UDP until answered: a forged sender
/// address must not turn vakt into an amplifier aimed at someone else).
struct Mrs {
    body: String,
    registered: bool,
}

/// One SIP request: the SIP response to send at once, and the `<mrs>` for vakt's own
/// `MESSAGE` after it (`None` for a response, which vakt only takes note of).
async fn scaip_request(shared: &Shared, peer: SocketAddr, message: &sip::Message, tag: &str) -> Option<(Vec<u8>, Option<Mrs>)> {
    if !message.is_request() {
        return None;
    }
    match message.method() {
        "MESSAGE" => {}
        // A device's keep-alive or capability probe.
        "OPTIONS" => return Some((message.response(200, "OK", tag), None)),
        _ => return Some((message.response(405, "Method Not Allowed", tag), None)),
    }
    let media = message.header("Content-Type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media != "application/scaip+xml" {
        shared.refuse(Protocol::Scaip, peer, None, ErrorCode::Unsupported, format!("a MESSAGE of {media:?}, not application/scaip+xml"));
        return Some((message.response(415, "Unsupported Media Type", tag), None));
    }
    // The SIP request is taken; what became of the alarm is the <mrs>'s to say.
    let ok = message.response(200, "OK", tag);
    let mrs = scaip_mrq(shared, peer, &message.body).await;
    Some((ok, Some(mrs)))
}

/// One `<mrq>`: its `<mrs>`, whose `snu` is 0 only when the message is stored.
async fn scaip_mrq(shared: &Shared, peer: SocketAddr, body: &[u8]) -> Mrs {
    let unregistered = |body| Mrs { body, registered: false };
    let proto = Protocol::Scaip;
    let mrq = match scaip::parse_mrq(body) {
        Ok(m) => m,
        Err(e) => {
            let code = if e.snu == Snu::TooLong { ErrorCode::PayloadTooLarge } else { ErrorCode::BadFrame };
            shared.refuse(proto, peer, None, code, e.why.clone());
            return unregistered(scaip::mrs(e.reference.as_deref(), e.snu, &e.why));
        }
    };
    let r = Some(mrq.reference.as_str());
    let device = shared.register.borrow().by_account(proto, &mrq.controller).cloned();
    let Some(device) = device else {
        let why = format!("no SCAIP device with controller id {} in the register", mrq.controller);
        shared.refuse(proto, peer, None, ErrorCode::UnknownDevice, why.clone());
        return unregistered(scaip::mrs(r, Snu::WrongData, &why));
    };
    Mrs { body: scaip_device(shared, peer, &mrq, device).await, registered: true }
}

/// A registered device's `<mrq>`: its `<mrs>` body.
async fn scaip_device(shared: &Shared, peer: SocketAddr, mrq: &scaip::Mrq, device: Arc<super::Device>) -> String {
    let proto = Protocol::Scaip;
    let r = Some(mrq.reference.as_str());
    let reported = match mrq.meaning() {
        Ok(scaip::Meaning::Alarm { kind, priority, position, text }) => {
            Reported::Alarm { key: mrq.reference.clone(), kind, priority, text, position, sent_at: None }
        }
        Ok(scaip::Meaning::Cancel) => Reported::Cancel,
        Ok(scaip::Meaning::Heard(what)) => Reported::Heard(what),
        Err(why) => {
            shared.refuse(proto, peer, Some(device), ErrorCode::Unsupported, format!("controller {}: {why}", mrq.controller));
            return scaip::mrs(r, Snu::WrongData, &why);
        }
    };
    match shared.report(device, reported).await {
        Some(Answer::Stored) => scaip::mrs(r, Snu::Ok, "stored"),
        Some(Answer::Refused { code, detail }) => scaip::mrs(r, Snu::WrongData, &format!("{code}: {detail}")),
        None => scaip::mrs(r, Snu::NotTreated, "not stored in time; send it again"),
    }
}

/// Until `stop` turns true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn branch() -> String {
    random_hex(8)
}

fn tag() -> String {
    random_hex(4)
}
