//! The live engine end to end: the real binary, real MQTT clients, real stores.
//! Against the embedded defaults (rumqttd + SQLite) and the machine's Mosquitto and
//! PostgreSQL (started by .ci/run).

mod hostile;
pub mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const OPS: &[&str] = &["vakt/v1/incidents/fjord", "vakt/v1/rejects"];

fn staff_topic(s: &str, what: &str) -> String {
    format!("vakt/v1/staff/{s}/{what}")
}

async fn on_duty(c: &Client, staff: &str, lat: f64, lon: f64) {
    c.publish_json(&staff_topic(staff, "status"), json!({ "state": "on_duty", "position": { "lat": lat, "lon": lon } })).await;
}

async fn reply(c: &Client, staff: &str, incident: u64, action: &str) {
    c.publish_json(&staff_topic(staff, "replies"), json!({ "incident_id": incident, "action": action })).await;
}

/// vakt on the embedded defaults, an operations console and a device.
async fn embedded_with_clients(name: &str) -> (std::path::PathBuf, Backend, Vakt, Client, Client) {
    let dir = temp_dir(name);
    let backend = Backend::embedded(&dir);
    let v = Vakt::start(&backend, &dir);
    let ops = Client::connect(backend.mqtt_port(), OPS).await;
    let device = Client::connect(backend.mqtt_port(), &[]).await;
    (dir, backend, v, ops, device)
}

/// An operations console, a device, and staff member `near` on duty with their app.
async fn clients_with_near_on_duty(v: &Vakt, port: u16) -> (Client, Client, Client) {
    let ops = Client::connect(port, OPS).await;
    let device = Client::connect(port, &[]).await;
    let near = Client::connect(port, &[&staff_topic("near", "offers")]).await;
    on_duty(&near, "near", 61.2302, 7.1003).await;
    wait_metric(v, "vakt_staff_on_duty", 1.0).await;
    (ops, device, near)
}

