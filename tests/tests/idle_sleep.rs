//! `idle_sleep_us` gives an idle worker's core back: with it, a worker with
//! nothing to receive uses a fraction of its core; without it, all of it.
//! Measured as the CPU time the child process consumed (its own test binary,
//! so no other test's children are counted).

use std::time::Duration;

use intellinode_tests::*;

fn children_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

/// CPU seconds an idle 2-second run took with this config.
fn idle_run_cpu(config_text: &str, tag: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config_text).unwrap();
    // net_null with no-rx=1 on both ports: nothing ever arrives.
    let eal = eal_args(
        tag,
        &["net_null0,no-rx=1".into(), "net_null1,no-rx=1".into()],
    );
    let before = children_cpu();
    let (out, stats) = run_forward(&cfg, 2.0, &eal, &dir.path().join("s.json"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stats.unwrap()["totals"]["rx_packets"], 0);
    (children_cpu() - before).as_secs_f64()
}

#[test]
fn idle_sleep_gives_the_core_back_and_polling_does_not() {
    let _dpdk = dpdk_lock();
    let polling = idle_run_cpu(
        "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n",
        "poll",
    );
    let sleeping = idle_run_cpu(
        "pipeline = \"forward\"\nidle_sleep_us = 1000\n[[pairs]]\nports = [0, 1]\n",
        "sleep",
    );
    // A busy machine (CI runs other tests at the same time) may take part
    // of the polling worker's CPU, so the bounds leave room for that.
    assert!(
        polling > 0.5,
        "a polling worker should spin its core for the whole run, used {polling:.2} s"
    );
    assert!(
        sleeping < 0.5 && sleeping < polling / 4.0,
        "an idle worker with idle_sleep_us = 1000 should mostly sleep, used {sleeping:.2} s (polling used {polling:.2} s)"
    );
}
