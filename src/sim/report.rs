//! The planners' report: per municipality and model, from one or more replications.
//! Terminal table, CSV, JSON and an offline HTML page with charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::scenario::Scenario;
use super::world::RunResult;
use crate::core::{Backup, Kpis, MunicipalityId, ResponseModel};

/// One row: a municipality under a model. Values are means over the replications;
/// `*_ci95` the half-width of the 95 % confidence interval (0 with one replication).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub municipality: String,
    pub model: String,
    pub replications: u32,
    pub alarms: f64,
    pub alarms_per_day: f64,
    pub share_within_target: f64,
    pub share_within_target_ci95: f64,
    pub answer_p50_secs: f64,
    pub answer_p95_secs: f64,
    pub answer_p95_secs_ci95: f64,
    pub answer_p99_secs: f64,
    pub on_site_p50_secs: f64,
    pub home_care_per_day: f64,
    pub home_care_per_day_ci95: f64,
    pub escalations: f64,
    pub backup_forwards: f64,
    pub unanswered: f64,
    pub resolved_by_centre: f64,
    pub staff_utilisation: f64,
    pub operator_utilisation: f64,
    pub yearly_cost_nok: f64,
    /// Alarms and home-care incidents by hour of day (UTC), for the charts.
    pub alarms_by_hour: Vec<f64>,
    pub home_care_by_hour: Vec<f64>,
    /// Answer-time histogram: (upper bound in seconds, count), merged over replications.
    pub answer_histogram: Vec<(f64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub days: u32,
    pub replications: u32,
    pub target_secs: u64,
    pub rows: Vec<Row>,
}

fn secs(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64())
}

/// Mean and 95 % half-width (Student's t) of a sample.
pub fn mean_ci(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    // t(0.975, n-1) for small n; 1.96 beyond 30.
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
        2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    let t = T.get(n - 2).copied().unwrap_or(1.96);
    (mean, t * (var / n as f64).sqrt())
}

fn model_name(m: Option<ResponseModel>) -> String {
    m.map_or_else(|| "configured".into(), |m| m.as_str().to_owned())
}

/// Yearly cost of `m` under `model` (docs/simulation.md).
pub fn yearly_cost(sc: &Scenario, model: ResponseModel, m: &MunicipalityId) -> f64 {
    let c = &sc.file.cost;
    let cfg = &sc.base;
    let Some(mi) = cfg.municipality_index(m) else { return f64::NAN };
    let pop = cfg.municipalities[mi].population as f64;
    let shared = 0.1 * c.shared_centre_total / c.shared_centre_owners as f64 + 0.9 * c.shared_centre_total * pop / c.shared_centre_owner_population;
    match model {
        ResponseModel::SharedCentre => shared,
        ResponseModel::PrivateCentre => {
            let users = sc.file.alarms.municipalities.iter().find(|a| a.id == *m).map_or(0, |a| a.users);
            c.private_centre_per_user * users as f64
        }
        ResponseModel::OwnCentre => {
            let all: f64 = cfg.municipalities.iter().map(|x| x.population as f64).sum();
            c.own_centre_fte * c.fte_cost * pop / all
        }
        ResponseModel::MobileGuardRoom => c.mobile_guard_room_backup_share * shared,
    }
}

/// Builds the report from runs: `runs[model][replication]`.
pub fn build(sc: &Scenario, scenario_name: &str, runs: &[Vec<RunResult>]) -> Report {
    let target = sc.base.target_answer;
    let mut rows = Vec::new();
    let mut munis: Vec<MunicipalityId> = sc.base.municipalities.iter().map(|m| m.id.clone()).collect();
    munis.sort();
    for reps in runs {
        let model = reps[0].model;
        let cfg = sc.config_for(model).expect("checked at load");
        let by_muni: Vec<BTreeMap<MunicipalityId, Kpis>> = reps.iter().map(|r| r.kpi.by_municipality()).collect();
        for m in &munis {
            let m = m.clone();
            let per_rep: Vec<(Kpis, &RunResult)> = reps.iter().zip(&by_muni).map(|(r, k)| (k.get(&m).cloned().unwrap_or_default(), r)).collect();
            let col = |f: &dyn Fn(&Kpis, &RunResult) -> f64| -> Vec<f64> { per_rep.iter().map(|(k, r)| f(k, r)).collect() };
            let days = reps[0].stats.days;
            let (share, share_ci) = mean_ci(&col(&|k, _| k.share_within_target().unwrap_or(f64::NAN)));
            let (p95, p95_ci) = mean_ci(&col(&|k, _| secs(k.answer_time.percentile(95.0))));
            let (hc, hc_ci) = mean_ci(&col(&|_, r| r.stats.home_care.get(&m).copied().unwrap_or(0) as f64 / days));
            let mean = |f: &dyn Fn(&Kpis, &RunResult) -> f64| mean_ci(&col(f)).0;
            let mi = sc.base.municipality_index(&m).expect("configured");
            let centre = match (&cfg.municipalities[mi].response_centre, &cfg.municipalities[mi].backup) {
                (Some(c), _) => Some(c.clone()),
                (None, Some(Backup::Centre(c))) => Some(c.clone()),
                _ => None,
            };
            let op_util = mean(&|_, r| match &centre {
                Some(c) => r.stats.operator_busy_secs.get(c).copied().unwrap_or(0.0) / r.stats.operator_duty_secs.get(c).copied().unwrap_or(f64::NAN),
                None => f64::NAN,
            });
            let mut hist: BTreeMap<u64, u64> = BTreeMap::new();
            for (k, _) in &per_rep {
                for (upper_ms, count) in k.answer_time.buckets() {
                    *hist.entry(upper_ms).or_default() += count;
                }
            }
            let hourly = |f: &dyn Fn(&RunResult) -> Option<[u64; 24]>| -> Vec<f64> {
                (0..24).map(|h| reps.iter().map(|r| f(r).map_or(0, |a| a[h]) as f64).sum::<f64>() / reps.len() as f64 / days).collect()
            };
            rows.push(Row {
                municipality: m.to_string(),
                model: model_name(model),
                replications: reps.len() as u32,
                alarms: mean(&|k, _| k.alarms as f64),
                alarms_per_day: mean(&|k, _| k.alarms as f64) / days,
                share_within_target: share,
                share_within_target_ci95: share_ci,
                answer_p50_secs: mean(&|k, _| secs(k.answer_time.percentile(50.0))),
                answer_p95_secs: p95,
                answer_p95_secs_ci95: p95_ci,
                answer_p99_secs: mean(&|k, _| secs(k.answer_time.percentile(99.0))),
                on_site_p50_secs: mean(&|k, _| secs(k.on_site_after_arrival.percentile(50.0))),
                home_care_per_day: hc,
                home_care_per_day_ci95: hc_ci,
                escalations: mean(&|k, _| k.escalations as f64),
                backup_forwards: mean(&|k, _| k.backup_forwards as f64),
                unanswered: mean(&|k, _| k.unanswered() as f64),
                resolved_by_centre: mean(&|k, _| k.resolved_by_centre as f64),
                staff_utilisation: mean(&|_, r| {
                    r.stats.staff_busy_secs.get(&m).copied().unwrap_or(0.0) / r.stats.staff_duty_secs.get(&m).copied().unwrap_or(f64::NAN)
                }),
                operator_utilisation: op_util,
                yearly_cost_nok: model.map_or(f64::NAN, |md| yearly_cost(sc, md, &m)),
                alarms_by_hour: hourly(&|r| r.stats.alarms_by_hour.get(&m).copied()),
                home_care_by_hour: hourly(&|r| r.stats.home_care_by_hour.get(&m).copied()),
                answer_histogram: hist.into_iter().map(|(ms, c)| (ms as f64 / 1000.0, c)).collect(),
            });
        }
    }
    Report {
        scenario: scenario_name.to_owned(),
        seed: sc.file.simulation.seed,
        days: sc.file.simulation.days,
        replications: sc.file.simulation.replications,
        target_secs: target.as_secs(),
        rows,
    }
}

