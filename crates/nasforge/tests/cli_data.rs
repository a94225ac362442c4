//! End-to-end tests of what the binary does with imperfect data: `predict` matching columns by
//! name, missing and non-finite values with and without `--impute`, duplicate headers, and a
//! benchmark table with a `NaN` objective.

mod common;
use common::{bad, iris, json, nasforge, nb201_csv_text, onnxruntime_agrees, predict, stderr};

use std::path::Path;

/// Writes `text` to `dir/name`; returns the path.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

/// A small search on `data` (one trial, one final seed) with the model in `run/best`.
fn train(run: &Path, data: &str, target: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "search",
        "--run-dir",
        run.to_str().unwrap(),
        "--data",
        data,
        "--target",
        target,
        "--trials",
        "1",
        "--epochs",
        "1",
        "--final-seeds",
        "1",
        "--final-epochs",
        "15",
        "--batch-size",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--json",
    ];
    args.extend_from_slice(extra);
    json(&nasforge(&args))
}

/// The iris CSV with its columns in the order `order` (names of the header).
fn reorder(iris: &str, order: &[&str]) -> String {
    let mut lines = iris.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let idx: Vec<usize> = order
        .iter()
        .map(|n| header.iter().position(|h| h == n).unwrap())
        .collect();
    let mut out = order.join(",") + "\n";
    for line in lines.filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        out += &(idx.iter().map(|&i| cells[i]).collect::<Vec<_>>().join(",") + "\n");
    }
    out
}

#[test]
fn predict_reads_columns_by_name_and_names_extra_and_missing_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let iris_path = iris();
    let iris = std::fs::read_to_string(&iris_path).unwrap();
    let run = tmp.path().join("run");
    train(&run, &iris_path, "species", &[]);
    let best = run.join("best");
    let original = json(&predict(&best, &iris_path, &["--json"]));
    let acc = original["accuracy"].as_f64().unwrap();
    assert!(acc > 80.0, "the model learned iris: {acc}");

    // Two feature columns swapped (and the target first): the same predictions.
    let swapped = write(
        tmp.path(),
        "swapped.csv",
        &reorder(
            &iris,
            &[
                "species",
                "sepal_length",
                "petal_length",
                "sepal_width",
                "petal_width",
            ],
        ),
    );
    let s = json(&predict(&best, &swapped, &["--json"]));
    assert_eq!(s["predictions"], original["predictions"]);
    assert_eq!(s["accuracy"], original["accuracy"]);
    // Without the target column: predictions, no score.
    let bare = write(
        tmp.path(),
        "bare.csv",
        &reorder(
            &iris,
            &["petal_width", "petal_length", "sepal_width", "sepal_length"],
        ),
    );
    let b = json(&predict(&best, &bare, &["--json"]));
    assert_eq!(b["predictions"], original["predictions"]);
    assert!(b.get("accuracy").is_none(), "{b}");
    assert_eq!(b["rows"], 150);

    // An extra column is an error naming it, until --drop names it.
    let with_id: String = iris
        .lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| match i {
            0 => format!("id,{l}\n"),
            _ => format!("{i},{l}\n"),
        })
        .collect();
    let with_id = write(tmp.path(), "id.csv", &with_id);
    bad(
        &predict(&best, &with_id, &["--json"]),
        &["`id`", "--drop id"],
    );
    let d = json(&predict(&best, &with_id, &["--json", "--drop", "id"]));
    assert_eq!(d["predictions"], original["predictions"]);
    // A missing feature column is an error naming it.
    let missing = write(
        tmp.path(),
        "missing.csv",
        &reorder(
            &iris,
            &["sepal_length", "sepal_width", "petal_length", "species"],
        ),
    );
    bad(
        &predict(&best, &missing, &[]),
        &["missing.csv", "`petal_width`", "does not have"],
    );
    // A NaN cell: the model was trained on complete data, so it is an error.
    let nan = write(
        tmp.path(),
        "nan.csv",
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n4.9,NaN,1.4,0.2\n",
    );
    bad(
        &predict(&best, &nan, &[]),
        &["nan.csv", "row 3", "column `sepal_width`", "`NaN`"],
    );
}

#[test]
fn a_missing_or_non_finite_cell_stops_the_search_naming_row_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let iris = std::fs::read_to_string(iris()).unwrap();
    // Line 6 of the file (the 5th data row): 5.0,3.6,1.4,0.2,setosa.
    let with = |cell: &str| iris.replacen("5.0,3.6,1.4,0.2", &format!("5.0,3.6,1.4,{cell}"), 1);
    assert_ne!(with("NaN"), iris);
    let search = |name: &str, text: &str, extra: &[&str]| {
        let data = write(tmp.path(), name, text);
        let run = tmp.path().join(format!("run-{name}"));
        let mut args = vec![
            "search",
            "--run-dir",
            run.to_str().unwrap(),
            "--data",
            &data,
            "--target",
            "species",
            "--trials",
            "1",
            "--epochs",
            "1",
        ];
        args.extend_from_slice(extra);
        nasforge(&args)
    };
    for (name, cell) in [("nan.csv", "NaN"), ("empty.csv", "")] {
        bad(
            &search(name, &with(cell), &[]),
            &[
                name,
                "row 6",
                "column `petal_width`",
                "--impute median",
                "--drop petal_width",
            ],
        );
    }
    bad(
        &search("inf.csv", &with("inf"), &["--impute", "median"]),
        &["inf.csv", "row 6", "`inf`", "never imputed"],
    );
    bad(
        &search("ok.csv", &iris, &["--impute", "zero"]),
        &["--impute `zero`"],
    );
    let dup = iris.replacen("petal_width", "sepal_width", 1);
    bad(
        &search("dup.csv", &dup, &[]),
        &["`sepal_width` twice", "columns 2 and 4"],
    );
    bad(
        &search("ok2.csv", &iris, &["--drop", "species"]),
        &["--drop `species` is the --target column"],
    );
}

