//! The CPU kernels behind the custom ops: im2col / col2im around single-threaded GEMM
//! calls, run in parallel over groups of samples on rayon's global pool.
//!
//! Everything here works on plain contiguous slices, without candle types, so that the
//! geometry can be reasoned about (and tested) on its own.
//!
//! # Geometry
//! A 2-d convolution maps an "image" tensor `a` of shape `(N, ca, ha, wa)` to a "feature"
//! tensor `b` of shape `(N, cb, hb, wb)` with a kernel matrix `K` of shape
//! `(cb, ca * kh * kw)` (row-major):
//!
//! `b[n, j, yb, xb] = sum_{i, ky, kx} K[j, (i, ky, kx)] * a[n, i, yb*sh - ph + ky, xb*sw - pw + kx]`
//!
//! (taps that fall outside `a` read zero). A conv2d is this map with `a` = its input and
//! `K` = its weight `(c_out, c_in, kh, kw)`; a transposed convolution is the adjoint map,
//! with `b` = its input, `a` = its output and `K` = its weight `(c_in, c_out, kh, kw)`.
//! The three kernels below are the map ([`conv_forward`]), its adjoint
//! ([`conv_adjoint`]) and its derivative with respect to `K` ([`conv_kernel_grad`]).

use std::mem::MaybeUninit;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::simd::multiversion;