fn f(v: f64, digits: usize) -> String {
    if v.is_nan() { "-".into() } else { format!("{v:.digits$}") }
}

fn pm(v: f64, ci: f64, digits: usize, reps: u32) -> String {
    if reps > 1 && !v.is_nan() { format!("{}±{}", f(v, digits), f(ci, digits)) } else { f(v, digits) }
}

impl Report {
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<10} {:<18} {:>8} {:>8} {:>12} {:>6} {:>10} {:>6} {:>9} {:>10} {:>5} {:>6} {:>5} {:>5} {:>7} {:>10}",
            "municip.",
            "model",
            "alarms",
            "per day",
            "≤60s %",
            "p50 s",
            "p95 s",
            "p99 s",
            "on site",
            "home/day",
            "esc",
            "backup",
            "unans",
            "staff",
            "operat.",
            "NOK/year"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<10} {:<18} {:>8} {:>8} {:>12} {:>6} {:>10} {:>6} {:>9} {:>10} {:>5} {:>6} {:>5} {:>5} {:>7} {:>10}",
                r.municipality,
                r.model,
                f(r.alarms, 0),
                f(r.alarms_per_day, 1),
                pm(r.share_within_target * 100.0, r.share_within_target_ci95 * 100.0, 1, r.replications),
                f(r.answer_p50_secs, 0),
                pm(r.answer_p95_secs, r.answer_p95_secs_ci95, 0, r.replications),
                f(r.answer_p99_secs, 0),
                f(r.on_site_p50_secs / 60.0, 1) + "m",
                pm(r.home_care_per_day, r.home_care_per_day_ci95, 1, r.replications),
                f(r.escalations, 0),
                f(r.backup_forwards, 0),
                f(r.unanswered, 0),
                f(r.staff_utilisation * 100.0, 0) + "%",
                f(r.operator_utilisation * 100.0, 0) + "%",
                f(r.yearly_cost_nok / 1000.0, 0) + "k",
            );
        }
        s
    }

    pub fn csv(&self) -> String {
        let mut s = String::from(
            "municipality,model,replications,alarms,alarms_per_day,share_within_target,share_within_target_ci95,answer_p50_secs,answer_p95_secs,answer_p95_secs_ci95,answer_p99_secs,on_site_p50_secs,home_care_per_day,home_care_per_day_ci95,escalations,backup_forwards,unanswered,resolved_by_centre,staff_utilisation,operator_utilisation,yearly_cost_nok\n",
        );
        for r in &self.rows {
            let v = [
                r.alarms,
                r.alarms_per_day,
                r.share_within_target,
                r.share_within_target_ci95,
                r.answer_p50_secs,
                r.answer_p95_secs,
                r.answer_p95_secs_ci95,
                r.answer_p99_secs,
                r.on_site_p50_secs,
                r.home_care_per_day,
                r.home_care_per_day_ci95,
                r.escalations,
                r.backup_forwards,
                r.unanswered,
                r.resolved_by_centre,
                r.staff_utilisation,
                r.operator_utilisation,
                r.yearly_cost_nok,
            ];
            let _ = writeln!(s, "{},{},{},{}", r.municipality, r.model, r.replications, v.iter().map(|x| f(*x, 4)).collect::<Vec<_>>().join(","));
        }
        s
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }
}
