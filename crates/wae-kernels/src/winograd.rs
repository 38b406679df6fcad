//! Winograd F(2x2, 2x2) for the DCGAN up-sampling layer: a transposed convolution with a
//! 4x4 kernel, stride 2 and padding 1 that maps `(H, W)` to `(2H, 2W)`.
//!
//! # Why it applies
//! Such a layer splits into four phases: output pixel `(2m + py, 2n + px)` only sees a
//! 2x2 window of the input and a 2x2 sub-kernel. Along one axis (input `x`, kernel
//! `w0..w3`): `y[2m] = x[m-1] w3 + x[m] w1` and `y[2m+1] = x[m] w2 + x[m+1] w0`, i.e.
//! each phase is a 2-tap correlation. Winograd's minimal filtering F(2, 2) computes two
//! outputs of a 2-tap correlation with 3 multiplications instead of 4; in 2-d, 9
//! instead of 16 per 2x2 output tile. With `d` the 3-wide input window and `g` the taps:
//!
//! ```text
//! B^T d = [d0 - d1, d1, d2 - d1]      G g = [g0, g0 + g1, g1]
//! y = A^T m = [m0 + m1, m1 + m2]      with m = (G g) * (B^T d)
//! ```
//!
//! All entries are 0 and +-1, so the transforms add no rounding beyond the sums. In 2-d
//! `V = B^T d B`, `U = G g G^T`, `Y = A^T (U * V) A`, and the products over input
//! channels become 36 GEMMs (4 phases x 9 transform points) of `(C_out x C_in)` times
//! `(C_in x tiles)`.
//!
//! The input gradient is the same structure run backwards (each input pixel gathers
//! 2x2 windows of the four output phases, summed), so it is 9 GEMMs with the four
//! phases stacked along K; the weight gradient is `dg = G^T [(A z A^T) * (B^T d B)] G`
//! summed over tiles (`z` a 2x2 tile of the output gradient): 36 GEMMs whose K runs
//! over tiles.
//!
//! Work is done in groups of samples (about [`TARGET_TILES`] tiles); within a group the
//! transforms run in parallel over planes and the GEMMs in parallel over
//! (phase, point) pairs. Each transform is a few flat loops over all tiles of a plane
//! at once (see [`PlaneScratch`]), not loops over one tile row: a row has only 4 or 7
//! tiles on the MNIST networks, too few for 8-wide vectors.

use rayon::prelude::*;

use crate::cpu::{ConvGeom, Elem, Pool, Shared, gemm_rm, gemm_rm_into};
use crate::simd::multiversion;

/// Tiles (GEMM columns) per group of samples.
const TARGET_TILES: usize = 256;
/// Transform points of F(2, 2) along one axis.
const ALPHA: usize = 3;
/// Transform points in 2-d.
const POINTS: usize = ALPHA * ALPHA;
/// Phases of a stride-2 transposed convolution in 2-d.
const PHASES: usize = 4;
/// Row blocks each of the nine input-gradient products is split into.
const DX_PARTS: usize = 4;

/// Kernel index of tap `a` of phase `p` (forward and weight gradient), per axis.
const KMAP: [[usize; 2]; 2] = [[3, 1], [2, 0]];
/// First input row / column of a phase's window, relative to `2 * tile` (forward).
const OFF: [isize; 2] = [-1, 0];
/// Kernel index of tap `a` of phase `p` for the input gradient, per axis.
const KMAP_T: [[usize; 2]; 2] = [[1, 3], [0, 2]];
/// First gradient row / column of a phase's window (input gradient).
const OFF_T: [isize; 2] = [0, -1];

/// Whether `geo` (a transposed convolution: `b` = its input, `a` = its output) is the
/// 4x4, stride 2, padding 1, exact `(2H, 2W)` layer this module handles.
pub(crate) fn applies(geo: &ConvGeom) -> bool {
    geo.kh == 4
        && geo.kw == 4
        && geo.sh == 2
        && geo.sw == 2
        && geo.ph == 1
        && geo.pw == 1
        && geo.ha == 2 * geo.hb
        && geo.wa == 2 * geo.wb
        && geo.hb > 0
        && geo.wb > 0
}

/// Whether the layer `geo` runs here: it [`applies`] and the process-wide
/// [`crate::WinogradMode`] asks for it ([`worthwhile`] under `Auto`).
pub(crate) fn chosen(geo: &ConvGeom) -> bool {
    applies(geo)
        && match crate::winograd_mode() {
            crate::WinogradMode::Always => true,
            crate::WinogradMode::Never => false,
            crate::WinogradMode::Auto => worthwhile(geo),
        }
}

/// Whether Winograd is expected to beat GEMM + col2im on `geo` (which [`applies`]).
///
/// Winograd does `ratio = 9 * tiles / (4 * h * w)` of the direct multiply-adds (0.5625
/// for even sizes, more for odd ones, whose edge tiles are half empty). Its transforms
/// cost time in proportion to the data, `(c_in + c_out)` planes, while the saving grows
/// with `c_in * c_out`; and every plane has a fixed overhead that small planes do not
/// amortise. The rule is
///
/// `score = (1 - ratio) / ratio * c_in * c_out / (c_in + c_out) * min(tiles, 100)`
///
/// above a threshold that depends on the GEMM it competes with, fitted to measurements of
/// forward + backward, batch 100, f32 (`layer_timing --convt=CI,CO,H`,
/// `docs/performance.md`):
///
/// - **1100 where the gemm crate runs AVX2 kernels** (no AVX-512), from the 2-core AMD
///   EPYC: Winograd won on 1024->512 at 7x7 (score 1970), 128->64 at 14x14 and 16x16
///   (1630, 2130), 64->64 and 96->48 at 14x14 (1220) and 64->32 at 32x32 (1660); it tied
///   or lost on 256->128 at 8x8 (1060), 512->256 and 256->128 at 7x7 (980, 490), 64->32
///   at 14x14 (810) and smaller layers.
/// - **1800 where it runs AVX-512 kernels**, which makes the GEMM path about 1.5x faster
///   while the transforms (memory-bound loops) gain nothing, from the 2-core Intel Xeon
///   (2026-12-07, seconds GEMM / Winograd): Winograd won on 512->256 at 14x14 (score 6500,
///   1.08 / 0.97), 256->128 at 14x14 (3250, 0.300 / 0.279) and 1024->512 at 7x7 (1970,
///   1.24 / 1.17); it lost on 64->32 at 32x32 (1660, 0.171 / 0.228), 128->64 at 14x14
///   (1630, 0.105 / 0.121), 512->256 at 7x7 (990, 0.288 / 0.352) and 256->128 at 7x7
///   (490, 0.087 / 0.118).
fn worthwhile(geo: &ConvGeom) -> bool {
    score(geo) >= threshold(gemm_has_avx512())
}

