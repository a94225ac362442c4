//! Grid search: every arch of the space exactly once, in a seeded shuffled order.
//!
//! The order is the affine permutation `k -> (a*k + b) mod N` of the mixed-radix enumeration
//! (`gcd(a, N) = 1`), so it needs no memory for spaces of any size and visits each value
//! combination once; non-canonical combinations (conditional choices) are skipped.

use super::{History, Strategy};
use crate::rng::Rng;
use crate::space::{Arch, Space};

/// Exhaustive search in a shuffled order. On a finite space it ends (asks `None`) after the last arch.
pub struct GridSearch {
    rng: Rng,
    perm: Option<(u128, u128, u128)>,
    next: u128,
}

impl GridSearch {
    /// Grid search with its own seeded generator (which only picks the order).
    pub fn new(seed: u64) -> Self {
        GridSearch {
            rng: Rng::new(seed),
            perm: None,
            next: 0,
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `(x * y) mod n` without overflow for any `n`.
fn mul_mod(x: u128, y: u128, n: u128) -> u128 {
    if let Some(p) = x.checked_mul(y) {
        return p % n;
    }
    let (mut x, mut y, mut acc) = (x % n, y, 0u128);
    while y > 0 {
        if y & 1 == 1 {
            acc = add_mod(acc, x, n);
        }
        x = add_mod(x, x, n);
        y >>= 1;
    }
    acc
}

fn add_mod(x: u128, y: u128, n: u128) -> u128 {
    if x >= n - y {
        x - (n - y)
    } else {
        x + y
    }
}

impl Strategy for GridSearch {
    fn name(&self) -> &'static str {
        "grid"
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        let n = space.combinations();
        let rng = &mut self.rng;
        let (a, b, n) = *self.perm.get_or_insert_with(|| {
            let a = loop {
                let a = if n > 1 { 1 + rng.below_u128(n - 1) } else { 1 };
                if gcd(a, n) == 1 {
                    break a;
                }
            };
            (a, rng.below_u128(n), n)
        });
        while self.next < n {
            let idx = add_mod(mul_mod(a, self.next, n), b, n);
            self.next += 1;
            if let Some(arch) = space.arch_at(idx) {
                if !history.contains(&arch) {
                    return Some(arch);
                }
            }
        }
        None
    }

    fn tell(&mut self, _: &dyn Space, _: &Arch, _: Option<f64>, _: &History) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_mod_matches_small_arithmetic_and_handles_overflow() {
        assert_eq!(mul_mod(7, 9, 10), 3);
        let n = u128::MAX - 158;
        let x = n - 1;
        // (n-1)^2 = 1 (mod n)
        assert_eq!(mul_mod(x, x, n), 1);
    }
}
