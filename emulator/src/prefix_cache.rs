//! The emulated node's prefix cache, counted as vLLM counts it (sans-IO).
//!
//! vLLM's automatic prefix caching keeps the KV cache of full blocks of
//! 16 prompt tokens, each identified by a hash chained over the blocks
//! before it: block *i*'s hash covers its tokens and block *i − 1*'s hash,
//! so a block is found only when the whole prompt up to it is the same.
//! Agents repeat their system prompt, tool definitions and earlier turns
//! at the start of every request, so those leading messages hit; the new
//! user turn at the end does not.
//!
//! Here, as there:
//! * a request's prompt is its token ids ([`tokenfeat::token_ids`] of its
//!   `tools` JSON, then its messages' text in order), cut into
//!   [`BLOCK_TOKENS`]-token
//!   blocks; only full blocks are hashed (FNV-1a 64 over the parent hash
//!   and the block's ids, little-endian);
//! * a hit is the longest run of leading blocks all cached, at most
//!   `prompt − 1` tokens (the last token is always computed, as vLLM needs
//!   one to sample from), rounded down to whole blocks;
//! * `queries` grows by the prompt's tokens and `hits` by the hit tokens,
//!   as `vllm:prefix_cache_queries` and `vllm:prefix_cache_hits` do;
//! * after the lookup every full block of the prompt is cached, and the
//!   least recently used blocks are evicted beyond `--kv-tokens` /
//!   [`BLOCK_TOKENS`] blocks. Within one request the tail is older than
//!   the head (vLLM frees a request's blocks tail first), so eviction
//!   shortens a cached prefix from its end, never leaving a head-less
//!   chain.
//!
//! Unlike vLLM the cache does not compete with running requests for
//! blocks: the KV use of running requests is counted on its own
//! (`vllm:kv_cache_usage_perc`), and the cache is bounded by the whole
//! capacity.

use std::collections::{BTreeMap, HashMap};

/// Tokens per block, vLLM's default `--block-size`.
pub const BLOCK_TOKENS: usize = 16;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The chained hashes of the full blocks of `tokens`.
pub fn block_hashes(tokens: &[u32]) -> Vec<u64> {
    let mut parent = FNV_OFFSET;
    tokens
        .chunks_exact(BLOCK_TOKENS)
        .map(|block| {
            let mut h = FNV_OFFSET;
            for b in parent
                .to_le_bytes()
                .into_iter()
                .chain(block.iter().flat_map(|t| t.to_le_bytes()))
            {
                h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
            parent = h;
            h
        })
        .collect()
}

/// An LRU set of block hashes bounded in blocks, with vLLM's counters.
#[derive(Debug)]
pub struct PrefixCache {
    capacity_blocks: usize,
    /// Block hash → its last use.
    last_use: HashMap<u64, u64>,
    /// Last use → block hash, oldest first.
    by_age: BTreeMap<u64, u64>,
    clock: u64,
    /// Prompt tokens looked up (`vllm:prefix_cache_queries`).
    pub queries: u64,
    /// Prompt tokens found cached (`vllm:prefix_cache_hits`).
    pub hits: u64,
}

impl PrefixCache {
    /// A cache of `kv_tokens` tokens, i.e. `kv_tokens / BLOCK_TOKENS`
    /// blocks.
    pub fn new(kv_tokens: u64) -> PrefixCache {
        PrefixCache {
            capacity_blocks: usize::try_from(kv_tokens / BLOCK_TOKENS as u64).unwrap_or(usize::MAX),
            last_use: HashMap::new(),
            by_age: BTreeMap::new(),
            clock: 0,
            queries: 0,
            hits: 0,
        }
    }

    /// Blocks the cache holds at most.
    pub fn capacity_blocks(&self) -> usize {
        self.capacity_blocks
    }

    /// Blocks cached now.
    pub fn cached_blocks(&self) -> usize {
        self.last_use.len()
    }

    /// Looks `tokens` up, counts the query and the hit, caches its full
    /// blocks, and returns the prompt tokens found cached (prefill skips
    /// them).
    pub fn admit(&mut self, tokens: &[u32]) -> u64 {
        let hashes = block_hashes(tokens);
        let max_hit_blocks = tokens.len().saturating_sub(1) / BLOCK_TOKENS;
        let hit_blocks = hashes
            .iter()
            .take(max_hit_blocks)
            .take_while(|h| self.last_use.contains_key(h))
            .count();
        let hit = (hit_blocks * BLOCK_TOKENS) as u64;
        self.queries += tokens.len() as u64;
        self.hits += hit;
        // Tail first, so the head is the most recently used.
        for h in hashes.iter().rev() {
            self.clock += 1;
            if let Some(old) = self.last_use.insert(*h, self.clock) {
                self.by_age.remove(&old);
            }
            self.by_age.insert(self.clock, *h);
        }
        while self.last_use.len() > self.capacity_blocks {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.last_use.remove(&oldest);
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(prefix: u32, prefix_len: usize, turn: u32, turn_len: usize) -> Vec<u32> {
        (0..prefix_len as u32)
            .map(|i| prefix * 100_000 + i)
            .chain((0..turn_len as u32).map(|i| turn * 100_000 + 50_000 + i))
            .collect()
    }

    #[test]
    fn a_shared_leading_prefix_hits_in_whole_blocks_and_counts_tokens() {
        let mut c = PrefixCache::new(1 << 20);
        // 100 system-prompt tokens (6 full blocks) + a 10-token turn.
        assert_eq!(c.admit(&prompt(1, 100, 1, 10)), 0);
        assert_eq!((c.queries, c.hits), (110, 0));
        // Same system prompt, another turn: the 6 blocks wholly inside the
        // shared 100 tokens hit; block 7 mixes in the new turn.
        assert_eq!(c.admit(&prompt(1, 100, 2, 30)), 96);
        assert_eq!((c.queries, c.hits), (240, 96));
        // Another persona shares nothing.
        assert_eq!(c.admit(&prompt(2, 100, 1, 10)), 0);
        // The chain: the same block content after a different prefix is a
        // different block.
        let a = block_hashes(&prompt(1, 32, 0, 0));
        let b = block_hashes(
            &prompt(2, 16, 0, 0)
                .into_iter()
                .chain(prompt(1, 32, 0, 0)[16..].iter().copied())
                .collect::<Vec<_>>(),
        );
        assert_ne!(a[1], b[1]);
    }

    #[test]
    fn the_last_token_is_always_computed() {
        let mut c = PrefixCache::new(1 << 20);
        let p = prompt(3, 32, 0, 0);
        c.admit(&p);
        // An identical 32-token prompt hits one block, not two.
        assert_eq!(c.admit(&p), 16);
    }

    #[test]
    fn lru_bounded_in_tokens_evicts_the_oldest_tails_first() {
        // Room for 8 blocks (128 tokens).
        let mut c = PrefixCache::new(128);
        assert_eq!(c.capacity_blocks(), 8);
        c.admit(&prompt(1, 64, 0, 1)); // 4 blocks
        c.admit(&prompt(2, 64, 0, 1)); // 4 blocks: full
        c.admit(&prompt(3, 32, 0, 1)); // 2 blocks: evicts prompt 1's tail
        assert_eq!(c.cached_blocks(), 8);
        // Prompt 1 keeps its head: 2 leading blocks hit.
        assert_eq!(c.admit(&prompt(1, 64, 0, 1)), 32);
        assert!(c.cached_blocks() <= 8);
    }
}
