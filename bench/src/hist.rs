//! A fixed-size log-linear latency histogram (HdrHistogram-like, ~3 % error).
//!
//! Values are nanoseconds. Values below 64 are exact; above, every power of
//! two is split into 32 linear sub-buckets. Recording is a couple of integer
//! operations and one increment: no allocation after construction.

/// Linear sub-buckets per power of two (must be a power of two).
const SUB: u64 = 32;
const SUB_BITS: u32 = 5;
/// Enough buckets for any `u64`.
const BUCKETS: usize = (32 * (63 - 5) + 64) as usize;

/// Log-linear histogram of `u64` samples.
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// Creates an empty histogram (the only allocation it ever makes).
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 2 * SUB {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // floor(log2 v), >= 6
        let shift = e - SUB_BITS;
        (SUB * u64::from(shift) + (v >> shift)) as usize
    }

    /// Lowest value that falls into bucket `idx`, and the bucket width.
    fn bucket_range(idx: usize) -> (u64, u64) {
        let idx = idx as u64;
        if idx < 2 * SUB {
            return (idx, 1);
        }
        let shift = idx / SUB - 1;
        let m = idx % SUB + SUB;
        (m << shift, 1 << shift)
    }

    /// Records one sample.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        if v > self.max {
            self.max = v;
        }
    }

    /// Number of samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest sample recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.max = 0;
    }

    /// The value at quantile `q` (0.0..=1.0): the middle of the bucket holding
    /// the sample of rank ceil(q * count), clamped to the exact maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, w) = Self::bucket_range(i);
                return (lo + w / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_range_agree() {
        let mut v = 0u64;
        while v < (1 << 40) {
            let i = Histogram::index(v);
            let (lo, w) = Histogram::bucket_range(i);
            assert!(lo <= v && v < lo + w, "v={v} i={i} lo={lo} w={w}");
            assert!(i < BUCKETS);
            v = v * 9 / 8 + 1;
        }
        assert!(Histogram::index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_are_close() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        for (q, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.999, 999_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.04, "q={q} got={got}");
        }
        assert_eq!(h.quantile(1.0), 1_000_000);
        h.clear();
        assert_eq!(h.count(), 0);
        assert_eq!(h.quantile(0.5), 0);
    }
}
