//! Encoders Q(z|x): images `(N, C, H, W)` to codes `(N, d_z)`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::{Activation, Architecture, EncoderConfig, EncoderKind, check_width};
use crate::layers::{BatchNorm, Conv2dSame, Linear, check_input, flatten, relu};
use crate::{Error, Result};

/// What an encoder returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// The codes, `(N, d_z)`: the deterministic code, the mean of a random encoder
    /// (after its mean activation), or for an implicit encoder the noisy code
    /// f(x) + eps^T A(f(x)).
    pub mean: Tensor,
    /// Log-variances `(N, d_z)` of a Gaussian or uniform-noise encoder, already clipped
    /// to the config's `logvar_clip`; `None` otherwise.
    pub logvar: Option<Tensor>,
    /// The encoder kind, which says how [`EncoderOutput::sample`] uses `logvar`.
    pub kind: EncoderKind,
}

impl EncoderOutput {
    /// One draw of Q(z|x), `(N, d_z)`, from noise `eps` `(N, d_z)` drawn by the caller
    /// from a seeded RNG: z = mean + exp(logvar / 2) * eps with eps ~ N(0, I) for a
    /// Gaussian encoder, z = mean + exp(logvar) * eps with eps ~ U[0, 1]^d for a
    /// uniform-noise one; the codes themselves (`mean`) when there is no `logvar`.
    pub fn sample(&self, eps: &Tensor) -> Result<Tensor> {
        match &self.logvar {
            None => Ok(self.mean.clone()),
            Some(logvar) => {
                if eps.dims() != self.mean.dims() {
                    return Err(Error::InputShape {
                        network: "random encoder sample noise",
                        expected: format!("{:?} (the shape of mean)", self.mean.dims()),
                        got: eps.dims().to_vec(),
                    });
                }
                let spread = match self.kind {
                    EncoderKind::UniformNoise => logvar.exp()?,
                    _ => (logvar * 0.5)?.exp()?,
                };
                Ok((&self.mean + spread.mul(&eps.to_dtype(spread.dtype())?)?)?)
            }
        }
    }
}

/// A hidden layer of an encoder body (followed by optional BN, then ReLU).
#[derive(Debug, Clone)]
enum Hidden {
    Conv(Conv2dSame),
    Linear(Linear),
}

/// The implicit encoder's noise transform: A(code) via 3 tanh layers.
#[derive(Debug, Clone)]
struct NoiseTransform {
    hidden: Vec<Linear>,
    matrix: Linear,
}

/// An encoder of one of the [`Architecture`]s; see the crate docs for the
/// variable names.
#[derive(Debug, Clone)]
pub struct Encoder {
    cfg: EncoderConfig,
    body: Vec<(Hidden, Option<BatchNorm>)>,
    fc: Linear,
    fc_logvar: Option<Linear>,
    noise: Option<NoiseTransform>,
}

impl Encoder {
    /// Builds the encoder, creating its variables under `encoder.` in `vb`
    /// (pass the root builder: the prefix is added here, so encoder, decoder
    /// and discriminator can share one `VarMap` without name clashes).
    pub fn new(cfg: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.pp("encoder");
        let arch = cfg.architecture;
        let (channels, height, width) = arch.image_shape();
        let mut body = Vec::new();
        let features = if let Some(spec) = arch.dcgan() {
            let mut c_in = channels;
            let (mut h, mut w) = (height, width);
            for i in 0..spec.encoder_layers {
                let full = spec.filters >> (spec.encoder_layers - 1 - i);
                let c_out = check_width(full, cfg.width_div, "encoder conv")?;
                let conv = Conv2dSame::new(
                    c_in,
                    c_out,
                    spec.kernel,
                    2,
                    &cfg.init,
                    vb.pp(format!("conv{i}")),
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
                body.push((Hidden::Conv(conv), bn));
                c_in = c_out;
                h = h.div_ceil(2);
                w = w.div_ceil(2);
            }
            c_in * h * w
        } else if let Some((units, layers, _)) = arch.fully_connected() {
            let units = check_width(units, cfg.width_div, "encoder hidden layer")?;
            let use_bn = cfg.batch_norm.enabled && arch == Architecture::Mlp;
            let mut d_in = arch.image_len();
            for i in 0..layers {
                let lin = Linear::new(d_in, units, &cfg.init, vb.pp(format!("fc{i}")))?;
                let bn = if use_bn {
                    Some(BatchNorm::new(
                        units,
                        &cfg.batch_norm,
                        vb.pp(format!("bn{i}")),
                    )?)
                } else {
                    None
                };
                body.push((Hidden::Linear(lin), bn));
                d_in = units;
            }
            d_in
        } else {
            return Err(Error::Config(format!("no encoder for {arch:?}")));
        };
        let d_z = cfg.latent_dim;
        let fc = Linear::new(features, d_z, &cfg.init, vb.pp("fc"))?;
        let fc_logvar = if cfg.is_random() {
            Some(Linear::new(features, d_z, &cfg.init, vb.pp("fc_logvar"))?)
        } else {
            None
        };
        let noise = match cfg.kind {
            EncoderKind::Implicit => {
                let mut hidden = Vec::new();
                let mut d_in = d_z;
                for i in 0..3 {
                    let units = (2 * (i + 1) * d_z).max(2);
                    hidden.push(Linear::new(
                        d_in,
                        units,
                        &cfg.init,
                        vb.pp(format!("noise_fc{i}")),
                    )?);
                    d_in = units;
                }
                let matrix = Linear::new(d_in, d_z * d_z, &cfg.init, vb.pp("noise_matrix"))?;
                Some(NoiseTransform { hidden, matrix })
            }
            _ => None,
        };
        Ok(Self {
            cfg: cfg.clone(),
            body,
            fc,
            fc_logvar,
            noise,
        })
    }

    /// The config this encoder was built from.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Hidden features `(N, F)` before the heads.
    fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (c, h, w) = self.cfg.architecture.image_shape();
        check_input(x, &[c, h, w], "encoder input x")?;
        let mut hcur = match self.body.first() {
            Some((Hidden::Linear(_), _)) => flatten(x)?,
            _ => x.clone(),
        };
        for (layer, bn) in &self.body {
            hcur = match layer {
                Hidden::Conv(conv) => conv.forward(&hcur)?,
                Hidden::Linear(lin) => lin.forward(&hcur)?,
            };
            // BatchNorm and ReLU in one fused kernel where there is a BatchNorm.
            hcur = match bn {
                Some(bn) => bn.forward_relu_t(&hcur, train)?,
                None => relu(&hcur)?,
            };
        }
        flatten(&hcur)
    }

