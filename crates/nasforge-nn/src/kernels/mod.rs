//! Our own CPU kernels where burn's `flex` backend is slow, plugged in through burn's
//! backend-extension mechanism.
//!
//! [`KernelOps`] is a backend extension trait with one method per op: convolution
//! (per-sample im2col + gemm, [`conv`]), batch normalisation for training and inference
//! and layer normalisation ([`norm`]), average pooling ([`pool`]), linear layers (one gemm over
//! all rows, [`linear`]),
//! multi-head self-attention fused from the packed qkv projection ([`attention`]) and GELU
//! ([`math`]). It is implemented for `Flex` with our kernels and for `Autodiff<Flex>` with
//! hand-written backward nodes that call our backward kernels; its default bodies are burn's
//! own ops, so any other backend keeps burn's path.
//!
//! Model code calls the tensor-level functions here ([`conv2d`], [`batch_norm`],
//! [`layer_norm`], [`avg_pool2d`], [`linear`], [`self_attention`], [`gelu`]) instead of the burn modules'
//! `forward`. Each falls back to burn's path for what the kernels do not cover (another device, another dtype, grouped convolutions, a
//! padding rule other than explicit) and when the kernels are switched off
//! (`NASFORGE_KERNELS=burn`, or [`set_enabled`]): the benchmark compares the two paths that
//! way.
//!
//! Every kernel is deterministic: reductions run over fixed partitions in a fixed order, so a
//! seed reproduces a run bit for bit whatever the thread count's scheduling.

pub mod attention;
pub mod conv;
pub mod math;
pub mod norm;
pub mod pool;
mod sgemm;
#[cfg(test)]
mod tests;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    backend_extension, AutodiffBackend, Backend, Dispatch, DispatchDevice, Flex, TensorMetadata,
};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, LayerNorm, Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::ops::{AttentionModuleOptions, AvgPoolOptions, ConvOptions};
use burn::tensor::DType;
use burn::tensor::{Shape, Slice};
use std::sync::atomic::{AtomicU8, Ordering};

use attention::AttentionGeom;
use conv::ConvGeom;
use norm::{LayerGeom, NormGeom};
use pool::PoolGeom;

/// The ops our kernels implement. Default bodies are burn's own ops (the fallback for every
/// backend we have no kernel for); `Flex` overrides them all, `Autodiff<Flex>` adds the
/// backward nodes.
#[backend_extension(Flex, Autodiff)]
pub trait KernelOps: Backend {
    /// 2-D convolution with a bias (groups = 1).
    fn kernel_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv2d(x, weight, Some(bias), options)
    }

    /// 2-D convolution without a bias (groups = 1). (Two methods: the extension macro does not
    /// route an `Option` of a tensor.)
    fn kernel_conv2d_no_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv2d(x, weight, None, options)
    }

    /// Batch norm with the batch's statistics: `(output, mean, biased variance)`.
    fn kernel_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let r = <Self as ModuleOps<Self>>::batch_norm_train(x, gamma, beta, epsilon);
        (r.output, r.mean, r.variance)
    }

    /// Batch norm with given statistics (inference).
    fn kernel_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::batch_norm(x, gamma, beta, mean, variance, epsilon)
    }

    /// 2-D average pooling (no ceil mode).
    fn kernel_avg_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        count_include_pad: bool,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::avg_pool2d(x, kernel, stride, padding, count_include_pad, false)
    }

    /// Multi-head self-attention of the packed projection `qkv` `[N, T, 3D]` (queries, keys,
    /// values), heads side by side in the output `[N, T, D]`.
    fn kernel_self_attention(
        qkv: FloatTensor<Self>,
        heads: usize,
        causal: bool,
    ) -> FloatTensor<Self> {
        burn_self_attention::<Self>(qkv, heads, causal)
    }

    /// `x · weight + bias` for `x` `[M, K]`, `weight` `[K, N]` (burn's row layout), `bias`
    /// `[N]`.
    fn kernel_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let y = Self::float_matmul(x, weight);
        let n = bias.shape()[0];
        Self::float_add(y, Self::float_reshape(bias, Shape::new([1, n])))
    }

    /// `x · weight` without a bias. (Two methods: the extension macro does not route an
    /// `Option` of a tensor.)
    fn kernel_linear_no_bias(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(x, weight)
    }

    /// Layer normalisation of each row of `x` `[M, D]` over its `D` features, scaled by `gamma`
    /// and shifted by `beta` (both `[D]`).
    fn kernel_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::layer_norm(x, gamma, Some(beta), epsilon)
    }

    /// GELU, the exact (erf) form, of a tensor of any shape.
    fn kernel_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu(x)
    }
}

// ---- parallelism ---------------------------------------------------------------------------

/// Below this much work (elements touched, or multiply-adds / 32) a kernel runs on the calling
/// thread. From inside the pool ([`in_pool`], as training and inference run) a split costs a
/// few microseconds, about what 16 k values of an elementwise pass take; from outside it, tens
/// of microseconds (on the digits network, 2^18 was then the best threshold; inside the pool,
/// 2^13 to 2^15 all beat it by about a tenth of the step, 2^11 and 2^20 did not).
const PARALLEL_MIN: usize = 1 << 14;

