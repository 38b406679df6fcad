//! Runs `examples/custom_model.rs` (a user's own candle encoder and decoder trained as a
//! WAE-MMD by the trainer, `train_with`) for a few steps, so CI keeps it working.

#[path = "../examples/custom_model.rs"]
mod custom_model;

#[test]
fn a_users_own_networks_train_through_the_trainer() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = Some(wae_data::testing::mnist_dir());
    let (untrained_err, untrained_mmd) =
        custom_model::run(0, &tmp.path().join("0"), mnist.clone()).unwrap();
    let (err, mmd) = custom_model::run(200, &tmp.path().join("200"), mnist).unwrap();
    println!("untrained: {untrained_err:.3} / {untrained_mmd:.5}; 200 steps: {err:.3} / {mmd:.5}");
    assert!(
        err < 0.6 * untrained_err,
        "200 steps should cut the reconstruction error well below the untrained {untrained_err}, got {err}"
    );
    assert!(
        mmd.is_finite() && mmd < untrained_mmd,
        "MMD {mmd} vs untrained {untrained_mmd}"
    );
}
