//! Image grids: a batch of images as one picture, with a thin border between
//! cells and nearest-neighbour up-scaling so that 28x28 digits are visible.

use candle_core::{DType, Device, Tensor};
use image::{Rgb, RgbImage};

use crate::{Error, Result};

/// How [`image_grid`] lays out and draws images.
#[derive(Debug, Clone, PartialEq)]
pub struct GridConfig {
    /// Images per row (the last row may be partly empty).
    pub columns: usize,
    /// Nearest-neighbour up-scaling factor of every image (1 = original size).
    pub scale: u32,
    /// Width in pixels of the border around and between cells.
    pub border: u32,
    /// Colour of the border and of empty cells.
    pub border_colour: [u8; 3],
    /// Pixel values mapped to black and white: `(0, 1)` for sigmoid outputs,
    /// `(-1, 1)` for tanh outputs. Values outside are clamped, NaN is black.
    pub value_range: (f32, f32),
}

impl Default for GridConfig {
    /// 10 columns, x2, a 1-pixel mid-grey border, values in [0, 1].
    fn default() -> Self {
        Self {
            columns: 10,
            scale: 2,
            border: 1,
            border_colour: [128, 128, 128],
            value_range: (0.0, 1.0),
        }
    }
}

impl GridConfig {
    /// The default config with `columns` images per row.
    pub fn with_columns(columns: usize) -> Self {
        Self {
            columns,
            ..Self::default()
        }
    }

    /// Width and height in pixels of the grid of `n` images of `height x width`.
    pub fn grid_size(&self, n: usize, height: usize, width: usize) -> (u32, u32) {
        let columns = self.columns.max(1);
        let rows = n.div_ceil(columns).max(1);
        let cell_w = width as u32 * self.scale;
        let cell_h = height as u32 * self.scale;
        (
            columns as u32 * cell_w + (columns as u32 + 1) * self.border,
            rows as u32 * cell_h + (rows as u32 + 1) * self.border,
        )
    }

    fn validate(&self) -> Result<()> {
        if self.columns == 0 || self.scale == 0 {
            return Err(Error::InvalidInput(format!(
                "grid: columns and scale must be at least 1, got {} and {}",
                self.columns, self.scale
            )));
        }
        let (lo, hi) = self.value_range;
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return Err(Error::InvalidInput(format!(
                "grid: value range ({lo}, {hi}) must be finite and increasing"
            )));
        }
        Ok(())
    }
}

/// A batch of images as 8-bit host pixels, `(N, C, H, W)` row-major, C = 1 or 3.
#[derive(Debug, Clone, PartialEq)]
pub struct HostImages {
    /// Number of images N.
    pub count: usize,
    /// Channels C (1 grey or 3 RGB).
    pub channels: usize,
    /// Height H in pixels.
    pub height: usize,
    /// Width W in pixels.
    pub width: usize,
    /// `N * C * H * W` bytes, image by image, channel-planar as the tensor.
    pub pixels: Vec<u8>,
}

impl HostImages {
    /// Converts `images` `(N, C, H, W)` (any float dtype, any device), mapping
    /// `value_range` linearly to 0..=255 with clamping (NaN becomes 0).
    pub fn from_tensor(images: &Tensor, value_range: (f32, f32)) -> Result<Self> {
        let (count, channels, height, width) = images.dims4().map_err(|_| {
            Error::InvalidInput(format!(
                "images must be (N, C, H, W), got shape {:?}",
                images.dims()
            ))
        })?;
        if channels != 1 && channels != 3 {
            return Err(Error::InvalidInput(format!(
                "images must have 1 or 3 channels, got {channels}"
            )));
        }
        let (lo, hi) = value_range;
        let values = images
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let pixels = values
            .iter()
            .map(|&v| {
                let u = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
                if u.is_nan() {
                    0
                } else {
                    (u * 255.0).round() as u8
                }
            })
            .collect();
        Ok(Self {
            count,
            channels,
            height,
            width,
            pixels,
        })
    }

    /// The colour of pixel `(y, x)` of image `index`.
    pub fn pixel(&self, index: usize, y: usize, x: usize) -> [u8; 3] {
        let plane = self.height * self.width;
        let base = index * self.channels * plane + y * self.width + x;
        if self.channels == 1 {
            let v = self.pixels[base];
            [v, v, v]
        } else {
            [
                self.pixels[base],
                self.pixels[base + plane],
                self.pixels[base + 2 * plane],
            ]
        }
    }
}

/// Draws `images` `(N, C, H, W)` (C = 1 or 3) as a grid of `cfg.columns`
/// columns and `ceil(N / columns)` rows, each image scaled by `cfg.scale`
/// (nearest neighbour) and framed by `cfg.border` pixels. The result has the
/// size [`GridConfig::grid_size`] gives.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use wae_viz::{GridConfig, image_grid};
/// let images = Tensor::zeros((12, 1, 28, 28), candle_core::DType::F32, &Device::Cpu)?;
/// let grid = image_grid(&images, &GridConfig::with_columns(5))?;
/// // 5 columns of 56 pixels and 6 borders; 3 rows.
/// assert_eq!(grid.dimensions(), (5 * 56 + 6, 3 * 56 + 4));
/// # Ok::<(), wae_viz::Error>(())
/// ```
pub fn image_grid(images: &Tensor, cfg: &GridConfig) -> Result<RgbImage> {
    cfg.validate()?;
    let host = HostImages::from_tensor(images, cfg.value_range)?;
    Ok(host_grid(&host, cfg))
}

