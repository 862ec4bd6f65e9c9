//! Load benchmark for the live engine (issue 3), through Mosquitto.
//!
//! `cargo bench --bench load` (add `-- --quick` for 5 s steps, `-- --stores sqlite`,
//! `-- --step STORE:RATE [--step-secs N]` for one alarm → offer step (STORE `echo`: (e) below),
//! `-- --repeat N` for the latency goal's comparison at 1,000/s only, N times over, with its median
//! (through Mosquitto, or with `--embedded` through vakt's own broker),
//! `-- --soak MINUTES [--soak-rate R]` for vakt's memory over a long run with the whole life cycle,
//! `-- --machine-broker` for the machine's Mosquitto on 1883 with its default settings,
//! `-- --embedded` for vakt's own broker, in-process, with SQLite and with PostgreSQL,
//! `-- --devices` for alarm devices: DC-09 frame → ACK, and supervision's CPU, devices.rs).
//!
//! By default the broker is a Mosquitto of the bench's own (the machine's binary) with
//! `persistence true`, `set_tcp_nodelay true` and `max_inflight_messages 1000`, the settings docs/mqtt.md
//! recommends for vakt: with Mosquitto's defaults, Nagle's algorithm on the broker side
//! holds its small packets to vakt (PUBACKs, the next alarm) until a delayed TCP ACK,
//! which adds about 20 ms at low rates; and 20 messages in flight to vakt cap a batch.
//!
//! In one run, through the same broker:
//! (a) the floor: a message published by one client and received by another (one hop);
//! (b) an alarm published by a device client until the offer reaches the staff client
//!     through vakt (two hops, plus the engine and its store, persistence on in both).
//! (e) the same alarm → offer path through an engine that does nothing: a process of
//!     the bench's own that answers each alarm at once with an offer-sized message (two
//!     hops and an MQTT client's work, no engine, no store);
//! (f) the durable-write floor of this disk: a 300-byte write into a preallocated file
//!     made durable with fdatasync, at the same rates (a store commit costs at least this);
//! (g) the store's own commit floor: a one-row transaction through sqlx, on SQLite and
//!     on PostgreSQL as vakt writes them, at the same rates.
//! All at 100 and 1,000 per second; p50, p99, p99.9 and the ratio of (b) to twice (a),
//! to (e), to twice (a) plus (f), and to twice (a) plus (g). Then the highest rate a
//! step sustains with p99 under 100 ms and every offer delivered: through (e) first (the
//! most any engine could sustain with the broker and the load generator on the same
//! cores), then (b) on SQLite and on PostgreSQL, with each as a share of (e)'s. Each (b) step also prints (on
//! stderr) the store's commit times and the CPU time per alarm of vakt and of the whole
//! machine, which on these shared 2-core machines is what sets the sustained rate.
//!
//! vakt runs as its own process (the release binary), each (b) step on a fresh store
//! with one resident per alarm (an open incident per resident; a repeat would only be
//! attached, with no new offer). Offers do not expire during a step (timeout 600 s), so
//! what is measured is the alarm → offer path, not escalations. Each step starts on a
//! quiet disk (a PostgreSQL CHECKPOINT, then `sync`) and its store is removed after it,
//! so a step does not pay for the writes of the one before; the broker's session of
//! the step's vakt is ended after it, so later steps do not pay for a broker queueing
//! their alarms for a vakt that is gone.

#[allow(dead_code)]
#[path = "../../tests/it/live/support.rs"]
mod support;

mod devices;
mod floors;
mod paths;
mod soak;

use std::time::Duration;

use clap::Parser;
use paths::{Stats, alarm_to, alarm_to_echo, alarm_to_offer, echo_engine, one_hop, repeated_ratios, row, settle_for_floor, start_vakt};
use support::{Mosquitto, free_port, temp_dir};

