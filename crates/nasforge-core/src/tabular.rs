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
}

impl Table {
    /// Reads a CSV (optionally `.gz`) with a header, an `arch` column in `space`'s text form, and
    /// numeric columns. Any other non-numeric column, a missing value, an arch the space cannot
    /// read, or a repeated arch is an error naming the row.
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
        Self::from_csv(&text, space).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
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

    /// All values of one row, by column name.
    pub fn row_values(&self, row: usize) -> impl Iterator<Item = (&str, f64)> {
        self.names
            .iter()
            .zip(&self.columns)
            .map(move |(n, c)| (n.as_str(), c[row]))
    }
}
