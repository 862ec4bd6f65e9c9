//! Property tests: random interleavings of alarms, logins, logouts, moves, accepts,
//! declines, operator actions, outages and waiting. After every step the engine's
//! invariants hold (`World` checks them on every drain: every incident nobody has
//! has a timer; no staff member holds two live offers for one incident; no live
//! offer to anyone off duty), and at the end the counts agree with an independent
//! count of the inputs.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use vakt::core::*;

use crate::harness::{World, id, pos};
use crate::traces::CONFIG;

const STAFF: [(&str, &str); 6] = [("f1", "fjord"), ("f2", "fjord"), ("f3", "fjord"), ("d1", "dal"), ("n1", "nabo"), ("s1", "solo")];
const RESIDENTS: [(&str, &str); 5] = [("rf1", "fjord"), ("rf2", "fjord"), ("rd1", "dal"), ("rn1", "nabo"), ("rs1", "solo")];
const CENTRES: [&str; 2] = ["sentral", "reserve"];

#[derive(Debug, Clone)]
enum Op {
    Alarm { alarm: u8, resident: usize, kind: usize },
    Cancel { resident: usize },
    Login { staff: usize, at: Option<(f64, f64)> },
    Logout { staff: usize },
    Move { staff: usize, at: (f64, f64) },
    Reply { staff: usize, incident: u64, reply: u8 },
    Answer { centre: usize, incident: u64 },
    Resolve { incident: u64 },
    Forward { incident: u64 },
    Assign { incident: u64, staff: usize },
    Escalate { incident: u64 },
    Note { incident: u64 },
    SystemNote { incident: u64 },
    Staffing { centre: usize, operators: u32 },
    SetAside { incident: u64 },
}

fn near_fjord() -> impl Strategy<Value = (f64, f64)> {
    (61.0..61.4f64, 6.5..7.5f64)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..40u8, 0..RESIDENTS.len(), 0..AlarmKind::ALL.len()).prop_map(|(alarm, resident, kind)| Op::Alarm { alarm, resident, kind }),
        1 => (0..RESIDENTS.len()).prop_map(|resident| Op::Cancel { resident }),
        2 => (0..STAFF.len(), proptest::option::of(near_fjord())).prop_map(|(staff, at)| Op::Login { staff, at }),
        1 => (0..STAFF.len()).prop_map(|staff| Op::Logout { staff }),
        1 => (0..STAFF.len(), near_fjord()).prop_map(|(staff, at)| Op::Move { staff, at }),
        6 => (0..STAFF.len(), 1..12u64, 0..5u8).prop_map(|(staff, incident, reply)| Op::Reply { staff, incident, reply }),
        2 => (0..CENTRES.len(), 1..12u64).prop_map(|(centre, incident)| Op::Answer { centre, incident }),
        1 => (1..12u64).prop_map(|incident| Op::Resolve { incident }),
        1 => (1..12u64).prop_map(|incident| Op::Forward { incident }),
        1 => (1..12u64, 0..STAFF.len()).prop_map(|(incident, staff)| Op::Assign { incident, staff }),
        1 => (1..12u64).prop_map(|incident| Op::Escalate { incident }),
        1 => (1..12u64).prop_map(|incident| Op::Note { incident }),
        1 => (1..12u64).prop_map(|incident| Op::SystemNote { incident }),
        1 => (0..CENTRES.len(), 0..3u32).prop_map(|(centre, operators)| Op::Staffing { centre, operators }),
        1 => (1..12u64).prop_map(|incident| Op::SetAside { incident }),
    ]
}

