//! Delayed binding through the real appliance in namespaces: requests
//! without a TLV, from the official OpenAI SDK, curl and raw sockets, are
//! decided on their whole HTTP request, not at their SYN.
//!
//! The cluster of `examples/steer.toml` (steer_cluster): the appliance,
//! an edge node (8K context) and a centre node 15 ms away. Short control
//! commands must reach the edge and long code or reasoning prompts the
//! centre, each counted in its class (`steer.chosen`, read before and
//! after each request over the control channel), however the request is
//! sent: SDK streaming and not, curl, `Expect: 100-continue`, a chunked
//! body, a body over many small segments, and a 200 KiB body whose last
//! user message is a short command after a large `tools` array (a
//! control command, counted interactive; its 50K prompt tokens exceed the
//! edge's context, so the centre serves it). The decision holds after the
//! models learnt from many long prompts. A keep-alive connection counts
//! each request in its own class. The agent library's requests carry the
//! TLV and are decided at the SYN, never spliced. A SYN flood from many
//! addresses and clients that stall after the handshake are counted,
//! leave the appliance's splicing state bounded, and do not stop a
//! well-behaved client from being served.
//!
//! The Python clients run in one interpreter (`tests/python/session.py`),
//! each request on connections of its own, so the SDK is imported once
//! rather than once per request.

use std::cell::RefCell;
use std::path::Path;
use std::process::Stdio;

use intellinode_tests::steer_cluster::*;
use intellinode_tests::*;

const EDGE: &str = "edge-small";
const CENTRE: &str = "centre-large";

const SHORT: &str = "turn on the light in the kitchen";
/// A long reasoning request: a few hundred tokens of context, then the
/// question.
fn reasoning_prompt() -> String {
    let mut p = "The seminar discussed primes and their distribution over many intervals, \
                 with examples from the classical literature and open questions. "
        .repeat(40);
    p += "Prove step by step that there are infinitely many primes. Why does Euclid's \
          argument work? What fails in a finite field? How would you generalise it?";
    p
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

struct Rig<'a> {
    t: &'a Topology,
    control_port: u16,
    key_path: std::path::PathBuf,
    dir: &'a Path,
    /// The SDK and raw-socket clients, one interpreter for all of them.
    clients: RefCell<PySession>,
}

