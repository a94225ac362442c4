//! 2-D convolution on dense NCHW `f32` slices: per-sample im2col + one gemm, parallel over
//! samples; the backward pass computes the data and weight gradients in one sweep over the
//! batch. Deterministic: the weight gradient is summed over fixed groups of samples in a fixed
//! order, whatever the number of threads.

use super::{chunks, lane_sum, map, map_chunks, with_scratch};

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

/// Outputs narrower than this are built a whole block of samples at a time: by copying rows of
/// zero-padded planes at stride 1, through an index table otherwise (a row segment of a few
/// values costs more in bookkeeping than in copying).
const NARROW: usize = 16;

/// For a block of up to `samples` samples side by side, for each kernel offset and output
/// column of the block, where that column reads relative to the start of its channel plane in
/// the block `[samples, in_c, h, w]` followed by one zero sample: `j·in_c·h·w + offset` for
/// sample `j`, or `samples·in_c·h·w` (in the zeros after the block, for every channel) in the
/// padding: `[kh·kw, samples·oh·ow]`. A block of fewer samples reads a prefix of each row.
/// Empty where nothing reads it: outputs of [`NARROW`] or more columns, which copy row
/// segments, and, unless it is for [`col2im`], stride 1, which copies rows of padded planes.
fn gather_table(g: &ConvGeom, samples: usize, for_col2im: bool) -> Vec<u32> {
    let (oh, ow) = g.out_hw().expect("checked by the caller");
    if ow >= NARROW || (g.stride == [1, 1] && !for_col2im) {
        return Vec::new();
    }
    let xs = g.in_len();
    let mut t = Vec::with_capacity(g.kh * g.kw * samples * oh * ow);
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            for j in 0..samples {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let iy = (oy * g.stride[0] + ki * g.dilation[0]) as isize
                            - g.padding[0].0 as isize;
                        let ix = (ox * g.stride[1] + kj * g.dilation[1]) as isize
                            - g.padding[1].0 as isize;
                        let inside = iy >= 0 && ix >= 0 && iy < g.h as isize && ix < g.w as isize;
                        t.push(if inside {
                            (j * xs + iy as usize * g.w + ix as usize) as u32
                        } else {
                            (samples * xs) as u32
                        });
                    }
                }
            }
        }
    }
    t
}

/// Writes the im2col matrix `[in_c·kh·kw, s·oh·ow]` of the `s` samples in `x`
/// (`[s, in_c, h, w]`) into `col`, the samples' columns side by side. `table` is
/// [`gather_table`] for at least `s` samples (empty where it is not read).
fn im2col(x: &[f32], s: usize, g: &ConvGeom, col: &mut [f32], table: &[u32]) {
    let (_, ow) = g.out_hw().expect("checked by the caller");
    let (p, xs) = (g.out_len(), g.in_len());
    let cols = s * p;
    if ow < NARROW && g.stride == [1, 1] {
        // The common widths with a constant row length: each row copy is a few moves.
        match ow {
            2 => im2col_rows::<2>(x, s, g, col),
            4 => im2col_rows::<4>(x, s, g, col),
            8 => im2col_rows::<8>(x, s, g, col),
            _ => im2col_rows::<0>(x, s, g, col),
        }
        return;
    }
    if ow < NARROW {
        // Narrow strided maps: the block and one zero sample after it, then each im2col row
        // written whole by one gather (contiguous writes, no per-plane copies).
        let (plane, kk) = (g.h * g.w, g.kh * g.kw);
        let per_offset = table.len() / kk;
        let mut src = vec![0f32; (per_offset / p + 1) * xs];
        src[..s * xs].copy_from_slice(&x[..s * xs]);
        for c in 0..g.in_c {
            let src = &src[c * plane..];
            for t in 0..kk {
                let row = c * kk + t;
                let offsets = &table[t * per_offset..t * per_offset + cols];
                for (d, &i) in col[row * cols..(row + 1) * cols].iter_mut().zip(offsets) {
                    *d = src[i as usize];
                }
            }
        }
        return;
    }
    let (st, w) = (g.stride[1], g.w);
    for j in 0..s {
        let x = &x[j * xs..(j + 1) * xs];
        for_each_row(g, |row, oy, input_row, (lo, hi), off| {
            let base = row * cols + j * p + oy * ow;
            let dst = &mut col[base..base + ow];
            let Some(r) = input_row else {
                dst.fill(0.0);
                return;
            };
            let src = &x[r * w..(r + 1) * w];
            dst[..lo].fill(0.0);
            dst[hi..].fill(0.0);
            if st == 1 {
                let start = (lo as isize + off) as usize;
                dst[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
            } else {
                for (ox, d) in dst[lo..hi].iter_mut().enumerate() {
                    *d = src[((lo + ox) as isize * st as isize + off) as usize];
                }
            }
        });
    }
}

/// [`im2col`] of narrow stride-1 maps: per channel, the block's planes copied into zero-padded
/// planes, then each im2col row is `oh` copies of `ow` values per sample. `W` is `ow` when it
/// is known at compile time (the copies become a few vector moves), 0 otherwise.
fn im2col_rows<const W: usize>(x: &[f32], s: usize, g: &ConvGeom, col: &mut [f32]) {
    let (oh, ow) = g.out_hw().expect("checked by the caller");
    let ow = if W == 0 { ow } else { W };
    let (p, xs, plane) = (oh * ow, g.in_len(), g.h * g.w);
    let cols = s * p;
    let [(top, bottom), (left, right)] = g.padding;
    let wp = g.w + left + right;
    let pp = (g.h + top + bottom) * wp;
    // Only the interior is written per channel: the padding stays zero.
    let mut padded = vec![0f32; s * pp];
    for c in 0..g.in_c {
        for j in 0..s {
            let src = &x[j * xs + c * plane..j * xs + (c + 1) * plane];
            let dst = &mut padded[j * pp..(j + 1) * pp];
            // Input rows as wide as the output (same padding) copy with the constant length.
            if W != 0 && g.w == W {
                place_rows::<W>(src, dst, W, (top, left), wp);
            } else {
                place_rows::<0>(src, dst, g.w, (top, left), wp);
            }
        }
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = (c * g.kh + ki) * g.kw + kj;
                let dst = &mut col[row * cols..(row + 1) * cols];
                for (src, dst) in padded.chunks_exact(pp).zip(dst.chunks_exact_mut(p)) {
                    for (oy, out) in dst.chunks_exact_mut(ow).enumerate() {
                        let from = (oy + ki * g.dilation[0]) * wp + kj * g.dilation[1];
                        out.copy_from_slice(&src[from..from + ow]);
                    }
                }
            }
        }
    }
}