/// Runs `f` on a thread of rayon's pool, the caller waiting for it, unless it already runs on
/// one. Training and inference loops run this way: from inside the pool a kernel's parallel
/// loop splits its work with the other workers as they come, while from outside every such loop
/// is injected into the pool and the caller sleeps until it is done — a wake-up and a sleep per
/// op, about a fifth of the digits network's training step on this 2-core machine.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// Asks glibc's allocator to keep freed memory for reuse rather than return it to the kernel.
/// A training step allocates and frees many tensors of a few megabytes; by default glibc serves
/// each from fresh `mmap`ed (or trimmed and regrown) pages, so every step page-faults and the
/// kernel zeroes its outputs again — a tenth of the GPT step's forward pass on a 2-core machine
/// (`docs/BENCHMARKS.md`). With blocks up to 32 MiB from the heap and no trimming below 1 GiB
/// free, a step reuses the last step's pages; the process keeps its peak heap until it exits.
/// The `nasforge` binary and the benches call this first; elsewhere (and with other C
/// libraries) it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters (under the allocator's lock); both values
    // are in range (the mmap threshold's maximum on 64-bit glibc is 32 MiB).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Whether `work` is worth spreading over the pool.
fn parallel(work: usize) -> bool {
    work >= PARALLEL_MIN && rayon::current_num_threads() > 1
}

/// Runs `f(i, chunk_i, scratch)` on each `chunk`-sized piece of `out` (a scratch buffer per
/// worker), over the pool when `work` pays for it. Each chunk's result does not depend on which
/// way it ran.
fn chunks<F>(out: &mut [f32], chunk: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut Vec<f32>) + Sync + Send,
{
    use rayon::prelude::*;
    if chunk == 0 || out.is_empty() {
        return;
    }
    if parallel(work) {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| with_scratch(|buf| f(i, c, buf)));
    } else {
        with_scratch(|buf| {
            for (i, c) in out.chunks_mut(chunk).enumerate() {
                f(i, c, buf);
            }
        });
    }
}

/// Runs `f(i, a_i, b_i, scratch)` on the `i`-th `per_a`-sized piece of `a` and `per_b`-sized
/// piece of `b` together (two outputs cut alike: `a.len() / per_a` pieces of each), over the
/// pool when `work` pays for it, with this thread's scratch buffer.
fn chunks2<F>(a: &mut [f32], per_a: usize, b: &mut [f32], per_b: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32], &mut Vec<f32>) + Sync + Send,
{
    use rayon::prelude::*;
    if per_a == 0 || per_b == 0 || a.is_empty() {
        return;
    }
    if parallel(work) {
        a.par_chunks_mut(per_a)
            .zip(b.par_chunks_mut(per_b))
            .enumerate()
            .for_each(|(i, (x, y))| with_scratch(|buf| f(i, x, y, buf)));
    } else {
        with_scratch(|buf| {
            for (i, (x, y)) in a.chunks_mut(per_a).zip(b.chunks_mut(per_b)).enumerate() {
                f(i, x, y, buf);
            }
        });
    }
}

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer, kept across calls so that im2col matrices and
/// gemm outputs are neither allocated nor zero-filled per op: its length and contents are what
/// the last user left, so `f` resizes it (which zero-fills only the growth) and must write
/// every value it reads. A call nested inside `f` on the same thread (a pool thread that steals
/// work while it waits) gets an empty buffer of its own.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    let mut buf = SCRATCH.take();
    let r = f(&mut buf);
    SCRATCH.set(buf);
    r
}

/// `f(i, chunk_i)` for each `chunk`-sized piece of `out`, results in order, over the pool when
/// `work` pays for it.
fn map_chunks<T: Send>(
    out: &mut [f32],
    chunk: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) -> T + Sync + Send,
) -> Vec<T> {
    use rayon::prelude::*;
    if parallel(work) {
        out.par_chunks_mut(chunk)
            .enumerate()
            .map(|(i, c)| f(i, c))
            .collect()
    } else {
        out.chunks_mut(chunk)
            .enumerate()
            .map(|(i, c)| f(i, c))
            .collect()
    }
}

/// `f(0), ..., f(n - 1)` in order, over the pool when `work` pays for it.
fn map<T: Send>(n: usize, work: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    use rayon::prelude::*;
    if parallel(work) {
        (0..n).into_par_iter().map(f).collect()
    } else {
        (0..n).map(f).collect()
    }
}

/// `Σ f(x)` over `v`: eight f32 lanes (vectorises), then their total in f64. Deterministic for
/// a given length.
fn lane_sum(v: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += f(x);
        }
    }
    lanes.iter().map(|&l| l as f64).sum::<f64>() + rest.iter().map(|&x| f(x) as f64).sum::<f64>()
}