/// The `score` of [`worthwhile`].
fn score(geo: &ConvGeom) -> f64 {
    let d = Dims::new(geo);
    let ratio = (9 * d.tiles) as f64 / (4 * d.h * d.w) as f64;
    let (ci, co) = (d.ci as f64, d.co as f64);
    (1.0 - ratio) / ratio * ci * co / (ci + co) * d.tiles.min(100) as f64
}

/// The score above which Winograd pays off, against AVX-512 or AVX2 GEMM kernels.
fn threshold(gemm_avx512: bool) -> f64 {
    if gemm_avx512 { 1800.0 } else { 1100.0 }
}

/// Whether the gemm crate runs its AVX-512 kernels here (built in with its `x86-v4`
/// feature, picked at run time when the CPU has AVX-512 F).
fn gemm_has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Sizes of one layer in this module's terms.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    /// Input channels of the transposed convolution.
    ci: usize,
    /// Output channels.
    co: usize,
    /// Input height and width (each phase plane of the output has this size too).
    h: usize,
    w: usize,
    /// Tiles per plane along each axis and in all.
    th: usize,
    tw: usize,
    tiles: usize,
}

impl Dims {
    fn new(geo: &ConvGeom) -> Self {
        let (th, tw) = (geo.hb.div_ceil(2), geo.wb.div_ceil(2));
        Self {
            n: geo.n,
            ci: geo.cb,
            co: geo.ca,
            h: geo.hb,
            w: geo.wb,
            th,
            tw,
            tiles: th * tw,
        }
    }
    /// Samples per group.
    fn group(&self) -> usize {
        TARGET_TILES.div_ceil(self.tiles).clamp(1, self.n.max(1))
    }
}

/// `G g G^T` (3x3) of a 2x2 sub-kernel: the definition [`kernel_transform_rows`] is
/// tested against.
#[cfg(test)]
fn kernel_transform<T: Elem>(g: [[T; 2]; 2]) -> [T; POINTS] {
    let gv = |a: T, b: T| [a, a + b, b];
    let rows = [gv(g[0][0], g[0][1]), gv(g[1][0], g[1][1])];
    let mut u = [T::ZERO; POINTS];
    for j in 0..ALPHA {
        let col = gv(rows[0][j], rows[1][j]);
        for i in 0..ALPHA {
            u[i * ALPHA + j] = col[i];
        }
    }
    u
}

/// `G^T u G` (2x2) of a 3x3 point tile (the weight-gradient inverse transform): the
/// definition [`kernel_grad_transform_rows`] is tested against.
#[cfg(test)]
fn kernel_grad_transform<T: Elem>(u: &[T; POINTS]) -> [[T; 2]; 2] {
    let gt = |a: T, b: T, c: T| [a + b, b + c];
    let mut rows = [[T::ZERO; 2]; ALPHA];
    for (i, r) in rows.iter_mut().enumerate() {
        *r = gt(u[i * ALPHA], u[i * ALPHA + 1], u[i * ALPHA + 2]);
    }
    let c0 = gt(rows[0][0], rows[1][0], rows[2][0]);
    let c1 = gt(rows[0][1], rows[1][1], rows[2][1]);
    [[c0[0], c1[0]], [c0[1], c1[1]]]
}

/// `kernel_grad_transform` (the test-only definition: the same sums in the same order) of
/// a whole row of point tiles at once: `u(pt)` is point `pt` over `n` channels; the 2x2
/// result `[a][b]` goes to row `dests[2 a + b]` of `taps` (rows of `n`).
fn kernel_grad_transform_rows<'a, T: Elem>(
    u: impl Fn(usize) -> &'a [T],
    dests: [usize; 4],
    taps: &mut [T],
    n: usize,
) {
    // Row i of the point tile: s[i] = [u(i, 0) + u(i, 1), u(i, 1) + u(i, 2)].
    for (k, &dest) in dests.iter().enumerate() {
        let (a, b) = (k / 2, k % 2);
        let (r0, r1) = (a, a + 1);
        let (u00, u01) = (u(r0 * ALPHA + b), u(r0 * ALPHA + b + 1));
        let (u10, u11) = (u(r1 * ALPHA + b), u(r1 * ALPHA + b + 1));
        let out = &mut taps[dest * n..][..n];
        for c in 0..n {
            out[c] = (u00[c] + u01[c]) + (u10[c] + u11[c]);
        }
    }
}

/// Output channels per job of [`transformed_kernels`].
const CO_BLOCK: usize = 4;

/// Point `pt` of `G g G^T` (see `kernel_transform`, the test-only definition, whose sums
/// this repeats in the same order) for a whole row of sub-kernels at once:
/// `g = [g00, g01, g10, g11]`, each a row of taps over one channel axis, into `dst`.
fn kernel_transform_rows<T: Elem>(g: [&[T]; 4], pt: usize, dst: &mut [T]) {
    let [g00, g01, g10, g11] = g;
    let n = dst.len();
    let (g00, g01, g10, g11) = (&g00[..n], &g01[..n], &g10[..n], &g11[..n]);
    match pt {
        0 => dst.copy_from_slice(g00),
        2 => dst.copy_from_slice(g01),
        6 => dst.copy_from_slice(g10),
        8 => dst.copy_from_slice(g11),
        4 => {
            for k in 0..n {
                dst[k] = (g00[k] + g01[k]) + (g10[k] + g11[k]);
            }
        }
        _ => {
            let (a, b) = match pt {
                1 => (g00, g01),
                3 => (g00, g10),
                5 => (g01, g11),
                _ => (g10, g11),
            };
            for k in 0..n {
                dst[k] = a[k] + b[k];
            }
        }
    }
}

/// The four tap rows `[g00, g01, g10, g11]` of phase `p` (taps `kmap`) in `rows`, which
/// holds the 16 taps of a 4x4 kernel as rows of `len` elements.
fn phase_tap_rows<'a, T>(
    rows: &'a [T],
    len: usize,
    kmap: &[[usize; 2]; 2],
    p: usize,
) -> [&'a [T]; 4] {
    let (py, px) = (p / 2, p % 2);
    let row = |a: usize, b: usize| &rows[(kmap[py][a] * 4 + kmap[px][b]) * len..][..len];
    [row(0, 0), row(0, 1), row(1, 0), row(1, 1)]
}

