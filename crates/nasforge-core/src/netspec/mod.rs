//! NetSpec: the backend-free graph IR of a network.
//!
//! A [`NetSpec`] is a DAG of [`Node`]s in topological order (node 0 is the input, the last
//! node added with [`NetSpecBuilder::finish`] is the output). Shapes are inferred as nodes are
//! added, without the batch dimension: `[C, H, W]` for images, `[F]` for vectors. Parameter and
//! multiply-accumulate (MAC) counts, the model builder, the ONNX exporter and the diagrams all
//! read this one structure.
//!
//! Counting conventions (those of NAS-Bench-201's published figures): parameters are the
//! trainable ones (convolution and linear weights and biases, batch-norm scale and shift);
//! batch-norm running statistics are buffers, not parameters. MACs are the multiply-accumulates
//! of convolutions and linear layers (weights only); batch norm, activations, pooling, additions
//! and concatenations are not counted.

mod diagram;
pub mod supernet;

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Index of a node in its [`NetSpec`].
pub type NodeId = usize;

/// What a node computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The network input (node 0 only).
    Input,
    /// 2-D convolution (square kernel).
    Conv2d {
        /// Output channels.
        out_channels: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
        /// Dilation.
        dilation: usize,
        /// Groups (`groups == in_channels` is a depthwise convolution).
        groups: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// Batch normalisation over channels (images) or features (vectors).
    BatchNorm {
        /// Whether it has a learned scale and shift.
        affine: bool,
    },
    /// ReLU.
    Relu,
    /// GELU.
    Gelu,
    /// tanh.
    Tanh,
    /// SiLU (swish).
    Silu,
    /// Max pooling.
    MaxPool {
        /// Window size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding on each side (padded cells never win).
        padding: usize,
    },
    /// Average pooling.
    AvgPool {
        /// Window size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding on each side.
        padding: usize,
        /// Whether padded cells count in the divisor (NAS-Bench-201 and DARTS: no).
        count_include_pad: bool,
    },
    /// Global average pooling: `[C, H, W] -> [C]`.
    GlobalAvgPool,
    /// Flattens `[C, H, W]` to `[C*H*W]`.
    Flatten,
    /// Fully connected layer on vectors.
    Linear {
        /// Output features.
        out_features: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// Element-wise sum of its inputs (same shape).
    Add,
    /// Concatenation of its inputs along channels (images) or features (vectors).
    Concat,
    /// Passes its input through.
    Identity,
    /// Zeros of its input's shape, subsampled by `stride` (NAS-Bench-201's `none`).
    Zero {
        /// Spatial stride.
        stride: usize,
    },
    /// Drops the first `offset` rows and columns (the shifted path of DARTS's factorized reduce).
    Crop {
        /// Rows and columns dropped at the top and left.
        offset: usize,
    },
    /// Dropout with probability `p` while training; identity at inference.
    Dropout {
        /// Drop probability.
        p: f64,
    },
    /// Keeps the first `keep` channels (features) and zeros the rest: a supernet's elastic
    /// width. Only supernets hold it; extracting a sub-network narrows the layer before it
    /// instead ([`supernet::SuperSpec::sub_network`]).
    ChannelMask {
        /// Channels kept.
        keep: usize,
    },
}

impl Op {
    /// A short type name (`conv2d`, `batch_norm`, ...) used in op counts and diagrams.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d { .. } => "conv2d",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Gelu => "gelu",
            Op::Tanh => "tanh",
            Op::Silu => "silu",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Flatten => "flatten",
            Op::Linear { .. } => "linear",
            Op::Add => "add",
            Op::Concat => "concat",
            Op::Identity => "identity",
            Op::Zero { .. } => "zero",
            Op::Crop { .. } => "crop",
            Op::Dropout { .. } => "dropout",
            Op::ChannelMask { .. } => "channel_mask",
        }
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

    /// Input shape without the batch dimension.
    pub fn input_shape(&self) -> &[usize] {
        &self.nodes[0].shape
    }

    /// Output shape without the batch dimension.
    pub fn output_shape(&self) -> &[usize] {
        &self.nodes[self.output].shape
    }

    /// The trainable parameters of one node.
    pub fn node_params(&self, id: NodeId) -> u64 {
        let node = &self.nodes[id];
        let in_shape = node.inputs.first().map(|&i| &self.nodes[i].shape);
        let in_c = in_shape.map(|s| s[0] as u64).unwrap_or(0);
        match node.op {
            Op::Conv2d {
                out_channels,
                kernel,
                groups,
                bias,
                ..
            } => {
                // Saturating: a size typed by mistake must give a huge count, not a panic.
                let out = out_channels as u64;
                out.saturating_mul(in_c / groups as u64)
                    .saturating_mul((kernel as u64).saturating_mul(kernel as u64))
                    .saturating_add(if bias { out } else { 0 })
            }
            Op::BatchNorm { affine: true } => in_c.saturating_mul(2),
            Op::Linear { out_features, bias } => {
                let out = out_features as u64;
                out.saturating_mul(in_c)
                    .saturating_add(if bias { out } else { 0 })
            }
            _ => 0,
        }
    }

    /// The multiply-accumulates of one node for one input sample.
    pub fn node_macs(&self, id: NodeId) -> u64 {
        let node = &self.nodes[id];
        match node.op {
            Op::Conv2d { kernel, groups, .. } => {
                let in_c = self.nodes[node.inputs[0]].shape[0] as u64;
                let out = node
                    .shape
                    .iter()
                    .fold(1u64, |acc, &d| acc.saturating_mul(d as u64));
                out.saturating_mul(in_c / groups as u64)
                    .saturating_mul((kernel as u64).saturating_mul(kernel as u64))
            }
            Op::Linear { out_features, .. } => {
                let in_f = self.nodes[node.inputs[0]].shape[0] as u64;
                in_f.saturating_mul(out_features as u64)
            }
            _ => 0,
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
        let size = |i: usize| -> u64 {
            self.nodes[i]
                .shape
                .iter()
                .fold(1u64, |a, &d| a.saturating_mul(d as u64))
        };
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
            Op::Conv2d {
                out_channels: out,
                kernel,
                stride,
                padding,
                dilation: 1,
                groups: 1,
                bias: false,
            },
            &[x],
        )
    }

    /// Affine batch norm.
    pub fn bn(&mut self, x: NodeId) -> Result<NodeId> {
        self.push(Op::BatchNorm { affine: true }, &[x])
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
            "cannot build {} at `{}`: {msg} (is the input too small for this network's reductions?)",
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
        let want_inputs = match op {
            Op::Input => 0,
            Op::Add | Op::Concat => usize::MAX,
            _ => 1,
        };
        if want_inputs == usize::MAX {
            if inputs.is_empty() {
                return Err(self.fail(op, "needs at least one input".into()));
            }
        } else if inputs.len() != want_inputs {
            return Err(self.fail(
                op,
                format!("takes {want_inputs} input(s), got {}", inputs.len()),
            ));
        }
        if let Op::Input = op {
            return Err(self.fail(
                op,
                "the input node is created by NetSpecBuilder::new".into(),
            ));
        }
        let s = &self.nodes[inputs[0]].shape;
        let image = |s: &[usize]| -> Result<(usize, usize, usize)> {
            if s.len() == 3 {
                Ok((s[0], s[1], s[2]))
            } else {
                Err(self.fail(op, format!("needs an image [C, H, W], got {s:?}")))
            }
        };
        let window = |size: usize,
                      k: usize,
                      stride: usize,
                      pad: usize,
                      dil: usize|
         -> Result<usize> {
            let span = dil * (k - 1) + 1;
            if stride == 0 || k == 0 || size + 2 * pad < span {
                return Err(self.fail(op, format!("a {k}x{k} window (dilation {dil}) does not fit a side of {size} with padding {pad}")));
            }
            Ok((size + 2 * pad - span) / stride + 1)
        };
        Ok(match *op {
            Op::Input => unreachable!("handled above"),
            Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                ..
            } => {
                let (c, h, w) = image(s)?;
                if groups == 0 || c % groups != 0 || out_channels % groups != 0 {
                    return Err(self.fail(
                        op,
                        format!("{groups} groups do not divide {c} -> {out_channels} channels"),
                    ));
                }
                vec![
                    out_channels,
                    window(h, kernel, stride, padding, dilation)?,
                    window(w, kernel, stride, padding, dilation)?,
                ]
            }
            Op::MaxPool {
                kernel,
                stride,
                padding,
            }
            | Op::AvgPool {
                kernel,
                stride,
                padding,
                ..
            } => {
                let (c, h, w) = image(s)?;
                if 2 * padding > kernel {
                    return Err(self.fail(
                        op,
                        format!("padding {padding} is more than half the {kernel}x{kernel} window"),
                    ));
                }
                vec![
                    c,
                    window(h, kernel, stride, padding, 1)?,
                    window(w, kernel, stride, padding, 1)?,
                ]
            }
            Op::Zero { stride } => {
                if stride <= 1 {
                    s.clone()
                } else {
                    let (c, h, w) = image(s)?;
                    vec![c, h.div_ceil(stride), w.div_ceil(stride)]
                }
            }
            Op::Crop { offset } => {
                let (c, h, w) = image(s)?;
                if offset >= h || offset >= w {
                    return Err(
                        self.fail(op, format!("cannot drop {offset} rows of a {h}x{w} image"))
                    );
                }
                vec![c, h - offset, w - offset]
            }
            Op::GlobalAvgPool => {
                let (c, _, _) = image(s)?;
                vec![c]
            }
            Op::Flatten => vec![s.iter().product()],
            Op::Linear { out_features, .. } => {
                if s.len() != 1 {
                    return Err(self.fail(
                        op,
                        format!(
                            "needs a vector [F], got {s:?}; add global pooling or flatten first"
                        ),
                    ));
                }
                vec![out_features]
            }
            Op::Add => {
                for &i in &inputs[1..] {
                    if self.nodes[i].shape != *s {
                        return Err(self.fail(
                            op,
                            format!("shapes differ: {s:?} and {:?}", self.nodes[i].shape),
                        ));
                    }
                }
                s.clone()
            }
            Op::Concat => {
                let mut out = s.clone();
                for &i in &inputs[1..] {
                    let t = &self.nodes[i].shape;
                    if t.len() != s.len() || t[1..] != s[1..] {
                        return Err(self.fail(
                            op,
                            format!("shapes differ beyond channels: {s:?} and {t:?}"),
                        ));
                    }
                    out[0] += t[0];
                }
                out
            }
            Op::BatchNorm { .. }
            | Op::Relu
            | Op::Gelu
            | Op::Tanh
            | Op::Silu
            | Op::Identity
            | Op::Dropout { .. } => s.clone(),
            Op::ChannelMask { keep } => {
                if keep == 0 || keep > s[0] {
                    return Err(self.fail(op, format!("cannot keep {keep} of {} channels", s[0])));
                }
                s.clone()
            }
        })
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
                Op::Linear {
                    out_features: 10,
                    bias: true,
                },
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
        let op = Op::Conv2d {
            out_channels: 8,
            kernel: 5,
            stride: 1,
            padding: 4,
            dilation: 2,
            groups: 8,
            bias: false,
        };
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
                Op::Linear {
                    out_features: 2,
                    bias: true
                },
                &[a]
            )
            .is_err());
        assert!(NetSpecBuilder::new(&[3, 4]).is_err());
    }
}
