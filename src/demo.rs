//! `vakt demo`: a morning in the configured municipalities, played through the core
//! engine by a small discrete-event driver with scripted people, so a new user sees
//! what vakt does without a broker, a database or a phone.
//!
//! The people are deterministic (a fixed-seed generator, no ambient randomness): the
//! same configuration gives the same morning. Staff accept most offers within 4 to
//! 20 s, decline one in five, ignore one in eight; operators answer within 8 to 30 s,
//! resolve a third of the alarms on the phone and forward the rest.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::time::Duration;

use crate::core::*;

/// A small, fixed-seed generator (SplitMix64), for the demo's people only.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn id<T: TryFrom<String>>(s: String) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s).expect("demo ids are valid")
}

fn near(d: &mut Dice, p: Position, km: f64) -> Position {
    let dlat = (d.unit() - 0.5) * 2.0 * km / 111.0;
    let dlon = (d.unit() - 0.5) * 2.0 * km / (111.0 * p.lat().to_radians().cos());
    Position::new((p.lat() + dlat).clamp(-90.0, 90.0), (p.lon() + dlon).clamp(-180.0, 180.0)).expect("clamped")
}

/// Inputs waiting for their time, in (time, order of scheduling) order.
#[derive(Default)]
struct Agenda {
    heap: BinaryHeap<Reverse<(Timestamp, usize)>>,
    inputs: Vec<Option<Input>>,
}

impl Agenda {
    fn schedule(&mut self, at: Timestamp, input: Input) {
        self.heap.push(Reverse((at, self.inputs.len())));
        self.inputs.push(Some(input));
    }
    fn next_at(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }
    fn pop(&mut self) -> Input {
        let Reverse((_, i)) = self.heap.pop().expect("caller peeked");
        self.inputs[i].take().expect("each input once")
    }
}