/// The forward pass's transformed sub-kernels `U[p][point]`, `(co x ci)` matrices laid
/// out `[p][point][co][ci]`.
///
/// Each job takes [`CO_BLOCK`] output channels: it gathers their weights into rows over
/// `ci` (`[co][tap][ci]`), then writes every output row as sums of whole tap rows.
/// (Transforming one sub-kernel at a time, with 16 scattered reads and 36 scattered
/// writes each, took 30 ms of compute alone for the full-width 1024->512 layer.)
fn transformed_kernels<T: Elem>(w: &[T], d: &Dims) -> Vec<T> {
    let mat = d.ci * d.co;
    let mut u = vec![T::ZERO; PHASES * POINTS * mat];
    let shared = Shared::new(&mut u);
    (0..d.co.div_ceil(CO_BLOCK)).into_par_iter().for_each_init(
        || vec![T::ZERO; CO_BLOCK * 16 * d.ci],
        |local, job| {
            let co0 = job * CO_BLOCK;
            let rows = CO_BLOCK.min(d.co - co0);
            // Transposed in tiles of 16 input channels, so that each write to `local` is
            // a run of 16.
            let mut tile = [[T::ZERO; 16]; CO_BLOCK * 16];
            for c0 in (0..d.ci).step_by(16) {
                let cs = 16.min(d.ci - c0);
                for c in 0..cs {
                    let src = &w[((c0 + c) * d.co + co0) * 16..][..rows * 16];
                    for (j, &v) in src.iter().enumerate() {
                        tile[j][c] = v;
                    }
                }
                for (j, t) in tile[..rows * 16].iter().enumerate() {
                    local[j * d.ci + c0..][..cs].copy_from_slice(&t[..cs]);
                }
            }
            for r in 0..rows {
                let taps = &local[r * 16 * d.ci..][..16 * d.ci];
                for p in 0..PHASES {
                    let g = phase_tap_rows(taps, d.ci, &KMAP, p);
                    for pt in 0..POINTS {
                        let at = ((p * POINTS + pt) * d.co + co0 + r) * d.ci;
                        // SAFETY: job `job` writes only rows co0 .. co0 + rows of each
                        // matrix.
                        let dst = unsafe { shared.slice_mut(at, d.ci) };
                        kernel_transform_rows(g, pt, dst);
                    }
                }
            }
        },
    );
    u
}

/// The input gradient's transformed sub-kernels, stacked over the phases:
/// `U'[point]` `(ci x 4co)`, laid out `[point][ci][p][co]`.
///
/// Each job takes one input channel: it reads that channel's `co * 16` weights, which
/// are contiguous, as rows over `co` (`[tap][co]`), and writes, for each point and
/// phase, one run of `co` elements as sums of whole tap rows.
fn stacked_input_grad_kernels<T: Elem>(w: &[T], d: &Dims) -> Vec<T> {
    let k4 = PHASES * d.co;
    let mut u = vec![T::ZERO; POINTS * d.ci * k4];
    let shared = Shared::new(&mut u);
    (0..d.ci).into_par_iter().for_each_init(
        || vec![T::ZERO; 16 * d.co],
        |local, ci| {
            let src = &w[ci * d.co * 16..][..d.co * 16];
            for (co, taps) in src.chunks_exact(16).enumerate() {
                for (tap, &v) in taps.iter().enumerate() {
                    local[tap * d.co + co] = v;
                }
            }
            for p in 0..PHASES {
                let g = phase_tap_rows(local, d.co, &KMAP_T, p);
                for pt in 0..POINTS {
                    // SAFETY: job `ci` writes only row ci of each point's matrix.
                    let dst =
                        unsafe { shared.slice_mut(((pt * d.ci + ci) * PHASES + p) * d.co, d.co) };
                    kernel_transform_rows(g, pt, dst);
                }
            }
        },
    );
    u
}

/// One `(h, w)` plane with a zero border, 1 row / column before and 2 rows / 3 columns
/// after, so that every 3x3 window of the four phases is in bounds, and its padded rows
/// split by column parity for the vector loops ([`PlaneScratch::split_columns`]).
///
/// # Flat layout
/// The transforms below never loop over one tile row at a time (a row has only
/// `tw = ceil(w / 2)` tiles: 4 or 7 on the MNIST networks, too few for 8-wide vectors).
/// Instead, column `2t + k` (k = 0..3) of padded row `r` is stored in run `k` at position
/// `((r % 2) * (th + 1) + r / 2) * tw + t`: the even padded rows first, then the odd ones.
/// The three rows `2 ty + r0 + {0, 1, 2}` that tile row `ty` reads are then, for all
/// `ty` at once, three contiguous runs of `tiles = th * tw` elements, and every step of
/// a transform is one flat loop over `tiles` elements (the order of a (point, phase)
/// run of the GEMM operands).
struct PlaneScratch<T> {
    data: Vec<T>,
    stride: usize,
    /// Padded rows used: `2 th + 2`.
    rows: usize,
    /// `rows * tw`, the length of one column run.
    run: usize,
    /// Start of the odd padded rows within a run.
    half: usize,
    /// Columns `2t .. 2t + 3` of every padded row: 4 runs.
    cols: Vec<T>,
    /// Column transforms for windows starting at padded column `2t` (start 0) and
    /// `2t + 1` (start 1): `[start][3]` runs.
    colt: Vec<T>,
    /// Output transforms: `u[2][3]` then `y[4][2][2]` runs of `tiles`.
    out: Vec<T>,
}

impl<T: Elem> PlaneScratch<T> {
    fn new(d: &Dims) -> Self {
        let rows = 2 * d.th + 2;
        let run = rows * d.tw;
        Self {
            data: vec![T::ZERO; (d.h + 3) * (d.w + 4)],
            stride: d.w + 4,
            rows,
            run,
            half: (d.th + 1) * d.tw,
            cols: vec![T::ZERO; 4 * run],
            colt: vec![T::ZERO; 2 * ALPHA * run],
            out: vec![T::ZERO; (2 * ALPHA + PHASES * 4) * d.tiles],
        }
    }

    /// Copies `plane` `(h, w)` into the interior (the border stays zero).
    fn load(&mut self, plane: &[T], d: &Dims) {
        for (y, row) in plane.chunks_exact(d.w).take(d.h).enumerate() {
            self.data[(y + 1) * self.stride + 1..][..d.w].copy_from_slice(row);
        }
    }

    /// Copies phase `(py, px)` of a `(2h, 2w)` plane into the interior: element `(y, x)`
    /// is `src[2y + py, 2x + px]`.
    fn load_phase(&mut self, src: &[T], d: &Dims, py: usize, px: usize) {
        let ow = 2 * d.w;
        for y in 0..d.h {
            let from = &src[(2 * y + py) * ow + px..];
            let to = &mut self.data[(y + 1) * self.stride + 1..][..d.w];
            for (x, v) in to.iter_mut().enumerate() {
                *v = from[2 * x];
            }
        }
    }

    /// Fills `cols` from the loaded plane (see the layout above).
    #[inline(always)]
    fn split_columns(&mut self, d: &Dims) {
        let (tw, th, run) = (d.tw, d.th, self.run);
        for r in 0..self.rows {
            let row = &self.data[r * self.stride..][..2 * tw + 2];
            let at = ((r % 2) * (th + 1) + r / 2) * tw;
            for t in 0..tw {
                for (k, &v) in row[2 * t..2 * t + 4].iter().enumerate() {
                    self.cols[k * run + at + t] = v;
                }
            }
        }
    }