/// Copies the rows (`w` wide; `W` when that is known at compile time, else 0) of one plane
/// `src` into a zero-padded plane `dst` of row length `wp`, at offset `(top, left)`.
fn place_rows<const W: usize>(
    src: &[f32],
    dst: &mut [f32],
    w: usize,
    (top, left): (usize, usize),
    wp: usize,
) {
    let w = if W == 0 { w } else { W };
    for (iy, row) in src.chunks_exact(w).enumerate() {
        let at = (iy + top) * wp + left;
        dst[at..at + w].copy_from_slice(row);
    }
}

/// Adds the im2col-shaped gradient in `col` (`[in_c·kh·kw, s·oh·ow]`, laid out as [`im2col`]
/// writes it) back into the input gradient `dx` of the `s` samples (`[s, in_c, h, w]`).
fn col2im(col: &[f32], s: usize, g: &ConvGeom, dx: &mut [f32], table: &[u32]) {
    let (_, ow) = g.out_hw().expect("checked by the caller");
    let (p, xs) = (g.out_len(), g.in_len());
    let cols = s * p;
    if ow < NARROW {
        let (plane, kk) = (g.h * g.w, g.kh * g.kw);
        let per_offset = table.len() / kk;
        // Scatter whole rows into the block and one sink sample after it (the padding's),
        // no branch.
        let mut acc = vec![0f32; (per_offset / p + 1) * xs];
        acc[..s * xs].copy_from_slice(&dx[..s * xs]);
        for c in 0..g.in_c {
            let acc = &mut acc[c * plane..];
            for t in 0..kk {
                let row = c * kk + t;
                let offsets = &table[t * per_offset..t * per_offset + cols];
                for (v, &i) in col[row * cols..(row + 1) * cols].iter().zip(offsets) {
                    acc[i as usize] += v;
                }
            }
        }
        dx[..s * xs].copy_from_slice(&acc[..s * xs]);
        return;
    }
    let (st, w) = (g.stride[1], g.w);
    for j in 0..s {
        let dx = &mut dx[j * xs..(j + 1) * xs];
        for_each_row(g, |row, oy, input_row, (lo, hi), off| {
            let Some(r) = input_row else { return };
            let base = row * cols + j * p + oy * ow;
            let src = &col[base..base + ow];
            let dst = &mut dx[r * w..(r + 1) * w];
            if st == 1 {
                let start = (lo as isize + off) as usize;
                for (d, v) in dst[start..start + hi - lo].iter_mut().zip(&src[lo..hi]) {
                    *d += v;
                }
            } else {
                for ox in lo..hi {
                    dst[(ox as isize * st as isize + off) as usize] += src[ox];
                }
            }
        });
    }
}

