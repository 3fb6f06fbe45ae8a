//! Synthetic agent prompts and the HTTP requests that carry them.
//!
//! Agents talk to an OpenAI-compatible inference endpoint:
//! `POST /v1/chat/completions` with a JSON body naming the model, the
//! messages, `max_tokens` and `stream: true`. Two populations matter to the
//! appliance because they want opposite treatment: short *control* commands
//! ("turn on the light"), where time to first token is everything, and long
//! *generation* prompts (code, reasoning, summarisation) of hundreds to
//! thousands of words, where throughput is. The text is generated from a
//! fixed word list by the seeded RNG, so it is reproducible and looks like
//! prose to anyone reading a capture.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Short smart-home / assistant commands.
pub const CONTROL_COMMANDS: &[&str] = &[
    "turn on the light",
    "turn off the kitchen lights",
    "play music",
    "pause the music",
    "set a timer for 5 minutes",
    "set a timer for 20 minutes",
    "what's the weather tomorrow",
    "lock the front door",
    "set the thermostat to 21 degrees",
    "open the garage",
    "remind me to call Alice at 6pm",
    "skip this song",
    "turn the volume down",
    "start the robot vacuum",
    "dim the bedroom lights to 30 percent",
    "what time is it in Tokyo",
    "add milk to the shopping list",
    "close the blinds",
    "call mom",
    "read my next calendar event",
];

/// What a long prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LongTask {
    /// Write code.
    CodeGeneration,
    /// Multi-step reasoning.
    Reasoning,
    /// Summarise a document pasted into the prompt.
    Summarisation,
}

/// How long code-generation prompts start.
pub const CODE_OPENERS: &[&str] = &[
    "Write a Rust function that",
    "Implement a Python class that",
    "Refactor the following Go service so that it",
    "Write a SQL query and the accompanying TypeScript handler that",
];

/// How long reasoning prompts start.
pub const REASONING_OPENERS: &[&str] = &[
    "Think step by step and explain why",
    "Reason carefully about the trade-offs when",
    "Work through the following planning problem, where",
];

/// How long summarisation prompts start.
pub const SUMMARY_OPENERS: &[&str] = &[
    "Summarise the following incident report in five bullet points:",
    "Give a one-paragraph executive summary of this design document:",
    "Extract the action items from these meeting notes:",
];

/// Vocabulary for generated prose: infrastructure and ML terms, so the
/// payloads read like what agents actually send.
pub const WORDS: &[&str] = &[
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "for",
    "with",
    "that",
    "on",
    "is",
    "are",
    "by",
    "from",
    "each",
    "every",
    "when",
    "while",
    "after",
    "before",
    "because",
    "so",
    "then",
    "which",
    "should",
    "must",
    "can",
    "will",
    "request",
    "response",
    "latency",
    "throughput",
    "cluster",
    "node",
    "switch",
    "router",
    "packet",
    "queue",
    "buffer",
    "tensor",
    "gradient",
    "model",
    "token",
    "prompt",
    "context",
    "window",
    "cache",
    "memory",
    "kernel",
    "thread",
    "process",
    "scheduler",
    "priority",
    "deadline",
    "budget",
    "service",
    "endpoint",
    "database",
    "index",
    "shard",
    "replica",
    "leader",
    "follower",
    "timeout",
    "retry",
    "backoff",
    "error",
    "failure",
    "recovery",
    "checkpoint",
    "snapshot",
    "stream",
    "batch",
    "pipeline",
    "stage",
    "worker",
    "client",
    "server",
    "connection",
    "handshake",
    "certificate",
    "policy",
    "quota",
    "tenant",
    "region",
    "zone",
    "rack",
    "link",
    "congestion",
    "marking",
    "feedback",
    "rate",
    "window",
    "flow",
    "path",
    "route",
    "hash",
    "table",
    "lookup",
    "parser",
    "header",
    "payload",
    "checksum",
    "counter",
    "metric",
    "alert",
    "dashboard",
    "trace",
    "span",
    "log",
    "event",
    "config",
    "deployment",
    "rollout",
    "canary",
    "version",
    "function",
    "method",
    "struct",
    "trait",
    "module",
    "crate",
    "test",
    "benchmark",
    "profile",
    "allocation",
    "lock",
    "atomic",
    "channel",
    "future",
    "task",
    "runtime",
    "compile",
    "optimise",
    "measure",
    "reduce",
    "increase",
    "handle",
    "validate",
    "transform",
    "aggregate",
    "forward",
    "drop",
    "retransmit",
    "balance",
    "split",
    "merge",
    "sort",
    "filter",
    "encode",
    "decode",
    "compress",
    "serialise",
    "fast",
    "slow",
    "large",
    "small",
    "critical",
    "idle",
    "busy",
    "stable",
    "noisy",
    "bursty",
    "fair",
    "strict",
    "eventual",
];

/// A short control command.
pub fn control_prompt(rng: &mut ChaCha8Rng) -> &'static str {
    CONTROL_COMMANDS
        .choose(rng)
        .copied()
        .unwrap_or("turn on the light")
}