/// The element types the kernels run on (f32 and f64).
pub(crate) trait Elem:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    /// A NaN with a payload no computation here produces: what debug builds write into
    /// [`par_build`]'s buffers before the fill, to find elements it leaves unwritten.
    const UNWRITTEN: Self;
    /// Whether `self` has exactly the bits of [`Self::UNWRITTEN`].
    fn is_unwritten(self) -> bool;
    /// The process-wide list of kept scratch buffers of this type ([`Pool`]).
    fn scratch_list() -> &'static Mutex<Vec<Vec<Self>>>;
    fn as_f64(self) -> f64;
    fn of_f64(v: f64) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    /// `max(self, 0)` with candle's ReLU's results: `+0` for `-0` and `0` for NaN.
    /// (`self.max(0.0)`, candle's own formula, gave `-0` for `-0` in a debug build here:
    /// IEEE maxNum leaves the sign of a zero open.)
    fn relu(self) -> Self;
    /// The data of a CPU storage of this type, mutably (`None` for another dtype).
    fn cpu_storage_as_mut_slice(s: &mut candle_core::CpuStorage) -> Option<&mut [Self]>;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const UNWRITTEN: Self = f32::from_bits(0x7fc0_d00d);
    fn is_unwritten(self) -> bool {
        self.to_bits() == Self::UNWRITTEN.to_bits()
    }
    fn scratch_list() -> &'static Mutex<Vec<Vec<Self>>> {
        static LIST: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
        &LIST
    }
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    fn of_f64(v: f64) -> Self {
        v as f32
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
    fn relu(self) -> Self {
        if self > 0.0 { self } else { 0.0 }
    }
    fn cpu_storage_as_mut_slice(s: &mut candle_core::CpuStorage) -> Option<&mut [Self]> {
        match s {
            candle_core::CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const UNWRITTEN: Self = f64::from_bits(0x7ff8_0000_0bad_d00d);
    fn is_unwritten(self) -> bool {
        self.to_bits() == Self::UNWRITTEN.to_bits()
    }
    fn scratch_list() -> &'static Mutex<Vec<Vec<Self>>> {
        static LIST: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());
        &LIST
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn of_f64(v: f64) -> Self {
        v
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn relu(self) -> Self {
        if self > 0.0 { self } else { 0.0 }
    }
    fn cpu_storage_as_mut_slice(s: &mut candle_core::CpuStorage) -> Option<&mut [Self]> {
        match s {
            candle_core::CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// Shapes, strides and paddings of one convolution (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Channels, height and width of the image side `a`.
    pub ca: usize,
    pub ha: usize,
    pub wa: usize,
    /// Channels, height and width of the feature side `b`.
    pub cb: usize,
    pub hb: usize,
    pub wb: usize,
    /// Kernel height and width.
    pub kh: usize,
    pub kw: usize,
    /// Strides.
    pub sh: usize,
    pub sw: usize,
    /// Zero padding before the first row / column of `a`.
    pub ph: usize,
    pub pw: usize,
}

impl ConvGeom {
    /// Multiply-adds of one product of this geometry computed directly: every feature-side
    /// output (`N * cb * hb * wb`) sums `ca * kh * kw` terms. The forward pass, the input
    /// gradient and the kernel gradient each do this many (see [`crate::profile`]).
    pub(crate) fn madds(&self) -> u64 {
        [self.n, self.cb, self.hb, self.wb, self.ca, self.kh, self.kw]
            .iter()
            .fold(1u64, |acc, &d| acc.saturating_mul(d as u64))
    }

    /// The square 4x4, stride-2, padding-1 geometry of the DCGAN layers (the MNIST nets'
    /// convolutions and up-sampling layers): `n` samples, `ca` channels of `ha x ha` on
    /// the image side, `cb` channels of `hb x hb` on the feature side. For tests.
    #[cfg(test)]
    pub(crate) fn dcgan(n: usize, ca: usize, ha: usize, cb: usize, hb: usize) -> Self {
        Self {
            n,
            ca,
            ha,
            wa: ha,
            cb,
            hb,
            wb: hb,
            kh: 4,
            kw: 4,
            sh: 2,
            sw: 2,
            ph: 1,
            pw: 1,
        }
    }

    fn taps(&self) -> usize {
        self.kh * self.kw
    }
    /// Rows of the im2col matrix: `ca * kh * kw`.
    fn rows(&self) -> usize {
        self.ca * self.taps()
    }
    fn a_plane(&self) -> usize {
        self.ha * self.wa
    }
    fn b_plane(&self) -> usize {
        self.hb * self.wb
    }
    pub fn a_len(&self) -> usize {
        self.n * self.ca * self.a_plane()
    }
    pub fn b_len(&self) -> usize {
        self.n * self.cb * self.b_plane()
    }
    pub fn k_len(&self) -> usize {
        self.cb * self.rows()
    }

    /// Whether [`conv_forward_into`] accumulates the kernel gradient column-major: where
    /// the batch has at least 4 feature-side positions per output channel (see there).
    fn kernel_grad_column_major(&self) -> bool {
        self.n * self.b_plane() >= 4 * self.cb
    }

    /// The most samples (at least 1) whose im2col buffer stays within
    /// [`GROUP_TARGET_ELEMS`].
    fn samples_in_cache_budget(&self) -> usize {
        (GROUP_TARGET_ELEMS / (self.rows() * self.b_plane()).max(1)).max(1)
    }

    /// How many samples one task handles at once: enough that one GEMM has a few hundred
    /// columns (so the packed kernel matrix is reused), few enough that the im2col
    /// buffer stays in the last-level cache and that there are at least [`MIN_TASKS`]
    /// tasks. It does not depend on the thread count, so neither do the GEMM shapes
    /// (the gemm crate's blocking, and so its summation order, follows the shapes).
    fn group_size(&self) -> usize {
        let by_cache = self.samples_in_cache_budget();
        let by_columns = MIN_GEMM_COLUMNS.div_ceil(self.b_plane().max(1)).max(1);
        let by_tasks = self.n.div_ceil(MIN_TASKS).max(1);
        by_cache.min(by_columns).min(by_tasks).max(1)
    }

    /// Samples per task of a call without a kernel gradient: [`Self::group_size`], or
    /// the few wide tasks of [`Self::kernel_grad_group_size`] where the kernel matrix is
    /// larger than one task's im2col buffer. Every task packs the whole kernel matrix
    /// for its GEMM, so many thin tasks pack it many times: the full-width encoder's
    /// last layer (a 1024 x 8192 kernel, 52 columns a task) packed 32 MB eight times a
    /// call. Each output element is the same sum either way (the gemm crate blocks the
    /// sum by its length alone at these sizes), so the results keep their bits.
    fn group_size_without_kernel_grad(&self) -> usize {
        let g = self.group_size();
        if self.k_len() > self.rows() * g * self.b_plane() {
            self.kernel_grad_group_size()
        } else {
            g
        }
    }

    /// Samples per task of a call that computes only the kernel gradient
    /// ([`conv_kernel_grad`]): the batch split into the fewest tasks whose im2col
    /// buffers stay within [`GROUP_TARGET_ELEMS`], that count rounded up to a multiple
    /// of [`KERNEL_GRAD_TASKS`] (samples per task rounded up; [`split_tasks`] then cuts
    /// the batch into an even number of tasks of at most that many samples).
    ///
    /// The forward pass's sizing ([`Self::group_size`]: at least [`MIN_TASKS`] tasks of
    /// a few hundred columns) made each task's product `(cb, width) * (width, rows)` thin
    /// where the kernel is large beside the batch (52 columns against a 256 x 2048
    /// gradient for the width-4 encoder's last layer at batch 100), and gave every one
    /// of up to [`MAX_DK_SLOTS`] slots a gradient buffer to zero and sum. With few wide
    /// tasks the encoder's backward pass at width 4, batch 100, went from about 17.5 to
    /// 15 ms and the width-4 step at batch 25 gained about 5 % (docs/performance.md).
    /// Like the forward sizing it depends on the shapes alone, not on the thread count.
    fn kernel_grad_group_size(&self) -> usize {
        let tasks = self
            .n
            .div_ceil(self.samples_in_cache_budget())
            .next_multiple_of(KERNEL_GRAD_TASKS);
        self.n.div_ceil(tasks).max(1)
    }
}

/// The batch of `n` samples cut into tasks of at most `g` samples: `(tasks, start)`,
/// where task `t` holds samples `start(t) .. start(t + 1)`. The count is `ceil(n / g)`
/// rounded up to an even number (while there are samples for it), and the sizes differ
/// by at most one, so that two threads get the same work: 17 tasks of 6, 6, ..., 4
/// samples (batch 100) kept one thread busy for 9 tasks and the other for 8, where 18
/// tasks of 5 or 6 samples split 50 / 50. Like the group sizes, the split depends on
/// the shapes alone, not on the thread count.
fn split_tasks(n: usize, g: usize) -> (usize, impl Fn(usize) -> usize + Copy + Sync) {
    let mut tasks = n.div_ceil(g.max(1));
    if tasks % 2 == 1 && tasks < n {
        tasks += 1;
    }
    let tasks_nz = tasks.max(1);
    (tasks, move |t: usize| t * n / tasks_nz)
}

/// The task count of a kernel-gradient-only call is a multiple of this (so that two
/// threads share the tasks evenly).
const KERNEL_GRAD_TASKS: usize = 2;

/// The fewest tasks a batch is split into (when it has that many samples).
const MIN_TASKS: usize = 8;
/// The most partial kernel-gradient buffers one call sums ([`conv_forward_into`]).
const MAX_DK_SLOTS: usize = 8;
/// Memory, in bytes, the partial kernel-gradient buffers beyond the first may take.
const DK_SLOT_BYTES: usize = 64 << 20;

/// Target size, in elements, of one task's im2col buffer.
const GROUP_TARGET_ELEMS: usize = 1 << 21;
/// A GEMM with fewer columns than this re-packs its kernel matrix too often.
const MIN_GEMM_COLUMNS: usize = 256;

/// Scratch buffers kept between kernel calls: at most this many per element type.
const SCRATCH_KEPT: usize = 8;
/// ... and at most this many bytes in all, per element type.
const SCRATCH_KEPT_BYTES: usize = 128 << 20;

/// Scratch buffers (im2col columns, GEMM outputs) for the tasks of kernel calls, taken
/// from and given back to one process-wide list per element type, so that after the
/// first training step no call allocates (and zeroes) its scratch again. Every user
/// overwrites what it takes, so a buffer's old content does not matter.
pub(crate) struct Pool<T: 'static> {
    free: &'static Mutex<Vec<Vec<T>>>,
}

impl<T: Elem> Pool<T> {
    pub(crate) fn new() -> Self {
        Self {
            free: T::scratch_list(),
        }
    }
    /// A buffer of `len` elements: a kept one with its old content (the smallest that
    /// holds `len` elements without growing), else a new zeroed one.
    pub(crate) fn take(&self, len: usize) -> Vec<T> {
        let reused = self.free.lock().ok().and_then(|mut free| {
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i)?;
            Some(free.swap_remove(best))
        });
        match reused {
            Some(mut v) => {
                v.resize(len, T::ZERO);
                v
            }
            None => vec![T::ZERO; len],
        }
    }
    /// Keeps `v` for later calls, dropping the smallest kept buffers beyond
    /// [`SCRATCH_KEPT`] buffers or [`SCRATCH_KEPT_BYTES`].
    pub(crate) fn give(&self, v: Vec<T>) {
        let Ok(mut free) = self.free.lock() else {
            return;
        };
        free.push(v);
        free.sort_by_key(|v| std::cmp::Reverse(v.capacity()));
        let mut bytes = 0;
        let keep = free
            .iter()
            .take_while(|v| {
                bytes += v.capacity() * std::mem::size_of::<T>();
                bytes <= SCRATCH_KEPT_BYTES
            })
            .count()
            .min(SCRATCH_KEPT);
        free.truncate(keep);
    }
}

/// The offset of the last element of an `r x c` matrix with strides `(rs, cs)`.
fn last_index(r: usize, c: usize, rs: usize, cs: usize) -> usize {
    (r - 1) * rs + (c - 1) * cs
}

/// Panics unless `lhs` (`m x k`) and `rhs` (`k x n`), given as (values, row stride,
/// column stride), hold every element a product reads: the gemm crate reads through raw
/// pointers. `m`, `n` and `k` must be positive.
fn assert_operands_fit<T>(
    m: usize,
    n: usize,
    k: usize,
    lhs: (&[T], usize, usize),
    rhs: (&[T], usize, usize),
) {
    assert!(
        last_index(m, k, lhs.1, lhs.2) < lhs.0.len(),
        "gemm lhs out of bounds"
    );
    assert!(
        last_index(k, n, rhs.1, rhs.2) < rhs.0.len(),
        "gemm rhs out of bounds"
    );
}

/// The gemm crate's row-major product `dst (m x n) = lhs (m x k) * rhs (k x n)` (or
/// `dst += ...` when `accumulate`), each matrix given by a row stride and a column stride.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_rm<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    lhs: &[T],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[T],
    rhs_rs: usize,
    rhs_cs: usize,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and `gemm_maybe_uninit` writes only
    // values of `T`, so `dst` stays initialised.
    let dst = unsafe { &mut *(dst as *mut [T] as *mut [MaybeUninit<T>]) };
    gemm_maybe_uninit(
        (m, n, k),
        (dst, dst_rs, dst_cs),
        accumulate,
        (lhs, lhs_rs, lhs_cs),
        (rhs, rhs_rs, rhs_cs),
        parallelism,
    )
}

/// [`gemm_rm`] with `accumulate = false` into a destination that need not be
/// initialised: every element of the `m x n` matrix is written (and none read), so a
/// `dst` of exactly those elements is initialised afterwards.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_rm_into<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [MaybeUninit<T>],
    dst_rs: usize,
    dst_cs: usize,
    lhs: &[T],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[T],
    rhs_rs: usize,
    rhs_cs: usize,
    parallelism: gemm::Parallelism,
) {
    gemm_maybe_uninit(
        (m, n, k),
        (dst, dst_rs, dst_cs),
        false,
        (lhs, lhs_rs, lhs_cs),
        (rhs, rhs_rs, rhs_cs),
        parallelism,
    )
}

