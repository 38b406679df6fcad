//! Configs of the three networks and the architecture table.
//!
//! Every config is a plain serde struct (unknown keys are errors, missing keys
//! take the [`Default`], which is the paper's MNIST setting), so it can be read
//! from TOML and written beside each checkpoint.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which family of encoder, decoder and image size to build.
///
/// Image sizes (channels, height, width) follow from the architecture, see
/// [`Architecture::image_shape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// MNIST, 1x28x28, the "dcgan" encoder and "dcgan_mod" decoder of the WAE
    /// code: 4 x [Conv 4x4 s2 'same', BN, ReLU] with 128..1024 channels; decoder
    /// Linear -> 7x7x1024, 2 x [ConvT 4x4 s2, BN, ReLU] (512, 256), ConvT 4x4 s1 -> 1.
    #[default]
    MnistDcgan,
    /// CelebA, 3x64x64: the same with 5x5 kernels; decoder Linear -> 8x8x1024,
    /// 3 x [ConvT 5x5 s2, BN, ReLU] (512, 256, 128), ConvT 5x5 s1 -> 3.
    CelebaDcgan,
    /// MNIST, 1x28x28, the "mlp" networks of the WAE code (its toy MNIST
    /// config): encoder 3 x [Linear 256, BN, ReLU] -> Linear; decoder
    /// 3 x [Linear 256, ReLU, BN] -> Linear 784.
    Mlp,
    /// Fading squares, 1x32x32 (Rubenstein et al.): the fully connected
    /// "FC_dsprites" networks of their code, without BatchNorm: encoder
    /// 2 x [Linear 1200, ReLU] -> Linear; decoder 3 x [Linear 1200, tanh] -> Linear 1024.
    FadingSquares,
    /// dSprites, 1x64x64, the WAE code's dSprites config (256 filters, 4 layers,
    /// 4x4 kernels): encoder 4 x [Conv 4x4 s2, BN, ReLU] with 32..256 channels;
    /// decoder Linear -> 8x8x256, 3 x [ConvT 4x4 s2, BN, ReLU] (128, 64, 32), ConvT 4x4 s1 -> 1.
    Dsprites,
    /// dSprites, 1x64x64, with Rubenstein et al.'s fully connected "FC_dsprites" networks
    /// (`paruby/Wasserstein-Auto-Encoders`, `models.py`), without BatchNorm: encoder
    /// 2 x [Linear 1200, ReLU] -> Linear; decoder 3 x [Linear 1200, tanh] -> Linear 4096.
    DspritesFc,
    /// Your own square images, `channels x side x side` (`side` a multiple of 16, 1 or 3
    /// channels): the CelebA layout at that size. Encoder 4 x [Conv 5x5 s2, BN, ReLU]
    /// with 128..1024 channels; decoder Linear -> (side/8)x(side/8)x1024,
    /// 3 x [ConvT 5x5 s2, BN, ReLU] (512, 256, 128), ConvT 5x5 s1 -> `channels`.
    /// In TOML: `architecture = { dcgan = { channels = 3, side = 32 } }`.
    Dcgan {
        /// 1 (grey) or 3 (RGB).
        channels: usize,
        /// Image side in pixels, a multiple of 16.
        side: usize,
    },
    /// Your own small images, `channels x side x side`: the fully connected nets of the
    /// fading-squares / dSprites configs (encoder 2 x [Linear 1200, ReLU] -> Linear;
    /// decoder 3 x [Linear 1200, tanh] -> Linear C*side*side), no BatchNorm.
    /// In TOML: `architecture = { fc = { channels = 1, side = 28 } }`.
    Fc {
        /// 1 (grey) or 3 (RGB).
        channels: usize,
        /// Image side in pixels.
        side: usize,
    },
}

/// The shape of one DCGAN-style network family (see [`Architecture::dcgan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DcganSpec {
    /// Square kernel size of every convolution.
    pub kernel: usize,
    /// Channels of the widest layer at full width (`e_num_filters` / `g_num_filters`).
    pub filters: usize,
    /// Number of stride-2 convolutions in the encoder.
    pub encoder_layers: usize,
    /// Number of stride-2 transposed convolutions in the decoder (the last,
    /// stride-1 one is extra).
    pub decoder_upsamplings: usize,
    /// Spatial side of the decoder's first feature map (after the Linear layer).
    pub decoder_start_size: usize,
}