    /// `B^T d` along columns, `[d0 - d1, d1, d2 - d1]`, of the windows starting at
    /// padded column `2t + start` (start 0 reads columns 2t, 2t+1, 2t+2; start 1 reads
    /// 2t+1, 2t+2, 2t+3), into `colt[start]`.
    #[inline(always)]
    fn column_transform(&mut self, start: usize) {
        let run = self.run;
        let c = &self.cols[start * run..][..3 * run];
        let (c0, rest) = c.split_at(run);
        let (c1, c2) = rest.split_at(run);
        let t = &mut self.colt[start * ALPHA * run..][..ALPHA * run];
        let (t0, rest) = t.split_at_mut(run);
        let (t1, t2) = rest.split_at_mut(run);
        for i in 0..run {
            t0[i] = c0[i] - c1[i];
            t1[i] = c1[i];
            t2[i] = c2[i] - c1[i];
        }
    }

    /// `B^T (.) B` along rows of the windows starting at padded row `2 ty + r0` and
    /// column `2 tx + start` (after [`Self::column_transform`]`(start)`): point
    /// `(i, j)` of every tile is written to the run of `tiles` elements at `dst(i * 3 + j)`.
    ///
    /// # Safety
    /// The runs must be this job's own (see [`Shared::slice_mut`]).
    #[inline(always)]
    unsafe fn row_transform(
        &self,
        d: &Dims,
        r0: usize,
        start: usize,
        out: Shared<T>,
        dst: impl Fn(usize) -> usize,
    ) {
        let (tw, tiles, run, half) = (d.tw, d.tiles, self.run, self.half);
        // Rows 2ty + r0 + {0, 1, 2}: for r0 = 0 even[ty], odd[ty], even[ty + 1]; for
        // r0 = 1 odd[ty], even[ty + 1], odd[ty + 1].
        let (ia, ib, ic) = if r0 == 0 {
            (0, half, tw)
        } else {
            (half, tw, half + tw)
        };
        for j in 0..ALPHA {
            let col = &self.colt[(start * ALPHA + j) * run..][..run];
            let (a, b, c) = (
                &col[ia..][..tiles],
                &col[ib..][..tiles],
                &col[ic..][..tiles],
            );
            // SAFETY: the caller's contract.
            let (d0, d1, d2) = unsafe {
                (
                    out.slice_mut(dst(j), tiles),
                    out.slice_mut(dst(ALPHA + j), tiles),
                    out.slice_mut(dst(2 * ALPHA + j), tiles),
                )
            };
            for t in 0..tiles {
                d0[t] = a[t] - b[t];
                d1[t] = b[t];
                d2[t] = c[t] - b[t];
            }
        }
    }

    /// `A z A^T` of every 2x2 tile at `(2 ty, 2 tx)` of the loaded plane (zeros past its
    /// edge), after [`Self::split_columns`]: point `(i, j)` goes to the run at
    /// `dst(i * 3 + j)`. With `A = [[1, 0], [1, 1], [0, 1]]`: per tile row
    /// `a = [z0, z0 + z1, z1]`, then `[a_row0, a_row0 + a_row1, a_row1]`.
    ///
    /// # Safety
    /// The runs must be this job's own (see [`Shared::slice_mut`]).
    #[inline(always)]
    unsafe fn tile_transform(&self, d: &Dims, out: Shared<T>, dst: impl Fn(usize) -> usize) {
        let (tw, tiles, run, half) = (d.tw, d.tiles, self.run, self.half);
        // Plane rows 2ty and 2ty + 1 are padded rows 2ty + 1 (odd[ty]) and 2ty + 2
        // (even[ty + 1]); plane columns 2tx and 2tx + 1 are padded columns 2tx + 1 and
        // 2tx + 2 (runs 1 and 2).
        let z = |k: usize, row1: bool| {
            let at = if row1 { tw } else { half };
            &self.cols[k * run + at..][..tiles]
        };
        let (z00, z01, z10, z11) = (z(1, false), z(2, false), z(1, true), z(2, true));
        // SAFETY: the caller's contract.
        let o: [&mut [T]; POINTS] =
            std::array::from_fn(|pt| unsafe { out.slice_mut(dst(pt), tiles) });
        let [o0, o1, o2, o3, o4, o5, o6, o7, o8] = o;
        for t in 0..tiles {
            let (a0, a1, a2) = (z00[t], z00[t] + z01[t], z01[t]);
            let (b0, b1, b2) = (z10[t], z10[t] + z11[t], z11[t]);
            o0[t] = a0;
            o1[t] = a1;
            o2[t] = a2;
            o3[t] = a0 + b0;
            o4[t] = a1 + b1;
            o5[t] = a2 + b2;
            o6[t] = b0;
            o7[t] = b1;
            o8[t] = b2;
        }
    }

    /// `A^T m A` of every tile, plus `bias`, for the nine point runs `m(pt)`: the four
    /// outputs `(i, k)` of every tile go to `out[(slot * 4 + i * 2 + k) * tiles ..]`, after
    /// the six `u` runs. `A^T = [[1, 1, 0], [0, 1, 1]]`.
    #[inline(always)]
    fn output_transform<'a>(&mut self, d: &Dims, m: impl Fn(usize) -> &'a [T], slot: usize, bias: T)
    where
        T: 'a,
    {
        let tiles = d.tiles;
        let (u, y) = self.out.split_at_mut(2 * ALPHA * tiles);
        for j in 0..ALPHA {
            let (m0, m1, m2) = (m(j), m(ALPHA + j), m(2 * ALPHA + j));
            let (u0, u1) = u.split_at_mut(ALPHA * tiles);
            let (u0, u1) = (&mut u0[j * tiles..][..tiles], &mut u1[j * tiles..][..tiles]);
            for t in 0..tiles {
                u0[t] = m0[t] + m1[t];
                u1[t] = m1[t] + m2[t];
            }
        }
        for i in 0..2 {
            let ui = &u[i * ALPHA * tiles..][..ALPHA * tiles];
            let (a, rest) = ui.split_at(tiles);
            let (b, c) = rest.split_at(tiles);
            let yi = &mut y[(slot * 4 + i * 2) * tiles..][..2 * tiles];
            let (y0, y1) = yi.split_at_mut(tiles);
            for t in 0..tiles {
                y0[t] = a[t] + b[t] + bias;
                y1[t] = b[t] + c[t] + bias;
            }
        }
    }

    /// Output `(i, k)` runs of [`Self::output_transform`] slot `slot`.
    fn y(&self, d: &Dims, slot: usize, i: usize, k: usize) -> &[T] {
        let tiles = d.tiles;
        &self.out[(2 * ALPHA + slot * 4 + i * 2 + k) * tiles..][..tiles]
    }
}

