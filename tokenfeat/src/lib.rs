//! # tokenfeat — agent-side token feature extraction
//!
//! The token-aware traffic steering draft (§4.1, §5a) has the agent or the
//! agent gateway look at a prompt, estimate its token count, recognise the
//! task type and urgency, and put the result in the packet as a 64-bit
//! token feature ID ([`classifier::token_feature`]). This crate is that
//! look: [`extract`] turns a prompt and a few [`Hints`] into
//! [`TokenFeatures`], and [`parse_openai_request`] pulls the prompt out of an
//! OpenAI-style HTTP request so a gateway can infer features for traffic
//! that arrives without a TLV.
//!
//! Everything here is a heuristic by design: the draft asks for an
//! *estimate* that is cheap enough to compute per request.
//!
//! ## Prompt tokens
//!
//! Counted with a real BPE tokenizer: `tiktoken-rs`'s `cl100k_base`
//! encoding (its ranks ship inside the crate, so this works offline). The
//! encoder is built once, on first use (tens of milliseconds), and shared.
//! If it cannot be built, the fallback heuristic is
//! `max(ceil(bytes / 4), words)` — about four bytes per token for English
//! text, never fewer tokens than whitespace-separated words.
//! [`token_counter`] says which one is in use. Chat-format framing tokens
//! (role markers, a few per message) are not counted.
//!
//! ## Task type (first rule that matches wins)
//!
//! 1. **immediate_control** — at most 24 prompt tokens, and the text, after
//!    an optional wake/politeness prefix (`hey …,`, `ok …,`, `please`),
//!    starts with a device/app command verb: `turn on/off`, `switch`,
//!    `play`, `pause`, `stop`, `resume`, `skip`, `set` (a timer, an alarm,
//!    the volume …), `open`, `close`, `lock`, `unlock`, `dim`, `brighten`,
//!    `mute`, `unmute`, `call`, `start`, `increase`, `decrease`, `raise`,
//!    `lower`, `remind me`, `cancel`, `next`, `volume`.
//! 2. **code_generation** — a code fence (```` ``` ````), or a coding phrase
//!    (`write a function`, `implement`, `refactor`, `unit test`, `compile`,
//!    `stack trace`, `regex`, `code`, `script`, `bug`), or a programming
//!    language name (`rust`, `python`, `javascript`, `typescript`, `java`,
//!    `c++`, `golang`, `sql`, `bash`, …) together with a verb such as
//!    `write`, `fix`, `debug`, `generate`, `create`.
//! 3. **summarisation** — `summarise`, `summarize`, `summary`, `tl;dr`,
//!    `tldr`, `key points`.
//! 4. **complex_reasoning** — `prove`, `proof`, `step by step`,
//!    `step-by-step`, `derive`, `reason through`, `trade-offs`, or a long
//!    multi-part question: three or more `?`, or at least 200 prompt tokens
//!    with two or more `?`.
//! 5. **chat** — everything else.
//!
//! Matching is case-insensitive on whole words (for single words) or
//! substrings (for phrases). [`Hints::task`] overrides all of this.
//!
//! ## Expected output tokens
//!
//! A per-task default — control 16, chat 256, code 512, reasoning 1024,
//! summarisation a quarter of the prompt clamped to 64..=1024 — capped by
//! `max_tokens` when the request gives one (the model cannot write more).
//!
//! ## Urgency
//!
//! [`Hints::urgency`], when set, is used and the explicit flag is set.
//! Otherwise it follows the task: immediate_control → 3 (immediate),
//! chat → 2 (interactive), code_generation, summarisation and
//! complex_reasoning → 1 (normal). 0 (background) is only ever explicit.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::OnceLock;

pub use classifier::token_feature::{
    decode, encode, SharedPrefix, TaskType, TokenFeatureId, TokenFeatures, Urgency,
};

/// Largest HTTP request (headers + body) [`parse_openai_request`] looks at.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// Prompt-token ceiling for [`TaskType::ImmediateControl`].
pub const CONTROL_MAX_TOKENS: u32 = 24;