/// The alarm ids of the `raised` events stored for incidents 1..=`incidents`, in
/// incident order.
async fn raised_alarm_ids(store: &vakt::live::store::Store, incidents: i64) -> Vec<String> {
    let mut ids = Vec::new();
    for inc in 1..=incidents {
        for event in store.incident_events(inc).await.unwrap() {
            if event.kind == "raised" {
                let e: Value = serde_json::from_str(&event.body).unwrap();
                ids.push(e["alarm_id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids
}

/// GET `path` of vakt's API as an admin (the first call adds the user and a session).
async fn api_as_admin(v: &Vakt, store: &vakt::live::store::Store, path: &str) -> Value {
    use vakt::live::accounts::{Role, User, hash_password, token_digest};
    if store.users().await.unwrap().is_empty() {
        let user = User { username: "admin".into(), role: Role::Admin, staff_id: None, centre: None };
        store.put_user(&user, &hash_password("a long password").unwrap(), 0, true).await.unwrap();
        let now = vakt::live::clock::wall_clock().as_millis();
        store.create_session(&token_digest("admin-token"), "admin", "csrf", now, now + 3_600_000).await.unwrap();
    }
    let (code, _, body) = http_get_with(v.http, path, &["Authorization: Bearer admin-token"]).unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits (up to 5 s) for a stored checkpoint that `pred` accepts, with the input log cut
/// to fewer than `log_below` records; its state.
async fn checkpoint_when(store: &vakt::live::store::Store, log_below: i64, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    for _ in 0..100 {
        if let Some(checkpoint) = store.latest_checkpoint().await.unwrap() {
            let state: Value = serde_json::from_str(&checkpoint.state).unwrap();
            if pred(&state) && store.log_len().await.unwrap() < log_below {
                return Some(state);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// How many incidents `store` holds a `raised` event for.
async fn raised_count(store: &vakt::live::store::Store) -> i64 {
    store.event_count("raised").await.unwrap()
}

/// Waits (up to `within`) until `store` holds `n` raised incidents; how many it holds.
async fn raised_at_least(store: &vakt::live::store::Store, n: i64, within: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = raised_count(store).await;
        if now >= n || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_metric(v: &Vakt, name: &str, want: f64) {
    wait_metric_until(v, name, &format!("= {want}"), |x| x == want).await;
}

async fn wait_metric_until(v: &Vakt, name: &str, what: &str, pred: impl Fn(f64) -> bool) {
    for _ in 0..300 {
        if pred(v.metric(name)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never became {what} (now {})\n{}", v.metric(name), v.log());
}

/// alarm → offer to the nearest → decline → offer to the next → decline → everyone →
/// accept → revoke to the others → en route → on site → close; then the stored history
/// and the metrics must tell the same story.
async fn full_incident(backend: Backend, dir: &std::path::Path) {
    let mut v = Vakt::start(&backend, dir);
    let port = backend.mqtt_port();
    let mut ops = Client::connect(port, OPS).await;
    let device = Client::connect(port, &[]).await;
    let offers = |s: &str| staff_topic(s, "offers");
    let mut near = Client::connect(port, &[&offers("near")]).await;
    let mut middle = Client::connect(port, &[&offers("middle")]).await;
    let mut far = Client::connect(port, &[&offers("far")]).await;
    on_duty(&near, "near", 61.2302, 7.1003).await;
    on_duty(&middle, "middle", 61.2500, 7.1300).await;
    on_duty(&far, "far", 61.3000, 7.2500).await;
    wait_metric(&v, "vakt_staff_on_duty", 3.0).await;

    device.publish_json("vakt/v1/alarms/fjord", alarm("a-1", "r1", "fall")).await;
    let raised = ops.expect("vakt/v1/incidents/fjord", "raised", |e| e["type"] == "raised").await;
    let id = raised["incident_id"].as_u64().unwrap();
    assert_eq!((raised["alarm_id"].as_str(), raised["model"].as_str()), (Some("a-1"), Some("mobile_guard_room")));

    let offer = near.expect(&offers("near"), "the first offer", |m| is(m, "offer", id)).await;
    assert_eq!(offer["broadcast"], false);
    assert_eq!(offer["resident"]["address"], "Kyrkjevegen 1, 6856 Sogndal");
    assert_eq!(offer["resident"]["notes"], "Nøkkelboks 1234");
    assert_eq!(offer["alarm"]["kind"], "fall");
    assert!(offer["expires_at"].is_string() && offer["eta_secs"].as_f64().unwrap() > 0.0);
    reply(&near, "near", id, "decline").await;
    near.expect(&offers("near"), "the decline confirmed", |m| is(m, "confirmed", id) && m["action"] == "decline").await;

    let second = middle.expect(&offers("middle"), "the offer to the next nearest", |m| is(m, "offer", id)).await;
    assert_eq!(second["broadcast"], false);
    reply(&middle, "middle", id, "decline").await;

    // Two personal offers declined: everyone on duty gets it now.
    ops.expect("vakt/v1/incidents/fjord", "broadcast", |e| is(e, "broadcast", id)).await;
    far.expect(&offers("far"), "the broadcast offer", |m| is(m, "offer", id) && m["broadcast"] == true).await;
    near.expect(&offers("near"), "the broadcast offer", |m| is(m, "offer", id) && m["broadcast"] == true).await;
    middle.expect(&offers("middle"), "the broadcast offer", |m| is(m, "offer", id) && m["broadcast"] == true).await;
    reply(&far, "far", id, "accept").await;
    far.expect(&offers("far"), "accept confirmed", |m| is(m, "confirmed", id) && m["action"] == "accept").await;
    near.expect(&offers("near"), "revoke", |m| is(m, "revoke", id) && m["reason"] == "taken_by_other").await;
    middle.expect(&offers("middle"), "revoke", |m| is(m, "revoke", id) && m["reason"] == "taken_by_other").await;
    // Too late: refused with a reason, nothing changes.
    reply(&near, "near", id, "accept").await;
    let refused = near.expect(&offers("near"), "a refusal", |m| is(m, "refused", id)).await;
    assert_eq!(refused["reason"], "already_taken");

    reply(&far, "far", id, "en_route").await;
    reply(&far, "far", id, "on_site").await;
    far.publish_json(&staff_topic("far", "replies"), json!({ "incident_id": id, "action": "close", "outcome": "helped", "note": "Hjelpte opp frå golvet" }))
        .await;
    let closed = ops.expect("vakt/v1/incidents/fjord", "closed", |e| is(e, "closed", id)).await;
    assert_eq!((closed["outcome"].as_str(), closed["note"].as_str()), (Some("helped"), Some("Hjelpte opp frå golvet")));

    // The stored history: the whole story, in order.
    let store = v.store().await;
    let kinds: Vec<String> = store.incident_events(id as i64).await.unwrap().into_iter().map(|e| e.kind).collect();
    let story =
        ["raised", "offered", "revoked", "offered", "revoked", "broadcast", "offered", "answered", "accepted", "revoked", "en_route", "on_site", "closed"];
    let mut rest = kinds.iter();
    for step in story {
        assert!(rest.any(|k| k == step), "stored history lacks {step} in order: {kinds:?}");
    }
    // ...and the metrics agree with it, event type by event type.
    wait_metric(&v, "vakt_open_incidents", 0.0).await;
    for vakt::live::store::EventCount { kind, count } in store.event_counts().await.unwrap() {
        assert_eq!(v.metric(&format!("vakt_incident_events_total{{type=\"{kind}\"}}")), count as f64, "{kind}");
    }
    let labels = "{model=\"mobile_guard_room\",municipality=\"fjord\"}";
    assert_eq!(v.metric(&format!("vakt_answered_total{labels}")), 1.0);
    assert_eq!(v.metric(&format!("vakt_escalations_total{labels}")), 1.0);
    assert_eq!(v.metric(&format!("vakt_answer_time_seconds_count{labels}")), 1.0);
    assert_eq!(v.metric("vakt_alarms_received_total{municipality=\"fjord\"}"), 1.0);
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"already_taken\"}"), 1.0);
    // Every stored outbound message reached the broker.
    wait_metric(&v, "vakt_outbox_pending", 0.0).await;
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
    // The staff apps' replies are in the audit trail too, by staff id, refusal and all.
    let audit: Vec<(String, String, String, String)> =
        store.incident_audit(id as i64).await.unwrap().into_iter().map(|a| (a.username, a.action, a.detail, a.outcome)).collect();
    let line = |u: &str, a: &str, d: &str, o: &str| (u.to_owned(), a.to_owned(), d.to_owned(), o.to_owned());
    let expected = vec![
        line("near", "decline", "", "ok"),
        line("middle", "decline", "", "ok"),
        line("far", "accept", "", "ok"),
        line("near", "accept", "", "already_taken"),
        line("far", "en_route", "", "ok"),
        line("far", "on_site", "", "ok"),
        line("far", "close", "helped: Hjelpte opp frå golvet", "ok"),
    ];
    assert_eq!(audit, expected);
    store.close().await;

    // A normal night logs no error (an operator's alert on errors must not go off for
    // it): a gateway that connects for one alarm and leaves, then a clean stop.
    let gateway = Client::connect(port, &[]).await;
    gateway.publish_json("vakt/v1/alarms/fjord", alarm("a-2", "r2", "door")).await;
    ops.expect("vakt/v1/incidents/fjord", "the gateway's alarm", |e| e["type"] == "raised" && e["alarm_id"] == "a-2").await;
    gateway.client.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(v.stop().success());
    let log = v.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "errors logged on a normal night: {errors:#?}");
}

/// With the embedded broker, an alarm the broker has acknowledged to its device is
/// vakt's alone to keep (the broker ends with the process): a stop (SIGTERM) while a
/// burst is still being worked through takes every alarm of it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_the_embedded_broker_keeps_every_alarm_it_acknowledged() {
    let dir = temp_dir("embedded-stop");
    let backend = Backend::embedded(&dir);
    let mut v = Vakt::start(&backend, &dir);
    let mut opts = rumqttc::MqttOptions::new(unique("device"), "127.0.0.1", backend.mqtt_port());
    opts.set_inflight(1000);
    let (device, mut eventloop) = rumqttc::AsyncClient::new(opts, 1000);
    const N: usize = 300;
    let acked = tokio::spawn(async move {
        let mut acks = 0;
        while acks < N {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acks += 1,
                Ok(_) => {}
                Err(e) => panic!("the device lost its broker: {e}"),
            }
        }
    });
    for i in 0..N {
        let payload = alarm(&format!("burst-{i}"), &format!("r{}", i + 1), "fall").to_string();
        device.publish("vakt/v1/alarms/fjord", rumqttc::QoS::AtLeastOnce, false, payload).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), acked).await.expect("the broker acknowledged the burst").unwrap();
    // At once, while vakt is still at it.
    assert!(v.stop().success());
    v.restart();
    let store = v.store().await;
    assert_eq!(raised_count(&store).await, N as i64, "every alarm the broker acknowledged is stored");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_incident_on_the_embedded_defaults() {
    let dir = temp_dir("e2e-embedded");
    full_incident(Backend::embedded(&dir), &dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_incident_on_mosquitto_and_postgresql() {
    let _turn = SHARED_BROKER.lock().await;
    let dir = temp_dir("e2e-external");
    full_incident(Backend::external(1883).await, &dir).await;
}

/// Every kind of bad input gets its reason on the rejects topic, is counted, and the
/// good alarms around it are handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_with_a_reason_and_the_good_goes_through() {
    let (_dir, _backend, v, mut ops, device) = embedded_with_clients("bad-input").await;
    let now = vakt::live::clock::wall_clock().to_string();
    let alarms = "vakt/v1/alarms/fjord";
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        (alarms, b"{\"alarm_id\": \"x1\",".to_vec(), "malformed_json"),
        (alarms, json!({ "alarm_id": "x2", "resident_id": "r1", "kind": 7, "raised_at": now }).to_string().into_bytes(), "invalid_field"),
        (alarms, json!({ "alarm_id": "x3", "resident_id": "r1", "kind": "earthquake", "raised_at": now }).to_string().into_bytes(), "unknown_kind"),
        ("vakt/v1/alarms/atlantis", alarm("x4", "r1", "fall").to_string().into_bytes(), "unknown_municipality"),
        (alarms, alarm("x5", "nobody", "fall").to_string().into_bytes(), "unknown_resident"),
        ("vakt/v1/staff/ghost/status", json!({ "state": "on_duty" }).to_string().into_bytes(), "unknown_staff"),
        (
            alarms,
            json!({ "alarm_id": "x7", "resident_id": "r1", "kind": "fall", "raised_at": now, "text": "x".repeat(20_000) }).to_string().into_bytes(),
            "payload_too_large",
        ),
        (
            alarms,
            json!({ "alarm_id": "x8", "resident_id": "r1", "kind": "fall", "raised_at": "1999-01-01T00:00:00Z" }).to_string().into_bytes(),
            "absurd_timestamp",
        ),
        // A broken clock: year 9999 (a fast one is taken, below), and a base unit's reset to year 0.
        (
            alarms,
            json!({ "alarm_id": "x10", "resident_id": "r1", "kind": "fall", "raised_at": "9999-12-31T23:59:59Z" }).to_string().into_bytes(),
            "absurd_timestamp",
        ),
        (
            "vakt/v1/gateways/fjord/bu-r1",
            json!({ "state": "offline", "resident_id": "r1", "connected_at": "0000-01-01T00:00:00Z" }).to_string().into_bytes(),
            "absurd_timestamp",
        ),
        // A time that ends inside a character of another script: once a panic that
        // ended the engine, and the broker gave the restarted engine the same message.
        (
            alarms,
            json!({ "alarm_id": "x9", "resident_id": "r1", "kind": "fall", "raised_at": "2024-03-01T08:00:0é" }).to_string().into_bytes(),
            "absurd_timestamp",
        ),
        (alarms, vec![0xff, 0xfe, 0x00], "not_utf8"),
        ("vakt/v1/staff/near/replies", json!({ "incident_id": "one", "action": "accept" }).to_string().into_bytes(), "invalid_field"),
        ("vakt/v1/staff/ghost/replies", json!({ "incident_id": 1, "action": "accept" }).to_string().into_bytes(), "unknown_staff"),
    ];
    for (i, (topic, payload, _)) in bad.iter().enumerate() {
        device.publish(topic, payload.clone()).await;
        // A good alarm after every bad message.
        device.publish_json(alarms, alarm(&format!("good-{i}"), &format!("r{}", i + 2), "safety")).await;
    }
    for (topic, _, reason) in &bad {
        let r = ops.expect("vakt/v1/rejects", reason, |m| m["reason"] == *reason && m["topic"] == *topic).await;
        assert!(!r["detail"].as_str().unwrap().is_empty());
        // A refused alarm names the person where it can: operations can still find them.
        match *reason {
            "unknown_resident" => assert_eq!((r["alarm_id"].as_str(), r["resident_id"].as_str()), (Some("x5"), Some("nobody")), "{r}"),
            "unknown_kind" => assert_eq!((r["alarm_id"].as_str(), r["resident_id"].as_str()), (Some("x3"), Some("r1")), "{r}"),
            "malformed_json" | "not_utf8" => assert!(r.get("alarm_id").is_none() && r.get("resident_id").is_none(), "{r}"),
            _ => {}
        }
    }
    // A gateway whose clock runs ten minutes fast: its alarm is still a person pressing
    // now, so it is taken (and the clock counted), not refused.
    let fast = (vakt::live::clock::wall_clock() + std::time::Duration::from_secs(600)).to_string();
    device.publish_json(alarms, json!({ "alarm_id": "fast-clock", "resident_id": "r1", "kind": "fall", "raised_at": fast })).await;
    for i in 0..bad.len() {
        let want = format!("good-{i}");
        ops.expect("vakt/v1/incidents/fjord", "a good alarm raised", |e| e["type"] == "raised" && e["alarm_id"] == want.as_str()).await;
    }
    ops.expect("vakt/v1/incidents/fjord", "the fast clock's alarm raised", |e| e["type"] == "raised" && e["alarm_id"] == "fast-clock").await;
    assert_eq!(v.metric("vakt_alarms_clock_ahead_total{municipality=\"fjord\"}"), 1.0);
    for reason in ["malformed_json", "unknown_kind", "unknown_municipality", "unknown_resident", "payload_too_large", "not_utf8"] {
        assert_eq!(v.metric(&format!("vakt_messages_rejected_total{{reason=\"{reason}\"}}")), 1.0, "{reason}");
    }
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"absurd_timestamp\"}"), 4.0, "an old time, a malformed one and two from broken clocks");
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"unknown_staff\"}"), 2.0, "a status and a reply");
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"invalid_field\"}"), 2.0);
    assert_eq!(v.metric("vakt_open_incidents"), bad.len() as f64 + 1.0);
    assert_eq!(http_get(v.http, "/readyz").unwrap().0, 200, "still running and ready");
}

/// SIGKILL in the middle of an escalation; alarms keep coming while vakt is down.
/// After the restart the incident carries on (its offer expired while vakt was down, so
/// it escalates at once), and every alarm is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_escalation_it_carries_on_and_loses_nothing() {
    let _turn = SHARED_BROKER.lock().await;
    let dir = temp_dir("sigkill");
    let backend = Backend::external(1883).await;
    let mut v = Vakt::start(&backend, &dir);
    let port = backend.mqtt_port();
    let (mut ops, device, mut near) = clients_with_near_on_duty(&v, port).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("k-0", "r1", "fall")).await;
    let offer = near.expect(&staff_topic("near", "offers"), "the offer", |m| m["type"] == "offer").await;
    let id = offer["incident_id"].as_u64().unwrap();
    for i in 1..=5 {
        device.publish_json("vakt/v1/alarms/fjord", alarm(&format!("k-{i}"), &format!("r{}", i + 1), "safety")).await;
    }
    ops.expect("vakt/v1/incidents/fjord", "k-5 raised", |e| e["type"] == "raised" && e["alarm_id"] == "k-5").await;

    v.kill9();
    // While vakt is down: new alarms, a redelivery of one it has, and the offer expires (2 s).
    for i in 6..=15 {
        device.publish_json("vakt/v1/alarms/fjord", alarm(&format!("k-{i}"), &format!("r{}", i + 1), "safety")).await;
    }
    device.publish_json("vakt/v1/alarms/fjord", alarm("k-3", "r4", "safety")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    v.restart();

    let revoke = near.expect(&staff_topic("near", "offers"), "the expired offer revoked after the restart", |m| is(m, "revoke", id)).await;
    assert_eq!(revoke["reason"], "expired");
    near.expect(&staff_topic("near", "offers"), "the escalated offer", |m| is(m, "offer", id) && m["broadcast"] == true).await;
    ops.expect("vakt/v1/incidents/fjord", "k-15 raised", |e| e["type"] == "raised" && e["alarm_id"] == "k-15").await;
    reply(&near, "near", id, "accept").await;
    near.expect(&staff_topic("near", "offers"), "accept confirmed", |m| is(m, "confirmed", id)).await;

    // Every alarm exactly once in the store.
    let store = v.store().await;
    let mut alarm_ids = raised_alarm_ids(&store, 16).await;
    alarm_ids.sort_by_key(|a| a[2..].parse::<u32>().unwrap());
    let want: Vec<String> = (0..=15).map(|i| format!("k-{i}")).collect();
    assert_eq!(alarm_ids, want, "each alarm raised exactly once");
    assert!(store.incident_events(17).await.unwrap().is_empty(), "no incident beyond the 16 alarms");
    let counts = store.event_counts().await.unwrap();
    assert_eq!(counts.iter().find(|c| c.kind == "raised").map(|c| c.count), Some(16));
    assert_eq!(counts.iter().find(|c| c.kind == "answered").map(|c| c.count), Some(1));
    store.close().await;
    assert!(v.stop().success(), "a clean stop on SIGTERM");
}

/// vakt on PostgreSQL and a Mosquitto of the test's own (which outlives vakt's restarts,
/// and the test's clients with it), with a fault injected (`var` = `alarm_ids`).
async fn with_fault_injected(name: &str, var: &str, alarm_ids: &str) -> (Mosquitto, u16, Vakt) {
    let dir = temp_dir(name);
    let port = free_port();
    let broker = Mosquitto::start(&dir, port);
    let mut backend = Backend::external(port).await;
    backend.env.push((var.into(), alarm_ids.into()));
    let v = Vakt::start(&backend, &dir);
    (broker, port, v)
}

/// Waits up to 15 s for vakt to end by itself; its exit status.
fn exit_status(v: &mut Vakt) -> std::process::ExitStatus {
    exit_within(v, Duration::from_secs(15))
}

fn exit_within(v: &mut Vakt, within: Duration) -> std::process::ExitStatus {
    exited_within(&mut v.child, within).unwrap_or_else(|| panic!("vakt did not end in time:\n{}", v.log()))
}

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

/// A message that makes the engine panic (a fault in vakt, injected here by alarm id) is
/// refused with its ids, acknowledged and not applied; vakt ends (status 2) and its
/// restart recovers from the store, where nothing of the failed step was written. The
/// broker gives the restarted engine the messages after it: they all go through, once.
/// Left to crash, vakt would meet the same message after every restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_makes_the_engine_panic_is_refused_and_the_alarms_after_it_go_through() {
    let (_broker, port, mut v) = with_fault_injected("poison", "VAKT_FAULT_PANIC_ON_ALARM", "poison-1").await;
    let mut ops = Client::connect(port, OPS).await;
    let device = Client::connect_with(port, &[], &unique("gateway"), false).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("before", "r1", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "the alarm before", |e| e["type"] == "raised" && e["alarm_id"] == "before").await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("poison-1", "r2", "fall")).await;
    for i in 1..=5 {
        device.publish_json("vakt/v1/alarms/fjord", alarm(&format!("after-{i}"), &format!("r{}", i + 2), "safety")).await;
    }
    let r = ops.expect("vakt/v1/rejects", "the refusal", |m| m["reason"] == "unreadable").await;
    assert_eq!((r["alarm_id"].as_str(), r["resident_id"].as_str(), r["topic"].as_str()), (Some("poison-1"), Some("r2"), Some("vakt/v1/alarms/fjord")), "{r}");
    assert!(r["detail"].as_str().unwrap().contains("fault injected"), "{r}");
    assert_eq!(exit_status(&mut v).code(), Some(2), "{}", v.log());
    assert!(v.log().contains("a message made the engine panic"), "{}", v.log());

    v.restart();
    for i in 1..=5 {
        let want = format!("after-{i}");
        ops.expect("vakt/v1/incidents/fjord", "an alarm after it, raised after the restart", |e| e["type"] == "raised" && e["alarm_id"] == want.as_str()).await;
    }
    let store = v.store().await;
    let mut raised = raised_alarm_ids(&store, 10).await;
    raised.sort();
    assert_eq!(raised, ["after-1", "after-2", "after-3", "after-4", "after-5", "before"], "each once, the poisoned one never");
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"unreadable\"}"), 0.0, "the restarted engine met it no more");
    // The operators still see it after the restart: a person no one was offered.
    let refused = api_as_admin(&v, &store, "/api/refused").await;
    let body = refused.to_string();
    assert_eq!((refused["refused"][0]["alarm_id"].as_str(), refused["refused"][0]["reason"].as_str()), (Some("poison-1"), Some("unreadable")), "{body}");
    store.close().await;
    assert!(v.stop().success());
}