multiversion!(
/// Input transforms (windows at `2 * tile + off`) of one `(sample, channel)` plane for
/// the four phases: point `pt` of phase `p` goes to the run of `tiles` elements at
/// `base + pt * stride_point + p * stride_phase` of `out`. The column transforms of both
/// column phases are computed once and shared by the two row phases.
fn transform_plane<T: Elem>(
    plane: &[T],
    scratch: &mut PlaneScratch<T>,
    d: &Dims,
    off: &[isize; 2],
    out: Shared<T>,
    base: usize,
    strides: (usize, usize),
) = transform_plane_body;);

#[inline(always)]
fn transform_plane_body<T: Elem>(
    plane: &[T],
    scratch: &mut PlaneScratch<T>,
    d: &Dims,
    off: &[isize; 2],
    out: Shared<T>,
    base: usize,
    strides: (usize, usize),
) {
    let (stride_point, stride_phase) = strides;
    scratch.load(plane, d);
    scratch.split_columns(d);
    let starts = [(off[0] + 1) as usize, (off[1] + 1) as usize];
    for &start in &starts {
        scratch.column_transform(start);
    }
    for p in 0..PHASES {
        let (r0, start) = (starts[p / 2], starts[p % 2]);
        let dst = |pt: usize| base + pt * stride_point + p * stride_phase;
        // SAFETY: see `transform_group`: this plane's columns are its own.
        unsafe { scratch.row_transform(d, r0, start, out, dst) };
    }
}

/// Input transforms of samples `n0 .. n0 + g` of `src` `(N, c, h, w)` with window
/// offsets `off` into `out`, laid out `[point][phase][c][nt]` with `nt = s * tiles + tile`;
/// in parallel over `(sample, channel)` planes.
#[allow(clippy::too_many_arguments)]
fn transform_group<T: Elem>(
    src: &[T],
    c: usize,
    n0: usize,
    g: usize,
    d: &Dims,
    off: &[isize; 2],
    out: &mut [T],
    nt: usize,
) {
    let stride_phase = c * nt;
    let stride_point = PHASES * stride_phase;
    let plane_len = d.h * d.w;
    let shared = Shared::new(out);
    (0..g * c).into_par_iter().for_each_init(
        || PlaneScratch::<T>::new(d),
        |scratch, job| {
            // Channel-major: consecutive jobs write adjacent runs of each (point, phase)
            // matrix. Sample-major jobs wrote runs a whole matrix row apart, and took
            // 2-3 times as long at full width (15 against 5.6 ms a group of 16 samples
            // of the 1024->512 layer).
            let (s, ch) = (job % g, job / g);
            let plane = &src[((n0 + s) * c + ch) * plane_len..][..plane_len];
            // Plane (s, ch) writes only columns s * tiles .. (s + 1) * tiles of row ch of
            // each (point, phase) matrix: no two jobs write the same element.
            let base = ch * nt + s * d.tiles;
            let strides = (stride_point, stride_phase);
            transform_plane(plane, scratch, d, off, shared, base, strides);
        },
    );
}

/// Forward pass: `x` `(N, ci, h, w)`, `w` `(ci, co, 4, 4)`, `bias` `(co)` -> `(N, co, 2h, 2w)`.
pub(crate) fn forward<T: Elem>(geo: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let d = Dims::new(geo);
    let g = d.group();
    let u = transformed_kernels(w, &d);
    let out_plane = 4 * d.h * d.w;
    let mut out = vec![T::ZERO; d.n * d.co * out_plane];
    // Scratch kept between calls (not zeroed: every element is written before it is
    // read), sized for the first, largest group; `resize` below only shortens them.
    let scratch = Pool::<T>::new();
    let nt_max = g.min(d.n) * d.tiles;
    let mut v = scratch.take(POINTS * PHASES * d.ci * nt_max);
    let mut m = scratch.take(PHASES * POINTS * d.co * nt_max);
    for n0 in (0..d.n).step_by(g) {
        let gs = g.min(d.n - n0);
        let nt = gs * d.tiles;
        v.resize(POINTS * PHASES * d.ci * nt, T::ZERO);
        m.resize(PHASES * POINTS * d.co * nt, T::ZERO);
        transform_group(x, d.ci, n0, gs, &d, &OFF, &mut v, nt);
        // M[p][point] (co x nt) = U[p][point] (co x ci) * V[point][p] (ci x nt)
        m.par_chunks_mut(d.co * nt)
            .enumerate()
            .for_each(|(job, mj)| {
                let (p, pt) = (job / POINTS, job % POINTS);
                let uj = &u[(p * POINTS + pt) * d.co * d.ci..][..d.co * d.ci];
                let vj = &v[(pt * PHASES + p) * d.ci * nt..][..d.ci * nt];
                gemm_rm(
                    d.co,
                    nt,
                    d.ci,
                    mj,
                    nt,
                    1,
                    false,
                    uj,
                    d.ci,
                    1,
                    vj,
                    nt,
                    1,
                    gemm::Parallelism::None,
                );
            });
        let chunk = d.co * out_plane;
        let out_g = Shared::new(&mut out[n0 * chunk..(n0 + gs) * chunk]);
        (0..gs * d.co).into_par_iter().for_each_init(
            || PlaneScratch::<T>::new(&d),
            |scratch, job| {
                // Channel-major, so that consecutive jobs read adjacent runs of each
                // (phase, point) product (sample-major jobs read runs a matrix row apart:
                // 6.1 against 3.7 ms a group of the full-width 1024->512 layer).
                let (s, co) = (job % gs, job / gs);
                let b = bias.map_or(T::ZERO, |b| b[co]);
                // SAFETY: job (s, co) writes only plane (s, co) of the group.
                let plane = unsafe { out_g.slice_mut((s * d.co + co) * out_plane, out_plane) };
                forward_output_plane(&m, &d, nt, s, co, b, scratch, plane);
            },
        );
    }
    scratch.give(v);
    scratch.give(m);
    out
}

