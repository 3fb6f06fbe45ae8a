//! Property: whatever `f64`s arrive (NaN, ±∞, huge, tiny, negative), no
//! call panics, the models stay finite, and input that is refused changes
//! nothing but the rejection counters.

use predictor::{
    ErrorTracker, Ewma, EwmaVar, InstanceModel, InstancePrior, ModelConfig, Observation, Rls,
};
use proptest::prelude::*;

fn wild() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(-0.0),
        -1.0e7..1.0e7f64,
        0.0..1.0e6f64,
    ]
}

fn all_finite<'a>(v: impl IntoIterator<Item = &'a f64>) -> bool {
    v.into_iter().all(|x| x.is_finite())
}

const PRIOR: InstancePrior = InstancePrior {
    base_ttft_us: 20_000.0,
    prefill_tokens_per_s: 10_000.0,
    per_queued_request_us: 30_000.0,
    decode_tokens_per_s: 50.0,
};

fn observation() -> impl Strategy<Value = Observation> {
    (
        any::<u32>(),
        any::<u32>(),
        wild(),
        wild(),
        wild(),
        proptest::option::of(wild()),
        proptest::option::of(wild()),
    )
        .prop_map(|(p, o, q, pt, ot, pc, oc)| Observation {
            prompt_tokens: p,
            output_tokens: o,
            queue_len: q,
            predicted_compute_ttft_us: pt,
            observed_compute_ttft_us: ot,
            predicted_completion_us: pc,
            observed_completion_us: oc,
        })
}

fn observation_is_finite(o: &Observation) -> bool {
    o.queue_len.is_finite()
        && o.predicted_compute_ttft_us.is_finite()
        && o.observed_compute_ttft_us.is_finite()
        && o.predicted_completion_us.map_or(true, f64::is_finite)
        && o.observed_completion_us.map_or(true, f64::is_finite)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rls_never_holds_non_finite(samples in proptest::collection::vec(([wild(), wild(), wild()], wild()), 1..40)) {
        let mut rls = Rls::new(0.95, [1.0, 2.0, 3.0], 10.0).unwrap();
        for (x, y) in &samples {
            let before = rls;
            let ok = rls.update(x, *y);
            prop_assert!(all_finite(&rls.theta()));
            prop_assert!(all_finite(rls.covariance().iter().flatten()));
            prop_assert!(rls.trace() <= 1.0e3 * 3.0 * 10.0);
            if !all_finite(x) || !y.is_finite() {
                prop_assert!(!ok);
            }
            if !ok {
                prop_assert_eq!(rls.theta(), before.theta());
                prop_assert_eq!(rls.covariance(), before.covariance());
                prop_assert_eq!(rls.samples(), before.samples());
                prop_assert_eq!(rls.rejected(), before.rejected() + 1);
            }
            let _ = rls.predict(x);
        }
    }

    #[test]
    fn ewma_and_error_tracker_never_hold_non_finite(xs in proptest::collection::vec((wild(), wild()), 1..40)) {
        let mut e = Ewma::new(0.3).unwrap();
        let mut v = EwmaVar::new(0.3).unwrap();
        let mut t = ErrorTracker::new();
        for (a, b) in &xs {
            let (e0, v0, t0) = (e, v, t);
            let ok_e = e.update(*a);
            let ok_v = v.update(*a);
            let ok_t = t.record(*a, *b);
            prop_assert!(e.value().map_or(true, f64::is_finite));
            prop_assert!(v.mean().map_or(true, f64::is_finite));
            prop_assert!(v.variance().map_or(true, |s| s.is_finite() && s >= 0.0));
            let s = t.summary();
            prop_assert!(s.mae.is_finite() && s.bias.is_finite() && s.rmse.is_finite());
            if !a.is_finite() {
                prop_assert!(!ok_e && !ok_v && !ok_t);
            }
            if !ok_e { prop_assert_eq!(e.value(), e0.value()); }
            if !ok_v { prop_assert_eq!((v.mean(), v.variance()), (v0.mean(), v0.variance())); }
            if !ok_t { prop_assert_eq!(t.count(), t0.count()); prop_assert_eq!(t.mae(), t0.mae()); }
        }
    }

    #[test]
    fn instance_model_stays_finite_and_ignores_bad_observations(
        obs in proptest::collection::vec(observation(), 1..30),
        queries in proptest::collection::vec((any::<u32>(), any::<u32>(), wild()), 1..10),
    ) {
        let mut m = InstanceModel::new(PRIOR, ModelConfig::default()).unwrap();
        for o in &obs {
            let before = m;
            let ok = m.observe(o);
            if !observation_is_finite(o) {
                prop_assert!(!ok);
            }
            if ok {
                prop_assert_eq!(m.samples(), before.samples() + 1);
            } else {
                prop_assert_eq!(m.rejected(), before.rejected() + 1);
                prop_assert_eq!(m.ttft_coefficients(), before.ttft_coefficients());
                prop_assert_eq!(m.decode_us_per_token(), before.decode_us_per_token());
                prop_assert_eq!(m.ttft_error(), before.ttft_error());
                prop_assert_eq!(m.completion_error(), before.completion_error());
                prop_assert_eq!(m.samples(), before.samples());
            }
            prop_assert!(all_finite(&m.ttft_coefficients()));
            prop_assert!(m.decode_us_per_token().is_finite());
            for (p, out, q) in &queries {
                let pr = m.predict(*p, *out, *q);
                prop_assert!(pr.compute_ttft_us.is_finite() && pr.compute_ttft_us >= 0.0);
                prop_assert!(pr.completion_us.is_finite() && pr.completion_us >= 0.0);
            }
        }
    }
}
