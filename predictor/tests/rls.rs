//! Recursive least squares: it recovers known coefficients from noisy data,
//! forgetting lets it follow a change, and bad input never gets in.

use predictor::{ParamError, Rls};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn sample(rng: &mut ChaCha8Rng, theta: [f64; 3], noise: f64) -> ([f64; 3], f64) {
    let x = [1.0, rng.gen_range(-5.0..5.0), rng.gen_range(0.0..10.0)];
    let y =
        theta.iter().zip(x.iter()).map(|(t, v)| t * v).sum::<f64>() + rng.gen_range(-noise..noise);
    (x, y)
}

#[test]
fn recovers_coefficients_of_a_noisy_linear_function() {
    let truth = [2.0, -3.0, 0.5];
    let mut rls = Rls::new(1.0, [0.0; 3], 100.0).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..2000 {
        let (x, y) = sample(&mut rng, truth, 0.5);
        assert!(rls.update(&x, y));
    }
    let theta = rls.theta();
    for (got, want) in theta.iter().zip(truth.iter()) {
        assert!((got - want).abs() < 0.03, "theta {theta:?} vs {truth:?}");
    }
    assert_eq!(rls.samples(), 2000);
    assert_eq!(rls.rejected(), 0);
    let p = rls.covariance();
    for (i, row) in p.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            assert_eq!(*v, p[j][i], "P not symmetric at {i},{j}");
        }
    }
    assert!((rls.predict(&[1.0, 1.0, 2.0]) - 0.0).abs() < 0.1);
}

#[test]
fn forgetting_tracks_a_coefficient_that_changes_mid_stream() {
    let before = [2.0, -3.0, 0.5];
    let after = [2.0, 1.0, 0.5];
    let mut forgetful = Rls::new(0.97, [0.0; 3], 100.0).unwrap();
    let mut stubborn = Rls::new(1.0, [0.0; 3], 100.0).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for i in 0..1500 {
        let (x, y) = sample(&mut rng, if i < 1000 { before } else { after }, 0.5);
        assert!(forgetful.update(&x, y));
        assert!(stubborn.update(&x, y));
        if i == 999 {
            assert!((forgetful.theta()[1] + 3.0).abs() < 0.1);
        }
    }
    let got = forgetful.theta();
    for (g, w) in got.iter().zip(after.iter()) {
        assert!((g - w).abs() < 0.1, "forgetful {got:?} vs {after:?}");
    }
    // Without forgetting, 1000 old samples outweigh 500 new ones.
    assert!(
        (stubborn.theta()[1] - 1.0).abs() > 1.0,
        "{:?}",
        stubborn.theta()
    );
}

#[test]
fn constructor_validates_parameters() {
    assert_eq!(Rls::new(0.0, [0.0; 2], 1.0), Err(ParamError::Lambda));
    assert_eq!(Rls::new(1.01, [0.0; 2], 1.0), Err(ParamError::Lambda));
    assert_eq!(Rls::new(f64::NAN, [0.0; 2], 1.0), Err(ParamError::Lambda));
    assert_eq!(Rls::new(0.9, [0.0; 2], 0.0), Err(ParamError::P0));
    assert_eq!(Rls::new(0.9, [0.0; 2], f64::INFINITY), Err(ParamError::P0));
    assert_eq!(
        Rls::new(0.9, [f64::NAN, 0.0], 1.0),
        Err(ParamError::Initial)
    );
    let ok = Rls::new(1.0, [0.0; 2], 1.0).unwrap();
    assert_eq!(ok.trace(), 2.0);
    assert_eq!(ok.with_max_trace(1.5), Err(ParamError::MaxTrace));
    assert!(ok.with_max_trace(2.0).is_ok());
}

