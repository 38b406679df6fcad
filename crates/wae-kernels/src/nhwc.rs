//! Channels-last (NHWC) inference kernels on plain f32 slices: convolution with bias and
//! ReLU written straight into a channel slice of a shared output, pools, global mean.
//! Forward only (no autograd, no candle types in the hot loops), for networks that only
//! infer, like the FID Inception-v3.
//!
//! # Why channels-last
//! With the channels of a pixel contiguous, a convolution over a whole batch is one
//! matrix product `(N*Ho*Wo, kh*kw*C_in) x (kh*kw*C_in, C_out)`: a 1x1 convolution reads
//! its input as that left matrix without any copy, and a k x k one gathers it with one
//! contiguous copy of `C_in` (or `kw * C_in`) values per tap. The output of the product
//! is again channels-last, so the branches of an Inception block write their results
//! into column ranges of one output matrix (the concatenation costs nothing), and bias +
//! ReLU run on each block of output rows while it is still in cache. The NCHW kernels of
//! [`crate::conv2d`] instead run one product per sample (`C_out x C_in*kh*kw` times
//! `C_in*kh*kw x H*W`), whose column count (`H*W`: 64 at the Inception's 8x8 blocks) is
//! too small for the GEMM to run at speed, and need separate candle ops for ReLU,
//! pooling and concatenation.
//!
//! # Work split
//! The output rows (pixels) are cut into blocks by shape alone; the blocks run in
//! parallel, each gathering its im2col rows into a scratch buffer of about
//! 4 MiB, running its product single-threaded and applying bias + ReLU
//! while the rows are in cache. With too few rows for several blocks, the one block's
//! product runs on every thread. Since the split does not depend on the thread count,
//! neither do the results (the `nhwc` test compares pools of 1, 2 and 3 threads bit for
//! bit). They do depend, by float rounding, on how many images are convolved together:
//! the gemm crate picks its blocking of the sum from the matrix sizes.

use rayon::prelude::*;

use crate::cpu::{Elem, Pool, gemm_rm};
use crate::simd::multiversion;
use crate::{Error, Padding2d, Result};

/// Values of the im2col scratch buffer one block of output rows aims at (4 MiB of f32).
const TARGET_COLS: usize = 1 << 20;
/// The fewest output rows of a block when the rows are split into several.
const MIN_BLOCK_ROWS: usize = 256;
/// Blocks the rows are split into at least, where there are enough rows.
const MIN_BLOCKS: usize = 8;

/// A batch of feature maps, channels-last: `data[((n * h + y) * w + x) * c + ch]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMap {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

impl FeatureMap {
    /// `(n, h, w, c)` zeros.
    pub fn zeros(n: usize, h: usize, w: usize, c: usize) -> Self {
        Self {
            n,
            h,
            w,
            c,
            data: vec![0.0; n * h * w * c],
        }
    }

    /// Wraps channels-last `data` of shape `(n, h, w, c)`.
    pub fn from_nhwc(data: Vec<f32>, n: usize, h: usize, w: usize, c: usize) -> Result<Self> {
        if data.len() != n * h * w * c {
            return Err(Error::Shape(format!(
                "FeatureMap: {} values for shape ({n}, {h}, {w}, {c})",
                data.len()
            )));
        }
        Ok(Self { n, h, w, c, data })
    }

    /// Converts NCHW `data` of shape `(n, c, h, w)` to channels-last.
    pub fn from_nchw(data: &[f32], n: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        if data.len() != n * c * h * w {
            return Err(Error::Shape(format!(
                "FeatureMap::from_nchw: {} values for shape ({n}, {c}, {h}, {w})",
                data.len()
            )));
        }
        let plane = h * w;
        let mut out = Self::zeros(n, h, w, c);
        if plane > 0 && c > 0 {
            out.data
                .par_chunks_mut(plane * c)
                .zip(data.par_chunks(plane * c))
                .for_each(|(dst, src)| {
                    for (p, px) in dst.chunks_exact_mut(c).enumerate() {
                        for (ch, v) in px.iter_mut().enumerate() {
                            *v = src[ch * plane + p];
                        }
                    }
                });
        }
        Ok(out)
    }

