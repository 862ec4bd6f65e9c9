//! Randomness for the simulator: keyed draws and distributions.
//!
//! Every draw is a pure function of (seed, stream, keys): the same alarm gets the same
//! accept delay, talk time and decision under every response model. These are common
//! random numbers: differences between models come from the models, not from luck.

use serde::Deserialize;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Streams: one per kind of decision, so adding a draw in one place shifts nothing elsewhere.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub enum Stream {
    AlarmCount = 1,
    AlarmTime,
    AlarmWho,
    AlarmKind,
    StaffChoice,
    StaffDelay,
    OnSite,
    OperatorDelay,
    TalkTime,
    Resolve,
    Place,
}

/// A keyed source of uniform numbers in [0, 1).
#[derive(Debug, Clone, Copy)]
pub struct Keyed {
    pub seed: u64,
}

impl Keyed {
    pub fn bits(&self, stream: Stream, a: u64, b: u64, c: u64) -> u64 {
        splitmix(self.seed ^ splitmix((stream as u64) ^ splitmix(a ^ splitmix(b.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ splitmix(c)))))
    }

    pub fn unit(&self, stream: Stream, a: u64, b: u64, c: u64) -> f64 {
        (self.bits(stream, a, b, c) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Hash of a string id, for keys.
pub fn key(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// A distribution of durations in seconds, as written in a scenario:
/// `{ constant = 5 }`, `{ exponential = 90 }` (the mean), `{ lognormal = { median = 12,
/// spread = 1.8 } }` (spread: the geometric standard deviation, ≥ 1),
/// `{ empirical = [3, 5, 8] }` (each value equally likely), `{ empirical_file = "x.csv" }`
/// (one number per line, relative to the scenario).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DistSpec {
    Constant(f64),
    Exponential(f64),
    Lognormal { median: f64, spread: f64 },
    Empirical(Vec<f64>),
    EmpiricalFile(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    Constant(f64),
    Exponential { mean: f64 },
    Lognormal { mu: f64, sigma: f64 },
    Empirical(Vec<f64>),
}

impl DistSpec {
    pub fn build(&self, what: &str, base: Option<&std::path::Path>) -> Result<Dist, String> {
        let bad = |why: &str| Err(format!("{what}: {why}"));
        match self {
            DistSpec::Constant(v) if v.is_finite() && *v >= 0.0 => Ok(Dist::Constant(*v)),
            DistSpec::Constant(_) => bad("constant must be a finite number ≥ 0"),
            DistSpec::Exponential(m) if m.is_finite() && *m > 0.0 => Ok(Dist::Exponential { mean: *m }),
            DistSpec::Exponential(_) => bad("the exponential mean must be > 0"),
            DistSpec::Lognormal { median, spread } if median.is_finite() && *median > 0.0 && spread.is_finite() && *spread >= 1.0 => {
                Ok(Dist::Lognormal { mu: median.ln(), sigma: spread.ln() })
            }
            DistSpec::Lognormal { .. } => bad("lognormal needs median > 0 and spread ≥ 1"),
            DistSpec::Empirical(v) => empirical(v.clone()).map_err(|e| format!("{what}: {e}")),
            DistSpec::EmpiricalFile(file) => {
                let path = base.map_or_else(|| std::path::PathBuf::from(file), |b| b.join(file));
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?;
                let mut values = Vec::new();
                for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    values.push(line.trim().parse::<f64>().map_err(|_| format!("{what}: {} line {}: not a number", path.display(), i + 1))?);
                }
                empirical(values).map_err(|e| format!("{what}: {e}"))
            }
        }
    }
}

fn empirical(mut v: Vec<f64>) -> Result<Dist, String> {
    if v.is_empty() || v.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return Err("empirical values must be finite numbers ≥ 0, at least one".into());
    }
    v.sort_by(f64::total_cmp);
    Ok(Dist::Empirical(v))
}

impl Dist {
    /// A sample from two independent uniforms (u1 in [0,1), u2 in [0,1)).
    pub fn sample(&self, u1: f64, u2: f64) -> f64 {
        match self {
            Dist::Constant(v) => *v,
            Dist::Exponential { mean } => -mean * (1.0 - u1).ln(),
            Dist::Lognormal { mu, sigma } => {
                // Box–Muller: a standard normal from two uniforms.
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (mu + sigma * z).exp()
            }
            Dist::Empirical(v) => v[((u1 * v.len() as f64) as usize).min(v.len() - 1)],
        }
    }

    pub fn mean(&self) -> f64 {
        match self {
            Dist::Constant(v) => *v,
            Dist::Exponential { mean } => *mean,
            Dist::Lognormal { mu, sigma } => (mu + sigma * sigma / 2.0).exp(),
            Dist::Empirical(v) => v.iter().sum::<f64>() / v.len() as f64,
        }
    }

    /// Draws with a keyed source (two uniforms from one key).
    pub fn draw(&self, k: &Keyed, stream: Stream, a: u64, b: u64) -> std::time::Duration {
        let s = self.sample(k.unit(stream, a, b, 0), k.unit(stream, a, b, 1));
        std::time::Duration::from_secs_f64(s.clamp(0.0, 1e9))
    }
}

/// A Poisson count with mean `lambda` from a keyed stream (inversion; fine for the
/// small means of alarms per municipality per hour).
pub fn poisson(lambda: f64, k: &Keyed, stream: Stream, a: u64, b: u64) -> u32 {
    let u = k.unit(stream, a, b, 0);
    let mut p = (-lambda).exp();
    let mut cdf = p;
    let mut n = 0u32;
    while u > cdf && n < 10_000 {
        n += 1;
        p *= lambda / n as f64;
        cdf += p;
        if p == 0.0 {
            break;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_mean(d: &Dist, n: u64) -> f64 {
        let k = Keyed { seed: 7 };
        (0..n).map(|i| d.draw(&k, Stream::TalkTime, i, 0).as_secs_f64()).sum::<f64>() / n as f64
    }

    #[test]
    fn distributions_have_their_means() {
        for (spec, mean) in [
            (DistSpec::Constant(5.0), 5.0),
            (DistSpec::Exponential(90.0), 90.0),
            (DistSpec::Lognormal { median: 60.0, spread: 1.5 }, 60.0 * (1.5f64.ln().powi(2) / 2.0).exp()),
            (DistSpec::Empirical(vec![1.0, 2.0, 3.0, 10.0]), 4.0),
        ] {
            let d = spec.build("t", None).unwrap();
            assert!((d.mean() - mean).abs() < 1e-9, "{spec:?}");
            let m = sample_mean(&d, 200_000);
            assert!((m - mean).abs() / mean < 0.01, "{spec:?}: sample mean {m} vs {mean}");
        }
        assert!(DistSpec::Lognormal { median: 1.0, spread: 0.5 }.build("talk", None).unwrap_err().contains("talk"));
        assert!(DistSpec::Empirical(vec![]).build("e", None).is_err());
    }

    #[test]
    fn poisson_counts_have_the_right_mean_and_variance() {
        let k = Keyed { seed: 3 };
        let n = 200_000u64;
        let xs: Vec<f64> = (0..n).map(|i| poisson(0.7, &k, Stream::AlarmCount, i, 0) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 0.7).abs() < 0.01 && (var - 0.7).abs() < 0.02, "mean {mean} var {var}");
    }

    #[test]
    fn keyed_draws_are_pure() {
        let k = Keyed { seed: 1 };
        assert_eq!(k.bits(Stream::Resolve, 1, 2, 3), k.bits(Stream::Resolve, 1, 2, 3));
        assert_ne!(k.bits(Stream::Resolve, 1, 2, 3), k.bits(Stream::TalkTime, 1, 2, 3));
        assert_ne!(k.bits(Stream::Resolve, 1, 2, 3), Keyed { seed: 2 }.bits(Stream::Resolve, 1, 2, 3));
    }
}
