//! `--space-param` / `--strategy-param`: `Params::parse`, its typed getters, and every
//! registered space and strategy built from random and mutated parameters.

use super::{config, mutated, names_one_of, no_panic, text};
use crate::rng::Rng;
use crate::space::{self, SPACE_NAMES};
use crate::strategy::{self, History, STRATEGIES};
use crate::Params;
use proptest::prelude::*;

const SPACE_KEYS: &[&str] = &[
    "channels",
    "cells",
    "input",
    "classes",
    "layers",
    "widths",
    "stem",
    "max_depth",
    "dropouts",
];

const STRATEGY_KEYS: &[&str] = &[
    "population",
    "sample_size",
    "init",
    "restart",
    "predictor",
    "encoding",
    "acquisition",
    "kappa",
    "batch",
    "parents",
    "random_candidates",
    "rank_transform",
    "candidates",
    "gamma",
    "lr",
    "baseline",
    "entropy",
    "warm_start",
    "warm_pool",
    "warm_top",
];

/// Numbers at the edges: zero, negatives, fractions, and sizes that overflow or exhaust memory.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "16",
    "-1",
    "0.5",
    "1.5",
    "1e3",
    "NaN",
    "inf",
    "-inf",
    "65536",
    "4294967296",
    "100000000000",
    "18446744073709551615",
    "18446744073709551616",
];

/// Other values that are valid somewhere, and their near misses.
const VALUES: &[&str] = &[
    "",
    " ",
    "x",
    "32x32x3",
    "8x8x1",
    "28x28",
    "1x1x1x1",
    "64",
    "16,32",
    "4,8,",
    ",",
    "0,0.1",
    "4294967296x4294967296x4294967296",
    "100000x100000x100000",
    "1x100000000000x1",
    "1,18446744073709551615",
    "true",
    "no",
    "yes",
    "mlp",
    "gp",
    "forest",
    "path",
    "onehot",
    "its",
    "ei",
    "ucb",
    "params",
    "macs",
    "synflow",
    "é",
    "=",
];

const TOKENS: &[&str] = &["=", ",", "x", "0", "9", "-", ".", "e", " ", "é"];

/// A `key=value` item: a known key with a known or mutated value, or arbitrary text.
fn item(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    let value = prop_oneof![
        4 => proptest::sample::select(NUMBERS).prop_map(str::to_string),
        3 => proptest::sample::select(VALUES).prop_map(str::to_string),
        2 => mutated(VALUES.iter().chain(NUMBERS).map(|v| v.to_string()).collect(), TOKENS),
        1 => text("0123456789x,.e-", 24),
    ];
    prop_oneof![
        8 => (proptest::sample::select(keys), value).prop_map(|(k, v)| format!("{k}={v}")),
        1 => text("=abcdeilnprstx_0123456789,", 30),
    ]
}

/// Every getter on every key, in an order that reads each key once as each type.
fn read_everything(p: &Params, key: &str) {
    let _ = p.text(key);
    let _ = p.bool(key, true);
    let _ = p.usize(key, 1);
    let _ = p.usize_at_most(key, 1, 64);
    let _ = p.f64_in(key, 0.5, 0.0, 1.0);
    let _ = p.usize_list(key, &[1], 64);
    let _ = p.str_list(key, &["a"]);
    let _ = p.input_shape(&[3]);
}

/// Some arch the strategy proposes, told a score, a few times over a 16-arch MLP space.
fn run_a_little(s: &mut dyn strategy::Strategy) {
    let space = space::build(
        "mlp",
        &Params::parse(&["max_depth=1", "widths=8,16", "dropouts=0"]).unwrap(),
    )
    .unwrap();
    let mut history = History::new();
    let mut rng = Rng::new(1);
    for _ in 0..20 {
        let Some(arch) = s.ask(space.as_ref(), &history) else {
            break;
        };
        assert!(!history.contains(&arch), "{} re-proposed an arch", s.name());
        history.mark_asked(&arch);
        let score = (rng.below(4) > 0).then(|| rng.below(100) as f64);
        history.record(&arch, score);
        s.tell(space.as_ref(), &arch, score, &history);
    }
}

/// An error of a build from `items` must name one of the parameters given, or the owner.
fn check_error(msg: &str, owner: &str, items: &[String]) -> Result<(), TestCaseError> {
    let mut names: Vec<&str> = items
        .iter()
        .map(|i| i.split_once('=').map_or(i.as_str(), |(k, _)| k.trim()))
        .filter(|k| !k.is_empty())
        .collect();
    names.push(owner);
    names_one_of(msg, &names)
}

