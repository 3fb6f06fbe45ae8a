//! [`Rejected`]: an item the scheduler refused, handed back to the caller.

use std::fmt;

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The band holds its packet limit.
    BandFull {
        /// The band.
        band: usize,
    },
    /// The band index is out of range.
    NoSuchBand {
        /// The band asked for.
        band: usize,
    },
    /// [`FlowDrr`](crate::FlowDrr): every packet slot is in use.
    BufferFull,
    /// [`FlowDrr`](crate::FlowDrr): the flow holds its per-flow limit.
    FlowFull,
    /// [`FlowDrr`](crate::FlowDrr): the item is for a new flow and the flow
    /// table is full.
    TooManyFlows,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::BandFull { band } => write!(f, "band {band} full"),
            RejectReason::NoSuchBand { band } => write!(f, "no band {band}"),
            RejectReason::BufferFull => write!(f, "packet buffer full"),
            RejectReason::FlowFull => write!(f, "flow queue full"),
            RejectReason::TooManyFlows => write!(f, "flow table full"),
        }
    }
}

/// An item that was not queued, with the reason.
///
/// The scheduler never drops an item itself: the caller gets it back, counts
/// the drop under `reason`, and frees the buffer (for an mbuf, dropping it
/// does that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected<T> {
    /// The item, untouched.
    pub item: T,
    /// Why it was refused.
    pub reason: RejectReason,
}

impl<T> fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rejected: {}", self.reason)
    }
}

impl<T: fmt::Debug> std::error::Error for Rejected<T> {}
