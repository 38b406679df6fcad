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

use candle_core::Tensor;

use crate::Result;
use crate::cpu::Elem;
use crate::pointwise::{Pointwise, apply};

/// `max(x, 0)`, element-wise. On the CPU (f32, f64) one custom op with a one-pass
/// backward (see the module docs); elsewhere, or with `WAE_FORCE_FALLBACK=1`, candle's
/// `relu`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !crate::fast_path(x) {
        return Ok(x.relu()?);
    }
    Ok(apply(Relu, x)?)
}

/// `max(x, 0)`, with the gradient `g * [x >= 0]` from the saved input (the mask as a
/// float, as candle's `ge`, converted, then multiplied).
#[derive(Clone, Copy)]
struct Relu;

impl Pointwise for Relu {
    const NAME: &'static str = "wae-relu";
    const GRAD_NAME: &'static str = "wae-relu-grad";
    const CHUNK: usize = 1 << 14;
    const GRAD_FROM_OUTPUT: bool = false;
    fn value<T: Elem>(x: T) -> T {
        x.relu()
    }
    fn grad<T: Elem>(x: T, g: T) -> T {
        g * if x >= T::ZERO { T::ONE } else { T::ZERO }
    }
}
