//! Zero-cost proxies: scores of an untrained network that rank architectures without training.
//!
//! Definitions follow Abdelfattah et al. 2021 ("Zero-Cost Proxies for Lightweight NAS") and
//! Mellor et al. 2021 ("Neural Architecture Search without Training"), all at initialisation:
//!
//! | proxy | what it sums |
//! | --- | --- |
//! | `synflow` | Σ θ·∂R/∂θ, R = Σ output on an all-ones input, |weights|, no batch norm, float64 ([`synflow`]) |
//! | `snip` | Σ \|θ·∂L/∂θ\| over conv and linear weights, L = loss on a batch |
//! | `grad_norm` | Σ over conv and linear layers of ‖∂L/∂W‖₂ |
//! | `fisher` | per conv/linear output channel ½·mean over the batch of (Σ_spatial act·∂L/∂act)² |
//! | `jacob_cov` | −Σ log(λ+k) + 1/(λ+k), k = 1e-5, λ the eigenvalues of the correlation matrix of the per-sample input Jacobians of Σ output |
//! | `naswot` | log det K, K = N_A − Hamming distance between the samples' binary ReLU codes |
//! | `params`, `macs` | [`NetSpec::params`], [`NetSpec::macs`] |
//!
//! The data-dependent proxies read a [`ProxyBatch`]: rows of a data set, or seeded Gaussian
//! noise when there is none. Every proxy is deterministic: the network's weights come from the
//! seed, and each pass re-seeds the device, so a proxy's value does not depend on which others
//! were asked for. Degenerate cases are `-inf`, never NaN: `naswot` when two samples have the
//! same codes or the network has no ReLU (K is singular) and `jacob_cov` when a sample's Jacobian is constant (its
//! correlation is undefined). The loss is cross-entropy for classification, MSE for regression.

mod grad;
mod linalg;
mod synflow;

pub use synflow::synflow;

use crate::data::{Dataset, Targets};
use crate::device::DeviceKind;
use crate::train::{rng_turn, seeded_network};
use nasforge_core::netspec::NetSpec;
use nasforge_core::rng::Rng;
use nasforge_core::{Error, Result};

/// One zero-cost proxy. Higher is better for every one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proxy {
    /// Synaptic flow, data-free, float64.
    Synflow,
    /// Connection sensitivity.
    Snip,
    /// Sum of per-layer gradient norms.
    GradNorm,
    /// Fisher information of activation channels.
    Fisher,
    /// Jacobian covariance (Mellor et al. v1).
    JacobCov,
    /// Log-determinant of the ReLU-code kernel (Mellor et al. v2).
    Naswot,
    /// Trainable parameters.
    Params,
    /// Multiply-accumulates per sample.
    Macs,
}

impl Proxy {
    /// Every proxy, in the order reports list them.
    pub const ALL: [Proxy; 8] = [
        Proxy::Synflow,
        Proxy::Snip,
        Proxy::GradNorm,
        Proxy::Fisher,
        Proxy::JacobCov,
        Proxy::Naswot,
        Proxy::Params,
        Proxy::Macs,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Proxy::Synflow => "synflow",
            Proxy::Snip => "snip",
            Proxy::GradNorm => "grad_norm",
            Proxy::Fisher => "fisher",
            Proxy::JacobCov => "jacob_cov",
            Proxy::Naswot => "naswot",
            Proxy::Params => "params",
            Proxy::Macs => "macs",
        }
    }

    /// Reads a proxy name; an unknown one is an error listing the known ones.
    pub fn parse(name: &str) -> Result<Proxy> {
        Proxy::ALL
            .into_iter()
            .find(|p| p.name() == name.trim())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown proxy `{name}`; choose from: {} (or `all`)",
                    Proxy::ALL.map(Proxy::name).join(", ")
                ))
            })
    }

    /// Reads a comma-separated list (`all` for every proxy), dropping repeats.
    pub fn parse_list(list: &str) -> Result<Vec<Proxy>> {
        if list.trim() == "all" {
            return Ok(Proxy::ALL.to_vec());
        }
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let p = Proxy::parse(name)?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            return Err(Error::invalid(format!(
                "no proxy named; choose from: {} (or `all`)",
                Proxy::ALL.map(Proxy::name).join(", ")
            )));
        }
        Ok(out)
    }

    /// Whether the proxy reads the batch (all but `synflow`, `params` and `macs`).
    pub fn needs_data(self) -> bool {
        !matches!(self, Proxy::Synflow | Proxy::Params | Proxy::Macs)
    }
}