/// What the caller knows besides the prompt text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// The request's `max_tokens`, if any.
    pub max_tokens: Option<u32>,
    /// Urgency set explicitly by the agent or user.
    pub urgency: Option<Urgency>,
    /// Task type set explicitly (skips the keyword rules).
    pub task: Option<TaskType>,
}

/// Which counter produced the prompt token count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCounter {
    /// tiktoken-rs `cl100k_base`.
    Cl100kBase,
    /// `max(ceil(bytes / 4), words)`.
    Heuristic,
}

impl TokenCounter {
    /// A stable name.
    pub const fn name(self) -> &'static str {
        match self {
            TokenCounter::Cl100kBase => "cl100k_base",
            TokenCounter::Heuristic => "heuristic",
        }
    }
}

fn bpe() -> Option<&'static tiktoken_rs::CoreBPE> {
    static BPE: OnceLock<Option<tiktoken_rs::CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref()
}

/// The counter [`count_tokens`] uses on this machine.
pub fn token_counter() -> TokenCounter {
    if bpe().is_some() {
        TokenCounter::Cl100kBase
    } else {
        TokenCounter::Heuristic
    }
}

/// The fallback estimate: `max(ceil(bytes / 4), words)`.
pub fn heuristic_tokens(text: &str) -> u32 {
    let by_bytes = text.len().div_ceil(4);
    let words = text.split_whitespace().count();
    u32::try_from(by_bytes.max(words)).unwrap_or(u32::MAX)
}

/// Prompt tokens of `text` (BPE when available, else the heuristic).
pub fn count_tokens(text: &str) -> u32 {
    match bpe() {
        Some(b) => u32::try_from(b.encode_ordinary(text).len()).unwrap_or(u32::MAX),
        None => heuristic_tokens(text),
    }
}

