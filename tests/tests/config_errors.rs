//! `intellinode run --config bad.toml` on a bad config in every section:
//! each ends in exit status 1 and one line that names the key (by its path
//! in the file) and what it must be, before EAL starts.

use intellinode_tests::*;

const FORWARD: &str = "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n";
const TENSOR: &str = "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\n";
const CONTROL: &str = "[control]\n[[control.peers]]\nid = 1\nname = \"orch\"\nkey_file = \"orch.key\"\nroles = [\"state\"]\n";

fn steer_example() -> String {
    std::fs::read_to_string(workspace_root().join("examples/steer.toml")).unwrap()
}

/// The shipped steer example with `from` replaced by `to` (which must be
/// there: a replacement that misses would test the good config).
fn steer_with(from: &str, to: &str) -> String {
    let base = steer_example();
    assert!(base.contains(from), "examples/steer.toml has no {from:?}");
    base.replacen(from, to, 1)
}

/// The shipped steer example with no service: its `[[steer.services]]`
/// table cut, and an empty list in its place.
fn steer_without_services() -> String {
    let base = steer_example();
    let cut = base
        .find("[[steer.services]]")
        .expect("examples/steer.toml has a [[steer.services]] table");
    assert!(
        base.contains("[steer]\n"),
        "examples/steer.toml has a [steer] line"
    );
    base[..cut].replacen("[steer]\n", "[steer]\nservices = []\n", 1)
}

struct Case {
    text: String,
    /// What the one line must contain: the key's path, then what it must be.
    says: &'static [&'static str],
}

fn case(text: impl Into<String>, says: &'static [&'static str]) -> Case {
    Case {
        text: text.into(),
        says,
    }
}

