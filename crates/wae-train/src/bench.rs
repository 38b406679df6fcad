//! The timed training step of `cargo xtask bench` and `wae bench`: the WAE-MMD step of
//! Tolstikhin et al. (2018) on the MNIST networks at a width divisor, on a batch of
//! random images in [0, 1], as `xtask/peers/torch_wae_mmd.py` runs it in PyTorch
//! (deterministic encoder, 0.05 x squared L2 + 10 x MMD-IMQ, Adam lr 1e-3, betas
//! (0.5, 0.999)).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use wae_objectives::{ObjectiveConfig, StepNoise, WaeMmdConfig};

use crate::model::{Model, ModelConfig};

use crate::config::TrainConfig;
use crate::init::SeededVarMap;
use crate::{Adam, AdamConfig, Error, Result, TrainStep};

/// The model, its optimiser and a fixed batch.
pub struct StepBench {
    model: Model,
    train: TrainStep,
    x: Tensor,
    rng: StdRng,
    batch: usize,
    device: Device,
}

/// Seconds of one step: (drawing the noise + forward, backward, optimiser).
pub type PhaseSeconds = [f64; 3];

impl StepBench {
    /// The paper's MNIST WAE-MMD model with every channel count divided by `width_div`,
    /// weights from seed 0, and one batch of `batch` random images, on `device`.
    pub fn new(width_div: usize, batch: usize, device: &Device) -> Result<Self> {
        let mut config = ModelConfig::for_architecture(wae_nets::Architecture::MnistDcgan)
            .with_width_div(width_div);
        config.encoder.kind = wae_nets::EncoderKind::Deterministic;
        let objective = ObjectiveConfig::WaeMmd(WaeMmdConfig::default());
        let vars = SeededVarMap::new(0);
        let model = Model::new(&config, &objective, vars.var_builder(DType::F32, device))?;
        let adam = Adam::new(
            wae_nets::trainable_vars(vars.var_map(), ""),
            AdamConfig::default(),
        )?;
        Self::assemble(model, adam, (1, 28, 28), batch, 0, device)
    }

    /// The bench around `model`: its step with `adam`, one batch of `batch` images of
    /// `shape` uniform in [0, 1] and the noise RNG, both from `seed`.
    fn assemble(
        model: Model,
        adam: Adam,
        (c, h, w): (usize, usize, usize),
        batch: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let pixels: Vec<f32> = (0..batch * c * h * w)
            .map(|_| rng.random::<f32>())
            .collect();
        let x = Tensor::from_vec(pixels, (batch, c, h, w), &Device::Cpu)?.to_device(device)?;
        Ok(Self {
            model,
            train: TrainStep::new(adam, None),
            x,
            rng,
            batch,
            device: device.clone(),
        })
    }

    /// The next step's noise (prior draws), from the bench's seeded RNG.
    pub fn draw_noise(&mut self) -> Result<StepNoise> {
        Ok(self
            .model
            .draw_noise(self.batch, &mut self.rng, &self.device)?)
    }

    /// The model of a training config (`cfg.model`, `cfg.objective`, weights from
    /// `cfg.seed`, Adam as `cfg.optimizer.autoencoder`; WAE-GAN is refused, its
    /// discriminator step is not part of this bench) and one batch of `batch` random
    /// images in [0, 1] of the config's image shape, on `device`. `cargo xtask bench`
    /// times Rubenstein et al.'s fully connected dSprites nets this way
    /// (`dsprites-wae-mmd-random`).
    pub fn from_config(cfg: &TrainConfig, batch: usize, device: &Device) -> Result<Self> {
        if cfg.objective.is_adversarial() {
            return Err(Error::InvalidConfig(
                "bench: WAE-GAN's discriminator step is not benchmarked; pick another objective"
                    .into(),
            ));
        }
        let vars = SeededVarMap::new(cfg.seed);
        let model = Model::new(
            &cfg.model,
            &cfg.objective,
            vars.var_builder(DType::F32, device),
        )?;
        let params = vars.trainable_vars(&["encoder.", "decoder."]);
        let adam = Adam::new(params, cfg.optimizer.autoencoder.clone())?;
        let shape = cfg.model.encoder.architecture.image_shape();
        Self::assemble(model, adam, shape, batch, cfg.seed, device)
    }

    /// One training step; returns the loss and the seconds of its phases. The noise is
    /// drawn on the host, as the trainer draws it, and counts as forward.
    pub fn step(&mut self) -> Result<(f32, PhaseSeconds)> {
        let t0 = Instant::now();
        let noise = self.draw_noise()?;
        let draw = t0.elapsed().as_secs_f64();
        let report = self
            .train
            .step(&self.model, self.model.loss(), &self.x, &noise, 0)?;
        let s = report.seconds;
        Ok((
            report.values["total"] as f32,
            [draw + s.forward, s.backward, s.update],
        ))
    }

    /// The model (to run the step's phases one by one, as `cargo xtask bench --profile`
    /// does).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The batch of images every step trains on.
    pub fn images(&self) -> &Tensor {
        &self.x
    }

    /// The step and its optimiser.
    pub fn train_step_mut(&mut self) -> &mut TrainStep {
        &mut self.train
    }
}

/// What [`measure`] found; the JSON line `wae bench` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTiming {
    /// `wae (candle + wae-kernels)`.
    pub framework: String,
    /// `cpu` or the CUDA card.
    pub device: String,
    /// Width divisor of the networks.
    pub width_div: usize,
    /// Images per step.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Images per second over the timed steps.
    pub images_per_s: f64,
    /// Mean seconds per step.
    pub s_per_step: f64,
    /// The last loss.
    pub loss: f32,
    /// The fastest single step's wall-clock seconds.
    pub min_step_wall_s: f64,
}

/// Times `steps` steps after `warmup` untimed ones. On CUDA each step ends by reading its
/// loss back (a synchronisation), and the device is synchronised before the clock stops.
pub fn measure(
    width_div: usize,
    batch: usize,
    warmup: usize,
    steps: usize,
    device: &Device,
) -> Result<StepTiming> {
    let mut bench = StepBench::new(width_div, batch, device)?;
    let mut loss = 0f32;
    for _ in 0..warmup {
        loss = bench.step()?.0;
    }
    device.synchronize()?;
    let steps = steps.max(1);
    let start = Instant::now();
    let mut fastest = f64::INFINITY;
    for _ in 0..steps {
        let t = Instant::now();
        loss = bench.step()?.0;
        fastest = fastest.min(t.elapsed().as_secs_f64());
    }
    device.synchronize()?;
    let dt = start.elapsed().as_secs_f64();
    if !loss.is_finite() {
        return Err(Error::InvalidConfig(format!(
            "bench: the loss is not finite after {steps} steps: {loss}"
        )));
    }
    Ok(StepTiming {
        framework: "wae (candle + wae-kernels)".into(),
        device: crate::selftest::device_info(device).name,
        width_div,
        batch,
        steps,
        images_per_s: (batch * steps) as f64 / dt,
        s_per_step: dt / steps as f64,
        loss,
        min_step_wall_s: fastest,
    })
}
