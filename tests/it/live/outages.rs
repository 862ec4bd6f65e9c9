//! The broker or the database away, refusing or hanging: nothing lost, nothing
//! written twice, and vakt says it is not ready meanwhile.

use super::*;

/// A database vakt cannot reach fails the start with the reason (here: nothing listens
/// on its port, so the connection is refused), which is what the person setting vakt up
/// must read; not with a connection pool's "timed out".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_reached_fails_the_start_with_the_reason() {
    let dir = temp_dir("no-database");
    let mut backend = Backend::embedded(&dir);
    backend.db = Db::Postgres("vakt_unreached".into());
    backend.database_port = Some(free_port());
    let mut v = Vakt::launch(&backend, &dir);
    assert!(!exit_within(&mut v, Duration::from_secs(90)).success());
    let log = v.log();
    assert!(log.contains("database not available yet"), "it tried again first:\n{log}");
    let last = log.lines().last().unwrap_or_default().to_lowercase();
    assert!(last.contains("cannot open the database") && last.contains("connection refused"), "the start's error names the reason:\n{log}");
}

/// The broker (a Mosquitto of this test's own, with persistence) restarts while alarms
/// stream in: every alarm is stored once and every stored message reaches the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_under_load_loses_nothing() {
    let dir = temp_dir("broker-restart");
    let port = free_port();
    let mut broker = Mosquitto::start(&dir, port);
    let backend = Backend::external(port).await;
    let v = Vakt::start(&backend, &dir);
    let device = Client::connect_with(port, &[], &unique("gateway"), false).await;
    let total = 200;
    for i in 0..total {
        if i == total / 2 {
            broker.restart();
        }
        device.publish_json("vakt/v1/alarms/fjord", alarm(&format!("b-{i}"), &format!("r{}", i + 1), "safety")).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let store = v.store().await;
    assert_eq!(raised_at_least(&store, total, Duration::from_secs(30)).await, total, "every alarm stored once\n{}", v.log());
    wait_metric(&v, "vakt_outbox_pending", 0.0).await;
    assert_eq!(store.outbox_pending().await.unwrap(), 0, "every stored message reached the broker");
    assert!(v.metric("vakt_mqtt_connection_errors_total") >= 1.0, "the restart was noticed");
    store.close().await;
}

/// A broker without persistence restarts: it forgets vakt's session and subscriptions.
/// vakt must notice (session not present), subscribe again and republish what the broker
/// had not acknowledged, so alarms published after the restart are handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_lost_the_session_gets_subscribed_again() {
    let dir = temp_dir("session-lost");
    let port = free_port();
    let mut broker = Mosquitto::start_with(&dir, port, "", false);
    let backend = Backend::sqlite_on(port, &dir);
    let v = Vakt::start(&backend, &dir);
    {
        let mut ops = Client::connect(port, OPS).await;
        let device = Client::connect(port, &[]).await;
        device.publish_json("vakt/v1/alarms/fjord", alarm("s-0", "r1", "fall")).await;
        ops.expect("vakt/v1/incidents/fjord", "raised before the restart", |e| e["type"] == "raised" && e["alarm_id"] == "s-0").await;
    }
    broker.restart();
    wait_metric_until(&v, "vakt_mqtt_connection_errors_total", ">= 1", |x| x >= 1.0).await;
    wait_metric(&v, "vakt_mqtt_connected", 1.0).await;
    let mut ops = Client::connect(port, OPS).await;
    let device = Client::connect(port, &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("s-1", "r2", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "raised after the restart", |e| e["type"] == "raised" && e["alarm_id"] == "s-1").await;
    wait_metric(&v, "vakt_outbox_pending", 0.0).await;
    assert!(v.log().contains("session_present=false"), "the lost session was noticed");
}

