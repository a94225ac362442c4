//! The DARTS cell space (Liu et al., ICLR 2019).
//!
//! Two cell types, normal and reduction. Each has 4 intermediate nodes; node k (numbered 2..5,
//! after the two cell inputs 0 and 1) sums two ops applied to two distinct earlier nodes. The
//! cell outputs the concatenation of nodes 2..5. Choices per cell and node: which pair of
//! inputs, and the op on each (`a` on the lower-numbered input, `b` on the other), so that every
//! distinct cell has exactly one arch.

use super::nb201::relu_conv_bn;
use super::{option_index, Arch, CellGraph, Choice, Space, MAX_CLASSES, MAX_DEPTH, MAX_WIDTH};
use crate::netspec::ops;
use crate::netspec::supernet::{Mixed, SuperSpec};
use crate::netspec::{NetSpec, NetSpecBuilder, NodeId, Op};
use crate::params::Params;
use crate::{Error, Result};

/// The DARTS ops (without `none`, which a derived genotype never holds).
pub const DARTS_OPS: [&str; 7] = [
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
];

const NODES: usize = 4;
const CELL_TYPES: [&str; 2] = ["normal", "reduce"];

/// The DARTS space. Parameters: `channels` (initial C, 36), `layers` (cells, 20), `input`
/// (HxWxC, 32x32x3), `classes` (10). Reduction cells sit at layers/3 and 2*layers/3.
#[derive(Clone, Debug)]
pub struct DartsSpace {
    choices: Vec<Choice>,
    pairs: Vec<Vec<(usize, usize)>>,
    channels: usize,
    layers: usize,
    input: [usize; 3],
    classes: usize,
}

impl DartsSpace {
    /// The space with its published sizes (the CIFAR-10 evaluation network).
    pub fn new() -> Self {
        Self::from_params(&Params::new()).expect("defaults are valid")
    }

    /// The space with sizes from `params`.
    pub fn from_params(params: &Params) -> Result<Self> {
        let channels = params.usize_at_most("channels", 36, MAX_WIDTH)?;
        let layers = params.usize_at_most("layers", 20, MAX_DEPTH)?;
        let input = params.input_shape(&[32, 32, 3])?;
        let classes = params.usize_at_most("classes", 10, MAX_CLASSES)?;
        params.finish("darts")?;
        if input.len() != 3 {
            return Err(Error::invalid(
                "space `darts` needs an image input HxWxC, for example input=32x32x3",
            ));
        }
        if layers < 3 {
            return Err(Error::invalid(
                "space `darts` needs layers >= 3 (two of them are reduction cells)",
            ));
        }
        if channels % 2 != 0 {
            return Err(Error::invalid(
                "space `darts` needs an even `channels` (factorized reduction halves it)",
            ));
        }
        let pairs: Vec<Vec<(usize, usize)>> = (0..NODES)
            .map(|k| {
                let n = k + 2;
                (0..n)
                    .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
                    .collect()
            })
            .collect();
        let mut choices = Vec::new();
        for cell in CELL_TYPES {
            for (k, node_pairs) in pairs.iter().enumerate() {
                let labels: Vec<String> =
                    node_pairs.iter().map(|(i, j)| format!("{i}-{j}")).collect();
                choices.push(Choice::new(format!("{cell}_node{}_inputs", k + 2), &labels));
                choices.push(Choice::new(
                    format!("{cell}_node{}_op_a", k + 2),
                    &DARTS_OPS,
                ));
                choices.push(Choice::new(
                    format!("{cell}_node{}_op_b", k + 2),
                    &DARTS_OPS,
                ));
            }
        }
        Ok(DartsSpace {
            choices,
            pairs,
            channels,
            layers,
            input: [input[2], input[0], input[1]],
            classes,
        })
    }

    /// The edges `(op, input)` of one cell type, node by node.
    fn edges(&self, arch: &Arch, cell: usize) -> Vec<[(usize, usize); 2]> {
        let v = arch.values();
        (0..NODES)
            .map(|k| {
                let base = cell * NODES * 3 + k * 3;
                let (i, j) = self.pairs[k][v[base] as usize];
                [(v[base + 1] as usize, i), (v[base + 2] as usize, j)]
            })
            .collect()
    }

