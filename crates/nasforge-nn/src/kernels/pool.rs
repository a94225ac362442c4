//! 2-D average pooling on dense NCHW `f32` slices, forward and backward, parallel over
//! planes (one plane = one channel of one sample). Divisors follow PyTorch (and burn) without
//! ceil mode: with `count_include_pad` the window clipped to the padded input, else the window
//! clipped to the input.

use super::chunks;

/// The shapes of one average pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    /// Planes: batch · channels.
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window (rows, columns).
    pub kernel: [usize; 2],
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Padding on each side (rows, columns).
    pub padding: [usize; 2],
    /// Whether padded positions count in the divisor.
    pub count_include_pad: bool,
}

impl PoolGeom {
    /// Output height and width, or `None` when the window does not fit, a stride is 0, or the
    /// padding exceeds half the window (burn and PyTorch refuse that too).
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        let dim = |len: usize, k: usize, s: usize, p: usize| {
            if s == 0 || k == 0 || 2 * p > k {
                return None;
            }
            (len + 2 * p >= k).then(|| (len + 2 * p - k) / s + 1)
        };
        Some((
            dim(self.h, self.kernel[0], self.stride[0], self.padding[0])?,
            dim(self.w, self.kernel[1], self.stride[1], self.padding[1])?,
        ))
    }

    /// The window of output (oy, ox) clipped to the input, and its divisor.
    fn window(&self, oy: usize, ox: usize) -> ([usize; 4], f32) {
        let span = |o: usize, i: usize, len: usize| {
            let start = (o * self.stride[i]) as isize - self.padding[i] as isize;
            let end = (start + self.kernel[i] as isize).min((len + self.padding[i]) as isize);
            let padded = end - start;
            let (s, e) = (start.max(0) as usize, (end as usize).min(len));
            (s, e, padded as usize)
        };
        let (y0, y1, ph) = span(oy, 0, self.h);
        let (x0, x1, pw) = span(ox, 1, self.w);
        let count = if self.count_include_pad {
            ph * pw
        } else {
            (y1 - y0) * (x1 - x0)
        };
        ([y0, y1, x0, x1], 1.0 / count.max(1) as f32)
    }
}

/// `dst[o] += Σ_{t<k} src[o + off + t]` over the indices inside `src`: a box sum of `k`
/// consecutive elements, as `k` shifted slice additions (vectorises).
fn box_sum(src: &[f32], dst: &mut [f32], off: isize, k: usize) {
    for t in 0..k as isize {
        let shift = off + t;
        let lo = (-shift).max(0) as usize;
        let hi = (src.len() as isize - shift).clamp(0, dst.len() as isize) as usize;
        if lo < hi {
            let s = (lo as isize + shift) as usize;
            for (d, v) in dst[lo..hi].iter_mut().zip(&src[s..s + hi - lo]) {
                *d += v;
            }
        }
    }
}

/// The same box sum over whole rows of `width` elements.
fn box_sum_rows(src: &[f32], dst: &mut [f32], width: usize, off: isize, k: usize) {
    let (rows_in, rows_out) = (src.len() / width, dst.len() / width);
    for t in 0..k as isize {
        let shift = off + t;
        let lo = (-shift).max(0) as usize;
        let hi = (rows_in as isize - shift).clamp(0, rows_out as isize) as usize;
        if lo < hi {
            let s = (lo as isize + shift) as usize * width;
            for (d, v) in dst[lo * width..hi * width]
                .iter_mut()
                .zip(&src[s..s + (hi - lo) * width])
            {
                *d += v;
            }
        }
    }
}

