//! One-shot methods with architecture parameters α (one logit per option of every choice)
//! learned beside the supernet's weights: DARTS (first and second order), GDAS and ENAS.
//!
//! Every training step first takes an α step on a batch drawn from the validation rows, then
//! the weight step on the loop's training batch with α held fixed:
//! - **DARTS** (Liu et al., ICLR 2019) runs every candidate, its output weighted by
//!   softmax(α). First order differentiates the validation loss at the current weights; second
//!   order through one unrolled weight step ([`unrolled_alpha_grad`]). Left alone DARTS tends to
//!   collapse onto parameter-free ops (all `skip_connect` on NAS-Bench-201 scores 54.30% on
//!   CIFAR-10); [`Guard`] picks the fix: β-DARTS' Beta-Decay regularisation (Ye et al., CVPR
//!   2022; the CLI's default) or DARTS-' auxiliary skip connection (Chu et al., ICLR 2021;
//!   measured to collapse on the digits, docs/ONESHOT.md).
//! - **GDAS** (Dong & Yang, CVPR 2019) draws one candidate per choice with the Gumbel-max trick
//!   and runs it alone; in the α step its output is multiplied by the hard straight-through
//!   Gumbel-softmax weight (1 in value), so α get the relaxed sample's gradient. The
//!   temperature τ falls linearly from 10 to 0.1.
//! - **ENAS** (Pham et al., ICML 2018) with α as the logits of its controller (a softmax policy
//!   per choice): the weight step trains a path drawn from the policy, the α step follows the
//!   REINFORCE gradient of minus a drawn path's validation loss ([`policy_gradient`]).
//!
//! α have their own Adam optimiser (β₁ 0.5, β₂ 0.999, L2 decay), as in DARTS. After every epoch
//! the derived arch (argmax α per choice) and softmax(α) are recorded in the [`ArchState`].

use super::{Path, Plan};
use crate::data::Dataset;
use crate::model::Network;
use crate::train::loop_::{gather, global_norm, Loss};
use crate::train::TrainError;
use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::Gradients;
use nasforge_core::netspec::Op;
use nasforge_core::rng::Rng;
use serde::{Deserialize, Serialize};

/// The α learning rate. DARTS' 3e-4 is meant for tens of thousands of steps on CIFAR-10; a
/// search on a few thousand rows takes a few hundred, and α would barely leave their start.
pub const DEFAULT_ARCH_LR: f64 = 3e-3;

/// L2 decay of α (DARTS' 1e-3).
pub const DEFAULT_ARCH_WEIGHT_DECAY: f64 = 1e-3;

const ADAM_BETA1: f64 = 0.5;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

/// DARTS' guard against collapsing onto parameter-free ops.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Guard {
    /// α alone.
    None,
    /// DARTS-' auxiliary skip connection: `β·x` on every mixed module with an identity option,
    /// β falling linearly from 1 to 0.
    AuxSkip,
    /// β-DARTS' Beta-Decay regularisation: `lambda` times the mean over choices of
    /// logsumexp(α) added to the α loss (its gradient, softmax(α), holds back the options
    /// that dominate).
    BetaDecay {
        /// The regularisation's weight.
        lambda: f64,
    },
}

/// β-DARTS' weight of the Beta-Decay term.
pub const DEFAULT_BETA_DECAY: f64 = 0.5;

/// How α shape a training step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Relaxation {
    /// Every candidate weighted by softmax(α), with a guard against collapse.
    Darts {
        /// The guard.
        guard: Guard,
        /// DARTS' second-order α gradient: through one unrolled weight step, its
        /// Hessian-vector product by finite differences (about 2× the first order's time).
        #[serde(default)]
        second_order: bool,
    },
    /// One Gumbel-max sample per choice, straight-through gradient, τ from `tau_max` down to
    /// `tau_min`, linearly.
    Gdas {
        /// Temperature at the first step.
        tau_max: f64,
        /// Temperature at the last step.
        tau_min: f64,
    },
    /// ENAS: α are the logits of a REINFORCE controller (a softmax policy per choice). Each
    /// weight step trains a path drawn from the policy; each α step draws a path, rewards it
    /// with minus its loss on a validation batch under the shared weights, and follows the
    /// policy gradient against a moving-average baseline, with an entropy bonus.
    Enas {
        /// Weight of the policy's entropy in the controller's objective.
        entropy: f64,
        /// Decay of the reward's moving average (the baseline).
        baseline_decay: f64,
    },
}

