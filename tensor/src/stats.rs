//! What a tensor engine (and the egress scheduling it feeds) counts.
//!
//! One block per worker lcore: the worker's engine and the port
//! schedulers that worker runs are its only writers, so every update is a
//! relaxed store ([`counters::bump`]), never a locked instruction. Readers
//! (the main lcore, the stats query, `/metrics`) add the blocks up off the
//! fast path with [`TensorCounters::sum`]. The predictor thread writes its
//! own [`PredictorCounters`], separately.
//!
//! Named by what happened, VPP-style: QP state transitions, where semantic
//! features came from, metadata TLVs accepted and refused (by outcome,
//! and every refusal by its code too), outer-header failures by their code, the feature FIFO, the overlay
//! (slices, paths, reordering) and the scheduler's classes.

#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use counters::{bump, SampleRing};

use crate::encap::EncapError;
use crate::metadata::MetadataError;
use crate::{QpState, SemanticSource, TensorType};

/// The four QP states, in table order.
pub const STATES: [QpState; 4] = [
    QpState::Unallocated,
    QpState::SmallFlow,
    QpState::LargeFlow,
    QpState::Draining,
];

/// A state's index in [`STATES`].
pub fn state_index(s: QpState) -> usize {
    match s {
        QpState::Unallocated => 0,
        QpState::SmallFlow => 1,
        QpState::LargeFlow => 2,
        QpState::Draining => 3,
    }
}

/// A packet's scheduling class on its egress port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SchedClass {
    /// SMALL_FLOW below the rate split: strict band 0.
    SmallSlow = 0,
    /// SMALL_FLOW at or above it: strict band 1.
    SmallFast = 1,
    /// DRAINING: strict band 2, flushed ahead of every LARGE flow.
    Draining = 2,
    /// LARGE_FLOW: WDRR by the target's compute power.
    Large = 3,
    /// Not RoCEv2, no QP state, or metadata that failed authentication:
    /// WDRR at weight 1.
    BestEffort = 4,
}

impl SchedClass {
    pub const ALL: [SchedClass; 5] = [
        SchedClass::SmallSlow,
        SchedClass::SmallFast,
        SchedClass::Draining,
        SchedClass::Large,
        SchedClass::BestEffort,
    ];
    pub const COUNT: usize = 5;
    /// Classes served by strict priority, in band order.
    pub const STRICT: usize = 3;

    pub const fn name(self) -> &'static str {
        match self {
            SchedClass::SmallSlow => "small_slow",
            SchedClass::SmallFast => "small_fast",
            SchedClass::Draining => "draining",
            SchedClass::Large => "large",
            SchedClass::BestEffort => "best_effort",
        }
    }
}

/// Metadata TLV outcomes at decapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum MetaOutcome {
    /// Authenticated and used.
    Accepted,
    /// The MAC did not match (tampered or forged): ignored, best effort.
    BadMac,
    /// Signed with a key id this appliance does not hold.
    UnknownKey,
    /// IntelliNode options without a MAC.
    MissingMac,
    /// Malformed options (bad length, unknown critical type, ...).
    Malformed,
}

impl MetaOutcome {
    pub const ALL: [MetaOutcome; 5] = [
        MetaOutcome::Accepted,
        MetaOutcome::BadMac,
        MetaOutcome::UnknownKey,
        MetaOutcome::MissingMac,
        MetaOutcome::Malformed,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            MetaOutcome::Accepted => "accepted",
            MetaOutcome::BadMac => "bad_mac",
            MetaOutcome::UnknownKey => "unknown_key",
            MetaOutcome::MissingMac => "missing_mac",
            MetaOutcome::Malformed => "malformed",
        }
    }
}

