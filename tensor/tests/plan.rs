//! Path sets, slice counts and the offload decision (draft §3.3).

use proptest::prelude::*;
use tensor::plan::{
    in_network_bytes_per_node, offload_decision, plan_message, ring_allreduce_bytes_per_node,
    MessageInput, OffloadConfig, OffloadReason, PathInput, PlanConfig, PlanConfigError, SlicePlan,
    MAX_SLICES, NO_PATH,
};
use tensor::{SemanticFeatures, TensorType, HORIZONS};

const MIB: u64 = 1 << 20;

fn path(id: u8, latency_us: u64, gbps: f64) -> PathInput {
    PathInput {
        id,
        port: id,
        latency_ns: latency_us * 1_000,
        capacity_bps: 100e9,
        available_bps: [(gbps * 1e9) as f32; HORIZONS],
        usable: true,
    }
}

fn msg(tensor_type: TensorType, bytes: u64) -> MessageInput {
    MessageInput {
        bytes,
        tensor: SemanticFeatures {
            tensor_type,
            gradient_sync: tensor_type == TensorType::Gradient,
            ..SemanticFeatures::default()
        },
        node_weight: 1,
        node_backlog_probability: 0.0,
    }
}

fn used(plan: &SlicePlan) -> Vec<u8> {
    plan.paths[..plan.slices as usize].to_vec()
}

#[test]
fn defaults_are_valid() {
    PlanConfig::default().validate().unwrap();
    OffloadConfig::default().validate().unwrap();
}

#[test]
fn bad_configs_are_refused() {
    let bad = PlanConfig {
        min_slice_bytes: 0,
        ..PlanConfig::default()
    };
    assert_eq!(bad.validate(), Err(PlanConfigError::ZeroMinSlice));
    let bad = PlanConfig {
        slice_cost_ns: f64::NAN,
        ..PlanConfig::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(PlanConfigError::BadSliceCost(_))
    ));
    let bad = PlanConfig {
        backlog_discount: 1.5,
        ..PlanConfig::default()
    };
    assert_eq!(
        bad.validate(),
        Err(PlanConfigError::BadBacklogDiscount(1.5))
    );
    let bad = PlanConfig {
        min_available_bps: -1.0,
        ..PlanConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = OffloadConfig {
        congestion_threshold: 2.0,
        ..OffloadConfig::default()
    };
    assert_eq!(
        bad.validate(),
        Err(PlanConfigError::BadCongestionThreshold(2.0))
    );
    assert!(!format!("{}", PlanConfigError::ZeroMinSlice).is_empty());
}

#[test]
fn activations_take_the_fastest_single_path() {
    let paths = [path(0, 20, 100.0), path(1, 5, 100.0), path(2, 10, 100.0)];
    let plan = plan_message(
        &paths,
        &msg(TensorType::Activation, 64 * MIB),
        &PlanConfig::default(),
    );
    assert_eq!(plan.slices, 1);
    assert_eq!(used(&plan), vec![1]);
    assert_eq!(plan.slice_bytes, 64 * MIB);
    assert!(plan.paths[1..].iter().all(|&p| p == NO_PATH));
}

#[test]
fn small_gradients_are_not_sliced() {
    let paths = [path(0, 10, 100.0), path(1, 10, 100.0)];
    let plan = plan_message(
        &paths,
        &msg(TensorType::Gradient, MIB + 1),
        &PlanConfig::default(),
    );
    assert_eq!(plan.slices, 1);
}

#[test]
fn large_gradient_uses_three_equal_paths_with_more_slices() {
    let paths = [path(0, 10, 100.0), path(1, 10, 100.0), path(2, 10, 100.0)];
    let cfg = PlanConfig::default();
    let plan = plan_message(&paths, &msg(TensorType::Gradient, 64 * MIB), &cfg);
    assert_eq!(plan.path_count(), 3);
    assert!(plan.slices as usize > 3, "{plan:?}");
    assert_eq!(plan.slices, 6);
    assert!(plan.slice_bytes >= cfg.min_slice_bytes);
    assert!(plan.slice_bytes * u64::from(plan.slices) >= 64 * MIB);
    for id in 0..3 {
        assert_eq!(used(&plan).iter().filter(|&&p| p == id).count(), 2);
    }
    let single = plan_message(&paths, &msg(TensorType::Activation, 64 * MIB), &cfg);
    assert!(plan.objective_ns < single.objective_ns / 2.0);
}

#[test]
fn slices_follow_unequal_bandwidth() {
    let paths = [path(0, 10, 80.0), path(1, 10, 20.0)];
    let plan = plan_message(
        &paths,
        &msg(TensorType::Parameter, 64 * MIB),
        &PlanConfig::default(),
    );
    assert_eq!(plan.slices, 8);
    let on_fast = used(&plan).iter().filter(|&&p| p == 0).count();
    assert!(on_fast >= 6, "{plan:?}");
}

