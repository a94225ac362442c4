//! NetSpec: the backend-free graph IR of a network.
//!
//! A [`NetSpec`] is a DAG of [`Node`]s in topological order (node 0 is the input, the last
//! node added with [`NetSpecBuilder::finish`] is the output). Shapes are inferred as nodes are
//! added, without the batch dimension: `[C, H, W]` for images, `[F]` for vectors, `[T]` for
//! token ids (read by an embedding, from the network input only) and `[T, D]` for sequences.
//! Each op's shape rule and costs live with its payload type in [`ops`]. Parameter and
//! multiply-accumulate (MAC) counts, the model builder, the ONNX exporter and the diagrams all
//! read this one structure.
//!
//! Counting conventions (those of NAS-Bench-201's published figures, and PyTorch's
//! `parameters()` for sequence ops): parameters are the trainable ones (convolution, linear
//! and attention weights and biases, batch- and layer-norm scale and shift, embedding and
//! learned position tables; a tied head shares its embedding's); batch-norm running statistics
//! are buffers, not parameters. MACs are the multiply-accumulates of weights (convolutions,
//! linear layers, attention's projections, a language model's head) plus attention's two
//! `T²·D` products; norms, activations, pooling, softmax, additions and concatenations are not
//! counted.

mod diagram;
pub mod ops;
pub mod supernet;

use crate::{Error, Result};
use ops::Rules;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Index of a node in its [`NetSpec`].
pub type NodeId = usize;

/// What a node computes. Ops with settings carry a payload type from [`ops`] that owns their
/// shape inference and costs; every match on `Op` in the project is exhaustive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The network input (node 0 only).
    Input,
    /// 2-D convolution (square kernel).
    Conv2d(ops::Conv2d),
    /// Batch normalisation over channels (images) or features (vectors).
    BatchNorm(ops::BatchNorm),
    /// ReLU.
    Relu,
    /// GELU.
    Gelu,
    /// tanh.
    Tanh,
    /// SiLU (swish).
    Silu,
    /// Max pooling.
    MaxPool(ops::MaxPool),
    /// Average pooling.
    AvgPool(ops::AvgPool),
    /// Global average pooling: `[C, H, W] -> [C]`.
    GlobalAvgPool,
    /// Flattens `[C, H, W]` to `[C*H*W]`.
    Flatten,
    /// Fully connected layer on vectors (or on each position of a sequence).
    Linear(ops::Linear),
    /// Element-wise sum of its inputs (same shape).
    Add,
    /// Concatenation of its inputs along channels (images) or features (vectors).
    Concat,
    /// Passes its input through.
    Identity,
    /// Zeros of its input's shape, subsampled by `stride` (NAS-Bench-201's `none`).
    Zero(ops::Zero),
    /// Drops the first `offset` rows and columns (the shifted path of DARTS's factorized reduce).
    Crop(ops::Crop),
    /// Dropout with probability `p` while training; identity at inference.
    Dropout(ops::Dropout),
    /// A supernet's elastic width: keeps the first `keep` channels (features), zeros the rest.
    ChannelMask(ops::ChannelMask),
    /// Token ids `[T]` to vectors `[T, D]`.
    Embedding(ops::Embedding),
    /// A learned or sinusoidal position encoding added to a sequence.
    Position(ops::Position),
    /// Layer normalisation over the last axis.
    LayerNorm(ops::LayerNorm),
    /// Multi-head self-attention on a sequence.
    Attention(ops::Attention),
    /// A sequence `[T, D]` reduced to `[D]` (mean or first token).
    SeqPool(ops::SeqPool),
    /// Next-token logits `[T, vocab]`, optionally tied to the embedding.
    LmHead(ops::LmHead),
    /// Depthwise 1-D convolution along positions (a cheap token mixer).
    SeqConv(ops::SeqConv),
}

