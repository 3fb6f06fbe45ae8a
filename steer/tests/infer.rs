//! Tests for HTTP feature inference on hand-built requests, shaped like
//! the agent workload's (`chat_body` + `http_post` below). The cross-check
//! against `tokenfeat` on the workload's own prompts lives with the
//! workload, in `tests/tests/infer_workload.rs`.

use classifier::token_feature::{decode, encode, quantize_tokens};
use classifier::{TaskType, Urgency};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use steer::infer::{
    infer_http, InferLimits, Inference, InferredRequest, BYTES_PER_TOKEN, JSON_OVERHEAD_BYTES,
};

/// pktgen's `chat_body` (serde_json orders keys alphabetically). `content`
/// must already be JSON-escaped.
fn chat_body(model: &str, content: &str, max_tokens: u32) -> String {
    format!(
        r#"{{"max_tokens":{max_tokens},"messages":[{{"content":"{content}","role":"user"}}],"model":"{model}","stream":true}}"#
    )
}

/// pktgen's `http_post`.
fn http_post(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\n\
         Host: 10.0.100.1:8000\r\n\
         User-Agent: agent-runtime/0.4\r\n\
         Content-Type: application/json\r\n\
         Accept: text/event-stream\r\n\
         Connection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn inferred(payload: &[u8], limits: &InferLimits) -> InferredRequest {
    match infer_http(payload, limits) {
        Inference::Inferred(r) => r,
        other => panic!("expected Inferred, got {other:?}"),
    }
}

#[test]
fn short_control_command() {
    let req = http_post(&chat_body("llama-3.2-1b", "turn on the kitchen light", 128));
    let r = inferred(&req, &InferLimits::default());
    let f = r.features;
    assert_eq!(f.task, TaskType::ImmediateControl);
    assert_eq!(f.urgency, Urgency::Immediate);
    assert!(!f.explicit_urgency);
    assert_eq!(f.output_tokens, 16);
    assert!(f.prompt_tokens >= 1 && f.prompt_tokens <= 24, "{f:?}");
    assert_eq!(r.scanned_bytes, req.len());
    assert_eq!(decode(encode(&f)).unwrap(), f, "already quantised");
}

#[test]
fn wake_word_and_please_prefixes() {
    for text in [
        "hey jarvis, please lock the door",
        "OK Google, Play some jazz",
        "please mute",
    ] {
        let req = http_post(&chat_body("m", text, 64));
        assert_eq!(
            inferred(&req, &InferLimits::default()).features.task,
            TaskType::ImmediateControl,
            "{text}"
        );
    }
    let req = http_post(&chat_body("m", "what is the capital of France", 64));
    let f = inferred(&req, &InferLimits::default()).features;
    assert_eq!(f.task, TaskType::Chat);
    assert_eq!(f.urgency, Urgency::Interactive);
    assert_eq!(
        f.output_tokens, 64,
        "max_tokens caps the chat default of 256"
    );
}

/// A long summarisation request whose first segment holds only the headers
/// and the start of the body: the prompt estimate comes from Content-Length.
#[test]
fn long_summarisation_spanning_segments() {
    // Prose without code keywords (the workload word list has "function"
    // and "compile", which tokenfeat reads as code generation).
    let prompt = format!(
        "Summarise the following incident report in five bullet points: {}",
        "The cluster node reported high latency after the canary rollout. ".repeat(300)
    );
    let body = chat_body("llama-3.1-70b", &prompt, 4096);
    let req = http_post(&body);
    assert!(req.len() > 15_000);
    let segment = &req[..1448];
    let r = inferred(segment, &InferLimits::default());
    assert_eq!(r.scanned_bytes, 1448);
    let f = r.features;
    assert_eq!(f.task, TaskType::Summarisation);
    assert_eq!(f.urgency, Urgency::Normal);
    let estimate = (body.len() - JSON_OVERHEAD_BYTES).div_ceil(BYTES_PER_TOKEN) as u32;
    assert_eq!(f.prompt_tokens, quantize_tokens(estimate));
    assert_eq!(
        f.output_tokens,
        quantize_tokens((estimate / 4).clamp(64, 1024))
    );
}

#[test]
fn max_tokens_caps_output_and_completions_alias() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"prove that sqrt 2 is irrational"}],"max_completion_tokens":300}"#;
    let f = inferred(&http_post(body), &InferLimits::default()).features;
    assert_eq!(f.task, TaskType::ComplexReasoning);
    assert_eq!(f.output_tokens, 300);
}

#[test]
fn escaped_text_is_decoded_and_not_mistaken_for_keys() {
    // The message itself contains `"max_tokens": 5` (escaped) and a newline
    // escape right before a keyword.
    let body = r#"{"messages":[{"role":"system","content":"be terse"},{"role":"user","content":"Line one\nTL;DR this: \"max_tokens\": 5"}],"max_tokens":900}"#;
    let f = inferred(&http_post(body), &InferLimits::default()).features;
    assert_eq!(f.task, TaskType::Summarisation);
    assert_eq!(
        f.output_tokens, 64,
        "summary of a tiny prompt: the 64 floor"
    );
    // Word rules must see "code" after a \n escape, not "ncode".
    let body = r#"{"messages":[{"role":"user","content":"look at this\ncode please"}]}"#;
    let f = inferred(&http_post(body), &InferLimits::default()).features;
    assert_eq!(f.task, TaskType::CodeGeneration);
    assert_eq!(f.output_tokens, 512, "no max_tokens: task default");
}