/// An incident whose timer makes the engine panic (a fault in vakt, injected here by
/// alarm id), while running and when due at start: vakt stores that incident as set
/// aside (its event, an audit line), ends with status 2, and the restarted engine no
/// longer runs its timers, so it does not fail again. Left to crash, vakt would meet the
/// same timer after every restart, and no alarm would get through. The incident stays
/// open and flagged for people, who can still take it; other incidents' timers run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_whose_timer_makes_the_engine_panic_is_set_aside_and_the_rest_goes_on() {
    let (_broker, port, mut v) = with_fault_injected("timer-fault", "VAKT_FAULT_PANIC_ON_TIMER", "stuck-1,stuck-2").await;
    let (mut ops, device, mut near) = clients_with_near_on_duty(&v, port).await;
    let offers = staff_topic("near", "offers");

    // While running: the offer expires after 2 s, and its timer fails the engine.
    device.publish_json("vakt/v1/alarms/fjord", alarm("stuck-1", "r1", "fall")).await;
    near.expect(&offers, "the offer", |m| is(m, "offer", 1)).await;
    assert_eq!(exit_status(&mut v).code(), Some(2), "{}", v.log());
    assert!(v.log().contains("an incident's timer made the engine panic"), "{}", v.log());
    v.restart();
    let e = ops.expect("vakt/v1/incidents/fjord", "the incident set aside", |e| is(e, "set_aside", 1)).await;
    assert!(e["reason"].as_str().unwrap().contains("fault injected"), "{e}");

    // Other incidents' timers run (the offer of 2 expires), and vakt stays up.
    device.publish_json("vakt/v1/alarms/fjord", alarm("after-1", "r2", "safety")).await;
    ops.expect("vakt/v1/incidents/fjord", "the next alarm's offer expiring", |e| is(e, "revoked", 2) && e["reason"] == "expired").await;
    assert!(v.child.try_wait().unwrap().is_none(), "vakt runs on:\n{}", v.log());

    // Due at start: the engine is killed while the offer of 3 is live, and starts after
    // its expiry; that start sets it aside and ends, and the next goes on.
    device.publish_json("vakt/v1/alarms/fjord", alarm("stuck-2", "r3", "fall")).await;
    near.expect(&offers, "the offer of 3", |m| is(m, "offer", 3)).await;
    v.kill9();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let status = v.restart_until_exit(Duration::from_secs(60));
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{}", v.log());
    assert!(v.log().contains("at start, the engine panicked") && v.log().contains("the timer of I3 made the engine panic"), "{}", v.log());
    v.restart();
    ops.expect("vakt/v1/incidents/fjord", "3 set aside", |e| is(e, "set_aside", 3)).await;

    // Both are open, flagged and counted; the operators see why; staff can still take one.
    let store = v.store().await;
    let list = api_as_admin(&v, &store, "/api/incidents").await;
    let aside: Vec<u64> = list["incidents"].as_array().unwrap().iter().filter(|i| i["set_aside"] == true).map(|i| i["incident_id"].as_u64().unwrap()).collect();
    assert_eq!(aside, [1, 3], "{list}");
    let detail = api_as_admin(&v, &store, "/api/incidents/1").await;
    assert!(detail["audit"].as_array().unwrap().iter().any(|a| a["action"] == "set_aside" && a["username"] == "(vakt)"), "{detail}");
    assert_eq!(v.metric("vakt_incidents_set_aside"), 2.0);
    reply(&near, "near", 1, "accept").await;
    ops.expect("vakt/v1/incidents/fjord", "1 answered by hand", |e| is(e, "answered", 1)).await;
    near.publish_json(&staff_topic("near", "replies"), json!({ "incident_id": 1, "action": "close", "outcome": "helped" })).await;
    ops.expect("vakt/v1/incidents/fjord", "1 closed", |e| is(e, "closed", 1)).await;
    wait_metric(&v, "vakt_incidents_set_aside", 1.0).await;
    store.close().await;
    assert!(v.stop().success());
}