/// Everything else, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Event {
    QpNew,
    QpTableFull,
    QpExpired,
    FifoPushed,
    FifoFull,
    EcnMarked,
    TtlDecremented,
    IcrcChecked,
    Encapsulated,
    Decapsulated,
    MessagesSliced,
    Slices,
    ReorderInOrder,
    ReorderHeld,
    ReorderLost,
    ReorderTimeouts,
    UnsequencedDelivered,
    CapabilityLearned,
    OffloadDecided,
    OffloadDeclined,
    PathDown,
    PathUp,
    PlannedOverDownPaths,
    LanesRerouted,
}

impl Event {
    pub const ALL: [Event; 24] = [
        Event::QpNew,
        Event::QpTableFull,
        Event::QpExpired,
        Event::FifoPushed,
        Event::FifoFull,
        Event::EcnMarked,
        Event::TtlDecremented,
        Event::IcrcChecked,
        Event::Encapsulated,
        Event::Decapsulated,
        Event::MessagesSliced,
        Event::Slices,
        Event::ReorderInOrder,
        Event::ReorderHeld,
        Event::ReorderLost,
        Event::ReorderTimeouts,
        Event::UnsequencedDelivered,
        Event::CapabilityLearned,
        Event::OffloadDecided,
        Event::OffloadDeclined,
        Event::PathDown,
        Event::PathUp,
        Event::PlannedOverDownPaths,
        Event::LanesRerouted,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub const fn name(self) -> &'static str {
        match self {
            Event::QpNew => "qp_new",
            Event::QpTableFull => "qp_table_full",
            Event::QpExpired => "qp_expired",
            Event::FifoPushed => "feature_fifo_pushed",
            Event::FifoFull => "feature_fifo_full",
            Event::EcnMarked => "ecn_marked",
            Event::TtlDecremented => "ttl_decremented",
            Event::IcrcChecked => "icrc_checked",
            Event::Encapsulated => "encapsulated",
            Event::Decapsulated => "decapsulated",
            Event::MessagesSliced => "messages_sliced",
            Event::Slices => "slices",
            Event::ReorderInOrder => "reorder_in_order",
            Event::ReorderHeld => "reorder_held",
            Event::ReorderLost => "reorder_lost",
            Event::ReorderTimeouts => "reorder_timeouts",
            Event::UnsequencedDelivered => "unsequenced_delivered",
            Event::CapabilityLearned => "capability_learned",
            Event::OffloadDecided => "offload_decided",
            Event::OffloadDeclined => "offload_declined",
            Event::PathDown => "path_down",
            Event::PathUp => "path_up",
            Event::PlannedOverDownPaths => "planned_over_down_paths",
            Event::LanesRerouted => "lanes_rerouted",
        }
    }
}

/// What the predictor thread reports about itself (its only writer).
#[derive(Default)]
pub struct PredictorCounters {
    pub records: AtomicU64,
    pub snapshots: AtomicU64,
    /// Mean absolute error of the 1 ms and 5 ms load forecasts, and of the
    /// last-value baseline, bits/s (stored as integers).
    pub mae_1ms_bps: AtomicU64,
    pub mae_1ms_last_value_bps: AtomicU64,
    pub mae_5ms_bps: AtomicU64,
    pub mae_5ms_last_value_bps: AtomicU64,
    pub period_ns: AtomicU64,
    pub next_burst_ns: AtomicU64,
}

