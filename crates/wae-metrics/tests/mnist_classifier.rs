//! The MNIST feature extractor: training, determinism, checkpoints, real MNIST.

use candle_core::Device;
use wae_data::{Dataset, Mnist, MnistSource};
use wae_metrics::mnist_classifier::{
    MnistClassifier, MnistClassifierConfig, MnistTrainConfig, train_mnist_classifier,
};
use wae_metrics::testing::uniform;

/// Synthetic 28x28 digits: class c is a bright 6x6 block at one of 10 places, on noise.
fn synthetic(n: usize, seed: u32) -> Dataset {
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 10;
        let (by, bx) = (2 + (class / 5) * 12, 1 + (class % 5) * 5);
        for y in 0..28 {
            for x in 0..28 {
                let noise = (uniform(seed, (i * 784 + y * 28 + x) as u64) * 80.0) as u8;
                let inside = (by..by + 6).contains(&y) && (bx..bx + 5).contains(&x);
                pixels.push(if inside { 200 + noise / 2 } else { noise });
            }
        }
        labels.push(class as u8);
    }
    Dataset::new(pixels, labels, 1, 28, 28).unwrap()
}

fn quick() -> MnistTrainConfig {
    MnistTrainConfig {
        epochs: 10,
        max_steps: Some(60),
        batch_size: 20,
        learning_rate: 3e-3,
        seed: 7,
    }
}

#[test]
fn learns_a_synthetic_task_deterministically() {
    let dev = Device::Cpu;
    let train = synthetic(200, 1);
    let test = synthetic(100, 2);
    // A narrow network keeps the test fast; the default one is trained on real MNIST below.
    let cfg = MnistClassifierConfig {
        conv1_channels: 4,
        conv2_channels: 8,
        feature_dim: 32,
        classes: 10,
    };
    let (a, report) = train_mnist_classifier(&train, Some(&test), &cfg, &quick(), &dev).unwrap();
    assert_eq!(report.steps, 60);
    assert!(
        report.final_loss < 0.5 * report.initial_loss,
        "loss {} -> {}",
        report.initial_loss,
        report.final_loss
    );
    let accuracy = report.eval_accuracy.unwrap();
    assert!(accuracy > 0.9, "accuracy {accuracy}");
    // Same seed, same classifier; another seed, another one.
    let (b, _) = train_mnist_classifier(&train, None, &cfg, &quick(), &dev).unwrap();
    let other = MnistTrainConfig { seed: 8, ..quick() };
    let (c, _) = train_mnist_classifier(&train, None, &cfg, &other, &dev).unwrap();
    let fa = a.model.dataset_features(&test, 50, &dev).unwrap();
    let fb = b.model.dataset_features(&test, 50, &dev).unwrap();
    let fc = c.model.dataset_features(&test, 50, &dev).unwrap();
    assert_eq!(fa.dims(), &[100, 32]);
    // The trained weights are Vars, so a forward pass records a graph; the dataset's
    // features must not carry it (it would hold every batch's intermediates alive).
    let images = test.images_tensor(&dev).unwrap();
    assert!(a.model.features(&images).unwrap().track_op());
    assert!(!fa.track_op(), "dataset_features kept the autograd graph");
    let diff = |x: &candle_core::Tensor, y: &candle_core::Tensor| {
        (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(diff(&fa, &fb), 0.0);
    assert!(diff(&fa, &fc) > 1e-3);
}

#[test]
fn checkpoints_round_trip() {
    let dev = Device::Cpu;
    let train = synthetic(100, 3);
    let cfg = MnistClassifierConfig {
        conv1_channels: 4,
        conv2_channels: 8,
        feature_dim: 16,
        classes: 10,
    };
    let short = MnistTrainConfig {
        max_steps: Some(3),
        ..quick()
    };
    let (trained, _) = train_mnist_classifier(&train, None, &cfg, &short, &dev).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mnist-classifier.safetensors");
    trained.save(&path).unwrap();
    let loaded = MnistClassifier::load(&path, &dev).unwrap();
    assert_eq!(loaded.config(), &cfg);
    let a = trained.model.dataset_features(&train, 50, &dev).unwrap();
    let b = loaded.dataset_features(&train, 50, &dev).unwrap();
    assert_eq!(
        a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let missing = MnistClassifier::load(&dir.path().join("absent"), &dev).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("cargo xtask train-mnist-classifier")
    );
}

#[test]
fn trains_on_real_mnist() {
    // About 30-70 s on a shared 2-core CPU: opt-in.
    if !wae_io::heavy_tests("training the classifier on real MNIST") {
        return;
    }
    // Fails, saying how to set it, when the directory is not found: CI has the data.
    let dir = wae_data::testing::mnist_dir();
    let dev = Device::Cpu;
    let mnist = Mnist::load(&MnistSource::from_dir(dir)).unwrap();
    let test: Vec<usize> = (0..1000).collect();
    let test = mnist.test.subset(&test).unwrap();
    let train_config = MnistTrainConfig {
        epochs: 1,
        max_steps: Some(200),
        batch_size: 64,
        learning_rate: 2e-3,
        seed: 0,
    };
    let (_, report) = train_mnist_classifier(
        &mnist.train,
        Some(&test),
        &MnistClassifierConfig::default(),
        &train_config,
        &dev,
    )
    .unwrap();
    let accuracy = report.eval_accuracy.unwrap();
    println!(
        "200 steps of 64 on real MNIST: loss {:.3} -> {:.3}, test accuracy (first 1000) {:.4}, {:.1} s",
        report.initial_loss, report.final_loss, accuracy, report.train_seconds
    );
    assert!(accuracy > 0.9, "accuracy {accuracy}");
}
