//! Output shapes of every architecture and encoder kind, at batch 1 and a
//! larger batch, in training and evaluation mode; and clear errors for bad inputs.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use wae_nets::{
    Architecture, Decoder, DecoderConfig, Discriminator, DiscriminatorConfig, Encoder,
    EncoderConfig, EncoderKind, Error,
};

/// A width that keeps every architecture small (the narrowest layer keeps >= 4 units).
fn small_width(arch: Architecture) -> usize {
    match arch {
        Architecture::MnistDcgan | Architecture::CelebaDcgan | Architecture::Dcgan { .. } => 32,
        Architecture::Dsprites => 8,
        Architecture::Mlp => 16,
        Architecture::FadingSquares | Architecture::DspritesFc | Architecture::Fc { .. } => 100,
    }
}

#[test]
fn size_generic_nets_read_and_write_their_images() {
    let device = Device::Cpu;
    for arch in [
        Architecture::Dcgan {
            channels: 1,
            side: 32,
        },
        Architecture::Dcgan {
            channels: 3,
            side: 64,
        },
        Architecture::Dcgan {
            channels: 3,
            side: 128,
        },
        Architecture::Fc {
            channels: 1,
            side: 20,
        },
        Architecture::Fc {
            channels: 3,
            side: 9,
        },
    ] {
        let (c, h, w) = arch.image_shape();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let width_div = small_width(arch);
        let enc = Encoder::new(
            &EncoderConfig {
                width_div,
                ..EncoderConfig::for_architecture(arch)
            },
            vb.pp("enc"),
        )
        .unwrap();
        let dec = Decoder::new(
            &DecoderConfig {
                width_div,
                ..DecoderConfig::for_architecture(arch)
            },
            vb.pp("dec"),
        )
        .unwrap();
        let x = Tensor::zeros((2, c, h, w), DType::F32, &device).unwrap();
        let z = enc.forward_t(&x, true).unwrap().mean;
        assert_eq!(z.dims(), &[2, arch.paper_latent_dim()], "{arch:?}");
        let y = dec.forward_t(&z, true).unwrap();
        assert_eq!(y.dims(), &[2, c, h, w], "{arch:?}");
    }
    // A DCGAN side that is not a multiple of 16 is refused with the way out.
    let bad = Architecture::Dcgan {
        channels: 3,
        side: 40,
    };
    let err = Encoder::new(
        &EncoderConfig::for_architecture(bad),
        VarBuilder::from_varmap(&VarMap::new(), DType::F32, &device),
    )
    .expect_err("side 40")
    .to_string();
    assert!(
        err.contains("multiple of 16") && err.contains("fc = { channels = 3, side = 40 }"),
        "{err}"
    );
    let toml_arch: EncoderConfig =
        toml_from("architecture = { dcgan = { channels = 1, side = 32 } }");
    assert_eq!(
        toml_arch.architecture,
        Architecture::Dcgan {
            channels: 1,
            side: 32
        }
    );
}

fn toml_from(text: &str) -> EncoderConfig {
    toml::from_str(text).expect("toml")
}

/// Whether training mode works at this batch size: the fully connected
/// BatchNorm of the MLP needs two samples, the convolutional ones have H*W > 1 values.
fn train_ok(arch: Architecture, batch: usize) -> bool {
    batch > 1 || arch != Architecture::Mlp
}