/// The database goes away (connections refused and cut) while alarms arrive: nothing is
/// acknowledged, failures are counted, /readyz says so, and the web API answers 503
/// `store_unavailable` (sessions cannot be checked), not 500; when it is back, every
/// alarm is processed and stored and the same session works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_holds_alarms_until_it_is_back() {
    use sqlx::Executor;
    let dir = temp_dir("db-outage");
    let port = free_port();
    let _broker = Mosquitto::start(&dir, port);
    let backend = Backend::external(port).await;
    let support::Db::Postgres(postgres_db) = &backend.db else { unreachable!() };
    let (v, mut ops, device, bearer) = running_with_a_session(&backend, &dir, "d-0").await;
    let bearer = &bearer;

    let mut admin = support::postgres_admin().await;
    admin.execute(format!("ALTER DATABASE {postgres_db} ALLOW_CONNECTIONS false").as_str()).await.unwrap();
    admin.execute(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{postgres_db}'").as_str()).await.unwrap();
    for i in 1..=5 {
        device.publish_json("vakt/v1/alarms/fjord", alarm(&format!("d-{i}"), &format!("r{}", i + 1), "safety")).await;
    }
    eventually(Duration::from_secs(10), || async { (v.metric("vakt_store_write_failures_total") >= 1.0).then_some(()) }).await;
    assert_store_unavailable(&v, bearer, "store write failed");

    admin.execute(format!("ALTER DATABASE {postgres_db} ALLOW_CONNECTIONS true").as_str()).await.unwrap();
    for i in 1..=5 {
        let want = format!("d-{i}");
        ops.expect("vakt/v1/incidents/fjord", "raised after the outage", |e| e["type"] == "raised" && e["alarm_id"] == want.as_str()).await;
    }
    let store = v.store().await;
    assert_eq!(raised_count(&store).await, 6);
    assert_eq!(http_get(v.http, "/readyz").unwrap().0, 200);
    assert_eq!(http_get_with(v.http, "/api/me", &[bearer]).unwrap().0, 200, "the session works again");
    store.close().await;
}

/// While the store is down or does not answer: the failed writes counted and logged
/// (`logged`), /readyz 503, and the session's request answered 503 `store_unavailable`
/// with Retry-After.
fn assert_store_unavailable(v: &Vakt, bearer: &str, logged: &str) {
    assert!(v.metric("vakt_store_write_failures_total") >= 1.0, "the failed writes are counted");
    assert_eq!(http_get(v.http, "/readyz").unwrap().0, 503, "not ready while the store is unavailable");
    assert!(v.log().contains(logged), "and logged: {logged}");
    let (status, head, body) = http_get_with(v.http, "/api/me", &[bearer]).expect("an answer while the store is unavailable");
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(body.contains("\"store_unavailable\""), "{body}");
    assert!(head.to_ascii_lowercase().contains("retry-after: 5"), "{head}");
}