fn cases() -> Vec<Case> {
    vec![
        // Top level.
        case(
            "[pipeline]\nkind = \"forward\"\n[[pairs]]\nports = [0, 1]\n",
            &["`pipeline` must be one of \"forward\", \"steer\", \"tensor\" (a string), found a table", "line 1"],
        ),
        case(
            "pipeline = \"route\"\n[[pairs]]\nports = [0, 1]\n",
            &["`pipeline` must be one of", "found \"route\""],
        ),
        case(
            format!("burst_size = \"32\"\n{FORWARD}"),
            &["`burst_size` must be an integer from 0 to 65535, found a string \"32\""],
        ),
        case(
            format!("burst_size = 1000\n{FORWARD}"),
            &["`burst_size` must be from 1 to 64, found 1000"],
        ),
        case(
            format!("idle_sleep_us = 1.5\n{FORWARD}"),
            &["`idle_sleep_us` must be an integer", "found a float 1.5"],
        ),
        case(
            format!("burst = 8\n{FORWARD}"),
            &["unknown key `burst` at the top level: did you mean `burst_size`?", "line 1"],
        ),
        case(
            format!("{FORWARD}burst_size = 8\n"),
            &["unknown key `burst_size` in [[pairs]]", "is a top-level key", "move it above the first header"],
        ),
        case("[[pairs]]\nports = [0, 1]\n", &["missing key `pipeline` at the top level"]),
        // [ports]
        case(
            format!("{FORWARD}[ports]\nrx_descriptors = -1\n"),
            &["`ports.rx_descriptors` must be an integer from 0 to 65535, found -1"],
        ),
        case(
            format!("{FORWARD}[ports]\ntx_descriptors = 0\n"),
            &["`ports.tx_descriptors` must be from 1 to 65535, found 0"],
        ),
        case(
            format!("{FORWARD}[[ports]]\nmbufs = 4095\n"),
            &["`ports` must be a table, found an array", "written [ports], not [[ports]]"],
        ),
        case(
            format!("{FORWARD}[ports]\nmbuf = 4095\n"),
            &["unknown key `mbuf` in [ports]: did you mean `mbufs`?"],
        ),
        // [[pairs]]
        case(
            "pipeline = \"forward\"\n[pairs]\nports = [0, 1]\n",
            &["`pairs` must be an array, found a table", "written [[pairs]], not [pairs]"],
        ),
        case(
            "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1, 2]\n",
            &["`pairs[0].ports` must be an array of 2 port numbers, found 3 elements"],
        ),
        case(
            "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n[[pairs]]\nports = [\"2\", 3]\n",
            &["`pairs[1].ports[0]` must be an integer from 0 to 65535, found a string \"2\""],
        ),
        // [control] and [[control.peers]]
        case(
            format!("{FORWARD}{CONTROL}").replace("[control]\n", "[control]\nlisten = \"localhost\"\n"),
            &["`control.listen` must be an address and port", "found \"localhost\""],
        ),
        case(
            format!("{FORWARD}{CONTROL}").replace("[control]\n", "[control]\nmax_datagram = 10\n"),
            &["`control.max_datagram` must be from 64 to 65000, found 10"],
        ),
        case(
            format!("{FORWARD}{CONTROL}").replace("roles = [\"state\"]", "roles = \"state\""),
            &["`control.peers[0].roles` must be an array, found a string \"state\""],
        ),
        case(
            format!("{FORWARD}{CONTROL}").replace("roles = [\"state\"]", "roles = [\"root\"]"),
            &["`control.peers[0].roles`", "unknown role `root`, expected one of"],
        ),
        // [metrics]
        case(
            format!("{FORWARD}[metrics]\nlisten = 9470\n"),
            &["`metrics.listen` must be an address and port", "found an integer 9470"],
        ),
        // [probe] and [[probe.targets]]
        case(
            format!("{FORWARD}[probe]\nreflect = \"yes\"\n"),
            &["`probe.reflect` must be true or false, found a string \"yes\""],
        ),
        case(
            format!("{FORWARD}[probe]\nreflect = true\nwindow = 0\n"),
            &["`probe.window` must be from 1 to 1000, found 0"],
        ),
        case(
            format!("{FORWARD}[probe]\nreflect = true\n[[probe.targets]]\npath = 1\ndst_ip = \"300.1.1.1\"\n"),
            &["`probe.targets[0].dst_ip` must be an IPv4 address", "found \"300.1.1.1\""],
        ),
        // [steer] and its sub-tables
        case(
            steer_with("agent_port = 0\n", ""),
            &["missing key `agent_port` in [steer]"],
        ),
        case(
            steer_with("[steer]\n", "[steer]\npolicy = 3\n"),
            &["`steer.policy` must be one of \"token_aware\", \"least_queue\", \"round_robin\", \"llm_d\" (a string), found an integer 3"],
        ),
        case(
            steer_with("[steer]\n", "[steer]\nflow_table_size = 0\n"),
            &["`steer.flow_table_size` must be from 1 to 16777216, found 0"],
        ),
        case(
            steer_with("[steer]\n", "[steer]\nclass_weights = { bulk_video = 2 }\n"),
            &["unknown key `bulk_video` in [steer.class_weights]: expected one of bulk_chat"],
        ),
        case(
            steer_with("[steer]\n", "[steer]\nclass_weights = { bulk_chat = 0 }\n"),
            &["`steer.class_weights.bulk_chat` must be from 1 to 65535, found 0"],
        ),
        case(
            steer_with("next_hop_mac = \"02:00:00:00:03:02\"", "next_hop_mac = \"02:00:00\""),
            &["`steer.paths[1].next_hop_mac` must be a MAC address", "found \"02:00:00\""],
        ),
        case(
            steer_with("concurrency = 16", "concurrency = 1.5"),
            &["`steer.instances[0].concurrency` must be an integer", "found a float 1.5"],
        ),
        case(
            steer_with("model_class = \"large_centre\"", "model_class = \"huge\""),
            &["`steer.instances[1].model_class` must be one of \"small_edge\", \"large_centre\", found \"huge\""],
        ),
        case(
            steer_with("vip = \"10.0.100.1\"", "vip = \"chat.example\""),
            &["`steer.services[0].vip` must be an IP address", "found \"chat.example\""],
        ),
        case(
            steer_with("[[steer.paths]]\n", "[[steer.egress]]\nport = 2\nrate_mbps = 0\n\n[[steer.paths]]\n"),
            &["`steer.egress[0].rate_mbps` must be a number > 0, found 0"],
        ),
        case(
            steer_with("[[steer.services]]\n", "[steer.services]\n"),
            &["`steer.services` must be an array, found a table", "written [[steer.services]], not [steer.services]"],
        ),
        case(
            steer_with("latency_us = 500\n", "latency_us = 500\nlatency = 1\n"),
            &["unknown key `latency` in [[steer.paths]] (`steer.paths[0]`): did you mean `latency_us`?"],
        ),
        case(
            steer_with("pipeline = \"steer\"", "pipeline = \"forward\""),
            &["[steer] is only used by pipeline = \"steer\", but pipeline = \"forward\""],
        ),
        case(
            "pipeline = \"steer\"\n[[pairs]]\nports = [0, 1]\n",
            &["pipeline = \"steer\" needs a [steer] section"],
        ),
        case(
            steer_without_services(),
            &["steer: no service: at least one [[steer.services]] is needed"],
        ),
        case(
            steer_with(
                "instances = [\"edge-small\", \"centre-large\"]",
                "instances = [\"edge-small\"]",
            ),
            &["steer: instance centre-large belongs to no service"],
        ),
        // [tensor] and its sub-tables
        case(
            format!("{TENSOR}vni = 16777216\n"),
            &["`tensor.vni` must be from 0 to 16777215, found 16777216"],
        ),
        case(
            format!("{TENSOR}key_id = 256\n"),
            &["`tensor.key_id` must be an integer from 0 to 255, found 256"],
        ),
        case(
            format!("{TENSOR}validate_icrc = 1\n"),
            &["`tensor.validate_icrc` must be true or false, found an integer 1"],
        ),
        case(
            format!("{TENSOR}host = 0\n"),
            &["unknown key `host` in [tensor]"],
        ),
        case(
            format!("{TENSOR}predictor_cpu = 4096\n"),
            &["tensor.predictor_cpu = 4096 is not a CPU this process may run on"],
        ),
        case(
            format!("{TENSOR}rss_key = \"6d5a\"\n"),
            &["`tensor.rss_key` must be", "found \"6d5a\""],
        ),
        case(
            format!("{TENSOR}[tensor.qp]\nexit_ratio = 2.0\n"),
            &["`tensor.qp.exit_ratio` must be a number > 0 and <= 1, found 2"],
        ),
        case(
            format!("{TENSOR}[[tensor.nodes]]\nname = \"gpu\"\nip = \"10.0.0.1\"\nweight = 0\n"),
            &["`tensor.nodes[0].weight` must be from 1 to 65535, found 0"],
        ),
        case(
            format!("{TENSOR}[[tensor.paths]]\nid = 1\nport = 1\nnext_hop_mac = \"02:00:00:00:01:01\"\nremote_ip = \"192.0.2.300\"\ncapacity_mbps = 1000\n"),
            &["`tensor.paths[0].remote_ip` must be an IPv4 address", "found \"192.0.2.300\""],
        ),
        case(
            "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n",
            &["pipeline = \"tensor\" needs a [tensor] section"],
        ),
        // Not TOML at all.
        case(
            "pipeline = forward\n",
            &["invalid TOML at line 1"],
        ),
    ]
}

