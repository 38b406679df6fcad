//! Our side of `cargo xtask bench`: each measurement runs in a fresh release process
//! (`xtask bench --worker ...`), which times one case in-process and prints one JSON line
//! (a [`StepRun`], [`MmdRun`], [`InceptionRun`] or, with `--profile`, a [`Profile`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wae_train::bench::StepBench;

use super::report::{KernelTime, Measurement, OptimizerTime, Pass, Profile};
use super::{BenchArgs, Case};

/// What a `--case step` worker prints: the timed training steps.
#[derive(Debug, Serialize)]
pub(super) struct StepRun {
    framework: &'static str,
    width_div: usize,
    batch: usize,
    steps: usize,
    images_per_s: f64,
    s_per_step: f64,
    loss: f32,
    threads: usize,
    peak_rss_kb: Option<f64>,
    min_step_wall_s: Option<f64>,
    min_step_cpu_s: Option<f64>,
    /// GFLOP (2 x multiply-adds) of the products of one step: every convolution and
    /// linear layer, forward and the gradients, counted by `wae_kernels::profile` as the
    /// direct algorithm does them.
    product_gflop_per_step: f64,
}

/// What a `--case gemm` worker prints: the fastest n x n by n x n f32 product through
/// candle's `matmul` (the gemm crate, as our GEMMs run).
#[derive(Debug, Serialize)]
pub(super) struct GemmRun {
    framework: &'static str,
    n: usize,
    reps: usize,
    best_s: f64,
    /// Products per second (the bench's "images" of this row).
    images_per_s: f64,
    gflops: f64,
    threads: usize,
    peak_rss_kb: Option<f64>,
}

/// What a `--case mmd` worker prints: the fastest forward + backward of the penalty.
#[derive(Debug, Serialize)]
pub(super) struct MmdRun {
    framework: &'static str,
    n: usize,
    d: usize,
    steps: usize,
    best_ms: f64,
    images_per_s: f64,
    threads: usize,
    peak_rss_kb: Option<f64>,
}

/// What a `--case inception` worker prints: Inception pool3 features per second.
#[derive(Debug, Serialize)]
pub(super) struct InceptionRun {
    framework: &'static str,
    batch: usize,
    reps: usize,
    images_per_s: f64,
    threads: usize,
    peak_rss_kb: Option<f64>,
}

pub(super) fn exe(workspace: &Path) -> Result<PathBuf> {
    if !cfg!(debug_assertions) {
        return std::env::current_exe().context("locating this executable");
    }
    eprintln!("building the release worker: cargo build --release -p xtask");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "xtask"])
        .current_dir(workspace)
        .status()
        .context("running cargo build --release -p xtask")?;
    if !status.success() {
        bail!("cargo build --release -p xtask failed");
    }
    let exe = crate::workspace::target_dir()
        .join("release")
        .join(format!("xtask{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        bail!("release worker not found at {}", exe.display());
    }
    Ok(exe)
}

/// One measurement of `case` by our side, in a fresh process.
pub(super) fn run_case(exe: &Path, case: &Case, quick: bool) -> Result<Measurement> {
    let (reps, warmup) = case.reps(quick);
    match case {
        Case::Step {
            width_div, batch, ..
        } => run_step(exe, *width_div, *batch, reps, warmup, false),
        Case::Mmd { n, d } => run_with(
            exe,
            &[
                "--case=mmd".into(),
                format!("--batch={n}"),
                format!("--mmd-dim={d}"),
                format!("--steps={reps}"),
            ],
        ),
        Case::Inception { batch } => run_with(
            exe,
            &[
                "--case=inception".into(),
                format!("--batch={batch}"),
                format!("--steps={reps}"),
            ],
        ),
        Case::Eval { n } => run_with(exe, &["--case=eval".into(), format!("--batch={n}")]),
        Case::Gemm { n } => run_with(
            exe,
            &[
                "--case=gemm".into(),
                format!("--batch={n}"),
                format!("--steps={reps}"),
            ],
        ),
        Case::FcStep { batch } => run_with(
            exe,
            &[
                "--case=fc".into(),
                format!("--batch={batch}"),
                format!("--steps={reps}"),
                format!("--warmup={warmup}"),
            ],
        ),
    }
}

