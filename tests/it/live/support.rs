//! Support for the live tests: the real `vakt` binary as a child process, real MQTT
//! clients playing devices and staff, real stores (SQLite files, PostgreSQL databases).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Tests that use the machine's shared Mosquitto (127.0.0.1:1883) take turns: every
/// engine subscribes to `vakt/v1/...`, so two at once would see each other's alarms.
pub static SHARED_BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where the tests' folders go: one folder each, named by `unique`.
fn scratch_root() -> PathBuf {
    std::env::temp_dir().join("vakt-tests")
}

pub fn temp_dir(name: &str) -> PathBuf {
    static REAPED: std::sync::Once = std::sync::Once::new();
    REAPED.call_once(|| {
        for entry in std::fs::read_dir(scratch_root()).into_iter().flatten().flatten() {
            if run_ended(&entry.file_name().to_string_lossy()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    let dir = scratch_root().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Was `name` (made by `unique`, `-` or `_` between its parts) made by a run of the
/// tests or benches that has ended? A test cannot remove its folder or database at its
/// end (it may fail first, and a database is dropped asynchronously), so each run
/// removes those that ended runs left behind. Only where /proc tells which processes
/// live (Linux); elsewhere nothing is removed.
fn run_ended(name: &str) -> bool {
    let mut parts = name.rsplit(['-', '_']);
    let (Some(n), Some(pid)) = (parts.next(), parts.next()) else { return false };
    let (Ok(_), Ok(pid)) = (n.parse::<u32>(), pid.parse::<u32>()) else { return false };
    std::path::Path::new("/proc/self").exists() && pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Where the engine's store and broker are.
#[derive(Clone, Debug)]
pub struct Backend {
    pub mqtt_port: u16,
    /// vakt's own broker (rumqttd) on `mqtt_port`, or an external one there.
    pub embedded_broker: bool,
    pub db: Db,
    /// Instead of `mqtt://127.0.0.1:{mqtt_port}` (TLS, credentials).
    pub mqtt_url: Option<String>,
    /// Extra environment for the vakt process.
    pub env: Vec<(String, String)>,
    /// `database.checkpoint_every`, if not the default.
    pub checkpoint_every: Option<u64>,
    /// `database.checkpoint_busy_secs`, if not the default.
    pub checkpoint_busy_secs: Option<u64>,
    /// `mqtt.inflight`, if not the default.
    pub inflight: Option<u16>,
    /// More keys for the `[http]` section (one per line).
    pub http_extra: String,
    /// More keys for the `[database]` section (one per line).
    pub database_extra: String,
    /// vakt reaches PostgreSQL on this port (a `DbProxy`) instead of 5432; the test's own
    /// connections go straight to it.
    pub database_port: Option<u16>,
}

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(PathBuf),
    /// A database of this name on the machine's PostgreSQL.
    Postgres(String),
}

impl Db {
    /// A new, empty database on the machine's PostgreSQL.
    pub async fn fresh_postgres() -> Db {
        static REAPED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        let name = unique("vakt_it").replace('-', "_");
        let mut admin = postgres_admin().await;
        REAPED
            .get_or_init(|| async {
                let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'vakt\\_it\\_%'")
                    .fetch_all(&mut admin)
                    .await
                    .expect("list test databases");
                for ended in names.iter().filter(|n| run_ended(n)) {
                    let _ = sqlx::Executor::execute(&mut admin, format!("DROP DATABASE IF EXISTS {ended} WITH (FORCE)").as_str()).await;
                }
            })
            .await;
        sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
        Db::Postgres(name)
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("sqlite://{}", path.display()),
            Db::Postgres(name) => format!("postgres://postgres@127.0.0.1:5432/{name}"),
        }
    }
}

impl Backend {
    /// The embedded defaults: in-process broker on a free port, an SQLite file.
    pub fn embedded(dir: &std::path::Path) -> Backend {
        Backend::with(free_port(), true, Db::Sqlite(dir.join("vakt.sqlite")))
    }

    fn with(mqtt_port: u16, embedded_broker: bool, db: Db) -> Backend {
        Backend {
            mqtt_port,
            embedded_broker,
            db,
            mqtt_url: None,
            env: Vec::new(),
            checkpoint_every: None,
            checkpoint_busy_secs: None,
            inflight: None,
            http_extra: String::new(),
            database_extra: String::new(),
            database_port: None,
        }
    }

    /// An external broker on `mqtt_port` and a fresh PostgreSQL database.
    pub async fn external(mqtt_port: u16) -> Backend {
        Backend::with(mqtt_port, false, Db::fresh_postgres().await)
    }

    /// An external broker on `mqtt_port` and an SQLite file.
    pub fn sqlite_on(mqtt_port: u16, dir: &std::path::Path) -> Backend {
        Backend::with(mqtt_port, false, Db::Sqlite(dir.join("vakt.sqlite")))
    }

    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_port
    }

    pub fn database_url(&self) -> String {
        self.db.url()
    }

    fn toml(&self, client_id: &str, http_port: u16) -> String {
        let mqtt = match (&self.mqtt_url, self.embedded_broker) {
            (Some(url), _) => format!("url = \"{url}\""),
            (None, true) => format!("listen = \"127.0.0.1:{}\"", self.mqtt_port),
            (None, false) => format!("url = \"mqtt://127.0.0.1:{}\"", self.mqtt_port),
        };
        let checkpoint = self.checkpoint_every.map_or(String::new(), |n| format!("checkpoint_every = {n}\n"))
            + &self.checkpoint_busy_secs.map_or(String::new(), |n| format!("checkpoint_busy_secs = {n}\n"));
        let queue = self.inflight.map_or(String::new(), |n| format!("inflight = {n}\n"));
        format!(
            "[mqtt]\n{mqtt}\n{queue}client_id = \"{client_id}\"\nkeep_alive_secs = 2\n\n[database]\nurl = \"{}\"\n{checkpoint}{}\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n{}\n",
            match self.database_port {
                Some(port) => self.database_url().replace(":5432/", &format!(":{port}/")),
                None => self.database_url(),
            },
            self.database_extra,
            self.http_extra
        )
    }
}

/// A TCP proxy in front of PostgreSQL that can lose the database's replies while still
/// passing on what vakt sends: the server commits, vakt never hears so. On every
/// connection (`lose_replies`), or on the one connection that next sends a given text
/// (`lose_replies_after`: that statement and all after it on that connection).
pub struct DbProxy {
    pub port: u16,
    lose_replies: std::sync::Arc<std::sync::atomic::AtomicBool>,
    trigger: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DbProxy {
    pub async fn start(target: u16) -> DbProxy {
        Self::start_on(0, target).await
    }

    /// On `port` (0: any free one).
    pub async fn start_on(port: u16, target: u16) -> DbProxy {
        use std::sync::atomic::AtomicBool;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let lose_replies = std::sync::Arc::new(AtomicBool::new(false));
        let trigger = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
        let (lose, armed) = (lose_replies.clone(), trigger.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else { continue };
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                let this_one = std::sync::Arc::new(AtomicBool::new(false));
                let (hit, armed) = (this_one.clone(), armed.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
                        {
                            let mut armed = armed.lock().unwrap();
                            if armed.as_ref().is_some_and(|text| buf[..n].windows(text.len()).any(|w| w == text.as_slice())) {
                                hit.store(true, Ordering::SeqCst);
                                *armed = None;
                            }
                        }
                        if server_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let lose = lose.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
                        let lost = lose.load(Ordering::SeqCst) || this_one.load(Ordering::SeqCst);
                        if !lost && client_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        DbProxy { port, lose_replies, trigger, task }
    }

    pub fn lose_replies(&self, lose: bool) {
        self.lose_replies.store(lose, Ordering::SeqCst);
    }

    /// The next connection to send `text` hears nothing more from the database.
    pub fn lose_replies_after(&self, text: &str) {
        *self.trigger.lock().unwrap() = Some(text.as_bytes().to_vec());
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn postgres_admin() -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await.expect("PostgreSQL on 127.0.0.1:5432 (see .ci/run)")
}

/// The engine configuration for the live tests: one municipality, a fast ladder
/// (offers expire after 2 s, everyone after 2 offers), a backup centre.
pub const LADDER_TOML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/live-ladder.toml"));

/// Fjord and its backup centre, for any ladder.
pub const FJORD_TOML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/live-fjord.toml"));

/// r1..r300 in Fjord, r1 with an address and notes.
pub fn residents_csv() -> String {
    let mut s = String::from(
        "resident_id,municipality,lat,lon,address,notes,regular_helpers\nr1,fjord,61.2300,7.1000,\"Kyrkjevegen 1, 6856 Sogndal\",Nøkkelboks 1234,\n",
    );
    for i in 2..=300 {
        s.push_str(&format!("r{i},fjord,{:.4},{:.4},Fjordvegen {i},,\n", 61.20 + (i % 17) as f64 * 0.004, 7.05 + (i % 13) as f64 * 0.008));
    }
    s
}

pub const STAFF_CSV: &str = "staff_id,municipality,name,roles\nnear,fjord,Kari Nær,nurse\nmiddle,fjord,Ola Midt,health_worker\nfar,fjord,Per Fjern,assistant\n";

/// A running `vakt run` process.
pub struct Vakt {
    pub child: Child,
    pub http: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub backend: Backend,
    /// Its MQTT client id (a session the broker keeps: `clean_session = false`). The
    /// load bench ends that session after a step; no test reads it yet.
    #[allow(dead_code)]
    pub client_id: String,
}

impl Vakt {
    /// Writes the configuration and the sample directory, starts vakt, waits for /readyz.
    pub fn start(backend: &Backend, dir: &std::path::Path) -> Vakt {
        let mut v = Self::launch(backend, dir);
        v.wait_ready();
        v
    }

    /// With an engine configuration and a directory of the caller's.
    pub fn start_with(backend: &Backend, dir: &std::path::Path, engine_toml: &str, residents: &str, staff: &str) -> Vakt {
        let mut v = Self::launch_with(backend, dir, engine_toml, residents, staff);
        v.wait_ready();
        v
    }

    /// Like `start`, without waiting for it to be ready (see `wait_ready`).
    pub fn launch(backend: &Backend, dir: &std::path::Path) -> Vakt {
        Self::launch_with(backend, dir, &format!("{LADDER_TOML}{FJORD_TOML}"), &residents_csv(), STAFF_CSV)
    }

    fn launch_with(backend: &Backend, dir: &std::path::Path, engine_toml: &str, residents: &str, staff: &str) -> Vakt {
        std::fs::write(dir.join("residents.csv"), residents).unwrap();
        std::fs::write(dir.join("staff.csv"), staff).unwrap();
        let http_port = free_port();
        let config = dir.join("vakt.toml");
        let client_id = unique("vakt-engine");
        let text = format!("{engine_toml}\n{}\n[seed]\nresidents = \"residents.csv\"\nstaff = \"staff.csv\"\n", backend.toml(&client_id, http_port));
        std::fs::write(&config, text).unwrap();
        let child = spawn_child(dir, &config, &backend.env);
        Vakt { child, http: SocketAddr::from(([127, 0, 0, 1], http_port)), dir: dir.to_owned(), config, backend: backend.clone(), client_id }
    }

    /// The same configuration and store, a new process (after a kill or a stop).
    pub fn restart(&mut self) {
        self.respawn();
        self.wait_ready();
    }

    /// The same configuration and store, a new process that is expected to give up: its
    /// exit status, if it exits within `within` (it is killed otherwise).
    pub fn restart_until_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.respawn();
        exited_within(&mut self.child, within)
    }

    /// Ends the process if it still runs and starts another on the same configuration.
    fn respawn(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_child(&self.dir, &self.config, &self.backend.env);
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("vakt exited with {status} during start:\n{}", self.log());
            }
            if http_get(self.http, "/readyz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vakt was not ready within 120 s:\n{}", self.log());
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.stop_within(Duration::from_secs(10))
    }

    /// SIGTERM, then wait for the exit, which must come within `within` (the stop's
    /// checkpoint carries every open incident: the load bench leaves many).
    pub fn stop_within(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "vakt did not stop within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vakt.log")).unwrap_or_default()
    }

    /// `/metrics` parsed into (name with labels, value).
    pub fn metric(&self, name_and_labels: &str) -> f64 {
        metric_at(self.http, name_and_labels)
    }

    pub async fn store(&self) -> vakt::live::store::Store {
        vakt::live::store::Store::open(&self.backend.database_url()).await.unwrap()
    }
}

impl Drop for Vakt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One value of the `/metrics` of the vakt at `http` (0 if it has none by that name and labels).
pub fn metric_at(http: SocketAddr, name_and_labels: &str) -> f64 {
    let (_, body) = http_get(http, "/metrics").expect("/metrics answers");
    body.lines().find_map(|l| l.strip_prefix(name_and_labels).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse::<f64>().unwrap())).unwrap_or(0.0)
}

/// A process's exit status, if it exits within `within`.
pub fn exited_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_child(dir: &std::path::Path, config: &std::path::Path, env: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("vakt.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_vakt"))
        .args(["run", "--config"])
        .arg(config)
        // vakt's own default log filter, as a user gets it.
        .env_remove("RUST_LOG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start vakt")
}

/// A minimal HTTP/1.1 GET: (status, body), or None if nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_get_with(addr, path, &[]).map(|(code, _, body)| (code, body))
}

