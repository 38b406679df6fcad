//! The self-test of a device: every op the models use and one training step of each model
//! family, run on the device and on the CPU with candle's own ops, from the same inputs,
//! and the largest differences (`wae selftest`).
//!
//! Each quantity is computed three times from the same inputs (drawn on the host from
//! fixed seeds and copied to each side): on the device under test in f32, on the CPU in
//! f32 with candle's own ops (the fast kernels switched off through
//! [`wae_kernels::set_force_fallback`] and [`wae_divergence::set_force_fallback`]), and
//! on the CPU in f64 with candle's ops, the "truth". A check compares the two f32 errors
//! against the truth: it passes when the device's largest error is at most
//! [`TOLERANCE`] times the CPU reference's, or times a floor (a fraction of the
//! quantity's largest value, for where the reference happens to be exact). So the test asks "is the
//! device as accurate as candle on the CPU", which holds for correct code however
//! ill-conditioned a quantity is (a bias feeding BatchNorm has gradient 0 in exact
//! arithmetic, so both f32 sides give rounding noise; gradients that pass back through
//! several BatchNorm layers lose digits to cancellation on every device), while a wrong
//! kernel is off by about the quantity's own size, thousands of times more.
//!
//! Single ops are held to an error of at most [`OP_FLOOR`] of their largest value
//! wherever the reference is more accurate than that; whole models to [`MODEL_FLOOR`]
//! (see there why).
//!
//! On a CUDA device this compares CUDA with the CPU; on the CPU it compares the fast CPU
//! kernels with candle's ops. The weights after one Adam step are compared by their L2
//! distance to the truth's (the first Adam step moves every weight by about the learning
//! rate whatever its gradient's size, so weights whose gradient is rounding noise move at
//! random on both f32 sides alike).

use std::time::Instant;

use candle_core::{D, DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::Serialize;
use wae_divergence::{Estimator, Kernel, MmdConfig};
use wae_kernels::{Activation, Padding2d};
use wae_objectives::StepNoise;

use crate::model::Model;

use crate::adam::{Adam, AdamConfig};
use crate::config::TrainConfig;
use crate::init::SeededVarMap;
use crate::step::TrainStep;
use crate::{Error, Result, preset};

/// How many times the CPU reference's error the device's may be.
pub const TOLERANCE: f64 = 10.0;
/// Single ops: errors up to `TOLERANCE * OP_FLOOR` of a quantity's largest value pass
/// even where the reference happens to be exact.
pub const OP_FLOOR: f64 = 1e-6;
/// Whole models: errors up to `TOLERANCE * MODEL_FLOOR` (1 %) of a quantity's largest
/// value pass. Which ReLU units are active is decided by values that rounding can put
/// on either side of 0, and the fused BatchNorm computes `a * x + b` where candle
/// computes `(x - mean) * a + beta`, so near-zero activations round differently: each
/// unit that flips moves a gradient by one of its terms. Measured on the CPU (fast
/// kernels against the f64 truth, width / 4, batch 32): at most 0.15 % (the MNIST
/// decoder's second transposed convolution's weight gradient under WAE objectives),
/// while the f32 candle ops themselves are off by up to 7 % on the gradients that pass
/// back through two BatchNorm layers (`decoder.fc`). A wrong kernel or a wrong wiring is
/// off by about the quantity's own size; the single-op checks hold every kernel to
/// `OP_FLOOR`.
pub const MODEL_FLOOR: f64 = 1e-3;

/// Settings of [`selftest`].
#[derive(Debug, Clone, Serialize)]
pub struct SelftestOptions {
    /// Images per batch in the model steps.
    pub batch: usize,
    /// Divides every channel count of the convolutional nets (1 = the paper's width).
    pub width_div: usize,
    /// Seed of every input, weight and noise draw.
    pub seed: u64,
}

impl Default for SelftestOptions {
    fn default() -> Self {
        Self {
            batch: 32,
            width_div: 4,
            seed: 0,
        }
    }
}

/// The device's name and memory.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// `cpu`, or `cuda:N` and the card's name.
    pub name: String,
    /// Free memory in bytes, where the device reports it (CUDA).
    pub memory_free: Option<u64>,
    /// Total memory in bytes, where the device reports it (CUDA).
    pub memory_total: Option<u64>,
}