#[test]
fn non_finite_samples_are_refused_and_leave_the_model_unchanged() {
    let mut rls = Rls::new(0.99, [1.0, 2.0], 10.0).unwrap();
    assert!(rls.update(&[1.0, 3.0], 8.0));
    let before = rls;
    for (x, y) in [
        ([f64::NAN, 1.0], 1.0),
        ([1.0, f64::INFINITY], 1.0),
        ([1.0, 1.0], f64::NEG_INFINITY),
        ([1.0, 1.0], f64::NAN),
        ([1e200, 1e200], 1.0), // x P x overflows
        ([1.0, 1.0], 1e308 * 10.0),
    ] {
        assert!(!rls.update(&x, y));
    }
    assert_eq!(rls.theta(), before.theta());
    assert_eq!(rls.covariance(), before.covariance());
    assert_eq!(rls.samples(), 1);
    assert_eq!(rls.rejected(), 6);
}

#[test]
fn covariance_wind_up_is_capped_by_a_reset() {
    // Only the first feature is ever excited; with λ = 0.9 the second
    // direction's variance grows by 1/0.9 per update until the bound.
    let mut rls = Rls::new(0.9, [0.0, 0.0], 1.0)
        .unwrap()
        .with_max_trace(100.0)
        .unwrap();
    let mut max_trace: f64 = 0.0;
    for _ in 0..200 {
        assert!(rls.update(&[1.0, 0.0], 5.0));
        max_trace = max_trace.max(rls.trace());
    }
    assert!(max_trace <= 100.0, "trace reached {max_trace}");
    assert!(rls.resets() >= 2, "resets {}", rls.resets());
    assert!((rls.theta()[0] - 5.0).abs() < 1e-9);
    // After a reset θ is kept, only P goes back to p0·I.
    assert!(rls.theta().iter().all(|t| t.is_finite()));
}

/// Fits `y = 1 + 10·x₁` from samples that excite x₁, then feeds `n` samples
/// with x₁ = 0 that say only `y = 1`: θ₁ after them.
fn theta1_after_unexcited(relaxation: f64, n: usize) -> f64 {
    let mut rls = Rls::new(0.99, [0.0, 2.0], 10.0)
        .unwrap()
        .with_relaxation(relaxation)
        .unwrap();
    for i in 0..200 {
        let x1 = f64::from(i % 5 + 1);
        assert!(rls.update(&[1.0, x1], 1.0 + 10.0 * x1));
    }
    assert!((rls.theta()[1] - 10.0).abs() < 0.01, "{:?}", rls.theta());
    for _ in 0..n {
        assert!(rls.update(&[1.0, 0.0], 1.0));
    }
    assert!((rls.theta()[0] - 1.0).abs() < 0.01, "{:?}", rls.theta());
    rls.theta()[1]
}

#[test]
fn a_coefficient_no_longer_excited_relaxes_to_its_initial_value() {
    // Without relaxation nothing moves θ₁ once x₁ is always 0.
    assert!((theta1_after_unexcited(0.0, 300) - 10.0).abs() < 0.01);
    // With 2% a sample from the 16th on: (1 − 0.02)^284 ≈ 0.3% of the way
    // from 10 to the initial 2 is left.
    let relaxed = theta1_after_unexcited(0.02, 300);
    assert!((relaxed - 2.0).abs() < 0.05, "{relaxed}");
    // A coefficient that keeps being excited stays where the data put it.
    let mut rls = Rls::new(0.99, [0.0, 2.0], 10.0)
        .unwrap()
        .with_relaxation(0.02)
        .unwrap();
    for i in 0..500 {
        let x1 = f64::from(i % 5 + 1);
        assert!(rls.update(&[1.0, x1], 1.0 + 10.0 * x1));
    }
    let theta = rls.theta();
    assert!(
        (theta[0] - 1.0).abs() < 1e-3 && (theta[1] - 10.0).abs() < 1e-3,
        "{theta:?}"
    );
}

#[test]
fn relaxation_outside_zero_to_one_is_refused() {
    for r in [-0.1, 1.0, f64::NAN] {
        assert_eq!(
            Rls::new(0.99, [0.0; 2], 1.0)
                .unwrap()
                .with_relaxation(r)
                .unwrap_err(),
            ParamError::Relaxation
        );
    }
}