impl Architecture {
    /// The fixed-size architectures of the papers, in declaration order (not the
    /// size-generic [`Architecture::Dcgan`] and [`Architecture::Fc`]).
    pub const ALL: [Architecture; 6] = [
        Architecture::MnistDcgan,
        Architecture::CelebaDcgan,
        Architecture::Mlp,
        Architecture::FadingSquares,
        Architecture::Dsprites,
        Architecture::DspritesFc,
    ];

    /// Image shape `(channels, height, width)` the networks read and write.
    pub fn image_shape(self) -> (usize, usize, usize) {
        match self {
            Architecture::MnistDcgan | Architecture::Mlp => (1, 28, 28),
            Architecture::CelebaDcgan => (3, 64, 64),
            Architecture::FadingSquares => (1, 32, 32),
            Architecture::Dsprites | Architecture::DspritesFc => (1, 64, 64),
            Architecture::Dcgan { channels, side } | Architecture::Fc { channels, side } => {
                (channels, side, side)
            }
        }
    }

    /// Checks the size-generic architectures' shapes (the others are always valid).
    pub fn validate(self) -> Result<()> {
        match self {
            Architecture::Dcgan { channels, side } => {
                if channels != 1 && channels != 3 {
                    return Err(Error::Config(format!(
                        "architecture dcgan: channels must be 1 or 3, got {channels}"
                    )));
                }
                if side == 0 || !side.is_multiple_of(16) || side > 1024 {
                    return Err(Error::Config(format!(
                        "architecture dcgan: side must be a multiple of 16 up to 1024 \
                         (16, 32, 64, 128, ...), got {side}; resize the images (data.size) \
                         or use the fully connected nets, `{{ fc = {{ channels = {channels}, side = {side} }} }}`"
                    )));
                }
                Ok(())
            }
            Architecture::Fc { channels, side } => {
                if channels != 1 && channels != 3 {
                    return Err(Error::Config(format!(
                        "architecture fc: channels must be 1 or 3, got {channels}"
                    )));
                }
                if side == 0 || side > 256 {
                    return Err(Error::Config(format!(
                        "architecture fc: side must be 1..=256 pixels, got {side} (for larger \
                         images use the convolutional `dcgan` nets)"
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Number of pixel values per image, `C * H * W`.
    pub fn image_len(self) -> usize {
        let (c, h, w) = self.image_shape();
        c * h * w
    }

    /// Latent dimension the papers use with this architecture (MNIST 8,
    /// CelebA 64, the WAE code's toy MLP 4, fading squares 2, the WAE code's dSprites 12,
    /// Rubenstein et al.'s dSprites 16).
    pub fn paper_latent_dim(self) -> usize {
        match self {
            Architecture::MnistDcgan => 8,
            Architecture::CelebaDcgan => 64,
            Architecture::Mlp => 4,
            Architecture::FadingSquares => 2,
            Architecture::Dsprites => 12,
            Architecture::DspritesFc => 16,
            Architecture::Dcgan { .. } => 64,
            Architecture::Fc { .. } => 16,
        }
    }

    /// Output activation that fits the data range the papers use: tanh for
    /// CelebA ([-1, 1] pixels), sigmoid for the rest ([0, 1] pixels).
    pub fn paper_activation(self) -> Activation {
        match self {
            Architecture::CelebaDcgan => Activation::Tanh,
            _ => Activation::Sigmoid,
        }
    }

    /// The DCGAN layout of this architecture, or `None` for the fully connected ones.
    pub fn dcgan(self) -> Option<DcganSpec> {
        match self {
            Architecture::MnistDcgan => Some(DcganSpec {
                kernel: 4,
                filters: 1024,
                encoder_layers: 4,
                decoder_upsamplings: 2,
                decoder_start_size: 7,
            }),
            Architecture::CelebaDcgan => Some(DcganSpec {
                kernel: 5,
                filters: 1024,
                encoder_layers: 4,
                decoder_upsamplings: 3,
                decoder_start_size: 8,
            }),
            Architecture::Dsprites => Some(DcganSpec {
                kernel: 4,
                filters: 256,
                encoder_layers: 4,
                decoder_upsamplings: 3,
                decoder_start_size: 8,
            }),
            Architecture::Dcgan { side, .. } => Some(DcganSpec {
                kernel: 5,
                filters: 1024,
                encoder_layers: 4,
                decoder_upsamplings: 3,
                decoder_start_size: side / 8,
            }),
            Architecture::Mlp
            | Architecture::FadingSquares
            | Architecture::DspritesFc
            | Architecture::Fc { .. } => None,
        }
    }

    /// Hidden width and depth of the fully connected architectures at full
    /// width, or `None` for the convolutional ones: `(units, encoder layers, decoder layers)`.
    pub fn fully_connected(self) -> Option<(usize, usize, usize)> {
        match self {
            Architecture::Mlp => Some((256, 3, 3)),
            Architecture::FadingSquares | Architecture::DspritesFc | Architecture::Fc { .. } => {
                Some((1200, 2, 3))
            }
            _ => None,
        }
    }
}

/// What the encoder outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    /// z = f(x): one linear head `fc`.
    #[default]
    Deterministic,
    /// Q(z|x) = N(mean, diag(exp(logvar))): heads `fc` (mean) and `fc_logvar`.
    /// The caller samples z = mean + exp(logvar / 2) * eps.
    Gaussian,
    /// Rubenstein et al.'s "uniform" random encoder: heads `fc` (mean) and `fc_logvar`;
    /// the caller samples z = mean + exp(logvar) * u with u ~ U[0, 1]^d (as
    /// `paruby/Wasserstein-Auto-Encoders`, `models.py`, `_z_sample_init`, does: a box of
    /// side exp(logvar) whose corner is the mean).
    UniformNoise,
    /// z = f(x) + eps^T A(f(x)) as the WAE code's "implicit" encoder: A is a
    /// (d_z x d_z) matrix computed from the code by 3 tanh layers (widths
    /// 2 d_z, 4 d_z, 6 d_z) and a linear layer; eps ~ N(0, I) is passed in by the caller.
    Implicit,
}

/// The decoder's output non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Logistic sigmoid, for pixels in [0, 1] (and Bernoulli decoders).
    #[default]
    Sigmoid,
    /// tanh, for pixels in [-1, 1].
    Tanh,
    /// No non-linearity, e.g. the mean of a Gaussian decoder.
    Identity,
}

/// How fresh weights are drawn (through the `VarBuilder`'s `Init` hints, so a
/// seeded backend gives reproducible networks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WeightInit {
    /// PyTorch's defaults: weights and biases uniform in +-1/sqrt(fan_in)
    /// (fan_in = size(1) * kernel area, as torch computes it).
    #[default]
    Default,
    /// Weights N(0, std^2), biases 0, as the reference TensorFlow code
    /// (`init_std` 0.01, `init_bias` 0).
    Normal {
        /// Standard deviation of the weights.
        std: f64,
    },
    /// TensorFlow's default for `tf.layers.dense` / `conv2d`: weights uniform in
    /// +-sqrt(6 / (fan_in + fan_out)) (Glorot / Xavier uniform), biases 0.
    GlorotUniform,
}

/// The reference code's weight init, N(0, 0.01^2) with zero biases.
pub const PAPER_INIT: WeightInit = WeightInit::Normal { std: 0.01 };

/// BatchNorm settings shared by encoder and decoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchNormConfig {
    /// Whether the DCGAN and MLP networks use BatchNorm at all (the fully
    /// connected fading-squares networks never do).
    pub enabled: bool,
    /// Weight of the new batch statistic in the running average:
    /// `running = (1 - momentum) * running + momentum * batch`. 0.1 as in
    /// PyTorch; the TensorFlow code's `decay` 0.9 is the same thing. Like
    /// PyTorch, the running variance averages the unbiased batch variance
    /// (the TF code's unfused `contrib.layers.batch_norm` used the biased one).
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub eps: f64,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            momentum: 0.1,
            eps: 1e-5,
        }
    }
}

/// Config of an [`crate::Encoder`]. Default: the paper's MNIST encoder (d_z = 8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// Network family (fixes the input image shape).
    pub architecture: Architecture,
    /// Dimension d_z of the latent codes.
    pub latent_dim: usize,
    /// Every hidden channel / unit count is divided by this (1 = paper width).
    pub width_div: usize,
    /// Deterministic, Gaussian or implicit (noise-input) encoder.
    pub kind: EncoderKind,
    /// BatchNorm settings.
    pub batch_norm: BatchNormConfig,
    /// How fresh weights are drawn.
    pub init: WeightInit,
    /// Gaussian encoders: a constant added to the `fc_logvar` head's output, so that a
    /// fresh encoder starts with variances about `exp(logvar_offset)` instead of about 1
    /// (0, the default, leaves the head as it is; left out of saved configs when 0).
    /// A random-encoder WAE starting at variance 1 gives a decoder nothing but noise and
    /// can stay collapsed; the random-encoder presets start nearly deterministic (-6).
    #[serde(skip_serializing_if = "is_zero")]
    pub logvar_offset: f64,
    /// Non-linearity on the mean head: identity (default) or tanh (Rubenstein et al.'s
    /// dSprites config, `z_mean_activation = 'tanh'`). Left out of saved configs when identity.
    #[serde(skip_serializing_if = "is_identity")]
    pub mean_activation: Activation,
    /// Random encoders: the log-variances are clipped to `[low, high]` before any use
    /// (sampling, penalties, KL). Default [-50, 50]; Rubenstein et al. use [-20, 5].
    /// Left out of saved configs when the default.
    #[serde(skip_serializing_if = "is_default_clip")]
    pub logvar_clip: [f64; 2],
}

