//! `wae eval`: the arguments of `wae_train::evaluate::evaluate`, its `eval.json` and a
//! table of it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use wae_train::EvalReport;
use wae_train::evaluate::{EvalOptions, GmmSampler, PriorMatch};

use crate::pictures::{self, Network, RunArgs, SplitArg};

/// Arguments of `wae eval`.
#[derive(Debug, Args)]
#[command(
    after_help = "Always computed: the reconstruction error of N test images, MMD between \
    their codes and N prior samples (and between two prior samples, the value a perfect \
    match gives up to noise), and the Laplace sharpness of N samples, of the reconstructions \
    and of the test images. FID and precision/recall of N samples against the N test images \
    need a feature network: --classifier (MNIST, fast) and/or --inception (pytorch-fid's \
    Inception-v3; slow on a CPU). What is skipped is listed with the reason.\n\n\
    Examples:\n  \
    wae eval runs/mmd                                         # -> runs/mmd/eval.json\n  \
    wae eval runs/mmd --n 2000 --classifier mnist-classifier.safetensors\n  \
    wae eval runs/celeba --inception pt_inception-2015-12-05-6726825d.pth\n  \
    wae eval runs/mmd --classifier mnist-classifier.safetensors --sampler gmm:10"
)]
pub struct EvalArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Test images (the first N of the split) and samples.
    #[arg(long, default_value_t = 10_000)]
    pub n: usize,
    /// Which split the images come from.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Seed of the prior draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// MNIST classifier weights (safetensors from wae-metrics' `TrainedMnistClassifier::save`):
    /// FID and precision/recall in its 128-d feature space.
    #[arg(long, value_name = "FILE")]
    pub classifier: Option<PathBuf>,
    /// pytorch-fid Inception weights (.pth or converted .safetensors): FID and
    /// precision/recall in its 2048-d pool3 space.
    #[arg(long, value_name = "FILE")]
    pub inception: Option<PathBuf>,
    /// Output JSON (default: RUN/eval.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also score samples from a post-hoc sampler: `gmm:K`, a K-component full-covariance
    /// Gaussian mixture fitted by EM to the encoder means of --fit-images training images
    /// (FID, KID, precision/recall and sharpness beside the prior's samples).
    #[arg(long, default_value = "prior", value_name = "prior|gmm:K")]
    pub sampler: String,
    /// Training images whose codes the mixture is fitted to.
    #[arg(long, default_value_t = 10_000)]
    pub fit_images: usize,
    /// Skip the disentanglement scores of dSprites runs (FactorVAE, MIG, the beta-VAE
    /// metric: minutes on a CPU), e.g. for an untrained baseline.
    #[arg(long)]
    pub no_disentanglement: bool,
}

/// One row of the table: name, value, note.
fn row(name: &str, value: String, note: &str) {
    println!("  {name:<34} {value:>12}  {note}");
}

