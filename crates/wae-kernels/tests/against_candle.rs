//! The fast kernels against candle's own ops: forward values and gradients (through candle
//! autograd) on every shape the networks use, plus finite-difference checks.

use candle_core::{D, DType, Device, ModuleT, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wae_kernels::{Activation, Padding2d};

type R = Result<(), Box<dyn std::error::Error>>;

fn randn(rng: &mut StdRng, shape: &[usize], std: f64, dtype: DType) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    // Uniform in [-sqrt(3), sqrt(3)] has unit variance; enough for these checks.
    let v: Vec<f64> = (0..n)
        .map(|_| (rng.random::<f64>() * 2.0 - 1.0) * 3f64.sqrt() * std)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)
}

/// A new f64 variable holding the values of `v`.
fn to_f64_var(v: &Var) -> candle_core::Result<Var> {
    Var::from_tensor(&v.to_dtype(DType::F64)?)
}

/// `max |a - b| / max |b|`: relative error on the scale of the reference.
fn rel_err(a: &Tensor, reference: &Tensor) -> candle_core::Result<f64> {
    assert_eq!(a.dims(), reference.dims(), "shape mismatch");
    let a = a.to_dtype(DType::F64)?.flatten_all()?;
    let b = reference.to_dtype(DType::F64)?.flatten_all()?;
    let diff = (&a - &b)?.abs()?.max(D::Minus1)?.to_scalar::<f64>()?;
    let scale = b.abs()?.max(D::Minus1)?.to_scalar::<f64>()?;
    Ok(if scale == 0.0 { diff } else { diff / scale })
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Conv(Padding2d),
    Transposed {
        padding: usize,
        output_padding: usize,
    },
}

#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    kind: Kind,
    n: usize,
    c_in: usize,
    c_out: usize,
    hw: usize,
    k: usize,
    stride: usize,
}

/// TensorFlow 'SAME' padding of a convolution: output ceil(hw / stride).
fn same(hw: usize, k: usize, stride: usize) -> Padding2d {
    let out = hw.div_ceil(stride);
    let total = ((out - 1) * stride + k).saturating_sub(hw);
    let (top, bottom) = (total / 2, total - total / 2);
    Padding2d {
        top,
        bottom,
        left: top,
        right: bottom,
    }
}