/// The tokens of `text` as ids: cl100k_base BPE ids when available (as
/// [`count_tokens`] counts them), else one id per [`heuristic_tokens`]
/// piece (4-byte chunks, each id a hash of its bytes), so the list is as
/// long as the heuristic count of a text without long runs of spaces.
/// The emulator's prefix cache hashes these in blocks.
pub fn token_ids(text: &str) -> Vec<u32> {
    match bpe() {
        Some(b) => b.encode_ordinary(text),
        None => text
            .as_bytes()
            .chunks(4)
            .map(|c| {
                c.iter().fold(0x811c_9dc5u32, |h, &b| {
                    (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
                })
            })
            .collect(),
    }
}

/// Lower-case words, split on anything that is not alphanumeric or one of
/// `+#;`, so `c++`, `c#` and `tl;dr` survive.
use classifier::task_keywords::{
    CODE_PHRASES, CODE_VERBS, CODE_WORDS, CONTROL_VERBS, LANGUAGES, REASONING_PHRASES,
    SUMMARY_PHRASES,
};

fn words(lower: &str) -> impl Iterator<Item = &str> {
    lower
        .split(|c: char| !(c.is_alphanumeric() || c == '+' || c == '#' || c == ';'))
        .filter(|w| !w.is_empty())
}

fn has_word(lower: &str, set: &[&str]) -> bool {
    words(lower).any(|w| set.contains(&w))
}

fn has_phrase(lower: &str, set: &[&str]) -> bool {
    set.iter().any(|p| lower.contains(p))
}

fn is_control(lower: &str, tokens: u32) -> bool {
    if tokens > CONTROL_MAX_TOKENS {
        return false;
    }
    let mut text = lower.trim_start();
    // Drop a wake prefix ("hey siri, ...", "ok google, ...") and "please".
    for wake in ["hey ", "ok ", "okay "] {
        if let Some(rest) = text.strip_prefix(wake) {
            if let Some((_, after)) = rest.split_once(',') {
                text = after.trim_start();
            }
        }
    }
    if let Some(rest) = text.strip_prefix("please ") {
        text = rest.trim_start();
    }
    words(text)
        .next()
        .is_some_and(|w| CONTROL_VERBS.contains(&w))
}

/// The task type of `prompt` by the rules in the crate documentation.
/// `tokens` is the prompt's token count (see [`count_tokens`]).
pub fn classify(prompt: &str, tokens: u32) -> TaskType {
    let lower = prompt.to_lowercase();
    if is_control(&lower, tokens) {
        return TaskType::ImmediateControl;
    }
    if has_phrase(&lower, &CODE_PHRASES)
        || has_word(&lower, &CODE_WORDS)
        || (has_word(&lower, &LANGUAGES) && has_word(&lower, &CODE_VERBS))
    {
        return TaskType::CodeGeneration;
    }
    if has_phrase(&lower, &SUMMARY_PHRASES) {
        return TaskType::Summarisation;
    }
    let questions = lower.matches('?').count();
    if has_phrase(&lower, &REASONING_PHRASES) || questions >= 3 || (tokens >= 200 && questions >= 2)
    {
        return TaskType::ComplexReasoning;
    }
    TaskType::Chat
}

/// The expected output tokens for a task (before the `max_tokens` cap):
/// [`TaskType::default_output_tokens`], shared with the gateway's
/// inference.
pub fn default_output_tokens(task: TaskType, prompt_tokens: u32) -> u32 {
    task.default_output_tokens(prompt_tokens)
}

/// The urgency inferred from the task when none is given:
/// [`TaskType::default_urgency`].
pub const fn default_urgency(task: TaskType) -> Urgency {
    task.default_urgency()
}

/// Features of `prompt`: tokens counted and task classified on the same text.
pub fn extract(prompt: &str, hints: &Hints) -> TokenFeatures {
    extract_split(prompt, prompt, hints)
}

/// Features when the text the model reads (`counted`, e.g. every message of
/// a chat request) differs from the text that says what the user wants
/// (`classified`, e.g. the last user message).
pub fn extract_split(counted: &str, classified: &str, hints: &Hints) -> TokenFeatures {
    let prompt_tokens = count_tokens(counted);
    let task = hints.task.unwrap_or_else(|| {
        let t = if core::ptr::eq(counted, classified) {
            prompt_tokens
        } else {
            count_tokens(classified)
        };
        classify(classified, t)
    });
    let mut output_tokens = default_output_tokens(task, prompt_tokens);
    if let Some(m) = hints.max_tokens {
        output_tokens = output_tokens.min(m);
    }
    let (urgency, explicit_urgency) = match hints.urgency {
        Some(u) => (u, true),
        None => (default_urgency(task), false),
    };
    TokenFeatures {
        prompt_tokens,
        output_tokens,
        task,
        urgency,
        explicit_urgency,
        prefix: None,
    }
}

/// The 64-bit FNV-1a hash of a shared prefix's text, whose low 17 bits
/// name the prefix in a version-2 feature ID (docs/wire-format.md §5.2a).
/// FNV-1a because it is tiny, has no seed an agent and a reader must
/// agree on, and spreads its low bits well enough for 17 of them.
pub fn prefix_hash(text: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    text.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The shared prefix of this text (an agent's system prompt and tool
/// definitions): its hash and its token count; `None` for empty text.
pub fn shared_prefix(text: &str) -> Option<SharedPrefix> {
    if text.is_empty() {
        return None;
    }
    Some(SharedPrefix::of_hash(prefix_hash(text), count_tokens(text)))
}

/// The features of a prompt that follows a shared prefix: tokens over
/// both (the model reads both), the task from the prompt alone, and the
/// prefix named (layout version 2) when there is one.
pub fn extract_with_prefix(prefix: &str, prompt: &str, hints: &Hints) -> TokenFeatures {
    if prefix.is_empty() {
        return extract(prompt, hints);
    }
    let counted = format!("{prefix}\n{prompt}");
    TokenFeatures {
        prefix: shared_prefix(prefix),
        ..extract_split(&counted, prompt, hints)
    }
}

/// What [`parse_openai_request`] pulls out of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    /// All prompt text the model reads: every message's text content (or the
    /// completions `prompt`), joined with newlines.
    pub prompt_text: String,
    /// The last `user` message's text (the whole prompt for completions).
    pub last_user_text: String,
    /// The shared prefix: the leading `system` and `developer` messages'
    /// text, then the `tools` array as JSON, joined with newlines (empty
    /// when there is neither). Every request of an agent repeats it, so an
    /// inference server's prefix cache holds it.
    pub prefix_text: String,
    /// `max_tokens` (or `max_completion_tokens`).
    pub max_tokens: Option<u32>,
    /// `model`.
    pub model: Option<String>,
    /// `stream` (false when absent).
    pub stream: bool,
}

impl ParsedRequest {
    /// Features for this request: tokens over the whole prompt, task from
    /// the last user message, `max_tokens` as the output cap, and the
    /// shared prefix ([`shared_prefix`] of [`ParsedRequest::prefix_text`])
    /// when there is one.
    pub fn features(&self, urgency: Option<Urgency>) -> TokenFeatures {
        let hints = Hints {
            max_tokens: self.max_tokens,
            urgency,
            task: None,
        };
        TokenFeatures {
            prefix: shared_prefix(&self.prefix_text),
            ..extract_split(&self.prompt_text, &self.last_user_text, &hints)
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits an HTTP/1.1 POST into its body, checking what matters: method,
/// version, no chunking, a JSON content type if one is given, and a
/// Content-Length that matches the bytes present.
fn http_body(req: &[u8]) -> Option<&[u8]> {
    let head_end = find(req, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&req[..head_end]).ok()?;
    let body = &req[head_end + 4..];
    let mut lines = head.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if method != "POST"
        || !target.starts_with('/')
        || version != "HTTP/1.1"
        || parts.next().is_some()
    {
        return None;
    }
    let mut content_length = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return None;
            }
            content_length = Some(value.parse::<usize>().ok()?);
        } else {
            // Chunked (or any) transfer coding, or a non-JSON body: refuse.
            let chunked = name.eq_ignore_ascii_case("transfer-encoding");
            let not_json = name.eq_ignore_ascii_case("content-type")
                && !value.to_ascii_lowercase().starts_with("application/json");
            if chunked || not_json {
                return None;
            }
        }
    }
    (content_length? == body.len()).then_some(body)
}

fn text_of(content: &serde_json::Value) -> Option<String> {
    match content {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                if p.get("type").and_then(|t| t.as_str()) == Some("text") {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    out.push_str(p.get("text")?.as_str()?);
                }
            }
            Some(out)
        }
        serde_json::Value::Null => Some(String::new()),
        _ => None,
    }
}

