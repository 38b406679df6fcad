//! `cargo xtask bench`: our WAE-MMD training step against the PyTorch peer, and the MMD
//! penalty and the FID Inception network against their PyTorch counterparts.
//!
//! Both sides run the same step (Tolstikhin et al. 2018, MNIST networks at a width
//! divisor, batch of random images in [0, 1], deterministic encoder, loss 0.05 times
//! squared L2 plus 10 times MMD-IMQ, Adam lr 1e-3 betas (0.5, 0.999)) with 2 threads:
//! ours is `wae_train::Model` + `wae_train::Adam`, the peer is
//! `shared/peers/torch_wae_mmd.py`. Every measurement runs in a fresh process (a
//! release build of this binary, or the peer under `xtask/reference/peer_rss.py`), so
//! each reports its own peak RSS. Our runs and the peer's alternate, round after round,
//! and the best images/s of each is kept: the machine is shared and noisy.
//!
//! Two more kinds of row come from the same interleaved rounds: `mmd_imq_d{d}` (forward +
//! backward of the WAE-MMD penalty, IMQ kernel over 7 scales, U-statistic, `batch` codes
//! of dimension `d` against as many prior samples; "images" are codes; the peer is
//! `xtask/reference/mmd_bench_torch.py`, its fastest formulation) and `inception_pool3`
//! (pool3 features of a batch of 299x299 images through the FID Inception-v3 with
//! formula weights, which cost what the real ones do; the peer is pytorch-fid's network
//! in `xtask/reference/inception_reference.py --bench-json`).
//!
//! `--profile` instead times one step of ours per width, per op kind, in the forward
//! pass, the backward pass and the optimiser (see [`print_profile`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Freed large blocks are kept for the next step instead of being unmapped and
/// page-faulted in again (see `wae_kernels::alloc`); the `wae` binary should do the same.
#[global_allocator]
static ALLOC: wae_kernels::alloc::LargeBlockCache =
    wae_kernels::alloc::LargeBlockCache::new(CACHE_BYTES);

const CACHE_BYTES: usize = 1 << 30;

/// Arguments of `cargo xtask bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// One round and fewer steps (a couple of minutes instead of about ten).
    #[arg(long)]
    quick: bool,
    /// Folder for bench.json (and profile.json with --profile).
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Print a per-op profile of one training step per width (no comparison).
    #[arg(long)]
    profile: bool,
    /// Python interpreter with torch installed, for the peer (found on PATH by default).
    #[arg(long, env = "WAE_TORCH_PYTHON", default_value = "python3")]
    torch_python: PathBuf,
    /// The PyTorch peer script [default: <workspace>/../shared/peers/torch_wae_mmd.py].
    #[arg(long)]
    peer_script: Option<PathBuf>,
    /// Interleaved rounds; the best of them is reported [default: 3, 1 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// Width divisors to compare at batch 100 (none: `--widths` alone).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "4,1")]
    widths: Vec<usize>,
    /// Batch sizes of the scaling table (none: `--scaling-batches` alone).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "25,100,400")]
    scaling_batches: Vec<usize>,
    /// Width divisor of the scaling table.
    #[arg(long, default_value_t = 4)]
    scaling_width: usize,
    /// MMD penalty cases as SIZExDIM (codes x latent dimension); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "100x8,1000x64")]
    mmd: Vec<String>,
    /// Batch of the Inception-features case (0 for none).
    #[arg(long, default_value_t = 8)]
    inception_batch: usize,
    /// Run only our side (no PyTorch).
    #[arg(long)]
    no_peer: bool,
    /// Internal: run one measurement in this process and print one JSON line.
    #[arg(long, hide = true)]
    worker: bool,
    /// Internal (worker): what to measure: `step`, `mmd` or `inception`.
    #[arg(long, hide = true, default_value = "step")]
    case: String,
    /// Internal (worker, `--case mmd`): latent dimension.
    #[arg(long, hide = true, default_value_t = 8)]
    mmd_dim: usize,
    /// Internal (worker): width divisor.
    #[arg(long, hide = true, default_value_t = 4)]
    width_div: usize,
    /// Internal (worker): batch size.
    #[arg(long, hide = true, default_value_t = 100)]
    batch: usize,
    /// Internal (worker): timed steps.
    #[arg(long, hide = true, default_value_t = 5)]
    steps: usize,
    /// Internal (worker): untimed warm-up steps.
    #[arg(long, hide = true, default_value_t = 2)]
    warmup: usize,
    /// Internal (worker): budget of the large-block cache in MiB (0 = plain system allocator).
    #[arg(long, hide = true)]
    alloc_cache_mib: Option<usize>,
    /// Internal (worker): run the decoders' up-sampling layers on the GEMM kernel
    /// instead of Winograd (default: whichever `wae_kernels::WinogradMode::Auto` picks).
    #[arg(long, hide = true)]
    no_winograd: bool,
    /// Internal (worker): run every up-sampling layer on Winograd.
    #[arg(long, hide = true)]
    winograd_always: bool,
}

