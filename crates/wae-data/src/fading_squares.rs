//! Fading squares (Rubenstein, Schölkopf and Tolstikhin 2018): 32x32 grey images of one
//! centred square whose grey level is the only factor of variation (intrinsic dimension 1).
//!
//! The square's side: the experiment's public code loads the data set from a prepared
//! `fading_squares.npy` and does not say how it was made, and we could not confirm the
//! side from the paper through the material we can search. We therefore use a 16-pixel
//! side by default ([`FadingSquaresConfig::square_side`]; our choice, not the paper's
//! number) and keep it configurable. Only the intrinsic dimension (1) matters for the
//! experiment.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// Side of a fading-squares image in pixels.
pub const FADING_SQUARES_SIDE: usize = 32;

/// Default side of the centred square in pixels (our choice, see the module docs).
pub const FADING_SQUARES_SQUARE_SIDE: usize = 16;

/// Geometry of the fading-squares images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FadingSquaresConfig {
    /// Side of the (square, single-channel) image in pixels. Default 32.
    pub image_side: usize,
    /// Side of the centred square in pixels; at most `image_side`. Default 16.
    pub square_side: usize,
}

impl Default for FadingSquaresConfig {
    fn default() -> Self {
        Self {
            image_side: FADING_SQUARES_SIDE,
            square_side: FADING_SQUARES_SQUARE_SIDE,
        }
    }
}

impl FadingSquaresConfig {
    /// The first row (and column) of the square: `(image_side - square_side) / 2`, rounded
    /// down, so an odd margin puts the extra pixel below and to the right.
    pub fn square_start(&self) -> usize {
        (self.image_side - self.square_side) / 2
    }

    fn check(&self) -> Result<()> {
        if self.image_side == 0 || self.square_side == 0 || self.square_side > self.image_side {
            return Err(Error::InvalidArgument(format!(
                "fading squares: need 0 < square_side ({}) <= image_side ({})",
                self.square_side, self.image_side
            )));
        }
        Ok(())
    }

    /// Whether pixel `(row, col)` lies inside the square.
    pub fn in_square(&self, row: usize, col: usize) -> bool {
        let start = self.square_start();
        let range = start..start + self.square_side;
        range.contains(&row) && range.contains(&col)
    }
}

/// A fading-squares data set: the images and the grey level (the factor) of each.
#[derive(Clone, Debug)]
pub struct FadingSquares {
    /// The images, `(N, 1, side, side)` u8: 0 outside the square, the quantised grey level
    /// `round(255 * g)` inside. Labels are that same u8 value, so `label / 255` is the
    /// factor as the network sees it.
    pub images: Dataset,
    /// The grey level `g` in `[0, 1]` of each image, as drawn (before u8 quantisation).
    pub grey_levels: Vec<f64>,
    /// The geometry used.
    pub config: FadingSquaresConfig,
}

impl FadingSquares {
    /// `n` images whose grey levels are drawn uniformly from `[0, 1)` by
    /// `StdRng::seed_from_u64(seed)` (one `f64` each, in order).
    ///
    /// ```
    /// use wae_data::{FadingSquares, FadingSquaresConfig};
    ///
    /// let data = FadingSquares::generate(100, 7, &FadingSquaresConfig::default())?;
    /// assert_eq!(data.images.image_shape(), (1, 32, 32));
    /// // The centre pixel holds the quantised grey level.
    /// let centre = data.images.image(0)?[16 * 32 + 16];
    /// assert_eq!(centre, (data.grey_levels[0] * 255.0).round() as u8);
    /// # Ok::<(), wae_data::Error>(())
    /// ```
    pub fn generate(n: usize, seed: u64, config: &FadingSquaresConfig) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let grey_levels: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
        Self::from_grey_levels(&grey_levels, config)
    }

    /// One image per given grey level (each in `[0, 1]`), e.g. an evenly spaced line of
    /// levels for pictures.
    pub fn from_grey_levels(grey_levels: &[f64], config: &FadingSquaresConfig) -> Result<Self> {
        config.check()?;
        let side = config.image_side;
        let mut pixels = vec![0u8; grey_levels.len() * side * side];
        let mut labels = Vec::with_capacity(grey_levels.len());
        for (index, &level) in grey_levels.iter().enumerate() {
            if !(0.0..=1.0).contains(&level) {
                return Err(Error::InvalidArgument(format!(
                    "fading squares: grey level {level} of image {index} is outside [0, 1]"
                )));
            }
            let value = quantise(level);
            labels.push(value);
            let image = &mut pixels[index * side * side..(index + 1) * side * side];
            let start = config.square_start();
            for row in start..start + config.square_side {
                image[row * side + start..row * side + start + config.square_side].fill(value);
            }
        }
        Ok(Self {
            images: Dataset::new(pixels, labels, 1, side, side)?,
            grey_levels: grey_levels.to_vec(),
            config: *config,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.grey_levels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.grey_levels.is_empty()
    }

    /// The grey levels after u8 quantisation, `round(255 g) / 255`: the value the square's
    /// pixels have in a batch (within `0.5 / 255` of [`FadingSquares::grey_levels`]).
    pub fn quantised_grey_levels(&self) -> Vec<f64> {
        self.images
            .labels()
            .iter()
            .map(|&v| f64::from(v) / 255.0)
            .collect()
    }
}

/// `round(255 * level)` as u8, for `level` in `[0, 1]`.
fn quantise(level: f64) -> u8 {
    // In range by the caller's check; the clamp only guards rounding at the ends.
    (level * 255.0).round().clamp(0.0, 255.0) as u8
}
