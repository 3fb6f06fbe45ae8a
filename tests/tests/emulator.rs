//! `pktgen serve` as the clients users run talk to it: the official OpenAI
//! Python SDK (non-streaming and streaming chat completions, the model
//! list, keep-alive through one httpx client) and curl (a chunked body,
//! `Expect: 100-continue`, HTTP/1.0), plus a malformed request that gets an
//! OpenAI-shaped 400 while the node keeps serving. No appliance in the way:
//! this is the emulator's own contract.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use intellinode_tests::*;

/// A running `pktgen serve` on a free loopback port.
struct Node {
    child: Child,
    addr: String,
    stats: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("serve.json");
        let mut child = Command::new(bin_under_test("pktgen"))
            .args(["serve", "--listen", "127.0.0.1:0", "--name", "emu-small"])
            .args([
                "--prefill-tps",
                "100000",
                "--decode-tps",
                "2000",
                "--base-ttft-ms",
                "1",
            ])
            .args(["--duration-s", "60", "--stats-json"])
            .arg(&stats)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = lines
            .by_ref()
            .find_map(|l| {
                l.ok()?
                    .split("listening on ")
                    .nth(1)
                    .map(|a| a.split_whitespace().next().unwrap_or_default().to_owned())
            })
            .expect("pktgen serve did not print `listening on`");
        std::thread::spawn(move || lines.for_each(drop));
        Node {
            child,
            addr,
            stats,
            _dir: dir,
        }
    }

    /// Stops the node; returns its stats.
    fn stop(mut self) -> serde_json::Value {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        read_json(&self.stats)
    }
}

fn python(script: &str, base_url: &str) -> serde_json::Value {
    let out = Command::new(venv_python())
        .args(["-c", script, base_url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SDK: &str = r#"
import json, sys, httpx, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="-", max_retries=0,
                       http_client=httpx.Client(timeout=20.0))
msgs = [{"role": "system", "content": "You are terse."},
        {"role": "user", "content": "turn on the light"}]
whole = client.chat.completions.create(model="emu-small", messages=msgs, max_tokens=12)
parts = [c.choices[0].delta.content or "" for c in
         client.chat.completions.create(model="emu-small", messages=msgs, max_tokens=12, stream=True)
         if c.choices]
models = [m.id for m in client.models.list()]
print(json.dumps({
    "content": whole.choices[0].message.content,
    "role": whole.choices[0].message.role,
    "finish_reason": whole.choices[0].finish_reason,
    "usage": whole.usage.model_dump(),
    "object": whole.object,
    "stream_text": "".join(parts),
    "stream_chunks": len(parts),
    "models": models,
}))
"#;

#[test]
fn the_openai_sdk_gets_whole_and_streamed_answers_and_the_model_list_on_one_connection() {
    let node = Node::start();
    let got = python(SDK, &format!("http://{}/v1", node.addr));
    let stats = node.stop();

    assert_eq!(got["object"], "chat.completion", "{got}");
    assert_eq!(got["role"], "assistant", "{got}");
    assert_eq!(got["finish_reason"], "length", "max_tokens reached: {got}");
    assert_eq!(got["usage"]["completion_tokens"], 12, "{got}");
    assert!(got["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{got}");
    let words = |k: &str| got[k].as_str().unwrap().split_whitespace().count();
    assert_eq!(words("content"), 12, "{got}");
    assert_eq!(words("stream_text"), 12, "{got}");
    assert!(got["stream_chunks"].as_u64().unwrap() >= 3, "{got}");
    assert_eq!(got["models"], serde_json::json!(["emu-small"]));

    // Both completions were served, each recorded on its own, and on the
    // same kept-alive connection (one client port).
    let records = stats["requests"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{stats}");
    assert!(records.iter().all(|r| r["error"].is_null()), "{stats}");
    assert_eq!(
        records[0]["peer"], records[1]["peer"],
        "keep-alive: {stats}"
    );
    assert_eq!(stats["served"], 2);
}

#[test]
fn curl_chunked_bodies_expect_100_continue_and_http_1_0_are_served() {
    let node = Node::start();
    let url = format!("http://{}/v1/chat/completions", node.addr);
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(
        &body,
        r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":[{"type":"text","text":"write a python function that reverses a list"}]}]}"#,
    )
    .unwrap();
    let data = format!("@{}", body.display());
    let json = ["-H", "Content-Type: application/json; charset=utf-8"];

    // A chunked request body.
    let (out, _) = curl(
        &[
            &json[..],
            &[
                "-H",
                "Transfer-Encoding: chunked",
                "--data-binary",
                &data,
                &url,
            ],
        ]
        .concat(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 8, "{v}");

    // Expect: 100-continue: the node says go on before the body.
    let (out, err) = curl(
        &[
            &json[..],
            &[
                "-v",
                "-H",
                "Expect: 100-continue",
                "--data-binary",
                &data,
                &url,
            ],
        ]
        .concat(),
    );
    assert!(err.contains("HTTP/1.1 100 Continue"), "{err}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&out).is_ok(),
        "{out}"
    );

    // HTTP/1.0: answered, then the connection closes.
    let (out, err) = curl(
        &[
            &json[..],
            &["-v", "--http1.0", "--data-binary", &data, &url],
        ]
        .concat(),
    );
    assert!(err.contains("Connection: close"), "{err}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&out).is_ok(),
        "{out}"
    );

    // Streaming over HTTP/1.1 keeps the connection: chunked SSE ending in [DONE].
    let stream_body = r#"{"model":"m","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"turn off the fan"}]}"#;
    let (out, err) = curl(&[&json[..], &["-v", "-N", "-d", stream_body, &url]].concat());
    assert!(err.contains("Transfer-Encoding: chunked"), "{err}");
    assert!(
        out.contains("chat.completion.chunk") && out.trim_end().ends_with("data: [DONE]"),
        "{out}"
    );

    // Garbage gets an OpenAI-shaped 400, and the node keeps serving.
    let mut s = TcpStream::connect(&node.addr).unwrap();
    s.write_all(b"NONSENSE / HTTP/9\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"invalid_request_error\""), "{answer}");
    let (out, _) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"messages\": 3}",
        &url,
    ]);
    assert!(out.contains("\"error\""), "{out}");
    let (out, _) = curl(&[&format!("http://{}/v1/models", node.addr)]);
    assert!(out.contains("emu-small"), "{out}");

    let stats = node.stop();
    assert_eq!(stats["served"], 4, "{stats}");
}
