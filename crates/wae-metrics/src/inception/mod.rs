//! The FID Inception-v3 of TTUR / pytorch-fid, pool3 (2048-d) features.
//!
//! This is pytorch-fid's `fid_inception_v3` seen through its
//! `InceptionV3(output_blocks=[3])` wrapper: torchvision's Inception-v3 layout
//! (1008 classes in the unused final layer, no auxiliary classifier), with the
//! FID variants of the blocks -- `FIDInceptionA` / `FIDInceptionC` /
//! `FIDInceptionE_1` average-pool with `count_include_pad = False`, and
//! `FIDInceptionE_2` (Mixed_7c) max-pools -- BatchNorm eps 1e-3, inputs
//! resized to 299x299 (bilinear, `align_corners = False`) and scaled from
//! [0, 1] to [-1, 1]. Weight names are pytorch-fid's state_dict keys
//! (`Mixed_5b.branch_pool.conv.weight`, `Mixed_5b.branch_pool.bn.running_var`, ...).
//!
//! BatchNorm is folded into the preceding convolution at load time
//! (`w * gamma / sqrt(var + eps)`, `beta - mean * gamma / sqrt(var + eps)`,
//! computed in f64), which changes results by float round-off only.

mod nhwc;
pub mod ops;
pub mod pth;

use std::path::Path;
use std::sync::Mutex;

use candle_core::{D, DType, Device, Module, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use crate::{Error, Result};

pub use pth::{PthTensor, convert_pth, read_pth, read_pth_raw, verify_sha256};

/// File name of the original weights (TTUR's TensorFlow graph ported by pytorch-fid).
pub const FID_WEIGHTS_FILE_NAME: &str = "pt_inception-2015-12-05-6726825d.pth";
/// Where pytorch-fid downloads the weights from.
pub const FID_WEIGHTS_URL: &str = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";
/// sha256 of [`FID_WEIGHTS_FILE_NAME`] (docs/PAPER.md).
pub const FID_WEIGHTS_SHA256: &str =
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2";
/// Size in bytes of [`FID_WEIGHTS_FILE_NAME`].
pub const FID_WEIGHTS_SIZE_BYTES: u64 = 95_628_359;
/// Dimension of the pool3 features.
pub const FEATURE_DIM: usize = 2048;
/// Side of the square input the network sees after resizing.
pub const INPUT_SIZE: usize = 299;
/// Most images the channels-last CPU path runs through the network at once.
const NHWC_GROUP: usize = 16;
/// BatchNorm epsilon of the TensorFlow graph.
pub const BATCH_NORM_EPS: f64 = 1e-3;

/// Input handling of [`InceptionV3`] (pytorch-fid's wrapper flags).
#[derive(Debug, Clone, PartialEq)]
pub struct InceptionConfig {
    /// Resize inputs to 299x299 (bilinear, `align_corners = False`). Default true.
    pub resize_input: bool,
    /// Scale inputs from [0, 1] to [-1, 1]. Default true.
    pub normalize_input: bool,
}

impl Default for InceptionConfig {
    fn default() -> Self {
        Self {
            resize_input: true,
            normalize_input: true,
        }
    }
}

/// Conv2d (no bias) + BatchNorm2d (eps 1e-3) + ReLU, with the BatchNorm
/// folded into the convolution. (N, C_in, H, W) -> (N, C_out, H', W').
#[derive(Debug, Clone)]
struct BasicConv2d {
    weight: Tensor,
    /// (C_out): the folded BatchNorm shift.
    bias: Tensor,
    stride: usize,
    padding: (usize, usize),
}

fn basic_conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    stride: usize,
    padding: (usize, usize),
    vb: VarBuilder,
) -> Result<BasicConv2d> {
    let weight = vb
        .pp("conv")
        .get((out_channels, in_channels, kernel.0, kernel.1), "weight")?;
    let bn = vb.pp("bn");
    let gamma = bn.get(out_channels, "weight")?;
    let beta = bn.get(out_channels, "bias")?;
    let mean = bn.get(out_channels, "running_mean")?;
    let var = bn.get(out_channels, "running_var")?;
    let dtype = weight.dtype();
    let scale = gamma
        .to_dtype(DType::F64)?
        .div(&(var.to_dtype(DType::F64)? + BATCH_NORM_EPS)?.sqrt()?)?;
    let folded_weight = weight
        .to_dtype(DType::F64)?
        .broadcast_mul(&scale.reshape((out_channels, 1, 1, 1))?)?
        .to_dtype(dtype)?;
    let bias =
        (beta.to_dtype(DType::F64)? - mean.to_dtype(DType::F64)?.mul(&scale)?)?.to_dtype(dtype)?;
    Ok(BasicConv2d {
        weight: folded_weight,
        bias,
        stride,
        padding,
    })
}

