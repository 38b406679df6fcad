//! Learning-rate schedules: a factor that multiplies the base learning rates.
//!
//! The factor applies to the auto-encoder's and the discriminator's learning
//! rates alike, as in the reference code (`lr * decay` for both optimisers).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One step of a [`Schedule::Manual`] schedule: from `epoch` on, divide by `divide_by`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milestone {
    /// First epoch (0-based) at which the division applies.
    pub epoch: u64,
    /// The learning rate is divided by this (cumulative with earlier milestones).
    pub divide_by: f64,
}

/// One step of a [`Schedule::Steps`] schedule: from optimisation step `step` on, the
/// learning rate is the base rate times `lr_factor` (not cumulative).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepMilestone {
    /// First step (0-based) at which `lr_factor` applies.
    pub step: u64,
    /// Multiplier of the base learning rates from `step` on.
    pub lr_factor: f64,
}

/// How the learning rate changes over training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The base learning rate throughout.
    Constant,
    /// Piecewise constant: divided at the given epochs (the reference MNIST
    /// schedule is lr/2 at epoch 30 and a further /5 at epoch 50).
    Manual {
        /// Milestones, in any order.
        milestones: Vec<Milestone>,
    },
    /// Divide by `factor` when the epoch-mean total loss has not improved for
    /// `patience_epochs` epochs, starting at `start_epoch`, never below `min_factor`.
    ///
    /// The reference code applies the same rule per step over windows of 20 and
    /// 10 epochs of steps; this epoch-level version uses epoch means, which are
    /// less noisy and need no loss history in the checkpoint.
    Plateau {
        /// No decay before this epoch (reference: 30).
        start_epoch: u64,
        /// Epochs without a new best epoch-mean loss before a decay (reference: 10).
        patience_epochs: u64,
        /// Division factor at each decay (reference: 1.4).
        factor: f64,
        /// Lower bound of the learning-rate factor (reference: 1e-6).
        min_factor: f64,
    },
    /// Piecewise constant by optimisation step: the factor of the last milestone whose
    /// `step` is reached, 1 before the first. Rubenstein et al.'s
    /// `learning_rate_schedule = [(1e-3, 10000), (7e-4, 20000), ...]` (rate, last
    /// 1-based iteration) is base lr 1e-3 with milestones (10000, 0.7), (20000, 0.3), ...
    Steps {
        /// Milestones, in any order.
        milestones: Vec<StepMilestone>,
    },
    /// Smooth exponential decay by `total_decay` over the whole run: at the start of
    /// epoch e the factor is `total_decay^(-(e + 1) / epochs)` (the reference code's
    /// `manual_smooth`, used for CelebA with total_decay 100).
    Exponential {
        /// Overall division of the learning rate at the end of the run.
        total_decay: f64,
    },
}

impl Schedule {
    /// The paper's MNIST schedule: /2 at epoch 30, /5 more at epoch 50.
    pub fn paper_mnist() -> Self {
        Schedule::Manual {
            milestones: vec![
                Milestone {
                    epoch: 30,
                    divide_by: 2.0,
                },
                Milestone {
                    epoch: 50,
                    divide_by: 5.0,
                },
            ],
        }
    }

