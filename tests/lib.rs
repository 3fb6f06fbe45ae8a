//! Helpers shared by the end-to-end tests: where the release binaries are,
//! how to give each DPDK process its own EAL, and how to read what a run
//! produced (exit status, its one-line error, the stats JSON).
//!
//! The tests drive `target/release/intellinode` and `target/release/pktgen`,
//! which `make test` builds first, so they test exactly what ships.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a release binary; fails the test with the fix if it is missing.
pub fn release_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("INTELLINODE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it builds the release binaries first)",
        path.display()
    );
    path
}

/// A `--file-prefix` no other process in this run uses.
pub fn unique_prefix(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// EAL arguments for a 2-lcore, no-hugepage process with these vdevs.
pub fn eal_args(tag: &str, vdevs: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "-l",
        "0,1",
        "--file-prefix",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(unique_prefix(tag));
    for v in vdevs {
        args.push("--vdev".into());
        args.push(v.clone());
    }
    args
}

/// DPDK processes busy-poll a pinned lcore; on a 2-core machine running
/// several at once only makes each slower. Tests that start one hold this.
pub fn dpdk_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `intellinode` with `args`.
pub fn intellinode(args: &[String]) -> Output {
    Command::new(release_bin("intellinode"))
        .args(args)
        .output()
        .expect("spawn intellinode")
}

/// `intellinode run --config CONFIG --duration SECS --stats-interval 0
/// --stats-json JSON -- EAL...`, returning the output and the parsed JSON.
pub fn run_forward(
    config: &Path,
    secs: f64,
    eal: &[String],
    json: &Path,
) -> (Output, Option<serde_json::Value>) {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--config".into(),
        config.display().to_string(),
        "--duration".into(),
        secs.to_string(),
        "--stats-interval".into(),
        "0".into(),
        "--stats-json".into(),
        json.display().to_string(),
        "--".into(),
    ];
    args.extend(eal.iter().cloned());
    let out = intellinode(&args);
    let stats = std::fs::read_to_string(json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    (out, stats)
}

/// Asserts a run failed the way an operator should see a failure: exit
/// status 1, no panic, no usage dump, and a last stderr line that is our one
/// error line containing `needle`. Returns that line.
pub fn assert_one_line_error(out: &Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr:\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "panic:\n{stderr}"
    );
    assert!(
        !stdout.contains("EAL common options"),
        "EAL usage dump on stdout:\n{stdout}"
    );
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with("intellinode: error: "),
        "last stderr line is not our error: {last:?}\n{stderr}"
    );
    assert!(
        last.contains(needle),
        "error line {last:?} does not mention {needle:?}"
    );
    last
}

/// Writes a pcap global header with no records: an RX source that never
/// receives (net_pcap needs one on every port).
pub fn write_empty_pcap(path: &Path) {
    let header: [u8; 24] = [
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ];
    std::fs::write(path, header).expect("write empty pcap");
}

/// The forward config shipped in `examples/`.
pub fn forward_config() -> PathBuf {
    workspace_root().join("examples/forward.toml")
}
