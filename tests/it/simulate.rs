//! The planners' simulator, checked against what is known without it: Erlang C for a
//! centre's operator queue, DOMAIN.md's table for the calibrated scenario, and itself
//! (same seed, same bytes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use vakt::core::{MunicipalityId, ResponseModel};
use vakt::sim::{Scenario, world};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn temp(name: &str) -> PathBuf {
    crate::live::support::temp_dir(&format!("sim-{name}"))
}

/// One municipality whose own centre has `c` operators and resolves every alarm itself:
/// Poisson arrivals, exponential talk times, no pick-up delay. That is M/M/c.
fn mmc(dir: &Path, c: u32, per_day: f64, talk_mean: f64, days: u32) -> Scenario {
    std::fs::write(
        dir.join("engine.toml"),
        format!(
            r#"
[[centre]]
id = "c"
name = "Centre"
kind = "own"
operators_on_duty = {c}
overflow_after_secs = 100000000

[[municipality]]
id = "m"
name = "M"
population = 10000
centre = {{ lat = 61.2, lon = 7.1 }}
model = "own_centre"
response_centre = "c"
"#
        ),
    )
    .unwrap();
    let scenario = format!(
        r#"
[simulation]
config = "engine.toml"
days = {days}
seed = 11
compare = "configured"

[alarms]
hourly_profile = [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]
heavy_user_share = 0.0
heavy_user_alarm_share = 0.0
[[alarms.municipality]]
id = "m"
per_hour = {}
users = 20000

[staff]
reply_delay = {{ constant = 5 }}
decline_probability = 0.0
no_reply_probability = 0.0
on_site = {{ constant = 600 }}
[[staff.municipality]]
id = "m"
day = 1
evening = 1
night = 1

[operators]
answer_delay = {{ constant = 0 }}
talk_time = {{ exponential = {talk_mean} }}
resolve_share = 1.0
"#,
        per_day / 24.0
    );
    Scenario::from_toml(&scenario, dir).unwrap()
}

/// Erlang C: the probability of waiting, and the mean wait, for M/M/c.
fn erlang_c(c: u32, lambda: f64, mu: f64) -> (f64, f64) {
    let a = lambda / mu;
    let mut sum = 0.0;
    let mut term = 1.0;
    for k in 0..c {
        if k > 0 {
            term *= a / k as f64;
        }
        sum += term;
    }
    let top = term * a / c as f64 * c as f64 / (c as f64 - a);
    let p_wait = top / (sum + top);
    (p_wait, p_wait / (c as f64 * mu - lambda))
}

#[test]
fn an_operator_queue_matches_erlang_c() {
    let dir = temp("mmc");
    // 864 alarms a day (one per 100 s), 120 s talks, 2 operators: load 1.2, ρ = 0.6.
    let sc = mmc(&dir, 2, 864.0, 120.0, 60);
    let run = world::run(&sc, None, 0, world::AlarmSource::Synthetic).unwrap();
    let k = run.kpi.total();
    assert!(k.answered > 45_000, "{} answered", k.answered);
    let (p_wait, mean_wait) = erlang_c(2, 1.0 / 100.0, 1.0 / 120.0);
    assert!((p_wait - 0.45).abs() < 1e-9 && (mean_wait - 67.5).abs() < 1e-6, "the formula itself: {p_wait} {mean_wait}");
    let waited = 1.0 - k.answer_time.share_at_most(Duration::from_millis(1)).unwrap();
    let mean = k.answer_time.mean().unwrap().as_secs_f64();
    eprintln!("M/M/2: P(wait) simulated {waited:.3}, Erlang C {p_wait:.3}; mean wait {mean:.1} s vs {mean_wait:.1} s");
    assert!((waited - p_wait).abs() < 0.03, "P(wait) simulated {waited:.3}, Erlang C {p_wait:.3}");
    assert!((mean - mean_wait).abs() / mean_wait < 0.10, "mean wait simulated {mean:.1} s, Erlang C {mean_wait:.1} s");
}

