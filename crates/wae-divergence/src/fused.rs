//! Fused CPU implementation of the MMD estimate with an analytic backward.
//!
//! For each pair of samples (qq, pp, qp) the pairwise dot products are computed one row
//! block at a time with a single GEMM, and one pass over the block turns them into
//! distances, sums the kernel over all scales and (when a gradient is needed) stores the
//! kernel derivative `dMMD/dD_ij`, already scaled by the estimator's coefficient. The
//! backward pass is then one GEMM per pair:
//! `grad_x = r ⊙ x - A y` with `A_ij = 2 c k'(D_ij)` (cross term) or `4 c k'(D_ij)`
//! (within-sample term, `A` symmetric) and `r` the row sums of `A`.
//!
//! Nothing here allocates an `n x m` matrix unless a gradient is requested.

use std::sync::Mutex;

use candle_core::{
    CpuStorage, CustomOp2, DType, Device, Layout, Shape, Storage, Tensor, WithDType,
};
use rayon::prelude::*;

use crate::Result;
use crate::mmd::{Estimator, Kernel, coefficients};

/// Target number of dot products per GEMM block (4 MiB in f32).
const TARGET_BLOCK_ELEMENTS: usize = 1 << 20;
/// Columns handled together in the elementwise pass (fits in registers / L1, vectorises).
const CHUNK: usize = 64;

/// The float types the fused kernel supports.
trait Real: WithDType {
    fn exp(self) -> Self;
}
impl Real for f32 {
    fn exp(self) -> Self {
        f32::exp(self)
    }
}
impl Real for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
}

/// Differentiable fused MMD on the CPU (f32/f64). `qz`/`pz` already validated.
pub(crate) fn mmd(
    qz: &Tensor,
    pz: &Tensor,
    kernel: Kernel,
    consts: &[f64],
    estimator: Estimator,
) -> Result<Tensor> {
    let grad_q = qz.track_op();
    let grad_p = pz.track_op();
    let qz = qz.contiguous()?;
    let pz = pz.contiguous()?;
    let op = FusedMmd {
        kernel,
        consts: consts.to_vec(),
        estimator,
        grad_q,
        grad_p,
        block_rows: None,
        cache: Mutex::new(None),
    };
    if grad_q || grad_p {
        Ok(qz.apply_op2(&pz, op)?)
    } else {
        Ok(qz.apply_op2_no_bwd(&pz, &op)?)
    }
}

/// Forward-only fused MMD with at most `block_rows` rows per GEMM block.
pub(crate) fn mmd_value(
    qz: &Tensor,
    pz: &Tensor,
    kernel: Kernel,
    consts: &[f64],
    estimator: Estimator,
    block_rows: usize,
) -> Result<f64> {
    let qz = qz.contiguous()?;
    let pz = pz.contiguous()?;
    let op = FusedMmd {
        kernel,
        consts: consts.to_vec(),
        estimator,
        grad_q: false,
        grad_p: false,
        block_rows: Some(block_rows),
        cache: Mutex::new(None),
    };
    let value = qz.apply_op2_no_bwd(&pz, &op)?;
    Ok(value.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// What the backward pass needs, stored by the forward pass.
#[derive(Clone)]
struct GradCache {
    /// `(n, n)`: `4 c_qq k'(D)` for the codes' within-sample pairs (present if `grad_q`).
    a_qq: Option<Tensor>,
    /// `(m, m)`: `4 c_pp k'(D)` for the prior's within-sample pairs (present if `grad_p`).
    a_pp: Option<Tensor>,
    /// `(n, m)`: `2 c_qp k'(D)` for the cross pairs.
    a_qp: Tensor,
    /// `(n, 1)`: row sums of `a_qq` plus row sums of `a_qp` (present if `grad_q`).
    r_q: Option<Tensor>,
    /// `(m, 1)`: row sums of `a_pp` plus column sums of `a_qp` (present if `grad_p`).
    r_p: Option<Tensor>,
}

struct FusedMmd {
    kernel: Kernel,
    consts: Vec<f64>,
    estimator: Estimator,
    grad_q: bool,
    grad_p: bool,
    block_rows: Option<usize>,
    cache: Mutex<Option<GradCache>>,
}

/// Output of one pair (qq, pp or qp).
struct PairSums<T> {
    /// Sum of the kernel over the pair's entries (diagonal: see `diagonal_value`).
    total: f64,
    /// Scaled kernel derivatives, row-major `(rows, cols)`, if requested.
    weights: Option<Vec<T>>,
    /// Row sums of `weights` (f64), if requested.
    row_sums: Option<Vec<f64>>,
}

fn contiguous_slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused mmd: input is not contiguous"),
    }
}