#[test]
fn encoder_and_decoder_shapes_for_every_architecture_kind_and_batch() {
    let device = Device::Cpu;
    for arch in Architecture::ALL {
        let (c, h, w) = arch.image_shape();
        let d_z = arch.paper_latent_dim();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let dec = Decoder::new(
            &DecoderConfig {
                width_div: small_width(arch),
                ..DecoderConfig::for_architecture(arch)
            },
            vb.clone(),
        )
        .unwrap();
        for kind in [
            EncoderKind::Deterministic,
            EncoderKind::Gaussian,
            EncoderKind::UniformNoise,
            EncoderKind::Implicit,
        ] {
            let cfg = EncoderConfig {
                width_div: small_width(arch),
                kind,
                ..EncoderConfig::for_architecture(arch)
            };
            let enc = Encoder::new(&cfg, vb.pp(format!("{kind:?}"))).unwrap();
            for batch in [1usize, 5] {
                let x = image_input(arch, batch);
                for train in [false, true] {
                    if train && !train_ok(arch, batch) {
                        continue;
                    }
                    let out = match kind {
                        EncoderKind::Implicit => enc
                            .forward_with_noise_t(&x, &noise_input(batch, d_z), train)
                            .unwrap(),
                        _ => enc.forward_t(&x, train).unwrap(),
                    };
                    assert_eq!(out.mean.dims(), &[batch, d_z], "{arch:?} {kind:?}");
                    assert_eq!(
                        out.logvar.as_ref().map(|t| t.dims().to_vec()),
                        matches!(kind, EncoderKind::Gaussian | EncoderKind::UniformNoise)
                            .then(|| vec![batch, d_z]),
                        "{arch:?} {kind:?} logvar"
                    );
                    assert!(values(&out.mean).iter().all(|x| x.is_finite()));
                }
            }
        }
        for batch in [1usize, 5] {
            let z = code_input(batch, d_z);
            for train in [false, true] {
                if train && !train_ok(arch, batch) {
                    continue;
                }
                let logits = dec.forward_logits_t(&z, train).unwrap();
                assert_eq!(logits.dims(), &[batch, c, h, w], "{arch:?} decoder");
                // Outputs are finite and inside the activation's range.
                let images = dec.forward_t(&z, false).unwrap();
                assert_eq!(images.dims(), &[batch, c, h, w], "{arch:?} decoder");
                let v = values(&images);
                assert!(v.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
            }
        }
    }
}

#[test]
fn mnist_networks_at_full_width_have_paper_shapes() {
    // Width 1 (the paper's 128..1024 channels), batch 1 and 2, both modes.
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let enc = Encoder::new(
        &EncoderConfig {
            kind: EncoderKind::Gaussian,
            ..Default::default()
        },
        vb.clone(),
    )
    .unwrap();
    let dec = Decoder::new(&DecoderConfig::default(), vb).unwrap();
    {
        let data = varmap.data().lock().unwrap();
        assert_eq!(data["encoder.conv0.weight"].dims(), &[128, 1, 4, 4]);
        assert_eq!(data["encoder.conv3.weight"].dims(), &[1024, 512, 4, 4]);
        assert_eq!(data["encoder.fc.weight"].dims(), &[8, 1024 * 2 * 2]);
        assert_eq!(data["decoder.fc.weight"].dims(), &[7 * 7 * 1024, 8]);
        assert_eq!(data["decoder.deconv0.weight"].dims(), &[1024, 512, 4, 4]);
        assert_eq!(data["decoder.deconv1.weight"].dims(), &[512, 256, 4, 4]);
        assert_eq!(data["decoder.deconv2.weight"].dims(), &[256, 1, 4, 4]);
        assert!(!data.contains_key("decoder.bn2.weight"));
    }
    for (batch, train) in [(1usize, true), (2, false)] {
        let x = image_input(Architecture::MnistDcgan, batch);
        let q = enc.forward_t(&x, train).unwrap();
        assert_eq!(q.mean.dims(), &[batch, 8]);
        assert_eq!(q.logvar.unwrap().dims(), &[batch, 8]);
        let y = dec.forward_t(&q.mean, train).unwrap();
        assert_eq!(y.dims(), &[batch, 1, 28, 28]);
    }
}

#[test]
fn discriminator_gives_one_logit_per_code() {
    let device = Device::Cpu;
    for (d_z, prior) in [(8usize, None), (64, Some(2.0))] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let cfg = DiscriminatorConfig {
            latent_dim: d_z,
            width_div: 8,
            prior_trick_variance: prior,
            ..Default::default()
        };
        let disc = Discriminator::new(&cfg, vb).unwrap();
        for batch in [1usize, 7] {
            let logits = disc.forward(&code_input(batch, d_z)).unwrap();
            assert_eq!(logits.dims(), &[batch, 1]);
        }
    }
}

#[test]
fn bad_inputs_and_configs_give_errors() {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let enc = Encoder::new(
        &EncoderConfig {
            width_div: 32,
            ..Default::default()
        },
        vb.clone(),
    )
    .unwrap();
    let wrong = Tensor::zeros((2, 1, 32, 32), DType::F32, &device).unwrap();
    let err = enc.forward_t(&wrong, false).unwrap_err();
    assert!(matches!(err, Error::InputShape { .. }), "{err}");
    assert!(err.to_string().contains("(N, 1, 28, 28)"), "{err}");
    let noise = noise_input(2, 8);
    let x = image_input(Architecture::MnistDcgan, 2);
    assert!(matches!(
        enc.forward_with_noise_t(&x, &noise, false),
        Err(Error::NoiseNotAccepted(EncoderKind::Deterministic))
    ));

    let implicit = Encoder::new(
        &EncoderConfig {
            width_div: 32,
            kind: EncoderKind::Implicit,
            ..Default::default()
        },
        vb.pp("other"),
    )
    .unwrap();
    assert!(matches!(
        implicit.forward_t(&x, false),
        Err(Error::NoiseRequired)
    ));
    let short_noise = noise_input(1, 8);
    assert!(matches!(
        implicit.forward_with_noise_t(&x, &short_noise, false),
        Err(Error::InputShape { .. })
    ));

    let dec = Decoder::new(
        &DecoderConfig {
            width_div: 32,
            ..Default::default()
        },
        vb.clone(),
    )
    .unwrap();
    assert!(matches!(
        dec.forward_t(&code_input(2, 3), false),
        Err(Error::InputShape { .. })
    ));

    for bad in [0usize, 256] {
        let cfg = EncoderConfig {
            width_div: bad,
            ..Default::default()
        };
        assert!(matches!(
            Encoder::new(&cfg, vb.pp(format!("bad{bad}"))),
            Err(Error::Config(_))
        ));
    }
    let cfg = EncoderConfig {
        latent_dim: 0,
        ..Default::default()
    };
    assert!(matches!(
        Encoder::new(&cfg, vb.pp("z0")),
        Err(Error::Config(_))
    ));

    // MLP BatchNorm1d cannot take batch statistics of one sample.
    let mlp = Encoder::new(
        &EncoderConfig {
            width_div: 16,
            ..EncoderConfig::for_architecture(Architecture::Mlp)
        },
        vb.pp("mlp"),
    )
    .unwrap();
    let one = image_input(Architecture::Mlp, 1);
    assert!(matches!(
        mlp.forward_t(&one, true),
        Err(Error::BatchTooSmall(_))
    ));
    assert!(mlp.forward_t(&one, false).is_ok());
}

