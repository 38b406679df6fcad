//! 2-d convolution and transposed convolution as candle custom ops whose forward and
//! backward passes are im2col / col2im + GEMM on the CPU.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Storage, Tensor, WithDType,
};

use crate::cpu::{self, ConvGeom, Elem};
use crate::profile::{OpKind, Pass, count_madds, timed};
use crate::winograd;
use crate::{Error, Result};

/// Zero padding of a 2-d convolution's input, in pixels on each side.
///
/// TensorFlow's `SAME` padding is asymmetric for even kernels (a 7x7 input, 4x4 kernel,
/// stride 2 needs 1 row before and 2 after): give the two sides separately here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Padding2d {
    /// Rows added above the input.
    pub top: usize,
    /// Rows added below the input.
    pub bottom: usize,
    /// Columns added left of the input.
    pub left: usize,
    /// Columns added right of the input.
    pub right: usize,
}

impl Padding2d {
    /// The same padding `p` on all four sides.
    pub fn uniform(p: usize) -> Self {
        Self {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }

    fn is_symmetric(&self) -> bool {
        self.top == self.bottom && self.left == self.right && self.top == self.left
    }
}

/// Which of the two adjoint maps an op computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// `conv2d`: input `(N, c_in, H, W)`, weight `(c_out, c_in, kh, kw)`.
    Conv,
    /// `conv_transpose2d`: input `(N, c_in, H, W)`, weight `(c_in, c_out, kh, kw)`.
    Transposed,
}

/// The custom op: a convolution or a transposed convolution, with or without bias.
#[derive(Clone, Copy, Debug)]
struct ConvOp {
    direction: Direction,
    stride: usize,
    padding: Padding2d,
    /// Extra rows / columns at the bottom / right of a transposed convolution's output.
    output_padding: usize,
    /// A transposed convolution's output size, when it is cropped (overrides
    /// `output_padding`).
    output_size: Option<(usize, usize)>,
}

impl ConvOp {
    /// The geometry of this op applied to `x` with `weight` (shapes only).
    fn geometry(&self, x: &Shape, weight: &Shape) -> candle_core::Result<ConvGeom> {
        let (n, c_in, h, w) = x.dims4()?;
        let (w0, w1, kh, kw) = weight.dims4()?;
        let s = self.stride;
        if s == 0 {
            candle_core::bail!("convolution stride must be positive");
        }
        if w0 == 0 || w1 == 0 || kh == 0 || kw == 0 {
            candle_core::bail!("convolution weight {weight:?} has an empty dimension");
        }
        let p = self.padding;
        match self.direction {
            Direction::Conv => {
                if w1 != c_in {
                    candle_core::bail!(
                        "conv2d: input {x:?} has {c_in} channels, weight {weight:?} expects {w1}"
                    );
                }
                let (hp, wp) = (h + p.top + p.bottom, w + p.left + p.right);
                if hp < kh || wp < kw {
                    candle_core::bail!(
                        "conv2d: padded input {hp}x{wp} is smaller than the {kh}x{kw} kernel"
                    );
                }
                Ok(ConvGeom {
                    n,
                    ca: c_in,
                    ha: h,
                    wa: w,
                    cb: w0,
                    hb: (hp - kh) / s + 1,
                    wb: (wp - kw) / s + 1,
                    kh,
                    kw,
                    sh: s,
                    sw: s,
                    ph: p.top,
                    pw: p.left,
                })
            }
            Direction::Transposed => {
                if w0 != c_in {
                    candle_core::bail!(
                        "conv_transpose2d: input {x:?} has {c_in} channels, weight {weight:?} expects {w0}"
                    );
                }
                if !p.is_symmetric() {
                    candle_core::bail!("conv_transpose2d takes the same padding on all sides");
                }
                if self.output_padding >= s {
                    candle_core::bail!(
                        "conv_transpose2d: output_padding {} must be smaller than stride {s}",
                        self.output_padding
                    );
                }
                let full = |i: usize, k: usize| (i.max(1) - 1) * s + k + self.output_padding;
                let (fh, fw) = (full(h, kh), full(w, kw));
                if h == 0 || w == 0 || fh <= 2 * p.top || fw <= 2 * p.top {
                    candle_core::bail!(
                        "conv_transpose2d: input {x:?} with padding {} gives an empty output",
                        p.top
                    );
                }
                let (mut ha, mut wa) = (fh - 2 * p.top, fw - 2 * p.top);
                if let Some((oh, ow)) = self.output_size {
                    // Up to stride - 1 extra rows (as output_padding gives), or cropped.
                    let limit = |full: usize| full + s - 1 - self.output_padding;
                    if oh == 0 || ow == 0 || oh > limit(ha) || ow > limit(wa) {
                        candle_core::bail!(
                            "conv_transpose2d: output size {oh}x{ow} out of range 1..={}x{}",
                            limit(ha),
                            limit(wa)
                        );
                    }
                    (ha, wa) = (oh, ow);
                }
                Ok(ConvGeom {
                    n,
                    ca: w1,
                    ha,
                    wa,
                    cb: c_in,
                    hb: h,
                    wb: w,
                    kh,
                    kw,
                    sh: s,
                    sw: s,
                    ph: p.top,
                    pw: p.top,
                })
            }
        }
    }