multiversion!(
/// Output transform of one `(sample, co)` plane of a group, plus bias: the four
/// outputs of every tile of every phase, then each output row written once,
/// interleaving four of those runs.
fn forward_output_plane<T: Elem>(
    m: &[T],
    d: &Dims,
    nt: usize,
    s: usize,
    co: usize,
    bias: T,
    scratch: &mut PlaneScratch<T>,
    plane: &mut [T],
) = forward_output_plane_body;);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_output_plane_body<T: Elem>(
    m: &[T],
    d: &Dims,
    nt: usize,
    s: usize,
    co: usize,
    bias: T,
    scratch: &mut PlaneScratch<T>,
    plane: &mut [T],
) {
    let tiles = d.tiles;
    for p in 0..PHASES {
        let run = |pt: usize| &m[((p * POINTS + pt) * d.co + co) * nt + s * tiles..][..tiles];
        scratch.output_transform(d, run, p, bias);
    }
    // Output row 2 (2 ty + i) + py holds, at column 2 (2 tx + k) + px, output (i, k) of
    // phase (py, px) of tile (ty, tx); rows and columns past the plane (odd sizes) are
    // dropped.
    let (oh, ow, tw) = (2 * d.h, 2 * d.w, d.tw);
    let full = ow / 4;
    for ty in 0..d.th {
        for i in 0..2 {
            for py in 0..2 {
                let row = 2 * (2 * ty + i) + py;
                if row >= oh {
                    continue;
                }
                let src = |px: usize, k: usize| &scratch.y(d, py * 2 + px, i, k)[ty * tw..][..tw];
                let (s00, s01, s10, s11) = (src(0, 0), src(1, 0), src(0, 1), src(1, 1));
                let dst = &mut plane[row * ow..(row + 1) * ow];
                for (tx, q) in dst.chunks_exact_mut(4).enumerate() {
                    q[0] = s00[tx];
                    q[1] = s01[tx];
                    q[2] = s10[tx];
                    q[3] = s11[tx];
                }
                // An odd width leaves half a tile: columns 4 * full and 4 * full + 1.
                if ow % 4 != 0 {
                    dst[4 * full] = s00[full];
                    dst[4 * full + 1] = s01[full];
                }
            }
        }
    }
}

/// Backward pass: input gradient `(N, ci, h, w)` and / or weight gradient
/// `(ci, co, 4, 4)` from `x` and the output gradient `gy` `(N, co, 2h, 2w)`.
pub(crate) fn backward<T: Elem>(
    geo: &ConvGeom,
    x: &[T],
    w: &[T],
    gy: &[T],
    want_dx: bool,
    want_dw: bool,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let d = Dims::new(geo);
    let g = d.group();
    let plane_in = d.h * d.w;
    // Input gradient: stacked kernels U'[point] (ci x 4co), laid out [point][ci][p][co].
    let u_dx = if want_dx {
        stacked_input_grad_kernels(w, &d)
    } else {
        Vec::new()
    };
    let mut dx = if want_dx {
        vec![T::ZERO; d.n * d.ci * plane_in]
    } else {
        Vec::new()
    };
    // Weight gradient accumulators dU[p][point] (ci x co).
    // Written (not added to) by the first group's products, so never zeroed.
    let du_len = PHASES * POINTS * d.ci * d.co;
    let mut du: Vec<T> = Vec::new();
    // Scratch kept between calls, as in `forward`.
    let scratch = Pool::<T>::new();
    let nt_max = g.min(d.n) * d.tiles;
    let take = |want: bool, len: usize| {
        if want { scratch.take(len) } else { Vec::new() }
    };
    let mut vg = take(want_dx, POINTS * PHASES * d.co * nt_max);
    let mut mx = take(want_dx, POINTS * d.ci * nt_max);
    let mut vx = take(want_dw, POINTS * PHASES * d.ci * nt_max);
    let mut zg = take(want_dw, POINTS * PHASES * d.co * nt_max);
    for n0 in (0..d.n).step_by(g) {
        let gs = g.min(d.n - n0);
        let nt = gs * d.tiles;
        // Vg[point][p][co][nt]: input transforms (windows OFF_T) of the gy phase planes,
        // for the input gradient; Zg[point][p][co][nt]: their 2x2 tile transforms, for
        // the weight gradient.
        if want_dx {
            vg.resize(POINTS * PHASES * d.co * nt, T::ZERO);
        }
        if want_dw {
            zg.resize(POINTS * PHASES * d.co * nt, T::ZERO);
        }
        let vg_out = want_dx.then(|| Shared::new(&mut vg));
        let zg_out = want_dw.then(|| Shared::new(&mut zg));
        // Two passes over gy, one per output: with both outputs in one pass each plane
        // wrote 72 runs to memory, and the pass took 15 ms a group at full width
        // (1024->512) against 7.3 ms for the two passes (8 against 4 ms at 512->256).
        gy_transforms_group(gy, n0, gs, &d, vg_out, None, nt);
        gy_transforms_group(gy, n0, gs, &d, None, zg_out, nt);
        if want_dx {
            // Mx[point] (ci x nt) = U'[point] (ci x 4co) * Vg[point] (4co x nt)
            mx.resize(POINTS * d.ci * nt, T::ZERO);
            // Nine products only: each is split into DX_PARTS row blocks (a fixed
            // split, so the result does not depend on the thread count) to keep every
            // thread busy.
            let k4 = PHASES * d.co;
            let part_rows = d.ci.div_ceil(DX_PARTS).max(1);
            mx.par_chunks_mut(d.ci * nt)
                .enumerate()
                .flat_map(|(pt, mj)| {
                    mj.par_chunks_mut(part_rows * nt)
                        .enumerate()
                        .map(move |(part, mr)| (pt, part, mr))
                })
                .for_each(|(pt, part, mr)| {
                    let rows = mr.len() / nt;
                    let r0 = part * part_rows;
                    let uj = &u_dx[(pt * d.ci + r0) * k4..][..rows * k4];
                    let vj = &vg[pt * k4 * nt..][..k4 * nt];
                    gemm_rm(
                        rows,
                        nt,
                        k4,
                        mr,
                        nt,
                        1,
                        false,
                        uj,
                        k4,
                        1,
                        vj,
                        nt,
                        1,
                        gemm::Parallelism::None,
                    );
                });
            let dx_g = Shared::new(&mut dx[n0 * d.ci * plane_in..(n0 + gs) * d.ci * plane_in]);
            (0..gs * d.ci).into_par_iter().for_each_init(
                || PlaneScratch::<T>::new(&d),
                |scratch, job| {
                    // Channel-major, as in `forward`.
                    let (s, ci) = (job % gs, job / gs);
                    // SAFETY: job (s, ci) writes only plane (s, ci) of the group.
                    let plane = unsafe { dx_g.slice_mut((s * d.ci + ci) * plane_in, plane_in) };
                    input_grad_output_plane(&mx, &d, nt, s, ci, scratch, plane);
                },
            );
        }
        if want_dw {
            // V[point][p][ci][nt] of x (forward windows).
            vx.resize(POINTS * PHASES * d.ci * nt, T::ZERO);
            transform_group(x, d.ci, n0, gs, &d, &OFF, &mut vx, nt);
            // dU[p][point] (ci x co) += V[point][p] (ci x nt) * Z[point][p]^T (nt x co)
            // (the first group writes dU into its spare capacity, later groups add).
            let operands = |job: usize| {
                let (p, pt) = (job / POINTS, job % POINTS);
                (
                    &vx[(pt * PHASES + p) * d.ci * nt..][..d.ci * nt],
                    &zg[(pt * PHASES + p) * d.co * nt..][..d.co * nt],
                )
            };
            let none = gemm::Parallelism::None;
            if n0 == 0 {
                du.reserve_exact(du_len);
                du.spare_capacity_mut()[..du_len]
                    .par_chunks_mut(d.ci * d.co)
                    .enumerate()
                    .for_each(|(job, dj)| {
                        let (vj, zj) = operands(job);
                        gemm_rm_into(d.ci, d.co, nt, dj, d.co, 1, vj, nt, 1, zj, 1, nt, none);
                    });
                // SAFETY: each chunk is one `(ci x co)` product's whole destination
                // (row stride `co`), which `gemm_rm_into` wrote.
                unsafe { du.set_len(du_len) };
            } else {
                du.par_chunks_mut(d.ci * d.co)
                    .enumerate()
                    .for_each(|(job, dj)| {
                        let (vj, zj) = operands(job);
                        gemm_rm(
                            d.ci, d.co, nt, dj, d.co, 1, true, vj, nt, 1, zj, 1, nt, none,
                        );
                    });
            }
        }
    }
    if want_dw && du.is_empty() {
        // An empty batch: no group ran, and the gradient is zero.
        du = vec![T::ZERO; du_len];
    }
    let dw = want_dw.then(|| {
        let mut dw = vec![T::ZERO; d.ci * d.co * 16];
        dw.par_chunks_mut(d.co * 16).enumerate().for_each_init(
            || vec![T::ZERO; 16 * d.co],
            |taps, (ci, dst)| {
                // taps[tap][co]: G^T u G of every co at once, then transposed into dst.
                for p in 0..PHASES {
                    let (py, px) = (p / 2, p % 2);
                    let u = |pt: usize| &du[((p * POINTS + pt) * d.ci + ci) * d.co..][..d.co];
                    let tap = |a: usize, b: usize| KMAP[py][a] * 4 + KMAP[px][b];
                    let dests = [tap(0, 0), tap(0, 1), tap(1, 0), tap(1, 1)];
                    kernel_grad_transform_rows(u, dests, taps, d.co);
                }
                for (co, out) in dst.chunks_exact_mut(16).enumerate() {
                    for (t, o) in out.iter_mut().enumerate() {
                        *o = taps[t * d.co + co];
                    }
                }
            },
        );
        dw
    });
    for buf in [vg, mx, vx, zg] {
        if buf.capacity() > 0 {
            scratch.give(buf);
        }
    }
    (want_dx.then_some(dx), dw)
}