#[test]
fn path_with_no_predicted_bandwidth_is_avoided() {
    let mut congested = path(1, 1, 100.0);
    congested.available_bps = [1e3; HORIZONS];
    let paths = [path(0, 10, 100.0), congested, path(2, 10, 100.0)];
    let plan = plan_message(
        &paths,
        &msg(TensorType::Gradient, 64 * MIB),
        &PlanConfig::default(),
    );
    assert!(plan.slices >= 2);
    assert!(!used(&plan).contains(&1));

    // Just above the usability floor it is usable, but still not worth it.
    let cfg = PlanConfig {
        min_available_bps: 0.0,
        ..PlanConfig::default()
    };
    let mut trickle = path(1, 1, 100.0);
    trickle.available_bps = [1e6; HORIZONS];
    let paths = [path(0, 10, 100.0), trickle, path(2, 10, 100.0)];
    let plan = plan_message(&paths, &msg(TensorType::Gradient, 64 * MIB), &cfg);
    assert!(!used(&plan).contains(&1));
}

#[test]
fn unusable_paths_are_never_chosen() {
    let mut down = path(0, 1, 100.0);
    down.usable = false;
    let paths = [down, path(1, 10, 100.0)];
    for t in TensorType::ALL {
        let plan = plan_message(&paths, &msg(t, 64 * MIB), &PlanConfig::default());
        assert_eq!(used(&plan), vec![1]);
    }
}

#[test]
fn nothing_usable_gives_an_empty_plan() {
    let mut a = path(0, 1, 100.0);
    a.usable = false;
    let mut b = path(1, 1, 100.0);
    b.available_bps = [0.0; HORIZONS];
    let mut c = path(2, 1, 100.0);
    c.available_bps = [f32::NAN; HORIZONS];
    for paths in [&[][..], &[a, b, c][..]] {
        let plan = plan_message(
            paths,
            &msg(TensorType::Gradient, 64 * MIB),
            &PlanConfig::default(),
        );
        assert_eq!(plan.slices, 0);
        assert_eq!(plan.path_count(), 0);
        assert!(plan.paths.iter().all(|&p| p == NO_PATH));
    }
}

#[test]
fn backlogged_target_gets_fewer_paths() {
    let paths = [path(0, 10, 100.0), path(1, 10, 100.0), path(2, 10, 100.0)];
    let cfg = PlanConfig {
        backlog_discount: 1.0,
        slice_cost_ns: 50_000.0,
        ..PlanConfig::default()
    };
    let mut m = msg(TensorType::Gradient, 16 * MIB);
    let idle = plan_message(&paths, &m, &cfg);
    m.node_backlog_probability = 0.95;
    let busy = plan_message(&paths, &m, &cfg);
    assert!(busy.path_count() < idle.path_count(), "{idle:?} {busy:?}");
}

#[test]
fn forecast_horizon_matters() {
    // Available now, congested from 2 ms on: a 64 MiB transfer (~5 ms on
    // one path) is planned on the later forecast and avoids the path.
    let mut fading = path(1, 1, 100.0);
    fading.available_bps = [100e9, 1e3, 1e3, 1e3, 1e3];
    let paths = [path(0, 10, 100.0), fading];
    let plan = plan_message(
        &paths,
        &msg(TensorType::Gradient, 64 * MIB),
        &PlanConfig::default(),
    );
    assert_eq!(used(&plan), vec![0]);
}

fn arb_path(id: u8) -> impl Strategy<Value = PathInput> {
    (1u64..200, 0.0f32..100.0, any::<bool>(), 0u8..10).prop_map(move |(lat, gbps, ok, z)| {
        PathInput {
            id,
            port: id,
            latency_ns: lat * 1_000,
            capacity_bps: 100e9,
            // Some paths predicted to have (nearly) nothing available.
            available_bps: [if z == 0 { 0.0 } else { gbps * 1e9 }; HORIZONS],
            usable: ok,
        }
    })
}

fn arb_paths() -> impl Strategy<Value = Vec<PathInput>> {
    (1usize..=8).prop_flat_map(|n| (0..n as u8).map(arb_path).collect::<Vec<_>>())
}