proptest! {
    // Building is cheap; the cases are many so that rare pairs (a huge `input` for `mlp`) come up.
    #![proptest_config(config(1024))]

    #[test]
    fn params_parse_and_getters_never_panic(items in proptest::collection::vec(item(SPACE_KEYS), 0..6)) {
        match no_panic(&items, || Params::parse(&items))? {
            Ok(p) => {
                for k in SPACE_KEYS {
                    no_panic(&items, || read_everything(&p, k))?;
                }
                if let Err(e) = no_panic(&items, || p.finish("test"))? {
                    prop_assert!(e.to_string().contains("has no parameter"), "{}", e);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("is not `key=value`"), "{}", msg);
            }
        }
    }

    #[test]
    fn every_space_builds_or_says_why(
        name in proptest::sample::select(SPACE_NAMES),
        items in proptest::collection::vec(item(SPACE_KEYS), 0..5),
        seed in any::<u64>(),
    ) {
        let Ok(params) = Params::parse(&items) else { return Ok(()) };
        match no_panic(&items, || space::build(name, &params))? {
            Ok(s) => {
                // A space that builds works: its archs decode (or fail cleanly) and round trip.
                let arch = s.sample(&mut Rng::new(seed));
                let text = s.format(&arch);
                prop_assert_eq!(s.parse(&text).unwrap(), arch.clone());
                no_panic(&items, || {
                    let _ = s.decode(&arch).map(|n| (n.params(), n.macs()));
                })?;
            }
            Err(e) => check_error(&e.to_string(), name, &items)?,
        }
    }

    #[test]
    fn every_strategy_builds_or_says_why(
        which in 0..STRATEGIES.len() * 2 + 1,
        items in proptest::collection::vec(item(STRATEGY_KEYS), 0..5),
        seed in any::<u64>(),
    ) {
        // Registered names, their aliases, and one that is not registered.
        let info = STRATEGIES.get(which / 2);
        let name = match info {
            Some(i) if which % 2 == 1 && !i.aliases.is_empty() => i.aliases[0],
            Some(i) => i.name,
            None => "evolutionn",
        };
        let Ok(params) = Params::parse(&items) else { return Ok(()) };
        if let Err(e) = no_panic(&items, || strategy::build(name, seed, &params))? {
            check_error(&e.to_string(), name, &items)?;
        }
    }

    #[test]
    fn every_strategy_runs_with_the_params_it_accepts(
        which in 0..STRATEGIES.len(),
        items in proptest::collection::vec(
            (proptest::sample::select(STRATEGY_KEYS), prop_oneof![
                4 => (1usize..40).prop_map(|n| n.to_string()),
                1 => proptest::sample::select(NUMBERS).prop_map(str::to_string),
                1 => proptest::sample::select(VALUES).prop_map(str::to_string),
            ]).prop_filter_map("loops over counts this large are slow, not wrong", |(k, v)| {
                let huge = v.parse::<f64>().is_ok_and(|x| x > 1000.0);
                // Sizes of allocations may be huge; sizes of loops per ask may not.
                let allocates = ["population", "sample_size", "init", "restart", "warm_pool", "warm_top", "batch", "parents"];
                (!huge || allocates.contains(&k)).then(|| format!("{k}={v}"))
            }),
            0..5,
        ),
        seed in any::<u64>(),
    ) {
        let name = STRATEGIES[which].name;
        let params = Params::parse(&items).unwrap();
        if let Ok(mut s) = no_panic(&items, || strategy::build_lenient(name, seed, &params, &|_| None))? {
            no_panic(&items, || run_a_little(s.as_mut()))?;
        }
    }
}

/// The inputs that crashed or exhausted memory before the sizes were bounded.
#[test]
fn sizes_that_used_to_crash_are_errors_or_work() {
    let build =
        |name: &str, items: &[&str]| space::build(name, &Params::parse(items).unwrap()).map(|_| ());
    // Quadratic choices: 2^33 of them (memory exhausted).
    let e = build("macro", &["layers=131072"]).unwrap_err().to_string();
    assert!(
        e.contains("layers=131072") && e.contains("at most 256"),
        "{e}"
    );
    // 2^32 depth labels (memory exhausted).
    assert!(build("mlp", &["max_depth=4294967296"]).is_err());
    // The product of the input overflowed (a panic).
    let e = build("mlp", &["input=4294967296x4294967296x4294967296"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("input"), "{e}");
    assert!(build("mlp", &["widths=8,18446744073709551615"]).is_err());
    // Large but allowed sizes decode with saturated counts instead of overflowing.
    let s = space::build(
        "darts",
        &Params::parse(&["channels=65536", "input=46340x46340x1"]).unwrap(),
    )
    .unwrap();
    let net = s.decode(&s.sample(&mut Rng::new(0))).unwrap();
    assert_eq!(net.macs(), u64::MAX);
    // `population + 1` overflowed, and the population and warm pool were preallocated.
    for items in [
        &["population=18446744073709551615", "sample_size=2"][..],
        &["population=100000000000"],
        &["warm_start=params", "warm_pool=18446744073709551615"],
    ] {
        let mut s = strategy::build("rea", 0, &Params::parse(items).unwrap()).unwrap();
        run_a_little(s.as_mut());
    }
}
