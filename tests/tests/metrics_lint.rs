//! `/metrics` of the real appliance passes `promtool check metrics` (the
//! Prometheus project's own linter: base units, `_total` on counters only,
//! help text, valid exposition) for each pipeline, with the control plane
//! on and some state in it, so every family the pipeline exports is there
//! (see `intellinode_tests::scrape`).

use std::io::Write;
use std::process::{Command, Stdio};

use intellinode_tests::scrape::scrape;

/// Scrapes `pipeline`, lints the scrape, and checks `families` are in it.
fn scrape_and_lint(pipeline: &str, families: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let text = scrape(pipeline, dir.path());
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
        .write_all(text.as_bytes())
        .unwrap();
    let lint = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(
        lint.status.success() && said.trim().is_empty(),
        "{pipeline}: promtool check metrics (exit {:?}):\n{said}",
        lint.status.code()
    );
    // Present, so the lint above covered them.
    for family in families {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{pipeline}: no {family} in the scrape:\n{text}"
        );
    }
}

#[test]
fn forward_metrics_pass_promtool() {
    scrape_and_lint(
        "forward",
        &[
            "intellinode_port_rx_bytes_total",
            "intellinode_control_visible_latency_seconds",
            "intellinode_state_age_seconds",
            "intellinode_mempool_in_use_mbufs",
        ],
    );
}

#[test]
fn steer_metrics_pass_promtool() {
    scrape_and_lint(
        "steer",
        &[
            "intellinode_steer_ttft_mae_seconds",
            "intellinode_steer_predicted_ttft_seconds",
            "intellinode_steer_observed_ttft_seconds",
            "intellinode_steer_fragments_total",
            "intellinode_steer_fragment_drops_total",
        ],
    );
}

#[test]
fn tensor_metrics_pass_promtool() {
    scrape_and_lint(
        "tensor",
        &[
            "intellinode_drops_total",
            "intellinode_tensor_events_total",
            "intellinode_tensor_metadata_total",
            "intellinode_tensor_metadata_errors_total",
            "intellinode_tensor_path_packets_total",
            "intellinode_tensor_class_packets_total",
        ],
    );
}
