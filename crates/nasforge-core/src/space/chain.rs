//! The macro space: a chain of layers with optional skip inputs (chain-structured and
//! graph-based, in the style of ENAS's macro space).
//!
//! Layer l applies one op to the sum of the previous layer's output and any earlier layers'
//! outputs it chooses as skip inputs. A skip input from a bigger or differently wide layer is
//! max-pooled through the same reductions and projected with a 1x1 conv + BN. A 2x2 max pool
//! halves the resolution before the layers at layers/3 and 2*layers/3; the layers between
//! reductions are a stage.

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
/// `depth` choice from `min_layers` to `layers` keeps the first layers), `min_stage_layers`
/// (as `layers`: below a stage's length, a `stage{s}_depth` choice from it to the stage's
/// length keeps the stage's first layers, once-for-all's elastic depth per stage; not with
/// `min_layers`), `widths` (16,32,64), `stem` (stem channels, 16), `input` (HxWxC,
/// 32x32x3), `classes` (10).
#[derive(Clone, Debug)]
pub struct MacroSpace {
    choices: Vec<Choice>,
    /// Index of each layer's op choice; width follows, then one choice per skip input.
    layer_start: Vec<usize>,
    layers: usize,
    min_layers: usize,
    /// Index of the depth choice, when `min_layers < layers`.
    depth_choice: Option<usize>,
    /// The stages, in order.
    stages: Vec<Stage>,
    widths: Vec<usize>,
    stem: usize,
    input: [usize; 3],
    classes: usize,
}