/// Whether `p` is one of the proxies computed together from one loss pass (snip, grad_norm,
/// fisher, naswot): asking for several of them in one [`score`] call costs one pass.
pub fn shares_loss_pass(p: Proxy) -> bool {
    matches!(
        p,
        Proxy::Snip | Proxy::GradNorm | Proxy::Fisher | Proxy::Naswot
    )
}

/// Batch targets of a [`ProxyBatch`].
#[derive(Clone, Debug, PartialEq)]
pub enum BatchTargets {
    /// Class ids below the network's number of outputs.
    Classes(Vec<usize>),
    /// Regression values (one output).
    Values(Vec<f32>),
}

/// The batch the data-dependent proxies read: rows of a data set, or noise.
#[derive(Clone, Debug)]
pub struct ProxyBatch {
    /// Row-major inputs, `rows * row_len` values.
    pub x: Vec<f32>,
    /// Shape of one row: `[C, H, W]` or `[F]`.
    pub shape: Vec<usize>,
    /// One target per row.
    pub targets: BatchTargets,
    /// Where the rows came from (a data set's source, or a note that they are noise).
    pub source: String,
}

/// The default batch size of the data-dependent proxies.
pub const DEFAULT_BATCH: usize = 64;

impl ProxyBatch {
    /// `rows` rows of `data` drawn without replacement from `seed` (all rows when it has fewer).
    pub fn from_dataset(data: &Dataset, rows: usize, seed: u64) -> Result<ProxyBatch> {
        let all: Vec<usize> = (0..data.len()).collect();
        Self::from_rows(data, &all, rows, seed)
    }

    /// `rows` rows drawn without replacement from `seed` among `candidates` (row indices of
    /// `data`, e.g. the training split), all of them when there are fewer.
    pub fn from_rows(
        data: &Dataset,
        candidates: &[usize],
        rows: usize,
        seed: u64,
    ) -> Result<ProxyBatch> {
        if candidates.is_empty() || rows == 0 {
            return Err(Error::invalid(format!(
                "{}: a proxy batch needs at least one row",
                data.source
            )));
        }
        let idx: Vec<usize> = Rng::new(seed ^ 0xBA7C)
            .sample_indices(candidates.len(), rows.min(candidates.len()))
            .into_iter()
            .map(|i| candidates[i])
            .collect();
        let mut x = Vec::with_capacity(idx.len() * data.row_len());
        for &r in &idx {
            x.extend_from_slice(data.row(r));
        }
        let targets = match &data.targets {
            Targets::Classes { ids, .. } => {
                BatchTargets::Classes(idx.iter().map(|&r| ids[r] as usize).collect())
            }
            Targets::Values(v) => BatchTargets::Values(idx.iter().map(|&r| v[r]).collect()),
            Targets::Tokens { .. } => {
                return Err(Error::invalid(format!(
                    "{}: the data-dependent proxies do not read a language model's rows yet; score language models on random token ids (without --data) or with params/macs",
                    data.source
                )))
            }
        };
        Ok(ProxyBatch {
            x,
            shape: data.shape.clone(),
            targets,
            source: format!("{} rows of {}", idx.len(), data.source),
        })
    }

    /// `rows` rows of standard Gaussian noise of `shape` with uniform random labels below
    /// `classes`, from `seed`: what the data-dependent proxies read when there is no data.
    pub fn noise(shape: &[usize], classes: usize, rows: usize, seed: u64) -> ProxyBatch {
        let mut rng = Rng::new(seed ^ 0x0015E);
        let len = rows * shape.iter().product::<usize>();
        let mut x = Vec::with_capacity(len + 1);
        while x.len() < len {
            // Box-Muller: two uniforms in (0, 1] give two independent normals.
            let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            x.push((r * t.cos()) as f32);
            x.push((r * t.sin()) as f32);
        }
        x.truncate(len);
        let targets = BatchTargets::Classes((0..rows).map(|_| rng.below(classes.max(1))).collect());
        ProxyBatch {
            x,
            shape: shape.to_vec(),
            targets,
            source: format!("{rows} rows of seeded Gaussian noise (no data set given)"),
        }
    }