/// One worker's tensor counters. Line-aligned, as `LcoreCounters` is: the
/// workers' blocks are allocated one after another, and the last line of
/// one must not be the first of the next, which another worker writes.
#[repr(align(64))]
pub struct TensorCounters {
    /// `transitions[from][to]`.
    pub transitions: [[AtomicU64; 4]; 4],
    pub semantic: [AtomicU64; 3],
    pub tensor_types: [AtomicU64; TensorType::COUNT],
    pub metadata: [AtomicU64; 5],
    /// Metadata errors at decapsulation, per
    /// [`MetadataError::RECEIVE_CODES`] (their sum is every
    /// [`MetaOutcome`] but `Accepted`).
    pub metadata_errors: [AtomicU64; MetadataError::RECEIVE_CODES.len()],
    /// Overlay frames dropped by an outer-header check, per
    /// [`EncapError::RECEIVE_CODES`] (their sum is the ports'
    /// `overlay_malformed` drops).
    pub overlay_malformed: [AtomicU64; EncapError::RECEIVE_CODES.len()],
    pub events: [AtomicU64; Event::COUNT],
    /// Packets and bytes per path id slot (index into the configured paths).
    pub path_packets: Vec<AtomicU64>,
    pub path_bytes: Vec<AtomicU64>,
    /// Per path slot: 1 while this worker's engine keeps the path out of
    /// new plans on the control plane's reports (summed: how many workers
    /// do).
    pub path_down: Vec<AtomicU64>,
    /// Per port and class: packets queued, and bytes sent.
    pub class_packets: Vec<[AtomicU64; SchedClass::COUNT]>,
    pub class_tx_bytes: Vec<[AtomicU64; SchedClass::COUNT]>,
    /// Time in the scheduler per class, µs.
    pub sojourn_us: [SampleRing; SchedClass::COUNT],
}

impl TensorCounters {
    pub fn new(paths: usize, ports: usize) -> TensorCounters {
        TensorCounters {
            transitions: Default::default(),
            semantic: Default::default(),
            tensor_types: Default::default(),
            metadata: Default::default(),
            metadata_errors: Default::default(),
            overlay_malformed: Default::default(),
            events: Default::default(),
            path_packets: (0..paths).map(|_| AtomicU64::new(0)).collect(),
            path_bytes: (0..paths).map(|_| AtomicU64::new(0)).collect(),
            path_down: (0..paths).map(|_| AtomicU64::new(0)).collect(),
            class_packets: (0..ports).map(|_| Default::default()).collect(),
            class_tx_bytes: (0..ports).map(|_| Default::default()).collect(),
            sojourn_us: Default::default(),
        }
    }

    #[inline]
    pub fn event(&self, e: Event) {
        bump(&self.events[e as usize], 1);
    }

    #[inline]
    pub fn events(&self, e: Event, n: u64) {
        if n > 0 {
            bump(&self.events[e as usize], n);
        }
    }

    #[inline]
    pub fn transition(&self, from: QpState, to: QpState) {
        if let Some(c) = self
            .transitions
            .get(state_index(from))
            .and_then(|r| r.get(state_index(to)))
        {
            bump(c, 1);
        }
    }

    #[inline]
    pub fn semantic(&self, source: SemanticSource, t: TensorType) {
        bump(&self.semantic[source as usize], 1);
        bump(&self.tensor_types[t as usize], 1);
    }

    #[inline]
    pub fn metadata(&self, o: MetaOutcome) {
        bump(&self.metadata[o as usize], 1);
    }

    /// Metadata refused at decapsulation, under its code (its outcome is
    /// counted by [`Self::metadata`]).
    #[inline]
    pub fn metadata_error(&self, e: &MetadataError) {
        if let Some(c) = e.receive_index().and_then(|i| self.metadata_errors.get(i)) {
            bump(c, 1);
        }
    }

    /// An overlay frame that failed an outer-header check.
    #[inline]
    pub fn overlay_malformed(&self, e: &EncapError) {
        if let Some(c) = e
            .receive_index()
            .and_then(|i| self.overlay_malformed.get(i))
        {
            bump(c, 1);
        }
    }

    /// A packet queued on `port` in `class`.
    #[inline]
    pub fn queued(&self, port: usize, class: SchedClass) {
        if let Some(c) = self
            .class_packets
            .get(port)
            .and_then(|c| c.get(class as usize))
        {
            bump(c, 1);
        }
    }

    /// A packet of `len` bytes of `class` sent on `port`.
    #[inline]
    pub fn sent(&self, port: usize, class: SchedClass, len: u32) {
        if let Some(c) = self
            .class_tx_bytes
            .get(port)
            .and_then(|c| c.get(class as usize))
        {
            bump(c, u64::from(len));
        }
    }

