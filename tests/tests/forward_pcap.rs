//! The `forward` pipeline is a wire: a pcap of mixed traffic (VLAN, IPv6
//! extension chains, RoCEv2, ARP, agent requests, truncated and malformed
//! frames) replayed through `intellinode run` over net_pcap vdevs comes out
//! of the other port identical, packet for packet and in order, and the
//! counters add up.

use std::path::{Path, PathBuf};

use intellinode_tests::*;
use pktgen::pcap;

/// One pcap holding the edge cases, then RoCEv2 training traffic, agent
/// requests and the web-search mix.
fn mixed_input(dir: &Path) -> (PathBuf, Vec<Vec<u8>>) {
    let mut all = Vec::new();
    for (workload, packets) in [
        ("edge-cases", 0),
        ("roce", 3000),
        ("agent", 3000),
        ("mix", 4000),
    ] {
        let p = dir.join(format!("{workload}.pcap"));
        pktgen_write(workload, 11, packets, &p);
        all.extend(frames(&p));
    }
    let input = dir.join("input.pcap");
    let packets: Vec<pktgen::Packet> = all
        .iter()
        .enumerate()
        .map(|(i, f)| pktgen::Packet::new(i as u64 * 1000, f.clone()))
        .collect();
    pcap::write_file(&input, pcap::TsResolution::Micro, &packets).expect("write input pcap");
    (input, all)
}

/// The input really is the mix the issue asks for, so a pass means something.
fn assert_input_is_varied(frames: &[Vec<u8>]) {
    let parsed: Vec<_> = frames.iter().map(|f| classifier::parse(f)).collect();
    let ok = |pred: &dyn Fn(&classifier::ParsedPacket) -> bool| {
        parsed.iter().filter(|p| p.as_ref().is_ok_and(pred)).count()
    };
    assert!(ok(&|p| !p.vlans.is_empty()) > 0, "no VLAN-tagged frame");
    assert!(ok(&|p| p.bth.is_some()) > 100, "too few RoCEv2 packets");
    assert!(ok(&|p| p.l3_kind == classifier::L3Kind::Arp) > 0, "no ARP");
    assert!(
        ok(&|p| p.l3_kind == classifier::L3Kind::Ipv6
            && (p.ipv6_hbh_options.is_some() || p.fragment.is_some()))
            > 0,
        "no IPv6 extension chain"
    );
    assert!(
        parsed.iter().filter(|p| p.is_err()).count() >= 5,
        "too few malformed/truncated frames"
    );
    assert!(frames.iter().any(|f| f.len() < 14), "no runt frame");
}

