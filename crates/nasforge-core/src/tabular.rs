//! Tabular benchmarks: a table of pre-computed results for every arch of a space
//! (NAS-Bench-201's layout: an `arch` column plus numeric columns), and the evaluator that looks
//! archs up in it instead of training them.

use crate::space::{Arch, Space};
use crate::{Error, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// A loaded benchmark table: one row per arch, numeric columns by name.
#[derive(Debug)]
pub struct Table {
    archs: Vec<Arch>,
    rows: HashMap<Arch, usize>,
    names: Vec<String>,
    columns: Vec<Vec<f64>>,
    /// Per column, the first row (its line) whose value is not finite, and the text there.
    non_finite: Vec<Option<(usize, String)>>,
    /// The file, for messages (empty for [`Table::from_csv`]).
    source: String,
}

/// NAS-Bench-201 on CIFAR-10, every one of its 15,625 cells (`valid_acc_12ep`,
/// `test_acc_12ep`, `test_acc_200ep`), gzipped into the binary: the benchmark a table search or
/// `nasforge bench nb201` uses when no `--table` is given. NAS-Bench-201 is MIT-licensed.
const NB201_CIFAR10: &[u8] = include_bytes!("../data/nb201_cifar10.csv.gz");

/// What the built-in table is called in reports and JSON.
pub const BUILTIN_NB201: &str = "built-in NAS-Bench-201 CIFAR-10";

impl Table {
    /// The built-in NAS-Bench-201 CIFAR-10 table, read in `space` (which must be `nb201`).
    pub fn builtin(space: &dyn Space) -> Result<Table> {
        if space.name() != "nb201" {
            return Err(Error::invalid(format!(
                "the built-in table is NAS-Bench-201 (space nb201); space `{}` needs --table FILE",
                space.name()
            )));
        }
        let mut text = String::new();
        flate2::read::GzDecoder::new(NB201_CIFAR10)
            .read_to_string(&mut text)
            .map_err(|e| Error::invalid(format!("{BUILTIN_NB201}: {e}")))?;
        Self::from_csv(&text, space).map_err(|e| Error::invalid(format!("{BUILTIN_NB201}: {e}")))
    }

    /// The table at `path`, or the built-in one when there is none ([`Table::builtin`]).
    pub fn load_or_builtin(path: Option<&Path>, space: &dyn Space) -> Result<Table> {
        match path {
            Some(p) => Self::load(p, space),
            None => Self::builtin(space),
        }
    }

    /// Reads a CSV (optionally `.gz`) with a header, an `arch` column in `space`'s text form, and
    /// numeric columns. Any other non-numeric column, a missing value, an arch the space cannot
    /// read, a repeated arch or a repeated column name is an error naming the row or column.
    /// `NaN` and infinite values load (a table may lack some metric for some archs), but a
    /// column holding one cannot be an objective: see [`Table::metric_index`].
    pub fn load(path: &Path, space: &dyn Space) -> Result<Table> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut text = String::new();
        if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::GzDecoder::new(file)
                .read_to_string(&mut text)
                .map_err(|e| Error::io(path, e))?;
        } else {
            std::io::BufReader::new(file)
                .read_to_string(&mut text)
                .map_err(|e| Error::io(path, e))?;
        }
        let mut table = Self::from_csv(&text, space)
            .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
        table.source = format!("{}: ", path.display());
        Ok(table)
    }

    /// Parses CSV text; see [`Table::load`].
    pub fn from_csv(text: &str, space: &dyn Space) -> Result<Table> {
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| Error::invalid(format!("cannot read the header: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        for (i, h) in header.iter().enumerate() {
            if let Some(j) = header[..i].iter().position(|g| g == h) {
                return Err(Error::invalid(format!(
                    "the header names column `{h}` twice (columns {} and {}); give every column its own name",
                    j + 1,
                    i + 1
                )));
            }
        }
        let arch_col = header.iter().position(|h| h == "arch").ok_or_else(|| {
            Error::invalid(format!(
                "the table has no `arch` column (its columns are: {})",
                header.join(", ")
            ))
        })?;
        let names: Vec<String> = header
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != arch_col)
            .map(|(_, h)| h.clone())
            .collect();
        let mut columns = vec![Vec::new(); names.len()];
        let mut non_finite = vec![None; names.len()];
        let mut archs = Vec::new();
        let mut rows = HashMap::new();
        for (r, record) in reader.records().enumerate() {
            let line = r + 2;
            let record = record.map_err(|e| Error::invalid(format!("row {line}: {e}")))?;
            let arch = space
                .parse(record.get(arch_col).unwrap_or(""))
                .map_err(|e| Error::invalid(format!("row {line}: {e}")))?;
            if let Some(prev) = rows.insert(arch.clone(), archs.len()) {
                return Err(Error::invalid(format!(
                    "row {line}: arch {} is already in row {}; each arch must appear once",
                    space.format(&arch),
                    prev + 2
                )));
            }
            archs.push(arch);
            let mut c = 0;
            for (i, field) in record.iter().enumerate() {
                if i == arch_col {
                    continue;
                }
                let v: f64 = field.trim().parse().map_err(|_| {
                    Error::invalid(format!(
                        "row {line}, column `{}`: `{field}` is not a number",
                        names[c]
                    ))
                })?;
                if !v.is_finite() && non_finite[c].is_none() {
                    non_finite[c] = Some((line, field.trim().to_string()));
                }
                columns[c].push(v);
                c += 1;
            }
        }
        if archs.is_empty() {
            return Err(Error::invalid("the table has a header but no rows"));
        }
        Ok(Table {
            archs,
            rows,
            names,
            columns,
            non_finite,
            source: String::new(),
        })
    }

    /// Number of archs (rows).
    pub fn len(&self) -> usize {
        self.archs.len()
    }

    /// Whether the table has no rows (never true for a loaded table).
    pub fn is_empty(&self) -> bool {
        self.archs.is_empty()
    }

    /// The position of a column, or an error listing the columns there are.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::invalid(format!(
                "the table has no column `{name}`; its numeric columns are: {}",
                self.names.join(", ")
            ))
        })
    }

    /// The position of a column whose values are compared (an objective, a reported metric, a
    /// predictor's target): like [`Table::column_index`], and an error naming the first row
    /// whose value is `NaN` or infinite, which would rank as neither better nor worse than any
    /// other (a search would report a `NaN` optimum and zero regret).
    pub fn metric_index(&self, name: &str) -> Result<usize> {
        let index = self.column_index(name)?;
        if let Some((line, text)) = &self.non_finite[index] {
            return Err(Error::invalid(format!(
                "{}row {line}, column `{name}` holds `{text}`, which is not a finite number; \
                 a column that archs are compared by needs a number in every row: fix or remove the row",
                self.source
            )));
        }
        Ok(index)
    }

    /// A column's values, in row order.
    pub fn column(&self, index: usize) -> &[f64] {
        &self.columns[index]
    }

    /// The row of an arch, if the table has it.
    pub fn row(&self, arch: &Arch) -> Option<usize> {
        self.rows.get(arch).copied()
    }

    /// The arch of a row.
    pub fn arch(&self, row: usize) -> &Arch {
        &self.archs[row]
    }

    /// The names of the numeric columns, in file order.
    pub fn metric_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// All values of one row, by column name.
    pub fn row_values(&self, row: usize) -> impl Iterator<Item = (&str, f64)> {
        self.names
            .iter()
            .zip(&self.columns)
            .map(move |(n, c)| (n.as_str(), c[row]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_table_is_the_whole_nb201_benchmark() {
        let space = crate::space::build("nb201", &crate::Params::default()).unwrap();
        let t = Table::builtin(space.as_ref()).unwrap();
        assert_eq!(t.len(), 15_625);
        for c in ["valid_acc_12ep", "test_acc_12ep", "test_acc_200ep"] {
            let col = t.column(t.column_index(c).unwrap());
            assert!(col
                .iter()
                .all(|v| v.is_finite() && (0.0..=100.0).contains(v)));
        }
        // The all-3x3-convolution cell as the shared CSV holds it (93.76% after 200 epochs).
        let arch = space
            .parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
            .unwrap();
        let row = t.row(&arch).unwrap();
        let acc = t.column(t.column_index("test_acc_200ep").unwrap())[row];
        assert!((acc - 93.76).abs() < 1e-9, "{acc}");
        let other = crate::space::build("mlp", &crate::Params::default()).unwrap();
        let err = Table::builtin(other.as_ref()).unwrap_err().to_string();
        assert!(err.contains("--table"), "{err}");
    }
}
