//! Weight init options: N(0, std^2) with zero biases (the reference code) and
//! PyTorch's default uniform(+-1/sqrt(fan_in)).

mod common;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use common::values;
use wae_nets::{Decoder, DecoderConfig, Encoder, EncoderConfig, PAPER_INIT, WeightInit};

fn std_of(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn normal_init_matches_the_reference_code() {
    assert_eq!(EncoderConfig::default().init, PAPER_INIT);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg = DecoderConfig {
        width_div: 8,
        init: WeightInit::Normal { std: 0.01 },
        ..Default::default()
    };
    Decoder::new(&cfg, vb).unwrap();
    let data = varmap.data().lock().unwrap();
    for (name, var) in data.iter() {
        let v = values(var.as_tensor());
        if name.ends_with("bn0.weight") || name.ends_with("running_var") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}");
        } else if name.ends_with(".bias") || name.ends_with("running_mean") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
        } else if name.ends_with(".weight") && !name.contains(".bn") && v.len() > 1000 {
            let s = std_of(&v);
            assert!((s - 0.01).abs() < 0.001, "{name}: std {s}");
        }
    }
}

#[test]
fn default_init_is_pytorch_uniform() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg = EncoderConfig {
        width_div: 8,
        init: WeightInit::Default,
        ..Default::default()
    };
    Encoder::new(&cfg, vb).unwrap();
    let data = varmap.data().lock().unwrap();
    // conv1: (32, 16, 4, 4), fan_in = 256, bound 1/16.
    let w = values(data["encoder.conv1.weight"].as_tensor());
    let b = values(data["encoder.conv1.bias"].as_tensor());
    let bound = 1.0f32 / 16.0;
    assert!(w.iter().chain(&b).all(|x| x.abs() <= bound + 1e-7));
    let s = std_of(&w);
    let want = bound as f64 / 3f64.sqrt();
    assert!((s - want).abs() < 0.1 * want, "std {s} vs {want}");
}

#[test]
fn logvar_offset_shifts_the_gaussian_heads_output_only() {
    use wae_nets::{Architecture, EncoderKind};
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let plain = EncoderConfig {
        kind: EncoderKind::Gaussian,
        ..EncoderConfig::for_architecture(Architecture::FadingSquares)
    };
    let shifted_cfg = EncoderConfig {
        logvar_offset: -6.0,
        ..plain.clone()
    };
    let a = Encoder::new(&plain, vb.clone()).unwrap();
    // Same VarMap: the second encoder reuses the first one's weights.
    let b = Encoder::new(&shifted_cfg, vb).unwrap();
    let x = candle_core::Tensor::rand(0f32, 1f32, (4, 1, 32, 32), &Device::Cpu).unwrap();
    let (oa, ob) = (
        a.forward_t(&x, false).unwrap(),
        b.forward_t(&x, false).unwrap(),
    );
    assert_eq!(values(&oa.mean), values(&ob.mean));
    let (la, lb) = (values(&oa.logvar.unwrap()), values(&ob.logvar.unwrap()));
    for (x, y) in la.iter().zip(&lb) {
        assert!((y - (x - 6.0)).abs() < 1e-5, "{x} -> {y}");
    }
    // A non-finite offset is refused.
    let bad = EncoderConfig {
        logvar_offset: f64::NAN,
        ..plain
    };
    assert!(bad.validate().is_err());
}

#[test]
fn glorot_uniform_init_is_tensorflows_dense_default() {
    use wae_nets::Architecture;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg = EncoderConfig::for_architecture(Architecture::FadingSquares);
    assert_eq!(cfg.init, WeightInit::GlorotUniform);
    Encoder::new(&cfg, vb).unwrap();
    let data = varmap.data().lock().unwrap();
    // fc0: 1024 -> 1200, bound sqrt(6 / 2224).
    let w = values(data["encoder.fc0.weight"].as_tensor());
    let b = values(data["encoder.fc0.bias"].as_tensor());
    let bound = (6.0f64 / 2224.0).sqrt() as f32;
    assert!(w.iter().all(|x| x.abs() <= bound + 1e-7));
    assert!(b.iter().all(|x| *x == 0.0));
    let s = std_of(&w);
    let want = bound as f64 / 3f64.sqrt();
    assert!((s - want).abs() < 0.02 * want, "std {s} vs {want}");
}
