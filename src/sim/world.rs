//! One simulation run: a seeded world of alarm users, home-care staff and centre
//! operators around the core `Engine`, on a discrete-event agenda.
//!
//! The engine makes every routing decision, exactly as in `vakt run`; the world only
//! plays the people. Alarms are generated an hour at a time (or streamed from a history
//! file), so memory holds what is pending, not the whole year.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::dist::{Keyed, Stream, key, poisson};
use super::scenario::{DEFAULT_HOURLY, Scenario, default_kind_mix};
use crate::core::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Shift starts in hours of the day (UTC): day 07, evening 15, night 23.
const SHIFT_STARTS: [u32; 3] = [7, 15, 23];

/// One alarm of a history file (or of the generator).
#[derive(Debug, Clone)]
pub struct SimAlarm {
    pub at: Timestamp,
    pub alarm: Alarm,
    /// From a history file: whether the centre resolved it (else the resolve share decides).
    pub resolved_by_centre: Option<bool>,
}

/// Where alarms come from.
pub enum AlarmSource<'a> {
    /// The scenario's generator.
    Synthetic,
    /// A history, in time order (see `history.rs`).
    History(&'a mut dyn Iterator<Item = Result<SimAlarm, String>>),
}

/// What one run measured, beyond the engine's KPIs.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Incidents that reached home-care staff (the ladder offered them), per municipality.
    pub home_care: BTreeMap<MunicipalityId, u64>,
    /// The same, by hour of day (UTC).
    pub home_care_by_hour: BTreeMap<MunicipalityId, [u64; 24]>,
    /// Alarms by hour of day.
    pub alarms_by_hour: BTreeMap<MunicipalityId, [u64; 24]>,
    /// Staff: seconds busy (accept to close) and seconds on duty, per municipality.
    pub staff_busy_secs: BTreeMap<MunicipalityId, f64>,
    pub staff_duty_secs: BTreeMap<MunicipalityId, f64>,
    /// Operators: seconds busy and seconds on duty, per centre.
    pub operator_busy_secs: BTreeMap<CentreId, f64>,
    pub operator_duty_secs: BTreeMap<CentreId, f64>,
    /// Operator answers per centre, and per municipality served.
    pub operator_answers: BTreeMap<CentreId, u64>,
    pub days: f64,
    /// Agenda events and engine steps processed.
    pub events: u64,
}

pub struct RunResult {
    pub model: Option<ResponseModel>,
    pub kpi: KpiCollector,
    pub stats: RunStats,
}

enum Ev {
    /// Generate (or read) the alarms of the hour starting here.
    Hour(u32),
    Alarm(Box<SimAlarm>),
    Shift(u32),
    Reply {
        staff: StaffId,
        incident: IncidentId,
        reply: StaffReply,
    },
    OperatorTake {
        centre: usize,
        incident: IncidentId,
    },
    OperatorDone {
        centre: usize,
        incident: IncidentId,
        resolve: bool,
        started: Timestamp,
    },
}