/// One comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The op or model, e.g. `conv2d 4x4/2 14x14` or `step mnist-wae-mmd`.
    pub group: String,
    /// What was compared, e.g. `output`, `grad weight`, `weights after one Adam step`.
    pub what: String,
    /// The device's largest absolute error against the f64 truth (for the weights after
    /// a step: the L2 distance).
    pub error: f64,
    /// The same for the CPU's f32 candle ops.
    pub reference_error: f64,
    /// The quantity's largest absolute value (L2 norm of the step for the weights).
    pub scale: f64,
    /// The fraction of `scale` an error may always have ([`OP_FLOOR`], [`MODEL_FLOOR`]).
    pub floor: f64,
    /// `error / max(reference_error, floor * scale)`.
    pub ratio: f64,
    /// Passes when `ratio <= tolerance`.
    pub tolerance: f64,
    /// Number of values compared.
    pub values: usize,
}

impl Check {
    /// Whether the device is as accurate as the reference (NaN fails).
    pub fn passed(&self) -> bool {
        self.ratio.is_finite() && self.ratio <= self.tolerance
    }
}

/// Everything the self-test measured.
#[derive(Debug, Clone, Serialize)]
pub struct SelftestReport {
    /// The device under test.
    pub device: DeviceInfo,
    /// What it was compared with.
    pub reference: String,
    /// The settings.
    pub options: SelftestOptions,
    /// Every comparison, in the order run.
    pub checks: Vec<Check>,
    /// Wall-clock seconds of the whole test.
    pub seconds: f64,
}

impl SelftestReport {
    /// The checks that failed.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed()).collect()
    }

    /// The largest `ratio / tolerance` (1 and above fails).
    pub fn worst(&self) -> Option<&Check> {
        self.checks
            .iter()
            .max_by(|a, b| a.ratio.total_cmp(&b.ratio))
    }
}

/// The name and memory of `device`.
pub fn device_info(device: &Device) -> DeviceInfo {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cuda) = device {
        let ctx = cuda.cuda_stream().context().clone();
        let name = ctx.name().unwrap_or_else(|e| format!("unknown ({e})"));
        let (free, total) = match ctx.mem_get_info() {
            Ok((f, t)) => (Some(f as u64), Some(t as u64)),
            Err(_) => (None, None),
        };
        return DeviceInfo {
            name: format!("cuda:{} {name}", ctx.ordinal()),
            memory_free: free,
            memory_total: total,
        };
    }
    DeviceInfo {
        name: match device {
            Device::Cpu => "cpu".into(),
            other => format!("{other:?}"),
        },
        memory_free: None,
        memory_total: None,
    }
}

/// Named tensors one side computed.
type Outputs = Vec<(String, Tensor)>;

/// Where and how a side computes.
#[derive(Clone)]
struct Side {
    device: Device,
    dtype: DType,
    fallback: bool,
}

impl Side {
    fn enter(&self) {
        wae_kernels::set_force_fallback(self.fallback);
        wae_divergence::set_force_fallback(self.fallback);
    }
}

/// The device under test, the CPU reference and the f64 truth.
struct Sides {
    device: Side,
    reference: Side,
    truth: Side,
}

/// Restores the fast kernels when the test ends, also on an error.
struct RestoreKernels;

impl Drop for RestoreKernels {
    fn drop(&mut self) {
        wae_kernels::set_force_fallback(false);
        wae_divergence::set_force_fallback(false);
    }
}

