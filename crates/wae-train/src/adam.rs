//! Adam with state that can be saved and restored exactly.
//!
//! candle-nn's `AdamW` keeps its moments private, so a resumed run would restart
//! them from zero. This optimiser stores, for every parameter, the first and
//! second moment tensors under stable names, and the step count, so that a
//! checkpoint holds everything needed to continue bit-for-bit.
//!
//! The update is the one of Kingma & Ba (2015), as in PyTorch's `Adam`
//! (no weight decay):
//!
//! ```text
//! m <- beta1 * m + (1 - beta1) * g
//! v <- beta2 * v + (1 - beta2) * g^2
//! theta <- theta - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
//! ```
//!
//! On the CPU (f32, f64) the update runs in place through `wae_kernels::adam_update`,
//! which gives the same bits as the candle-op formula used elsewhere. The moments are
//! therefore owned by the optimiser: [`Adam::state_tensors`] hands out copies and
//! [`Adam::load_state`] copies what it is given.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Hyper-parameters of [`Adam`]; defaults are the WAE reference code's (beta1 = 0.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    /// Base learning rate (before any schedule factor).
    pub lr: f64,
    /// Decay rate of the first moment.
    pub beta1: f64,
    /// Decay rate of the second moment.
    pub beta2: f64,
    /// Added to the denominator for numerical stability.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Checks that every value is in its valid range.
    pub fn validate(&self, what: &str) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr > 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps.is_finite()
            && self.eps > 0.0;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidConfig(format!(
                "{what}: need lr > 0, 0 <= beta1 < 1, 0 <= beta2 < 1, eps > 0; got {self:?}"
            )))
        }
    }
}

#[derive(Debug)]
struct Slot {
    name: String,
    var: Var,
    first_moment: Tensor,
    second_moment: Tensor,
}

/// The Adam optimiser over a named set of variables.
#[derive(Debug)]
pub struct Adam {
    config: AdamConfig,
    learning_rate: f64,
    steps_taken: u64,
    slots: Vec<Slot>,
}

/// Key under which the step count is stored in [`Adam::state_tensors`].
pub const STEP_KEY: &str = "adam.step";

