//! Fast CPU kernels for the Wasserstein auto-encoder networks, as candle custom ops with
//! backward passes.
//!
//! candle 0.11's CPU `conv_transpose2d` is a direct loop (one dot product per output
//! pixel), its conv2d backward calls that loop for the input gradient, and its
//! training-mode BatchNorm is about ten unfused single-threaded ops. This crate replaces
//! them, on the CPU and for f32 / f64, with:
//!
//! - [`conv_transpose2d`] / [`conv_transpose2d_cropped`]: GEMM + col2im forward;
//!   im2col + GEMM backward (input and weight gradients from one im2col of the output
//!   gradient);
//! - [`conv2d`] / [`conv2d_padded`]: im2col + GEMM forward, GEMM + col2im input gradient;
//! - [`batch_norm_train`] / [`batch_norm_eval`]: BatchNorm with an optional fused ReLU,
//!   statistics and normalisation in one or two multithreaded passes each way;
//! - [`linear()`]: the fully connected layer, whose backward returns the weight's gradient
//!   contiguous (candle's `matmul(&w.t())` returns a transposed view);
//! - [`nhwc`]: channels-last inference kernels (convolution + bias + ReLU into a channel
//!   slice of a shared output, pools, global mean) for networks that only infer;
//! - [`adam_update`]: one Adam step of a parameter, in place and in parallel, bit for bit
//!   the candle-op formula.
//!
//! The 4x4, stride-2, padding-1 transposed convolution that doubles `(H, W)` (the DCGAN
//! decoders' up-sampling layer) runs Winograd F(2x2, 2x2) instead, forward and backward
//! where that is faster (see [`WinogradMode`]).
//!
//! Every kernel is deterministic: its result does not depend on the size of rayon's pool
//! or on scheduling, because work is split by shape alone and partial sums are added in a
//! fixed order (the `determinism` test checks bit equality in pools of 1, 2 and 3 threads).
//!
//! Convolutions take an optional bias, added inside the op (saving a broadcast add and
//! its backward). GEMMs run on the `gemm` crate (the one candle uses), parallel over
//! groups of samples on rayon's global pool (`RAYON_NUM_THREADS` sets its size). On
//! other devices and dtypes every function falls back to candle's own ops, so callers
//! need not care where their tensors live; `WAE_FORCE_FALLBACK=1` (or
//! [`set_force_fallback`]) takes that path on the CPU too, which is how the code a GPU
//! runs is tested without one.
//!
//! ```
//! use candle_core::{DType, Device, Tensor, Var};
//! # fn main() -> wae_kernels::Result<()> {
//! let dev = Device::Cpu;
//! let z = Var::ones((4, 16, 7, 7), DType::F32, &dev)?;
//! let w = Var::ones((16, 8, 4, 4), DType::F32, &dev)?;
//! // (4, 16, 7, 7) -> (4, 8, 14, 14), then BatchNorm + ReLU.
//! let h = wae_kernels::conv_transpose2d(z.as_tensor(), w.as_tensor(), None, 2, 1, 0)?;
//! let bn = wae_kernels::batch_norm_train(&h, None, None, 1e-5, wae_kernels::Activation::Relu)?;
//! let grads = bn.output.sum_all()?.backward()?;
//! assert_eq!(grads.get(&w).map(|g| g.dims().to_vec()), Some(vec![16, 8, 4, 4]));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod adam;
pub mod alloc;
mod batch_norm;
mod conv;
mod cpu;
mod linear;
pub mod nhwc;
mod pointwise;
pub mod profile;
mod relu;
mod simd;
mod tanh;
mod winograd;

pub use adam::{AdamStep, adam_update, sum_of_squares};
pub use batch_norm::{Activation, BatchNormOutput, batch_norm_eval, batch_norm_train};
pub use conv::{Padding2d, conv_transpose2d, conv_transpose2d_cropped, conv2d, conv2d_padded};
pub use linear::linear;
pub use relu::relu;
pub use simd::{SimdLevel, set_max_simd, simd_level};
pub use tanh::tanh;

