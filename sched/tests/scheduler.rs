//! Behaviour of `Scheduler`: strict priority, weighted DRR bands, run-time
//! quanta, limits and counters.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sched::{jain_index, ConfigError, RejectReason, SchedConfig, Scheduler};

#[test]
fn nonempty_strict_band_always_wins() {
    // Bands 0 and 1 strict, band 2 DRR bulk.
    let mut s = Scheduler::new(&SchedConfig::uniform(2, vec![9000], 4096)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for i in 0..2000u32 {
        s.enqueue(2, i, 9000).unwrap();
    }
    for step in 0..3000u32 {
        if rng.gen_bool(0.4) {
            let band = rng.gen_range(0..2);
            s.enqueue(band, step, 64).unwrap();
        }
        let lowest_nonempty = (0..3).find(|&b| s.band_len(b) > 0);
        let got = s.dequeue().map(|(band, _, _)| band);
        assert_eq!(got, lowest_nonempty, "step {step}");
    }
}

#[test]
fn short_never_waits_behind_long() {
    let mut s = Scheduler::new(&SchedConfig::uniform(1, vec![1500, 9000], 1024)).unwrap();
    for i in 0..1000u32 {
        let band = 1 + (i % 2) as usize;
        s.enqueue(band, i, 9000).unwrap();
    }
    // Serve a little bulk so the DRR is mid-round with credit outstanding.
    for _ in 0..5 {
        assert_ne!(s.dequeue().unwrap().0, 0);
    }
    s.enqueue(0, u32::MAX, 80).unwrap();
    assert_eq!(s.dequeue(), Some((0, u32::MAX, 80)));
}

/// Serves `total` bytes from always-backlogged DRR bands with the given
/// weights and random sizes, returning bytes per band.
fn serve_backlogged(s: &mut Scheduler<u32>, bands: &[usize], total: u64, seed: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for &b in bands {
        while s.band_len(b) < 16 {
            s.enqueue(b, 0, rng.gen_range(64..=9000)).unwrap();
        }
    }
    let mut bytes = vec![0u64; s.bands()];
    let mut served = 0;
    while served < total {
        let (band, _, len) = s.dequeue().unwrap();
        bytes[band] += u64::from(len);
        served += u64::from(len);
        s.enqueue(band, 0, rng.gen_range(64..=9000)).unwrap();
    }
    bytes
}

#[test]
fn drr_bands_share_by_quantum() {
    let weights = [1u64, 2, 3, 4];
    let quanta = weights.iter().map(|&w| 1500 * w as u32).collect();
    let mut s = Scheduler::new(&SchedConfig::uniform(1, quanta, 64)).unwrap();
    let total = 10_000_000u64;
    let bytes = serve_backlogged(&mut s, &[1, 2, 3, 4], total, 7);
    let served: u64 = bytes.iter().sum();
    let wsum: u64 = weights.iter().sum();
    let mut normalized = Vec::new();
    for (i, &w) in weights.iter().enumerate() {
        let got = bytes[i + 1] as f64;
        let share = served as f64 * w as f64 / wsum as f64;
        assert!(
            (got - share).abs() / share < 0.01,
            "band {}: {got} vs {share}",
            i + 1
        );
        normalized.push(got / w as f64);
    }
    assert!(jain_index(&normalized) >= 0.99);
}

#[test]
fn quantum_change_applies_to_later_rounds() {
    let mut s = Scheduler::new(&SchedConfig::uniform(0, vec![1000, 1000], 64)).unwrap();
    let before = serve_backlogged(&mut s, &[0, 1], 2_000_000, 3);
    let ratio = before[1] as f64 / before[0] as f64;
    assert!((ratio - 1.0).abs() < 0.02, "{ratio}");

    s.set_quantum(1, 3000).unwrap();
    assert_eq!(s.quantum(1), Some(3000));
    let after = serve_backlogged(&mut s, &[0, 1], 4_000_000, 4);
    let ratio = after[1] as f64 / after[0] as f64;
    assert!((ratio - 3.0).abs() < 0.06, "{ratio}");
}

#[test]
fn set_quantum_rejects_bad_arguments() {
    let mut s: Scheduler<()> = Scheduler::new(&SchedConfig::uniform(1, vec![100], 4)).unwrap();
    assert_eq!(
        s.set_quantum(0, 10),
        Err(ConfigError::NotDrrBand { band: 0 })
    );
    assert_eq!(
        s.set_quantum(2, 10),
        Err(ConfigError::NoSuchBand { band: 2 })
    );
    assert_eq!(
        s.set_quantum(1, 0),
        Err(ConfigError::ZeroQuantum { band: 1 })
    );
    assert_eq!(s.quantum(0), None);
}

#[test]
fn full_band_hands_item_back_and_counters_add_up() {
    let mut s = Scheduler::new(&SchedConfig {
        strict_bands: 1,
        drr_quanta: vec![500],
        band_limit_packets: vec![2, 3],
    })
    .unwrap();
    for i in 0..5u32 {
        let _ = s.enqueue(0, i, 100);
    }
    let err = s.enqueue(1, 10, 100).and(s.enqueue(1, 11, 100));
    assert!(err.is_ok());
    s.enqueue(1, 12, 100).unwrap();
    let rej = s.enqueue(1, 13, 100).unwrap_err();
    assert_eq!(rej.item, 13);
    assert_eq!(rej.reason, RejectReason::BandFull { band: 1 });
    let rej = s.enqueue(7, 14, 100).unwrap_err();
    assert_eq!(
        (rej.item, rej.reason),
        (14, RejectReason::NoSuchBand { band: 7 })
    );
    assert_eq!(s.rejected_no_band(), 1);

    assert_eq!(s.band_bytes(1), 300);
    s.dequeue().unwrap();
    s.dequeue().unwrap();
    s.dequeue().unwrap();
    for b in 0..2 {
        let st = s.band_stats(b).unwrap();
        assert_eq!(st.offered, st.enqueued + st.dropped_full);
        assert_eq!(
            st.offered,
            st.dequeued + st.dropped_full + s.band_len(b) as u64
        );
    }
    let st0 = s.band_stats(0).unwrap();
    assert_eq!((st0.offered, st0.dropped_full, st0.dequeued), (5, 3, 2));
    assert_eq!(s.len(), 2);
}

#[test]
fn drain_band_flushes_in_order() {
    let mut s = Scheduler::new(&SchedConfig::uniform(0, vec![100, 100], 8)).unwrap();
    for i in 0..4u32 {
        s.enqueue(0, i, 10).unwrap();
        s.enqueue(1, 100 + i, 10).unwrap();
    }
    let drained: Vec<_> = s.drain_band(0).map(|(i, _)| i).collect();
    assert_eq!(drained, vec![0, 1, 2, 3]);
    assert_eq!(s.band_len(0), 0);
    let rest: Vec<_> = std::iter::from_fn(|| s.dequeue()).map(|x| x.1).collect();
    assert_eq!(rest, vec![100, 101, 102, 103]);
}

#[test]
fn burst_dequeue_respects_max() {
    let mut s = Scheduler::new(&SchedConfig::uniform(1, vec![1], 64)).unwrap();
    for i in 0..40u32 {
        s.enqueue(0, i, 64).unwrap();
    }
    let mut out = Vec::with_capacity(32);
    assert_eq!(s.dequeue_burst(&mut out, 32), 32);
    assert_eq!(out.len(), 32);
    out.clear();
    assert_eq!(s.dequeue_burst(&mut out, 32), 8);
    assert_eq!(out.last(), Some(&(0, 39, 64)));
}
