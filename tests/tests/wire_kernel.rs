//! `pktgen wire` between real kernel stacks: namespaces A ─veth─ W ─veth─ B
//! with the wire bridging W's two ends, an agent in A and `pktgen serve` in
//! B. Because the wire is the only way between A and B, a TCP connect that
//! takes a round trip proves both directions were delayed; with loss, the
//! wire's own counters must show it and add up.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use intellinode_tests::*;

const A_IP: &str = "10.77.0.1";
const B_IP: &str = "10.77.0.2";

/// The three namespaces, removed on drop (each `Netns` deletes its own).
struct Topology {
    a: Netns,
    w: Netns,
    b: Netns,
}

fn add_ns(name: &str) -> Netns {
    let ns = Netns(name.to_owned());
    ns.ip(&["netns", "add", name]);
    // The kernel's own IPv6 chatter would cross the wire too.
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    ns
}

fn offloads_off(ns: &Netns, iface: &str) {
    // The wire forwards frames as AF_PACKET hands them over: no GSO
    // super-frames, no checksums left for a NIC to fill.
    ns.exec(&[
        "ethtool", "-K", iface, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
    ]);
}

impl Topology {
    fn up(tag: &str) -> Topology {
        let t = Topology {
            a: add_ns(&format!("{tag}-a")),
            w: add_ns(&format!("{tag}-w")),
            b: add_ns(&format!("{tag}-b")),
        };
        for (end, peer, ns, ip) in [("wa", "va", &t.a, A_IP), ("wb", "vb", &t.b, B_IP)] {
            t.w.exec(&[
                "ip", "link", "add", end, "type", "veth", "peer", "name", peer, "netns", &ns.0,
            ]);
            t.w.exec(&["ip", "link", "set", end, "up"]);
            offloads_off(&t.w, end);
            ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", peer]);
            ns.exec(&["ip", "link", "set", peer, "up"]);
            offloads_off(ns, peer);
        }
        t
    }
}

