//! Prefix-cache affinity: which shared prefixes each instance has recently
//! served, so a decision can expect the prefill a cached prefix skips.
//!
//! Inference servers (vLLM's automatic prefix caching, SGLang's radix
//! cache) keep the KV blocks of recent prompts and do not prefill a prompt's
//! cached leading tokens again. An agent repeats its system prompt and tool
//! definitions on every call: its requests share a prefix of thousands of
//! tokens, and where one lands decides whether those tokens are prefilled
//! again. The gateway cannot see the servers' caches; like the SGLang
//! router's approximate radix tree and llm-d's approximate prefix scorer,
//! it remembers where it sent each prefix and assumes the server still
//! holds it for a while.
//!
//! [`PrefixRecord`] is that memory: one [`flowtab::Table`] keyed by
//! (instance, prefix hash) under the engine's seed, so a sender cannot aim
//! collisions at it, of fixed capacity, allocated at start. An entry is the
//! prefix's token count and, in the table, when it was last sent there.
//!
//! * **Ageing.** An entry older than `ttl` counts as gone (the server will
//!   have evicted it under other traffic), and [`PrefixRecord::expire`]
//!   removes such entries a bounded number at a time. A full record
//!   records nothing new until ageing frees room; it counts what it could
//!   not record ([`PrefixRecord::unrecorded`]), and that is never an
//!   error: the request is steered as if its prefix were new.
//! * **Expectation.** [`PrefixRecord::expected_cached_tokens`] is the
//!   prefix's tokens, if recorded and fresh on that instance, times the
//!   instance's hit-ratio scale.
//! * **Correction.** Where a collector scrapes `vllm:prefix_cache_hits`
//!   and `vllm:prefix_cache_queries` (token counters), the record learns how
//!   far its expectation was true: [`PrefixRecord::correct`] gathers the
//!   increments until the record expected at least
//!   [`MIN_CORRECTION_EXPECTED_TOKENS`] hit tokens in the window, then
//!   moves the instance's scale halfway to observed hits over expected
//!   hits for the same queried tokens (at most 1). A server that evicts
//!   more than the TTL assumes, or a prefix hash that collides, is
//!   corrected within a few windows. The window and the smoothing are
//!   there because one scrape covers a handful of requests: a single
//!   eviction would otherwise zero the scale, withdraw the instance's
//!   affinity, spread its prefixes, and cause the evictions it feared.
//!
//! Nothing here allocates or panics after [`PrefixRecord::new`].

use classifier::SharedPrefix;
use flowtab::{hash_words, Table, TableKey};

/// Bounds of the prefix record ([`PrefixRecord`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefixLimits {
    /// (instance, prefix) pairs held, over all instances.
    pub capacity: usize,
    /// A prefix not sent to an instance for this long is assumed evicted
    /// there, ns.
    pub ttl_ns: u64,
    /// Bounded load: a candidate whose queue is longer than the shortest
    /// live queue of the service by more than this many requests gets no
    /// affinity (its expected skip is ignored), so one hot prefix cannot
    /// pile onto one node (the SGLang router's balance threshold, in
    /// queued requests).
    pub balance_queue: f64,
}

impl Default for PrefixLimits {
    fn default() -> Self {
        PrefixLimits {
            capacity: 4096,
            ttl_ns: 60_000_000_000,
            balance_queue: 8.0,
        }
    }
}

/// An (instance, prefix hash) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PrefixKey {
    instance: u8,
    hash: u32,
}

impl TableKey for PrefixKey {
    fn hash(&self, seed: u64) -> u32 {
        hash_words(
            seed,
            [u64::from(self.instance) << 32 | u64::from(self.hash)],
        )
    }
}

/// Hit tokens the record must have expected in a correction window before
/// the window's observed ratio moves the scale: a few agent calls' worth
/// of shared prefix, so one request's eviction is not a verdict.
pub const MIN_CORRECTION_EXPECTED_TOKENS: f64 = 16_384.0;

/// What the record knows of one instance's prefix cache as a whole.
#[derive(Debug, Clone, Copy, PartialEq)]
struct InstanceCache {
    /// Share of the expected cached tokens that really hit (0 to 1).
    scale: f64,
    /// Prompt tokens sent since the last correction.
    queried_tokens: f64,
    /// Tokens the record expected cached (before scaling) since then.
    expected_hit_tokens: f64,
    /// The scraped counters' increments since then.
    observed_hit_tokens: f64,
    observed_queried_tokens: f64,
}

impl Default for InstanceCache {
    fn default() -> Self {
        InstanceCache {
            scale: 1.0,
            queried_tokens: 0.0,
            expected_hit_tokens: 0.0,
            observed_hit_tokens: 0.0,
            observed_queried_tokens: 0.0,
        }
    }
}