#[test]
fn one_operator_and_a_light_load_is_m_m_1() {
    let dir = temp("mm1");
    // ρ = 0.3 with one operator: P(wait) = ρ, E[Wq] = ρ / (μ − λ).
    let sc = mmc(&dir, 1, 216.0, 120.0, 60);
    let run = world::run(&sc, None, 0, world::AlarmSource::Synthetic).unwrap();
    let k = run.kpi.total();
    let (lambda, mu) = (216.0 / 86_400.0, 1.0 / 120.0);
    let rho = lambda / mu;
    let waited = 1.0 - k.answer_time.share_at_most(Duration::from_millis(1)).unwrap();
    let mean = k.answer_time.mean().unwrap().as_secs_f64();
    eprintln!("M/M/1: P(wait) simulated {waited:.3} vs ρ {rho:.3}; mean wait {mean:.1} s vs {:.1} s", rho / (mu - lambda));
    assert!((waited - rho).abs() < 0.03, "P(wait) {waited:.3} vs ρ {rho:.3}");
    let want = rho / (mu - lambda);
    assert!((mean - want).abs() / want < 0.12, "mean wait {mean:.1} s vs {want:.1} s");
}

/// The shipped scenario, calibrated: the alarms that reach home care per day when a
/// municipality leaves the centre land within 10 % of DOMAIN.md's table.
#[test]
fn indre_sogn_extra_home_care_alarms_match_the_domain_table() {
    let sc = Scenario::load(&root().join("simulations/indre-sogn-2024.toml")).unwrap();
    let centre = world::run(&sc, Some(ResponseModel::SharedCentre), 0, world::AlarmSource::Synthetic).unwrap();
    let mgr = world::run(&sc, Some(ResponseModel::MobileGuardRoom), 0, world::AlarmSource::Synthetic).unwrap();
    let days = sc.file.simulation.days as f64;
    let mut report = Vec::new();
    for (m, want) in [("sogndal", 8.0), ("laerdal", 10.4), ("ardal", 6.0), ("vik", 3.4), ("luster", 2.5), ("aurland", 0.9)] {
        let id = MunicipalityId::parse(m).unwrap();
        let per_day = |r: &world::RunResult| r.stats.home_care.get(&id).copied().unwrap_or(0) as f64 / days;
        let extra = per_day(&mgr) - per_day(&centre);
        report.push(format!("{m}: {extra:.2} per day (table {want})"));
        eprintln!("{m}: {extra:.2} extra home-care alarms per day (table {want}, {:+.1} %)", (extra - want) / want * 100.0);
        assert!((extra - want).abs() / want <= 0.10, "{}", report.join("\n"));
    }
    // Under the mobile guard room every incident reaches home care.
    assert_eq!(mgr.stats.home_care.values().sum::<u64>(), mgr.kpi.total().incidents);
}

