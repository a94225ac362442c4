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

    /// `byte` or `char`, as [`Tokens::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Tokens::Byte => "byte",
            Tokens::Char => "char",
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

    /// How many tokens `text` is.
    pub fn count(&self, text: &str) -> usize {
        match self.tokens {
            Tokens::Byte => text.len(),
            Tokens::Char => text.chars().count(),
        }
    }

    /// The token ids of `text`, in order.
    pub fn ids<'a>(&'a self, text: &'a str) -> Box<dyn Iterator<Item = u32> + 'a> {
        match self.tokens {
            Tokens::Byte => Box::new(text.bytes().map(|b| SPECIAL as u32 + u32::from(b))),
            Tokens::Char => Box::new(text.chars().map(|c| match self.chars.binary_search(&c) {
                Ok(k) => (SPECIAL + k) as u32,
                Err(_) => UNKNOWN,
            })),
        }
    }

    /// The ids of `text`: its first `seq_len` tokens, padded with [`PAD`] at the end.
    pub fn encode(&self, text: &str, seq_len: usize) -> Vec<f32> {
        let mut out: Vec<f32> = self.ids(text).take(seq_len).map(|id| id as f32).collect();
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

/// The label column of a text CSV.
#[derive(Clone, Copy, Debug)]
pub enum Labels<'a> {
    /// The column must be there (training).
    Required(&'a str),
    /// Read when the file has it (prediction: without it the passages are unlabelled, and
    /// their targets are `NaN` values, [`Dataset::has_targets`] false).
    IfPresent(&'a str),
}

/// Reads the passages of column `text` and the labels of a CSV (`.gz` is decompressed); other
/// columns are not read. Every row needs a non-empty passage; a file that is not UTF-8, a
/// missing column and an empty passage are errors that say where.
pub fn read_text_csv(path: &Path, text: &str, labels: Labels) -> Result<TextColumn> {
    let source = path.display().to_string();
    parse_text_csv(&read_text(path)?, text, labels, &source)
}

pub(crate) fn parse_text_csv(
    content: &str,
    text: &str,
    labels: Labels,
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
    let t = column(text, "--text-column")?;
    let (target, y) = match labels {
        Labels::Required(name) => (name, Some(column(name, "--target")?)),
        Labels::IfPresent(name) => (name, header.iter().position(|h| h == name)),
    };
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
        if let Some(y) = y {
            labels.push(record[y].trim().to_string());
        }
        lines.push(line);
    }
    if texts.is_empty() {
        return Err(Error::invalid(format!(
            "{source}: the file has no data rows"
        )));
    }
    let targets = match y {
        Some(_) => targets_from_strings(
            labels,
            Some(&lines),
            Some(Task::Classification),
            target,
            source,
        )?,
        None => Targets::Values(vec![f32::NAN; texts.len()]),
    };
    Ok(TextColumn {
        texts,
        targets,
        source: source.to_string(),
    })
}

/// Refuses a sequence length of 0.
fn check_seq_len(seq_len: usize) -> Result<()> {
    if seq_len == 0 {
        return Err(Error::invalid(
            "a sequence length of 0 holds no text; give --seq-len 1 or more",
        ));
    }
    Ok(())
}

impl TextColumn {
    /// The passages as token ids `[seq_len]` per row (a sequence length of 0 is refused).
    pub fn encode(&self, vocab: &Vocabulary, seq_len: usize) -> Result<Dataset> {
        check_seq_len(seq_len)?;
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

/// The longest default sequence length (a longer one is given with `--seq-len`).
pub const DEFAULT_MAX_SEQ_LEN: usize = 512;

/// Of the training passages' lengths, the share a default sequence length holds whole.
const DEFAULT_SEQ_COVER: f64 = 0.95;

/// How a model reads text: the column, the vocabulary and the sequence length (saved with the
/// model, so that `predict` encodes new passages exactly as training did).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextEncoding {
    /// The CSV column holding the passages (`None`: a plain-text corpus, `--task lm`).
    pub column: Option<String>,
    /// Token ids of bytes or characters.
    pub vocabulary: Vocabulary,
    /// Tokens per passage: longer ones are cut, shorter ones padded.
    pub seq_len: usize,
}

impl TextEncoding {
    /// The encoding fitted on the training passages `train`: their vocabulary (at most
    /// `max_vocab` ids) and, unless given, a sequence length that holds 95% of them whole
    /// (at most [`DEFAULT_MAX_SEQ_LEN`]).
    pub fn fit(
        column: Option<&str>,
        train: &[&str],
        tokens: Tokens,
        max_vocab: usize,
        seq_len: Option<usize>,
    ) -> Result<Self> {
        let vocabulary = Vocabulary::fit(tokens, train.iter().copied(), max_vocab)?;
        let seq_len = match seq_len {
            Some(t) => {
                check_seq_len(t)?;
                t
            }
            None => {
                let mut lengths: Vec<usize> = train.iter().map(|t| vocabulary.count(t)).collect();
                lengths.sort_unstable();
                let k = ((lengths.len() as f64 * DEFAULT_SEQ_COVER).ceil() as usize)
                    .clamp(1, lengths.len().max(1));
                lengths
                    .get(k - 1)
                    .copied()
                    .unwrap_or(1)
                    .clamp(1, DEFAULT_MAX_SEQ_LEN)
            }
        };
        Ok(TextEncoding {
            column: column.map(str::to_string),
            vocabulary,
            seq_len,
        })
    }

    /// The passages of `column` as token ids.
    pub fn encode(&self, column: &TextColumn) -> Result<Dataset> {
        column.encode(&self.vocabulary, self.seq_len)
    }
}

/// Reads a plain-text corpus (`.gz` is decompressed): UTF-8, not empty.
pub fn read_corpus(path: &Path) -> Result<String> {
    let text = read_text(path)?;
    if text.trim().is_empty() {
        return Err(Error::invalid(format!(
            "{}: the text is empty; a language model needs a corpus to learn from",
            path.display()
        )));
    }
    Ok(text)
}

/// A corpus as a language model's rows: windows of `seq_len` token ids whose targets are the
/// same window shifted by one (the next token at every position), in three contiguous blocks
/// of the text (train, validation, test, in that order), the vocabulary fitted on the training
/// block alone.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// Rows of ids `[seq_len]` with [`Targets::Tokens`].
    pub data: Dataset,
    /// Rows of each block.
    pub split: super::Split,
    /// The vocabulary and sequence length (saved with the model).
    pub encoding: TextEncoding,
    /// Tokens in each block (train, validation, test).
    pub tokens: [usize; 3],
}

impl Corpus {
    /// Cuts `text` into blocks by `fractions` of its characters, fits the vocabulary on the
    /// first and windows each block. Fractions that leave no training text, a sequence length
    /// of 0 and a block too short for one window are errors that say which flag to change.
    pub fn new(
        text: &str,
        source: &str,
        tokens: Tokens,
        max_vocab: usize,
        seq_len: usize,
        fractions: super::SplitFractions,
    ) -> Result<Corpus> {
        fractions.check()?;
        let chars = text.chars().count();
        let cut = |share: f64| (chars as f64 * share).round() as usize;
        let (n_valid, n_test) = (cut(fractions.valid), cut(fractions.test));
        let n_train = chars.saturating_sub(n_valid + n_test);
        // Byte offsets of the block boundaries (at character boundaries).
        let offset = |k: usize| text.char_indices().nth(k).map_or(text.len(), |(i, _)| i);
        let (a, b) = (offset(n_train), offset(n_train + n_valid));
        let blocks = [&text[..a], &text[a..b], &text[b..]];
        let encoding = TextEncoding::fit(None, &blocks[..1], tokens, max_vocab, Some(seq_len))?;
        let vocab = encoding.vocabulary.len();
        let (mut features, mut ids) = (Vec::new(), Vec::new());
        let mut rows = [0usize; 3];
        let mut counts = [0usize; 3];
        for (k, (block, name)) in blocks
            .iter()
            .zip(["training", "validation", "test"])
            .enumerate()
        {
            let block_ids: Vec<u32> = encoding.vocabulary.ids(block).collect();
            counts[k] = block_ids.len();
            let windows = block_ids.len().saturating_sub(1) / seq_len;
            let wanted = k == 0 || [fractions.valid, fractions.test][k - 1] > 0.0;
            if windows == 0 && wanted {
                return Err(Error::invalid(format!(
                    "{source}: the {name} block holds {} tokens, too few for one window of --seq-len {seq_len} plus its next token; lower --seq-len{}",
                    block_ids.len(),
                    if k == 0 { "" } else { " or raise its fraction" }
                )));
            }
            for w in 0..windows {
                let at = w * seq_len;
                features.extend(block_ids[at..at + seq_len].iter().map(|&i| i as f32));
                ids.extend_from_slice(&block_ids[at + 1..at + seq_len + 1]);
            }
            rows[k] = windows;
        }
        let split = super::Split::blocks(rows);
        Ok(Corpus {
            data: Dataset {
                features,
                shape: vec![seq_len],
                targets: Targets::Tokens {
                    ids,
                    per_row: seq_len,
                    vocab,
                },
                feature_names: Vec::new(),
                source: source.to_string(),
                target_scale: None,
            },
            split,
            encoding,
            tokens: counts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "id,text,genre\n1,\"To be, or not\",tragedy\n2,All's well,comedy\n3,Now is the winter,history\n";

    #[test]
    fn passages_become_ids_cut_and_padded() {
        let col = parse_text_csv(CSV, "text", Labels::Required("genre"), "t.csv").unwrap();
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
    fn labels_may_be_absent_when_predicting() {
        let col = parse_text_csv(CSV, "text", Labels::IfPresent("genre"), "t.csv").unwrap();
        assert!(matches!(col.targets, Targets::Classes { ref names, .. } if names.len() == 3));
        let col =
            parse_text_csv("text\nabc\nde\n", "text", Labels::IfPresent("genre"), "t").unwrap();
        let d = col
            .encode(&Vocabulary::fit(Tokens::Byte, ["x"], 300).unwrap(), 4)
            .unwrap();
        assert_eq!(d.len(), 2);
        assert!(!d.has_targets());
        let e = parse_text_csv("text\nabc\n", "text", Labels::Required("genre"), "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column `genre` for --target"), "{e}");
    }

    #[test]
    fn the_default_sequence_length_holds_most_passages_whole() {
        // Twenty passages of 1..=20 characters: 95% of them are 19 characters or fewer.
        let texts: Vec<String> = (1..=20).map(|n| "é".repeat(n)).collect();
        let train: Vec<&str> = texts.iter().map(String::as_str).collect();
        let enc = TextEncoding::fit(Some("text"), &train, Tokens::Char, 100, None).unwrap();
        assert_eq!(enc.seq_len, 19);
        // Bytes count each `é` twice.
        let enc = TextEncoding::fit(Some("text"), &train, Tokens::Byte, 300, None).unwrap();
        assert_eq!(enc.seq_len, 38);
        let long = ["a".repeat(5000)];
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let enc = TextEncoding::fit(Some("text"), &long, Tokens::Char, 100, None).unwrap();
        assert_eq!(enc.seq_len, DEFAULT_MAX_SEQ_LEN);
        assert_eq!(
            TextEncoding::fit(Some("text"), &long, Tokens::Char, 100, Some(7))
                .unwrap()
                .seq_len,
            7
        );
        let e = TextEncoding::fit(Some("text"), &long, Tokens::Char, 100, Some(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sequence length of 0"), "{e}");
    }

    #[test]
    fn a_corpus_becomes_next_token_windows_in_three_blocks() {
        let text = "abcdefghij".repeat(10); // 100 characters
        let fractions = crate::data::SplitFractions {
            valid: 0.1,
            test: 0.1,
        };
        let c = Corpus::new(&text, "t", Tokens::Char, 100, 9, fractions).unwrap();
        assert_eq!(c.tokens, [80, 10, 10]);
        // 80 training tokens: (80 - 1) / 9 = 8 windows; 10 tokens: one window each.
        assert_eq!(
            (c.split.train.len(), c.split.valid.len(), c.split.test.len()),
            (8, 1, 1)
        );
        assert_eq!(c.data.len(), 10);
        let Targets::Tokens {
            ids,
            per_row,
            vocab,
        } = &c.data.targets
        else {
            panic!("token targets")
        };
        assert_eq!((*per_row, *vocab), (9, 12));
        // Each target is the next input: window 0 reads a..i and predicts b..j.
        let row0: Vec<u32> = c.data.row(0).iter().map(|&v| v as u32).collect();
        assert_eq!(&row0[1..], &ids[..8]);
        assert_eq!(ids[8], row0[0] + 9, "the 10th letter follows the 9th");
        // The validation window starts at the validation block, not where training ended.
        assert_eq!(c.data.row(8)[0], c.encoding.vocabulary.encode("a", 1)[0]);
        assert_eq!(c.encoding.column, None);
        // Too short a block.
        let e = Corpus::new(&text, "t", Tokens::Char, 100, 10, fractions)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("validation block holds 10 tokens") && e.contains("--seq-len"),
            "{e}"
        );
        // Characters the training block never had are unknown later.
        let text = format!("{}bbzz", "a".repeat(16));
        let c = Corpus::new(&text, "t", Tokens::Char, 100, 1, fractions).unwrap();
        assert_eq!(c.split.valid, vec![15]);
        assert_eq!(c.data.row(15)[0], UNKNOWN as f32);
        assert_eq!(c.data.row(16)[0], UNKNOWN as f32);
    }

    #[test]
    fn bad_text_input_is_a_clear_error() {
        let err = |r: Result<TextColumn>| r.unwrap_err().to_string();
        let e = err(parse_text_csv(
            CSV,
            "body",
            Labels::Required("genre"),
            "t.csv",
        ));
        assert!(
            e.contains("no column `body` for --text-column") && e.contains("id, text, genre"),
            "{e}"
        );
        let e = err(parse_text_csv(
            "text,genre\nabc,x\n  ,y\n",
            "text",
            Labels::Required("genre"),
            "t.csv",
        ));
        assert!(e.contains("row 3 has an empty text"), "{e}");
        // A missing label is an error, not a class named "" or "NaN".
        let e = err(parse_text_csv(
            "text,genre\nabc,x\nde,\nfg,y\n",
            "text",
            Labels::Required("genre"),
            "t.csv",
        ));
        assert!(
            e.contains("row 3 has no value in the target column `genre`"),
            "{e}"
        );
        let e = err(parse_text_csv(
            "text,genre\nabc,x\nde,y\nfg,NaN\n",
            "text",
            Labels::Required("genre"),
            "t.csv",
        ));
        assert!(
            e.contains("row 4 holds `NaN`") && e.contains("missing label"),
            "{e}"
        );
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
        let e = read_text_csv(&path, "text", Labels::Required("genre"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        assert!(Tokens::parse("word").is_err());
    }
}
