//! `wae latent-plot`: the test codes in two dimensions (PCA when d_z > 2),
//! coloured by label, beside as many prior samples on the same axes.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;
use wae_viz::{Pca, ScatterPlot, ScatterPoint};

use crate::pictures::{self, Network, RunArgs, SplitArg};

/// Arguments of `wae latent-plot`.
#[derive(Debug, Args)]
#[command(
    after_help = "Left: the codes of test images, coloured by label (digit; shape for dSprites; \
    grey-level decile for fading squares): the encoder's output, or for a Gaussian encoder one \
    code drawn from Q(z|x) per image (--means: the means). \
    Right: prior samples. When d_z > 2 both are projected on the first two principal \
    components of the test codes; the picture's title says how much variance they keep.\n\n\
    Examples:\n  \
    wae latent-plot runs/mmd                     # 2000 test codes -> runs/mmd/latent.png\n  \
    wae latent-plot runs/mmd --n 10000 --seed 1 --out latent-all.png"
)]
pub struct LatentPlotArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Number of test images (the first N) and of prior samples.
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    /// Seed of the prior samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG (default: RUN/latent.png).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// For a Gaussian encoder, plot the encoder means instead of codes drawn from
    /// Q(z|x) (the default, since the drawn codes are what is matched to the prior).
    #[arg(long)]
    pub means: bool,
}

/// Half-width of a square view centred on 0 that holds all but the most
/// extreme 0.5% of the coordinates in `values`, plus a margin.
fn view_half_width(values: &[f64]) -> f64 {
    let mut abs: Vec<f64> = values
        .iter()
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .collect();
    if abs.is_empty() {
        return 1.0;
    }
    abs.sort_by(f64::total_cmp);
    let q = abs[((abs.len() - 1) as f64 * 0.995).round() as usize];
    (q * 1.1).max(1e-6)
}

/// Runs `wae latent-plot`.
pub fn run(args: LatentPlotArgs) -> Result<()> {
    if args.n < 3 {
        bail!("--n must be at least 3");
    }
    let run = pictures::load_run(&args.run, "latent-plot", &[Network::Encoder])?;
    let out = run.output_path(args.out.as_deref(), "latent.png");
    let _lock = pictures::claim_output(&run.run_dir, &out, "wae latent-plot")?;
    let data = run.data(SplitArg::Test, args.run.data_dir.as_deref(), Some(args.n))?;
    let n = data.len();
    let indices: Vec<usize> = (0..n).collect();
    let (means, logvar) = run.encode(&data, &indices)?;
    let (codes, what) = match &logvar {
        Some(lv) if !args.means => (
            pictures::LoadedRun::sample_codes(
                run.cfg.model.encoder.kind,
                &means,
                lv,
                args.seed.wrapping_add(1),
            )?,
            "codes drawn from Q(z|x)",
        ),
        _ => (means, "test codes"),
    };
    let d = run.latent_dim();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let prior = run
        .model()
        .sample_prior(n, &mut rng, &candle_core::Device::Cpu)?;
    let code_values = codes.flatten_all()?.to_vec1::<f32>()?;
    let prior_values = prior.flatten_all()?.to_vec1::<f32>()?;
    let (code_xy, prior_xy, axes) = if d == 1 {
        // One dimension: plot the code against the image index.
        let spread = |v: &[f32]| -> Vec<f64> {
            v.iter()
                .enumerate()
                .flat_map(|(i, &z)| [f64::from(z), (i as f64 / v.len() as f64) * 2.0 - 1.0])
                .collect()
        };
        (
            spread(&code_values),
            spread(&prior_values),
            "z vs. index".to_string(),
        )
    } else if d == 2 {
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        (
            widen(&code_values),
            widen(&prior_values),
            "z1, z2".to_string(),
        )
    } else {
        let pca = Pca::fit(&code_values, d, 2)?;
        let kept = pca.explained_fraction() * 100.0;
        println!(
            "PCA of the {n} test codes (d_z = {d}): the first two components keep {kept:.1}% of the variance"
        );
        (
            pca.transform(&code_values)?,
            pca.transform(&prior_values)?,
            format!("PCA 2 of {d}, {kept:.0}% var."),
        )
    };
    let mut all = code_xy.clone();
    all.extend_from_slice(&prior_xy);
    let half = view_half_width(&all);
    let labels = data.labels();
    let code_points: Vec<ScatterPoint> = code_xy
        .chunks_exact(2)
        .zip(labels)
        .map(|(p, &label)| ScatterPoint {
            x: p[0],
            y: p[1],
            class: Some(usize::from(label)),
        })
        .collect();
    let prior_points: Vec<ScatterPoint> = prior_xy
        .chunks_exact(2)
        .map(|p| ScatterPoint {
            x: p[0],
            y: p[1],
            class: None,
        })
        .collect();
    let panel = |title: String, points: Vec<ScatterPoint>, width: u32| {
        let mut plot = ScatterPlot::new(title, points);
        plot.x_range = Some((-half, half));
        plot.y_range = Some((-half, half));
        plot.width = width;
        plot.height = 420;
        plot.render()
    };
    // The legend takes 44 pixels: widen the left panel so both plot areas are square.
    let left = panel(format!("{what} ({axes})"), code_points, 484)?;
    let right = panel(format!("prior {}", run.prior_text()), prior_points, 440)?;
    let picture = wae_viz::tile(&[left, right], 2, 0, [255, 255, 255]);
    pictures::save_picture(
        &picture,
        &out,
        &format!("{n} test codes and {n} prior samples, step {}", run.step),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_ignores_rare_outliers() {
        let mut v: Vec<f64> = (0..1000).map(|i| (i % 10) as f64 / 10.0).collect();
        v.push(1e6);
        let h = view_half_width(&v);
        assert!(h > 0.9 && h < 1.1, "{h}");
    }
}