struct Item {
    at: Timestamp,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> Ordering {
        // Earliest first in a max-heap.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct Agenda {
    heap: BinaryHeap<Item>,
    seq: u64,
}

impl Agenda {
    fn at(&mut self, at: Timestamp, ev: Ev) {
        self.seq += 1;
        self.heap.push(Item { at, seq: self.seq, ev });
    }
}

struct CentrePool {
    id: CentreId,
    on_duty: i64,
    free: i64,
    queue: VecDeque<IncidentId>,
    counts: [u32; 3],
}

struct IncidentInfo {
    municipality: usize,
    alarm_key: u64,
    kind: AlarmKind,
    home: Position,
    resolved_by_centre: Option<bool>,
    etas: FxHashMap<StaffId, Duration>,
    reached_home_care: bool,
    assigned: Option<StaffId>,
    /// Offers made so far: each offer is a fresh decision (a key for the draws).
    offers: u64,
}

struct World<'s> {
    sc: &'s Scenario,
    day_done: &'s dyn Fn(),
    k: Keyed,
    engine: Engine,
    kpi: KpiCollector,
    agenda: Agenda,
    stats: RunStats,
    munis: Vec<MunicipalityId>,
    /// Residents per municipality (index = user number); the first ones are the heavy users.
    residents: Vec<Vec<(ResidentId, Position)>>,
    resident_home: FxHashMap<ResidentId, Position>,
    /// Staff per municipality per shift.
    staff: Vec<[Vec<StaffId>; 3]>,
    /// Accepted and not yet closed: (staff, incident) → since.
    staff_busy_since: FxHashMap<(StaffId, IncidentId), Timestamp>,
    staff_muni: FxHashMap<StaffId, usize>,
    centres: Vec<CentrePool>,
    incidents: FxHashMap<IncidentId, IncidentInfo>,
    pending_alarms: FxHashMap<AlarmId, (u64, Option<bool>, Position)>,
    end: Timestamp,
    hourly: [f64; 24],
    weekday: [f64; 7],
    kinds: Vec<(AlarmKind, f64)>,
}

fn parse_id<T: TryFrom<String>>(s: String) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s).expect("generated ids are valid")
}

fn place(k: &Keyed, centre: Position, km: f64, a: u64, b: u64) -> Position {
    let r = km * k.unit(Stream::Place, a, b, 0).sqrt();
    let th = 2.0 * std::f64::consts::PI * k.unit(Stream::Place, a, b, 1);
    let lat = centre.lat() + r * th.cos() / 111.2;
    let lon = centre.lon() + r * th.sin() / (111.2 * centre.lat().to_radians().cos().max(0.01));
    Position::new(lat.clamp(-90.0, 90.0), lon.clamp(-180.0, 180.0)).expect("clamped")
}

fn shift_of_hour(h: u32) -> usize {
    match h {
        7..=14 => 0,
        15..=22 => 1,
        _ => 2,
    }
}

/// Runs one replication of the scenario under `model` (`None`: as configured).
pub fn run(sc: &Scenario, model: Option<ResponseModel>, replication: u32, source: AlarmSource<'_>) -> Result<RunResult, String> {
    run_with_progress(sc, model, replication, source, &|| {})
}