/// The architecture parameters' method and optimiser settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchConfig {
    /// The method.
    pub relaxation: Relaxation,
    /// Adam's learning rate for α.
    pub lr: f64,
    /// L2 decay of α.
    pub weight_decay: f64,
}

impl ArchConfig {
    /// DARTS (first order) with `guard`.
    pub fn darts(guard: Guard) -> Self {
        Self::with(Relaxation::Darts {
            guard,
            second_order: false,
        })
    }

    /// DARTS with the second-order α gradient.
    pub fn darts_second_order(guard: Guard) -> Self {
        Self::with(Relaxation::Darts {
            guard,
            second_order: true,
        })
    }

    /// ENAS' controller (entropy weight 1e-4, baseline decay 0.95).
    pub fn enas() -> Self {
        Self::with(Relaxation::Enas {
            entropy: 1e-4,
            baseline_decay: 0.95,
        })
    }

    /// GDAS with τ from 10 to 0.1.
    pub fn gdas() -> Self {
        Self::with(Relaxation::Gdas {
            tau_max: 10.0,
            tau_min: 0.1,
        })
    }

    fn with(relaxation: Relaxation) -> Self {
        ArchConfig {
            relaxation,
            lr: DEFAULT_ARCH_LR,
            weight_decay: DEFAULT_ARCH_WEIGHT_DECAY,
        }
    }

    /// The method's name (`darts`, `gdas`): what a checkpoint records.
    pub fn method(&self) -> &'static str {
        match self.relaxation {
            Relaxation::Darts { .. } => "darts",
            Relaxation::Gdas { .. } => "gdas",
            Relaxation::Enas { .. } => "enas",
        }
    }

    /// Checks the numbers.
    pub fn validate(&self) -> nasforge_core::Result<()> {
        let bad = |what: &str, v: f64| {
            Err(nasforge_core::Error::invalid(format!(
                "the architecture {what} must be a finite positive number (got {v})"
            )))
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("learning rate", self.lr);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight decay", self.weight_decay);
        }
        if let Relaxation::Darts {
            guard: Guard::BetaDecay { lambda },
            ..
        } = self.relaxation
        {
            if !(lambda.is_finite() && lambda >= 0.0) {
                return bad("Beta-Decay weight", lambda);
            }
        }
        if let Relaxation::Enas {
            entropy,
            baseline_decay,
        } = self.relaxation
        {
            if !(entropy.is_finite() && entropy >= 0.0) {
                return bad("entropy weight", entropy);
            }
            if !(0.0..1.0).contains(&baseline_decay) {
                return bad("baseline decay (below 1)", baseline_decay);
            }
        }
        if let Relaxation::Gdas { tau_max, tau_min } = self.relaxation {
            if !(tau_min.is_finite() && tau_min > 0.0 && tau_max.is_finite() && tau_max >= tau_min)
            {
                return bad("temperature range", tau_min);
            }
        }
        Ok(())
    }
}

/// What one finished epoch left in α.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Per choice, softmax(α) over its options.
    pub probs: Vec<Vec<f64>>,
    /// The derived arch: per choice, the option with the largest α.
    pub derived: Vec<u16>,
}

/// α, their optimiser's state, and their history: what a checkpoint stores beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchState {
    /// Per choice, one logit per option.
    pub alpha: Vec<Vec<f32>>,
    adam_m: Vec<Vec<f32>>,
    adam_v: Vec<Vec<f32>>,
    /// α steps taken.
    pub steps: u64,
    /// One entry per finished epoch.
    pub history: Vec<ArchEpoch>,
    /// ENAS' reward baseline (the moving average of rewards so far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
}

impl ArchState {
    /// α near zero (DARTS' 1e-3·N(0, 1)) for choices with `options` options each.
    pub(super) fn new(options: &[usize], rng: &mut Rng) -> Self {
        let alpha: Vec<Vec<f32>> = options
            .iter()
            .map(|&n| (0..n).map(|_| (1e-3 * rng.normal()) as f32).collect())
            .collect();
        let zeros: Vec<Vec<f32>> = options.iter().map(|&n| vec![0.0; n]).collect();
        ArchState {
            alpha,
            adam_m: zeros.clone(),
            adam_v: zeros,
            steps: 0,
            history: Vec::new(),
            baseline: None,
        }
    }