/// Entry point of the subcommand.
pub fn run(args: BenchArgs) -> Result<()> {
    if args.worker {
        if let Some(mib) = args.alloc_cache_mib {
            ALLOC.set_max_cached_bytes(mib << 20);
        }
        if args.no_winograd {
            wae_kernels::set_winograd_mode(wae_kernels::WinogradMode::Never);
        } else if args.winograd_always {
            wae_kernels::set_winograd_mode(wae_kernels::WinogradMode::Always);
        }
        let out = match (args.profile, args.case.as_str()) {
            (true, _) => worker_profile(&args)?,
            (false, "step") => worker_measure(&args)?,
            (false, "mmd") => worker_mmd(&args)?,
            (false, "inception") => worker_inception(&args)?,
            (false, other) => bail!("unknown bench case {other:?}"),
        };
        println!("{out}");
        return Ok(());
    }
    let workspace = crate::workspace::workspace_root();
    let worker = worker_exe(&workspace)?;
    let out_dir = if args.out.is_absolute() {
        args.out.clone()
    } else {
        workspace.join(&args.out)
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    println!("{}", machine_line());
    if args.profile {
        let mut profiles = Vec::new();
        for &wd in &args.widths {
            let p = run_worker(&worker, wd, 100, 3, if wd == 1 { 1 } else { 2 }, true)?;
            print_profile(&p);
            profiles.push(p);
        }
        write_json(&out_dir.join("profile.json"), &Value::Array(profiles))?;
        return Ok(());
    }
    let peer = if args.no_peer {
        None
    } else {
        Some(Peer::locate(&args, &workspace)?)
    };
    println!("SIMD, ours: {}", our_simd());
    if let Some(p) = &peer {
        println!("SIMD, PyTorch: {}", p.simd());
    }
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let mut rows = Vec::new();
    let cases = cases(&args)?;
    let mut results: Vec<(Vec<Value>, Vec<Value>)> = vec![(Vec::new(), Vec::new()); cases.len()];
    let load_before = load_average();
    let started = Instant::now();
    for round in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            eprintln!("[round {}/{rounds}] {}: ours", round + 1, case.label());
            let ours = run_worker_case(&worker, case, args.quick)?;
            eprintln!(
                "    ours {:.1} images/s, peak RSS {:.0} MB",
                f(&ours, "images_per_s"),
                f(&ours, "peak_rss_kb") / 1024.0
            );
            results[i].0.push(ours);
            if let Some(peer) = &peer {
                let theirs = peer.run_case(case, args.quick)?;
                eprintln!(
                    "    peer {:.1} images/s, peak RSS {:.0} MB",
                    f(&theirs, "images_per_s"),
                    f(&theirs, "peak_rss_kb") / 1024.0
                );
                results[i].1.push(theirs);
            }
        }
    }
    let load_after = load_average();
    for (case, (ours, theirs)) in cases.iter().zip(&results) {
        rows.push(summarise(
            &case.row_name(),
            case.width_div(),
            case.batch(),
            ours,
            theirs,
        ));
    }
    print_table(&rows);
    println!(
        "{} rounds, best of each kept; load average before {load_before}, after {load_after}; {:.0} s in all",
        rounds,
        started.elapsed().as_secs_f64()
    );
    let path = out_dir.join("bench.json");
    write_json(&path, &Value::Array(rows))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Timed and warm-up steps for a configuration: about 5-10 s of timed work per run.
