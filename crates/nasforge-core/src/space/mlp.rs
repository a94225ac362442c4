//! The MLP space for tabular data: depth, a width per layer, one activation, dropout and
//! batch norm on or off.

use super::{Arch, CellGraph, Choice, Space, MAX_CLASSES, MAX_DEPTH, MAX_WIDTH};
use crate::netspec::ops;
use crate::netspec::supernet::{Mixed, SuperSpec};
use crate::netspec::{NetSpec, NetSpecBuilder, NodeId, Op};
use crate::params::Params;
use crate::{Error, Result};

/// The activations the space offers.
pub const MLP_ACTIVATIONS: [&str; 4] = ["relu", "gelu", "tanh", "silu"];

/// The MLP space. Parameters: `max_depth` (4), `widths` (32,64,128,256,512), `dropouts`
/// (0,0.1,0.2,0.3,0.5), `input` (features, 64), `classes` (outputs, 10).
///
/// Choices: `depth` (1..max_depth), `width_1`..`width_<max_depth>` (only the first `depth` are
/// active), `activation`, `dropout`, `batch_norm`.
#[derive(Clone, Debug)]
pub struct MlpSpace {
    choices: Vec<Choice>,
    max_depth: usize,
    widths: Vec<usize>,
    dropouts: Vec<f64>,
    features: usize,
    classes: usize,
}

impl MlpSpace {
    /// The space with its default sizes.
    pub fn new() -> Self {
        Self::from_params(&Params::new()).expect("defaults are valid")
    }

    /// The space with sizes from `params`.
    pub fn from_params(params: &Params) -> Result<Self> {
        let max_depth = params.usize_at_most("max_depth", 4, MAX_DEPTH)?;
        let widths = params.usize_list("widths", &[32, 64, 128, 256, 512], MAX_WIDTH)?;
        let dropout_labels = params.str_list("dropouts", &["0", "0.1", "0.2", "0.3", "0.5"])?;
        let input = params.input_shape(&[64])?;
        let classes = params.usize_at_most("classes", 10, MAX_CLASSES)?;
        params.finish("mlp")?;
        let mut dropouts = Vec::new();
        for d in &dropout_labels {
            match d.parse::<f64>() {
                Ok(p) if (0.0..1.0).contains(&p) => dropouts.push(p),
                _ => {
                    return Err(Error::invalid(format!(
                        "parameter `dropouts`: `{d}` is not a probability in [0, 1)"
                    )))
                }
            }
        }
        let features = input.iter().product();
        let depth_labels: Vec<String> = (1..=max_depth).map(|d| d.to_string()).collect();
        let width_labels: Vec<String> = widths.iter().map(|w| w.to_string()).collect();
        let mut choices = vec![Choice::new("depth", &depth_labels)];
        for l in 1..=max_depth {
            choices.push(Choice::new(format!("width_{l}"), &width_labels));
        }
        choices.push(Choice::new("activation", &MLP_ACTIVATIONS));
        choices.push(Choice::new("dropout", &dropout_labels));
        choices.push(Choice::new("batch_norm", &["off", "on"]));
        Ok(MlpSpace {
            choices,
            max_depth,
            widths,
            dropouts,
            features,
            classes,
        })
    }
}

impl Default for MlpSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl Space for MlpSpace {
    fn cells(&self, arch: &Arch) -> Vec<CellGraph> {
        let v = arch.values();
        let depth = v[0] as usize + 1;
        let act = MLP_ACTIVATIONS[v[self.max_depth + 1] as usize];
        let dropout = self.dropouts[v[self.max_depth + 2] as usize];
        let bn = if v[self.max_depth + 3] == 1 {
            ", batch_norm"
        } else {
            ""
        };
        let mut nodes = vec![format!("input {}", self.features)];
        for &w in v.iter().take(depth + 1).skip(1) {
            let mut label = format!("linear {}{bn}, {act}", self.widths[w as usize]);
            if dropout > 0.0 {
                label.push_str(&format!(", dropout {dropout}"));
            }
            nodes.push(label);
        }
        nodes.push(format!("linear {}", self.classes));
        vec![CellGraph::chain("network", nodes)]
    }

    fn name(&self) -> &str {
        "mlp"
    }

    fn choices(&self) -> &[Choice] {
        &self.choices
    }

    fn is_active(&self, values: &[u16], i: usize) -> bool {
        // width_l (choice l) exists only for l <= depth (depth value d means d + 1 layers).
        !(1..=self.max_depth).contains(&i) || i <= values[0] as usize + 1
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!({
            "max_depth": self.max_depth,
            "widths": self.widths,
            "dropouts": self.dropouts,
            "input": self.features,
            "classes": self.classes,
        })
    }

