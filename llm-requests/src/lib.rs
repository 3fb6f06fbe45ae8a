//! # llm-requests — what AI agents send an LLM
//!
//! The requests of the agent workload, as bytes: synthetic prompts
//! ([`text`]), OpenAI chat-completion JSON bodies and the HTTP/1.1 POSTs
//! that carry them, short control commands and long generation prompts
//! sized on demand, and the token features an agent declares for each
//! ([`request_features`]). It needs no DPDK, so the pcap workloads
//! (`pktgen write --workload agent`) and the live load generator
//! (`emulator agent`) build their requests with this one implementation,
//! draw for draw from the same seeded generator ([`seeded_rng`]). The
//! shared-prefix agents ([`agents`]: personas, multi-turn sessions) are
//! defined here once for the simulator and the live agent.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod agents;
pub mod text;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokenfeat::{Hints, TaskType, TokenFeatures};

use text::{chat_body, control_prompt, http_post, long_prompt, sized_request, LongTask};

/// The generator behind every workload: ChaCha8 seeded from `seed`, on
/// `stream`. Each workload uses its own stream so that, e.g., the agent
/// traffic inside `mix` is not a copy of `agent`'s.
pub fn seeded_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

const CONTROL_MODEL: &str = "llama-3.1-8b-instruct";
const LONG_MODELS: &[&str] = &[
    "llama-3.1-70b-instruct",
    "qwen2.5-coder-32b-instruct",
    "deepseek-r1-distill-llama-70b",
];

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromptKind {
    /// A short control command.
    Control,
    /// A long generation prompt.
    Long(LongTask),
    /// A shared-prefix agent call ([`agents`]): a persona's system prompt
    /// and tools, its session's history, a new user message.
    Agent,
}

/// `max_tokens` of a control command: pktgen's agent workload draws it
/// from this range.
pub const SHORT_OUTPUT_TOKENS: std::ops::RangeInclusive<u32> = 64..=256;
/// Words of a long prompt: pktgen's agent workload draws them from this
/// range.
pub const LONG_PROMPT_WORDS: std::ops::RangeInclusive<usize> = 300..=3000;

/// A short control-command request to `host` (a `host:port` for the
/// `Host:` header), its `max_tokens` drawn from `max_tokens`.
pub fn control_request_sized(
    rng: &mut ChaCha8Rng,
    host: &str,
    max_tokens: std::ops::RangeInclusive<u32>,
) -> (PromptKind, Vec<u8>) {
    let body = chat_body(
        CONTROL_MODEL,
        control_prompt(rng),
        rng.gen_range(max_tokens),
    );
    (PromptKind::Control, http_post(host, &body))
}

/// A long generation request to `host`, at most `max_bytes` long (trimmed
/// to fit), the prompt's words drawn from `words` and, when given,
/// `max_tokens` from `max_tokens` (otherwise 1024, 2048, 3072 or 4096).
pub fn long_request_sized(
    rng: &mut ChaCha8Rng,
    host: &str,
    max_bytes: u64,
    words: std::ops::RangeInclusive<usize>,
    max_tokens: Option<std::ops::RangeInclusive<u32>>,
) -> (PromptKind, Vec<u8>) {
    let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let task = *[
        LongTask::CodeGeneration,
        LongTask::Reasoning,
        LongTask::Summarisation,
    ]
    .choose(rng)
    .unwrap_or(&LongTask::Reasoning);
    let model = LONG_MODELS.choose(rng).copied().unwrap_or(LONG_MODELS[0]);
    let words = rng.gen_range(words);
    let prompt = long_prompt(rng, task, words);
    let max_tokens = match max_tokens {
        Some(range) => rng.gen_range(range),
        None => rng.gen_range(1..=4) * 1024,
    };
    let body = chat_body(model, &prompt, max_tokens);
    let req = http_post(host, &body);
    if req.len() > max_bytes {
        (
            PromptKind::Long(task),
            sized_request(rng, host, model, max_bytes),
        )
    } else {
        (PromptKind::Long(task), req)
    }
}

/// Output tokens per response packet (the server flushes its event stream
/// every this many tokens).
pub const TOKENS_PER_PACKET: u32 = 4;

/// The task an agent declares for what it asks: none for a control
/// command (tokenfeat's rules recognise those), the generation task for a
/// long prompt. The hint is needed because the filler prose of long
/// prompts contains words such as "function" and "compile", which
/// tokenfeat's keyword rules read as code generation whatever the task.
pub fn task_hint(kind: PromptKind) -> Option<TaskType> {
    match kind {
        PromptKind::Control => None,
        PromptKind::Agent => Some(TaskType::Chat),
        PromptKind::Long(LongTask::CodeGeneration) => Some(TaskType::CodeGeneration),
        PromptKind::Long(LongTask::Reasoning) => Some(TaskType::ComplexReasoning),
        PromptKind::Long(LongTask::Summarisation) => Some(TaskType::Summarisation),
    }
}

/// The features an agent puts in the TLV for `http`:
/// [`tokenfeat::extract`] of the request's prompt text with its
/// `max_tokens` and the agent's `task` hint (see [`task_hint`]).
pub fn request_features(http: &[u8], task: Option<TaskType>) -> TokenFeatures {
    match tokenfeat::parse_openai_request(http) {
        Some(req) => tokenfeat::extract(
            &req.prompt_text,
            &Hints {
                max_tokens: req.max_tokens,
                task,
                ..Hints::default()
            },
        ),
        None => tokenfeat::extract(
            &String::from_utf8_lossy(http),
            &Hints {
                task,
                ..Hints::default()
            },
        ),
    }
}
