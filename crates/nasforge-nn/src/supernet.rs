//! A supernet in burn: the [`Network`] of a space's [`SuperSpec`] (every candidate of every
//! choice, with its own weights), run as one-shot methods need it — one path of candidates
//! (SPOS, GDAS, ENAS, RSPS; the others are not computed) or every candidate weighted (DARTS) —
//! and the stand-alone network of any arch extracted with the weights it inherits.

use crate::model::{Layer, Network, Probe};
use burn::prelude::*;
use nasforge_core::netspec::supernet::SuperSpec;
use nasforge_core::netspec::Op;
use nasforge_core::{Error, Result};

/// How a pass runs the mixed modules.
pub enum Path<'a> {
    /// One candidate per choice (the arch's choice values): the others are not computed.
    Single(&'a [u16]),
    /// Every candidate, its output times its weight: per choice, a `[options]` tensor (DARTS'
    /// softmax of α; gradients flow into it).
    Weighted(&'a [Tensor<1>]),
}

/// A supernet's weights and where its choices are.
#[derive(Debug)]
pub struct Supernet {
    net: Network,
    sup: SuperSpec,
    /// Per node: the (mixed module, candidate) it belongs to.
    member: Vec<Option<(usize, usize)>>,
}

/// Leaves out the candidates off a single path, or scales each candidate's output.
struct Router<'a> {
    sup: &'a Supernet,
    path: &'a Path<'a>,
}

impl Router<'_> {
    /// The weight of node `node`'s output when it is a candidate's output (weighted path).
    fn weight(&self, node: usize) -> Option<Tensor<1>> {
        let Path::Weighted(w) = self.path else {
            return None;
        };
        let (m, c) = self.sup.member[node]?;
        let mixed = &self.sup.sup.mixed()[m];
        (mixed.candidates[c].output == node).then(|| w[mixed.choice].clone().slice(c..c + 1))
    }
}

impl Probe for Router<'_> {
    fn image(&mut self, node: usize, _: &Op, t: Tensor<4>) -> Tensor<4> {
        match self.weight(node) {
            Some(w) => t * w.reshape([1, 1, 1, 1]),
            None => t,
        }
    }
    fn vector(&mut self, node: usize, _: &Op, t: Tensor<2>) -> Tensor<2> {
        match self.weight(node) {
            Some(w) => t * w.reshape([1, 1]),
            None => t,
        }
    }
    fn skip(&mut self, node: usize) -> bool {
        match (self.path, self.sup.member[node]) {
            (Path::Single(values), Some((m, c))) => {
                values[self.sup.sup.mixed()[m].choice] as usize != c
            }
            _ => false,
        }
    }
}

impl Supernet {
    /// The supernet of `sup` with freshly initialised weights on `device`.
    pub fn new(sup: SuperSpec, device: &Device) -> Self {
        let net = Network::new(sup.spec(), device);
        let mut member = vec![None; sup.spec().nodes().len()];
        for (m, mixed) in sup.mixed().iter().enumerate() {
            for (c, cand) in mixed.candidates.iter().enumerate() {
                member[cand.nodes.clone()].fill(Some((m, c)));
            }
        }
        Supernet { net, sup, member }
    }

    /// Its description.
    pub fn spec(&self) -> &SuperSpec {
        &self.sup
    }

    /// Its weights as a network (every candidate's).
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Checks a path against the choices: a value per choice within its options, or a weight
    /// vector per choice of its options' length.
    fn check(&self, path: &Path) -> Result<()> {
        let options = self.sup.options();
        let ok = match path {
            Path::Single(v) => {
                v.len() == options.len() && v.iter().zip(options).all(|(&v, &n)| (v as usize) < n)
            }
            Path::Weighted(w) => {
                w.len() == options.len() && w.iter().zip(options).all(|(w, &n)| w.dims() == [n])
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "a path through the supernet needs one value or weight vector per choice, with options {options:?}"
            )))
        }
    }

    /// Runs a batch (flat rows, as [`Network::forward_flat`]) along `path`.
    pub fn forward(&self, x: Tensor<2>, path: &Path) -> Result<Tensor<2>> {
        self.check(path)?;
        Ok(self.net.forward_probed(x, &mut Router { sup: self, path }))
    }

    /// The stand-alone network of the arch with choice values `values`, its weights (batch-norm
    /// statistics included) those the supernet holds for it.
    pub fn extract(&self, values: &[u16]) -> Result<Network> {
        self.check(&Path::Single(values))?;
        let (spec, origin) = self.sup.sub_network(values)?;
        let layers = origin
            .iter()
            .enumerate()
            .map(|(k, &o)| match &self.net.layers()[o] {
                Layer::Fixed(_) => Layer::Fixed(k),
                learned => learned.clone(),
            })
            .collect();
        Ok(Network::from_layers(&spec, layers))
    }
}
