//! The control plane over real sockets: updates sent by `intellinode ctl`
//! change where packets go, and every kind of bad datagram is rejected,
//! counted under its own reason, and changes nothing.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use control::{Message, Metric, MetricType, PathId, PathState, Unit};
use intellinode_tests::*;

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn path_latency(path: u16, us: f64) -> Message {
    Message::PathState(PathState::new(
        PathId(path),
        vec![Metric::new(MetricType::PathLatency, Unit::Microseconds, us)],
    ))
}

fn ctl_json(port: u16, key: &Path, key_id: u32, what: &str) -> serde_json::Value {
    serde_json::from_str(&ctl(None, port, key, key_id, &["--json", "query", what])).unwrap()
}

#[test]
fn bad_datagrams_are_rejected_by_reason_and_change_nothing() {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let (orch_path, orch_key) = write_key(dir.path(), "orch.key");
    let (probe_path, _) = write_key(dir.path(), "probe.key");
    let peers = format!(
        "[[control.peers]]\nid = 1\nname = \"orchestrator\"\nkey_file = \"{}\"\nroles = [\"state\", \"policy\", \"capability\", \"query\"]\n\
         [[control.peers]]\nid = 2\nname = \"node-agent\"\nkey_file = \"{}\"\nroles = [\"state\"]\nnodes = [5]\n",
        orch_path.display(),
        probe_path.display()
    );
    let (cport, mport) = (free_port(), free_port());
    let cfg = control_config(dir.path(), cport, mport, 60_000, &peers);
    let json = dir.path().join("stats.json");
    let mut cmd = Command::new(bin_under_test("intellinode"));
    cmd.args(["run", "--config"])
        .arg(&cfg)
        // The bound; it is stopped once the checks are done.
        .args(["--duration", "6", "--stats-interval", "0", "--stats-json"])
        .arg(&json)
        .arg("--");
    // Port 0 is a packet source, so workers run bursts and pick up each view.
    cmd.args(eal_args(
        "ctlsec",
        &["net_null0".into(), "net_null1,no-rx=1".into()],
    ));
    let child = spawn_until_running(cmd);

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", cport)).unwrap();
    let mut orch = control::Sender::new(1, orch_key.clone(), realtime_ns() / 1000);
    let pause = || std::thread::sleep(Duration::from_millis(30));

    // The genuine update, accepted.
    let good = orch.seal(&path_latency(7, 100.0), realtime_ns()).unwrap();
    sock.send(&good).unwrap();
    pause();

    // A forged copy of the next genuine datagram (one ciphertext byte
    // flipped) goes first: rejected, and it must not burn the genuine
    // datagram's sequence number.
    let genuine = orch.seal(&path_latency(7, 150.0), realtime_ns()).unwrap();
    let mut forged = genuine.clone();
    forged[50] ^= 0x01;
    sock.send(&forged).unwrap(); // auth_failed
    pause();
    sock.send(&genuine).unwrap(); // accepted: latency 150
    pause();
    sock.send(&good).unwrap(); // replayed
    let old = orch
        .seal(&path_latency(7, 555.0), realtime_ns() - 120_000_000_000)
        .unwrap();
    sock.send(&old).unwrap(); // stale
    sock.send(&good[..40]).unwrap(); // truncated
    let mut huge = good.clone();
    huge.resize(5000, 0);
    sock.send(&huge).unwrap(); // oversized
    let mut stranger = control::Sender::new(99, control::Key::generate(), 1);
    sock.send(&stranger.seal(&path_latency(7, 1.0), realtime_ns()).unwrap())
        .unwrap(); // unknown_peer
    pause();

    // A node agent may report state for node 5 only, and may not announce
    // capabilities at all.
    ctl(
        None,
        cport,
        &probe_path,
        2,
        &["node-state", "--node", "5", "--queue", "3"],
    ); // accepted
    ctl(
        None,
        cport,
        &probe_path,
        2,
        &["node-state", "--node", "6", "--queue", "9"],
    ); // unauthorised
    ctl(
        None,
        cport,
        &probe_path,
        2,
        &[
            "capability",
            "--node",
            "5",
            "--model",
            "fake-70b",
            "--class",
            "centre",
            "--accelerator",
            "H100",
            "--tasks",
            "chat",
            "--max-context",
            "128000",
            "--prefill-tps",
            "1000000",
            "--decode-tps",
            "10000",
        ],
    ); // unauthorised
    pause();

    let stats = ctl_json(cport, &orch_path, 1, "stats");
    let rejected = &stats["control"]["rejected"];
    for (reason, n) in [
        ("auth_failed", 1),
        ("replayed", 1),
        ("stale", 1),
        ("truncated", 1),
        ("oversized", 1),
        ("unknown_peer", 1),
        ("unauthorised", 2),
        ("bad_magic", 0),
        ("malformed_body", 0),
    ] {
        assert_eq!(rejected[reason], n, "rejected[{reason}] in {stats}");
    }
    assert_eq!(stats["control"]["accepted"]["path_state"], 2, "{stats}");
    assert_eq!(stats["control"]["accepted"]["node_state"], 1, "{stats}");
    assert_eq!(stats["control"]["accepted"]["capability"], 0, "{stats}");

    // The state holds exactly the genuine updates.
    let state = ctl_json(cport, &orch_path, 1, "state");
    let paths = state["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 1, "{state}");
    assert_eq!(paths[0]["id"], 7);
    assert_eq!(
        paths[0]["latency_us"], 150.0,
        "the forged 999 or the stale 555 must not have landed"
    );
    let nodes = state["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{state}");
    assert_eq!(nodes[0]["id"], 5);
    assert!(
        state["capabilities"].as_array().unwrap().is_empty(),
        "{state}"
    );

    // 1250 new path definitions, 250 a message: the appliance keeps 1024.
    // Every message is accepted, and the 226 its table had no room for
    // are counted, not silently lost. (A sender of its own: the ctl runs
    // since have moved the peer's replay window past `orch`'s sequence.)
    let mut orch = control::Sender::new(1, orch_key.clone(), realtime_ns() / 1000);
    for batch in 0..5u16 {
        let policy = control::Policy {
            path_defs: (0..250u16)
                .map(|i| control::PathDef {
                    id: PathId(100 + batch * 250 + i),
                    egress_port: 1,
                    next_hop_mac: [2, 0, 0, 0, 0, 1],
                    name: String::new(),
                })
                .collect(),
            ..control::Policy::default()
        };
        sock.send(&orch.seal(&Message::Policy(policy), realtime_ns()).unwrap())
            .unwrap();
        pause();
    }

    let stats = ctl_json(cport, &orch_path, 1, "stats");
    assert_eq!(stats["control"]["accepted"]["policy"], 5, "{stats}");
    assert_eq!(stats["control"]["policy_entries_dropped"], 226, "{stats}");
    // A state of 1024 path definitions is more than one reply carries:
    // the querier is told so rather than left without a reply.
    let state = ctl_json(cport, &orch_path, 1, "state");
    assert!(
        state["error"]
            .as_str()
            .is_some_and(|e| e.contains("more than the 64914 one reply carries")),
        "{state}"
    );

    // The same numbers over HTTP, as a Prometheus scraper sees them.
    let scrape = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{mport}/metrics")])
        .output()
        .expect("curl");
    assert!(scrape.status.success(), "curl failed");
    let text = String::from_utf8(scrape.stdout).unwrap();
    let value = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{needle} not in metrics:\n{text}"))
    };
    assert_eq!(
        value("intellinode_control_rejected_total{reason=\"auth_failed\"}"),
        1.0
    );
    assert_eq!(
        value("intellinode_control_rejected_total{reason=\"unauthorised\"}"),
        2.0
    );
    assert_eq!(
        value("intellinode_control_accepted_total{kind=\"path_state\"}"),
        2.0
    );
    assert_eq!(
        value("intellinode_control_policy_entries_dropped_total"),
        226.0
    );
    assert_eq!(
        value("intellinode_state_fresh{kind=\"path\",id=\"7\"}"),
        1.0
    );
    assert!(value("intellinode_state_age_seconds{kind=\"path\",id=\"7\"}") < 10.0);
    assert!(
        value("intellinode_control_visible_latency_seconds_count") >= 1.0,
        "workers saw the update"
    );
    assert!(text.contains("# TYPE intellinode_port_rx_packets_total counter"));

    let report = interrupt_run(child, &json);
    assert_eq!(report["control"]["rejected_total"], 8);
}