    fn out_shape(&self, geo: &ConvGeom) -> Shape {
        match self.direction {
            Direction::Conv => (geo.n, geo.cb, geo.hb, geo.wb).into(),
            Direction::Transposed => (geo.n, geo.ca, geo.ha, geo.wa).into(),
        }
    }

    fn forward<T: Elem>(&self, geo: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
        match self.direction {
            Direction::Conv => cpu::conv_forward(geo, x, w, bias),
            Direction::Transposed if winograd::chosen(geo) => winograd::forward(geo, x, w, bias),
            Direction::Transposed => cpu::conv_adjoint(geo, x, w, bias),
        }
    }

    fn kind(&self) -> OpKind {
        match self.direction {
            Direction::Conv => OpKind::Conv2d,
            Direction::Transposed => OpKind::ConvTranspose2d,
        }
    }

    fn cpu_forward(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        timed(self.kind(), Pass::Forward, || {
            self.cpu_forward_untimed(x, w, bias)
        })
    }

    fn cpu_forward_untimed(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let geo = self.geometry(x.1.shape(), w.1.shape())?;
        count_madds(self.kind(), Pass::Forward, geo.madds());
        let bias_len = match self.direction {
            Direction::Conv => geo.cb,
            Direction::Transposed => geo.ca,
        };
        if let Some((_, bl)) = bias
            && bl.shape().dims() != [bias_len]
        {
            candle_core::bail!("convolution bias {:?} should be ({bias_len})", bl.shape());
        }
        let out = match (x.0, w.0) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(self.forward(
                &geo,
                contiguous::<f32>(x)?,
                contiguous::<f32>(w)?,
                bias.map(contiguous::<f32>).transpose()?,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(self.forward(
                &geo,
                contiguous::<f64>(x)?,
                contiguous::<f64>(w)?,
                bias.map(contiguous::<f64>).transpose()?,
            )),
            _ => candle_core::bail!(
                "wae-kernels convolution: input {:?} and weight {:?} must both be f32 or f64",
                x.0.dtype(),
                w.0.dtype()
            ),
        };
        Ok((out, self.out_shape(&geo)))
    }

    /// Gradients of the input, weight and bias (each only when `want` says so).
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        want: [bool; 3],
    ) -> candle_core::Result<[Option<Tensor>; 3]> {
        timed(self.kind(), Pass::Backward, || match x.dtype() {
            DType::F32 => self.backward_typed::<f32>(x, w, grad, want),
            DType::F64 => self.backward_typed::<f64>(x, w, grad, want),
            dt => candle_core::bail!("wae-kernels convolution backward: unsupported {dt:?}"),
        })
    }