/// The default log-variance clipping range of random encoders, `[-50, 50]`.
pub const DEFAULT_LOGVAR_CLIP: [f64; 2] = [-50.0, 50.0];

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_identity(a: &Activation) -> bool {
    *a == Activation::Identity
}

fn is_default_clip(c: &[f64; 2]) -> bool {
    *c == DEFAULT_LOGVAR_CLIP
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self::for_architecture(Architecture::MnistDcgan)
    }
}

impl EncoderConfig {
    /// The paper's settings for `architecture`: its latent dimension, full
    /// width, a deterministic encoder, N(0, 0.01^2) init for the WAE code's
    /// networks and TF's default (Glorot uniform) for Rubenstein et al.'s fully
    /// connected fading-squares and dSprites networks (their code uses TF's default layers).
    pub fn for_architecture(architecture: Architecture) -> Self {
        Self {
            architecture,
            latent_dim: architecture.paper_latent_dim(),
            width_div: 1,
            kind: EncoderKind::Deterministic,
            batch_norm: BatchNormConfig::default(),
            init: paper_init(architecture),
            logvar_offset: 0.0,
            mean_activation: Activation::Identity,
            logvar_clip: DEFAULT_LOGVAR_CLIP,
        }
    }

    /// Whether the encoder has a log-variance head (Gaussian or uniform-noise encoders).
    pub fn is_random(&self) -> bool {
        matches!(self.kind, EncoderKind::Gaussian | EncoderKind::UniformNoise)
    }

