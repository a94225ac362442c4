//! ONNX export of a trained [`Network`], normalisation and output scaling included.
//!
//! The graph takes the raw input `input` (`[N, ...input shape]`, float32, `N` a symbolic
//! batch size), fills missing (`NaN`) values with the saved [`Imputer`]'s values when the model
//! has one (`IsNaN` + `Where`), applies the saved [`Normalizer`] as `nasforge predict` does
//! (subtract the training mean, divide by the standard deviation, clip to
//! ±[`Normalizer::CLIP`]), runs the
//! network, and returns `output`: the logits for classification (softmax not applied; a second
//! output `probabilities` holds the softmax — per position for a language model's `[T, V]`
//! logits) or the prediction in the target's own units for
//! regression. The file is written with a small hand-rolled protobuf writer ([`proto`]); the
//! default-domain opset is [`OPSET`] (IR version 8).
//!
//! The walk mirrors [`Network`]'s forward pass node for node, symbolic zeros included: a `Zero`
//! node produces no tensor, sums skip it, ops that map 0 to 0 pass it on, and it is
//! materialised (`ConstantOfShape` with the run-time batch size) only where the network
//! materialises it (batch norm, biased convolutions, linear layers, concatenation, the output).

pub mod proto;

use crate::bundle::ModelInfo;
use crate::data::{Imputer, Normalizer, Task};
use crate::model::{Layer, Network, LAYER_NORM_EPS};
use burn::prelude::*;
use nasforge_core::netspec::ops;
use nasforge_core::netspec::Op;
use nasforge_core::{Error, Result};
use proto::{Attr, Dim, Msg};
use std::collections::HashSet;

/// The default-domain operator set the exported graphs use.
pub const OPSET: i64 = 13;

/// What the exported graph wraps around the network.
#[derive(Clone, Debug)]
pub struct OnnxOptions {
    /// Shape of one raw input row, `[C, H, W]` or `[F]` (the data's; an MLP reading images
    /// has an image here and a vector as the network's input).
    pub input_shape: Vec<usize>,
    /// Fill values of missing (`NaN`) inputs, one per input element, applied before
    /// normalisation; `None` passes `NaN` through (a model trained on complete data).
    pub imputer: Option<Imputer>,
    /// Input normalisation (and, for regression, the target scale); `None` feeds the input as is.
    pub normalizer: Option<Normalizer>,
    /// Classification adds a `probabilities` output; regression un-scales `output`.
    pub task: Task,
    /// Class labels in output order, recorded in the model's metadata.
    pub classes: Vec<String>,
}

impl OnnxOptions {
    /// The options that reproduce `nasforge predict` for a saved model.
    pub fn for_model(info: &ModelInfo) -> Self {
        OnnxOptions {
            input_shape: info.input_shape.clone(),
            imputer: info.imputer.clone(),
            normalizer: info.normalizer.clone(),
            task: info.task,
            classes: info.classes.clone(),
        }
    }
}

/// Exports a saved model (`nasforge export --format onnx`).
pub fn export_model(info: &ModelInfo, net: &Network) -> Result<Vec<u8>> {
    if let Some([h, w]) = info.resize {
        return Err(Error::invalid(format!(
            "this model reads its images resized to {h}x{w} (`nasforge scale --resolutions`); ONNX export of a resized input is not supported yet: export a model scaled at resolution 1, or use `nasforge predict`"
        )));
    }
    export(net, &OnnxOptions::for_model(info))
}

