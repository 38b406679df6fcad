//! Pictures of generative models, drawn without system fonts: image grids
//! with thin borders and nearest-neighbour up-scaling, line plots (loss
//! curves) and class-coloured scatter plots with axes and tick labels in a
//! built-in 8x8 bitmap font, a small PCA for 2-d views of latent codes, and
//! latent paths (linear and spherical interpolation, the four-corner grid,
//! one-coordinate traversals). PNGs are written atomically.
//!
//! Nothing here knows about training: images come in as candle tensors
//! `(N, C, H, W)` and codes as `f32` slices, so any model can use it.
//!
//! # Example: a grid of samples saved as a PNG
//! ```
//! use candle_core::{Device, Tensor};
//! use wae_viz::{GridConfig, image_grid, save_png};
//!
//! # fn main() -> wae_viz::Result<()> {
//! let samples = Tensor::rand(0f32, 1.0, (100, 1, 28, 28), &Device::Cpu)?;
//! let grid = image_grid(&samples, &GridConfig::default())?; // 10 x 10, x2, 1-pixel border
//! assert_eq!(grid.dimensions(), (10 * 56 + 11, 10 * 56 + 11));
//! let dir = std::env::temp_dir().join(format!("wae-viz-doc-{}", std::process::id()));
//! save_png(&grid, &dir.join("samples.png"))?;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod canvas;
mod error;
pub mod grid;
pub mod latent;
pub mod output;
pub mod pca;
pub mod plot;

pub use canvas::{Canvas, PALETTE, palette_colour, tile};
pub use error::{Error, Result};
pub use grid::{GridConfig, HostImages, host_grid, image_grid, interleave_rows};
pub use latent::{Interpolation, corner_grid, interpolation_path, symmetric_values, traversal};
pub use output::{ensure_writable, png_bytes, save_png, write_atomic};
pub use pca::Pca;
pub use plot::{LinePlot, ScatterPlot, ScatterPoint, Series, YScale, format_tick, nice_ticks};
