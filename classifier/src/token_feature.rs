//! The 64-bit **Token feature ID** of the token-aware traffic steering draft
//! (§4.1, §5a): what an agent knows about an LLM request — how many prompt
//! tokens, how many output tokens it expects, what kind of task it is and
//! how urgent — packed into one word that a forwarding device can read with
//! a single load and a few shifts.
//!
//! The draft leaves the content of the ID open ("64-bit group ID of token
//! feature"); the layouts below are IntelliNode's, versions 1 and 2. They
//! are carried big-endian (network order) in the TLV of
//! [`crate::token_feature_tlv`].
//!
//! # Layout, version 1
//!
//! Bit 63 is the most significant bit, i.e. the first bit on the wire.
//!
//! ```text
//!  63    60 59                48 47                36 35  32 31 30 29 28                     0
//! +--------+--------------------+--------------------+------+-----+--+------------------------+
//! |version |   prompt tokens    |   output tokens    | task | urg |X |   reserved, MUST be 0  |
//! |  = 1   |   (12-bit code)    |   (12-bit code)    |      |     |  |       (29 bits)        |
//! +--------+--------------------+--------------------+------+-----+--+------------------------+
//! ```
//!
//! | bits | width | field | values |
//! |---|---|---|---|
//! | 63–60 | 4 | layout version | 1; anything else is rejected ([`FeatureError::UnknownVersion`]) |
//! | 59–48 | 12 | estimated prompt tokens | token code, below |
//! | 47–36 | 12 | expected output tokens | token code, below |
//! | 35–32 | 4 | task type | [`TaskType`]: 0 immediate control, 1 chat, 2 code generation, 3 summarisation, 4 complex reasoning; 5–15 reserved (rejected) |
//! | 31–30 | 2 | urgency | [`Urgency`]: 0 background, 1 normal, 2 interactive, 3 immediate |
//! | 29 | 1 | explicit-urgency flag (X) | 1: the agent (user/application) set the urgency; 0: inferred from the task |
//! | 28–0 | 29 | reserved | MUST be zero in version 1; nonzero is rejected ([`FeatureError::ReservedBits`]) |
//!
//! Putting the version first lets a receiver reject a layout it does not
//! know by looking at the first nibble only; the reserved bits are strict
//! (not "ignore on receipt") so that version 1 decoders never silently
//! misread a future layout that forgot to bump the version.
//!
//! # Layout, version 2: the shared prefix
//!
//! Bits 63–29 are as in version 1. Version 2 gives the 29 reserved bits to
//! the request's **shared prefix**: the leading part of the prompt that
//! other requests repeat (an agent's system prompt and tool definitions),
//! which an inference server with a prefix cache does not prefill again.
//!
//! ```text
//!  63    60 59 … 29 (as version 1)  28                    17 16                      0
//! +--------+-----------------------+------------------------+-------------------------+
//! |version |  prompt, output, task, |   prefix tokens        |    prefix hash          |
//! |  = 2   |  urgency, X            |   (12-bit token code)  |    (17 bits)            |
//! +--------+-----------------------+------------------------+-------------------------+
//! ```
//!
//! | bits | width | field | values |
//! |---|---|---|---|
//! | 28–17 | 12 | prefix tokens | token code of the shared prefix's length; at most the prompt's code |
//! | 16–0 | 17 | prefix hash | the low 17 bits of a hash of the shared prefix's text ([`SharedPrefix::of_hash`]); 0 = none |
//!
//! Both zero: the request names no prefix (a version-2 ID without one
//! decodes like version 1). Exactly one of them zero, or more prefix tokens
//! than prompt tokens, is malformed ([`FeatureError::BadPrefix`]). 17 bits
//! tell about 131,000 prefixes apart: a collision only makes the gateway
//! expect a cache hit that does not come, which its record tolerates
//! (it is approximate by design).
//!
//! # Token code (12 bits)
//!
//! A tiny floating-point format, 4-bit exponent `e` and 8-bit mantissa `m`
//! (`code = e << 8 | m`):
//!
//! * `e = 0`: value = `m` (0–255, exact);
//! * `e ≥ 1`: value = `(256 + m) << (e − 1)` (256 … 8 372 224).
//!
//! So every count up to 511 is exact, and above that a count is rounded to
//! the nearest representable value (ties up): the step in `[256·2^k, 512·2^k)`
//! is `2^k`, so the relative error is at most `2^(k−1) / (256·2^k)` = 1/512
//! ≈ **0.2 %**. One million tokens is code `0xCE8` (999 424, −0.06 %).
//! Counts above 8 372 224 saturate at code `0xFFF`. Code 0 means "unknown /
//! not estimated". The code is monotonic, so thresholds can be compared on
//! codes as well as on decoded values.

