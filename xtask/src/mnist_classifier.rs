//! `cargo xtask train-mnist-classifier`: trains wae-metrics' MNIST classifier (the
//! feature network of the offline FID for MNIST), prints its test accuracy and writes
//! its weights as safetensors (atomically, config in the metadata).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use wae_data::{Mnist, MnistSource};
use wae_metrics::mnist_classifier::{
    MnistClassifier, MnistClassifierConfig, MnistTrainConfig, MnistTrainReport,
    train_mnist_classifier,
};
use wae_train::DeviceChoice;

/// Arguments of `cargo xtask train-mnist-classifier`.
#[derive(Args, Debug, Clone)]
pub struct TrainClassifierArgs {
    /// MNIST directory (default: WAE_DATA_DIR, else data/mnist under the current directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where to write the weights.
    #[arg(long, default_value = "target/wae/mnist-classifier.safetensors")]
    pub out: PathBuf,
    /// Passes over the 60,000 training images.
    #[arg(long, default_value_t = MnistTrainConfig::default().epochs)]
    pub epochs: usize,
    /// Stop after this many optimiser steps (default: all epochs).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of the initialisation and the batch order.
    #[arg(long, default_value_t = MnistTrainConfig::default().seed)]
    pub seed: u64,
    /// Device to train on (`cuda` needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// Runs `cargo xtask train-mnist-classifier`.
pub fn run(args: &TrainClassifierArgs) -> Result<()> {
    let device = args.device.open()?;
    let source = MnistSource::locate(args.data_dir.clone())?;
    let mnist = Mnist::load(&source)
        .with_context(|| format!("while loading MNIST from {}", source.dir.display()))?;
    let train_config = MnistTrainConfig {
        epochs: args.epochs,
        max_steps: args.steps,
        seed: args.seed,
        ..MnistTrainConfig::default()
    };
    println!(
        "training the MNIST classifier on {} images ({}), {train_config:?}",
        mnist.train.len(),
        source.dir.display()
    );
    let config = MnistClassifierConfig::default();
    let (report, accuracy_reloaded) =
        train_and_save(&mnist, &config, &train_config, &args.out, &device)?;
    println!(
        "{} steps in {:.1} s, cross-entropy {:.4} -> {:.4}; test accuracy {:.4} on {} images \
         (reloaded from {}: {:.4})",
        report.steps,
        report.train_seconds,
        report.initial_loss,
        report.final_loss,
        report.eval_accuracy.unwrap_or(f64::NAN),
        mnist.test.len(),
        args.out.display(),
        accuracy_reloaded,
    );
    Ok(())
}

/// Trains on `mnist.train`, measures the accuracy on `mnist.test`, saves to `out` and
/// reloads the file to measure again (the saved weights are the trained ones).
fn train_and_save(
    mnist: &Mnist,
    config: &MnistClassifierConfig,
    train_config: &MnistTrainConfig,
    out: &Path,
    device: &candle_core::Device,
) -> Result<(MnistTrainReport, f64)> {
    let (trained, report) = train_mnist_classifier(
        &mnist.train,
        Some(&mnist.test),
        config,
        train_config,
        device,
    )?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("while creating {}", parent.display()))?;
    }
    trained
        .save(out)
        .with_context(|| format!("while writing {}", out.display()))?;
    let reloaded = MnistClassifier::load(out, device)?;
    let accuracy = reloaded.accuracy(&mnist.test, 500, device)?;
    Ok((report, accuracy))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A narrow network, a slice of real MNIST, 30 steps: the pipeline works end to end
    /// and the saved file gives the same accuracy as the network in memory.
    #[test]
    fn trains_saves_and_reloads_on_a_slice_of_real_mnist() {
        let source = MnistSource::locate(Some(wae_data::testing::mnist_dir()))
            .unwrap_or_else(|e| panic!("this test needs the real MNIST files:\n{e}"));
        let mnist = Mnist::load(&source.with_verify(wae_data::Verify::Skip)).unwrap();
        let small = Mnist {
            train: mnist.train.subset(&(0..1000).collect::<Vec<_>>()).unwrap(),
            test: mnist.test.subset(&(0..300).collect::<Vec<_>>()).unwrap(),
        };
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("nested/classifier.safetensors");
        let config = MnistClassifierConfig {
            conv1_channels: 4,
            conv2_channels: 8,
            feature_dim: 32,
            classes: 10,
        };
        let train_config = MnistTrainConfig {
            epochs: 1,
            max_steps: Some(30),
            batch_size: 32,
            learning_rate: 3e-3,
            ..MnistTrainConfig::default()
        };
        let (report, reloaded) = train_and_save(
            &small,
            &config,
            &train_config,
            &out,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert_eq!(report.steps, 30);
        let accuracy = report.eval_accuracy.unwrap();
        eprintln!("accuracy after 30 steps: {accuracy}");
        // Chance is 0.1; 30 small steps already do far better.
        assert!(accuracy > 0.3, "accuracy {accuracy}");
        assert_eq!(reloaded, accuracy);
        assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 1);
    }
}
