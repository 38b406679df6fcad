//! `relu` as one parallel op forward and one backward on the CPU.
//!
//! candle computes `relu` on the calling thread (the binaries turn candle's own thread
//! pool off, see [`crate::use_rayon_pool_only`]) and its gradient as four more passes,
//! each allocating a tensor: `x >= 0` (a `u8` mask, element by element), its conversion
//! to floats, the product with the upstream gradient and the sum into the gradient
//! store. The ReLU after the MNIST decoder's first (fully connected) layer, batch 100 x
//! 12,544 at width 4 (50,176 at full width), ran while the other core waited. Here the
//! forward pass runs in parallel chunks and the backward pass, `g * [x >= 0]` from the
//! saved input, is one parallel loop. The values are candle's bits (the same
//! `max(x, 0)` element by element) and so are the gradients (`g * 1` or `g * 0`, as
//! candle multiplies them).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Result;
use crate::conv::{dispatch1, dispatch2};
use crate::cpu::Elem;

/// `max(x, 0)`, element-wise. On the CPU (f32, f64) one custom op with a one-pass
/// backward (see the module docs); elsewhere, or with `WAE_FORCE_FALLBACK=1`, candle's
/// `relu`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !crate::fast_path(x) {
        return Ok(x.relu()?);
    }
    Ok(x.contiguous()?.apply_op1(ReluOp)?)
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

fn forward<T: Elem>(x: &[T]) -> Vec<T> {
    x.par_iter()
        .with_min_len(CHUNK)
        .map(|&v| v.relu())
        .collect()
}

/// `g * [x >= 0]`, with the mask as a float (candle's `ge`, converted, then multiplied).
fn backward<T: Elem>(x: &[T], g: &[T]) -> Vec<T> {
    x.par_iter()
        .zip(g)
        .with_min_len(CHUNK)
        .map(|(&x, &g)| g * if x >= T::ZERO { T::ONE } else { T::ZERO })
        .collect()
}

/// The op behind [`relu`].
struct ReluOp;

impl CustomOp1 for ReluOp {
    fn name(&self) -> &'static str {
        "wae-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = dispatch1(self.name(), (s, l), forward, forward)?;
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (x, grad) = (x.contiguous()?, grad.contiguous()?);
        Ok(Some(x.apply_op2_no_bwd(&grad, &ReluGradOp)?))
    }
}

/// `(x, g) -> g * [x >= 0]`.
struct ReluGradOp;

impl CustomOp2 for ReluGradOp {
    fn name(&self) -> &'static str {
        "wae-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "wae-relu-grad: shapes {:?} and {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let dx = dispatch2(self.name(), (s1, l1), (s2, l2), backward, backward)?;
        Ok((dx, l1.shape().clone()))
    }
}
