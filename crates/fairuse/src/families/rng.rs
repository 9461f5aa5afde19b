//! The generator's deterministic random numbers.

/// A small deterministic generator (splitmix64): no dependency, same numbers on every platform.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        crate::gen_trace::rng::splitmix64(&mut self.0)
    }
    /// Uniform in [0, 1).
    pub(super) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(super) fn range(&mut self, r: [f64; 2]) -> f64 {
        r[0] + (r[1] - r[0]) * self.uniform()
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
    /// An integer in the range, small values likelier (most meetings are small, a few are crowds).
    pub(super) fn skewed_int(&mut self, r: [u32; 2]) -> u32 {
        let u = self.uniform();
        (r[0] + (f64::from(r[1] - r[0] + 1) * u * u) as u32).min(r[1])
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
    /// An index drawn by weight (weights >= 0, not all 0).
    pub(super) fn weighted(&mut self, w: &[f64]) -> usize {
        let total: f64 = w.iter().sum();
        let mut x = self.uniform() * total;
        for (i, v) in w.iter().enumerate() {
            if x < *v {
                return i;
            }
            x -= v;
        }
        w.iter().rposition(|v| *v > 0.0).unwrap_or(0)
    }
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// FNV-1a, to give each family its own random stream whatever other families exist.
pub(super) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3))
}
