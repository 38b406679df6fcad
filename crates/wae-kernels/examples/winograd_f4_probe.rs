//! Probe, not a kernel: the forward pass of the DCGAN up-sampling layer (4x4 transposed
//! convolution, stride 2, padding 1) with Winograd F(4x4, 2x2) on each of its four
//! phases, timed against `wae_kernels::conv_transpose2d` (GEMM + col2im) on the same
//! input, and checked against it. It answers whether F(4x4, 2x2)'s fewer products
//! survive its transforms at the 1/4-width MNIST sizes (docs/performance.md, session 15).
//! Plain loops, whole batch at once, f32; nothing here is used by the library.
//!
//! `cargo run --release -p wae-kernels --example winograd_f4_probe -- CI CO H [BATCH] [REPS]`
//! (for example `256 128 7` and `128 64 14`).
//!
//! Per axis, output `y[2m] = x[m-1] w3 + x[m] w1` and `y[2m+1] = x[m] w2 + x[m+1] w0`: two
//! 2-tap correlations (phases), each computed four outputs at a time from a 5-wide
//! window as `y = A^T [(G g) * (B^T d)]` with the points 0, 1, -1, 2 and infinity.

#![allow(clippy::needless_range_loop)] // index arithmetic on 5x5 transform matrices

use std::time::Instant;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

#[global_allocator]
static ALLOC: wae_kernels::alloc::LargeBlockCache =
    wae_kernels::alloc::LargeBlockCache::new(1 << 30);

const A: usize = 5; // transform points per axis
const P: usize = A * A; // points per tile
// B^T = [[2, -1, -2, 1, 0], [0, 2, 1, -1, 0], [0, -2, 3, -1, 0], [0, -1, 0, 1, 0],
//        [0, 2, -1, -2, 1]] (written out in `apply_bt`);
// A^T = [[1, 1, 1, 1, 0], [0, 1, -1, 2, 0], [0, 1, 1, 4, 0], [0, 1, -1, 8, 1]] (`apply_at`).
const G: [[f32; 2]; 5] = [
    [0.5, 0.],
    [0.5, 0.5],
    [1. / 6., -1. / 6.],
    [1. / 6., 1. / 3.],
    [0., 1.],
];
/// Kernel taps of phase p, per axis, and the window's first input index relative to 4t.
const KMAP: [[usize; 2]; 2] = [[3, 1], [2, 0]];
const OFF: [isize; 2] = [-1, 0];

/// A buffer shared by parallel tasks that write disjoint elements of it.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: every task writes only its own elements (see each use), and the buffer
// outlives the parallel loop.
unsafe impl Send for Ptr {}
// SAFETY: as above.
unsafe impl Sync for Ptr {}

