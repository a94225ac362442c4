//! NetSpec → burn: one module for every network the spaces describe.
//!
//! [`Network`] holds one [`Layer`] per NetSpec node (parameter-free ops hold nothing) and the
//! NetSpec itself, and its forward pass walks the nodes in topological order, freeing each
//! intermediate tensor after its last reader. `Zero` nodes (NAS-Bench-201's `none`) are never
//! materialised: a sum skips them. Convolution, batch norm and average pooling run on our own
//! kernels ([`crate::kernels`]) where they cover the op, burn's otherwise; at inference a
//! convolution whose only reader is a batch norm runs as one convolution with the norm folded
//! in (the norm's node then passes its input on, so probes and per-node timings see the fused
//! op at the convolution).

use crate::kernels;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer,
    LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig1d, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::{relu, silu};
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use nasforge_core::netspec::ops;
use nasforge_core::netspec::supernet::SuperSpec;
use nasforge_core::netspec::{NetSpec, Op};

/// `conv` computing as `op` says: itself, or with the centre of its kernels where `op`'s are
/// smaller (a node computing with a larger convolution's weights), the kernel positions
/// mapped by `map` `[k², k²]` when given; gradients reach both.
fn centre_kernels<'a>(
    conv: &'a Conv2d,
    op: &ops::Conv2d,
    map: Option<&Param<Tensor<2>>>,
) -> std::borrow::Cow<'a, Conv2d> {
    let [out, input, k, _] = conv.weight.dims();
    if k == op.kernel && map.is_none() {
        return std::borrow::Cow::Borrowed(conv);
    }
    let (at, k) = ((k - op.kernel) / 2, op.kernel);
    let mut weight = conv
        .weight
        .val()
        .slice([0..out, 0..input, at..at + k, at..at + k]);
    if let Some(m) = map {
        weight = weight
            .reshape([out * input, k * k])
            .matmul(m.val())
            .reshape([out, input, k, k]);
    }
    let p = op.padding;
    std::borrow::Cow::Owned(Conv2d {
        weight: Param::initialized(burn::module::ParamId::new(), weight),
        kernel_size: [k, k],
        padding: PaddingConfig2d::Explicit(p, p, p, p),
        ..conv.clone()
    })
}

/// The learned part of one NetSpec node.
#[derive(Module, Debug)]
pub enum Layer {
    /// A convolution.
    Conv(Conv2d),
    /// Batch normalisation (images or vectors).
    Norm(BatchNorm),
    /// A fully connected layer.
    Linear(Linear),
    /// Dropout (active only while training).
    Dropout(Dropout),
    /// A token embedding table.
    Embed(Embedding),
    /// A learned position table `[T, D]`.
    Position(Param<Tensor<2>>),
    /// Layer normalisation with a learned scale and shift.
    LayerNorm(LayerNorm),
    /// Multi-head self-attention's projections.
    Attention(SelfAttention),
    /// A depthwise convolution along positions.
    SeqConv(Conv1d),
    /// A supernet node's learned map `[k², k²]` of the positions of the centre `k x k` of a
    /// larger convolution's kernels, whose weights it computes with (once-for-all's kernel
    /// transformation; the identity at first).
    KernelMap(Param<Tensor<2>>),
    /// A parameter-free op (its NetSpec node says which).
    Fixed(usize),
}

/// The learned part of [`Op::Attention`]: query, key and value in one projection, and the
/// output projection. The attention itself is burn's `attention` (a fused kernel at
/// inference, differentiable ops in training).
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// `D -> 3D`: queries, keys, values.
    pub qkv: Linear,
    /// `D -> D`.
    pub proj: Linear,
}

impl SelfAttention {
    fn forward(&self, x: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
        let qkv = kernels::linear(&self.qkv, x);
        kernels::linear(&self.proj, kernels::self_attention(qkv, heads, causal))
    }
}

/// The N(0, 0.02) initialisation of GPT-2 and nanoGPT for embedding and position tables.
/// Layer norm's epsilon (PyTorch's default), with and without scale and shift, here and in the
/// ONNX export.
pub const LAYER_NORM_EPS: f64 = 1e-5;

const TABLE_INIT: Initializer = Initializer::Normal {
    mean: 0.0,
    std: GPT2_STD,
};

/// `linear` with its bias set to zero.
fn zero_bias(mut linear: Linear) -> Linear {
    if let Some(b) = &linear.bias {
        let zeros = Tensor::zeros(b.shape(), &b.device());
        linear.bias = Some(Param::from_tensor(zeros));
    }
    linear
}

