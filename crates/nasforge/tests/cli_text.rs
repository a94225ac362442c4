//! End-to-end tests of text classification (`--text-column`): a search on passages with the
//! transformer space, the vocabulary and sequence length saved with the model, `predict` on new
//! passages, the ONNX export, and the errors of bad text input.

mod common;
use common::{bad, json, nasforge, onnxruntime_agrees, predict, stderr};

use burn::prelude::*;
use nasforge_nn::bundle;
use nasforge_nn::data::{read_text_csv, Labels};
use nasforge_nn::device::DeviceKind;
use std::path::Path;
use std::process::Output;

/// Writes `bytes` to `dir/name`; returns the path.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

/// Passages of a few words; a "sea" passage has more sea words, a "land" passage more land
/// words (a bag of characters tells them apart), with an `id` column nothing reads.
fn passages(rows: usize, seed: u64) -> String {
    let sea = ["wave", "salt", "ship", "tide"];
    let land = ["hill", "corn", "oak", "field"];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut out = String::from("id,text,kind\n");
    for r in 0..rows {
        let is_sea = r % 2 == 0;
        let words: Vec<&str> = (0..4 + next(6))
            .map(|_| {
                let own = next(5) > 0;
                match (is_sea, own) {
                    (true, true) | (false, false) => sea[next(4)],
                    _ => land[next(4)],
                }
            })
            .collect();
        let kind = if is_sea { "sea" } else { "land" };
        out += &format!("{r},\"{}\",{kind}\n", words.join(" "));
    }
    out
}

/// A small text search's flags on `data`.
fn search_args<'a>(run: &'a str, data: &'a str) -> Vec<&'a str> {
    vec![
        "search",
        "--run-dir",
        run,
        "--data",
        data,
        "--text-column",
        "text",
        "--target",
        "kind",
        "--space-param",
        "widths=16",
        "--space-param",
        "max_depth=1",
        "--space-param",
        "heads=1,2",
        "--space-param",
        "mlp_ratios=1",
        "--trials",
        "2",
        "--epochs",
        "2",
        "--final-seeds",
        "1",
        "--final-epochs",
        "12",
        "--batch-size",
        "16",
        "--optimizer",
        "adamw",
        "--lr",
        "0.01",
        "--json",
    ]
}

#[test]
fn a_text_search_trains_saves_its_vocabulary_and_predicts_new_passages() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write(tmp.path(), "words.csv", passages(240, 1).as_bytes());
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let out = json(&nasforge(&search_args(run_s, &data)));
    assert_eq!(out["space"], "transformer", "{out}");
    let test = out["test_accuracy_mean"].as_f64().unwrap();
    assert!(
        test > 80.0,
        "test accuracy {test} on a task a bag of letters solves"
    );

    // The resolved text settings are stored, so a resume reads the text alike.
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for line in ["text_column = \"text\"", "tokens = \"char\"", "seq_len = "] {
        assert!(config.contains(line), "`{line}` not in {config}");
    }
    let best = run.join("best");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("model.json")).unwrap()).unwrap();
    assert_eq!(info["text"]["column"], "text");
    assert_eq!(info["text"]["vocabulary"]["tokens"], "char");
    assert!(
        info["normalizer"].is_null(),
        "token ids are never normalised"
    );
    let seq_len = info["text"]["seq_len"].as_u64().unwrap() as usize;
    // The longest passage is 9 words of up to 5 letters and 8 spaces.
    assert!((20..=53).contains(&seq_len), "seq_len {seq_len}");

    // New passages, scored: the `id` column is not read, and the columns may come in any order.
    let fresh = passages(60, 2);
    let reordered: String = fresh
        .lines()
        .map(|l| {
            let (id, rest) = l.split_once(',').unwrap();
            let (text, kind) = rest.rsplit_once(',').unwrap();
            format!("{kind},{id},{text}\n")
        })
        .collect();
    let fresh_path = write(tmp.path(), "fresh.csv", reordered.as_bytes());
    let p = json(&predict(&best, &fresh_path, &["--json"]));
    assert_eq!(p["rows"], 60);
    assert!(p["accuracy"].as_f64().unwrap() > 80.0, "{p}");
    // Without the label column: predictions only.
    let unlabelled: String = fresh
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect();
    let unlabelled = write(tmp.path(), "unlabelled.csv", unlabelled.as_bytes());
    let q = json(&predict(&best, &unlabelled, &["--json"]));
    assert_eq!(q["predictions"], p["predictions"]);
    assert!(q.get("accuracy").is_none(), "{q}");
    bad(
        &predict(&best, &unlabelled, &["--drop", "id"]),
        &["reads only the text column `text`"],
    );

    // The ONNX export reads the token ids (as numbers) and gives the network's logits.
    json(&nasforge(&["export", run_s, "--format", "onnx", "--json"]));
    let (info, net) = bundle::load(&best, DeviceKind::Cpu).unwrap();
    let text = info.text.as_ref().unwrap();
    let rows = text
        .encode(&read_text_csv(Path::new(&unlabelled), "text", Labels::IfPresent("kind")).unwrap())
        .unwrap();
    let n = 8;
    let ids = rows.features[..n * seq_len].to_vec();
    let logits: Vec<f32> = net
        .forward_flat(Tensor::<2>::from_data(
            TensorData::new(ids.clone(), [n, seq_len]),
            &DeviceKind::Cpu.device(),
        ))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    onnxruntime_agrees(
        tmp.path(),
        "text classifier",
        &best.join("model.onnx"),
        &ids,
        &[n, seq_len],
        &logits,
    );
}

