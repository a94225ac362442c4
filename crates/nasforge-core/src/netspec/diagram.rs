//! Text and Graphviz DOT drawings of a [`NetSpec`].

use super::ops;
use super::{NetSpec, Op};
use std::fmt::Write;

/// A one-line description of an op (`conv2d 3x3/s2 p1 16->32`).
pub fn describe(op: &Op, in_channels: usize) -> String {
    match *op {
        Op::Conv2d(ops::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            bias,
        }) => {
            let mut s = format!(
                "conv2d {kernel}x{kernel}/s{stride} p{padding} {in_channels}->{out_channels}"
            );
            if dilation > 1 {
                let _ = write!(s, " dil{dilation}");
            }
            if groups > 1 {
                let _ = write!(s, " groups{groups}");
            }
            if bias {
                s.push_str(" +bias");
            }
            s
        }
        Op::MaxPool(ops::MaxPool {
            kernel,
            stride,
            padding,
        }) => format!("max_pool {kernel}x{kernel}/s{stride} p{padding}"),
        Op::AvgPool(ops::AvgPool {
            kernel,
            stride,
            padding,
            count_include_pad,
        }) => format!(
            "avg_pool {kernel}x{kernel}/s{stride} p{padding}{}",
            if count_include_pad {
                ""
            } else {
                " (pad not counted)"
            }
        ),
        Op::Linear(ops::Linear { out_features, bias }) => {
            format!(
                "linear {in_channels}->{out_features}{}",
                if bias { " +bias" } else { "" }
            )
        }
        Op::BatchNorm(ops::BatchNorm { affine }) => {
            format!("batch_norm{}", if affine { "" } else { " (no affine)" })
        }
        Op::Zero(ops::Zero { stride }) if stride > 1 => format!("zero /s{stride}"),
        Op::Crop(ops::Crop { offset }) => format!("crop {offset}"),
        Op::Dropout(ops::Dropout { p }) => format!("dropout {p}"),
        Op::ChannelMask(ops::ChannelMask { keep }) => format!("keep {keep} of {in_channels}"),
        Op::Embedding(ops::Embedding { vocab, dim }) => format!("embedding {vocab}->{dim}"),
        Op::Position(ops::Position { encoding }) => format!(
            "position {}",
            match encoding {
                ops::Encoding::Learned => "learned",
                ops::Encoding::Sinusoidal => "sinusoidal",
            }
        ),
        Op::LayerNorm(ops::LayerNorm { affine }) => {
            format!("layer_norm{}", if affine { "" } else { " (no affine)" })
        }
        Op::Attention(ops::Attention {
            heads,
            causal,
            bias,
        }) => format!(
            "attention {heads} heads{}{}",
            if causal { " causal" } else { "" },
            if bias { " +bias" } else { "" }
        ),
        Op::SeqPool(ops::SeqPool { mode }) => format!(
            "seq_pool {}",
            match mode {
                ops::Pooling::Mean => "mean",
                ops::Pooling::First => "first",
            }
        ),
        Op::LmHead(ops::LmHead { vocab, tied }) => format!(
            "lm_head {in_channels}->{vocab}{}",
            if tied { " tied" } else { "" }
        ),
        Op::SeqConv(ops::SeqConv { kernel, causal }) => format!(
            "seq_conv k{kernel} depthwise{}",
            if causal { " causal" } else { "" }
        ),
        Op::Zero(_)
        | Op::Input
        | Op::Relu
        | Op::Gelu
        | Op::Tanh
        | Op::Silu
        | Op::GlobalAvgPool
        | Op::Flatten
        | Op::Add
        | Op::Concat
        | Op::Identity => op.kind().to_string(),
    }
}

fn shape_str(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

impl NetSpec {
    fn in_channels(&self, id: usize) -> usize {
        self.nodes[id]
            .inputs
            .first()
            .map(|&i| match self.nodes[i].shape[..] {
                [_, d] => d,
                ref s => s[0],
            })
            .unwrap_or(0)
    }

    /// One line per node: id, op, output shape, inputs, parameters, scope.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let inputs = n
                .inputs
                .iter()
                .map(|j| format!("%{j}"))
                .collect::<Vec<_>>()
                .join(", ");
            let params = self.node_params(i);
            let _ = write!(
                out,
                "%{i:<4} {:<38} {:>10}  <- {:<14}",
                describe(&n.op, self.in_channels(i)),
                shape_str(&n.shape),
                if inputs.is_empty() {
                    "-".to_string()
                } else {
                    inputs
                }
            );
            if params > 0 {
                let _ = write!(out, " {params:>8} params");
            } else {
                out.push_str(&" ".repeat(16));
            }
            let _ = writeln!(out, "  {}", n.scope);
        }
        out
    }

    /// Graphviz DOT; nodes are grouped into clusters by the first part of their scope.
    pub fn to_dot(&self) -> String {
        let mut out = String::from(
            "digraph netspec {\n  rankdir=TB;\n  node [shape=box, fontsize=10, style=rounded];\n",
        );
        let mut clusters: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let top = n.scope.split('/').next().unwrap_or("").to_string();
            match clusters.last_mut() {
                Some((name, ids)) if *name == top => ids.push(i),
                _ => clusters.push((top, vec![i])),
            }
        }
        for (c, (name, ids)) in clusters.iter().enumerate() {
            let _ = writeln!(
                out,
                "  subgraph cluster_{c} {{\n    label=\"{}\";",
                escape(name)
            );
            for &i in ids {
                let n = &self.nodes[i];
                let _ = writeln!(
                    out,
                    "    n{i} [label=\"{}\\n{}\"];",
                    escape(&describe(&n.op, self.in_channels(i))),
                    shape_str(&n.shape)
                );
            }
            out.push_str("  }\n");
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for j in &n.inputs {
                let _ = writeln!(out, "  n{j} -> n{i};");
            }
        }
        out.push_str("}\n");
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
