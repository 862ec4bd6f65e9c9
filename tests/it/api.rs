//! The HTTP API without a socket: the engine runs in this process (embedded broker,
//! SQLite file) and requests go straight into its axum application with `oneshot`.
//! Alarms still come the real way, over MQTT.
//!
//! Refusals are checked for their status and code, and for leaving nothing changed.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::live::support::{Client, FJORD_TOML, STAFF_CSV, alarm, eventually, free_port, residents_csv, temp_dir};
use vakt::live::accounts::{Role, User, hash_password};

/// A ladder slow enough that nothing escalates during a test, and Dal: a shared centre of
/// its own (Fjord, from the live tests, is a mobile guard room backed up by `backup-centre`).
const LADDER_AND_DAL: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/api-dal.toml"));

const PASSWORD: &str = "a long password";

struct Api {
    app: Router,
    /// An admin's session, for looking at incidents.
    admin: Auth,
    running: Option<vakt::live::Running>,
    store: vakt::live::store::Store,
    mqtt_port: u16,
    /// The SQLite file's URL, for reading tables the API does not show.
    db: String,
}

impl Api {
    async fn start() -> Api {
        let dir = temp_dir("api");
        std::fs::write(dir.join("residents.csv"), format!("{}d1,dal,61.1000,7.4000,Dalvegen 1,,\n", residents_csv())).unwrap();
        std::fs::write(dir.join("staff.csv"), format!("{STAFF_CSV}dalstaff,dal,Dal Staff,nurse\n")).unwrap();
        let mqtt_port = free_port();
        let db = format!("sqlite://{}", dir.join("vakt.sqlite").display());
        let text = format!(
            "{LADDER_AND_DAL}{FJORD_TOML}\n[mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n[database]\nurl = \"{db}\"\nwrite_timeout_secs = 2\n[http]\nlisten = \"127.0.0.1:0\"\nlogin_attempts = 3\ntrusted_proxies = [\"127.0.0.9\"]\n[seed]\nresidents = \"residents.csv\"\nstaff = \"staff.csv\"\n"
        );
        let path = dir.join("vakt.toml");
        std::fs::write(&path, text).unwrap();
        let (settings, _) = vakt::settings::load(Some(&path)).unwrap();
        let running = vakt::live::start(settings, Some(&dir)).await.expect("engine starts");
        let store = vakt::live::store::Store::open(&db).await.unwrap();
        let hash = hash_password(PASSWORD).unwrap();
        let users = [
            ("ops", Role::Operator, None, Some("backup-centre")),
            ("dalops", Role::Operator, None, Some("dal-centre")),
            ("kari", Role::Staff, Some("near"), None),
            ("ola", Role::Staff, Some("middle"), None),
            ("plan", Role::Planner, None, None),
            ("admin", Role::Admin, None, None),
        ];
        for (name, role, staff, centre) in users {
            let user = User {
                username: name.into(),
                role,
                staff_id: staff.map(|s| vakt::core::StaffId::parse(s).unwrap()),
                centre: centre.map(|c| vakt::core::CentreId::parse(c).unwrap()),
            };
            store.put_user(&user, &hash, 0, false).await.unwrap();
        }
        let mut api = Api { app: running.app.clone(), admin: Auth::None, running: Some(running), store, mqtt_port, db };
        api.admin = api.login("admin").await;
        api
    }

    async fn stop(mut self) {
        self.running.take().unwrap().stop().await.unwrap();
    }