/// For samples `n0 .. n0 + gs` of `gy` `(N, co, 2h, 2w)`, each phase plane's input
/// transforms (windows `OFF_T`) into `vg` and its 2x2 tile transforms into `zg` (each
/// when given; [`backward`] asks for one at a time), both laid out `[point][p][co][nt]`; in parallel over `(sample, co)`.
fn gy_transforms_group<T: Elem>(
    gy: &[T],
    n0: usize,
    gs: usize,
    d: &Dims,
    vg: Option<Shared<T>>,
    zg: Option<Shared<T>>,
    nt: usize,
) {
    let gy_plane = 4 * d.h * d.w;
    (0..gs * d.co).into_par_iter().for_each_init(
        || PlaneScratch::<T>::new(d),
        |scratch, job| {
            // Channel-major, as in `transform_group`.
            let (s, co) = (job % gs, job / gs);
            let src = &gy[((n0 + s) * d.co + co) * gy_plane..][..gy_plane];
            gy_plane_transforms(src, scratch, d, s, co, nt, vg, zg);
        },
    );
}

multiversion!(
/// The gy transforms of one `(sample, co)` plane (see [`gy_transforms_group`]).
fn gy_plane_transforms<T: Elem>(
    src: &[T],
    scratch: &mut PlaneScratch<T>,
    d: &Dims,
    s: usize,
    co: usize,
    nt: usize,
    vg: Option<Shared<T>>,
    zg: Option<Shared<T>>,
) = gy_plane_transforms_body;);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gy_plane_transforms_body<T: Elem>(
    src: &[T],
    scratch: &mut PlaneScratch<T>,
    d: &Dims,
    s: usize,
    co: usize,
    nt: usize,
    vg: Option<Shared<T>>,
    zg: Option<Shared<T>>,
) {
    let stride_phase = d.co * nt;
    let stride_point = PHASES * stride_phase;
    for p in 0..PHASES {
        let (py, px) = (p / 2, p % 2);
        scratch.load_phase(src, d, py, px);
        scratch.split_columns(d);
        // Job (s, co) writes only columns s * tiles .. of row co: disjoint.
        let dst = |pt: usize| pt * stride_point + p * stride_phase + co * nt + s * d.tiles;
        if let Some(vg) = vg {
            let (r0, start) = ((OFF_T[py] + 1) as usize, (OFF_T[px] + 1) as usize);
            scratch.column_transform(start);
            // SAFETY: this job's own runs (above).
            unsafe { scratch.row_transform(d, r0, start, vg, dst) };
        }
        if let Some(zg) = zg {
            // SAFETY: this job's own runs (above).
            unsafe { scratch.tile_transform(d, zg, dst) };
        }
    }
}

multiversion!(
/// Output transform of one `(sample, ci)` plane of the input gradient.
fn input_grad_output_plane<T: Elem>(
    mx: &[T],
    d: &Dims,
    nt: usize,
    s: usize,
    ci: usize,
    scratch: &mut PlaneScratch<T>,
    plane: &mut [T],
) = input_grad_output_plane_body;);