    /// Encodes `x` `(N, C, H, W)` (the architecture's image shape).
    ///
    /// Deterministic: `mean` = z, `(N, d_z)`, `logvar` = `None`. Gaussian and
    /// uniform-noise: `mean` (after the mean activation) and `logvar` (clipped), both
    /// `(N, d_z)`. Implicit encoders need noise: this returns
    /// [`Error::NoiseRequired`]; use [`Encoder::forward_with_noise_t`].
    /// `train` selects batch statistics (and updates the running ones) in BatchNorm.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<EncoderOutput> {
        if self.cfg.kind == EncoderKind::Implicit {
            return Err(Error::NoiseRequired);
        }
        let features = self.features(x, train)?;
        let mean = match self.cfg.mean_activation {
            Activation::Tanh => self.fc.forward(&features)?.tanh()?,
            _ => self.fc.forward(&features)?,
        };
        let logvar = match &self.fc_logvar {
            Some(head) => {
                let raw = head.forward(&features)?;
                let raw = if self.cfg.logvar_offset != 0.0 {
                    raw.affine(1.0, self.cfg.logvar_offset)?
                } else {
                    raw
                };
                let [low, high] = self.cfg.logvar_clip;
                Some(raw.clamp(low, high)?)
            }
            None => None,
        };
        Ok(EncoderOutput {
            mean,
            logvar,
            kind: self.cfg.kind,
        })
    }

    /// Encodes `x` `(N, C, H, W)` with an implicit encoder and noise `(N, d_z)`
    /// (standard normal, drawn by the caller from a seeded RNG): returns
    /// `mean` = f(x) + eps^T A(f(x)), `(N, d_z)`, and `logvar` = `None`.
    /// Other encoder kinds return [`Error::NoiseNotAccepted`].
    pub fn forward_with_noise_t(
        &self,
        x: &Tensor,
        noise: &Tensor,
        train: bool,
    ) -> Result<EncoderOutput> {
        let Some(transform) = &self.noise else {
            return Err(Error::NoiseNotAccepted(self.cfg.kind));
        };
        let d_z = self.cfg.latent_dim;
        let features = self.features(x, train)?;
        let code = self.fc.forward(&features)?;
        let n = code.dim(0)?;
        if noise.dims() != [n, d_z] {
            return Err(Error::InputShape {
                network: "implicit encoder noise",
                expected: format!("({n}, {d_z}) (batch of x, latent_dim)"),
                got: noise.dims().to_vec(),
            });
        }
        let mut h = code.clone();
        for lin in &transform.hidden {
            h = crate::layers::tanh(&lin.forward(&h)?)?;
        }
        let a = transform.matrix.forward(&h)?.reshape((n, d_z, d_z))?;
        let eps = noise.to_dtype(a.dtype())?.reshape((n, 1, d_z))?;
        let shift = eps.matmul(&a)?.reshape((n, d_z))?;
        Ok(EncoderOutput {
            mean: (code + shift)?,
            logvar: None,
            kind: self.cfg.kind,
        })
    }
}