impl Module for BasicConv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // wae-kernels' im2col + GEMM convolution (bias added inside, asymmetric padding
        // without a padded copy) is 1.3-2.3x faster than candle's on the CPU; on other
        // devices it calls candle's conv2d.
        let (ph, pw) = self.padding;
        let padding = wae_kernels::Padding2d {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        };
        wae_kernels::conv2d_padded(x, &self.weight, Some(&self.bias), self.stride, padding)
            .map_err(candle_core::Error::wrap)?
            .relu()
    }
}

fn conv(
    vb: &VarBuilder,
    name: &str,
    c_in: usize,
    c_out: usize,
    kernel: (usize, usize),
    padding: (usize, usize),
) -> Result<BasicConv2d> {
    basic_conv2d(c_in, c_out, kernel, 1, padding, vb.pp(name))
}

/// pytorch-fid's `FIDInceptionA` (Mixed_5b/c/d): (N, C, 35, 35) -> (N, 224 + pool_features, 35, 35).
#[derive(Debug, Clone)]
struct InceptionA {
    branch1x1: BasicConv2d,
    branch5x5_1: BasicConv2d,
    branch5x5_2: BasicConv2d,
    branch3x3dbl_1: BasicConv2d,
    branch3x3dbl_2: BasicConv2d,
    branch3x3dbl_3: BasicConv2d,
    branch_pool: BasicConv2d,
}

