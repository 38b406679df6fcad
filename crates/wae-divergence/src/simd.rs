//! Which vector instructions the fused MMD pass runs with.
//!
//! The pass ([`crate::mmd()`] on the CPU) is compiled three times: for AVX-512 (F, VL, BW,
//! DQ with AVX2 + FMA), for AVX2 + FMA, and for the compilation target's baseline (SSE2 on
//! x86-64); at run time it takes the widest the CPU has, up to a cap. The cap is AVX-512
//! unless the environment variable `WAE_SIMD` (read once) says `avx2` or `baseline`, or
//! [`set_max_simd`] sets it. The three copies give the same bits: every lane does the same
//! IEEE operations in the same order, and nothing is contracted into FMAs.
//!
//! AVX-512 is the default here because it measured faster (2026-12-07, 2-core Intel Xeon,
//! `xtask bench --worker --case=mmd`, best of 3000 / 100 repetitions, three runs each:
//! n 100, d 8 0.085-0.087 against 0.094-0.099 ms; n 1000, d 64 5.64-5.71 against
//! 5.82-5.90 ms). `wae-kernels` reads the same variable for its own loops, where AVX2
//! stays the default because AVX-512 measured no faster there.
//! `wae-metrics`' softmax regression (the beta-VAE metric's classifier) follows this
//! level too.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// The widest instruction set the fused MMD pass may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// The compilation target's baseline (SSE2 on x86-64).
    Baseline,
    /// AVX2 + FMA (8 f32 lanes).
    Avx2,
    /// AVX-512 F / VL / BW / DQ (16 f32 lanes).
    Avx512,
}

/// 0: not decided (read `WAE_SIMD` on first use), else `SimdLevel as u8 + 1`.
static MAX_SIMD: AtomicU8 = AtomicU8::new(0);

/// Caps the instruction set of the fused MMD pass for the whole process, overriding
/// `WAE_SIMD` (tests and benchmarks use it to run every copy on one CPU).
pub fn set_max_simd(level: SimdLevel) {
    MAX_SIMD.store(level as u8 + 1, Relaxed);
}

fn max_simd() -> SimdLevel {
    let decode = |v: u8| match v {
        1 => SimdLevel::Baseline,
        2 => SimdLevel::Avx2,
        _ => SimdLevel::Avx512,
    };
    match MAX_SIMD.load(Relaxed) {
        0 => {
            let cap = match std::env::var("WAE_SIMD").as_deref() {
                Ok("baseline") => SimdLevel::Baseline,
                Ok("avx2") => SimdLevel::Avx2,
                _ => SimdLevel::Avx512,
            };
            let _ = MAX_SIMD.compare_exchange(0, cap as u8 + 1, Relaxed, Relaxed);
            decode(MAX_SIMD.load(Relaxed))
        }
        v => decode(v),
    }
}

/// The level the fused MMD pass runs at on this CPU now: the widest it has, capped by
/// [`set_max_simd`] / `WAE_SIMD` (AVX-512 by default).
pub fn simd_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let cap = max_simd();
        let avx2 = has!("avx2") && has!("fma");
        if cap >= SimdLevel::Avx512
            && avx2
            && has!("avx512f")
            && has!("avx512vl")
            && has!("avx512bw")
            && has!("avx512dq")
        {
            return SimdLevel::Avx512;
        }
        if cap >= SimdLevel::Avx2 && avx2 {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Baseline
}
