//! Property tests: every parser of user input (arch strings and JSON, `key=value` parameters
//! and the spaces and strategies built from them, benchmark tables) gets random and mutated
//! inputs and must answer `Ok` or an error that says what was wrong, never panic.
//!
//! Inputs are valid examples mutated (byte flips, truncation, duplication, deletion, splicing
//! of valid tokens) plus arbitrary text. proptest runs without `std` (see the root Cargo.toml),
//! so it catches no panics itself: [`no_panic`] turns one into a failed case that proptest then
//! shrinks to a small input.

mod arch;
mod params;
mod table;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The config of every property here: `cases` random inputs, no failure files in the repo.
pub(crate) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `f`, turning a panic into a failed test case that names the input.
pub(crate) fn no_panic<T>(
    input: &dyn std::fmt::Debug,
    f: impl FnOnce() -> T,
) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        TestCaseError::fail(format!("panicked on {input:?}: {msg}"))
    })
}

/// One edit of a byte string; positions are taken modulo its length.
#[derive(Clone, Debug)]
pub(crate) enum Edit {
    /// Replace the byte at a position.
    Flip(usize, u8),
    /// Cut everything from a position on.
    Truncate(usize),
    /// Remove `len` bytes from a position.
    Delete(usize, usize),
    /// Copy `len` bytes from a position to right after them.
    Duplicate(usize, usize),
    /// Insert one of the valid tokens at a position.
    Splice(usize, usize),
}

/// Applies `edits` to `bytes`, splicing from `tokens`.
pub(crate) fn apply(mut bytes: Vec<u8>, edits: &[Edit], tokens: &[&str]) -> Vec<u8> {
    for e in edits {
        let at = |p: usize, n: usize| if n == 0 { 0 } else { p % (n + 1) };
        let n = bytes.len();
        match *e {
            Edit::Flip(p, b) if n > 0 => bytes[p % n] = b,
            Edit::Flip(..) => {}
            Edit::Truncate(p) => bytes.truncate(at(p, n)),
            Edit::Delete(p, len) => {
                let s = at(p, n);
                bytes.drain(s..(s + len).min(n));
            }
            Edit::Duplicate(p, len) => {
                let s = at(p, n);
                let piece = bytes[s..(s + len).min(n)].to_vec();
                let e = s + piece.len();
                bytes.splice(e..e, piece);
            }
            Edit::Splice(p, t) if !tokens.is_empty() => {
                let s = at(p, n);
                let token = tokens[t % tokens.len()].as_bytes().to_vec();
                bytes.splice(s..s, token);
            }
            Edit::Splice(..) => {}
        }
    }
    bytes
}

/// Up to `max` random edits.
pub(crate) fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Flip(p, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 0..16usize).prop_map(|(p, l)| Edit::Delete(p, l)),
        (any::<usize>(), 0..32usize).prop_map(|(p, l)| Edit::Duplicate(p, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(p, t)| Edit::Splice(p, t)),
    ];
    proptest::collection::vec(edit, 1..=max)
}

/// One of `seeds` mutated by a few edits, as text (invalid UTF-8 becomes U+FFFD).
pub(crate) fn mutated(
    seeds: Vec<String>,
    tokens: &'static [&'static str],
) -> impl Strategy<Value = String> {
    (proptest::sample::select(seeds), edits(4)).prop_map(move |(s, e)| {
        String::from_utf8_lossy(&apply(s.into_bytes(), &e, tokens)).into_owned()
    })
}

/// Arbitrary text: any characters, or characters from `alphabet` (which reach deeper into a
/// parser than random Unicode does).
pub(crate) fn text(alphabet: &'static str, max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    prop_oneof![
        proptest::collection::vec(any::<char>(), 0..max).prop_map(|v| v.into_iter().collect()),
        proptest::collection::vec(proptest::sample::select(chars), 0..max)
            .prop_map(|v| v.into_iter().collect()),
    ]
}

/// Checks that an error message is non-empty and names at least one of `what`.
pub(crate) fn names_one_of(msg: &str, what: &[&str]) -> Result<(), TestCaseError> {
    prop_assert!(!msg.trim().is_empty(), "empty error message");
    prop_assert!(
        what.iter().any(|w| msg.contains(w)),
        "error `{msg}` names none of {what:?}"
    );
    Ok(())
}