impl Op {
    /// A short type name (`conv2d`, `batch_norm`, ...) used in op counts and diagrams.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d(_) => "conv2d",
            Op::BatchNorm(_) => "batch_norm",
            Op::Relu => "relu",
            Op::Gelu => "gelu",
            Op::Tanh => "tanh",
            Op::Silu => "silu",
            Op::MaxPool(_) => "max_pool",
            Op::AvgPool(_) => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Flatten => "flatten",
            Op::Linear(_) => "linear",
            Op::Add => "add",
            Op::Concat => "concat",
            Op::Identity => "identity",
            Op::Zero(_) => "zero",
            Op::Crop(_) => "crop",
            Op::Dropout(_) => "dropout",
            Op::ChannelMask(_) => "channel_mask",
            Op::Embedding(_) => "embedding",
            Op::Position(_) => "position",
            Op::LayerNorm(_) => "layer_norm",
            Op::Attention(_) => "attention",
            Op::SeqPool(_) => "seq_pool",
            Op::LmHead(_) => "lm_head",
            Op::SeqConv(_) => "seq_conv",
        }
    }

    /// How many inputs the op reads: `None` for one or more (sums and concatenations).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Input => Some(0),
            Op::Add | Op::Concat => None,
            Op::Conv2d(_)
            | Op::BatchNorm(_)
            | Op::Relu
            | Op::Gelu
            | Op::Tanh
            | Op::Silu
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::GlobalAvgPool
            | Op::Flatten
            | Op::Linear(_)
            | Op::Identity
            | Op::Zero(_)
            | Op::Crop(_)
            | Op::Dropout(_)
            | Op::ChannelMask(_)
            | Op::Embedding(_)
            | Op::Position(_)
            | Op::LayerNorm(_)
            | Op::Attention(_)
            | Op::SeqPool(_)
            | Op::LmHead(_)
            | Op::SeqConv(_) => Some(1),
        }
    }

    /// The payload's rules, or `None` for ops without settings (handled by [`Op::infer`],
    /// [`Op::params`] and [`Op::macs`] themselves).
    fn rules(&self) -> Option<&dyn Rules> {
        match self {
            Op::Conv2d(p) => Some(p),
            Op::BatchNorm(p) => Some(p),
            Op::MaxPool(p) => Some(p),
            Op::AvgPool(p) => Some(p),
            Op::Linear(p) => Some(p),
            Op::Zero(p) => Some(p),
            Op::Crop(p) => Some(p),
            Op::Dropout(p) => Some(p),
            Op::ChannelMask(p) => Some(p),
            Op::Embedding(p) => Some(p),
            Op::Position(p) => Some(p),
            Op::LayerNorm(p) => Some(p),
            Op::Attention(p) => Some(p),
            Op::SeqPool(p) => Some(p),
            Op::LmHead(p) => Some(p),
            Op::SeqConv(p) => Some(p),
            Op::Input
            | Op::Relu
            | Op::Gelu
            | Op::Tanh
            | Op::Silu
            | Op::GlobalAvgPool
            | Op::Flatten
            | Op::Add
            | Op::Concat
            | Op::Identity => None,
        }
    }

    /// The output shape for these input shapes (their number already checked against
    /// [`Op::arity`]), or why the op cannot take them.
    pub fn infer(&self, inputs: &[&[usize]]) -> std::result::Result<Vec<usize>, String> {
        if let Some(rules) = self.rules() {
            return rules.infer(inputs);
        }
        let s = inputs.first().copied().unwrap_or(&[]);
        Ok(match self {
            Op::Input => return Err("the input node is created by NetSpecBuilder::new".into()),
            Op::GlobalAvgPool => match *s {
                [c, _, _] => vec![c],
                _ => return Err(format!("needs an image [C, H, W], got {s:?}")),
            },
            Op::Flatten => vec![s.iter().product()],
            Op::Add => {
                if let Some(t) = inputs[1..].iter().find(|t| **t != s) {
                    return Err(format!("shapes differ: {s:?} and {t:?}"));
                }
                s.to_vec()
            }
            Op::Concat if s.len() == 2 => {
                return Err(format!(
                    "cannot concatenate sequences {s:?}; add them instead"
                ))
            }
            Op::Concat => {
                let mut out = s.to_vec();
                for t in &inputs[1..] {
                    if t.len() != s.len() || t[1..] != s[1..] {
                        return Err(format!("shapes differ beyond channels: {s:?} and {t:?}"));
                    }
                    out[0] += t[0];
                }
                out
            }
            Op::Relu | Op::Gelu | Op::Tanh | Op::Silu | Op::Identity => s.to_vec(),
            Op::Conv2d(_)
            | Op::BatchNorm(_)
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::Linear(_)
            | Op::Zero(_)
            | Op::Crop(_)
            | Op::Dropout(_)
            | Op::ChannelMask(_)
            | Op::Embedding(_)
            | Op::Position(_)
            | Op::LayerNorm(_)
            | Op::Attention(_)
            | Op::SeqPool(_)
            | Op::LmHead(_)
            | Op::SeqConv(_) => unreachable!("payload ops answered above"),
        })
    }

    /// Trainable parameters for these input shapes (ops without settings have none).
    pub fn params(&self, inputs: &[&[usize]]) -> u64 {
        self.rules().map_or(0, |r| r.params(inputs))
    }

    /// Multiply-accumulates of one sample for these input shapes and output shape (ops
    /// without settings count none: sums, activations and reshapes are not counted).
    pub fn macs(&self, inputs: &[&[usize]], out: &[usize]) -> u64 {
        self.rules().map_or(0, |r| r.macs(inputs, out))
    }
}

