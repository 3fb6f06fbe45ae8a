//! `DataplaneView::choose_path`: longest prefix, freshness, loss, cost,
//! ties, fallback, IPv6.

mod common;

use std::net::IpAddr;

use common::*;
use control::*;

const MS: u64 = 1_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("valid address")
}

/// A path measurement: latency and jitter in µs, loss as a ratio.
fn measure(path: u16, latency_us: f64, jitter_us: Option<f64>, loss: Option<f64>) -> Message {
    let mut m = vec![Metric::new(
        MetricType::PathLatency,
        Unit::Microseconds,
        latency_us,
    )];
    if let Some(j) = jitter_us {
        m.push(Metric::new(MetricType::PathJitter, Unit::Microseconds, j));
    }
    if let Some(l) = loss {
        m.push(Metric::new(MetricType::PathLoss, Unit::Ratio, l));
    }
    PathState::new(PathId(path), m).into()
}

/// Paths 1..=4 defined, the given forwarding entries and thresholds.
fn state(entries: &[(&str, &[u16])], thresholds: &[(ThresholdId, f64)]) -> ControlState {
    let mut s = ControlState::default();
    let p = Policy {
        replace: true,
        path_defs: (1..=4).map(|i| path_def(i, i)).collect(),
        fwd_entries: entries.iter().map(|(p, ids)| fwd(p, ids)).collect(),
        class_weights: vec![],
        thresholds: thresholds
            .iter()
            .map(|&(id, value)| Threshold { id, value })
            .collect(),
    };
    s.apply(ORCH, &p.into(), 0);
    s
}

fn chosen(view: &DataplaneView, dst: &str, now: u64) -> Option<(u16, ChoiceReason)> {
    view.choose_path(ip(dst), now)
        .map(|c| (c.path.id.0, c.reason))
}

#[test]
fn longest_prefix_wins_and_no_match_is_none() {
    let mut s = state(
        &[
            ("10.0.0.0/8", &[1]),
            ("10.1.0.0/16", &[2]),
            ("10.1.2.0/24", &[3]),
            ("0.0.0.0/0", &[4]),
        ],
        &[],
    );
    for p in 1..=4 {
        s.apply(PROBER, &measure(p, 100.0, None, None), MONO);
    }
    let v = s.view(1, MONO);
    assert_eq!(chosen(&v, "10.1.2.3", MONO), Some((3, ChoiceReason::Best)));
    assert_eq!(chosen(&v, "10.1.3.3", MONO), Some((2, ChoiceReason::Best)));
    assert_eq!(chosen(&v, "10.9.9.9", MONO), Some((1, ChoiceReason::Best)));
    assert_eq!(chosen(&v, "192.0.2.1", MONO), Some((4, ChoiceReason::Best)));
    let c = v.choose_path(ip("10.1.2.3"), MONO).expect("matches");
    assert_eq!(c.prefix.to_string(), "10.1.2.0/24");
    let no_default = state(&[("10.0.0.0/8", &[1])], &[]).view(1, MONO);
    assert_eq!(chosen(&no_default, "11.0.0.1", MONO), None);
    // A v4 destination never matches a v6 entry, nor the reverse.
    let v6_only = state(&[("::/0", &[1])], &[]).view(1, MONO);
    assert_eq!(chosen(&v6_only, "10.0.0.1", MONO), None);
    assert_eq!(chosen(&no_default, "::ffff:10.0.0.1", MONO), None);
}

#[test]
fn lowest_latency_plus_weighted_jitter() {
    let entries: &[(&str, &[u16])] = &[("10.0.0.0/8", &[1, 2])];
    let mut s = state(entries, &[]);
    // Default jitter weight 2: path 1 = 100 + 2*10 = 120, path 2 = 90 + 2*20 = 130.
    s.apply(PROBER, &measure(1, 100.0, Some(10.0), None), MONO);
    s.apply(PROBER, &measure(2, 90.0, Some(20.0), None), MONO);
    let v = s.view(1, MONO);
    let c = v.choose_path(ip("10.0.0.1"), MONO).expect("matches");
    assert_eq!(
        (c.path.id, c.reason, c.cost),
        (PathId(1), ChoiceReason::Best, Some(120.0))
    );
    // Jitter weight 0.5: path 1 = 105, path 2 = 100.
    let mut s2 = state(entries, &[(ThresholdId::JitterWeight, 0.5)]);
    s2.apply(PROBER, &measure(1, 100.0, Some(10.0), None), MONO);
    s2.apply(PROBER, &measure(2, 90.0, Some(20.0), None), MONO);
    assert_eq!(
        chosen(&s2.view(1, MONO), "10.0.0.1", MONO),
        Some((2, ChoiceReason::Best))
    );
    // Latency in ms is normalised: 0.05 ms = 50 µs beats 100 µs.
    let ms: Message = PathState::new(
        PathId(2),
        vec![Metric::new(
            MetricType::PathLatency,
            Unit::Milliseconds,
            0.05,
        )],
    )
    .into();
    s.apply(PROBER, &ms, MONO);
    let c = s
        .view(2, MONO)
        .choose_path(ip("10.0.0.1"), MONO)
        .map(|c| (c.path.id.0, c.cost));
    assert_eq!(c, Some((2, Some(50.0))));
}

