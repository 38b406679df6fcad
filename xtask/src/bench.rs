//! `cargo xtask bench`: our WAE-MMD training step against the PyTorch peer.
//!
//! Both sides run the same step (Tolstikhin et al. 2018, MNIST networks at a width
//! divisor, batch of random images in [0, 1], deterministic encoder, loss 0.05 times
//! squared L2 plus 10 times MMD-IMQ, Adam lr 1e-3 betas (0.5, 0.999)) with 2 threads:
//! ours is `wae_objectives::Model` + `wae_train::Adam`, the peer is
//! `shared/peers/torch_wae_mmd.py`. Every measurement runs in a fresh process (a
//! release build of this binary, or the peer under `xtask/reference/peer_rss.py`), so
//! each reports its own peak RSS. Our runs and the peer's alternate, round after round,
//! and the best images/s of each is kept: the machine is shared and noisy.
//!
//! `--profile` instead times one step of ours per width, per op kind, in the forward
//! pass, the backward pass and the optimiser (see [`print_profile`]).

use std::io::Write;
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
    /// Python interpreter with torch installed, for the peer.
    #[arg(
        long,
        env = "WAE_TORCH_PYTHON",
        default_value = "/work/venv/bin/python"
    )]
    torch_python: PathBuf,
    /// The PyTorch peer script [default: <workspace>/../shared/peers/torch_wae_mmd.py].
    #[arg(long)]
    peer_script: Option<PathBuf>,
    /// Interleaved rounds; the best of them is reported [default: 3, 1 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// Width divisors to compare at batch 100.
    #[arg(long, value_delimiter = ',', default_value = "4,1")]
    widths: Vec<usize>,
    /// Batch sizes of the scaling table.
    #[arg(long, value_delimiter = ',', default_value = "25,100,400")]
    scaling_batches: Vec<usize>,
    /// Width divisor of the scaling table.
    #[arg(long, default_value_t = 4)]
    scaling_width: usize,
    /// Run only our side (no PyTorch).
    #[arg(long)]
    no_peer: bool,
    /// Internal: run one measurement in this process and print one JSON line.
    #[arg(long, hide = true)]
    worker: bool,
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
        let out = if args.profile {
            worker_profile(&args)?
        } else {
            worker_measure(&args)?
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
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let mut rows = Vec::new();
    let configs: Vec<(&str, usize, usize)> = args
        .widths
        .iter()
        .map(|&wd| ("train_step", wd, 100))
        .chain(
            args.scaling_batches
                .iter()
                .map(|&b| ("train_step_batch_scaling", args.scaling_width, b)),
        )
        .collect();
    let mut results: Vec<(Vec<Value>, Vec<Value>)> = vec![(Vec::new(), Vec::new()); configs.len()];
    let load_before = load_average();
    let started = Instant::now();
    for round in 0..rounds {
        for (i, &(name, wd, batch)) in configs.iter().enumerate() {
            let (steps, warmup) = steps_for(wd, batch, args.quick);
            eprintln!(
                "[round {}/{rounds}] {name} width_div {wd} batch {batch}: ours",
                round + 1
            );
            let ours = run_worker(&worker, wd, batch, steps, warmup, false)?;
            eprintln!(
                "    ours {:.1} images/s, peak RSS {:.0} MB",
                f(&ours, "images_per_s"),
                f(&ours, "peak_rss_kb") / 1024.0
            );
            results[i].0.push(ours);
            if let Some(peer) = &peer {
                // The peer script always warms up 3 steps itself.
                let theirs = peer.run(wd, batch, steps)?;
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
    for (&(name, wd, batch), (ours, theirs)) in configs.iter().zip(&results) {
        rows.push(summarise(name, wd, batch, ours, theirs));
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
fn summarise(name: &str, wd: usize, batch: usize, ours: &[Value], theirs: &[Value]) -> Value {
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
            r["width_div"],
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

impl Peer {
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

    fn run(&self, width_div: usize, batch: usize, steps: usize) -> Result<Value> {
        let out = Command::new(&self.python)
            .arg(&self.wrapper)
            .arg(&self.script)
            .args(["--width-div", &width_div.to_string()])
            .args(["--batch", &batch.to_string()])
            .args(["--steps", &steps.to_string()])
            .args(["--threads", "2"])
            .output()
            .with_context(|| format!("running {}", self.python.display()))?;
        if !out.status.success() {
            bail!(
                "PyTorch peer failed ({}): {}",
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
        if !merged.contains_key("images_per_s") {
            bail!("PyTorch peer printed no images_per_s");
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

fn run_worker(
    exe: &Path,
    width_div: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
    profile: bool,
) -> Result<Value> {
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "--worker"])
        .args(["--width-div", &width_div.to_string()])
        .args(["--batch", &batch.to_string()])
        .args(["--steps", &steps.to_string()])
        .args(["--warmup", &warmup.to_string()]);
    if profile {
        cmd.arg("--profile");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "worker (width_div {width_div}, batch {batch}) failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("worker printed {line:?}"))
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    serde_json::to_writer_pretty(&mut file, value)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
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

/// The model, optimiser and data of one benchmark process.
struct Step {
    model: wae_objectives::Model,
    adam: wae_train::Adam,
    x: Tensor,
    rng: StdRng,
    batch: usize,
}

impl Step {
    fn new(width_div: usize, batch: usize) -> Result<Self> {
        let device = Device::Cpu;
        let mut config =
            wae_objectives::ModelConfig::for_architecture(wae_nets::Architecture::MnistDcgan)
                .with_width_div(width_div);
        config.encoder.kind = wae_nets::EncoderKind::Deterministic;
        let objective =
            wae_objectives::ObjectiveConfig::WaeMmd(wae_objectives::WaeMmdConfig::default());
        let vars = wae_train::init::SeededVarMap::new(0);
        let model =
            wae_objectives::Model::new(&config, &objective, vars.var_builder(DType::F32, &device))?;
        let adam = wae_train::Adam::new(
            wae_nets::trainable_vars(vars.var_map(), ""),
            wae_train::AdamConfig::default(),
        )?;
        let mut rng = StdRng::seed_from_u64(0);
        let pixels: Vec<f32> = (0..batch * 28 * 28).map(|_| rng.random::<f32>()).collect();
        let x = Tensor::from_vec(pixels, (batch, 1, 28, 28), &device)?;
        Ok(Self {
            model,
            adam,
            x,
            rng,
            batch,
        })
    }

    /// One training step; returns the loss and the seconds of (forward, backward, optimiser).
    fn step(&mut self) -> Result<(f32, [f64; 3])> {
        let t0 = Instant::now();
        let noise = self
            .model
            .draw_noise(self.batch, &mut self.rng, &Device::Cpu)?;
        let (parts, _) = self.model.losses(&self.x, &noise, true)?;
        let t1 = Instant::now();
        let grads = parts.total.backward()?;
        let t2 = Instant::now();
        self.adam.step(&grads)?;
        drop(grads);
        let loss = parts.total.to_scalar::<f32>()?;
        let t3 = Instant::now();
        Ok((
            loss,
            [
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
            ],
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
/// before it, and keeps the fastest step.
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
        step.adam.step(&grads)?;
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