/// Runs one `--case step` worker (`profile`: with `--profile`).
pub(super) fn run_step<T: DeserializeOwned>(
    exe: &Path,
    width_div: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
    profile: bool,
) -> Result<T> {
    let mut args = vec![
        format!("--width-div={width_div}"),
        format!("--batch={batch}"),
        format!("--steps={steps}"),
        format!("--warmup={warmup}"),
    ];
    if profile {
        args.push("--profile".into());
    }
    run_with(exe, &args)
}

/// Runs `exe bench --worker ARGS...` and parses the JSON line it prints last.
fn run_with<T: DeserializeOwned>(exe: &Path, args: &[String]) -> Result<T> {
    let out = Command::new(exe)
        .args(["bench", "--worker"])
        .args(args)
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "worker ({}) failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("worker printed {line:?}"))
}

/// The vector instructions our side uses on this CPU: the GEMMs (the `gemm` crate, ours and
/// candle's, built with its `x86-v4` AVX-512 kernels and choosing at run time),
/// `wae-kernels`' own loops (Winograd transforms, col2im, BatchNorm, Adam) and the fused
/// MMD pass of `wae-divergence`, each at the level `WAE_SIMD` allows.
pub(super) fn our_simd() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let gemm = if std::arch::is_x86_feature_detected!("avx512f") {
            "AVX-512"
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            "AVX2 + FMA"
        } else {
            "SSE/scalar"
        };
        let loops = match wae_kernels::simd_level() {
            wae_kernels::SimdLevel::Avx512 => "AVX-512",
            wae_kernels::SimdLevel::Avx2 => "AVX2 + FMA",
            wae_kernels::SimdLevel::Baseline => "baseline (SSE2)",
        };
        let mmd = match wae_divergence::simd_level() {
            wae_divergence::SimdLevel::Avx512 => "AVX-512",
            wae_divergence::SimdLevel::Avx2 => "AVX2 + FMA",
            wae_divergence::SimdLevel::Baseline => "baseline (SSE2)",
        };
        format!(
            "GEMM {gemm} (gemm crate, x86-v4 kernels built in); own loops {loops}; fused MMD \
             {mmd}"
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "not x86-64: gemm's generic / NEON kernels; own loops scalar".into()
    }
}

/// Peak resident set size of this process in kB (VmHWM).
fn peak_rss_kb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub(super) fn measure_step(args: &BenchArgs) -> Result<StepRun> {
    let step = StepBench::new(args.width_div, args.batch, &Device::Cpu)?;
    time_steps(step, args, args.width_div)
}

/// The fully connected dSprites step ([`super::FC_PRESET`]).
pub(super) fn measure_fc_step(args: &BenchArgs) -> Result<StepRun> {
    let cfg = wae_train::preset(super::FC_PRESET)?;
    let step = StepBench::from_config(&cfg, args.batch, &Device::Cpu)?;
    time_steps(step, args, 1)
}

