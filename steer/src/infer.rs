//! Inferring token features from the first segment of an HTTP request.
//!
//! Agents that follow the draft put a token-feature TLV in their packets.
//! Traffic that does not still deserves steering, so for new TCP flows on
//! configured ports the gateway may look at the flow's **first payload**
//! and, if it is an HTTP/1.1 `POST` of an OpenAI-style JSON body
//! (`/v1/chat/completions`, `/v1/completions`), guess the features that the
//! agent-side extractor (`tokenfeat`) would have put in the TLV.
//!
//! # Bounded cost
//!
//! This runs in the data plane, once per new flow, so it is deliberately
//! cheap and predictable:
//!
//! * only one segment is looked at, with no reassembly: a request whose
//!   headers do not fit in it is [`Inference::NoBody`];
//! * at most [`InferLimits::max_scan_bytes`] bytes of it are read (headers
//!   included), each byte a constant number of times (a handful of
//!   linear passes), and nothing is allocated: keyword matching uses a
//!   128-bit shift register instead of a lower-cased copy of the text.
//!
//! # What is estimated, and how
//!
//! * **Prompt tokens** come from `Content-Length`, which describes the
//!   whole body even when most of it is in later segments: the body minus
//!   [`JSON_OVERHEAD_BYTES`] of JSON framing, divided by
//!   [`BYTES_PER_TOKEN`] = 4. Four bytes per token is the usual ratio for
//!   English text under GPT-style BPE vocabularies (`cl100k_base` and
//!   relatives) and is the fallback `tokenfeat` itself uses. It
//!   overestimates somewhat for plain prose and underestimates for code or
//!   non-Latin scripts; the tests check it stays within a factor of two of
//!   the real `cl100k_base` count on the agent workload's long prompts,
//!   which is ample for a short/long steering decision.
//! * **Task type** follows `tokenfeat::classify`'s rules (immediate control,
//!   code generation, summarisation, complex reasoning, chat; first match
//!   wins, same keyword lists), applied to the last string-valued
//!   `"content"` (else `"text"`, else `"prompt"`) in the scanned bytes, JSON
//!   escapes decoded, ASCII case-insensitively. `tokenfeat` classifies the
//!   last *user* message; roles are not tracked here, so a conversation
//!   whose visible tail is an assistant turn is classified on that turn. If
//!   the message runs past the scan limit, only its visible part is
//!   classified, and it is never treated as a short control command.
//!   Non-ASCII letters count as word characters but are not lower-cased;
//!   every keyword is ASCII, so only keywords written in non-ASCII
//!   look-alikes are missed.
//! * **Output tokens**: the task's default ([`TaskType::default_output_tokens`], as `tokenfeat` uses)
//!   capped by `"max_tokens"` / `"max_completion_tokens"` when that key
//!   appears in the scanned bytes.
//! * **Urgency**: the task's default ([`TaskType::default_urgency`]), with
//!   the explicit flag clear: nobody asked for it.
//!
//! Token counts are rounded through the 12-bit wire code
//! ([`quantize_tokens`]) so the result encodes into a
//! [`classifier::TokenFeatureId`] and decodes back unchanged.

use classifier::task_keywords;
use classifier::token_feature::quantize_tokens;
use classifier::{TaskType, TokenFeatures};

/// Default for [`InferLimits::max_scan_bytes`]: enough for typical request
/// headers (300–600 bytes) plus the start of the JSON body.
pub const DEFAULT_MAX_SCAN_BYTES: usize = 2048;

/// Bytes of body per prompt token assumed by the estimate.
pub const BYTES_PER_TOKEN: usize = 4;

/// Bytes of a chat-completions body that are JSON framing rather than
/// prompt: `{"model":"…","messages":[{"role":"user","content":""}],
/// "max_tokens":N,"stream":true}` is about 100 bytes with a short model
/// name.
pub const JSON_OVERHEAD_BYTES: usize = 96;

/// Prompt tokens at or below which a command can be immediate control
/// (mirrors `tokenfeat::CONTROL_MAX_TOKENS`).
pub const CONTROL_MAX_TOKENS: u32 = 24;

/// How much work [`infer_http`] may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InferLimits {
    /// Bytes of the payload examined, headers included. Keywords, headers
    /// or `max_tokens` beyond this are not seen.
    pub max_scan_bytes: usize,
}