/// Elementwise chunk size: 16 k values (a few microseconds of work), in line with
/// [`PARALLEL_MIN`].
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// `f(offset, piece)` over `ELEMENTWISE_CHUNK`-sized pieces of `out` (the offset of the piece
/// in `out`, for reading the inputs at the same place), over the pool when `out` is long.
fn elementwise(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let work = out.len();
    chunks(out, ELEMENTWISE_CHUNK, work, |i, piece, _| {
        f(i * ELEMENTWISE_CHUNK, piece)
    });
}

// ---- matrix product ----------------------------------------------------------------------------

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` (f32 or f64; `accumulate` adds to `dst`), each input a
/// slice with its row and column strides in elements; `one` is 1 of `T`. On the `gemm` crate
/// (the convolutions, attention's per-head products and the float64 SynFlow engine use it; the
/// linear layers use [`matmul_new`] and [`sgemm::product`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: Copy + 'static>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    accumulate: bool,
    lhs: (&[T], usize, usize),
    rhs: (&[T], usize, usize),
    one: T,
    parallel: bool,
) {
    assert!(dst.len() >= m * n, "gemm: dst too small");
    // SAFETY: `dst` holds `m × n` values and, a distinct `&mut`, aliases neither input.
    unsafe {
        gemm_into(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            accumulate,
            lhs,
            rhs,
            one,
            parallel,
        )
    }
}

/// `lhs[m×k] · rhs[k×n]` (strides as for [`matmul`]) into a new vector that the product writes
/// without reading, so it is never zero-filled first; on [`sgemm::product`] (the linear layers'
/// kernel choice).
pub(crate) fn matmul_new(
    m: usize,
    n: usize,
    k: usize,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    parallel: bool,
) -> Vec<f32> {
    let mut dst = Vec::with_capacity(m * n);
    // SAFETY: the vector has room for `m × n` values; a product told not to accumulate writes
    // each of them (zeros when `k` is 0) and reads none, so all are initialised when the length
    // is set.
    unsafe {
        sgemm::product(m, n, k, dst.as_mut_ptr(), false, lhs, rhs, parallel);
        dst.set_len(m * n);
    }
    dst
}

/// Panics unless every value the strides of an `m × k` left and `k × n` right operand address
/// lies inside its slice (for `m`, `n` > 0): what keeps the products' pointer reads in bounds.
fn assert_operands<T>(
    m: usize,
    n: usize,
    k: usize,
    (lhs, lhs_rs, lhs_cs): (&[T], usize, usize),
    (rhs, rhs_rs, rhs_cs): (&[T], usize, usize),
) {
    assert!(
        k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs,
        "gemm: lhs too small"
    );
    assert!(
        k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs,
        "gemm: rhs too small"
    );
}

/// # Safety
/// `dst` must be valid for writes (and reads, with `accumulate`) of `m × n` values in row-major
/// order and must not alias the inputs.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into<T: Copy + 'static>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    accumulate: bool,
    (lhs, lhs_rs, lhs_cs): (&[T], usize, usize),
    (rhs, rhs_rs, rhs_cs): (&[T], usize, usize),
    one: T,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert_operands(m, n, k, (lhs, lhs_rs, lhs_cs), (rhs, rhs_rs, rhs_cs));
    let par = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts keep every element the strides address inside the input slices; the
    // caller vouches for `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            one,
            one,
            false,
            false,
            false,
            par,
        );
    }
}

// ---- switch -------------------------------------------------------------------------------

/// 0: not read yet, 1: on, 2: off.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Whether our kernels run: on unless the environment says `NASFORGE_KERNELS=burn` or
/// [`set_enabled`] turned them off.
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = std::env::var("NASFORGE_KERNELS").map_or(true, |v| v != "burn");
            STATE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
    }
}

/// Turns our kernels on or off for the whole process (the benchmark's `--kernels burn`).
pub fn set_enabled(on: bool) {
    STATE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

// ---- tensor-level entry points --------------------------------------------------------------

/// Whether `t` is an `f32` tensor on the `flex` device (with or without autodiff).
fn on_flex_f32<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == DType::F32 && matches!(t.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// The convolution geometry of `x` and `weight` under `options`, when the kernels cover it.
fn conv_geom(x: &[usize], weight: &[usize], options: &ConvOptions<2>) -> Option<ConvGeom> {
    let (&[batch, in_c, h, w], &[out_c, w_in, kh, kw]) = (x, weight) else {
        return None;
    };
    let g = ConvGeom {
        batch,
        in_c,
        h,
        w,
        out_c,
        kh,
        kw,
        stride: options.stride,
        padding: options.padding,
        dilation: options.dilation,
    };
    (options.groups == 1 && w_in == in_c && g.out_hw().is_some()).then_some(g)
}

/// A [`Conv2d`] module's options for our kernel: `None` for a padding rule other than explicit.
fn conv_options(conv: &Conv2d) -> Option<ConvOptions<2>> {
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
        return None;
    };
    Some(ConvOptions::new_with_padding(
        conv.stride,
        [(top, bottom), (left, right)],
        conv.dilation,
        conv.groups,
    ))
}

/// Whether our convolution kernel covers `x` and `weight` under `options`.
fn conv_covered(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    enabled()
        && on_flex_f32(x)
        && on_flex_f32(weight)
        && conv_geom(&x.dims(), &weight.dims(), options).is_some()
}

/// A [`Conv2d`] module's forward pass on our kernel (burn's for what it does not cover).
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let weight = conv.weight.val();
    let Some(options) = conv_options(conv).filter(|o| conv_covered(&x, &weight, o)) else {
        return conv.forward(x);
    };
    Tensor::from_dispatch(match conv.bias.as_ref().map(|b| b.val()) {
        Some(b) => <Dispatch as KernelOps>::kernel_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            b.into_dispatch(),
            options,
        ),
        None => <Dispatch as KernelOps>::kernel_conv2d_no_bias(
            x.into_dispatch(),
            weight.into_dispatch(),
            options,
        ),
    })
}

