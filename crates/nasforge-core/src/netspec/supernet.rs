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
//!
//! Elastic choices (the MLP space's widths and depth) use two more devices. A width is a
//! mixed module of [`Op::ChannelMask`] candidates after a full-width layer: a sub-network
//! narrows that layer to the kept channels and inherits the leading slice of its weights
//! (Once-for-all's channel slicing). A depth is a *pass-through* module whose candidates are
//! identities of the layers' outputs: a sub-network reads the chosen layer directly and drops
//! the layers after it. A dropout of probability 0 is no node in a sub-network.
//!
//! The macro space needs three more. Mixed modules may *nest*: a candidate may hold a whole
//! module (a convolution's width inside the op choice). An *optional* pass-through module's
//! option 0 is no term at all: a sub-network leaves it out of the sum that reads it (a skip
//! input switched off). And a module may follow a [`Derived`] choice, one the supernet works
//! out from the arch's own choices (whether a skip input needs a projection, and to how many
//! channels, depends on the widths of the layers it joins). Its candidates may also *share
//! weights* ([`SuperSpec::with_shared`]): a 3x3 convolution computes with the centre of the
//! 5x5 one's kernels, through a learned map of kernel positions, and the same batch norm
//! (once-for-all's elastic kernel and kernel transformation).

use super::ops;
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
    /// Each candidate is one identity of an earlier node (which need not be `input`), which a
    /// sub-network reads directly: a depth choice.
    pub pass_through: bool,
    /// A pass-through module whose option 0 is no term: a sub-network that chooses it leaves
    /// the module out of the sum reading it (a sum left with one term is that term).
    pub optional: bool,
}

impl Mixed {
    /// The module of `choice` over `options` candidates that read `input`: `make(builder,
    /// input, k)` adds option k's nodes and returns its output; the outputs are summed.
    pub fn build(
        b: &mut NetSpecBuilder,
        choice: usize,
        input: NodeId,
        options: usize,
        make: &mut dyn FnMut(&mut NetSpecBuilder, NodeId, usize) -> Result<NodeId>,
    ) -> Result<Mixed> {
        let mut candidates = Vec::with_capacity(options);
        for k in 0..options {
            let start = b.next_id();
            let output = make(b, input, k)?;
            candidates.push(Candidate {
                nodes: start..b.next_id(),
                output,
            });
        }
        Self::summed(b, choice, input, candidates, false)
    }

    /// The optional pass-through module of `choice` (see [`Mixed::optional`]): option 0 is a
    /// zero of `input`'s shape, option 1 an identity of `on`.
    pub fn optional(
        b: &mut NetSpecBuilder,
        choice: usize,
        input: NodeId,
        on: NodeId,
    ) -> Result<Mixed> {
        let off = b.push(Op::Zero(ops::Zero { stride: 1 }), &[input])?;
        let mut m = Self::pass_through(b, choice, &[off, on])?;
        m.optional = true;
        Ok(m)
    }

    /// The pass-through module of `choice`: option k is an identity of `inputs[k]`.
    pub fn pass_through(b: &mut NetSpecBuilder, choice: usize, inputs: &[NodeId]) -> Result<Mixed> {
        let mut candidates = Vec::with_capacity(inputs.len());
        for &x in inputs {
            let id = b.push(Op::Identity, &[x])?;
            candidates.push(Candidate {
                nodes: id..id + 1,
                output: id,
            });
        }
        Self::summed(b, choice, inputs[0], candidates, true)
    }

    fn summed(
        b: &mut NetSpecBuilder,
        choice: usize,
        input: NodeId,
        candidates: Vec<Candidate>,
        pass_through: bool,
    ) -> Result<Mixed> {
        let outputs: Vec<NodeId> = candidates.iter().map(|c| c.output).collect();
        let output = b.push(Op::Add, &outputs)?;
        Ok(Mixed {
            choice,
            input,
            candidates,
            output,
            pass_through,
            optional: false,
        })
    }
}

