//! The macro space: a chain of layers with optional skip inputs (chain-structured and
//! graph-based, in the style of ENAS's macro space).
//!
//! Layer l applies one op to the sum of the previous layer's output and any earlier layers'
//! outputs it chooses as skip inputs. A skip input from a bigger or differently wide layer is
//! max-pooled through the same reductions and projected with a 1x1 conv + BN. A 2x2 max pool
//! halves the resolution before the layers at layers/3 and 2*layers/3.

use super::{Arch, CellGraph, Choice, Space, MAX_CLASSES, MAX_DEPTH, MAX_WIDTH};
use crate::netspec::ops;
use crate::netspec::supernet::{Derived, Mixed, SuperSpec};
use crate::netspec::{NetSpec, NetSpecBuilder, NodeId, Op};
use crate::params::Params;
use crate::{Error, Result};

/// The layer ops. The first four are convolutions and take the layer's width choice; pooling and
/// identity keep their input's channels.
pub const MACRO_OPS: [&str; 7] = [
    "conv_3x3",
    "conv_5x5",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "max_pool_3x3",
    "avg_pool_3x3",
    "identity",
];
const CONV_OPS: u16 = 4;

/// The macro space. Parameters: `layers` (12), `min_layers` (as `layers`: below it, a
/// `depth` choice from `min_layers` to `layers` keeps the first layers), `widths`
/// (16,32,64), `stem` (stem channels, 16), `input` (HxWxC, 32x32x3), `classes` (10).
#[derive(Clone, Debug)]
pub struct MacroSpace {
    choices: Vec<Choice>,
    /// Index of each layer's op choice; width follows, then one choice per skip input.
    layer_start: Vec<usize>,
    layers: usize,
    min_layers: usize,
    /// Index of the depth choice, when `min_layers < layers`.
    depth_choice: Option<usize>,
    widths: Vec<usize>,
    stem: usize,
    input: [usize; 3],
    classes: usize,
}

impl MacroSpace {
    /// The space with its default sizes.
    pub fn new() -> Self {
        Self::from_params(&Params::new()).expect("defaults are valid")
    }

    /// The space with sizes from `params`.
    pub fn from_params(params: &Params) -> Result<Self> {
        let layers = params.usize_at_most("layers", 12, MAX_DEPTH)?;
        let min_layers = params.usize_at_most("min_layers", layers, layers)?;
        let widths = params.usize_list("widths", &[16, 32, 64], MAX_WIDTH)?;
        let stem = params.usize_at_most("stem", 16, MAX_WIDTH)?;
        let input = params.input_shape(&[32, 32, 3])?;
        let classes = params.usize_at_most("classes", 10, MAX_CLASSES)?;
        params.finish("macro")?;
        if input.len() != 3 {
            return Err(Error::invalid(
                "space `macro` needs an image input HxWxC, for example input=32x32x3",
            ));
        }
        let mut choices = Vec::new();
        let mut layer_start = Vec::new();
        let width_labels: Vec<String> = widths.iter().map(|w| w.to_string()).collect();
        for l in 0..layers {
            layer_start.push(choices.len());
            choices.push(Choice::new(format!("layer{l}_op"), &MACRO_OPS));
            choices.push(Choice::new(format!("layer{l}_width"), &width_labels));
            for j in 0..l.saturating_sub(1) {
                choices.push(Choice::new(format!("layer{l}_skip{j}"), &["off", "on"]));
            }
        }
        let depth_choice = (min_layers < layers).then(|| {
            let labels: Vec<String> = (min_layers..=layers).map(|d| d.to_string()).collect();
            choices.push(Choice::new("depth", &labels));
            choices.len() - 1
        });
        Ok(MacroSpace {
            choices,
            layer_start,
            layers,
            min_layers,
            depth_choice,
            widths,
            stem,
            input: [input[2], input[0], input[1]],
            classes,
        })
    }

    /// The number of layers of the arch with choice values `v`.
    fn depth(&self, v: &[u16]) -> usize {
        self.depth_choice
            .and_then(|c| v.get(c))
            .map_or(self.layers, |&d| self.min_layers + d as usize)
    }

    fn reduces_before(&self, l: usize) -> bool {
        l > 0 && (l == self.layers / 3 || l == 2 * self.layers / 3)
    }
}

