//! `emulator serve` and `emulator agent` over loopback TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use classifier::token_feature_tlv::{emit_ipv4_option, scan_ipv4, TlvLookup, TokenFeatureTlvRepr};
use emulator::client::{self, AgentConfig, Arrivals, PlannedRequest, SocketTlv};
use llm_requests::text::{chat_body, http_post, LongTask};
use llm_requests::{self as agent, PromptKind};

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_emulator"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn emulator serve");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }

    /// SIGTERM, then the rest of stdout.
    fn stop(mut self) -> String {
        let rc = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(rc.success());
        let mut rest = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut rest)
            .unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "serve exited with {st}");
        rest
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state(addr: SocketAddr) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    serde_json::from_str(r.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[test]
fn agent_ttft_follows_the_serve_model() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("serve.json");
    let srv = Server::start(&[
        "--name",
        "edge",
        "--prefill-tps",
        "5000",
        "--decode-tps",
        "20000",
        "--base-ttft-ms",
        "20",
        "--concurrency",
        "64",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    let out = dir.path().join("agent.json");
    let o = Command::new(env!("CARGO_BIN_EXE_emulator"))
        .args(["agent", "--target", &srv.addr.to_string()])
        .args(["--requests", "16", "--rate", "20", "--seed", "3"])
        .args([
            "--short-fraction",
            "0.5",
            "--tlv",
            "none",
            "--timeout-s",
            "20",
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("short") && text.contains("long"), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 16);
    let model = |pt: f64| 20.0 + pt / 5000.0 * 1000.0;
    for r in reqs {
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["status"], 200);
        assert_eq!(r["tlv"], false);
        let ttft = r["ttft_ms"].as_f64().unwrap();
        let want = model(r["prompt_tokens"].as_f64().unwrap());
        assert!(
            ttft >= want - 1.0 && ttft <= want * 1.05 + 40.0,
            "TTFT {ttft} ms, model {want} ms: {r}"
        );
        let chunks = r["max_tokens"].as_u64().unwrap().div_ceil(4);
        assert_eq!(r["chunks"].as_u64().unwrap(), chunks, "{r}");
        assert!(r["completion_ms"].as_f64().unwrap() >= ttft);
    }
    let c = &v["classes"];
    for class in ["short", "long"] {
        assert!(c[class]["count"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c[class]["count"], c[class]["ok"]);
        assert_eq!(c[class]["errors"], 0);
    }
    let short = c["short"]["ttft_ms"]["mean"].as_f64().unwrap();
    let long = c["long"]["ttft_ms"]["mean"].as_f64().unwrap();
    assert!((20.0..60.0).contains(&short), "short mean TTFT {short}");
    // Long prompts: larger by their prefill (mean prompt tokens / 5000/s).
    let long_pt: Vec<f64> = reqs
        .iter()
        .filter(|r| r["class"] == "long")
        .map(|r| r["prompt_tokens"].as_f64().unwrap())
        .collect();
    let prefill = long_pt.iter().sum::<f64>() / long_pt.len() as f64 / 5.0;
    assert!(prefill > 50.0, "long prompts too short: {prefill} ms");
    assert!(
        (long - short - prefill).abs() < 0.1 * prefill + 25.0,
        "long {long} short {short} prefill {prefill}"
    );

    let summary = srv.stop();
    assert!(summary.contains("16 requests served"), "{summary}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(s["served"], 16);
    assert_eq!(s["errors"], 0);
    assert_eq!(s["max_queue_len"], 0);
    let mut server_pt: Vec<u64> = s["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["prompt_tokens"].as_u64().unwrap())
        .collect();
    let mut agent_pt: Vec<u64> = reqs
        .iter()
        .map(|r| r["prompt_tokens"].as_u64().unwrap())
        .collect();
    server_pt.sort_unstable();
    agent_pt.sort_unstable();
    assert_eq!(
        server_pt, agent_pt,
        "server and agent count the same tokens"
    );
}

/// A request of about `words` words asking for `max_tokens`.
fn planned(id: usize, kind: PromptKind, text: &str, max_tokens: u32) -> PlannedRequest {
    let http = http_post("127.0.0.1", &chat_body("m", text, max_tokens));
    let features = agent::request_features(&http, agent::task_hint(kind));
    PlannedRequest {
        id,
        at: Duration::ZERO,
        kind,
        http,
        features,
        max_tokens: Some(max_tokens),
    }
}

fn cfg(target: SocketAddr) -> AgentConfig {
    AgentConfig {
        target,
        requests: 0,
        arrivals: Arrivals::Poisson(1.0),
        short_fraction: 0.5,
        seed: 1,
        tlv: SocketTlv::None,
        bind: None,
        timeout: Duration::from_secs(10),
        max_inflight: 8,
    }
}

/// With one batch slot a long request in flight makes a short one wait
/// (queued, visible in /state); with two slots it does not.
fn long_then_short(concurrency: &str) -> (f64, f64, serde_json::Value) {
    let srv = Server::start(&[
        "--concurrency",
        concurrency,
        "--prefill-tps",
        "5000",
        "--decode-tps",
        "1000",
        "--base-ttft-ms",
        "10",
    ]);
    let prose = "the quick brown fox jumps over the lazy dog. ".repeat(110);
    let long = planned(0, PromptKind::Long(LongTask::Summarisation), &prose, 400);
    let short = planned(1, PromptKind::Control, "turn on the light", 8);
    assert!(long.features.prompt_tokens > 900, "{:?}", long.features);
    let c = cfg(srv.addr);
    let start = Instant::now();
    let (c1, c2) = (c.clone(), c);
    let lt = std::thread::spawn(move || client::run_one(&c1, &long, start));
    std::thread::sleep(Duration::from_millis(100));
    let st = state(srv.addr);
    assert_eq!(st["active"], 1, "{st}");
    assert_eq!(st["queue_len"], 0, "{st}");
    let sh = std::thread::spawn(move || client::run_one(&c2, &short, start));
    std::thread::sleep(Duration::from_millis(60));
    let during = state(srv.addr);
    let (l, s) = (lt.join().unwrap(), sh.join().unwrap());
    assert!(l.ok() && s.ok(), "{l:?} {s:?}");
    let after = state(srv.addr);
    assert_eq!(after["served"], 2, "{after}");
    assert_eq!(after["queue_len"], 0, "{after}");
    assert_eq!(after["active"], 0, "{after}");
    drop(srv);
    (l.completion_ms.unwrap(), s.ttft_ms.unwrap(), during)
}

#[test]
fn one_slot_makes_a_short_request_queue_behind_a_long_one() {
    // Long: ~1000 prompt tokens (≈ 200 ms prefill) + 400 tokens at 1000/s.
    let (long_done, short_ttft, during) = long_then_short("1");
    assert_eq!(during["queue_len"], 1, "{during}");
    assert_eq!(during["active"], 1, "{during}");
    assert!(long_done > 500.0, "long took {long_done} ms");
    // The short one started about 100 ms after the long one, so it waited
    // for the rest of the long one's service.
    assert!(
        short_ttft > long_done - 150.0,
        "short TTFT {short_ttft}, long {long_done}"
    );

    let (_, short_ttft, during) = long_then_short("2");
    // The short one was never queued (it may be done already).
    assert_eq!(during["queue_len"], 0, "{during}");
    assert!(
        short_ttft < 60.0,
        "short TTFT {short_ttft} with a free slot"
    );
}

#[test]
fn ip_option_bytes_are_the_classifier_tlv() {
    let c = cfg("127.0.0.1:9".parse().unwrap());
    let plan = client::plan(&AgentConfig { requests: 20, ..c });
    assert!(plan.iter().any(|p| p.class() == "short") && plan.iter().any(|p| p.class() == "long"));
    for p in &plan {
        let want_features = agent::request_features(&p.http, agent::task_hint(p.kind));
        assert_eq!(p.features, want_features);
        let repr = TokenFeatureTlvRepr {
            directed: false,
            feature_id: tokenfeat::encode(&want_features),
        };
        let mut want = [0u8; 12];
        assert_eq!(emit_ipv4_option(&repr, &mut want).unwrap(), 12);
        let got = p.ip_options();
        assert_eq!(got.len() % 4, 0);
        assert_eq!(got, want, "request {}", p.id);
        assert_eq!(got[0], 0x9e);
        assert_eq!(got[1], 12);
        assert_eq!(
            scan_ipv4(&got),
            TlvLookup::Present {
                directed: false,
                id: repr.feature_id
            }
        );
    }
}

#[test]
fn agent_with_ipv4_tlv_runs_or_says_why_not() {
    let srv = Server::start(&["--decode-tps", "100000", "--base-ttft-ms", "1"]);
    let o = Command::new(env!("CARGO_BIN_EXE_emulator"))
        .args(["agent", "--target", &srv.addr.to_string()])
        .args(["--requests", "4", "--interval-ms", "10", "--tlv", "ipv4"])
        .args(["--bind", "127.0.0.1", "--short-fraction", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("TLV ipv4"), "{out}");
        assert!(out.contains("4 ok"), "{out}");
    } else {
        // Unprivileged: one line naming the problem.
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("emulator: error: --tlv ipv4: ") && err.contains("IP_OPTIONS"),
            "{err}"
        );
    }
}

#[test]
fn serve_reports_node_state_the_appliance_accepts() {
    use control::{Key, Message, MetricType, PeerConfig, Receiver, ReceiverConfig, Roles};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("peer.key");
    std::fs::write(&key_file, format!("{}\n", "5a".repeat(32))).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let appliance = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    appliance
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let to = appliance.local_addr().unwrap().to_string();
    let mut srv = Server::start(&[
        "--duration-s",
        "0.5",
        "--report-to",
        &to,
        "--key-file",
        key_file.to_str().unwrap(),
        "--key-id",
        "7",
        "--node",
        "2",
        "--interval-ms",
        "50",
    ]);
    let key = Key::from_file(&key_file).unwrap();
    let mut rx = Receiver::new(
        vec![PeerConfig::new(7, "pktgen", key, Roles::STATE)],
        ReceiverConfig::default(),
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let mut seen = 0;
    for _ in 0..3 {
        let n = appliance.recv(&mut buf).expect("a NODE_STATE datagram");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let got = rx.accept(&buf[..n], now).expect("sealed with the peer key");
        assert_eq!(got.peer_id, 7);
        let Message::NodeState(ns) = got.message else {
            panic!("{:?}", got.message)
        };
        assert_eq!(ns.node.0, 2);
        let q = ns
            .metrics
            .iter()
            .find(|m| m.metric_type == MetricType::QueueLength)
            .unwrap();
        assert_eq!(q.value, 0.0);
        let t = ns
            .metrics
            .iter()
            .find(|m| m.metric_type == MetricType::EstTtft)
            .unwrap();
        // Idle: the base TTFT plus the prefill of a typical short prompt
        // (16 tokens at the default 5000 tokens/s).
        assert!(
            (t.value - (5.0 + 16.0 / 5000.0 * 1000.0)).abs() < 1e-6,
            "idle estimate {}",
            t.value
        );
        seen += 1;
    }
    assert_eq!(seen, 3);
    assert!(srv.child.wait().unwrap().success());
}

#[test]
fn agent_fails_in_one_line_when_nothing_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = Command::new(env!("CARGO_BIN_EXE_emulator"))
        .args(["agent", "--target", &format!("127.0.0.1:{port}")])
        .args(["--requests", "2", "--interval-ms", "1", "--timeout-s", "2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("emulator: error: all 2 requests to 127.0.0.1:") && err.contains("refused"),
        "{err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_emulator"))
        .args(["agent", "--target", "127.0.0.1:9", "--short-fraction", "2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--short-fraction 2"));
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    r.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// Sends one non-streamed chat request with `messages` and reads the
/// whole answer.
fn chat(addr: SocketAddr, messages: serde_json::Value) {
    let body =
        serde_json::json!({"model": "m", "messages": messages, "max_tokens": 4, "stream": false})
            .to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
}

/// `/metrics` speaks vLLM: the collector's parser reads it as vLLM, the
/// prefix cache counts the shared system prompt of the second request as
/// hit tokens, and the TTFT histogram counts both requests; `/v1/models`
/// gives `max_model_len`.
#[test]
fn metrics_are_vllms_and_a_shared_prefix_hits_the_cache() {
    let srv = Server::start(&[
        "--name",
        "edge",
        "--max-model-len",
        "8192",
        "--prefill-tps",
        "1000",
        "--decode-tps",
        "10000",
    ]);
    let models: serde_json::Value = serde_json::from_str(&get(srv.addr, "/v1/models")).unwrap();
    assert_eq!(models["data"][0]["max_model_len"], 8192, "{models}");

    let page = get(srv.addr, "/metrics");
    let r = collector::reading::read(&page).unwrap_or_else(|e| panic!("{e}:\n{page}"));
    assert_eq!(r.server, collector::reading::Server::Vllm);
    assert_eq!((r.waiting, r.running), (Some(0.0), Some(0.0)));
    assert!(
        page.contains("vllm:cache_config_info{block_size=\"16\""),
        "{page}"
    );

    let system = llm_requests::text::WORDS.join(" ");
    let turn = |text: &str| {
        serde_json::json!([
            {"role": "system", "content": system},
            {"role": "user", "content": text},
        ])
    };
    chat(srv.addr, turn("turn on the light"));
    chat(srv.addr, turn("what time is it in Tokyo"));
    let r = collector::reading::read(&get(srv.addr, "/metrics")).unwrap();
    let Some(collector::reading::PrefixCacheStats::Tokens { queries, hits }) = r.prefix_cache
    else {
        panic!("no prefix cache counters: {r:?}")
    };
    let prompt = f64::from(tokenfeat::count_tokens(&system));
    // Both prompts were looked up; the second found the system prompt's
    // whole blocks.
    assert!(
        queries > 2.0 * prompt,
        "queries {queries}, system prompt {prompt} tokens"
    );
    assert!(
        hits >= prompt - 32.0 && hits <= prompt + 16.0,
        "hits {hits}, system prompt {prompt} tokens"
    );
    assert_eq!(r.ttft.unwrap().count, 2.0);
    srv.stop();
}
