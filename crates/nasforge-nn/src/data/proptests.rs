//! Property tests of the CSV and IDX loaders: random and mutated files must load or fail with
//! an error naming the file, never panic, and never allocate what a header merely claims.
//! (The mutation helpers mirror nasforge-core's `proptests`; test code is not shared across
//! crates.)

use super::csv::parse_csv;
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

/// Byte edits: flip, truncate, delete, duplicate, splice a token (positions modulo length).
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Truncate(usize),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Splice(usize, usize),
}

fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Flip(p, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 0..16usize).prop_map(|(p, l)| Edit::Delete(p, l)),
        (any::<usize>(), 0..32usize).prop_map(|(p, l)| Edit::Duplicate(p, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(p, t)| Edit::Splice(p, t)),
    ];
    proptest::collection::vec(edit, 1..=max)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit], tokens: &[&[u8]]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len();
        let at = |p: usize| p % (n + 1);
        match *e {
            Edit::Flip(p, b) if n > 0 => bytes[p % n] = b,
            Edit::Truncate(p) => bytes.truncate(at(p)),
            Edit::Delete(p, len) => {
                let s = at(p);
                bytes.drain(s..(s + len).min(n));
            }
            Edit::Duplicate(p, len) => {
                let s = at(p);
                let piece = bytes[s..(s + len).min(n)].to_vec();
                let e = s + piece.len();
                bytes.splice(e..e, piece);
            }
            Edit::Splice(p, t) => {
                let s = at(p);
                bytes.splice(s..s, tokens[t % tokens.len()].iter().copied());
            }
            Edit::Flip(..) => {}
        }
    }
    bytes
}

const CSV_TOKENS: &[&[u8]] = &[
    b",",
    b"\n",
    b"\r\n",
    b"\"",
    b"label",
    b"x0",
    b"NaN",
    b"inf",
    b"-",
    b"1e39",
    b"",
    b" ",
    "é".as_bytes(),
    b"\xff",
];

/// A valid CSV: `rows` rows of `cols` numeric features `x0..` and an integer `label`.
fn csv_text(rows: usize, cols: usize, seed: u64) -> String {
    let mut out: Vec<String> = (0..cols).map(|c| format!("x{c}")).collect();
    out.push("label".into());
    let mut text = out.join(",") + "\n";
    for r in 0..rows {
        let mut row: Vec<String> = (0..cols)
            .map(|c| format!("{}", (seed as usize + r * 7 + c * 3) % 11))
            .collect();
        row.push(((seed as usize + r) % 3).to_string());
        text += &(row.join(",") + "\n");
    }
    text
}

/// Options: the right target or another column, drops, and image shapes, some absurd.
fn csv_options() -> impl Strategy<Value = CsvOptions> {
    let target = proptest::sample::select(vec!["label", "label", "x0", "nope", ""]);
    let drop = proptest::collection::vec(
        proptest::sample::select(vec!["x0", "x1", "label", "zz"]),
        0..2,
    );
    let side = prop_oneof![
        1usize..5,
        Just(0usize),
        Just(1usize << 40),
        Just(usize::MAX)
    ];
    let image = proptest::option::weighted(0.3, (side.clone(), side.clone(), side));
    let task = proptest::option::of(prop_oneof![
        Just(Task::Classification),
        Just(Task::Regression)
    ]);
    (target, drop, image, task).prop_map(|(t, d, image, task)| CsvOptions {
        target: t.to_string(),
        task,
        drop: d.into_iter().map(str::to_string).collect(),
        image: image.map(|(h, w, c)| [h, w, c]),
        labels: None,
        ..CsvOptions::default()
    })
}

fn check_csv(text: &str, opts: &CsvOptions) -> Result<(), TestCaseError> {
    match no_panic(&(text, opts), || parse_csv(text, opts, "mem.csv"))? {
        Ok(d) => {
            prop_assert!(!d.is_empty());
            prop_assert_eq!(d.features.len(), d.len() * d.row_len());
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.starts_with("mem.csv: ") && msg.len() > 10, "{}", msg);
        }
    }
    Ok(())
}

/// An IDX images file and its labels: `n` images of `h x w` (x `c`) bytes.
fn idx_pair(n: u32, h: u32, w: u32, c: Option<u32>) -> (Vec<u8>, Vec<u8>) {
    let mut dims = vec![n, h, w];
    dims.extend(c);
    let count: u32 = dims.iter().product();
    let data: Vec<u8> = (0..count).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    (idx::write_idx(&dims, &data), idx::write_idx(&[n], &labels))
}

