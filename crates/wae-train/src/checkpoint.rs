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

/// The content of `manifest.json`: a digest for each file of the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Size and SHA-256 of every file of the checkpoint, keyed by file name.
    pub files: BTreeMap<String, FileDigest>,
}

/// Size and SHA-256 of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

impl FileDigest {
    /// Digest of a byte buffer.
    pub fn of(data: &[u8]) -> Self {
        Self {
            bytes: data.len() as u64,
            sha256: wae_io::sha256_hex(data),
        }
    }
}

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

fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
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

/// Removes the `step-*.partial` folders a crash mid-write left in `root` (a run's
/// `checkpoints` folder).
fn remove_partials(root: &Path) -> Result<()> {
    let entries = fs::read_dir(root).map_err(io_err(root))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("step-") && name.ends_with(".partial") {
            let path = e.path();
            tracing::info!(path = %path.display(), "removing a checkpoint left half-written by an earlier crash");
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// The step of a checkpoint folder name `step-NNNNNNNN` (`None` for anything else,
/// `.partial` folders included).
pub fn step_of_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The complete checkpoints of a run, oldest first: `step-*` folders (not `.partial`)
/// holding every file a checkpoint has. Their contents are verified only on load.
pub fn complete_checkpoints(run_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(run_dir.join(CHECKPOINTS_DIR)) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if let Some(step) = step_of_dir_name(&name)
                && CHECKPOINT_FILES.iter().all(|f| path.join(f).is_file())
            {
                out.push((step, path));
            }
        }
    }
    out.sort();
    out
}

/// If `path` is a checkpoint folder `RUN/checkpoints/step-N`, returns `RUN`.
pub fn run_dir_of_checkpoint(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    step_of_dir_name(&name)?;
    let parent = path.parent()?;
    if parent.file_name()? != CHECKPOINTS_DIR || !path.join(STATE_FILE).is_file() {
        return None;
    }
    parent.parent().map(Path::to_path_buf)
}

/// The checkpoint to resume a run from: the one `latest` names. When `latest` is
/// missing or damaged but complete checkpoints exist, the error lists them and the
/// command that resumes from the newest.
pub fn resume_checkpoint_dir(run_dir: &Path) -> Result<PathBuf> {
    let problem = match latest_checkpoint_dir(run_dir) {
        Ok(Some(dir)) => return Ok(dir),
        Ok(None) => format!("{CHECKPOINTS_DIR}/{LATEST_FILE} is missing"),
        Err(e) => e.to_string(),
    };
    let complete = complete_checkpoints(run_dir);
    let Some((_, newest)) = complete.last() else {
        return Err(Error::Io {
            path: run_dir.join(CHECKPOINTS_DIR).join(LATEST_FILE),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no checkpoint to resume from (was the run started with `wae train`?)",
            ),
        });
    };
    Err(Error::NoLatestCheckpoint {
        run_dir: run_dir.to_path_buf(),
        problem,
        complete: complete
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        newest: newest.clone(),
    })
}

