//! Active path measurement between two real appliances: one probes a path,
//! the other reflects, over veths in a private namespace. What comes back
//! becomes measured path state; when the reflector dies, the path's loss
//! goes to 1 and its latency to unknown, so no decision can use it.

use std::process::Command;
use std::time::Duration;

use intellinode_tests::*;

fn query(ns: &Netns, port: u16, key: &std::path::Path, what: &str) -> serde_json::Value {
    serde_json::from_str(&ctl(Some(ns), port, key, 1, &["--json", "query", what])).unwrap()
}

fn path1(state: &serde_json::Value) -> serde_json::Value {
    state["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == 1)
        .cloned()
        .unwrap_or_else(|| panic!("no path 1 in {state}"))
}

#[test]
fn probes_measure_a_path_and_notice_when_its_reflector_dies() {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let (orch_key, _) = write_key(dir.path(), "orch.key");
    let (probe_key, _) = write_key(dir.path(), "probe.key");
    let (cport, mport) = (free_port(), free_port());
    let peers = format!(
        "[[control.peers]]\nid = 1\nname = \"orchestrator\"\nkey_file = \"{}\"\nroles = [\"state\", \"policy\", \"query\"]\n\
         [probe]\ninterval_ms = 50\ntimeout_ms = 200\nwindow = 10\nkey_file = \"{}\"\nsrc_ip = \"192.0.2.1\"\n\
         [[probe.targets]]\npath = 1\ndst_ip = \"192.0.2.2\"\n",
        orch_key.display(),
        probe_key.display()
    );
    let cfg = control_config(dir.path(), cport, mport, 2_000, &peers);
    let reflector_cfg = dir.path().join("reflector.toml");
    std::fs::write(&reflector_cfg, "pipeline = \"forward\"\nidle_sleep_us = 20\n[[pairs]]\nports = [0, 1]\n[probe]\nreflect = true\n").unwrap();

    let ns = Netns::with_two_veth_pairs(&format!("intp-{}", std::process::id()));
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    let prober_json = dir.path().join("prober.json");
    let mut cmd = ns.command(&bin_under_test("intellinode"));
    cmd.args(["run", "--config"])
        .arg(&cfg)
        // Stopped with SIGINT once the checks are done; the bound (past
        // the 20 s the test waits for replies) stops it if the test fails.
        .args(["--duration", "25", "--stats-interval", "0", "--stats-json"])
        .arg(&prober_json)
        .arg("--");
    cmd.args(eal_args(
        "prober",
        &[
            "net_af_packet0,iface=dA".into(),
            "net_af_packet1,iface=dB".into(),
        ],
    ));
    let prober = spawn_until_running(cmd);

    let reflector_json = dir.path().join("reflector.json");
    let mut cmd = ns.command(&bin_under_test("intellinode"));
    cmd.args(["run", "--config"])
        .arg(&reflector_cfg)
        // The test stops it with SIGINT; the bound makes sure it stops by
        // itself even if the test fails before that.
        .args(["--duration", "30", "--stats-interval", "0", "--stats-json"])
        .arg(&reflector_json)
        .arg("--");
    let mut reflector_eal = eal_args(
        "reflector",
        &["net_af_packet0,iface=gB".into(), "net_null0,no-rx=1".into()],
    );
    reflector_eal.extend(["--main-lcore".into(), "1".into()]);
    cmd.args(reflector_eal);
    let reflector = spawn_until_running(cmd);

    // The orchestrator defines path 1: out of port 1 towards the reflector.
    ctl(
        Some(&ns),
        cport,
        &orch_key,
        1,
        &["policy", "--path", "1,1,02:00:00:00:00:0b,to-reflector"],
    );
    // Wait for at least 15 probes answered, however slowly a loaded machine
    // schedules the probe thread (bounded: the test fails after 20 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let stats = query(&ns, cport, &orch_key, "stats");
        let replies = stats["control"]["probe"]["replies"].as_u64().unwrap_or(0);
        if replies >= 15 || std::time::Instant::now() > deadline {
            break;
        }
    }

    let p = path1(&query(&ns, cport, &orch_key, "state"));
    assert_eq!(p["from_peer"], 0, "measured by the appliance itself: {p}");
    assert_eq!(p["freshness"], "fresh", "{p}");
    assert_eq!(p["loss_ratio"], 0.0, "{p}");
    let latency = p["latency_us"]
        .as_f64()
        .unwrap_or_else(|| panic!("no latency measured: {p}"));
    assert!(
        latency > 0.0 && latency < 50_000.0,
        "one-way latency {latency} us"
    );
    let stats = query(&ns, cport, &orch_key, "stats");
    let probe = &stats["control"]["probe"];
    assert!(probe["sent"].as_u64().unwrap() >= 15, "{probe}");
    assert!(probe["replies"].as_u64().unwrap() >= 15, "{probe}");
    assert_eq!(probe["bad_tag"], 0, "{probe}");
    // The same outcomes are exposed to Prometheus.
    let scrape = ns
        .command(std::path::Path::new("curl"))
        .args(["-sf", &format!("http://127.0.0.1:{mport}/metrics")])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&scrape.stdout);
    let replied = text
        .lines()
        .find_map(|l| l.strip_prefix("intellinode_probe_total{outcome=\"replied\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no probe outcomes in /metrics:\n{text}"));
    assert!(replied >= 15.0, "replied {replied}");

    // The reflector goes away: probes go unanswered.
    let _ = Command::new("kill")
        .args(["-INT", &reflector.id().to_string()])
        .status();
    let r = reflector.into_child().wait_with_output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    std::thread::sleep(Duration::from_millis(1200));
    let p = path1(&query(&ns, cport, &orch_key, "state"));
    assert_eq!(p["loss_ratio"], 1.0, "{p}");
    assert!(p["latency_us"].is_null(), "no latency without replies: {p}");

    let _ = Command::new("kill")
        .args(["-INT", &prober.id().to_string()])
        .status();
    let prober_stats = finish_run(prober, &prober_json);
    assert_eq!(prober_stats["totals"]["balanced"], true);
    let consumed = prober_stats["ports"][1]["drops"]["probe_reply_consumed"]
        .as_u64()
        .unwrap();
    assert!(
        consumed >= 15,
        "replies are consumed, not forwarded: {}",
        prober_stats["ports"][1]
    );
    let reflector_stats = read_json(&reflector_json);
    assert!(
        reflector_stats["decisions"]["probe_reflected"]
            .as_u64()
            .unwrap()
            >= 15,
        "{}",
        reflector_stats["decisions"]
    );
    assert_eq!(reflector_stats["totals"]["balanced"], true);
}