impl Default for InferLimits {
    fn default() -> Self {
        InferLimits {
            max_scan_bytes: DEFAULT_MAX_SCAN_BYTES,
        }
    }
}

/// Features inferred from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InferredRequest {
    /// The features (token counts already quantised to the wire code).
    pub features: TokenFeatures,
    /// Payload bytes examined (at most [`InferLimits::max_scan_bytes`]).
    pub scanned_bytes: usize,
}

/// What [`infer_http`] made of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inference {
    /// Not an HTTP/1.1 `POST` of a JSON body (another method, another
    /// protocol, a malformed request line or header, a non-JSON
    /// `Content-Type`).
    NotHttpPost,
    /// A `POST`, but no body size to estimate from: the headers do not end
    /// within the scanned bytes, there is no (valid) `Content-Length`, the
    /// body is empty, or it uses a transfer coding.
    NoBody,
    /// Features were inferred.
    Inferred(InferredRequest),
}

/// Infers token features from the first payload of a TCP flow. See the
/// module documentation. Never panics, never allocates.
pub fn infer_http(payload: &[u8], limits: &InferLimits) -> Inference {
    let scanned = payload.len().min(limits.max_scan_bytes);
    let window = payload.get(..scanned).unwrap_or(payload);
    let head = match parse_head(window) {
        Ok(h) => h,
        Err(outcome) => return outcome,
    };
    // Bytes past Content-Length would be a pipelined next request.
    let rest = window.get(head.body_start..).unwrap_or(&[]);
    let body = rest.get(..head.content_length).unwrap_or(rest);

    let estimate = head
        .content_length
        .saturating_sub(JSON_OVERHEAD_BYTES)
        .div_ceil(BYTES_PER_TOKEN)
        .max(1);
    let prompt_tokens = u32::try_from(estimate).unwrap_or(u32::MAX);

    let task = classify_body(body, prompt_tokens);
    Inference::Inferred(InferredRequest {
        features: features_of(task, prompt_tokens, max_tokens(body)),
        scanned_bytes: scanned,
    })
}

/// The prompt-token estimate of a body of `body_bytes`: the body minus
/// [`JSON_OVERHEAD_BYTES`], at [`BYTES_PER_TOKEN`], at least 1.
pub(crate) fn body_prompt_tokens(body_bytes: u64) -> u32 {
    let estimate = body_bytes
        .saturating_sub(JSON_OVERHEAD_BYTES as u64)
        .div_ceil(BYTES_PER_TOKEN as u64)
        .max(1);
    u32::try_from(estimate).unwrap_or(u32::MAX)
}

/// Features of a request of `task` and `prompt_tokens`, its output capped
/// by `max_tokens`, quantised through the wire code.
pub(crate) fn features_of(
    task: TaskType,
    prompt_tokens: u32,
    max_tokens: Option<u32>,
) -> TokenFeatures {
    let mut output_tokens = task.default_output_tokens(prompt_tokens);
    if let Some(cap) = max_tokens {
        output_tokens = output_tokens.min(cap);
    }
    TokenFeatures {
        prompt_tokens: quantize_tokens(prompt_tokens),
        output_tokens: quantize_tokens(output_tokens),
        task,
        urgency: task.default_urgency(),
        explicit_urgency: false,
        // A first payload is not the whole body: its shared prefix is
        // derived only when the body is read whole ([`crate::http`]).
        prefix: None,
    }
}

// ---------------------------------------------------------------------------
// HTTP head