    fn backward_typed<T: Elem + WithDType>(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        want: [bool; 3],
    ) -> candle_core::Result<[Option<Tensor>; 3]> {
        let geo = self.geometry(x.shape(), w.shape())?;
        let (x, w, grad) = (x.contiguous()?, w.contiguous()?, grad.contiguous()?);
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let xv = cpu_slice::<T>(&xs, xl)?;
        let wv = cpu_slice::<T>(&ws, wl)?;
        let gv = cpu_slice::<T>(&gs, gl)?;
        let [want_x, want_w, want_b] = want;
        let products = u64::from(want_x) + u64::from(want_w);
        count_madds(self.kind(), Pass::Backward, products * geo.madds());
        let dev = Device::Cpu;
        let (dx, dw) = match self.direction {
            Direction::Conv => {
                // grad is the feature side b; x the image side a.
                let dx = if want_x {
                    Some(cpu::conv_adjoint(&geo, gv, wv, None))
                } else {
                    None
                };
                let dw = if want_w {
                    Some(cpu::conv_kernel_grad(&geo, xv, gv))
                } else {
                    None
                };
                (dx, dw)
            }
            Direction::Transposed if winograd::chosen(&geo) => {
                winograd::backward(&geo, xv, wv, gv, want_x, want_w)
            }
            Direction::Transposed => {
                // grad is the image side a; x the feature side b. One im2col of the
                // gradient serves both products.
                if want_x || want_w {
                    let kernel_grad = want_w.then_some(xv);
                    let (dx, dw) = cpu::conv_forward_into(&geo, gv, wv, None, want_x, kernel_grad);
                    (want_x.then_some(dx), dw)
                } else {
                    (None, None)
                }
            }
        };
        let (out_channels, out_plane) = match self.direction {
            Direction::Conv => (geo.cb, geo.hb * geo.wb),
            Direction::Transposed => (geo.ca, geo.ha * geo.wa),
        };
        let db = if want_b {
            Some(cpu::channel_sums(gv, geo.n, out_channels, out_plane))
        } else {
            None
        };
        let dx = dx
            .map(|v| Tensor::from_vec(v, x.shape(), &dev))
            .transpose()?;
        let dw = dw
            .map(|v| Tensor::from_vec(v, w.shape(), &dev))
            .transpose()?;
        let db = db
            .map(|v| Tensor::from_vec(v, out_channels, &dev))
            .transpose()?;
        Ok([dx, dw, db])
    }
}

/// The contiguous data of a CPU tensor's storage, as `T`.
pub(crate) fn contiguous<'a, T: WithDType>(
    (storage, layout): (&'a CpuStorage, &Layout),
) -> candle_core::Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("wae-kernels: expected a contiguous tensor"),
    }
}

/// Runs `f` on the contiguous data of one CPU storage of f32 or f64.
pub(crate) fn dispatch1(
    name: &str,
    a: (&CpuStorage, &Layout),
    f32_fn: impl FnOnce(&[f32]) -> Vec<f32>,
    f64_fn: impl FnOnce(&[f64]) -> Vec<f64>,
) -> candle_core::Result<CpuStorage> {
    match a.0 {
        CpuStorage::F32(_) => Ok(CpuStorage::F32(f32_fn(contiguous(a)?))),
        CpuStorage::F64(_) => Ok(CpuStorage::F64(f64_fn(contiguous(a)?))),
        _ => candle_core::bail!("{name}: f32 or f64 only, got {:?}", a.0.dtype()),
    }
}