/// A [`BatchNorm`] module's forward pass on our kernels: the batch's statistics (and the
/// running statistics updated as burn updates them) on an autodiff device with the layer in
/// training, the running statistics otherwise.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let channels = bn.gamma.shape()[0];
    if !(enabled() && D >= 2 && on_flex_f32(&x) && x.dims()[1] == channels) {
        return bn.forward(x);
    }
    let device = x.device();
    if device.is_autodiff() && bn.training.is_enabled() {
        let (out, mean, var) = <Dispatch as KernelOps>::kernel_batch_norm_train(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.epsilon,
        );
        let (mean, var) = (
            Tensor::<1>::from_dispatch(mean).detach(),
            Tensor::<1>::from_dispatch(var).detach(),
        );
        let m = bn.momentum;
        let running_mean = bn.running_mean.value_sync().to_device(&device);
        let running_var = bn.running_var.value_sync().to_device(&device);
        bn.running_mean
            .update((running_mean.mul_scalar(1.0 - m) + mean.mul_scalar(m)).detach());
        bn.running_var
            .update((running_var.mul_scalar(1.0 - m) + var.mul_scalar(m)).detach());
        Tensor::from_dispatch(out)
    } else {
        let mean = bn.running_mean.value().to_device(&device);
        let var = bn.running_var.value().to_device(&device);
        Tensor::from_dispatch(<Dispatch as KernelOps>::kernel_batch_norm(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            mean.into_dispatch(),
            var.into_dispatch(),
            bn.epsilon,
        ))
    }
}

/// A convolution followed by a batch norm, at inference (no autodiff), as one convolution whose
/// weights and bias absorb the norm's running statistics, scale and shift:
/// `w' = w·γ/σ`, `b' = (b − μ)·γ/σ + β` with `σ = √(var + ε)`. `None` where that does not apply
/// (training, kernels off, a device or shape the kernels do not cover): then run the two ops.
pub fn conv2d_batch_norm(conv: &Conv2d, bn: &BatchNorm, x: &Tensor<4>) -> Option<Tensor<4>> {
    let weight = conv.weight.val();
    let out_c = weight.dims()[0];
    let options = conv_options(conv).filter(|o| {
        !x.device().is_autodiff() && bn.gamma.shape()[0] == out_c && conv_covered(x, &weight, o)
    })?;
    let device = x.device();
    let mean = bn.running_mean.value().to_device(&device);
    let var = bn.running_var.value().to_device(&device);
    let scale = bn.gamma.val() / var.add_scalar(bn.epsilon).sqrt();
    let bias = match &conv.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([out_c], &device),
    };
    let bias = (bias - mean) * scale.clone() + bn.beta.val();
    let weight = weight * scale.reshape([out_c, 1, 1, 1]);
    Some(Tensor::from_dispatch(
        <Dispatch as KernelOps>::kernel_conv2d(
            x.clone().into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            options,
        ),
    ))
}

/// 2-D average pooling (square windows as NetSpec has them) on our kernel.
pub fn avg_pool2d(
    x: Tensor<4>,
    kernel: usize,
    stride: usize,
    padding: usize,
    count_include_pad: bool,
) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let g = PoolGeom {
        planes: n * c,
        h,
        w,
        kernel: [kernel; 2],
        stride: [stride; 2],
        padding: [padding; 2],
        count_include_pad,
    };
    if !(enabled() && on_flex_f32(&x) && g.out_hw().is_some()) {
        return burn::tensor::module::avg_pool2d(
            x,
            AvgPoolOptions::new([kernel, kernel])
                .with_stride([stride, stride])
                .with_padding([padding, padding])
                .with_count_include_pad(count_include_pad),
        );
    }
    Tensor::from_dispatch(<Dispatch as KernelOps>::kernel_avg_pool2d(
        x.into_dispatch(),
        g.kernel,
        g.stride,
        g.padding,
        count_include_pad,
    ))
}