#[test]
fn mixed_pcap_crosses_the_wire_unchanged_and_counters_balance() {
    let dir = tempfile::tempdir().unwrap();
    let (input, sent) = mixed_input(dir.path());
    assert_input_is_varied(&sent);
    let empty = dir.path().join("empty.pcap");
    write_empty_pcap(&empty);
    let out1 = dir.path().join("out1.pcap");
    let out0 = dir.path().join("out0.pcap");
    let json = dir.path().join("stats.json");

    let _dpdk = dpdk_lock();
    let eal = eal_args(
        "fwdpcap",
        &[
            format!(
                "net_pcap0,rx_pcap={},tx_pcap={}",
                input.display(),
                out0.display()
            ),
            format!(
                "net_pcap1,rx_pcap={},tx_pcap={}",
                empty.display(),
                out1.display()
            ),
        ],
    );
    // It stops by itself once the pcap has gone through (`--until-idle`);
    // the bound is only there for a run that does not.
    let (out, stats) = run_drained(&forward_config(), 10.0, &eal, &json);
    assert!(
        out.status.success(),
        "intellinode failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stopped_idle(&out),
        "the run did not end on going idle:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stats = stats.expect("stats JSON");

    let received = frames(&out1);
    assert_eq!(received.len(), sent.len(), "every packet crossed");
    for (i, (a, b)) in sent.iter().zip(&received).enumerate() {
        assert_eq!(a, b, "packet {i} changed on the way through");
    }
    assert!(
        frames(&out0).is_empty(),
        "nothing may come back out of the ingress port"
    );

    let n = sent.len() as u64;
    let bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
    let port = |i: usize| &stats["ports"][i];
    assert_eq!(port(0)["rx_packets"], n);
    assert_eq!(port(0)["rx_bytes"], bytes);
    assert_eq!(port(1)["tx_packets"], n);
    assert_eq!(port(1)["tx_bytes"], bytes);
    assert_eq!(port(0)["drops_total"], 0);
    assert_eq!(port(0)["drops"]["tx_queue_full"], 0);
    assert_eq!(stats["totals"]["rx_packets"], n);
    assert_eq!(stats["totals"]["tx_packets"], n);
    assert_eq!(stats["totals"]["balanced"], true);
    assert_eq!(
        port(0)["nic"]["rx_packets"],
        n,
        "the driver saw the same packets"
    );
}

#[test]
fn both_directions_forward_independently() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pcap");
    let b = dir.path().join("b.pcap");
    pktgen_write("agent", 1, 500, &a);
    pktgen_write("roce", 2, 700, &b);
    let (out0, out1, json) = (
        dir.path().join("o0.pcap"),
        dir.path().join("o1.pcap"),
        dir.path().join("s.json"),
    );

    let _dpdk = dpdk_lock();
    let eal = eal_args(
        "fwdbidir",
        &[
            format!(
                "net_pcap0,rx_pcap={},tx_pcap={}",
                a.display(),
                out0.display()
            ),
            format!(
                "net_pcap1,rx_pcap={},tx_pcap={}",
                b.display(),
                out1.display()
            ),
        ],
    );
    let (out, stats) = run_drained(&forward_config(), 1.5, &eal, &json);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(frames(&out1), frames(&a), "port0 -> port1");
    assert_eq!(frames(&out0), frames(&b), "port1 -> port0");
    let stats = stats.unwrap();
    assert_eq!(
        stats["totals"]["rx_packets"],
        frames(&a).len() as u64 + frames(&b).len() as u64
    );
    assert_eq!(stats["totals"]["balanced"], true);
}

#[test]
fn live_stats_are_printed_per_port() {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = ["run", "--config"].iter().map(|s| s.to_string()).collect();
    args.push(forward_config().display().to_string());
    args.extend(
        [
            // Long enough for several blocks even when the main lcore
            // shares its CPU with a busy machine.
            "--duration",
            "3",
            "--stats-interval",
            "0.5",
            "--stats-json",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(dir.path().join("s.json").display().to_string());
    args.push("--".into());
    args.extend(eal_args(
        "live",
        &["net_null0".into(), "net_null1,no-rx=1".into()],
    ));
    let out = intellinode(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let blocks = text.lines().filter(|l| l.contains("rx Mpps")).count();
    assert!(blocks >= 2, "expected a rate block every 0.5 s:\n{text}");
    assert!(
        text.lines().any(|l| l.contains("port0 net_null0")),
        "{text}"
    );
    assert!(text.contains("[balanced]"), "{text}");
    // net_null is a packet source at full speed: real traffic was forwarded.
    let stats = read_json(&dir.path().join("s.json"));
    assert!(stats["totals"]["rx_packets"].as_u64().unwrap() > 10_000);
    assert!(stats["totals"]["cycles_per_packet"].as_f64().unwrap() > 0.0);
    assert_eq!(stats["totals"]["balanced"], true);
}

#[test]
fn two_workers_each_own_a_queue_on_every_port() {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    // Three lcores on two CPUs: main on CPU 0, two workers sharing CPU 1.
    let mut eal = eal_args("twoq", &["net_null0".into(), "net_null1,no-rx=1".into()]);
    let l = eal.iter().position(|a| a == "-l").unwrap();
    eal[l] = "--lcores".into();
    eal[l + 1] = "0@0,1@1,2@1".into();
    let (out, stats) = run_forward(&forward_config(), 1.5, &eal, &dir.path().join("s.json"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 worker(s) [lcore1 lcore2]"), "{text}");
    let stats = stats.unwrap();
    let lcores = stats["lcores"].as_array().unwrap();
    assert_eq!(lcores.len(), 2);
    for l in lcores {
        assert!(
            l["rx_packets"].as_u64().unwrap() > 1000,
            "every worker polls its own queue: {l}"
        );
    }
    let per_lcore: u64 = lcores
        .iter()
        .map(|l| l["rx_packets"].as_u64().unwrap())
        .sum();
    assert_eq!(per_lcore, stats["totals"]["rx_packets"].as_u64().unwrap());
    assert_eq!(stats["totals"]["balanced"], true);
}
