//! The simulator's behaviour: determinism, queueing against theory,
//! conservation, and the direction of the policies' results.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::config::{NodeParams, PathParams, Workload};
use sim::eval::{run_one, EvalOptions, Variant, FIFO, INTELLINODE, LEAST_QUEUE};
use sim::scale::{scenario, ScaleOptions};
use sim::uplink::{run_uplink, UplinkOptions};
use sim::world::{run, Kind, RunConfig, SiteSpec, Topology};
use sim::{EvalCluster, EventQueue};
use steer::Policy;

fn eval_json(seed: u64, requests: u64) -> String {
    let c = EvalCluster::default();
    let opt = EvalOptions {
        seed,
        requests: Some(requests),
        replications: 1,
        uplink_mbps: None,
    };
    let r = run_one(&c, INTELLINODE, "80", 0.8, &opt).unwrap();
    serde_json::to_string(&r).unwrap()
}

#[test]
fn same_seed_same_result_other_seed_other_result() {
    let a = eval_json(7, 3000);
    assert_eq!(a, eval_json(7, 3000));
    assert_ne!(a, eval_json(8, 3000));

    let o = ScaleOptions {
        nodes: 60,
        requests: 20_000,
        seed: 3,
        ..ScaleOptions::default()
    };
    let s = scenario(&o).unwrap();
    let x = serde_json::to_string(&s.run_policy(LEAST_QUEUE).unwrap()).unwrap();
    let y = serde_json::to_string(&s.run_policy(LEAST_QUEUE).unwrap()).unwrap();
    assert_eq!(x, y);
    let s2 = scenario(&ScaleOptions { seed: 4, ..o }).unwrap();
    let z = serde_json::to_string(&s2.run_policy(LEAST_QUEUE).unwrap()).unwrap();
    assert_ne!(x, z);
}

#[test]
fn the_engine_pops_in_time_then_scheduling_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut q = EventQueue::new();
    for i in 0..5000u32 {
        q.push(rng.gen_range(0..500u64), i);
    }
    let mut last = (0u64, 0u32);
    let mut seen = 0;
    while let Some((t, i)) = q.pop() {
        if seen > 0 {
            // Equal times keep insertion order, i.e. increasing ids.
            assert!(
                t > last.0 || (t == last.0 && i > last.1),
                "{t},{i} after {last:?}"
            );
        }
        last = (t, i);
        seen += 1;
    }
    assert_eq!(seen, 5000);
}

/// One node, one path, fixed-size requests: a queue theory can check.
fn single(
    node: NodeParams,
    path: PathParams,
    prompt: u32,
    output: u32,
    rate: f64,
    n: u64,
    seed: u64,
) -> sim::Outcome {
    let topo = Topology {
        nodes: vec![node],
        kinds: vec![Kind::Edge],
        paths: vec![path],
        sites: vec![SiteSpec {
            instances: vec![(0, 0)],
            rate_rps: rate,
        }],
        uplinks: vec![],
    };
    let cfg = RunConfig {
        policy: Policy::RoundRobin,
        strict_priority: false,
        seed,
        requests: n,
        workload: Workload {
            short_fraction: 1.0,
            short_prompt_tokens: [prompt, prompt],
            short_output_tokens: [output, output],
            long_prompt_tokens: [1, 1],
            long_output_tokens: [1, 1],
            long_prompt_words: [1, 1],
            ..Workload::default()
        },
        report_interval_ns: 20_000_000,
        warmup_ns: 0,
        timeout_ns: 1_000_000_000_000,
        probe_interval_ns: None,
        thresholds: control::thresholds::Thresholds::default(),
        node_failures: vec![],
        path_failures: vec![],
        record_timeline: false,
        node_recoveries: Vec::new(),
        path_recoveries: Vec::new(),
        record_requests: false,
    };
    run(&topo, &cfg).unwrap()
}

fn mean_ms(v: &[u32]) -> f64 {
    v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64 / 1000.0
}