/// A web action (here an operator's note) that makes the engine panic (a fault in vakt,
/// injected by the action's name) is not applied: vakt notes it in the audit trail under
/// the user who asked (`engine_failed`), does not answer that request with success, and
/// ends with status 2; its restart recovers from the store, refuses that same action
/// (409 `action_set_aside`) instead of failing on it again, and takes another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_action_that_makes_the_engine_panic_is_noted_and_vakt_starts_again() {
    let (_broker, port, mut v) = with_fault_injected("web-fault", "VAKT_FAULT_PANIC_ON_WEB_ACTION", "note").await;
    let mut ops = Client::connect(port, OPS).await;
    let device = Client::connect(port, &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("a-1", "r1", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "the incident", |e| is(e, "raised", 1)).await;
    let store = v.store().await;
    api_as_admin(&v, &store, "/api/incidents").await;
    let note = |v: &Vakt| {
        let headers = ["Authorization: Bearer admin-token", "Content-Type: application/json"];
        http_request(v.http, "POST", "/api/incidents/1/actions", &headers, r#"{"action":"note","note":"rang her"}"#)
    };
    let answer = note(&v);
    assert_ne!(answer.as_ref().map(|a| a.0), Some(200), "{answer:?}");
    assert_eq!(exit_status(&mut v).code(), Some(2), "{}", v.log());
    assert!(v.log().contains("a web action made the engine panic"), "{}", v.log());

    v.backend.env.clear();
    v.restart();
    let detail = api_as_admin(&v, &store, "/api/incidents/1").await;
    let failed = detail["audit"].as_array().unwrap().iter().find(|a| a["action"] == "note").cloned().unwrap_or_default();
    assert_eq!((failed["username"].as_str(), failed["outcome"].as_str()), (Some("admin"), Some("engine_failed")), "{detail}");
    assert!(!detail["events"].as_array().unwrap().iter().any(|e| e["type"] == "note_added"), "not applied: {detail}");
    // The same action again (the page said it failed) is refused, not applied: it would
    // stop vakt again, and every alarm would wait for each restart. Another is taken.
    let (code, _, body) = note(&v).expect("an answer");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("action_set_aside"), "{body}");
    assert_eq!(http_get(v.http, "/readyz").map(|(code, _)| code), Some(200), "vakt goes on: {}", v.log());
    let headers = ["Authorization: Bearer admin-token", "Content-Type: application/json"];
    let (code, _, body) = http_request(v.http, "POST", "/api/incidents/1/actions", &headers, r#"{"action":"note","note":"rang igjen"}"#).expect("an answer");
    assert_eq!(code, 200, "{body}");
    ops.expect("vakt/v1/incidents/fjord", "the other note, after the restart", |e| is(e, "note_added", 1)).await;
    store.close().await;
    assert!(v.stop().success());
}

/// A directory row (here from `vakt import`) whose input makes the engine panic (a
/// fault in vakt, injected by id): vakt stores it as set aside (an audit line) and ends
/// with status 2; the restarted engine leaves that row out, so it does not fail again,
/// and takes the rest of the import. The resident's alarms are refused as unknown (red
/// on the dashboard), and the row is tried again once it changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_row_that_makes_the_engine_panic_is_left_out_until_it_changes() {
    let (_broker, port, mut v) = with_fault_injected("directory-fault", "VAKT_FAULT_PANIC_ON_DIRECTORY", "new-7").await;
    let import = |v: &Vakt, rows: &str| {
        let file = v.dir.join("import.csv");
        std::fs::write(&file, format!("resident_id,municipality,lat,lon,address,notes,regular_helpers\n{rows}")).unwrap();
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_vakt")).args(["import", "residents"]).arg(&file).arg("--config").arg(&v.config).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    import(&v, "new-7,fjord,61.2,7.1,Nyvegen 7,,\nnew-8,fjord,61.21,7.11,Nyvegen 8,,\n");
    assert_eq!(exit_status(&mut v).code(), Some(2), "{}", v.log());
    assert!(v.log().contains("the directory row of resident new-7 made the engine panic"), "{}", v.log());
    v.restart();
    assert!(v.log().contains("left out until it changes"), "{}", v.log());
    assert_eq!(v.metric("vakt_directory_rows_set_aside"), 1.0);
    let mut ops = Client::connect(port, OPS).await;
    let device = Client::connect(port, &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("d-8", "new-8", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "the rest of the import applied", |e| e["type"] == "raised" && e["resident_id"] == "new-8").await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("d-7", "new-7", "fall")).await;
    let r = ops.expect("vakt/v1/rejects", "the left-out resident's alarm refused", |m| m["reason"] == "unknown_resident").await;
    assert_eq!(r["resident_id"], "new-7");
    let store = v.store().await;
    let aside = store.latest_audit("directory_row_set_aside", 10).await.unwrap();
    assert_eq!(aside.len(), 1);
    assert!(aside[0].contains("resident new-7") && aside[0].contains("Nyvegen 7"), "{}", aside[0]);
    // Corrected (here: changed), it is tried again.
    import(&v, "new-7,fjord,61.2,7.1,Nyvegen 7B,,\n");
    assert_eq!(exit_status(&mut v).code(), Some(2), "tried again:\n{}", v.log());
    store.close().await;
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
    for _ in 0..200 {
        if v.metric("vakt_store_write_failures_total") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// The embedded broker acknowledges an alarm as soon as it has it, and drops one that
/// nobody subscribes to: it must not listen before vakt's engine can take alarms. While
/// vakt waits for its database at start, a device cannot connect (so it keeps its
/// alarm); once the database answers, vakt starts, and the device's alarm is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_takes_no_alarm_before_the_engine_can() {
    let dir = temp_dir("late-database");
    let mut backend = Backend::embedded(&dir);
    backend.db = Db::fresh_postgres().await;
    // Nothing listens there yet: the database is not up.
    let db_port = free_port();
    backend.database_port = Some(db_port);
    let mut v = Vakt::launch(&backend, &dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !v.log().contains("database not available yet") {
        assert!(std::time::Instant::now() < deadline, "vakt never said it waits for its database:\n{}", v.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mqtt = std::net::SocketAddr::from(([127, 0, 0, 1], backend.mqtt_port()));
    assert!(
        std::net::TcpStream::connect_timeout(&mqtt, Duration::from_millis(500)).is_err(),
        "the embedded broker takes connections before vakt can take alarms"
    );

    let _database = DbProxy::start_on(db_port, 5432).await;
    v.wait_ready();
    let mut ops = Client::connect(backend.mqtt_port(), OPS).await;
    let device = Client::connect(backend.mqtt_port(), &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("late-1", "r1", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "the alarm handled", |e| e["type"] == "raised" && e["alarm_id"] == "late-1").await;
    assert!(v.stop().success());
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
    for _ in 0..200 {
        if raised().await == 2 && v.metric("vakt_store_write_failures_total") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    for _ in 0..100 {
        if http_get(v.http, "/readyz").unwrap().0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    for _ in 0..200 {
        if v.log().contains("checkpoint got no answer from the database in time; the input log stays whole") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// `vakt import` fills the directory; a running engine picks the change up; a bad file
/// is refused whole with its bad lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_fills_the_directory_of_a_running_engine() {
    let (dir, _backend, v, mut ops, device) = embedded_with_clients("import").await;
    let import = |what: &str, file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vakt")).args(["import", what]).arg(file).arg("--config").arg(&v.config).output().unwrap()
    };
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "resident_id,municipality,lat,lon,address,notes,regular_helpers\nnew-1,fjord,61.2,7.1,Nyvegen 1,,\nnew 2,fjord,61.2,7.1,,,\nnew-3,fjrod,61.2,7.1,,,\n",
    )
    .unwrap();
    let out = import("residents", &bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 bad row(s), nothing imported") && err.contains("line 3"), "{err}");
    assert!(err.contains("line 4: municipality \"fjrod\" is not in the configuration (it has fjord)"), "{err}");

    let good = dir.join("good.csv");
    std::fs::write(&good, "resident_id,municipality,lat,lon,address,notes,regular_helpers\nnew-1,fjord,61.2,7.1,Nyvegen 1,Ring på,near\nnew-2,fjord,61.21,7.11,Nyvegen 2,,near;ghost\n").unwrap();
    let out = import("residents", &good);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2 residents"));
    // A regular helper the staff directory lacks is said, not refused.
    assert!(err.contains("resident new-2 names regular helper ghost, who is not in the staff directory"), "{err}");
    assert!(!err.contains("regular helper near"), "{err}");
    // Within the engine's 5 s directory refresh, the new resident's alarm is routed.
    let mut refused_before = None;
    for attempt in 0..20 {
        device.publish_json("vakt/v1/alarms/fjord", alarm(&format!("n-{attempt}"), "new-1", "fall")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if v.metric("vakt_incident_events_total{type=\"raised\"}") == 1.0 {
            refused_before = Some(attempt);
            break;
        }
    }
    let refused = refused_before.unwrap_or_else(|| panic!("the imported resident's alarm was never raised:\n{}", v.log()));
    // Alarms that came before the refresh were refused as unknown, each with its reason.
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"unknown_resident\"}"), refused as f64);
    if refused > 0 {
        ops.expect("vakt/v1/rejects", "the alarms before the refresh, refused", |m| m["reason"] == "unknown_resident").await;
    }
    ops.expect("vakt/v1/incidents/fjord", "the imported resident's incident", |e| e["type"] == "raised" && e["resident_id"] == "new-1").await;
}

/// An external broker over TLS (a private CA, trusted through SSL_CERT_FILE) with a
/// username and password: `mqtt.url = "mqtts://user:password@host:port"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_password_to_an_external_broker() {
    let dir = temp_dir("tls");
    let sh = |cmd: &str| sh_in(&dir, cmd);
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=vakt test CA' 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost' 2>/dev/null");
    sh(
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null",
    );
    sh("mosquitto_passwd -b -c passwd vakt 's3cret' && chmod 0644 passwd server.key");
    let (tls_port, plain_port) = (free_port(), free_port());
    let conf = dir.join("mosquitto.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings true\nlistener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\npassword_file {d}/passwd\nallow_anonymous false\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n"
        ),
    )
    .unwrap();
    let broker = mosquitto_on(&conf, plain_port);
    let mut backend = Backend::sqlite_on(plain_port, &dir);
    backend.mqtt_url = Some(format!("mqtts://vakt:s3cret@localhost:{tls_port}"));
    backend.env.push(("SSL_CERT_FILE".into(), format!("{d}/ca.pem")));
    let v = Vakt::start(&backend, &dir);
    // Devices on the plain listener, vakt on TLS: the alarm crosses over.
    let mut ops = Client::connect(plain_port, OPS).await;
    let device = Client::connect(plain_port, &[]).await;
    // A message too large, then an alarm: refused, and the alarm comes through.
    device.publish("vakt/v1/alarms/fjord", vec![b'x'; 1_100_000]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("t-1", "r1", "fall")).await;
    ops.expect("vakt/v1/rejects", "the big one refused over TLS", |r| r["reason"] == "payload_too_large").await;
    ops.expect("vakt/v1/incidents/fjord", "raised over TLS", |e| e["type"] == "raised" && e["alarm_id"] == "t-1").await;
    assert_eq!(v.metric("vakt_mqtt_connection_errors_total"), 0.0);
    assert!(v.log().contains("MQTT connected"));
    drop(v);
    drop(broker);
}

/// A shell command in `dir`, which must succeed.
fn sh_in(dir: &std::path::Path, cmd: &str) {
    let out = std::process::Command::new("sh").arg("-c").arg(cmd).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Mosquitto on the configuration `conf`, once it takes connections on `port`; it ends
/// with the value (a failed test leaves no broker behind).
fn mosquitto_on(conf: &std::path::Path, port: u16) -> Broker {
    let broker = std::process::Command::new("mosquitto").arg("-c").arg(conf).stderr(std::process::Stdio::null()).spawn().unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker(broker)
}

struct Broker(std::process::Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The broker access control shipped in `config/mosquitto/vakt.acl` (plus a gateway for
/// the test's municipality), on a Mosquitto that wants a password from every client:
/// vakt works through it; a client with no password is refused; a staff member's app
/// reads only its own offers, even with a wildcard, and cannot answer for another; a
/// gateway sends only its own municipality's alarms; an integration reads the incidents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_broker_access_control_keeps_each_client_to_its_own() {
    let dir = temp_dir("acl");
    let users = [("vakt", "vakt-pass"), ("near", "near-pass"), ("far", "far-pass"), ("gateway-fjord", "gateway-pass"), ("integration", "integration-pass")];
    sh_in(&dir, "touch passwd && chmod 0644 passwd");
    for (user, password) in users {
        sh_in(&dir, &format!("mosquitto_passwd -b passwd {user} {password}"));
    }
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/mosquitto/vakt.acl")).unwrap();
    std::fs::write(
        dir.join("acl"),
        format!("{shipped}\nuser gateway-fjord\ntopic write vakt/v1/alarms/fjord\ntopic write vakt/v1/gateways/fjord/gateway-fjord\n"),
    )
    .unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {d}/passwd\nacl_file {d}/acl\n")).unwrap();
    let broker = mosquitto_on(&conf, port);
    let mut backend = Backend::sqlite_on(port, &dir);
    backend.mqtt_url = Some(format!("mqtt://vakt:vakt-pass@127.0.0.1:{port}"));
    let v = Vakt::start(&backend, &dir);

    // No password, no entry.
    let (anonymous, mut eventloop) = rumqttc::AsyncClient::new(rumqttc::MqttOptions::new(unique("anonymous"), "127.0.0.1", port), 10);
    let refused = tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await.expect("an answer in time");
    assert!(matches!(refused, Err(rumqttc::ConnectionError::ConnectionRefused(_))), "{refused:?}");
    drop(anonymous);

    let mut ops = Client::connect_as(port, OPS, "integration", "integration-pass").await;
    // near tries to read every staff member's offers.
    let mut near = Client::connect_as(port, &["vakt/v1/staff/+/offers"], "near", "near-pass").await;
    let mut far = Client::connect_as(port, &[&staff_topic("far", "offers")], "far", "far-pass").await;
    let gateway = Client::connect_as(port, &[], "gateway-fjord", "gateway-pass").await;
    on_duty(&near, "near", 61.2302, 7.1003).await;
    on_duty(&far, "far", 61.3000, 7.2500).await;
    wait_metric(&v, "vakt_staff_on_duty", 2.0).await;

    // Another municipality's topic is not the gateway's: the broker drops it (vakt would
    // refuse it as unknown_municipality if it came through).
    gateway.publish_json("vakt/v1/alarms/elsewhere", alarm("x-1", "r1", "fall")).await;
    gateway.publish_json("vakt/v1/alarms/fjord", alarm("a-1", "r1", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "raised", |e| is(e, "raised", 1)).await;
    near.expect(&staff_topic("near", "offers"), "near's offer", |m| is(m, "offer", 1)).await;
    // near answers for far (dropped), then declines for itself: the offer goes to far.
    near.publish_json(&staff_topic("far", "replies"), json!({ "incident_id": 1, "action": "accept" })).await;
    reply(&near, "near", 1, "decline").await;
    near.expect(&staff_topic("near", "offers"), "the decline confirmed", |m| is(m, "confirmed", 1)).await;
    far.expect(&staff_topic("far", "offers"), "far's offer", |m| is(m, "offer", 1)).await;
    // far's offer went out before near's confirmation: near would have it by now.
    assert!(near.try_take(|t, _| t != staff_topic("near", "offers")).is_none(), "near read another's offer");
    reply(&far, "far", 1, "accept").await;
    let accepted = ops.expect("vakt/v1/incidents/fjord", "accepted", |e| is(e, "accepted", 1)).await;
    assert_eq!(accepted["staff_id"], "far");
    let store = v.store().await;
    let accepts = store.incident_events(1).await.unwrap().into_iter().filter(|e| e.kind == "accepted").count();
    assert_eq!(accepts, 1, "the forged accept never reached vakt");
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"unknown_municipality\"}"), 0.0, "the other municipality's alarm never reached vakt");
    assert_eq!(v.metric("vakt_alarms_received_total{municipality=\"fjord\"}"), 1.0);
    // Its status under another gateway's id is dropped; under its own, it gets through.
    gateway.publish_json("vakt/v1/gateways/fjord/gateway-other", json!({ "state": "offline" })).await;
    gateway.publish_json("vakt/v1/gateways/fjord/gateway-fjord", json!({ "state": "online" })).await;
    wait_metric(&v, GW_ONLINE, 1.0).await;
    assert_eq!(v.metric(GW_OFFLINE), 0.0, "the status under another's id never reached vakt");
    store.close().await;
    drop(v);
    drop(broker);
}

/// With a checkpoint after every few records, the input log is cut at quiet moments; a
/// SIGKILL and restart recovers from the checkpoint: staff still on duty where they were,
/// old alarm ids still known, incident numbers continued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_cut_the_log_and_recovery_starts_from_them() {
    let dir = temp_dir("checkpoint");
    let mut backend = Backend::embedded(&dir);
    backend.checkpoint_every = Some(5);
    let mut v = Vakt::start(&backend, &dir);
    let port = backend.mqtt_port();
    let (mut ops, device, mut near) = clients_with_near_on_duty(&v, port).await;
    for (i, alarm_id) in ["c-1", "c-2"].into_iter().enumerate() {
        let incident = i as u64 + 1;
        device.publish_json("vakt/v1/alarms/fjord", alarm(alarm_id, "r1", "fall")).await;
        near.expect(&staff_topic("near", "offers"), "the offer", |m| is(m, "offer", incident)).await;
        reply(&near, "near", incident, "accept").await;
        near.publish_json(&staff_topic("near", "replies"), json!({ "incident_id": incident, "action": "close", "outcome": "helped" })).await;
        ops.expect("vakt/v1/incidents/fjord", "closed", |e| is(e, "closed", incident)).await;
    }
    wait_metric(&v, "vakt_open_incidents", 0.0).await;
    let store = v.store().await;
    let cut = checkpoint_when(&store, 5, |_| true).await;
    assert!(cut.is_some(), "a checkpoint was stored and the log cut:\n{}", v.log());
    v.kill9();
    v.restart();
    assert!(v.log().contains("restored the engine from its checkpoint"), "{}", v.log());
    assert_eq!(v.metric("vakt_staff_on_duty"), 1.0, "near is still on duty");
    // The embedded broker restarted with vakt: the clients connect again.
    let mut ops = Client::connect(port, OPS).await;
    let device = Client::connect(port, &[]).await;
    let mut near = Client::connect(port, &[&staff_topic("near", "offers")]).await;
    // c-1 again is a redelivery; c-3 is new, offered to near as incident 3.
    device.publish_json("vakt/v1/alarms/fjord", alarm("c-1", "r1", "fall")).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("c-3", "r1", "fall")).await;
    let raised = ops.expect("vakt/v1/incidents/fjord", "c-3 raised", |e| e["type"] == "raised" && e["alarm_id"] == "c-3").await;
    assert_eq!(raised["incident_id"], 3);
    near.expect(&staff_topic("near", "offers"), "the offer after the restart", |m| is(m, "offer", 3)).await;
    assert_eq!(raised_count(&store).await, 3, "c-1's redelivery raised nothing");
    store.close().await;
}

/// A clean stop (SIGTERM) stores a checkpoint of everything, open incidents and all: the
/// next start (after an upgrade, say) replays no input, and the incident carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_leaves_a_checkpoint_and_the_next_start_replays_nothing() {
    let dir = temp_dir("stop-checkpoint");
    let backend = Backend::embedded(&dir);
    let mut v = Vakt::start(&backend, &dir);
    let port = backend.mqtt_port();
    let (_ops, device, mut near) = clients_with_near_on_duty(&v, port).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("s-1", "r1", "fall")).await;
    near.expect(&staff_topic("near", "offers"), "the offer", |m| is(m, "offer", 1)).await;
    reply(&near, "near", 1, "accept").await;
    near.expect(&staff_topic("near", "offers"), "accepted", |m| m["type"] == "confirmed" && m["action"] == "accept").await;
    assert!(v.stop().success());
    let store = v.store().await;
    let vakt::live::store::CheckpointRow { log_seq, state, .. } = store.latest_checkpoint().await.unwrap().expect("a checkpoint at the stop");
    assert_eq!(store.sequences().await.unwrap().log, log_seq, "it covers every stored input");
    assert!(state.contains("s-1"), "with the open incident");
    v.restart();
    assert_eq!(v.metric("vakt_replayed_records_total"), 0.0, "{}", v.log());
    assert_eq!(v.metric("vakt_open_incidents"), 1.0);
    let mut ops = Client::connect(port, OPS).await;
    let near = Client::connect(port, &[]).await;
    near.publish_json(&staff_topic("near", "replies"), json!({ "incident_id": 1, "action": "close", "outcome": "helped" })).await;
    ops.expect("vakt/v1/incidents/fjord", "closed after the restart", |e| is(e, "closed", 1)).await;
    store.close().await;
}

/// A site that is never quiet still checkpoints (here at once: `checkpoint_busy_secs = 0`),
/// with its open incidents. After a SIGKILL the engine comes back from that checkpoint
/// and what the log holds after it (the log before it was cut), and the accepted
/// incident carries on to its close, its events still naming its municipality.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_with_an_open_incident_carries_it_over_a_restart() {
    let dir = temp_dir("checkpoint-busy");
    let mut backend = Backend::embedded(&dir);
    backend.checkpoint_every = Some(2);
    backend.checkpoint_busy_secs = Some(0);
    let mut v = Vakt::start(&backend, &dir);
    let port = backend.mqtt_port();
    let (mut ops, device, mut near) = clients_with_near_on_duty(&v, port).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("b-1", "r1", "fall")).await;
    near.expect(&staff_topic("near", "offers"), "the offer", |m| is(m, "offer", 1)).await;
    reply(&near, "near", 1, "accept").await;
    ops.expect("vakt/v1/incidents/fjord", "accepted", |e| is(e, "accepted", 1)).await;
    let store = v.store().await;
    let state = checkpoint_when(&store, 2, |state| state["engine"]["incidents"].as_array().is_some_and(|i| i.len() == 1)).await;
    let state = state.unwrap_or_else(|| panic!("a checkpoint with the open incident was stored and the log cut:\n{}", v.log()));
    assert_eq!(state["contexts"][0][1]["alarm"], "b-1", "the driver's view of the incident is kept too");
    v.kill9();
    v.restart();
    assert!(v.log().contains("restored the engine from its checkpoint") && v.log().contains("open_incidents=1"), "{}", v.log());
    assert_eq!(v.metric("vakt_open_incidents"), 1.0);
    let mut ops = Client::connect(port, OPS).await;
    let mut near = Client::connect(port, &[&staff_topic("near", "offers")]).await;
    for action in ["en_route", "on_site"] {
        reply(&near, "near", 1, action).await;
        near.expect(&staff_topic("near", "offers"), action, |m| m["type"] == "confirmed" && m["action"] == action).await;
    }
    near.publish_json(&staff_topic("near", "replies"), json!({ "incident_id": 1, "action": "close", "outcome": "helped" })).await;
    let closed = ops.expect("vakt/v1/incidents/fjord", "closed after the restart", |e| is(e, "closed", 1)).await;
    assert_eq!(closed["municipality"], "fjord");
    wait_metric(&v, "vakt_open_incidents", 0.0).await;
    store.close().await;
}

