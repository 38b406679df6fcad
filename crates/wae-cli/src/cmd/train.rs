//! `wae train`: start or resume a training run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use anyhow::{Context, Result, bail};
use clap::Args;
use wae_train::{
    PRESETS, ResumeOverrides, TrainConfig, TrainOptions, TrainSummary, preset_summary,
};

use wae_train::DeviceChoice;

/// Arguments of `wae train`.
#[derive(Debug, Args)]
#[command(
    after_help = "Ctrl-C (SIGINT), SIGTERM or SIGUSR1 finish the current step, write a \
    checkpoint and exit with 128 + the signal (130, 143; 138 for SIGUSR1 on Linux); a second one exits at once.\n\n\
    Examples:\n  \
    wae train --preset mnist-wae-mmd-cpu --out runs/mmd\n  \
    wae train --config my.toml --max-steps 200\n  \
    wae train --resume runs/mmd            # continue exactly where it stopped\n  \
    wae train --resume runs/mmd/checkpoints/step-00000200   # from an earlier step\n  \
    wae train --list-presets"
)]
pub struct TrainArgs {
    /// A named configuration (see --list-presets).
    #[arg(long, value_name = "NAME", conflicts_with = "config")]
    pub preset: Option<String>,
    /// A TOML configuration file (see docs/training.md for every key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run directory (default: runs/NAME, NAME the preset or the config file's stem).
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Seed of every random draw (default: the config's, 0).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Stop after N steps in total, counting the steps of earlier runs when resuming.
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Number of epochs (overrides the config; saved with the run).
    #[arg(long, value_name = "N")]
    pub epochs: Option<u64>,
    /// Device to train on.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// MNIST: the directory of the IDX files (default: WAE_DATA_DIR, else data/mnist under
    /// the current directory). CelebA: the cache file or its directory (default
    /// data/celeba under the current directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Continue the run in DIR from its newest checkpoint, or from the checkpoint
    /// DIR/checkpoints/step-N given instead (newer checkpoints are then removed).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Print the presets and exit.
    #[arg(long)]
    pub list_presets: bool,
    /// Own image data: leave out (and count) files that cannot be decoded or are too
    /// small, instead of stopping at the first (sets data.skip_bad_images).
    #[arg(long)]
    pub skip_bad_images: bool,
}

fn given_config(args: &TrainArgs) -> Result<Option<(TrainConfig, String)>> {
    if let Some(name) = &args.preset {
        let cfg = wae_train::preset(name).with_context(|| "while choosing the preset")?;
        return Ok(Some((cfg, name.clone())));
    }
    if let Some(path) = &args.config {
        let cfg = TrainConfig::from_toml_file(path)
            .with_context(|| format!("while loading config {}", path.display()))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        return Ok(Some((cfg, stem)));
    }
    Ok(None)
}

/// Signals that stop training gracefully: the first sets the stop flag (the trainer
/// finishes its step and saves), a second one of any of them exits at once with
/// 128 + its number.
#[cfg(unix)]
fn stop_on_signals() -> Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    use signal_hook::flag;
    use std::sync::atomic::AtomicBool;
    let stop = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGUSR1] {
        // Order matters: the exit is checked before the flag is armed.
        flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&armed))
            .and_then(|_| flag::register_usize(signal, Arc::clone(&stop), signal as usize))
            .and_then(|_| flag::register(signal, Arc::clone(&armed)))
            .with_context(|| format!("while installing the handler of signal {signal}"))?;
    }
    Ok(stop)
}

#[cfg(not(unix))]
fn stop_on_signals() -> Result<Arc<AtomicUsize>> {
    Ok(Arc::new(AtomicUsize::new(0)))
}

/// The name of a signal `stop_on_signals` handles.
fn signal_name(signal: usize) -> String {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        for (number, name) in [
            (SIGINT, "SIGINT (Ctrl-C)"),
            (SIGTERM, "SIGTERM"),
            (SIGUSR1, "SIGUSR1"),
        ] {
            if signal == number as usize {
                return name.into();
            }
        }
    }
    format!("signal {signal}")
}

