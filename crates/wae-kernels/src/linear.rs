//! The fully connected layer `y = x W^T + b` with gradients laid out as the weights are.
//!
//! Written with candle ops (`x.matmul(&w.t())?.broadcast_add(&b)`), the weight's gradient
//! comes back from autograd as the transpose of `x^T . dy`: a strided view of shape
//! `(out, in)`. Everything after it then pays for the layout: the in-place Adam update
//! needs contiguous tensors (so candle's ten-op formula ran instead, over strided data),
//! and the gradient norm converted the view element by element. On the fully connected
//! dSprites nets (4096 -> 1200 -> 1200 and back, 14 million weights) that was a third of
//! the step. This op computes the same forward (the same GEMM call candle makes, then the
//! bias) and returns `dW = dy^T . x`, `dx = dy . W` and `db = sum_rows(dy)`, all
//! contiguous, from the same products.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use crate::{Error, Result};

/// `y = x W^T + b` for `x` `(N, in)`, `weight` `(out, in)` and `bias` `(out)`: PyTorch's
/// `nn.Linear` layout.
///
/// On the CPU (f32, f64) this is one custom op whose backward returns contiguous
/// gradients (see the module docs); elsewhere, or with `WAE_FORCE_FALLBACK=1`, the same
/// formula with candle's ops. Forward values are the same bits either way; gradients
/// agree to rounding.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (n, d_in) = x.dims2()?;
    let (d_out, w_in) = weight.dims2()?;
    if w_in != d_in || bias.dims() != [d_out] {
        return Err(Error::Shape(format!(
            "linear: input {:?}, weight {:?} (out, in) and bias {:?} (out) do not fit",
            x.dims(),
            weight.dims(),
            bias.dims()
        )));
    }
    let fast = crate::fast_path(x) && weight.dtype() == x.dtype() && bias.dtype() == x.dtype();
    if !fast || n == 0 {
        return Ok(x.matmul(&weight.t()?)?.broadcast_add(bias)?);
    }
    Ok(x.apply_op3(weight, bias, LinearOp)?)
}

/// The custom op behind [`linear`].
#[derive(Clone, Copy, Debug)]
struct LinearOp;

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "wae-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, d_in) = l1.shape().dims2()?;
        let d_out = l2.shape().dims()[0];
        // The call `x.matmul(&w.t())` makes: w viewed as (in, out).
        let wt = l2.transpose(0, 1)?;
        let y = s1.matmul(s2, (1, n, d_out, d_in), l1, &wt)?;
        let y = match (y, s3) {
            (CpuStorage::F32(mut y), CpuStorage::F32(b)) => {
                add_rows(&mut y, bias_slice(b, l3)?);
                CpuStorage::F32(y)
            }
            (CpuStorage::F64(mut y), CpuStorage::F64(b)) => {
                add_rows(&mut y, bias_slice(b, l3)?);
                CpuStorage::F64(y)
            }
            (y, b) => candle_core::bail!(
                "wae-linear: mixed dtypes {:?} and {:?}",
                y.dtype(),
                b.dtype()
            ),
        };
        Ok((y, Shape::from((n, d_out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = if x.track_op() {
            Some(grad.matmul(weight)?)
        } else {
            None
        };
        let dw = if weight.track_op() {
            Some(grad.t()?.matmul(x)?)
        } else {
            None
        };
        let db = if bias.track_op() {
            Some(grad.sum(0)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// The bias's values as one contiguous slice.
fn bias_slice<'a, T>(b: &'a [T], layout: &Layout) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&b[start..end]),
        None => candle_core::bail!("wae-linear: the bias must be contiguous"),
    }
}

/// `y[i, j] += b[j]` for every row `i` of `y` (row length `b.len()`).
fn add_rows<T: Copy + std::ops::Add<Output = T>>(y: &mut [T], b: &[T]) {
    for row in y.chunks_exact_mut(b.len()) {
        for (v, &bj) in row.iter_mut().zip(b) {
            *v = *v + bj;
        }
    }
}
