//! `cargo xtask bench`: our WAE-MMD training step against the PyTorch peer, and the MMD
//! penalty and the FID Inception network against their PyTorch counterparts.
//!
//! Both sides run the same step (Tolstikhin et al. 2018, MNIST networks at a width
//! divisor, batch of random images in [0, 1], deterministic encoder, loss 0.05 times
//! squared L2 plus 10 times MMD-IMQ, Adam lr 1e-3 betas (0.5, 0.999)) with 2 threads:
//! ours is `wae_train::bench::StepBench` (`wae_train::Model` + `TrainStep`), the peer is
//! `xtask/peers/torch_wae_mmd.py`. Every measurement runs in a fresh process (a
//! release build of this binary, or the peer under `xtask/reference/peer_rss.py`), so
//! each reports its own peak RSS. Our runs and the peer's alternate, round after round,
//! and the best images/s of each is kept: the machine is shared and noisy. Each row also
//! lists the per-round ratios (our run over the peer's run right after it, which saw the
//! same machine speed), median and range, so that a reader sees how much one run moves.
//!
//! Two more kinds of row come from the same interleaved rounds: `mmd_imq_d{d}` (forward +
//! backward of the WAE-MMD penalty, IMQ kernel over 7 scales, U-statistic, `batch` codes
//! of dimension `d` against as many prior samples; "images" are codes; the peer is
//! `xtask/reference/mmd_bench_torch.py`, its fastest formulation) and `inception_pool3`
//! (pool3 features of a batch of 299x299 images through the FID Inception-v3 with
//! formula weights, which cost what the real ones do; the peer is pytorch-fid's network
//! in `xtask/reference/inception_reference.py --bench-json`).
//!
//! A last row, `sgemm_f32`, times one n x n by n x n f32 product on each side (candle's
//! `matmul`, i.e. the gemm crate, against `torch.matmul` in `xtask/peers/torch_gemm.py`;
//! "images" are products). The faster of the two is the run's GEMM rate, and a second
//! table (also `roofline.json`) sets each training row against it: the GFLOP of products
//! per image (counted by `wae_kernels::profile` in our runs: every convolution and linear
//! product, forward and gradients, as the direct algorithm does them; the peer runs the
//! same network), each side's GFLOP/s at its best images/s, their shares of the GEMM
//! rate, and the share a step 1.5x the peer's would need. It says how far a row is from
//! what its products alone allow, on whatever CPU the bench runs.
//!
//! `--profile` instead times one step of ours per width, per op kind, in the forward
//! pass, the backward pass and the optimiser (see [`report::profile_table`]).
//!
//! The modules: [`worker`] (our timed runs, each in a fresh process), [`peer`] (the
//! PyTorch scripts) and [`report`] (what both print, read back as typed records, and the
//! table, `bench.json` and `profile.json` made of them).

mod peer;
mod report;
mod worker;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use peer::Peer;
use report::{Measurement, Profile};

