//! Error tracking and EWMAs on hand-computed examples.

use predictor::{ErrorSummary, ErrorTracker, Ewma, EwmaVar, ParamError};

#[test]
fn error_tracker_matches_a_hand_computed_example() {
    let mut t = ErrorTracker::new();
    assert_eq!(t.summary(), ErrorSummary::default());
    // errors (predicted − observed): +2, −4, 0, −1
    assert!(t.record(10.0, 8.0));
    assert!(t.record(5.0, 9.0));
    assert!(!t.record(f64::NAN, 1.0));
    assert!(t.record(7.0, 7.0));
    assert!(!t.record(1.0, f64::INFINITY));
    assert!(t.record(3.0, 4.0));
    let s = t.summary();
    assert_eq!(s.count, 4);
    assert_eq!(s.rejected, 2);
    assert!((s.mae - 1.75).abs() < 1e-12, "{s:?}");
    assert!((s.bias + 0.75).abs() < 1e-12, "{s:?}");
    assert!((s.rmse - 5.25f64.sqrt()).abs() < 1e-12, "{s:?}");
    assert_eq!(s.last_error, Some(-1.0));
    t.reset();
    assert_eq!(t.summary().count, 0);
}

#[test]
fn error_tracker_refuses_pairs_that_would_overflow() {
    let mut t = ErrorTracker::new();
    assert!(t.record(2.0, 1.0));
    assert!(!t.record(1e200, -1e200)); // squared error overflows
    assert_eq!(t.count(), 1);
    assert_eq!(t.rmse(), 1.0);
}

#[test]
fn ewma_matches_a_hand_computed_example() {
    let mut e = Ewma::new(0.5).unwrap();
    assert_eq!(e.value(), None);
    assert!(e.update(10.0));
    assert_eq!(e.value(), Some(10.0));
    assert!(e.update(20.0));
    assert_eq!(e.value(), Some(15.0));
    assert!(!e.update(f64::NAN));
    assert!(e.update(0.0));
    assert_eq!(e.value(), Some(7.5));
    assert_eq!((e.samples(), e.rejected()), (3, 1));

    let mut seeded = Ewma::with_initial(0.25, 100.0).unwrap();
    assert!(seeded.update(200.0));
    assert_eq!(seeded.value(), Some(125.0));

    assert_eq!(Ewma::new(0.0), Err(ParamError::Alpha));
    assert_eq!(Ewma::new(1.5), Err(ParamError::Alpha));
    assert_eq!(
        Ewma::with_initial(0.5, f64::INFINITY),
        Err(ParamError::Initial)
    );
}

#[test]
fn ewma_var_matches_a_hand_computed_example() {
    let mut v = EwmaVar::new(0.5).unwrap();
    assert_eq!(v.variance(), None);
    assert!(v.update(10.0));
    assert_eq!((v.mean(), v.variance()), (Some(10.0), Some(0.0)));
    // d = 10, m = 15, var = 0.5 * (0 + 10 * 5) = 25
    assert!(v.update(20.0));
    assert_eq!((v.mean(), v.variance()), (Some(15.0), Some(25.0)));
    assert_eq!(v.std_dev(), Some(5.0));
    assert!(!v.update(f64::NEG_INFINITY));
    // d = −15, m = 7.5, var = 0.5 * (25 + 15 * 7.5) = 68.75
    assert!(v.update(0.0));
    assert_eq!((v.mean(), v.variance()), (Some(7.5), Some(68.75)));
    assert_eq!((v.samples(), v.rejected()), (3, 1));
}