/// Makes the checkpoint `dir` of `run_dir` the newest: points `latest` at it, then
/// removes the checkpoints of later steps (they continue the run from a point it is
/// being resumed before). Returns the removed folders.
pub fn rewind_to(run_dir: &Path, dir: &Path, step: u64) -> Result<Vec<PathBuf>> {
    let root = run_dir.join(CHECKPOINTS_DIR);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| step_dir_name(step));
    wae_io::write_atomic(&root.join(LATEST_FILE), format!("{name}\n").as_bytes())?;
    let mut removed = Vec::new();
    for (s, path) in complete_checkpoints(run_dir) {
        if s > step {
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// The newest complete checkpoint of a run, if any.
pub fn latest_checkpoint_dir(run_dir: &Path) -> Result<Option<PathBuf>> {
    let pointer = run_dir.join(CHECKPOINTS_DIR).join(LATEST_FILE);
    if !pointer.exists() {
        return Ok(None);
    }
    let name = fs::read_to_string(&pointer).map_err(io_err(&pointer))?;
    let name = name.trim();
    if name.is_empty() || name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return Err(Error::CorruptCheckpoint {
            path: pointer,
            reason: format!("it should name a checkpoint directory, found {name:?}"),
        });
    }
    let dir = run_dir.join(CHECKPOINTS_DIR).join(name);
    if !dir.is_dir() {
        return Err(Error::CorruptCheckpoint {
            path: pointer,
            reason: format!("it names {}, which does not exist", dir.display()),
        });
    }
    Ok(Some(dir))
}

/// Checks `bytes` (the content of `path`) against `expected`, the digest recorded in
/// `recorded_in`.
fn verify(path: &Path, bytes: &[u8], expected: &FileDigest, recorded_in: &str) -> Result<()> {
    let got = FileDigest::of(bytes);
    if got.bytes != expected.bytes {
        return Err(Error::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason: format!(
                "it has {} bytes, {} were written (truncated, overwritten or edited; \
                 sizes recorded in {recorded_in})",
                got.bytes, expected.bytes
            ),
        });
    }
    if got.sha256 != expected.sha256 {
        return Err(Error::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason: format!(
                "SHA-256 {} does not match the recorded {} (in {recorded_in}): the file was \
                 changed after it was written. A checkpoint is not edited: resume it with \
                 --config to change what may change, or start a new run",
                got.sha256, expected.sha256
            ),
        });
    }
    Ok(())
}

fn read_verified(dir: &Path, file: &str, state: &TrainState) -> Result<Vec<u8>> {
    let path = dir.join(file);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let expected = state
        .files
        .get(file)
        .ok_or_else(|| Error::CorruptCheckpoint {
            path: dir.join(STATE_FILE),
            reason: format!("no digest recorded for {file}"),
        })?;
    verify(&path, &bytes, expected, STATE_FILE)?;
    Ok(bytes)
}

