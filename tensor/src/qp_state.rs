//! The QP flow state machine (draft §3.1, "Flow State Classification").
//!
//! ```text
//!                 first packet
//!  UNALLOCATED ─────────────────► SMALL_FLOW
//!       ▲                            │  message ≥ large_message_bytes
//!       │ idle ≥ idle_timeout        │  (RETH DMA length, or bytes so far)
//!       │ (from any state)           │  or rate ≥ large_rate_bps
//!       │                            ▼
//!       │                        LARGE_FLOW ──── Last/Only opcode, or rate
//!       │                            ▲           below large_rate × exit_ratio
//!       │                            │                    │
//!       │       next large message   │                    ▼
//!       └──────────────────────── DRAINING ◄──────────────┘
//!                                    │ next message starts small
//!                                    ▼
//!                                SMALL_FLOW
//! ```
//!
//! *SMALL_FLOW* is delay-sensitive or control traffic: ACKs, small SENDs,
//! the first packets of anything. *LARGE_FLOW* is a bulk transfer such as
//! a gradient or parameter synchronisation: a message known (from the RDMA
//! WRITE's RETH DMA length) or seen to be large, or a QP sending at a high
//! rate. *DRAINING* is the tail of a large transfer: its last packets are
//! flushed rather than held back behind other bulk flows, and a QP that
//! then goes quiet returns to UNALLOCATED.
//!
//! Rate is an exponentially weighted average over `rate_tau_ns`, updated
//! per packet from the gap to the previous packet, so a burst is seen
//! within a few microseconds and an idle QP decays.

use core::fmt;

use classifier::BthOpcode;

/// A QP's classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QpState {
    /// No state held (never seen, or idle past the timeout).
    #[default]
    Unallocated,
    /// Delay-sensitive or control traffic.
    SmallFlow,
    /// A bulk transfer.
    LargeFlow,
    /// The tail of a bulk transfer, being flushed.
    Draining,
}

impl QpState {
    /// Stable name for counters and docs.
    pub const fn name(self) -> &'static str {
        match self {
            QpState::Unallocated => "UNALLOCATED",
            QpState::SmallFlow => "SMALL_FLOW",
            QpState::LargeFlow => "LARGE_FLOW",
            QpState::Draining => "DRAINING",
        }
    }
}

impl fmt::Display for QpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A state change, for counters and the feature FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: QpState,
    /// State after.
    pub to: QpState,
}

/// What drives the transitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QpThresholds {
    /// A message at least this long makes the QP a LARGE_FLOW, as soon as
    /// its length is known (RETH) or reached (bytes counted).
    pub large_message_bytes: u64,
    /// A QP sending at least this fast is a LARGE_FLOW whatever its message
    /// sizes (many medium messages back to back are bulk too).
    pub large_rate_bps: f64,
    /// A LARGE_FLOW whose rate falls below `large_rate_bps × exit_ratio`
    /// drains (hysteresis, so a rate near the threshold does not flap).
    pub exit_ratio: f64,
    /// Time constant of the rate average, ns.
    pub rate_tau_ns: u64,
    /// Idle this long, any state returns to UNALLOCATED, ns.
    pub idle_timeout_ns: u64,
}

impl Default for QpThresholds {
    /// 1 MiB messages, 10 Gbit/s, exit at half, 100 µs rate average, 10 ms
    /// idle: a small-message RPC stays small, an all-reduce chunk is large
    /// from its first packet, and a QP idle between iterations is
    /// forgotten.
    fn default() -> Self {
        QpThresholds {
            large_message_bytes: 1 << 20,
            large_rate_bps: 10e9,
            exit_ratio: 0.5,
            rate_tau_ns: 100_000,
            idle_timeout_ns: 10_000_000,
        }
    }
}

/// Why thresholds were refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdError {
    /// `large_message_bytes` is 0.
    ZeroMessageBytes,
    /// `large_rate_bps` is not a positive number.
    BadRate(f64),
    /// `exit_ratio` is not in (0, 1].
    BadExitRatio(f64),
    /// `rate_tau_ns` or `idle_timeout_ns` is 0.
    ZeroTime,
}

impl fmt::Display for ThresholdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdError::ZeroMessageBytes => {
                f.write_str("large_message_bytes must be at least 1")
            }
            ThresholdError::BadRate(r) => write!(f, "large_rate_bps = {r} must be > 0"),
            ThresholdError::BadExitRatio(r) => write!(f, "exit_ratio = {r} must be in (0, 1]"),
            ThresholdError::ZeroTime => {
                f.write_str("rate_tau_ns and idle_timeout_ns must be at least 1")
            }
        }
    }
}

impl std::error::Error for ThresholdError {}