/// A choice a supernet works out from the arch's choices rather than takes from it: a table
/// over the values of earlier choices (the arch's, or derived ones before it). Modules may
/// follow it as they follow the arch's choices; it has no architecture parameters, so a
/// supernet with derived choices cannot be run with every candidate weighted (DARTS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    /// The choices its value depends on: indices below the arch's choice count, or the
    /// arch's choice count plus the index of an earlier derived choice.
    pub sources: Vec<usize>,
    /// Its value for each combination of the sources' values, the last source varying
    /// fastest.
    pub table: Vec<u16>,
    /// Its number of options.
    pub options: usize,
}

/// An elastic choice of a supernet ([`SuperSpec::elastic`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Elastic {
    /// A width (its modules' candidates are channel masks).
    Width {
        /// The option that keeps the most channels.
        largest: u16,
    },
    /// A depth (a pass-through module).
    Depth {
        /// The deepest option.
        largest: u16,
    },
    /// A kernel size ([`SuperSpec::with_shared`]).
    Kernel {
        /// Per option, the option whose kernels' centres it computes with (its own when none
        /// is larger).
        grow: Vec<u16>,
    },
}

impl Elastic {
    /// The option of the largest network in place of a drawn `value`.
    pub fn largest(&self, value: u16) -> u16 {
        match self {
            Elastic::Width { largest } | Elastic::Depth { largest } => *largest,
            Elastic::Kernel { grow } => grow.get(value as usize).copied().unwrap_or(value),
        }
    }
}

/// A supernet: the network with every candidate, and where its choices are.
#[derive(Clone, Debug, PartialEq)]
pub struct SuperSpec {
    spec: NetSpec,
    mixed: Vec<Mixed>,
    options: Vec<usize>,
    derived: Vec<Derived>,
    /// Per node: the node whose weights it computes with, when not its own.
    shared: Vec<Option<NodeId>>,
}

impl SuperSpec {
    /// Checks and wraps a supernet built by a space: `options[c]` is the number of options of
    /// choice `c`. Every mixed module must sum exactly its candidates' outputs, candidates must
    /// lie after the module's input and before its output, and two candidates' nodes may
    /// only be apart or one within the other (a nested module).
    pub fn new(spec: NetSpec, mixed: Vec<Mixed>, options: Vec<usize>) -> Result<Self> {
        Self::with_derived(spec, mixed, options, Vec::new())
    }