/// A tensor of standard normal values times `scale`, drawn on the host from `seed`.
fn tensor(shape: &[usize], seed: u64, scale: f32, side: &Side) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal) * scale)
        .collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?
        .to_dtype(side.dtype)?
        .to_device(&side.device)?)
}

fn var(shape: &[usize], seed: u64, scale: f32, side: &Side) -> Result<Var> {
    Ok(Var::from_tensor(&tensor(shape, seed, scale, side)?)?)
}

/// `sum(y * r)` for a fixed random `r`: a loss whose gradient reaches every output value.
fn probe(y: &Tensor, seed: u64, side: &Side) -> Result<Tensor> {
    let r = tensor(y.dims(), seed, 1.0, side)?;
    Ok((y * r)?.sum_all()?)
}

fn grads_of(loss: &Tensor, named: &[(&str, &Var)]) -> Result<Outputs> {
    let grads = loss.backward()?;
    let mut out = Vec::new();
    for (name, v) in named {
        let g = grads
            .get(v.as_tensor())
            .ok_or_else(|| Error::InvalidConfig(format!("selftest: no gradient reached {name}")))?;
        out.push((format!("grad {name}"), g.clone()));
    }
    Ok(out)
}

fn to_host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0f64, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() { f64::NAN } else { m.max(d) }
    })
}

fn l2_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn check(
    group: &str,
    what: &str,
    [error, reference_error, scale]: [f64; 3],
    floor: f64,
    values: usize,
) -> Check {
    let ratio = if error.is_nan() {
        f64::NAN
    } else {
        error / reference_error.max(floor * scale).max(f64::MIN_POSITIVE)
    };
    Check {
        group: group.into(),
        what: what.into(),
        error,
        reference_error,
        scale,
        floor,
        ratio,
        tolerance: TOLERANCE,
        values,
    }
}

/// Compares the three sides' outputs name by name; `l2` names the outputs compared by L2
/// distance (weights after an optimiser step) instead of the largest difference, `base`
/// the output the L2 scale is measured from (the weights before the step).
fn compare(checks: &mut Vec<Check>, group: &str, floor: f64, runs: [Outputs; 3]) -> Result<()> {
    let [dev, reference, truth] = runs;
    let mut before: Option<Vec<f64>> = None;
    for (((name, a), (_, b)), (_, t)) in dev.iter().zip(&reference).zip(&truth) {
        let (a, b, t) = (to_host(a)?, to_host(b)?, to_host(t)?);
        if a.len() != t.len() || b.len() != t.len() {
            return Err(Error::InvalidConfig(format!(
                "selftest: {group} {name}: {} values on the device, {} in the reference, {} in the truth",
                a.len(),
                b.len(),
                t.len()
            )));
        }
        match name.as_str() {
            WEIGHTS_BEFORE => before = Some(t),
            WEIGHTS_AFTER => {
                let w0 = before.as_deref().unwrap_or(&[]);
                let moved = l2_diff(&t, w0);
                checks.push(check(
                    group,
                    "weights after one Adam step (L2)",
                    [l2_diff(&a, &t), l2_diff(&b, &t), moved],
                    floor,
                    t.len(),
                ));
            }
            _ => {
                let scale = t.iter().fold(0f64, |m, v| m.max(v.abs()));
                checks.push(check(
                    group,
                    name,
                    [max_abs_diff(&a, &t), max_abs_diff(&b, &t), scale],
                    floor,
                    t.len(),
                ));
            }
        }
    }
    Ok(())
}

/// Runs `f` on the three sides and compares what they return.
fn three(
    checks: &mut Vec<Check>,
    sides: &Sides,
    group: &str,
    floor: f64,
    f: impl Fn(&Side) -> Result<Outputs>,
) -> Result<()> {
    let mut runs = Vec::with_capacity(3);
    for side in [&sides.device, &sides.reference, &sides.truth] {
        side.enter();
        runs.push(f(side)?);
    }
    let runs: [Outputs; 3] = runs.try_into().expect("three runs");
    compare(checks, group, floor, runs)
}

