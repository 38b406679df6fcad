//! Evaluation helpers for auto-encoders: reconstruction error on a test set
//! and the MMD between the test codes and the prior.

use candle_core::{DType, Tensor};
use rand::Rng;
use wae_divergence::{MmdConfig, Prior};

use crate::{Error, Result};

/// Reconstruction errors of a set of images, accumulated in f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconstructionError {
    /// Mean over images of the squared L2 distance summed over pixels (the
    /// WAE cost `c(x, G(z))` without the reference code's 0.05 factor).
    pub squared_l2_per_image: f64,
    /// Mean squared error per pixel value.
    pub mse_per_pixel: f64,
    /// Mean over images of the L1 distance summed over pixels.
    pub l1_per_image: f64,
    /// Number of images.
    pub images: usize,
}

/// Accumulates [`ReconstructionError`] over batches (a test set evaluated in pieces).
#[derive(Debug, Clone, Default)]
pub struct ReconstructionAccumulator {
    squared: f64,
    absolute: f64,
    images: usize,
    values: usize,
}

impl ReconstructionAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a batch: `x` and `reconstruction` of the same shape (N, ...).
    pub fn add(&mut self, x: &Tensor, reconstruction: &Tensor) -> Result<()> {
        if x.dims() != reconstruction.dims() {
            return Err(Error::InvalidInput(format!(
                "reconstruction error: shapes differ ({:?} vs {:?})",
                x.dims(),
                reconstruction.dims()
            )));
        }
        let n = x.dim(0)?;
        let diff = (x.to_dtype(DType::F64)? - reconstruction.to_dtype(DType::F64)?)?;
        self.squared += diff.sqr()?.sum_all()?.to_scalar::<f64>()?;
        self.absolute += diff.abs()?.sum_all()?.to_scalar::<f64>()?;
        self.images += n;
        self.values += x.elem_count();
        Ok(())
    }

    /// The errors over everything added so far.
    pub fn finish(&self) -> Result<ReconstructionError> {
        if self.images == 0 || self.values == 0 {
            return Err(Error::InvalidInput(
                "reconstruction error: no images were added".into(),
            ));
        }
        Ok(ReconstructionError {
            squared_l2_per_image: self.squared / self.images as f64,
            mse_per_pixel: self.squared / self.values as f64,
            l1_per_image: self.absolute / self.images as f64,
            images: self.images,
        })
    }
}

/// Reconstruction errors of `reconstruction` against `x`, both (N, C, H, W)
/// (or any equal shapes with the images along dim 0).
pub fn reconstruction_error(x: &Tensor, reconstruction: &Tensor) -> Result<ReconstructionError> {
    let mut acc = ReconstructionAccumulator::new();
    acc.add(x, reconstruction)?;
    acc.finish()
}

/// MMD^2 between encoded test codes `codes` (N, d_z) and N samples of `prior`
/// drawn from `rng` (on the host, then moved to the codes' device), with
/// wae-divergence's estimator (`cfg`: kernel, scales, estimator); computed in
/// blocks of `block_size` rows so that 10k codes fit in memory.
pub fn latent_mmd<R: Rng + ?Sized>(
    codes: &Tensor,
    prior: &Prior,
    cfg: &MmdConfig,
    rng: &mut R,
    block_size: usize,
) -> Result<f64> {
    let (n, d) = codes.dims2()?;
    let samples = prior.sample(n, d, rng, codes.device(), codes.dtype())?;
    Ok(wae_divergence::mmd_blockwise(
        codes, &samples, cfg, block_size,
    )?)
}
