//! Times each convolution and BatchNorm of the MNIST WAE networks, forward and backward,
//! with these kernels and with candle's own ops.
//!
//! `[KERNEL_TIME=1] [CPU_TIME=1] cargo run --release -p wae-kernels --example layer_timing -- [width_div] [batch] [reps] [--no-candle] [--no-winograd | --winograd] [--only=NAME] [--convt=CI,CO,H]`
use candle_core::{DType, Device, Tensor, Var};
use wae_kernels::{Activation, Padding2d};

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// The allocator the `wae` binary and `cargo xtask bench` train with: freed large blocks
/// are reused instead of page-faulted in again on every repetition.
#[global_allocator]
static ALLOC: wae_kernels::alloc::LargeBlockCache =
    wae_kernels::alloc::LargeBlockCache::new(1 << 30);

/// Wall seconds inside this crate's kernels (forward, backward) since the last reset.
fn kernel_seconds() -> (f64, f64) {
    wae_kernels::profile::snapshot()
        .iter()
        .fold((0.0, 0.0), |(f, b), t| {
            (f + t.forward.as_secs_f64(), b + t.backward.as_secs_f64())
        })
}

/// CPU time (seconds on a core) used so far by all threads of this process, from
/// /proc/self/task/*/schedstat: unlike wall time it does not count waiting for a core
/// that another process holds.
fn cpu_seconds() -> f64 {
    let mut total = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(entry.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total as f64 * 1e-9
}

fn clock(cpu: bool) -> f64 {
    if cpu {
        cpu_seconds()
    } else {
        std::time::UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

fn best_of(reps: usize, mut f: impl FnMut() -> R<(f64, f64)>) -> R<(f64, f64)> {
    let mut best = (f64::INFINITY, f64::INFINITY);
    f()?;
    for _ in 0..reps {
        let (a, b) = f()?;
        best = (best.0.min(a), best.1.min(b));
    }
    Ok(best)
}

/// (forward seconds, backward seconds) of `f` on `inputs` with loss sum(y * r).
/// The backward pass runs from `y.sum_all()`, whose own backward is one broadcast.
/// With `KERNEL_TIME` set, only the time inside this crate's kernels is counted (not
/// candle's autograd around them, nor the broadcast gradient of the sum).
fn time_op(reps: usize, inputs: &[&Var], f: &dyn Fn() -> R<Tensor>) -> R<(f64, f64)> {
    let cpu = std::env::var("CPU_TIME").is_ok();
    let kernel_only = std::env::var("KERNEL_TIME").is_ok();
    best_of(reps, || {
        wae_kernels::profile::reset();
        let t = clock(cpu);
        let y = f()?;
        let tf = clock(cpu) - t;
        let loss = y.sum_all()?;
        let t = clock(cpu);
        let g = loss.backward()?;
        for v in inputs {
            let _ = g.get(v);
        }
        let tb = clock(cpu) - t;
        Ok(if kernel_only {
            kernel_seconds()
        } else {
            (tf, tb)
        })
    })
}

fn main() -> R<()> {
    let args: Vec<String> = std::env::args().collect();
    let wd: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let with_candle = !args.iter().any(|a| a == "--no-candle");
    let only = args
        .iter()
        .find_map(|a| a.strip_prefix("--only="))
        .map(str::to_string);
    let run = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let dev = Device::Cpu;
    if args.iter().any(|a| a == "--no-winograd") {
        wae_kernels::set_winograd_mode(wae_kernels::WinogradMode::Never);
    } else if args.iter().any(|a| a == "--winograd") {
        wae_kernels::set_winograd_mode(wae_kernels::WinogradMode::Always);
    }
    let var = |shape: &[usize], std: f64| -> R<Var> {
        Ok(Var::from_tensor(&Tensor::randn(
            0f32, std as f32, shape, &dev,
        )?)?)
    };
    let ch = |c: usize| c / wd;
    println!(
        "width_div {wd}, batch {n}, best of {reps}, rayon threads {}, {}{}",
        rayon::current_num_threads(),
        if std::env::var("CPU_TIME").is_ok() {
            "CPU seconds (all threads)"
        } else {
            "wall seconds"
        },
        if std::env::var("KERNEL_TIME").is_ok() {
            ", inside the kernels only (candle columns: whole op)"
        } else {
            ""
        }
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}",
        "layer", "ours fwd", "ours bwd", "cand fwd", "cand bwd"
    );
    let enc = [
        (1, ch(128), 28, (1, 1)),
        (ch(128), ch(256), 14, (1, 1)),
        (ch(256), ch(512), 7, (1, 2)),
        (ch(512), ch(1024), 4, (1, 1)),
    ];
    for (i, &(ci, co, hw, (pb, pa))) in enc.iter().enumerate() {
        if !run("enc") {
            continue;
        }
        let x = var(&[n, ci, hw, hw], 1.0)?;
        let w = var(&[co, ci, 4, 4], 0.05)?;
        let b = var(&[co], 0.05)?;
        let pad = Padding2d {
            top: pb,
            bottom: pa,
            left: pb,
            right: pa,
        };
        let ours = time_op(reps, &[&x, &w, &b], &|| {
            Ok(wae_kernels::conv2d_padded(&x, &w, Some(&b), 2, pad)?)
        })?;
        let theirs = if with_candle {
            time_op(reps, &[&x, &w, &b], &|| {
                let y = if pb == pa {
                    x.conv2d(&w, pb, 2, 1, 1)?
                } else {
                    x.pad_with_zeros(2, pb, pa)?
                        .pad_with_zeros(3, pb, pa)?
                        .conv2d(&w, 0, 2, 1, 1)?
                };
                Ok(y.broadcast_add(&b.reshape((1, co, 1, 1))?)?)
            })?
        } else {
            (f64::NAN, f64::NAN)
        };
        println!(
            "{:<34} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            format!("enc conv{i} {ci}->{co} {hw}"),
            ours.0,
            ours.1,
            theirs.0,
            theirs.1
        );
    }
    // `--convt=CI,CO,H`: time only that up-sampling layer (4x4, stride 2, padding 1).
    let custom: Option<Vec<usize>> = args
        .iter()
        .find_map(|a| a.strip_prefix("--convt="))
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect());
    let dec = match custom.as_deref() {
        Some(&[ci, co, h]) => vec![(ci, co, h, 2, 1)],
        Some(_) => return Err("--convt takes CI,CO,H".into()),
        None => vec![
            (ch(1024), ch(512), 7, 2, 1),
            (ch(512), ch(256), 14, 2, 1),
            (ch(256), 1, 28, 1, 1),
        ],
    };
    for (i, &(ci, co, hw, s, p)) in dec.iter().enumerate() {
        if !run("dec") {
            continue;
        }
        let x = var(&[n, ci, hw, hw], 1.0)?;
        let w = var(&[ci, co, 4, 4], 0.05)?;
        let b = var(&[co], 0.05)?;
        let ours = time_op(reps, &[&x, &w, &b], &|| {
            Ok(wae_kernels::conv_transpose2d(&x, &w, Some(&b), s, p, 0)?)
        })?;
        let theirs = if with_candle {
            time_op(reps, &[&x, &w, &b], &|| {
                Ok(x.conv_transpose2d(&w, p, 0, s, 1)?
                    .broadcast_add(&b.reshape((1, co, 1, 1))?)?)
            })?
        } else {
            (f64::NAN, f64::NAN)
        };
        println!(
            "{:<34} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            format!("dec convT{i} {ci}->{co} {hw}"),
            ours.0,
            ours.1,
            theirs.0,
            theirs.1
        );
    }
    for &(c, hw) in &[(ch(512), 14), (ch(256), 28), (ch(128), 14)] {
        if !run("bn") {
            continue;
        }
        let x = var(&[n, c, hw, hw], 1.0)?;
        let g = var(&[c], 0.1)?;
        let b = var(&[c], 0.1)?;
        let ours = time_op(reps, &[&x, &g, &b], &|| {
            Ok(
                wae_kernels::batch_norm_train(&x, Some(&g), Some(&b), 1e-5, Activation::Relu)?
                    .output,
            )
        })?;
        let theirs = if with_candle {
            time_op(reps, &[&x, &g, &b], &|| {
                let bn = candle_nn::BatchNorm::new(
                    c,
                    Tensor::zeros(c, DType::F32, &dev)?,
                    Tensor::ones(c, DType::F32, &dev)?,
                    g.as_tensor().clone(),
                    b.as_tensor().clone(),
                    1e-5,
                )?;
                Ok(candle_core::ModuleT::forward_t(&bn, x.as_tensor(), true)?.relu()?)
            })?
        } else {
            (f64::NAN, f64::NAN)
        };
        println!(
            "{:<34} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            format!("bn+relu {c}x{hw}x{hw}"),
            ours.0,
            ours.1,
            theirs.0,
            theirs.1
        );
    }
    for &(c, hw) in &[(ch(256), 28), (ch(512), 14)] {
        if !run("relu") {
            continue;
        }
        let x = var(&[n, c, hw, hw], 1.0)?;
        let t = time_op(reps, &[&x], &|| Ok(x.relu()?))?;
        let ident = time_op(reps, &[&x], &|| Ok(x.affine(1.0, 0.0)?))?;
        println!(
            "{:<34} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            format!("candle relu / affine {c}x{hw}x{hw}"),
            t.0,
            t.1,
            ident.0,
            ident.1
        );
    }
    Ok(())
}
