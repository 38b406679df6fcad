//! The FID Inception-v3 on the CPU in channels-last layout, on `wae_kernels::nhwc`:
//! each convolution is one matrix product over the whole batch with bias + ReLU fused,
//! the branches of a block write into channel ranges of the block's output (no
//! concatenation copies), and the pools are single passes. Same network, same weights
//! (BatchNorm folded) as the candle path in `mod.rs`; results agree with it up to float
//! round-off (the products sum in another order).

use wae_kernels::Padding2d;
use wae_kernels::nhwc::{
    Conv2dNhwc, FeatureMap, PoolWindow, avg_pool_exclude_pad, global_mean, max_pool, max_pool_into,
};

use super::{BasicConv2d, EPool, InceptionA, InceptionB, InceptionC, InceptionD, InceptionE};
use super::{InceptionV3, Result};

/// 3x3, stride 2, no padding: the stem's and the reduction blocks' max pool.
const POOL_DOWN: PoolWindow = PoolWindow {
    k: 3,
    stride: 2,
    pad: 0,
};
/// 3x3, stride 1, padding 1: the pool branch of the A, C and E blocks.
const POOL_SAME: PoolWindow = PoolWindow {
    k: 3,
    stride: 1,
    pad: 1,
};

fn conv(c: &BasicConv2d) -> Result<Conv2dNhwc> {
    let (ph, pw) = c.padding;
    Ok(Conv2dNhwc::from_tensors(
        &c.weight,
        Some(&c.bias),
        (c.stride, c.stride),
        Padding2d {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        },
        true,
    )?)
}

fn convs<const N: usize>(cs: &[BasicConv2d; N]) -> Result<Vec<Conv2dNhwc>> {
    cs.iter().map(conv).collect()
}

/// Runs `layers` in order, the last one writing into channels `c0..` of `out`.
fn chain_into(
    layers: &[Conv2dNhwc],
    x: &FeatureMap,
    out: &mut FeatureMap,
    c0: usize,
) -> Result<()> {
    let (last, first) = layers.split_last().expect("a chain has layers");
    let mut t: Option<FeatureMap> = None;
    for layer in first {
        t = Some(layer.forward(t.as_ref().unwrap_or(x))?);
    }
    last.forward_into(t.as_ref().unwrap_or(x), out, c0)?;
    Ok(())
}

/// A block's output: `(n, h, w, c)` zeros that its branches fill.
fn block_out(x: &FeatureMap, (h, w): (usize, usize), c: usize) -> FeatureMap {
    FeatureMap::zeros(x.dims().0, h, w, c)
}

fn same_size(x: &FeatureMap) -> (usize, usize) {
    let (_, h, w, _) = x.dims();
    (h, w)
}

#[derive(Debug, Clone)]
struct BlockA {
    b1: Conv2dNhwc,
    b5: Vec<Conv2dNhwc>,
    b3: Vec<Conv2dNhwc>,
    pool: Conv2dNhwc,
}

impl BlockA {
    fn new(b: &InceptionA) -> Result<Self> {
        Ok(Self {
            b1: conv(&b.branch1x1)?,
            b5: vec![conv(&b.branch5x5_1)?, conv(&b.branch5x5_2)?],
            b3: vec![
                conv(&b.branch3x3dbl_1)?,
                conv(&b.branch3x3dbl_2)?,
                conv(&b.branch3x3dbl_3)?,
            ],
            pool: conv(&b.branch_pool)?,
        })
    }

    fn forward(&self, x: &FeatureMap) -> Result<FeatureMap> {
        let c = 64 + 64 + 96 + self.pool.out_channels();
        let mut out = block_out(x, same_size(x), c);
        self.b1.forward_into(x, &mut out, 0)?;
        chain_into(&self.b5, x, &mut out, 64)?;
        chain_into(&self.b3, x, &mut out, 128)?;
        let pooled = avg_pool_exclude_pad(x, POOL_SAME)?;
        self.pool.forward_into(&pooled, &mut out, 224)?;
        Ok(out)
    }
}

#[derive(Debug, Clone)]
struct BlockB {
    b3: Conv2dNhwc,
    bd: Vec<Conv2dNhwc>,
}

