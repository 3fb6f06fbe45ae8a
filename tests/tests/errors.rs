//! Every way an operator can get it wrong ends in one readable line and exit
//! status 1: bad config, bad EAL arguments, unreadable pcaps, ports that
//! cannot start, missing ports, and DPDK missing at build time.

use std::process::Command;

use intellinode_tests::*;

fn run_args(config: &std::path::Path, eal: Vec<String>) -> Vec<String> {
    let mut a = vec![
        "run".into(),
        "--config".into(),
        config.display().to_string(),
        "--duration".into(),
        "0.2".into(),
        "--".into(),
    ];
    a.extend(eal);
    a
}

fn null_pair() -> Vec<String> {
    vec!["net_null0".into(), "net_null1,no-rx=1".into()]
}

#[test]
fn unknown_config_key_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\nburst = 8\n",
    )
    .unwrap();
    let out = intellinode(&run_args(&cfg, eal_args("cfgkey", &null_pair())));
    let line = assert_one_line_error(&out, "unknown key `burst` in [[pairs]]");
    assert!(line.contains("line 4"), "{line}");
}

#[test]
fn bad_config_value_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "pipeline = \"forward\"\nburst_size = 1000\n[[pairs]]\nports = [0, 1]\n",
    )
    .unwrap();
    assert_one_line_error(
        &intellinode(&run_args(&cfg, eal_args("cfgval", &null_pair()))),
        "`burst_size` must be from 1 to 64, found 1000",
    );
    std::fs::write(&cfg, "pipeline = \"route\"\n[[pairs]]\nports = [0, 1]\n").unwrap();
    assert_one_line_error(
        &intellinode(&run_args(&cfg, eal_args("cfgpipe", &null_pair()))),
        "`pipeline` must be one of \"forward\", \"steer\", \"tensor\" (a string), found \"route\"",
    );
}

#[test]
fn missing_config_file() {
    let out = intellinode(&run_args(
        std::path::Path::new("/nonexistent/x.toml"),
        eal_args("nocfg", &null_pair()),
    ));
    assert_one_line_error(&out, "cannot read: No such file or directory");
}

#[test]
fn bad_eal_argument() {
    let _dpdk = dpdk_lock();
    let mut eal = eal_args("badeal", &null_pair());
    eal.push("--no-such-eal-flag".into());
    let out = intellinode(&run_args(&forward_config(), eal));
    let line = assert_one_line_error(&out, "EAL initialisation failed");
    assert!(
        line.contains("unrecognized option '--no-such-eal-flag'"),
        "the line should name the argument: {line}"
    );
    // DPDK says it once per parsing pass and again as a FATAL alert and its
    // log copy; the operator gets one line.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr:\n{stderr}");
}

#[test]
fn bad_eal_device_is_one_line() {
    let _dpdk = dpdk_lock();
    let out = intellinode(&run_args(
        &forward_config(),
        eal_args("badvdev", &["net_nosuchdriver0".into(), "net_null0".into()]),
    ));
    let line = assert_one_line_error(&out, "EAL initialisation failed: No such device");
    assert!(line.contains("net_nosuchdriver0"), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr:\n{stderr}");
}

#[test]
fn unreadable_pcap_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pcap");
    let out = intellinode(&run_args(
        &forward_config(),
        eal_args(
            "nopcap",
            &[
                format!("net_pcap0,rx_pcap={}", missing.display()),
                "net_null0".into(),
            ],
        ),
    ));
    assert_one_line_error(
        &out,
        &format!(
            "pcap {} (--vdev net_pcap0): cannot read: No such file or directory",
            missing.display()
        ),
    );

    let garbage = dir.path().join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture").unwrap();
    let out = intellinode(&run_args(
        &forward_config(),
        eal_args(
            "badpcap",
            &[
                format!("net_pcap0,rx_pcap={}", garbage.display()),
                "net_null0".into(),
            ],
        ),
    ));
    assert_one_line_error(&out, "not a pcap or pcapng file");
}

#[test]
fn port_that_cannot_start() {
    // net_pcap with one rx_pcap has exactly one queue; two workers need two.
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pcap");
    write_empty_pcap(&empty);
    let mut eal = eal_args(
        "nostart",
        &[
            format!("net_pcap0,rx_pcap={}", empty.display()),
            "net_null0".into(),
        ],
    );
    let l = eal.iter().position(|a| a == "-l").unwrap();
    eal[l] = "--lcores".into();
    eal[l + 1] = "0@0,1@1,2@1".into();
    let out = intellinode(&run_args(&forward_config(), eal));
    assert_one_line_error(&out, "port0 (net_pcap0) cannot start");
}

#[test]
fn paired_port_that_does_not_exist() {
    let _dpdk = dpdk_lock();
    let out = intellinode(&run_args(
        &forward_config(),
        eal_args("oneport", &["net_null0".into()]),
    ));
    assert_one_line_error(
        &out,
        "config pairs port1, but EAL created 1 port(s): port0 net_null0",
    );
}

#[test]
fn no_worker_lcore() {
    let _dpdk = dpdk_lock();
    let mut eal = eal_args("nolcore", &null_pair());
    let l = eal.iter().position(|a| a == "-l").unwrap();
    eal[l + 1] = "0".into();
    assert_one_line_error(
        &intellinode(&run_args(&forward_config(), eal)),
        "no worker lcore",
    );
}

