//! Self-describing metric values (16 bytes), in the manner of
//! draft-ietf-cats-metric-definition: every value says what it measures, at
//! which level of abstraction, in which unit, from which source and which
//! statistic it is, so a receiver never has to guess.
//!
//! ```text
//!  0       2   3   4   5   6       8                               16
//! +-------+---+---+---+---+-------+-------------------------------+
//! | type  |lvl|unt|src|sta| rsvd  |        value (binary64)       |
//! +-------+---+---+---+---+-------+-------------------------------+
//! ```

use core::fmt;
use core::str::FromStr;

/// Bytes in an encoded metric.
pub const METRIC_LEN: usize = 16;

macro_rules! wire_enum {
    (
        $(#[$meta:meta])* $name:ident : $repr:ty, $err:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value ),+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire value.
            pub const fn to_wire(self) -> $repr {
                self as $repr
            }

            /// Decodes a wire value.
            pub fn from_wire(v: $repr) -> Result<$name, MetricError> {
                match v {
                    $( $value => Ok($name::$variant), )+
                    other => Err(MetricError::$err(other)),
                }
            }

            /// The stable snake_case name (used by `ctl` flags and JSON).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<$name, UnknownName> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| UnknownName { what: stringify!($name), name: s.to_string() })
            }
        }
    };
}

wire_enum! {
    /// What a metric measures. Each type fixes the units it accepts.
    MetricType: u16, UnknownType {
        /// One-way or round-trip delay of a path: microseconds or milliseconds.
        PathLatency = 1 => "path_latency",
        /// Delay variation of a path: microseconds or milliseconds.
        PathJitter = 2 => "path_jitter",
        /// Spare capacity of a path: bits per second.
        PathAvailableBw = 3 => "path_available_bw",
        /// Packet loss of a path: ratio (0..=1) or percent (0..=100).
        PathLoss = 4 => "path_loss",
        /// GPU busy share: ratio or percent.
        GpuUtilisation = 16 => "gpu_utilisation",
        /// GPU memory in use: ratio or percent.
        GpuMemoryUtilisation = 17 => "gpu_memory_utilisation",
        /// Requests waiting: count.
        QueueLength = 18 => "queue_length",
        /// Estimated time to first token: microseconds or milliseconds.
        EstTtft = 19 => "est_ttft",
        /// Prefill throughput: tokens per second.
        TokensPerSPrefill = 20 => "tokens_per_s_prefill",
        /// Decode throughput: tokens per second.
        TokensPerSDecode = 21 => "tokens_per_s_decode",
        /// Longest context the model accepts: tokens.
        MaxContextTokens = 22 => "max_context_tokens",
        /// Requests served at once: count.
        ConcurrencyLimit = 23 => "concurrency_limit",
    }
}

wire_enum! {
    /// Abstraction level (CATS metric levels).
    Level: u8, UnknownLevel {
        /// L0: a raw measurement in a physical unit.
        L0Raw = 0 => "l0",
        /// L1: normalised per category.
        L1Normalised = 1 => "l1",
        /// L2: one overall score.
        L2Score = 2 => "l2",
    }
}

wire_enum! {
    /// Unit of the value.
    Unit: u8, UnknownUnit {
        /// Dimensionless.
        None = 0 => "none",
        /// Microseconds.
        Microseconds = 1 => "us",
        /// Milliseconds.
        Milliseconds = 2 => "ms",
        /// Bits per second.
        BitsPerSecond = 3 => "bps",
        /// A fraction between 0 and 1.
        Ratio = 4 => "ratio",
        /// A fraction between 0 and 100.
        Percent = 5 => "percent",
        /// A number of things.
        Count = 6 => "count",
        /// A number of tokens.
        Tokens = 7 => "tokens",
        /// Tokens per second.
        TokensPerSecond = 8 => "tokens_per_second",
    }
}

wire_enum! {
    /// Where the value comes from.
    Source: u8, UnknownSource {
        /// Configured or advertised, not observed.
        Nominal = 0 => "nominal",
        /// Predicted or modelled.
        Estimated = 1 => "estimated",
        /// Observed.
        Measured = 2 => "measured",
    }
}

