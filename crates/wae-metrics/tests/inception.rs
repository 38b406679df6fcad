//! The FID Inception against pytorch-fid's network in PyTorch.
//!
//! Expected values come from `xtask/reference/inception_reference.py`: the op
//! references are pasted below, the pool3 features of two inputs are in
//! `tests/data/inception_reference_features.txt`. Both sides use the weights of
//! `wae_metrics::testing::inception_formula_weights` (no weights file needed).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use wae_metrics::inception::{self, ops};
use wae_metrics::{Error, InceptionConfig, InceptionV3};

/// The script's `input_images`: ((k * mult + add) % 1009) / 1008 in f32.
fn input_images(n: usize, c: usize, h: usize, w: usize, mult: u64, add: u64) -> Tensor {
    let values: Vec<f32> = (0..(n * c * h * w) as u64)
        .map(|k| ((k * mult + add) % 1009) as f32 / 1008.0)
        .collect();
    Tensor::from_vec(values, (n, c, h, w), &Device::Cpu).unwrap()
}

fn assert_close(got: &[f32], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let err = (f64::from(*g) - e).abs();
        assert!(
            err <= tol * e.abs().max(1.0),
            "{what}[{i}]: got {g}, expected {e}"
        );
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn bilinear_resize_matches_torch_interpolate() {
    let x = input_images(1, 1, 5, 7, 7919, 13);
    let up = [
        0.32605817914009094,
        0.5603955984115601,
        0.8278018236160278,
        0.7312109470367432,
        0.6346200108528137,
        0.538029134273529,
        0.4414381980895996,
        0.34484732151031494,
        0.2482563704252243,
        0.15166546404361725,
        0.08267196267843246,
        0.8908730149269104,
        0.821879506111145,
        0.7252886295318604,
        0.6286976933479309,
        0.5321068167686462,
        0.4355158805847168,
        0.33892497420310974,
        0.24233408272266388,
        0.14574313163757324,
        0.5951478481292725,
        0.9811508059501648,
        0.7883598208427429,
        0.7193662524223328,
        0.6227753758430481,
        0.5261844396591187,
        0.42959359288215637,
        0.33300265669822693,
        0.23641175031661987,
        0.1398208737373352,
        0.04322991892695427,
        0.492634654045105,
        0.8786375522613525,
    ];
    let down = [
        0.3313491940498352,
        0.6913442015647888,
        0.4257192611694336,
        0.1600942462682724,
        0.5781482458114624,
        0.6644344925880432,
        0.398809552192688,
        0.1331845223903656,
        0.8916171193122864,
        0.6259921193122864,
        0.3603670597076416,
        0.1338433176279068,
        0.8531745672225952,
        0.58754962682724,
        0.3219245970249176,
        0.4864133894443512,
        0.8147320747375488,
        0.5491071343421936,
        0.2834821343421936,
        0.643477201461792,
        0.776289701461792,
        0.510664701461792,
        0.2450396865606308,
        0.6050347089767456,
        0.7378472089767456,
        0.4722222089767456,
        0.2065972238779068,
        0.566592276096344,
        0.7109375,
        0.4453125,
        0.1796875,
        0.5396825075149536,
    ];
    let got_up = ops::resize_bilinear(&x, 3, 11).unwrap();
    assert_eq!(got_up.dims(), &[1, 1, 3, 11]);
    assert_close(&flat(&got_up), &up, 1e-6, "resize 5x7->3x11");
    let got_down = ops::resize_bilinear(&x, 8, 4).unwrap();
    assert_close(&flat(&got_down), &down, 1e-6, "resize 5x7->8x4");
    // Agrees with candle's own CPU kernel at the network's size (candle computes the
    // weights in f64, PyTorch and we in f32: differences of a few f32 ulps).
    let big = input_images(2, 3, 28, 33, 31, 5);
    let ours = ops::resize_bilinear(&big, 299, 299).unwrap();
    let candle = big.upsample_bilinear2d(299, 299, false).unwrap();
    let diff = (ours - candle)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "resize differs from candle's kernel by {diff}");
    // Rows of the interpolation matrix sum to 1.
    for (input, output) in [(28, 299), (331, 299), (5, 3)] {
        let m = ops::bilinear_matrix(input, output);
        for row in m.chunks(input) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }
}