/// GPT-2's initialisation of a network of token ids (as nanoGPT has it), per node: the
/// standard deviation of its linear weights, 0.02, except for the projections that write into
/// the residual stream (a linear layer or attention read by an `Add`, through dropout), whose
/// 0.02 is divided by √R, R their number (nanoGPT's `0.02 / √(2 · layers)`: two per block).
/// Biases start at 0.
fn gpt2_stds(spec: &NetSpec) -> Vec<f64> {
    let nodes = spec.nodes();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for &j in &node.inputs {
            readers[j].push(i);
        }
    }
    fn writes_residual(
        nodes: &[nasforge_core::netspec::Node],
        readers: &[Vec<usize>],
        i: usize,
    ) -> bool {
        readers[i].iter().any(|&r| match nodes[r].op {
            Op::Add => true,
            Op::Dropout(_) => writes_residual(nodes, readers, r),
            _ => false,
        })
    }
    let residual: Vec<bool> = (0..nodes.len())
        .map(|i| {
            matches!(nodes[i].op, Op::Linear(_) | Op::Attention(_))
                && writes_residual(nodes, &readers, i)
        })
        .collect();
    let r = residual.iter().filter(|&&w| w).count().max(1) as f64;
    residual
        .iter()
        .map(|&w| if w { GPT2_STD / r.sqrt() } else { GPT2_STD })
        .collect()
}

/// The standard deviation of GPT-2's weights.
const GPT2_STD: f64 = 0.02;

/// A network built from a [`NetSpec`]. Model code never names a device: the caller's device
/// (see [`crate::device`]) decides where it lives.
#[derive(Module, Debug)]
pub struct Network {
    layers: Vec<Layer>,
    #[module(skip)]
    spec: NetSpec,
    #[module(skip)]
    last_use: Vec<usize>,
    /// Whether a node's value reaches the output (through readers other than `Op::Zero`, whose
    /// zeros do not depend on it). On an autodiff device one that does not is not computed:
    /// its graph would never be sent backward, and burn keeps such graphs for good.
    #[module(skip)]
    needed: Vec<bool>,
    /// For a convolution whose only reader is a batch norm: that norm's node (folded into the
    /// convolution at inference, [`kernels::conv2d_batch_norm`]).
    #[module(skip)]
    folds_into: Vec<Option<usize>>,
    /// Per node: the node whose layer it computes with, when not its own (a supernet's
    /// shared weights, [`Network::share_weights`]; a convolution takes the centre of the
    /// other's kernels).
    #[module(skip)]
    shared: Vec<Option<usize>>,
    /// Batch norms normalise with the batch's statistics and update their running ones, on
    /// any device ([`Network::set_batch_statistics`]).
    #[module(skip)]
    batch_stats: bool,
    /// Whether the input is token ids ([`NetSpec::reads_tokens`]).
    #[module(skip)]
    tokens: bool,
    /// The sinusoidal position table of each such node, row-major `[T, D]`, computed once.
    #[module(skip)]
    sinusoids: Vec<Option<Vec<f32>>>,
}

/// Sees (and may replace) the output of every node that is not a symbolic zero, during
/// [`Network::forward_probed`]: how zero-cost proxies read ReLU codes or multiply gates into
/// activations without a second model.
pub trait Probe {
    /// The output `t` of image node `node` (op `op`); returns what the network goes on with.
    fn image(&mut self, node: usize, op: &Op, t: Tensor<4>) -> Tensor<4> {
        let _ = (node, op);
        t
    }
    /// The output `t` of vector node `node` (op `op`); returns what the network goes on with.
    fn vector(&mut self, node: usize, op: &Op, t: Tensor<2>) -> Tensor<2> {
        let _ = (node, op);
        t
    }
    /// The output `t` of sequence node `node` (op `op`); returns what the network goes on with.
    fn sequence(&mut self, node: usize, op: &Op, t: Tensor<3>) -> Tensor<3> {
        let _ = (node, op);
        t
    }
    /// Whether node `node` is left out of this pass: it is not computed and reads as zeros (a
    /// supernet's candidates off the sampled path). Its readers must map zeros to zeros or sum.
    fn skip(&mut self, node: usize) -> bool {
        let _ = node;
        false
    }
}

/// The probe that changes nothing.
struct NoProbe;
impl Probe for NoProbe {}

/// A tensor flowing between nodes: an image batch, a vector batch, a sequence batch, token
/// ids, or known zeros.
#[derive(Clone, Debug)]
enum Value {
    Image(Tensor<4>),
    Vector(Tensor<2>),
    Sequence(Tensor<3>),
    Tokens(Tensor<2, Int>),
    Zeros,
}

