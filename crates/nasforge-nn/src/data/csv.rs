//! CSV data: a header, a target column, numeric features (or pixels with `--image HxWxC`).

use super::{Dataset, Impute, Targets, Task};
use nasforge_core::{Error, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// How to read a CSV (and, for IDX and image folders, the options that apply there).
#[derive(Clone, Debug, Default)]
pub struct CsvOptions {
    /// The target column.
    pub target: String,
    /// Classification, regression, or `None` to decide from the target (numbers with more than
    /// 20 distinct values or any fraction mean regression; anything else classification).
    pub task: Option<Task>,
    /// Columns to ignore.
    pub drop: Vec<String>,
    /// The features are the pixels of an `H x W x C` image, row-major with channels last.
    pub image: Option<[usize; 3]>,
    /// The labels file of an IDX images file (default: found beside it).
    pub labels: Option<PathBuf>,
    /// Empty and `NaN` feature cells are read as missing (`NaN`) for an
    /// [`Imputer`](super::Imputer) to fill; `None`: such a cell is an error. Infinite values are
    /// an error either way.
    pub impute: Option<Impute>,
    /// The feature columns to read, by name and in this order (a saved model's, for
    /// `predict`): a column of the file that is neither one of them, the target nor dropped is
    /// an error, and the target column may be absent (the targets are then unknown, see
    /// [`Dataset::has_targets`]). Empty: every column but the target and the dropped ones, in
    /// file order.
    pub features: Vec<String>,
}

/// Decompresses gzip bytes.
pub(crate) fn gunzip(bytes: &[u8], what: &str) -> Result<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|e| Error::invalid(format!("{what}: not readable gzip text: {e}")))?;
    Ok(text)
}

/// The text of a file, gunzipped when it ends in `.gz`.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let source = path.display().to_string();
    if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&bytes, &source)
    } else {
        String::from_utf8(bytes)
            .map_err(|_| Error::invalid(format!("{source}: not UTF-8 text; is it a CSV file?")))
    }
}

/// Reads a CSV file (`.gz` is decompressed).
pub fn load_csv(path: &Path, opts: &CsvOptions) -> Result<Dataset> {
    let source = path.display().to_string();
    let text = read_text(path)?;
    parse_csv(&text, opts, &source)
}