/// vakt on `backend` with an operations console and a device connected, alarm `first`
/// raised (resident r1), and an admin's session (written straight into the store) that
/// works: (vakt, console, device, the session's `Authorization` header line).
async fn running_with_a_session(backend: &Backend, dir: &std::path::Path, first: &str) -> (Vakt, Client, Client, String) {
    use vakt::live::accounts::{Role, User, hash_password, token_digest};
    let v = Vakt::start(backend, dir);
    let mut ops = Client::connect(backend.mqtt_port(), OPS).await;
    let device = Client::connect(backend.mqtt_port(), &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm(first, "r1", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "the first alarm raised", |e| e["type"] == "raised" && e["alarm_id"] == first).await;
    let store = v.store().await;
    let user = User { username: "admin".into(), role: Role::Admin, staff_id: None, centre: None };
    store.put_user(&user, &hash_password("a long password").unwrap(), 0, true).await.unwrap();
    let now = vakt::live::clock::wall_clock().as_millis();
    let token = format!("{first}-token");
    store.create_session(&token_digest(&token), "admin", "csrf", now, now + 3_600_000).await.unwrap();
    store.close().await;
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(http_get_with(v.http, "/api/me", &[&bearer]).unwrap().0, 200, "the session works");
    (v, ops, device, bearer)
}

/// A database server that takes the connection and never answers fails a command
/// (here `vakt user list`) within the store's bound, saying so, instead of holding it.
#[test]
fn a_database_that_never_answers_fails_a_command_in_time() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Takes every connection and says nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let dir = temp_dir("silent-database");
    let default = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml")).unwrap();
    let config = default.replace("url = \"sqlite://vakt.sqlite\"", &format!("url = \"postgres://postgres@127.0.0.1:{port}/vakt\""));
    assert_ne!(config, default, "the default configuration names its database as this test expects");
    std::fs::write(dir.join("vakt.toml"), config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vakt"))
        .args(["user", "list", "--config"])
        .arg(dir.join("vakt.toml"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let Some(status) = exited_within(&mut child, Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!("`vakt user list` still waits for a database that never answers after 30 s");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success() && stderr.contains("did not answer within 5 s"), "{status}: {stderr}");
}

/// A broker of the test's own, and a fresh PostgreSQL database that vakt reaches through
/// a `DbProxy`, with writes bounded at 2 s (`write_timeout_secs`).
async fn behind_a_database_proxy(name: &str) -> (std::path::PathBuf, u16, Mosquitto, Backend, DbProxy) {
    let dir = temp_dir(name);
    let port = free_port();
    let broker = Mosquitto::start(&dir, port);
    let mut backend = Backend::external(port).await;
    let proxy = DbProxy::start(5432).await;
    backend.database_port = Some(proxy.port);
    backend.database_extra = "write_timeout_secs = 2\n".into();
    (dir, port, broker, backend, proxy)
}

/// The database stops answering but does not refuse (its replies are lost on the way,
/// as in a network partition): the write that hangs counts as failed after
/// `write_timeout_secs`, and /readyz says so. The server had committed that write all
/// the same; when its replies come through again vakt finds the batch stored and goes
/// on, instead of writing it again and failing on its keys for ever. No alarm is lost
/// or doubled. Meanwhile the web API answers 503 `store_unavailable` in the same time,
/// rather than leaving requests hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_hangs_is_noticed_and_a_write_it_kept_is_not_repeated() {
    use sqlx::Row;
    let (dir, _, _broker, backend, proxy) = behind_a_database_proxy("db-hang").await;
    let (v, mut ops, device, bearer) = running_with_a_session(&backend, &dir, "h-0").await;
    let bearer = &bearer;

    proxy.lose_replies(true);
    device.publish_json("vakt/v1/alarms/fjord", alarm("h-1", "r2", "fall")).await;
    // Straight to the database, not through the proxy.
    let db = sqlx::PgPool::connect(&backend.database_url()).await.unwrap();
    let raised = || async { sqlx::query("SELECT COUNT(*) FROM events WHERE kind = 'raised'").fetch_one(&db).await.unwrap().try_get::<i64, _>(0).unwrap() };
    eventually(Duration::from_secs(10), || async { (raised().await == 2 && v.metric("vakt_store_write_failures_total") >= 1.0).then_some(()) }).await;
    assert_eq!(raised().await, 2, "the server committed h-1's batch");
    assert_store_unavailable(&v, bearer, "no answer from the database within 2 s");
    // Bounded by the same timeout (the pool alone would wait 5 s, and a query already
    // under way for ever).
    assert!(v.log().lines().any(|l| l.contains("HTTP request refused") && l.contains("no answer from the database within 2 s")), "{}", v.log());
    device.publish_json("vakt/v1/alarms/fjord", alarm("h-2", "r3", "fall")).await;

    proxy.lose_replies(false);
    for want in ["h-1", "h-2"] {
        ops.expect("vakt/v1/incidents/fjord", "raised after the database answers again", |e| e["type"] == "raised" && e["alarm_id"] == want).await;
    }
    assert!(v.log().contains("the batch of the failed write had been stored all the same"), "{}", v.log());
    assert_eq!(raised().await, 3, "each alarm once");
    eventually(Duration::from_secs(5), || async { (http_get(v.http, "/readyz").unwrap().0 == 200).then_some(()) }).await;
    assert_eq!(http_get(v.http, "/readyz").unwrap().0, 200);
    assert_eq!(http_get_with(v.http, "/api/me", &[bearer]).unwrap().0, 200, "the session works again");
    db.close().await;
}

/// A checkpoint whose write gets no answer (its connection hears nothing more from the
/// database) holds the engine for `write_timeout_secs` at most: the engine says so and
/// takes the next alarm, and a later checkpoint, on another connection, cuts the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_that_hangs_holds_the_engine_no_longer_than_the_write_timeout() {
    let (dir, port, _broker, mut backend, proxy) = behind_a_database_proxy("checkpoint-hang").await;
    backend.checkpoint_every = Some(3);
    let v = Vakt::start(&backend, &dir);
    // The start's checkpoint (the seeded directory) is stored before vakt is ready; the
    // next one hangs, whichever connection it goes out on (its state is in every write of
    // it, the statement's text only in the first on a connection).
    let store = v.store().await;
    let first = store.latest_checkpoint().await.unwrap().expect("the start's checkpoint").log_seq;
    proxy.lose_replies_after("{\"engine\":");
    let (mut ops, device, mut near) = clients_with_near_on_duty(&v, port).await;
    // Without the bound the engine would wait at that checkpoint for as long as the
    // connection hangs (for ever here), and k-1 or k-2 would never be offered.
    async fn handled(ops: &mut Client, device: &Client, near: &mut Client, incident: u64) {
        device.publish_json("vakt/v1/alarms/fjord", alarm(&format!("k-{incident}"), "r1", "fall")).await;
        near.expect(&staff_topic("near", "offers"), "the offer", |m| is(m, "offer", incident)).await;
        reply(near, "near", incident, "accept").await;
        ops.expect("vakt/v1/incidents/fjord", "accepted", |e| is(e, "accepted", incident)).await;
        near.publish_json(&staff_topic("near", "replies"), json!({ "incident_id": incident, "action": "close", "outcome": "helped" })).await;
        ops.expect("vakt/v1/incidents/fjord", "closed", |e| is(e, "closed", incident)).await;
    }
    handled(&mut ops, &device, &mut near, 1).await;
    eventually(Duration::from_secs(10), || async {
        v.log().contains("checkpoint got no answer from the database in time; the input log stays whole").then_some(())
    })
    .await;
    assert!(v.log().contains("checkpoint got no answer from the database in time; the input log stays whole"), "{}", v.log());
    handled(&mut ops, &device, &mut near, 2).await;
    // Quiet again after the hang: a checkpoint goes through on another connection.
    assert!(checkpoint_when(&store, 3, |_| true).await.is_some(), "a checkpoint was stored and the log cut:\n{}", v.log());
    assert!(store.latest_checkpoint().await.unwrap().unwrap().log_seq > first);
    assert_eq!(http_get(v.http, "/readyz").unwrap().0, 200);
    store.close().await;
}

/// A database that takes vakt's connections at start-up but stops answering (here from
/// recovery's query for the newest checkpoint on) fails the start after
/// `write_timeout_secs`, saying why, instead of leaving vakt waiting, not ready, for
/// ever. The next start (a supervisor's restart) recovers as usual: nothing was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_hangs_at_start_up_fails_the_start_in_time() {
    let (dir, port, _broker, backend, proxy) = behind_a_database_proxy("db-hang-start").await;
    let mut v = Vakt::start(&backend, &dir);
    let (mut ops, device, mut near) = clients_with_near_on_duty(&v, port).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("u-1", "r1", "fall")).await;
    near.expect(&staff_topic("near", "offers"), "the offer", |m| is(m, "offer", 1)).await;
    v.kill9();

    proxy.lose_replies_after("FROM checkpoints ORDER BY");
    let status = v.restart_until_exit(Duration::from_secs(60)).unwrap_or_else(|| panic!("vakt still waits on the database:\n{}", v.log()));
    assert!(!status.success());
    let log = v.log();
    assert!(log.contains("recovering the engine's state from the store") && log.contains("no answer from the database within 2 s"), "{log}");

    v.restart();
    assert_eq!(v.metric("vakt_open_incidents"), 1.0, "u-1 is still open");
    reply(&near, "near", 1, "accept").await;
    ops.expect("vakt/v1/incidents/fjord", "u-1 accepted after the restart", |e| is(e, "accepted", 1)).await;
}