    fn op(&self, b: &mut NetSpecBuilder, x: NodeId, op: usize, stride: usize) -> Result<NodeId> {
        let c = b.channels(x);
        match DARTS_OPS[op] {
            "sep_conv_3x3" => sep_conv(b, x, 3, stride),
            "sep_conv_5x5" => sep_conv(b, x, 5, stride),
            "dil_conv_3x3" => dil_conv(b, x, 3, stride),
            "dil_conv_5x5" => dil_conv(b, x, 5, stride),
            "max_pool_3x3" => b.max_pool(x, 3, stride, 1),
            "avg_pool_3x3" => b.avg_pool(x, 3, stride, 1),
            "skip_connect" if stride == 1 => b.push(Op::Identity, &[x]),
            "skip_connect" => factorized_reduce(b, x, c),
            other => unreachable!("unknown darts op {other}"),
        }
    }
}

impl Default for DartsSpace {
    fn default() -> Self {
        Self::new()
    }
}

/// Depthwise k x k (dilation `dil`) then pointwise 1x1 convolution, no bias.
fn dw_pw(b: &mut NetSpecBuilder, x: NodeId, k: usize, stride: usize, dil: usize) -> Result<NodeId> {
    let c = b.channels(x);
    let dw = b.push(
        Op::Conv2d(ops::Conv2d {
            out_channels: c,
            kernel: k,
            stride,
            padding: dil * (k - 1) / 2,
            dilation: dil,
            groups: c,
            bias: false,
        }),
        &[x],
    )?;
    b.conv(dw, c, 1, 1, 0)
}

/// DARTS's separable conv: (ReLU, depthwise, pointwise, BN) twice, the first with the stride.
fn sep_conv(b: &mut NetSpecBuilder, x: NodeId, k: usize, stride: usize) -> Result<NodeId> {
    let r = b.relu(x)?;
    let y = dw_pw(b, r, k, stride, 1)?;
    let y = b.bn(y)?;
    let r = b.relu(y)?;
    let y = dw_pw(b, r, k, 1, 1)?;
    b.bn(y)
}

/// DARTS's dilated conv: ReLU, depthwise with dilation 2, pointwise, BN.
fn dil_conv(b: &mut NetSpecBuilder, x: NodeId, k: usize, stride: usize) -> Result<NodeId> {
    let r = b.relu(x)?;
    let y = dw_pw(b, r, k, stride, 2)?;
    b.bn(y)
}

/// ReLU, then two stride-2 1x1 convs (one on the input shifted by a pixel) concatenated, BN.
fn factorized_reduce(b: &mut NetSpecBuilder, x: NodeId, out: usize) -> Result<NodeId> {
    let r = b.relu(x)?;
    let a = b.conv(r, out / 2, 1, 2, 0)?;
    let shifted = b.push(Op::Crop(ops::Crop { offset: 1 }), &[r])?;
    let c = b.conv(shifted, out - out / 2, 1, 2, 0)?;
    let cat = b.push(Op::Concat, &[a, c])?;
    b.bn(cat)
}

impl Space for DartsSpace {
    fn cells(&self, arch: &Arch) -> Vec<CellGraph> {
        CELL_TYPES
            .iter()
            .enumerate()
            .map(|(c, kind)| {
                let mut nodes = vec!["c_{k-2}".to_string(), "c_{k-1}".to_string()];
                nodes.extend((0..NODES).map(|k| format!("node {k}")));
                let mut edges = Vec::new();
                for (k, pair) in self.edges(arch, c).iter().enumerate() {
                    for &(op, from) in pair {
                        edges.push((from, k + 2, DARTS_OPS[op].to_string()));
                    }
                }
                CellGraph {
                    title: format!("{kind} cell (output: concat of nodes 0-3)"),
                    nodes,
                    edges,
                }
            })
            .collect()
    }

    fn name(&self) -> &str {
        "darts"
    }

    fn choices(&self) -> &[Choice] {
        &self.choices
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!({
            "channels": self.channels,
            "layers": self.layers,
            "input": format!("{}x{}x{}", self.input[1], self.input[2], self.input[0]),
            "classes": self.classes,
        })
    }

