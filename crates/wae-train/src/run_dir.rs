//! The layout of a run directory, in one place: what `wae train` writes, what the other
//! `wae` commands read and add, and what `cargo xtask reproduce` looks for.
//!
//! ```text
//! RUN/config.toml            the config the run was started with
//! RUN/metrics.jsonl          one JSON line per logged step
//! RUN/checkpoints/latest     the name of the newest checkpoint
//! RUN/checkpoints/step-N/    model, optimiser, config, state, manifest (see `checkpoint`)
//! RUN/eval.json              `wae eval` (or the end-of-training evaluation)
//! RUN/<picture>.png          samples.png, reconstructions.png, ... (`wae sample`, ...)
//! RUN/done.json              written by `cargo xtask reproduce` when a run is finished
//! RUN/.wae.lock              the writer's lock (`RunLock`)
//! ```

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, CHECKPOINTS_DIR, CONFIG_FILE, LATEST_FILE};
use crate::metrics::METRICS_FILE;
use crate::run_lock::RunLock;
use crate::trainer::EVAL_FILE;
use crate::{Error, Result};

/// The marker `cargo xtask reproduce` writes into a finished run.
pub const DONE_FILE: &str = "done.json";

/// A run directory (it need not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `RUN/config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// `RUN/metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join(METRICS_FILE)
    }

    /// `RUN/eval.json`.
    pub fn eval(&self) -> PathBuf {
        self.root.join(EVAL_FILE)
    }

    /// `RUN/done.json`.
    pub fn done(&self) -> PathBuf {
        self.root.join(DONE_FILE)
    }

    /// `RUN/<name>` for a picture or other output file.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `RUN/checkpoints`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join(CHECKPOINTS_DIR)
    }

    /// `RUN/checkpoints/latest`, the pointer to the newest checkpoint.
    pub fn latest_pointer(&self) -> PathBuf {
        self.checkpoints().join(LATEST_FILE)
    }

    /// Whether a checkpoint was ever completed here (the `latest` pointer exists).
    pub fn has_checkpoint(&self) -> bool {
        self.latest_pointer().is_file()
    }

    /// The newest complete checkpoint's directory, `None` when there is none.
    pub fn latest_checkpoint(&self) -> Result<Option<PathBuf>> {
        checkpoint::latest_checkpoint_dir(&self.root)
    }

    /// Every complete checkpoint as `(step, directory)`, oldest first.
    pub fn complete_checkpoints(&self) -> Vec<(u64, PathBuf)> {
        checkpoint::complete_checkpoints(&self.root)
    }

    /// Takes the run directory's writer lock for `command` (see [`RunLock`]).
    pub fn lock(&self, command: &str) -> Result<RunLock> {
        RunLock::acquire(&self.root, command)
    }

    /// The newest checkpoint, or an error naming the directory that says what to do.
    pub fn require_checkpoint(&self) -> Result<PathBuf> {
        self.latest_checkpoint()?.ok_or_else(|| Error::Io {
            path: self.checkpoints(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no checkpoint found (is this a run directory of `wae train`?)",
            ),
        })
    }
}

impl AsRef<Path> for RunDir {
    fn as_ref(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_one_the_trainer_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path().join("run"));
        let mut cfg = crate::preset("mnist-wae-mmd-smoke").unwrap();
        cfg.training.max_steps = Some(2);
        cfg.training.eval_examples = 16;
        let mut opts = crate::TrainOptions::new(run.path());
        opts.progress = false;
        opts.data_dir = Some(wae_data::testing::mnist_dir());
        assert!(!run.has_checkpoint());
        assert!(
            run.require_checkpoint()
                .unwrap_err()
                .to_string()
                .contains("no checkpoint")
        );
        crate::train(&cfg, &opts).unwrap();
        assert!(run.config().is_file());
        assert!(run.metrics().is_file());
        assert!(run.eval().is_file());
        assert!(run.has_checkpoint());
        let newest = run.require_checkpoint().unwrap();
        assert_eq!(run.complete_checkpoints().last().unwrap().1, newest);
        assert!(newest.starts_with(run.checkpoints()));
        assert!(!run.done().exists(), "only reproduce marks a run done");
        let _lock = run.lock("test").unwrap();
        assert!(run.lock("second").is_err(), "one writer at a time");
    }
}