/// One node: an op applied to earlier nodes, with its inferred output shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// What it computes.
    pub op: Op,
    /// The nodes it reads, all earlier in the list.
    pub inputs: Vec<NodeId>,
    /// Output shape without the batch dimension.
    pub shape: Vec<usize>,
    /// Where it sits in the network (`cell3/edge_2_1`), for diagrams and parameter names.
    pub scope: String,
}

/// A network as a DAG of ops in topological order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    nodes: Vec<Node>,
    output: NodeId,
}

impl NetSpec {
    /// The nodes in topological order; node 0 is the input.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The output node.
    pub fn output(&self) -> NodeId {
        self.output
    }

    /// Per node, whether its value reaches the output: the output does, and so do the inputs
    /// of a node that does, except through `Op::Zero` (NAS-Bench-201's `none`, whose zeros
    /// depend only on its input's shape) and except the nodes `off` marks (left out: they
    /// reach nothing; nodes past the end of `off` are not). A training network does not
    /// compute the others; a supernet path computes only these.
    pub fn reaching_output(&self, off: &[bool]) -> Vec<bool> {
        let is_off = |i: NodeId| off.get(i).copied().unwrap_or(false);
        let mut reach = vec![false; self.nodes.len()];
        reach[self.output] = !is_off(self.output);
        for i in (0..self.nodes.len()).rev() {
            if reach[i] && !matches!(self.nodes[i].op, Op::Zero(_)) {
                for &j in &self.nodes[i].inputs {
                    reach[j] = !is_off(j);
                }
            }
        }
        reach
    }

    /// Input shape without the batch dimension.
    pub fn input_shape(&self) -> &[usize] {
        &self.nodes[0].shape
    }

    /// Output shape without the batch dimension.
    pub fn output_shape(&self) -> &[usize] {
        &self.nodes[self.output].shape
    }

    fn input_shapes(&self, id: NodeId) -> Vec<&[usize]> {
        self.nodes[id]
            .inputs
            .iter()
            .map(|&i| &self.nodes[i].shape[..])
            .collect()
    }

    /// The trainable parameters of one node.
    pub fn node_params(&self, id: NodeId) -> u64 {
        self.nodes[id].op.params(&self.input_shapes(id))
    }

    /// The multiply-accumulates of one node for one input sample.
    pub fn node_macs(&self, id: NodeId) -> u64 {
        let node = &self.nodes[id];
        node.op.macs(&self.input_shapes(id), &node.shape)
    }

    /// Whether the input is token ids, read by an [`Op::Embedding`] (the only way a network
    /// gets sequences: every sequence network reads tokens).
    pub fn reads_tokens(&self) -> bool {
        self.token_vocab().is_some()
    }

    /// The vocabulary of the embedding that reads the input as token ids, if one does (the
    /// smallest, when several do: every id must fit them all).
    pub fn token_vocab(&self) -> Option<usize> {
        self.nodes
            .iter()
            .filter_map(|n| match n.op {
                Op::Embedding(ops::Embedding { vocab, .. }) => Some(vocab),
                _ => None,
            })
            .min()
    }

