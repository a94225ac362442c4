use super::*;
use std::path::PathBuf;

fn csv_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn opts(target: &str) -> CsvOptions {
    CsvOptions {
        target: target.into(),
        ..CsvOptions::default()
    }
}

fn err(r: Result<Dataset>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn csv_with_text_labels_maps_classes_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "a.csv", "x,y,kind\n1,2,b\n3,4,a\n5,6,b\n");
    let d = load_csv(&p, &opts("kind")).unwrap();
    assert_eq!(d.shape, vec![2]);
    assert_eq!(d.features, vec![1., 2., 3., 4., 5., 6.]);
    assert_eq!(
        d.targets,
        Targets::Classes {
            ids: vec![1, 0, 1],
            names: vec!["a".into(), "b".into()]
        }
    );
    assert_eq!(d.feature_names, vec!["x", "y"]);
}

#[test]
fn csv_bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ragged = csv_file(&dir, "r.csv", "a,b,t\n1,2,0\n1,2\n");
    assert!(err(load_csv(&ragged, &opts("t"))).contains("row 3 has 2 fields"));
    let text = csv_file(&dir, "n.csv", "a,b,t\n1,x,0\n1,2,1\n");
    let e = err(load_csv(&text, &opts("t")));
    assert!(
        e.contains("row 2") && e.contains("`b`") && e.contains("not a number"),
        "{e}"
    );
    let missing = csv_file(&dir, "m.csv", "a,b,t\n1,,0\n1,2,1\n");
    assert!(err(load_csv(&missing, &opts("t"))).contains("missing a value"));
    assert!(err(load_csv(&text, &opts("label"))).contains("no column `label`"));
    let empty = csv_file(&dir, "e.csv", "");
    assert!(err(load_csv(&empty, &opts("t"))).contains("empty"));
    let header_only = csv_file(&dir, "h.csv", "a,t\n");
    assert!(err(load_csv(&header_only, &opts("t"))).contains("no data rows"));
    let good = csv_file(&dir, "g.csv", "a,b,t\n1,2,0\n3,4,1\n");
    let img = CsvOptions {
        image: Some([2, 2, 1]),
        ..opts("t")
    };
    assert!(err(load_csv(&good, &img)).contains("needs 4 pixel columns"));
    let single = csv_file(&dir, "s.csv", "a,t\n1,x\n2,x\n");
    let d = load_csv(&single, &opts("t")).unwrap();
    assert!(d
        .validate()
        .unwrap_err()
        .to_string()
        .contains("single class"));
}

#[test]
fn drop_skips_a_text_column_and_regression_reads_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "d.csv", "name,a,price\nfoo,1,2.5\nbar,2,3.5\n");
    let o = CsvOptions {
        drop: vec!["name".into()],
        task: Some(Task::Regression),
        ..opts("price")
    };
    let d = load_csv(&p, &o).unwrap();
    assert_eq!(d.targets, Targets::Values(vec![2.5, 3.5]));
    assert_eq!(d.shape, vec![1]);
    let auto = CsvOptions {
        drop: vec!["name".into()],
        ..opts("price")
    };
    assert_eq!(
        load_csv(&p, &auto).unwrap().task(),
        Task::Regression,
        "fractions mean regression"
    );
    let bad = CsvOptions {
        drop: vec!["nope".into()],
        ..opts("price")
    };
    assert!(err(load_csv(&p, &bad)).contains("nope"));
}

#[test]
fn image_csv_rows_become_channel_major() {
    let dir = tempfile::tempdir().unwrap();
    // One 1x2 RGB image: pixel0 = (1,2,3), pixel1 = (4,5,6).
    let p = csv_file(
        &dir,
        "i.csv",
        "p0,p1,p2,p3,p4,p5,t\n1,2,3,4,5,6,0\n1,2,3,4,5,6,1\n",
    );
    let d = load_csv(
        &p,
        &CsvOptions {
            image: Some([1, 2, 3]),
            ..opts("t")
        },
    )
    .unwrap();
    assert_eq!(d.shape, vec![3, 1, 2]);
    assert_eq!(d.row(0), &[1., 4., 2., 5., 3., 6.]);
}

