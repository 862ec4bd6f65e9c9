//! Every model's ladder as a scripted trace with exact timestamps: inputs at given
//! seconds in, the engine's actions out (seconds since the start, then the action).
//! Regenerate after a deliberate change with `UPDATE_EXPECT=1 cargo test`, and read
//! the diff: these are the rules, written down.

use expect_test::expect;
use vakt::core::*;

use crate::harness::{World, id};

/// Four municipalities, one for each situation:
/// - fjord: mobile guard room, backup = a centre's queue (Farsund's model);
/// - dal:   shared centre (sentral, which overflows to reserve);
/// - nabo:  mobile guard room, backup = fjord's home-care team;
/// - solo:  mobile guard room with no backup at all.
pub const CONFIG: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/traces.toml"));

/// fjord with three staff at ~0.3, ~1.6 and ~10 km from resident r1.
fn fjord() -> World {
    let mut w = World::new(CONFIG);
    w.staff("near", "fjord", &[Role::HealthWorker], Some((61.232, 7.102)));
    w.staff("mid", "fjord", &[Role::Nurse], Some((61.24, 7.12)));
    w.staff("far", "fjord", &[Role::Assistant], Some((61.30, 7.20)));
    w.resident("r1", "fjord", (61.2305, 7.1005), &[]);
    w.take_trace();
    w
}

fn reply(staff: &str, incident: u64, reply: StaffReply) -> Input {
    Input::StaffReply { staff: id(staff), incident: IncidentId(incident), reply }
}

#[test]
fn mobile_guard_room_decline_timeout_broadcast_accept() {
    let mut w = fjord();
    let alarm = w.alarm("a1", "r1", "fjord", AlarmKind::Safety);
    w.at(0.0, alarm);
    w.at(5.0, reply("near", 1, StaffReply::Decline));
    w.run_until(21.0); // mid lets the offer expire
    w.at(24.0, reply("far", 1, StaffReply::Accept));
    w.at(24.5, reply("mid", 1, StaffReply::Accept)); // too late
    w.at(25.0, reply("far", 1, StaffReply::EnRoute));
    w.at(600.0, reply("far", 1, StaffReply::OnSite));
    w.at(1500.0, reply("far", 1, StaffReply::Close { outcome: Outcome::Helped, note: None }));
    w.run_until(4000.0);
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (safety, high) from r1 in fjord under mobile_guard_room
        [    0.0] I1 offered to near (eta 20.0s, expires in 15.0s)
        [    5.0] I1 revoked from near: Declined
        [    5.0] I1 offered to mid (eta 160.4s, expires in 15.0s)
        [   20.0] I1 revoked from mid: Expired
        [   20.0] I1 escalated: offered to everyone on duty
        [   20.0] I1 offered to near (eta 20.0s, broadcast)
        [   20.0] I1 offered to mid (eta 160.4s, broadcast)
        [   20.0] I1 offered to far (eta 1013.2s, broadcast)
        [   24.0] I1 answered by staff far after 24.0s
        [   24.0] I1 accepted by far (24.0s after dispatch)
        [   24.0] I1 revoked from near: TakenByOther
        [   24.0] I1 revoked from mid: TakenByOther
        [   24.5] rejected input from staff mid about I1: already taken by someone else
        [   25.0] I1 far en route
        [  600.0] I1 far on site (600.0s after the alarm)
        [ 1500.0] I1 closed: helped
    "#]]
    .assert_eq(&w.take_trace());
    let k = w.kpi.total();
    assert_eq!((k.incidents, k.answered, k.answered_within_target, k.offers, k.escalations, k.closed), (1, 1, 1, 5, 1, 1));
    assert_eq!(w.engine.open_incident_count(), 0);
    assert_eq!(w.engine.poll_timeout(), None, "no timer outlives its incident");
}