/// Squared norms of the rows of a row-major `(rows, d)` matrix, accumulated in f64.
fn row_norms<T: Real>(x: &[T], d: usize) -> Vec<T> {
    x.chunks_exact(d)
        .map(|row| T::from_f64(row.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>()))
        .collect()
}

/// One row of the fused pass: distances from `x_norm`, `y_norms` and the dot products,
/// the kernel summed over the constants, and (if `GRAD`) `weight * dk/dD` into `out`.
/// Column `diagonal` (if any) is the pair `(i, i)` of a within-sample matrix: its kernel
/// value is `diagonal_value` and its derivative 0. Returns (kernel sum, sum of `out`).
#[allow(clippy::too_many_arguments)]
fn fused_row<T: Real, const GRAD: bool>(
    dots: &[T],
    x_norm: T,
    y_norms: &[T],
    kernel: Kernel,
    consts: &[T],
    diagonal: Option<usize>,
    diagonal_value: T,
    weight: T,
    out: &mut [T],
) -> (f64, f64) {
    let zero = T::from_f64(0.0);
    let one = T::from_f64(1.0);
    let two = T::from_f64(2.0);
    let mut dist = [zero; CHUNK];
    let mut k_acc = [zero; CHUNK];
    let mut g_acc = [zero; CHUNK];
    let (mut k_total, mut w_total) = (0.0f64, 0.0f64);
    let cols = dots.len();
    let mut j0 = 0;
    while j0 < cols {
        let len = CHUNK.min(cols - j0);
        let (dist, k_acc, g_acc) = (&mut dist[..len], &mut k_acc[..len], &mut g_acc[..len]);
        for ((dv, &yn), &dot) in dist
            .iter_mut()
            .zip(&y_norms[j0..j0 + len])
            .zip(&dots[j0..j0 + len])
        {
            let v = x_norm + yn - two * dot;
            *dv = if v > zero { v } else { zero };
        }
        k_acc.fill(zero);
        if GRAD {
            g_acc.fill(zero);
        }
        match kernel {
            Kernel::InverseMultiquadratic => {
                for &c in consts {
                    for ((&dv, ka), ga) in dist.iter().zip(k_acc.iter_mut()).zip(g_acc.iter_mut()) {
                        let r = one / (c + dv);
                        let k = c * r;
                        *ka += k;
                        if GRAD {
                            *ga -= k * r;
                        }
                    }
                }
            }
            Kernel::Rbf => {
                for &c in consts {
                    let inv = one / c;
                    for ((&dv, ka), ga) in dist.iter().zip(k_acc.iter_mut()).zip(g_acc.iter_mut()) {
                        let k = (zero - dv * inv).exp();
                        *ka += k;
                        if GRAD {
                            *ga -= k * inv;
                        }
                    }
                }
            }
        }
        if let Some(dj) = diagonal.filter(|dj| (j0..j0 + len).contains(dj)) {
            k_acc[dj - j0] = diagonal_value;
            g_acc[dj - j0] = zero;
        }
        k_total += k_acc.iter().map(|k| k.to_f64()).sum::<f64>();
        if GRAD {
            for (o, &g) in out[j0..j0 + len].iter_mut().zip(g_acc.iter()) {
                let w = weight * g;
                *o = w;
                w_total += w.to_f64();
            }
        }
        j0 += len;
    }
    (k_total, w_total)
}