#[test]
fn every_bad_config_is_one_line_naming_the_key_and_what_it_must_be() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    for (i, c) in cases().into_iter().enumerate() {
        std::fs::write(&cfg, &c.text).unwrap();
        let out = intellinode(&[
            "run".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--duration".into(),
            "0.2".into(),
            "--".into(),
            "--no-huge".into(),
            "-m".into(),
            "512".into(),
            "--no-pci".into(),
            "--file-prefix".into(),
            unique_prefix(&format!("cfgerr{i}")),
        ]);
        let line = assert_one_line_error(&out, c.says[0]);
        assert!(
            line.starts_with(&format!("intellinode: error: config {}: ", cfg.display())),
            "case {i}: {line}"
        );
        for want in &c.says[1..] {
            assert!(
                line.contains(want),
                "case {i}: {line:?} lacks {want:?}\n{}",
                c.text
            );
        }
        // The config is refused before EAL starts: nothing but the line.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "case {i}: stderr:\n{stderr}");
    }
}

/// Each shipped example and the good bases above run the parser without a
/// complaint, so every case above fails for its own change only.
#[test]
fn the_bases_of_the_bad_configs_are_good() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("orch.key");
    write_key(dir.path(), "orch.key");
    assert!(key.exists());
    for (i, text) in [
        FORWARD.to_owned(),
        format!("{FORWARD}{CONTROL}[metrics]\n"),
        TENSOR.to_owned(),
        steer_example(),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = dir.path().join(format!("good{i}.toml"));
        std::fs::write(&cfg, &text).unwrap();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--duration".into(),
            "0.2".into(),
            "--".into(),
        ];
        args.extend(eal_args(
            &format!("cfggood{i}"),
            &["net_null0".into(), "net_null1,no-rx=1".into()],
        ));
        args.push("--no-such-eal-flag".into());
        let _dpdk = dpdk_lock();
        let out = intellinode(&args);
        // Past the config, EAL refuses the flag: the config was accepted.
        assert_one_line_error(&out, "EAL initialisation failed");
    }
}