    /// softmax(α) per choice.
    pub fn probs(&self) -> Vec<Vec<f64>> {
        self.alpha.iter().map(|a| softmax_host(a)).collect()
    }

    /// The derived arch's choice values: the largest α per choice (the first on ties).
    pub fn derived(&self) -> Vec<u16> {
        self.alpha
            .iter()
            .map(|a| argmax(a.iter().copied()))
            .collect()
    }

    /// Records the end of `epoch` (replacing a record of it or later ones).
    pub(super) fn end_epoch(&mut self, epoch: usize) {
        self.history.retain(|h| h.epoch < epoch);
        self.history.push(ArchEpoch {
            epoch,
            probs: self.probs(),
            derived: self.derived(),
        });
    }

    /// One Adam step with gradient `grads` (per choice, per option).
    fn adam(&mut self, grads: &[Vec<f32>], cfg: &ArchConfig) {
        self.steps += 1;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - ADAM_BETA1.powi(t), 1.0 - ADAM_BETA2.powi(t));
        for (k, g) in grads.iter().enumerate() {
            for (i, &g) in g.iter().enumerate() {
                let a = self.alpha[k][i] as f64;
                let g = g as f64 + cfg.weight_decay * a;
                let m = ADAM_BETA1 * self.adam_m[k][i] as f64 + (1.0 - ADAM_BETA1) * g;
                let v = ADAM_BETA2 * self.adam_v[k][i] as f64 + (1.0 - ADAM_BETA2) * g * g;
                self.adam_m[k][i] = m as f32;
                self.adam_v[k][i] = v as f32;
                self.alpha[k][i] = (a - cfg.lr * (m / c1) / ((v / c2).sqrt() + ADAM_EPS)) as f32;
            }
        }
    }
}

fn softmax_host(a: &[f32]) -> Vec<f64> {
    let max = a.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let e: Vec<f64> = a.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

fn argmax(values: impl Iterator<Item = f32>) -> u16 {
    let mut best = (0u16, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i as u16, v);
        }
    }
    best.0
}

/// A Gumbel-max sample of softmax(`alpha`): the option drawn and the noise that drew it.
fn gumbel_max(alpha: &[f32], rng: &mut Rng) -> (u16, Vec<f32>) {
    let noise: Vec<f32> = alpha
        .iter()
        .map(|_| {
            let u = rng.next_f64().clamp(1e-12, 1.0 - 1e-12);
            -(-u.ln()).ln() as f32
        })
        .collect();
    let drawn = argmax(alpha.iter().zip(&noise).map(|(a, g)| a + g));
    (drawn, noise)
}

/// The gradient to descend for REINFORCE on softmax policies with logits `alpha`: minus
/// `advantage · ∇ log π(values)` minus `entropy · ∇ H(π)`, per choice
/// (∇_α log π(v) = onehot(v) − p; ∂H/∂α_i = −p_i (log p_i + H)).
fn policy_gradient(
    alpha: &[Vec<f32>],
    values: &[u16],
    advantage: f64,
    entropy: f64,
) -> Vec<Vec<f32>> {
    alpha
        .iter()
        .zip(values)
        .map(|(a, &v)| {
            let p = softmax_host(a);
            let h: f64 = -p.iter().map(|&p| p * p.max(1e-300).ln()).sum::<f64>();
            p.iter()
                .enumerate()
                .map(|(i, &pi)| {
                    let log_grad = f64::from(u8::from(i == v as usize)) - pi;
                    let h_grad = -pi * (pi.max(1e-300).ln() + h);
                    (-(advantage * log_grad) - entropy * h_grad) as f32
                })
                .collect()
        })
        .collect()
}

/// Per choice, the option whose candidate is the identity (DARTS-' auxiliary skip goes there).
pub(super) fn identity_options(plan: &Plan) -> Vec<Option<usize>> {
    let mut out = vec![None; plan.sup.options().len()];
    let nodes = plan.sup.spec().nodes();
    let choices = out.len();
    for m in plan
        .sup
        .mixed()
        .iter()
        .filter(|m| !m.pass_through && m.choice < choices)
    {
        for (c, cand) in m.candidates.iter().enumerate() {
            let own = &nodes[cand.nodes.clone()];
            if own.len() == 1 && matches!(own[0].op, Op::Identity) {
                out[m.choice] = Some(c);
            }
        }
    }
    out
}