/// The checked body of [`gemm_rm`] and [`gemm_rm_into`], each matrix as (values, row
/// stride, column stride). `dst` may be uninitialised unless `accumulate` (then gemm
/// reads it).
#[allow(clippy::type_complexity)]
fn gemm_maybe_uninit<T: Elem>(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, dst_cs): (&mut [MaybeUninit<T>], usize, usize),
    accumulate: bool,
    lhs: (&[T], usize, usize),
    rhs: (&[T], usize, usize),
    parallelism: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        last_index(m, n, dst_rs, dst_cs) < dst.len(),
        "gemm dst out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst[r * dst_rs + c * dst_cs].write(T::ZERO);
                }
            }
        }
        return;
    }
    assert_operands_fit(m, n, k, lhs, rhs);
    // SAFETY: the asserts above keep every index the product touches inside its
    // slice; `dst` is borrowed mutably, so it aliases neither input; with
    // `accumulate = false` gemm only writes `dst`, and the callers pass
    // `accumulate = true` only for an initialised `dst`.
    unsafe {
        gemm_raw(
            (m, n, k),
            (dst.as_mut_ptr().cast::<T>(), dst_rs, dst_cs),
            accumulate,
            (lhs.0.as_ptr(), lhs.1, lhs.2),
            (rhs.0.as_ptr(), rhs.1, rhs.2),
            parallelism,
        )
    }
}

/// `dst[i] = src[i]` for a destination that need not be initialised (same lengths).
#[inline(always)]
pub(crate) fn write_copy<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "write_copy: lengths differ");
    // SAFETY: both slices hold `src.len()` elements and a `&mut` cannot overlap a `&`;
    // `MaybeUninit<T>` has the layout of `T`.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<T>(), src.len()) }
}

