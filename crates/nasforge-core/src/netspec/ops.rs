//! The payload of every [`Op`](super::Op) that has settings: one type each, owning its shape
//! inference and its parameter and MAC arithmetic ([`Rules`]).
//!
//! [`Op`](super::Op) dispatches to these with exhaustive matches, and so does every
//! interpreter of a NetSpec (model builder, synflow, ONNX, latency, diagrams): an op added here
//! without its costs, or without its place in an interpreter, does not compile.
//!
//! Shapes exclude the batch dimension: `[C, H, W]` images, `[F]` vectors (or token ids, read
//! by an [`Embedding`]), `[T, D]` sequences of `T` positions of width `D`.

use serde::{Deserialize, Serialize};

/// Shape inference and costs of one op payload. Every payload implements all three: there is
/// no default that could silently count zero parameters.
pub trait Rules {
    /// The output shape for these input shapes (their number is already checked), or why the
    /// op cannot take them.
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String>;
    /// Trainable parameters, given the input shapes.
    fn params(&self, inputs: &[&[usize]]) -> u64;
    /// Multiply-accumulates for one sample, given the input shapes and the output shape.
    fn macs(&self, inputs: &[&[usize]], out: &[usize]) -> u64;
}

/// Product of sizes, saturating: a size typed by mistake gives a huge count, not a panic.
pub(crate) fn volume(s: &[usize]) -> u64 {
    s.iter().fold(1u64, |acc, &d| acc.saturating_mul(d as u64))
}

fn mul(xs: &[u64]) -> u64 {
    xs.iter().fold(1u64, |acc, &x| acc.saturating_mul(x))
}

/// The last axis of the first input: features of a vector, `D` of a sequence.
fn width(inputs: &[&[usize]]) -> u64 {
    inputs[0].last().map_or(0, |&d| d as u64)
}

/// What a window or crop that does not fit usually means.
const TOO_SMALL: &str = "is the input too small for this network's reductions?";

fn image(s: &[usize]) -> Result<(usize, usize, usize), String> {
    match *s {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(format!("needs an image [C, H, W], got {s:?}")),
    }
}

/// Output side of a sliding window, or why it does not fit.
fn window(size: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Result<usize, String> {
    let span = dil.saturating_mul(k.saturating_sub(1)).saturating_add(1);
    if stride == 0 || k == 0 || size + 2 * pad < span {
        return Err(format!(
            "a {k}x{k} window (dilation {dil}) does not fit a side of {size} with padding {pad} ({TOO_SMALL})"
        ));
    }
    Ok((size + 2 * pad - span) / stride + 1)
}

/// Width of the last axis: features of a vector, `D` of a sequence. Not images.
fn last_axis(s: &[usize], what: &str) -> Result<usize, String> {
    match *s {
        [f] | [_, f] => Ok(f),
        _ => Err(format!(
            "needs a vector [F] or a sequence [T, D], got {s:?}; {what}"
        )),
    }
}

/// 2-D convolution (square kernel).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv2d {
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Dilation.
    pub dilation: usize,
    /// Groups (`groups == in_channels` is a depthwise convolution).
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Rules for Conv2d {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let (c, h, w) = image(inputs[0])?;
        let (out, g) = (self.out_channels, self.groups);
        if g == 0 || c % g != 0 || out % g != 0 {
            return Err(format!("{g} groups do not divide {c} -> {out} channels"));
        }
        let side = |x| window(x, self.kernel, self.stride, self.padding, self.dilation);
        Ok(vec![out, side(h)?, side(w)?])
    }
    fn params(&self, inputs: &[&[usize]]) -> u64 {
        let (in_c, out) = (inputs[0][0] as u64, self.out_channels as u64);
        let k = self.kernel as u64;
        mul(&[out, in_c / self.groups as u64, k, k]).saturating_add(if self.bias { out } else { 0 })
    }
    fn macs(&self, inputs: &[&[usize]], out: &[usize]) -> u64 {
        let in_c = inputs[0][0] as u64;
        let k = self.kernel as u64;
        mul(&[volume(out), in_c / self.groups as u64, k, k])
    }
}

/// Batch normalisation over channels (images) or features (vectors).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    /// Whether it has a learned scale and shift.
    pub affine: bool,
}

impl Rules for BatchNorm {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        match inputs[0].len() {
            1 | 3 => Ok(inputs[0].to_vec()),
            _ => Err(format!(
                "needs an image or a vector, got {:?}; sequences take layer_norm",
                inputs[0]
            )),
        }
    }
    fn params(&self, inputs: &[&[usize]]) -> u64 {
        if self.affine {
            (inputs[0][0] as u64).saturating_mul(2)
        } else {
            0
        }
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// A pooling window's settings (max and average pooling share them).
fn pool_infer(
    kernel: usize,
    stride: usize,
    padding: usize,
    s: &[usize],
) -> Result<Vec<usize>, String> {
    let (c, h, w) = image(s)?;
    if 2 * padding > kernel {
        return Err(format!(
            "padding {padding} is more than half the {kernel}x{kernel} window"
        ));
    }
    Ok(vec![
        c,
        window(h, kernel, stride, padding, 1)?,
        window(w, kernel, stride, padding, 1)?,
    ])
}

/// Max pooling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxPool {
    /// Window size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on each side (padded cells never win).
    pub padding: usize,
}

