//! Prefix-cache affinity in the decision: the expected skip, bounded load,
//! llm-d's weighted scorers, and the engine recording where prefixes went.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use classifier::{SharedPrefix, TaskType, TokenFeatures};
use control::capability::ModelClass;
use control::ids::{NodeId, PathId};
use control::message::Message;
use control::metric::{Metric, MetricType, Unit};
use control::node_state::NodeState;
use control::state::ControlState;
use control::task_types::TaskTypes;
use control::thresholds::Thresholds;
use control::view::DataplaneView;
use steer::service::{InstanceCapability, InstanceSpec, PathSpec, ServiceSpec};
use steer::{
    ChoiceReason, Decider, Engine, EngineConfig, Policy, PrefixLimits, PrefixRecord, Rejections,
    ServiceTable, TrafficClass,
};

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const A: u8 = 0;
const B: u8 = 1;
const PREFILL_TPS: f64 = 10_000.0;

/// Two identical instances behind identical paths: the network cannot
/// tell them apart.
fn symmetric() -> ServiceTable {
    let all = TaskTypes::from_bits(TaskTypes::DEFINED).unwrap();
    let cap = InstanceCapability {
        model_class: ModelClass::LargeCentre,
        task_types: all,
        max_context_tokens: 131_072,
        prefill_tokens_per_s: PREFILL_TPS,
        decode_tokens_per_s: 100.0,
        concurrency: 8,
        base_ttft_us: 10_000.0,
        max_queue: 64,
    };
    let path = |id: u16| PathSpec {
        id: PathId(id),
        name: format!("p{id}"),
        egress_port: 1,
        next_hop_mac: [2, 0, 0, 0, 0, id as u8],
        prior_latency_us: 1_000.0,
        prior_jitter_us: 0.0,
    };
    let inst = |name: &str, node: u16| InstanceSpec {
        name: name.into(),
        node: NodeId(node),
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, node as u8, 2)),
        mac: None,
        paths: vec![PathId(node)],
        capability: cap,
    };
    ServiceTable::build(
        vec![path(1), path(2)],
        vec![inst("a", 1), inst("b", 2)],
        vec![ServiceSpec {
            name: "llm".into(),
            vip: IpAddr::V4(Ipv4Addr::new(10, 0, 100, 1)),
            ports: vec![8000],
            instances: vec!["a".into(), "b".into()],
            overflow_instance: None,
        }],
    )
    .unwrap()
}

fn node(id: u16, queue: f64, kv: f64) -> Message {
    NodeState::new(
        NodeId(id),
        vec![
            Metric::new(MetricType::QueueLength, Unit::Count, queue),
            Metric::new(MetricType::GpuMemoryUtilisation, Unit::Ratio, kv),
        ],
    )
    .into()
}

fn view(queues: [f64; 2], kv: [f64; 2]) -> DataplaneView {
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, queues[0], kv[0]), 0);
    state.apply(1, &node(2, queues[1], kv[1]), 0);
    state.view(1, 0)
}

/// An agent request: `prompt` tokens of which `prefix` are its shared
/// system prompt and tools.
fn agent(prompt: u32, prefix: u32) -> TokenFeatures {
    TokenFeatures {
        prompt_tokens: prompt,
        output_tokens: 200,
        task: TaskType::Chat,
        urgency: TaskType::Chat.default_urgency(),
        explicit_urgency: false,
        prefix: Some(SharedPrefix {
            hash: 42,
            tokens: prefix,
        }),
    }
}

fn limits(balance_queue: f64) -> PrefixLimits {
    PrefixLimits {
        capacity: 64,
        ttl_ns: 60 * SEC,
        balance_queue,
    }
}

fn decide(
    policy: Policy,
    view: &DataplaneView,
    record: Option<&PrefixRecord>,
    f: &TokenFeatures,
) -> steer::Choice {
    let t = symmetric();
    let m = steer::feedback::instance_models(&t, 20_000.0).unwrap();
    Decider {
        table: &t,
        view,
        models: &m,
        now_ns: MS,
        policy,
        turn: 0,
        unreported: &[],
        prefixes: record,
    }
    .decide(0, f, TrafficClass::Interactive, &mut Rejections::default())
    .unwrap()
}

