//! `wae_kernels::tanh` against candle's `tanh`: the same bits forward and backward, f32
//! and f64, contiguous or not. Its own binary: the fallback switch is process-wide.

use candle_core::{DType, Device, Tensor, Var};

type R = Result<(), Box<dyn std::error::Error>>;

fn run(
    x: &Var,
    weights: &Tensor,
    fallback: bool,
) -> Result<(Vec<f64>, Vec<f64>), Box<dyn std::error::Error>> {
    wae_kernels::set_force_fallback(fallback);
    let y = wae_kernels::tanh(x.as_tensor());
    wae_kernels::set_force_fallback(false);
    let y = y?;
    // A weighted sum, so that every element has its own upstream gradient.
    let grads = (&y * weights)?.sum_all()?.backward()?;
    let dx = grads.get(x.as_tensor()).ok_or("no gradient for x")?;
    let flat = |t: &Tensor| -> candle_core::Result<Vec<f64>> {
        t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()
    };
    Ok((flat(&y)?, flat(dx)?))
}

#[test]
fn same_bits_as_candle_forward_and_backward() -> R {
    let dev = Device::Cpu;
    for dtype in [DType::F32, DType::F64] {
        for shape in [vec![100usize, 1200], vec![3, 5, 7], vec![1], vec![0, 4]] {
            let x = (Tensor::randn(0f32, 2f32, shape.as_slice(), &dev)?).to_dtype(dtype)?;
            let w = Tensor::randn(0f32, 1f32, shape.as_slice(), &dev)?.to_dtype(dtype)?;
            let xv = Var::from_tensor(&x)?;
            let (fast, ops) = (run(&xv, &w, false)?, run(&xv, &w, true)?);
            assert_eq!(fast.0, ops.0, "values {dtype:?} {shape:?}");
            assert_eq!(fast.1, ops.1, "gradients {dtype:?} {shape:?}");
        }
    }
    // A transposed (strided) input.
    let x = Var::from_tensor(&Tensor::randn(0f32, 2f32, (30, 40), &dev)?)?;
    let w = Tensor::randn(0f32, 1f32, (40, 30), &dev)?;
    let t = x.as_tensor().t()?;
    let fast = (wae_kernels::tanh(&t)? * &w)?.sum_all()?.backward()?;
    let ops = (t.tanh()? * &w)?.sum_all()?.backward()?;
    let g = |s: &candle_core::backprop::GradStore| -> candle_core::Result<Vec<f32>> {
        s.get(x.as_tensor())
            .expect("a gradient")
            .flatten_all()?
            .to_vec1::<f32>()
    };
    assert_eq!(g(&fast)?, g(&ops)?, "strided input");
    Ok(())
}