    /// Checks ranges; called by [`crate::Encoder::new`].
    pub fn validate(&self) -> Result<()> {
        if !self.logvar_offset.is_finite() {
            return Err(Error::Config(format!(
                "encoder.logvar_offset must be finite, got {}",
                self.logvar_offset
            )));
        }
        let [low, high] = self.logvar_clip;
        if !(low.is_finite() && high.is_finite() && low < high) {
            return Err(Error::Config(format!(
                "encoder.logvar_clip must be two finite numbers [low, high] with low < high, got {:?}",
                self.logvar_clip
            )));
        }
        if self.mean_activation == Activation::Sigmoid {
            return Err(Error::Config(
                "encoder.mean_activation must be \"identity\" or \"tanh\"".into(),
            ));
        }
        validate_common(
            self.architecture,
            self.latent_dim,
            self.width_div,
            &self.batch_norm,
            &self.init,
        )
    }
}

/// Config of a [`crate::Decoder`]. Default: the paper's MNIST decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// Network family (fixes the output image shape).
    pub architecture: Architecture,
    /// Dimension d_z of the latent codes it reads.
    pub latent_dim: usize,
    /// Every hidden channel / unit count is divided by this (1 = paper width).
    pub width_div: usize,
    /// Output non-linearity applied by `forward_t` (not by `forward_logits_t`).
    pub activation: Activation,
    /// BatchNorm settings.
    pub batch_norm: BatchNormConfig,
    /// How fresh weights are drawn.
    pub init: WeightInit,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self::for_architecture(Architecture::MnistDcgan)
    }
}

