//! Property tests of the TOML config (`SearchConfig` via toml, `from_file`, `write`) and
//! `parse_image`: mutated and arbitrary inputs load or fail with a message, never panic.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// proptest without `std` catches no panics: turn one into a failed case it can shrink.
fn no_panic<T>(input: &dyn std::fmt::Debug, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        TestCaseError::fail(format!("panicked on {input:?}: {msg}"))
    })
}

/// The init template with every key set: a valid config of every field.
fn full_template() -> String {
    INIT_TEMPLATE
        .lines()
        .map(|l| {
            let l = l
                .strip_prefix("# ")
                .filter(|r| r.contains(" = "))
                .unwrap_or(l);
            format!("{}\n", l.split("  #").next().unwrap_or(l))
        })
        .collect()
}

const TOKENS: &[&str] = &[
    "=",
    "\"",
    "'",
    "[",
    "]",
    "[[",
    ",",
    "\n",
    "#",
    "{",
    "}",
    ".",
    "-",
    "1e999",
    "nan",
    "inf",
    "18446744073709551616",
    "-1",
    "true",
    "epochs",
    "seed",
    "space_param",
    "é",
    "\\u",
];

/// `line` with byte edits and spliced tokens (positions modulo the length).
fn mutate(text: &str, edits: &[(usize, u8, usize)]) -> String {
    let mut b = text.as_bytes().to_vec();
    for &(p, kind, t) in edits {
        let at = p % (b.len() + 1);
        match kind % 4 {
            0 if !b.is_empty() => {
                let i = p % b.len();
                b[i] = t as u8;
            }
            1 => b.truncate(at),
            2 => {
                let end = (at + t % 24).min(b.len());
                b.drain(at..end);
            }
            _ => {
                let tok = TOKENS[t % TOKENS.len()].as_bytes().to_vec();
                b.splice(at..at, tok);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, usize)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 1..5)
}

/// Configs with a spread of fields set, some at the edges of their types.
fn search_config() -> impl Strategy<Value = SearchConfig> {
    let word = proptest::sample::select(vec!["nb201", "rea", "", "a b", "é", "\"", "x\ny"]);
    let params = proptest::collection::vec(
        proptest::sample::select(vec!["channels=16", "population=10", "k=", "=v", "a=\"b\""]),
        0..3,
    );
    (
        (
            proptest::option::of(word.clone()),
            params.clone(),
            proptest::option::of(word),
        ),
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<usize>()),
            proptest::option::of(-1e300f64..1e300),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<u32>()),
        ),
    )
        .prop_map(
            |((space, space_param, strategy), (seed, trials, lr, nesterov, min_epochs))| {
                SearchConfig {
                    space: space.map(str::to_string),
                    space_param: space_param.into_iter().map(str::to_string).collect(),
                    strategy: strategy.map(str::to_string),
                    seed,
                    trials,
                    lr,
                    nesterov,
                    min_epochs,
                    epoch_budget: seed.map(|s| s / 3),
                    data: Some(PathBuf::from("data dir/é.csv")),
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_config_files_load_or_name_the_file(e in edits()) {
        let text = mutate(&full_template(), &e);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, &text).unwrap();
        if let Err(err) = no_panic(&text, || SearchConfig::from_file(&path))? {
            let msg = format!("{err:#}");
            prop_assert!(msg.contains("run.toml") && msg.len() > 20, "{}", msg);
        }
    }

    #[test]
    fn arbitrary_toml_never_panics(chars in proptest::collection::vec(
        proptest::sample::select("ab_=\"'[]{},.\n#1e-+ ".chars().collect::<Vec<_>>()), 0..80,
    )) {
        let text: String = chars.into_iter().collect();
        if let Err(e) = no_panic(&text, || toml::from_str::<SearchConfig>(&text))? {
            prop_assert!(!e.to_string().trim().is_empty());
        }
    }

    #[test]
    fn written_configs_read_back_equal(cfg in search_config()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        match no_panic(&cfg, || cfg.write(&path, "# header"))? {
            Ok(()) => prop_assert_eq!(SearchConfig::from_file(&path).unwrap(), cfg),
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.contains("is too large") && ["--seed", "--trials", "--epoch-budget"].iter().any(|f| msg.contains(f)), "{}", msg);
            }
        }
    }

    #[test]
    fn parse_image_accepts_hxwxc_or_says_so(
        s in prop_oneof![
            edits().prop_map(|e| mutate("28x28x1", &e)),
            proptest::collection::vec(proptest::sample::select("0123456789x -".chars().collect::<Vec<_>>()), 0..30)
                .prop_map(|v| v.into_iter().collect()),
            Just("4294967296x4294967296x4294967296".to_string()),
        ]
    ) {
        match no_panic(&s, || parse_image(&s))? {
            Ok(dims) => {
                prop_assert!(dims.iter().all(|&d| d > 0));
                prop_assert!(dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_some(), "{:?}", dims);
            }
            Err(e) => prop_assert!(e.to_string().contains("HxWxC"), "{}", e),
        }
    }
}