/// A relaxed method's training step, for [`super::Supernet::train_relaxed`].
pub(super) struct Relaxed<'a> {
    pub cfg: ArchConfig,
    pub data: &'a Dataset,
    pub valid_rows: &'a [usize],
    /// Training rows (second-order DARTS draws its own training batch).
    pub train_rows: &'a [usize],
    /// The weights' learning rate: the step second-order DARTS unrolls.
    pub weight_lr: f64,
    pub batch: usize,
    /// α steps of the whole training (the schedules' length).
    pub total_steps: u64,
    pub loss: Loss,
    /// Per choice, its identity option.
    pub skip: Vec<Option<usize>>,
    pub device: Device,
}

impl Relaxed<'_> {
    /// How far the training is, 0 to 1.
    fn progress(&self, st: &ArchState) -> f64 {
        (st.steps as f64 / self.total_steps.max(1) as f64).min(1.0)
    }

    /// DARTS-' β now (0 without the guard).
    fn aux_beta(&self, st: &ArchState) -> f64 {
        match self.cfg.relaxation {
            Relaxation::Darts {
                guard: Guard::AuxSkip,
                ..
            } => 1.0 - self.progress(st),
            _ => 0.0,
        }
    }

    fn constant(&self, values: Vec<f32>) -> Tensor<1> {
        let n = values.len();
        Tensor::<1>::from_data(TensorData::new(values, [n]), &self.device)
    }

    /// `beta` at option `at` of `n`, zeros elsewhere.
    fn one_hot(&self, n: usize, at: usize, beta: f64) -> Tensor<1> {
        let mut v = vec![0.0; n];
        v[at] = beta as f32;
        self.constant(v)
    }

    /// The α step, then the training batch's outputs along the method's path with α fixed.
    pub fn step(
        &self,
        plan: &Plan,
        net: &Network,
        x: Tensor<2>,
        rng: &mut Rng,
        st: &mut ArchState,
    ) -> Result<Tensor<2>, TrainError> {
        self.arch_step(plan, net, rng, st)?;
        Ok(match self.cfg.relaxation {
            Relaxation::Darts { .. } => {
                let w = self.darts_weights(&self.constants(&st.alpha), self.aux_beta(st));
                plan.run(net, x, &Path::Weighted(&w))
            }
            Relaxation::Gdas { .. } | Relaxation::Enas { .. } => {
                let values: Vec<u16> = st.alpha.iter().map(|a| gumbel_max(a, rng).0).collect();
                plan.run(net, x, &Path::Single(&values))
            }
        })
    }

    /// `batch` rows drawn at random from `rows`, and their inputs.
    fn draw(&self, rows: &[usize], rng: &mut Rng) -> (Vec<usize>, Tensor<2>) {
        let n = self.batch.min(rows.len()).max(2);
        let drawn: Vec<usize> = (0..n).map(|_| rows[rng.below(rows.len())]).collect();
        let x = Tensor::<2>::from_data(
            TensorData::new(gather(self.data, &drawn, None), [n, self.data.row_len()]),
            &self.device,
        );
        (drawn, x)
    }

    /// α as constants.
    fn constants(&self, alpha: &[Vec<f32>]) -> Vec<Tensor<1>> {
        alpha.iter().map(|a| self.constant(a.clone())).collect()
    }

    /// α as leaves that take gradients.
    fn leaves(&self, alpha: &[Vec<f32>]) -> Vec<Tensor<1>> {
        self.constants(alpha)
            .into_iter()
            .map(Tensor::require_grad)
            .collect()
    }

    /// DARTS' per-choice weights: softmax(α), plus β on the identity option (aux-skip).
    fn darts_weights(&self, alpha: &[Tensor<1>], beta: f64) -> Vec<Tensor<1>> {
        alpha
            .iter()
            .enumerate()
            .map(|(k, a)| {
                let p = softmax(a.clone(), 0);
                match self.skip[k] {
                    Some(s) if beta > 0.0 => p + self.one_hot(a.dims()[0], s, beta),
                    _ => p,
                }
            })
            .collect()
    }

    /// One Adam step of α on a batch of validation rows (weights fixed).
    fn arch_step(
        &self,
        plan: &Plan,
        net: &Network,
        rng: &mut Rng,
        st: &mut ArchState,
    ) -> Result<(), TrainError> {
        let (rows, x) = self.draw(self.valid_rows, rng);
        let (g, value) = match self.cfg.relaxation {
            Relaxation::Darts {
                second_order: true, ..
            } => {
                let train = self.draw(self.train_rows, rng);
                let mut u = NetUnroll {
                    relaxed: self,
                    plan,
                    alpha: &st.alpha,
                    beta: self.aux_beta(st),
                    train: (&train.0, train.1),
                    valid: (&rows, x),
                    valid_loss: f32::NAN,
                };
                let g = unrolled_alpha_grad(&mut u, net, self.weight_lr);
                (g, u.valid_loss)
            }
            Relaxation::Darts { .. } => {
                let alpha = self.leaves(&st.alpha);
                let w = self.darts_weights(&alpha, self.aux_beta(st));
                // The weights take no gradient here: α's alone.
                let out = plan.run(&net.clone().no_grad(), x, &Path::Weighted(&w));
                self.alpha_grads(&alpha, self.loss.of(self.data, &rows, out))
            }
            Relaxation::Gdas { tau_max, tau_min } => {
                let alpha = self.leaves(&st.alpha);
                let tau = tau_max - (tau_max - tau_min) * self.progress(st);
                let mut values = Vec::with_capacity(alpha.len());
                let mut w = Vec::with_capacity(alpha.len());
                for (a, host) in alpha.iter().zip(&st.alpha) {
                    let (drawn, noise) = gumbel_max(host, rng);
                    let y = softmax(
                        (log_softmax(a.clone(), 0) + self.constant(noise)).div_scalar(tau),
                        0,
                    );
                    // Straight through: the one-hot sample in value, y's gradient.
                    let hard = self.one_hot(host.len(), drawn as usize, 1.0);
                    w.push(y.clone() - y.detach() + hard);
                    values.push(drawn);
                }
                let out = plan.run(&net.clone().no_grad(), x, &Path::Sampled(&values, &w));
                self.alpha_grads(&alpha, self.loss.of(self.data, &rows, out))
            }
            Relaxation::Enas {
                entropy,
                baseline_decay,
            } => {
                // A path from the policy, rewarded with minus its validation loss; no graph.
                let values: Vec<u16> = st.alpha.iter().map(|a| gumbel_max(a, rng).0).collect();
                let out = plan.run(&net.clone().no_grad(), x, &Path::Single(&values));
                let loss = self.loss.of(self.data, &rows, out.detach());
                let value = loss.into_scalar::<f32>();
                let reward = -(value as f64);
                let baseline = *st.baseline.get_or_insert(reward);
                let advantage = reward - baseline;
                if reward.is_finite() {
                    st.baseline = Some(baseline_decay * baseline + (1.0 - baseline_decay) * reward);
                }
                (
                    policy_gradient(&st.alpha, &values, advantage, entropy),
                    value,
                )
            }
        };
        let mut g = g;
        if let Relaxation::Darts {
            guard: Guard::BetaDecay { lambda },
            ..
        } = self.cfg.relaxation
        {
            // ∂/∂α of λ·mean_k logsumexp(α_k) is λ·softmax(α_k)/K.
            let k = st.alpha.len() as f64;
            for (g, a) in g.iter_mut().zip(&st.alpha) {
                for (g, p) in g.iter_mut().zip(softmax_host(a)) {
                    *g += (lambda * p / k) as f32;
                }
            }
        }
        st.adam(&g, &self.cfg);
        if let Some(&bad) = st.alpha.iter().flatten().find(|v| !v.is_finite()) {
            return Err(TrainError::ArchDiverged {
                epoch: st.history.len() + 1,
                value: bad,
                loss: value,
            });
        }
        Ok(())
    }

    /// The gradient of `loss` for every α leaf (zeros where α did not reach it), and the loss.
    fn alpha_grads(&self, alpha: &[Tensor<1>], loss: Tensor<1>) -> (Vec<Vec<f32>>, f32) {
        let value = loss.clone().into_scalar::<f32>();
        // A sample whose every candidate reads zeros (a cell cut off by `none` edges: its
        // outputs stay symbolic zeros and never meet α) leaves the loss without α in it.
        let grads = loss.is_tracked().then(|| loss.backward());
        (grads_of(alpha, grads.as_ref()), value)
    }
}

