//! The Adam update of one parameter tensor, in place, in one pass over memory.
//!
//! Written with candle ops, one update is about ten elementwise ops, each allocating a
//! new tensor of the parameter's size (for the MNIST networks at width divisor 4 that
//! was 6-7 ms of a 0.33 s training step, single-threaded). Here the two moments and the
//! parameter are updated in place, in parallel, with the same floating-point operations
//! in the same order as the candle-op formula of `wae_train::Adam`, so both give
//! bit-identical results (a test checks this).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, InplaceOp1, InplaceOp2, Layout, Tensor, WithDType};
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
    if param.elem_count() == 0 {
        return Ok(true);
    }
    // The update holds a write lock on each of the three and a read lock on the gradient
    // at once, so all four must have storages of their own (a shared one would deadlock).
    let addresses = [
        storage_address(param)?,
        storage_address(grad)?,
        storage_address(first_moment)?,
        storage_address(second_moment)?,
    ];
    for (i, a) in addresses.iter().enumerate() {
        if addresses[..i].contains(a) {
            return Err(Error::Shape(
                "adam_update: the parameter, its gradient and the two moments must not share \
                 storage"
                    .into(),
            ));
        }
    }
    first_moment.inplace_op1(&FirstMoment {
        second_moment,
        param,
        grad,
        step: *step,
    })?;
    Ok(true)
}

/// A mutable view of one moment's values, handed from one nested in-place op to the next.
enum Values<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
}

impl<'a> Values<'a> {
    fn of(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<Self> {
        Ok(match s.dtype() {
            DType::F32 => Values::F32(slice_mut::<f32>(s, l)?),
            DType::F64 => Values::F64(slice_mut::<f64>(s, l)?),
            dt => candle_core::bail!("adam_update: unsupported dtype {dt:?}"),
        })
    }
}

// One pass over memory instead of three. candle lends an in-place op a mutable storage for
// its destination only, so the update nests three of them: the first moment's op runs the
// second moment's, which runs the parameter's (with the gradient as its source), and the
// innermost one updates all three in one loop.

/// Outermost: holds the first moment's values.
struct FirstMoment<'a> {
    second_moment: &'a Tensor,
    param: &'a Tensor,
    grad: &'a Tensor,
    step: AdamStep,
}

impl InplaceOp1 for FirstMoment<'_> {
    fn name(&self) -> &'static str {
        "wae-adam-first-moment"
    }

    fn cpu_fwd(&self, m: &mut CpuStorage, ml: &Layout) -> candle_core::Result<()> {
        let first = std::cell::RefCell::new(Some(Values::of(m, ml)?));
        self.second_moment.inplace_op1(&SecondMoment {
            first: &first,
            param: self.param,
            grad: self.grad,
            step: self.step,
        })
    }
}

/// Middle: holds the second moment's values.
struct SecondMoment<'a, 'b> {
    first: &'b std::cell::RefCell<Option<Values<'a>>>,
    param: &'b Tensor,
    grad: &'b Tensor,
    step: AdamStep,
}

impl InplaceOp1 for SecondMoment<'_, '_> {
    fn name(&self) -> &'static str {
        "wae-adam-second-moment"
    }

    fn cpu_fwd(&self, v: &mut CpuStorage, vl: &Layout) -> candle_core::Result<()> {
        let second = std::cell::RefCell::new(Some(Values::of(v, vl)?));
        self.param.inplace_op2(
            self.grad,
            &Update {
                first: self.first,
                second: &second,
                step: self.step,
            },
        )
    }
}

/// Innermost: the parameter's values and the gradient; the loop itself.
struct Update<'a, 'b, 'c> {
    first: &'b std::cell::RefCell<Option<Values<'a>>>,
    second: &'c std::cell::RefCell<Option<Values<'b>>>,
    step: AdamStep,
}

impl InplaceOp2 for Update<'_, '_, '_> {
    fn name(&self) -> &'static str {
        "wae-adam-update"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let (Some(m), Some(v)) = (
            self.first.borrow_mut().take(),
            self.second.borrow_mut().take(),
        ) else {
            candle_core::bail!("adam_update: the moments were already used");
        };
        match (m, v) {
            (Values::F32(m), Values::F32(v)) => {
                fused::<f32>(slice_mut(p, pl)?, m, v, contiguous((g, gl))?, &self.step)
            }
            (Values::F64(m), Values::F64(v)) => {
                fused::<f64>(slice_mut(p, pl)?, m, v, contiguous((g, gl))?, &self.step)
            }
            _ => candle_core::bail!("adam_update: the moments differ in dtype"),
        }
    }
}

