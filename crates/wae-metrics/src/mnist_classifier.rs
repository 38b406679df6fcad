//! A small MNIST classifier whose penultimate layer is the feature space of
//! an offline FID for MNIST ("FID-MNIST"): sample quality without Inception.
//!
//! Network (`MnistClassifierConfig::default()`):
//! `conv 3x3 (1 -> 16), ReLU, max-pool 2` (28 -> 14),
//! `conv 3x3 (16 -> 32), ReLU, max-pool 2` (14 -> 7),
//! `linear 1568 -> 128, ReLU` (the features), `linear 128 -> 10` (logits).
//! Convolutions pad by 1. Trained with Adam on cross-entropy, batches drawn
//! by `wae_data`'s seeded epochs; weights initialised from a seeded `StdRng`
//! (PyTorch's default: uniform with bound `1/sqrt(fan_in)`), so the same seed
//! gives the same classifier on the same device.
//!
//! Checkpoints are safetensors with the config in the metadata (JSON), so a
//! file says what made it; the FID statistics cache keys them by sha256.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{D, DType, Device, Module, Tensor, Var};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use wae_data::{Dataset, EpochIter};

use crate::{Error, Result};

/// Architecture of [`MnistClassifier`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MnistClassifierConfig {
    /// Channels of the first convolution.
    pub conv1_channels: usize,
    /// Channels of the second convolution.
    pub conv2_channels: usize,
    /// Width of the hidden layer: the FID feature dimension.
    pub feature_dim: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Default for MnistClassifierConfig {
    fn default() -> Self {
        Self {
            conv1_channels: 16,
            conv2_channels: 32,
            feature_dim: 128,
            classes: 10,
        }
    }
}

/// Training settings of [`train_mnist_classifier`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MnistTrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Stop after this many optimiser steps (for quick runs and tests); `None` = all epochs.
    pub max_steps: Option<usize>,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed of the initialisation and of the batch order.
    pub seed: u64,
}

impl Default for MnistTrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            max_steps: None,
            batch_size: 128,
            learning_rate: 1e-3,
            seed: 0,
        }
    }
}

/// The classifier: images (N, 1, 28, 28) in [0, 1] -> logits (N, classes);
/// [`MnistClassifier::features`] gives the (N, feature_dim) hidden layer.
#[derive(Debug, Clone)]
pub struct MnistClassifier {
    config: MnistClassifierConfig,
    conv1: Conv3x3,
    conv2: Conv3x3,
    fc1: Linear,
    fc2: Linear,
}

/// 3x3 convolution, padding 1, with bias, as im2col + one GEMM in plain candle
/// ops: candle's CPU conv2d backward is a direct loop (~6x slower to train), and
/// this form is deterministic (no cross-thread reductions), so a seed gives
/// bit-identical classifiers on the same device.
#[derive(Debug, Clone)]
struct Conv3x3 {
    weight: Tensor,
    bias: Tensor,
}

impl Conv3x3 {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        let bound = 1.0 / ((c_in * 9) as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Ok(Self {
            weight: vb.get_with_hints((c_out, c_in, 3, 3), "weight", init)?,
            bias: vb.get_with_hints(c_out, "bias", init)?,
        })
    }

    /// (N, C, H, W) -> (N, O, H, W): a 3x3 convolution padded by 1, through
    /// `wae_kernels::conv2d` (GEMM on the CPU, candle's op elsewhere; both with gradients).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(wae_kernels::conv2d(x, &self.weight, Some(&self.bias), 1, 1)
            .map_err(candle_core::Error::wrap)?)
    }
}