/// The approximate, bounded, ageing record of the prefixes each instance
/// has recently served.
#[derive(Debug)]
pub struct PrefixRecord {
    table: Table<PrefixKey, u32>,
    instances: Vec<InstanceCache>,
    limits: PrefixLimits,
    unrecorded: u64,
}

impl PrefixRecord {
    /// A record for `instances` instances, keyed under `seed`.
    pub fn new(limits: PrefixLimits, instances: usize, seed: u64) -> PrefixRecord {
        PrefixRecord {
            table: Table::new(limits.capacity.max(1), seed),
            instances: vec![InstanceCache::default(); instances],
            limits,
            unrecorded: 0,
        }
    }

    /// Sends the record could not note because it was full of fresh
    /// entries.
    pub fn unrecorded(&self) -> u64 {
        self.unrecorded
    }

    /// The bounds it was made with.
    pub fn limits(&self) -> &PrefixLimits {
        &self.limits
    }

    /// (instance, prefix) pairs held, fresh or not yet swept.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The prefix's tokens `instance` is expected to hold in its cache at
    /// `now_ns`, scaled by the instance's observed hit ratio: 0 when the
    /// prefix was never sent there or not within the TTL.
    pub fn expected_cached_tokens(&self, instance: u8, prefix: &SharedPrefix, now_ns: u64) -> f64 {
        self.recorded_tokens(instance, prefix, now_ns) * self.scale(instance)
    }

    /// The unscaled tokens recorded, when fresh.
    fn recorded_tokens(&self, instance: u8, prefix: &SharedPrefix, now_ns: u64) -> f64 {
        let key = PrefixKey {
            instance,
            hash: prefix.hash,
        };
        let hash = self.table.hash(&key);
        let Some(&tokens) = self.table.get_hashed(&key, hash) else {
            return 0.0;
        };
        let fresh = self
            .table
            .last_seen_ns(&key)
            .is_some_and(|t| now_ns.saturating_sub(t) < self.limits.ttl_ns);
        if fresh {
            f64::from(tokens.min(prefix.tokens))
        } else {
            0.0
        }
    }

    /// An instance's hit-ratio scale (1 until corrected).
    pub fn scale(&self, instance: u8) -> f64 {
        self.instances
            .get(usize::from(instance))
            .map_or(1.0, |c| c.scale)
    }

    /// A request of `prompt_tokens` with `prefix` was sent to `instance` at
    /// `now_ns`: the instance will hold the prefix from now on. Returns
    /// false when the record is full of fresh entries and could not take it.
    pub fn served(
        &mut self,
        instance: u8,
        prefix: &SharedPrefix,
        prompt_tokens: u32,
        now_ns: u64,
    ) -> bool {
        let expected = self.recorded_tokens(instance, prefix, now_ns);
        if let Some(c) = self.instances.get_mut(usize::from(instance)) {
            c.queried_tokens += f64::from(prompt_tokens);
            c.expected_hit_tokens += expected;
        }
        let key = PrefixKey {
            instance,
            hash: prefix.hash,
        };
        let hash = self.table.hash(&key);
        match self.table.entry_hashed(&key, hash, now_ns) {
            Ok((tokens, _)) => {
                *tokens = prefix.tokens;
                true
            }
            Err(_) => {
                // Full: make room from stale entries, bounded, and retry once.
                self.expire(now_ns, 16);
                match self.table.entry_hashed(&key, hash, now_ns) {
                    Ok((tokens, _)) => {
                        *tokens = prefix.tokens;
                        true
                    }
                    Err(_) => {
                        self.unrecorded += 1;
                        false
                    }
                }
            }
        }
    }

    /// The instance's prefix-cache counters moved by `hit_tokens` hits over
    /// `queried_tokens` queried tokens since the last call (the increments
    /// of `vllm:prefix_cache_hits` and `vllm:prefix_cache_queries`). Once
    /// the record has expected [`MIN_CORRECTION_EXPECTED_TOKENS`] hit tokens
    /// in the window, the scale moves halfway to the window's observed hit
    /// ratio over the ratio the record expected for the prompts it sent
    /// there (at most 1), and the window restarts. Garbage (negative or not
    /// finite) is ignored.
    pub fn correct(&mut self, instance: u8, hit_tokens: f64, queried_tokens: f64) {
        let Some(c) = self.instances.get_mut(usize::from(instance)) else {
            return;
        };
        let usable = |v: f64| v.is_finite() && v >= 0.0;
        if !(usable(hit_tokens) && usable(queried_tokens)) {
            return;
        }
        c.observed_hit_tokens += hit_tokens;
        c.observed_queried_tokens += queried_tokens;
        if c.expected_hit_tokens < MIN_CORRECTION_EXPECTED_TOKENS
            || c.queried_tokens <= 0.0
            || c.observed_queried_tokens <= 0.0
        {
            return;
        }
        let observed = (c.observed_hit_tokens / c.observed_queried_tokens).min(1.0);
        let expected = c.expected_hit_tokens / c.queried_tokens;
        let ratio = (observed / expected).clamp(0.0, 1.0);
        c.scale = 0.5 * c.scale + 0.5 * ratio;
        c.queried_tokens = 0.0;
        c.expected_hit_tokens = 0.0;
        c.observed_hit_tokens = 0.0;
        c.observed_queried_tokens = 0.0;
    }