fn print_table(e: &EvalReport) {
    let or_unknown = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
    println!(
        "evaluation of {} (step {}), {} {} images, seed {}",
        or_unknown(&e.checkpoint),
        e.step,
        e.examples,
        or_unknown(&e.split),
        e.seed
            .map_or_else(|| "of the run".into(), |s| s.to_string())
    );
    row(
        "reconstruction ||x - G(E(x))||^2",
        format!("{:.4}", e.reconstruction_sq_l2),
        "per image, pixels in [0, 1]",
    );
    row(
        "reconstruction MSE per pixel",
        format!("{:.6}", e.reconstruction_mse_per_pixel),
        "",
    );
    if let Some(l1) = e.reconstruction_l1 {
        row(
            "reconstruction ||x - G(E(x))||_1",
            format!("{l1:.4}"),
            "per image",
        );
    }
    row(
        "MMD^2(test codes, prior)",
        format!("{:.3e}", e.mmd_codes_vs_prior),
        "IMQ, U-statistic",
    );
    if let Some(m) = e.mmd_sampled_codes_vs_prior {
        row(
            "MMD^2(codes drawn from Q(z|x), prior)",
            format!("{m:.3e}"),
            "Gaussian encoder",
        );
    }
    row(
        "MMD^2(prior, prior)",
        format!("{:.3e}", e.mmd_prior_vs_prior),
        "noise level of the above",
    );
    if let Some(pm) = &e.prior_match {
        print_prior_match(pm);
    }
    let sharpness = [
        (
            "sharpness of samples",
            e.sharpness_samples,
            "Laplace variance, higher is sharper",
        ),
        (
            "sharpness of reconstructions",
            e.sharpness_reconstructions,
            "",
        ),
        ("sharpness of test images", e.sharpness_test_images, ""),
    ];
    for (name, value, note) in sharpness {
        if let Some(v) = value {
            row(name, format!("{v:.3e}"), note);
        }
    }
    for (name, s) in [("classifier", &e.classifier), ("inception", &e.inception)] {
        if let Some(s) = s {
            let space = format!("{name}, {}-d features", s.feature_dim);
            row(&format!("FID ({name})"), format!("{:.3}", s.fid), &space);
            if let Some(kid) = &s.kid {
                row(
                    &format!("KID ({name})"),
                    format!("{:.3e}", kid.mean),
                    &format!(
                        "95% of {} subsets in [{:.2e}, {:.2e}]",
                        kid.subsets, kid.interval[0], kid.interval[1]
                    ),
                );
            }
            row(
                &format!("precision ({name})"),
                format!("{:.4}", s.precision),
                "k = 3",
            );
            row(
                &format!("recall ({name})"),
                format!("{:.4}", s.recall),
                "k = 3",
            );
        }
    }
    if let Some(g) = &e.gmm_sampler {
        let what = format!(
            "{}-component mixture fitted to {} training codes",
            g.components, g.fit_images
        );
        row(
            "sharpness of mixture samples",
            format!("{:.3e}", g.sharpness_samples),
            &what,
        );
        for (name, s) in [("classifier", &g.classifier), ("inception", &g.inception)] {
            if let Some(s) = s {
                row(
                    &format!("FID ({name}), mixture samples"),
                    format!("{:.3}", s.fid),
                    &what,
                );
                if let Some(kid) = &s.kid {
                    row(
                        &format!("KID ({name}), mixture samples"),
                        format!("{:.3e}", kid.mean),
                        "",
                    );
                }
                row(
                    &format!("precision / recall ({name}), mixture"),
                    format!("{:.3} / {:.3}", s.precision, s.recall),
                    "k = 3",
                );
            }
        }
    }
    if let Some(d) = &e.disentanglement {
        row(
            "FactorVAE metric",
            format!("{:.4}", d.factor_vae),
            "chance 0.2, 1 = each factor in its own dimensions",
        );
        row(
            "MIG",
            format!("{:.4}", d.mig),
            "0 = entangled, 1 = disentangled",
        );
        for (chance, b) in [(0.25, &d.beta_vae_4_factors), (0.2, &d.beta_vae_5_factors)] {
            let Some(b) = b else { continue };
            let restarts: Vec<String> = b
                .restart_accuracies
                .iter()
                .map(|a| format!("{a:.4}"))
                .collect();
            row(
                &format!("beta-VAE metric, {} factors", b.factor_names.len()),
                format!("{:.4}", b.accuracy),
                &format!("chance {chance}, restarts {}", restarts.join(" ")),
            );
        }
    }
    for s in &e.skipped {
        println!("  skipped {}: {}", s.metric, s.reason);
    }
}

/// The prior-match rows of the table.
fn print_prior_match(pm: &PriorMatch) {
    row(
        "p-value, codes = prior",
        format!("{:.3}", pm.p_value),
        &format!(
            "MMD permutation test, {} points, {} permutations",
            pm.test_points, pm.permutations
        ),
    );
    row(
        "intrinsic dimension of the codes",
        format!("{:.2}", pm.intrinsic_dimension),
        &format!(
            "TwoNN; prior samples {:.2}, d_z = {}",
            pm.prior_intrinsic_dimension, pm.latent_dim
        ),
    );
    println!("  -> {}", pm.verdict);
}

/// Runs `wae eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    if args.n < 4 {
        bail!("--n must be at least 4 (precision/recall need more than k = 3 points)");
    }
    for (flag, file) in [
        ("--classifier", &args.classifier),
        ("--inception", &args.inception),
    ] {
        if let Some(f) = file
            && !f.is_file()
        {
            bail!("{flag} {}: no such file", f.display());
        }
    }
    let components = super::sample::parse_sampler(&args.sampler)?;
    if components.is_some() && args.fit_images < 2 {
        bail!("--fit-images must be at least 2 to fit a mixture");
    }
    let run = pictures::load_run(&args.run, "eval", &[Network::Encoder, Network::Decoder])?;
    let out = run.output_path(args.out.as_deref(), wae_train::EVAL_FILE);
    let _lock = pictures::claim_output(&run.run_dir, &out, "wae eval")?;
    let opts = EvalOptions {
        n: args.n,
        split: args.split,
        seed: args.seed,
        classifier: args.classifier,
        inception: args.inception,
        gmm: components.map(|components| GmmSampler {
            components,
            fit_images: args.fit_images,
        }),
        disentanglement: !args.no_disentanglement,
        data_dir: args.run.data_dir,
    };
    let report = wae_train::evaluate::evaluate(&run, &opts)
        .with_context(|| format!("while evaluating {}", run.checkpoint_dir.display()))?;
    report.save(&out).context("while saving the evaluation")?;
    print_table(&report);
    println!("wrote {}", out.display());
    Ok(())
}