fn input(w: &World, op: &Op) -> Input {
    match op {
        Op::Alarm { alarm, resident, kind } => {
            let (r, m) = RESIDENTS[*resident];
            // The alarm id fixes resident and kind, as a real device's would.
            let mut a = w.alarm(&format!("a{alarm}"), r, m, AlarmKind::ALL[*kind]);
            if let Input::Alarm(al) = &mut a {
                let (r, m) = RESIDENTS[*alarm as usize % RESIDENTS.len()];
                al.resident = id(r);
                al.municipality = id(m);
            }
            a
        }
        Op::Cancel { resident } => Input::Cancel { resident: id(RESIDENTS[*resident].0) },
        Op::Login { staff, at } => Input::StaffOnDuty { staff: id(STAFF[*staff].0), position: at.map(|(a, b)| pos(a, b)) },
        Op::Logout { staff } => Input::StaffOffDuty { staff: id(STAFF[*staff].0) },
        Op::Move { staff, at } => Input::StaffPosition { staff: id(STAFF[*staff].0), position: pos(at.0, at.1) },
        Op::Reply { staff, incident, reply } => Input::StaffReply {
            staff: id(STAFF[*staff].0),
            incident: IncidentId(*incident),
            reply: match reply {
                0 => StaffReply::Accept,
                1 => StaffReply::Decline,
                2 => StaffReply::EnRoute,
                3 => StaffReply::OnSite,
                _ => StaffReply::Close { outcome: Outcome::Helped, note: None },
            },
        },
        Op::Answer { centre, incident } => Input::OperatorAnswer { centre: id(CENTRES[*centre]), operator: id("op"), incident: IncidentId(*incident) },
        Op::Resolve { incident } => Input::OperatorResolve { operator: id("op"), incident: IncidentId(*incident), note: None },
        Op::Forward { incident } => Input::OperatorForward { operator: id("op"), incident: IncidentId(*incident) },
        Op::Assign { incident, staff } => Input::OperatorAssign { operator: id("op"), incident: IncidentId(*incident), staff: id(STAFF[*staff].0) },
        Op::Escalate { incident } => Input::OperatorEscalate { operator: id("op"), incident: IncidentId(*incident) },
        Op::Note { incident } => Input::OperatorNote { operator: id("op"), incident: IncidentId(*incident), note: "note".into() },
        Op::SystemNote { incident } => Input::SystemNote { incident: IncidentId(*incident), note: "back online".into() },
        Op::Staffing { centre, operators } => Input::CentreStaffing { centre: id(CENTRES[*centre]), operators_on_duty: *operators },
        Op::SetAside { incident } => Input::SetAside { incident: IncidentId(*incident), reason: "a fault".into() },
    }
}