wire_enum! {
    /// Which statistic of the underlying samples the value is.
    Statistic: u8, UnknownStatistic {
        /// The latest sample.
        Current = 0 => "current",
        /// Arithmetic mean.
        Mean = 1 => "mean",
        /// Minimum.
        Min = 2 => "min",
        /// Maximum.
        Max = 3 => "max",
        /// Median.
        P50 = 4 => "p50",
        /// 90th percentile.
        P90 = 5 => "p90",
        /// 99th percentile.
        P99 = 6 => "p99",
    }
}

impl MetricType {
    /// Units this metric type may be sent in (at level L0).
    pub const fn allowed_units(self) -> &'static [Unit] {
        use MetricType::*;
        match self {
            PathLatency | PathJitter | EstTtft => &[Unit::Microseconds, Unit::Milliseconds],
            PathAvailableBw => &[Unit::BitsPerSecond],
            PathLoss | GpuUtilisation | GpuMemoryUtilisation => &[Unit::Ratio, Unit::Percent],
            QueueLength | ConcurrencyLimit => &[Unit::Count],
            TokensPerSPrefill | TokensPerSDecode => &[Unit::TokensPerSecond],
            MaxContextTokens => &[Unit::Tokens],
        }
    }

    /// The unit [`Metric::normalised`] returns values in.
    pub const fn canonical_unit(self) -> Unit {
        use MetricType::*;
        match self {
            PathLatency | PathJitter | EstTtft => Unit::Microseconds,
            PathAvailableBw => Unit::BitsPerSecond,
            PathLoss | GpuUtilisation | GpuMemoryUtilisation => Unit::Ratio,
            QueueLength | ConcurrencyLimit => Unit::Count,
            TokensPerSPrefill | TokensPerSDecode => Unit::TokensPerSecond,
            MaxContextTokens => Unit::Tokens,
        }
    }
}

/// One decoded metric value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// What it measures.
    pub metric_type: MetricType,
    /// Abstraction level; this version consumes only L0.
    pub level: Level,
    /// Unit of `value`.
    pub unit: Unit,
    /// Where it comes from.
    pub source: Source,
    /// Which statistic.
    pub statistic: Statistic,
    /// The value, finite and not negative.
    pub value: f64,
}

impl Metric {
    /// A raw (L0), measured, current value: what a probe usually reports.
    /// Adjust the other fields with the `with_*` helpers.
    pub const fn new(metric_type: MetricType, unit: Unit, value: f64) -> Metric {
        Metric {
            metric_type,
            level: Level::L0Raw,
            unit,
            source: Source::Measured,
            statistic: Statistic::Current,
            value,
        }
    }

    /// Same metric, other source.
    pub const fn with_source(mut self, source: Source) -> Metric {
        self.source = source;
        self
    }

    /// Same metric, other statistic.
    pub const fn with_statistic(mut self, statistic: Statistic) -> Metric {
        self.statistic = statistic;
        self
    }

    /// Same metric, other level.
    pub const fn with_level(mut self, level: Level) -> Metric {
        self.level = level;
        self
    }

    /// The 16 wire bytes. Does not validate; encoding a message does.
    pub fn encode(&self) -> [u8; METRIC_LEN] {
        let mut out = [0u8; METRIC_LEN];
        out[0..2].copy_from_slice(&self.metric_type.to_wire().to_be_bytes());
        out[2] = self.level.to_wire();
        out[3] = self.unit.to_wire();
        out[4] = self.source.to_wire();
        out[5] = self.statistic.to_wire();
        // 6..8 reserved, zero.
        out[8..16].copy_from_slice(&self.value.to_bits().to_be_bytes());
        out
    }