/// Every α leaf's gradient in `grads` (zeros where α did not reach the loss).
fn grads_of(alpha: &[Tensor<1>], grads: Option<&Gradients>) -> Vec<Vec<f32>> {
    alpha
        .iter()
        .map(|a| match grads.and_then(|grads| a.grad(grads)) {
            Some(g) => g
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("floats"),
            None => vec![0.0; a.dims()[0]],
        })
        .collect()
}

/// The bi-level problem that second-order DARTS differentiates through: weights `W` with
/// gradients `G`, α fixed in the implementor, a training and a validation batch.
pub(crate) trait Unroll {
    /// Weights.
    type W;
    /// A gradient with respect to the weights.
    type G;
    /// ∇w L_train(w, α).
    fn train_grad_w(&mut self, w: &Self::W) -> Self::G;
    /// ∇α L_valid(w, α) and ∇w L_valid(w, α).
    fn valid_grads(&mut self, w: &Self::W) -> (Vec<Vec<f32>>, Self::G);
    /// ∇α L_train(w, α).
    fn train_grad_alpha(&mut self, w: &Self::W) -> Vec<Vec<f32>>;
    /// `w + c·g`.
    fn axpy(&self, w: &Self::W, c: f64, g: &Self::G) -> Self::W;
    /// The L2 norm of `g` (a gradient at `w`).
    fn norm(&self, w: &Self::W, g: &Self::G) -> f64;
}