/// Incident events go out from the events table, not from outbox copies. Events stored
/// while the broker was down, by an engine then killed, are published after the restart,
/// in order and each once; afterwards the stored mark has caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_events_stored_while_the_broker_was_down_go_out_after_a_crash() {
    let dir = temp_dir("event-feed");
    let port = free_port();
    let mut broker = Mosquitto::start(&dir, port);
    let backend = Backend::sqlite_on(port, &dir);
    let mut v = Vakt::start(&backend, &dir);
    let (mut ops, device, _near) = clients_with_near_on_duty(&v, port).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("e-1", "r1", "fall")).await;
    let offered = ops.expect("vakt/v1/incidents/fjord", "the first offer", |e| is(e, "offered", 1)).await;
    wait_metric(&v, "vakt_incident_events_unacknowledged", 0.0).await;
    broker.stop();
    // The offer expires after 2 s: the revoke, the broadcast and its offer are stored, not published.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let store = v.store().await;
    let stored: Vec<i64> = store.events_after(offered["seq"].as_i64().unwrap()).await.unwrap().into_iter().map(|e| e.seq).collect();
    assert!(stored.len() >= 2, "events stored while the broker was down: {stored:?}");
    v.kill9();
    broker.start_again();
    let mut ops = Client::connect(port, OPS).await;
    v.restart();
    let mut got = Vec::new();
    for seq in &stored {
        let e = ops.expect("vakt/v1/incidents/fjord", &format!("event {seq}"), |e| e["seq"] == *seq).await;
        got.push(e["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(got.first().map(String::as_str), Some("revoked"), "{got:?}");
    // Everything up to the newest event is marked as with the broker (stored within 500 ms).
    wait_metric(&v, "vakt_incident_events_unacknowledged", 0.0).await;
    eventually(Duration::from_secs(5), || async { store.events_after(store.events_acked_through().await.unwrap()).await.unwrap().is_empty().then_some(()) })
        .await;
    assert_eq!(store.events_after(store.events_acked_through().await.unwrap()).await.unwrap(), []);
    // Each event once: nothing more arrives for the events already seen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for seq in &stored {
        assert!(ops.try_take(|t, e| t == "vakt/v1/incidents/fjord" && e["seq"] == *seq).is_none(), "event {seq} came twice");
    }
    store.close().await;
}