/// `c` as values, once every element of it has been written.
///
/// # Safety
/// Every element of `c` must have been initialised.
#[inline(always)]
pub(crate) unsafe fn assume_init<T>(c: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: the caller guarantees initialisation; `MaybeUninit<T>` has the layout of `T`.
    unsafe { &mut *(c as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// `gemm::gemm` with each matrix as (pointer, row stride, column stride), in that order
/// (the crate takes column strides first), `dst = lhs * rhs`, or `dst += lhs * rhs` when
/// `accumulate` (with `accumulate = false` gemm never reads `dst`).
///
/// # Safety
/// Every element of the three `m x n`, `m x k` and `k x n` matrices must be in bounds,
/// and `dst` may alias neither input nor be touched by another thread meanwhile.
#[allow(clippy::type_complexity)]
unsafe fn gemm_raw<T: Elem>(
    (m, n, k): (usize, usize, usize),
    dst: (*mut T, usize, usize),
    accumulate: bool,
    lhs: (*const T, usize, usize),
    rhs: (*const T, usize, usize),
    parallelism: gemm::Parallelism,
) {
    // SAFETY: forwarded with the caller's guarantees.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.2 as isize,
            dst.1 as isize,
            accumulate,
            lhs.0,
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0,
            rhs.2 as isize,
            rhs.1 as isize,
            if accumulate { T::ONE } else { T::ZERO },
            T::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `lhs (m x k) * rhs (k x n)` into a new vector of `m * n` values, column-major
/// (`column_major`) or row-major.
///
/// The vector is not zeroed first: with `read_dst = false` the gemm crate writes every
/// element of the product without reading it, so zeroing (a memset of the whole output,
/// 5 % of the fully connected dSprites step when candle did it for each weight
/// gradient) would be wasted.
///
/// With several threads the product is cut into one block of columns (or rows, whichever
/// side is longer) per thread, each a single-threaded gemm call, all in one parallel
/// region: the gemm crate's own parallelism opens a region per block of the inner
/// dimension, and on two cores the wake-ups cost more than the split saves. Blocks keep at least [`MIN_SPLIT`] columns
/// (rows), so that gemm's choice of how to block the sum, which depends on `k` alone
/// for such sizes, and so each result element, does not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_new<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    column_major: bool,
    lhs: &[T],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[T],
    rhs_rs: usize,
    rhs_cs: usize,
) -> Vec<T> {
    let len = m * n;
    if len == 0 || k == 0 {
        return vec![T::ZERO; len];
    }
    assert_operands_fit(m, n, k, (lhs, lhs_rs, lhs_cs), (rhs, rhs_rs, rhs_cs));
    let threads = rayon::current_num_threads().max(1);
    let (dst_rs, dst_cs) = if column_major { (1, m) } else { (n, 1) };
    // Blocks along the longer side of the result.
    let by_columns = n >= m;
    let split_len = m.max(n);
    let parts = threads.min(split_len / MIN_SPLIT).max(1);
    let mut dst: Vec<T> = Vec::new();
    let out = Shared::spare(&mut dst, len);
    let part = |p: usize, parallelism: gemm::Parallelism| {
        let (lo, hi) = (p * split_len / parts, (p + 1) * split_len / parts);
        let (mm, nn, dst_off, lhs_off, rhs_off) = if by_columns {
            (m, hi - lo, lo * dst_cs, 0, lo * rhs_cs)
        } else {
            (hi - lo, n, lo * dst_rs, lo * lhs_rs, 0)
        };
        // SAFETY: `assert_operands_fit` bounds every index of `lhs` and `rhs` the whole
        // product reads, and a block reads a subset of them. The blocks write disjoint
        // sets of elements of `dst`'s allocation of `len` (their rows or columns),
        // through a raw pointer that no reference covers. With `read_dst = false` gemm
        // stores every element of its block without reading the old value, so once all
        // blocks have run all `len` elements are initialised.
        unsafe {
            gemm_raw(
                (mm, nn, k),
                (out.ptr_at(dst_off), dst_rs, dst_cs),
                false,
                (lhs.as_ptr().add(lhs_off), lhs_rs, lhs_cs),
                (rhs.as_ptr().add(rhs_off), rhs_rs, rhs_cs),
                parallelism,
            )
        }
    };
    if parts == 1 {
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        part(0, par);
    } else {
        (0..parts)
            .into_par_iter()
            .for_each(|p| part(p, gemm::Parallelism::None));
    }
    // SAFETY: every element was written (see above).
    unsafe { dst.set_len(len) };
    dst
}

/// The fewest output columns (rows) of one block of [`gemm_new`].
const MIN_SPLIT: usize = 128;

/// A raw output pointer shared by parallel jobs that write disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct Shared<T>(*mut T, usize);

// SAFETY: jobs only write through it, at indices that no other job writes (each use
// says why), and the buffer outlives the parallel loop.
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T: Elem> Shared<T> {
    pub(crate) fn new(buf: &mut [T]) -> Self {
        Self(buf.as_mut_ptr(), buf.len())
    }

    /// Over the first `len` elements of `v`'s spare capacity (reserved here), which the
    /// jobs are to initialise.
    fn spare(v: &mut Vec<T>, len: usize) -> Self {
        v.reserve(len);
        Self(v.spare_capacity_mut().as_mut_ptr().cast(), len)
    }

    /// A pointer to element `i`, for writes through raw-pointer APIs.
    ///
    /// # Safety
    /// No other thread may access the elements written through it during the parallel
    /// loop.
    unsafe fn ptr_at(self, i: usize) -> *mut T {
        assert!(i < self.1, "shared output index out of bounds");
        // SAFETY: in bounds (checked).
        unsafe { self.0.add(i) }
    }
    /// The `len` elements from `i` as a mutable slice.
    ///
    /// # Safety
    /// No other thread may access those elements while the slice lives.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut<'a>(self, i: usize, len: usize) -> &'a mut [T] {
        assert!(i + len <= self.1, "shared output index out of bounds");
        // SAFETY: in bounds (checked); exclusive per the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(i), len) }
    }
}

/// Where the taps of a convolution read along one axis, in the phase-split layout of
/// the image side: tap `k` of output position `o` reads image index `o*s - p + k`, which
/// is element `o + shift[k]` of phase `phase[k]` (`shift` may be negative).
#[derive(Clone, Debug)]
struct AxisTaps {
    /// Per tap: (phase, shift).
    taps: Vec<(usize, isize)>,
    /// Image length and stride.
    n_in: usize,
    s: usize,
    /// Elements per phase: `ceil(n_in / s)`.
    per_phase: usize,
    /// Zero elements kept before and after every phase, so that every tap reads or writes
    /// `n_out` consecutive elements.
    before: usize,
    after: usize,
}

impl AxisTaps {
    fn new(n_out: usize, n_in: usize, s: usize, p: usize, k_count: usize) -> Self {
        let per_phase = n_in.div_ceil(s);
        let taps: Vec<(usize, isize)> = (0..k_count)
            .map(|k| {
                let d = k as isize - p as isize;
                (d.rem_euclid(s as isize) as usize, d.div_euclid(s as isize))
            })
            .collect();
        let before = taps.iter().map(|&(_, sh)| (-sh).max(0)).max().unwrap_or(0) as usize;
        let after = taps
            .iter()
            .map(|&(_, sh)| (n_out as isize + sh - per_phase as isize).max(0))
            .max()
            .unwrap_or(0) as usize;
        Self {
            taps,
            n_in,
            s,
            per_phase,
            before,
            after,
        }
    }
    /// Length of one padded phase.
    fn len(&self) -> usize {
        self.before + self.per_phase + self.after
    }
    /// (phase, first padded index) read by tap `k` for output position 0.
    fn start(&self, k: usize) -> (usize, usize) {
        let (phase, shift) = self.taps[k];
        (phase, (self.before as isize + shift) as usize)
    }
}

/// A plane of the image side split into its `sh * sw` phases (phase `(py, px)` holds the
/// elements `(y, x)` with `y mod sh = py`, `x mod sw = px`, at `(y / sh, x / sw)`), each
/// surrounded by zeros ([`AxisTaps::before`] / `after`): every kernel tap of every
/// feature-side row then maps to one contiguous run of `wb` elements, so im2col and
/// col2im copy whole rows, with no bounds to work out per row. Positions outside the
/// image read the zeros (im2col) or write into them and are dropped (col2im).
#[derive(Clone, Debug)]
struct PaddedPhases {
    y: AxisTaps,
    x: AxisTaps,
}

impl PaddedPhases {
    fn new(geo: &ConvGeom) -> Self {
        Self {
            y: AxisTaps::new(geo.hb, geo.ha, geo.sh, geo.ph, geo.kh),
            x: AxisTaps::new(geo.wb, geo.wa, geo.sw, geo.pw, geo.kw),
        }
    }
    /// Elements of the whole buffer (all phases).
    fn len(&self) -> usize {
        self.y.s * self.x.s * self.y.len() * self.x.len()
    }
    /// Row stride inside one padded phase.
    fn stride(&self) -> usize {
        self.x.len()
    }
    /// Buffer offset of padded element `(r, c)` of phase `(py, px)`.
    fn at(&self, py: usize, px: usize, r: usize, c: usize) -> usize {
        ((py * self.x.s + px) * self.y.len() + r) * self.x.len() + c
    }
    /// Offset of the first element tap `(ky, kx)` reads for feature position (0, 0).
    fn tap_origin(&self, ky: usize, kx: usize) -> usize {
        let (py, r) = self.y.start(ky);
        let (px, c) = self.x.start(kx);
        self.at(py, px, r, c)
    }
    /// Calls `f(image, step, at, count)` once per row of the image and phase of that row:
    /// image elements `image + j * step` of the plane (`ha x wa`) sit at `at + j` of the
    /// buffer, for `j < count`. [`Self::load`] and [`Self::store`] copy along these runs.
    #[inline(always)]
    fn runs(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (h, w) = (self.y.n_in, self.x.n_in);
        let (sy, sx) = (self.y.s, self.x.s);
        for yy in 0..h {
            let (py, r) = (yy % sy, yy / sy + self.y.before);
            for px in 0..sx.min(w) {
                let at = self.at(py, px, r, self.x.before);
                f(yy * w + px, sx, at, (w - px).div_ceil(sx));
            }
        }
    }
    /// Writes image plane `plane` (`ha x wa`) into the phases; the padding is not touched.
    #[inline(always)]
    fn load<T: Elem>(&self, plane: &[T], buf: &mut [T]) {
        self.runs(|image, step, at, count| {
            let dst = &mut buf[at..][..count];
            if step == 1 {
                dst.copy_from_slice(&plane[image..][..count]);
            } else {
                for (d, &v) in dst.iter_mut().zip(plane[image..].iter().step_by(step)) {
                    *d = v;
                }
            }
        });
    }
    /// The inverse of [`Self::load`]: the image positions of the phases into `plane`,
    /// every element of which is written.
    #[inline(always)]
    fn store<T: Elem>(&self, buf: &[T], plane: &mut [MaybeUninit<T>]) {
        self.runs(|image, step, at, count| {
            let src = &buf[at..][..count];
            if step == 1 {
                write_copy(&mut plane[image..][..count], src);
            } else {
                for (d, &v) in plane[image..].iter_mut().step_by(step).zip(src) {
                    d.write(v);
                }
            }
        });
    }
}

multiversion!(
/// im2col of samples `n0 .. n0 + g` of `a` into `cols`, a `(ca*kh*kw, g*hb*wb)` row-major
/// matrix: `cols[(i, ky, kx), (s, yb, xb)] = a[n0 + s, i, yb*sh - ph + ky, xb*sw - pw + kx]`.
///
/// Each image plane is first copied into its zero-padded phases ([`PaddedPhases`]), so
/// that every row of `cols` is filled by `hb` contiguous copies of `wb` elements.
fn im2col<T: Elem>(geo: &ConvGeom, a: &[T], n0: usize, g: usize, cols: &mut [T]) = im2col_body;);

#[inline(always)]
fn im2col_body<T: Elem>(geo: &ConvGeom, a: &[T], n0: usize, g: usize, cols: &mut [T]) {
    let (wb, bp) = (geo.wb, geo.b_plane());
    let width = g * bp;
    let pp = PaddedPhases::new(geo);
    let stride = pp.stride();
    let mut buf = vec![T::ZERO; pp.len()];
    for s in 0..g {
        for i in 0..geo.ca {
            let plane = &a[((n0 + s) * geo.ca + i) * geo.a_plane()..][..geo.a_plane()];
            pp.load(plane, &mut buf);
            for ky in 0..geo.kh {
                for kx in 0..geo.kw {
                    let row = (i * geo.kh + ky) * geo.kw + kx;
                    let dst = &mut cols[row * width + s * bp..][..bp];
                    let origin = pp.tap_origin(ky, kx);
                    for (r, out) in dst.chunks_exact_mut(wb).enumerate() {
                        out.copy_from_slice(&buf[origin + r * stride..][..wb]);
                    }
                }
            }
        }
    }
}

multiversion!(
/// col2im: the `(ca*kh*kw, g*hb*wb)` matrix `cols` summed into samples `0 .. g` of
/// `a_out` (the adjoint of [`im2col`]); `a_out` holds exactly those `g` samples, every
/// element of which is written.
///
/// Each image plane is accumulated in its zero-padded phases ([`PaddedPhases`]): every
/// tap adds `hb` contiguous runs of `wb` elements (what lands in the padding lies outside
/// the image and is dropped); then the image positions are copied out once.
fn col2im<T: Elem>(geo: &ConvGeom, cols: &[T], g: usize, a_out: &mut [MaybeUninit<T>]) = col2im_body;);

#[inline(always)]
fn col2im_body<T: Elem>(geo: &ConvGeom, cols: &[T], g: usize, a_out: &mut [MaybeUninit<T>]) {
    let (wb, bp) = (geo.wb, geo.b_plane());
    let width = g * bp;
    let pp = PaddedPhases::new(geo);
    let stride = pp.stride();
    let mut buf = vec![T::ZERO; pp.len()];
    for s in 0..g {
        for i in 0..geo.ca {
            buf.fill(T::ZERO);
            for ky in 0..geo.kh {
                for kx in 0..geo.kw {
                    let row = (i * geo.kh + ky) * geo.kw + kx;
                    let src = &cols[row * width + s * bp..][..bp];
                    let origin = pp.tap_origin(ky, kx);
                    for (r, from) in src.chunks_exact(wb).enumerate() {
                        let dst = &mut buf[origin + r * stride..][..wb];
                        for (d, &v) in dst.iter_mut().zip(from) {
                            *d += v;
                        }
                    }
                }
            }
            let plane = &mut a_out[(s * geo.ca + i) * geo.a_plane()..][..geo.a_plane()];
            pp.store(&buf, plane);
        }
    }
}

/// Copies samples `n0 .. n0 + g` of a `(N, c, plane)` tensor into a `(c, g*plane)` matrix.
fn gather_channels_major<T: Elem>(
    src: &[T],
    c: usize,
    plane: usize,
    n0: usize,
    g: usize,
    dst: &mut [T],
) {
    for ch in 0..c {
        for s in 0..g {
            let from = &src[((n0 + s) * c + ch) * plane..][..plane];
            dst[(ch * g + s) * plane..][..plane].copy_from_slice(from);
        }
    }
}

/// The inverse of [`gather_channels_major`]: a `(c, g*plane)` matrix into `g` samples
/// (`dst` holds exactly those, every element of which is written).
fn scatter_channels_major<T: Elem>(
    src: &[T],
    c: usize,
    plane: usize,
    g: usize,
    dst: &mut [MaybeUninit<T>],
) {
    for ch in 0..c {
        for s in 0..g {
            write_copy(
                &mut dst[(s * c + ch) * plane..][..plane],
                &src[(ch * g + s) * plane..][..plane],
            );
        }
    }
}

/// The parallel layout of one call: `(threads, samples per task)`.
fn plan(geo: &ConvGeom) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    (threads, geo.group_size())
}

/// The gemm crate's parallelism for a GEMM run inside one task: single-threaded when the
/// batch alone keeps every thread busy, else spread over the pool.
fn inner_parallelism(n_tasks: usize, threads: usize) -> gemm::Parallelism {
    if n_tasks >= threads || threads == 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    }
}