/// Every convolution of the MNIST (widths 1 and 4) and CelebA networks plus odd shapes.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (wd, n) in [(1usize, 2usize), (4, 3)] {
        let ch = |c: usize| c / wd;
        let enc = [
            (1, ch(128), 28),
            (ch(128), ch(256), 14),
            (ch(256), ch(512), 7),
            (ch(512), ch(1024), 4),
        ];
        for (i, &(c_in, c_out, hw)) in enc.iter().enumerate() {
            let name = if wd == 1 {
                [
                    "mnist-w1-enc0",
                    "mnist-w1-enc1",
                    "mnist-w1-enc2",
                    "mnist-w1-enc3",
                ][i]
            } else {
                [
                    "mnist-w4-enc0",
                    "mnist-w4-enc1",
                    "mnist-w4-enc2",
                    "mnist-w4-enc3",
                ][i]
            };
            cases.push(Case {
                name,
                kind: Kind::Conv(same(hw, 4, 2)),
                n,
                c_in,
                c_out,
                hw,
                k: 4,
                stride: 2,
            });
        }
        let dec = [
            (ch(1024), ch(512), 7, 2),
            (ch(512), ch(256), 14, 2),
            (ch(256), 1, 28, 1),
        ];
        for (i, &(c_in, c_out, hw, stride)) in dec.iter().enumerate() {
            let name = if wd == 1 {
                ["mnist-w1-dec1", "mnist-w1-dec2", "mnist-w1-dec3"][i]
            } else {
                ["mnist-w4-dec1", "mnist-w4-dec2", "mnist-w4-dec3"][i]
            };
            cases.push(Case {
                name,
                kind: Kind::Transposed {
                    padding: 1,
                    output_padding: 0,
                },
                n,
                c_in,
                c_out,
                hw,
                k: 4,
                stride,
            });
        }
    }
    // CelebA (64x64x3, 5x5 kernels), channels divided by 16 to keep the test fast.
    cases.push(Case {
        name: "celeba-enc0",
        kind: Kind::Conv(same(64, 5, 2)),
        n: 2,
        c_in: 3,
        c_out: 8,
        hw: 64,
        k: 5,
        stride: 2,
    });
    cases.push(Case {
        name: "celeba-enc1",
        kind: Kind::Conv(same(32, 5, 2)),
        n: 2,
        c_in: 8,
        c_out: 16,
        hw: 32,
        k: 5,
        stride: 2,
    });
    cases.push(Case {
        name: "celeba-enc3",
        kind: Kind::Conv(same(8, 5, 2)),
        n: 2,
        c_in: 32,
        c_out: 64,
        hw: 8,
        k: 5,
        stride: 2,
    });
    cases.push(Case {
        name: "celeba-dec1",
        kind: Kind::Transposed {
            padding: 2,
            output_padding: 1,
        },
        n: 2,
        c_in: 64,
        c_out: 32,
        hw: 8,
        k: 5,
        stride: 2,
    });
    cases.push(Case {
        name: "celeba-dec3",
        kind: Kind::Transposed {
            padding: 2,
            output_padding: 1,
        },
        n: 2,
        c_in: 16,
        c_out: 8,
        hw: 32,
        k: 5,
        stride: 2,
    });
    cases.push(Case {
        name: "celeba-dec4",
        kind: Kind::Transposed {
            padding: 2,
            output_padding: 0,
        },
        n: 2,
        c_in: 8,
        c_out: 3,
        hw: 64,
        k: 5,
        stride: 1,
    });
    // Odd shapes: stride 3, no padding, 1x1 and 3x3 kernels, batch 1 and 5.
    cases.push(Case {
        name: "odd-conv-s3",
        kind: Kind::Conv(Padding2d::uniform(0)),
        n: 5,
        c_in: 3,
        c_out: 5,
        hw: 11,
        k: 3,
        stride: 3,
    });
    cases.push(Case {
        name: "odd-conv-1x1",
        kind: Kind::Conv(Padding2d::uniform(0)),
        n: 1,
        c_in: 7,
        c_out: 2,
        hw: 5,
        k: 1,
        stride: 1,
    });
    cases.push(Case {
        name: "odd-conv-asym",
        // Both padded sides 8 wide: candle 0.11's conv2d backward takes the output
        // padding of its input gradient from the height alone, so it cannot check
        // shapes whose padded height and width differ in remainder.
        kind: Kind::Conv(Padding2d {
            top: 0,
            bottom: 2,
            left: 2,
            right: 0,
        }),
        n: 2,
        c_in: 2,
        c_out: 3,
        hw: 6,
        k: 3,
        stride: 2,
    });
    cases.push(Case {
        name: "odd-convt-s3",
        kind: Kind::Transposed {
            padding: 1,
            output_padding: 2,
        },
        n: 5,
        c_in: 3,
        c_out: 4,
        hw: 5,
        k: 3,
        stride: 3,
    });
    cases.push(Case {
        name: "odd-convt-1x1",
        kind: Kind::Transposed {
            padding: 0,
            output_padding: 0,
        },
        n: 1,
        c_in: 6,
        c_out: 2,
        hw: 4,
        k: 1,
        stride: 1,
    });
    cases.push(Case {
        name: "odd-convt-k2",
        kind: Kind::Transposed {
            padding: 0,
            output_padding: 0,
        },
        n: 3,
        c_in: 5,
        c_out: 7,
        hw: 3,
        k: 2,
        stride: 2,
    });
    cases
}

/// Candle's own op for `case`, bias added by broadcasting.
fn candle_conv(case: &Case, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let y = match case.kind {
        Kind::Conv(p) => {
            if p.top == p.bottom && p.left == p.right && p.top == p.left {
                x.conv2d(w, p.top, case.stride, 1, 1)?
            } else {
                x.pad_with_zeros(2, p.top, p.bottom)?
                    .pad_with_zeros(3, p.left, p.right)?
                    .conv2d(w, 0, case.stride, 1, 1)?
            }
        }
        Kind::Transposed {
            padding,
            output_padding,
        } => x.conv_transpose2d(w, padding, output_padding, case.stride, 1)?,
    };
    y.broadcast_add(&b.reshape((1, (), 1, 1))?)
}