/// Starts `args` of pktgen in `ns` and returns once it printed `ready`.
fn start(ns: &Netns, args: &[&str], ready: &str) -> Child {
    let mut child = ns
        .command(&bin_under_test("pktgen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = ready.to_owned();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains(&wanted) {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        panic!("pktgen {args:?} did not print {ready:?}");
    }
    child
}

fn stop(mut child: Child) {
    // The child is this test's and not yet reaped, so its pid is still its own.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "pktgen exited with {status}");
}

fn wire(t: &Topology, loss: &str, stats: &Path) -> Child {
    start(
        &t.w,
        &[
            "wire",
            "--a",
            "wa",
            "--b",
            "wb",
            "--delay-ms",
            "20",
            "--jitter-ms",
            "2",
            "--loss",
            loss,
            "--seed",
            "7",
            "--duration-s",
            "60",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
        "bridging",
    )
}

fn agent(t: &Topology, args: &[&str], out: &Path) -> Output {
    t.a.command(&bin_under_test("pktgen"))
        .arg("agent")
        .args(args)
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap()
}

fn count(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn the_wire_delays_tcp_and_loses_udp_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topology::up(&format!("wire{}", std::process::id()));
    let serve_json = dir.path().join("serve.json");
    let serve = start(
        &t.b,
        &[
            "serve",
            "--listen",
            &format!("{B_IP}:8000"),
            "--udp",
            &format!("{B_IP}:8001"),
            "--decode-tps",
            "1000",
            "--duration-s",
            "60",
            "--stats-json",
            serve_json.to_str().unwrap(),
        ],
        "listening on",
    );

    // Run 1: delay and jitter, no loss, over TCP.
    let wire_json = dir.path().join("wire-tcp.json");
    let w = wire(&t, "0.0", &wire_json);
    let tcp_json = dir.path().join("tcp.json");
    let o = agent(
        &t,
        &[
            "--target",
            &format!("{B_IP}:8000"),
            "--requests",
            "5",
            "--interval-ms",
            "30",
            "--short-fraction",
            "1",
            "--short-output-tokens",
            "8-16",
            "--timeout-s",
            "10",
        ],
        &tcp_json,
    );
    assert!(
        o.status.success(),
        "agent over TCP: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    stop(w);
    let report = read_json(&tcp_json);
    let requests = report["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 5);
    // A round trip each way through the wire: at least 2 × (20 − 2) ms.
    for r in requests {
        assert!(r["error"].is_null(), "{r}");
        let connect = r["connect_ms"].as_f64().unwrap();
        assert!(
            connect >= 36.0,
            "connect took {connect} ms through the wire"
        );
        assert!(connect < 200.0, "connect took {connect} ms");
        let ttft = r["ttft_ms"].as_f64().unwrap();
        assert!(ttft >= 36.0, "TTFT {ttft} ms is shorter than a round trip");
        let arrival_ttft = r["arrival_ttft_ms"].as_f64().unwrap();
        assert!(
            arrival_ttft >= connect + ttft - 1.0,
            "arrival TTFT {arrival_ttft} misses the connect {connect} + TTFT {ttft}"
        );
        let max_tokens = r["max_tokens"].as_u64().unwrap();
        assert!((8..=16).contains(&max_tokens), "{r}");
        assert_eq!(r["output_tokens"].as_u64(), Some(max_tokens), "{r}");
    }
    assert!(
        report["classes"]["short"]["throughput_tokens_per_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let ws = read_json(&wire_json);
    for dir in ["a_to_b", "b_to_a"] {
        let d = &ws[dir];
        assert!(count(&d["frames_in"]) >= 5 * 4, "{dir}: {d}");
        assert_eq!(d["forwarded"], d["frames_in"], "{dir}: {d}");
        assert_eq!(
            count(&d["lost"]) + count(&d["send_errors"]),
            0,
            "{dir}: {d}"
        );
    }
    assert_eq!(ws["config"]["delay_ms"].as_f64(), Some(20.0));

    // Run 2: 30 % loss each way, over UDP: no retransmission, so requests
    // fail, and the wire counts what it dropped.
    let wire_json = dir.path().join("wire-udp.json");
    let w = wire(&t, "0.3", &wire_json);
    let udp_json = dir.path().join("udp.json");
    let _ = agent(
        &t,
        &[
            "--target",
            &format!("{B_IP}:8001"),
            "--transport",
            "udp",
            "--requests",
            "30",
            "--interval-ms",
            "20",
            "--short-fraction",
            "1",
            "--short-output-tokens",
            "8-8",
            "--timeout-s",
            "1",
        ],
        &udp_json,
    );
    std::thread::sleep(Duration::from_millis(300));
    stop(w);
    let report = read_json(&udp_json);
    let short = &report["classes"]["short"];
    assert_eq!(count(&short["count"]), 30);
    assert!(
        count(&short["ok"]) >= 1,
        "no UDP request got through: {short}"
    );
    assert!(
        count(&short["errors"]) >= 1,
        "30 % loss lost nothing: {short}"
    );
    for r in report["requests"].as_array().unwrap() {
        assert_eq!(r["transport"], "udp");
        match r["error"].as_str() {
            None => assert_eq!(r["output_tokens"].as_u64(), Some(8), "{r}"),
            Some(e) => assert!(e.contains("timed out") || e.contains("lost"), "{e}"),
        }
    }
    let ws = read_json(&wire_json);
    for dir in ["a_to_b", "b_to_a"] {
        let d = &ws[dir];
        assert!(count(&d["lost"]) > 0, "{dir}: {d}");
        assert_eq!(
            count(&d["forwarded"]) + count(&d["lost"]) + count(&d["queue_full"]),
            count(&d["frames_in"]),
            "{dir}: {d}"
        );
    }

    stop(serve);
    let served = read_json(&serve_json);
    assert!(count(&served["udp_datagrams"]) >= 1, "{served}");
    assert_eq!(count(&served["udp_malformed"]), 0, "{served}");
    let udp_records = served["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["transport"] == "udp")
        .count();
    assert!(udp_records >= 1, "{served}");
}
