//! A tiny discrete-event driver for scripted traces: inputs at exact times in, the
//! engine's actions out as readable lines with the time since the start.

use vakt::core::*;
use vakt::settings::Settings;

pub struct World {
    pub engine: Engine,
    pub kpi: KpiCollector,
    pub base: Timestamp,
    pub now: Timestamp,
    pub trace: String,
    pub actions: Vec<Action>,
}

pub fn id<T: TryFrom<String>>(s: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s.to_string()).expect("valid id")
}

pub fn pos(lat: f64, lon: f64) -> Position {
    Position::new(lat, lon).unwrap()
}

impl World {
    pub fn new(config_toml: &str) -> World {
        let config = Settings::from_toml(config_toml).unwrap().engine_config().unwrap();
        let kpi = KpiCollector::new(config.target_answer);
        // 2024-03-01 08:00:00 UTC, a Friday morning at the daily peak.
        let base = Timestamp::parse_rfc3339("2024-03-01T08:00:00Z").unwrap();
        World { engine: Engine::new(config), kpi, base, now: base, trace: String::new(), actions: Vec::new() }
    }

    pub fn t(&self, secs: f64) -> Timestamp {
        self.base + std::time::Duration::from_secs_f64(secs)
    }

    pub fn staff(&mut self, staff: &str, team: &str, roles: &[Role], on_duty_at: Option<(f64, f64)>) {
        let now = self.now;
        self.engine.handle_input(now, Input::UpsertStaff(Staff { id: id(staff), municipality: id(team), roles: Roles::of(roles) }));
        if let Some((lat, lon)) = on_duty_at {
            self.engine.handle_input(now, Input::StaffOnDuty { staff: id(staff), position: Some(pos(lat, lon)) });
        }
        self.drain();
    }

    pub fn resident(&mut self, resident: &str, municipality: &str, home: (f64, f64), helpers: &[&str]) {
        let r = Resident {
            id: id(resident),
            municipality: id(municipality),
            home: pos(home.0, home.1),
            regular_helpers: helpers.iter().map(|h| id(h)).collect(),
            address: String::new(),
            notes: String::new(),
        };
        self.engine.handle_input(self.now, Input::UpsertResident(r));
        self.drain();
    }

    pub fn alarm(&self, alarm: &str, resident: &str, municipality: &str, kind: AlarmKind) -> Input {
        Input::Alarm(Alarm {
            id: id(alarm),
            resident: id(resident),
            municipality: id(municipality),
            kind,
            priority: None,
            raised_at: self.now,
            position: None,
            text: None,
        })
    }

    /// Runs every timer due up to `secs`, in order, at its own time.
    pub fn run_until(&mut self, secs: f64) {
        let until = self.t(secs);
        while let Some(at) = self.engine.poll_timeout() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.engine.handle_timeout(at);
            self.drain();
        }
        self.now = self.now.max(until);
    }

    /// Runs timers up to `secs`, then applies `input` at `secs`.
    pub fn at(&mut self, secs: f64, input: Input) {
        self.run_until(secs);
        let now = self.t(secs);
        self.engine.handle_input(now, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            self.kpi.observe(&a);
            let rel = a.at().since(self.base).as_secs_f64();
            self.trace.push_str(&format!("[{rel:7.1}] {a}\n"));
            self.actions.push(a);
        }
        if let Err(e) = self.engine.check_invariants() {
            panic!("invariant broken at {}: {e}\ntrace so far:\n{}", self.now, self.trace);
        }
    }

    pub fn take_trace(&mut self) -> String {
        std::mem::take(&mut self.trace)
    }
}