impl Rig<'_> {
    /// The appliance's stats, over the control channel.
    fn stats(&self) -> serde_json::Value {
        let out = self
            .t
            .command("", &bin_under_test("intellinode"))
            .args([
                "ctl",
                "--server",
                &format!("127.0.0.1:{}", self.control_port),
                "--key-file",
            ])
            .arg(&self.key_path)
            .args(["--key-id", "1", "--json", "query", "stats"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctl query stats: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// New decisions per (instance, class) since `before`.
    fn chosen_since(&self, before: &serde_json::Value) -> Vec<(String, String)> {
        let after = self.stats();
        if std::env::var_os("SPLICE_DEBUG").is_some() {
            eprintln!(
                "steer: {}",
                serde_json::to_string(&after["steer"]).unwrap_or_default()
            );
        }
        let mut out = Vec::new();
        for inst in [EDGE, CENTRE] {
            for class in [
                "interactive",
                "bulk_chat",
                "bulk_code",
                "bulk_summarisation",
                "bulk_reasoning",
                "other",
            ] {
                let n =
                    |v: &serde_json::Value| v["steer"]["chosen"][inst][class].as_u64().unwrap_or(0);
                for _ in 0..n(&after).saturating_sub(n(before)) {
                    out.push((inst.to_string(), class.to_string()));
                }
            }
        }
        out
    }

    /// Runs `f` and returns what it printed and the decisions it caused.
    fn decided<T>(&self, f: impl FnOnce() -> T) -> (T, Vec<(String, String)>) {
        let before = self.stats();
        let r = f();
        (r, self.chosen_since(&before))
    }

    fn python(&self, script: &str, args: &[&str]) -> serde_json::Value {
        self.clients.borrow_mut().call(script, args)
    }

    fn sdk(&self, prompt: &str, stream: bool) -> serde_json::Value {
        let base = format!("http://{VIP}/v1");
        let mut args = vec![
            "--base-url",
            &base,
            "--max-tokens",
            "16",
            "--prompt",
            prompt,
        ];
        if stream {
            args.push("--stream");
        }
        self.python("sdk_agent.py", &args)
    }

    fn raw(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--target", VIP]);
        self.python("splice_client.py", &all)
    }

    /// curl with the body in a file; returns the answering node (X-Node).
    fn curl(&self, prompt: &str, headers: &[&str]) -> String {
        let body = serde_json::json!({
            "model": "intellinode-emulated",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 16,
        });
        let path = self.dir.join("curl-body.json");
        std::fs::write(&path, body.to_string()).unwrap();
        let mut c = self.t.command("agent", Path::new("curl"));
        c.args([
            "-sS",
            "-i",
            "--max-time",
            "20",
            "-H",
            "Content-Type: application/json",
        ]);
        for h in headers {
            c.args(["-H", h]);
        }
        let out = c
            .arg("--data-binary")
            .arg(format!("@{}", path.display()))
            .arg(format!("http://{VIP}/v1/chat/completions"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(" 200 "),
            "curl {headers:?}: {text}"
        );
        text.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-node:")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no X-Node in {text}"))
    }
}

fn one(decisions: &[(String, String)]) -> (&str, &str) {
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    (&decisions[0].0, &decisions[0].1)
}

fn scenario(workers: Workers, tag: &str) {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let t = Topology::up(&format!("{tag}{}", std::process::id()));
    let cluster = Cluster::start(&t, dir.path(), tag, workers);
    let rig = Rig {
        t: &t,
        control_port: cluster.control_port,
        key_path: cluster.key_path.clone(),
        dir: dir.path(),
        clients: RefCell::new(PySession::start(&t, "agent")),
    };
    let long = long_code_prompt();
    let reasoning = reasoning_prompt();

    // The SDK, not streaming and streaming.
    let (r, d) = rig.decided(|| rig.sdk(SHORT, false));
    assert!(!r["content"].as_str().unwrap_or_default().is_empty(), "{r}");
    assert_eq!(one(&d), (EDGE, "interactive"), "SDK short");
    let (r, d) = rig.decided(|| rig.sdk(&long, true));
    assert!(!r["content"].as_str().unwrap_or_default().is_empty(), "{r}");
    assert_eq!(one(&d), (CENTRE, "bulk_code"), "SDK long, streaming");
    let (_, d) = rig.decided(|| rig.sdk(SHORT, true));
    assert_eq!(one(&d), (EDGE, "interactive"), "SDK short, streaming");

    // curl: plain, Expect: 100-continue, chunked.
    let (node, d) = rig.decided(|| rig.curl(SHORT, &[]));
    assert_eq!(
        (node.as_str(), one(&d)),
        ("edge", (EDGE, "interactive")),
        "curl"
    );
    let (node, d) = rig.decided(|| rig.curl(&reasoning, &[]));
    assert_eq!(
        (node.as_str(), one(&d)),
        ("centre", (CENTRE, "bulk_reasoning")),
        "curl reasoning"
    );
    let (node, d) = rig.decided(|| rig.curl(SHORT, &["Expect: 100-continue"]));
    assert_eq!(
        (node.as_str(), one(&d)),
        ("edge", (EDGE, "interactive")),
        "Expect"
    );
    let (node, d) = rig.decided(|| rig.curl(&long, &["Expect: 100-continue"]));
    assert_eq!(
        (node.as_str(), one(&d)),
        ("centre", (CENTRE, "bulk_code")),
        "Expect long"
    );
    let (node, d) = rig.decided(|| rig.curl(SHORT, &["Transfer-Encoding: chunked"]));
    assert_eq!(
        (node.as_str(), one(&d)),
        ("edge", (EDGE, "interactive")),
        "chunked"
    );

    // Raw sockets: a body over many small segments; a 200 KiB body with a
    // large tools array before a short last user message.
    let (r, d) = rig.decided(|| rig.raw(&["split", "--prompt", SHORT, "--piece", "40"]));
    assert_eq!(
        (r["node"].as_str(), one(&d)),
        (Some("edge"), (EDGE, "interactive")),
        "split {r}"
    );
    let (r, d) = rig.decided(|| rig.raw(&["split", "--prompt", &long, "--piece", "700"]));
    assert_eq!(
        (r["node"].as_str(), one(&d)),
        (Some("centre"), (CENTRE, "bulk_code")),
        "split long {r}"
    );
    let (r, d) = rig.decided(|| rig.raw(&["tools", "--prompt", SHORT, "--tools-kib", "200"]));
    assert!(r["body_bytes"].as_u64().unwrap() > 200 * 1024, "{r}");
    assert_eq!(r["status"], 200, "{r}");
    let (_, class) = one(&d);
    assert_eq!(
        class, "interactive",
        "the short command after the tools: {d:?}"
    );

    // Keep-alive: a short then a long request, each in its own class, on
    // the instance the first chose.
    let (r, d) = rig.decided(|| rig.raw(&["keepalive", "--prompt", SHORT, "--prompt", &reasoning]));
    let answers = r["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2, "{r}");
    assert!(
        answers
            .iter()
            .all(|a| a["status"] == 200 && a["node"] == "edge"),
        "{r}"
    );
    let mut d = d;
    d.sort();
    assert_eq!(
        d,
        vec![
            (EDGE.to_string(), "bulk_reasoning".to_string()),
            (EDGE.to_string(), "interactive".to_string())
        ]
    );

    // Teach the models many long prompts; short commands stay on the edge.
    for _ in 0..6 {
        let (_, d) = rig.decided(|| rig.sdk(&long, false));
        assert_eq!(one(&d), (CENTRE, "bulk_code"));
    }
    let (_, d) = rig.decided(|| rig.sdk(SHORT, false));
    assert_eq!(one(&d), (EDGE, "interactive"), "after learning");

    // The agent library: the TLV decides at the SYN, nothing is spliced.
    let before = rig.stats();
    let base = format!("http://{VIP}/v1");
    let r = rig.python(
        "sdk_agent.py",
        &[
            "--base-url",
            &base,
            "--agent-lib",
            "--max-tokens",
            "16",
            "--prompt",
            SHORT,
        ],
    );
    assert!(!r["content"].as_str().unwrap_or_default().is_empty(), "{r}");
    let after = rig.stats();
    let n = |v: &serde_json::Value, k: &str, f: &str| v["steer"][k][f].as_u64().unwrap_or(0);
    assert_eq!(
        n(&after, "features", "tlv") - n(&before, "features", "tlv"),
        1
    );
    assert_eq!(
        n(&after, "splice", "syn_answered"),
        n(&before, "splice", "syn_answered")
    );

    // A SYN flood from many addresses, and clients that stall after the
    // handshake; a well-behaved client is served meanwhile.
    let before = rig.stats();
    let stall = t
        .command("agent", &venv_python())
        .arg(workspace_root().join("tests/python/splice_client.py"))
        .args(["stall", "--target", VIP, "--count", "20", "--hold-s", "9"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let flood = rig.raw(&["flood", "--count", "3000"]);
    assert_eq!(flood["sent"], 3000);
    let (_, d) = rig.decided(|| rig.sdk(SHORT, false));
    assert_eq!(
        one(&d),
        (EDGE, "interactive"),
        "served during the flood and the stall"
    );
    let mid = rig.stats();
    let held = mid["steer"]["splice"]["connections"].as_u64().unwrap();
    assert!(
        (20..100).contains(&held),
        "the stalled clients and no flood state: {held}"
    );
    let out = stall.wait_with_output().unwrap();
    let stalled: serde_json::Value = serde_json::from_slice(
        out.stdout
            .rsplit(|&b| b == b'\n')
            .find(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        stalled["reset"], 20,
        "every stalled client timed out: {stalled}"
    );
    let after = rig.stats();
    let s = |v: &serde_json::Value, f: &str| v["steer"]["splice"][f].as_u64().unwrap_or(0);
    // Every SYN the appliance received was answered (a few may be lost
    // in the kernel's packet rings before it sees them).
    let answered = s(&after, "syn_answered") - s(&before, "syn_answered");
    assert!(answered >= 2500 + 20, "{answered} SYNs answered");
    assert_eq!(
        s(&after, "request_timeout") - s(&before, "request_timeout"),
        20
    );
    assert_eq!(s(&after, "connections"), 0, "{}", after["steer"]["splice"]);
    assert_eq!(s(&after, "buffer_bytes"), 0);

    let (report, _) = cluster.stop();
    assert_eq!(report["totals"]["balanced"], true, "{}", report["totals"]);
    assert!(report["totals"]["generated_packets"].as_u64().unwrap() > 3000);
    let features = &report["steer"]["features"];
    assert_eq!(
        features["unknown"], 0,
        "no TLV-less flow decided blind: {features}"
    );
}

#[test]
fn tlv_less_requests_are_decided_on_their_whole_request_one_worker() {
    scenario(Workers::One, "splk");
}

#[test]
fn tlv_less_requests_are_decided_on_their_whole_request_two_workers() {
    scenario(Workers::Two, "spl2");
}
