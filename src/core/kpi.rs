//! KPIs, computed from the action stream alone, so the live engine, the simulator and
//! the tests report the same way: feed every action to [`KpiCollector::observe`].
//!
//! Units and definitions (also in docs/kpi.md):
//! - *answer time*: alarm arrival to the first human answer (a staff accept in the
//!   mobile guard room, an operator answer at a centre), per incident;
//! - *within target*: answered with answer time ≤ target (60 s);
//! - *share within target*: within target / (answered + still unanswered); incidents
//!   cancelled by the resident before anyone answered are left out of both;
//! - *staff accept after dispatch*: start of the staff ladder to the accept;
//! - *on site*: alarm arrival to "on site";
//! - *escalations*: ladders widened to everyone on duty (broadcasts);
//! - *backup forwards*: moves to a backup (centre or team);
//! - *unanswered alerted*: incidents that raised at least one "unanswered" alert.
//!
//! An alarm joined to an open incident counts as an alarm but has no answer time of
//! its own: it was answered with its incident.

use std::collections::BTreeMap;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::action::{Action, AlertKind};
use super::config::ResponseModel;
use super::histogram::Histogram;
use super::ids::{IncidentId, MunicipalityId};
use super::input::Outcome;

/// The KPIs of one group (a municipality under a model, or a merge of groups).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kpis {
    /// New alarms: incidents plus alarms joined to an open incident.
    pub alarms: u64,
    pub incidents: u64,
    pub attached: u64,
    pub answered: u64,
    pub answered_within_target: u64,
    pub cancelled_before_answer: u64,
    pub closed: u64,
    pub answer_time: Histogram,
    pub staff_accept_after_dispatch: Histogram,
    pub on_site_after_arrival: Histogram,
    pub offers: u64,
    pub escalations: u64,
    pub backup_forwards: u64,
    pub unanswered_alerted: u64,
    pub resolved_by_centre: u64,
    pub forwarded_to_home_care: u64,
    /// Incidents a home-care staff member accepted (the home-care load).
    pub reached_home_care: u64,
}

impl Kpis {
    /// Incidents not (yet) answered and not cancelled.
    pub fn unanswered(&self) -> u64 {
        self.incidents - self.answered - self.cancelled_before_answer
    }

    pub fn share_within_target(&self) -> Option<f64> {
        let denominator = self.answered + self.unanswered();
        (denominator > 0).then(|| self.answered_within_target as f64 / denominator as f64)
    }

    pub fn offers_per_incident(&self) -> Option<f64> {
        (self.incidents > 0).then(|| self.offers as f64 / self.incidents as f64)
    }

    pub fn merge(&mut self, o: &Kpis) {
        self.alarms += o.alarms;
        self.incidents += o.incidents;
        self.attached += o.attached;
        self.answered += o.answered;
        self.answered_within_target += o.answered_within_target;
        self.cancelled_before_answer += o.cancelled_before_answer;
        self.closed += o.closed;
        self.answer_time.merge(&o.answer_time);
        self.staff_accept_after_dispatch.merge(&o.staff_accept_after_dispatch);
        self.on_site_after_arrival.merge(&o.on_site_after_arrival);
        self.offers += o.offers;
        self.escalations += o.escalations;
        self.backup_forwards += o.backup_forwards;
        self.unanswered_alerted += o.unanswered_alerted;
        self.resolved_by_centre += o.resolved_by_centre;
        self.forwarded_to_home_care += o.forwarded_to_home_care;
        self.reached_home_care += o.reached_home_care;
    }
}

#[derive(Debug, Clone)]
struct Track {
    group: (MunicipalityId, ResponseModel),
    answered: bool,
    alerted: bool,
}

/// Counts every action once. Memory: one small record per *open* incident plus one
/// [`Kpis`] per (municipality, model).
#[derive(Debug, Clone)]
pub struct KpiCollector {
    target: Duration,
    open: FxHashMap<IncidentId, Track>,
    groups: BTreeMap<(MunicipalityId, ResponseModel), Kpis>,
    /// Redeliveries of an alarm already seen (not counted as alarms).
    pub duplicates: u64,
    /// Inputs refused, of any kind.
    pub rejected: u64,
}

impl KpiCollector {
    pub fn new(target: Duration) -> Self {
        Self { target, open: FxHashMap::default(), groups: BTreeMap::new(), duplicates: 0, rejected: 0 }
    }

