//! Loops compiled twice: for AVX2 + FMA, chosen at run time when the CPU has them, and
//! for the baseline target.
//!
//! Rust's default x86-64 target is SSE2 only, so the plain loops of this crate (im2col,
//! col2im, BatchNorm) would use 4-wide SSE instructions even on CPUs with 8-wide AVX2.
//! [`multiversion!`] wraps an `#[inline(always)]` body function in a dispatcher that
//! calls a copy of it compiled with `#[target_feature(enable = "avx2,fma")]` when the
//! CPU supports both (the standard library caches the check). Results agree up to
//! floating-point rounding: no loop relies on FMA contraction.

/// Whether this CPU runs AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
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
                if $crate::simd::has_avx2_fma() {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn avx2<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
                        $body($($arg),*)
                    }
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;