#[inline(always)]
fn input_grad_output_plane_body<T: Elem>(
    mx: &[T],
    d: &Dims,
    nt: usize,
    s: usize,
    ci: usize,
    scratch: &mut PlaneScratch<T>,
    plane: &mut [T],
) {
    let tiles = d.tiles;
    let run = |pt: usize| &mx[(pt * d.ci + ci) * nt + s * tiles..][..tiles];
    scratch.output_transform(d, run, 0, T::ZERO);
    // Row 2 ty + i holds output (i, k) of tile (ty, tx) at column 2 tx + k.
    let (h, w, tw) = (d.h, d.w, d.tw);
    for ty in 0..d.th {
        for i in 0..2 {
            let row = 2 * ty + i;
            if row >= h {
                continue;
            }
            let (e, o) = (
                &scratch.y(d, 0, i, 0)[ty * tw..][..tw],
                &scratch.y(d, 0, i, 1)[ty * tw..][..tw],
            );
            let dst = &mut plane[row * w..(row + 1) * w];
            for (tx, pair) in dst.chunks_mut(2).enumerate() {
                pair[0] = e[tx];
                if let Some(v) = pair.get_mut(1) {
                    *v = o[tx];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;

    fn fill(len: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// The `Auto` choice on the MNIST decoder's up-sampling layers (see [`worthwhile`])
    /// and on the measured shapes its rule was fitted to.
    #[test]
    fn auto_picks_winograd_where_it_measured_faster() {
        let layer = |ci: usize, co: usize, h: usize| ConvGeom::dcgan(100, co, 2 * h, ci, h);
        let picks = |ci, co, h, avx512| score(&layer(ci, co, h)) >= threshold(avx512);
        // MNIST decoder: (width divisor, 7x7 layer, 14x14 layer), against AVX2 GEMM
        // (the AMD EPYC measurements) and AVX-512 GEMM (the Intel Xeon's).
        for (avx512, cases) in [
            (false, [(1, true, true), (2, false, true), (4, false, true)]),
            (true, [(1, true, true), (2, false, true), (4, false, false)]),
        ] {
            for (wd, first, second) in cases {
                assert_eq!(
                    picks(1024 / wd, 512 / wd, 7, avx512),
                    first,
                    "7x7 /{wd}, AVX-512 GEMM {avx512}"
                );
                assert_eq!(
                    picks(512 / wd, 256 / wd, 14, avx512),
                    second,
                    "14x14 /{wd}, AVX-512 GEMM {avx512}"
                );
            }
        }
        for (ci, co, h, avx2_want, avx512_want) in [
            (128, 64, 16, true, true),
            (64, 64, 14, true, false),
            (96, 48, 14, true, false),
            (64, 32, 32, true, false),
            (256, 128, 8, false, false),
            (64, 32, 14, false, false),
            (128, 128, 7, false, false),
            (32, 16, 16, false, false),
            (64, 32, 8, false, false),
        ] {
            assert_eq!(picks(ci, co, h, false), avx2_want, "{ci}->{co} at {h}x{h}");
            assert_eq!(
                picks(ci, co, h, true),
                avx512_want,
                "{ci}->{co} at {h}x{h}, AVX-512"
            );
        }
        // `worthwhile` takes the GEMM this CPU runs.
        assert_eq!(
            worthwhile(&layer(128, 64, 14)),
            picks(128, 64, 14, gemm_has_avx512())
        );
    }

    /// The kernel transforms computed a row of channels at a time (forward, input
    /// gradient, weight gradient) give the same bits as the per-kernel definitions, on
    /// channel counts that leave partial blocks ([`CO_BLOCK`], the 16-channel tiles).
    #[test]
    fn row_kernel_transforms_equal_the_per_kernel_definitions() {
        let (ci, co) = (21, 7);
        let geo = ConvGeom::dcgan(1, co, 6, ci, 3);
        let d = Dims::new(&geo);
        // Magnitudes spread over 20 octaves, so that sums in another order round
        // differently.
        let spread = |v: Vec<f64>| -> Vec<f64> {
            v.into_iter()
                .enumerate()
                .map(|(i, x)| x * (1u32 << (i * 7 % 20)) as f64)
                .collect()
        };
        let w = spread(fill(ci * co * 16, 7));
        let sub = |kmap: &[[usize; 2]; 2], p: usize, i: usize, o: usize| {
            let (py, px) = (p / 2, p % 2);
            let k = |a: usize, b: usize| w[((i * co + o) * 4 + kmap[py][a]) * 4 + kmap[px][b]];
            kernel_transform([[k(0, 0), k(0, 1)], [k(1, 0), k(1, 1)]])
        };
        let u = transformed_kernels(&w, &d);
        let u_dx = stacked_input_grad_kernels(&w, &d);
        for p in 0..PHASES {
            for i in 0..ci {
                for o in 0..co {
                    let (t, t_dx) = (sub(&KMAP, p, i, o), sub(&KMAP_T, p, i, o));
                    for pt in 0..POINTS {
                        let fwd = u[((p * POINTS + pt) * co + o) * ci + i];
                        let dx = u_dx[((pt * ci + i) * PHASES + p) * co + o];
                        assert_eq!(fwd.to_bits(), t[pt].to_bits(), "forward {p} {i} {o} {pt}");
                        assert_eq!(
                            dx.to_bits(),
                            t_dx[pt].to_bits(),
                            "input grad {p} {i} {o} {pt}"
                        );
                    }
                }
            }
        }
        let n = 5;
        let pts = spread(fill(POINTS * n, 11));
        let mut taps = vec![0.0; 16 * n];
        kernel_grad_transform_rows(|pt| &pts[pt * n..][..n], [3, 9, 12, 0], &mut taps, n);
        for c in 0..n {
            let tile: [f64; POINTS] = std::array::from_fn(|pt| pts[pt * n + c]);
            let dg = kernel_grad_transform(&tile);
            for (k, &dest) in [3, 9, 12, 0].iter().enumerate() {
                assert_eq!(
                    taps[dest * n + c].to_bits(),
                    dg[k / 2][k % 2].to_bits(),
                    "{c} {k}"
                );
            }
        }
    }

    /// An empty batch: no output, an empty input gradient and a zero weight gradient (no
    /// group runs, so nothing writes the gradient's accumulators).
    #[test]
    fn an_empty_batch_gives_zero_gradients() {
        let geo = ConvGeom::dcgan(0, 3, 4, 2, 2);
        let k = fill(geo.k_len(), 2);
        assert!(forward(&geo, &[], &k, None).is_empty());
        let (dx, dw) = backward(&geo, &[], &k, &[], true, true);
        assert_eq!(dx, Some(Vec::new()));
        assert_eq!(dw, Some(vec![0.0; geo.k_len()]));
    }

    /// Winograd against the im2col/col2im kernels on odd and even sizes, f64.
    #[test]
    fn matches_the_gemm_kernels() {
        for &(n, ci, co, h, w) in &[
            (3usize, 4usize, 5usize, 7usize, 7usize),
            (2, 3, 2, 4, 6),
            (1, 2, 3, 1, 1),
            (2, 5, 4, 5, 2),
        ] {
            let geo = ConvGeom {
                n,
                ca: co,
                ha: 2 * h,
                wa: 2 * w,
                cb: ci,
                hb: h,
                wb: w,
                kh: 4,
                kw: 4,
                sh: 2,
                sw: 2,
                ph: 1,
                pw: 1,
            };
            assert!(applies(&geo));
            let x = fill(geo.b_len(), 1);
            let k = fill(geo.k_len(), 2);
            let bias = fill(co, 3);
            let gy = fill(geo.a_len(), 4);
            let y_ref = cpu::conv_adjoint(&geo, &x, &k, Some(&bias));
            let y = forward(&geo, &x, &k, Some(&bias));
            assert!(
                max_diff(&y, &y_ref) < 1e-12,
                "forward {n} {ci} {co} {h} {w}"
            );
            let dx_ref = cpu::conv_forward(&geo, &gy, &k, None);
            let dw_ref = cpu::conv_kernel_grad(&geo, &gy, &x);
            let (dx, dw) = backward(&geo, &x, &k, &gy, true, true);
            assert!(
                max_diff(&dx.unwrap_or_default(), &dx_ref) < 1e-12,
                "dx {n} {ci} {co} {h} {w}"
            );
            assert!(
                max_diff(&dw.unwrap_or_default(), &dw_ref) < 1e-12,
                "dw {n} {ci} {co} {h} {w}"
            );
        }
    }
}
