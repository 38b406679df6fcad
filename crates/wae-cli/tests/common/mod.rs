//! Helpers shared by the tests that drive the `wae` binary.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `wae ARGS` to completion (warnings only in its log).
pub fn wae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wae"))
        .args(args)
        .env("WAE_LOG", "warn")
        .output()
        .expect("run wae")
}

/// Runs `wae ARGS` with `WAE_DATA_DIR` naming the tests' MNIST
/// (`wae_data::testing::mnist_dir`): `wae` itself looks only in `./data/mnist`.
pub fn wae_on_mnist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wae"))
        .args(args)
        .env("WAE_LOG", "warn")
        .env(wae_data::DATA_DIR_ENV, wae_data::testing::mnist_dir())
        .output()
        .expect("run wae")
}

/// stdout then stderr of a finished command, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
