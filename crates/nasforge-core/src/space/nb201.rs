//! The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020).
//!
//! A cell is a DAG of 4 nodes; each of its 6 edges `j <- i` (i < j) carries one of five ops.
//! The network: a 3x3 conv + BN stem, three stages of N cells with C, 2C, 4C channels, a
//! residual reduction block between stages, then BN-ReLU, global average pooling and a linear
//! classifier.

use super::{Arch, CellGraph, Choice, Space, MAX_CLASSES, MAX_DEPTH, MAX_WIDTH};
use crate::netspec::ops;
use crate::netspec::supernet::{Mixed, SuperSpec};
use crate::netspec::{NetSpec, NetSpecBuilder, NodeId, Op};
use crate::params::Params;
use crate::{Error, Result};

/// The five NAS-Bench-201 ops, in the benchmark's order.
pub const NB201_OPS: [&str; 5] = [
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
];

/// The edges `(to, from)` in the order of the benchmark's string form.
const EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

/// The functional class of a NAS-Bench-201 cell (its six edge values, in the string form's
/// order), as NAS-Bench-201 counts unique cells: the cell's output written as an expression of
/// its input, where `skip_connect` is the identity (its term is its input's expression), `none`
/// or an input that is zero gives a zero term, every other op applies to its input's
/// expression, and a node sums its terms in sorted order. Cells of one class compute the same
/// function of their input up to the order of their weights (not always the converse: a zero
/// term stays in its sum); the 15,625 cells fall into 6,466 classes, the benchmark's count of
/// unique cells. Ranking studies count each class once ("sparse" Kendall τ).
pub fn cell_class(values: &[u16; 6]) -> String {
    const ZERO: &str = "#";
    let mut nodes = vec!["0".to_string()];
    for to in 1..4 {
        let mut terms: Vec<String> = EDGES
            .iter()
            .zip(values)
            .filter(|((t, _), _)| *t == to)
            .map(|(&(_, from), &op)| match NB201_OPS[op as usize] {
                "none" => ZERO.to_string(),
                _ if nodes[from] == ZERO => ZERO.to_string(),
                "skip_connect" => nodes[from].clone(),
                name => format!("({})@{name}", nodes[from]),
            })
            .collect();
        terms.sort();
        nodes.push(terms.join("+"));
    }
    nodes.pop().expect("four nodes")
}

/// The NAS-Bench-201 space. Parameters: `channels` (C, 16), `cells` (N per stage, 5),
/// `input` (HxWxC, 32x32x3), `classes` (10).
#[derive(Clone, Debug)]
pub struct Nb201Space {
    choices: Vec<Choice>,
    channels: usize,
    cells: usize,
    input: [usize; 3],
    classes: usize,
}

impl Nb201Space {
    /// The space with its published sizes.
    pub fn new() -> Self {
        Self::from_params(&Params::new()).expect("defaults are valid")
    }

    /// The space with sizes from `params`.
    pub fn from_params(params: &Params) -> Result<Self> {
        let channels = params.usize_at_most("channels", 16, MAX_WIDTH)?;
        let cells = params.usize_at_most("cells", 5, MAX_DEPTH)?;
        let input = params.input_shape(&[32, 32, 3])?;
        let classes = params.usize_at_most("classes", 10, MAX_CLASSES)?;
        params.finish("nb201")?;
        if input.len() != 3 {
            return Err(Error::invalid(
                "space `nb201` needs an image input HxWxC, for example input=32x32x3",
            ));
        }
        let choices = EDGES
            .iter()
            .map(|(to, from)| Choice::new(format!("edge_{to}_{from}"), &NB201_OPS))
            .collect();
        Ok(Nb201Space {
            choices,
            channels,
            cells,
            input: [input[2], input[0], input[1]],
            classes,
        })
    }

