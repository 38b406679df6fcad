//! The networks as candle modules: `ModuleT::forward_t` / `Module::forward` give what
//! the inherent methods give, in training and evaluation mode.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, ModuleT, VarBuilder, VarMap};
use wae_nets::{
    Architecture, Decoder, DecoderConfig, Discriminator, DiscriminatorConfig, Encoder,
    EncoderConfig, EncoderKind,
};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn input(dims: &[usize], seed: f64) -> Tensor {
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i as f64 * 0.37 + seed).sin() * 0.5 + 0.5) as f32)
        .collect();
    Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
}

#[test]
fn decoder_and_encoder_module_t_match_their_methods() {
    let device = Device::Cpu;
    for (arch, width_div) in [(Architecture::MnistDcgan, 32), (Architecture::Mlp, 16)] {
        for kind in [EncoderKind::Deterministic, EncoderKind::Gaussian] {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
            let encoder = Encoder::new(
                &EncoderConfig {
                    width_div,
                    kind,
                    ..EncoderConfig::for_architecture(arch)
                },
                vb.clone(),
            )
            .unwrap();
            let decoder = Decoder::new(
                &DecoderConfig {
                    width_div,
                    ..DecoderConfig::for_architecture(arch)
                },
                vb,
            )
            .unwrap();
            let (c, h, w) = arch.image_shape();
            let x = input(&[3, c, h, w], 0.1);
            let d_z = encoder.config().latent_dim;
            let z = input(&[3, d_z], 0.7);
            for train in [false, true] {
                let codes = ModuleT::forward_t(&encoder, &x, train).unwrap();
                let out = encoder.forward_t(&x, train).unwrap();
                assert_eq!(max_abs_diff(&codes, &out.mean), 0.0, "{arch:?} {kind:?}");
                let images = ModuleT::forward_t(&decoder, &z, train).unwrap();
                let expected = decoder.forward_t(&z, train).unwrap();
                assert_eq!(images.dims(), &[3, c, h, w]);
                assert_eq!(max_abs_diff(&images, &expected), 0.0, "{arch:?}");
                // Module-style composition: decode the encoder's codes.
                let seq = candle_nn::seq()
                    .add_fn({
                        let encoder = encoder.clone();
                        move |x| ModuleT::forward_t(&encoder, x, false)
                    })
                    .add_fn({
                        let decoder = decoder.clone();
                        move |z| ModuleT::forward_t(&decoder, z, false)
                    });
                let round_trip = seq.forward(&x).unwrap();
                let by_hand = decoder
                    .forward_t(&encoder.forward_t(&x, false).unwrap().mean, false)
                    .unwrap();
                assert_eq!(max_abs_diff(&round_trip, &by_hand), 0.0);
            }
        }
    }
}

#[test]
fn discriminator_module_matches_its_method() {
    let device = Device::Cpu;
    for prior_trick_variance in [None, Some(2.0)] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let cfg = DiscriminatorConfig {
            width_div: 16,
            prior_trick_variance,
            ..DiscriminatorConfig::default()
        };
        let disc = Discriminator::new(&cfg, vb).unwrap();
        let z = input(&[5, cfg.latent_dim], 0.3);
        let logits = Module::forward(&disc, &z).unwrap();
        assert_eq!(logits.dims(), &[5, 1]);
        assert_eq!(max_abs_diff(&logits, &disc.forward(&z).unwrap()), 0.0);
        // Through the blanket ModuleT too.
        let logits_t = ModuleT::forward_t(&disc, &z, true).unwrap();
        assert_eq!(max_abs_diff(&logits_t, &logits), 0.0);
    }
}

#[test]
fn module_errors_say_what_went_wrong() {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let implicit = Encoder::new(
        &EncoderConfig {
            width_div: 16,
            kind: EncoderKind::Implicit,
            ..EncoderConfig::for_architecture(Architecture::Mlp)
        },
        vb.clone(),
    )
    .unwrap();
    let x = input(&[2, 1, 28, 28], 0.0);
    let err = ModuleT::forward_t(&implicit, &x, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("forward_with_noise_t"), "{err}");
    let decoder = Decoder::new(
        &DecoderConfig {
            width_div: 16,
            ..DecoderConfig::for_architecture(Architecture::Mlp)
        },
        vb,
    )
    .unwrap();
    let err = ModuleT::forward_t(&decoder, &input(&[2, 3], 0.0), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("decoder input z"), "{err}");
}