    fn supernet(&self) -> Result<SuperSpec> {
        self.build_supernet()
    }

    fn decode(&self, arch: &Arch) -> Result<NetSpec> {
        let v = arch.values();
        let depth = v[0] as usize + 1;
        let act = activation(v[self.max_depth + 1]);
        let dropout = self.dropouts[v[self.max_depth + 2] as usize];
        let bn = v[self.max_depth + 3] == 1;
        let mut b = NetSpecBuilder::new(&[self.features])?;
        let mut x = b.input();
        for (l, &w) in v.iter().enumerate().take(depth + 1).skip(1) {
            b.set_scope(format!("layer{l}"));
            let width = self.widths[w as usize];
            x = b.push(
                Op::Linear(ops::Linear {
                    out_features: width,
                    bias: !bn,
                }),
                &[x],
            )?;
            if bn {
                x = b.bn(x)?;
            }
            x = b.push(act.clone(), &[x])?;
            if dropout > 0.0 {
                x = b.push(Op::Dropout(ops::Dropout { p: dropout }), &[x])?;
            }
        }
        b.set_scope("head");
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

/// The op of activation option `k`.
fn activation(k: u16) -> Op {
    match MLP_ACTIVATIONS[k as usize] {
        "relu" => Op::Relu,
        "gelu" => Op::Gelu,
        "tanh" => Op::Tanh,
        _ => Op::Silu,
    }
}

impl MlpSpace {
    /// The supernet: every layer up to `max_depth` at the widest width, each followed by its
    /// choices as mixed modules — batch norm (a linear layer with bias, or one without bias
    /// and a batch norm: two sets of weights), activation, dropout, and the width as channel
    /// masks (a narrower layer inherits the leading slice of the widest one's weights) — then
    /// the depth as a pass-through module over the layers' outputs, then the head.
    fn build_supernet(&self) -> Result<SuperSpec> {
        let widest = *self.widths.iter().max().expect("widths are never empty");
        let (act_choice, drop_choice, bn_choice) =
            (self.max_depth + 1, self.max_depth + 2, self.max_depth + 3);
        let mut b = NetSpecBuilder::new(&[self.features])?;
        let mut mixed = Vec::new();
        // Candidates made by `make(builder, input, option)` reading `x`, and their sum.
        let mut module = |b: &mut NetSpecBuilder,
                          x: NodeId,
                          choice: usize,
                          options: usize,
                          make: &dyn Fn(&mut NetSpecBuilder, NodeId, usize) -> Result<NodeId>|
         -> Result<NodeId> {
            let module = Mixed::build(b, choice, x, options, &mut |b, x, k| make(b, x, k))?;
            let output = module.output;
            mixed.push(module);
            Ok(output)
        };
        let mut x = b.input();
        let mut layers = Vec::with_capacity(self.max_depth);
        for l in 1..=self.max_depth {
            b.set_scope(format!("layer{l}"));
            x = module(&mut b, x, bn_choice, 2, &|b, x, bn| {
                let y = b.push(
                    Op::Linear(ops::Linear {
                        out_features: widest,
                        bias: bn == 0,
                    }),
                    &[x],
                )?;
                if bn == 1 {
                    b.bn(y)
                } else {
                    Ok(y)
                }
            })?;
            x = module(&mut b, x, act_choice, MLP_ACTIVATIONS.len(), &|b, x, k| {
                b.push(activation(k as u16), &[x])
            })?;
            x = module(&mut b, x, drop_choice, self.dropouts.len(), &|b, x, k| {
                b.push(
                    Op::Dropout(ops::Dropout {
                        p: self.dropouts[k],
                    }),
                    &[x],
                )
            })?;
            x = module(&mut b, x, l, self.widths.len(), &|b, x, k| {
                b.push(
                    Op::ChannelMask(ops::ChannelMask {
                        keep: self.widths[k],
                    }),
                    &[x],
                )
            })?;
            layers.push(x);
        }
        b.set_scope("head");
        let depth = Mixed::pass_through(&mut b, 0, &layers)?;
        let depth_out = depth.output;
        mixed.push(depth);
        let out = b.push(
            Op::Linear(ops::Linear {
                out_features: self.classes,
                bias: true,
            }),
            &[depth_out],
        )?;
        let options = self.choices.iter().map(|c| c.options.len()).collect();
        SuperSpec::new(b.finish(out), mixed, options)
    }
}