    /// The data in NCHW order, shape `(n, c, h, w)`.
    pub fn to_nchw(&self) -> Vec<f32> {
        let (plane, c) = (self.h * self.w, self.c);
        let mut out = vec![0.0; self.data.len()];
        if plane > 0 && c > 0 {
            out.par_chunks_mut(plane * c)
                .zip(self.data.par_chunks(plane * c))
                .for_each(|(dst, src)| {
                    for (p, px) in src.chunks_exact(c).enumerate() {
                        for (ch, &v) in px.iter().enumerate() {
                            dst[ch * plane + p] = v;
                        }
                    }
                });
        }
        out
    }

    /// `(n, h, w, c)`.
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        (self.n, self.h, self.w, self.c)
    }

    /// The channels-last values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Consumes the map, returning its channels-last values.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }

    /// Checks that `(n, h, w)` match and `c0 .. c0 + c` fits in the channels.
    fn check_target(&self, n: usize, h: usize, w: usize, c0: usize, c: usize) -> Result<()> {
        if (self.n, self.h, self.w) != (n, h, w) || c0 + c > self.c {
            return Err(Error::Shape(format!(
                "output ({}, {}, {}, {}) cannot take ({n}, {h}, {w}) x channels {c0}..{}",
                self.n,
                self.h,
                self.w,
                self.c,
                c0 + c
            )));
        }
        Ok(())
    }
}

