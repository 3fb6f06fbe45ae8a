//! Behaviour of `FlowDrr`: weighted fairness, run-time weights, limits,
//! flow lifetime and draining.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sched::{jain_index, ConfigError, FlowDrr, FlowDrrConfig, RejectReason};

fn cfg(max_flows: usize, max_packets: usize, per_flow: usize) -> FlowDrrConfig {
    FlowDrrConfig {
        base_quantum: 1500,
        max_flows,
        max_packets,
        max_packets_per_flow: per_flow,
    }
}

/// Serves `total` bytes from always-backlogged flows, returning bytes per
/// flow key.
fn serve(f: &mut FlowDrr<u64, u32>, flows: &[u64], total: u64, seed: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for &k in flows {
        while f.flow_len(k) < 16 {
            f.enqueue(k, 0, rng.gen_range(64..=9000)).unwrap();
        }
    }
    let mut bytes = vec![0u64; flows.len()];
    let mut served = 0;
    while served < total {
        let (k, _, len) = f.dequeue().unwrap();
        bytes[k as usize] += u64::from(len);
        served += u64::from(len);
        f.enqueue(k, 0, rng.gen_range(64..=9000)).unwrap();
    }
    bytes
}

#[test]
fn flows_share_by_weight() {
    let mut f = FlowDrr::new(&cfg(16, 1024, 64)).unwrap();
    let weights = [1u32, 2, 3, 4];
    for (k, &w) in weights.iter().enumerate() {
        f.set_weight(k as u64, w).unwrap();
    }
    let bytes = serve(&mut f, &[0, 1, 2, 3], 10_000_000, 11);
    let served: u64 = bytes.iter().sum();
    let wsum: u32 = weights.iter().sum();
    let mut normalized = Vec::new();
    for (k, &w) in weights.iter().enumerate() {
        let share = served as f64 * f64::from(w) / f64::from(wsum);
        let got = bytes[k] as f64;
        assert!(
            (got - share).abs() / share < 0.01,
            "flow {k}: {got} vs {share}"
        );
        normalized.push(got / f64::from(w));
    }
    assert!(jain_index(&normalized) >= 0.99);
}

#[test]
fn weight_change_applies_to_later_rounds() {
    let mut f = FlowDrr::new(&cfg(4, 256, 64)).unwrap();
    f.set_weight(0, 1).unwrap();
    f.set_weight(1, 1).unwrap();
    let before = serve(&mut f, &[0, 1], 2_000_000, 5);
    assert!((before[1] as f64 / before[0] as f64 - 1.0).abs() < 0.02);
    f.set_weight(1, 4).unwrap();
    assert_eq!(f.weight(1), Some(4));
    let after = serve(&mut f, &[0, 1], 5_000_000, 6);
    let ratio = after[1] as f64 / after[0] as f64;
    assert!((ratio - 4.0).abs() < 0.08, "{ratio}");
}

#[test]
fn limits_hand_items_back_with_reason() {
    let mut f = FlowDrr::new(&cfg(2, 5, 3)).unwrap();
    for i in 0..3 {
        f.enqueue(1u8, i, 100).unwrap();
    }
    let r = f.enqueue(1, 3, 100).unwrap_err();
    assert_eq!((r.item, r.reason), (3, RejectReason::FlowFull));
    f.enqueue(2, 4, 100).unwrap();
    let r = f.enqueue(3, 5, 100).unwrap_err();
    assert_eq!((r.item, r.reason), (5, RejectReason::TooManyFlows));
    f.enqueue(2, 6, 100).unwrap();
    let r = f.enqueue(2, 7, 100).unwrap_err();
    assert_eq!((r.item, r.reason), (7, RejectReason::BufferFull));
    assert_eq!(f.set_weight(9, 2), Err(ConfigError::TooManyFlows));
    assert_eq!(f.set_weight(1, 0), Err(ConfigError::ZeroWeight));

    f.dequeue().unwrap();
    let drained = f.drain_flow(2).count();
    assert_eq!(drained, 2);
    let st = f.stats();
    assert_eq!(st.offered, st.enqueued + st.rejected());
    assert_eq!(st.enqueued, st.dequeued + st.drained + f.len() as u64);
    assert_eq!(
        (
            st.rejected_flow_full,
            st.rejected_too_many_flows,
            st.rejected_buffer_full
        ),
        (1, 1, 1)
    );
}

#[test]
fn drain_flow_is_fifo_and_leaves_the_active_list() {
    let mut f = FlowDrr::new(&cfg(8, 64, 64)).unwrap();
    for i in 0..5u32 {
        f.enqueue('a', i, 1500).unwrap();
        f.enqueue('b', 100 + i, 1500).unwrap();
        f.enqueue('c', 200 + i, 1500).unwrap();
    }
    assert_eq!(f.active_flows(), 3);
    let flushed: Vec<_> = f.drain_flow('b').collect();
    assert_eq!(flushed, (100..105).map(|i| (i, 1500)).collect::<Vec<_>>());
    assert_eq!(f.active_flows(), 2);
    assert_eq!(f.flow_len('b'), 0);
    assert_eq!(f.weight('b'), None);
    let rest: Vec<_> = std::iter::from_fn(|| f.dequeue()).collect();
    assert_eq!(rest.len(), 10);
    assert!(rest.iter().all(|&(k, _, _)| k != 'b'));
    // Per-flow FIFO order survives the interleaving.
    let a: Vec<_> = rest.iter().filter(|x| x.0 == 'a').map(|x| x.1).collect();
    assert_eq!(a, vec![0, 1, 2, 3, 4]);
}

#[test]
fn partially_consumed_drain_drops_the_rest() {
    let mut f = FlowDrr::new(&cfg(4, 16, 16)).unwrap();
    for i in 0..6u32 {
        f.enqueue(1u16, i, 10).unwrap();
    }
    let first: Vec<_> = f.drain_flow(1).take(2).collect();
    assert_eq!(first, vec![(0, 10), (1, 10)]);
    assert!(f.is_empty());
    assert_eq!(f.stats().drained, 6);
    // Every packet slot is free again.
    for i in 0..16u32 {
        f.enqueue(2, i, 10).unwrap();
    }
}

#[test]
fn unpinned_flows_are_forgotten_when_idle_pinned_flows_are_not() {
    let mut f = FlowDrr::new(&cfg(2, 16, 16)).unwrap();
    f.set_weight(1u32, 5).unwrap();
    f.enqueue(1, (), 10).unwrap();
    f.enqueue(2, (), 10).unwrap();
    while f.dequeue().is_some() {}
    assert_eq!(f.flows(), 1);
    assert_eq!(f.weight(1), Some(5));
    assert_eq!(f.weight(2), None);
    // The freed slot is reusable.
    f.enqueue(3, (), 10).unwrap();
    assert_eq!(f.flows(), 2);
}

#[test]
fn tiny_quantum_huge_packets_terminate_quickly() {
    let mut f = FlowDrr::new(&FlowDrrConfig {
        base_quantum: 1,
        max_flows: 4,
        max_packets: 16,
        max_packets_per_flow: 16,
    })
    .unwrap();
    f.enqueue(0u8, 0, u32::MAX).unwrap();
    f.enqueue(1u8, 1, u32::MAX - 1).unwrap();
    f.set_weight(1, 2).unwrap();
    // Flow 1 needs about half as many rounds: it goes first.
    assert_eq!(f.dequeue().map(|x| x.0), Some(1));
    assert_eq!(f.dequeue().map(|x| x.0), Some(0));
    assert_eq!(f.dequeue(), None);
}
