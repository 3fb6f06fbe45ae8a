//! The joint decision against a control state built the way the appliance
//! builds it: short work to the edge, long work to the centre, and shifts
//! when the edge is overloaded, stale, incapable or unreachable.

use std::net::{IpAddr, Ipv4Addr};

use classifier::{TaskType, TokenFeatures};
use control::capability::{Capability, ModelClass};
use control::ids::{NodeId, PathId};
use control::message::Message;
use control::metric::{Metric, MetricType, Unit};
use control::node_state::NodeState;
use control::path_state::PathState;
use control::state::ControlState;
use control::task_types::TaskTypes;
use control::thresholds::Thresholds;
use control::view::DataplaneView;
use steer::{ChoiceReason, Decider, NoChoice, Policy, Rejections, ServiceTable, TrafficClass};

mod common;
use common::*;

fn decide(
    t: &ServiceTable,
    view: &DataplaneView,
    f: TokenFeatures,
    now: u64,
) -> (Result<steer::Choice, NoChoice>, Rejections) {
    let m = models(t);
    let class = TrafficClass::of(&f, view.thresholds().short_task_tokens);
    let mut r = Rejections::default();
    let d = Decider {
        table: t,
        view,
        models: &m,
        now_ns: now,
        policy: Policy::TokenAware,
        turn: 0,
        unreported: &[],
        prefixes: None,
    };
    (d.decide(0, &f, class, &mut r), r)
}

fn node(id: u16, queue: f64) -> Message {
    NodeState::new(
        NodeId(id),
        vec![Metric::new(MetricType::QueueLength, Unit::Count, queue)],
    )
    .into()
}

fn path(id: u16, latency_us: f64, loss_percent: f64) -> Message {
    PathState::new(
        PathId(id),
        vec![
            Metric::new(MetricType::PathLatency, Unit::Microseconds, latency_us),
            Metric::new(MetricType::PathLoss, Unit::Percent, loss_percent),
        ],
    )
    .into()
}

#[test]
fn short_goes_to_the_edge_and_long_to_the_centre() {
    let t = table();
    let view = ControlState::new(Thresholds::default()).view(1, 0);
    let (s, _) = decide(&t, &view, short(), 0);
    let s = s.unwrap();
    assert_eq!((s.instance, s.path), (EDGE, 0));
    assert_eq!(s.reason, ChoiceReason::LowestTtft);
    assert_eq!(s.scored, 2);
    // 2 × (500 + jitter) + 3 ms + 12 tokens at 2000/s.
    assert!(
        s.predicted.ttft_us > 4_000.0 && s.predicted.ttft_us < 12_000.0,
        "{s:?}"
    );

    let (l, _) = decide(&t, &view, long(), 0);
    let l = l.unwrap();
    assert_eq!((l.instance, l.path), (CENTRE, 1));
    assert_eq!(l.reason, ChoiceReason::LowestCompletion);
    assert!(l.predicted.completion_us > l.predicted.ttft_us);
}

#[test]
fn an_overloaded_edge_sends_short_work_to_the_centre() {
    let t = table();
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, 8.0), 0);
    let (c, r) = decide(&t, &state.view(1, 0), short(), 0);
    assert_eq!(c.unwrap().instance, CENTRE);
    assert_eq!(r.overloaded, 1);

    // A queue below max_queue still counts, through the predicted wait:
    // six queued requests at 20 ms each outweigh the centre's longer path.
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, 6.0), 0);
    assert_eq!(
        decide(&t, &state.view(1, 0), short(), 0)
            .0
            .unwrap()
            .instance,
        CENTRE
    );
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, 1.0), 0);
    assert_eq!(
        decide(&t, &state.view(1, 0), short(), 0)
            .0
            .unwrap()
            .instance,
        EDGE
    );
}

#[test]
fn a_stale_edge_is_never_chosen() {
    let t = table();
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, 0.0), 0);
    let max_age = state.thresholds().max_state_age_ns;
    let view = state.view(1, 0);
    assert_eq!(
        decide(&t, &view, short(), max_age).0.unwrap().instance,
        EDGE
    );
    let (c, r) = decide(&t, &view, short(), max_age + MS);
    assert_eq!(c.unwrap().instance, CENTRE);
    assert_eq!(r.stale_node, 1);
}

