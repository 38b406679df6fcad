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

/// stdout then stderr of a finished command, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
