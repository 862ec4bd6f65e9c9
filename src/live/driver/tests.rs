use std::sync::atomic::Ordering;

use super::commit::watch_writes;
use super::recovery::Checkpoint;
use super::*;
use crate::live::mqtt::Inbound;
use crate::live::store::StoreTimedOut;

/// Checkpoints stored before open incidents were kept (a bare snapshot) still read,
/// and the new kind reads back whole.
#[test]
fn checkpoints_of_both_kinds_read_back() {
    let config = crate::settings::Settings::from_toml(include_str!("../../../config/default.toml")).unwrap().engine_config().unwrap();
    let engine = Engine::new(config).snapshot().unwrap();
    let legacy = serde_json::to_string(&engine).unwrap();
    let read = Checkpoint::parse(&legacy).unwrap();
    assert_eq!((read.engine, read.contexts.len()), (engine.clone(), 0));
    let ctx = IncidentContext {
        municipality: crate::core::MunicipalityId::parse("demo").unwrap(),
        model: crate::core::ResponseModel::MobileGuardRoom,
        alarm: crate::core::AlarmId::parse("a-1").unwrap(),
        resident: crate::core::ResidentId::parse("r-1").unwrap(),
        kind: crate::core::AlarmKind::Fall,
        priority: crate::core::Priority::Critical,
        raised_at: Timestamp::from_millis(1_000),
        text: None,
        position: Position::new(61.2, 7.1).unwrap(),
        address: "Kyrkjevegen 3".into(),
        notes: String::new(),
    };
    let text = serde_json::to_string(&Checkpoint { engine: engine.clone(), contexts: vec![(IncidentId(7), ctx.clone())] }).unwrap();
    let read = Checkpoint::parse(&text).unwrap();
    assert_eq!((read.engine, read.contexts), (engine, vec![(IncidentId(7), ctx)]));
    assert!(Checkpoint::parse("{\"engine\": 1}").is_err());
}

