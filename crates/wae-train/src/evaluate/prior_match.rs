//! Does the codes' distribution match the prior? An MMD permutation test and the TwoNN
//! intrinsic dimension of the codes beside the prior's.

use candle_core::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;
use wae_nets::EncoderKind;

use super::PriorMatch;
use crate::Result;
use crate::trained::TrainedRun;

/// Codes in the permutation test and the TwoNN estimate (both cost O(n^2)).
const PRIOR_MATCH_POINTS: usize = 1000;
/// Permutations of the test.
const PRIOR_MATCH_PERMUTATIONS: usize = 200;

/// The test of the first 1000 codes (`means`, or one code drawn from Q(z|x) per image
/// when `logvar` is given, from `seed + 1`) against as many of the `prior` samples.
pub(super) fn prior_match(
    kind: EncoderKind,
    means: &Tensor,
    logvar: Option<&Tensor>,
    prior: &Tensor,
    mmd_cfg: &wae_divergence::MmdConfig,
    seed: u64,
) -> Result<PriorMatch> {
    let k = means.dim(0)?.min(PRIOR_MATCH_POINTS);
    let (codes, what) = match logvar {
        Some(lv) => (
            TrainedRun::sample_codes(kind, means, lv, seed.wrapping_add(1))?,
            "one code drawn from Q(z|x) per test image",
        ),
        None => (means.clone(), "encoder means of the test images"),
    };
    let codes = codes.narrow(0, 0, k)?;
    let prior = prior.narrow(0, 0, k)?;
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(7));
    let test = wae_divergence::mmd_permutation_test(
        &codes,
        &prior,
        mmd_cfg,
        PRIOR_MATCH_PERMUTATIONS,
        &mut rng,
    )?;
    let dim =
        wae_metrics::two_nn_dimension(&wae_metrics::disentanglement::codes_from_tensor(&codes)?)?;
    let prior_dim =
        wae_metrics::two_nn_dimension(&wae_metrics::disentanglement::codes_from_tensor(&prior)?)?;
    let d_z = means.dim(1)?;
    let verdict = if test.p_value < 0.01 && dim < 0.75 * prior_dim {
        format!(
            "the codes do not fill the prior: they lie near a {dim:.1}-dimensional set (the \
             prior gives {prior_dim:.1} here, d_z = {d_z}) and differ from it (p = {:.3})",
            test.p_value
        )
    } else if dim > 1.25 * prior_dim {
        format!(
            "the codes {} the prior (p = {:.3}); their TwoNN dimension {dim:.1} exceeds the \
             prior's {prior_dim:.1}, which happens for clustered or repeated codes (discrete \
             data such as dSprites), so it says nothing here",
            if test.p_value < 0.01 {
                "differ from"
            } else {
                "are not told apart from"
            },
            test.p_value
        )
    } else if test.p_value < 0.01 {
        format!(
            "the codes differ from the prior (p = {:.3}) though they spread over about \
             {dim:.1} dimensions (prior: {prior_dim:.1})",
            test.p_value
        )
    } else {
        format!(
            "no evidence against codes = prior at {k} points (p = {:.3}); intrinsic dimension \
             {dim:.1} (prior: {prior_dim:.1})",
            test.p_value
        )
    };
    Ok(PriorMatch {
        codes: what.into(),
        test_points: k,
        statistic: test.statistic,
        p_value: test.p_value,
        permutations: test.num_permutations,
        intrinsic_dimension: dim,
        prior_intrinsic_dimension: prior_dim,
        latent_dim: d_z,
        verdict,
    })
}