fn ours(case: &Case, x: &Tensor, w: &Tensor, b: &Tensor) -> wae_kernels::Result<Tensor> {
    match case.kind {
        Kind::Conv(p) => wae_kernels::conv2d_padded(x, w, Some(b), case.stride, p),
        Kind::Transposed {
            padding,
            output_padding,
        } => wae_kernels::conv_transpose2d(x, w, Some(b), case.stride, padding, output_padding),
    }
}

fn weight_shape(case: &Case) -> [usize; 4] {
    match case.kind {
        Kind::Conv(_) => [case.c_out, case.c_in, case.k, case.k],
        Kind::Transposed { .. } => [case.c_in, case.c_out, case.k, case.k],
    }
}

/// Forward values and the gradients of `sum(y * r)` for x, w and b, ours vs candle's.
fn check_case(case: &Case, dtype: DType, tol: f64, rng: &mut StdRng) -> R {
    let x = Var::from_tensor(&randn(
        rng,
        &[case.n, case.c_in, case.hw, case.hw],
        1.0,
        dtype,
    )?)?;
    let w = Var::from_tensor(&randn(rng, &weight_shape(case), 0.1, dtype)?)?;
    let b = Var::from_tensor(&randn(rng, &[case.c_out], 0.1, dtype)?)?;
    // The reference is candle's op on the same values in f64, so that what is
    // measured is our error, not the f32 rounding of the reference.
    let (x64, w64, b64) = (to_f64_var(&x)?, to_f64_var(&w)?, to_f64_var(&b)?);
    let y_ref = candle_conv(case, &x64, &w64, &b64)?;
    let y = ours(case, &x, &w, &b)?;
    assert_eq!(y.dims(), y_ref.dims(), "{}: output shape", case.name);
    let e = rel_err(&y, &y_ref)?;
    assert!(e < tol, "{}: forward rel err {e:e}", case.name);
    let r = randn(rng, y.dims(), 1.0, dtype)?;
    let g_ref = (&y_ref * r.to_dtype(DType::F64)?)?.sum_all()?.backward()?;
    let g = (&y * &r)?.sum_all()?.backward()?;
    for ((var, var64), what) in [(&x, &x64), (&w, &w64), (&b, &b64)]
        .into_iter()
        .zip(["input", "weight", "bias"])
    {
        let (ours, theirs) = (g.get(var), g_ref.get(var64));
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            panic!("{}: missing {what} gradient", case.name);
        };
        let e = rel_err(ours, theirs)?;
        assert!(e < tol, "{}: {what} gradient rel err {e:e}", case.name);
    }
    Ok(())
}

