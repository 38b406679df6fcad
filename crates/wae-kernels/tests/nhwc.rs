//! The channels-last inference kernels against candle's own ops (conv2d + bias + ReLU,
//! max pool, mean) and a direct loop (the average pool that leaves padding out of its
//! count): values, writing into a channel slice of a shared output, independence from
//! the thread count, and refused shapes.

use candle_core::{D, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wae_kernels::Padding2d;
use wae_kernels::nhwc::{
    Conv2dNhwc, FeatureMap, PoolWindow, avg_pool_exclude_pad, global_mean, max_pool, max_pool_into,
};

type R = Result<(), Box<dyn std::error::Error>>;

fn values(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

/// `max |a - b| / max |b|`.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| f64::from(y.abs())).fold(0.0, f64::max);
    diff / scale.max(f64::MIN_POSITIVE)
}

struct Case {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: (usize, usize),
    stride: usize,
    pad: Padding2d,
}

fn pad(top: usize, left: usize) -> Padding2d {
    Padding2d {
        top,
        bottom: top,
        left,
        right: left,
    }
}

/// candle: zero padding as explicit pads, conv2d, bias, optional ReLU; NCHW values.
fn candle_conv(
    case: &Case,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    relu: bool,
) -> candle_core::Result<Vec<f32>> {
    let dev = Device::Cpu;
    let x = Tensor::from_slice(x, (case.n, case.c_in, case.h, case.w), &dev)?
        .pad_with_zeros(2, case.pad.top, case.pad.bottom)?
        .pad_with_zeros(3, case.pad.left, case.pad.right)?;
    let w = Tensor::from_slice(weight, (case.c_out, case.c_in, case.k.0, case.k.1), &dev)?;
    let b = Tensor::from_slice(bias, (1, case.c_out, 1, 1), &dev)?;
    let mut y = x.conv2d(&w, 0, case.stride, 1, 1)?.broadcast_add(&b)?;
    if relu {
        y = y.relu()?;
    }
    y.flatten_all()?.to_vec1()
}

fn check_conv(case: &Case, relu: bool, rng: &mut StdRng) -> R {
    let x = values(rng, case.n * case.c_in * case.h * case.w);
    let weight = values(rng, case.c_out * case.c_in * case.k.0 * case.k.1);
    let bias = values(rng, case.c_out);
    let expected = candle_conv(case, &x, &weight, &bias, relu)?;
    let conv = Conv2dNhwc::new(
        &weight,
        [case.c_out, case.c_in, case.k.0, case.k.1],
        Some(&bias),
        (case.stride, case.stride),
        case.pad,
        relu,
    )?;
    let input = FeatureMap::from_nchw(&x, case.n, case.c_in, case.h, case.w)?;
    let got = conv.forward(&input)?;
    let (ho, wo) = conv.out_size(case.h, case.w)?;
    assert_eq!(got.dims(), (case.n, ho, wo, case.c_out));
    let e = rel_err(&got.to_nchw(), &expected);
    let what = format!(
        "{}x{} kernel, stride {}, {:?}, {}x{}x{}x{} -> {} channels",
        case.k.0, case.k.1, case.stride, case.pad, case.n, case.c_in, case.h, case.w, case.c_out
    );
    assert!(e <= 1e-5, "{what}: relative error {e:e}");

    // Into channels 5.. of a wider output: the same values, the other channels untouched.
    let c_total = case.c_out + 9;
    let mut shared = FeatureMap::from_nhwc(
        vec![7.5; case.n * ho * wo * c_total],
        case.n,
        ho,
        wo,
        c_total,
    )?;
    conv.forward_into(&input, &mut shared, 5)?;
    for (px, row) in shared.data().chunks_exact(c_total).enumerate() {
        assert!(
            row[..5]
                .iter()
                .chain(&row[5 + case.c_out..])
                .all(|&v| v == 7.5)
        );
        assert_eq!(
            &row[5..5 + case.c_out],
            &got.data()[px * case.c_out..][..case.c_out],
            "{what}: pixel {px} written into a channel slice differs"
        );
    }
    Ok(())
}

#[test]
fn convolution_matches_candle_on_the_inception_shapes() -> R {
    let mut rng = StdRng::seed_from_u64(11);
    let cases = [
        // 1x1 (read in place), small and split over threads.
        (2, 16, 5, 7, 8, (1, 1), 1, pad(0, 0)),
        (4, 24, 17, 17, 40, (1, 1), 1, pad(0, 0)),
        // The stem: 3 input channels, stride 2.
        (2, 3, 35, 33, 32, (3, 3), 2, pad(0, 0)),
        // 3x3 same, 5x5 same, 1x7 / 7x1 / 1x3 / 3x1 with one-sided padding.
        (3, 20, 12, 11, 24, (3, 3), 1, pad(1, 1)),
        (2, 12, 9, 9, 16, (5, 5), 1, pad(2, 2)),
        (2, 16, 17, 17, 12, (1, 7), 1, pad(0, 3)),
        (2, 16, 17, 17, 12, (7, 1), 1, pad(3, 0)),
        (2, 32, 8, 8, 20, (1, 3), 1, pad(0, 1)),
        (2, 32, 8, 8, 20, (3, 1), 1, pad(1, 0)),
        // Reductions: 3x3 stride 2 without padding, and a strided 1x1.
        (3, 24, 17, 17, 32, (3, 3), 2, pad(0, 0)),
        (2, 8, 9, 10, 8, (1, 1), 2, pad(0, 0)),
        // Padding wider than the kernel's reach on a tiny input.
        (1, 4, 2, 3, 5, (3, 3), 1, pad(2, 2)),
    ];
    for (n, c_in, h, w, c_out, k, stride, pad) in cases {
        let case = Case {
            n,
            c_in,
            h,
            w,
            c_out,
            k,
            stride,
            pad,
        };
        check_conv(&case, true, &mut rng)?;
        check_conv(&case, false, &mut rng)?;
    }
    Ok(())
}

#[test]
fn layout_conversion_round_trips() -> R {
    let mut rng = StdRng::seed_from_u64(3);
    let x = values(&mut rng, 2 * 5 * 3 * 4);
    let map = FeatureMap::from_nchw(&x, 2, 5, 3, 4)?;
    assert_eq!(map.dims(), (2, 3, 4, 5));
    // Sample 1, channel 2, row 1, column 3.
    assert_eq!(
        map.data()[((3 + 1) * 4 + 3) * 5 + 2],
        x[((5 + 2) * 3 + 1) * 4 + 3]
    );
    assert_eq!(map.to_nchw(), x);
    Ok(())
}

fn nchw_tensor(map: &FeatureMap) -> candle_core::Result<Tensor> {
    let (n, h, w, c) = map.dims();
    Tensor::from_vec(map.to_nchw(), (n, c, h, w), &Device::Cpu)
}

#[test]
fn pools_and_mean_match_candle() -> R {
    let mut rng = StdRng::seed_from_u64(5);
    let (n, c, h, w) = (2, 6, 9, 8);
    let x = FeatureMap::from_nchw(&values(&mut rng, n * c * h * w), n, c, h, w)?;
    let xt = nchw_tensor(&x)?;

    // 3x3 stride 2, no padding: candle's max pool directly.
    let down = PoolWindow {
        k: 3,
        stride: 2,
        pad: 0,
    };
    let got = max_pool(&x, down)?;
    let expected = xt.max_pool2d_with_stride((3, 3), (2, 2))?;
    assert_eq!(
        got.to_nchw(),
        expected.flatten_all()?.to_vec1::<f32>()?,
        "max pool 3x3 / 2"
    );

    // 3x3 stride 1, padding 1: -inf padding never wins.
    let same = PoolWindow {
        k: 3,
        stride: 1,
        pad: 1,
    };
    // Padding at -1e30 (the inputs lie in [-1, 1]) stands in for PyTorch's -inf.
    let padded = xt.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let inside = xt
        .ones_like()?
        .pad_with_zeros(2, 1, 1)?
        .pad_with_zeros(3, 1, 1)?;
    let masked = (padded + inside.affine(1e30, -1e30)?)?;
    let expected = masked.max_pool2d_with_stride((3, 3), (1, 1))?;
    assert_eq!(
        max_pool(&x, same)?.to_nchw(),
        expected.flatten_all()?.to_vec1::<f32>()?,
        "max pool 3x3 / 1, padding 1"
    );

    // Average without padding in the count: a direct loop in the same order.
    let got = avg_pool_exclude_pad(&x, same)?;
    let xv = x.data();
    for ni in 0..n {
        for y in 0..h {
            for xo in 0..w {
                for ch in 0..c {
                    let (mut sum, mut count) = (0f32, 0f32);
                    for yi in y.saturating_sub(1)..(y + 2).min(h) {
                        for xi in xo.saturating_sub(1)..(xo + 2).min(w) {
                            sum += xv[((ni * h + yi) * w + xi) * c + ch];
                            count += 1.0;
                        }
                    }
                    assert_eq!(
                        got.data()[((ni * h + y) * w + xo) * c + ch],
                        sum / count,
                        "average pool at ({ni}, {y}, {xo}, {ch})"
                    );
                }
            }
        }
    }

    // Into channels 2.. of a wider output.
    let mut shared = FeatureMap::zeros(n, 4, 3, c + 3);
    max_pool_into(&x, down, &mut shared, 2)?;
    let alone = max_pool(&x, down)?;
    for (row, want) in shared
        .data()
        .chunks_exact(c + 3)
        .zip(alone.data().chunks_exact(c))
    {
        assert_eq!(&row[2..2 + c], want);
        assert_eq!((row[0], row[1], row[c + 2]), (0.0, 0.0, 0.0));
    }

    // Global mean.
    let got = global_mean(&x);
    let expected = xt.flatten_from(2)?.mean(D::Minus1)?.flatten_all()?;
    let e = rel_err(&got, &expected.to_vec1::<f32>()?);
    assert!(e <= 1e-6, "global mean: {e:e}");
    Ok(())
}

#[test]
fn results_do_not_depend_on_the_thread_count() -> R {
    let mut rng = StdRng::seed_from_u64(9);
    let (n, c_in, h, w, c_out) = (4, 32, 19, 19, 24);
    let x = FeatureMap::from_nchw(&values(&mut rng, n * c_in * h * w), n, c_in, h, w)?;
    let mut outputs = Vec::new();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let mut rng = StdRng::seed_from_u64(10);
        let out = pool.install(|| -> wae_kernels::Result<Vec<Vec<f32>>> {
            let mut out = Vec::new();
            for (k, p) in [
                ((1, 1), pad(0, 0)),
                ((3, 3), pad(1, 1)),
                ((1, 7), pad(0, 3)),
            ] {
                let weight = values(&mut rng, c_out * c_in * k.0 * k.1);
                let conv =
                    Conv2dNhwc::new(&weight, [c_out, c_in, k.0, k.1], None, (1, 1), p, true)?;
                out.push(conv.forward(&x)?.into_data());
            }
            out.push(
                avg_pool_exclude_pad(
                    &x,
                    PoolWindow {
                        k: 3,
                        stride: 1,
                        pad: 1,
                    },
                )?
                .into_data(),
            );
            out.push(global_mean(&x));
            Ok(out)
        })?;
        outputs.push(out);
    }
    assert!(outputs[0] == outputs[1], "1 and 2 threads differ");
    assert!(outputs[0] == outputs[2], "1 and 3 threads differ");
    Ok(())
}