impl Default for MacroSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl Space for MacroSpace {
    fn cells(&self, arch: &Arch) -> Vec<CellGraph> {
        let v = arch.values();
        let mut nodes = vec![format!("stem conv_3x3 {}", self.stem)];
        let mut edges = Vec::new();
        let depth = self.depth(v);
        for l in 0..depth {
            let start = self.layer_start[l];
            let op = MACRO_OPS[v[start] as usize];
            let mut label = if v[start] < CONV_OPS {
                format!("{op} {}", self.widths[v[start + 1] as usize])
            } else {
                op.to_string()
            };
            if self.reduces_before(l) {
                label = format!("max_pool /2, {label}");
            }
            nodes.push(label);
            edges.push((l, l + 1, String::new()));
            for j in 0..l.saturating_sub(1) {
                if v[start + 2 + j] == 1 {
                    edges.push((j + 1, l + 1, "skip".to_string()));
                }
            }
        }
        nodes.push("global_avg_pool, linear".into());
        edges.push((depth, depth + 1, String::new()));
        vec![CellGraph {
            title: "network".into(),
            nodes,
            edges,
        }]
    }

    fn name(&self) -> &str {
        "macro"
    }

    fn choices(&self) -> &[Choice] {
        &self.choices
    }

    fn is_active(&self, values: &[u16], i: usize) -> bool {
        if Some(i) == self.depth_choice {
            return true;
        }
        // The choices of a layer past the depth do not matter.
        let layer = match self.layer_start.binary_search(&i) {
            Ok(l) => l,
            Err(l) => l.saturating_sub(1),
        };
        if layer >= self.depth(values) {
            return false;
        }
        // A width choice matters only for convolutions.
        match self.layer_start.binary_search(&(i.wrapping_sub(1))) {
            Ok(_) => values[i - 1] < CONV_OPS,
            Err(_) => true,
        }
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!({
            "layers": self.layers,
            "min_layers": self.min_layers,
            "widths": self.widths,
            "stem": self.stem,
            "input": format!("{}x{}x{}", self.input[1], self.input[2], self.input[0]),
            "classes": self.classes,
        })
    }

    fn supernet(&self) -> Result<SuperSpec> {
        self.build_supernet()
    }

    fn decode(&self, arch: &Arch) -> Result<NetSpec> {
        let v = arch.values();
        self.build(
            self.stem,
            self.depth(v),
            &mut |b, out, j, l, x| {
                if v[self.layer_start[l] + 2 + j] == 0 {
                    return Ok(None);
                }
                let mut s = self.skip_source(b, out, j, l)?;
                if b.channels(s) != b.channels(x) {
                    let c = b.channels(x);
                    s = b.conv(s, c, 1, 1, 0)?;
                    s = b.bn(s)?;
                }
                Ok(Some(s))
            },
            &mut |b, input, l| {
                let start = self.layer_start[l];
                let width = self.widths[v[start + 1] as usize];
                self.layer_op(b, input, l, v[start] as usize, width)
            },
            &mut |b, outputs| pool(b, outputs[outputs.len() - 1]),
        )
    }
}

/// Makes layer `l`'s term for its skip input from layer `j` (`b, out_j, j, l, x`, with `x` the
/// layer's main input), or none.
type SkipTerm<'a> =
    dyn FnMut(&mut NetSpecBuilder, NodeId, usize, usize, NodeId) -> Result<Option<NodeId>> + 'a;

/// Makes layer `l`'s op on its summed input (`b, input, l`).
type LayerOp<'a> = dyn FnMut(&mut NetSpecBuilder, NodeId, usize) -> Result<NodeId> + 'a;

/// Makes the classifier's input from the layers' outputs (`b, outputs`).
type HeadInput<'a> = dyn FnMut(&mut NetSpecBuilder, &[NodeId]) -> Result<NodeId> + 'a;

impl MacroSpace {
    /// The network's skeleton, which `decode` and the supernet share: the stem `wide` channels
    /// wide (masked to the stem's width when wider), then per layer up to `depth` the
    /// reduction, a term per skip input `skip` makes, their sum and `op` on it; then the
    /// classifier on what `head` makes of the layers' outputs.
    fn build(
        &self,
        wide: usize,
        depth: usize,
        skip: &mut SkipTerm,
        op: &mut LayerOp,
        head: &mut HeadInput,
    ) -> Result<NetSpec> {
        let mut b = NetSpecBuilder::new(&self.input)?;
        let mut x = self.stem(&mut b, wide)?;
        if self.stem < wide {
            x = b.push(Op::ChannelMask(ops::ChannelMask { keep: self.stem }), &[x])?;
        }
        // Output of every layer, as it was produced (before later reductions).
        let mut outputs: Vec<NodeId> = Vec::with_capacity(depth);
        for l in 0..depth {
            x = self.reduce(&mut b, x, l)?;
            let mut terms = vec![x];
            for (j, &out) in outputs.iter().enumerate().take(l.saturating_sub(1)) {
                terms.extend(skip(&mut b, out, j, l, x)?);
            }
            b.set_scope(format!("layer{l}/sum"));
            let input = b.add(&terms)?;
            x = op(&mut b, input, l)?;
            outputs.push(x);
        }
        let g = head(&mut b, &outputs)?;
        b.set_scope("head");
        let out = b.push(
            Op::Linear(ops::Linear {
                out_features: self.classes,
                bias: true,
            }),
            &[g],
        )?;
        Ok(b.finish(out))
    }