#[test]
fn same_scenario_and_seed_give_the_same_bytes_and_seeds_differ() {
    let dir = temp("determinism");
    let text = std::fs::read_to_string(root().join("simulations/indre-sogn-2024.toml")).unwrap();
    let text = text
        .replace("days = 365", "days = 20")
        .replace("replications = 1", "replications = 3")
        .replace("config = \"../config/indre-sogn.toml\"", &format!("config = {:?}", root().join("config/indre-sogn.toml").display().to_string()));
    let sc = Scenario::from_toml(&text, &dir).unwrap();
    let a = vakt::sim::simulate(&sc, "t", None, |_| {}).unwrap();
    let b = vakt::sim::simulate(&sc, "t", None, |_| {}).unwrap();
    assert_eq!(a.json(), b.json());
    assert_eq!(a.csv(), b.csv());
    assert_eq!(vakt::sim::html::page(&a), vakt::sim::html::page(&b));
    // Three replications: confidence intervals are there and not zero.
    assert!(a.rows.iter().all(|r| r.replications == 3));
    assert!(a.rows.iter().any(|r| r.home_care_per_day_ci95 > 0.0));
    let sc2 = Scenario::from_toml(&text.replace("seed = 2024", "seed = 7"), &dir).unwrap();
    let c = vakt::sim::simulate(&sc2, "t", None, |_| {}).unwrap();
    assert_ne!(a.csv(), c.csv(), "another seed, another year");
    // The HTML opens offline: no scripts, no external references.
    let html = vakt::sim::html::page(&a);
    assert!(html.contains("<svg") && !html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
}

#[test]
fn a_history_file_is_replayed_with_its_centre_decisions() {
    let dir = temp("history");
    let text = std::fs::read_to_string(root().join("simulations/indre-sogn-2024.toml")).unwrap();
    let text = text
        .replace("days = 365", "days = 1")
        .replace("config = \"../config/indre-sogn.toml\"", &format!("config = {:?}", root().join("config/indre-sogn.toml").display().to_string()));
    let sc = Scenario::from_toml(&text, &dir).unwrap();
    let history = dir.join("history.csv");
    std::fs::write(
        &history,
        "alarm_id,raised_at,municipality,resident_id,kind,lat,lon,resolved_by_centre\n\
         h1,2024-01-01T08:00:00Z,vik,vik-u1,fall,,,true\n\
         h2,2024-01-01T08:30:00Z,vik,vik-u2,safety,,,false\n\
         h3,2024-01-01T09:00:00Z,sogndal,new-person,safety,61.23,7.10,true\n\
         h4,2024-01-01T09:10:00Z,sogndal,sogndal-u3,door,,,\n",
    )
    .unwrap();
    let mut it = vakt::sim::history::read(&history, sc.start).unwrap();
    let run = world::run(&sc, Some(ResponseModel::SharedCentre), 0, world::AlarmSource::History(&mut it)).unwrap();
    let k = run.kpi.total();
    assert_eq!(k.alarms, 4);
    assert_eq!(k.answered, 4);
    // h1 and h3 resolved by the centre as in the history; h2 forwarded; h4 by the resolve share.
    assert!(k.resolved_by_centre >= 2 && k.resolved_by_centre <= 3, "{}", k.resolved_by_centre);
    assert!(k.forwarded_to_home_care >= 1);

    std::fs::write(&history, "alarm_id,raised_at,municipality,resident_id,kind,lat,lon,resolved_by_centre\nh1,2024-01-01T08:00:00Z,vik,vik-u1,earthquake,,,\n")
        .unwrap();
    let mut it = vakt::sim::history::read(&history, sc.start).unwrap();
    let err = world::run(&sc, Some(ResponseModel::SharedCentre), 0, world::AlarmSource::History(&mut it)).err().unwrap();
    assert!(err.contains("line 2") && err.contains("unknown kind"), "{err}");
}

#[test]
fn scenario_mistakes_are_reported() {
    let dir = temp("mistakes");
    let text = std::fs::read_to_string(root().join("simulations/indre-sogn-2024.toml")).unwrap();
    let text = text.replace("config = \"../config/indre-sogn.toml\"", &format!("config = {:?}", root().join("config/indre-sogn.toml").display().to_string()));
    for (from, to, want) in [
        ("decline_probability = 0.10", "decline_probability = 1.5", "within 0..1"),
        ("compare = \"all\"", "compare = \"some\"", "compare"),
        ("id = \"aurland\"\nper_year", "id = \"atlantis\"\nper_year", "atlantis"),
        ("median = 10, spread = 1.7", "median = 10, spread = 0.5", "staff.reply_delay"),
        ("days = 365", "dayz = 365", "unknown field"),
    ] {
        assert!(text.contains(from), "{from}");
        let e = Scenario::from_toml(&text.replace(from, to), &dir).err().unwrap();
        assert!(e.contains(want), "{want}: {e}");
    }
}
