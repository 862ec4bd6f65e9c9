//! An engine's snapshot, quiet or with incidents open, restores an engine that behaves
//! exactly the same (random runs: `properties::a_restored_snapshot_carries_on_exactly_the_same`).

use vakt::core::*;

use crate::harness::{World, id};
use crate::traces::CONFIG;

fn reply(staff: &str, incident: u64, reply: StaffReply) -> Input {
    Input::StaffReply { staff: id(staff), incident: IncidentId(incident), reply }
}

/// What happens after the snapshot, played on both engines.
fn later(w: &mut World) {
    let dup = w.alarm("a1", "r1", "fjord", AlarmKind::Fall);
    w.at(200.0, dup); // a redelivery of an alarm from before the snapshot
    let a = w.alarm("a2", "r2", "fjord", AlarmKind::Medication);
    w.at(201.0, a);
    w.at(205.0, reply("mid", 2, StaffReply::Decline));
    w.run_until(260.0);
    w.at(261.0, Input::StaffOffDuty { staff: id("far") });
    w.at(262.0, Input::StaffOnDuty { staff: id("far"), position: None });
    let d = w.alarm("a3", "rd", "dal", AlarmKind::Safety);
    w.at(263.0, d);
    w.run_until(400.0);
}

/// Three staff in Fjord, one in Dal; two residents in Fjord, one in Dal.
fn people(w: &mut World) {
    w.staff("near", "fjord", &[Role::HealthWorker], Some((61.232, 7.102)));
    w.staff("mid", "fjord", &[Role::Nurse], Some((61.24, 7.12)));
    w.staff("far", "fjord", &[Role::Nurse], Some((61.30, 7.20)));
    w.staff("d1", "dal", &[Role::Nurse], None);
    w.resident("r1", "fjord", (61.2305, 7.1005), &["far"]);
    w.resident("r2", "fjord", (61.25, 7.13), &[]);
    w.resident("rd", "dal", (61.10, 7.48), &[]);
}

#[test]
fn a_restored_snapshot_behaves_exactly_like_the_engine_it_came_from() {
    let mut w = World::new(CONFIG);
    people(&mut w);
    w.at(0.0, Input::CentreStaffing { centre: id("sentral"), operators_on_duty: 1 });
    let a = w.alarm("a1", "r1", "fjord", AlarmKind::Fall);
    w.at(1.0, a);
    let busy = w.engine.snapshot().expect("between steps");
    assert_eq!(busy.open_incidents(), 1, "an incident with a live offer is in it");
    w.at(5.0, reply("near", 1, StaffReply::Accept));
    w.at(6.0, Input::StaffPosition { staff: id("mid"), position: vakt::core::Position::new(61.26, 7.15).unwrap() });
    w.at(100.0, reply("near", 1, StaffReply::Close { outcome: Outcome::Helped, note: None }));
    let snap = w.engine.snapshot().expect("quiet now");
    // It survives storage.
    let text = serde_json::to_string(&snap).unwrap();
    let back: Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(back, snap);

    let mut restored = World::new(CONFIG);
    restored.engine = Engine::from_snapshot(w.engine.config().clone(), back).unwrap();
    restored.now = w.now;
    assert_eq!(restored.engine.snapshot().unwrap(), snap, "the same state, read back");
    w.actions.clear();
    w.take_trace();
    later(&mut w);
    later(&mut restored);
    assert!(w.actions.iter().any(|a| matches!(a, Action::DuplicateIgnored { .. })), "the old alarm id is still known");
    assert!(w.actions.len() > 8, "{}", w.trace);
    assert_eq!(w.actions, restored.actions, "{}\n---\n{}", w.trace, restored.trace);
}

/// A snapshot stored before the dedupe window told alarms apart by resident (its
/// `seen` entries `[alarm_id, seen_at]`, with a `seen_order` queue beside them) still
/// restores; its alarm ids are redeliveries for any resident while they are in the
/// window, as they were when it was taken, and the alarms after it are told apart by
/// resident.
#[test]
fn a_snapshot_from_before_residents_told_alarms_apart_still_restores() {
    let mut w = World::new(CONFIG);
    people(&mut w);
    let a = w.alarm("a1", "r1", "fjord", AlarmKind::Fall);
    w.at(1.0, a);
    w.at(5.0, reply("near", 1, StaffReply::Accept));
    w.at(100.0, reply("near", 1, StaffReply::Close { outcome: Outcome::Helped, note: None }));
    let mut old: serde_json::Value = serde_json::to_value(w.engine.snapshot().unwrap()).unwrap();
    let [alarm, resident, at] = old["seen"][0].as_array().unwrap().clone().try_into().unwrap();
    assert_eq!((alarm.as_str(), resident.as_str()), (Some("a1"), Some("r1")), "{old}");
    old["seen"] = serde_json::json!([[alarm, at]]);
    old["seen_order"] = serde_json::json!([[at, alarm]]);
    let back: Snapshot = serde_json::from_value(old).unwrap();
    assert!(matches!(&back.seen[..], [SeenEntry::IdOnly(a, _)] if a.as_str() == "a1"), "{:?}", back.seen);

    let mut restored = World::new(CONFIG);
    restored.engine = Engine::from_snapshot(w.engine.config().clone(), back).unwrap();
    restored.now = w.now;
    restored.take_trace();
    let same_id = restored.alarm("a1", "r2", "fjord", AlarmKind::Safety);
    restored.at(200.0, same_id);
    let after = restored.alarm("a4", "r1", "fjord", AlarmKind::Safety);
    restored.at(201.0, after);
    let again = restored.alarm("a4", "r2", "fjord", AlarmKind::Safety);
    restored.at(202.0, again);
    let trace = restored.take_trace();
    assert!(trace.contains("duplicate alarm a1 ignored"), "{trace}");
    assert!(trace.contains("I2 raised: alarm a4") && trace.contains("I3 raised: alarm a4"), "{trace}");
}