    /// The stem, `channels` wide.
    fn stem(&self, b: &mut NetSpecBuilder, channels: usize) -> Result<NodeId> {
        b.set_scope("stem");
        let x = b.conv(0, channels, 3, 1, 1)?;
        let x = b.bn(x)?;
        b.relu(x)
    }

    /// `x`, halved by a 2x2 max pool when layer `l` reduces.
    fn reduce(&self, b: &mut NetSpecBuilder, x: NodeId, l: usize) -> Result<NodeId> {
        if !self.reduces_before(l) {
            return Ok(x);
        }
        b.set_scope(format!("layer{l}/reduce"));
        halve(b, x)
    }

    /// Layer `j`'s output pooled through the reductions up to layer `l`, in the scope of
    /// layer `l`'s skip input from it.
    fn skip_source(
        &self,
        b: &mut NetSpecBuilder,
        out: NodeId,
        j: usize,
        l: usize,
    ) -> Result<NodeId> {
        b.set_scope(format!("layer{l}/skip{j}"));
        let mut s = out;
        for r in j + 1..=l {
            if self.reduces_before(r) {
                s = halve(b, s)?;
            }
        }
        Ok(s)
    }

    /// Layer `l`'s op `op` (an index into [`MACRO_OPS`]) on `input`, convolutions `width`
    /// channels wide.
    fn layer_op(
        &self,
        b: &mut NetSpecBuilder,
        input: NodeId,
        l: usize,
        op: usize,
        width: usize,
    ) -> Result<NodeId> {
        b.set_scope(format!("layer{l}/{}", MACRO_OPS[op]));
        let conv =
            |b: &mut NetSpecBuilder, x: NodeId, k: usize, separable: bool| -> Result<NodeId> {
                let y = if separable {
                    let c = b.channels(x);
                    let dw = b.push(
                        Op::Conv2d(ops::Conv2d {
                            out_channels: c,
                            kernel: k,
                            stride: 1,
                            padding: k / 2,
                            dilation: 1,
                            groups: c,
                            bias: false,
                        }),
                        &[x],
                    )?;
                    b.conv(dw, width, 1, 1, 0)?
                } else {
                    b.conv(x, width, k, 1, k / 2)?
                };
                let y = b.bn(y)?;
                b.relu(y)
            };
        match MACRO_OPS[op] {
            "conv_3x3" => conv(b, input, 3, false),
            "conv_5x5" => conv(b, input, 5, false),
            "sep_conv_3x3" => conv(b, input, 3, true),
            "sep_conv_5x5" => conv(b, input, 5, true),
            "max_pool_3x3" => b.max_pool(input, 3, 1, 1),
            "avg_pool_3x3" => b.avg_pool(input, 3, 1, 1),
            _ => b.push(Op::Identity, &[input]),
        }
    }