/// [`image_grid`] on images already on the host.
pub fn host_grid(images: &HostImages, cfg: &GridConfig) -> RgbImage {
    let (w, h) = cfg.grid_size(images.count, images.height, images.width);
    let mut out = RgbImage::from_pixel(w, h, Rgb(cfg.border_colour));
    let columns = cfg.columns.max(1);
    let scale = cfg.scale.max(1);
    let cell_w = images.width as u32 * scale;
    let cell_h = images.height as u32 * scale;
    for index in 0..images.count {
        let row = (index / columns) as u32;
        let col = (index % columns) as u32;
        let x0 = cfg.border + col * (cell_w + cfg.border);
        let y0 = cfg.border + row * (cell_h + cfg.border);
        for y in 0..images.height {
            for x in 0..images.width {
                let colour = Rgb(images.pixel(index, y, x));
                for dy in 0..scale {
                    for dx in 0..scale {
                        out.put_pixel(
                            x0 + x as u32 * scale + dx,
                            y0 + y as u32 * scale + dy,
                            colour,
                        );
                    }
                }
            }
        }
    }
    out
}

/// Interleaves rows of two equally long batches `(N, C, H, W)`: `columns`
/// images of `first`, then the same `columns` of `second`, and so on (the
/// papers' layout of test images above their reconstructions). Returns
/// `(2N, C, H, W)`. N must be a multiple of `columns`, so that every row is full
/// and a grid of `columns` columns shows the pairs one above the other.
pub fn interleave_rows(first: &Tensor, second: &Tensor, columns: usize) -> Result<Tensor> {
    if first.dims() != second.dims() {
        return Err(Error::InvalidInput(format!(
            "interleave_rows: shapes differ ({:?} vs {:?})",
            first.dims(),
            second.dims()
        )));
    }
    if columns == 0 {
        return Err(Error::InvalidInput("interleave_rows: columns is 0".into()));
    }
    let n = first.dim(0)?;
    if n % columns != 0 {
        return Err(Error::InvalidInput(format!(
            "interleave_rows: {n} images do not fill rows of {columns}"
        )));
    }
    let mut parts = Vec::with_capacity(2 * n.div_ceil(columns));
    let mut start = 0;
    while start < n {
        parts.push(first.narrow(0, start, columns)?);
        parts.push(second.narrow(0, start, columns)?);
        start += columns;
    }
    if parts.is_empty() {
        return Err(Error::InvalidInput("interleave_rows: no images".into()));
    }
    Ok(Tensor::cat(&parts, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_borders_and_scaling() -> Result<()> {
        // Image 0 all white, image 1 black with one white pixel at (0, 1).
        let mut v = vec![1f32; 4];
        v.extend([0.0, 1.0, 0.0, 0.0]);
        let images = Tensor::from_vec(v, (2, 1, 2, 2), &Device::Cpu)?;
        let cfg = GridConfig {
            columns: 2,
            scale: 3,
            border: 1,
            border_colour: [9, 8, 7],
            value_range: (0.0, 1.0),
        };
        let g = image_grid(&images, &cfg)?;
        assert_eq!(g.dimensions(), (2 * 6 + 3, 6 + 2));
        assert_eq!(g.get_pixel(0, 0).0, [9, 8, 7]);
        assert_eq!(g.get_pixel(7, 3).0, [9, 8, 7]); // border between the cells
        assert_eq!(g.get_pixel(1, 1).0, [255; 3]);
        assert_eq!(g.get_pixel(6, 6).0, [255; 3]);
        // Second cell starts at x = 8; its pixel (0, 1) covers x 11..14, y 1..4.
        assert_eq!(g.get_pixel(8, 1).0, [0; 3]);
        assert_eq!(g.get_pixel(11, 1).0, [255; 3]);
        assert_eq!(g.get_pixel(13, 3).0, [255; 3]);
        assert_eq!(g.get_pixel(13, 4).0, [0; 3]);
        Ok(())
    }

    #[test]
    fn tanh_range_rgb_and_clamping() -> Result<()> {
        // One 1x1 RGB image: r = -1 (black), g = 0 (mid), b = 3 (clamped white).
        let images = Tensor::from_vec(vec![-1f32, 0.0, 3.0], (1, 3, 1, 1), &Device::Cpu)?;
        let cfg = GridConfig {
            columns: 1,
            scale: 1,
            border: 0,
            value_range: (-1.0, 1.0),
            ..GridConfig::default()
        };
        let g = image_grid(&images, &cfg)?;
        assert_eq!(g.get_pixel(0, 0).0, [0, 128, 255]);
        Ok(())
    }

    #[test]
    fn bad_inputs_are_errors() {
        let two_channels = Tensor::zeros((1, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let err = image_grid(&two_channels, &GridConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 or 3 channels"), "{err}");
        let flat = Tensor::zeros((4, 16), DType::F32, &Device::Cpu).unwrap();
        assert!(image_grid(&flat, &GridConfig::default()).is_err());
        let ok = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let zero_cols = GridConfig::with_columns(0);
        assert!(image_grid(&ok, &zero_cols).is_err());
    }

    #[test]
    fn interleaving_alternates_rows() -> Result<()> {
        let a = Tensor::arange(0f32, 6.0, &Device::Cpu)?.reshape((6, 1, 1, 1))?;
        let b = (&a + 10.0)?;
        let mixed = interleave_rows(&a, &b, 2)?;
        let v = mixed.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(
            v,
            vec![0., 1., 10., 11., 2., 3., 12., 13., 4., 5., 14., 15.]
        );
        let five = a.narrow(0, 0, 5)?;
        let err = interleave_rows(&five, &five, 2).unwrap_err().to_string();
        assert!(err.contains("do not fill rows"), "{err}");
        Ok(())
    }
}
