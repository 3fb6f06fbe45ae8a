//! Real kernel sockets through the appliance: in a private network
//! namespace, two veth pairs join `pktgen send` to `intellinode` (both on
//! `net_af_packet`), so frames cross the kernel twice each way:
//!
//! ```text
//!   pktgen port0 (gA) ==veth==> dA  intellinode  dB ==veth==> gB (pktgen port1)
//! ```
//!
//! pktgen stamps each frame, intellinode forwards it, pktgen reads the stamp
//! back and reports loss and latency. The namespace is removed afterwards,
//! even on failure.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use std::time::{Duration, Instant};

use intellinode_tests::*;

#[test]
fn stamped_frames_cross_two_kernel_veths_and_the_appliance() {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let workload = dir.path().join("agent.pcap");
    pktgen_write("agent", 5, 2000, &workload);

    let ns = Netns::with_two_veth_pairs(&format!("intn-{}", std::process::id()));
    let inb_json = dir.path().join("inb.json");
    let mut inb = ns
        .command(&bin_under_test("intellinode"))
        .args(["run", "--config"])
        .arg(forward_config())
        // The bound; it is stopped once pktgen has its frames back.
        .args(["--duration", "6", "--stats-interval", "0", "--stats-json"])
        .arg(&inb_json)
        .arg("--")
        .args(eal_args(
            "kpath-inb",
            &[
                "net_af_packet0,iface=dA".into(),
                "net_af_packet1,iface=dB".into(),
            ],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn intellinode");
    // Wait until the appliance says it is running.
    let mut lines = BufReader::new(inb.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("running for") => break,
            Some(Ok(_)) => {}
            _ => {
                let _ = inb.kill();
                let out = inb.wait_with_output().unwrap();
                panic!(
                    "intellinode did not start:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        assert!(Instant::now() < deadline, "intellinode start timed out");
    }

    // pktgen's worker goes on CPU 0 (the appliance's worker has CPU 1).
    let gen_json = dir.path().join("gen.json");
    let mut gen_eal = eal_args(
        "kpath-gen",
        &[
            "net_af_packet0,iface=gA".into(),
            "net_af_packet1,iface=gB".into(),
        ],
    );
    gen_eal.extend(["--main-lcore".into(), "1".into()]);
    let gen = ns
        .command(&bin_under_test("pktgen"))
        .args(["send", "--pcap"])
        .arg(&workload)
        .args([
            "--tx-port",
            "0",
            "--rx-port",
            "1",
            "--duration",
            "2",
            "--rate-pps",
            "20000",
            "--json",
        ])
        .arg(&gen_json)
        .arg("--")
        .args(&gen_eal)
        .output()
        .expect("spawn pktgen");
    interrupt(inb.id());
    let inb_out = inb.wait_with_output().unwrap();
    assert!(
        gen.status.success(),
        "pktgen send failed:\n{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    assert!(
        inb_out.status.success(),
        "intellinode failed:\n{}",
        String::from_utf8_lossy(&inb_out.stderr)
    );

    let report = read_json(&gen_json);
    let tx = report["tx_packets"].as_u64().unwrap();
    let rx = report["rx_packets"].as_u64().unwrap();
    assert!(tx >= 20_000, "sent only {tx} packets in 2 s at 20 kpps");
    assert!(
        rx as f64 >= tx as f64 * 0.99,
        "lost too much through the appliance: tx {tx}, rx {rx}"
    );
    assert_eq!(report["lost"].as_u64().unwrap(), tx - rx);
    let p50 = report["latency_us"]["p50"].as_f64().unwrap();
    let p99 = report["latency_us"]["p99"].as_f64().unwrap();
    assert!(p50 > 0.0 && p99 >= p50, "latency p50 {p50} p99 {p99}");
    assert_eq!(report["latency_us"]["samples"].as_u64().unwrap(), rx);

    let stats = read_json(&inb_json);
    assert_eq!(stats["totals"]["balanced"], true);
    assert!(
        stats["ports"][0]["rx_packets"].as_u64().unwrap() >= rx,
        "the appliance forwarded what pktgen got back"
    );
    assert!(stats["ports"][1]["tx_packets"].as_u64().unwrap() >= rx);
}
