//! `key=value` parameters of a space (channels, cells, input shape, classes, option lists) or
//! a strategy (population size, ...), as given on the command line or in a config file.

use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// The most items a list parameter may have (option lists become choices, indexed by `u16`).
pub const MAX_LIST: usize = 1024;

/// The most values an `input` shape may hold (HxWxC, or features).
pub const MAX_INPUT_VALUES: usize = 1 << 31;

/// `key=value` parameters for a space or strategy. Each reads the keys it knows with typed getters
/// and then calls [`Params::finish`], which rejects any key nobody read (a typo, most often).
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    read: Mutex<BTreeSet<String>>,
}

impl Clone for Params {
    fn clone(&self) -> Self {
        Params {
            values: self.values.clone(),
            read: Mutex::new(self.read_keys().clone()),
        }
    }
}

impl Params {
    /// No parameters: the published defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `key=value` strings (as given to `--space-param` or `--strategy-param`).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self> {
        let mut p = Params::new();
        for item in items {
            let item = item.as_ref();
            let (k, v) = item.split_once('=').ok_or_else(|| {
                Error::invalid(format!(
                    "parameter `{item}` is not `key=value` (for example `channels=16`)"
                ))
            })?;
            p.set(k.trim(), v.trim());
        }
        Ok(p)
    }

    /// Sets one parameter.
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.values.insert(key.to_string(), value.to_string());
        self
    }

    fn read_keys(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn raw(&self, key: &str) -> Option<&str> {
        self.read_keys().insert(key.to_string());
        self.values.get(key).map(String::as_str)
    }

    /// A text parameter, if given.
    pub fn text(&self, key: &str) -> Option<String> {
        self.raw(key).map(str::to_string)
    }

    /// A yes/no parameter: `true`/`false`, `yes`/`no`, `1`/`0`.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.raw(key) {
            None => Ok(default),
            Some("true" | "yes" | "1") => Ok(true),
            Some("false" | "no" | "0") => Ok(false),
            Some(v) => Err(bad(key, v, "true or false")),
        }
    }

    /// A positive integer parameter.
    pub fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(key, v, "a positive integer")),
        }
    }

    /// A positive integer parameter of at most `max`: a size that the caller allocates or loops
    /// over (a space's layers, channels...), where a typo must be an error, not an exhausted memory.
    pub fn usize_at_most(&self, key: &str, default: usize, max: usize) -> Result<usize> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0 && n <= max)
                .ok_or_else(|| bad(key, v, &format!("a positive integer of at most {max}"))),
        }
    }

    /// A float parameter in `[lo, hi]`.
    pub fn f64_in(&self, key: &str, default: f64, lo: f64, hi: f64) -> Result<f64> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| (lo..=hi).contains(x))
                .ok_or_else(|| bad(key, v, &format!("a number in [{lo}, {hi}]"))),
        }
    }

    /// A list of at most [`MAX_LIST`] positive integers of at most `max` each, comma or `x`
    /// separated (`16,32,64`; `32x32x3`).
    pub fn usize_list(&self, key: &str, default: &[usize], max: usize) -> Result<Vec<usize>> {
        match self.raw(key) {
            None => Ok(default.to_vec()),
            Some(v) => {
                let items: Option<Vec<usize>> = v
                    .split([',', 'x'])
                    .map(|s| {
                        s.trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|&n| n > 0 && n <= max)
                    })
                    .collect();
                match items {
                    Some(list) if !list.is_empty() && list.len() <= MAX_LIST => Ok(list),
                    _ => Err(bad(
                        key,
                        v,
                        &format!(
                            "1 to {MAX_LIST} positive integers of at most {max}, separated by `,` or `x`"
                        ),
                    )),
                }
            }
        }
    }

    /// A list of labels, comma separated.
    pub fn str_list(&self, key: &str, default: &[&str]) -> Result<Vec<String>> {
        match self.raw(key) {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(v) => {
                let list: Vec<String> = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if list.is_empty() || list.len() > MAX_LIST {
                    Err(bad(
                        key,
                        v,
                        &format!("a comma-separated list of 1 to {MAX_LIST} items"),
                    ))
                } else {
                    Ok(list)
                }
            }
        }
    }

    /// The input shape as `H x W x C` (image) or a single number of features, of at most
    /// [`MAX_INPUT_VALUES`] values in all.
    pub fn input_shape(&self, default: &[usize]) -> Result<Vec<usize>> {
        let v = self.usize_list("input", default, MAX_INPUT_VALUES)?;
        if v.len() != 1 && v.len() != 3 {
            return Err(Error::invalid(format!(
                "parameter `input` must be HxWxC (for example 32x32x3) or a feature count, got {} numbers",
                v.len()
            )));
        }
        match v.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n)) {
            Some(total) if total <= MAX_INPUT_VALUES => Ok(v),
            _ => Err(Error::invalid(format!(
                "parameter `input={}` is too large: an input may hold at most {MAX_INPUT_VALUES} values",
                v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("x")
            ))),
        }
    }

    /// Fails if any parameter was never read by `owner` (a space or strategy): it does not exist there.
    pub fn finish(&self, owner: &str) -> Result<()> {
        let read = self.read_keys();
        let unknown: Vec<&str> = self
            .values
            .keys()
            .filter(|k| !read.contains(*k))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            let mut known: Vec<&str> = read.iter().map(String::as_str).collect();
            known.sort();
            Err(Error::invalid(format!(
                "`{owner}` has no parameter {}; its parameters are: {}",
                unknown
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                known.join(", ")
            )))
        }
    }
}

fn bad(key: &str, value: &str, want: &str) -> Error {
    Error::invalid(format!(
        "parameter `{key}={value}` is invalid: expected {want}"
    ))
}