#[test]
fn bad_shapes_are_refused() -> R {
    let w = vec![0.0; 4 * 3 * 3 * 3];
    assert!(Conv2dNhwc::new(&w, [4, 3, 3, 2], None, (1, 1), pad(0, 0), true).is_err());
    // No input channels.
    assert!(Conv2dNhwc::new(&[], [4, 0, 3, 3], None, (1, 1), pad(0, 0), true).is_err());
    assert!(Conv2dNhwc::new(&w, [4, 3, 3, 3], Some(&[0.0; 3]), (1, 1), pad(0, 0), true).is_err());
    assert!(Conv2dNhwc::new(&w, [4, 3, 3, 3], None, (0, 1), pad(0, 0), true).is_err());
    let conv = Conv2dNhwc::new(&w, [4, 3, 3, 3], None, (1, 1), pad(0, 0), true)?;
    // Wrong channel count, and an input smaller than the kernel.
    assert!(conv.forward(&FeatureMap::zeros(1, 5, 5, 2)).is_err());
    assert!(conv.forward(&FeatureMap::zeros(1, 2, 5, 3)).is_err());
    // An output whose plane or channel range does not fit.
    let x = FeatureMap::zeros(1, 5, 5, 3);
    assert!(
        conv.forward_into(&x, &mut FeatureMap::zeros(1, 3, 3, 5), 2)
            .is_err()
    );
    assert!(
        conv.forward_into(&x, &mut FeatureMap::zeros(1, 4, 3, 4), 0)
            .is_err()
    );
    conv.forward_into(&x, &mut FeatureMap::zeros(1, 3, 3, 6), 2)?;
    assert!(FeatureMap::from_nhwc(vec![0.0; 5], 1, 2, 2, 1).is_err());
    assert!(
        max_pool(
            &x,
            PoolWindow {
                k: 7,
                stride: 1,
                pad: 0
            }
        )
        .is_err()
    );
    // Windows of side 0 and stride 0.
    let window = |k, stride| PoolWindow { k, stride, pad: 0 };
    assert!(avg_pool_exclude_pad(&x, window(0, 1)).is_err());
    assert!(max_pool(&x, window(3, 0)).is_err());
    Ok(())
}
