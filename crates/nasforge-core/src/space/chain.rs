//! The macro space: a chain of layers with optional skip inputs (chain-structured and
//! graph-based, in the style of ENAS's macro space).
//!
//! Layer l applies one op to the sum of the previous layer's output and any earlier layers'
//! outputs it chooses as skip inputs. A skip input from a bigger or differently wide layer is
//! max-pooled through the same reductions and projected with a 1x1 conv + BN. A 2x2 max pool
//! halves the resolution before the layers at layers/3 and 2*layers/3.

use super::{Arch, CellGraph, Choice, Space, MAX_CLASSES, MAX_DEPTH, MAX_WIDTH};
use crate::netspec::ops;
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

/// The macro space. Parameters: `layers` (12), `widths` (16,32,64), `stem` (stem channels,
/// 16), `input` (HxWxC, 32x32x3), `classes` (10).
#[derive(Clone, Debug)]
pub struct MacroSpace {
    choices: Vec<Choice>,
    /// Index of each layer's op choice; width follows, then one choice per skip input.
    layer_start: Vec<usize>,
    layers: usize,
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
        Ok(MacroSpace {
            choices,
            layer_start,
            layers,
            widths,
            stem,
            input: [input[2], input[0], input[1]],
            classes,
        })
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
        for l in 0..self.layers {
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
        edges.push((self.layers, self.layers + 1, String::new()));
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
        // A width choice matters only for convolutions.
        match self.layer_start.binary_search(&(i.wrapping_sub(1))) {
            Ok(_) => values[i - 1] < CONV_OPS,
            Err(_) => true,
        }
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!({
            "layers": self.layers,
            "widths": self.widths,
            "stem": self.stem,
            "input": format!("{}x{}x{}", self.input[1], self.input[2], self.input[0]),
            "classes": self.classes,
        })
    }

    fn decode(&self, arch: &Arch) -> Result<NetSpec> {
        let v = arch.values();
        let mut b = NetSpecBuilder::new(&self.input)?;
        b.set_scope("stem");
        let x = b.conv(0, self.stem, 3, 1, 1)?;
        let x = b.bn(x)?;
        let mut x = b.relu(x)?;
        // Output of every layer, as it was produced (before later reductions).
        let mut outputs: Vec<NodeId> = Vec::with_capacity(self.layers);
        for l in 0..self.layers {
            let scope = format!("layer{l}");
            if self.reduces_before(l) {
                b.set_scope(format!("{scope}/reduce"));
                x = b.push(
                    Op::MaxPool(ops::MaxPool {
                        kernel: 2,
                        stride: 2,
                        padding: 0,
                    }),
                    &[x],
                )?;
            }
            let start = self.layer_start[l];
            let mut terms = vec![x];
            for j in 0..l.saturating_sub(1) {
                if v[start + 2 + j] == 0 {
                    continue;
                }
                b.set_scope(format!("{scope}/skip{j}"));
                let mut s = outputs[j];
                for r in j + 1..=l {
                    if self.reduces_before(r) {
                        s = b.push(
                            Op::MaxPool(ops::MaxPool {
                                kernel: 2,
                                stride: 2,
                                padding: 0,
                            }),
                            &[s],
                        )?;
                    }
                }
                if b.channels(s) != b.channels(x) {
                    let c = b.channels(x);
                    s = b.conv(s, c, 1, 1, 0)?;
                    s = b.bn(s)?;
                }
                terms.push(s);
            }
            b.set_scope(format!("{scope}/sum"));
            let input = b.add(&terms)?;
            b.set_scope(format!("{scope}/{}", MACRO_OPS[v[start] as usize]));
            let width = self.widths[v[start + 1] as usize];
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
            x = match MACRO_OPS[v[start] as usize] {
                "conv_3x3" => conv(&mut b, input, 3, false)?,
                "conv_5x5" => conv(&mut b, input, 5, false)?,
                "sep_conv_3x3" => conv(&mut b, input, 3, true)?,
                "sep_conv_5x5" => conv(&mut b, input, 5, true)?,
                "max_pool_3x3" => b.push(
                    Op::MaxPool(ops::MaxPool {
                        kernel: 3,
                        stride: 1,
                        padding: 1,
                    }),
                    &[input],
                )?,
                "avg_pool_3x3" => b.push(
                    Op::AvgPool(ops::AvgPool {
                        kernel: 3,
                        stride: 1,
                        padding: 1,
                        count_include_pad: false,
                    }),
                    &[input],
                )?,
                _ => b.push(Op::Identity, &[input])?,
            };
            outputs.push(x);
        }
        b.set_scope("head");
        let g = b.push(Op::GlobalAvgPool, &[x])?;
        let out = b.push(
            Op::Linear(ops::Linear {
                out_features: self.classes,
                bias: true,
            }),
            &[g],
        )?;
        Ok(b.finish(out))
    }
}