/// Exports `net` wrapped as `opts` says; returns the bytes of the `.onnx` file.
pub fn export(net: &Network, opts: &OnnxOptions) -> Result<Vec<u8>> {
    let spec = net.spec();
    let net_shape = spec.input_shape();
    if opts.input_shape.iter().product::<usize>() != net_shape.iter().product::<usize>() {
        return Err(Error::invalid(format!(
            "input shape {:?} does not fit the network's input {net_shape:?}",
            opts.input_shape
        )));
    }
    let mut g = Graph::default();
    let mut x = "input".to_string();
    if let Some(imputer) = &opts.imputer {
        x = g.impute(&x, imputer, &opts.input_shape)?;
    }
    if let Some(norm) = &opts.normalizer {
        x = g.normalise(&x, norm, &opts.input_shape)?;
    }
    if opts.input_shape.as_slice() != net_shape {
        x = match net_shape {
            [_] => g.op("Flatten", "input/flatten", &[&x], &[Attr::Int("axis", 1)]),
            _ => {
                let mut dims = vec![-1i64];
                dims.extend(net_shape.iter().map(|&d| d as i64));
                let s = g.const_i64("input/shape", &dims);
                g.op("Reshape", "input/reshape", &[&x, &s], &[])
            }
        };
    }
    let body = g.network(net, x)?;
    let out_len: usize = spec.output_shape().iter().product();
    let mut outputs = vec![proto::value_info(
        "output",
        &[Dim::Named("N"), Dim::Fixed(out_len)],
    )];
    match (opts.task, opts.normalizer.as_ref().and_then(|n| n.target)) {
        (Task::Regression, Some((mean, std))) => {
            let s = g.const_f32("output/target_std", std);
            let m = g.const_f32("output/target_mean", mean);
            let scaled = g.op("Mul", "output/scale", &[&body, &s], &[]);
            g.node("Add", "output/shift", &[&scaled, &m], "output", &[]);
        }
        (Task::Regression, None) => g.node("Identity", "output", &[&body], "output", &[]),
        (Task::Classification | Task::LanguageModel, _) => {
            g.node("Identity", "output", &[&body], "output", &[]);
            match spec.output_shape() {
                // A language model's logits `[T, V]` per sample: a softmax per position.
                &[t, v] => {
                    let shape = g.const_i64("probabilities/shape", &[0, t as i64, v as i64]);
                    let r = g.op(
                        "Reshape",
                        "probabilities/positions",
                        &["output", &shape],
                        &[],
                    );
                    let s = g.op(
                        "Softmax",
                        "probabilities/softmax",
                        &[&r],
                        &[Attr::Int("axis", -1)],
                    );
                    g.node(
                        "Flatten",
                        "probabilities",
                        &[&s],
                        "probabilities",
                        &[Attr::Int("axis", 1)],
                    );
                }
                _ => g.node(
                    "Softmax",
                    "probabilities",
                    &["output"],
                    "probabilities",
                    &[Attr::Int("axis", 1)],
                ),
            }
            outputs.push(proto::value_info(
                "probabilities",
                &[Dim::Named("N"), Dim::Fixed(out_len)],
            ));
        }
    }
    let mut input_dims = vec![Dim::Named("N")];
    input_dims.extend(opts.input_shape.iter().map(|&d| Dim::Fixed(d)));
    let inputs = [proto::value_info("input", &input_dims)];
    let task = match opts.task {
        Task::Classification => "classification",
        Task::Regression => "regression",
        Task::LanguageModel => "lm",
    };
    let metadata = [
        ("task", task.to_string()),
        (
            "classes",
            serde_json::to_string(&opts.classes).expect("strings serialise"),
        ),
    ];
    Ok(proto::model(
        &proto::GraphParts {
            name: "nasforge",
            nodes: &g.nodes,
            initializers: &g.inits,
            inputs: &inputs,
            outputs: &outputs,
        },
        OPSET,
        "nasforge",
        &metadata,
    ))
}

/// A tensor between nodes: a named graph value or symbolic zeros.
#[derive(Clone, Debug)]
enum Value {
    Named(String),
    Zeros,
}

/// The graph under construction.
#[derive(Default)]
struct Graph {
    nodes: Vec<Msg>,
    inits: Vec<Msg>,
    names: HashSet<String>,
    /// The int64 `[1]` tensor holding the run-time batch size, once needed.
    batch: Option<String>,
}

fn floats(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float tensor")
}

fn floats_nd<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    let v = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float tensor");
    (dims, v)
}