/// A stride-1 pooling as two passes of box sums (rows, then columns) on each plane:
/// `k_h + k_w` slice additions per plane instead of `k_h · k_w` scalar loads per output. With
/// `offset = -padding` it is the forward sum; with `offset = padding + 1 - k` the backward
/// (the adjoint of a window is the mirrored window).
fn separable(
    src: &[f32],
    (sh, sw): (usize, usize),
    (dh, dw): (usize, usize),
    offset: [isize; 2],
    g: &PoolGeom,
) -> Vec<f32> {
    let mut out = vec![0f32; g.planes * dh * dw];
    let work = g.planes * dh * dw * (g.kernel[0] + g.kernel[1]);
    chunks(&mut out, dh * dw, work, |i, o, tmp| {
        let s = &src[i * sh * sw..(i + 1) * sh * sw];
        tmp.clear();
        tmp.resize(sh * dw, 0.0);
        for (src_row, tmp_row) in s.chunks_exact(sw).zip(tmp.chunks_exact_mut(dw)) {
            box_sum(src_row, tmp_row, offset[1], g.kernel[1]);
        }
        box_sum_rows(tmp, o, dw, offset[0], g.kernel[0]);
    });
    out
}

/// `v` times the divisor map `inv` (one value per output position), plane by plane.
fn times_divisors(v: &mut [f32], inv: &[f32], planes: usize) {
    chunks(v, inv.len(), planes * inv.len(), |_, o, _| {
        for (x, s) in o.iter_mut().zip(inv) {
            *x *= s;
        }
    });
}

/// Forward: `x` `[planes, h, w]` → `[planes, oh, ow]`.
pub fn forward(x: &[f32], g: &PoolGeom) -> Vec<f32> {
    let (oh, ow) = g.out_hw().expect("checked by the caller");
    if g.stride == [1, 1] && oh * ow > 0 {
        let inv: Vec<f32> = (0..oh * ow).map(|i| g.window(i / ow, i % ow).1).collect();
        let mut out = separable(
            x,
            (g.h, g.w),
            (oh, ow),
            [-(g.padding[0] as isize), -(g.padding[1] as isize)],
            g,
        );
        times_divisors(&mut out, &inv, g.planes);
        return out;
    }
    let plane_in = g.h * g.w;
    let mut out = vec![0f32; g.planes * oh * ow];
    if oh * ow == 0 || plane_in == 0 {
        return out;
    }
    let windows: Vec<([usize; 4], f32)> = (0..oh * ow).map(|i| g.window(i / ow, i % ow)).collect();
    let work = g.planes * oh * ow * g.kernel[0] * g.kernel[1];
    chunks(&mut out, oh * ow, work, |i, o, _| {
        let xp = &x[i * plane_in..(i + 1) * plane_in];
        for (o, &([y0, y1, x0, x1], inv)) in o.iter_mut().zip(&windows) {
            let mut s = 0f32;
            for y in y0..y1 {
                for v in &xp[y * g.w + x0..y * g.w + x1] {
                    s += v;
                }
            }
            *o = s * inv;
        }
    });
    out
}

/// Backward: the input gradient `[planes, h, w]` from the output gradient `dy`.
pub fn backward(dy: &[f32], g: &PoolGeom) -> Vec<f32> {
    let (oh, ow) = g.out_hw().expect("checked by the caller");
    if g.stride == [1, 1] && oh * ow > 0 {
        let inv: Vec<f32> = (0..oh * ow).map(|i| g.window(i / ow, i % ow).1).collect();
        let off = |i: usize| g.padding[i] as isize + 1 - g.kernel[i] as isize;
        let mut scaled = dy.to_vec();
        times_divisors(&mut scaled, &inv, g.planes);
        return separable(&scaled, (oh, ow), (g.h, g.w), [off(0), off(1)], g);
    }
    let plane_in = g.h * g.w;
    let mut dx = vec![0f32; g.planes * plane_in];
    if oh * ow == 0 || plane_in == 0 {
        return dx;
    }
    let windows: Vec<([usize; 4], f32)> = (0..oh * ow).map(|i| g.window(i / ow, i % ow)).collect();
    let work = g.planes * oh * ow * g.kernel[0] * g.kernel[1];
    chunks(&mut dx, plane_in, work, |i, dxp, _| {
        let dyp = &dy[i * oh * ow..(i + 1) * oh * ow];
        for (&d, &([y0, y1, x0, x1], inv)) in dyp.iter().zip(&windows) {
            let v = d * inv;
            for y in y0..y1 {
                for t in &mut dxp[y * g.w + x0..y * g.w + x1] {
                    *t += v;
                }
            }
        }
    });
    dx
}