/// The Adam update element by element, in one pass: the same operations in the same order
/// as `wae_train::Adam`'s candle-op formula (`affine` for every `x * f` and `x + f`), so
/// the same bits:
/// `m <- m * b1 + g * (1 - b1)`, `v <- v * b2 + g^2 * (1 - b2)`,
/// `theta <- theta - ((m * (1 / bc1)) / (sqrt(v * (1 / bc2)) * 1 + eps)) * lr`.
fn fused<T: Elem + WithDType>(
    p: &mut [T],
    m: &mut [T],
    v: &mut [T],
    g: &[T],
    step: &AdamStep,
) -> candle_core::Result<()> {
    let n = p.len();
    if m.len() != n || v.len() != n || g.len() != n {
        candle_core::bail!("adam_update: the four tensors differ in size");
    }
    let c = FusedConsts {
        decay1: T::of_f64(step.beta1),
        keep1: T::of_f64(1.0 - step.beta1),
        decay2: T::of_f64(step.beta2),
        keep2: T::of_f64(1.0 - step.beta2),
        inv_bc1: T::of_f64(1.0 / step.bias_correction1),
        inv_bc2: T::of_f64(1.0 / step.bias_correction2),
        eps: T::of_f64(step.eps),
        lr: T::of_f64(step.lr),
    };
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)))
        .for_each(|((p, m), (v, g))| fused_chunk(p, m, v, g, c));
    Ok(())
}

#[derive(Clone, Copy)]
struct FusedConsts<T> {
    decay1: T,
    keep1: T,
    decay2: T,
    keep2: T,
    inv_bc1: T,
    inv_bc2: T,
    eps: T,
    lr: T,
}

multiversion!(fn fused_chunk<T: Elem>(p: &mut [T], m: &mut [T], v: &mut [T], g: &[T], c: FusedConsts<T>) = fused_chunk_body;);

#[inline(always)]
fn fused_chunk_body<T: Elem>(p: &mut [T], m: &mut [T], v: &mut [T], g: &[T], c: FusedConsts<T>) {
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        *m = (*m * c.decay1 + T::ZERO) + (g * c.keep1 + T::ZERO);
        *v = (*v * c.decay2 + T::ZERO) + ((g * g) * c.keep2 + T::ZERO);
        let m_hat = *m * c.inv_bc1 + T::ZERO;
        let v_hat = *v * c.inv_bc2 + T::ZERO;
        let denom = v_hat.sqrt() * T::ONE + c.eps;
        let update = (m_hat / denom) * c.lr + T::ZERO;
        *p = *p - update;
    }
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

/// `sum(t^2)` in f64: the square of a gradient's norm.
///
/// On the CPU (f32, f64, contiguous) one parallel pass, each value widened to f64 before
/// it is squared, chunk sums added in a fixed order (the result does not depend on the
/// number of threads); otherwise candle's `to_dtype(F64)?.sqr()?.sum_all()`, which
/// allocates two f64 copies of the tensor (for the 14 million weights of the fully
/// connected dSprites nets, 230 MB written per step).
pub fn sum_of_squares(t: &Tensor) -> Result<f64> {
    if !(crate::fast_path(t) && t.is_contiguous()) {
        return Ok(t
            .to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?);
    }
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        unreachable!("checked: a CPU tensor");
    };
    Ok(match cpu {
        CpuStorage::F32(_) => squares::<f32>(contiguous((cpu, layout))?),
        CpuStorage::F64(_) => squares::<f64>(contiguous((cpu, layout))?),
        _ => unreachable!("checked: f32 or f64"),
    })
}

fn squares<T: Elem + WithDType>(v: &[T]) -> f64 {
    let partial: Vec<f64> = v.par_chunks(CHUNK).map(chunk_squares).collect();
    partial.iter().sum()
}

multiversion!(fn chunk_squares<T: Elem>(v: &[T]) -> f64 = chunk_squares_body;);

#[inline(always)]
fn chunk_squares_body<T: Elem>(v: &[T]) -> f64 {
    // Eight running sums so the loop vectorises; added in a fixed order at the end.
    let mut acc = [0f64; 8];
    let mut blocks = v.chunks_exact(8);
    for block in &mut blocks {
        for (a, &x) in acc.iter_mut().zip(block) {
            let x = x.as_f64();
            *a += x * x;
        }
    }
    let tail: f64 = blocks
        .remainder()
        .iter()
        .map(|&x| x.as_f64() * x.as_f64())
        .sum();
    acc.iter().sum::<f64>() + tail
}
