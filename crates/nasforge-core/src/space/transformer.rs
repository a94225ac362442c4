//! The Transformer space (AutoFormer-style): depth and embedding width for the network, and per
//! layer the number of heads, the MLP ratio and, optionally, the token mixer (attention, a
//! depthwise convolution along positions, or none).
//!
//! Every layer is a pre-norm block: `x + mixer(LayerNorm(x))`, then
//! `x + Linear(GELU(Linear(LayerNorm(x))))` with a hidden width of `ratio · width`. The network
//! reads token ids `[T]`, embeds them, adds positions, runs the layers and a final layer norm,
//! then either classifies (mean over positions, a linear layer) or, with `head=lm`, predicts
//! the next token at every position (causal mixers, a head tied to the embedding).

use super::{option_index, Arch, CellGraph, Choice, Space, MAX_CLASSES, MAX_DEPTH, MAX_WIDTH};
use crate::netspec::ops;
use crate::netspec::{NetSpec, NetSpecBuilder, NodeId, Op};
use crate::params::Params;
use crate::{Error, Result};

/// The token mixers the space can offer, by label.
pub const MIXERS: [&str; 3] = ["attention", "conv", "identity"];

/// A layer's token mixer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mixer {
    /// Multi-head self-attention.
    Attention,
    /// A depthwise convolution along positions.
    Conv,
    /// No mixer: the layer is its MLP alone.
    Identity,
}

impl Mixer {
    /// Reads a label of [`MIXERS`].
    fn parse(label: &str) -> Result<Mixer> {
        match label {
            "attention" => Ok(Mixer::Attention),
            "conv" => Ok(Mixer::Conv),
            "identity" => Ok(Mixer::Identity),
            other => Err(Error::invalid(format!(
                "parameter `mixers`: `{other}` is not one of {}",
                MIXERS.join(", ")
            ))),
        }
    }

    /// Its label in [`MIXERS`].
    fn label(self) -> &'static str {
        match self {
            Mixer::Attention => MIXERS[0],
            Mixer::Conv => MIXERS[1],
            Mixer::Identity => MIXERS[2],
        }
    }
}

/// The most tokens a vocabulary may hold (`vocab`).
pub const MAX_VOCAB: usize = 1 << 20;

/// The most positions a sequence may have (`input`).
pub const MAX_SEQUENCE: usize = 1 << 16;

/// What the network ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// Mean over positions, then a linear layer to `classes` outputs.
    Classify,
    /// Next-token logits at every position `[T, vocab]`; mixers are causal.
    Lm,
}

/// The Transformer space. Parameters: `input` (sequence length, 64), `vocab` (256), `classes`
/// (10; ignored with `head=lm`), `head` (`classify` or `lm`), `max_depth` (4), `widths`
/// (64,128,192), `heads` (1,2,4), `mlp_ratios` (1,2,4), `mixers` (`attention`; any of
/// attention, conv, identity), `kernel` (conv mixer width, 3), `positions` (`learned` or
/// `sinusoidal`), `dropout` (0).
///
/// Choices: `depth`, `width`, then per layer `l` (active up to the depth) `mixer_l` (only
/// when `mixers` offers more than one), `heads_l` (only for an attention layer) and
/// `mlp_ratio_l`.
#[derive(Clone, Debug)]
pub struct TransformerSpace {
    choices: Vec<Choice>,
    seq_len: usize,
    vocab: usize,
    classes: usize,
    head: Head,
    max_depth: usize,
    widths: Vec<usize>,
    heads: Vec<usize>,
    ratios: Vec<usize>,
    mixers: Vec<Mixer>,
    kernel: usize,
    positions: ops::Encoding,
    dropout: f64,
}

/// Where a layer's choices sit.
#[derive(Clone, Copy, Debug)]
struct LayerChoices {
    mixer: Option<usize>,
    heads: usize,
    ratio: usize,
}

impl TransformerSpace {
    /// The space with its default sizes.
    pub fn new() -> Self {
        Self::from_params(&Params::new()).expect("defaults are valid")
    }

