//! KL divergence to the standard normal and the adversarial (Jensen-Shannon) losses of WAE-GAN.

use candle_core::Tensor;

use crate::{Error, Result, check};

/// KL divergence `KL(N(mu, diag(exp(logvar))) || N(0, I))`, summed over the latent
/// dimensions and averaged over the batch: `mean_i sum_j 0.5 (mu_ij^2 + exp(logvar_ij) - 1 - logvar_ij)`.
///
/// `mu` and `logvar` are `(N, d)` float tensors of the same shape (`N >= 1`); the result is a
/// scalar tensor (shape `()`), differentiable with respect to both.
pub fn kl_to_standard_normal(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let (n, d) = check::matrix(mu, "mu")?;
    let shape = check::matrix(logvar, "logvar")?;
    if shape != (n, d) || mu.dtype() != logvar.dtype() {
        return Err(Error::ShapeMismatch(format!(
            "`mu` is {:?} {:?} but `logvar` is {:?} {:?}",
            mu.dims(),
            mu.dtype(),
            logvar.dims(),
            logvar.dtype()
        )));
    }
    if n == 0 || d == 0 {
        return Err(Error::InvalidArgument("`mu` and `logvar` are empty".into()));
    }
    let per_coordinate = ((mu.sqr()? + logvar.exp()?)? - logvar)?.affine(0.5, -0.5)?;
    Ok(per_coordinate.sum(1)?.mean(0)?)
}

/// `softplus(x) = log(1 + exp(x))`, elementwise, computed as `max(x, 0) + log(1 + exp(-|x|))`
/// so that it never overflows and never takes `log(0)`: finite for logits of any size,
/// with finite gradients. Note `-log(sigmoid(x)) = softplus(-x)` and
/// `-log(1 - sigmoid(x)) = softplus(x)`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    check::float(x, "x")?;
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// `log(sigmoid(x)) = -softplus(-x)`, elementwise and numerically stable.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(softplus(&x.neg()?)?.neg()?)
}

fn non_empty_logits(t: &Tensor, name: &'static str) -> Result<()> {
    check::float(t, name)?;
    if t.elem_count() == 0 {
        return Err(Error::InvalidArgument(format!("`{name}` is empty")));
    }
    Ok(())
}

/// The WAE-GAN discriminator's loss (to minimise) on its logits:
/// `-mean log D(z_prior) - mean log(1 - D(z_codes))` with `D = sigmoid(logit)`, i.e.
/// `mean softplus(-logits_prior) + mean softplus(logits_codes)`.
///
/// `logits_prior` are the discriminator's logits on prior samples, `logits_codes` on the
/// encoder's codes; any shape (typically `(N, 1)`), non-empty, float. Returns a scalar tensor.
/// Stable for logits of any magnitude (e.g. `+-100` gives finite values and gradients).
pub fn discriminator_loss(logits_prior: &Tensor, logits_codes: &Tensor) -> Result<Tensor> {
    non_empty_logits(logits_prior, "logits_prior")?;
    non_empty_logits(logits_codes, "logits_codes")?;
    let real = softplus(&logits_prior.neg()?)?.mean_all()?;
    let fake = softplus(logits_codes)?.mean_all()?;
    Ok((real + fake)?)
}

/// The encoder's non-saturating adversarial loss (the JS penalty of WAE-GAN, to minimise):
/// `-mean log D(z_codes) = mean softplus(-logits_codes)`.
///
/// `logits_codes`: the discriminator's logits on the encoder's codes, any shape, non-empty,
/// float. Returns a scalar tensor; stable for logits of any magnitude.
pub fn encoder_adversarial_loss(logits_codes: &Tensor) -> Result<Tensor> {
    non_empty_logits(logits_codes, "logits_codes")?;
    Ok(softplus(&logits_codes.neg()?)?.mean_all()?)
}