struct Head {
    body_start: usize,
    content_length: usize,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Checks the request line and headers the way `tokenfeat`'s HTTP splitter
/// does, but on bytes and without requiring the whole body.
fn parse_head(window: &[u8]) -> Result<Head, Inference> {
    if !window.starts_with(b"POST ") {
        return Err(Inference::NotHttpPost);
    }
    let Some(line_end) = find(window, b"\r\n") else {
        return Err(Inference::NoBody);
    };
    let request_line = window.get(..line_end).unwrap_or(&[]);
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(_method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Inference::NotHttpPost);
    };
    if !target.starts_with(b"/") || version != b"HTTP/1.1" {
        return Err(Inference::NotHttpPost);
    }
    // The request line's own CRLF doubles as the first header's lead-in,
    // so an empty header block is found as "\r\n\r\n" at line_end.
    let Some(head_end) = find(window.get(line_end..).unwrap_or(&[]), b"\r\n\r\n") else {
        return Err(Inference::NoBody);
    };
    let head_end = line_end + head_end;
    let headers = window.get(line_end + 2..head_end).unwrap_or(&[]);
    let mut content_length = None;
    let mut chunked = false;
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Inference::NotHttpPost);
        };
        let Some((name, value)) = line.split_at_checked(colon) else {
            return Err(Inference::NotHttpPost);
        };
        let value = trim(value.get(1..).unwrap_or(&[]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let Some(n) = parse_decimal(value) else {
                return Err(Inference::NoBody);
            };
            if content_length.is_some_and(|old| old != n) {
                return Err(Inference::NoBody);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"content-type")
            && !starts_with_ignore_case(value, b"application/json")
        {
            return Err(Inference::NotHttpPost);
        }
    }
    match content_length {
        Some(n) if n > 0 && !chunked => Ok(Head {
            body_start: head_end + 4,
            content_length: n,
        }),
        _ => Err(Inference::NoBody),
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// A non-empty run of ASCII digits, or `None` (also on overflow).
fn parse_decimal(s: &[u8]) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0usize, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(usize::from(b - b'0'))
    })
}

// ---------------------------------------------------------------------------
// JSON, just enough of it

/// Where the value of the last `"key"` in `body` starts (just past the
/// colon and any whitespace). A key written inside a JSON string would have
/// its quotes escaped (`\"key\"`), so occurrences after a backslash are
/// skipped. An occurrence without a colon after it is a string value that
/// merely equals the key, and is skipped too.
fn last_value_of<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let n = key.len();
    let mut best = None;
    let mut from = 0;
    while let Some(rel) = body.get(from..).and_then(|rest| find(rest, key)) {
        let at = from + rel;
        from = at + 1;
        let escaped = at.checked_sub(1).and_then(|i| body.get(i)) == Some(&b'\\');
        if escaped {
            continue;
        }
        let rest = skip_ws(body.get(at + n..).unwrap_or(&[]));
        if let [b':', value @ ..] = rest {
            best = Some(skip_ws(value));
        }
    }
    best
}

fn skip_ws(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    s
}

/// The raw bytes of the last string-valued `"key"` (after the opening quote).
fn last_string_value<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let n = key.len();
    let mut best = None;
    let mut from = 0;
    // Re-scan so that a later non-string value (e.g. a parts array) does
    // not hide an earlier string one.
    while let Some(rel) = body.get(from..).and_then(|rest| find(rest, key)) {
        let at = from + rel;
        from = at + 1;
        let escaped = at.checked_sub(1).and_then(|i| body.get(i)) == Some(&b'\\');
        if escaped {
            continue;
        }
        if let [b':', value @ ..] = skip_ws(body.get(at + n..).unwrap_or(&[])) {
            if let [b'"', string @ ..] = skip_ws(value) {
                best = Some(string);
            }
        }
    }
    best
}

fn max_tokens(body: &[u8]) -> Option<u32> {
    let value = last_value_of(body, b"\"max_tokens\"")
        .or_else(|| last_value_of(body, b"\"max_completion_tokens\""))?;
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    // A number that runs into the end of the scanned bytes may continue in
    // bytes not scanned; "10" of "1024" would be a wrong cap.
    if digits == 0 || digits == value.len() {
        return None;
    }
    let n = parse_decimal(value.get(..digits)?)?;
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Decodes a JSON string's raw bytes, ASCII-lower-cased, stopping at the
/// closing quote or the end of the scanned bytes. `\uXXXX` escapes of
/// non-ASCII code points become 0x80, which stands for "some letter".
struct JsonText<'a> {
    raw: &'a [u8],
    closed: bool,
}

impl<'a> JsonText<'a> {
    fn new(raw: &'a [u8]) -> Self {
        JsonText { raw, closed: false }
    }
}

impl Iterator for JsonText<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (b, rest) = self.raw.split_first()?;
        self.raw = rest;
        match *b {
            b'"' => {
                self.closed = true;
                self.raw = &[];
                None
            }
            b'\\' => {
                let (e, rest) = self.raw.split_first()?;
                self.raw = rest;
                Some(match *e {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'b' | b'f' => b' ',
                    b'u' => {
                        let (hex, rest) = self.raw.split_at_checked(4)?;
                        self.raw = rest;
                        let cp = hex.iter().try_fold(0u32, |acc, &h| {
                            Some(acc * 16 + char::from(h).to_digit(16)?)
                        })?;
                        match u8::try_from(cp) {
                            Ok(c) if c.is_ascii() => c.to_ascii_lowercase(),
                            _ => 0x80,
                        }
                    }
                    other => other.to_ascii_lowercase(),
                })
            }
            other => Some(other.to_ascii_lowercase()),
        }
    }
}