#[test]
fn bad_text_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write(tmp.path(), "words.csv", passages(40, 3).as_bytes());
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let with = |changes: &[(&str, &str)], extra: &[&str]| -> Output {
        let mut args = search_args(run_s, &data);
        for (flag, value) in changes {
            let at = args.iter().position(|a| a == flag).unwrap();
            args[at + 1] = value;
        }
        args.extend_from_slice(extra);
        nasforge(&args)
    };
    bad(
        &with(&[("--text-column", "body")], &[]),
        &["no column `body` for --text-column", "id, text, kind"],
    );
    bad(
        &with(&[("--target", "genre")], &[]),
        &["no column `genre` for --target"],
    );
    bad(
        &with(&[], &["--max-vocab", "5"]),
        &["distinct characters", "--max-vocab"],
    );
    bad(
        &with(&[], &["--tokens", "byte", "--max-vocab", "100"]),
        &["258 ids", "--max-vocab"],
    );
    bad(
        &with(&[], &["--tokens", "word"]),
        &["`word`", "byte", "char"],
    );
    let zero = with(&[], &["--seq-len", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
    assert!(stderr(&zero).contains("--seq-len"), "{}", stderr(&zero));
    bad(
        &with(&[], &["--space", "nb201"]),
        &["does not read text", "--space transformer"],
    );
    bad(
        &with(&[], &["--space-param", "vocab=10"]),
        &["vocab=10 does not match"],
    );
    bad(
        &with(&[], &["--image", "2x2x1"]),
        &["--image does not apply to text"],
    );
    let empty = write(
        tmp.path(),
        "empty.csv",
        b"text,kind\nwave salt,sea\n   ,land\n",
    );
    bad(
        &nasforge(&search_args(run_s, &empty)),
        &["row 3 has an empty text"],
    );
    let latin1 = write(tmp.path(), "latin1.csv", b"text,kind\ncaf\xe9,sea\n");
    bad(&nasforge(&search_args(run_s, &latin1)), &["not UTF-8"]);
    bad(
        &nasforge(&["search", "--text-column", "text", "--trials", "1"]),
        &["give the CSV with --data"],
    );
    bad(
        &nasforge(&["search", "--seq-len", "10", "--trials", "1"]),
        &["--seq-len sets how text is read", "--text-column"],
    );
    bad(
        &nasforge(&["search", "--space", "transformer", "--trials", "1"]),
        &["reads token ids from text", "--text-column"],
    );
    // Nothing was left behind by the refused runs.
    assert!(!run.join("best").exists());
}

/// A corpus with structure to learn: a few sentences repeated in a seeded order.
fn corpus(sentences: usize) -> String {
    let pool = [
        "the cat sat on the mat. ",
        "a dog ran to the hill. ",
        "the sun set on the sea. ",
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..sentences)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            pool[(state % 3) as usize]
        })
        .collect()
}