/// While the broker is down, escalations keep producing messages, many more than the
/// in-flight window of 5 lets vakt publish at once. When it is back, every one of them
/// goes out, in turns of the window as PUBACKs come back: none waits for another reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_outbound_messages_than_the_inflight_window_all_go_out() {
    let dir = temp_dir("backlog");
    let port = free_port();
    let mut broker = Mosquitto::start(&dir, port);
    let mut backend = Backend::sqlite_on(port, &dir);
    backend.inflight = Some(5);
    let v = Vakt::start(&backend, &dir);
    let (_ops, device, _near) = clients_with_near_on_duty(&v, port).await;
    for i in 1..=20 {
        device.publish_json("vakt/v1/alarms/fjord", alarm(&format!("q-{i}"), &format!("r{i}"), "safety")).await;
    }
    wait_metric(&v, "vakt_open_incidents", 20.0).await;
    wait_metric(&v, "vakt_outbox_pending", 0.0).await;
    wait_metric(&v, "vakt_incident_events_unacknowledged", 0.0).await;
    broker.stop();
    // Offers expire after 2 s: revokes, broadcasts, offers and events pile up meanwhile.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let store = v.store().await;
    // Outbox rows, and incident events after the stored mark of what the broker has.
    let waiting = async || store.outbox_pending().await.unwrap() + store.events_after(store.events_acked_through().await.unwrap()).await.unwrap().len() as i64;
    let piled = waiting().await;
    assert!(piled > 40, "only {piled} messages waiting: the test needs many more than the window of 5");
    // The gauge is counted in memory: it agrees with the table (read between two equal
    // counts, as escalations keep adding rows).
    let mut agreed = None;
    for _ in 0..40 {
        let before = store.outbox_pending().await.unwrap();
        let gauge = v.metric("vakt_outbox_pending");
        if before == store.outbox_pending().await.unwrap() && gauge == before as f64 {
            agreed = Some(before);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(agreed.is_some_and(|rows| rows > 0), "vakt_outbox_pending never matched the outbox table");
    broker.start_again();
    wait_metric(&v, "vakt_mqtt_connected", 1.0).await;
    for _ in 0..200 {
        if waiting().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting().await, 0, "{piled} messages were waiting; all must reach the broker\n{}", v.log());
    wait_metric(&v, "vakt_outbox_pending", 0.0).await;
    store.close().await;
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
    for _ in 0..100 {
        if store.events_after(store.events_acked_through().await.unwrap()).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.events_after(store.events_acked_through().await.unwrap()).await.unwrap(), []);
    // Each event once: nothing more arrives for the events already seen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for seq in &stored {
        assert!(ops.try_take(|t, e| t == "vakt/v1/incidents/fjord" && e["seq"] == *seq).is_none(), "event {seq} came twice");
    }
    store.close().await;
}

