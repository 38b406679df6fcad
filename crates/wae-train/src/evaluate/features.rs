//! FID, KID and precision/recall of generated images against real ones in a feature
//! network's space: the MNIST classifier's (128-d) or Inception-v3's pool3 (2048-d).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use wae_metrics::mnist_classifier::MnistClassifier;
use wae_metrics::{GaussianStats, InceptionV3, frechet_distance, precision_recall};

use super::FeatureScores;
use crate::trained::BATCH;
use crate::{Error, Result};

/// The error of feature weights that did not load.
fn weights_error(what: &str, path: &Path, e: wae_metrics::Error) -> Error {
    Error::FeatureWeights {
        what: what.into(),
        path: PathBuf::from(path),
        reason: e.to_string(),
    }
}

/// Applies `features` to `images` (host, `(N, C, H, W)`) in batches on `device`;
/// returns host `(N, D)`.
pub fn batched_features(
    images: &Tensor,
    device: &Device,
    features: impl Fn(&Tensor) -> wae_metrics::Result<Tensor>,
) -> Result<Tensor> {
    // Detached batch by batch (see `map_batches`): the networks' weights are variables.
    Ok(wae_metrics::map_batches(images, BATCH, device, features)?)
}

/// FID, precision/recall and KID of `generated` features against `real` ones (host `(N, D)`):
/// what `wae eval` reports in each feature space (and `cargo xtask bench` times).
pub fn feature_scores(real: &Tensor, generated: &Tensor) -> Result<FeatureScores> {
    let fid = frechet_distance(
        &GaussianStats::from_tensor(real)?,
        &GaussianStats::from_tensor(generated)?,
    )?;
    let pr = precision_recall(real, generated)?;
    let kid = wae_metrics::kid(
        &wae_metrics::disentanglement::codes_from_tensor(real)?,
        &wae_metrics::disentanglement::codes_from_tensor(generated)?,
        &wae_metrics::KidConfig::default(),
    )?;
    Ok(FeatureScores {
        fid,
        precision: pr.precision,
        recall: pr.recall,
        feature_dim: real.dim(1)?,
        kid: Some(kid),
    })
}

/// Scores of each set of `samples` against `real` in the MNIST classifier's features
/// (weights at `path`, run on `device`; the real images' features computed once).
pub(super) fn classifier_scores(
    path: &Path,
    device: &Device,
    real: &Tensor,
    samples: &[&Tensor],
) -> Result<Vec<FeatureScores>> {
    let net = MnistClassifier::load(path, device)
        .map_err(|e| weights_error("the MNIST classifier", path, e))?;
    let real_f = batched_features(real, device, |x| net.features(x))?;
    samples
        .iter()
        .map(|s| feature_scores(&real_f, &batched_features(s, device, |x| net.features(x))?))
        .collect()
}

/// Scores of each set of `samples` against `real` in Inception-v3's pool3 features.
pub(super) fn inception_scores(
    path: &Path,
    device: &Device,
    real: &Tensor,
    samples: &[&Tensor],
) -> Result<Vec<FeatureScores>> {
    let net = InceptionV3::load(path, device)
        .map_err(|e| weights_error("the Inception weights", path, e))?;
    let real_f = net.features_batched(real, 50, device)?;
    samples
        .iter()
        .map(|s| feature_scores(&real_f, &net.features_batched(s, 50, device)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_features_keep_no_forward_graph() {
        // Features of a variable's output would keep each batch's activations alive.
        let w = candle_core::Var::ones((3, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let images =
            Tensor::ones((BATCH + 7, 1, 1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let out = batched_features(&images, &Device::Cpu, |x| {
            Ok(x.flatten_from(1)?.matmul(&w.t()?)?)
        })
        .unwrap();
        assert_eq!(out.dims(), [BATCH + 7, 3]);
        assert!(
            !out.track_op(),
            "the features still hold their forward graph"
        );
        assert_eq!(
            out.sum_all().unwrap().to_scalar::<f32>().unwrap(),
            ((BATCH + 7) * 6) as f32
        );
    }
}