/// tcpdump writing what `iface` in `ns` receives into `path`.
struct Capture {
    tcpdump: std::process::Child,
    path: std::path::PathBuf,
}

impl Capture {
    /// Returns once tcpdump says it is listening: nothing sent after is
    /// missed.
    fn start(ns: &Netns, iface: &str, path: &Path) -> Capture {
        use std::io::BufRead;
        let mut tcpdump = ns
            .command(Path::new("tcpdump"))
            .args(["-i", iface, "-U", "-n", "-s", "0", "-w"])
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump is required (make deps installs it)");
        let err = tcpdump.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(err).lines();
        assert!(
            lines.any(|l| l.is_ok_and(|l| l.contains("listening on"))),
            "tcpdump did not start"
        );
        Capture {
            tcpdump,
            path: path.to_owned(),
        }
    }

    /// Stops tcpdump once the capture holds `want` frames, or after 10 s
    /// (it may lag behind the port on a busy machine), and returns them.
    fn finish(mut self, want: usize) -> Vec<pktgen::pcap::Record> {
        let captured = |p: &Path| pktgen::pcap::read_file(p).map_or(0, |r| r.len());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline && captured(&self.path) < want {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.tcpdump.id().to_string()])
            .status();
        let _ = self.tcpdump.wait();
        pktgen::pcap::read_file(&self.path).unwrap()
    }
}

