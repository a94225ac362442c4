//! Search spaces: schemas of named choices, and [`Arch`], one assignment of them.
//!
//! Every space is a list of categorical [`Choice`]s. Strategies only ever see choice values, so
//! every strategy works on every space; the space alone knows how to format its archs and how
//! to decode one into a [`NetSpec`]. Conditional choices (an MLP's width of a layer beyond its
//! depth, say) are expressed by [`Space::is_active`]: an inactive choice is held at 0, so each
//! distinct network has exactly one canonical [`Arch`] and one key.

mod chain;
mod darts;
mod mlp;
mod nb201;
mod transformer;

pub use crate::params::Params;
pub use chain::MacroSpace;
pub use darts::DartsSpace;
pub use mlp::MlpSpace;
pub use nb201::{cell_class, Nb201Space};
pub use transformer::{Head, Mixer, TransformerSpace, MIXERS};

use crate::netspec::supernet::SuperSpec;
use crate::netspec::NetSpec;
use crate::rng::Rng;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashSet};

/// One named categorical decision of a space, with its options' labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Name, unique within the space (`edge_1_0`, `depth`, ...).
    pub name: String,
    /// The labels of the options, in index order.
    pub options: Vec<String>,
}

impl Choice {
    /// A choice named `name` with the given option labels.
    pub fn new<S: ToString>(name: impl Into<String>, options: &[S]) -> Self {
        Choice {
            name: name.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }
}

/// One architecture: a value (option index) for every choice of its space, in canonical form
/// (inactive choices are 0). Cheap to hash and compare; turn it into text with [`Space::key`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch {
    values: Vec<u16>,
}

impl Arch {
    /// The option index of each choice, in the space's choice order.
    pub fn values(&self) -> &[u16] {
        &self.values
    }
}

/// A drawing of (part of) an arch for reports: a small DAG in topological order whose nodes and
/// edges carry labels (a NAS-Bench-201 cell: four nodes, edges labelled by op; a chain: one node
/// per layer). [`Space::cells`] gives one per cell type or one for the whole network.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CellGraph {
    /// What this graph shows (`cell`, `normal cell`, `network`).
    pub title: String,
    /// Node labels, in topological order.
    pub nodes: Vec<String>,
    /// Edges `(from, to, label)`, `from < to`; an empty label is a plain connection, and the
    /// label `none` marks an edge that carries zeros.
    pub edges: Vec<(usize, usize, String)>,
}

impl CellGraph {
    /// Nodes in a line, each feeding the next with a plain edge.
    pub fn chain(title: impl Into<String>, nodes: Vec<String>) -> CellGraph {
        let edges = (1..nodes.len())
            .map(|i| (i - 1, i, String::new()))
            .collect();
        CellGraph {
            title: title.into(),
            nodes,
            edges,
        }
    }
}

/// A search space: a schema of named choices plus what the choices mean as a network.
///
/// Implementors provide the schema ([`Space::choices`]), conditions ([`Space::is_active`]) and
/// the decoder ([`Space::decode`]); sampling, mutation, neighbours, crossover, encoding, keys and
/// JSON come for free from the schema and may be overridden where a space knows better.
pub trait Space: Send + Sync {
    /// The registry name (`nb201`, `darts`, `macro`, `mlp`, `transformer`).
    fn name(&self) -> &str;

    /// The choices, in a fixed order.
    fn choices(&self) -> &[Choice];

    /// Whether choice `i` matters given `values` (only choices before `i` may be consulted).
    fn is_active(&self, _values: &[u16], _i: usize) -> bool {
        true
    }

    /// The network this arch describes.
    fn decode(&self, arch: &Arch) -> Result<NetSpec>;

    /// The supernet of the space for one-shot methods: every choice built with all its
    /// candidates ([`SuperSpec`]). An error for a space that has none yet.
    fn supernet(&self) -> Result<SuperSpec> {
        Err(Error::invalid(format!(
            "space `{}` has no supernet yet; one-shot methods run on: nb201, darts, macro, mlp",
            self.name()
        )))
    }

