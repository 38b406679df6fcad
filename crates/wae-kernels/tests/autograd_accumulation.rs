//! The workspace builds candle-core with a patched gradient accumulation
//! (`vendor/README.md`): the first gradient reaching a node is stored instead of being
//! added to a tensor of zeros. These tests pin the cases where that could go wrong: a
//! node with several consumers (the sum must still be formed), subtraction and negation
//! (the sign of a stored first term), broadcasts (a strided gradient must be stored
//! contiguous), and our custom ops.

use candle_core::{DType, Device, Result, Tensor, Var};

fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn fan_in_gradients_are_summed() -> Result<()> {
    let x = Var::new(&[1f32, -2.0, 3.5], &Device::Cpu)?;
    // y = x * x + x + exp(x): x reaches four edges.
    let y = ((x.as_tensor() * x.as_tensor())? + x.as_tensor())?;
    let y = (y + x.exp()?)?;
    let grads = y.sum_all()?.backward()?;
    let g = grads.get(&x).expect("gradient of x");
    let want: Vec<f32> = [1f32, -2.0, 3.5]
        .iter()
        .map(|v| 2.0 * v + 1.0 + v.exp())
        .collect();
    assert_close(&values(g)?, &want, "d/dx (x^2 + x + e^x)");
    assert!(g.is_contiguous());
    Ok(())
}

#[test]
fn subtraction_and_negation_keep_their_sign() -> Result<()> {
    let a = Var::new(&[2f32, 5.0], &Device::Cpu)?;
    let b = Var::new(&[-1f32, 0.5], &Device::Cpu)?;
    // z = (a - b) * 3 - b.neg() * 2 + a.neg():  dz/da = 3 - 1 = 2,  dz/db = -3 + 2 = -1.
    let z = ((a.as_tensor() - b.as_tensor())? * 3.0)?;
    let z = (z - (b.neg()? * 2.0)?)?;
    let z = (z + a.neg()?)?;
    let grads = z.sum_all()?.backward()?;
    assert_close(&values(grads.get(&a).expect("da"))?, &[2.0, 2.0], "dz/da");
    assert_close(&values(grads.get(&b).expect("db"))?, &[-1.0, -1.0], "dz/db");
    // A variable whose only edge is a subtraction's right-hand side.
    let c = Var::new(&[4f32], &Device::Cpu)?;
    let grads = (a.as_tensor().sum_all()? - c.as_tensor().sum_all()?)?.backward()?;
    assert_close(&values(grads.get(&c).expect("dc"))?, &[-1.0], "d(-c)/dc");
    Ok(())
}

#[test]
fn broadcast_gradients_are_reduced_and_contiguous() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::arange(0f32, 6.0, &dev)?.reshape((2, 3))?)?;
    let bias = Var::new(&[0.5f32, -1.0, 2.0], &dev)?;
    let scale = Var::new(&[3f32], &dev)?;
    // y = sum((x + bias) * scale): d/dbias = 2 * scale, d/dscale = sum(x + bias).
    let y = x.as_tensor().broadcast_add(bias.as_tensor())?;
    let y = y.broadcast_mul(scale.as_tensor())?.sum_all()?;
    let grads = y.backward()?;
    assert_close(
        &values(grads.get(&bias).expect("dbias"))?,
        &[6.0; 3],
        "dbias",
    );
    assert_close(
        &values(grads.get(&scale).expect("dscale"))?,
        &[15.0 + 2.0 * 1.5],
        "dscale",
    );
    let gx = grads.get(&x).expect("dx");
    assert_close(&values(gx)?, &[3.0; 6], "dx");
    // The gradient of x arrives as a broadcast of the scalar's; it is stored contiguous.
    assert!(gx.is_contiguous());
    assert_eq!(gx.dims(), &[2, 3]);
    Ok(())
}

#[test]
fn custom_op_outputs_used_twice() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::ones((1, 2, 3, 3), DType::F32, &dev)?)?;
    let w = Var::from_tensor(&Tensor::ones((2, 1, 4, 4), DType::F32, &dev)?)?;
    let y = wae_kernels::conv_transpose2d(x.as_tensor(), w.as_tensor(), None, 2, 1, 0)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    // L = sum(y) + sum(2 y) = 3 sum(y): every gradient is three times that of sum(y).
    let once = y.sum_all()?.backward()?;
    let twice = (y.sum_all()? + (&y * 2.0)?.sum_all()?)?.backward()?;
    for v in [&x, &w] {
        let a = values(once.get(v).expect("gradient"))?;
        let b = values(twice.get(v).expect("gradient"))?;
        let want: Vec<f32> = a.iter().map(|g| 3.0 * g).collect();
        assert_close(&b, &want, "3 * d sum(y)");
    }
    Ok(())
}