    fn edge_op(&self, b: &mut NetSpecBuilder, x: NodeId, op: u16) -> Result<NodeId> {
        let c = b.channels(x);
        match NB201_OPS[op as usize] {
            "none" => b.push(Op::Zero(ops::Zero { stride: 1 }), &[x]),
            "skip_connect" => b.push(Op::Identity, &[x]),
            "nor_conv_1x1" => relu_conv_bn(b, x, c, 1, 1, 0),
            "nor_conv_3x3" => relu_conv_bn(b, x, c, 3, 1, 1),
            "avg_pool_3x3" => b.avg_pool(x, 3, 1, 1),
            other => unreachable!("unknown nb201 op {other}"),
        }
    }
}

impl Default for Nb201Space {
    fn default() -> Self {
        Self::new()
    }
}

/// ReLU -> conv (no bias) -> BN, the convolution unit of NAS-Bench-201 and DARTS.
pub(crate) fn relu_conv_bn(
    b: &mut NetSpecBuilder,
    x: NodeId,
    out: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<NodeId> {
    let r = b.relu(x)?;
    let c = b.conv(r, out, k, stride, pad)?;
    b.bn(c)
}

impl Space for Nb201Space {
    fn cells(&self, arch: &Arch) -> Vec<CellGraph> {
        let v = arch.values();
        vec![CellGraph {
            title: "cell (every cell of the network)".into(),
            nodes: (0..4).map(|n| format!("node {n}")).collect(),
            edges: EDGES
                .iter()
                .zip(v)
                .map(|(&(to, from), &op)| (from, to, NB201_OPS[op as usize].to_string()))
                .collect(),
        }]
    }

    fn name(&self) -> &str {
        "nb201"
    }

    /// Paths from the cell input (node 0) to its output (node 3): 0→3, 0→1→3, 0→2→3, 0→1→2→3,
    /// as edge indices into [`EDGES`]; a path exists when none of its edges is `none`. With four
    /// real ops that is 4 + 16 + 16 + 64 = 100 indicators.
    fn path_encoding(&self, arch: &Arch) -> Option<Vec<f32>> {
        const PATHS: [&[usize]; 4] = [&[3], &[0, 4], &[1, 5], &[0, 2, 5]];
        let real = NB201_OPS.len() - 1;
        let mut out = Vec::with_capacity(100);
        for path in PATHS {
            let mut index = 0;
            let mut present = true;
            for &edge in path {
                let op = arch.values[edge] as usize;
                present &= op != 0;
                index = index * real + op.saturating_sub(1);
            }
            let start = out.len();
            out.resize(start + real.pow(path.len() as u32), 0.0);
            if present {
                out[start + index] = 1.0;
            }
        }
        Some(out)
    }

    fn choices(&self) -> &[Choice] {
        &self.choices
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!({
            "channels": self.channels,
            "cells": self.cells,
            "input": format!("{}x{}x{}", self.input[1], self.input[2], self.input[0]),
            "classes": self.classes,
        })
    }

    /// `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, NAS-Bench-201's own form.
    fn format(&self, arch: &Arch) -> String {
        let v = arch.values();
        let op = |i: usize| NB201_OPS[v[i] as usize];
        format!(
            "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|",
            op(0),
            op(1),
            op(2),
            op(3),
            op(4),
            op(5)
        )
    }

    fn parse(&self, text: &str) -> Result<Arch> {
        let example = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
        let bad = |why: String| {
            Error::invalid(format!(
                "`{text}` is not a NAS-Bench-201 cell: {why}; expected the form {example}"
            ))
        };
        let nodes: Vec<&str> = text.trim().split('+').collect();
        if nodes.len() != 3 {
            return Err(bad(format!(
                "found {} node groups separated by `+`, expected 3",
                nodes.len()
            )));
        }
        let mut values = Vec::with_capacity(6);
        for (j, group) in nodes.iter().enumerate() {
            let g = group.trim();
            let inner = g
                .strip_prefix('|')
                .and_then(|s| s.strip_suffix('|'))
                .ok_or_else(|| bad(format!("node group `{g}` must start and end with `|`")))?;
            let edges: Vec<&str> = inner.split('|').collect();
            if edges.len() != j + 1 {
                return Err(bad(format!(
                    "node {} takes {} edges, found {}",
                    j + 1,
                    j + 1,
                    edges.len()
                )));
            }
            for (i, e) in edges.iter().enumerate() {
                let (op, from) = e
                    .split_once('~')
                    .ok_or_else(|| bad(format!("edge `{e}` is not `op~input`")))?;
                if from.parse::<usize>().ok() != Some(i) {
                    return Err(bad(format!(
                        "edge `{e}` of node {} should read from node {i}",
                        j + 1
                    )));
                }
                let k = NB201_OPS.iter().position(|o| *o == op).ok_or_else(|| {
                    bad(format!(
                        "`{op}` is not an op; choose one of {}",
                        NB201_OPS.join(", ")
                    ))
                })?;
                values.push(k as u16);
            }
        }
        self.arch_from_values(&values)
    }

    fn decode(&self, arch: &Arch) -> Result<NetSpec> {
        let v = arch.values();
        self.build(&mut |b, x, e| self.edge_op(b, x, v[e]))
    }

    /// Every edge of every cell a mixed module of the five ops, summed.
    fn supernet(&self) -> Result<SuperSpec> {
        let mut mixed = Vec::new();
        let spec = self.build(&mut |b, x, e| {
            let module = Mixed::build(b, e, x, NB201_OPS.len(), &mut |b, x, op| {
                self.edge_op(b, x, op as u16)
            })?;
            let output = module.output;
            mixed.push(module);
            Ok(output)
        })?;
        let options = self.choices.iter().map(|c| c.options.len()).collect();
        SuperSpec::new(spec, mixed, options)
    }
}

impl Nb201Space {
    /// The network with `edge(builder, input, edge index)` building each cell edge: one op for
    /// an arch ([`Space::decode`]), all five for the supernet.
    fn build(
        &self,
        edge: &mut dyn FnMut(&mut NetSpecBuilder, NodeId, usize) -> Result<NodeId>,
    ) -> Result<NetSpec> {
        let mut b = NetSpecBuilder::new(&self.input)?;
        let c = self.channels;
        b.set_scope("stem");
        let x = b.conv(0, c, 3, 1, 1)?;
        let mut x = b.bn(x)?;
        for stage in 0..3 {
            let width = c << stage;
            if stage > 0 {
                b.set_scope(format!("reduce{stage}"));
                // ResNet basic block with stride 2 and an avg-pool + 1x1 conv shortcut.
                let a = relu_conv_bn(&mut b, x, width, 3, 2, 1)?;
                let a = relu_conv_bn(&mut b, a, width, 3, 1, 1)?;
                let p = b.avg_pool(x, 2, 2, 0)?;
                let s = b.conv(p, width, 1, 1, 0)?;
                x = b.add(&[a, s])?;
            }
            for cell in 0..self.cells {
                let scope = format!("stage{stage}/cell{cell}");
                let mut nodes = vec![x];
                for to in 1..4 {
                    let mut terms = Vec::new();
                    for (e, &(t, from)) in EDGES.iter().enumerate() {
                        if t == to {
                            b.set_scope(format!("{scope}/edge_{to}_{from}"));
                            terms.push(edge(&mut b, nodes[from], e)?);
                        }
                    }
                    b.set_scope(format!("{scope}/node{to}"));
                    nodes.push(b.add(&terms)?);
                }
                x = nodes[3];
            }
        }
        b.set_scope("head");
        let x = b.bn(x)?;
        let x = b.relu(x)?;
        let x = b.push(Op::GlobalAvgPool, &[x])?;
        let out = b.push(
            Op::Linear(ops::Linear {
                out_features: self.classes,
                bias: true,
            }),
            &[x],
        )?;
        Ok(b.finish(out))
    }
}