/// The layers from one reduction to the next (or the ends), with their depth choice.
#[derive(Clone, Debug)]
struct Stage {
    /// Its first layer.
    start: usize,
    /// The layer after its last.
    end: usize,
    /// The fewest layers it keeps.
    min: usize,
    /// Index of its depth choice (`min` to its length), when `min` is below its length.
    choice: Option<usize>,
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
        let min_stage_layers = params.usize_at_most("min_stage_layers", layers, layers)?;
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
        let starts: Vec<usize> = (0..layers)
            .filter(|&l| l == 0 || reduces_before(layers, l))
            .collect();
        let mut stages = Vec::with_capacity(starts.len());
        for (s, &start) in starts.iter().enumerate() {
            let end = starts.get(s + 1).copied().unwrap_or(layers);
            let min = min_stage_layers.min(end - start);
            let choice = (min < end - start).then(|| {
                let labels: Vec<String> = (min..=end - start).map(|d| d.to_string()).collect();
                choices.push(Choice::new(format!("stage{s}_depth"), &labels));
                choices.len() - 1
            });
            stages.push(Stage {
                start,
                end,
                min,
                choice,
            });
        }
        // The supernet works out a stage's output channels from a table over the channel
        // counts of every layer it may end with.
        let counts = channel_counts(&widths, stem).len();
        for s in stages.iter().filter(|s| s.choice.is_some()) {
            let ends = s.end - s.start - s.min + 1;
            let table = (counts as u64)
                .checked_pow(ends as u32)
                .and_then(|t| t.checked_mul(ends as u64));
            if table.is_none_or(|t| t > 1 << 20) {
                return Err(Error::invalid(format!(
                    "space `macro`: min_stage_layers={min_stage_layers} lets a stage of {} layers end at any of {ends}, too many for the supernet with {counts} channel counts; raise min_stage_layers or give fewer widths",
                    s.end - s.start
                )));
            }
        }
        if depth_choice.is_some() && stages.iter().any(|s| s.choice.is_some()) {
            return Err(Error::invalid(
                "space `macro` takes one depth rule: min_layers (one depth for the network) or min_stage_layers (a depth per stage), not both",
            ));
        }
        Ok(MacroSpace {
            choices,
            layer_start,
            layers,
            min_layers,
            depth_choice,
            stages,
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
        reduces_before(self.layers, l)
    }

    /// The stage of layer `l` (below `layers`).
    fn stage_of(&self, l: usize) -> usize {
        self.stages.iter().position(|s| l < s.end).unwrap_or(0)
    }

    /// Whether the arch with choice values `v` keeps layer `l`: within the depth, and among
    /// the first its stage keeps.
    fn kept(&self, v: &[u16], l: usize) -> bool {
        let stage = &self.stages[self.stage_of(l)];
        let keeps = stage
            .choice
            .and_then(|c| v.get(c))
            .map_or(stage.end - stage.start, |&d| stage.min + d as usize);
        l < self.depth(v) && l - stage.start < keeps
    }

    /// The layer whose output layer `l` reads (the last kept one before it; none: the stem).
    fn main_input(&self, v: &[u16], l: usize) -> Option<usize> {
        (0..l).rev().find(|&j| self.kept(v, j))
    }

    /// Whether layer `l` of the arch `v` adds its skip input from layer `j`: chosen and
    /// possible.
    fn skips_from(&self, v: &[u16], l: usize, j: usize) -> bool {
        v[self.layer_start[l] + 2 + j] == 1 && self.may_skip_from(v, l, j)
    }

    /// Whether layer `l` of the arch `v` may take a skip input from layer `j`: `j` is kept and
    /// is not `l`'s main input already.
    fn may_skip_from(&self, v: &[u16], l: usize, j: usize) -> bool {
        self.kept(v, j) && self.main_input(v, l) != Some(j)
    }
}

/// The channel counts a layer can have (the widths and the stem's), ascending, once each.
fn channel_counts(widths: &[usize], stem: usize) -> Vec<usize> {
    let mut counts = widths.to_vec();
    counts.push(stem);
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// Whether a network of `layers` layers halves the resolution before layer `l`.
fn reduces_before(layers: usize, l: usize) -> bool {
    l > 0 && (l == layers / 3 || l == 2 * layers / 3)
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
        // Per layer, its node (none when the arch drops it); the last kept layer's node.
        let mut node_of: Vec<Option<usize>> = Vec::new();
        let mut last = 0;
        for l in 0..self.depth(v) {
            if !self.kept(v, l) {
                node_of.push(None);
                continue;
            }
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
            let node = nodes.len() - 1;
            edges.push((last, node, String::new()));
            for (j, from) in node_of.iter().enumerate().take(l.saturating_sub(1)) {
                if let (true, Some(from)) = (self.skips_from(v, l, j), *from) {
                    edges.push((from, node, "skip".to_string()));
                }
            }
            node_of.push(Some(node));
            last = node;
        }
        nodes.push("global_avg_pool, linear".into());
        edges.push((last, nodes.len() - 1, String::new()));
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
        if Some(i) == self.depth_choice || self.stages.iter().any(|s| s.choice == Some(i)) {
            return true;
        }
        // The choices of a layer the arch drops do not matter.
        let layer = match self.layer_start.binary_search(&i) {
            Ok(l) => l,
            Err(l) => l.saturating_sub(1),
        };
        if !self.kept(values, layer) {
            return false;
        }
        match i - self.layer_start[layer] {
            0 => true,
            // A width choice matters only for convolutions.
            1 => values[i - 1] < CONV_OPS,
            // A skip input only from a kept layer that is not the main input.
            k => self.may_skip_from(values, layer, k - 2),
        }
    }

    fn params_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "layers": self.layers,
            "min_layers": self.min_layers,
            "widths": self.widths,
            "stem": self.stem,
            "input": format!("{}x{}x{}", self.input[1], self.input[2], self.input[0]),
            "classes": self.classes,
        });
        // Only with stage depths: the spaces without them keep their old description.
        if self.stages.iter().any(|s| s.choice.is_some()) {
            let min = self.stages.iter().map(|s| s.min).max();
            json["min_stage_layers"] = serde_json::json!(min);
        }
        json
    }

    fn supernet(&self) -> Result<SuperSpec> {
        self.build_supernet()
    }

    fn decode(&self, arch: &Arch) -> Result<NetSpec> {
        let v = arch.values();
        let kept: Vec<bool> = (0..self.depth(v)).map(|l| self.kept(v, l)).collect();
        self.build(
            self.stem,
            &kept,
            &mut |b, out, j, l, x| {
                if !self.skips_from(v, l, j) {
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
            // A stage ends with its last kept layer.
            &mut |_, _, _, x| Ok(x),
            &mut |b, _, x| pool(b, x),
        )
    }
}

/// Makes layer `l`'s term for its skip input from layer `j` (`b, out_j, j, l, x`, with `x` the
/// layer's main input), or none.
type SkipTerm<'a> =
    dyn FnMut(&mut NetSpecBuilder, NodeId, usize, usize, NodeId) -> Result<Option<NodeId>> + 'a;

/// Makes layer `l`'s op on its summed input (`b, input, l`).
type LayerOp<'a> = dyn FnMut(&mut NetSpecBuilder, NodeId, usize) -> Result<NodeId> + 'a;

/// Makes what the next stage reads from the outputs of stage `s`'s layers (`b, outputs, s,
/// x`, with `x` its last kept layer's output; `outputs` holds every layer's so far, none
/// where dropped).
type StageEnd<'a> =
    dyn FnMut(&mut NetSpecBuilder, &[Option<NodeId>], usize, NodeId) -> Result<NodeId> + 'a;

/// Makes the classifier's input from the layers' outputs and what the last stage ends with
/// (`b, outputs, x`).
type HeadInput<'a> =
    dyn FnMut(&mut NetSpecBuilder, &[Option<NodeId>], NodeId) -> Result<NodeId> + 'a;

impl MacroSpace {
    /// The network's skeleton, which `decode` and the supernet share: the stem `wide` channels
    /// wide (masked to the stem's width when wider), then per layer that `kept` keeps (the
    /// first `kept.len()`, the rest dropped) the reduction, a term per skip input `skip`
    /// makes from a kept earlier layer, their sum and `op` on it; after each stage what
    /// `stage_end` makes of it; then the classifier on what `head` makes of the layers'
    /// outputs.
    fn build(
        &self,
        wide: usize,
        kept: &[bool],
        skip: &mut SkipTerm,
        op: &mut LayerOp,
        stage_end: &mut StageEnd,
        head: &mut HeadInput,
    ) -> Result<NetSpec> {
        let mut b = NetSpecBuilder::new(&self.input)?;
        let mut x = self.stem(&mut b, wide)?;
        if self.stem < wide {
            x = b.push(Op::ChannelMask(ops::ChannelMask { keep: self.stem }), &[x])?;
        }
        // Output of every layer, as it was produced (before later reductions); none where
        // dropped.
        let mut outputs: Vec<Option<NodeId>> = Vec::with_capacity(kept.len());
        for (l, &keep) in kept.iter().enumerate() {
            if self.reduces_before(l) {
                x = stage_end(&mut b, &outputs, self.stage_of(l - 1), x)?;
            }
            if !keep {
                outputs.push(None);
                continue;
            }
            x = self.reduce(&mut b, x, l)?;
            let mut terms = vec![x];
            for (j, out) in outputs.iter().enumerate().take(l.saturating_sub(1)) {
                if let Some(out) = *out {
                    terms.extend(skip(&mut b, out, j, l, x)?);
                }
            }
            b.set_scope(format!("layer{l}/sum"));
            let input = b.add(&terms)?;
            x = op(&mut b, input, l)?;
            outputs.push(Some(x));
        }
        if let Some(last) = kept.len().checked_sub(1) {
            x = stage_end(&mut b, &outputs, self.stage_of(last), x)?;
        }
        let g = head(&mut b, &outputs, x)?;
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
        let counts = channel_counts(&self.widths, self.stem);
        let index = |c: usize| counts.binary_search(&c).expect("a listed count") as u16;
        let wide = *counts.last().expect("the stem's count at least");
        let real = self.choices.len();
        let mut derived: Vec<Derived> = Vec::new();
        // The derived choice of layer l's channels: from its op, its width and its main
        // input's channels (the previous layer's, or the kept layer a stage with a depth
        // choice ends with: derived from that choice and its candidates' channels).
        let mut channels_of: Vec<usize> = Vec::with_capacity(self.layers);
        let mut main_channels: Vec<usize> = Vec::with_capacity(self.layers);
        for l in 0..self.layers {
            let start = self.layer_start[l];
            let mut sources = vec![start, start + 1];
            let before: Vec<u16> = match l {
                0 => {
                    main_channels.push(usize::MAX);
                    vec![index(self.stem)]
                }
                _ => {
                    let stage = &self.stages[self.stage_of(l - 1)];
                    let main = match stage.choice {
                        Some(choice) if l == stage.end => {
                            let ends = &channels_of[stage.start + stage.min - 1..stage.end];
                            derived.push(Derived {
                                sources: [choice].into_iter().chain(ends.iter().copied()).collect(),
                                table: chosen_table(ends.len(), counts.len()),
                                options: counts.len(),
                            });
                            real + derived.len() - 1
                        }
                        _ => channels_of[l - 1],
                    };
                    sources.push(main);
                    main_channels.push(main);
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
            &vec![true; self.layers],
            &mut |b, out, j, l, _| {
                let s = self.skip_source(b, out, j, l)?;
                // Projection: option 0 none, option 1 + k to counts[k] channels.
                let project = real + derived.len();
                let (cj, cx) = (channels_of[j], main_channels[l]);
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
                // On as chosen; under a stage depth, only from a kept layer that is not the
                // main input (the last kept one, when layer l starts the next stage).
                let chosen = self.layer_start[l] + 2 + j;
                let stage = &self.stages[self.stage_of(j)];
                let on = match stage.choice {
                    None => chosen,
                    Some(choice) => {
                        let at = j - stage.start;
                        let mut table = Vec::new();
                        for v in 0..2 {
                            for keeps in stage.min..=stage.end - stage.start {
                                let main = l == stage.end && at + 1 == keeps;
                                table.push(u16::from(v == 1 && at < keeps && !main));
                            }
                        }
                        derived.push(Derived {
                            sources: vec![chosen, choice],
                            table,
                            options: 2,
                        });
                        real + derived.len() - 1
                    }
                };
                let skip = Mixed::optional(b, on, s, projection.output)?;
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
            // A stage's depth: a pass-through module over the outputs of the layers it may
            // end with.
            &mut |b, outputs, s, x| {
                let stage = &self.stages[s];
                let Some(choice) = stage.choice else {
                    return Ok(x);
                };
                let ends: Vec<NodeId> = outputs[stage.start + stage.min - 1..stage.end]
                    .iter()
                    .flatten()
                    .copied()
                    .collect();
                let depth = Mixed::pass_through(b, choice, &ends)?;
                let out = depth.output;
                mixed.borrow_mut().push(depth);
                Ok(out)
            },
            // The depth: a pass-through module over the pooled outputs of the layers a
            // network may end with (their resolutions differ across reductions).
            &mut |b, outputs, x| match self.depth_choice {
                None => pool(b, x),
                Some(choice) => {
                    let pooled = outputs[self.min_layers - 1..]
                        .iter()
                        .flatten()
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

/// The table of a derived choice over a choice of `k` options followed by `k` choices of
/// `n` options each: the value of the one the first picks.
fn chosen_table(k: usize, n: usize) -> Vec<u16> {
    let combos = n.pow(k as u32);
    let mut table = Vec::with_capacity(k * combos);
    for pick in 0..k {
        for combo in 0..combos {
            // The sources' values, the first the most significant digit.
            table.push((combo / n.pow((k - 1 - pick) as u32) % n) as u16);
        }
    }
    table
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