/// A 2-d convolution with bias and optional ReLU, its weight stored as the right-hand
/// matrix of the channels-last product: `(kh * kw * C_in, C_out)`, rows ordered by
/// `(ky, kx, c_in)`.
#[derive(Clone, Debug)]
pub struct Conv2dNhwc {
    c_in: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    padding: Padding2d,
    relu: bool,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// Output length along one axis, or `None` when the kernel does not fit.
fn out_len(input: usize, pad: usize, k: usize, stride: usize) -> Option<usize> {
    let padded = input + pad;
    (padded >= k && stride > 0).then(|| (padded - k) / stride + 1)
}

impl Conv2dNhwc {
    /// From a PyTorch-layout weight `(C_out, C_in, kh, kw)` (`shape`), row-major, and an
    /// optional bias of `C_out` values. `relu` applies `max(0, .)` after the bias.
    pub fn new(
        weight: &[f32],
        shape: [usize; 4],
        bias: Option<&[f32]>,
        stride: (usize, usize),
        padding: Padding2d,
        relu: bool,
    ) -> Result<Self> {
        let [c_out, c_in, kh, kw] = shape;
        if weight.len() != c_out * c_in * kh * kw || kh == 0 || kw == 0 || c_in == 0 {
            return Err(Error::Shape(format!(
                "Conv2dNhwc: {} weight values for shape {shape:?}",
                weight.len()
            )));
        }
        if stride.0 == 0 || stride.1 == 0 {
            return Err(Error::Shape("Conv2dNhwc: stride 0".into()));
        }
        let bias = match bias {
            Some(b) if b.len() != c_out => {
                return Err(Error::Shape(format!(
                    "Conv2dNhwc: {} bias values for {c_out} output channels",
                    b.len()
                )));
            }
            Some(b) => b.to_vec(),
            None => vec![0.0; c_out],
        };
        let mut w = vec![0.0; weight.len()];
        for o in 0..c_out {
            for i in 0..c_in {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let row = (ky * kw + kx) * c_in + i;
                        w[row * c_out + o] = weight[((o * c_in + i) * kh + ky) * kw + kx];
                    }
                }
            }
        }
        Ok(Self {
            c_in,
            c_out,
            kh,
            kw,
            stride,
            padding,
            relu,
            weight: w,
            bias,
        })
    }

    /// From candle tensors: `weight` `(C_out, C_in, kh, kw)` and `bias` `(C_out)`, any
    /// float dtype and device (converted to f32 on the host).
    pub fn from_tensors(
        weight: &candle_core::Tensor,
        bias: Option<&candle_core::Tensor>,
        stride: (usize, usize),
        padding: Padding2d,
        relu: bool,
    ) -> Result<Self> {
        let host = |t: &candle_core::Tensor| -> Result<Vec<f32>> {
            Ok(t.to_device(&candle_core::Device::Cpu)?
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?)
        };
        let (c_out, c_in, kh, kw) = weight.dims4()?;
        let b = bias.map(host).transpose()?;
        Self::new(
            &host(weight)?,
            [c_out, c_in, kh, kw],
            b.as_deref(),
            stride,
            padding,
            relu,
        )
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.c_in
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.c_out
    }

    /// Output `(height, width)` for an input of `(h, w)`.
    pub fn out_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let p = self.padding;
        match (
            out_len(h, p.top + p.bottom, self.kh, self.stride.0),
            out_len(w, p.left + p.right, self.kw, self.stride.1),
        ) {
            (Some(ho), Some(wo)) if ho > 0 && wo > 0 => Ok((ho, wo)),
            _ => Err(Error::Shape(format!(
                "Conv2dNhwc: a {}x{} kernel does not fit a {h}x{w} input with padding {p:?}",
                self.kh, self.kw
            ))),
        }
    }

    /// The convolution of `x` as a new map.
    pub fn forward(&self, x: &FeatureMap) -> Result<FeatureMap> {
        let (ho, wo) = self.out_size(x.h, x.w)?;
        let mut out = FeatureMap::zeros(x.n, ho, wo, self.c_out);
        self.forward_into(x, &mut out, 0)?;
        Ok(out)
    }

    /// Writes the convolution of `x` into channels `c0 .. c0 + C_out` of `out`, whose
    /// batch size and plane must be the output's; its other channels are left alone.
    pub fn forward_into(&self, x: &FeatureMap, out: &mut FeatureMap, c0: usize) -> Result<()> {
        if x.c != self.c_in {
            return Err(Error::Shape(format!(
                "Conv2dNhwc: input has {} channels, the weight expects {}",
                x.c, self.c_in
            )));
        }
        let (ho, wo) = self.out_size(x.h, x.w)?;
        out.check_target(x.n, ho, wo, c0, self.c_out)?;
        let rows = out.pixels();
        if rows == 0 || self.c_out == 0 {
            return Ok(());
        }
        let k = self.kh * self.kw * self.c_in;
        let ct = out.c;
        let pointwise = self.kh == 1
            && self.kw == 1
            && self.stride == (1, 1)
            && self.padding == Padding2d::uniform(0);
        let threads = rayon::current_num_threads().max(1);
        let blocks = block_count(rows, k);
        let block_rows = rows.div_ceil(blocks);
        // Blocks in parallel with single-threaded products, or one block with the
        // product on every thread.
        let per_block = blocks > 1;
        let par = if per_block {
            gemm::Parallelism::None
        } else {
            gemm::Parallelism::Rayon(threads)
        };
        let geo = Gather {
            h: x.h,
            w: x.w,
            c: x.c,
            ho,
            wo,
            kh: self.kh,
            kw: self.kw,
            sh: self.stride.0,
            sw: self.stride.1,
            top: self.padding.top,
            left: self.padding.left,
        };
        let scratch = Pool::<f32>::new();
        let run = |b: usize, dst: &mut [f32]| {
            let r0 = b * block_rows;
            let m = dst.len() / ct;
            let mut cols = Vec::new();
            let lhs: &[f32] = if pointwise {
                &x.data[r0 * k..(r0 + m) * k]
            } else {
                cols = scratch.take(m * k);
                if per_block {
                    im2col_rows(&geo, &x.data, r0, &mut cols);
                } else {
                    let part = m.div_ceil(threads * 4).max(1);
                    cols.par_chunks_mut(part * k)
                        .enumerate()
                        .for_each(|(i, c)| im2col_rows(&geo, &x.data, r0 + i * part, c));
                }
                &cols
            };
            gemm_rm(
                m,
                self.c_out,
                k,
                &mut dst[c0..],
                ct,
                1,
                false,
                lhs,
                k,
                1,
                &self.weight,
                self.c_out,
                1,
                par,
            );
            bias_act_rows(dst, ct, c0, &self.bias, self.relu);
            if !cols.is_empty() {
                scratch.give(cols);
            }
        };
        let chunks = out.data.chunks_mut(block_rows * ct);
        if per_block {
            chunks
                .collect::<Vec<_>>()
                .into_par_iter()
                .enumerate()
                .for_each(|(b, dst)| run(b, dst));
        } else {
            chunks.enumerate().for_each(|(b, dst)| run(b, dst));
        }
        Ok(())
    }
}

/// How many blocks `rows` output rows with `k` im2col columns are cut into, by shape
/// alone: enough for scratch buffers of about [`TARGET_COLS`] values and at least
/// [`MIN_BLOCKS`] to share out over threads, but none under [`MIN_BLOCK_ROWS`] rows
/// (one block, whose product then runs on every thread, when there are fewer).
fn block_count(rows: usize, k: usize) -> usize {
    (rows * k)
        .div_ceil(TARGET_COLS)
        .max(MIN_BLOCKS)
        .min(rows / MIN_BLOCK_ROWS)
        .max(1)
}

