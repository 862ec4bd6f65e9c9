//! The floors under a store's commit: this disk's durable write, and each store's own
//! one-row commit, paced at the bench's rates.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::paths::{Stats, remove_store, settle_disk};
use crate::support::{self, temp_dir};

/// Runs `commit(n)` for records arriving at `rate` per second for `secs`, one after
/// another; records that arrive while a commit runs go together in the next, as in
/// vakt's batches. Each is measured from its arrival until its commit returned; one that
/// arrived while the loop slept is measured from its wake-up instead, so that a sleep's
/// own lateness (the timer's, not the disk's or the store's) is not counted.
pub(crate) fn paced_commits(rate: u64, secs: u64, mut commit: impl FnMut(u64)) -> Stats {
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
pub(crate) fn durable_append(rate: u64, secs: u64) -> Stats {
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
pub(crate) fn store_commit(store: &'static str, rate: u64, secs: u64) -> Stats {
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
