//! The paths measured: the broker's one hop, alarm → offer through vakt or through an
//! engine that does nothing; vakt started for a step, its CPU, its store removed after.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::broker_port;
use crate::support::{self, Backend, Vakt, temp_dir, unique};

/// Offers that do not expire during a step: the alarm → offer path only.
pub(crate) const LADDER: &str = r#"
[defaults.ladder]
offer_timeout_secs = 600
broadcast_after_offers = 3
broadcast_after_secs = 1200
backup_after_secs = 1200
alert_after_secs = 1300
alert_repeat_secs = 600

[engine]
target_answer_secs = 1800
"#;

pub(crate) const STAFF: usize = 50;

pub(crate) struct Stats {
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
}

impl Stats {
    pub(crate) fn ms(v: f64) -> String {
        format!("{v:.2} ms")
    }
}

/// Publishes `rate` messages per second for `secs` and measures until each arrives.
/// `make(seq)` gives (topic, payload); the receiver reports `seq` for each arrival.
///
/// Long: the paced publisher, the receiver and the tally of what arrived are one
/// measurement, kept in one place so that what is timed, and from where, is plain.
pub(crate) async fn run_load(
    port: u16,
    rate: u64,
    secs: u64,
    subscribe: &str,
    make: impl Fn(u64) -> (String, Vec<u8>),
    seq_of: impl Fn(&[u8]) -> Option<u64> + Send + Sync + 'static,
) -> Stats {
    let total = rate * secs;
    let base = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total as usize)));

    // The receiver.
    let mut opts = MqttOptions::new(unique("bench-rx"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(1 << 20, 1 << 20).set_inflight(1000);
    let (rx_client, mut rx_loop) = AsyncClient::new(opts, 100_000);
    rx_loop.set_network_options(support::nodelay());
    rx_client.subscribe(subscribe, QoS::AtLeastOnce).await.unwrap();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    // `VAKT_BENCH_TIMELINE=1`: each second's p99 and worst latency on stderr, to tell a
    // backlog that builds up from hiccups that come and go.
    let timeline_on = std::env::var_os("VAKT_BENCH_TIMELINE").is_some();
    let timeline_all = Arc::new(std::sync::Mutex::new(Vec::<(u64, u64)>::new()));
    let timeline = timeline_on.then(|| timeline_all.clone());
    let (lat, sa) = (latencies.clone(), sent_at.clone());
    let receiver = tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        loop {
            match rx_loop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now = base.elapsed().as_nanos() as u64;
                    if let Some(seq) = seq_of(&p.payload) {
                        if let Some(t) = sa.get(seq as usize) {
                            // Its first arrival only (an alarm declined is offered again).
                            let t = t.swap(0, Ordering::AcqRel);
                            if t > 0 {
                                lat.lock().unwrap().push(now - t);
                                if let Some(tl) = &timeline {
                                    tl.lock().unwrap().push((t, now - t));
                                }
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("receiver lost the broker: {e}"),
            }
        }
    });
    subscribed_rx.await.unwrap();

    // The sender: a tick every millisecond, publishing what is due by then.
    let mut opts = MqttOptions::new(unique("bench-tx"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(1 << 20, 1 << 20).set_inflight(1000);
    let (tx_client, mut tx_loop) = AsyncClient::new(opts, 100_000);
    tx_loop.set_network_options(support::nodelay());
    let sender_loop = tokio::spawn(async move {
        loop {
            if let Err(e) = tx_loop.poll().await {
                panic!("sender lost the broker: {e}");
            }
        }
    });
    let start = Instant::now();
    let start_ns = base.elapsed().as_nanos() as u64;
    let mut next = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while next < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        while next < due {
            let (topic, payload) = make(next);
            sent_at[next as usize].store(base.elapsed().as_nanos() as u64, Ordering::Release);
            tx_client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
            next += 1;
        }
    }
    // Let the stragglers arrive (at most 10 s).
    let drain_until = Instant::now() + Duration::from_secs(10);
    while (latencies.lock().unwrap().len() as u64) < total && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.abort();
    sender_loop.abort();
    if timeline_on {
        let mut by_second: std::collections::BTreeMap<u64, Vec<u64>> = std::collections::BTreeMap::new();
        for (sent, l) in timeline_all.lock().unwrap().iter() {
            by_second.entry((sent - start_ns) / 1_000_000_000).or_default().push(*l);
        }
        let line: Vec<String> = by_second
            .into_iter()
            .map(|(sec, mut l)| {
                l.sort_unstable();
                format!("{sec}s p99 {:.0} max {:.0}", l[(l.len() * 99 / 100).min(l.len() - 1)] as f64 / 1e6, *l.last().unwrap() as f64 / 1e6)
            })
            .collect();
        let began = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64() - start.elapsed().as_secs_f64();
        eprintln!("    [timeline from {began:.0} (Unix time), ms: {}]", line.join(" | "));
    }
    let l = std::mem::take(&mut *latencies.lock().unwrap());
    stats(total, l)
}

/// The percentiles of `latencies` (nanoseconds), of `sent` messages.
pub(crate) fn stats(sent: u64, mut latencies: Vec<u64>) -> Stats {
    let l = &mut latencies;
    l.sort_unstable();
    let pct = |p: f64| if l.is_empty() { f64::NAN } else { l[((l.len() as f64 * p) as usize).min(l.len() - 1)] as f64 / 1e6 };
    Stats { sent, received: l.len() as u64, p50: pct(0.50), p99: pct(0.99), p999: pct(0.999) }
}

pub(crate) async fn one_hop(rate: u64, secs: u64) -> Stats {
    let topic = unique("bench/hop");
    let t = topic.clone();
    run_load(
        broker_port(),
        rate,
        secs,
        &topic,
        move |seq| (t.clone(), format!("{{\"seq\":{seq},\"pad\":\"{}\"}}", "x".repeat(120)).into_bytes()),
        |p| serde_json::from_slice::<serde_json::Value>(p).ok()?["seq"].as_u64(),
    )
    .await
}

/// A fresh vakt on `store` with `residents` residents and 50 staff on duty, offers that
/// do not expire.
pub(crate) async fn start_vakt(store: &str, residents: u64) -> (Vakt, AsyncClient) {
    start_vakt_with(store, residents, &format!("{LADDER}{}", support::FJORD_TOML)).await
}

/// The same with an engine configuration of the caller's.
pub(crate) async fn start_vakt_with(store: &str, residents: u64, engine_toml: &str) -> (Vakt, AsyncClient) {
    let dir = temp_dir("bench-load");
    let backend = match store {
        "sqlite" => Backend::sqlite_on(broker_port(), &dir),
        "embedded" => {
            let mut b = Backend::embedded(&dir);
            b.mqtt_port = broker_port();
            b
        }
        "embedded-postgres" => {
            let mut b = Backend::external(broker_port()).await;
            b.embedded_broker = true;
            b
        }
        _ => Backend::external(broker_port()).await,
    };
    let mut csv = String::from("resident_id,municipality,lat,lon,address,notes,regular_helpers\n");
    for i in 0..residents {
        csv.push_str(&format!("r{i},fjord,{:.5},{:.5},Vegen {i},,\n", 61.15 + (i % 101) as f64 * 0.0015, 7.00 + (i % 97) as f64 * 0.002));
    }
    let mut staff = String::from("staff_id,municipality,name,roles\n");
    for s in 0..STAFF {
        staff.push_str(&format!("s{s},fjord,Staff {s},nurse\n"));
    }
    let v = Vakt::start_with(&backend, &dir, engine_toml, &csv, &staff);
    let mut opts = MqttOptions::new(unique("bench-staff"), "127.0.0.1", broker_port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = AsyncClient::new(opts, 1000);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    for s in 0..STAFF {
        let payload = format!("{{\"state\":\"on_duty\",\"position\":{{\"lat\":{:.4},\"lon\":{:.4}}}}}", 61.15 + s as f64 * 0.003, 7.0 + s as f64 * 0.004);
        client.publish(format!("vakt/v1/staff/s{s}/status"), QoS::AtLeastOnce, false, payload).await.unwrap();
    }
    for _ in 0..200 {
        if v.metric("vakt_staff_on_duty") == STAFF as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(v.metric("vakt_staff_on_duty"), STAFF as f64, "staff on duty before the load");
    (v, client)
}

/// The device's alarm number `seq`: one resident per alarm.
pub(crate) fn alarm(seq: u64) -> (String, Vec<u8>) {
    let raised = vakt::live::clock::wall_clock().to_string();
    (
        "vakt/v1/alarms/fjord".to_owned(),
        format!("{{\"alarm_id\":\"L{seq}\",\"resident_id\":\"r{seq}\",\"kind\":\"safety\",\"raised_at\":\"{raised}\"}}").into_bytes(),
    )
}

/// The alarm number in an alarm or an offer (revokes carry none). Found by its bytes,
/// not by parsing the JSON: a JSON parse per offer was a good part of the load
/// generator's own CPU at 10,000/s, on the 2 cores vakt is measured on.
pub(crate) fn alarm_seq(p: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"alarm_id\":\"L";
    let at = p.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = p[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&p[at..at + digits]).ok()?.parse().ok()
}

pub(crate) async fn alarm_to_offer(store: &str, rate: u64, secs: u64) -> Stats {
    let (mut v, _staff) = start_vakt(store, rate * secs).await;
    settle_disk(&v.backend.db).await;
    let cpu = CpuUse::from_now(v.child.id());
    let stats = run_load(broker_port(), rate, secs, "vakt/v1/staff/+/offers", alarm, alarm_seq).await;
    // CPU per alarm: what the engine costs, and what the whole path costs this machine
    // (broker, engine, database, and the bench's own clients), over the step and its drain.
    let (vakt_cpu, machine_cpu) = cpu.per_alarm_us(rate * secs);
    eprintln!("    [{store} {rate}/s: CPU per alarm: vakt {vakt_cpu:.0} µs, whole machine {machine_cpu:.0} µs]");
    let writes = v.metric("vakt_store_write_seconds_count");
    let failures = v.metric("vakt_store_write_failures_total");
    assert_eq!(failures, 0.0, "store writes failed under load");
    let sum = v.metric("vakt_store_write_seconds_sum");
    let share = |le: &str| 100.0 * v.metric(&format!("vakt_store_write_seconds_bucket{{le=\"{le}\"}}")) / writes.max(1.0);
    eprintln!(
        "    [{store} {rate}/s: {writes} store transactions for {} alarms; mean {:.3} ms; within 0.5 ms {:.2} %, 1 ms {:.2} %, 2 ms {:.2} %, 5 ms {:.2} %; over 20 ms: {}, over 100 ms: {}]",
        rate * secs,
        1000.0 * sum / writes.max(1.0),
        share("0.0005"),
        share("0.001"),
        share("0.002"),
        share("0.005"),
        writes - v.metric("vakt_store_write_seconds_bucket{le=\"0.02\"}"),
        writes - v.metric("vakt_store_write_seconds_bucket{le=\"0.1\"}")
    );
    if v.backend.embedded_broker {
        // Alarms the embedded broker acknowledged to the device and then dropped, vakt too
        // far behind for its log (docs/mqtt.md): counted, not silent.
        let overruns = v.metric("vakt_embedded_broker_overruns_total{subscriber=\"engine\"}");
        if overruns > 0.0 {
            eprintln!("    [{store} {rate}/s: the embedded broker overran vakt's log {overruns} times: the alarms it dropped are lost]");
        }
    }
    let (open, stopping) = (v.metric("vakt_open_incidents"), Instant::now());
    let _ = v.stop_within(Duration::from_secs(120));
    forget_session(&v).await;
    eprintln!("    [{store} {rate}/s: a clean stop with {open} incidents open (its checkpoint carries them) took {:.2} s]", stopping.elapsed().as_secs_f64());
    remove_store(&v.backend.db, &v.dir).await;
    stats
}

/// Alarm → offer through vakt on `store`, or through the engine that does nothing (`echo`).
pub(crate) async fn alarm_to(store: &str, rate: u64, secs: u64) -> Stats {
    if store == "echo" { alarm_to_echo(rate, secs).await } else { alarm_to_offer(store, rate, secs).await }
}

/// Ends the broker's session of a stopped vakt (`clean_session = false`). Left, it stays
/// subscribed to the alarms, and the broker would keep queueing every later step's alarms
/// for it (up to its queue's limit, then dropping them, but matching each one): a cost per
/// alarm that grows with every step before, on the cores the next step is measured on.
pub(crate) async fn forget_session(v: &Vakt) {
    if v.backend.embedded_broker {
        return; // the broker ended with vakt's process
    }
    let mut opts = MqttOptions::new(&v.client_id, "127.0.0.1", broker_port());
    opts.set_clean_session(true);
    let (client, mut el) = AsyncClient::new(opts, 10);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => client.disconnect().await.expect("DISCONNECT queued"),
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the bench could not end the session of a stopped vakt");
}

/// (e) The floor of the alarm → offer path: an engine that does nothing. This bench
/// binary in a process of its own (`--echo-engine PORT`), subscribed to the alarms as
/// vakt is, answers each alarm at once with an offer-sized message to a staff client's
/// offers topic: two hops and an MQTT client's own work, with no engine and no store.
/// What any engine's path costs this machine at the least, and the highest rate any
/// engine could sustain here, with the broker and the load generator on the same cores.
pub(crate) fn echo_engine(port: u16) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let mut opts = MqttOptions::new(unique("bench-echo"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(1 << 20, 1 << 20).set_inflight(1000);
        let (client, mut el) = AsyncClient::new(opts, 1_000_000);
        el.set_network_options(support::nodelay());
        client.subscribe("vakt/v1/alarms/+", QoS::AtLeastOnce).await.unwrap();
        // About the size of vakt's offer (its address, position, notes and times).
        let pad = "x".repeat(300);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => println!("subscribed"),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let Some(seq) = alarm_seq(&p.payload) else { continue };
                    let offer = format!("{{\"type\":\"offer\",\"alarm_id\":\"L{seq}\",\"pad\":\"{pad}\"}}");
                    client
                        .try_publish(format!("vakt/v1/staff/s{}/offers", seq % STAFF as u64), QoS::AtLeastOnce, false, offer)
                        .expect("the echo's queue has room");
                }
                Ok(_) => {}
                Err(e) => panic!("the echo engine lost the broker: {e}"),
            }
        }
    });
}