/// Runs `f` on the contiguous data of three CPU storages of the same float type.
pub(crate) fn dispatch3(
    name: &str,
    a: (&CpuStorage, &Layout),
    b: (&CpuStorage, &Layout),
    c: (&CpuStorage, &Layout),
    f32_fn: impl FnOnce(&[f32], &[f32], &[f32]) -> Vec<f32>,
    f64_fn: impl FnOnce(&[f64], &[f64], &[f64]) -> Vec<f64>,
) -> candle_core::Result<CpuStorage> {
    match (a.0, b.0, c.0) {
        (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => Ok(CpuStorage::F32(
            f32_fn(contiguous(a)?, contiguous(b)?, contiguous(c)?),
        )),
        (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => Ok(CpuStorage::F64(
            f64_fn(contiguous(a)?, contiguous(b)?, contiguous(c)?),
        )),
        _ => candle_core::bail!(
            "{name}: tensors must all be f32 or all f64, got {:?}, {:?}, {:?}",
            a.0.dtype(),
            b.0.dtype(),
            c.0.dtype()
        ),
    }
}

/// Runs `f` on the contiguous data of two CPU storages of the same float type.
pub(crate) fn dispatch2(
    name: &str,
    a: (&CpuStorage, &Layout),
    b: (&CpuStorage, &Layout),
    f32_fn: impl FnOnce(&[f32], &[f32]) -> Vec<f32>,
    f64_fn: impl FnOnce(&[f64], &[f64]) -> Vec<f64>,
) -> candle_core::Result<CpuStorage> {
    match (a.0, b.0) {
        (CpuStorage::F32(_), CpuStorage::F32(_)) => {
            Ok(CpuStorage::F32(f32_fn(contiguous(a)?, contiguous(b)?)))
        }
        (CpuStorage::F64(_), CpuStorage::F64(_)) => {
            Ok(CpuStorage::F64(f64_fn(contiguous(a)?, contiguous(b)?)))
        }
        _ => candle_core::bail!(
            "{name}: tensors must all be f32 or all f64, got {:?}, {:?}",
            a.0.dtype(),
            b.0.dtype()
        ),
    }
}

/// The contiguous data of a tensor known to live on the CPU.
pub(crate) fn cpu_slice<'a, T: WithDType>(
    storage: &'a Storage,
    layout: &Layout,
) -> candle_core::Result<&'a [T]> {
    match storage {
        Storage::Cpu(cpu) => contiguous::<T>((cpu, layout)),
        _ => candle_core::bail!("wae-kernels: expected a CPU tensor"),
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Conv => "wae-conv2d",
            Direction::Transposed => "wae-conv-transpose2d",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.cpu_forward((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = self.backward(x, w, grad, [x.track_op(), w.track_op(), false])?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Conv => "wae-conv2d-bias",
            Direction::Transposed => "wae-conv-transpose2d-bias",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.cpu_forward((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = self.backward(x, w, grad, [x.track_op(), w.track_op(), b.track_op()])?;
        Ok((dx, dw, db))
    }
}

fn apply(op: ConvOp, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    let out = match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, op)?,
        None => x.apply_op2(&weight, op)?,
    };
    Ok(out)
}

fn check_rank(x: &Tensor, weight: &Tensor, what: &str) -> Result<()> {
    if x.rank() != 4 || weight.rank() != 4 {
        return Err(Error::Shape(format!(
            "{what}: input {:?} and weight {:?} must both be 4-d",
            x.shape(),
            weight.shape()
        )));
    }
    Ok(())
}

/// Transposed 2-d convolution (dilation 1, one group), with an optional bias.
///
/// `x`: `(N, c_in, H, W)`, `weight`: `(c_in, c_out, kh, kw)` (candle / PyTorch layout),
/// `bias`: `(c_out)`. Returns `(N, c_out, H_out, W_out)` with
/// `H_out = (H - 1) * stride - 2 * padding + kh + output_padding` (likewise `W_out`).
///
/// On the CPU with f32 or f64 this runs a GEMM + col2im kernel whose backward pass is
/// im2col + GEMM; elsewhere it falls back to candle's `conv_transpose2d`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// # fn main() -> wae_kernels::Result<()> {
/// let x = Tensor::ones((2, 8, 7, 7), candle_core::DType::F32, &Device::Cpu)?;
/// let w = Tensor::ones((8, 4, 4, 4), candle_core::DType::F32, &Device::Cpu)?;
/// let y = wae_kernels::conv_transpose2d(&x, &w, None, 2, 1, 0)?;
/// assert_eq!(y.dims(), &[2, 4, 14, 14]);
/// # Ok(())
/// # }
/// ```
pub fn conv_transpose2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    check_rank(x, weight, "conv_transpose2d")?;
    if !crate::fast_path(x) {
        let y = x.conv_transpose2d(weight, padding, output_padding, stride, 1)?;
        return Ok(match bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?)?,
            None => y,
        });
    }
    let op = ConvOp {
        direction: Direction::Transposed,
        stride,
        padding: Padding2d::uniform(padding),
        output_padding,
        output_size: None,
    };
    apply(op, x, weight, bias)
}

