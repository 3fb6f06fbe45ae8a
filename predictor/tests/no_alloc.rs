//! `predict`, `observe` and `update` run per request in the data plane and
//! must not allocate. A counting global allocator (per thread, so the test
//! harness's other threads do not interfere) proves it.

use predictor::{
    ErrorTracker, Ewma, EwmaVar, InstanceModel, InstancePrior, ModelConfig, Observation, Rls,
};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

use counting_alloc::allocations_during;

#[test]
fn predict_observe_and_update_do_not_allocate() {
    let prior = InstancePrior {
        base_ttft_us: 20_000.0,
        prefill_tokens_per_s: 10_000.0,
        per_queued_request_us: 30_000.0,
        decode_tokens_per_s: 50.0,
    };
    let mut m = InstanceModel::new(prior, ModelConfig::default()).unwrap();
    let mut rls = Rls::new(0.99, [0.0; 4], 1.0).unwrap();
    let mut ewma = Ewma::new(0.1).unwrap();
    let mut var = EwmaVar::new(0.1).unwrap();
    let mut tracker = ErrorTracker::new();
    let mut accepted = 0u32;
    let mut sum = 0.0;
    let n = allocations_during(|| {
        for i in 0..2000u32 {
            let prompt = 100 + (i * 37) % 8000;
            let out = 10 + i % 300;
            let queue = f64::from(i % 7);
            let p = m.predict(prompt, out, queue);
            let ttft = 50_000.0 + f64::from(prompt) * 150.0 + queue * 40_000.0;
            let bad = if i % 10 == 0 { f64::NAN } else { 0.0 };
            accepted += u32::from(m.observe(&Observation {
                prompt_tokens: prompt,
                output_tokens: out,
                queue_len: queue,
                predicted_compute_ttft_us: p.compute_ttft_us,
                observed_compute_ttft_us: ttft + bad,
                predicted_completion_us: Some(p.completion_us),
                observed_completion_us: Some(ttft + f64::from(out) * 30_000.0),
            }));
            let x = [1.0, f64::from(i), queue, bad];
            accepted += u32::from(rls.update(&x, 3.0));
            sum += rls.predict(&[1.0, f64::from(i), queue, 0.0]);
            accepted += u32::from(ewma.update(ttft + bad));
            accepted += u32::from(var.update(ttft));
            accepted += u32::from(tracker.record(p.compute_ttft_us, ttft));
            sum += m.ttft_error().mae + m.completion_error().rmse;
        }
    });
    assert_eq!(n, 0, "the hot-path calls allocated {n} times");
    assert!(accepted > 5000, "{accepted}");
    assert!(sum.is_finite());
    assert!(m.rejected() == 200 && m.samples() == 1800);
    // The counter itself works.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);
}
