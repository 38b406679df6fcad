//! Atomic, verifiable, resumable checkpoints.
//!
//! Layout of a run directory:
//!
//! ```text
//! RUN/config.toml                     the run's full configuration
//! RUN/metrics.jsonl                   one JSON object per logged step
//! RUN/checkpoints/latest              the name of the newest complete checkpoint
//! RUN/checkpoints/step-00000020/
//!     model.safetensors               every network variable (BatchNorm statistics included)
//!     optimizer.safetensors           Adam moments and step counts ("ae." / "disc." prefixes)
//!     config.toml                     the configuration that made it
//!     state.json                      TrainState: step, epoch, data position, schedule, digests
//!     manifest.json                   size and SHA-256 of each of the four files above
//! ```
//!
//! Every file is written to a temporary name, synced and renamed; a checkpoint
//! directory is filled under a `.partial` name and renamed when complete; only
//! then is `latest` switched to it. A crash at any point leaves the previous
//! checkpoint intact, and the `.partial` folder it may leave is removed when the
//! next checkpoint is written.
//!
//! `manifest.json` records the SHA-256 and size of every other file of the
//! checkpoint, so any damage or edit (truncation, flipped bytes, a changed
//! `lambda` in `config.toml`) is refused on load, naming the file. Checkpoints
//! written before the manifest existed are still read: their tensor files are
//! verified against the digests in `state.json`, and a warning says that
//! `config.toml` and `state.json` are not.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::schedule::ScheduleState;
use crate::{Error, Result};

mod folders;
mod manifest;
#[cfg(test)]
mod tests;

pub use folders::{
    complete_checkpoints, latest_checkpoint_dir, resume_checkpoint_dir, rewind_to,
    run_dir_of_checkpoint, step_of_dir_name,
};
use folders::{remove_partials, step_dir_name};
pub use manifest::{FileDigest, Manifest};
use manifest::{read_checkpoint_files, read_verified};

/// Format version written into `state.json`.
pub const STATE_FORMAT: u32 = 1;
/// File names inside a checkpoint directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// Optimiser state file name.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Configuration file name (also used at the top of a run directory).
pub const CONFIG_FILE: &str = "config.toml";
/// Training state file name.
pub const STATE_FILE: &str = "state.json";
/// Subdirectory of a run that holds checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Pointer file naming the newest checkpoint.
pub const LATEST_FILE: &str = "latest";
/// File of a checkpoint listing the digest of every other file in it.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Format version written into `manifest.json`.
pub const MANIFEST_FORMAT: u32 = 1;
/// The files every checkpoint holds (besides its manifest).
pub const CHECKPOINT_FILES: [&str; 4] = [MODEL_FILE, OPTIMIZER_FILE, CONFIG_FILE, STATE_FILE];

/// Everything about a run's progress that is not a tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// Auto-encoder updates done so far (the next step to run has this index).
    pub step: u64,
    /// Epoch the next step belongs to (0-based).
    pub epoch: u64,
    /// Data-order position: batches of `epoch` already consumed.
    pub batch_in_epoch: u64,
    /// Batches per epoch (drop-last), to check the data did not change.
    pub batches_per_epoch: u64,
    /// Number of training examples, to check the data did not change.
    pub train_examples: u64,
    /// The run's seed.
    pub seed: u64,
    /// How randomness is reproduced (documentation for readers of the file).
    pub rng: String,
    /// Learning-rate schedule state.
    pub schedule: ScheduleState,
    /// Whether encoder pretraining has been done.
    pub pretrain_done: bool,
    /// Sum of the total loss over the steps of the current epoch so far.
    pub epoch_loss_sum: f64,
    /// Steps summed in `epoch_loss_sum`.
    pub epoch_loss_count: u64,
    /// Wall-clock seconds spent training before this checkpoint.
    pub elapsed_seconds: f64,
    /// Digests of the tensor files, keyed by file name.
    pub files: BTreeMap<String, FileDigest>,
}

/// A checkpoint read back from disk and verified.
#[derive(Debug)]
pub struct Checkpoint {
    /// Its directory.
    pub dir: PathBuf,
    /// The training state.
    pub state: TrainState,
    /// The configuration text stored with it.
    pub config_text: String,
    /// Model variables by name.
    pub model: HashMap<String, Tensor>,
    /// Optimiser tensors by name.
    pub optimizer: HashMap<String, Tensor>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Serialises named tensors in the safetensors format (keys sorted).
pub fn safetensors_bytes(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    let mut items: Vec<(&String, &Tensor)> = tensors.iter().collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    let mut cpu = Vec::with_capacity(items.len());
    for (k, t) in items {
        cpu.push((k.clone(), t.to_device(&Device::Cpu)?.contiguous()?));
    }
    safetensors::tensor::serialize(cpu.iter().map(|(k, t)| (k.as_str(), t)), None)
        .map_err(|e| Error::InvalidConfig(format!("cannot serialise tensors to safetensors: {e}")))
}

/// What to write in a checkpoint.
#[derive(Debug)]
pub struct CheckpointData<'a> {
    /// Training state; its `files` field is filled in by [`save_checkpoint`].
    pub state: TrainState,
    /// The configuration, as TOML.
    pub config_text: &'a str,
    /// Model variables.
    pub model: &'a HashMap<String, Tensor>,
    /// Optimiser tensors.
    pub optimizer: &'a HashMap<String, Tensor>,
}