/// Parses CSV text; see [`CsvOptions`].
pub(crate) fn parse_csv(text: &str, opts: &CsvOptions, source: &str) -> Result<Dataset> {
    if text.trim().is_empty() {
        return Err(Error::invalid(format!(
            "{source}: the file is empty; a CSV needs a header row and data rows"
        )));
    }
    let (mut reader, header) = reader_and_header(text, source)?;
    let Columns {
        target,
        features: feature_cols,
    } = columns(&header, opts, source)?;
    let mut features = Vec::new();
    let mut raw_targets = Vec::new();
    let mut lines = Vec::new();
    let mut rows = 0;
    for (r, record) in reader.records().enumerate() {
        let record = record.map_err(|e| match e.kind() {
            ::csv::ErrorKind::UnequalLengths { expected_len, len, pos } => Error::invalid(format!(
                "{source}: row {} has {len} fields but the header has {expected_len}; every row needs one value per column",
                pos.as_ref().map_or(r + 2, |p| p.line() as usize)
            )),
            _ => Error::invalid(format!("{source}: row {}: {e}", r + 2)),
        })?;
        // The line the row starts on, as an editor shows it (quoted fields may span lines).
        let line = record.position().map_or(r + 2, |p| p.line() as usize);
        for &c in &feature_cols {
            features.push(feature_value(
                record[c].trim(),
                line,
                &header[c],
                opts,
                source,
            )?);
        }
        if let Some(target) = target {
            raw_targets.push(record[target].trim().to_string());
            lines.push(line);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(Error::invalid(format!(
            "{source}: the file has a header but no data rows"
        )));
    }
    let width = feature_cols.len();
    let shape = match opts.image {
        Some([h, w, c]) => {
            let pixels = h.checked_mul(w).and_then(|hw| hw.checked_mul(c));
            if pixels != Some(width) {
                return Err(Error::invalid(format!(
                    "{source}: --image {h}x{w}x{c} needs {} pixel columns per row, but the rows have {width} feature columns",
                    pixels.map_or("more".to_string(), |p| p.to_string())
                )));
            }
            features = hwc_to_chw(&features, h, w, c);
            vec![c, h, w]
        }
        None => vec![width],
    };
    let targets = match target {
        Some(_) => {
            targets_from_strings(raw_targets, Some(&lines), opts.task, &opts.target, source)?
        }
        None => Targets::Values(vec![f32::NAN; rows]),
    };
    Ok(Dataset {
        features,
        shape,
        targets,
        feature_names: feature_cols.iter().map(|&c| header[c].clone()).collect(),
        source: source.to_string(),
        target_scale: None,
    })
}

/// A strict CSV reader over `text` and its header row (trimmed names, each once).
pub(crate) fn reader_and_header<'a>(
    text: &'a str,
    source: &str,
) -> Result<(::csv::Reader<&'a [u8]>, Vec<String>)> {
    let mut reader = ::csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid(format!("{source}: cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    check_unique(&header, source)?;
    Ok((reader, header))
}

/// An error for a header that names a column twice (which one would `--target`, `--drop` or
/// a model's feature names mean?).
fn check_unique(header: &[String], source: &str) -> Result<()> {
    for (i, h) in header.iter().enumerate() {
        if let Some(j) = header[..i].iter().position(|g| g == h) {
            return Err(Error::invalid(format!(
                "{source}: the header names column `{h}` twice (columns {} and {}); give every column its own name",
                j + 1,
                i + 1
            )));
        }
    }
    Ok(())
}

/// Where the target and the features are in a header.
struct Columns {
    /// The target column, `None` when a model's features are read without it.
    target: Option<usize>,
    /// The feature columns, in the order the rows store them.
    features: Vec<usize>,
}

/// At most `max` names of `names`, in backquotes, with how many there are in all beyond that.
fn some_names(names: &[&str], max: usize) -> String {
    let shown: Vec<String> = names.iter().take(max).map(|n| format!("`{n}`")).collect();
    match names.len() {
        n if n > max => format!("{}, ... ({n} in all)", shown.join(", ")),
        _ => shown.join(", "),
    }
}

/// Resolves the target, the dropped and the feature columns of `header` per `opts`.
fn columns(header: &[String], opts: &CsvOptions, source: &str) -> Result<Columns> {
    let by_name = !opts.features.is_empty();
    if opts.target.is_empty() && !by_name {
        return Err(Error::invalid(format!(
            "{source}: say which column to predict with --target (columns: {})",
            header.join(", ")
        )));
    }
    for d in &opts.drop {
        if !header.contains(d) {
            return Err(Error::invalid(format!(
                "{source}: --drop names a column `{d}` that does not exist"
            )));
        }
        if *d == opts.target && !by_name {
            return Err(Error::invalid(format!(
                "{source}: --drop `{d}` is the --target column; the target cannot be dropped (choose another --target, or leave out --drop {d})"
            )));
        }
    }
    // Reading a model's features, a dropped target is simply not compared with.
    let target = header
        .iter()
        .position(|h| *h == opts.target)
        .filter(|&t| !(by_name && opts.drop.contains(&header[t])));
    if !by_name {
        let target = target.ok_or_else(|| {
            Error::invalid(format!(
                "{source}: there is no column `{}` to use as --target; the columns are: {}",
                opts.target,
                header.join(", ")
            ))
        })?;
        let features: Vec<usize> = (0..header.len())
            .filter(|&i| i != target && !opts.drop.contains(&header[i]))
            .collect();
        if features.is_empty() {
            return Err(Error::invalid(format!(
                "{source}: no feature columns are left besides the target"
            )));
        }
        return Ok(Columns {
            target: Some(target),
            features,
        });
    }
    if let Some(d) = opts.drop.iter().find(|d| opts.features.contains(d)) {
        return Err(Error::invalid(format!(
            "{source}: --drop `{d}` is a column the model reads; leave out --drop {d}"
        )));
    }
    let missing: Vec<&str> = opts
        .features
        .iter()
        .filter(|f| !header.contains(f))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "{source}: the model reads column{} {}, which this file does not have; it needs every column it was trained on (by name, in any order)",
            if missing.len() == 1 { "" } else { "s" },
            some_names(&missing, 8)
        )));
    }
    let extra: Vec<&str> = header
        .iter()
        .enumerate()
        .filter(|&(i, h)| Some(i) != target && !opts.drop.contains(h) && !opts.features.contains(h))
        .map(|(_, h)| h.as_str())
        .collect();
    if let Some(first) = extra.first() {
        return Err(Error::invalid(format!(
            "{source}: column{} {} {} not one the model reads (nor its target `{}`); ignore {} with --drop {first}",
            if extra.len() == 1 { "" } else { "s" },
            some_names(&extra, 8),
            if extra.len() == 1 { "is" } else { "are" },
            opts.target,
            if extra.len() == 1 { "it" } else { "each" },
        )));
    }
    let features = opts
        .features
        .iter()
        .map(|f| header.iter().position(|h| h == f).expect("checked above"))
        .collect();
    Ok(Columns { target, features })
}