/// The checkpoint's files as verified bytes, keyed by name: against `manifest.json`
/// when there is one (every file), else against `state.json` (the tensor files
/// only, with a warning).
fn read_checkpoint_files(dir: &Path) -> Result<HashMap<&'static str, Vec<u8>>> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let read = |file: &str| -> Result<Vec<u8>> {
        let path = dir.join(file);
        fs::read(&path).map_err(io_err(&path))
    };
    let mut out = HashMap::new();
    if manifest_path.is_file() {
        let text = fs::read_to_string(&manifest_path).map_err(io_err(&manifest_path))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| Error::CorruptCheckpoint {
                path: manifest_path.clone(),
                reason: format!("cannot parse: {e}"),
            })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(Error::CorruptCheckpoint {
                path: manifest_path,
                reason: format!(
                    "format {} is not the supported format {MANIFEST_FORMAT}",
                    manifest.format
                ),
            });
        }
        for file in CHECKPOINT_FILES {
            let expected = manifest
                .files
                .get(file)
                .ok_or_else(|| Error::CorruptCheckpoint {
                    path: manifest_path.clone(),
                    reason: format!("it records no digest for {file}"),
                })?;
            let bytes = read(file)?;
            verify(&dir.join(file), &bytes, expected, MANIFEST_FILE)?;
            out.insert(file, bytes);
        }
        return Ok(out);
    }
    tracing::warn!(
        checkpoint = %dir.display(),
        "this checkpoint has no {MANIFEST_FILE} (it was written by an older wae): its tensor \
         files are verified, its {CONFIG_FILE} and {STATE_FILE} are not"
    );
    out.insert(STATE_FILE, read(STATE_FILE)?);
    out.insert(CONFIG_FILE, read(CONFIG_FILE)?);
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};

    fn state(step: u64) -> TrainState {
        TrainState {
            format: STATE_FORMAT,
            step,
            epoch: 0,
            batch_in_epoch: step,
            batches_per_epoch: 100,
            train_examples: 1000,
            seed: 1,
            rng: "derived".into(),
            schedule: ScheduleState::default(),
            pretrain_done: false,
            epoch_loss_sum: 0.25,
            epoch_loss_count: 3,
            elapsed_seconds: 1.5,
            files: BTreeMap::new(),
        }
    }

    fn tensors() -> HashMap<String, Tensor> {
        let dev = Device::Cpu;
        let mut m = HashMap::new();
        m.insert(
            "a.weight".to_string(),
            Tensor::new(&[[1f32, 2.0], [3.0, 4.5]], &dev).unwrap(),
        );
        m.insert(
            "a.bias".to_string(),
            Tensor::new(&[0.1f32, -0.2], &dev).unwrap(),
        );
        m
    }

    #[test]
    fn round_trip_prune_and_latest() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(io_err(Path::new("tmp")))?;
        let t = tensors();
        for step in [10, 20, 30] {
            save_checkpoint(
                tmp.path(),
                CheckpointData {
                    state: state(step),
                    config_text: "x = 1\n",
                    model: &t,
                    optimizer: &t,
                },
                2,
            )?;
        }
        let latest = latest_checkpoint_dir(tmp.path())?.expect("a checkpoint");
        assert!(latest.ends_with("step-00000030"));
        assert!(!tmp.path().join("checkpoints/step-00000010").exists());
        assert!(tmp.path().join("checkpoints/step-00000020").exists());
        let ck = load_checkpoint(&latest, &Device::Cpu)?;
        assert_eq!(ck.state.step, 30);
        assert_eq!(ck.state.epoch_loss_sum, 0.25);
        assert_eq!(ck.config_text, "x = 1\n");
        assert_eq!(
            ck.model["a.weight"].to_vec2::<f32>()?,
            vec![vec![1.0, 2.0], vec![3.0, 4.5]]
        );
        // restore into vars
        let w = Var::zeros((2, 2), DType::F32, &Device::Cpu)?;
        let b = Var::zeros(2, DType::F32, &Device::Cpu)?;
        let vars = vec![
            ("a.bias".to_string(), b.clone()),
            ("a.weight".to_string(), w.clone()),
        ];
        restore_vars(&vars, &ck.model, &latest.join(MODEL_FILE))?;
        assert_eq!(b.as_tensor().to_vec1::<f32>()?, vec![0.1, -0.2]);
        Ok(())
    }

    fn saved(tmp: &Path) -> PathBuf {
        let t = tensors();
        save_checkpoint(
            tmp,
            CheckpointData {
                state: state(5),
                config_text: "",
                model: &t,
                optimizer: &t,
            },
            1,
        )
        .unwrap()
    }

    #[test]
    fn truncated_file_is_reported_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = saved(tmp.path());
        let model = dir.join(MODEL_FILE);
        let bytes = fs::read(&model).unwrap();
        fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
        let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn flipped_byte_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = saved(tmp.path());
        let path = dir.join(OPTIMIZER_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("optimizer.safetensors"), "{err}");
        assert!(err.contains("SHA-256"), "{err}");
    }

    #[test]
    fn garbage_state_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = saved(tmp.path());
        fs::write(dir.join(STATE_FILE), "{ not json").unwrap();
        let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }

    #[test]
    fn shape_mismatch_names_variable_and_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = saved(tmp.path());
        let ck = load_checkpoint(&dir, &Device::Cpu).unwrap();
        let w = Var::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let b = Var::zeros(2, DType::F32, &Device::Cpu).unwrap();
        let vars = vec![("a.bias".to_string(), b), ("a.weight".to_string(), w)];
        let err = restore_vars(&vars, &ck.model, &dir.join(MODEL_FILE))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.weight") && err.contains("model.safetensors"),
            "{err}"
        );
    }

    #[test]
    fn every_file_is_covered_by_the_manifest() {
        for (file, edit) in [
            (CONFIG_FILE, "seed = 7\n"),
            (STATE_FILE, "{}"),
            (MODEL_FILE, "x"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = saved(tmp.path());
            let manifest: Manifest =
                serde_json::from_str(&fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap())
                    .unwrap();
            let covered: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
            let mut all = CHECKPOINT_FILES.to_vec();
            all.sort_unstable();
            assert_eq!(covered, all);
            fs::write(dir.join(file), edit).unwrap();
            let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
            assert!(err.contains(&dir.join(file).display().to_string()), "{err}");
            assert!(err.contains(MANIFEST_FILE), "{err}");
        }
    }

    #[test]
    fn an_edit_of_the_same_length_is_refused_too() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tensors();
        let dir = save_checkpoint(
            tmp.path(),
            CheckpointData {
                state: state(5),
                config_text: "seed = 1\n",
                model: &t,
                optimizer: &t,
            },
            1,
        )
        .unwrap();
        fs::write(dir.join(CONFIG_FILE), "seed = 2\n").unwrap();
        let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
        assert!(
            err.contains("config.toml") && err.contains("SHA-256"),
            "{err}"
        );
    }

    #[test]
    fn a_checkpoint_without_manifest_is_still_read() {
        // Written before manifests existed: the tensor files are still verified
        // through state.json, config.toml and state.json are read as they are.
        let tmp = tempfile::tempdir().unwrap();
        let dir = saved(tmp.path());
        fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        fs::write(dir.join(CONFIG_FILE), "seed = 7\n").unwrap();
        let ck = load_checkpoint(&dir, &Device::Cpu).unwrap();
        assert_eq!(ck.config_text, "seed = 7\n");
        let model = dir.join(MODEL_FILE);
        let bytes = fs::read(&model).unwrap();
        fs::write(&model, &bytes[..bytes.len() - 1]).unwrap();
        let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
    }

    #[test]
    fn partial_folders_are_removed_by_the_next_write() {
        let tmp = tempfile::tempdir().unwrap();
        let left = tmp
            .path()
            .join(CHECKPOINTS_DIR)
            .join("step-00000003.partial");
        fs::create_dir_all(&left).unwrap();
        fs::write(left.join(MODEL_FILE), b"half").unwrap();
        saved(tmp.path());
        assert!(!left.exists());
        let names: Vec<String> = fs::read_dir(tmp.path().join(CHECKPOINTS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
    }

    fn three_checkpoints(run: &Path) {
        let t = tensors();
        for step in [2, 4, 6] {
            save_checkpoint(
                run,
                CheckpointData {
                    state: state(step),
                    config_text: "",
                    model: &t,
                    optimizer: &t,
                },
                5,
            )
            .unwrap();
        }
    }

    #[test]
    fn missing_or_damaged_latest_lists_the_complete_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        three_checkpoints(tmp.path());
        // A crash mid-write leaves a .partial folder: not listed.
        fs::create_dir_all(tmp.path().join("checkpoints/step-00000008.partial")).unwrap();
        let latest = tmp.path().join(CHECKPOINTS_DIR).join(LATEST_FILE);
        assert!(
            resume_checkpoint_dir(tmp.path())
                .unwrap()
                .ends_with("step-00000006")
        );
        for damage in [None, Some("step-00000099\n"), Some("../../etc\n")] {
            match damage {
                None => fs::remove_file(&latest).unwrap(),
                Some(text) => fs::write(&latest, text).unwrap(),
            }
            let err = resume_checkpoint_dir(tmp.path()).unwrap_err().to_string();
            for step in ["step-00000002", "step-00000004", "step-00000006"] {
                assert!(err.contains(step), "{err}");
            }
            assert!(!err.contains("step-00000008"), "{err}");
            let newest = tmp.path().join("checkpoints/step-00000006");
            assert!(
                err.contains(&format!("wae train --resume {}", newest.display())),
                "{err}"
            );
        }
        // Without any checkpoint, the error says there is none.
        let empty = tempfile::tempdir().unwrap();
        let err = resume_checkpoint_dir(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no checkpoint"), "{err}");
    }

    #[test]
    fn rewind_points_latest_at_the_step_and_removes_newer_ones() {
        let tmp = tempfile::tempdir().unwrap();
        three_checkpoints(tmp.path());
        let four = tmp.path().join("checkpoints/step-00000004");
        assert_eq!(run_dir_of_checkpoint(&four).as_deref(), Some(tmp.path()));
        assert_eq!(run_dir_of_checkpoint(tmp.path()), None);
        let removed = rewind_to(tmp.path(), &four, 4).unwrap();
        assert_eq!(removed, vec![tmp.path().join("checkpoints/step-00000006")]);
        assert_eq!(latest_checkpoint_dir(tmp.path()).unwrap(), Some(four));
        let steps: Vec<u64> = complete_checkpoints(tmp.path())
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(steps, vec![2, 4]);
    }
}
