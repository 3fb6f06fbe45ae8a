//! A node's prefix cache, as vLLM's automatic prefix caching behaves to
//! the requests of agents: the KV of a prompt's leading tokens stays after
//! the request, and a later prompt that starts with the same tokens does
//! not prefill them again. LRU, bounded in tokens (the node's
//! `kv_tokens`, as the emulator's `--kv-tokens`), hits and queries counted
//! in tokens like `vllm:prefix_cache_hits` and `vllm:prefix_cache_queries`.
//!
//! A prompt is modelled as at most two cached parts, as a radix tree would
//! hold them: the persona's shared prefix (system prompt and tools), and
//! under it one session's history (every earlier turn's user message and
//! answer). A child is useless without its parent, so a session's history
//! hits only while its persona's prefix is cached too; each part takes its
//! own tokens and ages on its own.
//!
//! Cached KV shares no memory with the requests in service here (a
//! simplification: vLLM evicts cached blocks when running requests need
//! them).

use std::collections::{BTreeMap, HashMap};

/// Which part of a prompt an entry caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// A persona's system prompt and tools.
    Persona(u32),
    /// A session's history (under its persona's prefix).
    Session(u64),
}

/// The parts of one agent call's prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptParts {
    /// The persona.
    pub persona: u32,
    /// Its shared prefix, tokens.
    pub prefix_tokens: u32,
    /// The session.
    pub session: u64,
    /// The history before this turn, tokens (0 on a session's first turn).
    pub history_tokens: u32,
}

/// The cache.
#[derive(Debug, Clone, Default)]
pub struct PrefixCache {
    capacity_tokens: u64,
    held_tokens: u64,
    /// Part → (tokens, last use).
    parts: HashMap<Part, (u64, u64)>,
    /// Last use → part: the LRU order.
    by_use: BTreeMap<u64, Part>,
    clock: u64,
    /// Prompt tokens looked up (`vllm:prefix_cache_queries`).
    pub queried_tokens: u64,
    /// Of those, found cached (`vllm:prefix_cache_hits`).
    pub hit_tokens: u64,
}

impl PrefixCache {
    /// An empty cache of `capacity_tokens`.
    pub fn new(capacity_tokens: u64) -> PrefixCache {
        PrefixCache {
            capacity_tokens,
            ..PrefixCache::default()
        }
    }

    /// Tokens held.
    pub fn held_tokens(&self) -> u64 {
        self.held_tokens
    }

    /// A request of `prompt_tokens` starts: the tokens found cached (it
    /// prefills only the rest). Its parts are then cached (or refreshed),
    /// the session's history extended to `history_after` tokens (this
    /// turn's message and answer included), evicting the least recently
    /// used parts beyond the capacity. A prompt without parts (a plain
    /// request) is counted as queried and caches nothing.
    pub fn serve(
        &mut self,
        prompt_tokens: u32,
        parts: Option<PromptParts>,
        history_after: u32,
    ) -> u32 {
        self.queried_tokens += u64::from(prompt_tokens);
        let Some(p) = parts else {
            return 0;
        };
        let persona = Part::Persona(p.persona);
        let session = Part::Session(p.session);
        let mut hit = 0u64;
        if self.parts.contains_key(&persona) {
            hit = u64::from(p.prefix_tokens);
            if let Some(&(tokens, _)) = self.parts.get(&session) {
                hit += tokens.min(u64::from(p.history_tokens));
            }
        }
        let hit = hit.min(u64::from(prompt_tokens));
        self.hit_tokens += hit;
        self.put(persona, u64::from(p.prefix_tokens));
        self.put(session, u64::from(history_after));
        self.evict();
        hit as u32
    }

    fn put(&mut self, part: Part, tokens: u64) {
        self.clock += 1;
        if let Some((old, used)) = self.parts.insert(part, (tokens, self.clock)) {
            self.by_use.remove(&used);
            self.held_tokens -= old;
        }
        self.by_use.insert(self.clock, part);
        self.held_tokens += tokens;
    }

    fn evict(&mut self) {
        while self.held_tokens > self.capacity_tokens {
            let Some((_, part)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((tokens, _)) = self.parts.remove(&part) {
                self.held_tokens -= tokens;
            }
        }
    }

    /// Forgets everything (a restarted node), keeping the counters.
    pub fn clear(&mut self) {
        self.parts.clear();
        self.by_use.clear();
        self.held_tokens = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(persona: u32, session: u64, history: u32) -> Option<PromptParts> {
        Some(PromptParts {
            persona,
            prefix_tokens: 1000,
            session,
            history_tokens: history,
        })
    }

    #[test]
    fn a_repeated_prefix_and_its_history_skip_prefill() {
        let mut c = PrefixCache::new(10_000);
        // First turn: nothing cached.
        assert_eq!(c.serve(1100, parts(1, 7, 0), 300), 0);
        // Second turn of the same session: prefix and history (300).
        assert_eq!(c.serve(1400, parts(1, 7, 300), 500), 1300);
        // Another session of the same persona: the prefix only.
        assert_eq!(c.serve(1100, parts(1, 8, 0), 200), 1000);
        // A plain request: queried, never a hit.
        assert_eq!(c.serve(500, None, 0), 0);
        assert_eq!((c.hit_tokens, c.queried_tokens), (2300, 4100));
        assert_eq!(c.held_tokens(), 1000 + 500 + 200);
    }

    #[test]
    fn the_least_recently_used_parts_go_first_and_history_needs_its_prefix() {
        let mut c = PrefixCache::new(2500);
        c.serve(1100, parts(1, 1, 0), 100); // persona 1 + session 1: 1100
        c.serve(1100, parts(2, 2, 0), 100); // persona 2 + session 2: 2200
        c.serve(1100, parts(3, 3, 0), 100); // 3300 > 2500: persona 1, session 1 go
        assert!(c.held_tokens() <= 2500);
        assert_eq!(c.serve(1100, parts(1, 1, 100), 200), 0);
        // Persona 2 was evicted by persona 1 coming back; its session may
        // survive, but without its prefix it cannot hit.
        assert_eq!(c.serve(1200, parts(2, 2, 100), 300), 0);
    }
}
