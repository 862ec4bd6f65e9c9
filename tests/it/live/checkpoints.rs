//! Checkpoints: the input log cut, a clean stop that leaves nothing to replay, open
//! incidents carried over a restart.

use super::*;

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
