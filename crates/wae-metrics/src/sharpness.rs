//! Laplace sharpness (Tolstikhin et al. 2018, section 4).

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// ITU-R 601 luma weights used by the paper (and `skimage`/TF `rgb_to_grayscale`).
pub const GREY_WEIGHTS: [f64; 3] = [0.2989, 0.5870, 0.1140];

/// Number of values moved to the host at once (bounds memory for large sets).
const HOST_CHUNK_VALUES: usize = 1 << 22;

/// Sharpness of a set of images: the variance of the Laplace-filtered image,
/// averaged over images.
///
/// `images`: (N, C, H, W), C = 1 or 3, pixels in [0, 1], any float dtype, any
/// device. RGB is converted to grey with [`GREY_WEIGHTS`]; the image is
/// convolved ('valid', no padding) with the 3x3 Laplace filter
/// `[[0,1,0],[1,-4,1],[0,1,0]]`; the population variance (ddof = 0) of the
/// (H-2) x (W-2) result is taken per image, and the mean over the N images is
/// returned. All arithmetic is f64 on the host. Higher is sharper.
///
/// ```
/// use candle_core::{Device, Tensor};
/// // A constant image has no edges: sharpness 0.
/// let flat = Tensor::full(0.5f32, (2, 1, 8, 8), &Device::Cpu)?;
/// assert_eq!(wae_metrics::laplace_sharpness(&flat)?, 0.0);
/// # Ok::<(), wae_metrics::Error>(())
/// ```
pub fn laplace_sharpness(images: &Tensor) -> Result<f64> {
    let (n, c, h, w) = images.dims4()?;
    if n == 0 {
        return Err(Error::InvalidInput("laplace_sharpness: no images".into()));
    }
    if c != 1 && c != 3 {
        return Err(Error::InvalidInput(format!(
            "laplace_sharpness: images must have 1 or 3 channels, got {c}"
        )));
    }
    if h < 3 || w < 3 {
        return Err(Error::InvalidInput(format!(
            "laplace_sharpness: images must be at least 3x3, got {h}x{w}"
        )));
    }
    let per_image = c * h * w;
    let chunk = (HOST_CHUNK_VALUES / per_image).max(1);
    let mut grey = vec![0f64; h * w];
    let mut total = 0f64;
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let block = images
            .narrow(0, start, len)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        for image in block.chunks_exact(per_image) {
            to_grey(image, c, &mut grey);
            total += laplace_variance(&grey, h, w);
        }
        start += len;
    }
    Ok(total / n as f64)
}

fn to_grey(image: &[f64], channels: usize, grey: &mut [f64]) {
    let plane = grey.len();
    if channels == 1 {
        grey.copy_from_slice(&image[..plane]);
    } else {
        let (r, rest) = image.split_at(plane);
        let (g, b) = rest.split_at(plane);
        for (i, out) in grey.iter_mut().enumerate() {
            *out = GREY_WEIGHTS[0] * r[i] + GREY_WEIGHTS[1] * g[i] + GREY_WEIGHTS[2] * b[i];
        }
    }
}

/// Population variance of the 'valid' Laplace response of one grey image.
fn laplace_variance(grey: &[f64], h: usize, w: usize) -> f64 {
    let response = |y: usize, x: usize| {
        grey[(y - 1) * w + x] + grey[(y + 1) * w + x] + grey[y * w + x - 1] + grey[y * w + x + 1]
            - 4.0 * grey[y * w + x]
    };
    let count = ((h - 2) * (w - 2)) as f64;
    let mut sum = 0f64;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            sum += response(y, x);
        }
    }
    let mean = sum / count;
    let mut sq = 0f64;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let d = response(y, x) - mean;
            sq += d * d;
        }
    }
    sq / count
}