    /// The space's own text form of an arch. By default `name=label` pairs of the active
    /// choices, comma separated.
    fn format(&self, arch: &Arch) -> String {
        let choices = self.choices();
        let mut out = String::new();
        for (i, c) in choices.iter().enumerate() {
            if !self.is_active(&arch.values, i) {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&c.name);
            out.push('=');
            out.push_str(&c.options[arch.values[i] as usize]);
        }
        out
    }

    /// Reads the text form that [`Space::format`] writes.
    fn parse(&self, text: &str) -> Result<Arch> {
        parse_pairs(self, text)
    }

    /// The space's parameters (sizes, input shape, classes) as JSON, for records and `show`.
    fn params_json(&self) -> serde_json::Value;

    /// The canonical key of an arch: its text form. Equal keys mean the same network.
    fn key(&self, arch: &Arch) -> String {
        self.format(arch)
    }

    /// Builds an arch from option indices, checking ranges and making it canonical.
    fn arch_from_values(&self, values: &[u16]) -> Result<Arch> {
        let choices = self.choices();
        if values.len() != choices.len() {
            return Err(Error::invalid(format!(
                "space `{}` has {} choices but {} values were given",
                self.name(),
                choices.len(),
                values.len()
            )));
        }
        for (c, &v) in choices.iter().zip(values) {
            if v as usize >= c.options.len() {
                return Err(Error::invalid(format!(
                    "choice `{}` has {} options; value {v} is out of range",
                    c.name,
                    c.options.len()
                )));
            }
        }
        Ok(self.canonical(values.to_vec()))
    }

    /// Sets every inactive choice to 0.
    fn canonical(&self, mut values: Vec<u16>) -> Arch {
        for i in 0..values.len() {
            if !self.is_active(&values, i) {
                values[i] = 0;
            }
        }
        Arch { values }
    }

    /// A uniformly random value for every choice (then made canonical).
    fn sample(&self, rng: &mut Rng) -> Arch {
        let values = self
            .choices()
            .iter()
            .map(|c| rng.below(c.options.len()) as u16)
            .collect();
        self.canonical(values)
    }

    /// Changes one active choice (with at least two options) to another value. Choices that the
    /// change makes active get random values. Returns the arch unchanged if nothing can change.
    fn mutate(&self, arch: &Arch, rng: &mut Rng) -> Arch {
        let mutable: Vec<usize> = (0..self.choices().len())
            .filter(|&i| self.choices()[i].options.len() > 1 && self.is_active(&arch.values, i))
            .collect();
        if mutable.is_empty() {
            return arch.clone();
        }
        let i = mutable[rng.below(mutable.len())];
        let n = self.choices()[i].options.len();
        let mut values = arch.values.clone();
        let shift = 1 + rng.below(n - 1);
        values[i] = ((values[i] as usize + shift) % n) as u16;
        for j in i + 1..values.len() {
            if !self.is_active(&arch.values, j) && self.is_active(&values, j) {
                values[j] = rng.below(self.choices()[j].options.len()) as u16;
            }
        }
        self.canonical(values)
    }

