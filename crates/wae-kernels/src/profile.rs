//! Cumulative wall time spent inside this crate's kernels, per op kind and direction,
//! and the multiply-adds of their products.
//!
//! Every custom op adds the wall time of its CPU forward (`cpu_fwd`) or backward
//! (`bwd`) to process-wide counters; two clock reads per call, so the counters are
//! always on. Read them with [`snapshot`] and clear them with [`reset`] (e.g. around one
//! training step). Time spent in candle's own ops (and in the fallbacks on other
//! devices) is not counted.
//!
//! The convolutions and the linear layer also count the multiply-adds of the products
//! they computed, as the direct algorithm does them: `N * c_out * h_out * w_out * c_in *
//! kh * kw` per convolution product (the forward pass, and each of the input and weight
//! gradients that was asked for), `N * in * out` per linear product. That is the usual
//! FLOP count of a network (FLOPs = 2 x multiply-adds), the same whichever algorithm ran:
//! Winograd's fewer multiplications are not subtracted, zeros of the padding are not
//! left out. `cargo xtask bench` divides it by the step time to compare a step's rate
//! with the machine's GEMM rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The kinds of op that are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// [`crate::conv2d`] / [`crate::conv2d_padded`].
    Conv2d,
    /// [`crate::conv_transpose2d`] / [`crate::conv_transpose2d_cropped`].
    ConvTranspose2d,
    /// [`crate::batch_norm_train`] and [`crate::batch_norm_eval`].
    BatchNorm,
    /// [`crate::linear()`] (its CPU op; a backward call computes all the gradients asked for).
    Linear,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 4] = [
        OpKind::Conv2d,
        OpKind::ConvTranspose2d,
        OpKind::BatchNorm,
        OpKind::Linear,
    ];

    /// A short name: `conv2d`, `conv_transpose2d`, `batch_norm`, `linear`.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Conv2d => "conv2d",
            OpKind::ConvTranspose2d => "conv_transpose2d",
            OpKind::BatchNorm => "batch_norm",
            OpKind::Linear => "linear",
        }
    }

    fn index(self) -> usize {
        match self {
            OpKind::Conv2d => 0,
            OpKind::ConvTranspose2d => 1,
            OpKind::BatchNorm => 2,
            OpKind::Linear => 3,
        }
    }
}

/// Forward or backward pass of an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    Forward,
    Backward,
}

/// The accumulated time of one op kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpTime {
    /// Which op.
    pub kind: OpKind,
    /// Wall time in forward passes.
    pub forward: Duration,
    /// Number of forward calls.
    pub forward_calls: u64,
    /// Wall time in backward passes (all gradients of a call together).
    pub backward: Duration,
    /// Number of backward calls.
    pub backward_calls: u64,
    /// Multiply-adds of the products of the forward passes (see the module docs; 0 for
    /// BatchNorm).
    pub forward_madds: u64,
    /// Multiply-adds of the gradient products of the backward passes.
    pub backward_madds: u64,
}

const SLOTS: usize = OpKind::ALL.len() * 2;
static NANOS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static CALLS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static MADDS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

fn slot(kind: OpKind, pass: Pass) -> usize {
    kind.index() * 2
        + match pass {
            Pass::Forward => 0,
            Pass::Backward => 1,
        }
}

/// Runs `f`, adding its wall time to the counters of `kind` / `pass`.
pub(crate) fn timed<R>(kind: OpKind, pass: Pass, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let out = f();
    let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let i = slot(kind, pass);
    NANOS[i].fetch_add(nanos, Ordering::Relaxed);
    CALLS[i].fetch_add(1, Ordering::Relaxed);
    out
}

/// Adds `madds` multiply-adds (see the module docs) to the counters of `kind` / `pass`.
pub(crate) fn count_madds(kind: OpKind, pass: Pass, madds: u64) {
    MADDS[slot(kind, pass)].fetch_add(madds, Ordering::Relaxed);
}

/// The time accumulated since the start of the process or the last [`reset`], per kind.
pub fn snapshot() -> Vec<OpTime> {
    OpKind::ALL
        .iter()
        .map(|&kind| {
            let (f, b) = (slot(kind, Pass::Forward), slot(kind, Pass::Backward));
            OpTime {
                kind,
                forward: Duration::from_nanos(NANOS[f].load(Ordering::Relaxed)),
                forward_calls: CALLS[f].load(Ordering::Relaxed),
                backward: Duration::from_nanos(NANOS[b].load(Ordering::Relaxed)),
                backward_calls: CALLS[b].load(Ordering::Relaxed),
                forward_madds: MADDS[f].load(Ordering::Relaxed),
                backward_madds: MADDS[b].load(Ordering::Relaxed),
            }
        })
        .collect()
}

/// Sets every counter back to zero.
pub fn reset() {
    for i in 0..SLOTS {
        NANOS[i].store(0, Ordering::Relaxed);
        CALLS[i].store(0, Ordering::Relaxed);
        MADDS[i].store(0, Ordering::Relaxed);
    }
}