/// Writes a checkpoint under `run_dir/checkpoints/step-NNNNNNNN`, points `latest`
/// at it and removes older checkpoints beyond the newest `keep` (at least 1).
/// Returns the checkpoint directory.
pub fn save_checkpoint(run_dir: &Path, data: CheckpointData<'_>, keep: usize) -> Result<PathBuf> {
    let root = run_dir.join(CHECKPOINTS_DIR);
    fs::create_dir_all(&root).map_err(io_err(&root))?;
    remove_partials(&root)?;
    let name = step_dir_name(data.state.step);
    let partial = root.join(format!("{name}.partial"));
    fs::create_dir_all(&partial).map_err(io_err(&partial))?;

    let model_bytes = safetensors_bytes(data.model)?;
    let optim_bytes = safetensors_bytes(data.optimizer)?;
    let mut state = data.state;
    state.files.clear();
    state
        .files
        .insert(MODEL_FILE.into(), FileDigest::of(&model_bytes));
    state
        .files
        .insert(OPTIMIZER_FILE.into(), FileDigest::of(&optim_bytes));
    let state_json = serde_json::to_string_pretty(&state)
        .map_err(|e| Error::InvalidConfig(format!("cannot serialise state: {e}")))?;
    let files: [(&str, &[u8]); 4] = [
        (MODEL_FILE, &model_bytes),
        (OPTIMIZER_FILE, &optim_bytes),
        (CONFIG_FILE, data.config_text.as_bytes()),
        (STATE_FILE, state_json.as_bytes()),
    ];
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT,
        files: BTreeMap::new(),
    };
    for (file, bytes) in files {
        wae_io::write_atomic(&partial.join(file), bytes)?;
        manifest.files.insert(file.into(), FileDigest::of(bytes));
    }
    let manifest_json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::InvalidConfig(format!("cannot serialise the manifest: {e}")))?;
    wae_io::write_atomic(&partial.join(MANIFEST_FILE), manifest_json.as_bytes())?;

    let final_dir = root.join(&name);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(io_err(&final_dir))?;
    }
    fs::rename(&partial, &final_dir).map_err(io_err(&final_dir))?;
    wae_io::sync_dir(&root);
    wae_io::write_atomic(&root.join(LATEST_FILE), format!("{name}\n").as_bytes())?;

    // Prune: keep the newest `keep` step directories (by step number).
    let mut steps: Vec<(u64, PathBuf)> = Vec::new();
    if let Ok(entries) = fs::read_dir(&root) {
        for e in entries.flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            if let Some(num) = fname.strip_prefix("step-")
                && let Ok(n) = num.parse::<u64>()
            {
                steps.push((n, e.path()));
            }
        }
    }
    steps.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (_, old) in steps.into_iter().skip(keep.max(1)) {
        if old != final_dir {
            let _ = fs::remove_dir_all(&old);
        }
    }
    Ok(final_dir)
}

fn parse_tensors(path: &Path, bytes: &[u8], device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load_buffer(bytes, device).map_err(|e| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: format!("not a valid safetensors file: {e}"),
    })
}

/// Reads and verifies the checkpoint in `dir` (a `step-*` directory), loading tensors to `device`.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let mut files = read_checkpoint_files(dir)?;
    let state_path = dir.join(STATE_FILE);
    let text = |file: &str, bytes: Option<Vec<u8>>| -> Result<String> {
        String::from_utf8(bytes.unwrap_or_default()).map_err(|_| Error::CorruptCheckpoint {
            path: dir.join(file),
            reason: "it is not UTF-8 text".into(),
        })
    };
    let state_text = text(STATE_FILE, files.remove(STATE_FILE))?;
    let state: TrainState =
        serde_json::from_str(&state_text).map_err(|e| Error::CorruptCheckpoint {
            path: state_path.clone(),
            reason: format!("cannot parse: {e}"),
        })?;
    if state.format != STATE_FORMAT {
        return Err(Error::CorruptCheckpoint {
            path: state_path,
            reason: format!(
                "format {} is not the supported format {STATE_FORMAT}",
                state.format
            ),
        });
    }
    let config_text = text(CONFIG_FILE, files.remove(CONFIG_FILE))?;
    let model_bytes = match files.remove(MODEL_FILE) {
        Some(b) => b,
        None => read_verified(dir, MODEL_FILE, &state)?,
    };
    let model = parse_tensors(&dir.join(MODEL_FILE), &model_bytes, device)?;
    let optim_bytes = match files.remove(OPTIMIZER_FILE) {
        Some(b) => b,
        None => read_verified(dir, OPTIMIZER_FILE, &state)?,
    };
    let optimizer = parse_tensors(&dir.join(OPTIMIZER_FILE), &optim_bytes, device)?;
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        state,
        config_text,
        model,
        optimizer,
    })
}

/// Copies `tensors` into the variables of `vars` (name, var); every variable
/// must be present with its exact shape and the file must hold nothing else.
pub fn restore_vars(
    vars: &[(String, candle_core::Var)],
    tensors: &HashMap<String, Tensor>,
    file: &Path,
) -> Result<()> {
    let mismatch = |reason: String| Error::CheckpointMismatch {
        path: file.to_path_buf(),
        reason,
    };
    for (name, var) in vars {
        let t = tensors.get(name).ok_or_else(|| {
            mismatch(format!(
                "the model has a variable `{name}` that the checkpoint lacks \
                 (was it made with a different architecture?)"
            ))
        })?;
        if t.dims() != var.dims() {
            return Err(mismatch(format!(
                "variable `{name}` has shape {:?} in the checkpoint but {:?} in the model \
                 (was it made with a different architecture or width?)",
                t.dims(),
                var.dims()
            )));
        }
    }
    if tensors.len() != vars.len() {
        let known: std::collections::HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
        let mut extra: Vec<&str> = tensors
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        extra.sort_unstable();
        return Err(mismatch(format!(
            "the checkpoint has variables the model lacks: {}",
            extra.join(", ")
        )));
    }
    for (name, var) in vars {
        if let Some(t) = tensors.get(name) {
            var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
    }
    Ok(())
}
