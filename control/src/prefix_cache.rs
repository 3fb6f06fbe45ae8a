//! PREFIX_CACHE (`0x8001`): how far a node's prefix cache really hit, as
//! the server's own counters say (`vllm:prefix_cache_hits` and
//! `vllm:prefix_cache_queries`, in prompt tokens).
//!
//! ```text
//!  0                               8                              16
//! +-------------------------------+-------------------------------+
//! |     hit_tokens (binary64)     |   queried_tokens (binary64)   |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! An optional record of NODE_STATE carrying the counters' *increments*
//! since the sender's previous NODE_STATE for the node, so the message
//! stays self-contained: the receiver needs no memory of the server's
//! counters, and a server or collector restart costs one window, not a
//! negative delta. The type is above `0x8000`, so a receiver that predates
//! it skips it (docs/wire-format.md §3.4) and a newer collector can talk
//! to an older appliance. The appliance adds the increments into per-node
//! totals ([`PrefixCacheTotals`]) that every steering engine reads from
//! its snapshot: an engine that misses a snapshot still sees the sum.

use crate::body_error::BodyError;
use crate::fields::fixed;
use crate::record::{rt, Record};

/// The largest increment accepted: 2^53 tokens, where binary64 stops
/// counting every integer (no real scrape interval comes near it).
pub const MAX_PREFIX_CACHE_TOKENS: f64 = 9_007_199_254_740_992.0;

/// One report's increments of a node's prefix-cache counters, tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefixCacheCounts {
    /// Prompt tokens found in the cache.
    pub hit_tokens: f64,
    /// Prompt tokens looked up in the cache.
    pub queried_tokens: f64,
}

impl PrefixCacheCounts {
    /// Checks the rules of docs/wire-format.md §3.4: both finite, not
    /// negative, at most [`MAX_PREFIX_CACHE_TOKENS`], hits at most the
    /// queried tokens.
    pub fn validate(&self) -> Result<(), BodyError> {
        let ok = |v: f64| v.is_finite() && (0.0..=MAX_PREFIX_CACHE_TOKENS).contains(&v);
        if ok(self.hit_tokens) && ok(self.queried_tokens) && self.hit_tokens <= self.queried_tokens
        {
            Ok(())
        } else {
            Err(BodyError::BadPrefixCache {
                hit_tokens: self.hit_tokens,
                queried_tokens: self.queried_tokens,
            })
        }
    }

    /// The 16-byte value.
    pub fn encode(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.hit_tokens.to_be_bytes());
        v[8..].copy_from_slice(&self.queried_tokens.to_be_bytes());
        v
    }

    pub(crate) fn decode(r: &Record<'_>) -> Result<PrefixCacheCounts, BodyError> {
        debug_assert_eq!(r.rtype, rt::PREFIX_CACHE);
        let v: [u8; 16] = fixed(r)?;
        let (hit, queried) = v.split_at(8);
        let f = |b: &[u8]| f64::from_be_bytes(b.try_into().unwrap_or([0xff; 8]));
        let c = PrefixCacheCounts {
            hit_tokens: f(hit),
            queried_tokens: f(queried),
        };
        c.validate()?;
        Ok(c)
    }
}

/// A node's prefix-cache increments summed over every NODE_STATE the
/// appliance accepted for it: only ever grows, so a reader keeps the
/// totals it last used and corrects by the difference.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PrefixCacheTotals {
    /// Hit tokens.
    pub hit_tokens: f64,
    /// Queried tokens.
    pub queried_tokens: f64,
    /// NODE_STATE messages that carried PREFIX_CACHE.
    pub reports: u64,
}

impl PrefixCacheTotals {
    /// The totals after one more report.
    pub fn with_report(self, c: &PrefixCacheCounts) -> PrefixCacheTotals {
        PrefixCacheTotals {
            hit_tokens: self.hit_tokens + c.hit_tokens,
            queried_tokens: self.queried_tokens + c.queried_tokens,
            reports: self.reports + 1,
        }
    }

