//! A small seeded PRNG (SplitMix64), fixed forever so a seed replays the same run on every
//! machine and Rust release. Nothing in a simulated run uses any other source of randomness.

use ninety_engine::generate::SplitMix64;

/// SplitMix64 (the engine generator's, one implementation for the whole project) with the
/// helpers the simulator needs.
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed ^ 0x6e69_6e65_7479_5349))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A uniformly chosen element, `None` when empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }

    /// An independent generator for one concern (network, disks, ...), so adding draws in
    /// one place does not shift every other stream.
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng(SplitMix64::new(
            self.next_u64() ^ salt.wrapping_mul(0xa076_1d64_78bd_642f),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn deterministic_and_bounded() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
            let r = a.range(5, 9);
            assert_eq!(r, b.range(5, 9));
            assert!((5..=9).contains(&r));
        }
        assert_eq!(a.below(0), 0);
    }
}