#[test]
fn stale_or_lossy_paths_are_skipped_and_measured_latency_counts() {
    let t = table();
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &path(1, 500.0, 90.0), 0);
    let (c, r) = decide(&t, &state.view(1, 0), short(), 0);
    assert_eq!(c.unwrap().instance, CENTRE);
    assert_eq!(r.dead_path, 1);

    // A measured 60 ms low-delay line is worse than the 15 ms internet.
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &path(1, 60_000.0, 0.0), 0);
    assert_eq!(
        decide(&t, &state.view(1, 0), short(), 0)
            .0
            .unwrap()
            .instance,
        CENTRE
    );
}

#[test]
fn capability_is_a_hard_constraint() {
    let t = table();
    // The edge announces it serves control commands only.
    let mut state = ControlState::new(Thresholds::default());
    let cap = Capability::new(
        NodeId(1),
        "phi-3-mini",
        ModelClass::SmallEdge,
        "L4",
        TaskTypes::IMMEDIATE_CONTROL,
    );
    state.apply(1, &cap.into(), 0);
    let view = state.view(1, 0);
    assert_eq!(decide(&t, &view, short(), 0).0.unwrap().instance, EDGE);
    let chat = features(40, 60, TaskType::Chat);
    let (c, r) = decide(&t, &view, chat, 0);
    assert_eq!(c.unwrap().instance, CENTRE);
    assert_eq!(r.capability, 1);

    // Past every context limit: nobody can serve it.
    let huge = features(200_000, 10, TaskType::Summarisation);
    let (c, r) = decide(&t, &ControlState::default().view(1, 0), huge, 0);
    assert_eq!(c, Err(NoChoice::NoCapableInstance));
    assert_eq!(r.capability, 2);
}

#[test]
fn when_everything_is_overloaded_the_least_loaded_is_taken() {
    let t = table();
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, 80.0), 0); // 10× max_queue
    state.apply(1, &node(2, 300.0), 0); // 1.2× max_queue
    let (c, _) = decide(&t, &state.view(1, 0), short(), 0);
    let c = c.unwrap();
    assert_eq!(
        (c.instance, c.reason),
        (CENTRE, ChoiceReason::AllOverloaded)
    );

    // And when every node is stale there is no choice at all.
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, 0.0), 0);
    state.apply(1, &node(2, 0.0), 0);
    let late = state.thresholds().max_state_age_ns + 1;
    let (c, r) = decide(&t, &state.view(1, 0), short(), late);
    assert_eq!(c, Err(NoChoice::NoLiveInstance));
    assert_eq!(r.stale_node, 2);
}

#[test]
fn lookups_by_vip_and_by_instance_address() {
    let t = table();
    let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 100, 1));
    assert_eq!(t.service_for(vip, 8000), Some(0));
    assert_eq!(t.service_for(vip, 8001), None);
    assert_eq!(
        t.instance_for(IpAddr::V4(Ipv4Addr::new(10, 0, 3, 2)), 8000),
        Some(CENTRE)
    );
    assert_eq!(
        t.instance_for(IpAddr::V4(Ipv4Addr::new(10, 0, 3, 2)), 22),
        None
    );
}

/// A decision by one of the baselines.
fn baseline(
    policy: Policy,
    view: &DataplaneView,
    f: TokenFeatures,
    turn: u32,
) -> Result<steer::Choice, NoChoice> {
    let t = table();
    let m = models(&t);
    let class = TrafficClass::of(&f, view.thresholds().short_task_tokens);
    let d = Decider {
        table: &t,
        view,
        models: &m,
        now_ns: 0,
        policy,
        turn,
        unreported: &[],
        prefixes: None,
    };
    d.decide(0, &f, class, &mut Rejections::default())
}

fn node_with_kv(id: u16, queue: f64, kv_percent: f64) -> Message {
    NodeState::new(
        NodeId(id),
        vec![
            Metric::new(MetricType::QueueLength, Unit::Count, queue),
            Metric::new(MetricType::GpuMemoryUtilisation, Unit::Percent, kv_percent),
        ],
    )
    .into()
}

