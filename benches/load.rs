//! Load benchmark for the live engine (issue 3), through Mosquitto.
//!
//! `cargo bench --bench load` (add `-- --quick` for 5 s steps, `-- --stores sqlite`,
//! `-- --step STORE:RATE [--step-secs N]` for one alarm → offer step (STORE `echo`: (e) below),
//! `-- --repeat N` for the latency goal's comparison at 1,000/s only, N times over, with its median
//! (through Mosquitto, or with `--embedded` through vakt's own broker),
//! `-- --soak MINUTES [--soak-rate R]` for vakt's memory over a long run with the whole life cycle,
//! `-- --machine-broker` for the machine's Mosquitto on 1883 with its default settings,
//! `-- --embedded` for vakt's own broker, in-process, with SQLite and with PostgreSQL).
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
#[path = "../tests/it/live/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::{Backend, Mosquitto, Vakt, free_port, temp_dir, unique};

static BROKER: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

fn broker_port() -> u16 {
    *BROKER.get().expect("broker chosen")
}

/// Offers that do not expire during a step: the alarm → offer path only.
const LADDER: &str = r#"
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

const STAFF: usize = 50;

struct Stats {
    sent: u64,
    received: u64,
    p50: f64,
    p99: f64,
    p999: f64,
}

impl Stats {
    fn ms(v: f64) -> String {
        format!("{v:.2} ms")
    }
}

/// Publishes `rate` messages per second for `secs` and measures until each arrives.
/// `make(seq)` gives (topic, payload); the receiver reports `seq` for each arrival.
async fn run_load(
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
    let mut l = std::mem::take(&mut *latencies.lock().unwrap());
    l.sort_unstable();
    let pct = |p: f64| if l.is_empty() { f64::NAN } else { l[((l.len() as f64 * p) as usize).min(l.len() - 1)] as f64 / 1e6 };
    Stats { sent: total, received: l.len() as u64, p50: pct(0.50), p99: pct(0.99), p999: pct(0.999) }
}

