//! The benchmark table loader (`Table::from_csv`, `Table::load`): mutated NAS-Bench-201 tables
//! and arbitrary text.

use super::{config, mutated, names_one_of, no_panic, text};
use crate::rng::Rng;
use crate::space::{Nb201Space, Space};
use crate::tabular::Table;
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    ",", "\n", "\r\n", "\"", "arch", "acc", "NaN", "-", "1e309", "|none~0|", "+", "é", "\u{feff}",
];

/// A small valid table: `rows` distinct archs with two numeric columns.
fn table_text(rows: usize, seed: u64) -> String {
    let s = Nb201Space::new();
    let mut rng = Rng::new(seed);
    let mut out = String::from("arch,acc,params\n");
    let mut seen = std::collections::HashSet::new();
    while seen.len() < rows {
        let a = s.sample(&mut rng);
        if seen.insert(a.clone()) {
            out.push_str(&format!("{},{}.5,{}\n", s.format(&a), seen.len(), rows * 3));
        }
    }
    out
}

fn check(input: &str) -> Result<(), TestCaseError> {
    let space = Nb201Space::new();
    match no_panic(&input, || Table::from_csv(input, &space))? {
        Ok(t) => {
            prop_assert!(!t.is_empty());
            for r in 0..t.len() {
                prop_assert_eq!(t.row(t.arch(r)), Some(r));
            }
        }
        Err(e) => names_one_of(
            &e.to_string(),
            &["header", "column", "row", "NAS-Bench-201", "number"],
        )?,
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn valid_tables_load_every_row(rows in 1usize..20, seed in any::<u64>()) {
        let text = table_text(rows, seed);
        let t = Table::from_csv(&text, &Nb201Space::new()).unwrap();
        prop_assert_eq!(t.len(), rows);
        let acc = t.column_index("acc").unwrap();
        prop_assert_eq!(t.column(acc)[0], 1.5);
    }

    #[test]
    fn mutated_tables_never_panic(input in mutated((1..4).map(|r| table_text(r, r as u64)).collect(), TOKENS)) {
        check(&input)?;
    }

    #[test]
    fn arbitrary_text_never_panics(input in text("arch,acc\n\"|~0+none1.5-e", 200)) {
        check(&input)?;
    }

    #[test]
    fn load_reads_plain_and_gzip_files_or_names_the_file(
        input in mutated(vec![table_text(2, 3)], TOKENS),
        gz: bool,
        garbage_gzip: bool,
    ) {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if gz { "t.csv.gz" } else { "t.csv" });
        let bytes = if gz && !garbage_gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(input.as_bytes()).unwrap();
            e.finish().unwrap()
        } else {
            input.clone().into_bytes()
        };
        std::fs::write(&path, bytes).unwrap();
        let space = Nb201Space::new();
        if let Err(e) = no_panic(&input, || Table::load(&path, &space))? {
            prop_assert!(e.to_string().contains("t.csv"), "{} does not name the file", e);
        }
    }
}