    /// [`ProxyBatch::noise`] shaped for `spec`: its input shape, its outputs as classes, and
    /// for a network that reads token ids, ids drawn uniformly from its vocabulary instead of
    /// Gaussian values.
    pub fn noise_for(spec: &NetSpec, rows: usize, seed: u64) -> ProxyBatch {
        let classes = spec.output_shape().iter().product();
        let mut batch = Self::noise(spec.input_shape(), classes, rows, seed);
        if let Some(vocab) = spec.token_vocab() {
            let mut rng = Rng::new(seed ^ 0x70CE);
            batch
                .x
                .iter_mut()
                .for_each(|v| *v = rng.below(vocab) as f32);
            batch.source = format!("{rows} rows of seeded random token ids (no data set given)");
        }
        batch
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        match &self.targets {
            BatchTargets::Classes(c) => c.len(),
            BatchTargets::Values(v) => v.len(),
        }
    }

    /// Checks that `spec` can read this batch: same row shape, and outputs that fit the targets.
    pub fn check(&self, spec: &NetSpec) -> Result<()> {
        if spec.input_shape() != self.shape.as_slice() {
            return Err(Error::invalid(format!(
                "the proxy batch ({}) has rows of shape {:?} but the network takes {:?}; size the space to the data (e.g. --space-param input=...)",
                self.source,
                self.shape,
                spec.input_shape()
            )));
        }
        if let Some(vocab) = spec.token_vocab() {
            if let Some(v) = self
                .x
                .iter()
                .find(|&&v| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < vocab))
            {
                return Err(Error::invalid(format!(
                    "the proxy batch ({}) holds {v}, not a token id below the vocabulary of {vocab}",
                    self.source
                )));
            }
        }
        let outputs = spec.output_shape().iter().product::<usize>();
        match &self.targets {
            BatchTargets::Classes(c) => {
                if let Some(&max) = c.iter().max() {
                    if max >= outputs {
                        return Err(Error::invalid(format!(
                            "the proxy batch ({}) has class id {max} but the network has {outputs} outputs; set --space-param classes=...",
                            self.source
                        )));
                    }
                }
            }
            BatchTargets::Values(_) if outputs != 1 => {
                return Err(Error::invalid(format!(
                    "the proxy batch ({}) is regression but the network has {outputs} outputs; set --space-param classes=1",
                    self.source
                )))
            }
            BatchTargets::Values(_) => {}
        }
        Ok(())
    }
}

/// Scores `spec` by each of `proxies` (in that order) on a network initialised from `seed`;
/// the data-dependent ones read `batch`. Deterministic: same inputs, same numbers.
pub fn score(spec: &NetSpec, proxies: &[Proxy], batch: &ProxyBatch, seed: u64) -> Result<Vec<f64>> {
    if proxies.iter().any(|p| p.needs_data()) {
        batch.check(spec)?;
    }
    let needs_net = proxies
        .iter()
        .any(|p| !matches!(p, Proxy::Params | Proxy::Macs));
    // burn flex's RNG is process-wide: hold the turn while initialising and running passes
    // that may draw (dropout).
    let _turn = needs_net.then(rng_turn);
    let dev = DeviceKind::Cpu.training_device();
    let net = needs_net.then(|| seeded_network(spec, &dev, seed));
    let mut loss_pass = None;
    let mut out = Vec::with_capacity(proxies.len());
    for &p in proxies {
        let v = match p {
            Proxy::Params => spec.params() as f64,
            Proxy::Macs => spec.macs() as f64,
            Proxy::Synflow => synflow(net.as_ref().expect("built"))?,
            Proxy::JacobCov if spec.reads_tokens() => {
                return Err(Error::invalid(
                    "jacob_cov reads gradients with respect to the input, and token ids have none; use grad_norm, snip, fisher, naswot, params or macs",
                ))
            }
            Proxy::JacobCov => {
                dev.seed(seed ^ 0x1AC0);
                grad::jacob_cov(net.as_ref().expect("built"), batch, &dev)
            }
            p if shares_loss_pass(p) => {
                let s = loss_pass.get_or_insert_with(|| {
                    dev.seed(seed ^ 0x1055);
                    grad::loss_pass(net.as_ref().expect("built"), batch, &dev)
                });
                match p {
                    Proxy::Snip => s.snip,
                    Proxy::GradNorm => s.grad_norm,
                    Proxy::Fisher => s.fisher,
                    _ => s.naswot,
                }
            }
            _ => unreachable!("every proxy is matched above"),
        };
        out.push(v);
    }
    Ok(out)
}
