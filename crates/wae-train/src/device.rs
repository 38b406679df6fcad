//! Which device a command runs on: the one `--device` choice of `wae` and `cargo xtask`.
//!
//! With the cargo feature `clap` the choice is a `clap::ValueEnum`, so a binary writes
//! `#[arg(long, value_enum, default_value = "cpu")] device: DeviceChoice`.
//!
//! ```
//! use wae_train::DeviceChoice;
//! let choice: DeviceChoice = "cpu".parse()?;
//! assert_eq!(choice.name(), "cpu");
//! assert!(choice.open()?.is_cpu());
//! # Ok::<(), wae_train::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::{Error, Result};

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DeviceChoice {
    /// The CPU.
    #[default]
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

impl DeviceChoice {
    /// The name on the command line: `cpu` or `cuda`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }

    /// Opens the candle device: the CPU, or CUDA device 0 ([`Error::NoCuda`] when this
    /// build has no CUDA support, [`Error::CudaDevice`] when the device cannot be opened).
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(Error::NoCuda);
                }
                Device::new_cuda(0).map_err(|source| Error::CudaDevice { source })
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;

    /// `cpu` or `cuda`; anything else is [`Error::InvalidDevice`].
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(Error::InvalidDevice(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for choice in [DeviceChoice::Cpu, DeviceChoice::Cuda] {
            assert_eq!(choice.name().parse::<DeviceChoice>().unwrap(), choice);
            assert_eq!(choice.to_string(), choice.name());
        }
        let err = "gpu".parse::<DeviceChoice>().unwrap_err();
        assert!(err.to_string().contains("unknown --device gpu"), "{err}");
    }

    #[test]
    fn cuda_without_cuda_says_how_to_get_it() {
        if candle_core::utils::cuda_is_available() {
            return;
        }
        let err = DeviceChoice::Cuda.open().unwrap_err();
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }
}