    async fn call(&self, method: &str, path: &str, auth: &Auth, body: Option<Value>) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path);
        match auth {
            Auth::None => {}
            Auth::Cookie { cookie, csrf } => {
                req = req.header(header::COOKIE, cookie.as_str());
                if let Some(c) = csrf {
                    req = req.header("x-csrf-token", c.as_str());
                }
            }
            Auth::Bearer(t) => req = req.header(header::AUTHORIZATION, format!("Bearer {t}")),
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 22).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A cookie session with its CSRF token.
    async fn login(&self, user: &str) -> Auth {
        let (status, headers, body) = self.call("POST", "/api/login", &Auth::None, Some(json!({ "username": user, "password": PASSWORD }))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let set = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "cookie without {attr}: {set}");
        }
        Auth::Cookie { cookie: set.split(';').next().unwrap().to_owned(), csrf: Some(body["csrf_token"].as_str().unwrap().to_owned()) }
    }

    async fn incident(&self, id: u64) -> Value {
        let (status, _, body) = self.call("GET", &format!("/api/incidents/{id}"), &self.admin, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Raises an alarm over MQTT and waits until the engine has it open.
    async fn alarm(&self, id: &str, resident: &str, municipality: &str) {
        let device = Client::connect(self.mqtt_port, &[]).await;
        device.publish_json(&format!("vakt/v1/alarms/{municipality}"), alarm(id, resident, "fall")).await;
        let open = eventually(std::time::Duration::from_secs(5), || async {
            let (_, _, body) = self.call("GET", "/api/incidents", &self.admin, None).await;
            body["incidents"].as_array().unwrap().iter().any(|i| i["alarm_id"] == id).then_some(())
        });
        assert!(open.await.is_some(), "alarm {id} never became an incident");
    }

    /// `GET /api/refused` as the admin, once it lists `n` refused alarms (or after 5 s).
    async fn refused(&self, n: usize) -> Value {
        let listed = || async {
            let (status, _, body) = self.call("GET", "/api/refused", &self.admin, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        };
        let has_n = |b: &Value| b["refused"].as_array().is_some_and(|r| r.len() == n);
        match eventually(std::time::Duration::from_secs(5), || async { Some(listed().await).filter(has_n) }).await {
            Some(body) => body,
            None => listed().await,
        }
    }

    async fn log_len(&self) -> i64 {
        self.store.log_len().await.unwrap()
    }
}

enum Auth {
    None,
    Cookie { cookie: String, csrf: Option<String> },
    Bearer(String),
}

impl Auth {
    fn without_csrf(&self) -> Auth {
        match self {
            Auth::Cookie { cookie, .. } => Auth::Cookie { cookie: cookie.clone(), csrf: None },
            _ => panic!("a cookie session"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_are_refused_then_rate_limited() {
    let api = Api::start().await;
    let wrong = json!({ "username": "ops", "password": "not the password" });
    for _ in 0..3 {
        let (status, headers, body) = api.call("POST", "/api/login", &Auth::None, Some(wrong.clone())).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_credentials")));
        assert!(headers.get(header::SET_COOKIE).is_none());
    }
    // An unknown user gets the same answer as a wrong password.
    let (status, _, body) = api.call("POST", "/api/login", &Auth::None, Some(json!({ "username": "nobody", "password": "x" }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_credentials")));
    // The limit (3 in 5 minutes here) holds even for the right password.
    let (status, headers, body) = api.call("POST", "/api/login", &Auth::None, Some(json!({ "username": "ops", "password": PASSWORD }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")));
    assert!(headers.get(header::RETRY_AFTER).is_some());
    assert!(headers.get(header::SET_COOKIE).is_none());
    // Other users are not locked out; nothing without a session.
    api.login("kari").await;
    let (status, _, body) = api.call("GET", "/api/me", &Auth::None, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("login_required")));
    let (status, _, _) = api.call("GET", "/api/me", &Auth::Cookie { cookie: "vakt_session=forged".into(), csrf: None }, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    api.stop().await;
}

/// POST /api/login over a real connection from the local address `from` (any of
/// 127.0.0.0/8 on Linux): the status.
async fn login_from(http: std::net::SocketAddr, from: &str, username: &str, password: &str) -> u16 {
    login_via(http, from, None, username, password).await
}

/// The same with an `X-Forwarded-For` header, as a reverse proxy sends it.
async fn login_via(http: std::net::SocketAddr, from: &str, forwarded_for: Option<&str>, username: &str, password: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(http).await.unwrap();
    let body = json!({ "username": username, "password": password }).to_string();
    let forwarded = forwarded_for.map_or(String::new(), |f| format!("X-Forwarded-For: {f}\r\n"));
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: localhost\r\n{forwarded}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("not HTTP: {answer}"))
}

/// Wrong passwords from one address lock that username out from that address only:
/// the right password from another still opens (before, five failures locked the
/// username itself, from everywhere, so anyone could keep every operator out). An
/// address with too many failures waits for every username, and only it.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_from_one_address_lock_no_one_out_from_another() {
    let api = Api::start().await;
    let http = api.running.as_ref().unwrap().http_addr;
    // login_attempts = 3: the username from one address gets 3, one address 12.
    for _ in 0..3 {
        assert_eq!(login_from(http, "127.0.0.2", "ops", "not the password").await, 401);
    }
    assert_eq!(login_from(http, "127.0.0.2", "ops", PASSWORD).await, 429, "ops from the guessing address waits");
    assert_eq!(login_from(http, "127.0.0.1", "ops", PASSWORD).await, 200, "ops from another address gets in");
    assert_eq!(login_from(http, "127.0.0.2", "kari", PASSWORD).await, 200, "the address is not over its own limit yet");
    // The address's own limit: 12 failures, whatever the usernames.
    for name in ["a", "b", "c"] {
        for _ in 0..3 {
            assert_eq!(login_from(http, "127.0.0.3", name, "not the password").await, 401);
        }
    }
    for _ in 0..3 {
        assert_eq!(login_from(http, "127.0.0.3", "ola", "not the password").await, 401);
    }
    assert_eq!(login_from(http, "127.0.0.3", "kari", PASSWORD).await, 429, "the address waits, for everyone");
    assert_eq!(login_from(http, "127.0.0.1", "kari", PASSWORD).await, 200, "only it");
    // Behind a trusted reverse proxy (http.trusted_proxies), each client by the address
    // the proxy forwards for: one's wrong passwords do not lock out another.
    let proxy = "127.0.0.9";
    for _ in 0..3 {
        assert_eq!(login_via(http, proxy, Some("10.9.9.9"), "ola", "not the password").await, 401);
    }
    assert_eq!(login_via(http, proxy, Some("10.9.9.9"), "ola", PASSWORD).await, 429);
    assert_eq!(login_via(http, proxy, Some("10.9.9.8"), "ola", PASSWORD).await, 200, "another client behind the same proxy");
    // A client that is not a trusted proxy cannot choose its address by the header.
    for _ in 0..3 {
        assert_eq!(login_via(http, "127.0.0.4", Some("10.9.9.7"), "dalops", "not the password").await, 401);
    }
    assert_eq!(login_via(http, "127.0.0.4", Some("10.9.9.6"), "dalops", PASSWORD).await, 429, "counted by its own address");
    api.stop().await;
}

/// A fault in the engine (here a panic, sent in through the engine's own request channel)
/// ends it, and `Running::failed` says why: `vakt run` then exits non-zero instead of
/// serving pages with no engine behind them. Meanwhile the API and /readyz say so.
#[tokio::test(flavor = "multi_thread")]
async fn an_engine_that_dies_is_reported_not_hidden() {
    let mut api = Api::start().await;
    let (status, _, _) = api.call("GET", "/api/incidents", &api.admin, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut running = api.running.take().unwrap();
    let fault: Box<dyn FnOnce(&vakt::live::driver::Driver) + Send> = Box::new(|_| panic!("injected fault"));
    running.requests().send(vakt::live::driver::EngineRequest::Read(fault)).await.unwrap();
    let why = tokio::time::timeout(std::time::Duration::from_secs(10), running.failed()).await.expect("the engine's end is noticed");
    assert!(format!("{why:#}").contains("the engine panicked: injected fault"), "{why:#}");
    let (status, _, body) = api.call("GET", "/api/incidents", &api.admin, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("engine_unavailable")));
    let res = api.app.clone().oneshot(Request::builder().uri("/readyz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A user changes their own password: only with the current one, only to an acceptable
/// one; their other sessions end, this one stays; every attempt is audited.
#[tokio::test(flavor = "multi_thread")]
async fn users_change_their_own_password() {
    let api = Api::start().await;
    let (here, elsewhere) = (api.login("kari").await, api.login("kari").await);
    let change = |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    let refusals = [
        (change("not the password", "a new long password"), StatusCode::FORBIDDEN, "wrong_credentials"),
        (change(PASSWORD, "short"), StatusCode::UNPROCESSABLE_ENTITY, "weak_password"),
        (change(PASSWORD, PASSWORD), StatusCode::UNPROCESSABLE_ENTITY, "same_password"),
        (json!({ "new_password": "a new long password" }), StatusCode::BAD_REQUEST, "bad_request"),
    ];
    for (body, status, code) in refusals {
        let (got, _, answer) = api.call("POST", "/api/me/password", &here, Some(body)).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)), "{answer}");
    }
    // A cookie session needs its CSRF token here too.
    let (got, _, answer) = api.call("POST", "/api/me/password", &here.without_csrf(), Some(change(PASSWORD, "a new long password"))).await;
    assert_eq!((got, answer["error"].as_str()), (StatusCode::FORBIDDEN, Some("csrf")));
    // Nothing changed yet: the old password still logs in.
    api.login("kari").await;

    let (got, _, answer) = api.call("POST", "/api/me/password", &here, Some(change(PASSWORD, "a new long password"))).await;
    assert_eq!(got, StatusCode::OK, "{answer}");
    let (got, _, _) = api.call("GET", "/api/me", &here, None).await;
    assert_eq!(got, StatusCode::OK, "the session that changed it stays");
    let (got, _, answer) = api.call("GET", "/api/me", &elsewhere, None).await;
    assert_eq!((got, answer["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_expired")));
    let (got, _, _) = api.call("POST", "/api/login", &Auth::None, Some(json!({ "username": "kari", "password": PASSWORD }))).await;
    assert_eq!(got, StatusCode::UNAUTHORIZED, "the old password no longer logs in");
    let (got, _, _) = api.call("POST", "/api/login", &Auth::None, Some(json!({ "username": "kari", "password": "a new long password" }))).await;
    assert_eq!(got, StatusCode::OK, "the new one does");

    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&api.db).await.unwrap();
    let audit: Vec<(String, String)> =
        sqlx::query_as("SELECT action, outcome FROM audit WHERE username = 'kari' AND action = 'password_change' ORDER BY rowid")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let audit: Vec<(&str, &str)> = audit.iter().map(|(a, o)| (a.as_str(), o.as_str())).collect();
    assert_eq!(audit, [("password_change", "wrong_credentials"), ("password_change", "ok")]);
    api.stop().await;
}

/// While the store takes no writes (here another connection holds SQLite's write lock),
/// the engine retries its commit and answers nothing else: the API says so at once
/// instead of leaving the dashboard's requests hanging, and works again when it is back.
#[tokio::test(flavor = "multi_thread")]
async fn while_the_store_takes_no_writes_the_api_says_so_at_once() {
    use sqlx::{Connection, Executor};
    let api = Api::start().await;
    let ops = api.login("ops").await;
    let mut lock = sqlx::SqliteConnection::connect(&api.db).await.unwrap();
    lock.execute("BEGIN EXCLUSIVE").await.unwrap();
    let device = Client::connect(api.mqtt_port, &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("held-1", "r1", "fall")).await;
    let readyz_says = || async {
        let res = api.app.clone().oneshot(Request::builder().uri("/readyz").body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        (status, String::from_utf8(axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap())
    };
    let readyz = || async { readyz_says().await.0 };
    // The engine's commit waits out SQLite's busy timeout (5 s), then fails and retries.
    let mut waited = 0;
    while readyz().await == StatusCode::OK {
        assert!(waited < 300, "the failing store was not noticed within 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // Said in the words the pages know (their banner: web/common.js).
    let says: Value = serde_json::from_str(&readyz_says().await.1).unwrap();
    assert_eq!(says, json!({ "ready": false, "reason": "not_storing", "message": vakt::live::http::NotReady::NotStoring.message() }));
    // Before, both waited for as long as the store was down (here: for ever).
    let answer = |method: &'static str, path: &'static str, body: Option<Value>| {
        let call = api.call(method, path, &ops, body);
        async move { tokio::time::timeout(std::time::Duration::from_secs(10), call).await.expect("answered without waiting for the store") }
    };
    let (status, _, body) = answer("GET", "/api/incidents", None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready")));
    let (status, _, body) = answer("POST", "/api/incidents/1/actions", Some(json!({ "action": "answer" }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready")));

    lock.execute("ROLLBACK").await.unwrap();
    let mut waited = 0;
    while readyz().await != StatusCode::OK {
        assert!(waited < 300, "not ready again within 30 s of the store's return");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // The alarm held meanwhile is there; acting works again.
    let (status, _, body) = api.call("GET", "/api/incidents", &api.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let held = body["incidents"].as_array().unwrap().iter().find(|i| i["alarm_id"] == "held-1").cloned().expect("the alarm held during the outage");
    let id = held["incident_id"].as_u64().unwrap();
    let (status, _, body) =
        api.call("POST", &format!("/api/incidents/{id}/actions"), &api.admin, Some(json!({ "action": "note", "note": "store back" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.stop().await;
}

/// The map: residents, staff and open incidents, each only in the user's scope.
/// A web action meets a store that has stopped taking writes before the engine has
/// noticed (another connection holds SQLite's write lock): it is answered within
/// `write_timeout_secs` (2 s here), not when the store comes back. The action the engine
/// had taken says so (`not_stored_yet`) and takes effect when the store answers again;
/// the one still queued behind it says `not_ready` and never happens.
#[tokio::test(flavor = "multi_thread")]
async fn a_web_action_held_up_by_the_store_is_answered_in_time_and_says_what_became_of_it() {
    use sqlx::{Connection, Executor};
    let api = Api::start().await;
    api.alarm("stuck-1", "r1", "fjord").await;
    let (_, _, body) = api.call("GET", "/api/incidents", &api.admin, None).await;
    let id = body["incidents"].as_array().unwrap().iter().find(|i| i["alarm_id"] == "stuck-1").unwrap()["incident_id"].as_u64().unwrap();
    let path = format!("/api/incidents/{id}/actions");
    let mut lock = sqlx::SqliteConnection::connect(&api.db).await.unwrap();
    lock.execute("BEGIN EXCLUSIVE").await.unwrap();

    let within =
        |call| async move { tokio::time::timeout(std::time::Duration::from_secs(10), call).await.expect("answered while the store still takes no writes") };
    let taken = within(api.call("POST", &path, &api.admin, Some(json!({ "action": "note", "note": "taken before the store stalled" }))));
    let queued = async {
        // Behind the first, which the engine is already trying to store.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        within(api.call("POST", &path, &api.admin, Some(json!({ "action": "note", "note": "queued behind it" })))).await
    };
    let ((s1, _, b1), (s2, _, b2)) = tokio::join!(taken, queued);
    assert_eq!((s1, b1["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("not_stored_yet")), "{b1}");
    assert_eq!((s2, b2["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready")), "{b2}");

    lock.execute("ROLLBACK").await.unwrap();
    let notes = eventually(std::time::Duration::from_secs(30), || async {
        let (status, _, body) = api.call("GET", &format!("/api/incidents/{id}"), &api.admin, None).await;
        let notes: Vec<String> =
            body["events"].as_array()?.iter().filter(|e| e["type"] == "note_added").map(|e| e["note"].as_str().unwrap().to_owned()).collect();
        (status == StatusCode::OK && !notes.is_empty()).then_some(notes)
    })
    .await
    .unwrap_or_default();
    assert_eq!(notes, ["taken before the store stalled"], "the taken action took effect once stored; the queued one never did");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_map_shows_what_is_in_scope() {
    let api = Api::start().await;
    api.alarm("map-1", "d1", "dal").await;
    let dalops = api.login("dalops").await;
    let (status, _, dal) = api.call("GET", "/api/map", &dalops, None).await;
    assert_eq!(status, StatusCode::OK, "{dal}");
    let residents = dal["residents"].as_array().unwrap();
    assert_eq!(residents.len(), 1, "{dal}");
    assert_eq!((residents[0]["resident_id"].as_str(), residents[0]["address"].as_str()), (Some("d1"), Some("Dalvegen 1")));
    assert_eq!(residents[0]["position"]["lat"], 61.1);
    assert!(dal["staff"].as_array().unwrap().iter().all(|s| s["municipality"] == "dal"), "{dal}");
    assert_eq!(dal["incidents"].as_array().unwrap().len(), 1);
    let (_, _, all) = api.call("GET", "/api/map", &api.admin, None).await;
    let ids: Vec<&str> = all["residents"].as_array().unwrap().iter().map(|r| r["resident_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 301, "the 300 sample residents in Fjord and d1");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order");
    // The dashboard's reloads on live events: staff and incidents, no residents.
    let (status, _, light) = api.call("GET", "/api/map?residents=false", &dalops, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(light["residents"].is_null(), "{light}");
    assert_eq!((light["staff"].clone(), light["incidents"].as_array().map(Vec::len)), (dal["staff"].clone(), Some(1)));
    let (status, _, body) = api.call("GET", "/api/map?residents=maybe", &dalops, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad_request", "{body}");
    assert!(body["message"].as_str().unwrap().contains("residents"), "{body}");
    api.stop().await;
}

/// Alarms vakt refuses (no one is offered them) are on the dashboards of their
/// municipality, newest first, with the ids that could be read; those on a
/// municipality no one has are on every dashboard.
#[tokio::test(flavor = "multi_thread")]
async fn refused_alarms_are_shown_to_the_operators_who_can_find_the_person() {
    let api = Api::start().await;
    let device = Client::connect(api.mqtt_port, &[]).await;
    device.publish_json("vakt/v1/alarms/dal", alarm("gw-1", "nobody", "fall")).await;
    device.publish_json("vakt/v1/alarms/fjord", json!({ "alarm_id": "gw-2", "resident_id": "r1", "kind": "fall", "raised_at": "1999-01-01T00:00:00Z" })).await;
    device.publish_json("vakt/v1/alarms/dla", alarm("gw-3", "d1", "fall")).await;
    device.publish("vakt/v1/alarms/dal", b"{not json".to_vec()).await;
    let list = |body: &Value| -> Vec<(String, String, String, String)> {
        body["refused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
                (s("topic").trim_start_matches("vakt/v1/alarms/").to_owned(), s("reason"), s("alarm_id"), s("resident_id"))
            })
            .collect()
    };
    let all = list(&api.refused(4).await);
    let row = |m: &str, reason: &str, a: &str, r: &str| (m.to_owned(), reason.to_owned(), a.to_owned(), r.to_owned());
    let (unreadable, nobodys, absurd, unknown) = (
        row("dal", "malformed_json", "-", "-"),
        row("dla", "unknown_municipality", "gw-3", "d1"),
        row("fjord", "absurd_timestamp", "gw-2", "r1"),
        row("dal", "unknown_resident", "gw-1", "nobody"),
    );
    assert_eq!(all, [unreadable.clone(), nobodys.clone(), absurd.clone(), unknown.clone()], "newest first, with the ids that could be read");
    let dalops = api.login("dalops").await;
    let (_, _, body) = api.call("GET", "/api/refused", &dalops, None).await;
    assert_eq!(list(&body), [unreadable, nobodys.clone(), unknown], "Dal's, and the one no municipality has");
    let ops = api.login("ops").await;
    let (_, _, body) = api.call("GET", "/api/refused", &ops, None).await;
    assert_eq!(list(&body), [nobodys, absurd], "Fjord's, and the one no municipality has");
    let kari = api.login("kari").await;
    let (status, _, body) = api.call("GET", "/api/refused", &kari, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    api.stop().await;
}

/// What the router refuses before any handler runs (a path or query that does not
/// parse, a path the API does not have, a method a path does not take) is the same
/// JSON error as every other, so an API client reads every error one way.
#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_is_a_json_error() {
    let api = Api::start().await;
    let (status, _, body) = api.call("GET", "/api/incidents/abc", &api.admin, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("abc"), "{body}");
    let (status, _, body) = api.call("GET", "/api/incidents/99999", &api.admin, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_incident")), "{body}");
    let (status, _, body) = api.call("GET", "/api/nowhere", &api.admin, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{body}");
    let (status, headers, body) = api.call("DELETE", "/api/incidents", &api.admin, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")), "{body}");
    assert_eq!(headers.get(header::ALLOW).map(|v| v.to_str().unwrap()), Some("GET,HEAD"));
    assert_eq!(headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap()), Some("application/json"));
    // Still a session's question first: no one learns what the API has without one.
    let (status, _, body) = api.call("GET", "/api/incidents/abc", &Auth::None, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("login_required")), "{body}");
    // The pages are not the API's: an unknown page is a plain 404.
    let (status, _, _) = api.call("GET", "/nowhere", &Auth::None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_csrf_token_is_refused_and_changes_nothing() {
    let api = Api::start().await;
    let kari = api.login("kari").await;
    let before = api.log_len().await;
    let on_duty = json!({ "state": "on_duty", "position": { "lat": 61.23, "lon": 7.10 } });
    let (status, headers, body) = api.call("POST", "/api/staff/me/status", &kari.without_csrf(), Some(on_duty.clone())).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("csrf")));
    assert_eq!(headers.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"));
    let wrong = Auth::Cookie {
        cookie: match &kari {
            Auth::Cookie { cookie, .. } => cookie.clone(),
            _ => unreachable!(),
        },
        csrf: Some("0".repeat(64)),
    };
    let (status, _, _) = api.call("POST", "/api/staff/me/status", &wrong, Some(on_duty.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, me) = api.call("GET", "/api/staff/me", &kari, None).await;
    assert_eq!(me["on_duty"], false);
    assert_eq!(api.log_len().await, before, "nothing reached the engine");
    // With the token it works; a bearer token (API clients) needs none.
    let (status, _, body) = api.call("POST", "/api/staff/me/status", &kari, Some(on_duty)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, me) = api.call("GET", "/api/staff/me", &kari, None).await;
    assert_eq!(me["on_duty"], true);
    let (status, headers, body) =
        api.call("POST", "/api/login", &Auth::None, Some(json!({ "username": "ola", "password": PASSWORD, "client": "token" }))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::SET_COOKIE).is_none());
    let ola = Auth::Bearer(body["token"].as_str().unwrap().to_owned());
    let (status, _, body) = api.call("POST", "/api/staff/me/status", &ola, Some(json!({ "state": "on_duty" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Logging out ends the session.
    let (status, _, _) = api.call("POST", "/api/logout", &kari, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api.call("GET", "/api/staff/me", &kari, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_act_only_on_what_is_offered_to_them() {
    let api = Api::start().await;
    let kari = api.login("kari").await;
    let ola = api.login("ola").await;
    for (who, pos) in [(&kari, json!({ "lat": 61.2301, "lon": 7.1001 })), (&ola, json!({ "lat": 61.25, "lon": 7.20 }))] {
        let (status, _, body) = api.call("POST", "/api/staff/me/status", who, Some(json!({ "state": "on_duty", "position": pos }))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    api.alarm("a1", "r1", "fjord").await;
    let (_, _, me) = api.call("GET", "/api/staff/me", &kari, None).await;
    assert_eq!(me["incidents"][0]["incident_id"], 1, "the nearest, kari, has the offer: {me}");
    let (_, _, theirs) = api.call("GET", "/api/staff/me", &ola, None).await;
    assert_eq!(theirs["incidents"], json!([]));

    let before = api.incident(1).await;
    let (status, _, body) = api.call("POST", "/api/staff/me/replies", &ola, Some(json!({ "incident_id": 1, "action": "accept" }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_offered")), "{body}");
    let (status, _, body) = api.call("POST", "/api/staff/me/replies", &ola, Some(json!({ "incident_id": 1, "action": "close", "outcome": "helped" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let after = api.incident(1).await;
    assert_eq!(before["incident"], after["incident"], "nothing changed");
    // The history gains the two refusals (as for MQTT replies), nothing else.
    let changes = |v: &Value| v["events"].as_array().unwrap().iter().filter(|e| e["type"] != "rejected").cloned().collect::<Vec<_>>();
    assert_eq!(changes(&before), changes(&after));
    assert_eq!(after["events"].as_array().unwrap().len(), changes(&after).len() + 2);
    // Both refusals are in the audit trail, with who.
    let audit: Vec<(String, String)> =
        after["audit"].as_array().unwrap().iter().map(|a| (a["username"].as_str().unwrap().to_owned(), a["outcome"].as_str().unwrap().to_owned())).collect();
    assert_eq!(audit, [("ola".to_owned(), "not_offered".to_owned()), ("ola".to_owned(), "not_offered".to_owned())]);

    // A malformed reply is refused with the MQTT contract's reason.
    let (status, _, body) = api.call("POST", "/api/staff/me/replies", &kari, Some(json!({ "incident_id": 1, "action": "dance" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The operator sends it to Ola by name as well: now Ola may take it too.
    let ops = api.login("ops").await;
    let (status, _, body) = api.call("POST", "/api/incidents/1/actions", &ops, Some(json!({ "action": "assign", "staff_id": "middle" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let types: Vec<&str> = body["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["assigned_by_operator", "offered"]);
    let (_, _, theirs) = api.call("GET", "/api/staff/me", &ola, None).await;
    assert_eq!(theirs["incidents"][0]["incident_id"], 1, "{theirs}");
    let (status, _, body) = api.call("POST", "/api/incidents/1/actions", &ops, Some(json!({ "action": "assign", "staff_id": "nobody" }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_staff")));
    // Not to a staff member of a municipality that is neither the incident's nor its
    // backup team: the offer would carry the resident's address and notes.
    let (status, _, body) = api.call("POST", "/api/incidents/1/actions", &ops, Some(json!({ "action": "assign", "staff_id": "dalstaff" }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_in_scope")), "{body}");
    // Kari is first; Ola's offer is withdrawn and his accept is too late.
    let (status, _, body) = api.call("POST", "/api/staff/me/replies", &kari, Some(json!({ "incident_id": 1, "action": "accept" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["events"].as_array().unwrap().iter().any(|e| e["type"] == "accepted"), "{body}");
    assert!(body["events"].as_array().unwrap().iter().any(|e| e["type"] == "revoked" && e["staff_id"] == "middle"), "{body}");
    let (status, _, body) = api.call("POST", "/api/staff/me/replies", &ola, Some(json!({ "incident_id": 1, "action": "accept" }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("already_taken")));
    let now = api.incident(1).await;
    assert_eq!(now["incident"]["stage"], "accepted");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_centres_that_may_not_are_refused_and_change_nothing() {
    let api = Api::start().await;
    api.alarm("f1", "r1", "fjord").await; // incident 1, Fjord
    api.alarm("d1", "d1", "dal").await; // incident 2, Dal (queued at dal-centre)
    let (plan, kari, ops, dalops) = (api.login("plan").await, api.login("kari").await, api.login("ops").await, api.login("dalops").await);
    let before = (api.incident(1).await, api.incident(2).await, api.log_len().await);

    // A planner reads but may not act; staff may not use the dashboard; operators have no staff app.
    let note = json!({ "action": "note", "note": "hello" });
    let (status, _, body) = api.call("POST", "/api/incidents/1/actions", &plan, Some(note.clone())).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (status, _, _) = api.call("GET", "/api/incidents", &plan, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/incidents", "/api/kpis", "/api/map", "/api/incidents/1"] {
        let (status, _, _) = api.call("GET", path, &kari, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "staff on {path}");
    }
    let (status, _, _) = api.call("POST", "/api/incidents/1/actions", &kari, Some(note.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = api.call("POST", "/api/staff/me/status", &ops, Some(json!({ "state": "on_duty" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Operators see and act on their centre's municipalities only.
    let (_, _, list) = api.call("GET", "/api/incidents", &dalops, None).await;
    let ids: Vec<u64> = list["incidents"].as_array().unwrap().iter().map(|i| i["incident_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [2]);
    let (status, _, body) = api.call("POST", "/api/incidents/1/actions", &dalops, Some(json!({ "action": "escalate" }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_your_centre")));
    let (status, _, _) = api.call("GET", "/api/incidents/1", &dalops, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = api.call("POST", "/api/incidents/2/actions", &ops, Some(json!({ "action": "answer" }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_your_centre")));
    let (status, _, body) = api.call("POST", "/api/incidents/99/actions", &ops, Some(note.clone())).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_incident")));

    let after = (api.incident(1).await, api.incident(2).await, api.log_len().await);
    assert_eq!(before.0["events"], after.0["events"], "incident 1 unchanged");
    assert_eq!(before.1["events"], after.1["events"], "incident 2 unchanged");
    assert_eq!(before.0["incident"], after.0["incident"]);
    assert_eq!(before.2, after.2, "no input reached the engine");

    // What they may do works, and the audit trail says who.
    let (status, _, body) = api.call("POST", "/api/incidents/2/actions", &dalops, Some(json!({ "action": "answer" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Notes have some text, and no more than a staff member's may have (2,000 characters).
    // A field the action does not have is refused, not dropped: a note sent as "notes"
    // would be lost.
    let long = "å".repeat(2001);
    for (act, code) in [
        (json!({ "action": "note", "note": " " }), "empty_note"),
        (json!({ "action": "note", "note": long }), "note_too_long"),
        (json!({ "action": "resolve", "note": long }), "note_too_long"),
        // A right-to-left override and a zero-width space: the note would read otherwise.
        (json!({ "action": "note", "note": "Nøkkelboks \u{202E}4321" }), "note_unreadable"),
        (json!({ "action": "resolve", "note": "Alt\u{200B} vel" }), "note_unreadable"),
        (json!({ "action": "resolve", "notes": "Rang back, all well" }), "bad_request"),
        (json!({ "action": "escalate", "staff_id": "near" }), "bad_request"),
        (json!({ "action": "assign", "staff_id": "" }), "bad_request"),
    ] {
        let (status, _, body) = api.call("POST", "/api/incidents/2/actions", &dalops, Some(act)).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{body}");
    }
    let (status, _, body) = api.call("POST", "/api/incidents/2/actions", &dalops, Some(json!({ "action": "note", "note": "å".repeat(2000) }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = api.call("POST", "/api/incidents/2/actions", &dalops, Some(json!({ "action": "note", "note": "Rang back, all well" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = api.call("POST", "/api/incidents/2/actions", &dalops, Some(json!({ "action": "resolve", "note": "Pressed by mistake" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = api.call("POST", "/api/incidents/1/actions", &ops, Some(json!({ "action": "escalate" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A second Dal alarm: answered, then forwarded to home care (the staff ladder starts).
    api.alarm("d2", "d1", "dal").await;
    let (status, _, body) = api.call("POST", "/api/incidents/3/actions", &dalops, Some(json!({ "action": "forward_to_home_care" }))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("wrong_state")), "answer first");
    for action in ["answer", "forward_to_home_care"] {
        let (status, _, body) = api.call("POST", "/api/incidents/3/actions", &dalops, Some(json!({ "action": action }))).await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
    }
    assert_eq!(api.incident(3).await["incident"]["stage"], "awaiting_staff");
    let two = api.incident(2).await;
    let types: Vec<&str> = two["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    for want in ["answered", "note_added", "resolved_by_centre", "closed"] {
        assert!(types.contains(&want), "no {want}: {types:?}");
    }
    assert_eq!(two["incident"]["open"], false);
    // Every attempt is in the audit trail, refused ones with their reason.
    let audit: Vec<(&str, &str, &str)> = two["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["username"].as_str().unwrap(), a["action"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        audit,
        [
            ("ops", "answer", "not_your_centre"),
            ("dalops", "answer", "ok"),
            ("dalops", "note", "empty_note"),
            ("dalops", "note", "note_too_long"),
            ("dalops", "resolve", "note_too_long"),
            ("dalops", "note", "note_unreadable"),
            ("dalops", "resolve", "note_unreadable"),
            ("dalops", "note", "ok"),
            ("dalops", "note", "ok"),
            ("dalops", "resolve", "ok")
        ]
    );
    let one = api.incident(1).await;
    let outcomes: Vec<(&str, &str)> =
        one["audit"].as_array().unwrap().iter().map(|a| (a["username"].as_str().unwrap(), a["outcome"].as_str().unwrap())).collect();
    assert_eq!(outcomes, [("dalops", "not_your_centre"), ("ops", "ok")]);

    // The answers count in the KPIs: two answered in Dal today, within the target.
    let (_, _, k) = api.call("GET", "/api/kpis", &plan, None).await;
    let today = &k["periods"][0];
    assert_eq!(today["period"], "today");
    let dal = today["municipalities"].as_array().unwrap().iter().find(|r| r["municipality"] == "dal").unwrap();
    assert_eq!((dal["answered"].as_u64(), dal["within_target"].as_u64(), dal["model"].as_str()), (Some(2), Some(2), Some("shared_centre")));
    api.stop().await;
}

#[test]
fn the_openapi_document_lists_every_route_and_no_other() {
    let doc: Value = serde_json::from_str(vakt::live::web::api::OPENAPI).expect("docs/openapi.json is JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys().filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str())) {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut served: Vec<(String, String)> = vakt::live::web::api::ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    served.sort();
    assert_eq!(documented, served);
}

/// docs/api.md's error table is vakt's: every code under the status it is answered
/// with, and no other (`live::errors::ErrorCode`).
#[test]
fn the_documented_error_codes_are_the_ones_answered() {
    use std::collections::BTreeSet;
    use vakt::live::errors::ErrorCode;
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let table = &doc[doc.find("## Errors").unwrap()..doc.find("## Endpoints").unwrap()];
    let mut documented = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_digit)) {
        let status: u16 = row[2..5].parse().unwrap();
        for code in row.split('`').skip(1).step_by(2).filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        {
            documented.insert((status, code.to_owned()));
        }
    }
    let answered: BTreeSet<(u16, String)> = ErrorCode::ALL.iter().map(|c| (c.status().as_u16(), c.as_str().to_owned())).collect();
    assert_eq!(documented, answered, "docs/api.md's error table against src/live/errors.rs");
}

/// The account and audit tables, and a batch written the way each backend writes one
/// (PostgreSQL: one statement; SQLite: one query of several statements with their
/// arguments bound across them): every value in its column.
#[tokio::test(flavor = "multi_thread")]
async fn accounts_sessions_audit_and_batches_on_postgresql() {
    let backend = crate::live::support::Backend::external(1883).await;
    store_round_trip(&backend.database_url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_sessions_audit_and_batches_on_sqlite() {
    store_round_trip(&format!("sqlite://{}", temp_dir("store").join("vakt.sqlite").display())).await;
}

/// What earlier versions set aside was only a line of the audit trail (its detail
/// JSON); migration 0007 copies those lines into `set_aside`, from which every start
/// reads them. Its copy, run again on audit lines as those versions wrote them.
#[tokio::test(flavor = "multi_thread")]
async fn set_aside_audit_lines_of_earlier_versions_are_read_back_on_postgresql() {
    let backend = crate::live::support::Backend::external(1883).await;
    set_aside_lines_migrate(&backend.database_url(), "postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn set_aside_audit_lines_of_earlier_versions_are_read_back_on_sqlite() {
    set_aside_lines_migrate(&format!("sqlite://{}", temp_dir("store").join("vakt.sqlite").display()), "sqlite").await;
}

async fn set_aside_lines_migrate(url: &str, backend: &str) {
    use vakt::live::store::{AuditRow, SetAsideRow, Store};
    let store = Store::open(url).await.unwrap();
    let line = |action: &str, detail: serde_json::Value| AuditRow {
        at_ms: 5,
        username: "(vakt)".into(),
        role: "system",
        action: action.into(),
        incident: None,
        detail: detail.to_string(),
        outcome: "ok".into(),
    };
    store.audit(&line("directory_row_set_aside", json!({ "who": "resident r7", "input": "{\"UpsertResident\":7}", "why": "a fault" }))).await.unwrap();
    store
        .audit(&line("web_action_set_aside", json!({ "action": "note", "input": "{\"OperatorNote\":1}", "version": "0.0.9", "why": "another" })))
        .await
        .unwrap();
    store.audit(&line("alarm_set_aside", json!({ "alarm_id": "a1", "resident_id": "r1", "topic": "t", "version": "0.0.9", "why": "a third" }))).await.unwrap();
    store.audit(&line("refused_alarm", json!({ "topic": "t" }))).await.unwrap();
    let migration = std::fs::read_to_string(format!("{}/migrations/{backend}/0007_set_aside.sql", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let copy = migration.split("-- Until now").nth(1).expect("the migration's copy of the audit lines");
    let copy = &copy[copy.find('\n').unwrap()..];
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url.replace("sqlite://", "sqlite:")).await.unwrap();
    sqlx::raw_sql(copy).execute(&mut conn).await.unwrap();
    let row = |kind, input: Option<&str>, alarm: Option<(&str, &str)>, version: &str, why: &str| SetAsideRow {
        at_ms: 5,
        kind,
        input: input.map(str::to_owned),
        alarm_id: alarm.map(|a| a.0.to_owned()),
        resident_id: alarm.map(|a| a.1.to_owned()),
        version: version.into(),
        why: why.into(),
    };
    assert_eq!(
        store.set_aside_rows().await.unwrap(),
        [
            row("directory_row", Some("{\"UpsertResident\":7}"), None, "", "a fault"),
            row("web_action", Some("{\"OperatorNote\":1}"), None, "0.0.9", "another"),
            row("alarm", None, Some(("a1", "r1")), "0.0.9", "a third"),
        ]
    );
}

async fn store_round_trip(url: &str) {
    use vakt::live::store::{
        Answer, AuditRow, Batch, ClosedIncident, ContactRow, EventRow, HistoryEvent, LogRow, OutboxRow, Session, SetAsideRow, Store, StoredEvent, StoredUser,
        WalCheckpoint,
    };
    let store = Store::open(url).await.unwrap();
    let user = User { username: "ops".into(), role: Role::Operator, staff_id: None, centre: Some(vakt::core::CentreId::parse("c1").unwrap()) };
    store.put_user(&user, "hash", 1, false).await.unwrap();
    assert!(store.put_user(&user, "hash", 1, false).await.unwrap_err().to_string().contains("exists"));
    assert_eq!(store.user("ops").await.unwrap(), Some(StoredUser { user: user.clone(), password_hash: "hash".to_owned() }));
    store.create_session("digest", "ops", "csrf", 10, 20).await.unwrap();
    assert_eq!(store.session("digest", 15).await.unwrap(), Some(Session { user: user.clone(), csrf: "csrf".to_owned() }));
    assert_eq!(store.session("digest", 25).await.unwrap(), None, "expired");
    store.create_session("digest2", "ops", "csrf2", 10, 20).await.unwrap();
    let other = User { username: "kari".into(), role: Role::Staff, staff_id: Some(vakt::core::StaffId::parse("near").unwrap()), centre: None };
    store.put_user(&other, "hash", 1, false).await.unwrap();
    assert!(store.remove_user("kari").await.unwrap());
    assert!(!store.remove_user("kari").await.unwrap(), "gone already");
    assert_eq!(store.users().await.unwrap(), std::slice::from_ref(&user));
    let answered = r#"{"type":"answered","answer_secs":12.5}"#;
    let batch = Batch {
        log: vec![LogRow { seq: 1, at_ms: 100, record: "\"tick\"".into() }],
        events: vec![
            EventRow { seq: 1, at_ms: 100, incident: Some(7), municipality: Some("fjord".into()), kind: "answered", body: answered.into() },
            EventRow { seq: 2, at_ms: 101, incident: Some(7), municipality: Some("fjord".into()), kind: "closed", body: "{}".into() },
        ],
        outbox: vec![OutboxRow { id: 1, topic: "t".into(), payload: "it's \"quoted\" ø".into(), created_ms: 100 }],
        outbox_acked_through: None,
        audit: vec![AuditRow {
            at_ms: 100,
            username: "ops".into(),
            role: "operator",
            action: "note".into(),
            incident: Some(7),
            detail: "Dotter's key; \"nøkkel\"".into(),
            outcome: "ok".into(),
        }],
        events_acked_through: Some(1),
        // What a failure sets aside goes with its batch.
        set_aside: vec![SetAsideRow {
            at_ms: 100,
            kind: "web_action",
            input: Some("{\"OperatorNote\":{}}".into()),
            alarm_id: None,
            resident_id: None,
            version: "0.1.0".into(),
            why: "a fault".into(),
        }],
        device_contact: [("panel-1".to_owned(), ContactRow { last_heard_ms: 100, silent_since_ms: None })].into(),
    };
    assert_eq!(store.events_acked_through().await.unwrap(), 0);
    assert!(!store.batch_stored(&batch).await.unwrap());
    store.append(&batch).await.unwrap();
    assert_eq!(store.events_acked_through().await.unwrap(), 1);
    assert_eq!(store.set_aside_rows().await.unwrap(), batch.set_aside);
    // A device's contact is an upsert: a later batch's row replaces it.
    let silent = Batch { device_contact: [("panel-1".to_owned(), ContactRow { last_heard_ms: 100, silent_since_ms: Some(100) })].into(), ..Batch::default() };
    store.append(&silent).await.unwrap();
    let contacts = store.device_contacts().await.unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts["panel-1"].silent_since.map(|t| t.as_millis()), Some(100));
    // Whether a batch whose write seemed to fail is stored after all: by its first keyed
    // row, whichever table that is in.
    assert!(store.batch_stored(&batch).await.unwrap());
    assert!(store.batch_stored(&Batch { events: batch.events.clone(), ..Batch::default() }).await.unwrap());
    assert!(store.batch_stored(&Batch { outbox: batch.outbox.clone(), ..Batch::default() }).await.unwrap());
    let log_first = Batch {
        log: vec![LogRow { seq: 2, at_ms: 100, record: "\"tick\"".into() }],
        events: batch.events.clone(),
        outbox: batch.outbox.clone(),
        ..Batch::default()
    };
    assert!(!store.batch_stored(&log_first).await.unwrap(), "the log row decides");
    assert!(!store.batch_stored(&Batch { outbox_acked_through: Some(1), ..Batch::default() }).await.unwrap(), "nothing keyed: written again");
    // A batch of audit lines alone (a refused web action) is told by its first line.
    assert!(store.batch_stored(&Batch { audit: batch.audit.clone(), ..Batch::default() }).await.unwrap());
    for other in [
        AuditRow { at_ms: 101, ..batch.audit[0].clone() },
        AuditRow { username: "kari".into(), ..batch.audit[0].clone() },
        AuditRow { action: "assign".into(), ..batch.audit[0].clone() },
        AuditRow { incident: None, ..batch.audit[0].clone() },
        AuditRow { outcome: "not_yours".into(), ..batch.audit[0].clone() },
    ] {
        assert!(!store.batch_stored(&Batch { audit: vec![other.clone()], ..Batch::default() }).await.unwrap(), "{other:?} was never stored");
    }
    let log = store.log_page(0, 10).await.unwrap();
    assert_eq!(log.iter().map(|r| (r.seq, r.at_ms, r.record.as_str())).collect::<Vec<_>>(), [(1, 100, "\"tick\"")]);
    assert_eq!(
        store.events_after(1).await.unwrap(),
        [StoredEvent { seq: 2, kind: "closed".to_owned(), municipality: Some("fjord".to_owned()), body: "{}".to_owned() }]
    );
    assert_eq!(store.incident_audit(7).await.unwrap(), batch.audit);
    // The latest lines of one action, newest first, as refused alarms are read back.
    let refused = |n: i64| AuditRow {
        at_ms: 200 + n,
        username: "(vakt)".into(),
        role: "system",
        action: "refused_alarm".into(),
        incident: None,
        detail: format!("{{\"n\":{n}}}"),
        outcome: "unknown_resident".into(),
    };
    store.append(&Batch { audit: (1..=3).map(refused).collect(), ..Batch::default() }).await.unwrap();
    assert_eq!(store.latest_audit("refused_alarm", 2).await.unwrap(), ["{\"n\":3}", "{\"n\":2}"]);
    assert_eq!(store.answered_since(0).await.unwrap(), [Answer { at_ms: 100, municipality: "fjord".to_owned(), body: answered.to_owned() }]);
    let event = |kind: &str, body: &str| HistoryEvent { kind: kind.to_owned(), body: body.to_owned() };
    assert_eq!(store.closed_since(0, 10).await.unwrap(), [ClosedIncident { incident: 7, events: vec![event("answered", answered), event("closed", "{}")] }]);
    assert_eq!(store.pending_outbox().await.unwrap()[0].payload, "it's \"quoted\" ø");
    // The outbox's mark moves over what the broker has, in the next batch, with more
    // rows of its own; each mark moves alone.
    let more = Batch {
        outbox: (2..=5).map(|id| OutboxRow { id, topic: format!("t{id}"), payload: format!("p{id}"), created_ms: id }).collect(),
        outbox_acked_through: Some(1),
        events_acked_through: Some(2),
        ..Batch::default()
    };
    store.append(&more).await.unwrap();
    let left: Vec<(i64, String, String, i64)> = store.pending_outbox().await.unwrap().into_iter().map(|r| (r.id, r.topic, r.payload, r.created_ms)).collect();
    assert_eq!(left, (2..=5).map(|id| (id, format!("t{id}"), format!("p{id}"), id)).collect::<Vec<_>>());
    assert_eq!((store.events_acked_through().await.unwrap(), store.outbox_acked_through().await.unwrap()), (2, 1));
    store.append(&Batch { outbox_acked_through: Some(3), ..Batch::default() }).await.unwrap();
    assert_eq!((store.events_acked_through().await.unwrap(), store.outbox_acked_through().await.unwrap()), (2, 3));
    assert_eq!(store.pending_outbox().await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(store.outbox_pending().await.unwrap(), 2);
    // A batch that fails part-way (its event's number is taken) stores nothing, not even
    // the rows before the failing one; the next batch goes through.
    let clash = Batch {
        log: vec![LogRow { seq: 2, at_ms: 200, record: "\"tick\"".into() }],
        events: vec![EventRow { seq: 2, at_ms: 200, incident: Some(8), municipality: Some("fjord".into()), kind: "raised", body: "{}".into() }],
        outbox: vec![OutboxRow { id: 6, topic: "t6".into(), payload: "p6".into(), created_ms: 200 }],
        ..Batch::default()
    };
    assert!(store.append(&clash).await.is_err(), "event 2 exists");
    assert_eq!(store.log_page(0, 10).await.unwrap().len(), 1, "the failed batch's log row was rolled back");
    assert_eq!(store.pending_outbox().await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>(), [4, 5]);
    store.append(&Batch { log: clash.log.clone(), ..Batch::default() }).await.unwrap();
    assert_eq!(store.log_page(0, 10).await.unwrap().len(), 2);
    // A batch larger than one statement's parameters would allow (72,000 values), with
    // the columns that may be empty left empty.
    let big = Batch {
        events: (3..12_003)
            .map(|seq| EventRow { seq, at_ms: 300, incident: None, municipality: None, kind: "rejected", body: format!("{{\"n\":{seq}}}") })
            .collect(),
        audit: vec![AuditRow {
            at_ms: 300,
            username: "ops".into(),
            role: "operator",
            action: "login".into(),
            incident: None,
            detail: String::new(),
            outcome: "ok".into(),
        }],
        ..Batch::default()
    };
    store.append(&big).await.unwrap();
    let stored = store.events_after(2).await.unwrap();
    assert_eq!(stored.len(), 12_000);
    assert_eq!(stored[11_999], StoredEvent { seq: 12_002, kind: "rejected".to_owned(), municipality: None, body: "{\"n\":12002}".to_owned() });
    // A checkpoint prunes the outbox up to its mark, no further; once every row is
    // pruned, numbering goes on after the mark.
    let outbox_ids = async || store.outbox_ids().await.unwrap();
    assert_eq!(outbox_ids().await, [1, 2, 3, 4, 5], "acknowledged rows stay until a checkpoint");
    store.write_checkpoint(2, 400, "{}").await.unwrap();
    assert_eq!(outbox_ids().await, [4, 5]);
    store.append(&Batch { outbox_acked_through: Some(5), ..Batch::default() }).await.unwrap();
    store.write_checkpoint(3, 400, "{}").await.unwrap();
    assert_eq!(outbox_ids().await, Vec::<i64>::new());
    assert_eq!(store.sequences().await.unwrap().outbox, 5);
    if store.backend == vakt::live::store::Backend::Sqlite {
        // The background checkpoint copies the whole write-ahead log into the database.
        let WalCheckpoint { frames, copied } = store.checkpoint_wal().await.unwrap();
        assert!(frames > 0 && copied == frames, "{copied} of {frames} frames copied");
        // Its loop runs a pass after a batch, none while nothing was appended since a
        // pass that copied everything, and one again after the next batch.
        let mut clean = None;
        assert!(store.wal_checkpoint_due(&mut clean).await.unwrap(), "the first pass runs");
        assert!(!store.wal_checkpoint_due(&mut clean).await.unwrap(), "nothing appended since a clean pass");
        store.append(&Batch { outbox_acked_through: Some(5), ..Batch::default() }).await.unwrap();
        assert!(store.wal_checkpoint_due(&mut clean).await.unwrap(), "a batch appended since");
        let WalCheckpoint { frames, copied } = store.checkpoint_wal().await.unwrap();
        assert_eq!(copied, frames, "that pass copied the batch's pages too");
        // The engine's snapshot is its other write, and as much in need of the pass.
        assert!(!store.wal_checkpoint_due(&mut clean).await.unwrap(), "nothing written since");
        store.write_checkpoint(4, 500, "{}").await.unwrap();
        assert!(store.wal_checkpoint_due(&mut clean).await.unwrap(), "a snapshot stored since");
    }
    store.close().await;
}

/// The OpenAPI document says what the API answers: real answers, with an incident open,
/// an offer out, a staff member on duty and an alarm refused, each checked against the
/// schema the document gives for its route and status (`check_schema` below), and the
/// status itself among those the document lists. A field renamed, made null or left
/// out in the code, and not in the document, fails here.
#[tokio::test(flavor = "multi_thread")]
async fn answers_match_the_openapi_document() {
    let doc: Value = serde_json::from_str(vakt::live::web::api::OPENAPI).unwrap();
    let api = Api::start().await;
    let kari = api.login("kari").await;
    let (status, _, body) =
        api.call("POST", "/api/staff/me/status", &kari, Some(json!({ "state": "on_duty", "position": { "lat": 61.2301, "lon": 7.1002 } }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.alarm("contract-1", "r1", "fjord").await; // incident 1, offered to kari
    api.alarm("contract-2", "d1", "dal").await; // incident 2, queued at dal-centre
    let device = Client::connect(api.mqtt_port, &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("contract-3", "nobody", "fall")).await;
    let refused = api.refused(1).await;
    assert_eq!(refused["refused"].as_array().map(Vec::len), Some(1), "{refused}");

    let ops = api.login("ops").await;
    let plan = api.login("plan").await;
    let seen_to = json!({ "at": refused["refused"][0]["at"], "topic": refused["refused"][0]["topic"] });
    let mut answers = Vec::new();
    for (method, path, route, who, body) in [
        ("GET", "/api/me", "/api/me", &api.admin, None),
        ("GET", "/api/me", "/api/me", &kari, None),
        ("GET", "/api/incidents", "/api/incidents", &api.admin, None),
        ("GET", "/api/incidents/1", "/api/incidents/{id}", &api.admin, None),
        ("GET", "/api/incidents/2", "/api/incidents/{id}", &api.admin, None),
        ("GET", "/api/incidents/99", "/api/incidents/{id}", &api.admin, None),
        ("GET", "/api/incidents/x", "/api/incidents/{id}", &api.admin, None),
        ("GET", "/api/map", "/api/map", &api.admin, None),
        ("GET", "/api/map?residents=false", "/api/map", &api.admin, None),
        ("GET", "/api/map?residents=maybe", "/api/map", &api.admin, None),
        ("GET", "/api/kpis", "/api/kpis", &api.admin, None),
        ("GET", "/api/refused", "/api/refused", &api.admin, None),
        ("GET", "/api/gateways", "/api/gateways", &api.admin, None),
        ("GET", "/api/devices", "/api/devices", &api.admin, None),
        ("POST", "/api/refused/acknowledge", "/api/refused/acknowledge", &plan, Some(seen_to.clone())),
        ("POST", "/api/refused/acknowledge", "/api/refused/acknowledge", &ops, Some(seen_to.clone())),
        ("POST", "/api/refused/acknowledge", "/api/refused/acknowledge", &ops, Some(seen_to.clone())),
        ("POST", "/api/refused/acknowledge", "/api/refused/acknowledge", &ops, Some(json!({ "at": "x", "topic": "y", "alarm_id": "z" }))),
        ("POST", "/api/gateways/acknowledge", "/api/gateways/acknowledge", &ops, Some(json!({ "municipality": "fjord", "gateway_id": "gw-9" }))),
        ("POST", "/api/gateways/acknowledge", "/api/gateways/acknowledge", &ops, Some(json!({ "municipality": "fjord", "gateway_id": "gw 9" }))),
        ("GET", "/api/staff/me", "/api/staff/me", &kari, None),
        ("GET", "/api/staff/me", "/api/staff/me", &api.admin, None),
        ("POST", "/api/incidents/1/actions", "/api/incidents/{id}/actions", &ops, Some(json!({ "action": "note", "note": "Called the daughter" }))),
        ("POST", "/api/incidents/1/actions", "/api/incidents/{id}/actions", &ops, Some(json!({ "action": "answer" }))),
        ("POST", "/api/incidents/1/actions", "/api/incidents/{id}/actions", &ops, Some(json!({ "action": "resolve", "notes": "a typo" }))),
        ("POST", "/api/staff/me/replies", "/api/staff/me/replies", &kari, Some(json!({ "incident_id": 1, "action": "accept" }))),
        ("POST", "/api/staff/me/replies", "/api/staff/me/replies", &kari, Some(json!({ "incident_id": 1, "action": "accept" }))),
        ("POST", "/api/staff/me/replies", "/api/staff/me/replies", &kari, Some(json!({ "incident_id": 1, "action": "close" }))),
        ("POST", "/api/staff/me/status", "/api/staff/me/status", &kari, Some(json!({ "position": { "lat": 91.0, "lon": 7.0 } }))),
        ("GET", "/api/incidents/1", "/api/incidents/{id}", &api.admin, None),
    ] {
        let (status, _, answer) = api.call(method, path, who, body).await;
        let op = &doc["paths"][route][method.to_lowercase()];
        let documented = &op["responses"][status.as_str()];
        assert!(
            documented.is_object(),
            "{method} {path}: {status} is not among the statuses the document gives ({:?}): {answer}",
            op["responses"].as_object().map(|r| r.keys().collect::<Vec<_>>())
        );
        let mut errors = Vec::new();
        check_schema(&doc, &documented["content"]["application/json"]["schema"], &answer, "", &mut errors);
        assert!(errors.is_empty(), "{method} {path} ({status}) does not match the document:\n{}\n{answer}", errors.join("\n"));
        answers.push(format!("{method} {path} {status}"));
    }
    // The walk met what it meant to: an offer taken, its incident detail, refusals.
    for want in [
        "GET /api/incidents/99 404 Not Found",
        "GET /api/incidents/x 400 Bad Request",
        "POST /api/staff/me/replies 200 OK",
        "POST /api/staff/me/replies 409 Conflict",
        "POST /api/incidents/1/actions 400 Bad Request",
        "POST /api/refused/acknowledge 403 Forbidden",
        "POST /api/refused/acknowledge 200 OK",
        "POST /api/refused/acknowledge 404 Not Found",
        "POST /api/refused/acknowledge 400 Bad Request",
        "POST /api/gateways/acknowledge 404 Not Found",
        "POST /api/gateways/acknowledge 400 Bad Request",
    ] {
        assert!(answers.iter().any(|a| a == want), "{want} not met: {answers:#?}");
    }
    api.stop().await;
}

/// The part of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that docs/openapi.json
/// uses, checked: `$ref`, `type` (one or a list, `integer` a number without a fraction),
/// `enum`, `const`, `properties`, `required`, `additionalProperties`, `items`, `oneOf`
/// (exactly one), `anyOf`, `allOf`, `if`/`then`, `minimum`, `maximum`, `minLength`,
/// `maxLength`. `pattern` and `format` are not checked; `description` and `default` say
/// nothing to check. Any other keyword is an error, so the document cannot outgrow this
/// check unnoticed.
fn check_schema(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        return errors.push(format!("{at}: no schema in the document"));
    };
    for (key, want) in s {
        match key.as_str() {
            "$ref" => {
                let name = want.as_str().unwrap().trim_start_matches("#/components/schemas/");
                check_schema(doc, &doc["components"]["schemas"][name], v, at, errors);
            }
            "type" => {
                let types: Vec<&str> = want.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_else(|| vec![want.as_str().unwrap()]);
                let is = |t: &str| match t {
                    "null" => v.is_null(),
                    "boolean" => v.is_boolean(),
                    "string" => v.is_string(),
                    "number" => v.is_number(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "array" => v.is_array(),
                    "object" => v.is_object(),
                    other => panic!("type {other}"),
                };
                if !types.iter().any(|t| is(t)) {
                    errors.push(format!("{at}: {v} is not {types:?}"));
                }
            }
            "enum" if !want.as_array().unwrap().contains(v) => errors.push(format!("{at}: {v} is not one of {want}")),
            "const" if want != v => errors.push(format!("{at}: {v} is not {want}")),
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in want.as_object().unwrap() {
                        if let Some(x) = o.get(name) {
                            check_schema(doc, sub, x, &format!("{at}.{name}"), errors);
                        }
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for name in want.as_array().unwrap().iter().filter_map(Value::as_str) {
                        if !o.contains_key(name) {
                            errors.push(format!("{at}: no {name}"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known = s.get("properties").and_then(Value::as_object);
                    for (name, x) in o.iter().filter(|(n, _)| !known.is_some_and(|k| k.contains_key(*n))) {
                        match want {
                            Value::Bool(false) => errors.push(format!("{at}: {name} is not in the document")),
                            Value::Bool(true) => {}
                            sub => check_schema(doc, sub, x, &format!("{at}.{name}"), errors),
                        }
                    }
                }
            }
            "items" => {
                for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                    check_schema(doc, want, x, &format!("{at}[{i}]"), errors);
                }
            }
            "oneOf" | "anyOf" | "allOf" => {
                let passing = want
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        check_schema(doc, sub, v, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                let n = want.as_array().unwrap().len();
                let ok = match key.as_str() {
                    "oneOf" => passing == 1,
                    "anyOf" => passing >= 1,
                    _ => passing == n,
                };
                if !ok {
                    errors.push(format!("{at}: {passing} of {n} in {key} match {v}"));
                }
            }
            "if" => {
                let mut e = Vec::new();
                check_schema(doc, want, v, at, &mut e);
                if e.is_empty() {
                    if let Some(then) = s.get("then") {
                        check_schema(doc, then, v, at, errors);
                    }
                }
            }
            "minimum" | "maximum" => {
                if let (Some(x), Some(bound)) = (v.as_f64(), want.as_f64()) {
                    if (key == "minimum" && x < bound) || (key == "maximum" && x > bound) {
                        errors.push(format!("{at}: {x} is beyond its {key} {bound}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let (Some(x), Some(bound)) = (v.as_str(), want.as_u64()) {
                    let n = x.chars().count() as u64;
                    if (key == "minLength" && n < bound) || (key == "maxLength" && n > bound) {
                        errors.push(format!("{at}: {n} characters is beyond its {key} {bound}"));
                    }
                }
            }
            "then" | "pattern" | "format" | "description" | "default" | "enum" | "const" => {}
            other => errors.push(format!("{at}: the check does not know the keyword {other}")),
        }
    }
}

/// The dashboard and the staff app show why vakt is not taking alarms in their own
/// words, keyed by the texts of /readyz: each of those texts has its words there.
#[test]
fn the_pages_know_every_reason_readyz_gives() {
    let common = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/web/common.js")).unwrap();
    for why in vakt::live::http::NotReady::ALL {
        assert!(common.contains(&format!("  {}: N_(", why.code())), "web/common.js has no words for /readyz's \"{}\"", why.code());
    }
}