async fn one_hop(rate: u64, secs: u64) -> Stats {
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

/// Runs `commit(n)` for records arriving at `rate` per second for `secs`, one after
/// another; records that arrive while a commit runs go together in the next, as in
/// vakt's batches. Each is measured from its arrival until its commit returned; one that
/// arrived while the loop slept is measured from its wake-up instead, so that a sleep's
/// own lateness (the timer's, not the disk's or the store's) is not counted.
fn paced_commits(rate: u64, secs: u64, mut commit: impl FnMut(u64)) -> Stats {
    let total = rate * secs;
    let start = Instant::now();
    let mut lat = Vec::with_capacity(total as usize);
    let (mut next, mut busy_until) = (0u64, 0.0f64);
    while next < total {
        let arrives = next as f64 / rate as f64;
        let now = start.elapsed().as_secs_f64();
        if now < arrives {
            std::thread::sleep(Duration::from_secs_f64(arrives - now));
        }
        let woke = start.elapsed().as_secs_f64();
        let due = ((woke * rate as f64) as u64 + 1).min(total);
        commit(due - next);
        let done = start.elapsed().as_secs_f64();
        for i in next..due {
            let arrived = i as f64 / rate as f64;
            let from = if arrived < busy_until { arrived } else { woke };
            lat.push(((done - from) * 1e9) as u64);
        }
        busy_until = done;
        next = due;
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e6;
    Stats { sent: total, received: lat.len() as u64, p50: pct(0.50), p99: pct(0.99), p999: pct(0.999) }
}

/// (f) The durable-write floor on this disk: records of 300 bytes written one after
/// another into a file and made durable with `fdatasync` (what a commit costs at the
/// least). The file is written full of zeros and synced first, as SQLite's recycled
/// write-ahead log and PostgreSQL's WAL segments are: a sync then has no new size or
/// blocks to record, only the data.
fn durable_append(rate: u64, secs: u64) -> Stats {
    use std::io::{Seek, Write};
    let dir = temp_dir("bench-fsync");
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(dir.join("floor.log")).unwrap();
    f.write_all(&vec![0u8; (rate * secs) as usize * 300 + 300]).unwrap();
    f.sync_all().unwrap();
    f.rewind().unwrap();
    let record = vec![b'x'; 300];
    let stats = paced_commits(rate, secs, |n| {
        for _ in 0..n {
            f.write_all(&record).unwrap();
        }
        f.sync_data().unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
    stats
}

/// (g) The store's own commit floor: a transaction of one 300-byte row per record (or
/// one per batch, as in `paced_commits`) into a table of its own, through sqlx on a
/// connection like vakt's writer (SQLite: write-ahead log, `synchronous=FULL`, the
/// transaction as one multi-statement query, the log checkpointed beside it every
/// 100 ms as vakt does; PostgreSQL: one statement with its rows
/// as arrays, committed on its own), on a fresh store. Whatever (b) costs beyond twice
/// (a) plus this is vakt's: its engine, its rows, and its MQTT client.
fn store_commit(store: &'static str, rate: u64, secs: u64) -> Stats {
    use sqlx::Connection;
    // A thread with a runtime of its own, like the engine's: the paced loop blocks.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = temp_dir("bench-commit");
        let body = "x".repeat(300);
        let db = if store == "sqlite" { support::Db::Sqlite(dir.join("floor.sqlite")) } else { rt.block_on(support::Db::fresh_postgres()) };
        let stats = if let support::Db::Sqlite(_) = db {
            sqlx::any::install_default_drivers();
            let mut conn = rt.block_on(async {
                let mut c = sqlx::AnyConnection::connect(&format!("{}?mode=rwc", db.url())).await.unwrap();
                sqlx::query("PRAGMA journal_mode=WAL").execute(&mut c).await.unwrap();
                sqlx::query("CREATE TABLE floor (seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, body TEXT NOT NULL)").execute(&mut c).await.unwrap();
                c
            });
            // vakt's log checkpointer beside it: a passive checkpoint every 100 ms on a
            // connection of its own (src/live/mod.rs, `checkpoint_wal`).
            let url = db.url();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let checkpointer = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(async {
                        let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
                        while !stop.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut c).await.unwrap();
                        }
                    });
                })
            };
            rt.block_on(settle_disk(&db));
            let stats = paced_commits(rate, secs, |n| {
                let rows = vec!["(?, ?)"; n as usize].join(", ");
                let sql = format!("BEGIN IMMEDIATE;\nINSERT INTO floor (at_ms, body) VALUES {rows};\nCOMMIT;");
                let mut q = sqlx::query(&sql);
                for _ in 0..n {
                    q = q.bind(0i64).bind(body.as_str());
                }
                rt.block_on(q.execute(&mut conn)).unwrap();
            });
            stop.store(true, Ordering::Relaxed);
            checkpointer.join().unwrap();
            stats
        } else {
            let mut conn = rt.block_on(async {
                let mut c = sqlx::PgConnection::connect(&db.url()).await.unwrap();
                sqlx::query("CREATE TABLE floor (seq bigserial PRIMARY KEY, at_ms int8 NOT NULL, body text NOT NULL)").execute(&mut c).await.unwrap();
                c
            });
            rt.block_on(settle_disk(&db));
            let stats = paced_commits(rate, secs, |n| {
                let q = sqlx::query("INSERT INTO floor (at_ms, body) SELECT * FROM UNNEST($1::int8[], $2::text[])")
                    .bind(vec![0i64; n as usize])
                    .bind(vec![body.as_str(); n as usize]);
                rt.block_on(q.execute(&mut conn)).unwrap();
            });
            drop(rt.block_on(conn.close()));
            stats
        };
        rt.block_on(remove_store(&db, &dir));
        let _ = std::fs::remove_dir_all(&dir);
        stats
    })
    .join()
    .unwrap()
}

/// A fresh vakt on `store` with `residents` residents and 50 staff on duty, offers that
/// do not expire.
async fn start_vakt(store: &str, residents: u64) -> (Vakt, AsyncClient) {
    start_vakt_with(store, residents, &format!("{LADDER}{}", support::FJORD_TOML)).await
}