#[test]
fn configs_round_trip_through_toml_and_reject_unknown_keys() {
    let cfg = EncoderConfig {
        kind: EncoderKind::Gaussian,
        width_div: 4,
        ..EncoderConfig::for_architecture(Architecture::CelebaDcgan)
    };
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("architecture = \"celeba_dcgan\""), "{text}");
    let back: EncoderConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);
    let disc = DiscriminatorConfig {
        prior_trick_variance: Some(2.0),
        ..Default::default()
    };
    let back: DiscriminatorConfig = toml::from_str(&toml::to_string(&disc).unwrap()).unwrap();
    assert_eq!(back, disc);
    let partial: DecoderConfig = toml::from_str("width_div = 4").unwrap();
    assert_eq!(partial.architecture, Architecture::MnistDcgan);
    assert_eq!(partial.latent_dim, 8);
    assert_eq!(partial.width_div, 4);
    assert!(toml::from_str::<DecoderConfig>("widht_div = 4").is_err());
    assert!(
        toml::from_str::<DiscriminatorConfig>(r#"init = { type = "normal", std = 0.01, x = 1 }"#)
            .is_err()
    );
    let d: DiscriminatorConfig =
        toml::from_str("hidden_units = 256\ninit = { type = \"normal\", std = 0.02 }").unwrap();
    assert_eq!(d.hidden_units, 256);
    assert_eq!(d.init, wae_nets::WeightInit::Normal { std: 0.02 });
}

#[test]
fn gaussian_sample_is_mean_plus_scaled_noise() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let enc = Encoder::new(
        &EncoderConfig {
            width_div: 32,
            kind: EncoderKind::Gaussian,
            ..Default::default()
        },
        vb,
    )
    .unwrap();
    let q = enc
        .forward_t(&image_input(Architecture::MnistDcgan, 3), false)
        .unwrap();
    let eps = noise_input(3, 8);
    let z = values(&q.sample(&eps).unwrap());
    let (m, lv, e) = (
        values(&q.mean),
        values(q.logvar.as_ref().unwrap()),
        values(&eps),
    );
    for i in 0..24 {
        let want = m[i] + (lv[i] / 2.0).exp() * e[i];
        assert!((z[i] - want).abs() < 1e-5);
    }
    assert!(q.sample(&noise_input(2, 8)).is_err());
}

/// Rubenstein et al.'s encoder options: tanh on the mean, log-variances clipped, and the
/// uniform-noise draw z = mean + exp(logvar) u.
#[test]
fn tanh_mean_clipped_logvar_and_uniform_noise_sample() {
    use wae_nets::Activation;
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let cfg = EncoderConfig {
        kind: EncoderKind::UniformNoise,
        mean_activation: Activation::Tanh,
        logvar_clip: [-0.5, 0.25],
        width_div: 100,
        ..EncoderConfig::for_architecture(Architecture::DspritesFc)
    };
    let enc = Encoder::new(&cfg, vb).unwrap();
    // Large inputs drive the heads far outside the clip range and tanh's linear part.
    let x = (image_input(Architecture::DspritesFc, 4) * 50.0).unwrap();
    let out = enc.forward_t(&x, false).unwrap();
    let mean = values(&out.mean);
    let logvar = values(out.logvar.as_ref().unwrap());
    assert!(mean.iter().all(|m| m.abs() <= 1.0), "{mean:?}");
    assert!(
        logvar.iter().all(|l| (-0.5..=0.25).contains(l)),
        "{logvar:?}"
    );
    assert!(
        logvar.iter().any(|l| *l == -0.5 || *l == 0.25),
        "clipping was exercised: {logvar:?}"
    );
    let u = Tensor::full(0.5f32, out.mean.dims(), &device).unwrap();
    let z = values(&out.sample(&u).unwrap());
    for ((z, m), l) in z.iter().zip(&mean).zip(&logvar) {
        let expected = m + l.exp() * 0.5;
        assert!((z - expected).abs() < 1e-6, "{z} vs {expected}");
    }
    let bad = EncoderConfig {
        logvar_clip: [1.0, -1.0],
        ..cfg
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("logvar_clip")
    );
}
