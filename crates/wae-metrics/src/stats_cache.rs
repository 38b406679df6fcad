//! Cached feature statistics of real data, one safetensors file per
//! (dataset, split, feature-extractor weights).
//!
//! The real-data side of FID is the same for every model evaluated against
//! it, so its mean and covariance are computed once and stored as
//! `mean` (D) and `cov` (D, D) f64 tensors, with the key and the sample count
//! in the safetensors metadata. Loading checks the key, so statistics made
//! with other weights (a different hash) or another split are never used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors};

use crate::{Error, GaussianStats, Result};

const FORMAT: &str = "wae-metrics-gaussian-stats-v1";

/// What a set of cached statistics was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsKey {
    /// Dataset name, e.g. `mnist` or `celeba64`.
    pub dataset: String,
    /// Split, e.g. `test` or `paper-test`.
    pub split: String,
    /// sha256 (hex) of the feature extractor's weights file
    /// (see [`wae_io::sha256_file`]).
    pub weights_sha256: String,
}

impl StatsKey {
    /// Builds a key.
    pub fn new(
        dataset: impl Into<String>,
        split: impl Into<String>,
        weights_sha256: impl Into<String>,
    ) -> Self {
        Self {
            dataset: dataset.into(),
            split: split.into(),
            weights_sha256: weights_sha256.into().to_lowercase(),
        }
    }

    /// File name for these statistics:
    /// `fid-stats_{dataset}_{split}_{first 16 hex digits of the hash}.safetensors`
    /// (characters other than ASCII letters, digits, `-` and `.` become `-`).
    pub fn file_name(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect()
        };
        let hash: String = self.weights_sha256.chars().take(16).collect();
        format!(
            "fid-stats_{}_{}_{}.safetensors",
            clean(&self.dataset),
            clean(&self.split),
            clean(&hash)
        )
    }

    /// `dir` joined with [`StatsKey::file_name`].
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(self.file_name())
    }
}

fn f64_bytes(values: impl Iterator<Item = f64>) -> Vec<u8> {
    values.flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes `stats` with its `key` to `path` (temporary file, then rename).
pub fn save_stats(path: &Path, key: &StatsKey, stats: &GaussianStats) -> Result<()> {
    let d = stats.dim();
    let mean = f64_bytes(stats.mean().iter().copied());
    let cov = f64_bytes(stats.cov().iter().copied());
    let views = vec![
        (
            "mean".to_string(),
            safetensors::tensor::TensorView::new(Dtype::F64, vec![d], &mean)?,
        ),
        (
            "cov".to_string(),
            safetensors::tensor::TensorView::new(Dtype::F64, vec![d, d], &cov)?,
        ),
    ];
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), FORMAT.to_string());
    metadata.insert("dataset".to_string(), key.dataset.clone());
    metadata.insert("split".to_string(), key.split.clone());
    metadata.insert("weights_sha256".to_string(), key.weights_sha256.clone());
    metadata.insert("count".to_string(), stats.count().to_string());
    let bytes = safetensors::serialize(views, Some(metadata))?;
    Ok(wae_io::write_atomic(path, &bytes)?)
}

/// Reads statistics saved by [`save_stats`], checking that they were made for `key`
/// ([`Error::StaleCache`] otherwise).
pub fn load_stats(path: &Path, key: &StatsKey) -> Result<GaussianStats> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)?;
    let meta = header.metadata().clone().unwrap_or_default();
    let stale = |message: String| Error::StaleCache {
        path: path.to_path_buf(),
        message,
    };
    let field = |name: &str| meta.get(name).cloned().unwrap_or_default();
    if field("format") != FORMAT {
        return Err(stale(format!(
            "format is {:?}, not {FORMAT}",
            field("format")
        )));
    }
    for (name, expected) in [
        ("dataset", &key.dataset),
        ("split", &key.split),
        ("weights_sha256", &key.weights_sha256),
    ] {
        if &field(name) != expected {
            return Err(stale(format!(
                "{name} is {:?}, expected {expected:?}",
                field(name)
            )));
        }
    }
    let count: usize = field("count")
        .parse()
        .map_err(|_| stale("missing sample count".into()))?;
    let tensors = SafeTensors::deserialize(&bytes)?;
    let read = |name: &str| -> Result<(Vec<usize>, Vec<f64>)> {
        let view = tensors.tensor(name)?;
        if view.dtype() != Dtype::F64 {
            return Err(stale(format!("{name} is {:?}, not F64", view.dtype())));
        }
        let values = view
            .data()
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a)
            })
            .collect();
        Ok((view.shape().to_vec(), values))
    };
    let (mean_shape, mean) = read("mean")?;
    let (cov_shape, cov) = read("cov")?;
    let d = mean.len();
    if mean_shape != [d] || cov_shape != [d, d] {
        return Err(stale(format!(
            "shapes {mean_shape:?} and {cov_shape:?} do not fit"
        )));
    }
    let cov = Array2::from_shape_vec((d, d), cov).map_err(|e| stale(format!("covariance: {e}")))?;
    GaussianStats::new(Array1::from_vec(mean), cov, count)
}

/// Loads the statistics for `key` from `dir` if a matching file exists;
/// otherwise runs `compute`, saves its result there and returns it. Returns
/// the statistics and whether they came from the cache.
pub fn load_or_compute_stats(
    dir: &Path,
    key: &StatsKey,
    compute: impl FnOnce() -> Result<GaussianStats>,
) -> Result<(GaussianStats, bool)> {
    let path = key.path_in(dir);
    if path.is_file() {
        match load_stats(&path, key) {
            Ok(stats) => return Ok((stats, true)),
            Err(e) => tracing::warn!("ignoring unusable cached statistics: {e}"),
        }
    }
    let stats = compute()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    save_stats(&path, key, &stats)?;
    Ok((stats, false))
}