fn u32_field(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<Option<u32>> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => Some(None),
        Some(v) => Some(Some(u32::try_from(v.as_u64()?).ok()?)),
    }
}

/// Parses an OpenAI-style request: either a whole HTTP/1.1 POST (request
/// line, headers with `Content-Length`, blank line, JSON body) or the bare
/// JSON body. Understands chat completions (`messages`, with string or
/// text-part `content`) and completions (`prompt`, a string or an array of
/// strings). Returns `None` for anything unexpected: more than
/// [`MAX_REQUEST_LEN`] bytes, another method, chunked bodies, a length
/// mismatch, a non-JSON content type, invalid JSON, or fields of the wrong
/// type.
pub fn parse_openai_request(body: &[u8]) -> Option<ParsedRequest> {
    if body.len() > MAX_REQUEST_LEN {
        return None;
    }
    let json = if body.starts_with(b"POST ") {
        http_body(body)?
    } else {
        body
    };
    parse_openai_json(json)
}

/// Parses the JSON body of an OpenAI-style request, of any size: what an
/// agent that holds the whole body (the agent library) reads. Same rules
/// as [`parse_openai_request`] for the fields.
pub fn parse_openai_json(json: &[u8]) -> Option<ParsedRequest> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let obj = v.as_object()?;
    let mut prefix_text = String::new();
    let join = |out: &mut String, text: &str| {
        if !text.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(text);
        }
    };
    let (prompt_text, last_user_text) = if let Some(msgs) = obj.get("messages") {
        let msgs = msgs.as_array()?;
        let mut all = String::new();
        let mut last_user = None;
        let mut leading = true;
        for m in msgs {
            let role = m.get("role")?.as_str()?;
            let text = text_of(m.get("content").unwrap_or(&serde_json::Value::Null))?;
            leading &= role == "system" || role == "developer";
            if leading {
                join(&mut prefix_text, &text);
            }
            if role == "user" {
                last_user = Some(text.clone());
            }
            if !text.is_empty() {
                if !all.is_empty() {
                    all.push('\n');
                }
                all.push_str(&text);
            }
        }
        let last_user = last_user.unwrap_or_else(|| all.clone());
        (all, last_user)
    } else {
        let text = match obj.get("prompt")? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for s in a {
                    out.push(s.as_str()?);
                }
                out.join("\n")
            }
            _ => return None,
        };
        (text.clone(), text)
    };
    let max_tokens = match u32_field(obj, "max_tokens")? {
        Some(m) => Some(m),
        None => u32_field(obj, "max_completion_tokens")?,
    };
    let model = match obj.get("model") {
        None => None,
        Some(m) => Some(m.as_str()?.to_owned()),
    };
    let stream = match obj.get("stream") {
        None | Some(serde_json::Value::Null) => false,
        Some(s) => s.as_bool()?,
    };
    // The model reads the tool definitions too: they count as prompt and
    // belong to the shared prefix.
    let mut prompt_text = prompt_text;
    if let Some(tools) = obj.get("tools").filter(|t| !t.is_null()) {
        let tools = tools.to_string();
        join(&mut prefix_text, &tools);
        join(&mut prompt_text, &tools);
    }
    Some(ParsedRequest {
        prompt_text,
        last_user_text,
        prefix_text,
        max_tokens,
        model,
        stream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn task(p: &str) -> TaskType {
        extract(p, &Hints::default()).task
    }

    #[test]
    fn agent_requests_name_their_shared_prefix() {
        let body = |user: &str| {
            serde_json::json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "You are the lights agent. Be brief."},
                    {"role": "user", "content": user},
                ],
                "tools": [{"type": "function", "function": {"name": "set_light"}}],
            })
            .to_string()
        };
        let a = parse_openai_json(body("turn on the light").as_bytes()).unwrap();
        let b = parse_openai_json(body("dim the kitchen").as_bytes()).unwrap();
        assert!(a.prefix_text.starts_with("You are the lights agent."));
        assert!(a.prefix_text.contains("set_light"));
        let (fa, fb) = (a.features(None), b.features(None));
        let (pa, pb) = (fa.prefix.unwrap(), fb.prefix.unwrap());
        // The same agent: the same prefix, whatever the user asks.
        assert_eq!(pa, pb);
        assert_eq!(pa.tokens, count_tokens(&a.prefix_text));
        assert!(pa.tokens < fa.prompt_tokens);
        // On the wire: version 2, and it decodes to the same prefix.
        let id = encode(&fa);
        assert_eq!(id.version(), 2);
        assert_eq!(decode(id).unwrap().prefix, Some(pa));
        // Another system prompt is another prefix.
        let other = shared_prefix("You are the music agent.").unwrap();
        assert_ne!(other.hash, pa.hash);
        // No system message and no tools: no prefix, version 1.
        let plain = parse_openai_json(br#"{"messages":[{"role":"user","content":"hi"}]}"#)
            .unwrap()
            .features(None);
        assert_eq!(plain.prefix, None);
        assert_eq!(encode(&plain).version(), 1);
    }

    #[test]
    fn prefix_hash_is_fnv1a() {
        // FNV-1a 64 test vectors.
        assert_eq!(prefix_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(prefix_hash("a"), 0xaf63_dc4c_8601_ec8c);
        let f = extract_with_prefix("system text", "turn on the light", &Hints::default());
        assert_eq!(f.task, TaskType::ImmediateControl);
        assert_eq!(f.prefix, shared_prefix("system text"));
        assert!(f.prompt_tokens > count_tokens("turn on the light"));
    }

    #[test]
    fn bpe_tokenizer_is_used_and_counts() {
        assert_eq!(token_counter(), TokenCounter::Cl100kBase);
        assert_eq!(count_tokens("turn on the light"), 4);
        assert_eq!(count_tokens(""), 0);
        assert_eq!(heuristic_tokens("turn on the light"), 5);
        assert_eq!(heuristic_tokens("a b c"), 3);
    }

    #[test]
    fn the_drafts_examples() {
        let f = extract("turn on the light", &Hints::default());
        assert_eq!(f.task, TaskType::ImmediateControl);
        assert_eq!(f.urgency, Urgency::Immediate);
        assert!(!f.explicit_urgency);
        assert_eq!((f.prompt_tokens, f.output_tokens), (4, 16));
        assert_eq!(encode(&f).0, 0x1004_0100_c000_0000);
        assert_eq!(task("Play music"), TaskType::ImmediateControl);
        assert_eq!(
            task("Hey Siri, set a timer for 10 minutes"),
            TaskType::ImmediateControl
        );
        assert_eq!(task("please dim the lights"), TaskType::ImmediateControl);
        assert_eq!(
            task("Write a function in Rust that reverses a linked list"),
            TaskType::CodeGeneration
        );
        assert_eq!(
            task("```\nfn main() {}\n```\nwhy?"),
            TaskType::CodeGeneration
        );
        assert_eq!(task("fix this python error"), TaskType::CodeGeneration);
        assert_eq!(task("Summarize this article: ..."), TaskType::Summarisation);
        assert_eq!(task("tl;dr of the meeting notes"), TaskType::Summarisation);
        assert_eq!(
            task("Prove that there are infinitely many primes"),
            TaskType::ComplexReasoning
        );
        assert_eq!(
            task("Why is the sky blue? Why is it red at dusk? And what about Mars?"),
            TaskType::ComplexReasoning
        );
        assert_eq!(task("What is the capital of France?"), TaskType::Chat);
        assert_eq!(task("Tell me a joke about cats"), TaskType::Chat);
        // A long text starting with "set" is not a device command.
        let long = format!("set {}", "the scene of the story in old Paris ".repeat(10));
        assert_eq!(task(&long), TaskType::Chat);
    }

    #[test]
    fn wire_format_worked_example() {
        use classifier::token_feature_tlv::{emit_hbh_header, emit_ipv4_option};
        let f = extract("turn on the light", &Hints::default());
        let repr = classifier::TokenFeatureTlvRepr {
            directed: true,
            feature_id: encode(&f),
        };
        let mut h = [0u8; 16];
        emit_hbh_header(&repr, 17, &mut h).unwrap();
        assert_eq!(
            h,
            [
                0x11, 0x01, 0x01, 0x00, 0x1e, 0x0a, 0x80, 0x00, 0x10, 0x04, 0x01, 0x00, 0xc0, 0, 0,
                0
            ]
        );
        let mut o = [0u8; 12];
        emit_ipv4_option(&repr, &mut o).unwrap();
        assert_eq!(
            o,
            [0x9e, 0x0c, 0x80, 0x00, 0x10, 0x04, 0x01, 0x00, 0xc0, 0, 0, 0]
        );
    }

    #[test]
    fn hints_override() {
        let h = Hints {
            max_tokens: Some(100),
            urgency: Some(Urgency::Background),
            task: Some(TaskType::ComplexReasoning),
        };
        let f = extract("turn on the light", &h);
        assert_eq!(f.task, TaskType::ComplexReasoning);
        assert_eq!(f.output_tokens, 100);
        assert_eq!(f.urgency, Urgency::Background);
        assert!(f.explicit_urgency);
        let f = extract("hello there", &Hints::default());
        assert_eq!(
            (f.task, f.output_tokens, f.urgency),
            (TaskType::Chat, 256, Urgency::Interactive)
        );
        assert_eq!(default_output_tokens(TaskType::Summarisation, 40_000), 1024);
        assert_eq!(default_output_tokens(TaskType::Summarisation, 10), 64);
        assert_eq!(default_urgency(TaskType::CodeGeneration), Urgency::Normal);
    }

    #[test]
    fn parses_http_chat_request() {
        let body = br#"{"model":"gpt-4o-mini","stream":true,"max_tokens":50,
            "messages":[{"role":"system","content":"You are a home assistant."},
                        {"role":"user","content":[{"type":"text","text":"turn on the light"}]}]}"#;
        let mut req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        let p = parse_openai_request(&req).unwrap();
        assert_eq!(p.model.as_deref(), Some("gpt-4o-mini"));
        assert!(p.stream);
        assert_eq!(p.max_tokens, Some(50));
        assert_eq!(
            p.prompt_text,
            "You are a home assistant.\nturn on the light"
        );
        assert_eq!(p.last_user_text, "turn on the light");
        let f = p.features(None);
        assert_eq!(f.task, TaskType::ImmediateControl);
        assert_eq!(f.output_tokens, 16);
        assert!(f.prompt_tokens > 4);
        // Bare JSON and completions.
        let p = parse_openai_request(br#"{"prompt":["a","b"],"max_completion_tokens":7}"#).unwrap();
        assert_eq!(
            (p.prompt_text.as_str(), p.max_tokens, p.stream),
            ("a\nb", Some(7), false)
        );
    }

    #[test]
    fn rejects_unexpected_requests() {
        let ok = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(parse_openai_request(ok).is_some());
        let n = ok.len();
        let http = |head: &str, body: &[u8]| {
            let mut r = head
                .replace("{n}", &n.to_string())
                .replace("{n1}", &(n + 1).to_string())
                .into_bytes();
            r.extend_from_slice(body);
            parse_openai_request(&r)
        };
        assert!(http("POST /v1 HTTP/1.1\r\nContent-Length: {n}\r\n\r\n", ok).is_some());
        assert!(http("POST /v1 HTTP/1.1\r\nContent-Length: {n1}\r\n\r\n", ok).is_none());
        assert!(http("POST /v1 HTTP/1.1\r\n\r\n", ok).is_none());
        assert!(http("POST /v1 HTTP/1.0\r\nContent-Length: {n}\r\n\r\n", ok).is_none());
        assert!(http(
            "POST /v1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n",
            ok
        )
        .is_none());
        assert!(http(
            "POST /v1 HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: {n}\r\n\r\n",
            ok
        )
        .is_none());
        assert!(http("GET /v1 HTTP/1.1\r\nContent-Length: {n}\r\n\r\n", ok).is_none());
        for bad in [
            &b"not json"[..],
            br#"[1,2]"#,
            br#"{"model":"x"}"#,
            br#"{"messages":"hi"}"#,
            br#"{"messages":[{"content":"hi"}]}"#,
            br#"{"messages":[{"role":"user","content":5}]}"#,
            br#"{"prompt":"x","max_tokens":-1}"#,
            br#"{"prompt":"x","max_tokens":99999999999}"#,
            br#"{"prompt":"x","stream":"yes"}"#,
            br#"{"prompt":"x","model":3}"#,
            br#"{"prompt":[1]}"#,
        ] {
            assert!(
                parse_openai_request(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = format!(r#"{{"prompt":"{}"}}"#, "a".repeat(MAX_REQUEST_LEN));
        assert!(parse_openai_request(big.as_bytes()).is_none());
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_openai_request(&bytes);
            let mut http = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n".to_vec();
            http.extend_from_slice(&bytes);
            let _ = parse_openai_request(&http);
        }

        #[test]
        fn extract_is_total_and_encodes(s in ".{0,200}", m in proptest::option::of(any::<u32>())) {
            let f = extract(&s, &Hints { max_tokens: m, ..Hints::default() });
            prop_assert!(decode(encode(&f)).is_ok());
            if let Some(m) = m { prop_assert!(f.output_tokens <= m); }
        }
    }
}
