//! The device-generic path, on the CPU: with the fast CPU kernels switched off
//! (`wae_kernels::set_force_fallback`, `wae_divergence::set_force_fallback`, what
//! `WAE_FORCE_FALLBACK=1` does) every convolution, BatchNorm, Adam update and MMD runs as
//! candle ops, the code CUDA executes. 20 training steps both ways must agree.
//!
//! One test in its own binary: the switches are process-wide.

use std::collections::BTreeMap;
use std::path::Path;

use wae_train::{TrainConfig, TrainOptions, preset, train};

/// Every variable by name (sorted), flattened.
type Weights = Vec<(String, Vec<f32>)>;

fn run(cfg: &TrainConfig, dir: &Path, fallback: bool) -> (Vec<BTreeMap<String, f64>>, Weights) {
    wae_kernels::set_force_fallback(fallback);
    wae_divergence::set_force_fallback(fallback);
    let mut opts = TrainOptions::new(dir);
    opts.progress = false;
    opts.data_dir = Some(wae_data::testing::mnist_dir());
    wae_kernels::profile::reset();
    train(cfg, &opts).unwrap();
    // The switch took effect: the fast kernels ran, or none did.
    let calls: u64 = wae_kernels::profile::snapshot()
        .iter()
        .map(|t| t.forward_calls + t.backward_calls)
        .sum();
    assert_eq!(
        calls == 0,
        fallback,
        "{calls} fast-kernel calls (fallback {fallback})"
    );
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let losses = metrics
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            ["total", "reconstruction", "penalty", "grad_norm"]
                .iter()
                .map(|k| (k.to_string(), v[k].as_f64().unwrap()))
                .collect()
        })
        .collect();
    let (_, built, _) = wae_train::load_trained(dir, &candle_core::Device::Cpu).unwrap();
    let mut weights: Weights = built
        .vars
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    (losses, weights)
}

#[test]
fn twenty_steps_with_candle_ops_match_the_fast_cpu_kernels() {
    // The MNIST DCGAN nets (conv, transposed conv, BatchNorm) at width / 16, WAE-MMD,
    // Adam, input noise, a Gaussian encoder (so the log-variance path runs too).
    let mut cfg = preset("mnist-wae-mmd-smoke").unwrap();
    cfg.training.epochs = 2;
    cfg.training.max_steps = Some(20);
    cfg.training.checkpoint_every_steps = 0;
    cfg.training.eval_examples = 64;
    cfg.model.encoder.kind = wae_nets::EncoderKind::Gaussian;
    cfg.pretrain.enabled = false;
    let tmp = tempfile::tempdir().unwrap();
    let (fast_losses, fast_w) = run(&cfg, &tmp.path().join("fast"), false);
    let (slow_losses, slow_w) = run(&cfg, &tmp.path().join("fallback"), true);
    wae_kernels::set_force_fallback(false);
    wae_divergence::set_force_fallback(false);

    assert_eq!(fast_losses.len(), 20);
    assert_eq!(fast_losses.len(), slow_losses.len());
    // Rounding differences (fast kernels sum in another order) grow over the steps, as
    // in any two float implementations trained side by side (Adam amplifies tiny
    // gradients): the first step must agree closely, the run within 2 %.
    let mut worst_first = 0f64;
    let mut worst_loss = 0f64;
    for (step, (a, b)) in fast_losses.iter().zip(&slow_losses).enumerate() {
        for (k, va) in a {
            let vb = b[k];
            // Relative, or absolute below 1 (MMD^2 near 0 is a difference of large sums).
            let rel = (va - vb).abs() / va.abs().max(1.0);
            if step == 0 {
                worst_first = worst_first.max(rel);
                assert!(rel < 1e-5, "step 1: {k} {va} (fast) vs {vb} (candle ops)");
            }
            worst_loss = worst_loss.max(rel);
            assert!(
                rel < 2e-2,
                "step {}: {k} {va} (fast) vs {vb} (candle ops)",
                step + 1
            );
        }
    }
    // Weights: the two runs differ by a small part of how far training moved them.
    let init = {
        let built = wae_train::build_model(&cfg, &candle_core::Device::Cpu).unwrap();
        let mut w: Weights = built
            .vars
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
        w.sort_by(|a, b| a.0.cmp(&b.0));
        w
    };
    // Weights: every element moves by about the learning rate per Adam step whatever its
    // gradient's size, so elements whose gradient is rounding noise (a bias feeding
    // BatchNorm has gradient 0 in exact arithmetic) walk apart; the weights as a whole
    // must stay close: the L2 distance between the two runs' trained weights (BatchNorm
    // running statistics aside) below 25 % of the distance training moved them (13 %
    // measured when this test was written; a wrong gradient anywhere gives ~100 %). Each
    // kernel's values and gradients are checked against candle's op in wae-kernels' tests.
    assert_eq!(fast_w.len(), slow_w.len());
    let (mut diff_sq, mut moved_sq) = (0f64, 0f64);
    for (((na, a), (nb, b)), (n0, w0)) in fast_w.iter().zip(&slow_w).zip(&init) {
        assert!(na == nb && na == n0, "{na} {nb} {n0}");
        assert!(a.iter().chain(b).all(|v| v.is_finite()), "{na}");
        if na.contains("running_") {
            continue;
        }
        diff_sq += a
            .iter()
            .zip(b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>();
        moved_sq += a
            .iter()
            .zip(w0)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>();
    }
    let overall = (diff_sq / moved_sq).sqrt();
    assert!(
        overall < 0.25,
        "the runs' weights differ by {overall:.3} of the distance training moved them"
    );
    println!(
        "largest loss difference (relative, absolute below 1): step 1 {worst_first:.1e}, 20 steps \
         {worst_loss:.1e}; weights: the runs differ by {overall:.1e} of how far training moved them (L2)"
    );
}
