//! MNIST's IDX format: an images file (`...-images-idx3-ubyte[.gz]`) and its labels file.

use super::Dataset;
use nasforge_core::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::invalid(format!("{}: broken gzip data: {e}", path.display())))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Parses one IDX file of unsigned bytes: returns its dimensions and data.
fn parse(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad =
        |why: String| Error::invalid(format!("{}: not a valid IDX file: {why}", path.display()));
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("it does not start with the IDX magic number".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "element type 0x{:02x} is not unsigned bytes (0x08)",
            bytes[2]
        )));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if ndim == 0 || bytes.len() < header {
        return Err(bad("the header is cut short".into()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    // Checked: up to 255 dims of up to 2^32 - 1 each; the file must hold what they promise
    // before anything of that size is allocated.
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let have = bytes.len() - header;
    let Some(want) = want.filter(|&w| w <= have) else {
        let want = dims.iter().map(|&d| d as f64).product::<f64>();
        return Err(bad(format!(
            "the header promises {want} values ({dims:?}) but the file holds {have}; the file is truncated"
        )));
    };
    Ok((dims, bytes[header..header + want].to_vec()))
}

/// The labels file beside an images file: `images-idx3` becomes `labels-idx1`.
fn default_labels(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    let guess = name
        .replace("images-idx3", "labels-idx1")
        .replace("images.idx3", "labels.idx1");
    (guess != name).then(|| images.with_file_name(guess))
}

/// Reads MNIST-style IDX images (`N x H x W`, or `N x H x W x C`) and their labels.
pub fn load_idx(images: &Path, labels: Option<&Path>) -> Result<Dataset> {
    let labels_path = match labels {
        Some(p) => p.to_path_buf(),
        None => default_labels(images).filter(|p| p.exists()).ok_or_else(|| {
            Error::invalid(format!(
                "{}: cannot find its labels file (expected a `...labels-idx1-ubyte` file beside it); name it with --labels",
                images.display()
            ))
        })?,
    };
    let (dims, pixels) = parse(&read_maybe_gz(images)?, images)?;
    let (ldims, labels) = parse(&read_maybe_gz(&labels_path)?, &labels_path)?;
    let (n, h, w, c) = match dims[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] => (n, h, w, c),
        _ => {
            return Err(Error::invalid(format!(
                "{}: an IDX images file has 3 or 4 dimensions, this one has {}",
                images.display(),
                dims.len()
            )))
        }
    };
    if h == 0 || w == 0 || c == 0 {
        return Err(Error::invalid(format!(
            "{}: the IDX header gives images of {h}x{w}x{c} pixels; every side must be at least 1",
            images.display()
        )));
    }
    if ldims.len() != 1 || ldims[0] != n {
        return Err(Error::invalid(format!(
            "{} has {n} images but {} holds {:?} labels",
            images.display(),
            labels_path.display(),
            ldims
        )));
    }
    let features: Vec<f32> = pixels.iter().map(|&p| p as f32).collect();
    let features = super::csv::hwc_to_chw(&features, h, w, c);
    let raw: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    Ok(Dataset {
        features,
        shape: vec![c, h, w],
        targets: super::csv::targets_from_strings(
            raw,
            None,
            Some(super::Task::Classification),
            "label",
            &images.display().to_string(),
        )?,
        feature_names: Vec::new(),
        source: images.display().to_string(),
        target_scale: None,
    })
}

#[cfg(test)]
pub(crate) fn write_idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
