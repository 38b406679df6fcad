//! Your own candle networks trained as a WAE-MMD through the public API: an MLP encoder
//! and decoder written here, `wae_objectives::Objective` for the loss, `wae_train::TrainStep`
//! for the step (the one `wae train` runs), MNIST from `wae_data`, and the trainer's
//! end-of-run evaluation (`wae_train::evaluate::end_of_training`).
//!
//! `cargo run --release -p wae-train --example custom_model -- [STEPS]` (default 1000)
//! prints the test reconstruction error (squared L2 per image) and MMD^2 to the prior.
use anyhow::Result;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap, linear};
use wae_objectives::{AutoEncoder, Codes, Objective, ObjectiveConfig, StepNoise, WaeMmdConfig};
use wae_train::evaluate::{EndOfTraining, end_of_training};
use wae_train::rng::{Stream, derived_rng};
use wae_train::{Adam, AdamConfig, TrainStep};

const Z: usize = 8;

/// 784 -> 256 -> Z encoder and Z -> 256 -> 784 decoder (logits), plain candle-nn.
struct Mlp {
    enc: [Linear; 2],
    dec: [Linear; 2],
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

/// Trains `steps` steps (batch 100) and returns (test reconstruction error, test MMD^2).
pub fn run(steps: u64) -> Result<(f64, f64)> {
    let (device, seed) = (Device::Cpu, 0);
    let mnist = wae_data::Mnist::load(&wae_data::MnistSource::locate(None)?)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let model = Mlp {
        enc: [linear(784, 256, vb.pp("e0"))?, linear(256, Z, vb.pp("e1"))?],
        dec: [linear(Z, 256, vb.pp("d0"))?, linear(256, 784, vb.pp("d1"))?],
    };
    let objective = Objective::new(
        ObjectiveConfig::WaeMmd(WaeMmdConfig::default()), // lambda 10, IMQ, 0.05 ||x - y||^2
        Default::default(),                               // N(0, I)
    )?;
    let vars = varmap.data().lock().unwrap().clone().into_iter().collect();
    let mut train = TrainStep::new(Adam::new(vars, AdamConfig::default())?, None);
    let batch = 100;
    for step in 0..steps {
        let (epoch, pos) = (step / 600, (step % 600) as usize);
        let order = wae_data::epoch_permutation(mnist.train.len(), seed, epoch);
        let x = mnist
            .train
            .batch(&order[pos * batch..(pos + 1) * batch], &device)?;
        let mut rng = derived_rng(seed, Stream::StepNoise, step);
        let noise = objective.draw_noise(batch, Z, &mut rng, &device)?;
        let report = train.step(&model, &objective, &x, &noise, step)?;
        if step % 100 == 0 {
            println!("step {step}: loss {:.4}", report.values["total"]);
        }
    }
    // Test set: the trainer's own end-of-run evaluation (the `eval.json` schema of `wae
    // train` and `wae eval`), which takes any AutoEncoder.
    let settings = EndOfTraining {
        examples: 1000,
        batch_size: 250,
        seed,
        prior: objective.prior,
        symmetric_pixels: false,
    };
    let report = end_of_training(&model, &settings, &mnist.test, &device, steps)?;
    Ok((report.reconstruction_sq_l2, report.mmd_codes_vs_prior))
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let steps = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let (err, mmd) = run(steps)?;
    println!("test reconstruction error {err:.4}, MMD^2 to the prior {mmd:.5}");
    Ok(())
}