fn steps_for(width_div: usize, batch: usize, quick: bool) -> (usize, usize) {
    let work = batch as f64 / 100.0 * if width_div <= 1 { 16.0 } else { 1.0 };
    let steps = if quick { 4.0 / work } else { 10.0 / work };
    (
        steps.round().clamp(1.0, 20.0) as usize,
        if work > 4.0 { 1 } else { 2 },
    )
}

/// One kind of measurement of the comparison table.
#[derive(Clone, Debug, PartialEq)]
enum Case {
    /// The training step (`name`: `train_step` or `train_step_batch_scaling`).
    Step {
        name: &'static str,
        width_div: usize,
        batch: usize,
    },
    /// MMD penalty, forward + backward, `n` codes of dimension `d`.
    Mmd { n: usize, d: usize },
    /// Inception pool3 features of `batch` 299x299 images.
    Inception { batch: usize },
}

impl Case {
    fn label(&self) -> String {
        match self {
            Case::Step {
                name,
                width_div,
                batch,
            } => format!("{name} width_div {width_div} batch {batch}"),
            Case::Mmd { n, d } => format!("MMD penalty n {n} d {d}"),
            Case::Inception { batch } => format!("Inception features batch {batch}"),
        }
    }

    fn row_name(&self) -> String {
        match self {
            Case::Step { name, .. } => (*name).to_string(),
            Case::Mmd { d, .. } => format!("mmd_imq_d{d}"),
            Case::Inception { .. } => "inception_pool3".to_string(),
        }
    }

    fn width_div(&self) -> Option<usize> {
        match self {
            Case::Step { width_div, .. } => Some(*width_div),
            _ => None,
        }
    }

    fn batch(&self) -> usize {
        match self {
            Case::Step { batch, .. } | Case::Inception { batch } => *batch,
            Case::Mmd { n, .. } => *n,
        }
    }

    /// Timed repetitions (and warm-ups, for the training step).
    fn reps(&self, quick: bool) -> (usize, usize) {
        match self {
            Case::Step {
                width_div, batch, ..
            } => steps_for(*width_div, *batch, quick),
            Case::Mmd { n, .. } => (if *n <= 100 { 30 } else { 10 }, 1),
            Case::Inception { .. } => (if quick { 1 } else { 2 }, 1),
        }
    }
}

/// The cases of a comparison run, in table order.
fn cases(args: &BenchArgs) -> Result<Vec<Case>> {
    let mut cases: Vec<Case> = args
        .widths
        .iter()
        .map(|&width_div| Case::Step {
            name: "train_step",
            width_div,
            batch: 100,
        })
        .chain(args.scaling_batches.iter().map(|&batch| Case::Step {
            name: "train_step_batch_scaling",
            width_div: args.scaling_width,
            batch,
        }))
        .collect();
    for spec in args.mmd.iter().filter(|s| !s.is_empty()) {
        let parsed = spec
            .split_once('x')
            .and_then(|(n, d)| Some((n.parse().ok()?, d.parse().ok()?)));
        match parsed {
            Some((n, d)) if n >= 2 && d >= 1 => cases.push(Case::Mmd { n, d }),
            _ => bail!("--mmd takes SIZExDIM with SIZE >= 2 (e.g. 100x8), got {spec:?}"),
        }
    }
    if args.inception_batch > 0 {
        cases.push(Case::Inception {
            batch: args.inception_batch,
        });
    }
    Ok(cases)
}

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn best(runs: &[Value], key: &str) -> Option<f64> {
    runs.iter()
        .map(|r| f(r, key))
        .filter(|v| v.is_finite())
        .reduce(f64::max)
}

fn lowest(runs: &[Value], key: &str) -> Option<f64> {
    runs.iter()
        .map(|r| f(r, key))
        .filter(|v| v.is_finite())
        .reduce(f64::min)
}

