//! `make soak`'s short mode: `bench/soak.sh` runs every pipeline at full
//! rate for 10 s with control updates streaming, sampling every 2 s, and
//! must pass its own checks (rx = tx + drops in every sample and at exit,
//! flat resident memory after a 4 s warm-up, the pool's in-use count back
//! to its baseline, every update accepted). Its summary is checked here as
//! well, so a script that stopped checking would not pass.

use std::process::Command;

use intellinode_tests::*;

const SECS: u64 = 10;
const SAMPLE_SECS: u64 = 2;

#[test]
fn every_pipeline_soaks_without_leaking_or_losing_count() {
    let _dpdk = dpdk_lock();
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(workspace_root().join("bench/soak.sh"))
        .env("SOAK_SECS", SECS.to_string())
        .env("SOAK_SAMPLE_SECS", SAMPLE_SECS.to_string())
        .env("SOAK_WARMUP_SECS", "4")
        .env("SOAK_CONTROL_PORT", free_port().to_string())
        .env("SOAK_OUT", out_dir.path())
        .env("INTELLINODE_BIN", bin_under_test("intellinode"))
        .env("PKTGEN_BIN", bin_under_test("pktgen"))
        .output()
        .expect("bash is required");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "bench/soak.sh failed:\n{said}");
    let summary = read_json(&out_dir.path().join("summary.json"));
    for pipeline in ["forward", "steer", "tensor"] {
        let s = &summary[pipeline];
        let n = |k: &str| {
            s[k].as_f64()
                .unwrap_or_else(|| panic!("{pipeline}: no number {k} in {s}"))
        };
        assert_eq!(s["balanced_at_exit"], true, "{pipeline}: {s}");
        assert!(n("rx_packets") > 0.0 && n("mpps") > 0.0, "{pipeline}: {s}");
        // Samples every 2 s, the last at least a second before the end.
        assert!(
            n("samples") >= ((SECS - 1) / SAMPLE_SECS - 1) as f64,
            "{pipeline}: {s}"
        );
        assert!(n("max_abs_gap") <= n("gap_bound"), "{pipeline}: {s}");
        assert!(n("rss_growth_kb") <= n("rss_slack_kb"), "{pipeline}: {s}");
        assert_eq!(
            s["mbufs_in_use_at_end"], s["mbufs_in_use_at_start"],
            "{pipeline}: {s}"
        );
        assert!(n("updates_sent") > 0.0, "{pipeline}: {s}");
        assert_eq!(n("updates_accepted"), n("updates_sent"), "{pipeline}: {s}");
        assert_eq!(n("control_rejected"), 0.0, "{pipeline}: {s}");
    }
}
