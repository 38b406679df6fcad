//! An indicatif progress bar that is hidden when stdout is not a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Creates a bar for `total` steps starting at `position`; hidden unless stdout is a TTY
/// (or when `force_hidden`).
pub fn step_bar(total: u64, position: u64, force_hidden: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    if !force_hidden && std::io::stdout().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stdout());
    }
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} step (eta {eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_position(position);
    bar
}