/// Multi-head self-attention of a packed qkv projection `[N, T, 3D]` (per position the
/// queries, keys and values, each `heads` blocks wide) on our fused kernel ([`attention`]);
/// burn's attention on the split heads for what it does not cover. Returns `[N, T, D]`.
pub fn self_attention(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let [_, _, d3] = qkv.dims();
    debug_assert!(
        d3 % 3 == 0 && (d3 / 3) % heads == 0,
        "qkv width {d3}, {heads} heads"
    );
    let ours = enabled() && on_flex_f32(&qkv);
    let out = if ours {
        <Dispatch as KernelOps>::kernel_self_attention(qkv.into_dispatch(), heads, causal)
    } else {
        burn_self_attention::<Dispatch>(qkv.into_dispatch(), heads, causal)
    };
    Tensor::from_dispatch(out)
}

/// A [`Linear`] layer's forward pass on our kernel, for inputs of any rank (the last axis is
/// the features): all rows in one matrix product, the bias added in place, and in backward one
/// product each for the input's and the weight's gradients (burn multiplies per leading index
/// and sums the weight's gradient over them). burn's for what it does not cover.
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let weight = layer.weight.val();
    let [k, n] = weight.dims();
    let dims = x.dims();
    if !(enabled() && on_flex_f32(&x) && on_flex_f32(&weight) && dims[D - 1] == k) {
        return layer.forward(x);
    }
    let m = dims[..D - 1].iter().product::<usize>();
    let x2 = x.reshape([m, k]).into_dispatch();
    let y = match layer.bias.as_ref().map(|b| b.val()) {
        Some(b) => {
            <Dispatch as KernelOps>::kernel_linear(x2, weight.into_dispatch(), b.into_dispatch())
        }
        None => <Dispatch as KernelOps>::kernel_linear_no_bias(x2, weight.into_dispatch()),
    };
    let mut out = dims;
    out[D - 1] = n;
    Tensor::<2>::from_dispatch(y).reshape(out)
}

/// A [`LayerNorm`] module's forward pass (with a bias; `epsilon` is the one it was configured
/// with, which the module keeps private) on our kernel ([`norm::layer_forward`]), for inputs of
/// any rank (the last axis is normalised); burn's for what it does not cover.
pub fn layer_norm<const D: usize>(ln: &LayerNorm, x: Tensor<D>, epsilon: f64) -> Tensor<D> {
    let gamma = ln.gamma.val();
    let dims = x.dims();
    let width = dims[D - 1];
    let beta = match &ln.beta {
        Some(b) if enabled() && on_flex_f32(&x) && gamma.dims()[0] == width => b.val(),
        _ => return ln.forward(x),
    };
    let m = dims[..D - 1].iter().product::<usize>();
    let y = <Dispatch as KernelOps>::kernel_layer_norm(
        x.reshape([m, width]).into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    Tensor::<2>::from_dispatch(y).reshape(dims)
}

/// GELU (exact, erf form) on our vectorised kernel ([`math::gelu`]); burn's for what it does
/// not cover.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !(enabled() && on_flex_f32(&x)) {
        return burn::tensor::activation::gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as KernelOps>::kernel_gelu(x.into_dispatch()))
}

/// burn's attention on the split heads, for any backend (the extension trait's default body,
/// and the path when our kernels are off).
fn burn_self_attention<B: Backend>(
    qkv: FloatTensor<B>,
    heads: usize,
    causal: bool,
) -> FloatTensor<B> {
    let shape = qkv.shape();
    let (n, t, d) = (shape[0], shape[1], shape[2] / 3);
    let dh = d / heads;
    // [N, T, 3D] -> [3, N, H, T, dh]
    let qkv = B::float_permute(
        B::float_reshape(qkv, Shape::new([n, t, 3, heads, dh])),
        &[2, 0, 3, 1, 4],
    );
    let part = |k: usize| {
        let slices: [Slice; 5] = [
            (k..k + 1).into(),
            (0..n).into(),
            (0..heads).into(),
            (0..t).into(),
            (0..dh).into(),
        ];
        B::float_reshape(
            B::float_slice(qkv.clone(), &slices),
            Shape::new([n, heads, t, dh]),
        )
    };
    let y = B::attention(
        part(0),
        part(1),
        part(2),
        None,
        None,
        AttentionModuleOptions {
            is_causal: causal,
            ..Default::default()
        },
    );
    // [N, H, T, dh] -> [N, T, H, dh] -> [N, T, D]
    B::float_reshape(B::float_permute(y, &[0, 2, 1, 3]), Shape::new([n, t, d]))
}

// ---- Flex: the forward kernels ------------------------------------------------------------

/// `t` with a dense row-major `f32` buffer (copied only when it is a strided view).
fn dense(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("a dense f32 tensor (made by `dense`)")
}

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn norm_geom(shape: &[usize]) -> NormGeom {
    NormGeom {
        batch: shape[0],
        channels: shape[1],
        spatial: shape[2..].iter().product(),
    }
}

fn pool_geom(
    shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
) -> PoolGeom {
    PoolGeom {
        planes: shape[0] * shape[1],
        h: shape[2],
        w: shape[3],
        kernel,
        stride,
        padding,
        count_include_pad,
    }
}