#[test]
fn a_language_model_search_learns_a_corpus_in_bits_per_character() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write(tmp.path(), "corpus.txt", corpus(400).as_bytes());
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let out = json(&nasforge(&[
        "search",
        "--run-dir",
        run_s,
        "--data",
        &data,
        "--task",
        "lm",
        "--seq-len",
        "24",
        "--space-param",
        "widths=32",
        "--space-param",
        "max_depth=1",
        "--space-param",
        "heads=2",
        "--space-param",
        "mlp_ratios=2",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--final-seeds",
        "1",
        "--final-epochs",
        "8",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
        "--json",
    ]));
    // 16 characters: a uniform guess costs 4 bits; the sentences are far more predictable.
    let bpc = out["test_bpc_mean"].as_f64().unwrap();
    assert!(bpc < 1.5, "test bits per character {bpc}");
    assert!(out.get("test_accuracy_mean").is_none(), "{out}");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for line in ["task = \"lm\"", "seq_len = 24", "\"head=lm\"", "valid_bpc"] {
        assert!(config.contains(line), "`{line}` not in {config}");
    }
    let best = run.join("best");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("model.json")).unwrap()).unwrap();
    assert_eq!(info["task"], "lm");
    assert!(info["text"]["column"].is_null(), "{info}");
    bad(
        &predict(&best, &data, &[]),
        &["language model", "does not generate text"],
    );
    // The ONNX graph gives a softmax over the vocabulary at every position.
    json(&nasforge(&["export", run_s, "--format", "onnx", "--json"]));
    assert!(best.join("model.onnx").exists());
}

#[test]
fn bad_language_model_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write(tmp.path(), "corpus.txt", corpus(400).as_bytes());
    let lm = |extra: &[&str]| {
        let mut args = vec!["search", "--task", "lm", "--trials", "1"];
        args.extend_from_slice(extra);
        nasforge(&args)
    };
    bad(&lm(&[]), &["--task lm learns a plain-text file", "--data"]);
    bad(
        &lm(&["--data", &data, "--text-column", "text"]),
        &["leave out --text-column and --target"],
    );
    let empty = write(tmp.path(), "empty.txt", b"  \n");
    bad(&lm(&["--data", &empty]), &["the text is empty"]);
    let latin1 = write(tmp.path(), "latin1.txt", b"caf\xe9 au lait\n");
    bad(&lm(&["--data", &latin1]), &["not UTF-8"]);
    // 400 sentences are ~9,300 characters: a 5% validation block holds ~465.
    bad(
        &lm(&["--data", &data, "--seq-len", "600"]),
        &["validation block holds", "lower --seq-len"],
    );
    bad(
        &lm(&["--data", &data, "--space", "mlp"]),
        &["does not read text"],
    );
    bad(
        &lm(&["--data", &data, "--space-param", "head=classify"]),
        &["head=classify does not match", "head=lm"],
    );
    bad(
        &lm(&["--data", &data, "--max-vocab", "8"]),
        &["distinct characters", "--max-vocab"],
    );
    bad(
        &lm(&["--data", &data, "--valid-fraction", "0"]),
        &["--valid-fraction must be in (0, 1)"],
    );
}

#[test]
fn a_latency_table_profiles_the_transformer_space_on_text() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write(tmp.path(), "corpus.txt", corpus(200).as_bytes());
    let table = tmp.path().join("latency.json");
    let out = json(&nasforge(&[
        "latency",
        "profile",
        "--space",
        "transformer",
        "--data",
        &data,
        "--task",
        "lm",
        "--seq-len",
        "16",
        "--space-param",
        "widths=16,32",
        "--space-param",
        "max_depth=2",
        "--archs",
        "3",
        "--repeats",
        "2",
        "--out",
        table.to_str().unwrap(),
        "--json",
    ]));
    assert!(table.exists(), "{out}");
    let text = std::fs::read_to_string(&table).unwrap();
    for setting in ["\"input=16\"", "\"head=lm\"", "attention"] {
        assert!(text.contains(setting), "`{setting}` not in the table");
    }
}
