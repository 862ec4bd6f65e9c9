//! Time as a value. The core never reads a clock: every `now` is an argument.
//!
//! A [`Timestamp`] is milliseconds since the Unix epoch, UTC. Durations are
//! `std::time::Duration`. RFC 3339 formatting and parsing live here (and not in a
//! date crate) because the core needs exactly two conversions and nothing else.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub const fn from_secs(s: i64) -> Self {
        Self(s * 1000)
    }
    pub const fn as_millis(self) -> i64 {
        self.0
    }
    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// Parses RFC 3339 (`2024-03-01T08:15:00Z`, `2024-03-01T09:15:00.250+01:00`).
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeError> {
        let b = s.as_bytes();
        let bad = |reason| TimeError { input: s.chars().take(40).collect(), reason };
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
            return Err(bad("expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset"));
        }
        // `get`, not indexing: a field may end inside a character of another script
        // ("…:0é"), and that is a malformed time, not a panic.
        let num = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
            let part = s.get(r).unwrap_or("");
            if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad("non-digit in a date or time field"));
            }
            part.parse::<i64>().map_err(|_| bad("number out of range"))
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(bad("no such date"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(bad("no such time of day"));
        }
        let mut i = 19;
        let mut millis = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(bad("empty fraction of a second"));
            }
            let frac = &s[start..i.min(start + 3)];
            millis = frac.parse::<i64>().map_err(|_| bad("bad fraction"))? * 10i64.pow(3 - frac.len() as u32);
        }
        let offset_secs = match s.get(i..).unwrap_or("") {
            "Z" | "z" => 0,
            tz if tz.len() == 6 && matches!(tz.as_bytes()[0], b'+' | b'-') && tz.as_bytes()[3] == b':' => {
                let h = num(i + 1..i + 3)?;
                let m = num(i + 4..i + 6)?;
                if h > 23 || m > 59 {
                    return Err(bad("offset out of range"));
                }
                let sign = if tz.as_bytes()[0] == b'-' { -1 } else { 1 };
                sign * (h * 3600 + m * 60)
            }
            _ => return Err(bad("expected Z or an offset like +01:00 at the end")),
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
        Ok(Self(secs * 1000 + millis))
    }

    /// A UTC date and time of day to the second, if there is such a one (month lengths
    /// and leap years checked; a leap second is taken as :59).
    pub fn from_utc(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> Option<Timestamp> {
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59);
        Some(Self(secs * 1000))
    }

    /// The UTC date and time of day, to the second: (year, month, day, hour, minute, second).
    pub fn utc(self) -> (i64, i64, i64, i64, i64, i64) {
        let secs = self.0.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
    }

    /// The start of the local day in Norway (CET, CEST under the EU summer-time rule:
    /// from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of
    /// October), for "today" on the dashboard.
    pub fn norway_midnight(self) -> Timestamp {
        const DAY: i64 = 86_400_000;
        let local_day = (self.0 + norway_offset_ms(self.0)).div_euclid(DAY);
        let guess = local_day * DAY - norway_offset_ms(self.0);
        Timestamp(local_day * DAY - norway_offset_ms(guess))
    }

    /// Seconds since midnight UTC and day of the week (0 = Monday).
    pub fn utc_time_of_day_and_weekday(self) -> (u32, u32) {
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000);
        // 1970-01-01 was a Thursday (3 when Monday is 0).
        (((ms_of_day / 1000) as u32), ((days + 3).rem_euclid(7)) as u32)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_millis().min(i64::MAX as u128) as i64))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds: `2024-03-01T08:15:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400_000);
        let ms = self.0.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let (h, mi, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError {
    pub input: String,
    pub reason: &'static str,
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RFC 3339 time {:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for TimeError {}

fn norway_offset_ms(utc_ms: i64) -> i64 {
    let (y, _, _) = civil_from_days(utc_ms.div_euclid(86_400_000));
    let last_sunday = |m: i64| {
        let last = days_from_civil(y, m, days_in_month(y, m));
        let weekday = (last + 3).rem_euclid(7); // 0 = Monday, 6 = Sunday
        (last - (weekday + 1) % 7) * 86_400_000 + 3_600_000
    };
    if utc_ms >= last_sunday(3) && utc_ms < last_sunday(10) { 2 * 3_600_000 } else { 3_600_000 }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_knows_the_epoch() {
        assert_eq!(Timestamp::parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), Timestamp::from_millis(0));
        // 2024-03-01T08:15:00Z = 1709280900 s (leap year, after 29 February).
        let t = Timestamp::parse_rfc3339("2024-03-01T08:15:00Z").unwrap();
        assert_eq!(t.as_millis(), 1_709_280_900_000);
        assert_eq!(t.to_string(), "2024-03-01T08:15:00.000Z");
        let with_offset = Timestamp::parse_rfc3339("2024-03-01T09:15:00.25+01:00").unwrap();
        assert_eq!(with_offset.as_millis(), 1_709_280_900_250);
        assert_eq!(Timestamp::parse_rfc3339(&with_offset.to_string()).unwrap(), with_offset);
    }

    #[test]
    fn rfc3339_rejects_nonsense_with_a_reason() {
        for bad in [
            "",
            "yesterday",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T25:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+1",
            "2024-01-01T00:00:0é",
            "2024-01-01T00:00:€0",
            "2024-01-01T00:00:00é",
            "2024-01-01T00:00:00.5é",
            "2024-01-01T00:00:00+0é:0",
        ] {
            let e = Timestamp::parse_rfc3339(bad).unwrap_err();
            assert!(!e.reason.is_empty(), "{bad}");
        }
        assert!(Timestamp::parse_rfc3339("2024-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn norwegian_midnight_in_winter_summer_and_on_the_switch_days() {
        let m = |s: &str| Timestamp::parse_rfc3339(s).unwrap().norway_midnight().to_string();
        assert_eq!(m("2026-01-15T12:00:00Z"), "2026-01-14T23:00:00.000Z");
        assert_eq!(m("2026-01-15T23:30:00Z"), "2026-01-15T23:00:00.000Z", "00:30 local is the next day");
        assert_eq!(m("2026-07-01T21:59:00Z"), "2026-06-30T22:00:00.000Z");
        assert_eq!(m("2026-07-01T22:00:00Z"), "2026-07-01T22:00:00.000Z");
        // 2026-03-29 and 2026-10-25 are the switch Sundays: midnight is before the switch.
        assert_eq!(m("2026-03-29T12:00:00Z"), "2026-03-28T23:00:00.000Z");
        assert_eq!(m("2026-10-25T12:00:00Z"), "2026-10-24T22:00:00.000Z");
    }

    #[test]
    fn weekday_and_time_of_day() {
        // 2024-03-01 was a Friday (4 when Monday is 0).
        let t = Timestamp::parse_rfc3339("2024-03-01T08:15:00Z").unwrap();
        assert_eq!(t.utc_time_of_day_and_weekday(), (8 * 3600 + 15 * 60, 4));
    }

    #[test]
    fn durations_never_run_backwards() {
        let a = Timestamp::from_secs(10);
        assert_eq!(a.since(Timestamp::from_secs(12)), Duration::ZERO);
        assert_eq!((a + Duration::from_millis(1500)).since(a), Duration::from_millis(1500));
    }
}
