//! Loops compiled three times: for AVX-512 (F, VL, BW, DQ with AVX2 + FMA), for AVX2 +
//! FMA, and for the baseline target; at run time the widest the CPU has up to AVX2 + FMA,
//! or up to AVX-512 with `WAE_SIMD=avx512` / [`set_max_simd`]. AVX2 stays the default cap
//! because the AVX-512 copies measured no faster (2026-12-06, 2-core Intel Xeon,
//! `cargo xtask bench --no-peer`, two runs each: 309-339 against 310-337 images/s at width
//! 4, batch 100, and 361 against 368-380 at batch 400; docs/performance.md).
//! `wae-divergence`'s fused MMD pass reads the same variable, with AVX-512 as its default
//! cap, where it measured faster.
//!
//! Rust's default x86-64 target is SSE2 only, so the plain loops of this crate (im2col,
//! col2im, BatchNorm) would use 4-wide SSE instructions even on CPUs with 8-wide AVX2.
//! [`multiversion!`] wraps an `#[inline(always)]` body function in a dispatcher that
//! calls a copy of it compiled with `#[target_feature(enable = "avx2,fma")]` when the
//! CPU supports both (the standard library caches the check). Results agree up to
//! floating-point rounding: no loop relies on FMA contraction.

/// The widest instruction set the multiversioned loops may use.
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
static MAX_SIMD: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Caps the SIMD level of this crate's loops for the whole process (tests and benchmarks
/// use it to run every path on one CPU). The default cap is AVX2 + FMA; `WAE_SIMD=avx512`
/// raises it, `WAE_SIMD=baseline` lowers it.
pub fn set_max_simd(level: SimdLevel) {
    MAX_SIMD.store(level as u8 + 1, std::sync::atomic::Ordering::Relaxed);
}

fn max_simd() -> SimdLevel {
    use std::sync::atomic::Ordering::Relaxed;
    let decode = |v: u8| match v {
        1 => SimdLevel::Baseline,
        2 => SimdLevel::Avx2,
        _ => SimdLevel::Avx512,
    };
    match MAX_SIMD.load(Relaxed) {
        0 => {
            let cap = match std::env::var("WAE_SIMD").as_deref() {
                Ok("baseline") => SimdLevel::Baseline,
                Ok("avx512") => SimdLevel::Avx512,
                _ => SimdLevel::Avx2,
            };
            let _ = MAX_SIMD.compare_exchange(0, cap as u8 + 1, Relaxed, Relaxed);
            decode(MAX_SIMD.load(Relaxed))
        }
        v => decode(v),
    }
}

/// The level the loops run at on this CPU now: the widest it has, capped by
/// [`set_max_simd`] / `WAE_SIMD` (AVX2 + FMA by default).
pub fn simd_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let cap = max_simd();
        if cap >= SimdLevel::Avx512
            && has!("avx512f")
            && has!("avx512vl")
            && has!("avx512bw")
            && has!("avx512dq")
            && has!("avx2")
            && has!("fma")
        {
            return SimdLevel::Avx512;
        }
        if cap >= SimdLevel::Avx2 && has!("avx2") && has!("fma") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Baseline
}

/// `multiversion!(fn name<T: Bound>(args...) -> Ret = body;)` defines `name`, which runs
/// `body(args...)` (an `#[inline(always)]` function) from AVX2 + FMA code when possible.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<$t:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:ident;) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                match $crate::simd::simd_level() {
                    $crate::simd::SimdLevel::Avx512 => {
                        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                        #[allow(clippy::too_many_arguments)]
                        unsafe fn avx512<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
                            $body($($arg),*)
                        }
                        // SAFETY: `simd_level` checked that the CPU has these features.
                        return unsafe { avx512($($arg),*) };
                    }
                    $crate::simd::SimdLevel::Avx2 => {
                        #[target_feature(enable = "avx2,fma")]
                        #[allow(clippy::too_many_arguments)]
                        unsafe fn avx2<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
                            $body($($arg),*)
                        }
                        // SAFETY: `simd_level` checked that the CPU has AVX2 and FMA.
                        return unsafe { avx2($($arg),*) };
                    }
                    $crate::simd::SimdLevel::Baseline => {}
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;
