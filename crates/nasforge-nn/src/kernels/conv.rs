//! 2-D convolution on dense NCHW `f32` slices: per-sample im2col + one gemm, parallel over
//! samples; the backward pass computes the data and weight gradients in one sweep over the
//! batch. Deterministic: the weight gradient is summed over fixed groups of samples in a fixed
//! order, whatever the number of threads.

use rayon::prelude::*;

/// The shapes of one grouped-free 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Samples in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Padding as (before, after) for rows and columns.
    pub padding: [(usize, usize); 2],
    /// Dilation (rows, columns).
    pub dilation: [usize; 2],
}

/// At most this many partial weight gradients are summed: samples are cut into this many fixed
/// groups, so the result does not depend on the thread count.
const MAX_GROUPS: usize = 16;

impl ConvGeom {
    /// Output height and width, or `None` when the kernel does not fit the padded input or a
    /// stride or dilation is 0.
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        let dim = |len: usize, (b, e): (usize, usize), k: usize, s: usize, d: usize| {
            if s == 0 || d == 0 || k == 0 {
                return None;
            }
            let span = d * (k - 1) + 1;
            let padded = len + b + e;
            (padded >= span).then(|| (padded - span) / s + 1)
        };
        Some((
            dim(
                self.h,
                self.padding[0],
                self.kh,
                self.stride[0],
                self.dilation[0],
            )?,
            dim(
                self.w,
                self.padding[1],
                self.kw,
                self.stride[1],
                self.dilation[1],
            )?,
        ))
    }

    fn out_len(&self) -> usize {
        let (oh, ow) = self.out_hw().expect("checked by the caller");
        oh * ow
    }

    /// Rows of the im2col matrix: `in_c · kh · kw`.
    fn k(&self) -> usize {
        self.in_c * self.kh * self.kw
    }

    /// A 1×1 convolution with stride 1 and no padding reads the input as its own im2col matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.padding == [(0, 0), (0, 0)]
    }

    fn in_len(&self) -> usize {
        self.in_c * self.h * self.w
    }
}

/// The output columns `[lo, hi)` whose input column `ox·s + off` lies in `[0, len)`.
fn valid_range(off: isize, s: usize, len: usize, out: usize) -> (usize, usize) {
    let s = s as isize;
    let lo = if off < 0 { (-off + s - 1) / s } else { 0 };
    let hi = if len as isize - off <= 0 {
        0
    } else {
        (len as isize - off + s - 1) / s
    };
    let hi = (hi as usize).min(out);
    ((lo as usize).min(hi), hi)
}

/// Visits every (im2col row, output row) pair: `f(col_row, input_row, lo, hi, off)` where
/// `input_row` is `None` for a row in the padding, and output columns `[lo, hi)` read input
/// column `ox·stride + off`.
fn for_each_row(
    g: &ConvGeom,
    mut f: impl FnMut(usize, usize, Option<usize>, (usize, usize), isize),
) {
    let (oh, ow) = g.out_hw().expect("checked by the caller");
    for c in 0..g.in_c {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = (c * g.kh + ki) * g.kw + kj;
                let off = (kj * g.dilation[1]) as isize - g.padding[1].0 as isize;
                let range = valid_range(off, g.stride[1], g.w, ow);
                for oy in 0..oh {
                    let iy =
                        (oy * g.stride[0] + ki * g.dilation[0]) as isize - g.padding[0].0 as isize;
                    let input_row = (iy >= 0 && (iy as usize) < g.h).then(|| c * g.h + iy as usize);
                    f(row, oy, input_row, range, off);
                }
            }
        }
    }
}

