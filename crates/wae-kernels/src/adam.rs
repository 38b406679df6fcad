//! The Adam update of one parameter tensor, in place, in three passes over memory.
//!
//! Written with candle ops, one update is about ten elementwise ops, each allocating a
//! new tensor of the parameter's size (for the MNIST networks at width divisor 4 that
//! was 6-7 ms of a 0.33 s training step, single-threaded). Here the two moments and the
//! parameter are updated in place, in parallel, with the same floating-point operations
//! in the same order as the candle-op formula of `wae_train::Adam`, so both give
//! bit-identical results (a test checks this).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Tensor, WithDType};
use rayon::prelude::*;

use crate::conv::contiguous;
use crate::cpu::Elem;
use crate::simd::multiversion;
use crate::{Error, Result};

/// The scalars of one Adam step (Kingma & Ba 2015, as PyTorch's `Adam` without weight
/// decay):
///
/// ```text
/// m <- beta1 * m + (1 - beta1) * g
/// v <- beta2 * v + (1 - beta2) * g^2
/// theta <- theta - lr * (m / bias_correction1) / (sqrt(v / bias_correction2) + eps)
/// ```
///
/// with `bias_correction_i = 1 - beta_i^t` at step `t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Decay rate of the first moment.
    pub beta1: f64,
    /// Decay rate of the second moment.
    pub beta2: f64,
    /// Learning rate of this step.
    pub lr: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// `1 - beta1^t`.
    pub bias_correction1: f64,
    /// `1 - beta2^t`.
    pub bias_correction2: f64,
}

/// Applies one Adam step in place: `first_moment`, `second_moment` and `param` are
/// overwritten with their new values; `grad` is read.
///
/// All four must be contiguous CPU tensors of the same shape and of one dtype (f32 or
/// f64); otherwise (another device or dtype, a strided view) this returns `Ok(false)`,
/// having changed nothing, and the caller computes the update with candle ops. The three
/// that are written must not share storage with each other or with `grad` (an error). The arithmetic is that of the candle-op formula, operation for operation, so
/// the results are the same bits.
pub fn adam_update(
    param: &Tensor,
    grad: &Tensor,
    first_moment: &Tensor,
    second_moment: &Tensor,
    step: &AdamStep,
) -> Result<bool> {
    let all = [param, grad, first_moment, second_moment];
    let fits = all.iter().all(|t| {
        t.device().is_cpu()
            && t.is_contiguous()
            && t.dtype() == param.dtype()
            && t.dims() == param.dims()
    }) && matches!(param.dtype(), DType::F32 | DType::F64);
    if !fits || crate::force_fallback() {
        return Ok(false);
    }
    // candle refuses an in-place op whose source shares the destination's storage; the
    // two moments are only ever written, so check those two here.
    if storage_address(first_moment)? == storage_address(second_moment)? {
        return Err(Error::Shape(
            "adam_update: the two moments must not share storage".into(),
        ));
    }
    first_moment.inplace_op2(grad, &MomentUpdate::first(step))?;
    second_moment.inplace_op2(grad, &MomentUpdate::second(step))?;
    param.inplace_op3(first_moment, second_moment, &ParamUpdate(*step))?;
    Ok(true)
}

/// The address of a CPU tensor's storage buffer (tensors that share storage share it).
fn storage_address(t: &Tensor) -> Result<usize> {
    let (storage, _) = t.storage_and_layout();
    Ok(match &*storage {
        candle_core::Storage::Cpu(CpuStorage::F32(v)) => v.as_ptr() as usize,
        candle_core::Storage::Cpu(CpuStorage::F64(v)) => v.as_ptr() as usize,
        _ => {
            return Err(Error::Shape(
                "adam_update: expected f32 or f64 on the CPU".into(),
            ));
        }
    })
}

/// `m <- m * decay + (g or g^2) * (1 - decay)`.
#[derive(Clone, Copy, Debug)]
struct MomentUpdate {
    decay: f64,
    squared: bool,
}

impl MomentUpdate {
    fn first(step: &AdamStep) -> Self {
        Self {
            decay: step.beta1,
            squared: false,
        }
    }
    fn second(step: &AdamStep) -> Self {
        Self {
            decay: step.beta2,
            squared: true,
        }
    }
}

