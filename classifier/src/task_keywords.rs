//! The keyword lists behind the task-type rules: one definition shared by
//! the agent-side extractor (`tokenfeat::classify`, on lower-cased text)
//! and the gateway's bounded HTTP inference (`steer::infer`, on bytes
//! without allocating), so the two sides classify a prompt alike.
//!
//! Every entry is lower-case ASCII of at most 16 bytes (the gateway's
//! matcher keeps the last 16 bytes in a shift register).

/// Verbs that open an immediate-control command ("turn on the light").
pub const CONTROL_VERBS: [&str; 26] = [
    "turn", "switch", "play", "pause", "stop", "resume", "skip", "set", "open", "close", "lock",
    "unlock", "dim", "brighten", "mute", "unmute", "call", "start", "increase", "decrease",
    "raise", "lower", "remind", "cancel", "next", "volume",
];

/// Phrases that mark a code-generation request.
pub const CODE_PHRASES: [&str; 10] = [
    "```",
    "write a function",
    "write a program",
    "write a class",
    "implement",
    "refactor",
    "unit test",
    "compile",
    "stack trace",
    "regex",
];

/// Words that mark code, with a code verb or language.
pub const CODE_WORDS: [&str; 5] = ["code", "script", "bug", "function", "api"];

/// Programming languages.
pub const LANGUAGES: [&str; 17] = [
    "rust",
    "python",
    "javascript",
    "typescript",
    "java",
    "c++",
    "c#",
    "golang",
    "go",
    "sql",
    "bash",
    "kotlin",
    "swift",
    "ruby",
    "php",
    "html",
    "css",
];

/// Verbs that, with a code word or language, ask for code.
pub const CODE_VERBS: [&str; 9] = [
    "write", "fix", "debug", "generate", "create", "convert", "port", "optimize", "optimise",
];

/// Phrases that ask for a summary.
pub const SUMMARY_PHRASES: [&str; 6] = [
    "summarise",
    "summarize",
    "summary",
    "tl;dr",
    "tldr",
    "key points",
];

/// Phrases that ask for step-by-step reasoning.
pub const REASONING_PHRASES: [&str; 8] = [
    "prove",
    "proof",
    "step by step",
    "step-by-step",
    "derive",
    "reason through",
    "trade-offs",
    "tradeoffs",
];
