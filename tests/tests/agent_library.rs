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
        &["--agent-lib", "--stream", "--prompt", "turn on the light in the kitchen"],
    );
    let long = long_code_prompt();
    let long = sdk(
        &t,
        &["--agent-lib", "--stream", "--max-tokens", "64", "--prompt", &long],
    );
    let (report, served) = cluster.stop();

    expect_task(&short, "immediate_control");
    expect_task(&long, "code_generation");
    assert!(long["features"]["prompt_tokens"].as_u64().unwrap() > 3000, "{long}");
    let node_of = |r: &serde_json::Value| served.get(r["local"].as_str().unwrap()).cloned();
    assert_eq!(node_of(&short).as_deref(), Some("edge"), "{short}");
    assert_eq!(node_of(&long).as_deref(), Some("centre"), "{long}");

    // Both connections were decided from their TLV, at the SYN: nothing was
    // inferred from a payload, and no flow started without features.
    let features = &report["steer"]["features"];
    assert_eq!(features["tlv"], 2, "{features}");
    assert_eq!(features["inferred_http"], 0, "{features}");
    assert_eq!(features["unknown"], 0, "{features}");
    assert_eq!(report["steer"]["flows"]["new"], 2, "{}", report["steer"]);
    assert_eq!(report["totals"]["balanced"], true);
}
