//! Eight f64 lanes with the handful of operations the softmax-regression pass needs,
//! on three back ends: AVX-512 (one register), AVX2 (two registers) and plain arrays.
//! Every operation is the correctly rounded IEEE one per lane (no FMA), so all give the
//! same bits.

/// Lanes per vector.
pub(super) const LANES: usize = 8;

/// A back end. A value of the type is a proof that the CPU can run it.
pub(super) trait Lanes: Copy {
    /// Eight f64.
    type V: Copy;
    fn splat(self, x: f64) -> Self::V;
    fn load(self, x: &[f64; LANES]) -> Self::V;
    fn store(self, v: Self::V, out: &mut [f64; LANES]);
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `if a > b { a } else { b }` per lane (x86's `maxpd`).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `2^n` from `shifted = n + SHIFTER` (n an integer in -1022..=1023, held in the low
    /// mantissa bits).
    fn pow2_of_shifted(self, shifted: Self::V) -> Self::V;
}

/// 1.5 * 2^52: adding it to a float of magnitude below 2^51 rounds it to an integer held
/// in the low mantissa bits.
pub(super) const SHIFTER: f64 = 6_755_399_441_055_744.0;

/// `exp(x)` per lane for finite `x <= 0`: Cody-Waite reduction `x = n ln 2 + r` (`|r| <=
/// ln 2 / 2`), a degree-13 Taylor polynomial for `exp(r)` (truncation below 1e-17) and
/// `2^n` from the exponent bits. Relative error a few ulp; `x < -708` is taken as -708
/// (3e-308 instead of less: nothing next to the 1 of the largest logit).
#[inline(always)]
pub(super) fn exp<S: Lanes>(s: S, x: S::V) -> S::V {
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    // fdlibm's split of ln 2: the high part has 32 significant bits, so n * LN2_HI is
    // exact for |n| < 2^21.
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1/12!, 1/11!, ..., 1/1!, 1/0! (the 1/13! term starts the Horner scheme).
    const COEFFICIENTS: [f64; 13] = [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let v = s.max(x, s.splat(-708.0));
    let shifted = s.add(s.mul(v, s.splat(LOG2_E)), s.splat(SHIFTER));
    let n = s.sub(shifted, s.splat(SHIFTER));
    let r = s.sub(
        s.sub(v, s.mul(n, s.splat(LN2_HI))),
        s.mul(n, s.splat(LN2_LO)),
    );
    let mut p = s.splat(1.0 / 6_227_020_800.0);
    for c in COEFFICIENTS {
        p = s.add(s.mul(p, r), s.splat(c));
    }
    s.mul(p, s.pow2_of_shifted(shifted))
}

/// Plain arrays: runs anywhere (and vectorises as far as the compiler manages).
#[derive(Clone, Copy, Debug)]
pub(super) struct Portable;

macro_rules! portable_op {
    ($a:ident, $b:ident, $f:expr) => {{
        let mut out = [0.0; LANES];
        for l in 0..LANES {
            out[l] = $f($a[l], $b[l]);
        }
        out
    }};
}

impl Lanes for Portable {
    type V = [f64; LANES];
    #[inline(always)]
    fn splat(self, x: f64) -> Self::V {
        [x; LANES]
    }
    #[inline(always)]
    fn load(self, x: &[f64; LANES]) -> Self::V {
        *x
    }
    #[inline(always)]
    fn store(self, v: Self::V, out: &mut [f64; LANES]) {
        *out = v;
    }
    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        portable_op!(a, b, |x: f64, y: f64| x + y)
    }
    #[inline(always)]
    fn sub(self, a: Self::V, b: Self::V) -> Self::V {
        portable_op!(a, b, |x: f64, y: f64| x - y)
    }
    #[inline(always)]
    fn mul(self, a: Self::V, b: Self::V) -> Self::V {
        portable_op!(a, b, |x: f64, y: f64| x * y)
    }
    #[inline(always)]
    fn div(self, a: Self::V, b: Self::V) -> Self::V {
        portable_op!(a, b, |x: f64, y: f64| x / y)
    }
    #[inline(always)]
    fn max(self, a: Self::V, b: Self::V) -> Self::V {
        portable_op!(a, b, |x: f64, y: f64| if x > y { x } else { y })
    }
    #[inline(always)]
    fn pow2_of_shifted(self, shifted: Self::V) -> Self::V {
        let mut out = [0.0; LANES];
        for l in 0..LANES {
            let n = shifted[l].to_bits().wrapping_sub(SHIFTER.to_bits());
            out[l] = f64::from_bits(n.wrapping_add(1023) << 52);
        }
        out
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, Lanes, SHIFTER};

    /// AVX2: two `__m256d`. Only [`Avx2::detect`] makes one.
    #[derive(Clone, Copy, Debug)]
    pub(in super::super) struct Avx2(());

    impl Avx2 {
        pub(in super::super) fn detect() -> Option<Self> {
            is_x86_feature_detected!("avx2").then_some(Self(()))
        }
    }

    /// AVX-512 F: one `__m512d`. Only [`Avx512::detect`] makes one.
    #[derive(Clone, Copy, Debug)]
    pub(in super::super) struct Avx512(());

    impl Avx512 {
        pub(in super::super) fn detect() -> Option<Self> {
            is_x86_feature_detected!("avx512f").then_some(Self(()))
        }
    }

    // SAFETY (every `unsafe` below): an `Avx512` exists only when the CPU has AVX-512 F,
    // and the loads and stores go through references to exactly 8 f64.
    impl Lanes for Avx512 {
        type V = __m512d;
        #[inline(always)]
        fn splat(self, x: f64) -> Self::V {
            unsafe { _mm512_set1_pd(x) }
        }
        #[inline(always)]
        fn load(self, x: &[f64; LANES]) -> Self::V {
            unsafe { _mm512_loadu_pd(x.as_ptr()) }
        }
        #[inline(always)]
        fn store(self, v: Self::V, out: &mut [f64; LANES]) {
            unsafe { _mm512_storeu_pd(out.as_mut_ptr(), v) }
        }
        #[inline(always)]
        fn add(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm512_add_pd(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm512_sub_pd(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm512_mul_pd(a, b) }
        }
        #[inline(always)]
        fn div(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm512_div_pd(a, b) }
        }
        #[inline(always)]
        fn max(self, a: Self::V, b: Self::V) -> Self::V {
            // Like `maxpd`: the second operand where either is NaN or they are equal.
            unsafe { _mm512_max_pd(a, b) }
        }
        #[inline(always)]
        fn pow2_of_shifted(self, shifted: Self::V) -> Self::V {
            unsafe {
                let n = _mm512_sub_epi64(
                    _mm512_castpd_si512(shifted),
                    _mm512_set1_epi64(SHIFTER.to_bits() as i64),
                );
                let biased = _mm512_add_epi64(n, _mm512_set1_epi64(1023));
                _mm512_castsi512_pd(_mm512_slli_epi64::<52>(biased))
            }
        }
    }

    macro_rules! avx2_op {
        ($a:ident, $b:ident, $f:ident) => {
            // SAFETY: see the impl.
            unsafe { [$f($a[0], $b[0]), $f($a[1], $b[1])] }
        };
    }

    // SAFETY (every `unsafe` below): an `Avx2` exists only when the CPU has AVX2, and the
    // loads and stores go through references to exactly 8 f64 (two halves of 4).
    impl Lanes for Avx2 {
        type V = [__m256d; 2];
        #[inline(always)]
        fn splat(self, x: f64) -> Self::V {
            unsafe { [_mm256_set1_pd(x); 2] }
        }
        #[inline(always)]
        fn load(self, x: &[f64; LANES]) -> Self::V {
            unsafe {
                [
                    _mm256_loadu_pd(x.as_ptr()),
                    _mm256_loadu_pd(x.as_ptr().add(4)),
                ]
            }
        }
        #[inline(always)]
        fn store(self, v: Self::V, out: &mut [f64; LANES]) {
            unsafe {
                _mm256_storeu_pd(out.as_mut_ptr(), v[0]);
                _mm256_storeu_pd(out.as_mut_ptr().add(4), v[1]);
            }
        }
        #[inline(always)]
        fn add(self, a: Self::V, b: Self::V) -> Self::V {
            avx2_op!(a, b, _mm256_add_pd)
        }
        #[inline(always)]
        fn sub(self, a: Self::V, b: Self::V) -> Self::V {
            avx2_op!(a, b, _mm256_sub_pd)
        }
        #[inline(always)]
        fn mul(self, a: Self::V, b: Self::V) -> Self::V {
            avx2_op!(a, b, _mm256_mul_pd)
        }
        #[inline(always)]
        fn div(self, a: Self::V, b: Self::V) -> Self::V {
            avx2_op!(a, b, _mm256_div_pd)
        }
        #[inline(always)]
        fn max(self, a: Self::V, b: Self::V) -> Self::V {
            avx2_op!(a, b, _mm256_max_pd)
        }
        #[inline(always)]
        fn pow2_of_shifted(self, shifted: Self::V) -> Self::V {
            shifted.map(|half| unsafe {
                let n = _mm256_sub_epi64(
                    _mm256_castpd_si256(half),
                    _mm256_set1_epi64x(SHIFTER.to_bits() as i64),
                );
                let biased = _mm256_add_epi64(n, _mm256_set1_epi64x(1023));
                _mm256_castsi256_pd(_mm256_slli_epi64::<52>(biased))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_exp<S: Lanes>(s: S) {
        let mut worst: f64 = 0.0;
        for i in 0..50_000 {
            let xs: [f64; LANES] = std::array::from_fn(|l| {
                -((i * LANES + l) as f64) * 0.001_77 - (l % 3) as f64 * 1e-9
            });
            let mut got = [0.0; LANES];
            s.store(exp(s, s.load(&xs)), &mut got);
            let portable = exp(Portable, xs);
            for l in 0..LANES {
                assert_eq!(got[l].to_bits(), portable[l].to_bits(), "exp({})", xs[l]);
                let want = xs[l].exp();
                worst = worst.max(((got[l] - want) / want).abs());
            }
        }
        assert!(worst < 1e-15, "worst relative error {worst}");
        let mut edge = [0.0; LANES];
        s.store(
            exp(
                s,
                s.load(&[0.0, -1e6, -708.0, -0.5, -1.0, -2.0, -3.0, -700.0]),
            ),
            &mut edge,
        );
        assert_eq!(edge[0], 1.0);
        assert!(edge[1] > 0.0 && edge[1] < 1e-300);
    }

    #[test]
    fn exp_matches_std_to_a_few_ulp_on_every_back_end() {
        check_exp(Portable);
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(s) = Avx2::detect() {
                check_exp(s);
            }
            if let Some(s) = Avx512::detect() {
                check_exp(s);
            }
        }
    }
}