/// As [`run`], calling `day_done` once per simulated day.
pub fn run_with_progress(
    sc: &Scenario,
    model: Option<ResponseModel>,
    replication: u32,
    source: AlarmSource<'_>,
    day_done: &dyn Fn(),
) -> Result<RunResult, String> {
    let config = sc.config_for(model)?;
    let seed = sc.file.simulation.seed.wrapping_add(replication as u64 * 0x9E37_79B9);
    let k = Keyed { seed };
    let munis: Vec<MunicipalityId> = config.municipalities.iter().map(|m| m.id.clone()).collect();
    let norm = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| x / mean).collect::<Vec<_>>()
    };
    let hourly: [f64; 24] = norm(sc.file.alarms.hourly_profile.as_deref().unwrap_or(&DEFAULT_HOURLY)).try_into().expect("24");
    let weekday: [f64; 7] = norm(sc.file.alarms.weekday_profile.as_deref().unwrap_or(&[1.0; 7])).try_into().expect("7");
    let mix = sc.file.alarms.kind_mix.clone().unwrap_or_else(default_kind_mix);
    let total: f64 = mix.values().sum();
    let kinds = mix.into_iter().map(|(k, w)| (k, w / total)).collect();
    let end = sc.start + Duration::from_secs(sc.file.simulation.days as u64 * 86_400);
    let mut w = World {
        sc,
        day_done,
        k,
        kpi: KpiCollector::new(config.target_answer),
        engine: Engine::new(config.clone()),
        agenda: Agenda::default(),
        stats: RunStats { days: sc.file.simulation.days as f64, ..Default::default() },
        munis: munis.clone(),
        residents: vec![Vec::new(); munis.len()],
        resident_home: FxHashMap::default(),
        staff: (0..munis.len()).map(|_| [Vec::new(), Vec::new(), Vec::new()]).collect(),
        staff_busy_since: FxHashMap::default(),
        staff_muni: FxHashMap::default(),
        centres: Vec::new(),
        incidents: FxHashMap::default(),
        pending_alarms: FxHashMap::default(),
        end,
        hourly,
        weekday,
        kinds,
    };
    w.populate(&config);
    let mut history = match source {
        AlarmSource::History(it) => Some(it),
        AlarmSource::Synthetic => None,
    };
    // Shifts: the first boundary at or before the start, then every 8 hours.
    w.agenda.at(sc.start, Ev::Shift(0));
    if history.is_none() {
        w.agenda.at(sc.start, Ev::Hour(0));
    } else if let Some(first) = next_history(&mut history)? {
        w.agenda.at(first.at, Ev::Alarm(Box::new(first)));
    }
    loop {
        let next_ev = w.agenda.heap.peek().map(|i| i.at);
        let next_timer = w.engine.poll_timeout();
        let now = match (next_ev, next_timer) {
            (None, None) => break,
            (Some(a), Some(t)) if t < a => t,
            (None, Some(t)) => t,
            (Some(a), _) => a,
        };
        if now >= end + Duration::from_secs(86_400) {
            break; // a day after the last alarm window: whatever is still open stays open.
        }
        w.stats.events += 1;
        if next_timer == Some(now) && next_ev.is_none_or(|a| now < a) {
            w.engine.handle_timeout(now);
        } else {
            let item = w.agenda.heap.pop().expect("peeked");
            w.handle(item.at, item.ev, &mut history)?;
        }
        w.drain(now);
    }
    w.close_books(end);
    Ok(RunResult { model, kpi: w.kpi, stats: w.stats })
}

fn next_history(h: &mut Option<&mut dyn Iterator<Item = Result<SimAlarm, String>>>) -> Result<Option<SimAlarm>, String> {
    match h {
        Some(it) => it.next().transpose(),
        None => Ok(None),
    }
}