/// [`conv_transpose2d`] with an explicit output size `(H_out, W_out)`: the full output
/// cropped to its first `H_out` rows and `W_out` columns (or, up to `stride - 1` beyond
/// the full size, extended as `output_padding` would). Cropping inside the op saves the
/// `narrow` and its backward; TensorFlow's `SAME` transposed convolutions need it (e.g. a
/// stride-1 4x4 kernel with padding 1 maps 28 to 29, cropped to 28).
///
/// `x`: `(N, c_in, H, W)`, `weight`: `(c_in, c_out, kh, kw)`, `bias`: `(c_out)`; returns
/// `(N, c_out, H_out, W_out)`.
pub fn conv_transpose2d_cropped(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_size: (usize, usize),
) -> Result<Tensor> {
    check_rank(x, weight, "conv_transpose2d")?;
    if !crate::fast_path(x) {
        let (_, _, h, w) = x.dims4()?;
        let (_, _, kh, kw) = weight.dims4()?;
        let full = |i: usize, k: usize| ((i.max(1) - 1) * stride + k).saturating_sub(2 * padding);
        let (fh, fw) = (full(h, kh), full(w, kw));
        let (oh, ow) = output_size;
        if oh == 0 || ow == 0 || oh > fh + stride - 1 || ow > fw + stride - 1 {
            return Err(Error::Shape(format!(
                "conv_transpose2d: output size {oh}x{ow} out of range for a {fh}x{fw} output"
            )));
        }
        // candle's output_padding applies to both axes: pad to the larger need, then crop.
        let extra = oh.saturating_sub(fh).max(ow.saturating_sub(fw));
        let y = x
            .conv_transpose2d(weight, padding, extra, stride, 1)?
            .narrow(2, 0, oh)?
            .narrow(3, 0, ow)?;
        return Ok(match bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?)?,
            None => y,
        });
    }
    let op = ConvOp {
        direction: Direction::Transposed,
        stride,
        padding: Padding2d::uniform(padding),
        output_padding: 0,
        output_size: Some(output_size),
    };
    apply(op, x, weight, bias)
}

/// 2-d convolution (dilation 1, one group) with the same `padding` on every side and an
/// optional bias.
///
/// `x`: `(N, c_in, H, W)`, `weight`: `(c_out, c_in, kh, kw)`, `bias`: `(c_out)`. Returns
/// `(N, c_out, (H + 2 * padding - kh) / stride + 1, ...)`. On the CPU with f32 or f64 the
/// forward pass is im2col + GEMM and the input gradient GEMM + col2im (candle's own
/// conv2d backward runs its slow `conv_transpose2d`); elsewhere it is candle's `conv2d`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    conv2d_padded(x, weight, bias, stride, Padding2d::uniform(padding))
}

/// [`conv2d`] with a different zero padding on each side (e.g. TensorFlow's `SAME`).
///
/// `x`: `(N, c_in, H, W)`, `weight`: `(c_out, c_in, kh, kw)`, `bias`: `(c_out)`. Returns
/// `(N, c_out, (H + top + bottom - kh) / stride + 1, (W + left + right - kw) / stride + 1)`.
pub fn conv2d_padded(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: Padding2d,
) -> Result<Tensor> {
    check_rank(x, weight, "conv2d")?;
    if !crate::fast_path(x) {
        let y = if padding.is_symmetric() {
            x.conv2d(weight, padding.top, stride, 1, 1)?
        } else {
            x.pad_with_zeros(2, padding.top, padding.bottom)?
                .pad_with_zeros(3, padding.left, padding.right)?
                .conv2d(weight, 0, stride, 1, 1)?
        };
        return Ok(match bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?)?,
            None => y,
        });
    }
    let op = ConvOp {
        direction: Direction::Conv,
        stride,
        padding,
        output_padding: 0,
        output_size: None,
    };
    apply(op, x, weight, bias)
}