/// Waits until the appliance's port `port` has sent `want` packets (asked
/// with `ctl query stats` through `ctl`): at the stop flag the workers
/// drain what they hold, not what still waits in the kernel's socket rings.
fn wait_for_tx(ctl: impl Fn(&[&str]) -> String, port: usize, want: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats: serde_json::Value =
            serde_json::from_str(&ctl(&["--json", "query", "stats"])).unwrap();
        let tx = stats["ports"][port]["tx_packets"].as_u64().unwrap_or(0);
        if tx >= want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "port {port} sent {tx} of {want} packets"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `intellinode run` of `cfg` in `ns` with port 0 on dA and port 1 on dB,
/// writing its stats to `json`; it runs until interrupted (phases of
/// pktgen runs take longer on a busy machine than any fixed duration).
fn run_between_veths(ns: &Netns, cfg: &Path, json: &Path, tag: &str) -> Running {
    let mut cmd = ns.command(&bin_under_test("intellinode"));
    cmd.args(["run", "--config"])
        .arg(cfg)
        .args(["--stats-interval", "0", "--stats-json"])
        .arg(json)
        .arg("--")
        .args(eal_args(
            tag,
            &[
                "net_af_packet0,iface=dA".into(),
                "net_af_packet1,iface=dB".into(),
            ],
        ));
    spawn_until_running(cmd)
}

/// Replays `count` frames of `pcap` into gA of `ns` at `rate_pps` with
/// `pktgen send` (EAL prefix from `tag`, its main lcore on CPU 1).
fn replay(ns: &Netns, tag: &str, pcap: &Path, count: usize, rate_pps: u32) {
    let mut gen_eal = eal_args(tag, &["net_af_packet0,iface=gA".into()]);
    gen_eal.extend(["--main-lcore".into(), "1".into()]);
    let send = || {
        ns.command(&bin_under_test("pktgen"))
            .args(["send", "--pcap"])
            .arg(pcap)
            .args(["--tx-port", "0", "--rx-port", "0", "--count"])
            .arg(count.to_string())
            .arg("--rate-pps")
            .arg(rate_pps.to_string())
            .args(["--duration", "5", "--drain-ms", "200", "--"])
            .args(&gen_eal)
            .output()
            .unwrap()
    };
    // DPDK's af_packet PMD names its fanout group (pid ^ ifindex) & 0xffff,
    // and the kernel refuses (EINVAL) a group id that the appliance's own
    // af_packet ports in this namespace already hold for another device:
    // a pid a few numbers after the appliance's can collide. A new process
    // draws a new pid; the failure is at device probe, before any frame.
    let mut out = send();
    for _ in 0..3 {
        if out.status.success()
            || !String::from_utf8_lossy(&out.stderr).contains("could not set PACKET_FANOUT")
        {
            break;
        }
        out = send();
    }
    assert!(
        out.status.success(),
        "pktgen {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Counts the destination MACs of a capture, in order, as runs:
/// `[(mac, how many in a row), ...]`.
fn mac_runs(frames: &[pktgen::pcap::Record]) -> Vec<([u8; 6], usize)> {
    let mut runs: Vec<([u8; 6], usize)> = Vec::new();
    for r in frames {
        let Some(mac) = r.data.get(..6).and_then(|m| <[u8; 6]>::try_from(m).ok()) else {
            continue;
        };
        match runs.last_mut() {
            Some((m, n)) if *m == mac => *n += 1,
            _ => runs.push((mac, 1)),
        }
    }
    runs
}

#[test]
fn ctl_updates_change_where_packets_go_and_stale_state_falls_back() {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let (key_path, _) = write_key(dir.path(), "orch.key");
    let peers = format!(
        "[[control.peers]]\nid = 1\nname = \"orchestrator\"\nkey_file = \"{}\"\nroles = [\"state\", \"policy\", \"query\"]\n",
        key_path.display()
    );
    let (cport, mport) = (free_port(), free_port());
    let cfg = control_config(dir.path(), cport, mport, 1_500, &peers);
    let workload = dir.path().join("agent.pcap");
    pktgen_write("agent", 3, 300, &workload);

    let ns = Netns::with_two_veth_pairs(&format!("intc-{}", std::process::id()));
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    let capture = Capture::start(&ns, "gB", &dir.path().join("out.pcap"));

    let json = dir.path().join("stats.json");
    let appliance = run_between_veths(&ns, &cfg, &json, "ctlpath");

    let send = |phase: &str| replay(&ns, &format!("ctlgen{phase}"), &workload, 200, 4000);
    let c = |args: &[&str]| ctl(Some(&ns), cport, &key_path, 1, args);

    // Two paths out of port 1, told apart by next-hop MAC; the agents' VIP
    // may use either, path 1 preferred on ties and as the fallback.
    // Set up from a message file (ctl apply); later changes use flags.
    let setup = dir.path().join("setup.toml");
    std::fs::write(
        &setup,
        "[[path_state]]\npath = 1\nlatency_us = 200.0\njitter_us = 10.0\n\
         [[path_state]]\npath = 2\nlatency_us = 900.0\n\
         [[policy]]\npaths = [\"1,1,02:00:00:00:00:0a,edge\", \"2,1,02:00:00:00:00:0b,centre\"]\nroutes = [\"10.0.100.1=1,2\"]\n",
    )
    .unwrap();
    c(&["apply", setup.to_str().unwrap()]);
    send("a"); // path 1 is faster
    c(&["path-state", "--path", "1", "--latency-us", "5000"]);
    c(&["path-state", "--path", "2", "--latency-us", "900"]);
    send("b"); // now path 2 is
    std::thread::sleep(Duration::from_millis(2_000)); // both go stale (1.5 s)
    send("c"); // no fresh state: the entry's first path, counted as a fallback

    // Stop only once all three phases have left port 1.
    wait_for_tx(c, 1, 600);
    let _ = Command::new("kill")
        .args(["-INT", &appliance.id().to_string()])
        .status();
    let out = appliance.into_child().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let captured = capture.finish(600);

    let edge = [2, 0, 0, 0, 0, 0x0a];
    let centre = [2, 0, 0, 0, 0, 0x0b];
    let runs = mac_runs(&captured);
    assert_eq!(
        runs,
        vec![(edge, 200), (centre, 200), (edge, 200)],
        "destination MACs per phase"
    );

    let report = read_json(&json);
    assert_eq!(
        report["decisions"]["steered"], 400,
        "{}",
        report["decisions"]
    );
    assert_eq!(
        report["decisions"]["stale_fallback"], 200,
        "{}",
        report["decisions"]
    );
    assert_eq!(report["totals"]["balanced"], true);
    // Rewritten frames are otherwise intact: every IPv4 header still checks.
    for r in &captured {
        let p = classifier::parse(&r.data).expect("captured frame parses");
        assert!(p.flow.is_some());
    }
}

/// `ctl query` against a stand-in appliance whose reply is sealed two
/// minutes in the past: the client applies the protocol's age limit to
/// replies as the appliance does to requests, and says so in one line.
#[test]
fn ctl_refuses_a_reply_past_the_age_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, key) = write_key(dir.path(), "viewer.key");
    let appliance = UdpSocket::bind("127.0.0.1:0").unwrap();
    appliance
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = appliance.local_addr().unwrap();
    let mut rx = control::Receiver::new(
        vec![control::PeerConfig::new(
            3,
            "viewer",
            key,
            control::Roles::QUERY,
        )],
        control::ReceiverConfig::default(),
    )
    .unwrap();
    let client = Command::new(bin_under_test("intellinode"))
        .args(["ctl", "--server", &addr.to_string(), "--key-file"])
        .arg(&key_path)
        .args(["--key-id", "3", "--timeout-ms", "3000", "query", "stats"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctl");
    let mut buf = [0u8; 4096];
    let (n, from) = appliance.recv_from(&mut buf).expect("ctl sends its query");
    let query = rx.accept(&buf[..n], realtime_ns()).expect("a valid query");
    let two_minutes_ago = realtime_ns() - 120_000_000_000;
    let reply = rx
        .seal_reply(
            query.peer_id,
            query.seq,
            "{}",
            two_minutes_ago,
            &mut rand::rngs::OsRng,
        )
        .unwrap();
    appliance.send_to(&reply, from).unwrap();

    let out = client.wait_with_output().unwrap();
    let line = assert_one_line_error(&out, "stale: origin time is 120");
    assert!(line.contains("more than 30000 ms"), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing printed as a result");
}

/// A tensor appliance reads its overlay paths' PATH_STATE: a path
/// reported lossy beyond `max_path_loss_ratio` takes no new message, and
/// messages are sliced over both paths again once it recovers. Both paths
/// leave port 1, told apart by their next-hop MAC.
#[test]
fn path_state_moves_tensor_messages_off_a_lossy_overlay_path() {
    use pktgen::workload::flows::{Host, RcConnection};
    use rand::SeedableRng;

    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let (ctl_key, _) = write_key(dir.path(), "orch.key");
    let (overlay_key, _) = write_key(dir.path(), "overlay.key");
    let cport = free_port();
    let cfg = dir.path().join("tensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "pipeline = \"tensor\"\nidle_sleep_us = 20\n[[pairs]]\nports = [0, 1]\n\
             [tensor]\nhost_port = 0\nlocal_ip = \"192.0.2.1\"\nkey_file = \"{}\"\nmin_slice_bytes = 65536\n\
             [tensor.qp]\nlarge_rate_mbps = 1e12\n\
             [[tensor.paths]]\nid = 1\nport = 1\nnext_hop_mac = \"02:00:00:00:01:01\"\nremote_ip = \"192.0.2.2\"\ncapacity_mbps = 10000\nlatency_us = 5\n\
             [[tensor.paths]]\nid = 2\nport = 1\nnext_hop_mac = \"02:00:00:00:02:01\"\nremote_ip = \"192.0.2.2\"\ncapacity_mbps = 10000\nlatency_us = 8\n\
             [control]\nlisten = \"127.0.0.1:{cport}\"\nmax_state_age_ms = 600000\n\
             [[control.peers]]\nid = 1\nname = \"orchestrator\"\nkey_file = \"{}\"\nroles = [\"state\", \"query\"]\n",
            overlay_key.display(),
            ctl_key.display()
        ),
    )
    .unwrap();
    // One 1 MiB RDMA WRITE per phase (a gradient by its size), on a QP of
    // its own: 1024 frames, sliced in 64 KiB slices.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let phases: Vec<std::path::PathBuf> = (0..3)
        .map(|i| {
            let mut qp = RcConnection::new(
                &mut rng,
                Host::new(std::net::Ipv4Addr::new(10, 10, 0, 1 + i)),
                Host::new(std::net::Ipv4Addr::new(10, 10, 0, 9)),
            );
            let (packets, _) = qp.write(&mut rng, 1 << 20, 0, 100).unwrap();
            let path = dir.path().join(format!("phase{i}.pcap"));
            let frames: Vec<Vec<u8>> = packets.into_iter().map(|p| p.data).collect();
            write_frames(&path, &frames);
            path
        })
        .collect();
    const PER_PHASE: usize = 1024;

    let ns = Netns::with_two_veth_pairs(&format!("intt-{}", std::process::id()));
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    let capture = Capture::start(&ns, "gB", &dir.path().join("out.pcap"));
    let json = dir.path().join("stats.json");
    let appliance = run_between_veths(&ns, &cfg, &json, "ctltensor");
    let c = |args: &[&str]| ctl(Some(&ns), cport, &ctl_key, 1, args);
    let send = |i: usize| {
        replay(&ns, &format!("ctltgen{i}"), &phases[i], PER_PHASE, 10_000);
        wait_for_tx(c, 1, (PER_PHASE * (i + 1)) as u64);
    };

    send(0); // no report: both paths
    c(&[
        "path-state",
        "--path",
        "1",
        "--latency-us",
        "5",
        "--loss",
        "0.2",
    ]);
    send(1); // path 1 loses 20 %: path 2 only
    let stats: serde_json::Value = serde_json::from_str(&c(&["--json", "query", "stats"])).unwrap();
    let paths = &stats["tensor"]["paths"];
    assert_eq!(paths[0]["id"], 1, "{paths}");
    assert_eq!(paths[0]["down_in_workers"], 1, "{paths}");
    assert_eq!(paths[1]["down_in_workers"], 0, "{paths}");
    c(&[
        "path-state",
        "--path",
        "1",
        "--latency-us",
        "5",
        "--loss",
        "0",
    ]);
    send(2); // recovered: both again

    let report = interrupt_run(appliance, &json);
    let out = capture.finish(3 * PER_PHASE);
    let on_path = |phase: usize, mac: [u8; 6]| {
        out.iter()
            .skip(phase * PER_PHASE)
            .take(PER_PHASE)
            .filter(|r| r.data.get(..6) == Some(&mac[..]))
            .count()
    };
    let (p1, p2) = ([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 1]);
    assert_eq!(out.len(), 3 * PER_PHASE, "every frame left port 1");
    assert_eq!(on_path(0, p1) + on_path(0, p2), PER_PHASE);
    let counts: Vec<(usize, usize)> = (0..3).map(|i| (on_path(i, p1), on_path(i, p2))).collect();
    assert!(
        on_path(0, p1) >= 256 && on_path(0, p2) >= 256,
        "phase 0 on both paths: {counts:?}"
    );
    assert_eq!(
        on_path(1, p2),
        PER_PHASE,
        "phase 1 avoids the lossy path: {counts:?}"
    );
    assert!(
        on_path(2, p1) >= 256 && on_path(2, p2) >= 256,
        "phase 2 on both again: {counts:?}"
    );
    assert_eq!(report["tensor"]["events"]["messages_sliced"], 2);
    let events = &report["tensor"]["events"];
    assert_eq!(events["path_down"], 1, "{events}");
    assert_eq!(events["path_up"], 1, "{events}");
    assert_eq!(events["planned_over_down_paths"], 0, "{events}");
    assert_eq!(report["tensor"]["paths"][0]["down_in_workers"], 0);
    assert_eq!(report["totals"]["balanced"], true);
}
