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

/// Runs every model and replication of a scenario and builds the report. The runs are
/// independent (each has its own engine and keyed randomness), so they run on all
/// cores; the report does not depend on the order they finish in.
/// `progress` gets one line per finished run.
pub fn simulate(sc: &Scenario, name: &str, alarms: Option<&Path>, progress: impl FnMut(&str) + Send) -> Result<Report, String> {
    let models = sc.models();
    let reps = sc.file.simulation.replications as usize;
    let jobs: Vec<(usize, u32)> = (0..models.len()).flat_map(|m| (0..reps as u32).map(move |r| (m, r))).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(jobs.len()));
    let progress = std::sync::Mutex::new(progress);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len()).max(1);
    let days_done = std::sync::atomic::AtomicU64::new(0);
    let runs_done = std::sync::atomic::AtomicUsize::new(0);
    let total_days = sc.file.simulation.days as u64 * jobs.len() as u64;
    let day_done = || {
        days_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    std::thread::scope(|scope| {
        // A progress bar on a terminal, redrawn five times a second.
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            scope.spawn(|| {
                while runs_done.load(std::sync::atomic::Ordering::Relaxed) < jobs.len() {
                    let done = days_done.load(std::sync::atomic::Ordering::Relaxed).min(total_days);
                    let width = 40;
                    let filled = (done * width / total_days.max(1)) as usize;
                    eprint!("\r[{}{}] {:>3} % simulated days", "#".repeat(filled), ".".repeat(width as usize - filled), done * 100 / total_days.max(1));
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                eprint!("\r{}\r", " ".repeat(70));
            });
        }
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(mi, rep)) = jobs.get(i) else { break };
                    let model = models[mi];
                    let started = Instant::now();
                    let result = match alarms {
                        Some(path) => history::read(path, sc.start)
                            .and_then(|mut it| world::run_with_progress(sc, model, rep, world::AlarmSource::History(&mut it), &day_done)),
                        None => world::run_with_progress(sc, model, rep, world::AlarmSource::Synthetic, &day_done),
                    };
                    if let Ok(r) = &result {
                        let line = format!(
                            "{} replication {}/{}: {} alarms, {} events in {:.2} s",
                            model.map_or("configured", |m| m.as_str()),
                            rep + 1,
                            reps,
                            r.kpi.total().alarms,
                            r.stats.events,
                            started.elapsed().as_secs_f64()
                        );
                        (progress.lock().expect("progress"))(&line);
                    }
                    results.lock().expect("results").push((i, result));
                    runs_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|(i, _)| *i);
    let mut runs: Vec<Vec<world::RunResult>> = (0..models.len()).map(|_| Vec::new()).collect();
    for (i, r) in results {
        runs[jobs[i].0].push(r?);
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
    let report = simulate(&sc, &name, opts.alarms.as_deref(), |line| eprintln!("\r{line:<70}"))?;
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