/// Prints the summary, and for a run stopped by a signal, how to continue it; the
/// exit code is 128 + the signal then.
fn finish(s: &TrainSummary) -> ExitCode {
    print_summary(&s.run_dir, s);
    match s.stopped_by {
        None => ExitCode::SUCCESS,
        Some(signal) if s.checkpoint == s.run_dir => {
            println!(
                "stopped by {} during the encoder's pretraining, before the first checkpoint: \
                 nothing is saved. Start the run again with the same command (not --resume).",
                signal_name(signal)
            );
            ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
        }
        Some(signal) => {
            println!(
                "stopped by {} after step {}; the checkpoint {} holds it. Continue with:\n  \
                 wae train --resume {}",
                signal_name(signal),
                s.steps,
                s.checkpoint.display(),
                s.run_dir.display()
            );
            ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
        }
    }
}

fn print_summary(run_dir: &Path, s: &TrainSummary) {
    println!("run directory: {}", run_dir.display());
    println!("steps: {} (target {})", s.steps, s.target_steps);
    let parts: Vec<String> = s
        .last_losses
        .iter()
        .map(|(k, v)| format!("{k} {v:.5}"))
        .collect();
    if !parts.is_empty() {
        println!("last step: {}", parts.join(", "));
    }
    println!("checkpoint: {}", s.checkpoint.display());
    if let Some(mib) = wae_train::peak_rss_mib() {
        println!("peak resident memory: {mib:.0} MiB");
    }
    if let Some(e) = &s.eval {
        println!(
            "test set ({} images): reconstruction ||x - G(E(x))||^2 = {:.4} (per pixel {:.5}); \
             MMD(test codes, prior) = {:.5} (prior vs prior: {:.5})",
            e.examples,
            e.reconstruction_sq_l2,
            e.reconstruction_mse_per_pixel,
            e.mmd_codes_vs_prior,
            e.mmd_prior_vs_prior
        );
    }
}

/// Runs `wae train`: success, or 128 + the signal that stopped it.
pub fn run(args: TrainArgs) -> Result<ExitCode> {
    if args.list_presets {
        let width = PRESETS.iter().map(|n| n.len()).max().unwrap_or(0);
        for name in PRESETS {
            println!("{name:<width$}  {}", preset_summary(name)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Training reuses the same large blocks every step: back them with huge pages
    // (see `wae_kernels::alloc`; `WAE_HUGE_PAGES=0` turns this off).
    crate::ALLOC.set_huge_pages(true);
    let device = args.device.open()?;
    let stop = Some(stop_on_signals()?);
    let given = given_config(&args)?;
    if let Some(run_dir) = &args.resume {
        let opts = TrainOptions {
            run_dir: run_dir.clone(),
            device,
            data_dir: args.data_dir.clone(),
            max_steps: args.max_steps,
            progress: true,
            stop,
        };
        let overrides = ResumeOverrides {
            config: given.map(|(mut cfg, _)| {
                if let Some(seed) = args.seed {
                    cfg.seed = seed;
                }
                cfg.data.skip_bad_images |= args.skip_bad_images;
                cfg
            }),
            epochs: args.epochs,
            seed: args.seed,
        };
        let summary = wae_train::resume(&opts, &overrides)
            .with_context(|| format!("while resuming the run in {}", run_dir.display()))?;
        return Ok(finish(&summary));
    }
    let Some((mut cfg, name)) = given else {
        bail!(
            "say what to train: --preset NAME or --config FILE (or --resume DIR); presets: {}",
            PRESETS.join(", ")
        );
    };
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if let Some(epochs) = args.epochs {
        cfg.training.epochs = epochs;
    }
    cfg.data.skip_bad_images |= args.skip_bad_images;
    let run_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&name));
    let opts = TrainOptions {
        run_dir: run_dir.clone(),
        device,
        data_dir: args.data_dir.clone(),
        max_steps: args.max_steps,
        progress: true,
        stop,
    };
    let summary = wae_train::train(&cfg, &opts)
        .with_context(|| format!("while training into {}", run_dir.display()))?;
    Ok(finish(&summary))
}
