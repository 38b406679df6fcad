//! Disentanglement scores of a dSprites run's encoder means: the FactorVAE metric, MIG
//! and the beta-VAE metric.

use candle_core::Tensor;
use rand::rngs::StdRng;

use super::{BetaVaeMetric, Disentanglement};
use crate::Result;
use crate::trained::TrainedRun;

/// Settings of the FactorVAE metric here: fewer votes than `disentanglement_lib`'s
/// 10,000 + 5,000 (which encode ~1M images) so that a CPU evaluation takes a minute;
/// dimensions pruned as in its study (global std not above 0.05).
pub const FACTOR_VAE: wae_metrics::disentanglement::FactorVaeConfig =
    wae_metrics::disentanglement::FactorVaeConfig {
        batch_size: 64,
        num_train: 800,
        num_eval: 400,
        num_variance_estimate: 5000,
        prune_std_threshold: 0.05,
    };

/// FactorVAE and the beta-VAE metric (fresh images from the dSprites generator, encoded;
/// the beta-VAE metric with the reference's full settings) and MIG (the test images
/// with their known factors `test_factors` and codes `test_codes`).
pub(super) fn disentanglement(
    run: &TrainedRun,
    test_factors: &[wae_data::DspritesFactors],
    test_codes: &Tensor,
    seed: u64,
) -> Result<Disentanglement> {
    use wae_metrics::disentanglement::{
        FnSampler, MigConfig, codes_from_tensor, factor_vae_score, mig,
    };
    use wae_metrics::{BetaVaeConfig, beta_vae_score};
    let to_metrics = |e: crate::Error| wae_metrics::Error::InvalidInput(e.to_string());
    let encode =
        |factors: &[wae_data::DspritesFactors]| -> wae_metrics::Result<ndarray::Array2<f64>> {
            let data = wae_data::Dsprites::generate(factors)
                .map_err(|e| wae_metrics::Error::InvalidInput(e.to_string()))?;
            let indices: Vec<usize> = (0..factors.len()).collect();
            let (codes, _) = run.encode(&data.images, &indices).map_err(to_metrics)?;
            codes_from_tensor(&codes)
        };
    let classes = |factors: &[wae_data::DspritesFactors]| {
        let flat: Vec<usize> = factors.iter().flat_map(|f| f.to_array()).collect();
        ndarray::Array2::from_shape_vec((factors.len(), 5), flat).expect("5 factors a row")
    };
    let mut sampler = FnSampler::new(
        wae_data::DSPRITES_FACTOR_SIZES.to_vec(),
        |n, rng: &mut StdRng| {
            let factors: Vec<_> = (0..n)
                .map(|_| wae_data::DspritesFactors::random(rng))
                .collect();
            Ok((encode(&factors)?, classes(&factors)))
        },
        |factor, value, n, rng: &mut StdRng| {
            let factors = wae_data::dsprites::sample_factors_with_fixed(factor, value, n, rng)
                .map_err(|e| wae_metrics::Error::InvalidInput(e.to_string()))?;
            encode(&factors)
        },
    );
    let fv = factor_vae_score(&mut sampler, &FACTOR_VAE, seed)?;
    let codes = codes_from_tensor(test_codes)?;
    let factors = classes(test_factors);
    let m = mig(codes.view(), factors.view(), &MigConfig::default())?;

    // Pairs of images sharing factor `factor`, every other factor drawn uniformly.
    type Codes = ndarray::Array2<f64>;
    let pairs =
        |factor: usize, n_pairs: usize, rng: &mut StdRng| -> wae_metrics::Result<(Codes, Codes)> {
            let mut factors: Vec<wae_data::DspritesFactors> = (0..n_pairs)
                .map(|_| wae_data::DspritesFactors::random(rng))
                .collect();
            for i in 0..n_pairs {
                let shared = factors[i].to_array()[factor];
                let mut second =
                    wae_data::dsprites::sample_factors_with_fixed(factor, shared, 1, rng)
                        .map_err(|e| wae_metrics::Error::InvalidInput(e.to_string()))?;
                factors.append(&mut second);
            }
            let codes = encode(&factors)?;
            Ok((
                codes.slice(ndarray::s![..n_pairs, ..]).to_owned(),
                codes.slice(ndarray::s![n_pairs.., ..]).to_owned(),
            ))
        };
    let beta_vae = |settings: BetaVaeConfig, seed: u64| -> Result<BetaVaeMetric> {
        let started = std::time::Instant::now();
        let score = beta_vae_score(&pairs, &settings, seed)?;
        tracing::info!(
            "beta-VAE metric on {} factors: {:.4} in {:.0} s",
            settings.factors.len(),
            score.accuracy,
            started.elapsed().as_secs_f64()
        );
        Ok(BetaVaeMetric {
            accuracy: score.accuracy,
            restart_accuracies: score.restart_accuracies,
            restart_losses: score.restart_losses,
            factor_names: settings
                .factors
                .iter()
                .map(|&k| wae_data::dsprites::DSPRITES_FACTOR_NAMES[k].to_string())
                .collect(),
            settings,
            seed,
        })
    };
    let beta_vae_4_factors =
        beta_vae(BetaVaeConfig::dsprites_four_factors(), seed.wrapping_add(1))?;
    let beta_vae_5_factors =
        beta_vae(BetaVaeConfig::dsprites_five_factors(), seed.wrapping_add(2))?;
    Ok(Disentanglement {
        factor_vae: fv.eval_accuracy,
        factor_vae_train: fv.train_accuracy,
        factor_vae_votes: [
            FACTOR_VAE.num_train,
            FACTOR_VAE.num_eval,
            FACTOR_VAE.batch_size,
        ],
        active_dims: fv.num_active_dims,
        mig: m.mig,
        mig_per_factor: m.gaps,
        beta_vae_4_factors: Some(beta_vae_4_factors),
        beta_vae_5_factors: Some(beta_vae_5_factors),
    })
}