    pub fn get(&self, e: Event) -> u64 {
        self.events[e as usize].load(Relaxed)
    }

    /// Every worker's block added up (off the fast path).
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a TensorCounters> + Clone) -> TensorCounters {
        let first = parts.clone().into_iter().next();
        let total = TensorCounters::new(
            first.map_or(0, |c| c.path_packets.len()),
            first.map_or(0, |c| c.class_packets.len()),
        );
        let add = |into: &[AtomicU64], from: &[AtomicU64]| {
            for (a, b) in into.iter().zip(from) {
                bump(a, b.load(Relaxed));
            }
        };
        for part in parts.clone() {
            for (t, p) in total.transitions.iter().zip(&part.transitions) {
                add(t, p);
            }
            add(&total.semantic, &part.semantic);
            add(&total.tensor_types, &part.tensor_types);
            add(&total.metadata, &part.metadata);
            add(&total.metadata_errors, &part.metadata_errors);
            add(&total.overlay_malformed, &part.overlay_malformed);
            add(&total.events, &part.events);
            add(&total.path_packets, &part.path_packets);
            add(&total.path_bytes, &part.path_bytes);
            add(&total.path_down, &part.path_down);
            for (t, p) in total.class_packets.iter().zip(&part.class_packets) {
                add(t, p);
            }
            for (t, p) in total.class_tx_bytes.iter().zip(&part.class_tx_bytes) {
                add(t, p);
            }
        }
        let mut sojourn = total.sojourn_us;
        for (i, ring) in sojourn.iter_mut().enumerate() {
            *ring = SampleRing::merged(
                parts
                    .clone()
                    .into_iter()
                    .filter_map(|p| p.sojourn_us.get(i)),
            );
        }
        TensorCounters {
            sojourn_us: sojourn,
            ..total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_adds_every_block_and_keeps_codes_apart() {
        let a = TensorCounters::new(2, 3);
        let b = TensorCounters::new(2, 3);
        a.event(Event::QpNew);
        b.events(Event::QpNew, 2);
        a.overlay_malformed(&EncapError::BadIpChecksum);
        b.overlay_malformed(&EncapError::BadIpChecksum);
        b.overlay_malformed(&EncapError::NotUdp(6));
        a.metadata_error(&MetadataError::BadMac);
        b.metadata_error(&MetadataError::BadMac);
        b.metadata_error(&MetadataError::Duplicate(3));
        // Emit-only errors have no receive code and count nowhere.
        b.metadata_error(&MetadataError::TooLong { len: 96, max: 76 });
        a.transition(QpState::SmallFlow, QpState::LargeFlow);
        b.queued(2, SchedClass::Large);
        a.sojourn_us[0].record(5);
        b.sojourn_us[0].record(7);
        let t = TensorCounters::sum([&a, &b]);
        assert_eq!(t.get(Event::QpNew), 3);
        let at = |code: &str| {
            let i = EncapError::RECEIVE_CODES
                .iter()
                .position(|c| *c == code)
                .unwrap();
            t.overlay_malformed[i].load(Relaxed)
        };
        assert_eq!(at("bad_ip_checksum"), 2);
        assert_eq!(at("not_udp"), 1);
        assert_eq!(at("truncated"), 0);
        let meta = |code: &str| {
            let i = MetadataError::RECEIVE_CODES
                .iter()
                .position(|c| *c == code)
                .unwrap();
            t.metadata_errors[i].load(Relaxed)
        };
        assert_eq!(meta("meta.bad_mac"), 2);
        assert_eq!(meta("meta.duplicate"), 1);
        assert_eq!(
            t.metadata_errors
                .iter()
                .map(|c| c.load(Relaxed))
                .sum::<u64>(),
            3
        );
        assert_eq!(t.transitions[1][2].load(Relaxed), 1);
        assert_eq!(
            t.class_packets[2][SchedClass::Large as usize].load(Relaxed),
            1
        );
        assert_eq!(t.sojourn_us[0].count(), 2);
    }
}
