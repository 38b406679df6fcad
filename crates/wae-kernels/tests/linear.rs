//! The fully connected layer and the gradient norm's sum of squares against candle's own
//! ops: forward values (the same bits), gradients, the layout of the weight's gradient.

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type R = Result<(), Box<dyn std::error::Error>>;

fn uniform(rng: &mut StdRng, shape: &[usize], dtype: DType) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)
}

/// `max |a - b| / max |b|`.
fn rel_err(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_dtype(DType::F64)?.flatten_all()?;
    let b = b.to_dtype(DType::F64)?.flatten_all()?;
    let diff = (&a - &b)?.abs()?.max(0)?.to_scalar::<f64>()?;
    let scale = b.abs()?.max(0)?.to_scalar::<f64>()?;
    Ok(diff / scale.max(f64::MIN_POSITIVE))
}

fn check(n: usize, d_in: usize, d_out: usize, dtype: DType, rng: &mut StdRng) -> R {
    let x = Var::from_tensor(&uniform(rng, &[n, d_in], dtype)?)?;
    let w = Var::from_tensor(&uniform(rng, &[d_out, d_in], dtype)?)?;
    let b = Var::from_tensor(&uniform(rng, &[d_out], dtype)?)?;
    // A loss that weighs every output differently, so each gradient entry differs.
    let weights = uniform(rng, &[n, d_out], dtype)?;

    let ours = wae_kernels::linear(&x, &w, &b)?;
    let theirs = x.matmul(&w.t()?)?.broadcast_add(&b)?;
    assert_eq!(
        ours.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?,
        theirs
            .flatten_all()?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?,
        "forward {n}x{d_in}->{d_out} {dtype:?}: not the same bits"
    );
    let g_ours = (ours * &weights)?.sum_all()?.backward()?;
    let g_theirs = (theirs * &weights)?.sum_all()?.backward()?;
    let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
    for (name, v) in [("x", &x), ("weight", &w), ("bias", &b)] {
        let a = g_ours.get(v).expect("our gradient");
        let e = rel_err(a, g_theirs.get(v).expect("candle's gradient"))?;
        assert!(
            e <= tol,
            "{name} gradient {n}x{d_in}->{d_out} {dtype:?}: {e:e}"
        );
    }
    // The bias gradient sums the rows in candle's order: the same bits.
    let bits = |g: &candle_core::backprop::GradStore| -> candle_core::Result<Vec<f64>> {
        g.get(&b)
            .expect("a bias gradient")
            .flatten_all()?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()
    };
    assert_eq!(
        bits(&g_ours)?,
        bits(&g_theirs)?,
        "bias gradient {n}x{d_in}->{d_out} {dtype:?}: not the same bits"
    );
    // The point of the op: the weight's gradient is laid out as the weight is.
    assert!(g_ours.get(&w).expect("weight gradient").is_contiguous());
    Ok(())
}

#[test]
fn linear_matches_candle_on_the_networks_shapes() -> R {
    let mut rng = StdRng::seed_from_u64(7);
    // dSprites' 4096 -> 1200 and 1200 -> 32 at a small batch, MNIST's flatten -> z and
    // z -> 7x7 maps at width / 16, and odd sizes.
    for &(n, d_in, d_out) in &[
        (4, 4096, 1200),
        (5, 1200, 32),
        (3, 512, 8),
        (7, 8, 784),
        (1, 3, 5),
    ] {
        for dtype in [DType::F32, DType::F64] {
            check(n, d_in, d_out, dtype, &mut rng)?;
        }
    }
    Ok(())
}

#[test]
fn linear_falls_back_to_candle_elsewhere_and_refuses_bad_shapes() -> R {
    let mut rng = StdRng::seed_from_u64(8);
    // f16 is not a fast-path dtype: the candle formula runs.
    let x = uniform(&mut rng, &[2, 3], DType::F16)?;
    let w = uniform(&mut rng, &[4, 3], DType::F16)?;
    let b = uniform(&mut rng, &[4], DType::F16)?;
    assert_eq!(wae_kernels::linear(&x, &w, &b)?.dims(), [2, 4]);
    let w_bad = uniform(&mut rng, &[4, 5], DType::F16)?;
    let err = wae_kernels::linear(&x, &w_bad, &b).expect_err("in_dim mismatch");
    assert!(err.to_string().contains("do not fit"), "{err}");
    Ok(())
}

/// Strided views (a transposed input, a transposed weight) give candle's values.
#[test]
fn linear_takes_strided_views() -> R {
    let mut rng = StdRng::seed_from_u64(10);
    let xt = uniform(&mut rng, &[6, 5], DType::F32)?;
    let wt = uniform(&mut rng, &[6, 4], DType::F32)?;
    let b = uniform(&mut rng, &[4], DType::F32)?;
    let (x, w) = (xt.t()?, wt.t()?);
    assert!(!x.is_contiguous() && !w.is_contiguous());
    let ours = wae_kernels::linear(&x, &w, &b)?;
    let theirs = x.matmul(&w.t()?)?.broadcast_add(&b)?;
    let e = rel_err(&ours, &theirs)?;
    assert!(e <= 1e-6, "strided views: {e:e}");
    Ok(())
}

#[test]
fn sum_of_squares_matches_candle() -> R {
    let mut rng = StdRng::seed_from_u64(9);
    for &n in &[0usize, 1, 7, 8, 9, 100_003] {
        for dtype in [DType::F32, DType::F64] {
            let t = uniform(&mut rng, &[n], dtype)?;
            let ours = wae_kernels::sum_of_squares(&t)?;
            let theirs = t
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
            assert!(
                (ours - theirs).abs() <= 1e-12 * theirs.max(1.0),
                "n {n} {dtype:?}: {ours} vs {theirs}"
            );
        }
    }
    // A strided view takes candle's path and gives the same.
    let m = uniform(&mut rng, &[30, 40], DType::F32)?;
    let a = wae_kernels::sum_of_squares(&m.t()?)?;
    let b = wae_kernels::sum_of_squares(&m)?;
    assert!((a - b).abs() <= 1e-12 * b, "{a} vs {b}");
    Ok(())
}