/// `b = K * im2col(a)` per sample, plus `bias[j]` on every output of channel `j`.
///
/// `a`: `(N, ca, ha, wa)`, `k`: `(cb, ca*kh*kw)`, `bias`: `(cb)`, returns `(N, cb, hb, wb)`.
pub(crate) fn conv_forward<T: Elem>(
    geo: &ConvGeom,
    a: &[T],
    k: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    conv_forward_into(geo, a, k, bias, true, None).0
}

/// [`conv_forward`] (when `want_b`; else an empty vector is returned); when
/// `kernel_grad` is `Some(b_in)` it also returns `dk = sum_n b_in_n * im2col(a_n)^T`
/// (`(cb, ca*kh*kw)`), computed from the same im2col buffers.
///
/// The result does not depend on the thread count or on scheduling: the tasks (groups
/// of samples) are split into a fixed number of contiguous slots, each slot runs its
/// tasks in order into its own kernel-gradient buffer, and the buffers are summed in
/// slot order.
pub(crate) fn conv_forward_into<T: Elem>(
    geo: &ConvGeom,
    a: &[T],
    k: &[T],
    bias: Option<&[T]>,
    want_b: bool,
    kernel_grad: Option<&[T]>,
) -> (Vec<T>, Option<Vec<T>>) {
    let (threads, g) = plan(geo);
    // Without the forward output there is only the kernel gradient to balance against;
    // without the kernel gradient, only the forward output.
    let g = match (want_b, kernel_grad.is_some()) {
        (false, _) => geo.kernel_grad_group_size(),
        (true, false) => geo.group_size_without_kernel_grad(),
        (true, true) => g,
    };
    let rows = geo.rows();
    let bp = geo.b_plane();
    let (n_tasks, task_start) = split_tasks(geo.n, g);
    let b_in = kernel_grad;
    let want_dk = b_in.is_some();
    // Slots: one per task without a kernel gradient (tasks are then independent), else
    // at most MAX_DK_SLOTS, the tasks spread over them as evenly as they go (sizes differ
    // by at most one), so that no thread is left with a whole slot more than the other:
    // 50 tasks as 7 slots of 7 and one of 1 kept one of two threads busy for 28 tasks.
    let n_slots = if want_dk {
        let k_bytes = (geo.k_len() * std::mem::size_of::<T>()).max(1);
        let slots = (1 + DK_SLOT_BYTES / k_bytes).clamp(1, MAX_DK_SLOTS);
        slots.min(n_tasks).max(1)
    } else {
        n_tasks.max(1)
    };
    // First task of slot `slot` (`slot <= n_slots`).
    let slot_start = |slot: usize| slot * n_tasks / n_slots;
    let par = inner_parallelism(n_slots, threads);
    // Where the batch has many feature-side positions per output channel, every slot
    // accumulates into its own buffer, column-major `(cb, rows)`: with that destination
    // the gemm crate packs the small `(cb, width)` gradient block as its left operand and
    // reads the im2col buffer in place, where a row-major destination makes it
    // transpose-pack the whole `(rows, width)` im2col buffer on every call. The buffers
    // are then summed and transposed once, which costs more than it saves where the
    // kernel is large beside the batch (the full-width encoder's last layers). Else the
    // buffers are row-major and slot 0's becomes the result. The choice depends on the
    // shapes alone.
    let dk_col_major = geo.kernel_grad_column_major();
    let (dk_rs, dk_cs) = if dk_col_major { (1, geo.cb) } else { (rows, 1) };
    // Every slot allocates and zeroes its own buffer inside its parallel task: done up
    // front, 8 slots of a 2 MB gradient were 16 MB of serial `memset` while the other
    // thread waited (about 5 % of the width-4 step at batch 25).
    let dk_own: Vec<Mutex<Vec<T>>> = if want_dk {
        (0..n_slots).map(|_| Mutex::new(Vec::new())).collect()
    } else {
        Vec::new()
    };
    let scratch = Pool::<T>::new();
    let sample_b = geo.cb * bp;
    // `b_chunk`: exactly the `gs` samples of the task, every element of which is written.
    let work = |task: usize, b_chunk: Option<&mut [MaybeUninit<T>]>, dk: Option<&mut [T]>| {
        let n0 = task_start(task);
        let gs = task_start(task + 1) - n0;
        let width = gs * bp;
        let mut cols = scratch.take(rows * width);
        im2col(geo, a, n0, gs, &mut cols);
        if let Some(b_chunk) = b_chunk {
            if gs == 1 {
                gemm_rm_into(
                    geo.cb, width, rows, b_chunk, width, 1, k, rows, 1, &cols, width, 1, par,
                );
            } else {
                let mut tmp = scratch.take(geo.cb * width);
                gemm_rm(
                    geo.cb, width, rows, &mut tmp, width, 1, false, k, rows, 1, &cols, width, 1,
                    par,
                );
                scatter_channels_major(&tmp, geo.cb, bp, gs, b_chunk);
                scratch.give(tmp);
            }
            // SAFETY: the product (one sample, `cb x bp`) or the scatter (`gs` samples)
            // wrote every element of the chunk.
            let b_chunk = unsafe { assume_init(b_chunk) };
            add_bias(bias, b_chunk, geo.cb, bp, gs);
        }
        if let (Some(b_in), Some(dk)) = (b_in, dk) {
            // dk (cb, rows) += b_g (cb, width) * cols^T (width, rows)
            if gs == 1 {
                let b_g = &b_in[n0 * geo.cb * bp..][..geo.cb * bp];
                gemm_rm(
                    geo.cb, rows, width, dk, dk_rs, dk_cs, true, b_g, width, 1, &cols, 1, width,
                    par,
                );
            } else {
                let mut tmp = scratch.take(geo.cb * width);
                gather_channels_major(b_in, geo.cb, bp, n0, gs, &mut tmp);
                gemm_rm(
                    geo.cb, rows, width, dk, dk_rs, dk_cs, true, &tmp, width, 1, &cols, 1, width,
                    par,
                );
                scratch.give(tmp);
            }
        }
        scratch.give(cols);
    };
    // Runs the tasks of slot `slot` in order (writing their outputs into `b_slot`).
    let run_slot = |slot: usize, mut b_slot: Option<&mut [MaybeUninit<T>]>| {
        let mut guard = dk_own
            .get(slot)
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        let mut dk: Option<&mut [T]> = guard.as_deref_mut().map(|v| {
            *v = vec![T::ZERO; geo.k_len()];
            v.as_mut_slice()
        });
        let first = task_start(slot_start(slot));
        for task in slot_start(slot)..slot_start(slot + 1) {
            let b_chunk = b_slot.as_deref_mut().map(|b| {
                let off = (task_start(task) - first) * sample_b;
                &mut b[off..(task_start(task + 1) - first) * sample_b]
            });
            work(task, b_chunk, dk.as_deref_mut());
        }
    };
    let b_out = if want_b {
        // SAFETY: slot `slot` holds the outputs of its tasks, and `work` writes every
        // element of each task's chunk.
        unsafe {
            par_build_at(
                geo.b_len(),
                n_slots,
                |slot| task_start(slot_start(slot)) * sample_b,
                |slot, b_slot| run_slot(slot, Some(b_slot)),
            )
        }
    } else {
        (0..n_slots)
            .into_par_iter()
            .for_each(|slot| run_slot(slot, None));
        Vec::new()
    };
    let mut dk_own: Vec<Vec<T>> = dk_own
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    let dk = if !want_dk {
        None
    } else if dk_col_major {
        Some(sum_transposed_in_order(dk_own, geo.cb, rows))
    } else {
        let mut dk = dk_own.remove(0);
        add_in_order(&mut dk, &dk_own);
        Some(dk)
    };
    (b_out, dk)
}

