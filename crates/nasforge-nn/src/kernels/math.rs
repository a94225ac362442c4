//! Vectorised elementwise math for the kernels: `exp` over a slice (the softmax's cost), GELU
//! and its slope (erf from `exp`), a slice's maximum and a dot product, each with eight independent lanes so that the compiler
//! turns them into SIMD, and compiled twice: for the baseline x86-64 (SSE2) and for AVX2 + FMA,
//! picked at run time.
//!
//! `exp` is the Cephes single-precision method: `x = n·ln 2 + r` with `n` rounded to the
//! nearest integer and `|r| ≤ ln 2 / 2`, `eʳ` by a degree-7 polynomial, `2ⁿ` put in the
//! exponent bits. Within 2 ulp of the true value on `[-87, 88]` (tested against `f64::exp`);
//! inputs below −87 give about `1.6e-38` instead of a subnormal or 0, which a softmax sum
//! cannot tell apart.

/// Lanes of the reductions (two AVX registers of f32 would be 16; 8 keeps SSE busy too).
const LANES: usize = 8;

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `n · LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 · 2²³ rounds an f32 of magnitude below 2²² to an integer.
const ROUND: f32 = 12_582_912.0;
/// The polynomial of `(eʳ − 1 − r) / r²` (Cephes `expf`).
const P: [f32; 6] = [
    1.987_569_2e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

#[inline(always)]
fn exp_lane(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    // `t` is ROUND + n exactly, so its bits are ROUND's plus n: the integer without a
    // float-to-int cast (whose saturation rule keeps the compiler from vectorising it).
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = P[0];
    for c in &P[1..] {
        p = p * r + c;
    }
    let e = r * r * p + r + 1.0;
    e * f32::from_bits((ni.wrapping_add(127) as u32) << 23)
}

/// Runs `$body` (an expression over the function's arguments) compiled for AVX2 + FMA when the
/// CPU has them, for the baseline otherwise.
macro_rules! multiversion {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn generic($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

multiversion! {
    /// `v[i] = exp(a · v[i] + b)` for every value; returns their sum.
    pub fn exp_affine(v: &mut [f32], a: f32, b: f32) -> f32 {
        let mut lanes = [0f32; LANES];
        let mut chunks = v.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for (x, l) in c.iter_mut().zip(lanes.iter_mut()) {
                *x = exp_lane(a * *x + b);
                *l += *x;
            }
        }
        let mut sum: f32 = 0.0;
        for x in chunks.into_remainder() {
            *x = exp_lane(a * *x + b);
            sum += *x;
        }
        lanes.iter().sum::<f32>() + sum
    }
}

/// `(Φ(x), φ(x))`, the standard normal's distribution and density at `x`: `Φ` from `erf` by
/// Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), whose `exp(−x²/2)` is also the
/// density's, so both cost one [`exp_lane`].
#[inline(always)]
fn cdf_pdf(x: f32) -> (f32, f32) {
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let z = (x * FRAC_1_SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let mut p = A[4];
    for c in A[..4].iter().rev() {
        p = p * t + c;
    }
    let e = exp_lane(-z * z);
    let erf = (1.0 - p * t * e).copysign(x);
    (0.5 * (1.0 + erf), FRAC_1_SQRT_2PI * e)
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / √(2π)`.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

multiversion! {
    /// `out[i] = GELU(x[i]) = x Φ(x)`, the exact (erf) form.
    pub fn gelu(x: &[f32], out: &mut [f32]) -> () {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v * cdf_pdf(v).0;
        }
    }
}

multiversion! {
    /// [`gelu`] and its slope `slope[i] = GELU'(x[i]) = Φ(x) + x φ(x)`, which is all the
    /// backward pass needs (`dx = dy · slope`): computed here, the backward is one product.
    pub fn gelu_and_slope(x: &[f32], out: &mut [f32], slope: &mut [f32]) -> () {
        for ((o, s), &v) in out.iter_mut().zip(slope.iter_mut()).zip(x) {
            let (cdf, pdf) = cdf_pdf(v);
            *o = v * cdf;
            *s = cdf + v * pdf;
        }
    }
}

multiversion! {
    /// The largest value (−∞ for none).
    pub fn max(v: &[f32]) -> f32 {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let chunks = v.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for (x, l) in c.iter().zip(lanes.iter_mut()) {
                *l = l.max(*x);
            }
        }
        rest.iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &x| m.max(x))
    }
}

