//! Priors on the latent space, sampled with a seeded host RNG.

use candle_core::{DType, Device, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::{Error, Result, check};

/// A prior distribution `P_Z` on `R^d`.
///
/// With the `serde` feature it is written as a table tagged by `kind`:
/// `{ kind = "normal", variance = 1.0 }`, `{ kind = "uniform_box", half_width = 1.0 }`,
/// `{ kind = "sphere" }`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum Prior {
    /// Isotropic normal `N(0, variance * I)`.
    Normal {
        /// Per-coordinate variance `sigma_z^2` (positive, finite).
        variance: f64,
    },
    /// Uniform on the box `[-half_width, half_width]^d`.
    UniformBox {
        /// Half the side length of the box (positive, finite).
        half_width: f64,
    },
    /// Uniform on the unit sphere `{z : ||z|| = 1}` in `R^d`.
    Sphere,
}

impl Default for Prior {
    /// The standard normal `N(0, I)` (the paper's MNIST prior).
    fn default() -> Self {
        Prior::Normal { variance: 1.0 }
    }
}

impl Prior {
    /// Checks the prior's parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Prior::Normal { variance } => check::variance(variance),
            Prior::UniformBox { half_width } if half_width.is_finite() && half_width > 0.0 => {
                Ok(())
            }
            Prior::UniformBox { half_width } => Err(Error::InvalidArgument(format!(
                "uniform box half-width {half_width} must be positive and finite"
            ))),
            Prior::Sphere => Ok(()),
        }
    }

    /// The per-coordinate variance of the prior in dimension `d` (`variance`,
    /// `half_width^2 / 3`, `1 / d`); a natural `MmdConfig::prior_variance`.
    pub fn coordinate_variance(&self, d: usize) -> f64 {
        match *self {
            Prior::Normal { variance } => variance,
            Prior::UniformBox { half_width } => half_width * half_width / 3.0,
            Prior::Sphere => 1.0 / d.max(1) as f64,
        }
    }

    /// The [`MmdConfig::prior_variance`] that gives the reference code's (`tolstikhin/wae`)
    /// kernel constant base `C = 2 d sigma^2`: `variance` for a normal prior, `1 / d` for
    /// the sphere (C = 2) and `half_width^2 / 2` for the box (C = d for the `[-1, 1]` box).
    /// Unlike [`Prior::coordinate_variance`], the box's is not its true variance
    /// (`half_width^2 / 3`): the rule follows the reference code, not the distribution.
    ///
    /// [`MmdConfig::prior_variance`]: crate::MmdConfig::prior_variance
    pub fn kernel_variance(&self, d: usize) -> f64 {
        match *self {
            Prior::Normal { variance } => variance,
            Prior::UniformBox { half_width } => half_width * half_width / 2.0,
            Prior::Sphere => 1.0 / d.max(1) as f64,
        }
    }

    /// Draws `n` samples of dimension `d`: a `(n, d)` tensor of `dtype` on `device`.
    ///
    /// The numbers are drawn on the host from `rng` (in f64, then converted), so the same
    /// seed gives the same tensor on every device. Errors for `n == 0`, `d == 0`, a
    /// non-float dtype or invalid parameters.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        n: usize,
        d: usize,
        rng: &mut R,
        device: &Device,
        dtype: DType,
    ) -> Result<Tensor> {
        self.validate()?;
        if !dtype.is_float() {
            return Err(Error::NonFloatDType {
                name: "dtype",
                dtype,
            });
        }
        if n == 0 || d == 0 {
            return Err(Error::InvalidArgument(format!(
                "cannot sample a ({n}, {d}) prior tensor"
            )));
        }
        let mut values = Vec::with_capacity(n * d);
        match *self {
            Prior::Normal { variance } => {
                let std = variance.sqrt();
                values.extend((0..n * d).map(|_| std * rng.sample::<f64, _>(StandardNormal)));
            }
            Prior::UniformBox { half_width } => {
                values.extend((0..n * d).map(|_| half_width * (2.0 * rng.random::<f64>() - 1.0)));
            }
            Prior::Sphere => {
                let mut row = vec![0.0f64; d];
                for _ in 0..n {
                    // A normalised Gaussian vector is uniform on the sphere; redraw the
                    // (probability zero) all-zero vector.
                    let norm = loop {
                        row.iter_mut().for_each(|v| *v = rng.sample(StandardNormal));
                        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
                        if norm > 0.0 {
                            break norm;
                        }
                    };
                    values.extend(row.iter().map(|v| v / norm));
                }
            }
        }
        Ok(Tensor::from_vec(values, (n, d), &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)?)
    }
}

/// How the MMD kernel constant `C_s` of each scale `s` is made for codes under a prior.
///
/// With the `serde` feature it is written in snake case (`"two_dim_prior_variance"`,
/// `"latent_dim"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum KernelConstant {
    /// `C = 2 d sigma_z^2 s` with the prior's [`Prior::kernel_variance`] (`tolstikhin/wae`,
    /// the WAE paper).
    #[default]
    TwoDimPriorVariance,
    /// `C = d s` whatever the prior (Rubenstein et al.'s
    /// `IMQ_length_params = [c * z_dim for c in coeffs]`).
    LatentDim,
}

impl KernelConstant {
    /// The [`MmdConfig::prior_variance`] this rule gives for codes of dimension `d` under
    /// `prior` ([`mmd`] uses `C_s = 2 d prior_variance s`, so [`KernelConstant::LatentDim`]
    /// is `1 / 2`).
    ///
    /// [`MmdConfig::prior_variance`]: crate::MmdConfig::prior_variance
    /// [`mmd`]: crate::mmd()
    pub fn prior_variance(self, prior: &Prior, d: usize) -> f64 {
        match self {
            KernelConstant::TwoDimPriorVariance => prior.kernel_variance(d),
            KernelConstant::LatentDim => 0.5,
        }
    }
}