/// Elements per parallel chunk: large enough that the task overhead is negligible.
const CHUNK: usize = 1 << 15;

fn slice_mut<'a, T: Elem>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [T]> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("adam_update: expected a contiguous tensor");
    };
    match T::cpu_storage_as_mut_slice(s) {
        Some(data) => Ok(&mut data[start..end]),
        None => candle_core::bail!("adam_update: dtype mismatch"),
    }
}

impl MomentUpdate {
    fn run<T: Elem + WithDType>(
        &self,
        m: &mut CpuStorage,
        ml: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let m = slice_mut::<T>(m, ml)?;
        let g = contiguous::<T>((g, gl))?;
        // As candle's `affine(x, mul, 0)`: x * T(mul) + T(0).
        let decay = T::of_f64(self.decay);
        let keep = T::of_f64(1.0 - self.decay);
        let squared = self.squared;
        m.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(m, g)| moment_chunk(m, g, decay, keep, squared));
        Ok(())
    }
}

multiversion!(fn moment_chunk<T: Elem>(m: &mut [T], g: &[T], decay: T, keep: T, squared: bool) = moment_chunk_body;);

#[inline(always)]
fn moment_chunk_body<T: Elem>(m: &mut [T], g: &[T], decay: T, keep: T, squared: bool) {
    if squared {
        for (m, &g) in m.iter_mut().zip(g) {
            *m = (*m * decay + T::ZERO) + ((g * g) * keep + T::ZERO);
        }
    } else {
        for (m, &g) in m.iter_mut().zip(g) {
            *m = (*m * decay + T::ZERO) + (g * keep + T::ZERO);
        }
    }
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "wae-adam-moment"
    }

    fn cpu_fwd(
        &self,
        m: &mut CpuStorage,
        ml: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        match m.dtype() {
            DType::F32 => self.run::<f32>(m, ml, g, gl),
            DType::F64 => self.run::<f64>(m, ml, g, gl),
            dt => candle_core::bail!("adam_update: unsupported dtype {dt:?}"),
        }
    }
}

/// `theta <- theta - ((m * (1 / bc1)) / (sqrt(v * (1 / bc2)) * 1 + eps)) * lr`.
#[derive(Clone, Copy, Debug)]
struct ParamUpdate(AdamStep);

impl ParamUpdate {
    #[allow(clippy::too_many_arguments)]
    fn run<T: Elem + WithDType>(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<()> {
        let p = slice_mut::<T>(p, pl)?;
        let (m, v) = (contiguous::<T>((m, ml))?, contiguous::<T>((v, vl))?);
        let s = &self.0;
        // candle's `x / f` is `affine(x, 1 / f, 0)`, `x + f` is `affine(x, 1, f)`.
        let c = ParamConsts {
            inv_bc1: T::of_f64(1.0 / s.bias_correction1),
            inv_bc2: T::of_f64(1.0 / s.bias_correction2),
            eps: T::of_f64(s.eps),
            lr: T::of_f64(s.lr),
        };
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| param_chunk(p, m, v, c));
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct ParamConsts<T> {
    inv_bc1: T,
    inv_bc2: T,
    eps: T,
    lr: T,
}

multiversion!(fn param_chunk<T: Elem>(p: &mut [T], m: &[T], v: &[T], c: ParamConsts<T>) = param_chunk_body;);

#[inline(always)]
fn param_chunk_body<T: Elem>(p: &mut [T], m: &[T], v: &[T], c: ParamConsts<T>) {
    for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
        let m_hat = m * c.inv_bc1 + T::ZERO;
        let v_hat = v * c.inv_bc2 + T::ZERO;
        let denom = v_hat.sqrt() * T::ONE + c.eps;
        let update = (m_hat / denom) * c.lr + T::ZERO;
        *p = *p - update;
    }
}

impl InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "wae-adam-param"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<()> {
        match p.dtype() {
            DType::F32 => self.run::<f32>(p, pl, m, ml, v, vl),
            DType::F64 => self.run::<f64>(p, pl, m, ml, v, vl),
            dt => candle_core::bail!("adam_update: unsupported dtype {dt:?}"),
        }
    }
}