    /// The space with sizes from `params`.
    pub fn from_params(params: &Params) -> Result<Self> {
        let input = params.usize_list("input", &[64], MAX_SEQUENCE)?;
        let seq_len = match input[..] {
            [t] => t,
            _ => {
                return Err(Error::invalid(format!(
                    "parameter `input`: a Transformer reads a sequence of token ids; give its length (input=64), not {input:?}"
                )))
            }
        };
        let vocab = params.usize_at_most("vocab", 256, MAX_VOCAB)?;
        let classes = params.usize_at_most("classes", 10, MAX_CLASSES)?;
        let head = match params.text("head").as_deref() {
            None | Some("classify") => Head::Classify,
            Some("lm") => Head::Lm,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "parameter `head`: `{other}` is not classify or lm"
                )))
            }
        };
        let max_depth = params.usize_at_most("max_depth", 4, MAX_DEPTH)?;
        let widths = params.usize_list("widths", &[64, 128, 192], MAX_WIDTH)?;
        let heads = params.usize_list("heads", &[1, 2, 4], MAX_WIDTH)?;
        let ratios = params.usize_list("mlp_ratios", &[1, 2, 4], 64)?;
        let mixers = params
            .str_list("mixers", &["attention"])?
            .iter()
            .map(|m| Mixer::parse(m))
            .collect::<Result<Vec<_>>>()?;
        let kernel = params.usize_at_most("kernel", 3, 255)?;
        let positions = match params.text("positions").as_deref() {
            None | Some("learned") => ops::Encoding::Learned,
            Some("sinusoidal") => ops::Encoding::Sinusoidal,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "parameter `positions`: `{other}` is not learned or sinusoidal"
                )))
            }
        };
        let dropout = params.f64_in("dropout", 0.0, 0.0, 0.99)?;
        params.finish("transformer")?;
        for &w in &widths {
            if let Some(h) = heads.iter().find(|&&h| w % h != 0) {
                return Err(Error::invalid(format!(
                    "parameter `widths`: {w} is not divisible by {h} heads; give widths that are multiples of every head count"
                )));
            }
        }
        if head == Head::Classify && kernel % 2 == 0 && mixers.contains(&Mixer::Conv) {
            return Err(Error::invalid(format!(
                "parameter `kernel`: a centred convolution needs an odd kernel, not {kernel}"
            )));
        }
        let label = |xs: &[usize]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let depth_labels: Vec<String> = (1..=max_depth).map(|d| d.to_string()).collect();
        let mut choices = vec![
            Choice::new("depth", &depth_labels),
            Choice::new("width", &label(&widths)),
        ];
        for l in 1..=max_depth {
            if mixers.len() > 1 {
                let labels: Vec<&str> = mixers.iter().map(|m| m.label()).collect();
                choices.push(Choice::new(format!("mixer_{l}"), &labels));
            }
            choices.push(Choice::new(format!("heads_{l}"), &label(&heads)));
            choices.push(Choice::new(format!("mlp_ratio_{l}"), &label(&ratios)));
        }
        Ok(TransformerSpace {
            choices,
            seq_len,
            vocab,
            classes,
            head,
            max_depth,
            widths,
            heads,
            ratios,
            mixers,
            kernel,
            positions,
            dropout,
        })
    }

    /// Choices per layer: heads and MLP ratio, and the mixer when there is a choice of one.
    fn per_layer(&self) -> usize {
        if self.mixers.len() > 1 {
            3
        } else {
            2
        }
    }

    /// Choice indices of layer `l` (1-based).
    fn layer(&self, l: usize) -> LayerChoices {
        let per = self.per_layer();
        let first = 2 + (l - 1) * per;
        let mixer = (per == 3).then_some(first);
        LayerChoices {
            mixer,
            heads: first + per - 2,
            ratio: first + per - 1,
        }
    }

    /// The layer (1-based) choice `i` belongs to, if any.
    fn layer_of(&self, i: usize) -> Option<usize> {
        (i >= 2).then(|| (i - 2) / self.per_layer() + 1)
    }

    /// The mixer of layer `l` in `values`.
    fn mixer(&self, values: &[u16], l: usize) -> Mixer {
        match self.layer(l).mixer {
            Some(c) => self.mixers[values[c] as usize],
            None => self.mixers[0],
        }
    }

    fn causal(&self) -> bool {
        self.head == Head::Lm
    }
}

impl Default for TransformerSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl Space for TransformerSpace {
    fn name(&self) -> &str {
        "transformer"
    }

    fn choices(&self) -> &[Choice] {
        &self.choices
    }

    fn is_active(&self, values: &[u16], i: usize) -> bool {
        let Some(l) = self.layer_of(i) else {
            return true;
        };
        if l > values[0] as usize + 1 {
            return false;
        }
        if i == self.layer(l).heads {
            return self.mixer(values, l) == Mixer::Attention;
        }
        true
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!({
            "input": self.seq_len,
            "vocab": self.vocab,
            "classes": self.classes,
            "head": match self.head { Head::Classify => "classify", Head::Lm => "lm" },
            "max_depth": self.max_depth,
            "widths": self.widths,
            "heads": self.heads,
            "mlp_ratios": self.ratios,
            "mixers": self.mixers.iter().map(|m| m.label()).collect::<Vec<_>>(),
            "kernel": self.kernel,
            "positions": match self.positions {
                ops::Encoding::Learned => "learned",
                ops::Encoding::Sinusoidal => "sinusoidal",
            },
            "dropout": self.dropout,
        })
    }