    /// Every distinct arch that differs from `arch` in exactly one active choice, in choice
    /// order. Choices a change makes active take their first option.
    fn neighbours(&self, arch: &Arch) -> Vec<Arch> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, c) in self.choices().iter().enumerate() {
            if !self.is_active(&arch.values, i) {
                continue;
            }
            for v in 0..c.options.len() as u16 {
                if v == arch.values[i] {
                    continue;
                }
                let mut values = arch.values.clone();
                values[i] = v;
                let n = self.canonical(values);
                if n != *arch && seen.insert(n.clone()) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// Uniform crossover: each choice from `a` or `b` with equal probability.
    fn crossover(&self, a: &Arch, b: &Arch, rng: &mut Rng) -> Arch {
        let values = a
            .values
            .iter()
            .zip(&b.values)
            .map(|(&x, &y)| if rng.below(2) == 0 { x } else { y })
            .collect();
        self.canonical(values)
    }

    /// The path encoding of BANANAS (White et al., 2021): one indicator per input-to-output path
    /// of the cell and sequence of ops along it, for spaces that define one (`None` otherwise).
    fn path_encoding(&self, _arch: &Arch) -> Option<Vec<f32>> {
        None
    }

    /// A numeric encoding for predictors: one-hot per choice, all zeros for inactive choices.
    fn encode(&self, arch: &Arch) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.choices().iter().map(|c| c.options.len()).sum());
        for (i, c) in self.choices().iter().enumerate() {
            let active = self.is_active(&arch.values, i);
            for v in 0..c.options.len() {
                out.push(if active && v == arch.values[i] as usize {
                    1.0
                } else {
                    0.0
                });
            }
        }
        out
    }

    /// The number of value combinations (the product of option counts). For spaces with
    /// conditional choices this counts canonical duplicates too: an upper bound on distinct archs.
    fn combinations(&self) -> u128 {
        self.choices()
            .iter()
            .fold(1u128, |acc, c| acc.saturating_mul(c.options.len() as u128))
    }

    /// The arch at position `index` of the mixed-radix enumeration of all value combinations
    /// (`index < combinations()`), or `None` when that combination is not canonical.
    fn arch_at(&self, mut index: u128) -> Option<Arch> {
        let choices = self.choices();
        let mut values = vec![0u16; choices.len()];
        for i in (0..choices.len()).rev() {
            let n = choices[i].options.len() as u128;
            values[i] = (index % n) as u16;
            index /= n;
        }
        let arch = self.canonical(values.clone());
        (arch.values == values).then_some(arch)
    }

    /// Graphs of `arch` for reports and dashboards. The default is a chain of the active
    /// choices as `name=value` nodes; spaces with cells draw the cells.
    fn cells(&self, arch: &Arch) -> Vec<CellGraph> {
        let v = arch.values();
        let mut nodes = vec!["input".to_string()];
        for (i, c) in self.choices().iter().enumerate() {
            if self.is_active(v, i) {
                nodes.push(format!("{}={}", c.name, c.options[v[i] as usize]));
            }
        }
        nodes.push("output".into());
        vec![CellGraph::chain("network", nodes)]
    }

    /// The arch as JSON: `{"space", "arch" (text form), "choices": {name: label}}` (active choices).
    fn to_json(&self, arch: &Arch) -> serde_json::Value {
        let mut choices = serde_json::Map::new();
        for (i, c) in self.choices().iter().enumerate() {
            if self.is_active(&arch.values, i) {
                choices.insert(
                    c.name.clone(),
                    c.options[arch.values[i] as usize].clone().into(),
                );
            }
        }
        serde_json::json!({
            "space": self.name(),
            "arch": self.format(arch),
            "choices": choices,
        })
    }

    /// Reads what [`Space::to_json`] writes (the `choices` object, else the `arch` string).
    fn parse_json(&self, value: &serde_json::Value) -> Result<Arch> {
        if let Some(space) = value.get("space").and_then(|s| s.as_str()) {
            if space != self.name() {
                return Err(Error::invalid(format!(
                    "the arch JSON is for space `{space}`, not `{}`; pass --space {space}",
                    self.name()
                )));
            }
        }
        if let Some(obj) = value.get("choices").and_then(|c| c.as_object()) {
            let mut pairs = BTreeMap::new();
            for (k, v) in obj {
                let label = v.as_str().ok_or_else(|| {
                    Error::invalid(format!("arch JSON: choice `{k}` must be a string label"))
                })?;
                pairs.insert(k.clone(), label.to_string());
            }
            return arch_from_labels(self, &pairs);
        }
        match value.get("arch").and_then(|a| a.as_str()) {
            Some(text) => self.parse(text),
            None => Err(Error::invalid(
                "arch JSON needs a `choices` object or an `arch` string",
            )),
        }
    }
}

