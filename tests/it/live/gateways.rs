//! Gateways' statuses, and a home's base unit that stays offline.

use super::*;

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
    // Seen to by an operator: off the list (acknowledged) until its status changes.
    let seen_to = |v: &Vakt| {
        let body = json!({ "municipality": "fjord", "gateway_id": "bu-r1" }).to_string();
        http_request(v.http, "POST", "/api/gateways/acknowledge", &["Authorization: Bearer admin-token", "Content-Type: application/json"], &body).unwrap().0
    };
    assert_eq!(seen_to(&v), 200);
    assert_eq!(seen_to(&v), 404, "once");
    let store = v.store().await;
    let listed = api_as_admin(&v, &store, "/api/gateways").await;
    store.close().await;
    assert_eq!(listed["gateways"][0]["acknowledged"], true, "{listed}");
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