/// Kernel sums (and optionally scaled derivatives) between `x` (rows, d) and `y` (cols, d).
/// `same_sample`: `x` and `y` are the same sample; the diagonal is handled exactly.
#[allow(clippy::too_many_arguments)]
fn pair_sums<T: Real>(
    x: &[T],
    y: &[T],
    d: usize,
    same_sample: bool,
    kernel: Kernel,
    consts: &[T],
    diagonal_value: T,
    weight: Option<T>,
    block_rows: usize,
) -> candle_core::Result<PairSums<T>> {
    let rows = x.len() / d;
    let cols = y.len() / d;
    let x_norms = row_norms(x, d);
    let y_norms = if same_sample {
        x_norms.clone()
    } else {
        row_norms(y, d)
    };
    let y_t = Tensor::from_slice(y, (cols, d), &Device::Cpu)?.t()?;
    let mut weights = weight.map(|_| vec![T::from_f64(0.0); rows * cols]);
    let mut row_sums = weight.map(|_| vec![0.0f64; rows]);
    let mut row_totals = vec![0.0f64; rows];
    let block_rows = block_rows.max(1);
    for r0 in (0..rows).step_by(block_rows) {
        let b = block_rows.min(rows - r0);
        let x_block = Tensor::from_slice(&x[r0 * d..(r0 + b) * d], (b, d), &Device::Cpu)?;
        let dots_tensor = x_block.matmul(&y_t)?;
        let (guard, layout) = dots_tensor.storage_and_layout();
        let dots: &[T] = match &*guard {
            Storage::Cpu(storage) => contiguous_slice(storage, layout)?,
            _ => candle_core::bail!("fused mmd: GEMM result is not on the CPU"),
        };
        let diagonal = |i: usize| same_sample.then_some(r0 + i);
        let totals = &mut row_totals[r0..r0 + b];
        match (weights.as_mut(), row_sums.as_mut(), weight) {
            (Some(weights), Some(row_sums), Some(w)) => {
                weights[r0 * cols..(r0 + b) * cols]
                    .par_chunks_mut(cols)
                    .zip(row_sums[r0..r0 + b].par_iter_mut())
                    .zip(totals.par_iter_mut())
                    .enumerate()
                    .for_each(|(i, ((out, row_sum), total))| {
                        let (k, s) = fused_row::<T, true>(
                            &dots[i * cols..(i + 1) * cols],
                            x_norms[r0 + i],
                            &y_norms,
                            kernel,
                            consts,
                            diagonal(i),
                            diagonal_value,
                            w,
                            out,
                        );
                        *total = k;
                        *row_sum = s;
                    });
            }
            _ => {
                totals.par_iter_mut().enumerate().for_each(|(i, total)| {
                    let (k, _) = fused_row::<T, false>(
                        &dots[i * cols..(i + 1) * cols],
                        x_norms[r0 + i],
                        &y_norms,
                        kernel,
                        consts,
                        diagonal(i),
                        diagonal_value,
                        T::from_f64(0.0),
                        &mut [],
                    );
                    *total = k;
                });
            }
        }
    }
    // Summed in a fixed order, so the result does not depend on thread scheduling.
    Ok(PairSums {
        total: row_totals.iter().sum(),
        weights,
        row_sums,
    })
}