impl Rules for MaxPool {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        pool_infer(self.kernel, self.stride, self.padding, inputs[0])
    }
    fn params(&self, _: &[&[usize]]) -> u64 {
        0
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// Average pooling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AvgPool {
    /// Window size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on each side.
    pub padding: usize,
    /// Whether padded cells count in the divisor (NAS-Bench-201 and DARTS: no).
    pub count_include_pad: bool,
}

impl Rules for AvgPool {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        pool_infer(self.kernel, self.stride, self.padding, inputs[0])
    }
    fn params(&self, _: &[&[usize]]) -> u64 {
        0
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// Fully connected layer on vectors, or on every position of a sequence (its last axis).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    /// Output features.
    pub out_features: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Rules for Linear {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let s = inputs[0];
        last_axis(s, "add global pooling or flatten first")?;
        let mut out = s.to_vec();
        *out.last_mut().expect("checked above") = self.out_features;
        Ok(out)
    }
    fn params(&self, inputs: &[&[usize]]) -> u64 {
        let in_f = width(inputs);
        let out = self.out_features as u64;
        out.saturating_mul(in_f)
            .saturating_add(if self.bias { out } else { 0 })
    }
    fn macs(&self, inputs: &[&[usize]], out: &[usize]) -> u64 {
        let in_f = width(inputs);
        volume(out).saturating_mul(in_f)
    }
}

/// Zeros of its input's shape, subsampled by `stride` (NAS-Bench-201's `none`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Zero {
    /// Spatial stride.
    pub stride: usize,
}

impl Rules for Zero {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let s = inputs[0];
        if self.stride <= 1 {
            return Ok(s.to_vec());
        }
        let (c, h, w) = image(s)?;
        Ok(vec![c, h.div_ceil(self.stride), w.div_ceil(self.stride)])
    }
    fn params(&self, _: &[&[usize]]) -> u64 {
        0
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// Drops the first `offset` rows and columns (the shifted path of DARTS's factorized reduce).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crop {
    /// Rows and columns dropped at the top and left.
    pub offset: usize,
}

impl Rules for Crop {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let (c, h, w) = image(inputs[0])?;
        let offset = self.offset;
        if offset >= h || offset >= w {
            return Err(format!(
                "cannot drop {offset} rows of a {h}x{w} image ({TOO_SMALL})"
            ));
        }
        Ok(vec![c, h - offset, w - offset])
    }
    fn params(&self, _: &[&[usize]]) -> u64 {
        0
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// Dropout with probability `p` while training; identity at inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dropout {
    /// Drop probability.
    pub p: f64,
}

impl Rules for Dropout {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(format!("drop probability {} is not in [0, 1)", self.p));
        }
        Ok(inputs[0].to_vec())
    }
    fn params(&self, _: &[&[usize]]) -> u64 {
        0
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// Keeps the first `keep` channels (features) and zeros the rest: a supernet's elastic
/// width. Only supernets hold it; extracting a sub-network narrows the layer before it
/// instead ([`super::supernet::SuperSpec::sub_network`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelMask {
    /// Channels kept.
    pub keep: usize,
}

impl Rules for ChannelMask {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let s = inputs[0];
        if s.len() == 2 {
            return Err(format!("masks channels or features, not a sequence {s:?}"));
        }
        if self.keep == 0 || self.keep > s[0] {
            return Err(format!("cannot keep {} of {} channels", self.keep, s[0]));
        }
        Ok(s.to_vec())
    }
    fn params(&self, _: &[&[usize]]) -> u64 {
        0
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

fn sequence(s: &[usize]) -> Result<(usize, usize), String> {
    match *s {
        [t, d] => Ok((t, d)),
        _ => Err(format!("needs a sequence [T, D], got {s:?}")),
    }
}

/// Token embedding: token ids `[T]` (the network input) to vectors `[T, dim]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Vocabulary size: ids run from 0 to `vocab - 1`.
    pub vocab: usize,
    /// Width of each token's vector.
    pub dim: usize,
}

impl Rules for Embedding {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        match *inputs[0] {
            [t] if self.vocab > 0 && self.dim > 0 => Ok(vec![t, self.dim]),
            [_] => Err(format!(
                "a vocabulary of {} and a width of {} must both be positive",
                self.vocab, self.dim
            )),
            _ => Err(format!("needs token ids [T], got {:?}", inputs[0])),
        }
    }
    fn params(&self, _: &[&[usize]]) -> u64 {
        (self.vocab as u64).saturating_mul(self.dim as u64)
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// How a [`Position`] encodes where a token sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// A learned `[T, D]` table (GPT-2, BERT).
    Learned,
    /// Fixed sines and cosines of geometric frequencies (the original Transformer): no
    /// parameters.
    Sinusoidal,
}

