//! The multiply-add counters see exactly the products computed (own test binary: the
//! counters are global, so one test function does all the checks in order).

use candle_core::{DType, Device, Tensor, Var};
use wae_kernels::profile::{self, OpKind, OpTime};

fn get(kind: OpKind) -> Result<OpTime, String> {
    profile::snapshot()
        .into_iter()
        .find(|t| t.kind == kind)
        .ok_or_else(|| format!("no counters for {kind:?}"))
}

#[test]
fn multiply_adds_follow_the_shapes_and_the_gradients_asked_for()
-> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;

    // A 3x3 convolution, padding 1, stride 2: (2, 3, 9, 9) -> (2, 5, 5, 5). Each of the
    // 2 * 5 * 5 * 5 outputs sums 3 * 3 * 3 products; the backward pass computes the input
    // and the weight gradient, as many again each.
    profile::reset();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, 9, 9), &dev)?)?;
    let w = Var::from_tensor(&Tensor::randn(0f32, 1., (5, 3, 3, 3), &dev)?)?;
    let y = wae_kernels::conv2d(&x, &w, None, 2, 1)?;
    assert_eq!(y.dims(), [2, 5, 5, 5]);
    let per_product = 2 * 5 * 5 * 5 * (3 * 3 * 3);
    assert_eq!(get(OpKind::Conv2d)?.forward_madds, per_product);
    y.sum_all()?.backward()?;
    let conv = get(OpKind::Conv2d)?;
    assert_eq!(
        (conv.forward_madds, conv.backward_madds),
        (per_product, 2 * per_product)
    );

    // Only the weight is a variable: the backward pass skips the input gradient.
    profile::reset();
    let x_const = Tensor::randn(0f32, 1., (2, 3, 9, 9), &dev)?;
    wae_kernels::conv2d(&x_const, &w, None, 2, 1)?
        .sum_all()?
        .backward()?;
    assert_eq!(get(OpKind::Conv2d)?.backward_madds, per_product);

    // The DCGAN up-sampling layer (4x4, stride 2, padding 1): (2, 3, 4, 4) -> (2, 2, 8, 8).
    // Every input pixel meets every output channel through all 16 taps.
    profile::reset();
    let xt = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, 4, 4), &dev)?)?;
    let wt = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 2, 4, 4), &dev)?)?;
    let yt = wae_kernels::conv_transpose2d(&xt, &wt, None, 2, 1, 0)?;
    assert_eq!(yt.dims(), [2, 2, 8, 8]);
    yt.sum_all()?.backward()?;
    let per_product = 2 * (3 * 4 * 4) * (2 * 4 * 4);
    let convt = get(OpKind::ConvTranspose2d)?;
    assert_eq!(
        (convt.forward_madds, convt.backward_madds),
        (per_product, 2 * per_product)
    );
    assert_eq!(get(OpKind::Conv2d)?.forward_madds, 0);

    // The linear layer: (4, 6) x (3, 6)^T, both gradients asked for; f64 counts too.
    profile::reset();
    let xl = Var::from_tensor(&Tensor::randn(0f64, 1., (4, 6), &dev)?)?;
    let wl = Var::from_tensor(&Tensor::randn(0f64, 1., (3, 6), &dev)?)?;
    let bl = Var::from_tensor(&Tensor::zeros(3, DType::F64, &dev)?)?;
    wae_kernels::linear(&xl, &wl, &bl)?.sum_all()?.backward()?;
    let lin = get(OpKind::Linear)?;
    assert_eq!((lin.forward_calls, lin.backward_calls), (1, 1));
    assert_eq!((lin.forward_madds, lin.backward_madds), (72, 144));
    // BatchNorm does no products.
    assert_eq!(get(OpKind::BatchNorm)?.forward_madds, 0);

    profile::reset();
    assert!(
        profile::snapshot()
            .iter()
            .all(|t| t.forward_madds == 0 && t.backward_madds == 0)
    );
    Ok(())
}
