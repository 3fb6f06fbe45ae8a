//! From successive readings of one server to the NODE_STATE it warrants.
//!
//! * **Queue length** = the server's waiting requests.
//! * **GPU utilisation** = running requests / the configured `concurrency`
//!   (at most 1), when the config gives one: no server exports its batch
//!   limit under a common name, and the protocol has no "running" metric.
//! * **GPU memory utilisation** = KV-cache use, 0–1.
//! * **Estimated TTFT** = the mean of the TTFT observations made since the
//!   previous scrape: the histogram's increments (bucket by bucket, sum and
//!   count) between two scrapes describe exactly the requests whose first
//!   token came in between, so their mean (`Δsum / Δcount`) is the
//!   server's recent TTFT, not its TTFT since start. With no new
//!   observation the previous estimate stands; a count that went down (the
//!   server restarted) restarts the deltas from zero. [`Delta::quantile`]
//!   gives a quantile of the same increments, interpolated within a bucket
//!   as Prometheus' `histogram_quantile` does.
//! * **Prefix cache** (NODE_STATE's PREFIX_CACHE): the increments of the
//!   hit and queried prompt tokens since the previous scrape. vLLM counts
//!   both (`vllm:prefix_cache_hits`, `vllm:prefix_cache_queries`); SGLang
//!   gives a hit rate over its recent batches, taken as the hit share of
//!   the prompt tokens counted since the previous scrape
//!   (`sglang:prompt_tokens`), so nothing without that counter. The first
//!   scrape has no previous one and sends none; counters that went down
//!   (a restart) count from zero, as the TTFT histogram does.
//! * **A failed scrape** (no connection, timeout, an HTTP error, a page
//!   that does not parse or names no known server) makes the node *down*:
//!   NODE_STATE has no "down" field, so the collector reports what a down
//!   node looks like to the appliance's decision: queue length
//!   [`DOWN_QUEUE_LENGTH`] (above any `max_queue`, so the node is
//!   overloaded and chosen only if every candidate is), GPU and memory
//!   utilisation 1, and an estimated TTFT of [`DOWN_TTFT_MS`]. It does so at
//!   the first failure, and keeps doing so every interval until a scrape
//!   succeeds, instead of falling silent and waiting for the state to age.

use control::{NodeStateFields, PrefixCacheCounts, Source};

use crate::reading::{Histogram, PrefixCacheStats, Reading};

/// The queue length a down node is reported with.
pub const DOWN_QUEUE_LENGTH: f64 = 1_000_000.0;
/// The estimated TTFT a down node is reported with: one hour.
pub const DOWN_TTFT_MS: f64 = 3_600_000.0;

/// The increments of a histogram between two scrapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// Cumulative increments by upper bound.
    pub buckets: Vec<(f64, f64)>,
    /// Increment of the sum.
    pub sum: f64,
    /// Increment of the count.
    pub count: f64,
}

impl Delta {
    /// `now − before`, or `now` itself when the counts went down (a
    /// restart) or the bounds changed.
    pub fn between(before: Option<&Histogram>, now: &Histogram) -> Delta {
        let comparable = before.filter(|b| {
            b.count <= now.count
                && b.buckets.len() == now.buckets.len()
                && b.buckets
                    .iter()
                    .zip(&now.buckets)
                    .all(|(x, y)| x.0 == y.0 && x.1 <= y.1)
        });
        match comparable {
            Some(b) => Delta {
                buckets: now
                    .buckets
                    .iter()
                    .zip(&b.buckets)
                    .map(|(n, o)| (n.0, n.1 - o.1))
                    .collect(),
                sum: (now.sum - b.sum).max(0.0),
                count: now.count - b.count,
            },
            None => Delta {
                buckets: now.buckets.clone(),
                sum: now.sum,
                count: now.count,
            },
        }
    }

    /// Mean of the new observations, if there are any.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The `q` quantile (0–1) of the new observations, linear within the
    /// bucket it falls in (the lowest bucket starts at 0); in the `+Inf`
    /// bucket, the highest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, cum) in &self.buckets {
            if cum >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let in_bucket = cum - lower.1;
                let frac = if in_bucket > 0.0 {
                    (rank - lower.1) / in_bucket
                } else {
                    1.0
                };
                return Some(lower.0 + (le - lower.0) * frac);
            }
            lower = (le, cum);
        }
        None
    }
}

