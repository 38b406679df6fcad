//! The fully connected layer `y = x W^T + b` with gradients laid out as the weights are.
//!
//! Written with candle ops (`x.matmul(&w.t())?.broadcast_add(&b)`), the weight's gradient
//! comes back from autograd as the transpose of `x^T . dy`: a strided view of shape
//! `(out, in)`. Everything after it then pays for the layout: the in-place Adam update
//! needs contiguous tensors (so candle's ten-op formula ran instead, over strided data),
//! and the gradient norm converted the view element by element. On the fully connected
//! dSprites nets (4096 -> 1200 -> 1200 and back, 14 million weights) that was a third of
//! the step. This op computes the same forward and returns `dW = dy^T . x`,
//! `dx = dy . W` and `db = sum_rows(dy)`, all contiguous. Its products are oriented so
//! that the gemm crate reads the weight matrix in place instead of packing a copy of it
//! on every call, and the weight gradient is not zeroed before gemm overwrites it (see
//! [`forward`] and `cpu::gemm_new`).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use crate::conv::{dispatch1, dispatch2, dispatch3};
use std::mem::MaybeUninit;

use crate::cpu::{Elem, gemm_new, par_build};
use crate::profile::{OpKind, Pass, count_madds, timed};
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
    // The kernels read contiguous data (a no-op for tensors that already are).
    let (x, weight, bias) = (x.contiguous()?, weight.contiguous()?, bias.contiguous()?);
    Ok(x.apply_op3(&weight, &bias, LinearOp)?)
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
        count_madds(OpKind::Linear, Pass::Forward, (n * d_in * d_out) as u64);
        let y = timed(OpKind::Linear, Pass::Forward, || {
            dispatch3(
                self.name(),
                (s1, l1),
                (s2, l2),
                (s3, l3),
                |x, w, b| forward(x, w, b, n, d_in),
                |x, w, b| forward(x, w, b, n, d_in),
            )
        })?;
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
        timed(OpKind::Linear, Pass::Backward, || {
            self.backward(x, weight, bias, grad)
        })
    }
}

impl LinearOp {
    /// The gradients asked for, each computed here (CPU ops run at once), so that the
    /// profile counters time them as one backward call.
    #[allow(clippy::type_complexity)]
    fn backward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // `x` and `weight` are the op's contiguous arguments (see `linear`).
        let grad = grad.contiguous()?;
        let (n, d_out) = grad.dims2()?;
        let d_in = x.dim(1)?;
        let products = u64::from(x.track_op()) + u64::from(weight.track_op());
        count_madds(
            OpKind::Linear,
            Pass::Backward,
            products * (n * d_in * d_out) as u64,
        );
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(weight, &Grad::Input)?)
        } else {
            None
        };
        let dw = if weight.track_op() {
            Some(grad.apply_op2_no_bwd(x, &Grad::Weight)?)
        } else {
            None
        };
        let db = if bias.track_op() {
            Some(grad.apply_op1_no_bwd(&BiasGrad)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// `x W^T + b`, row-major `(n, d_out)`.
///
/// The product is computed column-major (as `W x^T` stored row-major), then transposed
/// with the bias added. Asked for a row-major result directly, the gemm crate transposes
/// the whole problem and then packs the weight matrix (its left operand, with a row
/// stride of `d_in`) on every call: on the dSprites nets that copied 14 million weights
/// per forward pass. In this orientation the weight is the right operand with unit row
/// stride, which gemm reads in place at these batch sizes; only the small `x` is packed.
fn forward<T: Elem>(x: &[T], w: &[T], bias: &[T], n: usize, d_in: usize) -> Vec<T> {
    let d_out = bias.len();
    let yt = gemm_new(n, d_out, d_in, true, x, d_in, 1, w, 1, d_in);
    from_column_major(&yt, n, d_out, bias)
}

/// The row-major copy of the column-major `rows x cols` matrix `src`, plus `bias[j]` on
/// column `j`, built in parallel over blocks of rows (on the calling thread alone it
/// kept the other core idle: 5 MB at the width-4 MNIST decoder's first layer, batch
/// 100, 20 MB at full width).
fn from_column_major<T: Elem>(src: &[T], rows: usize, cols: usize, bias: &[T]) -> Vec<T> {
    // Blocks of up to 64 x 64 keep both sides of the transpose in cache; at least two
    // blocks of rows where there are two rows (batch 25 was one block of 64: one thread).
    const B: usize = 64;
    let block_rows = B.min(rows.div_ceil(2)).max(1);
    let fill = |block: usize, out: &mut [MaybeUninit<T>]| {
        let (i0, nr) = (block * block_rows, out.len() / cols.max(1));
        for j0 in (0..cols).step_by(B) {
            for i in 0..nr {
                let row = &mut out[i * cols..][..cols];
                for j in j0..(j0 + B).min(cols) {
                    row[j].write(src[j * rows + i0 + i] + bias[j]);
                }
            }
        }
    };
    // SAFETY: chunk `block` holds rows `block_rows * block ..` of the result, every
    // column of which the fill writes.
    unsafe { par_build(rows * cols, block_rows * cols, fill) }
}

/// The bias gradient `db = sum_rows(dy)` `(out)`: the rows added in order into a zeroed
/// row, the same operations and order as candle's `dy.sum(0)`, so the same bits. candle
/// reduces over a leading dimension element by element through strided indices: 2.7 %
/// of the fully connected dSprites step (`perf`), for 100 x 4096 gradients.
#[derive(Clone, Copy, Debug)]
struct BiasGrad;

fn column_sums<T: Elem>(g: &[T], d_out: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; d_out];
    for row in g.chunks_exact(d_out.max(1)) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}

impl CustomOp1 for BiasGrad {
    fn name(&self) -> &'static str {
        "wae-linear-bias-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, d_out) = l.shape().dims2()?;
        let out = dispatch1(
            self.name(),
            (s, l),
            |g| column_sums(g, d_out),
            |g| column_sums(g, d_out),
        )?;
        Ok((out, Shape::from(d_out)))
    }
}

/// A gradient of the layer from the output gradient `dy` `(n, out)` and a second operand,
/// row-major, written without zeroing the output first (one block per thread).
#[derive(Clone, Copy, Debug)]
enum Grad {
    /// `dx = dy . W` `(n, in)`; the second operand is `W` `(out, in)`.
    Input,
    /// `dW = dy^T . x` `(out, in)`; the second operand is `x` `(n, in)`.
    Weight,
}

impl Grad {
    fn run<T: Elem>(self, g: &[T], other: &[T], n: usize, d_out: usize, d_in: usize) -> Vec<T> {
        match self {
            Grad::Input => gemm_new(n, d_in, d_out, false, g, d_out, 1, other, d_in, 1),
            Grad::Weight => gemm_new(d_out, d_in, n, false, g, 1, d_out, other, d_in, 1),
        }
    }
}

impl CustomOp2 for Grad {
    fn name(&self) -> &'static str {
        match self {
            Grad::Input => "wae-linear-input-grad",
            Grad::Weight => "wae-linear-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, d_out) = l1.shape().dims2()?;
        let (_, d_in) = l2.shape().dims2()?;
        let out = dispatch2(
            self.name(),
            (s1, l1),
            (s2, l2),
            |g, o| self.run(g, o, n, d_out, d_in),
            |g, o| self.run(g, o, n, d_out, d_in),
        )?;
        let shape = match self {
            Grad::Input => (n, d_in),
            Grad::Weight => (d_out, d_in),
        };
        Ok((out, Shape::from(shape)))
    }
}