    /// Decodes and validates 16 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Metric, MetricError> {
        let raw: &[u8; METRIC_LEN] = bytes
            .try_into()
            .map_err(|_| MetricError::WrongLength(bytes.len()))?;
        let [t0, t1, level, unit, source, statistic, r0, r1, v @ ..] = *raw;
        let reserved = u16::from_be_bytes([r0, r1]);
        if reserved != 0 {
            return Err(MetricError::ReservedNotZero(reserved));
        }
        let m = Metric {
            metric_type: MetricType::from_wire(u16::from_be_bytes([t0, t1]))?,
            level: Level::from_wire(level)?,
            unit: Unit::from_wire(unit)?,
            source: Source::from_wire(source)?,
            statistic: Statistic::from_wire(statistic)?,
            value: f64::from_bits(u64::from_be_bytes(v)),
        };
        m.validate()?;
        Ok(m)
    }

    /// Checks value and unit against the metric type.
    pub fn validate(&self) -> Result<(), MetricError> {
        let t = self.metric_type;
        // L1/L2 values have no agreed scale yet; refusing them is better
        // than storing a score where a latency is expected.
        if self.level != Level::L0Raw {
            return Err(MetricError::LevelNotSupported {
                metric_type: t,
                level: self.level,
            });
        }
        if !t.allowed_units().contains(&self.unit) {
            return Err(MetricError::UnitNotAllowed {
                metric_type: t,
                unit: self.unit,
            });
        }
        if !self.value.is_finite() {
            return Err(MetricError::NotFinite { metric_type: t });
        }
        // `-0.0 < 0.0` is false, so negative zero passes as zero.
        if self.value < 0.0 {
            return Err(MetricError::Negative {
                metric_type: t,
                value: self.value,
            });
        }
        let max = match self.unit {
            Unit::Ratio => 1.0,
            Unit::Percent => 100.0,
            _ => f64::MAX,
        };
        if self.value > max {
            return Err(MetricError::OutOfRange {
                metric_type: t,
                value: self.value,
                max,
            });
        }
        Ok(())
    }

    /// The value in the type's canonical unit ([`MetricType::canonical_unit`]):
    /// times in microseconds, fractions as ratios. Assumes a validated metric.
    pub fn normalised(&self) -> f64 {
        match self.unit {
            Unit::Milliseconds => self.value * 1000.0,
            Unit::Percent => self.value / 100.0,
            _ => self.value,
        }
    }
}

/// What is wrong with a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricError {
    /// The record is not 16 bytes.
    WrongLength(usize),
    /// Unknown metric type.
    UnknownType(u16),
    /// Unknown level.
    UnknownLevel(u8),
    /// Unknown unit.
    UnknownUnit(u8),
    /// Unknown source.
    UnknownSource(u8),
    /// Unknown statistic.
    UnknownStatistic(u8),
    /// Bytes 6..8 are not zero.
    ReservedNotZero(u16),
    /// Level other than L0.
    LevelNotSupported {
        /// The metric.
        metric_type: MetricType,
        /// Its level.
        level: Level,
    },
    /// The unit does not fit the metric type.
    UnitNotAllowed {
        /// The metric.
        metric_type: MetricType,
        /// The unit sent.
        unit: Unit,
    },
    /// NaN or infinite.
    NotFinite {
        /// The metric.
        metric_type: MetricType,
    },
    /// Below zero.
    Negative {
        /// The metric.
        metric_type: MetricType,
        /// The value.
        value: f64,
    },
    /// Above the unit's range (ratio 1, percent 100).
    OutOfRange {
        /// The metric.
        metric_type: MetricType,
        /// The value.
        value: f64,
        /// The largest allowed.
        max: f64,
    },
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MetricError::WrongLength(n) => write!(f, "metric of {n} bytes, expected 16"),
            MetricError::UnknownType(t) => write!(f, "unknown metric type {t}"),
            MetricError::UnknownLevel(v) => write!(f, "unknown metric level {v}"),
            MetricError::UnknownUnit(v) => write!(f, "unknown metric unit {v}"),
            MetricError::UnknownSource(v) => write!(f, "unknown metric source {v}"),
            MetricError::UnknownStatistic(v) => write!(f, "unknown metric statistic {v}"),
            MetricError::ReservedNotZero(v) => write!(f, "metric reserved bytes are {v:#06x}"),
            MetricError::LevelNotSupported { metric_type, level } => {
                write!(f, "{metric_type}: level {level} is not supported, only l0")
            }
            MetricError::UnitNotAllowed { metric_type, unit } => {
                let allowed: Vec<&str> = metric_type
                    .allowed_units()
                    .iter()
                    .map(|u| u.name())
                    .collect();
                write!(
                    f,
                    "{metric_type}: unit {unit} not allowed (use {})",
                    allowed.join(" or ")
                )
            }
            MetricError::NotFinite { metric_type } => {
                write!(f, "{metric_type}: value is NaN or infinite")
            }
            MetricError::Negative { metric_type, value } => {
                write!(f, "{metric_type}: negative value {value}")
            }
            MetricError::OutOfRange {
                metric_type,
                value,
                max,
            } => {
                write!(f, "{metric_type}: value {value} above {max}")
            }
        }
    }
}