#[test]
fn pools_match_torch() {
    let x = input_images(1, 1, 5, 7, 7919, 13);
    let avg = [
        0.6569940447807312,
        0.6645171642303467,
        0.6795635223388672,
        0.5277777314186096,
        0.3759920597076416,
        0.22420634329319,
        0.148313507437706,
        0.7096560597419739,
        0.6893738508224487,
        0.648809552192688,
        0.4970237910747528,
        0.3452380895614624,
        0.3046737313270569,
        0.2843915522098541,
        0.8149802088737488,
        0.7390873432159424,
        0.5873015522956848,
        0.4355158507823944,
        0.283730149269104,
        0.35438716411590576,
        0.38971564173698425,
        0.7534721493721008,
        0.6775793433189392,
        0.5257936716079712,
        0.3740079700946808,
        0.2222222089767456,
        0.40410053730010986,
        0.495039701461792,
        0.7227182388305664,
        0.64682537317276,
        0.4950396716594696,
        0.3432539701461792,
        0.1914682388305664,
        0.37334656715393066,
        0.4642857313156128,
    ];
    let got = ops::avg_pool_3x3_same_exclude_pad(&x).unwrap();
    assert_close(&flat(&got), &avg, 1e-6, "avg_pool count_include_pad=False");
    let max = [
        0.9047619104385376,
        0.9047619104385376,
        0.7242063283920288,
        0.4206348657608032,
        0.11706352233886719,
        -0.1865079402923584,
        -0.4900793433189392,
        0.9047619104385376,
        0.9047619104385376,
        0.7242063283920288,
        0.4206348657608032,
        0.11706352233886719,
        0.9623016119003296,
        0.9623016119003296,
        0.9047619104385376,
        0.9047619104385376,
        0.601190447807312,
        0.297619104385376,
        -0.005952358245849609,
        0.9623016119003296,
        0.9623016119003296,
        0.7817460298538208,
        0.7817460298538208,
        0.4781745672225952,
        0.17460322380065918,
        -0.1289682388305664,
        0.9623016119003296,
        0.9623016119003296,
        0.658730149269104,
        0.658730149269104,
        0.3551586866378784,
        0.05158734321594238,
        -0.2519841194152832,
        0.8392857313156128,
        0.8392857313156128,
    ];
    let negative = x.affine(2.0, -1.0).unwrap();
    let got = ops::max_pool_3x3_same(&negative).unwrap();
    assert_close(&flat(&got), &max, 1e-6, "max_pool padding 1");
}

#[test]
fn parameter_list_matches_pytorch_fid_state_dict() {
    let mut shapes = inception::parameter_shapes().unwrap();
    // The script prints: 470 keys, 21,820,000 parameters, first and last sorted keys.
    assert_eq!(shapes.len(), 470);
    let params: usize = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(params, 21_820_000);
    shapes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(shapes[0].0, "Conv2d_1a_3x3.bn.bias");
    assert_eq!(shapes[469].0, "Mixed_7c.branch_pool.conv.weight");
    assert_eq!(shapes[469].1, vec![192, 2048, 1, 1]);
}

fn reference_features() -> Vec<Vec<f64>> {
    include_str!("data/inception_reference_features.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn features_match_pytorch_fid_at_two_input_sizes() {
    let dev = Device::Cpu;
    let tensors = wae_metrics::testing::inception_formula_weights(&dev).unwrap();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let net = InceptionV3::new(&InceptionConfig::default(), vb).unwrap();
    let reference = reference_features();
    assert_eq!(reference.len(), 2);
    let inputs = [
        // Grey 28x28 (upsampled; the script repeats it to RGB itself).
        input_images(1, 1, 28, 28, 7919, 13),
        // RGB 331x307 (downsampled).
        input_images(1, 3, 331, 307, 104729, 7),
    ];
    for (x, expected) in inputs.iter().zip(&reference) {
        let start = std::time::Instant::now();
        let features = net.features(x).unwrap();
        assert_eq!(features.dims(), &[1, 2048]);
        let got = flat(&features);
        let mean_abs = expected.iter().map(|v| v.abs()).sum::<f64>() / expected.len() as f64;
        let mut worst = 0f64;
        let (mut err2, mut ref2) = (0f64, 0f64);
        for (g, e) in got.iter().zip(expected) {
            let g = f64::from(*g);
            // Relative to the value, floored at 1% of the mean so that ReLU zeros compare.
            worst = worst.max((g - e).abs() / e.abs().max(0.01 * mean_abs));
            err2 += (g - e) * (g - e);
            ref2 += e * e;
        }
        let rel_l2 = (err2 / ref2).sqrt();
        println!(
            "input {:?}: worst relative error {worst:.2e}, relative L2 {rel_l2:.2e}, {:.2} s",
            x.dims(),
            start.elapsed().as_secs_f64()
        );
        assert!(
            worst <= 1e-3,
            "input {:?}: worst relative error {worst:e}",
            x.dims()
        );
        assert!(
            rel_l2 <= 1e-4,
            "input {:?}: relative L2 error {rel_l2:e}",
            x.dims()
        );
    }
}

#[test]
fn features_reject_bad_channels() {
    let dev = Device::Cpu;
    let net = InceptionV3::new(
        &InceptionConfig::default(),
        VarBuilder::zeros(DType::F32, &dev),
    );
    // Zero BatchNorm variances fold to finite weights because of eps.
    let net = net.unwrap();
    let two = Tensor::zeros((1, 2, 8, 8), DType::F32, &dev).unwrap();
    assert!(matches!(net.features(&two), Err(Error::InvalidInput(_))));
}

#[test]
fn missing_weights_say_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("pt_inception-2015-12-05-6726825d.safetensors");
    let err = InceptionV3::load(&path, &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::MissingWeights { .. }));
    let message = err.to_string();
    assert!(
        message.contains("cargo xtask download inception"),
        "{message}"
    );
    assert!(message.contains("--weights FILE"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}
