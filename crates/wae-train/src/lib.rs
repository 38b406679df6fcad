//! Training of Wasserstein auto-encoders and VAEs: configs, presets, Adam with
//! saveable state, learning-rate schedules, atomic checkpoints and the loop.
#![deny(missing_docs)]

pub mod adam;
pub mod checkpoint;
mod error;
pub mod init;
pub mod metrics;
pub mod rng;
pub mod schedule;

pub use adam::{Adam, AdamConfig};
pub use error::{Error, Result};
pub use schedule::{Milestone, Schedule, ScheduleState};