#[test]
fn ties_go_to_the_first_listed() {
    let mut s = state(&[("10.0.0.0/8", &[3, 2, 1])], &[]);
    for p in 1..=3 {
        s.apply(PROBER, &measure(p, 100.0, Some(5.0), None), MONO);
    }
    assert_eq!(
        chosen(&s.view(1, MONO), "10.0.0.1", MONO),
        Some((3, ChoiceReason::Best))
    );
}

#[test]
fn stale_paths_are_skipped() {
    let mut s = state(&[("10.0.0.0/8", &[1, 2])], &[]);
    s.apply(PROBER, &measure(1, 10.0, None, None), 0);
    s.apply(PROBER, &measure(2, 500.0, None, None), 900 * MS);
    let v = s.view(1, 900 * MS);
    // At 1000 ms path 1 is exactly max age old: still fresh.
    assert_eq!(
        chosen(&v, "10.0.0.1", 1000 * MS),
        Some((1, ChoiceReason::Best))
    );
    // One ns later it is stale and path 2 wins despite its latency.
    assert_eq!(
        chosen(&v, "10.0.0.1", 1000 * MS + 1),
        Some((2, ChoiceReason::Best))
    );
    assert!(matches!(
        v.path_state(PathId(1), 1000 * MS + 1),
        Freshness::Stale { .. }
    ));
    assert!(matches!(v.path_state(PathId(3), 0), Freshness::Unknown));
    // A longer max_state_age (threshold 1) keeps it fresh.
    s.apply(
        ORCH,
        &Policy {
            thresholds: vec![Threshold {
                id: ThresholdId::MaxStateAgeMs,
                value: 5000.0,
            }],
            ..Policy::default()
        }
        .into(),
        0,
    );
    let v = s.view(2, 0);
    assert_eq!(
        chosen(&v, "10.0.0.1", 4000 * MS),
        Some((1, ChoiceReason::Best))
    );
}

#[test]
fn lossy_paths_are_skipped_per_threshold() {
    let entries: &[(&str, &[u16])] = &[("10.0.0.0/8", &[1, 2])];
    let mut s = state(entries, &[]);
    s.apply(PROBER, &measure(1, 10.0, None, Some(0.10)), MONO);
    s.apply(PROBER, &measure(2, 50.0, None, Some(0.05)), MONO);
    // 0.10 > 0.05 (default): skipped; 0.05 is not above the limit.
    assert_eq!(
        chosen(&s.view(1, MONO), "10.0.0.1", MONO),
        Some((2, ChoiceReason::Best))
    );
    let mut s2 = state(entries, &[(ThresholdId::MaxPathLossRatio, 0.2)]);
    s2.apply(PROBER, &measure(1, 10.0, None, Some(0.10)), MONO);
    s2.apply(PROBER, &measure(2, 50.0, None, Some(0.05)), MONO);
    assert_eq!(
        chosen(&s2.view(1, MONO), "10.0.0.1", MONO),
        Some((1, ChoiceReason::Best))
    );
}