fn world() -> World {
    let mut w = World::new(CONFIG);
    for (s, team) in STAFF {
        w.staff(s, team, &[Role::Nurse], None);
    }
    w.staff("f4", "fjord", &[Role::Assistant], Some((61.23, 7.10)));
    for (i, (r, m)) in RESIDENTS.iter().enumerate() {
        let helpers: &[&str] = if i == 0 { &["f2"] } else { &[] };
        w.resident(r, m, (61.2 + i as f64 * 0.01, 7.1), helpers);
    }
    w
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_keep_every_promise(steps in proptest::collection::vec((0..40u32, op()), 1..120)) {
        let mut w = world();
        let mut t = 0.0;
        let mut distinct_alarms = BTreeSet::new();
        for (gap, op) in &steps {
            t += *gap as f64;
            // An alarm id fixes its resident (see `input`): distinct ids are distinct alarms.
            if let Op::Alarm { alarm, .. } = op {
                distinct_alarms.insert(*alarm);
            }
            let inp = input(&w, op);
            w.at(t, inp); // World checks the invariants after every step
        }
        w.run_until(t + 600.0);

        // First accept wins: one answer and one accept per incident at most, and
        // nobody accepted is left with an accepted-by-someone-else incident.
        let mut answered: BTreeMap<IncidentId, usize> = BTreeMap::new();
        let mut accepted: BTreeMap<IncidentId, usize> = BTreeMap::new();
        let mut raised = 0u64;
        let mut offers = 0u64;
        for a in &w.actions {
            match a {
                Action::Answered { incident, .. } => *answered.entry(*incident).or_default() += 1,
                Action::Accepted { incident, .. } => *accepted.entry(*incident).or_default() += 1,
                Action::Raised { .. } => raised += 1,
                Action::Offered { .. } => offers += 1,
                _ => {}
            }
        }
        prop_assert!(answered.values().all(|&n| n == 1), "answered twice: {answered:?}");
        prop_assert!(accepted.values().all(|&n| n == 1), "accepted twice: {accepted:?}");

        // The KPIs add up: every alarm counted exactly once.
        let k = w.kpi.total();
        prop_assert_eq!(k.alarms, distinct_alarms.len() as u64, "one count per distinct alarm id");
        prop_assert_eq!(k.incidents, raised);
        prop_assert_eq!(k.alarms, k.incidents + k.attached);
        prop_assert_eq!(k.offers, offers);
        prop_assert_eq!(k.incidents, k.answered + k.cancelled_before_answer + k.unanswered());
        prop_assert_eq!(k.answer_time.count(), k.answered);
        let open_unanswered = w.engine.open_incidents().filter(|i| i.answered_at.is_none()).count() as u64;
        prop_assert_eq!(k.unanswered(), open_unanswered);
        prop_assert_eq!(w.kpi.open_incidents(), w.engine.open_incident_count());

        // No alarm without a next step: whatever nobody has still has a timer, unless it
        // was set aside for people (and then it has none).
        for i in w.engine.open_incidents() {
            if i.stage.needs_a_human() && !i.set_aside {
                prop_assert!(i.next_deadline.is_some(), "{:?}", i);
            }
            if i.set_aside {
                prop_assert!(i.next_deadline.is_none(), "{:?}", i);
            }
        }
    }

    /// At any moment of a random run (incidents open, offers live, alarms queued, or
    /// quiet), the engine's snapshot, stored and restored, carries on exactly as the
    /// engine it came from.
    #[test]
    fn a_restored_snapshot_carries_on_exactly_the_same(steps in proptest::collection::vec((0..40u32, op()), 1..120), cut in 0..10_000usize) {
        let k = cut % steps.len();
        let mut a = world();
        let mut t = 0.0;
        for (gap, op) in &steps[..=k] {
            t += *gap as f64;
            let inp = input(&a, op);
            a.at(t, inp);
        }
        let snapshot = a.engine.snapshot().expect("no action waits between steps");
        let open = snapshot.open_incidents();
        prop_assert_eq!(open, a.engine.open_incident_count());
        let text = serde_json::to_string(&snapshot).unwrap();
        let mut b = world();
        b.engine = Engine::from_snapshot(a.engine.config().clone(), serde_json::from_str(&text).unwrap()).unwrap();
        // Restored to the last bit: the same snapshot again, positions and all.
        let again: serde_json::Value = serde_json::to_value(b.engine.snapshot().expect("restored between steps")).unwrap();
        prop_assert_eq!(again, serde_json::from_str::<serde_json::Value>(&text).unwrap());
        b.now = a.now;
        a.actions.clear();
        for (gap, op) in &steps[k + 1..] {
            t += *gap as f64;
            let ia = input(&a, op);
            a.at(t, ia);
            let ib = input(&b, op);
            b.at(t, ib);
        }
        a.run_until(t + 600.0);
        b.run_until(t + 600.0);
        prop_assert_eq!(&a.actions, &b.actions, "{}\n---\n{}", a.trace, b.trace);
    }

    #[test]
    fn with_staff_who_always_accept_every_alarm_is_answered(alarms in proptest::collection::vec((0..RESIDENTS.len(), 0..AlarmKind::ALL.len(), 0..120u32), 1..40)) {
        // Everyone on duty accepts whatever is offered; operators answer and forward.
        let mut w = world();
        for (s, _) in STAFF {
            w.at(0.0, Input::StaffOnDuty { staff: id(s), position: None });
        }
        let mut t = 1.0;
        for (n, (r, kind, gap)) in alarms.iter().enumerate() {
            t += *gap as f64;
            let (res, m) = RESIDENTS[*r];
            let a = w.alarm(&format!("x{n}"), res, m, AlarmKind::ALL[*kind]);
            w.at(t, a);
            // Everyone reacts 3 s later: operators take what is queued, staff accept offers.
            t += 3.0;
            w.run_until(t);
            let open: Vec<IncidentView> = w.engine.open_incidents().collect();
            for i in open {
                if let Some(c) = &i.queued_at {
                    w.at(t, Input::OperatorAnswer { centre: c.clone(), operator: id("op"), incident: i.id });
                    w.at(t, Input::OperatorForward { operator: id("op"), incident: i.id });
                }
                if let Some(s) = w.engine.incident(i.id).and_then(|i| i.live_offers.first().cloned()) {
                    w.at(t, Input::StaffReply { staff: s.clone(), incident: i.id, reply: StaffReply::Accept });
                    w.at(t, Input::StaffReply { staff: s, incident: i.id, reply: StaffReply::Close { outcome: Outcome::Helped, note: None } });
                }
            }
        }
        let k = w.kpi.total();
        prop_assert_eq!(k.unanswered(), 0, "{}", w.trace);
        prop_assert_eq!(k.answered, k.incidents);
        prop_assert_eq!(k.answered_within_target, k.answered, "all answered in 3 s");
    }
}