#[test]
fn a_snapshot_that_no_longer_fits_the_configuration_is_refused() {
    let mut w = World::new(CONFIG);
    w.staff("n1", "nabo", &[Role::Nurse], None);
    let snap = w.engine.snapshot().unwrap();
    let smaller = CONFIG.replace("\"nabo\"", "\"nabo2\"");
    let config = vakt::settings::Settings::from_toml(&smaller).unwrap().engine_config().unwrap();
    let e = Engine::from_snapshot(config, snap).err().unwrap();
    assert!(e.contains("n1") && e.contains("nabo"), "{e}");
}

/// `CONFIG` with its centres swapped and Fjord moved from first municipality to last.
fn reordered(config: &str) -> String {
    let block = |start: &str, end: &str| {
        let a = config.find(start).unwrap();
        config[a..a + config[a..].find(end).unwrap()].to_owned()
    };
    let sentral = block("[[centre]]\nid = \"sentral\"", "[[centre]]\nid = \"reserve\"");
    let reserve = block("[[centre]]\nid = \"reserve\"", "[[municipality]]");
    let fjord = block("[[municipality]]\nid = \"fjord\"", "[[municipality]]\nid = \"dal\"");
    let text = config.replacen(&sentral, "", 1).replacen(&reserve, &format!("{reserve}{sentral}"), 1);
    text.replacen(&fjord, "", 1).replacen("[[driving_time]]", &format!("{fjord}[[driving_time]]"), 1)
}

/// With incidents open (a live offer in Fjord, an alarm queued at Dal's centre), the
/// snapshot restores under a configuration whose municipalities and centres come in
/// another order, and the engine carries on exactly the same.
#[test]
fn a_snapshot_with_open_incidents_restores_under_a_reordered_configuration() {
    let mut w = World::new(CONFIG);
    people(&mut w);
    w.at(0.0, Input::CentreStaffing { centre: id("sentral"), operators_on_duty: 1 });
    let a = w.alarm("a0", "r1", "fjord", AlarmKind::Fall);
    w.at(1.0, a);
    let d = w.alarm("d0", "rd", "dal", AlarmKind::Safety);
    w.at(2.0, d);
    let snap = w.engine.snapshot().expect("between steps");
    assert_eq!(snap.open_incidents(), 2);
    let text = serde_json::to_string(&snap).unwrap();

    let other = reordered(CONFIG);
    assert_ne!(other, CONFIG);
    let config = vakt::settings::Settings::from_toml(&other).unwrap().engine_config().unwrap();
    assert_eq!(config.municipalities.last().unwrap().id.as_str(), "fjord");
    let mut restored = World::new(&other);
    restored.engine = Engine::from_snapshot(config, serde_json::from_str(&text).unwrap()).unwrap();
    restored.now = w.now;
    w.actions.clear();
    w.take_trace();
    later(&mut w);
    later(&mut restored);
    assert!(w.actions.iter().any(|a| matches!(a, Action::Queued { .. })), "{}", w.trace);
    assert_eq!(w.actions, restored.actions, "{}\n---\n{}", w.trace, restored.trace);

    // A centre no open incident needs may go; one that an incident is queued at may not.
    let renamed = |centre: &str| {
        let text = CONFIG.replace(&format!("\"{centre}\""), &format!("\"{centre}2\""));
        vakt::settings::Settings::from_toml(&text).unwrap().engine_config().unwrap()
    };
    assert!(Engine::from_snapshot(renamed("reserve"), serde_json::from_str(&text).unwrap()).is_ok());
    let e = Engine::from_snapshot(renamed("sentral"), serde_json::from_str(&text).unwrap()).err().unwrap();
    assert!(e.contains("open incident I2") && e.contains("centre sentral"), "{e}");
}