/// A convolution (or its transpose) with bias: its output and the three gradients.
fn conv_case(
    side: &Side,
    x_shape: &[usize],
    w_shape: &[usize],
    out_channels: usize,
    seed: u64,
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> wae_kernels::Result<Tensor>,
) -> Result<Outputs> {
    let x = var(x_shape, seed, 1.0, side)?;
    let w = var(w_shape, seed + 1, 0.05, side)?;
    let b = var(&[out_channels], seed + 2, 0.1, side)?;
    let y = f(x.as_tensor(), w.as_tensor(), b.as_tensor())?;
    let mut out = vec![("output".to_string(), y.clone())];
    out.extend(grads_of(
        &probe(&y, seed + 3, side)?,
        &[("input", &x), ("weight", &w), ("bias", &b)],
    )?);
    Ok(out)
}

fn op_checks(checks: &mut Vec<Check>, sides: &Sides) -> Result<()> {
    three(checks, sides, "matmul 256x512 . 512x384", OP_FLOOR, |s| {
        let a = var(&[256, 512], 1, 1.0, s)?;
        let b = var(&[512, 384], 2, 1.0, s)?;
        let y = a.as_tensor().matmul(b.as_tensor())?;
        let mut out = vec![("output".to_string(), y.clone())];
        out.extend(grads_of(&probe(&y, 3, s)?, &[("a", &a), ("b", &b)])?);
        Ok(out)
    })?;
    // The encoder's 4x4 stride-2 convolution, and TensorFlow's 'SAME' one with its
    // asymmetric padding (7x7 -> 4x4).
    let asymmetric = Padding2d {
        top: 1,
        bottom: 2,
        left: 1,
        right: 2,
    };
    for (label, hw, pad) in [
        ("conv2d 4x4/2 14x14", 14, Padding2d::uniform(1)),
        ("conv2d 4x4/2 7x7, asymmetric padding", 7, asymmetric),
    ] {
        three(checks, sides, label, OP_FLOOR, |s| {
            conv_case(
                s,
                &[32, 64, hw, hw],
                &[128, 64, 4, 4],
                128,
                10,
                |x, w, b| wae_kernels::conv2d_padded(x, w, Some(b), 2, pad),
            )
        })?;
    }
    three(
        checks,
        sides,
        "conv_transpose2d 4x4/2 7x7 -> 14x14",
        OP_FLOOR,
        |s| {
            conv_case(s, &[32, 128, 7, 7], &[128, 64, 4, 4], 64, 20, |x, w, b| {
                wae_kernels::conv_transpose2d(x, w, Some(b), 2, 1, 0)
            })
        },
    )?;
    three(
        checks,
        sides,
        "conv_transpose2d 4x4/2 14x14 -> 28x28",
        OP_FLOOR,
        |s| {
            conv_case(s, &[32, 64, 14, 14], &[64, 32, 4, 4], 32, 25, |x, w, b| {
                wae_kernels::conv_transpose2d(x, w, Some(b), 2, 1, 0)
            })
        },
    )?;
    three(
        checks,
        sides,
        "conv_transpose2d 4x4/1 cropped 28x28",
        OP_FLOOR,
        |s| {
            conv_case(s, &[32, 64, 28, 28], &[64, 1, 4, 4], 1, 30, |x, w, b| {
                wae_kernels::conv_transpose2d_cropped(x, w, Some(b), 1, 1, (28, 28))
            })
        },
    )?;
    // Zero-mean input, and channels whose mean is 8 times their spread (a convolution's
    // output with a bias, or any layer early in training).
    for (label, offset) in [
        ("batch norm (training) + ReLU", 0.0),
        ("batch norm (training) + ReLU, offset channels", 8.0),
    ] {
        three(checks, sides, label, OP_FLOOR, |s| {
            let x = var(&[32, 64, 14, 14], 40, 1.0, s)?;
            let x_in = (x.as_tensor() + offset)?;
            let w = var(&[64], 41, 0.5, s)?;
            let b = var(&[64], 42, 0.5, s)?;
            let bn = wae_kernels::batch_norm_train(
                &x_in,
                Some(w.as_tensor()),
                Some(b.as_tensor()),
                1e-5,
                Activation::Relu,
            )?;
            let mut out = vec![
                ("output".to_string(), bn.output.clone()),
                ("batch mean".to_string(), bn.batch_mean.clone()),
                ("batch variance".to_string(), bn.batch_var.clone()),
            ];
            out.extend(grads_of(
                &probe(&bn.output, 43, s)?,
                &[("input", &x), ("weight", &w), ("bias", &b)],
            )?);
            Ok(out)
        })?;
    }
    three(checks, sides, "batch norm (evaluation)", OP_FLOOR, |s| {
        let x = tensor(&[32, 64, 7, 7], 50, 2.0, s)?;
        let mean = tensor(&[64], 51, 0.5, s)?;
        let variance = (tensor(&[64], 52, 0.5, s)?.sqr()? + 0.5)?;
        let w = tensor(&[64], 53, 0.5, s)?;
        let b = tensor(&[64], 54, 0.5, s)?;
        let y = wae_kernels::batch_norm_eval(
            &x,
            &mean,
            &variance,
            Some(&w),
            Some(&b),
            1e-5,
            Activation::Identity,
        )?;
        Ok(vec![("output".to_string(), y)])
    })?;
    three(checks, sides, "Adam, 3 steps", OP_FLOOR, |s| {
        let w = var(&[1000, 100], 60, 1.0, s)?;
        let mut adam = Adam::new(vec![("w".to_string(), w.clone())], AdamConfig::default())?;
        for step in 0..3u64 {
            // loss = sum(c * w^2) / 2: gradient c * w.
            let c = tensor(&[1000, 100], 61 + step, 1.0, s)?;
            let loss = ((w.as_tensor().sqr()? * &c)?.sum_all()? * 0.5)?;
            adam.step(&loss.backward()?)?;
        }
        Ok(vec![("weights".to_string(), w.as_tensor().clone())])
    })?;
    for (label, kernel, estimator) in [
        (
            "MMD inverse multiquadratic, U-statistic",
            Kernel::InverseMultiquadratic,
            Estimator::UStatistic,
        ),
        (
            "MMD Gaussian, V-statistic",
            Kernel::Rbf,
            Estimator::VStatistic,
        ),
    ] {
        three(checks, sides, label, OP_FLOOR, |s| {
            let q = var(&[100, 8], 70, 1.2, s)?;
            let p = tensor(&[100, 8], 71, 1.0, s)?;
            let cfg = MmdConfig {
                kernel,
                estimator,
                ..MmdConfig::default()
            };
            let m = wae_divergence::mmd(q.as_tensor(), &p, &cfg)?;
            let mut out = vec![("value".to_string(), m.clone())];
            out.extend(grads_of(&m, &[("codes", &q)])?);
            Ok(out)
        })?;
    }
    three(checks, sides, "log-softmax, sigmoid, exp", OP_FLOOR, |s| {
        let x = var(&[256, 784], 80, 3.0, s)?;
        let y = (candle_nn::ops::log_softmax(x.as_tensor(), D::Minus1)?
            + candle_nn::ops::sigmoid(x.as_tensor())?.exp()?)?;
        let mut out = vec![("output".to_string(), y.clone())];
        out.extend(grads_of(&probe(&y, 81, s)?, &[("input", &x)])?);
        Ok(out)
    })?;
    Ok(())
}