use core::fmt;

/// The layout version of an ID without a shared prefix.
pub const LAYOUT_VERSION: u8 = 1;
/// The layout version of an ID that names a shared prefix.
pub const LAYOUT_VERSION_PREFIX: u8 = 2;

/// Largest token count the 12-bit code represents (code `0xFFF`).
pub const MAX_TOKENS: u32 = 511 << 14;

const VERSION_SHIFT: u32 = 60;
const PROMPT_SHIFT: u32 = 48;
const OUTPUT_SHIFT: u32 = 36;
const TASK_SHIFT: u32 = 32;
const URGENCY_SHIFT: u32 = 30;
const EXPLICIT_BIT: u64 = 1 << 29;
const RESERVED_MASK: u64 = (1 << 29) - 1;
const CODE_MASK: u64 = 0xfff;
const PREFIX_TOKENS_SHIFT: u32 = 17;
/// Bits of the prefix hash in a version-2 ID.
pub const PREFIX_HASH_BITS: u32 = 17;
const PREFIX_HASH_MASK: u64 = (1 << PREFIX_HASH_BITS) - 1;

/// What kind of work the request asks for (draft §3, §5a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskType {
    /// Short device/app commands: "turn on the light", "play music".
    ImmediateControl = 0,
    /// Ordinary conversation.
    Chat = 1,
    /// Writing or changing code.
    CodeGeneration = 2,
    /// Summarising a document.
    Summarisation = 3,
    /// Multi-step reasoning, proofs, long multi-part questions.
    ComplexReasoning = 4,
}

impl TaskType {
    /// The output tokens to expect when the agent gave no `max_tokens`:
    /// the rules `tokenfeat` encodes and the gateway's HTTP inference
    /// assumes (one definition, so both sides agree).
    pub const fn default_output_tokens(self, prompt_tokens: u32) -> u32 {
        match self {
            TaskType::ImmediateControl => 16,
            TaskType::Chat => 256,
            TaskType::CodeGeneration => 512,
            TaskType::Summarisation => {
                let quarter = prompt_tokens / 4;
                if quarter < 64 {
                    64
                } else if quarter > 1024 {
                    1024
                } else {
                    quarter
                }
            }
            TaskType::ComplexReasoning => 1024,
        }
    }

    /// The urgency a task implies when the agent sets none.
    pub const fn default_urgency(self) -> Urgency {
        match self {
            TaskType::ImmediateControl => Urgency::Immediate,
            TaskType::Chat => Urgency::Interactive,
            TaskType::CodeGeneration | TaskType::Summarisation | TaskType::ComplexReasoning => {
                Urgency::Normal
            }
        }
    }

    /// All defined task types, in code order.
    pub const ALL: [TaskType; 5] = [
        TaskType::ImmediateControl,
        TaskType::Chat,
        TaskType::CodeGeneration,
        TaskType::Summarisation,
        TaskType::ComplexReasoning,
    ];

    /// The 4-bit wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Decodes a wire code; `None` for the reserved codes 5–15.
    pub const fn from_code(code: u8) -> Option<TaskType> {
        match code {
            0 => Some(TaskType::ImmediateControl),
            1 => Some(TaskType::Chat),
            2 => Some(TaskType::CodeGeneration),
            3 => Some(TaskType::Summarisation),
            4 => Some(TaskType::ComplexReasoning),
            _ => None,
        }
    }