impl FusedMmd {
    fn forward<T: Real>(&self, q: &[T], p: &[T], d: usize) -> candle_core::Result<T> {
        let (n, m) = (q.len() / d, p.len() / d);
        let (c_qq, c_pp, c_qp) = coefficients(n, m, self.estimator);
        let consts: Vec<T> = self.consts.iter().map(|&c| T::from_f64(c)).collect();
        let diagonal_value = match self.estimator {
            Estimator::UStatistic => T::from_f64(0.0),
            Estimator::VStatistic => T::from_f64(consts.len() as f64),
        };
        let rows_for = |cols: usize| {
            self.block_rows
                .unwrap_or_else(|| TARGET_BLOCK_ELEMENTS / cols.max(1))
                .max(1)
        };
        let want = |flag: bool, c: f64| flag.then(|| T::from_f64(c));
        let qq = pair_sums(
            q,
            q,
            d,
            true,
            self.kernel,
            &consts,
            diagonal_value,
            want(self.grad_q, 4.0 * c_qq),
            rows_for(n),
        )?;
        let pp = pair_sums(
            p,
            p,
            d,
            true,
            self.kernel,
            &consts,
            diagonal_value,
            want(self.grad_p, 4.0 * c_pp),
            rows_for(m),
        )?;
        let qp = pair_sums(
            q,
            p,
            d,
            false,
            self.kernel,
            &consts,
            diagonal_value,
            want(self.grad_q || self.grad_p, 2.0 * c_qp),
            rows_for(m),
        )?;
        let value = c_qq * qq.total + c_pp * pp.total + c_qp * qp.total;

        if let Some(a_qp) = qp.weights {
            let column = |v: Vec<f64>, len: usize| {
                Tensor::from_vec(
                    v.into_iter().map(T::from_f64).collect::<Vec<T>>(),
                    (len, 1),
                    &Device::Cpu,
                )
            };
            let r_q = match (&qq.row_sums, &qp.row_sums) {
                (Some(a), Some(b)) if self.grad_q => {
                    Some(column(a.iter().zip(b).map(|(x, y)| x + y).collect(), n)?)
                }
                _ => None,
            };
            let r_p = match &pp.row_sums {
                Some(a) if self.grad_p => {
                    let mut sums = a.clone();
                    for row in a_qp.chunks_exact(m) {
                        for (s, w) in sums.iter_mut().zip(row) {
                            *s += w.to_f64();
                        }
                    }
                    Some(column(sums, m)?)
                }
                _ => None,
            };
            let matrix = |w: Option<Vec<T>>, rows: usize, cols: usize| {
                w.map(|w| Tensor::from_vec(w, (rows, cols), &Device::Cpu))
                    .transpose()
            };
            let cache = GradCache {
                a_qq: matrix(qq.weights, n, n)?,
                a_pp: matrix(pp.weights, m, m)?,
                a_qp: Tensor::from_vec(a_qp, (n, m), &Device::Cpu)?,
                r_q,
                r_p,
            };
            match self.cache.lock() {
                Ok(mut slot) => *slot = Some(cache),
                Err(_) => candle_core::bail!("fused mmd: gradient cache lock poisoned"),
            }
        }
        Ok(T::from_f64(value))
    }
}

impl CustomOp2 for FusedMmd {
    fn name(&self) -> &'static str {
        "wae-divergence-fused-mmd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = match l1.dims() {
            [_, d] => *d,
            dims => candle_core::bail!("fused mmd: expected a matrix, got {dims:?}"),
        };
        let storage = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                let v =
                    self.forward::<f32>(contiguous_slice(s1, l1)?, contiguous_slice(s2, l2)?, d)?;
                CpuStorage::F32(vec![v])
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                let v =
                    self.forward::<f64>(contiguous_slice(s1, l1)?, contiguous_slice(s2, l2)?, d)?;
                CpuStorage::F64(vec![v])
            }
            _ => candle_core::bail!("fused mmd: needs two f32 or two f64 tensors"),
        };
        Ok((storage, Shape::from(())))
    }

    fn bwd(
        &self,
        q: &Tensor,
        p: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let cache = match self.cache.lock() {
            Ok(slot) => slot.clone(),
            Err(_) => candle_core::bail!("fused mmd: gradient cache lock poisoned"),
        };
        let Some(cache) = cache else {
            candle_core::bail!(
                "fused mmd: backward called without a forward pass that stored gradients"
            )
        };
        let (q, p) = (q.detach(), p.detach());
        let grad_q = match (&cache.a_qq, &cache.r_q) {
            (Some(a_qq), Some(r_q)) => {
                let g = ((r_q.broadcast_mul(&q)? - a_qq.matmul(&q)?)? - cache.a_qp.matmul(&p)?)?;
                Some(g.broadcast_mul(grad_res)?)
            }
            _ => None,
        };
        let grad_p = match (&cache.a_pp, &cache.r_p) {
            (Some(a_pp), Some(r_p)) => {
                let g =
                    ((r_p.broadcast_mul(&p)? - a_pp.matmul(&p)?)? - cache.a_qp.t()?.matmul(&q)?)?;
                Some(g.broadcast_mul(grad_res)?)
            }
            _ => None,
        };
        Ok((grad_q, grad_p))
    }
}