/// A vector of `len` elements built in parallel: `fill(chunk_index, chunk)` writes every
/// element of its chunk of `chunk` elements (the last may be shorter), so that neither the
/// writing nor the first touch of fresh pages runs serially. Nothing is zeroed first
/// (that was over half of the `memset` time of a training step): in release builds the
/// chunks reach `fill` uninitialised. Debug builds (the tests) first write
/// [`Elem::UNWRITTEN`] everywhere and panic if any element still holds it afterwards.
///
/// # Safety
/// `fill` must initialise every element of the chunk it is given.
pub(crate) unsafe fn par_build<T: Elem>(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    let chunk = chunk.max(1);
    // SAFETY: the caller's contract, for chunks `chunk` long (the last shorter).
    unsafe { par_build_at(len, len.div_ceil(chunk), |i| (i * chunk).min(len), fill) }
}

/// [`par_build`] with chunks of varying lengths: chunk `i` (of `chunks`) holds elements
/// `start(i) .. start(i + 1)`, where `start(0) = 0`, `start(chunks) = len` and `start`
/// does not decrease.
///
/// # Safety
/// `fill` must initialise every element of the chunk it is given.
pub(crate) unsafe fn par_build_at<T: Elem>(
    len: usize,
    chunks: usize,
    start: impl Fn(usize) -> usize + Sync,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    assert!(
        start(0) == 0 && start(chunks) == len,
        "par_build_at: chunks must cover 0 .. len"
    );
    let mut v: Vec<T> = Vec::with_capacity(len);
    let mut parts: Vec<&mut [MaybeUninit<T>]> = Vec::with_capacity(chunks);
    let mut rest = &mut v.spare_capacity_mut()[..len];
    for i in 0..chunks {
        let (part, tail) = rest.split_at_mut(start(i + 1) - start(i));
        parts.push(part);
        rest = tail;
    }
    parts.into_par_iter().enumerate().for_each(|(i, c)| {
        if cfg!(debug_assertions) {
            for x in c.iter_mut() {
                x.write(T::UNWRITTEN);
            }
        }
        fill(i, c);
    });
    // SAFETY: the chunks cover all `len` elements, and the caller's `fill` initialised
    // every element of each.
    unsafe { v.set_len(len) };
    if cfg!(debug_assertions) {
        let missed = v.iter().filter(|x| x.is_unwritten()).count();
        assert!(
            missed == 0,
            "par_build: the fill left {missed} of {len} elements unwritten"
        );
    }
    v
}

/// `a = col2im(K^T * b_n)` per sample: the adjoint of [`conv_forward`] (a transposed
/// convolution's forward pass, or a convolution's input gradient), plus `bias[i]` on
/// every output of channel `i` of `a`.
///
/// `b`: `(N, cb, hb, wb)`, `k`: `(cb, ca*kh*kw)`, `bias`: `(ca)`, returns `(N, ca, ha, wa)`.
pub(crate) fn conv_adjoint<T: Elem>(
    geo: &ConvGeom,
    b: &[T],
    k: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    let threads = rayon::current_num_threads().max(1);
    let g = geo.group_size_without_kernel_grad();
    let rows = geo.rows();
    let bp = geo.b_plane();
    let (n_tasks, task_start) = split_tasks(geo.n, g);
    let par = inner_parallelism(n_tasks, threads);
    let scratch = Pool::<T>::new();
    let fill = |task: usize, a_chunk: &mut [MaybeUninit<T>]| {
        let n0 = task_start(task);
        let gs = task_start(task + 1) - n0;
        let width = gs * bp;
        let mut cols = scratch.take(rows * width);
        // cols (rows, width) = K^T (rows, cb) * b_g (cb, width)
        if gs == 1 {
            let b_g = &b[n0 * geo.cb * bp..][..geo.cb * bp];
            gemm_rm(
                rows, width, geo.cb, &mut cols, width, 1, false, k, 1, rows, b_g, width, 1, par,
            );
        } else {
            let mut tmp = scratch.take(geo.cb * width);
            gather_channels_major(b, geo.cb, bp, n0, gs, &mut tmp);
            gemm_rm(
                rows, width, geo.cb, &mut cols, width, 1, false, k, 1, rows, &tmp, width, 1, par,
            );
            scratch.give(tmp);
        }
        col2im(geo, &cols, gs, a_chunk);
        // SAFETY: `col2im` wrote every element.
        let a_chunk = unsafe { assume_init(a_chunk) };
        add_bias(bias, a_chunk, geo.ca, geo.a_plane(), gs);
        scratch.give(cols);
    };
    let sample_a = geo.ca * geo.a_plane();
    // SAFETY: `fill` writes every element of its task's `gs` samples, which are exactly
    // its chunk.
    unsafe { par_build_at(geo.a_len(), n_tasks, |t| task_start(t) * sample_a, fill) }
}

/// `dk = sum_n b_n * im2col(a_n)^T`: the gradient of [`conv_forward`] with respect to its
/// kernel matrix, given the image side `a` and the gradient `b` of the feature side.
///
/// `a`: `(N, ca, ha, wa)`, `b`: `(N, cb, hb, wb)`, returns `(cb, ca*kh*kw)`.
pub(crate) fn conv_kernel_grad<T: Elem>(geo: &ConvGeom, a: &[T], b: &[T]) -> Vec<T> {
    let (_, dk) = conv_forward_into(geo, a, &[], None, false, Some(b));
    dk.unwrap_or_else(|| unreachable!("a kernel gradient was asked for"))
}

/// Adds `bias[c]` to every element of channel `c` of `g` samples of shape `(c, plane)`.
fn add_bias<T: Elem>(bias: Option<&[T]>, x: &mut [T], c: usize, plane: usize, g: usize) {
    if let Some(bias) = bias {
        add_bias_mv(bias, x, c, plane, g);
    }
}

multiversion!(fn add_bias_mv<T: Elem>(bias: &[T], x: &mut [T], c: usize, plane: usize, g: usize) = add_bias_body;);