impl Ptr {
    /// The pointer (a method, so that closures capture the whole `Ptr`, not its field).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

struct Shape {
    n: usize,
    ci: usize,
    co: usize,
    h: usize,
    tiles_axis: usize,
}

impl Shape {
    fn tiles(&self) -> usize {
        self.tiles_axis * self.tiles_axis
    }
    fn cols(&self) -> usize {
        self.n * self.tiles()
    }
}

/// U[pq][co][ci] for phase p (4), point q (25): G g G^T of the phase's 2x2 taps.
fn kernel_transform(s: &Shape, w: &[f32]) -> Vec<f32> {
    let mut u = vec![0f32; 4 * P * s.co * s.ci];
    let up = Ptr(u.as_mut_ptr());
    (0..s.ci).into_par_iter().for_each(|ci| {
        for co in 0..s.co {
            let base = (ci * s.co + co) * 16;
            for p in 0..4 {
                let (py, px) = (p / 2, p % 2);
                let g = |a: usize, b: usize| w[base + KMAP[py][a] * 4 + KMAP[px][b]];
                // tmp = G g (5x2), then tmp G^T (5x5).
                let mut t = [[0f32; 2]; 5];
                for (i, ti) in t.iter_mut().enumerate() {
                    for (b, tib) in ti.iter_mut().enumerate() {
                        *tib = G[i][0] * g(0, b) + G[i][1] * g(1, b);
                    }
                }
                for i in 0..A {
                    for j in 0..A {
                        let v = t[i][0] * G[j][0] + t[i][1] * G[j][1];
                        let pq = p * P + i * A + j;
                        // SAFETY: each (pq, co, ci) is written by the task of its ci only.
                        unsafe { *up.at((pq * s.co + co) * s.ci + ci) = v };
                    }
                }
            }
        }
    });
    u
}

/// `dst` rows `i` (of `len` at `i * stride`) = sum over `k` of `B^T[i][k]` times `src`
/// row `k`, with `B^T`'s zeros and small integers written out (vector loops over `len`).
fn apply_bt(src: &[f32], stride: usize, len: usize, dst: &mut [f32]) {
    for e in 0..len {
        let d = |k: usize| src[k * stride + e];
        let (d0, d1, d2, d3, d4) = (d(0), d(1), d(2), d(3), d(4));
        dst[e] = 2. * d0 - d1 - 2. * d2 + d3;
        dst[stride + e] = 2. * d1 + d2 - d3;
        dst[2 * stride + e] = -2. * d1 + 3. * d2 - d3;
        dst[3 * stride + e] = d3 - d1;
        dst[4 * stride + e] = 2. * d1 - d2 - 2. * d3 + d4;
    }
}

/// As [`apply_bt`] for `A^T` (4 rows out of 5).
fn apply_at(src: &[f32], stride: usize, len: usize, dst: &mut [f32], dst_stride: usize) {
    for e in 0..len {
        let m = |k: usize| src[k * stride + e];
        let (m0, m1, m2, m3, m4) = (m(0), m(1), m(2), m(3), m(4));
        dst[e] = m0 + m1 + m2 + m3;
        dst[dst_stride + e] = m1 - m2 + 2. * m3;
        dst[2 * dst_stride + e] = m1 + m2 + 4. * m3;
        dst[3 * dst_stride + e] = m1 - m2 + 8. * m3 + m4;
    }
}

/// V[pq][ci][n * tiles + t]: B^T d B of each phase's 5x5 window, all tiles of a plane at
/// once (rows of `tiles` elements).
fn input_transform(s: &Shape, x: &[f32]) -> Vec<f32> {
    let cols = s.cols();
    let tiles = s.tiles();
    let mut v = vec![0f32; 4 * P * s.ci * cols];
    let vp = Ptr(v.as_mut_ptr());
    let h = s.h as isize;
    // Jobs channel-major (rayon hands each thread runs of consecutive jobs): a thread
    // fills rows (pq, ci) front to back, and two threads rarely share a cache line.
    // Scratch per thread: d[u][c][t], then r[i][c][t] = (B^T d), then w[i][j][t] = (r B).
    let scratch = || {
        (
            vec![0f32; P * tiles],
            vec![0f32; P * tiles],
            vec![0f32; P * tiles],
        )
    };
    (0..s.n * s.ci)
        .into_par_iter()
        .for_each_init(scratch, |(d, r, w), job| {
            let (n, ci) = (job % s.n, job / s.n);
            let plane = n * s.ci + ci;
            let src = &x[plane * s.h * s.h..(plane + 1) * s.h * s.h];
            for p in 0..4 {
                let (py, px) = (p / 2, p % 2);
                d.fill(0.);
                for ty in 0..s.tiles_axis {
                    for tx in 0..s.tiles_axis {
                        let t = ty * s.tiles_axis + tx;
                        let y0 = 4 * ty as isize + OFF[py];
                        let x0 = 4 * tx as isize + OFF[px];
                        for u in 0..A {
                            let yy = y0 + u as isize;
                            if yy < 0 || yy >= h {
                                continue;
                            }
                            for c in 0..A {
                                let xx = x0 + c as isize;
                                if xx >= 0 && xx < h {
                                    d[(u * A + c) * tiles + t] = src[(yy * h + xx) as usize];
                                }
                            }
                        }
                    }
                }
                apply_bt(d, A * tiles, A * tiles, r);
                for i in 0..A {
                    let row = i * A * tiles;
                    apply_bt(&r[row..], tiles, tiles, &mut w[row..]);
                }
                for q in 0..P {
                    let at = ((p * P + q) * s.ci + ci) * cols + n * tiles;
                    // SAFETY: columns n * tiles .. + tiles of row (pq, ci) belong to this job.
                    let dst = unsafe { std::slice::from_raw_parts_mut(vp.at(at), tiles) };
                    dst.copy_from_slice(&w[q * tiles..(q + 1) * tiles]);
                }
            }
        });
    v
}

/// M[pq] = U[pq] (co x ci) V[pq] (ci x cols), the 100 products in parallel.
fn products(s: &Shape, u: &[f32], v: &[f32]) -> Vec<f32> {
    let cols = s.cols();
    let mut m = vec![0f32; 4 * P * s.co * cols];
    m.par_chunks_mut(s.co * cols)
        .enumerate()
        // SAFETY: row-major (co x ci), (ci x cols) and (co x cols) operands, each inside
        // its buffer; every task writes its own `dst`.
        .for_each(|(pq, dst)| unsafe {
            gemm::gemm(
                s.co,
                cols,
                s.ci,
                dst.as_mut_ptr(),
                1,
                cols as isize,
                false,
                u[pq * s.co * s.ci..].as_ptr(),
                1,
                s.ci as isize,
                v[pq * s.ci * cols..].as_ptr(),
                1,
                cols as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        });
    m
}

/// Y = A^T M A of every tile, written to the (N, CO, 2H, 2W) output.
fn output_transform(s: &Shape, m: &[f32], bias: &[f32]) -> Vec<f32> {
    let cols = s.cols();
    let tiles = s.tiles();
    let oh = 2 * s.h;
    let mut y = vec![0f32; s.n * s.co * oh * oh];
    let yp = Ptr(y.as_mut_ptr());
    // Channel-major jobs, as in the input transform: rows (pq, co) read front to back.
    // Scratch per thread: mm[i][j][t], t1[a][j][t] = (A^T mm), yt[a][b][t] = (t1 A).
    let scratch = || {
        (
            vec![0f32; P * tiles],
            vec![0f32; 4 * A * tiles],
            vec![0f32; 16 * tiles],
        )
    };
    (0..s.n * s.co)
        .into_par_iter()
        .for_each_init(scratch, |(mm, t1, yt), job| {
            let (n, co) = (job % s.n, job / s.n);
            let plane = n * s.co + co;
            // SAFETY: output plane (n, co) belongs to this job alone.
            let out = unsafe { std::slice::from_raw_parts_mut(yp.at(plane * oh * oh), oh * oh) };
            for p in 0..4 {
                let (py, px) = (p / 2, p % 2);
                for q in 0..P {
                    let at = ((p * P + q) * s.co + co) * cols + n * tiles;
                    mm[q * tiles..(q + 1) * tiles].copy_from_slice(&m[at..at + tiles]);
                }
                apply_at(mm, A * tiles, A * tiles, t1, A * tiles);
                for a in 0..4 {
                    apply_at(
                        &t1[a * A * tiles..],
                        tiles,
                        tiles,
                        &mut yt[a * 4 * tiles..],
                        tiles,
                    );
                }
                for ty in 0..s.tiles_axis {
                    for tx in 0..s.tiles_axis {
                        let t = ty * s.tiles_axis + tx;
                        for a in 0..4 {
                            let yy = 4 * ty + a;
                            if yy >= s.h {
                                continue;
                            }
                            for b in 0..4 {
                                let xx = 4 * tx + b;
                                if xx < s.h {
                                    out[(2 * yy + py) * oh + 2 * xx + px] =
                                        yt[(a * 4 + b) * tiles + t] + bias[co];
                                }
                            }
                        }
                    }
                }
            }
        });
    y
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("CI CO H [BATCH] [REPS]: positive integers")
        })
        .collect();
    let (ci, co, h) = (args[0], args[1], args[2]);
    let n = args.get(3).copied().unwrap_or(100);
    let reps = args.get(4).copied().unwrap_or(5);
    let s = Shape {
        n,
        ci,
        co,
        h,
        tiles_axis: h.div_ceil(4),
    };
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (n, ci, h, h), &dev)?;
    let w = (Tensor::randn(0f32, 1., (ci, co, 4, 4), &dev)? * (1.0 / (4.0 * ci as f64)))?;
    let b = Tensor::randn(0f32, 0.1, co, &dev)?;
    let (xv, wv, bv) = (
        x.flatten_all()?.to_vec1::<f32>()?,
        w.flatten_all()?.to_vec1::<f32>()?,
        b.to_vec1::<f32>()?,
    );
    wae_kernels::set_winograd_mode(wae_kernels::WinogradMode::Never);
    let mut best = [f64::INFINITY; 5];
    let mut ours = Vec::new();
    let mut reference = None;
    for _ in 0..reps {
        let t0 = Instant::now();
        let r = wae_kernels::conv_transpose2d(&x, &w, Some(&b), 2, 1, 0)?;
        best[0] = best[0].min(t0.elapsed().as_secs_f64());
        reference = Some(r);
        let t = Instant::now();
        let u = kernel_transform(&s, &wv);
        let t1 = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let v = input_transform(&s, &xv);
        let t2 = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let m = products(&s, &u, &v);
        let t3 = t.elapsed().as_secs_f64();
        drop((u, v));
        let t = Instant::now();
        ours = output_transform(&s, &m, &bv);
        let t4 = t.elapsed().as_secs_f64();
        for (b, t) in best[1..].iter_mut().zip([t1, t2, t3, t4]) {
            *b = b.min(t);
        }
    }
    let reference = reference
        .expect("at least one repetition")
        .flatten_all()?
        .to_vec1::<f32>()?;
    let (mut err, mut scale) = (0f64, 0f64);
    for (a, b) in ours.iter().zip(&reference) {
        err = err.max((a - b).abs() as f64);
        scale = scale.max(b.abs() as f64);
    }
    let total: f64 = best[1..].iter().sum();
    println!(
        "{ci}->{co} at {h}x{h}, batch {n}, best of {reps}, ms: GEMM + col2im {:.1}; F(4x4, 2x2) {:.1} \
         = kernel transform {:.1} + input transform {:.1} + products {:.1} + output transform {:.1}; \
         max |diff| {err:.2e} (max |y| {scale:.2e})",
        best[0] * 1e3,
        total * 1e3,
        best[1] * 1e3,
        best[2] * 1e3,
        best[3] * 1e3,
        best[4] * 1e3,
    );
    Ok(())
}