/// The convolutions' f32 product: [`super::matmul`].
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
    super::matmul(
        m,
        n,
        k,
        dst,
        accumulate,
        (lhs, lhs_rs, lhs_cs),
        (rhs, rhs_rs, rhs_cs),
        1.0,
        parallel,
    );
}

/// Samples whose columns go side by side into one gemm: small outputs (the 2×2 and 4×4 maps
/// of a small network's last stages) make a per-sample gemm mostly overhead.
const MIN_COLUMNS: usize = 256;

fn samples_per_gemm(p: usize, batch: usize) -> usize {
    (MIN_COLUMNS / p.max(1)).clamp(1, batch.max(1))
}

/// `dst[j][r][q] = src[r][j·cps + q]`: a `[rows, s·cps]` matrix back to `s` samples' `[rows, cps]`.
fn split_samples(src: &[f32], rows: usize, cps: usize, dst: &mut [f32]) {
    let s = dst.len() / (rows * cps);
    for j in 0..s {
        for r in 0..rows {
            let from = r * s * cps + j * cps;
            dst[(j * rows + r) * cps..(j * rows + r + 1) * cps]
                .copy_from_slice(&src[from..from + cps]);
        }
    }
}

/// The inverse of [`split_samples`]: `s` samples' `[rows, cps]` side by side as `[rows, s·cps]`.
fn join_samples(src: &[f32], rows: usize, cps: usize, dst: &mut Vec<f32>) {
    let s = src.len() / (rows * cps);
    dst.resize(src.len(), 0.0);
    for j in 0..s {
        for r in 0..rows {
            let to = r * s * cps + j * cps;
            dst[to..to + cps].copy_from_slice(&src[(j * rows + r) * cps..(j * rows + r + 1) * cps]);
        }
    }
}