#[test]
fn an_idle_node_answers_after_two_round_trips_and_the_prefill() {
    // 10 ms base + 100 tokens at 1000/s = 110 ms to the first token;
    // 50 tokens at 100/s = 500 ms of decode. One-way 5 ms, no jitter:
    // handshake 10 ms + request 5 ms + 110 ms + first token back 5 ms.
    let node = NodeParams {
        base_ttft_ms: 10.0,
        prefill_tps: 1000.0,
        decode_tps: 100.0,
        concurrency: 4,
        kv_tokens: 1000,
    };
    let path = PathParams {
        one_way_ms: 5.0,
        jitter_ms: 0.0,
        loss: 0.0,
    };
    // One request every ~10 s: never two at once.
    let mut o = single(node, path, 100, 50, 0.1, 20, 1);
    assert_eq!(o.short.completed, 20);
    o.short.ttft_us.sort_unstable();
    o.short.completion_us.sort_unstable();
    assert_eq!(o.short.ttft_us.first(), o.short.ttft_us.last());
    assert_eq!(o.short.ttft_us[0], 130_000);
    assert_eq!(o.short.completion_us[0], 630_000);
}

#[test]
fn a_one_slot_node_queues_like_m_d_1() {
    // Deterministic service D = 10 ms + 0 + 40 tokens at 1000/s = 50 ms;
    // Poisson arrivals at ρ = 0.6: Wq = ρD / (2(1 − ρ)) = 37.5 ms.
    let node = NodeParams {
        base_ttft_ms: 10.0,
        prefill_tps: 1e9,
        decode_tps: 1000.0,
        concurrency: 1,
        kv_tokens: 1000,
    };
    let zero = PathParams {
        one_way_ms: 0.0,
        jitter_ms: 0.0,
        loss: 0.0,
    };
    let d = 0.050;
    let rho = 0.6;
    let o = single(node, zero, 1, 40, rho / d, 60_000, 5);
    let wq_ms = rho * d / (2.0 * (1.0 - rho)) * 1000.0;
    // TTFT = wait + 10 ms of "prefill".
    let got = mean_ms(&o.short.ttft_us) - 10.0;
    assert!(
        (got - wq_ms).abs() / wq_ms < 0.06,
        "mean wait {got:.2} ms, M/D/1 {wq_ms:.2} ms"
    );
    assert_eq!(o.short.completed, 60_000);
}

#[test]
fn every_request_completes_or_fails() {
    let c = EvalCluster::default();
    for (v, load) in [(FIFO, 0.95), (INTELLINODE, 0.8)] {
        let policy = v.policy;
        let opt = EvalOptions {
            seed: 2,
            requests: Some(4000),
            replications: 1,
            uplink_mbps: None,
        };
        let r = run_one(&c, Variant { name: "x", ..v }, "95", load, &opt).unwrap();
        for s in [&r.short, &r.long] {
            assert_eq!(s.count, s.completed + s.failures, "{policy:?}");
        }
        assert_eq!(r.short.count + r.long.count, 4000);
    }
    let s = scenario(&ScaleOptions {
        nodes: 60,
        requests: 30_000,
        ..ScaleOptions::default()
    })
    .unwrap();
    let r = s.run_policy(FIFO).unwrap();
    assert!(r.failed_requests > 0, "failures were injected");
    for c in [&r.short, &r.long] {
        assert_eq!(c.count, c.completed + c.failures);
    }
    assert_eq!(r.short.count + r.long.count, 30_000);
}

#[test]
fn at_80_percent_intellinode_keeps_short_requests_fast_and_on_the_edge() {
    let c = EvalCluster::default();
    let opt = EvalOptions {
        seed: 1,
        requests: Some(20_000),
        replications: 1,
        uplink_mbps: None,
    };
    let fifo = run_one(&c, FIFO, "80", 0.8, &opt).unwrap();
    let lq = run_one(&c, LEAST_QUEUE, "80", 0.8, &opt).unwrap();
    let inn = run_one(&c, INTELLINODE, "80", 0.8, &opt).unwrap();
    let p99 = |r: &sim::eval::RunSummary| r.short.ttft_ms.p99;
    assert!(
        p99(&inn) < p99(&fifo),
        "{} vs fifo {}",
        p99(&inn),
        p99(&fifo)
    );
    assert!(
        p99(&inn) < p99(&lq),
        "{} vs least_queue {}",
        p99(&inn),
        p99(&lq)
    );
    let edge = inn.short_to["edge"] as f64;
    let centre = inn.short_to["centre"] as f64;
    assert!(
        edge / (edge + centre) > 0.9,
        "short to edge {edge}, centre {centre}"
    );
    // Round robin splits evenly, whatever the load.
    let (fe, fc) = (fifo.short_to["edge"] as f64, fifo.short_to["centre"] as f64);
    assert!((fe / (fe + fc) - 0.5).abs() < 0.02);
    // Bulk work does not pay for it.
    assert!(inn.long.throughput_tokens_per_s >= 0.95 * fifo.long.throughput_tokens_per_s);
}