/// One server's derivation state across scrapes.
#[derive(Debug, Default)]
pub struct Deriver {
    last_ttft: Option<Histogram>,
    ttft_estimate_ms: Option<f64>,
    /// The prefix counters of the previous scrape: (hits, queried) tokens
    /// for vLLM, prompt tokens for SGLang.
    last_prefix: Option<(f64, f64)>,
}

impl Deriver {
    /// The NODE_STATE fields for `reading`, node `node`, with `concurrency`
    /// batch slots if known.
    pub fn node_state(
        &mut self,
        node: u16,
        reading: &Reading,
        concurrency: Option<u32>,
    ) -> NodeStateFields {
        if let Some(h) = &reading.ttft {
            let delta = Delta::between(self.last_ttft.as_ref(), h);
            if let Some(mean_s) = delta.mean() {
                self.ttft_estimate_ms = Some(mean_s * 1000.0);
            }
            self.last_ttft = Some(h.clone());
        }
        let gpu_util = match (reading.running, concurrency) {
            (Some(r), Some(c)) if c > 0 => Some((r / f64::from(c)).clamp(0.0, 1.0)),
            _ => None,
        };
        NodeStateFields {
            node,
            gpu_util,
            mem_util: reading.kv_usage,
            queue: reading.waiting.map(|w| w.max(0.0)),
            ttft_ms: self.ttft_estimate_ms,
            source: Source::Measured,
        }
    }
}

impl Deriver {
    /// The prefix cache's increments since the previous scrape (see the
    /// module docs), valid by the protocol's rules (hits at most queried).
    pub fn prefix_cache(&mut self, reading: &Reading) -> Option<PrefixCacheCounts> {
        // (hits, queried) now, cumulative; for a hit rate the hits are
        // derived from the increment below.
        let (now, rate) = match reading.prefix_cache? {
            PrefixCacheStats::Tokens { queries, hits } => ((hits, queries), None),
            PrefixCacheStats::HitRate {
                rate,
                prompt_tokens: Some(p),
            } => ((0.0, p), Some(rate)),
            PrefixCacheStats::HitRate { .. } => return None,
        };
        let before = self.last_prefix.replace(now)?;
        let restarted = now.0 < before.0 || now.1 < before.1;
        let (hits, queried) = if restarted {
            now
        } else {
            (now.0 - before.0, now.1 - before.1)
        };
        let hits = rate.map_or(hits, |r| r * queried);
        let c = PrefixCacheCounts {
            hit_tokens: hits.clamp(0.0, queried),
            queried_tokens: queried,
        };
        c.validate().ok().map(|()| c)
    }
}