    /// A stable lower-case name (`"immediate_control"`, `"chat"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            TaskType::ImmediateControl => "immediate_control",
            TaskType::Chat => "chat",
            TaskType::CodeGeneration => "code_generation",
            TaskType::Summarisation => "summarisation",
            TaskType::ComplexReasoning => "complex_reasoning",
        }
    }
}

/// How soon the answer is needed. Higher is more urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Urgency {
    /// Batch / background work.
    Background = 0,
    /// No particular hurry.
    Normal = 1,
    /// A person is waiting for a conversational answer.
    Interactive = 2,
    /// A person is waiting for an action to happen now.
    Immediate = 3,
}

impl Urgency {
    /// The 2-bit wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Decodes the low two bits of `code`.
    pub const fn from_code(code: u8) -> Urgency {
        match code & 3 {
            0 => Urgency::Background,
            1 => Urgency::Normal,
            2 => Urgency::Interactive,
            _ => Urgency::Immediate,
        }
    }

    /// A stable lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Urgency::Background => "background",
            Urgency::Normal => "normal",
            Urgency::Interactive => "interactive",
            Urgency::Immediate => "immediate",
        }
    }
}

/// The decoded features. Token counts are plain numbers here; [`encode`]
/// rounds them to the 12-bit code, so `decode(encode(f))` returns the
/// rounded counts (see [`quantize_tokens`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenFeatures {
    /// Estimated prompt tokens (0 = unknown).
    pub prompt_tokens: u32,
    /// Expected output tokens (0 = unknown).
    pub output_tokens: u32,
    /// Task type.
    pub task: TaskType,
    /// Urgency.
    pub urgency: Urgency,
    /// True when the agent set the urgency explicitly rather than it being
    /// inferred from the task type.
    pub explicit_urgency: bool,
    /// The shared prefix the request starts with, when the agent named one
    /// (layout version 2).
    pub prefix: Option<SharedPrefix>,
}

/// A request's shared prefix: which one (a short hash of its text) and how
/// many of the prompt's tokens it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedPrefix {
    /// The prefix's identity: 17 bits, never 0.
    pub hash: u32,
    /// Prompt tokens the prefix covers.
    pub tokens: u32,
}

impl SharedPrefix {
    /// The prefix whose text hashes to `hash` (any 64-bit hash; its low 17
    /// bits are kept, and 0, which means "none" on the wire, becomes 1).
    pub const fn of_hash(hash: u64, tokens: u32) -> SharedPrefix {
        let h = (hash & PREFIX_HASH_MASK) as u32;
        SharedPrefix {
            hash: if h == 0 { 1 } else { h },
            tokens,
        }
    }
}

impl TokenFeatures {
    /// Estimated total tokens (prompt + output), saturating.
    pub const fn total_tokens(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.output_tokens)
    }

    /// True when the estimated total (prompt + output) is at most
    /// `threshold` tokens. Unknown counts (0) count as 0.
    pub const fn is_short(&self, threshold: u32) -> bool {
        self.total_tokens() <= threshold
    }
}

/// Why a 64-bit word is not a valid version-1 token feature ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureError {
    /// The layout version nibble is not [`LAYOUT_VERSION`].
    UnknownVersion(u8),
    /// The task type code is one of the reserved values 5–15.
    ReservedTask(u8),
    /// Reserved bits 28–0 are not zero (the value shown is those bits).
    ReservedBits(u32),
    /// A version-2 prefix field with a hash but no tokens, tokens but no
    /// hash, or more prefix than prompt tokens (the value shown is bits
    /// 28–0).
    BadPrefix(u32),
}

impl FeatureError {
    /// A stable identifier for counters.
    pub const fn code(&self) -> &'static str {
        match self {
            FeatureError::UnknownVersion(_) => "token_feature.unknown_version",
            FeatureError::ReservedTask(_) => "token_feature.reserved_task",
            FeatureError::ReservedBits(_) => "token_feature.reserved_bits",
            FeatureError::BadPrefix(_) => "token_feature.bad_prefix",
        }
    }
}

