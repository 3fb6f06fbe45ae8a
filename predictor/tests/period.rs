//! The period detector on synthetic burst trains: exact periods, jitter,
//! noise, constant input, period changes, and the no-allocation promise.

use predictor::PeriodDetector;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// A tiny deterministic generator (splitmix64) so the tests need no seed
/// plumbing.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Pushes `iterations` iterations of `gap` quiet bins then `burst` busy
/// bins, each gap lengthened or shortened by up to `jitter` bins.
fn burst_train(
    d: &mut PeriodDetector,
    rng: &mut Mix,
    iterations: usize,
    gap: usize,
    burst: usize,
    jitter: usize,
) {
    for _ in 0..iterations {
        let j = if jitter == 0 {
            0
        } else {
            (rng.next() % (2 * jitter as u64 + 1)) as usize
        };
        for _ in 0..(gap + j).saturating_sub(jitter) {
            d.push(1.0 + 0.2 * rng.unit());
        }
        for _ in 0..burst {
            d.push(100.0 + 5.0 * rng.unit());
        }
    }
}

#[test]
fn exact_period_found() {
    let mut d = PeriodDetector::new(512).unwrap();
    let mut rng = Mix(1);
    burst_train(&mut d, &mut rng, 20, 20, 10, 0);
    let p = d.period_bins().expect("period");
    assert!((p - 30.0).abs() < 1e-9, "period {p}");
    assert!(d.confidence() > 0.9, "confidence {}", d.confidence());
    // The last bin pushed was the 10th of a burst.
    assert_eq!(d.bins_since_onset(), Some(9));
    // Next bin: the gap starts; 21 bins ahead: the next burst.
    let quiet = d.seasonal(1).unwrap();
    let busy = d.seasonal(21).unwrap();
    assert!(quiet < 2.0, "quiet {quiet}");
    assert!(busy > 90.0, "busy {busy}");
    assert!(d.seasonal(20).unwrap() < 2.0);
    let m = d.seasonal_mean(1, 30).unwrap();
    assert!((m - (20.0 * 1.1 + 10.0 * 102.5) / 30.0).abs() < 3.0, "{m}");
}

#[test]
fn jitter_is_tolerated() {
    let mut d = PeriodDetector::new(512).unwrap();
    let mut rng = Mix(7);
    burst_train(&mut d, &mut rng, 40, 30, 10, 2);
    let p = d.period_bins().expect("period");
    assert!((p - 40.0).abs() < 2.0, "period {p}");
    assert!(d.confidence() >= 0.5);
}

#[test]
fn no_period_on_noise() {
    let mut d = PeriodDetector::new(512).unwrap();
    let mut rng = Mix(3);
    for _ in 0..5000 {
        d.push(100.0 * rng.unit());
        assert!((0.0..=1.0).contains(&d.confidence()));
    }
    assert_eq!(d.period_bins(), None, "confidence {}", d.confidence());
    assert_eq!(d.seasonal(1), None);
}

#[test]
fn no_period_on_constant_or_slightly_noisy_input() {
    let mut d = PeriodDetector::new(256).unwrap();
    for _ in 0..2000 {
        d.push(42.0);
    }
    assert_eq!(d.period_bins(), None);
    assert_eq!(d.bins_since_onset(), None);
    let mut d = PeriodDetector::new(256).unwrap();
    let mut rng = Mix(5);
    for _ in 0..2000 {
        d.push(42.0 + rng.unit());
    }
    assert_eq!(d.period_bins(), None);
    assert_eq!(d.confidence(), 0.0);
}

#[test]
fn period_change_is_redetected() {
    let mut d = PeriodDetector::new(512).unwrap();
    let mut rng = Mix(11);
    burst_train(&mut d, &mut rng, 20, 20, 10, 0);
    assert!((d.period_bins().unwrap() - 30.0).abs() < 0.5);
    burst_train(&mut d, &mut rng, 6, 35, 10, 0);
    let p = d.period_bins().expect("new period");
    assert!((p - 45.0).abs() < 0.5, "period {p}");
    burst_train(&mut d, &mut rng, 6, 15, 10, 0);
    let p = d.period_bins().expect("third period");
    assert!((p - 25.0).abs() < 0.5, "period {p}");
}

#[test]
fn confidence_fades_when_bursts_stop() {
    let mut d = PeriodDetector::new(512).unwrap();
    let mut rng = Mix(2);
    burst_train(&mut d, &mut rng, 10, 20, 10, 0);
    assert!(d.period_bins().is_some());
    for _ in 0..100 {
        d.push(1.0);
    }
    assert_eq!(d.confidence(), 0.0);
    assert_eq!(d.period_bins(), None);
}

#[test]
fn non_finite_and_negative_values_are_handled() {
    let mut d = PeriodDetector::new(64).unwrap();
    d.push(f64::NAN);
    d.push(f64::INFINITY);
    assert_eq!(d.rejected(), 2);
    assert_eq!(d.bins(), 0);
    d.push(-5.0);
    assert_eq!(d.recent(0), Some(0.0));
    assert_eq!(d.recent(1), None);
    assert_eq!(d.recent_mean(10), Some(0.0));
    assert!(PeriodDetector::new(4).is_err());
    assert!(PeriodDetector::new(usize::MAX).is_err());
}

#[test]
fn push_and_seasonal_do_not_allocate() {
    let mut d = PeriodDetector::new(512).unwrap();
    let mut rng = Mix(9);
    let mut acc = 0.0;
    let n = counting_alloc::allocations_during(|| {
        burst_train(&mut d, &mut rng, 50, 25, 5, 1);
        for a in 1..60 {
            acc += d.seasonal(a).unwrap_or(0.0);
        }
        acc += d.seasonal_mean(1, 10).unwrap_or(0.0) + d.confidence();
    });
    assert_eq!(n, 0);
    assert!(acc > 0.0);
}