impl DecoderConfig {
    /// The paper's settings for `architecture` (see [`EncoderConfig::for_architecture`]);
    /// the activation is [`Architecture::paper_activation`].
    pub fn for_architecture(architecture: Architecture) -> Self {
        Self {
            architecture,
            latent_dim: architecture.paper_latent_dim(),
            width_div: 1,
            activation: architecture.paper_activation(),
            batch_norm: BatchNormConfig::default(),
            init: paper_init(architecture),
        }
    }

    /// Checks ranges; called by [`crate::Decoder::new`].
    pub fn validate(&self) -> Result<()> {
        validate_common(
            self.architecture,
            self.latent_dim,
            self.width_div,
            &self.batch_norm,
            &self.init,
        )
    }
}

/// Config of a latent-space [`crate::Discriminator`] (WAE-GAN's adversary).
/// Default: the paper's MNIST one, 4 x [Linear 512, ReLU] then Linear 1, on d_z = 8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscriminatorConfig {
    /// Dimension d_z of the codes it reads.
    pub latent_dim: usize,
    /// Hidden units per layer at full width (`d_num_filters`: 512 MNIST, 1024 in the code's CelebA config).
    pub hidden_units: usize,
    /// Number of [Linear, ReLU] blocks (`d_num_layers`, 4).
    pub hidden_layers: usize,
    /// The hidden units are divided by this (1 = paper width).
    pub width_div: usize,
    /// If set, the prior N(0, variance * I)'s log density log p_z(z) is added
    /// to the logits (the code's `gan_p_trick`, used for CelebA), so the
    /// network only learns -log q_z(z).
    pub prior_trick_variance: Option<f64>,
    /// How fresh weights are drawn.
    pub init: WeightInit,
}

impl Default for DiscriminatorConfig {
    fn default() -> Self {
        Self {
            latent_dim: 8,
            hidden_units: 512,
            hidden_layers: 4,
            width_div: 1,
            prior_trick_variance: None,
            init: PAPER_INIT,
        }
    }
}

impl DiscriminatorConfig {
    /// Checks ranges; called by [`crate::Discriminator::new`].
    pub fn validate(&self) -> Result<()> {
        check_latent_dim(self.latent_dim)?;
        if self.hidden_units > MAX_HIDDEN_UNITS {
            return Err(Error::Config(format!(
                "discriminator hidden_units = {} is too large: at most {MAX_HIDDEN_UNITS}",
                self.hidden_units
            )));
        }
        if self.hidden_layers > MAX_HIDDEN_LAYERS {
            return Err(Error::Config(format!(
                "discriminator hidden_layers = {} is too large: at most {MAX_HIDDEN_LAYERS}",
                self.hidden_layers
            )));
        }
        let units = check_width(
            self.hidden_units,
            self.width_div,
            "discriminator hidden_units",
        )? as u128;
        let layers = self.hidden_layers as u128;
        let weights = (self.latent_dim as u128 + 1) * units
            + layers.saturating_sub(1) * (units + 1) * units
            + units
            + 1;
        if weights > MAX_NETWORK_PARAMETERS {
            return Err(Error::Config(format!(
                "discriminator hidden_units = {} with hidden_layers = {} makes {weights} weights, \
                 more than the {MAX_NETWORK_PARAMETERS} a network may have",
                self.hidden_units, self.hidden_layers
            )));
        }
        if let Some(v) = self.prior_trick_variance
            && !(v.is_finite() && v > 0.0)
        {
            return Err(Error::Config(format!(
                "prior_trick_variance must be finite and > 0, got {v}"
            )));
        }
        validate_init(&self.init)
    }
}