#[inline(always)]
fn add_bias_body<T: Elem>(bias: &[T], x: &mut [T], c: usize, plane: usize, g: usize) {
    for s in 0..g {
        for (ch, &bv) in bias.iter().enumerate().take(c) {
            for v in &mut x[(s * c + ch) * plane..][..plane] {
                *v += bv;
            }
        }
    }
}

/// `dst += parts[0]; dst += parts[1]; ...`: every element summed in the order of `parts`
/// (in parallel over elements).
fn add_in_order<T: Elem>(dst: &mut [T], parts: &[Vec<T>]) {
    if parts.is_empty() {
        return;
    }
    dst.par_chunks_mut(1 << 14).enumerate().for_each(|(i, d)| {
        for part in parts {
            for (d, &p) in d.iter_mut().zip(&part[i << 14..]) {
                *d += p;
            }
        }
    });
}

/// `parts[0] + parts[1] + ...` summed in that order, as an `(r, c)` row-major matrix,
/// every part being the same matrix column-major: the parts are summed into the first
/// one ([`add_in_order`]), which is then transposed into a new matrix in 16 x 16 tiles
/// (in parallel over blocks of 16 rows of the result).
fn sum_transposed_in_order<T: Elem>(mut parts: Vec<Vec<T>>, r: usize, c: usize) -> Vec<T> {
    const TILE: usize = 16;
    if parts.is_empty() || c == 0 {
        return vec![T::ZERO; r * c];
    }
    let mut acc = parts.remove(0);
    add_in_order(&mut acc, &parts);
    let fill = |b: usize, d: &mut [MaybeUninit<T>]| {
        let (r0, nr) = (b * TILE, d.len() / c);
        for j0 in (0..c).step_by(TILE) {
            for j in j0..(j0 + TILE).min(c) {
                let col = &acc[j * r + r0..][..nr];
                for (i, &v) in col.iter().enumerate() {
                    d[i * c + j].write(v);
                }
            }
        }
    };
    // SAFETY: chunk `b` holds rows `16 b ..` of the result, all `c` columns of which the
    // fill writes.
    unsafe { par_build(r * c, TILE * c, fill) }
}

/// Per-channel sums of a `(N, c, plane)` tensor: `out[ch] = sum_{n, p} x[n, ch, p]`
/// (accumulated in f64).
pub(crate) fn channel_sums<T: Elem>(x: &[T], n: usize, c: usize, plane: usize) -> Vec<T> {
    (0..c)
        .into_par_iter()
        .map(|ch| T::of_f64(channel_sum(x, n, c, plane, ch)))
        .collect()
}

multiversion!(fn channel_sum<T: Elem>(x: &[T], n: usize, c: usize, plane: usize, ch: usize) -> f64 = channel_sum_body;);

#[inline(always)]
fn channel_sum_body<T: Elem>(x: &[T], n: usize, c: usize, plane: usize, ch: usize) -> f64 {
    let mut acc = 0f64;
    for s in 0..n {
        acc += sum_f64(&x[(s * c + ch) * plane..][..plane]);
    }
    acc
}

