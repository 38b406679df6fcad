//! The per-op counters see exactly the calls made (own test binary: the counters are global).

use candle_core::{DType, Device, Tensor, Var};
use wae_kernels::profile::{self, OpKind};

#[test]
fn counters_count_forward_and_backward_calls() -> Result<(), Box<dyn std::error::Error>> {
    profile::reset();
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::ones((2, 3, 4, 4), DType::F32, &dev)?)?;
    let w = Var::from_tensor(&Tensor::ones((3, 2, 4, 4), DType::F32, &dev)?)?;
    let y = wae_kernels::conv_transpose2d(&x, &w, None, 2, 1, 0)?;
    let bn = wae_kernels::batch_norm_train(&y, None, None, 1e-5, wae_kernels::Activation::Relu)?;
    bn.output.sum_all()?.backward()?;
    let snap = profile::snapshot();
    let get = |k: OpKind| {
        snap.iter()
            .find(|t| t.kind == k)
            .copied()
            .ok_or("missing kind")
    };
    let convt = get(OpKind::ConvTranspose2d)?;
    assert_eq!((convt.forward_calls, convt.backward_calls), (1, 1));
    let bn = get(OpKind::BatchNorm)?;
    assert_eq!((bn.forward_calls, bn.backward_calls), (1, 1));
    let conv = get(OpKind::Conv2d)?;
    assert_eq!((conv.forward_calls, conv.backward_calls), (0, 0));
    assert!(convt.forward.as_nanos() > 0);
    profile::reset();
    assert!(
        profile::snapshot()
            .iter()
            .all(|t| t.forward_calls == 0 && t.backward_calls == 0)
    );
    Ok(())
}
