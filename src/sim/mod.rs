//! `vakt simulate`: the planners' simulator (docs/simulation.md).
//!
//! A scenario's alarms (synthetic, or a history file) are replayed through the same
//! core engine as `vakt run`, once per response model (`compare = "all"`) with common
//! random numbers, and reported per municipality and model.

pub mod dist;
pub mod history;
pub mod html;
pub mod report;
pub mod scenario;
pub mod world;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use report::Report;
pub use scenario::Scenario;

/// What `vakt simulate` was asked to do.
pub struct Options {
    pub scenario: PathBuf,
    pub alarms: Option<PathBuf>,
    pub seed: Option<u64>,
    pub out: Option<PathBuf>,
}

/// Runs every model and replication of a scenario and builds the report.
/// `progress` gets one line per finished run.
pub fn simulate(sc: &Scenario, name: &str, alarms: Option<&Path>, mut progress: impl FnMut(&str)) -> Result<Report, String> {
    let mut runs = Vec::new();
    let models = sc.models();
    let reps = sc.file.simulation.replications;
    for (mi, model) in models.iter().enumerate() {
        let mut per_model = Vec::new();
        for rep in 0..reps {
            let started = Instant::now();
            let result = match alarms {
                Some(path) => {
                    let mut it = history::read(path, sc.start)?;
                    world::run(sc, *model, rep, world::AlarmSource::History(&mut it))?
                }
                None => world::run(sc, *model, rep, world::AlarmSource::Synthetic)?,
            };
            let secs = started.elapsed().as_secs_f64();
            progress(&format!(
                "[{}/{}] {} replication {}/{}: {} alarms, {} events in {:.2} s",
                mi * reps as usize + rep as usize + 1,
                models.len() * reps as usize,
                model.map_or("configured", |m| m.as_str()),
                rep + 1,
                reps,
                result.kpi.total().alarms,
                result.stats.events,
                secs
            ));
            per_model.push(result);
        }
        runs.push(per_model);
    }
    Ok(report::build(sc, name, &runs))
}

/// The command: load, simulate, print the table, write CSV, JSON and HTML to `--out`.
pub fn run_cli(opts: Options, out: &mut impl Write) -> Result<(), String> {
    let mut sc = Scenario::load(&opts.scenario)?;
    if let Some(seed) = opts.seed {
        sc.file.simulation.seed = seed;
    }
    let name = opts.scenario.file_stem().map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    let started = Instant::now();
    let report = simulate(&sc, &name, opts.alarms.as_deref(), |line| eprintln!("{line}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let w = |e: std::io::Error| e.to_string();
    writeln!(
        out,
        "{}: {} days, seed {}, {} replication(s), target {} s ({:.1} s)\n",
        report.scenario, report.days, report.seed, report.replications, report.target_secs, elapsed
    )
    .map_err(w)?;
    write!(out, "{}", report.table()).map_err(w)?;
    if let Some(dir) = &opts.out {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (file, text) in [("report.csv", report.csv()), ("report.json", report.json()), ("report.html", html::page(&report))] {
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        writeln!(out, "\nwrote {}/report.csv, report.json, report.html", dir.display()).map_err(w)?;
    }
    Ok(())
}
