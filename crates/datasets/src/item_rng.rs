//! Per-item augmentation randomness that depends only on (seed, epoch, item), never on thread scheduling.
//!
//! Each image gets its own generator seeded from `item_seed(seed, epoch,
//! index)`, so an epoch's augmentations are the same whatever the thread count
//! or decoding order. The generator is xoshiro256++ seeded through SplitMix64,
//! written out here so that streams do not change with a `rand` upgrade.

use rand::RngCore;

/// SplitMix64's output function: a bijective 64-bit mixer.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The seed of one item's augmentation in one epoch.
pub fn item_seed(seed: u64, epoch: u64, index: u64) -> u64 {
    let a = mix64(seed.wrapping_add(GOLDEN));
    let b = mix64(a ^ epoch.wrapping_add(GOLDEN.wrapping_mul(2)));
    mix64(b ^ index.wrapping_add(GOLDEN.wrapping_mul(3)))
}

/// The seed of an epoch's shuffle order.
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    item_seed(seed, epoch, u64::MAX)
}

/// xoshiro256++, a small fast generator; implements [`rand::RngCore`] so it
/// can drive `clip_model::preprocess::TrainTransform`.
#[derive(Debug, Clone)]
pub struct ItemRng {
    s: [u64; 4],
}

impl ItemRng {
    /// A generator whose state is four SplitMix64 outputs from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(GOLDEN);
            mix64(x)
        };
        ItemRng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits (also available through [`rand::RngCore`]).
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, n)` by rejection (no modulo bias).
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let r = self.next_u64();
            if r < zone {
                return r % n;
            }
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            x.swap(i, j);
        }
    }
}

impl RngCore for ItemRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        ItemRng::next_u64(self)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_seeds_differ_across_seed_epoch_and_index() {
        let base = item_seed(1, 0, 0);
        assert_ne!(base, item_seed(2, 0, 0));
        assert_ne!(base, item_seed(1, 1, 0));
        assert_ne!(base, item_seed(1, 0, 1));
        assert_eq!(base, item_seed(1, 0, 0));
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = ItemRng::new(7);
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