/// A gateway as the contract asks (docs/mqtt.md): a retained `online` once connected,
/// and a retained `offline` as its last will, each with the fields of `about` (a base
/// unit's resident and connection time). Its connection dies without a goodbye when
/// the returned task is aborted (the socket closes, no DISCONNECT).
async fn gateway(port: u16, topic: &str, about: Value) -> tokio::task::JoinHandle<()> {
    let status = |state: &str| {
        let mut s = about.clone();
        s["state"] = json!(state);
        s.to_string()
    };
    let mut opts = rumqttc::MqttOptions::new(unique("gateway"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5)).set_last_will(rumqttc::LastWill::new(topic, status("offline"), rumqttc::QoS::AtLeastOnce, true));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 10);
    client.publish(topic, rumqttc::QoS::AtLeastOnce, true, status("online")).await.unwrap();
    tokio::spawn(async move {
        let _client = client;
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
}

const GW_ONLINE: &str = "vakt_gateways{municipality=\"fjord\",state=\"online\"}";
const GW_OFFLINE: &str = "vakt_gateways{municipality=\"fjord\",state=\"offline\"}";

/// A gateway comes online, then its connection dies: the broker publishes its will and
/// vakt counts it offline and lists it for operators. Its alarms are untouched.
async fn a_gateway_goes_offline(v: &Vakt, port: u16) {
    let gw = gateway(port, "vakt/v1/gateways/fjord/gw-1", json!({})).await;
    wait_metric(v, GW_ONLINE, 1.0).await;
    assert_eq!(v.metric(GW_OFFLINE), 0.0);
    gw.abort();
    wait_metric(v, GW_OFFLINE, 1.0).await;
    assert_eq!(v.metric(GW_ONLINE), 0.0);
    assert!(v.log().contains("gateway offline"), "a warning in the log:\n{}", v.log());
    let store = v.store().await;
    let listed = api_as_admin(v, &store, "/api/gateways").await;
    let gws = listed["gateways"].as_array().unwrap();
    assert_eq!(gws.len(), 1, "{listed}");
    assert_eq!(
        (gws[0]["municipality"].as_str(), gws[0]["gateway_id"].as_str(), gws[0]["state"].as_str()),
        (Some("fjord"), Some("gw-1"), Some("offline")),
        "{listed}"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_connection_dies_is_shown_offline_on_the_embedded_broker() {
    let (_dir, backend, v, mut ops, device) = embedded_with_clients("gateway-embedded").await;
    a_gateway_goes_offline(&v, backend.mqtt_port()).await;
    // Alarms keep their own way (through another gateway, say).
    device.publish_json("vakt/v1/alarms/fjord", alarm("gw-a1", "r1", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "raised", |e| is(e, "raised", 1)).await;
}

/// On Mosquitto: the gateway's status outlives a restart of vakt (the broker's retained
/// message is the record); a cleared status forgets the gateway; a bad status is refused
/// with its reason, as any message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_connection_dies_is_shown_offline_and_known_after_a_restart() {
    let dir = temp_dir("gateway-mosquitto");
    let port = free_port();
    let _broker = Mosquitto::start(&dir, port);
    let mut v = Vakt::start(&Backend::sqlite_on(port, &dir), &dir);
    let mut ops = Client::connect(port, OPS).await;
    a_gateway_goes_offline(&v, port).await;

    v.kill9();
    v.restart();
    wait_metric(&v, GW_OFFLINE, 1.0).await;

    // Taken out of service: its retained status cleared.
    let device = Client::connect(port, &[]).await;
    device.publish_retained("vakt/v1/gateways/fjord/gw-1", Vec::new()).await;
    wait_metric(&v, GW_OFFLINE, 0.0).await;
    assert_eq!(v.metric(GW_ONLINE), 0.0);

    let bad = [
        ("vakt/v1/gateways/fjord/gw-2", r#"{"state":"asleep"}"#, "invalid_field"),
        ("vakt/v1/gateways/fjord/gw-2", "online", "malformed_json"),
        ("vakt/v1/gateways/atlantis/gw-3", r#"{"state":"online"}"#, "unknown_municipality"),
        ("vakt/v1/gateways/fjord/gw 4", r#"{"state":"online"}"#, "bad_topic"),
    ];
    for (topic, payload, _) in bad {
        device.publish(topic, payload).await;
    }
    for (topic, _, reason) in bad {
        ops.expect("vakt/v1/rejects", reason, |m| m["reason"] == reason && m["topic"] == topic).await;
    }
    assert_eq!(v.metric(GW_ONLINE) + v.metric(GW_OFFLINE), 0.0, "no refused status counts");
    assert_eq!(http_get(v.http, "/readyz").unwrap().0, 200);
}

/// A home's base unit names its resident and when it connected: its going offline, for
/// longer than the grace, is that resident's `connection_lost` alarm, offered as any
/// alarm, and raised once however often vakt starts again and meets the retained status.
/// A unit back within the grace raises none, one back after it notes so on the incident;
/// one that names no known resident is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_unit_that_stays_offline_raises_its_residents_alarm_once() {
    let dir = temp_dir("base-unit");
    let port = free_port();
    let _broker = Mosquitto::start(&dir, port);
    let engine_toml = format!("[gateways]\noffline_alarm_after_secs = 2\n{LADDER_TOML}{FJORD_TOML}");
    let mut v = Vakt::start_with(&Backend::sqlite_on(port, &dir), &dir, &engine_toml, &residents_csv(), STAFF_CSV);
    let mut ops = Client::connect(port, OPS).await;
    let mut near = Client::connect(port, &[&staff_topic("near", "offers")]).await;
    on_duty(&near, "near", 61.2302, 7.1003).await;
    let received = "vakt_alarms_received_total{municipality=\"fjord\"}";
    let r2_unit = json!({ "resident_id": "r2", "connected_at": "2026-11-20T05:00:00Z" });

    // r2's unit blinks: offline, and back (a new connection) within the grace.
    let blink = gateway(port, "vakt/v1/gateways/fjord/bu-r2", r2_unit.clone()).await;
    wait_metric(&v, GW_ONLINE, 1.0).await;
    blink.abort();
    wait_metric(&v, GW_OFFLINE, 1.0).await;
    let _back = gateway(port, "vakt/v1/gateways/fjord/bu-r2", json!({ "resident_id": "r2", "connected_at": "2026-11-20T05:00:03Z" })).await;
    wait_metric(&v, GW_ONLINE, 1.0).await;

    // r1's unit goes, and stays, offline.
    let unit = gateway(port, "vakt/v1/gateways/fjord/bu-r1", json!({ "resident_id": "r1", "connected_at": "2026-11-20T06:00:00Z" })).await;
    wait_metric(&v, GW_ONLINE, 2.0).await;
    unit.abort();
    let raised = ops.expect("vakt/v1/incidents/fjord", "the base unit's alarm", |e| e["type"] == "raised" && e["kind"] == "connection_lost").await;
    assert_eq!((raised["resident_id"].as_str(), raised["alarm_id"].as_str()), (Some("r1"), Some("gateway-offline:1795154400000")), "{raised}");
    let offer = near.expect(&staff_topic("near", "offers"), "its offer", |m| m["type"] == "offer").await;
    assert_eq!(offer["alarm"]["kind"], "connection_lost", "{offer}");
    assert!(offer["alarm"]["text"].as_str().unwrap().contains("bu-r1"), "{offer}");
    assert_eq!(v.metric(received), 1.0, "r2's unit, back within the grace, raised nothing");
    let store = v.store().await;
    let listed = api_as_admin(&v, &store, "/api/gateways").await;
    store.close().await;
    let units: Vec<_> =
        listed["gateways"].as_array().unwrap().iter().map(|g| (g["gateway_id"].as_str(), g["state"].as_str(), g["resident_id"].as_str())).collect();
    assert_eq!(units, [(Some("bu-r1"), Some("offline"), Some("r1")), (Some("bu-r2"), Some("online"), Some("r2"))], "{listed}");
    // Near calls r1, and closes the incident.
    let incident = raised["incident_id"].as_u64().unwrap();
    reply(&near, "near", incident, "accept").await;
    reply(&near, "near", incident, "on_site").await;
    near.publish_json(&staff_topic("near", "replies"), json!({ "incident_id": incident, "action": "close", "outcome": "technical_fixed" })).await;
    ops.expect("vakt/v1/incidents/fjord", "closed", |e| is(e, "closed", incident)).await;

    // vakt starts again and the broker gives it the retained `offline` again: after the
    // grace, the same alarm, a redelivery. An alarm sent after it shows it was handled.
    v.kill9();
    v.restart();
    wait_metric(&v, received, 1.0).await;
    let device = Client::connect(port, &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("after", "r3", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "the next alarm", |e| e["type"] == "raised" && e["alarm_id"] == "after").await;
    // (The same event may come again after the SIGKILL, with its own seq: at least once.)
    assert!(ops.try_take(|_, e| e["type"] == "raised" && e["kind"] == "connection_lost" && e["seq"] != raised["seq"]).is_none(), "raised once");
    let store = v.store().await;
    assert_eq!(raised_count(&store).await, 2, "the base unit's alarm and the one after it");
    store.close().await;

    // r4's unit is offline past the grace, then back: a note on its alarm's incident,
    // which stays open for a person to close.
    let r4_unit = gateway(port, "vakt/v1/gateways/fjord/bu-r4", json!({ "resident_id": "r4", "connected_at": "2026-11-22T06:00:00Z" })).await;
    wait_metric(&v, GW_ONLINE, 2.0).await;
    r4_unit.abort();
    let raised = ops.expect("vakt/v1/incidents/fjord", "r4's alarm", |e| e["type"] == "raised" && e["resident_id"] == "r4").await;
    let incident = raised["incident_id"].as_u64().unwrap();
    let _r4_back = gateway(port, "vakt/v1/gateways/fjord/bu-r4", json!({ "resident_id": "r4", "connected_at": "2026-11-22T06:10:00Z" })).await;
    let note = ops.expect("vakt/v1/incidents/fjord", "the note", |e| is(e, "note_added", incident)).await;
    assert_eq!(note["by"], "vakt", "{note}");
    assert!(note["note"].as_str().unwrap().contains("bu-r4 is back online"), "{note}");
    assert_eq!(v.metric("vakt_open_incidents"), 2.0, "r3's fall and r4's incident: it stays open");

    // A base unit whose resident vakt does not know: refused as any alarm for them is.
    let stranger = gateway(port, "vakt/v1/gateways/fjord/bu-x", json!({ "resident_id": "nobody", "connected_at": "2026-11-21T06:00:00Z" })).await;
    wait_metric(&v, GW_ONLINE, 3.0).await;
    stranger.abort();
    let refused = ops.expect("vakt/v1/rejects", "unknown_resident", |m| m["reason"] == "unknown_resident").await;
    assert_eq!(refused["topic"], "vakt/v1/gateways/fjord/bu-x", "{refused}");
    device.publish("vakt/v1/gateways/fjord/bu-y", r#"{"state":"offline","resident_id":"r3"}"#).await;
    ops.expect("vakt/v1/rejects", "no connected_at", |m| m["reason"] == "invalid_field" && m["topic"] == "vakt/v1/gateways/fjord/bu-y").await;
}

/// A home's base unit whose `connection_lost` alarm makes the engine panic (a fault in
/// vakt, injected by its alarm id), with no grace: vakt refuses the alarm (on the rejects
/// topic and the dashboards' list, with its resident), sets it aside and ends with status
/// 2. The broker gives every start the unit's retained `offline` again, which would raise
/// the same alarm and stop vakt again each time: the restarted engine (the same version,
/// the fault still in it) refuses it at once instead, and goes on taking alarms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_units_alarm_that_makes_the_engine_panic_does_not_stop_vakt_at_every_start() {
    let dir = temp_dir("base-unit-fault");
    let port = free_port();
    let _broker = Mosquitto::start(&dir, port);
    let mut backend = Backend::sqlite_on(port, &dir);
    backend.env.push(("VAKT_FAULT_PANIC_ON_ALARM".into(), "gateway-offline:1795154400000".into()));
    let engine_toml = format!("[gateways]\noffline_alarm_after_secs = 0\n{LADDER_TOML}{FJORD_TOML}");
    let mut v = Vakt::start_with(&backend, &dir, &engine_toml, &residents_csv(), STAFF_CSV);
    let mut ops = Client::connect(port, OPS).await;
    let unit = gateway(port, "vakt/v1/gateways/fjord/bu-r1", json!({ "resident_id": "r1", "connected_at": "2026-11-20T06:00:00Z" })).await;
    wait_metric(&v, GW_ONLINE, 1.0).await;
    unit.abort();
    let r = ops.expect("vakt/v1/rejects", "the refusal", |m| m["reason"] == "unreadable").await;
    let ids = (r["topic"].as_str(), r["alarm_id"].as_str(), r["resident_id"].as_str());
    assert_eq!(ids, (Some("vakt/v1/gateways/fjord/bu-r1"), Some("gateway-offline:1795154400000"), Some("r1")), "{r}");
    assert_eq!(exit_status(&mut v).code(), Some(2), "{}", v.log());

    v.restart();
    // (The first refusal may come again too: the outbox is at least once.)
    let again = |m: &Value| m["reason"] == "unreadable" && m["detail"].as_str().is_some_and(|d| d.contains("made the engine fail before"));
    let again = ops.expect("vakt/v1/rejects", "refused again, at once", again).await;
    assert_eq!((again["alarm_id"].as_str(), again["resident_id"].as_str()), (Some("gateway-offline:1795154400000"), Some("r1")), "{again}");
    let device = Client::connect(port, &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("after", "r2", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "the next alarm", |e| e["type"] == "raised" && e["alarm_id"] == "after").await;
    assert_eq!(http_get(v.http, "/readyz").map(|(code, _)| code), Some(200), "vakt goes on: {}", v.log());
    let store = v.store().await;
    let refused = api_as_admin(&v, &store, "/api/refused").await;
    let list = refused["refused"].as_array().unwrap();
    let about_r1 = list.iter().all(|x| x["resident_id"] == "r1" && x["topic"] == "vakt/v1/gateways/fjord/bu-r1");
    assert!(list.len() == 2 && about_r1, "the operators see whose alarm was refused, each time: {refused}");
    store.close().await;
    assert!(v.stop().success());
}