/// One row of bench.json.
fn summarise(
    name: &str,
    wd: Option<usize>,
    batch: usize,
    ours: &[Value],
    theirs: &[Value],
) -> Value {
    let ours_ips = best(ours, "images_per_s");
    let peer_ips = best(theirs, "images_per_s");
    let ours_rss = lowest(ours, "peak_rss_kb").map(|kb| kb / 1024.0);
    let peer_rss = lowest(theirs, "peak_rss_kb").map(|kb| kb / 1024.0);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let all = |runs: &[Value]| -> Vec<f64> { runs.iter().map(|r| f(r, "images_per_s")).collect() };
    json!({
        "name": name,
        "width_div": wd,
        "batch": batch,
        "ours_images_per_s": ours_ips,
        "peer_images_per_s": peer_ips,
        "ratio": ratio(ours_ips, peer_ips),
        "ours_peak_rss_mb": ours_rss,
        "peer_peak_rss_mb": peer_rss,
        "rss_ratio": ratio(ours_rss, peer_rss),
        "ours_runs_images_per_s": all(ours),
        "peer_runs_images_per_s": all(theirs),
        "peer": theirs.first().and_then(|r| r.get("torch")).cloned(),
        "peer_framework": theirs.first().and_then(|r| r.get("framework")).cloned(),
        "threads": ours.first().and_then(|r| r.get("threads")).cloned(),
    })
}

fn print_table(rows: &[Value]) {
    let opt = |v: &Value, k: &str, prec: usize| match v.get(k).and_then(Value::as_f64) {
        Some(x) => format!("{x:.prec$}"),
        None => "-".to_string(),
    };
    println!(
        "\n| name | width_div | batch | ours img/s | PyTorch img/s | ratio | ours peak RSS MB | PyTorch peak RSS MB | RSS ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["name"].as_str().unwrap_or("-"),
            opt(r, "width_div", 0),
            r["batch"],
            opt(r, "ours_images_per_s", 1),
            opt(r, "peer_images_per_s", 1),
            opt(r, "ratio", 2),
            opt(r, "ours_peak_rss_mb", 0),
            opt(r, "peer_peak_rss_mb", 0),
            opt(r, "rss_ratio", 2),
        );
    }
}

/// The PyTorch side: interpreter, peer script and the RSS wrapper.
struct Peer {
    python: PathBuf,
    script: PathBuf,
    wrapper: PathBuf,
}

/// The vector instructions our side uses on this CPU: the GEMMs (the `gemm` crate, ours and
/// candle's, built with its `x86-v4` AVX-512 kernels and choosing at run time) and
/// `wae-kernels`' own loops (Winograd transforms, col2im, BatchNorm, Adam: the level
/// `WAE_SIMD` allows; the fused MMD pass of `wae-divergence` is AVX2 + FMA).
fn our_simd() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        let gemm = if avx512 {
            "AVX-512"
        } else if avx2 {
            "AVX2 + FMA"
        } else {
            "SSE/scalar"
        };
        let loops = match wae_kernels::simd_level() {
            wae_kernels::SimdLevel::Avx512 => "AVX-512",
            wae_kernels::SimdLevel::Avx2 => "AVX2 + FMA",
            wae_kernels::SimdLevel::Baseline => "baseline (SSE2)",
        };
        format!(
            "GEMM {gemm} (gemm crate, x86-v4 kernels built in); own loops {loops}; fused MMD \
             {}",
            if avx2 { "AVX2 + FMA" } else { "scalar" }
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "not x86-64: gemm's generic / NEON kernels; own loops scalar".into()
    }
}