#[test]
fn fallback_to_the_first_candidate() {
    let entries: &[(&str, &[u16])] = &[("10.0.0.0/8", &[2, 1])];
    // No state at all.
    let s = state(entries, &[]);
    let v = s.view(1, MONO);
    let c = v.choose_path(ip("10.0.0.1"), MONO).expect("matches");
    assert_eq!(
        (c.path.id, c.reason, c.cost),
        (PathId(2), ChoiceReason::Fallback, None)
    );
    // All stale.
    let mut s = state(entries, &[]);
    s.apply(PROBER, &measure(1, 1.0, None, None), 0);
    s.apply(PROBER, &measure(2, 1.0, None, None), 0);
    let v = s.view(1, 0);
    assert_eq!(chosen(&v, "10.0.0.1", 0), Some((2, ChoiceReason::Best)));
    assert_eq!(
        chosen(&v, "10.0.0.1", 2000 * MS),
        Some((2, ChoiceReason::Fallback))
    );
    // All fresh but too lossy.
    let mut s = state(entries, &[]);
    s.apply(PROBER, &measure(1, 1.0, None, Some(0.5)), MONO);
    s.apply(PROBER, &measure(2, 1.0, None, Some(0.5)), MONO);
    assert_eq!(
        chosen(&s.view(1, MONO), "10.0.0.1", MONO),
        Some((2, ChoiceReason::Fallback))
    );
    // Fresh state without a latency cannot be costed.
    let mut s = state(entries, &[]);
    let loss_only: Message = PathState::new(
        PathId(1),
        vec![Metric::new(MetricType::PathLoss, Unit::Ratio, 0.0)],
    )
    .into();
    s.apply(PROBER, &loss_only, MONO);
    assert_eq!(
        chosen(&s.view(1, MONO), "10.0.0.1", MONO),
        Some((2, ChoiceReason::Fallback))
    );
}

#[test]
fn ipv6_longest_prefix_and_choice() {
    let mut s = state(
        &[
            ("2001:db8::/32", &[1, 2]),
            ("2001:db8:1::/48", &[3]),
            ("::/0", &[4]),
        ],
        &[],
    );
    s.apply(PROBER, &measure(1, 300.0, None, None), MONO);
    s.apply(PROBER, &measure(2, 200.0, None, None), MONO);
    s.apply(PROBER, &measure(3, 900.0, None, None), MONO);
    let v = s.view(1, MONO);
    assert_eq!(
        chosen(&v, "2001:db8:1::5", MONO),
        Some((3, ChoiceReason::Best))
    );
    assert_eq!(
        chosen(&v, "2001:db8:2::5", MONO),
        Some((2, ChoiceReason::Best))
    );
    assert_eq!(
        chosen(&v, "2001:db9::1", MONO),
        Some((4, ChoiceReason::Fallback))
    );
    assert_eq!(v.route_counts(), (0, 3));
    let n = u128::from(
        ip("2001:db8:1::5")
            .to_string()
            .parse::<std::net::Ipv6Addr>()
            .expect("v6"),
    );
    assert_eq!(v.choose_path_v6(n, MONO).map(|c| c.path.id.0), Some(3));
}

#[test]
fn undefined_paths_are_skipped() {
    let mut s = state(&[("10.0.0.0/8", &[9, 2]), ("10.1.0.0/16", &[8])], &[]);
    s.apply(PROBER, &measure(9, 1.0, None, None), MONO);
    let v = s.view(1, MONO);
    // Path 9 has state but no definition: the only usable path is 2.
    assert_eq!(
        chosen(&v, "10.0.0.1", MONO),
        Some((2, ChoiceReason::Fallback))
    );
    // An entry naming only undefined paths gives no decision.
    assert_eq!(chosen(&v, "10.1.0.1", MONO), None);
    assert_eq!(s.dangling_paths().len(), 2);
}

#[test]
fn the_view_is_a_snapshot() {
    let mut s = state(&[("10.0.0.0/8", &[1, 2])], &[]);
    s.apply(PROBER, &measure(1, 10.0, None, None), MONO);
    s.apply(PROBER, &measure(2, 20.0, None, None), MONO);
    let v1 = s.view(1, MONO);
    s.apply(PROBER, &measure(1, 50.0, None, None), MONO);
    let v2 = s.view(2, MONO);
    assert_eq!(chosen(&v1, "10.0.0.1", MONO), Some((1, ChoiceReason::Best)));
    assert_eq!(chosen(&v2, "10.0.0.1", MONO), Some((2, ChoiceReason::Best)));
    assert_eq!((v1.version(), v2.version(), v2.built_ns()), (1, 2, MONO));
    // An empty view decides nothing and does not panic.
    assert_eq!(chosen(&DataplaneView::default(), "10.0.0.1", MONO), None);
}

#[test]
fn class_weights_and_thresholds_are_in_the_view() {
    let mut s = ControlState::default();
    s.apply(ORCH, &policy(), 0);
    let v = s.view(1, 0);
    assert_eq!(v.class_weight(3), Some(10));
    assert_eq!(v.class_weight(4), None);
    assert_eq!(v.thresholds().jitter_weight, 1.5);
    assert_eq!(v.paths().len(), 2);
    assert_eq!(v.path(PathId(2)).map(|p| p.def.egress_port), Some(1));
}
