//! A trained model on disk (`RUN/best/`): what `nasforge predict` needs to rebuild and run it.
//!
//! - `model.json`: space, space parameters, arch, task, input shape, class names, feature
//!   names, normalisation statistics, the fill values of missing features (`--impute`), the
//!   resolution images are resized to (`nasforge scale --resolutions`), the text encoding
//!   (column, vocabulary, sequence length) of a model that reads text, and the data options
//!   the model was trained with;
//! - `arch.json`: the arch in the space's JSON form;
//! - `weights.bpk`: the weights (burn's burnpack format, batch-norm statistics included).

use crate::data::{Imputer, Normalizer, Task, TextEncoding};
use crate::device::DeviceKind;
use crate::model::Network;
use burn::module::Module;
use nasforge_core::space::{self, Space};
use nasforge_core::{Error, Params, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything about a saved model except its weights.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// Space name.
    pub space: String,
    /// Space parameters (`key=value`).
    pub space_params: Vec<String>,
    /// The arch in the space's text form.
    pub arch: String,
    /// Classification or regression.
    pub task: Task,
    /// Input shape `[C, H, W]` or `[F]`.
    pub input_shape: Vec<usize>,
    /// Class labels in output order (classification).
    pub classes: Vec<String>,
    /// The feature columns the model reads, in order (CSV data).
    pub feature_names: Vec<String>,
    /// The target column it was trained to predict.
    pub target: String,
    /// Image shape `HxWxC` given when training on pixel CSVs, if any.
    pub image: Option<[usize; 3]>,
    /// Normalisation statistics of the training rows; `None` for token ids (text), which are
    /// never normalised.
    pub normalizer: Option<Normalizer>,
    /// How passages become token ids (`--text-column`); `None` for numbers and images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextEncoding>,
    /// Fill values of missing feature cells, from the training rows (`--impute`); applied
    /// before normalisation. `None`: the model was trained on complete data, and every cell
    /// it reads must hold a number. (Absent from model.json files older than `--impute`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imputer: Option<Imputer>,
    /// The `[H, W]` the network reads: images as read (`input_shape`) are normalised, then
    /// resized to it (bilinear, [`crate::data::bilinear`]). Set by `nasforge scale
    /// --resolutions`; `None`: the network reads `input_shape` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<[usize; 2]>,
}

impl ModelInfo {
    /// Rebuilds the space and arch.
    pub fn space_and_arch(&self) -> Result<(Box<dyn Space>, nasforge_core::space::Arch)> {
        let s = space::build(&self.space, &Params::parse(&self.space_params)?)?;
        let a = s.parse(&self.arch)?;
        Ok((s, a))
    }
}

/// Writes a model bundle into `dir` (created if needed).
pub fn save(dir: &Path, info: &ModelInfo, model: &Network) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (space, arch) = info.space_and_arch()?;
    let write = |name: &str, text: String| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    write(
        "model.json",
        serde_json::to_string_pretty(info).expect("serialisable"),
    )?;
    write(
        "arch.json",
        serde_json::to_string_pretty(&space.to_json(&arch)).expect("serialisable"),
    )?;
    let weights = dir.join("weights.bpk");
    model.clone().save_file(&weights).map_err(|e| {
        Error::invalid(format!(
            "{}: cannot save the weights: {e}",
            weights.display()
        ))
    })
}

/// Reads a model bundle written by [`save`].
pub fn load(dir: &Path, device: DeviceKind) -> Result<(ModelInfo, Network)> {
    let info_path = dir.join("model.json");
    if !info_path.exists() {
        return Err(Error::invalid(format!(
            "{} is not a saved model (no model.json); point --model at a run's best/ folder",
            dir.display()
        )));
    }
    let text = std::fs::read_to_string(&info_path).map_err(|e| Error::io(&info_path, e))?;
    let info: ModelInfo = serde_json::from_str(&text).map_err(|e| {
        Error::invalid(format!(
            "{}: not a nasforge model description: {e}",
            info_path.display()
        ))
    })?;
    let (space, arch) = info.space_and_arch()?;
    let spec = space.decode(&arch)?;
    let weights = dir.join("weights.bpk");
    let model = Network::new(&spec, &device.device())
        .try_load_file(&weights)
        .map_err(|e| {
            Error::invalid(format!(
                "{}: cannot load the weights: {e}",
                weights.display()
            ))
        })?;
    Ok((info, model))
}