    pub fn target(&self) -> Duration {
        self.target
    }

    pub fn observe(&mut self, action: &Action) {
        if let Action::Raised { incident, municipality, model, .. } = action {
            let group = (municipality.clone(), *model);
            let k = self.groups.entry(group.clone()).or_default();
            k.alarms += 1;
            k.incidents += 1;
            self.open.insert(*incident, Track { group, answered: false, alerted: false });
            return;
        }
        match action {
            Action::DuplicateIgnored { .. } => self.duplicates += 1,
            Action::Rejected { .. } => self.rejected += 1,
            _ => {}
        }
        let Some(id) = action.incident() else { return };
        let Some(track) = self.open.get_mut(&id) else { return };
        let k = self.groups.get_mut(&track.group).expect("group made at Raised");
        match action {
            Action::Attached { .. } => {
                k.alarms += 1;
                k.attached += 1;
            }
            Action::Offered { .. } => k.offers += 1,
            Action::Broadcast { .. } => k.escalations += 1,
            Action::ForwardedToBackup { .. } => k.backup_forwards += 1,
            Action::Alert { kind: AlertKind::Unanswered, .. } if !track.alerted => {
                track.alerted = true;
                k.unanswered_alerted += 1;
            }
            Action::Answered { answer_time, .. } => {
                track.answered = true;
                k.answered += 1;
                if *answer_time <= self.target {
                    k.answered_within_target += 1;
                }
                k.answer_time.record(*answer_time);
            }
            Action::ResolvedByCentre { .. } => k.resolved_by_centre += 1,
            Action::ForwardedToHomeCare { .. } => k.forwarded_to_home_care += 1,
            Action::Accepted { since_dispatch, .. } => {
                k.reached_home_care += 1;
                k.staff_accept_after_dispatch.record(*since_dispatch);
            }
            Action::OnSite { since_raised, .. } => k.on_site_after_arrival.record(*since_raised),
            Action::Closed { outcome, .. } => {
                k.closed += 1;
                if *outcome == Outcome::Cancelled && !track.answered {
                    k.cancelled_before_answer += 1;
                }
                self.open.remove(&id);
            }
            _ => {}
        }
    }

    /// Per (municipality, model).
    pub fn groups(&self) -> &BTreeMap<(MunicipalityId, ResponseModel), Kpis> {
        &self.groups
    }

    pub fn by_municipality(&self) -> BTreeMap<MunicipalityId, Kpis> {
        self.merged(|(m, _)| m.clone())
    }

    pub fn by_model(&self) -> BTreeMap<ResponseModel, Kpis> {
        self.merged(|(_, model)| *model)
    }

    pub fn total(&self) -> Kpis {
        let mut t = Kpis::default();
        for k in self.groups.values() {
            t.merge(k);
        }
        t
    }

    fn merged<K: Ord>(&self, key: impl Fn(&(MunicipalityId, ResponseModel)) -> K) -> BTreeMap<K, Kpis> {
        let mut out: BTreeMap<K, Kpis> = BTreeMap::new();
        for (g, k) in &self.groups {
            out.entry(key(g)).or_default().merge(k);
        }
        out
    }

    /// Incidents raised and not yet closed.
    pub fn open_incidents(&self) -> usize {
        self.open.len()
    }

    /// A fixed-width text table: one line per (municipality, model), then the total.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<12} {:<18} {:>7} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}\n",
            "municipality", "model", "alarms", "<=target", "p50", "p95", "p99", "offers", "escal", "backup", "unansw"
        );
        let secs = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1}s", d.as_secs_f64()));
        let mut line = |name: &str, model: &str, k: &Kpis| {
            s.push_str(&format!(
                "{:<12} {:<18} {:>7} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}\n",
                name,
                model,
                k.alarms,
                k.share_within_target().map_or("-".into(), |x| format!("{:.1}%", x * 100.0)),
                secs(k.answer_time.percentile(50.0)),
                secs(k.answer_time.percentile(95.0)),
                secs(k.answer_time.percentile(99.0)),
                k.offers,
                k.escalations,
                k.backup_forwards,
                k.unanswered()
            ));
        };
        for ((m, model), k) in &self.groups {
            line(m.as_str(), model.as_str(), k);
        }
        line("total", "", &self.total());
        s
    }
}