#[test]
fn round_robin_alternates_whatever_the_work_and_the_network() {
    let view = ControlState::new(Thresholds::default()).view(1, 0);
    for f in [short(), long()] {
        let picks: Vec<u8> = (0..4)
            .map(|turn| {
                let c = baseline(Policy::RoundRobin, &view, f, turn).unwrap();
                assert_eq!(c.reason, ChoiceReason::RoundRobin);
                c.instance
            })
            .collect();
        assert_eq!(picks, [EDGE, CENTRE, EDGE, CENTRE]);
    }
}

#[test]
fn round_robin_skips_a_stale_node() {
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, 0.0), 0);
    let later = state.thresholds().max_state_age_ns + MS;
    let view = state.view(1, 0);
    let t = table();
    let m = models(&t);
    for turn in 0..3 {
        let mut r = Rejections::default();
        let c = Decider {
            table: &t,
            view: &view,
            models: &m,
            now_ns: later,
            policy: Policy::RoundRobin,
            turn,
            unreported: &[],
            prefixes: None,
        }
        .decide(0, &short(), TrafficClass::Interactive, &mut r)
        .unwrap();
        assert_eq!(c.instance, CENTRE);
        assert_eq!(r.stale_node, 1);
    }
}

#[test]
fn least_queue_follows_queue_then_kv_cache_and_ignores_the_network() {
    // Equal queues: the emptier KV cache wins, even for short work whose
    // TTFT the centre's 15 ms path makes worse.
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node_with_kv(1, 0.0, 60.0), 0);
    state.apply(1, &node_with_kv(2, 0.0, 20.0), 0);
    let view = state.view(1, 0);
    for turn in 0..4 {
        let c = baseline(Policy::LeastQueue, &view, short(), turn).unwrap();
        assert_eq!((c.instance, c.reason), (CENTRE, ChoiceReason::LeastQueue));
        // Its prediction is still the token-aware one, for the centre's
        // configured path.
        assert!(c.predicted.net_us >= 30_000.0, "{c:?}");
    }
    // A longer queue outweighs a KV cache 40 points emptier.
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node_with_kv(1, 0.0, 60.0), 0);
    state.apply(1, &node_with_kv(2, 3.0, 20.0), 0);
    assert_eq!(
        baseline(Policy::LeastQueue, &state.view(1, 0), long(), 0)
            .unwrap()
            .instance,
        EDGE
    );
    // A dead path does not matter to it: it does not read path state.
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &path(2, 15_000.0, 90.0), 0);
    state.apply(1, &node_with_kv(1, 2.0, 0.0), 0);
    assert_eq!(
        baseline(Policy::LeastQueue, &state.view(1, 0), short(), 0)
            .unwrap()
            .instance,
        CENTRE
    );
}

#[test]
fn least_queue_ties_go_round_robin() {
    let view = ControlState::new(Thresholds::default()).view(1, 0);
    let picks: Vec<u8> = (0..4)
        .map(|turn| {
            baseline(Policy::LeastQueue, &view, short(), turn)
                .unwrap()
                .instance
        })
        .collect();
    assert_eq!(picks, [EDGE, CENTRE, EDGE, CENTRE]);
}

#[test]
fn the_baselines_refuse_what_no_instance_can_serve() {
    let view = ControlState::new(Thresholds::default()).view(1, 0);
    let huge = features(1_000_000, 10, TaskType::Chat);
    for p in [Policy::LeastQueue, Policy::RoundRobin] {
        assert_eq!(
            baseline(p, &view, huge, 0).unwrap_err(),
            NoChoice::NoCapableInstance
        );
    }
}

#[test]
fn policies_parse_by_name() {
    for p in Policy::ALL {
        assert_eq!(p.name().parse::<Policy>(), Ok(p));
    }
    assert!("fifo".parse::<Policy>().is_err());
}

fn node_busy(id: u16, queue: f64, busy_percent: f64) -> Message {
    NodeState::new(
        NodeId(id),
        vec![
            Metric::new(MetricType::QueueLength, Unit::Count, queue),
            Metric::new(MetricType::GpuUtilisation, Unit::Percent, busy_percent),
        ],
    )
    .into()
}