    /// The reference code's plateau defaults.
    pub fn reference_plateau() -> Self {
        Schedule::Plateau {
            start_epoch: 30,
            patience_epochs: 10,
            factor: 1.4,
            min_factor: 1e-6,
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(format!("schedule: {m}")));
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Manual { milestones } => {
                for m in milestones {
                    if !(m.divide_by.is_finite() && m.divide_by > 0.0) {
                        return bad(format!("divide_by must be > 0, got {}", m.divide_by));
                    }
                }
                Ok(())
            }
            Schedule::Plateau {
                factor, min_factor, ..
            } => {
                if !(factor.is_finite() && *factor > 1.0) {
                    return bad(format!("plateau factor must be > 1, got {factor}"));
                }
                if !(*min_factor > 0.0 && *min_factor <= 1.0) {
                    return bad(format!("min_factor must be in (0, 1], got {min_factor}"));
                }
                Ok(())
            }
            Schedule::Steps { milestones } => {
                for m in milestones {
                    if !(m.lr_factor.is_finite() && m.lr_factor > 0.0) {
                        return bad(format!("lr_factor must be > 0, got {}", m.lr_factor));
                    }
                }
                Ok(())
            }
            Schedule::Exponential { total_decay } => {
                if !(total_decay.is_finite() && *total_decay >= 1.0) {
                    return bad(format!("total_decay must be >= 1, got {total_decay}"));
                }
                Ok(())
            }
        }
    }
}

/// The mutable part of a schedule, saved in each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Current multiplier of the base learning rates.
    pub lr_factor: f64,
    /// Best epoch-mean loss seen (plateau only).
    pub best_epoch_loss: Option<f64>,
    /// Epochs since the best epoch-mean loss (plateau only).
    pub epochs_since_best: u64,
}

impl Default for ScheduleState {
    fn default() -> Self {
        Self {
            lr_factor: 1.0,
            best_epoch_loss: None,
            epochs_since_best: 0,
        }
    }
}

impl ScheduleState {
    /// Updates the factor before optimisation step `step` (0-based), which lies in
    /// `epoch` (0-based) of a run of `epochs` epochs.
    pub fn start_step(&mut self, schedule: &Schedule, step: u64, epoch: u64, epochs: u64) {
        match schedule {
            Schedule::Steps { milestones } => {
                self.lr_factor = milestones
                    .iter()
                    .filter(|m| step >= m.step)
                    .max_by_key(|m| m.step)
                    .map_or(1.0, |m| m.lr_factor);
            }
            Schedule::Constant => self.lr_factor = 1.0,
            Schedule::Manual { milestones } => {
                self.lr_factor = milestones
                    .iter()
                    .filter(|m| epoch >= m.epoch)
                    .fold(1.0, |f, m| f / m.divide_by);
            }
            Schedule::Plateau { .. } => {}
            Schedule::Exponential { total_decay } => {
                let epochs = epochs.max(1) as f64;
                self.lr_factor = total_decay.powf(-((epoch + 1) as f64) / epochs);
            }
        }
    }

