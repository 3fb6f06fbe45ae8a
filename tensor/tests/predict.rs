//! The predictor core on generated training traces: it must beat the
//! last-value baseline, stay within physical bounds, say nothing about idle
//! ports, survive gaps in time, and find the iteration period.

use tensor::feature::TensorType;
use tensor::predict::{evaluate, PredictError, PredictorConfig, PredictorCore, MAX_LOAD_FACTOR};
use tensor::prediction::{Predictions, MAX_PREDICTED_PORTS};
use tensor::trace::{generate, nominal_period_ns, TraceConfig, BULK_FRAME_BYTES};
use tensor::{FeatureRecord, QpState, HORIZONS};

fn short(seed: u64, duration_ns: u64) -> TraceConfig {
    TraceConfig {
        seed,
        duration_ns,
        ..TraceConfig::default()
    }
}

/// Replays `records` bin by bin, calling `check` on every snapshot.
fn replay(
    core: &mut PredictorCore,
    records: &[FeatureRecord],
    mut check: impl FnMut(&PredictorCore, &Predictions),
) {
    for r in records {
        while let Some(close) = core.next_close_ns().filter(|c| *c <= r.t_ns) {
            if let Some(snap) = core.tick(close) {
                check(core, &snap);
            }
        }
        core.observe(r);
    }
}

#[test]
fn model_beats_last_value_by_30_percent_at_1ms() {
    let cfg = PredictorConfig::default();
    for seed in [1u64, 17, 4242] {
        let records = generate(&short(seed, 1_000_000_000));
        let a = evaluate(&records, &cfg, 1);
        assert!(a.samples > 9_000, "seed {seed}: {a:?}");
        assert!(
            a.mae_model_bps <= 0.7 * a.mae_last_value_bps,
            "seed {seed}: model {} vs last value {}",
            a.mae_model_bps,
            a.mae_last_value_bps
        );
        assert!(a.congestion_events > 0);
        assert!(
            a.congestion_recall > a.congestion_recall_last_value,
            "{a:?}"
        );
    }
}

#[test]
fn model_beats_last_value_at_every_horizon() {
    let cfg = PredictorConfig::default();
    let records = generate(&short(5, 300_000_000));
    for h in 1..=5 {
        let a = evaluate(&records, &cfg, h);
        assert!(a.mae_model_bps < a.mae_last_value_bps, "h {h}: {a:?}");
    }
    assert_eq!(evaluate(&records, &cfg, 0).samples, 0);
    assert_eq!(evaluate(&records, &cfg, 6).samples, 0);
}

#[test]
fn predictions_are_finite_and_physical() {
    let cfg = PredictorConfig::default();
    let records = generate(&short(3, 200_000_000));
    let mut core = PredictorCore::new(cfg).unwrap();
    let mut snapshots = 0u32;
    replay(&mut core, &records, |_, s| {
        snapshots += 1;
        for (p, f) in s.ports.iter().enumerate() {
            let cap = cfg.port_capacity_bps[p] as f32;
            for h in 0..HORIZONS {
                let load = f.load_bps[h];
                assert!(load.is_finite() && load >= 0.0, "load {load}");
                assert!(load <= MAX_LOAD_FACTOR as f32 * cap * 1.0001);
                let q = f.queue_depth[h];
                assert!(q.is_finite() && (0.0..=1.0e7).contains(&q), "queue {q}");
                let r = f.congestion_risk[h];
                assert!((0.0..=1.0).contains(&r), "risk {r}");
            }
        }
        for (i, path) in s.paths.iter().enumerate() {
            for v in path.available_bps {
                assert!(v.is_finite() && v >= 0.0);
                assert!(v <= cfg.path_capacity_bps[i] as f32 * 1.0001);
            }
        }
        for n in s.nodes.iter() {
            assert!((0.0..=1.0).contains(&n.backlog_probability));
        }
        assert!((0.0..=1.0).contains(&s.bursts.confidence));
        if s.bursts.period_ns > 0 {
            assert!(s.bursts.next_burst_ns > s.made_at_ns);
        }
    });
    assert!(snapshots > 1_900);
    let acc = core.accuracy();
    for h in 0..HORIZONS {
        assert!(acc.model[h].count > 1_000);
        assert!(acc.model[h].mae.is_finite());
    }
    assert!(acc.model[0].mae < acc.last_value[0].mae);
}

#[test]
fn idle_port_predicts_nothing() {
    let cfg = PredictorConfig::default();
    // Traffic on ports 0..4 only.
    let records = generate(&short(9, 100_000_000));
    let mut core = PredictorCore::new(cfg).unwrap();
    let mut checked = 0u32;
    replay(&mut core, &records, |_, s| {
        for p in 4..MAX_PREDICTED_PORTS {
            let f = &s.ports[p];
            for h in 0..HORIZONS {
                assert!(f.load_bps[h].abs() < 1.0e6, "port {p}: {}", f.load_bps[h]);
                assert_eq!(f.queue_depth[h], 0.0);
                assert!(f.congestion_risk[h] < 0.01);
            }
            let path = &s.paths[p];
            for v in path.available_bps {
                assert!(v > 0.99 * cfg.path_capacity_bps[p] as f32);
            }
        }
        for n in 4..s.nodes.len() {
            assert_eq!(s.nodes[n].backlog_probability, 0.0);
        }
        checked += 1;
    });
    assert!(checked > 900);
}

