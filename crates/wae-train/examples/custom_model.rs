//! Your own candle networks trained as a WAE-MMD by the trainer `wae train` runs: an MLP
//! encoder and decoder written here, `wae_train::TrainableModel` with its defaults, and
//! `wae_train::train_with`, which writes the run directory of `wae train` (seeded weights,
//! checkpoints, `metrics.jsonl`, `eval.json`; `resume_with` continues it bit for bit).
//!
//! `cargo run --release -p wae-train --example custom_model -- [STEPS] [RUN_DIR] [MNIST_DIR]`
//! (default 1000 steps into `target/runs/custom_model`, which must not hold a run yet,
//! on MNIST from `WAE_DATA_DIR` or `data/mnist`) prints the test reconstruction error
//! (squared L2 per image) and MMD^2 to the prior.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use wae_objectives::{AutoEncoder, Codes, StepNoise};
use wae_train::{TrainConfig, TrainOptions, TrainableModel, train_with};

pub const Z: usize = 8;

/// 784 -> 256 -> Z encoder and Z -> 256 -> 784 decoder (logits), plain candle-nn, named
/// `encoder.*` and `decoder.*`: the trainer's default optimiser groups.
pub struct Mlp {
    enc: [Linear; 2],
    dec: [Linear; 2],
}

impl Mlp {
    pub fn new(_cfg: &TrainConfig, vb: VarBuilder<'static>) -> wae_train::Result<Self> {
        let (e, d) = (vb.pp("encoder"), vb.pp("decoder"));
        Ok(Self {
            enc: [linear(784, 256, e.pp("0"))?, linear(256, Z, e.pp("1"))?],
            dec: [linear(Z, 256, d.pp("0"))?, linear(256, 784, d.pp("1"))?],
        })
    }
}

impl AutoEncoder for Mlp {
    fn latent_dim(&self) -> usize {
        Z
    }
    fn encode(&self, x: &Tensor, _: Option<&StepNoise>, _: bool) -> wae_objectives::Result<Codes> {
        let h = self.enc[0].forward(&x.flatten_from(1)?)?.relu()?;
        Ok(Codes::deterministic(self.enc[1].forward(&h)?))
    }
    fn decode_logits(&self, z: &Tensor, _: bool) -> wae_objectives::Result<Tensor> {
        let h = self.dec[0].forward(z)?.relu()?;
        Ok(self.dec[1].forward(&h)?.reshape((z.dim(0)?, 1, 28, 28))?)
    }
}

/// Deterministic codes, the prior's draws as noise, no pretraining: all the defaults.
impl TrainableModel for Mlp {}

/// Trains `steps` steps (batch 100) into `run_dir` on MNIST from `mnist_dir` (`None`: the
/// usual lookup); returns (test reconstruction error, test MMD^2) of the trainer's
/// end-of-run evaluation on 1000 test images.
pub fn run(steps: u64, run_dir: &Path, mnist_dir: Option<PathBuf>) -> Result<(f64, f64)> {
    let mut cfg = TrainConfig::default(); // MNIST; WAE-MMD, lambda 10, IMQ; N(0, I); Adam
    cfg.model = cfg.model.with_latent_dim(Z); // what the trainer checks and the prior draws
    cfg.pretrain.enabled = false;
    cfg.training.eval_examples = 1000;
    let opts = TrainOptions {
        max_steps: Some(steps),
        data_dir: mnist_dir,
        ..TrainOptions::new(run_dir)
    };
    let eval = train_with(&cfg, &opts, Mlp::new)?
        .eval
        .context("no evaluation")?;
    Ok((eval.reconstruction_sq_l2, eval.mmd_codes_vs_prior))
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let steps = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let dir = args
        .next()
        .unwrap_or_else(|| "target/runs/custom_model".into());
    let mnist_dir = args.next().map(PathBuf::from);
    let (err, mmd) = run(steps, Path::new(&dir), mnist_dir)?;
    println!("test reconstruction error {err:.4}, MMD^2 to the prior {mmd:.5}");
    Ok(())
}
