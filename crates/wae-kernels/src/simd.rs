//! Loops compiled three times: for AVX-512 (F, VL, BW, DQ with AVX2 + FMA), for AVX2 +
//! FMA, and for the baseline target; the widest the CPU has is chosen at run time, capped
//! by [`set_max_simd`] or `WAE_SIMD=avx2|baseline`.
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
/// use it to run the AVX2 and baseline paths on an AVX-512 CPU). The default is the
/// widest the CPU has, unless `WAE_SIMD=avx2` / `WAE_SIMD=baseline` says otherwise.
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
                Ok("avx2") => SimdLevel::Avx2,
                _ => SimdLevel::Avx512,
            };
            let _ = MAX_SIMD.compare_exchange(0, cap as u8 + 1, Relaxed, Relaxed);
            decode(MAX_SIMD.load(Relaxed))
        }
        v => decode(v),
    }
}

/// The level the loops run at on this CPU now: the widest it has, capped by
/// [`set_max_simd`] / `WAE_SIMD`.
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