/// Plays the demo morning and writes the action trace and the KPI table to `out`.
///
/// Long: the morning is one script (the people, the alarms, the replies, the trace),
/// read top to bottom as it happens.
pub fn run(config: EngineConfig, out: &mut impl Write) -> std::io::Result<KpiCollector> {
    let start = Timestamp::parse_rfc3339("2024-03-01T07:55:00Z").expect("valid");
    let mut kpi = KpiCollector::new(config.target_answer);
    let mut dice = Dice(2024);
    let munis: Vec<(MunicipalityId, Position)> = config.municipalities.iter().map(|m| (m.id.clone(), m.centre)).collect();
    let mut engine = Engine::new(config);
    let mut agenda = Agenda::default();

    let mut residents = Vec::new();
    for (m, centre) in &munis {
        for i in 0..4 {
            let roles = if i % 2 == 0 { vec![Role::Nurse] } else { vec![Role::HealthWorker] };
            let sid: StaffId = id(format!("{m}-staff-{i}"));
            engine.handle_input(start, Input::UpsertStaff(Staff { id: sid.clone(), municipality: m.clone(), roles: Roles::of(&roles) }));
            engine.handle_input(start, Input::StaffOnDuty { staff: sid, position: Some(near(&mut dice, *centre, 8.0)) });
        }
        for i in 0..20 {
            let rid: ResidentId = id(format!("{m}-resident-{i}"));
            let helpers = vec![id(format!("{m}-staff-{}", i % 4))];
            engine.handle_input(
                start,
                Input::UpsertResident(Resident {
                    id: rid.clone(),
                    municipality: m.clone(),
                    home: near(&mut dice, *centre, 12.0),
                    regular_helpers: helpers,
                    address: String::new(),
                    notes: String::new(),
                }),
            );
            residents.push((rid, m.clone()));
        }
    }
    let kinds = [AlarmKind::Safety, AlarmKind::Safety, AlarmKind::Safety, AlarmKind::Fall, AlarmKind::Door, AlarmKind::Medication, AlarmKind::BatteryLow];
    for n in 0..24 {
        let at = start + Duration::from_secs(300 + dice.range(0, 3 * 3600));
        let (rid, m) = residents[dice.range(0, residents.len() as u64 - 1) as usize].clone();
        let kind = kinds[dice.range(0, kinds.len() as u64 - 1) as usize];
        let alarm =
            Alarm { id: id(format!("demo-alarm-{n}")), resident: rid, municipality: m, kind, priority: None, raised_at: at, position: None, text: None };
        agenda.schedule(at, Input::Alarm(alarm));
    }
    while engine.poll_action().is_some() {}

    writeln!(
        out,
        "vakt demo: {} municipalities, {} staff on duty, 24 alarms over three hours of a Friday morning (UTC)\n",
        munis.len(),
        engine.on_duty_count()
    )?;
    loop {
        let next_input = agenda.next_at();
        let next_timer = engine.poll_timeout();
        let now = match (next_input, next_timer) {
            (None, None) => break,
            (Some(a), Some(b)) if b < a => {
                engine.handle_timeout(b);
                b
            }
            (None, Some(b)) => {
                engine.handle_timeout(b);
                b
            }
            (Some(a), _) => {
                engine.handle_input(a, agenda.pop());
                a
            }
        };
        while let Some(action) = engine.poll_action() {
            kpi.observe(&action);
            let t = action.at().to_string();
            writeln!(out, "{}  {action}", &t[11..19])?;
            // The scripted people react.
            match &action {
                Action::Offered { incident, staff, .. } => {
                    let roll = dice.unit();
                    let reply = if roll < 0.2 {
                        Some(StaffReply::Decline)
                    } else if roll < 0.325 {
                        None
                    } else {
                        Some(StaffReply::Accept)
                    };
                    if let Some(reply) = reply {
                        let at = now + Duration::from_secs(dice.range(4, 20));
                        agenda.schedule(at, Input::StaffReply { staff: staff.clone(), incident: *incident, reply });
                    }
                }
                Action::Accepted { incident, staff, .. } => {
                    let s = |secs| now + Duration::from_secs(secs);
                    let travel = dice.range(300, 1500);
                    agenda.schedule(s(30), Input::StaffReply { staff: staff.clone(), incident: *incident, reply: StaffReply::EnRoute });
                    agenda.schedule(s(30 + travel), Input::StaffReply { staff: staff.clone(), incident: *incident, reply: StaffReply::OnSite });
                    let close = StaffReply::Close { outcome: Outcome::Helped, note: None };
                    agenda.schedule(s(30 + travel + 900), Input::StaffReply { staff: staff.clone(), incident: *incident, reply: close });
                }
                Action::Queued { incident, centre, .. } => {
                    let at = now + Duration::from_secs(dice.range(8, 30));
                    agenda.schedule(at, Input::OperatorAnswer { centre: centre.clone(), operator: id(format!("{centre}-op")), incident: *incident });
                }
                Action::Answered { incident, by: Responder::Operator { operator, .. }, .. } => {
                    let at = now + Duration::from_secs(dice.range(40, 120));
                    let input = if dice.unit() < 0.32 {
                        Input::OperatorResolve { operator: operator.clone(), incident: *incident, note: None }
                    } else {
                        Input::OperatorForward { operator: operator.clone(), incident: *incident }
                    };
                    agenda.schedule(at, input);
                }
                _ => {}
            }
        }
    }
    writeln!(out, "\nKPIs (answer time: alarm to first human answer; target {} s)\n", kpi.target().as_secs())?;
    write!(out, "{}", kpi.table())?;
    Ok(kpi)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_answers_every_alarm_and_is_deterministic() {
        let (_, config) = crate::settings::load(None).unwrap();
        let mut first = Vec::new();
        let kpi = super::run(config.clone(), &mut first).unwrap();
        let total = kpi.total();
        assert_eq!(total.alarms, 24);
        assert_eq!(total.unanswered(), 0, "{}", String::from_utf8_lossy(&first));
        assert!(total.offers >= total.incidents);
        let mut second = Vec::new();
        super::run(config, &mut second).unwrap();
        assert_eq!(first, second, "same configuration, same morning");
    }
}