impl BlockB {
    fn new(b: &InceptionB) -> Result<Self> {
        Ok(Self {
            b3: conv(&b.branch3x3)?,
            bd: vec![
                conv(&b.branch3x3dbl_1)?,
                conv(&b.branch3x3dbl_2)?,
                conv(&b.branch3x3dbl_3)?,
            ],
        })
    }

    fn forward(&self, x: &FeatureMap) -> Result<FeatureMap> {
        let (_, h, w, c_in) = x.dims();
        let size = self.b3.out_size(h, w)?;
        let mut out = block_out(x, size, 384 + 96 + c_in);
        self.b3.forward_into(x, &mut out, 0)?;
        chain_into(&self.bd, x, &mut out, 384)?;
        max_pool_into(x, POOL_DOWN, &mut out, 480)?;
        Ok(out)
    }
}

#[derive(Debug, Clone)]
struct BlockC {
    b1: Conv2dNhwc,
    b7: Vec<Conv2dNhwc>,
    bd: Vec<Conv2dNhwc>,
    pool: Conv2dNhwc,
}

impl BlockC {
    fn new(b: &InceptionC) -> Result<Self> {
        Ok(Self {
            b1: conv(&b.branch1x1)?,
            b7: convs(&b.branch7x7)?,
            bd: convs(&b.branch7x7dbl)?,
            pool: conv(&b.branch_pool)?,
        })
    }

    fn forward(&self, x: &FeatureMap) -> Result<FeatureMap> {
        let mut out = block_out(x, same_size(x), 768);
        self.b1.forward_into(x, &mut out, 0)?;
        chain_into(&self.b7, x, &mut out, 192)?;
        chain_into(&self.bd, x, &mut out, 384)?;
        let pooled = avg_pool_exclude_pad(x, POOL_SAME)?;
        self.pool.forward_into(&pooled, &mut out, 576)?;
        Ok(out)
    }
}

#[derive(Debug, Clone)]
struct BlockD {
    b3: Vec<Conv2dNhwc>,
    b7: Vec<Conv2dNhwc>,
}

impl BlockD {
    fn new(b: &InceptionD) -> Result<Self> {
        Ok(Self {
            b3: convs(&b.branch3x3)?,
            b7: convs(&b.branch7x7x3)?,
        })
    }

    fn forward(&self, x: &FeatureMap) -> Result<FeatureMap> {
        let (_, h, w, c_in) = x.dims();
        let size = self.b3[1].out_size(h, w)?;
        let mut out = block_out(x, size, 320 + 192 + c_in);
        chain_into(&self.b3, x, &mut out, 0)?;
        chain_into(&self.b7, x, &mut out, 320)?;
        max_pool_into(x, POOL_DOWN, &mut out, 512)?;
        Ok(out)
    }
}

#[derive(Debug, Clone)]
struct BlockE {
    b1: Conv2dNhwc,
    b3_1: Conv2dNhwc,
    b3_2: [Conv2dNhwc; 2],
    bd: Vec<Conv2dNhwc>,
    bd_3: [Conv2dNhwc; 2],
    pool: Conv2dNhwc,
    pool_kind: EPool,
}

impl BlockE {
    fn new(b: &InceptionE) -> Result<Self> {
        Ok(Self {
            b1: conv(&b.branch1x1)?,
            b3_1: conv(&b.branch3x3_1)?,
            b3_2: [conv(&b.branch3x3_2a)?, conv(&b.branch3x3_2b)?],
            bd: vec![conv(&b.branch3x3dbl_1)?, conv(&b.branch3x3dbl_2)?],
            bd_3: [conv(&b.branch3x3dbl_3a)?, conv(&b.branch3x3dbl_3b)?],
            pool: conv(&b.branch_pool)?,
            pool_kind: b.pool,
        })
    }

    fn forward(&self, x: &FeatureMap) -> Result<FeatureMap> {
        let mut out = block_out(x, same_size(x), 2048);
        self.b1.forward_into(x, &mut out, 0)?;
        let t = self.b3_1.forward(x)?;
        self.b3_2[0].forward_into(&t, &mut out, 320)?;
        self.b3_2[1].forward_into(&t, &mut out, 704)?;
        let t = self.bd[1].forward(&self.bd[0].forward(x)?)?;
        self.bd_3[0].forward_into(&t, &mut out, 1088)?;
        self.bd_3[1].forward_into(&t, &mut out, 1472)?;
        let pooled = match self.pool_kind {
            EPool::Average => avg_pool_exclude_pad(x, POOL_SAME)?,
            EPool::Max => max_pool(x, POOL_SAME)?,
        };
        self.pool.forward_into(&pooled, &mut out, 1856)?;
        Ok(out)
    }
}

