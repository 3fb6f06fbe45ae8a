//! `ControlState::apply`: what each message changes, ageing, policy upsert
//! versus replace, table limits, JSON.

mod common;

use common::*;
use control::state::MAX_FWD_ENTRIES;
use control::*;

const MS: u64 = 1_000_000;

#[test]
fn path_state_is_normalised_and_replaces_the_previous() {
    let mut s = ControlState::default();
    assert_eq!(
        s.apply(PROBER, &path_state(1, 120.0), MONO),
        Applied::Path(PathId(1))
    );
    let p = *s.path(PathId(1), MONO).fresh().expect("fresh");
    assert_eq!(p.latency_us, Some(120.0));
    assert_eq!(p.jitter_us, Some(10.0), "0.01 ms = 10 µs");
    assert_eq!(p.avail_bw_bps, Some(9.5e9));
    assert_eq!(p.loss_ratio, Some(0.005), "0.5 % = 0.005");
    // A later PATH_STATE is a full snapshot: unreported metrics become None.
    let only_latency: Message = PathState::new(
        PathId(1),
        vec![Metric::new(
            MetricType::PathLatency,
            Unit::Milliseconds,
            2.0,
        )],
    )
    .into();
    s.apply(PROBER, &only_latency, MONO + MS);
    let p = *s.path(PathId(1), MONO + MS).fresh().expect("fresh");
    assert_eq!(
        p,
        PathMetrics {
            latency_us: Some(2000.0),
            ..PathMetrics::default()
        }
    );
}

#[test]
fn entries_age_into_stale() {
    let mut s = ControlState::default();
    s.apply(AGENT, &node_state(7), MONO);
    s.apply(AGENT, &capability(7), MONO);
    s.apply(PROBER, &path_state(1, 1.0), MONO);
    let n = s.node(NodeId(7), MONO).fresh().copied().expect("fresh");
    assert_eq!(n.gpu_util, Some(0.875));
    assert_eq!(n.est_ttft_us, Some(35_000.0));
    assert_eq!(n.queue_len, Some(12.0));
    assert!(s.node(NodeId(7), MONO + 1000 * MS).is_fresh());
    assert_eq!(
        s.node(NodeId(7), MONO + 1500 * MS),
        Freshness::Stale { age_ns: 1500 * MS }
    );
    assert!(matches!(
        s.path(PathId(1), MONO + 1001 * MS),
        Freshness::Stale { .. }
    ));
    assert_eq!(s.node(NodeId(8), MONO), Freshness::Unknown);
    // Capabilities age on their own, longer clock (60 s by default).
    assert!(s.capability(NodeId(7), MONO + 30_000 * MS).is_fresh());
    assert!(!s.capability(NodeId(7), MONO + 61_000 * MS).is_fresh());
    // A clock that went backwards reads as age 0, not a panic.
    assert!(s.path(PathId(1), 0).is_fresh());
}

#[test]
fn capability_remembers_who_announced_it() {
    let mut s = ControlState::default();
    assert_eq!(
        s.apply(AGENT, &capability(7), MONO),
        Applied::Capability {
            node: NodeId(7),
            previous_announcer: None
        }
    );
    assert_eq!(
        s.apply(AGENT, &capability(7), MONO),
        Applied::Capability {
            node: NodeId(7),
            previous_announcer: None
        }
    );
    assert_eq!(
        s.apply(ORCH, &capability(7), MONO),
        Applied::Capability {
            node: NodeId(7),
            previous_announcer: Some(AGENT)
        }
    );
    let (_, e) = s.capability_entries().next().expect("one");
    assert_eq!(e.from_peer, ORCH);
    assert_eq!(e.value.accelerator, "A100");
}

#[test]
fn policy_upserts_and_replaces() {
    let mut s = ControlState::new(Thresholds {
        max_state_age_ns: 250 * MS,
        ..Thresholds::default()
    });
    let Applied::Policy(c) = s.apply(ORCH, &policy(), 0) else {
        panic!("policy change expected")
    };
    assert_eq!(
        c,
        PolicyChange {
            replaced: true,
            path_defs: 2,
            fwd_entries: 2,
            class_weights: 1,
            thresholds: 1,
            dropped_over_limit: 0
        }
    );
    // Upsert: path 1 renamed, path 3 added, the rest kept.
    let mut renamed = path_def(1, 5);
    renamed.name = "renamed".into();
    let up = Policy {
        path_defs: vec![renamed, path_def(3, 2)],
        fwd_entries: vec![fwd("10.0.0.0/8", &[3])],
        thresholds: vec![Threshold {
            id: ThresholdId::MaxStateAgeMs,
            value: 400.0,
        }],
        ..Policy::default()
    };
    s.apply(ORCH, &up.into(), 0);
    let names: Vec<_> = s.path_defs().map(|d| (d.id.0, d.name.clone())).collect();
    assert_eq!(
        names,
        vec![
            (1, "renamed".into()),
            (2, "path-2".into()),
            (3, "path-3".into())
        ]
    );
    assert_eq!(s.fwd_entries().count(), 2);
    let ten: IpPrefix = "10.0.0.0/8".parse().expect("valid");
    assert_eq!(
        s.fwd_entries()
            .find(|(p, _)| **p == ten)
            .map(|(_, ids)| ids.to_vec()),
        Some(vec![PathId(3)])
    );
    assert_eq!(s.thresholds().max_state_age_ns, 400 * MS);
    assert_eq!(s.thresholds().jitter_weight, 1.5);
    // Replace: everything goes, thresholds back to the configured base.
    let replace = Policy {
        replace: true,
        path_defs: vec![path_def(4, 0)],
        ..Policy::default()
    };
    s.apply(ORCH, &replace.into(), 0);
    assert_eq!(s.path_defs().count(), 1);
    assert_eq!(s.fwd_entries().count(), 0);
    assert_eq!(s.class_weights().count(), 0);
    assert_eq!(s.thresholds().max_state_age_ns, 250 * MS);
    assert_eq!(s.thresholds().jitter_weight, 2.0);
}

