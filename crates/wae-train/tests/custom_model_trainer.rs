//! A user's own candle auto-encoder (the MLP of `examples/custom_model.rs`) through the
//! whole trainer (`train_with`, `resume_with`): the same loop, checkpoints, exact resume,
//! `metrics.jsonl` and `eval.json` as the project's `Model`, with nothing but
//! `impl TrainableModel for Mlp {}`.

#[path = "../examples/custom_model.rs"]
#[allow(dead_code)]
mod custom_model;

use std::path::Path;

use custom_model::{Mlp, Z};
use wae_train::checkpoint::{MODEL_FILE, OPTIMIZER_FILE, latest_checkpoint_dir};
use wae_train::metrics::{METRICS_FILE, read_metrics};
use wae_train::{
    EVAL_FILE, ResumeOverrides, TrainConfig, TrainOptions, preset, resume_with, train_with,
};

/// 256 MNIST images in batches of 16 (16 steps per epoch, two epochs), no pretraining,
/// a latent dimension that matches the MLP's.
fn config() -> TrainConfig {
    let mut cfg = preset("mnist-wae-mmd-smoke").expect("preset");
    cfg.model = cfg.model.with_latent_dim(Z);
    cfg.data.train_examples = Some(256);
    cfg.data.test_examples = Some(64);
    cfg.training.batch_size = 16;
    cfg.training.checkpoint_every_steps = 5;
    cfg.training.eval_examples = 64;
    cfg.training.epochs = 2;
    cfg.pretrain.enabled = false;
    cfg
}

fn opts(dir: &Path, max_steps: u64) -> TrainOptions {
    TrainOptions {
        max_steps: Some(max_steps),
        progress: false,
        data_dir: Some(wae_data::testing::mnist_dir()),
        ..TrainOptions::new(dir)
    }
}

fn newest_file(run: &Path, file: &str) -> Vec<u8> {
    let dir = latest_checkpoint_dir(run).unwrap().unwrap();
    std::fs::read(dir.join(file)).unwrap()
}

fn metrics_without_time(run: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut lines = read_metrics(&run.join(METRICS_FILE)).unwrap();
    for line in &mut lines {
        line.remove("seconds");
    }
    lines
}

#[test]
fn a_users_model_stopped_halfway_and_resumed_equals_a_straight_run() {
    let cfg = config();
    let tmp = tempfile::tempdir().unwrap();
    let (straight, split) = (tmp.path().join("straight"), tmp.path().join("split"));
    let total = 20;
    let a = train_with(&cfg, &opts(&straight, total), Mlp::new).unwrap();
    assert_eq!(a.steps, total);
    let b1 = train_with(&cfg, &opts(&split, total / 2), Mlp::new).unwrap();
    assert_eq!(b1.steps, total / 2);
    let b2 = resume_with(&opts(&split, total), &ResumeOverrides::default(), Mlp::new).unwrap();
    assert_eq!(b2.steps, total);

    for file in [MODEL_FILE, OPTIMIZER_FILE] {
        assert!(
            newest_file(&straight, file) == newest_file(&split, file),
            "{file} differs after resuming"
        );
    }
    let (ma, mb) = (
        metrics_without_time(&straight),
        metrics_without_time(&split),
    );
    assert_eq!(ma.len() as u64, total, "one metrics line per step");
    assert_eq!(ma, mb, "metrics.jsonl differs after resuming");
    let (first, last) = (ma[0]["total"].as_f64(), ma[ma.len() - 1]["total"].as_f64());
    assert!(last < first, "the loss should fall: {first:?} -> {last:?}");
    // The end-of-training evaluation ran on the user's model and wrote eval.json.
    let (ea, eb) = (a.eval.expect("eval"), b2.eval.expect("eval"));
    assert_eq!(
        (ea.reconstruction_sq_l2, ea.mmd_codes_vs_prior),
        (eb.reconstruction_sq_l2, eb.mmd_codes_vs_prior)
    );
    assert!(eb.reconstruction_sq_l2.is_finite() && eb.examples == 64);
    assert!(split.join(EVAL_FILE).is_file());
}

#[test]
fn a_latent_dimension_other_than_the_configs_is_refused() {
    let mut cfg = config();
    cfg.model = cfg.model.with_latent_dim(Z + 1);
    let tmp = tempfile::tempdir().unwrap();
    let err = train_with(&cfg, &opts(tmp.path(), 2), Mlp::new)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("latent dimension is 8") && err.contains("is 9"),
        "{err}"
    );
}

#[test]
fn pretraining_a_model_without_pretraining_is_refused() {
    let mut cfg = config();
    cfg.pretrain.enabled = true;
    let tmp = tempfile::tempdir().unwrap();
    let err = train_with(&cfg, &opts(tmp.path(), 2), Mlp::new)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("pretrain.enabled = false"), "{err}");
}