#[test]
fn bad_duration_is_a_usage_error() {
    let out = intellinode(&[
        "run".into(),
        "--config".into(),
        "x.toml".into(),
        "--duration".into(),
        "soon".into(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`soon` is not a number of seconds"));
}

#[test]
fn help_reads_like_a_real_tool() {
    let out = intellinode(&["--help".into()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in ["Usage: intellinode", "run", "Examples:"] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
    let out = intellinode(&["run".into(), "--help".into()]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--config <FILE>",
        "--duration <SECS>",
        "--stats-interval <SECS>",
        "--stats-json <FILE>",
        "EAL_ARGS",
    ] {
        assert!(
            text.contains(needle),
            "run --help lacks {needle:?}:\n{text}"
        );
    }
}

/// With pkg-config unable to find libdpdk, building `dpdk-sys` fails with a
/// line that says what is missing and how to install it.
///
/// The line comes from dpdk-sys' build script, so the check runs that
/// script: the very binary cargo compiled for this build, the way cargo
/// runs it (in ffi/, with an OUT_DIR of its own), with pkg-config pointed
/// at nothing. That takes milliseconds, where `cargo check -p dpdk-sys`
/// in a target dir of its own compiled bindgen and its dependencies again
/// (about 25 s of CI). Without the compiled script (another target
/// layout) it falls back to that `cargo check`.
#[test]
fn dpdk_missing_at_build_time() {
    let (status, said) = match dpdk_sys_build_script() {
        Some(script) => {
            let out_dir = tempfile::tempdir().unwrap();
            let out = Command::new(&script)
                .current_dir(workspace_root().join("ffi"))
                .env("CARGO_MANIFEST_DIR", workspace_root().join("ffi"))
                .env("OUT_DIR", out_dir.path())
                .env("PKG_CONFIG_LIBDIR", "/nonexistent")
                .env("PKG_CONFIG_PATH", "/nonexistent")
                .output()
                .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
            (out.status, out.stderr)
        }
        None => {
            let out = Command::new(env!("CARGO"))
                .current_dir(workspace_root())
                .args(["check", "--quiet", "--offline", "-p", "dpdk-sys"])
                .env(
                    "CARGO_TARGET_DIR",
                    workspace_root().join("target/nodpdk-check"),
                )
                .env("PKG_CONFIG_LIBDIR", "/nonexistent")
                .env("PKG_CONFIG_PATH", "/nonexistent")
                .output()
                .expect("spawn cargo");
            (out.status, out.stderr)
        }
    };
    let stderr = String::from_utf8_lossy(&said);
    assert!(!status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("DPDK >= 22.11 not found by pkg-config"))
        .unwrap_or_else(|| panic!("no one-line DPDK error in:\n{stderr}"));
    assert!(
        line.contains("make deps") && line.contains("libdpdk-dev"),
        "{line}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// dpdk-sys' compiled build script in this test binary's target dir
/// (target/PROFILE/deps/errors-HASH -> target/PROFILE/build/dpdk-sys-HASH/
/// build-script-build), the newest if several builds left one.
fn dpdk_sys_build_script() -> Option<std::path::PathBuf> {
    let profile_dir = std::env::current_exe()
        .ok()?
        .parent()?
        .parent()?
        .to_path_buf();
    std::fs::read_dir(profile_dir.join("build"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("dpdk-sys-"))
        .map(|e| e.path().join("build-script-build"))
        .filter(|p| p.is_file())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

/// `ctl keygen` writes a key the appliance accepts, into a directory it
/// makes if need be (owner-only, like the file), and never over a key.
#[test]
fn keygen_makes_its_directory_and_keeps_an_existing_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/new/orch.key");
    let arg = key.display().to_string();
    let out = intellinode(&["ctl".into(), "keygen".into(), arg.clone()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().unwrap()), 0o700);
    assert!(control::Key::from_file(&key).is_ok());
    let before = std::fs::read(&key).unwrap();
    let line = assert_one_line_error(
        &intellinode(&["ctl".into(), "keygen".into(), arg]),
        "orch.key",
    );
    assert!(line.contains("exists"), "{line}");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the key was overwritten"
    );
}

/// Control keys come from files the world cannot read; each problem is one
/// line naming the peer and the file, before EAL even starts.
#[test]
fn control_key_file_problems() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = write_key(dir.path(), "orch.key");
    let peers = |path: &std::path::Path| {
        format!(
            "[[control.peers]]\nid = 1\nname = \"orch\"\nkey_file = \"{}\"\nroles = [\"state\"]\n",
            path.display()
        )
    };

    let cfg = control_config(
        dir.path(),
        free_port(),
        free_port(),
        1000,
        &peers(&dir.path().join("missing.key")),
    );
    let line = assert_one_line_error(
        &intellinode(&run_args(&cfg, eal_args("keymiss", &null_pair()))),
        "missing.key",
    );
    assert!(
        line.contains("control peer 1 (orch)") && line.contains("does not exist"),
        "{line}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = control_config(dir.path(), free_port(), free_port(), 1000, &peers(&key));
    let line = assert_one_line_error(
        &intellinode(&run_args(&cfg, eal_args("keymode", &null_pair()))),
        "orch.key",
    );
    assert!(line.contains("chmod 600"), "{line}");

    std::fs::write(&key, "not hex at all\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_one_line_error(
        &intellinode(&run_args(&cfg, eal_args("keyhex", &null_pair()))),
        "orch.key",
    );
}
