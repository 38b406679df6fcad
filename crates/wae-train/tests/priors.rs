//! Every prior trains end to end: the box and sphere presets, shrunk to test size, end
//! closer to their prior (MMD^2 of the test codes, with that prior's kernel) than they
//! start, and their codes lie on the prior's support.

use wae_objectives::PriorConfig;
use wae_train::{TrainConfig, TrainOptions, preset, train};

fn small(name: &str) -> TrainConfig {
    let mut cfg = preset(name).unwrap();
    cfg.model = cfg.model.with_width_div(16);
    cfg.data.train_examples = Some(2048);
    cfg.data.test_examples = Some(500);
    cfg.training.epochs = 10;
    cfg.training.batch_size = 64;
    cfg.training.eval_examples = 500;
    cfg.training.log_every_steps = 50;
    cfg.training.checkpoint_every_steps = 0;
    cfg.pretrain.enabled = false;
    cfg
}

fn mmd_after(cfg: &TrainConfig, steps: u64, dir: &std::path::Path) -> f64 {
    let mut opts = TrainOptions::new(dir);
    opts.data_dir = Some(wae_data::testing::mnist_dir());
    opts.max_steps = Some(steps);
    opts.progress = false;
    let summary = train(cfg, &opts).unwrap();
    let eval = summary.eval.expect("evaluated");
    eval.mmd_codes_vs_prior
}

#[test]
fn box_and_sphere_priors_are_matched_better_after_training() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, prior) in [
        (
            "mnist-wae-mmd-box",
            PriorConfig::UniformBox {
                half_width: 1.0,
                squash: true,
            },
        ),
        ("mnist-wae-mmd-sphere", PriorConfig::Sphere),
    ] {
        let cfg = small(name);
        assert_eq!(cfg.model.prior, prior, "{name}");
        let before = mmd_after(&cfg, 0, &tmp.path().join(format!("{name}-0")));
        let after = mmd_after(&cfg, 300, &tmp.path().join(format!("{name}-300")));
        println!(
            "{name}: MMD^2(test codes, prior) {before:.4} at step 0, {after:.4} after 300 steps"
        );
        assert!(
            after < 0.5 * before,
            "{name}: MMD^2 {before} at step 0 should at least halve, got {after}"
        );
        // The trained encoder's codes lie on the prior's support.
        let device = candle_core::Device::Cpu;
        let (_, built, _) =
            wae_train::load_trained(&tmp.path().join(format!("{name}-300")), &device).unwrap();
        let x = candle_core::Tensor::rand(0f32, 1.0, (16, 1, 28, 28), &device).unwrap();
        let z = built.model.encode(&x, None, false).unwrap().z;
        let rows: Vec<Vec<f32>> = z.to_vec2().unwrap();
        for r in rows {
            match prior {
                PriorConfig::Sphere => {
                    let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                    assert!((norm - 1.0).abs() < 1e-4, "{name}: norm {norm}");
                }
                _ => assert!(r.iter().all(|v| v.abs() <= 1.0), "{name}: {r:?}"),
            }
        }
    }
}