/// DARTS' second-order α gradient: the gradient of L_valid(w − ξ∇w L_train(w, α), α), the
/// mixed second derivative by a central difference along ∇w' L_valid —
/// `∇α L_valid(w', α) − ξ (∇α L_train(w⁺, α) − ∇α L_train(w⁻, α)) / 2ε` with
/// `w± = w ± ε ∇w' L_valid(w', α)`, `ε = 0.01 / ‖∇w' L_valid‖` (Liu et al., eq. 7-8).
pub(crate) fn unrolled_alpha_grad<U: Unroll>(u: &mut U, w: &U::W, xi: f64) -> Vec<Vec<f32>> {
    let g_train = u.train_grad_w(w);
    let unrolled = u.axpy(w, -xi, &g_train);
    let (g_alpha, g_valid) = u.valid_grads(&unrolled);
    let norm = u.norm(&unrolled, &g_valid);
    if !(norm.is_finite() && norm > 0.0) {
        return g_alpha;
    }
    let eps = 0.01 / norm;
    let plus = u.train_grad_alpha(&u.axpy(w, eps, &g_valid));
    let minus = u.train_grad_alpha(&u.axpy(w, -eps, &g_valid));
    g_alpha
        .iter()
        .zip(plus.iter().zip(&minus))
        .map(|(ga, (p, m))| {
            ga.iter()
                .zip(p.iter().zip(m))
                .map(|(&ga, (&p, &m))| {
                    (ga as f64 - xi * (p as f64 - m as f64) / (2.0 * eps)) as f32
                })
                .collect()
        })
        .collect()
}

/// Second-order DARTS on the supernet: weights are networks, gradients burn's.
struct NetUnroll<'a> {
    relaxed: &'a Relaxed<'a>,
    plan: &'a Plan,
    alpha: &'a [Vec<f32>],
    beta: f64,
    train: (&'a [usize], Tensor<2>),
    valid: (&'a [usize], Tensor<2>),
    /// The validation loss at the unrolled weights (for an error message).
    valid_loss: f32,
}

impl NetUnroll<'_> {
    /// The loss of `w` on `batch` with α as `alpha`'s tensors.
    fn loss(&self, w: &Network, alpha: &[Tensor<1>], batch: &(&[usize], Tensor<2>)) -> Tensor<1> {
        let r = self.relaxed;
        let weights = r.darts_weights(alpha, self.beta);
        let out = self.plan.run(w, batch.1.clone(), &Path::Weighted(&weights));
        r.loss.of(r.data, batch.0, out)
    }
}

