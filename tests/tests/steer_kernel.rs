//! Token-aware steering between real kernel sockets: an agent namespace
//! calls the VIP over TCP (and, in its own test, over UDP with the INUD
//! datagram protocol), the appliance (net_af_packet) picks the edge or the
//! centre instance per request, and `pktgen serve` nodes answer from their
//! own namespaces (scripts/steer-topology.sh).
//!
//! Because the connections are real TCP, every request that completes
//! proves the whole NAT: the agent only accepts segments from the VIP, the
//! instance only gets segments addressed to it, and a single packet sent
//! the wrong way would stall the connection. On top of that the test
//! checks, per request, which node served it (matched by the agent's
//! source address and, over UDP, its request id), that control-plane
//! overload and staleness move new flows while flows already running stay,
//! and that the appliance measured each answer and fed its latency model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use intellinode_tests::steer_cluster::*;
use intellinode_tests::*;
use steer::TrafficClass;

/// Starts `pktgen agent` in the agent namespace; its report goes to the
/// returned path.
fn spawn_agent(t: &Topology, dir: &Path, name: &str, args: &[&str]) -> (Child, PathBuf) {
    let out_json = dir.join(format!("{name}.json"));
    let child = t
        .command("agent", &bin_under_test("pktgen"))
        .args([
            "agent",
            "--target",
            VIP,
            "--tlv",
            "ipv4",
            "--timeout-s",
            "20",
            "--out",
        ])
        .arg(&out_json)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, out_json)
}

/// Waits for an agent started with [`spawn_agent`]; returns its report.
fn finish_agent(name: &str, (child, out_json): (Child, PathBuf)) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "agent {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_json(&out_json)
}

/// Runs `pktgen agent` to completion; returns its report.
fn agent(t: &Topology, dir: &Path, name: &str, args: &[&str]) -> serde_json::Value {
    finish_agent(name, spawn_agent(t, dir, name, args))
}

