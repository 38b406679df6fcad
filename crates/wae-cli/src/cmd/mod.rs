//! One module per subcommand; each exposes its clap `Args` and a `run` function.

pub mod bench;
pub mod encode;
pub mod eval;
pub mod init;
pub mod interpolate;
pub mod latent_plot;
pub mod plot;
pub mod reconstruct;
pub mod sample;
pub mod selftest;
pub mod train;
pub mod traverse;