#[test]
fn a_cached_prefix_subtracts_its_prefill_from_the_prediction() {
    let v = view([0.0, 0.0], [0.0, 0.0]);
    let f = agent(4_500, 4_000);
    // Nothing recorded: a tie, and ties keep configuration order.
    let cold = decide(Policy::TokenAware, &v, None, &f);
    assert_eq!((cold.instance, cold.predicted.cached_tokens), (A, 0.0));
    let mut record = PrefixRecord::new(limits(8.0), 2, 1);
    record.served(B, f.prefix.as_ref().unwrap(), f.prompt_tokens, 0);
    let warm = decide(Policy::TokenAware, &v, Some(&record), &f);
    assert_eq!(warm.instance, B);
    assert_eq!(warm.predicted.cached_tokens, 4_000.0);
    // The skip is the cached tokens at the model's per-token prefill
    // (the prior: 1 / prefill_tokens_per_s).
    let skipped_us = cold.predicted.compute_ttft_us - warm.predicted.compute_ttft_us;
    let expected_us = 4_000.0 / PREFILL_TPS * 1e6;
    assert!(
        (skipped_us - expected_us).abs() < 1.0,
        "{skipped_us} vs {expected_us}"
    );
    // A request without the prefix gets nothing from it.
    let mut other = f;
    other.prefix = Some(SharedPrefix {
        hash: 43,
        tokens: 4_000,
    });
    let c = decide(Policy::TokenAware, &v, Some(&record), &other);
    assert_eq!((c.instance, c.predicted.cached_tokens), (A, 0.0));
}

#[test]
fn bounded_load_withholds_affinity_from_a_node_past_the_balance_bound() {
    let f = agent(4_500, 4_000);
    let mut record = PrefixRecord::new(limits(4.0), 2, 1);
    record.served(B, f.prefix.as_ref().unwrap(), f.prompt_tokens, 0);
    // B has the prefix and 3 queued (within 4 of A's 0): the skip (400 ms)
    // outweighs three queued requests (60 ms).
    let c = decide(
        Policy::TokenAware,
        &view([0.0, 3.0], [0.0, 0.0]),
        Some(&record),
        &f,
    );
    assert_eq!((c.instance, c.predicted.cached_tokens), (B, 4_000.0));
    // 5 queued is past the bound: no affinity, so A, whose queue is
    // shorter, although the skip would still outweigh 5 × 20 ms.
    let c = decide(
        Policy::TokenAware,
        &view([0.0, 5.0], [0.0, 0.0]),
        Some(&record),
        &f,
    );
    assert_eq!((c.instance, c.predicted.cached_tokens), (A, 0.0));
    // The bound is relative to the shortest queue, not absolute.
    let c = decide(
        Policy::TokenAware,
        &view([6.0, 9.0], [0.0, 0.0]),
        Some(&record),
        &f,
    );
    assert_eq!(c.instance, B);
}

