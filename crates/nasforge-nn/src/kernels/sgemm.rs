//! Single-precision matrix product on AVX-512 for the linear layers, where the `gemm` crate
//! (stable Rust builds only its AVX2 kernels; its AVX-512 ones need a nightly feature) leaves
//! half of such a CPU's multiply-add width unused.
//!
//! The classic blocked scheme (Goto; BLIS's loop order): for each block of `KC` depths, the
//! right-hand side is packed into panels of `NR` = 32 columns (two 16-lane registers) and each
//! task packs its rows of the left-hand side into slivers of `MR` = 12 rows; a micro-kernel
//! keeps a 12 × 32 block of the product in 24 registers and, per depth, loads two panel vectors
//! and broadcasts 12 left-hand values into 24 fused multiply-adds. Edges (rows beyond a sliver,
//! columns beyond a panel) are zero-padded when packing and masked when storing, so any shape
//! and any strides work. Tasks are blocks of rows, spread over the pool; each task owns its
//! rows of the output, so the result does not depend on the thread count.
//!
//! [`product`] picks this kernel when the CPU has AVX-512F and the product is large enough to
//! pay for packing (linear layers of Transformers and MLPs); attention's per-head products and
//! the convolutions' stay on the `gemm` crate, which is as fast or faster at their small sizes
//! (measured in `docs/BENCHMARKS.md`).

use super::gemm_into;

