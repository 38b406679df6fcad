//! The checkpoint folders of a run: `checkpoints/step-NNNNNNNN`, the `latest` pointer,
//! the complete ones, resuming, rewinding and the `.partial` leftovers of a crash.

use std::fs;
use std::path::{Path, PathBuf};

use super::{CHECKPOINT_FILES, CHECKPOINTS_DIR, LATEST_FILE, STATE_FILE, io_err};
use crate::{Error, Result};

pub(super) fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Removes the `step-*.partial` folders a crash mid-write left in `root` (a run's
/// `checkpoints` folder).
pub(super) fn remove_partials(root: &Path) -> Result<()> {
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
