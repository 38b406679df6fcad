//! Tensor ops the FID Inception needs with PyTorch's exact semantics, built
//! from candle primitives so that they run on every device.

use candle_core::{D, DType, Device, Tensor};

use crate::{Error, Result};

/// PyTorch's bilinear interpolation weights along one axis for
/// `align_corners = False` (`area_pixel_compute_source_index` and
/// `compute_indices_weights_linear`, computed in f32 as PyTorch does for f32
/// inputs). Returns the (`output`, `input`) matrix R, row-major, such that
/// `resized = R x` along that axis; every row sums to 1.
pub fn bilinear_matrix(input: usize, output: usize) -> Vec<f32> {
    let mut m = vec![0f32; output * input];
    let scale = input as f32 / output as f32;
    for i in 0..output {
        let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
        // `real` is non-negative and below `input`, so the cast is exact flooring.
        let i0 = (real.floor() as usize).min(input - 1);
        let i1 = if i0 + 1 < input { i0 + 1 } else { i0 };
        let lambda = (real - i0 as f32).clamp(0.0, 1.0);
        m[i * input + i0] += 1.0 - lambda;
        m[i * input + i1] += lambda;
    }
    m
}

/// Bilinear resize of `x` (N, C, H, W) to (N, C, `out_h`, `out_w`) with
/// PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`
/// semantics, as two matrix products with [`bilinear_matrix`] (works on every
/// device, upsampling and downsampling; no anti-aliasing, like PyTorch's
/// default).
pub fn resize_bilinear(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        return Err(Error::InvalidInput(format!(
            "resize_bilinear: cannot resize {h}x{w} to {out_h}x{out_w}"
        )));
    }
    if (h, w) == (out_h, out_w) {
        return Ok(x.clone());
    }
    let dev = x.device();
    let dtype = x.dtype();
    let rw_t = matrix_tensor(&bilinear_matrix(w, out_w), out_w, w, dev, dtype)?.t()?;
    let rh_t = matrix_tensor(&bilinear_matrix(h, out_h), out_h, h, dev, dtype)?.t()?;
    // Width pass: (N C H, W) x (W, out_w).
    let y = x
        .contiguous()?
        .reshape((n * c * h, w))?
        .matmul(&rw_t.contiguous()?)?;
    // Height pass: (N C out_w, H) x (H, out_h), then back to (N, C, out_h, out_w).
    let y = y
        .reshape((n * c, h, out_w))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n * c * out_w, h))?
        .matmul(&rh_t.contiguous()?)?;
    Ok(y.reshape((n, c, out_w, out_h))?
        .transpose(2, 3)?
        .contiguous()?)
}

fn matrix_tensor(
    values: &[f32],
    rows: usize,
    cols: usize,
    dev: &Device,
    dtype: DType,
) -> Result<Tensor> {
    Ok(Tensor::from_slice(values, (rows, cols), dev)?.to_dtype(dtype)?)
}

/// 3x3 average pool, stride 1, padding 1, `count_include_pad = False` (the
/// TensorFlow behaviour that pytorch-fid's FID blocks restore): each output
/// is the mean of the valid (non-padding) inputs of its window, so 4 values
/// at a corner, 6 on an edge, 9 inside. `x`: (N, C, H, W) -> same shape.
pub fn avg_pool_3x3_same_exclude_pad(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let padded = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    // candle's average divides by 9; rescale each position by 9 / (valid count).
    let mean_with_pad = padded.avg_pool2d_with_stride((3, 3), (1, 1))?;
    let span = |i: usize, len: usize| (i + 1).min(len - 1) + 1 - i.saturating_sub(1);
    let factor: Vec<f32> = (0..h)
        .flat_map(|y| (0..w).map(move |x| 9.0 / (span(y, h) * span(x, w)) as f32))
        .collect();
    let factor = Tensor::from_vec(factor, (1, 1, h, w), x.device())?.to_dtype(x.dtype())?;
    Ok(mean_with_pad.broadcast_mul(&factor)?)
}

/// 3x3 max pool, stride 1, padding 1 (padding never wins: PyTorch pads max
/// pools with -inf). `x`: (N, C, H, W) -> same shape.
pub fn max_pool_3x3_same(x: &Tensor) -> Result<Tensor> {
    let padded = pad_with_value(x, f32::NEG_INFINITY, 1)?;
    Ok(padded.max_pool2d_with_stride((3, 3), (1, 1))?)
}

/// Pads the last two dims of (N, C, H, W) by `pad` on each side with `value`.
fn pad_with_value(x: &Tensor, value: f32, pad: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let full = |shape: (usize, usize, usize, usize)| -> Result<Tensor> {
        Ok(Tensor::full(value, shape, x.device())?.to_dtype(x.dtype())?)
    };
    let side = full((n, c, h, pad))?;
    let rows = Tensor::cat(&[&side, x, &side], D::Minus1)?;
    let top = full((n, c, pad, w + 2 * pad))?;
    Ok(Tensor::cat(&[&top, &rows, &top], 2)?)
}