#[test]
fn idx_reads_images_and_labels_and_rejects_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("train-images-idx3-ubyte");
    let labels = dir.path().join("train-labels-idx1-ubyte");
    std::fs::write(
        &images,
        idx::write_idx(&[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7]),
    )
    .unwrap();
    std::fs::write(&labels, idx::write_idx(&[2], &[3, 7])).unwrap();
    let d = load_idx(&images, None).unwrap();
    assert_eq!(d.shape, vec![1, 2, 2]);
    assert_eq!(d.row(1), &[4., 5., 6., 7.]);
    assert_eq!(
        d.targets,
        Targets::Classes {
            ids: vec![0, 1],
            names: vec!["3".into(), "7".into()]
        }
    );
    std::fs::write(&images, idx::write_idx(&[2, 2, 2], &[0, 1, 2])).unwrap();
    assert!(err(load_idx(&images, None)).contains("truncated"));
    std::fs::write(&images, b"hello").unwrap();
    assert!(err(load_idx(&images, None)).contains("IDX"));
    let lonely = dir.path().join("x-images-idx3-ubyte");
    std::fs::write(&lonely, idx::write_idx(&[1, 1, 1], &[0])).unwrap();
    assert!(err(load_idx(&lonely, None)).contains("--labels"));
}

#[test]
fn image_folder_reads_classes_from_subfolders() {
    let dir = tempfile::tempdir().unwrap();
    for (class, value) in [("cat", 10u8), ("dog", 200u8)] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for k in 0..2 {
            let img = image::GrayImage::from_pixel(3, 2, image::Luma([value + k]));
            img.save(dir.path().join(class).join(format!("{k}.png")))
                .unwrap();
        }
    }
    let d = load_image_folder(dir.path(), None).unwrap();
    assert_eq!(d.shape, vec![1, 2, 3]);
    assert_eq!(d.len(), 4);
    assert_eq!(
        d.targets,
        Targets::Classes {
            ids: vec![0, 0, 1, 1],
            names: vec!["cat".into(), "dog".into()]
        }
    );
    assert_eq!(d.row(3), &[201.0; 6]);
    let big = image::GrayImage::from_pixel(5, 5, image::Luma([0]));
    big.save(dir.path().join("dog").join("2.png")).unwrap();
    assert!(err(load_image_folder(dir.path(), None)).contains("one size"));
    let resized = load_image_folder(dir.path(), Some([2, 3, 1])).unwrap();
    assert_eq!(resized.len(), 5);
}

#[test]
fn embedded_digits_are_8x8_with_10_classes() {
    let d = embedded_digits();
    assert_eq!(d.len(), 1797);
    assert_eq!(d.shape, vec![1, 8, 8]);
    assert_eq!(d.outputs(), 10);
    d.validate().unwrap();
}

#[test]
fn stratified_split_keeps_class_proportions_and_is_seeded() {
    let d = embedded_digits();
    let s = Split::new(&d, SplitFractions::default(), 1).unwrap();
    assert_eq!(s.train.len() + s.valid.len() + s.test.len(), d.len());
    let Targets::Classes { ids, .. } = &d.targets else {
        unreachable!()
    };
    for class in 0..10u32 {
        let total = ids.iter().filter(|&&c| c == class).count() as f64;
        let test = s.test.iter().filter(|&&i| ids[i] == class).count() as f64;
        assert!((test / total - 0.15).abs() < 0.01, "class {class}");
    }
    assert_eq!(s, Split::new(&d, SplitFractions::default(), 1).unwrap());
    assert_ne!(s, Split::new(&d, SplitFractions::default(), 2).unwrap());
    let mut all: Vec<usize> = s
        .train
        .iter()
        .chain(&s.valid)
        .chain(&s.test)
        .copied()
        .collect();
    all.sort();
    assert_eq!(all, (0..d.len()).collect::<Vec<_>>());
    assert!(Split::new(
        &d,
        SplitFractions {
            valid: 0.5,
            test: 0.5
        },
        1
    )
    .is_err());
}

#[test]
fn normalizer_uses_training_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "n.csv", "a,t\n1,0\n3,1\n100,0\n");
    let mut d = load_csv(&p, &opts("t")).unwrap();
    let n = Normalizer::fit(&d, &[0, 1]);
    assert_eq!(n.mean, vec![2.0]);
    assert_eq!(n.std, vec![1.0]);
    n.apply(&mut d);
    // 100 is 98 training standard deviations away: clipped to Normalizer::CLIP.
    assert_eq!(d.features, vec![-1.0, 1.0, Normalizer::CLIP]);
}

fn by_name(target: &str, features: &[&str]) -> CsvOptions {
    CsvOptions {
        features: features.iter().map(|f| f.to_string()).collect(),
        ..opts(target)
    }
}

