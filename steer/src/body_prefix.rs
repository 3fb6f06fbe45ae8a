//! The shared prefix of a request read whole (delayed binding), from its
//! JSON body: the second way the gateway learns a request's prefix, for
//! clients without the agent library (the official OpenAI SDK, curl).
//!
//! An agent's calls repeat their leading messages, the system prompt(s),
//! and their tool definitions byte for byte, so a hash of those bytes
//! names the prefix an inference server's cache holds. [`BodyPrefix`] is
//! fed by [`crate::http`]'s streaming JSON walk as the body's bytes
//! arrive, in pieces of any size, in fixed state, allocating nothing:
//!
//! * **What is hashed**, raw, as sent (no JSON unescaping, no whitespace
//!   or key-order normalisation: a client repeats its own serialisation):
//!   the value of the top-level `"tools"` member, from its first byte to
//!   its last (`[` to `]`, whitespace inside included), and the
//!   `"content"` value of each message of the **leading run** of
//!   `"messages"`: the messages before the first whose `"role"` is
//!   neither `system` nor `developer` (ASCII case-insensitive). A string
//!   content counts from its opening quote to its closing one, an array
//!   of parts from `[` to `]`.
//! * **The hash**: 64-bit FNV-1a. `T` = FNV-1a over the tools value's
//!   bytes (the offset basis when there is none); for each message of the
//!   leading run `c` = FNV-1a over its content's bytes, and `S` starts at
//!   the offset basis and continues FNV-1a over each `c`'s 8 bytes,
//!   little-endian, in message order; the prefix hash is FNV-1a over the
//!   16 bytes `T` then `S`, little-endian, kept as layout version 2's
//!   17 bits ([`SharedPrefix::of_hash`]). Hashing each message's content
//!   on its own lets `"content"` come before `"role"` in a message, and
//!   the two halves let `"tools"` come before or after `"messages"` (the
//!   OpenAI SDK writes it after).
//! * **Its tokens**: the hashed bytes (tools value and contents) / 4, the
//!   same 4 bytes per token as the prompt estimate, at most the prompt's
//!   tokens.
//! * **No prefix** when neither tools nor a leading system message came,
//!   or when the estimate is under [`MIN_PREFIX_TOKENS`] (one KV block:
//!   servers cache whole blocks only).

use classifier::token_feature::quantize_tokens;
use classifier::SharedPrefix;

/// Fewest estimated tokens named as a shared prefix: vLLM's and SGLang's
/// default KV block of 16 tokens, the least a server caches.
pub const MIN_PREFIX_TOKENS: u32 = 16;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline]
fn fnv(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

fn fnv_bytes(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| fnv(h, b))
}

/// Which value a capture is hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The top-level `"tools"`.
    Tools,
    /// A message's `"content"`.
    Content,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Capture {
    target: Target,
    /// The JSON depth the value opened at: a container ends when the walk
    /// is back at it.
    depth: usize,
    /// A string value (ends at its closing quote).
    string: bool,
}

/// The prefix hash being computed over one body (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPrefix {
    tools: u64,
    tools_bytes: u64,
    system: u64,
    system_bytes: u64,
    system_messages: u32,
    /// Still in the leading run of system/developer messages.
    leading: bool,
    /// The current message's content hash and bytes.
    content: u64,
    content_bytes: u64,
    capture: Option<Capture>,
}

impl Default for BodyPrefix {
    fn default() -> Self {
        BodyPrefix::new()
    }
}

impl BodyPrefix {
    /// Nothing read yet.
    pub const fn new() -> Self {
        BodyPrefix {
            tools: FNV_OFFSET,
            tools_bytes: 0,
            system: FNV_OFFSET,
            system_bytes: 0,
            system_messages: 0,
            leading: true,
            content: FNV_OFFSET,
            content_bytes: 0,
            capture: None,
        }
    }

    /// Whether a value is being hashed.
    #[inline]
    pub(crate) fn capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// A value of `target` opens with byte `b` at JSON depth `depth` (the
    /// depth before `b` is walked); `b` is hashed by [`BodyPrefix::byte`].
    pub(crate) fn open(&mut self, target: Target, depth: usize, b: u8) {
        if target == Target::Content {
            // One content per message: a repeated key restarts it.
            self.content = FNV_OFFSET;
            self.content_bytes = 0;
        }
        self.capture = Some(Capture {
            target,
            depth,
            string: b == b'"',
        });
    }

    /// Hashes byte `b` of the value being captured, then, with the walk's
    /// state after `b` (`depth`, whether it is inside a string), ends the
    /// capture if `b` closed the value. `opening` is true for the byte
    /// that opened it.
    #[inline]
    pub(crate) fn byte(&mut self, b: u8, opening: bool, depth: usize, in_string: bool) {
        let Some(c) = self.capture else {
            return;
        };
        match c.target {
            Target::Tools => {
                self.tools = fnv(self.tools, b);
                self.tools_bytes = self.tools_bytes.saturating_add(1);
            }
            Target::Content => {
                self.content = fnv(self.content, b);
                self.content_bytes = self.content_bytes.saturating_add(1);
            }
        }
        let closed = !opening
            && if c.string {
                !in_string
            } else {
                depth == c.depth
            };
        if closed {
            self.capture = None;
        }
    }

    /// A message object began.
    pub(crate) fn message_start(&mut self) {
        self.content = FNV_OFFSET;
        self.content_bytes = 0;
    }

    /// A message object ended with role `role` (lower-cased; `None` when
    /// absent or too long to be one of ours).
    pub(crate) fn message_end(&mut self, role: Option<&[u8]>) {
        if !self.leading {
            return;
        }
        if matches!(role, Some(b"system" | b"developer")) {
            self.system = fnv_bytes(self.system, &self.content.to_le_bytes());
            self.system_bytes = self.system_bytes.saturating_add(self.content_bytes);
            self.system_messages = self.system_messages.saturating_add(1);
        } else {
            self.leading = false;
        }
    }

    /// The shared prefix of a whole body whose prompt is `prompt_tokens`
    /// (see the module docs), `None` when there is none.
    pub fn prefix(&self, prompt_tokens: u32) -> Option<SharedPrefix> {
        if self.tools_bytes == 0 && self.system_messages == 0 {
            return None;
        }
        let tokens = self.tools_bytes.saturating_add(self.system_bytes) / 4;
        // Quantised through the wire's token code, as a TLV's would be:
        // the code is monotonic, so it stays at most the prompt's.
        let tokens = quantize_tokens(u32::try_from(tokens).unwrap_or(u32::MAX)).min(prompt_tokens);
        if tokens < MIN_PREFIX_TOKENS {
            return None;
        }
        let h = fnv_bytes(FNV_OFFSET, &self.tools.to_le_bytes());
        let h = fnv_bytes(h, &self.system.to_le_bytes());
        Some(SharedPrefix::of_hash(h, tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_test_vectors() {
        // The published FNV-1a 64 vectors ("" and "a").
        assert_eq!(fnv_bytes(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv_bytes(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