/// The echo engine's process; killed when dropped.
pub(crate) struct Echo(std::process::Child);

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Alarm → offer through the echo engine (see `echo_engine`).
pub(crate) async fn alarm_to_echo(rate: u64, secs: u64) -> Stats {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--echo-engine", &broker_port().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting the echo engine");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "subscribed", "the echo engine subscribed");
    let echo = Echo(child);
    let cpu = CpuUse::from_now(echo.0.id());
    let stats = run_load(broker_port(), rate, secs, "vakt/v1/staff/+/offers", alarm, alarm_seq).await;
    let (echo_cpu, machine_cpu) = cpu.per_alarm_us(rate * secs);
    eprintln!("    [echo {rate}/s: CPU per alarm: the echo engine {echo_cpu:.0} µs, whole machine {machine_cpu:.0} µs]");
    stats
}

/// Each step starts on a quiet disk: what earlier steps and this step's set-up (the
/// directory import) left to write (PostgreSQL's dirty pages, the page cache) is
/// written now, not in the middle of the step. Without this, the step after an
/// overloaded one paid for its predecessor's checkpoint.
pub(crate) async fn settle_disk(db: &support::Db) {
    settle(matches!(db, support::Db::Postgres(_))).await;
}

/// `settle_disk`, with a PostgreSQL CHECKPOINT or without.
pub(crate) async fn settle(postgres: bool) {
    if postgres {
        let mut admin = support::postgres_admin().await;
        sqlx::Executor::execute(&mut admin, "CHECKPOINT").await.expect("CHECKPOINT");
    }
    let _ = std::process::Command::new("sync").status();
}