/// What to run (`cargo bench --bench load -- OPTIONS`); without an option, the full run.
#[derive(Parser)]
struct Args {
    /// 5 s steps instead of 30 (3 s instead of 10 for the sustained rate's steps).
    #[arg(long)]
    quick: bool,
    /// The stores, comma-separated: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    stores: Vec<String>,
    /// One alarm → offer step only (STORE `echo`: the engine that does nothing), for
    /// profiling or comparing two builds.
    #[arg(long, value_name = "STORE:RATE")]
    step: Option<String>,
    /// How long each step of `--step` and of the sustained rate lasts, in seconds.
    #[arg(long, value_name = "N")]
    step_secs: Option<u64>,
    /// The latency goal's comparison at 1,000/s only, N times over, with its median.
    #[arg(long, value_name = "N")]
    repeat: Option<usize>,
    /// vakt for this many minutes with the whole life cycle, its memory sampled.
    #[arg(long, value_name = "MINUTES")]
    soak: Option<u64>,
    /// The soak's alarms per second.
    #[arg(long, default_value_t = 20)]
    soak_rate: u64,
    /// The machine's Mosquitto on 1883, with its default settings.
    #[arg(long)]
    machine_broker: bool,
    /// vakt's own broker, in-process, with SQLite and with PostgreSQL.
    #[arg(long)]
    embedded: bool,
    /// Alarm devices: DC-09 frame → ACK against MQTT alarm → stored (`latency`), and
    /// 10,000 supervised devices' CPU (`supervision`); both without a value
    /// (benches/load/devices.rs).
    #[arg(long, value_name = "PART", num_args = 0..=1, default_missing_value = "all")]
    devices: Option<String>,
    /// Be the engine that does nothing, on the broker at this port (the bench runs itself so).
    #[arg(long, hide = true)]
    echo_engine: Option<u16>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

static BROKER: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

fn broker_port() -> u16 {
    *BROKER.get().expect("the broker's port is set first")
}

fn main() {
    let args = Args::parse();
    if let Some(port) = args.echo_engine {
        echo_engine(port);
        return;
    }
    let secs = if args.quick { 5 } else { 30 };
    let step_secs = args.step_secs.unwrap_or(if args.quick { 3 } else { 10 });
    let stores = if args.embedded { vec!["embedded".to_owned(), "embedded-postgres".to_owned()] } else { args.stores.clone() };
    let own_broker = if args.machine_broker {
        BROKER.set(1883).unwrap();
        None
    } else if args.embedded {
        BROKER.set(free_port()).unwrap();
        None
    } else {
        let port = free_port();
        BROKER.set(port).unwrap();
        Some(Mosquitto::start_with(&temp_dir("bench-broker"), port, "set_tcp_nodelay true\nmax_inflight_messages 1000", true))
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if let Some(step) = &args.step {
        let (store, rate) = step.split_once(':').expect("--step STORE:RATE");
        let b = rt.block_on(alarm_to(store, rate.parse().expect("rate"), step_secs));
        row(&format!("(b) {store} {rate}/s"), &b);
        return;
    }
    // The latency goal's comparison only: (a) then each store's (b) at 1,000/s, each
    // pair's ratio of (b) p99 to twice (a) p99, and the median per store. One pair is at
    // the mercy of this machine's noise; the median of several is the figure to judge by.
    if let Some(n) = args.repeat {
        assert!(n > 0, "--repeat N runs N > 0 times");
        rt.block_on(repeated_ratios(&stores, n, secs, args.embedded));
        return;
    }
    if let Some(part) = &args.devices {
        println!("\n## vakt and alarm devices: {secs} s per rate, the bench's broker on 127.0.0.1:{}, vakt as a separate process\n", broker_port());
        rt.block_on(devices::run(&stores, secs, part));
        return;
    }
    if let Some(minutes) = args.soak {
        // With `--embedded`, the defaults of a fresh machine: vakt's own broker and SQLite.
        let stores = if args.embedded { vec!["embedded".to_owned()] } else { stores };
        for store in &stores {
            rt.block_on(soak::soak(store, minutes, args.soak_rate));
        }
        return;
    }
    let broker = match (&own_broker, args.embedded) {
        (Some(_), _) => "the bench's own Mosquitto (persistence, set_tcp_nodelay, max_inflight_messages 1000)",
        (None, true) => "vakt's embedded broker (rumqttd), with SQLite (embedded) and PostgreSQL (embedded-postgres),",
        (None, false) => "the machine's Mosquitto, default settings",
    };
    println!("\n## vakt load benchmark: {secs} s per rate, {broker} on 127.0.0.1:{}, vakt as a separate process\n", broker_port());
    rt.block_on(latency(&stores, secs, args.embedded));
    rt.block_on(sustained(&stores, step_secs, args.embedded));
}

/// At 100 and 1,000 alarms/s: the floors, then alarm → offer through vakt on each
/// store, and the ratios between them. Each rate's floors are measured just before its
/// (b) steps, so that (a), (f) and (b) see the machine in the same mood (its noise
/// drifts over minutes).
async fn latency(stores: &[String], secs: u64, embedded: bool) {
    println!("| path | received / sent | p50 | p99 | p99.9 |");
    println!("|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for rate in [100, 1000] {
        // The embedded broker lives in a vakt process: the floor is measured through it.
        let host = if embedded { Some(start_vakt("embedded", 10).await) } else { None };
        settle_for_floor(stores).await;
        let a = one_hop(rate, secs).await;
        row(&format!("(a) one hop, {rate}/s"), &a);
        // Not through the embedded broker: the vakt process that hosts it is itself
        // subscribed to the alarms, and would answer some of them too.
        let e = if embedded {
            None
        } else {
            let e = alarm_to_echo(rate, secs).await;
            row(&format!("(e) alarm → offer via an engine that does nothing, {rate}/s"), &e);
            Some(e)
        };
        if let Some((mut v, _)) = host {
            let _ = v.stop_within(Duration::from_secs(120));
        }
        let f = tokio::task::spawn_blocking(move || floors::durable_append(rate, secs)).await.unwrap();
        row(&format!("(f) durable write on this disk (300 B + fdatasync, preallocated file), {rate}/s"), &f);
        for store in stores {
            let kind = if store.ends_with("postgres") { "postgres" } else { "sqlite" };
            let g = tokio::task::spawn_blocking(move || floors::store_commit(kind, rate, secs)).await.unwrap();
            row(&format!("(g) one commit of {store}'s store (300 B row), {rate}/s"), &g);
            let b = alarm_to_offer(store, rate, secs).await;
            row(&format!("(b) alarm → offer via vakt + {store}, {rate}/s"), &b);
            ratios.push(ratio_line(store, rate, &a, &b, e.as_ref(), &f, &g));
        }
    }
    let through_e = if embedded { "" } else { " to the path through an engine that does nothing (e)," };
    println!("\nRatio of (b) to twice (a),{through_e} to twice (a) plus one durable write (f), and to twice (a) plus one commit of the store (g), same run:");
    for r in &ratios {
        println!("- {r}");
    }
}

fn ratio_line(store: &str, rate: u64, a: &Stats, b: &Stats, e: Option<&Stats>, f: &Stats, g: &Stats) -> String {
    let to_e = e.map_or(String::new(), |e| format!("; to (e): p50 {:.2}×, p99 {:.2}×", b.p50 / e.p50, b.p99 / e.p99));
    format!(
        "{store} {rate}/s: to 2×(a): p50 {:.2}×, p99 {:.2}×, p99.9 {:.2}×{to_e}; to 2×(a) + (f): p50 {:.2}×, p99 {:.2}×; to 2×(a) + (g): p50 {:.2}×, p99 {:.2}×",
        b.p50 / (2.0 * a.p50),
        b.p99 / (2.0 * a.p99),
        b.p999 / (2.0 * a.p999),
        b.p50 / (2.0 * a.p50 + f.p50),
        b.p99 / (2.0 * a.p99 + f.p99),
        b.p50 / (2.0 * a.p50 + g.p50),
        b.p99 / (2.0 * a.p99 + g.p99)
    )
}

/// The highest rate a step sustains with every offer delivered and p99 under 100 ms:
/// first through the engine that does nothing (e), the most any engine could sustain
/// with the broker and the load generator on this machine's cores, then through vakt
/// on each store, each as a share of (e)'s.
async fn sustained(stores: &[String], step_secs: u64, embedded: bool) {
    // Through the embedded broker there is no broker between the steps for (e) to use.
    let echo = (!embedded).then(|| "echo".to_owned());
    println!(
        "\nHighest sustained rate ({step_secs} s steps, every offer delivered, p99 < 100 ms){}:",
        if echo.is_some() {
            ", first through the engine that does nothing (e): the most any engine could sustain on this machine with the broker and the load generator on its cores"
        } else {
            ""
        }
    );
    let mut echo_rate = None;
    for store in echo.iter().chain(stores) {
        let mut good = 0u64;
        let mut bad = None;
        let mut rate = 2000u64;
        for _ in 0..6 {
            let b = alarm_to(store, rate, step_secs).await;
            let ok = b.received == b.sent && b.p99 < 100.0;
            println!("- {store} at {rate}/s: {} / {} offers, p99 {}: {}", b.received, b.sent, Stats::ms(b.p99), if ok { "sustained" } else { "not sustained" });
            if ok {
                good = rate;
            } else {
                bad = Some(rate);
            }
            rate = match bad {
                None => rate * 2,
                Some(b) if b - good > b / 8 => (good + b) / 2,
                Some(_) => break,
            };
        }
        println!("- **{store}: {good} alarms/s sustained**");
        match echo_rate {
            None if store == "echo" => echo_rate = Some(good),
            Some(floor) => println!("- {store}: {:.2} of the rate through the engine that does nothing", good as f64 / floor.max(1) as f64),
            None => {}
        }
    }
}
