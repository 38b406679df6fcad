//! Runs `examples/mmd_penalty.rs` (the MMD penalty in a plain candle loop) so CI keeps it
//! working and checks that it does what it says: the codes move towards the prior.

#[path = "../examples/mmd_penalty.rs"]
mod mmd_penalty;

#[test]
fn the_penalty_pulls_a_plain_candle_models_codes_to_the_prior() {
    let (before, after) = mmd_penalty::run(300).unwrap();
    println!("held-out MMD^2: {before:.5} -> {after:.5}");
    assert!(after < 0.5 * before, "MMD^2 {before} -> {after}");
}
