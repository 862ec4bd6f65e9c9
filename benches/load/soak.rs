//! A long run of vakt with the whole life cycle, its memory and store sampled: what
//! grows after the dedupe window is full is a leak.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::broker_port;
use crate::paths::*;
use crate::support::{self, unique};

/// `--soak MINUTES` (see `main`): the residents the soak's alarms go to, in turn.
pub(crate) const SOAK_RESIDENTS: u64 = 2000;

/// The soak's alarm number `seq`: every hundredth one malformed (an unknown kind, refused
/// and counted), the rest for the residents in turn.
pub(crate) fn soak_alarm(seq: u64) -> (String, Vec<u8>) {
    let raised = vakt::live::clock::wall_clock().to_string();
    let kind = if seq % 100 == 99 { "not_a_kind" } else { "safety" };
    let resident = seq % SOAK_RESIDENTS;
    (
        "vakt/v1/alarms/fjord".to_owned(),
        format!("{{\"alarm_id\":\"L{seq}\",\"resident_id\":\"r{resident}\",\"kind\":\"{kind}\",\"raised_at\":\"{raised}\"}}").into_bytes(),
    )
}

/// What the soak's staff did, as vakt answered them.
#[derive(Default)]
pub(crate) struct Responses {
    offers: AtomicU64,
    declined: AtomicU64,
    closed: AtomicU64,
    refused: AtomicU64,
}

