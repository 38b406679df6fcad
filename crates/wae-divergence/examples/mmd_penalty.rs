//! The MMD penalty in a plain candle training loop, with nothing from this project but
//! `wae-divergence`: a linear auto-encoder of 20-dimensional data whose 4-dimensional
//! codes are pushed towards N(0, I) (a WAE-MMD in a dozen lines).
//!
//! `cargo run --release -p wae-divergence --example mmd_penalty -- [STEPS]` (default 500).
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap, linear};
use rand::{SeedableRng, rngs::StdRng};
use wae_divergence::{MmdConfig, Prior, mmd};

/// Trains `steps` steps; returns MMD^2 of held-out codes to prior draws before and after.
pub fn run(steps: usize) -> Result<(f32, f32), Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(0);
    let prior = Prior::Normal { variance: 1.0 };
    // Data: 4 latent factors mixed into 20 dimensions, plus noise.
    let mix = Tensor::randn(0f32, 1.0, (4, 20), &device)?;
    let data = |n: usize, rng: &mut StdRng| -> candle_core::Result<Tensor> {
        let s = prior
            .sample(n, 4, rng, &device, DType::F32)
            .map_err(candle_core::Error::wrap)?;
        s.matmul(&mix)? + Tensor::randn(0f32, 0.1, (n, 20), &device)?
    };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let encoder = linear(20, 4, vb.pp("encoder"))?;
    let decoder = linear(4, 20, vb.pp("decoder"))?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 1e-2,
            ..Default::default()
        },
    )?;
    let cfg = MmdConfig::default(); // IMQ, 7 scales, sigma_z^2 = 1, U-statistic
    let held_out = data(500, &mut rng)?;
    let p_held_out = prior.sample(500, 4, &mut rng, &device, DType::F32)?;
    let score = |e: &candle_nn::Linear| -> Result<f32, Box<dyn std::error::Error>> {
        Ok(mmd(&e.forward(&held_out)?, &p_held_out, &cfg)?.to_scalar::<f32>()?)
    };
    let before = score(&encoder)?;
    for step in 0..steps {
        let x = data(100, &mut rng)?;
        let z = encoder.forward(&x)?;
        let z_prior = prior.sample(100, 4, &mut rng, &device, DType::F32)?;
        // The paper's MNIST cost, 0.05 ||x - y||^2.
        let reconstruction = ((decoder.forward(&z)? - &x)?.sqr()?.sum(1)?.mean_all()? * 0.05)?;
        let penalty = mmd(&z, &z_prior, &cfg)?;
        let loss = (&reconstruction + (&penalty * 10.0)?)?; // lambda = 10
        opt.backward_step(&loss)?;
        if step % 100 == 0 {
            let (r, p) = (
                reconstruction.to_scalar::<f32>()?,
                penalty.to_scalar::<f32>()?,
            );
            println!("step {step}: reconstruction {r:.3}, MMD^2 {p:.5}");
        }
    }
    Ok((before, score(&encoder)?))
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500);
    let (before, after) = run(steps)?;
    println!("held-out MMD^2 to the prior: {before:.5} untrained, {after:.5} after {steps} steps");
    Ok(())
}