impl Adam {
    /// Creates the optimiser for `vars` (name, variable); non-float variables are skipped.
    /// Moments start at zero. Slots are kept sorted by name so the order is stable.
    pub fn new(vars: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        let mut slots = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            if !var.dtype().is_float() {
                continue;
            }
            let first_moment = Tensor::zeros(var.shape(), var.dtype(), var.device())?;
            let second_moment = Tensor::zeros(var.shape(), var.dtype(), var.device())?;
            slots.push(Slot {
                name,
                var,
                first_moment,
                second_moment,
            });
        }
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            learning_rate: config.lr,
            config,
            steps_taken: 0,
            slots,
        })
    }

    /// The learning rate used by the next step.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    /// Sets the learning rate used by the following steps (schedules call this).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.learning_rate = lr;
    }

    /// Number of updates applied so far (the `t` of the bias correction).
    pub fn steps_taken(&self) -> u64 {
        self.steps_taken
    }

    /// Names of the optimised variables, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    /// Global L2 norm of the gradients of the optimised variables (0 if none has a gradient).
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0f64;
        for slot in &self.slots {
            if let Some(g) = grads.get(slot.var.as_tensor()) {
                total += wae_kernels::sum_of_squares(g)?;
            }
        }
        Ok(total.sqrt())
    }

    /// Applies one Adam update to every variable that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps_taken += 1;
        let t = i32::try_from(self.steps_taken).unwrap_or(i32::MAX);
        let beta1 = self.config.beta1;
        let beta2 = self.config.beta2;
        let lr = self.learning_rate;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2 = 1.0 - beta2.powi(t);
        let fused = wae_kernels::AdamStep {
            beta1,
            beta2,
            lr,
            eps: self.config.eps,
            bias_correction1: bias1,
            bias_correction2: bias2,
        };
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let (m, v) = (&slot.first_moment, &slot.second_moment);
            if wae_kernels::adam_update(slot.var.as_tensor(), g, m, v, &fused)? {
                continue;
            }
            let m = ((&slot.first_moment * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((&slot.second_moment * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&m / bias1)?;
            let v_hat = (&v / bias2)?;
            let update = (m_hat / (v_hat.sqrt()? + self.config.eps)?)?;
            let next = (slot.var.as_tensor() - (update * lr)?)?;
            slot.var.set(&next)?;
            slot.first_moment = m;
            slot.second_moment = v;
        }
        Ok(())
    }

    /// The optimiser state as named tensors: `m.<name>`, `v.<name>` and the step count
    /// under [`STEP_KEY`] (an i64 tensor of shape (1,)).
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::with_capacity(2 * self.slots.len() + 1);
        for slot in &self.slots {
            // Copies: the live moments are updated in place by the next step.
            out.insert(format!("m.{}", slot.name), slot.first_moment.copy()?);
            out.insert(format!("v.{}", slot.name), slot.second_moment.copy()?);
        }
        let device = self
            .slots
            .first()
            .map(|s| s.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let steps = i64::try_from(self.steps_taken).unwrap_or(i64::MAX);
        out.insert(STEP_KEY.to_string(), Tensor::new(&[steps], &device)?);
        Ok(out)
    }

    /// Restores the state written by [`Adam::state_tensors`], prefixed by `prefix`
    /// (e.g. `"ae."`). Every variable must have both moments with its exact shape;
    /// `file` only names the source in errors.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        file: &Path,
    ) -> Result<()> {
        let mismatch = |reason: String| Error::CheckpointMismatch {
            path: file.to_path_buf(),
            reason,
        };
        let step_key = format!("{prefix}{STEP_KEY}");
        let step = tensors
            .get(&step_key)
            .ok_or_else(|| mismatch(format!("missing tensor `{step_key}`")))?
            .flatten_all()?
            .to_dtype(DType::I64)?
            .to_vec1::<i64>()?;
        let steps_taken = match step.as_slice() {
            [s] if *s >= 0 => *s as u64,
            other => {
                return Err(mismatch(format!(
                    "bad step count {other:?} in `{step_key}`"
                )));
            }
        };
        let expected = 2 * self.slots.len() + 1;
        let present = tensors.keys().filter(|k| k.starts_with(prefix)).count();
        if present != expected {
            return Err(mismatch(format!(
                "expected {expected} optimiser tensors under `{prefix}`, found {present} \
                 (the checkpoint was made for a different architecture)"
            )));
        }
        let mut restored = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let mut pair = Vec::with_capacity(2);
            for moment in ["m", "v"] {
                let key = format!("{prefix}{moment}.{}", slot.name);
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| mismatch(format!("missing tensor `{key}`")))?;
                if t.dims() != slot.var.dims() {
                    return Err(mismatch(format!(
                        "tensor `{key}` has shape {:?}, the model needs {:?}",
                        t.dims(),
                        slot.var.dims()
                    )));
                }
                // A copy of our own: the moments are updated in place.
                let own = t.to_dtype(slot.var.dtype())?.to_device(slot.var.device())?;
                pair.push(own.copy()?);
            }
            restored.push(pair);
        }
        for (slot, mut pair) in self.slots.iter_mut().zip(restored) {
            slot.second_moment = pair.pop().unwrap_or_else(|| slot.second_moment.clone());
            slot.first_moment = pair.pop().unwrap_or_else(|| slot.first_moment.clone());
        }
        self.steps_taken = steps_taken;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn quadratic_grads(var: &Var, c: &Tensor) -> GradStore {
        // loss = sum(c * theta) so d loss / d theta = c
        let loss = (var.as_tensor() * c).unwrap().sum_all().unwrap();
        loss.backward().unwrap()
    }

    /// Two steps computed by hand (f64) for theta = [1, -2], constant gradient g = [0.5, -1]:
    /// step 1: m = 0.5 g, v = 0.001 g^2, m_hat = g, v_hat = g^2 -> theta -= lr * g / (|g| + eps)
    /// step 2: m = 0.75 g, v = 0.001999 g^2, m_hat = 0.75 g / 0.75 = g, v_hat = g^2 -> same again.
    /// A third step with g2 = [2, 0] checks that the moments really carry history.
    #[test]
    fn matches_hand_computed_steps() -> Result<()> {
        let dev = Device::Cpu;
        let theta = Var::from_slice(&[1f64, -2.0], 2, &dev)?;
        let cfg = AdamConfig {
            lr: 0.1,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(vec![("theta".into(), theta.clone())], cfg)?;
        let g = Tensor::new(&[0.5f64, -1.0], &dev)?;
        let eps = 1e-8;
        adam.step(&quadratic_grads(&theta, &g))?;
        let expect1 = [
            1.0 - 0.1 * 0.5 / (0.5 + eps),
            -2.0 + 0.1 * 1.0 / (1.0 + eps),
        ];
        let got = theta.as_tensor().to_vec1::<f64>()?;
        for (a, b) in got.iter().zip(expect1) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        adam.step(&quadratic_grads(&theta, &g))?;
        let expect2 = [
            expect1[0] - 0.1 * 0.5 / (0.5 + eps),
            expect1[1] + 0.1 * 1.0 / (1.0 + eps),
        ];
        let got = theta.as_tensor().to_vec1::<f64>()?;
        for (a, b) in got.iter().zip(expect2) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // Step 3 with a new gradient g2 = [2, 0].
        let g2 = Tensor::new(&[2.0f64, 0.0], &dev)?;
        adam.step(&quadratic_grads(&theta, &g2))?;
        let (b1, b2) = (0.5f64, 0.999f64);
        let mut expect3 = [0f64; 2];
        for i in 0..2 {
            let gi = [0.5, -1.0][i];
            let g2i = [2.0, 0.0][i];
            let m2 = (1.0 - b1) * gi * (1.0 + b1);
            let v2 = (1.0 - b2) * gi * gi * (1.0 + b2);
            let m3 = b1 * m2 + (1.0 - b1) * g2i;
            let v3 = b2 * v2 + (1.0 - b2) * g2i * g2i;
            let mh = m3 / (1.0 - b1.powi(3));
            let vh = v3 / (1.0 - b2.powi(3));
            expect3[i] = expect2[i] - 0.1 * mh / (vh.sqrt() + eps);
        }
        let got = theta.as_tensor().to_vec1::<f64>()?;
        for (a, b) in got.iter().zip(expect3) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert_eq!(adam.steps_taken(), 3);
        Ok(())
    }

    /// The in-place CPU update (`wae_kernels::adam_update`, taken for contiguous
    /// gradients) and the candle-op formula (taken here for a strided gradient, as on
    /// other devices) give the same bits, step after step, in f32 and f64.
    #[test]
    fn fused_update_matches_candle_ops_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            let init = Tensor::randn(0f32, 1.0, (3, 5), &dev)?.to_dtype(dtype)?;
            let fused = Var::from_tensor(&init.copy()?)?;
            let plain = Var::from_tensor(&init.copy()?)?;
            let cfg = AdamConfig {
                lr: 3e-3,
                ..AdamConfig::default()
            };
            let mut opt_fused = Adam::new(vec![("w".into(), fused.clone())], cfg.clone())?;
            let mut opt_plain = Adam::new(vec![("w".into(), plain.clone())], cfg)?;
            for k in 0..6 {
                // Gradients of very different sizes, and an exact zero.
                let g = (Tensor::randn(0f32, 1.0, (5, 3), &dev)? * 10f64.powi(k - 3))?
                    .to_dtype(dtype)?;
                let g = g.slice_assign(&[0..1, 0..1], &Tensor::zeros((1, 1), dtype, &dev)?)?;
                // A store from a backward pass, its gradient then replaced by ours.
                let mut grads_fused = fused.as_tensor().sum_all()?.backward()?;
                grads_fused.insert(fused.as_tensor(), g.t()?.contiguous()?);
                let mut grads_plain = plain.as_tensor().sum_all()?.backward()?;
                let strided = g.t()?;
                assert!(!strided.is_contiguous());
                grads_plain.insert(plain.as_tensor(), strided);
                opt_fused.step(&grads_fused)?;
                opt_plain.step(&grads_plain)?;
                let bits = |v: &Var| -> Result<Vec<u64>> {
                    let t = v.as_tensor().flatten_all()?.to_dtype(DType::F64)?;
                    Ok(t.to_vec1::<f64>()?.iter().map(|x| x.to_bits()).collect())
                };
                assert_eq!(bits(&fused)?, bits(&plain)?, "{dtype:?} step {k}");
                let (sf, sp) = (opt_fused.state_tensors()?, opt_plain.state_tensors()?);
                for key in ["m.w", "v.w"] {
                    let diff = (&sf[key] - &sp[key])?.abs()?.max_all()?;
                    assert_eq!(diff.to_dtype(DType::F64)?.to_scalar::<f64>()?, 0.0, "{key}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn save_and_restore_continues_identically() -> Result<()> {
        let dev = Device::Cpu;
        let init = [0.3f32, -0.7, 1.1, 2.0];
        let grads_at = |k: usize| -> Tensor {
            let v: Vec<f32> = (0..4).map(|i| ((k * 7 + i) as f32).sin()).collect();
            Tensor::new(v.as_slice(), &dev).unwrap()
        };
        let a = Var::from_slice(&init, 4, &dev)?;
        let mut opt_a = Adam::new(vec![("w".into(), a.clone())], AdamConfig::default())?;
        for k in 0..3 {
            opt_a.step(&quadratic_grads(&a, &grads_at(k)))?;
        }
        let saved = opt_a.state_tensors()?;
        let saved: HashMap<String, Tensor> = saved
            .into_iter()
            .map(|(k, v)| (format!("ae.{k}"), v))
            .collect();
        let b = Var::from_tensor(&a.as_tensor().copy()?)?;
        let mut opt_b = Adam::new(vec![("w".into(), b.clone())], AdamConfig::default())?;
        opt_b.load_state(&saved, "ae.", Path::new("mem"))?;
        assert_eq!(opt_b.steps_taken(), 3);
        for k in 3..6 {
            opt_a.step(&quadratic_grads(&a, &grads_at(k)))?;
            opt_b.step(&quadratic_grads(&b, &grads_at(k)))?;
        }
        assert_eq!(
            a.as_tensor().to_vec1::<f32>()?,
            b.as_tensor().to_vec1::<f32>()?
        );
        // A fresh optimiser (no restore) diverges from that path: the test can fail.
        let c = Var::from_tensor(&Tensor::new(&init, &dev)?)?;
        let mut opt_c = Adam::new(vec![("w".into(), c.clone())], AdamConfig::default())?;
        for k in 0..3 {
            opt_c.step(&quadratic_grads(&c, &grads_at(k)))?;
        }
        let mut opt_c2 = Adam::new(vec![("w".into(), c.clone())], AdamConfig::default())?;
        for k in 3..6 {
            opt_c2.step(&quadratic_grads(&c, &grads_at(k)))?;
        }
        assert_ne!(
            a.as_tensor().to_vec1::<f32>()?,
            c.as_tensor().to_vec1::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn restore_rejects_wrong_shape() -> Result<()> {
        let dev = Device::Cpu;
        let a = Var::zeros(4, DType::F32, &dev)?;
        let opt = Adam::new(vec![("w".into(), a)], AdamConfig::default())?;
        let saved = opt.state_tensors()?;
        let b = Var::zeros(5, DType::F32, &dev)?;
        let mut opt_b = Adam::new(vec![("w".into(), b)], AdamConfig::default())?;
        let err = opt_b
            .load_state(&saved, "", Path::new("run/optimizer.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("run/optimizer.safetensors"), "{err}");
        assert!(err.contains("m.w"), "{err}");
        Ok(())
    }
}