/// A token-aware decision for short work with `unreported` flows steered
/// to the edge (instance 0) since its report.
fn with_unreported(view: &DataplaneView, unreported: u32) -> (steer::Choice, Rejections) {
    let t = table();
    let m = models(&t);
    let mut r = Rejections::default();
    let counts = [unreported, 0];
    let c = Decider {
        table: &t,
        view,
        models: &m,
        now_ns: 0,
        policy: Policy::TokenAware,
        turn: 0,
        unreported: &counts,
        prefixes: None,
    }
    .decide(0, &short(), TrafficClass::Interactive, &mut r)
    .unwrap();
    (c, r)
}

#[test]
fn flows_steered_since_the_report_count_once_the_free_slots_are_taken() {
    // The edge (2 slots) reported an empty queue, one slot busy.
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node_busy(1, 0.0, 50.0), 0);
    let view = state.view(1, 0);
    // One new flow takes the free slot: nothing queues.
    let (c, _) = with_unreported(&view, 1);
    assert_eq!((c.instance, c.predicted.queue_len), (EDGE, 0.0));
    // Seven more would queue six deep: the centre is now quicker (as with
    // a reported queue of 6, above).
    let (c, _) = with_unreported(&view, 7);
    assert_eq!(c.instance, CENTRE);
    // Nine past the free slot reach max_queue: overloaded, and counted.
    let (c, r) = with_unreported(&view, 9);
    assert_eq!((c.instance, r.overloaded), (CENTRE, 1));
    // Without a report there is nothing to count from.
    let (c, _) = with_unreported(&ControlState::new(Thresholds::default()).view(1, 0), 9);
    assert_eq!(c.instance, EDGE);
}

#[test]
fn the_baselines_ignore_the_unreported_flows() {
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node_busy(1, 0.0, 100.0), 0);
    state.apply(1, &node_busy(2, 3.0, 100.0), 0);
    let view = state.view(1, 0);
    let t = table();
    let m = models(&t);
    let counts = [50, 0];
    let c = Decider {
        table: &t,
        view: &view,
        models: &m,
        now_ns: 0,
        policy: Policy::LeastQueue,
        turn: 0,
        unreported: &counts,
        prefixes: None,
    }
    .decide(
        0,
        &short(),
        TrafficClass::Interactive,
        &mut Rejections::default(),
    )
    .unwrap();
    assert_eq!(c.instance, EDGE);
}

#[test]
fn since_report_counts_restart_when_the_node_reports_again() {
    let t = table();
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, 0.0), 10);
    let mut since = steer::SinceReport::default();
    since.refresh(&t, &state.view(1, 10), 0);
    since.steered(EDGE);
    since.steered(EDGE);
    since.steered(CENTRE);
    // The same report: the counts stand.
    since.refresh(&t, &state.view(2, 20), 0);
    assert_eq!(&since.counts()[..2], &[2, 1]);
    // The edge reports again; the centre never has.
    state.apply(1, &node(1, 1.0), 30);
    since.refresh(&t, &state.view(3, 30), 0);
    assert_eq!(&since.counts()[..2], &[0, 1]);
    // An instance outside the table is ignored.
    since.steered(u8::MAX);
}

fn node_ttft(id: u16, queue: Option<f64>, est_ttft_ms: f64) -> Message {
    let mut metrics = vec![Metric::new(
        MetricType::EstTtft,
        Unit::Milliseconds,
        est_ttft_ms,
    )];
    if let Some(q) = queue {
        metrics.push(Metric::new(MetricType::QueueLength, Unit::Count, q));
    }
    NodeState::new(NodeId(id), metrics).into()
}

/// A collector's estimated TTFT is the mean of the node's recent requests,
/// long prompts included: with the queue reported empty it must not repel a
/// short request that would find a free slot; without a queue length it is
/// the only sign of load and still counts.
#[test]
fn the_estimated_ttft_counts_only_when_no_queue_is_reported() {
    let t = table();
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node_ttft(1, Some(0.0), 600.0), 0);
    let (c, _) = decide(&t, &state.view(1, 0), short(), 0);
    let c = c.unwrap();
    assert_eq!(c.instance, EDGE);
    assert!(c.predicted.compute_ttft_us < 100_000.0, "{c:?}");

    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node_ttft(1, None, 600.0), 0);
    let (c, _) = decide(&t, &state.view(1, 0), short(), 0);
    assert_eq!(c.unwrap().instance, CENTRE);
}
