//! A fixed-size log-linear histogram of durations (in milliseconds), so that a
//! simulated decade or a live year takes the same memory as an hour.
//!
//! Values below 128 ms are exact; above, each power of two is split into 64 buckets,
//! so a reported percentile is within 1.6 % of the true value (HdrHistogram's idea,
//! with two significant digits). Counts of "within target" are kept exactly by the
//! KPI collector, not read off this histogram.

use std::time::Duration;

const SUB_BITS: u32 = 6; // 64 sub-buckets per power of two
const SUB: u64 = 1 << SUB_BITS;
const LINEAR_LIMIT: u64 = 2 * SUB; // 128: exact below this
const MAX_EXP: u32 = 42; // ~ 50 days in ms
const BUCKETS: usize = (LINEAR_LIMIT + (MAX_EXP as u64 - SUB_BITS as u64) * SUB) as usize;

#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum_ms: u128,
    max_ms: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, sum_ms: 0, max_ms: 0 }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Histogram {{ n: {}, p50: {:?}, max_ms: {} }}", self.total, self.percentile(50.0), self.max_ms)
    }
}

fn bucket_of(ms: u64) -> usize {
    if ms < LINEAR_LIMIT {
        return ms as usize;
    }
    let exp = (63 - ms.leading_zeros()).min(MAX_EXP); // ms >= 128 → exp >= 7
    let shift = exp - SUB_BITS;
    let sub = ((ms >> shift) - SUB).min(SUB - 1);
    (LINEAR_LIMIT + (exp as u64 - SUB_BITS as u64 - 1) * SUB + sub) as usize
}

/// The largest value that lands in bucket `b`.
fn bucket_high(b: usize) -> u64 {
    let b = b as u64;
    if b < LINEAR_LIMIT {
        return b;
    }
    let i = b - LINEAR_LIMIT;
    let exp = i / SUB + SUB_BITS as u64 + 1;
    let sub = i % SUB;
    let shift = exp - SUB_BITS as u64;
    ((SUB + sub + 1) << shift) - 1
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let ms = d.as_millis().min(u64::MAX as u128) as u64;
        self.counts[bucket_of(ms).min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.sum_ms += ms as u128;
        self.max_ms = self.max_ms.max(ms);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn mean(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_millis((self.sum_ms / self.total as u128) as u64))
    }

    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_millis(self.max_ms))
    }

    /// The smallest recorded value v such that at least `p` % of values are ≤ v
    /// (to bucket precision, never above the true maximum).
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_millis(bucket_high(b).min(self.max_ms)));
            }
        }
        Some(Duration::from_millis(self.max_ms))
    }

    /// Share of values ≤ `limit`, to bucket precision.
    pub fn share_at_most(&self, limit: Duration) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let ms = limit.as_millis() as u64;
        let n: u64 = self.counts.iter().enumerate().filter(|(b, _)| bucket_high(*b) <= ms).map(|(_, c)| c).sum();
        Some(n as f64 / self.total as f64)
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum_ms += other.sum_ms;
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// (upper bound in ms, count) of every non-empty bucket, for charts.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(b, &c)| (bucket_high(b), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotone() {
        let mut prev_high = None;
        for b in 0..BUCKETS {
            let high = bucket_high(b);
            if let Some(p) = prev_high {
                assert!(high > p, "bucket {b}");
                assert_eq!(bucket_of(p + 1), b, "value {} starts bucket {b}", p + 1);
            }
            assert_eq!(bucket_of(high), b);
            prev_high = Some(high);
        }
    }

    #[test]
    fn percentiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for ms in 1..=100_000u64 {
            h.record(Duration::from_millis(ms));
        }
        for (p, exact) in [(50.0, 50_000.0), (95.0, 95_000.0), (99.0, 99_000.0)] {
            let got = h.percentile(p).unwrap().as_millis() as f64;
            assert!((got - exact).abs() / exact < 0.016, "p{p}: {got} vs {exact}");
            assert!(got >= exact, "percentile never under-reports: p{p} {got}");
        }
        assert_eq!(h.percentile(100.0).unwrap(), Duration::from_millis(100_000));
        assert_eq!(h.mean().unwrap(), Duration::from_millis(50_000));
    }

    #[test]
    fn small_values_are_exact_and_merge_adds() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(Duration::from_millis(3));
        b.record(Duration::from_millis(100));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.percentile(50.0).unwrap(), Duration::from_millis(3));
        assert_eq!(a.percentile(100.0).unwrap(), Duration::from_millis(100));
        assert_eq!(a.share_at_most(Duration::from_millis(50)), Some(0.5));
        assert_eq!(Histogram::default().percentile(50.0), None);
    }
}