    /// Removes at most `budget` entries older than the TTL.
    pub fn expire(&mut self, now_ns: u64, budget: usize) -> usize {
        self.table
            .expire(now_ns, self.limits.ttl_ns, budget, |_, _| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn limits(capacity: usize) -> PrefixLimits {
        PrefixLimits {
            capacity,
            ttl_ns: 10 * SEC,
            balance_queue: 4.0,
        }
    }

    fn p(hash: u32, tokens: u32) -> SharedPrefix {
        SharedPrefix { hash, tokens }
    }

    #[test]
    fn a_served_prefix_is_expected_on_that_instance_only_until_it_ages() {
        let mut r = PrefixRecord::new(limits(16), 2, 7);
        assert_eq!(r.expected_cached_tokens(0, &p(5, 3000), 0), 0.0);
        assert!(r.served(0, &p(5, 3000), 3500, SEC));
        assert_eq!(r.expected_cached_tokens(0, &p(5, 3000), 2 * SEC), 3000.0);
        // Another instance, another prefix: nothing.
        assert_eq!(r.expected_cached_tokens(1, &p(5, 3000), 2 * SEC), 0.0);
        assert_eq!(r.expected_cached_tokens(0, &p(6, 3000), 2 * SEC), 0.0);
        // Never more than the asking request's prefix.
        assert_eq!(r.expected_cached_tokens(0, &p(5, 1000), 2 * SEC), 1000.0);
        // Stale after the TTL, and swept.
        assert_eq!(r.expected_cached_tokens(0, &p(5, 3000), 11 * SEC), 0.0);
        assert_eq!(r.len(), 1);
        assert_eq!(r.expire(11 * SEC, 64), 1);
        assert!(r.is_empty());
    }

    #[test]
    fn the_record_is_bounded_and_stale_entries_make_room() {
        let mut r = PrefixRecord::new(limits(4), 1, 7);
        for h in 1..=4 {
            assert!(r.served(0, &p(h, 100), 200, SEC));
        }
        // Full of fresh entries: the fifth is not recorded.
        assert!(!r.served(0, &p(5, 100), 200, 2 * SEC));
        assert_eq!((r.len(), r.unrecorded()), (4, 1));
        assert_eq!(r.expected_cached_tokens(0, &p(5, 100), 2 * SEC), 0.0);
        // Once they are stale, a new prefix takes a freed entry.
        assert!(r.served(0, &p(5, 100), 200, 12 * SEC));
        assert_eq!(r.expected_cached_tokens(0, &p(5, 100), 12 * SEC), 100.0);
        assert!(r.len() <= 4);
    }

    #[test]
    fn scraped_hits_scale_the_expected_skip() {
        let mut r = PrefixRecord::new(limits(16), 2, 7);
        let prefix = p(5, 4096);
        r.served(0, &prefix, 5120, SEC);
        // Four more requests the record expects to hit 4096 tokens each:
        // 16384 expected of 25600 queried (0.64).
        for k in 0..4 {
            r.served(0, &prefix, 5120, SEC + k);
        }
        // Scraped in two parts; the server hit 8192 of 25600 (0.32): half
        // of what was expected, so the scale moves halfway to 0.5.
        r.correct(0, 4096.0, 12_800.0);
        r.correct(0, 4096.0, 12_800.0);
        assert!((r.scale(0) - 0.75).abs() < 1e-12, "{}", r.scale(0));
        assert_eq!(r.expected_cached_tokens(0, &prefix, 2 * SEC), 3072.0);
        // The other instance is untouched.
        assert_eq!(r.scale(1), 1.0);
        // Too little expected in the window: a total miss moves nothing yet.
        r.served(0, &prefix, 5120, 2 * SEC);
        r.correct(0, 0.0, 5120.0);
        assert!((r.scale(0) - 0.75).abs() < 1e-12);
        // Garbage is ignored.
        r.correct(0, f64::NAN, 10.0);
        assert!((r.scale(0) - 0.75).abs() < 1e-12);
        // A server hitting more than expected cannot push the scale past 1.
        let mut r = PrefixRecord::new(limits(16), 1, 7);
        for k in 0..6 {
            r.served(0, &prefix, 5120, SEC + k);
        }
        r.correct(0, 30_720.0, 30_720.0);
        assert_eq!(r.scale(0), 1.0);
    }
}
