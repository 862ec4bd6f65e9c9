//! An incident's whole life through the real binary, on each store and broker; bad
//! input beside good; the directory imported into a running engine; the outbound
//! messages beyond the in-flight window; the embedded broker's start and stop.

use super::*;

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
    let agreed = eventually(Duration::from_secs(2), || async {
        let before = store.outbox_pending().await.unwrap();
        let gauge = v.metric("vakt_outbox_pending");
        (before == store.outbox_pending().await.unwrap() && gauge == before as f64).then_some(before)
    })
    .await;
    assert!(agreed.is_some_and(|rows| rows > 0), "vakt_outbox_pending never matched the outbox table");
    broker.start_again();
    wait_metric(&v, "vakt_mqtt_connected", 1.0).await;
    eventually(Duration::from_secs(10), || async { (waiting().await == 0).then_some(()) }).await;
    assert_eq!(waiting().await, 0, "{piled} messages were waiting; all must reach the broker\n{}", v.log());
    wait_metric(&v, "vakt_outbox_pending", 0.0).await;
    store.close().await;
}

/// An alarm nobody has answered counts as missed the moment it passes the target, not
/// only once it is answered late (docs/kpi.md); answered late, it is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_alarm_is_missed_the_moment_it_passes_the_target() {
    let dir = temp_dir("kpi-overdue");
    let backend = Backend::embedded(&dir);
    // A 3 s target, and a ladder inside it.
    let ladder = "[defaults.ladder]\noffer_timeout_secs = 1\nbroadcast_after_offers = 2\nbroadcast_after_secs = 1\nbackup_after_secs = 2\nretry_secs = 1\n";
    let toml = format!("{ladder}\n[engine]\ntarget_answer_secs = 3\n{FJORD_TOML}");
    let v = Vakt::start_with(&backend, &dir, &toml, &residents_csv(), STAFF_CSV);
    let port = backend.mqtt_port();
    let mut ops = Client::connect(port, OPS).await;
    let device = Client::connect(port, &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("late-1", "r1", "fall")).await;
    let raised = ops.expect("vakt/v1/incidents/fjord", "raised", |e| e["type"] == "raised").await;
    let store = v.store().await;
    let fjord_today = |k: &Value| k["periods"][0]["municipalities"].as_array().unwrap().iter().find(|r| r["municipality"] == "fjord").unwrap().clone();
    let row = fjord_today(&api_as_admin(&v, &store, "/api/kpis").await);
    assert_eq!((row["answered"].as_u64(), row["overdue"].as_u64(), row["share"].as_f64()), (Some(0), Some(0), None), "still within the target: {row}");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let row = fjord_today(&api_as_admin(&v, &store, "/api/kpis").await);
    assert_eq!((row["answered"].as_u64(), row["overdue"].as_u64(), row["share"].as_f64()), (Some(0), Some(1), Some(0.0)), "missed at once: {row}");
    // Answered late: one answer outside the target, no longer overdue.
    let near = Client::connect(port, &[&staff_topic("near", "offers")]).await;
    on_duty(&near, "near", 61.2302, 7.1003).await;
    let incident = raised["incident_id"].as_u64().unwrap();
    let mut near = near;
    near.expect(&staff_topic("near", "offers"), "the offer", |m| is(m, "offer", incident)).await;
    reply(&near, "near", incident, "accept").await;
    ops.expect("vakt/v1/incidents/fjord", "answered", |e| is(e, "answered", incident)).await;
    let row = fjord_today(&api_as_admin(&v, &store, "/api/kpis").await);
    assert_eq!(
        (row["answered"].as_u64(), row["within_target"].as_u64(), row["overdue"].as_u64(), row["share"].as_f64()),
        (Some(1), Some(0), Some(0), Some(0.0)),
        "counted once: {row}"
    );
    store.close().await;
}

/// A refused alarm an operator has seen to leaves the dashboards' list, audited, and
/// stays off after a restart; the others stay on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_alarm_seen_to_leaves_the_list_for_good() {
    let (_dir, _backend, mut v, mut ops, device) = embedded_with_clients("refused-ack").await;
    for id in ["lost-1", "lost-2"] {
        device.publish_json("vakt/v1/alarms/fjord", alarm(id, "nobody", "fall")).await;
        ops.expect("vakt/v1/rejects", "refused", |r| r["alarm_id"] == id).await;
    }
    let store = v.store().await;
    let listed = |k: &Value| k["refused"].as_array().unwrap().iter().map(|r| r["alarm_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let list = api_as_admin(&v, &store, "/api/refused").await;
    assert_eq!(listed(&list), ["lost-2", "lost-1"]);
    let first = list["refused"][1].clone();
    let body = json!({ "at": first["at"], "topic": first["topic"] }).to_string();
    let ack = |v: &Vakt| {
        http_request(v.http, "POST", "/api/refused/acknowledge", &["Authorization: Bearer admin-token", "Content-Type: application/json"], &body).unwrap()
    };
    let (code, _, answer) = ack(&v);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(listed(&api_as_admin(&v, &store, "/api/refused").await), ["lost-2"]);
    let (code, _, answer) = ack(&v);
    assert_eq!(code, 404, "acknowledged already: {answer}");
    assert!(answer.contains("\"not_found\""), "{answer}");
    // Both attempts audited; the one that took it off, with the reject as its detail.
    assert_eq!(store.latest_audit("refused_acknowledged", 10).await.unwrap().len(), 2);
    let taken = store.latest_audit_ok("refused_acknowledged", 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(serde_json::from_str::<Value>(&taken[0]).unwrap()["alarm_id"], "lost-1");
    v.kill9();
    v.restart();
    assert_eq!(listed(&api_as_admin(&v, &store, "/api/refused").await), ["lost-2"], "still off after a restart");
    store.close().await;
}