    /// For a tied [`Op::LmHead`] node, the embedding node whose table it reuses.
    pub fn tied_table(&self, head: NodeId) -> Option<NodeId> {
        match self.nodes[head].op {
            Op::LmHead(ops::LmHead { vocab, tied: true }) => {
                let dim = *self.nodes[self.nodes[head].inputs[0]].shape.last()?;
                tied_table(&self.nodes, vocab, dim)
            }
            _ => None,
        }
    }

    /// Total trainable parameters.
    pub fn params(&self) -> u64 {
        (0..self.nodes.len())
            .map(|i| self.node_params(i))
            .fold(0, u64::saturating_add)
    }

    /// Total multiply-accumulates for one input sample.
    pub fn macs(&self) -> u64 {
        (0..self.nodes.len())
            .map(|i| self.node_macs(i))
            .fold(0, u64::saturating_add)
    }

    /// The most activation values alive at once during one forward pass of one sample, nodes
    /// run in their topological order: a node's output lives from its computation until its
    /// last reader has run (the output until the end), and a node's inputs and output are alive
    /// together while it runs. Every op is counted as materialising its output (no aliasing of
    /// identities or in-place ops), so this is an upper bound of an inference engine's need.
    pub fn peak_activations(&self) -> u64 {
        let n = self.nodes.len();
        let mut last_use: Vec<usize> = (0..n).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            for &j in &node.inputs {
                last_use[j] = last_use[j].max(i);
            }
        }
        last_use[self.output] = n;
        let size = |i: usize| ops::volume(&self.nodes[i].shape);
        // Outputs freed after each step.
        let mut freed_after: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
        for (i, &l) in last_use.iter().enumerate() {
            freed_after[l].push(i);
        }
        let (mut live, mut peak) = (0u64, 0u64);
        for (i, freed) in freed_after.iter().take(n).enumerate() {
            live = live.saturating_add(size(i));
            peak = peak.max(live);
            for &j in freed {
                live -= size(j);
            }
        }
        peak
    }

    /// Float32 memory of one batch-1 inference, in MB (10^6 bytes): every parameter plus
    /// [`NetSpec::peak_activations`].
    pub fn peak_memory_mb(&self) -> f64 {
        (self.params() as f64 + self.peak_activations() as f64) * 4.0 / 1e6
    }

    /// How many nodes of each op kind the network has.
    pub fn op_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for n in &self.nodes {
            *counts.entry(n.op.kind()).or_insert(0) += 1;
        }
        counts
    }
}

/// The embedding whose table a tied [`ops::LmHead`] of `vocab` tokens reading width `dim`
/// reuses: the first with that vocabulary and width.
fn tied_table(nodes: &[Node], vocab: usize, dim: usize) -> Option<NodeId> {
    nodes.iter().position(|n| {
        matches!(n.op, Op::Embedding(ops::Embedding { vocab: v, dim: d }) if v == vocab && d == dim)
    })
}

/// Builds a [`NetSpec`] node by node, inferring shapes and rejecting inconsistent graphs.
#[derive(Debug)]
pub struct NetSpecBuilder {
    nodes: Vec<Node>,
    scope: String,
}

impl NetSpecBuilder {
    /// Starts a network whose input has `shape` (`[C, H, W]` or `[F]`).
    pub fn new(shape: &[usize]) -> Result<Self> {
        if shape.is_empty() || shape.len() == 2 || shape.len() > 3 || shape.contains(&0) {
            return Err(Error::invalid(format!(
                "input shape {shape:?} is not [C, H, W] or [F] with positive sizes"
            )));
        }
        Ok(NetSpecBuilder {
            nodes: vec![Node {
                op: Op::Input,
                inputs: vec![],
                shape: shape.to_vec(),
                scope: "input".into(),
            }],
            scope: String::new(),
        })
    }

    /// The input node.
    pub fn input(&self) -> NodeId {
        0
    }

    /// The id the next node added will get.
    pub fn next_id(&self) -> NodeId {
        self.nodes.len()
    }

    /// Sets the scope recorded on the nodes added next (`stage1/cell2`).
    pub fn set_scope(&mut self, scope: impl Into<String>) {
        self.scope = scope.into();
    }

