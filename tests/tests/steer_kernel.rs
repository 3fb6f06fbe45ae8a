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
//! source port), that control-plane overload and staleness move new flows
//! while flows already running stay, and that the appliance measured each
//! answer and fed its latency model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use intellinode_tests::*;
use steer::TrafficClass;

/// The namespaces, removed on drop.
struct Topology(String);

impl Topology {
    fn up(name: &str) -> Topology {
        let script = workspace_root().join("scripts/steer-topology.sh");
        let out = Command::new("bash")
            .arg(&script)
            .args(["up", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "topology: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Topology(name.to_owned())
    }

    fn command(&self, side: &str, program: &Path) -> Command {
        let ns = if side.is_empty() {
            self.0.clone()
        } else {
            format!("{}-{side}", self.0)
        };
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns]).arg(program);
        c
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let script = workspace_root().join("scripts/steer-topology.sh");
        let _ = Command::new("bash")
            .arg(script)
            .args(["down", &self.0])
            .status();
    }
}

fn serve(t: &Topology, side: &str, args: &[&str], stats: &Path) -> Child {
    let mut child = t
        .command(side, &release_bin("pktgen"))
        .arg("serve")
        .args(args)
        .args(["--duration-s", "60", "--stats-json"])
        .arg(stats)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("listening on"))),
        "pktgen serve ({side}) did not start"
    );
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Starts `pktgen agent` in the agent namespace; its report goes to the
/// returned path.
fn spawn_agent(t: &Topology, dir: &Path, name: &str, args: &[&str]) -> (Child, PathBuf) {
    let out_json = dir.join(format!("{name}.json"));
    let child = t
        .command("agent", &release_bin("pktgen"))
        .args([
            "agent",
            "--target",
            "10.0.100.1:8000",
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

/// Which node served each agent source address ("10.0.1.11:port").
fn served_by(stats: &[(&str, serde_json::Value)]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for (node, s) in stats {
        for r in s["requests"].as_array().unwrap() {
            m.insert(r["peer"].as_str().unwrap().to_owned(), node.to_string());
        }
    }
    m
}

/// The cluster of `examples/steer.toml` in the namespaces: the appliance,
/// an edge node and a centre node 15 ms away, both answering TCP and the
/// INUD datagram protocol on port 8000, and a control listener for `ctl`.
struct Cluster {
    edge: Child,
    centre: Child,
    appliance: Child,
    edge_json: PathBuf,
    centre_json: PathBuf,
    stats_json: PathBuf,
    control_port: u16,
    key_path: PathBuf,
}

impl Cluster {
    fn start(t: &Topology, dir: &Path, file_prefix: &str, workers: Workers) -> Cluster {
        let (key_path, _) = write_key(dir, "orch.key");
        let control_port = free_port();
        let mut config =
            std::fs::read_to_string(workspace_root().join("examples/steer.toml")).unwrap();
        config += &format!(
            "[control]\nlisten = \"127.0.0.1:{control_port}\"\nmax_state_age_ms = 1000\n\
             [[control.peers]]\nid = 1\nname = \"orchestrator\"\nkey_file = \"{}\"\nroles = [\"state\", \"query\"]\n",
            key_path.display()
        );
        let cfg = dir.join("steer.toml");
        std::fs::write(&cfg, config).unwrap();

        let (edge_json, centre_json) = (dir.join("edge.json"), dir.join("centre.json"));
        let edge = serve(
            t,
            "edge",
            &[
                "--listen",
                "10.0.2.2:8000",
                "--udp",
                "10.0.2.2:8000",
                "--name",
                "edge",
                "--prefill-tps",
                "2000",
                "--decode-tps",
                "200",
                "--base-ttft-ms",
                "3",
                "--concurrency",
                "16",
            ],
            &edge_json,
        );
        let centre = serve(
            t,
            "centre",
            &[
                "--listen",
                "10.0.3.2:8000",
                "--udp",
                "10.0.3.2:8000",
                "--name",
                "centre",
                "--prefill-tps",
                "20000",
                "--decode-tps",
                "2000",
                "--base-ttft-ms",
                "8",
                "--concurrency",
                "32",
                "--delay-ms",
                "15",
                "--jitter-ms",
                "3",
            ],
            &centre_json,
        );

        let stats_json = dir.join("stats.json");
        let mut cmd = t.command("", &release_bin("intellinode"));
        cmd.args(["run", "--config"])
            .arg(&cfg)
            .args(["--duration", "60", "--stats-interval", "0", "--stats-json"])
            .arg(&stats_json)
            .arg("--");
        // With two workers every port has two queue pairs, fed by the
        // kernel's fanout, which hashes a request and its NATed response
        // independently: many flows meet the worker that does not own them.
        let qpairs = format!(",qpairs={}", workers.count());
        cmd.args(workers.eal_args(
            file_prefix,
            &[
                format!("net_af_packet0,iface=dag{qpairs}"),
                format!("net_af_packet1,iface=ded{qpairs}"),
                format!("net_af_packet2,iface=dce{qpairs}"),
            ],
        ));
        let appliance = spawn_until_running(cmd);
        Cluster {
            edge,
            centre,
            appliance,
            edge_json,
            centre_json,
            stats_json,
            control_port,
            key_path,
        }
    }

    /// Stops everything; returns the appliance's final stats and which
    /// node served each agent source address.
    fn stop(self) -> (serde_json::Value, HashMap<String, String>) {
        let _ = Command::new("kill")
            .args(["-INT", &self.appliance.id().to_string()])
            .status();
        let report = finish_run(self.appliance, &self.stats_json);
        for mut node in [self.edge, self.centre] {
            let _ = Command::new("kill")
                .args(["-INT", &node.id().to_string()])
                .status();
            let _ = node.wait();
        }
        let served = served_by(&[
            ("edge", read_json(&self.edge_json)),
            ("centre", read_json(&self.centre_json)),
        ]);
        (report, served)
    }
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
        let mut c = t.command("", &release_bin("intellinode"));
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
    std::thread::sleep(Duration::from_millis(250));
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
    let node_of = |req: &serde_json::Value| served[req["local"].as_str().unwrap()].clone();

    // Phase 1: interactive to the edge, bulk to the centre.
    let mut by_class: HashMap<(bool, String), usize> = HashMap::new();
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
    let requests = udp["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 20);
    let mut by_class: HashMap<bool, usize> = HashMap::new();
    for req in requests {
        assert!(req["error"].is_null(), "request failed: {req}");
        let interactive = class_of(req).is_interactive();
        let node = &served[req["local"].as_str().unwrap()];
        assert_eq!(node, if interactive { "edge" } else { "centre" }, "{req}");
        *by_class.entry(interactive).or_default() += 1;
    }
    assert_eq!(by_class.len(), 2, "both classes present: {by_class:?}");

    let s = &report["steer"];
    assert_eq!(s["flows"]["new"], 20, "{s}");
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
