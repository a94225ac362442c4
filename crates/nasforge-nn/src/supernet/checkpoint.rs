//! A supernet's training stored after every epoch, so that a run killed at any moment goes on
//! from its last finished epoch and ends with the weights it would have had uninterrupted.
//!
//! The folder holds `state.json` (what was trained, how far, the loop's state and every
//! epoch's numbers) and the weights and optimiser state of the epoch it names
//! (`epoch-N.bpk`, `epoch-N.optim.bpk`). An epoch's files are written first, then `state.json`
//! is replaced in one rename, then older epochs' files are removed: whatever moment a kill
//! comes, `state.json` names files that are complete.

use super::{ArchConfig, ArchState};
use crate::model::Network;
use crate::train::loop_::Snapshot;
use crate::train::{EpochStats, LoopState, TrainConfig, TrainError};
use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::prelude::*;
use nasforge_core::netspec::supernet::SuperSpec;
use nasforge_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The format of `state.json`.
const FORMAT: u32 = 1;

/// Where a supernet's training is stored (created on the first save).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    dir: PathBuf,
}

/// What a checkpoint is of: a resume must find the same, or it would continue another
/// training with these weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// How the supernet is trained (`single_path`, ...).
    pub method: String,
    /// The training seed.
    pub seed: u64,
    /// Options per choice of the supernet.
    pub options: Vec<usize>,
    /// The supernet's parameter count.
    pub params: u64,
    /// The recipe.
    pub recipe: TrainConfig,
    /// The architecture parameters' settings (DARTS, GDAS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<ArchConfig>,
    /// The choices a few-shot split holds, with their values (none for a whole supernet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<(usize, u16)>,
}

#[derive(Serialize, Deserialize)]
struct State {
    format: u32,
    identity: Identity,
    #[serde(rename = "loop")]
    loop_state: LoopState,
    epochs: Vec<EpochStats>,
    weights: String,
    optimizer: String,
    /// The architecture parameters and their history (DARTS, GDAS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arch: Option<ArchState>,
}

/// A stored training to continue.
pub(crate) struct Stored {
    pub net: Network,
    pub loop_state: LoopState,
    pub optimizer: OptimizerRecord,
    pub epochs: Vec<EpochStats>,
    pub arch: Option<ArchState>,
}

impl Checkpoint {
    /// The checkpoint in folder `dir` (a run's `supernet/`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Checkpoint { dir: dir.into() }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The epochs stored so far (none when nothing is stored), without loading weights: what
    /// `report` reads.
    pub fn epochs(&self) -> Result<Vec<EpochStats>> {
        Ok(self.read_state()?.map(|s| s.epochs).unwrap_or_default())
    }

    /// The architecture parameters stored so far (DARTS, GDAS; `None` for the other methods
    /// or when nothing is stored), with every finished epoch's derived arch.
    pub fn arch(&self) -> Result<Option<ArchState>> {
        Ok(self.read_state()?.and_then(|s| s.arch))
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn read_state(&self) -> Result<Option<State>> {
        let path = self.state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let state: State = serde_json::from_str(&text).map_err(|e| self.damaged(&e))?;
        if state.format != FORMAT {
            return Err(self.damaged(&format!(
                "format {} (this nasforge reads {FORMAT})",
                state.format
            )));
        }
        Ok(Some(state))
    }

    pub(crate) fn damaged(&self, why: &dyn std::fmt::Display) -> Error {
        Error::invalid(format!(
            "the supernet checkpoint in {} cannot be read ({why}). Move the folder away to train \
             the supernet again from its first epoch (the same seed gives the same weights)",
            self.dir.display()
        ))
    }

    /// The stored training, if any, checked against `identity`; its weights are loaded into
    /// a network of `sup` on `device`.
    pub(crate) fn load(
        &self,
        identity: &Identity,
        sup: &SuperSpec,
        device: &Device,
    ) -> Result<Option<Stored>> {
        let Some(state) = self.read_state()? else {
            return Ok(None);
        };
        if &state.identity != identity {
            return Err(Error::invalid(format!(
                "{} holds a supernet trained otherwise ({}); it cannot continue this one. Resume \
                 with the run's own settings, or move the folder away to train anew",
                self.dir.display(),
                differences(&state.identity, identity)
            )));
        }
        let file = |name: &str| -> Result<PathBuf> {
            // Names written by `save`: nothing that leaves the folder.
            if name.contains(['/', '\\']) || name.starts_with('.') {
                return Err(self.damaged(&format!("a file name `{name}`")));
            }
            Ok(self.dir.join(name))
        };
        let weights = file(&state.weights)?;
        let net = Network::new(sup.spec(), device)
            .share_weights(sup)
            .try_load_file(&weights)
            .map_err(|e| self.damaged(&format!("{}: {e}", weights.display())))?;
        let optim_path = file(&state.optimizer)?;
        let optimizer = OptimizerRecord::load(&optim_path)
            .map_err(|e| self.damaged(&format!("{}: {e}", optim_path.display())))?;
        Ok(Some(Stored {
            net,
            loop_state: state.loop_state,
            optimizer,
            epochs: state.epochs,
            arch: state.arch,
        }))
    }

    /// Stores the loop after an epoch (`epochs`: every epoch so far), then removes the
    /// previous epoch's files.
    pub(crate) fn save(
        &self,
        identity: &Identity,
        snap: Snapshot<'_>,
        epochs: &[EpochStats],
        arch: Option<&ArchState>,
    ) -> std::result::Result<(), TrainError> {
        let io = |path: &Path, e: std::io::Error| TrainError::Invalid(Error::io(path, e));
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let n = snap.state.epochs_done;
        let weights = format!("epoch-{n}.bpk");
        let optimizer = format!("epoch-{n}.optim.bpk");
        let cannot = |what: &str, e: &dyn std::fmt::Display| {
            TrainError::Invalid(Error::invalid(format!(
                "cannot write the supernet's {what} into {}: {e}",
                self.dir.display()
            )))
        };
        snap.model
            .clone()
            .save_file(self.dir.join(&weights))
            .map_err(|e| cannot("weights", &e))?;
        snap.optimizer
            .save(self.dir.join(&optimizer))
            .map_err(|e| cannot("optimiser state", &e))?;
        let state = State {
            format: FORMAT,
            identity: identity.clone(),
            loop_state: snap.state,
            epochs: epochs.to_vec(),
            weights: weights.clone(),
            optimizer: optimizer.clone(),
            arch: arch.cloned(),
        };
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_string(&state).expect("serialisable");
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io(&tmp, e))?;
        let path = self.state_path();
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        // Older epochs' files (and any left by a kill between the writes above).
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("epoch-") && name != weights && name != optimizer {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// The fields in which two identities differ, for an error message.
fn differences(stored: &Identity, now: &Identity) -> String {
    let mut out = Vec::new();
    if stored.method != now.method {
        out.push(format!("method {} here {}", stored.method, now.method));
    }
    if stored.seed != now.seed {
        out.push(format!("seed {} here {}", stored.seed, now.seed));
    }
    if stored.options != now.options || stored.params != now.params {
        out.push(format!(
            "a supernet of {} parameters, here {}",
            stored.params, now.params
        ));
    }
    if stored.recipe != now.recipe {
        out.push("another training recipe".into());
    }
    if stored.arch != now.arch {
        out.push("other architecture-parameter settings".into());
    }
    if stored.held != now.held {
        out.push(format!(
            "a split holding (choice, value) {:?}, here {:?}",
            stored.held, now.held
        ));
    }
    out.join("; ")
}