#[test]
fn llm_d_weighs_queue_kv_cache_and_prefix_two_two_three() {
    assert_eq!(
        (
            steer::decision::LLM_D_WEIGHTS.queue,
            steer::decision::LLM_D_WEIGHTS.kv_cache,
            steer::decision::LLM_D_WEIGHTS.prefix
        ),
        (2.0, 2.0, 3.0)
    );
    let f = agent(4_500, 4_000);
    let mut record = PrefixRecord::new(limits(1.0), 2, 1);
    record.served(B, f.prefix.as_ref().unwrap(), f.prompt_tokens, 0);
    // A: queue score 1 (×2), B: queue score 0 but 4000/4500 of the prompt
    // cached (×3 = 2.67 > 2). llm-d has no balance bound: B, although its
    // queue exceeds A's by more than this record's bound of 1.
    let v = view([0.0, 4.0], [0.0, 0.0]);
    let c = decide(Policy::LlmD, &v, Some(&record), &f);
    assert_eq!((c.instance, c.reason), (B, ChoiceReason::LlmD));
    // A shorter shared prefix (1000 of 4500: 0.67) loses to the queue.
    let short_prefix = agent(4_500, 1_000);
    let mut record = PrefixRecord::new(limits(1.0), 2, 1);
    record.served(B, short_prefix.prefix.as_ref().unwrap(), 4_500, 0);
    let c = decide(Policy::LlmD, &v, Some(&record), &short_prefix);
    assert_eq!(c.instance, A);
    // The KV-cache scorer: equal queues, B's KV cache 60% full against
    // A's 10%: A by 2 × 0.5 = 1 point, unless B has the long prefix (2.67).
    let v = view([2.0, 2.0], [0.1, 0.6]);
    assert_eq!(decide(Policy::LlmD, &v, None, &f).instance, A);
    let mut record = PrefixRecord::new(limits(1.0), 2, 1);
    record.served(B, f.prefix.as_ref().unwrap(), f.prompt_tokens, 0);
    assert_eq!(decide(Policy::LlmD, &v, Some(&record), &f).instance, B);
    // least_queue ignores prefixes altogether.
    assert_eq!(
        decide(
            Policy::LeastQueue,
            &view([0.0, 4.0], [0.0, 0.0]),
            Some(&record),
            &f
        )
        .instance,
        A
    );
}

#[test]
fn the_engine_records_where_a_prefix_went_and_takes_scraped_hit_ratios() {
    let t = Arc::new(symmetric());
    let models = steer::feedback::instance_models(&t, 20_000.0).unwrap();
    let counters = Arc::new(steer::stats::SteerCounters::new(2, 0));
    let mut engine = Engine::new(
        Arc::clone(&t),
        EngineConfig {
            policy: Policy::TokenAware,
            infer_http_ports: Vec::new(),
            infer_limits: steer::infer::InferLimits::default(),
            flow_table_size: 16,
            flow_idle_ns: SEC,
            seed: 3,
            rss_key: [0x5a; 40],
            fragments: steer::fragment::FragmentLimits::default(),
            prefixes: limits(8.0),
            splice: None,
        },
        models,
        counters,
    );
    let v = view([0.0, 0.0], [0.0, 0.0]);
    let f = agent(4_500, 4_000);
    let first = engine
        .decide(0, &f, TrafficClass::Interactive, &v, MS)
        .unwrap();
    assert_eq!(first.predicted.cached_tokens, 0.0);
    let p = f.prefix.unwrap();
    assert_eq!(
        engine
            .prefixes()
            .expected_cached_tokens(first.instance, &p, MS),
        4_000.0
    );
    // The next request of that agent follows its prefix.
    let second = engine
        .decide(0, &f, TrafficClass::Interactive, &v, 2 * MS)
        .unwrap();
    assert_eq!(second.instance, first.instance);
    assert_eq!(second.predicted.cached_tokens, 4_000.0);
    // Four more, then the node's counters say half of the expected hits
    // came (20000 expected of 27000 queried; 10000 observed): the record
    // moves halfway to half the skip.
    for k in 3..7 {
        engine
            .decide(0, &f, TrafficClass::Interactive, &v, k * MS)
            .unwrap();
    }
    engine.correct_prefix_cache(first.instance, 10_000.0, 27_000.0);
    let next = engine
        .decide(0, &f, TrafficClass::Interactive, &v, 7 * MS)
        .unwrap();
    assert_eq!(next.predicted.cached_tokens, 3_000.0);
}

