//! Core engine benchmarks.
//!
//! - `raise_to_first_offer/N`: an alarm raised until its first offer is out, with N
//!   on-duty staff (only that part is timed; each alarm is cancelled untimed after).
//! - `naive_scan/N`: the baseline in the same run: great-circle distance to each of
//!   N staff and a minimum, i.e. what ranking costs without the R-tree.
//! - `full_lifecycle`: raise, offer, decline, offer, accept, on site, close.
//! - Before the timed groups: bytes held per open incident, by a counting allocator.
//!
//! Run: `cargo bench --bench core` (add `-- --quick` for a short run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use vakt::core::*;

struct Counting;
static HELD: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HELD.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        HELD.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const CONFIG: &str = r#"
[[municipality]]
id = "m"
name = "Bench"
population = 12000
centre = { lat = 61.23, lon = 7.10 }
model = "mobile_guard_room"
"#;

fn id<T: TryFrom<String>>(s: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s.to_string()).unwrap()
}

/// A deterministic spread of points within ~25 km of the centre.
fn spread(i: usize) -> Position {
    let mut x = (i as u64).wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    x ^= x >> 33;
    let a = (x % 10_000) as f64 / 10_000.0;
    let b = ((x >> 20) % 10_000) as f64 / 10_000.0;
    Position::new(61.23 + (a - 0.5) * 0.45, 7.10 + (b - 0.5) * 0.9).unwrap()
}

fn engine_with(staff: usize, residents: usize) -> Engine {
    let config = vakt::settings::Settings::from_toml(CONFIG).unwrap().engine_config().unwrap();
    let mut e = Engine::new(config);
    let t0 = Timestamp::from_secs(1_700_000_000);
    for i in 0..staff {
        let s: StaffId = id(&format!("s{i}"));
        e.handle_input(t0, Input::UpsertStaff(Staff { id: s.clone(), municipality: id("m"), roles: Roles::of(&[Role::Nurse]) }));
        e.handle_input(t0, Input::StaffOnDuty { staff: s, position: Some(spread(i)) });
    }
    for i in 0..residents {
        e.handle_input(
            t0,
            Input::UpsertResident(Resident {
                id: id(&format!("r{i}")),
                municipality: id("m"),
                home: spread(1_000_000 + i),
                regular_helpers: vec![],
                address: String::new(),
                notes: String::new(),
            }),
        );
    }
    while e.poll_action().is_some() {}
    e
}

fn alarm(n: u64, resident: &str, at: Timestamp) -> Input {
    Input::Alarm(Alarm {
        id: id(&format!("a{n}")),
        resident: id(resident),
        municipality: id("m"),
        kind: AlarmKind::Safety,
        priority: None,
        raised_at: at,
        position: None,
        text: None,
    })
}

fn drain(e: &mut Engine) -> usize {
    let mut n = 0;
    while let Some(a) = e.poll_action() {
        black_box(&a);
        n += 1;
    }
    n
}

fn raise_to_first_offer(c: &mut Criterion) {
    let mut g = c.benchmark_group("raise_to_first_offer");
    for staff in [10usize, 1_000, 10_000] {
        let mut e = engine_with(staff, 1);
        let mut n = 0u64;
        g.bench_with_input(BenchmarkId::from_parameter(staff), &staff, |b, _| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let now = Timestamp::from_secs(1_700_000_000 + n as i64);
                    let input = alarm(n, "r0", now);
                    let start = Instant::now();
                    e.handle_input(now, input);
                    drain(&mut e);
                    timed += start.elapsed();
                    e.handle_input(now, Input::Cancel { resident: id("r0") });
                    drain(&mut e);
                }
                timed
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("naive_scan");
    for staff in [10usize, 1_000, 10_000] {
        let positions: Vec<Position> = (0..staff).map(spread).collect();
        let home = spread(1_000_000);
        g.bench_with_input(BenchmarkId::from_parameter(staff), &staff, |b, _| {
            b.iter(|| {
                let best = positions.iter().enumerate().map(|(i, p)| (black_box(*p).distance_m(home), i)).min_by(|a, b| a.0.total_cmp(&b.0));
                black_box(best)
            })
        });
    }
    g.finish();
}

fn full_lifecycle(c: &mut Criterion) {
    let mut e = engine_with(1_000, 1);
    let mut n = 0u64;
    c.bench_function("full_lifecycle_1000_staff", |b| {
        b.iter(|| {
            n += 1;
            let t = Timestamp::from_secs(1_700_000_000 + n as i64 * 3600);
            e.handle_input(t, alarm(n, "r0", t));
            let mut first = None;
            while let Some(a) = e.poll_action() {
                if let Action::Offered { staff, incident, .. } = a {
                    first = Some((staff, incident));
                }
            }
            let (s1, inc) = first.expect("offered");
            e.handle_input(t, Input::StaffReply { staff: s1, incident: inc, reply: StaffReply::Decline });
            let mut second = None;
            while let Some(a) = e.poll_action() {
                if let Action::Offered { staff, .. } = a {
                    second = Some(staff);
                }
            }
            let s2 = second.expect("second offer");
            for reply in [StaffReply::Accept, StaffReply::OnSite, StaffReply::Close { outcome: Outcome::Helped, note: None }] {
                e.handle_input(t, Input::StaffReply { staff: s2.clone(), incident: inc, reply });
            }
            drain(&mut e)
        })
    });
}

/// Bytes held per open incident (each with one live offer), at 1,000 on-duty staff.
fn memory_per_open_incident() {
    const OPEN: usize = 10_000;
    let mut e = engine_with(1_000, OPEN);
    let t = Timestamp::from_secs(1_700_000_000);
    let inputs: Vec<Input> = (0..OPEN).map(|i| alarm(i as u64, &format!("r{i}"), t)).collect();
    let before = HELD.load(Ordering::Relaxed);
    for input in inputs {
        e.handle_input(t, input);
        drain(&mut e);
    }
    let after = HELD.load(Ordering::Relaxed);
    assert_eq!(e.open_incident_count(), OPEN);
    // The inputs' own strings are moved into the engine and counted in `before`;
    // what is new is the engine's bookkeeping per incident.
    println!("memory: {} bytes held per open incident ({} incidents, 1,000 on-duty staff)", (after - before) / OPEN as isize, OPEN);
}

fn main() {
    memory_per_open_incident();
    let mut c = Criterion::default().configure_from_args();
    raise_to_first_offer(&mut c);
    full_lifecycle(&mut c);
    c.final_summary();
}