impl MnistClassifier {
    /// Builds the network from `vb` (weights `conv1.*`, `conv2.*`, `fc1.*`, `fc2.*`).
    pub fn new(config: &MnistClassifierConfig, vb: VarBuilder) -> Result<Self> {
        let flat = config.conv2_channels * 7 * 7;
        Ok(Self {
            config: config.clone(),
            conv1: Conv3x3::new(1, config.conv1_channels, vb.pp("conv1"))?,
            conv2: Conv3x3::new(config.conv1_channels, config.conv2_channels, vb.pp("conv2"))?,
            fc1: candle_nn::linear(flat, config.feature_dim, vb.pp("fc1"))?,
            fc2: candle_nn::linear(config.feature_dim, config.classes, vb.pp("fc2"))?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &MnistClassifierConfig {
        &self.config
    }

    /// FID features: the ReLU hidden layer, (N, 1, 28, 28) in [0, 1] -> (N, feature_dim).
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = images.dims4()?;
        if (c, h, w) != (1, 28, 28) {
            return Err(Error::InvalidInput(format!(
                "MnistClassifier: images must be (N, 1, 28, 28), got (N, {c}, {h}, {w})"
            )));
        }
        let x = self.conv1.forward(images)?.relu()?.max_pool2d(2)?;
        let x = self.conv2.forward(&x)?.relu()?.max_pool2d(2)?;
        Ok(self.fc1.forward(&x.flatten_from(1)?)?.relu()?)
    }

    /// Class logits, (N, 1, 28, 28) -> (N, classes).
    pub fn logits(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.fc2.forward(&self.features(images)?)?)
    }

    /// Loads a checkpoint written by [`TrainedMnistClassifier::save`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::InvalidInput(format!(
                "MNIST classifier weights not found at {}: train them with \
                 `cargo xtask train-mnist-classifier`",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
        let config_json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("config").cloned())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{}: no classifier config in metadata",
                    path.display()
                ))
            })?;
        let config: MnistClassifierConfig = serde_json::from_str(&config_json)
            .map_err(|e| Error::InvalidInput(format!("{}: bad config: {e}", path.display())))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)?;
        Self::new(&config, vb)
    }

    /// Features of a whole dataset in batches of `batch_size`, on the host as (N, feature_dim) f32.
    ///
    /// The result is detached: when the weights are trainable `Var`s (a classifier
    /// fresh from [`train_mnist_classifier`]), candle records every batch's forward
    /// graph, im2col buffers included, and concatenating the batches would keep all of
    /// them alive (gigabytes for the 60,000 training images). Each batch's features are
    /// detached before the next batch is computed, so memory stays at one batch's graph.
    pub fn dataset_features(
        &self,
        data: &Dataset,
        batch_size: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let mut parts = Vec::new();
        for batch in EpochIter::sequential(data, batch_size, device).map_err(data_err)? {
            let batch = batch.map_err(data_err)?;
            parts.push(
                self.features(&batch.images)?
                    .detach()
                    .to_device(&Device::Cpu)?,
            );
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Fraction of `data` classified correctly.
    pub fn accuracy(&self, data: &Dataset, batch_size: usize, device: &Device) -> Result<f64> {
        let mut correct = 0u64;
        for batch in EpochIter::sequential(data, batch_size, device).map_err(data_err)? {
            let batch = batch.map_err(data_err)?;
            let predicted = self.logits(&batch.images)?.argmax(D::Minus1)?;
            correct += predicted
                .eq(&batch.labels)?
                .to_dtype(DType::U32)?
                .sum_all()?
                .to_scalar::<u32>()? as u64;
        }
        Ok(correct as f64 / data.len().max(1) as f64)
    }
}

impl Module for MnistClassifier {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.logits(xs).map_err(candle_core::Error::wrap)
    }
}

fn data_err(e: wae_data::Error) -> Error {
    Error::InvalidInput(format!("MNIST data: {e}"))
}

/// A trained classifier with its variables (for saving).
pub struct TrainedMnistClassifier {
    /// The network.
    pub model: MnistClassifier,
    /// Its variables.
    pub varmap: VarMap,
}