/// The im2col geometry of one convolution (input plane, output plane, kernel, strides,
/// leading padding).
struct Gather {
    h: usize,
    w: usize,
    c: usize,
    ho: usize,
    wo: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    top: usize,
    left: usize,
}

/// Fills `cols` (`m` rows of `kh * kw * c` values) with the im2col rows of output pixels
/// `r0 .. r0 + m` (`r = (n * ho + yo) * wo + xo`); taps in the padding read zero.
fn im2col_rows(g: &Gather, x: &[f32], r0: usize, cols: &mut [f32]) {
    let k = g.kh * g.kw * g.c;
    let tap_row = g.kw * g.c;
    for (i, row) in cols.chunks_exact_mut(k).enumerate() {
        let r = r0 + i;
        let xo = r % g.wo;
        let yo = (r / g.wo) % g.ho;
        let n = r / (g.wo * g.ho);
        // Valid kernel columns: 0 <= xo*sw + kx - left < w.
        let x_base = (xo * g.sw) as isize - g.left as isize;
        let kx_lo = (-x_base).max(0) as usize;
        let kx_hi = ((g.w as isize - x_base).max(0) as usize).min(g.kw);
        for (ky, dst) in row.chunks_exact_mut(tap_row).enumerate() {
            let yi = (yo * g.sh + ky) as isize - g.top as isize;
            if yi < 0 || yi >= g.h as isize || kx_lo >= kx_hi {
                dst.fill(0.0);
                continue;
            }
            let src_row = (n * g.h + yi as usize) * g.w;
            dst[..kx_lo * g.c].fill(0.0);
            dst[kx_hi * g.c..].fill(0.0);
            if g.sw == 1 || kx_hi - kx_lo == 1 {
                // The valid taps read one contiguous run of pixels.
                let x0 = (x_base + kx_lo as isize) as usize;
                let len = (kx_hi - kx_lo) * g.c;
                dst[kx_lo * g.c..kx_hi * g.c].copy_from_slice(&x[(src_row + x0) * g.c..][..len]);
            } else {
                for kx in kx_lo..kx_hi {
                    let xi = (x_base + kx as isize) as usize;
                    dst[kx * g.c..(kx + 1) * g.c]
                        .copy_from_slice(&x[(src_row + xi) * g.c..][..g.c]);
                }
            }
        }
    }
}

multiversion!(
/// Adds the bias (then ReLU when `relu`) to channels `c0 .. c0 + bias.len()` of every
/// row (of `ct` values) of `dst`.
fn bias_act_rows<T: Elem>(dst: &mut [T], ct: usize, c0: usize, bias: &[T], relu: bool) = bias_act_body;);

#[inline(always)]
fn bias_act_body<T: Elem>(dst: &mut [T], ct: usize, c0: usize, bias: &[T], relu: bool) {
    let cols = c0..c0 + bias.len();
    if relu {
        for row in dst.chunks_exact_mut(ct) {
            for (v, &b) in row[cols.clone()].iter_mut().zip(bias) {
                let s = *v + b;
                // `s > 0` is false for NaN, which stays NaN as with `max(0, .)` in PyTorch.
                *v = if s > T::ZERO || s.partial_cmp(&s).is_none() {
                    s
                } else {
                    T::ZERO
                };
            }
        }
    } else {
        for row in dst.chunks_exact_mut(ct) {
            for (v, &b) in row[cols.clone()].iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}

/// A square pooling window: `k x k`, stride `stride`, `pad` on every side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolWindow {
    /// Window side.
    pub k: usize,
    /// Stride along both axes.
    pub stride: usize,
    /// Padding on every side (never part of a max or of an average's count).
    pub pad: usize,
}

impl PoolWindow {
    fn out_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        match (
            out_len(h, 2 * self.pad, self.k, self.stride),
            out_len(w, 2 * self.pad, self.k, self.stride),
        ) {
            // `pad < k` also keeps `k >= 1`: a window always holds an input position.
            (Some(ho), Some(wo)) if ho > 0 && wo > 0 && self.pad < self.k => Ok((ho, wo)),
            _ => Err(Error::Shape(format!(
                "pool {self:?} does not fit a {h}x{w} input"
            ))),
        }
    }

    /// The valid input range `lo..hi` of output position `o` along an axis of `len`.
    fn span(&self, o: usize, len: usize) -> (usize, usize) {
        let start = (o * self.stride) as isize - self.pad as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + self.k as isize).max(0) as usize).min(len);
        (lo, hi)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PoolKind {
    Max,
    /// Mean over the window's positions inside the input (`count_include_pad = False`).
    MeanValid,
}