    /// The shape of an existing node.
    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id].shape
    }

    /// The op of an existing node.
    pub fn op(&self, id: NodeId) -> &Op {
        &self.nodes[id].op
    }

    /// Channels (images) or features (vectors) of a node.
    pub fn channels(&self, id: NodeId) -> usize {
        self.nodes[id].shape[0]
    }

    /// Adds a node, inferring its shape.
    pub fn push(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let shape = self.infer(&op, inputs)?;
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            shape,
            scope: self.scope.clone(),
        });
        Ok(self.nodes.len() - 1)
    }

    /// Convolution without bias, dilation 1, one group.
    pub fn conv(
        &mut self,
        x: NodeId,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<NodeId> {
        self.push(
            Op::Conv2d(ops::Conv2d {
                out_channels: out,
                kernel,
                stride,
                padding,
                dilation: 1,
                groups: 1,
                bias: false,
            }),
            &[x],
        )
    }

    /// Affine batch norm.
    pub fn bn(&mut self, x: NodeId) -> Result<NodeId> {
        self.push(Op::BatchNorm(ops::BatchNorm { affine: true }), &[x])
    }

    /// Max pooling with a `kernel`×`kernel` window.
    pub fn max_pool(
        &mut self,
        x: NodeId,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<NodeId> {
        let pool = ops::MaxPool {
            kernel,
            stride,
            padding,
        };
        self.push(Op::MaxPool(pool), &[x])
    }

    /// Average pooling with a `kernel`×`kernel` window over the pixels inside the image
    /// (padding not counted).
    pub fn avg_pool(
        &mut self,
        x: NodeId,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<NodeId> {
        let pool = ops::AvgPool {
            kernel,
            stride,
            padding,
            count_include_pad: false,
        };
        self.push(Op::AvgPool(pool), &[x])
    }

    /// ReLU.
    pub fn relu(&mut self, x: NodeId) -> Result<NodeId> {
        self.push(Op::Relu, &[x])
    }

    /// Sum of `xs`; a single input is returned as it is.
    pub fn add(&mut self, xs: &[NodeId]) -> Result<NodeId> {
        match xs {
            [] => Err(Error::invalid("add of no inputs")),
            [x] => Ok(*x),
            _ => self.push(Op::Add, xs),
        }
    }

    fn fail(&self, op: &Op, msg: String) -> Error {
        Error::invalid(format!(
            "cannot build {} at `{}`: {msg}",
            op.kind(),
            self.scope
        ))
    }

    fn infer(&self, op: &Op, inputs: &[NodeId]) -> Result<Vec<usize>> {
        for &i in inputs {
            if i >= self.nodes.len() {
                return Err(self.fail(op, format!("input node {i} does not exist yet")));
            }
        }
        match op.arity() {
            None if inputs.is_empty() => {
                return Err(self.fail(op, "needs at least one input".into()));
            }
            Some(n) if inputs.len() != n => {
                return Err(self.fail(op, format!("takes {n} input(s), got {}", inputs.len())));
            }
            _ => {}
        }
        let shapes: Vec<&[usize]> = inputs.iter().map(|&i| &self.nodes[i].shape[..]).collect();
        let out = op.infer(&shapes).map_err(|msg| self.fail(op, msg))?;
        // What the shapes alone do not say: an embedding reads the token ids of the input, and
        // a tied head needs the embedding whose table it shares.
        match *op {
            Op::Embedding(_) if inputs != [0] => Err(self.fail(
                op,
                "reads the network's input (token ids), not another node".into(),
            )),
            Op::LmHead(ops::LmHead { vocab, tied: true })
                if tied_table(&self.nodes, vocab, shapes[0][1]).is_none() =>
            {
                Err(self.fail(
                    op,
                    format!(
                        "a tied head needs an embedding of {vocab} tokens and width {} before it",
                        shapes[0][1]
                    ),
                ))
            }
            _ => Ok(out),
        }
    }

    /// Ends the network at `output`.
    pub fn finish(self, output: NodeId) -> NetSpec {
        NetSpec {
            nodes: self.nodes,
            output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_shapes_params_and_macs() {
        let mut b = NetSpecBuilder::new(&[3, 32, 32]).unwrap();
        let x = b.conv(0, 16, 3, 1, 1).unwrap();
        let y = b.bn(x).unwrap();
        let z = b.conv(y, 32, 3, 2, 1).unwrap();
        let g = b.push(Op::GlobalAvgPool, &[z]).unwrap();
        let out = b
            .push(
                Op::Linear(ops::Linear {
                    out_features: 10,
                    bias: true,
                }),
                &[g],
            )
            .unwrap();
        let net = b.finish(out);
        assert_eq!(net.nodes()[z].shape, vec![32, 16, 16]);
        assert_eq!(net.params(), 432 + 32 + 16 * 32 * 9 + 330);
        assert_eq!(net.macs(), 1024 * 16 * 27 + 256 * 32 * 16 * 9 + 320);
        assert_eq!(net.output_shape(), &[10]);
    }

    #[test]
    fn depthwise_and_dilated_convs() {
        let mut b = NetSpecBuilder::new(&[8, 16, 16]).unwrap();
        let op = Op::Conv2d(ops::Conv2d {
            out_channels: 8,
            kernel: 5,
            stride: 1,
            padding: 4,
            dilation: 2,
            groups: 8,
            bias: false,
        });
        let x = b.push(op, &[0]).unwrap();
        let net = b.finish(x);
        assert_eq!(net.nodes()[x].shape, vec![8, 16, 16]);
        assert_eq!(net.params(), 8 * 25);
        assert_eq!(net.macs(), 8 * 256 * 25);
    }

    #[test]
    fn bad_graphs_are_errors() {
        let mut b = NetSpecBuilder::new(&[3, 4, 4]).unwrap();
        let a = b.conv(0, 8, 3, 1, 1).unwrap();
        let c = b.conv(0, 4, 3, 1, 1).unwrap();
        assert!(b.push(Op::Add, &[a, c]).is_err());
        assert!(b.conv(0, 8, 7, 1, 0).is_err());
        assert!(b
            .push(
                Op::Linear(ops::Linear {
                    out_features: 2,
                    bias: true
                }),
                &[a]
            )
            .is_err());
        assert!(NetSpecBuilder::new(&[3, 4]).is_err());
    }

    /// nanoGPT's GPT (its `config/train_shakespeare_char.py` at the documented CPU size):
    /// `layers` pre-norm blocks of width `d`, `heads` heads, block `t`, vocabulary `v`, biases
    /// everywhere but the tied head.
    pub(crate) fn gpt(v: usize, t: usize, d: usize, heads: usize, layers: usize) -> NetSpec {
        let mut b = NetSpecBuilder::new(&[t]).unwrap();
        let e = b
            .push(Op::Embedding(ops::Embedding { vocab: v, dim: d }), &[0])
            .unwrap();
        let learned = ops::Position {
            encoding: ops::Encoding::Learned,
        };
        let mut x = b.push(Op::Position(learned), &[e]).unwrap();
        let ln = Op::LayerNorm(ops::LayerNorm { affine: true });
        let lin = |out| {
            Op::Linear(ops::Linear {
                out_features: out,
                bias: true,
            })
        };
        for _ in 0..layers {
            let n = b.push(ln.clone(), &[x]).unwrap();
            let attention = ops::Attention {
                heads,
                causal: true,
                bias: true,
            };
            let a = b.push(Op::Attention(attention), &[n]).unwrap();
            x = b.add(&[x, a]).unwrap();
            let n = b.push(ln.clone(), &[x]).unwrap();
            let h = b.push(lin(4 * d), &[n]).unwrap();
            let h = b.push(Op::Gelu, &[h]).unwrap();
            let h = b.push(lin(d), &[h]).unwrap();
            x = b.add(&[x, h]).unwrap();
        }
        let n = b.push(ln, &[x]).unwrap();
        let head = ops::LmHead {
            vocab: v,
            tied: true,
        };
        let out = b.push(Op::LmHead(head), &[n]).unwrap();
        b.finish(out)
    }

    #[test]
    fn a_gpt_counts_like_nanogpt() {
        let net = gpt(65, 64, 128, 4, 4);
        assert_eq!(net.output_shape(), &[64, 65]);
        // Embeddings 65·128 + 64·128; per layer two norms (2·256), attention 4·128² + 4·128,
        // MLP 128·512 + 512 + 512·128 + 128; the final norm 256; the tied head nothing.
        // nanoGPT prints 0.80M: the same total less the 8,192 position parameters.
        let layer = 2 * 256 + (4 * 128 * 128 + 4 * 128) + (2 * 128 * 512 + 512 + 128);
        assert_eq!(net.params(), 65 * 128 + 64 * 128 + 4 * layer + 256);
        assert_eq!(net.params(), 809_856);
        // Per layer: projections 4·T·D², scores and weighted sum 2·T²·D, MLP 2·T·D·4D; the
        // head T·D·V.
        let layer_macs = 4 * 64 * 128 * 128 + 2 * 64 * 64 * 128 + 2 * 64 * 128 * 512;
        assert_eq!(net.macs(), 4 * layer_macs + 64 * 128 * 65);
        let untied = {
            let mut net = net.clone();
            let last = net.nodes.len() - 1;
            net.nodes[last].op = Op::LmHead(ops::LmHead {
                vocab: 65,
                tied: false,
            });
            net
        };
        assert_eq!(untied.params(), 809_856 + 65 * 128);
        assert_eq!(net.tied_table(net.output()), Some(1));
    }

    #[test]
    fn sequence_ops_check_their_shapes() {
        let mut b = NetSpecBuilder::new(&[16]).unwrap();
        let lin = Op::Linear(ops::Linear {
            out_features: 8,
            bias: true,
        });
        // A linear on token ids is a linear on a vector: allowed. Attention needs [T, D].
        let attention = |heads| {
            Op::Attention(ops::Attention {
                heads,
                causal: false,
                bias: false,
            })
        };
        assert!(b.push(attention(1), &[0]).is_err());
        let e = b
            .push(Op::Embedding(ops::Embedding { vocab: 10, dim: 12 }), &[0])
            .unwrap();
        assert_eq!(b.shape(e), &[16, 12]);
        let embed = Op::Embedding(ops::Embedding { vocab: 10, dim: 4 });
        let copy = b.push(Op::Identity, &[0]).unwrap();
        assert!(
            b.push(embed, &[copy]).is_err(),
            "an embedding reads the input only"
        );
        assert!(b.push(attention(5), &[e]).is_err(), "5 heads of 12");
        let a = b.push(attention(3), &[e]).unwrap();
        assert!(b.push(Op::Concat, &[e, a]).is_err());
        assert!(b
            .push(Op::BatchNorm(ops::BatchNorm { affine: true }), &[a])
            .is_err());
        assert!(b.push(Op::GlobalAvgPool, &[a]).is_err());
        let even = ops::SeqConv {
            kernel: 4,
            causal: false,
        };
        assert!(b.push(Op::SeqConv(even.clone()), &[a]).is_err());
        let c = b
            .push(
                Op::SeqConv(ops::SeqConv {
                    causal: true,
                    ..even
                }),
                &[a],
            )
            .unwrap();
        let l = b.push(lin, &[c]).unwrap();
        assert_eq!(b.shape(l), &[16, 8]);
        let tied = ops::LmHead {
            vocab: 10,
            tied: true,
        };
        assert!(
            b.push(Op::LmHead(tied.clone()), &[l]).is_err(),
            "width 8, table 12"
        );
        let p = b
            .push(
                Op::SeqPool(ops::SeqPool {
                    mode: ops::Pooling::Mean,
                }),
                &[c],
            )
            .unwrap();
        assert_eq!(b.shape(p), &[12]);
        let net = b.finish(p);
        // Embedding 120; attention 4·144; depthwise conv 12·4 + 12; the linear 12·8 + 8.
        assert_eq!(net.params(), 120 + 4 * 144 + 60 + 104);
        assert_eq!(
            net.macs(),
            (4 * 16 * 144 + 2 * 16 * 16 * 12) + 16 * 12 * 4 + 16 * 12 * 8
        );
    }

    #[test]
    fn ops_round_trip_through_json_with_the_old_layout() {
        let conv = Op::Conv2d(ops::Conv2d {
            out_channels: 4,
            kernel: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
            groups: 1,
            bias: false,
        });
        let json = serde_json::to_string(&conv).unwrap();
        assert_eq!(
            json,
            r#"{"op":"conv2d","out_channels":4,"kernel":3,"stride":1,"padding":1,"dilation":1,"groups":1,"bias":false}"#
        );
        let net = gpt(5, 4, 8, 2, 1);
        let text = serde_json::to_string(&net).unwrap();
        assert!(
            text.contains(r#"{"op":"position","encoding":"learned"}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<NetSpec>(&text).unwrap(), net);
    }
}