/// A name that is not one of a wire enum's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// Which enum.
    pub what: &'static str,
    /// The name given.
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} '{}'", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_every_type() {
        for &t in MetricType::ALL {
            let m = Metric::new(t, t.canonical_unit(), 0.5).with_statistic(Statistic::P99);
            assert_eq!(Metric::decode(&m.encode()), Ok(m));
            assert_eq!(t.name().parse::<MetricType>(), Ok(t));
        }
    }

    #[test]
    fn wire_layout_is_fixed() {
        let m = Metric::new(MetricType::PathLatency, Unit::Milliseconds, 1.5)
            .with_source(Source::Estimated)
            .with_statistic(Statistic::Mean);
        let b = m.encode();
        assert_eq!(&b[..8], &[0, 1, 0, 2, 1, 1, 0, 0]);
        assert_eq!(&b[8..], &1.5f64.to_bits().to_be_bytes());
    }

    #[test]
    fn units_are_normalised() {
        assert_eq!(
            Metric::new(MetricType::PathLatency, Unit::Milliseconds, 1.5).normalised(),
            1500.0
        );
        assert_eq!(
            Metric::new(MetricType::PathLoss, Unit::Percent, 5.0).normalised(),
            0.05
        );
        assert_eq!(
            Metric::new(MetricType::PathJitter, Unit::Microseconds, 7.0).normalised(),
            7.0
        );
    }

    #[test]
    fn invalid_values_are_refused() {
        let lat = |u, v| Metric::new(MetricType::PathLatency, u, v).validate();
        assert!(matches!(
            lat(Unit::BitsPerSecond, 1.0),
            Err(MetricError::UnitNotAllowed { .. })
        ));
        assert!(matches!(
            lat(Unit::Microseconds, f64::NAN),
            Err(MetricError::NotFinite { .. })
        ));
        assert!(matches!(
            lat(Unit::Microseconds, f64::INFINITY),
            Err(MetricError::NotFinite { .. })
        ));
        assert!(matches!(
            lat(Unit::Microseconds, -1.0),
            Err(MetricError::Negative { .. })
        ));
        assert_eq!(lat(Unit::Microseconds, -0.0), Ok(()));
        let loss = |u, v| Metric::new(MetricType::PathLoss, u, v).validate();
        assert!(matches!(
            loss(Unit::Ratio, 1.01),
            Err(MetricError::OutOfRange { .. })
        ));
        assert_eq!(loss(Unit::Ratio, 1.0), Ok(()));
        assert!(matches!(
            loss(Unit::Percent, 100.5),
            Err(MetricError::OutOfRange { .. })
        ));
        let l2 = Metric::new(MetricType::PathLatency, Unit::Microseconds, 1.0)
            .with_level(Level::L2Score);
        assert!(matches!(
            l2.validate(),
            Err(MetricError::LevelNotSupported { .. })
        ));
    }

    #[test]
    fn unknown_codes_and_reserved_bytes_are_refused() {
        let good = Metric::new(MetricType::QueueLength, Unit::Count, 3.0).encode();
        let mut b = good;
        b[1] = 99;
        assert_eq!(Metric::decode(&b), Err(MetricError::UnknownType(99)));
        let mut b = good;
        b[3] = 42;
        assert_eq!(Metric::decode(&b), Err(MetricError::UnknownUnit(42)));
        let mut b = good;
        b[7] = 1;
        assert_eq!(Metric::decode(&b), Err(MetricError::ReservedNotZero(1)));
        assert_eq!(
            Metric::decode(&good[..15]),
            Err(MetricError::WrongLength(15))
        );
    }
}
