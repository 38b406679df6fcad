//! One module per subcommand; each exposes its clap `Args` and a `run` function.

pub mod encode;
pub mod eval;
pub mod interpolate;
pub mod latent_plot;
pub mod plot;
pub mod reconstruct;
pub mod sample;
pub mod train;
pub mod traverse;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use clap::ValueEnum;

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// The candle device.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda => {
                if !candle_core::utils::cuda_is_available() {
                    bail!(
                        "--device cuda: this `wae` was built without CUDA support; \
                         rebuild with `cargo build --release --features cuda`"
                    );
                }
                Device::new_cuda(0).context(
                    "while opening CUDA device 0 (this needs an NVIDIA GPU and its driver: \
                     `nvidia-smi` should list the GPU; or run with --device cpu)",
                )
            }
        }
    }
}