#[test]
fn near_ties_go_to_the_less_loaded_node() {
    // Identical nodes, both with free slots: the same prediction. A's
    // slots are 90% busy, B's 10%: B, although A comes first.
    let mut state = ControlState::new(Thresholds::default());
    for (id, busy) in [(1, 0.9), (2, 0.1)] {
        let m: Message = NodeState::new(
            NodeId(id),
            vec![
                Metric::new(MetricType::QueueLength, Unit::Count, 0.0),
                Metric::new(MetricType::GpuUtilisation, Unit::Ratio, busy),
            ],
        )
        .into();
        state.apply(1, &m, 0);
    }
    let v = state.view(1, 0);
    let short = TokenFeatures {
        prompt_tokens: 20,
        output_tokens: 16,
        task: TaskType::ImmediateControl,
        urgency: TaskType::ImmediateControl.default_urgency(),
        explicit_urgency: false,
        prefix: None,
    };
    assert_eq!(decide(Policy::TokenAware, &v, None, &short).instance, B);
    // Equal load keeps configuration order.
    let v = view([0.0, 0.0], [0.0, 0.0]);
    assert_eq!(decide(Policy::TokenAware, &v, None, &short).instance, A);
    // A clear difference is no tie: B one queued request (20 ms) behind.
    let v = view([0.0, 1.0], [0.0, 0.0]);
    assert_eq!(decide(Policy::TokenAware, &v, None, &short).instance, A);
}

