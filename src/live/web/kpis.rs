//! The dashboard's figures: the share answered within the target, by municipality and
//! model, today and over the last 7 and 30 days; open incidents; staff on duty. An
//! incident still unanswered counts as missed from the moment it passes the target
//! (docs/kpi.md), not only once it is answered late.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;

use super::api::DASHBOARD;
use super::{ApiError, AppState, Authed};
use crate::core::Timestamp;
use crate::live::accounts;
use crate::live::clock::wall_clock;
use crate::live::store::Answer;

/// The answers of one municipality, or of one model over the user's municipalities.
#[derive(Serialize)]
pub(super) struct KpiRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    municipality: Option<String>,
    model: &'static str,
    answered: u64,
    within_target: u64,
    /// Open incidents not answered, past the target now: missed already, in every period.
    overdue: u64,
    /// `within_target / (answered + overdue)`; none without either.
    share: Option<f64>,
}

impl KpiRow {
    fn new(municipality: Option<String>, model: &'static str, (answered, within_target, overdue): (u64, u64, u64)) -> KpiRow {
        let share = (answered + overdue > 0).then(|| within_target as f64 / (answered + overdue) as f64);
        KpiRow { municipality, model, answered, within_target, overdue, share }
    }
}

#[derive(Serialize)]
pub(super) struct KpiPeriod {
    /// `today` (since local midnight), `7d`, `30d`.
    period: &'static str,
    since: String,
    municipalities: Vec<KpiRow>,
    models: Vec<KpiRow>,
}

#[derive(Serialize)]
pub(super) struct Kpis {
    target_secs: f64,
    periods: Vec<KpiPeriod>,
    open_incidents: usize,
    staff_on_duty: usize,
}

/// Share answered within the target today (since local midnight), last 7 and 30 days,
/// per municipality and per model; open incidents; staff on duty.
pub(super) async fn kpis(State(s): State<AppState>, a: Authed) -> Result<Json<Kpis>, ApiError> {
    a.require(DASHBOARD)?;
    let now = wall_clock();
    let day = 86_400_000;
    let periods = [("today", now.norway_midnight().as_millis()), ("7d", now.as_millis() - 7 * day), ("30d", now.as_millis() - 30 * day)];
    let target = s.config.target_answer.as_secs_f64();
    let answered = s.stored(s.store.answered_since(periods[2].1)).await?;
    let user = a.user.clone();
    let target_ms = s.config.target_answer.as_millis() as i64;
    // Read after the answers: an incident answered in between is in neither, never in both.
    let (open_incidents, staff_on_duty, overdue) = s
        .read(move |d| {
            let e = d.engine();
            let open: Vec<_> = e.open_incidents().filter(|v| d.in_scope(&user, v.municipality)).collect();
            // Per municipality (by its index in the configuration).
            let mut overdue: BTreeMap<usize, u64> = BTreeMap::new();
            for v in open.iter().filter(|v| v.answered_at.is_none() && now.as_millis() - v.received_at.as_millis() > target_ms) {
                *overdue.entry(v.municipality).or_default() += 1;
            }
            let on_duty = e.staff().filter(|s| s.on_duty && accounts::may_see_id(e.config(), &user, &s.info.municipality)).count();
            (open.len(), on_duty, overdue)
        })
        .await?;
    // (period, municipality) -> (answered, within target)
    let mut counts: BTreeMap<(usize, String), (u64, u64)> = BTreeMap::new();
    for Answer { at_ms, municipality: m, body } in &answered {
        let Ok(v) = serde_json::from_str::<Value>(body) else { continue };
        let within = v["answer_secs"].as_f64().is_some_and(|t| t <= target);
        for (p, (_, since)) in periods.iter().enumerate() {
            if *at_ms >= *since {
                let c = counts.entry((p, m.clone())).or_default();
                c.0 += 1;
                c.1 += within as u64;
            }
        }
    }
    let mut out = Vec::new();
    for (p, (name, since)) in periods.iter().enumerate() {
        let mut by_model: BTreeMap<&'static str, (u64, u64, u64)> = BTreeMap::new();
        let mut municipalities = Vec::new();
        for m in accounts::visible_municipalities(&s.config, &a.user) {
            let (n, w) = counts.get(&(p, m.id.as_str().to_owned())).copied().unwrap_or_default();
            let late = s.config.municipality_index(&m.id).and_then(|i| overdue.get(&i)).copied().unwrap_or_default();
            let t = by_model.entry(m.model.as_str()).or_default();
            t.0 += n;
            t.1 += w;
            t.2 += late;
            municipalities.push(KpiRow::new(Some(m.id.to_string()), m.model.as_str(), (n, w, late)));
        }
        let models = by_model.into_iter().map(|(model, counts)| KpiRow::new(None, model, counts)).collect();
        out.push(KpiPeriod { period: name, since: Timestamp::from_millis(*since).to_string(), municipalities, models });
    }
    Ok(Json(Kpis { target_secs: target, periods: out, open_incidents, staff_on_duty }))
}
