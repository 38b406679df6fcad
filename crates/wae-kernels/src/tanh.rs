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

use candle_core::Tensor;

use crate::Result;
use crate::cpu::Elem;
use crate::pointwise::{Pointwise, apply};

/// `tanh(x)`, element-wise. On the CPU (f32, f64) one custom op with a one-pass
/// backward (see the module docs); elsewhere, or with `WAE_FORCE_FALLBACK=1`, candle's
/// `tanh`.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    if !crate::fast_path(x) {
        return Ok(x.tanh()?);
    }
    Ok(apply(Tanh, x)?)
}

/// `tanh`, with the gradient `g * (1 - y^2)` from the saved output.
#[derive(Clone, Copy)]
struct Tanh;

impl Pointwise for Tanh {
    const NAME: &'static str = "wae-tanh";
    const GRAD_NAME: &'static str = "wae-tanh-grad";
    const CHUNK: usize = 1 << 13;
    const GRAD_FROM_OUTPUT: bool = true;
    fn value<T: Elem>(x: T) -> T {
        x.tanh()
    }
    fn grad<T: Elem>(y: T, g: T) -> T {
        g * (T::ONE - y * y)
    }
}
