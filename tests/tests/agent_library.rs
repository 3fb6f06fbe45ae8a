//! The agent library (python/intellinode-agent) with the official OpenAI
//! Python SDK, through the real appliance in namespaces.
//!
//! The SDK's requests go through `intellinode_agent.Transport`, which puts
//! each request's token feature TLV on its own TCP connection from the SYN
//! on. The appliance must decide every such connection from the TLV at the
//! SYN (counted as `tlv`, never inferred from the payload), and send it
//! where its features say: the short control command to the edge, the long
//! code request to the centre. The answer the SDK parsed proves the NAT
//! both ways.

use std::process::Command;

use intellinode_tests::steer_cluster::*;
use intellinode_tests::*;

/// One chat completion through the SDK in the agent namespace.
fn sdk(t: &Topology, args: &[&str]) -> serde_json::Value {
    let out = t
        .command("agent", &venv_python())
        .arg(workspace_root().join("tests/python/sdk_agent.py"))
        .args(["--base-url", &format!("http://{VIP}/v1")])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sdk_agent.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("sdk_agent.py printed {stdout:?}: {e}"))
}

/// A long code request: a few thousand tokens of source to work on.
fn long_code_prompt() -> String {
    let mut p = String::from(
        "Write a Rust function that parses the log format of the program below \
         and returns the error lines grouped by module.\n\n",
    );
    for i in 0..300 {
        p += &format!(
            "fn handler_{i}(req: &Request) -> Result<Response, Error> {{ log::info!(\"module_{i} got {{:?}}\", req.id); Ok(Response::new()) }}\n"
        );
    }
    p
}

fn expect_task(reply: &serde_json::Value, task: &str) {
    assert_eq!(reply["features"]["task"], task, "{reply}");
    assert!(
        !reply["content"].as_str().unwrap_or_default().is_empty(),
        "the SDK parsed an answer: {reply}"
    );
}

#[test]
fn sdk_requests_through_the_agent_library_are_decided_at_the_syn_by_their_tlv() {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let t = Topology::up(&format!("inal{}", std::process::id()));
    let cluster = Cluster::start(&t, dir.path(), "agentlib", Workers::Two);

    let short = sdk(
        &t,
        &[
            "--agent-lib",
            "--stream",
            "--prompt",
            "turn on the light in the kitchen",
        ],
    );
    let long = long_code_prompt();
    let long = sdk(
        &t,
        &[
            "--agent-lib",
            "--stream",
            "--max-tokens",
            "64",
            "--prompt",
            &long,
        ],
    );
    let (report, served) = cluster.stop();

    expect_task(&short, "immediate_control");
    expect_task(&long, "code_generation");
    assert!(
        long["features"]["prompt_tokens"].as_u64().unwrap() > 3000,
        "{long}"
    );
    assert_eq!(served.node_of(&short), Some("edge"), "{short}");
    assert_eq!(served.node_of(&long), Some("centre"), "{long}");

    // Both connections were decided from their TLV, at the SYN: nothing was
    // inferred from a payload, and no flow started without features.
    let features = &report["steer"]["features"];
    assert_eq!(features["tlv"], 2, "{features}");
    assert_eq!(features["inferred_http"], 0, "{features}");
    assert_eq!(features["unknown"], 0, "{features}");
    assert_eq!(report["steer"]["flows"]["new"], 2, "{}", report["steer"]);
    assert_eq!(report["totals"]["balanced"], true);
}

/// The library's features are the CLI's, field for field, and its carrier
/// bytes are the layouts of wire-format §5.3 and §5.4 around that ID.
#[test]
fn the_library_gives_the_clis_features_and_the_classifiers_option_bytes() {
    let prompts = [
        "turn on the light",
        "write a python function that merges two sorted lists",
        "summarise this report: the quarter closed with revenue up four percent",
    ];
    for prompt in prompts {
        let cli = Command::new(bin_under_test("tokenfeat"))
            .args(["--prompt", prompt, "--json"])
            .output()
            .unwrap();
        assert!(cli.status.success());
        let cli: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
        let script = "import intellinode_agent as a, json, sys\n\
                      f = a.features(sys.argv[1])\n\
                      f['ipv4_option'] = a.ipv4_option(f['feature_id']).hex()\n\
                      f['ipv6_hop_by_hop'] = a.ipv6_hop_by_hop(f['feature_id']).hex()\n\
                      f['feature_id'] = '%#018x' % f['feature_id']\n\
                      print(json.dumps(f))";
        let lib = Command::new(venv_python())
            .args(["-c", script, prompt])
            .output()
            .unwrap();
        assert!(
            lib.status.success(),
            "{}",
            String::from_utf8_lossy(&lib.stderr)
        );
        let mut lib: serde_json::Value = serde_json::from_slice(&lib.stdout).unwrap();
        let hex = |k: &str| {
            let s = lib[k].as_str().unwrap();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let (v4, v6) = (hex("ipv4_option"), hex("ipv6_hop_by_hop"));
        let id = u64::from_str_radix(
            cli["feature_id"].as_str().unwrap().trim_start_matches("0x"),
            16,
        )
        .unwrap();
        // IPv4: type 0x9E, length 12, flags, then the ID; IPv6: a 16-byte
        // Hop-by-Hop header with PadN, then type 0x1E, length 10, flags, ID.
        assert_eq!(&v4[..4], &[0x9e, 12, 0, 0], "{prompt}");
        assert_eq!(v4[4..], id.to_be_bytes(), "{prompt}");
        assert_eq!(&v6[1..8], &[1, 1, 0, 0x1e, 10, 0, 0], "{prompt}");
        assert_eq!(v6[8..], id.to_be_bytes(), "{prompt}");
        for k in ["ipv4_option", "ipv6_hop_by_hop"] {
            lib.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(lib, cli, "{prompt}");
    }
}