/// [`InceptionV3`]'s layers in channels-last form (built once, on first CPU use).
#[derive(Debug, Clone)]
pub(super) struct InceptionNhwc {
    stem: Vec<Conv2dNhwc>,
    stem2: Vec<Conv2dNhwc>,
    mixed_5: Vec<BlockA>,
    mixed_6a: BlockB,
    mixed_6: Vec<BlockC>,
    mixed_7a: BlockD,
    mixed_7: [BlockE; 2],
}

impl InceptionNhwc {
    pub(super) fn new(net: &InceptionV3) -> Result<Self> {
        Ok(Self {
            stem: convs(&net.stem)?,
            stem2: convs(&net.stem2)?,
            mixed_5: net.mixed_5.iter().map(BlockA::new).collect::<Result<_>>()?,
            mixed_6a: BlockB::new(&net.mixed_6a)?,
            mixed_6: net.mixed_6.iter().map(BlockC::new).collect::<Result<_>>()?,
            mixed_7a: BlockD::new(&net.mixed_7a)?,
            mixed_7: [BlockE::new(&net.mixed_7b)?, BlockE::new(&net.mixed_7c)?],
        })
    }

    /// Pool3 features `(n, 2048)` row-major of the prepared input `x` (resized,
    /// normalised, 3 channels).
    pub(super) fn features(&self, x: FeatureMap) -> Result<Vec<f32>> {
        let mut x = x;
        for layer in &self.stem {
            x = layer.forward(&x)?;
        }
        x = max_pool(&x, POOL_DOWN)?;
        for layer in &self.stem2 {
            x = layer.forward(&x)?;
        }
        x = max_pool(&x, POOL_DOWN)?;
        for block in &self.mixed_5 {
            x = block.forward(&x)?;
        }
        x = self.mixed_6a.forward(&x)?;
        for block in &self.mixed_6 {
            x = block.forward(&x)?;
        }
        x = self.mixed_7a.forward(&x)?;
        for block in &self.mixed_7 {
            x = block.forward(&x)?;
        }
        Ok(global_mean(&x))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;

    use super::super::{InceptionConfig, InceptionV3};

    /// The channels-last layers give the candle layers' features (formula weights, two
    /// 83x79 images without resizing), and `features` takes them on the CPU in f32.
    #[test]
    fn channels_last_layers_match_the_candle_layers() -> crate::Result<()> {
        let dev = Device::Cpu;
        let tensors = crate::testing::inception_formula_weights(&dev)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let config = InceptionConfig {
            resize_input: false,
            normalize_input: true,
        };
        let net = InceptionV3::new(&config, vb)?;
        let (n, h, w) = (2, 83, 79);
        let pixels: Vec<f32> = (0..n * 3 * h * w)
            .map(|i| ((i * 7919) % 1000) as f32 / 999.0)
            .collect();
        let images = Tensor::from_vec(pixels, (n, 3, h, w), &dev)?;
        let x = images.affine(2.0, -1.0)?;
        let ours = net.layers_nhwc(&x)?.flatten_all()?.to_vec1::<f32>()?;
        let candle = net.layers_candle(x)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(ours.len(), n * 2048);
        let scale = candle.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = ours
            .iter()
            .zip(&candle)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0);
        assert!(
            worst <= 1e-4 * scale,
            "worst difference {worst:e} against a largest feature of {scale:e}"
        );
        let via_features = net.features(&images)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(via_features, ours);

        // More images than one group (`NHWC_GROUP`): each image's features are those it
        // gets alone, up to the rounding of products of other sizes.
        let many = super::super::NHWC_GROUP + 1;
        let repeated = images
            .repeat((many.div_ceil(n), 1, 1, 1))?
            .narrow(0, 0, many)?;
        let all = net.features(&repeated)?.to_vec2::<f32>()?;
        let single = net.features(&images.narrow(0, 0, 1)?)?.to_vec2::<f32>()?;
        for i in (0..many).step_by(n) {
            let worst = all[i]
                .iter()
                .zip(&single[0])
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst <= 1e-5 * scale, "image {i} of {many}: {worst:e}");
        }
        Ok(())
    }
}