fn time_steps(mut step: StepBench, args: &BenchArgs, width_div: usize) -> Result<StepRun> {
    let mut loss = 0f32;
    for _ in 0..args.warmup {
        loss = step.step()?.0;
    }
    wae_kernels::profile::reset();
    let start = Instant::now();
    let mut step_cpu = Vec::new();
    let mut step_wall = Vec::new();
    for _ in 0..args.steps.max(1) {
        let (c0, t0) = (process_cpu_seconds(), Instant::now());
        loss = step.step()?.0;
        step_wall.push(t0.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (c0, process_cpu_seconds()) {
            step_cpu.push(b - a);
        }
    }
    let dt = start.elapsed().as_secs_f64();
    let madds: u64 = wae_kernels::profile::snapshot()
        .iter()
        .map(|t| t.forward_madds + t.backward_madds)
        .sum();
    let min = |v: &[f64]| v.iter().copied().reduce(f64::min);
    if !loss.is_finite() {
        bail!("the loss is not finite: {loss}");
    }
    let steps = args.steps.max(1);
    Ok(StepRun {
        framework: "wae (candle + wae-kernels)",
        width_div,
        batch: args.batch,
        steps,
        images_per_s: (args.batch * steps) as f64 / dt,
        s_per_step: dt / steps as f64,
        loss,
        threads: rayon::current_num_threads(),
        peak_rss_kb: peak_rss_kb(),
        min_step_wall_s: min(&step_wall),
        min_step_cpu_s: min(&step_cpu),
        product_gflop_per_step: 2.0 * madds as f64 / 1e9 / steps as f64,
    })
}

/// The fastest of `--steps` products of two random `--batch` x `--batch` f32 matrices
/// through candle's `matmul` (the gemm crate with its run-time choice of kernels, on
/// rayon's threads), after one untimed product, as `xtask/peers/torch_gemm.py` does.
pub(super) fn measure_gemm(args: &BenchArgs) -> Result<GemmRun> {
    let n = args.batch;
    if n == 0 {
        bail!("the GEMM case needs a positive size");
    }
    let dev = Device::Cpu;
    let a = Tensor::randn(0f32, 1., (n, n), &dev)?;
    let b = Tensor::randn(0f32, 1., (n, n), &dev)?;
    let mut c = a.matmul(&b)?;
    let mut best = f64::INFINITY;
    let reps = args.steps.max(1);
    for _ in 0..reps {
        let t0 = Instant::now();
        c = a.matmul(&b)?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let sum = c.sum_all()?.to_scalar::<f32>()?;
    if !sum.is_finite() {
        bail!("the product is not finite");
    }
    Ok(GemmRun {
        framework: "wae (candle matmul, gemm crate)",
        n,
        reps,
        best_s: best,
        images_per_s: 1.0 / best,
        gflops: 2.0 * (n as f64).powi(3) / best / 1e9,
        threads: rayon::current_num_threads(),
        peak_rss_kb: peak_rss_kb(),
    })
}

/// Forward + backward of the default WAE-MMD penalty (`wae_divergence::mmd`: IMQ over 7
/// scales, U-statistic, f32) of `--batch` codes ~ N(0, 2 I) of dimension `--mmd-dim`
/// against as many N(0, I) prior samples, as `xtask/reference/mmd_bench_torch.py` does;
/// "images" per second are codes per second of the fastest of `--steps` steps.
pub(super) fn measure_mmd(args: &BenchArgs) -> Result<MmdRun> {
    use wae_divergence::{MmdConfig, Prior, mmd};
    let (n, d) = (args.batch, args.mmd_dim);
    let dev = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(0);
    let codes = Prior::Normal { variance: 2.0 }.sample(n, d, &mut rng, &dev, DType::F32)?;
    let codes = candle_core::Var::from_tensor(&codes)?;
    let prior = Prior::default().sample(n, d, &mut rng, &dev, DType::F32)?;
    let cfg = MmdConfig::default();
    let step = || -> Result<f64> {
        let t = Instant::now();
        let value = mmd(codes.as_tensor(), &prior, &cfg)?;
        let grads = value.backward()?;
        let g = grads
            .get(codes.as_tensor())
            .context("no gradient for the codes")?;
        // Read one element so that nothing is skipped.
        g.get(0)?.get(0)?.to_scalar::<f32>()?;
        Ok(t.elapsed().as_secs_f64())
    };
    step()?;
    let mut best = f64::INFINITY;
    for _ in 0..args.steps.max(1) {
        best = best.min(step()?);
    }
    Ok(MmdRun {
        framework: "wae-divergence (fused CPU kernel)",
        n,
        d,
        steps: args.steps.max(1),
        best_ms: best * 1e3,
        images_per_s: n as f64 / best,
        threads: rayon::current_num_threads(),
        peak_rss_kb: peak_rss_kb(),
    })
}

/// Pool3 features of `--batch` 299x299 RGB images through the FID Inception-v3
/// (`wae_metrics::InceptionV3`, formula weights), `--steps` batches after one warm-up
/// batch, as `xtask/reference/inception_reference.py --bench-json` does.
pub(super) fn measure_inception(args: &BenchArgs) -> Result<InceptionRun> {
    use wae_metrics::testing::{inception_formula_weights, uniform};
    use wae_metrics::{InceptionConfig, InceptionV3};
    let dev = Device::Cpu;
    let weights = inception_formula_weights(&dev)?;
    let net = InceptionV3::new(
        &InceptionConfig::default(),
        candle_nn::VarBuilder::from_tensors(weights, DType::F32, &dev),
    )?;
    let batch = args.batch.max(1);
    let values: Vec<f32> = (0..(batch * 3 * 299 * 299) as u64)
        .map(|k| uniform(1, k) as f32)
        .collect();
    let images = Tensor::from_vec(values, (batch, 3, 299, 299), &dev)?;
    net.features(&images)?;
    let reps = args.steps.max(1);
    let t = Instant::now();
    for _ in 0..reps {
        net.features(&images)?.sum_all()?.to_scalar::<f32>()?;
    }
    let dt = t.elapsed().as_secs_f64();
    Ok(InceptionRun {
        framework: "wae-metrics (wae-kernels channels-last)",
        batch,
        reps,
        images_per_s: (reps * batch) as f64 / dt,
        threads: rayon::current_num_threads(),
        peak_rss_kb: peak_rss_kb(),
    })
}

/// What a `--case eval` worker prints: one evaluation of `n` samples.
#[derive(Debug, Serialize)]
pub(super) struct EvalRun {
    framework: &'static str,
    n: usize,
    images_per_s: f64,
    seconds: f64,
    fid: f64,
    precision: f64,
    recall: f64,
    kid: f64,
    mmd: f64,
    /// Seconds of the parts: features, FID + precision / recall + KID, MMD.
    features_s: f64,
    scores_s: f64,
    mmd_s: f64,
    threads: usize,
    peak_rss_kb: Option<f64>,
}

/// The evaluation of `--batch` generated images against as many real ones, as `wae eval`
/// computes it (`wae_train::evaluate::{batched_features, feature_scores}`): the MNIST
/// classifier's 128-d features of both sets (seeded random weights: the cost does not
/// depend on them), FID, precision / recall (k = 3), KID (100 subsets of 1,000), and the
/// MMD^2 of `--batch` 8-d codes to as many prior draws (IMQ, blocks of 1,000). Images
/// are uniform random; "images" per second are evaluated samples per second.
pub(super) fn measure_eval(args: &BenchArgs) -> Result<EvalRun> {
    use wae_metrics::mnist_classifier::{MnistClassifier, MnistClassifierConfig};
    let dev = Device::Cpu;
    let n = args.batch.max(2);
    let vars = wae_train::init::SeededVarMap::new(0);
    let net = MnistClassifier::new(
        &MnistClassifierConfig::default(),
        vars.var_builder(DType::F32, &dev),
    )?;
    let mut rng = StdRng::seed_from_u64(0);
    let mut images = || -> Result<Tensor> {
        let v: Vec<f32> = (0..n * 28 * 28)
            .map(|_| rand::Rng::random(&mut rng))
            .collect();
        Ok(Tensor::from_vec(v, (n, 1, 28, 28), &dev)?)
    };
    let (real, generated) = (images()?, images()?);
    let prior = wae_divergence::Prior::Normal { variance: 1.0 };
    let codes = (prior.sample(n, 8, &mut rng, &dev, DType::F32)? * 1.2)?;
    let draws = prior.sample(n, 8, &mut rng, &dev, DType::F32)?;
    let t = Instant::now();
    let real_f = wae_train::evaluate::batched_features(&real, &dev, |x| net.features(x))?;
    let gen_f = wae_train::evaluate::batched_features(&generated, &dev, |x| net.features(x))?;
    let features_s = t.elapsed().as_secs_f64();
    let scores = wae_train::evaluate::feature_scores(&real_f, &gen_f)?;
    let scores_s = t.elapsed().as_secs_f64() - features_s;
    let mmd = wae_divergence::mmd_blockwise(&codes, &draws, &Default::default(), 1000)?;
    let seconds = t.elapsed().as_secs_f64();
    Ok(EvalRun {
        framework: "wae (candle + wae-kernels)",
        n,
        images_per_s: n as f64 / seconds,
        seconds,
        fid: scores.fid,
        precision: scores.precision,
        recall: scores.recall,
        kid: scores.kid.map(|k| k.mean).unwrap_or(f64::NAN),
        mmd,
        features_s,
        scores_s,
        mmd_s: seconds - features_s - scores_s,
        threads: rayon::current_num_threads(),
        peak_rss_kb: peak_rss_kb(),
    })
}

/// User + system CPU time of this process (all threads), from /proc/self/stat, in
/// seconds (10 ms resolution).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Kernel time per op kind accumulated during one phase, and their sum in seconds.
fn kernel_rows(pass_is_backward: bool) -> (Vec<KernelTime>, f64) {
    let mut total = 0.0;
    let rows = wae_kernels::profile::snapshot()
        .into_iter()
        .map(|t| {
            let (d, calls) = if pass_is_backward {
                (t.backward, t.backward_calls)
            } else {
                (t.forward, t.forward_calls)
            };
            total += d.as_secs_f64();
            KernelTime {
                op: t.kind.name().to_string(),
                seconds: d.as_secs_f64(),
                calls,
            }
        })
        .collect();
    (rows, total)
}

/// Times `steps` steps after the warm-up, each phase with the kernel counters reset
/// before it, and keeps the fastest step. The phases are run one by one here (the
/// counters are read between them), with the same model, objective and optimiser as
/// `TrainStep`; the throughput rows time `TrainStep::step` itself.
pub(super) fn profile_step(args: &BenchArgs) -> Result<Profile> {
    let mut step = StepBench::new(args.width_div, args.batch, &Device::Cpu)?;
    for _ in 0..args.warmup {
        step.step()?;
    }
    let mut best: Option<(f64, Profile)> = None;
    for _ in 0..args.steps.max(1) {
        // The three phases, each with its own kernel counters.
        let t0 = Instant::now();
        wae_kernels::profile::reset();
        let noise = step.draw_noise()?;
        let (parts, _) = step.model().losses(step.images(), &noise, true)?;
        let forward = t0.elapsed().as_secs_f64();
        let (fwd_rows, fwd_kernels) = kernel_rows(false);
        wae_kernels::profile::reset();
        let t1 = Instant::now();
        let grads = parts.total.backward()?;
        let backward = t1.elapsed().as_secs_f64();
        let (bwd_rows, bwd_kernels) = kernel_rows(true);
        let t2 = Instant::now();
        step.train_step_mut()
            .autoencoder_optimizer_mut()
            .step(&grads)?;
        drop(grads);
        let loss = parts.total.to_scalar::<f32>()?;
        let optimizer = t2.elapsed().as_secs_f64();
        let total = forward + backward + optimizer;
        let value = Profile {
            width_div: args.width_div,
            batch: args.batch,
            threads: rayon::current_num_threads(),
            loss,
            step_seconds: total,
            forward: Pass {
                seconds: forward,
                kernels: fwd_rows,
                other_seconds: forward - fwd_kernels,
            },
            backward: Pass {
                seconds: backward,
                kernels: bwd_rows,
                other_seconds: backward - bwd_kernels,
            },
            optimizer: OptimizerTime { seconds: optimizer },
        };
        if best.as_ref().is_none_or(|(t, _)| total < *t) {
            best = Some((total, value));
        }
    }
    best.map(|(_, v)| v).context("no step was profiled")
}