    /// The supernet. Every layer's output is `P` channels wide (the widest of the stem and
    /// the widths), its channels past the arch's zero: a convolution of every op is `P` wide,
    /// followed by its width as channel masks (a nested module; a narrower layer inherits the
    /// leading slice), the stem masked to its width, and a narrower input is the leading
    /// channels of a wider one, so pools and identities keep the zeros where they are. A skip
    /// input is an optional module (off: no term of the sum); when on, its projection is a
    /// module over a derived choice: none when the two layers' channels match, else a 1x1
    /// convolution, batch norm and mask to the reading layer's channels, one per channel
    /// count. Layer l's channels (the width of the last convolution up to l, else the
    /// stem's) are derived choices too. The 3x3 convolutions (plain and separable) share the
    /// weights of the 5x5 ones: the centres of their kernels, their batch norms. With a depth
    /// choice, every layer is built and the classifier reads the pooled output of the one
    /// the depth picks (a pass-through module); a sub-network drops the layers after it.
    fn build_supernet(&self) -> Result<SuperSpec> {
        // The channel counts a layer can have, and the index of each.
        let mut counts: Vec<usize> = self.widths.clone();
        counts.push(self.stem);
        counts.sort_unstable();
        counts.dedup();
        let index = |c: usize| counts.binary_search(&c).expect("a listed count") as u16;
        let wide = *counts.last().expect("the stem's count at least");
        let real = self.choices.len();
        let mut derived: Vec<Derived> = Vec::new();
        // The derived choice of layer l's channels: from its op, its width and the previous
        // layer's channels.
        let mut channels_of: Vec<usize> = Vec::with_capacity(self.layers);
        for l in 0..self.layers {
            let start = self.layer_start[l];
            let mut sources = vec![start, start + 1];
            let before: Vec<u16> = match l {
                0 => vec![index(self.stem)],
                _ => {
                    sources.push(channels_of[l - 1]);
                    (0..counts.len() as u16).collect()
                }
            };
            let mut table = Vec::new();
            for op in 0..MACRO_OPS.len() as u16 {
                for &w in &self.widths {
                    for &c in &before {
                        table.push(if op < CONV_OPS { index(w) } else { c });
                    }
                }
            }
            channels_of.push(real + derived.len());
            derived.push(Derived {
                sources,
                table,
                options: counts.len(),
            });
        }
        // Modules, in network order: both closures add theirs; the op closure also the nodes
        // that share weights.
        let mixed = std::cell::RefCell::new(Vec::new());
        let shared = std::cell::RefCell::new(Vec::new());
        let spec = self.build(
            wide,
            self.layers,
            &mut |b, out, j, l, _| {
                let s = self.skip_source(b, out, j, l)?;
                // Projection: option 0 none, option 1 + k to counts[k] channels.
                let project = real + derived.len();
                let (cj, cx) = (channels_of[j], channels_of[l - 1]);
                let mut table = Vec::new();
                for a in 0..counts.len() as u16 {
                    for c in 0..counts.len() as u16 {
                        table.push(if a == c { 0 } else { 1 + c });
                    }
                }
                derived.push(Derived {
                    sources: vec![cj, cx],
                    table,
                    options: 1 + counts.len(),
                });
                let mut ends = vec![s];
                for &c in &counts {
                    let y = b.conv(s, wide, 1, 1, 0)?;
                    let y = b.bn(y)?;
                    ends.push(b.push(Op::ChannelMask(ops::ChannelMask { keep: c }), &[y])?);
                }
                let projection = Mixed::pass_through(b, project, &ends)?;
                let skip = Mixed::optional(b, self.layer_start[l] + 2 + j, s, projection.output)?;
                let term = skip.output;
                mixed.borrow_mut().extend([projection, skip]);
                Ok(Some(term))
            },
            &mut |b, input, l| {
                let start = self.layer_start[l];
                let mut widths = Vec::new();
                let op = Mixed::build(b, start, input, MACRO_OPS.len(), &mut |b, x, op| {
                    let y = self.layer_op(b, x, l, op, wide)?;
                    if op as u16 >= CONV_OPS {
                        return Ok(y);
                    }
                    let width =
                        Mixed::build(b, start + 1, y, self.widths.len(), &mut |b, y, k| {
                            b.push(
                                Op::ChannelMask(ops::ChannelMask {
                                    keep: self.widths[k],
                                }),
                                &[y],
                            )
                        })?;
                    let out = width.output;
                    widths.push(width);
                    Ok(out)
                })?;
                // The 3x3 convolutions compute with the centres of the 5x5 ones' kernels and
                // share their batch norms (once-for-all's elastic kernel).
                for (small, large) in [(0, 1), (2, 3)] {
                    let (s, l) = (&op.candidates[small].nodes, &op.candidates[large].nodes);
                    shared.borrow_mut().extend(
                        s.clone()
                            .zip(l.clone())
                            .filter(|&(k, _)| matches!(b.op(k), Op::Conv2d(_) | Op::BatchNorm(_))),
                    );
                }
                let out = op.output;
                let mut mixed = mixed.borrow_mut();
                mixed.extend(widths);
                mixed.push(op);
                Ok(out)
            },
            // The depth: a pass-through module over the pooled outputs of the layers a
            // network may end with (their resolutions differ across reductions).
            &mut |b, outputs| match self.depth_choice {
                None => pool(b, outputs[outputs.len() - 1]),
                Some(choice) => {
                    let pooled = outputs[self.min_layers - 1..]
                        .iter()
                        .map(|&x| pool(b, x))
                        .collect::<Result<Vec<_>>>()?;
                    let depth = Mixed::pass_through(b, choice, &pooled)?;
                    let out = depth.output;
                    mixed.borrow_mut().push(depth);
                    Ok(out)
                }
            },
        )?;
        let options = self.choices.iter().map(|c| c.options.len()).collect();
        SuperSpec::with_derived(spec, mixed.into_inner(), options, derived)?
            .with_shared(&shared.into_inner())
    }
}

/// Global average pooling of `x`, in the head's scope.
fn pool(b: &mut NetSpecBuilder, x: NodeId) -> Result<NodeId> {
    b.set_scope("head");
    b.push(Op::GlobalAvgPool, &[x])
}

/// A 2x2 max pool of stride 2.
fn halve(b: &mut NetSpecBuilder, x: NodeId) -> Result<NodeId> {
    b.max_pool(x, 2, 2, 0)
}