/// The presets whose models [`selftest`] trains one step each: every objective on the
/// MNIST nets, the CelebA 64x64 nets and the fully connected dSprites nets.
pub const MODEL_PRESETS: [&str; 7] = [
    "mnist-vae",
    "mnist-wae-mmd",
    "mnist-wae-gan",
    "mnist-swae",
    "mnist-info-vae",
    "celeba-wae-mmd",
    "dsprites-wae-mmd-random",
];

const WEIGHTS_BEFORE: &str = "weights before";
const WEIGHTS_AFTER: &str = "weights after";

/// Every trainable weight in one vector (BatchNorm statistics left out).
fn flat_weights(vars: &SeededVarMap) -> Result<Tensor> {
    let parts = vars
        .named_vars()
        .into_iter()
        .filter(|(n, _)| !n.contains("running_"))
        .map(|(_, v)| v.as_tensor().flatten_all())
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

fn moved(t: Option<Tensor>, side: &Side) -> Result<Option<Tensor>> {
    Ok(match t {
        Some(t) => Some(t.to_dtype(side.dtype)?.to_device(&side.device)?),
        None => None,
    })
}

/// The loss parts, every gradient, and the weights before and after one [`TrainStep`]
/// of `cfg`'s model on one side.
fn model_step(cfg: &TrainConfig, batch: usize, side: &Side) -> Result<Outputs> {
    let vars = SeededVarMap::new(cfg.seed);
    let model = Model::new(
        &cfg.model,
        &cfg.objective,
        vars.var_builder(side.dtype, &side.device),
    )?;
    let (c, h, w) = cfg.model.encoder.architecture.image_shape();
    let mut rng = StdRng::seed_from_u64(cfg.seed + 1);
    let pixels: Vec<f32> = (0..batch * c * h * w)
        .map(|_| rng.random::<f32>())
        .collect();
    let x = Tensor::from_vec(pixels, (batch, c, h, w), &Device::Cpu)?
        .to_dtype(side.dtype)?
        .to_device(&side.device)?;
    // The noise drawn on the host, as the trainer draws it, then copied.
    let noise = model.draw_noise(
        batch,
        &mut StdRng::seed_from_u64(cfg.seed + 2),
        &Device::Cpu,
    )?;
    let noise = StepNoise {
        prior: noise.prior.to_dtype(side.dtype)?.to_device(&side.device)?,
        encoder_eps: moved(noise.encoder_eps, side)?,
        input_noise: moved(noise.input_noise, side)?,
        projections: moved(noise.projections, side)?,
    };
    let mut out = Vec::new();
    let (parts, _) = model.losses(&x, &noise, true)?;
    for (name, t) in parts.named() {
        out.push((format!("loss {name}"), t.clone()));
    }
    let grads = parts.total.backward()?;
    for (name, v) in vars.trainable_vars(&["encoder.", "decoder."]) {
        if let Some(g) = grads.get(v.as_tensor()) {
            out.push((format!("grad {name}"), g.clone()));
        }
    }
    let ae = Adam::new(
        vars.trainable_vars(&["encoder.", "decoder."]),
        cfg.optimizer.autoencoder.clone(),
    )?;
    let disc = if cfg.objective.is_adversarial() {
        Some(Adam::new(
            vars.trainable_vars(&["discriminator."]),
            cfg.optimizer.discriminator.clone(),
        )?)
    } else {
        None
    };
    out.push((WEIGHTS_BEFORE.into(), flat_weights(&vars)?));
    TrainStep::new(ae, disc).step(&model, model.loss(), &x, &noise, 0)?;
    out.push((WEIGHTS_AFTER.into(), flat_weights(&vars)?));
    Ok(out)
}

/// Runs every op and one training step of each model family (see [`MODEL_PRESETS`]) on
/// `device`, on the CPU with candle's f32 ops and on the CPU in f64, and returns the
/// comparisons. `progress` is called with the name of each part before it runs.
pub fn selftest(
    device: &Device,
    opts: &SelftestOptions,
    mut progress: impl FnMut(&str),
) -> Result<SelftestReport> {
    let t0 = Instant::now();
    let _restore = RestoreKernels;
    let sides = Sides {
        device: Side {
            device: device.clone(),
            dtype: DType::F32,
            fallback: false,
        },
        reference: Side {
            device: Device::Cpu,
            dtype: DType::F32,
            fallback: true,
        },
        truth: Side {
            device: Device::Cpu,
            dtype: DType::F64,
            fallback: true,
        },
    };
    let mut checks = Vec::new();
    progress("single ops");
    op_checks(&mut checks, &sides)?;
    for name in MODEL_PRESETS {
        progress(name);
        let mut cfg = preset(name)?;
        cfg.seed = opts.seed;
        cfg.model = cfg.model.clone().with_width_div(opts.width_div);
        let group = format!("step {name}");
        three(&mut checks, &sides, &group, MODEL_FLOOR, |s| {
            model_step(&cfg, opts.batch, s)
        })?;
    }
    Ok(SelftestReport {
        device: device_info(device),
        reference:
            "the CPU in f32 with candle's own ops (fast kernels off); truth: the same in f64".into(),
        options: opts.clone(),
        checks,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_passes_within_tolerance_of_the_reference_or_the_floor() {
        // As accurate as the reference, or 10 x: passes; 11 x: fails.
        assert!(check("g", "w", [1e-6, 1e-6, 1.0], OP_FLOOR, 1).passed());
        assert!(check("g", "w", [9.9e-6, 1e-6, 1.0], OP_FLOOR, 1).passed());
        assert!(!check("g", "w", [1.1e-5, 1e-6, 1.0], OP_FLOOR, 1).passed());
        // An exact reference: the floor decides.
        assert!(check("g", "w", [9e-6, 0.0, 1.0], OP_FLOOR, 1).passed());
        assert!(!check("g", "w", [2e-5, 0.0, 1.0], OP_FLOOR, 1).passed());
        assert!(check("g", "w", [9e-3, 0.0, 1.0], MODEL_FLOOR, 1).passed());
        assert!(!check("g", "w", [2e-2, 0.0, 1.0], MODEL_FLOOR, 1).passed());
        // NaN on the device fails; zero everywhere passes.
        assert!(!check("g", "w", [f64::NAN, 0.0, 1.0], OP_FLOOR, 1).passed());
        assert!(check("g", "w", [0.0, 0.0, 0.0], OP_FLOOR, 1).passed());
    }

    #[test]
    fn compare_finds_a_wrong_value_and_measures_the_step_by_l2() -> Result<()> {
        let cpu = Device::Cpu;
        let t = |v: &[f64]| Tensor::new(v, &cpu).unwrap();
        let named = |v: &[f64], w0: &[f64], w1: &[f64]| -> Outputs {
            vec![
                ("output".into(), t(v)),
                (WEIGHTS_BEFORE.into(), t(w0)),
                (WEIGHTS_AFTER.into(), t(w1)),
            ]
        };
        let truth = named(&[1.0, -2.0, 3.0], &[0.0, 0.0], &[0.3, -0.4]);
        let reference = named(&[1.0 + 1e-7, -2.0, 3.0], &[0.0, 0.0], &[0.3, -0.4 + 1e-4]);
        // The device has one value off by 1 % of the largest, and the same step.
        let device = named(&[1.03, -2.0, 3.0], &[0.0, 0.0], &[0.3, -0.4 + 1e-4]);
        let mut checks = Vec::new();
        compare(&mut checks, "g", OP_FLOOR, [device, reference, truth])?;
        assert_eq!(checks.len(), 2);
        assert!(!checks[0].passed(), "{:?}", checks[0]);
        assert!((checks[0].error - 0.03).abs() < 1e-9 && checks[0].scale == 3.0);
        // L2: the step moved the weights by 0.5; both sides are 1e-4 from the truth.
        assert!(checks[1].passed(), "{:?}", checks[1]);
        assert!((checks[1].scale - 0.5).abs() < 1e-12);
        assert!((checks[1].ratio - 1.0).abs() < 1e-6);
        Ok(())
    }
}