impl QpThresholds {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        if self.large_message_bytes == 0 {
            return Err(ThresholdError::ZeroMessageBytes);
        }
        if !(self.large_rate_bps.is_finite() && self.large_rate_bps > 0.0) {
            return Err(ThresholdError::BadRate(self.large_rate_bps));
        }
        if !(self.exit_ratio > 0.0 && self.exit_ratio <= 1.0) {
            return Err(ThresholdError::BadExitRatio(self.exit_ratio));
        }
        if self.rate_tau_ns == 0 || self.idle_timeout_ns == 0 {
            return Err(ThresholdError::ZeroTime);
        }
        Ok(())
    }
}

/// One QP's state and features.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QpFlow {
    state: QpState,
    /// Bytes of the message in progress.
    message_bytes: u64,
    /// Announced length of the message in progress (RETH), if any.
    message_len: Option<u64>,
    /// Bytes seen since the QP was allocated.
    total_bytes: u64,
    /// Packets seen since the QP was allocated.
    packets: u64,
    /// Rate average, bits/s.
    rate_bps: f64,
    last_ns: u64,
}

impl QpFlow {
    /// Current state.
    pub fn state(&self) -> QpState {
        self.state
    }

    /// Rate average, bits/s.
    pub fn rate_bps(&self) -> f64 {
        self.rate_bps
    }

    /// Bytes since allocation.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Packets since allocation.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// One packet of the QP: `len` bytes on the wire at `now_ns`, with its
    /// BTH opcode and, for RDMA WRITE First/Only, the RETH DMA length.
    /// Returns the transition it caused, if any.
    pub fn on_packet(
        &mut self,
        now_ns: u64,
        len: u32,
        opcode: BthOpcode,
        dma_len: Option<u32>,
        th: &QpThresholds,
    ) -> Option<Transition> {
        let from = self.state;
        if from != QpState::Unallocated && now_ns.saturating_sub(self.last_ns) >= th.idle_timeout_ns
        {
            // Idle past the timeout: this packet starts afresh.
            *self = QpFlow::default();
        }
        let restarted = self.state == QpState::Unallocated;
        self.update_rate(now_ns, len, th, restarted);
        self.last_ns = now_ns;
        self.packets = self.packets.saturating_add(1);
        self.total_bytes = self.total_bytes.saturating_add(u64::from(len));

        // A First or Only packet starts a message.
        if opcode.is_first() || opcode.is_only() || restarted {
            self.message_bytes = 0;
            self.message_len = dma_len.map(u64::from);
        }
        self.message_bytes = self.message_bytes.saturating_add(u64::from(len));

        let large_message = self
            .message_len
            .is_some_and(|l| l >= th.large_message_bytes)
            || self.message_bytes >= th.large_message_bytes;
        let fast = self.rate_bps >= th.large_rate_bps;
        let ends_message = opcode.is_last_or_only();
        self.state = match self.state {
            QpState::Unallocated | QpState::SmallFlow | QpState::Draining => {
                // A fast QP is large; so is a large message, unless this
                // packet already ends it (then it is over before it could
                // be scheduled as bulk).
                if fast || (large_message && !ends_message) {
                    QpState::LargeFlow
                } else if self.state == QpState::Draining
                    && !(opcode.is_first() || opcode.is_only())
                {
                    // Still the tail of the last large message (ACKs, the
                    // last packets): keep flushing.
                    QpState::Draining
                } else {
                    QpState::SmallFlow
                }
            }
            QpState::LargeFlow => {
                let slow = self.rate_bps < th.large_rate_bps * th.exit_ratio;
                // The last packet of a large message is its tail; a QP
                // that was large only by rate and has slowed down between
                // messages is done too. A large message in progress stays
                // large however slowly it arrives.
                let tail = ends_message && large_message;
                let cooled = slow && !large_message;
                if tail || cooled {
                    QpState::Draining
                } else {
                    QpState::LargeFlow
                }
            }
        };
        (self.state != from).then_some(Transition {
            from,
            to: self.state,
        })
    }

    /// Time passing without packets: an idle QP returns to UNALLOCATED.
    pub fn on_tick(&mut self, now_ns: u64, th: &QpThresholds) -> Option<Transition> {
        let from = self.state;
        if from == QpState::Unallocated || now_ns.saturating_sub(self.last_ns) < th.idle_timeout_ns
        {
            return None;
        }
        *self = QpFlow::default();
        Some(Transition {
            from,
            to: QpState::Unallocated,
        })
    }

    /// EWMA of the instantaneous rate `len / gap`, weighted by the gap's
    /// share of the time constant (the usual irregular-sampling EWMA).
    fn update_rate(&mut self, now_ns: u64, len: u32, th: &QpThresholds, restarted: bool) {
        if restarted {
            self.rate_bps = 0.0;
            return;
        }
        let gap = now_ns.saturating_sub(self.last_ns).max(1) as f64;
        let tau = th.rate_tau_ns as f64;
        let weight = (gap / tau).min(1.0);
        let instant = f64::from(len) * 8.0 * 1e9 / gap;
        let r = self.rate_bps + weight * (instant - self.rate_bps);
        self.rate_bps = if r.is_finite() && r >= 0.0 { r } else { 0.0 };
    }
}
