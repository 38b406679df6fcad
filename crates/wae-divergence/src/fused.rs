//! Fused CPU implementation of the MMD estimate with an analytic gradient.
//!
//! For each pair of samples (qq, pp, qp) the pairwise dot products are computed one row
//! block at a time with a single GEMM, and one vectorised pass over the block turns them
//! into distances and sums the kernel over all scales. When the inputs track gradients the
//! same pass also writes `W_ij = w k'(D_ij)` for the block (`w` = the estimator's coefficient
//! times 2 for the cross term, times 4 for a within-sample term), and the block's gradient
//! contribution `grad_x = r ⊙ x - W y` (`r` = row sums of `W`) is one more small GEMM, so the
//! gradient is complete when the forward pass ends and the backward pass only scales it.
//! Without gradients, within-sample matrices only visit their upper triangle.
//!
//! Memory stays bounded: nothing larger than one `block x m` matrix exists at a time.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::Result;
use crate::mmd::{Estimator, Kernel, coefficients};

/// Target number of dot products per GEMM block (4 MiB in f32).
const TARGET_BLOCK_ELEMENTS: usize = 1 << 20;
/// Columns handled together in the elementwise pass (fits in registers / L1, vectorises).
const CHUNK: usize = 64;

/// The float types the fused kernel supports.
trait Real: WithDType {
    /// `exp(x)` for `x <= 0`, branch-free so that it vectorises (1-2 ulp; results below the
    /// smallest normal number are flushed to about that size, an absolute error < 1e-37).
    fn exp_nonpositive(self) -> Self;
    /// A zero-filled vector (allocated zeroed, so large ones cost no memset).
    fn zeros(len: usize) -> Vec<Self>;
}

impl Real for f32 {
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        // Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, and the Cephes expf polynomial.
        // k is rounded with the 1.5 * 2^23 trick so that 2^k is built from its bits.
        const SHIFTER: f32 = 12_582_912.0;
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        let x = self.max(-87.0);
        let t = x * std::f32::consts::LOG2_E + SHIFTER;
        let k = t - SHIFTER;
        let r = x - k * LN2_HI - k * LN2_LO;
        let mut p = 1.987_569_2e-4f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 0.5;
        let e = p * r * r + r + 1.0;
        e * f32::from_bits(t.to_bits().wrapping_add(127) << 23)
    }
    fn zeros(len: usize) -> Vec<Self> {
        vec![0.0; len]
    }
}

