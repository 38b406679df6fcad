//! Real-MNIST numbers for the metrics: sharpness of the test images, the MNIST
//! classifier's test accuracy, and FID / precision / recall between the train and
//! test sets in the classifier's feature space.
//!
//! `cargo run -p wae-metrics --example mnist_report -- [MNIST_DIR] [EPOCHS] [CHECKPOINT]`
//! (defaults: `wae_data`'s lookup, 3 epochs, no checkpoint written). With EPOCHS = 0
//! the classifier is loaded from CHECKPOINT instead of trained; otherwise the trained
//! classifier is saved there.
//! The lead's `cargo xtask train-mnist-classifier` wires the same library calls.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use wae_data::{Mnist, MnistSource};
use wae_metrics::mnist_classifier::{
    MnistClassifier, MnistClassifierConfig, MnistTrainConfig, train_mnist_classifier,
};
use wae_metrics::{GaussianStats, frechet_distance, laplace_sharpness, precision_recall};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().map(PathBuf::from);
    let epochs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let out = args.get(2).map(PathBuf::from);
    let dev = Device::Cpu;
    let mnist = Mnist::load(&MnistSource::locate(dir)?)?;
    println!(
        "MNIST standard split: {} train, {} test",
        mnist.train.len(),
        mnist.test.len()
    );

    let t = Instant::now();
    let test_images = mnist.test.images_tensor(&dev)?;
    let train_images = mnist.train.images_tensor(&dev)?;
    println!(
        "sharpness: test {:.6e}, train {:.6e} ({:.1} s)",
        laplace_sharpness(&test_images)?,
        laplace_sharpness(&train_images)?,
        t.elapsed().as_secs_f64()
    );

    let model = if epochs == 0 {
        let path = out.ok_or("EPOCHS = 0 needs a CHECKPOINT to load")?;
        let model = MnistClassifier::load(&path, &dev)?;
        let t = Instant::now();
        println!(
            "loaded {}: test accuracy {:.4} ({:.1} s)",
            path.display(),
            model.accuracy(&mnist.test, 1000, &dev)?,
            t.elapsed().as_secs_f64()
        );
        model
    } else {
        let train_config = MnistTrainConfig {
            epochs,
            ..Default::default()
        };
        println!("training the classifier: {train_config:?}");
        let (trained, report) = train_mnist_classifier(
            &mnist.train,
            Some(&mnist.test),
            &MnistClassifierConfig::default(),
            &train_config,
            &dev,
        )?;
        println!(
            "classifier: {} steps in {:.1} s, loss {:.4} -> {:.4}, test accuracy {:.4}",
            report.steps,
            report.train_seconds,
            report.initial_loss,
            report.final_loss,
            report.eval_accuracy.unwrap_or(f64::NAN)
        );
        if let Some(out) = out {
            trained.save(&out)?;
            println!(
                "saved {} (sha256 {})",
                out.display(),
                wae_io::sha256_file(&out)?
            );
        }
        trained.model
    };

    let t = Instant::now();
    let train_features = model.dataset_features(&mnist.train, 1000, &dev)?;
    let test_features = model.dataset_features(&mnist.test, 1000, &dev)?;
    println!("features of 70k images: {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let train_stats = GaussianStats::from_tensor(&train_features)?;
    let test_stats = GaussianStats::from_tensor(&test_features)?;
    println!(
        "FID-MNIST(train 60k, test 10k) = {:.4} ({:.1} s)",
        frechet_distance(&train_stats, &test_stats)?,
        t.elapsed().as_secs_f64()
    );
    let half = GaussianStats::from_tensor(&train_features.narrow(0, 0, 10_000)?)?;
    println!(
        "FID-MNIST(train first 10k, test 10k) = {:.4}",
        frechet_distance(&half, &test_stats)?
    );
    let t = Instant::now();
    let pr = precision_recall(&train_features.narrow(0, 0, 10_000)?, &test_features)?;
    println!(
        "precision/recall (real = train first 10k, generated = test 10k, k = 3): {:.4} / {:.4} ({:.1} s)",
        pr.precision,
        pr.recall,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