/// Every staff member at once, as their apps: the first offer of every tenth incident is
/// declined (vakt offers it to the next), every other offer is accepted, and the incident
/// is marked on site and closed at once.
pub(crate) async fn respond(port: u16, seen: Arc<Responses>) {
    let mut opts = MqttOptions::new(unique("bench-responder"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30)).set_inflight(1000);
    let (client, mut el) = AsyncClient::new(opts, 100_000);
    client.subscribe("vakt/v1/staff/+/offers", QoS::AtLeastOnce).await.unwrap();
    let mut declined = std::collections::HashSet::new();
    loop {
        let p = match el.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => p,
            Ok(_) => continue,
            Err(e) => panic!("the soak's staff lost the broker: {e}"),
        };
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&p.payload) else { continue };
        let id = m["incident_id"].as_u64().unwrap_or(0);
        match m["type"].as_str() {
            Some("offer") => {
                seen.offers.fetch_add(1, Ordering::Relaxed);
                let staff = p.topic.split('/').nth(3).unwrap_or_default();
                let replies = format!("vakt/v1/staff/{staff}/replies");
                let actions: &[&str] = if id % 10 == 0 && declined.insert(id) {
                    &[r#""action":"decline""#]
                } else {
                    declined.remove(&id);
                    &[r#""action":"accept""#, r#""action":"on_site""#, r#""action":"close","outcome":"helped""#]
                };
                for a in actions {
                    // Not `publish(..).await`: this loop is the one that drains the queue.
                    client.try_publish(&replies, QoS::AtLeastOnce, false, format!("{{\"incident_id\":{id},{a}}}")).expect("the soak's staff keep up");
                }
            }
            Some("confirmed") if m["action"] == "decline" => {
                seen.declined.fetch_add(1, Ordering::Relaxed);
            }
            Some("confirmed") if m["action"] == "close" => {
                seen.closed.fetch_add(1, Ordering::Relaxed);
            }
            Some("refused") => {
                seen.refused.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// A process's resident memory, and its peak, in KiB (Linux).
pub(crate) fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0);
    (field("VmRSS:"), field("VmHWM:"))
}

/// The store's size on disk, in bytes: the SQLite file with its log, or the PostgreSQL database.
pub(crate) async fn store_bytes(db: &support::Db) -> u64 {
    match db {
        support::Db::Sqlite(path) => {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::read_dir(path.parent().unwrap())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        }
        support::Db::Postgres(name) => {
            let mut admin = support::postgres_admin().await;
            sqlx::query_scalar::<_, i64>("SELECT pg_database_size($1)").bind(name).fetch_one(&mut admin).await.unwrap() as u64
        }
    }
}

/// One sample of the soak.
pub(crate) struct Sample {
    minute: f64,
    alarms: u64,
    rss_kib: u64,
    open: f64,
    closed: u64,
    store: u64,
}

/// `--soak MINUTES`: vakt on `store` for `minutes` at `rate` alarms per second with the
/// whole life cycle (offer, a decline in ten, accept, on site, close; one alarm in a
/// hundred refused), its resident memory sampled every 30 s. The dedupe window is one
/// hour (the least it can be), so that in a soak longer than that every part of vakt
/// that keeps something per alarm has reached its steady state: memory that still grows
/// after the first hour is a leak.
///
/// Long: the soak's loop and its report, in the order they run.
pub(crate) async fn soak(store: &str, minutes: u64, rate: u64) {
    let toml = format!("[engine]\ndedupe_window_hours = 1\n{}", support::FJORD_TOML);
    let (mut v, _staff) = start_vakt_with(store, SOAK_RESIDENTS, &toml).await;
    let pid = v.child.id();
    let seen = Arc::new(Responses::default());
    let responder = tokio::spawn(respond(broker_port(), seen.clone()));
    let started = Instant::now();
    let samples = Arc::new(std::sync::Mutex::new(Vec::<Sample>::new()));
    let sampler = {
        let (samples, seen, http, db) = (samples.clone(), seen.clone(), v.http, v.backend.db.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            loop {
                every.tick().await;
                let s = Sample {
                    minute: started.elapsed().as_secs_f64() / 60.0,
                    alarms: (started.elapsed().as_secs_f64() * rate as f64) as u64,
                    rss_kib: rss_kib(pid).0,
                    open: tokio::task::spawn_blocking(move || support::metric_at(http, "vakt_open_incidents")).await.unwrap(),
                    closed: seen.closed.load(Ordering::Relaxed),
                    store: store_bytes(&db).await,
                };
                eprintln!(
                    "    [soak {:.1} min: about {} alarms, vakt RSS {} KiB, {} open, {} closed, store {} KiB]",
                    s.minute,
                    s.alarms,
                    s.rss_kib,
                    s.open,
                    s.closed,
                    s.store / 1024
                );
                samples.lock().unwrap().push(s);
            }
        })
    };
    let cpu = CpuUse::from_now(pid);
    let stats = run_load(broker_port(), rate, minutes * 60, "vakt/v1/staff/+/offers", soak_alarm, alarm_seq).await;
    sampler.abort();
    // Let the last replies be taken.
    tokio::time::sleep(Duration::from_secs(2)).await;
    responder.abort();
    let sent = rate * minutes * 60;
    let (vakt_cpu, _) = cpu.per_alarm_us(sent);
    let received = v.metric("vakt_alarms_received_total{municipality=\"fjord\"}") as u64;
    // Every message out has been acknowledged by the broker: a mark that stopped moving
    // would keep its gap in memory and publish everything after it again at the next start.
    let (outbox_pending, events_unacked) = (v.metric("vakt_outbox_pending"), v.metric("vakt_incident_events_unacknowledged"));
    let refused = v.metric("vakt_messages_rejected_total{reason=\"unknown_kind\"}") as u64;
    let (rss, peak) = rss_kib(pid);
    let store_end = store_bytes(&v.backend.db).await;
    let _ = v.stop_within(Duration::from_secs(120));
    forget_session(&v).await;
    remove_store(&v.backend.db, &v.dir).await;

    let samples = std::mem::take(&mut *samples.lock().unwrap());
    println!("\n## vakt soak: {store}, {minutes} min at {rate} alarms/s, dedupe window 1 h\n");
    println!("| minute | alarms sent (about) | vakt RSS | open incidents | closed | store on disk |");
    println!("|---|---|---|---|---|---|");
    // Every 5 minutes (a sample every 30 s, the first at the start).
    for s in samples.iter().skip(10).step_by(10) {
        println!(
            "| {:.0} | {} | {:.1} MiB | {} | {} | {:.1} MiB |",
            s.minute,
            s.alarms,
            s.rss_kib as f64 / 1024.0,
            s.open,
            s.closed,
            s.store as f64 / 1048576.0
        );
    }
    let closed = seen.closed.load(Ordering::Relaxed);
    println!(
        "\n- alarms: {sent} sent, {received} taken, {refused} refused (unknown kind): {}; {} offers (first offers within 10 s of the last alarm: {} / {}), {} declined, {closed} incidents closed, {} replies refused",
        if received + refused == sent { "none lost" } else { "SOME LOST" },
        seen.offers.load(Ordering::Relaxed),
        stats.received,
        sent - refused,
        seen.declined.load(Ordering::Relaxed),
        seen.refused.load(Ordering::Relaxed),
    );
    println!("- at the end, not yet acknowledged by the broker: {outbox_pending} outbox messages, {events_unacked} incident events");
    println!("- alarm → first offer over the soak: p50 {}, p99 {}, p99.9 {}", Stats::ms(stats.p50), Stats::ms(stats.p99), Stats::ms(stats.p999));
    println!("- vakt's CPU per alarm (its life cycle, four messages in and five out): {vakt_cpu:.0} µs");
    println!(
        "- vakt RSS at the end {:.1} MiB, peak {:.1} MiB; store {:.0} bytes per alarm",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        store_end as f64 / sent as f64
    );
    let at = |minute: f64| samples.iter().min_by(|a, b| (a.minute - minute).abs().total_cmp(&(b.minute - minute).abs()));
    if let (Some(a), Some(b)) = (at(if minutes > 65 { 62.0 } else { 5.0 }), samples.last()) {
        if b.alarms > a.alarms {
            println!(
                "- RSS from minute {:.0} to {:.0}: {:+.1} MiB, {:+.0} bytes per alarm over those {} alarms{}",
                a.minute,
                b.minute,
                (b.rss_kib as f64 - a.rss_kib as f64) / 1024.0,
                (b.rss_kib as f64 - a.rss_kib as f64) * 1024.0 / (b.alarms - a.alarms) as f64,
                b.alarms - a.alarms,
                if minutes > 65 { " (after the dedupe window filled)" } else { " (the dedupe window still filling: it keeps each alarm's id for an hour)" }
            );
        }
    }
}