impl Real for f64 {
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        // Same reduction as f32 (1.5 * 2^52 rounding trick), then a degree-13 Taylor
        // polynomial: on |r| <= ln2/2 its remainder is below 1e-17.
        const SHIFTER: f64 = 6_755_399_441_055_744.0;
        const LN2_HI: f64 = 6.931_471_803_691_238e-1;
        const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
        let x = self.max(-708.0);
        let t = x * std::f64::consts::LOG2_E + SHIFTER;
        let k = t - SHIFTER;
        let r = x - k * LN2_HI - k * LN2_LO;
        let mut p = 1.0 / 6_227_020_800.0; // 1/13!
        for inv_factorial in [
            1.0 / 479_001_600.0,
            1.0 / 39_916_800.0,
            1.0 / 3_628_800.0,
            1.0 / 362_880.0,
            1.0 / 40_320.0,
            1.0 / 5_040.0,
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ] {
            p = p * r + inv_factorial;
        }
        p * f64::from_bits(t.to_bits().wrapping_add(1023) << 52)
    }
    fn zeros(len: usize) -> Vec<Self> {
        vec![0.0; len]
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

/// The gradients computed by the forward pass (before scaling by the output's gradient).
#[derive(Clone)]
struct GradCache {
    /// `dMMD/dqz`, `(n, d)`, if the codes track gradients.
    grad_q: Option<Tensor>,
    /// `dMMD/dpz`, `(m, d)`, if the prior samples track gradients.
    grad_p: Option<Tensor>,
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
struct PairSums {
    /// Sum of the kernel over the pair's entries (the diagonal counts `diagonal_value`).
    total: f64,
    /// `sum_j W_ij (x_i - y_j)` for every row `i`, `(rows, d)`, if requested.
    grad_rows: Option<Tensor>,
    /// `sum_i W_ij (y_j - x_i)` for every column `j`, `(cols, d)`, if requested.
    grad_cols: Option<Tensor>,
}

/// Which gradients a pair must produce, and the factor `w` in `W_ij = w k'(D_ij)`.
#[derive(Clone, Copy)]
struct PairGrad<T> {
    weight: T,
    rows: bool,
    cols: bool,
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

/// Everything one row of the fused pass needs besides the row's dot products.
#[derive(Clone, Copy)]
struct RowParams<'a, T> {
    /// `||x_i||^2`.
    x_norm: T,
    /// `||y_j||^2` for every column.
    y_norms: &'a [T],
    kernel: Kernel,
    /// Kernel constants `C_s`.
    consts: &'a [T],
    /// Column `i` when the row belongs to a within-sample matrix (the pair `(i, i)`).
    diagonal: Option<usize>,
    /// Kernel value used on the diagonal (0 for the U-statistic, #scales for the V-statistic).
    diagonal_value: T,
    /// Factor applied to `dk/dD` before it is stored.
    weight: T,
}

/// One row of the fused pass, dispatched to the AVX-512 or AVX2 + FMA build of the same
/// code that [`crate::simd_level`] allows (the default x86-64 target only vectorises with
/// SSE2).
fn fused_row<T: Real, const GRAD: bool>(
    dots: &[T],
    params: &RowParams<'_, T>,
    out: &mut [T],
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        match crate::simd_level() {
            // SAFETY: `simd_level` checked that the CPU has these features.
            crate::SimdLevel::Avx512 => {
                return unsafe { fused_row_avx512::<T, GRAD>(dots, params, out) };
            }
            // SAFETY: `simd_level` checked that the CPU has AVX2 and FMA.
            crate::SimdLevel::Avx2 => {
                return unsafe { fused_row_avx2::<T, GRAD>(dots, params, out) };
            }
            crate::SimdLevel::Baseline => {}
        }
    }
    fused_row_generic::<T, GRAD>(dots, params, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
unsafe fn fused_row_avx512<T: Real, const GRAD: bool>(
    dots: &[T],
    params: &RowParams<'_, T>,
    out: &mut [T],
) -> (f64, f64) {
    fused_row_generic::<T, GRAD>(dots, params, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fused_row_avx2<T: Real, const GRAD: bool>(
    dots: &[T],
    params: &RowParams<'_, T>,
    out: &mut [T],
) -> (f64, f64) {
    fused_row_generic::<T, GRAD>(dots, params, out)
}

/// One row of the fused pass: distances from `x_norm`, `y_norms` and the dot products,
/// the kernel summed over the constants, and (if `GRAD`) `weight * dk/dD` into `out`.
/// The diagonal column gets the kernel value `diagonal_value` and derivative 0.
/// Returns (kernel sum, sum of `out`), accumulated in f64 per lane.
///
/// Written as fixed-width chunks with independent lanes so that it vectorises; the inverse
/// multiquadratic kernel shares one division between two scales:
/// `1/(a+D) = (b+D) / ((a+D)(b+D))`.
#[inline(always)]
fn fused_row_generic<T: Real, const GRAD: bool>(
    dots: &[T],
    params: &RowParams<'_, T>,
    out: &mut [T],
) -> (f64, f64) {
    let zero = T::from_f64(0.0);
    let one = T::from_f64(1.0);
    let two = T::from_f64(2.0);
    let x_norm = params.x_norm;
    let mut dist = [zero; CHUNK];
    let mut k_acc = [zero; CHUNK];
    let mut g_acc = [zero; CHUNK];
    let mut k_lanes = [0.0f64; CHUNK];
    let mut w_lanes = [0.0f64; CHUNK];
    let cols = dots.len();
    let mut j0 = 0;
    while j0 < cols {
        let len = CHUNK.min(cols - j0);
        let (dist, k_acc, g_acc) = (&mut dist[..len], &mut k_acc[..len], &mut g_acc[..len]);
        for ((dv, &yn), &dot) in dist
            .iter_mut()
            .zip(&params.y_norms[j0..j0 + len])
            .zip(&dots[j0..j0 + len])
        {
            let v = x_norm + yn - two * dot;
            *dv = if v > zero { v } else { zero };
        }
        k_acc.fill(zero);
        if GRAD {
            g_acc.fill(zero);
        }
        match params.kernel {
            Kernel::InverseMultiquadratic => {
                let mut pairs = params.consts.chunks_exact(2);
                for pair in &mut pairs {
                    let (a, b) = (pair[0], pair[1]);
                    for ((&dv, ka), ga) in dist.iter().zip(k_acc.iter_mut()).zip(g_acc.iter_mut()) {
                        let (pa, pb) = (a + dv, b + dv);
                        let inv = one / (pa * pb);
                        let (ra, rb) = (pb * inv, pa * inv);
                        let (k_a, k_b) = (a * ra, b * rb);
                        *ka += k_a + k_b;
                        if GRAD {
                            *ga -= k_a * ra + k_b * rb;
                        }
                    }
                }
                for &c in pairs.remainder() {
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
                for &c in params.consts {
                    let inv = one / c;
                    for ((&dv, ka), ga) in dist.iter().zip(k_acc.iter_mut()).zip(g_acc.iter_mut()) {
                        let k = (zero - dv * inv).exp_nonpositive();
                        *ka += k;
                        if GRAD {
                            *ga -= k * inv;
                        }
                    }
                }
            }
        }
        if let Some(dj) = params.diagonal.filter(|dj| (j0..j0 + len).contains(dj)) {
            k_acc[dj - j0] = params.diagonal_value;
            g_acc[dj - j0] = zero;
        }
        for (lane, &k) in k_lanes.iter_mut().zip(k_acc.iter()) {
            *lane += k.to_f64();
        }
        if GRAD {
            for ((o, &g), lane) in out[j0..j0 + len]
                .iter_mut()
                .zip(g_acc.iter())
                .zip(w_lanes.iter_mut())
            {
                let w = params.weight * g;
                *o = w;
                *lane += w.to_f64();
            }
        }
        j0 += len;
    }
    (k_lanes.iter().sum(), w_lanes.iter().sum())
}

/// A strided read-only matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
struct View<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<T> View<'_, T> {
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst = lhs @ rhs * beta` (or `dst += lhs @ rhs * beta` when `accumulate`), where `dst` is a
/// row-major `(lhs.rows, rhs.cols)` matrix. Calls the `gemm` crate (the GEMM candle uses)
/// directly: candle's `matmul` asks the OS for the CPU count on every call, which costs more
/// than a small product, and would need a tensor allocation per block.
fn gemm_into<T: Real>(
    dst: &mut [T],
    accumulate: bool,
    beta: T,
    lhs: View<'_, T>,
    rhs: View<'_, T>,
) -> candle_core::Result<()> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k || dst.len() != m * n || !lhs.fits() || !rhs.fits() {
        candle_core::bail!(
            "fused mmd: inconsistent GEMM operands ({m}x{k} @ {}x{n} into {})",
            rhs.rows,
            dst.len()
        );
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst.fill(T::from_f64(0.0));
        }
        return Ok(());
    }
    let parallelism = if m * n * k >= 1 << 22 {
        gemm::Parallelism::Rayon(rayon::current_num_threads().max(1))
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three operands were checked above to lie inside their slices (every index
    // `i * row_stride + j * col_stride` with `i < rows`, `j < cols` is in bounds, and `dst`
    // is a contiguous row-major m x n matrix); `dst` is a unique borrow, so it aliases neither
    // `lhs` nor `rhs`; `T` is f32 or f64, which `gemm` supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::from_f64(1.0),
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// Kernel sums (and optionally gradients) between `x` (rows, d) and `y` (cols, d).
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
    grad: Option<PairGrad<T>>,
    block_rows: usize,
) -> candle_core::Result<PairSums> {
    let rows = x.len() / d;
    let cols = y.len() / d;
    let x_norms = row_norms(x, d);
    let y_norms = if same_sample {
        x_norms.clone()
    } else {
        row_norms(y, d)
    };
    // Without a gradient, a within-sample matrix only needs its strict upper triangle
    // (each block of rows starts its GEMM at its own first column).
    let triangular = same_sample && grad.is_none();
    let block_rows = block_rows.max(1).min(rows.max(1));
    let mut row_totals = vec![0.0f64; rows];
    let mut dots_buf = T::zeros(block_rows * cols);
    let want_rows = grad.is_some_and(|g| g.rows);
    let want_cols = grad.is_some_and(|g| g.cols);
    let mut w_buf = if grad.is_some() {
        T::zeros(block_rows * cols)
    } else {
        Vec::new()
    };
    let mut grad_rows = if want_rows {
        T::zeros(rows * d)
    } else {
        Vec::new()
    };
    let mut grad_cols = if want_cols {
        T::zeros(cols * d)
    } else {
        Vec::new()
    };
    let mut col_sums = if want_cols {
        vec![0.0f64; cols]
    } else {
        Vec::new()
    };
    let base = RowParams {
        x_norm: T::from_f64(0.0),
        y_norms: &y_norms,
        kernel,
        consts,
        diagonal: None,
        diagonal_value,
        weight: T::from_f64(0.0),
    };
    for r0 in (0..rows).step_by(block_rows) {
        let b = block_rows.min(rows - r0);
        let x_block = View {
            data: &x[r0 * d..(r0 + b) * d],
            rows: b,
            cols: d,
            row_stride: d,
            col_stride: 1,
        };
        let col0 = if triangular { r0 } else { 0 };
        let width = cols - col0;
        // (b, width) = x_block @ y[col0..]^T
        let y_t = View {
            data: &y[col0 * d..],
            rows: d,
            cols: width,
            row_stride: 1,
            col_stride: d,
        };
        let dots = &mut dots_buf[..b * width];
        gemm_into(dots, false, T::from_f64(1.0), x_block, y_t)?;
        let dots = &*dots;
        let diagonal = |i: usize| same_sample.then_some(r0 + i);
        let totals = &mut row_totals[r0..r0 + b];
        match grad {
            None if triangular => {
                totals.par_iter_mut().enumerate().for_each(|(i, total)| {
                    let row = r0 + i;
                    let params = RowParams {
                        x_norm: x_norms[row],
                        y_norms: &y_norms[row + 1..],
                        ..base
                    };
                    // Columns row+1.. of this row, i.e. local columns (row - col0 + 1)..width.
                    let upper = &dots[i * width + (row - col0 + 1)..(i + 1) * width];
                    let (k, _) = fused_row::<T, false>(upper, &params, &mut []);
                    *total = 2.0 * k + diagonal_value.to_f64();
                });
            }
            None => {
                totals.par_iter_mut().enumerate().for_each(|(i, total)| {
                    let params = RowParams {
                        x_norm: x_norms[r0 + i],
                        diagonal: diagonal(i),
                        ..base
                    };
                    let (k, _) =
                        fused_row::<T, false>(&dots[i * cols..(i + 1) * cols], &params, &mut []);
                    *total = k;
                });
            }
            Some(PairGrad { weight, .. }) => {
                let w_block = &mut w_buf[..b * cols];
                let mut w_row_sums = vec![0.0f64; b];
                w_block
                    .par_chunks_mut(cols)
                    .zip(w_row_sums.par_iter_mut())
                    .zip(totals.par_iter_mut())
                    .enumerate()
                    .for_each(|(i, ((out, row_sum), total))| {
                        let params = RowParams {
                            x_norm: x_norms[r0 + i],
                            weight,
                            diagonal: diagonal(i),
                            ..base
                        };
                        let (k, s) =
                            fused_row::<T, true>(&dots[i * cols..(i + 1) * cols], &params, out);
                        *total = k;
                        *row_sum = s;
                    });
                let w_view = View {
                    data: &*w_block,
                    rows: b,
                    cols,
                    row_stride: cols,
                    col_stride: 1,
                };
                if want_rows {
                    // grad_x = r ⊙ x - W y for the block's rows.
                    let y_view = View {
                        data: y,
                        rows: cols,
                        cols: d,
                        row_stride: d,
                        col_stride: 1,
                    };
                    let out = &mut grad_rows[r0 * d..(r0 + b) * d];
                    gemm_into(out, false, T::from_f64(-1.0), w_view, y_view)?;
                    for ((g_row, x_row), &r) in out
                        .chunks_exact_mut(d)
                        .zip(x_block.data.chunks_exact(d))
                        .zip(&w_row_sums)
                    {
                        let r = T::from_f64(r);
                        for (g, &xv) in g_row.iter_mut().zip(x_row) {
                            *g += r * xv;
                        }
                    }
                }
                if want_cols {
                    // grad_y accumulates c ⊙ y - W^T x over the blocks (c = column sums of W).
                    let w_t = View {
                        data: &*w_block,
                        rows: cols,
                        cols: b,
                        row_stride: 1,
                        col_stride: cols,
                    };
                    gemm_into(&mut grad_cols, true, T::from_f64(-1.0), w_t, x_block)?;
                    for w_row in w_block.chunks_exact(cols) {
                        for (c, &w) in col_sums.iter_mut().zip(w_row) {
                            *c += w.to_f64();
                        }
                    }
                }
            }
        }
    }
    let to_tensor = |v: Vec<T>, len: usize| Tensor::from_vec(v, (len, d), &Device::Cpu);
    let grad_rows = if want_rows {
        Some(to_tensor(grad_rows, rows)?)
    } else {
        None
    };
    let grad_cols = if want_cols {
        for ((g_row, y_row), &c) in grad_cols
            .chunks_exact_mut(d)
            .zip(y.chunks_exact(d))
            .zip(&col_sums)
        {
            let c = T::from_f64(c);
            for (g, &yv) in g_row.iter_mut().zip(y_row) {
                *g += c * yv;
            }
        }
        Some(to_tensor(grad_cols, cols)?)
    } else {
        None
    };
    // Summed in a fixed order, so the result does not depend on thread scheduling.
    Ok(PairSums {
        total: row_totals.iter().sum(),
        grad_rows,
        grad_cols,
    })
}

impl FusedMmd {
    fn forward<T: Real>(&self, q: &[T], p: &[T], d: usize) -> candle_core::Result<T> {
        let (n, m) = (q.len() / d, p.len() / d);
        let (c_qq, c_pp, c_qp) = coefficients(n, m, self.estimator);
        let consts: Vec<T> = self.consts.iter().map(|&c| T::from_f64(c)).collect();
        let diagonal_value = match self.estimator {
            Estimator::UStatistic | Estimator::PairedUStatistic => T::from_f64(0.0),
            Estimator::VStatistic => T::from_f64(consts.len() as f64),
        };
        let rows_for = |cols: usize| {
            self.block_rows
                .unwrap_or_else(|| TARGET_BLOCK_ELEMENTS / cols.max(1))
                .max(1)
        };
        let grad = |rows: bool, cols: bool, c: f64| {
            (rows || cols).then(|| PairGrad {
                weight: T::from_f64(c),
                rows,
                cols,
            })
        };
        let (gq, gp) = (self.grad_q, self.grad_p);
        let pair = |x: &[T], y: &[T], same: bool, g: Option<PairGrad<T>>, cols: usize| {
            pair_sums(
                x,
                y,
                d,
                same,
                self.kernel,
                &consts,
                diagonal_value,
                g,
                rows_for(cols),
            )
        };
        let qq = pair(q, q, true, grad(gq, false, 4.0 * c_qq), n)?;
        let pp = pair(p, p, true, grad(gp, false, 4.0 * c_pp), m)?;
        let qp = pair(q, p, false, grad(gq, gp, 2.0 * c_qp), m)?;
        let value = c_qq * qq.total + c_pp * pp.total + c_qp * qp.total;
        if gq || gp {
            let add =
                |a: Option<Tensor>, b: Option<Tensor>| -> candle_core::Result<Option<Tensor>> {
                    match (a, b) {
                        (Some(a), Some(b)) => Ok(Some((a + b)?)),
                        (a, b) => Ok(a.or(b)),
                    }
                };
            let cache = GradCache {
                grad_q: add(qq.grad_rows, qp.grad_rows)?,
                grad_p: add(pp.grad_rows, qp.grad_cols)?,
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
        _q: &Tensor,
        _p: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let cache = match self.cache.lock() {
            Ok(slot) => slot.clone(),
            Err(_) => candle_core::bail!("fused mmd: gradient cache lock poisoned"),
        };
        let Some(cache) = cache else {
            candle_core::bail!(
                "fused mmd: backward called without a forward pass that computed gradients"
            )
        };
        let scale = |g: Option<Tensor>| g.map(|g| g.broadcast_mul(grad_res)).transpose();
        Ok((scale(cache.grad_q)?, scale(cache.grad_p)?))
    }
}

#[cfg(test)]
mod tests {
    use super::Real;

    #[test]
    fn vectorisable_exp_is_accurate_on_nonpositive_arguments() {
        let mut worst64 = 0.0f64;
        let mut worst32 = 0.0f64;
        for i in 0..=200_000 {
            let x = -700.0 * (i as f64 / 200_000.0).powi(2);
            let rel = (x.exp_nonpositive() - x.exp()).abs() / x.exp();
            worst64 = worst64.max(rel);
            if x > -87.0 {
                let x32 = x as f32;
                let reference = (x32 as f64).exp();
                worst32 = worst32.max((x32.exp_nonpositive() as f64 - reference).abs() / reference);
            }
        }
        assert!(worst64 < 1e-15, "f64 relative error {worst64:e}");
        assert!(worst32 < 3e-7, "f32 relative error {worst32:e}");
        assert_eq!(0.0f64.exp_nonpositive(), 1.0);
        assert_eq!(0.0f32.exp_nonpositive(), 1.0);
        // Deep underflow: tiny and non-negative, never NaN or negative.
        for x in [-1e4f64, -1e30, f64::NEG_INFINITY] {
            let e = x.exp_nonpositive();
            assert!((0.0..1e-300).contains(&e), "{x}: {e}");
            let e = (x as f32).exp_nonpositive();
            assert!((0.0..1e-37).contains(&e), "{x}: {e}");
        }
    }
}