impl fmt::Display for FeatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FeatureError::UnknownVersion(v) => {
                write!(f, "token feature ID layout version {v} is not supported")
            }
            FeatureError::ReservedTask(t) => {
                write!(f, "token feature ID task type {t} is reserved")
            }
            FeatureError::ReservedBits(b) => write!(
                f,
                "token feature ID reserved bits are 0x{b:08x}, must be zero"
            ),
            FeatureError::BadPrefix(b) => write!(
                f,
                "token feature ID prefix field 0x{b:08x} names a hash without tokens, \
                 tokens without a hash, or more tokens than the prompt"
            ),
        }
    }
}

impl std::error::Error for FeatureError {}

/// The 64-bit token feature ID, as carried on the wire (big-endian).
///
/// The accessors read fields without validating the whole word; use
/// [`decode`] (or [`TokenFeatureId::validate`]) first when the word came
/// from the network.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TokenFeatureId(pub u64);

impl TokenFeatureId {
    /// The layout version nibble.
    pub const fn version(self) -> u8 {
        (self.0 >> VERSION_SHIFT) as u8
    }

    /// The 12-bit prompt token code.
    pub const fn prompt_code(self) -> u16 {
        ((self.0 >> PROMPT_SHIFT) & CODE_MASK) as u16
    }

    /// The 12-bit output token code.
    pub const fn output_code(self) -> u16 {
        ((self.0 >> OUTPUT_SHIFT) & CODE_MASK) as u16
    }

    /// Estimated prompt tokens (decoded code; 0 = unknown).
    pub const fn prompt_tokens(self) -> u32 {
        tokens_from_code(self.prompt_code())
    }

    /// Expected output tokens (decoded code; 0 = unknown).
    pub const fn output_tokens(self) -> u32 {
        tokens_from_code(self.output_code())
    }

    /// The task type, or `None` for a reserved code.
    pub const fn task(self) -> Option<TaskType> {
        TaskType::from_code(((self.0 >> TASK_SHIFT) & 0xf) as u8)
    }

    /// The urgency.
    pub const fn urgency(self) -> Urgency {
        Urgency::from_code((self.0 >> URGENCY_SHIFT) as u8)
    }

    /// Whether the agent set the urgency explicitly.
    pub const fn explicit_urgency(self) -> bool {
        self.0 & EXPLICIT_BIT != 0
    }

    /// The reserved bits 28–0.
    pub const fn reserved(self) -> u32 {
        (self.0 & RESERVED_MASK) as u32
    }

    /// The 12-bit prefix token code (version 2; bits 28–17).
    pub const fn prefix_code(self) -> u16 {
        ((self.0 >> PREFIX_TOKENS_SHIFT) & CODE_MASK) as u16
    }

    /// The 17-bit prefix hash (version 2; bits 16–0).
    pub const fn prefix_hash(self) -> u32 {
        (self.0 & PREFIX_HASH_MASK) as u32
    }

    /// The shared prefix of a valid version-2 ID, if it names one.
    pub const fn prefix(self) -> Option<SharedPrefix> {
        if self.version() != LAYOUT_VERSION_PREFIX || self.prefix_hash() == 0 {
            return None;
        }
        Some(SharedPrefix {
            hash: self.prefix_hash(),
            tokens: tokens_from_code(self.prefix_code()),
        })
    }

    /// True when prompt + output tokens are at most `threshold`.
    pub const fn is_short(self, threshold: u32) -> bool {
        self.prompt_tokens().saturating_add(self.output_tokens()) <= threshold
    }

    /// Checks version, task code, and the reserved bits (version 1) or the
    /// prefix field (version 2).
    pub const fn validate(self) -> Result<(), FeatureError> {
        let version = self.version();
        if version != LAYOUT_VERSION && version != LAYOUT_VERSION_PREFIX {
            return Err(FeatureError::UnknownVersion(version));
        }
        let task = ((self.0 >> TASK_SHIFT) & 0xf) as u8;
        if TaskType::from_code(task).is_none() {
            return Err(FeatureError::ReservedTask(task));
        }
        if version == LAYOUT_VERSION {
            if self.reserved() != 0 {
                return Err(FeatureError::ReservedBits(self.reserved()));
            }
            return Ok(());
        }
        let (code, hash) = (self.prefix_code(), self.prefix_hash());
        // Codes are monotonic, so comparing them compares the counts.
        if (code == 0) != (hash == 0) || code > self.prompt_code() {
            return Err(FeatureError::BadPrefix(self.reserved()));
        }
        Ok(())
    }

