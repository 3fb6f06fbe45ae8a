//! `/metrics` of the real appliance, one scrape per pipeline, with the
//! control plane on and some state in it, so every family the pipeline
//! exports is there: what `metrics_lint` lints and what the Grafana
//! dashboard's queries are checked against.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::*;

/// The pipelines `/metrics` is scraped from.
pub const PIPELINES: [&str; 3] = ["forward", "steer", "tensor"];

/// A pipeline's config (without `[control]` and `[metrics]`) and its vdevs.
pub struct Setup {
    pub tag: &'static str,
    pub config: String,
    pub vdevs: Vec<String>,
}

/// The setup of `pipeline` (one of [`PIPELINES`]), its input written into
/// `dir`: forward on null devices with a prober (so the probe family is
/// exported; its path has no policy, so every probe counts as `no_path`),
/// steer as `examples/steer.toml` on an agent workload, tensor as an
/// overlay with one path on RoCEv2 traffic (so the per-path and metadata
/// families have samples).
pub fn setup(pipeline: &str, dir: &Path) -> Setup {
    match pipeline {
        "forward" => {
            let (probe_key, _) = write_key(dir, "probe.key");
            Setup {
                tag: "scrapefwd",
                config: format!(
                    "pipeline = \"forward\"\nidle_sleep_us = 20\n[[pairs]]\nports = [0, 1]\n\
                     [probe]\ninterval_ms = 50\nkey_file = \"{}\"\nsrc_ip = \"192.0.2.1\"\n\
                     [[probe.targets]]\npath = 1\ndst_ip = \"192.0.2.2\"\n",
                    probe_key.display()
                ),
                vdevs: vec!["net_null0".into(), "net_null1,no-rx=1".into()],
            }
        }
        "steer" => {
            let agents = dir.join("agents.pcap");
            pktgen_write("agent", 7, 2000, &agents);
            let config =
                std::fs::read_to_string(workspace_root().join("examples/steer.toml")).unwrap();
            Setup {
                tag: "scrapesteer",
                config,
                vdevs: vec![
                    format!(
                        "net_pcap0,rx_pcap={},tx_pcap={}",
                        agents.display(),
                        dir.join("back.pcap").display()
                    ),
                    format!("net_pcap1,tx_pcap={}", dir.join("edge.pcap").display()),
                    format!("net_pcap2,tx_pcap={}", dir.join("centre.pcap").display()),
                ],
            }
        }
        "tensor" => {
            let roce = dir.join("roce.pcap");
            pktgen_write("roce", 7, 2000, &roce);
            let (overlay_key, _) = write_key(dir, "overlay.key");
            Setup {
                tag: "scrapetensor",
                config: format!(
                    "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\n\
                     local_ip = \"192.0.2.1\"\nkey_file = \"{}\"\n\
                     [[tensor.nodes]]\nname = \"gpu1\"\nip = \"10.10.0.1\"\nweight = 2\nid = 1\n\
                     [[tensor.paths]]\nid = 1\nport = 1\nnext_hop_mac = \"02:00:00:00:01:01\"\n\
                     remote_ip = \"192.0.2.2\"\ncapacity_mbps = 100000\n",
                    overlay_key.display()
                ),
                vdevs: vec![
                    format!(
                        "net_pcap0,rx_pcap={},tx_pcap={}",
                        roce.display(),
                        dir.join("back.pcap").display()
                    ),
                    format!("net_pcap1,tx_pcap={}", dir.join("out.pcap").display()),
                ],
            }
        }
        other => panic!("no scrape setup for pipeline {other:?}"),
    }
}

/// Starts `pipeline` with `[control]` (one peer allowed everything) and
/// `[metrics]`, gives it path and node state over the control plane and a
/// moment to move packets, and returns its `/metrics` text, stopping the
/// appliance once scraped. Holds the DPDK lock while the appliance runs.
pub fn scrape(pipeline: &str, dir: &Path) -> String {
    let s = setup(pipeline, dir);
    let _dpdk = dpdk_lock();
    let (cport, mport) = (free_port(), free_port());
    let (key, _) = write_key(dir, "orch.key");
    let config = dir.join(format!("{}.toml", s.tag));
    std::fs::write(
        &config,
        format!(
            "{}\n[control]\nlisten = \"127.0.0.1:{cport}\"\n\
             [[control.peers]]\nid = 1\nname = \"orch\"\nkey_file = \"{}\"\nroles = [\"state\", \"query\"]\n\
             [metrics]\nlisten = \"127.0.0.1:{mport}\"\n",
            s.config,
            key.display()
        ),
    )
    .unwrap();
    let json = dir.join(format!("{}.json", s.tag));
    let mut cmd = Command::new(bin_under_test("intellinode"));
    cmd.args(["run", "--config"])
        .arg(&config)
        // The bound; it is stopped once scraped.
        .args(["--duration", "10", "--stats-interval", "0", "--stats-json"])
        .arg(&json)
        .arg("--")
        .args(eal_args(s.tag, &s.vdevs));
    let child = spawn_until_running(cmd);
    ctl(
        None,
        cport,
        &key,
        1,
        &["path-state", "--path", "1", "--latency-us", "250"],
    );
    ctl(
        None,
        cport,
        &key,
        1,
        &["node-state", "--node", "1", "--queue", "2"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{mport}/metrics")])
        .output()
        .expect("curl is required (make deps installs it)");
    assert!(out.status.success(), "{pipeline}: curl /metrics failed");
    interrupt_run(child, &json);
    String::from_utf8(out.stdout).expect("/metrics is UTF-8")
}
