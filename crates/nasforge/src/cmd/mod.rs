//! One module per subcommand, plus the helpers they share.

pub mod bench;
pub mod config;
pub mod dashboard;
pub mod export;
pub mod init;
pub mod latency;
pub mod lock;
pub mod pipeline;
pub mod predict;
pub mod predictors;
pub mod proxies;
pub mod report;
pub mod runs;
pub mod scale;
pub mod search;
pub mod show;
pub mod train;
pub mod worker;

use anyhow::Result;
use nasforge_core::space::{self, Space};
use nasforge_core::Params;

/// `--json` and `--quiet`, shared by the commands that print results.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Output {
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success (errors still go to stderr; the exit code tells).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
}

/// An error in what the user asked for (exit code 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Returns a [`BadInput`] error.
pub fn bad_input<T>(msg: impl Into<String>) -> Result<T> {
    Err(BadInput(msg.into()).into())
}

/// A whole number of at least `min`, for clap's `value_parser`: `-1` is named as too small
/// (with `allow_negative_numbers`) instead of being taken for an unknown flag.
fn whole<T: TryFrom<i128>>(text: &str, min: i128) -> std::result::Result<T, String> {
    let n: i128 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))?;
    if n < min {
        return Err(format!("must be at least {min}, got {n}"));
    }
    T::try_from(n).map_err(|_| format!("{n} is too large"))
}

/// clap value parser: a whole number of at least 1.
pub fn positive<T: TryFrom<i128>>(text: &str) -> std::result::Result<T, String> {
    whole(text, 1)
}

/// clap value parser: a whole number of at least 0.
pub fn non_negative<T: TryFrom<i128>>(text: &str) -> std::result::Result<T, String> {
    whole(text, 0)
}

/// The registered names of strategies, schedulers or stoppers as a help line.
pub fn names_help(what: &str, names: &[&str], default: Option<&str>) -> String {
    let default = default
        .map(|d| format!(" [default: {d}]"))
        .unwrap_or_default();
    format!("{what}: {}{default}", names.join(", "))
}

/// `1 seed`, `3 seeds`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// One trial's objective values as `metric=value` pairs (front listings).
pub fn objective_values(goal: &nasforge_core::study::Goal, values: &[f64]) -> String {
    let parts: Vec<String> = goal
        .objectives
        .iter()
        .zip(values)
        .map(|(o, v)| format!("{}={}", o.metric, metric(*v)))
        .collect();
    parts.join("  ")
}

/// A metric as people read it: whole numbers without decimals, others with at most six
/// significant digits (`0.01608`, not `0.016079999999999997`).
pub fn metric(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let digits = (5 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Builds the space named on the command line with its `--space-param`s.
pub fn build_space(name: &str, params: &[String]) -> Result<Box<dyn Space>> {
    Ok(space::build(name, &Params::parse(params)?)?)
}

/// The benchmark table of a command: `--table FILE`, or without it the built-in NAS-Bench-201
/// CIFAR-10 table; with the name output shows for it.
pub fn table(
    path: Option<&std::path::Path>,
    space: &dyn Space,
) -> Result<(nasforge_core::tabular::Table, String)> {
    let table = nasforge_core::tabular::Table::load_or_builtin(path, space)?;
    let name = path.map_or_else(
        || nasforge_core::tabular::BUILTIN_NB201.to_string(),
        |p| p.display().to_string(),
    );
    Ok((table, name))
}

/// Splits a comma-separated list, dropping empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// A comma-separated list of positive numbers, sorted; `flag` and `what` name them in errors.
pub fn parse_list<T: std::str::FromStr + PartialOrd + Default + Copy>(
    flag: &str,
    text: &str,
    what: &str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for q in split_list(text) {
        match q.parse::<T>() {
            Ok(n) if n > T::default() => out.push(n),
            _ => return bad_input(format!("{flag}: `{q}` is not {what}")),
        }
    }
    if out.is_empty() {
        return bad_input(format!("{flag} is empty"));
    }
    out.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    Ok(out)
}

/// An arch given as inline JSON or a `.json` file, parsed, if it is one.
fn json_arch(arch: &str) -> Option<serde_json::Value> {
    let t = arch.trim();
    let text = if t.starts_with('{') {
        t.to_string()
    } else if t.ends_with(".json") {
        std::fs::read_to_string(t).ok()?
    } else {
        return None;
    };
    serde_json::from_str(&text).ok()
}

/// The `space` field of an arch given as inline JSON or a `.json` file, if there is one.
pub fn json_space(arch: &str) -> Option<String> {
    json_arch(arch)?.get("space")?.as_str().map(str::to_string)
}

/// The `space_params` of a JSON arch (`nasforge export --format json`) as `key=value`
/// strings; empty when it has none. Only that list form is read: the object `nasforge show
/// --json` prints is for reading, and loses option labels (an MLP's dropout `0` as `0.0`).
pub fn json_space_params(arch: &str) -> Vec<String> {
    match json_arch(arch).and_then(|v| v.get("space_params").cloned()) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// A progress bar on stderr with `template`, or a hidden one when `quiet`.
pub fn progress_bar(quiet: bool, len: u64, template: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    b
}

/// Warm-start proxies computed by nasforge-nn (`warm_start=synflow`, ...), for
/// [`nasforge_core::strategy::build_with`]. Data-dependent proxies read a batch drawn from
/// `rows` of `data` (a search passes its training rows) when given, else seeded noise shaped
/// like the networks' input. Nothing is drawn unless a warm start names a proxy.
pub fn nn_proxies(
    data: Option<(std::sync::Arc<nasforge_nn::data::Dataset>, Vec<usize>)>,
    seed: u64,
) -> impl Fn(&str) -> Option<nasforge_core::strategy::ProxyFn> + Sync {
    use nasforge_nn::proxies::{self, Proxy, ProxyBatch, DEFAULT_BATCH};
    use std::sync::{Arc, OnceLock};
    move |name: &str| -> Option<nasforge_core::strategy::ProxyFn> {
        let proxy = Proxy::parse(name).ok()?;
        let from_data = match &data {
            Some((d, rows)) if proxy.needs_data() => {
                Some(ProxyBatch::from_rows(d, rows, DEFAULT_BATCH, seed).ok()?)
            }
            _ => None,
        };
        // Every arch of one space has the same input shape: one noise batch serves them all.
        let batch: Arc<OnceLock<ProxyBatch>> = Arc::new(OnceLock::new());
        if let Some(b) = from_data {
            let _ = batch.set(b);
        }
        Some(Arc::new(
            move |space: &dyn Space, arch: &nasforge_core::space::Arch| {
                let spec = space.decode(arch).ok()?;
                let b = batch.get_or_init(|| ProxyBatch::noise_for(&spec, DEFAULT_BATCH, seed));
                proxies::score(&spec, &[proxy], b, seed)
                    .ok()
                    .and_then(|v| v.first().copied())
                    .filter(|v| v.is_finite())
            },
        ))
    }
}