/// The scraped counters arrive as NODE_STATE's PREFIX_CACHE: the control
/// state sums them per node, every engine reads the totals from its
/// snapshot at its next decision and corrects its record, and a node
/// whose cache did not hold what the record expected loses the affinity
/// it would otherwise have kept.
#[test]
fn prefix_cache_counters_in_node_state_correct_the_record_and_change_the_decision() {
    let t = Arc::new(symmetric());
    let engine = || {
        Engine::new(
            Arc::clone(&t),
            EngineConfig {
                policy: Policy::TokenAware,
                infer_http_ports: Vec::new(),
                infer_limits: steer::infer::InferLimits::default(),
                flow_table_size: 16,
                flow_idle_ns: SEC,
                seed: 3,
                rss_key: [0x5a; 40],
                fragments: steer::fragment::FragmentLimits::default(),
                prefixes: limits(64.0),
                splice: None,
            },
            steer::feedback::instance_models(&t, 20_000.0).unwrap(),
            Arc::new(steer::stats::SteerCounters::new(2, 0)),
        )
    };
    let f = agent(4_500, 4_000);
    // Two workers' engines; each sends six calls of one agent, all to A
    // (equal load, configuration order): 20000 tokens expected cached of
    // 27000 queried, in each record.
    let mut state = ControlState::new(Thresholds::default());
    state.apply(1, &node(1, 0.0, 0.0), 0);
    state.apply(1, &node(2, 0.0, 0.0), 0);
    let v = state.view(1, 0);
    let (mut one, mut two) = (engine(), engine());
    for e in [&mut one, &mut two] {
        for k in 1..=6 {
            assert_eq!(
                e.decide(0, &f, TrafficClass::Interactive, &v, k * MS)
                    .unwrap()
                    .instance,
                A
            );
        }
    }
    // A is now busier than B; by less than a whole cached prefix's
    // prefill, so with its record intact A keeps the agent.
    let queue_a = 10.0;
    let busier = |state: &mut ControlState, at: u64, counts: Option<(f64, f64)>| {
        let mut a = NodeState::new(
            NodeId(1),
            vec![
                Metric::new(MetricType::QueueLength, Unit::Count, queue_a),
                Metric::new(MetricType::GpuMemoryUtilisation, Unit::Ratio, 0.0),
            ],
        );
        if let Some((hit, queried)) = counts {
            a = a.with_prefix_cache(control::PrefixCacheCounts {
                hit_tokens: hit,
                queried_tokens: queried,
            });
        }
        state.apply(1, &Message::NodeState(a), at);
        state.view(at, at)
    };
    let mut intact = state.clone();
    let v = busier(&mut intact, 7 * MS, None);
    let mut control_engine = engine();
    for k in 1..=6 {
        control_engine
            .decide(0, &f, TrafficClass::Interactive, &state.view(1, 0), k * MS)
            .unwrap();
    }
    let kept = control_engine
        .decide(0, &f, TrafficClass::Interactive, &v, 8 * MS)
        .unwrap();
    assert_eq!((kept.instance, kept.predicted.cached_tokens), (A, 4_000.0));

    // A's server reports, in two NODE_STATEs, that none of those prompt
    // tokens hit its cache (it evicted them). The engines decide only
    // after the second: the sums still carry the first report.
    busier(&mut state, 7 * MS, Some((0.0, 13_500.0)));
    let v = busier(&mut state, 8 * MS, Some((0.0, 13_500.0)));
    for e in [&mut one, &mut two] {
        let moved = e
            .decide(0, &f, TrafficClass::Interactive, &v, 9 * MS)
            .unwrap();
        assert!(
            (e.prefixes().scale(A) - 0.5).abs() < 1e-12,
            "{}",
            e.prefixes().scale(A)
        );
        assert_eq!(moved.instance, B, "{moved:?}");
        let g = &e.counters().models[usize::from(A)];
        assert_eq!(
            g.prefix_cache_reports
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
    // The same snapshot again is no new report: nothing is applied twice.
    one.decide(0, &f, TrafficClass::Interactive, &v, 10 * MS)
        .unwrap();
    assert!((one.prefixes().scale(A) - 0.5).abs() < 1e-12);
}

/// Two identical nodes whose models learnt from noisy TTFTs: A's drifted a
/// little low, by less than either model's error. A short request is a tie
/// that load decides, so it goes to B, whose slots are freer; a gap larger
/// than the error is no tie, and bulk work keeps the 2% rule.
#[test]
fn interactive_ties_widen_to_the_models_error() {
    let t = symmetric();
    let mut m = steer::feedback::instance_models(&t, 20_000.0).unwrap();
    let teach = |model: &mut predictor::InstanceModel, observed: [f64; 2]| {
        for i in 0..40 {
            let p = model.predict(20, 16, 0.0);
            model.observe(&predictor::Observation {
                prompt_tokens: 20,
                output_tokens: 16,
                queue_len: 0.0,
                predicted_compute_ttft_us: p.compute_ttft_us,
                observed_compute_ttft_us: observed[i % 2],
                predicted_completion_us: None,
                observed_completion_us: None,
            });
        }
    };
    // Both alternate ±8 ms around their mean: A's mean is 5 ms lower,
    // less than the error, but more than 2% of a bulk completion.
    let (a, b) = m.split_at_mut(1);
    teach(&mut a[0], [6_000.0, 22_000.0]);
    teach(&mut b[0], [11_000.0, 27_000.0]);
    assert!(m[0].ttft_error().mae > 5_000.0, "{:?}", m[0].ttft_error());
    let mut state = ControlState::new(Thresholds::default());
    for (id, busy) in [(1, 0.9), (2, 0.1)] {
        let msg: Message = NodeState::new(
            NodeId(id),
            vec![
                Metric::new(MetricType::QueueLength, Unit::Count, 0.0),
                Metric::new(MetricType::GpuUtilisation, Unit::Ratio, busy),
            ],
        )
        .into();
        state.apply(1, &msg, 0);
    }
    let v = state.view(1, 0);
    let short = TokenFeatures {
        prompt_tokens: 20,
        output_tokens: 16,
        task: TaskType::ImmediateControl,
        urgency: TaskType::ImmediateControl.default_urgency(),
        explicit_urgency: false,
        prefix: None,
    };
    let choose = |models: &[predictor::InstanceModel], class| {
        Decider {
            table: &t,
            view: &v,
            models,
            now_ns: MS,
            policy: Policy::TokenAware,
            turn: 0,
            unreported: &[],
            prefixes: None,
        }
        .decide(0, &short, class, &mut Rejections::default())
        .unwrap()
    };
    let c = choose(&m, TrafficClass::Interactive);
    assert_eq!(c.instance, B, "{c:?}");
    // A gap well beyond the error is no tie: B's model 30 ms slower.
    let mut slow = m.clone();
    teach(&mut slow[1], [40_000.0, 56_000.0]);
    assert_eq!(choose(&slow, TrafficClass::Interactive).instance, A);
    // Bulk work: A is ahead by more than 2%, and the error does not count.
    let bulk = choose(&m, TrafficClass::BulkChat);
    assert_eq!(bulk.instance, A, "{bulk:?}");
}