/// A driver on a new SQLite store in its own folder, on the default configuration
/// (municipality `demo`), with residents r1..r3 applied.
async fn demo_driver(name: &str) -> (std::path::PathBuf, Store, Driver) {
    use crate::core::{MunicipalityId, Resident, ResidentId};
    let dir = std::env::temp_dir().join(format!("vakt-driver-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("t.sqlite").display());
    let store = Store::open(&url).await.unwrap();
    let mut d = driver_on(&store);
    d.recover().await.unwrap();
    let demo = MunicipalityId::parse("demo").unwrap();
    for r in ["r1", "r2", "r3"] {
        let home = Position::new(61.23, 7.10).unwrap();
        let res = Resident {
            id: ResidentId::parse(r).unwrap(),
            municipality: demo.clone(),
            home,
            regular_helpers: Vec::new(),
            address: String::new(),
            notes: String::new(),
        };
        d.apply(Mode::Live, T0, Input::UpsertResident(res), None);
    }
    (dir, store, d)
}

/// A new driver (an engine as at start, before recovery) on `store`.
fn driver_on(store: &Store) -> Driver {
    Driver::new(Engine::new(demo_config()), store.clone(), Arc::new(Metrics::new()), DriverConfig::default())
}

fn demo_config() -> crate::core::EngineConfig {
    crate::settings::Settings::from_toml(include_str!("../../../config/default.toml")).unwrap().engine_config().unwrap()
}

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn demo_alarm(a: &str, r: &str) -> Input {
    use crate::core::{Alarm, AlarmId, AlarmKind, MunicipalityId, ResidentId};
    let (id, resident, municipality) = (AlarmId::parse(a).unwrap(), ResidentId::parse(r).unwrap(), MunicipalityId::parse("demo").unwrap());
    Input::Alarm(Alarm { id, resident, municipality, kind: AlarmKind::Fall, priority: None, raised_at: T0, position: None, text: None })
}

/// A step that failed on an incident's timer, after an alarm of the same step had
/// made events: only the set-aside is stored, and it takes the numbers after what was
/// stored (a gap in the events would hold their acknowledged mark back for good);
/// the alarm's incident is not stored (the broker gives the alarm again), and an
/// engine recovered from the store has the incident aside and the other's timer.
#[tokio::test]
async fn a_failed_step_is_thrown_away_and_leaves_no_gap() {
    let (dir, store, mut d) = demo_driver("gap").await;
    let (ready, _) = tokio::sync::watch::channel(false);
    d.apply(Mode::Live, T0, demo_alarm("a1", "r1"), None);
    d.apply(Mode::Live, T0, demo_alarm("a2", "r2"), None);
    d.commit(&ready, true).await;
    let stored = store.sequences().await.unwrap();

    d.faults.timer = vec!["a2".into()];
    d.apply(Mode::Live, T0, demo_alarm("a3", "r3"), None);
    assert!(!d.batch.events.is_empty(), "the alarm made events");
    d.fire_due(T0 + Duration::from_secs(3_600));
    assert!(matches!(d.failure().map(|p| &p.culprit), Some(Culprit::Timer { incident: IncidentId(2) })));
    d.set_aside_failure(&ready).await;

    let now = store.sequences().await.unwrap();
    assert_eq!((now.events, now.log), (stored.events + 1, stored.log + 1), "the set-aside alone, right after what was stored");
    let last = store.incident_events(2).await.unwrap().pop().unwrap();
    assert_eq!(last.kind, "set_aside");
    assert!(store.incident_events(3).await.unwrap().is_empty(), "the alarm's step was thrown away");
    let mut again = driver_on(&store);
    again.recover().await.unwrap();
    let view = |id: u64| again.engine().incident(IncidentId(id));
    assert_eq!((view(1).map(|v| v.set_aside), view(2).map(|v| v.set_aside), view(3).is_none()), (Some(false), Some(true), true));
    assert_eq!(again.engine().next_timer().map(|(_, i)| i), Some(IncidentId(1)), "the other incident's timer is still due");
    // A version that cannot replay the log (here: a fault injected on a1) says so,
    // with the record and what to do, rather than panic.
    let mut other = driver_on(&store);
    other.faults.replay = vec!["a1".into()];
    let err = format!("{:#}", other.recover().await.unwrap_err());
    assert!(err.contains("replaying input log record 4") && err.contains("fault injected") && err.contains("stop it with SIGTERM"), "{err}");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A web action that makes the engine panic is not applied: the step is thrown away,
/// the action is noted in the audit trail under its user (`engine_failed`), and an
/// engine recovered from the store refuses the same action (it would only fail again)
/// and takes any other.
#[tokio::test]
async fn a_web_action_that_makes_the_engine_fail_is_audited_and_not_applied() {
    use crate::live::accounts::{Role, User};
    let (dir, store, mut d) = demo_driver("web-fault").await;
    let (ready, _) = tokio::sync::watch::channel(false);
    d.apply(Mode::Live, T0, demo_alarm("a1", "r1"), None);
    d.commit(&ready, true).await;
    let admin = || User { username: "admin1".into(), role: Role::Admin, staff_id: None, centre: None };
    let note = || WebAct { who: admin(), what: WebAction::Operator { incident: IncidentId(1), act: OperatorAct::Note { note: "rang her".into() } } };

    d.faults.web = vec!["note".into()];
    let outcome = d.act(note());
    assert!(matches!(outcome, ActOutcome::Refused { code: crate::live::errors::ErrorCode::EngineUnavailable, .. }));
    assert!(matches!(d.failure().map(|p| &p.culprit), Some(Culprit::WebAction { incident: Some(IncidentId(1)), .. })));
    d.set_aside_failure(&ready).await;
    let audit = store.incident_audit(1).await.unwrap();
    let failed = audit.iter().find(|a| a.username == "admin1").expect("the user's audit line");
    assert_eq!((failed.action.as_str(), failed.outcome.as_str()), ("note", WEB_ACTION_FAILED));
    assert!(failed.detail.contains("fault injected"), "{}", failed.detail);
    let aside = store.latest_audit(WEB_ACTION_SET_ASIDE, 10).await.unwrap();
    assert!(
        aside.len() == 1 && aside[0].contains("rang her") && aside[0].contains(env!("CARGO_PKG_VERSION")),
        "vakt's line setting the action aside: {aside:?}"
    );
    let kinds = |events: Vec<crate::live::store::HistoryEvent>| events.into_iter().map(|e| e.kind).collect::<Vec<_>>();
    assert!(!kinds(store.incident_events(1).await.unwrap()).contains(&"note_added".to_owned()), "not applied");

    let mut again = driver_on(&store);
    again.recover().await.unwrap();
    assert!(
        matches!(again.act(note()), ActOutcome::Refused { code: crate::live::errors::ErrorCode::ActionSetAside, .. }),
        "the same action is refused, not applied again"
    );
    let other = WebAct { who: admin(), what: WebAction::Operator { incident: IncidentId(1), act: OperatorAct::Note { note: "rang igjen".into() } } };
    assert!(matches!(again.act(other), ActOutcome::Done { .. }), "another action is taken");
    again.commit(&ready, true).await;
    assert!(kinds(store.incident_events(1).await.unwrap()).contains(&"note_added".to_owned()));
    let audit = store.incident_audit(1).await.unwrap();
    let refused = audit.iter().filter(|a| a.outcome == "action_set_aside").count();
    assert_eq!(refused, 1, "the refusal is audited: {audit:?}");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// An alarm that makes the engine panic is refused and set aside: an engine recovered
/// from the store refuses the same alarm (alarm id and resident) at once if it meets
/// it again (a retained message, a gateway that sends it again), rather than fail
/// again, and takes any other, the same id for another resident included.
#[tokio::test]
async fn an_alarm_that_made_the_engine_fail_is_refused_at_once_if_met_again() {
    let (dir, store, mut d) = demo_driver("alarm-fault").await;
    let (ready, _) = tokio::sync::watch::channel(false);
    d.commit(&ready, true).await;
    let raised_at = wall_clock();
    let publish = |a: &str, r: &str| {
        let alarm = serde_json::json!({ "alarm_id": a, "resident_id": r, "kind": "fall", "raised_at": raised_at.to_string() });
        Inbound::new(rumqttc::Publish::new("vakt/v1/alarms/demo", rumqttc::QoS::AtLeastOnce, alarm.to_string()), 16 * 1024)
    };
    let rejects = |out: &[OutMsg]| {
        out.iter().filter(|m| m.topic == outbound::REJECTS_TOPIC).map(|m| serde_json::from_str::<serde_json::Value>(&m.payload).unwrap()).collect::<Vec<_>>()
    };

    d.faults.alarm = vec!["a1".into()];
    d.on_message(&publish("a1", "r1"));
    assert!(matches!(d.failure().map(|p| &p.culprit), Some(Culprit::Message { ids: RefusedIds { alarm: Some(_), resident: Some(_), .. }, .. })));
    let out = d.set_aside_failure(&ready).await;
    let refused = rejects(&out);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (refused[0]["reason"].as_str(), refused[0]["alarm_id"].as_str(), refused[0]["resident_id"].as_str()),
        (Some("unreadable"), Some("a1"), Some("r1"))
    );
    let aside = store.latest_audit(ALARM_SET_ASIDE, 10).await.unwrap();
    assert!(aside.len() == 1 && aside[0].contains("\"a1\"") && aside[0].contains(env!("CARGO_PKG_VERSION")), "vakt's line setting the alarm aside: {aside:?}");

    // The fault is not injected any more: only the set-aside keeps the alarm out.
    let mut again = driver_on(&store);
    again.recover().await.unwrap();
    again.on_message(&publish("a1", "r1"));
    again.on_message(&publish("a2", "r2"));
    again.on_message(&publish("a1", "r3"));
    assert!(again.failure().is_none());
    let out = again.commit(&ready, true).await;
    let refused = rejects(&out);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (refused[0]["reason"].as_str(), refused[0]["alarm_id"].as_str(), refused[0]["resident_id"].as_str()),
        (Some("unreadable"), Some("a1"), Some("r1"))
    );
    assert!(refused[0]["detail"].as_str().unwrap().contains("made the engine fail before"), "{}", refused[0]);
    let mut raised: Vec<(String, String)> = again.contexts.values().map(|c| (c.alarm.to_string(), c.resident.to_string())).collect();
    raised.sort();
    assert_eq!(raised, [("a1".to_owned(), "r3".to_owned()), ("a2".to_owned(), "r2".to_owned())]);
    assert_eq!(again.refused_alarms().count(), 2, "the first refusal (read back at start) and this one, for the dashboards");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A mark moves only over a run without a gap; what was done beyond a gap waits for
/// it, and counts as done meanwhile.
#[test]
fn a_feed_mark_moves_over_what_is_done_without_a_gap() {
    let mut f = Feed::at(3);
    assert!(!f.moved());
    for seq in [5, 6, 2, 3] {
        f.done(seq);
    }
    assert_eq!((f.acked, f.unacknowledged(8)), (3, 3), "4, 7 and 8 are not done");
    f.done(4);
    assert_eq!((f.acked, f.unacknowledged(8), f.moved()), (6, 2, true));
    f.stored = f.acked;
    assert!(!f.moved());
}

/// The outbox's rows stay, acknowledged, until a checkpoint prunes them: the mark
/// tells a start what to publish again. An id after the mark with no row (deleted
/// when acknowledged, before the outbox kept a mark) counts as done, so the mark can
/// move past it.
#[tokio::test]
async fn a_start_publishes_the_outbox_after_its_mark_and_steps_over_ids_without_a_row() {
    let (dir, store, mut d) = demo_driver("outbox-mark").await;
    let (ready, _) = tokio::sync::watch::channel(false);
    d.commit(&ready, true).await;
    let row = |id: i64| OutboxRow { id, topic: format!("t{id}"), payload: format!("p{id}"), created_ms: id };
    store.append(&Batch { outbox: vec![row(5), row(9)], outbox_acked_through: Some(4), ..Batch::default() }).await.unwrap();

    let mut again = driver_on(&store);
    again.recover().await.unwrap();
    let out = again.unpublished().await.unwrap();
    let ids: Vec<_> = out.iter().filter_map(|m| if let Stored::Outbox(id) = m.stored { Some(id) } else { None }).collect();
    assert_eq!(ids, [5, 9]);
    assert_eq!(again.outbox_feed.unacknowledged(again.seq.outbox), 2);
    let (_tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    again.delivered(&mut vec![Stored::Outbox(9), Stored::Outbox(5)], &mut rx);
    assert!(again.commit(&ready, true).await.is_empty());
    assert_eq!((store.outbox_acked_through().await.unwrap(), store.outbox_pending().await.unwrap()), (9, 0));
    assert_eq!(store.outbox_ids().await.unwrap(), [5, 9], "kept until a checkpoint");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The watchdog's wake ends the write it was meant for, and only that one: a write
/// that was overdue may end between the watchdog's look and its signal, and the next
/// write, already waiting by then, must not take the signal for its own.
#[tokio::test]
async fn the_watchdog_ends_only_the_write_it_found_overdue() {
    let watch = Arc::new(WriteWatch::default());
    let (done, finish) = tokio::sync::oneshot::channel::<()>();
    let write = watch.bounded(Duration::from_secs(1), async move {
        finish.await.ok();
        Ok("stored")
    });
    let earlier = async {
        tokio::task::yield_now().await;
        let mark = watch.started.load(Ordering::Relaxed);
        assert_ne!(mark, 0, "the write has begun");
        watch.overdue_mark.store(mark + 1, Ordering::Relaxed);
        watch.overdue.notify_waiters();
        tokio::task::yield_now().await;
        done.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(write, earlier);
    assert_eq!(result.unwrap(), "stored");
    assert_eq!(watch.started.load(Ordering::Relaxed), 0);

    // A write that never ends is ended by the watchdog once it is overdue.
    tokio::spawn(watch_writes(watch.clone(), Duration::from_millis(1)));
    let hung = watch.bounded(Duration::from_millis(1), std::future::pending::<anyhow::Result<()>>());
    let err = tokio::time::timeout(Duration::from_secs(5), hung).await.expect("the watchdog ends a hung write").unwrap_err();
    assert!(err.is::<StoreTimedOut>(), "{err:#}");
}
