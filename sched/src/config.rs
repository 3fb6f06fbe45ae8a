//! [`SchedConfig`], the shape of a [`Scheduler`](crate::Scheduler), and
//! [`ConfigError`], the one error type for bad parameters.

use std::fmt;

/// Largest per-band packet limit accepted.
///
/// Each band's ring is allocated up front, so the limit is also a memory
/// commitment; a typo such as `u32::MAX` must fail validation instead of
/// aborting the process on allocation.
pub const MAX_BAND_LIMIT: u32 = 1 << 20;

/// The bands of a [`Scheduler`](crate::Scheduler).
///
/// Bands are numbered `0..strict_bands` for the strict-priority bands
/// (0 is the highest priority), then `strict_bands..strict_bands +
/// drr_quanta.len()` for the DRR bands, in the order of `drr_quanta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedConfig {
    /// Number of strict-priority bands, served lowest index first.
    pub strict_bands: usize,
    /// Quantum in bytes per round for each DRR band (at least 1). With
    /// backlog everywhere, band `i` gets `quantum_i / Σ quantum` of what the
    /// strict bands leave. A quantum at least the largest frame keeps the
    /// per-round unfairness below one frame, but any value ≥ 1 is correct.
    pub drr_quanta: Vec<u32>,
    /// Packet limit of each band, strict bands first then DRR bands
    /// (`strict_bands + drr_quanta.len()` entries, each in
    /// `1..=MAX_BAND_LIMIT`). A band at its limit rejects further items.
    pub band_limit_packets: Vec<u32>,
}

impl SchedConfig {
    /// Same packet limit for every band.
    pub fn uniform(strict_bands: usize, drr_quanta: Vec<u32>, limit: u32) -> Self {
        let bands = strict_bands.saturating_add(drr_quanta.len());
        SchedConfig {
            strict_bands,
            drr_quanta,
            band_limit_packets: vec![limit; bands],
        }
    }

    /// Total number of bands.
    pub fn bands(&self) -> usize {
        self.strict_bands.saturating_add(self.drr_quanta.len())
    }

    /// Checks every rule documented on the fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bands = self.bands();
        if bands == 0 {
            return Err(ConfigError::NoBands);
        }
        if self.band_limit_packets.len() != bands {
            return Err(ConfigError::LimitCount {
                expected: bands,
                got: self.band_limit_packets.len(),
            });
        }
        if let Some(i) = self.drr_quanta.iter().position(|&q| q == 0) {
            return Err(ConfigError::ZeroQuantum {
                band: self.strict_bands + i,
            });
        }
        if let Some(band) = self
            .band_limit_packets
            .iter()
            .position(|&l| l == 0 || l > MAX_BAND_LIMIT)
        {
            return Err(ConfigError::BadLimit { band });
        }
        Ok(())
    }
}

/// A configuration or run-time parameter that cannot be used.
///
/// `Display` is one line, suitable for a log or a CLI error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The scheduler would have no band at all.
    NoBands,
    /// `band_limit_packets` does not have one entry per band.
    LimitCount {
        /// Number of bands.
        expected: usize,
        /// Number of limits given.
        got: usize,
    },
    /// A DRR band's quantum is 0 (it would never be served).
    ZeroQuantum {
        /// The band.
        band: usize,
    },
    /// A band limit is 0 or above [`MAX_BAND_LIMIT`].
    BadLimit {
        /// The band.
        band: usize,
    },
    /// The band does not exist.
    NoSuchBand {
        /// The band asked for.
        band: usize,
    },
    /// The band is a strict-priority band, which has no quantum.
    NotDrrBand {
        /// The band asked for.
        band: usize,
    },
    /// A flow weight of 0 (the flow would never be served).
    ZeroWeight,
    /// [`FlowDrr`](crate::FlowDrr) base quantum of 0.
    ZeroBaseQuantum,
    /// A [`FlowDrr`](crate::FlowDrr) capacity is 0 or above its maximum.
    BadCapacity {
        /// Which capacity.
        what: &'static str,
    },
    /// The flow table is full, so a new flow cannot get a weight.
    TooManyFlows,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoBands => write!(f, "scheduler needs at least one band"),
            ConfigError::LimitCount { expected, got } => write!(
                f,
                "band_limit_packets has {got} entries, expected one per band ({expected})"
            ),
            ConfigError::ZeroQuantum { band } => write!(f, "band {band}: DRR quantum must be >= 1"),
            ConfigError::BadLimit { band } => {
                write!(
                    f,
                    "band {band}: packet limit must be in 1..={MAX_BAND_LIMIT}"
                )
            }
            ConfigError::NoSuchBand { band } => write!(f, "band {band} does not exist"),
            ConfigError::NotDrrBand { band } => {
                write!(f, "band {band} is strict-priority and has no quantum")
            }
            ConfigError::ZeroWeight => write!(f, "flow weight must be >= 1"),
            ConfigError::ZeroBaseQuantum => write!(f, "base quantum must be >= 1"),
            ConfigError::BadCapacity { what } => write!(f, "{what} out of range"),
            ConfigError::TooManyFlows => write!(f, "flow table is full"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_field() {
        assert_eq!(
            SchedConfig::uniform(0, vec![], 8).validate(),
            Err(ConfigError::NoBands)
        );
        assert_eq!(
            SchedConfig::uniform(2, vec![1, 0], 8).validate(),
            Err(ConfigError::ZeroQuantum { band: 3 })
        );
        assert_eq!(
            SchedConfig::uniform(1, vec![1], 0).validate(),
            Err(ConfigError::BadLimit { band: 0 })
        );
        let mut c = SchedConfig::uniform(1, vec![1], 8);
        c.band_limit_packets.pop();
        assert_eq!(
            c.validate(),
            Err(ConfigError::LimitCount {
                expected: 2,
                got: 1
            })
        );
        assert!(SchedConfig::uniform(1, vec![1500, 3000], 64)
            .validate()
            .is_ok());
        assert!(!ConfigError::ZeroWeight.to_string().contains('\n'));
    }
}