/// Freed large blocks are kept for the next step instead of being unmapped and
/// page-faulted in again (see `wae_kernels::alloc`), as in the `wae` binary.
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
    /// The PyTorch peer script [default: <workspace>/xtask/peers/torch_wae_mmd.py].
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
    /// Batch sizes of the Inception-features case (0, or `--inception-batch` alone, for
    /// none).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "8,50")]
    inception_batch: Vec<usize>,
    /// Samples of the evaluation case (FID-MNIST features, FID, precision / recall, KID,
    /// MMD; 0 for none).
    #[arg(long, default_value_t = 10_000)]
    eval_n: usize,
    /// Batch of the fully connected dSprites step (Rubenstein et al.'s nets, preset
    /// dsprites-wae-mmd-random; 0 for none).
    #[arg(long, default_value_t = 100)]
    fc_batch: usize,
    /// Size n of the f32 GEMM row (n x n by n x n; 0 for none): the machine's matrix
    /// product rate, against which the training rows' rates of products are set.
    #[arg(long, default_value_t = 2048)]
    gemm_n: usize,
    /// Run only our side (no PyTorch).
    #[arg(long)]
    no_peer: bool,
    /// Internal: run one measurement in this process and print one JSON line.
    #[arg(long, hide = true)]
    worker: bool,
    /// Internal (worker): what to measure: `step`, `fc`, `mmd`, `inception`, `eval` or
    /// `gemm`.
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
        // The training rows run as `wae train` does, on huge pages; evaluation, MMD and
        // Inception as `wae eval` does, without (see `wae_kernels::alloc`).
        if args.profile || matches!(args.case.as_str(), "step" | "fc") {
            ALLOC.set_huge_pages(true);
        }
        if args.no_winograd {
            wae_kernels::set_winograd_mode(wae_kernels::WinogradMode::Never);
        } else if args.winograd_always {
            wae_kernels::set_winograd_mode(wae_kernels::WinogradMode::Always);
        }
        let out = match (args.profile, args.case.as_str()) {
            (true, _) => serde_json::to_string(&worker::profile_step(&args)?)?,
            (false, "step") => serde_json::to_string(&worker::measure_step(&args)?)?,
            (false, "fc") => serde_json::to_string(&worker::measure_fc_step(&args)?)?,
            (false, "eval") => serde_json::to_string(&worker::measure_eval(&args)?)?,
            (false, "mmd") => serde_json::to_string(&worker::measure_mmd(&args)?)?,
            (false, "inception") => serde_json::to_string(&worker::measure_inception(&args)?)?,
            (false, "gemm") => serde_json::to_string(&worker::measure_gemm(&args)?)?,
            (false, other) => bail!("unknown bench case {other:?}"),
        };
        println!("{out}");
        return Ok(());
    }
    let workspace = crate::workspace::workspace_root();
    let worker = worker::exe(&workspace)?;
    let out_dir = if args.out.is_absolute() {
        args.out.clone()
    } else {
        workspace.join(&args.out)
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    println!("{}", report::machine_line());
    if args.profile {
        let mut profiles = Vec::new();
        for &wd in &args.widths {
            let p: Profile =
                worker::run_step(&worker, wd, 100, 3, if wd == 1 { 1 } else { 2 }, true)?;
            print!("{}", report::profile_table(&p));
            profiles.push(p);
        }
        report::write_json(&out_dir.join("profile.json"), &profiles)?;
        return Ok(());
    }
    let peer = if args.no_peer {
        None
    } else {
        Some(Peer::locate(&args, &workspace)?)
    };
    println!("SIMD, ours: {}", worker::our_simd());
    if let Some(p) = &peer {
        println!("SIMD, PyTorch: {}", p.simd());
    }
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let mut rows = Vec::new();
    let cases = cases(&args)?;
    let mut results: Vec<(Vec<Measurement>, Vec<Measurement>)> =
        vec![(Vec::new(), Vec::new()); cases.len()];
    let load_before = report::load_average();
    let started = Instant::now();
    for round in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            eprintln!("[round {}/{rounds}] {}: ours", round + 1, case.label());
            let ours = worker::run_case(&worker, case, args.quick)?;
            eprintln!(
                "    ours {:.1} images/s, peak RSS {:.0} MB",
                ours.images_per_s.unwrap_or(f64::NAN),
                ours.peak_rss_kb.unwrap_or(f64::NAN) / 1024.0
            );
            results[i].0.push(ours);
            if let Some(peer) = &peer {
                let theirs = peer.run_case(case, args.quick)?;
                eprintln!(
                    "    peer {:.1} images/s, peak RSS {:.0} MB",
                    theirs.images_per_s.unwrap_or(f64::NAN),
                    theirs.peak_rss_kb.unwrap_or(f64::NAN) / 1024.0
                );
                results[i].1.push(theirs);
            }
        }
    }
    let load_after = report::load_average();
    for (case, (ours, theirs)) in cases.iter().zip(&results) {
        rows.push(report::summarise(
            &case.row_name(),
            case.width_div(),
            case.batch(),
            ours,
            theirs,
        ));
    }
    print!("{}", report::table(&rows));
    println!(
        "{} rounds: ratio = best against best; round ratios = each of our runs against the peer's run right after it; load average before {load_before}, after {load_after}; {:.0} s in all",
        rounds,
        started.elapsed().as_secs_f64()
    );
    let path = out_dir.join("bench.json");
    report::write_json(&path, &rows)?;
    println!("wrote {}", path.display());
    if let Some(gemm) = report::gemm_peak_gflops(&rows) {
        let ours: Vec<&[Measurement]> = results.iter().map(|(o, _)| o.as_slice()).collect();
        let roofline = report::roofline(&rows, &ours, gemm);
        print!("{}", report::roofline_table(&roofline));
        let path = out_dir.join("roofline.json");
        report::write_json(&path, &roofline)?;
        println!("wrote {}", path.display());
    }
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
    /// The training step of the fully connected dSprites WAE (preset
    /// `dsprites-wae-mmd-random`: 4096 -> 1200 -> 1200 -> 2 x 16, 16 -> 3 x 1200 -> 4096,
    /// Bernoulli + MMD, log-variance L1).
    FcStep { batch: usize },
    /// The evaluation of `n` samples against `n` test images.
    Eval { n: usize },
    /// One f32 matrix product of two `n x n` matrices (an "image" is one product).
    Gemm { n: usize },
}