multiversion! {
    /// `Σ a[i] · b[i]` over the shorter of the two.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut lanes = [0f32; LANES];
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for ((x, y), l) in x.iter().zip(y).zip(lanes.iter_mut()) {
                *l += x * y;
            }
        }
        lanes.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units in the last place between `a` and the f64 truth.
    fn ulps(a: f32, truth: f64) -> f64 {
        let t = truth as f32;
        let ulp = (f32::from_bits(t.to_bits() + 1) - t) as f64;
        (a as f64 - truth).abs() / ulp
    }

    #[test]
    fn exp_is_within_two_ulp_of_f64_on_its_range() {
        let mut worst = 0f64;
        let n = 200_001;
        let mut v: Vec<f32> = (0..n)
            .map(|i| -87.0 + 175.0 * i as f32 / (n - 1) as f32)
            .collect();
        let x = v.clone();
        exp_affine(&mut v, 1.0, 0.0);
        for (&e, &x) in v.iter().zip(&x) {
            worst = worst.max(ulps(e, (x as f64).exp()));
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        // The sum it returns (of values a softmax sees: at most 1).
        let x: Vec<f32> = (0..1001).map(|i| -20.0 + 0.02 * i as f32).collect();
        let mut v = x.clone();
        let sum = exp_affine(&mut v, 1.0, 0.0);
        let truth: f64 = x.iter().map(|&x| (x as f64).exp()).sum();
        assert!(
            ((sum as f64 - truth) / truth).abs() < 1e-6,
            "{sum} vs {truth}"
        );
        // The affine form, and the small values a softmax meets.
        let mut w = vec![-3.0f32, 0.0, 1.5, -200.0, 2.0, 0.25, -0.5, 4.0, -1.0];
        exp_affine(&mut w, 2.0, -1.0);
        for (&e, x) in w
            .iter()
            .zip([-3.0f64, 0.0, 1.5, -200.0, 2.0, 0.25, -0.5, 4.0, -1.0])
        {
            let truth = (2.0 * x - 1.0).exp();
            assert!(
                (e as f64 - truth).abs() <= 1e-37 + 3e-7 * truth,
                "{e} vs {truth}"
            );
        }
    }

    #[test]
    fn gelu_and_its_derivative_match_f64() {
        // erf by its Taylor series in f64 (exact to ~1e-11 for |v| ≤ 4).
        let erf = |v: f64| {
            let (mut term, mut sum) = (v, v);
            for n in 1..120 {
                term *= -v * v / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        let x: Vec<f32> = (0..2201).map(|i| -5.5 + 0.005 * i as f32).collect();
        let mut y = vec![0f32; x.len()];
        gelu(&x, &mut y);
        let (mut y2, mut d) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        gelu_and_slope(&x, &mut y2, &mut d);
        assert_eq!(y, y2);
        for ((&v, &g), &dg) in x.iter().zip(&y).zip(&d) {
            let v = v as f64;
            let cdf = 0.5 * (1.0 + erf(v / std::f64::consts::SQRT_2));
            let truth = v * cdf;
            let slope = cdf + v * (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            assert!(
                (g as f64 - truth).abs() <= 2e-6 * (1.0 + v.abs()),
                "GELU({v}) = {g}, not {truth}"
            );
            assert!(
                (dg as f64 - slope).abs() <= 2e-6 * (1.0 + v.abs()),
                "GELU'({v}) = {dg}, not {slope}"
            );
        }
        // Far out: x and 0, slopes 1 and 0.
        let mut far = [0f32; 2];
        gelu(&[10.0, -10.0], &mut far);
        assert_eq!(far, [10.0, 0.0]);
        let mut slopes = [0f32; 2];
        gelu_and_slope(&[10.0, -10.0], &mut far, &mut slopes);
        assert_eq!(far, [10.0, 0.0]);
        assert!(slopes[0] == 1.0 && slopes[1].abs() < 1e-20, "{slopes:?}");
    }

    #[test]
    fn max_and_dot_match_plain_loops() {
        for n in [0usize, 1, 7, 8, 9, 31, 100] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.7).collect();
            assert_eq!(max(&a), a.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)));
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| (x * y) as f64).sum();
            assert!((dot(&a, &b) as f64 - plain).abs() < 1e-4, "n {n}");
        }
    }
}