#[test]
fn failed_nodes_and_paths_are_abandoned_once_the_appliance_can_know() {
    let o = ScaleOptions {
        nodes: 100,
        requests: 60_000,
        seed: 9,
        ..ScaleOptions::default()
    };
    let s = scenario(&o).unwrap();
    let horizon_ms = s.layout.max_state_age_ms + 20.0 + 1.0;
    for policy in [INTELLINODE, LEAST_QUEUE] {
        let r = s.run_policy(policy).unwrap();
        let f = &r.edge_failure;
        assert!(
            f.chosen_after_failure > 0,
            "{policy:?}: the stale window is real"
        );
        let last = f.last_chosen_after_ms.unwrap_or(0.0);
        assert!(
            last <= horizon_ms,
            "{policy:?} chose a failed node {last} ms after it failed"
        );
        // Nothing fails for lack of a node once the state aged out.
        assert_eq!(f.affected_sites.settled.failed, 0, "{policy:?}");
    }
    // Counting its own flows since each report, the token-aware decision
    // sends far fewer requests into a dead node's stale window than least
    // queue, which only reads the (frozen) reports.
    let ta = s.run_policy(INTELLINODE).unwrap();
    let lq = s.run_policy(LEAST_QUEUE).unwrap();
    assert!(
        ta.edge_failure.chosen_after_failure * 2 < lq.edge_failure.chosen_after_failure,
        "token-aware chose failed nodes {} times, least queue {}",
        ta.edge_failure.chosen_after_failure,
        lq.edge_failure.chosen_after_failure
    );
    // Only the token-aware decision reads path state: it leaves the failed
    // WAN within a probe period, the baselines never do.
    let last = ta.wan_failure.last_chosen_after_ms.unwrap_or(0.0);
    assert!(last <= s.layout.probe_interval_ms + 1.0, "{last}");
    assert_eq!(ta.wan_failure.affected_sites.settled.failed, 0);
    let rr = s.run_policy(FIFO).unwrap();
    assert!(rr.wan_failure.last_chosen_after_ms.unwrap_or(0.0) > 1000.0);
    assert!(rr.wan_failure.affected_sites.settled.failed > 0);
}