/// Our convolution forward on flex tensors.
fn flex_conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, weight, bias) = (dense(x), dense(weight), bias.map(dense));
    let g = conv_geom(&dims(&x), &dims(&weight), options).expect("checked by conv2d");
    let (oh, ow) = g.out_hw().expect("checked by conv_geom");
    let out = conv::forward(values(&x), values(&weight), bias.as_ref().map(values), &g);
    flex(out, vec![g.batch, g.out_c, oh, ow])
}

impl KernelOps for Flex {
    fn kernel_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        flex_conv2d(x, weight, Some(bias), &options)
    }

    fn kernel_conv2d_no_bias(
        x: FlexTensor,
        weight: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        flex_conv2d(x, weight, None, &options)
    }

    fn kernel_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (x, gamma, beta) = (dense(x), dense(gamma), dense(beta));
        let shape = dims(&x);
        let g = norm_geom(&shape);
        let (out, mean, var) =
            norm::train_forward(values(&x), values(&gamma), values(&beta), epsilon, &g);
        (
            flex(out, shape),
            flex(mean, vec![g.channels]),
            flex(var, vec![g.channels]),
        )
    }

    fn kernel_batch_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let [x, gamma, beta, mean, variance] = [x, gamma, beta, mean, variance].map(dense);
        let shape = dims(&x);
        let out = norm::inference(
            values(&x),
            values(&gamma),
            values(&beta),
            values(&mean),
            values(&variance),
            epsilon,
            &norm_geom(&shape),
        );
        flex(out, shape)
    }

    fn kernel_avg_pool2d(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        count_include_pad: bool,
    ) -> FlexTensor {
        let x = dense(x);
        let shape = dims(&x);
        let g = pool_geom(&shape, kernel, stride, padding, count_include_pad);
        let (oh, ow) = g.out_hw().expect("checked by avg_pool2d");
        flex(
            pool::forward(values(&x), &g),
            vec![shape[0], shape[1], oh, ow],
        )
    }

    fn kernel_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        flex_linear(x, weight, Some(bias))
    }

    fn kernel_linear_no_bias(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        flex_linear(x, weight, None)
    }

    fn kernel_gelu(x: FlexTensor) -> FlexTensor {
        let x = dense(x);
        let v = values(&x);
        let mut out = vec![0f32; v.len()];
        elementwise(&mut out, |at, o| math::gelu(&v[at..at + o.len()], o));
        flex(out, dims(&x))
    }

    fn kernel_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        flex_layer_norm(x, gamma, beta, epsilon).0
    }

    fn kernel_self_attention(qkv: FlexTensor, heads: usize, causal: bool) -> FlexTensor {
        let qkv = dense(qkv);
        let g = attention_geom(&dims(&qkv), heads, causal);
        let (out, _) = attention::forward(values(&qkv), &g);
        flex(out, vec![g.batch, g.seq, g.width])
    }
}

/// Our linear forward on flex tensors: `[M, K] · [K, N] (+ bias)`.
fn flex_linear(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>) -> FlexTensor {
    let (x, weight, bias) = (dense(x), dense(weight), bias.map(dense));
    let (xs, ws) = (dims(&x), dims(&weight));
    let (m, k, n) = (xs[0], xs[1], ws[1]);
    let (lhs, rhs, par) = (
        (values(&x), k, 1),
        (values(&weight), n, 1),
        parallel(m * n * k / 32),
    );
    let out = match &bias {
        Some(b) => {
            let mut out = Vec::with_capacity(m * n);
            (0..m).for_each(|_| out.extend_from_slice(values(b)));
            assert_eq!(out.len(), m * n, "linear: bias of {n} values");
            // SAFETY: `out` holds the `m × n` bias rows the product adds to; it is not an input.
            unsafe { sgemm::product(m, n, k, out.as_mut_ptr(), true, lhs, rhs, par) };
            out
        }
        None => matmul_new(m, n, k, lhs, rhs, par),
    };
    flex(out, vec![m, n])
}

/// Our layer norm forward on flex tensors `[M, D]`: the output and the rows' statistics.
fn flex_layer_norm(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> (FlexTensor, Vec<f32>) {
    let (x, gamma, beta) = (dense(x), dense(gamma), dense(beta));
    let shape = dims(&x);
    let g = layer_geom(&shape);
    let (out, stats) = norm::layer_forward(values(&x), values(&gamma), values(&beta), epsilon, &g);
    (flex(out, shape), stats)
}

fn layer_geom(shape: &[usize]) -> LayerGeom {
    LayerGeom {
        rows: shape[0],
        width: shape[1],
    }
}

/// The attention geometry of a packed `[N, T, 3D]` input.
fn attention_geom(shape: &[usize], heads: usize, causal: bool) -> AttentionGeom {
    AttentionGeom {
        batch: shape[0],
        seq: shape[1],
        width: shape[2] / 3,
        heads,
        causal,
    }
}

// ---- Autodiff<Flex>: the backward nodes ---------------------------------------------------

/// Convolution backward with a bias (3 parents) or without (2).
#[derive(Debug)]
struct ConvBackward;

type ConvState = (FlexTensor, FlexTensor, ConvOptions<2>);

fn conv_backward<const N: usize>(ops: Ops<ConvState, N>, grads: &mut Gradients) {
    let dy = dense(grads.consume::<Flex>(&ops.node));
    let (x, weight, options) = ops.state;
    let g = conv_geom(&dims(&x), &dims(&weight), &options).expect("checked in forward");
    let parents = &ops.parents;
    let need = [0, 1, 2].map(|i| parents.get(i).is_some_and(Option::is_some));
    let r = conv::backward(values(&x), values(&weight), values(&dy), &g, need);
    let shapes = [dims(&x), dims(&weight), vec![g.out_c]];
    for ((parent, grad), shape) in parents.iter().zip([r.x, r.weight, r.bias]).zip(shapes) {
        if let (Some(node), Some(grad)) = (parent, grad) {
            grads.register::<Flex>(node.id, flex(grad, shape));
        }
    }
}

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;
    fn backward(self, ops: Ops<ConvState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        conv_backward(ops, grads);
    }
}