impl TrainedMnistClassifier {
    /// Writes the weights and the config (metadata `config`, JSON) to `path`
    /// as safetensors (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let data =
            self.varmap.data().lock().map_err(|_| {
                Error::InvalidInput("MNIST classifier variables are poisoned".into())
            })?;
        let mut tensors: Vec<(String, Tensor)> = data
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().to_device(&Device::Cpu)))
            .map(|(k, t)| t.map(|t| (k, t)))
            .collect::<candle_core::Result<_>>()?;
        drop(data);
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(k, t)| {
                let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                Ok((k.clone(), t.dims().to_vec(), bytes))
            })
            .collect::<Result<_>>()?;
        let views = buffers
            .iter()
            .map(|(k, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (k.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let config = serde_json::to_string(&self.model.config)
            .map_err(|e| Error::InvalidInput(format!("config: {e}")))?;
        let mut metadata = HashMap::new();
        metadata.insert("config".to_string(), config);
        metadata.insert(
            "format".to_string(),
            "wae-metrics-mnist-classifier-v1".to_string(),
        );
        let bytes = safetensors::serialize(views, Some(metadata))?;
        Ok(wae_io::write_atomic(path, &bytes)?)
    }
}

/// What [`train_mnist_classifier`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct MnistTrainReport {
    /// Optimiser steps taken.
    pub steps: usize,
    /// Mean cross-entropy over the last `min(50, steps / 5)` steps.
    pub final_loss: f64,
    /// Mean cross-entropy over the first `min(50, steps / 5)` steps.
    pub initial_loss: f64,
    /// Accuracy on the evaluation set, if one was given.
    pub eval_accuracy: Option<f64>,
    /// Wall-clock training time in seconds (evaluation excluded).
    pub train_seconds: f64,
}

/// Re-initialises every variable of `varmap` from `rng` in name order:
/// weights and biases uniform in `+-1/sqrt(fan_in)` (PyTorch's default for
/// Conv2d and Linear), fan_in = product of the weight's dims after the first.
fn seeded_init(varmap: &VarMap, rng: &mut StdRng) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::InvalidInput("variables are poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let fan_in_of = |layer: &str| -> usize {
        data.get(&format!("{layer}.weight"))
            .map(|w| w.dims()[1..].iter().product())
            .unwrap_or(1)
    };
    for name in names {
        let var: &Var = &data[name];
        let layer = name.rsplit_once('.').map_or(name.as_str(), |(l, _)| l);
        let bound = 1.0 / (fan_in_of(layer) as f64).sqrt();
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        let t = Tensor::from_vec(values, var.dims(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

/// Trains the MNIST classifier on `train` (images and labels of a
/// `wae_data::Dataset`) with Adam and cross-entropy, then measures the
/// accuracy on `eval` if given. Deterministic for a seed and device.
pub fn train_mnist_classifier(
    train: &Dataset,
    eval: Option<&Dataset>,
    config: &MnistClassifierConfig,
    train_config: &MnistTrainConfig,
    device: &Device,
) -> Result<(TrainedMnistClassifier, MnistTrainReport)> {
    if train_config.batch_size == 0 || train.len() < train_config.batch_size {
        return Err(Error::InvalidInput(format!(
            "train_mnist_classifier: batch size {} with {} training images",
            train_config.batch_size,
            train.len()
        )));
    }
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = MnistClassifier::new(config, vb)?;
    let mut rng = StdRng::seed_from_u64(train_config.seed);
    seeded_init(&varmap, &mut rng)?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: train_config.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let start = Instant::now();
    let mut losses = Vec::new();
    let max_steps = train_config.max_steps.unwrap_or(usize::MAX);
    'epochs: for epoch in 0..train_config.epochs {
        let batches = EpochIter::new(
            train,
            train_config.batch_size,
            train_config.seed,
            epoch as u64,
            device,
        )
        .map_err(data_err)?;
        for batch in batches {
            if losses.len() >= max_steps {
                break 'epochs;
            }
            let batch = batch.map_err(data_err)?;
            let logits = model.logits(&batch.images)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &batch.labels)?;
            opt.backward_step(&loss)?;
            let value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
            if !value.is_finite() {
                return Err(Error::InvalidInput(format!(
                    "MNIST classifier training diverged at step {}",
                    losses.len()
                )));
            }
            losses.push(value);
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    if losses.is_empty() {
        return Err(Error::InvalidInput(
            "train_mnist_classifier: no training step was taken".into(),
        ));
    }
    let window = (losses.len() / 5).clamp(1, 50);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let eval_accuracy = match eval {
        Some(data) => Some(model.accuracy(data, 500, device)?),
        None => None,
    };
    let report = MnistTrainReport {
        steps: losses.len(),
        initial_loss: mean(&losses[..window]),
        final_loss: mean(&losses[losses.len() - window..]),
        eval_accuracy,
        train_seconds,
    };
    Ok((TrainedMnistClassifier { model, varmap }, report))
}
