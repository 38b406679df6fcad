//! CPU-scale MNIST runs, opt-in: `WAE_HEAVY_TESTS=1 cargo test --release -p wae-train --test heavy -- --nocapture`.
//!
//! WAE-MMD (the `mnist-wae-mmd-cpu` networks, width / 4) for 300 steps of batch
//! 100: the test reconstruction error must fall well below the mean-image
//! baseline and the test codes must match the prior (MMD close to the
//! prior-vs-prior noise level). VAE and WAE-GAN train 150 steps each without
//! diverging, and their losses fall. Took about 30 minutes on a busy 2-core machine.

use std::path::Path;

use serde_json::Value;
use wae_train::metrics::{METRICS_FILE, read_metrics};
use wae_train::{TrainOptions, TrainSummary, load_data, preset, train};

fn heavy() -> bool {
    wae_io::heavy_tests("the CPU-scale MNIST trainings")
}

fn run(name: &str, steps: u64, dir: &Path) -> TrainSummary {
    let mut cfg = preset(name).expect("preset");
    cfg.training.log_every_steps = 10;
    let opts = TrainOptions {
        run_dir: dir.join(name),
        max_steps: Some(steps),
        progress: false,
        data_dir: Some(wae_data::testing::mnist_dir()),
        ..TrainOptions::new(dir.join(name))
    };
    let started = std::time::Instant::now();
    let s = train(&cfg, &opts).expect("training");
    eprintln!(
        "{name}: {} steps in {:.0} s, last {:?}, eval {:?}",
        s.steps,
        started.elapsed().as_secs_f64(),
        s.last_losses,
        s.eval
    );
    s
}

fn totals(dir: &Path) -> Vec<f64> {
    read_metrics(&dir.join(METRICS_FILE))
        .expect("metrics")
        .iter()
        .map(|m| m["total"].as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Mean over test images of ||x - mean_train_image||^2: the error of a model that ignores x.
fn mean_image_baseline() -> f64 {
    let cfg = preset("mnist-wae-mmd-cpu").expect("preset");
    let (train_set, test) = load_data(&cfg, Some(&wae_data::testing::mnist_dir())).expect("MNIST");
    let px = train_set.pixels_per_image();
    let mut mean_img = vec![0f64; px];
    for i in 0..train_set.len() {
        for (m, p) in mean_img.iter_mut().zip(train_set.image(i).expect("image")) {
            *m += f64::from(*p) / 255.0;
        }
    }
    mean_img
        .iter_mut()
        .for_each(|m| *m /= train_set.len() as f64);
    let n = cfg.training.eval_examples.min(test.len());
    let mut err = 0.0;
    for i in 0..n {
        for (m, p) in mean_img.iter().zip(test.image(i).expect("image")) {
            err += (f64::from(*p) / 255.0 - m).powi(2);
        }
    }
    err / n as f64
}

#[test]
fn cpu_scale_mnist_trainings() {
    if !heavy() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let baseline = mean_image_baseline();
    eprintln!("mean-image baseline reconstruction error: {baseline:.3}");

    let s = run("mnist-wae-mmd-cpu", 300, tmp.path());
    let e = s.eval.expect("evaluation");
    assert!(
        e.reconstruction_sq_l2 < 0.5 * baseline,
        "WAE-MMD reconstruction {} vs baseline {baseline}",
        e.reconstruction_sq_l2
    );
    assert!(
        e.mmd_codes_vs_prior < 0.05,
        "WAE-MMD test codes do not match the prior: MMD {} (prior vs prior {})",
        e.mmd_codes_vs_prior,
        e.mmd_prior_vs_prior
    );

    for name in ["mnist-vae-cpu", "mnist-wae-gan-cpu"] {
        let s = run(name, 150, tmp.path());
        assert!(s.last_losses.values().all(|v| v.is_finite()));
        let t = totals(&tmp.path().join(name));
        let (first, last) = (mean(&t[..3]), mean(&t[t.len() - 3..]));
        assert!(last < first, "{name}: loss went from {first} to {last}");
        let e = s.eval.expect("evaluation");
        assert!(e.reconstruction_sq_l2 < baseline, "{name}: {e:?}");
        let _: Option<&Value> = None;
    }
}