fn paper_init(architecture: Architecture) -> WeightInit {
    match architecture {
        // Rubenstein et al.'s TF code builds these with `tf.layers.dense` defaults.
        Architecture::FadingSquares | Architecture::DspritesFc | Architecture::Fc { .. } => {
            WeightInit::GlorotUniform
        }
        _ => PAPER_INIT,
    }
}

/// Largest latent dimension d_z a config may ask for (the papers use 2 to 64).
pub const MAX_LATENT_DIM: usize = 4096;
/// Largest `hidden_units` of a discriminator (the papers use 512 and 1024).
pub const MAX_HIDDEN_UNITS: usize = 16_384;
/// Largest `hidden_layers` of a discriminator (the papers use 4 to 6).
pub const MAX_HIDDEN_LAYERS: usize = 64;
/// Most weights one network built from a config may have (2^28: 1 GiB of f32, before
/// Adam's two moments), so that a slip in a width is an error, not an allocation abort.
pub const MAX_NETWORK_PARAMETERS: u128 = 1 << 28;

fn check_latent_dim(latent_dim: usize) -> Result<()> {
    if latent_dim == 0 {
        return Err(Error::Config("latent_dim must be at least 1".into()));
    }
    if latent_dim > MAX_LATENT_DIM {
        return Err(Error::Config(format!(
            "latent_dim = {latent_dim} is too large: at most {MAX_LATENT_DIM}"
        )));
    }
    Ok(())
}

/// `full / width_div`, or an error when `width_div` is 0 or leaves no channel.
pub(crate) fn check_width(full: usize, width_div: usize, what: &str) -> Result<usize> {
    if width_div == 0 {
        return Err(Error::Config("width_div must be at least 1".into()));
    }
    let reduced = full / width_div;
    if reduced == 0 {
        return Err(Error::Config(format!(
            "width_div {width_div} leaves no units in {what} ({full} at full width)"
        )));
    }
    Ok(reduced)
}

fn validate_init(init: &WeightInit) -> Result<()> {
    if let WeightInit::Normal { std } = init
        && !(std.is_finite() && *std >= 0.0)
    {
        return Err(Error::Config(format!(
            "init std must be finite and >= 0, got {std}"
        )));
    }
    Ok(())
}

fn validate_common(
    architecture: Architecture,
    latent_dim: usize,
    width_div: usize,
    bn: &BatchNormConfig,
    init: &WeightInit,
) -> Result<()> {
    check_latent_dim(latent_dim)?;
    architecture.validate()?;
    let smallest = match (architecture.dcgan(), architecture.fully_connected()) {
        (Some(spec), _) => spec.filters >> (spec.encoder_layers - 1).max(spec.decoder_upsamplings),
        (None, Some((units, _, _))) => units,
        (None, None) => 1,
    };
    check_width(smallest, width_div, "the narrowest layer")?;
    if !(bn.momentum.is_finite() && (0.0..=1.0).contains(&bn.momentum)) {
        return Err(Error::Config(format!(
            "batch_norm.momentum must be in [0, 1], got {}",
            bn.momentum
        )));
    }
    if !(bn.eps.is_finite() && bn.eps > 0.0) {
        return Err(Error::Config(format!(
            "batch_norm.eps must be > 0, got {}",
            bn.eps
        )));
    }
    validate_init(init)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_widths_are_errors_naming_the_value() {
        for units in [1_000_000_000_000usize, usize::MAX, MAX_HIDDEN_UNITS + 1] {
            let cfg = DiscriminatorConfig {
                hidden_units: units,
                ..DiscriminatorConfig::default()
            };
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("hidden_units = {units}")), "{err}");
        }
        let cfg = DiscriminatorConfig {
            hidden_units: MAX_HIDDEN_UNITS,
            hidden_layers: MAX_HIDDEN_LAYERS,
            ..DiscriminatorConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("weights"), "{err}");
        assert!(DiscriminatorConfig::default().validate().is_ok());
        let enc = EncoderConfig {
            latent_dim: usize::MAX,
            ..EncoderConfig::default()
        };
        let err = enc.validate().unwrap_err().to_string();
        assert!(
            err.contains(&format!("latent_dim = {}", usize::MAX)),
            "{err}"
        );
    }
}