    /// Records the mean total loss of a finished `epoch`; the plateau rule may decay.
    /// Returns true when the factor changed.
    pub fn end_epoch(&mut self, schedule: &Schedule, epoch: u64, mean_loss: f64) -> bool {
        let Schedule::Plateau {
            start_epoch,
            patience_epochs,
            factor,
            min_factor,
        } = schedule
        else {
            return false;
        };
        let improved = match self.best_epoch_loss {
            None => true,
            Some(best) => mean_loss < best,
        };
        if improved {
            self.best_epoch_loss = Some(mean_loss);
            self.epochs_since_best = 0;
            return false;
        }
        self.epochs_since_best += 1;
        if epoch >= *start_epoch && self.epochs_since_best >= *patience_epochs {
            let next = (self.lr_factor / factor).max(*min_factor);
            self.epochs_since_best = 0;
            if next != self.lr_factor {
                self.lr_factor = next;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_mnist_schedule_halves_at_30_and_tenths_at_50() {
        let s = Schedule::paper_mnist();
        let mut st = ScheduleState::default();
        let factor_at = |st: &mut ScheduleState, e| {
            st.start_step(&s, 0, e, 100);
            st.lr_factor
        };
        assert_eq!(factor_at(&mut st, 0), 1.0);
        assert_eq!(factor_at(&mut st, 29), 1.0);
        assert_eq!(factor_at(&mut st, 30), 0.5);
        assert_eq!(factor_at(&mut st, 49), 0.5);
        assert!((factor_at(&mut st, 50) - 0.1).abs() < 1e-15);
        assert!((factor_at(&mut st, 99) - 0.1).abs() < 1e-15);
    }

    #[test]
    fn plateau_decays_only_after_patience_and_start() {
        let s = Schedule::Plateau {
            start_epoch: 3,
            patience_epochs: 2,
            factor: 2.0,
            min_factor: 0.2,
        };
        let mut st = ScheduleState::default();
        // epochs 0..2: no improvement after epoch 0, but before start_epoch.
        assert!(!st.end_epoch(&s, 0, 1.0));
        assert!(!st.end_epoch(&s, 1, 1.5));
        assert!(!st.end_epoch(&s, 2, 1.5));
        assert_eq!(st.lr_factor, 1.0);
        // epoch 3: third epoch without improvement, at/after start -> decay.
        assert!(st.end_epoch(&s, 3, 1.2));
        assert_eq!(st.lr_factor, 0.5);
        // improvement resets the counter.
        assert!(!st.end_epoch(&s, 4, 0.9));
        assert!(!st.end_epoch(&s, 5, 0.95));
        assert!(st.end_epoch(&s, 6, 0.95));
        assert_eq!(st.lr_factor, 0.25);
        assert!(!st.end_epoch(&s, 7, 1.0));
        assert!(st.end_epoch(&s, 8, 1.0));
        assert_eq!(st.lr_factor, 0.2, "clamped at min_factor");
        assert!(!st.end_epoch(&s, 9, 1.0));
        assert!(!st.end_epoch(&s, 10, 1.0), "already at the floor");
    }

    #[test]
    fn exponential_reaches_total_decay_at_last_epoch() {
        let s = Schedule::Exponential { total_decay: 100.0 };
        let mut st = ScheduleState::default();
        st.start_step(&s, 0, 49, 50);
        assert!((st.lr_factor - 0.01).abs() < 1e-12);
        st.start_step(&s, 0, 0, 50);
        assert!((st.lr_factor - 100f64.powf(-1.0 / 50.0)).abs() < 1e-12);
    }

    #[test]
    fn step_schedule_follows_rubensteins_iteration_boundaries() {
        // [(1e-3, 10000), (7e-4, 20000), (3e-4, 30000), (1e-4, 40001)]: 1-based iteration
        // 10000 (our step 9999) still runs at 1e-3, iteration 10001 at 7e-4.
        let s = Schedule::Steps {
            milestones: vec![
                StepMilestone {
                    step: 30_000,
                    lr_factor: 0.1,
                },
                StepMilestone {
                    step: 10_000,
                    lr_factor: 0.7,
                },
                StepMilestone {
                    step: 20_000,
                    lr_factor: 0.3,
                },
            ],
        };
        s.validate().unwrap();
        let mut st = ScheduleState::default();
        let mut at = |step| {
            st.start_step(&s, step, step / 100, 400);
            st.lr_factor
        };
        assert_eq!(at(0), 1.0);
        assert_eq!(at(9_999), 1.0);
        assert_eq!(at(10_000), 0.7);
        assert_eq!(at(19_999), 0.7);
        assert_eq!(at(20_000), 0.3);
        assert_eq!(at(30_000), 0.1);
        assert_eq!(at(39_999), 0.1);
        let bad = Schedule::Steps {
            milestones: vec![StepMilestone {
                step: 5,
                lr_factor: 0.0,
            }],
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("lr_factor")
        );
    }

    #[test]
    fn schedule_toml_round_trip_and_unknown_key() {
        let s = Schedule::paper_mnist();
        let text = toml::to_string(&s).unwrap();
        let back: Schedule = toml::from_str(&text).unwrap();
        assert_eq!(back, s);
        let err = toml::from_str::<Schedule>("kind = \"plateau\"\nstart_epoch = 1\npatience_epochs = 1\nfactor = 2.0\nmin_factor = 0.1\npatience = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("patience"), "{err}");
    }
}