const IDX_TOKENS: &[&[u8]] = &[
    b"\x00\x00\x08\x03",
    b"\xff\xff\xff\xff",
    b"\x00\x01\x00\x00",
    b"\x08",
    b"\xff",
    b"\x00",
];

fn check_idx(images: &[u8], labels: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp) = (dir.path().join("im-idx3"), dir.path().join("lb-idx1"));
    std::fs::write(&ip, images).unwrap();
    std::fs::write(&lp, labels).unwrap();
    match no_panic(&(images, labels), || load_idx(&ip, Some(&lp)))? {
        Ok(d) => {
            prop_assert_eq!(d.features.len(), d.len() * d.row_len());
            prop_assert!(d.row_len() > 0);
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(
                msg.contains("im-idx3") || msg.contains("lb-idx1"),
                "{}",
                msg
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn valid_csv_loads_every_row(rows in 2usize..20, cols in 1usize..6, seed in 0u64..100) {
        let d = parse_csv(&csv_text(rows, cols, seed), &CsvOptions { target: "label".into(), ..CsvOptions::default() }, "mem.csv").unwrap();
        prop_assert_eq!(d.len(), rows);
        prop_assert_eq!(&d.shape, &vec![cols]);
        prop_assert_eq!(d.row(1)[0], ((seed as usize + 7) % 11) as f32);
    }

    #[test]
    fn mutated_csv_never_panics(
        rows in 1usize..6, cols in 1usize..5, seed in 0u64..10,
        e in edits(4), opts in csv_options(),
    ) {
        let bytes = apply(csv_text(rows, cols, seed).into_bytes(), &e, CSV_TOKENS);
        check_csv(&String::from_utf8_lossy(&bytes), &opts)?;
    }

    #[test]
    fn arbitrary_csv_text_never_panics(
        chars in proptest::collection::vec(proptest::sample::select(",\n\"x0labe1.5-NaN ".chars().collect::<Vec<_>>()), 0..120),
        opts in csv_options(),
    ) {
        check_csv(&chars.into_iter().collect::<String>(), &opts)?;
    }

    #[test]
    fn mutated_idx_never_panics(
        n in 0u32..4, h in 0u32..4, w in 0u32..4, c in proptest::option::of(0u32..4),
        e in edits(3), labels_too: bool,
    ) {
        let (images, labels) = idx_pair(n, h, w, c);
        let images = apply(images, &e, IDX_TOKENS);
        let labels = if labels_too { apply(labels, &e, IDX_TOKENS) } else { labels };
        check_idx(&images, &labels)?;
    }

    #[test]
    fn idx_headers_promising_more_than_the_file_are_errors(
        dims in proptest::collection::vec(prop_oneof![Just(u32::MAX), Just(1u32 << 16), 0u32..3], 1..8),
    ) {
        // A header only: whatever it claims, nothing that size is allocated.
        let (_, labels) = idx_pair(1, 1, 1, None);
        check_idx(&idx::write_idx(&dims, &[1, 2, 3]), &labels)?;
    }
}

/// The inputs the properties found panicking (overflowed products) or accepting an empty image.
#[test]
fn inputs_that_used_to_panic_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp) = (dir.path().join("im-idx3"), dir.path().join("lb-idx1"));
    std::fs::write(&lp, idx::write_idx(&[1], &[0])).unwrap();
    // 2^32 - 1 images of 2^32 - 1 x 2^32 - 1: the product overflowed; the file holds 3 bytes.
    std::fs::write(&ip, idx::write_idx(&[u32::MAX; 3], &[1, 2, 3])).unwrap();
    let e = load_idx(&ip, Some(&lp)).unwrap_err().to_string();
    assert!(e.contains("truncated") && e.contains("im-idx3"), "{e}");
    // A header claiming 2^32 items of one byte, in a small file: an error, no allocation.
    std::fs::write(&ip, idx::write_idx(&[1 << 16, 1 << 8, 1 << 8], &[0; 64])).unwrap();
    assert!(load_idx(&ip, Some(&lp))
        .unwrap_err()
        .to_string()
        .contains("truncated"));
    // Images with a side of 0 loaded as rows of no pixels (and panicked with 2+ channels).
    std::fs::write(&ip, idx::write_idx(&[1, 0, 1, 2], &[])).unwrap();
    let e = load_idx(&ip, Some(&lp)).unwrap_err().to_string();
    assert!(e.contains("0x1x2") && e.contains("at least 1"), "{e}");
    // --image sides whose product overflowed.
    let opts = CsvOptions {
        target: "label".into(),
        image: Some([usize::MAX, 1, 2]),
        ..CsvOptions::default()
    };
    let e = parse_csv("a,b,label\n1,2,0\n", &opts, "m.csv")
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs more pixel columns"), "{e}");
}