/// Below this many multiply-adds the `gemm` crate's kernels are used (packing does not pay).
const MIN_WORK: usize = 1 << 20;

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` (`dst` row-major with row stride `n`; inputs as slices
/// with row and column strides): the AVX-512 kernel where it applies, the `gemm` crate
/// otherwise.
///
/// # Safety
/// `dst` must be valid for writes (and reads, with `accumulate`) of `m × n` values in row-major
/// order and must not alias the inputs.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    accumulate: bool,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    parallel: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if m * n * k >= MIN_WORK && avx512::available() {
        // SAFETY: the CPU has AVX-512F; the caller vouches for `dst`.
        unsafe { avx512::product(m, n, k, dst, accumulate, lhs, rhs, parallel) };
        return;
    }
    // SAFETY: as the caller vouches.
    unsafe { gemm_into(m, n, k, dst, accumulate, lhs, rhs, 1.0, parallel) }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;
    use std::cell::Cell;

    /// Rows of a micro-kernel block (and of a packed left-hand sliver).
    const MR: usize = 12;
    /// Columns of a micro-kernel block (and of a packed right-hand panel): two registers.
    const NR: usize = 32;
    /// Depths per packed block: a 32 KiB panel, which stays in L1 while the slivers stream.
    const KC: usize = 256;
    /// Columns per packed block of the right-hand side.
    const NC: usize = 1024;
    /// The most rows a task takes.
    const MC_MAX: usize = 120;

    /// Whether the CPU has AVX-512F (the standard library caches the answer).
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    thread_local! {
        static PACK_A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
        static PACK_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    }

    /// Runs `f` on `len` values of this thread's packing buffer `key`, kept across calls (a
    /// call nested on the same thread gets a fresh buffer). `f` writes every value it reads.
    fn with_buffer<R>(
        key: &'static std::thread::LocalKey<Cell<Vec<f32>>>,
        len: usize,
        f: impl FnOnce(&mut [f32]) -> R,
    ) -> R {
        let mut v = key.take();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        let r = f(&mut v[..len]);
        key.set(v);
        r
    }

    /// A matrix operand: its values and row and column strides.
    #[derive(Clone, Copy)]
    struct Operand<'a> {
        v: &'a [f32],
        rs: usize,
        cs: usize,
    }

    impl Operand<'_> {
        fn at(&self, row: usize, col: usize) -> f32 {
            self.v[row * self.rs + col * self.cs]
        }
    }

    /// The output, written by tasks at disjoint rows.
    #[derive(Clone, Copy)]
    struct Out(*mut f32);
    // SAFETY: tasks write disjoint rows of the output (see `product`).
    unsafe impl Send for Out {}
    // SAFETY: as above.
    unsafe impl Sync for Out {}

    impl Out {
        fn at(self, offset: usize) -> *mut f32 {
            self.0.wrapping_add(offset)
        }
    }

    /// Packs rows `r0..r0 + live` (fewer than `MR`), depths `p0..p0 + kc` of `a` as one sliver
    /// `[depth][MR]`, rows past `live` zero: the micro-kernel reads whole slivers in place, and
    /// only a task's last, partial one is copied.
    fn pack_a(a: Operand, r0: usize, live: usize, p0: usize, out: &mut [f32]) {
        for (p, row) in out.chunks_exact_mut(MR).enumerate() {
            for (r, x) in row.iter_mut().enumerate() {
                *x = if r < live { a.at(r0 + r, p0 + p) } else { 0.0 };
            }
        }
    }

    /// Packs depths `p0..p0 + kc`, columns `j0..j0 + nc` of `b` as `NR`-column panels
    /// `[panel][depth][NR]`, columns past the end zero; panels over the pool if `parallel`.
    fn pack_b(
        b: Operand,
        p0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        out: &mut [f32],
        parallel: bool,
    ) {
        use rayon::prelude::*;
        let panel = |(q, o): (usize, &mut [f32])| {
            let live = (nc - q * NR).min(NR);
            let c0 = j0 + q * NR;
            for (p, row) in o.chunks_exact_mut(NR).enumerate() {
                let at = (p0 + p) * b.rs + c0;
                if b.cs == 1 && live == NR {
                    // A constant length: copied inline, not by a call per row.
                    let src: &[f32; NR] = b.v[at..at + NR].try_into().expect("NR values");
                    row.copy_from_slice(src);
                } else if b.cs == 1 {
                    row[..live].copy_from_slice(&b.v[at..at + live]);
                } else {
                    for (c, x) in row[..live].iter_mut().enumerate() {
                        *x = b.at(p0 + p, c0 + c);
                    }
                }
                row[live..].fill(0.0);
            }
        };
        if parallel {
            out.par_chunks_mut(kc * NR).enumerate().for_each(panel);
        } else {
            out.chunks_mut(kc * NR).enumerate().for_each(panel);
        }
    }

    /// The `rows × cols` (at most `MR × NR`) block at `c` (row stride `ldc`) gets (or, with
    /// `add`, gains) the product of `MR` rows of `a` (value `(i, p)` at `a + i·a_rs + p·a_cs`:
    /// the operand in place, or a packed sliver with strides 1 and `MR`) and a packed panel `b`
    /// over `kc` depths.
    ///
    /// # Safety
    /// AVX-512F; `a` is valid for reads of `MR` rows of `kc` depths at its strides, `b` for
    /// `kc · NR` values; `c` is valid for `rows` rows of `cols` values at stride `ldc`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn micro(
        kc: usize,
        (a, a_rs, a_cs): (*const f32, usize, usize),
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        add: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let row: [*const f32; MR] = std::array::from_fn(|i| a.wrapping_add(i * a_rs));
        for p in 0..kc {
            // SAFETY: depth `p < kc` of the `MR` rows and of the packed panel.
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(p * NR));
                let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
                let at = p * a_cs;
                for (acc, row) in acc.iter_mut().zip(&row) {
                    let ai = _mm512_set1_ps(*row.add(at));
                    acc[0] = _mm512_fmadd_ps(ai, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(ai, b1, acc[1]);
                }
            }
        }
        let mask = |live: usize| -> __mmask16 {
            if live >= 16 {
                0xFFFF
            } else {
                ((1u32 << live) - 1) as __mmask16
            }
        };
        let (m0, m1) = (mask(cols), mask(cols.saturating_sub(16)));
        for (i, acc) in acc.iter().enumerate().take(rows) {
            // SAFETY: row `i < rows`, columns masked to `cols`.
            unsafe {
                let ci = c.add(i * ldc);
                let (mut x0, mut x1) = (acc[0], acc[1]);
                if add {
                    x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, ci));
                    x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, ci.add(16)));
                }
                _mm512_mask_storeu_ps(ci, m0, x0);
                _mm512_mask_storeu_ps(ci.add(16), m1, x1);
            }
        }
    }

    /// As [`super::product`], always on this kernel.
    ///
    /// # Safety
    /// AVX-512F, and `dst` as for [`super::product`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn product(
        m: usize,
        n: usize,
        k: usize,
        dst: *mut f32,
        accumulate: bool,
        (lhs, lhs_rs, lhs_cs): (&[f32], usize, usize),
        (rhs, rhs_rs, rhs_cs): (&[f32], usize, usize),
        parallel: bool,
    ) {
        use rayon::prelude::*;
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                // SAFETY: `dst` holds `m × n` values.
                unsafe { std::ptr::write_bytes(dst, 0, m * n) };
            }
            return;
        }
        super::super::assert_operands(m, n, k, (lhs, lhs_rs, lhs_cs), (rhs, rhs_rs, rhs_cs));
        let a = Operand {
            v: lhs,
            rs: lhs_rs,
            cs: lhs_cs,
        };
        let b = Operand {
            v: rhs,
            rs: rhs_rs,
            cs: rhs_cs,
        };
        let threads = if parallel {
            rayon::current_num_threads()
        } else {
            1
        };
        // Row blocks: at least two per thread when parallel, a whole number per thread, of
        // whole slivers.
        let tasks = {
            let t = m
                .div_ceil(MC_MAX)
                .max(if threads > 1 { 2 * threads } else { 1 });
            t.div_ceil(threads) * threads
        };
        let mc = m.div_ceil(tasks).div_ceil(MR) * MR;
        let tasks = m.div_ceil(mc);
        let out = Out(dst);
        for j0 in (0..n).step_by(NC) {
            let nc = (n - j0).min(NC);
            let panels = nc.div_ceil(NR);
            for p0 in (0..k).step_by(KC) {
                let kc = (k - p0).min(KC);
                let add = accumulate || p0 > 0;
                with_buffer(&PACK_B, panels * kc * NR, |bp| {
                    pack_b(b, p0, kc, j0, nc, bp, threads > 1);
                    let bp: &[f32] = bp;
                    let task = |t: usize| {
                        let i0 = t * mc;
                        let rows = (m - i0).min(mc);
                        let slivers = rows.div_ceil(MR);
                        with_buffer(&PACK_A, kc * MR, |ap| {
                            for s in 0..slivers {
                                let (r0, live) = (i0 + s * MR, (rows - s * MR).min(MR));
                                let sliver = if live == MR {
                                    (a.v[r0 * a.rs + p0 * a.cs..].as_ptr(), a.rs, a.cs)
                                } else {
                                    pack_a(a, r0, live, p0, ap);
                                    (ap.as_ptr(), 1, MR)
                                };
                                for q in 0..panels {
                                    let cols = (nc - q * NR).min(NR);
                                    let c = out.at(r0 * n + j0 + q * NR);
                                    // SAFETY: AVX-512F (caller); a whole sliver lies inside
                                    // `lhs` (its last row and depth are, by the assert above),
                                    // a partial one was packed; the panel is packed; `c`
                                    // addresses rows `r0..r0 + live` (this task's) and columns
                                    // `j0 + q·NR..` inside `dst`.
                                    unsafe {
                                        micro(
                                            kc,
                                            sliver,
                                            bp[q * kc * NR..].as_ptr(),
                                            c,
                                            n,
                                            live,
                                            cols,
                                            add,
                                        )
                                    };
                                }
                            }
                        });
                    };
                    if threads > 1 && tasks > 1 {
                        (0..tasks).into_par_iter().for_each(task);
                    } else {
                        (0..tasks).for_each(task);
                    }
                });
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// `lhs · rhs` in f64 from the strided operands.
        fn naive(m: usize, n: usize, k: usize, a: Operand, b: Operand) -> Vec<f64> {
            let mut c = vec![0f64; m * n];
            for i in 0..m {
                for j in 0..n {
                    c[i * n + j] = (0..k).map(|p| a.at(i, p) as f64 * b.at(p, j) as f64).sum();
                }
            }
            c
        }

        #[test]
        fn avx512_product_matches_a_naive_product_on_edges_strides_and_depth_blocks() {
            if !available() {
                eprintln!("skipped: this CPU has no AVX-512F (the kernel never runs here)");
                return;
            }
            let mut seed = 0x5E_6E33u64;
            let mut values = |len: usize| -> Vec<f32> {
                (0..len)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                    })
                    .collect()
            };
            // (m, n, k): partial slivers and panels, one row/column, depth over two blocks, a
            // column block boundary, and several row tasks.
            let shapes = [
                (1, 1, 1),
                (13, 33, 7),
                (12, 32, 256),
                (25, 17, 300),
                (7, 1030, 5),
                (130, 65, 513),
                (300, 48, 40),
                (5, 0, 3),
                (4, 6, 0),
            ];
            for (case, &(m, n, k)) in shapes.iter().enumerate() {
                for (lhs_t, rhs_t, accumulate, parallel) in [
                    (false, false, false, true),
                    (true, false, true, false),
                    (false, true, false, false),
                    (true, true, true, true),
                ] {
                    let (av, bv) = (values(m * k), values(k * n));
                    let a = Operand {
                        v: &av,
                        rs: if lhs_t { 1 } else { k },
                        cs: if lhs_t { m } else { 1 },
                    };
                    let b = Operand {
                        v: &bv,
                        rs: if rhs_t { 1 } else { n },
                        cs: if rhs_t { k } else { 1 },
                    };
                    let start = values(m * n);
                    let mut dst = start.clone();
                    // SAFETY: AVX-512F checked above; `dst` holds m × n values.
                    unsafe {
                        product(
                            m,
                            n,
                            k,
                            dst.as_mut_ptr(),
                            accumulate,
                            (a.v, a.rs, a.cs),
                            (b.v, b.rs, b.cs),
                            parallel,
                        )
                    };
                    let want = naive(m, n, k, a, b);
                    for (i, ((&got, &w), &s)) in dst.iter().zip(&want).zip(&start).enumerate() {
                        let w = w + if accumulate { s as f64 } else { 0.0 };
                        assert!(
                            (got as f64 - w).abs() <= 1e-4 * (1.0 + (k as f64).sqrt()),
                            "case {case} ({m}×{k}·{k}×{n}, lhsᵀ {lhs_t}, rhsᵀ {rhs_t}, \
                             accumulate {accumulate}) value {i}: {got} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