#[test]
fn mobile_guard_room_backup_centre_answers_and_forwards_back() {
    let mut w = fjord();
    let alarm = w.alarm("a1", "r1", "fjord", AlarmKind::Fall);
    w.at(0.0, alarm);
    w.run_until(47.0);
    w.at(50.0, Input::OperatorAnswer { centre: id("reserve"), operator: id("op1"), incident: IncidentId(1) });
    w.at(51.0, reply("near", 1, StaffReply::Accept)); // the operator has it
    w.at(70.0, Input::OperatorForward { operator: id("op1"), incident: IncidentId(1) });
    w.at(76.0, reply("near", 1, StaffReply::Accept));
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (fall, critical) from r1 in fjord under mobile_guard_room
        [    0.0] I1 offered to near (eta 20.0s, expires in 15.0s)
        [   15.0] I1 revoked from near: Expired
        [   15.0] I1 offered to mid (eta 160.4s, expires in 15.0s)
        [   30.0] I1 revoked from mid: Expired
        [   30.0] I1 escalated: offered to everyone on duty
        [   30.0] I1 offered to near (eta 20.0s, broadcast)
        [   30.0] I1 offered to mid (eta 160.4s, broadcast)
        [   30.0] I1 offered to far (eta 1013.2s, broadcast)
        [   45.0] I1 forwarded to backup centre reserve
        [   45.0] I1 queued at reserve
        [   50.0] I1 left the queue at reserve
        [   50.0] I1 revoked from near: AnsweredByOperator
        [   50.0] I1 revoked from mid: AnsweredByOperator
        [   50.0] I1 revoked from far: AnsweredByOperator
        [   50.0] I1 answered by operator op1 at reserve after 50.0s
        [   51.0] rejected input from staff near about I1: already taken by someone else
        [   70.0] I1 forwarded to home care by operator op1
        [   70.0] I1 offered to near (eta 20.0s, expires in 15.0s)
        [   76.0] I1 accepted by near (6.0s after dispatch)
    "#]]
    .assert_eq(&w.take_trace());
    let k = w.kpi.total();
    assert_eq!((k.answered_within_target, k.backup_forwards, k.forwarded_to_home_care, k.reached_home_care), (1, 1, 1, 1));
}

#[test]
fn mobile_guard_room_with_nobody_on_duty_goes_to_backup_at_once() {
    let mut w = World::new(CONFIG);
    w.resident("r1", "fjord", (61.2305, 7.1005), &[]);
    let alarm = w.alarm("a1", "r1", "fjord", AlarmKind::Safety);
    w.at(0.0, alarm);
    w.at(12.0, Input::OperatorAnswer { centre: id("reserve"), operator: id("op1"), incident: IncidentId(1) });
    w.at(30.0, Input::OperatorResolve { operator: id("op1"), incident: IncidentId(1), note: None });
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (safety, high) from r1 in fjord under mobile_guard_room
        [    0.0] I1 forwarded to backup centre reserve
        [    0.0] I1 queued at reserve
        [   12.0] I1 left the queue at reserve
        [   12.0] I1 answered by operator op1 at reserve after 12.0s
        [   30.0] I1 resolved by operator op1
        [   30.0] I1 closed: resolved_by_centre
    "#]]
    .assert_eq(&w.take_trace());
}