#[test]
fn nan_inf_and_empty_cells_name_the_file_row_column_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "nan.csv",
            "a,b,t\n1,2,0\n3,NaN,1\n",
            "row 3, column `b` holds `NaN`",
        ),
        (
            "empty.csv",
            "a,b,t\n1,2,0\n,4,1\n",
            "row 3, column `a` is missing",
        ),
        (
            "inf.csv",
            "a,b,t\n1,inf,0\n3,4,1\n",
            "row 2, column `b` holds `inf`",
        ),
        (
            "big.csv",
            "a,b,t\n1,2,0\n3,1e39,1\n",
            "row 3, column `b` holds `1e39`",
        ),
    ];
    for (name, text, want) in cases {
        let p = csv_file(&dir, name, text);
        let e = err(load_csv(&p, &opts("t")));
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
        assert!(e.contains("--drop"), "{name}: {e}");
        if !name.starts_with("inf") && !name.starts_with("big") {
            assert!(e.contains("--impute median"), "{name}: {e}");
        }
    }
    // A quoted field spanning two lines: the row is named by the line it starts on.
    let p = csv_file(&dir, "q.csv", "a,b,t\n1,2,\"x\ny\"\n3,NaN,z\n");
    assert!(err(load_csv(&p, &opts("t"))).contains("row 4, column `b`"));
    // Infinities are not imputed, and a regression target is never NaN.
    let imputing = CsvOptions {
        impute: Some(Impute::Median),
        ..opts("t")
    };
    let inf = csv_file(&dir, "inf2.csv", "a,b,t\n1,-inf,0\n3,4,1\n");
    assert!(err(load_csv(&inf, &imputing)).contains("never imputed"));
    let y = csv_file(&dir, "y.csv", "a,y\n1,0.5\n2,nan\n3,1.5\n");
    let e = err(load_csv(
        &y,
        &CsvOptions {
            target: "y".into(),
            ..imputing.clone()
        },
    ));
    assert!(e.contains("row 3") && e.contains("`y` holds `nan`"), "{e}");
    let na = csv_file(&dir, "na.csv", "a,t\n1,0\nNA,1\n");
    assert!(err(load_csv(&na, &imputing)).contains("empty and `NaN` cells"));
}

#[test]
fn impute_fills_missing_cells_from_the_training_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    // Column a: 1, missing, 3, 10 (row 3, not a training row), 4. Column b is complete.
    let p = csv_file(
        &dir,
        "i.csv",
        "a,b,t\n1,5,0\n,6,1\n3,7,0\n10,8,1\nNaN,9,0\n4,0,1\n",
    );
    let mut d = load_csv(
        &p,
        &CsvOptions {
            impute: Some(Impute::Median),
            ..opts("t")
        },
    )
    .unwrap();
    assert!(d.features[2].is_nan() && d.features[8].is_nan());
    let train = [0, 1, 2, 4, 5];
    let median = Imputer::fit(&d, &train, Impute::Median).unwrap();
    assert_eq!(
        median.fill,
        vec![3.0, 6.0],
        "median of 1, 3, 4 and of 5, 6, 7, 9, 0"
    );
    let mean = Imputer::fit(&d, &train, Impute::Mean).unwrap();
    assert!((mean.fill[0] - 8.0 / 3.0).abs() < 1e-6, "{:?}", mean.fill);
    assert_eq!(median.apply(&mut d).unwrap(), 2);
    assert_eq!(d.row(1), &[3.0, 6.0]);
    assert_eq!(d.row(4), &[3.0, 9.0]);
    assert_eq!(d.row(3), &[10.0, 8.0], "present values stay");
    // A column with no value in any training row has nothing to fill with.
    let mut raw = load_csv(
        &p,
        &CsvOptions {
            impute: Some(Impute::Mean),
            ..opts("t")
        },
    )
    .unwrap();
    let e = Imputer::fit(&raw, &[1, 4], Impute::Mean)
        .unwrap_err()
        .to_string();
    assert!(e.contains("column `a`") && e.contains("--drop a"), "{e}");
    let wrong = Imputer {
        method: Impute::Mean,
        fill: vec![0.0; 3],
    };
    assert!(wrong.apply(&mut raw).is_err());
    assert_eq!(Impute::parse("mean").unwrap(), Impute::Mean);
    assert!(Impute::parse("zero")
        .unwrap_err()
        .to_string()
        .contains("median"));
}

