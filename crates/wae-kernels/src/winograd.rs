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
//! (phase, point) pairs.

use rayon::prelude::*;

use crate::cpu::{ConvGeom, Elem, gemm_rm, par_build};
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
/// Winograd does `9 * tiles` multiply-adds per phase plane where the direct product does
/// `4 * h * w` (ratio 0.5625 for even sizes, more for odd ones, whose edge tiles are
/// half empty), but its transforms cost time in proportion to the channel counts while
/// the products grow with their product. Measured on the MNIST decoder (2-core AMD
/// EPYC, batch 100, f32), the saving pays for the transforms when
/// `min(c_in, c_out) * (1 - ratio)` is at least about 48: it is at width divisors 1 and
/// 2 (1024->512 at 7x7: 138; 256->128 at 14x14: 56), not at 4 (256->128 at 7x7: 35;
/// 128->64 at 14x14: 28).
fn worthwhile(geo: &ConvGeom) -> bool {
    let d = Dims::new(geo);
    let ratio = (9 * d.tiles) as f64 / (4 * d.h * d.w) as f64;
    d.ci.min(d.co) as f64 * (1.0 - ratio) >= 48.0
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

/// A plane with a zero border: 1 row before and 2 after, 1 column before and 3 after, so
/// that every 3x3 window of the four phases (and the pairs the vector loops read) is in
/// bounds.
struct Padded<T> {
    data: Vec<T>,
    stride: usize,
}

impl<T: Elem> Padded<T> {
    fn new(h: usize, w: usize) -> Self {
        Self {
            data: vec![T::ZERO; (h + 3) * (w + 4)],
            stride: w + 4,
        }
    }
    fn load(&mut self, plane: &[T], h: usize, w: usize) {
        for (y, row) in plane.chunks_exact(w).take(h).enumerate() {
            self.data[(y + 1) * self.stride + 1..][..w].copy_from_slice(row);
        }
    }
}

/// `G g G^T` (3x3) of a 2x2 sub-kernel.
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

/// `G^T u G` (2x2) of a 3x3 point tile (the weight-gradient inverse transform).
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

/// The transformed sub-kernels `U[p][point]` as `(rows x cols)` matrices, laid out
/// `[p][point][row][col]`; `rows_are_co` picks `(co x ci)` (forward) or `(ci x co)`.
fn transformed_kernels<T: Elem>(
    w: &[T],
    d: &Dims,
    kmap: &[[usize; 2]; 2],
    rows_are_co: bool,
) -> Vec<T> {
    let mat = d.ci * d.co;
    let (rows, cols) = if rows_are_co {
        (d.co, d.ci)
    } else {
        (d.ci, d.co)
    };
    let mut u = vec![T::ZERO; PHASES * POINTS * mat];
    let shared = Shared::new(&mut u);
    (0..PHASES * rows).into_par_iter().for_each_init(
        || vec![T::ZERO; POINTS * cols],
        |local, job| {
            let (p, r) = (job / rows, job % rows);
            let (py, px) = (p / 2, p % 2);
            for c in 0..cols {
                let (ci, co) = if rows_are_co { (c, r) } else { (r, c) };
                let k =
                    |a: usize, b: usize| w[((ci * d.co + co) * 4 + kmap[py][a]) * 4 + kmap[px][b]];
                let t = kernel_transform([[k(0, 0), k(0, 1)], [k(1, 0), k(1, 1)]]);
                for (pt, &v) in t.iter().enumerate() {
                    local[pt * cols + c] = v;
                }
            }
            for pt in 0..POINTS {
                let dst = (p * POINTS + pt) * mat + r * cols;
                for (c, &v) in local[pt * cols..(pt + 1) * cols].iter().enumerate() {
                    // SAFETY: job (p, r) writes only row r of the (p, point) matrices.
                    unsafe { shared.write(dst + c, v) };
                }
            }
        },
    );
    u
}

/// A raw output pointer shared by parallel jobs that write disjoint elements.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T, usize);

// SAFETY: jobs only write through it, at indices that no other job writes (each use
// says why), and the buffer outlives the parallel loop.
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T: Elem> Shared<T> {
    fn new(buf: &mut [T]) -> Self {
        Self(buf.as_mut_ptr(), buf.len())
    }
    /// Copies `src` to `i ..`.
    ///
    /// # Safety
    /// No other thread may access those elements during the parallel loop.
    #[inline(always)]
    unsafe fn write_run(self, i: usize, src: &[T]) {
        assert!(
            i + src.len() <= self.1,
            "winograd scratch index out of bounds"
        );
        // SAFETY: in bounds (checked); exclusive per the caller's contract; `src` is a
        // separate buffer.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.0.add(i), src.len()) }
    }

    /// Writes `v` at `i`.
    ///
    /// # Safety
    /// No other thread may access element `i` during the parallel loop.
    #[inline(always)]
    unsafe fn write(self, i: usize, v: T) {
        assert!(i < self.1, "winograd scratch index out of bounds");
        // SAFETY: in bounds (checked); exclusive per the caller's contract.
        unsafe { self.0.add(i).write(v) }
    }
}

/// Scratch of one transform job.
struct Scratch<T> {
    pad: Padded<T>,
    /// Column-transformed rows: `[row][3][tw]`.
    colt: Vec<T>,
    /// Results of one plane: `[block][point][tiles]`.
    local: Vec<T>,
}

impl<T: Elem> Scratch<T> {
    fn new(d: &Dims, blocks: usize) -> Self {
        Self {
            pad: Padded::new(d.h, d.w),
            colt: vec![T::ZERO; (2 * d.th + 1) * ALPHA * d.tw],
            local: vec![T::ZERO; blocks * POINTS * d.tiles],
        }
    }
}

/// `B^T d B` of every window at `(2 ty + offy, 2 tx + offx)` of the loaded plane, into
/// `out[point * tiles + ty * tw + tx]`: columns first (vectorised over `tx`), then rows.
#[inline(always)]
fn windows_transform<T: Elem>(
    pad: &Padded<T>,
    colt: &mut [T],
    d: &Dims,
    offy: isize,
    offx: isize,
    out: &mut [T],
) {
    let tw = d.tw;
    let s0 = (offx + 1) as usize;
    for r in 0..2 * d.th + 1 {
        let y = r as isize + offy;
        let row = &pad.data[((y + 1) as usize) * pad.stride..][..pad.stride];
        let src = &row[s0..s0 + 2 * tw + 2];
        let (c0, rest) = colt[r * ALPHA * tw..(r + 1) * ALPHA * tw].split_at_mut(tw);
        let (c1, c2) = rest.split_at_mut(tw);
        for ((((a, b), c), (p, q)), o) in c0
            .iter_mut()
            .zip(c1.iter_mut())
            .zip(c2.iter_mut())
            .zip(src.chunks_exact(2).zip(src[2..].chunks_exact(2)))
            .zip(0..tw)
        {
            let _ = o;
            let (va, vb, vc) = (p[0], p[1], q[0]);
            *a = va - vb;
            *b = vb;
            *c = vc - vb;
        }
    }
    let tiles = d.tiles;
    for ty in 0..d.th {
        let rows = &colt[2 * ty * ALPHA * tw..(2 * ty + 3) * ALPHA * tw];
        let (r0, rest) = rows.split_at(ALPHA * tw);
        let (r1, r2) = rest.split_at(ALPHA * tw);
        for j in 0..ALPHA {
            let (a, b, c) = (
                &r0[j * tw..][..tw],
                &r1[j * tw..][..tw],
                &r2[j * tw..][..tw],
            );
            let o0 = j * tiles + ty * tw;
            for ((o, &x), &y) in out[o0..o0 + tw].iter_mut().zip(a).zip(b) {
                *o = x - y;
            }
            let o1 = (ALPHA + j) * tiles + ty * tw;
            out[o1..o1 + tw].copy_from_slice(b);
            let o2 = (2 * ALPHA + j) * tiles + ty * tw;
            for ((o, &x), &y) in out[o2..o2 + tw].iter_mut().zip(c).zip(b) {
                *o = x - y;
            }
        }
    }
}

/// `A^T m A` of every tile of a plane (`m[point * tiles + tile]`), written to the `(h, w)`
/// plane `q` (vectorised over `tx`; outputs past the edge dropped).
#[inline(always)]
fn tiles_output_transform<T: Elem>(m: &[T], d: &Dims, q: &mut [T], bias: T) {
    let (tw, tiles) = (d.tw, d.tiles);
    let mut u = vec![T::ZERO; 2 * ALPHA * tw];
    let mut y = vec![T::ZERO; 2 * tw];
    for ty in 0..d.th {
        for j in 0..ALPHA {
            let m0 = &m[j * tiles + ty * tw..][..tw];
            let m1 = &m[(ALPHA + j) * tiles + ty * tw..][..tw];
            let m2 = &m[(2 * ALPHA + j) * tiles + ty * tw..][..tw];
            let (u0, u1) = u.split_at_mut(ALPHA * tw);
            for (((o0, o1), (&a, &b)), &c) in u0[j * tw..(j + 1) * tw]
                .iter_mut()
                .zip(u1[j * tw..(j + 1) * tw].iter_mut())
                .zip(m0.iter().zip(m1))
                .zip(m2)
            {
                *o0 = a + b;
                *o1 = b + c;
            }
        }
        for i in 0..2 {
            let my = 2 * ty + i;
            if my >= d.h {
                continue;
            }
            let ui = &u[i * ALPHA * tw..(i + 1) * ALPHA * tw];
            let (a, rest) = ui.split_at(tw);
            let (b, c) = rest.split_at(tw);
            let (y0, y1) = y.split_at_mut(tw);
            for ((((o0, o1), &va), &vb), &vc) in
                y0.iter_mut().zip(y1.iter_mut()).zip(a).zip(b).zip(c)
            {
                *o0 = va + vb + bias;
                *o1 = vb + vc + bias;
            }
            let row = &mut q[my * d.w..(my + 1) * d.w];
            for (tx, pair) in row.chunks_mut(2).enumerate() {
                pair[0] = y0[tx];
                if let Some(v) = pair.get_mut(1) {
                    *v = y1[tx];
                }
            }
        }
    }
}

/// `A z A^T` of every 2x2 tile of an `(h, w)` plane (zeros past the edge), into
/// `out[point * tiles + tile]` (vectorised over `tx`).
#[inline(always)]
fn grad_tiles_transform<T: Elem>(plane: &[T], d: &Dims, pair_rows: &mut [T], out: &mut [T]) {
    let (tw, tiles) = (d.tw, d.tiles);
    // Two rows of the tile, zero-padded to 2 * tw columns.
    for ty in 0..d.th {
        for i in 0..2 {
            let dst = &mut pair_rows[i * 2 * tw..(i + 1) * 2 * tw];
            let y = 2 * ty + i;
            if y < d.h {
                dst[..d.w].copy_from_slice(&plane[y * d.w..(y + 1) * d.w]);
                dst[d.w..].fill(T::ZERO);
            } else {
                dst.fill(T::ZERO);
            }
        }
        let (z0, z1) = pair_rows[..4 * tw].split_at(2 * tw);
        // a_i = [z_i0, z_i0 + z_i1, z_i1] per row i; then rows [a_0, a_0 + a_1, a_1].
        for (k, (p0, p1)) in z0.chunks_exact(2).zip(z1.chunks_exact(2)).enumerate() {
            let a0 = [p0[0], p0[0] + p0[1], p0[1]];
            let a1 = [p1[0], p1[0] + p1[1], p1[1]];
            let t = ty * tw + k;
            for j in 0..ALPHA {
                out[j * tiles + t] = a0[j];
                out[(ALPHA + j) * tiles + t] = a0[j] + a1[j];
                out[(2 * ALPHA + j) * tiles + t] = a1[j];
            }
        }
    }
}

multiversion!(
/// Input transforms (windows at `2 * tile + off`) of one `(sample, channel)` plane for
/// the four phases: point `pt` of phase `p` goes to the run of `tiles` elements at
/// `base + pt * stride_point + p * stride_phase` of `out`. Results are staged in
/// `scratch.local` and copied out one contiguous run per (point, phase): interleaved
/// scalar writes to 36 rows far apart would thrash the cache.
fn transform_plane<T: Elem>(
    plane: &[T],
    scratch: &mut Scratch<T>,
    d: &Dims,
    off: &[isize; 2],
    out: Shared<T>,
    base: usize,
    strides: (usize, usize),
) = transform_plane_body;);

#[inline(always)]
fn transform_plane_body<T: Elem>(
    plane: &[T],
    scratch: &mut Scratch<T>,
    d: &Dims,
    off: &[isize; 2],
    out: Shared<T>,
    base: usize,
    strides: (usize, usize),
) {
    let (stride_point, stride_phase) = strides;
    let tiles = d.tiles;
    scratch.pad.load(plane, d.h, d.w);
    for p in 0..PHASES {
        let (py, px) = (p / 2, p % 2);
        let local = &mut scratch.local[p * POINTS * tiles..(p + 1) * POINTS * tiles];
        windows_transform(&scratch.pad, &mut scratch.colt, d, off[py], off[px], local);
    }
    for p in 0..PHASES {
        for pt in 0..POINTS {
            let run = &scratch.local[(p * POINTS + pt) * tiles..][..tiles];
            // SAFETY: see `transform_group`: this plane's columns are its own.
            unsafe { out.write_run(base + pt * stride_point + p * stride_phase, run) };
        }
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
        || Scratch::<T>::new(d, PHASES),
        |scratch, job| {
            let (s, ch) = (job / c, job % c);
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
    let u = transformed_kernels(w, &d, &KMAP, true);
    let out_plane = 4 * d.h * d.w;
    let mut out = vec![T::ZERO; d.n * d.co * out_plane];
    let mut v = Vec::new();
    let mut m = Vec::new();
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
        out[n0 * chunk..(n0 + gs) * chunk]
            .par_chunks_mut(out_plane)
            .enumerate()
            .for_each_init(
                || {
                    (
                        vec![T::ZERO; POINTS * d.tiles],
                        vec![T::ZERO; PHASES * d.h * d.w],
                    )
                },
                |scratch, (job, plane)| {
                    let (s, co) = (job / d.co, job % d.co);
                    let b = bias.map_or(T::ZERO, |b| b[co]);
                    forward_output_plane(&m, &d, nt, s, co, b, scratch, plane);
                },
            );
    }
    out
}

multiversion!(
/// Output transform of one `(sample, co)` plane of a group, plus bias: each phase is
/// built as an `(h, w)` plane in `q`, then the four are interleaved into `plane`.
fn forward_output_plane<T: Elem>(
    m: &[T],
    d: &Dims,
    nt: usize,
    s: usize,
    co: usize,
    bias: T,
    scratch: &mut (Vec<T>, Vec<T>),
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
    scratch: &mut (Vec<T>, Vec<T>),
    plane: &mut [T],
) {
    let (tiles, hw) = (d.tiles, d.h * d.w);
    let (local, q) = scratch;
    for p in 0..PHASES {
        for pt in 0..POINTS {
            let src = &m[((p * POINTS + pt) * d.co + co) * nt + s * tiles..][..tiles];
            local[pt * tiles..(pt + 1) * tiles].copy_from_slice(src);
        }
        tiles_output_transform(local, d, &mut q[p * hw..(p + 1) * hw], bias);
    }
    let ow = 2 * d.w;
    for my in 0..d.h {
        for py in 0..2 {
            let dst = &mut plane[(2 * my + py) * ow..(2 * my + py + 1) * ow];
            let even = &q[(2 * py) * hw + my * d.w..][..d.w];
            let odd = &q[(2 * py + 1) * hw + my * d.w..][..d.w];
            for ((pair, &e), &o) in dst.chunks_exact_mut(2).zip(even).zip(odd) {
                pair[0] = e;
                pair[1] = o;
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
    // The four phase planes of gy, each (h, w), as separate planes: gy_ph[s][co][p].
    let phase_planes = |n0: usize, gs: usize| -> Vec<T> {
        let per = PHASES * plane_in;
        par_build(gs * d.co * per, per, |job, out| {
            let (s, co) = (job / d.co, job % d.co);
            let src = &gy[((n0 + s) * d.co + co) * 4 * plane_in..][..4 * plane_in];
            let ow = 2 * d.w;
            for p in 0..PHASES {
                let (py, px) = (p / 2, p % 2);
                let dst = &mut out[p * plane_in..(p + 1) * plane_in];
                for my in 0..d.h {
                    for mx in 0..d.w {
                        dst[my * d.w + mx] = src[(2 * my + py) * ow + 2 * mx + px];
                    }
                }
            }
        })
    };
    // Input gradient: stacked kernels U'[point] (ci x 4co), laid out [point][ci][p][co].
    let u_dx = if want_dx {
        let per_phase = transformed_kernels(w, &d, &KMAP_T, false); // [p][point][ci][co]
        let mut stacked = vec![T::ZERO; POINTS * d.ci * PHASES * d.co];
        stacked
            .par_chunks_mut(d.ci * PHASES * d.co)
            .enumerate()
            .for_each(|(pt, dst)| {
                for ci in 0..d.ci {
                    for p in 0..PHASES {
                        let src = &per_phase[((p * POINTS + pt) * d.ci + ci) * d.co..][..d.co];
                        dst[(ci * PHASES + p) * d.co..][..d.co].copy_from_slice(src);
                    }
                }
            });
        stacked
    } else {
        Vec::new()
    };
    let mut dx = if want_dx {
        vec![T::ZERO; d.n * d.ci * plane_in]
    } else {
        Vec::new()
    };
    // Weight gradient accumulators dU[p][point] (ci x co).
    let mut du = if want_dw {
        vec![T::ZERO; PHASES * POINTS * d.ci * d.co]
    } else {
        Vec::new()
    };
    let (mut vg, mut mx, mut vx, mut zg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n0 in (0..d.n).step_by(g) {
        let gs = g.min(d.n - n0);
        let nt = gs * d.tiles;
        let gyp = phase_planes(n0, gs);
        // The group's gy phase planes as a (gs, 4 * co, h, w) tensor: plane (s, p, co)
        // sits at ((s * co + co) * 4 + p).
        if want_dx {
            // Vg[point][p][co][nt]: input transforms of the gy phase planes.
            vg.resize(POINTS * PHASES * d.co * nt, T::ZERO);
            transform_gy_group(&gyp, &d, gs, &mut vg, nt);
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
            dx[n0 * d.ci * plane_in..(n0 + gs) * d.ci * plane_in]
                .par_chunks_mut(plane_in)
                .enumerate()
                .for_each_init(
                    || vec![T::ZERO; POINTS * d.tiles],
                    |local, (job, plane)| {
                        let (s, ci) = (job / d.ci, job % d.ci);
                        input_grad_output_plane(&mx, &d, nt, s, ci, local, plane);
                    },
                );
        }
        if want_dw {
            // V[point][p][ci][nt] of x (forward windows) and Z[point][p][co][nt] of gy tiles.
            vx.resize(POINTS * PHASES * d.ci * nt, T::ZERO);
            transform_group(x, d.ci, n0, gs, &d, &OFF, &mut vx, nt);
            zg.resize(POINTS * PHASES * d.co * nt, T::ZERO);
            grad_tiles_group(&gyp, &d, gs, &mut zg, nt);
            // dU[p][point] (ci x co) += V[point][p] (ci x nt) * Z[point][p]^T (nt x co)
            du.par_chunks_mut(d.ci * d.co)
                .enumerate()
                .for_each(|(job, dj)| {
                    let (p, pt) = (job / POINTS, job % POINTS);
                    let vj = &vx[(pt * PHASES + p) * d.ci * nt..][..d.ci * nt];
                    let zj = &zg[(pt * PHASES + p) * d.co * nt..][..d.co * nt];
                    gemm_rm(
                        d.ci,
                        d.co,
                        nt,
                        dj,
                        d.co,
                        1,
                        true,
                        vj,
                        nt,
                        1,
                        zj,
                        1,
                        nt,
                        gemm::Parallelism::None,
                    );
                });
        }
    }
    let dw = want_dw.then(|| {
        let mut dw = vec![T::ZERO; d.ci * d.co * 16];
        dw.par_chunks_mut(d.co * 16)
            .enumerate()
            .for_each(|(ci, dst)| {
                let mut pts = vec![[T::ZERO; POINTS]; d.co];
                for p in 0..PHASES {
                    let (py, px) = (p / 2, p % 2);
                    for pt in 0..POINTS {
                        let src = &du[((p * POINTS + pt) * d.ci + ci) * d.co..][..d.co];
                        for (slot, &v) in pts.iter_mut().zip(src) {
                            slot[pt] = v;
                        }
                    }
                    for (co, u) in pts.iter().enumerate() {
                        let dg = kernel_grad_transform(u);
                        for a in 0..2 {
                            for b in 0..2 {
                                dst[(co * 4 + KMAP[py][a]) * 4 + KMAP[px][b]] = dg[a][b];
                            }
                        }
                    }
                }
            });
        dw
    });
    (want_dx.then_some(dx), dw)
}

/// Input transforms (windows `OFF_T`) of a group's gy phase planes into
/// `vg[point][p][co][nt]`.
fn transform_gy_group<T: Elem>(gyp: &[T], d: &Dims, gs: usize, vg: &mut [T], nt: usize) {
    let plane_in = d.h * d.w;
    let stride_phase = d.co * nt;
    let stride_point = PHASES * stride_phase;
    let shared = Shared::new(vg);
    (0..gs * d.co).into_par_iter().for_each_init(
        || Scratch::<T>::new(d, 1),
        |scratch, job| {
            let (s, co) = (job / d.co, job % d.co);
            for p in 0..PHASES {
                let plane = &gyp[((s * d.co + co) * PHASES + p) * plane_in..][..plane_in];
                // Job (s, co) writes only columns s * tiles .. of row co: disjoint.
                let base = p * stride_phase + co * nt + s * d.tiles;
                transform_one_phase(plane, scratch, d, p, shared, base, stride_point);
            }
        },
    );
}

multiversion!(
/// Input transform of one gy phase plane `p` (windows `OFF_T`).
fn transform_one_phase<T: Elem>(
    plane: &[T],
    scratch: &mut Scratch<T>,
    d: &Dims,
    p: usize,
    out: Shared<T>,
    base: usize,
    stride_point: usize,
) = transform_one_phase_body;);

#[inline(always)]
fn transform_one_phase_body<T: Elem>(
    plane: &[T],
    scratch: &mut Scratch<T>,
    d: &Dims,
    p: usize,
    out: Shared<T>,
    base: usize,
    stride_point: usize,
) {
    let tiles = d.tiles;
    scratch.pad.load(plane, d.h, d.w);
    let (py, px) = (p / 2, p % 2);
    windows_transform(
        &scratch.pad,
        &mut scratch.colt,
        d,
        OFF_T[py],
        OFF_T[px],
        &mut scratch.local,
    );
    for pt in 0..POINTS {
        // SAFETY: see `transform_gy_group`.
        unsafe {
            out.write_run(
                base + pt * stride_point,
                &scratch.local[pt * tiles..][..tiles],
            )
        };
    }
}

/// Tile transforms `A z A^T` of a group's gy phase planes into `zg[point][p][co][nt]`
/// (tiles past the plane edge read zeros).
fn grad_tiles_group<T: Elem>(gyp: &[T], d: &Dims, gs: usize, zg: &mut [T], nt: usize) {
    let plane_in = d.h * d.w;
    let stride_phase = d.co * nt;
    let stride_point = PHASES * stride_phase;
    let shared = Shared::new(zg);
    (0..gs * d.co).into_par_iter().for_each_init(
        || (vec![T::ZERO; 4 * d.tw], vec![T::ZERO; POINTS * d.tiles]),
        |(pair_rows, local), job| {
            let (s, co) = (job / d.co, job % d.co);
            for p in 0..PHASES {
                let plane = &gyp[((s * d.co + co) * PHASES + p) * plane_in..][..plane_in];
                // Job (s, co) writes only columns s * tiles .. of row co: disjoint.
                let base = p * stride_phase + co * nt + s * d.tiles;
                grad_tiles_phase(plane, d, pair_rows, local, shared, base, stride_point);
            }
        },
    );
}

multiversion!(
/// `A z A^T` of every 2x2 tile of one gy phase plane.
fn grad_tiles_phase<T: Elem>(
    plane: &[T],
    d: &Dims,
    pair_rows: &mut [T],
    local: &mut [T],
    out: Shared<T>,
    base: usize,
    stride_point: usize,
) = grad_tiles_phase_body;);

#[inline(always)]
fn grad_tiles_phase_body<T: Elem>(
    plane: &[T],
    d: &Dims,
    pair_rows: &mut [T],
    local: &mut [T],
    out: Shared<T>,
    base: usize,
    stride_point: usize,
) {
    let tiles = d.tiles;
    grad_tiles_transform(plane, d, pair_rows, local);
    for pt in 0..POINTS {
        // SAFETY: see `grad_tiles_group`.
        unsafe { out.write_run(base + pt * stride_point, &local[pt * tiles..][..tiles]) };
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
    local: &mut [T],
    plane: &mut [T],
) = input_grad_output_plane_body;);

#[inline(always)]
fn input_grad_output_plane_body<T: Elem>(
    mx: &[T],
    d: &Dims,
    nt: usize,
    s: usize,
    ci: usize,
    local: &mut [T],
    plane: &mut [T],
) {
    let tiles = d.tiles;
    for pt in 0..POINTS {
        let src = &mx[(pt * d.ci + ci) * nt + s * tiles..][..tiles];
        local[pt * tiles..(pt + 1) * tiles].copy_from_slice(src);
    }
    tiles_output_transform(local, d, plane, T::ZERO);
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

    /// The `Auto` choice on the MNIST decoder's up-sampling layers (see [`worthwhile`]).
    #[test]
    fn auto_picks_winograd_for_wide_layers_only() {
        let layer = |ci: usize, co: usize, h: usize| ConvGeom {
            n: 100,
            ca: co,
            ha: 2 * h,
            wa: 2 * h,
            cb: ci,
            hb: h,
            wb: h,
            kh: 4,
            kw: 4,
            sh: 2,
            sw: 2,
            ph: 1,
            pw: 1,
        };
        for (wd, want) in [(1, true), (4, false)] {
            assert_eq!(
                worthwhile(&layer(1024 / wd, 512 / wd, 7)),
                want,
                "dec1 /{wd}"
            );
            assert_eq!(
                worthwhile(&layer(512 / wd, 256 / wd, 14)),
                want,
                "dec2 /{wd}"
            );
        }
        assert!(worthwhile(&layer(256, 128, 14)));
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