impl InceptionA {
    fn new(c_in: usize, pool_features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            branch1x1: conv(&vb, "branch1x1", c_in, 64, (1, 1), (0, 0))?,
            branch5x5_1: conv(&vb, "branch5x5_1", c_in, 48, (1, 1), (0, 0))?,
            branch5x5_2: conv(&vb, "branch5x5_2", 48, 64, (5, 5), (2, 2))?,
            branch3x3dbl_1: conv(&vb, "branch3x3dbl_1", c_in, 64, (1, 1), (0, 0))?,
            branch3x3dbl_2: conv(&vb, "branch3x3dbl_2", 64, 96, (3, 3), (1, 1))?,
            branch3x3dbl_3: conv(&vb, "branch3x3dbl_3", 96, 96, (3, 3), (1, 1))?,
            branch_pool: conv(&vb, "branch_pool", c_in, pool_features, (1, 1), (0, 0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b1 = self.branch1x1.forward(x)?;
        let b5 = self.branch5x5_2.forward(&self.branch5x5_1.forward(x)?)?;
        let b3 = self.branch3x3dbl_3.forward(
            &self
                .branch3x3dbl_2
                .forward(&self.branch3x3dbl_1.forward(x)?)?,
        )?;
        let bp = self
            .branch_pool
            .forward(&ops::avg_pool_3x3_same_exclude_pad(x)?)?;
        Ok(Tensor::cat(&[&b1, &b5, &b3, &bp], 1)?)
    }
}

/// torchvision's `InceptionB` (Mixed_6a): (N, 288, 35, 35) -> (N, 768, 17, 17).
#[derive(Debug, Clone)]
struct InceptionB {
    branch3x3: BasicConv2d,
    branch3x3dbl_1: BasicConv2d,
    branch3x3dbl_2: BasicConv2d,
    branch3x3dbl_3: BasicConv2d,
}

impl InceptionB {
    fn new(c_in: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            branch3x3: basic_conv2d(c_in, 384, (3, 3), 2, (0, 0), vb.pp("branch3x3"))?,
            branch3x3dbl_1: conv(&vb, "branch3x3dbl_1", c_in, 64, (1, 1), (0, 0))?,
            branch3x3dbl_2: conv(&vb, "branch3x3dbl_2", 64, 96, (3, 3), (1, 1))?,
            branch3x3dbl_3: basic_conv2d(96, 96, (3, 3), 2, (0, 0), vb.pp("branch3x3dbl_3"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b3 = self.branch3x3.forward(x)?;
        let bd = self.branch3x3dbl_3.forward(
            &self
                .branch3x3dbl_2
                .forward(&self.branch3x3dbl_1.forward(x)?)?,
        )?;
        let bp = x.max_pool2d_with_stride((3, 3), (2, 2))?;
        Ok(Tensor::cat(&[&b3, &bd, &bp], 1)?)
    }
}

/// pytorch-fid's `FIDInceptionC` (Mixed_6b..e): (N, 768, 17, 17) -> (N, 768, 17, 17).
#[derive(Debug, Clone)]
struct InceptionC {
    branch1x1: BasicConv2d,
    branch7x7: [BasicConv2d; 3],
    branch7x7dbl: [BasicConv2d; 5],
    branch_pool: BasicConv2d,
}

impl InceptionC {
    fn new(c_in: usize, c7: usize, vb: VarBuilder) -> Result<Self> {
        let (row, col) = ((1, 7), (7, 1));
        let (pad_row, pad_col) = ((0, 3), (3, 0));
        Ok(Self {
            branch1x1: conv(&vb, "branch1x1", c_in, 192, (1, 1), (0, 0))?,
            branch7x7: [
                conv(&vb, "branch7x7_1", c_in, c7, (1, 1), (0, 0))?,
                conv(&vb, "branch7x7_2", c7, c7, row, pad_row)?,
                conv(&vb, "branch7x7_3", c7, 192, col, pad_col)?,
            ],
            branch7x7dbl: [
                conv(&vb, "branch7x7dbl_1", c_in, c7, (1, 1), (0, 0))?,
                conv(&vb, "branch7x7dbl_2", c7, c7, col, pad_col)?,
                conv(&vb, "branch7x7dbl_3", c7, c7, row, pad_row)?,
                conv(&vb, "branch7x7dbl_4", c7, c7, col, pad_col)?,
                conv(&vb, "branch7x7dbl_5", c7, 192, row, pad_row)?,
            ],
            branch_pool: conv(&vb, "branch_pool", c_in, 192, (1, 1), (0, 0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b1 = self.branch1x1.forward(x)?;
        let mut b7 = x.clone();
        for layer in &self.branch7x7 {
            b7 = layer.forward(&b7)?;
        }
        let mut bd = x.clone();
        for layer in &self.branch7x7dbl {
            bd = layer.forward(&bd)?;
        }
        let bp = self
            .branch_pool
            .forward(&ops::avg_pool_3x3_same_exclude_pad(x)?)?;
        Ok(Tensor::cat(&[&b1, &b7, &bd, &bp], 1)?)
    }
}

/// torchvision's `InceptionD` (Mixed_7a): (N, 768, 17, 17) -> (N, 1280, 8, 8).
#[derive(Debug, Clone)]
struct InceptionD {
    branch3x3: [BasicConv2d; 2],
    branch7x7x3: [BasicConv2d; 4],
}

impl InceptionD {
    fn new(c_in: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            branch3x3: [
                conv(&vb, "branch3x3_1", c_in, 192, (1, 1), (0, 0))?,
                basic_conv2d(192, 320, (3, 3), 2, (0, 0), vb.pp("branch3x3_2"))?,
            ],
            branch7x7x3: [
                conv(&vb, "branch7x7x3_1", c_in, 192, (1, 1), (0, 0))?,
                conv(&vb, "branch7x7x3_2", 192, 192, (1, 7), (0, 3))?,
                conv(&vb, "branch7x7x3_3", 192, 192, (7, 1), (3, 0))?,
                basic_conv2d(192, 192, (3, 3), 2, (0, 0), vb.pp("branch7x7x3_4"))?,
            ],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut b3 = x.clone();
        for layer in &self.branch3x3 {
            b3 = layer.forward(&b3)?;
        }
        let mut b7 = x.clone();
        for layer in &self.branch7x7x3 {
            b7 = layer.forward(&b7)?;
        }
        let bp = x.max_pool2d_with_stride((3, 3), (2, 2))?;
        Ok(Tensor::cat(&[&b3, &b7, &bp], 1)?)
    }
}

/// Pooling in the pool branch of an E block.
#[derive(Debug, Clone, Copy)]
enum EPool {
    /// `FIDInceptionE_1`: average, `count_include_pad = False`.
    Average,
    /// `FIDInceptionE_2`: max (an artefact of the TF graph that FID keeps).
    Max,
}

/// pytorch-fid's `FIDInceptionE_1` / `FIDInceptionE_2` (Mixed_7b/c): (N, C, 8, 8) -> (N, 2048, 8, 8).
#[derive(Debug, Clone)]
struct InceptionE {
    branch1x1: BasicConv2d,
    branch3x3_1: BasicConv2d,
    branch3x3_2a: BasicConv2d,
    branch3x3_2b: BasicConv2d,
    branch3x3dbl_1: BasicConv2d,
    branch3x3dbl_2: BasicConv2d,
    branch3x3dbl_3a: BasicConv2d,
    branch3x3dbl_3b: BasicConv2d,
    branch_pool: BasicConv2d,
    pool: EPool,
}

impl InceptionE {
    fn new(c_in: usize, pool: EPool, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            branch1x1: conv(&vb, "branch1x1", c_in, 320, (1, 1), (0, 0))?,
            branch3x3_1: conv(&vb, "branch3x3_1", c_in, 384, (1, 1), (0, 0))?,
            branch3x3_2a: conv(&vb, "branch3x3_2a", 384, 384, (1, 3), (0, 1))?,
            branch3x3_2b: conv(&vb, "branch3x3_2b", 384, 384, (3, 1), (1, 0))?,
            branch3x3dbl_1: conv(&vb, "branch3x3dbl_1", c_in, 448, (1, 1), (0, 0))?,
            branch3x3dbl_2: conv(&vb, "branch3x3dbl_2", 448, 384, (3, 3), (1, 1))?,
            branch3x3dbl_3a: conv(&vb, "branch3x3dbl_3a", 384, 384, (1, 3), (0, 1))?,
            branch3x3dbl_3b: conv(&vb, "branch3x3dbl_3b", 384, 384, (3, 1), (1, 0))?,
            branch_pool: conv(&vb, "branch_pool", c_in, 192, (1, 1), (0, 0))?,
            pool,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b1 = self.branch1x1.forward(x)?;
        let b3 = self.branch3x3_1.forward(x)?;
        let b3 = Tensor::cat(
            &[
                &self.branch3x3_2a.forward(&b3)?,
                &self.branch3x3_2b.forward(&b3)?,
            ],
            1,
        )?;
        let bd = self
            .branch3x3dbl_2
            .forward(&self.branch3x3dbl_1.forward(x)?)?;
        let bd = Tensor::cat(
            &[
                &self.branch3x3dbl_3a.forward(&bd)?,
                &self.branch3x3dbl_3b.forward(&bd)?,
            ],
            1,
        )?;
        let pooled = match self.pool {
            EPool::Average => ops::avg_pool_3x3_same_exclude_pad(x)?,
            EPool::Max => ops::max_pool_3x3_same(x)?,
        };
        let bp = self.branch_pool.forward(&pooled)?;
        Ok(Tensor::cat(&[&b1, &b3, &bd, &bp], 1)?)
    }
}

/// The FID Inception-v3 up to pool3: images (N, 3 or 1, H, W) in [0, 1] ->
/// features (N, 2048).
#[derive(Debug, Clone)]
pub struct InceptionV3 {
    config: InceptionConfig,
    stem: [BasicConv2d; 3],
    stem2: [BasicConv2d; 2],
    mixed_5: [InceptionA; 3],
    mixed_6a: InceptionB,
    mixed_6: [InceptionC; 4],
    mixed_7a: InceptionD,
    mixed_7b: InceptionE,
    mixed_7c: InceptionE,
    /// The same layers in channels-last form for the CPU ([`nhwc`]), built on first use.
    nhwc: std::sync::OnceLock<nhwc::InceptionNhwc>,
}

impl InceptionV3 {
    /// Builds the network from weights named like pytorch-fid's state_dict
    /// (`Conv2d_1a_3x3.conv.weight`, `Mixed_7c.branch_pool.bn.running_mean`, ...;
    /// the unused `fc.*` may be absent). The dtype of `vb` is the compute dtype.
    pub fn new(config: &InceptionConfig, vb: VarBuilder) -> Result<Self> {
        let c = |name: &str, c_in, c_out, k, stride, pad| {
            basic_conv2d(c_in, c_out, k, stride, pad, vb.pp(name))
        };
        Ok(Self {
            config: config.clone(),
            stem: [
                c("Conv2d_1a_3x3", 3, 32, (3, 3), 2, (0, 0))?,
                c("Conv2d_2a_3x3", 32, 32, (3, 3), 1, (0, 0))?,
                c("Conv2d_2b_3x3", 32, 64, (3, 3), 1, (1, 1))?,
            ],
            stem2: [
                c("Conv2d_3b_1x1", 64, 80, (1, 1), 1, (0, 0))?,
                c("Conv2d_4a_3x3", 80, 192, (3, 3), 1, (0, 0))?,
            ],
            mixed_5: [
                InceptionA::new(192, 32, vb.pp("Mixed_5b"))?,
                InceptionA::new(256, 64, vb.pp("Mixed_5c"))?,
                InceptionA::new(288, 64, vb.pp("Mixed_5d"))?,
            ],
            mixed_6a: InceptionB::new(288, vb.pp("Mixed_6a"))?,
            mixed_6: [
                InceptionC::new(768, 128, vb.pp("Mixed_6b"))?,
                InceptionC::new(768, 160, vb.pp("Mixed_6c"))?,
                InceptionC::new(768, 160, vb.pp("Mixed_6d"))?,
                InceptionC::new(768, 192, vb.pp("Mixed_6e"))?,
            ],
            mixed_7a: InceptionD::new(768, vb.pp("Mixed_7a"))?,
            mixed_7b: InceptionE::new(1280, EPool::Average, vb.pp("Mixed_7b"))?,
            mixed_7c: InceptionE::new(2048, EPool::Max, vb.pp("Mixed_7c"))?,
            nhwc: std::sync::OnceLock::new(),
        })
    }

    /// Loads the FID weights from `weights`: a safetensors file made by
    /// [`convert_pth`] (`cargo xtask download inception`), or the original
    /// legacy-format `pt_inception-2015-12-05-6726825d.pth` itself. Computes in f32.
    ///
    /// A missing file is [`Error::MissingWeights`], whose message says how to
    /// get the weights.
    pub fn load(weights: &Path, device: &Device) -> Result<Self> {
        let tensors = load_weight_tensors(weights, device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        Self::new(&InceptionConfig::default(), vb)
    }

    /// The input handling this network was built with.
    pub fn config(&self) -> &InceptionConfig {
        &self.config
    }

    /// Pool3 features of `images`: (N, 3, H, W) or (N, 1, H, W) (grey,
    /// repeated to 3 channels), pixels in [0, 1], any H, W (resized to
    /// 299x299) -> (N, 2048) in the network's dtype, on the images' device.
    ///
    /// On the CPU in f32 the layers run channels-last on `wae_kernels::nhwc`,
    /// 16 images at a time; elsewhere on candle ops, whose activations grow with N
    /// (about 60 MB per image in f32). Either way the resized inputs are held at
    /// once: use [`InceptionV3::features_batched`] for large sets.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = images.dims4()?;
        if n == 0 {
            return Err(Error::InvalidInput(
                "InceptionV3::features: no images".into(),
            ));
        }
        if c != 1 && c != 3 {
            return Err(Error::InvalidInput(format!(
                "InceptionV3::features: images must have 1 or 3 channels, got {c}"
            )));
        }
        let dtype = self.stem[0].weight.dtype();
        let mut x = images.to_dtype(dtype)?;
        if self.config.resize_input {
            x = ops::resize_bilinear(&x, INPUT_SIZE, INPUT_SIZE)?;
        } else if h < 75 || w < 75 {
            return Err(Error::InvalidInput(format!(
                "InceptionV3::features: without resizing, images must be at least 75x75, got {h}x{w}"
            )));
        }
        if c == 1 {
            x = x.repeat((1, 3, 1, 1))?;
        }
        if self.config.normalize_input {
            x = x.affine(2.0, -1.0)?;
        }
        if x.device().is_cpu() && x.dtype() == DType::F32 && !wae_kernels::force_fallback() {
            return self.layers_nhwc(&x);
        }
        self.layers_candle(x)
    }

    /// The layers after input handling, on the CPU in f32: channels-last kernels
    /// (`nhwc.rs`; docs/performance.md compares the two).
    ///
    /// Images go through in groups of at most [`NHWC_GROUP`]: each convolution is one
    /// product over the group, which keeps its rows in the thousands, while the
    /// activations held at once stay those of the group (about 25 MB per image in the
    /// stem) rather than of the whole batch.
    fn layers_nhwc(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let data = x.flatten_all()?.to_vec1::<f32>()?;
        let per_image = c * h * w;
        let net = match self.nhwc.get() {
            Some(net) => net,
            None => {
                let built = nhwc::InceptionNhwc::new(self)?;
                self.nhwc.get_or_init(|| built)
            }
        };
        let mut features = Vec::with_capacity(n * FEATURE_DIM);
        for group in data.chunks(NHWC_GROUP * per_image) {
            let m = group.len() / per_image;
            let input = wae_kernels::nhwc::FeatureMap::from_nchw(group, m, c, h, w)?;
            features.extend(net.features(input)?);
        }
        Ok(Tensor::from_vec(features, (n, FEATURE_DIM), x.device())?)
    }

    /// The layers after input handling with candle ops (and wae-kernels' NCHW
    /// convolutions): every device and dtype.
    fn layers_candle(&self, x: Tensor) -> Result<Tensor> {
        let mut x = x;
        for layer in &self.stem {
            x = layer.forward(&x)?;
        }
        x = x.max_pool2d_with_stride((3, 3), (2, 2))?;
        for layer in &self.stem2 {
            x = layer.forward(&x)?;
        }
        x = x.max_pool2d_with_stride((3, 3), (2, 2))?;
        for block in &self.mixed_5 {
            x = block.forward(&x)?;
        }
        x = self.mixed_6a.forward(&x)?;
        for block in &self.mixed_6 {
            x = block.forward(&x)?;
        }
        x = self.mixed_7a.forward(&x)?;
        x = self.mixed_7b.forward(&x)?;
        x = self.mixed_7c.forward(&x)?;
        Ok(x.flatten_from(2)?.mean(D::Minus1)?)
    }

    /// [`InceptionV3::features`] over `images` in batches of `batch_size`
    /// (images may live on the host; each batch is moved to `device`), returned
    /// on the host as f32 (N, 2048).
    pub fn features_batched(
        &self,
        images: &Tensor,
        batch_size: usize,
        device: &Device,
    ) -> Result<Tensor> {
        crate::map_batches(images, batch_size, device, |batch| {
            Ok(self.features(batch)?.to_dtype(DType::F32)?)
        })
    }
}

impl Module for InceptionV3 {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.features(xs).map_err(candle_core::Error::wrap)
    }
}

/// Reads the weight tensors of a safetensors or legacy `.pth` file onto `device`.
fn load_weight_tensors(
    path: &Path,
    device: &Device,
) -> Result<std::collections::HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::MissingWeights {
            path: path.to_path_buf(),
        });
    }
    let mut head = [0u8; 2];
    {
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        file.read_exact(&mut head).map_err(|e| Error::io(path, e))?;
    }
    if head[0] == 0x80 {
        // Pickle PROTO opcode: a legacy (non-zip) torch file.
        let tensors = read_pth(path)?;
        tensors
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_device(device)?)))
            .collect()
    } else {
        Ok(candle_core::safetensors::load(path, device)?)
    }
}

/// Names and shapes of every weight the network reads, in the order it reads
/// them (pytorch-fid's state_dict keys minus `fc.*` and `*.num_batches_tracked`).
pub fn parameter_shapes() -> Result<Vec<(String, Vec<usize>)>> {
    let recorder = ShapeRecorder::default();
    {
        let backend: Box<dyn SimpleBackend + '_> = Box::new(&recorder);
        let vb = VarBuilder::from_backend(backend, DType::F32, Device::Cpu);
        InceptionV3::new(&InceptionConfig::default(), vb)?;
    }
    let shapes = recorder
        .shapes
        .into_inner()
        .map_err(|_| Error::InvalidInput("parameter recorder poisoned".into()))?;
    Ok(shapes)
}

/// A VarBuilder backend that hands out zeros and records what was asked for.
#[derive(Default)]
struct ShapeRecorder {
    shapes: Mutex<Vec<(String, Vec<usize>)>>,
}

impl SimpleBackend for &ShapeRecorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut shapes) = self.shapes.lock() {
            shapes.push((name.to_string(), s.dims().to_vec()));
        }
        // Ones, so that the BatchNorm folding (division by sqrt(var + eps)) stays finite.
        Tensor::ones(s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("shape recorder: {name} requested without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}