impl World<'_> {
    fn populate(&mut self, config: &EngineConfig) {
        let t0 = self.sc.start;
        let radius = self.sc.file.alarms.resident_radius_km;
        for (mi, m) in config.municipalities.iter().enumerate() {
            let users = self.sc.file.alarms.municipalities.iter().find(|a| a.id == m.id).map_or(0, |a| a.users);
            for u in 0..users {
                let id: ResidentId = parse_id(format!("{}-u{u}", m.id));
                let home = place(&self.k, m.centre, radius, key(m.id.as_str()), u as u64);
                self.engine.handle_input(
                    t0,
                    Input::UpsertResident(Resident {
                        id: id.clone(),
                        municipality: m.id.clone(),
                        home,
                        regular_helpers: vec![],
                        address: String::new(),
                        notes: String::new(),
                    }),
                );
                self.resident_home.insert(id.clone(), home);
                self.residents[mi].push((id, home));
            }
            if let Some(counts) = self.sc.file.staff.municipalities.iter().find(|s| s.id == m.id) {
                for (shift, n) in [counts.day, counts.evening, counts.night].into_iter().enumerate() {
                    for i in 0..n {
                        let id: StaffId = parse_id(format!("{}-{}{i}", m.id, ["d", "e", "n"][shift]));
                        let roles = if i % 2 == 0 { Roles::of(&[Role::Nurse]) } else { Roles::of(&[Role::HealthWorker]) };
                        self.engine.handle_input(t0, Input::UpsertStaff(Staff { id: id.clone(), municipality: m.id.clone(), roles }));
                        self.staff_muni.insert(id.clone(), mi);
                        self.staff[mi][shift].push(id);
                    }
                }
            }
        }
        for c in &config.centres {
            let counts = self.sc.file.operators.centres.iter().find(|s| s.id == c.id).map_or([c.operators_on_duty; 3], |s| [s.day, s.evening, s.night]);
            self.centres.push(CentrePool { id: c.id.clone(), on_duty: 0, free: 0, queue: VecDeque::new(), counts });
        }
        while self.engine.poll_action().is_some() {}
    }

    /// Long: one match over every kind of event on the agenda, so that each event's
    /// rule sits beside the others.
    fn handle(&mut self, now: Timestamp, ev: Ev, history: &mut Option<&mut dyn Iterator<Item = Result<SimAlarm, String>>>) -> Result<(), String> {
        match ev {
            Ev::Hour(h) => {
                let start = self.sc.start + HOUR * h;
                if start < self.end {
                    self.generate_hour(h, start);
                    self.agenda.at(start + HOUR, Ev::Hour(h + 1));
                }
            }
            Ev::Alarm(a) => {
                let SimAlarm { at, alarm, resolved_by_centre } = *a;
                let mi = self.munis.iter().position(|m| *m == alarm.municipality);
                if let Some(mi) = mi {
                    let (hour, _) = at.utc_time_of_day_and_weekday();
                    self.stats.alarms_by_hour.entry(self.munis[mi].clone()).or_insert([0; 24])[(hour / 3600) as usize] += 1;
                    if !self.resident_home.contains_key(&alarm.resident) {
                        // A history's resident the world has not seen: registered at the alarm's position or near the centre.
                        let centre = self.engine.config().municipalities[mi].centre;
                        let home =
                            alarm.position.unwrap_or_else(|| place(&self.k, centre, self.sc.file.alarms.resident_radius_km, key(alarm.resident.as_str()), 7));
                        self.engine.handle_input(
                            at,
                            Input::UpsertResident(Resident {
                                id: alarm.resident.clone(),
                                municipality: alarm.municipality.clone(),
                                home,
                                regular_helpers: vec![],
                                address: String::new(),
                                notes: String::new(),
                            }),
                        );
                        self.resident_home.insert(alarm.resident.clone(), home);
                    }
                }
                let home = self.resident_home.get(&alarm.resident).copied().unwrap_or(Position::new(0.0, 0.0).expect("valid"));
                self.pending_alarms.insert(alarm.id.clone(), (key(alarm.id.as_str()), resolved_by_centre, alarm.position.unwrap_or(home)));
                self.engine.handle_input(at, Input::Alarm(alarm));
                if history.is_some() {
                    if let Some(next) = next_history(history)? {
                        if next.at < at {
                            return Err(format!("the history is not in time order at alarm {}", next.alarm.id));
                        }
                        if next.at < self.end {
                            self.agenda.at(next.at, Ev::Alarm(Box::new(next)));
                        }
                    }
                }
            }
            Ev::Shift(n) => {
                if n % 3 == 2 {
                    (self.day_done)();
                }
                self.shift(now, n)
            }
            Ev::Reply { staff, incident, reply } => self.engine.handle_input(now, Input::StaffReply { staff, incident, reply }),
            Ev::OperatorTake { centre, incident } => {
                let c = &self.centres[centre];
                let operator: OperatorId = parse_id(format!("{}-op", c.id));
                self.engine.handle_input(now, Input::OperatorAnswer { centre: c.id.clone(), operator, incident });
                // Whether it worked shows in the actions (Answered, or Rejected: the operator is free again).
                let mut answered = false;
                let mut pending = Vec::new();
                while let Some(a) = self.engine.poll_action() {
                    if matches!(&a, Action::Answered { incident: i, by: Responder::Operator { .. }, .. } if *i == incident) {
                        answered = true;
                    }
                    pending.push(a);
                }
                for a in pending {
                    self.observe(now, a);
                }
                if answered {
                    *self.stats.operator_answers.entry(self.centres[centre].id.clone()).or_default() += 1;
                    let info = self.incidents.get(&incident);
                    let mi = info.map_or(0, |i| i.municipality);
                    let akey = info.map_or(incident.0, |i| i.alarm_key);
                    let resolve = match info.and_then(|i| i.resolved_by_centre) {
                        Some(r) => r,
                        None => self.k.unit(Stream::Resolve, akey, 0, 0) < self.sc.resolve_share(&self.munis[mi]),
                    };
                    let talk = self.sc.talk_time.draw(&self.k, Stream::TalkTime, akey, centre as u64);
                    self.agenda.at(now + talk, Ev::OperatorDone { centre, incident, resolve, started: now });
                } else {
                    self.operator_free(now, centre);
                }
            }
            Ev::OperatorDone { centre, incident, resolve, started } => {
                *self.stats.operator_busy_secs.entry(self.centres[centre].id.clone()).or_default() += now.since(started).as_secs_f64();
                let operator: OperatorId = parse_id(format!("{}-op", self.centres[centre].id));
                let input = if resolve { Input::OperatorResolve { operator, incident, note: None } } else { Input::OperatorForward { operator, incident } };
                self.engine.handle_input(now, input);
                self.operator_free(now, centre);
            }
        }
        Ok(())
    }

    fn generate_hour(&mut self, h: u32, start: Timestamp) {
        let (secs_of_day, weekday) = start.utc_time_of_day_and_weekday();
        let hod = (secs_of_day / 3600) as usize;
        let factor = self.hourly[hod] * self.weekday[weekday as usize];
        let heavy_share = self.sc.file.alarms.heavy_user_share;
        let heavy_alarms = self.sc.file.alarms.heavy_user_alarm_share;
        let mut batch = Vec::new();
        for spec in &self.sc.file.alarms.municipalities {
            let Some(mi) = self.munis.iter().position(|m| *m == spec.id) else { continue };
            let lambda = spec.yearly() / (365.0 * 24.0) * factor;
            let mk = key(spec.id.as_str());
            let n = poisson(lambda, &self.k, Stream::AlarmCount, h as u64, mk);
            for i in 0..n as u64 {
                let offset = Duration::from_secs_f64(3600.0 * self.k.unit(Stream::AlarmTime, h as u64, mk, i));
                let users = &self.residents[mi];
                let heavy = ((users.len() as f64 * heavy_share).ceil() as usize).clamp(1, users.len());
                let u = self.k.unit(Stream::AlarmWho, h as u64, mk, i);
                let pick = if u < heavy_alarms {
                    (u / heavy_alarms * heavy as f64) as usize
                } else if heavy < users.len() {
                    heavy + ((u - heavy_alarms) / (1.0 - heavy_alarms) * (users.len() - heavy) as f64) as usize
                } else {
                    (u * users.len() as f64) as usize
                };
                let (resident, _) = users[pick.min(users.len() - 1)].clone();
                let mut ku = self.k.unit(Stream::AlarmKind, h as u64, mk, i);
                let mut kind = self.kinds[0].0;
                for (k, w) in &self.kinds {
                    if ku < *w {
                        kind = *k;
                        break;
                    }
                    ku -= w;
                }
                let at = start + offset;
                let alarm = Alarm {
                    id: parse_id(format!("{}-{h}-{i}", spec.id)),
                    resident,
                    municipality: spec.id.clone(),
                    kind,
                    priority: None,
                    raised_at: at,
                    position: None,
                    text: None,
                };
                batch.push(SimAlarm { at, alarm, resolved_by_centre: None });
            }
        }
        for a in batch {
            self.agenda.at(a.at, Ev::Alarm(Box::new(a)));
        }
    }

    fn shift(&mut self, now: Timestamp, n: u32) {
        let hod = now.utc_time_of_day_and_weekday().0 / 3600;
        let current = shift_of_hour(hod);
        // Hand over: everyone off, the new shift on (at its base, near the municipality centre).
        for mi in 0..self.munis.len() {
            for shift in 0..3 {
                let ids = self.staff[mi][shift].clone();
                for (i, id) in ids.into_iter().enumerate() {
                    if shift == current {
                        let centre = self.engine.config().municipalities[mi].centre;
                        let pos = place(&self.k, centre, 5.0, key(id.as_str()), i as u64);
                        self.engine.handle_input(now, Input::StaffOnDuty { staff: id, position: Some(pos) });
                    } else {
                        self.engine.handle_input(now, Input::StaffOffDuty { staff: id });
                    }
                }
            }
        }
        let next_start = SHIFT_STARTS.iter().map(|&h| {
            let h = h as i64 * 3_600_000;
            let day = now.as_millis() - (now.as_millis().rem_euclid(86_400_000));
            let t = day + h;
            if t > now.as_millis() { t } else { t + 86_400_000 }
        });
        let next = Timestamp::from_millis(next_start.min().expect("three shifts"));
        // Book the coming shift's duty time (staff and operators).
        let end_cut = self.end.as_millis().min(next.as_millis());
        let booked = (end_cut - now.as_millis()).max(0) as f64 / 1000.0;
        for mi in 0..self.munis.len() {
            *self.stats.staff_duty_secs.entry(self.munis[mi].clone()).or_default() += self.staff[mi][current].len() as f64 * booked;
        }
        for ci in 0..self.centres.len() {
            let count = self.centres[ci].counts[current] as i64;
            let c = &mut self.centres[ci];
            c.free += count - c.on_duty;
            c.on_duty = count;
            *self.stats.operator_duty_secs.entry(c.id.clone()).or_default() += count as f64 * booked;
            let id = c.id.clone();
            self.engine.handle_input(now, Input::CentreStaffing { centre: id, operators_on_duty: count as u32 });
            self.dispatch_operators(now, ci);
        }
        if next < self.end {
            self.agenda.at(next, Ev::Shift(n + 1));
        }
    }

    fn operator_free(&mut self, now: Timestamp, centre: usize) {
        self.centres[centre].free += 1;
        self.dispatch_operators(now, centre);
    }

    fn dispatch_operators(&mut self, now: Timestamp, centre: usize) {
        while self.centres[centre].free > 0 {
            let Some(incident) = self.centres[centre].queue.pop_front() else { break };
            self.centres[centre].free -= 1;
            let akey = self.incidents.get(&incident).map_or(incident.0, |i| i.alarm_key);
            let delay = self.sc.answer_delay.draw(&self.k, Stream::OperatorDelay, akey, centre as u64);
            self.agenda.at(now + delay, Ev::OperatorTake { centre, incident });
        }
    }

    fn drain(&mut self, now: Timestamp) {
        while let Some(a) = self.engine.poll_action() {
            self.observe(now, a);
        }
    }

    /// Long: one match over the engine's actions, with how the simulated people answer
    /// each, side by side.
    fn observe(&mut self, now: Timestamp, action: Action) {
        self.kpi.observe(&action);
        match &action {
            Action::Raised { incident, alarm, municipality, kind, .. } => {
                let mi = self.munis.iter().position(|m| m == municipality).unwrap_or(0);
                let (alarm_key, resolved_by_centre, home) =
                    self.pending_alarms.remove(alarm).unwrap_or((incident.0, None, self.engine.config().municipalities[mi].centre));
                self.incidents.insert(
                    *incident,
                    IncidentInfo {
                        municipality: mi,
                        alarm_key,
                        kind: *kind,
                        home,
                        resolved_by_centre,
                        etas: FxHashMap::default(),
                        reached_home_care: false,
                        assigned: None,
                        offers: 0,
                    },
                );
            }
            Action::Attached { alarm, .. } | Action::DuplicateIgnored { alarm, .. } => {
                self.pending_alarms.remove(alarm);
            }
            Action::Rejected { by: Some(Actor::Device(alarm)), .. } => {
                self.pending_alarms.remove(alarm);
            }
            Action::Queued { incident, centre, .. } => {
                if let Some(ci) = self.centres.iter().position(|c| c.id == *centre) {
                    self.centres[ci].queue.push_back(*incident);
                    self.dispatch_operators(now, ci);
                }
            }
            Action::Dequeued { incident, centre, .. } => {
                if let Some(ci) = self.centres.iter().position(|c| c.id == *centre) {
                    self.centres[ci].queue.retain(|i| i != incident);
                }
            }
            Action::Offered { incident, staff, eta, .. } => {
                let Some(info) = self.incidents.get_mut(incident) else { return };
                info.etas.insert(staff.clone(), *eta);
                info.offers += 1;
                let nth = info.offers;
                if !info.reached_home_care {
                    info.reached_home_care = true;
                    let m = self.munis[info.municipality].clone();
                    *self.stats.home_care.entry(m.clone()).or_default() += 1;
                    let hod = (now.utc_time_of_day_and_weekday().0 / 3600) as usize;
                    self.stats.home_care_by_hour.entry(m).or_insert([0; 24])[hod] += 1;
                }
                let akey = info.alarm_key;
                let sk = key(staff.as_str());
                let u = self.k.unit(Stream::StaffChoice, akey, sk, nth);
                let st = &self.sc.file.staff;
                let reply = if u < st.no_reply_probability {
                    None
                } else if u < st.no_reply_probability + st.decline_probability {
                    Some(StaffReply::Decline)
                } else {
                    Some(StaffReply::Accept)
                };
                if let Some(reply) = reply {
                    let delay = self.sc.reply_delay.draw(&self.k, Stream::StaffDelay, akey, sk ^ nth.rotate_left(32));
                    self.agenda.at(now + delay, Ev::Reply { staff: staff.clone(), incident: *incident, reply });
                }
            }
            Action::Accepted { incident, staff, .. } => {
                let Some(info) = self.incidents.get_mut(incident) else { return };
                info.assigned = Some(staff.clone());
                let eta = info.etas.get(staff).copied().unwrap_or(Duration::from_secs(600));
                let dist = self.sc.on_site_by_kind.get(&info.kind).unwrap_or(&self.sc.on_site);
                let on_site = dist.draw(&self.k, Stream::OnSite, info.alarm_key, 0);
                self.staff_busy_since.insert((staff.clone(), *incident), now);
                let reply = |r| Ev::Reply { staff: staff.clone(), incident: *incident, reply: r };
                self.agenda.at(now, reply(StaffReply::EnRoute));
                self.agenda.at(now + eta, reply(StaffReply::OnSite));
                self.agenda.at(now + eta + on_site, reply(StaffReply::Close { outcome: Outcome::Helped, note: None }));
            }
            Action::Closed { incident, .. } => {
                let Some(info) = self.incidents.remove(incident) else { return };
                // Whoever had it is free again, where the resident lives.
                let Some(s) = info.assigned else { return };
                if let Some(since) = self.staff_busy_since.remove(&(s.clone(), *incident)) {
                    let mi = self.staff_muni.get(&s).copied().unwrap_or(info.municipality);
                    *self.stats.staff_busy_secs.entry(self.munis[mi].clone()).or_default() += now.since(since).as_secs_f64();
                    self.engine.handle_input(now, Input::StaffPosition { staff: s, position: info.home });
                }
            }
            _ => {}
        }
    }

    fn close_books(&mut self, end: Timestamp) {
        let open: Vec<((StaffId, IncidentId), Timestamp)> = self.staff_busy_since.drain().collect();
        for ((s, _), since) in open {
            let mi = self.staff_muni.get(&s).copied().unwrap_or(0);
            *self.stats.staff_busy_secs.entry(self.munis[mi].clone()).or_default() += end.max(since).since(since).as_secs_f64();
        }
    }
}
