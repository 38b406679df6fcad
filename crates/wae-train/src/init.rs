//! A `VarMap` whose new variables are initialised from a seeded host RNG.
//!
//! candle's CPU device cannot be seeded, so `VarBuilder::from_varmap` gives a
//! different network on every run. [`SeededVarMap`] is a drop-in
//! `VarBuilder` backend: it honours every `candle_nn::Init` (constant, normal,
//! uniform, Kaiming) but draws the numbers from
//! `derived_rng(seed, Stream::Init, fnv1a(name))`, so the same seed gives the same
//! weights on any device, whatever order the layers are built in.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::rng::{Stream, derived_rng, fnv1a};

/// A [`VarMap`] plus the seed used to initialise variables created through it.
#[derive(Clone)]
pub struct SeededVarMap {
    map: VarMap,
    seed: u64,
}

impl SeededVarMap {
    /// An empty map whose variables will be initialised from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            map: VarMap::new(),
            seed,
        }
    }

    /// The underlying map (holds every variable created so far).
    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    /// A `VarBuilder` that creates variables in this map.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// The trainable variables (BatchNorm running statistics left out) whose names start
    /// with one of `prefixes`, prefix by prefix, each group sorted by name: what an
    /// optimiser over those parts of the model updates.
    pub fn trainable_vars(&self, prefixes: &[&str]) -> Vec<(String, Var)> {
        let mut vars = Vec::new();
        for p in prefixes {
            vars.extend(wae_nets::trainable_vars(&self.map, p));
        }
        vars
    }

    /// All variables with their names, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = match self.map.data().lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn init_values(init: Init, shape: &Shape, rng: &mut impl Rng) -> Vec<f64> {
    let n = shape.elem_count();
    let normal = |rng: &mut dyn rand::RngCore, mean: f64, std: f64| -> f64 {
        let z: f64 = StandardNormal.sample(rng);
        mean + std * z
    };
    match init {
        Init::Const(c) => vec![c; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| normal(rng, mean, stdev)).collect(),
        Init::Uniform { lo, up } => (0..n).map(|_| rng.random_range(lo..=up)).collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan.for_shape(shape).max(1);
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
                }
                NormalOrUniform::Normal => (0..n).map(|_| normal(rng, 0.0, std)).collect(),
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = match self.map.data().lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(var) = data.get(name) {
            let t = var.as_tensor();
            if t.shape() != &s {
                candle_core::bail!(
                    "shape mismatch for {name}, got {:?}, expected {:?}",
                    t.shape(),
                    s
                );
            }
            return Ok(t.clone());
        }
        let mut rng = derived_rng(self.seed, Stream::Init, fnv1a(name));
        let values = init_values(h, &s, &mut rng);
        let t = Tensor::from_vec(values, s, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("`get_unchecked` is not supported by SeededVarMap (asked for {name})")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        match self.map.data().lock() {
            Ok(d) => d.contains_key(name),
            Err(poisoned) => poisoned.into_inner().contains_key(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Module;

    fn build(seed: u64, order_swapped: bool) -> (Vec<f32>, Vec<f32>) {
        let m = SeededVarMap::new(seed);
        let vb = m.var_builder(DType::F32, &Device::Cpu);
        let (a, b) = if order_swapped {
            let b = candle_nn::linear(3, 2, vb.pp("b")).unwrap();
            let a = candle_nn::linear(4, 3, vb.pp("a")).unwrap();
            (a, b)
        } else {
            let a = candle_nn::linear(4, 3, vb.pp("a")).unwrap();
            let b = candle_nn::linear(3, 2, vb.pp("b")).unwrap();
            (a, b)
        };
        let x = Tensor::ones((1, 4), DType::F32, &Device::Cpu).unwrap();
        let y = b.forward(&a.forward(&x).unwrap()).unwrap();
        let w = a.weight().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (w, y.flatten_all().unwrap().to_vec1::<f32>().unwrap())
    }

    #[test]
    fn same_seed_same_weights_regardless_of_order() {
        let (w1, y1) = build(5, false);
        let (w2, y2) = build(5, true);
        let (w3, _) = build(6, false);
        assert_eq!(w1, w2);
        assert_eq!(y1, y2);
        assert_ne!(w1, w3);
        // Kaiming-uniform bound for fan_in 4 with ReLU gain: sqrt(3) * sqrt(2) / 2
        let bound = (3f32).sqrt() * (2f32).sqrt() / 2.0;
        assert!(w1.iter().all(|v| v.abs() <= bound + 1e-6));
    }

    #[test]
    fn normal_init_has_requested_std() {
        let m = SeededVarMap::new(1);
        let vb = m.var_builder(DType::F32, &Device::Cpu);
        let t = vb
            .get_with_hints(
                (100, 100),
                "w",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.01,
                },
            )
            .unwrap();
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 5e-4, "{mean}");
        assert!((var.sqrt() - 0.01).abs() < 5e-4, "{}", var.sqrt());
        assert_eq!(m.named_vars().len(), 1);
    }
}