#[test]
fn forwarding_table_is_bounded() {
    let mut s = ControlState::default();
    let mut dropped = 0;
    for chunk in 0..5u32 {
        let p = Policy {
            fwd_entries: (0..250u32)
                .map(|i| {
                    let n = chunk * 250 + i;
                    fwd(&format!("10.{}.{}.0/24", n / 256, n % 256), &[1])
                })
                .collect(),
            ..Policy::default()
        };
        if let Applied::Policy(c) = s.apply(ORCH, &p.into(), 0) {
            dropped += c.dropped_over_limit;
        }
    }
    assert_eq!(s.fwd_entries().count(), MAX_FWD_ENTRIES);
    assert_eq!(dropped, 1250 - MAX_FWD_ENTRIES);
    // Updating an existing entry still works when full.
    let p = Policy {
        fwd_entries: vec![fwd("10.0.0.0/24", &[2])],
        ..Policy::default()
    };
    assert!(matches!(
        s.apply(ORCH, &p.into(), 0),
        Applied::Policy(PolicyChange {
            fwd_entries: 1,
            dropped_over_limit: 0,
            ..
        })
    ));
}

#[test]
fn which_changes_need_a_new_view() {
    let mut s = ControlState::default();
    assert!(s.apply(PROBER, &path_state(1, 1.0), 0).affects_view());
    assert!(s.apply(ORCH, &policy(), 0).affects_view());
    // Token steering weighs node load and capabilities per new flow.
    assert!(s.apply(AGENT, &node_state(7), 0).affects_view());
    assert!(s.apply(AGENT, &capability(7), 0).affects_view());
    assert_eq!(
        s.apply(VIEWER, &query(QueryWhat::State), 0),
        Applied::Nothing
    );
}

#[test]
fn state_json_shows_freshness() {
    let mut s = ControlState::default();
    s.apply(ORCH, &policy(), 0);
    s.apply(PROBER, &path_state(1, 120.0), 0);
    s.apply(AGENT, &node_state(7), 0);
    s.apply(AGENT, &capability(7), 0);
    let j = s.to_json(2000 * MS);
    assert_eq!(j["paths"][0]["freshness"], "stale");
    assert_eq!(j["paths"][0]["latency_us"], 120.0);
    assert_eq!(j["paths"][0]["age_ms"], 2000.0);
    assert_eq!(j["nodes"][0]["id"], 7);
    assert_eq!(j["capabilities"][0]["freshness"], "fresh");
    assert_eq!(j["capabilities"][0]["task_types"][1], "complex_reasoning");
    assert_eq!(
        j["policy"]["path_defs"][0]["next_hop_mac"],
        "02:00:00:00:00:01"
    );
    assert_eq!(j["policy"]["fwd_entries"][0]["prefix"], "10.0.0.0/8");
    assert_eq!(j["policy"]["class_weights"]["3"], 10);
    assert_eq!(j["policy"]["thresholds"]["jitter_weight"], 1.5);
    assert_eq!(j["policy"]["thresholds"]["max_state_age_ms"], 1000.0);
}

#[test]
fn view_carries_node_state_and_capabilities_with_their_age() {
    use control::ids::NodeId;
    let mut s = ControlState::default();
    s.apply(AGENT, &node_state(7), 0);
    s.apply(AGENT, &capability(7), 0);
    let max_age = s.thresholds().max_state_age_ns;
    let v = s.view(1, 0);
    assert_eq!(v.node_counts(), (1, 1));
    assert!(v.node_state(NodeId(7), max_age).fresh().is_some());
    assert!(matches!(
        v.node_state(NodeId(7), max_age + 1),
        control::timed::Freshness::Stale { .. }
    ));
    assert_eq!(
        v.node_state(NodeId(8), 0),
        control::timed::Freshness::Unknown
    );
    let cap = v.capability(NodeId(7), 0).fresh().copied().unwrap();
    assert!(cap
        .task_types
        .contains(control::task_types::TaskTypes::COMPLEX_REASONING));
}