impl Backward<Flex, 2> for ConvBackward {
    type State = ConvState;
    fn backward(self, ops: Ops<ConvState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        conv_backward(ops, grads);
    }
}

/// Batch-norm training backward: state (x, gamma, mean, variance, epsilon).
#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor, FlexTensor, f64);
    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let (x, gamma, mean, var, eps) = ops.state;
        let shape = dims(&x);
        let g = norm_geom(&shape);
        let (dx, dgamma, dbeta) = norm::train_backward(
            values(&x),
            values(&gamma),
            values(&mean),
            values(&var),
            values(&dy),
            eps,
            &g,
        );
        let [px, pg, pb] = ops.parents;
        let c = vec![g.channels];
        for (parent, grad, shape) in [(px, dx, shape), (pg, dgamma, c.clone()), (pb, dbeta, c)] {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, flex(grad, shape));
            }
        }
    }
}

/// Average-pooling backward: state (input shape, geometry).
#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = (Vec<usize>, PoolGeom);
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let (shape, g) = ops.state;
        let [parent] = ops.parents;
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, flex(pool::backward(values(&dy), &g), shape));
        }
    }
}

/// Linear backward with a bias (3 parents) or without (2): state (input `[M, K]`, weight
/// `[K, N]`).
#[derive(Debug)]
struct LinearBackward;

type LinearState = (FlexTensor, FlexTensor);

fn linear_backward<const P: usize>(ops: Ops<LinearState, P>, grads: &mut Gradients) {
    let dy = dense(grads.consume::<Flex>(&ops.node));
    let (x, weight) = ops.state;
    let (xs, ws) = (dims(&x), dims(&weight));
    let (m, k, n) = (xs[0], xs[1], ws[1]);
    let (xv, wv, dyv) = (values(&x), values(&weight), values(&dy));
    let par = parallel(m * n * k / 32);
    let parents = &ops.parents;
    if let Some(Some(node)) = parents.first() {
        // dX[M×K] = dY[M×N] · Wᵀ
        let dx = matmul_new(m, k, n, (dyv, n, 1), (wv, 1, n), par);
        grads.register::<Flex>(node.id, flex(dx, vec![m, k]));
    }
    if let Some(Some(node)) = parents.get(1) {
        // dW[K×N] = Xᵀ[K×M] · dY[M×N]
        let dw = matmul_new(k, n, m, (xv, 1, k), (dyv, n, 1), par);
        grads.register::<Flex>(node.id, flex(dw, vec![k, n]));
    }
    if let Some(Some(node)) = parents.get(2) {
        // db[N] = Σ_rows dY, rows in order.
        let mut db = vec![0f32; n];
        for row in dyv.chunks(n) {
            db.iter_mut().zip(row).for_each(|(d, &g)| *d += g);
        }
        grads.register::<Flex>(node.id, flex(db, vec![n]));
    }
}

impl Backward<Flex, 3> for LinearBackward {
    type State = LinearState;
    fn backward(self, ops: Ops<LinearState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        linear_backward(ops, grads);
    }
}

impl Backward<Flex, 2> for LinearBackward {
    type State = LinearState;
    fn backward(self, ops: Ops<LinearState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        linear_backward(ops, grads);
    }
}

/// Our linear forward on autodiff tensors, recorded with its backward node over the `P`
/// parents (input, weight and, for 3, the bias).
fn tracked_linear<C: CheckpointStrategy, const P: usize>(
    nodes: [NodeGuard; P],
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
) -> FloatTensor<Autodiff<Flex, C>>
where
    LinearBackward: Backward<Flex, P, State = LinearState>,
{
    let (x, weight) = (dense(x), dense(weight));
    let out = flex_linear(x.clone(), weight.clone(), bias);
    match LinearBackward
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x, weight), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// GELU backward: state (GELU's slope at the input, computed in the forward pass).
#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let slope = ops.state;
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let (sv, dyv) = (values(&slope), values(&dy));
            let mut dx = vec![0f32; sv.len()];
            elementwise(&mut dx, |at, d| {
                let (s, g) = (&sv[at..at + d.len()], &dyv[at..at + d.len()]);
                for ((d, &s), &g) in d.iter_mut().zip(s).zip(g) {
                    *d = g * s;
                }
            });
            grads.register::<Flex>(node.id, flex(dx, dims(&slope)));
        }
    }
}