// ---------------------------------------------------------------------------
// Keyword rules (tokenfeat::classify on bytes)

/// A keyword as the last `len` bytes of a shift register.
#[derive(Clone, Copy)]
struct Pat {
    value: u128,
    mask: u128,
    len: usize,
}

const fn pat(s: &str) -> Pat {
    let mut bytes = s.as_bytes();
    let mut value = 0u128;
    while let [b, rest @ ..] = bytes {
        value = (value << 8) | *b as u128;
        bytes = rest;
    }
    let len = s.len();
    let mask = if len >= 16 {
        u128::MAX
    } else {
        (1u128 << (8 * len)) - 1
    };
    Pat { value, mask, len }
}

// Evaluated at compile time only (every use is a `const`), where an
// out-of-range index would be a build error, not a run-time panic.
const fn pats<const N: usize>(list: [&str; N]) -> [Pat; N] {
    let mut out = [Pat {
        value: 0,
        mask: 0,
        len: 0,
    }; N];
    let mut i = 0;
    while i < N {
        assert!(
            list[i].len() <= 16,
            "keyword longer than the shift register"
        );
        out[i] = pat(list[i]);
        i += 1;
    }
    out
}

// The lists below are tokenfeat's, verbatim; keep them in sync (the
// cross-check test in tests/infer.rs compares classifications).
const CONTROL_VERBS: [Pat; 26] = pats(task_keywords::CONTROL_VERBS);
const CODE_PHRASES: [Pat; 10] = pats(task_keywords::CODE_PHRASES);
const CODE_WORDS: [Pat; 5] = pats(task_keywords::CODE_WORDS);
const LANGUAGES: [Pat; 17] = pats(task_keywords::LANGUAGES);
const CODE_VERBS: [Pat; 9] = pats(task_keywords::CODE_VERBS);
const SUMMARY_PHRASES: [Pat; 6] = pats(task_keywords::SUMMARY_PHRASES);
const REASONING_PHRASES: [Pat; 8] = pats(task_keywords::REASONING_PHRASES);

fn any_suffix(reg: u128, set: &[Pat]) -> bool {
    set.iter().any(|p| reg & p.mask == p.value)
}

fn is_word(reg: u128, len: usize, set: &[Pat]) -> bool {
    set.iter().any(|p| p.len == len && reg == p.value)
}

/// tokenfeat's word characters: alphanumerics and `+#;` (so `c++`, `c#`
/// and `tl;dr` survive); non-ASCII bytes stand for letters.
const fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'#' | b';') || b >= 0x80
}

/// One pass over lower-cased text, collecting what the rules ask about.
#[derive(Default, Clone, Copy)]
pub(crate) struct Scan {
    tail: u128,
    word: u128,
    word_len: usize,
    bytes: usize,
    ws_words: usize,
    prev_space: bool,
    questions: u32,
    code_phrase: bool,
    code_word: bool,
    language: bool,
    code_verb: bool,
    summary: bool,
    reasoning: bool,
}

impl Scan {
    pub(crate) fn new() -> Self {
        Scan {
            prev_space: true,
            ..Scan::default()
        }
    }

    pub(crate) fn feed(&mut self, b: u8) {
        self.bytes += 1;
        self.tail = (self.tail << 8) | u128::from(b);
        self.code_phrase |= any_suffix(self.tail, &CODE_PHRASES);
        self.summary |= any_suffix(self.tail, &SUMMARY_PHRASES);
        self.reasoning |= any_suffix(self.tail, &REASONING_PHRASES);
        if b == b'?' {
            self.questions = self.questions.saturating_add(1);
        }
        let space = b.is_ascii_whitespace();
        if self.prev_space && !space {
            self.ws_words += 1;
        }
        self.prev_space = space;
        if is_word_byte(b) {
            // Words longer than the register cannot be keywords; keep
            // counting so they never compare equal to one.
            if self.word_len < 16 {
                self.word = (self.word << 8) | u128::from(b);
            }
            self.word_len = self.word_len.saturating_add(1);
        } else {
            self.end_word();
        }
    }

