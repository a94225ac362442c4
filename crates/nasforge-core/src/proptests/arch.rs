//! Arch parsers: NAS-Bench-201 strings, DARTS genotypes, the `name=label` form of `macro` and
//! `mlp`, and arch JSON (`Space::parse_json`, `read_arch`) for every space.

use super::{config, mutated, names_one_of, no_panic, text};
use crate::rng::Rng;
use crate::space::{self, read_arch, DartsSpace, Nb201Space, Space, SPACE_NAMES};
use crate::Params;
use proptest::prelude::*;

const NB201_TOKENS: &[&str] = &[
    "|",
    "+",
    "~",
    "~0",
    "~1",
    "~2",
    "~9",
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
    "|+|",
    " ",
    "é",
    "~18446744073709551616",
];

const DARTS_TOKENS: &[&str] = &[
    "Genotype(",
    ")",
    "(",
    "[",
    "]",
    ",",
    "'",
    "\"",
    "normal=[",
    "reduce=[",
    "normal_concat=",
    "reduce_concat=",
    "[2, 3, 4, 5]",
    "range(2, 6)",
    "('sep_conv_3x3', 0)",
    "('skip_connect', 1)",
    "('max_pool_3x3', 7)",
    "-1",
    "99999999999999999999",
    "é",
    " ",
];

const PAIR_TOKENS: &[&str] = &[
    ",",
    "=",
    "==",
    "layer0_op",
    "layer1_skip0",
    "depth",
    "width_1",
    "width_9",
    "conv_3x3",
    "identity",
    "relu",
    "on",
    "off",
    "0.1",
    "é",
    " ",
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\"space\"",
    "\"arch\"",
    "\"choices\"",
    "null",
    "1e999",
    "\"nb201\"",
    "\"darts\"",
    "\\u0000",
    "é",
];

fn all_spaces() -> Vec<Box<dyn Space>> {
    SPACE_NAMES
        .iter()
        .map(|n| space::build(n, &Params::new()).expect("default params are valid"))
        .collect()
}

/// A few valid text forms of `space`'s archs.
fn examples(space: &dyn Space) -> Vec<String> {
    let mut rng = Rng::new(7);
    (0..8)
        .map(|_| space.format(&space.sample(&mut rng)))
        .collect()
}

/// `parse` of `text` must not panic; an error must name the form expected or the part that
/// was wrong; an arch it accepts must format to text that parses back to it.
fn check_parse(space: &dyn Space, input: &str, names: &[&str]) -> Result<(), TestCaseError> {
    match no_panic(&input, || space.parse(input))? {
        Ok(arch) => {
            let again = no_panic(&input, || space.parse(&space.format(&arch)))?;
            prop_assert_eq!(
                again.ok(),
                Some(arch),
                "accepted {:?}, round trip lost it",
                input
            );
        }
        Err(e) => names_one_of(&e.to_string(), names)?,
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn nb201_round_trips_every_cell(values in proptest::collection::vec(0u16..5, 6)) {
        let s = Nb201Space::new();
        let arch = s.arch_from_values(&values).unwrap();
        let text = s.format(&arch);
        prop_assert_eq!(s.parse(&text).unwrap(), arch.clone());
        prop_assert_eq!(s.format(&s.parse(&text).unwrap()), text);
    }

    #[test]
    fn nb201_mutated_strings_never_panic(
        input in mutated(examples(&Nb201Space::new()), NB201_TOKENS)
    ) {
        check_parse(&Nb201Space::new(), &input, &["NAS-Bench-201"])?;
    }

    #[test]
    fn nb201_arbitrary_text_never_panics(input in text("|+~012 nonecvkip_", 120)) {
        check_parse(&Nb201Space::new(), &input, &["NAS-Bench-201"])?;
    }

    #[test]
    fn darts_round_trips_every_genotype(seed in any::<u64>(), double_quotes: bool) {
        let s = DartsSpace::new();
        let arch = s.sample(&mut Rng::new(seed));
        let text = s.format(&arch);
        prop_assert_eq!(s.parse(&text).unwrap(), arch.clone());
        // The forms DARTS's own code prints: double quotes, no spaces, `range(2, 6)`.
        let mut other = text.replace(' ', "").replace("[2,3,4,5]", "range(2,6)");
        if double_quotes {
            other = other.replace('\'', "\"");
        }
        prop_assert_eq!(s.parse(&other).unwrap(), arch);
    }

    #[test]
    fn darts_mutated_genotypes_never_panic(
        input in mutated(examples(&DartsSpace::new()), DARTS_TOKENS)
    ) {
        check_parse(&DartsSpace::new(), &input, &["DARTS genotype", "is not an option of"])?;
    }

    #[test]
    fn darts_arbitrary_text_never_panics(input in text("Genotype(normal=[('sep_conv_3x3', 0)]),_concat", 200)) {
        check_parse(&DartsSpace::new(), &input, &["DARTS genotype", "is not an option of"])?;
    }

    #[test]
    fn every_space_round_trips_text_and_json(seed in any::<u64>()) {
        for s in all_spaces() {
            let arch = s.sample(&mut Rng::new(seed));
            prop_assert_eq!(s.parse(&s.format(&arch)).unwrap(), arch.clone(), "{}", s.name());
            prop_assert_eq!(s.parse_json(&s.to_json(&arch)).unwrap(), arch.clone(), "{}", s.name());
            let inline = s.to_json(&arch).to_string();
            prop_assert_eq!(read_arch(s.as_ref(), &inline).unwrap(), arch, "{}", s.name());
        }
    }

    #[test]
    fn pair_forms_never_panic(seed in 0usize..2, input in mutated(
        [space::build("macro", &Params::new()).unwrap(), space::build("mlp", &Params::new()).unwrap()]
            .iter()
            .flat_map(|s| examples(s.as_ref()))
            .collect(),
        PAIR_TOKENS,
    )) {
        let s = space::build(["macro", "mlp"][seed], &Params::new()).unwrap();
        check_parse(s.as_ref(), &input, &["choice", "option", "given twice"])?;
    }

    #[test]
    fn arch_json_never_panics(seed in any::<u64>(), which in 0usize..4, edits in super::edits(4)) {
        let spaces = all_spaces();
        let s = spaces[which].as_ref();
        let donor = spaces[(which + 1) % 4].as_ref();
        // A valid document of this space or another one, mutated.
        let doc = if seed % 2 == 0 { s.to_json(&s.sample(&mut Rng::new(seed))) } else { donor.to_json(&donor.sample(&mut Rng::new(seed))) };
        let bytes = super::apply(doc.to_string().into_bytes(), &edits, JSON_TOKENS);
        let input = String::from_utf8_lossy(&bytes).into_owned();
        let input = if input.trim_start().starts_with('{') { input } else { format!("{{{input}") };
        match no_panic(&input, || read_arch(s, &input))? {
            Ok(arch) => prop_assert_eq!(s.parse_json(&s.to_json(&arch)).unwrap(), arch),
            Err(e) => names_one_of(&e.to_string(), &["JSON", "choice", "option", "genotype", "NAS-Bench-201", "space"])?,
        }
    }
}