/// The sum of `x` in f64 with eight independent accumulators (vectorisable).
#[inline(always)]
pub(crate) fn sum_f64<T: Elem>(x: &[T]) -> f64 {
    let mut lanes = [0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += v.as_f64();
        }
    }
    let mut total: f64 = lanes.iter().sum();
    for &v in chunks.remainder() {
        total += v.as_f64();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scratch_pool_reuses_the_best_fit_and_stays_bounded() {
        // A list of its own: the process-wide ones are in use by parallel tests.
        let pool = Pool::<f32> {
            free: Box::leak(Box::new(Mutex::new(Vec::new()))),
        };
        let mut a = pool.take(100);
        a[0] = 7.0;
        pool.give(a);
        pool.give(Vec::with_capacity(1000));
        // The smallest buffer that fits, with its content kept.
        let b = pool.take(50);
        assert_eq!((b.len(), b.capacity(), b[0]), (50, 100, 7.0));
        // Nothing fits: a new zeroed buffer, the kept one stays.
        let c = pool.take(5000);
        assert!(c.iter().all(|&v| v == 0.0));
        assert_eq!(pool.free.lock().unwrap().len(), 1);
        for n in 1..=12 {
            pool.give(Vec::with_capacity(n * 10_000));
        }
        let kept: Vec<usize> = pool
            .free
            .lock()
            .unwrap()
            .iter()
            .map(|v| v.capacity())
            .collect();
        assert_eq!(kept.len(), SCRATCH_KEPT);
        assert_eq!(kept[0], 120_000, "the largest are kept");
        // Past the byte budget only what fits in it stays.
        pool.give(Vec::with_capacity(SCRATCH_KEPT_BYTES / 4 - 100_000));
        let bytes: usize = pool
            .free
            .lock()
            .unwrap()
            .iter()
            .map(|v| v.capacity() * 4)
            .sum();
        assert!(bytes <= SCRATCH_KEPT_BYTES, "{bytes} bytes kept");
        assert_eq!(
            pool.free.lock().unwrap()[0].capacity(),
            SCRATCH_KEPT_BYTES / 4 - 100_000
        );
    }

    /// Geometries with odd sizes, strides 1 to 3, padding wider than the kernel's reach
    /// and outputs larger or smaller than the input allows.
    fn geometries() -> Vec<ConvGeom> {
        let mut out = Vec::new();
        for (ha, wa) in [(7, 6), (4, 4), (1, 3), (28, 28)] {
            for s in 1..4 {
                for p in 0..4 {
                    for (kh, kw) in [(4, 4), (3, 2), (1, 1), (5, 3)] {
                        let (hp, wp) = (ha + 2 * p, wa + 2 * p);
                        if hp < kh || wp < kw {
                            continue;
                        }
                        out.push(ConvGeom {
                            n: 2,
                            ca: 2,
                            ha,
                            wa,
                            cb: 1,
                            hb: (hp - kh) / s + 1,
                            wb: (wp - kw) / s + 1,
                            kh,
                            kw,
                            sh: s,
                            sw: s,
                            ph: p,
                            pw: p,
                        });
                    }
                }
            }
        }
        out
    }

    /// The image element tap `(ky, kx)` of feature position `(yb, xb)` reads, if inside.
    fn source(geo: &ConvGeom, yb: usize, xb: usize, ky: usize, kx: usize) -> Option<usize> {
        let y = (yb * geo.sh + ky) as isize - geo.ph as isize;
        let x = (xb * geo.sw + kx) as isize - geo.pw as isize;
        let inside = y >= 0 && x >= 0 && (y as usize) < geo.ha && (x as usize) < geo.wa;
        inside.then(|| y as usize * geo.wa + x as usize)
    }

    /// Kernel-gradient-only calls: an even number of tasks (for two threads), each
    /// within the im2col budget, covering the batch; wide where the forward pass's
    /// tasks are thin.
    #[test]
    fn kernel_grad_tasks_are_few_even_and_fit_the_cache_budget() {
        let enc = |n: usize, ca: usize, cb: usize, ha: usize, hb: usize| {
            ConvGeom::dcgan(n, ca, ha, cb, hb)
        };
        for n in [1, 3, 25, 100, 101, 400] {
            for geo in [
                enc(n, 32, 64, 14, 7),
                enc(n, 128, 256, 4, 2),
                enc(n, 128, 256, 14, 7),
                enc(n, 512, 1024, 4, 2),
            ] {
                let g = geo.kernel_grad_group_size();
                let tasks = n.div_ceil(g);
                let per_sample = geo.rows() * geo.b_plane();
                assert!(
                    g * per_sample <= GROUP_TARGET_ELEMS.max(per_sample),
                    "{geo:?}"
                );
                assert!(tasks * g >= n && (tasks - 1) * g < n, "{geo:?}");
                // The bench's batches split evenly.
                if [25, 100, 400].contains(&n) {
                    assert_eq!(tasks % KERNEL_GRAD_TASKS, 0, "{geo:?}: {tasks} tasks");
                }
            }
        }
        // The width-4 encoder's last layer at batch 100: two tasks of 50 samples, where
        // the forward sizing has eight of 13.
        let last = enc(100, 128, 256, 4, 2);
        assert_eq!((last.group_size(), last.kernel_grad_group_size()), (13, 50));
    }

    /// The batch splits into an even number of tasks (where it has the samples), each
    /// of at most `g` samples, sizes one apart, covering every sample once in order; and
    /// `par_build_at` hands out exactly the chunks it is asked for.
    #[test]
    fn tasks_are_even_and_balanced() {
        for n in 0..130 {
            for g in 1..20 {
                let (tasks, start) = split_tasks(n, g);
                assert_eq!(start(0), 0, "n {n} g {g}");
                assert_eq!(start(tasks), n, "n {n} g {g}");
                assert!(
                    tasks % 2 == 0 || tasks >= n,
                    "odd count {tasks} for n {n} g {g}"
                );
                assert!(tasks <= n.div_ceil(g) + 1, "n {n} g {g}: {tasks} tasks");
                let sizes: Vec<usize> = (0..tasks).map(|t| start(t + 1) - start(t)).collect();
                let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
                if let (Some(&lo), Some(&hi)) = (lo, hi) {
                    assert!(hi <= g && hi - lo <= 1 && lo >= 1, "n {n} g {g}: {sizes:?}");
                }
            }
        }
        // The width-4 decoder's first layer at batch 100: 17 tasks of up to 6 became 18.
        let (tasks, start) = split_tasks(100, 6);
        assert_eq!((tasks, start(1), start(2)), (18, 5, 11));
        let bounds = [0usize, 3, 3, 10, 12];
        // SAFETY: the fill writes every element of its chunk.
        let v: Vec<f32> = unsafe {
            par_build_at(
                12,
                4,
                |i| bounds[i],
                |i, c| {
                    assert_eq!(c.len(), bounds[i + 1] - bounds[i]);
                    for x in c.iter_mut() {
                        x.write(i as f32);
                    }
                },
            )
        };
        assert_eq!(v, [0., 0., 0., 2., 2., 2., 2., 2., 2., 2., 3., 3.]);
    }

    /// Calls without a kernel gradient take the wide tasks where the kernel matrix
    /// outgrows one task's im2col buffer (the full-width encoder's last two layers, the
    /// width-4 encoder's last), and the forward sizing elsewhere (the width-4 encoder's
    /// first layers, the width-4 decoder's transposed convolutions, whose `a` side is
    /// their output).
    #[test]
    fn calls_without_kernel_gradient_go_wide_where_the_kernel_is_large() {
        let layer =
            |ca: usize, cb: usize, ha: usize, hb: usize| ConvGeom::dcgan(100, ca, ha, cb, hb);
        for (geo, wide) in [
            (layer(512, 1024, 4, 2), true),
            (layer(256, 512, 7, 4), true),
            (layer(128, 256, 4, 2), true),
            (layer(32, 64, 14, 7), false),
            (layer(64, 128, 7, 4), false),
            (layer(128, 256, 14, 7), false),
            (layer(64, 128, 28, 14), false),
        ] {
            let expected = if wide {
                geo.kernel_grad_group_size()
            } else {
                geo.group_size()
            };
            assert_eq!(geo.group_size_without_kernel_grad(), expected, "{geo:?}");
            assert!(
                !wide || geo.kernel_grad_group_size() > geo.group_size(),
                "{geo:?}: the wide sizing is the wider"
            );
        }
        // The full-width encoder's last layer: two tasks of 50 samples, not eight of 13.
        assert_eq!(layer(512, 1024, 4, 2).group_size_without_kernel_grad(), 50);
    }

    /// im2col and col2im against their definitions, element by element (col2im summing
    /// in the same tap order, so bit for bit).
    #[test]
    fn im2col_and_col2im_match_their_definitions() {
        for geo in geometries() {
            let (bp, ap) = (geo.b_plane(), geo.a_plane());
            let (n0, g) = (1, 1);
            let a: Vec<f64> = (0..geo.a_len()).map(|v| v as f64 + 1.0).collect();
            let width = g * bp;
            let mut cols = vec![f64::NAN; geo.rows() * width];
            im2col(&geo, &a, n0, g, &mut cols);
            let c: Vec<f64> = (0..cols.len())
                .map(|v| (v % 97) as f64 * 0.25 - 3.0)
                .collect();
            let mut back = vec![MaybeUninit::new(f64::UNWRITTEN); g * geo.ca * ap];
            col2im(&geo, &c, g, &mut back);
            // SAFETY: every element was initialised (to `UNWRITTEN`) when `back` was made.
            let back: Vec<f64> = back.iter().map(|v| unsafe { v.assume_init() }).collect();
            assert!(
                !back.iter().any(|v| v.is_unwritten()),
                "col2im left elements unwritten"
            );
            let mut want_back = vec![0.0; back.len()];
            for i in 0..geo.ca {
                for ky in 0..geo.kh {
                    for kx in 0..geo.kw {
                        let row = (i * geo.kh + ky) * geo.kw + kx;
                        for yb in 0..geo.hb {
                            for xb in 0..geo.wb {
                                let col = yb * geo.wb + xb;
                                let got = cols[row * width + col];
                                match source(&geo, yb, xb, ky, kx) {
                                    Some(at) => {
                                        assert_eq!(got, a[(n0 * geo.ca + i) * ap + at], "{geo:?}");
                                        want_back[i * ap + at] += c[row * width + col];
                                    }
                                    None => assert_eq!(got, 0.0, "{geo:?}"),
                                }
                            }
                        }
                    }
                }
            }
            assert_eq!(back, want_back, "{geo:?}");
        }
    }

    /// `<conv_forward(a), b> == <a, conv_adjoint(b)>` and the kernel gradient is the
    /// derivative of `<conv_forward(a), b>` with respect to `K`; on one geometry whose
    /// kernel gradient accumulates column-major (`n * hb * wb >= 4 * cb`) and one that
    /// accumulates row-major.
    #[test]
    fn adjoint_and_kernel_grad_are_consistent() {
        let long_batch = ConvGeom {
            n: 3,
            ca: 2,
            ha: 7,
            wa: 6,
            cb: 3,
            hb: 4,
            wb: 3,
            kh: 3,
            kw: 2,
            sh: 2,
            sw: 2,
            ph: 1,
            pw: 0,
        };
        let wide_kernel = ConvGeom::dcgan(2, 3, 4, 9, 2);
        assert!(long_batch.kernel_grad_column_major());
        assert!(!wide_kernel.kernel_grad_column_major());
        for geo in [long_batch, wide_kernel] {
            check_adjoint_and_kernel_grad(&geo);
        }
    }

    fn check_adjoint_and_kernel_grad(geo: &ConvGeom) {
        let geo = *geo;
        let fill = |len: usize, seed: u64| -> Vec<f64> {
            let mut state = seed;
            (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
                })
                .collect()
        };
        let a = fill(geo.a_len(), 1);
        let b = fill(geo.b_len(), 2);
        let k = fill(geo.k_len(), 3);
        let fa = conv_forward(&geo, &a, &k, None);
        let adj = conv_adjoint(&geo, &b, &k, None);
        let lhs: f64 = fa.iter().zip(&b).map(|(x, y)| x * y).sum();
        let rhs: f64 = a.iter().zip(&adj).map(|(x, y)| x * y).sum();
        assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
        // <conv(a; K), b> is linear in K, so its gradient is exact: <dK, K'> = <conv(a; K'), b>.
        let dk = conv_kernel_grad(&geo, &a, &b);
        let k2 = fill(geo.k_len(), 4);
        let lhs: f64 = dk.iter().zip(&k2).map(|(x, y)| x * y).sum();
        let rhs: f64 = conv_forward(&geo, &a, &k2, None)
            .iter()
            .zip(&b)
            .map(|(x, y)| x * y)
            .sum();
        assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
    }
}