    pub(crate) fn end_word(&mut self) {
        if self.word_len > 0 {
            self.code_word |= is_word(self.word, self.word_len, &CODE_WORDS);
            self.language |= is_word(self.word, self.word_len, &LANGUAGES);
            self.code_verb |= is_word(self.word, self.word_len, &CODE_VERBS);
        }
        self.word = 0;
        self.word_len = 0;
    }

    /// tokenfeat's fallback count, `max(ceil(bytes / 4), words)`.
    pub(crate) fn heuristic_tokens(&self) -> u32 {
        let t = self.bytes.div_ceil(BYTES_PER_TOKEN).max(self.ws_words);
        u32::try_from(t).unwrap_or(u32::MAX)
    }
}

/// The classified text: the message (decoded), or the raw body when no
/// message string is found.
fn classify_body(body: &[u8], body_tokens: u32) -> TaskType {
    let message = last_string_value(body, b"\"content\"")
        .or_else(|| last_string_value(body, b"\"text\""))
        .or_else(|| last_string_value(body, b"\"prompt\""));
    let mut scan = Scan::new();
    let (tokens, control) = match message {
        Some(raw) => {
            let mut text = JsonText::new(raw);
            text.by_ref().for_each(|b| scan.feed(b));
            scan.end_word();
            if text.closed {
                let tokens = scan.heuristic_tokens();
                (tokens, tokens <= CONTROL_MAX_TOKENS && is_control(raw))
            } else {
                // Cut off by the scan limit: the message is at least as
                // long as what was seen, and likely most of the body.
                (scan.heuristic_tokens().max(body_tokens), false)
            }
        }
        None => {
            body.iter().for_each(|b| scan.feed(b.to_ascii_lowercase()));
            scan.end_word();
            (body_tokens, false)
        }
    };
    task_of(&scan, tokens, control)
}

/// tokenfeat's rules, first match wins, on a finished scan of the
/// classified text of `tokens` tokens; `control` is the control rule's
/// verdict ([`is_control_text`] and at most [`CONTROL_MAX_TOKENS`]).
pub(crate) fn task_of(scan: &Scan, tokens: u32, control: bool) -> TaskType {
    if control {
        return TaskType::ImmediateControl;
    }
    if scan.code_phrase || scan.code_word || (scan.language && scan.code_verb) {
        return TaskType::CodeGeneration;
    }
    if scan.summary {
        return TaskType::Summarisation;
    }
    if scan.reasoning || scan.questions >= 3 || (tokens >= 200 && scan.questions >= 2) {
        return TaskType::ComplexReasoning;
    }
    TaskType::Chat
}

/// Longest decoded command the control rule looks at: 24 tokens of the
/// byte heuristic is at most 96 bytes.
pub(crate) const CONTROL_TEXT_MAX: usize = 128;

/// tokenfeat's control rule: after an optional wake prefix (`hey …,`,
/// `ok …,`, `okay …,`) and `please`, the first word is a command verb.
fn is_control(raw: &[u8]) -> bool {
    let mut buf = [0u8; CONTROL_TEXT_MAX];
    let mut len = 0;
    for b in JsonText::new(raw) {
        let Some(slot) = buf.get_mut(len) else {
            return false;
        };
        *slot = b;
        len += 1;
    }
    is_control_text(buf.get(..len).unwrap_or(&[]))
}

/// The control rule on decoded, lower-cased text.
pub(crate) fn is_control_text(text: &[u8]) -> bool {
    let mut text = trim_start(text);
    for wake in [&b"hey "[..], b"ok ", b"okay "] {
        if let Some(rest) = text.strip_prefix(wake) {
            if let Some(comma) = rest.iter().position(|&b| b == b',') {
                text = trim_start(rest.get(comma + 1..).unwrap_or(&[]));
            }
        }
    }
    if let Some(rest) = text.strip_prefix(b"please ") {
        text = trim_start(rest);
    }
    let start = text
        .iter()
        .position(|&b| is_word_byte(b))
        .unwrap_or(text.len());
    let word = text.get(start..).unwrap_or(&[]);
    let len = word.iter().take_while(|&&b| is_word_byte(b)).count();
    let word = word.get(..len).unwrap_or(&[]);
    if word.len() > 16 {
        return false;
    }
    let reg = word.iter().fold(0u128, |r, &b| (r << 8) | u128::from(b));
    is_word(reg, word.len(), &CONTROL_VERBS)
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b, rest @ ..] = s {
        if !b.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    s
}
