//! Simulator speed (issue 4): `cargo bench --bench simulate` (`-- --quick`: 1 M alarms
//! instead of 10 M).
//!
//! 1. One simulated year of Indre Sogn, all six municipalities under all four models
//!    (`simulations/indre-sogn-2024.toml`), wall time.
//! 2. Ten million alarms through one model (mobile guard room and shared centre), i.e.
//!    about 281 years of Indre Sogn, with
//!    the process's peak memory after 1/10 and after all of them: the input is streamed,
//!    so memory must not grow with the length of the history.
//! 3. Events per second, against a bare binary-heap event loop of the same number of
//!    events measured in the same run (the floor for any discrete-event simulator).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::time::Instant;

use vakt::core::ResponseModel;
use vakt::sim::{Scenario, world};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The floor: push and pop `n` events through a binary heap, each scheduling the next.
fn bare_heap_loop(n: u64) -> f64 {
    let started = Instant::now();
    let mut heap = BinaryHeap::new();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..1000u64 {
        heap.push(Reverse((i, i)));
    }
    let mut done = 0u64;
    let mut checksum = 0u64;
    while let Some(Reverse((t, id))) = heap.pop() {
        done += 1;
        checksum = checksum.wrapping_add(id);
        if done + (heap.len() as u64) < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            heap.push(Reverse((t + 1 + x % 10_000, id)));
        }
    }
    std::hint::black_box(checksum);
    started.elapsed().as_secs_f64()
}

/// The shipped scenario over `days`, with alarms, users, staff and operators all
/// multiplied by `scale` (a region `scale` times Indre Sogn, equally well staffed).
fn scenario(days: u32, scale: f64) -> Scenario {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("simulations/indre-sogn-2024.toml")).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|line| {
            let scaled = ["per_year = ", "users = ", "day = ", "evening = ", "night = "].iter().find_map(|key| {
                let rest = line.strip_prefix(key)?;
                let n: f64 = rest.split('#').next()?.trim().parse().ok()?;
                Some(format!("{key}{}", (n * scale).round()))
            });
            if line.starts_with("days = ") { format!("days = {days}") } else { scaled.unwrap_or_else(|| line.to_owned()) }
        })
        .collect();
    Scenario::from_toml(&text.join("\n"), &root.join("simulations")).unwrap()
}

/// Resets the peak-memory mark (Linux: `clear_refs` 5), so each run reports its own.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// One run: (seconds, peak MiB, alarms, events).
fn measured_run(sc: &Scenario, model: ResponseModel) -> (f64, f64, u64, u64) {
    reset_peak();
    let started = Instant::now();
    let r = world::run(sc, Some(model), 0, world::AlarmSource::Synthetic).unwrap();
    (started.elapsed().as_secs_f64(), peak_rss_mib(), r.kpi.total().alarms, r.stats.events)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("\n## vakt simulator speed\n");

    // 1. A year, six municipalities, four models.
    let sc = scenario(365, 1.0);
    let started = Instant::now();
    let report = vakt::sim::simulate(&sc, "indre-sogn-2024", None, |_| {}).unwrap();
    let year = started.elapsed().as_secs_f64();
    let alarms: f64 = report.rows.iter().map(|r| r.alarms).sum();
    println!(
        "- one year of Indre Sogn, 4 models ({alarms:.0} alarms in all, runs in parallel on {} cores): {year:.2} s",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 2. Ten million alarms through one model: Indre Sogn's 35,534 alarms a year, for
    //    as many years as it takes (about 281), the same world all along.
    let target: f64 = if quick { 1e6 } else { 1e7 };
    let scale = 1.0;
    let days = (target / (35_534.0 * scale) * 365.0).ceil() as u32;
    for model in [ResponseModel::MobileGuardRoom, ResponseModel::SharedCentre] {
        let (t_tenth, rss_tenth, a_tenth, e_tenth) = measured_run(&scenario(days / 10, scale), model);
        let (t, rss, a, e) = measured_run(&scenario(days, scale), model);
        let floor = bare_heap_loop(e);
        println!(
            "- {model}, {days} days of Indre Sogn: {a} alarms, {e} events in {t:.1} s ({:.2} M events/s, {:.0} k alarms/s); \
             peak memory {rss_tenth:.0} MiB after {a_tenth} alarms ({t_tenth:.1} s, {e_tenth} events), {rss:.0} MiB after {a}; \
             bare binary-heap loop of {e} events: {floor:.2} s, so the simulator costs {:.1}× the floor",
            e as f64 / t / 1e6,
            a as f64 / t / 1e3,
            t / floor
        );
    }
}