impl Peer {
    /// PyTorch's own answer: `torch.backends.cpu.get_cpu_capability()` (the SIMD level its
    /// ATen kernels dispatch to; its GEMMs are oneDNN / MKL, which choose their own).
    fn simd(&self) -> String {
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability())",
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
                format!("torch {text} (torch.backends.cpu.get_cpu_capability)")
            }
            _ => "unknown (torch.backends.cpu.get_cpu_capability failed)".into(),
        }
    }

    fn locate(args: &BenchArgs, workspace: &Path) -> Result<Self> {
        let script = args
            .peer_script
            .clone()
            .unwrap_or_else(|| workspace.join("../shared/peers/torch_wae_mmd.py"));
        if !script.is_file() {
            bail!(
                "PyTorch peer script not found at {} (pass --peer-script, or --no-peer to run only ours)",
                script.display()
            );
        }
        let probe = Command::new(&args.torch_python)
            .args(["-c", "import torch; print(torch.__version__)"])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => bail!(
                "{} cannot import torch ({}); install it (shared/peers/README.md says how), \
                 point --torch-python / WAE_TORCH_PYTHON at one that can, or pass --no-peer",
                args.torch_python.display(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no message")
            ),
            Err(e) => bail!(
                "cannot run {}: {e}; pass --torch-python / WAE_TORCH_PYTHON, or --no-peer",
                args.torch_python.display()
            ),
        }
        Ok(Self {
            python: args.torch_python.clone(),
            script,
            wrapper: workspace.join("xtask/reference/peer_rss.py"),
        })
    }

    /// One measurement of `case` by its PyTorch counterpart, in a fresh interpreter.
    fn run_case(&self, case: &Case, quick: bool) -> Result<Value> {
        let (reps, _) = case.reps(quick);
        let reference = self.wrapper.parent().unwrap_or(Path::new("."));
        let (script, args): (PathBuf, Vec<String>) = match case {
            // The peer script always warms up 3 steps itself.
            Case::Step {
                width_div, batch, ..
            } => (
                self.script.clone(),
                vec![
                    format!("--width-div={width_div}"),
                    format!("--batch={batch}"),
                    format!("--steps={reps}"),
                ],
            ),
            Case::Mmd { n, d } => (
                reference.join("mmd_bench_torch.py"),
                vec![
                    format!("--sizes={n}"),
                    format!("--dims={d}"),
                    "--variants=summed".into(),
                    format!("--reps={reps}"),
                ],
            ),
            Case::Inception { batch } => (
                reference.join("inception_reference.py"),
                vec![
                    "--bench-json".into(),
                    "--batch".into(),
                    batch.to_string(),
                    "--reps".into(),
                    reps.to_string(),
                ],
            ),
        };
        let out = Command::new(&self.python)
            .arg(&self.wrapper)
            .arg(&script)
            .args(&args)
            .args(["--threads", "2"])
            .output()
            .with_context(|| format!("running {}", self.python.display()))?;
        if !out.status.success() {
            bail!(
                "PyTorch peer {} failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut merged = serde_json::Map::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(line) {
                merged.extend(m);
            }
        }
        if let Case::Mmd { n, .. } = case {
            // mmd_bench_torch.py reports the fastest step in milliseconds.
            let best_ms = merged.get("best_ms").and_then(Value::as_f64);
            if let Some(ms) = best_ms.filter(|ms| *ms > 0.0) {
                merged.insert("images_per_s".into(), json!(*n as f64 / (ms / 1e3)));
                merged.insert("framework".into(), json!("PyTorch (summed formulation)"));
            }
        }
        if !merged.contains_key("images_per_s") {
            bail!("PyTorch peer {} printed no images_per_s", script.display());
        }
        Ok(Value::Object(merged))
    }
}