/// Writes the im2col matrix `[in_c·kh·kw, oh·ow]` of one sample `x` (`[in_c, h, w]`).
fn im2col(x: &[f32], g: &ConvGeom, col: &mut [f32]) {
    let (_, ow) = g.out_hw().expect("checked by the caller");
    let p = g.out_len();
    let (s, w) = (g.stride[1], g.w);
    for_each_row(g, |row, oy, input_row, (lo, hi), off| {
        let dst = &mut col[row * p + oy * ow..row * p + (oy + 1) * ow];
        let Some(r) = input_row else {
            dst.fill(0.0);
            return;
        };
        let src = &x[r * w..(r + 1) * w];
        dst[..lo].fill(0.0);
        dst[hi..].fill(0.0);
        if s == 1 {
            let start = (lo as isize + off) as usize;
            dst[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
        } else {
            for (ox, d) in dst[lo..hi].iter_mut().enumerate() {
                *d = src[((lo + ox) as isize * s as isize + off) as usize];
            }
        }
    });
}

/// Adds the im2col-shaped gradient `col` back into one sample's input gradient `dx`.
fn col2im(col: &[f32], g: &ConvGeom, dx: &mut [f32]) {
    let (_, ow) = g.out_hw().expect("checked by the caller");
    let p = g.out_len();
    let (s, w) = (g.stride[1], g.w);
    for_each_row(g, |row, oy, input_row, (lo, hi), off| {
        let Some(r) = input_row else { return };
        let src = &col[row * p + oy * ow..row * p + (oy + 1) * ow];
        let dst = &mut dx[r * w..(r + 1) * w];
        if s == 1 {
            let start = (lo as isize + off) as usize;
            for (d, v) in dst[start..start + hi - lo].iter_mut().zip(&src[lo..hi]) {
                *d += v;
            }
        } else {
            for ox in lo..hi {
                dst[(ox as isize * s as isize + off) as usize] += src[ox];
            }
        }
    });
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` with explicit row/column strides (elements).
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
    parallel: bool,
) {
    debug_assert!(dst.len() >= m * n);
    debug_assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    debug_assert!(n == 0 || k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    let par = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the slices cover every element the strides address (checked above in debug
    // builds, and by construction of the callers' shapes), and `dst` does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

/// Whether to spread samples over threads (one gemm each) rather than one gemm over threads.
fn per_sample(batch: usize) -> bool {
    batch >= rayon::current_num_threads()
}

/// Convolution forward: `x` `[batch, in_c, h, w]`, `weight` `[out_c, in_c, kh, kw]`, `bias`
/// `[out_c]`; returns `[batch, out_c, oh, ow]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    let (p, k, xs) = (g.out_len(), g.k(), g.in_len());
    let mut out = vec![0f32; g.batch * g.out_c * p];
    let parallel_gemm = !per_sample(g.batch);
    let sample = |n: usize, out_n: &mut [f32], col: &mut Vec<f32>| {
        let x_n = &x[n * xs..(n + 1) * xs];
        let rhs: &[f32] = if g.pointwise() {
            x_n
        } else {
            col.resize(k * p, 0.0);
            im2col(x_n, g, col);
            col
        };
        if let Some(b) = bias {
            for (row, &v) in out_n.chunks_exact_mut(p).zip(b) {
                row.fill(v);
            }
        }
        matmul(
            g.out_c,
            p,
            k,
            out_n,
            bias.is_some(),
            weight,
            k,
            1,
            rhs,
            p,
            1,
            parallel_gemm,
        );
    };
    if g.batch == 0 || p == 0 {
        return out;
    }
    if parallel_gemm {
        let mut col = Vec::new();
        for (n, out_n) in out.chunks_exact_mut(g.out_c * p).enumerate() {
            sample(n, out_n, &mut col);
        }
    } else {
        out.par_chunks_exact_mut(g.out_c * p)
            .enumerate()
            .for_each_init(Vec::new, |col, (n, out_n)| sample(n, out_n, col));
    }
    out
}

/// Gradients of [`forward`]: `(dx, dweight, dbias)`, each computed only when asked for.
pub struct ConvGrads {
    /// Gradient of the input, `[batch, in_c, h, w]`.
    pub x: Option<Vec<f32>>,
    /// Gradient of the weight, `[out_c, in_c, kh, kw]`.
    pub weight: Option<Vec<f32>>,
    /// Gradient of the bias, `[out_c]`.
    pub bias: Option<Vec<f32>>,
}

/// Convolution backward from the output gradient `dy` (`[batch, out_c, oh, ow]`).
pub fn backward(x: &[f32], weight: &[f32], dy: &[f32], g: &ConvGeom, need: [bool; 3]) -> ConvGrads {
    let [need_x, need_w, need_b] = need;
    let (p, k, xs, ys) = (g.out_len(), g.k(), g.in_len(), g.out_c * g.out_len());
    let groups = g.batch.clamp(1, MAX_GROUPS);
    let per_group = g.batch.div_ceil(groups).max(1);
    let groups = g.batch.div_ceil(per_group).max(1);
    let parallel_gemm = groups < rayon::current_num_threads();
    // Stride 1: the data gradient is itself a convolution of dy with the flipped, transposed
    // kernel (im2col of dy + one gemm of the forward's shape), much faster than a gemm with
    // k = out_c followed by col2im.
    let (oh, ow) = g.out_hw().expect("checked by the caller");
    let span = |i: usize, k: usize| g.dilation[i] * (k - 1);
    let transposed = (need_x
        && !g.pointwise()
        && g.stride == [1, 1]
        && g.padding[0].0.max(g.padding[0].1) <= span(0, g.kh)
        && g.padding[1].0.max(g.padding[1].1) <= span(1, g.kw))
    .then(|| {
        let gt = ConvGeom {
            batch: g.batch,
            in_c: g.out_c,
            h: oh,
            w: ow,
            out_c: g.in_c,
            kh: g.kh,
            kw: g.kw,
            stride: [1, 1],
            padding: [
                (
                    span(0, g.kh) - g.padding[0].0,
                    span(0, g.kh) - g.padding[0].1,
                ),
                (
                    span(1, g.kw) - g.padding[1].0,
                    span(1, g.kw) - g.padding[1].1,
                ),
            ],
            dilation: g.dilation,
        };
        debug_assert_eq!(gt.out_hw(), Some((g.h, g.w)));
        let mut wt = vec![0f32; weight.len()];
        for co in 0..g.out_c {
            for ci in 0..g.in_c {
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        wt[((ci * g.out_c + co) * g.kh + g.kh - 1 - ki) * g.kw + g.kw - 1 - kj] =
                            weight[((co * g.in_c + ci) * g.kh + ki) * g.kw + kj];
                    }
                }
            }
        }
        (gt, wt)
    });
    // One group: samples [gi·per_group, ...); returns its partial weight and bias gradients.
    let group = |gi: usize, mut dx_part: Option<&mut [f32]>| -> Vec<f32> {
        let mut acc = vec![0f32; if need_w { g.out_c * k } else { 0 } + g.out_c];
        let mut col = Vec::new();
        let start = gi * per_group;
        let end = (start + per_group).min(g.batch);
        for n in start..end {
            let x_n = &x[n * xs..(n + 1) * xs];
            let dy_n = &dy[n * ys..(n + 1) * ys];
            if need_w {
                let rhs: &[f32] = if g.pointwise() {
                    x_n
                } else {
                    col.resize(k * p, 0.0);
                    im2col(x_n, g, &mut col);
                    &col
                };
                // dW[out_c × k] += dy_n[out_c × p] · colᵀ[p × k]
                matmul(
                    g.out_c,
                    k,
                    p,
                    &mut acc[..g.out_c * k],
                    true,
                    dy_n,
                    p,
                    1,
                    rhs,
                    1,
                    p,
                    parallel_gemm,
                );
            }
            if need_b {
                let db = &mut acc[if need_w { g.out_c * k } else { 0 }..];
                for (d, row) in db.iter_mut().zip(dy_n.chunks_exact(p)) {
                    *d += sum(row);
                }
            }
            if let Some(dx) = dx_part.as_deref_mut() {
                let dx_n = &mut dx[(n - start) * xs..(n - start + 1) * xs];
                if let Some((gt, wt)) = &transposed {
                    // dx_n[in_c × h·w] = W̃[in_c × out_c·kh·kw] · im2col(dy_n)
                    let kt = gt.k();
                    col.resize(kt * g.h * g.w, 0.0);
                    im2col(dy_n, gt, &mut col);
                    matmul(
                        g.in_c,
                        g.h * g.w,
                        kt,
                        dx_n,
                        false,
                        wt,
                        kt,
                        1,
                        &col,
                        g.h * g.w,
                        1,
                        parallel_gemm,
                    );
                } else if g.pointwise() {
                    // dx_n[in_c × p] = Wᵀ[in_c × out_c] · dy_n[out_c × p]
                    matmul(
                        k,
                        p,
                        g.out_c,
                        dx_n,
                        false,
                        weight,
                        1,
                        k,
                        dy_n,
                        p,
                        1,
                        parallel_gemm,
                    );
                } else {
                    // dcol[k × p] = Wᵀ[k × out_c] · dy_n[out_c × p], then col2im
                    col.resize(k * p, 0.0);
                    matmul(
                        k,
                        p,
                        g.out_c,
                        &mut col,
                        false,
                        weight,
                        1,
                        k,
                        dy_n,
                        p,
                        1,
                        parallel_gemm,
                    );
                    col2im(&col, g, dx_n);
                }
            }
        }
        acc
    };
    let mut dx = need_x.then(|| vec![0f32; g.batch * xs]);
    let parts: Vec<Vec<f32>> = match dx.as_deref_mut() {
        Some(dx) if !dx.is_empty() => dx
            .par_chunks_mut(per_group * xs)
            .enumerate()
            .map(|(gi, part)| group(gi, Some(part)))
            .collect(),
        _ => (0..groups)
            .into_par_iter()
            .map(|gi| group(gi, None))
            .collect(),
    };
    let mut total = vec![0f32; parts.first().map_or(0, Vec::len)];
    for part in &parts {
        for (t, v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    let (dw, db) = if need_w {
        let db = total.split_off(g.out_c * k);
        (Some(total), db)
    } else {
        (None, total)
    };
    ConvGrads {
        x: dx,
        weight: dw,
        bias: need_b.then_some(db),
    }
}

/// A sum with eight independent lanes (vectorises; deterministic for a given length).
pub(crate) fn sum(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().sum::<f32>()
}
