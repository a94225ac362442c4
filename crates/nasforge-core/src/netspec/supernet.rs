//! Supernets for one-shot NAS (DARTS, GDAS, SPOS, ENAS, RSPS): one network holding every
//! candidate of a space's choices side by side, so that all archs share weights.
//!
//! A [`SuperSpec`] is a plain [`NetSpec`] — costs, shapes and diagrams work on it unchanged —
//! plus, for every place where the space makes a choice, a [`Mixed`] module: the node the
//! candidates read, each candidate's nodes and output, and the node that sums the candidates.
//! A one-shot trainer runs a mixed module as a weighted sum of its candidates (DARTS), as one
//! sampled candidate (GDAS, SPOS, ENAS) or fixed; [`SuperSpec::sub_network`] extracts the
//! stand-alone network of any arch, with the supernet node each of its nodes inherits weights
//! from. In cell spaces one choice (an edge of the cell) is a mixed module in every cell: the
//! modules share the choice, each has its own weights.

use super::{NetSpec, NetSpecBuilder, NodeId, Op};
use crate::{Error, Result};
use std::ops::Range;

/// One candidate of a mixed module: the nodes it added (consecutive) and its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its nodes, in the supernet's order.
    pub nodes: Range<NodeId>,
    /// The node that is its result.
    pub output: NodeId,
}

/// A choice of the space, built with all its candidates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mixed {
    /// The choice (index into the space's choices) that selects the candidate.
    pub choice: usize,
    /// The node every candidate reads.
    pub input: NodeId,
    /// One per option of the choice, in the choice's order.
    pub candidates: Vec<Candidate>,
    /// The node summing the candidates' outputs: where a trainer puts the module's result.
    pub output: NodeId,
}

/// A supernet: the network with every candidate, and where its choices are.
#[derive(Clone, Debug, PartialEq)]
pub struct SuperSpec {
    spec: NetSpec,
    mixed: Vec<Mixed>,
    options: Vec<usize>,
}

impl SuperSpec {
    /// Checks and wraps a supernet built by a space: `options[c]` is the number of options of
    /// choice `c`. Every mixed module must sum exactly its candidates' outputs, candidates must
    /// lie after the module's input and before its output, and no node may belong to two
    /// candidates.
    pub fn new(spec: NetSpec, mixed: Vec<Mixed>, options: Vec<usize>) -> Result<Self> {
        let nodes = spec.nodes();
        let mut owner = vec![false; nodes.len()];
        for (k, m) in mixed.iter().enumerate() {
            let bad = |why: String| Err(Error::invalid(format!("mixed module {k}: {why}")));
            if options.get(m.choice) != Some(&m.candidates.len()) {
                return bad(format!(
                    "choice {} has {:?} options, the module {} candidates",
                    m.choice,
                    options.get(m.choice),
                    m.candidates.len()
                ));
            }
            let outputs: Vec<NodeId> = m.candidates.iter().map(|c| c.output).collect();
            let sums = nodes
                .get(m.output)
                .is_some_and(|n| n.op == Op::Add && n.inputs == outputs);
            if !sums {
                return bad(format!(
                    "node {} is not the sum of the candidates' outputs",
                    m.output
                ));
            }
            for c in &m.candidates {
                if c.nodes.is_empty()
                    || c.nodes.start <= m.input
                    || c.nodes.end > m.output
                    || !c.nodes.contains(&c.output)
                {
                    return bad(format!("candidate nodes {:?} out of place", c.nodes));
                }
                for id in c.nodes.clone() {
                    if std::mem::replace(&mut owner[id], true) {
                        return bad(format!("node {id} belongs to two candidates"));
                    }
                }
            }
        }
        Ok(SuperSpec {
            spec,
            mixed,
            options,
        })
    }

    /// The whole supernet.
    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// Its mixed modules, in network order.
    pub fn mixed(&self) -> &[Mixed] {
        &self.mixed
    }

    /// Options per choice.
    pub fn options(&self) -> &[usize] {
        &self.options
    }

    /// The stand-alone network of the arch whose choice values are `values`: the supernet
    /// without the candidates not chosen and without the mixed modules' sums (their readers
    /// read the chosen candidate's output instead). Returns it with, for each of its nodes, the
    /// supernet node it comes from (and inherits weights from).
    pub fn sub_network(&self, values: &[u16]) -> Result<(NetSpec, Vec<NodeId>)> {
        if values.len() != self.options.len() {
            return Err(Error::invalid(format!(
                "an arch of {} choices for a supernet of {}",
                values.len(),
                self.options.len()
            )));
        }
        let nodes = self.spec.nodes();
        // Per supernet node: dropped (None), or where its value is in the sub-network.
        let mut skip = vec![false; nodes.len()];
        let mut sum_of: Vec<Option<NodeId>> = vec![None; nodes.len()];
        for m in &self.mixed {
            let chosen = values[m.choice] as usize;
            let Some(pick) = m.candidates.get(chosen) else {
                return Err(Error::invalid(format!(
                    "choice {} has {} options, not {}",
                    m.choice,
                    m.candidates.len(),
                    chosen + 1
                )));
            };
            for (i, c) in m.candidates.iter().enumerate() {
                if i != chosen {
                    skip[c.nodes.clone()].fill(true);
                }
            }
            sum_of[m.output] = Some(pick.output);
        }
        let mut b = NetSpecBuilder::new(self.spec.input_shape())?;
        let mut at: Vec<Option<NodeId>> = vec![None; nodes.len()];
        at[0] = Some(0);
        let mut origin = vec![0];
        for (id, node) in nodes.iter().enumerate().skip(1) {
            if skip[id] {
                continue;
            }
            if let Some(pick) = sum_of[id] {
                at[id] = at[pick];
                continue;
            }
            let inputs = node
                .inputs
                .iter()
                .map(|&j| at[j].expect("inputs come first and are kept"))
                .collect::<Vec<_>>();
            b.set_scope(node.scope.clone());
            at[id] = Some(b.push(node.op.clone(), &inputs)?);
            origin.push(id);
        }
        let output = at[self.spec.output()].expect("the output is never a candidate");
        Ok((b.finish(output), origin))
    }
}
