//! Text for Transformers: a CSV's text column read as labelled passages, a vocabulary of
//! bytes or characters, and passages encoded as token ids cut or padded to a fixed length.
//!
//! Token id 0 pads a short passage and id 1 stands for a character the vocabulary does not
//! hold; a byte vocabulary has all 256 bytes after them (258 ids), a character vocabulary the
//! distinct characters of the rows it is fitted on (the training rows: validation and test
//! text never shapes it), in code-point order.

use super::csv::{read_text, reader_and_header, targets_from_strings};
use super::{Dataset, Targets, Task};
use nasforge_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The id that pads a passage shorter than the sequence length.
pub const PAD: u32 = 0;
/// The id of a character a character vocabulary does not hold.
pub const UNKNOWN: u32 = 1;
/// Ids before the first byte or character.
const SPECIAL: usize = 2;

/// What one token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokens {
    /// One UTF-8 byte (258 ids: any text, no unknowns).
    Byte,
    /// One Unicode character seen in the training rows.
    Char,
}

impl Tokens {
    /// Reads `byte` or `char`.
    pub fn parse(s: &str) -> Result<Tokens> {
        match s {
            "byte" => Ok(Tokens::Byte),
            "char" => Ok(Tokens::Char),
            other => Err(Error::invalid(format!(
                "tokens `{other}` are neither `byte` nor `char`"
            ))),
        }
    }
}

/// A vocabulary: how text becomes token ids (saved with a model so `predict` encodes alike).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// Bytes or characters.
    pub tokens: Tokens,
    /// The characters of a character vocabulary, in id order from id 2 (empty for bytes).
    pub chars: Vec<char>,
}

impl Vocabulary {
    /// The vocabulary of `texts` (the training rows'), refused when it would hold more than
    /// `max` ids.
    pub fn fit<'a>(
        tokens: Tokens,
        texts: impl IntoIterator<Item = &'a str>,
        max: usize,
    ) -> Result<Self> {
        let chars = match tokens {
            Tokens::Byte => Vec::new(),
            Tokens::Char => {
                let set: std::collections::BTreeSet<char> =
                    texts.into_iter().flat_map(str::chars).collect();
                set.into_iter().collect()
            }
        };
        let vocab = Vocabulary { tokens, chars };
        if vocab.len() > max {
            return Err(Error::invalid(match tokens {
                Tokens::Byte => format!(
                    "a byte vocabulary has {} ids, more than the {max} allowed; raise --max-vocab to {} or more",
                    vocab.len(),
                    vocab.len()
                ),
                Tokens::Char => format!(
                    "the training text holds {} distinct characters ({} ids with padding and unknown), more than the {max} allowed; raise --max-vocab or use --tokens byte",
                    vocab.chars.len(),
                    vocab.len()
                ),
            }));
        }
        Ok(vocab)
    }

    /// Number of ids, padding and unknown included.
    pub fn len(&self) -> usize {
        SPECIAL
            + match self.tokens {
                Tokens::Byte => 256,
                Tokens::Char => self.chars.len(),
            }
    }

    /// Whether it holds no byte or character (a character vocabulary of empty text).
    pub fn is_empty(&self) -> bool {
        self.len() == SPECIAL
    }

    /// The ids of `text`: its first `seq_len` tokens, padded with [`PAD`] at the end.
    pub fn encode(&self, text: &str, seq_len: usize) -> Vec<f32> {
        let ids: Box<dyn Iterator<Item = u32>> = match self.tokens {
            Tokens::Byte => Box::new(text.bytes().map(|b| SPECIAL as u32 + u32::from(b))),
            Tokens::Char => Box::new(text.chars().map(|c| match self.chars.binary_search(&c) {
                Ok(k) => (SPECIAL + k) as u32,
                Err(_) => UNKNOWN,
            })),
        };
        let mut out: Vec<f32> = ids.take(seq_len).map(|id| id as f32).collect();
        out.resize(seq_len, PAD as f32);
        out
    }
}

/// Labelled passages read from a CSV.
#[derive(Clone, Debug)]
pub struct TextColumn {
    /// One passage per row.
    pub texts: Vec<String>,
    /// One class per row.
    pub targets: Targets,
    /// The file.
    pub source: String,
}

/// Reads the passages of column `text` and the labels of column `target` of a CSV (`.gz` is
/// decompressed). Every row needs a non-empty passage; a file that is not UTF-8, a missing
/// column and an empty passage are errors that say where.
pub fn read_text_csv(path: &Path, text: &str, target: &str) -> Result<TextColumn> {
    let source = path.display().to_string();
    parse_text_csv(&read_text(path)?, text, target, &source)
}