#[test]
fn gaps_in_time_are_handled() {
    let cfg = PredictorConfig::default();
    let records = generate(&short(4, 50_000_000));
    let mut core = PredictorCore::new(cfg).unwrap();
    assert_eq!(core.tick(123), None, "the first tick only starts the clock");
    replay(&mut core, &records, |_, _| {});
    let last = records.last().unwrap().t_ns;
    // Within the open bin: nothing closes.
    let open_end = core.next_close_ns().unwrap();
    assert_eq!(core.tick(open_end - 1), None);
    // Ten seconds of silence: bounded catch-up, the rest skipped.
    let later = last + 10_000_000_000;
    let snap = core.tick(later).expect("bins closed");
    assert!(core.skipped_bins() > 90_000);
    assert!(core.next_close_ns().unwrap() > later);
    assert!(core.next_close_ns().unwrap() <= later + cfg.bin_ns);
    for f in snap.ports.iter() {
        for h in 0..HORIZONS {
            assert!(f.load_bps[h] < 1.0e9, "after silence: {}", f.load_bps[h]);
            assert!(f.congestion_risk[h] < 0.05);
        }
    }
    assert_eq!(snap.bursts.period_ns, 0, "no period after a long silence");
    // Time going backwards is ignored, and traffic resumes normally.
    assert_eq!(core.tick(last), None);
    let resumed: Vec<FeatureRecord> = generate(&short(4, 50_000_000))
        .into_iter()
        .map(|mut r| {
            r.t_ns += later;
            r
        })
        .collect();
    let mut snapshots = 0;
    replay(&mut core, &resumed, |_, s| {
        snapshots += 1;
        assert!(s.ports[0].load_bps.iter().all(|v| v.is_finite()));
    });
    assert!(snapshots > 400);
    assert!(core.snapshot().bursts.period_ns > 0);
}

#[test]
fn burst_period_within_5_percent() {
    let cfg = PredictorConfig::default();
    // Constant period.
    let trace = TraceConfig {
        period_changes: 0,
        ..short(6, 200_000_000)
    };
    let mut core = PredictorCore::new(cfg).unwrap();
    replay(&mut core, &generate(&trace), |_, _| {});
    let b = core.snapshot().bursts;
    let want = trace.iteration_period_ns as f64;
    assert!(
        (b.period_ns as f64 - want).abs() <= 0.05 * want,
        "period {} vs {want}",
        b.period_ns
    );
    assert!(b.confidence >= 0.5);
    // The default trace changes period half-way: the end must follow.
    let trace = TraceConfig::default();
    let mut core = PredictorCore::new(cfg).unwrap();
    replay(&mut core, &generate(&trace), |_, _| {});
    let b = core.snapshot().bursts;
    let want = nominal_period_ns(&trace, trace.duration_ns - 1) as f64;
    assert!(
        (b.period_ns as f64 - want).abs() <= 0.05 * want,
        "period {} vs {want}",
        b.period_ns
    );
}

#[test]
fn invalid_configs_are_refused() {
    let ok = PredictorConfig::default();
    let bad = |f: &dyn Fn(&mut PredictorConfig)| {
        let mut c = ok;
        f(&mut c);
        PredictorCore::new(c).err()
    };
    assert_eq!(bad(&|c| c.bin_ns = 0), Some(PredictError::BinWidth));
    assert_eq!(bad(&|c| c.bin_ns = 300_000), Some(PredictError::BinWidth));
    assert_eq!(
        bad(&|c| c.port_capacity_bps[2] = f64::NAN),
        Some(PredictError::PortCapacity(2))
    );
    assert_eq!(
        bad(&|c| c.path_port[1] = Some(8)),
        Some(PredictError::PathPort(1))
    );
    assert_eq!(
        bad(&|c| c.path_capacity_bps[0] = -1.0),
        Some(PredictError::PathCapacity(0))
    );
    assert_eq!(
        bad(&|c| c.node_capacity_bps[63] = f64::INFINITY),
        Some(PredictError::NodeCapacity(63))
    );
    assert_eq!(
        bad(&|c| c.queue_mark_packets = 0.0),
        Some(PredictError::QueueMark)
    );
    assert_eq!(bad(&|c| c.history_bins = 20), Some(PredictError::History));
    assert_eq!(
        bad(&|c| c.max_catchup_bins = 0),
        Some(PredictError::Catchup)
    );
    assert!(matches!(
        bad(&|c| c.rls_lambda = 1.5),
        Some(PredictError::Model(_))
    ));
    assert!(PredictorCore::new(ok).is_ok());
    assert_eq!(evaluate(&[], &ok, 1).samples, 0);
}

#[test]
fn traces_look_like_worker_records() {
    let cfg = short(8, 100_000_000);
    let a = generate(&cfg);
    assert_eq!(a, generate(&cfg), "deterministic");
    assert_ne!(a, generate(&short(9, 100_000_000)));
    assert!(a.windows(2).all(|w| w[0].t_ns <= w[1].t_ns), "sorted");
    let mut gradients = 0;
    let mut small = 0;
    for r in &a {
        assert!(r.t_ns < cfg.duration_ns);
        assert!(r.packets >= 1 && r.packets <= 32);
        assert!(r.bytes <= 32 * 4200);
        assert!(r.egress_port < cfg.ports);
        assert!(r.node < cfg.nodes);
        match r.semantic.tensor_type {
            TensorType::Gradient => {
                gradients += 1;
                assert!(r.semantic.gradient_sync);
                assert!(matches!(r.state, QpState::LargeFlow | QpState::Draining));
                assert_eq!(r.bytes % BULK_FRAME_BYTES, 0);
            }
            _ => {
                if r.state == QpState::SmallFlow {
                    small += 1;
                    assert!(r.packets <= 2);
                }
            }
        }
    }
    assert!(gradients > 1_000 && small > 100, "{gradients} {small}");
    // The bursts congest: some records find a queue.
    assert!(a.iter().any(|r| r.queue_depth > 0));
}
