//! `--devices`: alarm devices against vakt (docs/devices.md), in one run:
//! (a) the broker's one hop (the floor, as in the full run);
//! (s) an MQTT alarm until its `raised` event (published after the commit that stores
//!     it) reaches a subscriber: alarm → stored, through the broker both ways;
//! (d) a SIA DC-09 frame (Contact ID 101, over TCP, 50 panels' connections) until the
//!     panel has vakt's ACK, which leaves after the same commit: frame → stored, direct;
//! at 100 and 1,000 events/s, each on a fresh vakt, p50/p99/p99.9 and (d) against (s) and
//! twice (a). Then vakt's CPU with 10,000 supervised devices (heartbeat 60 s): idle with
//! none registered, idle with all of them registered and heard (their deadlines are
//! timers), and while each sends a `NULL` every 60 s (167 a second, over UDP).
//!
//! Latency is counted from when each frame was written, as (s)'s is from when each alarm
//! was published (a frame is written up to a timer tick, 1 ms, after it was due). A
//! panel's connection waits for its ACK before its next frame, so a slow answer could
//! hold the next frames back unseen (coordinated omission): the frames written more
//! than 5 ms after they were due are counted and printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::paths::{CpuUse, LADDER, Stats, alarm_seq, forget_session, remove_store, row, run_load, settle_disk, start_vakt_with};
use crate::support::{FJORD_TOML, free_port};
use crate::{broker_port, paths};

/// Panels' connections sending at once (each waits for its ACK before its next frame).
const PANELS: u64 = 50;

/// The receivers' configuration for the bench: bounds wide enough for one address
/// (the bench) to be every panel.
fn receivers(dc09: u16) -> String {
    format!(
        "\n[dc09]\nlisten = \"127.0.0.1:{dc09}\"\n\n[devices]\nmax_connections_per_address = 1000\nmax_messages_per_second = 100000\nsupervision_grace_secs = 60\n"
    )
}