pub(crate) fn parse_text_csv(
    content: &str,
    text: &str,
    target: &str,
    source: &str,
) -> Result<TextColumn> {
    let (mut reader, header) = reader_and_header(content, source)?;
    let column = |name: &str, flag: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            Error::invalid(format!(
                "{source}: no column `{name}` for {flag}; the columns are: {}",
                header.join(", ")
            ))
        })
    };
    let (t, y) = (column(text, "--text-column")?, column(target, "--target")?);
    let (mut texts, mut labels, mut lines) = (Vec::new(), Vec::new(), Vec::new());
    for (r, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::invalid(format!("{source}: row {}: {e}", r + 2)))?;
        let line = record.position().map_or(r + 2, |p| p.line() as usize);
        if record[t].trim().is_empty() {
            return Err(Error::invalid(format!(
                "{source}: row {line} has an empty text in column `{text}`; remove the row or give it text"
            )));
        }
        texts.push(record[t].to_string());
        labels.push(record[y].trim().to_string());
        lines.push(line);
    }
    if texts.is_empty() {
        return Err(Error::invalid(format!(
            "{source}: the file has no data rows"
        )));
    }
    let targets = targets_from_strings(
        labels,
        Some(&lines),
        Some(Task::Classification),
        target,
        source,
    )?;
    Ok(TextColumn {
        texts,
        targets,
        source: source.to_string(),
    })
}

impl TextColumn {
    /// The passages as token ids `[seq_len]` per row (a sequence length of 0 is refused).
    pub fn encode(&self, vocab: &Vocabulary, seq_len: usize) -> Result<Dataset> {
        if seq_len == 0 {
            return Err(Error::invalid(
                "a sequence length of 0 holds no text; give --seq-len 1 or more",
            ));
        }
        Ok(Dataset {
            features: self
                .texts
                .iter()
                .flat_map(|t| vocab.encode(t, seq_len))
                .collect(),
            shape: vec![seq_len],
            targets: self.targets.clone(),
            feature_names: Vec::new(),
            source: self.source.clone(),
            target_scale: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "id,text,genre\n1,\"To be, or not\",tragedy\n2,All's well,comedy\n3,Now is the winter,history\n";

    #[test]
    fn passages_become_ids_cut_and_padded() {
        let col = parse_text_csv(CSV, "text", "genre", "t.csv").unwrap();
        assert_eq!(col.texts[0], "To be, or not");
        let train = [col.texts[0].as_str(), col.texts[1].as_str()];
        let vocab = Vocabulary::fit(Tokens::Char, train, 1000).unwrap();
        let d = col.encode(&vocab, 6).unwrap();
        assert_eq!(d.shape, vec![6]);
        // "To be," — every character seen in training, so none unknown.
        assert!(d.row(0).iter().all(|&v| v >= 2.0));
        // "Now is" starts with `N`, never seen in training: the unknown id.
        assert_eq!(d.row(2)[0], UNKNOWN as f32);
        assert_eq!(
            vocab.encode("N", 3),
            vec![UNKNOWN as f32, PAD as f32, PAD as f32]
        );
        let bytes = Vocabulary::fit(Tokens::Byte, train, 1000).unwrap();
        assert_eq!(bytes.len(), 258);
        assert_eq!(
            bytes.encode("é", 3),
            vec![2.0 + 0xC3 as f32, 2.0 + 0xA9 as f32, 0.0]
        );
        let e = col.encode(&vocab, 0).unwrap_err().to_string();
        assert!(e.contains("sequence length of 0"), "{e}");
    }

    #[test]
    fn bad_text_input_is_a_clear_error() {
        let err = |r: Result<TextColumn>| r.unwrap_err().to_string();
        let e = err(parse_text_csv(CSV, "body", "genre", "t.csv"));
        assert!(
            e.contains("no column `body` for --text-column") && e.contains("id, text, genre"),
            "{e}"
        );
        let e = err(parse_text_csv(
            "text,genre\nabc,x\n  ,y\n",
            "text",
            "genre",
            "t.csv",
        ));
        assert!(e.contains("row 3 has an empty text"), "{e}");
        let e = Vocabulary::fit(Tokens::Char, ["abcdef"], 5)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("6 distinct characters") && e.contains("--max-vocab"),
            "{e}"
        );
        let e = Vocabulary::fit(Tokens::Byte, ["a"], 100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("258"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.csv");
        std::fs::write(&path, b"text,genre\ncaf\xe9,x\n").unwrap();
        let e = read_text_csv(&path, "text", "genre")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        assert!(Tokens::parse("word").is_err());
    }
}