/// Max pool of `x` (padding never wins, as with PyTorch's `-inf` padding).
pub fn max_pool(x: &FeatureMap, window: PoolWindow) -> Result<FeatureMap> {
    let (ho, wo) = window.out_size(x.h, x.w)?;
    let mut out = FeatureMap::zeros(x.n, ho, wo, x.c);
    max_pool_into(x, window, &mut out, 0)?;
    Ok(out)
}

/// [`max_pool`] written into channels `c0 .. c0 + C` of `out`.
pub fn max_pool_into(
    x: &FeatureMap,
    window: PoolWindow,
    out: &mut FeatureMap,
    c0: usize,
) -> Result<()> {
    pool_into(x, window, PoolKind::Max, out, c0)
}

/// Average pool of `x` over the window positions inside the input (PyTorch's
/// `avg_pool2d(..., count_include_pad=False)`): the sum of the valid taps, in row-major
/// window order, divided by their count.
pub fn avg_pool_exclude_pad(x: &FeatureMap, window: PoolWindow) -> Result<FeatureMap> {
    let (ho, wo) = window.out_size(x.h, x.w)?;
    let mut out = FeatureMap::zeros(x.n, ho, wo, x.c);
    pool_into(x, window, PoolKind::MeanValid, &mut out, 0)?;
    Ok(out)
}

fn pool_into(
    x: &FeatureMap,
    window: PoolWindow,
    kind: PoolKind,
    out: &mut FeatureMap,
    c0: usize,
) -> Result<()> {
    let (ho, wo) = window.out_size(x.h, x.w)?;
    out.check_target(x.n, ho, wo, c0, x.c)?;
    let ct = out.c;
    if out.data.is_empty() || x.c == 0 {
        return Ok(());
    }
    out.data
        .par_chunks_mut(wo * ct)
        .enumerate()
        .for_each(|(row, dst)| {
            let (n, yo) = (row / ho, row % ho);
            let (y_lo, y_hi) = window.span(yo, x.h);
            for xo in 0..wo {
                let (x_lo, x_hi) = window.span(xo, x.w);
                let d = &mut dst[xo * ct + c0..][..x.c];
                let mut first = true;
                for yi in y_lo..y_hi {
                    for xi in x_lo..x_hi {
                        let s = &x.data[((n * x.h + yi) * x.w + xi) * x.c..][..x.c];
                        if first {
                            d.copy_from_slice(s);
                            first = false;
                        } else if kind == PoolKind::Max {
                            max_assign(d, s);
                        } else {
                            add_assign(d, s);
                        }
                    }
                }
                if kind == PoolKind::MeanValid {
                    let count = ((y_hi - y_lo) * (x_hi - x_lo)) as f32;
                    div_assign(d, count);
                }
            }
        });
    Ok(())
}

multiversion!(
fn max_assign<T: Elem>(d: &mut [T], s: &[T]) = max_assign_body;);

#[inline(always)]
fn max_assign_body<T: Elem>(d: &mut [T], s: &[T]) {
    for (a, &b) in d.iter_mut().zip(s) {
        // NaN-propagating like PyTorch's max pool.
        if b > *a || b.partial_cmp(&b).is_none() {
            *a = b;
        }
    }
}

multiversion!(
fn add_assign<T: Elem>(d: &mut [T], s: &[T]) = add_assign_body;);

#[inline(always)]
fn add_assign_body<T: Elem>(d: &mut [T], s: &[T]) {
    for (a, &b) in d.iter_mut().zip(s) {
        *a += b;
    }
}

multiversion!(
fn div_assign<T: Elem>(d: &mut [T], by: T) = div_assign_body;);

#[inline(always)]
fn div_assign_body<T: Elem>(d: &mut [T], by: T) {
    for a in d.iter_mut() {
        *a = *a / by;
    }
}

/// The mean over each map's plane: `(n, c)` row-major (global average pooling).
pub fn global_mean(x: &FeatureMap) -> Vec<f32> {
    let plane = x.h * x.w;
    let mut out = vec![0.0; x.n * x.c];
    if x.c == 0 || plane == 0 {
        return out;
    }
    out.par_chunks_mut(x.c).enumerate().for_each(|(n, d)| {
        let img = &x.data[n * plane * x.c..][..plane * x.c];
        for px in img.chunks_exact(x.c) {
            add_assign(d, px);
        }
        div_assign(d, plane as f32);
    });
    out
}