/// A GET with extra header lines (`"Authorization: Bearer …"`): (status, the response's
/// header lines, body), or None if nothing answers within 15 s.
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &[&str]) -> Option<(u16, String, String)> {
    http_request(addr, "GET", path, headers, "")
}

/// One HTTP/1.1 request: its status, head and body; `None` if there was no answer.
pub fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let length = if method == "GET" { String::new() } else { format!("Content-Length: {}\r\n", body.len()) };
    write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}{length}Connection: close\r\n\r\n{body}").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    Some((code, head.to_owned(), body.to_owned()))
}

/// Asks `probe` every 50 ms until it gives `Some`, for at most `within`: what it gave,
/// or `None` if it never did (the caller says what was awaited). `probe` returning a
/// `bool` is `cond.then_some(())`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(within: Duration, mut probe: impl FnMut() -> F) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(t) = probe().await {
            return Some(t);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real MQTT client: a device, a staff app or an operations console.
pub struct Client {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<(String, Value)>,
    /// Messages received but not yet matched by `expect`.
    seen: Vec<(String, Value)>,
}

impl Client {
    pub async fn connect(port: u16, subscriptions: &[&str]) -> Client {
        Self::connect_with(port, subscriptions, &unique("test-client"), true).await
    }

    /// `clean_session = false`: the broker keeps the session across its restart and the
    /// client resends what the broker had not acknowledged (a gateway's behaviour).
    pub async fn connect_with(port: u16, subscriptions: &[&str], client_id: &str, clean: bool) -> Client {
        Self::connect_opts(port, subscriptions, client_id, clean, None).await
    }