#[test]
fn impute_fills_missing_cells_in_search_predict_and_onnx_alike() {
    let tmp = tempfile::tempdir().unwrap();
    // y = 2a - b + 0.5, with every 9th `a` missing (NaN or empty).
    let mut text = String::from("a,b,y\n");
    for i in 0..150 {
        let (a, b) = (i as f64 / 10.0, (i % 7) as f64);
        let y = 2.0 * a - b + 0.5;
        let cell = match i % 18 {
            0 => "NaN".to_string(),
            9 => String::new(),
            _ => a.to_string(),
        };
        text += &format!("{cell},{b},{y}\n");
    }
    let data = write(tmp.path(), "r.csv", &text);
    let run = tmp.path().join("run");
    train(&run, &data, "y", &["--impute", "median"]);
    let best = run.join("best");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("model.json")).unwrap()).unwrap();
    assert_eq!(info["imputer"]["method"], "median");
    let fill = info["imputer"]["fill"].as_array().unwrap();
    assert_eq!(fill.len(), 2);
    let fill_a = fill[0].as_f64().unwrap();
    assert!(
        (3.0..12.0).contains(&fill_a),
        "a median of a in 0..15: {fill_a}"
    );
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("impute = \"median\""), "{config}");

    // Regression: predictions are numbers, scored by MSE and MAE.
    let p = json(&predict(&best, &data, &["--json"]));
    let predictions = p["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 150);
    assert!(predictions
        .iter()
        .all(|v| v.as_f64().is_some_and(f64::is_finite)));
    assert!(p["mse"].as_f64().unwrap() >= 0.0 && p["mae"].as_f64().unwrap() >= 0.0);
    assert!(p.get("accuracy").is_none(), "{p}");

    // A missing cell at predict time is filled with the stored value.
    let rows = [
        ("NaN", 3.0),
        ("", 3.0),
        (&*format!("{fill_a}"), 3.0),
        ("1.5", 2.0),
    ];
    let mut new = String::from("b,a\n");
    for (a, b) in rows {
        new += &format!("{b},{a}\n");
    }
    let new = write(tmp.path(), "new.csv", &new);
    let q = json(&predict(&best, &new, &["--json"]));
    let q: Vec<f64> = q["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(q[0], q[2], "NaN is filled with the training median");
    assert_eq!(q[1], q[2], "so is an empty cell");
    // inf is an error at predict time too.
    let inf = write(tmp.path(), "inf.csv", "a,b\ninf,1\n");
    bad(
        &predict(&best, &inf, &[]),
        &["row 2", "column `a`", "never imputed"],
    );

    // The ONNX graph fills the same way: onnxruntime on the raw rows (NaN included) gives
    // predict's numbers.
    json(&nasforge(&[
        "export",
        run.to_str().unwrap(),
        "--format",
        "onnx",
        "--json",
    ]));
    let raw: Vec<f32> = vec![f32::NAN, 3.0, f32::NAN, 3.0, fill_a as f32, 3.0, 1.5, 2.0];
    let expected: Vec<f32> = q.iter().map(|&v| v as f32).collect();
    onnxruntime_agrees(
        tmp.path(),
        "regression with imputation",
        &best.join("model.onnx"),
        &raw,
        &[4, 2],
        &expected,
    );
}

#[test]
fn a_nan_objective_in_a_benchmark_table_is_an_error_naming_its_row() {
    let tmp = tempfile::tempdir().unwrap();
    // The whole table (a benchmark lists every arch of the space), with one objective NaN.
    let full = nb201_csv_text();
    let mut lines: Vec<String> = full.lines().map(str::to_string).collect();
    // Line 4 of the file: valid_acc_12ep becomes NaN.
    let mut cells: Vec<String> = lines[3].split(',').map(str::to_string).collect();
    let col = lines[0]
        .split(',')
        .position(|h| h == "valid_acc_12ep")
        .unwrap();
    cells[col] = "NaN".into();
    lines[3] = cells.join(",");
    let table = write(tmp.path(), "t.csv", &(lines.join("\n") + "\n"));
    let bench = nasforge(&[
        "bench",
        "nb201",
        "--table",
        &table,
        "--objective",
        "valid_acc_12ep",
        "--report",
        "test_acc_200ep",
        "--strategy",
        "random",
        "--queries",
        "3",
        "--seeds",
        "1",
    ]);
    bad(
        &bench,
        &["t.csv", "row 4", "column `valid_acc_12ep`", "`NaN`"],
    );
    let run = tmp.path().join("run");
    let search = nasforge(&[
        "search",
        "--evaluator",
        "table",
        "--table",
        &table,
        "--objective",
        "valid_acc_12ep",
        "--trials",
        "3",
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    bad(&search, &["row 4", "`valid_acc_12ep`"]);
    // Another column may hold NaN: a search on a complete objective runs.
    let ok = nasforge(&[
        "bench",
        "nb201",
        "--table",
        &table,
        "--objective",
        "test_acc_12ep",
        "--report",
        "test_acc_200ep",
        "--strategy",
        "random",
        "--queries",
        "3",
        "--seeds",
        "1",
        "--json",
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
}