impl Value {
    fn image(self, node: usize) -> Tensor<4> {
        match self {
            Value::Image(t) => t,
            other => panic!("node {node} expects an image, got {other:?}; NetSpec shape inference prevents this"),
        }
    }

    fn sequence(self, node: usize) -> Tensor<3> {
        match self {
            Value::Sequence(t) => t,
            other => panic!("node {node} expects a sequence, got {other:?}; NetSpec shape inference prevents this"),
        }
    }
}

impl Network {
    /// Builds the network with freshly initialised parameters on `device`.
    pub fn new(spec: &NetSpec, device: &Device) -> Self {
        let nodes = spec.nodes();
        let gpt2 = spec.reads_tokens().then(|| gpt2_stds(spec));
        // A linear layer: burn's default initialisation, or GPT-2's with `std` (bias 0).
        let linear = |std: Option<f64>, inputs: usize, outputs: usize, bias: bool| {
            let config = LinearConfig::new(inputs, outputs).with_bias(bias);
            match std {
                None => config.init(device),
                Some(std) => zero_bias(
                    config
                        .with_initializer(Initializer::Normal { mean: 0.0, std })
                        .init(device),
                ),
            }
        };
        let layers = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                // GPT-2's weight scale for this node's linear layers.
                let std = gpt2.as_ref().map(|stds| stds[i]);
                let in_c = node.inputs.first().map(|&j| nodes[j].shape[0]).unwrap_or(0);
                // Features of a vector, width of a sequence.
                let in_last = node
                    .inputs
                    .first()
                    .and_then(|&j| nodes[j].shape.last().copied())
                    .unwrap_or(0);
                match node.op {
                    Op::Conv2d(ops::Conv2d {
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        dilation,
                        groups,
                        bias,
                    }) => Layer::Conv(
                        Conv2dConfig::new([in_c, out_channels], [kernel, kernel])
                            .with_stride([stride, stride])
                            .with_padding(PaddingConfig2d::Explicit(
                                padding, padding, padding, padding,
                            ))
                            .with_dilation([dilation, dilation])
                            .with_groups(groups)
                            .with_bias(bias)
                            .init(device),
                    ),
                    Op::BatchNorm(_) => Layer::Norm(
                        BatchNormConfig::new(in_c)
                            .with_momentum(0.1)
                            .with_epsilon(1e-5)
                            .init(device),
                    ),
                    Op::Linear(ops::Linear { out_features, bias }) => {
                        Layer::Linear(linear(std, in_last, out_features, bias))
                    }
                    Op::Dropout(ops::Dropout { p }) => Layer::Dropout(DropoutConfig::new(p).init()),
                    Op::Embedding(ops::Embedding { vocab, dim }) => Layer::Embed(
                        EmbeddingConfig::new(vocab, dim)
                            .with_initializer(TABLE_INIT)
                            .init(device),
                    ),
                    Op::Position(ops::Position {
                        encoding: ops::Encoding::Learned,
                    }) => Layer::Position(TABLE_INIT.init(node.shape.clone(), device)),
                    Op::LayerNorm(ops::LayerNorm { affine: true }) => Layer::LayerNorm(
                        LayerNormConfig::new(in_last)
                            .with_epsilon(LAYER_NORM_EPS)
                            .init(device),
                    ),
                    Op::Attention(ops::Attention { bias, .. }) => {
                        // The queries, keys and values are not residual writers; the output
                        // projection is when the attention is.
                        let qkv_std = std.map(|_| GPT2_STD);
                        Layer::Attention(SelfAttention {
                            qkv: linear(qkv_std, in_last, 3 * in_last, bias),
                            proj: linear(std, in_last, in_last, bias),
                        })
                    }
                    Op::LmHead(ops::LmHead { vocab, tied: false }) => {
                        Layer::Linear(linear(std, in_last, vocab, false))
                    }
                    Op::SeqConv(ops::SeqConv { kernel, causal }) => Layer::SeqConv(
                        Conv1dConfig::new(in_last, in_last, kernel)
                            .with_groups(in_last)
                            .with_padding(if causal {
                                PaddingConfig1d::Explicit(kernel - 1, 0)
                            } else {
                                PaddingConfig1d::Explicit(kernel / 2, kernel / 2)
                            })
                            .with_bias(true)
                            .init(device),
                    ),
                    Op::Input
                    | Op::Relu
                    | Op::Gelu
                    | Op::Tanh
                    | Op::Silu
                    | Op::MaxPool(_)
                    | Op::AvgPool(_)
                    | Op::GlobalAvgPool
                    | Op::Flatten
                    | Op::Add
                    | Op::Concat
                    | Op::Identity
                    | Op::Zero(_)
                    | Op::Crop(_)
                    | Op::ChannelMask(_)
                    | Op::Position(_)
                    | Op::LayerNorm(_)
                    | Op::SeqPool(_)
                    | Op::LmHead(_) => Layer::Fixed(i),
                }
            })
            .collect();
        Self::from_layers(spec, layers)
    }

    /// The network of `spec` with the given layers, one per node (`Layer::Fixed(i)` at node `i`
    /// for parameter-free ops): how a supernet's sub-network inherits its weights.
    pub(crate) fn from_layers(spec: &NetSpec, layers: Vec<Layer>) -> Self {
        let nodes = spec.nodes();
        debug_assert_eq!(layers.len(), nodes.len());
        let mut last_use: Vec<usize> = (0..nodes.len()).collect();
        let mut readers = vec![0usize; nodes.len()];
        for (i, node) in nodes.iter().enumerate() {
            for &j in &node.inputs {
                last_use[j] = last_use[j].max(i);
                readers[j] += 1;
            }
        }
        last_use[spec.output()] = usize::MAX;
        let needed = spec.reaching_output(&[]);
        let mut folds_into = vec![None; nodes.len()];
        for (j, node) in nodes.iter().enumerate() {
            if let (Op::BatchNorm(_), &[i]) = (&node.op, &node.inputs[..]) {
                if matches!(nodes[i].op, Op::Conv2d(_))
                    && readers[i] == 1
                    && i != spec.output()
                    && nodes[i].shape.len() == 3
                {
                    folds_into[i] = Some(j);
                }
            }
        }
        Network {
            layers,
            spec: spec.clone(),
            last_use,
            needed,
            folds_into,
            shared: vec![None; nodes.len()],
            batch_stats: false,
            tokens: spec.reads_tokens(),
            sinusoids: nodes
                .iter()
                .map(|n| match (&n.op, &n.shape[..]) {
                    (
                        Op::Position(ops::Position {
                            encoding: ops::Encoding::Sinusoidal,
                        }),
                        &[t, d],
                    ) => Some(sinusoidal(t, d)),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The NetSpec this network was built from.
    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// Trainable parameters (batch-norm running statistics are buffers, not counted).
    pub fn trainable_params(&self) -> usize {
        struct Count(usize);
        impl ModuleVisitor for Count {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.0 += p.lazy_shape().num_elements();
            }
        }
        // Running mean and variance are stored as buffers by BatchNorm; count only its gamma/beta.
        let mut total = 0;
        for layer in &self.layers {
            let mut v = Count(0);
            match layer {
                Layer::Norm(bn) => {
                    bn.gamma.visit(&mut v);
                    bn.beta.visit(&mut v);
                }
                Layer::Conv(_)
                | Layer::Linear(_)
                | Layer::Embed(_)
                | Layer::Position(_)
                | Layer::LayerNorm(_)
                | Layer::Attention(_)
                | Layer::SeqConv(_)
                | Layer::KernelMap(_) => layer.visit(&mut v),
                Layer::Dropout(_) | Layer::Fixed(_) => {}
            }
            total += v.0;
        }
        total
    }

    /// The network of `sup`'s nodes with each node that shares another's weights computing
    /// with that node's layer (`SuperSpec::with_shared`): a batch norm uses the other's, a
    /// convolution the centre of the other's kernels, through its own learned map of the
    /// kernel positions when they are smaller ([`Layer::KernelMap`], the identity at first).
    pub(crate) fn share_weights(mut self, sup: &SuperSpec) -> Self {
        let device = self.device();
        for (k, s) in sup.shared().iter().enumerate() {
            if s.is_some() {
                self.layers[k] = match sup.kernel_map(k) {
                    Some(side) => Layer::KernelMap(Param::from_tensor(Tensor::eye(side, &device))),
                    None => Layer::Fixed(k),
                };
            }
        }
        self.shared = sup.shared().to_vec();
        self
    }

    /// The layer node `i` computes with: its own, or the one it shares.
    fn layer(&self, i: usize) -> &Layer {
        &self.layers[self.shared[i].unwrap_or(i)]
    }

    /// Node `i`'s convolution as it computes: its own layer `conv`, or, when it shares a
    /// larger one's weights (`conv` is that one's), the centre of their kernels through its
    /// map.
    pub(crate) fn conv_of<'a>(
        &'a self,
        i: usize,
        conv: &'a Conv2d,
        op: &ops::Conv2d,
    ) -> std::borrow::Cow<'a, Conv2d> {
        let map = match &self.layers[i] {
            Layer::KernelMap(m) => Some(m),
            _ => None,
        };
        centre_kernels(conv, op, map)
    }

    /// With `on`, every batch norm normalises with the batch's own statistics and updates its
    /// running statistics, on the inference device too (no autodiff graph, which burn keeps
    /// for a forward pass that never runs backward): how a supernet's sub-network
    /// recalibrates its batch norms. Off, the device and the layers decide, as always.
    pub(crate) fn set_batch_statistics(&mut self, on: bool) {
        self.batch_stats = on;
    }

    /// Sets the running-statistics momentum of every batch norm (1: the next batch's
    /// statistics replace them; `1/(k+1)` at batch `k`: their running mean).
    pub(crate) fn set_norm_momentum(&mut self, momentum: f64) {
        for layer in &mut self.layers {
            if let Layer::Norm(bn) = layer {
                bn.momentum = momentum;
            }
        }
    }

    /// The learned layers, one per NetSpec node (`Layer::Fixed` for parameter-free ops).
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Runs a batch of images `[N, C, H, W]`; returns `[N, outputs]`.
    pub fn forward_images(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(Value::Image(x), &mut NoProbe)
    }

    /// Runs a batch of vectors `[N, F]`; returns `[N, outputs]`.
    pub fn forward_vectors(&self, x: Tensor<2>) -> Tensor<2> {
        self.run(Value::Vector(x), &mut NoProbe)
    }

    /// Runs a batch given as a flat `[N, row_len]` matrix, reshaped to the input shape.
    pub fn forward_flat(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_probed(x, &mut NoProbe)
    }

    /// [`Network::forward_flat`] with `probe` shown every node's output.
    pub fn forward_probed(&self, x: Tensor<2>, probe: &mut dyn Probe) -> Tensor<2> {
        match self.spec.input_shape() {
            &[c, h, w] => {
                let n = x.dims()[0];
                self.run(Value::Image(x.reshape([n, c, h, w])), probe)
            }
            _ if self.tokens => self.run(Value::Tokens(x.int()), probe),
            _ => self.run(Value::Vector(x), probe),
        }
    }

    fn run(&self, input: Value, probe: &mut dyn Probe) -> Tensor<2> {
        let nodes = self.spec.nodes();
        let mut values: Vec<Option<Value>> = vec![None; nodes.len()];
        values[0] = Some(input);
        // The batch, and whether this pass runs on an autodiff device: there, nodes whose value
        // never reaches the output are not computed (their graphs would never be sent backward,
        // and burn keeps such graphs for good); at inference they still run, as the latency
        // table's per-node profile assumes.
        let (batch, autodiff) = match values[0].as_ref() {
            Some(Value::Image(t)) => (t.dims()[0], t.device().is_autodiff()),
            Some(Value::Vector(t)) => (t.dims()[0], t.device().is_autodiff()),
            Some(Value::Sequence(t)) => (t.dims()[0], t.device().is_autodiff()),
            Some(Value::Tokens(t)) => (t.dims()[0], t.device().is_autodiff()),
            _ => (0, false),
        };
        // Batch norms already applied by the convolution before them (inference only).
        let mut folded = vec![false; nodes.len()];
        for i in 1..nodes.len() {
            let node = &nodes[i];
            // Zeros stay symbolic through ops that map 0 to 0; ops with a shift (batch norm, a
            // bias) need the real tensor.
            let arg = |k: usize, keep_zeros: bool| -> Value {
                let j = node.inputs[k];
                match values[j]
                    .clone()
                    .expect("inputs are computed before their readers")
                {
                    Value::Zeros if !keep_zeros => self.zeros(j, batch),
                    v => v,
                }
            };
            let out = match (&node.op, self.layer(i)) {
                _ if probe.skip(i) || (autodiff && !self.needed[i]) => Value::Zeros,
                (Op::Conv2d(op), Layer::Conv(conv)) => match arg(0, !op.bias) {
                    Value::Zeros => Value::Zeros,
                    v => {
                        let x = v.image(i);
                        let conv = &*self.conv_of(i, conv, op);
                        let fold = self.folds_into[i].filter(|_| !self.batch_stats);
                        let fused = fold.and_then(|j| match self.layer(j) {
                            Layer::Norm(bn) => {
                                kernels::conv2d_batch_norm(conv, bn, &x).map(|y| (j, y))
                            }
                            _ => None,
                        });
                        match fused {
                            Some((j, y)) => {
                                folded[j] = true;
                                Value::Image(y)
                            }
                            None => Value::Image(kernels::conv2d(conv, x)),
                        }
                    }
                },
                (Op::BatchNorm(_), Layer::Norm(bn)) if self.batch_stats => match arg(0, false) {
                    Value::Image(t) => Value::Image(batch_statistics_norm(bn, t)),
                    Value::Vector(t) => Value::Vector(batch_statistics_norm(bn, t)),
                    other => unreachable!("batch norm node {i} got {other:?}"),
                },
                (Op::BatchNorm(_), Layer::Norm(_)) if folded[i] => {
                    values[node.inputs[0]].clone().expect("computed")
                }
                (Op::BatchNorm(_), Layer::Norm(bn)) => match arg(0, false) {
                    Value::Image(t) => Value::Image(kernels::batch_norm(bn, t)),
                    Value::Vector(t) => Value::Vector(kernels::batch_norm(bn, t)),
                    other => unreachable!("batch norm node {i} got {other:?}"),
                },
                (Op::Linear(_) | Op::LmHead(_), Layer::Linear(lin)) => match arg(0, false) {
                    Value::Vector(t) => Value::Vector(kernels::linear(lin, t)),
                    Value::Sequence(t) => Value::Sequence(kernels::linear(lin, t)),
                    other => panic!("linear node {i} got {other:?}"),
                },
                (Op::Dropout(_), Layer::Dropout(d)) => match arg(0, true) {
                    Value::Image(t) => Value::Image(d.forward(t)),
                    Value::Vector(t) => Value::Vector(d.forward(t)),
                    Value::Sequence(t) => Value::Sequence(d.forward(t)),
                    v @ (Value::Tokens(_) | Value::Zeros) => v,
                },
                (Op::Embedding(_), Layer::Embed(e)) => match arg(0, false) {
                    Value::Tokens(t) => Value::Sequence(e.forward(t)),
                    other => panic!("embedding node {i} got {other:?}; it reads token ids"),
                },
                (Op::Position(_), Layer::Position(p)) => {
                    Value::Sequence(arg(0, false).sequence(i) + p.val().unsqueeze::<3>())
                }
                (Op::LayerNorm(_), Layer::LayerNorm(ln)) => match arg(0, false) {
                    Value::Vector(t) => Value::Vector(kernels::layer_norm(ln, t, LAYER_NORM_EPS)),
                    v => Value::Sequence(kernels::layer_norm(ln, v.sequence(i), LAYER_NORM_EPS)),
                },
                // Attention of zeros without biases is zeros (uniform weights over zero values).
                (
                    Op::Attention(ops::Attention {
                        heads,
                        causal,
                        bias,
                    }),
                    Layer::Attention(a),
                ) => match arg(0, !bias) {
                    Value::Zeros => Value::Zeros,
                    v => Value::Sequence(a.forward(v.sequence(i), *heads, *causal)),
                },
                (Op::SeqConv(ops::SeqConv { .. }), Layer::SeqConv(conv)) => {
                    let x = arg(0, false).sequence(i);
                    let t = x.dims()[1];
                    let y = conv.forward(x.swap_dims(1, 2)).swap_dims(1, 2);
                    let [n, _, d] = y.dims();
                    Value::Sequence(y.slice([0..n, 0..t, 0..d]))
                }
                (op, _) => self.fixed(
                    op,
                    i,
                    node.inputs
                        .iter()
                        .map(|&j| values[j].clone().expect("computed"))
                        .collect(),
                    batch,
                ),
            };
            values[i] = Some(match out {
                Value::Image(t) => Value::Image(probe.image(i, &node.op, t)),
                Value::Vector(t) => Value::Vector(probe.vector(i, &node.op, t)),
                Value::Sequence(t) => Value::Sequence(probe.sequence(i, &node.op, t)),
                v @ (Value::Tokens(_) | Value::Zeros) => v,
            });
            for &j in &node.inputs {
                if self.last_use[j] == i {
                    values[j] = None;
                }
            }
        }
        match values[self.spec.output()].take().expect("output computed") {
            Value::Vector(t) => t,
            Value::Image(t) => {
                let n = t.dims()[0];
                t.reshape([n as i64, -1])
            }
            Value::Sequence(t) => {
                let n = t.dims()[0];
                t.reshape([n as i64, -1])
            }
            Value::Tokens(t) => t.float(),
            Value::Zeros => {
                let shape = self.spec.output_shape();
                Tensor::zeros([batch, shape.iter().product()], &self.device())
            }
        }
    }

    fn device(&self) -> Device {
        self.layers
            .iter()
            .find_map(|l| match l {
                Layer::Conv(c) => Some(c.weight.val().device()),
                Layer::Linear(l) => Some(l.weight.val().device()),
                Layer::Embed(e) => Some(e.weight.val().device()),
                _ => None,
            })
            .expect("every network has a learned layer")
    }

    fn zeros(&self, node: usize, batch: usize) -> Value {
        let s = &self.spec.nodes()[node].shape;
        match s[..] {
            [c, h, w] => Value::Image(Tensor::zeros([batch, c, h, w], &self.device())),
            [f] => Value::Vector(Tensor::zeros([batch, f], &self.device())),
            [t, d] => Value::Sequence(Tensor::zeros([batch, t, d], &self.device())),
            _ => unreachable!("shapes are [C,H,W], [T, D] or [F]"),
        }
    }

    fn fixed(&self, op: &Op, i: usize, mut args: Vec<Value>, batch: usize) -> Value {
        match *op {
            Op::Relu | Op::Gelu | Op::Silu | Op::Tanh => match args.remove(0) {
                Value::Image(t) => Value::Image(activation(op, t)),
                Value::Vector(t) => Value::Vector(activation(op, t)),
                Value::Sequence(t) => Value::Sequence(activation(op, t)),
                v @ (Value::Tokens(_) | Value::Zeros) => v,
            },
            Op::Identity => args.remove(0),
            Op::Position(ops::Position {
                encoding: ops::Encoding::Sinusoidal,
            }) => {
                let [t, d] = self.spec.nodes()[i].shape[..] else {
                    unreachable!("positions are [T, D]")
                };
                let values = self.sinusoids[i].clone().expect("computed in from_layers");
                let table = Tensor::<2>::from_data(TensorData::new(values, [t, d]), &self.device())
                    .unsqueeze::<3>();
                match args.remove(0) {
                    Value::Zeros => Value::Sequence(table.repeat_dim(0, batch)),
                    v => Value::Sequence(v.sequence(i) + table),
                }
            }
            Op::LayerNorm(ops::LayerNorm { affine: false }) => match args.remove(0) {
                Value::Vector(t) => Value::Vector(standardise(t)),
                Value::Zeros => Value::Zeros,
                v => Value::Sequence(standardise(v.sequence(i))),
            },
            Op::SeqPool(ops::SeqPool { mode }) => match args.remove(0) {
                Value::Zeros => Value::Zeros,
                v => {
                    let x = v.sequence(i);
                    let [n, _, d] = x.dims();
                    Value::Vector(match mode {
                        ops::Pooling::Mean => x.mean_dim(1).reshape([n, d]),
                        ops::Pooling::First => x.slice([0..n, 0..1, 0..d]).reshape([n, d]),
                    })
                }
            },
            Op::LmHead(ops::LmHead { tied: true, .. }) => match args.remove(0) {
                Value::Zeros => Value::Zeros,
                v => {
                    let x = v.sequence(i);
                    let table = self
                        .spec
                        .tied_table(i)
                        .and_then(|e| match &self.layers[e] {
                            Layer::Embed(e) => Some(e.weight.val()),
                            _ => None,
                        })
                        .expect("NetSpec checks a tied head's embedding");
                    let [n, t, d] = x.dims();
                    let v = table.dims()[0];
                    Value::Sequence(
                        x.reshape([n * t, d])
                            .matmul(table.transpose())
                            .reshape([n, t, v]),
                    )
                }
            },
            Op::ChannelMask(ops::ChannelMask { keep }) => {
                let mask = |c: usize, device: &Device| {
                    let v: Vec<f32> = (0..c).map(|k| f32::from(u8::from(k < keep))).collect();
                    Tensor::<1>::from_data(TensorData::new(v, [c]), device)
                };
                match args.remove(0) {
                    Value::Zeros => Value::Zeros,
                    Value::Vector(t) => {
                        let m = mask(t.dims()[1], &t.device());
                        Value::Vector(t * m.unsqueeze::<2>())
                    }
                    Value::Image(t) => {
                        let c = t.dims()[1];
                        let m = mask(c, &t.device()).reshape([1, c, 1, 1]);
                        Value::Image(t * m)
                    }
                    other => panic!("channel mask node {i} got {other:?}"),
                }
            }
            Op::Zero(_) => Value::Zeros,
            Op::MaxPool(ops::MaxPool {
                kernel,
                stride,
                padding,
            }) => match args.remove(0) {
                Value::Zeros => Value::Zeros,
                v => Value::Image(max_pool2d(
                    v.image(i),
                    MaxPoolOptions::new([kernel, kernel])
                        .with_stride([stride, stride])
                        .with_padding([padding, padding]),
                )),
            },
            Op::AvgPool(ops::AvgPool {
                kernel,
                stride,
                padding,
                count_include_pad,
            }) => match args.remove(0) {
                Value::Zeros => Value::Zeros,
                v => Value::Image(kernels::avg_pool2d(
                    v.image(i),
                    kernel,
                    stride,
                    padding,
                    count_include_pad,
                )),
            },
            Op::GlobalAvgPool => match args.remove(0) {
                Value::Zeros => Value::Zeros,
                v => {
                    let t = v.image(i);
                    let [n, c, h, w] = t.dims();
                    Value::Vector(t.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]))
                }
            },
            Op::Flatten => match args.remove(0) {
                Value::Image(t) => {
                    let n = t.dims()[0];
                    Value::Vector(t.reshape([n as i64, -1]))
                }
                other => other,
            },
            Op::Crop(ops::Crop { offset }) => match args.remove(0) {
                Value::Zeros => Value::Zeros,
                v => {
                    let t = v.image(i);
                    let [n, c, h, w] = t.dims();
                    Value::Image(t.slice([0..n, 0..c, offset..h, offset..w]))
                }
            },
            Op::Add => {
                let mut sum: Option<Value> = None;
                for a in args {
                    sum = Some(match (sum, a) {
                        (None, a) => a,
                        (Some(Value::Zeros), a) | (Some(a), Value::Zeros) => a,
                        (Some(Value::Image(x)), Value::Image(y)) => Value::Image(x + y),
                        (Some(Value::Vector(x)), Value::Vector(y)) => Value::Vector(x + y),
                        (Some(Value::Sequence(x)), Value::Sequence(y)) => Value::Sequence(x + y),
                        (Some(x), y) => panic!("add node {i} mixes {x:?} and {y:?}"),
                    });
                }
                sum.expect("add has inputs")
            }
            Op::Concat => {
                let nodes = self.spec.nodes();
                let inputs = &nodes[i].inputs;
                let parts: Vec<Value> = args
                    .into_iter()
                    .zip(inputs)
                    .map(|(a, &j)| {
                        if matches!(a, Value::Zeros) {
                            self.zeros(j, batch)
                        } else {
                            a
                        }
                    })
                    .collect();
                match &parts[0] {
                    Value::Image(_) => Value::Image(Tensor::cat(
                        parts.into_iter().map(|p| p.image(i)).collect(),
                        1,
                    )),
                    _ => Value::Vector(Tensor::cat(
                        parts
                            .into_iter()
                            .map(|p| match p {
                                Value::Vector(t) => t,
                                other => panic!("concat node {i} mixes {other:?}"),
                            })
                            .collect(),
                        1,
                    )),
                }
            }
            Op::Input
            | Op::Conv2d(_)
            | Op::BatchNorm(_)
            | Op::Linear(_)
            | Op::Dropout(_)
            | Op::Embedding(_)
            | Op::Attention(_)
            | Op::SeqConv(_)
            | Op::Position(ops::Position {
                encoding: ops::Encoding::Learned,
            })
            | Op::LayerNorm(ops::LayerNorm { affine: true })
            | Op::LmHead(ops::LmHead { tied: false, .. }) => {
                unreachable!("node {i}: learned ops have layers")
            }
        }
    }
}