#[test]
fn on_a_busy_egress_port_strict_priority_keeps_short_requests_ahead_of_long_ones() {
    let c = EvalCluster::default();
    let u = run_uplink(
        &c,
        &UplinkOptions {
            requests: Some(6000),
            replications: 1,
            ..UplinkOptions::default()
        },
    )
    .unwrap();
    let strict = &u.runs["intellinode"];
    let fifo_port = &u.runs["intellinode_fifo_port"];
    let (s_up, f_up) = (
        strict.uplink.as_ref().unwrap(),
        fifo_port.uplink.as_ref().unwrap(),
    );
    // The port is as busy as planned for both, and nothing overflowed.
    for up in [s_up, f_up] {
        assert!((up.utilisation - 0.8).abs() < 0.08, "{}", up.utilisation);
        assert_eq!(up.dropped_packets, 0);
    }
    // The same decision keeps short work on the edge either way (the models
    // learn from what they observe, so the counts differ a little): what
    // differs is the port's order.
    for r in [strict, fifo_port] {
        let (edge, centre) = (r.short_to["edge"] as f64, r.short_to["centre"] as f64);
        assert!(
            edge / (edge + centre) > 0.95,
            "{}: {edge} / {centre}",
            r.policy
        );
    }
    // An interactive packet waits for the frame on the wire and the
    // interactive packets ahead of it, never for the bulk backlog.
    let frame_ms = 1514.0 * 8.0 / (u.uplink_mbps * 1000.0);
    assert!(
        s_up.interactive_wait_max_ms < 4.0 * frame_ms,
        "strict: interactive waited up to {} ms, a frame takes {frame_ms:.1} ms",
        s_up.interactive_wait_max_ms
    );
    assert!(
        f_up.interactive_wait_mean_ms > 3.0 * s_up.interactive_wait_mean_ms,
        "fifo port {} ms vs strict {} ms",
        f_up.interactive_wait_mean_ms,
        s_up.interactive_wait_mean_ms
    );
    // What the agents feel.
    let p99 = |name: &str| u.short_p99_ttft_ms[name];
    assert!(
        2.0 * p99("intellinode") < p99("intellinode_fifo_port"),
        "strict {} ms, fifo port {} ms",
        p99("intellinode"),
        p99("intellinode_fifo_port")
    );
    // The busy port costs short requests little over unshaped ports: the
    // SYN and the request each wait for about one frame and are sent at
    // the port's rate. (Medians: one run's p99 moves with the episodes in
    // which the edge's own queue builds.)
    let unshaped = run_one(
        &c,
        INTELLINODE,
        "80",
        0.8,
        &EvalOptions {
            seed: 1,
            requests: Some(6000),
            replications: 1,
            uplink_mbps: None,
        },
    )
    .unwrap();
    assert!(unshaped.uplink.is_none(), "unshaped runs have no uplink");
    let added = strict.short.ttft_ms.p50 - unshaped.short.ttft_ms.p50;
    assert!(
        added < 3.0 * frame_ms,
        "strict adds {added:.1} ms to the median, a frame takes {frame_ms:.1} ms"
    );
    assert!(
        fifo_port.short.ttft_ms.p50 - unshaped.short.ttft_ms.p50 > 2.0 * added,
        "fifo port median {} ms",
        fifo_port.short.ttft_ms.p50
    );
}

/// The shared-prefix scenario: four policies on both clusters, the nodes'
/// prefix caches counted, the goals of issue 15 checked, deterministic.
#[test]
fn shared_prefix_agents_hit_the_cache_where_the_policy_follows_the_prefix() {
    use sim::prefix_eval::{run_prefix, PrefixOptions, PrefixScenario};
    let opt = PrefixOptions {
        seed: 7,
        requests: Some(1500),
        replications: 2,
    };
    let s = PrefixScenario::default();
    let r = run_prefix(&s, &opt).unwrap();
    let hit = |policy: &str| r.prefix_hit_rate[policy]["80"];
    let sym_hit = |policy: &str| r.symmetric.prefix_hit_rate[policy]["80"];
    for p in ["fifo", "least_queue", "llm_d", "intellinode"] {
        for load in ["50", "80", "95"] {
            assert!(r.short_p99_ttft_ms[p][load] > 0.0, "{p} {load}");
            assert!(r.long_p99_ttft_ms[p][load] > 0.0, "{p} {load}");
        }
        assert!((0.0..=1.0).contains(&hit(p)) && (0.0..=1.0).contains(&sym_hit(p)));
    }
    // Round robin scatters every persona over every node; the prefix-aware
    // policies keep them together, on both clusters.
    for p in ["llm_d", "intellinode"] {
        assert!(
            sym_hit(p) > sym_hit("fifo") + 0.2,
            "{p} {} vs fifo {}",
            sym_hit(p),
            sym_hit("fifo")
        );
        assert!(
            hit(p) > hit("fifo") + 0.2,
            "{p} {} vs fifo {}",
            hit(p),
            hit("fifo")
        );
    }
    // The network-aware choice keeps short commands off the lossy path.
    assert!(r.short_p99_ttft_ms["intellinode"]["80"] * 1.5 < r.short_p99_ttft_ms["llm_d"]["80"]);
    // Every goal is checked (met or not, the report says which).
    assert_eq!(r.goals.len(), 7, "{:?}", r.goals);
    // Deterministic: the same seed, the same numbers.
    let again = run_prefix(&s, &opt).unwrap();
    assert_eq!(
        serde_json::to_string(&again.runs).unwrap(),
        serde_json::to_string(&r.runs).unwrap()
    );
}