proptest! {
    #[test]
    fn plans_are_sound(
        paths in arb_paths(),
        bytes in 1u64..(256 * MIB),
        t in 0u8..4,
        backlog in 0.0f32..=1.0,
        min_slice_kib in 1u64..8192,
    ) {
        let cfg = PlanConfig { min_slice_bytes: min_slice_kib << 10, ..PlanConfig::default() };
        let m = MessageInput {
            node_backlog_probability: backlog,
            ..msg(TensorType::from_code(t).unwrap_or_default(), bytes)
        };
        let plan = plan_message(&paths, &m, &cfg);
        let good: Vec<u8> = paths
            .iter()
            .filter(|p| p.usable && p.available_bps[0] as f64 >= cfg.min_available_bps)
            .map(|p| p.id)
            .collect();
        if good.is_empty() {
            prop_assert_eq!(plan.slices, 0);
            return Ok(());
        }
        prop_assert!(plan.slices >= 1 && plan.slices as usize <= MAX_SLICES);
        for id in used(&plan) {
            prop_assert!(good.contains(&id), "chose {} from {:?}", id, good);
        }
        prop_assert!(plan.paths[plan.slices as usize..].iter().all(|&p| p == NO_PATH));
        prop_assert!(plan.slice_bytes * u64::from(plan.slices) >= bytes);
        if plan.slices > 1 {
            prop_assert!(plan.slice_bytes >= cfg.min_slice_bytes);
            prop_assert!(matches!(m.tensor.tensor_type, TensorType::Gradient | TensorType::Parameter));
            prop_assert!(plan.slices as usize >= plan.path_count());
        }
        // Never worse than the best single path under the same objective.
        let w = 1.0 - f64::from(backlog) * f64::from(cfg.backlog_discount);
        let best_single = paths
            .iter()
            .filter(|p| good.contains(&p.id))
            .map(|p| p.latency_ns as f64 + bytes as f64 * 8e9 / p.available_bps[0] as f64)
            .fold(f64::INFINITY, f64::min);
        prop_assert!(plan.objective_ns <= w * best_single * (1.0 + 1e-9) + 1e-6);
    }
}

fn gradient(bytes: u64) -> MessageInput {
    msg(TensorType::Gradient, bytes)
}

fn reducer() -> OffloadConfig {
    OffloadConfig {
        reducer_available: true,
        ..OffloadConfig::default()
    }
}

#[test]
fn traffic_formulas() {
    assert_eq!(ring_allreduce_bytes_per_node(1000, 1), 0);
    assert_eq!(ring_allreduce_bytes_per_node(1000, 2), 1000);
    assert_eq!(ring_allreduce_bytes_per_node(1000, 4), 1500);
    assert_eq!(ring_allreduce_bytes_per_node(u64::MAX, 1000), u64::MAX);
    assert_eq!(in_network_bytes_per_node(1000), 1000);
}

#[test]
fn offload_reasons() {
    let cfg = reducer();
    let d = |m: &MessageInput, risk: f32, n: u16, cfg: &OffloadConfig| {
        let d = offload_decision(m, risk, n, cfg);
        (d.offload, d.reason)
    };

    let act = msg(TensorType::Activation, 64 * MIB);
    assert_eq!(d(&act, 0.9, 8, &cfg), (false, OffloadReason::NotAllReduce));
    let mut not_sync = gradient(64 * MIB);
    not_sync.tensor.gradient_sync = false;
    assert_eq!(
        d(&not_sync, 0.9, 8, &cfg),
        (false, OffloadReason::NotAllReduce)
    );

    assert_eq!(
        d(&gradient(64 * MIB), 0.9, 8, &OffloadConfig::default()),
        (false, OffloadReason::NoReducer)
    );
    assert_eq!(
        d(&gradient(64 * MIB), 0.9, 1, &cfg),
        (false, OffloadReason::FewParticipants)
    );
    assert_eq!(
        d(&gradient(MIB / 2), 0.9, 8, &cfg),
        (false, OffloadReason::TooSmall)
    );
    assert_eq!(
        d(&gradient(2 * MIB), 0.6, 2, &cfg),
        (true, OffloadReason::Congestion)
    );
    // 16 MiB among 4: ring 24 MiB per node, in-network 16: 8 MiB saved.
    assert_eq!(
        d(&gradient(16 * MIB), 0.1, 4, &cfg),
        (true, OffloadReason::TrafficSaving)
    );
    // Two nodes save nothing; 4 MiB among 4 saves 2 MiB < 4 MiB.
    assert_eq!(
        d(&gradient(64 * MIB), 0.1, 2, &cfg),
        (false, OffloadReason::NotWorthIt)
    );
    assert_eq!(
        d(&gradient(4 * MIB), 0.1, 4, &cfg),
        (false, OffloadReason::NotWorthIt)
    );
    // An unknown risk is not congestion.
    assert_eq!(
        d(&gradient(4 * MIB), f32::NAN, 4, &cfg),
        (false, OffloadReason::NotWorthIt)
    );
}
