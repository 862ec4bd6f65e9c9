//! A fault in vakt (a panic, injected) or a kill: what is refused, set aside, kept,
//! and that vakt goes on after its restart.

use super::*;

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