/// The same with an engine configuration of the caller's.
async fn start_vakt_with(store: &str, residents: u64, engine_toml: &str) -> (Vakt, AsyncClient) {
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
fn alarm(seq: u64) -> (String, Vec<u8>) {
    let raised = vakt::live::clock::wall_clock().to_string();
    (
        "vakt/v1/alarms/fjord".to_owned(),
        format!("{{\"alarm_id\":\"L{seq}\",\"resident_id\":\"r{seq}\",\"kind\":\"safety\",\"raised_at\":\"{raised}\"}}").into_bytes(),
    )
}

/// The alarm number in an alarm or an offer (revokes carry none). Found by its bytes,
/// not by parsing the JSON: a JSON parse per offer was a good part of the load
/// generator's own CPU at 10,000/s, on the 2 cores vakt is measured on.
fn alarm_seq(p: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"alarm_id\":\"L";
    let at = p.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = p[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&p[at..at + digits]).ok()?.parse().ok()
}

async fn alarm_to_offer(store: &str, rate: u64, secs: u64) -> Stats {
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
async fn alarm_to(store: &str, rate: u64, secs: u64) -> Stats {
    if store == "echo" { alarm_to_echo(rate, secs).await } else { alarm_to_offer(store, rate, secs).await }
}

/// Ends the broker's session of a stopped vakt (`clean_session = false`). Left, it stays
/// subscribed to the alarms, and the broker would keep queueing every later step's alarms
/// for it (up to its queue's limit, then dropping them, but matching each one): a cost per
/// alarm that grows with every step before, on the cores the next step is measured on.
async fn forget_session(v: &Vakt) {
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
fn echo_engine(port: u16) {
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
struct Echo(std::process::Child);

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Alarm → offer through the echo engine (see `echo_engine`).
async fn alarm_to_echo(rate: u64, secs: u64) -> Stats {
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
async fn settle_disk(db: &support::Db) {
    settle(matches!(db, support::Db::Postgres(_))).await;
}

/// `settle_disk`, with a PostgreSQL CHECKPOINT or without.
async fn settle(postgres: bool) {
    if postgres {
        let mut admin = support::postgres_admin().await;
        sqlx::Executor::execute(&mut admin, "CHECKPOINT").await.expect("CHECKPOINT");
    }
    let _ = std::process::Command::new("sync").status();
}

/// The floors too are measured on a quiet disk: right after a step, the removal of its
/// store (a PostgreSQL database of 30,000 alarms) and the disk's catching up would be
/// measured as the broker's noise.
async fn settle_for_floor(stores: &[String]) {
    settle(stores.iter().any(|s| s.ends_with("postgres"))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// A step's store is removed after it (a full search leaves a million rows otherwise):
/// the PostgreSQL database, or `dir`, which holds the SQLite file.
async fn remove_store(db: &support::Db, dir: &std::path::Path) {
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
struct CpuUse {
    pid: u32,
    process: f64,
    machine: f64,
}

impl CpuUse {
    fn from_now(pid: u32) -> CpuUse {
        CpuUse { pid, process: process_cpu_secs(pid), machine: machine_busy_secs() }
    }

    /// Microseconds per alarm since then: the process's, and the whole machine's.
    fn per_alarm_us(&self, alarms: u64) -> (f64, f64) {
        let per = |secs: f64| 1e6 * secs / alarms as f64;
        (per(process_cpu_secs(self.pid) - self.process), per(machine_busy_secs() - self.machine))
    }
}

/// CPU time (user + system) a process has used so far, from /proc (Linux).
fn process_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // utime and stime are the 14th and 15th fields of the line, in clock ticks (100 per second).
    if f.len() > 13 { (f[11] + f[12]) / 100.0 } else { f64::NAN }
}

/// The whole machine's busy CPU time so far (every core, all but idle and iowait), from /proc/stat.
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0.0)).collect();
    if f.len() < 8 {
        return f64::NAN;
    }
    (f.iter().take(8).sum::<f64>() - f[3] - f[4]) / 100.0
}

fn row(what: &str, s: &Stats) {
    println!("| {what} | {} / {} | {} | {} | {} |", s.received, s.sent, Stats::ms(s.p50), Stats::ms(s.p99), Stats::ms(s.p999));
}

/// `--repeat N` (see `main`).
async fn repeated_ratios(stores: &[String], n: usize, secs: u64, embedded: bool) {
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

/// `--soak MINUTES` (see `main`): the residents the soak's alarms go to, in turn.
const SOAK_RESIDENTS: u64 = 2000;

/// The soak's alarm number `seq`: every hundredth one malformed (an unknown kind, refused
/// and counted), the rest for the residents in turn.
fn soak_alarm(seq: u64) -> (String, Vec<u8>) {
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
struct Responses {
    offers: AtomicU64,
    declined: AtomicU64,
    closed: AtomicU64,
    refused: AtomicU64,
}

/// Every staff member at once, as their apps: the first offer of every tenth incident is
/// declined (vakt offers it to the next), every other offer is accepted, and the incident
/// is marked on site and closed at once.
async fn respond(port: u16, seen: Arc<Responses>) {
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
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0);
    (field("VmRSS:"), field("VmHWM:"))
}

/// The store's size on disk, in bytes: the SQLite file with its log, or the PostgreSQL database.
async fn store_bytes(db: &support::Db) -> u64 {
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
struct Sample {
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
async fn soak(store: &str, minutes: u64, rate: u64) {
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(port) = args.iter().position(|a| a == "--echo-engine").and_then(|i| args.get(i + 1)) {
        echo_engine(port.parse().expect("--echo-engine PORT"));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let stores: Vec<String> = args
        .iter()
        .position(|a| a == "--stores")
        .and_then(|i| args.get(i + 1))
        .map_or(vec!["sqlite".into(), "postgres".into()], |s| s.split(',').map(String::from).collect());
    let secs = if quick { 5 } else { 30 };
    let step_secs =
        args.iter().position(|a| a == "--step-secs").and_then(|i| args.get(i + 1)).map_or(if quick { 3 } else { 10 }, |s| s.parse().expect("--step-secs N"));
    let embedded = args.iter().any(|a| a == "--embedded");
    let stores = if embedded { vec!["embedded".to_owned(), "embedded-postgres".to_owned()] } else { stores };
    let _own_broker = if args.iter().any(|a| a == "--machine-broker") {
        BROKER.set(1883).unwrap();
        None
    } else if embedded {
        BROKER.set(free_port()).unwrap();
        None
    } else {
        let port = free_port();
        BROKER.set(port).unwrap();
        Some(Mosquitto::start_with(&temp_dir("bench-broker"), port, "set_tcp_nodelay true\nmax_inflight_messages 1000", true))
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // `--step STORE:RATE`: one alarm → offer step of `step_secs` (`--step-secs N`), for
    // profiling, or to see a rate hold for longer; STORE `echo` is the engine that does
    // nothing (e).
    if let Some(step) = args.iter().position(|a| a == "--step").and_then(|i| args.get(i + 1)) {
        let (store, rate) = step.split_once(':').expect("--step STORE:RATE");
        let b = rt.block_on(alarm_to(store, rate.parse().expect("rate"), step_secs));
        row(&format!("(b) {store} {rate}/s"), &b);
        return;
    }
    // `--repeat N`: the latency goal's comparison only, N times over: (a) then each
    // store's (b) at 1,000/s, each pair's ratio of (b) p99 to twice (a) p99, and the
    // median per store. One pair is at the mercy of this machine's noise; the median of
    // several is the figure to judge the goal by.
    if let Some(n) = args.iter().position(|a| a == "--repeat").and_then(|i| args.get(i + 1)) {
        let n: usize = n.parse().expect("--repeat N");
        assert!(n > 0, "--repeat N runs N > 0 times");
        rt.block_on(repeated_ratios(&stores, n, secs, embedded));
        return;
    }
    // `--soak MINUTES [--soak-rate R]`: vakt for a long while at R alarms per second (20
    // by default) with the whole life cycle, each store in turn (with `--embedded`, vakt's
    // own broker and SQLite), its memory sampled.
    if let Some(minutes) = args.iter().position(|a| a == "--soak").and_then(|i| args.get(i + 1)) {
        let minutes: u64 = minutes.parse().expect("--soak MINUTES");
        let rate = args.iter().position(|a| a == "--soak-rate").and_then(|i| args.get(i + 1)).map_or(20, |r| r.parse().expect("--soak-rate R"));
        // With `--embedded`, the defaults of a fresh machine: vakt's own broker and SQLite.
        let stores = if embedded { vec!["embedded".to_owned()] } else { stores };
        for store in &stores {
            rt.block_on(soak(store, minutes, rate));
        }
        return;
    }
    rt.block_on(async {
        let broker = match (&_own_broker, embedded) {
            (Some(_), _) => "the bench's own Mosquitto (persistence, set_tcp_nodelay, max_inflight_messages 1000)",
            (None, true) => "vakt's embedded broker (rumqttd), with SQLite (embedded) and PostgreSQL (embedded-postgres),",
            (None, false) => "the machine's Mosquitto, default settings",
        };
        println!("\n## vakt load benchmark: {secs} s per rate, {broker} on 127.0.0.1:{}, vakt as a separate process\n", broker_port());
        println!("| path | received / sent | p50 | p99 | p99.9 |");
        println!("|---|---|---|---|---|");
        // Each rate's floors are measured just before its (b) steps, so that (a), (f) and
        // (b) see the machine in the same mood (its noise drifts over minutes).
        let mut ratios = Vec::new();
        for rate in [100, 1000] {
            // The embedded broker lives in a vakt process: the floor is measured through it.
            let host = if embedded { Some(start_vakt("embedded", 10).await) } else { None };
            settle_for_floor(&stores).await;
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
            let f = tokio::task::spawn_blocking(move || durable_append(rate, secs)).await.unwrap();
            row(&format!("(f) durable write on this disk (300 B + fdatasync, preallocated file), {rate}/s"), &f);
            for store in &stores {
                let kind = if store.ends_with("postgres") { "postgres" } else { "sqlite" };
                let g = tokio::task::spawn_blocking(move || store_commit(kind, rate, secs)).await.unwrap();
                row(&format!("(g) one commit of {store}'s store (300 B row), {rate}/s"), &g);
                let b = alarm_to_offer(store, rate, secs).await;
                row(&format!("(b) alarm → offer via vakt + {store}, {rate}/s"), &b);
                let to_e = e.as_ref().map_or(String::new(), |e| format!("; to (e): p50 {:.2}×, p99 {:.2}×", b.p50 / e.p50, b.p99 / e.p99));
                ratios.push(format!(
                    "{store} {rate}/s: to 2×(a): p50 {:.2}×, p99 {:.2}×, p99.9 {:.2}×{to_e}; to 2×(a) + (f): p50 {:.2}×, p99 {:.2}×; to 2×(a) + (g): p50 {:.2}×, p99 {:.2}×",
                    b.p50 / (2.0 * a.p50),
                    b.p99 / (2.0 * a.p99),
                    b.p999 / (2.0 * a.p999),
                    b.p50 / (2.0 * a.p50 + f.p50),
                    b.p99 / (2.0 * a.p99 + f.p99),
                    b.p50 / (2.0 * a.p50 + g.p50),
                    b.p99 / (2.0 * a.p99 + g.p99)
                ));
            }
        }
        let through_e = if embedded { "" } else { " to the path through an engine that does nothing (e)," };
        println!("\nRatio of (b) to twice (a),{through_e} to twice (a) plus one durable write (f), and to twice (a) plus one commit of the store (g), same run:");
        for r in &ratios {
            println!("- {r}");
        }
        // Through the embedded broker there is no broker between the steps for (e) to use.
        let echo = (!embedded).then(|| "echo".to_owned());
        println!(
            "\nHighest sustained rate ({step_secs} s steps, every offer delivered, p99 < 100 ms){}:",
            if echo.is_some() { ", first through the engine that does nothing (e): the most any engine could sustain on this machine with the broker and the load generator on its cores" } else { "" }
        );
        let mut echo_rate = None;
        for store in echo.iter().chain(&stores) {
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
    });
}