/// One of the four element-wise activations.
fn activation<const D: usize>(op: &Op, t: Tensor<D>) -> Tensor<D> {
    match op {
        Op::Relu => relu(t),
        Op::Gelu => kernels::gelu(t),
        Op::Silu => silu(t),
        Op::Tanh => t.tanh(),
        other => unreachable!("{} is not an activation", other.kind()),
    }
}

/// Layer normalisation without scale and shift over the last axis.
fn standardise<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let (var, mean) = x.clone().var_mean_bias(D - 1);
    (x - mean) / (var + LAYER_NORM_EPS).sqrt()
}

/// The sinusoidal position table `[T, D]` of the original Transformer, row-major:
/// `sin(p / 10000^(2i/D))` at column `2i`, `cos` of the same at `2i + 1`.
pub fn sinusoidal(t: usize, d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(t * d);
    for p in 0..t {
        for c in 0..d {
            let freq = (10000f64).powf(-((c / 2 * 2) as f64) / d as f64);
            let a = p as f64 * freq;
            out.push(if c % 2 == 0 { a.sin() } else { a.cos() } as f32);
        }
    }
    out
}

/// Batch normalisation with the batch's statistics, updating the running statistics as burn's
/// training pass does (`running = (1 − momentum)·running + momentum·batch`), on any device.
fn batch_statistics_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let r = burn::tensor::module::batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let m = bn.momentum;
    let device = r.output.device();
    let mean = bn.running_mean.value_sync().to_device(&device);
    let var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean
        .update(mean.mul_scalar(1.0 - m) + r.mean.mul_scalar(m));
    bn.running_var
        .update(var.mul_scalar(1.0 - m) + r.variance.mul_scalar(m));
    r.output
}