    /// DARTS's genotype form, `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)`.
    fn format(&self, arch: &Arch) -> String {
        let cell = |c: usize| {
            self.edges(arch, c)
                .iter()
                .flat_map(|e| {
                    e.iter()
                        .map(|&(op, i)| format!("('{}', {i})", DARTS_OPS[op]))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "Genotype(normal=[{}], normal_concat=[2, 3, 4, 5], reduce=[{}], reduce_concat=[2, 3, 4, 5])",
            cell(0),
            cell(1)
        )
    }

    fn parse(&self, text: &str) -> Result<Arch> {
        let bad = |why: String| {
            Error::invalid(format!(
                "not a DARTS genotype: {why}; expected Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...8 edges], normal_concat=[2, 3, 4, 5], reduce=[...8 edges], reduce_concat=[2, 3, 4, 5])"
            ))
        };
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let body = compact
            .strip_prefix("Genotype(")
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| bad("it must start with `Genotype(` and end with `)`".into()))?;
        let mut values = vec![0u16; self.choices.len()];
        for (cell, name) in CELL_TYPES.iter().enumerate() {
            let key = format!("{name}=[");
            let start = find_key(body, &key)
                .ok_or_else(|| bad(format!("`{name}=[...]` is missing")))?
                + key.len();
            let end = start
                + body[start..]
                    .find(']')
                    .ok_or_else(|| bad(format!("`{name}=[` is not closed")))?;
            let edges =
                parse_edges(&body[start..end]).map_err(|e| bad(format!("in `{name}`: {e}")))?;
            if edges.len() != NODES * 2 {
                return Err(bad(format!(
                    "`{name}` has {} edges, expected {} (two per node)",
                    edges.len(),
                    NODES * 2
                )));
            }
            let concat_key = format!("{name}_concat=");
            if let Some(pos) = find_key(body, &concat_key) {
                let rest = &body[pos + concat_key.len()..];
                if !(rest.starts_with("[2,3,4,5]") || rest.starts_with("range(2,6)")) {
                    return Err(bad(format!("`{name}_concat` must be [2, 3, 4, 5]: this space concatenates all four nodes")));
                }
            }
            for k in 0..NODES {
                let mut pair = [edges[2 * k].clone(), edges[2 * k + 1].clone()];
                pair.sort_by_key(|e| e.1);
                let (i, j) = (pair[0].1, pair[1].1);
                if j >= k + 2 {
                    return Err(bad(format!(
                        "in `{name}`, node {} reads node {j}, but only nodes 0..{} come before it",
                        k + 2,
                        k + 1
                    )));
                }
                if i == j {
                    return Err(bad(format!("in `{name}`, node {} takes input {i} twice; each node takes two distinct inputs", k + 2)));
                }
                let base = cell * NODES * 3 + k * 3;
                values[base] = self.pairs[k]
                    .iter()
                    .position(|&p| p == (i, j))
                    .expect("valid pair") as u16;
                values[base + 1] = option_index(&self.choices[base + 1], &pair[0].0)? as u16;
                values[base + 2] = option_index(&self.choices[base + 2], &pair[1].0)? as u16;
            }
        }
        self.arch_from_values(&values)
    }

    fn decode(&self, arch: &Arch) -> Result<NetSpec> {
        self.build(&mut |b, states, cell, k, reduction, scope| {
            let edges = self.edges(arch, cell);
            let mut terms = Vec::with_capacity(2);
            for &(op, input) in &edges[k] {
                b.set_scope(format!("{scope}/node{}_from{input}", k + 2));
                let stride = if reduction && input < 2 { 2 } else { 1 };
                terms.push(self.op(b, states[input], op, stride)?);
            }
            b.set_scope(format!("{scope}/node{}", k + 2));
            b.add(&terms)
        })
    }

    fn supernet(&self) -> Result<SuperSpec> {
        let mut mixed = Vec::new();
        let spec = self.build(&mut |b, states, cell, k, reduction, scope| {
            let base = cell * NODES * 3 + k * 3;
            let n = k + 2;
            // Every op on every input either slot may take (slot a the lower-numbered input
            // 0..n-1, slot b the higher 1..n), the slot's op choice shared by its inputs.
            let mut slots: [Vec<Option<NodeId>>; 2] = [vec![None; n], vec![None; n]];
            for (slot, inputs) in [(0, 0..n - 1), (1, 1..n)] {
                for m in inputs {
                    b.set_scope(format!("{scope}/node{n}_from{m}"));
                    let stride = if reduction && m < 2 { 2 } else { 1 };
                    let module = Mixed::build(
                        b,
                        base + 1 + slot,
                        states[m],
                        DARTS_OPS.len(),
                        &mut |b, x, op| self.op(b, x, op, stride),
                    )?;
                    let output = module.output;
                    mixed.push(module);
                    slots[slot][m] = Some(output);
                }
            }
            // The node for every pair of inputs, then the pair choice passing one through.
            b.set_scope(format!("{scope}/node{n}"));
            let sums = self.pairs[k]
                .iter()
                .map(|&(i, j)| {
                    let (a, c) = (slots[0][i], slots[1][j]);
                    b.add(&[a.expect("slot a reads i"), c.expect("slot b reads j")])
                })
                .collect::<Result<Vec<_>>>()?;
            let module = Mixed::pass_through(b, base, &sums)?;
            let output = module.output;
            mixed.push(module);
            Ok(output)
        })?;
        let options = self.choices.iter().map(|c| c.options.len()).collect();
        SuperSpec::new(spec, mixed, options)
    }
}

impl DartsSpace {
    /// The network with `node(builder, cell states, cell type, node index, reduction, scope)`
    /// building each intermediate node of each cell: two ops for an arch
    /// ([`Space::decode`]), every op on every input with the choices as mixed modules for the
    /// supernet.
    #[allow(clippy::type_complexity)]
    fn build(
        &self,
        node: &mut dyn FnMut(
            &mut NetSpecBuilder,
            &[NodeId],
            usize,
            usize,
            bool,
            &str,
        ) -> Result<NodeId>,
    ) -> Result<NetSpec> {
        let mut b = NetSpecBuilder::new(&self.input)?;
        let c = self.channels;
        b.set_scope("stem");
        let stem = b.conv(0, 3 * c, 3, 1, 1)?;
        let stem = b.bn(stem)?;
        let (mut s0, mut s1) = (stem, stem);
        let mut c_curr = c;
        let mut reduction_prev = false;
        let reductions = [self.layers / 3, 2 * self.layers / 3];
        for layer in 0..self.layers {
            let reduction = reductions.contains(&layer);
            if reduction {
                c_curr *= 2;
            }
            let cell = usize::from(reduction);
            let scope = format!("cell{layer}{}", if reduction { "_reduce" } else { "" });
            b.set_scope(format!("{scope}/preprocess"));
            let p0 = if reduction_prev {
                factorized_reduce(&mut b, s0, c_curr)?
            } else {
                relu_conv_bn(&mut b, s0, c_curr, 1, 1, 0)?
            };
            let p1 = relu_conv_bn(&mut b, s1, c_curr, 1, 1, 0)?;
            let mut states = vec![p0, p1];
            for k in 0..NODES {
                let out = node(&mut b, &states, cell, k, reduction, &scope)?;
                states.push(out);
            }
            b.set_scope(format!("{scope}/concat"));
            let out = b.push(Op::Concat, &states[2..])?;
            s0 = s1;
            s1 = out;
            reduction_prev = reduction;
        }
        b.set_scope("head");
        let x = b.push(Op::GlobalAvgPool, &[s1])?;
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

/// Position of `key` in `body` at the start or right after a comma (so `normal=[` does not
/// match inside `reduce_normal=[`).
fn find_key(body: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = body[from..].find(key) {
        let at = from + p;
        if at == 0 || body.as_bytes()[at - 1] == b',' {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Parses `('op', 0),('op', 1),...` (quotes ' or ").
fn parse_edges(list: &str) -> std::result::Result<Vec<(String, usize)>, String> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        rest = rest.trim_start_matches(',');
        if rest.is_empty() {
            break;
        }
        let inner_end = rest.find(')').ok_or("an edge `(` is not closed")?;
        let inner = rest
            .strip_prefix('(')
            .ok_or_else(|| format!("expected `(` at `{rest}`"))?;
        let inner = &inner[..inner_end - 1];
        let (op, input) = inner
            .split_once(',')
            .ok_or_else(|| format!("edge `({inner})` is not `('op', input)`"))?;
        let op = op.trim_matches(|c| c == '\'' || c == '"');
        let input: usize = input
            .parse()
            .map_err(|_| format!("edge input `{input}` is not a node number"))?;
        out.push((op.to_string(), input));
        rest = &rest[inner_end + 1..];
    }
    Ok(out)
}
