//! Helpers shared by the end-to-end tests: where the binaries under test are,
//! how to give each DPDK process its own EAL, and how to read what a run
//! produced (exit status, its one-line error, the stats JSON).
//!
//! The tests drive the workspace's binaries (`intellinode`, `pktgen`, ...)
//! in `INTELLINODE_BIN_DIR`: `make test` builds them with the ci-test
//! profile and points there; without the variable it is `target/release`,
//! what `make build` ships.

pub mod steer_cluster;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub mod scrape;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a binary under test; fails the test with the fix if it is missing.
pub fn bin_under_test(name: &str) -> PathBuf {
    let dir = std::env::var_os("INTELLINODE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it builds the binaries first), or `make build` \
         for target/release",
        path.display()
    );
    path
}

/// The Python of `target/venv` (scripts/pyenv.sh): the official OpenAI SDK,
/// httpx and the agent library; fails the test with the fix if missing.
pub fn venv_python() -> PathBuf {
    let path = workspace_root().join("target/venv/bin/python");
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it runs scripts/pyenv.sh first)",
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
///
/// Under `cargo test` this mutex keeps a binary's DPDK tests apart (the
/// binaries themselves run one after another). Under cargo-nextest every
/// test is a process of its own, so the mutex excludes nothing: there the
/// `serial` test group of `.config/nextest.toml` does the job, and this
/// fails a test that starts DPDK outside it.
pub fn dpdk_lock() -> MutexGuard<'static, ()> {
    if let Some(group) = nextest_group_if_not_serial() {
        panic!(
            "this test starts DPDK but runs in nextest's test group {group:?}: \
             add it to the `serial` group's filter in .config/nextest.toml"
        );
    }
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Under cargo-nextest (which sets `NEXTEST_TEST_GROUP` for every test,
/// `@global` outside any group), the group when it is not `serial`.
fn nextest_group_if_not_serial() -> Option<String> {
    let group = std::env::var("NEXTEST_TEST_GROUP").ok()?;
    (group != "serial").then_some(group)
}

/// Runs `intellinode` with `args`.
pub fn intellinode(args: &[String]) -> Output {
    Command::new(bin_under_test("intellinode"))
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
    run_with(config, secs, None, eal, json)
}

/// How long `intellinode run --until-idle` waits with nothing moving and
/// nothing held before it stops (see `dataplane::runtime`'s `IdleWatch`:
/// the window closes only once every worker has polled its queues again).
pub const IDLE_SECS: f64 = 0.2;

/// [`run_forward`] for a replayed capture: the run ends once the capture
/// has gone through and everything it queued has left or been dropped
/// (`--until-idle`), and after `bound_secs` at the latest. For checks on
/// packets and counters, not on what happens with time after the input
/// ends (an idle timeout needs [`run_forward`]'s fixed duration).
pub fn run_drained(
    config: &Path,
    bound_secs: f64,
    eal: &[String],
    json: &Path,
) -> (Output, Option<serde_json::Value>) {
    run_with(config, bound_secs, Some(IDLE_SECS), eal, json)
}

/// Whether a run's output says it stopped because it went idle (rather
/// than at its bound).
pub fn stopped_idle(out: &Output) -> bool {
    String::from_utf8_lossy(&out.stdout).contains("with nothing held, stopping")
}

fn run_with(
    config: &Path,
    secs: f64,
    until_idle: Option<f64>,
    eal: &[String],
    json: &Path,
) -> (Output, Option<serde_json::Value>) {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--config".into(),
        config.display().to_string(),
        "--duration".into(),
        secs.to_string(),
    ];
    if let Some(idle) = until_idle {
        args.extend(["--until-idle".into(), idle.to_string()]);
    }
    args.extend([
        "--stats-interval".into(),
        "0".into(),
        "--stats-json".into(),
        json.display().to_string(),
        "--".into(),
    ]);
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

/// A private network namespace, removed on drop (even when a test fails).
pub struct Netns(pub String);

impl Netns {
    /// A namespace with two veth pairs, gA<->dA and gB<->dB (generator side
    /// and device side), IPv6 off (the kernel would otherwise send its own
    /// ND/MLD frames into the path) and MTU 9000: pktgen's 16-byte stamp
    /// makes a full 1514-byte frame 1530 bytes, which a 1500-byte MTU veth
    /// would drop.
    pub fn with_two_veth_pairs(name: &str) -> Netns {
        let ns = Netns(name.to_owned());
        ns.ip(&["netns", "add", name]);
        for (g, d) in [("gA", "dA"), ("gB", "dB")] {
            ns.exec(&["ip", "link", "add", g, "type", "veth", "peer", "name", d]);
        }
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        for i in ["gA", "dA", "gB", "dB"] {
            ns.exec(&["ip", "link", "set", i, "mtu", "9000", "up"]);
        }
        ns
    }

    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("ip")
            .args(args)
            .output()
            .expect("iproute2 `ip` is required (make deps installs it)");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn exec(&self, cmd: &[&str]) {
        let mut args = vec!["netns", "exec", &self.0];
        args.extend_from_slice(cmd);
        self.ip(&args);
    }

    /// `ip netns exec NAME program`.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Writes a fresh control key as 64 hex characters with mode 0600.
pub fn write_key(dir: &Path, name: &str) -> (PathBuf, control::Key) {
    use std::os::unix::fs::PermissionsExt;
    let key = control::Key::generate();
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", key.to_hex())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, key)
}

/// A loopback port nothing listens on right now (for UDP and TCP).
pub fn free_port() -> u16 {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.local_addr().unwrap().port()
}

/// An `intellinode run` started by [`spawn_until_running`]. Killed when
/// dropped unless the test took it back ([`Running::into_child`]): a test
/// that fails half-way must not leave a busy-polling appliance behind,
/// which would take a core from every test and benchmark after it.
pub struct Running(Option<Child>);

impl Running {
    /// The process id (for signals).
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// The child, to stop and wait for; no longer killed on drop.
    pub fn into_child(mut self) -> Child {
        self.0
            .take()
            .expect("a Running holds its child until taken")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `cmd` (an `intellinode run`) and returns once it prints that it is
/// running; panics with its stderr if it exits first.
pub fn spawn_until_running(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn intellinode");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep draining stdout on a thread so the child never blocks on a full
    // pipe; report the "running" line through the channel.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("running for") || line.contains("running until") {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
            return Running(Some(child));
        }
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "intellinode exited before running:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            Instant::now() < deadline,
            "intellinode did not start within 20 s"
        );
    }
}

/// A config joining port 0 and 1 with a control plane on `control_port`
/// (loopback) and metrics on `metrics_port`; `peers` is TOML for the
/// `[[control.peers]]` tables.
pub fn control_config(
    dir: &Path,
    control_port: u16,
    metrics_port: u16,
    max_state_age_ms: u64,
    peers: &str,
) -> PathBuf {
    let text = format!(
        "pipeline = \"forward\"\nidle_sleep_us = 20\n[[pairs]]\nports = [0, 1]\n\
         [control]\nlisten = \"127.0.0.1:{control_port}\"\nmax_state_age_ms = {max_state_age_ms}\n{peers}\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    );
    let path = dir.join("control.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a workload with the shipped `pktgen` binary (`packets` 0 for the
/// fixed edge-case set, which takes no count).
pub fn pktgen_write(workload: &str, seed: u64, packets: usize, out: &Path) {
    let mut cmd = Command::new(bin_under_test("pktgen"));
    cmd.args(["write", "--workload", workload, "--seed", &seed.to_string()]);
    if packets > 0 {
        cmd.args(["--packets", &packets.to_string()]);
    }
    let status = cmd
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .expect("spawn pktgen");
    assert!(
        status.success(),
        "pktgen write --workload {workload} failed"
    );
}

/// Parses a JSON file the binaries wrote.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Waits for a run started with [`spawn_until_running`], asserts it exited
/// cleanly and returns its `--stats-json` report.
pub fn finish_run(run: Running, stats_json: &Path) -> serde_json::Value {
    let out = run
        .into_child()
        .wait_with_output()
        .expect("wait for intellinode");
    assert!(
        out.status.success(),
        "intellinode failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    read_json(stats_json)
}

/// Stops a run started with [`spawn_until_running`] as an operator would,
/// with SIGINT, once the test has what it needs from it, then
/// [`finish_run`]s it: its `--duration` is only the bound for a test that
/// fails before.
pub fn interrupt_run(run: Running, stats_json: &Path) -> serde_json::Value {
    interrupt(run.id());
    finish_run(run, stats_json)
}

/// Sends SIGINT to process `pid` (for `ip netns exec`, the program it
/// became).
pub fn interrupt(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    // It may have exited already (its bound): the wait that follows says.
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
}

/// Runs `intellinode ctl` against `127.0.0.1:port` as peer `key_id`
/// (inside `ns` if given), asserts it succeeded and returns its stdout.
pub fn ctl(ns: Option<&Netns>, port: u16, key: &Path, key_id: u32, args: &[&str]) -> String {
    let mut cmd = match ns {
        Some(ns) => ns.command(&bin_under_test("intellinode")),
        None => Command::new(bin_under_test("intellinode")),
    };
    let out = cmd
        .args([
            "ctl",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--key-file",
        ])
        .arg(key)
        .args(["--key-id", &key_id.to_string()])
        .args(args)
        .output()
        .expect("spawn ctl");
    assert!(
        out.status.success(),
        "ctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("ctl prints UTF-8")
}

/// The frames of a pcap file, in order.
pub fn frames(path: &Path) -> Vec<Vec<u8>> {
    pktgen::pcap::read_file(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|r| r.data)
        .collect()
}

/// Writes frames as a pcap, 1 µs apart.
pub fn write_frames(path: &Path, frames: &[Vec<u8>]) {
    let packets: Vec<pktgen::Packet> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| pktgen::Packet::new(i as u64 * 1000, f.clone()))
        .collect();
    pktgen::pcap::write_file(path, pktgen::pcap::TsResolution::Micro, &packets).unwrap();
}

/// How many worker lcores a test's appliance runs. With two, every port
/// has a queue per worker (one `rx_pcap`/`tx_pcap` each), and the input
/// is split over the queues so that flows meet a worker that does not own
/// them: what RSS on a real NIC, or a vdev with no RSS at all, does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    One,
    Two,
}

impl Workers {
    pub const BOTH: [Workers; 2] = [Workers::One, Workers::Two];

    pub fn count(self) -> usize {
        match self {
            Workers::One => 1,
            Workers::Two => 2,
        }
    }

    /// EAL arguments: one worker on `-l 0,1`; two workers on two CPUs,
    /// the main lcore sharing CPU 0 with worker 2 (`--lcores 0@0,1@1,2@0`).
    pub fn eal_args(self, tag: &str, vdevs: &[String]) -> Vec<String> {
        let mut eal = eal_args(tag, vdevs);
        if self == Workers::Two {
            if let Some(l) = eal.iter().position(|a| a == "-l") {
                eal[l] = "--lcores".into();
                eal[l + 1] = "0@0,1@1,2@0".into();
            }
        }
        eal
    }

    /// A `net_pcap` vdev with one `rx_pcap` and one `tx_pcap` per queue.
    pub fn pcap_vdev(self, index: usize, rx: &[PathBuf], tx: &[PathBuf]) -> String {
        let mut v = format!("net_pcap{index}");
        for r in rx {
            v += &format!(",rx_pcap={}", r.display());
        }
        for t in tx {
            v += &format!(",tx_pcap={}", t.display());
        }
        v
    }

    /// `count()` paths named after `stem` in `dir`: `stem.pcap`, or
    /// `stem-q0.pcap` and `stem-q1.pcap`.
    pub fn queue_files(self, dir: &Path, stem: &str) -> Vec<PathBuf> {
        match self {
            Workers::One => vec![dir.join(format!("{stem}.pcap"))],
            Workers::Two => (0..2)
                .map(|q| dir.join(format!("{stem}-q{q}.pcap")))
                .collect(),
        }
    }

    /// Splits `frames` over the queues by `queue_of` (taken modulo the
    /// queue count), keeping each queue's order, and writes them.
    pub fn split(
        self,
        dir: &Path,
        stem: &str,
        frames: &[Vec<u8>],
        queue_of: impl Fn(usize, &[u8]) -> usize,
    ) -> Vec<PathBuf> {
        let files = self.queue_files(dir, stem);
        let mut per_queue: Vec<Vec<Vec<u8>>> = vec![Vec::new(); files.len()];
        for (i, f) in frames.iter().enumerate() {
            per_queue[queue_of(i, f) % files.len()].push(f.clone());
        }
        for (file, fs) in files.iter().zip(&per_queue) {
            write_frames(file, fs);
        }
        files
    }
}

/// The frames of several pcap files, one after the other.
pub fn frames_of(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths.iter().flat_map(|p| frames(p)).collect()
}

/// A stable hash of a frame's flow (addresses, ports, protocol), the same
/// in both directions: what a symmetric RSS key gives.
pub fn flow_hash(frame: &[u8]) -> usize {
    use std::hash::{Hash, Hasher};
    let Ok(p) = classifier::parse(frame) else {
        return 0;
    };
    let Some(f) = p.flow else { return 0 };
    let (a, b) = if (f.src_addr, f.src_port) <= (f.dst_addr, f.dst_port) {
        ((f.src_addr, f.src_port), (f.dst_addr, f.dst_port))
    } else {
        ((f.dst_addr, f.dst_port), (f.src_addr, f.src_port))
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (a, b, f.protocol.0).hash(&mut h);
    h.finish() as usize
}

/// Packets the workers handed to the worker owning their flow, summed.
pub fn handoffs(stats: &serde_json::Value) -> u64 {
    stats["lcores"]
        .as_array()
        .map_or(0, |l| l.iter().filter_map(|l| l["handoffs"].as_u64()).sum())
}

/// Runs each named scenario `fn name(workers: Workers)` as two tests,
/// `name::one_worker` and `name::two_workers`.
#[macro_export]
macro_rules! on_one_and_two_workers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test]
            fn one_worker() {
                super::$name(Workers::One)
            }
            #[test]
            fn two_workers() {
                super::$name(Workers::Two)
            }
        }
    )*};
}