    /// Logged in to the broker as `user`.
    pub async fn connect_as(port: u16, subscriptions: &[&str], user: &str, password: &str) -> Client {
        Self::connect_opts(port, subscriptions, &unique(user), true, Some((user, password))).await
    }

    async fn connect_opts(port: u16, subscriptions: &[&str], client_id: &str, clean: bool, login: Option<(&str, &str)>) -> Client {
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5)).set_max_packet_size(1 << 20, 16 << 20).set_clean_session(clean).set_inflight(1000);
        if let Some((user, password)) = login {
            opts.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
        eventloop.set_network_options(nodelay());
        let (tx, rx) = mpsc::unbounded_channel();
        let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        let _ = tx.send((p.topic.clone(), v));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = conn_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        for s in subscriptions {
            client.subscribe(*s, QoS::AtLeastOnce).await.unwrap();
        }
        for _ in subscriptions {
            tokio::time::timeout(Duration::from_secs(10), conn_rx.recv()).await.expect("SUBACK in time");
        }
        Client { client, rx, seen: Vec::new() }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }

    /// Retained: the broker keeps it for later subscribers (an empty payload clears it).
    pub async fn publish_retained(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, true, payload).await.unwrap();
    }

    pub async fn publish_json(&self, topic: &str, v: Value) {
        self.publish(topic, v.to_string()).await;
    }

    /// A message already received for which `pred` holds, if any (without waiting).
    pub fn try_take(&mut self, pred: impl Fn(&str, &Value) -> bool) -> Option<(String, Value)> {
        while let Ok(m) = self.rx.try_recv() {
            self.seen.push(m);
        }
        let i = self.seen.iter().position(|(t, v)| pred(t, v))?;
        Some(self.seen.remove(i))
    }

    /// Waits for the first message on `topic` for which `pred` holds; keeps the others.
    pub async fn expect(&mut self, topic: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(|(t, v)| t == topic && pred(v)) {
            return self.seen.remove(i).1;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((t, v))) => {
                    if t == topic && pred(&v) {
                        return v;
                    }
                    self.seen.push((t, v));
                }
                _ => panic!("no {what} on {topic} within 15 s; saw:\n{}", self.seen.iter().map(|(t, v)| format!("  {t} {v}")).collect::<Vec<_>>().join("\n")),
            }
        }
    }
}