impl Unroll for NetUnroll<'_> {
    type W = Network;
    type G = GradientsParams;

    fn train_grad_w(&mut self, w: &Network) -> GradientsParams {
        let loss = self.loss(w, &self.relaxed.constants(self.alpha), &self.train);
        GradientsParams::from_grads(loss.backward(), w)
    }

    fn valid_grads(&mut self, w: &Network) -> (Vec<Vec<f32>>, GradientsParams) {
        let alpha = self.relaxed.leaves(self.alpha);
        let loss = self.loss(w, &alpha, &self.valid);
        self.valid_loss = loss.clone().into_scalar::<f32>();
        let grads = loss.backward();
        let g = grads_of(&alpha, Some(&grads));
        (g, GradientsParams::from_grads(grads, w))
    }

    fn train_grad_alpha(&mut self, w: &Network) -> Vec<Vec<f32>> {
        let alpha = self.relaxed.leaves(self.alpha);
        let loss = self.loss(&w.clone().no_grad(), &alpha, &self.train);
        self.relaxed.alpha_grads(&alpha, loss).0
    }

    fn axpy(&self, w: &Network, c: f64, g: &GradientsParams) -> Network {
        struct Axpy<'a>(&'a GradientsParams, f64);
        impl ModuleMapper for Axpy<'_> {
            fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (g, c) = (self.0.get::<D>(p.id), self.1);
                p.map(|t| match g {
                    // A fresh leaf: the unrolled weights take gradients of their own.
                    Some(g) => (t.inner() + g.inner().mul_scalar(c))
                        .autodiff()
                        .require_grad(),
                    None => t,
                })
            }
        }
        w.clone().map(&mut Axpy(g, c))
    }

    fn norm(&self, w: &Network, g: &GradientsParams) -> f64 {
        global_norm(w, g).unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_moves_alpha_against_the_gradient_by_about_the_learning_rate() {
        let mut st = ArchState::new(&[3], &mut Rng::new(1));
        let before = st.alpha[0].clone();
        let cfg = ArchConfig {
            weight_decay: 0.0,
            ..ArchConfig::darts(Guard::AuxSkip)
        };
        st.adam(&[vec![1.0, -2.0, 0.0]], &cfg);
        let d: Vec<f64> = st.alpha[0]
            .iter()
            .zip(&before)
            .map(|(a, b)| (a - b) as f64)
            .collect();
        // Adam's first step is lr·sign(g) (bias-corrected moments).
        assert!((d[0] + cfg.lr).abs() < 1e-6, "{d:?}");
        assert!((d[1] - cfg.lr).abs() < 1e-6, "{d:?}");
        assert!(d[2].abs() < 1e-9, "{d:?}");
        assert_eq!(st.steps, 1);
    }

    #[test]
    fn gumbel_max_draws_options_in_proportion_to_softmax_alpha() {
        let alpha = [0.0f32, (2.0f32).ln(), (5.0f32).ln()]; // softmax 1/8, 2/8, 5/8
        let mut rng = Rng::new(7);
        let mut counts = [0usize; 3];
        let n = 40_000;
        for _ in 0..n {
            counts[gumbel_max(&alpha, &mut rng).0 as usize] += 1;
        }
        for (c, p) in counts.iter().zip([1.0 / 8.0, 2.0 / 8.0, 5.0 / 8.0]) {
            let f = *c as f64 / n as f64;
            assert!((f - p).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn derived_arch_and_history_follow_alpha() {
        let mut st = ArchState::new(&[3, 2], &mut Rng::new(3));
        st.alpha = vec![vec![0.1, 0.7, 0.7], vec![-1.0, -2.0]];
        assert_eq!(st.derived(), vec![1, 0], "the first of tied options");
        st.end_epoch(1);
        st.end_epoch(2);
        st.end_epoch(2);
        assert_eq!(st.history.len(), 2);
        let p = &st.history[1].probs;
        assert!((p[0].iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[1][0] > p[1][1]);
    }

    /// softplus(w·α) summed as the training loss, a quadratic in w coupled to α as the
    /// validation loss: smooth, not quadratic, and its unrolled hypergradient has a closed form.
    struct Toy {
        alpha: Vec<f64>,
        b: Vec<f64>,
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    impl Unroll for Toy {
        type W = Vec<f64>;
        type G = Vec<f64>;
        fn train_grad_w(&mut self, w: &Vec<f64>) -> Vec<f64> {
            w.iter()
                .zip(&self.alpha)
                .map(|(w, a)| a * sigmoid(w * a))
                .collect()
        }
        fn valid_grads(&mut self, w: &Vec<f64>) -> (Vec<Vec<f32>>, Vec<f64>) {
            let ga = w
                .iter()
                .zip(&self.alpha)
                .map(|(w, a)| (0.1 * a * w) as f32)
                .collect();
            let gw = w
                .iter()
                .zip(&self.b)
                .zip(&self.alpha)
                .map(|((w, b), a)| w - b + 0.05 * a * a)
                .collect();
            (vec![ga], gw)
        }
        fn train_grad_alpha(&mut self, w: &Vec<f64>) -> Vec<Vec<f32>> {
            vec![w
                .iter()
                .zip(&self.alpha)
                .map(|(w, a)| (w * sigmoid(w * a)) as f32)
                .collect()]
        }
        fn axpy(&self, w: &Vec<f64>, c: f64, g: &Vec<f64>) -> Vec<f64> {
            w.iter().zip(g).map(|(w, g)| w + c * g).collect()
        }
        fn norm(&self, _: &Vec<f64>, g: &Vec<f64>) -> f64 {
            g.iter().map(|g| g * g).sum::<f64>().sqrt()
        }
    }

    #[test]
    fn the_second_order_hypergradient_matches_the_exact_one_on_a_toy_problem() {
        let alpha = vec![0.7, -1.3, 0.2, 2.1];
        let w = vec![0.5, 1.5, -0.8, 0.1];
        let b = vec![1.0, -0.5, 0.3, 0.9];
        let xi = 0.1;
        let mut toy = Toy {
            alpha: alpha.clone(),
            b: b.clone(),
        };
        let got = unrolled_alpha_grad(&mut toy, &w, xi);
        // d/dα_i of L_valid(w', α) with w'_i = w_i − ξ α_i σ(w_i α_i).
        for i in 0..4 {
            let (a, s) = (alpha[i], sigmoid(w[i] * alpha[i]));
            let unrolled = w[i] - xi * a * s;
            let dw = -xi * (s + a * w[i] * s * (1.0 - s));
            let exact = (unrolled - b[i] + 0.05 * a * a) * dw + 0.1 * a * unrolled;
            let g = got[0][i] as f64;
            assert!((g - exact).abs() < 1e-5, "α_{i}: {g} vs {exact}");
            // (The first-order gradient, 0.1·α·w', misses the unrolled term.)
            assert!((0.1 * a * unrolled - exact).abs() > 1e-3, "α_{i}");
        }
    }

    #[test]
    fn the_policy_gradient_favours_rewarded_paths_and_its_entropy_term_flattens() {
        let alpha = vec![vec![0.0f32, 0.5, -0.5]];
        // Better than the baseline: descending the gradient raises the drawn option's logit.
        let g = policy_gradient(&alpha, &[2], 1.0, 0.0);
        assert!(g[0][2] < 0.0 && g[0][0] > 0.0 && g[0][1] > 0.0, "{g:?}");
        assert!(g[0].iter().map(|&x| x as f64).sum::<f64>().abs() < 1e-6);
        // Worse: lowers it.
        assert!(policy_gradient(&alpha, &[2], -1.0, 0.0)[0][2] > 0.0);
        // Entropy alone pushes the most likely option down, the least likely up.
        let e = policy_gradient(&alpha, &[0], 0.0, 1.0);
        assert!(e[0][1] > 0.0 && e[0][2] < 0.0, "{e:?}");
        // Against a finite difference of -H.
        let h = |a: &[f32]| -softmax_host(a).iter().map(|p| p * p.ln()).sum::<f64>();
        let mut up = alpha[0].clone();
        up[1] += 1e-3;
        let mut down = alpha[0].clone();
        down[1] -= 1e-3;
        let fd = -(h(&up) - h(&down)) / 2e-3;
        assert!((e[0][1] as f64 - fd).abs() < 1e-4, "{} {fd}", e[0][1]);
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut c = ArchConfig::gdas();
        assert!(c.validate().is_ok());
        c.lr = f64::NAN;
        assert!(c.validate().is_err());
        let c = ArchConfig {
            relaxation: Relaxation::Gdas {
                tau_max: 0.1,
                tau_min: 1.0,
            },
            ..ArchConfig::gdas()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("temperature"));
    }
}
