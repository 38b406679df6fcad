//! `tanh` as one op forward and one backward on the CPU.
//!
//! candle computes `tanh` on the calling thread (the binaries turn candle's own thread
//! pool off, see [`crate::use_rayon_pool_only`]) and its gradient as four more ops
//! (`sqr`, `- 1`, `*`, `-`), each allocating a tensor. For the three tanh layers of the
//! fully connected dSprites decoder (batch 100 x 1200 units) that was about 1 ms forward
//! and 0.7 ms backward per layer and step. Here the forward pass runs in parallel chunks
//! and the backward pass, `g * (1 - y^2)` from the saved output, is one parallel loop.
//! Values are the same bits as candle's `tanh` (the same `tanh` of the standard
//! library, element by element), and so are the gradients (`0 - g * (y^2 - 1)` in
//! candle, the same number).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Result;
use crate::conv::{dispatch1, dispatch2};
use crate::cpu::Elem;

/// `tanh(x)`, element-wise. On the CPU (f32, f64) one custom op with a one-pass
/// backward (see the module docs); elsewhere, or with `WAE_FORCE_FALLBACK=1`, candle's
/// `tanh`.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    if !crate::fast_path(x) {
        return Ok(x.tanh()?);
    }
    Ok(x.contiguous()?.apply_op1(TanhOp)?)
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 13;

fn forward<T: Elem>(x: &[T]) -> Vec<T> {
    x.par_iter()
        .with_min_len(CHUNK)
        .map(|&v| v.tanh())
        .collect()
}

/// `g * (1 - y^2)`.
fn backward<T: Elem>(y: &[T], g: &[T]) -> Vec<T> {
    y.par_iter()
        .zip(g)
        .with_min_len(CHUNK)
        .map(|(&y, &g)| g * (T::ONE - y * y))
        .collect()
}

/// The op behind [`tanh`].
struct TanhOp;

impl CustomOp1 for TanhOp {
    fn name(&self) -> &'static str {
        "wae-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = dispatch1(self.name(), (s, l), forward, forward)?;
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (y, grad) = (y.contiguous()?, grad.contiguous()?);
        Ok(Some(y.apply_op2_no_bwd(&grad, &TanhGradOp)?))
    }
}

/// `(y, g) -> g * (1 - y^2)`.
struct TanhGradOp;

impl CustomOp2 for TanhGradOp {
    fn name(&self) -> &'static str {
        "wae-tanh-grad"
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
                "wae-tanh-grad: shapes {:?} and {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let dx = dispatch2(self.name(), (s1, l1), (s2, l2), backward, backward)?;
        Ok((dx, l1.shape().clone()))
    }
}
