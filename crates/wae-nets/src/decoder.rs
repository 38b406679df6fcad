//! Decoders G(z): codes `(N, d_z)` to images `(N, C, H, W)`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::{Architecture, DecoderConfig, check_width};
use crate::layers::{BatchNorm, ConvTranspose2d, Linear, activate, check_input, relu};
use crate::{Error, Result};

#[derive(Debug, Clone)]
enum Body {
    /// Linear -> ReLU -> reshape, then [ConvT s2, BN, ReLU]..., then ConvT s1.
    Dcgan {
        fc: Linear,
        start: (usize, usize, usize),
        upsamplings: Vec<(ConvTranspose2d, Option<BatchNorm>)>,
        output: ConvTranspose2d,
    },
    /// [Linear, ReLU, BN]... then Linear (the WAE code's MLP decoder).
    Mlp {
        hidden: Vec<(Linear, Option<BatchNorm>)>,
        output: Linear,
    },
    /// [Linear, tanh]... then Linear (Rubenstein et al.'s FC decoder).
    Tanh { hidden: Vec<Linear>, output: Linear },
}

/// A decoder of one of the [`Architecture`]s; see the crate docs for the
/// variable names.
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: DecoderConfig,
    body: Body,
}

impl Decoder {
    /// Builds the decoder, creating its variables under `decoder.` in `vb`
    /// (pass the root builder; the prefix is added here).
    pub fn new(cfg: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.pp("decoder");
        let arch = cfg.architecture;
        let (channels, height, _) = arch.image_shape();
        let d_z = cfg.latent_dim;
        let body = if let Some(spec) = arch.dcgan() {
            let c0 = check_width(spec.filters, cfg.width_div, "decoder")?;
            let s0 = spec.decoder_start_size;
            let fc = Linear::new(d_z, c0 * s0 * s0, &cfg.init, vb.pp("fc"))?;
            let mut c_in = c0;
            let mut upsamplings = Vec::new();
            for i in 0..spec.decoder_upsamplings {
                let full = spec.filters >> (i + 1);
                let c_out = check_width(full, cfg.width_div, "decoder deconv")?;
                let deconv = ConvTranspose2d::new(
                    c_in,
                    c_out,
                    spec.kernel,
                    2,
                    &cfg.init,
                    vb.pp(format!("deconv{i}")),
                )?;
                let bn = if cfg.batch_norm.enabled {
                    Some(BatchNorm::new(
                        c_out,
                        &cfg.batch_norm,
                        vb.pp(format!("bn{i}")),
                    )?)
                } else {
                    None
                };
                upsamplings.push((deconv, bn));
                c_in = c_out;
            }
            if s0 << spec.decoder_upsamplings != height {
                return Err(Error::Config(format!(
                    "{arch:?}: decoder start size {s0} does not upsample to {height}"
                )));
            }
            let output = ConvTranspose2d::new(
                c_in,
                channels,
                spec.kernel,
                1,
                &cfg.init,
                vb.pp(format!("deconv{}", spec.decoder_upsamplings)),
            )?;
            Body::Dcgan {
                fc,
                start: (c0, s0, s0),
                upsamplings,
                output,
            }
        } else if let Some((units, _, layers)) = arch.fully_connected() {
            let units = check_width(units, cfg.width_div, "decoder hidden layer")?;
            let mut d_in = d_z;
            let mut lins = Vec::new();
            for i in 0..layers {
                lins.push(Linear::new(
                    d_in,
                    units,
                    &cfg.init,
                    vb.pp(format!("fc{i}")),
                )?);
                d_in = units;
            }
            let output = Linear::new(d_in, arch.image_len(), &cfg.init, vb.pp("fc_out"))?;
            if arch == Architecture::Mlp {
                let mut hidden = Vec::new();
                for (i, lin) in lins.into_iter().enumerate() {
                    let bn = if cfg.batch_norm.enabled {
                        Some(BatchNorm::new(
                            units,
                            &cfg.batch_norm,
                            vb.pp(format!("bn{i}")),
                        )?)
                    } else {
                        None
                    };
                    hidden.push((lin, bn));
                }
                Body::Mlp { hidden, output }
            } else {
                Body::Tanh {
                    hidden: lins,
                    output,
                }
            }
        } else {
            return Err(Error::Config(format!("no decoder for {arch:?}")));
        };
        Ok(Self {
            cfg: cfg.clone(),
            body,
        })
    }

    /// The config this decoder was built from.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Decodes `z` `(N, d_z)` to logits `(N, C, H, W)`, before the output
    /// activation (for Bernoulli losses). `train` selects batch statistics
    /// (and updates the running ones) in BatchNorm.
    pub fn forward_logits_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let n = check_input(z, &[self.cfg.latent_dim], "decoder input z")?;
        let (c, h, w) = self.cfg.architecture.image_shape();
        match &self.body {
            Body::Dcgan {
                fc,
                start,
                upsamplings,
                output,
            } => {
                let mut x = relu(&fc.forward(z)?)?.reshape((n, start.0, start.1, start.2))?;
                for (deconv, bn) in upsamplings {
                    x = deconv.forward(&x)?;
                    // BatchNorm and ReLU in one fused kernel where there is a BatchNorm.
                    x = match bn {
                        Some(bn) => bn.forward_relu_t(&x, train)?,
                        None => relu(&x)?,
                    };
                }
                output.forward(&x)
            }
            Body::Mlp { hidden, output } => {
                let mut x = z.clone();
                for (lin, bn) in hidden {
                    x = relu(&lin.forward(&x)?)?;
                    if let Some(bn) = bn {
                        x = bn.forward_t(&x, train)?;
                    }
                }
                Ok(output.forward(&x)?.reshape((n, c, h, w))?)
            }
            Body::Tanh { hidden, output } => {
                let mut x = z.clone();
                for lin in hidden {
                    x = crate::layers::tanh(&lin.forward(&x)?)?;
                }
                Ok(output.forward(&x)?.reshape((n, c, h, w))?)
            }
        }
    }

    /// Decodes `z` `(N, d_z)` to images `(N, C, H, W)` after the configured
    /// output activation.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        activate(&self.forward_logits_t(z, train)?, self.cfg.activation)
    }
}