#[test]
fn completions_prompt_and_text_parts() {
    let body = r#"{"model":"m","prompt":"write a function that adds two numbers","max_tokens":50}"#;
    let f = inferred(&http_post(body), &InferLimits::default()).features;
    assert_eq!(f.task, TaskType::CodeGeneration);
    assert_eq!(f.output_tokens, 50);
    let body =
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"give me a summary"}]}]}"#;
    let f = inferred(&http_post(body), &InferLimits::default()).features;
    assert_eq!(f.task, TaskType::Summarisation);
}

#[test]
fn not_http_post() {
    let limits = InferLimits::default();
    for req in [
        &b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"PUT /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/x HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
        b"POST v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/x HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/x HTTP/1.1\r\nno colon here\r\nContent-Length: 2\r\n\r\n{}",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"",
        b"POS",
    ] {
        assert_eq!(
            infer_http(req, &limits),
            Inference::NotHttpPost,
            "{}",
            String::from_utf8_lossy(req)
        );
    }
}

#[test]
fn no_body() {
    let limits = InferLimits::default();
    let req = http_post(&chat_body("m", "turn on the light", 64));
    let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    // Headers split across the segment end, at every possible point.
    for cut in 5..head_end + 3 {
        assert_eq!(
            infer_http(&req[..cut], &limits),
            Inference::NoBody,
            "cut {cut}"
        );
    }
    // Complete headers, no body bytes yet: still inferred from Content-Length.
    assert!(matches!(
        infer_http(&req[..head_end + 4], &limits),
        Inference::Inferred(_)
    ));
    for req in [
        &b"POST /v1/x HTTP/1.1\r\nHost: a\r\n\r\n{}"[..],
        b"POST /v1/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"POST /v1/x HTTP/1.1\r\nContent-Length: 12x\r\n\r\n{}",
        b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /v1/x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n{}",
        b"POST /v1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
    ] {
        assert_eq!(
            infer_http(req, &limits),
            Inference::NoBody,
            "{}",
            String::from_utf8_lossy(req)
        );
    }
}

#[test]
fn max_scan_bytes_is_honoured() {
    let filler = "the cluster node queue ".repeat(100);
    let body = chat_body("m", &format!("{filler} summarize it"), 2000);
    let req = http_post(&body);
    let at = req.windows(9).position(|w| w == b"summarize").unwrap();
    let short = InferLimits {
        max_scan_bytes: at + 5,
    };
    let r = inferred(&req, &short);
    assert_eq!(r.scanned_bytes, at + 5);
    assert_eq!(
        r.features.task,
        TaskType::Chat,
        "keyword past the limit is not seen"
    );
    let long = InferLimits {
        max_scan_bytes: at + 9,
    };
    assert_eq!(inferred(&req, &long).features.task, TaskType::Summarisation);
    // Headers beyond the limit: no body.
    let tiny = InferLimits { max_scan_bytes: 40 };
    assert_eq!(infer_http(&req, &tiny), Inference::NoBody);
    // A max_tokens value cut by the limit is not trusted.
    let body = r#"{"max_tokens":1024,"messages":[{"role":"user","content":"hello"}]}"#;
    let req = http_post(body);
    let at = req.windows(4).position(|w| w == b"1024").unwrap();
    let cut = InferLimits {
        max_scan_bytes: at + 2,
    };
    assert_eq!(inferred(&req, &cut).features.output_tokens, 256);
    assert_eq!(
        inferred(&req, &InferLimits::default())
            .features
            .output_tokens,
        256,
        "the chat default is below the cap"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), limit in 0usize..700) {
        let limits = InferLimits { max_scan_bytes: limit };
        let _ = infer_http(&bytes, &limits);
        let mut post = b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 500\r\n\r\n".to_vec();
        post.extend_from_slice(&bytes);
        if let Inference::Inferred(r) = infer_http(&post, &limits) {
            prop_assert!(r.scanned_bytes <= limit);
            prop_assert!(decode(encode(&r.features)).is_ok());
        }
    }

    #[test]
    fn mutated_requests_never_panic(
        seed in any::<u64>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        limit in 0usize..4096,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let prompt = format!(
            "Summarise the following incident report: {}",
            "The canary rollout raised p99 latency on two nodes. ".repeat(12)
        );
        let mut req = http_post(&chat_body("m", &prompt, 512));
        let n = req.len();
        for (at, b) in flips {
            req[at % n] = b;
        }
        let cut = rng.gen_range(0..=n);
        let limits = InferLimits { max_scan_bytes: limit };
        if let Inference::Inferred(r) = infer_http(&req[..cut], &limits) {
            prop_assert!(r.scanned_bytes <= limit.min(cut));
        }
    }
}