/// TCP_NODELAY: a small MQTT packet goes out at once (as vakt's own client does).
pub fn nodelay() -> rumqttc::NetworkOptions {
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net
}

pub fn alarm(alarm_id: &str, resident: &str, kind: &str) -> Value {
    serde_json::json!({ "alarm_id": alarm_id, "resident_id": resident, "kind": kind, "raised_at": vakt::live::clock::wall_clock().to_string() })
}

pub fn is(v: &Value, ty: &str, incident: u64) -> bool {
    v["type"] == ty && v["incident_id"] == incident
}

/// A Mosquitto of the test's own (the machine's binary), so it can be restarted.
pub struct Mosquitto {
    child: std::process::Child,
    conf: std::path::PathBuf,
}

impl Mosquitto {
    pub fn start(dir: &std::path::Path, port: u16) -> Mosquitto {
        Self::start_with(dir, port, "", true)
    }

    /// With extra configuration lines (e.g. `set_tcp_nodelay true`); `persistent: false`
    /// forgets every session and queued message when it restarts.
    pub fn start_with(dir: &std::path::Path, port: u16, extra: &str, persistent: bool) -> Mosquitto {
        let data = dir.join("mosquitto");
        std::fs::create_dir_all(&data).unwrap();
        // Mosquitto started as root drops to its own user: it must be able to write here.
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence {persistent}\npersistence_location {}/\nmax_queued_messages 0\n{extra}\n",
                data.display()
            ),
        )
        .unwrap();
        let child = Self::spawn(&conf, port);
        Mosquitto { child, conf }
    }

    /// On the shipped production configuration (`config/mosquitto/vakt.conf`: its
    /// persistence, limits and queues), with a plain listener on `port` taking anonymous
    /// clients in place of its TLS listener, passwords and access control, and its
    /// persistence file in `dir`.
    pub fn shipped(dir: &std::path::Path, port: u16) -> Mosquitto {
        let data = dir.join("mosquitto");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/mosquitto/vakt.conf")).unwrap();
        let local = ["listener", "certfile", "keyfile", "cafile", "password_file", "acl_file", "allow_anonymous", "persistence_location"];
        let kept: String = shipped.lines().filter(|l| !local.iter().any(|k| l.split_whitespace().next() == Some(*k))).map(|l| format!("{l}\n")).collect();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence_location {}/\n{kept}", data.display())).unwrap();
        let child = Self::spawn(&conf, port);
        Mosquitto { child, conf }
    }

    fn spawn(conf: &std::path::Path, port: u16) -> std::process::Child {
        let mut child =
            std::process::Command::new("mosquitto").arg("-c").arg(conf).stderr(std::process::Stdio::null()).spawn().expect("mosquitto (Debian package)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return child;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("mosquitto did not start on {port}");
    }

    /// SIGTERM (Mosquitto saves its persistence file), then start again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        std::thread::sleep(Duration::from_millis(300));
        self.start_again();
    }

    /// SIGKILL: a crash, with no chance to save what it holds.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and wait for it to exit.
    pub fn stop(&mut self) {
        std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap();
    }

    /// Start again on the same port, after `stop`.
    pub fn start_again(&mut self) {
        self.child = Self::spawn(&self.conf, self.port());
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        std::fs::read_to_string(&self.conf).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
