//! An element-wise op with a one-pass backward, run in parallel chunks on the CPU: the
//! machinery [`crate::tanh()`] and [`crate::relu()`] share. Each names its value and its
//! gradient from one saved tensor (the op's input or its output) and the upstream
//! gradient; this module turns that into a candle custom op and its gradient op.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::{dispatch1, dispatch2};
use crate::cpu::Elem;

/// One element-wise function and its derivative.
pub(crate) trait Pointwise: Copy + Send + Sync + 'static {
    /// Names of the op and of its gradient op (in candle's errors).
    const NAME: &'static str;
    const GRAD_NAME: &'static str;
    /// Elements per parallel task.
    const CHUNK: usize;
    /// Whether the gradient reads the op's output (else its input).
    const GRAD_FROM_OUTPUT: bool;
    /// The value at `x`.
    fn value<T: Elem>(x: T) -> T;
    /// The input gradient from the saved element (output or input, see
    /// [`Self::GRAD_FROM_OUTPUT`]) and the upstream gradient `g`.
    fn grad<T: Elem>(saved: T, g: T) -> T;
}

/// `f(x)` through the custom op (the caller checks that the CPU fast path applies).
pub(crate) fn apply<P: Pointwise>(f: P, x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Op(f))
}

fn forward<P: Pointwise, T: Elem>(x: &[T]) -> Vec<T> {
    x.par_iter()
        .with_min_len(P::CHUNK)
        .map(|&v| P::value(v))
        .collect()
}

fn backward<P: Pointwise, T: Elem>(saved: &[T], g: &[T]) -> Vec<T> {
    saved
        .par_iter()
        .zip(g)
        .with_min_len(P::CHUNK)
        .map(|(&s, &g)| P::grad(s, g))
        .collect()
}

/// The op behind [`apply`].
struct Op<P>(P);

impl<P: Pointwise> CustomOp1 for Op<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = dispatch1(P::NAME, (s, l), forward::<P, f32>, forward::<P, f64>)?;
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let saved = if P::GRAD_FROM_OUTPUT { y } else { x };
        let (saved, grad) = (saved.contiguous()?, grad.contiguous()?);
        Ok(Some(saved.apply_op2_no_bwd(&grad, &GradOp(self.0))?))
    }
}

/// `(saved, g) -> grad(saved, g)`, element by element.
struct GradOp<P>(P);

impl<P: Pointwise> CustomOp2 for GradOp<P> {
    fn name(&self) -> &'static str {
        P::GRAD_NAME
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
                "{}: shapes {:?} and {:?}",
                P::GRAD_NAME,
                l1.shape(),
                l2.shape()
            );
        }
        let dx = dispatch2(
            P::GRAD_NAME,
            (s1, l1),
            (s2, l2),
            backward::<P, f32>,
            backward::<P, f64>,
        )?;
        Ok((dx, l1.shape().clone()))
    }
}
