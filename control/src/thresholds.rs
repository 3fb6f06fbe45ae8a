//! Tunables that a POLICY can set (THRESHOLD records) and their defaults.

use core::fmt;
use core::str::FromStr;

use crate::body_error::BodyError;
use crate::metric::UnknownName;

/// Which tunable a THRESHOLD record sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThresholdId {
    /// 1: state older than this (ms) counts as unknown. Default 1000.
    MaxStateAgeMs = 1,
    /// 2: paths losing more than this ratio are not chosen. Default 0.05.
    MaxPathLossRatio = 2,
    /// 3: cost = latency_us + jitter_weight * jitter_us. Default 2.0.
    JitterWeight = 3,
    /// 4: requests up to this many tokens are short tasks. Default 256.
    ShortTaskTokens = 4,
    /// 5: capabilities older than this (ms) count as unknown. Default 60000.
    MaxCapabilityAgeMs = 5,
}

impl ThresholdId {
    /// Every id.
    pub const ALL: [ThresholdId; 5] = [
        ThresholdId::MaxStateAgeMs,
        ThresholdId::MaxPathLossRatio,
        ThresholdId::JitterWeight,
        ThresholdId::ShortTaskTokens,
        ThresholdId::MaxCapabilityAgeMs,
    ];

    /// The wire value.
    pub const fn to_wire(self) -> u16 {
        self as u16
    }

    /// Decodes a wire value.
    pub fn from_wire(v: u16) -> Result<ThresholdId, BodyError> {
        ThresholdId::ALL
            .into_iter()
            .find(|t| t.to_wire() == v)
            .ok_or(BodyError::UnknownThreshold(v))
    }

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            ThresholdId::MaxStateAgeMs => "max_state_age_ms",
            ThresholdId::MaxPathLossRatio => "max_path_loss_ratio",
            ThresholdId::JitterWeight => "jitter_weight",
            ThresholdId::ShortTaskTokens => "short_task_tokens",
            ThresholdId::MaxCapabilityAgeMs => "max_capability_age_ms",
        }
    }

    /// Allowed values: `(min, max, min_exclusive, description)`. The upper
    /// bounds keep conversions to nanoseconds and cost sums far from overflow.
    const fn range(self) -> (f64, f64, bool, &'static str) {
        match self {
            ThresholdId::MaxStateAgeMs | ThresholdId::MaxCapabilityAgeMs => (
                0.0,
                86_400_000.0,
                true,
                "above 0 and at most 86400000 (one day)",
            ),
            ThresholdId::MaxPathLossRatio => (0.0, 1.0, false, "0 to 1"),
            ThresholdId::JitterWeight => (0.0, 1000.0, false, "0 to 1000"),
            ThresholdId::ShortTaskTokens => (0.0, 4_294_967_295.0, false, "0 to 4294967295"),
        }
    }

    /// Checks a value for this id.
    pub fn validate(self, value: f64) -> Result<(), BodyError> {
        let (min, max, exclusive, allowed) = self.range();
        let above_min = if exclusive { value > min } else { value >= min };
        // NaN fails both comparisons, so it is refused too.
        if above_min && value <= max {
            Ok(())
        } else {
            Err(BodyError::BadThreshold {
                id: self.to_wire(),
                value,
                allowed,
            })
        }
    }
}

impl fmt::Display for ThresholdId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ThresholdId {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<ThresholdId, UnknownName> {
        ThresholdId::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownName {
                what: "threshold",
                name: s.to_string(),
            })
    }
}

/// One THRESHOLD record: `id:u16 | value:f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Which tunable.
    pub id: ThresholdId,
    /// Its new value.
    pub value: f64,
}

/// The tunables in the units the code uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Path and node state older than this is unknown.
    pub max_state_age_ns: u64,
    /// Paths losing more are not chosen.
    pub max_path_loss_ratio: f64,
    /// Weight of jitter in the path cost.
    pub jitter_weight: f64,
    /// Requests up to this many tokens are short tasks (for the steering
    /// pipeline; `choose_path` does not use it).
    pub short_task_tokens: u32,
    /// Capabilities older than this are unknown.
    pub max_capability_age_ns: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            max_state_age_ns: 1_000_000_000,
            max_path_loss_ratio: 0.05,
            jitter_weight: 2.0,
            short_task_tokens: 256,
            max_capability_age_ns: 60_000_000_000,
        }
    }
}

impl Thresholds {
    /// Applies one validated threshold.
    pub fn set(&mut self, t: Threshold) {
        // Values were range-checked on decode, so the float-to-int casts
        // below cannot saturate in a surprising way.
        let ms_to_ns = |ms: f64| (ms * 1e6) as u64;
        match t.id {
            ThresholdId::MaxStateAgeMs => self.max_state_age_ns = ms_to_ns(t.value),
            ThresholdId::MaxPathLossRatio => self.max_path_loss_ratio = t.value,
            ThresholdId::JitterWeight => self.jitter_weight = t.value,
            ThresholdId::ShortTaskTokens => self.short_task_tokens = t.value as u32,
            ThresholdId::MaxCapabilityAgeMs => self.max_capability_age_ns = ms_to_ns(t.value),
        }
    }

    /// Reads one tunable back in its THRESHOLD unit.
    pub fn get(&self, id: ThresholdId) -> f64 {
        match id {
            ThresholdId::MaxStateAgeMs => self.max_state_age_ns as f64 / 1e6,
            ThresholdId::MaxPathLossRatio => self.max_path_loss_ratio,
            ThresholdId::JitterWeight => self.jitter_weight,
            ThresholdId::ShortTaskTokens => f64::from(self.short_task_tokens),
            ThresholdId::MaxCapabilityAgeMs => self.max_capability_age_ns as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_round_trip_and_ranges() {
        let mut t = Thresholds::default();
        for id in ThresholdId::ALL {
            let v = t.get(id);
            assert_eq!(id.validate(v), Ok(()), "{id} default {v} must be valid");
            assert_eq!(id.name().parse::<ThresholdId>(), Ok(id));
        }
        t.set(Threshold {
            id: ThresholdId::MaxStateAgeMs,
            value: 250.0,
        });
        assert_eq!(t.max_state_age_ns, 250_000_000);
        assert!(ThresholdId::MaxStateAgeMs.validate(0.0).is_err());
        assert!(ThresholdId::MaxPathLossRatio.validate(1.5).is_err());
        assert!(ThresholdId::JitterWeight.validate(f64::NAN).is_err());
        assert!(ThresholdId::JitterWeight.validate(-1.0).is_err());
        assert!(matches!(
            ThresholdId::from_wire(99),
            Err(BodyError::UnknownThreshold(99))
        ));
    }
}