    /// What was reported since `earlier` (a copy of these totals taken
    /// before): hit and queried tokens, `None` when nothing was.
    pub fn since(&self, earlier: &PrefixCacheTotals) -> Option<PrefixCacheCounts> {
        (self.reports > earlier.reports).then(|| PrefixCacheCounts {
            hit_tokens: (self.hit_tokens - earlier.hit_tokens).max(0.0),
            queried_tokens: (self.queried_tokens - earlier.queried_tokens).max(0.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &[u8]) -> Record<'_> {
        Record {
            rtype: rt::PREFIX_CACHE,
            value: v,
        }
    }

    #[test]
    fn the_value_is_two_big_endian_binary64() {
        let c = PrefixCacheCounts {
            hit_tokens: 640.0,
            queried_tokens: 1000.0,
        };
        let v = c.encode();
        assert_eq!(
            v,
            [
                0x40, 0x84, 0, 0, 0, 0, 0, 0, // 640.0
                0x40, 0x8f, 0x40, 0, 0, 0, 0, 0, // 1000.0
            ]
        );
        assert_eq!(PrefixCacheCounts::decode(&rec(&v)), Ok(c));
    }

    #[test]
    fn the_documented_example_decodes() {
        // docs/wire-format.md §3.8: node 1, queue 3, 640 of 1000 tokens hit.
        let plaintext = [
            0x02, 0x00, 0x17, 0x97, 0x9c, 0xfe, 0x36, 0x2a, 0x00, 0x00, // kind, origin
            0x00, 0x03, 0x00, 0x02, 0x00, 0x01, // NODE_ID 1
            0x00, 0x01, 0x00, 0x10, 0x00, 0x12, 0x00, 0x06, 0x02, 0x00, 0x00, 0x00, // METRIC
            0x40, 0x08, 0, 0, 0, 0, 0, 0, // 3.0
            0x80, 0x01, 0x00, 0x10, // PREFIX_CACHE
            0x40, 0x84, 0, 0, 0, 0, 0, 0, // 640.0
            0x40, 0x8f, 0x40, 0, 0, 0, 0, 0, // 1000.0
        ];
        let d = crate::message::Message::decode(&plaintext).unwrap();
        let crate::message::Message::NodeState(ns) = &d.message else {
            panic!("not a NODE_STATE")
        };
        assert_eq!(
            ns.prefix_cache,
            Some(PrefixCacheCounts {
                hit_tokens: 640.0,
                queried_tokens: 1000.0
            })
        );
        assert_eq!(d.message.encode(d.origin_time_ns).unwrap(), plaintext);
    }

    #[test]
    fn bad_values_and_sizes_are_refused() {
        let bad = |hit: f64, queried: f64| {
            let v = PrefixCacheCounts {
                hit_tokens: hit,
                queried_tokens: queried,
            }
            .encode();
            PrefixCacheCounts::decode(&rec(&v))
        };
        for (h, q) in [
            (f64::NAN, 1.0),
            (1.0, f64::INFINITY),
            (-1.0, 5.0),
            (0.0, -0.5),
            (6.0, 5.0),
            (0.0, MAX_PREFIX_CACHE_TOKENS * 2.0),
        ] {
            assert!(
                matches!(bad(h, q), Err(BodyError::BadPrefixCache { .. })),
                "{h} {q}"
            );
        }
        assert!(bad(0.0, 0.0).is_ok());
        assert!(bad(5.0, 5.0).is_ok());
        assert!(matches!(
            PrefixCacheCounts::decode(&rec(&[0; 8])),
            Err(BodyError::BadRecordLength { len: 8, .. })
        ));
    }

    #[test]
    fn totals_add_up_and_differences_cover_missed_reports() {
        let c = |h, q| PrefixCacheCounts {
            hit_tokens: h,
            queried_tokens: q,
        };
        let start = PrefixCacheTotals::default();
        let one = start.with_report(&c(10.0, 40.0));
        let two = one.with_report(&c(30.0, 60.0));
        assert_eq!(start.since(&start), None);
        assert_eq!(two.since(&one), Some(c(30.0, 60.0)));
        // A reader that last looked before both sees both.
        assert_eq!(two.since(&start), Some(c(40.0, 100.0)));
        assert_eq!(two.reports, 2);
    }
}
