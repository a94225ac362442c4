//! CSV data: a header, a target column, numeric features (or pixels with `--image HxWxC`).

use super::{Dataset, Targets, Task};
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
fn read_text(path: &Path) -> Result<String> {
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
    let mut reader = ::csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid(format!("{source}: cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if opts.target.is_empty() {
        return Err(Error::invalid(format!(
            "{source}: say which column to predict with --target (columns: {})",
            header.join(", ")
        )));
    }
    let target = header
        .iter()
        .position(|h| *h == opts.target)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{source}: there is no column `{}` to use as --target; the columns are: {}",
                opts.target,
                header.join(", ")
            ))
        })?;
    for d in &opts.drop {
        if !header.contains(d) {
            return Err(Error::invalid(format!(
                "{source}: --drop names a column `{d}` that does not exist"
            )));
        }
    }
    let feature_cols: Vec<usize> = (0..header.len())
        .filter(|&i| i != target && !opts.drop.contains(&header[i]))
        .collect();
    if feature_cols.is_empty() {
        return Err(Error::invalid(format!(
            "{source}: no feature columns are left besides the target"
        )));
    }
    let mut features = Vec::new();
    let mut raw_targets = Vec::new();
    for (r, record) in reader.records().enumerate() {
        let line = r + 2;
        let record = record.map_err(|e| match e.kind() {
            ::csv::ErrorKind::UnequalLengths { expected_len, len, .. } => Error::invalid(format!(
                "{source}: row {line} has {len} fields but the header has {expected_len}; every row needs one value per column"
            )),
            _ => Error::invalid(format!("{source}: row {line}: {e}")),
        })?;
        for &c in &feature_cols {
            let field = record[c].trim();
            if field.is_empty() {
                return Err(Error::invalid(format!(
                    "{source}: row {line}, column `{}` is missing a value; fill it in or pass --drop {}",
                    header[c], header[c]
                )));
            }
            let v: f32 = field.parse().map_err(|_| {
                Error::invalid(format!(
                    "{source}: row {line}, column `{}` holds `{field}`, which is not a number; features must be numeric (drop the column with --drop {})",
                    header[c], header[c]
                ))
            })?;
            features.push(v);
        }
        let t = record[target].trim();
        if t.is_empty() {
            return Err(Error::invalid(format!(
                "{source}: row {line} has no value in the target column `{}`",
                opts.target
            )));
        }
        raw_targets.push(t.to_string());
    }
    if raw_targets.is_empty() {
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
    Ok(Dataset {
        features,
        shape,
        targets: targets_from_strings(raw_targets, opts.task, &opts.target, source)?,
        feature_names: feature_cols.iter().map(|&c| header[c].clone()).collect(),
        source: source.to_string(),
        target_scale: None,
    })
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

/// Class ids (sorted label order: numeric labels numerically) or regression values.
pub(crate) fn targets_from_strings(
    raw: Vec<String>,
    task: Option<Task>,
    column: &str,
    source: &str,
) -> Result<Targets> {
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
        Task::Regression => {
            let values = numbers.ok_or_else(|| {
                let bad = raw.iter().position(|s| s.parse::<f64>().is_err()).unwrap_or(0);
                Error::invalid(format!(
                    "{source}: row {}: regression needs a numeric target, but `{column}` holds `{}`",
                    bad + 2,
                    raw[bad]
                ))
            })?;
            Ok(Targets::Values(
                values.into_iter().map(|v| v as f32).collect(),
            ))
        }
        Task::Classification => {
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

/// Reads the feature columns `names` (in that order) of a CSV that has no target column, for
/// prediction. The targets of the result are unknown (NaN).
pub fn load_features(path: &Path, names: &[String], image: Option<[usize; 3]>) -> Result<Dataset> {
    let source = path.display().to_string();
    let text = read_text(path)?;
    let mut reader = ::csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid(format!("{source}: cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let cols: Vec<usize> = names
        .iter()
        .map(|n| {
            header.iter().position(|h| h == n).ok_or_else(|| {
                Error::invalid(format!(
                    "{source}: the model reads column `{n}`, which this file does not have"
                ))
            })
        })
        .collect::<Result<_>>()?;
    let mut features = Vec::new();
    let mut rows = 0;
    for (r, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::invalid(format!("{source}: row {}: {e}", r + 2)))?;
        for &c in &cols {
            let field = record[c].trim();
            features.push(field.parse::<f32>().map_err(|_| {
                Error::invalid(format!(
                    "{source}: row {}, column `{}`: `{field}` is not a number",
                    r + 2,
                    header[c]
                ))
            })?);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(Error::invalid(format!("{source}: no data rows")));
    }
    let shape = match image {
        Some([h, w, c]) => {
            features = hwc_to_chw(&features, h, w, c);
            vec![c, h, w]
        }
        None => vec![names.len()],
    };
    Ok(Dataset {
        features,
        shape,
        targets: Targets::Values(vec![f32::NAN; rows]),
        feature_names: names.to_vec(),
        source,
        target_scale: None,
    })
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