/// Serialises the tests that depend on the process-wide Winograd switch: the
/// 4x4 stride-2 transposed convolutions (the `-dec1` / `-dec2` cases) run the Winograd
/// path while it is on, and the GEMM + col2im path while it is off.
static WINOGRAD_SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`WINOGRAD_SWITCH`] with the switch set to `on` (and set back on when dropped).
struct WinogradGuard(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl WinogradGuard {
    fn set(on: bool) -> Self {
        let guard = WINOGRAD_SWITCH
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        wae_kernels::set_winograd_enabled(on);
        Self(guard)
    }
}

impl Drop for WinogradGuard {
    fn drop(&mut self) {
        wae_kernels::set_winograd_mode(wae_kernels::WinogradMode::Auto);
    }
}

/// The cases the Winograd path takes: 4x4 kernel, stride 2, padding 1, `(H, W) -> (2H, 2W)`.
fn is_winograd_shape(case: &Case) -> bool {
    matches!(
        case.kind,
        Kind::Transposed {
            padding: 1,
            output_padding: 0
        }
    ) && case.k == 4
        && case.stride == 2
}

#[test]
fn convolutions_match_candle_f32() -> R {
    let _winograd = WinogradGuard::set(true);
    let mut rng = StdRng::seed_from_u64(7);
    for case in cases() {
        check_case(&case, DType::F32, 1e-5, &mut rng)?;
    }
    Ok(())
}

#[test]
fn convolutions_match_candle_f64() -> R {
    let _winograd = WinogradGuard::set(true);
    let mut rng = StdRng::seed_from_u64(8);
    for case in cases().iter().filter(|c| !c.name.contains("-w1-")) {
        check_case(case, DType::F64, 1e-12, &mut rng)?;
    }
    Ok(())
}

/// The up-sampling layers on the GEMM + col2im path (Winograd off), values and
/// gradients; the test above runs them on the Winograd path.
#[test]
fn winograd_shapes_on_the_gemm_path_match_candle() -> R {
    let _winograd = WinogradGuard::set(false);
    let winograd_cases: Vec<Case> = cases().into_iter().filter(is_winograd_shape).collect();
    assert_eq!(
        winograd_cases.len(),
        4,
        "the MNIST dec1 / dec2 layers at both widths"
    );
    let mut rng = StdRng::seed_from_u64(9);
    for case in &winograd_cases {
        check_case(case, DType::F32, 1e-5, &mut rng)?;
    }
    for case in winograd_cases.iter().filter(|c| !c.name.contains("-w1-")) {
        check_case(case, DType::F64, 1e-12, &mut rng)?;
    }
    Ok(())
}

/// The gradient of `L = sum(f(x, w, b) * r)` against central differences, in f64.
fn finite_difference_check(
    f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> wae_kernels::Result<Tensor>,
    shapes: [&[usize]; 3],
    seed: u64,
) -> R {
    let mut rng = StdRng::seed_from_u64(seed);
    let vars: Vec<Var> = shapes
        .iter()
        .map(|s| Var::from_tensor(&randn(&mut rng, s, 1.0, DType::F64)?))
        .collect::<candle_core::Result<_>>()?;
    let y = f(&vars[0], &vars[1], &vars[2])?;
    let r = randn(&mut rng, y.dims(), 1.0, DType::F64)?;
    let loss = |a: &Tensor, b: &Tensor, c: &Tensor| -> Result<f64, Box<dyn std::error::Error>> {
        Ok((f(a, b, c)? * &r)?.sum_all()?.to_scalar::<f64>()?)
    };
    let grads = (y * &r)?.sum_all()?.backward()?;
    let h = 1e-6;
    for (i, var) in vars.iter().enumerate() {
        let g = grads
            .get(var)
            .ok_or("missing gradient")?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let base = var.flatten_all()?.to_vec1::<f64>()?;
        for j in 0..base.len() {
            let shifted = |delta: f64| -> candle_core::Result<Tensor> {
                let mut v = base.clone();
                v[j] += delta;
                Tensor::from_vec(v, var.shape(), &Device::Cpu)
            };
            let mut args: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            args[i] = shifted(h)?;
            let up = loss(&args[0], &args[1], &args[2])?;
            args[i] = shifted(-h)?;
            let down = loss(&args[0], &args[1], &args[2])?;
            let numeric = (up - down) / (2.0 * h);
            assert!(
                (numeric - g[j]).abs() <= 1e-6 * (1.0 + numeric.abs()),
                "arg {i} element {j}: analytic {} vs numeric {numeric}",
                g[j]
            );
        }
    }
    Ok(())
}

#[test]
fn conv_transpose_gradient_matches_finite_differences() -> R {
    finite_difference_check(
        &|x, w, b| wae_kernels::conv_transpose2d(x, w, Some(b), 2, 1, 1),
        [&[2, 2, 3, 3], &[2, 3, 3, 3], &[3]],
        11,
    )
}

/// The Winograd path (4x4, stride 2, padding 1, odd input size) and the GEMM path on
/// the same layer, against central differences.
#[test]
fn winograd_conv_transpose_gradient_matches_finite_differences() -> R {
    for on in [true, false] {
        let _winograd = WinogradGuard::set(on);
        finite_difference_check(
            &|x, w, b| wae_kernels::conv_transpose2d(x, w, Some(b), 2, 1, 0),
            [&[2, 3, 3, 5], &[3, 2, 4, 4], &[2]],
            15,
        )?;
    }
    Ok(())
}

#[test]
fn conv_gradient_matches_finite_differences() -> R {
    let pad = Padding2d {
        top: 1,
        bottom: 2,
        left: 0,
        right: 1,
    };
    finite_difference_check(
        &|x, w, b| wae_kernels::conv2d_padded(x, w, Some(b), 2, pad),
        [&[2, 2, 5, 4], &[3, 2, 3, 3], &[3]],
        12,
    )
}

#[test]
fn batch_norm_relu_gradient_matches_finite_differences() -> R {
    finite_difference_check(
        &|x, w, b| {
            // Squared so that the loss is not linear in the normalised values.
            let y =
                wae_kernels::batch_norm_train(x, Some(w), Some(b), 1e-5, Activation::Relu)?.output;
            Ok(y.sqr()?)
        },
        [&[3, 2, 2, 3], &[2], &[2]],
        13,
    )
}

#[test]
fn batch_norm_eval_gradient_matches_finite_differences() -> R {
    let rm = Tensor::new(&[0.3f64, -0.2], &Device::Cpu)?;
    let rv = Tensor::new(&[1.5f64, 0.7], &Device::Cpu)?;
    finite_difference_check(
        &|x, w, b| {
            let y = wae_kernels::batch_norm_eval(
                x,
                &rm,
                &rv,
                Some(w),
                Some(b),
                1e-5,
                Activation::Relu,
            )?;
            Ok(y.sqr()?)
        },
        [&[3, 2, 2, 3], &[2], &[2]],
        14,
    )
}

/// BatchNorm shapes of the networks: (N, C, H, W).
fn bn_shapes() -> Vec<[usize; 4]> {
    vec![
        [4, 32, 14, 14],
        [4, 256, 2, 2],
        [3, 128, 14, 14],
        [3, 64, 28, 28],
        [2, 1024, 2, 2],
        [2, 512, 14, 14],
        [5, 3, 3, 5],
        [7, 2, 1, 1],
    ]
}

#[test]
fn batch_norm_train_matches_candle_nn() -> R {
    let mut rng = StdRng::seed_from_u64(21);
    for shape in bn_shapes() {
        let c = shape[1];
        for activation in [Activation::Identity, Activation::Relu] {
            let x = Var::from_tensor(&(randn(&mut rng, &shape, 2.0, DType::F32)? + 0.5)?)?;
            let gamma = Var::from_tensor(&(randn(&mut rng, &[c], 0.3, DType::F32)? + 1.0)?)?;
            let beta = Var::from_tensor(&randn(&mut rng, &[c], 0.3, DType::F32)?)?;
            // Reference: candle-nn's BatchNorm on the same values in f64.
            let (x64, gamma64, beta64) = (to_f64_var(&x)?, to_f64_var(&gamma)?, to_f64_var(&beta)?);
            let bn = candle_nn::BatchNorm::new(
                c,
                Tensor::zeros(c, DType::F64, &Device::Cpu)?,
                Tensor::ones(c, DType::F64, &Device::Cpu)?,
                gamma64.as_tensor().clone(),
                beta64.as_tensor().clone(),
                1e-5,
            )?;
            let mut y_ref = bn.forward_t(&x64, true)?;
            if activation == Activation::Relu {
                y_ref = y_ref.relu()?;
            }
            let out =
                wae_kernels::batch_norm_train(&x, Some(&gamma), Some(&beta), 1e-5, activation)?;
            let e = rel_err(&out.output, &y_ref)?;
            assert!(e < 1e-5, "{shape:?} {activation:?}: forward rel err {e:e}");
            // candle-nn's running stats after one step from (0, 1), momentum 0.1.
            let m = out.count as f64;
            let mean_ref = (bn.running_mean() / 0.1)?;
            let var_ref = ((bn.running_var() - 0.9)? / 0.1)?;
            assert!(
                rel_err(&out.batch_mean, &mean_ref)? < 1e-5,
                "{shape:?}: batch mean"
            );
            let unbiased = (&out.batch_var * (m / (m - 1.0)))?;
            assert!(rel_err(&unbiased, &var_ref)? < 1e-5, "{shape:?}: batch var");
            let r = randn(&mut rng, &shape, 1.0, DType::F32)?;
            let g_ref = (&y_ref * r.to_dtype(DType::F64)?)?.sum_all()?.backward()?;
            let g = (&out.output * &r)?.sum_all()?.backward()?;
            for ((var, var64), what) in [(&x, &x64), (&gamma, &gamma64), (&beta, &beta64)]
                .into_iter()
                .zip(["input", "gamma", "beta"])
            {
                let ours = g.get(var).ok_or("missing gradient")?;
                let theirs = g_ref.get(var64).ok_or("missing reference gradient")?;
                let e = rel_err(ours, theirs)?;
                assert!(
                    e < 1e-5,
                    "{shape:?} {activation:?}: {what} gradient rel err {e:e}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn batch_norm_eval_matches_candle_nn() -> R {
    let mut rng = StdRng::seed_from_u64(22);
    for shape in bn_shapes() {
        let c = shape[1];
        let x = Var::from_tensor(&randn(&mut rng, &shape, 2.0, DType::F32)?)?;
        let gamma = Var::from_tensor(&(randn(&mut rng, &[c], 0.3, DType::F32)? + 1.0)?)?;
        let beta = Var::from_tensor(&randn(&mut rng, &[c], 0.3, DType::F32)?)?;
        let rm = randn(&mut rng, &[c], 0.5, DType::F32)?;
        let rv = (randn(&mut rng, &[c], 0.2, DType::F32)?.abs()? + 0.5)?;
        let bn = candle_nn::BatchNorm::new(
            c,
            rm.clone(),
            rv.clone(),
            gamma.as_tensor().clone(),
            beta.as_tensor().clone(),
            1e-5,
        )?;
        let y_ref = bn.forward_t(&x, false)?.relu()?;
        let y = wae_kernels::batch_norm_eval(
            &x,
            &rm,
            &rv,
            Some(&gamma),
            Some(&beta),
            1e-5,
            Activation::Relu,
        )?;
        assert!(rel_err(&y, &y_ref)? < 1e-5, "{shape:?}: eval forward");
        let r = randn(&mut rng, &shape, 1.0, DType::F32)?;
        let g_ref = (&y_ref * &r)?.sum_all()?.backward()?;
        let g = (&y * &r)?.sum_all()?.backward()?;
        for (var, what) in [(&x, "input"), (&gamma, "gamma"), (&beta, "beta")] {
            let e = rel_err(
                g.get(var).ok_or("missing")?,
                g_ref.get(var).ok_or("missing")?,
            )?;
            assert!(e < 1e-5, "{shape:?}: eval {what} gradient rel err {e:e}");
        }
    }
    Ok(())
}

#[test]
fn fallbacks_agree_with_fast_path_on_f16() -> R {
    // f16 is not a fast-path dtype: the functions must still work (candle's ops).
    let mut rng = StdRng::seed_from_u64(5);
    let x = randn(&mut rng, &[2, 4, 5, 5], 1.0, DType::F32)?;
    let w = randn(&mut rng, &[4, 3, 4, 4], 0.1, DType::F32)?;
    let fast = wae_kernels::conv_transpose2d(&x, &w, None, 2, 1, 0)?;
    let slow = wae_kernels::conv_transpose2d(
        &x.to_dtype(DType::F16)?,
        &w.to_dtype(DType::F16)?,
        None,
        2,
        1,
        0,
    )?;
    assert!(rel_err(&slow, &fast)? < 1e-2, "f16 fallback differs");
    let bn = wae_kernels::batch_norm_train(
        &x.to_dtype(DType::F16)?,
        None,
        None,
        1e-5,
        Activation::Relu,
    )?;
    assert_eq!(bn.output.dims(), x.dims());
    Ok(())
}

#[test]
fn bad_shapes_are_errors() -> R {
    let dev = Device::Cpu;
    let x = Tensor::zeros((2, 3, 5, 5), DType::F32, &dev)?;
    let w_wrong = Tensor::zeros((4, 2, 3, 3), DType::F32, &dev)?;
    assert!(wae_kernels::conv2d(&x, &w_wrong, None, 1, 0).is_err());
    assert!(wae_kernels::conv_transpose2d(&x, &w_wrong, None, 1, 0, 0).is_err());
    let w = Tensor::zeros((3, 2, 3, 3), DType::F32, &dev)?;
    // output_padding must be smaller than the stride.
    assert!(wae_kernels::conv_transpose2d(&x, &w, None, 2, 0, 2).is_err());
    let bias_wrong = Tensor::zeros(5, DType::F32, &dev)?;
    assert!(wae_kernels::conv_transpose2d(&x, &w, Some(&bias_wrong), 2, 0, 0).is_err());
    assert!(
        wae_kernels::batch_norm_train(&x, Some(&bias_wrong), None, 1e-5, Activation::Identity)
            .is_err()
    );
    assert!(
        wae_kernels::batch_norm_train(
            &Tensor::zeros(3, DType::F32, &dev)?,
            None,
            None,
            1e-5,
            Activation::Identity
        )
        .is_err()
    );
    Ok(())
}

#[test]
fn cropped_transposed_convolution_matches_candle_narrow() -> R {
    let mut rng = StdRng::seed_from_u64(31);
    // (c_in, c_out, hw, k, stride, padding, out): MNIST's last layer (29 -> 28),
    // CelebA's 5x5 stride-2 layers (2h + 1 -> 2h) and an extension by one row.
    for &(c_in, c_out, hw, k, stride, padding, out) in &[
        (
            16usize,
            1usize,
            28usize,
            4usize,
            1usize,
            1usize,
            (28usize, 28usize),
        ),
        (8, 4, 8, 5, 2, 1, (16, 16)),
        (4, 3, 6, 4, 2, 1, (12, 13)),
        (3, 2, 5, 3, 2, 0, (9, 11)),
    ] {
        let x = Var::from_tensor(&randn(&mut rng, &[2, c_in, hw, hw], 1.0, DType::F32)?)?;
        let w = Var::from_tensor(&randn(&mut rng, &[c_in, c_out, k, k], 0.1, DType::F32)?)?;
        let b = Var::from_tensor(&randn(&mut rng, &[c_out], 0.1, DType::F32)?)?;
        let full = (hw - 1) * stride + k - 2 * padding;
        let extra = out.0.max(out.1).saturating_sub(full);
        let (x64, w64, b64) = (to_f64_var(&x)?, to_f64_var(&w)?, to_f64_var(&b)?);
        let y_ref = x64
            .conv_transpose2d(&w64, padding, extra, stride, 1)?
            .narrow(2, 0, out.0)?
            .narrow(3, 0, out.1)?
            .broadcast_add(&b64.reshape((1, (), 1, 1))?)?;
        let y = wae_kernels::conv_transpose2d_cropped(&x, &w, Some(&b), stride, padding, out)?;
        assert_eq!(y.dims(), &[2, c_out, out.0, out.1]);
        assert!(rel_err(&y, &y_ref)? < 1e-5, "{hw} -> {out:?}: forward");
        let r = randn(&mut rng, y.dims(), 1.0, DType::F32)?;
        let g_ref = (&y_ref * r.to_dtype(DType::F64)?)?.sum_all()?.backward()?;
        let g = (&y * &r)?.sum_all()?.backward()?;
        for ((var, var64), what) in [(&x, &x64), (&w, &w64), (&b, &b64)]
            .into_iter()
            .zip(["input", "weight", "bias"])
        {
            let e = rel_err(
                g.get(var).ok_or("missing")?,
                g_ref.get(var64).ok_or("missing")?,
            )?;
            assert!(e < 1e-5, "{hw} -> {out:?}: {what} gradient rel err {e:e}");
        }
    }
    let x = Tensor::zeros((1, 2, 4, 4), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((2, 2, 4, 4), DType::F32, &Device::Cpu)?;
    // Full size 8; stride 2 allows at most 9.
    assert!(wae_kernels::conv_transpose2d_cropped(&x, &w, None, 2, 1, (10, 8)).is_err());
    assert!(wae_kernels::conv_transpose2d_cropped(&x, &w, None, 2, 1, (0, 8)).is_err());
    Ok(())
}