/// Registers `n` DC-09 devices, account `D{i}` hex... as `{i:X}` padded, for residents
/// `r{i}`; `heartbeat`: their supervision interval. Waits until the engine has them.
async fn register(v: &crate::support::Vakt, n: u64, heartbeat: Option<u64>) {
    let devices: Vec<vakt::live::devices::Device> = (0..n)
        .map(|i| vakt::live::devices::Device::new(&format!("d{i}"), "dc09", &account(i), &format!("r{i}"), "", heartbeat).expect("a valid device"))
        .collect();
    let store = v.store().await;
    store.upsert_devices(&devices, vakt::live::clock::wall_clock().as_millis()).await.expect("devices stored");
    store.close().await;
    for _ in 0..400 {
        if v.metric("vakt_devices_registered") == n as f64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("vakt did not take the register of {n} devices");
}

fn account(i: u64) -> String {
    format!("{:06X}", 0x100000 + i)
}

/// A Contact ID 101 (personal emergency) frame from device `i`, timed now.
fn emergency(i: u64) -> Vec<u8> {
    let now = vakt::live::devices::dc09::format_timestamp(vakt::live::clock::wall_clock());
    vakt::live::devices::dc09::frame(&format!("\"ADM-CID\"0001L0#{a}[#{a}|1101 01 001]_{now}", a = account(i)))
}

fn null(i: u64, seq: u64) -> Vec<u8> {
    let now = vakt::live::devices::dc09::format_timestamp(vakt::live::clock::wall_clock());
    vakt::live::devices::dc09::frame(&format!("\"NULL\"{:04}L0#{}[]_{now}", seq % 10_000, account(i)))
}

/// (d): `rate` frames a second for `secs`, one device (and resident) each, over
/// [`PANELS`] connections; each frame's time from its write to its ACK.
async fn frames_to_ack(port: u16, rate: u64, secs: u64) -> Stats {
    let total = rate * secs;
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for panel in 0..PANELS {
        tasks.push(tokio::spawn(async move {
            let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("the DC-09 receiver");
            conn.set_nodelay(true).unwrap();
            let mut latencies = Vec::new();
            let mut late = 0u64;
            let mut buf = Vec::with_capacity(256);
            let mut i = panel;
            while i < total {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let written = Instant::now();
                if written.duration_since(due) > Duration::from_millis(5) {
                    late += 1;
                }
                conn.write_all(&emergency(i)).await.unwrap();
                buf.clear();
                let answered = tokio::time::timeout(Duration::from_secs(10), async {
                    let mut chunk = [0u8; 256];
                    while !buf.contains(&b'\r') {
                        let n = conn.read(&mut chunk).await.ok()?;
                        if n == 0 {
                            return None;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    Some(())
                })
                .await;
                if matches!(answered, Ok(Some(()))) && buf.windows(5).any(|w| w == b"\"ACK\"") {
                    latencies.push(written.elapsed().as_nanos() as u64);
                }
                i += PANELS;
            }
            (latencies, late)
        }));
    }
    let mut all = Vec::with_capacity(total as usize);
    let mut late = 0;
    for t in tasks {
        let (l, n) = t.await.unwrap();
        all.extend(l);
        late += n;
    }
    eprintln!("    [DC-09 {rate}/s: {late} of {total} frames written more than 5 ms after they were due]");
    paths::stats(total, all)
}

/// (s) and (d) at one rate, each on a fresh vakt.
async fn step(store: &str, rate: u64, secs: u64) -> (Stats, Stats) {
    let n = rate * secs;
    let dc09 = free_port();
    let toml = format!("{LADDER}{FJORD_TOML}{}", receivers(dc09));
    let (mut v, _staff) = start_vakt_with(store, n, &toml).await;
    settle_disk(&v.backend.db).await;
    let cpu = CpuUse::from_now(v.child.id());
    let s = run_load(broker_port(), rate, secs, "vakt/v1/incidents/fjord", paths::alarm, alarm_seq).await;
    let (vakt_cpu, machine_cpu) = cpu.per_alarm_us(n);
    eprintln!("    [{store} MQTT {rate}/s: CPU per alarm: vakt {vakt_cpu:.0} µs, whole machine {machine_cpu:.0} µs]");
    let _ = v.stop_within(Duration::from_secs(120));
    forget_session(&v).await;
    remove_store(&v.backend.db, &v.dir).await;

    let (mut v, _staff) = start_vakt_with(store, n, &toml).await;
    register(&v, n, None).await;
    settle_disk(&v.backend.db).await;
    let cpu = CpuUse::from_now(v.child.id());
    let d = frames_to_ack(dc09, rate, secs).await;
    let (vakt_cpu, machine_cpu) = cpu.per_alarm_us(n);
    eprintln!("    [{store} DC-09 {rate}/s: CPU per frame: vakt {vakt_cpu:.0} µs, whole machine {machine_cpu:.0} µs]");
    let stored = v.metric("vakt_device_messages_total{outcome=\"stored\",protocol=\"dc09\"}");
    assert_eq!(stored, d.received as f64, "every ACK is a stored frame");
    let _ = v.stop_within(Duration::from_secs(120));
    forget_session(&v).await;
    remove_store(&v.backend.db, &v.dir).await;
    (s, d)
}

/// 10,000 supervised devices: vakt's CPU idle without them, idle with them, and while
/// each sends a NULL every 60 s.
async fn supervision(store: &str, window: u64) {
    const DEVICES: u64 = 10_000;
    let dc09 = free_port();
    let toml = format!("{LADDER}{FJORD_TOML}{}", receivers(dc09));
    let (mut v, _staff) = start_vakt_with(store, DEVICES, &toml).await;
    let pid = v.child.id();
    let busy = |from: (f64, Instant)| 100.0 * (paths::process_cpu_secs(pid) - from.0) / from.1.elapsed().as_secs_f64();
    let now = || (paths::process_cpu_secs(pid), Instant::now());
    settle_disk(&v.backend.db).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = now();
    tokio::time::sleep(Duration::from_secs(window)).await;
    let idle_none = busy(t);

    register(&v, DEVICES, Some(60)).await;
    let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    socket.connect(("127.0.0.1", dc09)).await.unwrap();
    let acks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = {
        let (socket, acks) = (socket.clone(), acks.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok(n) = socket.recv(&mut buf).await {
                if buf[..n].windows(5).any(|w| w == b"\"ACK\"") {
                    acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
    };
    // Every device heard once (fast), so each has a deadline 2 minutes on.
    for i in 0..DEVICES {
        socket.send(&null(i, 0)).await.unwrap();
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let heard = acks.load(std::sync::atomic::Ordering::Relaxed);
    let t = now();
    tokio::time::sleep(Duration::from_secs(window)).await;
    let idle_with = busy(t);

    // Each device's NULL every 60 s: 10,000 spread over the minute.
    let t = now();
    let sent_from = acks.load(std::sync::atomic::Ordering::Relaxed);
    let begin = Instant::now();
    let mut sent = 0u64;
    let per_sec = DEVICES / 60;
    while begin.elapsed() < Duration::from_secs(window) {
        let due = (begin.elapsed().as_secs_f64() * DEVICES as f64 / 60.0) as u64;
        while sent < due {
            socket.send(&null(sent % DEVICES, 1 + sent / DEVICES)).await.unwrap();
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let beating = busy(t);
    let acked = acks.load(std::sync::atomic::Ordering::Relaxed) - sent_from;
    reader.abort();
    let cpu_per_null = 1e6 * (beating / 100.0) * window as f64 / sent.max(1) as f64;
    println!(
        "\n10,000 supervised devices on {store} (heartbeat 60 s, grace 60 s), vakt's CPU as a share of one core over {window} s:\n\
         - idle, no devices registered: {idle_none:.2} %\n\
         - idle, 10,000 registered and heard ({heard} ACKs), each with its deadline: {idle_with:.2} %\n\
         - each sending a NULL every 60 s (~{per_sec}/s; {sent} sent, {acked} ACKed): {beating:.2} %, {cpu_per_null:.0} µs of vakt's CPU per NULL\n\
         - silent devices: {} (none should be)",
        v.metric("vakt_devices_silent")
    );
    let _ = v.stop_within(Duration::from_secs(120));
    forget_session(&v).await;
    remove_store(&v.backend.db, &v.dir).await;
}

/// `part`: `latency`, `supervision`, or `all`.
pub(crate) async fn run(stores: &[String], secs: u64, part: &str) {
    assert!(matches!(part, "all" | "latency" | "supervision"), "--devices latency|supervision, or alone for both");
    if part != "supervision" {
        latency(stores, secs).await;
    }
    if part != "latency" {
        for store in stores {
            supervision(store, secs.max(30)).await;
        }
    }
}

async fn latency(stores: &[String], secs: u64) {
    println!("| path | received / sent | p50 | p99 | p99.9 |");
    println!("|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for rate in [100, 1000] {
        crate::paths::settle_for_floor(stores).await;
        let a = crate::paths::one_hop(rate, secs).await;
        row(&format!("(a) one hop, {rate}/s"), &a);
        for store in stores {
            let (s, d) = step(store, rate, secs).await;
            row(&format!("(s) MQTT alarm → stored (its raised event back) via vakt + {store}, {rate}/s"), &s);
            row(&format!("(d) DC-09 frame → ACK via vakt + {store}, {rate}/s"), &d);
            ratios.push(format!(
                "{store} {rate}/s: (d) to (s): p50 {:.2}×, p99 {:.2}×; (d) to 2×(a): p50 {:.2}×, p99 {:.2}×",
                d.p50 / s.p50,
                d.p99 / s.p99,
                d.p50 / (2.0 * a.p50),
                d.p99 / (2.0 * a.p99)
            ));
        }
    }
    println!("\nSame run:");
    for r in &ratios {
        println!("- {r}");
    }
}