/// The NODE_STATE of a node whose endpoint failed (see the module docs).
pub fn down(node: u16) -> NodeStateFields {
    NodeStateFields {
        node,
        gpu_util: Some(1.0),
        mem_util: Some(1.0),
        queue: Some(DOWN_QUEUE_LENGTH),
        ttft_ms: Some(DOWN_TTFT_MS),
        source: Source::Measured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::Server;

    fn hist(buckets: &[(f64, f64)], sum: f64) -> Histogram {
        Histogram {
            buckets: buckets.to_vec(),
            sum,
            count: buckets.last().unwrap().1,
        }
    }

    fn reading(ttft: Option<Histogram>) -> Reading {
        Reading {
            server: Server::Vllm,
            waiting: Some(3.0),
            running: Some(6.0),
            kv_usage: Some(0.4),
            ttft,
            prefix_cache: None,
        }
    }

    #[test]
    fn ttft_is_the_mean_of_the_increments_not_of_all_time() {
        let mut d = Deriver::default();
        // Ten slow requests at 2 s each so far.
        let first = hist(&[(0.1, 0.0), (2.5, 10.0), (f64::INFINITY, 10.0)], 20.0);
        let s = d.node_state(1, &reading(Some(first)), Some(8));
        assert_eq!(s.ttft_ms, Some(2000.0));
        assert_eq!(s.queue, Some(3.0));
        assert_eq!(s.mem_util, Some(0.4));
        assert_eq!(s.gpu_util, Some(0.75));
        // Then two fast ones at 50 ms: the estimate is theirs.
        let second = hist(&[(0.1, 2.0), (2.5, 12.0), (f64::INFINITY, 12.0)], 20.1);
        let s = d.node_state(1, &reading(Some(second.clone())), None);
        assert!((s.ttft_ms.unwrap() - 50.0).abs() < 1e-6, "{s:?}");
        assert_eq!(s.gpu_util, None);
        // Nothing new: the estimate stands.
        let s = d.node_state(1, &reading(Some(second)), None);
        assert!((s.ttft_ms.unwrap() - 50.0).abs() < 1e-6);
        // A restart (counts went down) starts over from the new counts.
        let restarted = hist(&[(0.1, 1.0), (2.5, 1.0), (f64::INFINITY, 1.0)], 0.02);
        let s = d.node_state(1, &reading(Some(restarted)), None);
        assert!((s.ttft_ms.unwrap() - 20.0).abs() < 1e-6);
    }

    #[test]
    fn quantiles_interpolate_within_the_delta_buckets() {
        let before = hist(&[(0.1, 0.0), (0.2, 0.0), (f64::INFINITY, 0.0)], 0.0);
        let now = hist(&[(0.1, 2.0), (0.2, 4.0), (f64::INFINITY, 5.0)], 0.9);
        let d = Delta::between(Some(&before), &now);
        assert_eq!(d.quantile(0.2), Some(0.05));
        assert!((d.quantile(0.6).unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(d.quantile(1.0), Some(0.2));
        assert_eq!(d.mean(), Some(0.18));
        let empty = Delta::between(Some(&now), &now);
        assert_eq!((empty.mean(), empty.quantile(0.5)), (None, None));
    }

    #[test]
    fn prefix_cache_increments_between_scrapes() {
        let page = |prefix| Reading {
            prefix_cache: Some(prefix),
            ..reading(None)
        };
        let vllm = |hits, queries| page(PrefixCacheStats::Tokens { queries, hits });
        let mut d = Deriver::default();
        // The first scrape has nothing to compare with.
        assert_eq!(d.prefix_cache(&vllm(600.0, 1000.0)), None);
        let c = d.prefix_cache(&vllm(1400.0, 2500.0)).unwrap();
        assert_eq!((c.hit_tokens, c.queried_tokens), (800.0, 1500.0));
        // Nothing moved: zero increments, still a report.
        let c = d.prefix_cache(&vllm(1400.0, 2500.0)).unwrap();
        assert_eq!((c.hit_tokens, c.queried_tokens), (0.0, 0.0));
        // A restart: the counters since it.
        let c = d.prefix_cache(&vllm(10.0, 40.0)).unwrap();
        assert_eq!((c.hit_tokens, c.queried_tokens), (10.0, 40.0));
        // The message carries it, and the receiver's rules hold.
        let mut m = d.node_state(1, &vllm(10.0, 40.0), None).message().unwrap();
        if let control::Message::NodeState(ns) = &mut m {
            ns.prefix_cache = Some(c);
        }
        assert!(m.encode(1).is_ok());

        // SGLang: its hit rate over the prompt tokens counted since.
        let sglang = |rate, prompt_tokens| {
            page(PrefixCacheStats::HitRate {
                rate,
                prompt_tokens,
            })
        };
        let mut d = Deriver::default();
        assert_eq!(d.prefix_cache(&sglang(0.5, Some(100.0))), None);
        let c = d.prefix_cache(&sglang(0.25, Some(500.0))).unwrap();
        assert_eq!((c.hit_tokens, c.queried_tokens), (100.0, 400.0));
        // Without the prompt-token counter a rate alone weighs nothing.
        let mut d = Deriver::default();
        assert_eq!(d.prefix_cache(&sglang(0.5, None)), None);
        assert_eq!(d.prefix_cache(&sglang(0.5, None)), None);
        // No prefix account at all (TensorRT-LLM): nothing.
        assert_eq!(Deriver::default().prefix_cache(&reading(None)), None);
    }

    #[test]
    fn a_down_node_is_overloaded_full_and_slow() {
        let s = down(4);
        assert_eq!(s.queue, Some(DOWN_QUEUE_LENGTH));
        assert_eq!((s.gpu_util, s.mem_util), (Some(1.0), Some(1.0)));
        assert!(s.message().is_ok());
    }
}