/// Convolution forward: `x` `[batch, in_c, h, w]`, `weight` `[out_c, in_c, kh, kw]`, `bias`
/// `[out_c]`; returns `[batch, out_c, oh, ow]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    let (p, k, xs) = (g.out_len(), g.k(), g.in_len());
    let mut out = vec![0f32; g.batch * g.out_c * p];
    if g.batch == 0 || p == 0 {
        return out;
    }
    let s_per = samples_per_gemm(p, g.batch);
    let blocks = g.batch.div_ceil(s_per);
    // With fewer blocks than threads each gemm uses the pool itself.
    let parallel_gemm = blocks < rayon::current_num_threads();
    let table = gather_table(g, s_per, false);
    let work = if parallel_gemm {
        0
    } else {
        g.batch * g.out_c * p * k / 32
    };
    let block = |bi: usize, out_b: &mut [f32], buf: &mut Vec<f32>| {
        let n0 = bi * s_per;
        let s = out_b.len() / (g.out_c * p);
        let cols = s * p;
        let direct = s == 1;
        let gather = !(g.pointwise() && direct);
        // col [k × cols] (unless the input is its own), then (several samples) the gemm's
        // [out_c × cols] result.
        buf.resize(
            if gather { k * cols } else { 0 } + if direct { 0 } else { g.out_c * cols },
            0.0,
        );
        let (col, tmp) = buf.split_at_mut(if gather { k * cols } else { 0 });
        let rhs: &[f32] = if !gather {
            &x[n0 * xs..(n0 + 1) * xs]
        } else {
            im2col(&x[n0 * xs..(n0 + s) * xs], s, g, col, &table);
            col
        };
        let dst: &mut [f32] = if direct { out_b } else { tmp };
        if let Some(b) = bias {
            for (row, &v) in dst.chunks_exact_mut(cols).zip(b) {
                row.fill(v);
            }
        }
        matmul(
            g.out_c,
            cols,
            k,
            dst,
            bias.is_some(),
            weight,
            k,
            1,
            rhs,
            cols,
            1,
            parallel_gemm,
        );
        if !direct {
            split_samples(tmp, g.out_c, p, out_b);
        }
    };
    chunks(&mut out, s_per * g.out_c * p, work, block);
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
    let s_per = samples_per_gemm(p, g.batch);
    // Groups of whole gemm blocks; at most MAX_GROUPS of them.
    let per_group = g.batch.div_ceil(MAX_GROUPS).next_multiple_of(s_per).max(1);
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
    let col2im_used = need_x && transposed.is_none() && !g.pointwise();
    let table = gather_table(g, s_per, col2im_used);
    let hw = g.h * g.w;
    // One group: samples [gi·per_group, ...), in blocks of up to `s_per` samples whose columns
    // share one gemm; returns the group's partial weight and bias gradients.
    let group_in = |gi: usize, mut dx_part: Option<&mut [f32]>, col: &mut Vec<f32>| -> Vec<f32> {
        let mut acc = vec![0f32; if need_w { g.out_c * k } else { 0 } + g.out_c];
        let (mut dyb, mut tmp) = (Vec::new(), Vec::new());
        let start = gi * per_group;
        let end = (start + per_group).min(g.batch);
        let mut n = start;
        while n < end {
            let s = s_per.min(end - n);
            let cols = s * p;
            let direct = s == 1;
            let dy_block = &dy[n * ys..(n + s) * ys];
            // dy of the block as [out_c × cols].
            let dyb: &[f32] = if direct {
                dy_block
            } else {
                join_samples(dy_block, g.out_c, p, &mut dyb);
                &dyb
            };
            if need_w {
                let rhs: &[f32] = if g.pointwise() && direct {
                    &x[n * xs..(n + 1) * xs]
                } else {
                    col.resize(k * cols, 0.0);
                    im2col(&x[n * xs..(n + s) * xs], s, g, &mut col[..], &table);
                    &col[..]
                };
                // dW[out_c × k] += dy[out_c × cols] · colᵀ[cols × k]
                matmul(
                    g.out_c,
                    k,
                    cols,
                    &mut acc[..g.out_c * k],
                    true,
                    dyb,
                    cols,
                    1,
                    rhs,
                    1,
                    cols,
                    parallel_gemm,
                );
            }
            if need_b {
                let db = &mut acc[if need_w { g.out_c * k } else { 0 }..];
                for dy_n in dy_block.chunks_exact(ys) {
                    for (d, row) in db.iter_mut().zip(dy_n.chunks_exact(p)) {
                        *d += lane_sum(row, |v| v) as f32;
                    }
                }
            }
            if let Some(dx) = dx_part.as_deref_mut() {
                let dx_b = &mut dx[(n - start) * xs..(n - start + s) * xs];
                if let Some((gt, wt)) = &transposed {
                    // dx[in_c × s·h·w] = W̃[in_c × out_c·kh·kw] · im2col(dy)
                    let kt = gt.k();
                    col.resize(kt * s * hw, 0.0);
                    im2col(dy_block, s, gt, &mut col[..], &[]);
                    let dst: &mut [f32] = if direct {
                        dx_b
                    } else {
                        tmp.resize(g.in_c * s * hw, 0.0);
                        &mut tmp
                    };
                    matmul(
                        g.in_c,
                        s * hw,
                        kt,
                        dst,
                        false,
                        wt,
                        kt,
                        1,
                        &col[..],
                        s * hw,
                        1,
                        parallel_gemm,
                    );
                    if !direct {
                        split_samples(&tmp, g.in_c, hw, dx_b);
                    }
                } else if g.pointwise() {
                    // dx[in_c × cols] = Wᵀ[in_c × out_c] · dy[out_c × cols]
                    let dst: &mut [f32] = if direct {
                        dx_b
                    } else {
                        tmp.resize(k * cols, 0.0);
                        &mut tmp
                    };
                    matmul(
                        k,
                        cols,
                        g.out_c,
                        dst,
                        false,
                        weight,
                        1,
                        k,
                        dyb,
                        cols,
                        1,
                        parallel_gemm,
                    );
                    if !direct {
                        split_samples(&tmp, k, p, dx_b);
                    }
                } else {
                    // dcol[k × cols] = Wᵀ[k × out_c] · dy[out_c × cols], then col2im
                    col.resize(k * cols, 0.0);
                    matmul(
                        k,
                        cols,
                        g.out_c,
                        &mut col[..],
                        false,
                        weight,
                        1,
                        k,
                        dyb,
                        cols,
                        1,
                        parallel_gemm,
                    );
                    col2im(&col[..], s, g, dx_b, &table);
                }
            }
            n += s;
        }
        acc
    };
    let group = |gi: usize, dx_part: Option<&mut [f32]>| -> Vec<f32> {
        with_scratch(|col| group_in(gi, dx_part, col))
    };
    let mut dx = need_x.then(|| vec![0f32; g.batch * xs]);
    let work = if parallel_gemm {
        0
    } else {
        g.batch * g.out_c * p * k / 16
    };
    let parts: Vec<Vec<f32>> = match dx.as_deref_mut() {
        // Each group writes its own samples' rows of dx and returns its partial sums.
        Some(dx) if !dx.is_empty() => {
            map_chunks(dx, per_group * xs, work, |gi, part| group(gi, Some(part)))
        }
        _ => map(groups, work, |gi| group(gi, None)),
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
