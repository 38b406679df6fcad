//! `wae_kernels::relu` against candle's `relu`: the same bits forward and backward, f32
//! and f64, contiguous or not, zeros of both signs, infinities and NaN included. Its own
//! binary: the fallback switch is process-wide.

use candle_core::{DType, Device, Tensor, Var};

type R = Result<(), Box<dyn std::error::Error>>;

/// Values and gradients as bit patterns (so that NaN compares equal to itself).
fn run(
    x: &Var,
    weights: &Tensor,
    fallback: bool,
) -> Result<(Vec<u64>, Vec<u64>), Box<dyn std::error::Error>> {
    wae_kernels::set_force_fallback(fallback);
    let y = wae_kernels::relu(x.as_tensor());
    wae_kernels::set_force_fallback(false);
    let y = y?;
    // A weighted sum, so that every element has its own upstream gradient.
    let grads = (&y * weights)?.sum_all()?.backward()?;
    let dx = grads.get(x.as_tensor()).ok_or("no gradient for x")?;
    let bits = |t: &Tensor| -> candle_core::Result<Vec<u64>> {
        let t = t.flatten_all()?;
        Ok(match t.dtype() {
            DType::F32 => t
                .to_vec1::<f32>()?
                .iter()
                .map(|v| u64::from(v.to_bits()))
                .collect(),
            _ => t.to_vec1::<f64>()?.iter().map(|v| v.to_bits()).collect(),
        })
    };
    Ok((bits(&y)?, bits(dx)?))
}

#[test]
fn same_bits_as_candle_forward_and_backward() -> R {
    let dev = Device::Cpu;
    let special = [
        0.0f64,
        -0.0,
        1.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e-40,
        -1e-40,
    ];
    for dtype in [DType::F32, DType::F64] {
        for shape in [vec![100usize, 1200], vec![3, 5, 7], vec![1], vec![0, 4]] {
            let x = (Tensor::randn(0f32, 2f32, shape.as_slice(), &dev)?).to_dtype(dtype)?;
            let w = Tensor::randn(0f32, 1f32, shape.as_slice(), &dev)?.to_dtype(dtype)?;
            let xv = Var::from_tensor(&x)?;
            let (fast, ops) = (run(&xv, &w, false)?, run(&xv, &w, true)?);
            assert_eq!(fast.0, ops.0, "values {dtype:?} {shape:?}");
            assert_eq!(fast.1, ops.1, "gradients {dtype:?} {shape:?}");
        }
        // Every special value against upstream gradients of both signs and zero.
        let n = special.len();
        let xs: Vec<f64> = (0..3 * n).map(|i| special[i % n]).collect();
        let ws: Vec<f64> = (0..3 * n).map(|i| [2.5, -0.5, 0.0][i / n]).collect();
        let x = Tensor::new(xs.as_slice(), &dev)?.to_dtype(dtype)?;
        let w = Tensor::new(ws.as_slice(), &dev)?.to_dtype(dtype)?;
        let xv = Var::from_tensor(&x)?;
        let (fast, ops) = (run(&xv, &w, false)?, run(&xv, &w, true)?);
        assert_eq!(fast.0, ops.0, "special values {dtype:?}");
        assert_eq!(fast.1, ops.1, "special gradients {dtype:?}");
    }
    // A transposed (strided) input.
    let x = Var::from_tensor(&Tensor::randn(0f32, 2f32, (30, 40), &dev)?)?;
    let w = Tensor::randn(0f32, 1f32, (40, 30), &dev)?;
    let t = x.as_tensor().t()?;
    let fast = (wae_kernels::relu(&t)? * &w)?.sum_all()?.backward()?;
    let ops = (t.relu()? * &w)?.sum_all()?.backward()?;
    let g = |s: &candle_core::backprop::GradStore| -> candle_core::Result<Vec<f32>> {
        s.get(x.as_tensor())
            .expect("a gradient")
            .flatten_all()?
            .to_vec1::<f32>()
    };
    assert_eq!(g(&fast)?, g(&ops)?, "strided input");
    Ok(())
}