/// A long prompt of about `words` words (at least one sentence).
pub fn long_prompt(rng: &mut ChaCha8Rng, task: LongTask, words: usize) -> String {
    long_prompt_from(rng, task, WORDS, words)
}

/// [`long_prompt`] with its filler drawn from `vocab` instead of
/// [`WORDS`] (e.g. without the words a classifier reads as code).
pub fn long_prompt_from(
    rng: &mut ChaCha8Rng,
    task: LongTask,
    vocab: &[&str],
    words: usize,
) -> String {
    let openers = match task {
        LongTask::CodeGeneration => CODE_OPENERS,
        LongTask::Reasoning => REASONING_OPENERS,
        LongTask::Summarisation => SUMMARY_OPENERS,
    };
    let mut s = String::with_capacity(words * 8);
    s.push_str(openers.choose(rng).copied().unwrap_or("Explain"));
    push_sentences(&mut s, rng, vocab, words);
    s
}

/// Appends sentences of `vocab` words (6 to 17 each, capitalised, ending
/// in a full stop or a comma) to `s` until at least `words` words were
/// added.
pub fn push_sentences(s: &mut String, rng: &mut ChaCha8Rng, vocab: &[&str], words: usize) {
    let mut count = 0;
    while count < words {
        let sentence = rng.gen_range(6..18);
        for i in 0..sentence {
            let w = vocab.choose(rng).copied().unwrap_or("the");
            s.push(' ');
            if i == 0 {
                let mut cs = w.chars();
                if let Some(c) = cs.next() {
                    s.extend(c.to_uppercase());
                    s.push_str(cs.as_str());
                }
            } else {
                s.push_str(w);
            }
        }
        s.push(if rng.gen_ratio(1, 8) { ',' } else { '.' });
        count += sentence;
    }
}

/// The JSON body of a streaming chat-completion request.
pub fn chat_body(model: &str, content: &str, max_tokens: u32) -> String {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": true,
    })
    .to_string()
}

/// The full HTTP/1.1 request carrying `body` to `host` (a `host:port`).
pub fn http_post(host: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\n\
         Host: {host}\r\n\
         User-Agent: agent-runtime/0.4\r\n\
         Content-Type: application/json\r\n\
         Accept: text/event-stream\r\n\
         Connection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An HTTP request of as close to `target` bytes as the framing allows
/// (never below the smallest valid request): a summarisation prompt whose
/// text is trimmed or extended to size. Used where flow sizes come from a
/// distribution rather than from the prompt.
pub fn sized_request(rng: &mut ChaCha8Rng, host: &str, model: &str, target: usize) -> Vec<u8> {
    let build = |text: &str| http_post(host, &chat_body(model, text, 1024));
    let base = build("").len();
    let room = target.saturating_sub(base);
    // The word list is plain ASCII without quotes or backslashes, so every
    // character of the prompt is exactly one byte of JSON and the request
    // length moves one-for-one with the text (except when Content-Length
    // gains a digit, which the loop absorbs).
    let mut text = long_prompt(rng, LongTask::Summarisation, room / 5 + 1);
    text.truncate(room);
    let mut req = build(&text);
    for _ in 0..4 {
        match req.len().cmp(&target) {
            std::cmp::Ordering::Equal => break,
            std::cmp::Ordering::Less => text.push_str(&" ".repeat(target - req.len())),
            std::cmp::Ordering::Greater if text.is_empty() => break,
            std::cmp::Ordering::Greater => {
                let cut = (req.len() - target).min(text.len());
                text.truncate(text.len() - cut);
            }
        }
        req = build(&text);
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    #[test]
    fn bodies_are_valid_openai_json() {
        let mut rng = seeded_rng(1, 9);
        let body = chat_body("llama", control_prompt(&mut rng), 64);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["messages"][0]["role"], "user");
        assert_eq!(v["stream"], true);
        assert_eq!(v["max_tokens"], 64);
        let req = String::from_utf8(http_post("10.0.100.1:8000", &body)).unwrap();
        assert!(req.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"));
        let (head, got_body) = req.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", got_body.len())));
    }

    #[test]
    fn long_prompts_have_the_requested_length() {
        let mut rng = seeded_rng(1, 9);
        for words in [300, 3000] {
            let p = long_prompt(&mut rng, LongTask::CodeGeneration, words);
            let n = p.split_whitespace().count();
            assert!(n >= words && n < words + 25, "{n} words for {words}");
        }
    }

    #[test]
    fn sized_requests_hit_the_target() {
        let mut rng = seeded_rng(3, 9);
        for target in [1000usize, 1448, 5000, 77_777] {
            let r = sized_request(&mut rng, "h:1", "m", target);
            assert_eq!(r.len(), target);
            let s = String::from_utf8(r).unwrap();
            let body = s.split_once("\r\n\r\n").unwrap().1;
            serde_json::from_str::<serde_json::Value>(body).unwrap();
        }
        // Below the minimum the request is just the minimum.
        let tiny = sized_request(&mut rng, "h:1", "m", 10);
        assert!(tiny.len() > 10 && tiny.len() < 300);
    }
}