    fn cells(&self, arch: &Arch) -> Vec<CellGraph> {
        let v = arch.values();
        let depth = v[0] as usize + 1;
        let width = self.widths[v[1] as usize];
        let mut nodes = vec![format!("tokens {} (vocab {})", self.seq_len, self.vocab)];
        nodes.push(format!("embedding {width} + positions"));
        for l in 1..=depth {
            let c = self.layer(l);
            let ratio = self.ratios[v[c.ratio] as usize];
            let mixer = match self.mixer(v, l) {
                Mixer::Attention => format!("attention {} heads", self.heads[v[c.heads] as usize]),
                Mixer::Conv => format!("conv k{}", self.kernel),
                Mixer::Identity => "identity".to_string(),
            };
            nodes.push(format!("{mixer}, mlp x{ratio}"));
        }
        nodes.push(match self.head {
            Head::Classify => format!("mean pool, linear {}", self.classes),
            Head::Lm => format!("lm head {} (tied)", self.vocab),
        });
        vec![CellGraph::chain("network", nodes)]
    }

    fn decode(&self, arch: &Arch) -> Result<NetSpec> {
        let v = arch.values();
        let depth = v[0] as usize + 1;
        let width = self.widths[v[1] as usize];
        let causal = self.causal();
        let mut b = NetSpecBuilder::new(&[self.seq_len])?;
        b.set_scope("embed");
        let e = b.push(
            Op::Embedding(ops::Embedding {
                vocab: self.vocab,
                dim: width,
            }),
            &[b.input()],
        )?;
        let mut x = b.push(
            Op::Position(ops::Position {
                encoding: self.positions,
            }),
            &[e],
        )?;
        x = self.dropout(&mut b, x)?;
        let norm = Op::LayerNorm(ops::LayerNorm { affine: true });
        let linear = |out| {
            Op::Linear(ops::Linear {
                out_features: out,
                bias: true,
            })
        };
        for l in 1..=depth {
            b.set_scope(format!("layer{l}"));
            let c = self.layer(l);
            let mixer = match self.mixer(v, l) {
                Mixer::Attention => Some(Op::Attention(ops::Attention {
                    heads: self.heads[v[c.heads] as usize],
                    causal,
                    bias: true,
                })),
                Mixer::Conv => Some(Op::SeqConv(ops::SeqConv {
                    kernel: self.kernel,
                    causal,
                })),
                Mixer::Identity => None,
            };
            if let Some(mixer) = mixer {
                let n = b.push(norm.clone(), &[x])?;
                let m = b.push(mixer, &[n])?;
                let m = self.dropout(&mut b, m)?;
                x = b.add(&[x, m])?;
            }
            let n = b.push(norm.clone(), &[x])?;
            let h = b.push(linear(width * self.ratios[v[c.ratio] as usize]), &[n])?;
            let h = b.push(Op::Gelu, &[h])?;
            let h = b.push(linear(width), &[h])?;
            let h = self.dropout(&mut b, h)?;
            x = b.add(&[x, h])?;
        }
        b.set_scope("head");
        x = b.push(norm, &[x])?;
        let out = match self.head {
            Head::Classify => {
                let p = b.push(
                    Op::SeqPool(ops::SeqPool {
                        mode: ops::Pooling::Mean,
                    }),
                    &[x],
                )?;
                b.push(linear(self.classes), &[p])?
            }
            Head::Lm => b.push(
                Op::LmHead(ops::LmHead {
                    vocab: self.vocab,
                    tied: true,
                }),
                &[x],
            )?,
        };
        Ok(b.finish(out))
    }
}

impl TransformerSpace {
    fn dropout(&self, b: &mut NetSpecBuilder, x: NodeId) -> Result<NodeId> {
        if self.dropout > 0.0 {
            b.push(Op::Dropout(ops::Dropout { p: self.dropout }), &[x])
        } else {
            Ok(x)
        }
    }

    /// The arch with every layer set alike: `depth` layers of `width`, each an attention layer
    /// with `heads` heads (or the first mixer offered when attention is not) and MLP ratio
    /// `ratio`. Sizes must be among the space's options.
    pub fn uniform(&self, depth: usize, width: usize, heads: usize, ratio: usize) -> Result<Arch> {
        let pick = |choice: usize, value: usize| -> Result<u16> {
            option_index(&self.choices[choice], &value.to_string()).map(|k| k as u16)
        };
        let mut values = vec![0u16; self.choices.len()];
        values[0] = pick(0, depth)?;
        values[1] = pick(1, width)?;
        for l in 1..=self.max_depth {
            let c = self.layer(l);
            if let Some(m) = c.mixer {
                values[m] = self
                    .mixers
                    .iter()
                    .position(|&m| m == Mixer::Attention)
                    .unwrap_or(0) as u16;
            }
            values[c.heads] = pick(c.heads, heads)?;
            values[c.ratio] = pick(c.ratio, ratio)?;
        }
        self.arch_from_values(&values)
    }
}
