//! The `pktgen` binary, as an operator runs it.

use std::path::Path;
use std::process::{Command, Output};

fn pktgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(args)
        .output()
        .expect("spawn pktgen")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Failures end with exit status 1 and exactly one `pktgen: error:` line.
fn assert_one_line_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(o));
    let err = stderr(o);
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("pktgen: error: "), "{err}");
    assert!(lines[0].contains(needle), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn write_then_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mix.pcap");
    let o = pktgen(&[
        "write",
        "--workload",
        "mix",
        "--seed",
        "3",
        "--packets",
        "1500",
        "--max-flow-bytes",
        "100000",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.starts_with("Wrote 1500 packets ("), "{s}");
    assert!(
        s.contains("flows") && s.contains("RoCEv2: ") && s.contains("Workload mix, seed 3"),
        "{s}"
    );
    assert_eq!(s.lines().count(), 1, "one paragraph: {s}");

    let o = pktgen(&["inspect", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains(": 1500 packets,"), "{s}");
    assert!(s.contains("  network    ipv4 1500"), "{s}");
    assert!(s.contains("RC_RDMA_WRITE_MIDDLE"), "{s}");
    assert!(
        s.contains("all UDP/TCP checksums and RoCEv2 ICRCs verify"),
        "{s}"
    );

    // Same seed, same file.
    let again = dir.path().join("again.pcap");
    let o = pktgen(&[
        "write",
        "-w",
        "mix",
        "--seed",
        "3",
        "-n",
        "1500",
        "--max-flow-bytes",
        "100000",
        "-o",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn inspect_edge_cases_counts_malformed_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("edge.pcap");
    let o = pktgen(&[
        "write",
        "--workload",
        "edge-cases",
        "--nanosecond",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("a fixed set"));
    let o = pktgen(&["inspect", out.to_str().unwrap()]);
    assert!(o.status.success());
    let s = stdout(&o);
    for needle in [
        "malformed ",
        "ethernet.truncated 2",
        "ipv4.bad_checksum 1",
        "bth.too_short_for_opcode 1",
        "qinq 2",
        "arp 2",
        "CNP 1",
        "roce icrc 1",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in\n{s}");
    }
}

#[test]
fn errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pcap");
    assert_one_line_error(
        &pktgen(&["inspect", missing.to_str().unwrap()]),
        "nope.pcap",
    );

    let garbage = dir.path().join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture file at all").unwrap();
    assert_one_line_error(
        &pktgen(&["inspect", garbage.to_str().unwrap()]),
        "bad magic",
    );

    let no_dir = Path::new("/nonexistent-dir/x.pcap");
    assert_one_line_error(
        &pktgen(&[
            "write",
            "--workload",
            "agent",
            "--packets",
            "10",
            "-o",
            no_dir.to_str().unwrap(),
        ]),
        "/nonexistent-dir/x.pcap",
    );

    // A file cut in the middle of a record: counts so far, then the error.
    let good = dir.path().join("good.pcap");
    assert!(pktgen(&[
        "write",
        "-w",
        "roce",
        "-n",
        "50",
        "-o",
        good.to_str().unwrap()
    ])
    .status
    .success());
    let mut bytes = std::fs::read(&good).unwrap();
    bytes.truncate(bytes.len() - 100);
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes).unwrap();
    let o = pktgen(&["inspect", cut.to_str().unwrap()]);
    assert_one_line_error(&o, "truncated record data at byte");
    assert!(stdout(&o).contains(": 49 packets"), "{}", stdout(&o));

    // Usage errors come from clap: exit 2, a usage hint, no panic.
    let o = pktgen(&["write", "--workload", "nonsense", "-o", "x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid value 'nonsense'"),
        "{}",
        stderr(&o)
    );
    let o = pktgen(&[
        "write",
        "--workload",
        "agent",
        "--packets",
        "0",
        "-o",
        "x.pcap",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_reads_like_a_tool() {
    let o = pktgen(&["--help"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(
        s.contains("write") && s.contains("inspect") && s.contains("Examples:"),
        "{s}"
    );
    let o = pktgen(&["write", "--help"]);
    let s = stdout(&o);
    for flag in [
        "--workload",
        "--seed",
        "--packets",
        "--max-flow-bytes",
        "--output",
        "edge-cases",
    ] {
        assert!(s.contains(flag), "{flag} missing from\n{s}");
    }
}