/// One feature cell: a finite number, or `NaN` for a missing one (empty or `NaN`) when
/// `opts.impute` allows it; anything else is an error naming the row and column.
fn feature_value(
    field: &str,
    line: usize,
    col: &str,
    opts: &CsvOptions,
    source: &str,
) -> Result<f32> {
    // Only asked when `opts.impute` is off (with it, a missing cell is read as NaN).
    let what_to_do = || {
        if opts.features.is_empty() {
            format!("fill it in, pass --impute median to fill missing cells from the training rows, or --drop {col}")
        } else {
            "the model was trained without --impute, so every feature cell needs a number"
                .to_string()
        }
    };
    if field.is_empty() {
        if opts.impute.is_some() {
            return Ok(f32::NAN);
        }
        return Err(Error::invalid(format!(
            "{source}: row {line}, column `{col}` is missing a value; {}",
            what_to_do()
        )));
    }
    let v: f32 = field.parse().map_err(|_| {
        let hint = if opts.impute.is_some() {
            " (--impute fills empty and `NaN` cells: write a missing value as one of those)"
        } else {
            ""
        };
        Error::invalid(format!(
            "{source}: row {line}, column `{col}` holds `{field}`, which is not a number{hint}; features must be numeric (drop the column with --drop {col})"
        ))
    })?;
    if v.is_nan() {
        if opts.impute.is_some() {
            return Ok(f32::NAN);
        }
        return Err(Error::invalid(format!(
            "{source}: row {line}, column `{col}` holds `{field}`, a missing value; {}",
            what_to_do()
        )));
    }
    if v.is_infinite() {
        return Err(Error::invalid(format!(
            "{source}: row {line}, column `{col}` holds `{field}`, which is infinite as a 32-bit float; \
             infinities are never imputed (they usually come from an overflow or a division by zero): \
             fix the value, or --drop {col}"
        )));
    }
    Ok(v)
}

/// Turns rows of `H x W x C` (channels last) pixels into `C x H x W`.
pub(crate) fn hwc_to_chw(rows: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
    if c == 1 {
        return rows.to_vec();
    }
    let d = h * w * c;
    let mut out = vec![0.0; rows.len()];
    for (row, dst) in rows.chunks(d).zip(out.chunks_mut(d)) {
        for p in 0..h * w {
            for ch in 0..c {
                dst[ch * h * w + p] = row[p * c + ch];
            }
        }
    }
    out
}

/// Class ids (sorted label order: numeric labels numerically) or regression values; `lines`
/// are the rows' line numbers for messages (default: the row index + 2).
pub(crate) fn targets_from_strings(
    raw: Vec<String>,
    lines: Option<&[usize]>,
    task: Option<Task>,
    column: &str,
    source: &str,
) -> Result<Targets> {
    let line = |i: usize| lines.and_then(|l| l.get(i).copied()).unwrap_or(i + 2);
    // A missing label is never a class of its own, nor imputed.
    if let Some(i) = raw.iter().position(|s| s.is_empty()) {
        return Err(Error::invalid(format!(
            "{source}: row {} has no value in the target column `{column}`",
            line(i)
        )));
    }
    let numbers: Option<Vec<f64>> = raw.iter().map(|s| s.parse::<f64>().ok()).collect();
    let task = task.unwrap_or_else(|| match &numbers {
        Some(v) => {
            let distinct: std::collections::BTreeSet<u64> = v.iter().map(|x| x.to_bits()).collect();
            if v.iter().any(|x| x.fract() != 0.0) || distinct.len() > 20 {
                Task::Regression
            } else {
                Task::Classification
            }
        }
        None => Task::Classification,
    });
    match task {
        Task::LanguageModel => Err(Error::invalid(format!(
            "{source}: a language model (--task lm) learns a plain-text file, not a CSV column"
        ))),
        Task::Regression => {
            let values = numbers.ok_or_else(|| {
                let bad = raw.iter().position(|s| s.parse::<f64>().is_err()).unwrap_or(0);
                Error::invalid(format!(
                    "{source}: row {}: regression needs a numeric target, but `{column}` holds `{}`",
                    line(bad),
                    raw[bad]
                ))
            })?;
            // A NaN target would make every trial's loss NaN; it is not imputed either.
            if let Some(bad) = values.iter().position(|v| !(*v as f32).is_finite()) {
                return Err(Error::invalid(format!(
                    "{source}: row {}: the target `{column}` holds `{}`, which is not a finite number; \
                     regression targets are never imputed: fix the value or remove the row",
                    line(bad),
                    raw[bad]
                )));
            }
            Ok(Targets::Values(
                values.into_iter().map(|v| v as f32).collect(),
            ))
        }
        Task::Classification => {
            if let Some(i) = raw.iter().position(|s| s.eq_ignore_ascii_case("nan")) {
                return Err(Error::invalid(format!(
                    "{source}: row {} holds `{}` in the target column `{column}`, a missing label; labels are never imputed: fill it in or remove the row",
                    line(i),
                    raw[i]
                )));
            }
            let mut labels: Vec<&String> = raw.iter().collect();
            match &numbers {
                Some(_) => labels.sort_by(|a, b| {
                    a.parse::<f64>()
                        .unwrap()
                        .total_cmp(&b.parse::<f64>().unwrap())
                }),
                None => labels.sort(),
            }
            labels.dedup();
            let names: Vec<String> = labels.into_iter().cloned().collect();
            let index: BTreeMap<&str, u32> = names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i as u32))
                .collect();
            let ids = raw.iter().map(|s| index[s.as_str()]).collect();
            Ok(Targets::Classes { ids, names })
        }
    }
}

/// The column names of a CSV's header row (`.gz` is decompressed), reading only that row.
pub fn csv_header(path: &Path) -> Result<Vec<String>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| Error::io(path, e))?;
    Ok(line
        .trim_end()
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect())
}