/// Makes candle run its large elementwise ops on the calling thread, unless the user set
/// `CANDLE_NUM_THREADS` (which this respects).
///
/// candle 0.11 splits every elementwise op over 64k values across a pool of its own
/// threads that spin while they wait, beside rayon's pool that runs the GEMMs and this
/// crate's kernels. On a 2-core machine the two pools take turns on the cores: the main
/// thread spun for 15-17 % of the fully connected dSprites step waiting for candle's
/// worker (`perf`), and the training process saw hundreds of thousands of involuntary
/// context switches. With candle's pool off (`CANDLE_NUM_THREADS=1`, what this sets)
/// those ops run on the main thread and rayon alone uses the other cores. The `wae`
/// binary and `cargo xtask` call it first thing; a library user may do the same, or set
/// the variable.
///
/// # Safety
///
/// It sets an environment variable, so no other thread may run at the time (call it at
/// the start of `main`), and it only takes effect before candle's first elementwise op.
pub unsafe fn use_rayon_pool_only() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees that no other thread reads or writes the
        // environment now.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

/// When the 4x4, stride-2, padding-1 transposed convolution that maps `(H, W)` to
/// `(2H, 2W)` (the DCGAN decoders' up-sampling layer) runs Winograd F(2x2, 2x2) instead
/// of the general GEMM + col2im kernel. Both agree with candle's op to the tests'
/// tolerance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WinogradMode {
    /// Where it is expected to be faster (the default): Winograd saves multiplications
    /// (9 per 2x2 output tile instead of 16) but transforms data, which only pays off
    /// when the channel counts and planes are large enough, and less where the GEMM runs
    /// AVX-512 kernels. On the MNIST decoder (batch 100) it picks Winograd for the
    /// 7x7 -> 14x14 layer at full width only, and for the 14x14 -> 28x28 layer at every
    /// width divisor (1, 2, 4) against AVX2 GEMM (measured on a 2-core AMD EPYC) but at
    /// divisors 1 and 2 only against AVX-512 GEMM (a 2-core Intel Xeon;
    /// `docs/performance.md`).
    #[default]
    Auto,
    /// On every layer of that shape.
    Always,
    /// Never: every transposed convolution runs GEMM + col2im.
    Never,
}

static WINOGRAD: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the [`WinogradMode`] for the whole process ([`WinogradMode::Auto`] by default).
/// This switch exists for benchmarks and tests.
pub fn set_winograd_mode(mode: WinogradMode) {
    let v = match mode {
        WinogradMode::Auto => 0,
        WinogradMode::Always => 1,
        WinogradMode::Never => 2,
    };
    WINOGRAD.store(v, std::sync::atomic::Ordering::Relaxed);
}

/// `set_winograd_mode(Always)` when `enabled`, else `set_winograd_mode(Never)`.
pub fn set_winograd_enabled(enabled: bool) {
    set_winograd_mode(if enabled {
        WinogradMode::Always
    } else {
        WinogradMode::Never
    });
}

pub(crate) fn winograd_mode() -> WinogradMode {
    match WINOGRAD.load(std::sync::atomic::Ordering::Relaxed) {
        1 => WinogradMode::Always,
        2 => WinogradMode::Never,
        _ => WinogradMode::Auto,
    }
}

/// 0: not decided yet (read `WAE_FORCE_FALLBACK` on first use), 1: fast kernels, 2: fallback.
static FALLBACK: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The environment variable that forces candle's own ops everywhere (`1`): the code path
/// CUDA and other devices take, run on the CPU. Read once, at the first kernel call.
pub const FORCE_FALLBACK_ENV: &str = "WAE_FORCE_FALLBACK";

/// Forces (`true`) or releases (`false`) the fallback to candle's own ops for every kernel
/// of this crate, for the whole process, overriding `WAE_FORCE_FALLBACK`. With it, a CPU
/// run executes what a CUDA run executes, minus the kernels candle ships per device.
pub fn set_force_fallback(force: bool) {
    FALLBACK.store(
        if force { 2 } else { 1 },
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Whether the fast kernels handle tensors like `x`: on the CPU, f32 or f64, and the
/// fallback not forced. Every op of this crate asks this first.
pub(crate) fn fast_path(x: &candle_core::Tensor) -> bool {
    x.device().is_cpu()
        && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
        && !force_fallback()
}

/// Whether the fallback is forced (by [`set_force_fallback`] or `WAE_FORCE_FALLBACK=1`).
pub fn force_fallback() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match FALLBACK.load(Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let on = std::env::var(FORCE_FALLBACK_ENV).is_ok_and(|v| v == "1");
            // Keep a value set meanwhile by `set_force_fallback`.
            let _ = FALLBACK.compare_exchange(0, if on { 2 } else { 1 }, Relaxed, Relaxed);
            FALLBACK.load(Relaxed) == 2
        }
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from candle (bad shapes or dtypes reaching a candle op, device errors).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Tensors whose shapes do not fit the op.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