    /// Network-order bytes.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// From network-order bytes.
    pub const fn from_bytes(b: [u8; 8]) -> TokenFeatureId {
        TokenFeatureId(u64::from_be_bytes(b))
    }
}

impl fmt::Debug for TokenFeatureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenFeatureId({:#018x})", self.0)
    }
}

impl fmt::LowerHex for TokenFeatureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Encodes a token count as its 12-bit code (round to nearest, ties up,
/// saturating at `0xFFF`).
pub const fn tokens_to_code(tokens: u32) -> u16 {
    if tokens < 512 {
        // e = 0 covers 0..=255, e = 1 covers 256..=511 with step 1: exact.
        if tokens < 256 {
            return tokens as u16;
        }
        return (1 << 8) | (tokens - 256) as u16;
    }
    // tokens >= 512: the leading one is at bit `top` >= 9, so the exponent
    // k = top - 8 keeps 9 significant bits (the leading one + 8 mantissa).
    let top = 31 - tokens.leading_zeros();
    let k = top - 8;
    let half = 1u64 << (k - 1);
    let rounded = ((tokens as u64 + half) >> k) as u32; // 256..=512
    let (k, mant) = if rounded == 512 {
        (k + 1, 256)
    } else {
        (k, rounded)
    };
    let e = k + 1;
    if e > 15 {
        return 0xfff;
    }
    ((e << 8) | (mant - 256)) as u16
}

/// Decodes a 12-bit token code (only the low 12 bits of `code` are used).
pub const fn tokens_from_code(code: u16) -> u32 {
    let code = code & 0xfff;
    let e = (code >> 8) as u32;
    let m = (code & 0xff) as u32;
    if e == 0 {
        m
    } else {
        (256 + m) << (e - 1)
    }
}

/// The count `tokens` becomes after a trip through the 12-bit code.
pub const fn quantize_tokens(tokens: u32) -> u32 {
    tokens_from_code(tokens_to_code(tokens))
}

/// Packs `f` into an ID: version 1 without a shared prefix (reserved bits
/// zero), version 2 with one. Token counts are rounded
/// ([`tokens_to_code`]); a prefix longer than the prompt is cut to the
/// prompt, and a prefix of no tokens is left out, so the ID always decodes.
pub const fn encode(f: &TokenFeatures) -> TokenFeatureId {
    let prompt = tokens_to_code(f.prompt_tokens);
    let prefix_bits = match f.prefix {
        Some(p) => {
            let code = tokens_to_code(p.tokens);
            let code = if code > prompt { prompt } else { code };
            let hash = (p.hash as u64) & PREFIX_HASH_MASK;
            if code == 0 || hash == 0 {
                0
            } else {
                ((code as u64) << PREFIX_TOKENS_SHIFT) | hash
            }
        }
        None => 0,
    };
    let version = if prefix_bits == 0 {
        LAYOUT_VERSION
    } else {
        LAYOUT_VERSION_PREFIX
    };
    TokenFeatureId(
        ((version as u64) << VERSION_SHIFT)
            | prefix_bits
            | ((prompt as u64) << PROMPT_SHIFT)
            | ((tokens_to_code(f.output_tokens) as u64) << OUTPUT_SHIFT)
            | ((f.task.code() as u64) << TASK_SHIFT)
            | ((f.urgency.code() as u64) << URGENCY_SHIFT)
            | if f.explicit_urgency { EXPLICIT_BIT } else { 0 },
    )
}

/// Unpacks and validates an ID: unknown layout version, reserved task code,
/// nonzero reserved bits (version 1) or an inconsistent prefix field
/// (version 2) are errors.
pub const fn decode(id: TokenFeatureId) -> Result<TokenFeatures, FeatureError> {
    if let Err(e) = id.validate() {
        return Err(e);
    }
    let Some(task) = id.task() else {
        // validate() already rejected reserved task codes.
        return Err(FeatureError::ReservedTask(0xf));
    };
    Ok(TokenFeatures {
        prompt_tokens: id.prompt_tokens(),
        output_tokens: id.output_tokens(),
        task,
        urgency: id.urgency(),
        explicit_urgency: id.explicit_urgency(),
        prefix: id.prefix(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn light() -> TokenFeatures {
        TokenFeatures {
            prompt_tokens: 5,
            output_tokens: 16,
            task: TaskType::ImmediateControl,
            urgency: Urgency::Immediate,
            explicit_urgency: false,
            prefix: None,
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let id = encode(&light());
        // version 1 | prompt 0x005 | output 0x010 | task 0 | urg 3, X 0 | 0
        assert_eq!(id.0, 0x1005_0100_c000_0000);
        assert_eq!(id.to_bytes(), [0x10, 0x05, 0x01, 0x00, 0xc0, 0, 0, 0]);
        let mut f = light();
        f.explicit_urgency = true;
        f.task = TaskType::ComplexReasoning;
        f.urgency = Urgency::Normal;
        assert_eq!(encode(&f).0, 0x1005_0104_6000_0000);
        assert_eq!(decode(id), Ok(light()));
        assert!(id.is_short(32));
        assert!(!id.is_short(20));
    }

    #[test]
    fn token_code_examples() {
        for t in 0..512 {
            assert_eq!(quantize_tokens(t), t, "exact below 512");
        }
        assert_eq!(tokens_to_code(512), 0x200);
        assert_eq!(tokens_from_code(0x200), 512);
        assert_eq!(quantize_tokens(513), 514); // tie rounds up
        assert_eq!(tokens_to_code(1_000_000), 0xce8);
        assert_eq!(tokens_from_code(0xce8), 999_424);
        assert_eq!(tokens_from_code(0xfff), MAX_TOKENS);
        assert_eq!(tokens_to_code(MAX_TOKENS), 0xfff);
        assert_eq!(tokens_to_code(u32::MAX), 0xfff);
        // Rounding up across a power of two bumps the exponent.
        assert_eq!(tokens_to_code(1023), 0x300);
        assert_eq!(tokens_from_code(0x300), 1024);
    }

    #[test]
    fn rejects_bad_words() {
        let id = encode(&light());
        let v3 = TokenFeatureId((id.0 & !(0xf << 60)) | (3 << 60));
        assert_eq!(decode(v3), Err(FeatureError::UnknownVersion(3)));
        assert_eq!(
            decode(TokenFeatureId(0)),
            Err(FeatureError::UnknownVersion(0))
        );
        let task5 = TokenFeatureId(id.0 | (5 << 32));
        assert_eq!(decode(task5), Err(FeatureError::ReservedTask(5)));
        let res = TokenFeatureId(id.0 | 1);
        assert_eq!(decode(res), Err(FeatureError::ReservedBits(1)));
        assert_eq!(
            FeatureError::ReservedBits(1).code(),
            "token_feature.reserved_bits"
        );
    }

    #[test]
    fn version_2_carries_the_shared_prefix() {
        let mut f = light();
        f.prompt_tokens = 3000;
        f.prefix = Some(SharedPrefix::of_hash(0x1_2345_6789, 2048));
        let id = encode(&f);
        assert_eq!(id.version(), 2);
        // Prefix tokens 2048 = code 0x400 at bits 28–17, hash 0x6789 | bit 16
        // (0x1_6789) at bits 16–0.
        assert_eq!(id.0 & ((1 << 29) - 1), (0x400 << 17) | 0x1_6789);
        let d = decode(id).unwrap();
        assert_eq!(
            d.prefix,
            Some(SharedPrefix {
                hash: 0x1_6789,
                tokens: 2048
            })
        );
        assert_eq!(d.prompt_tokens, quantize_tokens(3000));
        // A version-2 word without a prefix decodes like version 1.
        let bare = TokenFeatureId((encode(&light()).0 & !(0xf << 60)) | (2 << 60));
        assert_eq!(decode(bare), Ok(light()));
        // Without a prefix the encoder still writes version 1.
        assert_eq!(encode(&light()).version(), 1);
        // A hash whose low bits are 0 still names a prefix.
        assert_eq!(SharedPrefix::of_hash(1 << 17, 5).hash, 1);
    }

    #[test]
    fn version_2_worked_example_of_the_wire_format() {
        // docs/wire-format.md §5.2a.
        let f = TokenFeatures {
            prompt_tokens: 3000,
            output_tokens: 256,
            task: TaskType::Chat,
            urgency: Urgency::Interactive,
            explicit_urgency: false,
            prefix: Some(SharedPrefix::of_hash(0x1_6789, 2048)),
        };
        let id = encode(&f);
        assert_eq!(id.0, 0x2477_1001_8801_6789);
        assert_eq!(
            id.to_bytes(),
            [0x24, 0x77, 0x10, 0x01, 0x88, 0x01, 0x67, 0x89]
        );
        assert_eq!(decode(id), Ok(f));
    }

    #[test]
    fn malformed_version_2_prefixes_are_rejected() {
        let mut f = light();
        f.prompt_tokens = 100;
        f.prefix = Some(SharedPrefix::of_hash(7, 60));
        let id = encode(&f);
        assert!(decode(id).is_ok());
        // A hash without tokens.
        let no_tokens = TokenFeatureId(id.0 & !(0xfff << 17));
        assert_eq!(decode(no_tokens), Err(FeatureError::BadPrefix(7)));
        // Tokens without a hash.
        let no_hash = TokenFeatureId(id.0 & !0x1ffff);
        assert!(matches!(decode(no_hash), Err(FeatureError::BadPrefix(_))));
        // More prefix than prompt.
        let longer = TokenFeatureId((id.0 & !(0xfff << 17)) | (101 << 17));
        assert!(matches!(decode(longer), Err(FeatureError::BadPrefix(_))));
        assert_eq!(
            FeatureError::BadPrefix(0).code(),
            "token_feature.bad_prefix"
        );
        // The encoder never writes one: it cuts the prefix to the prompt.
        f.prefix = Some(SharedPrefix::of_hash(7, 5000));
        assert_eq!(decode(encode(&f)).unwrap().prefix.unwrap().tokens, 100);
        // Version 1 with the same low bits is "reserved bits", as before.
        let v1 = TokenFeatureId((id.0 & !(0xf << 60)) | (1 << 60));
        assert!(matches!(decode(v1), Err(FeatureError::ReservedBits(_))));
    }

    proptest! {
        #[test]
        fn code_is_monotonic_and_within_bound(t in 0u32..=MAX_TOKENS) {
            let q = quantize_tokens(t);
            let err = (q as i64 - t as i64).unsigned_abs();
            // |q - t| <= t / 512 (0.2 %), exact below 512.
            prop_assert!(err * 512 <= t as u64, "t={t} q={q}");
            prop_assert!(tokens_to_code(t) <= tokens_to_code(t.saturating_add(1)));
        }

        #[test]
        fn encode_decode_roundtrip(p in any::<u32>(), o in any::<u32>(), t in 0usize..5,
                                   u in 0u8..4, x in any::<bool>()) {
            let f = TokenFeatures {
                prompt_tokens: p, output_tokens: o, task: TaskType::ALL[t],
                urgency: Urgency::from_code(u), explicit_urgency: x, prefix: None,
            };
            let d = decode(encode(&f)).unwrap();
            prop_assert_eq!(d.prompt_tokens, quantize_tokens(p));
            prop_assert_eq!(d.output_tokens, quantize_tokens(o));
            prop_assert_eq!((d.task, d.urgency, d.explicit_urgency), (f.task, f.urgency, x));
            prop_assert_eq!(encode(&d), encode(&f));
        }

        #[test]
        fn decode_any_word_is_total(w in any::<u64>()) {
            let id = TokenFeatureId(w);
            if let Ok(f) = decode(id) {
                prop_assert_eq!(encode(&f), id);
            }
        }
    }
}