/// The class the request's token feature ID puts it in.
fn class_of(request: &serde_json::Value) -> TrafficClass {
    let hex = request["feature_id"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x");
    let id = classifier::TokenFeatureId(u64::from_str_radix(hex, 16).unwrap());
    TrafficClass::of(&classifier::token_feature::decode(id).unwrap(), 256)
}

fn real_tcp_requests_are_steered_translated_measured_and_shift_when_the_edge_fails(
    workers: Workers,
) {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("inst{}", std::process::id());
    let t = Topology::up(&name);

    let cluster = Cluster::start(&t, dir.path(), "steerk", workers);
    let cport = cluster.control_port;
    let key_path = cluster.key_path.clone();
    let ctl = |args: &[&str]| {
        let mut c = t.command("", &bin_under_test("intellinode"));
        let out = c
            .args([
                "ctl",
                "--server",
                &format!("127.0.0.1:{cport}"),
                "--key-file",
            ])
            .arg(&key_path)
            .args(["--key-id", "1"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // Flows decided with their TLV so far: a TCP flow's first data
    // segment, which carries it.
    let decided_with_tlv = || {
        let stats: serde_json::Value =
            serde_json::from_slice(&ctl(&["--json", "query", "stats"])).unwrap();
        stats["steer"]["features"]["tlv"].as_u64().unwrap()
    };

    // Phase 1: a mix of short and long requests; no live state yet, so
    // the configured priors decide.
    let mix = agent(
        &t,
        dir.path(),
        "mix",
        &[
            "--requests",
            "24",
            "--interval-ms",
            "40",
            "--short-fraction",
            "0.6",
            "--seed",
            "5",
        ],
    );

    // Phase 2: short requests start streaming from the edge; while they
    // stream, the orchestrator reports the edge overloaded; new requests
    // go to the centre, the running ones finish where they are.
    let before_running = decided_with_tlv();
    let running = spawn_agent(
        &t,
        dir.path(),
        "running",
        &[
            "--requests",
            "6",
            "--interval-ms",
            "10",
            "--short-fraction",
            "1",
            "--seed",
            "6",
        ],
    );
    // The overload comes once all six are decided (they then stream for
    // about a second from the edge), however long the agent takes to
    // start on a busy machine: a fixed wait let a late start be decided
    // after the overload.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while decided_with_tlv() < before_running + 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "the running requests were not all decided within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    ctl(&["node-state", "--node", "1", "--queue", "100"]);
    let after_overload = agent(
        &t,
        dir.path(),
        "overloaded",
        &[
            "--requests",
            "6",
            "--interval-ms",
            "10",
            "--short-fraction",
            "1",
            "--seed",
            "7",
        ],
    );
    let running = finish_agent("running", running);

    // Phase 3: the edge reports healthy, then goes silent past
    // max_state_age (1 s): a failed node, never chosen.
    ctl(&["node-state", "--node", "1", "--queue", "0"]);
    let healthy = agent(
        &t,
        dir.path(),
        "healthy",
        &[
            "--requests",
            "3",
            "--interval-ms",
            "10",
            "--short-fraction",
            "1",
            "--seed",
            "8",
        ],
    );
    std::thread::sleep(Duration::from_millis(1_300));
    let stale = agent(
        &t,
        dir.path(),
        "stale",
        &[
            "--requests",
            "3",
            "--interval-ms",
            "10",
            "--short-fraction",
            "1",
            "--seed",
            "9",
        ],
    );

    let (report, served) = cluster.stop();

    // Every request completed: the NAT works both ways.
    for (phase, r) in [
        ("mix", &mix),
        ("running", &running),
        ("overloaded", &after_overload),
        ("healthy", &healthy),
        ("stale", &stale),
    ] {
        for req in r["requests"].as_array().unwrap() {
            assert!(req["error"].is_null(), "{phase}: request failed: {req}");
        }
    }
    let node_of = |req: &serde_json::Value| {
        served
            .node_of(req)
            .unwrap_or_else(|| panic!("no node served {req}"))
    };

    // Phase 1: interactive to the edge, bulk to the centre.
    let mut by_class: HashMap<(bool, &str), usize> = HashMap::new();
    for req in mix["requests"].as_array().unwrap() {
        let interactive = class_of(req).is_interactive();
        let node = node_of(req);
        assert_eq!(node, if interactive { "edge" } else { "centre" }, "{req}");
        *by_class.entry((interactive, node)).or_default() += 1;
    }
    assert!(by_class.len() == 2, "both classes present: {by_class:?}");

    // Phase 2: the running flows stayed on the edge, new ones moved.
    for req in running["requests"].as_array().unwrap() {
        assert_eq!(node_of(req), "edge", "a running flow stays: {req}");
    }
    for req in after_overload["requests"].as_array().unwrap() {
        assert_eq!(
            node_of(req),
            "centre",
            "new flows avoid an overloaded edge: {req}"
        );
    }
    // Phase 3.
    for req in healthy["requests"].as_array().unwrap() {
        assert_eq!(node_of(req), "edge", "a healthy edge is used again: {req}");
    }
    for req in stale["requests"].as_array().unwrap() {
        assert_eq!(node_of(req), "centre", "a stale edge is not: {req}");
    }

    let s = &report["steer"];
    let total = [&mix, &running, &after_overload, &healthy, &stale]
        .iter()
        .map(|r| r["requests"].as_array().unwrap().len() as u64)
        .sum::<u64>();
    assert_eq!(s["flows"]["new"], total, "{s}");
    assert!(
        s["flows"]["response_translated"].as_u64().unwrap() > total * 3,
        "{s}"
    );
    assert_eq!(s["flows"]["response_without_flow"], 0, "{s}");
    assert!(
        s["rejected_candidates"]["overloaded"].as_u64().unwrap() >= 6,
        "{s}"
    );
    assert!(
        s["rejected_candidates"]["stale_node"].as_u64().unwrap() >= 3,
        "{s}"
    );
    // Each answer was measured (server FIN) and trained its node's model.
    assert_eq!(s["flows"]["measured"], total, "{s}");
    let obs = |inst: &str| s["models"][inst]["observations"].as_u64().unwrap();
    assert_eq!(obs("edge-small") + obs("centre-large"), total);
    // What the appliance observed agrees with what the agent saw (the
    // appliance's TTFT lacks only the agent's own leg and socket time).
    let agent_ttft: Vec<f64> = [&mix, &running, &after_overload, &healthy, &stale]
        .iter()
        .flat_map(|r| r["requests"].as_array().unwrap().iter())
        .filter(|r| class_of(r).is_interactive())
        .map(|r| r["ttft_ms"].as_f64().unwrap())
        .collect();
    let agent_mean = agent_ttft.iter().sum::<f64>() / agent_ttft.len() as f64;
    let interactive = &s["latency"]["interactive"];
    assert_eq!(interactive["measured"], agent_ttft.len());
    let seen = interactive["observed_ttft_ms"].as_f64().unwrap();
    assert!(
        (seen - agent_mean).abs() < 0.3 * agent_mean + 3.0,
        "appliance saw {seen} ms, the agent {agent_mean} ms"
    );
    assert!(interactive["predicted_ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(s["models"]["edge-small"]["ttft_mae_us"]
        .as_f64()
        .unwrap()
        .is_finite());
    assert_eq!(report["totals"]["balanced"], true);
    if workers == Workers::Two {
        assert!(
            handoffs(&report) > 0,
            "the fanout put some packets on the worker not owning their flow"
        );
    }
}

/// The same steering for the INUD datagram protocol: each request is one
/// UDP datagram from its own socket, decided on that datagram, answered by
/// a stream of datagrams that the appliance sends back from the VIP.
fn udp_requests_are_steered_by_class_and_answered_from_the_vip(workers: Workers) {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let t = Topology::up(&format!("insu{}", std::process::id()));
    let cluster = Cluster::start(&t, dir.path(), "steeru", workers);
    // Long requests keep to a datagram's worth of prompt, and ask for
    // enough output to be bulk work.
    let udp = agent(
        &t,
        dir.path(),
        "udp",
        &[
            "--transport",
            "udp",
            "--requests",
            "20",
            "--interval-ms",
            "30",
            "--short-fraction",
            "0.5",
            "--long-prompt-words",
            "20-40",
            "--long-output-tokens",
            "300-400",
            "--seed",
            "11",
        ],
    );
    let (report, served) = cluster.stop();

    // The agent's sockets are connected to the VIP, so every answer came
    // back from it: the NAT works both ways for UDP.
    let mut requests: Vec<&serde_json::Value> =
        udp["requests"].as_array().unwrap().iter().collect();
    assert_eq!(requests.len(), 20);
    requests.sort_by(|a, b| {
        a["start_ms"]
            .as_f64()
            .partial_cmp(&b["start_ms"].as_f64())
            .unwrap()
    });
    // A flow is the 5-tuple, and Linux gives each UDP socket a random
    // ephemeral port: now and then a later socket gets an earlier one's.
    // Its request then joins that flow, still in the table (idle timeout
    // 30 s), and keeps the flow's node; every flow's first request is
    // decided by its class.
    let mut node_of_flow: HashMap<&str, &str> = HashMap::new();
    let mut by_class: HashMap<bool, usize> = HashMap::new();
    for req in requests {
        assert!(req["error"].is_null(), "request failed: {req}");
        let node = served
            .node_of(req)
            .unwrap_or_else(|| panic!("no node served {req}"));
        let local = req["local"].as_str().unwrap();
        if let Some(&flow_node) = node_of_flow.get(local) {
            assert_eq!(node, flow_node, "a flow keeps its node: {req}");
            continue;
        }
        let interactive = class_of(req).is_interactive();
        assert_eq!(node, if interactive { "edge" } else { "centre" }, "{req}");
        node_of_flow.insert(local, node);
        *by_class.entry(interactive).or_default() += 1;
    }
    assert_eq!(by_class.len(), 2, "both classes present: {by_class:?}");

    let s = &report["steer"];
    assert_eq!(s["flows"]["new"], node_of_flow.len(), "{s}");
    assert!(
        s["flows"]["response_translated"].as_u64().unwrap() > 20,
        "{s}"
    );
    assert_eq!(s["flows"]["response_without_flow"], 0, "{s}");
    assert_eq!(report["totals"]["balanced"], true);
    if workers == Workers::Two {
        assert!(
            handoffs(&report) > 0,
            "the fanout put some packets on the worker not owning their flow"
        );
    }
}

// Every scenario runs on one worker and on two.
on_one_and_two_workers!(
    real_tcp_requests_are_steered_translated_measured_and_shift_when_the_edge_fails,
    udp_requests_are_steered_by_class_and_answered_from_the_vip,
);