/// A release build of this binary to run measurements in (this one if it is one).
fn worker_exe(workspace: &Path) -> Result<PathBuf> {
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
fn run_worker_case(exe: &Path, case: &Case, quick: bool) -> Result<Value> {
    let (reps, warmup) = case.reps(quick);
    match case {
        Case::Step {
            width_div, batch, ..
        } => run_worker(exe, *width_div, *batch, reps, warmup, false),
        Case::Mmd { n, d } => run_worker_with(
            exe,
            &[
                "--case=mmd".into(),
                format!("--batch={n}"),
                format!("--mmd-dim={d}"),
                format!("--steps={reps}"),
            ],
        ),
        Case::Inception { batch } => run_worker_with(
            exe,
            &[
                "--case=inception".into(),
                format!("--batch={batch}"),
                format!("--steps={reps}"),
            ],
        ),
    }
}

fn run_worker(
    exe: &Path,
    width_div: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
    profile: bool,
) -> Result<Value> {
    let mut args = vec![
        format!("--width-div={width_div}"),
        format!("--batch={batch}"),
        format!("--steps={steps}"),
        format!("--warmup={warmup}"),
    ];
    if profile {
        args.push("--profile".into());
    }
    run_worker_with(exe, &args)
}

/// Runs `exe bench --worker ARGS...` and parses the JSON line it prints last.
fn run_worker_with(exe: &Path, args: &[String]) -> Result<Value> {
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

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    wae_io::write_atomic(path, &text).with_context(|| format!("writing {}", path.display()))
}

/// `model name, N cores` of this machine.
fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("machine: {cpu}, {cores} cores available; our worker threads: rayon default ({cores})")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
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

/// The model, optimiser and data of one benchmark process; the step timed is
/// `wae_train::TrainStep`, the one `wae train` runs.
struct Step {
    model: wae_train::Model,
    train: wae_train::TrainStep,
    x: Tensor,
    rng: StdRng,
    batch: usize,
}

impl Step {
    fn new(width_div: usize, batch: usize) -> Result<Self> {
        let device = Device::Cpu;
        let mut config =
            wae_train::ModelConfig::for_architecture(wae_nets::Architecture::MnistDcgan)
                .with_width_div(width_div);
        config.encoder.kind = wae_nets::EncoderKind::Deterministic;
        let objective =
            wae_objectives::ObjectiveConfig::WaeMmd(wae_objectives::WaeMmdConfig::default());
        let vars = wae_train::init::SeededVarMap::new(0);
        let model =
            wae_train::Model::new(&config, &objective, vars.var_builder(DType::F32, &device))?;
        let adam = wae_train::Adam::new(
            wae_nets::trainable_vars(vars.var_map(), ""),
            wae_train::AdamConfig::default(),
        )?;
        let mut rng = StdRng::seed_from_u64(0);
        let pixels: Vec<f32> = (0..batch * 28 * 28).map(|_| rng.random::<f32>()).collect();
        let x = Tensor::from_vec(pixels, (batch, 1, 28, 28), &device)?;
        Ok(Self {
            model,
            train: wae_train::TrainStep::new(adam, None),
            x,
            rng,
            batch,
        })
    }

    /// One training step; returns the loss and the seconds of (forward, backward,
    /// optimiser); drawing the step's noise counts as forward.
    fn step(&mut self) -> Result<(f32, [f64; 3])> {
        let t0 = Instant::now();
        let noise = self
            .model
            .draw_noise(self.batch, &mut self.rng, &Device::Cpu)?;
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
}

fn worker_measure(args: &BenchArgs) -> Result<Value> {
    let mut step = Step::new(args.width_div, args.batch)?;
    let mut loss = 0f32;
    for _ in 0..args.warmup {
        loss = step.step()?.0;
    }
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
    let min = |v: &[f64]| v.iter().copied().reduce(f64::min);
    if !loss.is_finite() {
        bail!("the loss is not finite: {loss}");
    }
    let steps = args.steps.max(1);
    Ok(json!({
        "framework": "wae (candle + wae-kernels)",
        "width_div": args.width_div,
        "batch": args.batch,
        "steps": steps,
        "images_per_s": (args.batch * steps) as f64 / dt,
        "s_per_step": dt / steps as f64,
        "loss": loss,
        "threads": rayon::current_num_threads(),
        "peak_rss_kb": peak_rss_kb(),
        "min_step_wall_s": min(&step_wall),
        "min_step_cpu_s": min(&step_cpu),
    }))
}

/// Forward + backward of the default WAE-MMD penalty (`wae_divergence::mmd`: IMQ over 7
/// scales, U-statistic, f32) of `--batch` codes ~ N(0, 2 I) of dimension `--mmd-dim`
/// against as many N(0, I) prior samples, as `xtask/reference/mmd_bench_torch.py` does;
/// "images" per second are codes per second of the fastest of `--steps` steps.
fn worker_mmd(args: &BenchArgs) -> Result<Value> {
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
    Ok(json!({
        "framework": "wae-divergence (fused CPU kernel)",
        "n": n,
        "d": d,
        "steps": args.steps.max(1),
        "best_ms": best * 1e3,
        "images_per_s": n as f64 / best,
        "threads": rayon::current_num_threads(),
        "peak_rss_kb": peak_rss_kb(),
    }))
}

/// Pool3 features of `--batch` 299x299 RGB images through the FID Inception-v3
/// (`wae_metrics::InceptionV3`, formula weights), `--steps` batches after one warm-up
/// batch, as `xtask/reference/inception_reference.py --bench-json` does.
fn worker_inception(args: &BenchArgs) -> Result<Value> {
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
    Ok(json!({
        "framework": "wae-metrics (candle + wae-kernels)",
        "batch": batch,
        "reps": reps,
        "images_per_s": (reps * batch) as f64 / dt,
        "threads": rayon::current_num_threads(),
        "peak_rss_kb": peak_rss_kb(),
    }))
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

/// Kernel time per op kind accumulated during one phase, as JSON rows.
fn kernel_rows(pass_is_backward: bool) -> (Vec<Value>, f64) {
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
            json!({"op": t.kind.name(), "seconds": d.as_secs_f64(), "calls": calls})
        })
        .collect();
    (rows, total)
}

/// Times `steps` steps after the warm-up, each phase with the kernel counters reset
/// before it, and keeps the fastest step. The phases are run one by one here (the
/// counters are read between them), with the same model, objective and optimiser as
/// `TrainStep`; the throughput rows time `TrainStep::step` itself.
fn worker_profile(args: &BenchArgs) -> Result<Value> {
    let mut step = Step::new(args.width_div, args.batch)?;
    for _ in 0..args.warmup {
        step.step()?;
    }
    let mut best: Option<(f64, Value)> = None;
    for _ in 0..args.steps.max(1) {
        // The three phases, each with its own kernel counters.
        let t0 = Instant::now();
        wae_kernels::profile::reset();
        let noise = step
            .model
            .draw_noise(step.batch, &mut step.rng, &Device::Cpu)?;
        let (parts, _) = step.model.losses(&step.x, &noise, true)?;
        let forward = t0.elapsed().as_secs_f64();
        let (fwd_rows, fwd_kernels) = kernel_rows(false);
        wae_kernels::profile::reset();
        let t1 = Instant::now();
        let grads = parts.total.backward()?;
        let backward = t1.elapsed().as_secs_f64();
        let (bwd_rows, bwd_kernels) = kernel_rows(true);
        let t2 = Instant::now();
        step.train.autoencoder_optimizer_mut().step(&grads)?;
        drop(grads);
        let loss = parts.total.to_scalar::<f32>()?;
        let optimizer = t2.elapsed().as_secs_f64();
        let total = forward + backward + optimizer;
        let value = json!({
            "width_div": args.width_div,
            "batch": args.batch,
            "threads": rayon::current_num_threads(),
            "loss": loss,
            "step_seconds": total,
            "forward": {"seconds": forward, "kernels": fwd_rows, "other_seconds": forward - fwd_kernels},
            "backward": {"seconds": backward, "kernels": bwd_rows, "other_seconds": backward - bwd_kernels},
            "optimizer": {"seconds": optimizer},
        });
        if best.as_ref().is_none_or(|(t, _)| total < *t) {
            best = Some((total, value));
        }
    }
    best.map(|(_, v)| v).context("no step was profiled")
}

/// Prints one width's profile: milliseconds per op kind in each phase.
///
/// What it measures: wall time of one training step (the fastest of three after
/// warm-up), split into the forward pass (noise draw, encoder, decoder, loss and MMD),
/// the backward pass (`loss.backward()`, all gradients) and the Adam update. Within the
/// two passes, the time inside each wae-kernels op (convolution, transposed
/// convolution, BatchNorm; their own counters) is listed; "other" is the rest of the
/// pass: candle's own ops (linear layers, ReLU, sigmoid, reconstruction loss, MMD) and,
/// in the backward pass, candle's autograd bookkeeping (gradient accumulation).
fn print_profile(p: &Value) {
    let ms = |v: &Value| v.as_f64().unwrap_or(f64::NAN) * 1e3;
    println!(
        "\nprofile: width_div {} batch {} ({} threads), one step {:.1} ms",
        p["width_div"],
        p["batch"],
        p["threads"],
        ms(&p["step_seconds"])
    );
    println!("| phase | op | ms | calls | share of step |");
    println!("|---|---|---|---|---|");
    let step = ms(&p["step_seconds"]);
    for phase in ["forward", "backward"] {
        let ph = &p[phase];
        if let Some(rows) = ph["kernels"].as_array() {
            for r in rows {
                let t = ms(&r["seconds"]);
                println!(
                    "| {phase} | {} | {t:.1} | {} | {:.0}% |",
                    r["op"].as_str().unwrap_or("?"),
                    r["calls"],
                    100.0 * t / step
                );
            }
        }
        let other = ms(&ph["other_seconds"]);
        println!(
            "| {phase} | other (candle ops{}) | {other:.1} | | {:.0}% |",
            if phase == "backward" {
                ", autograd"
            } else {
                ""
            },
            100.0 * other / step
        );
        println!(
            "| {phase} | **total** | {:.1} | | {:.0}% |",
            ms(&ph["seconds"]),
            100.0 * ms(&ph["seconds"]) / step
        );
    }
    let opt = ms(&p["optimizer"]["seconds"]);
    println!(
        "| optimizer | Adam (wae-train) | {opt:.1} | | {:.0}% |",
        100.0 * opt / step
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::parse_from(std::iter::once("bench").chain(args.iter().copied())).bench
    }

    /// The default run compares the training step at both widths and three batch sizes,
    /// the MMD penalty at the MNIST and a CelebA-like size, and the Inception network.
    #[test]
    fn default_cases_cover_step_mmd_and_inception() -> Result<()> {
        let cases = cases(&parse(&[]))?;
        let names: Vec<String> = cases.iter().map(Case::row_name).collect();
        assert_eq!(
            names,
            [
                "train_step",
                "train_step",
                "train_step_batch_scaling",
                "train_step_batch_scaling",
                "train_step_batch_scaling",
                "mmd_imq_d8",
                "mmd_imq_d64",
                "inception_pool3",
            ]
        );
        assert_eq!(cases[5], Case::Mmd { n: 100, d: 8 });
        assert_eq!(cases[6].batch(), 1000);
        assert_eq!(cases[6].width_div(), None);
        assert_eq!(cases[1].width_div(), Some(1));
        // Rows without a width divisor keep the bench.json schema (null width_div).
        let row = summarise(
            "mmd_imq_d8",
            None,
            100,
            &[json!({"images_per_s": 4.0})],
            &[],
        );
        assert!(row["width_div"].is_null());
        assert!(row["ratio"].is_null());
        Ok(())
    }

    #[test]
    fn cases_can_be_left_out_and_bad_sizes_are_refused() -> Result<()> {
        let only_steps = cases(&parse(&["--mmd=", "--inception-batch=0", "--widths=4"]))?;
        assert!(only_steps.iter().all(|c| matches!(c, Case::Step { .. })));
        assert_eq!(only_steps.len(), 4);
        let no_steps = cases(&parse(&["--widths", "--scaling-batches", "--mmd=100x8"]))?;
        assert_eq!(
            no_steps,
            [Case::Mmd { n: 100, d: 8 }, Case::Inception { batch: 8 }]
        );
        for bad in ["--mmd=100", "--mmd=1x8", "--mmd=ax8", "--mmd=100x0"] {
            let err = cases(&parse(&[bad])).unwrap_err().to_string();
            assert!(err.contains("SIZExDIM"), "{bad}: {err}");
        }
        Ok(())
    }
}