#[test]
fn pixel_imputation_names_the_csv_column() {
    let dir = tempfile::tempdir().unwrap();
    // A 1x2 RGB image per row; column `g1` (pixel 1, green) is always missing.
    let p = csv_file(
        &dir,
        "p.csv",
        "r0,g0,b0,r1,g1,b1,t\n1,2,3,4,,6,0\n1,2,3,4,,6,1\n",
    );
    let o = CsvOptions {
        image: Some([1, 2, 3]),
        impute: Some(Impute::Median),
        ..opts("t")
    };
    let d = load_csv(&p, &o).unwrap();
    let e = Imputer::fit(&d, &[0, 1], Impute::Median)
        .unwrap_err()
        .to_string();
    assert!(e.contains("column `g1`"), "{e}");
}

#[test]
fn a_repeated_header_name_and_dropping_the_target_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "dup.csv", "a,b,a,t\n1,2,3,0\n4,5,6,1\n");
    let e = err(load_csv(&p, &opts("t")));
    assert!(
        e.contains("dup.csv") && e.contains("`a` twice") && e.contains("columns 1 and 3"),
        "{e}"
    );
    let p = csv_file(&dir, "t.csv", "a,b,t\n1,2,0\n4,5,1\n");
    let o = CsvOptions {
        drop: vec!["t".into()],
        ..opts("t")
    };
    assert!(err(load_csv(&p, &o)).contains("--drop `t` is the --target column"));
}

#[test]
fn a_models_features_are_read_by_name_in_its_order() {
    let dir = tempfile::tempdir().unwrap();
    let model = by_name("t", &["a", "b"]);
    let original = csv_file(&dir, "o.csv", "a,b,t\n1,2,x\n3,4,y\n");
    let swapped = csv_file(&dir, "s.csv", "t,b,a\nx,2,1\ny,4,3\n");
    let o = load_csv(&original, &model).unwrap();
    let s = load_csv(&swapped, &model).unwrap();
    assert_eq!(o.features, vec![1., 2., 3., 4.]);
    assert_eq!(s.features, o.features, "swapped columns read the same rows");
    assert_eq!(s.targets, o.targets);
    assert!(s.has_targets());
    // Without the target column: features only, targets unknown.
    let bare = csv_file(&dir, "n.csv", "b,a\n2,1\n");
    let n = load_csv(&bare, &model).unwrap();
    assert_eq!(n.features, vec![1., 2.]);
    assert!(!n.has_targets());
    // An extra column is an error naming it until it is dropped; a missing one names it.
    let extra = csv_file(&dir, "e.csv", "id,a,b\n7,1,2\n");
    let e = err(load_csv(&extra, &model));
    assert!(e.contains("`id`") && e.contains("--drop id"), "{e}");
    let dropped = CsvOptions {
        drop: vec!["id".into()],
        ..model.clone()
    };
    assert_eq!(load_csv(&extra, &dropped).unwrap().features, vec![1., 2.]);
    let missing = csv_file(&dir, "m.csv", "a,t\n1,x\n");
    let e = err(load_csv(&missing, &model));
    assert!(
        e.contains("column `b`") && e.contains("does not have"),
        "{e}"
    );
    let drop_feature = CsvOptions {
        drop: vec!["a".into()],
        ..model.clone()
    };
    assert!(err(load_csv(&original, &drop_feature)).contains("a column the model reads"));
    // Dropping the target leaves it unscored; a NaN cell is an error without imputation.
    let no_target = CsvOptions {
        drop: vec!["t".into()],
        ..model.clone()
    };
    assert!(!load_csv(&original, &no_target).unwrap().has_targets());
    let nan = csv_file(&dir, "nan.csv", "b,a\nNaN,1\n");
    let e = err(load_csv(&nan, &model));
    assert!(
        e.contains("row 2, column `b`") && e.contains("without --impute"),
        "{e}"
    );
    let imputing = CsvOptions {
        impute: Some(Impute::Median),
        ..model
    };
    assert!(load_csv(&nan, &imputing).unwrap().features[1].is_nan());
}

#[test]
fn pixel_columns_are_read_by_name_too() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["p0", "p1", "p2", "p3", "p4", "p5"];
    let model = CsvOptions {
        image: Some([1, 2, 3]),
        ..by_name("t", &names)
    };
    let p = csv_file(&dir, "i.csv", "p5,p4,p3,p2,p1,p0\n6,5,4,3,2,1\n");
    let d = load_csv(&p, &model).unwrap();
    assert_eq!(d.shape, vec![3, 1, 2]);
    assert_eq!(d.row(0), &[1., 4., 2., 5., 3., 6.]);
}