/// Parses the default `name=label,name=label` text form.
fn parse_pairs<S: Space + ?Sized>(space: &S, text: &str) -> Result<Arch> {
    let mut pairs = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            Error::invalid(format!(
                "`{part}` is not `choice=option`; a `{}` arch looks like `{}`",
                space.name(),
                space.format(&space.canonical(vec![0; space.choices().len()]))
            ))
        })?;
        if pairs
            .insert(k.trim().to_string(), v.trim().to_string())
            .is_some()
        {
            return Err(Error::invalid(format!(
                "choice `{}` is given twice",
                k.trim()
            )));
        }
    }
    arch_from_labels(space, &pairs)
}

/// Builds an arch from `choice name -> option label`. Every active choice must be present;
/// unknown names and labels are errors that list what is allowed.
fn arch_from_labels<S: Space + ?Sized>(
    space: &S,
    pairs: &BTreeMap<String, String>,
) -> Result<Arch> {
    let choices = space.choices();
    for k in pairs.keys() {
        if !choices.iter().any(|c| &c.name == k) {
            let names: Vec<&str> = choices.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::invalid(format!(
                "space `{}` has no choice `{k}`; its choices are: {}",
                space.name(),
                names.join(", ")
            )));
        }
    }
    let mut values = vec![0u16; choices.len()];
    for (i, c) in choices.iter().enumerate() {
        match pairs.get(&c.name) {
            Some(label) => {
                values[i] = option_index(c, label)? as u16;
            }
            None if space.is_active(&values, i) => {
                return Err(Error::invalid(format!(
                    "choice `{}` is missing; its options are: {}",
                    c.name,
                    c.options.join(", ")
                )));
            }
            None => {}
        }
    }
    Ok(space.canonical(values))
}

/// The index of `label` among a choice's options, or an error listing them.
pub(crate) fn option_index(choice: &Choice, label: &str) -> Result<usize> {
    choice
        .options
        .iter()
        .position(|o| o == label)
        .ok_or_else(|| {
            Error::invalid(format!(
                "`{label}` is not an option of `{}`; choose one of: {}",
                choice.name,
                choice.options.join(", ")
            ))
        })
}

/// The most channels or units a space parameter may ask for (`channels`, `widths`, `stem`).
pub const MAX_WIDTH: usize = 1 << 16;

/// The most cells, layers or depth a space parameter may ask for.
pub const MAX_DEPTH: usize = 256;

/// The most classes (outputs) a space parameter may ask for.
pub const MAX_CLASSES: usize = 1 << 20;

/// The names [`build`] accepts.
pub const SPACE_NAMES: &[&str] = &["nb201", "darts", "macro", "mlp", "transformer"];

/// Builds a registered space by name with its parameters (each space's defaults fill the rest).
pub fn build(name: &str, params: &Params) -> Result<Box<dyn Space>> {
    let space: Box<dyn Space> = match name {
        "nb201" => Box::new(Nb201Space::from_params(params)?),
        "darts" => Box::new(DartsSpace::from_params(params)?),
        "macro" => Box::new(MacroSpace::from_params(params)?),
        "mlp" => Box::new(MlpSpace::from_params(params)?),
        "transformer" => Box::new(TransformerSpace::from_params(params)?),
        other => {
            return Err(Error::invalid(format!(
                "unknown space `{other}`; choose one of: {}",
                SPACE_NAMES.join(", ")
            )))
        }
    };
    Ok(space)
}

/// Reads an arch given on the command line: a path to a JSON file, inline JSON, or the
/// space's text form.
pub fn read_arch(space: &dyn Space, input: &str) -> Result<Arch> {
    let trimmed = input.trim();
    if trimmed.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(trimmed)
            .map_err(|e| Error::invalid(format!("the arch looks like JSON but is not: {e}")))?;
        return space.parse_json(&v);
    }
    if trimmed.ends_with(".json") {
        let text = std::fs::read_to_string(trimmed).map_err(|e| Error::io(trimmed, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{trimmed}: not valid JSON: {e}")))?;
        return space.parse_json(&v);
    }
    space.parse(trimmed)
}

#[cfg(test)]
mod tests;