/// Layer-norm backward: state (input, gamma, the rows' statistics).
#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = (FlexTensor, FlexTensor, Vec<f32>);
    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let (x, gamma, stats) = ops.state;
        let shape = dims(&x);
        let g = layer_geom(&shape);
        let (dx, dgamma, dbeta) =
            norm::layer_backward(values(&x), values(&gamma), &stats, values(&dy), &g);
        let [px, pg, pb] = ops.parents;
        let d = vec![g.width];
        for (parent, grad, shape) in [(px, dx, shape), (pg, dgamma, d.clone()), (pb, dbeta, d)] {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, flex(grad, shape));
            }
        }
    }
}

/// Self-attention backward: state (packed qkv, each row's log-sum-exp, geometry).
#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 1> for AttentionBackward {
    type State = (FlexTensor, Vec<f32>, AttentionGeom);
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let (qkv, lse, g) = ops.state;
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let dqkv = attention::backward(values(&qkv), &lse, values(&dy), &g);
            grads.register::<Flex>(node.id, flex(dqkv, dims(&qkv)));
        }
    }
}

/// Our convolution forward on autodiff tensors, recorded with its backward node over the
/// `N` parents (input, weight and, for 3, the bias).
fn tracked_conv2d<C: CheckpointStrategy, const N: usize>(
    nodes: [NodeGuard; N],
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: ConvOptions<2>,
) -> FloatTensor<Autodiff<Flex, C>>
where
    ConvBackward: Backward<Flex, N, State = ConvState>,
{
    let (x, weight) = (dense(x), dense(weight));
    let out = flex_conv2d(x.clone(), weight.clone(), bias, &options);
    match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x, weight, options), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

impl<C: CheckpointStrategy> KernelOps for Autodiff<Flex, C> {
    fn kernel_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        tracked_conv2d::<C, 3>(
            [x.node(), weight.node(), bias.node()],
            x.primitive().clone(),
            weight.primitive().clone(),
            Some(bias.primitive().clone()),
            options,
        )
    }

    fn kernel_conv2d_no_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        tracked_conv2d::<C, 2>(
            [x.node(), weight.node()],
            x.primitive().clone(),
            weight.primitive().clone(),
            None,
            options,
        )
    }

    fn kernel_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (xp, gp) = (
            dense(x.primitive().clone()),
            dense(gamma.primitive().clone()),
        );
        let (out, mean, var) = Flex::kernel_batch_norm_train(
            xp.clone(),
            gp.clone(),
            beta.primitive().clone(),
            epsilon,
        );
        let out = match NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((xp, gp, mean.clone(), var.clone(), epsilon), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        (out, Self::from_inner(mean), Self::from_inner(var))
    }

    fn kernel_avg_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        count_include_pad: bool,
    ) -> FloatTensor<Self> {
        let shape = dims(x.primitive());
        let g = pool_geom(&shape, kernel, stride, padding, count_include_pad);
        let out = Flex::kernel_avg_pool2d(
            x.primitive().clone(),
            kernel,
            stride,
            padding,
            count_include_pad,
        );
        match PoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((shape, g), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn kernel_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        tracked_linear::<C, 3>(
            [x.node(), weight.node(), bias.node()],
            x.primitive().clone(),
            weight.primitive().clone(),
            Some(bias.primitive().clone()),
        )
    }

    fn kernel_linear_no_bias(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked_linear::<C, 2>(
            [x.node(), weight.node()],
            x.primitive().clone(),
            weight.primitive().clone(),
            None,
        )
    }

    fn kernel_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let xp = dense(x.primitive().clone());
        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let v = values(&xp);
                let (mut out, mut slope) = (vec![0f32; v.len()], vec![0f32; v.len()]);
                let c = ELEMENTWISE_CHUNK;
                chunks2(&mut out, c, &mut slope, c, v.len(), |i, o, s, _| {
                    math::gelu_and_slope(&v[i * c..i * c + o.len()], o, s)
                });
                prep.finish(flex(slope, dims(&xp)), flex(out, dims(&xp)))
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::kernel_gelu(xp)),
        }
    }

    fn kernel_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let (xp, gp) = (
            dense(x.primitive().clone()),
            dense(gamma.primitive().clone()),
        );
        let (out, stats) =
            flex_layer_norm(xp.clone(), gp.clone(), beta.primitive().clone(), epsilon);
        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((xp, gp, stats), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn kernel_self_attention(
        qkv: FloatTensor<Self>,
        heads: usize,
        causal: bool,
    ) -> FloatTensor<Self> {
        let x = dense(qkv.primitive().clone());
        let g = attention_geom(&dims(&x), heads, causal);
        let (out, lse) = attention::forward(values(&x), &g);
        let out = flex(out, vec![g.batch, g.seq, g.width]);
        match AttentionBackward
            .prepare::<C>([qkv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x, lse, g), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}
