//! Counters kept by the schedulers.
//!
//! Counters only ever grow (they wrap after 2^64, which does not happen in
//! practice) so a reader can take differences between two snapshots.

/// Per-band counters of a [`Scheduler`](crate::Scheduler).
///
/// Invariants, checked by the tests:
///
/// * `offered = enqueued + dropped_full`
/// * `enqueued = dequeued + band_len` (items still queued)
///
/// so `offered = dequeued + dropped_full + queued`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BandStats {
    /// Items offered to the band (accepted or not).
    pub offered: u64,
    /// Items accepted.
    pub enqueued: u64,
    /// Items handed back because the band was full.
    pub dropped_full: u64,
    /// Items dequeued.
    pub dequeued: u64,
    /// Bytes accepted.
    pub enqueued_bytes: u64,
    /// Bytes dequeued.
    pub dequeued_bytes: u64,
}

/// Counters of a [`FlowDrr`](crate::FlowDrr), over all flows.
///
/// Invariants: `offered = enqueued + rejected()` and
/// `enqueued = dequeued + drained + len()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowDrrStats {
    /// Items offered.
    pub offered: u64,
    /// Items accepted.
    pub enqueued: u64,
    /// Items dequeued by the DRR.
    pub dequeued: u64,
    /// Items removed by [`drain_flow`](crate::FlowDrr::drain_flow).
    pub drained: u64,
    /// Handed back: every packet slot was in use.
    pub rejected_buffer_full: u64,
    /// Handed back: the flow was at its per-flow limit.
    pub rejected_flow_full: u64,
    /// Handed back: new flow and the flow table was full.
    pub rejected_too_many_flows: u64,
    /// Bytes accepted.
    pub enqueued_bytes: u64,
    /// Bytes dequeued.
    pub dequeued_bytes: u64,
}

impl FlowDrrStats {
    /// All items handed back, whatever the reason.
    pub fn rejected(&self) -> u64 {
        self.rejected_buffer_full
            .wrapping_add(self.rejected_flow_full)
            .wrapping_add(self.rejected_too_many_flows)
    }
}