    /// [`SuperSpec::new`] with derived choices: choice `options.len() + k` of a module is
    /// `derived[k]`. Each table must cover its sources' options and stay within its own.
    pub fn with_derived(
        spec: NetSpec,
        mixed: Vec<Mixed>,
        options: Vec<usize>,
        derived: Vec<Derived>,
    ) -> Result<Self> {
        let mut all = options.clone();
        for (k, d) in derived.iter().enumerate() {
            let size = d
                .sources
                .iter()
                .try_fold(1usize, |n, &s| all.get(s).map(|&o| n.saturating_mul(o)));
            if size != Some(d.table.len())
                || d.options == 0
                || d.table.iter().any(|&v| v as usize >= d.options)
            {
                return Err(Error::invalid(format!(
                    "derived choice {k}: a table of {} values over sources {:?} with options {:?}, {} options of its own",
                    d.table.len(),
                    d.sources,
                    d.sources.iter().map(|&s| all.get(s)).collect::<Vec<_>>(),
                    d.options
                )));
            }
            all.push(d.options);
        }
        let nodes = spec.nodes();
        let mut ranges = Vec::new();
        for (k, m) in mixed.iter().enumerate() {
            let bad = |why: String| Err(Error::invalid(format!("mixed module {k}: {why}")));
            if all.get(m.choice) != Some(&m.candidates.len()) {
                return bad(format!(
                    "choice {} has {:?} options, the module {} candidates",
                    m.choice,
                    all.get(m.choice),
                    m.candidates.len()
                ));
            }
            let reads_zero = |c: &Candidate| {
                nodes.get(c.nodes.start).is_some_and(
                    |n| matches!(n.inputs[..], [z] if matches!(nodes[z].op, Op::Zero(_))),
                )
            };
            if m.optional && !(m.pass_through && m.candidates.first().is_some_and(reads_zero)) {
                return bad("an optional module's option 0 must be an identity of a zero".into());
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
            let single_identity = |c: &Candidate| {
                c.nodes.len() == 1
                    && c.output == c.nodes.start
                    && nodes[c.output].op == Op::Identity
            };
            if m.pass_through && !m.candidates.iter().all(single_identity) {
                return bad("a pass-through module's candidates must be single identities".into());
            }
            let mut after = m.input + 1;
            for c in &m.candidates {
                if c.nodes.is_empty()
                    || c.nodes.start < after
                    || c.nodes.end > m.output
                    || !c.nodes.contains(&c.output)
                {
                    return bad(format!(
                        "candidate nodes {:?} out of place (a module's candidates follow its input and one another)",
                        c.nodes
                    ));
                }
                after = c.nodes.end;
                ranges.push(c.nodes.clone());
            }
        }
        // Candidates nest or stay apart: in order of start (the longer first), each lies
        // within the innermost still open one, or after it.
        ranges.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
        let mut open: Vec<Range<NodeId>> = Vec::new();
        for r in ranges {
            while open.last().is_some_and(|o| o.end <= r.start) {
                open.pop();
            }
            if let Some(o) = open.last() {
                if r.end > o.end || *o == r {
                    return Err(Error::invalid(format!(
                        "candidate nodes {r:?} overlap candidate nodes {o:?}"
                    )));
                }
            }
            open.push(r);
        }
        let shared = vec![None; nodes.len()];
        Ok(SuperSpec {
            spec,
            mixed,
            options,
            derived,
            shared,
        })
    }

    /// The supernet with weights shared between nodes: for each `(node, source)`, `node`
    /// computes with `source`'s weights — a batch norm with all of them, a convolution with
    /// the centre of `source`'s kernels, through a learned map of its `k x k` kernel
    /// positions when they are smaller (`[k², k²]`, the identity at first: once-for-all's
    /// elastic kernel with its kernel transformation — a 3x3 convolution is the transformed
    /// middle of a 5x5 one).
    /// Both must be convolutions alike but for a kernel no larger than the source's, or batch
    /// norms of one shape; a source shares no other's weights. A node that shares weights has
    /// no other weights of its own, and a sub-network's copy of it inherits `source`'s
    /// (mapped).
    pub fn with_shared(mut self, pairs: &[(NodeId, NodeId)]) -> Result<Self> {
        let nodes = self.spec.nodes();
        for &(node, source) in pairs {
            let bad = |why: &str| {
                Err(Error::invalid(format!(
                    "node {node} cannot share the weights of node {source}: {why}"
                )))
            };
            let (Some(n), Some(s)) = (nodes.get(node), nodes.get(source)) else {
                return bad("no such node");
            };
            if node == source || self.shared[node].is_some() {
                return bad("a node shares one other node's weights");
            }
            let fits = match (&n.op, &s.op) {
                (Op::BatchNorm(_), Op::BatchNorm(_)) => n.shape == s.shape,
                (Op::Conv2d(a), Op::Conv2d(b)) => {
                    let input = |x: &super::Node| nodes[x.inputs[0]].shape[0];
                    a.out_channels == b.out_channels
                        && (a.groups, a.stride, a.dilation, a.bias)
                            == (b.groups, b.stride, b.dilation, b.bias)
                        && input(n) == input(s)
                        && a.kernel <= b.kernel
                        && (b.kernel - a.kernel) % 2 == 0
                        && n.shape == s.shape
                }
                _ => false,
            };
            if !fits {
                return bad(&format!(
                    "{} and {} are not two convolutions alike but for a no larger kernel, nor two batch norms of one shape",
                    n.op.kind(),
                    s.op.kind()
                ));
            }
            self.shared[node] = Some(source);
        }
        if let Some((node, source)) = pairs.iter().find(|(_, s)| self.shared[*s].is_some()) {
            return Err(Error::invalid(format!(
                "node {node} shares the weights of node {source}, which shares another's"
            )));
        }
        Ok(self)
    }

    /// Per node: the node whose weights it computes with, when not its own
    /// ([`SuperSpec::with_shared`]).
    pub fn shared(&self) -> &[Option<NodeId>] {
        &self.shared
    }

    /// The supernet's own learned parameters: those of every node, but for a node that
    /// computes with another's weights only its kernel map (a convolution with smaller
    /// kernels than the other's).
    pub fn params(&self) -> u64 {
        (0..self.spec.nodes().len())
            .map(|k| match (self.shared[k], self.kernel_map(k)) {
                (None, _) => self.spec.node_params(k),
                (Some(_), Some(side)) => (side * side) as u64,
                (Some(_), None) => 0,
            })
            .sum()
    }

    /// For a convolution that computes with a larger one's kernels: the side `k²` of its
    /// learned map of kernel positions (`[k², k²]`, [`SuperSpec::with_shared`]).
    pub fn kernel_map(&self, node: NodeId) -> Option<usize> {
        let nodes = self.spec.nodes();
        match (&nodes[node].op, self.shared[node].map(|s| &nodes[s].op)) {
            (Op::Conv2d(c), Some(Op::Conv2d(larger))) if c.kernel < larger.kernel => {
                Some(c.kernel * c.kernel)
            }
            _ => None,
        }
    }

    /// Its derived choices ([`Derived`]): modules following choice `options().len() + k`
    /// follow the k-th.
    pub fn derived(&self) -> &[Derived] {
        &self.derived
    }

    /// Whether a pass may run every candidate weighted by architecture parameters (DARTS):
    /// only when every module follows one of the arch's choices, since derived choices have
    /// none (the macro space's skip projections follow the layers' channel counts).
    pub fn weighable(&self) -> bool {
        self.derived.is_empty()
    }

    /// The arch's choice values followed by the derived choices' values. Values out of their
    /// options (which [`SuperSpec::sub_network`] refuses) count as 0 here.
    pub fn expand(&self, values: &[u16]) -> Vec<u16> {
        let mut all: Vec<u16> = values.to_vec();
        let mut options = self.options.clone();
        for d in &self.derived {
            let mut at = 0usize;
            for &s in &d.sources {
                let v = all.get(s).copied().unwrap_or(0) as usize;
                let n = options.get(s).copied().unwrap_or(1);
                at = at * n + if v < n { v } else { 0 };
            }
            all.push(d.table.get(at).copied().unwrap_or(0));
            options.push(d.options);
        }
        all
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

    /// Per choice, whether it is elastic — a width (its modules' candidates are channel
    /// masks), a depth (a pass-through module) or a kernel size (its candidates compute with
    /// the centre of another candidate's kernels, [`SuperSpec::with_shared`]) — and which
    /// option makes the largest network. Once-for-all shrinks these progressively.
    pub fn elastic(&self) -> Vec<Option<Elastic>> {
        let nodes = self.spec.nodes();
        let mut out = vec![None; self.options.len()];
        for m in self.mixed.iter().filter(|m| m.choice < self.options.len()) {
            let keeps: Option<Vec<usize>> = m
                .candidates
                .iter()
                .map(|c| match nodes[c.output].op {
                    Op::ChannelMask(ops::ChannelMask { keep }) => Some(keep),
                    _ => None,
                })
                .collect();
            // Per candidate: the candidate whose weights it shares, if any.
            let owner = |node: NodeId| m.candidates.iter().position(|c| c.nodes.contains(&node));
            let grow: Vec<u16> = (0..m.candidates.len())
                .map(|i| {
                    let shares = m.candidates[i]
                        .nodes
                        .clone()
                        .find_map(|k| self.shared[k].and_then(owner));
                    shares.unwrap_or(i) as u16
                })
                .collect();
            if m.pass_through && !m.optional {
                out[m.choice] = Some(Elastic::Depth {
                    largest: (m.candidates.len() - 1) as u16,
                });
            } else if let Some(keeps) = keeps {
                let widest = (0..keeps.len()).max_by_key(|&k| keeps[k]).unwrap_or(0);
                out[m.choice] = Some(Elastic::Width {
                    largest: widest as u16,
                });
            } else if grow.iter().enumerate().any(|(i, &g)| g as usize != i) {
                out[m.choice] = Some(Elastic::Kernel { grow });
            }
        }
        out
    }

    /// The supernet nodes a single path along `values` computes: those that reach the output
    /// without passing a candidate that is not chosen (layers past a chosen depth, inputs a
    /// cell does not choose, and the candidates not chosen are not). `values` must fit the
    /// options ([`SuperSpec::sub_network`] checks them).
    pub fn live(&self, values: &[u16]) -> Vec<bool> {
        let values = self.expand(values);
        let nodes = self.spec.nodes();
        let mut off = vec![false; nodes.len()];
        for m in &self.mixed {
            let chosen = values.get(m.choice).map_or(usize::MAX, |&v| v as usize);
            for (i, c) in m.candidates.iter().enumerate() {
                if i != chosen {
                    off[c.nodes.clone()].fill(true);
                }
            }
        }
        self.spec.reaching_output(&off)
    }

    /// The stand-alone network of the arch whose choice values are `values`: the supernet
    /// without the candidates not chosen and without the mixed modules' sums (their readers
    /// read the chosen candidate's output instead), without what no longer reaches the output
    /// (layers past a chosen depth), without channel masks (the layer before a mask keeps only
    /// its channels), pass-through identities and dropouts of probability 0. Returns it with,
    /// for each of its nodes, the supernet node it comes from (and inherits weights from: all
    /// of them, or the leading slice where a mask narrowed it).
    pub fn sub_network(&self, values: &[u16]) -> Result<(NetSpec, Vec<NodeId>)> {
        if values.len() != self.options.len() {
            return Err(Error::invalid(format!(
                "an arch of {} choices for a supernet of {}",
                values.len(),
                self.options.len()
            )));
        }
        let values = self.expand(values);
        let nodes = self.spec.nodes();
        // Per supernet node: left out with its candidate, standing for another node, or no
        // term at all (an optional module switched off).
        let mut skip = vec![false; nodes.len()];
        let mut alias: Vec<Option<NodeId>> = vec![None; nodes.len()];
        let mut absent = vec![false; nodes.len()];
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
            if m.optional && chosen == 0 {
                absent[m.output] = true;
                continue;
            }
            alias[m.output] = Some(pick.output);
            if m.pass_through {
                alias[pick.output] = Some(nodes[pick.output].inputs[0]);
            }
        }
        for (id, node) in nodes.iter().enumerate() {
            if matches!(node.op, Op::ChannelMask(_))
                || node.op == (Op::Dropout(ops::Dropout { p: 0.0 }))
            {
                alias[id] = Some(node.inputs[0]);
            }
        }
        // The node a reader of `id` reads, and the masks on the way.
        let resolve = |mut id: NodeId, masks: &mut Vec<NodeId>| {
            while let Some(a) = alias[id] {
                if matches!(nodes[id].op, Op::ChannelMask(_)) {
                    masks.push(id);
                }
                id = a;
            }
            id
        };
        // What the output needs, from the output back (inputs come before their readers).
        let mut needed = vec![false; nodes.len()];
        let mut masks = Vec::new();
        let out = resolve(self.spec.output(), &mut masks);
        needed[out] = true;
        for id in (1..nodes.len()).rev() {
            if needed[id] {
                for &j in &nodes[id].inputs {
                    let r = resolve(j, &mut masks);
                    needed[r] = !absent[r];
                }
            }
        }
        // Each mask narrows the layer that makes its channels, through channel-wise ops.
        let mut narrow: Vec<Option<usize>> = vec![None; nodes.len()];
        for &m in &masks {
            let Op::ChannelMask(ops::ChannelMask { keep }) = nodes[m].op else {
                unreachable!("masks only")
            };
            let mut at = resolve(nodes[m].inputs[0], &mut Vec::new());
            loop {
                match nodes[at].op {
                    Op::Linear(_) | Op::Conv2d(ops::Conv2d { groups: 1, .. }) => break,
                    Op::BatchNorm(_)
                    | Op::Relu
                    | Op::Gelu
                    | Op::Tanh
                    | Op::Silu
                    | Op::Identity
                    | Op::Dropout(_) => at = resolve(nodes[at].inputs[0], &mut Vec::new()),
                    ref op => {
                        return Err(Error::invalid(format!(
                            "channel mask {m} reaches a {} (node {at}) before a linear layer or convolution",
                            op.kind()
                        )))
                    }
                }
            }
            match narrow[at] {
                Some(k) if k != keep => {
                    return Err(Error::invalid(format!(
                        "node {at} is narrowed to both {k} and {keep} channels"
                    )))
                }
                _ => narrow[at] = Some(keep),
            }
        }
        let mut b = NetSpecBuilder::new(self.spec.input_shape())?;
        let mut at: Vec<Option<NodeId>> = vec![None; nodes.len()];
        at[0] = Some(0);
        let mut origin = vec![0];
        for (id, node) in nodes.iter().enumerate().skip(1) {
            if skip[id] || alias[id].is_some() || !needed[id] {
                continue;
            }
            let inputs = node
                .inputs
                .iter()
                .map(|&j| resolve(j, &mut Vec::new()))
                .filter(|&j| !absent[j])
                .map(|j| at[j].expect("inputs come first and are kept"))
                .collect::<Vec<_>>();
            if inputs.len() < node.inputs.len() {
                // Optional terms switched off: only a sum may lose inputs.
                match (&node.op, &inputs[..]) {
                    (Op::Add, [one]) => {
                        at[id] = Some(*one);
                        continue;
                    }
                    (Op::Add, [_, _, ..]) => {}
                    _ => {
                        return Err(Error::invalid(format!(
                            "node {id} ({}) reads an optional module that is switched off",
                            node.op.kind()
                        )))
                    }
                }
            }
            // A depthwise convolution follows its input's channels.
            let depthwise = match &node.op {
                Op::Conv2d(c) if c.groups > 1 && c.groups == c.out_channels => {
                    let (mine, theirs) = (b.channels(inputs[0]), nodes[node.inputs[0]].shape[0]);
                    (c.groups == theirs && mine != theirs).then_some(mine)
                }
                _ => None,
            };
            let op = match (&node.op, narrow[id].or(depthwise)) {
                (Op::Linear(ops::Linear { bias, .. }), Some(keep)) => Op::Linear(ops::Linear {
                    out_features: keep,
                    bias: *bias,
                }),
                (Op::Conv2d(_), Some(keep)) => {
                    let mut op = node.op.clone();
                    if let Op::Conv2d(ops::Conv2d {
                        out_channels,
                        groups,
                        ..
                    }) = &mut op
                    {
                        if depthwise.is_some() {
                            *groups = keep;
                        }
                        *out_channels = keep;
                    }
                    op
                }
                (op, _) => op.clone(),
            };
            b.set_scope(node.scope.clone());
            at[id] = Some(b.push(op, &inputs)?);
            origin.push(id);
        }
        let output = at[out].expect("the output is never a candidate");
        Ok((b.finish(output), origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vector input of 4 features and `ops` relus side by side on it, summed: one module.
    fn relus(ops: usize) -> (NetSpecBuilder, Mixed) {
        let mut b = NetSpecBuilder::new(&[4]).unwrap();
        let m = Mixed::build(&mut b, 0, 0, ops, &mut |b, x, _| b.push(Op::Relu, &[x])).unwrap();
        (b, m)
    }

    #[test]
    fn candidates_that_overlap_are_refused_unless_one_nests_in_the_other() {
        let (b, m) = relus(2);
        let out = m.output;
        let mut bad = m.clone();
        // Candidate 1 now also takes candidate 0's node.
        bad.candidates[1].nodes = 1..3;
        let spec = b.finish(out);
        assert!(SuperSpec::new(spec.clone(), vec![m.clone()], vec![2]).is_ok());
        let e = SuperSpec::new(spec.clone(), vec![bad], vec![2]).unwrap_err();
        assert!(e.to_string().contains("out of place"), "{e}");
        // The same module twice is two candidates on the same nodes.
        let e = SuperSpec::new(spec, vec![m.clone(), m], vec![2]).unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
    }

    #[test]
    fn only_alike_convolutions_and_batch_norms_share_weights() {
        // Input 2x8x8; a 3x3 and a 5x5 convolution of it, each with a batch norm; a dilated
        // 3x3 convolution; a relu.
        let mut b = NetSpecBuilder::new(&[2, 8, 8]).unwrap();
        let c3 = b.conv(0, 4, 3, 1, 1).unwrap();
        let n3 = b.bn(c3).unwrap();
        let c5 = b.conv(0, 4, 5, 1, 2).unwrap();
        let n5 = b.bn(c5).unwrap();
        let c6 = b
            .push(
                Op::Conv2d(ops::Conv2d {
                    out_channels: 4,
                    kernel: 3,
                    stride: 1,
                    padding: 2,
                    dilation: 2,
                    groups: 1,
                    bias: false,
                }),
                &[0],
            )
            .unwrap();
        let r = b.relu(n5).unwrap();
        let out = b.add(&[n3, r]).unwrap();
        let out = b.add(&[out, c6]).unwrap();
        let spec = b.finish(out);
        let sup = || SuperSpec::new(spec.clone(), Vec::new(), Vec::new()).unwrap();
        let shared = sup().with_shared(&[(c3, c5), (n3, n5)]).unwrap();
        assert_eq!(shared.shared()[c3], Some(c5));
        assert_eq!(shared.shared()[n3], Some(n5));
        // The 3x3 keeps only its map of kernel positions, 9 x 9.
        let own = spec.node_params(c3) + spec.node_params(n3);
        assert_eq!(shared.params(), spec.params() - own + 81);
        for (pairs, why) in [
            (vec![(c5, c3)], "no larger kernel"),
            (vec![(c6, c5)], "no larger kernel"),
            (vec![(r, n5)], "no larger kernel"),
            (vec![(c3, c5), (c3, c5)], "one other"),
            (vec![(c3, c3)], "one other"),
            (vec![(c3, 99)], "no such node"),
            (vec![(n3, n5), (n5, n3)], "shares another's"),
        ] {
            let e = sup().with_shared(&pairs).unwrap_err().to_string();
            assert!(e.contains(why), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn derived_choices_are_looked_up_in_their_table_and_checked() {
        let (b, m) = relus(3);
        let out = m.output;
        let spec = b.finish(out);
        // Choice 1 (derived) follows choice 0 (2 options): its table has a value for each.
        let mut m3 = m.clone();
        m3.choice = 1;
        let derived = Derived {
            sources: vec![0],
            table: vec![2, 0],
            options: 3,
        };
        let sup = SuperSpec::with_derived(
            spec.clone(),
            vec![m3.clone()],
            vec![2],
            vec![derived.clone()],
        )
        .unwrap();
        assert_eq!(sup.expand(&[0]), vec![0, 2]);
        assert_eq!(sup.expand(&[1]), vec![1, 0]);
        // Option 0 of the arch picks candidate 2 of the module.
        let (sub, origin) = sup.sub_network(&[0]).unwrap();
        assert_eq!(origin, vec![0, 3]);
        assert_eq!(sub.nodes().len(), 2);
        for (table, options) in [(vec![2], 3), (vec![3, 0], 3), (vec![0, 0], 0)] {
            let bad = Derived {
                table,
                options,
                ..derived.clone()
            };
            let e = SuperSpec::with_derived(spec.clone(), vec![m3.clone()], vec![2], vec![bad]);
            assert!(e.unwrap_err().to_string().contains("derived choice 0"));
        }
    }
}