impl Graph {
    /// A fresh value name based on `base`.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while !self.names.insert(name.clone()) {
            k += 1;
            name = format!("{base}_{k}");
        }
        name
    }

    /// Adds a node writing `output` (which must be fresh).
    fn node(&mut self, op_type: &str, name: &str, inputs: &[&str], output: &str, attrs: &[Attr]) {
        self.names.insert(output.to_string());
        self.nodes
            .push(proto::node(op_type, name, inputs, &[output], attrs));
    }

    /// Adds a node whose output is named after the node; returns the output name.
    fn op(&mut self, op_type: &str, name: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        let out = self.fresh(name);
        self.nodes
            .push(proto::node(op_type, &out, inputs, &[&out], attrs));
        out
    }

    fn init_f32(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(name);
        self.inits.push(proto::tensor_f32(&name, dims, values));
        name
    }

    /// A float scalar constant.
    fn const_f32(&mut self, name: &str, v: f32) -> String {
        self.init_f32(name, &[], &[v])
    }

    /// A float scalar constant shared by every node that needs it (`const/...` names).
    fn shared_f32(&mut self, name: &str, v: f32) -> String {
        if self.names.contains(name) {
            name.to_string()
        } else {
            self.const_f32(name, v)
        }
    }

    /// An int64 vector constant.
    fn const_i64(&mut self, name: &str, values: &[i64]) -> String {
        let name = self.fresh(name);
        self.inits
            .push(proto::tensor_i64(&name, &[values.len()], values));
        name
    }

    /// `NaN` inputs replaced by the imputer's fill values: `Where(IsNaN(x), fill, x)`, the
    /// fill tensor shaped like one input row (broadcast over the batch).
    fn impute(&mut self, x: &str, imputer: &Imputer, shape: &[usize]) -> Result<String> {
        if imputer.fill.len() != shape.iter().product::<usize>() {
            return Err(Error::invalid(format!(
                "the imputer ({} fill values) does not fit input shape {shape:?}",
                imputer.fill.len()
            )));
        }
        let fill = self.init_f32("input/fill", shape, &imputer.fill);
        let missing = self.op("IsNaN", "input/missing", &[x], &[]);
        Ok(self.op("Where", "input/impute", &[&missing, &fill, x], &[]))
    }

    /// A linear layer (burn stores the weight as `[in, out]`: `y = x W + b`): `Gemm` on
    /// vectors, `MatMul` and `Add` on sequences (Gemm takes matrices only).
    fn linear(&mut self, base: &str, x: &str, lin: &burn::nn::Linear, seq: bool) -> String {
        let (wd, wv) = floats_nd(lin.weight.val());
        let w = self.init_f32(&format!("{base}.weight"), &wd, &wv);
        let b = lin.bias.as_ref().map(|b| {
            let bv = floats(b.val());
            self.init_f32(&format!("{base}.bias"), &[bv.len()], &bv)
        });
        if !seq {
            let mut ins = vec![x, w.as_str()];
            ins.extend(b.as_deref());
            return self.op("Gemm", base, &ins, &[]);
        }
        match b {
            None => self.op("MatMul", base, &[x, &w], &[]),
            Some(b) => {
                let y = self.op("MatMul", &format!("{base}/matmul"), &[x, &w], &[]);
                self.op("Add", base, &[&y, &b], &[])
            }
        }
    }

    /// `(x - mean) / sqrt(var + 1e-5)` over the last axis (opset 13 has no LayerNormalization).
    fn standardise(&mut self, base: &str, x: &str) -> String {
        let axes = || vec![Attr::Ints("axes", vec![-1]), Attr::Int("keepdims", 1)];
        let mean = self.op("ReduceMean", &format!("{base}/mean"), &[x], &axes());
        let c = self.op("Sub", &format!("{base}/centre"), &[x, &mean], &[]);
        let sq = self.op("Mul", &format!("{base}/square"), &[&c, &c], &[]);
        let var = self.op("ReduceMean", &format!("{base}/var"), &[&sq], &axes());
        let eps = self.shared_f32("const/layer_norm_eps", LAYER_NORM_EPS as f32);
        let v = self.op("Add", &format!("{base}/eps"), &[&var, &eps], &[]);
        let sd = self.op("Sqrt", &format!("{base}/std"), &[&v], &[]);
        self.op("Div", &format!("{base}/norm"), &[&c, &sd], &[])
    }

    /// Multi-head self-attention on `x` `[N, T, D]` with the layer's projections.
    fn attention(
        &mut self,
        base: &str,
        x: &str,
        a: &crate::model::SelfAttention,
        (t, d, heads): (usize, usize, usize),
        causal: bool,
    ) -> String {
        let dh = d / heads;
        let qkv = self.linear(&format!("{base}/qkv"), x, &a.qkv, true);
        let shape = self.const_i64(
            &format!("{base}.split_shape"),
            &[0, t as i64, 3, heads as i64, dh as i64],
        );
        let r = self.op("Reshape", &format!("{base}/split"), &[&qkv, &shape], &[]);
        // [3, N, H, T, dh]
        let p = self.op(
            "Transpose",
            &format!("{base}/heads"),
            &[&r],
            &[Attr::Ints("perm", vec![2, 0, 3, 1, 4])],
        );
        let part = |g: &mut Graph, k: i64, name: &str| {
            let idx = g.init_i64_scalar(&format!("{base}.{name}_index"), k);
            g.op(
                "Gather",
                &format!("{base}/{name}"),
                &[&p, &idx],
                &[Attr::Int("axis", 0)],
            )
        };
        let q = part(self, 0, "q");
        let k = part(self, 1, "k");
        let v = part(self, 2, "v");
        let kt = self.op(
            "Transpose",
            &format!("{base}/kt"),
            &[&k],
            &[Attr::Ints("perm", vec![0, 1, 3, 2])],
        );
        let s = self.op("MatMul", &format!("{base}/scores"), &[&q, &kt], &[]);
        let scale = self.const_f32(&format!("{base}.scale"), 1.0 / (dh as f32).sqrt());
        let mut s = self.op("Mul", &format!("{base}/scaled"), &[&s, &scale], &[]);
        if causal {
            let mask: Vec<f32> = (0..t * t)
                .map(|k| {
                    if k % t > k / t {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
                .collect();
            let m = self.init_f32(&format!("{base}.causal_mask"), &[t, t], &mask);
            s = self.op("Add", &format!("{base}/masked"), &[&s, &m], &[]);
        }
        let w = self.op(
            "Softmax",
            &format!("{base}/weights"),
            &[&s],
            &[Attr::Int("axis", -1)],
        );
        let y = self.op("MatMul", &format!("{base}/mix"), &[&w, &v], &[]);
        let y = self.op(
            "Transpose",
            &format!("{base}/merge"),
            &[&y],
            &[Attr::Ints("perm", vec![0, 2, 1, 3])],
        );
        let shape = self.const_i64(&format!("{base}.merge_shape"), &[0, t as i64, d as i64]);
        let y = self.op("Reshape", &format!("{base}/merged"), &[&y, &shape], &[]);
        self.linear(&format!("{base}/proj"), &y, &a.proj, true)
    }

    /// An int64 scalar constant (an index for Gather that drops the axis).
    fn init_i64_scalar(&mut self, name: &str, v: i64) -> String {
        let name = self.fresh(name);
        self.inits.push(proto::tensor_i64(&name, &[], &[v]));
        name
    }

    /// `(x - mean) / std` clipped to ±CLIP, per channel (images) or feature (vectors).
    fn normalise(&mut self, x: &str, norm: &Normalizer, shape: &[usize]) -> Result<String> {
        let groups = norm.mean.len();
        let dims: Vec<usize> = match *shape {
            [c, h, w] if groups == c && norm.plane == h * w => vec![c, 1, 1],
            [f] if groups == f && norm.plane == 1 => vec![f],
            _ => {
                return Err(Error::invalid(format!(
                    "the normaliser ({groups} groups of {}) does not fit input shape {shape:?}",
                    norm.plane
                )))
            }
        };
        let mean = self.init_f32("input/mean", &dims, &norm.mean);
        let std = self.init_f32("input/std", &dims, &norm.std);
        let lo = self.const_f32("input/clip_min", -Normalizer::CLIP);
        let hi = self.const_f32("input/clip_max", Normalizer::CLIP);
        let centred = self.op("Sub", "input/centre", &[x, &mean], &[]);
        let scaled = self.op("Div", "input/scale", &[&centred, &std], &[]);
        Ok(self.op("Clip", "input/clip", &[&scaled, &lo, &hi], &[]))
    }

    /// Zeros of shape `[N, ...shape]`, `N` read from the input at run time.
    fn zeros(&mut self, shape: &[usize]) -> String {
        let batch = match &self.batch {
            Some(b) => b.clone(),
            None => {
                let s = self.op("Shape", "batch/shape", &["input"], &[]);
                let zero = self.const_i64("batch/start", &[0]);
                let one = self.const_i64("batch/end", &[1]);
                let b = self.op("Slice", "batch/size", &[&s, &zero, &one], &[]);
                self.batch = Some(b.clone());
                b
            }
        };
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let rest = self.const_i64("zeros/dims", &dims);
        let full = self.op(
            "Concat",
            "zeros/shape",
            &[&batch, &rest],
            &[Attr::Int("axis", 0)],
        );
        self.op(
            "ConstantOfShape",
            "zeros",
            &[&full],
            &[Attr::Tensor("value", proto::tensor_f32("", &[1], &[0.0]))],
        )
    }

    /// The nodes of `net` reading `input`; returns the name of its `[N, outputs]` result.
    fn network(&mut self, net: &Network, input: String) -> Result<String> {
        let spec = net.spec();
        let nodes = spec.nodes();
        let mut values: Vec<Option<Value>> = vec![None; nodes.len()];
        values[0] = Some(Value::Named(input));
        // The initializer of each embedding's table, which a tied head reads too.
        let mut tables: std::collections::HashMap<usize, String> = Default::default();
        for (i, node) in nodes.iter().enumerate().skip(1) {
            let base = if node.scope.is_empty() {
                format!("{}{i}", node.op.kind())
            } else {
                format!("{}/{}{i}", node.scope, node.op.kind())
            };
            let args: Vec<Value> = node
                .inputs
                .iter()
                .map(|&j| values[j].clone().expect("inputs come first"))
                .collect();
            // A real tensor for input k: symbolic zeros are materialised.
            let real = |g: &mut Graph, k: usize| -> String {
                match &args[k] {
                    Value::Named(n) => n.clone(),
                    Value::Zeros => g.zeros(&nodes[node.inputs[k]].shape),
                }
            };
            let named = |g: &mut Graph, op: &str, attrs: &[Attr]| -> Value {
                match &args[0] {
                    Value::Zeros => Value::Zeros,
                    Value::Named(x) => Value::Named(g.op(op, &base, &[x], attrs)),
                }
            };
            let out = match (&node.op, &net.layers()[i]) {
                (
                    Op::Conv2d(ops::Conv2d {
                        kernel,
                        stride,
                        padding,
                        dilation,
                        groups,
                        bias,
                        ..
                    }),
                    Layer::Conv(conv),
                ) => {
                    if !bias && matches!(args[0], Value::Zeros) {
                        Value::Zeros
                    } else {
                        let x = real(self, 0);
                        let (wd, wv) = floats_nd(conv.weight.val());
                        let w = self.init_f32(&format!("{base}.weight"), &wd, &wv);
                        let mut ins = vec![x, w];
                        if let Some(b) = &conv.bias {
                            let bv = floats(b.val());
                            ins.push(self.init_f32(&format!("{base}.bias"), &[bv.len()], &bv));
                        }
                        let (k, s, p, d) = (
                            *kernel as i64,
                            *stride as i64,
                            *padding as i64,
                            *dilation as i64,
                        );
                        let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                        Value::Named(self.op(
                            "Conv",
                            &base,
                            &ins,
                            &[
                                Attr::Ints("kernel_shape", vec![k, k]),
                                Attr::Ints("strides", vec![s, s]),
                                Attr::Ints("pads", vec![p, p, p, p]),
                                Attr::Ints("dilations", vec![d, d]),
                                Attr::Int("group", *groups as i64),
                            ],
                        ))
                    }
                }
                (Op::BatchNorm(_), Layer::Norm(bn)) => {
                    // Whatever scale and shift the layer holds (1 and 0 for an untrained one).
                    let x = real(self, 0);
                    let mut ins = vec![x];
                    for (suffix, t) in [
                        ("scale", bn.gamma.val()),
                        ("bias", bn.beta.val()),
                        ("running_mean", bn.running_mean.value()),
                        ("running_var", bn.running_var.value()),
                    ] {
                        let v = floats(t);
                        ins.push(self.init_f32(&format!("{base}.{suffix}"), &[v.len()], &v));
                    }
                    let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                    Value::Named(self.op(
                        "BatchNormalization",
                        &base,
                        &ins,
                        &[Attr::Float("epsilon", bn.epsilon as f32)],
                    ))
                }
                (Op::Linear(_) | Op::LmHead(_), Layer::Linear(lin)) => {
                    let x = real(self, 0);
                    let seq = nodes[node.inputs[0]].shape.len() == 2;
                    Value::Named(self.linear(&base, &x, lin, seq))
                }
                (Op::Embedding(_), Layer::Embed(e)) => {
                    let x = real(self, 0);
                    let ids = self.op(
                        "Cast",
                        &format!("{base}/ids"),
                        &[&x],
                        &[Attr::Int("to", proto::INT64)],
                    );
                    let (wd, wv) = floats_nd(e.weight.val());
                    let w = self.init_f32(&format!("{base}.weight"), &wd, &wv);
                    let out = self.op("Gather", &base, &[&w, &ids], &[Attr::Int("axis", 0)]);
                    tables.insert(i, w);
                    Value::Named(out)
                }
                (Op::Position(_), layer) => {
                    let x = real(self, 0);
                    let shape = &node.shape;
                    let table = match layer {
                        Layer::Position(p) => floats_nd(p.val()).1,
                        _ => crate::model::sinusoidal(shape[0], shape[1]),
                    };
                    let p = self.init_f32(&format!("{base}.table"), shape, &table);
                    Value::Named(self.op("Add", &base, &[&x, &p], &[]))
                }
                (Op::LayerNorm(_), layer) => match (&args[0], layer) {
                    (Value::Zeros, Layer::Fixed(_)) => Value::Zeros,
                    (_, layer) => {
                        let x = real(self, 0);
                        let y = self.standardise(&base, &x);
                        match layer {
                            Layer::LayerNorm(ln) => {
                                let gv = floats(ln.gamma.val());
                                let g = self.init_f32(&format!("{base}.scale"), &[gv.len()], &gv);
                                let mut y =
                                    self.op("Mul", &format!("{base}/scale"), &[&y, &g], &[]);
                                if let Some(b) = &ln.beta {
                                    let bv = floats(b.val());
                                    let b =
                                        self.init_f32(&format!("{base}.bias"), &[bv.len()], &bv);
                                    y = self.op("Add", &base, &[&y, &b], &[]);
                                }
                                Value::Named(y)
                            }
                            _ => Value::Named(y),
                        }
                    }
                },
                (Op::Attention(ops::Attention { heads, causal, .. }), Layer::Attention(a)) => {
                    let x = real(self, 0);
                    let [t, d] = node.shape[..] else {
                        unreachable!("attention is [T, D]")
                    };
                    Value::Named(self.attention(&base, &x, a, (t, d, *heads), *causal))
                }
                (Op::SeqPool(ops::SeqPool { mode }), _) => match (&args[0], mode) {
                    (Value::Zeros, _) => Value::Zeros,
                    (Value::Named(x), ops::Pooling::Mean) => Value::Named(self.op(
                        "ReduceMean",
                        &base,
                        &[x],
                        &[Attr::Ints("axes", vec![1]), Attr::Int("keepdims", 0)],
                    )),
                    (Value::Named(x), ops::Pooling::First) => {
                        let zero = self.init_i64_scalar(&format!("{base}.index"), 0);
                        Value::Named(self.op("Gather", &base, &[x, &zero], &[Attr::Int("axis", 1)]))
                    }
                },
                (Op::LmHead(ops::LmHead { tied: true, .. }), _) => match &args[0] {
                    Value::Zeros => Value::Zeros,
                    Value::Named(x) => {
                        // The embedding's own initializer, transposed in the graph: the file
                        // holds the shared table once.
                        let table = spec
                            .tied_table(i)
                            .and_then(|e| tables.get(&e))
                            .expect("NetSpec checks a tied head's embedding, which comes first")
                            .clone();
                        let w = self.op(
                            "Transpose",
                            &format!("{base}/table"),
                            &[&table],
                            &[Attr::Ints("perm", vec![1, 0])],
                        );
                        Value::Named(self.op("MatMul", &base, &[x, &w], &[]))
                    }
                },
                (Op::SeqConv(ops::SeqConv { kernel, causal }), Layer::SeqConv(conv)) => {
                    let x = real(self, 0);
                    let d = node.shape[1];
                    let xt = self.op(
                        "Transpose",
                        &format!("{base}/in"),
                        &[&x],
                        &[Attr::Ints("perm", vec![0, 2, 1])],
                    );
                    let (wd, wv) = floats_nd(conv.weight.val());
                    let w = self.init_f32(&format!("{base}.weight"), &wd, &wv);
                    let bv = floats(
                        conv.bias
                            .as_ref()
                            .expect("sequence convolutions have a bias")
                            .val(),
                    );
                    let b = self.init_f32(&format!("{base}.bias"), &[bv.len()], &bv);
                    let k = *kernel as i64;
                    let pads = if *causal {
                        vec![k - 1, 0]
                    } else {
                        vec![k / 2, k / 2]
                    };
                    let y = self.op(
                        "Conv",
                        &format!("{base}/conv"),
                        &[&xt, &w, &b],
                        &[
                            Attr::Ints("kernel_shape", vec![k]),
                            Attr::Ints("pads", pads),
                            Attr::Int("group", d as i64),
                        ],
                    );
                    Value::Named(self.op(
                        "Transpose",
                        &base,
                        &[&y],
                        &[Attr::Ints("perm", vec![0, 2, 1])],
                    ))
                }
                (Op::Dropout(_), _) | (Op::Identity, _) => args[0].clone(),
                (Op::Zero(_), _) => Value::Zeros,
                (Op::Relu, _) => named(self, "Relu", &[]),
                (Op::Tanh, _) => named(self, "Tanh", &[]),
                (Op::Silu, _) => match &args[0] {
                    Value::Zeros => Value::Zeros,
                    Value::Named(x) => {
                        let s = self.op("Sigmoid", &format!("{base}/sigmoid"), &[x], &[]);
                        Value::Named(self.op("Mul", &base, &[x, &s], &[]))
                    }
                },
                (Op::Gelu, _) => match &args[0] {
                    Value::Zeros => Value::Zeros,
                    // Opset 13 has no Gelu; burn's is the exact one: x/2 * (1 + erf(x/√2)).
                    Value::Named(x) => {
                        let r2 = self.shared_f32("const/sqrt2", std::f32::consts::SQRT_2);
                        let one = self.shared_f32("const/one", 1.0);
                        let half = self.shared_f32("const/half", 0.5);
                        let d = self.op("Div", &format!("{base}/div"), &[x, &r2], &[]);
                        let e = self.op("Erf", &format!("{base}/erf"), &[&d], &[]);
                        let p = self.op("Add", &format!("{base}/add"), &[&e, &one], &[]);
                        let h = self.op("Mul", &format!("{base}/half"), &[x, &half], &[]);
                        Value::Named(self.op("Mul", &base, &[&h, &p], &[]))
                    }
                },
                (
                    Op::MaxPool(ops::MaxPool {
                        kernel,
                        stride,
                        padding,
                    }),
                    _,
                ) => {
                    let (k, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                    named(
                        self,
                        "MaxPool",
                        &[
                            Attr::Ints("kernel_shape", vec![k, k]),
                            Attr::Ints("strides", vec![s, s]),
                            Attr::Ints("pads", vec![p, p, p, p]),
                        ],
                    )
                }
                (
                    Op::AvgPool(ops::AvgPool {
                        kernel,
                        stride,
                        padding,
                        count_include_pad,
                    }),
                    _,
                ) => {
                    let (k, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                    named(
                        self,
                        "AveragePool",
                        &[
                            Attr::Ints("kernel_shape", vec![k, k]),
                            Attr::Ints("strides", vec![s, s]),
                            Attr::Ints("pads", vec![p, p, p, p]),
                            Attr::Int("count_include_pad", *count_include_pad as i64),
                        ],
                    )
                }
                (Op::GlobalAvgPool, _) => match &args[0] {
                    Value::Zeros => Value::Zeros,
                    Value::Named(x) => {
                        let p = self.op("GlobalAveragePool", &format!("{base}/pool"), &[x], &[]);
                        Value::Named(self.op("Flatten", &base, &[&p], &[Attr::Int("axis", 1)]))
                    }
                },
                (Op::Flatten, _) => {
                    if nodes[node.inputs[0]].shape.len() == 1 {
                        args[0].clone()
                    } else {
                        named(self, "Flatten", &[Attr::Int("axis", 1)])
                    }
                }
                (Op::Crop(ops::Crop { offset }), _) => match &args[0] {
                    Value::Zeros => Value::Zeros,
                    Value::Named(x) => {
                        let o = *offset as i64;
                        let starts = self.const_i64(&format!("{base}.starts"), &[o, o]);
                        let ends = self.const_i64(&format!("{base}.ends"), &[i64::MAX, i64::MAX]);
                        let axes = self.const_i64(&format!("{base}.axes"), &[2, 3]);
                        Value::Named(self.op("Slice", &base, &[x, &starts, &ends, &axes], &[]))
                    }
                },
                (Op::Add, _) => {
                    let live: Vec<&str> = args
                        .iter()
                        .filter_map(|a| match a {
                            Value::Named(n) => Some(n.as_str()),
                            Value::Zeros => None,
                        })
                        .collect();
                    match live[..] {
                        [] => Value::Zeros,
                        [one] => Value::Named(one.to_string()),
                        _ => Value::Named(self.op("Sum", &base, &live, &[])),
                    }
                }
                (Op::Concat, _) => {
                    let parts: Vec<String> = (0..args.len()).map(|k| real(self, k)).collect();
                    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                    Value::Named(self.op("Concat", &base, &parts, &[Attr::Int("axis", 1)]))
                }
                (
                    op @ (Op::Input
                    | Op::Conv2d(_)
                    | Op::BatchNorm(_)
                    | Op::Linear(_)
                    | Op::ChannelMask(_)
                    | Op::Embedding(_)
                    | Op::Attention(_)
                    | Op::LmHead(_)
                    | Op::SeqConv(_)),
                    layer,
                ) => {
                    return Err(Error::invalid(format!(
                        "node {i} ({}): no ONNX mapping for this op with layer {}",
                        op.kind(),
                        match layer {
                            Layer::Conv(_) => "conv",
                            Layer::Norm(_) => "norm",
                            Layer::Linear(_) => "linear",
                            Layer::Dropout(_) => "dropout",
                            Layer::Embed(_) => "embedding",
                            Layer::Position(_) => "position",
                            Layer::LayerNorm(_) => "layer norm",
                            Layer::Attention(_) => "attention",
                            Layer::SeqConv(_) => "seq conv",
                            Layer::KernelMap(_) => "kernel map",
                            Layer::Fixed(_) => "none",
                        }
                    )))
                }
            };
            values[i] = Some(out);
        }
        let out = values[spec.output()].take().expect("output computed");
        Ok(match out {
            Value::Zeros => {
                let n: usize = spec.output_shape().iter().product();
                self.zeros(&[n])
            }
            Value::Named(x) if spec.output_shape().len() > 1 => {
                self.op("Flatten", "head/flatten", &[&x], &[Attr::Int("axis", 1)])
            }
            Value::Named(x) => x,
        })
    }
}