/// The preset of [`Case::FcStep`].
pub(crate) const FC_PRESET: &str = "dsprites-wae-mmd-random";

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
            Case::FcStep { batch } => format!("dSprites FC step batch {batch}"),
            Case::Eval { n } => format!("evaluation of {n} samples"),
            Case::Gemm { n } => format!("f32 GEMM n {n}"),
        }
    }

    fn row_name(&self) -> String {
        match self {
            Case::Step { name, .. } => (*name).to_string(),
            Case::Mmd { d, .. } => format!("mmd_imq_d{d}"),
            Case::Inception { .. } => "inception_pool3".to_string(),
            Case::FcStep { .. } => "train_step_fc_dsprites".to_string(),
            Case::Eval { .. } => "eval_fid_mnist_pr_kid_mmd".to_string(),
            Case::Gemm { .. } => report::GEMM_ROW.to_string(),
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
            Case::Step { batch, .. } | Case::Inception { batch } | Case::FcStep { batch } => *batch,
            Case::Mmd { n, .. } | Case::Eval { n } | Case::Gemm { n } => *n,
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
            // About 2.6 GFLOP a batch of 100 (forward + backward): 0.1-0.3 s a step.
            Case::FcStep { .. } => (if quick { 5 } else { 20 }, 2),
            Case::Eval { .. } => (1, 0),
            Case::Gemm { .. } => (if quick { 3 } else { 5 }, 1),
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
    if args.eval_n > 0 {
        cases.push(Case::Eval { n: args.eval_n });
    }
    if args.fc_batch > 0 {
        cases.push(Case::FcStep {
            batch: args.fc_batch,
        });
    }
    for &batch in args.inception_batch.iter().filter(|&&b| b > 0) {
        cases.push(Case::Inception { batch });
    }
    if args.gemm_n > 0 {
        cases.push(Case::Gemm { n: args.gemm_n });
    }
    Ok(cases)
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
                "eval_fid_mnist_pr_kid_mmd",
                "train_step_fc_dsprites",
                "inception_pool3",
                "inception_pool3",
                "sgemm_f32",
            ]
        );
        assert_eq!(cases[11], Case::Gemm { n: 2048 });
        assert_eq!(cases[5], Case::Mmd { n: 100, d: 8 });
        assert_eq!(cases[6].batch(), 1000);
        assert_eq!(cases[6].width_div(), None);
        assert_eq!(cases[1].width_div(), Some(1));
        Ok(())
    }

    #[test]
    fn cases_can_be_left_out_and_bad_sizes_are_refused() -> Result<()> {
        let only_steps = cases(&parse(&[
            "--mmd=",
            "--inception-batch=0",
            "--fc-batch=0",
            "--eval-n=0",
            "--gemm-n=0",
            "--widths=4",
        ]))?;
        assert!(only_steps.iter().all(|c| matches!(c, Case::Step { .. })));
        let no_inception = cases(&parse(&["--inception-batch"]))?;
        assert!(
            !no_inception
                .iter()
                .any(|c| matches!(c, Case::Inception { .. }))
        );
        assert_eq!(only_steps.len(), 4);
        let no_steps = cases(&parse(&["--widths", "--scaling-batches", "--mmd=100x8"]))?;
        assert_eq!(
            no_steps,
            [
                Case::Mmd { n: 100, d: 8 },
                Case::Eval { n: 10_000 },
                Case::FcStep { batch: 100 },
                Case::Inception { batch: 8 },
                Case::Inception { batch: 50 },
                Case::Gemm { n: 2048 }
            ]
        );
        for bad in ["--mmd=100", "--mmd=1x8", "--mmd=ax8", "--mmd=100x0"] {
            let err = cases(&parse(&[bad])).unwrap_err().to_string();
            assert!(err.contains("SIZExDIM"), "{bad}: {err}");
        }
        Ok(())
    }
}