/// The floors too are measured on a quiet disk: right after a step, the removal of its
/// store (a PostgreSQL database of 30,000 alarms) and the disk's catching up would be
/// measured as the broker's noise.
pub(crate) async fn settle_for_floor(stores: &[String]) {
    settle(stores.iter().any(|s| s.ends_with("postgres"))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// A step's store is removed after it (a full search leaves a million rows otherwise):
/// the PostgreSQL database, or `dir`, which holds the SQLite file.
pub(crate) async fn remove_store(db: &support::Db, dir: &std::path::Path) {
    match db {
        support::Db::Postgres(name) => {
            let mut admin = support::postgres_admin().await;
            let _ = sqlx::Executor::execute(&mut admin, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
        }
        support::Db::Sqlite(_) => {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// CPU time used from a moment on, by one process and by the whole machine.
pub(crate) struct CpuUse {
    pub(crate) pid: u32,
    pub(crate) process: f64,
    pub(crate) machine: f64,
}

impl CpuUse {
    pub(crate) fn from_now(pid: u32) -> CpuUse {
        CpuUse { pid, process: process_cpu_secs(pid), machine: machine_busy_secs() }
    }

    /// Microseconds per alarm since then: the process's, and the whole machine's.
    pub(crate) fn per_alarm_us(&self, alarms: u64) -> (f64, f64) {
        let per = |secs: f64| 1e6 * secs / alarms as f64;
        (per(process_cpu_secs(self.pid) - self.process), per(machine_busy_secs() - self.machine))
    }
}

/// CPU time (user + system) a process has used so far, from /proc (Linux).
pub(crate) fn process_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // utime and stime are the 14th and 15th fields of the line, in clock ticks (100 per second).
    if f.len() > 13 { (f[11] + f[12]) / 100.0 } else { f64::NAN }
}

/// The whole machine's busy CPU time so far (every core, all but idle and iowait), from /proc/stat.
pub(crate) fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0.0)).collect();
    if f.len() < 8 {
        return f64::NAN;
    }
    (f.iter().take(8).sum::<f64>() - f[3] - f[4]) / 100.0
}

pub(crate) fn row(what: &str, s: &Stats) {
    println!("| {what} | {} / {} | {} | {} | {} |", s.received, s.sent, Stats::ms(s.p50), Stats::ms(s.p99), Stats::ms(s.p999));
}

/// `--repeat N` (see `main`).
pub(crate) async fn repeated_ratios(stores: &[String], n: usize, secs: u64, embedded: bool) {
    const RATE: u64 = 1000;
    let broker = if embedded { "vakt's embedded broker" } else { "the bench's own Mosquitto" };
    println!(
        "\n## vakt latency goal, {n} times over: (a) then (b), for each store in turn, {secs} s each at {RATE}/s, {broker} on 127.0.0.1:{}\n",
        broker_port()
    );
    println!("| pair | (a) p99 | store | (b) p50 | (b) p99 | (b) p99 / 2×(a) p99 |");
    println!("|---|---|---|---|---|---|");
    let mut ratios: Vec<(String, f64)> = Vec::new();
    for i in 1..=n {
        for store in stores {
            // Each (a) just before its (b).
            // The embedded broker lives in a vakt process: (a) goes through one of its own.
            let host = if embedded { Some(start_vakt("embedded", 10).await) } else { None };
            settle_for_floor(stores).await;
            let a = one_hop(RATE, secs).await;
            if let Some((mut v, _)) = host {
                let _ = v.stop_within(Duration::from_secs(120));
            }
            let b = alarm_to_offer(store, RATE, secs).await;
            let ratio = b.p99 / (2.0 * a.p99);
            println!("| {i} | {} | {store} | {} | {} | {ratio:.2}× |", Stats::ms(a.p99), Stats::ms(b.p50), Stats::ms(b.p99));
            ratios.push((store.clone(), ratio));
        }
    }
    println!();
    for store in stores {
        let mut r: Vec<f64> = ratios.iter().filter(|(s, _)| s == store).map(|(_, r)| *r).collect();
        r.sort_by(f64::total_cmp);
        let median = if r.len() % 2 == 1 { r[r.len() / 2] } else { (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0 };
        let met = r.iter().filter(|&&x| x <= 3.0).count();
        println!("- {store}: median {median:.2}× (goal 3×), met in {met} of {}; range {:.2}×–{:.2}×", r.len(), r[0], r[r.len() - 1]);
    }
}
