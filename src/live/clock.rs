//! The wall clock: the only place the live engine reads the time.

use crate::core::Timestamp;

/// Wall-clock time as a `Timestamp`. The only place the live engine reads the clock.
pub fn wall_clock() -> Timestamp {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Timestamp::from_millis(ms)
}
