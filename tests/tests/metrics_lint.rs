//! `/metrics` of the real appliance passes `promtool check metrics` (the
//! Prometheus project's own linter: base units, `_total` on counters only,
//! help text, valid exposition) for each pipeline, with the control plane
//! on and some state in it, so every family the pipeline exports is there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use intellinode_tests::*;

/// `[control]` with one peer allowed everything, and `[metrics]`.
fn control_and_metrics(dir: &Path, cport: u16, mport: u16) -> (String, PathBuf) {
    let (key, _) = write_key(dir, "orch.key");
    let text = format!(
        "\n[control]\nlisten = \"127.0.0.1:{cport}\"\n\
         [[control.peers]]\nid = 1\nname = \"orch\"\nkey_file = \"{}\"\nroles = [\"state\", \"query\"]\n\
         [metrics]\nlisten = \"127.0.0.1:{mport}\"\n",
        key.display()
    );
    (text, key)
}

/// Starts `config` on `vdevs`, gives it state over the control plane and a
/// moment to move packets, scrapes `/metrics` and lints the scrape.
fn scrape_and_lint(
    tag: &str,
    dir: &Path,
    pipeline_toml: &str,
    vdevs: &[String],
    families: &[&str],
) {
    let _dpdk = dpdk_lock();
    let (cport, mport) = (free_port(), free_port());
    let (section, key) = control_and_metrics(dir, cport, mport);
    let config = dir.join(format!("{tag}.toml"));
    std::fs::write(&config, format!("{pipeline_toml}{section}")).unwrap();
    let json = dir.join(format!("{tag}.json"));
    let mut cmd = Command::new(release_bin("intellinode"));
    cmd.args(["run", "--config"])
        .arg(&config)
        .args(["--duration", "2", "--stats-interval", "0", "--stats-json"])
        .arg(&json)
        .arg("--")
        .args(eal_args(tag, vdevs));
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
    let scrape = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{mport}/metrics")])
        .output()
        .expect("curl is required (make deps installs it)");
    assert!(scrape.status.success(), "{tag}: curl /metrics failed");
    finish_run(child, &json);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (make deps installs it, from Debian's prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(&scrape.stdout)
        .unwrap();
    let lint = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(
        lint.status.success() && said.trim().is_empty(),
        "{tag}: promtool check metrics (exit {:?}):\n{said}",
        lint.status.code()
    );
    // Present, so the lint above covered them.
    let text = String::from_utf8_lossy(&scrape.stdout);
    for family in families {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{tag}: no {family} in the scrape:\n{text}"
        );
    }
}

#[test]
fn forward_metrics_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    scrape_and_lint(
        "lintfwd",
        dir.path(),
        "pipeline = \"forward\"\nidle_sleep_us = 20\n[[pairs]]\nports = [0, 1]\n",
        &["net_null0".into(), "net_null1,no-rx=1".into()],
        &[
            "intellinode_port_rx_bytes_total",
            "intellinode_control_visible_latency_seconds",
            "intellinode_state_age_seconds",
        ],
    );
}

#[test]
fn steer_metrics_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.pcap");
    pktgen_write("agent", 7, 2000, &agents);
    let example = std::fs::read_to_string(workspace_root().join("examples/steer.toml")).unwrap();
    let (back, edge, centre) = (
        dir.path().join("back.pcap"),
        dir.path().join("edge.pcap"),
        dir.path().join("centre.pcap"),
    );
    scrape_and_lint(
        "lintsteer",
        dir.path(),
        &example,
        &[
            format!(
                "net_pcap0,rx_pcap={},tx_pcap={}",
                agents.display(),
                back.display()
            ),
            format!("net_pcap1,tx_pcap={}", edge.display()),
            format!("net_pcap2,tx_pcap={}", centre.display()),
        ],
        &[
            "intellinode_steer_ttft_mae_seconds",
            "intellinode_steer_fragments_total",
            "intellinode_steer_fragment_drops_total",
        ],
    );
}

#[test]
fn tensor_metrics_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let roce = dir.path().join("roce.pcap");
    pktgen_write("roce", 7, 2000, &roce);
    let (back, out) = (dir.path().join("back.pcap"), dir.path().join("out.pcap"));
    scrape_and_lint(
        "linttensor",
        dir.path(),
        "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\n\
         [[tensor.nodes]]\nname = \"gpu1\"\nip = \"10.10.0.1\"\nweight = 2\nid = 1\n",
        &[
            format!(
                "net_pcap0,rx_pcap={},tx_pcap={}",
                roce.display(),
                back.display()
            ),
            format!("net_pcap1,tx_pcap={}", out.display()),
        ],
        &["intellinode_drops_total"],
    );
}