/// Adds a position encoding to a sequence `[T, D]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Learned or sinusoidal.
    pub encoding: Encoding,
}

impl Rules for Position {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        sequence(inputs[0])?;
        Ok(inputs[0].to_vec())
    }
    fn params(&self, inputs: &[&[usize]]) -> u64 {
        match self.encoding {
            Encoding::Learned => volume(inputs[0]),
            Encoding::Sinusoidal => 0,
        }
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// Layer normalisation over the last axis (features of a vector, `D` of a sequence),
/// epsilon 1e-5.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerNorm {
    /// Whether it has a learned scale and shift.
    pub affine: bool,
}

impl Rules for LayerNorm {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        last_axis(inputs[0], "images take batch_norm")?;
        Ok(inputs[0].to_vec())
    }
    fn params(&self, inputs: &[&[usize]]) -> u64 {
        if self.affine {
            width(inputs).saturating_mul(2)
        } else {
            0
        }
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// Multi-head self-attention on a sequence `[T, D]`: query, key and value projections (one
/// `D -> 3D` linear), scaled dot-product attention per head, an output projection `D -> D`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attention {
    /// Heads; each attends with `D / heads` dimensions.
    pub heads: usize,
    /// Whether a position attends only to itself and earlier ones (language models).
    pub causal: bool,
    /// Whether the projections have biases.
    pub bias: bool,
}

impl Rules for Attention {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let (_, d) = sequence(inputs[0])?;
        if self.heads == 0 || d % self.heads != 0 {
            return Err(format!("{} heads do not divide the width {d}", self.heads));
        }
        Ok(inputs[0].to_vec())
    }
    fn params(&self, inputs: &[&[usize]]) -> u64 {
        let d = width(inputs);
        mul(&[4, d, d]).saturating_add(if self.bias { 4 * d } else { 0 })
    }
    /// The four projections (4·T·D²) and the two products of attention, scores `Q·Kᵀ` and
    /// their weighted sum of values (2·T²·D). A causal mask does not reduce the count
    /// (dense kernels compute the masked half too); softmax and scaling are not counted.
    fn macs(&self, inputs: &[&[usize]], _: &[usize]) -> u64 {
        let (t, d) = match *inputs[0] {
            [t, d] => (t as u64, d as u64),
            _ => return 0,
        };
        mul(&[4, t, d, d]).saturating_add(mul(&[2, t, t, d]))
    }
}

/// How [`SeqPool`] reduces a sequence to one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean over positions.
    Mean,
    /// The first position (a classification token).
    First,
}

/// Reduces a sequence `[T, D]` to a vector `[D]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeqPool {
    /// Mean or first token.
    pub mode: Pooling,
}

impl Rules for SeqPool {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let (_, d) = sequence(inputs[0])?;
        Ok(vec![d])
    }
    fn params(&self, _: &[&[usize]]) -> u64 {
        0
    }
    fn macs(&self, _: &[&[usize]], _: &[usize]) -> u64 {
        0
    }
}

/// A language model's head: next-token logits `[T, vocab]` from `[T, D]`, without bias; tied,
/// it reuses the network's [`Embedding`] table (same vocabulary and width) and owns no
/// parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmHead {
    /// Vocabulary size.
    pub vocab: usize,
    /// Whether its weights are the embedding's.
    pub tied: bool,
}

impl Rules for LmHead {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let (t, _) = sequence(inputs[0])?;
        if self.vocab == 0 {
            return Err("a vocabulary of 0 tokens".into());
        }
        Ok(vec![t, self.vocab])
    }
    fn params(&self, inputs: &[&[usize]]) -> u64 {
        if self.tied {
            0
        } else {
            (self.vocab as u64).saturating_mul(width(inputs))
        }
    }
    fn macs(&self, inputs: &[&[usize]], out: &[usize]) -> u64 {
        volume(out).saturating_mul(width(inputs))
    }
}

/// Depthwise 1-D convolution along the positions of a sequence `[T, D]`, with bias: a cheap
/// token mixer in place of attention. Centred (odd kernel, zero padding on both sides) or
/// causal (a position sees itself and the `kernel - 1` before it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeqConv {
    /// Kernel size (positions).
    pub kernel: usize,
    /// Whether it looks only backwards.
    pub causal: bool,
}

impl Rules for SeqConv {
    fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        sequence(inputs[0])?;
        if self.kernel == 0 || (!self.causal && self.kernel.is_multiple_of(2)) {
            return Err(format!(
                "kernel {} must be positive, and odd unless causal",
                self.kernel
            ));
        }
        Ok(inputs[0].to_vec())
    }
    fn params(&self, inputs: &[&[usize]]) -> u64 {
        let d = width(inputs);
        mul(&[d, self.kernel as u64]).saturating_add(d)
    }
    fn macs(&self, inputs: &[&[usize]], _: &[usize]) -> u64 {
        mul(&[volume(inputs[0]), self.kernel as u64])
    }
}
