//! Measurements: a compact latency histogram and the run's counters.

use crate::time::Micros;

/// Log-linear histogram of microsecond values: 32 sub-buckets per power of two (about 3 %
/// precision), fixed memory, no allocation per sample.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

const SUB: u32 = 32;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; (64 * SUB) as usize],
            count: 0,
        }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= 5
        let shift = exp - SUB.trailing_zeros();
        let mant = (v >> shift) as u32 - SUB; // 0..SUB
        ((exp - SUB.trailing_zeros() + 1) * SUB + mant) as usize
    }

    fn value(idx: usize) -> u64 {
        let idx = idx as u32;
        if idx < SUB {
            return idx as u64;
        }
        let group = idx / SUB; // = exp - 5 + 1
        let mant = idx % SUB;
        let shift = group - 1;
        // Midpoint of the bucket.
        ((SUB + mant) as u64) << shift | ((1u64 << shift) >> 1)
    }

    pub fn record(&mut self, v: Micros) {
        self.buckets[Self::index(v)] += 1;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at quantile `q` (0..=1), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Micros> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::value(i));
            }
        }
        None
    }
}

/// Median of a list (sorts it).
pub fn median(v: &mut [Micros]) -> Option<Micros> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

/// Ping/pong figures for one direction of connections (as the pinger sees it).
#[derive(Clone, Debug, Default)]
pub struct PingStats {
    pub sent: u64,
    pub answered: u64,
    /// Unanswered when their connection ended (or the run did) and older than the loss age.
    pub lost: u64,
    /// Too young to judge when their connection ended or the run did.
    pub undecided: u64,
}

impl PingStats {
    /// Judges pings still unanswered when their connection ended (or the run did): lost if
    /// sent at least `loss_age` before `now`, otherwise undecided.
    pub fn judge_unanswered(
        &mut self,
        now: crate::time::Micros,
        loss_age: crate::time::Micros,
        sent_at: impl Iterator<Item = crate::time::Micros>,
    ) {
        for sent in sent_at {
            if now - sent >= loss_age {
                self.lost += 1;
            } else {
                self.undecided += 1;
            }
        }
    }

    pub fn success_rate(&self) -> Option<f64> {
        let judged = self.answered + self.lost;
        (judged > 0).then(|| self.answered as f64 / judged as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_a_few_percent() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 10);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 50_000.0 - 1.0).abs() < 0.04, "{p50}");
        assert!((p99 / 99_000.0 - 1.0).abs() < 0.04, "{p99}");
        assert_eq!(Histogram::default().quantile(0.5), None);
        let mut small = Histogram::default();
        small.record(3);
        assert_eq!(small.quantile(0.5), Some(3));
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3, 1, 2]), Some(2));
        assert_eq!(median(&mut [4, 1, 2, 3]), Some(2));
        assert_eq!(median(&mut []), None);
    }
}