#[test]
fn no_backup_keeps_looking_and_alerts_until_someone_logs_in() {
    let mut w = World::new(CONFIG);
    w.staff("solo1", "solo", &[Role::Nurse], None);
    w.resident("r9", "solo", (60.91, 7.18), &[]);
    w.take_trace();
    let alarm = w.alarm("a9", "r9", "solo", AlarmKind::Safety);
    w.at(0.0, alarm);
    w.run_until(130.0);
    w.at(131.0, Input::StaffOnDuty { staff: id("solo1"), position: None });
    w.at(140.0, reply("solo1", 1, StaffReply::Accept));
    let trace = w.take_trace();
    // Looked again every 5 s while nobody was on duty; the alerts show it.
    assert!(trace.contains("ALERT Unanswered: waiting 60.0s") && trace.contains("ALERT Unanswered: waiting 120.0s"), "{trace}");
    expect![[r#"
        [    0.0] I1 raised: alarm a9 (safety, high) from r9 in solo under mobile_guard_room
        [   30.0] I1 escalated: offered to everyone on duty
        [   60.0] I1 ALERT Unanswered: waiting 60.0s
        [  120.0] I1 ALERT Unanswered: waiting 120.0s
        [  131.0] I1 offered to solo1 (eta 133.5s, broadcast)
        [  140.0] I1 answered by staff solo1 after 140.0s
        [  140.0] I1 accepted by solo1 (140.0s after dispatch)
    "#]]
    .assert_eq(&trace);
    assert_eq!(w.kpi.total().unanswered_alerted, 1);
    assert_eq!(w.kpi.total().answered_within_target, 0);
}

/// Everyone on duty declines the broadcast: they are asked again in the next round
/// (alert_repeat later), not shut out of the incident for good.
#[test]
fn broadcast_decliners_are_asked_again_in_the_next_round() {
    let mut w = World::new(CONFIG);
    w.staff("solo1", "solo", &[Role::Nurse], Some((60.905, 7.19)));
    w.staff("solo2", "solo", &[Role::HealthWorker], Some((60.92, 7.20)));
    w.resident("r9", "solo", (60.91, 7.18), &[]);
    w.take_trace();
    let alarm = w.alarm("a9", "r9", "solo", AlarmKind::Safety);
    w.at(0.0, alarm);
    w.at(3.0, reply("solo1", 1, StaffReply::Decline));
    w.at(6.0, reply("solo2", 1, StaffReply::Decline));
    w.at(8.0, reply("solo1", 1, StaffReply::Decline));
    w.at(9.0, reply("solo2", 1, StaffReply::Decline));
    w.run_until(100.0);
    w.at(100.0, reply("solo2", 1, StaffReply::Accept));
    let trace = w.take_trace();
    expect![[r#"
        [    0.0] I1 raised: alarm a9 (safety, high) from r9 in solo under mobile_guard_room
        [    0.0] I1 offered to solo1 (eta 83.8s, expires in 15.0s)
        [    3.0] I1 revoked from solo1: Declined
        [    3.0] I1 offered to solo2 (eta 167.5s, expires in 15.0s)
        [    6.0] I1 revoked from solo2: Declined
        [    6.0] I1 escalated: offered to everyone on duty
        [    6.0] I1 offered to solo1 (eta 83.8s, broadcast)
        [    6.0] I1 offered to solo2 (eta 167.5s, broadcast)
        [    8.0] I1 revoked from solo1: Declined
        [    9.0] I1 revoked from solo2: Declined
        [   60.0] I1 ALERT Unanswered: waiting 60.0s
        [   66.0] I1 offered to solo1 (eta 83.8s, broadcast)
        [   66.0] I1 offered to solo2 (eta 167.5s, broadcast)
        [  100.0] I1 answered by staff solo2 after 100.0s
        [  100.0] I1 accepted by solo2 (100.0s after dispatch)
        [  100.0] I1 revoked from solo1: TakenByOther
    "#]]
    .assert_eq(&trace);
}

/// The dashboard's actions on a running ladder: a note, an assignment to a named staff
/// member, an escalation to everyone; and what they may not do. And vakt's own note.
#[test]
fn operators_note_assign_and_escalate() {
    let mut w = fjord();
    let alarm = w.alarm("a1", "r1", "fjord", AlarmKind::Fall);
    w.at(0.0, alarm);
    let op = || id::<OperatorId>("o1");
    w.at(2.0, Input::OperatorNote { operator: op(), incident: IncidentId(1), note: "Dottera er på veg".into() });
    w.at(3.0, Input::OperatorAssign { operator: op(), incident: IncidentId(1), staff: id("far") });
    w.at(4.0, Input::OperatorAssign { operator: op(), incident: IncidentId(1), staff: id("nobody") });
    w.at(5.0, Input::OperatorEscalate { operator: op(), incident: IncidentId(1) });
    w.at(6.0, Input::OperatorEscalate { operator: op(), incident: IncidentId(9) });
    w.at(7.0, reply("far", 1, StaffReply::Accept));
    w.at(8.0, Input::OperatorEscalate { operator: op(), incident: IncidentId(1) });
    w.at(9.0, Input::OperatorNote { operator: op(), incident: IncidentId(1), note: "Kari er framme".into() });
    w.at(10.0, Input::OperatorNote { operator: op(), incident: IncidentId(7), note: "?".into() });
    // vakt's own note (a base unit back online): on an open incident; an unknown one is left alone.
    w.at(10.0, Input::SystemNote { incident: IncidentId(1), note: "Base unit bu-1 is back online".into() });
    w.at(10.0, Input::SystemNote { incident: IncidentId(7), note: "?".into() });
    // Waiting at a centre: answer and forward it first.
    w.resident("rd", "dal", (61.10, 7.48), &[]);
    w.staff("d1", "dal", &[Role::Nurse], None);
    let alarm = w.alarm("a2", "rd", "dal", AlarmKind::Safety);
    w.at(11.0, alarm);
    w.at(12.0, Input::OperatorAssign { operator: op(), incident: IncidentId(2), staff: id("near") });
    w.at(12.0, Input::StaffOffDuty { staff: id("mid") });
    w.at(13.0, Input::OperatorAnswer { centre: id("sentral"), operator: op(), incident: IncidentId(2) });
    w.at(14.0, Input::OperatorForward { operator: op(), incident: IncidentId(2) });
    w.at(15.0, Input::OperatorAssign { operator: op(), incident: IncidentId(2), staff: id("d1") });
    // Fjord's staff are not Dal's, nor its backup.
    w.at(16.0, Input::OperatorAssign { operator: op(), incident: IncidentId(2), staff: id("mid") });
    let trace = w.take_trace();
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (fall, critical) from r1 in fjord under mobile_guard_room
        [    0.0] I1 offered to near (eta 20.0s, expires in 15.0s)
        [    2.0] I1 note from operator o1: "Dottera er på veg"
        [    3.0] I1 assigned to far by operator o1
        [    3.0] I1 offered to far (eta 1013.2s, expires in 15.0s)
        [    4.0] rejected input from operator o1 about I1: unknown staff member
        [    5.0] I1 escalated by operator o1
        [    5.0] I1 escalated: offered to everyone on duty
        [    5.0] I1 offered to mid (eta 160.4s, broadcast)
        [    6.0] rejected input from operator o1 about I9: no open incident with that id
        [    7.0] I1 answered by staff far after 7.0s
        [    7.0] I1 accepted by far (7.0s after dispatch)
        [    7.0] I1 revoked from near: TakenByOther
        [    7.0] I1 revoked from mid: TakenByOther
        [    8.0] rejected input from operator o1 about I1: not possible while the incident is accepted
        [    9.0] I1 note from operator o1: "Kari er framme"
        [   10.0] rejected input from operator o1 about I7: no open incident with that id
        [   10.0] I1 note from vakt: "Base unit bu-1 is back online"
        [   11.0] I2 raised: alarm a2 (safety, high) from rd in dal under shared_centre
        [   11.0] I2 queued at sentral
        [   12.0] rejected input from operator o1 about I2: not possible while the incident is awaiting answer
        [   13.0] I2 left the queue at sentral
        [   13.0] I2 answered by operator o1 at sentral after 2.0s
        [   14.0] I2 forwarded to home care by operator o1
        [   15.0] rejected input from operator o1 about I2: log in (go on duty) first
        [   16.0] rejected input from operator o1 about I2: the staff member is neither of the incident's municipality nor of its backup team
    "#]]
    .assert_eq(&trace);
}

#[test]
fn shared_centre_answer_resolve_forward_overflow_and_outage() {
    let mut w = World::new(CONFIG);
    w.staff("d1", "dal", &[Role::Nurse], Some((61.101, 7.481)));
    for r in ["r1", "r2", "r3", "r4"] {
        w.resident(r, "dal", (61.10, 7.48), &[]);
    }
    w.take_trace();
    let a = w.alarm("a1", "r1", "dal", AlarmKind::Safety);
    w.at(0.0, a);
    w.at(8.0, Input::OperatorAnswer { centre: id("sentral"), operator: id("op1"), incident: IncidentId(1) });
    w.at(60.0, Input::OperatorResolve { operator: id("op1"), incident: IncidentId(1), note: Some("pressed by mistake".into()) });
    let a = w.alarm("a2", "r2", "dal", AlarmKind::Fall);
    w.at(100.0, a);
    w.at(110.0, Input::OperatorAnswer { centre: id("sentral"), operator: id("op2"), incident: IncidentId(2) });
    w.at(150.0, Input::OperatorForward { operator: id("op2"), incident: IncidentId(2) });
    w.at(162.0, reply("d1", 2, StaffReply::Accept));
    // Nobody answers at sentral: after 40 s it overflows to reserve.
    let a = w.alarm("a3", "r3", "dal", AlarmKind::Safety);
    w.at(200.0, a);
    w.at(245.0, Input::OperatorAnswer { centre: id("sentral"), operator: id("op1"), incident: IncidentId(3) });
    w.at(246.0, Input::OperatorAnswer { centre: id("reserve"), operator: id("op9"), incident: IncidentId(3) });
    // sentral goes dark: what waits there moves on at once.
    let a = w.alarm("a4", "r4", "dal", AlarmKind::Safety);
    w.at(300.0, a);
    w.at(305.0, Input::CentreStaffing { centre: id("sentral"), operators_on_duty: 0 });
    w.at(320.0, Input::OperatorAnswer { centre: id("reserve"), operator: id("op9"), incident: IncidentId(4) });
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (safety, high) from r1 in dal under shared_centre
        [    0.0] I1 queued at sentral
        [    8.0] I1 left the queue at sentral
        [    8.0] I1 answered by operator op1 at sentral after 8.0s
        [   60.0] I1 resolved by operator op1
        [   60.0] I1 closed: resolved_by_centre ("pressed by mistake")
        [  100.0] I2 raised: alarm a2 (fall, critical) from r2 in dal under shared_centre
        [  100.0] I2 queued at sentral
        [  110.0] I2 left the queue at sentral
        [  110.0] I2 answered by operator op2 at sentral after 10.0s
        [  150.0] I2 forwarded to home care by operator op2
        [  150.0] I2 offered to d1 (eta 13.3s, expires in 15.0s)
        [  162.0] I2 accepted by d1 (12.0s after dispatch)
        [  200.0] I3 raised: alarm a3 (safety, high) from r3 in dal under shared_centre
        [  200.0] I3 queued at sentral
        [  240.0] I3 left the queue at sentral
        [  240.0] I3 forwarded to backup centre reserve
        [  240.0] I3 queued at reserve
        [  245.0] rejected input from operator op1 about I3: the incident is not queued at this centre
        [  246.0] I3 left the queue at reserve
        [  246.0] I3 answered by operator op9 at reserve after 46.0s
        [  300.0] I4 raised: alarm a4 (safety, high) from r4 in dal under shared_centre
        [  300.0] I4 queued at sentral
        [  305.0] I4 left the queue at sentral
        [  305.0] I4 forwarded to backup centre reserve
        [  305.0] I4 queued at reserve
        [  320.0] I4 left the queue at reserve
        [  320.0] I4 answered by operator op9 at reserve after 20.0s
    "#]]
    .assert_eq(&w.take_trace());
    let k = w.kpi.by_model()[&ResponseModel::SharedCentre].clone();
    assert_eq!((k.incidents, k.answered, k.answered_within_target, k.resolved_by_centre, k.forwarded_to_home_care, k.backup_forwards), (4, 4, 4, 1, 1, 2));
    assert_eq!(k.staff_accept_after_dispatch.percentile(50.0), Some(std::time::Duration::from_secs(12)));
}

#[test]
fn duplicates_repeats_and_cancel() {
    let mut w = fjord();
    let first = w.alarm("a1", "r1", "fjord", AlarmKind::Door);
    w.at(0.0, first.clone());
    w.at(1.0, first); // redelivery
    let repeat = w.alarm("a2", "r1", "fjord", AlarmKind::Fall);
    w.at(3.0, repeat); // same resident, higher priority: joins I1, no new offers
    w.at(6.0, Input::Cancel { resident: id("r1") });
    w.at(7.0, Input::Cancel { resident: id("r1") });
    w.at(8.0, reply("near", 1, StaffReply::Accept));
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (door, high) from r1 in fjord under mobile_guard_room
        [    0.0] I1 offered to near (eta 20.0s, expires in 15.0s)
        [    1.0] duplicate alarm a1 ignored
        [    3.0] I1 attached alarm a2, priority raised to critical
        [    6.0] I1 revoked from near: Cancelled
        [    6.0] I1 closed: cancelled
        [    7.0] rejected input from resident r1: no open incident to cancel
        [    8.0] rejected input from staff near about I1: no open incident with that id
    "#]]
    .assert_eq(&w.take_trace());
    let k = w.kpi.total();
    assert_eq!((k.alarms, k.incidents, k.attached, k.cancelled_before_answer, k.unanswered()), (2, 1, 1, 1, 0));
    assert_eq!(w.kpi.duplicates, 1);
}

/// Gateways number their alarms independently (a SIA receiver's 0001–9999, a device's
/// counter after a restart): the same alarm id for another resident is another alarm,
/// raised, never dropped as a redelivery; for the same resident it is a redelivery.
#[test]
fn the_same_alarm_id_for_another_resident_is_another_alarm() {
    let mut w = fjord();
    w.resident("r2", "fjord", (61.2310, 7.1010), &[]);
    w.take_trace();
    let first = w.alarm("0017", "r1", "fjord", AlarmKind::Safety);
    let other = w.alarm("0017", "r2", "fjord", AlarmKind::Safety);
    w.at(0.0, first.clone());
    w.at(1.0, other.clone());
    w.at(2.0, first);
    w.at(3.0, other);
    expect![[r#"
        [    0.0] I1 raised: alarm 0017 (safety, high) from r1 in fjord under mobile_guard_room
        [    0.0] I1 offered to near (eta 20.0s, expires in 15.0s)
        [    1.0] I2 raised: alarm 0017 (safety, high) from r2 in fjord under mobile_guard_room
        [    1.0] I2 offered to near (eta 13.3s, expires in 15.0s)
        [    2.0] duplicate alarm 0017 ignored
        [    3.0] duplicate alarm 0017 ignored
    "#]]
    .assert_eq(&w.take_trace());
    let k = w.kpi.total();
    assert_eq!((k.alarms, k.incidents, w.kpi.duplicates), (2, 2, 2));
}

#[test]
fn backup_team_joins_the_ladder_with_matrix_travel_time() {
    let mut w = World::new(CONFIG);
    w.staff("n1", "nabo", &[Role::Nurse], Some((61.09, 6.60)));
    w.staff("f1", "fjord", &[Role::Nurse], Some((61.23, 7.10)));
    w.resident("rn", "nabo", (61.095, 6.59), &[]);
    w.take_trace();
    let a = w.alarm("a1", "rn", "nabo", AlarmKind::Safety);
    w.at(0.0, a);
    w.run_until(46.0);
    w.at(50.0, reply("f1", 1, StaffReply::Accept));
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (safety, high) from rn in nabo under mobile_guard_room
        [    0.0] I1 offered to n1 (eta 83.5s, expires in 15.0s)
        [   15.0] I1 revoked from n1: Expired
        [   15.0] I1 escalated: offered to everyone on duty
        [   15.0] I1 offered to n1 (eta 83.5s, broadcast)
        [   45.0] I1 forwarded to backup team fjord
        [   45.0] I1 offered to f1 (eta 3240.0s, broadcast)
        [   50.0] I1 answered by staff f1 after 50.0s
        [   50.0] I1 accepted by f1 (50.0s after dispatch)
        [   50.0] I1 revoked from n1: TakenByOther
    "#]]
    .assert_eq(&w.take_trace());
}

/// An operator may assign an incident to a staff member of its own municipality or of
/// its backup team, and to no one else: the offer carries the resident's address and
/// notes.
#[test]
fn an_operator_assigns_only_within_the_municipality_and_its_backup_team() {
    let mut w = World::new(CONFIG);
    w.staff("n1", "nabo", &[Role::Nurse], Some((61.09, 6.60)));
    w.staff("f1", "fjord", &[Role::Nurse], Some((61.23, 7.10)));
    w.staff("s1", "solo", &[Role::Nurse], Some((60.90, 7.19)));
    w.resident("rn", "nabo", (61.095, 6.59), &[]);
    w.resident("rs", "solo", (60.905, 7.19), &[]);
    w.take_trace();
    let (a, b) = (w.alarm("a1", "rn", "nabo", AlarmKind::Safety), w.alarm("a2", "rs", "solo", AlarmKind::Safety));
    w.at(0.0, a);
    w.at(0.0, b);
    w.take_trace();
    let op = || id::<OperatorId>("o1");
    w.at(1.0, Input::OperatorAssign { operator: op(), incident: IncidentId(1), staff: id("s1") });
    w.at(2.0, Input::OperatorAssign { operator: op(), incident: IncidentId(1), staff: id("f1") });
    w.at(3.0, Input::OperatorAssign { operator: op(), incident: IncidentId(2), staff: id("f1") });
    expect![[r#"
        [    1.0] rejected input from operator o1 about I1: the staff member is neither of the incident's municipality nor of its backup team
        [    2.0] I1 assigned to f1 by operator o1
        [    2.0] I1 offered to f1 (eta 3240.0s, expires in 15.0s)
        [    3.0] rejected input from operator o1 about I2: the staff member is neither of the incident's municipality nor of its backup team
    "#]]
    .assert_eq(&w.take_trace());
}

#[test]
fn roles_regular_helpers_busy_staff_and_logout() {
    let mut w = fjord();
    // near is a health worker, mid a nurse, far an assistant. Medication needs a nurse.
    let a = w.alarm("a1", "r1", "fjord", AlarmKind::Medication);
    w.at(0.0, a);
    w.at(2.0, reply("mid", 1, StaffReply::Accept));
    // r2 knows far (10 km away, ~18 min by road): near is closer by more than 2 min,
    // so near gets it. r3 knows mid, who is busy now: skipped, so near again.
    w.resident("r2", "fjord", (61.2305, 7.1005), &["far"]);
    w.resident("r3", "fjord", (61.2305, 7.1005), &["mid", "near"]);
    let a = w.alarm("a2", "r2", "fjord", AlarmKind::Safety);
    w.at(10.0, a);
    w.at(12.0, Input::StaffOffDuty { staff: id("near") }); // logs out holding the offer
    w.at(13.0, reply("near", 2, StaffReply::Accept)); // stale
    w.at(14.0, reply("far", 2, StaffReply::Accept));
    w.at(20.0, Input::StaffOnDuty { staff: id("near"), position: None });
    let a = w.alarm("a3", "r3", "fjord", AlarmKind::Safety);
    w.at(30.0, a);
    w.at(31.0, reply("ghost", 3, StaffReply::Accept));
    w.at(32.0, reply("far", 3, StaffReply::Accept));
    w.at(33.0, reply("far", 99, StaffReply::Accept));
    w.at(34.0, reply("near", 3, StaffReply::OnSite));
    w.at(35.0, reply("mid", 2, StaffReply::Close { outcome: Outcome::Helped, note: None }));
    w.at(36.0, reply("mid", 1, StaffReply::Close { outcome: Outcome::Helped, note: None }));
    // r5 lives nearer to near (~33 s) than to mid (~108 s) but knows mid: within the 120 s extra, so mid.
    w.resident("r5", "fjord", (61.234, 7.106), &["mid"]);
    let a = w.alarm("a5", "r5", "fjord", AlarmKind::Safety);
    w.at(40.0, a);
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (medication, normal) from r1 in fjord under mobile_guard_room
        [    0.0] I1 offered to mid (eta 160.4s, expires in 15.0s)
        [    2.0] I1 answered by staff mid after 2.0s
        [    2.0] I1 accepted by mid (2.0s after dispatch)
        [   10.0] I2 raised: alarm a2 (safety, high) from r2 in fjord under mobile_guard_room
        [   10.0] I2 offered to near (eta 20.0s, expires in 15.0s)
        [   12.0] I2 revoked from near: StaffOffDuty
        [   12.0] I2 offered to far (eta 1013.2s, expires in 15.0s)
        [   13.0] rejected input from staff near about I2: this incident is not offered to you
        [   14.0] I2 answered by staff far after 4.0s
        [   14.0] I2 accepted by far (4.0s after dispatch)
        [   30.0] I3 raised: alarm a3 (safety, high) from r3 in fjord under mobile_guard_room
        [   30.0] I3 offered to near (eta 20.0s, expires in 15.0s)
        [   31.0] rejected input from staff ghost: unknown staff member
        [   32.0] rejected input from staff far about I3: this incident is not offered to you
        [   33.0] rejected input from staff far about I99: no open incident with that id
        [   34.0] rejected input from staff near about I3: not possible while the incident is awaiting answer
        [   35.0] rejected input from staff mid about I2: this incident is assigned to someone else
        [   36.0] I1 closed: helped
        [   40.0] I4 raised: alarm a5 (safety, high) from r5 in fjord under mobile_guard_room
        [   40.0] I4 offered to mid (eta 108.3s, expires in 15.0s)
    "#]]
    .assert_eq(&w.take_trace());
}

#[test]
fn without_the_known_helper_the_nearest_gets_it() {
    // The control for the regular-helper rule above: same place, no helper.
    let mut w = fjord();
    w.resident("r5", "fjord", (61.234, 7.106), &[]);
    let a = w.alarm("a5", "r5", "fjord", AlarmKind::Safety);
    w.at(0.0, a);
    let trace = w.take_trace();
    assert!(trace.contains("I1 offered to near (eta 33"), "{trace}");
}

#[test]
fn centre_model_falls_back_to_its_team_when_every_centre_is_down() {
    // dal2: shared centre `reserve` (no backup centre), municipality backup = its own
    // neighbour team fjord. With reserve down, fjord's staff are offered the alarm at once.
    let config = CONFIG.replace(
        "[[driving_time]]",
        "[[municipality]]\nid = \"dal2\"\nname = \"Dal 2\"\npopulation = 100\ncentre = { lat = 61.23, lon = 7.11 }\nmodel = \"private_centre\"\nresponse_centre = \"reserve\"\nbackup = { team = \"fjord\" }\n\n[[driving_time]]",
    );
    let mut w = World::new(&config);
    w.staff("f1", "fjord", &[Role::Nurse], Some((61.23, 7.10)));
    w.resident("r", "dal2", (61.231, 7.111), &[]);
    w.at(0.0, Input::CentreStaffing { centre: id("reserve"), operators_on_duty: 0 });
    w.take_trace();
    let a = w.alarm("a1", "r", "dal2", AlarmKind::Safety);
    w.at(1.0, a);
    w.run_until(100.0);
    w.at(101.0, reply("f1", 1, StaffReply::Accept));
    expect![[r#"
        [    1.0] I1 raised: alarm a1 (safety, high) from r in dal2 under private_centre
        [    1.0] I1 queued at reserve
        [    1.0] I1 forwarded to backup team fjord
        [    1.0] I1 offered to f1 (eta 64.7s, expires in 15.0s)
        [   16.0] I1 revoked from f1: Expired
        [   16.0] I1 escalated: offered to everyone on duty
        [   16.0] I1 offered to f1 (eta 64.7s, broadcast)
        [   61.0] I1 ALERT Unanswered: waiting 60.0s
        [  101.0] I1 answered by staff f1 after 100.0s
        [  101.0] I1 accepted by f1 (100.0s after dispatch)
        [  101.0] I1 left the queue at reserve
    "#]]
    .assert_eq(&w.take_trace());
    assert_eq!(w.kpi.total().backup_forwards, 1, "one backup step, reported once");
}

#[test]
fn the_three_centre_models_run_the_same_queue() {
    // Shared, private and own centres differ in who runs and pays for them, not in
    // the rules: the same script gives the same trace under each.
    let mut traces = Vec::new();
    for (model, kind) in [("shared_centre", "shared"), ("private_centre", "private"), ("own_centre", "own")] {
        let config = CONFIG
            .replace("model = \"shared_centre\"\nresponse_centre = \"sentral\"", &format!("model = \"{model}\"\nresponse_centre = \"sentral\""))
            .replace("kind = \"shared\"", &format!("kind = \"{kind}\""));
        let mut w = World::new(&config);
        w.staff("d1", "dal", &[Role::Nurse], Some((61.101, 7.481)));
        w.resident("r1", "dal", (61.10, 7.48), &[]);
        w.take_trace();
        let a = w.alarm("a1", "r1", "dal", AlarmKind::Fall);
        w.at(0.0, a);
        w.at(9.0, Input::OperatorAnswer { centre: id("sentral"), operator: id("op"), incident: IncidentId(1) });
        w.at(50.0, Input::OperatorForward { operator: id("op"), incident: IncidentId(1) });
        w.run_until(200.0); // nobody accepts: the dispatch clock alerts
        w.at(201.0, reply("d1", 1, StaffReply::Accept));
        let trace = w.take_trace();
        assert!(trace.contains(&format!("under {model}")), "{trace}");
        traces.push(trace.replace(model, "MODEL"));
        assert_eq!(
            w.kpi.by_model()[&[ResponseModel::SharedCentre, ResponseModel::PrivateCentre, ResponseModel::OwnCentre][traces.len() - 1]].answered_within_target,
            1
        );
    }
    assert_eq!(traces[0], traces[1]);
    assert_eq!(traces[1], traces[2]);
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (fall, critical) from r1 in dal under MODEL
        [    0.0] I1 queued at sentral
        [    9.0] I1 left the queue at sentral
        [    9.0] I1 answered by operator op at sentral after 9.0s
        [   50.0] I1 forwarded to home care by operator op
        [   50.0] I1 offered to d1 (eta 13.3s, expires in 15.0s)
        [   65.0] I1 revoked from d1: Expired
        [   65.0] I1 escalated: offered to everyone on duty
        [   65.0] I1 offered to d1 (eta 13.3s, broadcast)
        [  110.0] I1 ALERT NotAccepted: waiting 60.0s
        [  170.0] I1 ALERT NotAccepted: waiting 120.0s
        [  201.0] I1 accepted by d1 (151.0s after dispatch)
    "#]]
    .assert_eq(&traces[0]);
}

/// An incident set aside (a driver does so when its timer made the engine fail): no
/// timer, offer, escalation or alert from the engine any more, in a queue or on a
/// ladder; the offers already out, staff replies and operator actions still work.
#[test]
fn a_set_aside_incident_is_left_to_people() {
    let mut w = fjord();
    w.resident("rd", "dal", (61.10, 7.48), &[]);
    let alarm = w.alarm("a1", "r1", "fjord", AlarmKind::Safety);
    w.at(0.0, alarm);
    let alarm = w.alarm("a2", "rd", "dal", AlarmKind::Safety);
    w.at(1.0, alarm);
    let aside = |incident: u64| Input::SetAside { incident: IncidentId(incident), reason: "a fault".into() };
    w.at(3.0, aside(1));
    w.at(3.0, aside(2));
    w.at(4.0, aside(1)); // already: nothing happens
    w.at(5.0, aside(9));
    assert_eq!(w.engine.poll_timeout(), None, "no timer for either");
    assert!(w.engine.incident(IncidentId(1)).unwrap().set_aside);
    // Restored from a snapshot, it stays aside.
    let config = w.engine.config().clone();
    w.engine = Engine::from_snapshot(config, w.engine.snapshot().unwrap()).unwrap();
    assert!(w.engine.incident(IncidentId(2)).unwrap().set_aside);
    w.run_until(900.0);
    let op = || id::<OperatorId>("o1");
    w.at(901.0, Input::OperatorEscalate { operator: op(), incident: IncidentId(1) });
    w.at(902.0, reply("mid", 1, StaffReply::Accept));
    w.at(903.0, Input::OperatorAnswer { centre: id("sentral"), operator: op(), incident: IncidentId(2) });
    w.at(904.0, Input::OperatorResolve { operator: op(), incident: IncidentId(2), note: None });
    w.run_until(2000.0);
    expect![[r#"
        [    0.0] I1 raised: alarm a1 (safety, high) from r1 in fjord under mobile_guard_room
        [    0.0] I1 offered to near (eta 20.0s, expires in 15.0s)
        [    1.0] I2 raised: alarm a2 (safety, high) from rd in dal under shared_centre
        [    1.0] I2 queued at sentral
        [    3.0] I1 SET ASIDE, to be handled by hand: a fault
        [    3.0] I2 SET ASIDE, to be handled by hand: a fault
        [    5.0] rejected input about I9: no open incident with that id
        [  901.0] I1 escalated by operator o1
        [  901.0] I1 escalated: offered to everyone on duty
        [  901.0] I1 offered to mid (eta 160.4s, broadcast)
        [  901.0] I1 offered to far (eta 1013.2s, broadcast)
        [  902.0] I1 answered by staff mid after 902.0s
        [  902.0] I1 accepted by mid (902.0s after dispatch)
        [  902.0] I1 revoked from near: TakenByOther
        [  902.0] I1 revoked from far: TakenByOther
        [  903.0] I2 left the queue at sentral
        [  903.0] I2 answered by operator o1 at sentral after 902.0s
        [  904.0] I2 resolved by operator o1
        [  904.0] I2 closed: resolved_by_centre
    "#]]
    .assert_eq(&w.take_trace());
    assert_eq!(w.engine.poll_timeout(), None);
}
